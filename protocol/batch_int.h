/*
 * batch_int.h — what the files of the record batch codec share: the varint
 * readers, the size limits, and the calls between batch.c and batch_stream.c.
 * Not for use outside protocol/batch*.c; the API is protocol/batch.h.
 *
 *   batch.c          the header check, the in-place iterator, verification
 *                    and rn_batch_validate (produce).
 *   batch_builder.c  the builder: records encoded into a new batch.
 *   batch_stream.c   the streaming window (rn_batch_stream) and, over it, the
 *                    walk rn_batch_validate makes of a compressed batch.
 *
 * Both decode records by the one set of rules in batch.c (next_record, reached
 * from batch_stream.c through rn__batch_next_record), so the in-place and the
 * streamed walks accept and refuse the same records with the same words.
 */
#ifndef RN_BATCH_INT_H
#define RN_BATCH_INT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "protocol/errors.h"

/* The smallest record body: attributes and five one-byte varints. */
#define MIN_RECORD_BODY 6
/* The smallest record: its length varint and the body. */
#define MIN_RECORD_LEN (1 + MIN_RECORD_BODY)
/* The smallest record header: name_len and value_len, one byte each. */
#define MIN_HEADER_LEN           2
#define DEFAULT_MAX_UNCOMPRESSED ((size_t)64 << 20)
/* A whole batch stays within what batch_length and message.max.bytes can say. */
#define MAX_BATCH_SIZE ((size_t)INT32_MAX)

/* ---- Zigzag varints (reading) ---------------------------------------------- */

/* Read a zigzag varint of at most 5 bytes from [*pp, end). A sixth byte, bits
 * beyond 32 in the fifth, or running into end are -RN_E_BATCH_BAD_VARINT. */
static inline int get_varint(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
    const uint8_t *p = *pp;
    uint32_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (p >= end)
            return -RN_E_BATCH_BAD_VARINT;
        uint8_t b = *p++;
        if (i == 4 && b > 0x0f)
            return -RN_E_BATCH_BAD_VARINT;
        v |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int32_t)((v >> 1) ^ -(v & 1));
            *pp = p;
            return 0;
        }
    }
    return -RN_E_BATCH_BAD_VARINT; /* not reached: the fifth byte has no continuation bit */
}

/* The same for a varlong of at most 10 bytes. */
static inline int get_varlong(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end)
            return -RN_E_BATCH_BAD_VARINT;
        uint8_t b = *p++;
        if (i == 9 && b > 0x01)
            return -RN_E_BATCH_BAD_VARINT;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ -(v & 1));
            *pp = p;
            return 0;
        }
    }
    return -RN_E_BATCH_BAD_VARINT;
}

/* ---- Reasons (batch.c) ------------------------------------------------------ */

/* Say why a record is malformed: err may be NULL (the iterator's hot path,
 * where only the code matters), so the message costs nothing unless asked.
 * Returns rc. */
__attribute__((format(printf, 4, 5))) int rn__batch_bad(int rc, char *err, size_t errlen,
                                                        const char *fmt, ...);

/* Say why get_varint/get_bytes refused the field at [start, end): what names
 * it, prefixed with "header <hdr> " when hdr >= 0. Returns rc. */
int rn__batch_explain_field(int rc, const uint8_t *start, const uint8_t *end, const char *what,
                            int32_t hdr, char *err, size_t errlen);

/* ---- Records (batch.c) ------------------------------------------------------ */

/* Decode the record at it->pos, which must end at or before it->end, into rec
 * by rn_batch_iter_next's rules: 1 with rec (borrowing it->pos's bytes), 0 at
 * the end, or an error with the reason in err (may be NULL). */
int rn__batch_next_record(rn_batch_iter *it, rn_record *rec, char *err, size_t errlen);

/* ---- Timestamps on produce (batch.c's rn_batch_validate) ------------------- */

/* The timestamp rules (CreateTime): none at all (base -1, every delta 0),
 * or every record's within [0, max_timestamp] and the latest equal to it,
 * since the time index takes max_timestamp on trust. LogAppendTime records
 * read the broker's clock, whatever their deltas say. */
typedef struct rn__batch_ts_rules {
    bool create_time, has_ts;
    int64_t max_timestamp, latest;
} rn__batch_ts_rules;

/* Apply the rules to one record's timestamp: 0, or -RN_E_BATCH_BAD_TIMESTAMP
 * with the reason in why. Inline: both walks call it once per record. */
static inline int rn__batch_check_timestamp(rn__batch_ts_rules *t, int64_t ts, char *why,
                                            size_t whylen)
{
    if (!t->create_time)
        return 0;
    if (!t->has_ts && ts != -1)
        return rn__batch_bad(
            -RN_E_BATCH_BAD_TIMESTAMP, why, whylen,
            "timestamp %" PRId64 " in a batch without timestamps (base_timestamp -1)", ts);
    if (t->has_ts && (ts < 0 || ts > t->max_timestamp))
        return rn__batch_bad(-RN_E_BATCH_BAD_TIMESTAMP, why, whylen,
                             "timestamp %" PRId64 " is outside [0, max_timestamp %" PRId64 "]", ts,
                             t->max_timestamp);
    if (ts > t->latest)
        t->latest = ts;
    return 0;
}

/* ---- The streamed walk of a compressed batch (batch_stream.c) -------------- */

/* rn_batch_validate's walk of the compressed batch at p, whose header h passed
 * rn_batch_check, through a bounded window (never decompressed whole; at most
 * max_out bytes in all). *n_ok counts the records that passed; on an error why
 * holds the reason, and *whole says it is the whole reason (a fault of the
 * compression, or -ENOMEM) rather than one record's. */
int rn__batch_validate_compressed(const uint8_t *p, const rn_batch_header *h, size_t max_out,
                                  rn__batch_ts_rules *tr, int32_t *n_ok, char *why, size_t whylen,
                                  bool *whole);

#endif
