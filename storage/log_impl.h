/*
 * log_impl.h — the partition log's state, internal to storage/: shared by
 * log.c (append, roll, read), log_flush.c (the flush policy and a roll's
 * work), log_open.c (open and close), log_retention.c (retention) and
 * log_truncate.c (truncation).
 * Nothing outside storage/ includes it. Same thread rules as log.h: the
 * owning reactor only.
 */
#ifndef RN_LOG_IMPL_H
#define RN_LOG_IMPL_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/batch.h"
#include "storage/io.h"
#include "storage/leader_epoch.h"
#include "storage/log.h"
#include "storage/segment.h"

enum pending_state { WRITING, WRITTEN, FAILED };

/* One append between rn_log_append and its callback. */
typedef struct pending {
    rn_io_op op; /* first: the CQE's user_data */
    rn_log *log;
    rn_segment *seg;
    uint64_t pos;
    const uint8_t *buf;
    size_t len, done;
    int64_t base_offset, last_offset;
    rn_batch_header h;
    rn_log_append_cb cb;
    void *arg;
    enum pending_state state;
    int err;
    struct pending *next;
} pending;

typedef struct queue {
    pending *head, *tail;
} queue;

struct rn_log {
    rn_io *io;
    char *dir, *name;
    rn_log_config cfg;

    rn_segment **segs; /* sorted by base offset; the last is active */
    unsigned n_segs, cap_segs;
    /* rn_log_size_bytes: the bytes of every segment but the active one, as of
     * the segment list (count, first, active) it was summed for. Sealed sizes
     * never change, so the sum holds until that list does. */
    uint64_t older_bytes;
    unsigned older_n;
    const rn_segment *older_first, *older_active;

    int64_t start_offset;
    int64_t next_assign; /* offset the next append gets (counts writes in flight) */
    int64_t leo;         /* after the last visible batch */
    int64_t flushed;     /* after the last batch known to be on disk */
    rn_segment *visible_seg;

    queue writes;   /* submitted, not yet visible, in offset order */
    queue unsynced; /* visible, waiting for fdatasync (flush=always) */
    uint64_t unsynced_bytes;
    unsigned n_seal_inflight; /* roll work out: syncs and seals of rolled segments, fsyncs of the
                                directory for new ones (storage/offload.h) */
    pending *free_list;

    bool sync_inflight;
    rn_io_op sync_op;
    rn_segment *sync_seg; /* referenced while the sync runs */
    int64_t sync_target;
    bool sync_deferred; /* submit_sync waited for a rolled segment's fdatasync */

    /* Preallocation ahead of the write position (cfg.preallocate_bytes):
     * one fallocate at a time through the ring, never waited for by an
     * append; prealloc_seg is referenced while it runs. */
    /* Early writeback (log_flush.c, rn__log_start_writeback): one sync_file_range in
     * flight over [wb_pos, wb_end) of wb_seg (referenced). */
    bool wb_inflight;
    rn_io_op wb_op;
    rn_segment *wb_seg;
    uint64_t wb_pos, wb_end;
    bool prealloc_inflight, prealloc_off;
    rn_io_op prealloc_op;
    rn_segment *prealloc_seg;
    uint64_t prealloc_to;

    bool timer_armed, cancel_inflight;
    rn_io_op timer_op, cancel_op;
    struct __kernel_timespec timer_ts;

    rn_leader_epochs *epochs; /* leader-epoch-checkpoint (storage/leader_epoch.h), held;
                                 NULL: not read yet (cfg.lazy_epochs, rn__log_epochs_load) */
    bool epochs_dropped;      /* open removed the file: rebuild it from every batch */

    int failed; /* sticky: -RN_E_LOG_FAILED after a failed fdatasync */
    int broken; /* a write failed; appends refused until the tail is cut */
    rn_segment *broken_seg;
    uint64_t broken_pos;

    char errmsg[512];
};

/* ---- The pending queues and the active segment ------------------------------
 *
 * Static inline: the append path (log.c) and the group commit (log_flush.c)
 * both queue, complete and recycle appends, on every append; the open
 * (log_open.c) and the flush need the active segment too. */

