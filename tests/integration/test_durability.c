/*
 * test_durability.c — what an acknowledgement promises, with real processes.
 *
 * With log.flush=always an acks=-1 answer means the batch is on disk
 * (DESIGN §4). A producer keeps several Produce requests in flight, alternating
 * between two partitions, and remembers every acknowledged (partition,
 * base_offset, batch bytes). Then:
 *
 *   - crash: runneld is killed with SIGKILL at a moment drawn from a seeded
 *     generator, restarted on the same data directory (recovery scans the
 *     tails), and every acknowledged batch must be there, at its offset, in
 *     order, byte for byte except the two fields the leader stamps; the log
 *     must be contiguous and every batch must verify. Three rounds, so later
 *     rounds also check what earlier recoveries kept.
 *
 *   - graceful: SIGTERM while producing; runneld must finish what is in
 *     flight and exit 0 promptly, leave data-dir/<topic>-<p>/clean-shutdown in
 *     every partition, and the next start must open them clean (no recovery
 *     scan), with every acknowledged batch there.
 *
 *   - held sync: with the fdatasyncs of runneld held by a preloaded shim
 *     (hold_sync.c), a written batch stays above the high watermark, so a
 *     consumer must not be served it and the produce must not be acked.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

static it_broker B;

static void setup(void)
{
    static const char *const args[] = {"--override", "log.flush=always", NULL};
    itf_start(&B, args);
}

static void teardown(void)
{
    itf_teardown(&B);
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 120);

#define N_PARTS  2
#define INFLIGHT 8

typedef struct acked {
    int part;
    int64_t base;
    uint8_t *batch;
    size_t len;
} acked;

typedef struct sent {
    uint32_t cid;
    int part;
    uint8_t *batch;
    size_t len;
} sent;

typedef struct producer {
    const char *topic;
    uint64_t seq;
    acked *acks;
    size_t n_acks, cap;
    sent q[INFLIGHT];
    int n_q;
    unsigned n_errors; /* answers with an error: not acknowledged */
} producer;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void record_ack(producer *p, int part, int64_t base, uint8_t *batch, size_t len)
{
    if (p->n_acks == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->acks = realloc(p->acks, p->cap * sizeof(*p->acks));
        cr_assert_not_null(p->acks);
    }
    p->acks[p->n_acks++] = (acked){.part = part, .base = base, .batch = batch, .len = len};
}

/* Produce with acks=-1 on a new connection, INFLIGHT requests at a time,
 * until the broker goes away; at kill_at_ms (it_now_ms clock) send it sig.
 * Returns the number of batches acknowledged in this call. */
static size_t produce_until_gone(producer *p, int64_t kill_at_ms, int sig)
{
    it_conn *c = itf_connect(&B);
    size_t acked_before = p->n_acks;
    bool killed = false, sending = true;
    int64_t give_up = it_now_ms() + 60000;
    for (;;) {
        cr_assert_lt(it_now_ms(), give_up, "the producer never saw the broker go away");
        if (!killed && it_now_ms() >= kill_at_ms) {
            cr_assert_eq(kill(B.pid, sig), 0);
            killed = true;
        }
        while (sending && p->n_q < INFLIGHT) {
            sent *s = &p->q[p->n_q];
            char tag[48];
            snprintf(tag, sizeof(tag), "rec-%" PRIu64, p->seq);
            s->part = (int)(p->seq % N_PARTS);
            s->batch = itf_batch(tag, 1 + (int)(p->seq % 5), 1000 + (int64_t)p->seq, &s->len);
            p->seq++;
            it_produce_part pp = {p->topic, s->part, s->batch, s->len};
            if (it_produce_send(c, &pp, 1, -1, &s->cid) < 0) {
                free(s->batch);
                sending = false;
                break;
            }
            p->n_q++;
        }
        if (p->n_q == 0)
            break;
        it_resp r;
        int rc = it_conn_recv(c, RUNNEL__API__PRODUCE, &r, killed ? 15000 : 20);
        if (rc == -ETIMEDOUT && !killed)
            continue;
        if (rc < 0)
            break; /* the broker is gone: what is in flight is not acknowledged */
        int k = 0;
        while (k < p->n_q && p->q[k].cid != r.hdr->correlation_id)
            k++;
        cr_assert_lt(k, p->n_q, "answer to unknown correlation id %u", r.hdr->correlation_id);
        sent s = p->q[k];
        memmove(&p->q[k], &p->q[k + 1], (size_t)(p->n_q - k - 1) * sizeof(sent));
        p->n_q--;
        Runnel__ProducePartitionResponse *pr = r.hdr->produce && r.hdr->produce->n_partitions == 1
                                                   ? r.hdr->produce->partitions[0]
                                                   : NULL;
        if (r.hdr->error_code == 0 && pr && pr->error_code == 0) {
            record_ack(p, s.part, pr->base_offset, s.batch, s.len);
        } else {
            p->n_errors++;
            free(s.batch);
        }
        it_resp_free(&r);
    }
    for (int k = 0; k < p->n_q; k++)
        free(p->q[k].batch);
    p->n_q = 0;
    it_conn_close(c);
    return p->n_acks - acked_before;
}

