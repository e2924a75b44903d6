/*
 * io.c — io_uring wrapper with per-operation callbacks (see io.h).
 *
 * Invariants:
 *  1. Every SQE carries user_data = the rn_io_op it completes; a CQE whose
 *     user_data is 0 belongs to nobody (timeout removal helpers) and is skipped.
 *  2. inflight counts SQEs handed out minus CQEs dispatched, so owners can
 *     drain before they free what their ops point into.
 *  3. A fault injected by the rn_sys injector turns the op into a NOP whose
 *     completion delivers the fault, so the owner sees it through the same
 *     completion path a real -EIO or -ENOSPC takes.
 *  4. No callback runs inside rn_io_sqe / rn_io_msg (io.h's promise, which
 *     owners rely on to finish their bookkeeping after submitting). Making room
 *     in a full submission queue submits, and when the kernel refuses because
 *     its completion queue is full, moves the waiting CQEs into `backlog`
 *     without dispatching them. rn_io_run dispatches the backlog first, then the
 *     ops refused outright (`refused`, `refused_msg`), then the ring, so
 *     completions keep their order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "protocol/container_of.h"
#include "storage/crash.h"
#include "storage/io.h"
#include "storage/sys.h"

/* liburing 2.3 predates it (kernel 6.3). */
#ifndef IORING_FEAT_REG_REG_RING
#define FEAT_REG_REG_RING (1U << 13)
#else
#define FEAT_REG_REG_RING IORING_FEAT_REG_REG_RING
#endif

/* rn_io_op.injected of a cross-ring message: not counted in inflight. */
#define MSG_MARK 1

/* A completion taken off the ring to make room, dispatched by rn_io_run. */
typedef struct {
    rn_io_op *op;
    int res;
    uint32_t flags;
} backlog_cqe;

struct rn_io {
    struct io_uring ring;
    unsigned entries;
    bool single;  /* SINGLE_ISSUER | DEFER_TASKRUN, disabled until rn_io_enable */
    bool enabled; /* atomic: single ring enabled, only the enabling thread may enter it */
    /* Messages other rings sent before this one was enabled (the kernel
     * refuses MSG_RING to a disabled ring): `early` under early_lock, handed
     * to `early_run` by rn_io_enable and dispatched by the next rn_io_run. */
    pthread_mutex_t early_lock;
    rn_io_op *early, *early_tail, *early_run;
    rn_io_op *timers; /* armed by rn_io_timer, for rn_io_retire to remove */
    unsigned inflight;
    backlog_cqe *backlog; /* [backlog_head, backlog_len) wait for rn_io_run */
    size_t backlog_head, backlog_len, backlog_cap;
    rn_io_op *refused, *refused_msg; /* FIFO heads through next_local; *_tail below */
    rn_io_op *refused_tail, *refused_msg_tail;
    struct io_uring_sqe scratch; /* handed out for a refused op; never submitted */
};

int rn_io_new(rn_io **out, unsigned entries)
{
    rn_io *io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    int rc = io_uring_queue_init(entries, &io->ring, 0);
    if (rc < 0) {
        free(io);
        return rc;
    }
    io->entries = entries;
    *out = io;
    return 0;
}

static struct io_uring_sqe *get_sqe(rn_io *io, int *err);

int rn_io_new_single(rn_io **out, unsigned entries)
{
    rn_io *io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    io->entries = entries;
    unsigned flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                     IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED;
    int rc = io_uring_queue_init(entries, &io->ring, flags);
    if (rc == 0 && !(io->ring.features & FEAT_REG_REG_RING)) {
        /* A precaution: before 6.3 a MSG_RING to a DEFER_TASKRUN ring was
         * posted straight to its CQ rather than as task work for the ring's
         * thread, and whether that wakes the thread waiting in it was not
         * tested here (a message between reactors must not wait for the
         * next tick). 6.3 is also the first kernel with
         * IORING_FEAT_REG_REG_RING, so below it: a plain ring (Debian 12's
         * 6.1 included). */
        io_uring_queue_exit(&io->ring);
        rc = -EINVAL;
    }
    if (rc == 0) {
        io->single = true;
        pthread_mutex_init(&io->early_lock, NULL);
    } else if (rc == -EINVAL) {
        /* Before 6.1 the kernel knows neither flag; before 6.3 see above:
         * a ring any thread may use. */
        rc = io_uring_queue_init(entries, &io->ring, 0);
    }
    if (rc < 0) {
        free(io);
        return rc;
    }
    *out = io;
    return 0;
}

