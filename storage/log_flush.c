/*
 * log_flush.c — the partition log's flush policy and a roll's work: the group
 * commit (flush=always), the interval timer (flush=interval), early
 * writeback and preallocation ahead of the appends, rn_log_flush_sync and
 * rn_log_set_config (log.h), and the work a roll leaves behind: a rolled
 * segment's fdatasync and its seal on the offload worker, the new segment's
 * directory fsync, each ending in roll_work_done. log.c's append path calls
 * in through rn__log_maybe_sync, rn__log_start_writeback and
 * rn__log_prealloc_ahead, its roll through rn__log_seal_rolled and the
 * directory fsync's job; all share the state in storage/log_impl.h and run on
 * the owning reactor's thread (seal and directory-fsync jobs on the offload
 * worker). The invariants (group commit, sealing a rolled segment, a failed
 * fdatasync failing the log) are log.c's top comment, 2 to 5.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "protocol/container_of.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/log_impl.h"
#include "storage/offload.h"
#include "storage/segment.h"
#include "storage/sys.h"

/* Most bytes of acknowledged-pending appends one fdatasync waits to gather. */
#define GROUP_COMMIT_BYTES (8u << 20)
/* Visible bytes not yet under writeback that start it (rn__log_start_writeback). */
#define WRITEBACK_BYTES (32u << 20)
#define PAGE_BYTES      4096u

/* ---- Flushing ------------------------------------------------------------- */

static void submit_sync(rn_log *log);

/* A roll's work came back (a rolled segment's sync or seal, a new one's
 * directory fsync): a group commit may have waited for it (submit_sync sets
 * sync_deferred), or, if it failed, appends wait for a sync that will never
 * come (rn__log_maybe_sync fails them). */
static void roll_work_done(rn_log *log)
{
    rn__log_maybe_sync(log);
    if (log->sync_deferred && !log->failed) {
        log->sync_deferred = false;
        submit_sync(log);
    }
}

/* The rolled segment's data is on disk: its seal follows (rn__log_seal_rolled). */
static void seal_sync_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_segment *s = RN_CONTAINER_OF(op, rn_segment, seal_op);
    rn_log *log = s->seal_log;
    (void)flags;
    s->seal_sync_inflight = false;
    log->n_seal_inflight--;
    if (res < 0 && !log->failed) {
        rn__log_set_err(log, res, "segment %020" PRId64 ": fdatasync before seal", s->base_offset);
        log->failed = -RN_E_LOG_FAILED;
    }
    if (res == 0)
        s->seal_synced = true;
    rn_segment_unref(s);
    /* Not just rn__log_seal_rolled: a group commit may be waiting for this segment
     * to be on disk (submit_sync), or, if this failed, appends for a sync
     * that will never come. */
    roll_work_done(log);
}

/* On the offload worker: the seal's ftruncates, fdatasyncs and closes. */
static int seal_job(void *arg)
{
    return rn_segment_seal(arg);
}

/* Back on the reactor: the segment is sealed, or the seal failed. */
static void seal_job_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_segment *s = RN_CONTAINER_OF(op, rn_segment, seal_job.op);
    rn_log *log = s->seal_log;
    (void)flags;
    s->seal_inflight = false;
    log->n_seal_inflight--;
    if (res < 0 && !log->failed && !s->deleted) {
        /* The seal's fdatasync failed: what the segment holds is unknown. */
        rn__log_set_err(log, res, "segment %020" PRId64 ": seal", s->base_offset);
        log->failed = -RN_E_LOG_FAILED;
    }
    rn_segment_unref(s);
    roll_work_done(log);
}

