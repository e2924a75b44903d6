/*
 * test_index.c — the segment's index files and the checkpoint files.
 *
 * What is covered: storage/index_file.c (header check, growth, trim, seal,
 * trailing-zero detection on reopen, capacity), storage/offset_index.c and
 * storage/time_index.c (append rules and binary-search lookups at every
 * boundary), storage/checkpoint.c (round trip and every way a file can be
 * damaged). Each test works in its own mkdtemp directory under /tmp, removed at
 * the end; nothing here needs io_uring.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "storage/checkpoint.h"
#include "storage/index_file.h"
#include "storage/offset_index.h"
#include "storage/sys.h"
#include "storage/time_index.h"

/* ---- Fixture ------------------------------------------------------------------ */

static char dir[64];
static char path[128];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rn-test-index-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/00000000000000001000.idx", dir);
}

static void teardown(void)
{
    rn_sys_reset();
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(index, .init = setup, .fini = teardown, .timeout = 30);

static off_t file_size(const char *p)
{
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "stat %s", p);
    return st.st_size;
}

static void write_file(const char *p, const void *buf, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void flip_byte(const char *p, off_t at)
{
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

/* An offset index for base 1000 with entries (10,100) (20,200) (30,300). */
static void make_offset_index(rn_index_file *ix)
{
    cr_assert_eq(
        rn_index_file_open(ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000, 64, false),
        1);
    for (uint32_t i = 1; i <= 3; i++)
        cr_assert_eq(rn_offset_index_append(ix, 10 * i, 100 * i), 0);
    cr_assert_eq(ix->n, 3);
}

static void assert_entry(rn_offset_entry e, uint32_t rel, uint32_t pos)
{
    cr_assert_eq(e.rel_offset, rel, "rel_offset %u, want %u", e.rel_offset, rel);
    cr_assert_eq(e.pos, pos, "pos %u, want %u", e.pos, pos);
}

/* ---- Offset index ------------------------------------------------------------- */

// Lookups below the first entry, exactly on each entry, between entries and past the last.
Test(index, offset_lookup_every_boundary)
{
    rn_index_file ix;
    make_offset_index(&ix);
    assert_entry(rn_offset_index_lookup(&ix, 0), 0, 0);
    assert_entry(rn_offset_index_lookup(&ix, 9), 0, 0);
    assert_entry(rn_offset_index_lookup(&ix, 10), 10, 100);
    assert_entry(rn_offset_index_lookup(&ix, 11), 10, 100);
    assert_entry(rn_offset_index_lookup(&ix, 19), 10, 100);
    assert_entry(rn_offset_index_lookup(&ix, 20), 20, 200);
    assert_entry(rn_offset_index_lookup(&ix, 29), 20, 200);
    assert_entry(rn_offset_index_lookup(&ix, 30), 30, 300);
    assert_entry(rn_offset_index_lookup(&ix, 31), 30, 300);
    assert_entry(rn_offset_index_lookup(&ix, UINT32_MAX), 30, 300);
    cr_assert_eq(rn_index_file_close(&ix), 0);
}

// An empty index sends every lookup to the start of the segment.
Test(index, offset_lookup_empty)
{
    rn_index_file ix;
    cr_assert_eq(
        rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000, 64, true),
        1);
    cr_assert_eq(ix.n, 0);
    assert_entry(rn_offset_index_lookup(&ix, 0), 0, 0);
    assert_entry(rn_offset_index_lookup(&ix, 12345), 0, 0);
    rn_index_file_close(&ix);
}

// Lookups agree with a linear search over a long index (odd and even sizes, every target).
Test(index, offset_lookup_matches_linear_search)
{
    rn_index_file ix;
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    1000, false),
                 1);
    for (uint32_t n = 1; n <= 101; n++) {
        cr_assert_eq(rn_offset_index_append(&ix, 3 * n + (n % 2), 1000 * n), 0);
        for (uint32_t rel = 0; rel <= 3 * n + 5; rel++) {
            uint32_t want_rel = 0, want_pos = 0;
            for (uint32_t i = 0; i < ix.n; i++) {
                rn_offset_entry e = rn_offset_index_get(&ix, i);
                if (e.rel_offset <= rel) {
                    want_rel = e.rel_offset;
                    want_pos = e.pos;
                }
            }
            rn_offset_entry e = rn_offset_index_lookup(&ix, rel);
            cr_assert(e.rel_offset == want_rel && e.pos == want_pos,
                      "n=%u rel=%u: got (%u,%u) want (%u,%u)", n, rel, e.rel_offset, e.pos,
                      want_rel, want_pos);
        }
    }
    rn_index_file_close(&ix);
}

