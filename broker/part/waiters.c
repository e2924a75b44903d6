/*
 * part/waiters.c — the per-partition waiter queues (part/waiters.h).
 *
 * A wake must survive callbacks that change the queue under it: answering a
 * fetch leaves every queue the fetch was on, a produce may free its request,
 * and a fetch that is still short re-parks. So a wake first moves the waiters
 * it will call onto a list of its own (each waiter's q points there, so a
 * leave from inside a callback takes it off that list and it is not called),
 * then takes them one at a time, puts each back at q's tail (or not, for a
 * close) and calls it. Waiters parked during the wake go to q's tail after
 * the ones being called, in order, and are not called this time.
 */
#include <stddef.h>

#include "broker/part/waiters.h"

void rn_waiter_init(rn_waiter *w, rn_waiter_fn *fn)
{
    w->next = w->prev = NULL;
    w->q = NULL;
    w->fn = fn;
    w->deadline_ms = -1;
}

static void push_tail(rn_waiter_queue *q, rn_waiter *w)
{
    w->q = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
}

void rn_waiter_park(rn_waiter_queue *q, rn_waiter *w, int64_t deadline_ms)
{
    rn_waiter_leave(w);
    w->deadline_ms = deadline_ms;
    push_tail(q, w);
}

void rn_waiter_leave(rn_waiter *w)
{
    rn_waiter_queue *q = w->q;
    if (!q)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    q->n--;
    w->next = w->prev = NULL;
    w->q = NULL;
}

bool rn_waiter_parked(const rn_waiter *w)
{
    return w->q != NULL;
}

void rn_waiters_wake(rn_waiter_queue *q, rn_wake_why why)
{
    if (!q->head)
        return;
    q->wakes++;
    rn_waiter_queue round = *q;
    for (rn_waiter *w = round.head; w; w = w->next)
        w->q = &round;
    q->head = q->tail = NULL;
    q->n = 0;
    rn_waiter *w;
    while ((w = round.head)) {
        rn_waiter_leave(w);
        if (why == RN_WAKE_MOVED)
            push_tail(q, w);
        w->fn(w, why);
    }
}

unsigned rn_waiters_expire(rn_waiter_queue *q, int64_t now_ms)
{
    /* Deadlines are not sorted (fetches cap theirs differently): one pass,
     * collecting first so callbacks can change q. */
    rn_waiter_queue due = {0};
    for (rn_waiter *w = q->head, *next; w; w = next) {
        next = w->next;
        if (w->deadline_ms >= 0 && w->deadline_ms <= now_ms) {
            rn_waiter_leave(w);
            push_tail(&due, w);
        }
    }
    unsigned n = 0;
    rn_waiter *w;
    while ((w = due.head)) {
        rn_waiter_leave(w);
        w->fn(w, RN_WAKE_TIMEOUT);
        n++;
    }
    return n;
}
