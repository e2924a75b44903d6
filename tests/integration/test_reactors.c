/*
 * test_reactors.c — runneld with several reactors: requests handed between
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

static void setup(void)
{
    itf_start(&B, ARGS4);
}

static void teardown(void)
{
    if (B1.root[0])
        itf_teardown(&B1);
    itf_teardown(&B);
}

TestSuite(reactors, .init = setup, .fini = teardown, .timeout = 60);

/* ---- Helpers --------------------------------------------------------------------------- */

typedef struct tp {
    const char *topic;
    int32_t partition;
} tp;

/* The reactor owning a partition, as rn_partition_owner (broker/part/partitions.c)
 * computes it: FNV-1a of the topic name, plus the partition, mod NR. */
static unsigned owner_of(const char *topic, int32_t partition)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)topic; *c; c++)
        h = (h ^ *c) * 16777619u;
    return (h + (uint32_t)partition) % NR;
}

/* The partitions of a test land on every reactor (else it tests less than it
 * claims). */
static void assert_spread(const tp *p, size_t n)
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

static void open_conns(it_broker *b, it_conn **c, int n)
{
    for (int i = 0; i < n; i++)
        c[i] = itf_connect(b);
}

static void close_conns(it_conn **c, int n)
{
    for (int i = 0; i < n; i++)
        it_conn_close(c[i]);
}

/* A batch of n records of vlen bytes each (filled with `fill`). */
static uint8_t *big_batch(char fill, int n, size_t vlen, int64_t ts, size_t *len)
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

static int batch_records(const uint8_t *b, size_t len)
{
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(b, len, 0, &h), 0);
    return h.last_offset_delta + 1;
}

/* A stored batch is the produced one but for the two fields the leader
 * stamps (base_offset, partition_leader_epoch), and base_offset is the one
 * the producer was told. */
static void assert_batch_stored(const uint8_t *got, size_t got_len, const uint8_t *sent,
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
static bool same_batch(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
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

static void plog_add(plog *pl, int64_t base, uint8_t *batch, size_t len)
{
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? 2 * pl->cap : 64;
        pl->v = realloc(pl->v, pl->cap * sizeof(*pl->v));
        cr_assert_not_null(pl->v);
    }
    pl->v[pl->n++] = (stored){.base = base, .batch = batch, .len = len};
}

static int cmp_stored(const void *a, const void *b)
{
    int64_t x = ((const stored *)a)->base, y = ((const stored *)b)->base;
    return x < y ? -1 : x > y;
}

static void plog_free(plog *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->v[i].batch);
    free(pl->v);
    memset(pl, 0, sizeof(*pl));
}

/* The batches of pl, sorted, tile offsets [0, end) with no gap or overlap;
 * returns end. */
static int64_t plog_check_contiguous(plog *pl, const char *what)
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
static void assert_holds(const uint8_t *data, size_t len, const plog *pl, const char *what)
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
static void assert_payload_lines_up(const it_resp *r)
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
static void fetch_parts(it_conn *c, const tp *parts, const int64_t *from, size_t n, it_resp *r)
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
static void list_offsets_multi(it_conn *c, const lo_q *q, size_t n, it_resp *out)
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
static bool open_line_has(const it_broker *b, size_t from, const char *name, const char *want)
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
static int wait_exit(it_broker *b, int timeout_ms)
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

/* ---- Produce split across owners ----------------------------------------------------- */

#define NTP 16 /* partitions of the three topics below */

/* orders (6), clicks (5), audit (5), interleaved so that neighbours in a
 * request have different owners. */
