/*
 * batch_stream.c — the record batch codec's streaming window (rn_batch_stream,
 * see batch.h) and, over it, the walk rn_batch_validate makes of a compressed
 * batch on produce.
 *
 * How it fits: batch.c holds the header check, the in-place iterator and
 * rn_batch_validate; this file is the part of the codec that decompresses a
 * batch a record at a time instead of whole (protocol/codec.c's streaming
 * readers), for the HTTP gateways that render records and for validating a
 * compressed produce without expanding a bomb. Each record held whole in the
 * window is decoded by batch.c's rules (rn__batch_next_record), so the two
 * walks accept and refuse the same records with the same words; what the
 * files share is in batch_int.h.
 *
 * Invariants kept here:
 *  1. Memory is the window (the largest record looked at, bounded by
 *     max_record, plus STREAM_CHUNK) and the codec's own state, whatever the
 *     batch expands to; the reader stops one byte past max_out.
 *  2. Nothing is read outside [win + head, win + tail); a record is returned
 *     only once all of its bytes are in the window.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/batch.h"
#include "protocol/batch_int.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

/* ---- Streaming iteration -------------------------------------------------
 *
 * rn_batch_iter decompresses a batch whole before the first record; a
 * reader that renders records (the HTTP gateways) cannot afford that: a
 * 10 KB batch can hold 64 MiB. rn_batch_stream decompresses into a window
 * that holds the record being decoded and a little more, so memory is the
 * largest record looked at (bounded by max_record) plus the codec's own state,
 * and the caller can stop after any record. Records below `from` are passed
 * over by their length without being buffered whole or decoded.
 *
 * Each returned record is decoded by rn_batch_iter_next over exactly its own
 * bytes in the window, so the two iterators apply the same rules. */

/* Room added to the window beyond the record it must hold: each
 * decompression call fills at least this much. */
#define STREAM_CHUNK ((size_t)64 << 10)
/* Enough of a record to read its attributes, timestamp and offset delta. */
#define RECORD_PEEK (1 + 10 + 5)

/* Set s up over the batch at p whose header h passed rn_batch_check: the
 * window is the batch itself when uncompressed; compressed, only the codec's
 * reader is made (its frame header checked, err says why it was refused). */
static int stream_open(rn_batch_stream *s, const uint8_t *p, const rn_batch_header *h,
                       size_t max_uncompressed, size_t max_record, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->it.h = *h;
    s->it.left = h->records_count;
    s->it.prev_delta = -1;
    s->max_record = max_record ? max_record : DEFAULT_MAX_UNCOMPRESSED;
    s->max_out = max_uncompressed ? max_uncompressed : DEFAULT_MAX_UNCOMPRESSED;
    const uint8_t *rec = p + RN_BATCH_HEADER_LEN;
    size_t rec_len = rn_batch_size(h) - RN_BATCH_HEADER_LEN;
    int codec = h->attributes & RN_BATCH_CODEC_MASK;
    if (codec == RN_BATCH_CODEC_NONE) {
        /* Uncompressed: the window is the batch itself, never written. */
        s->win = (uint8_t *)rec;
        s->tail = rec_len;
        s->frame_done = true;
        return 0;
    }
    /* The frame's header (and a declared size within the bound) is checked
     * before anything is decompressed or any window allocated. */
    return rn_codec_reader_new(&s->dec, codec, rec, rec_len, s->max_out, err, errlen);
}

