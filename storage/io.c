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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/io.h"
#include "storage/sys.h"

/* rn_io_op.injected of a cross-ring message: not counted in inflight. */
#define MSG_MARK 1

struct rn_io {
    struct io_uring ring;
    unsigned inflight;
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
    *out = io;
    return 0;
}

void rn_io_free(rn_io *io)
{
    if (!io)
        return;
    io_uring_queue_exit(&io->ring);
    free(io);
}

struct io_uring *rn_io_ring(rn_io *io)
{
    return &io->ring;
}

unsigned rn_io_inflight(const rn_io *io)
{
    return io->inflight;
}

struct io_uring_sqe *rn_io_sqe(rn_io *io, rn_io_op *op, rn_io_cb cb)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
    while (!sqe) {
        /* Queue full: push what is queued to the kernel to make room. */
        int rc = io_uring_submit(&io->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            break;
        sqe = io_uring_get_sqe(&io->ring);
        if (!sqe && rc <= 0) {
            /* The kernel takes nothing until completions are reaped. */
            struct io_uring_cqe *cqe;
            io_uring_wait_cqe(&io->ring, &cqe);
            rn_io_run(io, 0);
            sqe = io_uring_get_sqe(&io->ring);
        }
    }
    op->cb = cb;
    op->injected = 0;
    io->inflight++;
    if (!sqe) {
        /* Unreachable in practice; documented contract: op still completes. */
        op->injected = -EBUSY;
        return NULL;
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
    if (!sqe)
        return;
    int fault = rn_sys_inject(RN_SYS_PWRITE);
    if (fault < 0)
        prep_injected(sqe, op, fault);
    else
        io_uring_prep_write(sqe, fd, buf, (unsigned)len, (uint64_t)pos);
}

void rn_io_fdatasync(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd)
{
    struct io_uring_sqe *sqe = rn_io_sqe(io, op, cb);
    if (!sqe)
        return;
    int fault = rn_sys_inject(RN_SYS_FDATASYNC);
    if (fault < 0)
        prep_injected(sqe, op, fault);
    else
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
}

void rn_io_timer(rn_io *io, rn_io_op *op, rn_io_cb cb, struct __kernel_timespec *ts, uint64_t ms)
{
    ts->tv_sec = (long long)(ms / 1000);
    ts->tv_nsec = (long long)(ms % 1000) * 1000000;
    struct io_uring_sqe *sqe = rn_io_sqe(io, op, cb);
    if (sqe)
        io_uring_prep_timeout(sqe, ts, 0, 0);
}

void rn_io_timer_cancel(rn_io *io, rn_io_op *op, rn_io_op *cancel_op, rn_io_cb cancel_cb)
{
    struct io_uring_sqe *sqe = rn_io_sqe(io, cancel_op, cancel_cb);
    if (sqe)
        io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)op, 0);
}

void rn_io_msg(rn_io *from, rn_io *to, rn_io_op *op, rn_io_cb cb)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&from->ring);
    while (!sqe) {
        int rc = io_uring_submit(&from->ring);
        sqe = io_uring_get_sqe(&from->ring);
        if (!sqe && rc <= 0) {
            struct io_uring_cqe *cqe;
            io_uring_wait_cqe(&from->ring, &cqe);
            rn_io_run(from, 0);
            sqe = io_uring_get_sqe(&from->ring);
        }
    }
    op->cb = cb;
    op->injected = MSG_MARK;
    /* The target's CQE carries op as user_data and res = len = 0; the
     * source's own CQE is skipped unless the message failed. */
    io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data(sqe, op);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

int rn_io_run(rn_io *io, unsigned wait)
{
    int rc;
    if (wait)
        rc = io_uring_submit_and_wait(&io->ring, wait);
    else
        rc = io_uring_submit(&io->ring);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY)
        return rc;

    int n = 0;
    struct io_uring_cqe *cqe;
    /* Dispatch one CQE at a time: a callback may submit and even wait. */
    while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
        rn_io_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cqe_seen(&io->ring, cqe);
        if (!op)
            continue;
        if (op->injected == MSG_MARK) {
            op->cb(op, res, flags);
            n++;
            continue;
        }
        if (!(flags & IORING_CQE_F_MORE))
            io->inflight--;
        if (op->injected < 0)
            res = op->injected;
        op->cb(op, res, flags);
        n++;
    }
    return n;
}
