/*
 * producer_state.c — idempotent producer bookkeeping (see producer_state.h).
 *
 * Per producer id: its epoch and a ring of its last RN_PRODUCER_BATCHES
 * batches, each (first_seq, last_seq, base_offset, in_flight). Producers live
 * in an open-addressing hash table keyed by producer id (ids are handed out
 * sequentially, so a multiplicative hash spreads them well).
 *
 * Sequences wrap from INT32_MAX to 0, as Kafka's do.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/part/producer_state.h"
#include "protocol/errors.h"
#include "storage/checkpoint.h"

typedef struct pbatch {
    int32_t first_seq, last_seq;
    int64_t base_offset;
    bool in_flight;
} pbatch;

typedef struct producer {
    int64_t pid; /* -1 = empty slot */
    int16_t epoch;
    unsigned n; /* batches remembered, newest at (head + n - 1) % N */
    unsigned head;
    pbatch b[RN_PRODUCER_BATCHES];
} producer;

struct rn_producer_state {
    producer *slots;
    unsigned cap, count;
};

rn_producer_state *rn_producer_state_new(void)
{
    return calloc(1, sizeof(rn_producer_state));
}

void rn_producer_state_free(rn_producer_state *ps)
{
    if (!ps)
        return;
    free(ps->slots);
    free(ps);
}

unsigned rn_producer_state_count(const rn_producer_state *ps)
{
    return ps->count;
}

