/*
 * offload.h — blocking file-system calls run off the reactor, on one worker
 * thread, with the result delivered to the caller's ring.
 *
 * Some calls have no io_uring form on every kernel we run on (ftruncate
 * before 6.9) or must go through the rn_sys layer so the crash journal sees
 * them (a seal: ftruncate, fdatasync, close of a segment and its indexes).
 * Made on the reactor they wait for the disk: behind a second of interval
 * writeback, a rolled segment's seal held a reactor, and every partition on
 * it, for 109 ms (docs/benchmarks.md, "The roll's seal on the reactor").
 * Kafka flushes a rolled segment from its scheduler thread for the same
 * reason. So the job runs here and its callback runs on the caller's thread
 * from rn_io_run, as a CQE would (an IORING_OP_MSG_RING from the worker's own
 * ring, storage/io.h's rn_io_msg).
 *
 * Detached jobs (rn_offload_detached) are the same, without the answer.
 *
 * One worker for the process, started on first use; jobs run one at a time
 * in the order submitted. A job must not touch state its owner's thread may
 * touch while it runs: the owner promises to leave it alone until the
 * callback (the segment's seal_inflight flag, storage/log.c).
 */
#ifndef RN_OFFLOAD_H
#define RN_OFFLOAD_H

#include <stdbool.h>

#include "storage/io.h"

typedef int (*rn_offload_fn)(void *arg);

/* Caller-allocated; valid until its callback has run. */
typedef struct rn_offload_job {
    rn_io_op op; /* the callback's op: RN_CONTAINER_OF(op, rn_offload_job, op) */
    rn_offload_fn fn;
    void *arg;
    rn_io *to;
    rn_io_cb cb;
    int res;
    struct rn_offload_job *next;
} rn_offload_job;

/* Run fn(arg) on the worker; then cb(&job->op, fn's return, 0) runs on the
 * thread that runs `io`, inside rn_io_run (never inside this call). Borrows
 * io, which must stay open until cb has run. If the worker cannot be started
 * fn runs here, and cb still only from rn_io_run. Never fails. */
void rn_offload(rn_io *io, rn_offload_job *job, rn_offload_fn fn, void *arg, rn_io_cb cb);

/* Start the worker now rather than at the first job, so the process holds
 * its thread and ring (one descriptor) from the start: runneld's descriptor
 * budget is counted once, not changed by the first roll or delete. False
 * when it cannot run (jobs then run on the caller). */
bool rn_offload_start(void);

/* Run fn(arg) on the worker and answer no one: for work whose end nobody
 * waits for, such as freeing an unlinked segment (its last close gives the
 * file's blocks back, 0.24 s a GiB here with `discard`: rn_segment_unref).
 * fn may free the job's memory. It holds no rn_io, so a drain does not wait
 * for it; what fn touches must not be freed by anyone else. If the worker
 * cannot be started fn runs here, at once. Never fails. */
void rn_offload_detached(rn_offload_job *job, rn_offload_fn fn, void *arg);

#endif
