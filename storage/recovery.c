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
 * whole: the last ones, and any older one that was never sealed (its file is
 * longer than its data, see open_segments in log_open.c). Startup after a crash
 * thus reads the segments written since the last completed seal. A sealed
 * .log (cut to its size) implies its data and both indexes were synced
 * first (rn_segment_seal syncs the indexes, then cuts the .log), so only the
 * active segment strictly needs the full check; open_segments decides.
 *
 * Verifying reads the file with pread into a small buffer, not through the
 * segment's mapping. Measured on a 2-core VM, 1.1 GiB in page cache: CRC-32C
 * over the mapping ran at 1–2.3 GB/s, bound by page faults (one per 64 KiB
 * of fault-around), and left every page mapped, i.e. in the broker's RSS
 * (+1.1 GiB after a restart); pread of 2 MiB at a time into a buffer that
 * stays in cache, then CRC, ran at 10–13 GB/s and leaves nothing mapped.
 * SEEK_HOLE bounds the reads of a sparse active segment to its data, so a
 * small partition costs one page read, not a buffer of zeros; it is only a
 * hint: the walk goes on (a page at a time) while batches keep verifying.
 *
 * Invariants kept by both:
 *  1. On return [0, size) is whole, contiguous batches; next_offset follows
 *     the last of them; the indexes point only inside [0, size).
 *  2. A rebuilt index is bit-for-bit what appending the same batches would
 *     have produced (rn_segment_note_batch makes both).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "protocol/errors.h"
#include "storage/offset_index.h"
#include "storage/segment.h"
#include "storage/sys.h"
#include "storage/time_index.h"

/* Zero time entries from seg->tix.n up to n_was (dropped by a restart, kept
 * as bytes), so a crash cannot bring them back. */
static void drop_time_entries(rn_segment *seg, uint32_t n_was)
{
    uint32_t n = seg->tix.n;
    if (n_was > n) {
        seg->tix.n = n_was;
        rn_index_file_trim(&seg->tix, n);
    }
}

/* Reset the segment's view to just after offset-index entry k - 1 (or to the
 * start when k == 0), dropping later index entries, so a walk can go on from
 * there with rn_segment_note_batch. */
static void restart_at_entry_soft(rn_segment *seg, uint32_t k, bool zero_tix);

static void restart_at_entry(rn_segment *seg, uint32_t k)
{
    restart_at_entry_soft(seg, k, true);
}

/* restart_at_entry; with !zero_tix the dropped time entries keep their bytes
 * (the caller zeroes them with drop_time_entries if they go for good). */
