/*
 * test_recovery.c — opening a log after a crash or a clean shutdown (suite `recovery`).
 *
 * Every test builds a small log (4 KiB segments, an index entry every 512
 * bytes, several batches per segment), leaves it as a crash would
 * (rn_log_abandon: no final sync, no clean marker) or closes it cleanly, then
 * damages a copy on disk and reopens it. What must hold after every reopen:
 *
 *  1. The log is exactly the batches before the first bad byte, byte for
 *     byte, with contiguous offsets, each passing rn_batch_verify; nothing
 *     after a bad byte is served (reads there are out of range).
 *  2. rn_log_open_info says what happened: bytes_dropped is the number of
 *     non-zero bytes cut, truncated_at the offset of the first batch lost.
 *  3. Appending afterwards continues at the cut and reads back.
 *  4. Index files are rebuilt when missing or garbage, and lookups by offset
 *     and by time still find the right batch.
 *  5. A clean shutdown is trusted only when its marker verifies and agrees
 *     with the files; then nothing is scanned.
 *  6. The repair is on disk, not only in what the open log serves: the file
 *     is cut at the first bad byte before anything is appended, so an append
 *     lands right after the last good batch and a second recovery after a
 *     crash finds nothing left to cut.
 */
#include "helpers.h"

/* A log on disk (orig), abandoned, with where every batch lies. */
typedef struct fixture {
    char *root;
    char orig[4096], work[4096];
    rn_io *io;
    rn_log_config cfg;
    th_batches want; /* every batch appended, stamped, in order */
    uint64_t *pos;   /* position of batch i in its segment */
    int64_t *seg;    /* base offset of the segment holding batch i */
    int64_t bases[256];
    unsigned n_segs;
} fixture;

/* Batch i of a fixture: 1..5 records of 20..109 bytes, so sizes vary. */
static uint8_t *fixture_batch(uint64_t i, size_t *len)
{
    return th_batch_new(i + 1, 1 + (int)(i % 5), 20 + (size_t)(i * 37 % 90), len);
}

static void append_one(rn_log *log, uint8_t *b, size_t len, int64_t want_base)
{
    int64_t base = -1;
    int rc = rn_log_append_sync(log, b, len, 7, &base);
    cr_assert_eq(rc, 0, "append: %s (%s)", rn_strerror(rc), rn_log_errmsg(log));
    cr_assert_eq(base, want_base);
}

/* These tests check what the files say after a crash of the process, not of
 * the machine, so fdatasync is skipped: the page cache is the disk here, and
 * the suite does not spend seconds on journal commits. (test_crash.c checks
 * what reaches the disk.) */
static int no_fdatasync(int fd)
{
    (void)fd;
    return 0;
}

/* Append n_batches, and more until the last segment holds at least
 * min_tail batches, then abandon the log as a crash would. */
static void fixture_init(fixture *f, unsigned n_batches, uint64_t segment_bytes,
                         uint32_t index_interval)
{
    const unsigned min_tail = 6;
    memset(f, 0, sizeof(*f));
    rn_sys.fdatasync = no_fdatasync;
    f->root = th_tmpdir("recovery");
    th_path(f->orig, f->root, "orig");
    th_path(f->work, f->root, "work");
    f->io = th_io_new();
    th_config(&f->cfg, segment_bytes, RN_FLUSH_NEVER);
    f->cfg.index_interval_bytes = index_interval;

    rn_log *log;
    cr_assert_eq(rn_log_open(&log, f->io, f->orig, "rec", &f->cfg, NULL), 0);
    int64_t next = 0;
    unsigned in_tail = 0;
    for (unsigned i = 0; i < n_batches || in_tail < min_tail; i++) {
        size_t len;
        uint8_t *b = fixture_batch(i, &len);
        unsigned n_segs = rn_log_segment_count(log);
        append_one(log, b, len, next);
        in_tail = rn_log_segment_count(log) == n_segs ? in_tail + 1 : 1;
        th_batches_push(&f->want, b, len);
        next = f->want.v[i].last + 1;
        free(b);
    }
    /* A small last batch (~150 bytes): tests cut and flip it byte by byte. */
    size_t len;
    uint8_t *b = th_batch_new(5555, 2, 30, &len);
    unsigned n_segs = rn_log_segment_count(log);
    append_one(log, b, len, next);
    cr_assert_eq(rn_log_segment_count(log), n_segs, "the last batch should not roll");
    th_batches_push(&f->want, b, len);
    free(b);
    rn_log_abandon(log);

    f->n_segs = th_list_segments(f->orig, f->bases, 256);
    f->pos = calloc(f->want.n, sizeof(*f->pos));
    f->seg = calloc(f->want.n, sizeof(*f->seg));
    cr_assert(f->pos && f->seg);
    unsigned s = 0;
    for (unsigned i = 0; i < f->want.n; i++) {
        while (s + 1 < f->n_segs && f->bases[s + 1] <= f->want.v[i].base)
            s++;
        f->seg[i] = f->bases[s];
        f->pos[i] = i > 0 && f->seg[i - 1] == f->seg[i] ? f->pos[i - 1] + f->want.v[i - 1].len : 0;
        if (f->pos[i] == 0)
            cr_assert_eq(f->want.v[i].base, f->bases[s], "segment %u starts at batch %u", s, i);
    }
}

static void fixture_fini(fixture *f)
{
    th_batches_free(&f->want);
    free(f->pos);
    free(f->seg);
    rn_io_free(f->io);
    th_rmrf(f->root);
    free(f->root);
    rn_sys_reset();
}

