/*
 * offset_index.c — sparse offset index entries (see offset_index.h).
 *
 * Entry bytes (little-endian): u32 rel_offset | u32 pos. Lookups are a binary
 * search for the greatest rel_offset <= the target; the caller scans batch
 * headers forward from that position (at most index.interval.bytes of them).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "storage/offset_index.h"

rn_offset_entry rn_offset_index_get(const rn_index_file *ix, uint32_t i)
{
    const uint8_t *e = rn_index_file_entry(ix, i);
    uint32_t rel, pos;
    memcpy(&rel, e, 4);
    memcpy(&pos, e + 4, 4);
    return (rn_offset_entry){le32toh(rel), le32toh(pos)};
}

int rn_offset_index_append(rn_index_file *ix, uint32_t rel_offset, uint32_t pos)
{
    if (ix->n > 0) {
        rn_offset_entry last = rn_offset_index_get(ix, ix->n - 1);
        if (rel_offset <= last.rel_offset || pos <= last.pos)
            return -EINVAL;
    }
    uint8_t e[RN_OFFSET_INDEX_ENTRY];
    uint32_t rel_le = htole32(rel_offset), pos_le = htole32(pos);
    memcpy(e, &rel_le, 4);
    memcpy(e + 4, &pos_le, 4);
    return rn_index_file_append(ix, e);
}

rn_offset_entry rn_offset_index_lookup(const rn_index_file *ix, uint32_t rel)
{
    uint32_t lo = 0, hi = ix->n; /* answer is the entry before lo */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rn_offset_index_get(ix, mid).rel_offset <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return (rn_offset_entry){0, 0};
    return rn_offset_index_get(ix, lo - 1);
}
