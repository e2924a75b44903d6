/*
 * batch.c — the record batch codec: Kafka's RecordBatch v2 (see batch.h, DESIGN §3).
 *
 * Bytes: a 61-byte big-endian header (layout in batch.h), then the records
 * section. Uncompressed, it is records_count records back to back, each
 *
 *   length varint | attributes i8 | timestamp_delta varlong | offset_delta varint |
 *   key_len varint (-1 null) | key | value_len varint (-1 null) | value |
 *   header_count varint | headers[]: name_len varint | name | value_len varint (-1 null) | value
 *
 * where every varint is zigzag-encoded little-endian base-128 (at most 5 bytes for
 * 32 bits, 10 for 64) and length counts the bytes after itself. With a codec
 * (gzip 1, snappy 2, lz4 3, zstd 4) the whole section is those bytes
 * compressed as the producer wrote them; protocol/codec.c reads all four
 * (snappy raw or in snappy-java's framing) under one bound.
 *
 * Rules rn_batch_check applies (after the CRC, which comes first so that a
 * flipped bit reads as corruption rather than as a malformed field):
 *  - attributes: no bit above 5, codec 0..4 (none, gzip, snappy, lz4, zstd), control only with
 *    transactional                                       -> BATCH_BAD_ATTRIBUTES
 *  - records_count >= 1, last_offset_delta >= records_count - 1 (equal unless
 *    compacted) and, uncompressed, 7 bytes a record at least -> BATCH_BAD_COUNT
 *  - timestamps >= -1 (-1 is none); base -1 means max -1; max >= base, except
 *    with LogAppendTime, where max is the broker's clock and >= 0 -> BATCH_BAD_TIMESTAMP
 *  - producer_id -1 (epoch and sequence then carry no meaning and are not
 *    checked, as Kafka's broker does: kafkajs sends epoch 0 and sequence 0)
 *    and no transaction; or id, epoch and sequence >= 0 (sequence -1 allowed on
 *    a control batch)                                     -> BATCH_BAD_PRODUCER
 * rn_batch_verify and the iterator add, per record: offset deltas strictly
 * increasing, the last one equal to last_offset_delta (BATCH_BAD_OFFSET_DELTA);
 * lengths >= -1 and within the record, header names not null, no byte left in
 * a record (BATCH_BAD_RECORD); exactly records_count records
 * (BATCH_BAD_RECORD if fewer, BATCH_TRAILING_BYTES if more).
 * rn_batch_validate, the broker's check of a produced batch, adds the batch
 * being exactly the bytes sent for it and consistent timestamps: none on any
 * record of a batch without them, else each in [0, max_timestamp] with the
 * latest equal to max_timestamp (BATCH_BAD_TIMESTAMP); and it says in words
 * which field of which record is wrong. A batch stored without this walk (an
 * older runneld checked only the header) can poison a partition for every
 * reader; with it, what the log holds decodes.
 *
 * The streaming window (rn_batch_stream) and rn_batch_validate's streamed walk
 * of a compressed batch are in batch_stream.c, the builder (encoding) in
 * batch_builder.c; what the files share (varint readers, limits, the calls
 * between them) is in batch_int.h.
 *
 * Invariants kept here:
 *  1. Nothing reads a byte before checking it lies inside the buffer: every
 *     length is compared with the bytes left before it is used, and a record's
 *     fields are read inside [record, record + length) only.
 *  2. rn_batch_check reads the header and hashes once; it never walks records,
 *     so recovery costs one CRC pass per batch. rn_batch_validate (produce)
 *     adds one pass over the records, with no allocation when uncompressed
 *     and, compressed, a bounded window (never the whole section: see
 *     "Validation of a compressed batch, streamed" in batch_stream.c).
 *  3. Decompression never allocates an output buffer larger than max_uncompressed
 *     (+1 byte in the streaming case): a frame's declared content size is checked
 *     before malloc, and the window a codec may allocate is capped to match
 *     (protocol/codec.c keeps these bounds for all four codecs).
 *  4. The CRC covers bytes 21..end, so rn_batch_stamp never re-hashes.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>

#include "protocol/bytes.h"
#include "protocol/batch.h"
#include "protocol/batch_int.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

/* The smallest batch_length: a header and nothing else. */
#define MIN_BATCH_LENGTH (RN_BATCH_HEADER_LEN - RN_BATCH_LOG_OVERHEAD)
/* ISA-L takes an int length: hash larger buffers in pieces. */
#define CRC_CHUNK ((size_t)1 << 30)