static void three_topics(it_conn *c, tp *parts)
{
    it_topic_spec ts[] = {{.name = "orders", .partitions = 6},
                          {.name = "clicks", .partitions = 5},
                          {.name = "audit", .partitions = 5}};
    it_resp r;
    cr_assert_eq(it_create_topics(c, ts, 3, false, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(r.hdr->create_topics->topics[i]->error_code, 0, "create %s", ts[i].name);
    it_resp_free(&r);
    size_t n = 0;
    for (int32_t p = 0; p < 6; p++) {
        parts[n++] = (tp){"orders", p};
        if (p < 5) {
            parts[n++] = (tp){"clicks", p};
            parts[n++] = (tp){"audit", p};
        }
    }
    cr_assert_eq(n, NTP);
    assert_spread(parts, NTP);
}

/* From every connection, fetch all of parts (in an order rotated by the
 * connection's index) and compare each partition with what it should hold. */
static void assert_everyone_reads(it_conn **c, int n_conns, const tp *parts, plog *pl)
{
    for (int k = 0; k < n_conns; k++) {
        tp rot[NTP];
        for (int i = 0; i < NTP; i++)
            rot[i] = parts[(i + k) % NTP];
        it_resp r;
        fetch_parts(c[k], rot, NULL, NTP, &r);
        for (int i = 0; i < NTP; i++) {
            int p = (i + k) % NTP;
            Runnel__FetchPartitionResponse *fr = r.hdr->fetch->partitions[i];
            char what[64];
            snprintf(what, sizeof(what), "conn %d: %s-%d", k, parts[p].topic, parts[p].partition);
            cr_assert_eq(fr->error_code, 0, "%s: error %u", what, fr->error_code);
            const uint8_t *data;
            size_t len;
            it_fetch_data(&r, (size_t)i, &data, &len);
            assert_holds(data, len, &pl[p], what);
            int64_t end =
                pl[p].n ? pl[p].v[pl[p].n - 1].base +
                              batch_records(pl[p].v[pl[p].n - 1].batch, pl[p].v[pl[p].n - 1].len)
                        : 0;
            cr_assert_eq(fr->high_watermark, end, "%s: high watermark %" PRId64 ", want %" PRId64,
                         what, fr->high_watermark, end);
            cr_assert_eq(fr->log_end_offset, end, "%s", what);
            cr_assert_eq(fr->log_start_offset, 0, "%s", what);
        }
        it_resp_free(&r);
    }
}

// One Produce of 16 partitions of 3 topics (split across the 4 owners), sent
// by each of 16 connections in turn, gets every partition's base offset right
// (also with 80 KiB batches, so the request spans receive buffers); then all
// 16 at once get offsets that tile each log; every connection reads every
// partition back byte for byte.
Test(reactors, produce_split_offsets_and_read_back)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    tp parts[NTP];
    three_topics(c[0], parts);
    plog pl[NTP] = {0};
    int64_t next[NTP] = {0};

    /* One connection after another: offsets are known in advance. */
    for (int k = 0; k < NC; k++) {
        it_produce_part pp[NTP];
        uint8_t *bt[NTP];
        size_t bl[NTP];
        for (int p = 0; p < NTP; p++) {
            if (k == 5 && p % 4 == 0) {
                bt[p] = big_batch((char)('a' + p), 10, 8192, 2000 + k, &bl[p]);
            } else {
                char tag[48];
                snprintf(tag, sizeof(tag), "k%d-%s-%d", k, parts[p].topic, parts[p].partition);
                bt[p] = itf_batch(tag, 1 + (k + p) % 4, 1000 + k, &bl[p]);
            }
            pp[p] = (it_produce_part){parts[p].topic, parts[p].partition, bt[p], bl[p]};
        }
        it_resp r;
        cr_assert_eq(it_produce(c[k], pp, NTP, 1, &r), 0, "produce from conn %d", k);
        cr_assert_eq(r.hdr->error_code, 0);
        Runnel__ProduceResponse *pr = r.hdr->produce;
        cr_assert_eq(pr->n_partitions, NTP);
        for (int p = 0; p < NTP; p++) {
            Runnel__ProducePartitionResponse *e = pr->partitions[p];
            cr_assert_str_eq(e->topic, parts[p].topic, "conn %d entry %d", k, p);
            cr_assert_eq(e->partition, parts[p].partition, "conn %d entry %d", k, p);
            cr_assert_eq(e->error_code, 0, "conn %d %s-%d: %s", k, parts[p].topic,
                         parts[p].partition, e->error_message);
            cr_assert_eq(e->base_offset, next[p],
                         "conn %d %s-%d: base offset %" PRId64 ", want %" PRId64, k, parts[p].topic,
                         parts[p].partition, e->base_offset, next[p]);
            plog_add(&pl[p], next[p], bt[p], bl[p]);
            next[p] += batch_records(bt[p], bl[p]);
        }
        it_resp_free(&r);
    }
    assert_everyone_reads(c, NC, parts, pl);

    /* All at once (acks=-1): each partition's offsets still tile its log. */
    uint32_t cid[NC];
    uint8_t *bt[NC][NTP];
    size_t bl[NC][NTP];
    for (int k = 0; k < NC; k++) {
        it_produce_part pp[NTP];
        for (int p = 0; p < NTP; p++) {
            char tag[48];
            snprintf(tag, sizeof(tag), "all-%d-%d", k, p);
            bt[k][p] = itf_batch(tag, 1 + (k * 3 + p) % 5, 3000 + k, &bl[k][p]);
            pp[p] = (it_produce_part){parts[p].topic, parts[p].partition, bt[k][p], bl[k][p]};
        }
        cr_assert_eq(it_produce_send(c[k], pp, NTP, -1, &cid[k]), 0);
    }
    for (int k = 0; k < NC; k++) {
        it_resp r;
        cr_assert_eq(it_conn_recv(c[k], RUNNEL__API__PRODUCE, &r, IT_DEFAULT_TIMEOUT_MS), 0,
                     "answer to conn %d", k);
        cr_assert_eq(r.hdr->correlation_id, cid[k]);
        cr_assert_eq(r.hdr->produce->n_partitions, NTP);
        for (int p = 0; p < NTP; p++) {
            Runnel__ProducePartitionResponse *e = r.hdr->produce->partitions[p];
            cr_assert_eq(e->partition, parts[p].partition);
            cr_assert_eq(e->error_code, 0, "conn %d entry %d: %s", k, p, e->error_message);
            plog_add(&pl[p], e->base_offset, bt[k][p], bl[k][p]);
        }
        it_resp_free(&r);
    }
    for (int p = 0; p < NTP; p++) {
        char what[64];
        snprintf(what, sizeof(what), "%s-%d", parts[p].topic, parts[p].partition);
        plog_check_contiguous(&pl[p], what);
    }
    assert_everyone_reads(c, NC, parts, pl);

    for (int p = 0; p < NTP; p++)
        plog_free(&pl[p]);
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

// acks=0 Produce split across owners: no answer comes back (the next frame
// on each connection answers the next request), yet every batch lands, once,
// and every connection reads them back byte for byte.
Test(reactors, produce_split_acks0)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    tp parts[NTP];
    three_topics(c[0], parts);
    uint8_t *bt[NC][NTP];
    size_t bl[NC][NTP];
    int64_t want_end[NTP] = {0};
    for (int k = 0; k < NC; k++) {
        it_produce_part pp[NTP];
        for (int p = 0; p < NTP; p++) {
            char tag[48];
            snprintf(tag, sizeof(tag), "z%d-%d", k, p);
            bt[k][p] = itf_batch(tag, 1 + (k * 7 + p) % 5, 1000 + k, &bl[k][p]);
            want_end[p] += batch_records(bt[k][p], bl[k][p]);
            pp[p] = (it_produce_part){parts[p].topic, parts[p].partition, bt[k][p], bl[k][p]};
        }
        cr_assert_eq(it_produce_send(c[k], pp, NTP, 0, NULL), 0);
    }
    /* it_call checks the correlation id: a stray answer to acks=0 fails it. */
    for (int k = 0; k < NC; k++) {
        it_resp r;
        cr_assert_eq(it_api_versions(c[k], &r), 0, "conn %d: an answer to acks=0 arrived", k);
        it_resp_free(&r);
    }
    /* The appends finish after the (absent) answer: wait for them. */
    lo_q q[NTP];
    for (int p = 0; p < NTP; p++)
        q[p] = (lo_q){parts[p].topic, parts[p].partition, -1};
    bool all = false;
    for (int64_t deadline = it_now_ms() + 10000; !all && it_now_ms() < deadline;) {
        it_resp r;
        list_offsets_multi(c[1], q, NTP, &r);
        all = true;
        for (int p = 0; p < NTP; p++)
            all = all && r.hdr->list_offsets->partitions[p]->offset == want_end[p];
        it_resp_free(&r);
        if (!all)
            usleep(10000);
    }
    cr_assert(all, "acks=0 batches did not all land within 10 s");

    /* Which batch went where is up to the reactors: match them by content. */
    plog pl[NTP] = {0};
    it_resp r;
    fetch_parts(c[2], parts, NULL, NTP, &r);
    for (int p = 0; p < NTP; p++) {
        const uint8_t *data;
        size_t len;
        it_fetch_data(&r, (size_t)p, &data, &len);
        bool used[NC] = {0};
        int64_t next = 0;
        for (size_t off = 0; off < len;) {
            rn_batch_header h;
            cr_assert_eq(rn_batch_peek(data + off, len - off, 0, &h), 0);
            size_t blen = rn_batch_size(&h);
            int k = 0;
            while (k < NC && (used[k] || !same_batch(data + off, blen, bt[k][p], bl[k][p])))
                k++;
            cr_assert_lt(k, NC, "%s-%d: a batch at %" PRId64 " that nobody sent (or twice)",
                         parts[p].topic, parts[p].partition, h.base_offset);
            used[k] = true;
            cr_assert_eq(h.base_offset, next);
            plog_add(&pl[p], h.base_offset, bt[k][p], bl[k][p]);
            bt[k][p] = NULL; /* pl owns it now */
            next += h.last_offset_delta + 1;
            off += blen;
        }
        cr_assert_eq(pl[p].n, NC, "%s-%d holds %zu batches, %d were sent", parts[p].topic,
                     parts[p].partition, pl[p].n, NC);
    }
    it_resp_free(&r);
    assert_everyone_reads(c, NC, parts, pl);
    for (int p = 0; p < NTP; p++)
        plog_free(&pl[p]);
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* ---- Fetch across owners ------------------------------------------------------------ */

#define NLP 12 /* partitions of "lim" */

/* Bytes of the Fetch entry a single reactor reads (api/fetch.c): nothing
 * once max_bytes is reached, else whole batches up to the smaller of
 * partition_max_bytes and what is left of max_bytes, at least one. */
static size_t model_take(int avail, size_t l, uint32_t pmax, uint32_t max, size_t total)
{
    size_t mx = max ? max : (50u << 20), pm = pmax ? pmax : (1u << 20);
    if (avail == 0 || total >= mx)
        return 0;
    size_t limit = pm < mx - total ? pm : mx - total;
    size_t k = limit / l;
    if (k < 1)
        k = 1;
    if (k > (size_t)avail)
        k = (size_t)avail;
    return k * l;
}

// Fetch over 12 partitions spread across owners: entries come back in
// request order, payload lengths are the bytes_len, every batch verifies and
// starts where asked; max_bytes (1, k batches, in between) and
// partition_max_bytes give exactly the bytes a --reactors 1 broker gives for
// the same log, byte for byte.
Test(reactors, fetch_limits_match_one_reactor)
{
    itf_start(&B1, ARGS1);
    it_conn *c[NC];
    open_conns(&B, c, NC);
    it_conn *c1 = itf_connect(&B1);
    itf_create(c[0], "lim", NLP, NULL);
    itf_create(c1, "lim", NLP, NULL);
    tp all[NLP];
    for (int p = 0; p < NLP; p++)
        all[p] = (tp){"lim", p};
    assert_spread(all, NLP);

    /* 5 batches of 10 records per partition, all of the same length l. */
    enum { NB = 5, NREC = 10 };
    size_t l = 0;
    for (int round = 0; round < NB; round++) {
        it_produce_part pp[NLP];
        uint8_t *bt[NLP];
        for (int p = 0; p < NLP; p++) {
            char tag[16];
            snprintf(tag, sizeof(tag), "p%02d-r%d", p, round);
            size_t len;
            bt[p] = itf_batch(tag, NREC, 1000 + round, &len);
            cr_assert(l == 0 || len == l);
            l = len;
            pp[p] = (it_produce_part){"lim", p, bt[p], len};
        }
        it_broker *brokers[2] = {&B, &B1};
        it_conn *via[2] = {c[round], c1};
        for (int i = 0; i < 2; i++) {
            it_resp r;
            cr_assert_eq(it_produce(via[i], pp, NLP, 1, &r), 0);
            for (int p = 0; p < NLP; p++) {
                cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0);
                cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, round * NREC, "broker %d",
                             brokers[i] == &B ? 4 : 1);
            }
            it_resp_free(&r);
        }
        for (int p = 0; p < NLP; p++)
            free(bt[p]);
    }

    /* Request order: a permutation; start offsets: the first batch, later
     * ones, mid-batch (the holding batch comes whole), the end (nothing). */
    it_fetch_part fp[NLP];
    static const int64_t from[NLP] = {0, 20, 50, 10, 0, 40, 30, 50, 0, 10, 25, 5};
    for (int i = 0; i < NLP; i++)
        fp[i] = (it_fetch_part){"lim", (i * 5) % NLP, from[i], 0};
    const uint32_t pmax_varied[NLP] = {1,
                                       (uint32_t)l,
                                       (uint32_t)(2 * l + l / 2),
                                       0,
                                       (uint32_t)(3 * l),
                                       1,
                                       0,
                                       (uint32_t)(2 * l),
                                       (uint32_t)(l - 1),
                                       (uint32_t)(4 * l),
                                       0,
                                       (uint32_t)(l + 1)};
    const uint32_t maxes[] = {0,
                              1,
                              (uint32_t)l,
                              (uint32_t)(l + 1),
                              (uint32_t)(2 * l),
                              (uint32_t)(3 * l - 1),
                              (uint32_t)(3 * l),
                              (uint32_t)(5 * l),
                              (uint32_t)(7 * l + l / 2),
                              (uint32_t)(11 * l),
                              (uint32_t)(20 * l)};
    int n_case = 0;
    for (int varied = 0; varied < 2; varied++) {
        for (size_t mi = 0; mi < sizeof(maxes) / sizeof(maxes[0]); mi++) {
            for (int i = 0; i < NLP; i++)
                fp[i].partition_max_bytes = varied ? pmax_varied[i] : 0;
            it_fetch_opts o = {.max_bytes = maxes[mi]};
            it_resp r4, r1;
            cr_assert_eq(it_fetch(c[n_case % NC], fp, NLP, &o, &r4), 0);
            cr_assert_eq(it_fetch(c1, fp, NLP, &o, &r1), 0);
            n_case++;
            assert_payload_lines_up(&r4);
            assert_payload_lines_up(&r1);
            cr_assert_eq(r4.hdr->fetch->n_partitions, NLP);
            cr_assert_eq(r1.hdr->fetch->n_partitions, NLP);
            size_t total = 0;
            for (int i = 0; i < NLP; i++) {
                Runnel__FetchPartitionResponse *a = r4.hdr->fetch->partitions[i];
                Runnel__FetchPartitionResponse *b = r1.hdr->fetch->partitions[i];
                cr_assert_eq(a->partition, fp[i].partition, "entry %d out of request order", i);
                cr_assert_eq(a->error_code, 0);
                cr_assert_eq(a->high_watermark, NB * NREC);
                cr_assert_eq(a->log_end_offset, b->log_end_offset);
                cr_assert_eq(a->log_start_offset, b->log_start_offset);
                size_t want = model_take(NB - (int)(from[i] / NREC), l, fp[i].partition_max_bytes,
                                         maxes[mi], total);
                total += want;
                cr_assert_eq(b->bytes_len, want,
                             "one reactor, max_bytes %u, pmax %s, entry %d: %u bytes, model %zu",
                             maxes[mi], varied ? "varied" : "default", i, b->bytes_len, want);
                cr_assert_eq(a->bytes_len, b->bytes_len,
                             "max_bytes %u, pmax %s, entry %d (partition %d): %u bytes with %d "
                             "reactors, %u with one",
                             maxes[mi], varied ? "varied" : "default", i, fp[i].partition,
                             a->bytes_len, NR, b->bytes_len);
                const uint8_t *data;
                size_t len;
                it_fetch_data(&r4, (size_t)i, &data, &len);
                int64_t next = from[i] - from[i] % NREC;
                for (size_t off = 0; off < len;) {
                    rn_batch_header h;
                    cr_assert_eq(rn_batch_verify(data + off, len - off, 0, 0), 0);
                    cr_assert_eq(rn_batch_peek(data + off, len - off, 0, &h), 0);
                    cr_assert_eq(h.base_offset, next);
                    next += h.last_offset_delta + 1;
                    off += rn_batch_size(&h);
                }
            }
            cr_assert_eq(r4.payload_len, r1.payload_len);
            cr_assert_eq(memcmp(r4.payload, r1.payload, r4.payload_len), 0,
                         "max_bytes %u: the payload differs from one reactor's", maxes[mi]);
            if (maxes[mi] == 1) {
                /* Exactly the first entry's first batch. */
                cr_assert_eq(r4.payload_len, l);
                cr_assert_eq(r4.hdr->fetch->partitions[0]->bytes_len, l);
            }
            it_resp_free(&r4);
            it_resp_free(&r1);
        }
    }
    close_conns(c, NC);
    it_conn_close(c1);
    itf_stop_clean(&B1);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* "poll" has 4 partitions, one per reactor (the owner is (hash + p) % 4). */
static void poll_topic(it_conn *c, const char *name, tp *parts)
{
    itf_create(c, name, NR, NULL);
    for (int p = 0; p < NR; p++)
        parts[p] = (tp){name, p};
    assert_spread(parts, NR);
}

/* Park a long poll (max_wait 3000, min_bytes 1) on c: all of parts[0..n)
 * from at[], rotated by rot. */
static uint32_t park_poll(it_conn *c, const tp *parts, const int64_t *at, size_t n, size_t rot)
{
    it_fetch_part fp[NR];
    for (size_t j = 0; j < n; j++) {
        size_t q = (j + rot) % NR;
        fp[j] = (it_fetch_part){parts[q].topic, parts[q].partition, at ? at[q] : 0, 0};
    }
    it_fetch_opts o = {.max_wait_ms = 3000, .min_bytes = 1};
    uint32_t cid;
    cr_assert_eq(it_fetch_send(c, fp, n, &o, &cid), 0);
    return cid;
}

// Long polls (min_bytes=1, max_wait 3000) over partitions of all 4 owners,
// parked from 8 connections, are answered well before max_wait as soon as
// another connection produces to any one of them, with that batch in its
// place and nothing else (each owner in turn); meanwhile polls on which
// nothing arrives, spanning all owners (split) or on one partition each
// (forwarded whole or local), wait ~max_wait and answer empty, without error.
Test(reactors, long_poll_across_owners)
{
    enum { NF = 8, NQ = 8 };
    it_conn *f[NF], *quiet[NQ], *p = itf_connect(&B);
    open_conns(&B, f, NF);
    open_conns(&B, quiet, NQ);
    tp parts[NR], qparts[NR];
    poll_topic(p, "poll", parts);
    poll_topic(p, "quiet", qparts);
    /* The quiet polls: 4 over all owners, 4 on one partition each. */
    uint32_t qcid[NQ];
    int64_t tq = it_now_ms();
    for (int k = 0; k < NQ; k++)
        qcid[k] = park_poll(quiet[k], qparts, NULL, k < 4 ? NR : 1, (size_t)k);
    int64_t at[NR] = {0};
    for (int target = 0; target < NR; target++) {
        uint32_t cid[NF];
        int64_t t0 = it_now_ms();
        for (int k = 0; k < NF; k++)
            cid[k] = park_poll(f[k], parts, at, NR, (size_t)k);
        usleep(200 * 1000);
        size_t l;
        char tag[16];
        snprintf(tag, sizeof(tag), "w%d", target);
        uint8_t *b = itf_batch(tag, 2, 1000 + target, &l);
        cr_assert_eq(itf_produce(p, "poll", target, b, l), at[target]);
        for (int k = 0; k < NF; k++) {
            it_resp r;
            int rc = it_conn_recv(f[k], RUNNEL__API__FETCH, &r, 8000);
            cr_assert_eq(rc, 0, "owner %u conn %d: %s", owner_of("poll", target), k, strerror(-rc));
            int64_t dt = it_now_ms() - t0;
            cr_assert_eq(r.hdr->correlation_id, cid[k]);
            cr_assert_lt(dt, 1500,
                         "poll-%d (owner %u) conn %d: answered after %" PRId64
                         " ms, not on the produce",
                         target, owner_of("poll", target), k, dt);
            cr_assert_geq(dt, 150, "poll-%d conn %d: answered before the produce", target, k);
            assert_payload_lines_up(&r);
            for (int j = 0; j < NR; j++) {
                int q = (j + k) % NR;
                Runnel__FetchPartitionResponse *e = r.hdr->fetch->partitions[j];
                cr_assert_eq(e->partition, q);
                cr_assert_eq(e->error_code, 0);
                const uint8_t *data;
                size_t len;
                it_fetch_data(&r, (size_t)j, &data, &len);
                if (q == target)
                    assert_batch_stored(data, len, b, l, at[target]);
                else
                    cr_assert_eq(len, 0, "produced to poll-%d, poll-%d has %zu bytes", target, q,
                                 len);
            }
            it_resp_free(&r);
        }
        at[target] += 2;
        free(b);
    }
    /* The quiet answers are read only now: an answer already waiting must
     * not have come before max_wait_ms, and the bound on lateness counts
     * from whichever is later, max_wait_ms or now (a loaded machine may
     * have made the rounds above slow). */
    int64_t t_rounds = it_now_ms() - tq;
    for (int k = 0; k < NQ; k++) {
        struct pollfd pfd = {.fd = quiet[k]->fd, .events = POLLIN};
        cr_assert(t_rounds >= 2900 || poll(&pfd, 1, 0) == 0,
                  "quiet %d answered within %" PRId64 " ms, before max_wait_ms", k, t_rounds);
    }
    for (int k = 0; k < NQ; k++) {
        size_t n = k < 4 ? NR : 1;
        it_resp r;
        cr_assert_eq(it_conn_recv(quiet[k], RUNNEL__API__FETCH, &r, 10000), 0, "quiet %d", k);
        int64_t dt = it_now_ms() - tq;
        cr_assert_eq(r.hdr->correlation_id, qcid[k]);
        cr_assert_geq(dt, 2900, "quiet %d answered after %" PRId64 " ms, before max_wait_ms", k,
                      dt);
        cr_assert_lt(dt, (t_rounds > 3000 ? t_rounds : 3000) + 3000,
                     "quiet %d answered after %" PRId64 " ms", k, dt);
        assert_payload_lines_up(&r);
        cr_assert_eq(r.hdr->fetch->n_partitions, n);
        for (size_t j = 0; j < n; j++) {
            cr_assert_eq(r.hdr->fetch->partitions[j]->error_code, 0);
            cr_assert_eq(r.hdr->fetch->partitions[j]->bytes_len, 0);
            cr_assert_eq(r.hdr->fetch->partitions[j]->high_watermark, 0);
        }
        cr_assert_eq(r.payload_len, 0);
        it_resp_free(&r);
        cr_assert_eq(it_api_versions(quiet[k], &r), 0, "quiet %d no longer serves", k);
        it_resp_free(&r);
    }
    close_conns(f, NF);
    close_conns(quiet, NQ);
    it_conn_close(p);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* What a min_bytes long poll did, collected before asserting so that a
 * failure leaves nothing allocated behind. */
typedef struct minb_result {
    int64_t static_ms;   /* enough there already: answered after */
    uint32_t static_len; /* payload */
    bool early;          /* answered before the third produce */
    int64_t dynamic_ms;  /* answered this long after the third produce */
    uint32_t dynamic_len;
} minb_result;

/* On broker b: "minb" partitions 0, 1, 2 (three owners) get one batch of l
 * bytes each, one after the other, under a fetch parked with min_bytes
 * 2 l + 1 (after a first fetch with min_bytes l + 1 over the batches that are
 * already there). */
static void minb_run(it_broker *b, minb_result *res, size_t *l)
{
    it_conn *c = itf_connect(b);
    tp parts[NR];
    poll_topic(c, "minb", parts);
    cr_assert(owner_of("minb", 0) != owner_of("minb", 1) &&
              owner_of("minb", 1) != owner_of("minb", 2));
    uint8_t *bt = itf_batch("m", 5, 1000, l);
    cr_assert_eq(itf_produce(c, "minb", 0, bt, *l), 0);
    cr_assert_eq(itf_produce(c, "minb", 1, bt, *l), 0);
    /* Static: l in each of two owners, min_bytes l + 1. */
    it_fetch_part fp[3] = {{"minb", 0, 0, 0}, {"minb", 1, 0, 0}, {"minb", 2, 0, 0}};
    it_fetch_opts o = {.max_wait_ms = 3000, .min_bytes = (uint32_t)(*l + 1)};
    int64_t t0 = it_now_ms();
    it_resp r;
    cr_assert_eq(it_fetch(c, fp, 2, &o, &r), 0);
    res->static_ms = it_now_ms() - t0;
    res->static_len = r.payload_len;
    it_resp_free(&r);
    /* Dynamic: parked with nothing, then l arrives at each owner in turn. */
    it_conn *p = itf_connect(b);
    fp[0].offset = fp[1].offset = 5;
    o.min_bytes = (uint32_t)(2 * *l + 1);
    uint32_t cid;
    cr_assert_eq(it_fetch_send(c, fp, 3, &o, &cid), 0);
    usleep(150 * 1000);
    cr_assert_eq(itf_produce(p, "minb", 0, bt, *l), 5);
    usleep(150 * 1000);
    cr_assert_eq(itf_produce(p, "minb", 1, bt, *l), 5);
    usleep(150 * 1000);
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    res->early = poll(&pfd, 1, 0) == 1;
    t0 = it_now_ms();
    cr_assert_eq(itf_produce(p, "minb", 2, bt, *l), 0);
    cr_assert_eq(it_conn_recv(c, RUNNEL__API__FETCH, &r, 8000), 0);
    res->dynamic_ms = it_now_ms() - t0;
    res->dynamic_len = r.payload_len;
    cr_assert_eq(r.hdr->correlation_id, cid);
    it_resp_free(&r);
    free(bt);
    it_conn_close(p);
    it_conn_close(c);
}

// min_bytes reached only by the sum over owners: with one batch (l bytes) at
// each of two owners a fetch asking l + 1 is answered at once with both, and
// a poll asking 2 l + 1 while batches arrive at three owners one by one is
// answered on the third, not before and not at max_wait_ms; exactly as one
// reactor does (no single owner ever has min_bytes).
Test(reactors, long_poll_min_bytes_summed_across_owners)
{
    itf_start(&B1, ARGS1);
    minb_result res[2];
    size_t l = 0;
    minb_run(&B1, &res[0], &l);
    minb_run(&B, &res[1], &l);
    itf_stop_clean(&B1);
    itf_stop_clean(&B);
    for (int i = 0; i < 2; i++) {
        const char *who = i ? "4 reactors" : "1 reactor";
        cr_assert_eq(res[i].static_len, 2 * l, "%s: %u bytes", who, res[i].static_len);
        cr_assert_lt(res[i].static_ms, 1500,
                     "%s: the fetch waited %" PRId64 " ms although %zu bytes >= min_bytes %zu "
                     "were there",
                     who, res[i].static_ms, 2 * l, l + 1);
        cr_assert_not(res[i].early, "%s: answered with %zu of min_bytes %zu", who, 2 * l,
                      2 * l + 1);
        cr_assert_eq(res[i].dynamic_len, 3 * l, "%s: %u bytes", who, res[i].dynamic_len);
        cr_assert_lt(res[i].dynamic_ms, 1500,
                     "%s: the poll answered %" PRId64 " ms after min_bytes were there", who,
                     res[i].dynamic_ms);
    }
    itf_passed = true;
}

/* ---- ListOffsets across owners ------------------------------------------------------- */

// One ListOffsets request over 7 partitions of 2 topics (all owners),
// earliest, latest and by time interleaved, from each of 16 connections in a
// rotated order: every entry in request order with the right offset and
// found timestamp.
Test(reactors, list_offsets_across_owners)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    itf_create(c[0], "lo", 4, NULL);
    itf_create(c[1], "lo2", 3, NULL);
    tp parts[7];
    for (int p = 0; p < 4; p++)
        parts[p] = (tp){"lo", p};
    for (int p = 0; p < 3; p++)
        parts[4 + p] = (tp){"lo2", p};
    assert_spread(parts, 7);
    /* Partition q: 3 batches of 2 records at 1000 (i+1) + 10 q. */
    for (int i = 0; i < 3; i++) {
        it_produce_part pp[7];
        uint8_t *bt[7];
        for (int q = 0; q < 7; q++) {
            size_t l;
            bt[q] = itf_batch("t", 2, 1000 * (i + 1) + 10 * q, &l);
            pp[q] = (it_produce_part){parts[q].topic, parts[q].partition, bt[q], l};
        }
        it_resp r;
        cr_assert_eq(it_produce(c[2], pp, 7, 1, &r), 0);
        for (int q = 0; q < 7; q++)
            cr_assert_eq(r.hdr->produce->partitions[q]->base_offset, 2 * i);
        it_resp_free(&r);
        for (int q = 0; q < 7; q++)
            free(bt[q]);
    }
    /* Partition q's records are at 1000, 2000, 3000 (+ 10 q): what to ask
     * and what comes back; *_rel adds the 10 q. */
    static const struct {
        int64_t ts;
        bool ts_rel;
        int64_t off, found;
        bool found_rel;
    } cases[] = {{-2, false, 0, -1, false},   {-1, false, 6, -1, false},
                 {0, false, 0, 1000, true},   {1500, true, 2, 2000, true},
                 {3000, true, 4, 3000, true}, {3001, true, -1, -1, false}};
    enum { NCASE = sizeof(cases) / sizeof(cases[0]), NQ = NCASE * 7 };
    lo_q q[NQ];
    int64_t want_off[NQ], want_ts[NQ];
    for (int k = 0; k < NC; k++) {
        /* Cases interleaved over partitions, rotated per connection. */
        for (int i = 0; i < NQ; i++) {
            int j = (i + k) % NQ, cs = j / 7, part = j % 7;
            int64_t add = 10 * part;
            q[i] = (lo_q){parts[part].topic, parts[part].partition,
                          cases[cs].ts + (cases[cs].ts_rel ? add : 0)};
            want_off[i] = cases[cs].off;
            want_ts[i] = cases[cs].found + (cases[cs].found_rel ? add : 0);
        }
        it_resp r;
        list_offsets_multi(c[k], q, NQ, &r);
        for (int i = 0; i < NQ; i++) {
            Runnel__ListOffsetsPartitionResponse *e = r.hdr->list_offsets->partitions[i];
            cr_assert_eq(e->error_code, 0);
            cr_assert_eq(e->offset, want_off[i],
                         "conn %d: %s-%d at %" PRId64 ": offset %" PRId64 ", want %" PRId64, k,
                         q[i].topic, q[i].partition, q[i].ts, e->offset, want_off[i]);
            cr_assert_eq(e->timestamp, want_ts[i],
                         "conn %d: %s-%d at %" PRId64 ": found %" PRId64 ", want %" PRId64, k,
                         q[i].topic, q[i].partition, q[i].ts, e->timestamp, want_ts[i]);
        }
        it_resp_free(&r);
    }
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* ---- Control APIs ------------------------------------------------------------------------ */

/* Directories of data_dir whose name starts with prefix and contains mark. */
static int count_dirs(const char *data_dir, const char *prefix, const char *mark)
{
    DIR *d = opendir(data_dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && (!mark || strstr(e->d_name, mark)))
            n++;
    closedir(d);
    return n;
}

// Control APIs from every connection, all run by reactor 0: CreateTopics,
// then a split Produce from another connection, then DescribeTopic from a
// third shows the new high watermark and size at once; Metadata lists every
// topic everywhere.
Test(reactors, control_apis_from_every_connection)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    enum { NPART = 4 };
    size_t l;
    uint8_t *b = itf_batch("ctl", 3, 1000, &l);
    for (int i = 0; i < NC; i++) {
        char name[16];
        snprintf(name, sizeof(name), "ctl-%02d", i);
        itf_create(c[i], name, NPART, NULL);
        /* Produce to every partition at once from the next connection. */
        it_produce_part pp[NPART];
        for (int p = 0; p < NPART; p++)
            pp[p] = (it_produce_part){name, p, b, l};
        it_resp r;
        cr_assert_eq(it_produce(c[(i + 1) % NC], pp, NPART, 1, &r), 0);
        for (int p = 0; p < NPART; p++) {
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0,
                         "%s-%d right after CreateTopics: %s", name, p,
                         r.hdr->produce->partitions[p]->error_message);
            cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, 0);
        }
        it_resp_free(&r);
        /* The next one produces again to partition i % NPART, then a third
         * describes: the owners' offsets and size are visible on reactor 0. */
        cr_assert_eq(itf_produce(c[(i + 2) % NC], name, i % NPART, b, l), 3);
        cr_assert_eq(it_describe(c[(i + 3) % NC], name, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0);
        Runnel__DescribeTopicResponse *d = r.hdr->describe_topic;
        cr_assert_eq(d->n_partitions, NPART);
        for (int p = 0; p < NPART; p++) {
            Runnel__PartitionDescription *pd = d->partitions[p];
            int64_t n = p == i % NPART ? 6 : 3;
            cr_assert_eq(pd->partition, p);
            cr_assert_eq(pd->high_watermark, n,
                         "%s-%d (owner %u): high watermark %" PRId64 ", want %" PRId64
                         " right after the produce",
                         name, p, owner_of(name, p), pd->high_watermark, n);
            cr_assert_eq(pd->log_end_offset, n);
            cr_assert_eq(pd->log_start_offset, 0);
            cr_assert_eq(pd->size_bytes, (int64_t)(n / 3 * l), "%s-%d: size %" PRId64, name, p,
                         pd->size_bytes);
        }
        it_resp_free(&r);
    }
    for (int k = 0; k < NC; k++) {
        it_resp r;
        cr_assert_eq(it_metadata(c[k], NULL, 0, &r), 0);
        int seen = 0;
        for (size_t t = 0; t < r.hdr->metadata->n_topics; t++) {
            Runnel__TopicMetadata *tm = r.hdr->metadata->topics[t];
            if (strncmp(tm->name, "ctl-", 4))
                continue;
            seen++;
            cr_assert_eq(tm->error_code, 0);
            cr_assert_eq(tm->n_partitions, NPART, "%s", tm->name);
        }
        cr_assert_eq(seen, NC, "conn %d sees %d of the %d topics", k, seen, NC);
        it_resp_free(&r);
    }
    free(b);
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

// DeleteTopics then CreateTopics of the same name at once (from different
// connections, five times over, with more partitions each time): from every
// connection the new topic is empty and takes data at offset 0, none of the
// old data shows, and the old directories go away.
Test(reactors, delete_then_create_same_name)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    const char *name = "phoenix";
    int n_parts = 4;
    itf_create(c[0], name, n_parts, NULL);
    for (int round = 0; round < 5; round++) {
        /* Old data on every partition. */
        char tag[16];
        snprintf(tag, sizeof(tag), "old%d", round);
        size_t l;
        uint8_t *old = itf_batch(tag, 4, 1000, &l);
        it_produce_part pp[16];
        for (int p = 0; p < n_parts; p++)
            pp[p] = (it_produce_part){name, p, old, l};
        it_resp r;
        cr_assert_eq(it_produce(c[round], pp, (size_t)n_parts, 1, &r), 0);
        for (int p = 0; p < n_parts; p++)
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0);
        it_resp_free(&r);

        cr_assert_eq(it_delete_topics(c[round + 1], &name, 1, &r), 0);
        cr_assert_eq(r.hdr->delete_topics->topics[0]->error_code, 0);
        it_resp_free(&r);
        n_parts++;
        itf_create(c[round + 2], name, n_parts, NULL);

        tp parts[16];
        for (int p = 0; p < n_parts; p++)
            parts[p] = (tp){name, p};
        for (int k = 0; k < NC; k++) {
            fetch_parts(c[k], parts, NULL, (size_t)n_parts, &r);
            for (int p = 0; p < n_parts; p++) {
                Runnel__FetchPartitionResponse *e = r.hdr->fetch->partitions[p];
                cr_assert_eq(e->error_code, 0, "round %d conn %d: %s-%d error %u", round, k, name,
                             p, e->error_code);
                cr_assert_eq(e->high_watermark, 0,
                             "round %d conn %d: re-created %s-%d has high watermark %" PRId64,
                             round, k, name, p, e->high_watermark);
                cr_assert_eq(e->bytes_len, 0, "round %d: old data in %s-%d", round, name, p);
            }
            it_resp_free(&r);
        }
        cr_assert_eq(it_describe(c[round + 3], name, &r), 0);
        cr_assert_eq(r.hdr->describe_topic->n_partitions, (size_t)n_parts);
        for (int p = 0; p < n_parts; p++) {
            cr_assert_eq(r.hdr->describe_topic->partitions[p]->log_end_offset, 0);
            cr_assert_eq(r.hdr->describe_topic->partitions[p]->size_bytes, 0);
        }
        it_resp_free(&r);
        /* New data lands at 0 and is all there is. */
        size_t nl;
        uint8_t *nb = itf_batch("new", 2, 2000, &nl);
        for (int p = 0; p < n_parts; p++)
            pp[p] = (it_produce_part){name, p, nb, nl};
        cr_assert_eq(it_produce(c[round + 4], pp, (size_t)n_parts, 1, &r), 0);
        for (int p = 0; p < n_parts; p++) {
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0);
            cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, 0);
        }
        it_resp_free(&r);
        fetch_parts(c[round + 5], parts, NULL, (size_t)n_parts, &r);
        for (int p = 0; p < n_parts; p++) {
            const uint8_t *data;
            size_t len;
            it_fetch_data(&r, (size_t)p, &data, &len);
            assert_batch_stored(data, len, nb, nl, 0);
        }
        it_resp_free(&r);
        free(old);
        free(nb);
    }
    /* The owners remove the old directories (moved aside by reactor 0). */
    int left = -1;
    for (int64_t deadline = it_now_ms() + 5000; it_now_ms() < deadline; usleep(20000)) {
        left = count_dirs(B.data_dir, "phoenix-", ".deleted");
        if (left == 0)
            break;
    }
    cr_assert_eq(left, 0, "%d deleted partition directories left behind", left);
    cr_assert_eq(count_dirs(B.data_dir, "phoenix-", NULL), n_parts);
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

