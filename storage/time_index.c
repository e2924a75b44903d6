/*
 * time_index.c — time index entries (see time_index.h).
 *
 * Entry bytes (little-endian): i64 timestamp | u32 rel_offset (12 bytes).
 */
#include <endian.h>
#include <stdbool.h>
#include <string.h>

#include "storage/time_index.h"

rn_time_entry rn_time_index_get(const rn_index_file *ix, uint32_t i)
{
    const uint8_t *e = rn_index_file_entry(ix, i);
    uint64_t ts;
    uint32_t rel;
    memcpy(&ts, e, 8);
    memcpy(&rel, e + 8, 4);
    return (rn_time_entry){(int64_t)le64toh(ts), le32toh(rel)};
}

int64_t rn_time_index_max(const rn_index_file *ix)
{
    return ix->n ? rn_time_index_get(ix, ix->n - 1).timestamp : -1;
}

static int maybe_append(rn_index_file *ix, int64_t timestamp, uint32_t rel_offset, bool seal)
{
    if (ix->n > 0) {
        rn_time_entry last = rn_time_index_get(ix, ix->n - 1);
        if (timestamp <= last.timestamp || rel_offset < last.rel_offset)
            return 0;
    }
    uint8_t e[RN_TIME_INDEX_ENTRY];
    uint64_t ts_le = htole64((uint64_t)timestamp);
    uint32_t rel_le = htole32(rel_offset);
    memcpy(e, &ts_le, 8);
    memcpy(e + 8, &rel_le, 4);
    return seal ? rn_index_file_append_last(ix, e) : rn_index_file_append(ix, e);
}

int rn_time_index_maybe_append(rn_index_file *ix, int64_t timestamp, uint32_t rel_offset)
{
    return maybe_append(ix, timestamp, rel_offset, false);
}

int rn_time_index_append_seal(rn_index_file *ix, int64_t timestamp, uint32_t rel_offset)
{
    return maybe_append(ix, timestamp, rel_offset, true);
}

uint32_t rn_time_index_lookup(const rn_index_file *ix, int64_t ts)
{
    uint32_t lo = 0, hi = ix->n; /* first entry with timestamp >= ts */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rn_time_index_get(ix, mid).timestamp < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : rn_time_index_get(ix, lo - 1).rel_offset;
}
