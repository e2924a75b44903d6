/*
 * test_log_retention.c — rolling and retention of the partition log
 * (storage/log.c, storage/log_retention.c): rolls by time and size, retention
 * by bytes and by time (with and without timestamps, the active segment
 * included), a full disk injected (-ENOSPC moves nothing), and slices held
 * across retention and appends in flight during it. Fixture: log_helpers.h.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "log_helpers.h"

TestSuite(log_retention, .init = setup, .fini = teardown, .timeout = 60);

/* ---- Rolling --------------------------------------------------------------------- */

// A segment older than roll_ms rolls on the next append, and rn_log_maybe_roll rolls it too.
Test(log_retention, roll_by_time)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 1000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.roll_ms = 1000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    append_one(log, model_add(&m, 2, fake_now, 10));
    fake_now += 999;
    append_one(log, model_add(&m, 2, fake_now, 10));
    cr_assert_eq(rn_log_segment_count(log), 1, "rolled before roll_ms");
    fake_now += 1; /* the segment is now roll_ms old */
    append_one(log, model_add(&m, 2, fake_now, 10));
    cr_assert_eq(rn_log_segment_count(log), 2);
    cr_assert(seg_file_exists(4, ".log"), "the new segment starts at offset 4");

    /* maybe_roll: not before roll_ms, then yes. */
    fake_now += 500;
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 2);
    fake_now += 500;
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 3);
    cr_assert(seg_file_exists(6, ".log"));
    /* An empty active segment never rolls, however old. */
    fake_now += 10000;
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 3);
    append_one(log, model_add(&m, 1, fake_now, 10));
    cr_assert_eq(rn_log_segment_count(log), 3, "an empty segment rolled on its first append");
    check_all_reads(log, &m, 0);
    /* roll_ms <= 0 turns time rolls off. */
    rn_log_config c2 = *rn_log_config_of(log);
    c2.roll_ms = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    fake_now += 1000000;
    append_one(log, model_add(&m, 1, fake_now, 10));
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 3);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// A batch bigger than the room left rolls; one bigger than a segment is refused, nothing made.
Test(log_retention, roll_by_size_and_oversized_batch)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    append_one(log, model_add(&m, 1, 1, 9000));
    append_one(log, model_add(&m, 1, 2, 9000)); /* 2 x ~9 KiB > 16 KiB: rolls */
    cr_assert_eq(rn_log_segment_count(log), 2);
    /* A 20 KiB batch can never fit a 16 KiB segment. */
    model big = {0};
    big.next = m.next;
    tbatch *t = model_add(&big, 1, 3, 20000);
    int64_t leo = rn_log_end_offset(log);
    acks_reset(log, leo, true);
    cr_assert_eq(submit(log, t), -RN_E_MESSAGE_TOO_LARGE);
    cr_assert_eq(rn_log_segment_count(log), 2, "a refused batch made a segment");
    cr_assert_eq(count_log_files(), 2);
    cr_assert_eq(rn_log_end_offset(log), leo);
    append_one(log, model_add(&m, 1, 4, 100));
    check_all_reads(log, &m, 0);
    cr_assert_eq(acks.n_acks, 0, "a refused append ran its callback");
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
    model_free(&big);
}

/* ---- Retention ------------------------------------------------------------------- */

/* Closes and unmaps of segment files already unlinked (the last of them frees
 * the file's blocks), by the thread that makes them. */
static pthread_t deleter;
static _Atomic int n_free_here, n_free_elsewhere;

static int seen_close(int fd)
{
    struct stat st;
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0 && fstat(fd, &st) == 0 && st.st_nlink == 0) {
        target[n] = 0;
        if (strstr(target, ".log") || strstr(target, ".idx") || strstr(target, ".tix")) {
            if (pthread_equal(pthread_self(), deleter))
                n_free_here++;
            else
                n_free_elsewhere++;
        }
    }
    return close(fd) < 0 ? -errno : 0;
}

