/*
 * part/truncation.h — where a follower cuts its log after a leader change
 * (KIP-101, multi-round as KIP-279), as a pure function of its own
 * leader-epoch cache and the leader's OffsetsForLeaderEpoch answer.
 *
 * The follower asks the leader for the end of its own latest epoch E
 * (rn_truncation_epoch_to_ask). The leader answers with the largest epoch
 * E' <= E it has and where E' ends in its log (storage/leader_epoch.h). The
 * follower looks E' up in its own cache:
 *  - it has E' too: both logs agree up to the smaller of the two ends of
 *    E' (the same epoch means the same leader wrote it), so it cuts there
 *    and is done;
 *  - it does not (its largest epoch <= E' is older): its records from its
 *    next epoch on were written by a leader the current one never followed,
 *    so it cuts at the end of that older epoch and asks again with it.
 * Each round that is not done drops the follower's latest epoch, so the
 * search ends within as many rounds as the follower has epochs. A leader
 * that knows no epoch (an empty cache, or E below all it has kept) gives
 * UNDEFINED: the follower falls back to its high watermark, the offset it
 * knows the leader had (Kafka's behaviour before KIP-101).
 */
#ifndef RN_BROKER_PART_TRUNCATION_H
#define RN_BROKER_PART_TRUNCATION_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/leader_epoch.h"

typedef struct rn_truncation {
    int64_t offset; /* cut the log here (at or past its end: nothing to cut) */
    bool done;      /* false: cut, then ask again with rn_truncation_epoch_to_ask */
} rn_truncation;

/* The epoch to ask the leader about: the follower's latest, or
 * RN_EPOCH_UNDEFINED when its cache is empty (nothing to ask: an empty log
 * has nothing to cut; a log with no epochs cuts to its high watermark). */
int32_t rn_truncation_epoch_to_ask(const rn_leader_epochs *own);

/* One round: own is the follower's cache (borrowed), own_leo and own_hw its
 * log end and high watermark, (leader_epoch, leader_end) the leader's answer
 * for the epoch asked. The result's offset is never above own_leo. */
rn_truncation rn_truncation_step(const rn_leader_epochs *own, int64_t own_leo, int64_t own_hw,
                                 int32_t leader_epoch, int64_t leader_end);

#endif
