/*
 * quorum_int.h — what the files of the metadata quorum share, and nothing
 * else includes (quorum.h is the API).
 *
 * The quorum is one job in several files, each run on the quorum thread
 * unless it says otherwise:
 *
 *     quorum.c            the driver: the thread's loop, readies, frames in,
 *                         proposals, status, start and stop
 *     quorum_wire.c       Raft messages to and from bytes; FRAME_PART
 *                         reassembly (the frames themselves: quorum_wire.c's
 *                         top comment)
 *
 * The byte buffer and the bounds-checked reader below are static inline:
 * every file gets its own copy under the short names quorum.c always used.
 */
#ifndef RN_BROKER_META_QUORUM_INT_H
#define RN_BROKER_META_QUORUM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/quorum.h"
#include "broker/meta/raft.h"

/* A Raft message larger than this goes as FRAME_PART chunks (a snapshot
 * may be larger than one frame); one reassembled is at most MAX_MESSAGE. */
#define PART_BYTES  (8u << 20)
#define MAX_MESSAGE ((size_t)1 << 30)

/* ---- Byte buffers (little-endian, as on the wire) ------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static inline void buf_put(buf *b, const void *d, size_t n)
{
    if (b->oom || n == 0) /* n == 0 may come with d == NULL */
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static inline void put_u8(buf *b, uint8_t v)
{
    buf_put(b, &v, 1);
}
static inline void put_u16(buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_put(b, x, 2);
}
static inline void put_u32(buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 4);
}
static inline void put_u64(buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}

/* A bounds-checked reader: a read past the end sets bad and yields zeros. */
typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
} rd;

static inline const uint8_t *take(rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}
static inline uint64_t get_n(rd *r, int n)
{
    const uint8_t *p = take(r, (size_t)n);
    uint64_t v = 0;
    for (int i = 0; p && i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
#define get_u8(r)  ((uint8_t)get_n(r, 1))
#define get_i16(r) ((int16_t)get_n(r, 2))
#define get_u16(r) ((uint16_t)get_n(r, 2))
#define get_i32(r) ((int32_t)get_n(r, 4))
#define get_u32(r) ((uint32_t)get_n(r, 4))
#define get_i64(r) ((int64_t)get_n(r, 8))

/* ---- Raft messages on the wire (quorum_wire.c) ----------------------------------- */

/* Append m, field by field, to b (b->oom on failure). Borrows m. */
void rn__quorum_msg_put(buf *b, const rn_raft_msg *m);
/* Decode into m; entries into *ents (malloc'd, caller frees; data points
 * into the frame). -EINVAL for a frame that does not parse, -ENOMEM. */
int rn__quorum_msg_get(rd *r, rn_raft_msg *m, rn_raft_entry **ents);

#endif
