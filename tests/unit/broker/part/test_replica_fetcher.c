/*
 * test_replica_fetcher.c — replication end to end in one process, driven
 * through the seam the controller will use (rn_partition_become_leader /
 * _follower / _isr_committed): two brokers' copies of one partition, each on
 * its own log, a follower's fetcher (part/replica_fetcher.c) and a real
 * peer link (net/peer.c) over a transport this test can cut and heal.
 *
 * The far end of the link is a small in-memory leader: it decodes each
 * request frame and answers Fetch and OffsetsForLeaderEpoch for the
 * partition it serves with the same partition calls api/fetch.c and
 * api/offsets_for_leader_epoch.c make (epoch fencing, replica check, the
 * follower's fetch into the follower table, reads up to the log end), and
 * encodes the answer as a frame. Every loop is bounded in rounds.
 *
 * What it proves: a follower converges to a byte-identical log; the
 * leader's high watermark is the ISR's minimum and waits for the follower;
 * a cut link stops the high watermark and a healed one resumes; after a
 * leader change, a deposed leader's divergent tail is truncated (multi-round
 * KIP-101/279 over the real OffsetsForLeaderEpoch answer) and the replicas
 * end identical; stale and future epochs are fenced; producer state follows
 * the leader's; a partition whose appends are in flight does not hold the
 * others' fetch in the leader's long poll.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/part/partitions.h"
#include "broker/part/replica_fetcher.h"
#include "broker/part/throttle.h"
#include "protocol/batch.h"
#include "protocol/bytes.h"
#include "protocol/frame.h"
#include "storage/leader_epoch.h"

#define ROUNDS 200

static rn_io *io;
static char root[64];

/* ---- Partitions without a broker ---------------------------------------------------------- */

static rn_partition *part_open_on(const char *name, rn_io *on)
{
    rn_partition *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    p->topic = strdup("t");
    p->ps = rn_producer_state_new();
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    rn_log_config c;
    rn_log_config_default(&c);
    c.flush = RN_FLUSH_NEVER; /* durability is not under test; speed on a loaded machine is */
    c.lazy_epochs = true;     /* as the broker opens partitions */
    cr_assert_eq(rn_log_open(&p->log, on, dir, name, &c, NULL), 0);
    return p;
}

static rn_partition *part_open(const char *name)
{
    return part_open_on(name, io);
}

static void part_close(rn_partition *p)
{
    rn_log_abandon(p->log);
    rn_producer_state_free(p->ps);
    rn_replica_state_free(p->rs);
    free(p->topic);
    free(p);
}

static unsigned n_proposals;
static void on_propose(void *arg, const int32_t *isr, unsigned n)
{
    (void)arg;
    (void)isr;
    (void)n;
    n_proposals++;
}

static const int32_t both[] = {1, 2};

static void lead(rn_partition *p, int32_t self, int32_t epoch, int min_isr)
{
    rn_replica_config cfg = {.lag_time_max_ms = 30000, .min_insync = min_isr};
    cr_assert_eq(
        rn_partition_become_leader(p, self, epoch, both, 2, both, 2, &cfg, on_propose, NULL), 0);
}

/* Produce n batches of 3 records to p (its leader), as the produce path
 * appends them: with p's leader epoch. producer_id >= 0: idempotent. */
static void produce(rn_partition *p, int n, int64_t producer_id, int32_t *seq)
{
    rn_batch_builder_opts o = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    for (int i = 0; i < n; i++) {
        if (producer_id >= 0) {
            o.producer_id = producer_id;
            o.producer_epoch = 0;
            o.base_sequence = *seq;
            *seq += 3;
        }
        rn_batch_builder *b;
        cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
        for (int k = 0; k < 3; k++) {
            char v[32];
            int len =
                snprintf(v, sizeof(v), "%s-%d-%d-%d", rn_log_name(p->log), p->leader_epoch, i, k);
            cr_assert_eq(rn_batch_builder_add(b, 1000 + i, NULL, 0, v, (size_t)len, NULL, 0), 0);
        }
        uint8_t *batch;
        size_t len;
        cr_assert_eq(rn_batch_builder_finish(b, &batch, &len), 0);
        rn_batch_builder_free(b);
        int64_t base;
        cr_assert_eq(rn_log_append_sync(p->log, batch, len, p->leader_epoch, &base), 0);
        free(batch);
        rn_partition_wake(p);
    }
}

/* The whole log's bytes. */
static uint8_t *log_bytes(rn_partition *p, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    int64_t at = rn_log_start_offset(p->log), end = rn_log_end_offset(p->log);
    while (at < end) {
        rn_slice s;
        cr_assert_eq(rn_log_read(p->log, at, 1 << 20, end, &s), 0);
        cr_assert_gt(s.len, 0);
        cr_assert_leq(n + s.len, cap);
        memcpy(buf + n, s.data, s.len);
        n += s.len;
        at = s.next_offset;
        rn_slice_release(&s);
    }
    *len = n;
    return buf;
}

static void assert_identical(rn_partition *a, rn_partition *b)
{
    cr_assert_eq(rn_log_end_offset(a->log), rn_log_end_offset(b->log));
    size_t la, lb;
    uint8_t *ba = log_bytes(a, &la), *bb = log_bytes(b, &lb);
    cr_assert_eq(la, lb);
    cr_assert(memcmp(ba, bb, la) == 0, "replicas differ");
    free(ba);
    free(bb);
    const rn_leader_epochs *ea = rn_log_leader_epochs(a->log), *eb = rn_log_leader_epochs(b->log);
    /* Same epochs for the records both hold (a new leader's own, still
     * empty, epoch may be only in its cache). */
    unsigned n = rn_leader_epochs_count(eb);
    for (unsigned i = 0; i < n; i++) {
        rn_leader_epoch_entry x = rn_leader_epochs_get(ea, i), y = rn_leader_epochs_get(eb, i);
        if (y.start_offset >= rn_log_end_offset(b->log))
            break;
        cr_assert_eq(x.epoch, y.epoch);
        cr_assert_eq(x.start_offset, y.start_offset);
    }
}

