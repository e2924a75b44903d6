/*
 * part/fetchers.h — the follower side of replication in a running broker
 * (DESIGN §8): one fetcher thread per leader this broker follows partitions
 * from, as Kafka's ReplicaFetcherThread (part/fetchers.c).
 *
 * Each thread owns one peer link (net/peer.h) to its leader's native
 * listener and one rn_replica_fetcher (part/replica_fetcher.h) over it. It
 * blocks on the network, never a reactor: the log work of each answer
 * (appends, truncation, producer state, the follower's high watermark) is
 * handed to the partition's owner reactor with rn_reactor_call, and the
 * thread waits for that work to have run before it goes on; a partition is
 * fetched again once its appends completed on the owner.
 *
 * Which partition follows which leader is decided by the partition's owner
 * (part/roles.c, from metadata), through rn_fetchers_follow: a leader change
 * moves the partition from one thread to another; a thread with nothing to
 * follow sleeps. rn_fetchers_free stops every thread (bounded: a wait for a
 * leader ends within 200 ms of the stop) and joins them.
 */
#ifndef RN_BROKER_PART_FETCHERS_H
#define RN_BROKER_PART_FETCHERS_H

#include <stdint.h>

#include "broker/broker.h"

typedef struct rn_fetchers rn_fetchers;

/* The fetchers of broker b (borrowed for their life; b->reactors must
 * outlive them). No thread runs until a partition is followed.
 * Errors: -ENOMEM. */
int rn_fetchers_new(rn_fetchers **out, rn_broker *b);
/* Stop and join every thread, then free. Call after the reactors stopped
 * (the work a thread hands to a stopped reactor is refused, never lost
 * half-done), before the partitions are closed. */
void rn_fetchers_free(rn_fetchers *fs);

/* p's owner reactor: p follows leader_id at endpoint (its native host:port;
 * copied), moving from the thread of any other leader; leader_id < 0: p is
 * followed by none. The same call twice changes nothing. A changed endpoint
 * for the same leader reconnects its thread there.
 * Errors: -ENOMEM, -EAGAIN (a thread could not be started), -EINVAL (an
 * endpoint that is not host:port). */
int rn_fetchers_follow(rn_fetchers *fs, rn_partition *p, int32_t leader_id, const char *endpoint);

/* The leader p is followed from, -1 when none (any thread). */
int32_t rn_fetchers_leader_of(rn_fetchers *fs, const rn_partition *p);

#endif
