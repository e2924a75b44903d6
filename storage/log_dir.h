/*
 * log_dir.h — a partition directory, read-only: its segments in order and
 * the batches of each (DESIGN §4).
 *
 * One place for what the partition log's open (storage/log.c) and
 * `runnel replay` (tools/cli_replay.c) both need: which files are segments
 * ("<20-digit base offset>.log"; indexes, temp files, checkpoints, markers
 * and anything else are not), and a walk over a segment's batches that
 * changes nothing and is safe while a broker appends, seals, or (after a
 * crash) cuts the same file:
 *
 *  - The reader uses pread, never a mapping, so a file cut under it cannot
 *    fault (SIGBUS): a short read is the end of what it can see.
 *  - It reads no byte past the file's size when it was opened, so a batch
 *    being written as it reads is not half-seen.
 *  - It stops at the first batch that is incomplete or does not parse, or
 *    whose offsets go back: what recovery would cut. An all-zero header is
 *    the end of the data (the sparse tail of an active segment).
 *  - It checks headers only (length, magic, offsets); the caller verifies a
 *    batch's CRC-32C when it reads the records (rn_batch_iter_init).
 *
 * Thread-safety: none needed; a reader is one caller's. No function here
 * writes, creates or removes a file.
 */
#ifndef RN_LOG_DIR_H
#define RN_LOG_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"

/* Is name "<20 digits><ext>" (ext e.g. ".log")? *base gets the number.
 * Bounds-checked: a number above INT64_MAX is not a segment name. */
bool rn_log_dir_parse_name(const char *name, const char *ext, int64_t *base);

/* Called by rn_log_dir_list with each entry that is not a segment's .log. */
typedef void (*rn_log_dir_other_cb)(void *arg, const char *name);

/* Base offsets of the segments in dir (its "<20 digits>.log" files), sorted
 * ascending, in *out (malloc'd, caller frees; NULL when none) and *n. other,
 * when not NULL, sees every other name (the log removes its .tmp leftovers
 * there). Errors: -errno of opendir (-ENOENT: no such directory), -ENOMEM. */
int rn_log_dir_list(const char *dir, int64_t **out, unsigned *n, rn_log_dir_other_cb other,
                    void *arg);

/* A read-only walk over one segment's batches. */
typedef struct rn_segment_reader {
    int fd;
    int64_t base_offset;
    uint64_t pos;        /* position of the next batch */
    uint64_t limit;      /* the file's size at open: nothing at or past it is read */
    int64_t next_offset; /* offset the next batch must not go below; -1: any */
} rn_segment_reader;

/* Open dir's segment at base_offset for reading (O_RDONLY). r->next_offset
 * starts at -1; a caller walking a partition sets it to the offset the
 * previous segment ended at. Errors: -ENOENT (deleted since the listing:
 * retention), -ENAMETOOLONG, -errno. */
int rn_segment_reader_open(rn_segment_reader *r, const char *dir, int64_t base_offset);

/* The header of the batch at r->pos, without moving. Returns 1 with *h,
 * 0 at the end of the data (the file's end, or an all-zero header), or a
 * negative error for a batch that cannot be served: -RN_E_BATCH_TRUNCATED
 * (cut short, or stray bytes too few for a header), -RN_E_CORRUPT_SEGMENT
 * (its base offset is below r->next_offset: stale bytes past a cut), the
 * header check's -RN_E_BATCH_* code, -errno of pread. */
int rn_segment_reader_peek(rn_segment_reader *r, rn_batch_header *h);

/* Copy the whole batch h (from rn_segment_reader_peek) into buf, which
 * holds rn_batch_size(h) bytes. Errors: -RN_E_BATCH_TRUNCATED (the file
 * ends inside it), -errno of pread. Does not move. */
int rn_segment_reader_read(rn_segment_reader *r, const rn_batch_header *h, void *buf);

/* Move past batch h: the next peek looks after it, and a later batch must
 * start at or after h's last offset + 1. */
void rn_segment_reader_advance(rn_segment_reader *r, const rn_batch_header *h);

/* Close the descriptor. */
void rn_segment_reader_close(rn_segment_reader *r);

#endif
