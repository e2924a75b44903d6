/*
 * log.h — the partition log: the storage engine's public API (DESIGN §4).
 *
 * A log is a directory of segments named by their 20-digit base offset
 * (00000000000000000000.log/.idx/.tix). Producers append record batches; the
 * log stamps base_offset and leader epoch into them and writes them with
 * io_uring at the known end position. Readers get borrowed slices of the
 * segment mmap, holding a reference on the segment so retention never unmaps
 * under them.
 *
 * Threading: a log is owned by one reactor thread, the owner of its rn_io;
 * every function here must be called from that thread. Append callbacks run
 * only inside rn_io_run() on that thread, never inside rn_log_append().
 *
 * Errors: 0 or a negative code: -errno from the system, -RN_E_* from
 * protocol/errors.def. rn_log_errmsg() holds the last error with context
 * ("orders-3: segment 00000000000000042000: …").
 */
#ifndef RN_LOG_H
#define RN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "storage/io.h"

typedef struct rn_log rn_log;
typedef struct rn_segment rn_segment;

enum rn_flush_policy {
    RN_FLUSH_ALWAYS,   /* an acknowledgement means the batch is on disk (group commit) */
    RN_FLUSH_INTERVAL, /* fdatasync at most every flush_interval_ms */
    RN_FLUSH_NEVER,    /* leave it to the OS */
};

typedef struct rn_log_config {
    uint64_t segment_bytes;        /* log.segment.bytes, default 1 GiB */
    int64_t roll_ms;               /* log.roll.ms, default 7 days; <= 0 off */
    int64_t retention_ms;          /* log.retention.ms, default 7 days; < 0 forever */
    int64_t retention_bytes;       /* log.retention.bytes, default -1 (unlimited); when set,
                                      the active segment rolls at half of it (>= 1 MiB) */
    uint32_t index_interval_bytes; /* index.interval.bytes, default 4096 */
    uint32_t max_batch_bytes;      /* message.max.bytes, default 1 MiB */
    enum rn_flush_policy flush;    /* log.flush, default always */
    uint32_t flush_interval_ms;    /* for RN_FLUSH_INTERVAL */
    uint64_t preallocate_bytes;    /* fallocate ahead of the write position, at most this far
                                      and no further than the segment holds (storage/log_flush.c
                                      rn__log_prealloc_ahead); 0 off. Default 64 MiB */
    int32_t min_insync_replicas;   /* min.insync.replicas, default 1: not storage's own; kept
                                      here because topic-level overrides travel in this
                                      struct (the broker's replication reads it) */
    bool lazy_epochs;              /* open only: after a clean shutdown, read the leader-epoch
                                      checkpoint at its first use, not at open (default
                                      false; the broker sets it: 100k idle partitions
                                      then open without 100k file reads) */
} rn_log_config;

/* Fill c with the defaults above. */
void rn_log_config_default(rn_log_config *c);

/* Parse a log.flush value: "always", "never" or "interval:MS" (MS 1..3600000).
 * Errors: -RN_E_INVALID_CONFIG. */
int rn_log_config_parse_flush(const char *s, rn_log_config *c);

/* Format the flush policy of c as rn_log_config_parse_flush reads it. */
const char *rn_log_config_flush_str(const rn_log_config *c, char *buf, size_t len);

/* What opening found, for the one log line recovery prints. */
typedef struct rn_log_open_info {
    bool clean; /* a valid clean-shutdown marker skipped the scan */
    unsigned n_segments;
    unsigned n_scanned; /* segments whose tail was verified */
    unsigned n_index_rebuilt;
    uint64_t bytes_scanned;
    uint64_t bytes_dropped;      /* non-zero bytes after the last good batch */
    int64_t truncated_at;        /* offset where the log was cut, or -1 */
    unsigned n_segments_dropped; /* whole segments after a bad byte */
    bool epochs_rebuilt;         /* leader-epoch-checkpoint was missing or corrupt: rebuilt */
} rn_log_open_info;

/* The open info as one logfmt fragment ("clean=false segments=3 … dropped_bytes=120"),
 * for the one line recovery logs. Returns what snprintf returns. */
int rn_log_open_info_str(const rn_log_open_info *info, char *buf, size_t len);

