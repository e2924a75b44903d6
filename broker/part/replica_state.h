/*
 * part/replica_state.h — a partition leader's view of its followers: each
 * one's log end offset and when it was last caught up, the high watermark
 * they allow, and the ISR changes it asks the controller for (Kafka's
 * Partition/Replica state on the leader, DESIGN §8).
 *
 * Sans-I/O: no log, clock, socket or thread inside. The partition feeds it
 * what happened (the leader's own log end moved, a follower fetched, time
 * passed, the controller committed an ISR) and reads the high watermark
 * back; an ISR change it wants is handed to a callback as a proposal, and
 * only rn_replica_state_set_isr (the committed change) alters the ISR.
 *
 * Invariants:
 *  1. hw never moves back (the leader's own hw at becoming leader is the
 *     floor it starts from).
 *  2. hw = min over the ISR of each member's log end offset (the leader's
 *     own "log end" is what its log lets consumers see: the flushed offset
 *     with flush=always), and it does not advance while the ISR has fewer
 *     than min_insync members, nor while a member's log end is unknown (a
 *     follower that has not fetched since this leader epoch began).
 *  3. At most one proposal is outstanding: a new one is made only after the
 *     last was committed (set_isr) or given up (rn_replica_state_proposal_failed).
 *  4. The leader itself is never proposed out of the ISR.
 *
 * A follower is caught up at a fetch when its fetch offset reaches the
 * leader's log end at that moment; when it reaches the log end of its
 * previous fetch it was caught up at that previous fetch's time (Kafka's
 * lastCaughtUpTimeMs rule). An ISR member not caught up within
 * lag_time_max_ms is proposed out; a replica outside the ISR whose log end
 * reaches the high watermark (and this leader epoch's start offset, so it
 * has truncated to this leader's history) is proposed in.
 *
 * Owned by the partition's reactor, like the rest of the partition.
 */
#ifndef RN_BROKER_PART_REPLICA_STATE_H
#define RN_BROKER_PART_REPLICA_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* Most replicas a partition may have: a bound for the tables below. */
#define RN_REPLICAS_MAX 16

typedef struct rn_replica_state rn_replica_state;

typedef struct rn_replica_config {
    int64_t lag_time_max_ms; /* replica.lag.time.max.ms (Kafka's default 30000) */
    int32_t min_insync;      /* min.insync.replicas (default 1) */
} rn_replica_config;

/* The ISR the leader wants (isr[0..n) , sorted by replica order): called
 * from rn_replica_state_on_fetch or _tick, never from inside _new.
 * isr is valid during the call only. */
typedef void rn_isr_propose_cb(void *arg, const int32_t *isr, unsigned n);

/* A leader's state for leader_epoch, from the controller's decision:
 * replicas[0..n_replicas) (self_id among them), isr[0..n_isr) (a subset of
 * replicas holding self_id). leo and hw are the leader's own log end and
 * high watermark now; epoch_start is the offset this leader epoch starts
 * at (the leader's log end when it became leader). Followers start with
 * their log end unknown. cb/arg take proposals (cb may be NULL: none are
 * made). Errors: -EINVAL (counts out of 1..RN_REPLICAS_MAX, self not a
 * replica or not in the ISR, an ISR member that is not a replica, a
 * replica twice, min_insync < 1), -ENOMEM. */
int rn_replica_state_new(rn_replica_state **out, int32_t self_id, int32_t leader_epoch,
                         const int32_t *replicas, unsigned n_replicas, const int32_t *isr,
                         unsigned n_isr, int64_t leo, int64_t hw, int64_t epoch_start,
                         int64_t now_ms, const rn_replica_config *cfg, rn_isr_propose_cb *cb,
                         void *arg);
void rn_replica_state_free(rn_replica_state *rs);

/* The leader's own log end (its consumer-visible end) moved to leo.
 * Returns true when the high watermark advanced. */
bool rn_replica_state_leader_moved(rn_replica_state *rs, int64_t leo);

/* Follower replica_id fetched from fetch_offset at now_ms, while the
 * leader's log end was leader_leo. Its log end becomes fetch_offset (a
 * follower fetches from its own log end). May propose an ISR expansion.
 * Returns 1 when the high watermark advanced, 0 when not, -ENOENT when
 * replica_id is not a follower of this partition (the leader itself, or
 * not a replica: the fetch is answered NOT_LEADER_OR_FOLLOWER by the
 * caller). */
int rn_replica_state_on_fetch(rn_replica_state *rs, int32_t replica_id, int64_t fetch_offset,
                              int64_t leader_leo, int64_t now_ms);

/* Time passed: proposes an ISR shrink when a member lags. */
void rn_replica_state_tick(rn_replica_state *rs, int64_t now_ms);

/* The controller committed isr[0..n) (replicas only, holding the leader):
 * the outstanding proposal, if any, is over. Returns true when the high
 * watermark advanced (a lagging member left). Errors: -EINVAL as _new. */
int rn_replica_state_set_isr(rn_replica_state *rs, const int32_t *isr, unsigned n);

/* The controller refused or lost the last proposal: the next tick or fetch
 * may propose again. */
void rn_replica_state_proposal_failed(rn_replica_state *rs);

/* The high watermark has reached the start of this leader epoch: until
 * then it is the old one this leader knew as a follower (possibly behind
 * what the last leader had committed), so offsets answered from it (the
 * latest, or one found by time) may be stale: Kafka answers
 * OFFSET_NOT_AVAILABLE meanwhile (KIP-207). */
bool rn_replica_state_hw_settled(const rn_replica_state *rs);

/* Change the limits (AlterConfigs). Returns true when the high watermark
 * advanced (min_insync went down). */
bool rn_replica_state_set_config(rn_replica_state *rs, const rn_replica_config *cfg);

int64_t rn_replica_state_hw(const rn_replica_state *rs);
int32_t rn_replica_state_leader_epoch(const rn_replica_state *rs);
/* The ISR holds at least min_insync members (acks=all may append). */
bool rn_replica_state_isr_enough(const rn_replica_state *rs);
/* The committed ISR: count, and member i. */
unsigned rn_replica_state_isr_count(const rn_replica_state *rs);
int32_t rn_replica_state_isr_member(const rn_replica_state *rs, unsigned i);
bool rn_replica_state_in_isr(const rn_replica_state *rs, int32_t replica_id);
/* replica_id is one of the partition's replicas other than the leader. */
bool rn_replica_state_has_follower(const rn_replica_state *rs, int32_t replica_id);
/* A replica's last known log end offset (-1 unknown), for describe and lag. */
int64_t rn_replica_state_replica_leo(const rn_replica_state *rs, int32_t replica_id);
/* A proposal is outstanding. */
bool rn_replica_state_proposing(const rn_replica_state *rs);

#endif
