/*
 * test_fault.c — failing system calls one at a time (suite `fault`).
 *
 * SQLite's faultsim, on the partition log: for each kind of call the storage
 * makes (open, pwrite, fdatasync, ftruncate, fallocate, rename, mmap, unlink)
 * and for N = 1, 2, 3 … the Nth call of that kind fails (with -EIO, then with
 * -ENOSPC) during one scenario — open, appends sync and async with several in
 * flight, rolls, retention, close, reopen, more appends with flush=never and
 * an explicit flush, close — until a run completes without the fault firing.
 *
 * Every run must only ever return clean errors (no crash, callbacks exactly
 * once) and must not acknowledge what is not on disk per the policy. To check
 * the last point for real, each run ends with a simulated power loss (the
 * crash layer of helpers.h drops every write no fdatasync covered), then the
 * log is reopened without faults and must hold:
 *
 *  1. every batch acknowledged as durable (flush=always, or flush=never then a
 *     successful rn_log_flush_sync / rn_log_close), at its offsets, byte for
 *     byte, unless retention deleted its segment;
 *  2. contiguous offsets and batches that all pass rn_batch_verify;
 *  3. nothing but batches the run submitted, each at the offsets it was
 *     given; a batch the log said failed comes back only when the failure
 *     was -RN_E_LOG_FAILED (after a failed fdatasync nothing is known).
 *
 * Also: a real disk-full on a 2 MiB tmpfs, and the failed-fdatasync contract.
 */
#define TH_CRASH_LAYER
#include <sched.h>
#include <sys/mount.h>

#include "helpers.h"

#define MAX_SUBS 64

/* One append of the scenario. */
typedef struct sub {
    uint8_t *buf;
    size_t len;
    bool submitted; /* rn_log_append returned 0 (the batch got offsets) */
    int n_cb;
    int err;      /* from rn_log_append or the callback */
    bool acked;   /* callback with 0 */
    bool durable; /* acked and covered by the policy or a later flush */
    bool always;  /* appended with flush=always */
    int64_t base, last;
} sub;

typedef struct run {
    enum rn_sys_call kind;
    unsigned nth;
    int err;
    unsigned count;
    bool fired;
    rn_io *io;
    char *dir;
    sub subs[MAX_SUBS];
    unsigned n_subs;
    int64_t floor; /* the reopened log may start at most here (retention) */
    char what[96];
} run;

static int inject(enum rn_sys_call call, void *arg)
{
    run *r = arg;
    if (call != r->kind || r->fired)
        return 0;
    if (++r->count == r->nth) {
        r->fired = true;
        return r->err;
    }
    return 0;
}

/* Errors a run may see: the injected one, or what the log turns it into. */
static void expect_clean_error(run *r, int err, const char *where)
{
    cr_assert(err == r->err || err == -RN_E_LOG_FAILED, "%s: %s returned %d (%s), injected %s",
              r->what, where, err, rn_strerror(err), rn_strerror(r->err));
}

static void append_cb(void *arg, int err, int64_t base, int64_t last)
{
    sub *s = arg;
    s->n_cb++;
    cr_assert_eq(s->n_cb, 1, "callback ran twice");
    s->err = err;
    if (err == 0) {
        cr_assert_eq(base, s->base, "acked base %" PRId64 ", stamped %" PRId64, base, s->base);
        cr_assert_eq(last, s->last);
        s->acked = true;
        s->durable = s->always;
    }
}

static sub *new_sub(run *r, unsigned seed)
{
    cr_assert_lt(r->n_subs, MAX_SUBS);
    sub *s = &r->subs[r->n_subs++];
    memset(s, 0, sizeof(*s));
    /* ~700 bytes: 4 KiB segments roll every five batches. */
    s->buf = th_batch_new(seed, 1 + seed % 4, 640 / (1 + seed % 4), &s->len);
    return s;
}

/* Submit s; on success the buffer carries the offsets the log gave it. */
static bool submit(run *r, rn_log *log, sub *s, bool always)
{
    s->always = always;
    int rc = rn_log_append(log, s->buf, s->len, 3, append_cb, s);
    if (rc < 0) {
        s->err = rc;
        expect_clean_error(r, rc, "rn_log_append");
        return false;
    }
    s->submitted = true;
    s->base = th_be64(s->buf + RN_BATCH_OFF_BASE_OFFSET);
    s->last = s->base + th_be32(s->buf + RN_BATCH_OFF_LAST_OFFSET_DELTA);
    return true;
}

