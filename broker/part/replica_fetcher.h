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
 * timeout and touches the partitions' logs, so it runs where both are
 * allowed: on a thread that owns the partitions' logs and nothing else that
 * must not block (tests; a fetcher thread that owns its partitions' io once
 * the controller wiring hands logs to it). Appends are submitted to the
 * log's io and complete from rn_io_run; a partition is not fetched again
 * until its last fetch's appends completed.
 */
#ifndef RN_BROKER_PART_REPLICA_FETCHER_H
#define RN_BROKER_PART_REPLICA_FETCHER_H

#include <stdint.h>

#include "broker/net/peer.h"
#include "broker/part/partitions.h"

typedef struct rn_replica_fetcher rn_replica_fetcher;

typedef struct rn_replica_fetcher_config {
    int32_t self_id;      /* this broker's node id: the fetch's replica_id */
    uint32_t max_bytes;   /* replica.fetch.response.max.bytes (default 10 MiB) */
    uint32_t part_bytes;  /* replica.fetch.max.bytes per partition (default 1 MiB) */
    uint32_t max_wait_ms; /* replica.fetch.wait.max.ms: the leader's long poll (500) */
    int timeout_ms;       /* an answer later than max_wait_ms + this cuts the link (30000) */
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
 * truncating. Errors: -EEXIST (already followed), -ENOMEM. */
int rn_replica_fetcher_add(rn_replica_fetcher *f, rn_partition *p);
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