// An entry whose offset or position does not exceed the last is refused and not stored.
Test(index, offset_append_non_increasing_rejected)
{
    rn_index_file ix;
    make_offset_index(&ix);
    cr_assert_eq(rn_offset_index_append(&ix, 30, 400), -EINVAL); /* same offset */
    cr_assert_eq(rn_offset_index_append(&ix, 40, 300), -EINVAL); /* same position */
    cr_assert_eq(rn_offset_index_append(&ix, 25, 400), -EINVAL); /* offset goes back */
    cr_assert_eq(rn_offset_index_append(&ix, 40, 250), -EINVAL); /* position goes back */
    cr_assert_eq(ix.n, 3);
    assert_entry(rn_offset_index_get(&ix, 2), 30, 300);
    cr_assert_eq(rn_offset_index_append(&ix, 31, 301), 0);
    cr_assert_eq(ix.n, 4);
    rn_index_file_close(&ix);
}

// Trim forgets entries and zeroes their bytes, in memory and in the file.
Test(index, trim_zeroes_entries)
{
    rn_index_file ix;
    make_offset_index(&ix);
    rn_index_file_trim(&ix, 1);
    cr_assert_eq(ix.n, 1);
    const uint8_t *e = rn_index_file_entry(&ix, 1);
    for (int i = 0; i < 2 * RN_OFFSET_INDEX_ENTRY; i++)
        cr_assert_eq(e[i], 0, "byte %d of trimmed entries not zero", i);
    assert_entry(rn_offset_index_lookup(&ix, 25), 10, 100);
    /* Trimming to more than n is a no-op. */
    rn_index_file_trim(&ix, 5);
    cr_assert_eq(ix.n, 1);
    /* The slot can be reused. */
    cr_assert_eq(rn_offset_index_append(&ix, 15, 150), 0);
    cr_assert_eq(rn_index_file_close(&ix), 0);

    int fd = open(path, O_RDONLY);
    uint8_t buf[RN_OFFSET_INDEX_ENTRY];
    cr_assert_eq(pread(fd, buf, sizeof(buf), RN_INDEX_HEADER_LEN + 2 * RN_OFFSET_INDEX_ENTRY),
                 (ssize_t)sizeof(buf));
    close(fd);
    for (int i = 0; i < RN_OFFSET_INDEX_ENTRY; i++)
        cr_assert_eq(buf[i], 0, "entry 2 survived the trim on disk");

    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 2);
    assert_entry(rn_offset_index_get(&ix, 1), 15, 150);
    rn_index_file_close(&ix);
}

// Closing and reopening gives back every entry; the preallocated zero tail is not counted.
Test(index, reopen_preserves_entries)
{
    rn_index_file ix;
    make_offset_index(&ix);
    cr_assert_eq(rn_index_file_close(&ix), 0);
    /* The file was grown ahead of the entries: zeros follow them. */
    cr_assert_gt(file_size(path), RN_INDEX_HEADER_LEN + 3 * RN_OFFSET_INDEX_ENTRY);

    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_entry(rn_offset_index_get(&ix, i), 10 * (i + 1), 100 * (i + 1));
    cr_assert_eq(rn_offset_index_append(&ix, 40, 400), 0);
    cr_assert_eq(rn_index_file_close(&ix), 0);

    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 4);
    assert_entry(rn_offset_index_get(&ix, 3), 40, 400);
    rn_index_file_close(&ix);
}

// Trailing all-zero entries (written as zeros, not only preallocated) are not counted.
Test(index, trailing_zero_entries_not_counted)
{
    rn_index_file ix;
    make_offset_index(&ix);
    rn_index_file_close(&ix);
    /* Cut the preallocated tail, then write three explicit zero entries. */
    cr_assert_eq(truncate(path, RN_INDEX_HEADER_LEN + 3 * RN_OFFSET_INDEX_ENTRY), 0);
    uint8_t zeros[3 * RN_OFFSET_INDEX_ENTRY] = {0};
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
    close(fd);

    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 3);
    assert_entry(rn_offset_index_lookup(&ix, 100), 30, 300);
    /* The next append lands right after the last real entry. */
    cr_assert_eq(rn_offset_index_append(&ix, 40, 400), 0);
    assert_entry(rn_offset_index_get(&ix, 3), 40, 400);
    rn_index_file_close(&ix);
}

