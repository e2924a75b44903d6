/*
 * quorum_wire.c — the metadata quorum's messages as bytes (see quorum_int.h
 * for the other files of the quorum): an rn_raft_msg to and from a RAFT
 * frame's body, and FRAME_PART chunks gathered back into one. Pure: no
 * sockets, no state but the caller's, so tests feed it bytes
 * (tests/unit/broker/meta/test_quorum_wire.c).
 *
 * Wire (the controller listener; one framing for every link, both ways):
 *
 *     u32 length of what follows | u8 kind | body          (little-endian)
 *     kind 1 RAFT      an rn_raft_msg, field by field (rn__quorum_msg_put below)
 *     kind 2 FORWARD   i32 origin | u64 token | batch bytes  (to the leader)
 *     kind 3 HEARTBEAT i32 node | i64 incarnation | u16 n | endpoint[n]
 *                      [| u16 k | kafka endpoint[k] [| u8 flags]]  (absent from
 *                      older brokers; flags bit 0: leaving, rn_quorum_leave)
 *     kind 4 PART      u64 total | u64 pos | bytes: a chunk of one RAFT
 *                      frame's body too large for one frame (a snapshot);
 *                      the chunks of a message follow each other on the
 *                      link, pos = the bytes before; total <= 1 GiB, checked
 *                      before the buffer grows (8 MiB parts; the environment
 *                      variable RN_QUORUM_PART_BYTES makes them smaller, for
 *                      tests that send every snapshot in parts)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/quorum.h"
#include "broker/meta/quorum_int.h"
#include "broker/meta/raft.h"

/* ---- Raft messages on the wire --------------------------------------------- */

void rn__quorum_msg_put(buf *b, const rn_raft_msg *m)
{
    put_u8(b, m->type);
    put_u16(b, (uint16_t)m->error);
    put_u32(b, (uint32_t)m->from);
    put_u32(b, (uint32_t)m->to);
    put_u32(b, (uint32_t)m->epoch);
    put_u32(b, (uint32_t)m->leader_id);
    put_u8(b, m->pre_vote);
    put_u8(b, m->granted);
    put_u32(b, (uint32_t)m->candidate_epoch);
    put_u64(b, (uint64_t)m->last_offset);
    put_u32(b, (uint32_t)m->last_epoch);
    put_u64(b, (uint64_t)m->fetch_offset);
    put_u32(b, (uint32_t)m->last_fetched_epoch);
    put_u64(b, (uint64_t)m->hw);
    put_u64(b, (uint64_t)m->log_start);
    put_u32(b, (uint32_t)m->diverging_epoch);
    put_u64(b, (uint64_t)m->diverging_end_offset);
    put_u64(b, (uint64_t)m->snapshot_end_offset);
    put_u32(b, (uint32_t)m->snapshot_epoch);
    put_u32(b, (uint32_t)m->n_preferred);
    for (int i = 0; i < m->n_preferred; i++)
        put_u32(b, (uint32_t)m->preferred[i]);
    put_u32(b, (uint32_t)m->n_entries);
    for (int i = 0; i < m->n_entries; i++) {
        const rn_raft_entry *e = &m->entries[i];
        put_u64(b, (uint64_t)e->offset);
        put_u32(b, (uint32_t)e->epoch);
        put_u8(b, e->kind);
        put_u32(b, e->len);
        buf_put(b, e->data, e->len);
    }
    put_u32(b, (uint32_t)m->snapshot_len);
    buf_put(b, m->snapshot_data, m->snapshot_len);
}

