/*
 * conn.c — the Kafka listener of reactor 0 and its connections: accept
 * (rn_acceptor, the loop the other listeners share), receive, cut frames,
 * queue answers in request order, send.
 *
 * Receiving: a one-shot recv into the connection's own buffer (not the
 * reactor's provided ring: a Kafka request is copied once into its own
 * allocation anyway, as the in-process call copies the native request).
 * The size prefix is checked against socket.request.max.bytes as soon as its
 * 4 bytes are in, before the buffer grows for the frame.
 *
 * Order: Kafka answers a connection's requests in the order they came. Each
 * request takes its place at the tail of the queue; its answer (or, for
 * acks=0, its silence) marks it done, and done requests leave from the head
 * into the send queue.
 *
 * Idle: a 1 s timer closes connections idle for connections.max.idle.ms; it
 * is also the tick on which an accept that ran out of descriptors resumes.
 *
 * Backpressure: with more than connection.send.budget.bytes queued, or 256
 * requests in flight, the connection is not read until that halves.
 *
 * Life: refs counts the listener's list (until closed) and every op in
 * flight. Closing shuts the socket down (ops complete), closes the
 * in-process client (answers still due are dropped, never delivered), and
 * the memory goes with the last reference: a sendmsg in flight still points
 * at the send queue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/kafka/conn.h"
#include "broker/kafka/kafka.h"
#include "broker/logfmt.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"

#define MAX_REQS 256
#define RECV_MIN (64 * 1024)

typedef struct rn_kafka {
    rn_reactor *r;
    rn_acceptor acc; /* the Kafka listener (broker/net/listen.h) */
    uint16_t port;
    rn_io_op tick_op, cancel_tick_op;
    struct __kernel_timespec tick_ts;
    bool stopping, tick_armed, cancel_tick_inflight;
    rn_kconn *conns;
    unsigned n_conns, n_live;
} rn_kafka;

static void conn_close(rn_kconn *c, const char *why);
static void arm_recv(rn_kconn *c);
static void flush(rn_kconn *c);

/* ---- Answers ---------------------------------------------------------------------- */

rn_kout *rn_kout_new(void)
{
    rn_kout *o = calloc(1, sizeof(*o));
    if (o)
        rn_kwriter_init(&o->w);
    return o;
}

void rn_kout_free(rn_kout *o)
{
    if (!o)
        return;
    for (unsigned i = 0; i < o->n_slices; i++)
        rn_slice_release(&o->slices[i]);
    free(o->slices);
    free(o->pieces);
    rn_kwriter_fini(&o->w);
    free(o);
}