/* A sealed segment has closed its descriptor: the mapping holds the file. */
static int seen_munmap(void *addr, size_t len)
{
    char want[32], line[4096];
    snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, want, strlen(want)) != 0)
            continue;
        if (strstr(line, ".log (deleted)") || strstr(line, ".idx (deleted)") ||
            strstr(line, ".tix (deleted)")) {
            if (pthread_equal(pthread_self(), deleter))
                n_free_here++;
            else
                n_free_elsewhere++;
        }
        break;
    }
    if (f)
        fclose(f);
    return munmap(addr, len) < 0 ? -errno : 0;
}

// The segments retention deletes are freed off the thread that deletes them: the last close
// of an unlinked file gives its blocks back (0.24 s a GiB with `discard`, docs/benchmarks.md,
// fourth round), which on a reactor stalls every partition on it. Their files still go, and a
// slice held across the deletion still reads its bytes.
Test(log_retention, deleted_segments_freed_off_the_deleting_thread)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 400, 1000, true, 64);
    unsigned n0 = rn_log_segment_count(log);
    cr_assert_gt(n0, 8);
    rn_slice held;
    cr_assert_eq(rn_log_read(log, m.b[0].base, SIZE_MAX, INT64_MAX, &held), 0);
    deleter = pthread_self();
    n_free_here = n_free_elsewhere = 0;
    rn_sys.close = seen_close;
    rn_sys.munmap = seen_munmap;
    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 3 * 16 * 1024;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    int n = rn_log_enforce_retention(log, rn_log_clock_ms());
    cr_assert_gt(n, 1, "retention deleted %d segments: %s", n, rn_log_errmsg(log));
    for (int i = 0; i < m.n && m.b[i].base < rn_log_start_offset(log); i++)
        cr_assert_not(seg_file_exists(m.b[i].base, ".log"), "batch %d's segment survives", i);
    /* The held slice keeps its segment: its bytes are still the first batch. */
    cr_assert_geq(held.len, m.b[0].len);
    cr_assert_eq(memcmp(held.data, m.b[0].buf, m.b[0].len), 0);
    rn_slice_release(&held);
    /* Each deleted segment's .log is let go once, on the worker; wait for it. */
    for (int i = 0; i < 2000 && n_free_elsewhere < n; i++)
        usleep(1000);
    cr_assert_eq(n_free_here, 0, "%d closes/unmaps of unlinked segment files on the deleting thread",
                 n_free_here);
    cr_assert_geq(n_free_elsewhere, n, "%d closes/unmaps of unlinked segment files elsewhere for %d "
                  "segments", n_free_elsewhere, n);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention by bytes deletes the oldest segments' files and moves the start offset.
