/*
 * test_segment.c — one segment on its own (suite `segment`), below rn_log.
 *
 * storage/segment.h's contract: create a sparse, mapped .log and fresh
 * indexes; batches written past `size` become visible through
 * rn_segment_note_batch; lookups by offset and time; sealing cuts the .log to
 * its real size; reopening finds the end (trusting) or verifies it and cuts a
 * torn tail (recover_tail); truncation drops data and index entries. Appends
 * here are plain pwrites at `size`, as log.c's io_uring writes are.
 */
#include "helpers.h"

#include <endian.h>

#include "storage/offset_index.h"
#include "storage/segment.h"

#define SEG_BYTES (1u << 20)
#define BASE      1000

static rn_log_config seg_cfg(void)
{
    rn_log_config c;
    rn_log_config_default(&c);
    c.segment_bytes = SEG_BYTES;
    c.index_interval_bytes = 512;
    return c;
}

/* Append one batch of n records (content from seed) at seg->size, numbered
 * from next_offset; returns its position. b (optional) keeps a copy. */
static uint64_t seg_append(rn_segment *seg, uint64_t seed, int n, th_batches *b)
{
    size_t len;
    uint8_t *data = th_batch_new(seed, n, 100, &len);
    uint64_t base = htobe64((uint64_t)seg->next_offset);
    memcpy(data + RN_BATCH_OFF_BASE_OFFSET, &base, 8);
    uint64_t pos = seg->size;
    cr_assert_eq(pwrite(seg->fd, data, len, (off_t)pos), (ssize_t)len);
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(data, len, 0, &h), 0);
    cr_assert_eq(rn_segment_note_batch(seg, pos, &h), 0);
    if (b)
        th_batches_push(b, data, len);
    free(data);
    return pos;
}

/* Every offset of every batch is found at its batch's position, whose bytes
 * in the mapping are the batch written; offsets outside are out of range. */
static void check_lookups(const rn_segment *seg, const th_batches *b)
{
    uint64_t pos = 0;
    for (size_t i = 0; i < b->n; i++) {
        for (int64_t o = b->v[i].base; o <= b->v[i].last; o++) {
            uint64_t got = UINT64_MAX;
            cr_assert_eq(rn_segment_find(seg, o, &got), 0, "offset %" PRId64, o);
            cr_assert_eq(got, pos, "offset %" PRId64 " at %" PRIu64 ", want %" PRIu64, o, got, pos);
        }
        cr_assert_arr_eq(seg->map + pos, b->v[i].data, b->v[i].len);
        pos += b->v[i].len;
    }
    cr_assert_eq(seg->size, pos);
    uint64_t p;
    cr_assert_eq(rn_segment_find(seg, seg->base_offset - 1, &p), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_segment_find(seg, seg->next_offset, &p), -RN_E_OFFSET_OUT_OF_RANGE);
}

/* One test's scratch directory and segment, with the batches appended to it
 * and where each went. */
typedef struct fixture {
    char *dir;
    rn_log_config cfg;
    rn_segment *seg; /* NULL once the test released it */
    th_batches b;
    uint64_t pos[64];
} fixture;

/* A fresh segment at base in a new directory, holding n batches: batch i has
 * content seed i + 1 and min_records + i % spread records (spread 0: exactly
 * min_records). */
static void fixture_init(fixture *f, int64_t base, int n, int min_records, int spread)
{
    memset(f, 0, sizeof(*f));
    f->dir = th_tmpdir("seg");
    f->cfg = seg_cfg();
    cr_assert_eq(rn_segment_create(&f->seg, f->dir, base, &f->cfg, 0), 0);
    cr_assert_leq(n, 64);
    for (int i = 0; i < n; i++)
        f->pos[i] =
            seg_append(f->seg, (uint64_t)i + 1, min_records + (spread ? i % spread : 0), &f->b);
}

static void fixture_fini(fixture *f)
{
    if (f->seg)
        rn_segment_unref(f->seg);
    th_batches_free(&f->b);
    th_rmrf(f->dir);
    free(f->dir);
}

/* Created, filled past several index intervals, looked up by offset and time,
 * sealed, and reopened: the trusting open finds the same end without a rebuild
 * and every lookup still answers the same. */