int rn_batch_stream_init(rn_batch_stream *s, const void *buf, size_t len, size_t max_uncompressed,
                         size_t max_record)
{
    memset(s, 0, sizeof(*s));
    rn_batch_header h;
    int rc = rn_batch_check(buf, len, 0, &h);
    if (rc)
        return rc;
    rc = stream_open(s, buf, &h, max_uncompressed, max_record, NULL, 0);
    if (rc || !s->dec)
        return rc;
    /* records_count against the bytes the frame can hold (what check_fields
     * does for an uncompressed batch): a count that cannot fit is an error
     * here, before anything is decompressed or allocated. */
    uint64_t n = rn_codec_reader_declared(s->dec);
    uint64_t room = n == RN_CODEC_SIZE_UNKNOWN ? s->max_out : n;
    if ((uint64_t)h.records_count * MIN_RECORD_LEN > room) {
        rn_codec_reader_free(s->dec);
        s->dec = NULL;
        return -RN_E_BATCH_BAD_COUNT;
    }
    return 0;
}

/* Make at least need bytes available at win + head, unless the frame ends
 * first (the caller checks what it got). Moves the window's contents. */
static int stream_fill(rn_batch_stream *s, size_t need)
{
    while (s->tail - s->head < need && !s->frame_done) {
        size_t have = s->tail - s->head;
        if (s->head > 0 && (s->cap - s->tail < STREAM_CHUNK || s->cap - s->head < need)) {
            memmove(s->win, s->win + s->head, have);
            s->head = 0;
            s->tail = have;
        }
        if (s->cap - s->tail < STREAM_CHUNK / 2 || s->cap < need) {
            size_t cap = need + STREAM_CHUNK;
            if (cap < s->cap * 2)
                cap = s->cap * 2;
            if (cap > s->max_record + RECORD_PEEK + STREAM_CHUNK)
                cap = s->max_record + RECORD_PEEK + STREAM_CHUNK;
            if (cap < need)
                return -RN_E_MESSAGE_TOO_LARGE; /* callers bound need first */
            if (cap > s->cap) {
                uint8_t *nw = realloc(s->owned_win, cap);
                if (!nw)
                    return -ENOMEM;
                s->owned_win = s->win = nw;
                s->cap = cap;
            }
        }
        /* The reader makes progress on every call and stops one byte past
         * max_out (BAD_COMPRESSION), so this loop ends. */
        size_t got;
        bool done = false;
        int rc = rn_codec_reader_read(s->dec, s->win + s->tail, s->cap - s->tail, &got, &done);
        if (rc)
            return rc;
        s->tail += got;
        s->out_total += got;
        s->frame_done = done;
    }
    return 0;
}

/* Drop n bytes from the front, decompressing through them if needed. */
static int stream_discard(rn_batch_stream *s, size_t n)
{
    while (n > 0) {
        if (s->head == s->tail) {
            int rc = stream_fill(s, n < STREAM_CHUNK ? n : STREAM_CHUNK);
            if (rc)
                return rc;
            if (s->head == s->tail)
                return -RN_E_BATCH_BAD_RECORD; /* the record runs past the end */
        }
        size_t take = s->tail - s->head < n ? s->tail - s->head : n;
        s->head += take;
        n -= take;
    }
    return 0;
}

