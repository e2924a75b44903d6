/*
 * batch_builder.c — the record batch codec's builder (rn_batch_builder, see
 * batch.h): records encoded one by one into a Kafka RecordBatch v2, the
 * header written last, compressed when the options ask for a codec.
 *
 * How it fits: the producer (clients/producer.c) and the broker's own writers
 * build batches here; batch.c checks and reads what comes back (the record
 * bytes are the same as its top comment lays out), and protocol/codec.c
 * compresses the records section.
 *
 * Invariants kept here:
 *  1. The builder writes records straight into one buffer that grows
 *     geometrically, with the header's 61 bytes reserved in front; finishing an
 *     uncompressed batch hands that buffer over without copying it.
 *  2. A batch never grows past MAX_BATCH_SIZE (what batch_length can say).
 *  3. The CRC is computed once, over the finished bytes 21..end.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "protocol/batch.h"
#include "protocol/batch_int.h"
#include "protocol/bytes.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

#define BUILDER_MIN_CAP 4096

/* ---- Zigzag varints (writing) ---------------------------------------------- */

static inline uint32_t zigzag32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static inline uint64_t zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline size_t uvarint_size(uint64_t v)
{
    return v ? (size_t)(64 - __builtin_clzll(v) + 6) / 7 : 1;
}

static inline uint8_t *put_uvarint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* ---- Header ---------------------------------------------------------------- */

/* Everything but the CRC goes in; the CRC is computed over the result. */
static void encode_header(uint8_t *p, const rn_batch_header *h)
{
    rn_put_be64(p + RN_BATCH_OFF_BASE_OFFSET, (uint64_t)h->base_offset);
    rn_put_be32(p + RN_BATCH_OFF_LENGTH, (uint32_t)h->batch_length);
    rn_put_be32(p + RN_BATCH_OFF_LEADER_EPOCH, (uint32_t)h->partition_leader_epoch);
    p[RN_BATCH_OFF_MAGIC] = (uint8_t)h->magic;
    rn_put_be16(p + RN_BATCH_OFF_ATTRIBUTES, (uint16_t)h->attributes);
    rn_put_be32(p + RN_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)h->last_offset_delta);
    rn_put_be64(p + RN_BATCH_OFF_BASE_TIMESTAMP, (uint64_t)h->base_timestamp);
    rn_put_be64(p + RN_BATCH_OFF_MAX_TIMESTAMP, (uint64_t)h->max_timestamp);
    rn_put_be64(p + RN_BATCH_OFF_PRODUCER_ID, (uint64_t)h->producer_id);
    rn_put_be16(p + RN_BATCH_OFF_PRODUCER_EPOCH, (uint16_t)h->producer_epoch);
    rn_put_be32(p + RN_BATCH_OFF_BASE_SEQUENCE, (uint32_t)h->base_sequence);
    rn_put_be32(p + RN_BATCH_OFF_RECORDS_COUNT, (uint32_t)h->records_count);
    size_t size = rn_batch_size(h);
    rn_put_be32(p + RN_BATCH_OFF_CRC, rn_crc32c(p + RN_BATCH_CRC_START, size - RN_BATCH_CRC_START));
}

/* ---- Building -------------------------------------------------------------- */

struct rn_batch_builder {
    rn_batch_builder_opts opts;
    rn_codec_writer *cw; /* kept across batches when compressing */
    uint8_t *buf;        /* header space + records; NULL until the first record */
    size_t len;          /* bytes used, the reserved header included */
    size_t cap;
    size_t hint;    /* size of the last finished batch: where the next buffer starts */
    uint8_t *spare; /* a finished batch's buffer given back (rn_batch_builder_recycle) */
    size_t spare_cap;
    int32_t count;
    int64_t base_timestamp, max_timestamp;
};

static bool producer_fields_valid(int64_t id, int16_t epoch, int32_t seq)
{
    if (id == -1)
        return epoch == -1 && seq == -1;
    return id >= 0 && epoch >= 0 && seq >= 0;
}

int rn_batch_builder_new(rn_batch_builder **out, const rn_batch_builder_opts *opts)
{
    rn_batch_builder_opts o = {
        .codec = RN_BATCH_CODEC_NONE,
        .zstd_level = 0,
        .producer_id = -1,
        .producer_epoch = -1,
        .base_sequence = -1,
    };
    if (opts)
        o = *opts;
    if (o.codec < RN_BATCH_CODEC_NONE || o.codec > RN_BATCH_CODEC_ZSTD)
        return -EINVAL;
    if (o.zstd_level < ZSTD_minCLevel() || o.zstd_level > ZSTD_maxCLevel())
        return -EINVAL;
    if (!producer_fields_valid(o.producer_id, o.producer_epoch, o.base_sequence))
        return -EINVAL;
    rn_batch_builder *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->opts = o;
    if (o.codec != RN_BATCH_CODEC_NONE) {
        int rc = rn_codec_writer_new(&b->cw, o.codec, o.zstd_level);
        if (rc) {
            free(b);
            return rc;
        }
    }
    rn_batch_builder_reset(b);
    *out = b;
    return 0;
}

