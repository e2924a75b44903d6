/*
 * segment.c — one segment of a partition log: files, mapping, indexes, lookups.
 *
 * A segment is three files named by its base offset in 20 digits:
 *   <base>.log  record batches back to back, exactly as produced (DESIGN §3);
 *   <base>.idx  sparse offset index (storage/offset_index.c);
 *   <base>.tix  time index (storage/time_index.c).
 *
 * The active .log is sized to log.segment.bytes with ftruncate (sparse: no
 * blocks reserved) and mapped read-only once at that size. Appends are pwrites
 * (io_uring, storage/log.c), so a full disk is an ENOSPC completion, never a
 * SIGBUS on a store; readers only touch bytes below `size`, which are written.
 * An all-zero tail is the end of the data: a batch never starts with the zero
 * length a hole reads as, because batch_length >= 49.
 *
 * Invariants:
 *  1. [0, size) holds whole batches with contiguous offsets from base_offset
 *     to next_offset - 1; every offset-index entry points inside it at the
 *     start of a batch whose base offset is base_offset + rel_offset.
 *  2. An index entry is added when a batch starts at least index_interval
 *     bytes after the previous entry, so a lookup scans at most about one
 *     interval of batch headers.
 *  3. The mapping lives until the last reference is dropped, even after the
 *     files are unlinked (retention) or the descriptors closed (seal).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "protocol/errors.h"
#include "storage/offset_index.h"
#include "storage/segment.h"
#include "storage/sys.h"
#include "storage/time_index.h"

int rn_segment_path(char *buf, size_t len, const char *dir, int64_t base_offset, const char *ext)
{
    int n = snprintf(buf, len, "%s/%020" PRId64 "%s", dir, base_offset, ext);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Room for one index entry per interval of a full segment, plus slack for the
 * final time-index entry and segments larger than configured. */
static uint32_t index_capacity(uint64_t seg_bytes, uint32_t interval)
{
    uint64_t n = seg_bytes / (interval ? interval : 1) + 16;
    return n > UINT32_MAX / 16 ? UINT32_MAX / 16 : (uint32_t)n;
}

/* Open both indexes; one that is missing or fails its header check is
 * recreated empty and seg->index_fresh says so (the caller rebuilds it). */
static int open_indexes(rn_segment *seg, uint64_t seg_bytes, bool create)
{
    char p[4096];
    uint32_t cap = index_capacity(seg_bytes, seg->index_interval);
    snprintf(p, sizeof(p), "%s.idx", seg->path);
    int rc = rn_index_file_open(&seg->idx, p, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY,
                                seg->base_offset, cap, create);
    if (rc == -RN_E_CORRUPT_INDEX)
        rc = rn_index_file_open(&seg->idx, p, RN_OFFSET_INDEX_MAGIC, RN_OFFSET_INDEX_ENTRY,
                                seg->base_offset, cap, true);
    if (rc < 0)
        return rc;
    seg->index_fresh = rc == 1;
    snprintf(p, sizeof(p), "%s.tix", seg->path);
    rc = rn_index_file_open(&seg->tix, p, RN_TIME_INDEX_MAGIC, RN_TIME_INDEX_ENTRY,
                            seg->base_offset, cap, create);
    if (rc == -RN_E_CORRUPT_INDEX)
        rc = rn_index_file_open(&seg->tix, p, RN_TIME_INDEX_MAGIC, RN_TIME_INDEX_ENTRY,
                                seg->base_offset, cap, true);
    if (rc < 0) {
        rn_index_file_close(&seg->idx);
        return rc;
    }
    seg->index_fresh |= rc == 1;
    return 0;
}

static rn_segment *segment_alloc(const char *dir, int64_t base_offset, const rn_log_config *cfg)
{
    rn_segment *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->refs = 1;
    seg->fd = -1;
    seg->idx.fd = seg->tix.fd = -1;
    seg->base_offset = base_offset;
    seg->next_offset = base_offset;
    seg->max_timestamp = -1;
    seg->index_interval = cfg->index_interval_bytes ? cfg->index_interval_bytes : 4096;
    size_t len = strlen(dir) + 32;
    seg->path = malloc(len);
    if (!seg->path || rn_segment_path(seg->path, len, dir, base_offset, "") < 0) {
        free(seg->path);
        free(seg);
        return NULL;
    }
    return seg;
}