int rn_batch_stream_next(rn_batch_stream *s, int64_t from, rn_record *rec)
{
    for (;;) {
        int rc;
        if (s->it.left <= 0) {
            if ((rc = stream_fill(s, 1)))
                return rc;
            return s->head == s->tail ? 0 : -RN_E_BATCH_TRAILING_BYTES;
        }
        if ((rc = stream_fill(s, 5)))
            return rc;
        if (s->head == s->tail)
            return -RN_E_BATCH_BAD_RECORD; /* fewer records than records_count */
        const uint8_t *p = s->win + s->head;
        int32_t len;
        if ((rc = get_varint(&p, s->win + s->tail, &len)))
            return rc;
        size_t vlen = (size_t)(p - (s->win + s->head));
        if (len < MIN_RECORD_BODY)
            return -RN_E_BATCH_BAD_RECORD;
        /* Peek at the offset delta to decide, before buffering the record. */
        size_t peek = (size_t)len < RECORD_PEEK ? (size_t)len : RECORD_PEEK;
        if ((rc = stream_fill(s, vlen + peek)))
            return rc;
        if (s->tail - s->head < vlen + peek)
            return -RN_E_BATCH_BAD_RECORD;
        const uint8_t *q = s->win + s->head + vlen + 1, *qend = s->win + s->head + vlen + peek;
        int64_t ts_delta;
        int32_t delta;
        if ((rc = get_varlong(&q, qend, &ts_delta)) || (rc = get_varint(&q, qend, &delta)))
            return rc;
        if (delta <= s->it.prev_delta || delta > s->it.h.last_offset_delta ||
            (s->it.left == 1 && delta != s->it.h.last_offset_delta))
            return -RN_E_BATCH_BAD_OFFSET_DELTA;
        int64_t offset = (int64_t)((uint64_t)s->it.h.base_offset + (uint64_t)delta);
        if (offset < from) {
            if ((rc = stream_discard(s, vlen + (size_t)len)))
                return rc;
            s->it.left--;
            s->it.prev_delta = delta;
            continue;
        }
        if ((size_t)len > s->max_record) {
            rec->offset = offset;
            return -RN_E_MESSAGE_TOO_LARGE;
        }
        if ((rc = stream_fill(s, vlen + (size_t)len)))
            return rc;
        if (s->tail - s->head < vlen + (size_t)len)
            return -RN_E_BATCH_BAD_RECORD;
        s->it.pos = s->win + s->head;
        s->it.end = s->it.pos + vlen + (size_t)len;
        rc = rn_batch_iter_next(&s->it, rec);
        if (rc != 1)
            return rc < 0 ? rc : -RN_E_BATCH_BAD_RECORD;
        s->head += vlen + (size_t)len;
        s->consumed += vlen + (size_t)len;
        return 1;
    }
}

size_t rn_batch_stream_consumed(const rn_batch_stream *s)
{
    return s->consumed;
}

void rn_batch_stream_fini(rn_batch_stream *s)
{
    rn_codec_reader_free(s->dec);
    free(s->owned_win);
    memset(s, 0, sizeof(*s));
}

/* ---- Validation of a compressed batch, streamed ---------------------------
 *
 * rn_batch_validate used to decompress a compressed batch whole before
 * walking it: up to max_uncompressed (64 MiB on produce) per batch, for a
 * 10 KB bomb. It now streams the records section through rn_batch_stream's
 * window instead, so a validation holds at most VALIDATE_RECORD_MAX +
 * STREAM_CHUNK bytes of records plus the codec's own state, whatever the
 * batch expands to, and refuses the same batches with the same words:
 *
 *  - a record that fits the window is decoded by next_record over its own
 *    bytes, exactly as the in-place walk does;
 *  - a longer one (walk_large) is read field by field as it streams past,
 *    its key, value and header bytes passed over by their lengths, with
 *    next_record's rules and reasons;
 *  - the old walk only began once the whole section had decompressed, so a
 *    fault of the compression (corrupt frame, more than the bound, a size
 *    that lies) outranked any record's. Here, once a record is found wrong,
 *    the rest of the frame is still read through (into the same window,
 *    discarded) and a compression fault found there is the one reported. */

/* Longest record held whole in the window while validating; longer ones are
 * walked as they stream past (walk_large). */
#define VALIDATE_RECORD_MAX ((size_t)256 << 10)
/* The window allocated for it up front (it grows to VALIDATE_RECORD_MAX +
 * RECORD_PEEK + STREAM_CHUNK only for a record that needs it). */
#define VALIDATE_WINDOW ((size_t)256 << 10)

/* Read the rest of the frame through the window, keeping nothing: what is
 * left to check for compression faults once a record error is known. */
