/*
 * log.c — the partition log: append, roll, read, open/close. The flush
 * policy (group commit, interval timer, early writeback, preallocation) and
 * the work a roll leaves behind (syncs, seals, directory fsyncs) are
 * log_flush.c; retention (deleting old segments, moving the log start
 * offset) is log_retention.c, truncation log_truncate.c; all share the state
 * in storage/log_impl.h.
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
#include <endian.h>
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
#include "storage/checkpoint.h"
#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/log_dir.h"
#include "storage/log_impl.h"
#include "storage/offload.h"
#include "storage/segment.h"
#include "storage/sys.h"

#define CLEAN_MARKER "clean-shutdown"
#define CLEAN_MAGIC        "RNCLEAN1"
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
    if (rn_batch_size(&h) != len)
        return -RN_E_BATCH_BAD_LENGTH; /* exactly one batch per append */
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
         * segment holding it is sealed (see "Leader epochs" below). */
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

/* ---- Opening and closing ----------------------------------------------------- */

/* The clean-shutdown marker's payload, little-endian on disk:
 * i64 log end offset | i64 log start offset | u32 segment count | u32 zero. */
typedef struct clean_marker {
    int64_t leo;
    int64_t start_offset;
    uint32_t n_segments;
    uint32_t pad;
} clean_marker;

static void marker_to_disk(clean_marker *m)
{
    m->leo = (int64_t)htole64((uint64_t)m->leo);
    m->start_offset = (int64_t)htole64((uint64_t)m->start_offset);
    m->n_segments = htole32(m->n_segments);
    m->pad = 0;
}

static void marker_from_disk(clean_marker *m)
{
    m->leo = (int64_t)le64toh((uint64_t)m->leo);
    m->start_offset = (int64_t)le64toh((uint64_t)m->start_offset);
    m->n_segments = le32toh(m->n_segments);
}

/* rn_log_dir_list's other names: a .tmp left by a write a crash cut short
 * (a checkpoint's, a copy-on-truncate's) goes. */
static void remove_tmp(void *arg, const char *name)
{
    const rn_log *log = arg;
    size_t l = strlen(name);
    if (l > 4 && strcmp(name + l - 4, ".tmp") == 0) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", log->dir, name);
        rn_sys_unlink(p);
    }
}

int rn__log_list_segments(rn_log *log, int64_t **out, unsigned *n_out)
{
    int rc = rn_log_dir_list(log->dir, out, n_out, remove_tmp, log);
    return rc < 0 ? rn__log_set_err(log, rc, "listing segments") : 0;
}

static void free_log(rn_log *log)
{
    if (log->wb_seg)
        rn_segment_unref(log->wb_seg);
    for (unsigned i = 0; i < log->n_segs; i++)
        rn_segment_unref(log->segs[i]);
    pending *p;
    while ((p = log->free_list)) {
        log->free_list = p->next;
        free(p);
    }
    rn_leader_epochs_free(log->epochs);
    free(log->segs);
    free(log->dir);
    free(log->name);
    free(log);
}

/* Delete segment files from index i on (they follow a cut or a gap). */
/* Delete the files of segments bases[from, n), which follow a cut or a gap
 * and have not been opened. Left on disk they would come back at the next
 * open and, once appends after the cut reach their base offset, be served as
 * if they continued the new data. Each .log goes last, so a failure leaves a
 * segment the next open drops again; the directory is synced before anything
 * is appended where they were. */
static int drop_after(rn_log *log, const int64_t *bases, unsigned from, unsigned n,
                      rn_log_open_info *info)
{
    static const char *const exts[] = {".tix", ".idx", ".log"};
    for (unsigned j = from; j < n; j++) {
        for (size_t e = 0; e < 3; e++) {
            char p[4096];
            int rc = rn_segment_path(p, sizeof(p), log->dir, bases[j], exts[e]);
            if (rc == 0)
                rc = rn_sys_unlink(p);
            if (rc < 0 && rc != -ENOENT)
                return rn__log_set_err(log, rc, "segment %020" PRId64 ": deleting after a cut",
                                       bases[j]);
        }
        info->n_segments_dropped++;
    }
    int rc = rn_sys_fsync_dir_lazy(log->dir);
    return rc < 0 ? rn__log_set_err(log, rc, "fsync of the directory after a cut") : 0;
}