void rn__log_seal_rolled(rn_log *log)
{
    for (unsigned i = 0; i + 1 < log->n_segs; i++) {
        rn_segment *s = log->segs[i];
        /* seal_inflight first: while the worker seals, s->sealed is its. */
        if (s->seal_inflight || s->sealed || !s->rolled || s->n_pending || log->broken ||
            (log->sync_inflight && log->sync_seg == s) || s->seal_sync_inflight ||
            (log->prealloc_inflight && log->prealloc_seg == s) ||
            (log->wb_inflight && log->wb_seg == s))
            continue;
        if (!s->seal_synced && s->fd >= 0) {
            /* A roll must not stall the reactor on a segment's worth of dirty
             * pages (flush=never): sync through the ring, seal when it is done. */
            s->seal_sync_inflight = true;
            s->seal_log = log;
            log->n_seal_inflight++;
            rn_segment_ref(s);
            rn_io_fdatasync(log->io, &s->seal_op, seal_sync_done, s->fd);
            continue;
        }
        /* A sealed segment is trusted by recovery, epochs included: the
         * checkpoint must hold its epochs first. If it cannot be written,
         * the segment stays unsealed (recovery verifies it) and the next
         * pass tries again. */
        int rc = log->epochs ? rn_leader_epochs_flush(log->epochs) : 0; /* unread: unchanged */
        if (rc < 0) {
            rn__log_set_err(log, rc, "segment %020" PRId64 ": leader-epoch checkpoint before seal",
                            s->base_offset);
            continue;
        }
        /* The seal's own syncs (indexes, the cut .log) are small but each
         * waits for the disk, behind whatever writeback it holds: off the
         * reactor (storage/offload.h). Until seal_job_done nothing here
         * touches s's seal state, descriptors or files (seal_inflight). */
        s->seal_inflight = true;
        s->seal_log = log;
        log->n_seal_inflight++;
        rn_segment_ref(s);
        rn_offload(log->io, &s->seal_job, seal_job, s, seal_job_done);
    }
}

/* Acknowledge the appends that the flushed offset now covers. */
static void ack_synced(rn_log *log)
{
    while (log->unsynced.head && log->unsynced.head->last_offset < log->flushed) {
        log->unsynced_bytes -= log->unsynced.head->len;
        complete(log, q_pop(&log->unsynced), 0);
    }
}

/* Fail every append still waiting for a sync (after the log failed). */
static void fail_unsynced(rn_log *log, int err)
{
    pending *p;
    log->unsynced_bytes = 0;
    while ((p = q_pop(&log->unsynced)))
        complete(log, p, err);
}

static void sync_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_log *log = RN_CONTAINER_OF(op, rn_log, sync_op);
    (void)flags;
    rn_segment *seg = log->sync_seg;
    log->sync_inflight = false;
    log->sync_seg = NULL;
    if (res < 0 && !log->failed) {
        rn__log_set_err(log, res, "segment %020" PRId64 ": fdatasync", seg->base_offset);
        log->failed = -RN_E_LOG_FAILED;
    }
    rn_segment_unref(seg);
    if (log->failed) {
        fail_unsynced(log, log->failed);
        return;
    }
    if (log->sync_target > log->flushed)
        log->flushed = log->sync_target;
    ack_synced(log);
    rn__log_maybe_sync(log);
}

/* Start an fdatasync of the segment holding the newest visible batch when
 * there is something to make durable and none runs: the group commit. */