/* A fresh copy of the abandoned log in work. */
static void reset_work(fixture *f)
{
    th_rmrf(f->work);
    th_copy_dir(f->orig, f->work);
}

static char *work_log(fixture *f, char *buf, int64_t base)
{
    return th_seg_path(buf, f->work, base, ".log");
}

static rn_log *open_work(fixture *f, rn_log_open_info *info, const char *what)
{
    rn_log *log;
    int rc = rn_log_open(&log, f->io, f->work, "rec", &f->cfg, info);
    cr_assert_eq(rc, 0, "%s: open: %s", what, rn_strerror(rc));
    return log;
}

/* The log holds exactly want[0, keep) and serves nothing after it. */
static void expect_prefix(rn_log *log, fixture *f, size_t keep, const char *what)
{
    th_batches got = {0};
    th_read_all(log, 1000, &got);
    th_expect_batches(&got, &f->want, keep, what);
    th_batches_free(&got);
    int64_t leo = keep ? f->want.v[keep - 1].last + 1 : 0;
    cr_assert_eq(rn_log_end_offset(log), leo, "%s: log end offset", what);
    rn_slice s;
    for (size_t i = keep; i < f->want.n; i++) {
        int64_t off = f->want.v[i].last;
        if (off == leo)
            continue;
        cr_assert_eq(rn_log_read(log, off, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE,
                     "%s: offset %" PRId64 " of a dropped batch is served", what, off);
    }
}

/* Append one new batch: it must get the offset after want[0, keep) and the
 * whole log must read back as want[0, keep) + it. */
static void expect_append_continues(rn_log *log, fixture *f, size_t keep, const char *what)
{
    size_t len;
    uint8_t *b = th_batch_new(9999, 3, 40, &len);
    int64_t leo = keep ? f->want.v[keep - 1].last + 1 : 0;
    append_one(log, b, len, leo);
    th_batches want = {0};
    for (size_t i = 0; i < keep; i++)
        th_batches_push(&want, f->want.v[i].data, f->want.v[i].len);
    th_batches_push(&want, b, len);
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got);
    th_expect_batches(&got, &want, keep + 1, what);
    th_batches_free(&got);
    th_batches_free(&want);
    free(b);
}

/* What recovery must leave: exactly want[0, keep), and an append after it. */
static void expect_recovered(rn_log *log, fixture *f, size_t keep, const char *what)
{
    expect_prefix(log, f, keep, what);
    expect_append_continues(log, f, keep, what);
}

/* A fresh working copy, opened and closed cleanly once: it has a clean
 * marker now. */
static void reset_and_close_cleanly(fixture *f)
{
    reset_work(f);
    rn_log_open_info info;
    rn_log *log = open_work(f, &info, "first open");
    cr_assert_eq(rn_log_close(log), 0);
}

/* Index of the first batch of the last segment. */
static size_t first_of_last_segment(const fixture *f)
{
    size_t i = f->want.n;
    while (i > 0 && f->seg[i - 1] == f->bases[f->n_segs - 1])
        i--;
    return i;
}

/* ---- Torn and damaged tails ------------------------------------------------- */

// A cut at any byte of the last batch keeps the batches before it; appends continue there.
Test(recovery, truncated_tail_every_byte)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    cr_assert_geq(f.n_segs, 3, "the fixture should span several segments");
    size_t li = f.want.n - 1;
    const th_batch *last = &f.want.v[li];
    uint64_t start = f.pos[li];
    char p[4096], what[128];
    for (uint64_t cut = start; cut <= start + last->len; cut++) {
        snprintf(what, sizeof(what), "cut at %" PRIu64 " (batch at %" PRIu64 ")", cut, start);
        reset_work(&f);
        cr_assert_eq(truncate(work_log(&f, p, f.seg[li]), (off_t)cut), 0);
        /* A cut that only removes trailing zero bytes loses nothing: the
         * regrown file reads them back as zeros. */
        bool whole = th_count_nonzero(last->data + (cut - start), start + last->len - cut) == 0;
        size_t keep = whole ? f.want.n : f.want.n - 1;
        uint64_t dropped = whole ? 0 : th_count_nonzero(last->data, cut - start);

        rn_log_open_info info;
        rn_log *log = open_work(&f, &info, what);
        cr_assert(!info.clean, "%s", what);
        cr_assert_eq(info.n_segments, f.n_segs, "%s", what);
        cr_assert_eq(info.n_segments_dropped, 0, "%s", what);
        cr_assert_eq(info.bytes_dropped, dropped, "%s: dropped %" PRIu64 ", expected %" PRIu64,
                     what, info.bytes_dropped, dropped);
        cr_assert_eq(info.truncated_at, dropped ? last->base : -1, "%s: truncated_at %" PRId64,
                     what, info.truncated_at);
        expect_recovered(log, &f, keep, what);
        cr_assert_eq(rn_log_close(log), 0, "%s: close", what);
        if (cut % 16 == 0) {
            /* The repair is on disk: a clean reopen sees the same log. */
            log = open_work(&f, &info, what);
            cr_assert(info.clean, "%s: reopen after close", what);
            cr_assert_eq(rn_log_end_offset(log), (keep ? f.want.v[keep - 1].last + 1 : 0) + 3);
            rn_log_abandon(log);
        }
    }
    fixture_fini(&f);
}

/* Flip bytes of batch bi (every header byte bar the leader epoch, which
 * Kafka's CRC does not cover by design, and every stride-th byte of the
 * records, and the last) and check the log is cut at bi. */
