/*
 * part/replica_fetcher.c — the follower's fetcher (part/replica_fetcher.h).
 *
 * Each followed partition is in one state:
 *
 *   TRUNCATE --(OffsetsForLeaderEpoch answered, cut, done)--> FETCH
 *      ^   \--(cut, not done: ask again)--/                    |
 *      |                                                        |
 *      +--(epoch changed; a batch not at the log end)-----------+
 *   FETCH --(FENCED_LEADER_EPOCH / NOT_LEADER)--> PARKED --(epoch changed)--> TRUNCATE
 *
 * One request is in flight per fetcher at a time: a round sends one request
 * and waits for its answer, so the logs are only touched between rounds or
 * inside the answer's callback, on the caller's thread.
 *
 * Appending: the answer's bytes for a partition are copied (the peer's
 * buffer dies with the callback) into one block that lives until the last
 * append of that block completes. Each batch is checked to start at the
 * offset the follower's log will give it (its log end plus what is in
 * flight), so the log stamps the same base offset back and the bytes stay
 * the leader's, and appended with its own partition_leader_epoch, which
 * puts the leader's epoch boundaries into the follower's cache.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/logfmt.h"
#include "broker/part/replica_fetcher.h"
#include "broker/part/truncation.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/leader_epoch.h"

enum fstate { TRUNCATE, FETCH, PARKED };

typedef struct followed followed;

/* The bytes of one fetch answer for one partition, until their appends complete. */
typedef struct block {
    followed *fo;
    uint8_t *data;
    unsigned pending;
    int err;
} block;

typedef struct append_op {
    block *blk;
    rn_batch_header h;
} append_op;

struct followed {
    rn_partition *p;
    int32_t epoch; /* the p->leader_epoch the state is for; -1: none yet */
    enum fstate st;
    unsigned inflight; /* appends submitted, not completed */
};

struct rn_replica_fetcher {
    rn_peer *peer;
    rn_replica_fetcher_config cfg;
    followed **v;
    unsigned n, cap;
    char errmsg[512];
};

/* One request's outcome, filled by its callback. */
typedef struct round {
    rn_replica_fetcher *f;
    followed **asked; /* in the request's partition order */
    size_t n_asked;
    void *parts; /* the request's partitions (Fetch's or OffsetsForLeaderEpoch's) */
    void *pp;    /* and the table of pointers to them */
    bool done;
    int err;
    int moved;
} round;

void rn_replica_fetcher_config_default(rn_replica_fetcher_config *c)
{
    c->self_id = -1;
    c->max_bytes = 10u << 20;
    c->part_bytes = 1u << 20;
    c->max_wait_ms = 500;
    c->timeout_ms = 30000;
}

int rn_replica_fetcher_new(rn_replica_fetcher **out, rn_peer *peer,
                           const rn_replica_fetcher_config *cfg)
{
    if (cfg->self_id < 0)
        return -EINVAL;
    rn_replica_fetcher *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->peer = peer;
    f->cfg = *cfg;
    *out = f;
    return 0;
}

void rn_replica_fetcher_free(rn_replica_fetcher *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < f->n; i++)
        free(f->v[i]);
    free(f->v);
    free(f);
}

static int find(const rn_replica_fetcher *f, const rn_partition *p)
{
    for (unsigned i = 0; i < f->n; i++)
        if (f->v[i]->p == p)
            return (int)i;
    return -1;
}

