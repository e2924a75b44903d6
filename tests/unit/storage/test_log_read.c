/*
 * test_log_read.c — reading the partition log back (storage/log.h): every
 * offset at batch boundaries and inside batches across hundreds of rolls,
 * sparse index lookups, a clean close and reopen, read bounds (max_bytes,
 * max_offset, out of range), the stamped fields, and offset-for-time.
 * Fixture and model: log_helpers.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "log_helpers.h"

TestSuite(log_read, .init = setup, .fini = teardown, .timeout = 60);

// Hundreds of rolls: every offset (batch starts and inside batches) reads back with its bytes.
Test(log_read, append_read_across_rolls)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 4000, 1700000000000, false, 64);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_start_offset(log), 0);
    cr_assert_geq(rn_log_segment_count(log), 150, "only %u segments", rn_log_segment_count(log));
    cr_assert_eq(count_log_files(), (int)rn_log_segment_count(log));
    uint64_t total = 0;
    for (int i = 0; i < m.n; i++)
        total += m.b[i].len;
    cr_assert_eq(rn_log_size_bytes(log), total);
    check_all_reads(log, &m, 0);
    /* Inactive segments keep their mappings but not their descriptors. */
    int n_fds = count_open_fds();
    cr_assert_lt(n_fds, 40, "%d descriptors open for %u segments", n_fds,
                 rn_log_segment_count(log));
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// With a sparse index (4 KiB interval, ~80-byte batches) lookups scan many headers correctly.
Test(log_read, sparse_index_lookups_scan)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.index_interval_bytes = 4096;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 3000; i++)
        model_add(&m, 1 + i % 2, 1000 + 10 * i, 8);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 64);
    cr_assert_gt(rn_log_segment_count(log), 10);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_offset_for_time(log, 1000 + 12340), m.b[1234].base);
    cr_assert_eq(rn_log_offset_for_time(log, 1000 + 12339), m.b[1234].base);
    cr_assert_eq(rn_log_offset_for_time(log, 1000 + 12342), m.b[1235].base);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// A clean close and reopen gives the same offsets and bytes, says clean, scans nothing.
Test(log_read, reopen_after_clean_close)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 600, 1700000000000, true, 128);
    unsigned n_segs = rn_log_segment_count(log);
    uint64_t size = rn_log_size_bytes(log);
    cr_assert_gt(n_segs, 10);
    cr_assert_eq(rn_log_close(log), 0);

    rn_log_open_info info;
    log = open_log(&c, &info);
    char line[256];
    rn_log_open_info_str(&info, line, sizeof(line));
    cr_assert(info.clean, "%s", line);
    cr_assert_eq(info.n_segments, n_segs, "%s", line);
    cr_assert_eq(info.n_scanned, 0, "%s", line);
    cr_assert_eq(info.bytes_dropped, 0, "%s", line);
    cr_assert_eq(info.truncated_at, -1, "%s", line);
    cr_assert_eq(info.n_index_rebuilt, 0, "%s", line);
    cr_assert_eq(rn_log_segment_count(log), n_segs);
    cr_assert_eq(rn_log_size_bytes(log), size);
    cr_assert_eq(rn_log_start_offset(log), 0);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    check_all_reads(log, &m, 0);
    /* Time lookups work on the reopened segments too. */
    cr_assert_eq(rn_log_offset_for_time(log, m.b[300].max_ts), m.b[300].base);

    /* Appends go on from where the log ended. */
    int first_new = m.n;
    model_fill(&m, 50, 1800000000000);
    acks_reset(log, m.b[first_new].base, true);
    append_model(log, &m, first_new, 8);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);

    /* The marker is gone while the log is open: a crash now would be detected. */
    log = open_log(&c, &info);
    cr_assert(info.clean);
    char marker[160];
    snprintf(marker, sizeof(marker), "%s/clean-shutdown", dir);
    cr_assert_neq(access(marker, F_OK), 0, "clean marker still present while open");
    rn_log_abandon(log);
    log = open_log(&c, &info);
    cr_assert_not(info.clean, "abandoned log reopened as clean");
    cr_assert_eq(rn_log_end_offset(log), m.next);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Rolled and closed segments are cut to their real size, with or without preallocation.
