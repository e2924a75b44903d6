/*
 * log_truncate.c — cutting a partition log back: rn_log_truncate_to and
 * rn_log_truncate_fully (log.h), what a follower does after
 * OffsetsForLeaderEpoch (KIP-101/279). Shares the log's state with log.c
 * through storage/log_impl.h.
 *
 * rn_log_truncate_to(offset) cuts the log back to the start of the batch
 * holding offset (Kafka's LogSegment.truncateTo drops that whole batch too;
 * runnel then ends the log where the data ends, never leaving a gap). Each
 * step is ordered so that a crash at any point recovers to the old log or
 * to the truncated one, nothing in between:
 *
 *   1. cut the .log of the segment holding offset at the batch's position
 *      and fdatasync it — the point of no return. Before it, nothing on
 *      disk changed. After it, recovery finishes the rest by itself: the cut
 *      segment no longer reaches the next segment's base offset, a "cut or
 *      gap" that open_segments answers by deleting every later segment;
 *   2. zero the index entries past the cut (an index that still points past
 *      the data is rebuilt at open anyway: only speed depends on this);
 *   3. delete the later segments' files, fsync the directory;
 *   4. reopen the cut segment as the active one (sparse-regrown, mapped);
 *   5. move the log end, the flushed offset (so the high watermark) back,
 *      then drop the leader epochs that start at or past the new end and
 *      write their checkpoint (a crash before that leaves entries past the
 *      log end, which open drops: the checkpoint may run behind a cut).
 *
 * Readers: deleted segments keep their mapping until their last reference
 * goes (as with retention). The cut segment is cut in place only when no
 * reader holds it; otherwise its kept bytes are copied into a new file that
 * replaces it by rename (step 1 then is tmp → fdatasync → rename → fsync
 * dir), so a reader's mapping keeps the old inode, whose bytes are neither
 * cut (no SIGBUS) nor overwritten by later appends.
 *
 * rn_log_truncate_fully(offset) (Kafka's truncateFullyAndStartAt) deletes
 * every segment and starts an empty log at offset. Deleting files one by
 * one is not atomic, so it is journalled: a durable "truncate-fully" marker
 * naming offset first; then the segment files and the epoch checkpoint are
 * deleted and an empty segment is created at offset; the marker goes last.
 * An open that finds the marker does it all again before anything else.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/checkpoint.h"
#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/log_impl.h"
#include "storage/segment.h"
#include "storage/sys.h"

#define TRUNC_MARKER "truncate-fully"
#define TRUNC_MAGIC  "RNTRUNC1"

/* Run io until no append, sync or seal of this log is in flight; the
 * callbacks of those appends run meanwhile. Returns the log's failure. */