// AlterConfigs from one connection reaches every owner before its answer:
// right after max.message.bytes drops below a batch's size, a split Produce
// from another connection is refused on every partition; right after the key
// is deleted again, the same Produce is accepted everywhere.
Test(reactors, alter_configs_reaches_every_owner)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    enum { NP = 8 };
    itf_create(c[0], "cfg", NP, NULL);
    tp parts[NP];
    for (int p = 0; p < NP; p++)
        parts[p] = (tp){"cfg", p};
    assert_spread(parts, NP);
    size_t l;
    uint8_t *b = big_batch('c', 1, 3000, 1000, &l);
    it_produce_part pp[NP];
    for (int p = 0; p < NP; p++)
        pp[p] = (it_produce_part){"cfg", p, b, l};
    int64_t next = 0;
    for (int round = 0; round < 4; round++) {
        it_conn *a = c[4 * round], *q = c[4 * round + 1], *a2 = c[4 * round + 2],
                *q2 = c[4 * round + 3];
        it_resp r;
        cr_assert_eq(it_alter(a, "cfg", "max.message.bytes=2048", NULL, false, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0, "alter: %s", r.hdr->error_message);
        it_resp_free(&r);
        cr_assert_eq(it_produce(q, pp, NP, 1, &r), 0);
        for (int p = 0; p < NP; p++)
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, RN_E_MESSAGE_TOO_LARGE,
                         "round %d: cfg-%d (owner %u) took a %zu-byte batch right after "
                         "max.message.bytes=2048 (error %u)",
                         round, p, owner_of("cfg", p), l,
                         r.hdr->produce->partitions[p]->error_code);
        it_resp_free(&r);
        cr_assert_eq(it_alter(a2, "cfg", NULL, "max.message.bytes", false, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0, "alter: %s", r.hdr->error_message);
        it_resp_free(&r);
        cr_assert_eq(it_produce(q2, pp, NP, 1, &r), 0);
        for (int p = 0; p < NP; p++) {
            cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0,
                         "round %d: cfg-%d (owner %u) refused a batch after the limit was "
                         "deleted: %s",
                         round, p, owner_of("cfg", p),
                         r.hdr->produce->partitions[p]->error_message);
            cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, next);
        }
        it_resp_free(&r);
        next++;
    }
    free(b);
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