/* Read a nullable byte string (varint length, -1 = null) from [*pp, end). */
static inline int get_bytes(const uint8_t **pp, const uint8_t *end, const uint8_t **data,
                            int32_t *len)
{
    int32_t n;
    int rc = get_varint(pp, end, &n);
    if (rc)
        return rc;
    if (n < -1 || n > end - *pp)
        return -RN_E_BATCH_BAD_RECORD;
    *len = n;
    if (n < 0) {
        *data = NULL;
    } else {
        *data = *pp;
        *pp += n;
    }
    return 0;
}

/* ---- CRC ----------------------------------------------------------------- */

uint32_t rn_crc32c(const void *buf, size_t len)
{
    /* crc32_iscsi neither inverts its seed nor its result, so the running value
     * chains from one piece to the next. */
    const unsigned char *p = buf;
    uint32_t crc = 0xFFFFFFFF;
    while (len > 0) {
        size_t n = len < CRC_CHUNK ? len : CRC_CHUNK;
        crc = crc32_iscsi((unsigned char *)p, (int)n, crc);
        p += n;
        len -= n;
    }
    return crc ^ 0xFFFFFFFF;
}

/* ---- Header ------------------------------------------------------------ */

static void decode_header(const uint8_t *p, rn_batch_header *h)
{
    h->base_offset = (int64_t)rn_get_be64(p + RN_BATCH_OFF_BASE_OFFSET);
    h->batch_length = (int32_t)rn_get_be32(p + RN_BATCH_OFF_LENGTH);
    h->partition_leader_epoch = (int32_t)rn_get_be32(p + RN_BATCH_OFF_LEADER_EPOCH);
    h->magic = (int8_t)p[RN_BATCH_OFF_MAGIC];
    h->crc = rn_get_be32(p + RN_BATCH_OFF_CRC);
    h->attributes = (int16_t)rn_get_be16(p + RN_BATCH_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)rn_get_be32(p + RN_BATCH_OFF_LAST_OFFSET_DELTA);
    h->base_timestamp = (int64_t)rn_get_be64(p + RN_BATCH_OFF_BASE_TIMESTAMP);
    h->max_timestamp = (int64_t)rn_get_be64(p + RN_BATCH_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)rn_get_be64(p + RN_BATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)rn_get_be16(p + RN_BATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)rn_get_be32(p + RN_BATCH_OFF_BASE_SEQUENCE);
    h->records_count = (int32_t)rn_get_be32(p + RN_BATCH_OFF_RECORDS_COUNT);
}

int rn_batch_peek(const void *buf, size_t len, size_t max_len, rn_batch_header *h)
{
    if (len < RN_BATCH_HEADER_LEN)
        return -RN_E_BATCH_TRUNCATED;
    rn_batch_header hh;
    decode_header(buf, &hh);
    if (hh.magic != RN_BATCH_MAGIC)
        return -RN_E_BATCH_BAD_MAGIC;
    if (hh.batch_length < MIN_BATCH_LENGTH)
        return -RN_E_BATCH_BAD_LENGTH;
    if (max_len == 0)
        max_len = MAX_BATCH_SIZE;
    if (rn_batch_size(&hh) > max_len)
        return -RN_E_MESSAGE_TOO_LARGE;
    if (h)
        *h = hh;
    return 0;
}

