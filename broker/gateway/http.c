/*
 * http.c — HTTP/1.1 connections of the gateway: the socket side on the
 * reactor's io_uring, the send queue and the responses. The request reader
 * they feed (libhttp-parser's callbacks, the arena, the limits) is
 * http_reader.c.
 *
 * Connection (rn_http_conn). Bytes arrive by multishot recv into the
 * reactor's provided buffers (the buffer is copied into c->in and returned at
 * once, so HTTP never holds the ring's buffers) and are pumped through the
 * reader. Answers queue in the send queue shared with native connections
 * (net/sendq.c) and leave by sendmsg, one send
 * in flight at a time.
 *
 *   HTTP ──request──▶ busy ──rn_http_respond──▶ HTTP (keep-alive)
 *     │                 │                    └─▶ close after send (Connection: close)
 *     │                 └──rn_http_start_stream──▶ STREAM (SSE / WebSocket)
 *     └──bad input──▶ answer 400/413, shutdown(SHUT_WR), linger (discard input
 *                     up to RN_HTTP_LINGER_MS so the client reads the answer
 *                     instead of a reset), close
 *
 * Re-entrancy: broker answers (sinks) may run inside rn_request_local or
 * inside another handler's loop (rn_partition_wake). So nothing here calls
 * back into the broker from a sink: the next request is parsed from a NOP
 * completion (rn_http_conn_kick), never on the stack of the previous answer.
 *
 * Admission (rn_http_conn_new). A connection takes one of max.connections'
 * slots, counted over the whole broker (broker/net/listen.c). At the limit:
 *   slot free ──────────────▶ a connection like any other
 *   reserve place free ─────▶ over_limit + reserve: GET/HEAD /healthz,
 *                             /readyz, /metrics are served; anything else
 *                             gets 503 + Retry-After and a lingering close;
 *                             the place is given back once it is answered
 *                             (rn_http_close_after_send)
 *   reserve full, a whole ──▶ over_limit + one_shot: served once, closed
 *   health/metrics request
 *   already in
 *   otherwise ──────────────▶ 503 + Retry-After written on the fresh socket,
 *                             closed (rn_http_refuse_at_once)
 * The listener accepts a client only once its first bytes are in
 * (TCP_DEFER_ACCEPT, gateway.c), so silent clients hold none of this.
 *
 * Backpressure: reading stops while unparsed input passes
 * RN_HTTP_MAX_PENDING_IN (a client pipelining faster than it is answered) or
 * the queue passes connection.send.budget.bytes, and resumes at half.
 *
 * Life: refs counts the gateway's list, every op in flight and every pump on
 * the stack. rn_http_conn_close marks the conn dead, runs the stream's
 * on_close, closes the virtual broker connection (answers still in flight are
 * dropped by the broker, never delivered), shuts the socket down and drops the
 * list's reference; memory and fd go with the last reference, so the out
 * queue is never freed under a sendmsg in flight.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/gateway/http.h"
#include "broker/logfmt.h"
#include "broker/net/conn.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"

const char *rn_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- Connection: life --------------------------------------------------------------- */

static void arm_recv(rn_http_conn *c);
static void flush(rn_http_conn *c);
static void pump(rn_http_conn *c);
static void kick(rn_http_conn *c);

void rn_http_conn_ref(rn_http_conn *c)
{
    c->refs++;
}

void rn_http_conn_unref(rn_http_conn *c)
{
    if (--c->refs > 0)
        return;
    if (c->fd >= 0)
        close(c->fd);
    rn_sendq_fini(&c->sq);
    free(c->in);
    rn_http_reader_fini(&c->rd);
    free(c);
}

static void op_unref_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_http_conn *c = RN_CONTAINER_OF(op, rn_http_conn, cancel_op);
    (void)res;
    (void)flags;
    c->cancel_inflight = false;
    /* A pause lifted (or a linger started) while the cancel was in flight. */
    if (!c->dead)
        arm_recv(c);
    rn_http_conn_unref(c);
}

static void cancel_recv(rn_http_conn *c)
{
    if (!c->recv_armed || c->cancel_inflight)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->cancel_op, op_unref_done);
    if (!sqe)
        return;
    c->refs++;
    c->cancel_inflight = true;
    io_uring_prep_cancel(sqe, &c->recv_op, 0);
}

