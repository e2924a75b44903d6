/*
 * sendq.c — the queued output of a socket (see net/sendq.h), one copy for the
 * native and the HTTP connections.
 *
 * Invariants:
 *   1. At most one send is in flight; iov and msg belong to it until
 *      rn_sendq_complete says it is over.
 *   2. A zero-copy send completes with F_MORE, then again with F_NOTIF once
 *      the kernel no longer reads the pages. Until then what it sent is held
 *      (zc_hold) and no other send starts, so one notification always covers
 *      everything held.
 *   3. bytes is the sum over queued items of total - sent.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/net/sendq.h"

void rn_sendq_init(rn_sendq *q)
{
    memset(q, 0, sizeof(*q));
    q->sent_boundary = true;
}

rn_out *rn_out_new(size_t len)
{
    rn_out *o = calloc(1, sizeof(*o) + len);
    if (!o)
        return NULL;
    o->hdr = o->data;
    o->hdr_len = len;
    return o;
}

void rn_out_free(rn_out *o)
{
    for (unsigned i = 0; i < o->n_slices; i++)
        rn_slice_release(&o->slices[i]);
    free(o->slices);
    if (o->hdr != o->data)
        free(o->hdr);
    free(o);
}

static void free_list(rn_out *o)
{
    while (o) {
        rn_out *n = o->next;
        rn_out_free(o);
        o = n;
    }
}

void rn_sendq_fini(rn_sendq *q)
{
    free_list(q->head);
    free_list(q->zc_hold);
    q->head = q->tail = q->zc_hold = NULL;
    q->bytes = 0;
}

void rn_sendq_push(rn_sendq *q, rn_out *o)
{
    o->next = NULL;
    o->sent = 0;
    o->total = o->hdr_len;
    for (unsigned i = 0; i < o->n_slices; i++)
        o->total += o->slices[i].len;
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    q->bytes += o->total;
}

void rn_sendq_mark_boundary(rn_sendq *q)
{
    if (q->tail)
        q->tail->boundary = true;
}

bool rn_sendq_start(rn_sendq *q, rn_io *io, rn_io_op *op, rn_io_cb cb, int fd, uint64_t zc_min)
{
    if (q->inflight || !q->head)
        return false;
    unsigned n = 0, items = 0;
    size_t bytes = 0;
    for (rn_out *o = q->head; o && n < RN_SENDQ_IOV; o = o->next) {
        size_t skip = o->sent;
        items++;
        if (skip < o->hdr_len) {
            q->iov[n].iov_base = o->hdr + skip;
            q->iov[n].iov_len = o->hdr_len - skip;
            bytes += q->iov[n].iov_len;
            n++;
            skip = 0;
        } else {
            skip -= o->hdr_len;
        }
        for (unsigned i = 0; i < o->n_slices && n < RN_SENDQ_IOV; i++) {
            const rn_slice *s = &o->slices[i];
            if (skip >= s->len) {
                skip -= s->len;
                continue;
            }
            q->iov[n].iov_base = (void *)(s->data + skip);
            q->iov[n].iov_len = s->len - skip;
            bytes += q->iov[n].iov_len;
            n++;
            skip = 0;
        }
    }
    if (n == 0)
        return false;
    memset(&q->msg, 0, sizeof(q->msg));
    q->msg.msg_iov = q->iov;
    q->msg.msg_iovlen = n;
    struct io_uring_sqe *sqe = rn_io_sqe(io, op, cb);
    if (!sqe)
        return false;
    q->zc = zc_min && bytes >= zc_min;
    if (q->zc)
        io_uring_prep_sendmsg_zc(sqe, fd, &q->msg, MSG_NOSIGNAL);
    else
        io_uring_prep_sendmsg(sqe, fd, &q->msg, MSG_NOSIGNAL);
    q->inflight = true;
    q->inflight_items = items;
    return true;
}

bool rn_sendq_complete(rn_sendq *q, int res, uint32_t flags)
{
    if (flags & IORING_CQE_F_NOTIF) {
        free_list(q->zc_hold);
        q->zc_hold = NULL;
        q->inflight = false;
        q->zc = false;
        q->inflight_items = 0;
        return true;
    }
    bool notif_follows = q->zc && (flags & IORING_CQE_F_MORE);
    if (!notif_follows) {
        q->inflight = false;
        q->zc = false;
        q->inflight_items = 0;
    }
    if (res < 0) {
        if (notif_follows)
            return false;
        free_list(q->zc_hold);
        q->zc_hold = NULL;
        return true;
    }
    size_t n = (size_t)res;
    while (n > 0 && q->head) {
        rn_out *o = q->head;
        size_t left = o->total - o->sent;
        if (n < left) {
            o->sent += n;
            q->bytes -= n;
            break;
        }
        n -= left;
        q->bytes -= left;
        q->head = o->next;
        if (!q->head)
            q->tail = NULL;
        q->sent_boundary = o->boundary;
        if (notif_follows) {
            o->next = q->zc_hold;
            q->zc_hold = o;
        } else {
            rn_out_free(o);
        }
    }
    if (notif_follows)
        return false; /* the notification ends this send */
    free_list(q->zc_hold);
    q->zc_hold = NULL;
    return true;
}

void rn_sendq_drop(rn_sendq *q, bool keep_partial)
{
    rn_out *drop;
    unsigned keep = keep_partial && q->inflight ? q->inflight_items : 0;
    /* What must stay: the items the send in flight points at, and the rest
     * of a message whose start has left already (the head is partly sent,
     * or the item sent last did not end a message). Those are kept up to
     * the next boundary; everything after it goes. */
    if (keep_partial && q->head && (q->head->sent > 0 || !q->sent_boundary) && keep < 1)
        keep = 1;
    if (keep == 0) {
        drop = q->head;
        q->head = q->tail = NULL;
    } else {
        rn_out *o = q->head;
        for (unsigned i = 0; o; o = o->next, i++)
            if (i + 1 >= keep && o->boundary)
                break;
        if (!o)
            return; /* no message ends after the part that must stay */
        drop = o->next;
        o->next = NULL;
        q->tail = o;
    }
    while (drop) {
        rn_out *n = drop->next;
        q->bytes -= drop->total - drop->sent;
        rn_out_free(drop);
        drop = n;
    }
}
