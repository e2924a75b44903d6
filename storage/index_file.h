/*
 * index_file.h — a memory-mapped, append-only file of fixed-size entries
 * behind a checksummed header; the common part of the offset and time indexes.
 *
 * Internal to storage/. One owner (the segment); not thread-safe.
 */
#ifndef RN_INDEX_FILE_H
#define RN_INDEX_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RN_INDEX_HEADER_LEN 64

/* No descriptor is held between calls: the file is reopened by path for the
 * rare operations that need one (growing by a chunk, sealing), so an active
 * partition costs one descriptor, its .log's, instead of three — with the
 * default RLIMIT_NOFILE of a few tens of thousands that is the difference
 * between ~6,600 and ~20,000 partitions per broker. */
typedef struct rn_index_file {
    int fd;          /* always -1 between calls (see above); kept for callers' checks */
    uint8_t *map;    /* header + entries, map_len bytes reserved */
    size_t map_len;  /* address space reserved for the maximum entry count */
    size_t file_len; /* bytes allocated in the file (stores stay below this) */
    uint32_t entry_size;
    uint32_t n;   /* entries in use */
    uint32_t max; /* entries that fit in map_len */
    bool sealed;  /* appends refused (-ENOSPC); the mapping stays for lookups */
    int64_t base_offset;
    char *path; /* owned; for reopening */
} rn_index_file;

/* Open (creating if absent or when `create`) path as an index of entry_size
 * entries for the segment at base_offset, reserving room for max entries.
 * An existing file must have the right magic, version, entry size, base offset
 * and header checksum, else -RN_E_CORRUPT_INDEX (the caller rebuilds it with
 * create = true). Trailing all-zero entries (preallocated, never written) are
 * not counted. Returns 0 for an existing index, 1 for a new empty one (so the
 * caller knows to rebuild it from the log). Errors: -RN_E_CORRUPT_INDEX, -errno. */
int rn_index_file_open(rn_index_file *ix, const char *path, const char magic[8],
                       uint32_t entry_size, int64_t base_offset, uint32_t max, bool create);

/* Append one entry (entry_size bytes), growing the file with fallocate in
 * chunks so the store can never fault (each growth reopens the file by path).
 * Errors: -ENOSPC (index full, sealed, or disk full), -errno. */
int rn_index_file_append(rn_index_file *ix, const void *entry);

/* rn_index_file_append for the last entry before a seal: when the file has no
 * room it is extended by just the entry (pwrite), not by a fallocated chunk
 * that the seal would free again. Freeing blocks is a synchronous discard on
 * a file system mounted with -o discard (0.3 ms per index here: 8 s of a
 * 10,000-partition shutdown, each seal adding the first time-index entry).
 * Errors: those of rn_index_file_append. */
int rn_index_file_append_last(rn_index_file *ix, const void *entry);

/* Pointer to entry i (< n), valid while the index is open. */
static inline const uint8_t *rn_index_file_entry(const rn_index_file *ix, uint32_t i)
{
    return ix->map + RN_INDEX_HEADER_LEN + (size_t)i * ix->entry_size;
}

/* Forget entries from n on, zeroing them so a crash cannot resurrect them. */
void rn_index_file_trim(rn_index_file *ix, uint32_t n);

/* Shrink the file to its entries and sync it; appends are refused from then
 * on and the mapping stays for lookups. Errors: -errno (the index remains
 * usable, and a later seal may retry). */
int rn_index_file_seal(rn_index_file *ix);

/* rn_index_file_seal whose fdatasync is deferred inside a deferred-durability
 * window (storage/sys.h): for the active segment's seal at shutdown. */
int rn_index_file_seal_lazy(rn_index_file *ix);

/* Unmap and free. Returns the error of munmap. */
int rn_index_file_close(rn_index_file *ix);

#endif