int rn_io_enable(rn_io *io)
{
    if (!io->single || __atomic_load_n(&io->enabled, __ATOMIC_ACQUIRE))
        return 0;
    /* Debian 12's liburing 2.3 declares io_uring_enable_rings but does not
     * export it: the register call itself. */
    if (syscall(__NR_io_uring_register, io->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) <
        0)
        return -errno;
    pthread_mutex_lock(&io->early_lock);
    __atomic_store_n(&io->enabled, true, __ATOMIC_RELEASE);
    io->early_run = io->early;
    io->early = io->early_tail = NULL;
    pthread_mutex_unlock(&io->early_lock);
    return 0;
}

int rn_io_retire(rn_io *io)
{
    if (!io->single || !io->enabled)
        return 0;
    /* Everything still in flight is a timer or a short disk operation
     * (writes and fdatasyncs are never cancelled: a log takes a failed one for
     * a broken disk). Remove the timers (their owners see -ECANCELED) and wait
     * for the rest, so no completion is left on the ring that is about to go.
     * A callback may arm a timer again (a log whose fdatasync completes with
     * more to flush): remove again after each round until nothing is left. */
    while (io->inflight) {
        for (rn_io_op *t = io->timers; t; t = t->timer_next) {
            int err = 0;
            struct io_uring_sqe *sqe = get_sqe(io, &err);
            if (!sqe)
                return err;
            /* user_data 0: its own completion belongs to nobody (invariant 1). */
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)t, 0);
            io_uring_sqe_set_data(sqe, NULL);
        }
        int rc = rn_io_run(io, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    io_uring_queue_exit(&io->ring);
    io->single = false;
    __atomic_store_n(&io->enabled, false, __ATOMIC_RELEASE);
    pthread_mutex_destroy(&io->early_lock);
    return io_uring_queue_init(io->entries, &io->ring, 0);
}

void rn_io_free(rn_io *io)
{
    if (!io)
        return;
    if (io->single)
        pthread_mutex_destroy(&io->early_lock);
    io_uring_queue_exit(&io->ring);
    free(io->backlog);
    free(io);
}

struct io_uring *rn_io_ring(rn_io *io)
{
    return &io->ring;
}

void rn__io_outside_begin(rn_io *io)
{
    io->inflight++;
}

void rn__io_outside_end(rn_io *io)
{
    io->inflight--;
}

unsigned rn_io_inflight(const rn_io *io)
{
    return io->inflight;
}

/* Move every CQE waiting on the ring to the backlog, dispatching none.
 * Returns how many moved, or -ENOMEM when the backlog cannot grow. */
static int reap_to_backlog(rn_io *io)
{
    int n = 0;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
        if (io->backlog_len == io->backlog_cap) {
            size_t cap = io->backlog_cap ? io->backlog_cap * 2 : 64;
            backlog_cqe *b = realloc(io->backlog, cap * sizeof(*b));
            if (!b)
                return n ? n : -ENOMEM;
            io->backlog = b;
            io->backlog_cap = cap;
        }
        io->backlog[io->backlog_len++] =
            (backlog_cqe){io_uring_cqe_get_data(cqe), cqe->res, cqe->flags};
        io_uring_cqe_seen(&io->ring, cqe);
        n++;
    }
    return n;
}

/* A free SQE, making room as invariant 4 says. NULL with *err set when nothing
 * can make room; no callback runs in here either way. */
static struct io_uring_sqe *get_sqe(rn_io *io, int *err)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&io->ring))) {
        /* Queue full: push what is queued to the kernel to make room. */
        int rc = io_uring_submit(&io->ring);
        if (rc > 0)
            continue;
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            *err = rc;
            return NULL;
        }
        /* The kernel took nothing: its completion queue is full. Take the
         * completions off it (their callbacks wait for rn_io_run). */
        int moved = reap_to_backlog(io);
        if (moved < 0) {
            *err = moved;
            return NULL;
        }
        if (moved == 0) {
            if (io->inflight == 0) {
                *err = rc < 0 ? rc : -EBUSY; /* nothing will ever complete */
                return NULL;
            }
            struct io_uring_cqe *cqe;
            rc = io_uring_wait_cqe(&io->ring, &cqe); /* waits; dispatches nothing */
            if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
                *err = rc;
                return NULL;
            }
        }
    }
    return sqe;
}