Test(log_retention, retention_by_bytes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 400, 1000, true, 64);
    unsigned n0 = rn_log_segment_count(log);
    cr_assert_gt(n0, 8);
    /* Nothing to do while unlimited. */
    cr_assert_eq(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);

    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 3 * 16 * 1024;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    int n = rn_log_enforce_retention(log, rn_log_clock_ms());
    cr_assert_gt(n, 0, "retention deleted nothing: %s", rn_log_errmsg(log));
    cr_assert_eq(rn_log_segment_count(log), n0 - (unsigned)n);
    uint64_t size = rn_log_size_bytes(log);
    cr_assert_geq(size, (uint64_t)c2.retention_bytes, "deleted too much");
    int64_t start = rn_log_start_offset(log);
    int first = model_find(&m, start);
    cr_assert_geq(first, 0);
    cr_assert_eq(m.b[first].base, start, "start offset is not a batch start");
    /* What is left is retention_bytes plus less than one segment. */
    rn_slice s;
    cr_assert_eq(rn_log_read(log, start, SIZE_MAX, INT64_MAX, &s), 0);
    uint64_t first_seg = s.len; /* a read stops at the end of its segment */
    rn_slice_release(&s);
    cr_assert_lt(size - first_seg, (uint64_t)c2.retention_bytes, "kept a segment too many");
    /* Deleted segments' files are gone, the kept ones are there. */
    for (int i = 0; i < first; i++)
        cr_assert_not(seg_file_exists(m.b[i].base, ".log") ||
                          seg_file_exists(m.b[i].base, ".idx") ||
                          seg_file_exists(m.b[i].base, ".tix"),
                      "files of batch %d's segment survive", i);
    cr_assert(seg_file_exists(start, ".log"));
    cr_assert_eq(count_log_files(), (int)rn_log_segment_count(log));
    cr_assert_eq(rn_log_read(log, start - 1, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, 0, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    check_all_reads(log, &m, first);
    cr_assert_eq(rn_log_offset_for_time(log, 0), start);
    /* Enforcing again changes nothing. */
    cr_assert_eq(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);

    /* The start offset survives a reopen. */
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    cr_assert_eq(rn_log_start_offset(log), start);
    check_all_reads(log, &m, first);
    /* retention_bytes = 0 keeps nothing, as in Kafka: the active segment is
     * rolled and goes too, leaving one empty segment at the log end. */
    c2.retention_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);
    cr_assert_eq(rn_log_segment_count(log), 1);
    cr_assert_eq(count_log_files(), 1);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_start_offset(log), m.next);
    cr_assert_eq(rn_log_size_bytes(log), 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention by time deletes segments whose newest record is older than retention_ms.
Test(log_retention, retention_by_time)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 5000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.retention_ms = 10000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    /* Batch i is stamped 1000000 + 100 i. */
    for (int i = 0; i < 300; i++)
        model_add(&m, 2, 1000000 + 100 * (int64_t)i, 200);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 32);
    unsigned n0 = rn_log_segment_count(log);
    cr_assert_gt(n0, 4);
    /* Find the first segment's newest timestamp: the last batch before the second segment. */
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &s), 0);
    int64_t seg1_start = s.next_offset;
    rn_slice_release(&s);
    int last0 = model_find(&m, seg1_start - 1);
    int64_t max0 = m.b[last0].max_ts;

    /* Exactly retention_ms old is kept; one ms more is deleted. */
    fake_now = max0 + c.retention_ms;
    cr_assert_eq(rn_log_enforce_retention(log, fake_now), 0);
    cr_assert_eq(rn_log_start_offset(log), 0);
    fake_now++;
    cr_assert_eq(rn_log_enforce_retention(log, fake_now), 1);
    cr_assert_eq(rn_log_start_offset(log), seg1_start);
    cr_assert_not(seg_file_exists(0, ".log"));
    cr_assert_eq(rn_log_read(log, 0, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);

    /* Far in the future everything goes, the active segment too (as in
     * Kafka: it is rolled first), leaving one empty segment at the end. */
    fake_now = 1LL << 40;
    int n = rn_log_enforce_retention(log, fake_now);
    cr_assert_eq(n, (int)n0 - 1);
    cr_assert_eq(rn_log_segment_count(log), 1);
    cr_assert_eq(rn_log_start_offset(log), m.next);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_read(log, m.next - 1, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_close(log), 0);

    /* After a reopen the same ages are known (from the time indexes). */
    log = open_log(&c, NULL);
    int64_t start = rn_log_start_offset(log);
    cr_assert_eq(start, m.next);
    model_fill(&m, 200, m.b[m.n - 1].max_ts + 1);
    acks_reset(log, m.b[m.n - 200].base, true);
    append_model(log, &m, m.n - 200, 32);
    cr_assert_gt(rn_log_segment_count(log), 2);
    /* The newest timestamp of the first segment (which the appends filled up). */
    cr_assert_eq(rn_log_read(log, start, SIZE_MAX, INT64_MAX, &s), 0);
    int64_t seg_max = m.b[model_find(&m, s.next_offset - 1)].max_ts; /* ts grow with offsets */
    rn_slice_release(&s);
    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_ms = -1; /* keep forever */
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_enforce_retention(log, INT64_MAX / 2), 0);
    cr_assert_eq(rn_log_start_offset(log), start);
    c2.retention_ms = 10000;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_enforce_retention(log, seg_max + 10000), 0);
    cr_assert_eq(rn_log_enforce_retention(log, seg_max + 10001), 1);
    cr_assert_gt(rn_log_start_offset(log), start);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Without record timestamps, a segment's age counts from its last append, not its creation.