/* Run io until every submitted append has had its callback. */
static void wait_all(run *r)
{
    for (;;) {
        bool waiting = false;
        for (unsigned i = 0; i < r->n_subs; i++)
            waiting |= r->subs[i].submitted && r->subs[i].n_cb == 0;
        if (!waiting)
            return;
        cr_assert_gt(rn_io_inflight(r->io), 0, "%s: an append waits with nothing in flight",
                     r->what);
        int rc = rn_io_run(r->io, 1);
        cr_assert(rc >= 0 || rc == -EINTR, "rn_io_run: %s", strerror(-rc));
    }
}

static void append_sync(run *r, rn_log *log, unsigned seed, bool always)
{
    sub *s = new_sub(r, seed);
    if (submit(r, log, s, always))
        wait_all(r);
    if (s->n_cb && s->err)
        expect_clean_error(r, s->err, "append callback");
}

static void mark_durable(run *r)
{
    for (unsigned i = 0; i < r->n_subs; i++)
        if (r->subs[i].acked)
            r->subs[i].durable = true;
}

/* The smallest base offset of a .log file in dir (INT64_MAX when none). */
static int64_t first_segment_on_disk(const char *dir)
{
    int64_t bases[64];
    unsigned n = th_list_segments(dir, bases, 64);
    return n ? bases[0] : INT64_MAX;
}

static void scenario(run *r)
{
    rn_log_config cfg;
    th_config(&cfg, 4096, RN_FLUSH_ALWAYS);
    cfg.preallocate_bytes = 1024;
    cfg.retention_bytes = 6 * 1024;
    rn_log *log;
    int rc = rn_log_open(&log, r->io, r->dir, "fault", &cfg, NULL);
    if (rc < 0) {
        expect_clean_error(r, rc, "first open");
        return;
    }
    /* flush=always, one at a time, then eight in flight together. */
    unsigned seed = 1;
    for (int i = 0; i < 4; i++)
        append_sync(r, log, seed++, true);
    for (int i = 0; i < 8; i++)
        submit(r, log, new_sub(r, seed++), true);
    wait_all(r);
    for (unsigned i = 0; i < r->n_subs; i++)
        if (r->subs[i].n_cb && r->subs[i].err)
            expect_clean_error(r, r->subs[i].err, "append callback");

    rc = rn_log_enforce_retention(log, rn_log_clock_ms());
    if (rc < 0)
        expect_clean_error(r, rc, "retention");
    /* A failed delete may have removed some of a segment's files: what the
     * next open may start at is the first .log still on disk. */
    r->floor = first_segment_on_disk(r->dir);
    cr_assert_geq(r->floor, rn_log_start_offset(log), "%s", r->what);

    rc = rn_log_close(log);
    if (rc < 0)
        expect_clean_error(r, rc, "close");
    else
        mark_durable(r);

    rn_log_open_info info;
    rc = rn_log_open(&log, r->io, r->dir, "fault", &cfg, &info);
    if (rc < 0) {
        expect_clean_error(r, rc, "reopen");
        return;
    }
    cfg.flush = RN_FLUSH_NEVER;
    cr_assert_eq(rn_log_set_config(log, &cfg), 0);
    for (int i = 0; i < 4; i++)
        submit(r, log, new_sub(r, seed++), false);
    wait_all(r);
    rc = rn_log_flush_sync(log);
    if (rc < 0)
        expect_clean_error(r, rc, "flush");
    else
        mark_durable(r);
    for (int i = 0; i < 2; i++)
        append_sync(r, log, seed++, false);
    rc = rn_log_close(log);
    if (rc < 0)
        expect_clean_error(r, rc, "second close");
    else
        mark_durable(r);
}

/* After the run (and a simulated power loss), reopen without faults and
 * check the invariants of the file comment. */
static int no_fdatasync(int fd)
{
    (void)fd;
    return 0;
}