// A file whose size leaves half an entry after the last one opens with the whole entries only.
Test(index, partial_trailing_entry_ignored)
{
    rn_index_file ix;
    make_offset_index(&ix);
    rn_index_file_close(&ix);
    cr_assert_eq(truncate(path, RN_INDEX_HEADER_LEN + 2 * RN_OFFSET_INDEX_ENTRY + 5), 0);
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 2);
    cr_assert_eq(rn_offset_index_append(&ix, 30, 300), 0);
    rn_index_file_close(&ix);
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 3);
    assert_entry(rn_offset_index_get(&ix, 2), 30, 300);
    rn_index_file_close(&ix);
}

/* Opening path (which the caller damaged) must fail with CORRUPT_INDEX and leave
 * no descriptor open. */
static void assert_corrupt(const char *magic, uint32_t entry_size, int64_t base)
{
    rn_index_file ix;
    int fds_before = open("/dev/null", O_RDONLY);
    close(fds_before);
    int rc = rn_index_file_open(&ix, path, magic, entry_size, base, 64, false);
    cr_assert_eq(rc, -RN_E_CORRUPT_INDEX, "got %d (%s)", rc, rn_strerror(rc));
    cr_assert_eq(ix.fd, -1);
    int fds_after = open("/dev/null", O_RDONLY);
    close(fds_after);
    cr_assert_eq(fds_after, fds_before, "a descriptor leaked on the error path");
}

// A header of garbage bytes is refused.
Test(index, header_garbage_is_corrupt)
{
    uint8_t junk[256];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    write_file(path, junk, sizeof(junk));
    assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000);
}

// A file shorter than the header is refused.
Test(index, header_short_is_corrupt)
{
    rn_index_file ix;
    make_offset_index(&ix);
    rn_index_file_close(&ix);
    cr_assert_eq(truncate(path, RN_INDEX_HEADER_LEN - 1), 0);
    assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000);
    cr_assert_eq(truncate(path, 1), 0);
    assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000);
}

// Wrong magic, wrong entry size or wrong base offset are refused.
Test(index, header_mismatch_is_corrupt)
{
    rn_index_file ix;
    make_offset_index(&ix);
    rn_index_file_close(&ix);
    assert_corrupt(RN_TIME_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000);
    assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_TIME_INDEX_ENTRY, 1000);
    assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1001);
    assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 0);
    /* The right parameters still open it: the checks above changed nothing. */
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 3);
    rn_index_file_close(&ix);
}

// Flipping any single header byte (fields, reserved bytes or checksum) is detected.
Test(index, header_any_flipped_byte_is_corrupt)
{
    rn_index_file ix;
    make_offset_index(&ix);
    rn_index_file_close(&ix);
    for (off_t at = 0; at < RN_INDEX_HEADER_LEN; at++) {
        flip_byte(path, at);
        assert_corrupt(RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000);
        flip_byte(path, at); /* the same xor restores it */
    }
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    rn_index_file_close(&ix);
}

// Opening with create = true over a damaged file starts a fresh, empty index.
Test(index, create_replaces_corrupt_file)
{
    uint8_t junk[100];
    memset(junk, 0xab, sizeof(junk));
    write_file(path, junk, sizeof(junk));
    rn_index_file ix;
    cr_assert_eq(
        rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000, 64, true),
        1);
    cr_assert_eq(ix.n, 0);
    cr_assert_eq(rn_offset_index_append(&ix, 1, 1), 0);
    rn_index_file_close(&ix);
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 1);
    rn_index_file_close(&ix);
}

