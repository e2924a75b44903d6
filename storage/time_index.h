/*
 * time_index.h — the time index of one segment (.tix).
 *
 * Entries are (max_timestamp so far, relative offset of the batch that holds
 * it), added when the segment's max timestamp grows at an offset-index point
 * and once more when the segment is sealed, so the last entry always carries
 * the segment's largest timestamp. Timestamps strictly increase. Internal.
 */
#ifndef RN_TIME_INDEX_H
#define RN_TIME_INDEX_H

#include "storage/index_file.h"

#define RN_TIME_INDEX_MAGIC "RNTIMIX1"
#define RN_TIME_INDEX_ENTRY 12

typedef struct rn_time_entry {
    int64_t timestamp;
    uint32_t rel_offset;
} rn_time_entry;

rn_time_entry rn_time_index_get(const rn_index_file *ix, uint32_t i);

/* Append (timestamp, rel_offset) if timestamp exceeds the last entry's;
 * otherwise do nothing and return 0. Errors: those of rn_index_file_append. */
int rn_time_index_maybe_append(rn_index_file *ix, int64_t timestamp, uint32_t rel_offset);

/* The same for the seal's final entry (rn_index_file_append_last: no chunk
 * allocated only to be freed by the seal). */
int rn_time_index_append_seal(rn_index_file *ix, int64_t timestamp, uint32_t rel_offset);

/* The relative offset where a scan for the first batch with max_timestamp >= ts
 * may start: the entry before the first entry whose timestamp >= ts, or 0. */
uint32_t rn_time_index_lookup(const rn_index_file *ix, int64_t ts);

/* The largest timestamp recorded, or -1 when empty. */
int64_t rn_time_index_max(const rn_index_file *ix);

#endif