static void verify(run *r)
{
    /* The power loss is behind us: real syncs would only cost time here. */
    rn_sys.fdatasync = no_fdatasync;
    rn_log_config cfg;
    th_config(&cfg, 4096, RN_FLUSH_NEVER);
    rn_log *log;
    rn_log_open_info info;
    int rc = rn_log_open(&log, r->io, r->dir, "fault", &cfg, &info);
    cr_assert_eq(rc, 0, "%s: reopen after the run: %s", r->what, rn_strerror(rc));
    th_batches got = {0};
    th_read_all(log, 1 << 16, &got);
    int64_t start = rn_log_start_offset(log);
    cr_assert_leq(start, r->floor, "%s: the log starts at %" PRId64 ", retention left %" PRId64,
                  r->what, start, r->floor);
    for (unsigned i = 0; i < r->n_subs; i++) {
        const sub *s = &r->subs[i];
        if (!s->durable || s->base < start)
            continue;
        size_t k = 0;
        while (k < got.n && got.v[k].base != s->base)
            k++;
        cr_assert_lt(k, got.n, "%s: acked batch %" PRId64 "..%" PRId64 " is lost", r->what, s->base,
                     s->last);
        cr_assert(got.v[k].len == s->len && memcmp(got.v[k].data, s->buf, s->len) == 0,
                  "%s: acked batch %" PRId64 " differs", r->what, s->base);
    }
    for (size_t k = 0; k < got.n; k++) {
        bool known = false;
        for (unsigned i = 0; i < r->n_subs && !known; i++) {
            const sub *s = &r->subs[i];
            known = s->submitted && s->base == got.v[k].base && s->len == got.v[k].len &&
                    memcmp(s->buf, got.v[k].data, s->len) == 0 &&
                    (s->acked || s->err == -RN_E_LOG_FAILED || s->n_cb == 0);
        }
        cr_assert(known, "%s: batch %" PRId64 " read back is none the run may have written",
                  r->what, got.v[k].base);
    }
    th_batches_free(&got);
    /* The log still takes appends after all that. */
    size_t len;
    uint8_t *b = th_batch_new(4242, 2, 30, &len);
    int64_t leo = rn_log_end_offset(log), base;
    rc = rn_log_append_sync(log, b, len, 0, &base);
    cr_assert_eq(rc, 0, "%s: append after recovery: %s", r->what, rn_strerror(rc));
    cr_assert_eq(base, leo);
    free(b);
    cr_assert_eq(rn_log_close(log), 0);
    rn_sys_reset();
}

static void run_free(run *r)
{
    for (unsigned i = 0; i < r->n_subs; i++)
        free(r->subs[i].buf);
    r->n_subs = 0;
}

/* Fail the Nth call of kind, N = 1, 2, …, until the fault no longer fires. */
static void faultsim(enum rn_sys_call kind)
{
    static const int errs[] = {-EIO, -ENOSPC};
    char *root = th_tmpdir("fault");
    rn_io *io = th_io_new();
    unsigned runs = 0;
    for (size_t e = 0; e < sizeof(errs) / sizeof(errs[0]); e++) {
        for (unsigned nth = 1;; nth++) {
            cr_assert_lt(nth, 400, "%s: the scenario never ends", rn_sys_name(kind));
            run r = {.kind = kind, .nth = nth, .err = errs[e], .io = io, .floor = INT64_MAX};
            snprintf(r.what, sizeof(r.what), "%s #%u fails with %s", rn_sys_name(kind), nth,
                     strerror(-errs[e]));
            char dir[4096];
            snprintf(dir, sizeof(dir), "%s/run-%zu-%u", root, e, nth);
            r.dir = dir;
            th_crash_begin(dir, true);
            rn_sys_set_injector(inject, &r);
            scenario(&r);
            rn_sys_set_injector(NULL, NULL);
            for (unsigned i = 0; i < r.n_subs; i++)
                cr_assert_eq(r.subs[i].n_cb, r.subs[i].submitted ? 1 : 0,
                             "%s: append %u: %d callbacks", r.what, i, r.subs[i].n_cb);
            if (th_exists(dir))
                th_crash_apply(dir, TH_CRASH_DROP_ALL, nth);
            th_crash_end();
            verify(&r);
            run_free(&r);
            th_rmrf(dir);
            runs++;
            if (!r.fired)
                break;
        }
    }
    cr_assert_gt(runs, 2, "%s: the scenario should make several such calls", rn_sys_name(kind));
    cr_log_info("%s: %u runs", rn_sys_name(kind), runs);
    rn_io_free(io);
    th_rmrf(root);
    free(root);
}

