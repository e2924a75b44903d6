/*
 * test_inbox.c — calls into a reactor from any thread (broker/net/inbox.c).
 *
 * A "reactor" here is a thread running its own ring with an inbox, as
 * broker/net/reactor.c does. Posts from several threads at once must each run
 * exactly once, on the reactor's thread, in each poster's order; a post after
 * the close fails with -ESHUTDOWN and never runs, also when posters race the
 * close.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "broker/net/inbox.h"

TestSuite(inbox, .timeout = 60);

#define N_THREADS 4
#define N_CALLS   5000

typedef struct reactor {
    rn_io *io;
    rn_inbox in;
    pthread_t th, self;    /* self: as the reactor's thread sees itself */
    atomic_bool close_now; /* set by a call: close the inbox */
    atomic_bool closed;
    /* written on the reactor's thread only */
    uint64_t ran[N_THREADS];
    int64_t last[N_THREADS];
    uint64_t out_of_order, wrong_thread;
} reactor;

static void *reactor_main(void *arg)
{
    reactor *r = arg;
    r->self = pthread_self();
    rn_inbox_start(&r->in, r->io);
    while (!atomic_load(&r->close_now))
        rn_io_run(r->io, 1);
    rn_inbox_close(&r->in);
    atomic_store(&r->closed, true);
    while (!rn_inbox_idle(&r->in))
        rn_io_run(r->io, 1);
    return NULL;
}

typedef struct call {
    reactor *r;
    unsigned tid;
    int64_t seq;
} call;

static void call_run(void *arg)
{
    call *c = arg;
    reactor *r = c->r;
    if (!pthread_equal(pthread_self(), r->self))
        r->wrong_thread++;
    if (c->seq != r->last[c->tid] + 1)
        r->out_of_order++;
    r->last[c->tid] = c->seq;
    r->ran[c->tid]++;
}

static void close_run(void *arg)
{
    atomic_store(&((reactor *)arg)->close_now, true);
}

typedef struct poster {
    reactor *r;
    unsigned tid;
    call *calls;   /* N_CALLS */
    uint64_t ok;   /* posts that returned 0 */
    int first_err; /* the error that stopped it, or 0 */
    bool until_refused;
} poster;

static void *poster_main(void *arg)
{
    poster *p = arg;
    for (int64_t i = 0; i < N_CALLS; i++) {
        p->calls[i] = (call){.r = p->r, .tid = p->tid, .seq = i};
        int rc = rn_inbox_post(&p->r->in, call_run, &p->calls[i]);
        if (rc < 0) {
            p->first_err = rc;
            break;
        }
        p->ok++;
    }
    return NULL;
}

static void reactor_start(reactor *r)
{
    memset(r, 0, sizeof(*r));
    for (unsigned t = 0; t < N_THREADS; t++)
        r->last[t] = -1;
    cr_assert(rn_io_new(&r->io, 64) == 0);
    cr_assert(rn_inbox_init(&r->in) == 0);
    cr_assert(pthread_create(&r->th, NULL, reactor_main, r) == 0);
}

static void reactor_free(reactor *r)
{
    rn_inbox_fini(&r->in);
    rn_io_free(r->io);
}

/* N threads post at once: every call runs once, on the reactor's thread, in
 * its poster's order. */
Test(inbox, posts_from_many_threads_run_once_in_order)
{
    reactor r;
    reactor_start(&r);
    poster p[N_THREADS];
    pthread_t th[N_THREADS];
    for (unsigned t = 0; t < N_THREADS; t++) {
        p[t] = (poster){.r = &r, .tid = t, .calls = calloc(N_CALLS, sizeof(call))};
        cr_assert(pthread_create(&th[t], NULL, poster_main, &p[t]) == 0);
    }
    for (unsigned t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    /* Behind every poster's calls (FIFO): ask the reactor to close. */
    cr_assert(rn_inbox_post(&r.in, close_run, &r) == 0);
    pthread_join(r.th, NULL);
    for (unsigned t = 0; t < N_THREADS; t++) {
        cr_assert_eq(p[t].ok, N_CALLS);
        cr_assert_eq(r.ran[t], N_CALLS, "thread %u: %llu of %d ran", t,
                     (unsigned long long)r.ran[t], N_CALLS);
        free(p[t].calls);
    }
    cr_assert_eq(r.out_of_order, 0);
    cr_assert_eq(r.wrong_thread, 0);
    cr_assert(pthread_equal(r.self, r.th));
    /* Closed: a post fails cleanly and never runs. */
    call late = {.r = &r, .tid = 0, .seq = N_CALLS};
    cr_assert_eq(rn_inbox_post(&r.in, call_run, &late), -ESHUTDOWN);
    cr_assert_eq(r.ran[0], N_CALLS);
    reactor_free(&r);
}

/* Posters race the close: what was accepted (0) ran exactly once, what was
 * refused (-ESHUTDOWN) never ran, and every poster ends refused. */
Test(inbox, close_races_posters)
{
    reactor r;
    reactor_start(&r);
    poster p[N_THREADS];
    pthread_t th[N_THREADS];
    for (unsigned t = 0; t < N_THREADS; t++) {
        p[t] = (poster){.r = &r, .tid = t, .calls = calloc(N_CALLS, sizeof(call))};
        cr_assert(pthread_create(&th[t], NULL, poster_main, &p[t]) == 0);
    }
    /* Close while they post (a few thousand calls in). */
    cr_assert(rn_inbox_post(&r.in, close_run, &r) == 0);
    pthread_join(r.th, NULL);
    for (unsigned t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    uint64_t refused = 0;
    for (unsigned t = 0; t < N_THREADS; t++) {
        cr_assert_eq(r.ran[t], p[t].ok, "thread %u: %llu accepted, %llu ran", t,
                     (unsigned long long)p[t].ok, (unsigned long long)r.ran[t]);
        cr_assert(p[t].first_err == 0 || p[t].first_err == -ESHUTDOWN, "%d", p[t].first_err);
        refused += p[t].first_err == -ESHUTDOWN;
        free(p[t].calls);
    }
    cr_assert_eq(r.out_of_order, 0);
    cr_assert_eq(r.wrong_thread, 0);
    cr_assert(atomic_load(&r.closed));
    (void)refused; /* how many lost the race depends on the scheduler */
    reactor_free(&r);
}

/* Calls posted before the reactor starts reading run once it does. */
Test(inbox, posts_before_start_run)
{
    reactor r;
    memset(&r, 0, sizeof(r));
    for (unsigned t = 0; t < N_THREADS; t++)
        r.last[t] = -1;
    cr_assert(rn_io_new(&r.io, 64) == 0);
    cr_assert(rn_inbox_init(&r.in) == 0);
    call early[3];
    for (int i = 0; i < 3; i++) {
        early[i] = (call){.r = &r, .tid = 1, .seq = i};
        cr_assert(rn_inbox_post(&r.in, call_run, &early[i]) == 0);
    }
    cr_assert(rn_inbox_post(&r.in, close_run, &r) == 0);
    cr_assert(pthread_create(&r.th, NULL, reactor_main, &r) == 0);
    pthread_join(r.th, NULL);
    cr_assert_eq(r.ran[1], 3);
    cr_assert_eq(r.out_of_order, 0);
    reactor_free(&r);
}
