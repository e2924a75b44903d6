/*
 * listen.c — the listening sockets of runneld (native protocol, HTTP, Kafka).
 *
 * One way to open them, so all listeners behave alike:
 *   - one reactor: no SO_REUSEPORT, so a second broker started on the same
 *     port by mistake gets EADDRINUSE instead of silently sharing the port's
 *     connections;
 *   - N reactors: N sockets with SO_REUSEPORT (the kernel spreads
 *     connections over them), after a probe bind without it that fails if
 *     any other process holds the port;
 *   - after a kill -9 the old process's io_uring (and the listener it holds)
 *     is torn down by the kernel in the background, so a restart right away
 *     may find the port still taken for a moment: the caller may ask for a
 *     few seconds of retries.
 *
 * And one count of what the listeners let in: max.connections bounds the
 * broker's client connections, native and HTTP together over every reactor
 * (an atomic counter, rn_conn_slot_take), not each reactor or listener on
 * its own, so the limit means what it says whatever --reactors is. What a
 * listener does over the limit is its own: the native one closes the socket
 * at once (the protocol has no way to say "busy" before a request), the HTTP
 * one answers 503 with Retry-After and keeps a small reserve for /healthz,
 * /readyz and /metrics (broker/gateway/http.c).
 *
 * Out of descriptors (accept fails with EMFILE or ENFILE, e.g. a descriptor
 * limit below max.connections): the clients would wait in the listen queue
 * with no answer while the accept failed and was re-armed in a loop (a
 * warning per turn, hundreds a second). A spare descriptor is kept open for
 * that case, as libuv and nginx do: rn_listen_shed closes it, accepts every
 * waiting client and hands each to the listener's refusal (a close, or an
 * HTTP 503), then takes the spare back. When even that fails, the listener
 * waits for its reactor's next tick before accepting again.
 *
 * The accept loop itself (rn_acceptor: multishot accept, shedding, backing
 * off, re-arming when the kernel ends the multishot, cancelling at shutdown)
 * is the same for every listener and lives here too; what differs is what
 * each does with an accepted socket (on_fd) and with a refused one.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/metrics.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"

#define RETRIES  50   /* of 100 ms: 5 s */
#define SHED_MAX 4096 /* clients refused per rn_listen_shed at most */

/* The spare descriptor for rn_listen_shed (process-wide; -1 while one
 * reactor sheds or when it could not be had). */
static int spare_fd = -1;