// A client pipelining split fetches whose answers (~150 MiB) far exceed the
// connection's send budget, reading nothing for a while, still gets every
// answer complete and identical, once it reads: slices of other reactors'
// segments survive the pause (and are released, or ASan would say).
static void slow_reader(void)
{
    it_conn *c = itf_connect(&B), *p = itf_connect(&B);
    tp parts[NR];
    poll_topic(p, "bp", parts);
    size_t l;
    uint8_t *b = big_batch('b', 100, 8192, 1000, &l); /* ~800 KiB */
    for (int q = 0; q < NR; q++)
        for (int k = 0; k < 2; k++)
            cr_assert_eq(itf_produce(p, "bp", q, b, l), 100 * k);
    enum { N = 24 };
    it_fetch_part fp[NR];
    for (int q = 0; q < NR; q++)
        fp[q] = (it_fetch_part){"bp", q, 0, 4u << 20};
    it_fetch_opts o = {.max_bytes = 16u << 20};
    uint32_t cid[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(it_fetch_send(c, fp, NR, &o, &cid[i]), 0);
    usleep(300 * 1000);
    cr_assert(it_broker_alive(&B));
    /* Meanwhile the broker serves others. */
    it_resp r;
    cr_assert_eq(it_api_versions(p, &r), 0);
    it_resp_free(&r);
    bool seen[N] = {0};
    for (int i = 0; i < N; i++) {
        int rc = it_conn_recv(c, RUNNEL__API__FETCH, &r, 20000);
        cr_assert_eq(rc, 0, "answer %d of %d: %s", i, N, strerror(-rc));
        uint32_t k = r.hdr->correlation_id - cid[0];
        cr_assert(k < N && !seen[k], "unexpected correlation id %u", r.hdr->correlation_id);
        seen[k] = true;
        assert_payload_lines_up(&r);
        cr_assert_eq(r.payload_len, 2 * NR * l);
        for (int q = 0; q < NR; q++) {
            const uint8_t *data;
            size_t len;
            it_fetch_data(&r, (size_t)q, &data, &len);
            cr_assert_eq(len, 2 * l);
            assert_batch_stored(data, l, b, l, 0);
            assert_batch_stored(data + l, l, b, l, 100);
        }
        it_resp_free(&r);
    }
    free(b);
    it_conn_close(c);
    it_conn_close(p);
}

Test(reactors, slow_reader_of_split_fetches)
{
    slow_reader();
    itf_stop_clean(&B);
    itf_passed = true;
}

// The same with zero-copy sends (socket.send.zerocopy.bytes=65536: sendmsg_zc,
// pages held until the kernel's notification): every answer complete and
// identical, and the held slices released (ASan checks runneld's exit).
Test(reactors, slow_reader_with_zero_copy_sends)
{
    static const char *const args[] = {"--reactors", "4", "--override",
                                       "socket.send.zerocopy.bytes=65536", NULL};
    itf_start_over(&B, args);
    slow_reader();
    itf_stop_clean(&B);
    itf_passed = true;
}

/* A batch of n records of an idempotent producer. */
static uint8_t *idem_batch(int64_t pid, int16_t epoch, int32_t seq, int n, size_t *len)
{
    rn_batch_builder_opts bo = {.producer_id = pid, .producer_epoch = epoch, .base_sequence = seq};
    rn_batch_builder *bb;
    cr_assert_eq(rn_batch_builder_new(&bb, &bo), 0);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof(v), "idem-%d-%d", seq, i);
        cr_assert_eq(rn_batch_builder_add(bb, 1000, NULL, 0, v, (size_t)vl, NULL, 0), 0);
    }
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(bb, &out, len), 0);
    rn_batch_builder_free(bb);
    return out;
}

