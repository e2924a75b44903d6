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
 *                                                    \--(cfg.park_retry_ms passed)--/
 *
 * One request is in flight per fetcher at a time: a round sends one request
 * and waits for its answer. A partition is touched only inside work handed
 * to its owner (run_on: cfg.on_owner, or the caller's thread in tests):
 * before a round, prepare() reads its role, epoch and log end and decides
 * what to ask; in the answer's callback, the apply functions cut or append.
 * The fetcher thread reads only what prepare() left in the followed entry
 * (the state, the epoch, the offset or epoch to ask) and the names copied at
 * add; the owner's work runs while the fetcher thread waits for it, so the
 * two never run at once on an entry, except for the append completions
 * (inflight, failed), which are atomics. A partition whose last appends
 * are still in flight sits a round out, and that round asks the others
 * with max_wait_ms of HELD_WAIT_MS at most: parked in the leader's long poll
 * (replica.fetch.wait.max.ms), the request would
 * hold back the skipped partition's next fetch offset (what moves the
 * leader's high watermark) for replica.fetch.wait.max.ms.
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
#include "broker/part/throttle.h"
#include "broker/part/truncation.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/leader_epoch.h"

enum fstate { TRUNCATE, FETCH, PARKED };

typedef struct followed followed;

/* The bytes of one fetch answer for one partition, until their appends complete. */
typedef struct block {
    followed *fo;
    rn_partition *p;
    uint8_t *data;
    unsigned pending;
    int err;
    void (*idle)(void *ctx); /* copied from the config: told when fo is idle again */
    void *idle_ctx;
} block;

typedef struct append_op {
    block *blk;
    rn_batch_header h;
} append_op;

struct followed {
    rn_partition *p; /* compared by the fetcher's thread, read only on the owner */
    char *topic;     /* copies of p's names, for the fetcher's thread */
    int32_t id;
    int32_t epoch; /* the p->leader_epoch the state is for; -1: none yet */
    enum fstate st;
    int64_t parked_ms; /* when it parked (mono_ms) */
    /* Left by prepare() for this round: whether to ask, and what. */
    bool ready;
    int32_t ask;        /* TRUNCATE: the epoch to ask the leader about */
    int64_t leo;        /* FETCH: the log end to fetch from */
    int64_t throttle;   /* FETCH: bytes/s while a move adds it (part/throttle.h); 0 none */
    int32_t held_epoch; /* the last epoch it was held for another's appends (logged once) */
    unsigned inflight;  /* appends submitted, not completed (atomic) */
    int failed;         /* an append failed: truncate again (atomic) */
};

struct rn_replica_fetcher {
    rn_peer *peer;
    rn_replica_fetcher_config cfg;
    followed **v;
    unsigned n, cap;
    char errmsg[512];
    /* This round left a partition out that has bytes to fetch (its last
     * appends still in flight, or its move's throttle): the leader must not
     * hold the request for the others' long poll meanwhile. */
    bool held;
};

/* The leader's long poll while a partition is held back: long enough not to
 * spin, short enough that the held one is asked again soon. */
#define HELD_WAIT_MS 10

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
    *c = (rn_replica_fetcher_config){0};
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

static void followed_free(followed *fo)
{
    free(fo->topic);
    free(fo);
}

void rn_replica_fetcher_free(rn_replica_fetcher *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < f->n; i++)
        followed_free(f->v[i]);
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
    return rn_replica_fetcher_add_named(f, p, p->topic, p->id);
}

void rn_replica_fetcher_set_peer(rn_replica_fetcher *f, rn_peer *peer)
{
    f->peer = peer;
}

unsigned rn_replica_fetcher_count(const rn_replica_fetcher *f)
{
    return f->n;
}

int rn_replica_fetcher_add_named(rn_replica_fetcher *f, rn_partition *p, const char *topic,
                                 int32_t partition)
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
    fo->topic = strdup(topic);
    if (!fo->topic) {
        free(fo);
        return -ENOMEM;
    }
    fo->p = p;
    fo->id = partition;
    fo->epoch = -1;
    fo->held_epoch = -1;
    fo->st = TRUNCATE;
    f->v[f->n++] = fo;
    return 0;
}

