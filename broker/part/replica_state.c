/*
 * part/replica_state.c — the leader's follower table and high watermark
 * (part/replica_state.h, which states the invariants).
 *
 * A handful of replicas at most, so plain arrays searched linearly. The
 * high watermark is computed over the "maximal ISR" as Kafka does: the
 * committed ISR plus the replicas a pending expansion would add, so a
 * member about to join can never find the high watermark already past its
 * log end once it is in (it could be elected and lose what consumers saw).
 * A pending shrink keeps the member being removed in the committed ISR, and
 * so in the minimum, until the controller commits the smaller one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/part/replica_state.h"

typedef struct replica {
    int32_t id;
    int64_t leo;            /* -1: unknown (no fetch in this leader epoch) */
    int64_t caught_up_ms;   /* last time its log end reached the leader's */
    int64_t last_fetch_ms;  /* -1: none yet */
    int64_t last_fetch_leo; /* the leader's log end at that fetch */
    bool in_isr;            /* committed */
    bool proposed_in;       /* the pending proposal holds it */
} replica;

struct rn_replica_state {
    int32_t self_id, leader_epoch;
    rn_replica_config cfg;
    replica r[RN_REPLICAS_MAX];
    unsigned n;
    unsigned self; /* index of the leader in r */
    int64_t hw, epoch_start;
    bool proposing;
    rn_isr_propose_cb *cb;
    void *arg;
};

static int find(const rn_replica_state *rs, int32_t id)
{
    for (unsigned i = 0; i < rs->n; i++)
        if (rs->r[i].id == id)
            return (int)i;
    return -1;
}

/* Check isr against rs's replicas and mark r[].in_isr; nothing changes on
 * -EINVAL. */
static int apply_isr(rn_replica_state *rs, const int32_t *isr, unsigned n)
{
    bool in[RN_REPLICAS_MAX] = {false};
    if (n < 1 || n > rs->n)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        int k = find(rs, isr[i]);
        if (k < 0 || in[k])
            return -EINVAL;
        in[k] = true;
    }
    if (!in[rs->self])
        return -EINVAL;
    for (unsigned i = 0; i < rs->n; i++)
        rs->r[i].in_isr = in[i];
    return 0;
}

static unsigned isr_count(const rn_replica_state *rs)
{
    unsigned c = 0;
    for (unsigned i = 0; i < rs->n; i++)
        c += rs->r[i].in_isr;
    return c;
}

/* Recompute the high watermark (invariants 1, 2). True when it advanced. */
static bool update_hw(rn_replica_state *rs)
{
    if ((int32_t)isr_count(rs) < rs->cfg.min_insync)
        return false;
    int64_t min = -1;
    for (unsigned i = 0; i < rs->n; i++) {
        const replica *x = &rs->r[i];
        if (!x->in_isr && !x->proposed_in)
            continue;
        if (x->leo < 0)
            return false; /* a member has not fetched yet: unknown */
        if (min < 0 || x->leo < min)
            min = x->leo;
    }
    if (min > rs->hw) {
        rs->hw = min;
        return true;
    }
    return false;
}

int rn_replica_state_new(rn_replica_state **out, int32_t self_id, int32_t leader_epoch,
                         const int32_t *replicas, unsigned n_replicas, const int32_t *isr,
                         unsigned n_isr, int64_t leo, int64_t hw, int64_t epoch_start,
                         int64_t now_ms, const rn_replica_config *cfg, rn_isr_propose_cb *cb,
                         void *arg)
{
    if (n_replicas < 1 || n_replicas > RN_REPLICAS_MAX || !cfg || cfg->min_insync < 1 || hw < 0 ||
        leo < hw)
        return -EINVAL;
    rn_replica_state *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return -ENOMEM;
    rs->self_id = self_id;
    rs->leader_epoch = leader_epoch;
    rs->cfg = *cfg;
    rs->hw = hw;
    rs->epoch_start = epoch_start;
    rs->cb = cb;
    rs->arg = arg;
    int self = -1;
    for (unsigned i = 0; i < n_replicas; i++) {
        if (find(rs, replicas[i]) >= 0) {
            free(rs);
            return -EINVAL;
        }
        replica *x = &rs->r[rs->n++];
        x->id = replicas[i];
        x->leo = -1;
        /* A follower gets a full lag window from the leader's start before
         * it counts as lagging: it may not have learned of the leader yet. */
        x->caught_up_ms = now_ms;
        x->last_fetch_ms = -1;
        if (replicas[i] == self_id)
            self = (int)i;
    }
    if (self < 0) {
        free(rs);
        return -EINVAL;
    }
    rs->self = (unsigned)self;
    rs->r[self].leo = leo;
    if (apply_isr(rs, isr, n_isr) < 0) {
        free(rs);
        return -EINVAL;
    }
    update_hw(rs);
    *out = rs;
    return 0;
}

void rn_replica_state_free(rn_replica_state *rs)
{
    free(rs);
}

