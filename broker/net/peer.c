/*
 * peer.c — an outbound broker-to-broker connection (see net/peer.h).
 *
 * Invariants:
 *   1. fd >= 0 exactly while the link is up; every request in `waiting` was
 *      sent on this link (a new link starts with none waiting).
 *   2. A request ends exactly once: its answer arrives (matched by
 *      correlation id, any order), or the link fails (link_failed ends all of
 *      them, oldest first), or the peer is freed.
 *   3. The decoder belongs to one link: a new link starts a new decoder, so
 *      half a frame of a dead link never joins the next one's bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/logfmt.h"
#include "broker/net/bufpool.h"
#include "broker/net/peer.h"
#include "protocol/errors.h"

#define CONNECT_TIMEOUT_MS 5000
#define RECV_CHUNK         (64 * 1024)
/* One answer is decoded at a time, so the pool holds about one buffer of each
 * size the answers come in. */
#define FRAMES_IDLE_MAX (16u << 20)

typedef struct waiter {
    struct waiter *next;
    uint32_t correlation_id;
    int api;
    rn_peer_cb cb;
    void *arg;
} waiter;

struct rn_peer {
    char host[256], port[16];
    char name[280]; /* host:port, for messages */
    const rn_peer_transport *t;
    void *ctx;
    int fd;
    uint32_t next_cid;
    rn_frame_decoder dec;
    rn_frame_limits lim;
    rn_bufpool *frames; /* answers that span receives, kept warm (net/bufpool.h) */
    rn_frame_bufs bufs;
    waiter *waiting, *waiting_tail;
    unsigned n_waiting;
    uint64_t n_connects;
    uint8_t *rbuf;
    char err[320];
};

/* ---- TCP ---------------------------------------------------------------------------------- */

static int tcp_connect(void *ctx, const char *host, const char *port, int timeout_ms)
{
    (void)ctx;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -EINVAL;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, timeout_ms);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (n == 1)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (n != 1 || soerr) {
            rc = n == 0 ? -ETIMEDOUT : n < 0 ? -errno : -soerr;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(ai);
        return fd;
    }
    freeaddrinfo(ai);
    return rc;
}

static int tcp_send(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                if (poll(&pf, 1, CONNECT_TIMEOUT_MS) != 1)
                    return -ETIMEDOUT;
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static ssize_t tcp_recv(void *ctx, int fd, void *buf, size_t len, int timeout_ms)
{
    (void)ctx;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? -EAGAIN : -errno;
    if (n == 0)
        return -EAGAIN;
    ssize_t got = recv(fd, buf, len, 0);
    if (got < 0)
        return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
    return got;
}

static void tcp_close(void *ctx, int fd)
{
    (void)ctx;
    close(fd);
}

const rn_peer_transport rn_peer_tcp = {
    .connect = tcp_connect, .send = tcp_send, .recv = tcp_recv, .close = tcp_close};

/* ---- Peer --------------------------------------------------------------------------------- */

static void decoder_start(rn_peer *p)
{
    rn_frame_decoder_init(&p->dec, &p->lim);
    rn_frame_decoder_set_bufs(&p->dec, &p->bufs);
}

int rn_peer_new(rn_peer **out, const char *hostport, const rn_peer_transport *t, void *ctx)
{
    const char *colon = hostport ? strrchr(hostport, ':') : NULL;
    if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= 256 ||
        strlen(colon + 1) >= 16)
        return -EINVAL;
    rn_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->rbuf = malloc(RECV_CHUNK);
    p->frames = rn_bufpool_new(FRAMES_IDLE_MAX, NULL);
    if (!p->rbuf || !p->frames) {
        free(p->rbuf);
        rn_bufpool_free(p->frames);
        free(p);
        return -ENOMEM;
    }
    p->bufs = rn_bufpool_frame_bufs(p->frames);
    memcpy(p->host, hostport, (size_t)(colon - hostport));
    snprintf(p->port, sizeof(p->port), "%s", colon + 1);
    snprintf(p->name, sizeof(p->name), "%s", hostport);
    p->t = t ? t : &rn_peer_tcp;
    p->ctx = ctx;
    p->fd = -1;
    p->next_cid = 1;
    /* A peer's answers are a client's: a Fetch of a whole max_bytes, a
     * Metadata of a large cluster. */
    p->lim.max_header = 64u << 20;
    p->lim.max_entries = 1000000;
    p->lim.max_decode_mem = 256u << 20;
    decoder_start(p);
    *out = p;
    return 0;
}

static void end_all(rn_peer *p, int err, const char *msg)
{
    /* Take the list first: a callback may send again (a new link). */
    waiter *w = p->waiting;
    p->waiting = p->waiting_tail = NULL;
    p->n_waiting = 0;
    while (w) {
        waiter *next = w->next;
        w->cb(w->arg, err, NULL, msg);
        free(w);
        w = next;
    }
}

static void link_failed(rn_peer *p, int err, const char *why)
{
    snprintf(p->err, sizeof(p->err), "peer %s: %s (%s)", p->name, why, rn_errname(err));
    if (p->fd >= 0) {
        rn_logfmt(RN_INFO, "peer link lost", "peer=%s reason=\"%s\" err=%s waiting=%u", p->name,
                  why, rn_errname(err), p->n_waiting);
        p->t->close(p->ctx, p->fd);
        p->fd = -1;
    }
    rn_frame_decoder_fini(&p->dec);
    decoder_start(p);
    char msg[sizeof(p->err)];
    memcpy(msg, p->err, sizeof(msg));
    end_all(p, err, msg);
}

