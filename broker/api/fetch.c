/*
 * api/fetch.c — Fetch: record batches from many partitions, with long-poll.
 *
 * Each partition is read with rn_log_read: whole batches starting at the one
 * holding fetch_offset, up to partition_max_bytes and the request's max_bytes
 * (at least one batch, as Kafka does, so a batch larger than the limits never
 * stalls a consumer), and never past the high watermark for a consumer
 * (replica_id -1) or the log end offset for a follower (DESIGN §8). The bytes
 * are not copied: the answer's payload is the slices of the segment mmaps,
 * whose references the send queue holds until sendmsg has taken them.
 *
 * Long-poll: when fewer than min_bytes are ready and max_wait_ms > 0 the fetch
 * parks. It parks a waiter on each of its partitions' fetch_waiters queue
 * (part/waiters.h); an append that moves a partition's high watermark calls
 * rn_partition_wake, which re-runs the read of the parked fetches, oldest
 * first (as does the partition's close: they find it gone); a timer answers
 * with whatever is there at max_wait_ms (capped by fetch.max.wait.ms).
 *
 * Replication (DESIGN §8): a consumer reads only from the partition's
 * leader and a follower (replica_id >= 0) only from the leader that lists
 * it, else NOT_LEADER; a current_leader_epoch older or newer than the
 * partition's is fenced (KIP-320). A follower's fetch offset is its log end:
 * on arrival it goes into the leader's follower table, which may move the
 * high watermark (and so wake parked consumers and acks=all produces).
 *
 * Replica moves' throttle (part/throttle.h): a follower being added by a
 * move and not in sync yet gets no bytes of that partition while the
 * leader's bucket is empty (as if there were none: the fetch may park); the
 * bytes sent to such followers are charged once the answer goes.
 *
 * A parked fetch's memory lives until both its answer is out and its timer
 * CQE has come back (cancelled or fired).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/net/shard.h"
#include "broker/part/partitions.h"
#include "protocol/container_of.h"

#define DEFAULT_MAX_BYTES           (50u << 20)
#define DEFAULT_PARTITION_MAX_BYTES (1u << 20)

typedef struct wait_node {
    rn_waiter wt; /* on its partition's fetch_waiters */
    rn_fetch_wait *w;
    rn_partition *p;
} wait_node;

struct rn_fetch_wait {
    rn_request *req;
    rn_reactor *r;
    size_t n;
    wait_node *nodes;
    rn_io_op timer_op, cancel_op;
    struct __kernel_timespec ts;
    bool timer_armed, cancel_sent, done;
    /* The last wake that re-ran this fetch: a fetch naming one partition
     * twice has two nodes on its queue and is re-run once per wake. */
    const rn_waiter_queue *woken_q;
    uint64_t woken_n;
};

static void node_woken(rn_waiter *wt, rn_wake_why why);

static void maybe_free(rn_fetch_wait *w)
{
    if (w->done && !w->timer_armed && !w->cancel_sent) {
        free(w->nodes);
        free(w);
    }
}

static void cancel_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_fetch_wait *w = RN_CONTAINER_OF(op, rn_fetch_wait, cancel_op);
    (void)res;
    (void)flags;
    w->cancel_sent = false;
    maybe_free(w);
}

/* The fetch has answered (or its connection died): leave every list and stop
 * the timer. */
static void retire(rn_fetch_wait *w)
{
    w->done = true;
    w->req = NULL;
    for (size_t i = 0; i < w->n; i++)
        rn_waiter_leave(&w->nodes[i].wt);
    if (w->timer_armed && !w->cancel_sent) {
        struct io_uring_sqe *sqe = rn_io_sqe(w->r->io, &w->cancel_op, cancel_done);
        if (sqe) {
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&w->timer_op, 0);
            w->cancel_sent = true;
        }
    }
    maybe_free(w);
}

/* Read every partition. Answers and returns true when there is enough (or
 * final); otherwise releases what it read, sets *ready to the bytes it found
 * and returns false. */
