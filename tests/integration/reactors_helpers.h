/*
 * reactors_helpers.h — what the tests of runneld with several reactors
 * share: test_reactors_produce.c, test_reactors_fetch.c,
 * test_reactors_control.c and test_reactors_shutdown.c, each its own
 * executable (header-only, static inline). They test requests handed between
 * partition owners (broker/net/shard.c), against real processes.
 *
 * With --reactors N a connection lands on whichever reactor the kernel's
 * SO_REUSEPORT hash picks, and each partition belongs to one reactor
 * (rn_partition_owner). Produce, Fetch and ListOffsets are therefore handled
 * where they land, forwarded whole, or split by owner and their answers
 * merged; every other API runs on reactor 0. The brokers here run
 * --reactors 4 on a 2-core machine, so reactor threads are preempted and
 * hand-overs interleave in many orders, and the tests open 16 connections so
 * that several land on each reactor and every path is taken.
 *
 * What must hold is what one reactor promises:
 *   - offsets, bytes (byte for byte), per-partition errors, request order;
 *   - Fetch limits give the answer a single reactor gives: compared byte for
 *     byte against a --reactors 1 broker holding the same batches;
 *   - a long poll wakes on data at any owner, and waits max_wait_ms otherwise;
 *   - a long poll's min_bytes counts the bytes of every owner together;
 *   - pipelined requests keep each partition's order per connection;
 *     idempotent retries are recognised by every owner;
 *   - control APIs (run on reactor 0) see the owners' latest state, and their
 *     changes (create, delete, configs) reach every owner before the answer;
 *   - deletes during produce, departed clients with parked polls and slow
 *     readers of split answers leave nothing stranded or leaked;
 *   - SIGTERM drains every reactor (parked polls answered, acknowledged
 *     records kept, clean markers written); kill -9 with log.flush=always
 *     loses no acknowledged record.
 *
 * Which reactor owns what: owner_of() mirrors rn_partition_owner's hash, and
 * tests assert that their partitions cover every reactor, so a changed hash
 * shows as a clear failure rather than a silent loss of coverage. Which
 * reactor a connection lands on cannot be seen from outside; with 16
 * connections on 4 listeners every reactor gets some but for a chance of
 * about 4 %, and the partition spread alone already makes every request a
 * split one.
 *
 * Timing bounds are generous (the sanitizer build on a loaded 2-core machine
 * is slow): "at once" means well under half of max_wait_ms.
 */
#ifndef RN_TEST_REACTORS_HELPERS_H
#define RN_TEST_REACTORS_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

#define NR 4  /* reactors of the broker under test */
#define NC 16 /* connections a test opens */

static it_broker B;  /* --reactors 4 */
static it_broker B1; /* --reactors 1, for the tests that compare */

static const char *const ARGS4[] = {"--reactors", "4", NULL};
static const char *const ARGS1[] = {"--reactors", "1", NULL};

static inline void setup(void)
{
    itf_start(&B, ARGS4);
}

static inline void teardown(void)
{
    if (B1.root[0])
        itf_teardown(&B1);
    itf_teardown(&B);
}

/* ---- Helpers --------------------------------------------------------------------------- */

typedef struct tp {
    const char *topic;
    int32_t partition;
} tp;

/* The reactor owning a partition, as rn_partition_owner (broker/part/partitions.c)
 * computes it: FNV-1a of the topic name, plus the partition, mod NR. */
static inline unsigned owner_of(const char *topic, int32_t partition)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)topic; *c; c++)
        h = (h ^ *c) * 16777619u;
    return (h + (uint32_t)partition) % NR;
}

/* The partitions of a test land on every reactor (else it tests less than it
 * claims). */
static inline void assert_spread(const tp *p, size_t n)
{
    bool seen[NR] = {0};
    for (size_t i = 0; i < n; i++)
        seen[owner_of(p[i].topic, p[i].partition)] = true;
    for (unsigned r = 0; r < NR; r++)
        cr_assert(seen[r],
                  "no partition of this test is owned by reactor %u: did the hash of "
                  "rn_partition_owner change? (update owner_of)",
                  r);
}

static inline void open_conns(it_broker *b, it_conn **c, int n)
{
    for (int i = 0; i < n; i++)
        c[i] = itf_connect(b);
}

static inline void close_conns(it_conn **c, int n)
{
    for (int i = 0; i < n; i++)
        it_conn_close(c[i]);
}

/* How most tests end: their connections closed, the broker stopped with
 * SIGTERM and exiting 0 (itf_stop_clean), and the test marked passed (so
 * the fixture removes its files). */