static void restart_at_entry_soft(rn_segment *seg, uint32_t k, bool zero_tix)
{
    rn_index_file_trim(&seg->idx, k);
    seg->max_timestamp = -1;
    seg->max_ts_rel = 0;
    if (k == 0) {
        if (zero_tix)
            rn_index_file_trim(&seg->tix, 0);
        else
            seg->tix.n = 0;
        seg->size = seg->end_pos = seg->last_index_pos = 0;
        seg->next_offset = seg->base_offset;
        return;
    }
    rn_offset_entry e = rn_offset_index_get(&seg->idx, k - 1);
    uint32_t t = seg->tix.n;
    while (t > 0 && rn_time_index_get(&seg->tix, t - 1).rel_offset > e.rel_offset)
        t--;
    if (zero_tix)
        rn_index_file_trim(&seg->tix, t);
    else
        seg->tix.n = t;
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

/* ---- Reading the file for a walk ------------------------------------------- */

#define SCAN_BUF  (2u << 20)  /* verifying: batches up to this size are read; larger are mapped */
#define SCAN_PEEK (64u << 10) /* trusting: headers only, from the last index entry on */
#define SCAN_PAGE 4096u

typedef struct scan {
    int fd;
    bool verify;       /* CRC every batch, or headers only */
    size_t window;     /* bytes per read */
    uint8_t *buf;      /* the thread's scan_buf, or NULL */
    size_t used;       /* most bytes read into buf by one pread */
    uint64_t start;    /* file position of buf[0] */
    size_t len;        /* bytes of buf holding file data */
    uint64_t limit;    /* never read at or past this (the mapping's length) */
    uint64_t data_end; /* SEEK_HOLE: the data from the last lookup ends here */
    uint64_t hole_end; /* SEEK_DATA: [data_end, hole_end) is a hole */
} scan;

/* The read buffer: one per thread, made on first use and kept. A fresh one
 * per walk cost an mmap, page faults and an munmap (page tables) for every
 * partition opened, a third of a 10,000-partition start-up. After a walk
 * that read more than SCAN_KEEP into it, its pages are given back
 * (MADV_DONTNEED), so a big recovery leaves no 2 MiB in the RSS. */
#define SCAN_KEEP (64u << 10)
static __thread uint8_t *scan_buf;

static uint8_t *get_scan_buf(void)
{
    if (!scan_buf && rn_sys_mmap((void **)&scan_buf, SCAN_BUF, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) < 0)
        scan_buf = NULL; /* no buffer: walks go through the mapping, slower but the same */
    return scan_buf;
}

/* What a reported hole reads as: enough for a batch header to fail to parse. */
static const uint8_t hole_bytes[RN_BATCH_HEADER_LEN];

/* Make [pos, pos + need) readable at *p (need <= window or SCAN_BUF); *avail
 * gets the bytes available from pos, less than need only at the end of the
 * data. Errors: -errno of pread (an I/O error is not the end of the data). */
static int scan_at(scan *sc, uint64_t pos, size_t need, const uint8_t **p, size_t *avail)
{
    if (pos >= sc->start && pos + need <= sc->start + sc->len)
        goto have;
    if (pos >= sc->data_end) {
        /* No answer (no SEEK_HOLE here, or past EOF): treat it all as data. */
        off_t h = rn_sys_lseek(sc->fd, (off_t)pos, SEEK_HOLE);
        sc->data_end = sc->hole_end = h < 0 ? sc->limit : (uint64_t)h;
        if (h >= 0 && (uint64_t)h == pos) {
            off_t d = rn_sys_lseek(sc->fd, (off_t)pos, SEEK_DATA);
            sc->hole_end = d == -ENXIO ? sc->limit : d < 0 ? pos : (uint64_t)d;
        }
    }
    /* A hole reads as zeros (lseek's contract: a filesystem may report data
     * where there is a hole, never the reverse), and a batch cannot start
     * with a zero batch_length: when the hole covers one, no read is needed.
     * That is the end of an active segment, sparse up to segment.bytes:
     * reading it through the mapping made the kernel read ahead and zero a
     * few hundred KiB of page cache per partition at every start. */
    if (pos >= sc->data_end && sc->hole_end > pos && sc->hole_end - pos >= RN_BATCH_LOG_OVERHEAD) {
        *p = hole_bytes;
        *avail = sc->hole_end - pos < sizeof(hole_bytes) ? (size_t)(sc->hole_end - pos)
                                                         : sizeof(hole_bytes);
        return 0;
    }
    /* Up to the hole, rounded to whole pages; at a hole too short to tell, a page. */
    size_t want = sc->window;
    if (sc->data_end <= pos)
        want = SCAN_PAGE;
    else if (sc->data_end - pos < want)
        want = (size_t)((sc->data_end - pos + SCAN_PAGE - 1) / SCAN_PAGE * SCAN_PAGE);
    if (want < need)
        want = need;
    if (want > sc->limit - pos)
        want = (size_t)(sc->limit - pos);
    ssize_t n = rn_sys_pread_all(sc->fd, sc->buf, want, (off_t)pos);
    if (n < 0)
        return (int)n;
    if ((size_t)n > sc->used)
        sc->used = (size_t)n;
    sc->start = pos;
    sc->len = (size_t)n;
have:
    *p = sc->buf + (pos - sc->start);
    *avail = (size_t)(sc->start + sc->len - pos);
    return 0;
}

/* Is there a batch with the expected base offset at seg->size, whole inside
 * the mapping (and, when verifying, with a good CRC)? batch_ok, reading
 * through sc. Returns 1 yes, 0 no (the end of the data), or -errno when the
 * file could not be read. */
static int scan_batch(scan *sc, const rn_segment *seg, uint32_t max_batch, rn_batch_header *h)
{
    uint64_t pos = seg->size;
    if (pos >= seg->map_len || seg->map_len - pos < RN_BATCH_HEADER_LEN)
        return 0;
    const uint8_t *p;
    size_t avail;
    int rc = scan_at(sc, pos, RN_BATCH_HEADER_LEN, &p, &avail);
    if (rc < 0)
        return rc;
    if (rn_batch_peek(p, avail, max_batch, h) < 0)
        return 0;
    size_t size = rn_batch_size(h);
    if (size > seg->map_len - pos)
        return 0;
    if (sc->verify) {
        if (size <= SCAN_BUF) {
            rc = scan_at(sc, pos, size, &p, &avail);
            if (rc < 0)
                return rc;
            if (avail < size)
                return 0;
        } else {
            p = seg->map + pos; /* a batch larger than the buffer: checked in place */
        }
        if (rn_batch_check(p, size, max_batch, h) < 0)
            return 0;
    }
    return h->base_offset == seg->next_offset && h->last_offset_delta >= 0;
}

/* Walk batches from the current size; stops at the first that is not ok.
 * Returns 0 or an index append's error (the walk went on regardless).
 * *read_err gets -errno when a read failed: the walk stopped short of the
 * end of the data, so nothing may be cut on that account. */
static int walk(rn_segment *seg, uint32_t max_batch, bool verify, uint64_t *scanned, int *read_err)
{
    rn_batch_header h;
    uint64_t start = seg->size;
    int rc = 0, ok;
    scan sc = {.fd = seg->fd,
               .verify = verify,
               .window = verify ? SCAN_BUF : SCAN_PEEK,
               .limit = seg->map_len};
    sc.buf = seg->fd < 0 ? NULL : get_scan_buf();
    for (;;) {
        if (sc.buf)
            ok = scan_batch(&sc, seg, max_batch, &h);
        else
            ok = batch_ok(seg, seg->size, seg->next_offset, max_batch, verify, &h);
        if (ok <= 0)
            break;
        int r = rn_segment_note_batch(seg, seg->size, &h);
        if (r < 0 && rc == 0)
            rc = r; /* index full/ENOSPC: keep walking, lookups still scan */
    }
    if (sc.used > SCAN_KEEP)
        madvise(sc.buf, SCAN_BUF, MADV_DONTNEED);
    if (scanned)
        *scanned += seg->size - start;
    *read_err = ok < 0 ? ok : 0;
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
        restart_at_entry_soft(seg, seg->idx.n, false);
        /* The time entries restart_at_entry dropped (at most the seal's, when
         * all is well) are not zeroed yet: that is done below only if they
         * go for good. Zeroing the seal's entry at every clean start, to
         * write it again at every stop, dirtied a page of every partition. */
        /* Time entries are made with offset entries, so past the last offset
         * entry there may only be the seal's (the segment's largest
         * timestamp); the last one before it is checked like the last offset
         * entry: cheap sanity checks, as Kafka's, not a walk of the file. */
        uint32_t kept = seg->tix.n;
        rn_time_entry t = kept ? rn_time_index_get(&seg->tix, kept - 1) : (rn_time_entry){-1, 0};
        int read_err;
        int rc = walk(seg, max_batch, false, NULL, &read_err);
        if (read_err < 0)
            return read_err;
        bool seal_only =
            n_tix == kept || (n_tix == kept + 1 && t_last.timestamp == seg->max_timestamp &&
                              t_last.rel_offset == seg->max_ts_rel);
        if (seal_only && (kept == 0 || time_entry_matches(seg, t, max_batch))) {
            if (n_tix == kept + 1 && seg->tix.n == kept)
                seg->tix.n = n_tix; /* the seal's entry stays: it names a batch, as any entry */
            else
                drop_time_entries(seg, n_tix);
            *rebuilt = false;
            return rc;
        }
        drop_time_entries(seg, n_tix);
    }
    *rebuilt = true;
    restart_at_entry(seg, 0);
    /* A rebuild reads the whole segment anyway: verify while at it. */
    int read_err;
    int rc = walk(seg, max_batch, true, NULL, &read_err);
    return read_err < 0 ? read_err : rc;
}

