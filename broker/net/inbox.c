/*
 * inbox.c — calls into a reactor from any thread (see net/inbox.h).
 *
 * Invariants:
 *   1. A call is appended under the lock only while the inbox is open, so
 *      every post that returned 0 is on the list when rn_inbox_close takes it.
 *   2. The eventfd is written after every append. The reactor's read of it
 *      returns the count and resets it; each completion takes the whole list
 *      under the lock, so a wake-up finds at least the calls written before it,
 *      and a later one (or the close) the rest. Extra wake-ups find nothing.
 *   3. The list is FIFO and a thread's posts are appended in its program
 *      order (the lock orders them), so they run in that order; the mutex also
 *      makes what the poster wrote before posting visible to fn.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/net/inbox.h"
#include "protocol/container_of.h"

struct rn_call {
    struct rn_call *next;
    rn_call_fn fn;
    void *arg;
};

static struct rn_call *take_all(rn_inbox *in, bool close)
{
    pthread_mutex_lock(&in->lock);
    struct rn_call *all = in->head;
    in->head = in->tail = NULL;
    if (close)
        in->closed = true;
    pthread_mutex_unlock(&in->lock);
    return all;
}

static void run_all(struct rn_call *c)
{
    while (c) {
        struct rn_call *next = c->next;
        c->fn(c->arg);
        free(c);
        c = next;
    }
}

static void arm(rn_inbox *in);

static void read_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_inbox *in = RN_CONTAINER_OF(op, rn_inbox, read_op);
    (void)flags;
    in->armed = false;
    run_all(take_all(in, false));
    /* Closed: the close ran what was left and refuses the rest. */
    if (res != -ECANCELED && !in->closed)
        arm(in);
}

static void arm(rn_inbox *in)
{
    struct io_uring_sqe *sqe = rn_io_sqe(in->io, &in->read_op, read_done);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, in->efd, &in->efd_val, sizeof(in->efd_val), 0);
    in->armed = true;
}

int rn_inbox_init(rn_inbox *in)
{
    in->head = in->tail = NULL;
    in->closed = false;
    in->armed = false;
    in->io = NULL;
    in->efd = eventfd(0, EFD_CLOEXEC);
    if (in->efd < 0)
        return -errno;
    pthread_mutex_init(&in->lock, NULL);
    return 0;
}

void rn_inbox_start(rn_inbox *in, rn_io *io)
{
    in->io = io;
    if (!in->armed && !in->closed)
        arm(in);
}

int rn_inbox_post(rn_inbox *in, rn_call_fn fn, void *arg)
{
    struct rn_call *c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->next = NULL;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&in->lock);
    if (in->closed) {
        pthread_mutex_unlock(&in->lock);
        free(c);
        return -ESHUTDOWN;
    }
    if (in->tail)
        in->tail->next = c;
    else
        in->head = c;
    in->tail = c;
    pthread_mutex_unlock(&in->lock);
    uint64_t one = 1;
    /* Cannot fail short of the counter's 2^64-2 limit; the reactor reads it
     * to zero on every wake-up. */
    ssize_t n = write(in->efd, &one, sizeof(one));
    (void)n;
    return 0;
}

void rn_inbox_close(rn_inbox *in)
{
    run_all(take_all(in, true));
    if (in->armed) {
        /* Wake the read so it ends: it sees `closed` and does not re-arm. */
        uint64_t one = 1;
        ssize_t n = write(in->efd, &one, sizeof(one));
        (void)n;
    }
}

bool rn_inbox_idle(const rn_inbox *in)
{
    return !in->armed;
}

void rn_inbox_fini(rn_inbox *in)
{
    if (in->efd < 0)
        return;
    struct rn_call *c = take_all(in, true);
    while (c) {
        struct rn_call *next = c->next;
        free(c);
        c = next;
    }
    close(in->efd);
    in->efd = -1;
    pthread_mutex_destroy(&in->lock);
}
