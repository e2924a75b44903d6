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

/* Created, filled past several index intervals, looked up by offset and time,
 * sealed, and reopened: the trusting open finds the same end without a rebuild
 * and every lookup still answers the same. */
Test(segment, create_append_find_seal_reopen)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, BASE, &cfg, 0), 0);
    cr_assert_eq(seg->size, 0);
    cr_assert_eq(seg->next_offset, BASE);
    th_batches b = {0};
    for (int i = 0; i < 40; i++)
        seg_append(seg, (uint64_t)i + 1, 1 + i % 4, &b);
    cr_assert_eq(seg->next_offset, b.v[b.n - 1].last + 1);
    cr_assert_gt(seg->idx.n, 3, "the index got no entries every 512 bytes");
    check_lookups(seg, &b);

    /* th_batch_new's timestamps grow with the seed: the first batch whose max
     * timestamp reaches that of batch 20 is batch 20. */
    int64_t ts = th_be64(b.v[20].data + RN_BATCH_OFF_MAX_TIMESTAMP), off;
    cr_assert_eq(rn_segment_find_time(seg, ts, &off), 0);
    cr_assert_eq(off, b.v[20].base);
    cr_assert_eq(rn_segment_find_time(seg, seg->max_timestamp + 1, &off), -ENOENT);

    uint64_t size = seg->size;
    int64_t next = seg->next_offset;
    cr_assert_eq(rn_segment_seal(seg), 0);
    cr_assert(seg->sealed);
    cr_assert_eq(seg->fd, -1);
    check_lookups(seg, &b); /* the mapping outlives the descriptor */
    char path[4096];
    cr_assert_eq(th_file_size(th_seg_path(path, dir, BASE, ".log")), size);
    rn_segment_unref(seg);

    cr_assert_eq(rn_segment_open(&seg, dir, BASE, &cfg, false), 0);
    bool rebuilt = true;
    cr_assert_eq(rn_segment_find_end(seg, cfg.max_batch_bytes, &rebuilt), 0);
    cr_assert_not(rebuilt);
    cr_assert_eq(seg->size, size);
    cr_assert_eq(seg->next_offset, next);
    check_lookups(seg, &b);
    rn_segment_unref(seg);
    th_batches_free(&b);
    th_rmrf(dir);
    free(dir);
}

/* The active .log is as long as log.segment.bytes but holds blocks only for
 * what was written (sparse); sealing cuts its length to the data. */
Test(segment, sparse_length_vs_real_size)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, 0, &cfg, 0), 0);
    char path[4096];
    th_seg_path(path, dir, 0, ".log");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, SEG_BYTES);
    cr_assert_eq(rn_segment_capacity(seg), SEG_BYTES);
    cr_assert_lt((uint64_t)st.st_blocks * 512, SEG_BYTES / 4, "created file is not sparse");
    for (int i = 0; i < 5; i++)
        seg_append(seg, (uint64_t)i + 1, 2, NULL);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, SEG_BYTES);
    cr_assert_lt((uint64_t)st.st_blocks * 512, SEG_BYTES / 4);
    uint64_t size = seg->size;
    cr_assert_eq(rn_segment_seal(seg), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, size);
    rn_segment_unref(seg);
    th_rmrf(dir);
    free(dir);
}

/* After a crash mid-append (half a batch, then garbage) the verifying open
 * cuts at the end of the last whole batch: size, next offset and lookups are
 * those of the whole batches, the cut bytes read as zeros and the file is
 * regrown sparse to log.segment.bytes. */
Test(segment, recover_cuts_torn_tail)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, BASE, &cfg, 0), 0);
    th_batches b = {0};
    for (int i = 0; i < 10; i++)
        seg_append(seg, (uint64_t)i + 1, 3, &b);
    uint64_t size = seg->size;
    int64_t next = seg->next_offset;
    size_t len;
    uint8_t *torn = th_batch_new(99, 3, 100, &len);
    uint64_t nb = htobe64((uint64_t)next);
    memcpy(torn + RN_BATCH_OFF_BASE_OFFSET, &nb, 8);
    cr_assert_eq(pwrite(seg->fd, torn, len / 2, (off_t)size), (ssize_t)(len / 2));
    cr_assert_eq(pwrite(seg->fd, "garbage!", 8, (off_t)(size + len / 2 + 100)), 8);
    free(torn);
    rn_segment_unref(seg); /* a crash: no seal */

    cr_assert_eq(rn_segment_open(&seg, dir, BASE, &cfg, true), 0);
    uint64_t scanned = 0, dropped = 0;
    bool rebuilt;
    cr_assert_eq(rn_segment_recover_tail(seg, cfg.max_batch_bytes, &scanned, &dropped, &rebuilt),
                 0);
    cr_assert_eq(seg->size, size);
    cr_assert_eq(seg->next_offset, next);
    cr_assert_eq(scanned, size);
    cr_assert_gt(dropped, 0);
    cr_assert_eq(th_count_nonzero(seg->map + size, SEG_BYTES - size), 0, "cut bytes came back");
    char path[4096];
    cr_assert_eq(th_file_size(th_seg_path(path, dir, BASE, ".log")), SEG_BYTES);
    check_lookups(seg, &b);
    /* Appends continue at the cut. */
    seg_append(seg, 50, 1, &b);
    check_lookups(seg, &b);
    rn_segment_unref(seg);
    th_batches_free(&b);
    th_rmrf(dir);
    free(dir);
}

/* A flipped byte inside batch 4 (its CRC fails) cuts the segment before it,
 * even though whole batches follow: nothing after a bad byte is trusted. */
