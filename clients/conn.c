/*
 * conn.c — the client's connections and its poll loop.
 *
 * A connection (rn__conn) is one non-blocking TCP socket to one host:port,
 * with a send buffer, a sans-I/O frame decoder (protocol/frame.c) and the list
 * of its requests in flight. Requests are pipelined: rn__conn_send encodes
 * the header and copies the payload to the end of the send buffer and returns
 * (sending a Produce straight from the batches with sendmsg was measured: it
 * cost the client more CPU than the copy into the warm send buffer);
 * answers may come back in any order and are matched to their request by
 * correlation id (unique per client, never 0). Nothing here knows what a
 * request means: each carries a callback (rn__resp_cb) that gets the decoded
 * response, or the error that ended it.
 *
 * States of a connection:
 *
 *    DOWN ──poll: requests queued, backoff over──▶ CONNECTING ──writable, SO_ERROR 0──▶ UP
 *     ▲        (getaddrinfo, non-blocking connect)   │ refused: next address, else   │
 *     │                                              │ fail; connect.timeout.ms:     │
 *     └──────────── conn_fail() ◀────────────────────┴─ fail ◀── EOF, send/recv ─────┘
 *                                                                error, bad frame,
 *                                                                request timeout
 *
 * conn_fail closes the socket, drops unsent bytes and the decoder's partial
 * frame, sets next_attempt = now + reconnect.backoff.ms, and ends every
 * pending request with the error (their callbacks may queue new requests: the
 * connection is already reset, so those wait for the next connect).
 *
 * Invariants:
 *  1. Callbacks run only inside rn__client_poll / rn__client_fini, never inside
 *     rn__conn_send, so a caller never re-enters itself.
 *  2. A request is answered at most once: it is unlinked before its callback.
 *  3. Every request has a deadline; rn__client_poll never sleeps past the
 *     earliest one, so a synchronous wait (rn__client_call) always ends.
 *  4. Connections are never freed before the client: handles may keep
 *     pointers to them.
 *  5. A response is decoded against the API of its request; a response that
 *     does not fit (wrong body, bad frame) breaks the connection, since the
 *     stream can no longer be trusted.
 *
 * Receiving: recv() fills a 256 KiB buffer whose frames the decoder returns
 * in place (no copy). A frame that does not fit what was received and is
 * large (a Fetch answer of up to max.partition.fetch.bytes per partition) is
 * instead received straight into a buffer of its own size, kept from frame to
 * frame, and fed to the decoder whole once complete: without it the decoder
 * would copy every byte of it once more into a fresh allocation, whose page
 * faults cost more than the copy. A response callback may take that buffer
 * with the frame in it (rn__conn_take_frame: the consumer keeps Fetch data
 * there instead of copying it out) and hand it back once done
 * (rn__conn_recycle); the connection keeps BIG_SPARES such buffers, already
 * faulted in, for the next big frames. That buffer, the spares and the fill
 * level (struct rx) live behind c->rbuf, the one receive field internal.h
 * gives a connection.
 *
 * Host names are resolved with getaddrinfo when a connect starts, which may
 * block on DNS; numeric addresses (the usual case) never do. Every address
 * of a name is tried in turn within one connect.timeout.ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clients/internal.h"
#include "protocol/bytes.h"

#define RBUF_SIZE (256u << 10)
/* Frames at least this large that are not whole in one recv are received in
 * place (see the top of the file); smaller ones are not worth a buffer. */
#define BIG_FRAME (64u << 10)
/* A big-frame buffer larger than this is freed after its frame instead of kept. */
#define BIG_KEEP (8u << 20)

/* Big-frame buffers a connection keeps for the next frames besides its own. */
#define BIG_SPARES 2