static void flip_bytes(fixture *f, size_t bi, size_t stride)
{
    const th_batch *b = &f->want.v[bi];
    char p[4096], what[128];
    uint8_t *copy = malloc(b->len);
    cr_assert_not_null(copy);
    for (size_t i = 0; i < b->len; i++) {
        if (i >= RN_BATCH_OFF_LEADER_EPOCH && i < RN_BATCH_OFF_MAGIC)
            continue;
        if (i >= RN_BATCH_HEADER_LEN && (i - RN_BATCH_HEADER_LEN) % stride && i + 1 < b->len)
            continue;
        snprintf(what, sizeof(what), "byte %zu of batch %zu (offset %" PRId64 ") flipped", i, bi,
                 b->base);
        reset_work(f);
        work_log(f, p, f->seg[bi]);
        uint8_t v = th_byte_at(p, f->pos[bi] + i) ^ 0xff;
        th_write_at(p, f->pos[bi] + i, &v, 1);
        /* What is cut: the damaged batch and every batch after it. */
        memcpy(copy, b->data, b->len);
        copy[i] ^= 0xff;
        uint64_t dropped = th_count_nonzero(copy, b->len);
        for (size_t j = bi + 1; j < f->want.n; j++)
            dropped += th_count_nonzero(f->want.v[j].data, f->want.v[j].len);

        rn_log_open_info info;
        rn_log *log = open_work(f, &info, what);
        cr_assert(!info.clean, "%s", what);
        cr_assert_eq(info.bytes_dropped, dropped, "%s: dropped %" PRIu64 ", expected %" PRIu64,
                     what, info.bytes_dropped, dropped);
        cr_assert_eq(info.truncated_at, b->base, "%s: truncated_at %" PRId64, what,
                     info.truncated_at);
        expect_recovered(log, f, bi, what);
        rn_log_abandon(log);
    }
    free(copy);
}

// A flipped byte in the last batch (bar the epoch, outside the CRC) cuts exactly that batch.
Test(recovery, flipped_byte_in_last_batch)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    flip_bytes(&f, f.want.n - 1, 1);
    fixture_fini(&f);
}

// A flipped byte before the last index entry cuts there: later batches are gone, not served.
Test(recovery, flipped_byte_in_earlier_batch)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    size_t first = first_of_last_segment(&f);
    size_t bi = first + 1;
    cr_assert_lt(bi + 2, f.want.n, "the last segment should hold several batches");
    /* An index entry is written after bi, so trusting the last index entry
     * would skip the damaged batch: the test covers that trap. */
    cr_assert_geq(f.pos[f.want.n - 1], f.pos[bi] + f.cfg.index_interval_bytes);
    flip_bytes(&f, bi, 5);
    /* And the first batch of the segment: the segment becomes empty. */
    flip_bytes(&f, first, 5);
    fixture_fini(&f);
}

// Garbage after the last batch (sparse tail or past EOF) is dropped and counted; batches stay.
Test(recovery, garbage_after_last_batch)
{
    fixture f;
    fixture_init(&f, 30, 4096, 512);
    size_t li = f.want.n - 1;
    uint64_t end = f.pos[li] + f.want.v[li].len;
    int64_t leo = f.want.v[li].last + 1;
    uint8_t junk[200];
    uint64_t s = 42;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)th_rand(&s);
    char p[4096];
    const uint64_t where[] = {end, end + 100, f.cfg.segment_bytes + 300};
    for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
        char what[64];
        snprintf(what, sizeof(what), "garbage at %" PRIu64, where[w]);
        reset_work(&f);
        th_write_at(work_log(&f, p, f.seg[li]), where[w], junk, sizeof(junk));
        rn_log_open_info info;
        rn_log *log = open_work(&f, &info, what);
        cr_assert(!info.clean);
        cr_assert_eq(info.bytes_dropped, th_count_nonzero(junk, sizeof(junk)), "%s", what);
        cr_assert_eq(info.truncated_at, leo, "%s", what);
        expect_recovered(log, &f, f.want.n, what);
        cr_assert_eq(rn_log_close(log), 0);
        /* The garbage is gone for good. */
        log = open_work(&f, &info, what);
        cr_assert(info.clean);
        cr_assert_eq(rn_log_end_offset(log), leo + 3);
        rn_log_abandon(log);
    }
    fixture_fini(&f);
}

// A stale CRC-valid batch after the last one is not taken as data: offsets must continue.
Test(recovery, stale_valid_batch_after_last_is_dropped)
{
    fixture f;
    fixture_init(&f, 30, 4096, 512);
    size_t li = f.want.n - 1;
    const th_batch *old = &f.want.v[li - 1];
    char p[4096];
    reset_work(&f);
    th_write_at(work_log(&f, p, f.seg[li]), f.pos[li] + f.want.v[li].len, old->data, old->len);
    rn_log_open_info info;
    rn_log *log = open_work(&f, &info, "stale batch");
    cr_assert_eq(info.bytes_dropped, th_count_nonzero(old->data, old->len));
    cr_assert_eq(info.truncated_at, f.want.v[li].last + 1);
    expect_recovered(log, &f, f.want.n, "stale batch");
    rn_log_abandon(log);
    fixture_fini(&f);
}

/* ---- The repair on disk ------------------------------------------------------ */

/* The .log of segment base in work is, byte for byte: the original file's
 * [0, cut), then extra (extra_len bytes), then nothing but zeros (the sparse
 * tail of an active segment) to its end; and no segment after it exists. */