static void submit_sync(rn_log *log)
{
    rn_segment *seg = log->visible_seg;
    if (log->sync_inflight || log->failed || !seg || log->leo <= log->flushed)
        return;
    /* Invariant 2: the sync covers batches in seg and in the segments before
     * it, so those must be on disk already. A rolled segment whose own
     * fdatasync (rn__log_seal_rolled) has not completed holds batches this one would
     * acknowledge: wait for it (seal_sync_done calls rn__log_maybe_sync again). */
    for (unsigned i = 0; i + 1 < log->n_segs && log->segs[i] != seg; i++) {
        if ((!log->segs[i]->seal_synced && !log->segs[i]->sealed) ||
            log->segs[i]->dir_sync_inflight) {
            log->sync_deferred = true;
            return;
        }
    }
    if (seg->seal_inflight || seg->dir_sync_inflight) {
        /* The newest batch is in a rolled segment the worker is sealing (its
         * descriptor is the worker's now; the seal syncs it), or in one whose
         * name is not yet durable: wait for the worker. */
        log->sync_deferred = true;
        return;
    }
    log->sync_deferred = false;
    if (seg->fd < 0) {
        /* Sealed already, which synced it and every segment before it. */
        log->flushed = log->leo;
        ack_synced(log);
        return;
    }
    log->sync_inflight = true;
    log->sync_seg = seg;
    rn_segment_ref(seg);
    log->sync_target = log->leo;
    rn_io_fdatasync(log->io, &log->sync_op, sync_done, seg->fd);
}

static void timer_fired(rn_io_op *op, int res, uint32_t flags)
{
    rn_log *log = RN_CONTAINER_OF(op, rn_log, timer_op);
    (void)flags;
    log->timer_armed = false;
    if (res == -ECANCELED)
        return;
    submit_sync(log);
    rn__log_maybe_sync(log);
}

static void cancel_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_log *log = RN_CONTAINER_OF(op, rn_log, cancel_op);
    (void)res;
    (void)flags;
    log->cancel_inflight = false;
}

/* ---- Early writeback -------------------------------------------------------
 *
 * Under flush=interval the page cache holds everything appended since the
 * last fdatasync, and that fdatasync writes it in one burst: ~0.5 GB at half
 * of peak. While it runs, appends to the file wait for its locks (the inode's
 * i_rwsem in ext4_buffered_write_iter, 6-21 ms at a time, while the fsync's
 * worker spent 66-72 ms in ext4_do_writepages) and the p99 at half of peak
 * was 100-300 ms where flush=never gave 3-6 ms (docs/benchmarks.md, third
 * round). So every WRITEBACK_BYTES of visible data in the active segment the
 * log starts writeback of it (sync_file_range SYNC_FILE_RANGE_WRITE through
 * the ring, one in flight, never waited for): the disk gets a steady stream
 * and the interval's fdatasync finds at most a few tens of MB left. The range
 * ends at a page boundary below the tail, so writeback never takes the page
 * the next append writes into. 32 MiB, not 1 MiB: the first round measured a
 * MiB at a time as contention all the time. Durability is unchanged: this
 * only starts writes, the fdatasync still decides what is on disk and reports
 * a failed writeback. Not under flush=always (its group commit syncs at once)
 * nor flush=never (no flush to smooth; the kernel writes back on its own). */

static void writeback_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_log *log = RN_CONTAINER_OF(op, rn_log, wb_op);
    (void)res; /* the next fdatasync reports a failed writeback */
    (void)flags;
    log->wb_inflight = false;
    log->wb_pos = log->wb_end;
    /* A rolled segment's seal may have waited for this (rn__log_seal_rolled). */
    rn__log_maybe_sync(log);
    rn__log_start_writeback(log);
}

void rn__log_start_writeback(rn_log *log)
{
    rn_segment *seg = log->visible_seg;
    if (log->wb_inflight || log->failed || log->cfg.flush != RN_FLUSH_INTERVAL || !seg ||
        seg->fd < 0 || seg->seal_inflight || seg->rolled)
        return;
    if (seg != log->wb_seg) {
        /* A new segment (a rolled one is synced before its seal). wb_seg
         * stays referenced until the next one or free_log, so the comparison
         * never meets a freed segment's address reused. */
        if (log->wb_seg)
            rn_segment_unref(log->wb_seg);
        rn_segment_ref(seg);
        log->wb_seg = seg;
        log->wb_pos = 0;
    }
    uint64_t end = seg->size / PAGE_BYTES * PAGE_BYTES;
    if (log->wb_pos > end)
        log->wb_pos = end;
    if (end < log->wb_pos + WRITEBACK_BYTES)
        return;
    log->wb_inflight = true;
    log->wb_end = end;
    struct io_uring_sqe *sqe = rn_io_sqe(log->io, &log->wb_op, writeback_done);
    io_uring_prep_sync_file_range(sqe, seg->fd, (unsigned)(end - log->wb_pos), log->wb_pos,
                                  SYNC_FILE_RANGE_WRITE);
}

