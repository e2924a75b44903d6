/*
 * cli_bench.c — `runnel bench produce|consume TOPIC`: throughput and latency,
 * printed as Kafka's perf tools print them.
 *
 * How it fits: a program that prints figures (DESIGN §10: benchmarks are never
 * timed assertions). `bench produce` runs P producer threads, each with its own
 * librunnel producer (handles are single-threaded), sending N/P records of B
 * bytes (random capital letters, null keys, as kafka-producer-perf-test);
 * `bench consume` reads N records (default: up to the end) with one consumer.
 *
 * Latency:
 *   produce  to the delivery report (the acknowledgement with --acks 1|all),
 *            per record, from
 *            - with --throughput R (open loop): the record's scheduled send
 *              time. Each worker follows a schedule fixed in advance (record i
 *              due at start + i / its share of R); a worker that falls behind
 *              (queue full, a slow poll) sends at once until it catches up, and
 *              the records it sent late count their wait. No coordinated
 *              omission: a broker that stalls cannot slow the load down and
 *              hide the stall (bench_stats.h). Output says so.
 *            - without (closed loop, as fast as it goes): rn_producer_send.
 *   consume  the record's age when it arrives: now - its timestamp. It is the
 *            end-to-end latency when a `bench produce` runs at the same time;
 *            for old records it is just their age.
 *
 * Output (stdout): every 5 s a window line, then the total, as
 * kafka-producer-perf-test:
 *   N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency.
 *   N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max
 *     latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.
 * ("received" for consume). Percentiles print with two decimals where Kafka
 * prints whole ms: on one host most latencies are below a millisecond.
 * Produce prints one more line before the total, saying where latency is
 * measured from ("Latency: open loop, measured from each record's scheduled
 * send time at R records/sec: …50th, …99th, …99.9th, …max.").
 * --json prints only {"records","records_per_sec","mb_per_sec","latency_ms":
 * {"avg","p50","p95","p99","p999","max"},"windows_records_per_sec":[…]} (the
 * rate of each full 5 s window, in order), and for produce "latency_from"
 * (the same words) and with --throughput "throughput_target".
 *
 * Bounded: --records is at most BENCH_MAX_RECORDS (latencies are kept, 4 bytes
 * each), and --time-limit (default 120 s) stops sending or reading early.
 *
 * The measuring must cost little next to what is measured (a 100-byte record
 * takes ~150 ns to send): a clock read costs 40-50 ns on this VM (kvm-clock),
 * so the send loop reads the clock once per CLOCK_EVERY records and after
 * every poll (a record's send time is then at most CLOCK_EVERY sends early,
 * a few microseconds), and passes the same instant, on the wall clock, as the
 * record's timestamp so the producer does not read the clock again; delivery
 * reports read it once per rn_producer_poll (they all arrive at the end of
 * the call, within microseconds of one another); the shared counters behind
 * the window lines are updated every REPORT_EVERY records, not per record.
 * Latency arrays are touched before the clock starts, and sorted by radix
 * (qsort of 3 M floats took longer than the run; bench_stats.c).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "protocol/codec.h"
#include "protocol/errors.h"
#include "tools/bench_stats.h"
#include "tools/cli_common.h"

#define BENCH_MAX_RECORDS   50000000
#define BENCH_MAX_PRODUCERS 64
#define WINDOW_US           5000000
#define REPORT_EVERY        256
#define POLL_BYTES          (64 << 10)
#define CLOCK_EVERY         16
#define BENCH_MAX_WINDOWS   256

enum { OPT_RECORDS = 256, OPT_SIZE, OPT_ACKS, OPT_PRODUCERS, OPT_THROUGHPUT, OPT_LIMIT, OPT_JSON };

typedef struct bench {
    const char *topic;
    bool consume, json;
    int64_t records, record_size, producers, throughput, limit_s;
    int32_t partition;
    int64_t start_us, deadline_us;
    int64_t start_wall_us; /* the wall clock at start_us */
    uint8_t *payload;
    /* Live counters for window lines, shared by the threads. */
    _Atomic uint64_t done, bytes, failed, lat_sum_us;
    _Atomic uint32_t lat_max_us;
    _Atomic int finished;
    _Atomic int first_err;
    /* The records/s of each full window, for --json (a peak taken from the
     * first seconds alone can be a burst the broker cannot hold: see
     * docs/benchmarks.md, "The peak that does not last"). */
    double window_rps[BENCH_MAX_WINDOWS];
    int n_windows;
} bench;

