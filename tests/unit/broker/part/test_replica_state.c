/*
 * test_replica_state.c — part/replica_state.[ch]: the leader's follower
 * table. Replicas 1 (the leader), 2 and 3; the tests play fetches and time
 * at it and check the high watermark and the ISR proposals it makes.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "broker/part/replica_state.h"

static int32_t last_isr[RN_REPLICAS_MAX];
static unsigned last_n, n_proposals;

static void on_propose(void *arg, const int32_t *isr, unsigned n)
{
    (void)arg;
    for (unsigned i = 0; i < n; i++)
        last_isr[i] = isr[i];
    last_n = n;
    n_proposals++;
}

static const int32_t all3[] = {1, 2, 3};

static rn_replica_state *leader(const int32_t *isr, unsigned n_isr, int min_insync, int64_t leo,
                                int64_t hw)
{
    n_proposals = last_n = 0;
    rn_replica_config cfg = {.lag_time_max_ms = 10000, .min_insync = min_insync};
    rn_replica_state *rs = NULL;
    cr_assert_eq(rn_replica_state_new(&rs, 1, 5, all3, 3, isr, n_isr, leo, hw, hw, 1000, &cfg,
                                      on_propose, NULL),
                 0);
    return rs;
}

/* The high watermark is the minimum log end over the ISR, and it waits for
 * every member to have fetched once in this epoch. */
Test(replica_state, hw_is_min_over_isr)
{
    rn_replica_state *rs = leader(all3, 3, 1, 100, 40);
    cr_assert_eq(rn_replica_state_hw(rs), 40);
    cr_assert_eq(rn_replica_state_on_fetch(rs, 2, 90, 100, 1001), 0); /* 3 unknown */
    cr_assert_eq(rn_replica_state_hw(rs), 40);
    cr_assert_eq(rn_replica_state_on_fetch(rs, 3, 70, 100, 1002), 1);
    cr_assert_eq(rn_replica_state_hw(rs), 70);
    cr_assert_eq(rn_replica_state_on_fetch(rs, 3, 100, 100, 1003), 1);
    cr_assert_eq(rn_replica_state_hw(rs), 90);
    rn_replica_state_leader_moved(rs, 120);
    cr_assert_eq(rn_replica_state_on_fetch(rs, 2, 120, 120, 1004), 1);
    cr_assert_eq(rn_replica_state_hw(rs), 100);
    cr_assert_eq(n_proposals, 0);
    rn_replica_state_free(rs);
}

/* A follower that truncated (its fetch offset went back) never takes the
 * high watermark back with it. */
Test(replica_state, hw_never_moves_back)
{
    rn_replica_state *rs = leader(all3, 3, 1, 100, 0);
    rn_replica_state_on_fetch(rs, 2, 80, 100, 1001);
    rn_replica_state_on_fetch(rs, 3, 80, 100, 1001);
    cr_assert_eq(rn_replica_state_hw(rs), 80);
    cr_assert_eq(rn_replica_state_on_fetch(rs, 3, 50, 100, 1002), 0);
    cr_assert_eq(rn_replica_state_hw(rs), 80);
    rn_replica_state_free(rs);
}

/* With fewer ISR members than min.insync.replicas the high watermark stays,
 * whatever the members hold; it moves again once the ISR is large enough. */
Test(replica_state, hw_frozen_below_min_insync)
{
    static const int32_t isr12[] = {1, 2};
    rn_replica_state *rs = leader(isr12, 2, 3, 100, 10);
    cr_assert_not(rn_replica_state_isr_enough(rs));
    cr_assert_eq(rn_replica_state_on_fetch(rs, 2, 100, 100, 1001), 0);
    cr_assert_eq(rn_replica_state_hw(rs), 10);
    /* 3 catches up: an expansion is proposed; the committed ISR decides. */
    rn_replica_state_on_fetch(rs, 3, 100, 100, 1002);
    cr_assert_eq(n_proposals, 1);
    cr_assert_eq(last_n, 3);
    cr_assert_eq(rn_replica_state_hw(rs), 10);
    cr_assert_eq(rn_replica_state_set_isr(rs, all3, 3), 1);
    cr_assert(rn_replica_state_isr_enough(rs));
    cr_assert_eq(rn_replica_state_hw(rs), 100);
    rn_replica_state_free(rs);
}

/* A member that stops fetching is proposed out after the lag time, and
 * only then; the leader never proposes itself out; one proposal at a time. */
