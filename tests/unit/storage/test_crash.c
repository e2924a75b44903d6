/*
 * test_crash.c — crashes while appending (suite `crash`).
 *
 * Two kinds of crash, one contract: with flush=always every acknowledged
 * batch survives byte for byte, the recovered log verifies (contiguous
 * offsets, every batch passes rn_batch_verify), and it serves nothing but
 * batches that were appended, each at the offsets it was given.
 *
 *  - A real kill -9: a child process (this binary re-executed, so it runs
 *    outside Criterion) appends with several batches in flight and reports
 *    every acknowledgement (base, last offset, XXH3 of the stored bytes) on a
 *    pipe; the parent kills it after a bounded random time, recovers the log
 *    and checks every acknowledgement. The log is reused across rounds, so
 *    later children start from a log recovered from a kill.
 *
 *  - A simulated power loss (SQLite test6.c style, the crash layer of
 *    helpers.h): at a random moment, what the disk would hold is captured —
 *    every sector written since its file's last fdatasync kept, dropped or
 *    garbled — while the log in the original directory runs on and is
 *    discarded. The captured copy is recovered and checked, then appended to
 *    and crashed again.
 *
 *  - Without a crash, the same layer checks the order of things as they
 *    happen: each flush=always ack comes after a completed fdatasync that
 *    covers its batch, the high watermark never passes a batch no completed
 *    fdatasync covers, and a sealed segment is wholly on disk.
 */
#define TH_CRASH_LAYER
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <xxhash.h>

#include "helpers.h"

/* What the child reports for each acknowledgement. */
typedef struct ack {
    int64_t base, last;
    uint64_t hash; /* XXH3-64 of the batch as stored (stamped) */
} ack;

#define CHILD_ENV      "RN_TEST_CRASH_CHILD"
#define CHILD_INFLIGHT 8

/* ---- The child: append until killed ---------------------------------------- */

typedef struct slot {
    uint8_t *buf;
    size_t len;
    bool busy;
    int fd;
} slot;

/* A batch without Criterion (the child is not a test). */
static uint8_t *child_batch(uint64_t seed, size_t *len)
{
    rn_batch_builder *b;
    if (rn_batch_builder_new(&b, NULL) < 0)
        _exit(10);
    uint8_t val[200];
    uint64_t s = seed + 1;
    int n = 1 + (int)(seed % 4);
    for (int r = 0; r < n; r++) {
        size_t vlen = 10 + th_rand(&s) % (sizeof(val) - 10);
        for (size_t i = 0; i < vlen; i++)
            val[i] = (uint8_t)th_rand(&s);
        if (rn_batch_builder_add(b, 1700000000000LL + (int64_t)seed, NULL, 0, val, vlen, NULL, 0) <
            0)
            _exit(11);
    }
    uint8_t *out;
    if (rn_batch_builder_finish(b, &out, len) < 0)
        _exit(12);
    rn_batch_builder_free(b);
    return out;
}

