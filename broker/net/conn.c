/*
 * conn.c — one client connection: receive, decode, dispatch, send.
 *
 * Bytes arrive by multishot recv into the reactor's provided buffers and go
 * straight into the connection's sans-I/O frame decoder (protocol/frame.c). A
 * frame that lies whole in the buffer is decoded in place; a Produce request
 * then keeps the buffer (a reference) until its appends complete, so produce
 * data is written to the segment from the receive buffer, never copied. A frame
 * split across receives is gathered by the decoder, which hands its buffer to
 * the request (rn_frame_decoder_steal).
 *
 * Requests are pipelined: each is dispatched as soon as it is decoded and
 * answers when it completes, so answers may leave out of order across
 * partitions; the client matches them by correlation id.
 *
 * Responses queue as rn_out items (header bytes + payload slices of segment
 * mmaps, whose references are held until sent) and go out with sendmsg, up to
 * 64 iovecs at a time, one send in flight per connection.
 *
 * Backpressure: when the queued bytes pass connection.send.budget.bytes the
 * connection stops being read (its recv is cancelled) until the queue drains
 * below half, so a slow consumer cannot grow broker memory without bound.
 *
 * Life: refs counts the reactor's list, every op in flight and every request.
 * rn_conn_close marks the conn dead, shuts the socket down (so in-flight ops
 * complete) and drops the list's reference; the fd is closed and the memory
 * freed when the last reference goes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/metrics.h"
#include "broker/net/conn.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"

#define MAX_REQS_IN_FLIGHT 1024
/* A frame still missing this much is received in place (no copy). */
#define DIRECT_MIN (64 * 1024)

static bool conn_frame(rn_conn *c, rn_frame *f, int bid);
static void protocol_error(rn_conn *c, uint32_t correlation_id, int err, const char *msg);
static void maybe_pause(rn_conn *c);

static void noop_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_conn *c = RN_CONTAINER_OF(op, rn_conn, close_op);
    (void)res;
    (void)flags;
    rn_conn_unref(c);
}

void rn_conn_unref(rn_conn *c)
{
    if (--c->refs > 0)
        return;
    if (!c->is_virtual)
        c->r->n_live--;
    if (c->fd >= 0)
        close(c->fd);
    rn_frame_decoder_fini(&c->dec);
    rn_sendq_fini(&c->sq);
    free(c);
}

static void cancel_recv(rn_conn *c)
{
    if (!c->recv_armed)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->close_op, noop_done);
    if (!sqe)
        return;
    c->refs++;
    io_uring_prep_cancel(sqe, &c->recv_op, 0);
}