static int add_piece(rn_kout *o, const uint8_t *ext, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    rn_kpiece *p = realloc(o->pieces, (o->n_pieces + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    o->pieces = p;
    p[o->n_pieces++] = (rn_kpiece){.ext = ext, .off = off, .len = len};
    return 0;
}

int rn_kout_splice(rn_kout *o, size_t *cut, const uint8_t *ext, size_t len)
{
    if (add_piece(o, NULL, *cut, o->w.len - *cut) < 0 || add_piece(o, ext, 0, len) < 0)
        return -ENOMEM;
    *cut = o->w.len;
    return 0;
}

int rn_kout_finish(rn_kout *o, size_t cut)
{
    if (!o->pieces)
        return 0; /* nothing spliced: the buffer whole */
    return add_piece(o, NULL, cut, o->w.len - cut);
}

static size_t out_total(const rn_kout *o)
{
    if (!o->pieces)
        return o->w.len;
    size_t n = 0;
    for (unsigned i = 0; i < o->n_pieces; i++)
        n += o->pieces[i].len;
    return n;
}

static void req_free(rn_kreq *q)
{
    if (q->ctx_free)
        q->ctx_free(q->ctx);
    rn_kout_free(q->out);
    rn_bufpool_put(q->pool, q->frame);
    free(q);
}

static void maybe_resume(rn_kconn *c)
{
    if (c->paused && !c->dead && c->out_bytes <= c->r->b->cfg.connection_send_budget / 2 &&
        c->n_reqs < MAX_REQS / 2) {
        c->paused = false;
        arm_recv(c);
    }
}

/* Done requests leave the head of the queue for the send queue. */
static void pump(rn_kconn *c)
{
    while (c->q_head && c->q_head->done) {
        rn_kreq *q = c->q_head;
        c->q_head = q->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->n_reqs--;
        rn_kout *o = q->out;
        q->out = NULL;
        req_free(q);
        if (!o)
            continue;
        o->total = out_total(o);
        if (c->out_tail)
            c->out_tail->next = o;
        else
            c->out_head = o;
        c->out_tail = o;
        c->out_bytes += o->total;
    }
    flush(c);
    maybe_resume(c);
}

void rn_kreq_answer(rn_kreq *req, rn_kout *out)
{
    rn_kconn *c = req->c;
    if (!c) { /* rn_kafka_dry_run: keep it for the caller */
        req->out = out;
        req->done = true;
        return;
    }
    if (out && out->w.oom) {
        rn_kout_free(out);
        req->done = true;
        conn_close(c, "out of memory");
        return;
    }
    req->out = out;
    req->done = true;
    if (!c->dead)
        pump(c);
}

void rn_kreq_oom(rn_kreq *req)
{
    req->done = true;
    if (req->c)
        conn_close(req->c, "out of memory");
}

rn_broker *rn_kreq_broker(const rn_kreq *req)
{
    return req->c ? req->c->r->b : NULL;
}

uint16_t rn_kreq_port(const rn_kreq *req)
{
    return req->c ? req->c->k->port : 0;
}

/* ---- Connection life ------------------------------------------------------------------- */

static void unref(rn_kconn *c)
{
    if (--c->refs > 0)
        return;
    rn_kafka *k = c->k;
    k->n_live--;
    if (c->fd >= 0)
        close(c->fd);
    while (c->q_head) {
        rn_kreq *q = c->q_head;
        c->q_head = q->next;
        req_free(q);
    }
    while (c->out_head) {
        rn_kout *o = c->out_head;
        c->out_head = o->next;
        rn_kout_free(o);
    }
    free(c->rbuf);
    free(c);
}

static void op_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_kconn *c = (rn_kconn *)((char *)op - offsetof(rn_kconn, cancel_op));
    (void)res;
    (void)flags;
    unref(c);
}

static void conn_close(rn_kconn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    rn_kafka *k = c->k;
    rn_logfmt(RN_DEBUG, "kafka connection closed", "conn=%llu peer=%s reason=%s",
              (unsigned long long)c->id, c->peer, why);
    if (c->prev)
        c->prev->next = c->next;
    else
        k->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    k->n_conns--;
    rn_conn_slot_give(c->r->b);
    c->r->metrics.connections_active--;
    /* No answer is delivered after this; calls in flight are dropped (their
     * requests stay queued and go with the connection's memory). */
    rn_gw_client_close(&c->cl, why);
    shutdown(c->fd, SHUT_RDWR);
    if (c->recv_armed) {
        struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->cancel_op, op_done);
        if (sqe) {
            c->refs++;
            io_uring_prep_cancel(sqe, &c->recv_op, 0);
        }
    }
    unref(c); /* the list's */
}

static void drop_call(rn_gw_call *call)
{
    (void)call; /* the request stays queued; the connection frees it */
}

/* ---- Receiving ------------------------------------------------------------------------ */

/* One whole request frame (body of body_len bytes at rbuf + 4). */
static int on_frame(rn_kconn *c, const uint8_t *body, size_t body_len)
{
    rn_kreq *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->pool = c->r->frames;
    q->frame = rn_bufpool_get(q->pool, body_len ? body_len : 1);
    if (!q->frame) {
        free(q);
        return -ENOMEM;
    }
    memcpy(q->frame, body, body_len);
    q->frame_len = body_len;
    q->c = c;
    rn_kreader_init(&q->body, q->frame, body_len);
    int rc = rn_kafka_header_parse(&q->body, &q->h);
    if (rc < 0) {
        rn_logfmt(RN_INFO, "kafka request header malformed, closing connection",
                  "conn=%llu peer=%s why=\"%s\"", (unsigned long long)c->id, c->peer, q->body.why);
        req_free(q);
        return rc;
    }
    if (c->q_tail)
        c->q_tail->next = q;
    else
        c->q_head = q;
    c->q_tail = q;
    c->n_reqs++;
    rc = rn_kafka_dispatch(q);
    if (rc < 0) {
        rn_logfmt(RN_INFO, "kafka request malformed, closing connection",
                  "conn=%llu peer=%s api_key=%d api_version=%d why=\"%s\"",
                  (unsigned long long)c->id, c->peer, q->h.api_key, q->h.api_version,
                  q->body.err ? q->body.why : rn_strerror(rc));
        return rc;
    }
    return 0;
}