/* What c->rbuf points to. */
typedef struct rx {
    uint8_t *frame;    /* a big frame (its 4-byte length included), or NULL */
    size_t have, need; /* bytes of it received, its size; need 0: none in progress */
    size_t cap;        /* size of the frame allocation */
    bool in_dispatch;  /* frame holds the frame whose callback runs now */
    /* Buffers handed back by rn__conn_recycle, largest first. */
    uint8_t *spare[BIG_SPARES];
    size_t spare_cap[BIG_SPARES];
    size_t n_spare;
    uint8_t buf[]; /* RBUF_SIZE bytes (c->rbuf_cap) for recv */
} rx;

static rx *rx_of(const rn__conn *c)
{
    return (rx *)(void *)c->rbuf;
}

struct rn__pending {
    uint32_t cid;
    int api;
    bool no_response;
    uint64_t end_pos; /* queued_total after its last byte */
    int64_t deadline;
    int timeout_ms;
    rn__resp_cb cb;
    void *arg;
    rn__pending *next;
};

/* ---- Errors ------------------------------------------------------------------ */

int rn__fail(rn__client *cl, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->errmsg, sizeof(cl->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

const char *rn__conn_errmsg(const rn__conn *c)
{
    return c->errmsg;
}

size_t rn__conn_inflight(const rn__conn *c)
{
    return c->n_pending;
}

/* ---- Client life -------------------------------------------------------------- */

int rn__client_init(rn__client *cl, const rn_conf *conf)
{
    memset(cl, 0, sizeof(*cl));
    cl->conf = rn_conf_dup(conf);
    if (!cl->conf)
        return rn__fail(cl, -ENOMEM, "out of memory");
    char err[256];
    int rc = rn__parse_servers(conf->bootstrap_servers, &cl->boot_hosts, &cl->boot_ports,
                               &cl->n_boot, err, sizeof(err));
    if (rc < 0) {
        rn_conf_free(cl->conf);
        cl->conf = NULL;
        return rn__fail(cl, rc, "%s", rc == -ENOMEM ? "out of memory" : err);
    }
    cl->next_cid = 1;
    cl->md.controller_id = -1;
    /* Responses may be large (a Fetch of fetch.max.bytes, whose first batch can
     * pass the limits, a Metadata of a large cluster): raise the limits that a
     * broker keeps low for requests, and keep them finite. */
    uint64_t msg = conf->message_max_bytes ? (uint64_t)conf->message_max_bytes
                                           : (uint64_t)RN_FRAME_DEFAULT_MAX_REQUEST;
    uint64_t max = (uint64_t)conf->fetch_max_bytes + 2ull * msg + (16u << 20);
    cl->lim.max_request = max > UINT32_MAX - 8 ? UINT32_MAX - 8 : (uint32_t)max;
    cl->lim.max_header = 64u << 20;
    cl->lim.max_entries = 1000000;
    cl->lim.max_decode_mem = 256u << 20;
    return 0;
}

static void conn_fail(rn__conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void rn__client_fini(rn__client *cl)
{
    if (!cl->conf)
        return;
    /* End every request; a callback may queue another (a retry), so repeat
     * until nothing is left. Handles stop retrying once they are closing. */
    for (int round = 0; round < 100; round++) {
        bool any = false;
        for (size_t i = 0; i < cl->n_conns; i++) {
            rn__conn *c = cl->conns[i];
            if (c->n_pending) {
                any = true;
                conn_fail(c, -RN_E_CLOSED, "client closed");
            }
        }
        if (!any)
            break;
    }
    for (size_t i = 0; i < cl->n_conns; i++) {
        rn__conn *c = cl->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        for (rn__pending *p = c->head, *next; p; p = next) {
            next = p->next;
            free(p);
        }
        if (c->ai)
            freeaddrinfo(c->ai);
        rn_frame_decoder_fini(&c->dec);
        free(c->out);
        if (c->rbuf) {
            free(rx_of(c)->frame);
            for (size_t k = 0; k < rx_of(c)->n_spare; k++)
                free(rx_of(c)->spare[k]);
        }
        free(c->rbuf);
        free(c->host);
        free(c);
    }
    free(cl->conns);
    for (size_t i = 0; i < cl->n_boot; i++)
        free(cl->boot_hosts[i]);
    free(cl->boot_hosts);
    free(cl->boot_ports);
    rn__md_fini(&cl->md);
    rn_conf_free(cl->conf);
    cl->conf = NULL;
}

/* ---- Finding connections --------------------------------------------------------- */

rn__conn *rn__client_conn(rn__client *cl, const char *host, uint16_t port)
{
    for (size_t i = 0; i < cl->n_conns; i++)
        if (cl->conns[i]->port == port && strcmp(cl->conns[i]->host, host) == 0)
            return cl->conns[i];
    rn__conn **v = realloc(cl->conns, (cl->n_conns + 1) * sizeof(*v));
    if (!v)
        return NULL;
    cl->conns = v;
    rn__conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->host = strdup(host);
    c->rbuf = malloc(sizeof(rx) + RBUF_SIZE);
    if (c->rbuf)
        memset(c->rbuf, 0, sizeof(rx));
    if (!c->host || !c->rbuf) {
        free(c->host);
        free(c->rbuf);
        free(c);
        return NULL;
    }
    c->cl = cl;
    c->port = port;
    c->fd = -1;
    c->state = RN__CONN_DOWN;
    c->rbuf_cap = RBUF_SIZE;
    rn_frame_decoder_init(&c->dec, &cl->lim);
    cl->conns[cl->n_conns++] = c;
    return c;
}

rn__conn *rn__client_conn_node(rn__client *cl, int32_t node_id)
{
    for (size_t i = 0; i < cl->md.n_brokers; i++)
        if (cl->md.brokers[i].node_id == node_id)
            return rn__client_conn(cl, cl->md.brokers[i].host, cl->md.brokers[i].port);
    return NULL;
}

rn__conn *rn__client_conn_any(rn__client *cl)
{
    for (size_t i = 0; i < cl->n_conns; i++)
        if (cl->conns[i]->state == RN__CONN_UP)
            return cl->conns[i];
    for (size_t i = 0; i < cl->n_conns; i++)
        if (cl->conns[i]->state == RN__CONN_CONNECTING)
            return cl->conns[i];
    size_t b = cl->next_boot % cl->n_boot;
    return rn__client_conn(cl, cl->boot_hosts[b], cl->boot_ports[b]);
}

/* ---- Failing ---------------------------------------------------------------------- */

static void conn_fail(rn__conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    c->last_err = err;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = RN__CONN_DOWN;
    c->next_attempt = rn__now_ms() + c->cl->conf->reconnect_backoff_ms;
    if (c->ai)
        freeaddrinfo(c->ai);
    c->ai = c->ai_next = NULL;
    c->out_len = c->out_off = 0;
    c->sent_total = c->queued_total;
    rn_frame_decoder_fini(&c->dec);
    rn_frame_decoder_init(&c->dec, &c->cl->lim);
    rx_of(c)->need = rx_of(c)->have = 0;
    /* Detach first: callbacks may queue new requests on c. */
    rn__pending *p = c->head;
    c->head = c->tail = NULL;
    c->n_pending = 0;
    while (p) {
        rn__pending *next = p->next;
        c->cl->n_callbacks++;
        p->cb(p->arg, c, err, NULL);
        free(p);
        p = next;
    }
}

static void unlink_pending(rn__conn *c, rn__pending *prev, rn__pending *p)
{
    if (prev)
        prev->next = p->next;
    else
        c->head = p->next;
    if (c->tail == p)
        c->tail = prev;
    c->n_pending--;
}

/* ---- Connecting --------------------------------------------------------------------- */

static bool try_addresses(rn__conn *c)
{
    int err = -ECONNREFUSED;
    while (c->ai_next) {
        struct addrinfo *ai = c->ai_next;
        c->ai_next = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        /* Requests are whole frames written at once: do not let Nagle hold the tail. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            c->state = RN__CONN_UP;
            return true;
        }
        if (errno == EINPROGRESS) {
            c->fd = fd;
            c->state = RN__CONN_CONNECTING;
            return true;
        }
        err = -errno;
        close(fd);
    }
    conn_fail(c, err, "cannot connect to %s:%u: %s", c->host, c->port, strerror(-err));
    return false;
}

static void start_connect(rn__conn *c, int64_t now)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", c->port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(c->host, port, &hints, &res);
    if (rc != 0) {
        int err = rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
        conn_fail(c, err, "cannot connect to %s:%u: cannot resolve %s: %s", c->host, c->port,
                  c->host, gai_strerror(rc));
        return;
    }
    c->ai = c->ai_next = res;
    c->connect_deadline = now + c->cl->conf->connect_timeout_ms;
    try_addresses(c);
}

/* The socket became writable or failed while connecting. */
static void finish_connect(rn__conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0) {
        c->state = RN__CONN_UP;
        return;
    }
    close(c->fd);
    c->fd = -1;
    if (c->ai_next) {
        try_addresses(c);
        return;
    }
    conn_fail(c, -soerr, "cannot connect to %s:%u: %s", c->host, c->port, strerror(soerr));
}

/* ---- Sending ------------------------------------------------------------------------- */

static int out_reserve(rn__conn *c, size_t need)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len >= need)
        return 0;
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= need)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 64 << 10;
    while (cap - c->out_len < need)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p)
        return -ENOMEM;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

/* Requests that expect no answer are done once their bytes are written. */
static void complete_unanswered(rn__conn *c)
{
    rn__pending *prev = NULL, *p = c->head;
    while (p) {
        rn__pending *next = p->next;
        if (p->no_response && p->end_pos <= c->sent_total) {
            unlink_pending(c, prev, p);
            c->cl->n_callbacks++;
            p->cb(p->arg, c, 0, NULL);
            free(p);
        } else {
            prev = p;
        }
        p = next;
    }
}

/* Write what the socket takes. Returns false when the connection failed. With
 * may_fail false (called from rn__conn_send) an error is left for the next
 * poll to find, so no callback runs. */
static bool conn_flush(rn__conn *c, bool may_fail)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->sent_total += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (may_fail) {
            int err = n < 0 ? -errno : -EPIPE;
            conn_fail(c, err, "connection to %s:%u: send failed: %s", c->host, c->port,
                      strerror(-err));
            return false;
        }
        break;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    return true;
}

