/*
 * test_partition_epoch.c — rn_partition_check_epoch, the one KIP-320 check
 * Fetch and ListOffsets (and through it OffsetsForLeaderEpoch) share.
 */
#include <criterion/criterion.h>

#include "broker/part/partitions.h"
#include "protocol/errors.h"

// The partition's own epoch passes, -1 is not checked, older is fenced, newer is unknown.
Test(partition_epoch, fenced_and_unknown)
{
    rn_partition p = {.leader_epoch = 4};
    cr_assert_eq(rn_partition_check_epoch(&p, 4), 0);
    cr_assert_eq(rn_partition_check_epoch(&p, -1), 0);
    cr_assert_eq(rn_partition_check_epoch(&p, 3), -RN_E_FENCED_LEADER_EPOCH);
    cr_assert_eq(rn_partition_check_epoch(&p, 0), -RN_E_FENCED_LEADER_EPOCH);
    cr_assert_eq(rn_partition_check_epoch(&p, 5), -RN_E_UNKNOWN_LEADER_EPOCH);
    p.leader_epoch = 0;
    cr_assert_eq(rn_partition_check_epoch(&p, 0), 0);
    cr_assert_eq(rn_partition_check_epoch(&p, 1), -RN_E_UNKNOWN_LEADER_EPOCH);
}