Test(replica_state, shrink_after_lag_time)
{
    rn_replica_state *rs = leader(all3, 3, 1, 100, 0);
    rn_replica_state_on_fetch(rs, 2, 100, 100, 1000);
    rn_replica_state_on_fetch(rs, 3, 100, 100, 1000);
    rn_replica_state_leader_moved(rs, 200);
    rn_replica_state_on_fetch(rs, 2, 200, 200, 5000); /* 2 keeps up, 3 silent */
    rn_replica_state_tick(rs, 11000);
    cr_assert_eq(n_proposals, 0, "10 s is the limit, not yet over it");
    rn_replica_state_tick(rs, 11001);
    cr_assert_eq(n_proposals, 1);
    cr_assert_eq(last_n, 2);
    cr_assert_eq(last_isr[0], 1);
    cr_assert_eq(last_isr[1], 2);
    cr_assert(rn_replica_state_proposing(rs));
    rn_replica_state_tick(rs, 20000);
    cr_assert_eq(n_proposals, 1, "no second proposal while one is outstanding");
    /* Until the controller commits, 3 still holds the high watermark back. */
    cr_assert_eq(rn_replica_state_hw(rs), 100);
    static const int32_t isr12[] = {1, 2};
    cr_assert_eq(rn_replica_state_set_isr(rs, isr12, 2), 1);
    cr_assert_eq(rn_replica_state_hw(rs), 200);
    cr_assert_not(rn_replica_state_in_isr(rs, 3));
    rn_replica_state_free(rs);
}

/* A follower behind the leader's end but at the end of its previous fetch
 * was caught up at that previous fetch: a busy partition does not shrink
 * a follower that keeps pace one fetch behind. */
Test(replica_state, caught_up_at_previous_fetch)
{
    rn_replica_state *rs = leader(all3, 3, 1, 100, 0);
    int64_t leo = 100;
    for (int64_t t = 1000; t <= 60000; t += 500) {
        /* Each fetch asks from where the leader ended at the last one. */
        rn_replica_state_on_fetch(rs, 2, leo, leo + 10, t);
        rn_replica_state_on_fetch(rs, 3, leo, leo + 10, t);
        leo += 10;
        rn_replica_state_leader_moved(rs, leo);
        rn_replica_state_tick(rs, t);
    }
    cr_assert_eq(n_proposals, 0);
    rn_replica_state_free(rs);
}

/* An idle partition: a member whose log end equals the leader's does not
 * lag however long ago it fetched. */
Test(replica_state, idle_member_not_shrunk)
{
    rn_replica_state *rs = leader(all3, 3, 1, 100, 0);
    rn_replica_state_on_fetch(rs, 2, 100, 100, 1000);
    rn_replica_state_on_fetch(rs, 3, 100, 100, 1000);
    rn_replica_state_tick(rs, 100000);
    cr_assert_eq(n_proposals, 0);
    rn_replica_state_free(rs);
}

/* A replica outside the ISR is proposed in once it reaches the high
 * watermark and this leader epoch's start, not before; a refused proposal
 * may be made again. */
Test(replica_state, expand_when_caught_up)
{
    static const int32_t isr12[] = {1, 2};
    n_proposals = 0;
    rn_replica_config cfg = {.lag_time_max_ms = 10000, .min_insync = 1};
    rn_replica_state *rs = NULL;
    /* This epoch started at 90: a log ending below it has not truncated to
     * this leader's history yet. */
    cr_assert_eq(rn_replica_state_new(&rs, 1, 5, all3, 3, isr12, 2, 100, 50, 90, 1000, &cfg,
                                      on_propose, NULL),
                 0);
    rn_replica_state_on_fetch(rs, 2, 100, 100, 1001);
    cr_assert_eq(rn_replica_state_hw(rs), 100);
    rn_replica_state_on_fetch(rs, 3, 60, 100, 1002);
    cr_assert_eq(n_proposals, 0);
    rn_replica_state_on_fetch(rs, 3, 99, 100, 1003);
    cr_assert_eq(n_proposals, 0, "below the high watermark");
    rn_replica_state_on_fetch(rs, 3, 100, 100, 1004);
    cr_assert_eq(n_proposals, 1);
    cr_assert_eq(last_n, 3);
    rn_replica_state_proposal_failed(rs);
    rn_replica_state_on_fetch(rs, 3, 100, 100, 1005);
    cr_assert_eq(n_proposals, 2);
    rn_replica_state_free(rs);
}