static void on_data(rn_kconn *c)
{
    uint32_t max = c->r->b->cfg.socket_request_max_bytes;
    size_t pos = 0;
    while (!c->dead && c->rlen - pos >= 4) {
        int64_t n = rn_kafka_frame_size(c->rbuf + pos, max);
        if (n < 0) {
            rn_logfmt(RN_INFO, "kafka frame refused, closing connection",
                      "conn=%llu peer=%s err=%s", (unsigned long long)c->id, c->peer,
                      rn_errname((int)n));
            c->r->metrics.protocol_errors++;
            conn_close(c, "bad frame size");
            return;
        }
        if (c->rlen - pos - 4 < (size_t)n) {
            /* Make room for the whole frame (its size passed the limit). */
            size_t need = 4 + (size_t)n;
            if (pos > 0) {
                memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
                c->rlen -= pos;
                pos = 0;
            }
            if (need > c->rcap) {
                uint8_t *b = realloc(c->rbuf, need);
                if (!b) {
                    conn_close(c, "out of memory");
                    return;
                }
                c->rbuf = b;
                c->rcap = need;
            }
            break;
        }
        int rc = on_frame(c, c->rbuf + pos + 4, (size_t)n);
        pos += 4 + (size_t)n;
        if (rc < 0) {
            c->r->metrics.protocol_errors++;
            conn_close(c, "malformed request");
            return;
        }
    }
    if (pos > 0 && !c->dead) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    if (!c->dead && (c->out_bytes > c->r->b->cfg.connection_send_budget || c->n_reqs >= MAX_REQS))
        c->paused = true;
}

static void recv_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_kconn *c = (rn_kconn *)((char *)op - offsetof(rn_kconn, recv_op));
    (void)flags;
    c->recv_armed = false;
    if (!c->dead) {
        if (res > 0) {
            c->last_active_ms = rn_now_ms();
            c->rlen += (size_t)res;
            c->r->metrics.bytes_received += (uint64_t)res;
            on_data(c);
            arm_recv(c);
        } else if (res == 0) {
            conn_close(c, "peer closed");
        } else if (res != -ECANCELED) {
            conn_close(c, rn_errname(res));
        }
    }
    unref(c);
}

static void arm_recv(rn_kconn *c)
{
    if (c->dead || c->paused || c->recv_armed || c->k->stopping)
        return;
    if (c->rcap - c->rlen < RECV_MIN / 4) {
        size_t cap = c->rcap < RECV_MIN ? RECV_MIN : c->rcap * 2;
        uint8_t *b = realloc(c->rbuf, cap);
        if (!b) {
            conn_close(c, "out of memory");
            return;
        }
        c->rbuf = b;
        c->rcap = cap;
    }
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->recv_op, recv_done);
    if (!sqe)
        return;
    io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    c->recv_armed = true;
    c->refs++;
}

/* ---- Sending ----------------------------------------------------------------------------- */

static void send_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_kconn *c = (rn_kconn *)((char *)op - offsetof(rn_kconn, send_op));
    (void)flags;
    c->send_inflight = false;
    if (res < 0) {
        if (!c->dead)
            conn_close(c, rn_errname(res));
        unref(c);
        return;
    }
    c->r->metrics.bytes_sent += (uint64_t)res;
    c->last_active_ms = rn_now_ms();
    size_t n = (size_t)res;
    while (n > 0 && c->out_head) {
        rn_kout *o = c->out_head;
        size_t left = o->total - o->sent;
        if (n < left) {
            o->sent += n;
            c->out_bytes -= n;
            break;
        }
        n -= left;
        c->out_bytes -= left;
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = NULL;
        rn_kout_free(o);
    }
    if (!c->dead) {
        flush(c);
        maybe_resume(c);
    }
    unref(c);
}