/* ---- The in-memory leader at the far end of the link -------------------------------------- */

typedef struct mlink {
    rn_partition *serves;
    rn_partition *serves2; /* another partition of the topic (NULL: none) */
    uint32_t last_max_wait; /* of the last Fetch */
    unsigned last_n_parts;
    bool cut;
    uint8_t in[1 << 16];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_cap;
    int64_t now_ms;
    unsigned fenced, unknown, epoch_asks;
} mlink;

static void out_put(mlink *l, const void *b, size_t n)
{
    if (l->out_len + n > l->out_cap) {
        l->out_cap = (l->out_len + n) * 2;
        l->out = realloc(l->out, l->out_cap);
        cr_assert_not_null(l->out);
    }
    memcpy(l->out + l->out_len, b, n);
    l->out_len += n;
}

static void respond(mlink *l, Runnel__ResponseHeader *h, const void *payload, size_t payload_len)
{
    uint8_t *frame;
    size_t len;
    cr_assert_eq(rn_frame_encode_alloc(&h->base, payload_len, &frame, &len), 0);
    out_put(l, frame, len);
    if (payload_len)
        out_put(l, payload, payload_len);
    free(frame);
}

/* The partition l serves under that name, or NULL. */
static rn_partition *served(mlink *l, const char *topic, int32_t partition)
{
    rn_partition *ps[2] = {l->serves, l->serves2};
    for (int i = 0; i < 2; i++)
        if (ps[i] && strcmp(topic, ps[i]->topic) == 0 && partition == ps[i]->id)
            return ps[i];
    return NULL;
}

static uint32_t leader_checks(mlink *l, int32_t replica_id, int32_t epoch, const char *topic,
                              int32_t partition)
{
    rn_partition *p = served(l, topic, partition);
    if (!p)
        return RN_E_UNKNOWN_TOPIC;
    int rc = rn_partition_check_epoch(p, epoch);
    if (rc == 0)
        rc = replica_id >= 0 ? rn_partition_check_replica(p, replica_id)
                             : rn_partition_check_leader(p);
    if (rc == -RN_E_FENCED_LEADER_EPOCH)
        l->fenced++;
    if (rc == -RN_E_UNKNOWN_LEADER_EPOCH)
        l->unknown++;
    return rc < 0 ? (uint32_t)-rc : 0;
}

static void serve_fetch(mlink *l, Runnel__RequestHeader *hdr)
{
    Runnel__FetchRequest *fr = hdr->fetch;
    size_t n = fr->n_partitions;
    l->last_max_wait = fr->max_wait_ms;
    l->last_n_parts = (unsigned)n;
    Runnel__FetchPartitionResponse *resp = calloc(n, sizeof(*resp));
    Runnel__FetchPartitionResponse **ptrs = calloc(n, sizeof(*ptrs));
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    for (size_t i = 0; i < n; i++) {
        Runnel__FetchPartition *fp = fr->partitions[i];
        Runnel__FetchPartitionResponse *r = &resp[i];
        runnel__fetch_partition_response__init(r);
        ptrs[i] = r;
        r->topic = fp->topic;
        r->partition = fp->partition;
        r->error_code =
            leader_checks(l, fr->replica_id, fp->current_leader_epoch, fp->topic, fp->partition);
        if (r->error_code)
            continue;
        rn_partition *p = served(l, fp->topic, fp->partition);
        /* As api/fetch.c: the follower's offset into the table first. */
        cr_assert_eq(rn_partition_follower_fetched(p, fr->replica_id, fp->fetch_offset, l->now_ms),
                     0);
        r->high_watermark = rn_partition_high_watermark(p);
        r->log_start_offset = rn_log_start_offset(p->log);
        r->log_end_offset = rn_log_end_offset(p->log);
        if (fp->fetch_offset < r->log_start_offset || fp->fetch_offset > r->log_end_offset) {
            r->error_code = RN_E_OFFSET_OUT_OF_RANGE;
            continue;
        }
        rn_slice s;
        cr_assert_eq(
            rn_log_read(p->log, fp->fetch_offset, fp->partition_max_bytes, r->log_end_offset, &s),
            0);
        if (s.len) {
            payload = realloc(payload, payload_len + s.len);
            memcpy(payload + payload_len, s.data, s.len);
            payload_len += s.len;
            r->bytes_len = (uint32_t)s.len;
            rn_slice_release(&s);
        }
    }
    Runnel__FetchResponse body = RUNNEL__FETCH_RESPONSE__INIT;
    body.n_partitions = n;
    body.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = hdr->correlation_id;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    h.fetch = &body;
    respond(l, &h, payload, payload_len);
    free(payload);
    free(resp);
    free(ptrs);
}

static void serve_epochs(mlink *l, Runnel__RequestHeader *hdr)
{
    Runnel__OffsetsForLeaderEpochRequest *er = hdr->offsets_for_leader_epoch;
    size_t n = er->n_partitions;
    l->epoch_asks++;
    Runnel__OffsetsForLeaderEpochPartitionResponse *resp = calloc(n, sizeof(*resp));
    Runnel__OffsetsForLeaderEpochPartitionResponse **ptrs = calloc(n, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++) {
        Runnel__OffsetsForLeaderEpochPartition *ep = er->partitions[i];
        Runnel__OffsetsForLeaderEpochPartitionResponse *r = &resp[i];
        runnel__offsets_for_leader_epoch_partition_response__init(r);
        ptrs[i] = r;
        r->topic = ep->topic;
        r->partition = ep->partition;
        r->leader_epoch = -1;
        r->end_offset = -1;
        r->error_code = leader_checks(l, -1, ep->current_leader_epoch, ep->topic, ep->partition);
        if (!r->error_code)
            cr_assert_eq(rn_log_end_offset_for_epoch(served(l, ep->topic, ep->partition)->log,
                                                     ep->leader_epoch,
                                                     &r->leader_epoch, &r->end_offset),
                         0);
    }
    Runnel__OffsetsForLeaderEpochResponse body = RUNNEL__OFFSETS_FOR_LEADER_EPOCH_RESPONSE__INIT;
    body.n_partitions = n;
    body.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = hdr->correlation_id;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH;
    h.offsets_for_leader_epoch = &body;
    respond(l, &h, NULL, 0);
    free(resp);
    free(ptrs);
}

