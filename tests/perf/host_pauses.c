/*
 * host_pauses.c — how long this machine keeps a runnable thread from running,
 * measured beside a benchmark so a latency row can say what the machine did
 * while it ran (tests/perf/run; docs/benchmarks.md, "Stalls that are not the
 * broker's").
 *
 *   host_pauses [--seconds S] [--over MS]
 *
 * One thread per online CPU, pinned to it, at SCHED_FIFO priority 50 when the
 * process may (else at its own priority, and it says so): each sleeps 1 ms at
 * a time and wakes on its CPU's timer. A wake-up more than MS (default 3) late
 * is a pause of that CPU: nothing ran there that could be preempted in time.
 * Two causes are told apart by the CPU's steal time (/proc/stat), which a
 * guest's kernel counts while the host runs something else on the vCPU:
 *   - a host pause: the vCPU itself did not run (steal grew by about the gap);
 *   - a kernel section that did not yield (PREEMPT_NONE kernels: a long
 *     page-cache copy, reclaim or a page freeing loop), or a higher priority.
 * A FIFO thread that only sleeps costs nothing measurable: it runs ~10 µs a
 * millisecond, and steal is read only at a pause and every 50 ms.
 *
 * Output: one JSON line per pause, as it happens,
 *   {"t":<CLOCK_MONOTONIC s>,"cpu":N,"ms":<gap>,"steal_ms":<steal since the
 *    CPU's previous reading, ≤ 50 ms before the gap began>}
 * and at the end one line {"end":true,"seconds":S,"fifo":true|false}. Python's
 * time.monotonic() reads the same clock, so a caller matches pauses to rows.
 * Exit 2 on bad arguments, 1 when no thread could start.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS      256
#define STEAL_EVERY_S 0.05

static double g_seconds = 3600, g_over_s = 0.003;
static long g_user_hz;
/* Cleared by any thread refused SCHED_FIFO; read after every join. */
static atomic_bool g_fifo = true;
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The steal time of CPU cpu in milliseconds, or -1 when /proc/stat has none
 * (the eighth number of its "cpuN" line, in USER_HZ ticks). */
static double steal_ms(int cpu)
{
    char want[24], line[512];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    double ms = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)) != 0)
            continue;
        unsigned long long v[8];
        if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8)
            ms = (double)v[7] * 1000.0 / (double)g_user_hz;
        break;
    }
    fclose(f);
    return ms;
}

static void *watch(void *arg)
{
    int cpu = (int)(long)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        return NULL; /* an offline CPU: nothing to watch there */
    struct sched_param sp = {.sched_priority = 50};
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0)
        atomic_store(&g_fifo, false);
    double start = mono_s(), prev = start, read_at = start, steal = steal_ms(cpu);
    const struct timespec tick = {0, 1000000};
    while (prev - start < g_seconds) {
        nanosleep(&tick, NULL);
        double now = mono_s();
        if (now - prev > g_over_s) {
            double s = steal_ms(cpu);
            pthread_mutex_lock(&g_out);
            printf("{\"t\":%.4f,\"cpu\":%d,\"ms\":%.2f,\"steal_ms\":%.0f}\n", now, cpu,
                   (now - prev) * 1e3, s >= 0 && steal >= 0 ? s - steal : -1.0);
            fflush(stdout);
            pthread_mutex_unlock(&g_out);
            steal = s;
            read_at = now;
        } else if (now - read_at > STEAL_EVERY_S) {
            steal = steal_ms(cpu);
            read_at = now;
        }
        prev = now;
    }
    return NULL;
}

static void usage(FILE *f)
{
    fputs("usage: host_pauses [--seconds S] [--over MS]\n"
          "Print each time a CPU could not run a waiting FIFO thread for over MS\n"
          "(default 3) ms, with the CPU's steal time over it; stop after S seconds\n"
          "(default 3600). One JSON line per pause.\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
                                         {"over", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's':
            g_seconds = strtod(optarg, &end);
            if (!end || *end || !(g_seconds > 0 && g_seconds <= 86400)) {
                fprintf(stderr,
                        "host_pauses: --seconds: not a number of seconds in (0, 86400]: %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'o':
            g_over_s = strtod(optarg, &end) / 1e3;
            if (!end || *end || !(g_over_s >= 0.0015 && g_over_s <= 10)) {
                fprintf(stderr, "host_pauses: --over: not a number of ms in [1.5, 10000]: %s\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    g_user_hz = sysconf(_SC_CLK_TCK);
    if (g_user_hz <= 0)
        g_user_hz = 100;
    long n = sysconf(_SC_NPROCESSORS_CONF);
    if (n < 1 || n > MAX_CPUS)
        n = n < 1 ? 1 : MAX_CPUS;
    pthread_t tids[MAX_CPUS];
    bool started[MAX_CPUS] = {false};
    int n_started = 0;
    for (long i = 0; i < n; i++) {
        int err = pthread_create(&tids[i], NULL, watch, (void *)i);
        if (err) {
            fprintf(stderr, "host_pauses: thread for cpu %ld: %s\n", i, strerror(err));
            continue;
        }
        started[i] = true;
        n_started++;
    }
    if (!n_started)
        return 1;
    for (long i = 0; i < n; i++)
        if (started[i])
            pthread_join(tids[i], NULL);
    bool fifo = atomic_load(&g_fifo);
    if (!fifo)
        fprintf(stderr, "host_pauses: SCHED_FIFO not permitted: pauses include time other "
                        "threads of the same priority ran\n");
    printf("{\"end\":true,\"seconds\":%.0f,\"fifo\":%s}\n", g_seconds, fifo ? "true" : "false");
    return 0;
}
