/*
 * reactor.c — one io_uring loop: listener, receive-buffer ring, tick, signals.
 *
 * The reactor shares its rn_io with the storage of the partitions it owns, so
 * socket completions and segment writes/fdatasyncs come back through one ring
 * and one loop (DESIGN §6). Sockets use:
 *   - multishot accept on the listener (opened by broker/net/listen.c);
 *   - multishot recv into a provided buffer ring, registered by hand because
 *     liburing 2.3 lacks io_uring_setup_buf_ring (posix_memalign →
 *     io_uring_register_buf_ring → io_uring_buf_ring_init/add/advance);
 *   - sendmsg with iovecs pointing at response headers and segment mmaps.
 *
 * Receive buffers are reference counted: a Produce payload that lies whole in
 * a buffer is appended straight from it, so the buffer goes back to the ring
 * only when the append completes. When the ring runs dry a multishot recv ends
 * with -ENOBUFS; the connection waits on `starved` and is re-armed as soon as
 * a buffer comes back.
 *
 * Each ring is for its reactor's thread alone (storage/io.h rn_io_new_single:
 * SINGLE_ISSUER | DEFER_TASKRUN on kernels from 6.3): created disabled here,
 * enabled by the thread that runs it, retired when that thread leaves so
 * the main thread can close the logs bound to it.
 *
 * Reactors: reactor 0 runs on the main thread and owns signals, metadata,
 * groups and the HTTP gateway; reactors 1..N-1 run on threads of their own
 * (rn_reactors_run). Each has its own ring, receive buffers, listener
 * (SO_REUSEPORT), connections and tick; they talk only by message
 * (broker/net/shard.c).
 *
 * Shutdown (SIGTERM/SIGINT through a signalfd read on reactor 0's ring,
 * which tells the others by message): stop accepting, stop reading, let
 * requests in flight finish (bounded by 10 s). A reactor leaves its loop only
 * when it is idle, every reactor has drained and no message is in flight, so
 * a request handed between reactors is never stranded. Then the main thread
 * closes partition logs (flush + clean marker). In a cluster with another
 * live broker, a first signal leaves first (controlled shutdown,
 * rn_quorum_leave): the controller fences this broker, so its leaderships
 * move while it still answers, and the stop follows once that committed
 * (at most LEAVE_MS; a second signal stops at once).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/coord/groups.h"
#include "broker/gateway/gateway.h"
#include "broker/kafka/kafka.h"
#include "broker/logfmt.h"
#include "broker/meta/controller.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/net/conn.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "protocol/container_of.h"

#define BUF_COUNT 256
#define BUF_LEN   (64 * 1024)
#define TICK_MS   200
#define DRAIN_MS  10000
/* Controlled shutdown: how long leaderships may take to move before the
 * broker stops anyway (the controller commits a fence in milliseconds). */
#define LEAVE_MS 5000

int64_t rn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t rn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Provided buffer ring ------------------------------------------------------ */

static int setup_buffers(rn_reactor *r)
{
    /* About the same 16 MiB of receive buffers in all, however many
     * reactors: a power of two each (the ring needs it), at least 64. */
    r->n_bufs = BUF_COUNT;
    while (r->n_bufs > 64 && r->n_bufs * r->b->n_reactors > BUF_COUNT)
        r->n_bufs /= 2;
    r->buf_len = BUF_LEN;
    r->bgid = (uint16_t)r->index;
    size_t ring_bytes = r->n_bufs * sizeof(struct io_uring_buf);
    void *ring = NULL;
    int rc = posix_memalign(&ring, (size_t)sysconf(_SC_PAGESIZE), ring_bytes);
    if (rc)
        return -rc;
    memset(ring, 0, ring_bytes);
    r->br = ring;
    rc = posix_memalign((void **)&r->bufs, 4096, (size_t)r->n_bufs * r->buf_len);
    if (rc) {
        free(ring);
        r->br = NULL;
        return -rc;
    }
    r->buf_refs = calloc(r->n_bufs, sizeof(int));
    if (!r->buf_refs)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)r->br, .ring_entries = r->n_bufs, .bgid = r->bgid};
    rc = io_uring_register_buf_ring(rn_io_ring(r->io), &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(r->br);
    int mask = io_uring_buf_ring_mask(r->n_bufs);
    for (unsigned i = 0; i < r->n_bufs; i++)
        io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * r->buf_len, r->buf_len, (uint16_t)i,
                              mask, (int)i);
    io_uring_buf_ring_advance(r->br, (int)r->n_bufs);
    return 0;
}