// Any one failing open (segment, index, marker, dir sync): clean errors, no acked batch lost.
Test(fault, open)
{
    faultsim(RN_SYS_OPEN);
}

// Any one failing write (sync or io_uring): clean errors, cut back, no acked batch lost.
Test(fault, pwrite)
{
    faultsim(RN_SYS_PWRITE);
}

// Any one failing fdatasync (sync or io_uring) fails the log without acking, and a reopen recovers.
Test(fault, fdatasync)
{
    faultsim(RN_SYS_FDATASYNC);
}

// Any one failing ftruncate (create, seal, cut) gives clean errors and loses no acked batch.
Test(fault, ftruncate)
{
    faultsim(RN_SYS_FTRUNCATE);
}

// Any one failing fallocate (preallocation, index growth): clean errors, no acked batch lost.
Test(fault, fallocate)
{
    faultsim(RN_SYS_FALLOCATE);
}

// Any one failing rename (the clean marker) gives clean errors and loses no acked batch.
Test(fault, rename)
{
    faultsim(RN_SYS_RENAME);
}

// Any one failing mmap (segment or index mapping) gives clean errors and loses no acked batch.
Test(fault, mmap)
{
    faultsim(RN_SYS_MMAP);
}

// Any one failing unlink (retention, marker removal) gives clean errors and loses no acked batch.
Test(fault, unlink)
{
    faultsim(RN_SYS_UNLINK);
}

/* ---- A failed fdatasync ----------------------------------------------------- */

static int fail_fdatasync(enum rn_sys_call call, void *arg)
{
    bool *armed = arg;
    if (call == RN_SYS_FDATASYNC && *armed) {
        *armed = false;
        return -EIO;
    }
    return 0;
}

// A failed group-commit fdatasync fails every waiting and later append; reopen recovers.
Test(fault, failed_fdatasync_fails_log)
{
    char *dir = th_tmpdir("fault");
    rn_io *io = th_io_new();
    rn_log_config cfg;
    th_config(&cfg, 1 << 16, RN_FLUSH_ALWAYS);
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, dir, "fsync", &cfg, NULL), 0);
    th_batches acked = {0};
    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *b = th_batch_new(i + 1, 2, 50, &len);
        cr_assert_eq(rn_log_append_sync(log, b, len, 0, NULL), 0);
        th_batches_push(&acked, b, len);
        free(b);
    }
    bool armed = true;
    rn_sys_set_injector(fail_fdatasync, &armed);
    run r = {.err = -EIO, .io = io};
    snprintf(r.what, sizeof(r.what), "failed fdatasync");
    for (int i = 0; i < 4; i++)
        submit(&r, log, new_sub(&r, 10 + i), true);
    wait_all(&r);
    cr_assert(!armed, "the fault should have fired");
    for (unsigned i = 0; i < r.n_subs; i++)
        cr_assert_eq(r.subs[i].err, -RN_E_LOG_FAILED, "append %u: %s", i,
                     rn_strerror(r.subs[i].err));
    cr_assert_lt(rn_log_flushed_offset(log), rn_log_end_offset(log));
    cr_assert_eq(rn_log_high_watermark(log), acked.v[2].last + 1,
                 "consumers must not see what failed to sync");
    size_t len;
    uint8_t *b = th_batch_new(99, 1, 10, &len);
    cr_assert_eq(rn_log_append(log, b, len, 0, append_cb, &r.subs[0]), -RN_E_LOG_FAILED);
    cr_assert_eq(rn_log_append_sync(log, b, len, 0, NULL), -RN_E_LOG_FAILED);
    cr_assert_neq(rn_log_errmsg(log)[0], '\0');
    cr_assert_lt(rn_log_close(log), 0, "close of a failed log reports it");
    rn_sys_set_injector(NULL, NULL);

    rn_log_open_info info;
    cr_assert_eq(rn_log_open(&log, io, dir, "fsync", &cfg, &info), 0);
    cr_assert(!info.clean, "a failed log writes no clean marker");
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got);
    /* The failed batches may be there too: after a failed fdatasync nothing
     * is known about what reached the disk (invariant 4 of log.c). */
    cr_assert_geq(got.n, acked.n);
    size_t n_got = got.n;
    got.n = acked.n;
    th_expect_batches(&got, &acked, acked.n, "after the failed sync");
    got.n = n_got;
    cr_assert_eq(rn_log_append_sync(log, b, len, 0, NULL), 0, "appends work after a reopen");
    cr_assert_eq(rn_log_close(log), 0);
    th_batches_free(&got);
    th_batches_free(&acked);
    run_free(&r);
    free(b);
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}