static int stream_drain(rn_batch_stream *s)
{
    while (!s->frame_done) {
        s->head = s->tail;
        int rc = stream_fill(s, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* The next n <= 10 bytes of a record with rem bytes left (fewer when rem is
 * smaller) at [*p, *end). 1 when the records end first (the record runs past
 * them), else 0 or the reader's error. */
static int large_peek(rn_batch_stream *s, size_t rem, size_t n, const uint8_t **p,
                      const uint8_t **end)
{
    if (n > rem)
        n = rem;
    int rc = stream_fill(s, n);
    if (rc)
        return rc;
    if (s->tail - s->head < n)
        return 1;
    *p = s->win + s->head;
    *end = *p + n;
    return 0;
}

/* Pass over n bytes of a record with *rem left: 1 when the records end
 * first, else 0 or the reader's error. */
static int large_skip(rn_batch_stream *s, size_t *rem, size_t n)
{
    int rc = stream_discard(s, n);
    if (rc == -RN_E_BATCH_BAD_RECORD)
        return 1;
    if (rc)
        return rc;
    *rem -= n;
    return 0;
}

/* One nullable byte string of a large record (next_record's get_field):
 * its length read, its bytes passed over. 0, 1 (the records end first), the
 * reader's error, or the field's error with the reason in why (*field_err). */
static int large_field(rn_batch_stream *s, size_t *rem, const char *what, int32_t hdr, int32_t *len,
                       bool *field_err, char *why, size_t whylen)
{
    const uint8_t *start, *end;
    int rc = large_peek(s, *rem, 5, &start, &end);
    if (rc)
        return rc;
    const uint8_t *q = start;
    int32_t n;
    rc = get_varint(&q, end, &n);
    size_t vl = (size_t)(q - start);
    if (rc == 0 && (n < -1 || (size_t)(n < 0 ? 0 : n) > *rem - vl))
        rc = -RN_E_BATCH_BAD_RECORD;
    if (rc) {
        *field_err = true;
        return rn__batch_explain_field(rc, start, end, what, hdr, why, whylen);
    }
    *len = n;
    return large_skip(s, rem, vl + (size_t)(n < 0 ? 0 : n));
}

/* A record of len bytes after a vlen-byte length varint, longer than the
 * window: next_record's rules, read as the bytes stream past. */
static int walk_large(rn_batch_stream *s, size_t vlen, int32_t len, rn_record *rec, char *why,
                      size_t whylen)
{
    rn_batch_iter *it = &s->it;
    size_t rem = (size_t)len;
    const uint8_t *p, *end, *q;
    bool field_err = false;
    int rc = stream_discard(s, vlen); /* the varint is in the window already */
    if (rc)
        return rc;
    if ((rc = large_peek(s, rem, 1, &p, &end)))
        goto out;
    int8_t attributes = (int8_t)*p;
    large_skip(s, &rem, 1); /* in the window: cannot fail */

    int64_t ts_delta;
    int32_t offset_delta;
    if ((rc = large_peek(s, rem, 10, &p, &end)))
        goto out;
    q = p;
    if ((rc = get_varlong(&q, end, &ts_delta))) {
        field_err = true;
        rc = rn__batch_bad(rc, why, whylen, "timestamp_delta varint malformed or cut off");
        goto out;
    }
    large_skip(s, &rem, (size_t)(q - p));
    if ((rc = large_peek(s, rem, 5, &p, &end)))
        goto out;
    q = p;
    if ((rc = get_varint(&q, end, &offset_delta))) {
        field_err = true;
        rc = rn__batch_bad(rc, why, whylen, "offset_delta varint malformed or cut off");
        goto out;
    }
    large_skip(s, &rem, (size_t)(q - p));
    field_err = true; /* the checks below say why themselves */
    if (offset_delta <= it->prev_delta) {
        rc = rn__batch_bad(-RN_E_BATCH_BAD_OFFSET_DELTA, why, whylen,
                           "offset_delta %" PRId32 " does not follow %" PRId32
                           " (deltas must increase)",
                           offset_delta, it->prev_delta);
        goto out;
    }
    if (offset_delta > it->h.last_offset_delta) {
        rc = rn__batch_bad(-RN_E_BATCH_BAD_OFFSET_DELTA, why, whylen,
                           "offset_delta %" PRId32 " is past last_offset_delta %" PRId32,
                           offset_delta, it->h.last_offset_delta);
        goto out;
    }
    if (it->left == 1 && offset_delta != it->h.last_offset_delta) {
        rc = rn__batch_bad(-RN_E_BATCH_BAD_OFFSET_DELTA, why, whylen,
                           "the last record's offset_delta %" PRId32
                           " is not last_offset_delta %" PRId32,
                           offset_delta, it->h.last_offset_delta);
        goto out;
    }
    field_err = false;

    int32_t key_len, value_len, n_headers;
    if ((rc = large_field(s, &rem, "key", -1, &key_len, &field_err, why, whylen)) ||
        (rc = large_field(s, &rem, "value", -1, &value_len, &field_err, why, whylen)))
        goto out;
    if ((rc = large_peek(s, rem, 5, &p, &end)))
        goto out;
    q = p;
    if ((rc = get_varint(&q, end, &n_headers))) {
        field_err = true;
        rc = rn__batch_bad(rc, why, whylen, "header count varint malformed or cut off");
        goto out;
    }
    large_skip(s, &rem, (size_t)(q - p));
    if (n_headers < 0 || (size_t)n_headers > rem / MIN_HEADER_LEN) {
        field_err = true;
        rc = rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                           n_headers < 0 ? "header count %" PRId32 " is negative"
                                         : "header count %" PRId32 " cannot fit in the record",
                           n_headers);
        goto out;
    }
    for (int32_t i = 0; i < n_headers; i++) {
        int32_t name_len, hv_len;
        if ((rc = large_field(s, &rem, "name", i, &name_len, &field_err, why, whylen)))
            goto out;
        if (name_len < 0) { /* Kafka: a header key is never null */
            field_err = true;
            rc = rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                               "header %" PRId32 " name is null", i);
            goto out;
        }
        if ((rc = large_field(s, &rem, "value", i, &hv_len, &field_err, why, whylen)))
            goto out;
    }
    if (rem != 0) {
        field_err = true;
        rc = rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                           "%td bytes left inside the record after its headers", (ptrdiff_t)rem);
        goto out;
    }

    int64_t timestamp;
    if (it->h.attributes & RN_BATCH_ATTR_LOG_APPEND_TIME) {
        timestamp = it->h.max_timestamp;
    } else if (__builtin_add_overflow(it->h.base_timestamp, ts_delta, &timestamp)) {
        /* next_record checks this once the record's bytes are all there. */
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                             "timestamp_delta %" PRId64 " overflows base_timestamp %" PRId64,
                             ts_delta, it->h.base_timestamp);
    }
    memset(rec, 0, sizeof(*rec)); /* key, value and headers were passed over */
    rec->offset = (int64_t)((uint64_t)it->h.base_offset + (uint64_t)offset_delta);
    rec->timestamp = timestamp;
    rec->offset_delta = offset_delta;
    rec->attributes = attributes;
    rec->key_len = key_len;
    rec->value_len = value_len;
    rec->n_headers = n_headers;
    it->left--;
    it->prev_delta = offset_delta;
    return 1;