Test(log_retention, retention_by_time_without_timestamps)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 1000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.retention_ms = 3000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    int64_t no_ts[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    /* The first segment is written over 5 s of (fake) time, then rolls. */
    int64_t last_write = 0;
    while (rn_log_segment_count(log) == 1) {
        tbatch *t = model_add_ts(&m, 2, no_ts, 0, 500, 1);
        cr_assert_eq(t->max_ts, -1);
        if (rn_log_size_bytes(log) + t->len <= c.segment_bytes)
            last_write = fake_now;
        append_one(log, t);
        fake_now += 500;
    }
    cr_assert_geq(last_write - 1000000, 5000);
    cr_assert_eq(rn_log_segment_count(log), 2);
    /* Created long ago, but written to retention_ms ago: kept. */
    cr_assert_eq(rn_log_enforce_retention(log, last_write + c.retention_ms), 0,
                 "deleted data younger than retention_ms");
    cr_assert_eq(rn_log_start_offset(log), 0);
    cr_assert_eq(rn_log_enforce_retention(log, last_write + c.retention_ms + 1), 1);
    cr_assert_gt(rn_log_start_offset(log), 0);
    check_all_reads(log, &m, model_find(&m, rn_log_start_offset(log)));
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention by time takes the active segment too (rolling it first): old data in a
// large segment that never fills is deleted, and appends continue at the log end.
Test(log_retention, retention_takes_an_old_active_segment)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 2000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 1 << 30; /* sparse: a 1 GiB active segment, as by default */
    c.retention_ms = 10000;
    model m = {0};
    rn_log *log = open_filled(&c, &m, 50, 1000000, true, 16);
    cr_assert_eq(rn_log_segment_count(log), 1);
    int64_t newest = m.b[m.n - 1].max_ts;
    /* Young enough: kept. */
    cr_assert_eq(rn_log_enforce_retention(log, newest + c.retention_ms), 0);
    cr_assert_eq(rn_log_start_offset(log), 0);
    /* Older than retention.ms: the whole (active) segment goes. */
    cr_assert_eq(rn_log_enforce_retention(log, newest + c.retention_ms + 1), 1, "%s",
                 rn_log_errmsg(log));
    cr_assert_eq(rn_log_start_offset(log), m.next);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_size_bytes(log), 0);
    cr_assert_eq(count_log_files(), 1);
    cr_assert_not(seg_file_exists(0, ".log"));
    cr_assert(seg_file_exists(m.next, ".log"));
    /* An empty active segment is not rolled again. */
    cr_assert_eq(rn_log_enforce_retention(log, INT64_MAX / 2), 0);
    cr_assert_eq(count_log_files(), 1);
    /* Appends go on at the log end, and survive a reopen. */
    int from = m.n;
    model_fill(&m, 10, fake_now);
    acks_reset(log, m.b[from].base, true);
    append_model(log, &m, from, 4);
    check_all_reads(log, &m, from);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    cr_assert_eq(rn_log_start_offset(log), m.b[from].base);
    check_all_reads(log, &m, from);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// retention.bytes below segment.bytes rolls the active segment at half the limit, so
// size retention keeps the log between the limit and 1.5 times it.
Test(log_retention, retention_bytes_rolls_the_active_segment)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 1 << 30;
    c.retention_bytes = 4 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 1000; i++) /* ~16 MiB */
        model_add(&m, 4, 1000 + i, 4000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 16);
    /* Segments of at most 2 MiB, not one of 16 MiB. */
    cr_assert_geq(rn_log_segment_count(log), 8, "%u segments", rn_log_segment_count(log));
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &s), 0);
    cr_assert_leq(s.len, (size_t)c.retention_bytes / 2);
    rn_slice_release(&s);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);
    uint64_t size = rn_log_size_bytes(log);
    cr_assert_geq(size, (uint64_t)c.retention_bytes, "deleted too much: %llu",
                  (unsigned long long)size);
    cr_assert_leq(size, (uint64_t)c.retention_bytes * 3 / 2, "kept too much: %llu",
                  (unsigned long long)size);
    check_all_reads(log, &m, model_find(&m, rn_log_start_offset(log)));
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- A full disk (injected) -------------------------------------------------------- */