/* Answer every whole request frame received so far. */
static void serve(mlink *l)
{
    while (l->in_len >= 8) {
        uint32_t frame_len = rn_get_be32(l->in), header_len = rn_get_be32(l->in + 4);
        if (l->in_len < 4 + (size_t)frame_len)
            return;
        rn_frame f = {.header = l->in + 8,
                      .header_len = header_len,
                      .payload = l->in + 8 + header_len,
                      .payload_len = frame_len - 4 - header_len};
        rn_frame_request req;
        char err[256];
        cr_assert_eq(rn_frame_request_decode(&req, &f, NULL, err, sizeof(err)), 0, "%s", err);
        if (req.api == RUNNEL__API__FETCH)
            serve_fetch(l, req.hdr);
        else if (req.api == RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH)
            serve_epochs(l, req.hdr);
        else
            cr_assert_fail("unexpected api %d", req.api);
        rn_frame_request_fini(&req);
        size_t used = 4 + (size_t)frame_len;
        memmove(l->in, l->in + used, l->in_len - used);
        l->in_len -= used;
    }
}

static int t_connect(void *ctx, const char *host, const char *port, int timeout_ms)
{
    mlink *l = ctx;
    (void)host;
    (void)port;
    (void)timeout_ms;
    if (l->cut)
        return -ECONNREFUSED;
    l->in_len = l->out_len = 0;
    return 42;
}

static int t_send(void *ctx, int fd, const void *buf, size_t len)
{
    mlink *l = ctx;
    (void)fd;
    if (l->cut)
        return -EPIPE;
    cr_assert_leq(l->in_len + len, sizeof(l->in));
    memcpy(l->in + l->in_len, buf, len);
    l->in_len += len;
    serve(l);
    return 0;
}

static ssize_t t_recv(void *ctx, int fd, void *buf, size_t len, int timeout_ms)
{
    mlink *l = ctx;
    (void)fd;
    (void)timeout_ms;
    if (l->cut)
        return -ECONNRESET;
    if (l->out_len == 0)
        return -EAGAIN;
    size_t n = l->out_len < len ? l->out_len : len;
    memcpy(buf, l->out, n);
    memmove(l->out, l->out + n, l->out_len - n);
    l->out_len -= n;
    return (ssize_t)n;
}

static void t_close(void *ctx, int fd)
{
    (void)ctx;
    (void)fd;
}

static const rn_peer_transport mem_transport = {
    .connect = t_connect, .send = t_send, .recv = t_recv, .close = t_close};

/* A follower's fetcher to the broker serving l->serves. */
typedef struct side {
    mlink l;
    rn_peer *peer;
    rn_replica_fetcher *f;
} side;

static void side_open(side *s, int32_t self, rn_partition *leader, rn_partition *follower)
{
    memset(s, 0, sizeof(*s));
    s->l.serves = leader;
    s->l.now_ms = 1000;
    cr_assert_eq(rn_peer_new(&s->peer, "127.0.0.1:1", &mem_transport, &s->l), 0);
    rn_replica_fetcher_config cfg;
    rn_replica_fetcher_config_default(&cfg);
    cfg.self_id = self;
    cfg.part_bytes = 4096; /* several rounds per catch-up */
    cr_assert_eq(rn_replica_fetcher_new(&s->f, s->peer, &cfg), 0);
    cr_assert_eq(rn_replica_fetcher_add(s->f, follower), 0);
}

static void side_close(side *s)
{
    cr_assert_eq(rn_replica_fetcher_busy(s->f), 0);
    rn_replica_fetcher_free(s->f);
    rn_peer_free(s->peer);
    free(s->l.out);
}

/* Rounds (and the follower log's appends, run on its io) until follower
 * ends where leader does and a last round has told the leader so. */
static void catch_up_on(side *s, rn_partition *leader, rn_partition *follower, rn_io *fio)
{
    int i;
    for (i = 0; i < ROUNDS; i++) {
        int rc = rn_replica_fetcher_run_once(s->f, 5000);
        cr_assert_geq(rc, 0, "round %d: %s", i, rn_replica_fetcher_errmsg(s->f));
        while (rn_replica_fetcher_busy(s->f))
            cr_assert_geq(rn_io_run(fio, 1), 0);
        if (rn_log_end_offset(follower->log) == rn_log_end_offset(leader->log) &&
            rn_partition_high_watermark(leader) == rn_log_end_offset(leader->log))
            break;
    }
    cr_assert_lt(i, ROUNDS, "no convergence: %s", rn_replica_fetcher_errmsg(s->f));
    /* One more round carries the leader's high watermark to the follower. */
    cr_assert_geq(rn_replica_fetcher_run_once(s->f, 5000), 0);
}

static void catch_up(side *s, rn_partition *leader, rn_partition *follower)
{
    catch_up_on(s, leader, follower, io);
}

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/rn-repl-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    cr_assert_eq(rn_io_new(&io, 256), 0);
    n_proposals = 0;
}

