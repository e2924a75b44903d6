/*
 * offsets_topic.c — the group coordinator and its __offsets topic (see
 * groups.h; groups_int.h for how it shares the coordinator with groups.c;
 * the pure rules it follows are coordinator.c's).
 *
 * Three jobs, each tying the groups to the log that keeps their commits:
 *   - the gate (rn_groups_gate): in a cluster, before any group API, ask
 *     rn_coord_decide whether this broker serves; on a new leadership of
 *     __offsets drop what was held and load the committed offsets from the
 *     replicated log (rn_groups_load_offsets), so the state is always the
 *     one of the leader epoch it was loaded for;
 *   - creating __offsets when runneld opens the coordinator (rn_groups_open):
 *     in a cluster after waiting, bounded, for the voters to register, so it
 *     gets its replicas; with retention off and flush=always unless the
 *     operator set them;
 *   - the commit hold (broker_offsets_replicated, the env's replicated
 *     hook): a commit is acknowledged once the high watermark covers the
 *     log end seen when it was written, as acks=all (DESIGN §8).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/coord/coordinator.h"
#include "broker/coord/groups.h"
#include "broker/coord/groups_int.h"
#include "broker/coord/offsets.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "protocol/container_of.h"
#include "protocol/errors.h"

/* How long a cluster broker waits for the voters to register before
 * creating __offsets (wait_for_brokers). */
#define OFFSETS_WAIT_MS 10000

/* ---- Loading committed offsets from the log ------------------------------------------- */

int rn_groups_load_offsets(rn_groups *g, char *err, size_t errlen)
{
    int32_t epoch;
    rn_log *log = g->env.offsets_log(g->env.arg, &epoch);
    if (!log) {
        g->offsets_ok = false;
        return rn_errf(-RN_E_STORAGE_ERROR, err, errlen, "%s-0 is not open", RN_OFFSETS_TOPIC);
    }
    int rc = rn_offsets_load(g->offsets, log, err, errlen);
    g->offsets_ok = rc == 0;
    return rc;
}

/* ---- Coordinator gate (coord/coordinator.h) ------------------------------------------- */

int rn_groups_gate(rn_groups *g, const char *group_id, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!g)
        return rn_errf(-RN_E_COORDINATOR_NOT_AVAILABLE, err, errlen,
                       "the group coordinator is not running yet");
    if (!g->env.view)
        return 0;
    rn_coord_view v;
    g->env.view(g->env.arg, group_id, &v);
    v.loaded_epoch = g->loaded_epoch;
    v.pending = rn_offsets_pending(g->offsets);
    bool drop;
    rn_coord_action a = rn_coord_decide(&v, &drop);
    if ((drop || a == RN_COORD_LOAD) &&
        rn__groups_drop_state(g, a == RN_COORD_LOAD ? "new_leadership" : "not_leader") < 0)
        return rn_errf(-ENOMEM, err, errlen, "out of memory");
    if (a == RN_COORD_LOAD) {
        uint64_t t0 = rn_now_ns();
        char msg[256] = "";
        int rc = rn_groups_load_offsets(g, msg, sizeof(msg));
        if (rc < 0) {
            rn_logfmt(RN_ERROR, "committed offsets not loaded",
                      "topic=%s epoch=%d err=%s msg=\"%s\"", RN_OFFSETS_TOPIC, v.leader_epoch,
                      rn_errname(rc), msg);
            rn__groups_drop_state(g, "load_failed");
            return rn_errf(-RN_E_COORDINATOR_LOAD_IN_PROGRESS, err, errlen, "loading %s failed: %s",
                           RN_OFFSETS_TOPIC, msg);
        }
        g->loaded_epoch = v.leader_epoch;
        rn_offsets_stats st;
        rn_offsets_get_stats(g->offsets, &st);
        rn_logfmt(RN_INFO, "group coordinator loaded",
                  "epoch=%d groups=%zu records=%" PRIu64 " ms=%.1f", v.leader_epoch,
                  rn_offsets_group_count(g->offsets), st.records, (double)(rn_now_ns() - t0) / 1e6);
        return 0;
    }
    int rc = rn_coord_error(a);
    if (rc == 0)
        return 0;
    if (a == RN_COORD_ELSEWHERE)
        return rn_errf(rc, err, errlen, "broker %d coordinates group %s (it leads %s)", v.leader_id,
                       group_id ? group_id : "", RN_OFFSETS_TOPIC);
    if (a == RN_COORD_LOADING)
        return rn_errf(rc, err, errlen, "this broker is taking over %s; ask again",
                       RN_OFFSETS_TOPIC);
    return rn_errf(rc, err, errlen, "%s has no leader", RN_OFFSETS_TOPIC);
}

