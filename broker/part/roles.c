/*
 * part/roles.c — replication roles from metadata (part/roles.h, DESIGN §8).
 *
 * The reconcile step. Whenever metadata says a partition may have changed
 * (its topic was created or grew, the partition's leader, epoch, ISR or
 * replicas changed, or brokers came and went), reactor 0 copies what the
 * image says of it (leader, leader epoch, partition epoch, replicas, ISR,
 * the leader's native endpoint) into a message for the partition's owner,
 * which decides from the image alone:
 *
 *   image leader is this broker
 *       not leading at that epoch (or other replicas) → rn_partition_become_leader
 *       leading, the ISR differs                       → rn_partition_isr_committed
 *       no longer followed by any fetcher
 *   this broker is another replica, the leader is known
 *       not following that leader at that epoch        → rn_partition_become_follower
 *       followed by the fetcher thread of that leader (part/fetchers.h)
 *   no leader, or this broker holds no replica
 *       RN_ROLE_FOLLOWER with that leader (every door answers NOT_LEADER),
 *       followed by no one
 *
 * Every branch compares before it acts, so the same metadata twice changes
 * nothing (idempotent), and a message older than what the partition has
 * (a lower leader epoch, or the same leader epoch with a lower partition
 * epoch) is dropped, so messages crossing each other cannot undo a change.
 *
 * ISR changes: the leader's replica state (part/replica_state.h) proposes
 * a shrink or an expansion on the owner; the proposal goes to reactor 0,
 * which asks the controller with rn_metadata_alter_isr, fenced by the leader
 * epoch and partition epoch the leader knew. The committed change comes
 * back as metadata and the reconcile step applies it; a refused or failed
 * proposal is given up on the owner (rn_replica_state_proposal_failed), so
 * the next tick or fetch proposes again from the newer metadata.
 *
 * Message order: reactor 0 opens a new topic's partitions and sends the
 * topic to other reactors' tables by ring message; the reconcile message
 * goes through the owner's inbox and may arrive first. A message that does
 * not find its partition yet is posted again to the back of the owner's
 * inbox, a bounded number of times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/net/reactor.h"
#include "broker/part/fetchers.h"
#include "broker/part/partitions.h"
#include "broker/part/roles.h"

#define REPOST_MAX 1000 /* a partition not in its owner's table yet: try again this often */

typedef struct role_msg {
    rn_broker *b;
    char *topic;
    int32_t partition;
    int32_t leader, leader_epoch, partition_epoch;
    int32_t replicas[RN_REPLICAS_MAX], isr[RN_REPLICAS_MAX], target[RN_REPLICAS_MAX];
    unsigned n_replicas, n_isr, n_target;
    int64_t throttle; /* a move's catch-up throttle (part/throttle.h) */
    char endpoint[256]; /* the leader's native host:port, "" unknown */
    uint8_t topic_id[16];
    rn_log_config lc; /* the topic's log config: a replica new here opens its log with it */
    unsigned reposts;
} role_msg;