static void child_ack(void *arg, int err, int64_t base, int64_t last)
{
    slot *sl = arg;
    if (err)
        _exit(20);
    ack a = {base, last, XXH3_64bits(sl->buf, sl->len)};
    if (write(sl->fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
        _exit(21);
    free(sl->buf);
    sl->buf = NULL;
    sl->busy = false;
}

static void child_main(const char *spec)
{
    char dir[4096];
    int fd;
    unsigned long long seed;
    if (sscanf(spec, "%d:%llu:%4095s", &fd, &seed, dir) != 3)
        _exit(30);
    rn_io *io;
    if (rn_io_new(&io, 64) < 0)
        _exit(31);
    rn_log_config cfg;
    th_config(&cfg, 64 * 1024, RN_FLUSH_ALWAYS);
    rn_log *log;
    if (rn_log_open(&log, io, dir, "kill9", &cfg, NULL) < 0)
        _exit(32);
    slot slots[CHILD_INFLIGHT] = {0};
    for (;;) {
        for (int i = 0; i < CHILD_INFLIGHT; i++) {
            if (slots[i].busy)
                continue;
            slots[i].buf = child_batch(seed++, &slots[i].len);
            slots[i].fd = fd;
            slots[i].busy = true;
            if (rn_log_append(log, slots[i].buf, slots[i].len, 0, child_ack, &slots[i]) < 0)
                _exit(33);
        }
        if (rn_io_run(io, 1) < 0)
            _exit(34);
    }
}

/* Before Criterion's main: a re-executed child never reaches it. */
__attribute__((constructor)) static void maybe_child(void)
{
    const char *spec = getenv(CHILD_ENV);
    if (spec)
        child_main(spec);
}

/* ---- The parent ----------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct acks {
    ack *v;
    size_t n, cap;
} acks;

/* Read whole acks from fd until EOF or the deadline (-1: until EOF). */
static void read_acks(int fd, acks *out, int64_t deadline)
{
    static uint8_t part[sizeof(ack)];
    static size_t have;
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return;
            wait = (int)left;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, wait);
        if (rc < 0 && errno == EINTR)
            continue;
        cr_assert_geq(rc, 0);
        if (rc == 0)
            continue;
        ssize_t n = read(fd, part + have, sizeof(part) - have);
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_geq(n, 0, "read acks: %s", strerror(errno));
        if (n == 0) {
            cr_assert_eq(have, 0, "a torn ack on the pipe");
            return;
        }
        have += (size_t)n;
        if (have < sizeof(ack))
            continue;
        have = 0;
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 1024;
            out->v = realloc(out->v, out->cap * sizeof(*out->v));
            cr_assert_not_null(out->v);
        }
        memcpy(&out->v[out->n++], part, sizeof(ack));
    }
}

/* Every ack is in got, at its offsets, with its bytes. */
static void expect_acks(const th_batches *got, const acks *a, const char *what)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        const ack *x = &a->v[i];
        /* Acks come in offset order (group commit acks in order). */
        while (k < got->n && got->v[k].base < x->base)
            k++;
        cr_assert_lt(k, got->n, "%s: acked batch %" PRId64 " is lost (log ends at %" PRId64 ")",
                     what, x->base, got->n ? got->v[got->n - 1].last + 1 : 0);
        cr_assert_eq(got->v[k].base, x->base, "%s: acked batch %" PRId64 " is lost", what, x->base);
        cr_assert_eq(got->v[k].last, x->last, "%s: batch %" PRId64, what, x->base);
        cr_assert_eq(XXH3_64bits(got->v[k].data, got->v[k].len), x->hash,
                     "%s: acked batch %" PRId64 " differs", what, x->base);
    }
}

// kill -9 of a flush=always appender at random moments loses no acked batch; the log verifies.
Test(crash, kill9_loses_no_acked_batch)
{
    char *dir = th_tmpdir("kill9");
    rn_io *io = th_io_new();
    uint64_t rnd = 20240601;
    acks all = {0};
    int64_t started = now_ms();
    for (int round = 0; round < 6 && now_ms() - started < 6000; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        fcntl(p[0], F_SETFD, FD_CLOEXEC);
        /* The child's environment, made before fork: only execve after it. */
        char env[4200];
        snprintf(env, sizeof(env), CHILD_ENV "=%d:%d000000:%s", p[1], round, dir);
        extern char **environ;
        size_t n_env = 0;
        while (environ[n_env])
            n_env++;
        char **envp = calloc(n_env + 2, sizeof(*envp));
        cr_assert_not_null(envp);
        memcpy(envp, environ, n_env * sizeof(*envp));
        envp[n_env] = env;
        char *argv[] = {"test_crash-child", NULL};
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            execve("/proc/self/exe", argv, envp);
            _exit(127);
        }
        free(envp);
        close(p[1]);
        acks got_acks = {0};
        /* The clock starts at the first ack: a loaded machine may take a
         * while to start the child (and a sanitizer build longer). */
        int64_t t0 = now_ms();
        while (got_acks.n == 0 && now_ms() - t0 < 20000)
            read_acks(p[0], &got_acks, now_ms() + 50);
        int64_t run_ms = (int64_t)th_rand_range(&rnd, 50, 300);
        read_acks(p[0], &got_acks, now_ms() + run_ms);
        kill(pid, SIGKILL);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        /* Acks written before the kill are still in the pipe: they count. */
        read_acks(p[0], &got_acks, -1);
        close(p[0]);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %d: the child ended by itself (status 0x%x)", round, status);
        cr_assert_gt(got_acks.n, 0, "round %d: no append was acknowledged", round);
        for (size_t i = 0; i < got_acks.n; i++) {
            if (all.n == all.cap) {
                all.cap = all.cap ? all.cap * 2 : 1024;
                all.v = realloc(all.v, all.cap * sizeof(*all.v));
            }
            all.v[all.n++] = got_acks.v[i];
        }
        free(got_acks.v);

        rn_log_config cfg;
        th_config(&cfg, 64 * 1024, RN_FLUSH_ALWAYS);
        rn_log *log;
        rn_log_open_info info;
        int rc = rn_log_open(&log, io, dir, "kill9", &cfg, &info);
        cr_assert_eq(rc, 0, "round %d: reopen: %s", round, rn_strerror(rc));
        cr_assert(!info.clean);
        th_batches got = {0};
        th_read_all(log, 1 << 20, &got);
        char what[32];
        snprintf(what, sizeof(what), "kill round %d", round);
        expect_acks(&got, &all, what);
        th_batches_free(&got);
        /* Every other round the next child starts from a clean close. */
        if (round % 2)
            cr_assert_eq(rn_log_close(log), 0);
        else
            rn_log_abandon(log);
    }
    free(all.v);
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}

