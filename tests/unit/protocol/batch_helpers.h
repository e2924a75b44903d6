/*
 * batch_helpers.h — what the record batch codec's tests (protocol/batch.c)
 * share: test_batch_codec.c, test_batch_check.c, test_batch_records.c,
 * test_batch_validate.c and test_batch_validate_stream.c, each its own
 * executable. Header-only (static inline).
 *
 * A bitwise CRC-32C independent of ISA-L, batches assembled field by field
 * (make_batch) or through the builder (build), expected records compared
 * field by field (expect_batch), random records, a full walk of a batch
 * (walk_all) and zstd frames with and without their content size.
 *
 * Batches under test are copied into buffers of exactly their size (dup_exact)
 * so that AddressSanitizer reports any read past the end.
 */
#ifndef RN_TEST_BATCH_HELPERS_H
#define RN_TEST_BATCH_HELPERS_H

#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"

/* ---- Helpers ------------------------------------------------------------ */

/* Bitwise CRC-32C (reflected polynomial 0x82F63B78), independent of ISA-L. */
static inline uint32_t ref_crc32c(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = 0xFFFFFFFF;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ ((c & 1) ? 0x82F63B78 : 0);
    }
    return c ^ 0xFFFFFFFF;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static inline uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static inline uint8_t *dup_exact(const void *src, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    if (len)
        memcpy(p, src, len);
    return p;
}

static inline void set_be16(uint8_t *p, int off, uint16_t v)
{
    v = htobe16(v);
    memcpy(p + off, &v, 2);
}

static inline void set_be32(uint8_t *p, int off, uint32_t v)
{
    v = htobe32(v);
    memcpy(p + off, &v, 4);
}

static inline void set_be64(uint8_t *p, int off, uint64_t v)
{
    v = htobe64(v);
    memcpy(p + off, &v, 8);
}

static inline uint32_t get_be32(const uint8_t *p, int off)
{
    uint32_t v;
    memcpy(&v, p + off, 4);
    return be32toh(v);
}

/* Recompute the CRC of the batch at p (of size len) after a deliberate edit. */
static inline void fix_crc(uint8_t *p, size_t len)
{
    set_be32(p, RN_BATCH_OFF_CRC, ref_crc32c(p + RN_BATCH_CRC_START, len - RN_BATCH_CRC_START));
}

/* Assemble a batch around a records section: header fields as a valid
 * producer-less batch would have them, the given attributes and counts. */
static inline uint8_t *make_batch(const void *records, size_t rlen, int16_t attributes,
                                  int32_t count, int32_t last_offset_delta, size_t *len)
{
    size_t size = RN_BATCH_HEADER_LEN + rlen;
    uint8_t *p = calloc(1, size);
    cr_assert_not_null(p);
    set_be32(p, RN_BATCH_OFF_LENGTH, (uint32_t)(size - RN_BATCH_LOG_OVERHEAD));
    set_be32(p, RN_BATCH_OFF_LEADER_EPOCH, UINT32_MAX);
    p[RN_BATCH_OFF_MAGIC] = RN_BATCH_MAGIC;
    set_be16(p, RN_BATCH_OFF_ATTRIBUTES, (uint16_t)attributes);
    set_be32(p, RN_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)last_offset_delta);
    set_be64(p, RN_BATCH_OFF_BASE_TIMESTAMP, 1000);
    set_be64(p, RN_BATCH_OFF_MAX_TIMESTAMP, 1000);
    set_be64(p, RN_BATCH_OFF_PRODUCER_ID, UINT64_MAX);
    set_be16(p, RN_BATCH_OFF_PRODUCER_EPOCH, UINT16_MAX);
    set_be32(p, RN_BATCH_OFF_BASE_SEQUENCE, UINT32_MAX);
    set_be32(p, RN_BATCH_OFF_RECORDS_COUNT, (uint32_t)count);
    if (rlen)
        memcpy(p + RN_BATCH_HEADER_LEN, records, rlen);
    fix_crc(p, size);
    *len = size;
    return p;
}

/* One record as the test means it. key/value NULL are null. */
typedef struct rec_spec {
    int64_t ts;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    rn_record_header *hdrs;
    size_t n_hdrs;
} rec_spec;

