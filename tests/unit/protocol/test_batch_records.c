/*
 * test_batch_records.c — records written by hand, byte by byte, through
 * rn_batch_verify and the iterator (protocol/batch.c): malformed records,
 * the offset delta rules, overlong and truncated varints; and zstd records
 * sections: unknown content size, garbage, a declared size over the limit
 * (never allocated) and a bomb over max_uncompressed. Helpers:
 * batch_helpers.h.
 */
#include "batch_helpers.h"

/* ---- Records, by hand ------------------------------------------------------ */

static int verify_records(const void *records, size_t rlen, int32_t count, int32_t last)
{
    size_t len;
    uint8_t *p = make_batch(records, rlen, 0, count, last, &len);
    int rc = rn_batch_verify(p, len, 0, 0);
    int rc2 = walk_all(p, len);
    cr_assert_eq(rc, rc2, "verify %s, iterator %s", rn_errname(rc), rn_errname(rc2));
    free(p);
    return rc;
}

// Hand-made records: the minimal record decodes; each malformed field of a
// record gets its code.
Test(batch_records, malformed_records)
{
    /* The smallest record: length 6, attributes, ts 0, offset 0, null key and value, 0 headers. */
    static const uint8_t ok[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(verify_records(ok, sizeof(ok), 1, 0), 0);

    struct {
        const char *what;
        uint8_t bytes[24];
        size_t len;
        int want;
    } cases[] = {
        {"length 5", {0x0a, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00}, 7, E(BATCH_BAD_RECORD)},
        {"length -1", {0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00}, 7, E(BATCH_BAD_RECORD)},
        {"length past the end", {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00}, 7, E(BATCH_BAD_RECORD)},
        {"byte left in the record",
         {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00},
         8,
         E(BATCH_BAD_RECORD)},
        {"key_len -2", {0x0c, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00}, 7, E(BATCH_BAD_RECORD)},
        {"key past the record", {0x0c, 0x00, 0x00, 0x00, 0x06, 0x01, 0x00}, 7, E(BATCH_BAD_RECORD)},
        {"value_len -3", {0x0c, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00}, 7, E(BATCH_BAD_RECORD)},
        {"header_count -1", {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01}, 7, E(BATCH_BAD_RECORD)},
        {"header_count past the bytes",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02},
         7,
         E(BATCH_BAD_RECORD)},
        {"header name null",
         {0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01},
         9,
         E(BATCH_BAD_RECORD)},
        {"header value_len -2",
         {0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x03},
         9,
         E(BATCH_BAD_RECORD)},
        {"header value past the record",
         {0x12, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x04, 0x41},
         10,
         E(BATCH_BAD_RECORD)},
        {"header varint cut by the record",
         {0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x80, 0x80, 0x01},
         10,
         E(BATCH_BAD_VARINT)},
        {"offset_delta 1 for the first of 1",
         {0x0c, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00},
         7,
         E(BATCH_BAD_OFFSET_DELTA)},
        {"offset_delta -1",
         {0x0c, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00},
         7,
         E(BATCH_BAD_OFFSET_DELTA)},
        {"second record past the count",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00},
         14,
         E(BATCH_TRAILING_BYTES)},
        {"trailing byte",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00},
         8,
         E(BATCH_TRAILING_BYTES)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = verify_records(cases[i].bytes, cases[i].len, 1, 0);
        cr_assert_eq(rc, cases[i].want, "%s: got %s, want %s", cases[i].what, rn_errname(rc),
                     rn_errname(cases[i].want));
    }

    /* Record 2 of 2 missing. */
    uint8_t two[14];
    memcpy(two, ok, 7);
    memcpy(two + 7, ok, 7);
    two[10] = 0x02; /* offset_delta 1 */
    cr_assert_eq(verify_records(two, 14, 2, 1), 0);
    uint8_t pad[14] = {0};
    memcpy(pad, ok, 7); /* then zeros: a record of length 0 */
    cr_assert_eq(verify_records(pad, 14, 2, 1), E(BATCH_BAD_RECORD));
}