static bool ops_request(const rn_http_request *req);
static int keep_input(rn_http_conn *c, const uint8_t *data, size_t len);

/* Does data hold a whole GET or HEAD of /healthz, /readyz or /metrics? */
static bool arrived_ops_request(const uint8_t *data, size_t len)
{
    rn_http_reader rd;
    rn_http_reader_init(&rd, RN_HTTP_MAX_HEADER_BYTES, 0);
    size_t used;
    bool ok = rn_http_reader_feed(&rd, data, len, &used) == 1 && ops_request(&rd.req);
    rn_http_reader_fini(&rd);
    return ok;
}

/* The body of the 503 for max.connections. */
static int busy_body(const rn_gateway *gw, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "{\"error_code\":50302,\"message\":\"the broker has max.connections=%u "
                    "connections open; retry later\"}",
                    gw->b->cfg.max_connections);
}

/* Past the reserve: answer 503 on the fresh socket without a connection
 * object. It is non-blocking and tiny (it fits any socket's send buffer).
 * Whatever request arrived already is read and dropped first, so the close
 * sends a FIN after the answer rather than a reset that could destroy it. */
void rn_http_refuse_at_once(rn_gateway *gw, int fd, const char *reason)
{
    char body[160], msg[400], sink[4096];
    int bl = busy_body(gw, body, sizeof(body));
    int ml = snprintf(msg, sizeof(msg),
                      "HTTP/1.1 503 Service Unavailable\r\nServer: runneld\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n"
                      "Retry-After: %d\r\nConnection: close\r\n\r\n%s",
                      bl, RN_HTTP_RETRY_AFTER_S, body);
    for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    if (send(fd, msg, (size_t)ml, MSG_DONTWAIT | MSG_NOSIGNAL) == ml)
        gw->m.responses[5]++;
    shutdown(fd, SHUT_WR);
    gw->m.busy_refusals++;
    rn_conn_refused(gw->r, "http", reason);
    close(fd);
}

rn_http_conn *rn_http_conn_new(rn_gateway *gw, int fd)
{
    rn_broker *b = gw->b;
    if (gw->stopping) {
        rn_conn_refused(gw->r, "http", "shutting_down");
        close(fd);
        return NULL;
    }
    bool over = !rn_conn_slot_take(b);
    bool reserve = over && gw->n_reserve < gw->reserve_cap;
    uint8_t first[2048];
    ssize_t first_len = 0;
    if (over && !reserve) {
        /* Past the reserve (a burst of clients larger than it in one turn
         * of the loop): a health or metrics request that has already
         * arrived is still served, once, on a connection outside the
         * reserve; anything else, or nothing yet, gets the 503 now. */
        first_len = recv(fd, first, sizeof(first), MSG_DONTWAIT);
        if (first_len <= 0 || !arrived_ops_request(first, (size_t)first_len)) {
            rn_http_refuse_at_once(gw, fd, "max.connections");
            return NULL;
        }
    }
    rn_http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        if (!over)
            rn_conn_slot_give(b);
        close(fd);
        return NULL;
    }
    c->over_limit = over;
    c->reserve = reserve;
    c->one_shot = over && !reserve;
    if (reserve)
        gw->n_reserve++;
    c->gw = gw;
    c->r = gw->r;
    c->fd = fd;
    c->id = ++gw->next_id;
    c->refs = 1; /* the gateway's list */
    rn_sendq_init(&c->sq);
    c->last_active_ms = c->last_send_ms = rn_now_ms();
    rn_http_reader_init(&c->rd, RN_HTTP_MAX_HEADER_BYTES, gw->max_body);
    rn_gw_client_init(&c->client, gw->r, NULL);
    c->client.route = true; /* partitions led elsewhere go to their leaders */
    rn_listen_accepted(fd, c->peer, sizeof(c->peer));
    snprintf(c->client.peer, sizeof(c->client.peer), "http %s", c->peer);
    c->next = gw->conns;
    if (gw->conns)
        gw->conns->prev = c;
    gw->conns = c;
    gw->n_conns++;
    gw->m.connections_total++;
    gw->m.connections_active++;
    rn_logfmt(RN_DEBUG, "http connection accepted", "conn=%llu peer=%s", (unsigned long long)c->id,
              c->peer);
    if (first_len > 0) {
        if (keep_input(c, first, (size_t)first_len) < 0) {
            rn_http_conn_close(c, "out of memory");
            return NULL;
        }
        kick(c); /* parse it from a fresh stack */
    }
    arm_recv(c);
    return c;
}