int rn_replica_fetcher_add(rn_replica_fetcher *f, rn_partition *p)
{
    if (find(f, p) >= 0)
        return -EEXIST;
    if (f->n == f->cap) {
        unsigned cap = f->cap ? f->cap * 2 : 8;
        followed **v = realloc(f->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        f->v = v;
        f->cap = cap;
    }
    followed *fo = calloc(1, sizeof(*fo));
    if (!fo)
        return -ENOMEM;
    fo->p = p;
    fo->epoch = -1;
    fo->st = TRUNCATE;
    f->v[f->n++] = fo;
    return 0;
}

int rn_replica_fetcher_remove(rn_replica_fetcher *f, rn_partition *p)
{
    int i = find(f, p);
    if (i < 0)
        return -ENOENT;
    if (f->v[i]->inflight)
        return -EBUSY;
    free(f->v[i]);
    f->v[i] = f->v[--f->n];
    return 0;
}

unsigned rn_replica_fetcher_busy(const rn_replica_fetcher *f)
{
    unsigned n = 0;
    for (unsigned i = 0; i < f->n; i++)
        n += f->v[i]->inflight;
    return n;
}

const char *rn_replica_fetcher_errmsg(const rn_replica_fetcher *f)
{
    return f->errmsg;
}

static void say(rn_replica_fetcher *f, const followed *fo, int err, const char *what)
{
    if (fo)
        snprintf(f->errmsg, sizeof(f->errmsg), "%s-%d: %s: %s", fo->p->topic, fo->p->id, what,
                 rn_strerror(err));
    else
        snprintf(f->errmsg, sizeof(f->errmsg), "%s: %s", what, rn_strerror(err));
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Truncation ------------------------------------------------------------------------- */

/* The log was cut: the producer state is the log's again (as at open: the
 * last two segments), and the partition publishes its new offsets. */
static int after_cut(rn_replica_fetcher *f, followed *fo)
{
    rn_partition *p = fo->p;
    rn_producer_state *ps = rn_producer_state_new();
    if (!ps)
        return -ENOMEM;
    unsigned n_segs = rn_log_segment_count(p->log);
    int64_t from = rn_log_segment_base(p->log, n_segs > 1 ? n_segs - 2 : 0);
    int rc = rn_producer_state_rebuild(ps, p->log, from);
    if (rc < 0) {
        rn_producer_state_free(ps);
        say(f, fo, rc, "producer state not rebuilt after truncation");
        return rc;
    }
    rn_producer_state_free(p->ps);
    p->ps = ps;
    rn_partition_wake(p);
    return 0;
}

/* Cut fo's log at offset (nothing when at or past its end). */
static int cut(rn_replica_fetcher *f, followed *fo, int64_t offset)
{
    rn_log *log = fo->p->log;
    if (offset >= rn_log_end_offset(log))
        return 0;
    int64_t new_end;
    int rc = rn_log_truncate_to(log, offset, &new_end);
    if (rc < 0) {
        say(f, fo, rc, rn_log_errmsg(log));
        return rc;
    }
    rn_logfmt(RN_INFO, "follower truncated", "partition=%s-%d leader_epoch=%d offset=%lld",
              fo->p->topic, fo->p->id, (int)fo->epoch, (long long)new_end);
    rc = after_cut(f, fo);
    return rc < 0 ? rc : 1;
}

/* Park on a leader that is not ours any more, or take an error as it comes. */
static void partition_error(rn_replica_fetcher *f, followed *fo, uint32_t code)
{
    say(f, fo, -(int)code, "leader answered");
    if (code == RN_E_FENCED_LEADER_EPOCH || code == RN_E_NOT_LEADER)
        fo->st = PARKED; /* until the controller names the next epoch */
    /* UNKNOWN_LEADER_EPOCH (the leader is behind the controller) and the
     * rest: the next round asks again. */
}

/* A round and its tables for up to f->n partitions of part_size bytes. */
static int round_open(round *r, rn_replica_fetcher *f, size_t part_size)
{
    *r = (round){.f = f};
    r->asked = calloc(f->n, sizeof(*r->asked));
    r->parts = calloc(f->n, part_size);
    r->pp = calloc(f->n, sizeof(void *));
    return r->asked && r->parts && r->pp ? 0 : -ENOMEM;
}

static void round_close(round *r)
{
    free(r->asked);
    free(r->parts);
    free(r->pp);
}

/* The start of each answer's callback: the round is over, and a failed
 * exchange or an answer that does not list the partitions asked (n, in
 * order) fails it (false). */
static bool round_answered(round *r, int err, const char *errmsg, const void *body, size_t n,
                           const char *api)
{
    rn_replica_fetcher *f = r->f;
    r->done = true;
    if (err < 0) {
        r->err = err;
        snprintf(f->errmsg, sizeof(f->errmsg), "%s", errmsg ? errmsg : rn_strerror(err));
        return false;
    }
    if (!body || n != r->n_asked) {
        r->err = -RN_E_INVALID_REQUEST;
        snprintf(f->errmsg, sizeof(f->errmsg), "%s answer does not match the question: %s", api,
                 rn_strerror(r->err));
        return false;
    }
    return true;
}

static void on_epochs(void *arg, int err, const rn_frame_response *resp, const char *errmsg)
{
    round *r = arg;
    rn_replica_fetcher *f = r->f;
    Runnel__OffsetsForLeaderEpochResponse *er =
        err < 0 ? NULL : resp->hdr->offsets_for_leader_epoch;
    if (!round_answered(r, err, errmsg, er, er ? er->n_partitions : 0, "OffsetsForLeaderEpoch"))
        return;
    for (size_t i = 0; i < r->n_asked; i++) {
        followed *fo = r->asked[i];
        const Runnel__OffsetsForLeaderEpochPartitionResponse *pr = er->partitions[i];
        if (fo->epoch != fo->p->leader_epoch || fo->st != TRUNCATE)
            continue; /* the epoch moved meanwhile: ask again */
        if (pr->error_code) {
            partition_error(f, fo, pr->error_code);
            continue;
        }
        rn_log *log = fo->p->log;
        const rn_leader_epochs *own = rn_log_leader_epochs(log);
        if (!own) {
            say(f, fo, -RN_E_STORAGE_ERROR, rn_log_errmsg(log));
            continue; /* the next round tries again */
        }
        rn_truncation t =
            rn_truncation_step(own, rn_log_end_offset(log), rn_partition_high_watermark(fo->p),
                               pr->leader_epoch, pr->end_offset);
        int rc = cut(f, fo, t.offset);
        if (rc < 0)
            continue; /* errmsg says; the next round tries again */
        if (t.done)
            fo->st = FETCH;
        r->moved++;
    }
}

/* ---- Fetching ---------------------------------------------------------------------------- */

static void appended(void *arg, int err, int64_t base, int64_t last)
{
    append_op *op = arg;
    block *blk = op->blk;
    followed *fo = blk->fo;
    (void)last;
    if (err == 0 && base == op->h.base_offset) {
        rn_batch_header h = op->h;
        if (rn_producer_state_replicated(fo->p->ps, &h) < 0)
            blk->err = -ENOMEM;
    } else if (!blk->err) {
        blk->err = err ? err : -RN_E_CORRUPT_BATCH;
    }
    fo->inflight--;
    if (--blk->pending == 0) {
        if (blk->err) {
            /* The log refused what the leader has: find the common point
             * again (a failed log stays failed; its owner reopens it). */
            fo->st = TRUNCATE;
            rn_logfmt(RN_WARN, "follower append failed", "partition=%s-%d err=%s", fo->p->topic,
                      fo->p->id, rn_errname(blk->err));
        }
        rn_partition_wake(fo->p);
        free(blk->data);
        free(blk);
    }
    free(op);
}

/* Append the batches in data[0..len) to fo's log. Returns how many were
 * submitted, or a negative error (what was submitted still completes). */
static int append_all(rn_replica_fetcher *f, followed *fo, const uint8_t *data, size_t len)
{
    rn_log *log = fo->p->log;
    block *blk = calloc(1, sizeof(*blk));
    if (blk)
        blk->data = malloc(len);
    if (!blk || !blk->data) {
        free(blk);
        return -ENOMEM;
    }
    memcpy(blk->data, data, len);
    blk->fo = fo;
    blk->pending = 1; /* held by this loop */
    int n = 0, rc = 0;
    int64_t next = rn_log_end_offset(log);
    size_t max = rn_log_config_of(log)->max_batch_bytes;
    for (size_t pos = 0; pos < len;) {
        rn_batch_header h;
        /* The leader's limit may be above ours: take any size it sent. */
        rc = rn_batch_peek(blk->data + pos, len - pos, len - pos > max ? len - pos : max, &h);
        if (rc < 0) {
            say(f, fo, rc, "fetched bytes are not a batch");
            break;
        }
        size_t size = rn_batch_size(&h);
        if (h.base_offset != next) {
            rc = -RN_E_CORRUPT_BATCH;
            snprintf(f->errmsg, sizeof(f->errmsg),
                     "%s-%d: the leader's batch starts at %lld, the log ends at %lld", fo->p->topic,
                     fo->p->id, (long long)h.base_offset, (long long)next);
            fo->st = TRUNCATE;
            break;
        }
        append_op *op = malloc(sizeof(*op));
        if (!op) {
            rc = -ENOMEM;
            break;
        }
        op->blk = blk;
        op->h = h;
        rc = rn_log_append(log, blk->data + pos, size, h.partition_leader_epoch, appended, op);
        if (rc < 0) {
            free(op);
            say(f, fo, rc, rn_log_errmsg(log));
            fo->st = TRUNCATE;
            break;
        }
        blk->pending++;
        fo->inflight++;
        n++;
        next = h.base_offset + h.last_offset_delta + 1;
        pos += size;
    }
    if (--blk->pending == 0) {
        free(blk->data);
        free(blk);
    }
    return rc < 0 && n == 0 ? rc : n;
}

static void on_fetch(void *arg, int err, const rn_frame_response *resp, const char *errmsg)
{
    round *r = arg;
    rn_replica_fetcher *f = r->f;
    Runnel__FetchResponse *fr = err < 0 ? NULL : resp->hdr->fetch;
    if (!round_answered(r, err, errmsg, fr, fr ? fr->n_partitions : 0, "Fetch"))
        return;
    size_t off = 0;
    for (size_t i = 0; i < r->n_asked; i++) {
        followed *fo = r->asked[i];
        const Runnel__FetchPartitionResponse *pr = fr->partitions[i];
        const uint8_t *data = resp->payload + off;
        off += pr->bytes_len; /* frame.c checked the sum is the payload */
        if (fo->epoch != fo->p->leader_epoch || fo->st != FETCH)
            continue;
        rn_log *log = fo->p->log;
        if (pr->error_code == RN_E_OFFSET_OUT_OF_RANGE) {
            if (pr->log_start_offset > rn_log_end_offset(log)) {
                /* Everything we have is below what the leader keeps. */
                int rc = rn_log_truncate_fully(log, pr->log_start_offset);
                if (rc < 0)
                    say(f, fo, rc, rn_log_errmsg(log));
                else if (after_cut(f, fo) == 0)
                    r->moved++;
            } else {
                fo->st = TRUNCATE; /* ahead of the leader: find where we part */
                r->moved++;
            }
            continue;
        }
        if (pr->error_code) {
            partition_error(f, fo, pr->error_code);
            continue;
        }
        if (pr->bytes_len > 0) {
            int n = append_all(f, fo, data, pr->bytes_len);
            if (n > 0)
                r->moved++;
        }
        rn_partition_follower_hw(fo->p, pr->high_watermark);
    }
}

/* ---- A round ------------------------------------------------------------------------------ */

/* Send hdr and wait for its callback (which sets r->done). */
static int exchange(rn_replica_fetcher *f, Runnel__RequestHeader *hdr, rn_peer_cb cb, round *r,
                    int wait_ms)
{
    int rc = rn_peer_send(f->peer, hdr, NULL, 0, cb, r);
    if (rc < 0) {
        snprintf(f->errmsg, sizeof(f->errmsg), "%s", rn_peer_errmsg(f->peer));
        return rc;
    }
    int64_t deadline = mono_ms() + wait_ms;
    while (!r->done) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            rn_peer_cut(f->peer, -ETIMEDOUT, "the leader did not answer in time");
            break; /* the cut ran the callback */
        }
        rc = rn_peer_poll(f->peer, (int)(left > 1000 ? 1000 : left));
        if (rc < 0 && !r->done) {
            r->err = rc;
            break;
        }
    }
    return r->err < 0 ? r->err : r->moved;
}