Test(segment, create_append_find_seal_reopen)
{
    fixture f;
    fixture_init(&f, BASE, 0, 0, 0);
    cr_assert_eq(f.seg->size, 0);
    cr_assert_eq(f.seg->next_offset, BASE);
    for (int i = 0; i < 40; i++)
        seg_append(f.seg, (uint64_t)i + 1, 1 + i % 4, &f.b);
    cr_assert_eq(f.seg->next_offset, f.b.v[f.b.n - 1].last + 1);
    cr_assert_gt(f.seg->idx.n, 3, "the index got no entries every 512 bytes");
    check_lookups(f.seg, &f.b);

    /* th_batch_new's timestamps grow with the seed: the first batch whose max
     * timestamp reaches that of batch 20 is batch 20. */
    int64_t ts = th_be64(f.b.v[20].data + RN_BATCH_OFF_MAX_TIMESTAMP), off;
    cr_assert_eq(rn_segment_find_time(f.seg, ts, &off), 0);
    cr_assert_eq(off, f.b.v[20].base);
    cr_assert_eq(rn_segment_find_time(f.seg, f.seg->max_timestamp + 1, &off), -ENOENT);

    uint64_t size = f.seg->size;
    int64_t next = f.seg->next_offset;
    cr_assert_eq(rn_segment_seal(f.seg), 0);
    cr_assert(f.seg->sealed);
    cr_assert_eq(f.seg->fd, -1);
    check_lookups(f.seg, &f.b); /* the mapping outlives the descriptor */
    char path[4096];
    cr_assert_eq(th_file_size(th_seg_path(path, f.dir, BASE, ".log")), size);
    rn_segment_unref(f.seg);

    cr_assert_eq(rn_segment_open(&f.seg, f.dir, BASE, &f.cfg, false), 0);
    bool rebuilt = true;
    cr_assert_eq(rn_segment_find_end(f.seg, f.cfg.max_batch_bytes, &rebuilt), 0);
    cr_assert_not(rebuilt);
    cr_assert_eq(f.seg->size, size);
    cr_assert_eq(f.seg->next_offset, next);
    check_lookups(f.seg, &f.b);
    fixture_fini(&f);
}

/* The active .log is as long as log.segment.bytes but holds blocks only for
 * what was written (sparse); sealing cuts its length to the data. */
Test(segment, sparse_length_vs_real_size)
{
    fixture f;
    fixture_init(&f, 0, 0, 0, 0);
    char path[4096];
    th_seg_path(path, f.dir, 0, ".log");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, SEG_BYTES);
    cr_assert_eq(rn_segment_capacity(f.seg), SEG_BYTES);
    cr_assert_lt((uint64_t)st.st_blocks * 512, SEG_BYTES / 4, "created file is not sparse");
    for (int i = 0; i < 5; i++)
        seg_append(f.seg, (uint64_t)i + 1, 2, NULL);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, SEG_BYTES);
    cr_assert_lt((uint64_t)st.st_blocks * 512, SEG_BYTES / 4);
    uint64_t size = f.seg->size;
    cr_assert_eq(rn_segment_seal(f.seg), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, size);
    fixture_fini(&f);
}

/* After a crash mid-append (half a batch, then garbage) the verifying open
 * cuts at the end of the last whole batch: size, next offset and lookups are
 * those of the whole batches, the cut bytes read as zeros and the file is
 * regrown sparse to log.segment.bytes. */
Test(segment, recover_cuts_torn_tail)
{
    fixture f;
    fixture_init(&f, BASE, 10, 3, 0);
    uint64_t size = f.seg->size;
    int64_t next = f.seg->next_offset;
    size_t len;
    uint8_t *torn = th_batch_new(99, 3, 100, &len);
    uint64_t nb = htobe64((uint64_t)next);
    memcpy(torn + RN_BATCH_OFF_BASE_OFFSET, &nb, 8);
    cr_assert_eq(pwrite(f.seg->fd, torn, len / 2, (off_t)size), (ssize_t)(len / 2));
    cr_assert_eq(pwrite(f.seg->fd, "garbage!", 8, (off_t)(size + len / 2 + 100)), 8);
    free(torn);
    rn_segment_unref(f.seg); /* a crash: no seal */

    cr_assert_eq(rn_segment_open(&f.seg, f.dir, BASE, &f.cfg, true), 0);
    uint64_t scanned = 0, dropped = 0;
    bool rebuilt;
    cr_assert_eq(
        rn_segment_recover_tail(f.seg, f.cfg.max_batch_bytes, &scanned, &dropped, &rebuilt), 0);
    cr_assert_eq(f.seg->size, size);
    cr_assert_eq(f.seg->next_offset, next);
    cr_assert_eq(scanned, size);
    cr_assert_gt(dropped, 0);
    cr_assert_eq(th_count_nonzero(f.seg->map + size, SEG_BYTES - size), 0, "cut bytes came back");
    char path[4096];
    cr_assert_eq(th_file_size(th_seg_path(path, f.dir, BASE, ".log")), SEG_BYTES);
    check_lookups(f.seg, &f.b);
    /* Appends continue at the cut. */
    seg_append(f.seg, 50, 1, &f.b);
    check_lookups(f.seg, &f.b);
    fixture_fini(&f);
}

/* A flipped byte inside batch 4 (its CRC fails) cuts the segment before it,
 * even though whole batches follow: nothing after a bad byte is trusted. */