int rn__quorum_msg_get(rd *r, rn_raft_msg *m, rn_raft_entry **ents)
{
    memset(m, 0, sizeof(*m));
    *ents = NULL;
    m->type = get_u8(r);
    m->error = get_i16(r);
    m->from = get_i32(r);
    m->to = get_i32(r);
    m->epoch = get_i32(r);
    m->leader_id = get_i32(r);
    m->pre_vote = get_u8(r) != 0;
    m->granted = get_u8(r) != 0;
    m->candidate_epoch = get_i32(r);
    m->last_offset = get_i64(r);
    m->last_epoch = get_i32(r);
    m->fetch_offset = get_i64(r);
    m->last_fetched_epoch = get_i32(r);
    m->hw = get_i64(r);
    m->log_start = get_i64(r);
    m->diverging_epoch = get_i32(r);
    m->diverging_end_offset = get_i64(r);
    m->snapshot_end_offset = get_i64(r);
    m->snapshot_epoch = get_i32(r);
    uint32_t np = get_u32(r);
    if (r->bad || np > RN_RAFT_MAX_VOTERS)
        return -EINVAL;
    m->n_preferred = (int)np;
    for (uint32_t i = 0; i < np; i++)
        m->preferred[i] = get_i32(r);
    uint32_t ne = get_u32(r);
    /* Each entry takes at least 17 bytes: bound the count by what is left
     * before allocating for it. */
    if (r->bad || ne > (r->len - r->pos) / 17)
        return -EINVAL;
    if (ne) {
        *ents = calloc(ne, sizeof(**ents));
        if (!*ents)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < ne; i++) {
        rn_raft_entry *e = &(*ents)[i];
        e->offset = get_i64(r);
        e->epoch = get_i32(r);
        e->kind = get_u8(r);
        e->len = get_u32(r);
        e->data = take(r, e->len);
    }
    m->entries = *ents;
    m->n_entries = (int)ne;
    uint32_t sl = get_u32(r);
    m->snapshot_data = take(r, sl);
    m->snapshot_len = sl;
    if (r->bad || r->pos != r->len) {
        free(*ents);
        *ents = NULL;
        return -EINVAL;
    }
    return 0;
}

int rn_quorum_msg_encode(const rn_raft_msg *m, uint8_t **out, size_t *len)
{
    buf b = {0};
    rn__quorum_msg_put(&b, m);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

int rn_quorum_msg_decode(const uint8_t *p, size_t len, rn_raft_msg *m, rn_raft_entry **ents)
{
    rd r = {p, len, 0, false};
    return rn__quorum_msg_get(&r, m, ents);
}
/* ---- Parts: one large message in several frames ----------------------------- */

void rn_quorum_parts_reset(rn_quorum_parts *pt)
{
    free(pt->p);
    *pt = (rn_quorum_parts){0};
}

int rn_quorum_parts_feed(rn_quorum_parts *pt, const uint8_t *body, size_t len, const uint8_t **msg,
                         size_t *msg_len)
{
    rd r = {body, len, 0, false};
    uint64_t total = get_n(&r, 8), pos = get_n(&r, 8);
    size_t n = r.len - r.pos;
    /* Every length checked before the buffer grows: the whole is bounded,
     * the chunks come in order, none runs past the whole. */
    if (r.bad || total == 0 || total > MAX_MESSAGE || pos != pt->len ||
        (pos > 0 && total != pt->total) || n == 0 || n > total - pos) {
        rn_quorum_parts_reset(pt);
        return -EINVAL;
    }
    if (pt->len == 0 && pt->p && pt->total) /* the previous whole was handed out */
        rn_quorum_parts_reset(pt);
    if (pt->len + n > pt->cap) {
        size_t cap = pt->cap ? pt->cap : PART_BYTES;
        while (cap < pt->len + n)
            cap *= 2;
        if (cap > total)
            cap = (size_t)total;
        uint8_t *p = realloc(pt->p, cap);
        if (!p) {
            rn_quorum_parts_reset(pt);
            return -ENOMEM;
        }
        pt->p = p;
        pt->cap = cap;
    }
    memcpy(pt->p + pt->len, r.p + r.pos, n);
    pt->len += n;
    pt->total = total;
    if (pt->len < total)
        return 0;
    *msg = pt->p;
    *msg_len = pt->len;
    pt->len = 0; /* the next chunk starts a new message; p lives until then */
    return 1;
}