// Offset deltas must rise strictly and end at last_offset_delta; a compacted
// batch (gaps, last_offset_delta > count - 1) is fine.
Test(batch_records, offset_delta_rules)
{
    uint8_t r[21];
    static const uint8_t rec[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    for (int i = 0; i < 3; i++)
        memcpy(r + 7 * i, rec, 7);
#define DELTAS(a, b, c) (r[3] = 2 * (a), r[10] = 2 * (b), r[17] = 2 * (c))
    DELTAS(0, 1, 2);
    cr_assert_eq(verify_records(r, 21, 3, 2), 0);
    DELTAS(0, 3, 9);
    cr_assert_eq(verify_records(r, 21, 3, 9), 0, "compacted");
    DELTAS(0, 3, 9);
    cr_assert_eq(verify_records(r, 21, 3, 10), E(BATCH_BAD_OFFSET_DELTA), "last short of header");
    DELTAS(0, 0, 2);
    cr_assert_eq(verify_records(r, 21, 3, 2), E(BATCH_BAD_OFFSET_DELTA), "repeated");
    DELTAS(1, 0, 2);
    cr_assert_eq(verify_records(r, 21, 3, 2), E(BATCH_BAD_OFFSET_DELTA), "backwards");
    DELTAS(0, 5, 4);
    cr_assert_eq(verify_records(r, 21, 3, 4), E(BATCH_BAD_OFFSET_DELTA), "past last");
#undef DELTAS
}

// Varints longer than 5 bytes (varlong: 10), with bits past 32 (64) in the
// last byte, or cut off, are BAD_VARINT; the longest legal ones decode.
Test(batch_records, overlong_and_truncated_varints)
{
    /* Records with one varint field too long or cut short. */
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
        int want;
    } cases[] = {
        {"length: 6-byte varint",
         {0x8c, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00},
         7,
         E(BATCH_BAD_VARINT)},
        {"length: 5th byte > 0x0f",
         {0x8c, 0x80, 0x80, 0x80, 0x10, 0x00, 0x00},
         7,
         E(BATCH_BAD_VARINT)},
        {"length: 5-byte 6",
         {0x8c, 0x80, 0x80, 0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00},
         11,
         0},
        {"key_len: 6-byte varint",
         {0x16, 0x00, 0x00, 0x00, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 0x00},
         12,
         E(BATCH_BAD_VARINT)},
        {"offset_delta: 6-byte",
         {0x16, 0x00, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 0x01, 0x00},
         12,
         E(BATCH_BAD_VARINT)},
        {"offset_delta: cut by the record",
         {0x0c, 0x00, 0x00, 0x80, 0x80, 0x80, 0x80, 0x01},
         8,
         E(BATCH_BAD_VARINT)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = verify_records(cases[i].bytes, cases[i].len, 1, 0);
        cr_assert_eq(rc, cases[i].want, "%s: got %s", cases[i].what, rn_errname(rc));
    }

    /* A length varint cut off by the end of the records: a 13-byte record (value
     * "abcdef"), then the first byte of a second record's length. */
    static const uint8_t cut_len[] = {0x18, 0x00, 0x00, 0x00, 0x01, 0x0c, 'a',
                                      'b',  'c',  'd',  'e',  'f',  0x00, 0x8c};
    cr_assert_eq(verify_records(cut_len, sizeof(cut_len), 2, 1), E(BATCH_BAD_VARINT));

    /* timestamp_delta as a varlong: 10 bytes is the most, the 10th at most 0x01. */
    uint8_t r[24] = {0x00 /* length, set below */, 0x00};
    size_t n = 2;
    for (int k = 0; k < 9; k++)
        r[n++] = 0x80;
    r[n++] = 0x00; /* 10-byte zero: legal */
    r[n++] = 0x00; /* offset_delta */
    r[n++] = 0x01;
    r[n++] = 0x01;
    r[n++] = 0x00;
    r[0] = (uint8_t)(2 * (n - 1));
    cr_assert_eq(verify_records(r, n, 1, 0), 0, "10-byte varlong");
    r[11] = 0x02; /* bit 64 */
    cr_assert_eq(verify_records(r, n, 1, 0), E(BATCH_BAD_VARINT), "10th byte > 1");
    r[11] = 0x80; /* an 11th byte */
    r[12] = 0x00;
    cr_assert_eq(verify_records(r, n, 1, 0), E(BATCH_BAD_VARINT), "11-byte varlong");

    /* rn_record_header_next on its own. */
    static const uint8_t cut[] = {0x02, 'a', 0x80};
    const uint8_t *hp = cut;
    rn_record_header h;
    cr_assert_eq(rn_record_header_next(&hp, cut + sizeof(cut), &h), E(BATCH_BAD_VARINT));
    cr_assert_eq(hp, cut, "position unchanged on error");
    static const uint8_t neg[] = {0x03, 0x00};
    hp = neg;
    cr_assert_eq(rn_record_header_next(&hp, neg + 2, &h), E(BATCH_BAD_RECORD));
    hp = neg;
    cr_assert_eq(rn_record_header_next(&hp, neg, &h), 0);
}
// A frame without a content size (streamed) decodes like any other.
Test(batch_records, zstd_unknown_content_size)
{
    uint8_t *pool = random_pool(4096);
    rec_spec *s = random_specs(500, pool, 4096);
    size_t plen, flen, len;
    uint8_t *plain = build(RN_BATCH_CODEC_NONE, s, 500, &plen);
    uint8_t *frame =
        compress_unknown_size(plain + RN_BATCH_HEADER_LEN, plen - RN_BATCH_HEADER_LEN, &flen);
    uint8_t *z = zstd_batch(frame, flen, 500, &len);
    memcpy(z + RN_BATCH_OFF_BASE_TIMESTAMP, plain + RN_BATCH_OFF_BASE_TIMESTAMP, 16);
    fix_crc(z, len);
    expect_batch(z, len, s, 500, 0);
    /* Its decompressed size is exactly the bound: still fine; one byte less is not. */
    size_t n = plen - RN_BATCH_HEADER_LEN;
    cr_assert_eq(rn_batch_verify(z, len, 0, n), 0);
    cr_assert_eq(rn_batch_verify(z, len, 0, n - 1), E(BATCH_BAD_COMPRESSION));
    free(z);
    /* A byte after the frame: zstd's stream decoder would stop before it. */
    uint8_t *longer = malloc(flen + 1);
    memcpy(longer, frame, flen);
    longer[flen] = 0;
    z = zstd_batch(longer, flen + 1, 500, &len);
    cr_assert_eq(rn_batch_verify(z, len, 0, 0), E(BATCH_BAD_COMPRESSION));
    free(z);
    free(longer);
    free(frame);
    free(plain);
    free_specs(s, 500);
    free(pool);
}

// Garbage, a cut frame, a frame with bytes after it and two frames are
// BAD_COMPRESSION from verify and iter_init, while check (which never
// decompresses) passes them.
Test(batch_records, zstd_garbage)
{
    size_t len;
    uint8_t *good = small_batch(RN_BATCH_CODEC_ZSTD, &len);
    const uint8_t *frame = good + RN_BATCH_HEADER_LEN;
    size_t flen = len - RN_BATCH_HEADER_LEN;
    uint8_t buf[1024];
    struct {
        const char *what;
        size_t n;
    } cases[] = {{"random bytes", 200},    {"cut frame", flen - 1}, {"frame + 1 byte", flen + 1},
                 {"two frames", 2 * flen}, {"magic only", 4},       {"empty", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (i == 0)
            for (size_t k = 0; k < cases[i].n; k++)
                buf[k] = (uint8_t)rnd();
        else {
            memcpy(buf, frame, flen);
            memcpy(buf + flen, frame, flen);
        }
        size_t blen;
        uint8_t *p = zstd_batch(buf, cases[i].n, 3, &blen);
        cr_assert_eq(rn_batch_check(p, blen, 0, NULL), 0, "%s", cases[i].what);
        int rc = rn_batch_verify(p, blen, 0, 0);
        cr_assert_eq(rc, E(BATCH_BAD_COMPRESSION), "%s: %s", cases[i].what, rn_errname(rc));
        rn_batch_iter it;
        cr_assert_eq(rn_batch_iter_init(&it, p, blen, 0), E(BATCH_BAD_COMPRESSION));
        free(p);
    }
    /* A valid frame of bytes that are not records. */
    char text[] = "these bytes are not records";
    size_t zl = ZSTD_compress(buf, sizeof(buf), text, sizeof(text), 3);
    cr_assert_not(ZSTD_isError(zl));
    size_t blen;
    uint8_t *p = zstd_batch(buf, zl, 1, &blen);
    int rc = rn_batch_verify(p, blen, 0, 0);
    cr_assert(is_record_error(rc), "%s", rn_errname(rc));
    free(p);
    free(good);
}

// A frame whose header claims 2^50 bytes is refused before any allocation
// (a malloc of that size would abort under ASan or fail with ENOMEM).
Test(batch_records, zstd_declared_size_over_limit_not_allocated)
{
    static const uint8_t frame[] = {
        0x28, 0xb5, 0x2f, 0xfd, /* magic */
        0xc0,                   /* 8-byte content size, no single segment, no checksum */
        0x00,                   /* window 1 KiB */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, /* content size 2^50, little-endian */
        0x03, 0x20, 0x00,                               /* last RLE block of 1024 bytes */
        0x00,                                           /* the byte */
    };
    cr_assert_eq(ZSTD_getFrameContentSize(frame, sizeof(frame)), 1ull << 50);
    size_t len;
    uint8_t *p = zstd_batch(frame, sizeof(frame), 1, &len);
    cr_assert_eq(rn_batch_verify(p, len, 0, 0), E(BATCH_BAD_COMPRESSION));
    free(p);
}

// A real decompression bomb (8 MiB of zeros in a few hundred bytes) over
// max_uncompressed is BAD_COMPRESSION, with or without a declared size.
Test(batch_records, zstd_bomb_over_max_uncompressed)
{
    size_t n = 8 << 20;
    uint8_t *zeros = calloc(1, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *frame = malloc(cap);
    size_t flen = ZSTD_compress(frame, cap, zeros, n, 3);
    cr_assert_not(ZSTD_isError(flen));
    cr_assert_lt(flen, 4096);
    size_t len;
    uint8_t *p = zstd_batch(frame, flen, 1, &len);
    cr_assert_eq(rn_batch_verify(p, len, 0, 1 << 20), E(BATCH_BAD_COMPRESSION));
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, p, len, 1 << 20), E(BATCH_BAD_COMPRESSION));
    /* Allowed through, the zeros are records of length 0. */
    cr_assert_eq(rn_batch_verify(p, len, 0, n), E(BATCH_BAD_RECORD));
    free(p);
    free(frame);

    frame = compress_unknown_size(zeros, n, &flen);
    p = zstd_batch(frame, flen, 1, &len);
    cr_assert_eq(rn_batch_verify(p, len, 0, 1 << 20), E(BATCH_BAD_COMPRESSION));
    cr_assert_eq(rn_batch_verify(p, len, 0, n - 1), E(BATCH_BAD_COMPRESSION));
    cr_assert_eq(rn_batch_verify(p, len, 0, n), E(BATCH_BAD_RECORD));
    free(p);
    free(frame);
    free(zeros);
}