static void flush(rn_kconn *c)
{
    if (c->send_inflight || c->dead || !c->out_head)
        return;
    unsigned n = 0;
    const unsigned max = sizeof(c->iov) / sizeof(c->iov[0]);
    for (rn_kout *o = c->out_head; o && n < max; o = o->next) {
        size_t skip = o->sent;
        rn_kpiece whole = {.ext = NULL, .off = 0, .len = o->w.len};
        const rn_kpiece *ps = o->pieces ? o->pieces : &whole;
        unsigned np = o->pieces ? o->n_pieces : 1;
        for (unsigned i = 0; i < np && n < max; i++) {
            if (skip >= ps[i].len) {
                skip -= ps[i].len;
                continue;
            }
            const uint8_t *base = ps[i].ext ? ps[i].ext : o->w.buf + ps[i].off;
            c->iov[n].iov_base = (void *)(base + skip);
            c->iov[n].iov_len = ps[i].len - skip;
            n++;
            skip = 0;
        }
    }
    if (n == 0)
        return;
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.msg_iov = c->iov;
    c->msg.msg_iovlen = n;
    struct io_uring_sqe *sqe = rn_io_sqe(c->r->io, &c->send_op, send_done);
    if (!sqe)
        return;
    io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    c->send_inflight = true;
    c->refs++;
}

/* ---- Accept ------------------------------------------------------------------------------ */

static void conn_new(void *arg, int fd)
{
    rn_kafka *k = arg;
    rn_reactor *r = k->r;
    if (k->stopping || r->stopping || !rn_conn_slot_take(r->b)) {
        rn_conn_refused(r, "kafka",
                        k->stopping || r->stopping ? "shutting_down" : "max.connections");
        rn_listen_close_refused(fd);
        return;
    }
    rn_kconn *c = calloc(1, sizeof(*c));
    if (!c) {
        rn_conn_slot_give(r->b);
        close(fd);
        return;
    }
    c->k = k;
    c->r = r;
    c->fd = fd;
    c->id = ++r->next_conn_id;
    c->refs = 1;
    c->last_active_ms = rn_now_ms();
    k->n_live++;
    rn_listen_accepted(fd, c->peer, sizeof(c->peer));
    char vpeer[96];
    snprintf(vpeer, sizeof(vpeer), "kafka:%s", c->peer);
    rn_gw_client_init(&c->cl, r, vpeer);
    c->next = k->conns;
    if (k->conns)
        k->conns->prev = c;
    k->conns = c;
    k->n_conns++;
    r->metrics.connections_total++;
    r->metrics.connections_active++;
    arm_recv(c);
}

static void shed_one(void *arg, int fd)
{
    rn_kafka *k = arg;
    rn_conn_refused(k->r, "kafka", "out_of_descriptors");
    rn_listen_close_refused(fd);
}

/* ---- Tick: idle connections ------------------------------------------------------------ */

#define TICK_MS 1000

static void arm_tick(rn_kafka *k);

/* connections.max.idle.ms, as for native connections: one with nothing in
 * flight and nothing to send for that long is closed (a Kafka client
 * reconnects when it needs to), so silent clients do not hold slots. */
static void tick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_kafka *k = (rn_kafka *)((char *)op - offsetof(rn_kafka, tick_op));
    (void)res;
    (void)flags;
    k->tick_armed = false;
    if (k->stopping)
        return;
    rn_acceptor_tick(&k->acc);
    int64_t now = rn_now_ms(), idle = k->r->b->cfg.connections_max_idle_ms;
    for (rn_kconn *c = k->conns, *next; c; c = next) {
        next = c->next;
        if (idle > 0 && !c->q_head && !c->out_head && now - c->last_active_ms > idle)
            conn_close(c, "idle");
    }
    arm_tick(k);
}

static void arm_tick(rn_kafka *k)
{
    k->tick_armed = true;
    rn_io_timer(k->r->io, &k->tick_op, tick_done, &k->tick_ts, TICK_MS);
}