void rn_http_conn_close(rn_http_conn *c, const char *why)
{
    if (c->dead)
        return;
    rn_gateway *gw = c->gw;
    c->dead = true;
    rn_logfmt(RN_DEBUG, "http connection closed", "conn=%llu peer=%s reason=%s",
              (unsigned long long)c->id, c->peer, why);
    if (c->stream_ops && c->stream_ops->on_close)
        c->stream_ops->on_close(c);
    c->stream = NULL;
    /* Answers still in flight are dropped from here on. */
    rn_gw_client_close(&c->client, why);
    if (c->prev)
        c->prev->next = c->next;
    else
        gw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    gw->n_conns--;
    if (c->reserve)
        gw->n_reserve--;
    if (!c->over_limit)
        rn_conn_slot_give(gw->b);
    gw->m.connections_active--;
    shutdown(c->fd, SHUT_RDWR);
    cancel_recv(c);
    rn_http_conn_unref(c); /* the list's reference */
}

void rn_http_conn_fail(rn_http_conn *c, const char *why)
{
    if (c->dead || c->fail_why)
        return;
    c->fail_why = why;
    kick(c);
}

/* ---- Connection: receiving --------------------------------------------------------------- */

static void retry_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_http_conn *c = RN_CONTAINER_OF(op, rn_http_conn, retry_op);
    (void)res;
    (void)flags;
    c->retry_armed = false;
    arm_recv(c);
    rn_http_conn_unref(c);
}

/* Append received bytes to the unparsed input. */
static int keep_input(rn_http_conn *c, const uint8_t *data, size_t len)
{
    if (c->in_off > 0 && c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (c->in_len + len > c->in_cap) {
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + len)
            cap *= 2;
        uint8_t *n = realloc(c->in, cap);
        if (!n)
            return -ENOMEM;
        c->in = n;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    return 0;
}

static void on_input(rn_http_conn *c, const uint8_t *data, size_t len)
{
    c->last_active_ms = rn_now_ms();
    c->gw->r->metrics.bytes_received += len;
    if (c->lingering)
        return; /* after an error answer: read and forget */
    if (c->mode == RN_HTTP_MODE_STREAM && c->in_len == c->in_off) {
        if (c->stream_ops && c->stream_ops->on_data)
            c->stream_ops->on_data(c, data, len);
        return;
    }
    if (keep_input(c, data, len) < 0) {
        rn_http_conn_close(c, "out of memory");
        return;
    }
    pump(c);
}

static void recv_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_http_conn *c = RN_CONTAINER_OF(op, rn_http_conn, recv_op);
    rn_reactor *r = c->r;
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        int bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
        /* Hold and give back around the call: the bytes are copied (or
         * consumed) inside it, so the buffer returns to the ring at once. */
        rn_reactor_buf_ref(r, bid);
        if (!c->dead)
            on_input(c, r->bufs + (size_t)bid * r->buf_len, (size_t)res);
        rn_reactor_buf_unref(r, bid);
    } else if (res == 0) {
        rn_http_conn_close(c, "peer closed");
    } else if (res == -ENOBUFS) {
        /* The ring ran dry (native produce requests hold buffers): try again
         * shortly rather than spin. */
        if (!c->dead && !c->retry_armed) {
            c->retry_armed = true;
            c->refs++;
            rn_io_timer(r->io, &c->retry_op, retry_done, &c->retry_ts, 5);
        }
    } else if (res < 0 && res != -ECANCELED) {
        rn_http_conn_close(c, rn_errname(res));
    }
    if (!more) {
        if (!c->dead && !c->retry_armed)
            arm_recv(c);
        rn_http_conn_unref(c);
    }
}

