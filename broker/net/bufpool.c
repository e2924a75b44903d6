/*
 * net/bufpool.c — warm memory for received frames (net/bufpool.h says why).
 *
 * Every buffer carries a header of HDR_LEN bytes in front of what the caller
 * sees: its size class (or CLS_PLAIN) and, while idle, the next buffer of its
 * class. Classes split each power of two into four steps, so a buffer is at
 * most a quarter bigger than asked (a 256 KiB batch plus its header takes a
 * 320 KiB buffer, not 512 KiB). Idle buffers of a class are a LIFO stack: the
 * one put back last, the warmest, goes out first.
 *
 * Invariants:
 *   1. idle_bytes is the sum of class_cap() over the idle buffers, and never
 *      more than max_idle.
 *   2. A buffer's class never changes; it is allocated with class_cap(cls)
 *      bytes, so any buffer of a class serves any request of that class.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "broker/net/bufpool.h"

#define HDR_LEN   64u /* keeps the caller's pointer as aligned as malloc's */
#define MIN_LG    16u /* the smallest pooled buffer is > 2^16 bytes with its header */
#define MAX_LG    40u /* beyond 2^40 bytes, plain malloc */
#define STEPS     4u
#define N_CLASSES ((MAX_LG - MIN_LG) * STEPS)
#define CLS_PLAIN UINT32_MAX

typedef struct buf_hdr {
    struct buf_hdr *next; /* idle: the next idle buffer of this class */
    uint32_t cls;         /* class index, or CLS_PLAIN */
} buf_hdr;

struct rn_bufpool {
    buf_hdr *idle[N_CLASSES];
    size_t max_idle;
    rn_bufpool_stats *st; /* the caller's, or own */
    rn_bufpool_stats own;
};

_Static_assert(sizeof(buf_hdr) <= HDR_LEN, "the header fits its room");

/* The class of a buffer of total bytes (header included), and its size. */
static uint32_t class_of(size_t total, size_t *cap)
{
    unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(total - 1));
    if (lg < MIN_LG || lg >= MAX_LG)
        return CLS_PLAIN;
    size_t base = (size_t)1 << lg, step = base / STEPS;
    size_t q = (total - 1 - base) / step; /* 0 .. STEPS-1 */
    *cap = base + (q + 1) * step;
    return (uint32_t)((lg - MIN_LG) * STEPS + q);
}

static size_t class_cap(uint32_t cls)
{
    size_t base = (size_t)1 << (MIN_LG + cls / STEPS);
    return base + (cls % STEPS + 1) * (base / STEPS);
}

rn_bufpool *rn_bufpool_new(size_t max_idle, rn_bufpool_stats *st)
{
    rn_bufpool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->max_idle = max_idle;
    p->st = st ? st : &p->own;
    *p->st = (rn_bufpool_stats){0};
    return p;
}

void rn_bufpool_free(rn_bufpool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < N_CLASSES; i++) {
        while (p->idle[i]) {
            buf_hdr *h = p->idle[i];
            p->idle[i] = h->next;
            free(h);
        }
    }
    p->st->idle_bytes = 0;
    free(p);
}

void *rn_bufpool_get(rn_bufpool *p, size_t len)
{
    if (len > SIZE_MAX / 2)
        return NULL;
    size_t total = len + HDR_LEN, cap = total;
    uint32_t cls = len < RN_BUFPOOL_MIN ? CLS_PLAIN : class_of(total, &cap);
    buf_hdr *h = NULL;
    if (cls != CLS_PLAIN && p) {
        if ((h = p->idle[cls])) {
            p->idle[cls] = h->next;
            p->st->idle_bytes -= cap;
            p->st->hits++;
        } else {
            p->st->misses++;
        }
    }
    if (!h && !(h = malloc(cap)))
        return NULL;
    h->next = NULL;
    h->cls = cls;
    return (uint8_t *)h + HDR_LEN;
}

void rn_bufpool_put(rn_bufpool *p, void *buf)
{
    if (!buf)
        return;
    buf_hdr *h = (buf_hdr *)((uint8_t *)buf - HDR_LEN);
    if (!p || h->cls == CLS_PLAIN) {
        free(h);
        return;
    }
    size_t cap = class_cap(h->cls);
    if (cap > p->max_idle - p->st->idle_bytes) { /* invariant 1 */
        p->st->dropped++;
        free(h);
        return;
    }
    h->next = p->idle[h->cls];
    p->idle[h->cls] = h;
    p->st->idle_bytes += cap;
}

void rn_bufpool_stats_get(const rn_bufpool *p, rn_bufpool_stats *out)
{
    *out = p ? *p->st : (rn_bufpool_stats){0};
}

static void *frame_get(void *ctx, size_t len)
{
    return rn_bufpool_get(ctx, len);
}

static void frame_put(void *ctx, void *p)
{
    rn_bufpool_put(ctx, p);
}

rn_frame_bufs rn_bufpool_frame_bufs(rn_bufpool *p)
{
    return (rn_frame_bufs){frame_get, frame_put, p};
}