/* What the flush policy asks for now. */
void rn__log_maybe_sync(rn_log *log)
{
    if (!log->failed)
        rn__log_seal_rolled(log);
    if (log->failed) {
        /* No sync will come to acknowledge the waiting appends (a seal's
         * fdatasync may just have failed): fail them now, or they wait forever. */
        if (!log->sync_inflight)
            fail_unsynced(log, log->failed);
        return;
    }
    /* Appends waiting for a sync get one whatever the policy is now: they came
     * under flush=always, and a policy change does not take that promise back. */
    /* Group commit: while writes are still in flight their completions come
     * in microseconds (page cache), so wait for them and let one fdatasync
     * cover them all; a steady stream of writes cannot starve the sync past
     * GROUP_COMMIT_BYTES. */
    if (log->unsynced.head && (!log->writes.head || log->unsynced_bytes >= GROUP_COMMIT_BYTES))
        submit_sync(log);
    /* Only for what no sync in flight covers: re-arming for a sync that is about
     * to complete would wake up an interval later with nothing to do. */
    int64_t covered = log->sync_inflight ? log->sync_target : log->flushed;
    if (log->cfg.flush == RN_FLUSH_INTERVAL && !log->timer_armed && log->leo > covered) {
        log->timer_armed = true;
        rn_io_timer(log->io, &log->timer_op, timer_fired, &log->timer_ts,
                    log->cfg.flush_interval_ms);
    }
}

/* Preallocation. ext4 allocates a delayed-allocation file's blocks at
 * writeback, under the inode's i_data_sem, and reads a block group's bitmap
 * from the disk when the file grows into a new group; an append (a buffered
 * write) that needs i_data_sem meanwhile waits for that read, queued behind
 * the interval fdatasync's second of data (docs/benchmarks.md, "Where the
 * produce tail came from"). Blocks allocated ahead of the write position
 * (unwritten extents, read as zeros: the end of data) leave writeback nothing
 * to allocate. The fallocate runs on an io-wq worker, never on the reactor,
 * and no append waits for it: one that overtakes it writes to delayed
 * allocation as before. FALLOC_FL_KEEP_SIZE: the file is already
 * segment-sized (sparse), and a fallocate completing after a seal cut the
 * file must not grow it back (rn__log_seal_rolled and close wait for it anyway). */
static void prealloc_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_log *log = RN_CONTAINER_OF(op, rn_log, prealloc_op);
    (void)flags;
    rn_segment *seg = log->prealloc_seg;
    log->prealloc_inflight = false;
    log->prealloc_seg = NULL;
    if (res == 0) {
        if (log->prealloc_to > seg->alloc_end)
            seg->alloc_end = log->prealloc_to;
    } else if (res == -EOPNOTSUPP || res == -ENOSYS) {
        log->prealloc_off = true; /* a file system without fallocate */
    }
    /* Any other error (ENOSPC) is the append's to report: it only means the
     * blocks were not reserved ahead. */
    rn_segment_unref(seg);
    rn__log_maybe_sync(log); /* a rolled segment may have waited for this to seal */
}