static bool has(const int32_t *v, unsigned n, int32_t id)
{
    for (unsigned i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static bool same_set(const int32_t *a, unsigned na, const int32_t *b, unsigned nb)
{
    if (na != nb)
        return false;
    for (unsigned i = 0; i < na; i++)
        if (!has(b, nb, a[i]))
            return false;
    return true;
}

/* ---- ISR proposals (owner → reactor 0 → controller) ----------------------------------------- */

typedef struct isr_msg {
    rn_broker *b;
    unsigned owner;
    uint8_t topic_id[16];
    char *topic;
    int32_t partition, leader_epoch, partition_epoch;
    int32_t isr[RN_REPLICAS_MAX];
    unsigned n_isr;
    int32_t n_was; /* the ISR's size the proposal replaces (/metrics) */
    int err;
} isr_msg;

static void isr_msg_free(isr_msg *m)
{
    free(m->topic);
    free(m);
}

/* On the owner: the proposal m made is over without a change; the next
 * tick or fetch may propose again (from the newer metadata by then). */
static void isr_given_up(void *arg)
{
    isr_msg *m = arg;
    rn_partition *p = rn_partition_find(m->b, m->topic, m->partition);
    if (p && p->role == RN_ROLE_LEADER && p->rs && p->leader_epoch == m->leader_epoch &&
        rn_replica_state_proposing(p->rs))
        rn_replica_state_proposal_failed(p->rs);
    isr_msg_free(m);
}

static void isr_back_to_owner(isr_msg *m)
{
    if (rn_reactor_call(&m->b->reactors[m->owner], isr_given_up, m) < 0)
        isr_msg_free(m); /* the owner is stopping: its state goes with it */
}

static void isr_done(void *arg, int err, const char *errmsg)
{
    isr_msg *m = arg;
    if (err == 0) {
        /* Committed: the metadata event carrying it reaches the owner
         * through the reconcile step, which ends the proposal. */
        if ((int32_t)m->n_isr < m->n_was)
            rn_metrics_isr_shrink(&m->b->reactors[0].metrics);
        else if ((int32_t)m->n_isr > m->n_was)
            rn_metrics_isr_expand(&m->b->reactors[0].metrics);
        isr_msg_free(m);
        return;
    }
    rn_logfmt(err == -RN_E_FENCED_LEADER_EPOCH ? RN_INFO : RN_WARN, "isr change not applied",
              "partition=%s-%d leader_epoch=%d partition_epoch=%d err=%s msg=\"%s\"", m->topic,
              m->partition, m->leader_epoch, m->partition_epoch, rn_errname(err),
              errmsg ? errmsg : "");
    isr_back_to_owner(m);
}

/* Whether the proposal adds a broker that may not join an ISR: one fenced
 * or unknown to metadata (Kafka's KIP-841 rule: a fenced or shutting-down
 * broker's fetches do not bring it back; it joins once it is live). */
static bool adds_ineligible(rn_broker *b, isr_msg *m, int32_t *who)
{
    const rn_topic_info *t = NULL;
    for (unsigned i = 0, n = rn_metadata_topic_count(b->md); i < n && !t; i++) {
        const rn_topic_info *x = rn_metadata_topic_at(b->md, i);
        if (memcmp(x->id, m->topic_id, 16) == 0)
            t = x;
    }
    if (!t || !t->partitions || m->partition >= t->n_partitions)
        return false; /* the controller says UNKNOWN_TOPIC */
    const rn_partition_info *pi = &t->partitions[m->partition];
    m->n_was = pi->n_isr;
    for (unsigned i = 0; i < m->n_isr; i++) {
        bool member = false;
        for (int32_t k = 0; k < pi->n_isr; k++)
            member |= pi->isr[k] == m->isr[i];
        const rn_broker_info *bi = rn_metadata_broker(b->md, m->isr[i]);
        if (!member && (!bi || bi->fenced)) {
            *who = m->isr[i];
            return true;
        }
    }
    return false;
}

/* On reactor 0: ask the controller. */
static void isr_propose_run(void *arg)
{
    isr_msg *m = arg;
    char err[256] = "";
    int32_t who;
    if (adds_ineligible(m->b, m, &who)) {
        rn_logfmt(RN_DEBUG, "isr expansion not proposed: broker fenced",
                  "partition=%s-%d broker=%d", m->topic, m->partition, who);
        isr_back_to_owner(m);
        return;
    }
    rn_logfmt(RN_INFO, "isr change proposed",
              "partition=%s-%d leader_epoch=%d partition_epoch=%d isr_size=%u", m->topic,
              m->partition, m->leader_epoch, m->partition_epoch, m->n_isr);
    int rc =
        rn_metadata_alter_isr(m->b->md, m->topic_id, m->partition, m->leader_epoch,
                              m->partition_epoch, m->isr, m->n_isr, isr_done, m, err, sizeof(err));
    if (rc < 0)
        isr_done(m, rc, err);
}

/* The leader's replica state wants isr[0..n) (on the owner; p is the arg
 * given to rn_partition_become_leader). */
static void isr_propose(void *arg, const int32_t *isr, unsigned n)
{
    rn_partition *p = arg;
    rn_broker *b = p->reactor->b;
    isr_msg *m = calloc(1, sizeof(*m));
    if (!m || !(m->topic = strdup(p->topic)) || n > RN_REPLICAS_MAX) {
        free(m);
        if (p->rs)
            rn_replica_state_proposal_failed(p->rs);
        return;
    }
    m->b = b;
    m->owner = p->reactor->index;
    memcpy(m->topic_id, p->topic_id, 16);
    m->partition = p->id;
    m->leader_epoch = p->leader_epoch;
    m->partition_epoch = p->partition_epoch;
    memcpy(m->isr, isr, n * sizeof(*isr));
    m->n_isr = n;
    if (rn_reactor_call(&b->reactors[0], isr_propose_run, m) < 0) {
        isr_msg_free(m);
        if (p->rs)
            rn_replica_state_proposal_failed(p->rs);
    }
}

/* ---- Reconcile (on the owner) -----------------------------------------------------------------
 */

static void role_msg_free(role_msg *m)
{
    free(m->topic);
    free(m);
}

static void isr_str(const int32_t *v, unsigned n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (unsigned i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "", v[i]);
}

static void role_apply(rn_broker *b, rn_partition *p, const role_msg *m)
{
    int32_t self = b->cfg.node_id;
    if (m->leader_epoch < p->leader_epoch ||
        (m->leader_epoch == p->leader_epoch && m->partition_epoch < p->partition_epoch))
        return; /* older than what p has: a newer message already came */
    p->partition_epoch = m->partition_epoch;
    memcpy(p->target, m->target, m->n_target * sizeof(*m->target));
    p->n_target = m->n_target;
    p->move_throttle = m->throttle;
    bool moving_in = has(m->target, m->n_target, self) && !has(m->isr, m->n_isr, self);
    if (moving_in != p->moving_in)
        rn_logfmt(RN_INFO, moving_in ? "replica moving in" : "replica moved in",
                  "partition=%s-%d throttle=%lld", p->topic, p->id, (long long)m->throttle);
    p->moving_in = moving_in;
    int rc = 0;
    if (p->no_replica && has(m->replicas, m->n_replicas, self)) {
        /* A replica here now (moved to this broker): its log first. */
        rc = rn_partition_open_log(p, m->topic_id, &m->lc);
        if (rc < 0)
            return; /* logged; p answers STORAGE_ERROR meanwhile */
    }
    char isr[128];
    isr_str(m->isr, m->n_isr, isr, sizeof(isr));
    if (m->leader == self) {
        if (b->fetchers)
            rn_fetchers_follow(b->fetchers, p, -1, NULL);
        rn_metrics_replica_lag(&p->m, -1); /* not a follower's lag any more */
        if (p->role != RN_ROLE_LEADER || p->leader_epoch != m->leader_epoch ||
            !same_set(p->replicas, p->n_replicas, m->replicas, m->n_replicas)) {
            rn_replica_config cfg = {.lag_time_max_ms = b->cfg.replica_lag_time_max_ms,
                                     .min_insync = m->lc.min_insync_replicas};
            rc = rn_partition_become_leader(p, self, m->leader_epoch, m->replicas, m->n_replicas,
                                            m->isr, m->n_isr, &cfg, isr_propose, p);
            if (rc == 0) {
                memcpy(p->replicas, m->replicas, m->n_replicas * sizeof(*m->replicas));
                p->n_replicas = m->n_replicas;
            }
            rn_logfmt(rc < 0 ? RN_ERROR : RN_INFO,
                      rc < 0 ? "partition could not become leader" : "partition leads",
                      "partition=%s-%d leader_epoch=%d isr=%s err=%s", p->topic, p->id,
                      m->leader_epoch, isr, rc < 0 ? rn_errname(rc) : "none");
            return;
        }
        int32_t have[RN_REPLICAS_MAX];
        unsigned n_have = rn_replica_state_isr_count(p->rs);
        for (unsigned i = 0; i < n_have && i < RN_REPLICAS_MAX; i++)
            have[i] = rn_replica_state_isr_member(p->rs, i);
        if (same_set(have, n_have, m->isr, m->n_isr))
            return;
        rc = rn_partition_isr_committed(p, m->isr, m->n_isr);
        rn_logfmt(rc < 0 ? RN_ERROR : RN_INFO, "isr changed",
                  "partition=%s-%d leader_epoch=%d isr=%s err=%s", p->topic, p->id, m->leader_epoch,
                  isr, rc < 0 ? rn_errname(rc) : "none");
        return;
    }
    /* Another broker leads, or no one does. */
    bool replica = has(m->replicas, m->n_replicas, self);
    if (p->role != RN_ROLE_FOLLOWER || p->leader_epoch != m->leader_epoch ||
        p->leader_id != m->leader) {
        rc = rn_partition_become_follower(p, m->leader_epoch, m->leader);
        rn_logfmt(rc < 0 ? RN_ERROR : RN_INFO,
                  rc < 0 ? "partition could not become follower" : "partition follows",
                  "partition=%s-%d leader=%d leader_epoch=%d replica=%s err=%s", p->topic, p->id,
                  m->leader, m->leader_epoch, replica ? "yes" : "no",
                  rc < 0 ? rn_errname(rc) : "none");
        if (rc < 0)
            return;
    }
    memcpy(p->replicas, m->replicas, m->n_replicas * sizeof(*m->replicas));
    p->n_replicas = m->n_replicas;
    int32_t from = replica && m->leader >= 0 && m->endpoint[0] ? m->leader : -1;
    if (from < 0)
        rn_metrics_replica_lag(&p->m, -1);
    if (b->fetchers) {
        rc = rn_fetchers_follow(b->fetchers, p, from, m->endpoint);
        if (rc < 0)
            rn_logfmt(RN_ERROR, "partition not handed to a fetcher",
                      "partition=%s-%d leader=%d err=%s", p->topic, p->id, from, rn_errname(rc));
    }
    if (!replica && !p->no_replica)
        rn_partition_stop_replica(p); /* moved away: its log goes (part/partitions.h) */
}

static void role_run(void *arg)
{
    role_msg *m = arg;
    rn_broker *b = m->b;
    rn_partition *p = rn_partition_find(b, m->topic, m->partition);
    rn_topic_state *ts = rn_topic_state_find(b, m->topic);
    if (!p && ts && m->partition >= 0 && m->partition < ts->n_partitions &&
        ts->parts[m->partition] && ts->parts[m->partition]->no_replica &&
        !ts->parts[m->partition]->deleting)
        p = ts->parts[m->partition]; /* no log here: the role still applies */
    if (!p) {
        bool pending = !ts || m->partition >= ts->n_partitions;
        /* Not in this reactor's table yet (the topic's message is behind
         * this one): again, behind it. A partition whose log failed to
         * open is in the table without a log: nothing to do. */
        if (pending && rn_self && m->reposts++ < REPOST_MAX &&
            rn_reactor_call(rn_self, role_run, m) == 0)
            return;
        role_msg_free(m);
        return;
    }
    role_apply(b, p, m);
    role_msg_free(m);
}

/* ---- Reactor 0
 * ------------------------------------------------------------------------------------ */

/* The native endpoint of broker id, "" when unknown (every broker applies
 * the same broker records, so every one knows every leader's). */
static void endpoint_of(rn_broker *b, int32_t id, char *buf, size_t len)
{
    const rn_broker_info *bi = rn_metadata_broker(b->md, id);
    snprintf(buf, len, "%s", bi && bi->endpoint ? bi->endpoint : "");
}

static void reconcile(rn_broker *b, const rn_topic_info *t, int32_t i)
{
    if (!t->partitions || i < 0 || i >= t->n_partitions)
        return;
    const rn_partition_info *pi = &t->partitions[i];
    role_msg *m = calloc(1, sizeof(*m));
    if (!m || !(m->topic = strdup(t->name))) {
        free(m);
        rn_logfmt(RN_ERROR, "out of memory reconciling a partition", "partition=%s-%d", t->name, i);
        return;
    }
    m->b = b;
    m->partition = i;
    memcpy(m->topic_id, t->id, 16);
    if (rn_topic_log_config(t, &b->cfg.log, &m->lc) < 0)
        m->lc = b->cfg.log;
    m->leader = pi->leader;
    m->leader_epoch = pi->leader_epoch;
    m->partition_epoch = pi->partition_epoch;
    m->n_replicas = pi->n_replicas > RN_REPLICAS_MAX ? RN_REPLICAS_MAX : (unsigned)pi->n_replicas;
    memcpy(m->replicas, pi->replicas, m->n_replicas * sizeof(*m->replicas));
    m->n_isr = pi->n_isr > RN_REPLICAS_MAX ? RN_REPLICAS_MAX : (unsigned)pi->n_isr;
    memcpy(m->isr, pi->isr, m->n_isr * sizeof(*m->isr));
    m->n_target = pi->n_target > RN_REPLICAS_MAX ? RN_REPLICAS_MAX : (unsigned)pi->n_target;
    if (m->n_target)
        memcpy(m->target, pi->target, m->n_target * sizeof(*m->target));
    m->throttle = pi->throttle;
    if (pi->leader >= 0 && pi->leader != b->cfg.node_id)
        endpoint_of(b, pi->leader, m->endpoint, sizeof(m->endpoint));
    unsigned owner = rn_partition_owner(b, t->name, i);
    if (!b->shared || (owner == 0 && rn_self == &b->reactors[0])) {
        /* Start-up (the other reactors' threads do not run yet) or our own. */
        role_run(m);
        return;
    }
    if (rn_reactor_call(&b->reactors[owner], role_run, m) < 0)
        role_msg_free(m); /* stopping */
}

static void reconcile_topic(rn_broker *b, const rn_topic_info *t)
{
    for (int32_t i = 0; t && i < t->n_partitions; i++)
        reconcile(b, t, i);
}

void rn_roles_on_metadata(rn_broker *b, const rn_metadata_event *ev)
{
    if (!b->quorum)
        return;
    switch (ev->type) {
    case RN_MD_TOPIC_CREATED:
    case RN_MD_PARTITIONS_ADDED:
        reconcile_topic(b, ev->topic);
        break;
    case RN_MD_PARTITION_CHANGED:
        reconcile(b, ev->topic, ev->partition);
        break;
    case RN_MD_BROKERS_CHANGED:
        for (unsigned i = 0, n = rn_metadata_topic_count(b->md); i < n; i++)
            reconcile_topic(b, rn_metadata_topic_at(b->md, i));
        break;
    case RN_MD_TOPIC_DELETED:
    case RN_MD_CONFIG_CHANGED:
        break;
    }
}
