/*
 * test_waiters.c — part/waiters.[ch]: the per-partition queues that park
 * long-polling fetches and acks=all produces. Each waiter here records the
 * calls it gets; the cases are those of a partition's life: park, wake in
 * order, a condition that holds for some, timeouts, the partition closing,
 * and a request that goes away (its connection closed) while parked or in
 * the middle of a wake.
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include "broker/part/waiters.h"

#define MAXLOG 64

typedef struct tw {
    rn_waiter w;
    int id;
    int64_t until;       /* leaves on RN_WAKE_MOVED when *hw >= until */
    const int64_t *hw;   /* the "partition's" high watermark */
    struct tw *kill;     /* leaves this other waiter when called */
    struct tw *repark;   /* parks this other waiter when called */
    rn_waiter_queue *rq; /* ... on this queue */
    int calls;
    rn_wake_why last;
} tw;

static int order[MAXLOG], n_order;
static rn_wake_why whys[MAXLOG];

static void cb(rn_waiter *w, rn_wake_why why)
{
    tw *t = (tw *)((char *)w - offsetof(tw, w));
    t->calls++;
    t->last = why;
    if (n_order < MAXLOG) {
        whys[n_order] = why;
        order[n_order++] = t->id;
    }
    if (t->kill)
        rn_waiter_leave(&t->kill->w);
    if (t->repark)
        rn_waiter_park(t->rq, &t->repark->w, -1);
    if (why == RN_WAKE_MOVED && t->hw && *t->hw >= t->until)
        rn_waiter_leave(w);
}

static void mk(tw *t, int id, const int64_t *hw, int64_t until)
{
    *t = (tw){.id = id, .hw = hw, .until = until};
    rn_waiter_init(&t->w, cb);
}

static void reset(void)
{
    n_order = 0;
}