Test(log_read, sealed_segments_truncated_to_size)
{
    for (int prealloc = 0; prealloc < 2; prealloc++) {
        rn_log_config c;
        small_config(&c, RN_FLUSH_ALWAYS);
        c.preallocate_bytes = prealloc ? 8192 : 0;
        rn_log *log = open_log(&c, NULL);
        model m = {0};
        model_fill(&m, 150, 1000);
        acks_reset(log, 0, true);
        append_model(log, &m, 0, 16);
        cr_assert_gt(rn_log_segment_count(log), 3);
        check_all_reads(log, &m, 0);
        /* Each read of SIZE_MAX bytes is one whole segment: note base and size. */
        int64_t bases[64], off = 0;
        size_t lens[64];
        unsigned n_segs = 0;
        while (off < m.next) {
            rn_slice s;
            cr_assert_eq(rn_log_read(log, off, SIZE_MAX, INT64_MAX, &s), 0);
            cr_assert_lt(n_segs, 64);
            bases[n_segs] = off;
            lens[n_segs++] = s.len;
            off = s.next_offset;
            rn_slice_release(&s);
        }
        cr_assert_eq(n_segs, rn_log_segment_count(log));
        cr_assert_eq(rn_log_close(log), 0);
        for (unsigned i = 0; i < n_segs; i++) {
            char p[160];
            snprintf(p, sizeof(p), "%s/%020lld.log", dir, (long long)bases[i]);
            cr_assert_eq(file_size(p), (off_t)lens[i], "prealloc %d: segment %lld", prealloc,
                         (long long)bases[i]);
        }
        log = open_log(&c, NULL);
        check_all_reads(log, &m, 0);
        rn_log_abandon(log);
        model_free(&m);
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

/* fallocate calls made by the append path itself (rn_sys.fallocate), on .log files. */
static int n_log_fallocates;

static int count_fallocate(int fd, int mode, off_t pos, off_t len)
{
    char link[64], target[256];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 4 && memcmp(target + n - 4, ".log", 4) == 0)
        n_log_fallocates++;
    return fallocate(fd, mode, pos, len) < 0 ? -errno : 0;
}

// Preallocation reserves the blocks ahead of the write position through the ring (an io-wq
// worker), not with a fallocate on the appending thread (it was: the reactor waited for the
// file system's allocator), and the blocks are there once it completes.
Test(log_read, preallocation_runs_off_the_appending_thread)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 1 << 20;
    c.preallocate_bytes = 256 << 10;
    n_log_fallocates = 0;
    rn_sys.fallocate = count_fallocate;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 40, 1000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    for (int i = 0; i < 1000 && rn_io_inflight(io) > 0; i++)
        cr_assert_geq(rn_io_run(io, 1), 0);
    cr_assert_eq(n_log_fallocates, 0, "the append path called fallocate %d times",
                 n_log_fallocates);
    char p[160];
    snprintf(p, sizeof(p), "%s/%020d.log", dir, 0);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    size_t written = 0;
    for (int i = 0; i < m.n; i++)
        written += m.b[i].len;
    /* ext4, xfs, btrfs and tmpfs all support fallocate: blocks past the data's own (the log
     * preallocates as far ahead as the segment holds, so about as much again). */
    cr_assert_gt((uint64_t)st.st_blocks * 512, (written + 4095) / 4096 * 4096 + 4096,
                 "%lld bytes allocated for %zu written", (long long)st.st_blocks * 512, written);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    cr_assert_eq(file_size(p), (off_t)written, "the seal cut the file to its data");
    log = open_log(&c, NULL);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* fdatasync and shrinking ftruncate calls through rn_sys on a segment's files, by the
 * thread that made them: the appending (test) thread or another. */
static pthread_t appender;
static _Atomic int n_sync_here, n_sync_elsewhere;

static bool segment_file(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        return true; /* the fsync of the directory that names a new segment */
    char link[64], target[256];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    return n > 4 && (memcmp(target + n - 4, ".log", 4) == 0 ||
                     memcmp(target + n - 4, ".idx", 4) == 0 ||
                     memcmp(target + n - 4, ".tix", 4) == 0);
}

static void count_thread(int fd)
{
    if (!segment_file(fd))
        return;
    if (pthread_equal(pthread_self(), appender))
        n_sync_here++;
    else
        n_sync_elsewhere++;
}

static int slow_fdatasync(int fd)
{
    count_thread(fd);
    usleep(2000); /* a disk busy with writeback */
    return fdatasync(fd) < 0 ? -errno : 0;
}

/* A cut (the seal's); a new segment's files grow sparse at the roll, on the
 * appending thread, which waits for no disk. */
static int seen_ftruncate(int fd, off_t len)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && len < st.st_size)
        count_thread(fd);
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