/* ---- Simulated power loss --------------------------------------------------- */

#define SIM_MAX 400

typedef struct sim_sub {
    uint8_t *buf;
    size_t len;
    int64_t base, last;
    bool submitted, done, acked;
    bool flushed; /* acked, then a rn_log_flush_sync returned 0 */
    bool acked_at_crash, flushed_at_crash;
} sim_sub;

typedef struct sim {
    sim_sub s[SIM_MAX];
    unsigned n;
    unsigned inflight;
} sim;

static void sim_cb(void *arg, int err, int64_t base, int64_t last)
{
    sim_sub *s = arg;
    cr_assert(!s->done, "callback ran twice");
    s->done = true;
    cr_assert_eq(err, 0, "append failed without a fault: %s", rn_strerror(err));
    cr_assert_eq(base, s->base);
    cr_assert_eq(last, s->last);
    s->acked = true;
}

/* Append to log in random bursts of up to max_burst (new appends arrive
 * while others wait for their fdatasync, as produce requests do), and crash
 * (capture what the disk holds of dir into crash_dir) at a random moment:
 * right after a round of completions that acknowledged something (where an
 * ack that ran ahead of its fdatasync shows), or once `count` more were
 * submitted. */
static void sim_run(sim *sm, rn_io *io, rn_log *log, unsigned count, unsigned max_burst,
                    const char *dir, const char *crash_dir, enum th_crash_mode mode, uint64_t *rnd)
{
    unsigned target = sm->n + count;
    cr_assert_leq(target, SIM_MAX);
    while (sm->n < target) {
        unsigned inflight = 0, acked = 0;
        for (unsigned i = 0; i < sm->n; i++) {
            inflight += sm->s[i].submitted && !sm->s[i].done;
            acked += sm->s[i].acked;
        }
        unsigned burst = (unsigned)th_rand_range(rnd, 0, max_burst);
        for (unsigned b = 0; b < burst && inflight < 32 && sm->n < target; b++) {
            sim_sub *s = &sm->s[sm->n++];
            s->buf = th_batch_new(sm->n * 7919, 1 + (int)th_rand_range(rnd, 0, 3),
                                  (size_t)th_rand_range(rnd, 10, 400), &s->len);
            int rc = rn_log_append(log, s->buf, s->len, 1, sim_cb, s);
            cr_assert_eq(rc, 0, "append: %s", rn_strerror(rc));
            s->submitted = true;
            s->base = th_be64(s->buf);
            s->last = s->base + th_be32(s->buf + RN_BATCH_OFF_LAST_OFFSET_DELTA);
            inflight++;
        }
        /* Sometimes crash with the ring's completions not even reaped. */
        if (th_rand(rnd) % 4) {
            /* Never block with nothing in flight (an empty burst). */
            unsigned wait = rn_io_inflight(io) ? (unsigned)(th_rand(rnd) % 2) : 0;
            cr_assert_geq(rn_io_run(io, wait), 0);
        }
        unsigned acked_now = 0;
        for (unsigned i = 0; i < sm->n; i++)
            acked_now += sm->s[i].acked;
        if (acked_now > acked && th_rand(rnd) % 8 == 0)
            break;
        if (rn_log_config_of(log)->flush != RN_FLUSH_ALWAYS && th_rand(rnd) % 6 == 0) {
            /* An explicit flush: what was acked before it is durable when it
             * returns 0; sometimes the power goes right after. */
            bool was_acked[SIM_MAX];
            for (unsigned i = 0; i < sm->n; i++)
                was_acked[i] = sm->s[i].acked;
            int rc = rn_log_flush_sync(log);
            cr_assert_eq(rc, 0, "flush: %s", rn_strerror(rc));
            for (unsigned i = 0; i < sm->n; i++)
                sm->s[i].flushed |= was_acked[i];
            if (th_rand(rnd) % 2)
                break;
        }
    }
    th_crash_capture(dir, crash_dir, mode, th_rand(rnd));
    for (unsigned i = 0; i < sm->n; i++) {
        sm->s[i].acked_at_crash = sm->s[i].acked;
        sm->s[i].flushed_at_crash = sm->s[i].flushed;
    }
}