static void expect_segment_file(fixture *f, int64_t base, uint64_t cut, const uint8_t *extra,
                                size_t extra_len, const char *what)
{
    char p[4096], q[4096];
    size_t olen, wlen;
    uint8_t *orig = th_read_file(th_seg_path(p, f->orig, base, ".log"), &olen);
    uint8_t *work = th_read_file(th_seg_path(q, f->work, base, ".log"), &wlen);
    cr_assert_geq(olen, cut);
    cr_assert_geq(wlen, cut + extra_len, "%s: %s is %zu bytes, shorter than the cut %" PRIu64 "",
                  what, q, wlen, cut);
    cr_assert(memcmp(work, orig, cut) == 0, "%s: bytes before the cut changed", what);
    cr_assert(extra_len == 0 || memcmp(work + cut, extra, extra_len) == 0,
              "%s: the batch appended after recovery is not at the cut (%" PRIu64 ")", what, cut);
    for (size_t i = cut + extra_len; i < wlen; i++)
        cr_assert_eq(work[i], 0,
                     "%s: byte %zu holds 0x%02x: the file was not cut at the first bad byte "
                     "(%" PRIu64 ")%s",
                     what, i, work[i], cut, extra_len ? " before the append" : "");
    int64_t bases[256];
    unsigned n = th_list_segments(f->work, bases, 256);
    cr_assert(n > 0 && bases[n - 1] == base, "%s: segment %" PRId64 " is on disk after the cut",
              what, bases[n - 1]);
    free(orig);
    free(work);
}

enum damage { CUT_LAST, FLIP_EARLIER, GARBAGE_AFTER, STALE_AFTER, FLIP_UNSEALED };

// Recover, append, crash, recover again: on disk the segment is cut exactly at the first bad
// byte, the new batch follows it directly, and the second recovery drops nothing.
Test(recovery, repair_is_on_disk_and_append_follows_it)
{
    fixture f;
    fixture_init(&f, 60, 4096, 512);
    cr_assert_geq(f.n_segs, 4);
    size_t li = f.want.n - 1, first = first_of_last_segment(&f);
    cr_assert_lt(first + 2, li, "the last segment should hold several batches");
    size_t old = 0; /* the last batch of the third segment from the end */
    for (size_t i = 0; i < f.want.n; i++)
        if (f.seg[i] == f.bases[f.n_segs - 3])
            old = i;
    uint64_t end = f.pos[li] + f.want.v[li].len;
    uint8_t junk[200];
    uint64_t s = 11;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(th_rand(&s) | 1); /* no zero byte: each one must go */
    char p[4096];
    for (int how = CUT_LAST; how <= FLIP_UNSEALED; how++) {
        static const char *const names[] = {
            "cut in the last batch", "byte flipped earlier", "garbage after the last batch",
            "stale valid batch after the last", "byte flipped in an unsealed older segment"};
        const char *what = names[how];
        size_t keep;  /* batches [0, keep) survive */
        uint64_t cut; /* where the first bad byte is, in segment cut_seg */
        int64_t cut_seg;
        reset_work(&f);
        switch (how) {
        case CUT_LAST:
            keep = li;
            cut_seg = f.seg[li];
            cut = f.pos[li];
            cr_assert_eq(truncate(work_log(&f, p, cut_seg), (off_t)(cut + f.want.v[li].len / 2)),
                         0);
            break;
        case FLIP_EARLIER: {
            keep = first + 1;
            cut_seg = f.seg[keep];
            cut = f.pos[keep];
            uint64_t at = cut + RN_BATCH_HEADER_LEN + 3;
            uint8_t v = th_byte_at(work_log(&f, p, cut_seg), at) ^ 0x20;
            th_write_at(p, at, &v, 1);
            break;
        }
        case GARBAGE_AFTER:
            keep = f.want.n;
            cut_seg = f.seg[li];
            cut = end;
            th_write_at(work_log(&f, p, cut_seg), end + 100, junk, sizeof(junk));
            break;
        case STALE_AFTER:
            keep = f.want.n;
            cut_seg = f.seg[li];
            cut = end;
            th_write_at(work_log(&f, p, cut_seg), end, f.want.v[li - 1].data, f.want.v[li - 1].len);
            break;
        default: { /* FLIP_UNSEALED: never sealed (still long), last batch torn */
            keep = old;
            cut_seg = f.seg[old];
            cut = f.pos[old];
            work_log(&f, p, cut_seg);
            cr_assert_eq(truncate(p, (off_t)f.cfg.segment_bytes), 0);
            uint64_t at = cut + f.want.v[old].len - 10;
            uint8_t v = th_byte_at(p, at) ^ 0x5a;
            th_write_at(p, at, &v, 1);
            break;
        }
        }
        int64_t leo = keep ? f.want.v[keep - 1].last + 1 : 0;

        /* Recovery: the files are repaired before anything is appended. */
        rn_log_open_info info;
        rn_log *log = open_work(&f, &info, what);
        cr_assert(!info.clean, "%s", what);
        cr_assert_eq(info.truncated_at, leo, "%s: truncated_at %" PRId64, what, info.truncated_at);
        cr_assert_gt(info.bytes_dropped, 0, "%s", what);
        expect_prefix(log, &f, keep, what);
        expect_segment_file(&f, cut_seg, cut, NULL, 0, what);

        /* An append, then a crash: the batch sits right at the cut. */
        size_t len;
        uint8_t *b = th_batch_new(4242, 3, 60, &len); /* stamped in place by the append */
        append_one(log, b, len, leo);
        rn_log_abandon(log);
        expect_segment_file(&f, cut_seg, cut, b, len, what);

        /* The second recovery finds nothing to cut and serves it all. */
        log = open_work(&f, &info, what);
        cr_assert(!info.clean, "%s", what);
        cr_assert_eq(info.bytes_dropped, 0, "%s: a second recovery dropped %" PRIu64 " bytes", what,
                     info.bytes_dropped);
        cr_assert_eq(info.truncated_at, -1, "%s: cut again at %" PRId64, what, info.truncated_at);
        cr_assert_eq(info.n_segments_dropped, 0, "%s", what);
        th_batches want = {0}, got = {0};
        for (size_t i = 0; i < keep; i++)
            th_batches_push(&want, f.want.v[i].data, f.want.v[i].len);
        th_batches_push(&want, b, len);
        th_read_all(log, 1000, &got);
        th_expect_batches(&got, &want, keep + 1, what);
        cr_assert_eq(rn_log_end_offset(log), leo + 3, "%s", what);
        rn_log_abandon(log);
        expect_segment_file(&f, cut_seg, cut, b, len, what);
        th_batches_free(&want);
        th_batches_free(&got);
        free(b);
    }
    fixture_fini(&f);
}