/* While an expansion is pending the joining replica counts in the high
 * watermark, so it cannot be elected missing what consumers already saw. */
Test(replica_state, pending_expand_counts_in_hw)
{
    static const int32_t isr12[] = {1, 2};
    rn_replica_state *rs = leader(isr12, 2, 1, 100, 50);
    rn_replica_state_on_fetch(rs, 2, 60, 100, 1001);
    rn_replica_state_on_fetch(rs, 3, 60, 100, 1002);
    cr_assert_eq(n_proposals, 1);
    rn_replica_state_on_fetch(rs, 2, 100, 100, 1003);
    cr_assert_eq(rn_replica_state_hw(rs), 60);
    rn_replica_state_free(rs);
}

/* Bad tables are refused; a fetch from the leader itself or a stranger is
 * not a follower's. */
Test(replica_state, refuses_bad_input)
{
    rn_replica_config cfg = {.lag_time_max_ms = 10000, .min_insync = 1};
    rn_replica_state *rs = NULL;
    static const int32_t dup[] = {1, 2, 2};
    static const int32_t isr_no_self[] = {2, 3};
    static const int32_t isr_stranger[] = {1, 9};
    cr_assert_eq(rn_replica_state_new(&rs, 1, 0, dup, 3, all3, 1, 0, 0, 0, 0, &cfg, NULL, NULL),
                 -EINVAL);
    cr_assert_eq(rn_replica_state_new(&rs, 4, 0, all3, 3, all3, 3, 0, 0, 0, 0, &cfg, NULL, NULL),
                 -EINVAL);
    cr_assert_eq(
        rn_replica_state_new(&rs, 1, 0, all3, 3, isr_no_self, 2, 0, 0, 0, 0, &cfg, NULL, NULL),
        -EINVAL);
    cr_assert_eq(
        rn_replica_state_new(&rs, 1, 0, all3, 3, isr_stranger, 2, 0, 0, 0, 0, &cfg, NULL, NULL),
        -EINVAL);
    cr_assert_eq(rn_replica_state_new(&rs, 1, 0, all3, 0, all3, 3, 0, 0, 0, 0, &cfg, NULL, NULL),
                 -EINVAL);
    rn_replica_state *ok = leader(all3, 3, 1, 0, 0);
    cr_assert_eq(rn_replica_state_on_fetch(ok, 1, 0, 0, 1), -ENOENT);
    cr_assert_eq(rn_replica_state_on_fetch(ok, 7, 0, 0, 1), -ENOENT);
    cr_assert_eq(rn_replica_state_set_isr(ok, isr_no_self, 2), -EINVAL);
    cr_assert(rn_replica_state_in_isr(ok, 3), "a refused ISR changes nothing");
    rn_replica_state_free(ok);
}

/* KIP-207: a new leader's high watermark is the one it had as a follower
 * until its followers fetch past its epoch's start; offsets answered from it
 * meanwhile could be stale (ListOffsets answers OFFSET_NOT_AVAILABLE). */
Test(replica_state, hw_settles_at_the_epoch_start)
{
    rn_replica_config cfg = {.lag_time_max_ms = 10000, .min_insync = 1};
    rn_replica_state *rs;
    /* Led from offset 100 on (its log end), known high watermark 60. */
    cr_assert_eq(rn_replica_state_new(&rs, 1, 5, all3, 3, all3, 3, 100, 60, 100, 1000, &cfg, NULL,
                                      NULL),
                 0);
    cr_assert_not(rn_replica_state_hw_settled(rs), "hw 60 is short of the epoch start 100");
    rn_replica_state_on_fetch(rs, 2, 100, 100, 1001);
    cr_assert_not(rn_replica_state_hw_settled(rs), "follower 3 not heard from yet");
    rn_replica_state_on_fetch(rs, 3, 100, 100, 1002);
    cr_assert_eq(rn_replica_state_hw(rs), 100);
    cr_assert(rn_replica_state_hw_settled(rs));
    rn_replica_state_free(rs);
    /* A leader whose known high watermark is its log end is settled at once. */
    cr_assert_eq(rn_replica_state_new(&rs, 1, 6, all3, 3, all3, 3, 100, 100, 100, 1000, &cfg, NULL,
                                      NULL),
                 0);
    cr_assert(rn_replica_state_hw_settled(rs));
    rn_replica_state_free(rs);
}