/* Fetch each partition whole and check every acknowledged batch is there. */
static void verify_acked(const producer *p)
{
    it_conn *c = itf_connect(&B);
    for (int part = 0; part < N_PARTS; part++) {
        /* The whole partition, batch by batch. */
        uint8_t *all = NULL;
        size_t all_len = 0;
        int64_t next = 0, hw = -1;
        for (;;) {
            it_fetch_part fp = {p->topic, part, next, 0};
            it_fetch_opts o = {.max_bytes = 4u << 20};
            it_resp r;
            cr_assert_eq(it_fetch(c, &fp, 1, &o, &r), 0);
            Runnel__FetchPartitionResponse *fr = r.hdr->fetch->partitions[0];
            cr_assert_eq(fr->error_code, 0, "fetch %s-%d at %" PRId64 ": %u", p->topic, part, next,
                         fr->error_code);
            hw = fr->high_watermark;
            const uint8_t *data;
            size_t len;
            it_fetch_data(&r, 0, &data, &len);
            if (len == 0) {
                it_resp_free(&r);
                break;
            }
            for (size_t off = 0; off < len;) {
                rn_batch_header h;
                cr_assert_eq(rn_batch_peek(data + off, len - off, 0, &h), 0);
                cr_assert_eq(rn_batch_verify(data + off, len - off, 0, 0), 0,
                             "batch at offset %" PRId64 " does not verify", h.base_offset);
                cr_assert_eq(h.base_offset, next,
                             "gap or overlap: batch at %" PRId64 ", expected %" PRId64,
                             h.base_offset, next);
                next = h.base_offset + h.last_offset_delta + 1;
                off += rn_batch_size(&h);
            }
            all = realloc(all, all_len + len);
            cr_assert_not_null(all);
            memcpy(all + all_len, data, len);
            all_len += len;
            it_resp_free(&r);
        }
        cr_assert_eq(next, hw, "read up to %" PRId64 ", high watermark %" PRId64, next, hw);

        /* Every acknowledged batch of this partition, in acknowledgement
         * order, which must also be offset order. */
        size_t pos = 0;
        int64_t prev = -1;
        size_t n = 0;
        for (size_t i = 0; i < p->n_acks; i++) {
            const acked *a = &p->acks[i];
            if (a->part != part)
                continue;
            n++;
            cr_assert_gt(a->base, prev, "acks out of offset order");
            prev = a->base;
            rn_batch_header h;
            for (;;) {
                cr_assert_lt(pos, all_len,
                             "%s-%d: acknowledged batch at offset %" PRId64 " is lost", p->topic,
                             part, a->base);
                cr_assert_eq(rn_batch_peek(all + pos, all_len - pos, 0, &h), 0);
                if (h.base_offset >= a->base)
                    break;
                pos += rn_batch_size(&h);
            }
            cr_assert_eq(h.base_offset, a->base,
                         "%s-%d: no batch starts at acknowledged offset %" PRId64, p->topic, part,
                         a->base);
            cr_assert_eq(rn_batch_size(&h), a->len);
            cr_assert_eq(memcmp(all + pos + RN_BATCH_OFF_LENGTH, a->batch + RN_BATCH_OFF_LENGTH, 4),
                         0);
            cr_assert_eq(memcmp(all + pos + RN_BATCH_OFF_MAGIC, a->batch + RN_BATCH_OFF_MAGIC,
                                a->len - RN_BATCH_OFF_MAGIC),
                         0, "%s-%d: batch at %" PRId64 " differs from what was acknowledged",
                         p->topic, part, a->base);
            pos += a->len;
        }
        cr_log_info("%s-%d: %zu acknowledged batches verified, high watermark %" PRId64, p->topic,
                    part, n, hw);
        free(all);
    }
    it_conn_close(c);
}