// An index takes exactly its capacity (across several growth steps), then -ENOSPC.
Test(index, full_index_is_enospc)
{
    rn_index_file ix;
    const uint32_t max = 20000; /* > two 64 KiB growth chunks of 8-byte entries */
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    max, false),
                 1);
    cr_assert_geq(ix.max, max);
    uint32_t cap = ix.max;
    for (uint32_t i = 0; i < cap; i++)
        cr_assert_eq(rn_offset_index_append(&ix, i + 1, 2 * i + 1), 0, "entry %u", i);
    cr_assert_eq(rn_offset_index_append(&ix, cap + 1, 2 * cap + 1), -ENOSPC);
    cr_assert_eq(ix.n, cap);
    cr_assert_leq(ix.file_len, ix.map_len);
    cr_assert_eq(rn_index_file_close(&ix), 0);

    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    max, false),
                 0);
    cr_assert_eq(ix.n, cap);
    for (uint32_t i = 0; i < cap; i += 997)
        assert_entry(rn_offset_index_get(&ix, i), i + 1, 2 * i + 1);
    assert_entry(rn_offset_index_lookup(&ix, cap + 100), cap, 2 * cap - 1);
    rn_index_file_close(&ix);
}

// A small time index fills up too; a full index does not change.
Test(index, full_time_index_is_enospc)
{
    rn_index_file ix;
    char p[160];
    snprintf(p, sizeof(p), "%s/00000000000000001000.tix", dir);
    cr_assert_eq(
        rn_index_file_open(&ix, p, RN_TIME_INDEX_MAGIC, RN_TIME_INDEX_ENTRY, 1000, 4, false), 1);
    uint32_t cap = ix.max;
    for (uint32_t i = 0; i < cap; i++)
        cr_assert_eq(rn_time_index_maybe_append(&ix, 100 + i, i), 0);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 100 + cap, cap), -ENOSPC);
    cr_assert_eq(ix.n, cap);
    cr_assert_eq(rn_time_index_max(&ix), 100 + cap - 1);
    rn_index_file_close(&ix);
}

/* Disk full: every fallocate fails. */
static int fail_fallocate(enum rn_sys_call call, void *arg)
{
    (void)arg;
    return call == RN_SYS_FALLOCATE ? -ENOSPC : 0;
}

// A growth step that fails (disk full) is an -ENOSPC return, not a fault; entries are kept.
Test(index, growth_failure_is_enospc)
{
    rn_index_file ix;
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    100000, false),
                 1);
    rn_sys_set_injector(fail_fallocate, NULL);
    cr_assert_eq(rn_offset_index_append(&ix, 1, 1), -ENOSPC);
    cr_assert_eq(ix.n, 0);
    rn_sys_set_injector(NULL, NULL);

    /* Fill exactly what the first growth step allocated, then fail the next. */
    uint32_t i = 0;
    while (RN_INDEX_HEADER_LEN + (size_t)(ix.n + 1) * RN_OFFSET_INDEX_ENTRY <= ix.file_len ||
           ix.n == 0) {
        cr_assert_eq(rn_offset_index_append(&ix, i + 1, i + 1), 0);
        i++;
    }
    cr_assert_gt(i, 1000);
    rn_sys_set_injector(fail_fallocate, NULL);
    cr_assert_eq(rn_offset_index_append(&ix, i + 1, i + 1), -ENOSPC);
    cr_assert_eq(ix.n, i);
    rn_sys_set_injector(NULL, NULL);
    cr_assert_eq(rn_offset_index_append(&ix, i + 1, i + 1), 0);
    cr_assert_eq(ix.n, i + 1);
    cr_assert_eq(rn_index_file_close(&ix), 0);

    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    100000, false),
                 0);
    cr_assert_eq(ix.n, i + 1);
    assert_entry(rn_offset_index_get(&ix, i), i + 1, i + 1);
    rn_index_file_close(&ix);
}

// Seal shrinks the file to its entries, keeps lookups working and refuses appends.
Test(index, seal_shrinks_and_stays_readable)
{
    rn_index_file ix;
    make_offset_index(&ix);
    cr_assert_eq(rn_index_file_seal(&ix), 0);
    cr_assert_eq(file_size(path), RN_INDEX_HEADER_LEN + 3 * RN_OFFSET_INDEX_ENTRY);
    cr_assert_eq(ix.fd, -1);
    assert_entry(rn_offset_index_lookup(&ix, 25), 20, 200);
    cr_assert_eq(rn_offset_index_append(&ix, 40, 400), -ENOSPC);
    cr_assert_eq(ix.n, 3);
    cr_assert_eq(rn_index_file_close(&ix), 0);
    /* A sealed file reopens and can grow again. */
    cr_assert_eq(rn_index_file_open(&ix, path, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY, 1000,
                                    64, false),
                 0);
    cr_assert_eq(ix.n, 3);
    cr_assert_eq(rn_offset_index_append(&ix, 40, 400), 0);
    assert_entry(rn_offset_index_lookup(&ix, 41), 40, 400);
    rn_index_file_close(&ix);
}