void rn_conn_close(rn_conn *c, const char *why)
{
    if (c->dead)
        return;
    rn_reactor *r = c->r;
    c->dead = true;
    rn_logfmt(RN_DEBUG, "connection closed", "conn=%llu peer=%s reason=%s",
              (unsigned long long)c->id, c->peer, why);
    if (c->is_virtual) {
        for (rn_request *q = c->reqs, *next; q; q = next) {
            next = q->next;
            if (q->api == RUNNEL__API__FETCH && q->state)
                rn_fetch_cancel(q->state);
        }
        rn_conn_unref(c);
        return;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->n_conns--;
    rn_conn_slot_give(r->b);
    r->metrics.connections_active--;
    if (c->starved) {
        for (rn_conn **pp = &r->starved; *pp; pp = &(*pp)->next_starved) {
            if (*pp == c) {
                *pp = c->next_starved;
                c->starved = false;
                rn_conn_unref(c);
                break;
            }
        }
    }
    shutdown(c->fd, SHUT_RDWR);
    cancel_recv(c);
    rn_sendq_drop(&c->sq, false);
    /* Parked fetches end now; produce appends finish in storage and find the
     * connection dead (their acknowledgement is dropped, the data is kept). */
    for (rn_request *q = c->reqs, *next; q; q = next) {
        next = q->next;
        if (q->api == RUNNEL__API__FETCH && q->state)
            rn_fetch_cancel(q->state);
    }
    rn_conn_unref(c); /* the reactor list's reference */
}

/* ---- Receiving ------------------------------------------------------------------- */

/* Is any receive buffer held by a request (and so due back to the ring)? */
static bool buffers_out(const rn_reactor *r)
{
    for (unsigned i = 0; i < r->n_bufs; i++)
        if (r->buf_refs[i] > 0)
            return true;
    return false;
}

static void recv_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_conn *c = RN_CONTAINER_OF(op, rn_conn, recv_op);
    rn_reactor *r = c->r;
    if (c->recv_direct) {
        /* A one-shot recv into the decoder's buffer (a big frame's rest). */
        c->recv_direct = false;
        c->recv_armed = false;
        if (res > 0) {
            c->last_active_ms = rn_now_ms();
            r->metrics.bytes_received += (uint64_t)res;
            rn_frame f;
            int rc = rn_frame_decoder_commit(&c->dec, (size_t)res, &f);
            if (rc < 0)
                protocol_error(c, 0, rc, "receive overran the frame");
            else if (rc == 1 && !c->dead && !r->stopping && conn_frame(c, &f, -1))
                maybe_pause(c);
        } else if (res == 0) {
            rn_conn_close(c, "peer closed");
        } else if (res != -ECANCELED) {
            rn_conn_close(c, rn_errname(res));
        }
        if (!c->dead && !c->starved)
            rn_conn_arm_recv(c);
        rn_conn_unref(c);
        return;
    }
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        int bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
        rn_reactor_buf_ref(r, bid);
        /* Shutting down: requests in flight finish, new ones are not read
         * (else a pipelining client keeps the drain busy until its deadline). */
        if (!c->dead && !r->stopping)
            rn_conn_on_data(c, r->bufs + (size_t)bid * r->buf_len, (size_t)res, bid);
        rn_reactor_buf_unref(r, bid);
    } else if (res == 0) {
        if (!c->dead && rn_frame_decoder_buffered(&c->dec) > 0)
            rn_logfmt(RN_INFO, "peer closed mid-frame", "conn=%llu peer=%s buffered=%zu",
                      (unsigned long long)c->id, c->peer, rn_frame_decoder_buffered(&c->dec));
        rn_conn_close(c, "peer closed");
    } else if (res == -ENOBUFS) {
        /* Wait for a buffer only if one is still out: its return wakes the
         * starved list. When every buffer came back before this CQE was seen,
         * no return is coming, so re-arm now (below) or the connection stalls. */
        if (!c->dead && !c->starved && buffers_out(r)) {
            c->starved = true;
            c->refs++;
            c->next_starved = r->starved;
            r->starved = c;
        }
    } else if (res < 0 && res != -ECANCELED) {
        rn_conn_close(c, rn_errname(res));
    }
    if (!more) {
        /* Also after -ECANCELED: a pause may have been lifted while its
         * cancellation was in flight (rn_conn_arm_recv refused then, as
         * recv_armed was still set). rn_conn_arm_recv itself declines for a
         * conn that is dead, paused, closing or starved. */
        if (!c->dead && !c->starved)
            rn_conn_arm_recv(c);
        rn_conn_unref(c);
    }
}

void rn_conn_arm_recv(rn_conn *c)
{
    if (c->dead || c->paused || c->recv_armed || c->starved || c->close_after_send ||
        c->r->stopping)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->recv_op, recv_done);
    if (!sqe)
        return;
    uint8_t *dst;
    size_t space = rn_frame_decoder_space(&c->dec, &dst);
    if (space >= DIRECT_MIN) {
        /* The rest of a big frame, straight where the decoder keeps it. */
        io_uring_prep_recv(sqe, c->fd, dst, space, 0);
        c->recv_direct = true;
    } else {
        /* One-shot, not multishot: a multishot recv would pull a big
         * frame's bytes into receive buffers as fast as they arrive, and
         * they would then be copied into the decoder; re-arming after each
         * completion lets the rest of a big frame go in place (above). */
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = c->r->bgid;
    }
    c->recv_armed = true;
    c->refs++;
}

static void maybe_pause(rn_conn *c)
{
    if (c->paused || c->dead)
        return;
    if (rn_sendq_over(&c->sq, c->r->b->cfg.connection_send_budget) ||
        c->n_reqs >= MAX_REQS_IN_FLIGHT) {
        c->paused = true;
        cancel_recv(c);
    }
}

static void maybe_resume(rn_conn *c)
{
    if (!c->paused || c->dead)
        return;
    if (rn_sendq_drained(&c->sq, c->r->b->cfg.connection_send_budget) &&
        c->n_reqs < MAX_REQS_IN_FLIGHT / 2) {
        c->paused = false;
        rn_conn_arm_recv(c);
    }
}

/* An error answer for a frame that could not become a request. */
static void answer_error(rn_conn *c, uint32_t correlation_id, int err, const char *msg)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = correlation_id;
    h.error_code = (uint32_t)(err < 0 ? -err : err);
    h.error_message = (char *)msg;
    uint8_t *buf;
    size_t len;
    if (rn_frame_encode_alloc(&h.base, 0, &buf, &len) < 0)
        return;
    rn_out *o = rn_out_new(0);
    if (!o) {
        free(buf);
        return;
    }
    o->hdr = buf;
    o->hdr_len = len;
    rn_sendq_push(&c->sq, o);
    rn_conn_flush(c);
}

