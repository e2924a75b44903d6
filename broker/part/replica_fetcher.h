/*
 * part/replica_fetcher.h — a follower's fetcher: the partitions this broker
 * follows from one leader, kept in step with it over one peer link
 * (broker/net/peer.h, DESIGN §8).
 *
 * For each partition (in RN_ROLE_FOLLOWER, set by the controller through
 * rn_partition_become_follower) the fetcher:
 *  1. after every leader epoch change, truncates: it asks the leader
 *     OffsetsForLeaderEpoch for the end of its own latest epoch and cuts
 *     its log as part/truncation.h says, round after round until done
 *     (KIP-101/279), then rebuilds the partition's producer state from the
 *     log that is left;
 *  2. then fetches from its log end with its node id and the leader epoch
 *     it follows (the leader records the offset as this follower's log end,
 *     DESIGN §8) and appends what comes back verbatim: each batch at the
 *     offset the leader gave it (a batch that would land elsewhere stops the
 *     partition and sends it back to 1), with the leader's epoch, so the
 *     leader-epoch cache and the producer state (rn_producer_state_replicated)
 *     follow the leader's; the leader's high watermark becomes the
 *     partition's (rn_partition_follower_hw).
 * A fenced or deposed leader (FENCED_LEADER_EPOCH, NOT_LEADER) parks the
 * partition until the controller gives it a new epoch; UNKNOWN_LEADER_EPOCH
 * (the leader has not heard of it yet) is retried; a log end below the
 * leader's log start restarts the log there (rn_log_truncate_fully). A link
 * failure fails the round; the next round connects again.
 *
 * Threads: rn_replica_fetcher_run_once blocks on the peer for up to its
 * timeout, so it runs on a thread of its own (part/fetchers.h: one per
 * leader, as Kafka's ReplicaFetcherThread), never on a reactor. Everything
 * that touches a partition (its role and epoch, its log, its producer
 * state) runs through cfg.on_owner, which hands the work to the partition's
 * owner reactor and returns once it ran; the answer's bytes stay valid
 * meanwhile (the peer's buffer lives until its callback returns). With no
 * on_owner the work runs on the calling thread (tests, where that thread
 * owns the logs and runs their io). Appends are submitted to the log's io
 * and complete on the owner; a partition is not fetched again until its
 * last fetch's appends completed, and cfg.idle is told when they have.
 */
#ifndef RN_BROKER_PART_REPLICA_FETCHER_H
#define RN_BROKER_PART_REPLICA_FETCHER_H

#include <stdint.h>

#include "broker/net/peer.h"
#include "broker/part/partitions.h"

typedef struct rn_replica_fetcher rn_replica_fetcher;

/* Work on a partition, on its owner: p is NULL when the partition is gone
 * (deleted, or not the one the fetcher was given any more). */
typedef void rn_replica_work_fn(void *arg, rn_partition *p);
/* Run fn(arg, p or NULL) on the owner of p (topic/partition name it; p is
 * only compared, never read, by the caller's thread) and return once it
 * ran: 0, or a negative error when it cannot run (the owner is stopping:
 * fn never ran). */
typedef int rn_replica_owner_fn(void *ctx, rn_partition *p, const char *topic, int32_t partition,
                                rn_replica_work_fn *fn, void *arg);

typedef struct rn_replica_fetcher_config {
    int32_t self_id;      /* this broker's node id: the fetch's replica_id */
    uint32_t max_bytes;   /* replica.fetch.response.max.bytes (default 10 MiB) */
    uint32_t part_bytes;  /* replica.fetch.max.bytes per partition (default 1 MiB) */
    uint32_t max_wait_ms; /* replica.fetch.wait.max.ms: the leader's long poll (500) */
    int timeout_ms;       /* an answer later than max_wait_ms + this cuts the link (30000) */
    rn_replica_owner_fn *on_owner; /* NULL: partition work on the calling thread */
    void *owner_ctx;
    /* A partition's appends have all completed (from the owner's thread):
     * the fetcher may fetch it again. NULL: not told. */
    void (*idle)(void *ctx);
    void *idle_ctx;
    /* When set, a wait for the leader ends early once *stop is nonzero
     * (read atomically): the round fails with -ECANCELED. */
    const int *stop;
    /* A partition parked on FENCED_LEADER_EPOCH or NOT_LEADER asks again
     * after this long even when its epoch did not change (a leader behind
     * its own metadata); 0: only after an epoch change. */
    int park_retry_ms;
    /* The follower's bucket for replicas a move is adding (part/throttle.h):
     * a partition whose rate (rn_throttle_follower_rate, read on its owner)
     * is not 0 is left out of a fetch while the bucket is empty. NULL: none. */
    struct rn_throttle *throttle;
} rn_replica_fetcher_config;

void rn_replica_fetcher_config_default(rn_replica_fetcher_config *c);

/* A fetcher over peer (borrowed for the fetcher's life; the leader's link).
 * Errors: -EINVAL (self_id < 0), -ENOMEM. */
int rn_replica_fetcher_new(rn_replica_fetcher **out, rn_peer *peer,
                           const rn_replica_fetcher_config *cfg);
/* Free the fetcher. Appends still in flight must have completed
 * (rn_replica_fetcher_busy is 0). */
void rn_replica_fetcher_free(rn_replica_fetcher *f);

/* Follow p (borrowed until removed; RN_ROLE_FOLLOWER): it starts by
 * truncating. p->topic and p->id are copied here (the caller's thread must
 * be allowed to read them). Errors: -EEXIST (already followed), -ENOMEM. */
int rn_replica_fetcher_add(rn_replica_fetcher *f, rn_partition *p);
/* rn_replica_fetcher_add for a thread that may not read p: topic and
 * partition name it (topic copied). */
int rn_replica_fetcher_add_named(rn_replica_fetcher *f, rn_partition *p, const char *topic,
                                 int32_t partition);
/* Talk to the leader over peer from the next round on (borrowed as in _new;
 * the old peer is the caller's to free, with no request of f waiting on it
 * between rounds). */
void rn_replica_fetcher_set_peer(rn_replica_fetcher *f, rn_peer *peer);
/* Partitions followed. */
unsigned rn_replica_fetcher_count(const rn_replica_fetcher *f);
/* Stop following p. Errors: -ENOENT, -EBUSY (appends in flight: run io
 * and try again). */
int rn_replica_fetcher_remove(rn_replica_fetcher *f, rn_partition *p);

/* One round: truncation questions for the partitions whose epoch changed,
 * else one Fetch for all others ready to fetch; waits for the answer (up to
 * the leader's long poll plus cfg.timeout_ms, never past timeout_ms when
 * that is >= 0) and applies it. Returns how many partitions moved (cut,
 * appended, or changed state), 0 when nothing did or nothing was asked,
 * or the link's error (-errno; rn_replica_fetcher_errmsg says why). */
int rn_replica_fetcher_run_once(rn_replica_fetcher *f, int timeout_ms);

/* Appends submitted and not yet completed, over every partition. */
unsigned rn_replica_fetcher_busy(const rn_replica_fetcher *f);
/* The last failure ("" when none), naming the partition or the link.
 * Valid until the next call on f. */
const char *rn_replica_fetcher_errmsg(const rn_replica_fetcher *f);

#endif
