/*
 * recovery.c — finding where a segment's data ends, trusting or verifying.
 *
 * After a clean shutdown the indexes are right and the data is whole, so
 * opening walks batch headers only from the last offset-index entry to the end
 * (rn_segment_find_end): startup of a 10 GiB log reads a few KiB per segment.
 *
 * After a crash the tail of a segment may hold anything: a batch cut short by
 * the crash, pages the kernel never wrote (zeros), or garbage. Recovery
 * (rn_segment_recover_tail) checks every batch of the segment from its start
 * (length bounds, offsets continuing, CRC-32C) and cuts the file at the first
 * byte that does not verify: the active segment is truncated there and
 * regrown sparse, so the bytes past the cut read as zeros and can never come
 * back as data. It cannot start at the last index entry: index entries are
 * stores into a shared mapping that the kernel writes back in no order
 * relative to the .log pages, so after a power loss an entry can point at a
 * batch that verifies while a page before it never reached the disk (or
 * garbage can sit before it). Only what an fdatasync covered is known good
 * and no file records how far that went, so, as Kafka recovers whole segments
 * after its recovery point, the segments recovery looks at are verified
 * whole: the last two, and any older one that was never sealed (its file is
 * longer than its data, see open_segments in log.c). Startup after a crash
 * thus reads the segments written since the last completed seal, normally two.
 *
 * Invariants kept by both:
 *  1. On return [0, size) is whole, contiguous batches; next_offset follows
 *     the last of them; the indexes point only inside [0, size).
 *  2. A rebuilt index is bit-for-bit what appending the same batches would
 *     have produced (rn_segment_note_batch makes both).
 */
#include <errno.h>
#include <unistd.h>
#include <xxhash.h>

#include "protocol/errors.h"
#include "storage/offset_index.h"
#include "storage/segment.h"
#include "storage/sys.h"
#include "storage/time_index.h"

/* Reset the segment's view to just after offset-index entry k - 1 (or to the
 * start when k == 0), dropping later index entries, so a walk can go on from
 * there with rn_segment_note_batch. */
static void restart_at_entry(rn_segment *seg, uint32_t k)
{
    rn_index_file_trim(&seg->idx, k);
    seg->max_timestamp = -1;
    seg->max_ts_rel = 0;
    if (k == 0) {
        rn_index_file_trim(&seg->tix, 0);
        seg->size = seg->end_pos = seg->last_index_pos = 0;
        seg->next_offset = seg->base_offset;
        return;
    }
    rn_offset_entry e = rn_offset_index_get(&seg->idx, k - 1);
    uint32_t t = seg->tix.n;
    while (t > 0 && rn_time_index_get(&seg->tix, t - 1).rel_offset > e.rel_offset)
        t--;
    rn_index_file_trim(&seg->tix, t);
    if (t > 0) {
        rn_time_entry te = rn_time_index_get(&seg->tix, t - 1);
        seg->max_timestamp = te.timestamp;
        seg->max_ts_rel = te.rel_offset;
    }
    seg->size = seg->end_pos = seg->last_index_pos = e.pos;
    seg->next_offset = seg->base_offset + e.rel_offset;
}

/* Does a batch start at pos with the given base offset, whole inside the
 * mapping (and, when verify, with a good CRC)? Fills h. */
static bool batch_ok(const rn_segment *seg, uint64_t pos, int64_t want_base, uint32_t max_batch,
                     bool verify, rn_batch_header *h)
{
    if (pos >= seg->map_len || seg->map_len - pos < RN_BATCH_HEADER_LEN)
        return false;
    size_t avail = seg->map_len - pos;
    int rc = verify ? rn_batch_check(seg->map + pos, avail, max_batch, h)
                    : rn_batch_peek(seg->map + pos, avail, max_batch, h);
    if (rc < 0 || rn_batch_size(h) > avail)
        return false;
    return h->base_offset == want_base && h->last_offset_delta >= 0;
}

/* Walk batches from the current size; stops at the first that is not ok. */
static int walk(rn_segment *seg, uint32_t max_batch, bool verify, uint64_t *scanned)
{
    rn_batch_header h;
    uint64_t start = seg->size;
    int rc = 0;
    while (batch_ok(seg, seg->size, seg->next_offset, max_batch, verify, &h)) {
        int r = rn_segment_note_batch(seg, seg->size, &h);
        if (r < 0 && rc == 0)
            rc = r; /* index full/ENOSPC: keep walking, lookups still scan */
    }
    if (scanned)
        *scanned += seg->size - start;
    return rc;
}

/* Is the last index entry (and the time index) consistent with the data? */
static bool indexes_look_right(const rn_segment *seg, uint32_t max_batch)
{
    if (seg->index_fresh)
        return false;
    if (seg->idx.n == 0)
        return seg->tix.n <= 1;
    rn_offset_entry e = rn_offset_index_get(&seg->idx, seg->idx.n - 1);
    rn_batch_header h;
    if (!batch_ok(seg, e.pos, seg->base_offset + e.rel_offset, max_batch, false, &h))
        return false;
    if (seg->tix.n > 0) {
        /* The time index never points past the batches it has seen. */
        rn_time_entry t = rn_time_index_get(&seg->tix, seg->tix.n - 1);
        if (t.timestamp < 0)
            return false;
    }
    return true;
}

