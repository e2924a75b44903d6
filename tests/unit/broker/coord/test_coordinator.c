/*
 * test_coordinator.c — the coordinator rules (broker/coord/coordinator.c):
 * which __offsets partition a group maps to, and what a broker does with a
 * group request given the metadata's leader, its own role and the state it
 * holds. Pure functions: each test builds a view and checks the action.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>

#include "broker/coord/coordinator.h"
#include "protocol/errors.h"

/* A three-broker view: this is broker 2, the metadata says broker 2 leads at epoch 5. */
static rn_coord_view leader_view(void)
{
    return (rn_coord_view){.single_node = false,
                           .have_partition = true,
                           .self_id = 2,
                           .leader_id = 2,
                           .leader_epoch = 5,
                           .leading = true,
                           .loaded_epoch = 5,
                           .pending = 0};
}

// One partition (today's __offsets): every group maps to 0; more spread, stay in range.
Test(coordinator, partition_is_in_range_and_stable)
{
    cr_assert_eq(rn_coord_partition("g", 1), 0);
    cr_assert_eq(rn_coord_partition("any-group", 1), 0);
    cr_assert_eq(rn_coord_partition(NULL, 3), -1);
    cr_assert_eq(rn_coord_partition("g", 0), -1);
    int seen[50] = {0};
    char id[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "g%d", i);
        int32_t p = rn_coord_partition(id, 50);
        cr_assert(p >= 0 && p < 50);
        cr_assert_eq(p, rn_coord_partition(id, 50));
        seen[p]++;
    }
    for (int p = 0; p < 50; p++)
        cr_assert_gt(seen[p], 0, "partition %d never chosen", p);
}

// A single node serves whatever the partition's role says (it leads everything).
Test(coordinator, single_node_always_serves)
{
    rn_coord_view v = {.single_node = true, .leader_id = -1, .loaded_epoch = -1};
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_SERVE);
    cr_assert_not(drop);
}

// The leader with state loaded for its epoch serves.
Test(coordinator, leader_loaded_serves)
{
    rn_coord_view v = leader_view();
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_SERVE);
    cr_assert_not(drop);
}

// A new leadership (nothing held, or held for another epoch) loads first.
Test(coordinator, new_leadership_loads)
{
    rn_coord_view v = leader_view();
    v.loaded_epoch = -1;
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_LOAD);
    cr_assert_not(drop);
    v.loaded_epoch = 3; /* led before, lost it, leads again: what it held may be stale */
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_LOAD);
    cr_assert(drop);
}

// Commits of an older leadership still in flight: load in progress, nothing dropped under them.
Test(coordinator, old_commits_in_flight_delay_the_load)
{
    rn_coord_view v = leader_view();
    v.loaded_epoch = 3;
    v.pending = 2;
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_LOADING);
    cr_assert_not(drop);
    cr_assert_eq(rn_coord_error(RN_COORD_LOADING), -RN_E_COORDINATOR_LOAD_IN_PROGRESS);
}

// Named leader by metadata, but the role change has not reached the partition yet.
Test(coordinator, elected_but_not_leading_yet_is_loading)
{
    rn_coord_view v = leader_view();
    v.leading = false;
    v.loaded_epoch = -1;
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_LOADING);
    cr_assert_not(drop);
}

// Another broker leads: NOT_COORDINATOR, and the state held from before is dropped.
Test(coordinator, another_leader_is_elsewhere_and_drops)
{
    rn_coord_view v = leader_view();
    v.leader_id = 3;
    v.leading = false;
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_ELSEWHERE);
    cr_assert(drop);
    cr_assert_eq(rn_coord_error(RN_COORD_ELSEWHERE), -RN_E_NOT_COORDINATOR);
    v.pending = 1; /* not under a commit in flight: later */
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_ELSEWHERE);
    cr_assert_not(drop);
    v.pending = 0;
    v.loaded_epoch = -1; /* nothing held: nothing to drop */
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_ELSEWHERE);
    cr_assert_not(drop);
}

// No leader (or no __offsets yet): COORDINATOR_NOT_AVAILABLE.
Test(coordinator, no_leader_is_not_available)
{
    rn_coord_view v = leader_view();
    v.leader_id = -1;
    bool drop;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_NONE);
    cr_assert(drop);
    cr_assert_eq(rn_coord_error(RN_COORD_NONE), -RN_E_COORDINATOR_NOT_AVAILABLE);
    v = leader_view();
    v.have_partition = false;
    cr_assert_eq(rn_coord_decide(&v, &drop), RN_COORD_NONE);
    cr_assert_eq(rn_coord_error(RN_COORD_SERVE), 0);
    cr_assert_eq(rn_coord_error(RN_COORD_LOAD), 0);
}