typedef struct worker {
    bench *b;
    pthread_t tid;
    rn_producer *p;
    rn_conf *conf;
    uint64_t n_target, n_sent, n_lat;
    float *lat_ms; /* one per acknowledged record */
    int err;
    bool started;
    /* Delivery reports: the clock read for the reports of the current poll
     * (now_valid false: read it at the next report; draining: at every report,
     * as the final drain polls without telling us), and counts not yet added
     * to the shared ones. */
    int64_t now_us;
    bool now_valid, draining;
    uint64_t n_local, lat_local_us;
    uint32_t lat_local_max;
} worker;

static void note_max(bench *b, uint32_t us)
{
    uint32_t cur = atomic_load(&b->lat_max_us);
    while (us > cur && !atomic_compare_exchange_weak(&b->lat_max_us, &cur, us))
        ;
}

/* Add a producer worker's counts to the shared ones. */
static void publish(worker *w)
{
    bench *b = w->b;
    if (!w->n_local)
        return;
    atomic_fetch_add(&b->lat_sum_us, w->lat_local_us);
    note_max(b, w->lat_local_max);
    atomic_fetch_add(&b->done, w->n_local);
    atomic_fetch_add(&b->bytes, w->n_local * (uint64_t)b->record_size);
    w->n_local = w->lat_local_us = 0;
    w->lat_local_max = 0;
}

/* Touch every page of a latency array before the clock starts: its page
 * faults are not what is measured. (Not memset: the compiler may turn
 * malloc + memset into calloc, which leaves the pages untouched.) */
static void prefault(void *p, size_t len)
{
    volatile uint8_t *b = p;
    for (size_t i = 0; i < len; i += 4096)
        b[i] = 0;
}

