/*
 * batch.h — the record batch codec: Kafka's RecordBatch v2, byte for byte (DESIGN §3).
 *
 * The batch is runnel's one data type: the producer builds it, the broker stamps
 * base_offset and partition_leader_epoch and writes the bytes to the segment as
 * they came, the consumer reads the same bytes. The CRC-32C (Castagnoli, ISA-L)
 * covers bytes 21..end (attributes onward), so stamping never re-hashes.
 *
 * Header layout (big-endian), RN_BATCH_HEADER_LEN = 61 bytes:
 *    0 base_offset i64        8 batch_length i32 (bytes after this field)
 *   12 partition_leader_epoch i32            16 magic i8 = 2
 *   17 crc u32               21 attributes i16     23 last_offset_delta i32
 *   27 base_timestamp i64    35 max_timestamp i64  43 producer_id i64
 *   51 producer_epoch i16    53 base_sequence i32  57 records_count i32
 *   61 records (zigzag varints; with a codec, compressed as protocol/codec.h says:
 *      gzip, snappy (raw or xerial-framed), lz4 frame or zstd frame)
 *
 * Nothing here does I/O or keeps global state; every function is thread-safe on
 * distinct arguments. Errors are -RN_E_* codes from protocol/errors.def and
 * -ENOMEM; input never aborts the process.
 */
#ifndef RN_BATCH_H
#define RN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define RN_BATCH_HEADER_LEN 61
#define RN_BATCH_MAGIC      2
/* batch_length counts bytes after the length field: total size = 12 + batch_length. */
#define RN_BATCH_LOG_OVERHEAD 12
/* First byte covered by the CRC. */
#define RN_BATCH_CRC_START 21

#define RN_BATCH_OFF_BASE_OFFSET       0
#define RN_BATCH_OFF_LENGTH            8
#define RN_BATCH_OFF_LEADER_EPOCH      12
#define RN_BATCH_OFF_MAGIC             16
#define RN_BATCH_OFF_CRC               17
#define RN_BATCH_OFF_ATTRIBUTES        21
#define RN_BATCH_OFF_LAST_OFFSET_DELTA 23
#define RN_BATCH_OFF_BASE_TIMESTAMP    27
#define RN_BATCH_OFF_MAX_TIMESTAMP     35
#define RN_BATCH_OFF_PRODUCER_ID       43
#define RN_BATCH_OFF_PRODUCER_EPOCH    51
#define RN_BATCH_OFF_BASE_SEQUENCE     53
#define RN_BATCH_OFF_RECORDS_COUNT     57

/* attributes bits */
#define RN_BATCH_CODEC_MASK           0x07
#define RN_BATCH_CODEC_NONE           0
#define RN_BATCH_CODEC_GZIP           1
#define RN_BATCH_CODEC_SNAPPY         2 /* raw block or snappy-java's xerial framing */
#define RN_BATCH_CODEC_LZ4            3 /* one LZ4 frame */
#define RN_BATCH_CODEC_ZSTD           4
#define RN_BATCH_ATTR_LOG_APPEND_TIME 0x08
#define RN_BATCH_ATTR_TRANSACTIONAL   0x10
#define RN_BATCH_ATTR_CONTROL         0x20
/* Bits 6 (delete horizon) and above are Kafka's; runnel rejects what it does not know. */
#define RN_BATCH_ATTR_KNOWN 0x3f

/* The decoded 61-byte header. */
typedef struct rn_batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
} rn_batch_header;

/* One record header (name/value). Pointers borrow the batch (or the iterator's
 * decompressed buffer) and are valid until the iterator moves or is finalised.
 * value == NULL with value_len == -1 is a null value. */
typedef struct rn_record_header {
    const uint8_t *name;
    int32_t name_len;
    const uint8_t *value;
    int32_t value_len;
} rn_record_header;

/* One decoded record. key/value NULL with length -1 mean null. The headers are
 * left encoded in [headers, headers + headers_len) and decoded with
 * rn_record_header_next(); this keeps iteration allocation-free. */
typedef struct rn_record {
    int64_t offset; /* base_offset + offset_delta */
    int64_t
        timestamp; /* base_timestamp + timestamp_delta (or max_timestamp with LOG_APPEND_TIME) */
    int32_t offset_delta;
    int8_t attributes;
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value;
    int32_t value_len;
    int32_t n_headers;
    const uint8_t *headers;
    size_t headers_len;
} rn_record;