/* ---- Index files ---------------------------------------------------------- */

/* Every offset of every batch is found through the index, and every batch's
 * max timestamp leads back to it through the time index. */
static void expect_lookups(rn_log *log, const fixture *f, const char *what)
{
    for (size_t i = 0; i < f->want.n; i++) {
        const th_batch *b = &f->want.v[i];
        for (int64_t off = b->base; off <= b->last; off++) {
            rn_slice s;
            int rc = rn_log_read(log, off, 1, INT64_MAX, &s);
            cr_assert_eq(rc, 0, "%s: read %" PRId64 ": %s", what, off, rn_strerror(rc));
            cr_assert_eq(s.base_offset, b->base, "%s: offset %" PRId64 " found in batch %" PRId64,
                         what, off, s.base_offset);
            cr_assert_eq(s.len, b->len);
            cr_assert(memcmp(s.data, b->data, b->len) == 0, "%s: batch %" PRId64, what, b->base);
            rn_slice_release(&s);
        }
        int64_t max_ts = th_be64(b->data + RN_BATCH_OFF_MAX_TIMESTAMP);
        cr_assert_eq(rn_log_offset_for_time(log, max_ts), b->base, "%s: time %" PRId64, what,
                     max_ts);
    }
    cr_assert_eq(rn_log_offset_for_time(log, INT64_MAX), rn_log_end_offset(log));
}

enum index_damage { MISSING, GARBAGE_FILE, GARBAGE_ENTRIES };

static void damage_index(const char *path, enum index_damage how, uint64_t seed)
{
    if (how == MISSING) {
        cr_assert_eq(unlink(path), 0, "unlink %s", path);
        return;
    }
    uint64_t len = th_file_size(path);
    uint64_t from = how == GARBAGE_FILE ? 0 : 64; /* 64: the header, left valid */
    if (len <= from)
        len = from + 96; /* an empty index: give it garbage entries */
    uint8_t junk[4096];
    cr_assert_leq(len - from, sizeof(junk));
    for (size_t i = 0; i < len - from; i++)
        junk[i] = (uint8_t)th_rand(&seed);
    th_write_at(path, from, junk, len - from);
}

/* Damage the .idx and/or .tix of every segment, reopen (cleanly closed
 * before, or abandoned), and check rebuild and lookups. */
static void index_case(enum index_damage how, bool idx, bool tix, bool clean)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    char what[96], p[4096];
    snprintf(what, sizeof(what), "damage %d idx=%d tix=%d clean=%d", how, idx, tix, clean);
    reset_work(&f);
    rn_log_open_info info;
    rn_log *log;
    if (clean) {
        log = open_work(&f, &info, what);
        cr_assert_eq(rn_log_close(log), 0);
    }
    /* Keep the good index files to compare the rebuilt ones with. */
    char good[4096];
    th_path(good, f.root, "good");
    th_copy_dir(f.work, good);
    for (unsigned s = 0; s < f.n_segs; s++) {
        if (idx)
            damage_index(th_seg_path(p, f.work, f.bases[s], ".idx"), how, s + 1);
        if (tix)
            damage_index(th_seg_path(p, f.work, f.bases[s], ".tix"), how, s + 100);
    }
    log = open_work(&f, &info, what);
    cr_assert_eq(info.clean, clean, "%s", what);
    cr_assert_eq(info.n_index_rebuilt, f.n_segs, "%s: %u indexes rebuilt of %u", what,
                 info.n_index_rebuilt, f.n_segs);
    cr_assert_eq(info.bytes_dropped, 0, "%s", what);
    expect_prefix(log, &f, f.want.n, what);
    expect_lookups(log, &f, what);
    cr_assert_eq(rn_log_close(log), 0);
    if (clean) {
        /* A rebuilt index is what appending the same batches produced. */
        for (unsigned s = 0; s < f.n_segs; s++) {
            static const char *const exts[] = {".idx", ".tix"};
            for (int e = 0; e < 2; e++) {
                char q[4096];
                size_t la, lb;
                uint8_t *a = th_read_file(th_seg_path(p, good, f.bases[s], exts[e]), &la);
                uint8_t *b = th_read_file(th_seg_path(q, f.work, f.bases[s], exts[e]), &lb);
                cr_assert(la == lb && memcmp(a, b, la) == 0,
                          "%s: rebuilt %020" PRId64 "%s differs (%zu vs %zu bytes)", what,
                          f.bases[s], exts[e], lb, la);
                free(a);
                free(b);
            }
        }
    }
    /* And once more with the repaired files, as the next start sees them. */
    log = open_work(&f, &info, what);
    cr_assert(info.clean);
    cr_assert_eq(info.n_index_rebuilt, 0, "%s: rebuilt again on the next start", what);
    expect_lookups(log, &f, what);
    rn_log_abandon(log);
    fixture_fini(&f);
}

