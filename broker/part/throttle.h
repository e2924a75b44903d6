/*
 * part/throttle.h — the catch-up throttle of replica moves (Kafka's
 * replication quotas: leader.replication.throttled.rate and
 * follower.replication.throttled.rate, kafka-reassign-partitions
 * --throttle).
 *
 * Which replicas: those a move is adding that are not in the ISR yet (what
 * `runnel topic describe` shows as AddingReplicas). Kafka throttles the
 * replicas its reassignment tool lists and, like here, never an in-sync one,
 * so ordinary followers are never slowed.
 *
 * The rate: the move's own (PartitionReassignRecord.throttle_rate, set by
 * `runnel topic move --throttle`), else the broker's configured rate; 0 is
 * no throttle. Each broker has two buckets shared by every throttled replica
 * it serves or is (rn_broker.leader_throttle, .follower_throttle), as
 * Kafka's quota is per broker, not per partition.
 *
 * A throttled fetch is never an error: the leader leaves a throttled
 * partition out of an answer while its bucket is empty (the follower gets
 * no bytes for it, after the long-poll), and a follower leaves it out of its
 * request while its own bucket is empty. A read is charged after it is sent
 * and may take the bucket below zero (one fetch's worth at most), so over
 * any second the bytes moved are at most rate plus one fetch.
 *
 * Threading: a bucket is locked (reactors of the leader, fetcher threads of
 * the follower share it). The rate functions read the partition: on its
 * owner only.
 */
#ifndef RN_BROKER_PART_THROTTLE_H
#define RN_BROKER_PART_THROTTLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rn_partition;

/* All zero is a valid empty bucket (a static rn_broker needs no init). */
typedef struct rn_throttle {
    pthread_mutex_t mu;
    int64_t tokens;  /* bytes that may go now; below 0: a debt */
    int64_t last_ns; /* when tokens were last refilled; 0 never */
} rn_throttle;

/* Whether a throttled replica may move more bytes now at rate bytes/s
 * (rate <= 0: always). */
bool rn_throttle_allows(rn_throttle *t, int64_t rate);
/* bytes moved by a throttled replica (rate as rn_throttle_allows). */
void rn_throttle_charge(rn_throttle *t, int64_t rate, size_t bytes);

/* The rate the leader p sends replica_id at: 0 when it is not throttled (no
 * move, not a replica being added, or already in the ISR). On p's owner. */
int64_t rn_throttle_leader_rate(const struct rn_partition *p, int32_t replica_id);
/* The rate this broker fetches p at as its follower (0: not throttled).
 * On p's owner. */
int64_t rn_throttle_follower_rate(const struct rn_partition *p);

#endif