static inline void finish_clean(it_conn **c, int n)
{
    close_conns(c, n);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* A batch of n records of vlen bytes each (filled with `fill`). */
static inline uint8_t *big_batch(char fill, int n, size_t vlen, int64_t ts, size_t *len)
{
    rn_batch_builder *bb;
    cr_assert_eq(rn_batch_builder_new(&bb, NULL), 0);
    uint8_t *v = malloc(vlen);
    cr_assert_not_null(v);
    memset(v, fill, vlen);
    for (int i = 0; i < n; i++)
        cr_assert_eq(rn_batch_builder_add(bb, ts, NULL, 0, v, vlen, NULL, 0), 0);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(bb, &out, len), 0);
    rn_batch_builder_free(bb);
    free(v);
    return out;
}

static inline int batch_records(const uint8_t *b, size_t len)
{
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(b, len, 0, &h), 0);
    return h.last_offset_delta + 1;
}

/* A stored batch is the produced one but for the two fields the leader
 * stamps (base_offset, partition_leader_epoch), and base_offset is the one
 * the producer was told. */
static inline void assert_batch_stored(const uint8_t *got, size_t got_len, const uint8_t *sent,
                                       size_t sent_len, int64_t base)
{
    cr_assert_eq(got_len, sent_len, "batch length %zu, produced %zu", got_len, sent_len);
    cr_assert_eq(rn_batch_verify(got, got_len, 0, 0), 0, "fetched batch does not verify");
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(got, got_len, 0, &h), 0);
    cr_assert_eq(h.base_offset, base, "stamped base_offset %" PRId64 ", acked %" PRId64,
                 h.base_offset, base);
    cr_assert_eq(memcmp(got + RN_BATCH_OFF_LENGTH, sent + RN_BATCH_OFF_LENGTH, 4), 0);
    cr_assert_eq(
        memcmp(got + RN_BATCH_OFF_MAGIC, sent + RN_BATCH_OFF_MAGIC, sent_len - RN_BATCH_OFF_MAGIC),
        0, "stored batch at %" PRId64 " differs from the produced one", base);
}

/* Same batch content (all but the stamped fields)? */
static inline bool same_batch(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && alen > RN_BATCH_OFF_MAGIC &&
           memcmp(a + RN_BATCH_OFF_MAGIC, b + RN_BATCH_OFF_MAGIC, alen - RN_BATCH_OFF_MAGIC) == 0;
}

/* What one partition should hold: batches by base offset. */
typedef struct stored {
    int64_t base;
    uint8_t *batch; /* owned */
    size_t len;
} stored;

typedef struct plog {
    stored *v;
    size_t n, cap;
} plog;

static inline void plog_add(plog *pl, int64_t base, uint8_t *batch, size_t len)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? 2 * pl->cap : 64;
        pl->v = realloc(pl->v, pl->cap * sizeof(*pl->v));
        cr_assert_not_null(pl->v);
    }
    pl->v[pl->n++] = (stored){.base = base, .batch = batch, .len = len};
}

static inline int cmp_stored(const void *a, const void *b)
{
    int64_t x = ((const stored *)a)->base, y = ((const stored *)b)->base;
    return x < y ? -1 : x > y;
}

static inline void plog_free(plog *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->v[i].batch);
    free(pl->v);
    memset(pl, 0, sizeof(*pl));
}

/* The batches of pl, sorted, tile offsets [0, end) with no gap or overlap;
 * returns end. */
static inline int64_t plog_check_contiguous(plog *pl, const char *what)
{
    qsort(pl->v, pl->n, sizeof(*pl->v), cmp_stored);
    int64_t next = 0;
    for (size_t i = 0; i < pl->n; i++) {
        cr_assert_eq(pl->v[i].base, next, "%s: batch at %" PRId64 ", expected %" PRId64, what,
                     pl->v[i].base, next);
        next += batch_records(pl->v[i].batch, pl->v[i].len);
    }
    return next;
}

/* data (a partition's fetched bytes from offset 0) is exactly pl, in order. */
static inline void assert_holds(const uint8_t *data, size_t len, const plog *pl, const char *what)
{
    size_t off = 0;
    for (size_t i = 0; i < pl->n; i++) {
        cr_assert_leq(off + pl->v[i].len, len, "%s: batch at %" PRId64 " missing", what,
                      pl->v[i].base);
        assert_batch_stored(data + off, pl->v[i].len, pl->v[i].batch, pl->v[i].len, pl->v[i].base);
        off += pl->v[i].len;
    }
    cr_assert_eq(off, len, "%s: %zu bytes more than produced", what, len - off);
}

/* A Fetch response's bytes_len add up to its payload, so it_fetch_data is
 * safe to use. */