int rn_kafka_listen(rn_reactor *r, const char *hostport)
{
    rn_kafka *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->r = r;
    rn_acceptor_init(&k->acc, "kafka", conn_new, shed_one, k);
    int fd;
    int rc = rn_listen_open("kafka", hostport, true, &fd);
    if (rc < 0) {
        free(k);
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        k->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    r->kafka = k;
    rn_acceptor_start(&k->acc, r->io, fd);
    arm_tick(k);
    return 0;
}

uint16_t rn_kafka_port(const rn_reactor *r)
{
    return r && r->kafka ? r->kafka->port : 0;
}

/* ---- Shutdown ------------------------------------------------------------------------------ */

static void cancel_tick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_kafka *k = (rn_kafka *)((char *)op - offsetof(rn_kafka, cancel_tick_op));
    (void)res;
    (void)flags;
    k->cancel_tick_inflight = false;
}

void rn_kafka_stop(rn_reactor *r)
{
    rn_kafka *k = r ? r->kafka : NULL;
    if (!k || k->stopping)
        return;
    k->stopping = true;
    rn_acceptor_stop(&k->acc);
    if (k->tick_armed && !k->cancel_tick_inflight) {
        struct io_uring_sqe *sqe = rn_io_sqe(r->io, &k->cancel_tick_op, cancel_tick_done);
        if (sqe) {
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&k->tick_op, 0);
            k->cancel_tick_inflight = true;
        }
    }
    while (k->conns)
        conn_close(k->conns, "shutdown");
}

bool rn_kafka_idle(rn_reactor *r)
{
    rn_kafka *k = r ? r->kafka : NULL;
    return !k ||
           (!k->n_live && rn_acceptor_idle(&k->acc) && !k->tick_armed && !k->cancel_tick_inflight);
}

void rn_kafka_free(rn_reactor *r)
{
    rn_kafka *k = r ? r->kafka : NULL;
    if (!k)
        return;
    while (k->conns)
        conn_close(k->conns, "freed");
    rn_acceptor_fini(&k->acc);
    free(k);
    r->kafka = NULL;
}

/* For apis.c: a call on the connection's in-process client. */
int rn_kreq_call(rn_kreq *req, Runnel__RequestHeader *hdr, const void *payload, size_t len,
                 rn_gw_answer_cb on_answer)
{
    return rn_kreq_call_as(req, &req->call, hdr, payload, len, on_answer);
}

int rn_kreq_call_as(rn_kreq *req, rn_gw_call *call, Runnel__RequestHeader *hdr, const void *payload,
                    size_t len, rn_gw_answer_cb on_answer)
{
    if (!req->c)
        return -RN_E_CLOSED; /* rn_kafka_dry_run: no broker behind */
    char err[256];
    int rc = rn_gw_client_call(&req->c->cl, hdr, payload, len, call, on_answer, drop_call, err,
                               sizeof(err));
    if (rc < 0)
        rn_logfmt(RN_DEBUG, "kafka: native request refused", "conn=%llu err=%s msg=\"%s\"",
                  (unsigned long long)req->c->id, rn_errname(rc), err);
    return rc;
}

/* ---- Without a broker (fuzzing, tests) ------------------------------------------------------ */

static int dry_run(const void *body, size_t len, size_t *answer_len, rn_kwriter *copy)
{
    if (answer_len)
        *answer_len = 0;
    rn_kreq *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->frame = rn_bufpool_get(NULL, len ? len : 1);
    if (!q->frame) {
        free(q);
        return -ENOMEM;
    }
    memcpy(q->frame, body, len);
    q->frame_len = len;
    rn_kreader_init(&q->body, q->frame, len);
    int rc = rn_kafka_header_parse(&q->body, &q->h);
    if (rc == 0)
        rc = rn_kafka_dispatch(q);
    if (rc == 0 && q->done && q->out && answer_len)
        *answer_len = out_total(q->out);
    if (rc == 0 && q->done && q->out && copy) {
        /* With no broker there is no fetch data: the writer holds it all. */
        rn_kwrite_raw(copy, q->out->w.buf, q->out->w.len);
        if (copy->oom)
            rc = -ENOMEM;
    }
    req_free(q);
    return rc;
}

int rn_kafka_dry_run(const void *body, size_t len, size_t *answer_len)
{
    return dry_run(body, len, answer_len, NULL);
}

int rn_kafka_dry_run_copy(const void *body, size_t len, rn_kwriter *answer)
{
    return dry_run(body, len, NULL, answer);
}