/* Recover crash_dir and check: acked-at-crash batches all there (with
 * flush=always), nothing but submitted batches, everything verifies. */
static rn_log *sim_check(sim *sm, rn_io *io, const char *crash_dir, const rn_log_config *cfg,
                         const char *what)
{
    rn_log *log;
    rn_log_open_info info;
    int rc = rn_log_open(&log, io, crash_dir, "sim", cfg, &info);
    cr_assert_eq(rc, 0, "%s: recovery: %s", what, rn_strerror(rc));
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got);
    size_t k = 0;
    for (unsigned i = 0; i < sm->n; i++) {
        const sim_sub *s = &sm->s[i];
        bool durable = cfg->flush == RN_FLUSH_ALWAYS ? s->acked_at_crash : s->flushed_at_crash;
        if (!durable)
            continue;
        while (k < got.n && got.v[k].base < s->base)
            k++;
        cr_assert(k < got.n && got.v[k].base == s->base,
                  "%s: acked batch %" PRId64 " lost (log end %" PRId64 ")", what, s->base,
                  rn_log_end_offset(log));
        cr_assert(got.v[k].len == s->len && memcmp(got.v[k].data, s->buf, s->len) == 0,
                  "%s: acked batch %" PRId64 " differs", what, s->base);
    }
    for (size_t j = 0; j < got.n; j++) {
        bool known = false;
        for (unsigned i = 0; i < sm->n && !known; i++)
            known = sm->s[i].submitted && sm->s[i].base == got.v[j].base &&
                    sm->s[i].len == got.v[j].len &&
                    memcmp(sm->s[i].buf, got.v[j].data, got.v[j].len) == 0;
        cr_assert(known, "%s: batch %" PRId64 " was never appended", what, got.v[j].base);
    }
    /* What was lost is gone for good: the next appends reuse those offsets
     * and the records the crash took must not be found any more. */
    int64_t leo = rn_log_end_offset(log);
    for (unsigned i = 0; i < sm->n; i++) {
        if (sm->s[i].base >= leo) {
            sm->s[i].submitted = false; /* lost: its offsets will be given again */
            sm->s[i].acked = sm->s[i].acked_at_crash = false;
            sm->s[i].flushed = sm->s[i].flushed_at_crash = false;
        }
    }
    th_batches_free(&got);
    return log;
}

static void sim_free(sim *sm)
{
    for (unsigned i = 0; i < sm->n; i++)
        free(sm->s[i].buf);
}