static void teardown(void)
{
    rn_io_free(io);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(replica_fetcher, .init = setup, .fini = teardown, .timeout = 120);

/* A follower copies the leader byte for byte; the leader's high watermark
 * waits for it (min over the ISR) and then reaches the log end; the
 * follower learns it; idempotent producer state arrives with the batches. */
Test(replica_fetcher, follower_converges_and_hw_follows)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 2);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    int32_t seq = 0;
    produce(a, 40, 7, &seq);
    cr_assert_eq(rn_log_end_offset(a->log), 120);
    cr_assert_eq(rn_partition_high_watermark(a), 0, "the follower has not fetched");
    side s;
    side_open(&s, 2, a, b);
    catch_up(&s, a, b);
    assert_identical(a, b);
    cr_assert_eq(rn_partition_high_watermark(a), 120);
    cr_assert_eq(rn_partition_high_watermark(b), 120);
    cr_assert_eq(rn_producer_state_count(b->ps), 1, "the producer came with its batches");
    side_close(&s);
    part_close(a);
    part_close(b);
}

/* A broker restarted (all of them, say, after a power loss) opens its
 * partitions with no role: the log's own high watermark is everything it
 * held, records no follower may have had. Made leader, it must not take
 * that as the floor of its high watermark (it acknowledged retried batches
 * and showed consumers records a later leader without them replaced:
 * tests/cluster/run power-loss, seed 1401); made follower, it must not
 * show it before its leader says one. Both wait for the ISR. */
Test(replica_fetcher, restarted_replica_knows_no_high_watermark)
{
    rn_partition *a = part_open("a"), *b = part_open("b"), *c = part_open("c");
    int32_t seq = 0;
    produce(a, 10, -1, &seq); /* written before the "restart": role LOCAL */
    produce(c, 4, -1, &seq);
    cr_assert_eq(rn_partition_high_watermark(a), 30, "a single node's own rule while LOCAL");
    lead(a, 1, 1, 2);
    cr_assert_eq(rn_partition_high_watermark(a), 0, "no follower has fetched since the restart");
    cr_assert_eq(rn_partition_become_follower(c, 1, 1), 0);
    cr_assert_eq(rn_partition_high_watermark(c), 0, "the leader has said nothing yet");
    part_close(c);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    side s;
    side_open(&s, 2, a, b);
    catch_up(&s, a, b);
    assert_identical(a, b);
    cr_assert_eq(rn_partition_high_watermark(a), 30);
    cr_assert_eq(rn_partition_high_watermark(b), 30);
    side_close(&s);
    part_close(a);
    part_close(b);
}

/* Cut the link: the follower's rounds fail, the leader keeps appending but
 * its high watermark stays (the ISR still holds the follower); healed, the
 * follower catches up and the high watermark moves to the end. */
Test(replica_fetcher, cut_link_stops_hw_heal_resumes)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 1);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    side s;
    side_open(&s, 2, a, b);
    produce(a, 10, -1, NULL);
    catch_up(&s, a, b);
    cr_assert_eq(rn_partition_high_watermark(a), 30);
    s.l.cut = true;
    produce(a, 10, -1, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_lt(rn_replica_fetcher_run_once(s.f, 1000), 0, "a cut link fails the round");
    cr_assert_neq(rn_replica_fetcher_errmsg(s.f)[0], '\0');
    cr_assert_eq(rn_partition_high_watermark(a), 30, "not past what the follower has");
    cr_assert_eq(rn_log_end_offset(b->log), 30);
    s.l.cut = false;
    catch_up(&s, a, b);
    assert_identical(a, b);
    cr_assert_eq(rn_partition_high_watermark(a), 60);
    side_close(&s);
    part_close(a);
    part_close(b);
}

/* The classic divergence: leader a writes a tail in epoch 1 that b never
 * gets; b is elected in epoch 2 and writes its own; a rejoins as b's
 * follower: a's epoch-1 tail goes (cut where epoch 1 ends on b, one
 * OffsetsForLeaderEpoch round) and a ends identical to b. */
Test(replica_fetcher, divergent_tail_truncated_after_leader_change)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 1);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    side ab; /* b follows a */
    side_open(&ab, 2, a, b);
    produce(a, 5, -1, NULL);
    catch_up(&ab, a, b);
    produce(a, 4, -1, NULL); /* a's tail in epoch 1: never replicated */
    cr_assert_eq(rn_log_end_offset(a->log), 27);

    lead(b, 2, 2, 1);
    produce(b, 2, -1, NULL);
    cr_assert_eq(rn_partition_become_follower(a, 2, 2), 0);
    side ba; /* a follows b */
    side_open(&ba, 1, b, a);
    catch_up(&ba, b, a);
    assert_identical(a, b);
    cr_assert_eq(rn_log_end_offset(a->log), 21, "15 shared + 6 of b's epoch 2");
    cr_assert_eq(ba.l.epoch_asks, 1);
    side_close(&ab);
    side_close(&ba);
    part_close(a);
    part_close(b);
}

/* KIP-279's case: each side led an epoch the other never saw. In sync at
 * 15 (epoch 1); b leads epoch 2 and writes; a leads epoch 3 and writes; b
 * leads epoch 4 and writes; a follows b. a asks about 3, b answers epoch 2,
 * which a does not have: a cuts at its epoch 3's start and asks about 1;
 * only then is it done. Two rounds, and identical logs. */
Test(replica_fetcher, multi_round_truncation)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 1);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    side ab;
    side_open(&ab, 2, a, b);
    produce(a, 5, -1, NULL);
    catch_up(&ab, a, b);
    lead(b, 2, 2, 1);
    produce(b, 2, -1, NULL);
    lead(a, 1, 3, 1);
    produce(a, 3, -1, NULL);
    lead(b, 2, 4, 1);
    produce(b, 2, -1, NULL);
    cr_assert_eq(rn_log_end_offset(a->log), 24);
    cr_assert_eq(rn_log_end_offset(b->log), 27);
    cr_assert_eq(rn_partition_become_follower(a, 4, 2), 0);
    side ba;
    side_open(&ba, 1, b, a);
    catch_up(&ba, b, a);
    assert_identical(a, b);
    cr_assert_eq(ba.l.epoch_asks, 2);
    side_close(&ab);
    side_close(&ba);
    part_close(a);
    part_close(b);
}

