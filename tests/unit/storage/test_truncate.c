/*
 * test_truncate.c — rn_log_truncate_to and rn_log_truncate_fully (suite
 * `truncate`): what a follower does after OffsetsForLeaderEpoch (KIP-101/279).
 *
 *  - Across segments, mid-batch, at a segment boundary, at and past the log
 *    end: the log ends at the start of the batch holding the offset, later
 *    segments' files are gone, the high watermark and the log end move back,
 *    leader epochs past the end go, and an append continues at the new end.
 *  - A reader holding a slice of the cut segment keeps its bytes while the
 *    log appends other batches at the same offsets (copy-on-truncate).
 *  - A crash at every system call of a truncation (the call and all after
 *    it fail, then every unsynced write is dropped, as helpers.h's crash
 *    layer models it) recovers to the old log or the truncated one, with
 *    epochs that match its batches, and takes an append that verifies.
 */
#define TH_CRASH_LAYER
#include <time.h>

#include "helpers.h"
#include "storage/leader_epoch.h"

#define N_BATCHES 24

typedef struct fixture {
    char *root, dir[4096];
    rn_io *io;
    rn_log *log;
    th_batches old; /* the log before the truncation, as read back */
} fixture;

static rn_log *open_log(fixture *f, rn_log_open_info *info)
{
    rn_log_config cfg;
    th_config(&cfg, 4096, RN_FLUSH_ALWAYS);
    rn_log *log;
    int rc = rn_log_open(&log, f->io, f->dir, "trunc", &cfg, info);
    cr_assert_eq(rc, 0, "open: %s", rn_strerror(rc));
    return log;
}

/* Epoch of batch i: 1 for the first 7, then 4, then 6 from 15 on. */
static int32_t epoch_of(int i)
{
    return i < 7 ? 1 : i < 15 ? 4 : 6;
}

/* crash: record from the start with the crash layer (fake syncs, helpers.h):
 * what it calls durable is what the real syncs would have made durable. */
static void setup_as(fixture *f, const char *tag, bool crash)
{
    memset(f, 0, sizeof(*f));
    f->root = th_tmpdir(tag);
    th_path(f->dir, f->root, "log");
    f->io = th_io_new();
    if (crash)
        th_crash_begin(f->dir, true);
    f->log = open_log(f, NULL);
    /* Written with flush=never and one flush at the end: the same files as
     * flush=always, without an fdatasync per batch (hundreds of set-ups). */
    rn_log_config cfg = *rn_log_config_of(f->log);
    cfg.flush = RN_FLUSH_NEVER;
    cr_assert_eq(rn_log_set_config(f->log, &cfg), 0);
    for (int i = 0; i < N_BATCHES; i++) {
        size_t len;
        uint8_t *b = th_batch_new((uint64_t)i + 1, 3, 150, &len);
        int rc = rn_log_append_sync(f->log, b, len, epoch_of(i), NULL);
        cr_assert_eq(rc, 0, "append %d: %s", i, rn_strerror(rc));
        free(b);
    }
    cr_assert_eq(rn_log_flush_sync(f->log), 0);
    cfg.flush = RN_FLUSH_ALWAYS;
    cr_assert_eq(rn_log_set_config(f->log, &cfg), 0);
    cr_assert_geq(rn_log_segment_count(f->log), 4, "the test wants several segments");
    th_read_all(f->log, 1 << 20, &f->old);
    cr_assert_eq(f->old.n, N_BATCHES);
}

static void setup(fixture *f, const char *tag)
{
    setup_as(f, tag, false);
}

static void teardown(fixture *f)
{
    if (f->log)
        rn_log_abandon(f->log);
    th_batches_free(&f->old);
    rn_io_free(f->io);
    th_rmrf(f->root);
    free(f->root);
}

