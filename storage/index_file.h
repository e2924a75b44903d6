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

typedef struct rn_index_file {
    int fd;            /* -1 once closed or when opened read-only and released */
    uint8_t *map;      /* header + entries, map_len bytes reserved */
    size_t map_len;    /* address space reserved for the maximum entry count */
    size_t file_len;   /* bytes allocated in the file (stores stay below this) */
    uint32_t entry_size;
    uint32_t n;        /* entries in use */
    uint32_t max;      /* entries that fit in map_len */
    int64_t base_offset;
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
 * chunks so the store can never fault. Errors: -ENOSPC (index full or disk
 * full), -errno. */
int rn_index_file_append(rn_index_file *ix, const void *entry);

/* Pointer to entry i (< n), valid while the index is open. */
static inline const uint8_t *rn_index_file_entry(const rn_index_file *ix, uint32_t i)
{
    return ix->map + RN_INDEX_HEADER_LEN + (size_t)i * ix->entry_size;
}

/* Forget entries from n on, zeroing them so a crash cannot resurrect them. */
void rn_index_file_trim(rn_index_file *ix, uint32_t n);

/* fdatasync the entries written so far. */
int rn_index_file_sync(rn_index_file *ix);

/* Shrink the file to its entries, sync it, close the descriptor; the mapping
 * stays for lookups. Errors: -errno (the index remains usable). */
int rn_index_file_seal(rn_index_file *ix);

/* Unmap and close. Returns the first error of munmap/close. */
int rn_index_file_close(rn_index_file *ix);

#endif