void rn_reactor_buf_ref(rn_reactor *r, int bid)
{
    r->buf_refs[bid]++;
}

void rn_reactor_buf_unref(rn_reactor *r, int bid)
{
    if (--r->buf_refs[bid] > 0)
        return;
    io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->buf_len, r->buf_len, (uint16_t)bid,
                          io_uring_buf_ring_mask(r->n_bufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
    /* A buffer is back: connections that ran dry can receive again. */
    while (r->starved) {
        rn_conn *c = r->starved;
        r->starved = c->next_starved;
        c->starved = false;
        rn_conn_arm_recv(c);
        rn_conn_unref(c);
    }
}

/* ---- Accept -------------------------------------------------------------------- */

static void conn_new(void *arg, int fd)
{
    rn_reactor *r = arg;
    rn_broker *b = r->b;
    /* Over max.connections the socket is closed at once: the native
     * protocol has no way to say "busy" before the client's first request. */
    if (r->stopping || !rn_conn_slot_take(b)) {
        rn_conn_refused(r, "native", r->stopping ? "shutting_down" : "max.connections");
        rn_listen_close_refused(fd);
        return;
    }
    rn_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rn_conn_slot_give(b);
        close(fd);
        return;
    }
    c->r = r;
    c->fd = fd;
    r->n_live++;
    c->id = ++r->next_conn_id;
    c->refs = 1; /* the reactor's list */
    c->last_active_ms = rn_now_ms();
    rn_sendq_init(&c->sq);
    rn_frame_decoder_init(&c->dec, &b->limits);
    rn_frame_decoder_set_bufs(&c->dec, &r->frame_bufs);
    rn_listen_accepted(fd, c->peer, sizeof(c->peer));
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    r->n_conns++;
    r->metrics.connections_total++;
    r->metrics.connections_active++;
    rn_logfmt(RN_DEBUG, "connection accepted", "conn=%llu peer=%s", (unsigned long long)c->id,
              c->peer);
    c->recv_wanted = true;
    rn_conn_arm_recv(c);
}

static void shed_one(void *arg, int fd)
{
    rn_conn_refused(arg, "native", "out_of_descriptors");
    rn_listen_close_refused(fd);
}

int rn_reactor_listen(rn_reactor *r, const char *hostport)
{
    int fd;
    int rc = rn_listen_open("listen", hostport, true, &fd);
    if (rc < 0)
        return rc;
    rn_acceptor_start(&r->acc, r->io, fd);
    return 0;
}

void rn_reactor_listen_fd(rn_reactor *r, int fd)
{
    rn_acceptor_start(&r->acc, r->io, fd);
}

/* ---- Tick: idle connections, rolls, retention -------------------------------------- */

static void arm_tick(rn_reactor *r);

static void begin_stop(rn_reactor *r);

static void tick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_reactor *r = RN_CONTAINER_OF(op, rn_reactor, tick_op);
    (void)res;
    (void)flags;
    r->tick_armed = false;
    int64_t now = rn_now_ms();
    rn_broker *b = r->b;
    for (rn_conn *c = r->conns, *next; c; c = next) {
        next = c->next;
        if (!c->dead && b->cfg.connections_max_idle_ms > 0 && !c->reqs && !c->sq.head &&
            now - c->last_active_ms > b->cfg.connections_max_idle_ms)
            rn_conn_close(c, "idle");
    }
    bool retention = now - r->last_retention_ms >= b->cfg.retention_check_ms;
    if (retention)
        r->last_retention_ms = now;
    rn_partitions_tick(r, now, retention); /* the partitions this reactor owns */
    if (r->index == 0)
        rn_groups_tick(b->groups, now);
    if (r->index == 0 && b->controller && !r->stopping && !r->leaving)
        rn_controller_tick(b->controller, now);
    if (r->leaving && !r->stopping && (rn_quorum_left(b->quorum) || now >= r->leave_until_ms)) {
        rn_logfmt(RN_INFO,
                  rn_quorum_left(b->quorum) ? "left the cluster: leaderships moved"
                                            : "leaving the cluster timed out",
                  NULL);
        begin_stop(r);
    }
    if (!r->stopping)
        rn_acceptor_tick(&r->acc);
    if (!r->stopping)
        arm_tick(r);
}