static int quiesce(rn_log *log)
{
    while (log->writes.head || log->unsynced.head || log->sync_inflight || log->n_seal_inflight ||
           log->prealloc_inflight || log->wb_inflight) {
        int rc = rn_io_run(log->io, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    return log->failed ? log->failed : log->broken;
}

/* Step 1 with a reader on seg: the first len bytes into a new file that
 * replaces seg's .log by rename. Errors leave the old file in place. */
static int replace_with_prefix(rn_segment *seg, uint64_t len)
{
    char path[4096], tmp[4096];
    if (snprintf(path, sizeof(path), "%s.log", seg->path) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s.log.tmp", seg->path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    /* [0, len) is below size: written, so the mapping never faults here.
     * The caller syncs the directory. */
    return rn_sys_replace_file(tmp, path, NULL, seg->map, len, RN_REPLACE_NO_DIR_SYNC);
}

/* Step 1 without readers: ftruncate the .log at pos and fdatasync it.
 * *cut says whether the ftruncate happened (the point of no return). */
static int cut_in_place(rn_segment *seg, uint64_t pos, bool *cut)
{
    int fd = seg->fd;
    if (fd < 0) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s.log", seg->path) >= (int)sizeof(path))
            return -ENAMETOOLONG;
        fd = rn_sys_open(path, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0)
            return fd;
    }
    int rc = rn_sys_ftruncate(fd, (off_t)pos);
    *cut = rc == 0;
    if (rc == 0)
        rc = rn_sys_fdatasync(fd);
    if (fd != seg->fd) {
        int r = rn_sys_close(fd);
        if (rc == 0)
            rc = r;
    }
    return rc;
}

int rn_log_truncate_to(rn_log *log, int64_t offset, int64_t *new_end)
{
    if (offset < 0)
        return -EINVAL;
    int rc = quiesce(log);
    if (rc == 0)
        rc = rn__log_epochs_load(log); /* a lazy checkpoint: before anything is cut */
    if (rc < 0)
        return rc;
    if (offset >= log->leo) {
        /* Nothing to cut, but as Kafka does: an epoch this log assigned and
         * then never wrote a batch for may sit at the end; it goes. */
        if (new_end)
            *new_end = log->leo;
        rc = rn_leader_epochs_truncate_from_end(log->epochs, log->leo);
        if (rc >= 0)
            rc = rn_leader_epochs_flush(log->epochs);
        return rc < 0 ? rn__log_set_err(log, rc, "truncation: leader-epoch checkpoint") : 0;
    }
    if (offset < log->start_offset) {
        rc = rn_log_truncate_fully(log, offset);
        if (rc == 0 && new_end)
            *new_end = offset;
        return rc;
    }
    unsigned i = rn__log_segment_for(log, offset);
    rn_segment *seg = log->segs[i];
    uint64_t pos = 0;
    int64_t end = seg->base_offset;
    if (offset > seg->base_offset) {
        rc = rn_segment_find(seg, offset, &pos);
        rn_batch_header h;
        if (rc == 0 &&
            (rn_batch_peek(seg->map + pos, seg->size - pos, 0, &h) < 0 || h.base_offset > offset))
            rc = -RN_E_CORRUPT_INDEX;
        if (rc < 0)
            return rn__log_set_err(log, rc, "truncation: segment %020" PRId64 ": offset %" PRId64,
                                   seg->base_offset, offset);
        end = h.base_offset;
    }

    /* 1. The cut. */
    bool readers = __atomic_load_n(&seg->refs, __ATOMIC_ACQUIRE) > 1, cut = false;
    if (readers) {
        rc = replace_with_prefix(seg, pos);
        cut = rc == 0;
        if (rc == 0)
            rc = rn_sys_fsync_dir(log->dir);
    } else {
        rc = cut_in_place(seg, pos, &cut);
    }
    if (rc < 0 && !cut)
        return rn__log_set_err(log, rc, "truncation: segment %020" PRId64 ": cut at %" PRIu64,
                               seg->base_offset, pos); /* nothing changed */
    int err = rc;
    /* From here on the log must reach the truncated state; a step that
     * fails fails the log (the next open finishes the truncation). */
    /* 2. Index entries past the cut. */
    rn_segment_trim_indexes(seg, pos, end);
    /* 3. Later segments. */
    bool deleted = false;
    while (log->n_segs > i + 1) {
        rn_segment *s = log->segs[--log->n_segs];
        rc = rn_segment_delete_files(s);
        if (rc < 0 && err == 0)
            err = rc;
        deleted = true;
        if (log->visible_seg == s)
            log->visible_seg = NULL;
        rn_segment_unref(s); /* readers holding it keep the mapping */
    }
    if (deleted) {
        rc = rn_sys_fsync_dir(log->dir);
        if (rc < 0 && err == 0)
            err = rc;
    }
    /* 4. The cut segment, reopened for appends. */
    rn_segment *fresh = NULL;
    bool rebuilt;
    rc = rn_segment_open(&fresh, log->dir, seg->base_offset, &log->cfg, true);
    if (rc == 0)
        rc = rn_segment_find_end(fresh, log->cfg.max_batch_bytes, &rebuilt);
    if (rc == 0 && fresh->next_offset != end)
        rc = -RN_E_CORRUPT_SEGMENT; /* the file does not end where it was cut */
    if (rc < 0) {
        rn_segment_unref(fresh);
        if (err == 0)
            err = rc;
    } else {
        log->segs[i] = fresh;
        rn_segment_unref(seg); /* readers holding it keep the mapping */
        seg = fresh;
    }
    seg->rolled = false;
    /* 5. The offsets, then the epochs. */
    log->leo = log->next_assign = log->flushed = end;
    log->visible_seg = seg;
    log->older_n = 0; /* the size cache: the segment list changed */
    if (err < 0) {
        rn__log_set_err(log, err, "truncation to %" PRId64 " after the cut (a reopen finishes it)",
                        end);
        log->failed = -RN_E_LOG_FAILED;
        return err;
    }
    if (new_end)
        *new_end = end;
    rc = rn_leader_epochs_truncate_from_end(log->epochs, end);
    if (rc >= 0)
        rc = rn_leader_epochs_flush(log->epochs);
    return rc < 0 ? rn__log_set_err(log, rc, "truncation: leader-epoch checkpoint") : 0;
}

/* Delete every segment's files and the epoch checkpoint in dir, then create
 * an empty segment at offset (returned in *out when out is not NULL). The
 * journalled part of rn_log_truncate_fully, run again by an open that finds
 * its marker. */
static int truncate_fully_files(rn_log *log, int64_t offset, rn_segment **out)
{
    int64_t *bases = NULL;
    unsigned n = 0;
    int rc = rn__log_list_segments(log, &bases, &n);
    if (rc < 0)
        return rc;
    static const char *const exts[] = {".tix", ".idx", ".log"};
    for (unsigned j = 0; j < n && rc == 0; j++) {
        for (size_t e = 0; e < 3 && rc == 0; e++) {
            char p[4096];
            rc = rn_segment_path(p, sizeof(p), log->dir, bases[j], exts[e]);
            if (rc == 0)
                rc = rn_sys_unlink(p);
            if (rc == -ENOENT)
                rc = 0;
        }
    }
    free(bases);
    if (rc < 0)
        return rn__log_set_err(log, rc, "truncate-fully: deleting segments");
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", log->dir, RN_LEADER_EPOCH_FILE);
    rc = rn_sys_unlink(p);
    if (rc < 0 && rc != -ENOENT)
        return rn__log_set_err(log, rc, "truncate-fully: deleting %s", RN_LEADER_EPOCH_FILE);
    rn_segment *seg;
    rc = rn_segment_create(&seg, log->dir, offset, &log->cfg, rn_log_clock_ms());
    if (rc < 0)
        return rn__log_set_err(log, rc, "truncate-fully: segment %020" PRId64 ": create", offset);
    rc = rn_sys_fsync_dir(log->dir);
    if (rc < 0) {
        rn_segment_unref(seg);
        return rn__log_set_err(log, rc, "truncate-fully: fsync of the directory");
    }
    if (out)
        *out = seg;
    else
        rn_segment_unref(seg);
    return 0;
}

/* At open: a truncate-fully that a crash interrupted is done again. */
int rn__log_finish_truncate_fully(rn_log *log)
{
    int64_t m;
    int rc = rn_checkpoint_read(log->dir, TRUNC_MARKER, TRUNC_MAGIC, &m, sizeof(m));
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rn__log_set_err(log, rc, "reading the %s marker", TRUNC_MARKER);
    int64_t offset = (int64_t)le64toh((uint64_t)m);
    if (offset < 0)
        return rn__log_set_err(log, -RN_E_CORRUPT_FILE, "the %s marker", TRUNC_MARKER);
    rc = truncate_fully_files(log, offset, NULL);
    if (rc < 0)
        return rc;
    rc = rn_checkpoint_remove(log->dir, TRUNC_MARKER);
    return rc < 0 ? rn__log_set_err(log, rc, "removing the %s marker", TRUNC_MARKER) : 0;
}

int rn_log_truncate_fully(rn_log *log, int64_t offset)
{
    if (offset < 0)
        return -EINVAL;
    int rc = quiesce(log);
    if (rc == 0)
        rc = rn__log_epochs_load(log); /* a lazy checkpoint: before anything is cut */
    if (rc < 0)
        return rc;
    int64_t m = (int64_t)htole64((uint64_t)offset);
    rc = rn_checkpoint_write(log->dir, TRUNC_MARKER, TRUNC_MAGIC, &m, sizeof(m));
    if (rc < 0) {
        /* The marker may be in place all the same (its directory sync
         * failed after the rename): then the next open would empty the log,
         * taking whatever is appended meanwhile. Take it back; if even that
         * fails, append nothing more (a reopen decides, old or empty). */
        if (rn_checkpoint_remove(log->dir, TRUNC_MARKER) < 0)
            log->failed = -RN_E_LOG_FAILED;
        return rn__log_set_err(log, rc, "truncate-fully: writing the marker");
    }
    /* Past the point of no return: the next open finishes what fails here. */
    rn_segment *seg = NULL;
    rc = truncate_fully_files(log, offset, &seg);
    while (log->n_segs > 0) {
        rn_segment *s = log->segs[--log->n_segs];
        s->deleted = true;
        rn_segment_unref(s); /* readers holding it keep the mapping */
    }
    log->visible_seg = NULL;
    if (rc == 0)
        rc = rn__log_push_segment(log, seg);
    if (rc < 0) {
        rn_segment_unref(seg);
        log->failed = -RN_E_LOG_FAILED;
        return rc;
    }
    log->start_offset = log->leo = log->next_assign = log->flushed = offset;
    log->visible_seg = seg;
    log->older_n = 0;
    rc = rn_leader_epochs_clear(log->epochs);
    if (rc >= 0)
        rc = rn_leader_epochs_write(log->epochs);
    if (rc < 0) {
        log->failed = -RN_E_LOG_FAILED;
        return rn__log_set_err(log, rc, "truncate-fully: leader-epoch checkpoint");
    }
    rc = rn_checkpoint_remove(log->dir, TRUNC_MARKER);
    if (rc < 0) {
        /* The marker stays: the next open empties the log again. Nothing may
         * be appended that it would throw away. */
        log->failed = -RN_E_LOG_FAILED;
        return rn__log_set_err(log, rc, "truncate-fully: removing the marker");
    }
    return 0;
}