static void segment_free(rn_segment *seg)
{
    if (seg->map)
        rn_sys_munmap(seg->map, seg->map_len);
    rn_index_file_close(&seg->idx);
    rn_index_file_close(&seg->tix);
    if (seg->fd >= 0)
        rn_sys_close(seg->fd);
    free(seg->path);
    free(seg);
}

/* Map the .log read-only over map_len bytes (which may exceed the file while
 * it is sparse-extended; readers never go past size). */
static int map_log(rn_segment *seg, size_t len)
{
    seg->map_len = len;
    if (len == 0)
        return 0;
    return rn_sys_mmap((void **)&seg->map, len, PROT_READ, MAP_SHARED, seg->fd, 0);
}

static int create(rn_segment **out, const char *dir, int64_t base_offset,
                  const rn_log_config *cfg, int64_t now_ms, bool sync_dir)
{
    rn_segment *seg = segment_alloc(dir, base_offset, cfg);
    if (!seg)
        return -ENOMEM;
    char p[4096];
    int rc;
    snprintf(p, sizeof(p), "%s.log", seg->path);
    seg->fd = rn_sys_open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (seg->fd < 0) {
        rc = seg->fd;
        seg->fd = -1;
        goto fail;
    }
    rc = rn_sys_ftruncate(seg->fd, (off_t)cfg->segment_bytes);
    if (rc < 0)
        goto fail_after_open;
    rc = map_log(seg, cfg->segment_bytes);
    if (rc < 0)
        goto fail_after_open;
    rc = open_indexes(seg, cfg->segment_bytes, true);
    if (rc < 0)
        goto fail_after_open;
    /* The new names must survive a crash before anything in them is acked
     * (inside a deferred-durability window nothing is acked before its end). */
    rc = sync_dir ? rn_sys_fsync_dir_lazy(dir) : 0;
    if (rc < 0)
        goto fail_after_open;
    seg->created_ms = seg->last_append_ms = now_ms;
    *out = seg;
    return 0;

fail_after_open:
    /* Leave no half-made segment for the next open to trip on. */
    rn_sys_unlink(p);
    snprintf(p, sizeof(p), "%s.idx", seg->path);
    rn_sys_unlink(p);
    snprintf(p, sizeof(p), "%s.tix", seg->path);
    rn_sys_unlink(p);
fail:
    segment_free(seg);
    return rc;
}


int rn_segment_create(rn_segment **out, const char *dir, int64_t base_offset,
                      const rn_log_config *cfg, int64_t now_ms)
{
    return create(out, dir, base_offset, cfg, now_ms, true);
}

int rn_segment_create_unsynced(rn_segment **out, const char *dir, int64_t base_offset,
                               const rn_log_config *cfg, int64_t now_ms)
{
    return create(out, dir, base_offset, cfg, now_ms, false);
}

int rn_segment_open(rn_segment **out, const char *dir, int64_t base_offset,
                    const rn_log_config *cfg, bool active)
{
    rn_segment *seg = segment_alloc(dir, base_offset, cfg);
    if (!seg)
        return -ENOMEM;
    char p[4096];
    struct stat st;
    int rc;
    snprintf(p, sizeof(p), "%s.log", seg->path);
    seg->fd = rn_sys_open(p, O_RDWR, 0);
    if (seg->fd < 0) {
        rc = seg->fd;
        seg->fd = -1;
        goto fail;
    }
    rc = rn_sys_fstat(seg->fd, &st);
    if (rc < 0)
        goto fail;
    uint64_t file_len = (uint64_t)st.st_size;
    uint64_t len = file_len;
    if (active && len < cfg->segment_bytes) {
        rc = rn_sys_ftruncate(seg->fd, (off_t)cfg->segment_bytes);
        if (rc < 0)
            goto fail;
        len = cfg->segment_bytes;
    }
    if (len > UINT32_MAX) {
        rc = -RN_E_CORRUPT_SEGMENT; /* positions are u32 in the index */
        goto fail;
    }
    rc = map_log(seg, len);
    if (rc < 0)
        goto fail;
    rc = open_indexes(seg, len > cfg->segment_bytes ? len : cfg->segment_bytes, false);
    if (rc < 0)
        goto fail;
    seg->created_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    seg->last_append_ms = seg->created_ms; /* the file was last written then */
    *out = seg;
    return 0;

fail:
    segment_free(seg);
    return rc;
}

