/*
 * placement.h — where a new partition's replicas go (DESIGN §8: the
 * controller's replica placement).
 *
 * A pure function of the live brokers, the replication factor, the topic id
 * and the partition number, so it is tested alone and any broker that
 * proposes a topic places it the same way. Replicas go round the live
 * brokers (sorted by id) from a start that moves by one per partition and by
 * the topic id's first byte per topic: a topic's leaders (the first replica)
 * are spread over every broker, and topics do not all start on the same one.
 * That first replica is the partition's preferred leader: after failovers
 * the controller moves leadership back to it once it is in sync again.
 */
#ifndef RN_BROKER_META_PLACEMENT_H
#define RN_BROKER_META_PLACEMENT_H

#include <stdint.h>

#include "broker/meta/image.h"

/* replicas[0..rf) for partition of topic id over live[0..n_live) (node ids,
 * sorted, distinct). replicas[0] is the partition's leader. Returns 0, or
 * -EINVAL when rf < 1 or rf > n_live. */
int rn_placement_assign(const int32_t *live, int n_live, int rf, const uint8_t id[16],
                        int32_t partition, int32_t *replicas);

/* The preferred-leader election p wants (Kafka's auto leader rebalance):
 * its preferred replica (the first) when that is not the leader, is live
 * in img and in p's ISR; else -1 (nothing to do, or not safe yet: a
 * replica outside the ISR may be missing records). */
int32_t rn_placement_preferred(const rn_image *img, const rn_partition_info *p);

#endif
