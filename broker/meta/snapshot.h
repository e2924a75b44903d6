/*
 * snapshot.h — the metadata image as a file (DESIGN §8).
 *
 * A snapshot is the image after every record below an offset, written as
 * the records that rebuild it: each topic's TopicRecord (with its configs)
 * then its PartitionRecords, topics sorted by name. Loading applies them
 * through rn_image_apply, so a loaded image is built by the same code as a
 * replayed one. The file lives in the metadata log's directory as
 * "snapshot"; its format is in snapshot.c.
 */
#ifndef RN_BROKER_META_SNAPSHOT_H
#define RN_BROKER_META_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/meta/image.h"

/* Durably replace dir/snapshot with img, covering offset (tmp → fdatasync
 * → rename → fsync dir; synchronous). Errors: -errno, -ENOMEM, -EFBIG (more
 * than 1 GiB); the old snapshot then stays. */
int rn_snapshot_write(const rn_image *img, int64_t offset, const char *dir);

/* Load dir/snapshot into img, which must be empty. 0 with *offset set to
 * the offset it covers; -ENOENT when there is none; -RN_E_CORRUPT_FILE with
 * why saying what is wrong; -ENOMEM; -errno. On error img may hold part of
 * the snapshot: the caller clears it. */
int rn_snapshot_load(rn_image *img, const char *dir, int64_t *offset, char *why, size_t whylen);

/* The file's bytes for img covering end_offset, the Raft epoch of the
 * record before it in epoch: *out malloc'd. -ENOMEM, -EFBIG. */
int rn_snapshot_encode(const rn_image *img, int64_t end_offset, int32_t epoch, uint8_t **out,
                       size_t *len);

/* Check (size, magic, version, checksum, every length) and apply buf into
 * img, which must be empty. 0 with *end_offset and *epoch (may be NULL);
 * -RN_E_CORRUPT_FILE with why saying what is wrong; -ENOMEM. On error img
 * may hold part of it: the caller drops it. Never reads past size. */
int rn_snapshot_decode(rn_image *img, const uint8_t *buf, size_t size, int64_t *end_offset,
                       int32_t *epoch, char *why, size_t whylen);

/* A cluster member keeps its snapshots as dir/<end>-<epoch>.checkpoint
 * (Kafka's naming; quorum_snapshots.c writes and prunes them). */
typedef struct rn_snapshot_id {
    int64_t end_offset;
    int32_t epoch;
} rn_snapshot_id;

/* Durably write data as id's file (<name>.part, fdatasync, rename, fsync
 * dir). -errno. */
int rn_snapshot_save(const char *dir, rn_snapshot_id id, const void *data, size_t len);
/* The snapshot files in dir, newest (highest end offset) first; *ids
 * malloc'd (NULL when none). A missing dir has none. -ENOMEM, -errno. */
int rn_snapshot_list(const char *dir, rn_snapshot_id **ids, size_t *n);
/* id's file, whole, malloc'd in *data (not checked: rn_snapshot_decode
 * does). -ENOENT, -RN_E_CORRUPT_FILE (size out of range), -ENOMEM, -errno. */
int rn_snapshot_read(const char *dir, rn_snapshot_id id, uint8_t **data, size_t *len, char *why,
                     size_t whylen);
int rn_snapshot_remove(const char *dir, rn_snapshot_id id);

#endif