/* ---- Reading ------------------------------------------------------------ */

/* Decode the header of the batch at buf without checking the CRC. Checks that
 * len covers the header, magic == 2, and batch_length is in
 * [RN_BATCH_HEADER_LEN - 12, max_len - 12]; does not require the whole batch to
 * be present (len may be just RN_BATCH_HEADER_LEN) — the caller compares
 * rn_batch_size(h) with what it has. Borrows buf. max_len bounds the batch
 * (message.max.bytes); 0 means INT32_MAX.
 * Errors: -RN_E_BATCH_TRUNCATED, -RN_E_BATCH_BAD_MAGIC, -RN_E_BATCH_BAD_LENGTH,
 * -RN_E_MESSAGE_TOO_LARGE (batch_length beyond max_len). */
int rn_batch_peek(const void *buf, size_t len, size_t max_len, rn_batch_header *h);

/* Total bytes of the batch described by h: 12 + batch_length. */
static inline size_t rn_batch_size(const rn_batch_header *h)
{
    return (size_t)RN_BATCH_LOG_OVERHEAD + (size_t)(uint32_t)h->batch_length;
}

/* Check the header fields and the CRC of the complete batch at buf (len must
 * be >= its size; bytes after it are ignored). Cheap: does not walk records, so
 * it is what recovery and the log's append use (the broker's produce handler
 * runs rn_batch_validate first). h may be NULL.
 * Errors: those of rn_batch_peek, -RN_E_BATCH_TRUNCATED, -RN_E_BATCH_BAD_CRC,
 * -RN_E_BATCH_BAD_ATTRIBUTES, -RN_E_BATCH_BAD_COUNT, -RN_E_BATCH_BAD_TIMESTAMP,
 * -RN_E_BATCH_BAD_PRODUCER. */
int rn_batch_check(const void *buf, size_t len, size_t max_len, rn_batch_header *h);

/* rn_batch_check plus a walk of every record: each varint and length bounded,
 * records_count and last_offset_delta matching, no trailing bytes. A compressed batch
 * is decompressed into a temporary buffer (freed before return), bounded by
 * max_uncompressed (0 = 64 MiB). This is what a consumer client runs.
 * Errors: those of rn_batch_check, -RN_E_BATCH_BAD_RECORD, -RN_E_BATCH_BAD_VARINT,
 * -RN_E_BATCH_BAD_OFFSET_DELTA, -RN_E_BATCH_BAD_COMPRESSION,
 * -RN_E_BATCH_TRAILING_BYTES, -ENOMEM. */
int rn_batch_verify(const void *buf, size_t len, size_t max_len, size_t max_uncompressed);

/* What the broker runs on every produced batch before it is stored, as Kafka's
 * broker does (LogValidator): rn_batch_check, the batch exactly len bytes,
 * then one pass over the records as rn_batch_verify walks them, plus the
 * timestamp rules: without timestamps (base_timestamp -1) every record has
 * none; with CreateTime each record's is in [0, max_timestamp] and the latest
 * equals max_timestamp. A compressed batch is streamed through a window of
 * at most about 320 KiB (plus the codec's own state, which for zstd is the
 * frame's window, itself capped by max_uncompressed), never decompressed
 * whole; at most max_uncompressed bytes (0 = 64 MiB) are read through it and
 * a frame declaring more is refused before anything is decompressed. A
 * fault of the compression (corrupt, too large, a size that lies) is reported
 * before a record's, as if the section were decompressed first. Uncompressed,
 * the cost is one CRC pass and one pass over the varints, with no allocation.
 * max_len bounds the batch (max.message.bytes; 0 = 2 GiB). On success *h (may
 * be NULL) gets the header. On failure err (may be NULL) gets one sentence
 * naming the field, and for a record its index counted from 0 ("record 3 of
 * 5 (counted from 0): offset_delta 2 does not follow 2 (deltas must
 * increase)"). Borrows buf. Errors: those of rn_batch_verify,
 * -RN_E_BATCH_BAD_LENGTH (len is not the batch's size),
 * -RN_E_BATCH_BAD_TIMESTAMP (a record's timestamp), -ENOMEM. */
