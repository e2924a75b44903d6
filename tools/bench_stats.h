/*
 * bench_stats.h — the arithmetic of `runnel bench` (tools/cli_bench.c): the
 * open-loop send schedule and the latency percentiles, apart from any I/O so
 * tests/unit/tools/test_bench_stats.c can check them exactly.
 *
 * Open loop: with --throughput R the run is a schedule of send times fixed in
 * advance, record i of a worker due at start + i / rate. A record's latency is
 * its acknowledgement time minus its due time, whether or not the worker sent
 * it on time: a worker held up (the producer's queue full, a poll that took
 * long) does not move the schedule, so the wait counts against the records
 * that waited. Measuring from the actual send instead is "coordinated
 * omission": a stalled broker stalls the load generator, and the records that
 * would have waited are never sent while the stall lasts, so the tail hides.
 */
#ifndef RN_BENCH_STATS_H
#define RN_BENCH_STATS_H

#include <stdint.h>

/* A worker's schedule: record i is due at start_us + i * 1e6 / rate. */
typedef struct bench_schedule {
    int64_t start_us; /* the monotonic clock when the run started */
    double rate;      /* records/sec for this worker; > 0 */
} bench_schedule;

/* The due time of record i (microseconds on the clock of start_us). Exact to
 * the microsecond however long the run: computed from i, never accumulated. */
int64_t bench_due_us(const bench_schedule *s, uint64_t i);

/* Latency of a record in microseconds from its origin (its due time in open
 * loop, its send time in closed loop) to its acknowledgement at ack_us,
 * clamped to 0..UINT32_MAX. */
uint32_t bench_latency_us(int64_t origin_us, int64_t ack_us);

/* Sort n latencies (each >= 0, not NaN) ascending, in place. Linear time (a
 * radix sort on the float's bits); falls back to qsort when it cannot get its
 * scratch memory. */
void bench_sort_latencies(float *lat, uint64_t n);

/* The pct (0 < pct < 1) percentile of n sorted latencies, as Kafka's perf tool
 * takes it: sorted[(uint64_t)(n * pct)], the last one when that index is past
 * the end. 0 when n is 0. */
float bench_percentile(const float *sorted, uint64_t n, double pct);

#endif