/* XXH3 of the first n entries of an index, to tell whether recovery rebuilt
 * the same entries or different ones. */
static uint64_t entries_hash(const rn_index_file *ix, uint32_t n)
{
    return n ? XXH3_64bits(rn_index_file_entry(ix, 0), (size_t)n * ix->entry_size) : 0;
}

/* Count non-zero bytes in [from, map_len): what a cut at `from` throws away.
 * Holes of a sparse file are skipped with SEEK_DATA/SEEK_HOLE; the data is
 * read with pread, not through the mapping, which would leave the block
 * after every partition's last batch mapped (4 KiB of RSS per partition).
 * Returns the count, or -errno when the file could not be read. */
static int64_t nonzero_after(const rn_segment *seg, uint64_t from)
{
    uint8_t buf[4096];
    uint64_t n = 0, pos = from;
    while (pos < seg->map_len) {
        off_t data = rn_sys_lseek(seg->fd, (off_t)pos, SEEK_DATA);
        if (data < 0)
            break; /* -ENXIO: no data after pos */
        off_t hole = rn_sys_lseek(seg->fd, data, SEEK_HOLE);
        uint64_t end = hole < 0 || (uint64_t)hole > seg->map_len ? seg->map_len : (uint64_t)hole;
        if (end <= (uint64_t)data)
            break;
        for (uint64_t at = (uint64_t)data; at < end;) {
            size_t want = end - at < sizeof(buf) ? (size_t)(end - at) : sizeof(buf);
            ssize_t got = rn_sys_pread_all(seg->fd, buf, want, (off_t)at);
            if (got < 0)
                return got;
            if (got == 0)
                break; /* past EOF: nothing more to count */
            for (ssize_t i = 0; i < got; i++)
                n += buf[i] != 0;
            at += (uint64_t)got;
        }
        pos = end;
    }
    return (int64_t)n;
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
    int read_err;
    int rc = walk(seg, max_batch, true, scanned, &read_err);
    (void)rc; /* an index append failing is not data loss; the cut below still matters */
    if (read_err < 0)
        return read_err; /* unread is not bad: cut nothing */
    if (n_tix == seg->tix.n + 1 && t_last.timestamp == seg->max_timestamp &&
        t_last.rel_offset == seg->max_ts_rel) {
        n_tix--; /* the seal's entry: the walk does not make it, the next seal will */
        tix_sum = tix_sum_sealed;
    }
    *rebuilt = seg->index_fresh || seg->idx.n < n_idx || seg->tix.n < n_tix ||
               entries_hash(&seg->idx, n_idx) != idx_sum ||
               entries_hash(&seg->tix, n_tix) != tix_sum;

    uint64_t cut = seg->size;
    int64_t nz = nonzero_after(seg, cut);
    if (nz < 0)
        return (int)nz; /* could not read what would be cut: cut nothing */
    *dropped = (uint64_t)nz;
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