Test(segment, recover_cuts_at_bad_crc)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, 0, &cfg, 0), 0);
    th_batches b = {0};
    uint64_t pos4 = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t p = seg_append(seg, (uint64_t)i + 1, 2, &b);
        if (i == 4)
            pos4 = p;
    }
    rn_segment_unref(seg);
    char path[4096];
    th_seg_path(path, dir, 0, ".log");
    uint8_t byte = th_byte_at(path, pos4 + 70) ^ 0x40;
    th_write_at(path, pos4 + 70, &byte, 1);

    cr_assert_eq(rn_segment_open(&seg, dir, 0, &cfg, true), 0);
    uint64_t scanned, dropped;
    bool rebuilt;
    cr_assert_eq(rn_segment_recover_tail(seg, cfg.max_batch_bytes, &scanned, &dropped, &rebuilt),
                 0);
    cr_assert_eq(seg->size, pos4);
    cr_assert_eq(seg->next_offset, b.v[4].base);
    cr_assert_gt(dropped, 0);
    b.n = 4; /* what is left; the rest is freed below by hand */
    check_lookups(seg, &b);
    b.n = 8;
    rn_segment_unref(seg);
    th_batches_free(&b);
    th_rmrf(dir);
    free(dir);
}

/* Missing or damaged index files are recreated at open (index_fresh) and the
 * trusting open rebuilds them, after which lookups answer as before. */
Test(segment, missing_index_is_rebuilt)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, BASE, &cfg, 0), 0);
    th_batches b = {0};
    for (int i = 0; i < 30; i++)
        seg_append(seg, (uint64_t)i + 1, 2, &b);
    cr_assert_eq(rn_segment_seal(seg), 0);
    rn_segment_unref(seg);
    char path[4096];
    cr_assert_eq(unlink(th_seg_path(path, dir, BASE, ".idx")), 0);

    cr_assert_eq(rn_segment_open(&seg, dir, BASE, &cfg, false), 0);
    cr_assert(seg->index_fresh);
    cr_assert_eq(seg->idx.n, 0);
    bool rebuilt = false;
    cr_assert_eq(rn_segment_find_end(seg, cfg.max_batch_bytes, &rebuilt), 0);
    cr_assert(rebuilt);
    cr_assert_gt(seg->idx.n, 3);
    check_lookups(seg, &b);
    rn_segment_unref(seg);
    th_batches_free(&b);
    th_rmrf(dir);
    free(dir);
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
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, BASE, &cfg, 0), 0);
    th_batches b = {0};
    uint64_t pos5 = 0;
    for (int i = 0; i < 12; i++) {
        uint64_t p = seg_append(seg, (uint64_t)i + 1, 1 + i % 3, &b);
        if (i == 5)
            pos5 = p;
    }
    for (int sealed = 0; sealed < 2; sealed++) {
        struct walk w = {.stop_at = UINT32_MAX};
        cr_assert_eq(rn_segment_walk_headers(seg, 0, walk_cb, &w), 0);
        cr_assert_eq(w.n, 12);
        for (unsigned i = 0; i < 12; i++)
            cr_assert_eq(w.bases[i], b.v[i].base);
        struct walk from5 = {.stop_at = UINT32_MAX};
        cr_assert_eq(rn_segment_walk_headers(seg, pos5, walk_cb, &from5), 0);
        cr_assert_eq(from5.n, 7);
        cr_assert_eq(from5.bases[0], b.v[5].base);
        struct walk stop = {.stop_at = 3};
        cr_assert_eq(rn_segment_walk_headers(seg, 0, walk_cb, &stop), -1234);
        cr_assert_eq(stop.n, 3);
        if (!sealed)
            cr_assert_eq(rn_segment_seal(seg), 0);
    }
    rn_segment_unref(seg);
    th_batches_free(&b);
    th_rmrf(dir);
    free(dir);
}

/* Truncating at a batch boundary drops the data (zeros from there) and the
 * index entries past it; appends then continue from the cut offset. */
Test(segment, truncate_drops_tail)
{
    char *dir = th_tmpdir("seg");
    rn_log_config cfg = seg_cfg();
    rn_segment *seg;
    cr_assert_eq(rn_segment_create(&seg, dir, BASE, &cfg, 0), 0);
    th_batches b = {0};
    uint64_t cut = 0;
    for (int i = 0; i < 30; i++) {
        uint64_t p = seg_append(seg, (uint64_t)i + 1, 2, &b);
        if (i == 10)
            cut = p;
    }
    uint32_t n_idx = seg->idx.n;
    cr_assert_eq(rn_segment_truncate(seg, cut, b.v[10].base), 0);
    cr_assert_eq(seg->size, cut);
    cr_assert_eq(seg->next_offset, b.v[10].base);
    cr_assert_lt(seg->idx.n, n_idx);
    for (uint32_t i = 0; i < seg->idx.n; i++)
        cr_assert_lt(rn_offset_index_get(&seg->idx, i).pos, cut);
    cr_assert_eq(th_count_nonzero(seg->map + cut, SEG_BYTES - cut), 0);
    th_batches kept = {0};
    for (int i = 0; i < 10; i++)
        th_batches_push(&kept, b.v[i].data, b.v[i].len);
    seg_append(seg, 77, 2, &kept);
    check_lookups(seg, &kept);
    rn_segment_unref(seg);
    th_batches_free(&b);
    th_batches_free(&kept);
    th_rmrf(dir);
    free(dir);
}