/* ---- Time index --------------------------------------------------------------- */

// maybe_append keeps only growing timestamps and never a relative offset going back.
Test(index, time_maybe_append_rules)
{
    rn_index_file ix;
    cr_assert_eq(
        rn_index_file_open(&ix, path, RN_TIME_INDEX_MAGIC, RN_TIME_INDEX_ENTRY, 1000, 64, false),
        1);
    cr_assert_eq(rn_time_index_max(&ix), -1);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 100, 0), 0);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 100, 5), 0); /* same time: skipped */
    cr_assert_eq(rn_time_index_maybe_append(&ix, 90, 6), 0);  /* older: skipped */
    cr_assert_eq(ix.n, 1);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 200, 10), 0);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 250, 9), 0); /* offset back: skipped */
    cr_assert_eq(rn_time_index_maybe_append(&ix, 300, 20), 0);
    cr_assert_eq(ix.n, 3);
    cr_assert_eq(rn_time_index_max(&ix), 300);
    rn_time_entry e = rn_time_index_get(&ix, 1);
    cr_assert(e.timestamp == 200 && e.rel_offset == 10);
    cr_assert_eq(rn_index_file_close(&ix), 0);

    cr_assert_eq(
        rn_index_file_open(&ix, path, RN_TIME_INDEX_MAGIC, RN_TIME_INDEX_ENTRY, 1000, 64, false),
        0);
    cr_assert_eq(ix.n, 3);
    cr_assert_eq(rn_time_index_max(&ix), 300);
    rn_index_file_close(&ix);
}

// lookup returns the entry before the first one at or after ts, at every boundary.
Test(index, time_lookup_every_boundary)
{
    rn_index_file ix;
    cr_assert_eq(
        rn_index_file_open(&ix, path, RN_TIME_INDEX_MAGIC, RN_TIME_INDEX_ENTRY, 1000, 64, false),
        1);
    cr_assert_eq(rn_time_index_lookup(&ix, 12345), 0); /* empty */
    cr_assert_eq(rn_time_index_maybe_append(&ix, 100, 3), 0);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 200, 10), 0);
    cr_assert_eq(rn_time_index_maybe_append(&ix, 300, 20), 0);
    cr_assert_eq(rn_time_index_lookup(&ix, -1), 0);
    cr_assert_eq(rn_time_index_lookup(&ix, 50), 0);
    cr_assert_eq(rn_time_index_lookup(&ix, 100), 0);
    cr_assert_eq(rn_time_index_lookup(&ix, 101), 3);
    cr_assert_eq(rn_time_index_lookup(&ix, 200), 3);
    cr_assert_eq(rn_time_index_lookup(&ix, 201), 10);
    cr_assert_eq(rn_time_index_lookup(&ix, 300), 10);
    cr_assert_eq(rn_time_index_lookup(&ix, 301), 20);
    cr_assert_eq(rn_time_index_lookup(&ix, INT64_MAX), 20);
    rn_index_file_close(&ix);
}

/* ---- Checkpoints -------------------------------------------------------------- */

#define CP_MAGIC "RNTESTCP"

typedef struct payload {
    int64_t a, b;
    uint32_t c, pad;
} payload;

static char cp_path[160];

static void write_cp(const payload *p)
{
    cr_assert_eq(rn_checkpoint_write(dir, "cp", CP_MAGIC, p, sizeof(*p)), 0);
    snprintf(cp_path, sizeof(cp_path), "%s/cp", dir);
}

// A checkpoint reads back as written; a rewrite replaces it and leaves no temporary file.
Test(index, checkpoint_round_trip)
{
    payload w = {.a = 42, .b = -7, .c = 99}, r;
    write_cp(&w);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), 0);
    cr_assert(memcmp(&w, &r, sizeof(w)) == 0);
    cr_assert_eq(file_size(cp_path), (off_t)(12 + sizeof(w) + 8));

    w.a = 43;
    write_cp(&w);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), 0);
    cr_assert_eq(r.a, 43);
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s/cp.tmp", dir);
    cr_assert_neq(access(tmp, F_OK), 0, "temporary file left behind");
}