/* KIP-320: a follower behind on epochs is fenced and parks until it is
 * given the new one; one ahead gets UNKNOWN_LEADER_EPOCH and retries; a
 * broker that follows answers NOT_LEADER to a consumer and to another
 * follower, and a replica that is not the partition's is refused. */
Test(replica_fetcher, epochs_fenced_and_roles_checked)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 5, 1);
    cr_assert_eq(rn_partition_become_follower(b, 4, 1), 0);
    side s;
    side_open(&s, 2, a, b);
    produce(a, 2, -1, NULL);
    for (int i = 0; i < 5 && s.l.fenced == 0; i++)
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 1000), 0);
    cr_assert_eq(s.l.fenced, 1);
    cr_assert_eq(rn_replica_fetcher_run_once(s.f, 1000), 0, "parked: nothing asked");
    cr_assert_eq(s.l.fenced, 1);
    cr_assert_eq(rn_partition_become_follower(b, 6, 1), 0); /* ahead of the leader */
    for (int i = 0; i < 5 && s.l.unknown == 0; i++)
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 1000), 0);
    cr_assert_eq(s.l.unknown, 1);
    cr_assert_eq(rn_log_end_offset(b->log), 0);
    cr_assert_eq(rn_partition_become_follower(b, 4, 1), -RN_E_FENCED_LEADER_EPOCH,
                 "an epoch never goes back");
    lead(a, 1, 6, 1); /* the leader hears of epoch 6 */
    catch_up(&s, a, b);
    assert_identical(a, b);

    cr_assert_eq(rn_partition_check_leader(b), -RN_E_NOT_LEADER);
    cr_assert_eq(rn_partition_check_replica(b, 1), -RN_E_NOT_LEADER);
    cr_assert_eq(rn_partition_check_replica(a, 2), 0);
    cr_assert_eq(rn_partition_check_replica(a, 1), -RN_E_NOT_LEADER, "the leader itself");
    cr_assert_eq(rn_partition_check_replica(a, 9), -RN_E_NOT_LEADER, "not a replica");
    cr_assert_eq(rn_partition_check_epoch(a, 5), -RN_E_FENCED_LEADER_EPOCH);
    cr_assert_eq(rn_partition_check_epoch(a, 7), -RN_E_UNKNOWN_LEADER_EPOCH);
    cr_assert_eq(rn_partition_check_epoch(a, -1), 0);
    side_close(&s);
    part_close(a);
    part_close(b);
}

/* min.insync.replicas: with the follower out of the ISR (the controller
 * committed the shrink) acks=all is refused before the append and the high
 * watermark stays; when the ISR grows back it moves. */
Test(replica_fetcher, min_insync_gates_acks_all_and_hw)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 2);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    cr_assert_eq(rn_partition_check_min_isr(a), 0);
    static const int32_t only_a[] = {1};
    cr_assert_eq(rn_partition_isr_committed(a, only_a, 1), 0);
    cr_assert_eq(rn_partition_check_min_isr(a), -RN_E_NOT_ENOUGH_REPLICAS);
    cr_assert_not(rn_partition_isr_enough(a));
    produce(a, 3, -1, NULL);
    cr_assert_eq(rn_partition_high_watermark(a), 0);
    side s;
    side_open(&s, 2, a, b);
    for (int i = 0; i < ROUNDS && rn_log_end_offset(b->log) < 9; i++) {
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 1000), 0);
        while (rn_replica_fetcher_busy(s.f))
            cr_assert_geq(rn_io_run(io, 1), 0);
    }
    cr_assert_geq(rn_replica_fetcher_run_once(s.f, 1000), 0);
    cr_assert_eq(rn_log_end_offset(b->log), 9);
    cr_assert_eq(rn_partition_high_watermark(a), 0, "ISR 1 < min.insync.replicas 2");
    cr_assert_geq(n_proposals, 1, "caught up: the leader proposed it back");
    cr_assert_eq(rn_partition_isr_committed(a, both, 2), 0);
    cr_assert_eq(rn_partition_high_watermark(a), 9);
    cr_assert_eq(rn_partition_isr_committed(b, both, 2), -RN_E_NOT_LEADER);
    side_close(&s);
    part_close(a);
    part_close(b);
}

/* A fetch offset past the leader's log end is no log end the leader can
 * vouch for (a follower that has not truncated yet): it is not recorded,
 * so it neither counts toward the high watermark nor gets the follower
 * proposed into the ISR. */
Test(replica_fetcher, offset_past_leader_end_not_recorded)
{
    rn_partition *a = part_open("a");
    static const int32_t only_a[] = {1};
    rn_replica_config cfg = {.lag_time_max_ms = 30000, .min_insync = 1};
    cr_assert_eq(rn_partition_become_leader(a, 1, 1, both, 2, only_a, 1, &cfg, on_propose, NULL),
                 0);
    produce(a, 3, -1, NULL);
    cr_assert_eq(rn_partition_follower_fetched(a, 2, 100, 1000), 0);
    cr_assert_eq(n_proposals, 0);
    cr_assert_eq(rn_replica_state_replica_leo(a->rs, 2), -1);
    cr_assert_eq(rn_partition_follower_fetched(a, 2, 9, 1001), 0);
    cr_assert_eq(n_proposals, 1, "at the leader's end: proposed into the ISR");
    cr_assert_eq(rn_replica_state_replica_leo(a->rs, 2), 9);
    cr_assert_eq(rn_partition_follower_fetched(a, 3, 9, 1002), -RN_E_NOT_LEADER, "not a replica");
    part_close(a);
}

