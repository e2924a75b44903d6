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
 * than 4 GiB); the old snapshot then stays. */
int rn_snapshot_write(const rn_image *img, int64_t offset, const char *dir);

/* Load dir/snapshot into img, which must be empty. 0 with *offset set to
 * the offset it covers; -ENOENT when there is none; -RN_E_CORRUPT_FILE with
 * why saying what is wrong; -ENOMEM; -errno. On error img may hold part of
 * the snapshot: the caller clears it. */
int rn_snapshot_load(rn_image *img, const char *dir, int64_t *offset, char *why, size_t whylen);

#endif