out:
    /* next_record checks that the record lies within the records before
     * reading a field: a wrong field counts only if the rest is there. */
    if (field_err && rc < 0) {
        int frc = large_skip(s, &rem, rem);
        if (frc < 0)
            return frc;
        if (frc == 0)
            return rc;
    } else if (rc <= 0) {
        return rc; /* the reader's error */
    }
    return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                         "length %" PRId32 " runs past the end of the records", len);
}

/* The next record of a compressed batch being validated: 1 with rec, 0 at
 * the end (nothing after the last record), or an error with the reason in
 * why (next_record's words). */
static int validate_next(rn_batch_stream *s, rn_record *rec, char *why, size_t whylen)
{
    int rc;
    if (s->it.left <= 0) {
        if ((rc = stream_fill(s, 1)))
            return rc;
        if (s->head == s->tail)
            return 0;
        size_t at = s->out_total - (s->tail - s->head); /* where the trailing bytes start */
        if ((rc = stream_drain(s)))
            return rc;
        return rn__batch_bad(-RN_E_BATCH_TRAILING_BYTES, why, whylen,
                             "%zu bytes after the last of %" PRId32 " records", s->out_total - at,
                             s->it.h.records_count);
    }
    if ((rc = stream_fill(s, 5)))
        return rc;
    if (s->head == s->tail) /* fewer records than records_count */
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                             "missing: the records end here but records_count is %" PRId32,
                             s->it.h.records_count);
    const uint8_t *p = s->win + s->head;
    int32_t len;
    if ((rc = get_varint(&p, s->win + s->tail, &len)))
        return rn__batch_bad(rc, why, whylen, "length varint malformed or cut off");
    size_t vlen = (size_t)(p - (s->win + s->head));
    if (len < MIN_RECORD_BODY)
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                             "length %" PRId32 " is below the %d-byte minimum", len,
                             MIN_RECORD_BODY);
    if ((size_t)len > s->max_record)
        return walk_large(s, vlen, len, rec, why, whylen);
    if ((rc = stream_fill(s, vlen + (size_t)len)))
        return rc;
    if (s->tail - s->head < vlen + (size_t)len)
        return rn__batch_bad(-RN_E_BATCH_BAD_RECORD, why, whylen,
                             "length %" PRId32 " runs past the end of the records", len);
    s->it.pos = s->win + s->head;
    s->it.end = s->it.pos + vlen + (size_t)len;
    rc = rn__batch_next_record(&s->it, rec, why, whylen);
    s->head += vlen + (size_t)len;
    return rc;
}