void rn_peer_cut(rn_peer *p, int err, const char *why)
{
    link_failed(p, err < 0 ? err : -ECONNABORTED, why ? why : "cut");
}

void rn_peer_free(rn_peer *p)
{
    if (!p)
        return;
    if (p->fd >= 0) {
        p->t->close(p->ctx, p->fd);
        p->fd = -1;
    }
    char msg[320];
    snprintf(msg, sizeof(msg), "peer %s: closed before the answer came", p->name);
    end_all(p, -ECANCELED, msg);
    rn_frame_decoder_fini(&p->dec);
    rn_bufpool_free(p->frames);
    free(p->rbuf);
    free(p);
}

int rn_peer_send(rn_peer *p, Runnel__RequestHeader *hdr, const void *payload, size_t payload_len,
                 rn_peer_cb cb, void *arg)
{
    p->err[0] = 0;
    if (p->fd < 0) {
        int fd = p->t->connect(p->ctx, p->host, p->port, CONNECT_TIMEOUT_MS);
        if (fd < 0) {
            snprintf(p->err, sizeof(p->err), "peer %s: cannot connect (%s)", p->name,
                     rn_errname(fd));
            return fd;
        }
        p->fd = fd;
        p->n_connects++;
    }
    hdr->correlation_id = p->next_cid++;
    uint8_t *buf;
    size_t len;
    int rc = rn_frame_encode_alloc(&hdr->base, payload_len, &buf, &len);
    if (rc < 0) {
        snprintf(p->err, sizeof(p->err), "peer %s: cannot encode the request (%s)", p->name,
                 rn_strerror(rc));
        return rc;
    }
    waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        free(buf);
        return -ENOMEM;
    }
    w->correlation_id = hdr->correlation_id;
    w->api = hdr->api;
    w->cb = cb;
    w->arg = arg;
    rc = p->t->send(p->ctx, p->fd, buf, len);
    if (rc == 0 && payload_len)
        rc = p->t->send(p->ctx, p->fd, payload, payload_len);
    free(buf);
    if (rc < 0) {
        free(w);
        link_failed(p, rc, "send failed");
        return rc;
    }
    if (p->waiting_tail)
        p->waiting_tail->next = w;
    else
        p->waiting = w;
    p->waiting_tail = w;
    p->n_waiting++;
    return 0;
}

/* A whole answer: end its request. Returns 1, or 0 for an answer nobody waits
 * for (dropped), or a negative error that breaks the link. */
static int answer(rn_peer *p, const rn_frame *f)
{
    rn_frame_response resp;
    char err[200] = "";
    int rc = rn_frame_response_decode(&resp, f, 0, &p->lim, err, sizeof(err));
    if (rc < 0) {
        rn_frame_response_fini(&resp);
        snprintf(p->err, sizeof(p->err), "undecodable answer: %s", err);
        return rc;
    }
    uint32_t cid = resp.hdr->correlation_id;
    waiter **pp = &p->waiting, *prev = NULL;
    while (*pp && (*pp)->correlation_id != cid) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    waiter *w = *pp;
    if (!w) {
        rn_frame_response_fini(&resp);
        return 0;
    }
    *pp = w->next;
    if (p->waiting_tail == w)
        p->waiting_tail = prev;
    p->n_waiting--;
    w->cb(w->arg, 0, &resp, NULL);
    rn_frame_response_fini(&resp);
    free(w);
    return 1;
}

int rn_peer_poll(rn_peer *p, int timeout_ms)
{
    if (p->fd < 0)
        return 0;
    ssize_t n = p->t->recv(p->ctx, p->fd, p->rbuf, RECV_CHUNK, timeout_ms);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0) {
        int err = n == 0 ? -ECONNRESET : (int)n;
        link_failed(p, err, n == 0 ? "the peer closed the connection" : "receive failed");
        return err;
    }
    int answered = 0;
    const uint8_t *data = p->rbuf;
    size_t len = (size_t)n;
    while (len > 0) {
        size_t used = 0;
        rn_frame f;
        int rc = rn_frame_decoder_feed(&p->dec, data, len, &used, &f);
        if (rc < 0) {
            link_failed(p, rc, rn_frame_decoder_errmsg(&p->dec));
            return rc;
        }
        data += used;
        len -= used;
        if (rc == 0)
            break;
        rc = answer(p, &f);
        if (rc < 0) {
            char why[sizeof(p->err)];
            memcpy(why, p->err, sizeof(why));
            link_failed(p, rc, why);
            return rc;
        }
        answered += rc;
        if (p->fd < 0)
            break; /* a callback cut the link */
    }
    return answered;
}

unsigned rn_peer_waiting(const rn_peer *p)
{
    return p->n_waiting;
}

uint64_t rn_peer_connects(const rn_peer *p)
{
    return p->n_connects;
}

const char *rn_peer_errmsg(const rn_peer *p)
{
    return p->err;
}