static int open_segments(rn_log *log, const int64_t *bases, unsigned n, bool clean,
                         rn_log_open_info *info)
{
    uint32_t max_batch = log->cfg.max_batch_bytes;
    for (unsigned i = 0; i < n; i++) {
        bool last = i + 1 == n;
        rn_segment *seg;
        int rc = rn_segment_open(&seg, log->dir, bases[i], &log->cfg, last);
        if (rc < 0)
            return rn__log_set_err(log, rc, "segment %020" PRId64 ": open", bases[i]);
        seg->rolled = !last;
        rc = rn__log_push_segment(log, seg);
        if (rc < 0) {
            rn_segment_unref(seg);
            return rn__log_set_err(log, rc, "open");
        }
        bool rebuilt = false, verify = !clean && last;
        int64_t file_end;
        if (!verify) {
            rc = rn_segment_find_end(seg, max_batch, &rebuilt);
            /* A sealed segment's file is exactly its data: rn__log_seal_rolled cuts it
             * to size once its fdatasync is done. One that is longer was never
             * sealed, so that sync may not have completed before the crash (a
             * roll syncs through the ring, and several can be pending): it is
             * verified like the tail, not trusted. Nor is one whose batches
             * filled it exactly: its sparse file (segment.bytes long) is then
             * as long as its data, as if sealed, while its fdatasync may
             * never have run. A sealed segment that large is rare (a roll
             * comes when the next batch does not fit) and only costs a
             * verification after a crash. */
            struct stat st;
            verify = rc == 0 && !clean && !last && rn_sys_fstat(seg->fd, &st) == 0 &&
                     ((uint64_t)st.st_size > seg->size || seg->size >= log->cfg.segment_bytes);
        }
        if (verify) {
            uint64_t dropped = 0;
            bool r2 = false;
            rc = rn_segment_recover_tail(seg, max_batch, &info->bytes_scanned, &dropped, &r2);
            rebuilt |= r2;
            info->n_scanned++;
            info->bytes_dropped += dropped;
            if (dropped > 0 && info->truncated_at < 0)
                info->truncated_at = seg->next_offset;
        }
        file_end = seg->next_offset;
        if (rc < 0)
            return rn__log_set_err(log, rc, "segment %020" PRId64 ": recovery", bases[i]);
        info->n_index_rebuilt += rebuilt;
        if (verify && !last && !log->epochs_dropped) {
            /* A rolled segment that was never sealed: its epochs may be
             * missing from the checkpoint, and once sealed below it would be
             * trusted. Without the file the epochs are rebuilt from every
             * batch header (open_epochs), also after a crash from here on. */
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", log->dir, RN_LEADER_EPOCH_FILE);
            rc = rn_sys_unlink(p);
            if (rc == 0)
                rc = rn_sys_fsync_dir_lazy(log->dir);
            if (rc < 0 && rc != -ENOENT)
                return rn__log_set_err(log, rc, "removing %s", RN_LEADER_EPOCH_FILE);
            log->epochs_dropped = true;
        }
        if (!last) {
            rc = rn_segment_seal(seg);
            if (rc < 0)
                return rn__log_set_err(log, rc, "segment %020" PRId64 ": seal", bases[i]);
            if (file_end != bases[i + 1]) {
                /* A cut or a gap: what follows cannot be served in order. */
                if (info->truncated_at < 0)
                    info->truncated_at = file_end;
                rc = drop_after(log, bases, i + 1, n, info);
                if (rc < 0)
                    return rc;
                /* The segment we stopped at must take appends again. */
                rn_segment_unref(log->segs[--log->n_segs]);
                rc = rn_segment_open(&seg, log->dir, bases[i], &log->cfg, true);
                if (rc == 0)
                    rc = rn_segment_find_end(seg, max_batch, &rebuilt);
                if (rc == 0)
                    rc = rn__log_push_segment(log, seg);
                if (rc < 0)
                    return rn__log_set_err(log, rc, "segment %020" PRId64 ": reopen", bases[i]);
                break;
            }
        }
    }
    return 0;
}

