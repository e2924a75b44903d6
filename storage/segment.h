/*
 * segment.h — one segment of a partition log: the .log file and its indexes.
 *
 * Internal to storage/. The struct is open to log.c and recovery.c; the
 * public API (log.h) sees only the opaque rn_segment of slices.
 *
 * Positions and sizes:
 *   0 ........ size ........ end_pos ........ map_len
 *   |visible batches|writes in flight|sparse, unwritten|
 * Readers touch [0, size) only; writers own [size, end_pos).
 */
#ifndef RN_SEGMENT_H
#define RN_SEGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "storage/index_file.h"
#include "storage/log.h"
#include "storage/offload.h"

struct rn_segment {
    int refs; /* the log's own reference + readers' */
    int64_t base_offset;
    int fd; /* -1 once sealed: the mapping stays */
    uint8_t *map;
    size_t map_len;
    uint64_t size;       /* bytes of complete batches visible to readers */
    uint64_t end_pos;    /* bytes handed to writes (>= size) */
    uint64_t alloc_end;  /* fallocated up to here (preallocate_bytes) */
    int64_t next_offset; /* after the last visible batch */
    int64_t max_timestamp;
    uint32_t max_ts_rel;     /* relative offset of the batch holding it */
    int64_t created_ms;      /* for log.roll.ms */
    int64_t last_append_ms;  /* age for retention.ms when no batch has a timestamp */
    uint64_t last_index_pos; /* position of the last offset-index entry (0: none) */
    uint32_t index_interval;
    rn_index_file idx, tix;
    bool index_fresh;   /* an index file was missing or corrupt at open */
    unsigned n_pending; /* appends written to this segment, not yet visible */
    rn_io_op seal_op;   /* the asynchronous fdatasync that precedes a roll's seal */
    rn_offload_job seal_job; /* the seal itself, on the offload worker */
    rn_log *seal_log;
    bool seal_sync_inflight, seal_synced;
    bool seal_inflight; /* the worker seals it: sealed, fd and indexes are its */
    rn_offload_job dir_job; /* a roll's fsync of the directory naming it */
    bool dir_sync_inflight; /* until then no batch in it counts as durable */
    bool sealed;
    bool rolled;  /* no longer the active segment; sealed once n_pending == 0 */
    bool deleted; /* files unlinked; freed when refs drops to 0, on the worker */
    rn_offload_job free_job; /* that free (rn_segment_unref) */
    char *path;   /* dir/<20 digits> without extension */
};

/* Bytes the segment can hold: its mapping (log.segment.bytes when created). */
static inline uint64_t rn_segment_capacity(const rn_segment *seg)
{
    return seg->map_len;
}

/* Create a new, empty segment at base_offset in dir: .log sized to
 * segment_bytes (sparse) and mapped, fresh indexes. Errors: -errno. */
int rn_segment_create(rn_segment **out, const char *dir, int64_t base_offset,
                      const rn_log_config *cfg, int64_t now_ms);
/* The same without the fsync of dir that makes the new names durable: the
 * caller does it before anything in the segment is acknowledged as durable
 * (a roll: storage/log.c, on the offload worker). */
int rn_segment_create_unsynced(rn_segment **out, const char *dir, int64_t base_offset,
                               const rn_log_config *cfg, int64_t now_ms);

/* Open an existing segment. `active`: it will take appends (the .log is sized
 * up to segment_bytes). Descriptors stay open either way: the caller then
 * establishes size and next_offset with rn_segment_recover_tail (verifying) or
 * rn_segment_find_end (trusting), and seals an inactive segment, which closes
 * them. Index files that are missing or whose header does not verify are
 * recreated empty (seg->idx.n == 0) for find_end/recover_tail to rebuild.
 * Errors: -errno, -ENOMEM. */
int rn_segment_open(rn_segment **out, const char *dir, int64_t base_offset,
                    const rn_log_config *cfg, bool active);

