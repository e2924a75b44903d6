/*
 * bench_stats.c — the open-loop schedule and the percentiles of `runnel bench`
 * (see bench_stats.h for why the schedule, not the send, is the origin).
 *
 * The schedule is computed from the record's index each time, not by adding
 * an interval to the last due time: a sum of 10^7 rounded intervals drifts by
 * milliseconds, which at the tail is the very figure being measured.
 */
#include "tools/bench_stats.h"

#include <stdlib.h>
#include <string.h>

int64_t bench_due_us(const bench_schedule *s, uint64_t i)
{
    return s->start_us + (int64_t)((double)i * 1e6 / s->rate);
}

uint32_t bench_latency_us(int64_t origin_us, int64_t ack_us)
{
    int64_t lat = ack_us - origin_us;
    return lat < 0 ? 0 : lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The bits of a non-negative float order as the unsigned integer they spell,
 * so three passes of an 11-bit radix sort do it in linear time: for millions
 * of records qsort took longer than the run it reports on. */
void bench_sort_latencies(float *lat, uint64_t n)
{
    if (n < 2)
        return;
    uint32_t *a = (uint32_t *)(void *)lat, *tmp = malloc(n * sizeof(*tmp));
    if (!tmp) {
        qsort(lat, n, sizeof(*lat), cmp_float);
        return;
    }
    uint32_t *src = a, *dst = tmp;
    for (int shift = 0; shift < 33; shift += 11) {
        uint64_t count[2048] = {0};
        for (uint64_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 2047]++;
        uint64_t at = 0;
        for (int d = 0; d < 2048; d++) {
            uint64_t c = count[d];
            count[d] = at;
            at += c;
        }
        for (uint64_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 2047]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    /* Three passes: the result is in tmp. */
    memcpy(a, src, n * sizeof(*a));
    free(tmp);
}

float bench_percentile(const float *sorted, uint64_t n, double pct)
{
    if (n == 0)
        return 0;
    uint64_t at = (uint64_t)((double)n * pct);
    return sorted[at < n ? at : n - 1];
}