// Missing .idx/.tix after a clean close are rebuilt bit for bit; offset and time lookups work.
Test(recovery, missing_indexes_clean)
{
    index_case(MISSING, true, true, true);
}

// Missing .idx and .tix files after a crash are rebuilt and lookups work.
Test(recovery, missing_indexes_crash)
{
    index_case(MISSING, true, true, false);
}

// Index files full of garbage (bad header) are rebuilt, after a clean shutdown or a crash.
Test(recovery, garbage_index_files)
{
    index_case(GARBAGE_FILE, true, true, true);
    index_case(GARBAGE_FILE, true, true, false);
}

// An offset index with a valid header but garbage entries is rebuilt.
Test(recovery, garbage_offset_index_entries)
{
    index_case(GARBAGE_ENTRIES, true, false, true);
    index_case(GARBAGE_ENTRIES, true, false, false);
}

// A time index with a valid header but garbage entries is rebuilt, so lookups by time stay right.
Test(recovery, garbage_time_index_entries)
{
    index_case(GARBAGE_ENTRIES, false, true, true);
    index_case(GARBAGE_ENTRIES, false, true, false);
}

/* ---- Clean shutdown marker ------------------------------------------------ */

// After a clean close the next open trusts the marker: no scan, nothing dropped, same log.
Test(recovery, clean_close_skips_scan)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    reset_work(&f);
    rn_log_open_info info;
    rn_log *log = open_work(&f, &info, "first open");
    cr_assert(!info.clean);
    cr_assert_gt(info.bytes_scanned, 0);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_work(&f, &info, "clean open");
    cr_assert(info.clean);
    cr_assert_eq(info.n_scanned, 0);
    cr_assert_eq(info.bytes_scanned, 0);
    cr_assert_eq(info.bytes_dropped, 0);
    cr_assert_eq(info.truncated_at, -1);
    cr_assert_eq(info.n_index_rebuilt, 0);
    cr_assert_eq(info.n_segments, f.n_segs);
    expect_prefix(log, &f, f.want.n, "clean open");
    /* The marker is gone while the log is open: a crash now is detected. */
    char p[4096];
    cr_assert(!th_exists(th_path(p, f.work, "clean-shutdown")));
    rn_log_abandon(log);
    log = open_work(&f, &info, "after crash");
    cr_assert(!info.clean);
    rn_log_abandon(log);
    fixture_fini(&f);
}

// A stale clean marker is not trusted: the torn tail written since it is found and cut.
Test(recovery, stale_clean_marker_not_trusted)
{
    fixture f;
    fixture_init(&f, 30, 4096, 512);
    reset_and_close_cleanly(&f);
    rn_log_open_info info;
    rn_log *log;
    char mp[4096], p[4096];
    size_t mlen;
    uint8_t *marker = th_read_file(th_path(mp, f.work, "clean-shutdown"), &mlen);

    /* One more small batch (same segment), then a crash that tears it. */
    log = open_work(&f, &info, "second open");
    unsigned n_segs = rn_log_segment_count(log);
    size_t len;
    uint8_t *b = th_batch_new(777, 1, 10, &len);
    int64_t leo = rn_log_end_offset(log);
    append_one(log, b, len, leo);
    cr_assert_eq(rn_log_segment_count(log), n_segs, "the extra batch should not roll");
    rn_log_abandon(log);
    th_write_file(mp, marker, mlen);
    size_t li = f.want.n - 1;
    uint64_t at = f.pos[li] + f.want.v[li].len;
    cr_assert_eq(truncate(work_log(&f, p, f.seg[li]), (off_t)(at + len / 2)), 0);

    log = open_work(&f, &info, "stale marker");
    cr_assert(!info.clean, "a stale marker was trusted");
    cr_assert_eq(info.bytes_dropped, th_count_nonzero(b, len / 2));
    cr_assert_eq(info.truncated_at, leo);
    expect_recovered(log, &f, f.want.n, "stale marker");
    rn_log_abandon(log);
    free(b);
    free(marker);
    fixture_fini(&f);
}

// A marker whose checksum fails is not trusted, so a torn last batch is still found and cut.
Test(recovery, corrupt_clean_marker_not_trusted)
{
    fixture f;
    fixture_init(&f, 30, 4096, 512);
    reset_and_close_cleanly(&f);
    rn_log_open_info info;
    rn_log *log;
    char mp[4096], p[4096];
    th_path(mp, f.work, "clean-shutdown");
    uint8_t v = th_byte_at(mp, 14) ^ 0x01; /* inside the payload */
    th_write_at(mp, 14, &v, 1);
    size_t li = f.want.n - 1;
    cr_assert_eq(truncate(work_log(&f, p, f.seg[li]), (off_t)(f.pos[li] + f.want.v[li].len - 5)),
                 0);
    log = open_work(&f, &info, "corrupt marker");
    cr_assert(!info.clean, "a corrupt marker was trusted");
    cr_assert_eq(info.truncated_at, f.want.v[li].base);
    expect_recovered(log, &f, li, "corrupt marker");
    rn_log_abandon(log);
    fixture_fini(&f);
}

