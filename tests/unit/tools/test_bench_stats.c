/*
 * test_bench_stats.c — the open-loop schedule and the percentiles of
 * `runnel bench` (tools/bench_stats.c): due times come from the index and do
 * not drift, a record sent late still counts from its due time, and the
 * percentiles are Kafka's index into the sorted latencies.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "tools/bench_stats.h"

/* Record i is due at start + i / rate, to the microsecond. */
Test(bench_stats, due_times_follow_the_rate)
{
    bench_schedule s = {1000, 150000};
    cr_assert_eq(bench_due_us(&s, 0), 1000);
    cr_assert_eq(bench_due_us(&s, 3), 1020);
    cr_assert_eq(bench_due_us(&s, 150000), 1000 + 1000000);
    bench_schedule one = {0, 1};
    cr_assert_eq(bench_due_us(&one, 7), 7000000);
}

/* Ten million records at 3 records/s: the last is due at exactly the right
 * time, where adding a rounded interval per record would drift by seconds. */
Test(bench_stats, schedule_does_not_drift)
{
    bench_schedule s = {0, 3};
    cr_assert_eq(bench_due_us(&s, 30000000), 10000000LL * 1000000);
    bench_schedule fast = {5, 830000};
    /* 8.3 M records = 10 s; 1/830000 s is not a whole number of µs. */
    cr_assert_eq(bench_due_us(&fast, 8300000), 5 + 10000000);
}

/* The schedule does not move when the sender falls behind: a record due at
 * 100 µs, sent at 5,000 µs (the producer blocked) and acknowledged at
 * 5,300 µs has 5,200 µs of latency, not 300. */
Test(bench_stats, late_send_counts_from_due_time)
{
    bench_schedule s = {0, 10000}; /* one every 100 µs */
    int64_t due = bench_due_us(&s, 1);
    cr_assert_eq(due, 100);
    int64_t sent = 5000, ack = 5300;
    cr_assert_eq(bench_latency_us(due, ack), 5200);
    cr_assert_eq(bench_latency_us(sent, ack), 300); /* what closed loop would say */
    /* Record 2 was due at 200 and went in the same burst. */
    cr_assert_eq(bench_latency_us(bench_due_us(&s, 2), ack), 5100);
}

/* Latency is clamped: never negative, never wrapping. */
Test(bench_stats, latency_is_clamped)
{
    cr_assert_eq(bench_latency_us(100, 50), 0);
    cr_assert_eq(bench_latency_us(0, (int64_t)UINT32_MAX + 99), UINT32_MAX);
}

/* The radix sort agrees with a plain ordering, over values spanning
 * microseconds to minutes and with duplicates. */
Test(bench_stats, sort_orders_latencies)
{
    enum { N = 100000 };
    float *a = malloc(N * sizeof(*a));
    cr_assert_not_null(a);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        a[i] = (float)(x % 1000000) / (float)(1 + x % 977); /* 0 .. 1e6 */
        if (i % 10 == 0)
            a[i] = 0.25f;
    }
    bench_sort_latencies(a, N);
    for (int i = 1; i < N; i++)
        cr_assert_leq(a[i - 1], a[i], "at %d: %g > %g", i, a[i - 1], a[i]);
    free(a);
    float one[1] = {3};
    bench_sort_latencies(one, 1);
    cr_assert_eq(one[0], 3);
    bench_sort_latencies(NULL, 0);
}

/* Percentiles are sorted[(n * pct)]: for 1..1000 ms the p50 is 501, p99 991,
 * p99.9 1000; one slow record in a thousand shows at p99.9 and not at p99. */
Test(bench_stats, percentiles_take_kafkas_index)
{
    float a[1000];
    for (int i = 0; i < 1000; i++)
        a[i] = (float)(1000 - i);
    bench_sort_latencies(a, 1000);
    cr_assert_eq(bench_percentile(a, 1000, 0.5), 501);
    cr_assert_eq(bench_percentile(a, 1000, 0.99), 991);
    cr_assert_eq(bench_percentile(a, 1000, 0.999), 1000);
    for (int i = 0; i < 1000; i++)
        a[i] = 1;
    a[500] = 250;
    bench_sort_latencies(a, 1000);
    cr_assert_eq(bench_percentile(a, 1000, 0.99), 1);
    cr_assert_eq(bench_percentile(a, 1000, 0.999), 250);
}

/* Few records: the index never runs past the end; none gives 0. */
Test(bench_stats, percentile_of_few_records)
{
    float a[3] = {1, 2, 3};
    cr_assert_eq(bench_percentile(a, 3, 0.999), 3);
    cr_assert_eq(bench_percentile(a, 3, 0.5), 2);
    cr_assert_eq(bench_percentile(a, 0, 0.99), 0);
}