static void producer_free(producer *p)
{
    for (size_t i = 0; i < p->n_acks; i++)
        free(p->acks[i].batch);
    free(p->acks);
}

/* Wait for the broker to exit on its own; returns its wait status. */
static int wait_exit(int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_broker_alive(&B)) {
        if (it_now_ms() > deadline) {
            it_broker_dump_log(&B, 8192);
            cr_assert_fail("runneld still running %d ms after SIGTERM", timeout_ms);
        }
        usleep(5000);
    }
    return B.status;
}

// kill -9 at a random moment of a pipelined acks=-1 stream, three times over:
// after each restart every acknowledged batch is there, in order, byte-exact.
Test(durability, kill9_keeps_every_acked_batch)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "dur", N_PARTS, "flush=always");
    it_conn_close(c);
    producer p = {.topic = "dur"};
    uint64_t rng = 0x5eed0001;
    for (int round = 0; round < 3; round++) {
        int64_t delay = 150 + (int64_t)(rng_next(&rng) % 600);
        size_t n = produce_until_gone(&p, it_now_ms() + delay, SIGKILL);
        cr_assert_gt(n, 0, "round %d: nothing acknowledged before the kill at %" PRId64 " ms",
                     round, delay);
        int st = 0;
        while (it_broker_alive(&B))
            usleep(2000);
        st = B.status;
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "runneld did not die of SIGKILL");
        size_t log_from = it_broker_log_size(&B);
        itf_restart(&B);
        /* The crash path was taken: the partitions were opened unclean. */
        cr_assert(it_broker_log_contains(&B, log_from, "partition=dur-0 clean=false"),
                  "round %d: restart after kill -9 did not recover dur-0", round);
        verify_acked(&p);
        cr_log_info("round %d: killed after %" PRId64 " ms, %zu acknowledged so far", round, delay,
                    p.n_acks);
    }
    cr_assert_eq(p.n_errors, 0, "%u produce answers carried an error", p.n_errors);
    producer_free(&p);
    itf_pass(&B, NULL);
}

// SIGTERM while producing: runneld finishes what is in flight, exits 0
// within a few seconds, writes the clean-shutdown marker of every partition,
// and the next start opens them without a recovery scan, acks intact.
Test(durability, sigterm_is_graceful)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "grace", N_PARTS, NULL);
    it_conn_close(c);
    producer p = {.topic = "grace"};
    int64_t t_term = it_now_ms() + 300;
    size_t n = produce_until_gone(&p, t_term, SIGTERM);
    cr_assert_gt(n, 0);
    int st = wait_exit(20000);
    int64_t took = it_now_ms() - t_term;
    char s[32];
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        it_broker_dump_log(&B, 16384);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runneld ended with %s",
              itf_status_str(st, s, sizeof(s)));
    cr_assert_lt(took, 15000, "graceful shutdown took %" PRId64 " ms", took);
    for (int part = 0; part < N_PARTS; part++) {
        char path[256];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/grace-%d/clean-shutdown", B.data_dir, part);
        cr_assert_eq(stat(path, &sb), 0, "%s missing after SIGTERM", path);
    }
    size_t log_from = it_broker_log_size(&B);
    itf_restart(&B);
    for (int part = 0; part < N_PARTS; part++) {
        char want[64], unwanted[64];
        snprintf(want, sizeof(want), "partition=grace-%d clean=true", part);
        snprintf(unwanted, sizeof(unwanted), "partition=grace-%d clean=false", part);
        cr_assert(it_broker_log_contains(&B, log_from, want), "no '%s' after restart", want);
        cr_assert_not(it_broker_log_contains(&B, log_from, unwanted),
                      "grace-%d was recovered after a clean shutdown", part);
    }
    verify_acked(&p);
    cr_assert_eq(p.n_errors, 0, "%u produce answers carried an error", p.n_errors);
    producer_free(&p);
    itf_pass(&B, NULL);
}