/* Rounds of append-then-power-loss on one log, each recovered from the last. */
static void sim_trial(uint64_t seed, enum rn_flush_policy flush, enum th_crash_mode mode)
{
    char *root = th_tmpdir("sim");
    rn_io *io = th_io_new();
    uint64_t rnd = seed;
    rn_log_config cfg;
    th_config(&cfg, 8192, flush);
    cfg.index_interval_bytes = 256;
    sim *sm = calloc(1, sizeof(*sm));
    cr_assert_not_null(sm);
    char dir[4096], what[96];
    th_path(dir, root, "crash-0");
    for (int round = 0; round < 3; round++) {
        snprintf(what, sizeof(what), "seed %" PRIu64 " flush %d mode %d round %d", seed, flush,
                 mode, round);
        char crash_dir[4096];
        snprintf(crash_dir, sizeof(crash_dir), "%s/crash-%d", root, round + 1);
        /* Real fdatasyncs: they take time, so writes complete while one is
         * in flight, which is what group commit has to get right. */
        th_crash_begin(dir, false);
        rn_log *log;
        int rc = rn_log_open(&log, io, dir, "sim", &cfg, NULL);
        cr_assert_eq(rc, 0, "%s: open: %s", what, rn_strerror(rc));
        sim_run(sm, io, log, (unsigned)th_rand_range(&rnd, 1, 100),
                (unsigned)th_rand_range(&rnd, 1, 8), dir, crash_dir, mode, &rnd);
        /* After the crash the old log runs on; nothing it does counts. */
        rn_log_abandon(log);
        th_crash_end();
        log = sim_check(sm, io, crash_dir, &cfg, what);
        rn_log_abandon(log);
        memcpy(dir, crash_dir, sizeof(dir));
    }
    sim_free(sm);
    free(sm);
    rn_io_free(io);
    th_rmrf(root);
    free(root);
}

// Power loss, unsynced sectors kept/dropped/garbled: no flush=always ack lost; log verifies.
Test(crash, power_loss_random_sectors)
{
    for (uint64_t seed = 1; seed <= 12; seed++)
        sim_trial(seed, RN_FLUSH_ALWAYS, TH_CRASH_RANDOM);
}

// A power loss that drops every unsynced write loses no batch acked under flush=always.
Test(crash, power_loss_drop_unsynced)
{
    for (uint64_t seed = 100; seed < 108; seed++)
        sim_trial(seed, RN_FLUSH_ALWAYS, TH_CRASH_DROP_ALL);
}

// flush=never: a power loss keeps what an explicit flush covered; the log verifies.
Test(crash, power_loss_flush_never)
{
    for (uint64_t seed = 200; seed < 208; seed++)
        sim_trial(seed, RN_FLUSH_NEVER, TH_CRASH_RANDOM);
}

/* ---- Acknowledgements against completed syncs --------------------------------- */

#define ACK_N 240 /* appends; 16 KiB segments: a dozen rolls */

typedef struct ack_sub {
    uint8_t *buf; /* stamped in place by the append: the bytes on disk */
    size_t len;
    int64_t base, last;
    bool acked;
} ack_sub;

static struct {
    const char *dir;
    rn_log *log;
    ack_sub s[ACK_N];
    unsigned n, n_acks;
    unsigned hw_checked; /* s[0, hw_checked) were found durable below the hw */
    unsigned n_table_syncs;
} ak;

static bool ack_durable(const ack_sub *sub)
{
    return th_crash_durable(ak.dir, sub->buf, sub->len, sub->base);
}

static void ack_cb(void *arg, int err, int64_t base, int64_t last)
{
    ack_sub *sub = arg;
    cr_assert_eq(err, 0, "append %" PRId64 ": %s", sub->base, rn_strerror(err));
    cr_assert(!sub->acked, "acked twice");
    cr_assert_eq(base, sub->base);
    cr_assert_eq(last, sub->last);
    sub->acked = true;
    ak.n_acks++;
    /* The contract of flush=always: the fdatasync that covers the batch has
     * completed before its ack, whichever segment it is in. */
    cr_assert(ack_durable(sub),
              "batch %" PRId64 " acked before a completed fdatasync covered it "
              "(%u completed syncs so far)",
              base, th_crash.n_syncs);
}