/* ---- Bookkeeping of visible batches --------------------------------------- */

int rn_segment_note_batch(rn_segment *seg, uint64_t pos, const rn_batch_header *h)
{
    uint32_t rel = (uint32_t)(h->base_offset - seg->base_offset);
    seg->size = pos + rn_batch_size(h);
    if (seg->end_pos < seg->size)
        seg->end_pos = seg->size;
    seg->next_offset = h->base_offset + h->last_offset_delta + 1;
    if (h->max_timestamp > seg->max_timestamp) {
        seg->max_timestamp = h->max_timestamp;
        seg->max_ts_rel = rel;
    }
    if (pos == 0 || pos - seg->last_index_pos < seg->index_interval)
        return 0;
    seg->last_index_pos = pos;
    int rc = rn_offset_index_append(&seg->idx, rel, (uint32_t)pos);
    if (rc == 0 && seg->max_timestamp >= 0)
        rc = rn_time_index_maybe_append(&seg->tix, seg->max_timestamp, seg->max_ts_rel);
    return rc;
}

/* Read the header of the batch at pos, which must lie wholly inside [0, limit). */
static int header_at(const rn_segment *seg, uint64_t pos, uint64_t limit, uint32_t max_batch,
                     rn_batch_header *h)
{
    if (pos >= limit || limit - pos < RN_BATCH_HEADER_LEN)
        return -RN_E_BATCH_TRUNCATED;
    int rc = rn_batch_peek(seg->map + pos, limit - pos, max_batch, h);
    if (rc < 0)
        return rc;
    if (rn_batch_size(h) > limit - pos)
        return -RN_E_BATCH_TRUNCATED;
    return 0;
}

int rn_segment_find(const rn_segment *seg, int64_t offset, uint64_t *pos_out)
{
    if (offset < seg->base_offset || offset >= seg->next_offset)
        return -RN_E_OFFSET_OUT_OF_RANGE;
    rn_offset_entry e = rn_offset_index_lookup(&seg->idx, (uint32_t)(offset - seg->base_offset));
    uint64_t pos = e.pos;
    int64_t want_base = seg->base_offset + e.rel_offset;
    rn_batch_header h;
    bool first = true;
    while (pos < seg->size) {
        if (header_at(seg, pos, seg->size, 0, &h) < 0)
            return -RN_E_CORRUPT_INDEX;
        if (first && h.base_offset != want_base)
            return -RN_E_CORRUPT_INDEX;
        first = false;
        if (offset <= h.base_offset + h.last_offset_delta) {
            *pos_out = pos;
            return 0;
        }
        pos += rn_batch_size(&h);
    }
    return -RN_E_CORRUPT_INDEX; /* offset < next_offset yet not found: index lies */
}

int rn_segment_find_time(const rn_segment *seg, int64_t ts, int64_t *offset)
{
    if (seg->max_timestamp < ts || seg->size == 0)
        return -ENOENT;
    uint32_t rel = rn_time_index_lookup(&seg->tix, ts);
    uint64_t pos;
    int rc = rn_segment_find(seg, seg->base_offset + rel, &pos);
    if (rc < 0)
        return rc;
    rn_batch_header h;
    while (pos < seg->size) {
        if (header_at(seg, pos, seg->size, 0, &h) < 0)
            return -RN_E_CORRUPT_SEGMENT;
        if (h.max_timestamp >= ts) {
            *offset = h.base_offset;
            return 0;
        }
        pos += rn_batch_size(&h);
    }
    return -ENOENT;
}