/* ---- A real full disk ------------------------------------------------------- */

static void ack_cb(void *arg, int err, int64_t base, int64_t last)
{
    int *res = arg;
    (void)base;
    (void)last;
    *res = err;
}

/* Append b and wait: 0, or the error from rn_log_append or the callback. */
static int append_wait(rn_io *io, rn_log *log, uint8_t *b, size_t len)
{
    int res = 1;
    int rc = rn_log_append(log, b, len, 0, ack_cb, &res);
    if (rc < 0)
        return rc;
    while (res == 1)
        cr_assert_geq(rn_io_run(io, 1), 0);
    return res;
}

// A full 2 MiB tmpfs: -ENOSPC, acked data readable, appends work again once space is freed.
Test(fault, enospc_on_small_tmpfs)
{
    char *root = th_tmpdir("enospc");
    /* A private mount namespace: the tmpfs goes away with this process even
     * if the test dies half-way. */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", root, "tmpfs", 0, "size=2m") < 0) {
        int e = errno;
        th_rmrf(root);
        cr_skip_test("cannot mount a tmpfs here (%s): needs CAP_SYS_ADMIN", strerror(e));
    }
    char dir[4096], filler[4096];
    th_path(dir, root, "log");
    th_path(filler, root, "filler");
    /* Leave about 350 KiB free (index files grow by 64 KiB). */
    {
        uint8_t junk[64 * 1024];
        memset(junk, 0xab, sizeof(junk));
        int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        for (int i = 0; i < 27; i++)
            cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
        close(fd);
    }
    rn_io *io = th_io_new();
    rn_log_config cfg;
    th_config(&cfg, 1 << 20, RN_FLUSH_ALWAYS);
    cfg.index_interval_bytes = 4096;
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, dir, "full", &cfg, NULL), 0);
    th_batches acked = {0};
    int rc = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        size_t len;
        uint8_t *b = th_batch_new(i + 1, 4, 1000, &len);
        rc = append_wait(io, log, b, len);
        if (rc == 0)
            th_batches_push(&acked, b, len);
        free(b);
        if (rc < 0)
            break;
    }
    cr_assert_eq(rc, -ENOSPC, "appends end with %d (%s), not -ENOSPC", rc, rn_strerror(rc));
    cr_assert_gt(acked.n, 10);
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got);
    th_expect_batches(&got, &acked, acked.n, "after ENOSPC");
    th_batches_free(&got);

    /* Room again: the next appends go through and continue the offsets. */
    cr_assert_eq(unlink(filler), 0);
    for (uint64_t i = 0; i < 5; i++) {
        size_t len;
        uint8_t *b = th_batch_new(5000 + i, 4, 1000, &len);
        rc = append_wait(io, log, b, len);
        cr_assert_eq(rc, 0, "append after freeing space: %s (%s)", rn_strerror(rc),
                     rn_log_errmsg(log));
        th_batches_push(&acked, b, len);
        free(b);
    }
    th_read_all(log, 1 << 20, &got);
    th_expect_batches(&got, &acked, acked.n, "after freeing space");
    th_batches_free(&got);
    cr_assert_eq(rn_log_close(log), 0);
    cr_assert_eq(rn_log_open(&log, io, dir, "full", &cfg, NULL), 0);
    th_read_all(log, 1 << 20, &got);
    th_expect_batches(&got, &acked, acked.n, "reopened");
    th_batches_free(&got);
    rn_log_abandon(log);
    th_batches_free(&acked);
    rn_io_free(io);
    umount2(root, MNT_DETACH);
    th_rmrf(root);
    free(root);
}
