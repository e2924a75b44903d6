/*
 * test_io.c — storage/io.c keeps io.h's two promises when the queues fill:
 * rn_io_sqe never returns NULL, and no callback runs inside a submit.
 *
 * A ring of 4 SQEs (8 CQEs) is handed far more NOPs than both queues hold
 * without rn_io_run in between, so rn_io_sqe must submit to make room and the
 * kernel's completion queue overflows; each callback checks it is not running
 * inside rn_io_sqe, and every op completes exactly once, in submission order.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "storage/io.h"

#define N_OPS 2000

typedef struct {
    rn_io_op op;
    int idx;
} nop_op;

static bool in_submit;
static int n_done, n_bad_order, n_in_submit, n_errors, last_idx = -1;

static void nop_done(rn_io_op *op, int res, uint32_t flags)
{
    (void)flags;
    nop_op *n = (nop_op *)op; /* op is the first member */
    if (in_submit)
        n_in_submit++;
    if (res < 0)
        n_errors++;
    if (n->idx != last_idx + 1)
        n_bad_order++;
    last_idx = n->idx;
    n_done++;
}

static rn_io *new_ring(void)
{
    rn_io *io = NULL;
    int rc = rn_io_new(&io, 4);
    if (rc == -ENOSYS || rc == -EPERM)
        cr_skip_test("io_uring unavailable: %d", rc);
    cr_assert_eq(rc, 0);
    return io;
}

// Filling the SQ (and overflowing the CQ) never yields NULL nor runs a callback in rn_io_sqe.
Test(io, full_queues_never_run_callbacks_inside_a_submit)
{
    rn_io *io = new_ring();
    nop_op *ops = calloc(N_OPS, sizeof(*ops));
    cr_assert_not_null(ops);
    for (int i = 0; i < N_OPS; i++) {
        ops[i].idx = i;
        in_submit = true;
        struct io_uring_sqe *sqe = rn_io_sqe(io, &ops[i].op, nop_done);
        in_submit = false;
        cr_assert_not_null(sqe, "rn_io_sqe returned NULL at op %d", i);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, &ops[i].op);
    }
    cr_assert_eq(n_in_submit, 0, "%d callbacks ran inside rn_io_sqe", n_in_submit);
    cr_assert_eq(n_done, 0, "%d callbacks ran before rn_io_run", n_done);
    cr_assert_eq(rn_io_inflight(io), N_OPS);

    for (int round = 0; round < 1000 && rn_io_inflight(io) > 0; round++)
        cr_assert_geq(rn_io_run(io, 1), 0);
    cr_assert_eq(rn_io_inflight(io), 0);
    cr_assert_eq(n_done, N_OPS);
    cr_assert_eq(n_errors, 0);
    cr_assert_eq(n_bad_order, 0, "%d completions out of submission order", n_bad_order);
    rn_io_free(io);
    free(ops);
}

static rn_io *resubmit_io;
static nop_op chained[64];
static int n_chained;

static void chain_done(rn_io_op *op, int res, uint32_t flags)
{
    nop_done(op, res, flags);
    /* A callback submits again: that submit, too, must run nothing. */
    if (n_chained < 64) {
        nop_op *c = &chained[n_chained];
        c->idx = ((nop_op *)op)->idx + 1;
        n_chained++;
        in_submit = true;
        struct io_uring_sqe *sqe = rn_io_sqe(resubmit_io, &c->op, chain_done);
        in_submit = false;
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, &c->op);
    }
}

// A callback that submits (the usual case) is not re-entered by its own submit.
Test(io, callback_submitting_is_not_reentered)
{
    n_done = n_bad_order = n_in_submit = n_errors = 0;
    last_idx = -1;
    resubmit_io = new_ring();
    nop_op first = {.idx = 0};
    struct io_uring_sqe *sqe = rn_io_sqe(resubmit_io, &first.op, chain_done);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, &first.op);
    for (int round = 0; round < 1000 && rn_io_inflight(resubmit_io) > 0; round++)
        cr_assert_geq(rn_io_run(resubmit_io, 1), 0);
    cr_assert_eq(n_in_submit, 0);
    cr_assert_eq(n_done, 65);
    cr_assert_eq(n_bad_order, 0);
    rn_io_free(resubmit_io);
}

static int n_broken, broken_res;

static void broken_done(rn_io_op *op, int res, uint32_t flags)
{
    (void)op;
    (void)flags;
    if (in_submit)
        n_in_submit++;
    n_broken++;
    broken_res = res;
}