static void expect_order(const int *want, int n)
{
    cr_assert_eq(n_order, n, "%d calls, expected %d", n_order, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(order[i], want[i], "call %d went to waiter %d, expected %d", i, order[i],
                     want[i]);
}

Test(waiters, park_and_leave)
{
    rn_waiter_queue q = {0};
    tw a, b, c;
    mk(&a, 1, NULL, 0);
    mk(&b, 2, NULL, 0);
    mk(&c, 3, NULL, 0);
    cr_assert(!rn_waiter_parked(&a.w));
    rn_waiter_park(&q, &a.w, -1);
    rn_waiter_park(&q, &b.w, -1);
    rn_waiter_park(&q, &c.w, -1);
    cr_assert_eq(q.n, 3);
    cr_assert(rn_waiter_parked(&b.w));
    rn_waiter_leave(&b.w);
    cr_assert(!rn_waiter_parked(&b.w));
    rn_waiter_leave(&b.w); /* twice: nothing */
    cr_assert_eq(q.n, 2);
    cr_assert_eq(q.head, &a.w);
    cr_assert_eq(q.tail, &c.w);
    rn_waiter_leave(&a.w);
    rn_waiter_leave(&c.w);
    cr_assert_eq(q.n, 0);
    cr_assert_null(q.head);
    cr_assert_null(q.tail);
    rn_waiters_wake(&q, RN_WAKE_MOVED); /* an empty queue: no calls */
    cr_assert_eq(a.calls + b.calls + c.calls, 0);
}

/* Produce-like waiters: each waits for the high watermark to pass its batch.
 * A wake calls them oldest first; those whose condition holds leave, the rest
 * stay parked in their order. */
Test(waiters, wake_in_order_until_condition_holds)
{
    rn_waiter_queue q = {0};
    int64_t hw = 0;
    tw t[4];
    int64_t until[4] = {5, 10, 3, 20};
    for (int i = 0; i < 4; i++) {
        mk(&t[i], i, &hw, until[i]);
        rn_waiter_park(&q, &t[i].w, -1);
    }
    reset();
    hw = 4;
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    expect_order((int[]){0, 1, 2, 3}, 4);
    cr_assert(rn_waiter_parked(&t[0].w));
    cr_assert(!rn_waiter_parked(&t[2].w), "hw 4 passed 3: the waiter left");
    cr_assert_eq(q.n, 3);
    reset();
    hw = 10;
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    expect_order((int[]){0, 1, 3}, 3);
    cr_assert_eq(q.n, 1);
    cr_assert_eq(q.head, &t[3].w);
    reset();
    hw = 25;
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    expect_order((int[]){3}, 1);
    cr_assert_eq(q.n, 0);
    for (int i = 0; i < n_order; i++)
        cr_assert_eq(whys[i], RN_WAKE_MOVED);
}

/* A waiter parked while a wake runs waits for the next one (a fetch that is
 * still short re-parks; it is not re-run in a loop). */
Test(waiters, parked_during_a_wake_waits_for_the_next)
{
    rn_waiter_queue q = {0};
    tw a, late;
    mk(&a, 1, NULL, 0);
    mk(&late, 2, NULL, 0);
    a.repark = &late;
    a.rq = &q;
    rn_waiter_park(&q, &a.w, -1);
    reset();
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    expect_order((int[]){1}, 1);
    cr_assert(rn_waiter_parked(&late.w));
    cr_assert_eq(q.head, &a.w, "the woken waiter stays first");
    cr_assert_eq(q.tail, &late.w);
    a.repark = NULL;
    reset();
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    expect_order((int[]){1, 2}, 2);
}

/* A request whose connection closes (or that answers through another
 * partition) leaves while parked, even from inside another waiter's call of
 * the same wake: it is not called after that. */
Test(waiters, leaving_during_a_wake_is_not_called)
{
    rn_waiter_queue q = {0};
    tw a, b, c;
    mk(&a, 1, NULL, 0);
    mk(&b, 2, NULL, 0);
    mk(&c, 3, NULL, 0);
    a.kill = &b; /* b's connection closes while a is being answered */
    b.kill = &a;
    rn_waiter_park(&q, &a.w, -1);
    rn_waiter_park(&q, &b.w, -1);
    rn_waiter_park(&q, &c.w, -1);
    rn_waiter_leave(&c.w); /* c's connection closed while parked */
    reset();
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    expect_order((int[]){1}, 1);
    cr_assert_eq(b.calls, 0);
    cr_assert_eq(c.calls, 0);
    cr_assert_eq(q.n, 1);
    cr_assert_eq(q.head, &a.w);
}

/* Timeouts: only waiters whose deadline passed, oldest first, each off the
 * queue before its call; the others keep their order. */
Test(waiters, expire_by_deadline)
{
    rn_waiter_queue q = {0};
    tw t[5];
    int64_t deadline[5] = {100, -1, 300, 50, 200};
    for (int i = 0; i < 5; i++) {
        mk(&t[i], i, NULL, 0);
        rn_waiter_park(&q, &t[i].w, deadline[i]);
    }
    reset();
    cr_assert_eq(rn_waiters_expire(&q, 40), 0);
    cr_assert_eq(n_order, 0);
    cr_assert_eq(rn_waiters_expire(&q, 200), 3);
    expect_order((int[]){0, 3, 4}, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(whys[i], RN_WAKE_TIMEOUT);
    cr_assert(!rn_waiter_parked(&t[0].w));
    cr_assert(!rn_waiter_parked(&t[3].w));
    cr_assert_eq(q.n, 2);
    cr_assert_eq(q.head, &t[1].w);
    cr_assert_eq(q.tail, &t[2].w);
    reset();
    cr_assert_eq(rn_waiters_expire(&q, 1000000), 1, "no deadline never expires");
    expect_order((int[]){2}, 1);
    cr_assert(rn_waiter_parked(&t[1].w));
}

/* A timed-out waiter that takes another off the queue (a produce with two
 * partitions on the same partition answering whole) is safe. */
Test(waiters, expire_leaving_another_due)
{
    rn_waiter_queue q = {0};
    tw a, b;
    mk(&a, 1, NULL, 0);
    mk(&b, 2, NULL, 0);
    a.kill = &b;
    rn_waiter_park(&q, &a.w, 10);
    rn_waiter_park(&q, &b.w, 10);
    reset();
    cr_assert_eq(rn_waiters_expire(&q, 10), 1);
    expect_order((int[]){1}, 1);
    cr_assert_eq(q.n, 0);
    cr_assert(!rn_waiter_parked(&b.w));
}

/* The partition closes (deleted, shut down): every waiter is called once with
 * RN_WAKE_CLOSED, already off the queue, and the queue is empty after. */
Test(waiters, close_calls_each_once_off_the_queue)
{
    rn_waiter_queue q = {0};
    int64_t hw = 0;
    tw t[3];
    for (int i = 0; i < 3; i++) {
        mk(&t[i], i, &hw, 100);
        rn_waiter_park(&q, &t[i].w, 1000);
    }
    reset();
    rn_waiters_wake(&q, RN_WAKE_CLOSED);
    expect_order((int[]){0, 1, 2}, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(whys[i], RN_WAKE_CLOSED);
        cr_assert(!rn_waiter_parked(&t[i].w));
    }
    cr_assert_eq(q.n, 0);
    cr_assert_null(q.head);
    reset();
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    cr_assert_eq(rn_waiters_expire(&q, 5000), 0);
    cr_assert_eq(n_order, 0);
}

/* The wake counter tells a fetch parked twice on one queue that it was
 * already re-run by this wake. */
Test(waiters, wakes_are_counted)
{
    rn_waiter_queue q = {0};
    tw a;
    mk(&a, 1, NULL, 0);
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    cr_assert_eq(q.wakes, 0, "an empty queue's wake calls nobody");
    rn_waiter_park(&q, &a.w, -1);
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    rn_waiters_wake(&q, RN_WAKE_MOVED);
    cr_assert_eq(q.wakes, 2);
    cr_assert_eq(a.calls, 2);
}
