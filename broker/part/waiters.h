/*
 * part/waiters.h — requests parked on a partition until its state moves: the
 * long-polling fetches, and acks=all produces waiting for the high watermark
 * (Kafka's DelayedFetch and DelayedProduce purgatories, one queue per
 * partition and kind).
 *
 * A queue is an intrusive FIFO list: a waiter is embedded in whatever the API
 * layer keeps for its request, with a callback the queue calls, so part/
 * wakes api/'s requests without including api/ (DESIGN §2). Owner only, like
 * everything else of a partition: no locks.
 *
 * A wake (the high watermark moved) calls each waiter parked at that moment,
 * oldest first, and leaves it parked: the callback re-checks its condition
 * and leaves the queue when it holds. A timeout or a close takes the waiter
 * off the queue before its callback runs. A callback may leave or free any
 * waiter, its own included, and park new ones (those wait for the next wake).
 */
#ifndef RN_BROKER_PART_WAITERS_H
#define RN_BROKER_PART_WAITERS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct rn_waiter rn_waiter;
typedef struct rn_waiter_queue rn_waiter_queue;

typedef enum rn_wake_why {
    RN_WAKE_MOVED,   /* the partition's high watermark (or log) moved: re-check */
    RN_WAKE_TIMEOUT, /* the waiter's deadline passed (rn_waiters_expire) */
    RN_WAKE_CLOSED,  /* the partition is closing (deleted, shut down) */
} rn_wake_why;

typedef void rn_waiter_fn(rn_waiter *w, rn_wake_why why);

struct rn_waiter {
    rn_waiter *next, *prev;
    rn_waiter_queue *q; /* NULL: not parked */
    rn_waiter_fn *fn;
    int64_t deadline_ms; /* < 0: none */
};

struct rn_waiter_queue {
    rn_waiter *head, *tail;
    unsigned n;
    uint64_t wakes; /* counts rn_waiters_wake calls (a waiter owner parked
                       on one queue more than once tells the calls apart) */
};

void rn_waiter_init(rn_waiter *w, rn_waiter_fn *fn);
/* Park w at the tail of q (w must not be parked). deadline_ms < 0: none. */
void rn_waiter_park(rn_waiter_queue *q, rn_waiter *w, int64_t deadline_ms);
/* Take w off its queue; nothing if it is not parked. */
void rn_waiter_leave(rn_waiter *w);
bool rn_waiter_parked(const rn_waiter *w);
/* Call every waiter parked now, oldest first, with why. RN_WAKE_MOVED leaves
 * each parked; RN_WAKE_CLOSED (and RN_WAKE_TIMEOUT) take each off first. */
void rn_waiters_wake(rn_waiter_queue *q, rn_wake_why why);
/* Take every waiter whose deadline is <= now_ms off q, oldest first, and
 * call it with RN_WAKE_TIMEOUT. Returns how many expired. */
unsigned rn_waiters_expire(rn_waiter_queue *q, int64_t now_ms);

#endif