static int enospc_left; /* pwrites still to fail with -ENOSPC */

static int inject_enospc(enum rn_sys_call call, void *arg)
{
    (void)arg;
    if (call != RN_SYS_PWRITE || enospc_left == 0)
        return 0;
    enospc_left--;
    return -ENOSPC;
}

typedef struct outcome {
    int n_cb, err;
    int64_t base;
} outcome;

static void outcome_cb(void *arg, int err, int64_t base, int64_t last)
{
    outcome *o = arg;
    (void)last;
    o->n_cb++;
    o->err = err;
    o->base = base;
}

// ENOSPC on a write: the append and those in flight behind it fail cleanly, the log
// end and the next offsets do not move, the same batches then succeed at the same
// offsets, and a crash recovery afterwards finds a log that verifies byte for byte.
Test(log_retention, enospc_moves_nothing)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 1 << 20;
    model m = {0};
    rn_log *log = open_filled(&c, &m, 20, 1000, true, 8);
    int64_t leo = rn_log_end_offset(log);
    uint64_t size = rn_log_size_bytes(log);

    /* Three appends in flight; the first write hits a full disk. */
    model_fill(&m, 3, 5000);
    outcome o[3] = {0};
    enospc_left = 1;
    rn_sys_set_injector(inject_enospc, NULL);
    for (int i = 0; i < 3; i++) {
        tbatch *t = &m.b[m.n - 3 + i];
        int rc = rn_log_append(log, t->buf, t->len, t->epoch, outcome_cb, &o[i]);
        cr_assert_eq(rc, 0);
    }
    while (o[0].n_cb + o[1].n_cb + o[2].n_cb < 3)
        cr_assert_geq(rn_io_run(io, 1), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(o[i].n_cb, 1);
        cr_assert_eq(o[i].err, -ENOSPC, "append %d: %s", i, rn_strerror(o[i].err));
    }
    cr_assert(strstr(rn_log_errmsg(log), "No space left on device") ||
                  strstr(rn_log_errmsg(log), rn_strerror(-ENOSPC)),
              "errmsg: %s", rn_log_errmsg(log));
    cr_assert_eq(rn_log_end_offset(log), leo);
    cr_assert_eq(rn_log_high_watermark(log), leo);
    cr_assert_eq(rn_log_size_bytes(log), size);

    /* Still full: a new append fails the same way and moves nothing. */
    enospc_left = 1;
    outcome again = {0};
    tbatch *t0 = &m.b[m.n - 3];
    cr_assert_eq(rn_log_append(log, t0->buf, t0->len, t0->epoch, outcome_cb, &again), 0);
    while (!again.n_cb)
        cr_assert_geq(rn_io_run(io, 1), 0);
    cr_assert_eq(again.err, -ENOSPC);
    cr_assert_eq(rn_log_end_offset(log), leo);

    /* Room again: the same three batches get the offsets they had. */
    rn_sys_reset();
    acks_reset(log, leo, true);
    append_model(log, &m, m.n - 3, 3);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    check_all_reads(log, &m, 0);

    /* A crash now, and a verifying recovery: every batch, nothing dropped. */
    rn_log_abandon(log);
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert_not(info.clean);
    cr_assert_eq(info.bytes_dropped, 0);
    cr_assert_eq(info.truncated_at, -1);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// A slice taken before retention deletes its segment stays mapped and correct until released.
