/*
 * part/truncation.c — the follower's truncation rule (part/truncation.h),
 * as Kafka's AbstractFetcherThread.getOffsetTruncationState computes it.
 */
#include "broker/part/truncation.h"

int32_t rn_truncation_epoch_to_ask(const rn_leader_epochs *own)
{
    return rn_leader_epochs_latest(own);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

rn_truncation rn_truncation_step(const rn_leader_epochs *own, int64_t own_leo, int64_t own_hw,
                                 int32_t leader_epoch, int64_t leader_end)
{
    rn_truncation t = {.offset = min64(own_hw, own_leo), .done = true};
    if (leader_epoch == RN_EPOCH_UNDEFINED || leader_end == RN_EPOCH_OFFSET_UNDEFINED)
        return t;
    int32_t f_epoch;
    int64_t f_end;
    rn_leader_epochs_end_offset_for(own, leader_epoch, own_leo, &f_epoch, &f_end);
    if (f_epoch == RN_EPOCH_UNDEFINED)
        return t; /* an empty cache: nothing to compare with */
    if (f_epoch != leader_epoch) {
        /* Ours after f_end was written in an epoch the leader never had. */
        t.offset = min64(f_end, own_leo);
        t.done = false;
        return t;
    }
    t.offset = min64(min64(f_end, leader_end), own_leo);
    return t;
}