static void arm_recv(rn_http_conn *c)
{
    if (c->dead || c->read_paused || c->recv_armed || c->retry_armed || c->cancel_inflight)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->recv_op, recv_done);
    if (!sqe)
        return;
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = c->r->bgid;
    c->recv_armed = true;
    c->refs++;
}

static size_t send_budget(const rn_http_conn *c)
{
    return c->mode == RN_HTTP_MODE_STREAM ? c->gw->stream_budget
                                          : c->gw->b->cfg.connection_send_budget;
}

/* Stop or restart reading by the bounds on unparsed input and queued output. */
static void update_reading(rn_http_conn *c)
{
    if (c->dead)
        return;
    size_t pending = c->in_len - c->in_off;
    size_t budget = send_budget(c);
    if (!c->read_paused) {
        if (pending > RN_HTTP_MAX_PENDING_IN || rn_sendq_over(&c->sq, budget)) {
            c->read_paused = true;
            cancel_recv(c);
        }
    } else if (pending <= RN_HTTP_MAX_PENDING_IN / 2 && rn_sendq_drained(&c->sq, budget)) {
        c->read_paused = false;
        arm_recv(c);
    }
}

/* ---- Connection: parsing and dispatch ------------------------------------------------------ */

static void kick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_http_conn *c = RN_CONTAINER_OF(op, rn_http_conn, kick_op);
    (void)res;
    (void)flags;
    c->kick_armed = false;
    if (c->fail_why && !c->dead)
        rn_http_conn_close(c, c->fail_why);
    if (!c->dead)
        pump(c);
    rn_http_conn_unref(c);
}

/* Parse what is pending from a fresh stack (a NOP completion). */
static void kick(rn_http_conn *c)
{
    if (c->kick_armed || c->dead)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->kick_op, kick_done);
    if (!sqe)
        return;
    io_uring_prep_nop(sqe);
    c->kick_armed = true;
    c->refs++;
}

static void answer_reader_error(rn_http_conn *c)
{
    rn_http_reader *rd = &c->rd;
    c->gw->m.bad_requests++;
    int code = rd->status == 413 ? 41301 : rd->status == 503 ? 50301 : rd->status * 100 + 1;
    rn_logfmt(RN_DEBUG, "bad http request", "conn=%llu peer=%s status=%d msg=\"%s\"",
              (unsigned long long)c->id, c->peer, rd->status, rd->errmsg);
    /* The request cannot be trusted to be framed: answer, then close after a
     * lingering read so the client sees the answer, not a reset. */
    c->busy = true;
    c->lingering = false;
    c->close_after = true;
    rn_http_respond_error(c, rd->status, code, "%s", rd->errmsg);
}

/* What a reserve connection may ask: GET or HEAD of /healthz, /readyz or
 * /metrics (slashes around the name as rest.c allows them). */
static bool ops_request(const rn_http_request *req)
{
    if (req->method != HTTP_GET && req->method != HTTP_HEAD)
        return false;
    const char *p = req->path;
    while (*p == '/')
        p++;
    size_t n = strcspn(p, "/");
    for (const char *t = p + n; *t; t++)
        if (*t != '/')
            return false;
    return (n == 7 && (!memcmp(p, "healthz", 7) || !memcmp(p, "metrics", 7))) ||
           (n == 6 && !memcmp(p, "readyz", 6));
}

/* A reserve connection asked for something else: 503, Retry-After, close. */
static void refuse_busy(rn_http_conn *c)
{
    char body[160], extra[32];
    int bl = busy_body(c->gw, body, sizeof(body));
    snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", RN_HTTP_RETRY_AFTER_S);
    c->gw->m.busy_refusals++;
    rn_conn_refused(c->r, "http", "max.connections");
    c->close_after = true;
    rn_http_respond(c, 503, "application/json", body, (size_t)bl, extra);
}

