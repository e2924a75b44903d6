/*
 * test_reactors_produce.c — Produce split across partition owners in a
 * --reactors 4 runneld: offsets and bytes read back by every connection,
 * acks=0, idempotent retries recognised by every owner, pipelined produces
 * keeping each partition's order, and a topic deleted during split produces.
 * Fixture and the model of what holds: reactors_helpers.h.
 */
#include "reactors_helpers.h"

TestSuite(reactors_produce, .init = setup, .fini = teardown, .timeout = 60);

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
Test(reactors_produce, produce_split_offsets_and_read_back)
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
    finish_clean(c, NC);
}

// acks=0 Produce split across owners: no answer comes back (the next frame
// on each connection answers the next request), yet every batch lands, once,
// and every connection reads them back byte for byte.
Test(reactors_produce, produce_split_acks0)
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
    finish_clean(c, NC);
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
Test(reactors_produce, idempotent_retries_across_owners)
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
    finish_clean(c, NC);
}

/* ---- Pipelining, deletes and departures across owners ------------------------------ */

// Pipelined Produce requests on 4 connections, 40 each, touching 1 to 4 of 8
// partitions (local, forwarded or split, depending where each connection
// landed): on every connection each partition's offsets grow in the order
// the requests were sent, and every log holds exactly what was acknowledged.
Test(reactors_produce, pipelined_produce_keeps_partition_order)
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
Test(reactors_produce, delete_topic_during_split_produce)
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