// A missing checkpoint is -ENOENT; remove deletes it and removing again succeeds.
Test(index, checkpoint_absent_and_remove)
{
    payload r;
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), -ENOENT);
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
    payload w = {.a = 1};
    write_cp(&w);
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
    cr_assert_neq(access(cp_path, F_OK), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), -ENOENT);
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
}

// Flipping any one byte of the file (magic, length, payload, checksum) is CORRUPT_FILE.
Test(index, checkpoint_flipped_byte_is_corrupt)
{
    payload w = {.a = 0x0102030405060708, .b = 9, .c = 10}, r;
    write_cp(&w);
    off_t len = file_size(cp_path);
    for (off_t at = 0; at < len; at++) {
        flip_byte(cp_path, at);
        int rc = rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r));
        cr_assert_eq(rc, -RN_E_CORRUPT_FILE, "flipped byte %ld: got %d", (long)at, rc);
        flip_byte(cp_path, at);
    }
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), 0);
}

// A truncated file, a file with a byte appended, and a read of the wrong size are CORRUPT_FILE.
Test(index, checkpoint_wrong_size_is_corrupt)
{
    payload w = {.a = 5}, r;
    write_cp(&w);
    off_t len = file_size(cp_path);
    uint8_t big[2 * sizeof(payload)];
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, big, sizeof(payload) - 8),
                 -RN_E_CORRUPT_FILE);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, big, sizeof(big)), -RN_E_CORRUPT_FILE);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", "RNOTHERX", &r, sizeof(r)), -RN_E_CORRUPT_FILE);

    int fd = open(cp_path, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), -RN_E_CORRUPT_FILE);

    for (off_t cut = len - 1; cut >= 0; cut -= 7) {
        cr_assert_eq(truncate(cp_path, cut), 0);
        cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), -RN_E_CORRUPT_FILE,
                     "truncated to %ld", (long)cut);
    }
    cr_assert_eq(truncate(cp_path, 0), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), -RN_E_CORRUPT_FILE);
}

// Payloads up to RN_CHECKPOINT_MAX round-trip; larger ones are refused with -EINVAL.
Test(index, checkpoint_size_limits)
{
    uint8_t w[RN_CHECKPOINT_MAX + 1], r[RN_CHECKPOINT_MAX + 1];
    for (size_t i = 0; i < sizeof(w); i++)
        w[i] = (uint8_t)i;
    cr_assert_eq(rn_checkpoint_write(dir, "big", CP_MAGIC, w, RN_CHECKPOINT_MAX), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "big", CP_MAGIC, r, RN_CHECKPOINT_MAX), 0);
    cr_assert(memcmp(w, r, RN_CHECKPOINT_MAX) == 0);
    cr_assert_eq(rn_checkpoint_write(dir, "big", CP_MAGIC, w, RN_CHECKPOINT_MAX + 1), -EINVAL);
    cr_assert_eq(rn_checkpoint_read(dir, "big", CP_MAGIC, r, RN_CHECKPOINT_MAX + 1), -EINVAL);
    cr_assert_eq(rn_checkpoint_write(dir, "empty", CP_MAGIC, w, 0), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "empty", CP_MAGIC, r, 0), 0);
}

/* The rename that publishes a checkpoint fails. */
static int fail_rename(enum rn_sys_call call, void *arg)
{
    (void)arg;
    return call == RN_SYS_RENAME ? -EIO : 0;
}

// A checkpoint write that fails midway keeps the previous version readable.
Test(index, checkpoint_failed_write_keeps_old)
{
    payload w = {.a = 1}, r;
    write_cp(&w);
    w.a = 2;
    rn_sys_set_injector(fail_rename, NULL);
    cr_assert_eq(rn_checkpoint_write(dir, "cp", CP_MAGIC, &w, sizeof(w)), -EIO);
    rn_sys_set_injector(NULL, NULL);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", CP_MAGIC, &r, sizeof(r)), 0);
    cr_assert_eq(r.a, 1);
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s/cp.tmp", dir);
    cr_assert_neq(access(tmp, F_OK), 0, "temporary file left behind");
}