/* Reading windows for rn_segment_walk_headers: a big one while batches are
 * small (one pread covers many headers), a page once they are large (so a
 * walk over 128 KiB batches copies 4 KiB per header, not the data). */
#define WALK_WINDOW (64u << 10)
#define WALK_PAGE   4096u

int rn_segment_walk_headers(const rn_segment *seg, uint64_t pos, rn_segment_header_cb cb, void *arg)
{
    int fd = seg->fd, rc = 0;
    if (fd < 0) {
        char p[4096];
        snprintf(p, sizeof(p), "%s.log", seg->path);
        fd = rn_sys_open(p, O_RDONLY, 0);
        if (fd < 0)
            return fd;
    }
    uint8_t *buf = malloc(WALK_WINDOW);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t start = 0, end = seg->size;
    size_t len = 0, want = WALK_WINDOW;
    while (pos < end) {
        if (end - pos < RN_BATCH_HEADER_LEN) {
            rc = -RN_E_CORRUPT_SEGMENT;
            break;
        }
        if (pos < start || pos + RN_BATCH_HEADER_LEN > start + len) {
            size_t n = end - pos < want ? (size_t)(end - pos) : want;
            ssize_t got = rn_sys_pread_all(fd, buf, n, (off_t)pos);
            if (got < 0) {
                rc = (int)got;
                break;
            }
            start = pos;
            len = (size_t)got;
            if (len < RN_BATCH_HEADER_LEN) {
                rc = -RN_E_CORRUPT_SEGMENT; /* the file is shorter than size says */
                break;
            }
        }
        rn_batch_header h;
        if (rn_batch_peek(buf + (pos - start), start + len - pos, 0, &h) < 0 ||
            rn_batch_size(&h) > end - pos) {
            rc = -RN_E_CORRUPT_SEGMENT;
            break;
        }
        rc = cb(arg, &h);
        if (rc < 0)
            break;
        want = rn_batch_size(&h) >= WALK_WINDOW / 4 ? WALK_PAGE : WALK_WINDOW;
        pos += rn_batch_size(&h);
    }
    free(buf);
out:
    if (fd != seg->fd)
        rn_sys_close(fd);
    return rc;
}

/* ---- Changing the files --------------------------------------------------- */

void rn_segment_trim_indexes(rn_segment *seg, uint64_t pos, int64_t next_offset)
{
    uint32_t n = seg->idx.n;
    while (n > 0 && rn_offset_index_get(&seg->idx, n - 1).pos >= pos)
        n--;
    rn_index_file_trim(&seg->idx, n);
    seg->last_index_pos = n ? rn_offset_index_get(&seg->idx, n - 1).pos : 0;
    uint32_t rel_end = (uint32_t)(next_offset - seg->base_offset);
    uint32_t t = seg->tix.n;
    while (t > 0 && rn_time_index_get(&seg->tix, t - 1).rel_offset >= rel_end)
        t--;
    rn_index_file_trim(&seg->tix, t);
}