/* The peer broke the protocol: answer, then close once the answer is out. */
static void protocol_error(rn_conn *c, uint32_t correlation_id, int err, const char *msg)
{
    c->r->metrics.protocol_errors++;
    rn_logfmt(RN_INFO, "protocol error, closing connection", "conn=%llu peer=%s err=%s msg=\"%s\"",
              (unsigned long long)c->id, c->peer, rn_errname(err), msg);
    c->close_after_send = true;
    cancel_recv(c);
    answer_error(c, correlation_id, err == -ENOMEM ? -RN_E_INVALID_REQUEST : err, msg);
    if (!c->sq.head)
        rn_conn_close(c, "protocol error");
}

/* One whole frame → a request, dispatched. bid: the receive buffer holding
 * the frame whole (a Produce keeps it until appended), or -1. Returns false
 * when the connection must stop reading (protocol error). */
static bool conn_frame(rn_conn *c, rn_frame *f, int bid)
{
    rn_broker *b = c->r->b;
    rn_request *req = calloc(1, sizeof(*req));
    if (!req) {
        protocol_error(c, 0, -ENOMEM, "out of memory");
        return false;
    }
    req->conn = c;
    req->rbuf = -1;
    req->start_ns = rn_now_ns();
    c->refs++;
    char err[256] = "";
    int rc = rn_frame_request_decode(&req->fr, f, &b->limits, err, sizeof(err));
    req->api = req->fr.api;
    req->correlation_id = req->fr.correlation_id;
    req->owned = rn_frame_decoder_steal(&c->dec);
    /* Link it before anything can answer it. */
    req->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = req;
    c->reqs = req;
    c->n_reqs++;
    if (rc < 0) {
        if (rn_frame_error_closes(rc)) {
            uint32_t cid = req->fr.have_correlation_id ? req->fr.correlation_id : 0;
            rn_request_free(req);
            protocol_error(c, cid, rc, err);
            return false;
        }
        rn_request_fail(req, rc, err);
        return true;
    }
    if (!req->owned && req->api == RUNNEL__API__PRODUCE && bid >= 0) {
        req->rbuf = bid;
        rn_reactor_buf_ref(c->r, bid);
    }
    rn_dispatch(req);
    return true;
}

void rn_conn_on_data(rn_conn *c, const uint8_t *data, size_t len, int bid)
{
    c->last_active_ms = rn_now_ms();
    c->r->metrics.bytes_received += len;
    while (len > 0 && !c->dead && !c->close_after_send) {
        size_t consumed = 0;
        rn_frame f;
        int rc = rn_frame_decoder_feed(&c->dec, data, len, &consumed, &f);
        if (rc < 0) {
            protocol_error(c, 0, rc, rn_frame_decoder_errmsg(&c->dec));
            return;
        }
        if (rc == 0)
            break;
        const uint8_t *fstart = data;
        data += consumed;
        len -= consumed;
        /* A frame whole in this buffer is decoded in place (bid); a gathered
         * one lives in the decoder's buffer, which the request takes over. */
        bool in_buf = f.payload >= fstart && f.payload < fstart + consumed;
        if (!conn_frame(c, &f, in_buf ? bid : -1))
            return;
    }
    maybe_pause(c);
}

/* ---- Requests and answers ---------------------------------------------------------- */

void rn_request_free(rn_request *req)
{
    rn_conn *c = req->conn;
    if (req->prev)
        req->prev->next = req->next;
    else if (c->reqs == req)
        c->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    c->n_reqs--;
    if (!req->sub) /* a sub-request's header is borrowed (broker/net/shard.c) */
        rn_frame_request_fini(&req->fr);
    rn_bufpool_put(c->r->frames, req->owned);
    if (req->rbuf >= 0)
        rn_reactor_buf_unref(c->r, req->rbuf);
    free(req);
    maybe_resume(c);
    rn_conn_unref(c);
}

void rn_request_respond(rn_request *req, Runnel__ResponseHeader *hdr, rn_slice *slices,
                        unsigned n_slices)
{
    rn_conn *c = req->conn;
    if (!req->sub) /* counted once, by the reactor that received it */
        rn_metrics_observe(&c->r->metrics, req->api, (int)hdr->error_code,
                           rn_now_ns() - req->start_ns);
    hdr->correlation_id = req->correlation_id;
    if (req->sink) {
        if (c->dead) {
            for (unsigned i = 0; i < n_slices; i++)
                rn_slice_release(&slices[i]);
        } else {
            req->sink(req->sink_arg, req, hdr, slices, n_slices);
        }
        rn_request_free(req);
        return;
    }
    rn_out *o = NULL;
    if (c->dead)
        goto drop;
    size_t payload = 0;
    for (unsigned i = 0; i < n_slices; i++)
        payload += slices[i].len;
    o = rn_out_new(0);
    if (!o)
        goto drop;
    if (rn_frame_encode_alloc(&hdr->base, payload, &o->hdr, &o->hdr_len) < 0)
        goto drop;
    if (n_slices) {
        o->slices = malloc(n_slices * sizeof(*o->slices));
        if (!o->slices)
            goto drop;
        memcpy(o->slices, slices, n_slices * sizeof(*slices));
        o->n_slices = n_slices;
    }
    rn_sendq_push(&c->sq, o);
    rn_request_free(req);
    rn_conn_flush(c);
    maybe_pause(c);
    return;

drop:
    if (o)
        rn_out_free(o); /* its slices are not attached yet */
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    if (!c->dead)
        rn_conn_close(c, "out of memory");
    rn_request_free(req);
}