void rn_batch_builder_free(rn_batch_builder *b)
{
    if (!b)
        return;
    rn_codec_writer_free(b->cw);
    free(b->buf);
    free(b->spare);
    free(b);
}

void rn_batch_builder_reset(rn_batch_builder *b)
{
    b->len = RN_BATCH_HEADER_LEN;
    b->count = 0;
    b->base_timestamp = -1;
    b->max_timestamp = -1;
}

int32_t rn_batch_builder_count(const rn_batch_builder *b)
{
    return b->count;
}

size_t rn_batch_builder_size(const rn_batch_builder *b)
{
    return b->len;
}

static int builder_reserve(rn_batch_builder *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap;
    if (cap == 0) {
        cap = b->hint > BUILDER_MIN_CAP ? b->hint : BUILDER_MIN_CAP;
        if (!b->buf && b->spare && b->spare_cap >= need) {
            /* A recycled batch buffer: no allocation for this batch. */
            b->buf = b->spare;
            b->cap = b->spare_cap;
            b->spare = NULL;
            b->spare_cap = 0;
            return 0;
        }
    }
    while (cap < need)
        cap *= 2;
    uint8_t *nb = realloc(b->buf, cap);
    if (!nb)
        return -ENOMEM;
    b->buf = nb;
    b->cap = cap;
    return 0;
}

/* Encoded size of a byte string; data NULL is null (-1). */
static inline uint64_t bytes_size(const void *data, uint64_t len)
{
    return data ? uvarint_size(zigzag32((int32_t)len)) + len : 1;
}

static inline uint8_t *put_bytes(uint8_t *p, const void *data, size_t len)
{
    if (!data)
        return put_uvarint(p, zigzag32(-1));
    p = put_uvarint(p, zigzag32((int32_t)len));
    if (len)
        memcpy(p, data, len);
    return p + len;
}

/* A header's value is null when value is NULL or value_len is -1. */
static inline const void *header_value(const rn_record_header *h)
{
    return h->value_len < 0 ? NULL : h->value;
}

/* A header's name is never null; NULL with length 0 is the empty name. */
static inline const void *header_name(const rn_record_header *h)
{
    return h->name ? (const void *)h->name : (const void *)"";
}

int rn_batch_builder_add(rn_batch_builder *b, int64_t timestamp, const void *key, size_t key_len,
                         const void *value, size_t value_len, const rn_record_header *headers,
                         size_t n_headers)
{
    if (b->count == INT32_MAX)
        return -EINVAL;
    /* -1 is "no timestamp", and a batch either has timestamps or has none. */
    if (timestamp < -1 || (b->count > 0 && (timestamp == -1) != (b->base_timestamp == -1)))
        return -EINVAL;
    if ((key && key_len > INT32_MAX) || (value && value_len > INT32_MAX) || n_headers > INT32_MAX ||
        (n_headers > 0 && !headers))
        return -EINVAL;

    int64_t base = b->count > 0 ? b->base_timestamp : timestamp;
    int64_t ts_delta = timestamp - base; /* both >= 0, or both -1 */
    int32_t offset_delta = b->count;

    /* Size first, so nothing is written unless it all fits. Each term is below
     * 2^33, so the 64-bit sum cannot wrap before it passes INT32_MAX. */
    uint64_t body = 1 + uvarint_size(zigzag64(ts_delta)) + uvarint_size(zigzag32(offset_delta)) +
                    bytes_size(key, key_len) + bytes_size(value, value_len) +
                    uvarint_size(zigzag32((int32_t)n_headers));
    for (size_t i = 0; i < n_headers; i++) {
        const rn_record_header *h = &headers[i];
        if (h->name_len < 0 || (!h->name && h->name_len > 0) || h->value_len < -1)
            return -EINVAL;
        const void *hv = header_value(h);
        body += bytes_size(header_name(h), (uint64_t)h->name_len) +
                bytes_size(hv, hv ? (uint64_t)h->value_len : 0);
        if (body > INT32_MAX)
            return -RN_E_MESSAGE_TOO_LARGE;
    }
    if (body > INT32_MAX)
        return -RN_E_MESSAGE_TOO_LARGE;
    size_t rec_len = uvarint_size(zigzag32((int32_t)body)) + (size_t)body;
    if (rec_len > MAX_BATCH_SIZE - b->len)
        return -RN_E_MESSAGE_TOO_LARGE;
    int rc = builder_reserve(b, b->len + rec_len);
    if (rc)
        return rc;

    uint8_t *p = b->buf + b->len;
    p = put_uvarint(p, zigzag32((int32_t)body));
    *p++ = 0; /* record attributes: unused in v2 */
    p = put_uvarint(p, zigzag64(ts_delta));
    p = put_uvarint(p, zigzag32(offset_delta));
    p = put_bytes(p, key, key_len);
    p = put_bytes(p, value, value_len);
    p = put_uvarint(p, zigzag32((int32_t)n_headers));
    for (size_t i = 0; i < n_headers; i++) {
        const rn_record_header *h = &headers[i];
        const void *hv = header_value(h);
        p = put_bytes(p, header_name(h), (size_t)h->name_len);
        p = put_bytes(p, hv, hv ? (size_t)h->value_len : 0);
    }
    b->len += rec_len;

    if (b->count == 0) {
        b->base_timestamp = timestamp;
        b->max_timestamp = timestamp;
    } else if (timestamp > b->max_timestamp) {
        b->max_timestamp = timestamp;
    }
    b->count++;
    return 0;
}