static void pump(rn_http_conn *c)
{
    if (c->in_pump || c->dead)
        return;
    c->in_pump = true;
    c->refs++;
    while (!c->dead && !c->busy && !c->close_after && c->mode == RN_HTTP_MODE_HTTP) {
        size_t avail = c->in_len - c->in_off;
        if (avail == 0)
            break;
        if (!rn_http_reader_in_message(&c->rd))
            c->request_start_ms = rn_now_ms();
        size_t used = 0;
        int rc = rn_http_reader_feed(&c->rd, c->in + c->in_off, avail, &used);
        c->in_off += used;
        if (c->rd.want_continue) {
            c->rd.want_continue = false;
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (rn_http_write(c, cont, sizeof(cont) - 1, true) < 0) {
                rn_http_conn_close(c, "out of memory");
                break;
            }
        }
        if (rc == 0)
            break;
        if (rc < 0) {
            answer_reader_error(c);
            break;
        }
        c->busy = true;
        c->gw->m.requests_total++;
        c->head = c->rd.req.method == HTTP_HEAD;
        if (c->one_shot)
            c->rd.req.keep_alive = false; /* past the reserve: one answer, then close */
        if (c->over_limit && !ops_request(&c->rd.req)) {
            refuse_busy(c);
            break;
        }
        rn_rest_dispatch(c, &c->rd.req);
        if (c->mode == RN_HTTP_MODE_STREAM) {
            /* A stream never reads HTTP again: the request can go. */
            rn_http_reader_fini(&c->rd);
            rn_http_reader_init(&c->rd, 0, 0);
        }
    }
    /* A stream took over: what came after the upgrade request is its. */
    if (!c->dead && c->mode == RN_HTTP_MODE_STREAM && c->in_off < c->in_len) {
        size_t n = c->in_len - c->in_off;
        uint8_t *rest = c->in + c->in_off;
        c->in_off = c->in_len;
        if (c->stream_ops && c->stream_ops->on_data)
            c->stream_ops->on_data(c, rest, n);
    }
    if (!c->dead) {
        if (c->in_off == c->in_len) {
            c->in_off = c->in_len = 0;
            if (c->in_cap > 16384) {
                free(c->in);
                c->in = NULL;
                c->in_cap = 0;
            }
        }
        update_reading(c);
    }
    c->in_pump = false;
    rn_http_conn_unref(c);
}

/* The current request is answered (or became a stream). */
static void end_request(rn_http_conn *c, bool keep_alive)
{
    c->busy = false;
    if (c->mode != RN_HTTP_MODE_HTTP)
        return;
    if (!keep_alive || c->close_after) {
        rn_http_close_after_send(c);
        return;
    }
    rn_http_reader_next(&c->rd);
    if (c->in_off < c->in_len)
        kick(c);
}

/* ---- Connection: sending -------------------------------------------------------------------- */

static void finish_close_after(rn_http_conn *c)
{
    if (c->sq.head || c->dead)
        return;
    if ((c->rd.failed || c->over_limit) && !c->lingering) {
        /* Input may still be arriving (a body we refused, requests a
         * refused client pipelined): stop writing, keep reading and
         * dropping it until EOF or the deadline, so the client reads the
         * answer rather than a reset. */
        c->lingering = true;
        c->linger_until_ms = rn_now_ms() + RN_HTTP_LINGER_MS;
        shutdown(c->fd, SHUT_WR);
        c->read_paused = false;
        arm_recv(c);
        return;
    }
    if (!c->lingering)
        rn_http_conn_close(c, "done");
}

static void send_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_http_conn *c = RN_CONTAINER_OF(op, rn_http_conn, send_op);
    rn_sendq_complete(&c->sq, res, flags); /* never zero-copy: always over */
    if (res < 0) {
        rn_http_conn_close(c, rn_errname(res));
        rn_http_conn_unref(c);
        return;
    }
    c->gw->r->metrics.bytes_sent += (uint64_t)res;
    c->out_sent_total += (size_t)res;
    if (res > 0)
        c->last_send_ms = rn_now_ms();
    if (!c->dead) {
        size_t budget = send_budget(c);
        if (c->mode == RN_HTTP_MODE_STREAM && c->sq.bytes < budget / 2 && c->stream_ops &&
            c->stream_ops->on_drain)
            c->stream_ops->on_drain(c);
        if (!c->dead) {
            flush(c);
            if (c->close_after)
                finish_close_after(c);
            else
                update_reading(c);
        }
    }
    rn_http_conn_unref(c);
}