/* ---- The fetcher on a thread, the follower's log on its owner's ------------------------------ */

/* A stand-in for a reactor: a thread that runs the follower log's io and
 * the work the fetcher hands it (cfg.on_owner), as part/fetchers.c does
 * with rn_reactor_call. */
typedef struct owork {
    struct owork *next;
    rn_replica_work_fn *fn;
    void *arg;
    rn_partition *p;
    bool done;
} owork;

typedef struct owner {
    pthread_t th;
    rn_io *io;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    owork *head;
    int stop;
    unsigned works, idles, bad_names;
} owner;

static void *owner_main(void *a)
{
    owner *o = a;
    while (!__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&o->mu);
        owork *w = o->head;
        if (w)
            o->head = w->next;
        pthread_mutex_unlock(&o->mu);
        if (w) {
            w->fn(w->arg, w->p);
            pthread_mutex_lock(&o->mu);
            w->done = true;
            o->works++;
            pthread_cond_broadcast(&o->cv);
            pthread_mutex_unlock(&o->mu);
        }
        rn_io_run(o->io, 0);
        if (!w)
            usleep(100);
    }
    return NULL;
}

static int on_owner(void *ctx, rn_partition *p, const char *topic, int32_t partition,
                    rn_replica_work_fn *fn, void *arg)
{
    owner *o = ctx;
    if (strcmp(topic, "t") != 0 || partition != 0)
        o->bad_names++;
    owork w = {.fn = fn, .arg = arg, .p = p};
    pthread_mutex_lock(&o->mu);
    w.next = o->head;
    o->head = &w;
    while (!w.done)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

static void on_idle(void *ctx)
{
    owner *o = ctx;
    __atomic_add_fetch(&o->idles, 1, __ATOMIC_RELAXED);
}

typedef struct leo_q {
    int64_t leo, hw;
} leo_q;

static void read_leo(void *arg, rn_partition *p)
{
    leo_q *q = arg;
    q->leo = rn_log_end_offset(p->log);
    q->hw = rn_partition_high_watermark(p);
}

/* The fetcher as part/fetchers.c runs it: on one thread, with the
 * follower's log, role and producer state touched only on its owner's
 * thread (which alone runs that log's io), handed over through on_owner
 * and waited for. It converges byte for byte, the high watermark follows,
 * and idle says when each fetch's appends completed. */
Test(replica_fetcher, log_work_on_the_owner_thread)
{
    rn_io *io_b;
    cr_assert_eq(rn_io_new(&io_b, 256), 0);
    rn_partition *a = part_open("a"), *b = part_open_on("b", io_b);
    lead(a, 1, 1, 2);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    int32_t seq = 0;
    produce(a, 40, 7, &seq);
    owner o = {.io = io_b};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    cr_assert_eq(pthread_create(&o.th, NULL, owner_main, &o), 0);

    side s;
    memset(&s, 0, sizeof(s));
    s.l.serves = a;
    s.l.now_ms = 1000;
    cr_assert_eq(rn_peer_new(&s.peer, "127.0.0.1:1", &mem_transport, &s.l), 0);
    rn_replica_fetcher_config cfg;
    rn_replica_fetcher_config_default(&cfg);
    cfg.self_id = 2;
    cfg.part_bytes = 4096;
    cfg.on_owner = on_owner;
    cfg.owner_ctx = &o;
    cfg.idle = on_idle;
    cfg.idle_ctx = &o;
    cr_assert_eq(rn_replica_fetcher_new(&s.f, s.peer, &cfg), 0);
    cr_assert_eq(rn_replica_fetcher_add(s.f, b), 0);
    leo_q q = {0};
    int i;
    for (i = 0; i < ROUNDS; i++) {
        int rc = rn_replica_fetcher_run_once(s.f, 5000);
        cr_assert_geq(rc, 0, "round %d: %s", i, rn_replica_fetcher_errmsg(s.f));
        for (int k = 0; k < 10000 && rn_replica_fetcher_busy(s.f); k++)
            usleep(1000);
        cr_assert_eq(rn_replica_fetcher_busy(s.f), 0, "appends completed on the owner");
        cr_assert_eq(on_owner(&o, b, "t", 0, read_leo, &q), 0);
        if (q.leo == 120 && rn_partition_high_watermark(a) == 120 && q.hw == 120)
            break;
    }
    cr_assert_lt(i, ROUNDS, "no convergence: %s", rn_replica_fetcher_errmsg(s.f));
    __atomic_store_n(&o.stop, 1, __ATOMIC_RELEASE);
    pthread_join(o.th, NULL);
    cr_assert_eq(o.bad_names, 0, "the owner is told the partition's names");
    cr_assert_gt(o.works, 0);
    cr_assert_gt(__atomic_load_n(&o.idles, __ATOMIC_RELAXED), 0, "idle after appends");
    assert_identical(a, b);
    cr_assert_eq(rn_producer_state_count(b->ps), 1, "the producer came with its batches");
    rn_replica_fetcher_free(s.f);
    rn_peer_free(s.peer);
    free(s.l.out);
    part_close(a);
    part_close(b);
    rn_io_free(io_b);
    pthread_cond_destroy(&o.cv);
    pthread_mutex_destroy(&o.mu);
}

/* ---- A move's throttle (part/throttle.h) --------------------------------------------------- */

/* The bucket: no rate is no throttle; the first read goes at once; a read
 * beyond what is left is a debt that holds the next one back (never more
 * than a second's worth). */
Test(replica_fetcher, throttle_bucket)
{
    rn_throttle t;
    memset(&t, 0, sizeof(t));
    cr_assert(rn_throttle_allows(&t, 0), "rate 0: not throttled");
    rn_throttle_charge(&t, 0, 1u << 30);
    cr_assert(rn_throttle_allows(&t, 0));
    cr_assert(rn_throttle_allows(&t, 10), "the first read goes at once");
    rn_throttle_charge(&t, 10, 1u << 20);
    cr_assert_not(rn_throttle_allows(&t, 10), "in debt: held back");
    cr_assert_geq(t.tokens, -10, "a debt of at most one second's worth");
}

/* A replica a move is adding fetches within its throttle: a round while
 * the bucket is empty leaves it out and answers no error, the follower
 * simply does not move; once it is not throttled any more (in sync, or the
 * move over) it catches up, byte for byte. */
Test(replica_fetcher, throttled_replica_held_back_never_an_error)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 1);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    produce(a, 40, -1, NULL);
    b->moving_in = true;
    b->move_throttle = 1; /* 1 byte/s: after one fetch, nothing for a second or two */
    rn_throttle bucket;
    memset(&bucket, 0, sizeof(bucket));
    side s;
    memset(&s, 0, sizeof(s));
    s.l.serves = a;
    s.l.now_ms = 1000;
    cr_assert_eq(rn_peer_new(&s.peer, "127.0.0.1:1", &mem_transport, &s.l), 0);
    rn_replica_fetcher_config cfg;
    rn_replica_fetcher_config_default(&cfg);
    cfg.self_id = 2;
    cfg.part_bytes = 1024;
    cfg.throttle = &bucket;
    cr_assert_eq(rn_replica_fetcher_new(&s.f, s.peer, &cfg), 0);
    cr_assert_eq(rn_replica_fetcher_add(s.f, b), 0);
    /* Truncation, then the first fetch (the bucket's first read). */
    int64_t got = 0;
    for (int i = 0; i < ROUNDS && got == 0; i++) {
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 5000), 0, "%s",
                      rn_replica_fetcher_errmsg(s.f));
        while (rn_replica_fetcher_busy(s.f))
            cr_assert_geq(rn_io_run(io, 1), 0);
        got = rn_log_end_offset(b->log);
    }
    cr_assert_gt(got, 0, "the first fetch goes");
    cr_assert_lt(got, 120, "one fetch of 1 KiB is not the whole log");
    for (int i = 0; i < 3; i++) {
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 5000), 0, "held back is no error");
        while (rn_replica_fetcher_busy(s.f))
            cr_assert_geq(rn_io_run(io, 1), 0);
    }
    cr_assert_eq(rn_log_end_offset(b->log), got, "held back while the bucket is in debt");
    b->moving_in = false; /* in sync, or the move over: no throttle */
    catch_up(&s, a, b);
    assert_identical(a, b);
    side_close(&s);
    part_close(a);
    part_close(b);
}

