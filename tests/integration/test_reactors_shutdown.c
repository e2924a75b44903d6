/*
 * test_reactors_shutdown.c — stopping a --reactors 4 runneld under a produce
 * stream: SIGTERM drains every reactor (parked polls answered, acknowledged
 * records kept, clean markers written); kill -9 with log.flush=always loses
 * no acknowledged record. Fixture: reactors_helpers.h.
 */
#include "reactors_helpers.h"

TestSuite(reactors_shutdown, .init = setup, .fini = teardown, .timeout = 60);

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
Test(reactors_shutdown, sigterm_drains_every_reactor)
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
    int st = wait_exit(&B, 20000);
    int64_t took = it_now_ms() - t_term;
    char sbuf[32];
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        it_broker_dump_log(&B, 16384);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runneld ended with %s",
              itf_status_str(st, sbuf, sizeof(sbuf)));
    cr_assert_lt(took, 15000, "graceful shutdown took %" PRId64 " ms", took);
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
Test(reactors_shutdown, kill9_keeps_acked_with_flush_always)
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
        int st = wait_exit(&B, 20000);
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