/* The epochs the batches of got say, by Kafka's rule: one entry per change. */
static void expect_epochs_match(rn_log *log, const th_batches *got, const char *what)
{
    const rn_leader_epochs *c = rn_log_leader_epochs(log);
    unsigned k = 0;
    int32_t last = -1;
    for (size_t i = 0; i < got->n; i++) {
        int32_t e = th_be32(got->v[i].data + RN_BATCH_OFF_LEADER_EPOCH);
        if (e == last)
            continue;
        cr_assert_lt(k, rn_leader_epochs_count(c), "%s: epoch %d at %" PRId64 " missing", what, e,
                     got->v[i].base);
        rn_leader_epoch_entry x = rn_leader_epochs_get(c, k++);
        cr_assert(x.epoch == e && x.start_offset == got->v[i].base,
                  "%s: entry %u is (%d, %" PRId64 "), the log says (%d, %" PRId64 ")", what, k - 1,
                  x.epoch, x.start_offset, e, got->v[i].base);
        last = e;
    }
    cr_assert_eq(rn_leader_epochs_count(c), k, "%s: %u entries, the batches say %u", what,
                 rn_leader_epochs_count(c), k);
}

/* Append one batch with epoch and check it lands at the log end and reads back. */
static void append_and_verify(rn_log *log, uint64_t seed, int32_t epoch, const char *what)
{
    size_t len;
    uint8_t *b = th_batch_new(seed, 2, 40, &len);
    int64_t leo = rn_log_end_offset(log), base;
    int rc = rn_log_append_sync(log, b, len, epoch, &base);
    cr_assert_eq(rc, 0, "%s: append: %s (%s)", what, rn_strerror(rc), rn_log_errmsg(log));
    cr_assert_eq(base, leo, "%s: the append went to %" PRId64 ", the log ended at %" PRId64, what,
                 base, leo);
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got);
    cr_assert_gt(got.n, 0);
    cr_assert(memcmp(got.v[got.n - 1].data, b, len) == 0, "%s: the appended batch differs", what);
    expect_epochs_match(log, &got, what);
    th_batches_free(&got);
    free(b);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

// Truncating mid-batch in an older segment: whole batch goes, later segments deleted, hw/leo back.
Test(truncate, across_segments_mid_batch)
{
    fixture f;
    setup(&f, "trunc");
    unsigned n_segs = rn_log_segment_count(f.log);
    /* Batch 9 (epoch 4) holds offsets 27..29: ask for 28. */
    const th_batch *b9 = &f.old.v[9];
    cr_assert_eq(b9->base, 27);
    int64_t end = -1;
    double t0 = now_us();
    int rc = rn_log_truncate_to(f.log, 28, &end);
    double t1 = now_us();
    cr_assert_eq(rc, 0, "truncate: %s (%s)", rn_strerror(rc), rn_log_errmsg(f.log));
    cr_log_info("truncation across %u segments: %.0f us", n_segs, t1 - t0);
    cr_assert_eq(end, 27, "the log ends at the start of the batch holding 28");
    cr_assert_eq(rn_log_end_offset(f.log), 27);
    cr_assert_eq(rn_log_high_watermark(f.log), 27);
    cr_assert_eq(rn_log_flushed_offset(f.log), 27);
    cr_assert_lt(rn_log_segment_count(f.log), n_segs);
    /* Later segments' files are gone from disk. */
    int64_t bases[64];
    unsigned n = th_list_segments(f.dir, bases, 64);
    cr_assert_eq(n, rn_log_segment_count(f.log));
    cr_assert_leq(bases[n - 1], 27);
    th_batches got = {0};
    th_read_all(f.log, 1 << 20, &got);
    th_expect_batches(&got, &f.old, 9, "after the truncation");
    expect_epochs_match(f.log, &got, "after the truncation");
    th_batches_free(&got);
    /* The follower goes on with the new leader's epoch. */
    append_and_verify(f.log, 1000, 9, "append after");
    /* Reopened (clean), the same. */
    cr_assert_eq(rn_log_close(f.log), 0);
    rn_log_open_info info;
    f.log = open_log(&f, &info);
    cr_assert(info.clean && !info.epochs_rebuilt);
    append_and_verify(f.log, 1001, 9, "after a reopen");
    teardown(&f);
}

