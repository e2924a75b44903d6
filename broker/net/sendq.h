/*
 * net/sendq.h — the queued output of one socket, shared by the native
 * connections (net/conn.c) and the HTTP ones (gateway/http.c) (net/sendq.c).
 *
 * A queue of items, each bytes of its own (a response header, an HTTP head
 * and body, a WebSocket frame) then borrowed payload slices whose segment
 * references it holds until sent. One sendmsg in flight at a time, up to 64
 * iovecs; a large one may go zero-copy (IORING_OP_SENDMSG_ZC), and then what
 * it covered is held until the kernel's notification says the pages are no
 * longer read. Items may end a message (boundary), so the queue after one can
 * be dropped without cutting a message in two. The owner keeps the socket,
 * the op, its references and the backpressure decision (rn_sendq_over).
 * One reactor's thread; nothing here is thread-safe.
 */
#ifndef RN_BROKER_NET_SENDQ_H
#define RN_BROKER_NET_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "storage/io.h"
#include "storage/log.h"

#define RN_SENDQ_IOV 64

/* One item of output: hdr bytes then payload slices. */
typedef struct rn_out {
    struct rn_out *next;
    uint8_t *hdr; /* malloc'd, or data[] below */
    size_t hdr_len;
    unsigned n_slices;
    rn_slice *slices; /* payload, in order; references released once sent */
    size_t total, sent;
    bool boundary; /* a message ends with this item */
    uint8_t data[];
} rn_out;

typedef struct rn_sendq {
    rn_out *head, *tail;
    rn_out *zc_hold;         /* sent zero-copy: kept until the notification */
    size_t bytes;            /* queued, not yet sent: the backpressure measure */
    unsigned inflight_items; /* items the send in flight covers */
    bool inflight;           /* a send (or its zero-copy notification) is pending */
    bool zc;                 /* the send in flight is zero-copy */
    bool sent_boundary;      /* the item sent last ended a message */
    struct iovec iov[RN_SENDQ_IOV];
    struct msghdr msg;
} rn_sendq;

void rn_sendq_init(rn_sendq *q);
/* Free everything queued and held (the socket must be done with it). */
void rn_sendq_fini(rn_sendq *q);

/* A new item with len bytes of its own (o->data, to fill; o->hdr points at
 * it), no slices, not a boundary. NULL on OOM. Free with rn_out_free unless
 * queued. */
rn_out *rn_out_new(size_t len);
/* Release the item's slice references and free it. */
void rn_out_free(rn_out *o);
/* Append o (takes ownership); its total is hdr_len + the slices' lengths. */
void rn_sendq_push(rn_sendq *q, rn_out *o);
/* Mark the last item queued as ending a message (nothing when empty). */
void rn_sendq_mark_boundary(rn_sendq *q);

/* Start a sendmsg of what is queued on fd, through op/cb on io, zero-copy
 * when zc_min > 0 and it covers at least zc_min bytes. Returns true when a
 * send started (the caller takes a reference for op), false when one is in
 * flight already or nothing is queued. */
bool rn_sendq_start(rn_sendq *q, rn_io *io, rn_io_op *op, rn_io_cb cb, int fd, uint64_t zc_min);

/* Account a completion of the send (res, flags from the CQE): what was sent
 * leaves the queue (freed, or held until a zero-copy notification). Returns
 * true when the send is over (the op's reference may go, another send may
 * start); false when its zero-copy notification is still to come. A res < 0
 * that is not a notification is the send's error: nothing leaves the queue. */
bool rn_sendq_complete(rn_sendq *q, int res, uint32_t flags);

/* Drop what is queued but not yet sent, keeping what the send in flight
 * covers and the rest of a message whose start already left (up to its next
 * boundary). Everything goes when keep_partial is false (closing). */
void rn_sendq_drop(rn_sendq *q, bool keep_partial);

/* Backpressure: a connection whose queue holds more than budget stops being
 * read, and is read again once it is back at half the budget or below. */
static inline bool rn_sendq_over(const rn_sendq *q, size_t budget)
{
    return q->bytes > budget;
}
static inline bool rn_sendq_drained(const rn_sendq *q, size_t budget)
{
    return q->bytes <= budget / 2;
}

#endif
