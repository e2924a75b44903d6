/*
 * decode.c — rn_consumer's fetched bytes: the memory that chunks and messages
 * point into, and the decoding of whole batches into rn_message arrays.
 *
 * Bytes of a Fetch answer arrive as chunks (fetcher.c); rn_consumer_poll
 * verifies each batch (rn_batch_verify when check.crcs), skips records below
 * position (a fetch starts at the batch holding fetch_pos) and control
 * batches, and decodes with rn_batch_iter. Messages point into the chunks
 * and zstd buffers, which are freed only by the next poll (invariant 1); a
 * batch cut short by max.poll.records keeps its iterator (invariant 6).
 * Invariants: see consumer_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/consumer_int.h"

/* The largest chunk allocation kept for reuse (4 are kept at most). */
#define SPARE_MAX (4u << 20)

/* ---- Memory that messages may point into ------------------------------------------------ */

void rn__consumer_blob_release(fblob *b)
{
    if (b && --b->refs == 0) {
        /* Connections outlive every chunk until close (internal.h). */
        if (b->conn && !b->c->closing)
            rn__conn_recycle(b->conn, b->mem, b->cap);
        else
            free(b->mem);
        free(b);
    }
}

void rn__consumer_chunk_free(chunk *ch)
{
    if (ch->blob)
        rn__consumer_blob_release(ch->blob);
    else
        free(ch->data);
    free(ch);
}

/* Free ch, keeping its allocation for a later chunk when it is among the
 * largest seen and not above SPARE_MAX (so a consumer holds at most
 * 4 * SPARE_MAX bytes it does not use). */
static void chunk_recycle(rn_consumer *c, chunk *ch)
{
    if (!ch->blob && ch->data && ch->cap <= SPARE_MAX) {
        size_t n = c->n_spare, i = n;
        if (n == 4 && c->spare_cap[3] < ch->cap) {
            free(c->spare[3]);
            n = c->n_spare = 3;
        }
        if (n < 4) {
            for (i = n; i > 0 && c->spare_cap[i - 1] < ch->cap; i--) {
                c->spare[i] = c->spare[i - 1];
                c->spare_cap[i] = c->spare_cap[i - 1];
            }
            c->spare[i] = ch->data;
            c->spare_cap[i] = ch->cap;
            c->n_spare++;
            ch->data = NULL;
        }
    }
    rn__consumer_chunk_free(ch);
}

/* A buffer of at least len bytes: the smallest spare that fits, else a new one. */
uint8_t *rn__consumer_chunk_alloc(rn_consumer *c, size_t len, size_t *cap)
{
    for (size_t i = c->n_spare; i > 0; i--) {
        if (c->spare_cap[i - 1] < len)
            continue;
        uint8_t *b = c->spare[i - 1];
        *cap = c->spare_cap[i - 1];
        for (size_t j = i; j < c->n_spare; j++) {
            c->spare[j - 1] = c->spare[j];
            c->spare_cap[j - 1] = c->spare_cap[j];
        }
        c->n_spare--;
        return b;
    }
    *cap = len;
    return malloc(len);
}

/* Room in to_free for one more entry besides the slots saved iterators hold. */
static int keep_room(rn_consumer *c)
{
    if (c->n_free + c->n_it_owned < c->cap_free)
        return 0;
    size_t cap = c->cap_free ? c->cap_free * 2 : 64;
    void **v = realloc(c->to_free, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    c->to_free = v;
    c->cap_free = cap;
    return 0;
}

static int keep(rn_consumer *c, void *ptr)
{
    if (!ptr)
        return 0;
    if (keep_room(c) < 0) {
        free(ptr); /* only reached when no message points into it yet */
        return -ENOMEM;
    }
    c->to_free[c->n_free++] = ptr;
    return 0;
}

/* End p's saved iterator. Its zstd buffer, which messages of the last poll
 * may point into, goes to to_free in the slot kept for it. */
static void it_end(rn_consumer *c, cpart *p)
{
    if (!p->it_live)
        return;
    if (p->it.owned) {
        c->to_free[c->n_free++] = p->it.owned;
        c->n_it_owned--;
        p->it.owned = NULL;
    }
    rn_batch_iter_fini(&p->it);
    p->it_live = false;
}

void rn__consumer_release_previous(rn_consumer *c)
{
    for (size_t i = 0; i < c->n_free; i++)
        free(c->to_free[i]);
    c->n_free = 0;
    c->n_msgs = 0;
    while (c->retired) {
        chunk *ch = c->retired;
        c->retired = ch->next;
        chunk_recycle(c, ch);
    }
    /* Removed partitions: no message points at them any more; those with a
     * Fetch in flight wait for its answer (invariant 5). */
    for (cpart **pp = &c->dead; *pp;) {
        cpart *p = *pp;
        if (p->fetching) {
            pp = &p->dead_next;
            continue;
        }
        *pp = p->dead_next;
        rn__consumer_free_part(c, p);
    }
}

/* Drop a partition's head chunk; its bytes live until the next poll
 * (invariant 1). Needs no memory, so it cannot fail halfway through a poll. */
static void retire_head(rn_consumer *c, cpart *p)
{
    it_end(c, p);
    chunk *ch = p->head;
    p->head = ch->next;
    if (!p->head)
        p->tail = NULL;
    p->buffered -= ch->len - ch->off;
    ch->next = c->retired;
    c->retired = ch;
}

void rn__consumer_drop_buffered(rn_consumer *c, cpart *p)
{
    while (p->head)
        retire_head(c, p);
    p->corrupt = false;
}

/* ---- Decode ------------------------------------------------------------------------------- */

static rn_message *new_msg(rn_consumer *c)
{
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? c->cap_msgs * 2 : 256;
        rn_message *v = realloc(c->msgs, cap * sizeof(*v));
        if (!v)
            return NULL;
        c->msgs = v;
        c->cap_msgs = cap;
    }
    return &c->msgs[c->n_msgs++];
}