// At a segment's base offset, at the log end and past it, at the log start: each as documented.
Test(truncate, boundaries)
{
    fixture f;
    setup(&f, "truncb");
    int64_t leo = rn_log_end_offset(f.log), end;
    cr_assert_eq(rn_log_truncate_to(f.log, leo, &end), 0);
    cr_assert_eq(end, leo, "at the log end: nothing cut");
    cr_assert_eq(rn_log_truncate_to(f.log, leo + 100, &end), 0);
    cr_assert_eq(rn_log_end_offset(f.log), leo);
    cr_assert_eq(rn_log_truncate_to(f.log, -1, &end), -EINVAL);
    /* A segment's base offset: that segment stays, empty, as the active one. */
    int64_t base2 = rn_log_segment_base(f.log, 2);
    cr_assert_eq(rn_log_truncate_to(f.log, base2, &end), 0);
    cr_assert_eq(end, base2);
    cr_assert_eq(rn_log_segment_count(f.log), 3);
    cr_assert_eq(rn_log_end_offset(f.log), base2);
    append_and_verify(f.log, 2000, 7, "at a segment boundary");
    /* The log start: everything goes. */
    cr_assert_eq(rn_log_truncate_to(f.log, 0, &end), 0);
    cr_assert_eq(end, 0);
    cr_assert_eq(rn_log_end_offset(f.log), 0);
    cr_assert_eq(rn_leader_epochs_count(rn_log_leader_epochs(f.log)), 0);
    append_and_verify(f.log, 2001, 8, "from zero");
    teardown(&f);
}

// A reader's slice of the cut segment keeps its bytes while new batches take those offsets.
Test(truncate, reader_keeps_its_bytes)
{
    fixture f;
    setup(&f, "truncr");
    /* A slice of the active segment's last batches, and one of an older segment. */
    unsigned last = rn_log_segment_count(f.log) - 1;
    int64_t abase = rn_log_segment_base(f.log, last);
    rn_slice act, older;
    cr_assert_eq(rn_log_read(f.log, abase, 1 << 20, rn_log_end_offset(f.log), &act), 0);
    cr_assert_gt(act.len, 0);
    cr_assert_eq(rn_log_read(f.log, 27, 1 << 20, rn_log_end_offset(f.log), &older), 0);
    uint8_t *act_copy = malloc(act.len), *older_copy = malloc(older.len);
    memcpy(act_copy, act.data, act.len);
    memcpy(older_copy, older.data, older.len);
    /* Cut inside the active segment (copy-on-truncate: a reader holds it),
     * then overwrite with other batches. */
    int64_t cut = f.old.v[N_BATCHES - 2].base, end;
    cr_assert_eq(rn_log_truncate_to(f.log, cut, &end), 0, "%s", rn_log_errmsg(f.log));
    cr_assert_eq(end, cut);
    for (int i = 0; i < 4; i++)
        append_and_verify(f.log, 3000 + i, 7, "over the cut");
    cr_assert(memcmp(act.data, act_copy, act.len) == 0, "the reader's bytes changed under it");
    /* Now cut below the older slice: its segment is deleted; the mapping stays. */
    cr_assert_eq(rn_log_truncate_to(f.log, 20, &end), 0, "%s", rn_log_errmsg(f.log));
    for (int i = 0; i < 6; i++)
        append_and_verify(f.log, 4000 + i, 8, "over the deleted segment");
    cr_assert(memcmp(older.data, older_copy, older.len) == 0, "the older slice changed");
    rn_slice_release(&act);
    rn_slice_release(&older);
    free(act_copy);
    free(older_copy);
    teardown(&f);
}