static bool try_fetch(rn_request *req, bool final, size_t *ready)
{
    rn_broker *b = req->conn->r->b;
    Runnel__FetchRequest *fr = req->fr.hdr->fetch;
    size_t n = fr->n_partitions;
    uint32_t max_bytes = fr->max_bytes ? fr->max_bytes : DEFAULT_MAX_BYTES;
    Runnel__FetchPartitionResponse *resp = calloc(n ? n : 1, sizeof(*resp));
    Runnel__FetchPartitionResponse **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    rn_slice *slices = calloc(n ? n : 1, sizeof(*slices));
    if (!resp || !ptrs || !slices) {
        free(resp);
        free(ptrs);
        free(slices);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return true;
    }
    size_t total = 0, throttled = 0;
    int64_t throttle_rate = 0;
    bool errors = false;
    unsigned n_slices = 0;
    for (size_t i = 0; i < n; i++) {
        Runnel__FetchPartition *fp = fr->partitions[i];
        Runnel__FetchPartitionResponse *r = &resp[i];
        runnel__fetch_partition_response__init(r);
        ptrs[i] = r;
        r->topic = fp->topic;
        r->partition = fp->partition;
        r->high_watermark = r->log_start_offset = r->log_end_offset = -1;
        int lrc;
        rn_partition *p = rn_partition_lookup(b, fp->topic, fp->partition, -1, &lrc);
        if (!p) {
            r->error_code = (uint32_t)-lrc;
            errors = true;
            continue;
        }
        r->high_watermark = rn_partition_high_watermark(p);
        r->log_start_offset = rn_log_start_offset(p->log);
        r->log_end_offset = rn_log_end_offset(p->log);
        /* KIP-320 fencing, then who may read here: a consumer reads from
         * the leader, a follower from the leader that counts it. */
        int rc = rn_partition_check_epoch(p, fp->current_leader_epoch);
        if (rc == 0)
            rc = fr->replica_id >= 0 ? rn_partition_check_replica(p, fr->replica_id)
                                     : rn_partition_check_leader(p);
        if (rc < 0) {
            r->error_code = (uint32_t)-rc;
            errors = true;
            continue;
        }
        int64_t max_offset = fr->replica_id >= 0 ? r->log_end_offset : r->high_watermark;
        if (fp->fetch_offset < r->log_start_offset || fp->fetch_offset > r->log_end_offset) {
            r->error_code = RN_E_OFFSET_OUT_OF_RANGE;
            errors = true;
            continue;
        }
        if (total >= max_bytes)
            continue;
        int64_t rate = fr->replica_id >= 0 ? rn_throttle_leader_rate(p, fr->replica_id) : 0;
        if (rate > 0 && !rn_throttle_allows(&b->leader_throttle, rate))
            continue; /* throttled: nothing now, never an error */
        uint32_t pmax =
            fp->partition_max_bytes ? fp->partition_max_bytes : DEFAULT_PARTITION_MAX_BYTES;
        size_t limit = pmax < max_bytes - total ? pmax : max_bytes - total;
        rn_slice s;
        rc = rn_log_read(p->log, fp->fetch_offset, limit, max_offset, &s);
        if (rc < 0) {
            r->error_code =
                rc == -RN_E_OFFSET_OUT_OF_RANGE ? RN_E_OFFSET_OUT_OF_RANGE : RN_E_STORAGE_ERROR;
            errors = true;
            rn_logfmt(RN_WARN, "fetch read failed", "topic=%s partition=%d err=%s msg=\"%s\"",
                      fp->topic, fp->partition, rn_errname(rc), rn_log_errmsg(p->log));
            continue;
        }
        if (s.len == 0)
            continue;
        r->bytes_len = (uint32_t)s.len;
        total += s.len;
        if (rate > 0) {
            throttled += s.len;
            throttle_rate = rate;
        }
        p->m.bytes_out += s.len;
        p->m.records_out += (uint64_t)(s.next_offset - s.base_offset);
        slices[n_slices++] = s;
    }
    bool enough = total >= fr->min_bytes; /* min_bytes 0: answer at once */
    if (!final && !errors && !enough && fr->max_wait_ms > 0) {
        for (unsigned i = 0; i < n_slices; i++)
            rn_slice_release(&slices[i]);
        free(resp);
        free(ptrs);
        free(slices);
        *ready = total;
        return false;
    }
    Runnel__FetchResponse fres = RUNNEL__FETCH_RESPONSE__INIT;
    fres.n_partitions = n;
    fres.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    h.fetch = &fres;
    rn_request_respond(req, &h, slices, n_slices);
    rn_throttle_charge(&b->leader_throttle, throttle_rate, throttled);
    free(resp);
    free(ptrs);
    free(slices);
    return true;
}