static void push_refused(rn_io_op **head, rn_io_op **tail, rn_io_op *op)
{
    op->next_local = NULL;
    if (*tail)
        (*tail)->next_local = op;
    else
        *head = op;
    *tail = op;
}

/* The scratch SQE, cleared, for a caller whose op was refused. */
static struct io_uring_sqe *scratch(rn_io *io)
{
    memset(&io->scratch, 0, sizeof(io->scratch));
    return &io->scratch;
}

struct io_uring_sqe *rn_io_sqe(rn_io *io, rn_io_op *op, rn_io_cb cb)
{
    int err = 0;
    struct io_uring_sqe *sqe = get_sqe(io, &err);
    op->cb = cb;
    op->injected = 0;
    op->crash_id = 0;
    op->timer_next = NULL;
    op->timer_prev = NULL;
    io->inflight++;
    if (!sqe) {
        /* Completes in the next rn_io_run with err, never here (io.h). */
        op->injected = err;
        push_refused(&io->refused, &io->refused_tail, op);
        return scratch(io);
    }
    io_uring_sqe_set_data(sqe, op);
    return sqe;
}

static void prep_injected(struct io_uring_sqe *sqe, rn_io_op *op, int fault)
{
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, op);
    op->injected = fault;
}

void rn_io_write(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd, const void *buf, size_t len,
                 off_t pos)
{
    struct io_uring_sqe *sqe = rn_io_sqe(io, op, cb);
    int fault = rn_sys_inject(RN_SYS_PWRITE);
    if (fault == 0 && __builtin_expect(rn_crash_active, 0))
        fault = rn_crash_write(fd, pos, len);
    if (fault < 0)
        prep_injected(sqe, op, fault);
    else
        io_uring_prep_write(sqe, fd, buf, (unsigned)len, (uint64_t)pos);
}

void rn_io_fdatasync(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd)
{
    struct io_uring_sqe *sqe = rn_io_sqe(io, op, cb);
    int fault = rn_sys_inject(RN_SYS_FDATASYNC);
    if (fault == 0 && __builtin_expect(rn_crash_active, 0))
        fault = rn_crash_sync_begin(fd, false, &op->crash_id);
    if (fault < 0)
        prep_injected(sqe, op, fault);
    else
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
}

void rn_io_fallocate(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd, int mode, off_t pos, off_t len)
{
    struct io_uring_sqe *sqe = rn_io_sqe(io, op, cb);
    int fault = rn_sys_inject(RN_SYS_FALLOCATE);
    if (fault < 0)
        prep_injected(sqe, op, fault);
    else
        io_uring_prep_fallocate(sqe, fd, mode, pos, len);
}

void rn_io_timer(rn_io *io, rn_io_op *op, rn_io_cb cb, struct __kernel_timespec *ts, uint64_t ms)
{
    ts->tv_sec = (long long)(ms / 1000);
    ts->tv_nsec = (long long)(ms % 1000) * 1000000;
    io_uring_prep_timeout(rn_io_sqe(io, op, cb), ts, 0, 0);
    op->timer_next = io->timers;
    if (io->timers)
        io->timers->timer_prev = &op->timer_next;
    io->timers = op;
    op->timer_prev = &io->timers;
}

void rn_io_timer_cancel(rn_io *io, rn_io_op *op, rn_io_op *cancel_op, rn_io_cb cancel_cb)
{
    io_uring_prep_timeout_remove(rn_io_sqe(io, cancel_op, cancel_cb), (uint64_t)(uintptr_t)op, 0);
}