/* ---- Leader epochs ------------------------------------------------------------
 *
 * Kafka writes its leader-epoch checkpoint (synced) at every new epoch,
 * before the batch. runnel keeps the cache in memory (held) and writes the
 * file when it matters, so an append never waits for it and flush=never
 * stays free of syncs:
 *
 *  1. Before a segment is sealed (rn__log_seal_rolled), and at close before the
 *     clean marker: a segment recovery trusts (sealed, or every segment
 *     after a clean close) has its epochs in the file.
 *  2. After a crash, the segments recovery verifies are the last one and
 *     rolled ones never sealed. The last one's epochs are re-derived from
 *     its batch headers at open (entries from its base on dropped, then one
 *     assign per batch). If a rolled unsealed segment is verified, open
 *     removes the file before sealing it and rebuilds the file from every
 *     batch header: a crash in between finds no file and rebuilds again.
 *  3. A truncation writes the file after the cut; a crash in between leaves
 *     entries past the log end, which open drops. Retention trims memory;
 *     a file behind it has entries below the log start, which open clamps.
 */

static int assign_cb(void *arg, const rn_batch_header *h)
{
    int rc = rn_leader_epochs_assign(arg, h->partition_leader_epoch, h->base_offset);
    return rc < 0 ? rc : 0;
}

/* Load the leader-epoch checkpoint and make it agree with the recovered log
 * (rules above). A missing file for a log that holds batches, or a corrupt
 * one, is rebuilt from the batch headers (a header-only pass: pread,
 * nothing mapped) and the open info says so. */
static int open_epochs(rn_log *log, rn_log_open_info *info)
{
    int rc = rn_leader_epochs_open(&log->epochs, log->dir);
    if (rc < 0 && rc != -RN_E_CORRUPT_FILE)
        return rn__log_set_err(log, rc, "leader-epoch checkpoint");
    rn_leader_epochs_hold(log->epochs, true);
    bool rebuild = rc == -RN_E_CORRUPT_FILE || log->epochs_dropped ||
                   (rc == 1 && log->leo > log->start_offset);
    int64_t from = log->start_offset;
    if (rebuild) {
        rn_leader_epochs_clear(log->epochs);
        info->epochs_rebuilt = true;
    } else if (!info->clean) {
        from = active(log)->base_offset; /* rule 2: what recovery verified */
        rn_leader_epochs_truncate_from_end(log->epochs, from);
    } else {
        from = log->leo; /* nothing to walk */
    }
    if (from < log->leo) {
        rc = rn_log_walk_headers(log, from, assign_cb, log->epochs);
        if (rc < 0)
            return rn__log_set_err(log, rc, "rebuilding the leader epochs");
    }
    rn_leader_epochs_truncate_from_end(log->epochs, log->leo);
    rn_leader_epochs_truncate_from_start(log->epochs, log->start_offset);
    /* A rebuild writes even an empty cache: the file then says "no epochs"
     * and the next open does not walk again. */
    rc = rebuild ? rn_leader_epochs_write(log->epochs) : rn_leader_epochs_flush(log->epochs);
    return rc < 0 ? rn__log_set_err(log, rc, "writing the leader-epoch checkpoint") : 0;
}

/* The cache, read now if a lazy open left it unread: as open_epochs does
 * after a clean shutdown (the log has only grown by appends without an
 * epoch since, or been cut, and the clamps to its ends cover both). */
int rn__log_epochs_load(rn_log *log)
{
    if (log->epochs)
        return 0;
    rn_log_open_info info = {.clean = true, .truncated_at = -1};
    int rc = open_epochs(log, &info);
    if (rc < 0) {
        rn_leader_epochs_free(log->epochs);
        log->epochs = NULL;
    }
    return rc;
}