int32_t rn_groups_loaded_epoch(const rn_groups *g)
{
    return g ? g->loaded_epoch : -1;
}

/* ---- runneld: the coordinator over the broker --------------------------------------------- */

static int32_t broker_topic_partitions(void *arg, const char *topic)
{
    rn_topic_state *ts = rn_topic_state_find(arg, topic);
    return ts ? ts->n_partitions : -1;
}

static rn_log *broker_offsets_log(void *arg, int32_t *leader_epoch)
{
    rn_partition *p = rn_partition_find(arg, RN_OFFSETS_TOPIC, 0);
    if (!p)
        return NULL;
    *leader_epoch = p->leader_epoch;
    return p->log;
}

static void broker_coord_view(void *arg, const char *group_id, rn_coord_view *v)
{
    rn_broker *b = arg;
    *v = (rn_coord_view){.single_node = !b->quorum,
                         .self_id = b->cfg.node_id,
                         .leader_id = -1,
                         .leader_epoch = -1,
                         .loaded_epoch = -1};
    const rn_topic_info *t = rn_metadata_find(b->md, RN_OFFSETS_TOPIC);
    int32_t part = t ? rn_coord_partition(group_id ? group_id : "", t->n_partitions) : -1;
    if (!t || !t->partitions || part < 0)
        return;
    /* One coordinator state per broker, for partition 0: __offsets has one
     * partition (a topic of more would need one state per partition led). */
    if (part != 0)
        return;
    const rn_partition_info *pi = &t->partitions[part];
    v->have_partition = true;
    v->leader_id = pi->leader;
    v->leader_epoch = pi->leader_epoch;
    rn_partition *p = rn_partition_find(b, RN_OFFSETS_TOPIC, part);
    v->leading = p && p->log && p->role == RN_ROLE_LEADER && p->leader_epoch == pi->leader_epoch;
}

/* Commit replication: the commit's records are durable in the leader's log;
 * it is acknowledged once the high watermark covers the log end seen now
 * (which is at or past its last record), as acks=all (DESIGN §8). */
#define COMMIT_REPLICATION_MS 10000

typedef struct commit_repl {
    rn_waiter wt;
    rn_partition *p;
    int32_t epoch;
    int64_t target;
    void (*cb)(void *, int);
    void *cb_arg;
} commit_repl;

static void commit_repl_check(rn_waiter *w, rn_wake_why why)
{
    commit_repl *c = RN_CONTAINER_OF(w, commit_repl, wt);
    int err = 1;
    if (why == RN_WAKE_CLOSED)
        err = -RN_E_NOT_COORDINATOR;
    else if (c->p->role != RN_ROLE_LEADER || c->p->leader_epoch != c->epoch)
        err = -RN_E_NOT_COORDINATOR; /* it may or may not survive: the client commits again */
    else if (rn_partition_high_watermark(c->p) >= c->target)
        err = 0;
    else if (why == RN_WAKE_TIMEOUT)
        err = -RN_E_TIMEOUT;
    if (err > 0)
        return; /* still parked */
    rn_waiter_leave(&c->wt);
    void (*cb)(void *, int) = c->cb;
    void *cb_arg = c->cb_arg;
    free(c);
    cb(cb_arg, err);
}