/* Keep a message for a ring not enabled yet; false when it is enabled by now. */
static bool hold_early(rn_io *to, rn_io_op *op)
{
    if (!to->single || __atomic_load_n(&to->enabled, __ATOMIC_ACQUIRE))
        return false;
    pthread_mutex_lock(&to->early_lock);
    bool held = !__atomic_load_n(&to->enabled, __ATOMIC_RELAXED);
    if (held)
        push_refused(&to->early, &to->early_tail, op);
    pthread_mutex_unlock(&to->early_lock);
    return held;
}

void rn_io_msg(rn_io *from, rn_io *to, rn_io_op *op, rn_io_cb cb)
{
    int err = 0;
    op->cb = cb;
    op->injected = MSG_MARK;
    if (hold_early(to, op))
        return; /* runs on `to` in its first rn_io_run, before its ring's CQEs */
    struct io_uring_sqe *sqe = get_sqe(from, &err);
    if (!sqe) {
        /* Undeliverable: cb runs on `from` with err in the next rn_io_run. */
        op->injected = err;
        push_refused(&from->refused_msg, &from->refused_msg_tail, op);
        return;
    }
    /* The target's CQE carries op as user_data and res = len = 0; the
     * source's own CQE is skipped unless the message failed. */
    io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data(sqe, op);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

/* Run one completion's callback; returns 1 if one ran. */
static int dispatch(rn_io *io, rn_io_op *op, int res, uint32_t flags)
{
    if (!op)
        return 0;
    if (op->injected == MSG_MARK) {
        op->cb(op, res, flags);
        return 1;
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        io->inflight--;
        if (op->timer_prev) { /* a timer: no longer armed */
            *op->timer_prev = op->timer_next;
            if (op->timer_next)
                op->timer_next->timer_prev = op->timer_prev;
            op->timer_prev = NULL;
            op->timer_next = NULL;
        }
    }
    if (op->injected < 0)
        res = op->injected;
    if (__builtin_expect(rn_crash_active, 0) && op->crash_id) {
        /* Journaled before the callback, which may acknowledge what it made durable. */
        rn_crash_synced(op->crash_id, res);
        op->crash_id = 0;
    }
    op->cb(op, res, flags);
    return 1;
}

int rn_io_run(rn_io *io, unsigned wait)
{
    int rc;
    if (io->backlog_head < io->backlog_len || io->refused || io->refused_msg || io->early_run)
        wait = 0; /* callbacks are ready to run: do not block for more */
    if (wait)
        rc = io_uring_submit_and_wait(&io->ring, wait);
    else
        rc = io_uring_submit(&io->ring);
    int ring_err = 0;
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY)
        ring_err = rc; /* still run what completed here: refused ops learn why */

    int n = 0;
    /* Messages sent before the ring was enabled: older than anything on it. */
    rn_io_op *early = io->early_run;
    io->early_run = NULL;
    while (early) {
        rn_io_op *op = early;
        early = op->next_local;
        op->cb(op, 0, 0);
        n++;
    }
    /* Ops refused a slot first (their order is no one's business). Detach each
     * list before running it: an op refused again waits for the next run. */
    rn_io_op *refused = io->refused;
    io->refused = io->refused_tail = NULL;
    while (refused) {
        rn_io_op *op = refused;
        refused = op->next_local;
        n += dispatch(io, op, op->injected, 0);
    }
    rn_io_op *refused_msg = io->refused_msg;
    io->refused_msg = io->refused_msg_tail = NULL;
    while (refused_msg) {
        rn_io_op *op = refused_msg;
        refused_msg = op->next_local;
        op->cb(op, op->injected, 0);
        n++;
    }

    /* Dispatch one completion at a time: a callback may submit and even wait.
     * The backlog always goes before the ring, whose CQEs came later; a
     * callback's submit may add to the backlog, so it is read by index. */
    for (;;) {
        if (io->backlog_head < io->backlog_len) {
            backlog_cqe c = io->backlog[io->backlog_head++];
            n += dispatch(io, c.op, c.res, c.flags);
            continue;
        }
        io->backlog_head = io->backlog_len = 0;
        struct io_uring_cqe *cqe;
        if (ring_err || io_uring_peek_cqe(&io->ring, &cqe) != 0)
            break;
        rn_io_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&io->ring, cqe);
        n += dispatch(io, op, res, flags);
    }
    return ring_err ? ring_err : n;
}
