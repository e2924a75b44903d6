/*
 * io.h — one io_uring and the completion dispatch shared by storage and the reactor.
 *
 * Every operation is an rn_io_op embedded in its owner's struct; the SQE's
 * user_data points at it and its callback runs when the CQE arrives, so the
 * storage's writes and (later) the broker's sockets share one ring per reactor
 * and one loop. Owned by one thread: nothing here is thread-safe.
 *
 * Callbacks never run inside a submit call: only inside rn_io_run(), so a
 * caller may submit and then finish its own bookkeeping before anything fires.
 */
#ifndef RN_IO_H
#define RN_IO_H

#include <liburing.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct rn_io rn_io;
typedef struct rn_io_op rn_io_op;

/* res is the CQE result (bytes or -errno); flags the CQE flags. */
typedef void (*rn_io_cb)(rn_io_op *op, int res, uint32_t flags);

struct rn_io_op {
    rn_io_cb cb;
    int injected;      /* a fault from the rn_sys injector, delivered instead of res */
    uint64_t crash_id; /* private to io.c: a journaled fdatasync's id (storage/crash.h), 0 none */
    rn_io_op *next_local; /* private to io.c: the list of ops completed without the kernel */
    rn_io_op *timer_next, **timer_prev; /* private to io.c: timers armed (rn_io_retire) */
};

/* A new ring of `entries` SQEs. Errors: -ENOMEM, -errno from io_uring_setup
 * (-ENOSYS/-EPERM where io_uring is unavailable). The caller owns *out. */
int rn_io_new(rn_io **out, unsigned entries);

/* A ring for one thread (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN): the
 * kernel runs its completion work only when that thread waits in rn_io_run,
 * in one batch, instead of interrupting it for each one. It starts disabled:
 * SQEs may be prepared (and buffers registered) on any thread, but nothing is
 * submitted until the owning thread calls rn_io_enable; other rings' messages
 * to it are kept (rn_io_msg) and run first in its first rn_io_run. A kernel
 * before 6.3 gets a plain ring (io.c says why), for which rn_io_enable and
 * rn_io_retire do nothing. Errors as rn_io_new. */
int rn_io_new_single(rn_io **out, unsigned entries);

/* Bind a ring from rn_io_new_single to the calling thread and start it.
 * Returns 0 or -errno from IORING_REGISTER_ENABLE_RINGS. */
int rn_io_enable(rn_io *io);

/* The owning thread is leaving: cancel what is in flight, wait for the rest
 * (callbacks run here, cancelled ones with -ECANCELED), and replace the ring by
 * a plain one that any thread may use afterwards (the shutdown's closes run on
 * the main thread). Buffers registered on the old ring go with it. Returns 0 or
 * -errno (the rn_io is then unusable). */
int rn_io_retire(rn_io *io);

/* Free the ring. Operations still in flight are abandoned: the owner must have
 * drained them (rn_io_inflight() == 0) first. */
void rn_io_free(rn_io *io);

/* The underlying ring, for the reactor's own socket operations. Borrowed. */
struct io_uring *rn_io_ring(rn_io *io);

/* An SQE whose user_data is op, for the caller to prepare. Never NULL. When the
 * submission queue is full it submits what is queued to make room; if the kernel
 * takes nothing because its completion queue is full, the completions waiting
 * there are moved to a private backlog (their callbacks run in the next
 * rn_io_run, in order), never run here. If even that cannot make room (the ring
 * is broken, or the backlog cannot grow), the SQE returned is a scratch one that
 * is never submitted and op's callback runs in the next rn_io_run with the error
 * (-EBUSY, -ENOMEM or the ring's -errno). Borrows op until its callback runs. */
struct io_uring_sqe *rn_io_sqe(rn_io *io, rn_io_op *op, rn_io_cb cb);

/* Asynchronous pwrite of [buf, buf+len) at pos and fdatasync of fd. Both ask the
 * rn_sys fault injector first (an injected fault completes the op with it).
 * A short write is reported as its byte count; callers resubmit the rest.
 * buf is borrowed until the callback. */
void rn_io_write(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd, const void *buf, size_t len,
                 off_t pos);
void rn_io_fdatasync(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd);

/* Asynchronous fallocate(fd, mode, pos, len) (IORING_OP_FALLOCATE: the kernel
 * always runs it on an io-wq worker, never on the calling thread). Asks the
 * rn_sys fault injector first, as rn_io_write does. */
void rn_io_fallocate(rn_io *io, rn_io_op *op, rn_io_cb cb, int fd, int mode, off_t pos, off_t len);

/* A one-shot timer: cb runs with -ETIME after ms, or -ECANCELED when removed
 * with rn_io_timer_cancel. ts is caller storage valid until the callback. */
void rn_io_timer(rn_io *io, rn_io_op *op, rn_io_cb cb, struct __kernel_timespec *ts, uint64_t ms);
void rn_io_timer_cancel(rn_io *io, rn_io_op *op, rn_io_op *cancel_op, rn_io_cb cancel_cb);

/* Submit what is queued, wait for at least `wait` completions (0 = do not
 * block; it does not block either while completions taken off the ring are
 * waiting), and run every available callback. Returns the number of callbacks
 * run, or -errno from the ring (after running the callbacks of ops that
 * completed without it, such as those rn_io_sqe could not place). */
int rn_io_run(rn_io *io, unsigned wait);

/* Operations submitted whose callbacks have not run yet. */
unsigned rn_io_inflight(const rn_io *io);

/* Hand op to another ring (IORING_OP_MSG_RING): cb runs on the thread that
 * runs `to`, with res 0, as if op had completed there. This is how reactors
 * talk (broker/net/shard.c): no lock, no queue of our own, the kernel orders it.
 * The kernel posts nothing on `from` when the message is delivered; if it
 * cannot deliver (the target's completion queue overflowed and memory ran
 * out), cb runs on `from` with a negative res and the caller may post again.
 * Messages are not counted in rn_io_inflight of either ring. */
void rn_io_msg(rn_io *from, rn_io *to, rn_io_op *op, rn_io_cb cb);

/* An operation of this ring's owner that runs elsewhere and completes as a
 * message (storage/offload.h): counted in rn_io_inflight from _begin to _end,
 * both called on the owner's thread, so drains and rn_io_retire wait for it
 * as for a CQE. */
void rn__io_outside_begin(rn_io *io);
void rn__io_outside_end(rn_io *io);

#endif