static void arm_tick(rn_reactor *r)
{
    r->tick_armed = true;
    rn_io_timer(r->io, &r->tick_op, tick_done, &r->tick_ts, TICK_MS);
}

/* ---- Signals ------------------------------------------------------------------------- */

static void arm_signal(rn_reactor *r);

static void stop_run(rn_msg *m)
{
    m->to->stopping = true;
}

/* Reactor 0: stop every reactor (each drains what is in flight). */
static void begin_stop(rn_reactor *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    for (unsigned i = 1; i < r->b->n_reactors; i++)
        rn_reactor_post(&r->b->reactors[i], &r->b->reactors[i].stop_msg, stop_run);
}

/* In a cluster, whether another broker is live to take this one's
 * leaderships (the metadata image, reactor 0's). */
static bool others_live(rn_broker *b)
{
    if (!b->quorum || !b->md)
        return false;
    for (unsigned i = 0; i < rn_metadata_broker_count(b->md); i++) {
        const rn_broker_info *x = rn_metadata_broker_at(b->md, i);
        if (x->id != b->cfg.node_id && !x->fenced)
            return true;
    }
    return false;
}

int rn_reactor_call(rn_reactor *r, rn_call_fn fn, void *arg)
{
    return rn_inbox_post(&r->inbox, fn, arg);
}

static void signal_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_reactor *r = RN_CONTAINER_OF(op, rn_reactor, signal_op);
    (void)flags;
    r->signal_armed = false;
    if (res == (int)sizeof(struct signalfd_siginfo)) {
        struct signalfd_siginfo si;
        memcpy(&si, r->sigbuf, sizeof(si));
        if (si.ssi_signo == SIGHUP) {
            rn_logfmt(RN_INFO, "SIGHUP: nothing to reload yet", NULL);
            arm_signal(r);
            return;
        }
        rn_logfmt(RN_INFO, "shutting down", "signal=%s", si.ssi_signo == SIGTERM ? "TERM" : "INT");
        if (!r->leaving && others_live(r->b)) {
            /* Controlled shutdown: leaderships move first (the tick checks
             * when); a second signal stops at once. */
            r->leaving = true;
            r->leave_until_ms = rn_now_ms() + LEAVE_MS;
            rn_quorum_leave(r->b->quorum);
            rn_logfmt(RN_INFO, "leaving the cluster: moving leaderships first", "max_wait_ms=%d",
                      LEAVE_MS);
            arm_signal(r);
            return;
        }
        begin_stop(r);
        return;
    }
    if (!r->stopping)
        arm_signal(r);
}

static void arm_signal(rn_reactor *r)
{
    struct io_uring_sqe *sqe = rn_io_sqe(r->io, &r->signal_op, signal_done);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, r->signal_fd, r->sigbuf, sizeof(struct signalfd_siginfo), 0);
    r->signal_armed = true;
}

/* ---- Life cycle ------------------------------------------------------------------------ */

/* The most idle frame memory a reactor keeps: enough for the produce
 * requests of dozens of connections in flight at once (a 1 MiB batch each),
 * small beside the page cache they are appended to. */
#define FRAME_POOL_IDLE_MAX (32u << 20)

int rn_reactor_init(rn_reactor *r, rn_broker *b, unsigned index)
{
    memset(r, 0, sizeof(*r));
    r->b = b;
    r->index = index;
    rn_acceptor_init(&r->acc, "native", conn_new, shed_one, r);
    r->signal_fd = -1;
    r->inbox.efd = -1;
    int rc = rn_inbox_init(&r->inbox);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "cannot make the reactor's inbox", "err=%s", rn_errname(rc));
        return rc;
    }
    rc = rn_io_new_single(&r->io, 4096);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "io_uring unavailable", "err=%s", rn_errname(rc));
        return rc;
    }
    /* Reactor 0 runs on this thread; the others bind their rings to their
     * own threads as they start (reactor_thread). */
    if (index == 0 && (rc = rn_io_enable(r->io)) < 0) {
        rn_logfmt(RN_ERROR, "cannot enable the ring", "err=%s", rn_errname(rc));
        return rc;
    }
    rc = setup_buffers(r);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "cannot register receive buffers", "err=%s", rn_errname(rc));
        return rc;
    }
    if (!(r->frames = rn_bufpool_new(FRAME_POOL_IDLE_MAX, &r->metrics.frame_pool))) {
        rn_logfmt(RN_ERROR, "cannot make the reactor's frame pool", "err=%s", rn_errname(-ENOMEM));
        return -ENOMEM;
    }
    r->frame_bufs = rn_bufpool_frame_bufs(r->frames);
    if (index == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
        r->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
        if (r->signal_fd < 0)
            return -errno;
        arm_signal(r);
    }
    r->last_retention_ms = rn_now_ms();
    r->fwd = rn_conn_new_virtual(r, "reactor");
    if (!r->fwd)
        return -ENOMEM;
    return 0;
}