/* Microseconds since the epoch (cli_wall_ms has only milliseconds). */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* rn_producer_poll, with the delivery clock to be read again. */
static void producer_poll(worker *w, int timeout_ms)
{
    w->now_valid = false;
    rn_producer_poll(w->p, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Reporting                                                                 */
/* ------------------------------------------------------------------------ */

/* Window line every 5 s while workers run (with --json only kept, for the
 * "windows_records_per_sec" of the total). */
typedef struct window {
    int64_t at_us;
    uint64_t done, bytes, lat_sum;
} window;

static void window_line(bench *b, window *w)
{
    int64_t now = cli_mono_us();
    uint64_t done = atomic_load(&b->done), bytes = atomic_load(&b->bytes);
    uint64_t sum = atomic_load(&b->lat_sum_us);
    uint32_t max = atomic_exchange(&b->lat_max_us, 0);
    uint64_t n = done - w->done;
    double secs = (double)(now - w->at_us) / 1e6;
    if (b->n_windows < BENCH_MAX_WINDOWS && secs > 0)
        b->window_rps[b->n_windows++] = (double)n / secs;
    if (!b->json && n > 0)
        printf("%" PRIu64 " records %s, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, "
               "%.1f ms max latency.\n",
               n, b->consume ? "received" : "sent", (double)n / secs,
               (double)(bytes - w->bytes) / secs / (1024.0 * 1024.0),
               (double)(sum - w->lat_sum) / (double)n / 1000.0, max / 1000.0);
    fflush(stdout);
    *w = (window){now, done, bytes, sum};
}

static void final_report(bench *b, float *lat, uint64_t n, uint64_t bytes, int64_t elapsed_us)
{
    double secs = elapsed_us > 0 ? (double)elapsed_us / 1e6 : 1e-6;
    double rps = (double)n / secs, mbps = (double)bytes / secs / (1024.0 * 1024.0);
    double avg = 0, max = 0, p50 = 0, p95 = 0, p99 = 0, p999 = 0;
    if (n) {
        bench_sort_latencies(lat, n);
        double sum = 0;
        for (uint64_t i = 0; i < n; i++)
            sum += lat[i];
        avg = sum / (double)n;
        max = lat[n - 1];
        p50 = bench_percentile(lat, n, 0.5);
        p95 = bench_percentile(lat, n, 0.95);
        p99 = bench_percentile(lat, n, 0.99);
        p999 = bench_percentile(lat, n, 0.999);
    }
    /* Where each latency starts, said with the figures (produce only). */
    const char *from = b->consume          ? NULL
                       : b->throughput > 0 ? "open loop, measured from each record's scheduled "
                                             "send time"
                                           : "closed loop, measured from each record's send";
    if (b->json) {
        printf("{\"records\":%" PRIu64 ",\"records_per_sec\":%.1f,\"mb_per_sec\":%.2f,"
               "\"latency_ms\":{\"avg\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
               "\"p999\":%.3f,\"max\":%.3f}",
               n, rps, mbps, avg, p50, p95, p99, p999, max);
        if (from)
            printf(",\"latency_from\":\"%s\"", from);
        if (b->throughput > 0)
            printf(",\"throughput_target\":%" PRId64, b->throughput);
        printf(",\"windows_records_per_sec\":[");
        for (int i = 0; i < b->n_windows; i++)
            printf("%s%.1f", i ? "," : "", b->window_rps[i]);
        printf("]}\n");
        return;
    }
    if (from && b->throughput > 0)
        printf("Latency: %s at %" PRId64 " records/sec: %.2f ms 50th, %.2f ms 99th, %.2f ms "
               "99.9th, %.2f ms max.\n",
               from, b->throughput, p50, p99, p999, max);
    else if (from)
        printf("Latency: %s (no --throughput).\n", from);
    printf("%" PRIu64 " records %s, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, "
           "%.2f ms max latency, %.2f ms 50th, %.2f ms 95th, %.2f ms 99th, %.2f ms 99.9th.\n",
           n, b->consume ? "received" : "sent", rps, mbps, avg, max, p50, p95, p99, p999);
}

/* ------------------------------------------------------------------------ */
/* Produce                                                                   */
/* ------------------------------------------------------------------------ */

static void on_delivery(void *arg, int err, const char *topic, int32_t partition, int64_t offset,
                        void *opaque)
{
    (void)topic, (void)partition, (void)offset;
    worker *w = arg;
    bench *b = w->b;
    if (err) {
        atomic_fetch_add(&b->failed, 1);
        int zero = 0;
        atomic_compare_exchange_strong(&b->first_err, &zero, err);
        return;
    }
    if (!w->now_valid) {
        w->now_us = cli_mono_us();
        w->now_valid = !w->draining;
    }
    /* opaque: the record's origin (its due time in open loop, its send time
     * in closed loop), in microseconds from the start. */
    uint32_t us = bench_latency_us(b->start_us + (int64_t)(uintptr_t)opaque, w->now_us);
    if (w->n_lat < w->n_target)
        w->lat_ms[w->n_lat++] = (float)us / 1000.0f;
    w->lat_local_us += us;
    if (us > w->lat_local_max)
        w->lat_local_max = us;
    if (++w->n_local >= REPORT_EVERY)
        publish(w);
}

static void *produce_thread(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    /* Open loop with --throughput: each worker keeps its share of the rate on
     * a schedule fixed in advance, and a record's latency counts from its due
     * time even when the worker sends it late (bench_stats.h). */
    bool open_loop = b->throughput > 0;
    bench_schedule sched = {b->start_us,
                            open_loop ? (double)b->throughput / (double)b->producers : 1};
    uint64_t unpolled = 0;
    /* The send time of a record, read every CLOCK_EVERY records and after
     * anything that may wait (a poll, pacing): see the top of the file. */
    int64_t now = 0;
    unsigned stale = CLOCK_EVERY;
    for (uint64_t i = 0; i < w->n_target && !cli_stop; i++) {
        if (++stale >= CLOCK_EVERY) {
            now = cli_mono_us();
            stale = 0;
        }
        if (now > b->deadline_us)
            break;
        int64_t due = 0;
        if (open_loop) {
            due = bench_due_us(&sched, i);
            /* Ahead of the schedule: wait for the due time. Behind it: send at
             * once, with no wait, until the worker has caught up. */
            while (now < due && !cli_stop) {
                /* Poll while waiting, so delivery reports (and with them the
                 * latency figures) are taken when they arrive, not when the
                 * next burst of sends gets round to polling. */
                int ms = (int)((due - now) / 1000);
                producer_poll(w, ms);
                now = cli_mono_us();
                if (ms == 0 && now < due) {
                    struct timespec ts = {0, (long)(due - now) * 1000};
                    nanosleep(&ts, NULL);
                    now = cli_mono_us();
                }
                stale = 0;
            }
        }
        int rc;
        for (bool again = false;; again = true) {
            /* The time read above is the send time, unless we waited for room
             * since. The record's timestamp is the same instant on the wall
             * clock, so the producer need not read the clock again. */
            if (again)
                now = cli_mono_us();
            uintptr_t sent = (uintptr_t)(now - b->start_us);
            int64_t ts_ms = (b->start_wall_us + (int64_t)sent) / 1000;
            /* The latency's origin: the due time in open loop (a wait for room
             * in the queue counts), the send in closed loop. */
            uintptr_t origin = open_loop ? (uintptr_t)(due - b->start_us) : sent;
            rc = rn_producer_send(w->p, b->topic, b->partition, NULL, 0, b->payload,
                                  (size_t)b->record_size, NULL, 0, ts_ms, (void *)origin);
            if (rc != -ENOBUFS || cli_stop || cli_mono_us() > b->deadline_us)
                break;
            producer_poll(w, 10);
        }
        if (rc < 0) {
            if (rc != -ENOBUFS)
                w->err = rc;
            break;
        }
        w->n_sent++;
        /* Move bytes and take reports every POLL_BYTES of records sent (and
         * every 1024 records): small records need not pay a poll(2) each few. */
        unpolled += (uint64_t)b->record_size + 16;
        if (unpolled >= POLL_BYTES || (i & 1023) == 0) {
            unpolled = 0;
            producer_poll(w, 0);
            stale = CLOCK_EVERY; /* the poll took time: read the clock again */
        }
    }
    /* Acknowledgements still due get what is left of the time limit, and at
     * least a few seconds so a short limit still counts what was sent. */
    int64_t left = (b->deadline_us - cli_mono_us()) / 1000;
    w->draining = true;
    w->now_valid = false;
    int rc = cli_producer_drain(w->p, (int)(left < 5000 ? 5000 : left));
    if (rc < 0 && !w->err)
        w->err = rc;
    publish(w);
    atomic_fetch_add(&b->finished, 1);
    return NULL;
}

static int bench_produce(bench *b, const cli_conn *conn, const char *acks, const char *codec)
{
    int status = CLI_ERROR;
    worker *ws = calloc((size_t)b->producers, sizeof(*ws));
    b->payload = malloc((size_t)b->record_size + 1);
    if (!ws || !b->payload) {
        cli_fail(-ENOMEM, "buffers");
        goto out;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift: the same payload every run */
    for (int64_t i = 0; i < b->record_size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b->payload[i] = (uint8_t)('A' + x % 26);
    }
    char acks_kv[32], codec_kv[48];
    snprintf(acks_kv, sizeof(acks_kv), "acks=%s", acks);
    snprintf(codec_kv, sizeof(codec_kv), "compression.codec=%s", codec);
    const char *extra[] = {acks_kv, codec_kv, NULL};
    uint64_t per = (uint64_t)b->records / (uint64_t)b->producers;
    uint64_t rest = (uint64_t)b->records % (uint64_t)b->producers;
    for (int64_t i = 0; i < b->producers; i++) {
        worker *w = &ws[i];
        w->b = b;
        w->n_target = per + ((uint64_t)i < rest);
        w->lat_ms = malloc((w->n_target ? w->n_target : 1) * sizeof(float));
        w->conf = cli_conn_conf(conn, extra);
        if (!w->lat_ms || !w->conf) {
            if (!w->lat_ms)
                cli_fail(-ENOMEM, "latency buffer");
            goto out;
        }
        int rc = rn_producer_new(&w->p, w->conf, on_delivery, w);
        if (rc < 0) {
            cli_fail(rc, "producer");
            goto out;
        }
    }
    /* Learn the topic's metadata before the clock starts: an unknown topic is
     * one clear line, not P threads failing. */
    rn_admin *a = NULL;
    int32_t n_parts = 0;
    int rc = rn_admin_new(&a, ws[0].conf);
    if (rc == 0)
        rc = rn_admin_partition_count(a, b->topic, &n_parts);
    if (a)
        rn_admin_free(a);
    if (rc < 0) {
        if (rc == -RN_E_UNKNOWN_TOPIC)
            cli_error("topic %s does not exist (create it: runnel topic create %s)", b->topic,
                      b->topic);
        else
            cli_fail(rc, "topic %s", b->topic);
        goto out;
    }
    if (b->partition >= n_parts) {
        cli_fail(0, "topic %s has %d partitions: there is no partition %d", b->topic, n_parts,
                 b->partition);
        goto out;
    }

    for (int64_t i = 0; i < b->producers; i++)
        prefault(ws[i].lat_ms, (ws[i].n_target ? ws[i].n_target : 1) * sizeof(float));
    cli_signals_install();
    b->start_us = cli_mono_us();
    b->start_wall_us = wall_us();
    b->deadline_us = b->start_us + b->limit_s * 1000000;
    for (int64_t i = 0; i < b->producers; i++) {
        rc = pthread_create(&ws[i].tid, NULL, produce_thread, &ws[i]);
        if (rc != 0) {
            cli_stop = 1; /* the ones running stop at once */
            cli_fail(-rc, "starting thread %" PRId64, i);
            break;
        }
        ws[i].started = true;
    }
    int started = 0;
    for (int64_t i = 0; i < b->producers; i++)
        started += ws[i].started;
    window win = {.at_us = b->start_us};
    while (atomic_load(&b->finished) < started) {
        usleep(50000);
        if (cli_mono_us() - win.at_us >= WINDOW_US)
            window_line(b, &win);
    }
    int64_t end_us = cli_mono_us();
    uint64_t total = 0, sent = 0;
    int err = 0;
    for (int64_t i = 0; i < b->producers; i++) {
        if (ws[i].started)
            pthread_join(ws[i].tid, NULL);
        total += ws[i].n_lat;
        sent += ws[i].n_sent;
        if (!err)
            err = ws[i].err;
    }
    if (err == 0 && atomic_load(&b->failed) == 0 && sent < (uint64_t)b->records && !cli_stop)
        cli_note("time limit of %" PRId64 " s reached after %" PRIu64 " of %" PRId64 " records",
                 b->limit_s, sent, b->records);
    /* All latencies into one array (the first worker's is reused when alone). */
    float *all = ws[0].lat_ms;
    if (b->producers > 1) {
        all = malloc((total ? total : 1) * sizeof(float));
        if (!all) {
            cli_fail(-ENOMEM, "latencies");
            goto out;
        }
        uint64_t at = 0;
        for (int64_t i = 0; i < b->producers; i++) {
            memcpy(all + at, ws[i].lat_ms, ws[i].n_lat * sizeof(float));
            at += ws[i].n_lat;
        }
    }
    final_report(b, all, total, total * (uint64_t)b->record_size, end_us - b->start_us);
    if (all != ws[0].lat_ms)
        free(all);
    status = CLI_OK;
    uint64_t failed = atomic_load(&b->failed);
    if (failed) {
        cli_fail(atomic_load(&b->first_err), "%" PRIu64 " records failed, the first with", failed);
        status = CLI_ERROR;
    } else if (err) {
        cli_fail(err, "producing");
        status = CLI_ERROR;
    }
out:
    for (int64_t i = 0; ws && i < b->producers; i++) {
        /* Close only drained producers: close would wait out delivery.timeout.ms. */
        if (ws[i].p && rn_producer_outstanding(ws[i].p) == 0)
            rn_producer_close(ws[i].p);
        rn_conf_free(ws[i].conf);
        free(ws[i].lat_ms);
    }
    free(ws);
    free(b->payload);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Consume                                                                   */
/* ------------------------------------------------------------------------ */

static bool at_end(const rn_consumer *c, const char *topic, int32_t first, int32_t n)
{
    for (int32_t p = first; p < first + n; p++) {
        int64_t hw = rn_consumer_high_watermark(c, topic, p);
        int64_t pos = rn_consumer_position(c, topic, p);
        if (hw < 0 || pos < 0 || pos < hw)
            return false;
    }
    return true;
}

static int bench_consume(bench *b, const cli_conn *conn)
{
    int status = CLI_ERROR;
    rn_conf *conf = cli_conn_conf(conn, NULL);
    rn_admin *a = NULL;
    rn_consumer *c = NULL;
    float *lat = NULL;
    if (!conf)
        goto out;
    int32_t n_parts = 0;
    int rc = rn_admin_new(&a, conf);
    if (rc == 0)
        rc = rn_admin_partition_count(a, b->topic, &n_parts);
    if (rc < 0) {
        if (rc == -RN_E_UNKNOWN_TOPIC)
            cli_error("topic %s does not exist", b->topic);
        else
            cli_fail(rc, "topic %s", b->topic);
        goto out;
    }
    if (b->partition >= n_parts) {
        cli_fail(0, "topic %s has %d partitions: there is no partition %d", b->topic, n_parts,
                 b->partition);
        goto out;
    }
    rc = rn_consumer_new(&c, conf);
    if (rc == 0)
        rc = b->partition >= 0 ? rn_consumer_assign(c, b->topic, b->partition, RN_START_BEGINNING)
                               : rn_consumer_assign_topic(c, b->topic, RN_START_BEGINNING);
    if (rc < 0) {
        cli_fail(rc, "consumer");
        goto out;
    }
    int32_t first = b->partition >= 0 ? b->partition : 0;
    int32_t n = b->partition >= 0 ? 1 : n_parts;
    /* Without --records: until the end, and never more than the cap. */
    uint64_t want = b->records > 0 ? (uint64_t)b->records : BENCH_MAX_RECORDS;
    size_t cap = b->records > 0 ? (size_t)b->records : 1 << 16;
    lat = malloc(cap * sizeof(float));
    if (!lat) {
        cli_fail(-ENOMEM, "latency buffer");
        goto out;
    }
    prefault(lat, cap * sizeof(float));

    cli_signals_install();
    b->start_us = cli_mono_us();
    b->deadline_us = b->start_us + b->limit_s * 1000000;
    window win = {.at_us = b->start_us};
    uint64_t got = 0, bytes = 0;
    int64_t last_us = b->start_us;
    status = CLI_OK;
    int k = 0;
    while (got < want && !cli_stop && cli_mono_us() < b->deadline_us) {
        /* Only after a poll that brought nothing: at_end looks up every
         * partition (64 lookups per poll over 64 partitions), and a poll
         * that brought records says the end may not be reached yet. */
        if (b->records <= 0 && k == 0 && at_end(c, b->topic, first, n))
            break;
        const rn_message *msgs;
        k = rn_consumer_poll(c, 100, &msgs);
        if (k < 0) {
            cli_fail(0, "reading %s: %s", b->topic,
                     rn_consumer_errmsg(c)[0] ? rn_consumer_errmsg(c) : rn_err_str(k));
            status = CLI_ERROR;
            break;
        }
        int64_t now_ms = cli_wall_ms();
        uint64_t poll_n = 0, poll_bytes = 0, poll_lat_us = 0;
        uint32_t poll_max_us = 0;
        for (int i = 0; i < k && got < want; i++) {
            int64_t age = now_ms - msgs[i].timestamp;
            if (age < 0)
                age = 0;
            if (got == cap) {
                size_t ncap = cap * 2;
                float *nl = realloc(lat, ncap * sizeof(float));
                if (!nl) {
                    cli_fail(-ENOMEM, "latency buffer");
                    status = CLI_ERROR;
                    goto out;
                }
                lat = nl;
                cap = ncap;
            }
            lat[got++] = (float)age;
            bytes += msgs[i].key_len + msgs[i].value_len;
            poll_n++;
            poll_bytes += msgs[i].key_len + msgs[i].value_len;
            uint32_t us = age > UINT32_MAX / 1000 ? UINT32_MAX : (uint32_t)age * 1000;
            poll_lat_us += us;
            if (us > poll_max_us)
                poll_max_us = us;
        }
        /* One update of the shared counters per poll, not per record. */
        if (poll_n) {
            atomic_fetch_add(&b->done, poll_n);
            atomic_fetch_add(&b->bytes, poll_bytes);
            atomic_fetch_add(&b->lat_sum_us, poll_lat_us);
            note_max(b, poll_max_us);
        }
        if (k > 0)
            last_us = cli_mono_us();
        if (cli_mono_us() - win.at_us >= WINDOW_US)
            window_line(b, &win);
    }
    if (status == CLI_OK && b->records > 0 && got < (uint64_t)b->records && !cli_stop) {
        cli_fail(0, "only %" PRIu64 " of %" PRId64 " records within the %" PRId64 " s time limit",
                 got, b->records, b->limit_s);
        status = CLI_ERROR;
    }
    /* The rate is over the time records were arriving, not the final wait. */
    final_report(b, lat, got, bytes, last_us - b->start_us);
out:
    free(lat);
    if (c)
        rn_consumer_close(c);
    if (a)
        rn_admin_free(a);
    rn_conf_free(conf);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Entry                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: runnel bench produce|consume TOPIC [options]\n"
          "\n"
          "Measure throughput and latency; print kafka-producer-perf-test's lines.\n"
          "produce: latency to the acknowledgement; with --throughput it is open\n"
          "loop, measured from each record's scheduled send time (a record sent late\n"
          "because the producer was held up counts its wait: no coordinated\n"
          "omission); without, from the send. consume: latency is each record's age\n"
          "on arrival (end to end while a bench produce runs).\n"
          "Create the topic first (runnel topic create).\n"
          "\n"
          "options:\n"
          "      --records N        records to send or read (produce default 100000;\n"
          "                         consume default: up to the end); at most 50000000\n"
          "      --record-size B    bytes per record (produce; default 100)\n"
          "      --acks 0|1|all     acknowledgement to wait for (produce; default all)\n"
          "      --producers P      producer threads, each its own client (default 1)\n"
          "      --throughput R     send R records/sec in total on a fixed schedule\n"
          "                         (open loop; default: as fast as it goes)\n"
          "  -z, --compression CODEC  none|gzip|snappy|lz4|zstd (produce; default none)\n"
          "  -p, --partition N      only partition N (default: all; produce: by the\n"
          "                         sticky partitioner)\n"
          "      --time-limit S     stop after S seconds (default 120)\n"
          "      --json             print one JSON object: records, records_per_sec,\n"
          "                         mb_per_sec, latency_ms {avg, p50, p95, p99, p999, "
          "max},\n"
          "                         windows_records_per_sec (each full 5 s window)\n" CLI_CONN_HELP "  -h, --help             this text\n"
          "\n"
          "examples:\n"
          "  runnel bench produce bench --records 1000000 --record-size 1024 --acks 1\n"
          "  runnel bench produce bench --producers 4 -z zstd --json\n"
          "  runnel bench consume bench --records 1000000\n",
          f);
}

int cli_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"records", required_argument, NULL, OPT_RECORDS},
        {"record-size", required_argument, NULL, OPT_SIZE},
        {"acks", required_argument, NULL, OPT_ACKS},
        {"producers", required_argument, NULL, OPT_PRODUCERS},
        {"throughput", required_argument, NULL, OPT_THROUGHPUT},
        {"time-limit", required_argument, NULL, OPT_LIMIT},
        {"compression", required_argument, NULL, 'z'},
        {"partition", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static bench b;
    memset(&b, 0, sizeof(b));
    b.records = -1;
    b.record_size = 100;
    b.producers = 1;
    b.throughput = -1;
    b.limit_s = 120;
    b.partition = -1;
    const char *acks = "all", *codec = "none";
    bool producer_only = false;
    cli_conn conn;
    cli_conn_init(&conn);
    int status = CLI_USAGE;

    int c;
    while ((c = getopt_long(argc, argv, ":b:X:z:p:h", longopts, NULL)) != -1) {
        int rc = cli_conn_opt(&conn, c, optarg);
        if (rc < 0) {
            status = cli_fail(rc, "options");
            goto out;
        }
        if (rc == 1)
            continue;
        int64_t v;
        switch (c) {
        case OPT_RECORDS:
            if (cli_parse_i64(optarg, 1, BENCH_MAX_RECORDS, &b.records) < 0) {
                status = cli_usage("--records %s: expected 1..%d", optarg, BENCH_MAX_RECORDS);
                goto out;
            }
            break;
        case OPT_SIZE:
            if (cli_parse_i64(optarg, 0, 16 << 20, &b.record_size) < 0) {
                status = cli_usage("--record-size %s: expected 0..16777216 bytes", optarg);
                goto out;
            }
            producer_only = true;
            break;
        case OPT_ACKS:
            if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "all") &&
                strcmp(optarg, "-1")) {
                status = cli_usage("--acks %s: expected 0, 1 or all", optarg);
                goto out;
            }
            acks = optarg;
            producer_only = true;
            break;
        case OPT_PRODUCERS:
            if (cli_parse_i64(optarg, 1, BENCH_MAX_PRODUCERS, &b.producers) < 0) {
                status = cli_usage("--producers %s: expected 1..%d", optarg, BENCH_MAX_PRODUCERS);
                goto out;
            }
            producer_only = true;
            break;
        case OPT_THROUGHPUT:
            if (cli_parse_i64(optarg, -1, INT64_MAX, &b.throughput) < 0 || b.throughput == 0) {
                status = cli_usage("--throughput %s: expected records/sec (-1: no limit)", optarg);
                goto out;
            }
            producer_only = true;
            break;
        case OPT_LIMIT:
            if (cli_parse_i64(optarg, 1, 86400, &b.limit_s) < 0) {
                status = cli_usage("--time-limit %s: expected 1..86400 seconds", optarg);
                goto out;
            }
            break;
        case 'z':
            if (rn_codec_parse(optarg) < 0) {
                status = cli_usage("-z %s: expected none, gzip, snappy, lz4 or zstd", optarg);
                goto out;
            }
            codec = optarg;
            producer_only = true;
            break;
        case 'p':
            if (cli_parse_i64(optarg, 0, INT32_MAX, &v) < 0) {
                status = cli_usage("-p %s: partition must be a number from 0", optarg);
                goto out;
            }
            b.partition = (int32_t)v;
            break;
        case OPT_JSON:
            b.json = true;
            break;
        case 'h':
            usage(stdout);
            status = CLI_OK;
            goto out;
        default:
            status = cli_opt_error(c, argv);
            goto out;
        }
    }
    if (argc - optind != 2) {
        status = cli_usage(argc - optind < 2 ? "expected produce|consume and a TOPIC"
                                             : "too many arguments");
        goto out;
    }
    const char *mode = argv[optind];
    b.topic = argv[optind + 1];
    if (!strcmp(mode, "consume")) {
        b.consume = true;
        if (producer_only) {
            status = cli_usage("--record-size, --acks, --producers, --throughput and -z go "
                               "with 'bench produce'");
            goto out;
        }
    } else if (strcmp(mode, "produce") != 0) {
        status = cli_usage("'%s': expected produce or consume", mode);
        goto out;
    } else if (b.records < 0) {
        b.records = 100000;
    }
    status = cli_conn_start(&conn);
    if (status != CLI_OK)
        goto out;
    status = b.consume ? bench_consume(&b, &conn) : bench_produce(&b, &conn, acks, codec);
out:
    cli_conn_fini(&conn);
    return status;
}