int rn__conn_send(rn__conn *c, Runnel__RequestHeader *h, const void *payload, size_t len, int api,
                  int timeout_ms, bool no_response, rn__resp_cb cb, void *arg)
{
    struct iovec iov = {(void *)payload, len};
    return rn__conn_sendv(c, h, &iov, len ? 1 : 0, api, timeout_ms, no_response, cb, arg);
}

int rn__conn_sendv(rn__conn *c, Runnel__RequestHeader *h, const struct iovec *iov, int iovcnt,
                   int api, int timeout_ms, bool no_response, rn__resp_cb cb, void *arg)
{
    rn__client *cl = c->cl;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    rn__pending *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    if (cl->next_cid == 0)
        cl->next_cid = 1;
    h->correlation_id = cl->next_cid++;
    h->client_id = cl->conf->client_id;
    h->api = (Runnel__Api)api;
    size_t hl = rn_frame_encoded_len(&h->base);
    if (len > UINT32_MAX - hl) {
        free(p);
        return -EMSGSIZE;
    }
    int rc = out_reserve(c, hl + len);
    if (rc < 0) {
        free(p);
        return rc;
    }
    size_t w;
    rc = rn_frame_encode(&h->base, len, c->out + c->out_len, c->out_cap - c->out_len, &w);
    if (rc < 0) {
        free(p);
        return rc;
    }
    c->out_len += w;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(c->out + c->out_len, iov[i].iov_base, iov[i].iov_len);
        c->out_len += iov[i].iov_len;
    }
    c->queued_total += w + len;
    p->cid = h->correlation_id;
    p->api = api;
    p->no_response = no_response;
    p->end_pos = c->queued_total;
    p->timeout_ms = timeout_ms;
    p->deadline = rn__now_ms() + timeout_ms;
    p->cb = cb;
    p->arg = arg;
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    c->n_pending++;
    /* Start writing now: the request leaves without waiting for the next poll. */
    if (c->state == RN__CONN_UP)
        conn_flush(c, false);
    return 0;
}

