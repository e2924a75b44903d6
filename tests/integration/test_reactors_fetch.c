/*
 * test_reactors_fetch.c — Fetch and ListOffsets across partition owners in a
 * --reactors 4 runneld: Fetch limits giving byte for byte what a --reactors 1
 * broker gives, long polls waking on data at any owner and summing min_bytes
 * over owners, ListOffsets split and merged, slow readers of split answers,
 * and clients departing with polls parked. Fixture: reactors_helpers.h.
 */
#include "reactors_helpers.h"

TestSuite(reactors_fetch, .init = setup, .fini = teardown, .timeout = 60);

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
Test(reactors_fetch, fetch_limits_match_one_reactor)
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
Test(reactors_fetch, long_poll_across_owners)
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
Test(reactors_fetch, long_poll_min_bytes_summed_across_owners)
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
Test(reactors_fetch, list_offsets_across_owners)
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
    finish_clean(c, NC);
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

Test(reactors_fetch, slow_reader_of_split_fetches)
{
    slow_reader();
    itf_stop_clean(&B);
    itf_passed = true;
}

// The same with zero-copy sends (socket.send.zerocopy.bytes=65536: sendmsg_zc,
// pages held until the kernel's notification): every answer complete and
// identical, and the held slices released (ASan checks runneld's exit).
Test(reactors_fetch, slow_reader_with_zero_copy_sends)
{
    static const char *const args[] = {"--reactors", "4", "--override",
                                       "socket.send.zerocopy.bytes=65536", NULL};
    itf_start_over(&B, args);
    slow_reader();
    itf_stop_clean(&B);
    itf_passed = true;
}

// Clients that close their connections with long polls parked across owners
// leave nothing behind: produces then wake the orphaned parts, other clients
// are served as before, and SIGTERM still exits 0 within 3 s (ASan: no leak,
// no use after free).
Test(reactors_fetch, departed_clients_with_parked_split_fetches)
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