static inline void q_push(queue *q, pending *p)
{
    p->next = NULL;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
}

static inline pending *q_pop(queue *q)
{
    pending *p = q->head;
    if (p) {
        q->head = p->next;
        if (!q->head)
            q->tail = NULL;
    }
    return p;
}

static inline pending *pending_get(rn_log *log)
{
    pending *p = log->free_list;
    if (p)
        log->free_list = p->next;
    else
        p = malloc(sizeof(*p));
    if (p)
        memset(p, 0, sizeof(*p));
    return p;
}

static inline void pending_put(rn_log *log, pending *p)
{
    p->next = log->free_list;
    log->free_list = p;
}

/* Hand the result to the caller and recycle the entry. The entry is off every
 * queue first: the callback may append again. */
static inline void complete(rn_log *log, pending *p, int err)
{
    rn_log_append_cb cb = p->cb;
    void *arg = p->arg;
    int64_t base = p->base_offset, last = p->last_offset;
    pending_put(log, p);
    cb(arg, err, err ? -1 : base, err ? -1 : last);
}

static inline rn_segment *active(const rn_log *log)
{
    return log->segs[log->n_segs - 1];
}

/* Read a checkpoint a lazy open left unread (log_open.c); 0 or the error, the
 * cache still unread then. */
int rn__log_epochs_load(rn_log *log);
/* Set the log's error message ("<name>: <what>: <error>") and return rc. */
int rn__log_set_err(rn_log *log, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append seg to the segment list. Errors: -ENOMEM. */
int rn__log_push_segment(rn_log *log, rn_segment *seg);

/* Roll: create a new active segment at the next offset (created at now, ms)
 * and seal the old one once nothing writes or syncs it. Errors: those of
 * rn_segment_create, -ENOMEM; rn_log_errmsg says which. */
int rn__log_roll(rn_log *log, int64_t now);

/* Index of the last segment whose base offset <= offset (0 when none). */
unsigned rn__log_segment_for(const rn_log *log, int64_t offset);

/* Base offsets of the .log files in the log's directory, sorted
 * (storage/log_dir.h); leftover .tmp files are removed. *out is malloc'd. */
int rn__log_list_segments(rn_log *log, int64_t **out, unsigned *n_out);

/* At open, before listing: finish a truncate-fully a crash interrupted
 * (log_truncate.c). */
int rn__log_finish_truncate_fully(rn_log *log);

/* Whether the config is valid (log.c): 0 or -EINVAL. Shared: rn_log_open
 * and rn_log_set_config check with it. */
int rn__log_check_config(const rn_log_config *c);

/* ---- The flush policy and a roll's work (log_flush.c) -----------------------
 *
 * Shared because the append path and the roll (log.c) and close start them;
 * the rest of the flush policy stays static in log_flush.c. */

/* What the flush policy asks for now: seal rolled segments, start the group
 * commit, arm the interval timer; fail waiting appends if the log failed.
 * Called when an append becomes visible (log.c) and when a sync, a seal or a
 * writeback comes back. */
void rn__log_maybe_sync(rn_log *log);
/* Seal rolled segments that nothing writes or syncs any more (rn__log_roll,
 * rn__log_maybe_sync). */
void rn__log_seal_rolled(rn_log *log);
/* Under flush=interval, start writeback of the active segment every
 * WRITEBACK_BYTES of visible data (after an append becomes visible). */
void rn__log_start_writeback(rn_log *log);
/* Allocate blocks ahead of an append of len bytes to seg, off the reactor
 * (rn_log_append, with cfg.preallocate_bytes). */
void rn__log_prealloc_ahead(rn_log *log, rn_segment *seg, size_t len);
/* The offload job and its completion that make a rolled-in segment's name
 * durable (the directory's fsync); rn__log_roll starts them. */
int rn__log_dir_sync_job(void *arg);
void rn__log_dir_sync_done(rn_io_op *op, int res, uint32_t flags);
/* Run io until no append, sync or timer of this log is in flight, cancelling
 * the interval timer (rn_log_close, rn_log_abandon). */
int rn__log_drain(rn_log *log);

#endif
