/*
 * log.c — the partition log's append path: rn_log_append and its write
 * completions (the life and invariants below, which the other log_*.c files
 * keep too), the roll (rn__log_roll starts the old segment's seal and the new
 * one's directory fsync), reads (rn_log_read, rn_log_walk_headers,
 * rn_log_offset_for_time), the config and the accessors of log.h. The rest
 * of the partition log, sharing the state in storage/log_impl.h:
 *   log_flush.c     the flush policy (group commit, interval timer, early
 *                   writeback, preallocation) and the work a roll leaves
 *                   behind (a rolled segment's sync and seal, the new one's
 *                   directory fsync);
 *   log_open.c      open and close, the clean-shutdown marker, the segments
 *                   and leader-epoch checkpoint an open recovers;
 *   log_retention.c retention (deleting old segments, moving the log start);
 *   log_truncate.c  truncation.
 *
 * Life of an append (all on the owning reactor's thread):
 *
 *   rn_log_append ──▶ WRITING ──pwrite CQE──▶ WRITTEN ──in order──▶ visible
 *      stamp offsets,    (io_uring write at      (may complete out     │
 *      reserve [pos,     the reserved pos)        of order)            │
 *      pos+len)                                               flush=always?
 *                                                        no ──▶ ack (cb)
 *                                                        yes ─▶ awaiting sync ─fdatasync CQE─▶ ack
 *
 * Invariants:
 *  1. Offsets and positions are assigned at submission, in order; a batch
 *     becomes visible (segment size and next_offset move past it) only after
 *     it and every batch before it are written, so readers see a prefix.
 *  2. Group commit: at most one fdatasync is in flight; it covers every batch
 *     visible when it was submitted (sync_target), all of which lie in the
 *     segment it syncs or in sealed (already synced) segments before it. The
 *     appends waiting when it completes share the next one.
 *  3. A rolled segment is sealed (truncated to size, synced, descriptors
 *     closed) as soon as no write to it is pending and no sync uses it.
 *  4. A failed write leaves a hole; every append after it fails too, and once
 *     the writes in flight have drained the tail is cut back to the last
 *     visible batch, so nothing the caller was told failed can reappear.
 *     A failed fdatasync fails the log for good (-RN_E_LOG_FAILED): after
 *     one, Linux gives no guarantee about what reached the disk.
 *  5. With flush=always the high watermark is the flushed offset, so a
 *     consumer never reads what a crash could take back.
 *  6. A failed write (a full disk: -ENOSPC) moves nothing: neither the log
 *     end nor the offsets the next append gets, so a retry of the same
 *     batch lands where it would have. Retention may take the active
 *     segment (rolling it first) and, with retention.bytes, rolls it at
 *     half the limit, so a full disk can be relieved by retention alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/log_impl.h"
#include "storage/offload.h"
#include "storage/segment.h"

/* Smallest segment retention.bytes makes the active segment roll at (needs_roll). */
#define RETENTION_ROLL_MIN (1u << 20)

static int64_t default_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t (*rn_log_clock_ms)(void) = default_clock_ms;

/* ---- Small helpers ---------------------------------------------------------- */

int rn__log_set_err(rn_log *log, int rc, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(log->errmsg, sizeof(log->errmsg), "%s: %s: %s", log->name, what, rn_strerror(rc));
    return rc;
}