/* ---- Receiving ------------------------------------------------------------------------- */

uint8_t *rn__conn_take_frame(rn__conn *c, size_t *cap)
{
    rx *x = rx_of(c);
    if (!x->in_dispatch || !x->frame)
        return NULL;
    uint8_t *f = x->frame;
    *cap = x->cap;
    x->frame = NULL;
    x->cap = 0;
    return f;
}

void rn__conn_recycle(rn__conn *c, uint8_t *buf, size_t cap)
{
    rx *x = rx_of(c);
    if (cap > BIG_KEEP || cap < BIG_FRAME) {
        free(buf);
        return;
    }
    /* Without a frame buffer the next big frame takes this one at once. */
    if (!x->frame && !x->need) {
        x->frame = buf;
        x->cap = cap;
        return;
    }
    if (x->n_spare == BIG_SPARES) {
        if (x->spare_cap[BIG_SPARES - 1] >= cap) {
            free(buf);
            return;
        }
        free(x->spare[--x->n_spare]);
    }
    size_t i = x->n_spare;
    for (; i > 0 && x->spare_cap[i - 1] < cap; i--) {
        x->spare[i] = x->spare[i - 1];
        x->spare_cap[i] = x->spare_cap[i - 1];
    }
    x->spare[i] = buf;
    x->spare_cap[i] = cap;
    x->n_spare++;
}