static void timer_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_fetch_wait *w = RN_CONTAINER_OF(op, rn_fetch_wait, timer_op);
    (void)flags;
    w->timer_armed = false;
    if (!w->done && res != -ECANCELED) {
        rn_request *req = w->req;
        req->state = NULL;
        retire(w);
        try_fetch(req, true, NULL);
        return;
    }
    maybe_free(w);
}

void rn_fetch_wake(rn_fetch_wait *w)
{
    if (w->done)
        return;
    rn_request *req = w->req;
    bool final = req->conn->r->stopping;
    req->state = NULL;
    size_t ready = 0;
    if (try_fetch(req, final, &ready)) {
        retire(w);
        return;
    }
    req->state = w;
    /* Last: the fetch's home may answer it from here (broker/net/shard.c). */
    if (req->sub)
        rn_shard_fetch_parked(req, ready);
}

void rn_fetch_answer_now(rn_fetch_wait *w)
{
    if (w->done)
        return;
    rn_request *req = w->req;
    req->state = NULL;
    retire(w);
    try_fetch(req, true, NULL);
}

void rn_fetch_cancel(rn_fetch_wait *w)
{
    if (w->done)
        return;
    rn_request *req = w->req;
    req->state = NULL;
    retire(w);
    rn_request_free(req);
}

/* The partition's high watermark moved, or the partition is closing: re-run
 * the read (a closed partition is found gone and answered with its error). */
static void node_woken(rn_waiter *wt, rn_wake_why why)
{
    wait_node *n = RN_CONTAINER_OF(wt, wait_node, wt);
    rn_fetch_wait *w = n->w;
    if (w->done)
        return;
    rn_waiter_queue *q = &n->p->fetch_waiters;
    if (why == RN_WAKE_MOVED && w->woken_q == q && w->woken_n == q->wakes)
        return; /* already re-run by this wake through another node */
    w->woken_q = q;
    w->woken_n = q->wakes;
    rn_fetch_wake(w);
}

void rn_handle_fetch(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__FetchRequest *fr = req->fr.hdr->fetch;
    size_t ready = 0;
    if (fr->replica_id >= 0) {
        /* A follower's fetch offset is its log end: the leader's follower
         * table takes it once, on arrival, before anything of this fetch is
         * parked (the high watermark moving wakes parked requests). Errors
         * are the read's to report. */
        int64_t now = rn_now_ms();
        for (size_t i = 0; i < fr->n_partitions; i++) {
            Runnel__FetchPartition *fp = fr->partitions[i];
            rn_partition *p = rn_partition_find(b, fp->topic, fp->partition);
            if (p && rn_partition_check_epoch(p, fp->current_leader_epoch) == 0)
                rn_partition_follower_fetched(p, fr->replica_id, fp->fetch_offset, now);
        }
    }
    if (try_fetch(req, false, &ready))
        return;
    rn_fetch_wait *w = calloc(1, sizeof(*w));
    if (w)
        w->nodes = calloc(fr->n_partitions ? fr->n_partitions : 1, sizeof(*w->nodes));
    if (!w || !w->nodes) {
        free(w);
        try_fetch(req, true, NULL);
        return;
    }
    w->req = req;
    w->r = req->conn->r;
    w->n = fr->n_partitions;
    for (size_t i = 0; i < w->n; i++) {
        wait_node *node = &w->nodes[i];
        node->w = w;
        rn_waiter_init(&node->wt, node_woken);
        node->p = rn_partition_find(b, fr->partitions[i]->topic, fr->partitions[i]->partition);
        if (node->p)
            rn_waiter_park(&node->p->fetch_waiters, &node->wt, -1); /* its own timer */
    }
    uint64_t ms = fr->max_wait_ms;
    if (b->cfg.fetch_max_wait_ms > 0 && ms > (uint64_t)b->cfg.fetch_max_wait_ms)
        ms = (uint64_t)b->cfg.fetch_max_wait_ms;
    w->timer_armed = true;
    rn_io_timer(w->r->io, &w->timer_op, timer_done, &w->ts, ms);
    req->state = w;
    /* Last: the fetch's home may answer it from here (broker/net/shard.c). */
    if (req->sub)
        rn_shard_fetch_parked(req, ready);
}