// Idempotent producer across reactors: InitProducer from every connection
// (run on reactor 0) hands out distinct ids; a split Produce retried from
// other connections gets the original offsets back on every owner without a
// second copy; the next sequence appends; a gap is OUT_OF_ORDER_SEQUENCE.
Test(reactors, idempotent_retries_across_owners)
{
    it_conn *c[NC];
    open_conns(&B, c, NC);
    enum { NP = 8 };
    itf_create(c[0], "idem", NP, NULL);
    tp parts[NP];
    for (int p = 0; p < NP; p++)
        parts[p] = (tp){"idem", p};
    assert_spread(parts, NP);
    int64_t pids[NC];
    int16_t epoch = 0;
    for (int k = 0; k < NC; k++) {
        Runnel__InitProducerRequest ip = RUNNEL__INIT_PRODUCER_REQUEST__INIT;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__INIT_PRODUCER;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_INIT_PRODUCER;
        h.init_producer = &ip;
        it_resp r;
        cr_assert_eq(it_call(c[k], &h, NULL, 0, &r), 0);
        cr_assert_eq(r.hdr->error_code, 0, "InitProducer: %s", r.hdr->error_message);
        pids[k] = r.hdr->init_producer->producer_id;
        if (k == 0)
            epoch = (int16_t)r.hdr->init_producer->producer_epoch;
        for (int j = 0; j < k; j++)
            cr_assert_neq(pids[j], pids[k], "connections %d and %d got producer id %" PRId64, j, k,
                          pids[k]);
        it_resp_free(&r);
    }
    /* seq 0 (3 records) on every partition, then the same request again
     * from five other connections. */
    uint8_t *b0[NP];
    size_t l0[NP];
    it_produce_part pp[NP];
    for (int p = 0; p < NP; p++) {
        b0[p] = idem_batch(pids[0], epoch, 0, 3, &l0[p]);
        pp[p] = (it_produce_part){"idem", p, b0[p], l0[p]};
    }
    for (int k = 1; k <= 6; k++) {
        it_resp r;
        cr_assert_eq(it_produce(c[k], pp, NP, -1, &r), 0);
        for (int p = 0; p < NP; p++) {
            Runnel__ProducePartitionResponse *e = r.hdr->produce->partitions[p];
            cr_assert_eq(e->error_code, 0, "try %d idem-%d: %s", k, p, e->error_message);
            cr_assert_eq(e->base_offset, 0, "try %d idem-%d (owner %u): base %" PRId64, k, p,
                         owner_of("idem", p), e->base_offset);
        }
        it_resp_free(&r);
    }
    lo_q q[NP];
    for (int p = 0; p < NP; p++)
        q[p] = (lo_q){"idem", p, -1};
    it_resp r;
    list_offsets_multi(c[7], q, NP, &r);
    for (int p = 0; p < NP; p++)
        cr_assert_eq(r.hdr->list_offsets->partitions[p]->offset, 3, "idem-%d: retries appended", p);
    it_resp_free(&r);
    /* The next sequence appends; a gap is refused. */
    uint8_t *b1[NP], *b9[NP];
    size_t l1[NP], l9[NP];
    for (int p = 0; p < NP; p++) {
        b1[p] = idem_batch(pids[0], epoch, 3, 2, &l1[p]);
        pp[p] = (it_produce_part){"idem", p, b1[p], l1[p]};
    }
    cr_assert_eq(it_produce(c[8], pp, NP, -1, &r), 0);
    for (int p = 0; p < NP; p++) {
        cr_assert_eq(r.hdr->produce->partitions[p]->error_code, 0);
        cr_assert_eq(r.hdr->produce->partitions[p]->base_offset, 3);
    }
    it_resp_free(&r);
    for (int p = 0; p < NP; p++) {
        b9[p] = idem_batch(pids[0], epoch, 9, 1, &l9[p]);
        pp[p] = (it_produce_part){"idem", p, b9[p], l9[p]};
    }
    cr_assert_eq(it_produce(c[9], pp, NP, -1, &r), 0);
    for (int p = 0; p < NP; p++)
        cr_assert_eq(r.hdr->produce->partitions[p]->error_code, RN_E_OUT_OF_ORDER_SEQUENCE,
                     "idem-%d: a sequence gap gave error %u", p,
                     r.hdr->produce->partitions[p]->error_code);
    it_resp_free(&r);
    fetch_parts(c[10], parts, NULL, NP, &r);
    for (int p = 0; p < NP; p++) {
        const uint8_t *data;
        size_t len;
        it_fetch_data(&r, (size_t)p, &data, &len);
        cr_assert_eq(len, l0[p] + l1[p]);
        assert_batch_stored(data, l0[p], b0[p], l0[p], 0);
        assert_batch_stored(data + l0[p], l1[p], b1[p], l1[p], 3);
    }
    it_resp_free(&r);
    for (int p = 0; p < NP; p++) {
        free(b0[p]);
        free(b1[p]);
        free(b9[p]);
    }
    close_conns(c, NC);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* ---- Errors mixed into split requests ------------------------------------------------- */

// Unknown topics, partitions past the count and an internal topic mixed into
// split Produce, Fetch and ListOffsets requests get their own errors while the
// partitions around them (all owners) succeed; a long poll with an unknown
// partition answers at once, as with one reactor.
Test(reactors, unknown_partitions_in_split_requests)
{
    it_conn *c[4];
    open_conns(&B, c, 4);
    itf_create(c[0], "mix", 8, NULL);
    tp good[8];
    for (int p = 0; p < 8; p++)
        good[p] = (tp){"mix", p};
    assert_spread(good, 8);
    /* Entries: good ones with bad ones in between. */
    static const struct {
        const char *topic;
        int32_t partition;
        uint32_t err;
    } e[] = {{"mix", 0, 0},
             {"nosuch", 0, RN_E_UNKNOWN_TOPIC},
             {"mix", 1, 0},
             {"mix", 8, RN_E_UNKNOWN_TOPIC},
             {"mix", 2, 0},
             {"mix", 3, 0},
             {"mix", 1000000, RN_E_UNKNOWN_TOPIC},
             {"mix", 4, 0},
             {"__offsets", 0, RN_E_INVALID_TOPIC},
             {"mix", 5, 0},
             {"nosuch", 3, RN_E_UNKNOWN_TOPIC},
             {"mix", 6, 0},
             {"mix", INT32_MAX, RN_E_UNKNOWN_TOPIC},
             {"mix", 7, 0}};
    enum { NE = sizeof(e) / sizeof(e[0]) };
    size_t l;
    uint8_t *b = itf_batch("mixed", 3, 1000, &l);
    it_produce_part pp[NE];
    for (int i = 0; i < NE; i++)
        pp[i] = (it_produce_part){e[i].topic, e[i].partition, b, l};
    for (int k = 0; k < 4; k++) {
        it_resp r;
        cr_assert_eq(it_produce(c[k], pp, NE, 1, &r), 0);
        cr_assert_eq(r.hdr->produce->n_partitions, NE);
        for (int i = 0; i < NE; i++) {
            Runnel__ProducePartitionResponse *pr = r.hdr->produce->partitions[i];
            cr_assert_str_eq(pr->topic, e[i].topic);
            cr_assert_eq(pr->partition, e[i].partition);
            cr_assert_eq(pr->error_code, e[i].err, "produce %s-%d: error %u, want %u", e[i].topic,
                         e[i].partition, pr->error_code, e[i].err);
            if (!e[i].err)
                cr_assert_eq(pr->base_offset, 3 * k);
        }
        it_resp_free(&r);
    }
    /* Fetch: the same mix (no internal topic), plus an offset out of range. */
    it_fetch_part fp[NE + 1];
    size_t nf = 0;
    for (int i = 0; i < NE; i++)
        if (strcmp(e[i].topic, "__offsets"))
            fp[nf++] = (it_fetch_part){e[i].topic, e[i].partition, 0, 0};
    fp[nf++] = (it_fetch_part){"mix", 3, 999, 0};
    for (int k = 0; k < 4; k++) {
        it_resp r;
        cr_assert_eq(it_fetch(c[k], fp, nf, NULL, &r), 0);
        assert_payload_lines_up(&r);
        cr_assert_eq(r.hdr->fetch->n_partitions, nf);
        for (size_t i = 0; i < nf; i++) {
            Runnel__FetchPartitionResponse *fr = r.hdr->fetch->partitions[i];
            cr_assert_str_eq(fr->topic, fp[i].topic);
            cr_assert_eq(fr->partition, fp[i].partition);
            bool bad = strcmp(fp[i].topic, "mix") || fp[i].partition >= 8;
            if (bad) {
                cr_assert_eq(fr->error_code, RN_E_UNKNOWN_TOPIC, "fetch %s-%d: error %u",
                             fp[i].topic, fp[i].partition, fr->error_code);
                cr_assert_eq(fr->bytes_len, 0);
            } else if (fp[i].offset == 999) {
                cr_assert_eq(fr->error_code, RN_E_OFFSET_OUT_OF_RANGE);
                cr_assert_eq(fr->high_watermark, 12);
            } else {
                cr_assert_eq(fr->error_code, 0, "fetch mix-%d: error %u", fp[i].partition,
                             fr->error_code);
                cr_assert_eq(fr->bytes_len, 4 * l);
                const uint8_t *data;
                size_t len;
                it_fetch_data(&r, i, &data, &len);
                for (int j = 0; j < 4; j++)
                    assert_batch_stored(data + (size_t)j * l, l, b, l, 3 * j);
            }
        }
        it_resp_free(&r);
    }
    /* ListOffsets: the same mix. */
    lo_q q[NE];
    size_t nq = 0;
    for (int i = 0; i < NE; i++)
        if (strcmp(e[i].topic, "__offsets"))
            q[nq++] = (lo_q){e[i].topic, e[i].partition, -1};
    it_resp r;
    list_offsets_multi(c[1], q, nq, &r);
    for (size_t i = 0; i < nq; i++) {
        Runnel__ListOffsetsPartitionResponse *lr = r.hdr->list_offsets->partitions[i];
        bool bad = strcmp(q[i].topic, "mix") || q[i].partition >= 8;
        cr_assert_eq(lr->error_code, bad ? RN_E_UNKNOWN_TOPIC : 0, "list %s-%d: error %u",
                     q[i].topic, q[i].partition, lr->error_code);
        if (!bad)
            cr_assert_eq(lr->offset, 12);
    }
    it_resp_free(&r);
    /* A long poll at the end of every good partition plus one unknown: the
     * error answers it at once. */
    nf = 0;
    for (int p = 0; p < 8; p++) {
        fp[nf++] = (it_fetch_part){"mix", p, 12, 0};
        if (p == 5)
            fp[nf++] = (it_fetch_part){"nosuch", 1, 0, 0};
    }
    it_fetch_opts o = {.max_wait_ms = 3000, .min_bytes = 1};
    int64_t t0 = it_now_ms();
    cr_assert_eq(it_fetch(c[2], fp, nf, &o, &r), 0);
    int64_t dt = it_now_ms() - t0;
    cr_assert_lt(dt, 1500, "a long poll with an unknown partition waited %" PRId64 " ms", dt);
    for (size_t i = 0; i < nf; i++)
        cr_assert_eq(r.hdr->fetch->partitions[i]->error_code,
                     strcmp(fp[i].topic, "mix") ? RN_E_UNKNOWN_TOPIC : 0);
    cr_assert_eq(r.payload_len, 0);
    it_resp_free(&r);
    free(b);
    close_conns(c, 4);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* ---- Pipelining, deletes and departures across owners ------------------------------ */

// Pipelined Produce requests on 4 connections, 40 each, touching 1 to 4 of 8
// partitions (local, forwarded or split, depending where each connection
// landed): on every connection each partition's offsets grow in the order
// the requests were sent, and every log holds exactly what was acknowledged.
Test(reactors, pipelined_produce_keeps_partition_order)
{
    enum { NK = 4, NQ = 40, NP = 8, MAXP = 4 };
    it_conn *c[NK];
    open_conns(&B, c, NK);
    itf_create(c[0], "seq", NP, NULL);
    plog pl[NP] = {0};
    /* Request i of connection k: partitions start, start+2, ... (distinct). */
    int np[NK][NQ], part[NK][NQ][MAXP];
    uint8_t *bt[NK][NQ][MAXP];
    size_t bl[NK][NQ][MAXP];
    uint32_t first_cid[NK];
    for (int i = 0; i < NQ; i++) {
        for (int k = 0; k < NK; k++) {
            it_produce_part pp[MAXP];
            np[k][i] = 1 + (i + k) % MAXP;
            for (int j = 0; j < np[k][i]; j++) {
                part[k][i][j] = (i * 3 + k + 2 * j) % NP;
                char tag[32];
                snprintf(tag, sizeof(tag), "q%d-%d-%d", k, i, j);
                bt[k][i][j] = itf_batch(tag, 1 + (i + j) % 3, 1000 + i, &bl[k][i][j]);
                pp[j] = (it_produce_part){"seq", part[k][i][j], bt[k][i][j], bl[k][i][j]};
            }
            uint32_t cid;
            cr_assert_eq(it_produce_send(c[k], pp, (size_t)np[k][i], 1, &cid), 0);
            if (i == 0)
                first_cid[k] = cid;
            cr_assert_eq(cid, first_cid[k] + (uint32_t)i);
        }
    }
    for (int k = 0; k < NK; k++) {
        int64_t last[NP];
        int last_req[NP];
        for (int p = 0; p < NP; p++)
            last[p] = -1, last_req[p] = -1;
        /* Answers may come in any order; put them back in send order. */
        int64_t base[NQ][MAXP];
        bool seen[NQ] = {0};
        for (int n = 0; n < NQ; n++) {
            it_resp r;
            int rc = it_conn_recv(c[k], RUNNEL__API__PRODUCE, &r, IT_DEFAULT_TIMEOUT_MS);
            cr_assert_eq(rc, 0, "conn %d answer %d: %s", k, n, strerror(-rc));
            uint32_t i = r.hdr->correlation_id - first_cid[k];
            cr_assert(i < NQ && !seen[i], "conn %d: unexpected correlation id %u", k,
                      r.hdr->correlation_id);
            seen[i] = true;
            cr_assert_eq(r.hdr->produce->n_partitions, (size_t)np[k][i]);
            for (int j = 0; j < np[k][i]; j++) {
                Runnel__ProducePartitionResponse *e = r.hdr->produce->partitions[j];
                cr_assert_eq(e->partition, part[k][i][j]);
                cr_assert_eq(e->error_code, 0, "%s", e->error_message);
                base[i][j] = e->base_offset;
            }
            it_resp_free(&r);
        }
        for (int i = 0; i < NQ; i++) {
            for (int j = 0; j < np[k][i]; j++) {
                int p = part[k][i][j];
                cr_assert_gt(base[i][j], last[p],
                             "conn %d: seq-%d (owner %u): request %d appended at %" PRId64
                             ", before request %d's %" PRId64 " sent earlier",
                             k, p, owner_of("seq", p), i, base[i][j], last_req[p], last[p]);
                last[p] = base[i][j];
                last_req[p] = i;
                plog_add(&pl[p], base[i][j], bt[k][i][j], bl[k][i][j]);
            }
        }
    }
    tp parts[NP];
    for (int p = 0; p < NP; p++) {
        char what[16];
        snprintf(what, sizeof(what), "seq-%d", p);
        plog_check_contiguous(&pl[p], what);
        parts[p] = (tp){"seq", p};
    }
    assert_spread(parts, NP);
    it_resp r;
    fetch_parts(c[1], parts, NULL, NP, &r);
    for (int p = 0; p < NP; p++) {
        const uint8_t *data;
        size_t len;
        char what[16];
        snprintf(what, sizeof(what), "seq-%d", p);
        it_fetch_data(&r, (size_t)p, &data, &len);
        assert_holds(data, len, &pl[p], what);
        plog_free(&pl[p]);
    }
    it_resp_free(&r);
    close_conns(c, NK);
    itf_stop_clean(&B);
    itf_passed = true;
}

// DeleteTopics while split produces to the topic are in flight and long
// polls are parked on it across owners: the polls answer at once (some
// deleted partition says UNKNOWN_TOPIC; owners not yet told answer what they
// have, as when woken by any other owner), every produce is
// answered (appended or UNKNOWN_TOPIC), none sent after the delete was
// answered is appended, and the name can be created afresh, empty.
Test(reactors, delete_topic_during_split_produce)
{
    enum { NF = 4, NP = 8, INFLIGHT = 8, BEFORE = 20, AFTER = 20 };
    it_conn *p = itf_connect(&B), *admin = itf_connect(&B), *f[NF];
    open_conns(&B, f, NF);
    itf_create(admin, "doomed", NP, NULL);
    itf_create(admin, "other", 1, NULL);
    tp parts[NP];
    for (int i = 0; i < NP; i++)
        parts[i] = (tp){"doomed", i};
    assert_spread(parts, NP);
    uint32_t fcid[NF];
    for (int k = 0; k < NF; k++) {
        /* min_bytes beyond anything produced below: only the delete answers. */
        it_fetch_part fp[NP + 1];
        for (int i = 0; i < NP; i++)
            fp[i] = (it_fetch_part){"doomed", (i + k) % NP, 0, 0};
        fp[NP] = (it_fetch_part){"other", 0, 0, 0};
        it_fetch_opts o = {.max_wait_ms = 20000, .min_bytes = 1u << 30};
        cr_assert_eq(it_fetch_send(f[k], fp, NP + 1, &o, &fcid[k]), 0);
    }
    size_t l;
    uint8_t *b = itf_batch("r", 3, 1000, &l);
    it_produce_part pp[NP];
    for (int i = 0; i < NP; i++)
        pp[i] = (it_produce_part){"doomed", i, b, l};
    int sent = 0, answered = 0, after_delete = -1, ok = 0, gone = 0;
    uint32_t last_cid = 0, first_after = UINT32_MAX;
    bool delete_sent = false;
    int64_t t_delete = 0;
    while (after_delete < 0 || answered < after_delete + AFTER) {
        while (sent - answered < INFLIGHT) {
            cr_assert_eq(it_produce_send(p, pp, NP, 1, &last_cid), 0);
            sent++;
        }
        if (!delete_sent && answered >= BEFORE) {
            Runnel__DeleteTopicsRequest d = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
            char *name = "doomed";
            d.n_topics = 1;
            d.topics = &name;
            Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
            h.api = RUNNEL__API__DELETE_TOPICS;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_DELETE_TOPICS;
            h.delete_topics = &d;
            cr_assert_eq(it_conn_send(admin, &h, NULL, 0, NULL), 0);
            delete_sent = true;
            t_delete = it_now_ms();
        }
        it_resp r;
        int rc = it_conn_recv(p, RUNNEL__API__PRODUCE, &r, IT_DEFAULT_TIMEOUT_MS);
        cr_assert_eq(rc, 0, "produce answer %d: %s", answered, strerror(-rc));
        bool must_be_gone = r.hdr->correlation_id >= first_after;
        cr_assert_eq(r.hdr->produce->n_partitions, NP);
        for (int i = 0; i < NP; i++) {
            uint32_t e = r.hdr->produce->partitions[i]->error_code;
            cr_assert(e == 0 || e == RN_E_UNKNOWN_TOPIC, "doomed-%d: unexpected error %u", i, e);
            cr_assert(e != 0 || !must_be_gone,
                      "doomed-%d (owner %u): a produce sent after the delete was answered was "
                      "appended",
                      i, owner_of("doomed", i));
            if (e == 0)
                ok++;
            else
                gone++;
        }
        it_resp_free(&r);
        answered++;
        struct pollfd pfd = {.fd = admin->fd, .events = POLLIN};
        if (delete_sent && after_delete < 0 && poll(&pfd, 1, 0) == 1) {
            /* The delete is answered: every produce sent from now on must
             * find the topic gone. */
            cr_assert_eq(it_conn_recv(admin, RUNNEL__API__DELETE_TOPICS, &r, 5000), 0);
            cr_assert_eq(r.hdr->delete_topics->topics[0]->error_code, 0);
            it_resp_free(&r);
            after_delete = sent;
            first_after = last_cid + 1;
        }
    }
    /* The rest. Answers may come out of order (a refusal is immediate, an
     * append waits for its write), so judge each by its correlation id. */
    for (; answered < sent; answered++) {
        it_resp r;
        cr_assert_eq(it_conn_recv(p, RUNNEL__API__PRODUCE, &r, IT_DEFAULT_TIMEOUT_MS), 0);
        bool must_be_gone = r.hdr->correlation_id >= first_after;
        for (int i = 0; i < NP; i++) {
            uint32_t e = r.hdr->produce->partitions[i]->error_code;
            cr_assert(e == 0 || e == RN_E_UNKNOWN_TOPIC, "doomed-%d: unexpected error %u", i, e);
            cr_assert(e != 0 || !must_be_gone,
                      "doomed-%d: a produce sent after the delete was answered was appended", i);
            gone += e != 0;
        }
        it_resp_free(&r);
    }
    cr_assert_geq(gone, NP * AFTER, "produces after the delete were appended");
    for (int k = 0; k < NF; k++) {
        it_resp r;
        cr_assert_eq(it_conn_recv(f[k], RUNNEL__API__FETCH, &r, 10000), 0, "poll %d", k);
        int64_t dt = it_now_ms() - t_delete;
        cr_assert_lt(dt, 5000, "poll %d answered %" PRId64 " ms after the delete", k, dt);
        cr_assert_eq(r.hdr->correlation_id, fcid[k]);
        assert_payload_lines_up(&r);
        int unknown = 0;
        for (int i = 0; i < NP; i++) {
            Runnel__FetchPartitionResponse *e = r.hdr->fetch->partitions[i];
            cr_assert(e->error_code == 0 || e->error_code == RN_E_UNKNOWN_TOPIC);
            unknown += e->error_code == RN_E_UNKNOWN_TOPIC;
        }
        cr_assert_gt(unknown, 0, "poll %d: no partition of the deleted topic says so", k);
        cr_assert_eq(r.hdr->fetch->partitions[NP]->error_code, 0);
        it_resp_free(&r);
    }
    cr_log_info("%d appended, %d refused after the delete", ok, gone);
    itf_create(admin, "doomed", NP, NULL);
    it_resp r;
    cr_assert_eq(it_produce(p, pp, NP, 1, &r), 0);
    for (int i = 0; i < NP; i++)
        cr_assert_eq(r.hdr->produce->partitions[i]->base_offset, 0, "re-created doomed-%d", i);
    it_resp_free(&r);
    free(b);
    close_conns(f, NF);
    it_conn_close(admin);
    it_conn_close(p);
    itf_stop_clean(&B);
    itf_passed = true;
}

// Clients that close their connections with long polls parked across owners
// leave nothing behind: produces then wake the orphaned parts, other clients
// are served as before, and SIGTERM still exits 0 within 3 s (ASan: no leak,
// no use after free).
Test(reactors, departed_clients_with_parked_split_fetches)
{
    enum { NF = 12 };
    it_conn *f[NF], *p = itf_connect(&B);
    tp parts[NR];
    poll_topic(p, "orphan", parts);
    size_t l;
    uint8_t *b = itf_batch("o", 2, 1000, &l);
    for (int round = 0; round < 2; round++) {
        open_conns(&B, f, NF);
        for (int k = 0; k < NF; k++) {
            it_fetch_part fp[NR];
            for (int j = 0; j < NR; j++)
                fp[j] = (it_fetch_part){"orphan", (j + k) % NR, 2 * round, 0};
            it_fetch_opts o = {.max_wait_ms = 20000, .min_bytes = 1};
            cr_assert_eq(it_fetch_send(f[k], fp, NR, &o, NULL), 0);
        }
        usleep(100 * 1000);
        close_conns(f, NF);
        usleep(100 * 1000);
        /* The first round wakes what is orphaned; the second leaves it parked
         * for the shutdown to find. */
        if (round == 0)
            for (int q = 0; q < NR; q++)
                cr_assert_eq(itf_produce(p, "orphan", q, b, l), 0);
    }
    /* Still serving: a poll that finds data answers at once. */
    it_fetch_part fp[NR];
    for (int j = 0; j < NR; j++)
        fp[j] = (it_fetch_part){"orphan", j, 0, 0};
    it_fetch_opts o = {.max_wait_ms = 3000, .min_bytes = 1};
    it_resp r;
    cr_assert_eq(it_fetch(p, fp, NR, &o, &r), 0);
    assert_payload_lines_up(&r);
    cr_assert_eq(r.payload_len, NR * l);
    it_resp_free(&r);
    it_conn_close(p);
    free(b);
    int64_t t0 = it_now_ms();
    itf_stop_clean(&B);
    int64_t took = it_now_ms() - t0;
    cr_assert_lt(took, 3000, "shutdown with orphaned parked fetches took %" PRId64 " ms", took);
    itf_passed = true;
}

/* ---- A produce stream, for the shutdown and crash tests ----------------------------- */

#define SP_CONNS    4
#define SP_INFLIGHT 8
#define SP_PER_REQ  4

typedef struct sp_req {
    uint32_t cid;
    int part[SP_PER_REQ];
    uint8_t *batch[SP_PER_REQ];
    size_t len[SP_PER_REQ];
} sp_req;

typedef struct sp_conn {
    it_conn *c;
    sp_req q[SP_INFLIGHT];
    int n_q;
    bool open, sending;
} sp_conn;

/* SP_CONNS connections, each with SP_INFLIGHT multi-partition acks=-1
 * Produce requests in flight; acknowledged batches go to acked[partition]. */
typedef struct stream {
    const char *topic;
    int n_parts;
    plog *acked;
    uint64_t seq;
    size_t n_acked;
    unsigned n_errors; /* answers with an error: not acknowledged */
} stream;

static void sp_req_free(sp_req *q)
{
    for (int j = 0; j < SP_PER_REQ; j++)
        free(q->batch[j]);
}

/* Run the stream until the broker goes away; at signal_at (it_now_ms clock)
 * send it sig. Returns how many batches were acknowledged in this call. */
static size_t stream_run(stream *s, it_broker *b, int64_t signal_at, int sig)
{
    sp_conn sc[SP_CONNS];
    for (int i = 0; i < SP_CONNS; i++)
        sc[i] = (sp_conn){.c = itf_connect(b), .open = true, .sending = true};
    size_t before = s->n_acked;
    bool signalled = false;
    int64_t give_up = it_now_ms() + 30000;
    for (int n_open = SP_CONNS; n_open > 0;) {
        cr_assert_lt(it_now_ms(), give_up, "the stream never saw the broker go away");
        if (!signalled && it_now_ms() >= signal_at) {
            cr_assert_eq(kill(b->pid, sig), 0);
            signalled = true;
        }
        for (int i = 0; i < SP_CONNS; i++) {
            sp_conn *x = &sc[i];
            while (x->open && x->sending && x->n_q < SP_INFLIGHT) {
                sp_req *q = &x->q[x->n_q];
                it_produce_part pp[SP_PER_REQ];
                uint64_t seq = s->seq++;
                for (int j = 0; j < SP_PER_REQ; j++) {
                    char tag[48];
                    snprintf(tag, sizeof(tag), "s%" PRIu64 "-%d", seq, j);
                    /* Spread: consecutive requests start at different partitions. */
                    q->part[j] = (int)((seq * 3 + (uint64_t)j * 2) % (uint64_t)s->n_parts);
                    q->batch[j] =
                        itf_batch(tag, 1 + (int)((seq + j) % 3), 1000 + (int64_t)seq, &q->len[j]);
                    pp[j] = (it_produce_part){s->topic, q->part[j], q->batch[j], q->len[j]};
                }
                if (it_produce_send(x->c, pp, SP_PER_REQ, -1, &q->cid) < 0) {
                    sp_req_free(q);
                    x->sending = false;
                    break;
                }
                x->n_q++;
            }
        }
        for (int i = 0; i < SP_CONNS; i++) {
            sp_conn *x = &sc[i];
            if (!x->open)
                continue;
            it_resp r;
            int rc = it_conn_recv(x->c, RUNNEL__API__PRODUCE, &r, signalled ? 50 : 5);
            if (rc == -ETIMEDOUT && (x->n_q > 0 || x->sending))
                continue;
            if (rc < 0) {
                /* The broker is gone: what is in flight is not acknowledged. */
                for (int k = 0; k < x->n_q; k++)
                    sp_req_free(&x->q[k]);
                x->n_q = 0;
                x->open = false;
                n_open--;
                continue;
            }
            int k = 0;
            while (k < x->n_q && x->q[k].cid != r.hdr->correlation_id)
                k++;
            cr_assert_lt(k, x->n_q, "answer to unknown correlation id %u", r.hdr->correlation_id);
            sp_req q = x->q[k];
            memmove(&x->q[k], &x->q[k + 1], (size_t)(x->n_q - k - 1) * sizeof(sp_req));
            x->n_q--;
            bool whole = r.hdr->error_code == 0 && r.hdr->produce &&
                         r.hdr->produce->n_partitions == SP_PER_REQ;
            for (int j = 0; j < SP_PER_REQ; j++) {
                Runnel__ProducePartitionResponse *e = whole ? r.hdr->produce->partitions[j] : NULL;
                if (e && e->error_code == 0 && e->partition == q.part[j]) {
                    plog_add(&s->acked[q.part[j]], e->base_offset, q.batch[j], q.len[j]);
                    s->n_acked++;
                } else {
                    s->n_errors++;
                    free(q.batch[j]);
                }
            }
            it_resp_free(&r);
        }
    }
    for (int i = 0; i < SP_CONNS; i++)
        it_conn_close(sc[i].c);
    return s->n_acked - before;
}

/* Every acknowledged batch of the stream is in its partition, at its offset,
 * byte for byte; each log is contiguous verified batches up to its high
 * watermark. */
static void verify_acked(it_broker *b, stream *s)
{
    it_conn *c = itf_connect(b);
    for (int part = 0; part < s->n_parts; part++) {
        plog *pl = &s->acked[part];
        qsort(pl->v, pl->n, sizeof(*pl->v), cmp_stored);
        size_t ai = 0;
        int64_t next = 0, hw = -1;
        for (;;) {
            it_fetch_part fp = {s->topic, part, next, 4u << 20};
            it_fetch_opts o = {.max_bytes = 4u << 20};
            it_resp r;
            cr_assert_eq(it_fetch(c, &fp, 1, &o, &r), 0);
            Runnel__FetchPartitionResponse *fr = r.hdr->fetch->partitions[0];
            cr_assert_eq(fr->error_code, 0, "fetch %s-%d at %" PRId64 ": %u", s->topic, part, next,
                         fr->error_code);
            hw = fr->high_watermark;
            const uint8_t *data;
            size_t len;
            it_fetch_data(&r, 0, &data, &len);
            for (size_t off = 0; off < len;) {
                rn_batch_header h;
                cr_assert_eq(rn_batch_peek(data + off, len - off, 0, &h), 0);
                size_t blen = rn_batch_size(&h);
                cr_assert_eq(rn_batch_verify(data + off, len - off, 0, 0), 0,
                             "%s-%d: batch at %" PRId64 " does not verify", s->topic, part,
                             h.base_offset);
                cr_assert_eq(h.base_offset, next, "%s-%d: batch at %" PRId64 ", expected %" PRId64,
                             s->topic, part, h.base_offset, next);
                if (ai < pl->n && pl->v[ai].base == h.base_offset) {
                    assert_batch_stored(data + off, blen, pl->v[ai].batch, pl->v[ai].len,
                                        pl->v[ai].base);
                    ai++;
                }
                cr_assert(ai >= pl->n || pl->v[ai].base > h.base_offset,
                          "%s-%d: acknowledged batch at %" PRId64 " is not a batch start", s->topic,
                          part, pl->v[ai].base);
                next = h.base_offset + h.last_offset_delta + 1;
                off += blen;
            }
            it_resp_free(&r);
            if (len == 0)
                break;
        }
        cr_assert_eq(next, hw);
        cr_assert_eq(ai, pl->n,
                     "%s-%d: acknowledged batch at %" PRId64 " is lost (log ends at %" PRId64 ")",
                     s->topic, part, ai < pl->n ? pl->v[ai].base : -1, next);
    }
    it_conn_close(c);
}

static void stream_free(stream *s)
{
    for (int p = 0; p < s->n_parts; p++)
        plog_free(&s->acked[p]);
    free(s->acked);
}

/* ---- Shutdown and crash ------------------------------------------------------------- */

// SIGTERM with long polls parked on every reactor (split and forwarded whole)
// and a multi-partition produce stream going: the polls are answered (empty,
// no error), runneld exits 0 within 3 s, every partition gets its clean
// marker, the restart opens them clean without scanning, and every
// acknowledged batch is there.
Test(reactors, sigterm_drains_every_reactor)
{
    it_conn *admin = itf_connect(&B);
    enum { NBUSY = 8, NPOLL = 8 };
    itf_create(admin, "busy", NBUSY, NULL);
    tp idle[NR];
    poll_topic(admin, "idle", idle);
    it_conn_close(admin);
    /* Parked polls: 4 over all owners, 4 on one partition each. */
    it_conn *f[NPOLL];
    open_conns(&B, f, NPOLL);
    uint32_t cid[NPOLL];
    size_t n_parts[NPOLL];
    for (int k = 0; k < NPOLL; k++) {
        it_fetch_part fp[NR];
        n_parts[k] = k < 4 ? NR : 1;
        for (size_t j = 0; j < n_parts[k]; j++)
            fp[j] = (it_fetch_part){"idle", (int32_t)((j + (size_t)k) % NR), 0, 0};
        it_fetch_opts o = {.max_wait_ms = 30000, .min_bytes = 1};
        cr_assert_eq(it_fetch_send(f[k], fp, n_parts[k], &o, &cid[k]), 0);
    }
    stream s = {.topic = "busy", .n_parts = NBUSY};
    s.acked = calloc(NBUSY, sizeof(*s.acked));
    cr_assert_not_null(s.acked);
    int64_t t_term = it_now_ms() + 400;
    size_t n = stream_run(&s, &B, t_term, SIGTERM);
    cr_assert_gt(n, 0, "nothing acknowledged before SIGTERM");
    int st = wait_exit(&B, 10000);
    int64_t took = it_now_ms() - t_term;
    char sbuf[32];
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        it_broker_dump_log(&B, 16384);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runneld ended with %s",
              itf_status_str(st, sbuf, sizeof(sbuf)));
    cr_assert_lt(took, 3000, "graceful shutdown took %" PRId64 " ms", took);
    cr_assert_eq(s.n_errors, 0, "%u produce entries carried an error", s.n_errors);
    /* The parked polls were answered (the bytes wait in the sockets). */
    for (int k = 0; k < NPOLL; k++) {
        it_resp r;
        int rc = it_conn_recv(f[k], RUNNEL__API__FETCH, &r, 1000);
        cr_assert_eq(rc, 0, "parked poll %d got no answer: %s", k, strerror(-rc));
        cr_assert_eq(r.hdr->correlation_id, cid[k]);
        cr_assert_eq(r.hdr->error_code, 0);
        cr_assert_eq(r.hdr->fetch->n_partitions, n_parts[k]);
        for (size_t j = 0; j < n_parts[k]; j++)
            cr_assert_eq(r.hdr->fetch->partitions[j]->error_code, 0);
        cr_assert_eq(r.payload_len, 0);
        it_resp_free(&r);
    }
    close_conns(f, NPOLL);
    /* Clean markers everywhere, and a restart that scans nothing. */
    char name[32], path[256];
    struct stat sb;
    for (int p = 0; p < NBUSY + NR; p++) {
        snprintf(name, sizeof(name), "%s-%d", p < NBUSY ? "busy" : "idle",
                 p < NBUSY ? p : p - NBUSY);
        snprintf(path, sizeof(path), "%s/%s/clean-shutdown", B.data_dir, name);
        cr_assert_eq(stat(path, &sb), 0, "%s missing after SIGTERM (owner %u)", path,
                     p < NBUSY ? owner_of("busy", p) : owner_of("idle", p - NBUSY));
    }
    size_t log_from = it_broker_log_size(&B);
    itf_restart(&B);
    for (int p = 0; p < NBUSY + NR; p++) {
        snprintf(name, sizeof(name), "%s-%d", p < NBUSY ? "busy" : "idle",
                 p < NBUSY ? p : p - NBUSY);
        cr_assert(open_line_has(&B, log_from, name, " clean=true "), "%s was not opened clean",
                  name);
        cr_assert(open_line_has(&B, log_from, name, " scanned_bytes=0 "),
                  "%s was scanned after a clean shutdown", name);
    }
    verify_acked(&B, &s);
    cr_log_info("%zu batches acknowledged before SIGTERM", n);
    stream_free(&s);
    itf_stop_clean(&B);
    itf_passed = true;
}

// kill -9 at a seeded moment of a multi-partition acks=-1 stream from 4
// connections with log.flush=always, twice: after each restart every
// acknowledged batch is there at its offset, byte for byte, in contiguous
// verified logs.
Test(reactors, kill9_keeps_acked_with_flush_always)
{
    static const char *const args[] = {"--reactors", "4", "--override", "log.flush=always", NULL};
    itf_start_over(&B, args);
    it_conn *admin = itf_connect(&B);
    enum { NCRASH = 8 };
    itf_create(admin, "crash", NCRASH, "flush=always");
    it_conn_close(admin);
    stream s = {.topic = "crash", .n_parts = NCRASH};
    s.acked = calloc(NCRASH, sizeof(*s.acked));
    cr_assert_not_null(s.acked);
    uint64_t rng = 0x7eac7025;
    for (int round = 0; round < 2; round++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int64_t delay = 250 + (int64_t)((rng >> 33) % 500);
        size_t n = stream_run(&s, &B, it_now_ms() + delay, SIGKILL);
        cr_assert_gt(n, 0, "round %d: nothing acknowledged before the kill at %" PRId64 " ms",
                     round, delay);
        int st = wait_exit(&B, 10000);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "runneld did not die of SIGKILL");
        size_t log_from = it_broker_log_size(&B);
        itf_restart(&B);
        /* The crash path was taken: partitions were opened unclean. */
        cr_assert(open_line_has(&B, log_from, "crash-0", " clean=false "),
                  "round %d: crash-0 was not recovered after kill -9", round);
        verify_acked(&B, &s);
        cr_log_info("round %d: killed after %" PRId64 " ms, %zu acknowledged so far", round, delay,
                    s.n_acked);
    }
    cr_assert_eq(s.n_errors, 0, "%u produce entries carried an error", s.n_errors);
    stream_free(&s);
    itf_stop_clean(&B);
    itf_passed = true;
}