static int fill_msg(rn_consumer *c, cpart *p, const rn_record *rec)
{
    rn_header *hdrs = NULL;
    if (rec->n_headers > 0) {
        hdrs = calloc((size_t)rec->n_headers, sizeof(*hdrs));
        if (!hdrs || keep(c, hdrs) < 0)
            return -ENOMEM;
        const uint8_t *pos = rec->headers, *end = rec->headers + rec->headers_len;
        for (int32_t i = 0; i < rec->n_headers; i++) {
            rn_record_header h;
            int rc = rn_record_header_next(&pos, end, &h);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return -RN_E_BATCH_BAD_RECORD;
            hdrs[i].name = (const char *)h.name;
            hdrs[i].name_len = (size_t)h.name_len;
            hdrs[i].value = h.value_len < 0 ? NULL : h.value;
            hdrs[i].value_len = h.value_len < 0 ? 0 : (size_t)h.value_len;
        }
    }
    rn_message *m = new_msg(c);
    if (!m)
        return -ENOMEM;
    m->topic = p->topic;
    m->partition = p->partition;
    m->offset = rec->offset;
    m->timestamp = rec->timestamp;
    m->key = rec->key_len < 0 ? NULL : rec->key;
    m->key_len = rec->key_len < 0 ? 0 : (size_t)rec->key_len;
    m->value = rec->value_len < 0 ? NULL : rec->value;
    m->value_len = rec->value_len < 0 ? 0 : (size_t)rec->value_len;
    m->n_headers = (size_t)(rec->n_headers > 0 ? rec->n_headers : 0);
    m->headers = hdrs;
    return 0;
}

/* Decode the next batch of p's buffer into messages. Returns 1 when a batch
 * was used up, 0 when the buffer is empty, or a negative error: batch errors
 * with the partition's buffer dropped (it is fetched again from position).
 * A batch is verified and walked once: when max.poll.records stops a poll
 * inside it, its iterator is kept (cpart.it) for the next poll. */