/* One whole response frame: decode it and hand it to its request. Returns
 * false when the connection failed. */
static bool dispatch(rn__conn *c, const rn_frame *f)
{
    rn_frame_response resp;
    char eb[160];
    int rc = rn_frame_response_decode(&resp, f, 0, &c->cl->lim, eb, sizeof(eb));
    if (rc < 0) {
        conn_fail(c, rc, "bad response from %s:%u: %s", c->host, c->port, eb);
        return false;
    }
    uint32_t cid = resp.hdr->correlation_id;
    rn__pending *prev = NULL, *p = c->head;
    while (p && p->cid != cid) {
        prev = p;
        p = p->next;
    }
    if (!p || p->no_response) {
        /* Nothing asked for this: a broker bug; the stream is still in sync. */
        rn_frame_response_fini(&resp);
        return true;
    }
    unlink_pending(c, prev, p);
    int body = (int)resp.hdr->body_case;
    if ((body == 0 && resp.hdr->error_code == 0) || (body != 0 && body != 9 + p->api)) {
        rn_frame_response_fini(&resp);
        snprintf(c->errmsg, sizeof(c->errmsg),
                 "bad response from %s:%u: %s answered with body field %d", c->host, c->port,
                 rn_frame_api_name(p->api), body);
        c->cl->n_callbacks++;
        p->cb(p->arg, c, -RN_E_INVALID_REQUEST, NULL);
        free(p);
        conn_fail(c, -RN_E_INVALID_REQUEST, "bad response from %s:%u: wrong body", c->host,
                  c->port);
        return false;
    }
    c->cl->n_callbacks++;
    p->cb(p->arg, c, 0, &resp);
    rn_frame_response_fini(&resp);
    free(p);
    return true;
}

/* recv what the socket has, up to len bytes: > 0 bytes read, 0 nothing now
 * (EAGAIN), -1 the connection failed (conn_fail done). */
static ssize_t conn_recv(rn__conn *c, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0) {
            int err = -errno;
            conn_fail(c, err, "connection to %s:%u: %s", c->host, c->port, strerror(-err));
        } else {
            conn_fail(c, -ECONNRESET, "connection to %s:%u closed by the broker", c->host, c->port);
        }
        return -1;
    }
}

/* Feed a whole big frame to the decoder (it returns it in place) and dispatch
 * it. Returns false when the connection failed. */