static void flush(rn_http_conn *c)
{
    if (c->dead)
        return;
    if (rn_sendq_start(&c->sq, c->r->io, &c->send_op, send_done, c->fd, 0))
        c->refs++;
}

/* Queue o (ownership passes) and start sending. */
static void queue(rn_http_conn *c, rn_out *o, bool boundary)
{
    o->boundary = boundary;
    rn_sendq_push(&c->sq, o);
    flush(c);
}

int rn_http_write(rn_http_conn *c, const void *data, size_t len, bool boundary)
{
    if (c->dead)
        return -EPIPE;
    if (len == 0) {
        if (boundary)
            rn_http_mark_boundary(c);
        return 0;
    }
    rn_out *o = rn_out_new(len);
    if (!o)
        return -ENOMEM;
    memcpy(o->data, data, len);
    queue(c, o, boundary);
    return 0;
}

int rn_http_write_chunk(rn_http_conn *c, const void *data, size_t len)
{
    if (len == 0)
        return 0; /* a zero-length chunk would end the body */
    char hdr[24];
    int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
    if (c->dead)
        return -EPIPE;
    rn_out *o = rn_out_new((size_t)hl + len + 2);
    if (!o)
        return -ENOMEM;
    memcpy(o->data, hdr, (size_t)hl);
    memcpy(o->data + hl, data, len);
    memcpy(o->data + hl + len, "\r\n", 2);
    queue(c, o, true);
    return 0;
}

void rn_http_mark_boundary(rn_http_conn *c)
{
    rn_sendq_mark_boundary(&c->sq);
}

void rn_http_drop_queued(rn_http_conn *c)
{
    rn_sendq_drop(&c->sq, true);
}

void rn_http_close_after_send(rn_http_conn *c)
{
    c->close_after = true;
    /* A reserve connection on its way out (refused, answered, bad input)
     * gives its place back now: what is left, sending and the lingering
     * close, has its own time bound, and a flood of refused clients must
     * not crowd out the probes the reserve is for. */
    if (c->reserve) {
        c->reserve = false;
        c->gw->n_reserve--;
    }
    cancel_recv(c);
    c->read_paused = true;
    if (!c->sq.head && !c->sq.inflight)
        finish_close_after(c);
}

/* ---- Responses ------------------------------------------------------------------------------- */

void rn_http_respond(rn_http_conn *c, int status, const char *content_type, const void *body,
                     size_t len, const char *extra_headers)
{
    if (c->dead)
        return;
    rn_gateway *gw = c->gw;
    /* Shutting down: requests already received are still answered (503 by
     * rest.c), so the connection stays open while pipelined input waits. */
    bool pending = c->in_off < c->in_len;
    /* An upgrade request answered in HTTP (refused): what follows it was
     * meant for another protocol, so the connection ends here. */
    bool keep_alive = c->rd.req.keep_alive && !c->rd.req.upgrade && !c->close_after &&
                      !c->rd.failed && (!gw->stopping || pending);
    char head[1024];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\n"
                      "Server: runneld\r\n"
                      "%s%s%s"
                      "Content-Length: %zu\r\n"
                      "%s%s%s"
                      "%s"
                      "\r\n",
                      status, rn_http_reason(status), content_type ? "Content-Type: " : "",
                      content_type ? content_type : "", content_type ? "\r\n" : "", len,
                      c->origin_allow[0] ? "Access-Control-Allow-Origin: " : "", c->origin_allow,
                      c->origin_allow[0] ? "\r\nVary: Origin\r\n" : "",
                      keep_alive ? "" : "Connection: close\r\n");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        rn_http_conn_close(c, "response head too long");
        return;
    }
    size_t xl = extra_headers ? strlen(extra_headers) : 0;
    bool with_body = !c->head && status != 204 && status != 304;
    size_t total = (size_t)hl + xl + (with_body ? len : 0);
    rn_out *o = rn_out_new(total);
    if (!o) {
        rn_http_conn_close(c, "out of memory");
        return;
    }
    /* extra headers go before the blank line that ends the head */
    memcpy(o->data, head, (size_t)hl - 2);
    if (xl)
        memcpy(o->data + hl - 2, extra_headers, xl);
    memcpy(o->data + hl - 2 + xl, "\r\n", 2);
    if (with_body && len)
        memcpy(o->data + hl + xl, body, len);
    gw->m.responses[status / 100 < 6 ? status / 100 : 5]++;
    c->origin_allow[0] = 0;
    queue(c, o, true);
    end_request(c, keep_alive);
}