/* Every batch below the high watermark is durable: a consumer reads only
 * what no power loss can take back. Batches found durable stay so. */
static void check_hw(const char *what)
{
    int64_t hw = rn_log_high_watermark(ak.log);
    cr_assert_leq(hw, rn_log_end_offset(ak.log));
    for (; ak.hw_checked < ak.n && ak.s[ak.hw_checked].last < hw; ak.hw_checked++)
        cr_assert(ack_durable(&ak.s[ak.hw_checked]),
                  "%s: high watermark %" PRId64 " (log end %" PRId64 ") is past batch %" PRId64
                  ", which no completed fdatasync covers",
                  what, hw, rn_log_end_offset(ak.log), ak.s[ak.hw_checked].base);
}

static void ack_submit(uint64_t seed, uint64_t *rnd)
{
    cr_assert_lt(ak.n, ACK_N);
    ack_sub *sub = &ak.s[ak.n++];
    sub->buf = th_batch_new(seed, 1 + (int)th_rand_range(rnd, 0, 3),
                            (size_t)th_rand_range(rnd, 50, 600), &sub->len);
    int rc = rn_log_append(ak.log, sub->buf, sub->len, 1, ack_cb, sub);
    cr_assert_eq(rc, 0, "append: %s (%s)", rn_strerror(rc), rn_log_errmsg(ak.log));
    sub->base = th_be64(sub->buf + RN_BATCH_OFF_BASE_OFFSET);
    sub->last = sub->base + th_be32(sub->buf + RN_BATCH_OFF_LAST_OFFSET_DELTA);
}

static int (*ack_crash_fdatasync)(int fd);

/* The table's fdatasync, counted: the synchronous syncs (index and segment
 * seals); the crash layer below it records what they make durable. */
static int ack_count_fdatasync(int fd)
{
    ak.n_table_syncs++;
    return ack_crash_fdatasync(fd);
}

