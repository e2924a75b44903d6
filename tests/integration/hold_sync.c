/*
 * hold_sync.c — an LD_PRELOAD shim for runneld in tests: holds its io_uring
 * fdatasyncs for as long as a test asks, so that with log.flush=always the
 * high watermark (the flushed offset) stays behind the log end while the
 * test looks at what a consumer is served.
 *
 * runneld makes every fdatasync of a partition log through io_uring
 * (storage/io.c) and submits with io_uring_submit, io_uring_submit_and_wait
 * or io_uring_submit_and_wait_timeout (liburing, a shared library): the shim
 * wraps those three. Before each submit, if $RN_TEST_HOLD_SYNC names a FIFO
 * and that FIFO holds no byte, every IORING_OP_FSYNC SQE about to go to the
 * kernel is rewritten into an IORING_OP_POLL_ADD (POLLIN) on the FIFO, with
 * the same user_data. It completes when the test writes a byte into the
 * FIFO, with res = POLLIN (> 0), which the log takes as a successful sync.
 *
 *   FIFO empty  → fsyncs submitted now are held
 *   a byte in   → every held one completes; new ones go to the kernel as is
 *   drained     → holding again (the shim never reads the FIFO)
 *
 * The test keeps the FIFO open read-write itself, so its bytes stay put
 * between the two processes. A held sync never reaches the disk: the shim is
 * for tests of what clients see, not of what survives a power loss. Without
 * $RN_TEST_HOLD_SYNC it changes nothing.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int hold_fd = -1;

/* At load, before runneld's main: its reactors start later. */
__attribute__((constructor)) static void hold_open(void)
{
    const char *path = getenv("RN_TEST_HOLD_SYNC");
    if (path && *path)
        hold_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

static void hold_fsyncs(struct io_uring *ring)
{
    int queued = 0;
    if (hold_fd < 0 || ioctl(hold_fd, FIONREAD, &queued) < 0 || queued > 0)
        return;
    struct io_uring_sq *sq = &ring->sq;
    for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & *sq->kring_mask];
        if (sqe->opcode != IORING_OP_FSYNC)
            continue;
        __u64 user_data = sqe->user_data;
        io_uring_prep_poll_add(sqe, hold_fd, POLLIN);
        sqe->user_data = user_data;
    }
}

int io_uring_submit(struct io_uring *ring)
{
    static int (*real)(struct io_uring *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit");
    hold_fsyncs(ring);
    return real(ring);
}

int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
    static int (*real)(struct io_uring *, unsigned);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit_and_wait");
    hold_fsyncs(ring);
    return real(ring, wait_nr);
}

int io_uring_submit_and_wait_timeout(struct io_uring *ring, struct io_uring_cqe **cqe_ptr,
                                     unsigned wait_nr, struct __kernel_timespec *ts,
                                     sigset_t *sigmask)
{
    static int (*real)(struct io_uring *, struct io_uring_cqe **, unsigned,
                       struct __kernel_timespec *, sigset_t *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit_and_wait_timeout");
    hold_fsyncs(ring);
    return real(ring, cqe_ptr, wait_nr, ts, sigmask);
}