/* Trusting open: walk batch headers (no CRC) from the last index entry to the
 * end of the data; rebuilds indexes (verifying) when missing or inconsistent.
 * Sets size, next_offset, max_timestamp. *rebuilt tells whether it did. */
int rn_segment_find_end(rn_segment *seg, uint32_t max_batch, bool *rebuilt);

/* Verifying open (after a crash): from the last index entry whose batch
 * verifies (or from 0), check every batch (bounds, offsets continuing, CRC) and
 * stop at the first bad byte, which is cut off (the file is truncated there and
 * regrown sparse for the active segment). Rebuilds indexes past that point.
 * *scanned gets bytes verified, *dropped the non-zero bytes cut.
 * Returns 0, or -errno when the repair itself fails. */
int rn_segment_recover_tail(rn_segment *seg, uint32_t max_batch, uint64_t *scanned,
                            uint64_t *dropped, bool *rebuilt);

/* Record that the batch h at pos became visible: size, next_offset, max
 * timestamp, and index entries every index_interval bytes. Errors from the
 * index files (-ENOSPC) are returned; the batch stays visible regardless:
 * recovery rebuilds indexes. */
int rn_segment_note_batch(rn_segment *seg, uint64_t pos, const rn_batch_header *h);

/* Position of the batch containing offset (< next_offset), via the index and a
 * short header walk. Errors: -RN_E_OFFSET_OUT_OF_RANGE, -RN_E_CORRUPT_INDEX. */
int rn_segment_find(const rn_segment *seg, int64_t offset, uint64_t *pos);

/* Position of the first batch with max_timestamp >= ts, with its base offset;
 * -ENOENT when none in this segment. */
int rn_segment_find_time(const rn_segment *seg, int64_t ts, int64_t *offset);

/* Called with each batch header by rn_segment_walk_headers; a negative return
 * stops the walk and is returned. */
typedef int (*rn_segment_header_cb)(void *arg, const rn_batch_header *h);

/* Call cb with the header of every visible batch from pos (a batch boundary,
 * e.g. from rn_segment_find) to size, in order. Reads the file with pread, a
 * window at a time, never through the mapping, so it maps no page of the
 * segment: for a header-only pass (rebuilding producer state after a restart)
 * this avoids faulting a whole segment into the caller's RSS. A sealed
 * segment's .log is reopened by path for the walk and closed again.
 * Errors: -RN_E_CORRUPT_SEGMENT (a header that does not parse below size),
 * -errno (open, pread), or cb's. Same thread as the segment's owner. */
int rn_segment_walk_headers(const rn_segment *seg, uint64_t pos, rn_segment_header_cb cb,
                            void *arg);

/* Cut the segment at pos (a batch boundary) whose first offset is next_offset:
 * data after it is zeroed (truncate, then regrow sparse when active) and
 * index entries at or after it are dropped. */
int rn_segment_truncate(rn_segment *seg, uint64_t pos, int64_t next_offset);

/* Drop the index entries (offset and time) at or past pos / next_offset,
 * zeroing them in the mapped files; the data is not touched. For a cut made
 * on the .log by other means (rn_log_truncate_to). */
void rn_segment_trim_indexes(rn_segment *seg, uint64_t pos, int64_t next_offset);

/* Seal: final time index entry, indexes and .log shrunk to size and synced,
 * descriptors closed. The mapping stays for readers. */
int rn_segment_seal(rn_segment *seg);

/* Unlink the segment's files (retention, truncation). Readers keep the mapping. */
int rn_segment_delete_files(rn_segment *seg);

/* Atomic: a fetch answered by another reactor releases its slices there. */
static inline void rn_segment_ref(rn_segment *seg)
{
    __atomic_add_fetch(&seg->refs, 1, __ATOMIC_RELAXED);
}
/* Drop a reference; the last one unmaps, closes and frees. */
void rn_segment_unref(rn_segment *seg);

/* "dir/00000000000000000042" + ext into buf. */
int rn_segment_path(char *buf, size_t len, const char *dir, int64_t base_offset, const char *ext);

#endif
