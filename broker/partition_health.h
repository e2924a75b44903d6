/*
 * partition_health.h — which partitions are under-replicated or offline, read
 * from the metadata image (DESIGN §8; Kafka's UnderReplicatedPartitions and
 * OfflinePartitionsCount).
 *
 * One rule, one place: `runnel cluster status` (API 18, api/cluster.c), the
 * /metrics gauges (metrics.c) and the console's cluster view (GET /cluster,
 * which asks API 18) all classify partitions here:
 *
 *   under-replicated  the ISR is smaller than the replica set;
 *   offline           no leader (-1), or its leader is a fenced broker.
 *
 * A partition can be both (its last ISR member died with the leadership).
 * Only the image's fields are read (leader, replicas, isr, and its brokers'
 * fenced flags), so the answer is whatever the controller last committed:
 * applying a fence elects a new leader from the ISR and drops the fenced
 * broker from ISRs (image.h), so a fenced broker's RF=1 partitions show
 * offline (no leader) and its RF=3 ones under-replicated; ISR changes by
 * the replication code show as they commit.
 *
 * Pure: no clock, no I/O, no allocation. The owner of the image (reactor 0)
 * calls it; the image's pointers it returns are valid until the next record
 * is applied.
 */
#ifndef RN_BROKER_PARTITION_HEALTH_H
#define RN_BROKER_PARTITION_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/meta/image.h"

/* Partitions listed by name in each list (the counts are always whole). */
#define RN_HEALTH_MAX_LISTED 100

enum {
    RN_HEALTH_UNDER_REPLICATED = 1, /* n_isr < n_replicas */
    RN_HEALTH_OFFLINE = 2,          /* leader -1 or fenced */
};

/* The RN_HEALTH_* bits of one partition; fenced[0..n_fenced) are the fenced
 * brokers' ids (borrowed, any order). 0: healthy. */
unsigned rn_partition_health_of(const rn_partition_info *p, const int32_t *fenced, size_t n_fenced);

typedef struct rn_health_item {
    const rn_topic_info *topic; /* borrowed from the image */
    const rn_partition_info *part;
} rn_health_item;

typedef struct rn_health {
    int64_t n_partitions;
    int64_t n_under_replicated, n_offline;
    int64_t n_under_replicated_led; /* of the under-replicated, those `self` leads */
    size_t n_under_listed, n_offline_listed;
    rn_health_item under[RN_HEALTH_MAX_LISTED]; /* the first ones, by topic name and partition */
    rn_health_item offline[RN_HEALTH_MAX_LISTED];
} rn_health;

/* Classify every partition of n_topics topics (topic_at(arg, i) for i in
 * 0..n_topics, in the order they are to be listed; NULL entries are
 * skipped) into h, listing at most max_listed of each kind (capped at
 * RN_HEALTH_MAX_LISTED). self is this broker's node id (for
 * n_under_replicated_led). Never fails. */
void rn_health_scan(rn_health *h, const rn_topic_info *(*topic_at)(const void *arg, unsigned i),
                    const void *arg, unsigned n_topics, int32_t self, const int32_t *fenced,
                    size_t n_fenced, size_t max_listed);

struct rn_metadata;
/* rn_health_scan over every topic of md's image (sorted by name), with the
 * brokers the same image holds fenced (none on a single node): partitions
 * and fencing from one applied state, never two. The image's owner only
 * (reactor 0). */
void rn_health_scan_metadata(rn_health *h, const struct rn_metadata *md, int32_t self,
                             size_t max_listed);

#endif