static unsigned slot_of(int64_t pid, unsigned cap)
{
    return (unsigned)(((uint64_t)pid * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static producer *find(rn_producer_state *ps, int64_t pid)
{
    if (!ps->cap)
        return NULL;
    for (unsigned i = slot_of(pid, ps->cap);; i = (i + 1) & (ps->cap - 1)) {
        if (ps->slots[i].pid == pid)
            return &ps->slots[i];
        if (ps->slots[i].pid == -1)
            return NULL;
    }
}

static int grow(rn_producer_state *ps)
{
    unsigned cap = ps->cap ? ps->cap * 2 : 16;
    producer *slots = malloc(cap * sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (unsigned i = 0; i < cap; i++)
        slots[i].pid = -1;
    for (unsigned i = 0; i < ps->cap; i++) {
        if (ps->slots[i].pid < 0)
            continue;
        unsigned j = slot_of(ps->slots[i].pid, cap);
        while (slots[j].pid != -1)
            j = (j + 1) & (cap - 1);
        slots[j] = ps->slots[i];
    }
    free(ps->slots);
    ps->slots = slots;
    ps->cap = cap;
    return 0;
}

static producer *find_or_add(rn_producer_state *ps, int64_t pid, int16_t epoch)
{
    producer *p = find(ps, pid);
    if (p)
        return p;
    if ((ps->count + 1) * 4 > ps->cap * 3 && grow(ps) < 0)
        return NULL;
    unsigned j = slot_of(pid, ps->cap);
    while (ps->slots[j].pid != -1)
        j = (j + 1) & (ps->cap - 1);
    p = &ps->slots[j];
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->epoch = epoch;
    ps->count++;
    return p;
}

static pbatch *nth(producer *p, unsigned i)
{
    return &p->b[(p->head + i) % RN_PRODUCER_BATCHES];
}

static void push(producer *p, int32_t first, int32_t last, int64_t base, bool in_flight)
{
    if (p->n == RN_PRODUCER_BATCHES) {
        p->head = (p->head + 1) % RN_PRODUCER_BATCHES;
        p->n--;
    }
    pbatch *b = nth(p, p->n++);
    b->first_seq = first;
    b->last_seq = last;
    b->base_offset = base;
    b->in_flight = in_flight;
}

static int32_t seq_add(int32_t seq, int32_t n)
{
    int64_t v = (int64_t)seq + n;
    return (int32_t)(v > INT32_MAX ? v - INT32_MAX - 1 : v);
}

int rn_producer_state_check(rn_producer_state *ps, const rn_batch_header *h, int64_t *dup_offset)
{
    if (h->producer_id < 0)
        return RN_PRODUCER_APPEND;
    int32_t first = h->base_sequence;
    int32_t last = seq_add(first, h->last_offset_delta);
    producer *p = find_or_add(ps, h->producer_id, h->producer_epoch);
    if (!p)
        return -ENOMEM;
    if (h->producer_epoch < p->epoch)
        return -RN_E_PRODUCER_FENCED;
    if (h->producer_epoch > p->epoch) {
        /* A new epoch starts its sequences over. */
        p->epoch = h->producer_epoch;
        p->n = p->head = 0;
    }
    for (unsigned i = 0; i < p->n; i++) {
        pbatch *b = nth(p, i);
        if (b->first_seq == first && b->last_seq == last) {
            if (b->in_flight)
                return -RN_E_TIMEOUT;
            *dup_offset = b->base_offset;
            return RN_PRODUCER_DUPLICATE;
        }
    }
    if (p->n > 0 && first != seq_add(nth(p, p->n - 1)->last_seq, 1))
        return -RN_E_OUT_OF_ORDER_SEQUENCE;
    push(p, first, last, -1, true);
    return RN_PRODUCER_APPEND;
}

void rn_producer_state_appended(rn_producer_state *ps, int64_t producer_id, int32_t base_sequence,
                                int64_t base_offset)
{
    producer *p = find(ps, producer_id);
    for (unsigned i = 0; p && i < p->n; i++) {
        pbatch *b = nth(p, i);
        if (b->first_seq == base_sequence && b->in_flight) {
            b->in_flight = false;
            b->base_offset = base_offset;
            return;
        }
    }
}

void rn_producer_state_failed(rn_producer_state *ps, int64_t producer_id, int32_t base_sequence)
{
    producer *p = find(ps, producer_id);
    if (!p)
        return;
    /* It and everything after it (a failed write fails every later append of
     * the log too) are forgotten: the retries come as new. */
    for (unsigned i = 0; i < p->n; i++) {
        if (nth(p, i)->first_seq == base_sequence && nth(p, i)->in_flight) {
            p->n = i;
            return;
        }
    }
}

typedef struct rebuild_ctx {
    rn_producer_state *ps;
    int n;
} rebuild_ctx;

static int rebuild_one(void *arg, const rn_batch_header *h)
{
    rebuild_ctx *c = arg;
    if (h->producer_id < 0)
        return 0;
    int rc = rn_producer_state_replicated(c->ps, h);
    if (rc == 0)
        c->n++;
    return rc;
}

int rn_producer_state_replicated(rn_producer_state *ps, const rn_batch_header *h)
{
    if (h->producer_id < 0)
        return 0;
    producer *p = find_or_add(ps, h->producer_id, h->producer_epoch);
    if (!p)
        return -ENOMEM;
    if (h->producer_epoch > p->epoch) {
        p->epoch = h->producer_epoch;
        p->n = p->head = 0;
    }
    if (h->producer_epoch == p->epoch)
        push(p, h->base_sequence, seq_add(h->base_sequence, h->last_offset_delta), h->base_offset,
             false);
    return 0;
}

/* Headers only, read with pread (rn_log_walk_headers): walking rn_log_read's
 * slices faulted the last two segments into the mapping, up to 2 GiB of RSS
 * and about half of a restart's time. */
int rn_producer_state_rebuild(rn_producer_state *ps, rn_log *log, int64_t from_offset)
{
    rebuild_ctx c = {.ps = ps};
    int rc = rn_log_walk_headers(log, from_offset, rebuild_one, &c);
    return rc < 0 ? rc : c.n;
}

/* ---- Producer ids ------------------------------------------------------------------ */

#define IDS_FILE  "producer-ids"
#define IDS_MAGIC "RNPIDS01"
#define IDS_BLOCK 1000

int rn_producer_ids_open(rn_producer_ids *ids, const char *dir)
{
    memset(ids, 0, sizeof(*ids));
    size_t l = strlen(dir);
    if (l >= sizeof(ids->dir))
        return -ENAMETOOLONG;
    memcpy(ids->dir, dir, l + 1);
    ids->node_id = -1;
    uint64_t v;
    int rc = rn_checkpoint_read(dir, IDS_FILE, IDS_MAGIC, &v, sizeof(v));
    if (rc == -ENOENT) {
        ids->next = ids->block_end = 0;
        return 0;
    }
    if (rc < 0)
        return rc;
    /* Everything below the persisted end may have been handed out. */
    ids->next = ids->block_end = (int64_t)le64toh(v);
    return 0;
}

void rn_producer_ids_set_node(rn_producer_ids *ids, int32_t node_id)
{
    ids->node_id = node_id;
}

int rn_producer_ids_next(rn_producer_ids *ids, int64_t *pid)
{
    if (ids->node_id >= 0 && ids->next >= (INT64_C(1) << 32))
        return -EOVERFLOW;
    if (ids->next >= ids->block_end) {
        uint64_t v = htole64((uint64_t)(ids->block_end + IDS_BLOCK));
        int rc = rn_checkpoint_write(ids->dir, IDS_FILE, IDS_MAGIC, &v, sizeof(v));
        if (rc < 0)
            return rc;
        ids->block_end += IDS_BLOCK;
    }
    int64_t n = ids->next++;
    *pid = ids->node_id >= 0 ? (n << 31) | ids->node_id : n;
    return 0;
}
