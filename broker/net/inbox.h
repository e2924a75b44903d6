/*
 * net/inbox.h — calls into a reactor from any thread (net/inbox.c).
 *
 * Reactors talk to each other with IORING_OP_MSG_RING (rn_reactor_post), which
 * needs a ring of the sender's own: a thread that is no reactor (a Raft or
 * controller thread, a test, the main thread before the reactors run) has
 * none. It posts here instead: a call goes on a locked FIFO and an eventfd is
 * written; the reactor's ring has a read on that eventfd, whose completion
 * runs every queued call on the reactor's thread, in order. The lock is only
 * on this path, never on the reactors' own hand-over.
 */
#ifndef RN_BROKER_NET_INBOX_H
#define RN_BROKER_NET_INBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/io.h"

typedef void (*rn_call_fn)(void *arg);

typedef struct rn_inbox {
    pthread_mutex_t lock;
    struct rn_call *head, *tail; /* under lock */
    bool closed;                 /* under lock: posts are refused */
    int efd;
    rn_io *io;
    rn_io_op read_op;
    uint64_t efd_val;
    bool armed; /* the owner's thread: a read of efd is in flight */
} rn_inbox;

/* Errors: -errno from eventfd. Caller-allocated; no thread may post yet. */
int rn_inbox_init(rn_inbox *in);
/* Start reading on io (the owning reactor's ring, its thread). */
void rn_inbox_start(rn_inbox *in, rn_io *io);
/* Any thread: fn(arg) runs once on the owner's thread, after every call the
 * same thread posted before (per-thread FIFO). Never runs inside this call.
 * Returns 0; -ESHUTDOWN once the inbox is closed (fn never runs); -ENOMEM.
 * The inbox must outlive the call (the owner frees it after its threads are
 * joined). */
int rn_inbox_post(rn_inbox *in, rn_call_fn fn, void *arg);
/* The owner's thread: refuse posts from now on, run what is queued, stop
 * reading. Every post that returned 0 has run when this returns. */
void rn_inbox_close(rn_inbox *in);
/* Nothing of the inbox in flight on the ring (after close: its read ended). */
bool rn_inbox_idle(const rn_inbox *in);
/* Close the eventfd (the ring drained or freed). Calls still queued (the
 * inbox never closed) are dropped without running. */
void rn_inbox_fini(rn_inbox *in);

#endif