/* ---- Rolls ---------------------------------------------------------------- */

// A crash right after a roll loses nothing and does not cut the old (still sparse) segment.
Test(recovery, crash_right_after_roll)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    size_t first = first_of_last_segment(&f);
    int64_t last_base = f.bases[f.n_segs - 1];
    int64_t prev_base = f.bases[f.n_segs - 2];
    char p[4096], q[4096];
    for (int variant = 0; variant < 3; variant++) {
        char what[64];
        snprintf(what, sizeof(what), "roll variant %d", variant);
        reset_work(&f);
        /* The old segment as it is before its seal: sized to segment_bytes. */
        cr_assert_eq(truncate(work_log(&f, p, prev_base), (off_t)f.cfg.segment_bytes), 0);
        /* The new segment as the roll left it: no batch yet. */
        cr_assert_eq(truncate(work_log(&f, p, last_base), 0), 0);
        if (variant > 0)
            cr_assert_eq(truncate(p, (off_t)f.cfg.segment_bytes), 0);
        /* Variants 0 and 1 keep the index files, whose entries point past
         * the (now lost) data; variant 2 crashed before they were made. */
        if (variant == 2) {
            cr_assert_eq(unlink(th_seg_path(q, f.work, last_base, ".idx")), 0);
            cr_assert_eq(unlink(th_seg_path(q, f.work, last_base, ".tix")), 0);
        }
        rn_log_open_info info;
        rn_log *log = open_work(&f, &info, what);
        cr_assert_eq(info.n_segments, f.n_segs, "%s", what);
        cr_assert_eq(info.n_segments_dropped, 0, "%s", what);
        cr_assert_eq(info.bytes_dropped, 0, "%s", what);
        cr_assert_eq(info.truncated_at, -1, "%s", what);
        expect_recovered(log, &f, first, what);
        cr_assert_eq(rn_log_close(log), 0);
        uint64_t prev_size = f.pos[first - 1] + f.want.v[first - 1].len;
        cr_assert_eq(th_file_size(work_log(&f, p, prev_base)), prev_size,
                     "%s: the old segment is sealed to its data", what);
    }
    fixture_fini(&f);
}

// A lost last batch of the old segment drops the new segment; appends continue in the old one.
Test(recovery, lost_tail_before_roll_drops_later_segment)
{
    fixture f;
    fixture_init(&f, 40, 4096, 512);
    size_t first = first_of_last_segment(&f);
    size_t lost = first - 1; /* the old segment's last batch */
    char p[4096];
    reset_work(&f);
    uint8_t junk[4096];
    uint64_t s = 7;
    for (size_t i = 0; i < f.want.v[lost].len; i++)
        junk[i] = (uint8_t)th_rand(&s);
    th_write_at(work_log(&f, p, f.seg[lost]), f.pos[lost], junk, f.want.v[lost].len);
    rn_log_open_info info;
    rn_log *log = open_work(&f, &info, "lost tail");
    cr_assert_eq(info.truncated_at, f.want.v[lost].base);
    cr_assert_eq(info.n_segments_dropped, 1);
    cr_assert_geq(info.bytes_dropped, th_count_nonzero(junk, f.want.v[lost].len));
    cr_assert(!th_exists(work_log(&f, p, f.bases[f.n_segs - 1])), "the later segment is deleted");
    expect_recovered(log, &f, lost, "lost tail");
    cr_assert_eq(rn_log_close(log), 0);
    log = open_work(&f, &info, "lost tail, reopened");
    cr_assert(info.clean);
    cr_assert_eq(rn_log_end_offset(log), f.want.v[lost].base + 3);
    rn_log_abandon(log);
    fixture_fini(&f);
}

// An older segment left unsealed by quick rolls is verified, cut at its damage, rest dropped.
Test(recovery, unsealed_older_segment_is_verified)
{
    fixture f;
    fixture_init(&f, 60, 4096, 512);
    cr_assert_geq(f.n_segs, 4);
    int64_t old_base = f.bases[f.n_segs - 3];
    size_t bad = 0; /* the last batch of that segment */
    for (size_t i = 0; i < f.want.n; i++)
        if (f.seg[i] == old_base)
            bad = i;
    char p[4096];
    reset_work(&f);
    /* As the roll left it: still sized to segment_bytes (never sealed), and
     * its last batch garbled by a power loss before its sync completed. */
    work_log(&f, p, old_base);
    cr_assert_eq(truncate(p, (off_t)f.cfg.segment_bytes), 0);
    uint64_t at = f.pos[bad] + f.want.v[bad].len - 10;
    uint8_t v = th_byte_at(p, at) ^ 0x5a;
    th_write_at(p, at, &v, 1);
    rn_log_open_info info;
    rn_log *log = open_work(&f, &info, "unsealed older segment");
    cr_assert_eq(info.truncated_at, f.want.v[bad].base, "truncated_at %" PRId64, info.truncated_at);
    cr_assert_eq(info.n_segments_dropped, 2);
    expect_recovered(log, &f, bad, "unsealed older segment");
    rn_log_abandon(log);
    fixture_fini(&f);
}