int rn_batch_validate(const void *buf, size_t len, size_t max_len, size_t max_uncompressed,
                      rn_batch_header *h, char *err, size_t errlen);

/* Stamp the leader's fields into a batch in place. No re-hash: the CRC does not
 * cover them. buf must hold at least RN_BATCH_HEADER_LEN bytes. */
void rn_batch_stamp(void *buf, int64_t base_offset, int32_t partition_leader_epoch);

/* Iterator over the records of one batch. Caller-allocated; fields private. */
typedef struct rn_batch_iter {
    rn_batch_header h;
    const uint8_t *pos, *end;
    uint8_t *owned; /* decompressed records of a compressed batch, or NULL */
    int32_t left;
    int32_t prev_delta; /* offset_delta of the record returned last; -1 before the first */
} rn_batch_iter;

/* Start iterating the batch at buf (len >= its size). Runs rn_batch_check, then
 * for a compressed batch decompresses the records (bounded by max_uncompressed,
 * 0 = 64 MiB).
 * Borrows buf until rn_batch_iter_fini. On error the iterator needs no fini.
 * Errors: those of rn_batch_check, -RN_E_BATCH_BAD_COMPRESSION, -ENOMEM. */
int rn_batch_iter_init(rn_batch_iter *it, const void *buf, size_t len, size_t max_uncompressed);

/* Decode the next record into rec. Returns 1 with a record, 0 at the end (after
 * checking there are no trailing bytes), or a negative error
 * (-RN_E_BATCH_BAD_RECORD, -RN_E_BATCH_BAD_VARINT, -RN_E_BATCH_TRAILING_BYTES,
 * -RN_E_BATCH_BAD_OFFSET_DELTA). rec borrows the batch / iterator buffer. */
int rn_batch_iter_next(rn_batch_iter *it, rn_record *rec);

/* Release the iterator's decompression buffer. Safe to call twice. */
void rn_batch_iter_fini(rn_batch_iter *it);

/* Decode the next header from *pos (advancing it) within [*pos, end).
 * Returns 1 with a header, 0 when *pos == end, negative on malformed input. */
int rn_record_header_next(const uint8_t **pos, const uint8_t *end, rn_record_header *hdr);

/* ---- Building ----------------------------------------------------------- */

typedef struct rn_batch_builder rn_batch_builder;

typedef struct rn_batch_builder_opts {
    int codec;              /* RN_BATCH_CODEC_NONE .. _ZSTD (written as codec.h says) */
    int zstd_level;         /* 0 = zstd default (3); other codecs use their defaults */
    int64_t producer_id;    /* -1 when not idempotent */
    int16_t producer_epoch; /* -1 when not idempotent */
    int32_t base_sequence;  /* -1 when not idempotent */
} rn_batch_builder_opts;

/* A new builder. opts may be NULL (no compression, no producer id).
 * Errors: -EINVAL (unknown codec, zstd_level out of range, producer fields not
 * all -1 nor all >= 0), -ENOMEM. The caller owns *out. */
int rn_batch_builder_new(rn_batch_builder **out, const rn_batch_builder_opts *opts);
void rn_batch_builder_free(rn_batch_builder *b);

/* Append one record. key/value may be NULL (null) with len ignored; headers may
 * be NULL when n_headers == 0. The bytes are copied. timestamp in ms.
 * timestamp -1 means none; a batch has timestamps on all records or on none.
 * Errors: -EINVAL (negative length, too many records, timestamp below -1 or
 * mixing -1 with real ones, a header with a negative name_len or value_len
 * below -1), -ENOMEM, -RN_E_MESSAGE_TOO_LARGE (the batch would pass 2 GiB).
 * On error the builder is unchanged. */
int rn_batch_builder_add(rn_batch_builder *b, int64_t timestamp, const void *key, size_t key_len,
                         const void *value, size_t value_len, const rn_record_header *headers,
                         size_t n_headers);

/* Records added so far, and the encoded size so far (uncompressed, with header). */
int32_t rn_batch_builder_count(const rn_batch_builder *b);
size_t rn_batch_builder_size(const rn_batch_builder *b);

/* Finish: compress if asked, fill the header (base_offset 0, epoch -1), compute
 * the CRC, and hand the batch to the caller in *out (malloc'd; the caller takes
 * ownership and frees it) with its size in *out_len. The builder is reset and
 * can be reused. Errors: -EINVAL (no records), -ENOMEM, -RN_E_BATCH_BAD_COMPRESSION. */