static void noop_cb(rn_io_op *op, int res, uint32_t flags)
{
    (void)op;
    (void)res;
    (void)flags;
}

/* Requests from other reactors still running here. */
static bool fwd_busy(const rn_reactor *r)
{
    return r->fwd && r->fwd->reqs;
}

int rn_reactor_run(rn_reactor *r)
{
    rn_broker *b = r->b;
    rn_self = r;
    arm_tick(r);
    if (!r->inbox.io) /* reactor 0 of a cluster starts it early (main.c) */
        rn_inbox_start(&r->inbox, r->io);
    rn_io_op *cancel_tick = &r->cancel_tick, *cancel_sig = &r->cancel_sig;
    uint64_t stop_at = 0;
    bool stop_started = false;
    for (;;) {
        int rc;
        if (!r->stopping) {
            rc = rn_io_run(r->io, 1);
        } else {
            /* Draining: wake at least every 50 ms, so the drain deadline holds
             * even when nothing completes (the tick is no longer armed). */
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50000000};
            struct io_uring_cqe *cqe;
            io_uring_submit_and_wait_timeout(rn_io_ring(r->io), &cqe, 1, &ts, NULL);
            rc = rn_io_run(r->io, 0);
        }
        if (rc < 0 && rc != -EINTR) {
            rn_logfmt(RN_ERROR, "io_uring wait failed", "err=%s", rn_errname(rc));
            return rc;
        }
        if (!r->stopping)
            continue;
        if (!stop_started) {
            stop_started = true;
            stop_at = rn_now_ns() + (uint64_t)DRAIN_MS * 1000000ull;
            /* Stop accepting and reading; requests in flight finish. */
            rn_acceptor_stop(&r->acc);
            rn_inbox_close(&r->inbox); /* calls posted until now run; later ones fail */
            rn_gateway_stop(r);        /* HTTP: stop accepting, end streams, finish requests */
            rn_kafka_stop(r);          /* Kafka: stop accepting, close connections */
            rn_partitions_stopping(r);
            /* Parked long polls answer now with what there is (rn_fetch_wake
             * sees `stopping` and answers final) instead of holding the
             * shutdown until their max_wait_ms. Idle connections are closed
             * by the loop below. */
            for (rn_conn *c = r->conns, *cn; c; c = cn) {
                cn = c->next;
                for (rn_request *q = c->reqs, *qn; q && !c->dead; q = qn) {
                    qn = q->next;
                    if (q->api == RUNNEL__API__FETCH && q->state)
                        rn_fetch_wake(q->state);
                }
            }
        }
        /* Fetches other reactors handed here, parked: answer now (again on
         * every turn, as more may arrive while the others drain). */
        for (rn_request *q = r->fwd ? r->fwd->reqs : NULL, *qn; q; q = qn) {
            qn = q->next;
            if (q->api == RUNNEL__API__FETCH && q->state)
                rn_fetch_wake(q->state);
        }
        bool busy = fwd_busy(r);
        for (rn_conn *c = r->conns, *next; c; c = next) {
            next = c->next;
            if (!c->dead && !c->reqs && !c->sq.head)
                rn_conn_close(c, "shutdown");
            else if (!c->dead)
                busy = true;
        }
        if (!busy && !r->drained) {
            r->drained = true;
            __atomic_add_fetch(&b->n_drained, 1, __ATOMIC_ACQ_REL);
        }
        bool all = __atomic_load_n(&b->n_drained, __ATOMIC_ACQUIRE) == b->n_reactors &&
                   __atomic_load_n(&b->msgs_inflight, __ATOMIC_ACQUIRE) == 0;
        if ((!busy && all) || rn_now_ns() > stop_at) {
            for (rn_conn *c = r->conns, *next; c; c = next) {
                next = c->next;
                if (!c->dead)
                    rn_conn_close(c, "shutdown");
            }
            break;
        }
    }
    /* Let the cancellations and closes complete. */
    if (r->tick_armed) {
        struct io_uring_sqe *sqe = rn_io_sqe(r->io, cancel_tick, noop_cb);
        io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&r->tick_op, 0);
    }
    if (r->signal_armed) {
        struct io_uring_sqe *sqe = rn_io_sqe(r->io, cancel_sig, noop_cb);
        io_uring_prep_cancel(sqe, &r->signal_op, 0);
    }
    uint64_t give_up = rn_now_ns() + 2000000000ull;
    while (r->n_live || r->tick_armed || r->signal_armed || !rn_acceptor_idle(&r->acc) ||
           !rn_inbox_idle(&r->inbox) || !rn_gateway_idle(r) || !rn_kafka_idle(r)) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50000000};
        struct io_uring_cqe *cqe;
        io_uring_submit_and_wait_timeout(rn_io_ring(r->io), &cqe, 1, &ts, NULL);
        rn_io_run(r->io, 0);
        if (rn_now_ns() > give_up)
            break;
    }
    return 0;
}

