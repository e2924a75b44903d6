/*
 * load_common.h — what the peer load generators (nats_load.c, redis_load.c)
 * share: a monotonic clock, a TCP connect to 127.0.0.1-style "host:port", a
 * latency histogram and the one-line JSON result that `runnel bench --json`
 * also prints, so tests/perf/run reads every tool's output the same way.
 *
 * The histogram keeps 10 significant bits per power of two of microseconds
 * (relative error < 0.1 %), in a fixed array: recording costs an increment, and
 * a run of 50 M messages needs no 200 MB latency array nor a sort at the end.
 *
 * Header-only (static functions): these are two small benchmark programs, not a
 * library; it keeps the meson targets one file each.
 */
#ifndef RN_PERF_LOAD_COMMON_H
#define RN_PERF_LOAD_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LC_EXACT     1024 /* values below this many us get a bucket each */
#define LC_SUB_BITS  9    /* 512 sub-buckets per power of two above that */
#define LC_N_BUCKETS (LC_EXACT + 40 * (1 << LC_SUB_BITS))

static inline uint64_t lc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Connects to "host:port" (IPv4 literal or "localhost") with TCP_NODELAY.
 * Returns the socket or -errno (-EINVAL for a malformed address). */
static inline int lc_connect(const char *hostport)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        return -EINVAL;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

typedef struct lc_hist {
    uint64_t n, sum_us, max_us;
    uint64_t counts[LC_N_BUCKETS];
} lc_hist;

static inline int lc_bucket_of(uint64_t us)
{
    if (us < LC_EXACT)
        return (int)us;
    int e = 63 - __builtin_clzll(us); /* >= 10 */
    if (e > 49)
        e = 49, us = (1ull << 50) - 1;
    int shift = e - LC_SUB_BITS;
    return LC_EXACT + (e - 10) * (1 << LC_SUB_BITS) + (int)((us >> shift) - (1u << LC_SUB_BITS));
}

/* The lowest value in microseconds that falls in bucket i. */
static inline uint64_t lc_value_of(int i)
{
    if (i < LC_EXACT)
        return (uint64_t)i;
    int k = i - LC_EXACT, e = 10 + k / (1 << LC_SUB_BITS), m = k % (1 << LC_SUB_BITS);
    return ((uint64_t)(m + (1 << LC_SUB_BITS))) << (e - LC_SUB_BITS);
}

static inline void lc_hist_add(lc_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    h->counts[lc_bucket_of(us)]++;
    h->n++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

static inline void lc_hist_merge(lc_hist *into, const lc_hist *from)
{
    for (int i = 0; i < LC_N_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->n += from->n;
    into->sum_us += from->sum_us;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

/* The value in ms below which a fraction p of the samples lie (Kafka's index
 * n * p, as `runnel bench` computes it). */
static inline double lc_hist_pct_ms(const lc_hist *h, double p)
{
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)((double)h->n * p), seen = 0;
    for (int i = 0; i < LC_N_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank)
            return (double)lc_value_of(i) / 1000.0;
    }
    return (double)h->max_us / 1000.0;
}

/* One line of JSON, the shape of `runnel bench --json` plus "errors".
 * MB is MiB of payload, as runnel bench counts it. */
static inline void lc_print_json(uint64_t records, uint64_t payload_bytes, double secs,
                                 const lc_hist *h, uint64_t errors)
{
    if (secs <= 0)
        secs = 1e-9;
    printf("{\"records\":%llu,\"records_per_sec\":%.1f,\"mb_per_sec\":%.2f,\"seconds\":%.3f,"
           "\"errors\":%llu,\"latency_ms\":{\"avg\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f}}\n",
           (unsigned long long)records, (double)records / secs,
           (double)payload_bytes / secs / (1024.0 * 1024.0), secs, (unsigned long long)errors,
           h && h->n ? (double)h->sum_us / (double)h->n / 1000.0 : 0,
           h ? lc_hist_pct_ms(h, 0.5) : 0, h ? lc_hist_pct_ms(h, 0.95) : 0,
           h ? lc_hist_pct_ms(h, 0.99) : 0, h ? lc_hist_pct_ms(h, 0.999) : 0,
           h ? (double)h->max_us / 1000.0 : 0);
    fflush(stdout);
}

#endif