static inline uint8_t *build(int codec, const rec_spec *s, size_t n, size_t *len)
{
    rn_batch_builder_opts o = {
        .codec = codec, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(rn_batch_builder_add(b, s[i].ts, s[i].key, s[i].key_len, s[i].value,
                                          s[i].value_len, s[i].hdrs, s[i].n_hdrs),
                     0, "add record %zu", i);
    cr_assert_eq(rn_batch_builder_count(b), (int32_t)n);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    cr_assert_eq(rn_batch_builder_count(b), 0);
    rn_batch_builder_free(b);
    return out;
}

static inline void expect_bytes(const uint8_t *got, int32_t got_len, const uint8_t *want,
                                size_t want_len, const char *what, size_t i)
{
    if (!want) {
        cr_assert_null(got, "record %zu: %s should be null", i, what);
        cr_assert_eq(got_len, -1, "record %zu: %s length", i, what);
        return;
    }
    cr_assert_not_null(got, "record %zu: %s should not be null", i, what);
    cr_assert_eq((size_t)got_len, want_len, "record %zu: %s length", i, what);
    cr_assert(memcmp(got, want, want_len) == 0, "record %zu: %s bytes", i, what);
}

/* Verify the batch, iterate it and compare every field with the specs. */
static inline void expect_batch(const uint8_t *batch, size_t len, const rec_spec *s, size_t n,
                                int64_t base_offset)
{
    uint8_t *p = dup_exact(batch, len);
    cr_assert_eq(rn_batch_verify(p, len, 0, 0), 0);
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, p, len, 0), 0);
    cr_assert_eq(it.h.records_count, (int32_t)n);
    cr_assert_eq(it.h.last_offset_delta, (int32_t)n - 1);
    int64_t max_ts = s[0].ts;
    for (size_t i = 1; i < n; i++)
        max_ts = s[i].ts > max_ts ? s[i].ts : max_ts;
    cr_assert_eq(it.h.base_timestamp, s[0].ts);
    cr_assert_eq(it.h.max_timestamp, max_ts);
    rn_record r;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rn_batch_iter_next(&it, &r), 1, "record %zu", i);
        cr_assert_eq(r.offset, base_offset + (int64_t)i);
        cr_assert_eq(r.offset_delta, (int32_t)i);
        cr_assert_eq(r.timestamp, s[i].ts, "record %zu timestamp", i);
        expect_bytes(r.key, r.key_len, s[i].key, s[i].key_len, "key", i);
        expect_bytes(r.value, r.value_len, s[i].value, s[i].value_len, "value", i);
        cr_assert_eq(r.n_headers, (int32_t)s[i].n_hdrs);
        const uint8_t *hp = r.headers, *he = r.headers + r.headers_len;
        for (size_t k = 0; k < s[i].n_hdrs; k++) {
            rn_record_header h;
            const rn_record_header *w = &s[i].hdrs[k];
            cr_assert_eq(rn_record_header_next(&hp, he, &h), 1);
            expect_bytes(h.name, h.name_len, w->name ? w->name : (const uint8_t *)"",
                         (size_t)w->name_len, "header name", i);
            const uint8_t *wv = w->value_len < 0 ? NULL : w->value;
            expect_bytes(h.value, h.value_len, wv, wv ? (size_t)w->value_len : 0, "header value",
                         i);
        }
        rn_record_header h;
        cr_assert_eq(rn_record_header_next(&hp, he, &h), 0);
    }
    cr_assert_eq(rn_batch_iter_next(&it, &r), 0);
    cr_assert_eq(rn_batch_iter_next(&it, &r), 0);
    rn_batch_iter_fini(&it);
    rn_batch_iter_fini(&it); /* safe twice */
    free(p);
}

/* Random records drawn from pool: null, empty and binary keys, values and
 * headers, timestamps that go backwards as well as forwards. */
