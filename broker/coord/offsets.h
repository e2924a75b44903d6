/*
 * offsets.h — committed offsets of consumer groups, kept as records of the
 * internal topic __offsets (DESIGN §6).
 *
 * A commit is one record per (group, topic, partition) appended to the one
 * partition of __offsets with rn_log_append, so offsets are durable (the
 * topic runs with flush=always: the commit answers after the fdatasync) and
 * will replicate like any data. The in-memory table is what the log says:
 * it is rebuilt at start by reading the partition from its start to its end
 * (latest record per key wins, a null value deletes the key), and a commit
 * changes it only once its batch is durable, by replaying that same batch —
 * so the memory never holds what a crash could take back.
 *
 * Record key (binary, big-endian, length-prefixed; never NUL-separated, so a
 * name can never be confused with the next field):
 *
 *     0  u8   key version = 0
 *     1  u16  group length G (1..249)     3  group bytes
 *   3+G  u16  topic length T (1..249)   5+G  topic bytes
 *  5+G+T i32  partition (>= 0)                      total 9 + G + T bytes
 *
 * Record value (big-endian):
 *
 *     0  u8   value version = 0
 *     1  i64  offset: the next offset the group will consume (>= 0)
 *     9  i64  commit time, ms since the epoch (also the record's timestamp)
 *    17  u16  metadata length M (0..4096)
 *    19  metadata bytes (opaque to the broker)          total 19 + M bytes
 *
 * A null value (value_len -1) is a tombstone: the key is deleted (a group
 * delete writes one per committed partition). Records with an unknown key or
 * value version, or that do not decode, are skipped and counted: a newer
 * broker's records never stop an older one from starting.
 *
 * Threading: owned by the reactor that owns the __offsets log; every call
 * from that thread. Callbacks run from rn_io_run, never inside a call here.
 */
#ifndef RN_BROKER_OFFSETS_H
#define RN_BROKER_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/log.h"

#define RN_OFFSETS_TOPIC        "__offsets"
#define RN_OFFSETS_MAX_NAME     249 /* group ids and topic names */
#define RN_OFFSETS_MAX_METADATA 4096
#define RN_OFFSETS_MAX_KEY      (9 + 2 * RN_OFFSETS_MAX_NAME)
#define RN_OFFSETS_MAX_VALUE    (19 + RN_OFFSETS_MAX_METADATA)

typedef struct rn_offsets rn_offsets;

/* One committed offset, as the table holds it. */
typedef struct rn_offset_entry {
    char *topic;
    int32_t partition;
    int64_t offset;
    int64_t commit_ms;
    char *metadata;     /* "" when none */
    int64_t log_offset; /* offset in __offsets of the record that set it */
} rn_offset_entry;

/* One offset to commit. metadata may be NULL (none). Borrowed for the call. */
typedef struct rn_offset_commit {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *metadata;
} rn_offset_commit;

/* What the table was built from, for the start-up log line and tests. */
typedef struct rn_offsets_stats {
    uint64_t records; /* applied, tombstones included */
    uint64_t tombstones;
    uint64_t skipped; /* records or batches that did not decode */
} rn_offsets_stats;

/* Completion of a commit or delete: err 0 once every record is durable and
 * applied to the table, else a negative code (what was durable before the
 * error is applied). */
typedef void (*rn_offsets_cb)(void *arg, int err);

/* An empty table. Errors: -ENOMEM. The caller owns *out. */
int rn_offsets_new(rn_offsets **out);

/* Free the table. No commit may be in flight (rn_offsets_pending() == 0):
 * drain them first (rn_log_flush_sync on the log runs their callbacks). */
void rn_offsets_free(rn_offsets *o);

/* Replay log (borrowed for the call) from its start offset to its end into
 * the table, synchronously (reads go through the mmap; no io runs).
 * Errors: those of rn_log_read (-RN_E_CORRUPT_*), -ENOMEM; err gets a message.
 * What was read before the error stays applied. */
int rn_offsets_load(rn_offsets *o, rn_log *log, char *err, size_t errlen);