// SIGTERM answers a parked long-poll Fetch at once (empty, no error) instead
// of holding the shutdown until its max_wait_ms, and runneld exits 0 promptly.
Test(durability, sigterm_answers_parked_fetch)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "parked", 1, NULL);
    it_fetch_part fp = {"parked", 0, 0, 0};
    it_fetch_opts o = {.max_wait_ms = 30000, .min_bytes = 1};
    uint32_t cid;
    cr_assert_eq(it_fetch_send(c, &fp, 1, &o, &cid), 0);
    usleep(200 * 1000);
    int64_t t0 = it_now_ms();
    cr_assert_eq(kill(B.pid, SIGTERM), 0);
    it_resp r;
    int rc = it_conn_recv(c, RUNNEL__API__FETCH, &r, 15000);
    cr_assert_eq(rc, 0, "the parked fetch got no answer: %s", strerror(-rc));
    cr_assert_eq(r.hdr->correlation_id, cid);
    cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, 0);
    cr_assert_eq(r.payload_len, 0);
    it_resp_free(&r);
    int64_t answered = it_now_ms() - t0;
    int st = wait_exit(20000);
    int64_t took = it_now_ms() - t0;
    char s[32];
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runneld ended with %s",
              itf_status_str(st, s, sizeof(s)));
    cr_assert_lt(answered, 15000, "the parked fetch was answered %" PRId64 " ms after SIGTERM",
                 answered);
    cr_assert_lt(took, 15000, "graceful shutdown took %" PRId64 " ms", took);
    it_conn_close(c);
    itf_passed = true;
}

/* ---- The high watermark while a sync is held -------------------------------- */

/* One byte in the hold FIFO releases the held fdatasyncs (hold_sync.c). */
static void hold_release(int fd)
{
    cr_assert_eq(write(fd, "x", 1), 1, "write to the hold FIFO: %s", strerror(errno));
}