/* The field rules rn_batch_check applies once the CRC matched. */
static int check_fields(const rn_batch_header *h)
{
    uint16_t attr = (uint16_t)h->attributes;
    int codec = attr & RN_BATCH_CODEC_MASK;
    if ((attr & ~RN_BATCH_ATTR_KNOWN) || codec > RN_BATCH_CODEC_ZSTD)
        return -RN_E_BATCH_BAD_ATTRIBUTES;
    bool control = attr & RN_BATCH_ATTR_CONTROL;
    if (control && !(attr & RN_BATCH_ATTR_TRANSACTIONAL))
        return -RN_E_BATCH_BAD_ATTRIBUTES;

    /* Offsets: records_count of them, strictly increasing within
     * [0, last_offset_delta] (equal to count - 1 unless compacted), and each
     * record takes at least MIN_RECORD_LEN bytes when stored uncompressed. */
    if (h->records_count < 1 || h->last_offset_delta < h->records_count - 1)
        return -RN_E_BATCH_BAD_COUNT;
    if (codec == RN_BATCH_CODEC_NONE && (uint64_t)h->records_count * MIN_RECORD_LEN >
                                            (uint64_t)(h->batch_length - MIN_BATCH_LENGTH))
        return -RN_E_BATCH_BAD_COUNT;

    /* Timestamps: -1 means none. With LogAppendTime the broker's clock set
     * max_timestamp, which need not be after the producer's base. */
    if (h->base_timestamp < -1 || h->max_timestamp < -1)
        return -RN_E_BATCH_BAD_TIMESTAMP;
    if (attr & RN_BATCH_ATTR_LOG_APPEND_TIME) {
        if (h->max_timestamp < 0)
            return -RN_E_BATCH_BAD_TIMESTAMP;
    } else if (h->base_timestamp == -1 ? h->max_timestamp != -1
                                       : h->max_timestamp < h->base_timestamp) {
        return -RN_E_BATCH_BAD_TIMESTAMP;
    }

    /* Producer: -1 (not idempotent) or all set; a transaction marker
     * (control batch) carries no sequence. Without a producer id the epoch and
     * sequence are ignored, not refused: Kafka's LogValidator checks the
     * sequence only of a batch that has a producer id, and kafkajs's plain
     * producer writes epoch 0 and sequence 0 there. */
    if (h->producer_id == -1) {
        if (attr & RN_BATCH_ATTR_TRANSACTIONAL)
            return -RN_E_BATCH_BAD_PRODUCER;
    } else if (h->producer_id < 0 || h->producer_epoch < 0 ||
               (h->base_sequence < 0 && !(control && h->base_sequence == -1))) {
        return -RN_E_BATCH_BAD_PRODUCER;
    }
    return 0;
}

int rn_batch_check(const void *buf, size_t len, size_t max_len, rn_batch_header *h)
{
    rn_batch_header hh;
    int rc = rn_batch_peek(buf, len, max_len, &hh);
    if (rc)
        return rc;
    size_t size = rn_batch_size(&hh);
    if (len < size)
        return -RN_E_BATCH_TRUNCATED;
    /* The CRC first: a flipped bit is corruption, not a malformed field. */
    const uint8_t *p = buf;
    if (rn_crc32c(p + RN_BATCH_CRC_START, size - RN_BATCH_CRC_START) != hh.crc)
        return -RN_E_BATCH_BAD_CRC;
    rc = check_fields(&hh);
    if (rc)
        return rc;
    if (h)
        *h = hh;
    return 0;
}