/* A partition whose last fetch's appends are still in flight is left out of
 * the next round; the others' request must not then wait out the leader's
 * long poll (replica.fetch.wait.max.ms) before it is asked again: with
 * 1 MiB fetches and synced appends a catch-up moved one fetch per 500 ms
 * (30 MiB in 16.6 s between two brokers here; 0.36 s after). */
Test(replica_fetcher, held_partition_shortens_the_long_poll)
{
    rn_partition *a = part_open("a"), *b = part_open("b"), *c = part_open("c");
    lead(a, 1, 1, 1);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    cr_assert_eq(rn_partition_become_follower(c, 1, 1), 0);
    produce(a, 40, -1, NULL);
    side s;
    side_open(&s, 2, a, b);
    /* b's first fetch: its appends stay in flight (this io is not run). */
    for (int i = 0; i < ROUNDS && !rn_replica_fetcher_busy(s.f); i++)
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 5000), 0, "%s",
                      rn_replica_fetcher_errmsg(s.f));
    cr_assert(rn_replica_fetcher_busy(s.f), "b has appends in flight");
    cr_assert_eq(s.l.last_max_wait, 500, "nothing held: the configured long poll");
    /* c, another partition of the same leader (the fake leader serves its
     * one log under both), is fetched while b is held back. */
    cr_assert_eq(rn_replica_fetcher_add(s.f, c), 0);
    s.l.last_max_wait = 0;
    for (int i = 0; i < ROUNDS && s.l.last_max_wait == 0; i++)
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 5000), 0, "%s",
                      rn_replica_fetcher_errmsg(s.f));
    cr_assert_gt(s.l.last_max_wait, 0, "c was fetched");
    cr_assert_lt(s.l.last_max_wait, 500, "b held back: a short poll (%u ms)", s.l.last_max_wait);
    /* Both converge once the appends land. */
    int i;
    for (i = 0; i < ROUNDS; i++) {
        while (rn_replica_fetcher_busy(s.f))
            cr_assert_geq(rn_io_run(io, 1), 0);
        if (rn_log_end_offset(b->log) == 120 && rn_log_end_offset(c->log) == 120)
            break;
        cr_assert_geq(rn_replica_fetcher_run_once(s.f, 5000), 0, "%s",
                      rn_replica_fetcher_errmsg(s.f));
    }
    cr_assert_lt(i, ROUNDS);
    assert_identical(a, b);
    assert_identical(a, c);
    side_close(&s);
    part_close(a);
    part_close(b);
    part_close(c);
}

/* A leader change while the follower's appends from its old leader are
 * still in flight (issue 13's drain: part/fetchers.c hands the partition
 * to the new leader's fetcher at once, while the old one's last fetch is
 * still being written). a leads epoch 1; b fetches a's tail, whose appends
 * are submitted but not complete when c (which never got that tail) leads
 * epoch 2 and writes past it. b's first round with c must not truncate or
 * fetch over a log end that the old appends are still moving: before the
 * fix it cut at its completed end (nothing to cut), the tail then landed,
 * and b fetched c's batches on top of a's records (the leader counting
 * that fetch offset toward its high watermark): acknowledged records of c
 * that b never had, two histories at one offset. */