/* Open (creating the directory if missing) the log in dir. name is used in
 * messages ("orders-3"). io is borrowed for the life of the log. Runs recovery
 * synchronously when the last shutdown was not clean, then removes the clean
 * marker so a crash from here on is detected. Loads the leader-epoch
 * checkpoint (storage/leader_epoch.h) and makes it agree with the recovered
 * log, rebuilding it from the batch headers when missing or corrupt
 * (info->epochs_rebuilt). info may be NULL.
 * Errors: -errno (directory, files), -RN_E_CORRUPT_* when a file cannot be
 * repaired, -ENOMEM. On error nothing is left open. */
int rn_log_open(rn_log **out, rn_io *io, const char *dir, const char *name,
                const rn_log_config *cfg, rn_log_open_info *info);

/* Wait for in-flight appends (running io), flush, seal the active segment to
 * its real size and write the clean-shutdown marker; free the log. Slices still
 * held stay valid until released. Returns the first error met; the log is
 * freed regardless. */
int rn_log_close(rn_log *log);

/* Drop the log without flushing or writing the clean marker, as a crash would
 * (in-flight appends are drained first so io has nothing pointing at it). For
 * tests and for shutting down a failed log. */
void rn_log_abandon(rn_log *log);

/* Completion of one append. err is 0 or negative; on success base_offset and
 * last_offset are the offsets the batch got. With flush=always it fires once
 * the batch is on disk; otherwise once it is written to the page cache. */
typedef void (*rn_log_append_cb)(void *arg, int err, int64_t base_offset, int64_t last_offset);

/* Append one record batch. Checks it (rn_batch_check: header and CRC), stamps
 * base_offset and leader_epoch into batch in place, and submits the write.
 * A leader_epoch >= 0 that differs from the latest one in the leader-epoch
 * cache adds an entry (epoch, base_offset) there; the checkpoint file gets
 * it before the segment holding the batch is sealed, or at close.
 * batch is borrowed until cb runs. Returns 0 when submitted (cb will run
 * exactly once, from rn_io_run) or a negative error, in which case cb never
 * runs: a -RN_E_BATCH_* / -RN_E_MESSAGE_TOO_LARGE code for a bad batch,
 * -RN_E_LOG_FAILED after an fdatasync failure, -ENOMEM. */
int rn_log_append(rn_log *log, void *batch, size_t len, int32_t leader_epoch, rn_log_append_cb cb,
                  void *arg);

/* rn_log_append for a batch its caller has already checked: h is what
 * rn_batch_check or rn_batch_validate returned for these len bytes, which the
 * caller has not changed since. The log trusts the CRC and the fields, so a
 * produced batch is summed once, not twice; it still refuses a len other
 * than the batch's size (-RN_E_BATCH_BAD_LENGTH) or above max.message.bytes
 * (-RN_E_MESSAGE_TOO_LARGE). Otherwise the same contract and errors. */
int rn_log_append_checked(rn_log *log, void *batch, size_t len, const rn_batch_header *h,
                          int32_t leader_epoch, rn_log_append_cb cb, void *arg);

/* rn_log_append and run io until it completes. For tools and tests. */
int rn_log_append_sync(rn_log *log, void *batch, size_t len, int32_t leader_epoch,
                       int64_t *base_offset);

/* A borrowed run of whole batches from one segment's mapping. */
typedef struct rn_slice {
    const uint8_t *data;
    size_t len;
    int64_t base_offset; /* of the first batch in data */
    int64_t next_offset; /* offset after the last batch in data */
    rn_segment *seg;     /* reference held; NULL when len == 0 */
} rn_slice;

/* Called by rn_log_walk_headers with each batch header; a negative return
 * stops the walk and is returned. */
typedef int (*rn_log_header_cb)(void *arg, const rn_batch_header *h);

/* Call cb with the header of every batch from the one holding `from` to the
 * log end offset, in order, reading the segment files with pread: no page of
 * data is mapped, so a header-only pass (producer state after a restart) costs
 * neither the page faults nor the RSS of touching the mapping. Errors:
 * -RN_E_CORRUPT_SEGMENT, -RN_E_CORRUPT_INDEX, -errno, or cb's. Owner's thread. */
int rn_log_walk_headers(rn_log *log, int64_t from, rn_log_header_cb cb, void *arg);

/* Read whole batches starting with the one that contains offset, up to
 * max_bytes (at least one batch even when it is larger, as Kafka does), from
 * one segment, and not past max_offset (exclusive: pass the high watermark
 * for consumers, the log end offset for followers). An offset at max_offset
 * gives an empty slice. The slice holds a segment reference: release it.
 * Errors: -RN_E_OFFSET_OUT_OF_RANGE (below the log start offset or above
 * max_offset), -RN_E_CORRUPT_INDEX / -RN_E_CORRUPT_SEGMENT (the bytes at the
 * indexed position are not a batch). */