int rn__log_push_segment(rn_log *log, rn_segment *seg)
{
    if (log->n_segs == log->cap_segs) {
        unsigned cap = log->cap_segs ? log->cap_segs * 2 : 8;
        rn_segment **s = realloc(log->segs, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        log->segs = s;
        log->cap_segs = cap;
    }
    log->segs[log->n_segs++] = seg;
    return 0;
}

void rn_log_config_default(rn_log_config *c)
{
    memset(c, 0, sizeof(*c));
    c->segment_bytes = 1ull << 30;
    c->roll_ms = 7LL * 24 * 3600 * 1000;
    c->retention_ms = 7LL * 24 * 3600 * 1000;
    c->retention_bytes = -1;
    c->index_interval_bytes = 4096;
    c->max_batch_bytes = 1 << 20;
    c->flush = RN_FLUSH_ALWAYS;
    c->flush_interval_ms = 1000;
    /* Blocks allocated ahead of the appends, off the reactor (rn__log_prealloc_ahead):
     * writeback then has none to allocate under the inode's lock. */
    c->preallocate_bytes = 64ull << 20;
    c->min_insync_replicas = 1;
}

int rn_log_config_parse_flush(const char *s, rn_log_config *c)
{
    if (strcmp(s, "always") == 0) {
        c->flush = RN_FLUSH_ALWAYS;
        return 0;
    }
    if (strcmp(s, "never") == 0) {
        c->flush = RN_FLUSH_NEVER;
        return 0;
    }
    if (strncmp(s, "interval:", 9) == 0) {
        char *end;
        errno = 0;
        unsigned long ms = strtoul(s + 9, &end, 10);
        if (errno || end == s + 9 || *end || ms < 1 || ms > 3600000)
            return -RN_E_INVALID_CONFIG;
        c->flush = RN_FLUSH_INTERVAL;
        c->flush_interval_ms = (uint32_t)ms;
        return 0;
    }
    return -RN_E_INVALID_CONFIG;
}

const char *rn_log_config_flush_str(const rn_log_config *c, char *buf, size_t len)
{
    switch (c->flush) {
    case RN_FLUSH_ALWAYS:
        snprintf(buf, len, "always");
        break;
    case RN_FLUSH_NEVER:
        snprintf(buf, len, "never");
        break;
    case RN_FLUSH_INTERVAL:
        snprintf(buf, len, "interval:%" PRIu32, c->flush_interval_ms);
        break;
    }
    return buf;
}

int rn__log_check_config(const rn_log_config *c)
{
    if (c->segment_bytes < 4096 || c->segment_bytes > UINT32_MAX || c->index_interval_bytes == 0 ||
        c->max_batch_bytes < RN_BATCH_HEADER_LEN ||
        (c->flush == RN_FLUSH_INTERVAL &&
         (c->flush_interval_ms < 1 || c->flush_interval_ms > 3600000)) ||
        c->flush > RN_FLUSH_NEVER)
        return -EINVAL;
    return 0;
}

/* ---- Appending ------------------------------------------------------------ */

/* After a failed write, once every write in flight is back: cut the tail
 * back to the last visible batch, dropping segments made after it. */
static int repair_tail(rn_log *log)
{
    rn_segment *seg = log->broken_seg;
    while (log->n_segs > 1 && active(log) != seg) {
        rn_segment *s = log->segs[--log->n_segs];
        rn_segment_delete_files(s);
        rn_segment_unref(s);
    }
    seg->rolled = false;
    int rc = rn_segment_truncate(seg, seg->size, seg->next_offset);
    if (rc < 0) {
        rn__log_set_err(log, rc, "segment %020" PRId64 ": cutting a failed write",
                        seg->base_offset);
        log->failed = -RN_E_LOG_FAILED;
        return rc;
    }
    log->next_assign = log->leo;
    log->broken = 0;
    log->broken_seg = NULL;
    return 0;
}

static void advance(rn_log *log)
{
    pending *p;
    while ((p = log->writes.head) && p->state != WRITING) {
        q_pop(&log->writes);
        p->seg->n_pending--;
        if (p->state == FAILED || log->broken || log->failed) {
            if (!log->broken && !log->failed) {
                log->broken = p->err;
                log->broken_seg = p->seg;
                log->broken_pos = p->pos;
                rn__log_set_err(log, p->err, "segment %020" PRId64 ": write at %" PRIu64,
                                p->seg->base_offset, p->pos);
            }
            complete(log, p, log->failed ? log->failed : log->broken);
            continue;
        }
        rn_segment_note_batch(p->seg, p->pos, &p->h);
        log->leo = p->last_offset + 1;
        log->visible_seg = p->seg;
        /* Behind an append still waiting for its sync (made under always before
         * a policy change), a later one waits too: acks go in offset order. */
        if (log->cfg.flush == RN_FLUSH_ALWAYS || log->unsynced.head) {
            log->unsynced_bytes += p->len;
            q_push(&log->unsynced, p);
        } else
            complete(log, p, 0);
    }
    if (log->broken && !log->writes.head)
        repair_tail(log);
    rn__log_maybe_sync(log);
    rn__log_start_writeback(log);
}

static void write_done(rn_io_op *op, int res, uint32_t flags)
{
    pending *p = (pending *)op;
    rn_log *log = p->log;
    (void)flags;
    if (res == 0)
        res = -EIO; /* a zero-byte write would loop forever */
    if (res > 0 && p->done + (size_t)res < p->len) {
        /* Short write: resubmit the rest at the right place. */
        p->done += (size_t)res;
        rn_io_write(log->io, &p->op, write_done, p->seg->fd, p->buf + p->done, p->len - p->done,
                    (off_t)(p->pos + p->done));
        return;
    }
    if (res < 0) {
        p->state = FAILED;
        p->err = res;
    } else {
        p->state = WRITTEN;
    }
    advance(log);
}

int rn__log_roll(rn_log *log, int64_t now)
{
    rn_segment *old = active(log), *seg;
    /* The fsync of the directory that makes the new names durable waits for
     * the disk like any sync: it runs on the offload worker, and no batch in
     * the segment counts as flushed until it is done (submit_sync). */
    int rc = rn_segment_create_unsynced(&seg, log->dir, log->next_assign, &log->cfg, now);
    if (rc < 0)
        return rn__log_set_err(log, rc, "segment %020" PRId64 ": create", log->next_assign);
    rc = rn__log_push_segment(log, seg);
    if (rc < 0) {
        rn_segment_delete_files(seg);
        rn_segment_unref(seg);
        return rn__log_set_err(log, rc, "roll");
    }
    seg->dir_sync_inflight = true;
    seg->seal_log = log;
    log->n_seal_inflight++;
    rn_segment_ref(seg);
    rn_offload(log->io, &seg->dir_job, rn__log_dir_sync_job, seg, rn__log_dir_sync_done);
    old->rolled = true;
    rn__log_seal_rolled(log);
    return 0;
}

static bool needs_roll(const rn_log *log, const rn_segment *seg, size_t len, int64_t count,
                       int64_t now)
{
    if (seg->end_pos == 0)
        return false;
    if (seg->end_pos + len > rn_segment_capacity(seg))
        return true;
    /* retention.bytes below the segment size: retention deletes whole
     * segments, so one active segment larger than the limit could never be
     * trimmed and would outgrow it (and the disk). Rolling at half the limit
     * keeps the log between retention.bytes and 1.5 times it. */
    if (log->cfg.retention_bytes >= 0) {
        uint64_t half = (uint64_t)log->cfg.retention_bytes / 2;
        if (seg->end_pos + len > (half > RETENTION_ROLL_MIN ? half : RETENTION_ROLL_MIN))
            return true;
    }
    if (log->cfg.roll_ms > 0 && now - seg->created_ms >= log->cfg.roll_ms)
        return true;
    /* Relative offsets are u32 in the index. */
    return log->next_assign + count - seg->base_offset > INT32_MAX;
}

int rn_log_append(rn_log *log, void *batch, size_t len, int32_t leader_epoch, rn_log_append_cb cb,
                  void *arg)
{
    if (log->failed)
        return log->failed;
    if (log->broken)
        return log->broken;
    rn_batch_header h;
    int rc = rn_batch_check(batch, len, log->cfg.max_batch_bytes, &h);
    if (rc < 0)
        return rc;
    return rn_log_append_checked(log, batch, len, &h, leader_epoch, cb, arg);
}

int rn_log_append_checked(rn_log *log, void *batch, size_t len, const rn_batch_header *hp,
                          int32_t leader_epoch, rn_log_append_cb cb, void *arg)
{
    if (log->failed)
        return log->failed;
    if (log->broken)
        return log->broken;
    rn_batch_header h = *hp;
    int rc;
    if (rn_batch_size(&h) != len)
        return -RN_E_BATCH_BAD_LENGTH; /* exactly one batch per append */
    if (log->cfg.max_batch_bytes && len > log->cfg.max_batch_bytes)
        return -RN_E_MESSAGE_TOO_LARGE;
    int64_t count = (int64_t)h.last_offset_delta + 1;
    int64_t now = rn_log_clock_ms();

    rn_segment *seg = active(log);
    /* A batch that fits neither here nor in a new segment must not roll one. */
    if (len > log->cfg.segment_bytes && seg->end_pos + len > rn_segment_capacity(seg))
        return -RN_E_MESSAGE_TOO_LARGE;
    if (needs_roll(log, seg, len, count, now)) {
        rc = rn__log_roll(log, now);
        if (rc < 0)
            return rc;
        seg = active(log);
    }
    if (len > rn_segment_capacity(seg))
        return -RN_E_MESSAGE_TOO_LARGE;
    if (log->cfg.preallocate_bytes)
        rn__log_prealloc_ahead(log, seg, len);
    pending *p = pending_get(log);
    if (!p)
        return -ENOMEM;
    if (leader_epoch >= 0 && (rc = rn__log_epochs_load(log)) < 0) {
        pending_put(log, p);
        return rc;
    }
    if (leader_epoch >= 0 && leader_epoch != rn_leader_epochs_latest(log->epochs)) {
        /* A new epoch (a leader change): in memory now, on disk before the
         * segment holding it is sealed (see "Leader epochs" in log_open.c). */
        rc = rn_leader_epochs_assign(log->epochs, leader_epoch, log->next_assign);
        if (rc < 0) {
            pending_put(log, p);
            return rn__log_set_err(log, rc, "leader epoch %" PRId32 " at offset %" PRId64,
                                   leader_epoch, log->next_assign);
        }
    }
    rn_batch_stamp(batch, log->next_assign, leader_epoch);
    h.base_offset = log->next_assign;
    h.partition_leader_epoch = leader_epoch;
    p->log = log;
    p->seg = seg;
    p->pos = seg->end_pos;
    p->buf = batch;
    p->len = len;
    p->h = h;
    p->base_offset = log->next_assign;
    p->last_offset = log->next_assign + count - 1;
    p->cb = cb;
    p->arg = arg;
    p->state = WRITING;
    seg->end_pos += len;
    seg->last_append_ms = now;
    seg->n_pending++;
    log->next_assign += count;
    q_push(&log->writes, p);
    rn_io_write(log->io, &p->op, write_done, seg->fd, batch, len, (off_t)p->pos);
    return 0;
}

typedef struct sync_wait {
    bool done;
    int err;
    int64_t base;
} sync_wait;

static void sync_cb(void *arg, int err, int64_t base, int64_t last)
{
    sync_wait *w = arg;
    (void)last;
    w->done = true;
    w->err = err;
    w->base = base;
}

int rn_log_append_sync(rn_log *log, void *batch, size_t len, int32_t leader_epoch,
                       int64_t *base_offset)
{
    sync_wait w = {0};
    int rc = rn_log_append(log, batch, len, leader_epoch, sync_cb, &w);
    if (rc < 0)
        return rc;
    while (!w.done) {
        rc = rn_io_run(log->io, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    if (w.err == 0 && base_offset)
        *base_offset = w.base;
    return w.err;
}

/* ---- Reading -------------------------------------------------------------- */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Map the pages of a slice in one call instead of one fault per 64 KiB of
 * fault-around: readers (a CRC check, a sendmsg copying from the mmap) then
 * run at memory speed. Only a hint: older kernels say EINVAL, and nothing
 * depends on it. */
static void populate(const uint8_t *p, size_t len)
{
    static long page;
    if (len < 256 * 1024)
        return;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)p & ~(uintptr_t)(page - 1);
    madvise((void *)start, (uintptr_t)p + len - start, MADV_POPULATE_READ);
}

unsigned rn__log_segment_for(const rn_log *log, int64_t offset)
{
    unsigned lo = 0, hi = log->n_segs;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

int rn_log_read(rn_log *log, int64_t offset, size_t max_bytes, int64_t max_offset, rn_slice *out)
{
    memset(out, 0, sizeof(*out));
    out->base_offset = out->next_offset = offset;
    if (max_offset > log->leo)
        max_offset = log->leo;
    if (offset < log->start_offset || offset > max_offset)
        return -RN_E_OFFSET_OUT_OF_RANGE;
    if (offset == max_offset)
        return 0;
    rn_segment *seg = log->segs[rn__log_segment_for(log, offset)];
    if (offset >= seg->next_offset)
        return 0; /* an empty tail segment (only when offset == leo) */
    uint64_t pos;
    int rc = rn_segment_find(seg, offset, &pos);
    if (rc < 0)
        return rn__log_set_err(log, rc, "segment %020" PRId64 ": offset %" PRId64, seg->base_offset,
                               offset);
    uint64_t end = pos;
    int64_t first = -1, next = offset;
    rn_batch_header h;
    while (end < seg->size && next < max_offset) {
        rc = rn_batch_peek(seg->map + end, seg->size - end, 0, &h);
        if (rc < 0 || rn_batch_size(&h) > seg->size - end)
            return rn__log_set_err(log, -RN_E_CORRUPT_SEGMENT,
                                   "segment %020" PRId64 ": batch at %" PRIu64, seg->base_offset,
                                   end);
        if (first >= 0 && end - pos + rn_batch_size(&h) > max_bytes)
            break;
        if (first < 0)
            first = h.base_offset;
        end += rn_batch_size(&h);
        next = h.base_offset + h.last_offset_delta + 1;
    }
    out->data = seg->map + pos;
    out->len = end - pos;
    populate(out->data, out->len);
    out->base_offset = first;
    out->next_offset = next;
    out->seg = seg;
    rn_segment_ref(seg);
    return 0;
}

int rn_log_walk_headers(rn_log *log, int64_t from, rn_log_header_cb cb, void *arg)
{
    if (from < log->start_offset)
        from = log->start_offset;
    if (from >= log->leo)
        return 0;
    for (unsigned i = rn__log_segment_for(log, from); i < log->n_segs; i++) {
        rn_segment *seg = log->segs[i];
        uint64_t pos = 0;
        if (from > seg->base_offset) {
            if (from >= seg->next_offset)
                continue;
            int rc = rn_segment_find(seg, from, &pos);
            if (rc < 0)
                return rn__log_set_err(log, rc, "segment %020" PRId64 ": offset %" PRId64,
                                       seg->base_offset, from);
        }
        int rc = rn_segment_walk_headers(seg, pos, cb, arg);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void rn_slice_release(rn_slice *s)
{
    if (s->seg)
        rn_segment_unref(s->seg);
    s->seg = NULL;
    s->data = NULL;
    s->len = 0;
}

int64_t rn_log_offset_for_time(rn_log *log, int64_t ts)
{
    for (unsigned i = 0; i < log->n_segs; i++) {
        int64_t off;
        if (rn_segment_find_time(log->segs[i], ts, &off) == 0)
            return off < log->start_offset ? log->start_offset : off;
    }
    return log->leo;
}

int64_t rn_log_start_offset(const rn_log *log)
{
    return log->start_offset;
}

int64_t rn_log_end_offset(const rn_log *log)
{
    return log->leo;
}

int rn_log_failure(const rn_log *log)
{
    return log->failed;
}

bool rn_log_writing(const rn_log *log)
{
    return log->writes.head != NULL;
}

unsigned rn_log_sealing(const rn_log *log)
{
    return log->n_seal_inflight;
}

int64_t rn_log_flushed_offset(const rn_log *log)
{
    return log->flushed;
}

int64_t rn_log_high_watermark(const rn_log *log)
{
    return log->cfg.flush == RN_FLUSH_ALWAYS ? log->flushed : log->leo;
}

uint64_t rn_log_size_bytes(const rn_log *log)
{
    if (log->n_segs == 0)
        return 0;
    /* Called after every append (the owner publishes it): one addition, not
     * a walk of every segment, unless the list changed (roll, retention). */
    rn_log *l = (rn_log *)log; /* the cache is not part of the log's state */
    const rn_segment *act = log->segs[log->n_segs - 1];
    if (l->older_n != log->n_segs || l->older_first != log->segs[0] || l->older_active != act) {
        l->older_bytes = 0;
        for (unsigned i = 0; i + 1 < log->n_segs; i++)
            l->older_bytes += log->segs[i]->size;
        l->older_n = log->n_segs;
        l->older_first = log->segs[0];
        l->older_active = act;
    }
    return l->older_bytes + act->size;
}

unsigned rn_log_segment_count(const rn_log *log)
{
    return log->n_segs;
}

int64_t rn_log_segment_base(const rn_log *log, unsigned i)
{
    return i < log->n_segs ? log->segs[i]->base_offset : -1;
}

const rn_log_config *rn_log_config_of(const rn_log *log)
{
    return &log->cfg;
}

int rn_log_end_offset_for_epoch(rn_log *log, int32_t epoch, int32_t *out_epoch,
                                int64_t *out_end_offset)
{
    *out_epoch = RN_EPOCH_UNDEFINED;
    *out_end_offset = RN_EPOCH_OFFSET_UNDEFINED;
    int rc = rn__log_epochs_load(log);
    if (rc < 0)
        return rc;
    rn_leader_epochs_end_offset_for(log->epochs, epoch, log->leo, out_epoch, out_end_offset);
    /* Entries past the end: a checkpoint write a truncation could not make. */
    if (*out_end_offset > log->leo)
        *out_end_offset = log->leo;
    return 0;
}

int rn_log_assign_epoch(rn_log *log, int32_t epoch)
{
    if (log->failed)
        return log->failed;
    int rc = rn__log_epochs_load(log);
    if (rc < 0)
        return rc;
    int32_t latest = rn_leader_epochs_latest(log->epochs);
    if (epoch < 0 || epoch < latest)
        return -EINVAL;
    if (epoch == latest)
        return 0; /* told again: it is there already */
    rc = rn_leader_epochs_assign(log->epochs, epoch, log->next_assign);
    if (rc < 0)
        return rn__log_set_err(log, rc, "leader epoch %" PRId32 " at offset %" PRId64, epoch,
                               log->next_assign);
    return 0;
}

const struct rn_leader_epochs *rn_log_leader_epochs(rn_log *log)
{
    return rn__log_epochs_load(log) < 0 ? NULL : log->epochs;
}

const char *rn_log_errmsg(const rn_log *log)
{
    return log->errmsg;
}

const char *rn_log_name(const rn_log *log)
{
    return log->name;
}

/* ---- Rolling ------------------------------------------------------------------ */

int rn_log_maybe_roll(rn_log *log, int64_t now_ms)
{
    if (log->failed)
        return log->failed;
    if (log->broken)
        return 0;
    rn_segment *seg = active(log);
    if (seg->end_pos == 0 || log->cfg.roll_ms <= 0 || now_ms - seg->created_ms < log->cfg.roll_ms)
        return 0;
    return rn__log_roll(log, now_ms);
}