static int ask_epochs(rn_replica_fetcher *f, int timeout_ms)
{
    round r;
    int moved = 0, rc = round_open(&r, f, sizeof(Runnel__OffsetsForLeaderEpochPartition));
    if (rc < 0)
        goto out;
    Runnel__OffsetsForLeaderEpochPartition *parts = r.parts, **pp = r.pp;
    for (unsigned i = 0; i < f->n; i++) {
        followed *fo = f->v[i];
        if (fo->st != TRUNCATE || fo->inflight)
            continue;
        const rn_leader_epochs *c = rn_log_leader_epochs(fo->p->log);
        if (!c) {
            say(f, fo, -RN_E_STORAGE_ERROR, rn_log_errmsg(fo->p->log));
            continue;
        }
        int32_t ask = rn_truncation_epoch_to_ask(c);
        if (ask == RN_EPOCH_UNDEFINED) {
            /* No epochs: an empty log has nothing to cut; one written
             * before epochs were kept keeps what it knows was committed. */
            rn_truncation t = rn_truncation_step(c, rn_log_end_offset(fo->p->log),
                                                 rn_partition_high_watermark(fo->p),
                                                 RN_EPOCH_UNDEFINED, RN_EPOCH_OFFSET_UNDEFINED);
            if (cut(f, fo, t.offset) >= 0) {
                fo->st = FETCH;
                moved++;
            }
            continue;
        }
        Runnel__OffsetsForLeaderEpochPartition *q = &parts[r.n_asked];
        runnel__offsets_for_leader_epoch_partition__init(q);
        q->topic = fo->p->topic;
        q->partition = fo->p->id;
        q->current_leader_epoch = fo->epoch;
        q->leader_epoch = ask;
        pp[r.n_asked] = q;
        r.asked[r.n_asked++] = fo;
    }
    if (r.n_asked == 0)
        goto out;
    Runnel__OffsetsForLeaderEpochRequest req = RUNNEL__OFFSETS_FOR_LEADER_EPOCH_REQUEST__INIT;
    req.replica_id = f->cfg.self_id;
    req.n_partitions = r.n_asked;
    req.partitions = pp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH;
    h.offsets_for_leader_epoch = &req;
    rc = exchange(f, &h, on_epochs, &r, timeout_ms);
    if (rc > 0)
        moved += rc;
out:
    round_close(&r);
    return rc < 0 ? rc : moved;
}