/* rn_batch_validate's walk of a compressed batch (see the banner above).
 * *n_ok counts the records that passed; *whole says why holds the whole
 * reason (a fault of the compression) rather than one record's. */
int rn__batch_validate_compressed(const uint8_t *p, const rn_batch_header *h, size_t max_out,
                                  rn__batch_ts_rules *tr, int32_t *n_ok, char *why, size_t whylen,
                                  bool *whole)
{
    rn_batch_stream s;
    int rc = stream_open(&s, p, h, max_out, VALIDATE_RECORD_MAX, why, whylen);
    if (rc) {
        *whole = true;
        return rc;
    }
    /* The window at its working size from the start: each decompression call
     * then fills up to VALIDATE_WINDOW bytes, which keeps the per-call cost
     * (zlib copies its 32 KiB history after every call) near the one-shot's. */
    s.owned_win = s.win = malloc(VALIDATE_WINDOW);
    if (!s.win) {
        rn_batch_stream_fini(&s);
        *whole = true;
        return -ENOMEM;
    }
    s.cap = VALIDATE_WINDOW;
    rn_record rec;
    while ((rc = validate_next(&s, &rec, why, whylen)) == 1) {
        if ((rc = rn__batch_check_timestamp(tr, rec.timestamp, why, whylen)))
            break;
        (*n_ok)++;
    }
    if (rc < 0 && rc != -RN_E_BATCH_BAD_COMPRESSION && rc != -ENOMEM) {
        /* A record is wrong: a fault further on in the frame still comes
         * first, as when the section was decompressed before the walk. */
        int drc = stream_drain(&s);
        if (drc < 0)
            rc = drc;
    }
    if (rc == -RN_E_BATCH_BAD_COMPRESSION || rc == -ENOMEM) {
        *whole = true;
        if (rc == -RN_E_BATCH_BAD_COMPRESSION)
            snprintf(why, whylen, "%s", rn_codec_reader_why(s.dec));
    }
    rn_batch_stream_fini(&s);
    return rc;
}
