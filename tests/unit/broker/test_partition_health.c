/*
 * test_partition_health.c — the one rule for under-replicated and offline
 * partitions (broker/partition_health.h): ISR smaller than the replicas;
 * no leader or a fenced one; whole counts and bounded lists in topic order.
 *
 * Topics are built by hand (rn_topic_info is plain data), so the rule is
 * checked for replica sets the cluster cannot make yet (RF=3, shrunk ISRs).
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "broker/partition_health.h"

static const int32_t r123[] = {1, 2, 3}, r1[] = {1}, r2[] = {2}, r23[] = {2, 3};

static rn_partition_info part(int32_t n, int32_t leader, const int32_t *reps, int32_t n_reps,
                              const int32_t *isr, int32_t n_isr)
{
    return (rn_partition_info){.partition = n,
                               .leader = leader,
                               .leader_epoch = 7,
                               .n_replicas = n_reps,
                               .replicas = reps,
                               .n_isr = n_isr,
                               .isr = isr};
}

/* A full ISR with a live leader is healthy. */
Test(partition_health, full_isr_live_leader_is_healthy)
{
    rn_partition_info p = part(0, 1, r123, 3, r123, 3);
    cr_assert_eq(rn_partition_health_of(&p, NULL, 0), 0);
    int32_t fenced[] = {2}; /* a fenced follower still in the ISR: not our call to make */
    cr_assert_eq(rn_partition_health_of(&p, fenced, 1), 0);
}

/* An ISR smaller than the replicas is under-replicated, whoever leads. */
Test(partition_health, shrunk_isr_is_under_replicated)
{
    rn_partition_info p = part(0, 2, r123, 3, r23, 2);
    cr_assert_eq(rn_partition_health_of(&p, NULL, 0), RN_HEALTH_UNDER_REPLICATED);
}

/* No leader, or a fenced one, is offline; with RF=1 that is the only way. */
Test(partition_health, no_leader_or_fenced_leader_is_offline)
{
    rn_partition_info none = part(0, -1, r1, 1, r1, 1);
    cr_assert_eq(rn_partition_health_of(&none, NULL, 0), RN_HEALTH_OFFLINE);
    rn_partition_info p = part(1, 1, r1, 1, r1, 1);
    int32_t fenced[] = {3, 1};
    cr_assert_eq(rn_partition_health_of(&p, fenced, 2), RN_HEALTH_OFFLINE);
    cr_assert_eq(rn_partition_health_of(&p, fenced, 1), 0); /* only 3 fenced */
}

/* The last ISR member gone with the leadership (KIP-966): both at once. */
Test(partition_health, leaderless_shrunk_isr_is_both)
{
    rn_partition_info p = part(0, -1, r123, 3, r2, 1);
    cr_assert_eq(rn_partition_health_of(&p, NULL, 0),
                 RN_HEALTH_UNDER_REPLICATED | RN_HEALTH_OFFLINE);
}

static const rn_topic_info *at(const void *arg, unsigned i)
{
    const rn_topic_info *const *ts = arg;
    return ts[i];
}

/* Counts are whole, lists stop at the cap and keep topic then partition order,
 * led-here counts only the scanner's own leaderships, NULL topics are skipped. */
Test(partition_health, scan_counts_whole_and_lists_bounded)
{
    enum { N = 400 };
    rn_partition_info *ps = calloc(N, sizeof(*ps));
    cr_assert_not_null(ps);
    for (int32_t i = 0; i < N; i++) /* every third under-replicated, led by 1 or 2 */
        ps[i] = i % 3 == 0 ? part(i, 1 + i % 2, r123, 3, r23, 2) : part(i, 1, r123, 3, r123, 3);
    rn_partition_info qs[2] = {part(0, 2, r2, 1, r2, 1), part(1, -1, r2, 1, r2, 1)};
    rn_topic_info big = {.name = "a-big", .n_partitions = N, .partitions = ps};
    rn_topic_info small = {.name = "b-small", .n_partitions = 2, .partitions = qs};
    const rn_topic_info *ts[] = {&big, NULL, &small};
    int32_t fenced[] = {2};
    rn_health *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);

    rn_health_scan(h, at, ts, 3, 1, fenced, 1, 1000);
    cr_assert_eq(h->n_partitions, N + 2);
    cr_assert_eq(h->n_under_replicated, 134);              /* 0, 3, ..., 399 */
    cr_assert_eq(h->n_under_replicated_led, 67);           /* the even ones */
    cr_assert_eq(h->n_under_listed, RN_HEALTH_MAX_LISTED); /* capped at 100 */
    cr_assert_eq(h->under[0].part->partition, 0);
    cr_assert_eq(h->under[99].part->partition, 297);
    /* Offline: big's partitions led by fenced 2 (i % 3 == 0 and i odd: 67),
     * then small-0 (leader 2, fenced) and small-1 (no leader). */
    cr_assert_eq(h->n_offline, 69);
    cr_assert_eq(h->n_offline_listed, 69);
    cr_assert_str_eq(h->offline[0].topic->name, "a-big");
    cr_assert_eq(h->offline[0].part->partition, 3);
    cr_assert_str_eq(h->offline[67].topic->name, "b-small");
    cr_assert_eq(h->offline[67].part->partition, 0);
    cr_assert_eq(h->offline[68].part->partition, 1);

    /* A smaller cap lists fewer, counts the same; nothing fenced, fewer offline. */
    rn_health_scan(h, at, ts, 3, 1, NULL, 0, 5);
    cr_assert_eq(h->n_under_listed, 5);
    cr_assert_eq(h->n_under_replicated, 134);
    cr_assert_eq(h->n_offline, 1);
    cr_assert_eq(h->n_offline_listed, 1);
    cr_assert_eq(h->offline[0].part->partition, 1);
    free(h);
    free(ps);
}