int rn_segment_truncate(rn_segment *seg, uint64_t pos, int64_t next_offset)
{
    if (seg->fd < 0)
        return -EBADF;
    rn_segment_trim_indexes(seg, pos, next_offset);
    /* Cut, then (for the active segment) regrow sparse: the tail reads as zeros,
     * which is the end of data, so nothing past pos can come back. */
    int rc = rn_sys_ftruncate(seg->fd, (off_t)pos);
    if (rc == 0 && !seg->sealed && !seg->rolled && seg->map_len > pos)
        rc = rn_sys_ftruncate(seg->fd, (off_t)seg->map_len);
    if (rc < 0)
        return rc;
    seg->size = seg->end_pos = pos;
    if (seg->alloc_end > pos)
        seg->alloc_end = pos; /* the cut freed the blocks preallocated past it */
    seg->next_offset = next_offset;
    /* The largest timestamp may have been cut: recompute from what is left. */
    seg->max_timestamp = -1;
    seg->max_ts_rel = 0;
    uint64_t p = 0;
    rn_batch_header h;
    uint32_t t = seg->tix.n;
    if (t > 0) {
        rn_time_entry e = rn_time_index_get(&seg->tix, t - 1);
        seg->max_timestamp = e.timestamp;
        seg->max_ts_rel = e.rel_offset;
        p = seg->last_index_pos;
    }
    while (p < pos && header_at(seg, p, pos, 0, &h) == 0) {
        if (h.max_timestamp > seg->max_timestamp) {
            seg->max_timestamp = h.max_timestamp;
            seg->max_ts_rel = (uint32_t)(h.base_offset - seg->base_offset);
        }
        p += rn_batch_size(&h);
    }
    return 0;
}

int rn_segment_seal(rn_segment *seg)
{
    if (seg->sealed)
        return 0;
    /* The time index only speeds lookups: without the seal's entry a lookup
     * scans, and recovery accepts a time index that lacks it. */
    if (seg->max_timestamp >= 0)
        (void)rn_time_index_append_seal(&seg->tix, seg->max_timestamp, seg->max_ts_rel);
    /* Indexes first, the .log last: a .log cut to its size then means the
     * whole segment is on disk — its data (synced before the seal, see
     * rn__log_seal_rolled in log_flush.c, and again below) and both indexes — so recovery
     * after a crash can trust a sealed segment and verify only what is not.
     * That order needs real syncs for a rolled segment. The active one is
     * sealed only by a clean close, where the syncs may wait for the end of
     * a deferred-durability window (storage/sys.h): until the clean-shutdown
     * marker is on disk, recovery verifies the last segment anyway. */
    bool lazy = !seg->rolled;
    int rc = lazy ? rn_index_file_seal_lazy(&seg->idx) : rn_index_file_seal(&seg->idx);
    if (rc == 0)
        rc = lazy ? rn_index_file_seal_lazy(&seg->tix) : rn_index_file_seal(&seg->tix);
    if (rc < 0)
        return rc; /* the .log stays long (not sealed): the caller may retry or fail the log */
    if (seg->fd >= 0) {
        rc = rn_sys_ftruncate(seg->fd, (off_t)seg->size);
        if (rc == 0)
            rc = lazy ? rn_sys_fdatasync_lazy(seg->fd) : rn_sys_fdatasync(seg->fd);
        if (rc < 0)
            return rc; /* keep the descriptor: the caller may retry or fail the log */
        rc = rn_sys_close(seg->fd);
        seg->fd = -1;
    }
    seg->sealed = true;
    return rc;
}

int rn_segment_delete_files(rn_segment *seg)
{
    static const char *const exts[] = {".log", ".idx", ".tix"};
    char p[4096];
    int rc = 0;
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", seg->path, exts[i]);
        int r = rn_sys_unlink(p);
        if (r < 0 && r != -ENOENT && rc == 0)
            rc = r;
    }
    seg->deleted = true;
    return rc;
}

static int free_job(void *arg)
{
    segment_free(arg);
    return 0;
}

/* The last reference to an unlinked segment gives the file's blocks back:
 * its munmap and close end in ext4_evict_inode, which drops the pages and
 * frees (with `discard`, discards) every block. 0.24 s a GiB on this
 * machine's disk (docs/benchmarks.md, fourth round), and retention deletes a
 * segment at every roll once it is reached: on the reactor that would hold
 * every partition on it. So that free goes to the offload worker. A segment
 * still named is freed here: closing it frees nothing on disk. */
void rn_segment_unref(rn_segment *seg)
{
    if (!seg || __atomic_sub_fetch(&seg->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    if (seg->deleted)
        rn_offload_detached(&seg->free_job, free_job, seg);
    else
        segment_free(seg);
}
