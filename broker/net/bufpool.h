/*
 * net/bufpool.h — warm memory for received frames, one pool per reactor
 * (net/bufpool.c).
 *
 * A frame that spans receives (a Produce bigger than a receive buffer, a
 * Kafka request, a local request from a gateway) needs a buffer of its own,
 * held until the request completes. malloc'd and freed per request, a buffer
 * of 64 KiB or more goes back to the kernel: glibc unmaps an mmap'd chunk, or
 * trims a thread arena's top with MADV_DONTNEED. The next request then faults
 * in and zeroes fresh pages, and on a VM whose host has taken that memory
 * back, the first touch costs more than everything else the request does
 * (docs/benchmarks.md, "The receive buffers went cold", issue 16). The pool
 * keeps freed buffers by size class and hands them out again, so received
 * bytes land in memory that is mapped and cached.
 *
 * A pool belongs to one reactor and is used on its thread only: no locks. It
 * keeps at most max_idle bytes of idle buffers; a buffer put back beyond that
 * is freed.
 */
#ifndef RN_BROKER_NET_BUFPOOL_H
#define RN_BROKER_NET_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/frame.h"

/* Requests below this are plain malloc (glibc's bins keep those warm). */
#define RN_BUFPOOL_MIN (64 * 1024)

typedef struct rn_bufpool rn_bufpool;

typedef struct rn_bufpool_stats {
    uint64_t hits;       /* gets served from an idle buffer */
    uint64_t misses;     /* gets of RN_BUFPOOL_MIN or more that had to allocate */
    uint64_t dropped;    /* puts freed because the pool was full */
    uint64_t idle_bytes; /* held idle now */
} rn_bufpool_stats;

/* A pool that keeps up to max_idle bytes idle, counting in *st (borrowed: it
 * must outlive the pool; a reactor's metrics, which /metrics renders), or in
 * the pool itself when st is NULL. NULL on -ENOMEM. */
rn_bufpool *rn_bufpool_new(size_t max_idle, rn_bufpool_stats *st);
/* Free the pool and its idle buffers. Buffers still out must not be put
 * back afterwards (free them with rn_bufpool_put(NULL, buf)). NULL is a no-op. */
void rn_bufpool_free(rn_bufpool *p);
/* A buffer of at least len bytes (contents undefined), or NULL when out of
 * memory or len is beyond SIZE_MAX / 2. The caller owns it until it hands it
 * to rn_bufpool_put. p may be NULL: then every buffer is a fresh allocation. */
void *rn_bufpool_get(rn_bufpool *p, size_t len);
/* Take back buf (from rn_bufpool_get on any pool, or NULL): kept for reuse,
 * or freed when p is NULL or full. */
void rn_bufpool_put(rn_bufpool *p, void *buf);
void rn_bufpool_stats_get(const rn_bufpool *p, rn_bufpool_stats *out);
/* p as a frame decoder's buffers (rn_frame_decoder_set_bufs). */
rn_frame_bufs rn_bufpool_frame_bufs(rn_bufpool *p);

#endif