// truncate_fully(offset): an empty log starting at offset, old files gone, appends continue there.
Test(truncate, fully_and_start_at)
{
    fixture f;
    setup(&f, "truncf");
    cr_assert_eq(rn_log_truncate_fully(f.log, 5000), 0, "%s", rn_log_errmsg(f.log));
    cr_assert_eq(rn_log_start_offset(f.log), 5000);
    cr_assert_eq(rn_log_end_offset(f.log), 5000);
    cr_assert_eq(rn_log_high_watermark(f.log), 5000);
    cr_assert_eq(rn_log_segment_count(f.log), 1);
    int64_t bases[8];
    cr_assert_eq(th_list_segments(f.dir, bases, 8), 1);
    cr_assert_eq(bases[0], 5000);
    rn_slice s;
    cr_assert_eq(rn_log_read(f.log, 10, 1 << 20, 6000, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    append_and_verify(f.log, 5, 11, "after truncate-fully");
    cr_assert_eq(rn_log_close(f.log), 0);
    f.log = open_log(&f, NULL);
    cr_assert_eq(rn_log_start_offset(f.log), 5000);
    append_and_verify(f.log, 6, 11, "reopened");
    teardown(&f);
}

/* ---- Crashes ------------------------------------------------------------------- */

typedef struct crash_at {
    unsigned nth, count;
    bool fired;
    bool only; /* only call nth fails (a fault), not every call from it on (a death) */
} crash_at;

/* The process "dies" at call nth: it and every call after it fail. */
static int die_at(enum rn_sys_call call, void *arg)
{
    crash_at *c = arg;
    (void)call;
    ++c->count;
    if (c->count == c->nth || (!c->only && c->count > c->nth)) {
        c->fired = true;
        return -EIO;
    }
    return 0;
}

enum op { CUT_OLDER, CUT_ACTIVE, CUT_WITH_READER, FULLY };

static int no_fdatasync(int fd)
{
    (void)fd;
    return 0;
}

/* One crash point: set up, truncate with call nth dying, crash, recover, check.
 * Returns whether the crash fired (else the truncation completed). */
static bool crash_once(enum op op, unsigned nth, bool only, unsigned *n_old, unsigned *n_new)
{
    fixture f;
    setup_as(&f, "truncc", true);
    int64_t target = op == CUT_OLDER ? 28 : op == FULLY ? 7777 : f.old.v[N_BATCHES - 3].base + 1;
    int64_t want_end = op == CUT_OLDER ? 27 : op == FULLY ? 7777 : f.old.v[N_BATCHES - 3].base;
    rn_slice reader = {0};
    if (op == CUT_WITH_READER)
        cr_assert_eq(rn_log_read(f.log, want_end, 1 << 20, rn_log_end_offset(f.log), &reader), 0);
    char what[96];
    snprintf(what, sizeof(what), "op %d, %s at call %u", op, only ? "one fault" : "crash", nth);
    crash_at ca = {.nth = nth, .only = only};
    rn_sys_set_injector(die_at, &ca);
    int rc = op == FULLY ? rn_log_truncate_fully(f.log, target)
                         : rn_log_truncate_to(f.log, target, NULL);
    rn_sys_set_injector(NULL, NULL);
    /* A call that fails after the work is done (closing, unmapping the old
     * segment) may leave rc == 0: then the truncation is complete. */
    if (!ca.fired)
        cr_assert_eq(rc, 0, "%s: %s", what, rn_strerror(rc));
    bool completed = rc == 0;
    /* After a single fault the log either works (the fault came before the
     * cut, or was harmless) or refuses appends until a reopen finishes the
     * truncation: never anything else. */
    uint8_t *extra = NULL;
    size_t extra_len = 0;
    if (only) {
        extra = th_batch_new(777, 1, 30, &extra_len);
        int arc = rn_log_append_sync(f.log, extra, extra_len, 12, NULL);
        cr_assert(arc == 0 || arc == -RN_E_LOG_FAILED, "%s: then an append: %s", what,
                  rn_strerror(arc));
        if (arc != 0) {
            free(extra);
            extra = NULL;
        }
    }
    rn_log_abandon(f.log);
    f.log = NULL;
    rn_slice_release(&reader);
    th_crash_apply(f.dir, TH_CRASH_DROP_ALL, nth);
    th_crash_end();
    /* The crash is behind us: the checks need no real syncs either. */
    rn_sys.fdatasync = no_fdatasync;

    rn_log_open_info info;
    f.log = open_log(&f, &info);
    th_batches got = {0};
    th_read_all(f.log, 1 << 20, &got);
    expect_epochs_match(f.log, &got, what);
    if (extra) {
        /* The append that followed the fault (acked: durable) ends the log. */
        cr_assert(got.n > 0 && got.v[got.n - 1].len == extra_len &&
                      memcmp(got.v[got.n - 1].data, extra, extra_len) == 0,
                  "%s: the append after the fault is lost", what);
        free(got.v[--got.n].data);
        free(extra);
    }
    bool is_old = got.n == f.old.n;
    if (is_old) {
        th_expect_batches(&got, &f.old, f.old.n, what);
        cr_assert_eq(rn_log_start_offset(f.log), 0, "%s", what);
        (*n_old)++;
    } else if (op == FULLY) {
        cr_assert_eq(got.n, 0, "%s: %zu batches, neither old nor empty", what, got.n);
        cr_assert_eq(rn_log_start_offset(f.log), want_end, "%s", what);
        (*n_new)++;
    } else {
        size_t keep = 0;
        while (keep < f.old.n && f.old.v[keep].base < want_end)
            keep++;
        th_expect_batches(&got, &f.old, keep, what);
        (*n_new)++;
    }
    if (completed)
        cr_assert(!is_old, "%s: a completed truncation did not survive the crash", what);
    th_batches_free(&got);
    append_and_verify(f.log, 9000 + nth, 12, what);
    teardown(&f);
    rn_sys_reset();
    return ca.fired;
}

/* Crash (every call from N on fails), then a single fault (only call N
 * fails, the run goes on), for N = 1, 2, … until no call N is made. */
static void crash_every_step(enum op op)
{
    for (int only = 0; only < 2; only++) {
        unsigned n_old = 0, n_new = 0, nth;
        for (nth = 1;; nth++) {
            cr_assert_lt(nth, 200, "the truncation never ends");
            if (!crash_once(op, nth, only, &n_old, &n_new))
                break;
        }
        cr_log_info("op %d, %s: %u points: %u recovered old, %u truncated", op,
                    only ? "single faults" : "crashes", nth - 1, n_old, n_new);
        cr_assert_gt(n_old, 0);
        cr_assert_gt(n_new, 1);
    }
}

// A crash (or one fault) at each call of a truncation in an older segment: old or truncated.
Test(truncate, crash_every_step_older_segment)
{
    crash_every_step(CUT_OLDER);
}

// The same inside the active segment.
Test(truncate, crash_every_step_active_segment)
{
    crash_every_step(CUT_ACTIVE);
}

// The same with a reader holding the cut segment (the copy-and-rename path).
Test(truncate, crash_every_step_with_reader)
{
    crash_every_step(CUT_WITH_READER);
}

// A crash at each call of truncate-fully: the old log or the empty one at the new offset.
Test(truncate, crash_every_step_fully)
{
    crash_every_step(FULLY);
}

static void count_cb(void *arg, int err, int64_t base, int64_t last)
{
    (void)base;
    (void)last;
    cr_assert_eq(err, 0, "an append in flight failed: %s", rn_strerror(err));
    (*(int *)arg)++;
}

// Appends still in flight when a truncation starts complete (acked) first; then the cut applies.
Test(truncate, waits_for_appends_in_flight)
{
    fixture f;
    setup(&f, "truncw");
    int acked = 0;
    uint8_t *b[6];
    for (int i = 0; i < 6; i++) {
        size_t len;
        b[i] = th_batch_new(500 + (uint64_t)i, 2, 100, &len);
        cr_assert_eq(rn_log_append(f.log, b[i], len, 6, count_cb, &acked), 0);
    }
    int64_t end;
    cr_assert_eq(rn_log_truncate_to(f.log, 40, &end), 0, "%s", rn_log_errmsg(f.log));
    cr_assert_eq(acked, 6, "every append in flight was acked before the cut");
    cr_assert_leq(end, 40);
    cr_assert_eq(rn_log_end_offset(f.log), end);
    cr_assert_eq(rn_log_high_watermark(f.log), end);
    append_and_verify(f.log, 600, 6, "after waiting");
    for (int i = 0; i < 6; i++)
        free(b[i]);
    teardown(&f);
}