int rn_log_open(rn_log **out, rn_io *io, const char *dir, const char *name,
                const rn_log_config *cfg, rn_log_open_info *info_out)
{
    rn_log_open_info info = {.truncated_at = -1};
    if (rn__log_check_config(cfg) < 0)
        return -EINVAL;
    rn_log *log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->io = io;
    log->cfg = *cfg;
    log->dir = strdup(dir);
    log->name = strdup(name ? name : dir);
    int64_t *bases = NULL;
    unsigned n = 0;
    int rc;
    if (!log->dir || !log->name) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = rn_sys_mkdir(dir, 0755);
    if (rc < 0) {
        rn__log_set_err(log, rc, "mkdir %s", dir);
        goto fail;
    }
    rc = rn__log_finish_truncate_fully(log);
    if (rc < 0)
        goto fail;
    rc = rn__log_list_segments(log, &bases, &n);
    if (rc < 0)
        goto fail;

    clean_marker m;
    info.clean = n > 0 && rn_checkpoint_read(dir, CLEAN_MARKER, CLEAN_MAGIC, &m, sizeof(m)) == 0;
    if (info.clean) {
        marker_from_disk(&m);
        info.clean = m.n_segments == n;
    }
    rc = open_segments(log, bases, n, info.clean, &info);
    if (rc < 0)
        goto fail;
    if (info.clean && (log->n_segs == 0 || active(log)->next_offset != m.leo)) {
        /* The marker disagrees with the files: trust neither, verify the tail. */
        info.clean = false;
        if (log->n_segs > 0) {
            uint64_t dropped = 0;
            bool rebuilt;
            rc = rn_segment_recover_tail(active(log), cfg->max_batch_bytes, &info.bytes_scanned,
                                         &dropped, &rebuilt);
            info.n_scanned++;
            info.bytes_dropped += dropped;
            info.n_index_rebuilt += rebuilt;
            if (dropped > 0)
                info.truncated_at = active(log)->next_offset;
            if (rc < 0) {
                rn__log_set_err(log, rc, "recovery");
                goto fail;
            }
        }
    }
    if (log->n_segs == 0) {
        rn_segment *seg;
        rc = rn_segment_create(&seg, dir, 0, cfg, rn_log_clock_ms());
        if (rc == 0)
            rc = rn__log_push_segment(log, seg);
        if (rc < 0) {
            rn__log_set_err(log, rc, "creating the first segment");
            goto fail;
        }
    }
    /* What recovery kept is on disk before anyone is told it exists. */
    rn_segment *act = active(log);
    rc = rn_sys_fdatasync_lazy(act->fd);
    if (rc == 0)
        rc = rn_checkpoint_remove(dir, CLEAN_MARKER);
    if (rc < 0) {
        rn__log_set_err(log, rc, "sync after open");
        goto fail;
    }
    log->start_offset = log->segs[0]->base_offset;
    log->leo = log->next_assign = log->flushed = act->next_offset;
    log->visible_seg = act;
    /* After a clean shutdown the checkpoint agrees with the log as it is:
     * with lazy_epochs it waits for its first use (epochs_load). */
    bool lazy = cfg->lazy_epochs && (info.clean || n == 0) && !log->epochs_dropped;
    rc = lazy ? 0 : open_epochs(log, &info);
    if (rc < 0)
        goto fail;
    if (n == 0)
        info.clean = true; /* a new log: nothing to recover */
    info.n_segments = log->n_segs;
    free(bases);
    if (info_out)
        *info_out = info;
    *out = log;
    return 0;

fail:
    free(bases);
    if (info_out)
        *info_out = info;
    free_log(log);
    return rc;
}

int rn_log_close(rn_log *log)
{
    int rc = rn__log_drain(log);
    if (rc == 0 && log->failed)
        rc = log->failed;
    if (rc == 0)
        rc = rn_log_flush_sync(log);
    if (rc == 0)
        rc = log->epochs ? rn_leader_epochs_flush(log->epochs)
                         : 0; /* before any seal or the marker */
    for (unsigned i = 0; i < log->n_segs; i++) {
        int r = rn_segment_seal(log->segs[i]);
        if (rc == 0)
            rc = r;
    }
    if (rc == 0) {
        clean_marker m = {
            .leo = log->leo, .start_offset = log->start_offset, .n_segments = log->n_segs};
        marker_to_disk(&m);
        rc = rn_checkpoint_write(log->dir, CLEAN_MARKER, CLEAN_MAGIC, &m, sizeof(m));
    }
    free_log(log);
    return rc;
}

void rn_log_abandon(rn_log *log)
{
    rn__log_drain(log);
    free_log(log);
}

int rn_log_open_info_str(const rn_log_open_info *i, char *buf, size_t len)
{
    return snprintf(buf, len,
                    "clean=%s segments=%u scanned_segments=%u scanned_bytes=%" PRIu64
                    " dropped_bytes=%" PRIu64 " truncated_at=%" PRId64
                    " dropped_segments=%u rebuilt_indexes=%u%s",
                    i->clean ? "true" : "false", i->n_segments, i->n_scanned, i->bytes_scanned,
                    i->bytes_dropped, i->truncated_at, i->n_segments_dropped, i->n_index_rebuilt,
                    i->epochs_rebuilt ? " rebuilt_leader_epochs=true" : "");
}