void rn_batch_stamp(void *buf, int64_t base_offset, int32_t partition_leader_epoch)
{
    uint8_t *p = buf;
    rn_put_be64(p + RN_BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
    rn_put_be32(p + RN_BATCH_OFF_LEADER_EPOCH, (uint32_t)partition_leader_epoch);
}

/* ---- Decompression -------------------------------------------------------- */

/* The records section of a compressed batch (codec 1..4), decompressed
 * whole through protocol/codec.c into *out (malloc'd), at most max_out
 * bytes (0 = 64 MiB). err (may be NULL) says why it failed. */
static int decompress_records(int codec, const uint8_t *src, size_t src_len, size_t max_out,
                              uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    if (max_out == 0)
        max_out = DEFAULT_MAX_UNCOMPRESSED;
    return rn_codec_decompress(codec, src, src_len, max_out, out, out_len, err, errlen);
}

/* ---- Iteration ----------------------------------------------------------- */

/* Set up it over the batch at p whose header h passed rn_batch_check. */
static int iter_start(rn_batch_iter *it, const uint8_t *p, const rn_batch_header *h,
                      size_t max_uncompressed, char *err, size_t errlen)
{
    it->h = *h;
    it->owned = NULL;
    it->left = h->records_count;
    it->prev_delta = -1;
    it->pos = p + RN_BATCH_HEADER_LEN;
    it->end = p + rn_batch_size(h);
    int codec = h->attributes & RN_BATCH_CODEC_MASK;
    if (codec != RN_BATCH_CODEC_NONE) {
        size_t n;
        int rc = decompress_records(codec, it->pos, (size_t)(it->end - it->pos), max_uncompressed,
                                    &it->owned, &n, err, errlen);
        if (rc)
            return rc;
        it->pos = it->owned;
        it->end = it->owned + n;
    }
    return 0;
}

int rn_batch_iter_init(rn_batch_iter *it, const void *buf, size_t len, size_t max_uncompressed)
{
    rn_batch_header h;
    it->owned = NULL;
    int rc = rn_batch_check(buf, len, 0, &h);
    if (rc)
        return rc;
    return iter_start(it, buf, &h, max_uncompressed, NULL, 0);
}

int rn_record_header_next(const uint8_t **pos, const uint8_t *end, rn_record_header *hdr)
{
    const uint8_t *p = *pos;
    if (p >= end)
        return 0;
    int rc = get_bytes(&p, end, &hdr->name, &hdr->name_len);
    if (rc)
        return rc;
    if (hdr->name_len < 0) /* Kafka: a header key is never null */
        return -RN_E_BATCH_BAD_RECORD;
    rc = get_bytes(&p, end, &hdr->value, &hdr->value_len);
    if (rc)
        return rc;
    *pos = p;
    return 1;
}

/* Say why a record is malformed: err may be NULL (the iterator's hot path,
 * where only the code matters), so the message costs nothing unless asked. */
int rn__batch_bad(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Say why get_bytes refused the field at start (kept out of line: only
 * malformed records get here). */
__attribute__((noinline)) int rn__batch_explain_field(int rc, const uint8_t *start,
                                                      const uint8_t *end, const char *what,
                                                      int32_t hdr, char *err, size_t errlen)
{
    char name[48];
    if (hdr >= 0)
        snprintf(name, sizeof(name), "header %" PRId32 " %s", hdr, what);
    else
        snprintf(name, sizeof(name), "%s", what);
    int32_t n;
    if (rc == -RN_E_BATCH_BAD_VARINT || get_varint(&start, end, &n))
        return rn__batch_bad(rc, err, errlen,
                             "%s length varint malformed or cut off by the record's end", name);
    return rn__batch_bad(rc, err, errlen,
                         n < -1 ? "%s length %" PRId32 " is negative (only -1, null, is allowed)"
                                : "%s of %" PRId32 " bytes runs past the record's end",
                         name, n);
}

/* A nullable byte string of a record (key, value, a header's name or value),
 * with the reason when it is malformed: what names it, prefixed with
 * "header <hdr> " when hdr >= 0. The reason is only formatted on failure. */
static inline __attribute__((always_inline)) int get_field(const uint8_t **pp, const uint8_t *end,
                                                           const uint8_t **data, int32_t *len,
                                                           const char *what, int32_t hdr, char *err,
                                                           size_t errlen)
{
    const uint8_t *start = *pp;
    int rc = get_bytes(pp, end, data, len);
    if (__builtin_expect(rc == 0, 1) || !err)
        return rc;
    return rn__batch_explain_field(rc, start, end, what, hdr, err, errlen);
}

/* Decode the record at it->pos into rec (rn_batch_iter_next's work), and when
 * err is not NULL say in it what is wrong with a malformed one. */
static inline __attribute__((always_inline)) int next_record(rn_batch_iter *it, rn_record *rec,
                                                             char *err, size_t errlen)
{
    if (it->left <= 0)
        return it->pos == it->end ? 0
                                  : rn__batch_bad(-RN_E_BATCH_TRAILING_BYTES, err, errlen,
                                                  "%td bytes after the last of %" PRId32 " records",
                                                  it->end - it->pos, it->h.records_count);
    const uint8_t *p = it->pos, *end = it->end;
    if (p >= end) /* fewer records than records_count */
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, err, errlen,
                             "missing: the records end here but records_count is %" PRId32,
                             it->h.records_count);

    int32_t len;
    int rc = get_varint(&p, end, &len);
    if (rc)
        return rn__batch_bad(rc, err, errlen, "length varint malformed or cut off");
    if (len < MIN_RECORD_BODY || len > end - p)
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, err, errlen,
                             len < MIN_RECORD_BODY
                                 ? "length %" PRId32 " is below the %d-byte minimum"
                                 : "length %" PRId32 " runs past the end of the records",
                             len, MIN_RECORD_BODY);
    /* From here on every field is read inside the record's own bytes. */
    const uint8_t *rend = p + len;
    int8_t attributes = (int8_t)*p++;
    int64_t ts_delta;
    int32_t offset_delta;
    if ((rc = get_varlong(&p, rend, &ts_delta)))
        return rn__batch_bad(rc, err, errlen, "timestamp_delta varint malformed or cut off");
    if ((rc = get_varint(&p, rend, &offset_delta)))
        return rn__batch_bad(rc, err, errlen, "offset_delta varint malformed or cut off");
    if (offset_delta <= it->prev_delta)
        return rn__batch_bad(-RN_E_BATCH_BAD_OFFSET_DELTA, err, errlen,
                             "offset_delta %" PRId32 " does not follow %" PRId32
                             " (deltas must increase)",
                             offset_delta, it->prev_delta);
    if (offset_delta > it->h.last_offset_delta)
        return rn__batch_bad(-RN_E_BATCH_BAD_OFFSET_DELTA, err, errlen,
                             "offset_delta %" PRId32 " is past last_offset_delta %" PRId32,
                             offset_delta, it->h.last_offset_delta);
    if (it->left == 1 && offset_delta != it->h.last_offset_delta)
        return rn__batch_bad(-RN_E_BATCH_BAD_OFFSET_DELTA, err, errlen,
                             "the last record's offset_delta %" PRId32
                             " is not last_offset_delta %" PRId32,
                             offset_delta, it->h.last_offset_delta);

    /* Set by get_field on success; initialised for GCC, which cannot see
     * that once next_record is inlined into rn__batch_next_record, the
     * streaming validation's entry (batch_stream.c). */
    const uint8_t *key = NULL, *value = NULL;
    int32_t key_len = 0, value_len = 0, n_headers;
    if ((rc = get_field(&p, rend, &key, &key_len, "key", -1, err, errlen)) ||
        (rc = get_field(&p, rend, &value, &value_len, "value", -1, err, errlen)))
        return rc;
    if ((rc = get_varint(&p, rend, &n_headers)))
        return rn__batch_bad(rc, err, errlen, "header count varint malformed or cut off");
    if (n_headers < 0 || n_headers > (rend - p) / MIN_HEADER_LEN)
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, err, errlen,
                             n_headers < 0 ? "header count %" PRId32 " is negative"
                                           : "header count %" PRId32 " cannot fit in the record",
                             n_headers);
    const uint8_t *headers = p;
    for (int32_t i = 0; i < n_headers; i++) {
        rn_record_header hdr = {0};
        if ((rc = get_field(&p, rend, &hdr.name, &hdr.name_len, "name", i, err, errlen)))
            return rc;
        if (hdr.name_len < 0) /* Kafka: a header key is never null */
            return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, err, errlen,
                                 "header %" PRId32 " name is null", i);
        if ((rc = get_field(&p, rend, &hdr.value, &hdr.value_len, "value", i, err, errlen)))
            return rc;
    }
    if (p != rend)
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, err, errlen,
                             "%td bytes left inside the record after its headers", rend - p);

    int64_t timestamp;
    if (it->h.attributes & RN_BATCH_ATTR_LOG_APPEND_TIME)
        timestamp = it->h.max_timestamp;
    else if (__builtin_add_overflow(it->h.base_timestamp, ts_delta, &timestamp))
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, err, errlen,
                             "timestamp_delta %" PRId64 " overflows base_timestamp %" PRId64,
                             ts_delta, it->h.base_timestamp);

    /* base_offset is the leader's stamp; wrap rather than overflow on junk. */
    rec->offset = (int64_t)((uint64_t)it->h.base_offset + (uint64_t)offset_delta);
    rec->timestamp = timestamp;
    rec->offset_delta = offset_delta;
    rec->attributes = attributes;
    rec->key = key;
    rec->key_len = key_len;
    rec->value = value;
    rec->value_len = value_len;
    rec->n_headers = n_headers;
    rec->headers = headers;
    rec->headers_len = (size_t)(rend - headers);
    it->pos = rend;
    it->left--;
    it->prev_delta = offset_delta;
    return 1;
}