int rn_batch_builder_finish(rn_batch_builder *b, uint8_t **out, size_t *out_len);

/* The same, for a caller that hands the buffer back when done with it
 * (rn_batch_builder_recycle): no shrinking to size, and the buffer's capacity
 * in *out_cap. The producer builds batch after batch this way without an
 * allocation per batch. */
int rn_batch_builder_finish_reusable(rn_batch_builder *b, uint8_t **out, size_t *out_len,
                                     size_t *out_cap);

/* Give back a buffer a finish of this builder handed out, cap its capacity
 * (*out_cap): the next batch is built (or compressed) into it instead of a new
 * allocation. Takes ownership; the builder keeps one (the larger) and frees
 * the other. buf NULL does nothing. */
void rn_batch_builder_recycle(rn_batch_builder *b, uint8_t *buf, size_t cap);

/* Forget the records added so far; keeps options and buffers. */
void rn_batch_builder_reset(rn_batch_builder *b);

/* CRC-32C (Castagnoli) as Kafka computes it, via ISA-L. */
uint32_t rn_crc32c(const void *buf, size_t len);

/* ---- Streaming iteration ------------------------------------------------ */

/* A record iterator that never holds a whole decompressed batch: records are
 * decompressed into a window as they are asked for, so memory stays at the
 * largest record returned (at most max_record bytes) plus the codec's history
 * window, and reading can stop after any record. Caller-allocated; fields
 * private. This is what renders records for people (the HTTP gateways);
 * appended separately from the iterator above, which it reuses per record. */
typedef struct rn_batch_stream {
    rn_batch_iter it;            /* header and counters; pos/end span one record */
    struct rn_codec_reader *dec; /* decompressor of a compressed batch, else NULL */
    uint8_t *win;                /* unread bytes are [win + head, win + tail) */
    uint8_t *owned_win;          /* win when it is ours (compressed), else NULL */
    size_t head, tail, cap;
    size_t max_out, out_total; /* bound on, and count of, decompressed bytes */
    size_t max_record;
    size_t consumed; /* bytes of the records returned */
    _Bool frame_done;
} rn_batch_stream;

/* Start streaming the batch at buf (len >= its size): runs rn_batch_check
 * and, compressed, checks the frame (protocol/codec.h: a declared size within
 * max_uncompressed; records_count at most that size / 7, the smallest record)
 * without decompressing. max_uncompressed bounds the
 * decompressed bytes of the whole batch and the codec's window (0 = 64 MiB);
 * max_record bounds one record returned (0 = 64 MiB). Allocates no window
 * before the first record is asked for (only the codec's reader); never
 * anything in proportion to records_count. A raw snappy block, which has no
 * streaming decoder, is held whole: at most its declared size, checked
 * against max_uncompressed first. Borrows buf until rn_batch_stream_fini, which must be called
 * even after an error of rn_batch_stream_next (not after one of init).
 * Errors: those of rn_batch_check, -RN_E_BATCH_BAD_COMPRESSION,
 * -RN_E_BATCH_BAD_COUNT, -ENOMEM. */
int rn_batch_stream_init(rn_batch_stream *s, const void *buf, size_t len, size_t max_uncompressed,
                         size_t max_record);

/* The next record whose offset is >= from into rec: 1, or 0 at the end
 * (after checking nothing follows the last record), or a negative error.
 * Records below from are passed over by their length, neither buffered whole
 * nor decoded past their offset. rec borrows the stream's window: valid until
 * the next call or fini. A record longer than max_record is
 * -RN_E_MESSAGE_TOO_LARGE with rec->offset set to its offset (the stream
 * cannot go on past it). Other errors: those of rn_batch_iter_next,
 * -RN_E_BATCH_BAD_COMPRESSION (corrupt frame, or more than max_uncompressed
 * bytes), -ENOMEM. */
int rn_batch_stream_next(rn_batch_stream *s, int64_t from, rn_record *rec);

/* Bytes of the records returned so far (as stored uncompressed): what a
 * reader looked at, not counting records passed over below from. */
size_t rn_batch_stream_consumed(const rn_batch_stream *s);

/* Release the window and the decompression context. Safe to call twice. */
void rn_batch_stream_fini(rn_batch_stream *s);

#endif