/* Finish into a buffer the caller takes, its capacity in *out_cap; shrink:
 * give back the slack of geometric growth first. */
static int builder_finish(rn_batch_builder *b, uint8_t **out, size_t *out_len, size_t *out_cap,
                          bool shrink)
{
    if (b->count == 0)
        return -EINVAL;
    uint8_t *batch;
    size_t size, batch_cap;
    if (b->opts.codec != RN_BATCH_CODEC_NONE) {
        size_t n = b->len - RN_BATCH_HEADER_LEN;
        size_t cap = RN_BATCH_HEADER_LEN + rn_codec_compress_bound(b->cw, n);
        if (cap > MAX_BATCH_SIZE)
            cap = MAX_BATCH_SIZE;
        if (b->spare && b->spare_cap >= cap) {
            batch = b->spare; /* recycled: no allocation */
            cap = b->spare_cap;
            b->spare = NULL;
            b->spare_cap = 0;
        } else {
            batch = malloc(cap);
            if (!batch)
                return -ENOMEM;
        }
        size_t z;
        int rc =
            rn_codec_writer_compress(b->cw, b->buf + RN_BATCH_HEADER_LEN, n,
                                     batch + RN_BATCH_HEADER_LEN, cap - RN_BATCH_HEADER_LEN, &z);
        if (rc) {
            rn_batch_builder_recycle(b, batch, cap);
            return rc;
        }
        size = RN_BATCH_HEADER_LEN + z;
        batch_cap = cap;
    } else {
        /* Hand the record buffer over as it is; the next batch starts a new one
         * (or a recycled one). */
        batch = b->buf;
        size = b->len;
        batch_cap = b->cap;
        b->buf = NULL;
        b->cap = 0;
    }
    if (shrink) {
        /* Give back the slack of geometric growth (in place for glibc). */
        uint8_t *shrunk = realloc(batch, size);
        if (shrunk)
            batch = shrunk;
        batch_cap = size;
    }

    rn_batch_header h = {
        .base_offset = 0,
        .batch_length = (int32_t)(size - RN_BATCH_LOG_OVERHEAD),
        .partition_leader_epoch = -1,
        .magic = RN_BATCH_MAGIC,
        .attributes = (int16_t)b->opts.codec,
        .last_offset_delta = b->count - 1,
        .base_timestamp = b->base_timestamp,
        .max_timestamp = b->max_timestamp,
        .producer_id = b->opts.producer_id,
        .producer_epoch = b->opts.producer_epoch,
        .base_sequence = b->opts.base_sequence,
        .records_count = b->count,
    };
    encode_header(batch, &h);
    b->hint = b->len;
    rn_batch_builder_reset(b);
    *out = batch;
    *out_len = size;
    if (out_cap)
        *out_cap = batch_cap;
    return 0;
}

int rn_batch_builder_finish(rn_batch_builder *b, uint8_t **out, size_t *out_len)
{
    return builder_finish(b, out, out_len, NULL, true);
}

int rn_batch_builder_finish_reusable(rn_batch_builder *b, uint8_t **out, size_t *out_len,
                                     size_t *out_cap)
{
    return builder_finish(b, out, out_len, out_cap, false);
}

void rn_batch_builder_recycle(rn_batch_builder *b, uint8_t *buf, size_t cap)
{
    if (!buf)
        return;
    /* One spare is enough for a builder that finishes one batch at a time;
     * keep the larger, which fits the most batches. */
    if (b->spare && b->spare_cap >= cap) {
        free(buf);
        return;
    }
    free(b->spare);
    b->spare = buf;
    b->spare_cap = cap;
}