int rn_batch_iter_next(rn_batch_iter *it, rn_record *rec)
{
    return next_record(it, rec, NULL, 0);
}

/* next_record for batch_stream.c's walk of a compressed batch, which wants the
 * reasons; the iterator above keeps its own copy inlined. */
int rn__batch_next_record(rn_batch_iter *it, rn_record *rec, char *err, size_t errlen)
{
    return next_record(it, rec, err, errlen);
}

void rn_batch_iter_fini(rn_batch_iter *it)
{
    free(it->owned);
    it->owned = NULL;
    it->pos = it->end = NULL;
    it->left = 0;
}

int rn_batch_verify(const void *buf, size_t len, size_t max_len, size_t max_uncompressed)
{
    rn_batch_header h;
    int rc = rn_batch_check(buf, len, max_len, &h);
    if (rc)
        return rc;
    rn_batch_iter it;
    rc = iter_start(&it, buf, &h, max_uncompressed, NULL, 0);
    if (rc)
        return rc;
    rn_record rec;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1)
        ;
    rn_batch_iter_fini(&it);
    return rc;
}

/* ---- Validation on produce ------------------------------------------------ */

/* Say what rn_batch_check found wrong with the header at p (rc its error). */
static int explain_header(int rc, const uint8_t *p, size_t len, size_t max_len, char *err,
                          size_t errlen)
{
    if (len < RN_BATCH_HEADER_LEN)
        return rn__batch_bad(rc, err, errlen, "%zu bytes are shorter than the %d-byte batch header",
                             len, RN_BATCH_HEADER_LEN);
    rn_batch_header h;
    decode_header(p, &h);
    size_t size = rn_batch_size(&h);
    switch (-rc) {
    case RN_E_BATCH_BAD_MAGIC:
        return rn__batch_bad(rc, err, errlen, "magic %d, not %d", h.magic, RN_BATCH_MAGIC);
    case RN_E_BATCH_BAD_LENGTH:
        return rn__batch_bad(rc, err, errlen,
                             "batch_length %" PRId32 " is below the header's %d bytes",
                             h.batch_length, MIN_BATCH_LENGTH);
    case RN_E_MESSAGE_TOO_LARGE:
        return rn__batch_bad(rc, err, errlen,
                             "a batch of %zu bytes is larger than max.message.bytes (%zu)", size,
                             max_len);
    case RN_E_BATCH_TRUNCATED:
        return rn__batch_bad(rc, err, errlen, "batch_length says %zu bytes but only %zu came", size,
                             len);
    case RN_E_BATCH_BAD_CRC:
        return rn__batch_bad(rc, err, errlen,
                             "header CRC-32C 0x%08" PRIx32 ", the bytes give 0x%08" PRIx32, h.crc,
                             rn_crc32c(p + RN_BATCH_CRC_START, size - RN_BATCH_CRC_START));
    case RN_E_BATCH_BAD_ATTRIBUTES:
        return rn__batch_bad(rc, err, errlen, "attributes 0x%04" PRIx16 " (codec %d)",
                             (uint16_t)h.attributes, h.attributes & RN_BATCH_CODEC_MASK);
    case RN_E_BATCH_BAD_COUNT:
        return rn__batch_bad(rc, err, errlen,
                             "records_count %" PRId32 " with last_offset_delta %" PRId32
                             " in %zu bytes",
                             h.records_count, h.last_offset_delta, size);
    case RN_E_BATCH_BAD_TIMESTAMP:
        return rn__batch_bad(rc, err, errlen, "base_timestamp %" PRId64 ", max_timestamp %" PRId64,
                             h.base_timestamp, h.max_timestamp);
    case RN_E_BATCH_BAD_PRODUCER:
        return rn__batch_bad(rc, err, errlen,
                             "producer_id %" PRId64 ", producer_epoch %d, base_sequence %" PRId32,
                             h.producer_id, h.producer_epoch, h.base_sequence);
    default:
        return rn__batch_bad(rc, err, errlen, "%s", rn_strerror(rc));
    }
}