static bool big_frame_done(rn__conn *c)
{
    rx *x = rx_of(c);
    size_t used = 0, need = x->need;
    rn_frame f;
    int r = rn_frame_decoder_feed(&c->dec, x->frame, need, &used, &f);
    x->need = x->have = 0;
    if (r < 0) {
        conn_fail(c, r, "bad frame from %s:%u: %s", c->host, c->port,
                  rn_frame_decoder_errmsg(&c->dec));
        return false;
    }
    /* Fed at a frame boundary with exactly one whole frame, the decoder returns
     * it in place; anything else means the stream is out of step. */
    if (r != 1 || used != need) {
        conn_fail(c, -RN_E_INVALID_REQUEST, "bad frame from %s:%u: not one whole frame", c->host,
                  c->port);
        return false;
    }
    x->in_dispatch = true;
    bool ok = dispatch(c, &f);
    x->in_dispatch = false;
    if (x->cap > BIG_KEEP) {
        free(x->frame);
        x->frame = NULL;
        x->cap = 0;
    }
    return ok;
}

/* buf[0, len) starts at a frame boundary with a frame that is big and not
 * whole in it: move it to the big-frame buffer, where the rest is received in
 * place. False when it is not such a frame or there is no memory (then the
 * decoder gathers it as usual). */
static bool big_frame_start(rn__conn *c, const uint8_t *buf, size_t len)
{
    rx *x = rx_of(c);
    if (len < RN_FRAME_PREFIX_LEN || rn_frame_decoder_buffered(&c->dec) != 0)
        return false;
    uint32_t frame_len = rn_get_be32(buf);
    /* Larger than the limit: left to the decoder, which refuses it. */
    if (frame_len < BIG_FRAME || frame_len > c->cl->lim.max_request || 4 + (size_t)frame_len <= len)
        return false;
    size_t need = 4 + (size_t)frame_len;
    if (x->cap < need) {
        /* A buffer handed back is already faulted in: the smallest that fits. */
        size_t k = x->n_spare;
        while (k > 0 && x->spare_cap[k - 1] < need)
            k--;
        if (k > 0) {
            free(x->frame);
            x->frame = x->spare[k - 1];
            x->cap = x->spare_cap[k - 1];
            for (size_t j = k; j < x->n_spare; j++) {
                x->spare[j - 1] = x->spare[j];
                x->spare_cap[j - 1] = x->spare_cap[j];
            }
            x->n_spare--;
        } else {
            free(x->frame);
            x->frame = malloc(need);
            x->cap = x->frame ? need : 0;
            if (!x->frame)
                return false;
        }
    }
    memcpy(x->frame, buf, len);
    x->have = len;
    x->need = need;
    return true;
}

static void conn_read(rn__conn *c)
{
    rx *x = rx_of(c);
    /* Bounded: one busy connection must not starve the others. */
    for (int round = 0; round < 16; round++) {
        if (x->need) {
            ssize_t n = conn_recv(c, x->frame + x->have, x->need - x->have);
            if (n <= 0)
                return;
            x->have += (size_t)n;
            if (x->have == x->need && !big_frame_done(c))
                return;
            continue;
        }
        ssize_t n = conn_recv(c, x->buf, c->rbuf_cap);
        if (n <= 0)
            return;
        size_t off = 0;
        while (off < (size_t)n) {
            if (big_frame_start(c, x->buf + off, (size_t)n - off))
                break;
            size_t used = 0;
            rn_frame f;
            int r = rn_frame_decoder_feed(&c->dec, x->buf + off, (size_t)n - off, &used, &f);
            if (r < 0) {
                conn_fail(c, r, "bad frame from %s:%u: %s", c->host, c->port,
                          rn_frame_decoder_errmsg(&c->dec));
                return;
            }
            off += used;
            if (r == 1 && !dispatch(c, &f))
                return;
        }
        if ((size_t)n < c->rbuf_cap && !x->need)
            return;
    }
}