Test(segment, recover_cuts_at_bad_crc)
{
    fixture f;
    fixture_init(&f, 0, 8, 2, 0);
    rn_segment_unref(f.seg);
    char path[4096];
    th_seg_path(path, f.dir, 0, ".log");
    uint8_t byte = th_byte_at(path, f.pos[4] + 70) ^ 0x40;
    th_write_at(path, f.pos[4] + 70, &byte, 1);

    cr_assert_eq(rn_segment_open(&f.seg, f.dir, 0, &f.cfg, true), 0);
    uint64_t scanned, dropped;
    bool rebuilt;
    cr_assert_eq(
        rn_segment_recover_tail(f.seg, f.cfg.max_batch_bytes, &scanned, &dropped, &rebuilt), 0);
    cr_assert_eq(f.seg->size, f.pos[4]);
    cr_assert_eq(f.seg->next_offset, f.b.v[4].base);
    cr_assert_gt(dropped, 0);
    f.b.n = 4; /* what is left; the rest is freed below by hand */
    check_lookups(f.seg, &f.b);
    f.b.n = 8;
    fixture_fini(&f);
}

/* Missing or damaged index files are recreated at open (index_fresh) and the
 * trusting open rebuilds them, after which lookups answer as before. */
Test(segment, missing_index_is_rebuilt)
{
    fixture f;
    fixture_init(&f, BASE, 30, 2, 0);
    cr_assert_eq(rn_segment_seal(f.seg), 0);
    rn_segment_unref(f.seg);
    char path[4096];
    cr_assert_eq(unlink(th_seg_path(path, f.dir, BASE, ".idx")), 0);

    cr_assert_eq(rn_segment_open(&f.seg, f.dir, BASE, &f.cfg, false), 0);
    cr_assert(f.seg->index_fresh);
    cr_assert_eq(f.seg->idx.n, 0);
    bool rebuilt = false;
    cr_assert_eq(rn_segment_find_end(f.seg, f.cfg.max_batch_bytes, &rebuilt), 0);
    cr_assert(rebuilt);
    cr_assert_gt(f.seg->idx.n, 3);
    check_lookups(f.seg, &f.b);
    fixture_fini(&f);
}

/* Opening a segment whose .log does not exist is -ENOENT and leaves nothing. */
Test(segment, open_missing_is_enoent)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg = NULL;
    cr_assert_eq(rn_segment_open(&seg, dir, 7, &cfg, false), -ENOENT);
    cr_assert_null(seg);
    int64_t bases[4];
    cr_assert_eq(th_list_segments(dir, bases, 4), 0);
    th_rmrf(dir);
    free(dir);
}

struct walk {
    unsigned n, stop_at;
    int64_t bases[64];
};

static int walk_cb(void *arg, const rn_batch_header *h)
{
    struct walk *w = arg;
    if (w->n == w->stop_at)
        return -1234;
    w->bases[w->n++] = h->base_offset;
    return 0;
}

/* walk_headers visits every visible batch from a boundary in order, on the
 * active and on a sealed segment, and a callback's negative return stops the
 * walk and is returned as is. */
Test(segment, walk_headers_in_order_and_stops)
{
    fixture f;
    fixture_init(&f, BASE, 12, 1, 3);
    for (int sealed = 0; sealed < 2; sealed++) {
        struct walk w = {.stop_at = UINT32_MAX};
        cr_assert_eq(rn_segment_walk_headers(f.seg, 0, walk_cb, &w), 0);
        cr_assert_eq(w.n, 12);
        for (unsigned i = 0; i < 12; i++)
            cr_assert_eq(w.bases[i], f.b.v[i].base);
        struct walk from5 = {.stop_at = UINT32_MAX};
        cr_assert_eq(rn_segment_walk_headers(f.seg, f.pos[5], walk_cb, &from5), 0);
        cr_assert_eq(from5.n, 7);
        cr_assert_eq(from5.bases[0], f.b.v[5].base);
        struct walk stop = {.stop_at = 3};
        cr_assert_eq(rn_segment_walk_headers(f.seg, 0, walk_cb, &stop), -1234);
        cr_assert_eq(stop.n, 3);
        if (!sealed)
            cr_assert_eq(rn_segment_seal(f.seg), 0);
    }
    fixture_fini(&f);
}

/* Truncating at a batch boundary drops the data (zeros from there) and the
 * index entries past it; appends then continue from the cut offset. */
Test(segment, truncate_drops_tail)
{
    fixture f;
    fixture_init(&f, BASE, 30, 2, 0);
    uint64_t cut = f.pos[10];
    uint32_t n_idx = f.seg->idx.n;
    cr_assert_eq(rn_segment_truncate(f.seg, cut, f.b.v[10].base), 0);
    cr_assert_eq(f.seg->size, cut);
    cr_assert_eq(f.seg->next_offset, f.b.v[10].base);
    cr_assert_lt(f.seg->idx.n, n_idx);
    for (uint32_t i = 0; i < f.seg->idx.n; i++)
        cr_assert_lt(rn_offset_index_get(&f.seg->idx, i).pos, cut);
    cr_assert_eq(th_count_nonzero(f.seg->map + cut, SEG_BYTES - cut), 0);
    th_batches kept = {0};
    for (int i = 0; i < 10; i++)
        th_batches_push(&kept, f.b.v[i].data, f.b.v[i].len);
    seg_append(f.seg, 77, 2, &kept);
    check_lookups(f.seg, &kept);
    th_batches_free(&kept);
    fixture_fini(&f);
}