int rn_batch_validate(const void *buf, size_t len, size_t max_len, size_t max_uncompressed,
                      rn_batch_header *h, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    const uint8_t *p = buf;
    rn_batch_header hh;
    int rc = rn_batch_check(buf, len, max_len, &hh);
    if (rc)
        return explain_header(rc, p, len, max_len ? max_len : MAX_BATCH_SIZE, err, errlen);
    size_t size = rn_batch_size(&hh);
    if (size != len)
        return rn__batch_bad(-RN_E_BATCH_BAD_LENGTH, err, errlen,
                             "batch_length says %zu bytes but %zu were sent for it", size, len);
    if (max_uncompressed == 0)
        max_uncompressed = DEFAULT_MAX_UNCOMPRESSED;

    rn__batch_ts_rules tr = {.create_time = !(hh.attributes & RN_BATCH_ATTR_LOG_APPEND_TIME),
                             .has_ts = hh.base_timestamp != -1,
                             .max_timestamp = hh.max_timestamp,
                             .latest = -1};
    int32_t i = 0;
    char why[192] = "";
    bool whole = false; /* why is the whole reason, not one record's */
    if ((hh.attributes & RN_BATCH_CODEC_MASK) != RN_BATCH_CODEC_NONE) {
        /* Streamed through a small window, never decompressed whole. */
        rc = rn__batch_validate_compressed(p, &hh, max_uncompressed, &tr, &i, why, sizeof(why),
                                           &whole);
    } else {
        /* In place: the records are the batch's own bytes, nothing allocated. */
        rn_batch_iter it;
        iter_start(&it, p, &hh, max_uncompressed, NULL, 0);
        rn_record rec = {0};
        while ((rc = next_record(&it, &rec, err ? why : NULL, sizeof(why))) == 1) {
            if ((rc = rn__batch_check_timestamp(&tr, rec.timestamp, why, sizeof(why))))
                break;
            i++;
        }
        rn_batch_iter_fini(&it);
    }
    if (rc == -ENOMEM)
        return rn__batch_bad(rc, err, errlen, "%s",
                             whole ? "out of memory decompressing the records" : "out of memory");
    if (rc < 0) {
        if (whole)
            return rn__batch_bad(rc, err, errlen, "%s", why);
        if (i >= hh.records_count) /* past the last record: about the section, not a record */
            return rn__batch_bad(rc, err, errlen, "records: %s", why);
        return rn__batch_bad(rc, err, errlen,
                             "record %" PRId32 " of %" PRId32 " (counted from 0): %s", i,
                             hh.records_count, why);
    }
    if (tr.create_time && tr.has_ts && tr.latest != hh.max_timestamp)
        return rn__batch_bad(-RN_E_BATCH_BAD_TIMESTAMP, err, errlen,
                             "max_timestamp %" PRId64
                             " but the latest record's timestamp is %" PRId64,
                             hh.max_timestamp, tr.latest);
    if (h)
        *h = hh;
    return 0;
}