/* ---- Poll --------------------------------------------------------------------------------- */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Fail the connection if a request or the connect passed its deadline. */
static void check_deadlines(rn__conn *c, int64_t now)
{
    if (c->state == RN__CONN_CONNECTING && now >= c->connect_deadline) {
        conn_fail(c, -ETIMEDOUT, "cannot connect to %s:%u: Connection timed out after %d ms",
                  c->host, c->port, c->cl->conf->connect_timeout_ms);
        return;
    }
    for (rn__pending *p = c->head; p; p = p->next) {
        if (now >= p->deadline) {
            if (c->state == RN__CONN_UP)
                conn_fail(c, -RN_E_TIMEOUT, "%s request to %s:%u timed out after %d ms",
                          rn_frame_api_name(p->api), c->host, c->port, p->timeout_ms);
            else {
                /* Never connected in time: say why the last attempt failed. */
                char why[sizeof(c->errmsg)];
                snprintf(why, sizeof(why), "%s", c->last_err ? c->errmsg : "");
                conn_fail(c, c->last_err ? c->last_err : -RN_E_TIMEOUT,
                          "%s request to %s:%u timed out after %d ms%s%s",
                          rn_frame_api_name(p->api), c->host, c->port, p->timeout_ms,
                          *why ? ": " : "", why);
            }
            return;
        }
    }
}

int rn__client_poll(rn__client *cl, int timeout_ms)
{
    int64_t now = rn__now_ms();
    int64_t wake = timeout_ms < 0 ? INT64_MAX : now + timeout_ms;
    /* Kafka's metadata.max.age.ms: topics in use are looked up again now and
     * then, so a topic's added partitions are used without an error first. */
    rn__metadata *md = &cl->md;
    if (md->n_wanted && md->good_generation && !md->in_flight &&
        now - md->refreshed_at >= cl->conf->metadata_max_age_ms)
        rn__md_refresh(cl);
    uint64_t callbacks = cl->n_callbacks;
    size_t n = cl->n_conns;
    for (size_t i = 0; i < n; i++) {
        rn__conn *c = cl->conns[i];
        if (c->state == RN__CONN_DOWN && c->n_pending && now >= c->next_attempt)
            start_connect(c, now);
        else if (c->state == RN__CONN_UP && c->out_off < c->out_len)
            conn_flush(c, true);
        if (c->state == RN__CONN_UP)
            complete_unanswered(c);
    }
    /* A callback above may have produced what the caller waits for (an acks=0
     * delivery, a failed request): then only look, do not sleep. */
    if (cl->n_callbacks != callbacks)
        wake = now;
    /* Connections may have been added by callbacks above: poll what exists now. */
    n = cl->n_conns;
    struct pollfd stack_pfds[16];
    struct pollfd *pfds = n <= 16 ? stack_pfds : calloc(n, sizeof(*pfds));
    if (!pfds)
        return -ENOMEM;
    nfds_t nfds = 0;
    for (size_t i = 0; i < n; i++) {
        rn__conn *c = cl->conns[i];
        pfds[i].fd = -1;
        pfds[i].events = 0;
        pfds[i].revents = 0;
        if (c->state == RN__CONN_CONNECTING) {
            wake = min64(wake, c->connect_deadline);
            pfds[i].fd = c->fd;
            pfds[i].events = POLLOUT;
        } else if (c->state == RN__CONN_UP) {
            pfds[i].fd = c->fd;
            pfds[i].events = POLLIN | (c->out_off < c->out_len ? POLLOUT : 0);
        } else if (c->n_pending) {
            wake = min64(wake, c->next_attempt);
        }
        for (rn__pending *p = c->head; p; p = p->next)
            wake = min64(wake, p->deadline);
        nfds = (nfds_t)(i + 1);
    }
    int64_t wait = wake == INT64_MAX ? -1 : wake - now;
    if (wait < 0 && wake != INT64_MAX)
        wait = 0;
    if (wait > INT32_MAX)
        wait = INT32_MAX;
    int rc = poll(pfds, nfds, (int)wait);
    if (rc < 0 && errno != EINTR) {
        rc = -errno;
        if (pfds != stack_pfds)
            free(pfds);
        return rc;
    }
    for (size_t i = 0; rc > 0 && i < n; i++) {
        rn__conn *c = cl->conns[i];
        short re = pfds[i].revents;
        if (!re || c->fd != pfds[i].fd)
            continue;
        if (c->state == RN__CONN_CONNECTING) {
            finish_connect(c);
            if (c->state != RN__CONN_UP)
                continue;
        }
        if (c->state == RN__CONN_UP && (re & POLLOUT)) {
            if (!conn_flush(c, true))
                continue;
            complete_unanswered(c);
        }
        if (c->state == RN__CONN_UP && (re & (POLLIN | POLLHUP | POLLERR)))
            conn_read(c);
        /* A connection that just came up may have requests queued. */
        if (c->state == RN__CONN_UP && c->out_off < c->out_len && conn_flush(c, true))
            complete_unanswered(c);
    }
    if (pfds != stack_pfds)
        free(pfds);
    now = rn__now_ms();
    for (size_t i = 0; i < cl->n_conns; i++)
        check_deadlines(cl->conns[i], now);
    return 0;
}