void rn_request_fail(rn_request *req, int err, const char *msg)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.error_code = (uint32_t)(err < 0 ? -err : err);
    h.error_message = (char *)(msg && *msg ? msg : rn_strerror(err));
    rn_request_respond(req, &h, NULL, 0);
}

/* ---- Sending -------------------------------------------------------------------------- */

/* A send completed, or its zero-copy notification came (net/sendq.c keeps
 * what a zero-copy send covered until then; no other send starts before). */
static void send_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_conn *c = RN_CONTAINER_OF(op, rn_conn, send_op);
    bool notif = flags & IORING_CQE_F_NOTIF;
    bool over = rn_sendq_complete(&c->sq, res, flags);
    if (!notif && res >= 0)
        c->r->metrics.bytes_sent += (uint64_t)res;
    if (!notif && res < 0) {
        if (!c->dead)
            rn_conn_close(c, rn_errname(res));
    } else if (!c->dead) {
        if (!over) {
            maybe_resume(c); /* the notification ends this send */
        } else if (c->close_after_send && !c->sq.head) {
            rn_conn_close(c, "protocol error");
        } else {
            if (!notif)
                maybe_resume(c);
            rn_conn_flush(c);
        }
    }
    if (over)
        rn_conn_unref(c);
}

void rn_conn_flush(rn_conn *c)
{
    if (c->dead)
        return;
    if (rn_sendq_start(&c->sq, c->r->io, &c->send_op, send_done, c->fd,
                       c->r->b->cfg.send_zerocopy_bytes))
        c->refs++;
}

const char *rn_request_peer(const rn_request *req)
{
    return req->peer ? req->peer : req->conn->peer;
}

/* ---- In-process requests (gateways) ------------------------------------------------ */

rn_conn *rn_conn_new_virtual(rn_reactor *r, const char *peer)
{
    rn_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->r = r;
    c->fd = -1;
    c->id = ++r->next_conn_id;
    c->refs = 1;
    c->is_virtual = true;
    c->last_active_ms = rn_now_ms();
    rn_sendq_init(&c->sq);
    snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "local");
    rn_frame_decoder_init(&c->dec, &r->b->limits);
    return c;
}

int rn_request_local(rn_conn *c, const Runnel__RequestHeader *hdr, const void *payload,
                     size_t payload_len, rn_request_sink sink, void *sink_arg, char *err,
                     size_t errlen)
{
    rn_broker *b = c->r->b;
    size_t hl = rn_frame_encoded_len(&hdr->base);
    if (payload_len > UINT32_MAX - hl) {
        snprintf(err, errlen, "request too large");
        return -RN_E_REQUEST_TOO_LARGE;
    }
    /* One allocation holds the whole frame, so the payload outlives the
     * caller's buffer and stays put while appends write from it. */
    uint8_t *buf = rn_bufpool_get(c->r->frames, hl + payload_len + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    size_t got;
    int rc = rn_frame_encode(&hdr->base, payload_len, buf, hl, &got);
    if (rc < 0) {
        rn_bufpool_put(c->r->frames, buf);
        snprintf(err, errlen, "cannot encode the request: %s", rn_strerror(rc));
        return rc;
    }
    if (payload_len)
        memcpy(buf + got, payload, payload_len);
    uint32_t header_len = (uint32_t)(got - RN_FRAME_PREFIX_LEN);
    rn_frame f = {.header = buf + RN_FRAME_PREFIX_LEN,
                  .header_len = header_len,
                  .payload = buf + got,
                  .payload_len = (uint32_t)payload_len};
    rn_request *req = calloc(1, sizeof(*req));
    if (!req) {
        rn_bufpool_put(c->r->frames, buf);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = rn_frame_request_decode(&req->fr, &f, &b->limits, err, errlen);
    if (rc < 0) {
        rn_bufpool_put(c->r->frames, buf);
        free(req);
        return rc;
    }
    req->conn = c;
    req->rbuf = -1;
    req->owned = buf;
    req->sink = sink;
    req->sink_arg = sink_arg;
    req->api = req->fr.api;
    req->correlation_id = req->fr.correlation_id;
    req->start_ns = rn_now_ns();
    c->refs++;
    req->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = req;
    c->reqs = req;
    c->n_reqs++;
    rn_dispatch(req);
    return 0;
}