// A roll's syncs run on the offload worker, not on the appending thread: the rolled segment's
// seal (cut the .log and its indexes to size, fdatasync each, close) and the fsync of the
// directory naming the new segment. On a busy disk each waited behind writeback, and the
// reactor with it (109 ms and 72 ms seen, docs/benchmarks.md). They still happen: after they
// settle every rolled segment is cut to its data and the log reopens clean.
Test(log_read, seal_runs_off_the_appending_thread)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 64 << 10;
    appender = pthread_self();
    n_sync_here = n_sync_elsewhere = 0;
    rn_sys.fdatasync = slow_fdatasync;
    rn_sys.ftruncate = seen_ftruncate;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 10, 1000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    /* The first seal writes the leader-epoch checkpoint (epoch 0 is new), on
     * this thread: once per epoch change, not per roll. Past it, count. */
    cr_assert_eq(rn_log_roll(log), 0);
    settle_seals(log);
    int here_at_open = n_sync_here;
    model_fill(&m, 590, 2000);
    append_model(log, &m, 10, 8); /* settles the seals before it returns */
    unsigned n_segs = rn_log_segment_count(log);
    cr_assert_gt(n_segs, 4, "only %u segments", n_segs);
    cr_assert_eq(n_sync_here - here_at_open, 0,
                 "%d fdatasync/ftruncate calls on segment files by the appending thread",
                 n_sync_here - here_at_open);
    /* Two indexes and the .log of each rolled segment cut and synced, and the
     * directory synced for each new one: elsewhere. */
    cr_assert_geq(n_sync_elsewhere, (int)(n_segs - 1) * 7, "%d calls on the worker for %u rolls",
                  n_sync_elsewhere, n_segs - 1);
    for (unsigned i = 0; i + 1 < n_segs; i++) {
        char p[160];
        int64_t base = rn_log_segment_base(log, i), next = rn_log_segment_base(log, i + 1);
        snprintf(p, sizeof(p), "%s/%020lld.log", dir, (long long)base);
        size_t want = 0;
        for (int k = 0; k < m.n; k++)
            if (m.b[k].base >= base && m.b[k].base < next)
                want += m.b[k].len;
        cr_assert_eq(file_size(p), (off_t)want, "rolled segment %lld not cut to its data",
                     (long long)base);
    }
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert(info.clean);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* cachestat(2) (Linux 6.5): pages of [off, off+len) of fd in the page cache,
 * dirty, under writeback. -1 where the kernel lacks it. */
struct th_cachestat_range {
    uint64_t off, len;
};
struct th_cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

static int th_cachestat(int fd, uint64_t off, uint64_t len, struct th_cachestat *cs)
{
#ifdef __NR_cachestat
    struct th_cachestat_range r = {off, len};
    return (int)syscall(__NR_cachestat, fd, &r, cs, 0);
#else
    struct th_cachestat_range r = {off, len};
    return (int)syscall(451, fd, &r, cs, 0);
#endif
}

// Under flush=interval the log starts writeback of the active segment every 32 MiB of data
// (sync_file_range through the ring) instead of leaving it all to the interval's fdatasync,
// which wrote ~0.5 GB at once and held appends behind it (p99 100-300 ms at half of peak,
// docs/benchmarks.md). Seen with cachestat: after 72 MiB with no flush due, the first 32 MiB
// are no longer dirty; without early writeback every page still is (the kernel's own
// writeback waits 30 s). The data still reads back and the log reopens clean.
Test(log_read, writeback_starts_ahead_of_the_interval_flush)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_INTERVAL);
    c.segment_bytes = 256u << 20;
    c.flush_interval_ms = 600000; /* no interval flush during the test */
    rn_log *log = open_log(&c, NULL);
    char p[160];
    snprintf(p, sizeof(p), "%s/%020d.log", dir, 0);
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct th_cachestat cs;
    if (th_cachestat(fd, 0, 1, &cs) < 0) {
        close(fd);
        rn_log_abandon(log);
        cr_skip_test("cachestat(2) is not in this kernel (%s)", strerror(errno));
    }
    model m = {0};
    for (int i = 0; i < 144; i++)
        model_add(&m, 1, 1000 + i, 512 << 10); /* 144 batches of ~512 KiB: 72 MiB */
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    /* The writebacks started are never waited for: give the last one time. */
    for (int i = 0; i < 50; i++) {
        cr_assert_geq(rn_io_run(io, 0), 0);
        usleep(10000);
    }
    cr_assert_eq(th_cachestat(fd, 0, 32u << 20, &cs), 0);
    cr_assert_eq(cs.nr_dirty, 0, "%llu of the first 32 MiB's pages still dirty (%llu in writeback)",
                 (unsigned long long)cs.nr_dirty, (unsigned long long)cs.nr_writeback);
    check_all_reads(log, &m, 0);
    close(fd);
    cr_assert_eq(rn_log_close(log), 0);
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert(info.clean);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// An empty log closes and reopens clean, at offset 0, and takes appends.
Test(log_read, empty_log_reopens)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    cr_assert_eq(rn_log_end_offset(log), 0);
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, 1000, INT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_null(s.seg);
    cr_assert_eq(rn_log_offset_for_time(log, 0), 0);
    cr_assert_eq(rn_log_close(log), 0);
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert(info.clean);
    cr_assert_eq(rn_log_end_offset(log), 0);
    model m = {0};
    append_one(log, model_add(&m, 3, 1000, 10));
    cr_assert_eq(rn_log_end_offset(log), 3);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Read bounds ---------------------------------------------------------------- */