/* Hand the ISR that r[].in_isr says, changed by want(i), to the callback. */
static void propose(rn_replica_state *rs, const bool *want)
{
    int32_t isr[RN_REPLICAS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < rs->n; i++) {
        rs->r[i].proposed_in = want[i] && !rs->r[i].in_isr;
        if (want[i])
            isr[n++] = rs->r[i].id;
    }
    rs->proposing = true;
    rs->cb(rs->arg, isr, n);
}

bool rn_replica_state_leader_moved(rn_replica_state *rs, int64_t leo)
{
    replica *self = &rs->r[rs->self];
    if (leo > self->leo)
        self->leo = leo;
    return update_hw(rs);
}

int rn_replica_state_on_fetch(rn_replica_state *rs, int32_t replica_id, int64_t fetch_offset,
                              int64_t leader_leo, int64_t now_ms)
{
    int k = find(rs, replica_id);
    if (k < 0 || (unsigned)k == rs->self)
        return -ENOENT;
    replica *x = &rs->r[k];
    /* A fetch offset is the follower's log end: it may go back (it
     * truncated) as well as forward. */
    x->leo = fetch_offset;
    if (fetch_offset >= leader_leo)
        x->caught_up_ms = now_ms;
    else if (x->last_fetch_ms >= 0 && fetch_offset >= x->last_fetch_leo &&
             x->last_fetch_ms > x->caught_up_ms)
        x->caught_up_ms = x->last_fetch_ms;
    x->last_fetch_ms = now_ms;
    x->last_fetch_leo = leader_leo;
    bool moved = update_hw(rs);
    /* Expansion: caught up to the high watermark, and past the start of
     * this leader's epoch (so its log is this leader's history). */
    if (!x->in_isr && !rs->proposing && rs->cb && fetch_offset >= rs->hw &&
        fetch_offset >= rs->epoch_start) {
        bool want[RN_REPLICAS_MAX];
        for (unsigned i = 0; i < rs->n; i++)
            want[i] = rs->r[i].in_isr || i == (unsigned)k;
        propose(rs, want);
    }
    return moved ? 1 : 0;
}

void rn_replica_state_tick(rn_replica_state *rs, int64_t now_ms)
{
    if (rs->proposing || !rs->cb)
        return;
    bool want[RN_REPLICAS_MAX], shrink = false;
    for (unsigned i = 0; i < rs->n; i++) {
        const replica *x = &rs->r[i];
        want[i] = x->in_isr;
        /* A member whose log end equals the leader's is not lagging however
         * long ago it fetched: nothing was written meanwhile (Kafka). */
        if (x->in_isr && i != rs->self && now_ms - x->caught_up_ms > rs->cfg.lag_time_max_ms &&
            x->leo != rs->r[rs->self].leo) {
            want[i] = false;
            shrink = true;
        }
    }
    if (shrink)
        propose(rs, want);
}

int rn_replica_state_set_isr(rn_replica_state *rs, const int32_t *isr, unsigned n)
{
    if (apply_isr(rs, isr, n) < 0)
        return -EINVAL;
    rs->proposing = false;
    for (unsigned i = 0; i < rs->n; i++)
        rs->r[i].proposed_in = false;
    return update_hw(rs) ? 1 : 0;
}

void rn_replica_state_proposal_failed(rn_replica_state *rs)
{
    rs->proposing = false;
    for (unsigned i = 0; i < rs->n; i++)
        rs->r[i].proposed_in = false;
}

bool rn_replica_state_set_config(rn_replica_state *rs, const rn_replica_config *cfg)
{
    if (cfg->min_insync >= 1)
        rs->cfg.min_insync = cfg->min_insync;
    rs->cfg.lag_time_max_ms = cfg->lag_time_max_ms;
    return update_hw(rs);
}

bool rn_replica_state_hw_settled(const rn_replica_state *rs)
{
    return rs->hw >= rs->epoch_start;
}

int64_t rn_replica_state_hw(const rn_replica_state *rs)
{
    return rs->hw;
}

int32_t rn_replica_state_leader_epoch(const rn_replica_state *rs)
{
    return rs->leader_epoch;
}

bool rn_replica_state_isr_enough(const rn_replica_state *rs)
{
    return (int32_t)isr_count(rs) >= rs->cfg.min_insync;
}

unsigned rn_replica_state_isr_count(const rn_replica_state *rs)
{
    return isr_count(rs);
}

int32_t rn_replica_state_isr_member(const rn_replica_state *rs, unsigned i)
{
    for (unsigned k = 0; k < rs->n; k++) {
        if (rs->r[k].in_isr && i-- == 0)
            return rs->r[k].id;
    }
    return -1;
}

bool rn_replica_state_in_isr(const rn_replica_state *rs, int32_t replica_id)
{
    int k = find(rs, replica_id);
    return k >= 0 && rs->r[k].in_isr;
}

bool rn_replica_state_has_follower(const rn_replica_state *rs, int32_t replica_id)
{
    int k = find(rs, replica_id);
    return k >= 0 && (unsigned)k != rs->self;
}

int64_t rn_replica_state_replica_leo(const rn_replica_state *rs, int32_t replica_id)
{
    int k = find(rs, replica_id);
    return k >= 0 ? rs->r[k].leo : -1;
}

bool rn_replica_state_proposing(const rn_replica_state *rs)
{
    return rs->proposing;
}