// On a ring the kernel no longer takes from, rn_io_sqe still returns an SQE and the op completes
// with the ring's error in the next rn_io_run (it returned NULL and the op was lost).
Test(io, broken_ring_still_gives_an_sqe_and_completes_the_op)
{
    n_in_submit = 0;
    rn_io *io = new_ring();
    nop_op ops[5];
    for (int i = 0; i < 4; i++) { /* fill the SQ without submitting */
        struct io_uring_sqe *sqe = rn_io_sqe(io, &ops[i].op, broken_done);
        cr_assert_not_null(sqe);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, &ops[i].op);
    }
    /* Break the ring: io_uring_enter now fails with -EBADF (the mappings stay). */
    close(rn_io_ring(io)->ring_fd);
    in_submit = true;
    struct io_uring_sqe *sqe = rn_io_sqe(io, &ops[4].op, broken_done);
    in_submit = false;
    cr_assert_not_null(sqe, "rn_io_sqe returned NULL");
    io_uring_prep_nop(sqe);
    cr_assert_eq(n_broken, 0);
    cr_assert_eq(rn_io_run(io, 1), -EBADF);
    cr_assert_eq(n_broken, 1, "the refused op completed %d times", n_broken);
    cr_assert_eq(broken_res, -EBADF);
    cr_assert_eq(n_in_submit, 0);
    cr_assert_eq(rn_io_inflight(io), 4, "the four queued NOPs never reached the kernel");
    rn_io_free(io);
}

/* ---- Rings for one thread (rn_io_new_single) ------------------------------------------ */

static int msg_res = 1, n_msgs;

static void msg_done(rn_io_op *op, int res, uint32_t flags)
{
    (void)op;
    (void)flags;
    msg_res = res;
    n_msgs++;
}

static rn_io *new_single_ring(void)
{
    rn_io *io = NULL;
    int rc = rn_io_new_single(&io, 8);
    if (rc == -ENOSYS || rc == -EPERM)
        cr_skip_test("io_uring unavailable: %d", rc);
    cr_assert_eq(rc, 0);
    return io;
}

// A message sent to a ring before its thread enabled it is kept and runs, with res 0, in that
// ring's first rn_io_run (the kernel refuses MSG_RING to a disabled ring: it came back to the
// sender as -EBADFD); once enabled, messages go through the kernel.
Test(io, message_to_a_ring_not_enabled_yet_runs_after_enable)
{
    rn_io *from = new_ring(), *to = new_single_ring();
    rn_io_op op = {0};
    n_msgs = 0;
    rn_io_msg(from, to, &op, msg_done);
    cr_assert_geq(rn_io_run(from, 0), 0);
    cr_assert_eq(n_msgs, 0, "the message ran on the sender (res %d)", msg_res);
    cr_assert_eq(rn_io_enable(to), 0);
    cr_assert_eq(rn_io_run(to, 0), 1);
    cr_assert_eq(n_msgs, 1);
    cr_assert_eq(msg_res, 0);
    /* Enabled: through the kernel now. */
    rn_io_msg(from, to, &op, msg_done);
    cr_assert_geq(rn_io_run(from, 0), 0);
    for (int i = 0; i < 100 && n_msgs < 2; i++)
        cr_assert_geq(rn_io_run(to, 1), 0);
    cr_assert_eq(n_msgs, 2);
    cr_assert_eq(msg_res, 0);
    rn_io_free(to);
    rn_io_free(from);
}

static int timer_res = 1;

static void timer_done(rn_io_op *op, int res, uint32_t flags)
{
    (void)op;
    (void)flags;
    timer_res = res;
}

static void *owner_thread(void *arg)
{
    rn_io *io = arg;
    static rn_io_op timer;
    static struct __kernel_timespec ts;
    /* No cr_assert off the test's thread: the result goes back to it. */
    intptr_t rc = rn_io_enable(io);
    if (rc == 0) {
        rn_io_timer(io, &timer, timer_done, &ts, 60000);
        rc = rn_io_run(io, 0);
    }
    if (rc >= 0)
        rc = rn_io_retire(io); /* a minute early: the timer is removed */
    return (void *)rc;
}

// When the owning thread retires its ring, armed timers end with -ECANCELED at once and another
// thread can use the ring afterwards (a SINGLE_ISSUER ring refuses any other thread: -EEXIST);
// this is how the main thread closes a stopped reactor's logs.
Test(io, retired_ring_serves_another_thread)
{
    rn_io *io = new_single_ring();
    pthread_t t;
    void *ret = NULL;
    cr_assert_eq(pthread_create(&t, NULL, owner_thread, io), 0);
    cr_assert_eq(pthread_join(t, &ret), 0);
    cr_assert_eq((intptr_t)ret, 0, "owner thread: %d", (int)(intptr_t)ret);
    cr_assert_eq(timer_res, -ECANCELED);
    cr_assert_eq(rn_io_inflight(io), 0);
    nop_op nop = {0};
    n_done = 0;
    last_idx = -1;
    struct io_uring_sqe *sqe = rn_io_sqe(io, &nop.op, nop_done);
    io_uring_prep_nop(sqe);
    cr_assert_eq(rn_io_run(io, 1), 1);
    cr_assert_eq(n_done, 1);
    rn_io_free(io);
}