/* Commit n offsets of group: the records are appended to log (borrowed until
 * cb runs) in as few batches as the log's max batch size allows, with
 * leader_epoch stamped, timestamp now_ms. Returns 0 and cb runs once (from
 * rn_io_run) when all are durable, or a negative error and cb never runs:
 * -RN_E_INVALID_REQUEST (a group or topic name empty or longer than 249
 * bytes, a negative partition or offset, metadata longer than 4096 bytes,
 * n == 0), -RN_E_MESSAGE_TOO_LARGE (one record above the log's max batch
 * size), -ENOMEM, the errors of rn_log_append (-RN_E_LOG_FAILED, …). */
int rn_offsets_commit(rn_offsets *o, rn_log *log, int32_t leader_epoch, const char *group,
                      const rn_offset_commit *c, size_t n, int64_t now_ms, rn_offsets_cb cb,
                      void *arg);

/* Delete every committed offset of group by appending a tombstone for each.
 * Returns 0 and cb runs later as for a commit; 1 when the group has nothing
 * committed (nothing is written, cb never runs); or a negative error of
 * rn_offsets_commit (cb never runs). */
int rn_offsets_delete_group(rn_offsets *o, rn_log *log, int32_t leader_epoch, const char *group,
                            int64_t now_ms, rn_offsets_cb cb, void *arg);

/* The committed offset of (group, topic, partition), or NULL. Valid until the
 * table next changes (a completion callback, a load). */
const rn_offset_entry *rn_offsets_find(const rn_offsets *o, const char *group, const char *topic,
                                       int32_t partition);

/* Every committed offset of group, sorted by (topic, partition); *n = 0 and
 * NULL when none. Valid until the table next changes. */
const rn_offset_entry *rn_offsets_entries(const rn_offsets *o, const char *group, size_t *n);

/* Groups with at least one committed offset, sorted by id. */
size_t rn_offsets_group_count(const rn_offsets *o);
const char *rn_offsets_group_at(const rn_offsets *o, size_t i); /* NULL past the end */

/* Hold every write, once durable, until fn says: fn(arg, resume, ctx) must
 * call resume(ctx, 0) once the write may be applied and acknowledged (in a
 * cluster: the partition's high watermark covers it), or resume(ctx, err)
 * to fail it (the table is then left as it was; the records stay in the
 * log, which a later load replays). resume may run inside fn. The write
 * counts in rn_offsets_pending until resume. fn NULL: no hold. */
typedef void (*rn_offsets_hold_fn)(void *arg, void (*resume)(void *ctx, int err), void *ctx);
void rn_offsets_set_hold(rn_offsets *o, rn_offsets_hold_fn fn, void *arg);

/* Commits and deletes whose callbacks have not run yet. */
unsigned rn_offsets_pending(const rn_offsets *o);

void rn_offsets_get_stats(const rn_offsets *o, rn_offsets_stats *out);

/* ---- Record codec (exposed for tests and offline tools) ---------------------- */

/* Encode the key into buf (cap >= RN_OFFSETS_MAX_KEY is always enough).
 * Returns its length, or -RN_E_INVALID_REQUEST (a name empty or longer than
 * 249 bytes, a negative partition), -ENOBUFS. */
int rn_offsets_key_encode(uint8_t *buf, size_t cap, const char *group, const char *topic,
                          int32_t partition);

/* Decode a key; group and topic get NUL-terminated copies (each buffer
 * RN_OFFSETS_MAX_NAME + 1 bytes). Errors: -RN_E_CORRUPT_FILE (wrong length,
 * a name empty, too long or holding a NUL byte, a negative partition),
 * -EPROTONOSUPPORT (a key version this broker does not know). */
int rn_offsets_key_decode(const uint8_t *buf, size_t len, char *group, char *topic,
                          int32_t *partition);

/* Encode a value into buf (cap >= RN_OFFSETS_MAX_VALUE is always enough).
 * Returns its length, or -RN_E_INVALID_REQUEST (metadata too long, negative
 * offset), -ENOBUFS. metadata may be NULL. */
int rn_offsets_value_encode(uint8_t *buf, size_t cap, int64_t offset, int64_t commit_ms,
                            const char *metadata);

/* Decode a value; *metadata borrows buf (not NUL-terminated, *metadata_len
 * bytes). Errors: -RN_E_CORRUPT_FILE, -EPROTONOSUPPORT. */
int rn_offsets_value_decode(const uint8_t *buf, size_t len, int64_t *offset, int64_t *commit_ms,
                            const uint8_t **metadata, size_t *metadata_len);

#endif