void rn_http_respond_error(rn_http_conn *c, int status, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* JSON-escape the message by hand: it is ours or a broker message, short. */
    char body[1200];
    size_t o = (size_t)snprintf(body, sizeof(body), "{\"error_code\":%d,\"message\":\"", code);
    for (const char *s = msg; *s && o < sizeof(body) - 8; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            body[o++] = '\\';
            body[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(body + o, sizeof(body) - o, "\\u%04x", ch);
        } else {
            body[o++] = (char)ch;
        }
    }
    o += (size_t)snprintf(body + o, sizeof(body) - o, "\"}");
    rn_http_respond(c, status, "application/json", body, o, NULL);
}

void rn_http_start_stream(rn_http_conn *c, const rn_http_stream_ops *ops, void *state,
                          const char *head_block)
{
    c->mode = RN_HTTP_MODE_STREAM;
    c->stream_ops = ops;
    c->stream = state;
    c->busy = false;
    c->last_send_ms = rn_now_ms();
    /* The budget bounds what a stream may hold, kernel included: without a
     * cap, send-buffer autotuning lets a client that stopped reading park
     * megabytes in the kernel before the budget (our queue) even starts to
     * fill. Linux doubles the value given. */
    int sndbuf = (int)c->gw->stream_budget;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    int status = head_block && strlen(head_block) > 12 ? atoi(head_block + 9) : 200;
    c->gw->m.responses[status >= 100 && status < 600 ? status / 100 : 5]++;
    if (head_block && rn_http_write(c, head_block, strlen(head_block), true) < 0) {
        rn_http_conn_fail(c, "out of memory");
        return;
    }
    update_reading(c);
}

/* ---- Connection: timers and shutdown
 * ------------------------------------------------------------- */

bool rn_http_conn_has_room(const rn_http_conn *c)
{
    return c->sq.bytes < c->gw->stream_budget;
}

bool rn_http_conn_stalled(const rn_http_conn *c, int64_t now_ms)
{
    return c->sq.bytes >= c->gw->stream_budget && now_ms - c->last_send_ms > RN_HTTP_STALL_MS;
}

void rn_http_conn_tick(rn_http_conn *c, int64_t now_ms)
{
    if (c->dead)
        return;
    if (c->lingering) {
        if (now_ms > c->linger_until_ms)
            rn_http_conn_close(c, "linger done");
        return;
    }
    if (c->mode == RN_HTTP_MODE_STREAM) {
        if (c->stream_ops && c->stream_ops->on_tick)
            c->stream_ops->on_tick(c, now_ms);
        return;
    }
    if (c->busy || c->close_after)
        return;
    int request_ms = c->over_limit ? RN_HTTP_RESERVE_MS : RN_HTTP_REQUEST_MS;
    if (rn_http_reader_in_message(&c->rd)) {
        if (now_ms - c->request_start_ms > request_ms) {
            c->busy = true;
            c->close_after = true;
            rn_http_respond_error(c, 408, 40801, "request not complete after %d ms", request_ms);
        }
        return;
    }
    if (!c->sq.head &&
        now_ms - c->last_active_ms > (c->over_limit ? RN_HTTP_RESERVE_MS : RN_HTTP_IDLE_MS))
        rn_http_conn_close(c, "idle");
}

void rn_http_conn_shutdown(rn_http_conn *c)
{
    if (c->dead)
        return;
    if (c->mode == RN_HTTP_MODE_STREAM) {
        if (c->stream_ops && c->stream_ops->on_shutdown)
            c->stream_ops->on_shutdown(c);
        else
            rn_http_close_after_send(c);
        return;
    }
    if (!c->busy) {
        if (c->sq.head)
            rn_http_close_after_send(c);
        else
            rn_http_conn_close(c, "shutdown");
        return;
    }
    /* A request in flight answers first; a long poll answers now with what
     * there is (the reactor is stopping, so the fetch is final). */
    rn_gw_client_wake(&c->client);
}
