/*
 * log_retention.c — retention of a partition log: rn_log_enforce_retention
 * (log.h) deletes whole segments, oldest first, that retention.ms or
 * retention.bytes no longer wants, and moves the log start offset to the
 * first segment that remains. Shares the log's state with log.c through
 * storage/log_impl.h; runs on the owning reactor's thread, like the rest.
 *
 * Invariants:
 *  1. Only the oldest segments go, one after another, so what remains is
 *     always a contiguous suffix of the log and the log start offset is the
 *     base offset of segs[0].
 *  2. A segment still being written is never deleted: it must be sealed, or
 *     rolled with no write pending (its seal may wait for an fdatasync, which
 *     holds its own reference).
 *  3. Deleting never unmaps under a reader: dropping a segment releases the
 *     log's reference only; readers holding a slice keep the mapping until
 *     they release it (segment.h).
 *  4. The active segment goes only when retention wants all of it and it is
 *     quiet (nothing in flight, everything below the high watermark); it is
 *     rolled first, so the log always keeps one (empty) active segment.
 *  5. After a deletion the directory is fsynced and the leader epochs that
 *     began before the new start collapse into one entry at it (in memory;
 *     written with the next seal or close, and clamped at open if a crash
 *     leaves the file behind).
 *
 * retention.bytes also makes the active segment roll at half the limit
 * (needs_roll in log.c), so size retention can trim a log whose segments are
 * larger than the limit.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/log_impl.h"
#include "storage/segment.h"
#include "storage/sys.h"

/* Drop segs[0], whose files are already deleted: the log start offset moves
 * to the next segment's base offset. */
static void drop_first(rn_log *log)
{
    rn_segment *s = log->segs[0];
    memmove(log->segs, log->segs + 1, (log->n_segs - 1) * sizeof(*log->segs));
    log->n_segs--;
    log->start_offset = log->segs[0]->base_offset;
    if (log->visible_seg == s) {
        /* The newest visible batch is in s while the append that rolled past it
         * is still being written. What is visible is on disk (s is sealed) or
         * deleted with s; no sync may use s once it is dropped below. */
        log->visible_seg = NULL;
        if (log->flushed < log->leo)
            log->flushed = log->leo;
    }
    rn_segment_unref(s); /* readers holding it keep the mapping */
}

/* Whether retention wants segment s gone, total being the log's size with s. */
static bool retention_wants(const rn_log *log, const rn_segment *s, uint64_t total, int64_t now_ms)
{
    /* Without timestamps, the age of the newest data: when it was appended. */
    int64_t age_ts = s->max_timestamp >= 0 ? s->max_timestamp : s->last_append_ms;
    bool too_old = log->cfg.retention_ms >= 0 && now_ms - age_ts > log->cfg.retention_ms;
    bool too_big =
        log->cfg.retention_bytes >= 0 && total - s->size >= (uint64_t)log->cfg.retention_bytes;
    return too_old || too_big;
}

int rn_log_enforce_retention(rn_log *log, int64_t now_ms)
{
    int n = 0, rc = 0;
    uint64_t total = rn_log_size_bytes(log);
    while (log->n_segs > 0) {
        rn_segment *s = log->segs[0];
        if (log->n_segs == 1) {
            /* The active segment, as Kafka does: when retention wants all of
             * it gone, roll first so it can go. Otherwise data older than
             * retention.ms in a large active segment could only age out
             * once the segment filled (a 1 GiB segment on a 64 MiB disk:
             * never). Only when it is whole and quiet: no write in flight,
             * every batch below the high watermark (acknowledged). */
            if (s->size == 0 || s->n_pending || log->writes.head || log->broken || log->failed ||
                s->next_offset > rn_log_high_watermark(log) ||
                !retention_wants(log, s, total, now_ms))
                break;
            rc = rn__log_roll(log, now_ms);
            if (rc < 0)
                break; /* set_err said why; the next pass tries again */
            continue;  /* s is now the rolled one, with nothing pending */
        }
        /* rolled first: while the offload worker seals s, s->sealed is its */
        if (!(s->rolled && s->n_pending == 0) && !s->sealed)
            break; /* still being written: never delete under a write (a rolled
                      segment whose seal is in flight, its fdatasync through
                      the ring or the seal on the offload worker, may go: each
                      holds a reference, a deleted segment's failed seal is
                      ignored, and the data is no longer wanted) */
        if (!retention_wants(log, s, total, now_ms))
            break;
        rc = rn_segment_delete_files(s);
        if (rc < 0) {
            rn__log_set_err(log, rc, "segment %020" PRId64 ": delete", s->base_offset);
            break;
        }
        total -= s->size;
        drop_first(log);
        n++;
    }
    if (n > 0) {
        int r = rn_sys_fsync_dir(log->dir);
        if (r < 0)
            rn__log_set_err(log, r, "retention: fsync of the directory");
        /* Epochs that started before the new log start collapse into one.
         * In memory; written with the next seal or close. A file that runs
         * behind has entries below the start, which open clamps. */
        /* An unread (lazy) checkpoint is clamped when it is read. */
        r = log->epochs ? rn_leader_epochs_truncate_from_start(log->epochs, log->start_offset) : 0;
        if (r < 0)
            rn__log_set_err(log, r, "retention: leader epochs");
    }
    return n ? n : rc;
}

/* ---- Deleting below an offset (a snapshot covers it) ----------------------- */

int rn_log_roll(rn_log *log)
{
    if (log->failed)
        return log->failed;
    if (log->broken)
        return log->broken;
    rn_segment *s = log->segs[log->n_segs - 1];
    if (s->size == 0)
        return 0;
    return rn__log_roll(log, rn_log_clock_ms());
}

int rn_log_delete_below(rn_log *log, int64_t offset)
{
    int n = 0, rc = 0;
    /* Invariants 1 and 2: the oldest first, never the active segment, only
     * segments whose every batch is below offset (the next one begins at or
     * before it). */
    while (log->n_segs > 1 && log->segs[1]->base_offset <= offset) {
        rn_segment *s = log->segs[0];
        if (!(s->rolled && s->n_pending == 0) && !s->sealed)
            break; /* still being written (a seal in flight may go, as above) */
        rc = rn_segment_delete_files(s);
        if (rc < 0) {
            rn__log_set_err(log, rc, "segment %020" PRId64 ": delete", s->base_offset);
            break;
        }
        drop_first(log);
        n++;
    }
    if (n > 0) {
        int r = rn_sys_fsync_dir(log->dir);
        if (r < 0)
            return rn__log_set_err(log, r, "delete below: fsync of the directory");
        r = log->epochs ? rn_leader_epochs_truncate_from_start(log->epochs, log->start_offset) : 0;
        if (r < 0)
            rn__log_set_err(log, r, "delete below: leader epochs");
    }
    return n ? n : rc;
}