Test(replica_fetcher, old_leaders_appends_in_flight_at_leader_change)
{
    static const int32_t three[] = {1, 2, 3}, ab_isr[] = {1, 2}, cb_isr[] = {2, 3};
    rn_replica_config cfg = {.lag_time_max_ms = 30000, .min_insync = 2};
    /* b's io apart: the others' synchronous appends must not complete b's. */
    rn_io *io_b;
    cr_assert_eq(rn_io_new(&io_b, 256), 0);
    rn_partition *a = part_open("a"), *b = part_open_on("b", io_b), *c = part_open("c");
    cr_assert_eq(rn_partition_become_leader(a, 1, 1, three, 3, ab_isr, 2, &cfg, on_propose, NULL),
                 0);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    cr_assert_eq(rn_partition_become_follower(c, 1, 1), 0);
    side ab, ac;
    side_open(&ab, 2, a, b);
    side_open(&ac, 3, a, c);
    produce(a, 5, -1, NULL);
    catch_up_on(&ab, a, b, io_b);
    catch_up(&ac, a, c);
    cr_assert_eq(rn_log_end_offset(c->log), 15);

    produce(a, 4, -1, NULL); /* a's tail, 15..26: b gets it, c never does */
    cr_assert_geq(rn_replica_fetcher_run_once(ab.f, 5000), 0);
    cr_assert_gt(rn_replica_fetcher_busy(ab.f), 0, "the tail's appends are in flight");
    cr_assert_eq(rn_log_end_offset(b->log), 15);
    cr_assert(rn_log_writing(b->log), "the log end will still move");

    cr_assert_eq(rn_partition_become_leader(c, 3, 2, three, 3, cb_isr, 2, &cfg, on_propose, NULL),
                 0);
    produce(c, 6, -1, NULL); /* c's epoch 2, 15..32: batch boundaries on b's */
    cr_assert_eq(rn_partition_become_follower(b, 2, 3), 0);
    side cb;
    side_open(&cb, 2, c, b);
    /* The new leader's fetcher runs before the old fetcher's appends land. */
    cr_assert_geq(rn_replica_fetcher_run_once(cb.f, 5000), 0, "%s",
                  rn_replica_fetcher_errmsg(cb.f));
    while (rn_replica_fetcher_busy(ab.f))
        cr_assert_geq(rn_io_run(io_b, 1), 0);
    cr_assert_eq(rn_log_end_offset(b->log), 27, "a's tail landed");
    cr_assert_not(rn_log_writing(b->log));
    catch_up_on(&cb, c, b, io_b);
    assert_identical(c, b);
    cr_assert_eq(rn_partition_high_watermark(c), 33);
    side_close(&ab);
    side_close(&ac);
    side_close(&cb);
    part_close(a);
    part_close(b);
    part_close(c);
    rn_io_free(io_b);
}

/* acks=all after the append (api/produce.c): only the leader that appended,
 * still leading in that epoch with its log, answers, once its high
 * watermark covers the batch. Before, a produce append that completed after
 * the replica moved away (its log abandoned, which runs the completions)
 * was answered success without a look at the high watermark, and one that
 * completed after the leader became a follower could be answered by the
 * new leader's high watermark over other records (issue 13: acknowledged
 * records lost at a replica move; tests/cluster/test_move_churn.sh). */
Test(replica_fetcher, acks_all_only_by_the_leader_that_appended)
{
    rn_partition *a = part_open("a"), *b = part_open("b");
    lead(a, 1, 1, 2);
    cr_assert_eq(rn_partition_become_follower(b, 1, 1), 0);
    produce(a, 3, -1, NULL);
    cr_assert_eq(rn_partition_acks_all(a, 1, 9), 0, "the follower has not fetched: wait");
    cr_assert_eq(rn_partition_follower_fetched(a, 2, 6, 1000), 0);
    cr_assert_eq(rn_partition_acks_all(a, 1, 6), 1);
    cr_assert_eq(rn_partition_acks_all(a, 1, 9), 0);
    cr_assert_eq(rn_partition_follower_fetched(a, 2, 9, 1001), 0);
    cr_assert_eq(rn_partition_acks_all(a, 1, 9), 1);
    cr_assert_eq(rn_partition_acks_all(a, 0, 9), -RN_E_NOT_LEADER, "appended in an older epoch");

    static const int32_t only_a[] = {1};
    cr_assert_eq(rn_partition_isr_committed(a, only_a, 1), 0);
    cr_assert_eq(rn_partition_acks_all(a, 1, 12), -RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    cr_assert_eq(rn_partition_acks_all(a, 1, 9), 1, "covered before the ISR shrank");

    /* Deposed: a follower's high watermark (the new leader's) covers
     * offsets that hold the new leader's records, not this batch. */
    cr_assert_eq(rn_partition_become_follower(a, 2, 2), 0);
    rn_partition_follower_hw(a, 9);
    cr_assert_eq(rn_partition_high_watermark(a), 9);
    cr_assert_eq(rn_partition_acks_all(a, 1, 9), -RN_E_NOT_LEADER);
    /* Leading again in a later epoch: the offsets may hold other records. */
    lead(a, 1, 3, 1);
    cr_assert_eq(rn_partition_acks_all(a, 1, 9), -RN_E_NOT_LEADER);
    cr_assert_eq(rn_partition_acks_all(a, 3, 9), 1);
    /* The replica moved away: the log is detached before it is abandoned. */
    rn_log *log = a->log;
    a->log = NULL;
    cr_assert_eq(rn_partition_acks_all(a, 3, 9), -RN_E_NOT_LEADER);
    a->log = log;
    a->deleting = true;
    cr_assert_eq(rn_partition_acks_all(a, 3, 9), -RN_E_UNKNOWN_TOPIC);
    a->deleting = false;
    part_close(a);
    part_close(b);
}