static inline void assert_payload_lines_up(const it_resp *r)
{
    cr_assert_eq(r->hdr->error_code, 0, "fetch failed: %u %s", r->hdr->error_code,
                 r->hdr->error_message);
    cr_assert_not_null(r->hdr->fetch);
    uint64_t sum = 0;
    for (size_t i = 0; i < r->hdr->fetch->n_partitions; i++)
        sum += r->hdr->fetch->partitions[i]->bytes_len;
    cr_assert_eq(sum, r->payload_len, "bytes_len add up to %" PRIu64 ", payload is %u", sum,
                 r->payload_len);
}

/* Fetch parts (each from `from[i]`, or 0) with a partition_max_bytes of
 * 4 MiB, no wait; checks the answer lines up with the request. */
static inline void fetch_parts(it_conn *c, const tp *parts, const int64_t *from, size_t n,
                               it_resp *r)
{
    it_fetch_part *fp = calloc(n, sizeof(*fp));
    cr_assert_not_null(fp);
    for (size_t i = 0; i < n; i++)
        fp[i] = (it_fetch_part){parts[i].topic, parts[i].partition, from ? from[i] : 0, 4u << 20};
    it_fetch_opts o = {.max_bytes = 64u << 20};
    cr_assert_eq(it_fetch(c, fp, n, &o, r), 0);
    free(fp);
    assert_payload_lines_up(r);
    cr_assert_eq(r->hdr->fetch->n_partitions, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(r->hdr->fetch->partitions[i]->topic, parts[i].topic, "entry %zu", i);
        cr_assert_eq(r->hdr->fetch->partitions[i]->partition, parts[i].partition, "entry %zu", i);
    }
}

/* One ListOffsets query. */
typedef struct lo_q {
    const char *topic;
    int32_t partition;
    int64_t ts;
} lo_q;

/* ListOffsets of many partitions in one request; the answer echoes them in
 * order. */
static inline void list_offsets_multi(it_conn *c, const lo_q *q, size_t n, it_resp *out)
{
    Runnel__ListOffsetsPartition *lp = calloc(n, sizeof(*lp));
    Runnel__ListOffsetsPartition **lpp = calloc(n, sizeof(*lpp));
    cr_assert(lp && lpp);
    for (size_t i = 0; i < n; i++) {
        runnel__list_offsets_partition__init(&lp[i]);
        lp[i].topic = (char *)q[i].topic;
        lp[i].partition = q[i].partition;
        lp[i].timestamp = q[i].ts;
        lpp[i] = &lp[i];
    }
    Runnel__ListOffsetsRequest body = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    body.n_partitions = n;
    body.partitions = lpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__LIST_OFFSETS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &body;
    int rc = it_call(c, &h, NULL, 0, out);
    free(lp);
    free(lpp);
    cr_assert_eq(rc, 0, "ListOffsets: %d", rc);
    cr_assert_eq(out->hdr->error_code, 0);
    cr_assert_eq(out->hdr->list_offsets->n_partitions, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(out->hdr->list_offsets->partitions[i]->topic, q[i].topic);
        cr_assert_eq(out->hdr->list_offsets->partitions[i]->partition, q[i].partition);
    }
}

/* The "partition log opened" line of partition `name` logged at or after
 * byte `from` contains `want` (e.g. "clean=true", "scanned_bytes=0"). */
static inline bool open_line_has(const it_broker *b, size_t from, const char *name,
                                 const char *want)
{
    FILE *f = fopen(b->log_path, "r");
    if (!f)
        return false;
    char needle[128], line[2048];
    snprintf(needle, sizeof(needle), "partition=%s ", name);
    bool found = false;
    if (fseek(f, (long)from, SEEK_SET) == 0) {
        while (!found && fgets(line, sizeof(line), f))
            found =
                strstr(line, "partition log opened") && strstr(line, needle) && strstr(line, want);
    }
    fclose(f);
    return found;
}

/* Wait for the broker to exit on its own; its wait status. */
static inline int wait_exit(it_broker *b, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_broker_alive(b)) {
        if (it_now_ms() > deadline) {
            it_broker_dump_log(b, 8192);
            cr_assert_fail("runneld still running %d ms after the signal", timeout_ms);
        }
        usleep(2000);
    }
    return b->status;
}

/* "poll" has 4 partitions, one per reactor (the owner is (hash + p) % 4). */
static inline void poll_topic(it_conn *c, const char *name, tp *parts)
{
    itf_create(c, name, NR, NULL);
    for (int p = 0; p < NR; p++)
        parts[p] = (tp){name, p};
    assert_spread(parts, NR);
}

#endif