// max_bytes stops before a batch that does not fit, yet always returns at least one batch.
Test(log_read, read_bounded_by_max_bytes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 1 << 20; /* one segment: bounds are not cut by a roll */
    model m = {0};
    rn_log *log = open_filled(&c, &m, 40, 1000, false, 8);
    cr_assert_eq(rn_log_segment_count(log), 1);
    for (int i = 0; i + 2 < m.n; i++) {
        size_t two = m.b[i].len + m.b[i + 1].len;
        rn_slice s;
        cr_assert_eq(rn_log_read(log, m.b[i].base, 0, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 1, "max_bytes 0 must still give one batch");
        rn_slice_release(&s);
        cr_assert_eq(rn_log_read(log, m.b[i].base, m.b[i].len - 1, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 1, "a batch larger than max_bytes comes whole");
        rn_slice_release(&s);
        cr_assert_eq(rn_log_read(log, m.b[i].base, two - 1, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 1);
        rn_slice_release(&s);
        cr_assert_eq(rn_log_read(log, m.b[i].base, two, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 2);
        rn_slice_release(&s);
        /* From inside a batch, the bound counts from that batch's start. */
        cr_assert_eq(rn_log_read(log, m.b[i].base + m.b[i].n - 1, two, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 2);
        rn_slice_release(&s);
    }
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &s), 0);
    cr_assert_eq(check_slice(&m, &s, 0), m.n);
    rn_slice_release(&s);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// max_offset stops at a batch boundary; at max_offset the slice is empty, past it out of range.
Test(log_read, read_bounded_by_max_offset)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 1 << 20;
    model m = {0};
    rn_log *log = open_filled(&c, &m, 30, 1000, false, 8);
    for (int i = 0; i < m.n; i++) {
        for (int j = i + 1; j <= m.n; j++) {
            int64_t max = j < m.n ? m.b[j].base : m.next;
            rn_slice s;
            cr_assert_eq(rn_log_read(log, m.b[i].base, SIZE_MAX, max, &s), 0);
            cr_assert_eq(check_slice(&m, &s, i), j - i, "read %d up to batch %d", i, j);
            rn_slice_release(&s);
        }
        rn_slice s;
        cr_assert_eq(rn_log_read(log, m.b[i].base, SIZE_MAX, m.b[i].base, &s), 0);
        cr_assert_eq(s.len, 0);
        cr_assert_null(s.seg);
        cr_assert_eq(s.next_offset, m.b[i].base);
        if (m.b[i].base > 0)
            cr_assert_eq(rn_log_read(log, m.b[i].base, SIZE_MAX, m.b[i].base - 1, &s),
                         -RN_E_OFFSET_OUT_OF_RANGE);
    }
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// The end of the log reads as an empty slice; below the start and beyond the end are out of range.
Test(log_read, read_out_of_range)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 100, 1000, true, 16);
    int64_t leo = rn_log_end_offset(log);
    cr_assert_eq(leo, m.next);
    rn_slice s;
    cr_assert_eq(rn_log_read(log, leo, 1 << 20, INT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_null(s.seg);
    cr_assert_eq(s.base_offset, leo);
    cr_assert_eq(s.next_offset, leo);
    rn_slice_release(&s); /* releasing an empty slice is harmless */
    cr_assert_eq(rn_log_read(log, leo + 1, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, INT64_MAX, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, -1, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, INT64_MIN, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    /* The high watermark bounds a consumer the same way. */
    int64_t hw = rn_log_high_watermark(log);
    cr_assert_eq(hw, leo);
    cr_assert_eq(rn_log_read(log, hw, 1 << 20, hw, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// The stamped base offsets and the leader epoch of each append are in the bytes read back.
Test(log_read, stamped_offsets_and_epoch_in_read_bytes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 60; i++) {
        tbatch *t = model_add_ts(&m, 1 + i % 4, NULL, 5000 + i, 100, i < 30 ? 3 : 4);
        /* The producer's bytes carry no offset and no epoch until the log stamps them. */
        cr_assert_eq(be64(t->buf + RN_BATCH_OFF_BASE_OFFSET), 0);
        cr_assert_eq(be32(t->buf + RN_BATCH_OFF_LEADER_EPOCH), -1);
        append_one(log, t);
    }
    for (int i = 0; i < m.n; i++) {
        rn_slice s;
        cr_assert_eq(rn_log_read(log, m.b[i].base, 1, INT64_MAX, &s), 0);
        cr_assert_eq(be64(s.data + RN_BATCH_OFF_BASE_OFFSET), m.b[i].base);
        cr_assert_eq(be32(s.data + RN_BATCH_OFF_LEADER_EPOCH), i < 30 ? 3 : 4);
        rn_batch_header h;
        cr_assert_eq(rn_batch_check(s.data, s.len, 0, &h), 0, "stamping broke the CRC");
        cr_assert_eq(h.base_offset, m.b[i].base);
        rn_slice_release(&s);
    }
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Timestamps ------------------------------------------------------------------- */

/* What offset-for-time must answer, by brute force: the base of the first
 * batch whose newest timestamp is at or after ts, else the log end. */
static int64_t model_offset_for_time(const model *m, int64_t ts)
{
    for (int i = 0; i < m->n; i++)
        if (m->b[i].max_ts >= ts)
            return m->b[i].base;
    return m->next;
}

// offset_for_time at, between and beyond batch timestamps, across many segments.
Test(log_read, offset_for_time_across_segments)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    /* Batch i holds times T_i .. T_i + n - 1 with T_i = 1e6 + 100 i: gaps between batches. */
    for (int i = 0; i < 1200; i++)
        model_add(&m, 1 + i % 5, 1000000 + 100 * (int64_t)i, 100 + (size_t)(i % 7) * 30);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 64);
    cr_assert_gt(rn_log_segment_count(log), 20);
    for (int i = 0; i < m.n; i++) {
        int64_t t0 = 1000000 + 100 * (int64_t)i;
        const tbatch *b = &m.b[i];
        cr_assert_eq(rn_log_offset_for_time(log, t0), b->base, "at the start of batch %d", i);
        cr_assert_eq(rn_log_offset_for_time(log, b->max_ts), b->base, "at the max of batch %d", i);
        int64_t next = i + 1 < m.n ? m.b[i + 1].base : m.next;
        cr_assert_eq(rn_log_offset_for_time(log, b->max_ts + 1), next, "just after batch %d", i);
        cr_assert_eq(rn_log_offset_for_time(log, t0 + 99), next, "between batch %d and next", i);
    }
    cr_assert_eq(rn_log_offset_for_time(log, 0), 0);
    cr_assert_eq(rn_log_offset_for_time(log, -1), 0);
    cr_assert_eq(rn_log_offset_for_time(log, INT64_MAX), m.next);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// With timestamps out of order, offset_for_time is the first batch whose max reaches ts.
Test(log_read, offset_for_time_unordered_matches_brute_force)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 800; i++) {
        int n = 1 + (int)(rng() % 6);
        int64_t ts[8];
        for (int k = 0; k < n; k++)
            ts[k] = 1000000 + (int64_t)(rng() % 50000) + 60 * i; /* drifting, jittery clock */
        model_add_ts(&m, n, ts, 0, 50 + (size_t)(rng() % 300), 1);
    }
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 32);
    cr_assert_gt(rn_log_segment_count(log), 8);
    int64_t hi = 1000000 + 50000 + 60 * 800;
    for (int64_t ts = 999000; ts <= hi + 100; ts += 37)
        cr_assert_eq(rn_log_offset_for_time(log, ts), model_offset_for_time(&m, ts), "ts %lld",
                     (long long)ts);
    /* The same answers after a clean reopen (time indexes from disk). */
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    for (int64_t ts = 999000; ts <= hi + 100; ts += 101)
        cr_assert_eq(rn_log_offset_for_time(log, ts), model_offset_for_time(&m, ts),
                     "after reopen, ts %lld", (long long)ts);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}
