/*
 * log_open.c — opening and closing a partition log: rn_log_open lists the
 * segment files, reads the clean-shutdown marker, opens the segments
 * (verifying the ones a crash may have left unsynced, dropping what follows
 * a cut or a gap) and loads the leader-epoch checkpoint; rn_log_close and
 * rn_log_abandon drain the log (log_flush.c), and close seals every segment
 * and writes the marker, so the next open trusts the files without a scan.
 * Shares the log's state with log.c through storage/log_impl.h; runs on the
 * owning reactor's thread, like the rest.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/checkpoint.h"
#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/log_dir.h"
#include "storage/log_impl.h"
#include "storage/segment.h"
#include "storage/sys.h"

#define CLEAN_MARKER "clean-shutdown"
#define CLEAN_MAGIC        "RNCLEAN1"

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