/* ---- Synchronous calls ------------------------------------------------------------------------
 */

void rn__reply_fini(rn__reply *r)
{
    rn_frame_response_fini(&r->resp);
    free(r->frame);
    r->frame = NULL;
    r->hdr = NULL;
}

typedef struct call_state {
    rn__client *cl;
    rn__reply *out;
    bool done;
    int err;
} call_state;

static void call_cb(void *arg, rn__conn *c, int err, rn_frame_response *resp)
{
    call_state *st = arg;
    st->done = true;
    if (err) {
        st->err = err;
        rn__fail(st->cl, err, "%s", c->errmsg);
        return;
    }
    /* Keep the answer past the callback: take the unpacked header (the struct
     * may move, frame.h says) and copy the payload out of the receive buffer. */
    rn__reply *out = st->out;
    if (resp->payload_len) {
        out->frame = malloc(resp->payload_len);
        if (!out->frame) {
            st->err = rn__fail(st->cl, -ENOMEM, "out of memory");
            return;
        }
        memcpy(out->frame, resp->payload, resp->payload_len);
    }
    out->resp = *resp;
    out->resp.payload = out->frame;
    out->hdr = resp->hdr;
    resp->hdr = NULL;
}

int rn__client_call(rn__client *cl, rn__conn *c, Runnel__RequestHeader *h, const void *payload,
                    size_t len, int api, int timeout_ms, rn__reply *out)
{
    memset(out, 0, sizeof(*out));
    call_state st = {.cl = cl, .out = out};
    int rc = rn__conn_send(c, h, payload, len, api, timeout_ms, false, call_cb, &st);
    if (rc < 0)
        return rn__fail(cl, rc, "cannot send %s request: %s", rn_frame_api_name(api),
                        rn_strerror(rc));
    /* The request's own deadline ends this loop (invariant 3). */
    while (!st.done) {
        rc = rn__client_poll(cl, -1);
        if (rc < 0 && !st.done) {
            /* Out of memory for the poll set: wait a little and try again;
             * st must stay alive until the callback has run. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (st.err) {
        rn__reply_fini(out);
        return st.err;
    }
    return 0;
}

static bool connect_error(int err)
{
    return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EHOSTUNREACH ||
           err == -ENETUNREACH || err == -ECONNRESET || err == -EPIPE || err == -ENETDOWN;
}

int rn__client_call_any(rn__client *cl, Runnel__RequestHeader *h, int api, int timeout_ms,
                        rn__reply *out)
{
    int rc = -RN_E_UNKNOWN;
    for (size_t attempt = 0; attempt < cl->n_boot; attempt++) {
        rn__conn *c = rn__client_conn_any(cl);
        if (!c)
            return rn__fail(cl, -ENOMEM, "out of memory");
        rc = rn__client_call(cl, c, h, NULL, 0, api, timeout_ms, out);
        if (rc == 0 || !connect_error(rc))
            return rc;
        cl->next_boot++;
    }
    return rc;
}