Test(log_retention, slice_survives_retention)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 200, 1000, true, 32);
    cr_assert_gt(rn_log_segment_count(log), 3);

    rn_slice held[3];
    int idx[3] = {0, 1, 0};
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &held[0]), 0);
    int64_t seg1 = held[0].next_offset;
    idx[1] = model_find(&m, seg1);
    cr_assert_eq(rn_log_read(log, seg1, 1, INT64_MAX, &held[1]), 0);
    cr_assert_eq(rn_log_read(log, 0, 1, INT64_MAX, &held[2]), 0); /* two refs on one segment */
    uint8_t *copy = malloc(held[0].len);
    memcpy(copy, held[0].data, held[0].len);

    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 1);
    cr_assert_not(seg_file_exists(0, ".log"));
    cr_assert_not(seg_file_exists(seg1, ".log"));

    /* Overwrite what the page cache might still hold: new data must not show through. */
    model_fill(&m, 100, 2000);
    acks_reset(log, m.b[m.n - 100].base, true);
    append_model(log, &m, m.n - 100, 16);

    cr_assert(memcmp(copy, held[0].data, held[0].len) == 0, "held slice changed");
    cr_assert_eq(check_slice(&m, &held[0], 0), model_find(&m, seg1) - 0);
    cr_assert_eq(check_slice(&m, &held[1], idx[1]), 1);
    cr_assert_eq(check_slice(&m, &held[2], idx[2]), 1);
    rn_slice_release(&held[2]);
    /* One reference down, the other still reads. */
    cr_assert(memcmp(copy, held[0].data, held[0].len) == 0);
    rn_slice_release(&held[0]);
    cr_assert_null(held[0].seg);
    rn_slice_release(&held[1]);
    free(copy);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention deleting the segment a sync would use, while an append to the next is in flight.
Test(log_retention, retention_during_inflight_append)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    /* Fill the first segment almost exactly. */
    while (rn_log_segment_count(log) == 1) {
        tbatch *t = model_add(&m, 1, 1000 + m.n, 3000);
        if (rn_log_size_bytes(log) + t->len > c.segment_bytes) {
            /* This one rolls: submit it without waiting. */
            acks_reset(log, t->base, false);
            cr_assert_eq(submit(log, t), 0);
            break;
        }
        append_one(log, t);
    }
    cr_assert_eq(rn_log_segment_count(log), 2);
    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_enforce_retention(log, rn_log_clock_ms()), 1);
    /* Now ask for durability of what is visible (all of it in the deleted segment). */
    c2.flush = RN_FLUSH_ALWAYS;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    run_until_acked(1);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    cr_assert_eq(rn_log_flush_sync(log), 0);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    check_all_reads(log, &m, m.n - 1);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Deleting below an offset (a snapshot covers it: the metadata log) ----------- */

// rn_log_roll rolls a non-empty active segment only; rn_log_delete_below deletes
// the segments wholly below the offset, never one holding it nor the active one,
// and the start offset it leaves survives a reopen.
Test(log_retention, roll_and_delete_below)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    append_one(log, model_add(&m, 3, 1, 10)); /* 0..2 */
    cr_assert_eq(rn_log_roll(log), 0);
    cr_assert_eq(rn_log_segment_count(log), 2);
    cr_assert_eq(rn_log_roll(log), 0, "an empty active segment");
    cr_assert_eq(rn_log_segment_count(log), 2, "an empty active segment rolled");
    append_one(log, model_add(&m, 3, 2, 10)); /* 3..5 */
    cr_assert_eq(rn_log_roll(log), 0);
    append_one(log, model_add(&m, 3, 3, 10)); /* 6..8, active */
    cr_assert_eq(rn_log_segment_count(log), 3);
    /* Below 2: the first segment still holds offset 2. */
    cr_assert_eq(rn_log_delete_below(log, 2), 0);
    cr_assert_eq(rn_log_start_offset(log), 0);
    /* Below 4: the first segment (0..2) goes, the one holding 4 stays. */
    cr_assert_eq(rn_log_delete_below(log, 4), 1);
    cr_assert_eq(rn_log_start_offset(log), 3);
    cr_assert(!seg_file_exists(0, ".log"));
    /* Far past the end: never the active segment. */
    cr_assert_eq(rn_log_delete_below(log, 1000), 1);
    cr_assert_eq(rn_log_start_offset(log), 6);
    cr_assert_eq(rn_log_segment_count(log), 1);
    cr_assert_eq(rn_log_end_offset(log), 9);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    cr_assert_eq(rn_log_start_offset(log), 6);
    cr_assert_eq(rn_log_end_offset(log), 9);
    append_one(log, model_add(&m, 1, 4, 10));
    cr_assert_eq(rn_log_end_offset(log), 10);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}