/* Drain it: fdatasyncs submitted from now on are held. */
static void hold_start(int fd)
{
    char buf[16];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* Fetch partition 0 of topic from offset as a consumer. */
static Runnel__FetchPartitionResponse *fetch_one(it_conn *c, const char *topic, int64_t offset,
                                                 it_resp *r, const uint8_t **data, size_t *len)
{
    it_fetch_part fp = {topic, 0, offset, 0};
    cr_assert_eq(it_fetch(c, &fp, 1, NULL, r), 0);
    Runnel__FetchPartitionResponse *fr = r->hdr->fetch->partitions[0];
    cr_assert_eq(fr->error_code, 0, "fetch %s at %" PRId64 ": %u", topic, offset, fr->error_code);
    it_fetch_data(r, 0, data, len);
    return fr;
}

// flush=always: while the fdatasync of a written batch is held, Fetch and ListOffsets report a
// high watermark below the log end, a consumer is served nothing above it and the produce is
// not acked; once the sync completes the produce is acked and the batch served.
Test(durability, consumer_stops_at_high_watermark_while_sync_held)
{
    /* A broker of its own, with the shim that holds fdatasyncs on request. */
    itf_stop_clean(&B);
    it_broker_destroy(&B);
    static const char *const args[] = {"--override", "log.flush=always", NULL};
    cr_assert_eq(it_broker_init(&B, args), 0);
    char fifo[160], shim[4096], env[4200];
    snprintf(fifo, sizeof(fifo), "%s/hold-sync", B.root);
    cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo %s: %s", fifo, strerror(errno));
    int hold = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    cr_assert_geq(hold, 0, "open %s: %s", fifo, strerror(errno));
    hold_release(hold); /* start-up and topic creation sync as usual */
    ssize_t n = readlink("/proc/self/exe", shim, sizeof(shim) - 32);
    cr_assert_gt(n, 0);
    shim[n] = '\0';
    char *slash = strrchr(shim, '/');
    cr_assert_not_null(slash);
    strcpy(slash + 1, "librn_hold_sync.so");
    cr_assert_eq(access(shim, R_OK), 0, "%s is not built", shim);
    snprintf(env, sizeof(env), "LD_PRELOAD=%s", shim);
    cr_assert_eq(it_broker_setenv(&B, env), 0);
    snprintf(env, sizeof(env), "RN_TEST_HOLD_SYNC=%s", fifo);
    cr_assert_eq(it_broker_setenv(&B, env), 0);
    /* The sanitizer build: a preloaded library comes before libasan. */
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(env, sizeof(env), "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    cr_assert_eq(it_broker_setenv(&B, env), 0);
    itf_restart(&B);

    it_conn *c = itf_connect(&B), *p = itf_connect(&B);
    itf_create(c, "held", 1, NULL);
    size_t l1, l2;
    uint8_t *b1 = itf_batch("synced", 2, 1000, &l1), *b2 = itf_batch("held", 5, 2000, &l2);
    int64_t base = -1;
    cr_assert_eq(it_produce_one(p, "held", 0, b1, l1, -1, &base), 0);
    cr_assert_eq(base, 0);
    it_resp r;
    const uint8_t *data;
    size_t len;
    Runnel__FetchPartitionResponse *fr = fetch_one(c, "held", 0, &r, &data, &len);
    cr_assert_eq(fr->high_watermark, 2);
    cr_assert_eq(fr->log_end_offset, 2);
    cr_assert_eq(len, l1);
    it_resp_free(&r);

    /* Hold, produce, and wait (bounded) until the batch is written: the log
     * end moves past it while its fdatasync waits. */
    hold_start(hold);
    it_produce_part pp = {"held", 0, b2, l2};
    uint32_t cid;
    cr_assert_eq(it_produce_send(p, &pp, 1, -1, &cid), 0);
    int64_t leo = 2;
    for (int i = 0; i < 500 && leo == 2; i++) {
        fr = fetch_one(c, "held", 2, &r, &data, &len);
        leo = fr->log_end_offset;
        if (leo == 2) {
            it_resp_free(&r);
            usleep(10 * 1000);
        }
    }
    cr_assert_eq(leo, 7, "the held batch was never written (log end %" PRId64 ")", leo);
    cr_assert_eq(fr->high_watermark, 2,
                 "high watermark %" PRId64
                 " while the fdatasync of [2, 7) is held (log end %" PRId64 ")",
                 fr->high_watermark, leo);
    cr_assert_eq(len, 0, "a consumer was served %zu bytes above the high watermark", len);
    it_resp_free(&r);
    int64_t latest = -1;
    cr_assert_eq(it_list_offsets(c, "held", 0, -1, &latest, NULL), 0);
    cr_assert_eq(latest, 2, "ListOffsets latest %" PRId64 " with the sync held", latest);
    /* DescribeTopic (what `topic describe`, lag and the gateway show) too. */
    cr_assert_eq(it_describe(c, "held", &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    cr_assert_eq(r.hdr->describe_topic->n_partitions, 1);
    cr_assert_eq(r.hdr->describe_topic->partitions[0]->high_watermark, 2,
                 "DescribeTopic high watermark %" PRId64 " with the sync held",
                 r.hdr->describe_topic->partitions[0]->high_watermark);
    cr_assert_eq(r.hdr->describe_topic->partitions[0]->log_end_offset, 7);
    it_resp_free(&r);
    cr_assert_eq(it_conn_recv(p, RUNNEL__API__PRODUCE, &r, 200), -ETIMEDOUT,
                 "the produce was acked before its fdatasync completed");

    /* Release: the ack comes, and the batch is served. */
    hold_release(hold);
    cr_assert_eq(it_conn_recv(p, RUNNEL__API__PRODUCE, &r, 10000), 0, "no ack after the release");
    cr_assert_eq(r.hdr->correlation_id, cid);
    cr_assert_eq(r.hdr->error_code, 0);
    cr_assert_eq(r.hdr->produce->partitions[0]->error_code, 0);
    cr_assert_eq(r.hdr->produce->partitions[0]->base_offset, 2);
    it_resp_free(&r);
    fr = fetch_one(c, "held", 2, &r, &data, &len);
    cr_assert_eq(fr->high_watermark, 7);
    cr_assert_eq(fr->log_end_offset, 7);
    cr_assert_eq(len, l2);
    cr_assert_eq(rn_batch_verify(data, len, 0, 0), 0);
    it_resp_free(&r);

    free(b1);
    free(b2);
    it_conn_close(p);
    it_conn_close(c);
    itf_stop_clean(&B);
    close(hold);
    itf_passed = true;
}
