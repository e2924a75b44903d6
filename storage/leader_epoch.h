/*
 * leader_epoch.h — a partition's leader-epoch cache and its checkpoint file
 * (Kafka's LeaderEpochFileCache, DESIGN §8).
 *
 * The cache maps each leader epoch that wrote to the log to the first offset
 * it wrote: (epoch, start_offset) entries, epochs strictly increasing, start
 * offsets non-decreasing. A follower asks the leader OffsetsForLeaderEpoch
 * with its latest epoch and truncates to the answer (KIP-101/279); the
 * leader answers from rn_leader_epoch_end_offset_for.
 *
 * The file, <dir>/leader-epoch-checkpoint, is Kafka's text format followed by
 * runnel's checksum line (DESIGN §3: every file that is not a segment):
 *
 *   0                      version
 *   2                      number of entries
 *   0 0                    epoch start_offset
 *   3 1200
 *   xxh3 9d1e5c0a7b3f4e21  XXH3-64 of every byte before this line, 16 hex digits
 *
 * It is replaced as a whole: tmp → fdatasync → rename → fsync(dir), so a
 * crash leaves the old file or the new one. Every mutator that changes the
 * cache writes the file before it returns (unless held, see below) and, when
 * the write fails, leaves the cache as it was: memory and file agree.
 *
 * Owned by one partition log (storage/log.c), on that log's thread; not
 * thread-safe. Errors: 0 or a negative code: -errno from the syscall table
 * (storage/sys.h), -RN_E_CORRUPT_FILE, -ENOMEM, -EINVAL.
 */
#ifndef RN_LEADER_EPOCH_H
#define RN_LEADER_EPOCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RN_LEADER_EPOCH_FILE "leader-epoch-checkpoint"
/* OffsetsForLeaderEpoch's answer when it knows nothing (Kafka's UNDEFINED_EPOCH(_OFFSET)). */
#define RN_EPOCH_UNDEFINED        (-1)
#define RN_EPOCH_OFFSET_UNDEFINED (-1)
/* Most entries a file may hold: a bound for the parser, far above any real
 * history (one entry per leader change that wrote to the partition). */
#define RN_LEADER_EPOCH_MAX_ENTRIES 65536

typedef struct rn_leader_epoch_entry {
    int32_t epoch;
    int64_t start_offset;
} rn_leader_epoch_entry;

typedef struct rn_leader_epochs rn_leader_epochs;

/* Load dir's checkpoint. Returns 0 when the file was read, 1 when there is
 * none (an empty cache), -RN_E_CORRUPT_FILE when it does not parse or its
 * checksum does not match (an empty cache is still made in *out: the caller
 * rebuilds it from the batch headers and writes it). dir is copied.
 * Errors (no cache made, *out untouched): -ENOMEM, -errno of open/pread. */
int rn_leader_epochs_open(rn_leader_epochs **out, const char *dir);

/* Free the cache (the file stays). NULL is fine. */
void rn_leader_epochs_free(rn_leader_epochs *c);

/* Hold writes or release the hold, which writes the file when anything
 * changed meanwhile. While held, mutators change memory only (they fail only
 * with -ENOMEM) and rn_leader_epochs_flush writes. The partition log holds
 * its cache for good and writes it at the points its crash rules need (see
 * log.c: before a segment is sealed, at close, after a truncation).
 * Returns 0 or the write's error (the changes stay in memory; a later
 * write retries). */
int rn_leader_epochs_hold(rn_leader_epochs *c, bool hold);

/* Write the file if a held change is not in it yet. Returns 0 or the
 * write's error (the changes stay in memory, still to be written). */
int rn_leader_epochs_flush(rn_leader_epochs *c);

/* Record that epoch starts at start_offset, as Kafka's assign: nothing
 * happens when epoch is the latest one and start_offset is not below its
 * start (the common case of every append), or when epoch < 0 (no epoch).
 * Otherwise every entry whose epoch >= epoch or whose start >= start_offset
 * goes (a new leader's history replaces what it did not keep) and the entry
 * is added. Returns 1 when the cache changed (and the file was written),
 * 0 when nothing changed, or the write's error (cache unchanged). */
int rn_leader_epochs_assign(rn_leader_epochs *c, int32_t epoch, int64_t start_offset);

/* The log was cut at end_offset: entries starting at or after it go.
 * Returns 1 (changed, written), 0, or the write's error (cache unchanged). */
int rn_leader_epochs_truncate_from_end(rn_leader_epochs *c, int64_t end_offset);

/* The log now starts at start_offset (retention): entries that start at or
 * before it collapse into one, the latest of them, starting at start_offset.
 * Returns 1 (changed, written), 0, or the write's error (cache unchanged). */
int rn_leader_epochs_truncate_from_start(rn_leader_epochs *c, int64_t start_offset);

/* Drop every entry (the log was emptied and restarted elsewhere).
 * Returns 1 (changed, written), 0, or the write's error (cache unchanged). */
int rn_leader_epochs_clear(rn_leader_epochs *c);

/* OffsetsForLeaderEpoch, as Kafka answers it, for a log ending at leo:
 *  - epoch is the latest: (epoch, leo);
 *  - an epoch between known ones: the largest known epoch <= it, and the
 *    start offset of the first known epoch above it (where the log stopped
 *    agreeing with a follower that has it);
 *  - older than every entry: (epoch, start of the first entry) — the data
 *    of that time is gone, a follower truncates to the leader's start;
 *  - newer than the latest, negative, or an empty cache:
 *    (RN_EPOCH_UNDEFINED, RN_EPOCH_OFFSET_UNDEFINED). */
void rn_leader_epochs_end_offset_for(const rn_leader_epochs *c, int32_t epoch, int64_t leo,
                                     int32_t *out_epoch, int64_t *out_end_offset);

/* The latest epoch, or RN_EPOCH_UNDEFINED when empty. */
int32_t rn_leader_epochs_latest(const rn_leader_epochs *c);

/* Entries, oldest first: count and entry i (< count). */
unsigned rn_leader_epochs_count(const rn_leader_epochs *c);
rn_leader_epoch_entry rn_leader_epochs_get(const rn_leader_epochs *c, unsigned i);

/* Write the file now (tmp → fdatasync → rename → fsync(dir); the syncs wait
 * for the end of a deferred-durability window, storage/sys.h). */
int rn_leader_epochs_write(rn_leader_epochs *c);

/* Encode entries as the file's bytes into buf (cap bytes); returns the
 * length, or -ENOSPC when it does not fit. For tests and rn_leader_epochs_write. */
int rn_leader_epochs_encode(const rn_leader_epoch_entry *v, unsigned n, char *buf, size_t cap);

/* Parse the file's bytes. *out (malloc'd, caller frees; NULL when n == 0)
 * and *n get the entries. Errors: -RN_E_CORRUPT_FILE (syntax, bounds,
 * order, checksum), -ENOMEM. */
int rn_leader_epochs_decode(const char *buf, size_t len, rn_leader_epoch_entry **out, unsigned *n);

#endif
