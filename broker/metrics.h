/*
 * metrics.h — counters and latency histograms runneld keeps (DESIGN §6).
 *
 * Plain integers bumped on the owning reactor's thread; no atomics on the hot
 * path: each reactor keeps its own rn_metrics (rn_reactor.metrics) and
 * rn_metrics_render sums them. Partition counters live in the partition and
 * are bumped only by its owner. Rendered in the Prometheus text format with the
 * `runnel_` prefix by rn_metrics_render(); the HTTP gateway serves it at
 * /metrics.
 */
#ifndef RN_BROKER_METRICS_H
#define RN_BROKER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/net/bufpool.h"

#define RN_METRICS_N_API     16
#define RN_METRICS_N_BUCKETS 16

/* Per partition: what came in and went out. */
typedef struct rn_partition_metrics {
    uint64_t bytes_in, records_in, batches_in;
    uint64_t bytes_out, records_out;
    uint64_t produce_errors;
    /* A follower's lag behind its leader (rn_metrics_replica_lag): offsets,
     * shown while replica_following is set. */
    uint64_t replica_lag;
    uint64_t replica_following;
} rn_partition_metrics;

typedef struct rn_api_metrics {
    uint64_t requests, errors;
    uint64_t buckets[RN_METRICS_N_BUCKETS]; /* cumulative at render, per bucket here */
    uint64_t sum_us;
} rn_api_metrics;

typedef struct rn_metrics {
    rn_api_metrics api[RN_METRICS_N_API];
    uint64_t connections_total, connections_active, connections_rejected;
    uint64_t bytes_received, bytes_sent;
    uint64_t protocol_errors;
    uint64_t isr_shrinks, isr_expands; /* rn_metrics_isr_shrink / _expand */
    rn_bufpool_stats frame_pool;       /* the reactor's frame buffers (net/bufpool.h) */
} rn_metrics;

/* Upper bounds of the latency buckets, in microseconds (the last is +Inf). */
extern const uint64_t rn_metrics_bucket_us[RN_METRICS_N_BUCKETS];

/* Count one request of api that took dur_ns and ended with err (0 or negative). */
void rn_metrics_observe(rn_metrics *m, int api, int err, uint64_t dur_ns);

/* Replication's counters (DESIGN §8), for the leader's ISR changes once the
 * controller has committed them: the leader calls one from the callback of
 * rn_metadata_alter_isr (broker/meta/metadata.h) when err is 0, on that
 * thread (reactor 0, the metadata's owner), with that reactor's metrics:
 * rn_metrics_isr_shrink(&b->reactors[0].metrics) when the new ISR has fewer
 * members than the one it replaced, rn_metrics_isr_expand(...) when more.
 * (Any thread may bump its own reactor's rn_metrics; render sums them all.)
 * Rendered as runnel_isr_shrinks_total and runnel_isr_expands_total (Kafka's
 * IsrShrinksPerSec and IsrExpandsPerSec, as counters). */
void rn_metrics_isr_shrink(rn_metrics *m);
void rn_metrics_isr_expand(rn_metrics *m);

/* A follower's lag on one partition it replicates: the replica fetcher calls
 * it on the reactor that owns the partition, after each fetch answer from
 * the leader, with the partition's counters (pa->m): lag = the leader's log
 * end offset (or high watermark, as the answer gives it) minus this
 * replica's log end offset, shown as
 * runnel_partition_replica_lag{topic,partition}. lag < 0 when this broker
 * stops following the partition (it became the leader, or is no replica any
 * more): the series disappears. */
void rn_metrics_replica_lag(rn_partition_metrics *m, int64_t lag);

struct rn_broker;
/* Render every metric, broker-wide and per topic/partition, in the Prometheus
 * text format into a malloc'd buffer the caller frees. Errors: -ENOMEM. */
int rn_metrics_render(struct rn_broker *b, char **out, size_t *len);

#endif