static void broker_offsets_replicated(void *arg, void (*cb)(void *, int), void *cb_arg)
{
    rn_partition *p = rn_partition_find(arg, RN_OFFSETS_TOPIC, 0);
    if (!p || !p->log || p->role != RN_ROLE_LEADER) {
        /* A single node (RN_ROLE_LOCAL) is its own high watermark. */
        cb(cb_arg, p && p->log && p->role == RN_ROLE_LOCAL ? 0 : -RN_E_NOT_COORDINATOR);
        return;
    }
    rn_partition_wake(p); /* followers waiting in a long poll fetch the commit now */
    int64_t target = rn_log_end_offset(p->log);
    if (rn_partition_high_watermark(p) >= target) {
        cb(cb_arg, 0);
        return;
    }
    commit_repl *c = calloc(1, sizeof(*c));
    if (!c) {
        cb(cb_arg, -ENOMEM);
        return;
    }
    *c = (commit_repl){
        .p = p, .epoch = p->leader_epoch, .target = target, .cb = cb, .cb_arg = cb_arg};
    rn_waiter_init(&c->wt, commit_repl_check);
    rn_waiter_park(&p->produce_waiters, &c->wt, rn_now_ms() + COMMIT_REPLICATION_MS);
}

typedef struct sync_op {
    bool done;
    int err;
    char msg[256];
} sync_op;

static void sync_done(void *arg, int err, const char *errmsg)
{
    sync_op *op = arg;
    op->done = true;
    op->err = err;
    snprintf(op->msg, sizeof(op->msg), "%s", errmsg ? errmsg : "");
}

