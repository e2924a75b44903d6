/*
 * offload.c — the worker behind rn_offload (offload.h): a queue under a
 * mutex, one thread that runs each job's function in order, and the reply to
 * the caller's ring by IORING_OP_MSG_RING from the worker's own ring.
 *
 * A reply the kernel refuses (the target's completion queue overflowed and no
 * memory was left to hold it) comes back to the worker as a negative result
 * of that message: the job goes on a retry list and is sent again a
 * millisecond later, so a job's callback runs once, whatever happens. The
 * refusal may come asynchronously, so for a second after it sends the worker
 * looks at its ring every 100 ms; idle, it sleeps until the next job.
 *
 * After fork() the child has no worker (only the calling thread is copied):
 * the first job in a new process starts one of its own (Criterion runs each
 * test in a forked child).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "protocol/container_of.h"
#include "storage/offload.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static rn_offload_job *head, *tail; /* under lock */
static pid_t started_in;            /* under lock: the process the worker runs in */
static bool running;                /* under lock */
static rn_io *wio;                  /* the worker's ring: only the worker uses it */
static rn_offload_job *retry;       /* the worker's: replies to send again */
static int replies_out;             /* the worker's: looks left for late refusals */

/* On the job's ring (res 0: delivered), or on the worker (res < 0: refused). */
static void delivered(rn_io_op *op, int res, uint32_t flags)
{
    rn_offload_job *job = RN_CONTAINER_OF(op, rn_offload_job, op);
    if (res < 0) {
        job->next = retry;
        retry = job;
        return;
    }
    rn__io_outside_end(job->to);
    job->cb(op, job->res, flags);
}

/* The fallback's self-message: on the caller's own thread either way. */
static void delivered_here(rn_io_op *op, int res, uint32_t flags)
{
    rn_offload_job *job = RN_CONTAINER_OF(op, rn_offload_job, op);
    (void)res;
    rn__io_outside_end(job->to);
    job->cb(op, job->res, flags);
}

static void *worker(void *unused)
{
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&lock);
        if (!head && !retry && !replies_out) {
            pthread_cond_wait(&more, &lock);
        } else if (!head && !retry) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&more, &lock, &until);
        }
        rn_offload_job *jobs = head;
        head = tail = NULL;
        pthread_mutex_unlock(&lock);

        bool sent = false;
        for (rn_offload_job *j = jobs, *next; j; j = next) {
            next = j->next;
            rn_io *to = j->to; /* a detached job's fn may free j */
            int res = j->fn(j->arg);
            if (!to)
                continue;
            j->res = res;
            rn_io_msg(wio, to, &j->op, delivered);
            sent = true;
        }
        rn_offload_job *again = retry;
        retry = NULL;
        if (again)
            nanosleep(&(struct timespec){0, 1000000L}, NULL);
        for (rn_offload_job *j = again, *next; j; j = next) {
            next = j->next;
            rn_io_msg(wio, j->to, &j->op, delivered);
        }
        /* Submit the replies; take back any refused (onto retry). A refusal
         * may still come after this: keep looking for a while after each
         * send, then sleep until the next job. */
        rn_io_run(wio, 0);
        if (sent || again)
            replies_out = 10; /* looks, 100 ms apart: a second */
        else if (replies_out)
            replies_out--;
    }
    return NULL;
}

/* Under lock: a worker in this process, or false when none can run. */
static bool started(void)
{
    pid_t me = getpid();
    if (started_in == me)
        return running;
    started_in = me;
    running = false;
    head = tail = NULL; /* a parent's jobs are not this process's */
    retry = NULL;
    /* A ring inherited from a parent is the parent's: leave it, make ours. */
    if (rn_io_new(&wio, 64) < 0) {
        wio = NULL;
        return false;
    }
    /* Signals are for the main thread (runneld's SIGTERM handling). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t t;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, worker, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        rn_io_free(wio);
        wio = NULL;
        return false;
    }
#ifdef __GLIBC__
    pthread_setname_np(t, "rn-offload");
#endif
    running = true;
    return true;
}

bool rn_offload_start(void)
{
    pthread_mutex_lock(&lock);
    bool ok = started();
    pthread_mutex_unlock(&lock);
    return ok;
}

/* Queue a job on a started worker; false when none can run. */
static bool enqueue(rn_offload_job *job)
{
    pthread_mutex_lock(&lock);
    if (!started()) {
        pthread_mutex_unlock(&lock);
        return false;
    }
    if (tail)
        tail->next = job;
    else
        head = job;
    tail = job;
    pthread_cond_signal(&more);
    pthread_mutex_unlock(&lock);
    return true;
}

void rn_offload_detached(rn_offload_job *job, rn_offload_fn fn, void *arg)
{
    job->fn = fn;
    job->arg = arg;
    job->to = NULL;
    job->cb = NULL;
    job->res = 0;
    job->next = NULL;
    if (!enqueue(job))
        (void)fn(arg); /* no worker: here, as before there was one */
}

void rn_offload(rn_io *io, rn_offload_job *job, rn_offload_fn fn, void *arg, rn_io_cb cb)
{
    job->fn = fn;
    job->arg = arg;
    job->to = io;
    job->cb = cb;
    job->res = 0;
    job->next = NULL;
    rn__io_outside_begin(io);
    if (enqueue(job))
        return;
    /* No worker: block here, as before there was one, but still answer
     * through the ring so the caller's bookkeeping order holds. */
    job->res = fn(arg);
    rn_io_msg(io, io, &job->op, delivered_here);
}