/* Does time-index entry t name a batch of the segment: one whose base offset
 * is base + t.rel_offset and whose max_timestamp is t.timestamp? Both columns
 * of every entry are copied from such a batch (rn_segment_note_batch), so an
 * entry that does not is garbage, which would also poison max_timestamp (and
 * with it retention by time). Needs size and next_offset established. */
static bool time_entry_matches(const rn_segment *seg, rn_time_entry t, uint32_t max_batch)
{
    uint64_t pos;
    rn_batch_header h;
    int64_t off = seg->base_offset + t.rel_offset;
    return rn_segment_find(seg, off, &pos) == 0 && batch_ok(seg, pos, off, max_batch, false, &h) &&
           h.max_timestamp == t.timestamp;
}

int rn_segment_find_end(rn_segment *seg, uint32_t max_batch, bool *rebuilt)
{
    if (indexes_look_right(seg, max_batch)) {
        uint32_t n_tix = seg->tix.n;
        rn_time_entry t_last =
            n_tix ? rn_time_index_get(&seg->tix, n_tix - 1) : (rn_time_entry){-1, 0};
        restart_at_entry(seg, seg->idx.n);
        /* Time entries are made with offset entries, so past the last offset
         * entry there may only be the seal's (the segment's largest
         * timestamp); the last one before it is checked like the last offset
         * entry: cheap sanity checks, as Kafka's, not a walk of the file. */
        uint32_t kept = seg->tix.n;
        rn_time_entry t = kept ? rn_time_index_get(&seg->tix, kept - 1) : (rn_time_entry){-1, 0};
        int rc = walk(seg, max_batch, false, NULL);
        bool seal_only =
            n_tix == kept || (n_tix == kept + 1 && t_last.timestamp == seg->max_timestamp &&
                              t_last.rel_offset == seg->max_ts_rel);
        if (seal_only && (kept == 0 || time_entry_matches(seg, t, max_batch))) {
            *rebuilt = false;
            return rc;
        }
    }
    *rebuilt = true;
    restart_at_entry(seg, 0);
    /* A rebuild reads the whole segment anyway: verify while at it. */
    return walk(seg, max_batch, true, NULL);
}

/* XXH3 of the first n entries of an index, to tell whether recovery rebuilt
 * the same entries or different ones. */
static uint64_t entries_hash(const rn_index_file *ix, uint32_t n)
{
    return n ? XXH3_64bits(rn_index_file_entry(ix, 0), (size_t)n * ix->entry_size) : 0;
}

/* Count non-zero bytes in [from, map_len): what a cut at `from` throws away.
 * Holes of a sparse file are skipped with SEEK_DATA/SEEK_HOLE. */
static uint64_t nonzero_after(const rn_segment *seg, uint64_t from)
{
    uint64_t n = 0, pos = from;
    while (pos < seg->map_len) {
        off_t data = rn_sys_lseek(seg->fd, (off_t)pos, SEEK_DATA);
        if (data < 0)
            break; /* -ENXIO: no data after pos */
        off_t hole = rn_sys_lseek(seg->fd, data, SEEK_HOLE);
        uint64_t end = hole < 0 || (uint64_t)hole > seg->map_len ? seg->map_len : (uint64_t)hole;
        for (uint64_t i = (uint64_t)data; i < end; i++)
            n += seg->map[i] != 0;
        if (end <= (uint64_t)data)
            break;
        pos = end;
    }
    return n;
}

int rn_segment_recover_tail(rn_segment *seg, uint32_t max_batch, uint64_t *scanned,
                            uint64_t *dropped, bool *rebuilt)
{
    /* Verify from the start (see the top of the file); the indexes are
     * rebuilt on the way. They count as rebuilt when the walk did not
     * reproduce the entries they had (one more time entry is the seal's). */
    uint32_t n_idx = seg->idx.n, n_tix = seg->tix.n;
    uint64_t idx_sum = entries_hash(&seg->idx, n_idx), tix_sum = entries_hash(&seg->tix, n_tix);
    uint64_t tix_sum_sealed = n_tix ? entries_hash(&seg->tix, n_tix - 1) : 0;
    rn_time_entry t_last = n_tix ? rn_time_index_get(&seg->tix, n_tix - 1) : (rn_time_entry){-1, 0};
    restart_at_entry(seg, 0);
    int rc = walk(seg, max_batch, true, scanned);
    (void)rc; /* an index append failing is not data loss; the cut below still matters */
    if (n_tix == seg->tix.n + 1 && t_last.timestamp == seg->max_timestamp &&
        t_last.rel_offset == seg->max_ts_rel) {
        n_tix--; /* the seal's entry: the walk does not make it, the next seal will */
        tix_sum = tix_sum_sealed;
    }
    *rebuilt = seg->index_fresh || seg->idx.n < n_idx || seg->tix.n < n_tix ||
               entries_hash(&seg->idx, n_idx) != idx_sum ||
               entries_hash(&seg->tix, n_tix) != tix_sum;

    uint64_t cut = seg->size;
    *dropped = nonzero_after(seg, cut);
    struct stat st;
    bool longer = rn_sys_fstat(seg->fd, &st) == 0 && (uint64_t)st.st_size > cut &&
                  (seg->rolled || seg->sealed);
    if (*dropped > 0 || longer) {
        int r = rn_segment_truncate(seg, cut, seg->next_offset);
        if (r < 0)
            return r;
    }
    return 0;
}