// Sealed older segments (synced before their seal) are trusted after a crash: not scanned.
Test(recovery, sealed_older_segment_is_not_scanned)
{
    fixture f;
    fixture_init(&f, 60, 4096, 512);
    cr_assert_geq(f.n_segs, 4);
    reset_work(&f);
    rn_log_open_info info;
    rn_log *log = open_work(&f, &info, "sealed older segments");
    cr_assert_eq(info.n_scanned, 1); /* only the active segment: sealed ones are synced */
    cr_assert_eq(info.truncated_at, -1);
    expect_prefix(log, &f, f.want.n, "sealed older segments");
    rn_log_abandon(log);
    fixture_fini(&f);
}

/* ---- Startup cost --------------------------------------------------------- */

// A clean start of many segments scans nothing; a crash start scans only the last two.
Test(recovery, startup_does_not_read_whole_log)
{
    fixture f;
    fixture_init(&f, 400, 4096, 512);
    cr_assert_geq(f.n_segs, 20);
    uint64_t total = 0, tail2 = 0;
    char p[4096];
    for (unsigned s = 0; s < f.n_segs; s++) {
        uint64_t size = 0;
        for (size_t i = 0; i < f.want.n; i++)
            if (f.seg[i] == f.bases[s])
                size += f.want.v[i].len;
        total += size;
        if (s + 2 >= f.n_segs)
            tail2 += size;
    }
    reset_work(&f);
    rn_log_open_info info;
    rn_log *log = open_work(&f, &info, "crash");
    cr_assert(!info.clean);
    cr_assert_leq(info.n_scanned, 2);
    cr_assert_leq(info.bytes_scanned, tail2, "scanned %" PRIu64 " of %" PRIu64 " bytes",
                  info.bytes_scanned, total);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_work(&f, &info, "clean");
    cr_assert(info.clean);
    cr_assert_eq(info.bytes_scanned, 0);
    cr_assert_eq(info.n_segments, f.n_segs);
    cr_assert_eq(rn_log_end_offset(log), f.want.v[f.want.n - 1].last + 1);
    rn_log_abandon(log);
    (void)p;
    fixture_fini(&f);
}

/* The stored length of a batch built by th_batch_new. */
static size_t rn_batch_size_of(const uint8_t *b)
{
    return 12 + (size_t)th_be32(b + RN_BATCH_OFF_LENGTH);
}

/* A batch of exactly len bytes (one record, its value sized to fit). */
static uint8_t *batch_of_size(uint64_t seed, size_t want)
{
    for (size_t v = 0; v < want; v++) {
        size_t len;
        uint8_t *b = th_batch_new(seed, 1, v, &len);
        if (len == want)
            return b;
        free(b);
        if (len > want)
            break;
    }
    for (size_t v = 0; v < want; v++) {
        size_t len;
        uint8_t *b = th_batch_new(seed, 2, v, &len);
        if (len == want)
            return b;
        free(b);
        if (len > want)
            break;
    }
    cr_assert_fail("no batch of %zu bytes", want);
    return NULL;
}

static void ack_count(void *arg, int err, int64_t base, int64_t last)
{
    (void)base;
    (void)last;
    cr_assert_eq(err, 0);
    (*(int *)arg)++;
}

// A rolled segment whose batches fill it exactly and whose seal a crash cut short has a file
// exactly as long as its data, like a sealed one: it must still be verified, not trusted.
Test(recovery, exactly_full_unsealed_segment_is_verified)
{
    char *root = th_tmpdir("exactfull");
    char dir[4096], copy[4096], p[4096];
    th_path(dir, root, "log");
    th_path(copy, root, "crashed");
    rn_io *io = th_io_new();
    rn_log_config cfg;
    th_config(&cfg, 4096, RN_FLUSH_NEVER);
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, dir, "full", &cfg, NULL), 0);
    int acked = 0;
    uint8_t *b[9];
    for (int i = 0; i < 7; i++)
        b[i] = batch_of_size((uint64_t)i, 500);
    b[7] = batch_of_size(7, 4096 - 7 * 500); /* the segment is now exactly full */
    b[8] = batch_of_size(8, 300);            /* rolls */
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(rn_log_append(log, b[i], rn_batch_size_of(b[i]), 1, ack_count, &acked), 0);
        while (acked < i + 1)
            cr_assert_geq(rn_io_run(io, 1), 0);
    }
    cr_assert_eq(rn_log_segment_count(log), 1);
    cr_assert_eq(rn_log_append(log, b[8], rn_batch_size_of(b[8]), 1, ack_count, &acked), 0);
    cr_assert_eq(rn_log_segment_count(log), 2, "the ninth batch rolls");
    /* The power goes now: the roll's fdatasync of segment 0 has not even been
     * submitted. The disk holds what the page cache holds, except the first
     * sector of segment 0, which never got there. */
    th_copy_dir(dir, copy);
    uint8_t zero[512] = {0};
    th_write_at(th_seg_path(p, copy, 0, ".log"), 0, zero, sizeof(zero));
    cr_assert_eq(th_file_size(p), 4096, "the file is exactly as long as its data");
    rn_log_abandon(log);
    rn_log_open_info info;
    cr_assert_eq(rn_log_open(&log, io, copy, "full", &cfg, &info), 0);
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got); /* before the fix: CORRUPT_INDEX at offset 0 */
    cr_assert_eq(got.n, 0, "%zu batches served from a segment whose first sector is lost", got.n);
    cr_assert_eq(rn_log_end_offset(log), 0);
    th_batches_free(&got);
    rn_log_abandon(log);
    for (int i = 0; i < 9; i++)
        free(b[i]);
    rn_io_free(io);
    th_rmrf(root);
    free(root);
}