void rn__log_prealloc_ahead(rn_log *log, rn_segment *seg, size_t len)
{
    if (log->prealloc_inflight || log->prealloc_off || seg->fd < 0)
        return;
    /* As far ahead as the segment holds already, up to preallocate_bytes:
     * a busy partition gets whole chunks, while a quiet one (10,000 of them
     * with a record each) reserves next to nothing. A new chunk is asked
     * for when half of the last one is used, so it is ready in time. */
    uint64_t held = seg->end_pos + len;
    uint64_t ahead = log->cfg.preallocate_bytes < held ? log->cfg.preallocate_bytes : held;
    if (held + ahead / 2 <= seg->alloc_end)
        return;
    uint64_t cap = rn_segment_capacity(seg);
    uint64_t from = seg->alloc_end > held ? seg->alloc_end : held;
    uint64_t to = held + ahead;
    if (to > cap)
        to = cap;
    if (from >= to)
        return;
    log->prealloc_inflight = true;
    log->prealloc_seg = seg;
    log->prealloc_to = to;
    rn_segment_ref(seg);
    rn_io_fallocate(log->io, &log->prealloc_op, prealloc_done, seg->fd, FALLOC_FL_KEEP_SIZE,
                    (off_t)from, (off_t)(to - from));
}

/* On the offload worker: make a rolled-in segment's name durable. */
int rn__log_dir_sync_job(void *arg)
{
    rn_segment *seg = arg;
    return rn_sys_fsync_dir_lazy(seg->seal_log->dir);
}

void rn__log_dir_sync_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_segment *seg = RN_CONTAINER_OF(op, rn_segment, dir_job.op);
    rn_log *log = seg->seal_log;
    (void)flags;
    seg->dir_sync_inflight = false;
    log->n_seal_inflight--;
    if (res < 0 && !log->failed && !seg->deleted) {
        /* As a failed fdatasync: what the directory holds is unknown. */
        rn__log_set_err(log, res, "segment %020" PRId64 ": fsync of the directory",
                        seg->base_offset);
        log->failed = -RN_E_LOG_FAILED;
    }
    rn_segment_unref(seg);
    roll_work_done(log);
}

/* Run io until no append, sync or timer of this log is in flight. */
int rn__log_drain(rn_log *log)
{
    if (log->timer_armed && !log->cancel_inflight) {
        log->cancel_inflight = true;
        rn_io_timer_cancel(log->io, &log->timer_op, &log->cancel_op, cancel_done);
    }
    while (log->writes.head || log->unsynced.head || log->sync_inflight || log->timer_armed ||
           log->cancel_inflight || log->n_seal_inflight || log->prealloc_inflight ||
           log->wb_inflight) {
        int rc = rn_io_run(log->io, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
        if (log->timer_armed && !log->cancel_inflight) {
            log->cancel_inflight = true;
            rn_io_timer_cancel(log->io, &log->timer_op, &log->cancel_op, cancel_done);
        }
    }
    return 0;
}

int rn_log_flush_sync(rn_log *log)
{
    /* Rolled segments are synced through the ring (rn__log_seal_rolled): what they
     * hold is durable only once those syncs are done too. */
    while (log->writes.head || log->unsynced.head || log->sync_inflight || log->n_seal_inflight) {
        int rc = rn_io_run(log->io, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    if (log->failed)
        return log->failed;
    rn_segment *seg = active(log);
    if (seg->fd >= 0 && log->leo > log->flushed) {
        int rc = rn_sys_fdatasync_lazy(seg->fd);
        if (rc < 0) {
            rn__log_set_err(log, rc, "segment %020" PRId64 ": fdatasync", seg->base_offset);
            log->failed = -RN_E_LOG_FAILED;
            return rc;
        }
    }
    log->flushed = log->leo;
    return 0;
}

int rn_log_set_config(rn_log *log, const rn_log_config *cfg)
{
    if (rn__log_check_config(cfg) < 0)
        return -EINVAL;
    log->cfg = *cfg;
    if (log->cfg.flush == RN_FLUSH_ALWAYS && log->leo > log->flushed && !log->unsynced.head)
        submit_sync(log); /* a switch to always makes what is visible durable now */
    rn__log_maybe_sync(log);
    return 0;
}