int rn_log_read(rn_log *log, int64_t offset, size_t max_bytes, int64_t max_offset, rn_slice *out);

/* Release the slice's segment reference; the data pointer dies with it. */
void rn_slice_release(rn_slice *s);

/* The base offset of the first batch whose max_timestamp >= ts (batch
 * granularity: a reader skips records in it older than ts), or the log end
 * offset when no batch is that recent. */
int64_t rn_log_offset_for_time(rn_log *log, int64_t ts);

int64_t rn_log_start_offset(const rn_log *log);   /* first offset still kept */
int64_t rn_log_end_offset(const rn_log *log);     /* leo: after the last written batch */
int64_t rn_log_flushed_offset(const rn_log *log); /* after the last fdatasync'd batch */
/* -RN_E_LOG_FAILED once an fdatasync failed (for good: what the file holds
 * is unknown, DESIGN §4), else 0. */
int rn_log_failure(const rn_log *log);
/* Appends are being written: the log end offset will still move without
 * another append (their batches are not in it yet). Someone who reads the
 * log end to decide where the log stands (a follower's truncation or fetch
 * offset) waits until this is false. */
bool rn_log_writing(const rn_log *log);

/* Roll work not yet completed: rolled segments whose seal (an fdatasync
 * through the ring, then the seal itself on the offload worker) is out, and
 * new segments whose name the directory's fsync has not yet made durable. */
unsigned rn_log_sealing(const rn_log *log);
/* What consumers may read: flushed offset with flush=always (so a crash can
 * never take back what a consumer saw), else the log end offset. */
int64_t rn_log_high_watermark(const rn_log *log);
uint64_t rn_log_size_bytes(const rn_log *log);
unsigned rn_log_segment_count(const rn_log *log);
/* Base offset of segment i (0 = oldest), i < rn_log_segment_count. */
int64_t rn_log_segment_base(const rn_log *log, unsigned i);
const rn_log_config *rn_log_config_of(const rn_log *log);

/* Change flush policy, roll and retention settings of an open log (AlterConfigs).
 * segment_bytes applies from the next roll. Errors: -EINVAL. */
int rn_log_set_config(rn_log *log, const rn_log_config *cfg);

/* Wait for in-flight appends, then fdatasync everything written (running io).
 * For flush=never/interval callers that need durability now, and for close. */
int rn_log_flush_sync(rn_log *log);

/* Delete whole segments older than retention_ms (by their largest timestamp,
 * or the time of their last append when no batch has one) or beyond
 * retention_bytes, oldest first; the log start offset moves to the first
 * remaining segment. As in Kafka, the active segment goes too when retention
 * wants all of it gone and it is quiet (no write in flight, all of it below
 * the high watermark): it is rolled first, so an empty active segment
 * remains. (retention_bytes also makes the active segment roll at half of it
 * on append, so size retention can trim a log whose segments are larger.)
 * Readers holding a deleted segment keep its mapping until they release it.
 * The first leader-epoch entry is clamped to the new log start.
 * Returns the number of segments deleted, or a negative error when the roll
 * or a delete failed before anything was deleted (rn_log_errmsg says which;
 * the next call tries again). */
int rn_log_enforce_retention(rn_log *log, int64_t now_ms);

/* Roll the active segment now unless it is empty (so what it holds can be
 * deleted once a snapshot covers it). 0, or the error of the roll. */
int rn_log_roll(rn_log *log);

/* Delete whole segments, oldest first, every batch of which is below offset
 * (a snapshot covers them: the metadata log); never the active segment, nor
 * one still being written. The log start offset moves to the first segment
 * that remains; the directory is fsynced. Returns the number deleted, or a
 * negative error when the first delete failed (rn_log_errmsg says which).
 * Owner's thread. */
int rn_log_delete_below(rn_log *log, int64_t offset);