static void spare_take(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    int none = -1;
    if (!__atomic_compare_exchange_n(&spare_fd, &none, fd, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        close(fd);
}

/* A socket bound to ai (not yet listening), retrying a taken address for 5 s
 * when retry_in_use. */
static int bind_one(const struct addrinfo *ai, bool reuseport, bool retry_in_use, const char *what,
                    const char *hostport, int *out)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    for (int tries = 0;; tries++) {
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        int rc = -errno;
        if (rc != -EADDRINUSE || !retry_in_use || tries >= RETRIES) {
            close(fd);
            return rc;
        }
        if (tries == 0)
            rn_logfmt(RN_INFO, "address in use, retrying for 5 s", "%s=%s", what, hostport);
        usleep(100000);
    }
    *out = fd;
    return 0;
}

static int resolve(const char *what, const char *hostport, struct addrinfo **ai)
{
    char host[256];
    uint16_t port;
    int rc = rn_config_parse_hostport(hostport, host, sizeof(host), &port);
    if (rc < 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    rc = getaddrinfo(host, ps, &hints, ai);
    if (rc != 0) {
        rn_logfmt(RN_ERROR, "cannot resolve listener", "%s=%s err=\"%s\"", what, hostport,
                  gai_strerror(rc));
        return -EINVAL;
    }
    return 0;
}

int rn_listen_open(const char *what, const char *hostport, bool retry_in_use, int *out)
{
    struct addrinfo *ai = NULL;
    int rc = resolve(what, hostport, &ai);
    if (rc < 0)
        return rc;
    int fd = -1;
    rc = bind_one(ai, false, retry_in_use, what, hostport, &fd);
    if (rc == -EADDRINUSE && !retry_in_use) {
        /* The caller decides what a taken port means (and says so). */
        freeaddrinfo(ai);
        return rc;
    }
    if (rc < 0)
        goto fail;
    if (listen(fd, 1024) < 0) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    freeaddrinfo(ai);
    spare_take();
    *out = fd;
    return 0;

fail:
    rn_logfmt(RN_ERROR, "cannot listen", "%s=%s err=%s", what, hostport, rn_errname(rc));
    freeaddrinfo(ai);
    return rc;
}

int rn_listen_open_shared(const char *what, const char *hostport, unsigned n, int *fds)
{
    struct addrinfo *ai = NULL;
    int rc = resolve(what, hostport, &ai);
    if (rc < 0)
        return rc;
    unsigned opened = 0;
    /* Probe without SO_REUSEPORT: if another process (say a second runneld
     * by mistake) holds the port, this fails, where a SO_REUSEPORT bind
     * would silently share its connections. */
    int probe = -1;
    rc = bind_one(ai, false, true, what, hostport, &probe);
    if (rc < 0)
        goto fail;
    close(probe);
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    struct addrinfo one = *ai;
    one.ai_addr = (struct sockaddr *)&ss;
    for (; opened < n; opened++) {
        rc = bind_one(&one, true, true, what, hostport, &fds[opened]);
        if (rc == 0 && listen(fds[opened], 1024) < 0) {
            rc = -errno;
            close(fds[opened]);
        }
        if (rc < 0)
            goto fail;
        if (opened == 0) {
            /* Port 0: the others join the port the kernel picked. */
            socklen_t sl = sizeof(ss);
            getsockname(fds[0], (struct sockaddr *)&ss, &sl);
        }
    }
    freeaddrinfo(ai);
    spare_take();
    return 0;

fail:
    rn_logfmt(RN_ERROR, "cannot listen", "%s=%s err=%s", what, hostport, rn_errname(rc));
    while (opened > 0)
        close(fds[--opened]);
    freeaddrinfo(ai);
    return rc;
}

/* ---- Connection slots (max.connections) ------------------------------------------------ */

bool rn_conn_slot_take(rn_broker *b)
{
    unsigned n = __atomic_add_fetch(&b->n_client_conns, 1, __ATOMIC_RELAXED);
    if (n <= b->cfg.max_connections)
        return true;
    __atomic_sub_fetch(&b->n_client_conns, 1, __ATOMIC_RELAXED);
    return false;
}

void rn_conn_slot_give(rn_broker *b)
{
    __atomic_sub_fetch(&b->n_client_conns, 1, __ATOMIC_RELAXED);
}

void rn_conn_refused(rn_reactor *r, const char *listener, const char *reason)
{
    /* Process-wide, like the log it guards. */
    static int64_t last_log_ms;
    static uint64_t unlogged;
    r->metrics.connections_rejected++;
    uint64_t n = __atomic_add_fetch(&unlogged, 1, __ATOMIC_RELAXED);
    int64_t now = rn_now_ms(), last = __atomic_load_n(&last_log_ms, __ATOMIC_RELAXED);
    if (now - last < 1000 || !__atomic_compare_exchange_n(&last_log_ms, &last, now, false,
                                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    n = __atomic_exchange_n(&unlogged, 0, __ATOMIC_RELAXED);
    rn_logfmt(RN_WARN, "connection refused",
              "listener=%s reason=%s refused=%llu max_connections=%u hint=\"counted in "
              "runnel_connections_rejected_total; one line a second at most\"",
              listener, reason, (unsigned long long)n, r->b->cfg.max_connections);
}

void rn_listen_close_refused(int fd)
{
    /* Unread input would make close() send a reset, and the client would
     * report "connection reset" instead of the broker closing it. */
    char sink[4096];
    for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
}

/* ---- Out of descriptors ------------------------------------------------------------------- */

unsigned rn_listen_shed(int listen_fd, void (*refuse)(void *arg, int fd), void *arg)
{
    /* Another reactor's accept may have won the room the spare left last
     * time (several reactors accept at once): take it again when a
     * descriptor has come free since. */
    if (__atomic_load_n(&spare_fd, __ATOMIC_ACQUIRE) < 0)
        spare_take();
    int spare = __atomic_exchange_n(&spare_fd, -1, __ATOMIC_ACQ_REL);
    if (spare < 0)
        return 0;
    close(spare);
    unsigned n = 0;
    while (n < SHED_MAX) {
        /* The listener is blocking (io_uring accepts on it): look first. */
        struct pollfd p = {.fd = listen_fd, .events = POLLIN};
        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
            break;
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            break;
        n++;
        refuse(arg, fd);
    }
    spare_take();
    return n;
}

void rn_listen_accepted(int fd, char *peer, size_t peer_len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(peer, peer_len, "%s:%s", host, port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- Acceptor ---------------------------------------------------------------------------- */

static void acceptor_arm(rn_acceptor *a);

static void accept_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_acceptor *a = RN_CONTAINER_OF(op, rn_acceptor, op);
    if (res >= 0) {
        a->on_fd(a->arg, res);
    } else if (res == -EMFILE || res == -ENFILE) {
        /* Clients waiting in the queue are refused now rather than left
         * unanswered; without the spare, wait a tick instead of spinning. */
        if (a->fd < 0 || rn_listen_shed(a->fd, a->refuse, a->arg) == 0)
            a->backoff = true;
    } else if (res != -ECANCELED) {
        rn_logfmt(RN_DEBUG, "accept failed", "listener=%s err=%s", a->listener, rn_errname(res));
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        a->armed = false;
        if (!a->stopped && a->fd >= 0 && !a->backoff)
            acceptor_arm(a);
    }
}

static void acceptor_arm(rn_acceptor *a)
{
    struct io_uring_sqe *sqe = rn_io_sqe(a->io, &a->op, accept_done);
    if (!sqe)
        return;
    io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
    a->armed = true;
}

void rn_acceptor_init(rn_acceptor *a, const char *listener, void (*on_fd)(void *arg, int fd),
                      void (*refuse)(void *arg, int fd), void *arg)
{
    memset(a, 0, sizeof(*a));
    a->fd = -1;
    a->listener = listener;
    a->on_fd = on_fd;
    a->refuse = refuse;
    a->arg = arg;
}

void rn_acceptor_start(rn_acceptor *a, rn_io *io, int fd)
{
    a->io = io;
    a->fd = fd;
    acceptor_arm(a);
}

void rn_acceptor_tick(rn_acceptor *a)
{
    if (!a->backoff || a->stopped)
        return;
    a->backoff = false;
    if (!a->armed && a->fd >= 0)
        acceptor_arm(a);
}

static void cancel_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_acceptor *a = RN_CONTAINER_OF(op, rn_acceptor, cancel_op);
    (void)res;
    (void)flags;
    a->cancelling = false;
}

void rn_acceptor_stop(rn_acceptor *a)
{
    if (a->stopped)
        return;
    a->stopped = true;
    if (a->armed && !a->cancelling) {
        struct io_uring_sqe *sqe = rn_io_sqe(a->io, &a->cancel_op, cancel_done);
        if (sqe) {
            io_uring_prep_cancel(sqe, &a->op, 0);
            a->cancelling = true;
        }
    }
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

bool rn_acceptor_idle(const rn_acceptor *a)
{
    return !a->armed && !a->cancelling;
}

void rn_acceptor_fini(rn_acceptor *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}