static void *reactor_thread(void *arg)
{
    rn_reactor *r = arg;
    char name[16];
    snprintf(name, sizeof(name), "reactor-%u", r->index);
    pthread_setname_np(pthread_self(), name);
    intptr_t rc = rn_io_enable(r->io);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "cannot enable the ring", "reactor=%u err=%s", r->index,
                  rn_errname((int)rc));
        return (void *)rc;
    }
    rc = rn_reactor_run(r);
    /* The main thread closes this reactor's logs once every reactor has
     * stopped: hand it a ring it may use. */
    int rc2 = rn_io_retire(r->io);
    if (rc2 < 0) {
        rn_logfmt(RN_ERROR, "cannot retire the ring", "reactor=%u err=%s", r->index,
                  rn_errname(rc2));
        if (rc == 0)
            rc = rc2;
    }
    return (void *)rc;
}

int rn_reactors_run(rn_broker *b)
{
    pthread_t *th = calloc(b->n_reactors, sizeof(*th));
    if (!th)
        return -ENOMEM;
    unsigned started = 1;
    int rc = 0;
    for (; started < b->n_reactors; started++) {
        int e = pthread_create(&th[started], NULL, reactor_thread, &b->reactors[started]);
        if (e) {
            rn_logfmt(RN_ERROR, "cannot start reactor thread", "reactor=%u err=%s", started,
                      rn_errname(-e));
            rc = -e;
            /* Stop what runs: reactor 0 tells the others on its way out. */
            b->reactors[0].stopping = true;
            for (unsigned i = 1; i < started; i++)
                rn_reactor_post(&b->reactors[i], &b->reactors[i].stop_msg, stop_run);
            /* The ones never started count as drained. */
            __atomic_add_fetch(&b->n_drained, b->n_reactors - started, __ATOMIC_ACQ_REL);
            break;
        }
    }
    int rc0 = rn_reactor_run(&b->reactors[0]);
    for (unsigned i = 1; i < started; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        if ((intptr_t)ret < 0 && rc == 0)
            rc = (int)(intptr_t)ret;
    }
    free(th);
    rn_self = &b->reactors[0]; /* the main thread closes what is left */
    return rc0 < 0 ? rc0 : rc;
}

void rn_reactor_fini(rn_reactor *r)
{
    if (r->fwd)
        rn_conn_close(r->fwd, "shutdown");
    rn_acceptor_fini(&r->acc);
    if (r->signal_fd >= 0)
        close(r->signal_fd);
    rn_gateway_free(r);
    rn_kafka_free(r);
    rn_inbox_fini(&r->inbox);
    if (r->io) {
        if (r->br)
            io_uring_unregister_buf_ring(rn_io_ring(r->io), r->bgid);
        rn_io_free(r->io);
    }
    free(r->br);
    free(r->bufs);
    free(r->buf_refs);
    rn_bufpool_free(r->frames);
    memset(r, 0, sizeof(*r));
}