int rn_replica_fetcher_remove(rn_replica_fetcher *f, rn_partition *p)
{
    int i = find(f, p);
    if (i < 0)
        return -ENOENT;
    if (__atomic_load_n(&f->v[i]->inflight, __ATOMIC_ACQUIRE))
        return -EBUSY;
    followed_free(f->v[i]);
    f->v[i] = f->v[--f->n];
    return 0;
}

unsigned rn_replica_fetcher_busy(const rn_replica_fetcher *f)
{
    unsigned n = 0;
    for (unsigned i = 0; i < f->n; i++)
        n += __atomic_load_n(&f->v[i]->inflight, __ATOMIC_ACQUIRE);
    return n;
}

const char *rn_replica_fetcher_errmsg(const rn_replica_fetcher *f)
{
    return f->errmsg;
}

static void say(rn_replica_fetcher *f, const followed *fo, int err, const char *what)
{
    if (fo)
        snprintf(f->errmsg, sizeof(f->errmsg), "%s-%d: %s: %s", fo->topic, fo->id, what,
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

/* fn(arg, p) on fo's owner (cfg.on_owner), or here. */
static int run_on(rn_replica_fetcher *f, followed *fo, rn_replica_work_fn *fn, void *arg)
{
    if (!f->cfg.on_owner) {
        fn(arg, fo->p);
        return 0;
    }
    return f->cfg.on_owner(f->cfg.owner_ctx, fo->p, fo->topic, fo->id, fn, arg);
}

/* ---- Truncation ------------------------------------------------------------------------- */

/* The log was cut: the producer state is the log's again (as at open: the
 * last two segments), and the partition publishes its new offsets. */
static int after_cut(rn_replica_fetcher *f, followed *fo, rn_partition *p)
{
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
static int cut(rn_replica_fetcher *f, followed *fo, rn_partition *p, int64_t offset)
{
    rn_log *log = p->log;
    if (offset >= rn_log_end_offset(log))
        return 0;
    int64_t new_end;
    int rc = rn_log_truncate_to(log, offset, &new_end);
    if (rc < 0) {
        say(f, fo, rc, rn_log_errmsg(log));
        return rc;
    }
    rn_logfmt(RN_INFO, "follower truncated", "partition=%s-%d leader_epoch=%d offset=%lld",
              fo->topic, fo->id, (int)fo->epoch, (long long)new_end);
    rc = after_cut(f, fo, p);
    return rc < 0 ? rc : 1;
}

/* Park on a leader that is not ours any more, or take an error as it comes. */
static void partition_error(rn_replica_fetcher *f, followed *fo, uint32_t code)
{
    say(f, fo, -(int)code, "leader answered");
    if (code == RN_E_FENCED_LEADER_EPOCH || code == RN_E_NOT_LEADER) {
        fo->st = PARKED; /* until the controller names the next epoch */
        fo->parked_ms = mono_ms();
    }
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

/* One partition's OffsetsForLeaderEpoch answer, on its owner. */
typedef struct epochs_work {
    rn_replica_fetcher *f;
    followed *fo;
    const Runnel__OffsetsForLeaderEpochPartitionResponse *pr;
    int moved;
} epochs_work;

static void epochs_apply(void *arg, rn_partition *p)
{
    epochs_work *w = arg;
    rn_replica_fetcher *f = w->f;
    followed *fo = w->fo;
    const Runnel__OffsetsForLeaderEpochPartitionResponse *pr = w->pr;
    if (!p || !p->log || fo->epoch != p->leader_epoch || fo->st != TRUNCATE)
        return; /* gone, or the epoch moved meanwhile: the next round sees it */
    if (pr->error_code) {
        partition_error(f, fo, pr->error_code);
        return;
    }
    rn_log *log = p->log;
    if (rn_log_writing(log))
        return; /* another fetcher's appends landed meanwhile (see prepare): ask again */
    const rn_leader_epochs *own = rn_log_leader_epochs(log);
    if (!own) {
        say(f, fo, -RN_E_STORAGE_ERROR, rn_log_errmsg(log));
        return; /* the next round tries again */
    }
    rn_truncation t =
        rn_truncation_step(own, rn_log_end_offset(log), rn_partition_high_watermark(p),
                           pr->leader_epoch, pr->end_offset);
    int rc = cut(f, fo, p, t.offset);
    if (rc < 0)
        return; /* errmsg says; the next round tries again */
    if (t.done)
        fo->st = FETCH;
    w->moved++;
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
        epochs_work w = {.f = f, .fo = r->asked[i], .pr = er->partitions[i]};
        if (run_on(f, w.fo, epochs_apply, &w) == 0)
            r->moved += w.moved;
    }
}

/* ---- Fetching ---------------------------------------------------------------------------- */

static void appended(void *arg, int err, int64_t base, int64_t last)
{
    append_op *op = arg;
    block *blk = op->blk;
    followed *fo = blk->fo;
    rn_partition *p = blk->p;
    (void)last;
    if (err == 0 && base == op->h.base_offset) {
        rn_batch_header h = op->h;
        if (rn_producer_state_replicated(p->ps, &h) < 0)
            blk->err = -ENOMEM;
    } else if (!blk->err) {
        blk->err = err ? err : -RN_E_CORRUPT_BATCH;
    }
    free(op);
    if (--blk->pending > 0) {
        __atomic_sub_fetch(&fo->inflight, 1, __ATOMIC_ACQ_REL);
        return;
    }
    if (blk->err) {
        /* The log refused what the leader has: find the common point
         * again (a failed log stays failed; its owner reopens it). */
        __atomic_store_n(&fo->failed, 1, __ATOMIC_RELEASE);
        rn_logfmt(RN_WARN, "follower append failed", "partition=%s-%d err=%s", p->topic, p->id,
                  rn_errname(blk->err));
    }
    rn_partition_wake(p);
    void (*idle)(void *) = blk->idle;
    void *idle_ctx = blk->idle_ctx;
    free(blk->data);
    free(blk);
    /* The last touch of fo: once inflight is 0 the fetcher may free it. */
    if (__atomic_sub_fetch(&fo->inflight, 1, __ATOMIC_ACQ_REL) == 0 && idle)
        idle(idle_ctx);
}

/* Append the batches in data[0..len) to fo's log. Returns how many were
 * submitted, or a negative error (what was submitted still completes). */
static int append_all(rn_replica_fetcher *f, followed *fo, rn_partition *p, const uint8_t *data,
                      size_t len, int64_t *end)
{
    rn_log *log = p->log;
    block *blk = calloc(1, sizeof(*blk));
    if (blk)
        blk->data = malloc(len);
    if (!blk || !blk->data) {
        free(blk);
        return -ENOMEM;
    }
    memcpy(blk->data, data, len);
    blk->fo = fo;
    blk->p = p;
    blk->idle = f->cfg.idle;
    blk->idle_ctx = f->cfg.idle_ctx;
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
                     "%s-%d: the leader's batch starts at %lld, the log ends at %lld", fo->topic,
                     fo->id, (long long)h.base_offset, (long long)next);
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
        __atomic_add_fetch(&fo->inflight, 1, __ATOMIC_ACQ_REL);
        n++;
        next = h.base_offset + h.last_offset_delta + 1;
        pos += size;
    }
    *end = next;
    if (--blk->pending == 0) {
        free(blk->data);
        free(blk);
    }
    return rc < 0 && n == 0 ? rc : n;
}

/* One partition's Fetch answer, on its owner. */
typedef struct fetch_work {
    rn_replica_fetcher *f;
    followed *fo;
    const Runnel__FetchPartitionResponse *pr;
    const uint8_t *data;
    int moved;
} fetch_work;

static void fetch_apply(void *arg, rn_partition *p)
{
    fetch_work *w = arg;
    rn_replica_fetcher *f = w->f;
    followed *fo = w->fo;
    const Runnel__FetchPartitionResponse *pr = w->pr;
    if (!p || !p->log || fo->epoch != p->leader_epoch || fo->st != FETCH)
        return;
    rn_log *log = p->log;
    /* Our own appends were complete when the round began (run_once), so
     * these are another fetcher's (see prepare): their batches would move
     * the offsets ours get. Fetch again from the log end they leave. */
    if (rn_log_writing(log))
        return;
    if (pr->error_code == RN_E_OFFSET_OUT_OF_RANGE) {
        if (pr->log_start_offset > rn_log_end_offset(log)) {
            /* Everything we have is below what the leader keeps. */
            int rc = rn_log_truncate_fully(log, pr->log_start_offset);
            if (rc < 0)
                say(f, fo, rc, rn_log_errmsg(log));
            else if (after_cut(f, fo, p) == 0)
                w->moved++;
        } else {
            fo->st = TRUNCATE; /* ahead of the leader: find where we part */
            w->moved++;
        }
        return;
    }
    if (pr->error_code) {
        partition_error(f, fo, pr->error_code);
        return;
    }
    int64_t end = rn_log_end_offset(log);
    if (f->cfg.throttle)
        rn_throttle_charge(f->cfg.throttle, fo->throttle, pr->bytes_len);
    if (pr->bytes_len > 0) {
        int n = append_all(f, fo, p, w->data, pr->bytes_len, &end);
        if (n > 0)
            w->moved++;
    }
    rn_partition_follower_hw(p, pr->high_watermark);
    /* How far behind the leader's high watermark this copy is, once what
     * was just submitted lands (/metrics). */
    rn_metrics_replica_lag(&p->m, pr->high_watermark > end ? pr->high_watermark - end : 0);
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
        fetch_work w = {.f = f, .fo = r->asked[i], .pr = fr->partitions[i]};
        w.data = resp->payload + off;
        off += w.pr->bytes_len; /* frame.c checked the sum is the payload */
        if (run_on(f, w.fo, fetch_apply, &w) == 0)
            r->moved += w.moved;
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
        if (f->cfg.stop && __atomic_load_n(f->cfg.stop, __ATOMIC_ACQUIRE)) {
            rn_peer_cut(f->peer, -ECANCELED, "the fetcher is stopping");
            break;
        }
        rc = rn_peer_poll(f->peer, (int)(left > 200 ? 200 : left));
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
        if (fo->st != TRUNCATE || !fo->ready)
            continue;
        Runnel__OffsetsForLeaderEpochPartition *q = &parts[r.n_asked];
        runnel__offsets_for_leader_epoch_partition__init(q);
        q->topic = fo->topic;
        q->partition = fo->id;
        q->current_leader_epoch = fo->epoch;
        q->leader_epoch = fo->ask;
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

/* f->held: some partition sat this round out (its appends in flight, or
 * its throttle), so the leader must not park the request for the others
 * for long: that partition's next fetch offset, which moves the leader's
 * high watermark, would wait for the long poll of partitions with nothing
 * new (acks=all answered every replica.fetch.wait.max.ms; found by the
 * fault suite's double-failover and by a throttled move's catch-up). */
static int fetch(rn_replica_fetcher *f, int timeout_ms)
{
    round r;
    int rc = round_open(&r, f, sizeof(Runnel__FetchPartition));
    if (rc < 0)
        goto out;
    Runnel__FetchPartition *parts = r.parts, **pp = r.pp;
    for (unsigned i = 0; i < f->n; i++) {
        followed *fo = f->v[i];
        if (fo->st != FETCH || !fo->ready)
            continue;
        if (f->cfg.throttle && !rn_throttle_allows(f->cfg.throttle, fo->throttle)) {
            f->held = true;
            continue; /* a move's catch-up over its rate: next round */
        }
        Runnel__FetchPartition *q = &parts[r.n_asked];
        runnel__fetch_partition__init(q);
        q->topic = fo->topic;
        q->partition = fo->id;
        q->fetch_offset = fo->leo;
        q->partition_max_bytes = f->cfg.part_bytes;
        q->current_leader_epoch = fo->epoch;
        pp[r.n_asked] = q;
        r.asked[r.n_asked++] = fo;
    }
    if (r.n_asked == 0)
        goto out;
    Runnel__FetchRequest req = RUNNEL__FETCH_REQUEST__INIT;
    req.replica_id = f->cfg.self_id;
    /* A partition held back (its appends, its throttle) would otherwise
     * wait out the others' long poll: with 1 MiB fetches and synced
     * appends, a catch-up moved one fetch per replica.fetch.wait.max.ms. */
    req.max_wait_ms = f->held && f->cfg.max_wait_ms > HELD_WAIT_MS ? HELD_WAIT_MS
                                                                    : f->cfg.max_wait_ms;
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

/* Before a round, on the owner: whether fo is still followed and at which
 * epoch, and what to ask its leader (fo->ready, fo->ask, fo->leo). */
typedef struct prepare_work {
    rn_replica_fetcher *f;
    followed *fo;
    int moved;
    bool held; /* its log is still writing another fetcher's appends */
} prepare_work;

static void prepare(void *arg, rn_partition *p)
{
    prepare_work *w = arg;
    rn_replica_fetcher *f = w->f;
    followed *fo = w->fo;
    fo->ready = false;
    if (!p || p->role != RN_ROLE_FOLLOWER || !p->log) {
        fo->st = PARKED;
        return;
    }
    if (__atomic_exchange_n(&fo->failed, 0, __ATOMIC_ACQ_REL))
        fo->st = TRUNCATE; /* an append failed (appended) */
    /* A leader that said NOT_LEADER may only have been behind its own
     * metadata: ask again after a while, from the truncation step. */
    if (fo->st == PARKED && f->cfg.park_retry_ms > 0 &&
        mono_ms() - fo->parked_ms >= f->cfg.park_retry_ms)
        fo->st = TRUNCATE;
    if (fo->epoch != p->leader_epoch) {
        /* A new leader epoch: our tail may be a deposed leader's. */
        fo->epoch = p->leader_epoch;
        fo->st = TRUNCATE;
        w->moved++;
    }
    if (rn_log_writing(p->log)) {
        /* Appends from the old leader's fetcher (part/fetchers.c gives the
         * partition to the new leader's at once) are still landing: the
         * log end they will move is not where we stand yet. Truncating
         * now would cut at the end without them and keep the deposed
         * leader's tail they bring; fetching would give the new leader a
         * log end holding that tail as if it were its history. Next round.
         * (Our own appends in flight are held by run_once already.) */
        if (fo->held_epoch != fo->epoch) {
            fo->held_epoch = fo->epoch;
            rn_logfmt(RN_INFO, "follower waits for appends in flight",
                      "partition=%s-%d leader_epoch=%d log_end=%lld", fo->topic, fo->id,
                      (int)fo->epoch, (long long)rn_log_end_offset(p->log));
        }
        w->held = true;
        return;
    }
    if (fo->st == TRUNCATE) {
        const rn_leader_epochs *c = rn_log_leader_epochs(p->log);
        if (!c) {
            say(f, fo, -RN_E_STORAGE_ERROR, rn_log_errmsg(p->log));
            return;
        }
        fo->ask = rn_truncation_epoch_to_ask(c);
        if (fo->ask != RN_EPOCH_UNDEFINED) {
            fo->ready = true;
            return;
        }
        /* No epochs: an empty log has nothing to cut; one written before
         * epochs were kept keeps what it knows was committed. */
        rn_truncation t =
            rn_truncation_step(c, rn_log_end_offset(p->log), rn_partition_high_watermark(p),
                               RN_EPOCH_UNDEFINED, RN_EPOCH_OFFSET_UNDEFINED);
        if (cut(f, fo, p, t.offset) < 0)
            return;
        fo->st = FETCH;
        w->moved++;
    }
    if (fo->st == FETCH) {
        fo->leo = rn_log_end_offset(p->log);
        fo->throttle = rn_throttle_follower_rate(p);
        fo->ready = true;
    }
}

int rn_replica_fetcher_run_once(rn_replica_fetcher *f, int timeout_ms)
{
    int moved = 0;
    bool truncating = false;
    f->held = false;
    for (unsigned i = 0; i < f->n; i++) {
        followed *fo = f->v[i];
        fo->ready = false;
        if (__atomic_load_n(&fo->inflight, __ATOMIC_ACQUIRE)) {
            f->held = true;
            continue; /* its last fetch's appends first */
        }
        prepare_work w = {.f = f, .fo = fo};
        int rc = run_on(f, fo, prepare, &w);
        if (rc < 0) {
            say(f, fo, rc, "the partition's owner did not run the fetcher's work");
            continue;
        }
        moved += w.moved;
        f->held |= w.held;
        truncating |= fo->st == TRUNCATE && fo->ready;
    }
    int wait = (int)f->cfg.max_wait_ms + f->cfg.timeout_ms;
    if (timeout_ms >= 0 && timeout_ms < wait)
        wait = timeout_ms;
    int rc = truncating ? ask_epochs(f, wait) : fetch(f, wait);
    return rc < 0 ? rc : moved + rc;
}