static int decode_batch(rn_consumer *c, cpart *p)
{
    const rn_conf *conf = c->cl.conf;
    while (p->head && p->head->off >= p->head->len)
        retire_head(c, p);
    if (!p->head)
        return 0;
    chunk *ch = p->head;
    const uint8_t *buf = ch->data + ch->off;
    size_t left = ch->len - ch->off;
    int64_t at = p->position;
    rn_batch_header h;
    rn_batch_iter it;
    int rc;
    bool resumed = p->it_live && p->it_gen == p->gen && p->it_pos == p->position;
    if (resumed) {
        it = p->it;
        h = it.h;
        p->it_live = false;
        p->it.owned = NULL; /* it has it now, and its slot in to_free */
    } else {
        it_end(c, p);
        rc = rn_batch_peek(buf, left, 0, &h);
        if (rc == 0 && rn_batch_size(&h) > left)
            rc = -RN_E_BATCH_TRUNCATED;
        /* check.crcs: every record of a batch is checked before any of it is
         * returned. A batch decoded whole in this poll is checked by the walk
         * below (rn_batch_iter_init checks the CRC; an error drops its
         * messages); one that may be cut, or is skipped, by rn_batch_verify. */
        bool whole =
            rc == 0 && !(h.attributes & RN_BATCH_ATTR_CONTROL) &&
            h.base_offset + h.last_offset_delta + 1 > p->position &&
            (int64_t)h.records_count < (int64_t)conf->max_poll_records - (int64_t)c->n_msgs;
        if (rc == 0 && conf->check_crcs && !whole)
            rc = rn_batch_verify(buf, rn_batch_size(&h), 0, 0);
        if (rc < 0)
            goto corrupt;
    }
    at = h.base_offset;
    size_t size = rn_batch_size(&h);
    int64_t next = h.base_offset + h.last_offset_delta + 1;
    if (!resumed) {
        if ((h.attributes & RN_BATCH_ATTR_CONTROL) || next <= p->position) {
            ch->off += size;
            p->buffered -= size;
            if (next > p->position)
                p->position = next;
            return 1;
        }
        rc = rn_batch_iter_init(&it, buf, size, 0);
        if (rc < 0)
            goto corrupt;
        /* Messages may point into the decompressed records: a slot in
         * to_free for them, taken before any message does. */
        if (it.owned) {
            if (keep_room(c) < 0) {
                rn_batch_iter_fini(&it);
                return -ENOMEM;
            }
            c->n_it_owned++;
        }
    }
    rn_record rec;
    size_t first = c->n_msgs;
    bool full = false;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
        if (rec.offset < p->position)
            continue; /* the fetch started at the batch holding position */
        rc = fill_msg(c, p, &rec);
        if (rc < 0)
            break;
        if (c->n_msgs >= (size_t)conf->max_poll_records) {
            full = true;
            break;
        }
    }
    if (rc < 0 || !full) {
        /* Done with the records, which messages (of this poll or, resumed, of
         * the last) may point into: freed by the next poll. */
        if (it.owned) {
            c->n_it_owned--;
            c->to_free[c->n_free++] = it.owned;
            it.owned = NULL;
        }
        rn_batch_iter_fini(&it);
    }
    if (rc == -ENOMEM) {
        c->n_msgs = first; /* retry this batch, from its start, on the next poll */
        return rc;
    }
    if (rc < 0) {
        c->n_msgs = first;
        goto corrupt;
    }
    if (c->n_msgs > first)
        p->position = c->msgs[c->n_msgs - 1].offset + 1;
    if (full) {
        /* The batch stays at the head; the next poll resumes it at position. */
        p->it = it;
        p->it_live = true;
        p->it_gen = p->gen;
        p->it_pos = p->position;
        return 1;
    }
    ch->off += size;
    p->buffered -= size;
    if (next > p->position)
        p->position = next;
    return 1;

corrupt:
    /* A batch whose header reads is one the broker stored (an older runneld
     * took records it did not walk, or the disk rotted): fetching it again
     * gives the same bytes, so stop at it for ever would be the only other
     * choice. Report it and step over it, as librdkafka does; none of its
     * records is returned (invariant 3: position moves by a batch skipped). */
    if (rn_batch_peek(buf, left, 0, &h) == 0 && rn_batch_size(&h) <= left) {
        size_t bsize = rn_batch_size(&h);
        int64_t after = h.base_offset + h.last_offset_delta + 1;
        rn__consumer_set_pending(c, -RN_E_CORRUPT_BATCH,
                                 "%s-%d: skipped the corrupt batch at offsets %" PRId64 "..%" PRId64
                                 " (%" PRId32 " records): %s (%s)",
                                 p->topic, p->partition, h.base_offset, after - 1, h.records_count,
                                 rn_strerror(rc), rn_errname(rc));
        ch->off += bsize;
        p->buffered -= bsize;
        if (after > p->position)
            p->position = after;
        return -RN_E_CORRUPT_BATCH;
    }
    /* Not even the header reads: fetched again from position. */
    rn__consumer_set_pending(c, rc, "%s-%d: bytes at offset %" PRId64 " are not a batch: %s (%s)",
                             p->topic, p->partition, at, rn_strerror(rc), rn_errname(rc));
    rn__consumer_drop_buffered(c, p);
    p->fetch_pos = p->position;
    return -RN_E_CORRUPT_BATCH;
}

/* Fill c->msgs from the buffers, up to max.poll.records. A batch cut short
 * stays at its partition's head and the next poll resumes it (invariant 6):
 * poll's bound is exact,
 * so a slow application that takes few records at a time still polls, and
 * heartbeats, often. */
int rn__consumer_decode(rn_consumer *c)
{
    size_t max = (size_t)c->cl.conf->max_poll_records;
    for (size_t k = 0; k < c->n_parts && c->n_msgs < max; k++) {
        cpart *p = c->parts[(c->rr + k) % c->n_parts];
        while (c->n_msgs < max) {
            int rc = decode_batch(c, p);
            if (rc == -ENOMEM && c->n_msgs == 0)
                return rn__fail(&c->cl, rc, "out of memory decoding %s-%d", p->topic, p->partition);
            if (rc <= 0)
                break; /* a batch error is pending: messages so far still go out */
        }
    }
    if (c->n_parts)
        c->rr = (c->rr + 1) % c->n_parts;
    return (int)c->n_msgs;
}