static inline rec_spec *random_specs(size_t n, const uint8_t *pool, size_t pool_len)
{
    rec_spec *s = calloc(n, sizeof(*s));
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++) {
        s[i].ts = 1700000000000 + (int64_t)(rnd() % 10000) - 5000;
        uint64_t k = rnd() % 5;
        if (k > 0) {
            s[i].key_len = k == 1 ? 0 : rnd() % 40;
            s[i].key = pool + rnd() % (pool_len - s[i].key_len);
        }
        if (rnd() % 10) {
            s[i].value_len = rnd() % 300;
            s[i].value = pool + rnd() % (pool_len - s[i].value_len);
        }
        s[i].n_hdrs = rnd() % 4;
        s[i].hdrs = s[i].n_hdrs ? calloc(s[i].n_hdrs, sizeof(rn_record_header)) : NULL;
        for (size_t j = 0; j < s[i].n_hdrs; j++) {
            rn_record_header *h = &s[i].hdrs[j];
            h->name_len = (int32_t)(rnd() % 12);
            h->name = pool + rnd() % (pool_len - 12);
            if (rnd() % 4) {
                h->value_len = (int32_t)(rnd() % 50);
                h->value = pool + rnd() % (pool_len - 50);
            } else {
                h->value_len = -1;
            }
        }
    }
    return s;
}

static inline void free_specs(rec_spec *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].hdrs);
    free(s);
}

static inline uint8_t *random_pool(size_t len)
{
    uint8_t *p = malloc(len);
    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)rnd();
    return p;
}

/* A small batch of three records (one with a header), for the edit tests. */
static inline uint8_t *small_batch(int codec, size_t *len)
{
    rn_record_header h = {(const uint8_t *)"h", 1, (const uint8_t *)"v", 1};
    rec_spec s[] = {
        {1000, (const uint8_t *)"k", 1, (const uint8_t *)"hello", 5, &h, 1},
        {1300, NULL, 0, (const uint8_t *)"world", 5, NULL, 0},
        {1200, (const uint8_t *)"", 0, NULL, 0, NULL, 0},
    };
    return build(codec, s, 3, len);
}

#define E(name) (-RN_E_##name)
static inline int is_record_error(int rc)
{
    return rc == -RN_E_BATCH_BAD_RECORD || rc == -RN_E_BATCH_BAD_VARINT ||
           rc == -RN_E_BATCH_BAD_OFFSET_DELTA || rc == -RN_E_BATCH_TRAILING_BYTES;
}

/* Walk every record and header of the batch; return what the walk ended with. */
static inline int walk_all(const uint8_t *p, size_t len)
{
    rn_batch_iter it;
    int rc = rn_batch_iter_init(&it, p, len, 0);
    if (rc)
        return rc;
    rn_record r;
    while ((rc = rn_batch_iter_next(&it, &r)) == 1) {
        volatile uint8_t sink = 0;
        for (int32_t i = 0; i < r.key_len; i++)
            sink ^= r.key[i];
        for (int32_t i = 0; i < r.value_len; i++)
            sink ^= r.value[i];
        const uint8_t *hp = r.headers, *he = r.headers + r.headers_len;
        rn_record_header h;
        int n = 0, hr;
        while ((hr = rn_record_header_next(&hp, he, &h)) == 1) {
            n++;
            if (h.name_len > 0)
                sink ^= h.name[h.name_len - 1];
            if (h.value_len > 0)
                sink ^= h.value[h.value_len - 1];
        }
        cr_assert_eq(hr, 0, "headers already validated by iter_next");
        cr_assert_eq(n, r.n_headers);
        (void)sink;
    }
    rn_batch_iter_fini(&it);
    return rc;
}

/* ---- zstd ----------------------------------------------------------------- */

/* A zstd batch of one records section compressed as given. */
static inline uint8_t *zstd_batch(const void *frame, size_t flen, int32_t count, size_t *len)
{
    return make_batch(frame, flen, RN_BATCH_CODEC_ZSTD, count, count - 1, len);
}

/* Compress src as a stream, without the content size in the frame header, as
 * Kafka's Java producer does. */
static inline uint8_t *compress_unknown_size(const void *src, size_t n, size_t *flen)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    size_t cap = ZSTD_compressBound(n) + 64;
    uint8_t *dst = malloc(cap);
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_outBuffer out = {dst, cap, 0};
    cr_assert_eq(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    cr_assert_eq(ZSTD_getFrameContentSize(dst, out.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    *flen = out.pos;
    return dst;
}

#endif