/* Truncate the log to offset, as a follower does after OffsetsForLeaderEpoch
 * (KIP-101/279): every batch at or above offset goes. An offset inside a
 * batch takes that whole batch (as Kafka's LogSegment.truncateTo): the log
 * then ends at the batch's base offset, below offset, and *new_end (may be
 * NULL) says where. Segments after it are deleted, the one holding it is cut
 * and reopened for appends, the log end offset, the flushed offset and so the
 * high watermark move back to the new end, and leader epochs starting at or
 * past it are dropped (rn_log_leader_epochs). offset >= the log end: nothing
 * is cut (epochs past the end still go); offset below the log start: as
 * rn_log_truncate_fully(offset).
 *
 * Synchronous and durable: it first waits for the appends in flight (running
 * io, so their callbacks run inside this call), and the cut is on disk
 * before it returns; a crash at any point recovers to the old log or the
 * truncated one, never a mix (the order of the steps is at the top of the
 * truncation code in log_truncate.c). Readers holding slices keep their bytes: a
 * segment a reader holds is replaced by a copy of its kept bytes rather than
 * cut under the reader's mapping.
 *
 * Errors: -EINVAL (offset < 0); the log's failure (-RN_E_LOG_FAILED, or a
 * failed write's error) when it cannot take appends; -RN_E_CORRUPT_INDEX when
 * the batch holding offset cannot be found; -errno of a step. An error before
 * the cut leaves the log as it was; one after it fails the log
 * (-RN_E_LOG_FAILED from then on) and the next rn_log_open finishes the
 * truncation. An error writing only the leader-epoch checkpoint leaves a
 * truncated log with stale epochs past its end, which appends and the next
 * open drop. Owner's thread. */
int rn_log_truncate_to(rn_log *log, int64_t offset, int64_t *new_end);

/* Delete every segment and start an empty log at offset (log start = log end
 * = offset): Kafka's truncateFullyAndStartAt, for a follower whose log end is
 * below the leader's log start, or whose whole log diverged. Journalled by a
 * small durable marker, so a crash at any point recovers to the old log or
 * the empty one (an open that finds the marker completes it); durable when
 * it returns 0. Waits for appends in flight as rn_log_truncate_to does.
 * Leader epochs are cleared. Readers keep the mappings they hold.
 * Errors: -EINVAL (offset < 0), the log's failure, -errno of the marker's
 * write (the log is unchanged; unless taking a half-written marker back
 * failed too, which fails the log), or of a later step (the log fails, the
 * next open completes it). Owner's thread. */
int rn_log_truncate_fully(rn_log *log, int64_t offset);

/* OffsetsForLeaderEpoch for this log: the end offset of epoch as
 * rn_leader_epochs_end_offset_for answers it (storage/leader_epoch.h), never
 * past the log end offset. Returns 0, or the error of loading a lazy
 * checkpoint (rn_log_leader_epochs; the answer is then UNDEFINED). */
int rn_log_end_offset_for_epoch(rn_log *log, int32_t epoch, int32_t *out_epoch,
                                int64_t *out_end_offset);

/* This log's broker became the partition's leader in epoch: record that
 * the epoch starts at the log end (where its first batch will land), as
 * Kafka's new leader does, so OffsetsForLeaderEpoch answers a follower that
 * knows this epoch before anything was written in it. Entries of epochs
 * >= epoch or starting at or past the log end go (rn_leader_epochs_assign);
 * the latest epoch again changes nothing; an older one is refused. In memory now, on disk with
 * the log's next epoch write (as an append's new epoch is).
 * Errors: -EINVAL (epoch < 0 or below the latest), the log's failure,
 * -ENOMEM. Owner's thread. */
int rn_log_assign_epoch(rn_log *log, int32_t epoch);

/* The log's leader-epoch cache (read-only; valid while the log is open).
 * Appends with a new epoch add an entry; truncation and retention trim it.
 * With cfg.lazy_epochs the checkpoint is read here the first time anything
 * needs it (as open would: a missing or corrupt file is rebuilt from the
 * batch headers); NULL when that fails (rn_log_errmsg says why; the next
 * call tries again). Owner's thread. */
const struct rn_leader_epochs *rn_log_leader_epochs(rn_log *log);

/* Roll now if the active segment is older than roll_ms (appends also check). */
int rn_log_maybe_roll(rn_log *log, int64_t now_ms);

/* The last error with context; "" when none. Valid until the next call. */
const char *rn_log_errmsg(const rn_log *log);

/* The log's name, as given to rn_log_open. */
const char *rn_log_name(const rn_log *log);

/* Wall clock in ms, swappable by tests so roll.ms and retention.ms are testable. */
extern int64_t (*rn_log_clock_ms)(void);

#endif