static int fetch(rn_replica_fetcher *f, int timeout_ms)
{
    round r;
    int rc = round_open(&r, f, sizeof(Runnel__FetchPartition));
    if (rc < 0)
        goto out;
    Runnel__FetchPartition *parts = r.parts, **pp = r.pp;
    for (unsigned i = 0; i < f->n; i++) {
        followed *fo = f->v[i];
        if (fo->st != FETCH || fo->inflight)
            continue;
        Runnel__FetchPartition *q = &parts[r.n_asked];
        runnel__fetch_partition__init(q);
        q->topic = fo->p->topic;
        q->partition = fo->p->id;
        q->fetch_offset = rn_log_end_offset(fo->p->log);
        q->partition_max_bytes = f->cfg.part_bytes;
        q->current_leader_epoch = fo->epoch;
        pp[r.n_asked] = q;
        r.asked[r.n_asked++] = fo;
    }
    if (r.n_asked == 0)
        goto out;
    Runnel__FetchRequest req = RUNNEL__FETCH_REQUEST__INIT;
    req.replica_id = f->cfg.self_id;
    req.max_wait_ms = f->cfg.max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = f->cfg.max_bytes;
    req.n_partitions = r.n_asked;
    req.partitions = pp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    h.fetch = &req;
    rc = exchange(f, &h, on_fetch, &r, timeout_ms);
out:
    round_close(&r);
    return rc;
}

int rn_replica_fetcher_run_once(rn_replica_fetcher *f, int timeout_ms)
{
    int moved = 0;
    bool truncating = false;
    for (unsigned i = 0; i < f->n; i++) {
        followed *fo = f->v[i];
        rn_partition *p = fo->p;
        if (p->role != RN_ROLE_FOLLOWER || !p->log) {
            fo->st = PARKED;
            continue;
        }
        if (fo->epoch != p->leader_epoch) {
            /* A new leader epoch: our tail may be a deposed leader's. */
            fo->epoch = p->leader_epoch;
            fo->st = TRUNCATE;
            moved++;
        }
        truncating |= fo->st == TRUNCATE && !fo->inflight;
    }
    int wait = (int)f->cfg.max_wait_ms + f->cfg.timeout_ms;
    if (timeout_ms >= 0 && timeout_ms < wait)
        wait = timeout_ms;
    int rc = truncating ? ask_epochs(f, wait) : fetch(f, wait);
    return rc < 0 ? rc : moved + rc;
}
