/*
 * offset_index.h — the sparse offset index of one segment (.idx).
 *
 * Entries map a relative offset (offset - segment base) to the byte position of
 * the batch that starts there; one entry per index.interval.bytes of log.
 * Both columns strictly increase. Internal to storage/.
 */
#ifndef RN_OFFSET_INDEX_H
#define RN_OFFSET_INDEX_H

#include "storage/index_file.h"

#define RN_OFFSET_INDEX_MAGIC "RNOFFIX1"
#define RN_OFFSET_INDEX_ENTRY 8

typedef struct rn_offset_entry {
    uint32_t rel_offset;
    uint32_t pos;
} rn_offset_entry;

rn_offset_entry rn_offset_index_get(const rn_index_file *ix, uint32_t i);

/* Append (rel_offset, pos); both must exceed the last entry's.
 * Errors: -EINVAL (not increasing), those of rn_index_file_append. */
int rn_offset_index_append(rn_index_file *ix, uint32_t rel_offset, uint32_t pos);

/* The last entry with rel_offset <= rel, or {0, 0} (start of the segment) when
 * none: where a scan for rel must begin. */
rn_offset_entry rn_offset_index_lookup(const rn_index_file *ix, uint32_t rel);

#endif