// flush=always across rolls: each ack comes after a completed fdatasync covering its batch,
// the high watermark never passes an unsynced batch, and sealed segments are wholly synced.
Test(crash, flush_always_acks_follow_completed_syncs)
{
    char *root = th_tmpdir("acksync");
    rn_io *io = th_io_new();
    char dir[4096];
    th_path(dir, root, "log");
    rn_log_config cfg;
    th_config(&cfg, 16384, RN_FLUSH_ALWAYS);
    cfg.index_interval_bytes = 256;
    cfg.preallocate_bytes = 0; /* the write is the only operation in flight */
    memset(&ak, 0, sizeof(ak));
    ak.dir = dir;
    /* Real fdatasyncs: they take time, so writes complete and more appends
     * become visible while one is in flight, as under produce load. The
     * crash layer sees the synchronous ones through the rn_sys table and
     * the io_uring ones as their SQEs are submitted and their CQEs posted. */
    th_crash_begin(dir, false);
    ack_crash_fdatasync = rn_sys.fdatasync;
    rn_sys.fdatasync = ack_count_fdatasync;
    int rc = rn_log_open(&ak.log, io, dir, "acksync", &cfg, NULL);
    cr_assert_eq(rc, 0, "open: %s", rn_strerror(rc));
    uint64_t rnd = 4711;

    /* One append, one completion: the write is back (the only operation in
     * flight), the batch is in the log, its fdatasync not even submitted. A
     * consumer must not see it yet. */
    cr_assert_eq(rn_io_inflight(io), 0);
    ack_submit(1, &rnd);
    cr_assert_geq(rn_io_run(io, 1), 1);
    cr_assert_eq(rn_log_end_offset(ak.log), ak.s[0].last + 1, "the write has not completed");
    cr_assert_eq(ak.n_acks, 0);
    cr_assert(!ack_durable(&ak.s[0]), "durable before any fdatasync ran");
    cr_assert_eq(rn_log_high_watermark(ak.log), 0,
                 "high watermark %" PRId64 " with nothing synced (log end %" PRId64 ")",
                 rn_log_high_watermark(ak.log), rn_log_end_offset(ak.log));
    rn_slice sl;
    rc = rn_log_read(ak.log, 0, 1 << 20, rn_log_high_watermark(ak.log), &sl);
    cr_assert_eq(rc, 0, "read at the high watermark: %s", rn_strerror(rc));
    cr_assert_eq(sl.len, 0, "a consumer read %zu bytes above the high watermark", sl.len);
    check_hw("one append");
    while (ak.n_acks < 1) {
        cr_assert_gt(rn_io_inflight(io), 0, "the first append is never acked");
        cr_assert_geq(rn_io_run(io, 1), 0);
        check_hw("first append");
    }
    cr_assert_eq(rn_log_high_watermark(ak.log), rn_log_end_offset(ak.log));

    /* Bursts of appends while others wait for their sync, across rolls. */
    while (ak.n_acks < ACK_N) {
        /* Never an empty burst with nothing in flight. */
        unsigned burst = (unsigned)th_rand_range(&rnd, ak.n == ak.n_acks ? 1 : 0, 12);
        for (unsigned b = 0; b < burst && ak.n < ACK_N && ak.n - ak.n_acks < 24; b++)
            ack_submit(ak.n + 1, &rnd);
        cr_assert_gt(rn_io_inflight(io), 0, "%u of %u acked and nothing in flight", ak.n_acks,
                     ak.n);
        cr_assert_geq(rn_io_run(io, 1), 0);
        check_hw("bursts");
    }
    unsigned n_segs = rn_log_segment_count(ak.log);
    cr_assert_geq(n_segs, 8, "only %u segments: the test should cross rolls", n_segs);
    cr_assert_eq(rn_log_high_watermark(ak.log), rn_log_end_offset(ak.log));
    check_hw("end");
    cr_assert_eq(ak.hw_checked, ACK_N);

    /* A sealed segment is trusted by recovery without a scan: its .log and
     * both indexes must be on disk as they are now. Wait for the seals still
     * running through the ring first. */
    for (int i = 0; i < 1000 && rn_io_inflight(io) > 0; i++)
        cr_assert_geq(rn_io_run(io, 1), 0);
    cr_assert_eq(rn_io_inflight(io), 0);
    th__crash_scan_cq();
    unsigned n_sealed = 0;
    for (unsigned i = 0; i + 1 < n_segs; i++) {
        int64_t base = rn_log_segment_base(ak.log, i);
        static const char *const exts[] = {".log", ".idx", ".tix"};
        for (int e = 0; e < 3; e++) {
            char p[4096];
            size_t len;
            uint8_t *cur = th_read_file(th_seg_path(p, dir, base, exts[e]), &len);
            struct stat st;
            cr_assert_eq(stat(p, &st), 0);
            const th_image *im = th__crash_find(st.st_dev, st.st_ino, false);
            cr_assert(im && im->len == len && memcmp(im->data, cur, len) == 0,
                      "sealed %s is not what its last completed fdatasync saw (%zu bytes on "
                      "file, %zu synced)",
                      p, len, im ? im->len : 0);
            free(cur);
        }
        n_sealed++;
    }
    /* Counted: every sealed segment needs its .log synced (through the ring)
     * and both indexes synced (through the table) before its seal; the acks
     * need at least one more for the active segment. */
    cr_assert_geq(ak.n_table_syncs, 2 * n_sealed, "%u table fdatasyncs for %u sealed segments",
                  ak.n_table_syncs, n_sealed);
    cr_assert_geq(th_crash.n_syncs, 3 * n_sealed + 1,
                  "%u completed fdatasyncs for %u sealed segments", th_crash.n_syncs, n_sealed);
    cr_log_info("%u appends, %u segments: %u completed fdatasyncs (%u through the table)", ak.n,
                n_segs, th_crash.n_syncs, ak.n_table_syncs);

    cr_assert_eq(rn_log_close(ak.log), 0);
    th_crash_end();
    for (unsigned i = 0; i < ak.n; i++)
        free(ak.s[i].buf);
    rn_io_free(io);
    th_rmrf(root);
    free(root);
}