/* Nothing listens yet: run the ring until the metadata change is applied. */
static int wait_sync(rn_io *io, sync_op *op)
{
    while (!op->done) {
        int rc = rn_io_run(io, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    return 0;
}

/* __offsets keeps offsets until they are overwritten or deleted (no time
 * retention: an idle group must not lose its place) and acknowledges a
 * commit only once it is on disk, whatever the broker defaults are. An
 * operator's own setting of either key is left alone. */
static void ensure_offsets_configs(rn_broker *b)
{
    static const char *const keys[] = {"retention.ms", "flush"};
    static const char *const values[] = {"-1", "always"};
    const rn_topic_info *t = rn_metadata_find(b->md, RN_OFFSETS_TOPIC);
    if (!t)
        return;
    const char *set_k[2], *set_v[2];
    size_t n = 0;
    for (size_t i = 0; i < 2; i++) {
        bool present = false;
        for (uint32_t c = 0; c < t->n_configs; c++)
            present |= strcmp(t->config_keys[c], keys[i]) == 0;
        if (!present) {
            set_k[n] = keys[i];
            set_v[n++] = values[i];
        }
    }
    if (n == 0)
        return;
    sync_op op = {0};
    char err[256] = "";
    int rc = rn_metadata_alter_configs(b->md, RN_OFFSETS_TOPIC, set_k, set_v, n, NULL, 0, sync_done,
                                       &op, err, sizeof(err));
    if (rc == 0)
        rc = wait_sync(b->reactors[0].io, &op);
    if (rc == 0)
        rc = op.err;
    if (rc < 0)
        rn_logfmt(RN_WARN, "configs of internal topic not set", "topic=%s err=%s msg=\"%s\"",
                  RN_OFFSETS_TOPIC, rn_errname(rc), op.msg[0] ? op.msg : err);
}

typedef struct nap {
    rn_io_op op;
    bool fired;
} nap;

static void nap_done(rn_io_op *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    RN_CONTAINER_OF(op, nap, op)->fired = true;
}

static int live_brokers(rn_broker *b)
{
    int n = 0;
    for (unsigned i = 0; i < rn_metadata_broker_count(b->md); i++)
        n += !rn_metadata_broker_at(b->md, i)->fenced;
    return n;
}

/* In a cluster, __offsets gets up to three replicas (Kafka's
 * offsets.topic.replication.factor) over the brokers live when it is
 * created: before creating it, wait (bounded, and not past a stop signal)
 * until as many brokers as there are voters, at most three, have
 * registered, so a cluster started all at once does not give the group
 * offsets a single replica for good. */
static void wait_for_brokers(rn_broker *b)
{
    rn_voter voters[RN_MAX_VOTERS];
    char err[256];
    int n = b->quorum ? rn_config_parse_voters(b->cfg.quorum_voters, voters, RN_MAX_VOTERS, err,
                                               sizeof(err))
                      : 0;
    int want = n < 3 ? n : 3;
    uint64_t until = rn_now_ns() + (uint64_t)OFFSETS_WAIT_MS * 1000000ull;
    while (live_brokers(b) < want && rn_now_ns() < until) {
        sigset_t pending;
        if (sigpending(&pending) == 0 &&
            (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)))
            return; /* left pending: the reactor's signalfd stops the broker */
        nap z = {0};
        struct __kernel_timespec ts;
        rn_io_timer(b->reactors[0].io, &z.op, nap_done, &ts, 100);
        while (!z.fired) {
            int rc = rn_io_run(b->reactors[0].io, 1);
            if (rc < 0 && rc != -EINTR)
                return;
        }
    }
    if (live_brokers(b) < want)
        rn_logfmt(RN_WARN, "creating the offsets topic with fewer brokers than voters",
                  "live=%d voters=%d", live_brokers(b), n);
}

int rn_groups_open(rn_groups **out, rn_broker *b, char *err, size_t errlen)
{
    *out = NULL;
    if (!rn_metadata_find(b->md, RN_OFFSETS_TOPIC))
        wait_for_brokers(b);
    if (!rn_metadata_find(b->md, RN_OFFSETS_TOPIC)) {
        sync_op op = {0};
        int rc = rn_metadata_create_internal_topic(b->md, RN_OFFSETS_TOPIC, 1, sync_done, &op, err,
                                                   errlen);
        if (rc < 0)
            return rc;
        rc = wait_sync(b->reactors[0].io, &op);
        if (rc < 0)
            return rn_errf(rc, err, errlen, "creating %s: io_uring: %s", RN_OFFSETS_TOPIC,
                           rn_strerror(rc));
        /* In a cluster another broker may have created it meanwhile. */
        if (op.err && !(op.err == -RN_E_TOPIC_EXISTS && rn_metadata_find(b->md, RN_OFFSETS_TOPIC)))
            return rn_errf(op.err, err, errlen, "creating %s: %s", RN_OFFSETS_TOPIC, op.msg);
        if (!op.err)
            rn_logfmt(RN_INFO, "internal topic created", "topic=%s partitions=1", RN_OFFSETS_TOPIC);
    }
    ensure_offsets_configs(b);

    int rc;
    rn_groups_env env = {broker_topic_partitions, broker_offsets_log, b, NULL, NULL};
    if (b->quorum) {
        /* A cluster: this broker coordinates only while it leads __offsets,
         * and loads the groups when it starts to (rn_groups_gate). */
        env.view = broker_coord_view;
        env.replicated = broker_offsets_replicated;
        rc = rn_groups_new(out, &env);
        return rc < 0 ? rn_errf(rc, err, errlen, "out of memory") : 0;
    }
    rn_groups *g;
    rc = rn_groups_new(&g, &env);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "out of memory");
    uint64_t t0 = rn_now_ns();
    char msg[256] = "";
    rc = rn_groups_load_offsets(g, msg, sizeof(msg));
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "committed offsets not loaded; commits will fail",
                  "topic=%s err=%s msg=\"%s\"", RN_OFFSETS_TOPIC, rn_errname(rc), msg);
    } else {
        rn_offsets_stats st;
        rn_offsets_get_stats(g->offsets, &st);
        rn_logfmt(RN_INFO, "committed offsets loaded",
                  "groups=%zu records=%" PRIu64 " tombstones=%" PRIu64 " skipped=%" PRIu64
                  " ms=%.1f",
                  rn_offsets_group_count(g->offsets), st.records, st.tombstones, st.skipped,
                  (double)(rn_now_ns() - t0) / 1e6);
    }
    *out = g;
    return 0;
}

void rn_groups_close(rn_groups *g)
{
    rn_groups_free(g);
}
