/*
 * test_batch_stream.c — the streaming record iterator (rn_batch_stream,
 * protocol/batch.c): the same records as rn_batch_iter, and memory that stays
 * at one record whatever the batch claims (issue 11, decompression bombs).
 *
 * Bombs are valid Kafka v2 batches (right CRC, one zstd frame), as a hostile
 * producer or an old segment can hold them.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"

TestSuite(batch_stream, .timeout = 120);

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void set_be32(uint8_t *p, int off, uint32_t v)
{
    p[off] = (uint8_t)(v >> 24);
    p[off + 1] = (uint8_t)(v >> 16);
    p[off + 2] = (uint8_t)(v >> 8);
    p[off + 3] = (uint8_t)v;
}

static void fix_crc(uint8_t *p, size_t len)
{
    set_be32(p, RN_BATCH_OFF_CRC, rn_crc32c(p + RN_BATCH_CRC_START, len - RN_BATCH_CRC_START));
}

/* n records with values of value_len bytes (fill byte), built by the
 * producer's own builder. */
static uint8_t *build_same(int codec, size_t n, size_t value_len, uint8_t fill, size_t *len)
{
    rn_batch_builder_opts o = {
        .codec = codec, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
    uint8_t *v = malloc(value_len ? value_len : 1);
    cr_assert_not_null(v);
    memset(v, fill, value_len);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(rn_batch_builder_add(b, 1000, NULL, 0, v, value_len, NULL, 0), 0);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    free(v);
    return out;
}

/* Random records: keys, values and headers of random sizes and bytes. */
static uint8_t *build_random(int codec, size_t n, size_t *len)
{
    rn_batch_builder_opts o = {
        .codec = codec, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
    uint8_t buf[3000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)rnd();
    for (size_t i = 0; i < n; i++) {
        size_t kl = rnd() % 20, vl = rnd() % 2000;
        rn_record_header h = {buf + rnd() % 100, (int32_t)(rnd() % 8), buf + rnd() % 100,
                              (int32_t)(rnd() % 30)};
        cr_assert_eq(rn_batch_builder_add(b, 1000 + (int64_t)i, rnd() % 4 ? buf : NULL, kl,
                                          buf + rnd() % 900, vl, &h, rnd() % 2),
                     0);
    }
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    return out;
}

static void same_bytes(const uint8_t *a, int32_t al, const uint8_t *b, int32_t bl)
{
    cr_assert_eq(al, bl);
    cr_assert_eq(a == NULL, b == NULL);
    if (al > 0)
        cr_assert(memcmp(a, b, (size_t)al) == 0);
}

/* Walk a batch with both iterators from `from`; they must agree record for
 * record and, from 0, end the same way (records the stream passes over are
 * not decoded, so from inside a damaged batch it may see less). Returns the
 * stream's end. */
static int walk_both(const uint8_t *p, size_t len, int64_t from)
{
    rn_batch_iter it;
    int irc = rn_batch_iter_init(&it, p, len, 0);
    rn_batch_stream s;
    int src = rn_batch_stream_init(&s, p, len, 0, 0);
    if (src < 0) {
        /* Refused up front: the whole-batch iterator refuses it too. */
        cr_assert_lt(irc, 0);
        return src;
    }
    rn_record a, b;
    if (irc == 0) {
        while ((irc = rn_batch_iter_next(&it, &a)) == 1 && a.offset < from)
            ;
    }
    for (;;) {
        src = rn_batch_stream_next(&s, from, &b);
        if (irc != 1 || src != 1)
            break;
        cr_assert_eq(a.offset, b.offset);
        cr_assert_eq(a.timestamp, b.timestamp);
        same_bytes(a.key, a.key_len, b.key, b.key_len);
        same_bytes(a.value, a.value_len, b.value, b.value_len);
        cr_assert_eq(a.n_headers, b.n_headers);
        cr_assert_eq(a.headers_len, b.headers_len);
        cr_assert(memcmp(a.headers, b.headers, a.headers_len) == 0);
        irc = rn_batch_iter_next(&it, &a);
    }
    while (src == 1)
        src = rn_batch_stream_next(&s, from, &b);
    while (irc == 1)
        irc = rn_batch_iter_next(&it, &a);
    /* A damaged frame may be noticed at a different record (the stream reads
     * as it goes), but both end in an error or both end cleanly. */
    if (from == 0)
        cr_assert_eq(irc == 0, src == 0, "iterator ended %d, stream %d", irc, src);
    else if (irc == 0)
        cr_assert_eq(src, 0, "the stream failed (%d) where the iterator did not", src);
    rn_batch_iter_fini(&it); /* owned is NULL after a failed init */
    rn_batch_stream_fini(&s);
    rn_batch_stream_fini(&s); /* safe twice */
    return src;
}

// The stream hands out exactly the records the whole-batch iterator does,
// from the start and from any offset inside, compressed or not.
Test(batch_stream, same_records_as_the_iterator)
{
    for (int codec = 0; codec <= RN_BATCH_CODEC_ZSTD; codec += RN_BATCH_CODEC_ZSTD) {
        size_t len;
        uint8_t *p = build_random(codec, 300, &len);
        for (int64_t from = 0; from <= 301; from += 37)
            cr_assert_eq(walk_both(p, len, from), 0);
        free(p);
    }
}

// Damage inside a zstd frame (CRC fixed up) ends both iterators in an error
// or neither; the stream never reads outside its buffers (ASan).
Test(batch_stream, damaged_frames_agree)
{
    size_t len;
    uint8_t *batch = build_random(RN_BATCH_CODEC_ZSTD, 40, &len);
    for (size_t i = RN_BATCH_HEADER_LEN; i < len; i += 1 + len / 400) {
        uint8_t *p = malloc(len);
        memcpy(p, batch, len);
        p[i] ^= (uint8_t)(1 + rnd() % 255);
        fix_crc(p, len);
        walk_both(p, len, 0);
        walk_both(p, len, 20);
        free(p);
    }
    free(batch);
}

// The bomb of issue 11: one record whose value is ~64 MiB of zeros, a few KB
// compressed. Asked for, it is -MESSAGE_TOO_LARGE naming its offset before it
// is buffered; passed over, it is decompressed through a small window.
Test(batch_stream, zeros_bomb_is_never_buffered)
{
    size_t len;
    uint8_t *p = build_same(RN_BATCH_CODEC_ZSTD, 1, (64u << 20) - 64, 0, &len);
    cr_assert_lt(len, 64u << 10, "the bomb compresses (%zu bytes)", len);
    rn_batch_stream s;
    rn_record r;
    cr_assert_eq(rn_batch_stream_init(&s, p, len, 0, 16u << 20), 0);
    cr_assert_eq(rn_batch_stream_next(&s, 0, &r), -RN_E_MESSAGE_TOO_LARGE);
    cr_assert_eq(r.offset, 0);
    cr_assert_lt(s.cap, 1u << 20, "window grew to %zu bytes", s.cap);
    rn_batch_stream_fini(&s);

    cr_assert_eq(rn_batch_stream_init(&s, p, len, 0, 16u << 20), 0);
    cr_assert_eq(rn_batch_stream_next(&s, 1, &r), 0, "passed over to the end");
    cr_assert_lt(s.cap, 1u << 20, "window grew to %zu bytes", s.cap);
    cr_assert_geq(s.out_total, (64u << 20) - 64, "decompressed through");
    cr_assert_eq(rn_batch_stream_consumed(&s), 0, "nothing returned");
    rn_batch_stream_fini(&s);
    free(p);
}

// Two million tiny records (16 MiB decompressed): starting deep inside costs
// a pass over the bytes, never a buffer of them.
Test(batch_stream, many_records_from_the_middle)
{
    size_t len;
    uint8_t *p = build_same(RN_BATCH_CODEC_ZSTD, 2000000, 1, 'x', &len);
    rn_batch_stream s;
    rn_record r;
    cr_assert_eq(rn_batch_stream_init(&s, p, len, 0, 0), 0);
    cr_assert_eq(rn_batch_stream_next(&s, 1500000, &r), 1);
    cr_assert_eq(r.offset, 1500000);
    cr_assert_eq(r.value_len, 1);
    cr_assert_eq(rn_batch_stream_next(&s, 0, &r), 1);
    cr_assert_eq(r.offset, 1500001);
    cr_assert_lt(s.cap, 1u << 20, "window grew to %zu bytes", s.cap);
    rn_batch_stream_fini(&s);
    free(p);
}

// records_count = 2^31 - 1 over one real record: refused from the frame's
// declared size before anything is decompressed or allocated; a frame that
// declares no size is bounded by max_uncompressed instead, and then the
// missing records are an error after the real one.
Test(batch_stream, records_count_is_not_trusted)
{
    size_t len;
    uint8_t *p = build_same(RN_BATCH_CODEC_ZSTD, 1, 5, 'v', &len);
    set_be32(p, RN_BATCH_OFF_RECORDS_COUNT, INT32_MAX);
    set_be32(p, RN_BATCH_OFF_LAST_OFFSET_DELTA, INT32_MAX);
    fix_crc(p, len);
    cr_assert_eq(rn_batch_check(p, len, 0, NULL), 0, "a valid header");
    rn_batch_stream s;
    rn_record r;
    cr_assert_eq(rn_batch_stream_init(&s, p, len, 0, 0), -RN_E_BATCH_BAD_COUNT);
    free(p);

    /* Three records claimed, one there, no declared size. */
    uint8_t *q = build_same(RN_BATCH_CODEC_ZSTD, 1, 5, 'v', &len);
    const uint8_t *frame = q + RN_BATCH_HEADER_LEN;
    size_t flen = len - RN_BATCH_HEADER_LEN;
    unsigned long long csize = ZSTD_getFrameContentSize(frame, flen);
    uint8_t plain[64];
    cr_assert_eq(ZSTD_decompress(plain, sizeof(plain), frame, flen), csize);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    uint8_t *b = calloc(1, RN_BATCH_HEADER_LEN + 256);
    memcpy(b, q, RN_BATCH_HEADER_LEN);
    ZSTD_outBuffer o = {b + RN_BATCH_HEADER_LEN, 256, 0};
    ZSTD_inBuffer in = {plain, (size_t)csize, 0};
    cr_assert_eq(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cc);
    len = RN_BATCH_HEADER_LEN + o.pos;
    set_be32(b, RN_BATCH_OFF_LENGTH, (uint32_t)(len - RN_BATCH_LOG_OVERHEAD));
    set_be32(b, RN_BATCH_OFF_RECORDS_COUNT, 3);
    set_be32(b, RN_BATCH_OFF_LAST_OFFSET_DELTA, 2);
    fix_crc(b, len);
    cr_assert_eq(rn_batch_stream_init(&s, b, len, 0, 0), 0);
    cr_assert_eq(rn_batch_stream_next(&s, 0, &r), 1);
    cr_assert_eq(r.offset, 0);
    cr_assert_eq(rn_batch_stream_next(&s, 0, &r), -RN_E_BATCH_BAD_RECORD);
    cr_assert_lt(s.cap, 1u << 20);
    rn_batch_stream_fini(&s);
    free(b);
    free(q);
}

// A frame that declares no size and holds more than max_uncompressed: the
// records before the bound come out, then BAD_COMPRESSION; the window stays
// small.
Test(batch_stream, undeclared_size_stops_at_the_bound)
{
    size_t plain_len;
    uint8_t *plain = build_same(RN_BATCH_CODEC_NONE, 40000, 100, 'z', &plain_len);
    const uint8_t *rec = plain + RN_BATCH_HEADER_LEN;
    size_t rec_len = plain_len - RN_BATCH_HEADER_LEN; /* ~4.3 MB */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    cr_assert_eq(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)), 0);
    /* A window the 1 MiB bound accepts (a larger one is refused up front). */
    cr_assert_eq(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 18)), 0);
    size_t cap = ZSTD_compressBound(rec_len);
    uint8_t *p = calloc(1, RN_BATCH_HEADER_LEN + cap);
    memcpy(p, plain, RN_BATCH_HEADER_LEN);
    ZSTD_outBuffer o = {p + RN_BATCH_HEADER_LEN, cap, 0};
    ZSTD_inBuffer in = {rec, rec_len, 0};
    cr_assert_eq(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cc);
    size_t len = RN_BATCH_HEADER_LEN + o.pos;
    cr_assert_eq(ZSTD_getFrameContentSize(p + RN_BATCH_HEADER_LEN, o.pos),
                 ZSTD_CONTENTSIZE_UNKNOWN);
    p[RN_BATCH_OFF_ATTRIBUTES + 1] = RN_BATCH_CODEC_ZSTD;
    set_be32(p, RN_BATCH_OFF_LENGTH, (uint32_t)(len - RN_BATCH_LOG_OVERHEAD));
    fix_crc(p, len);

    rn_batch_stream s;
    rn_record r;
    cr_assert_eq(rn_batch_stream_init(&s, p, len, 1u << 20, 0), 0);
    int rc, n = 0;
    while ((rc = rn_batch_stream_next(&s, 0, &r)) == 1)
        n++;
    cr_assert_eq(rc, -RN_E_BATCH_BAD_COMPRESSION);
    cr_assert(n > 1000 && n < 40000, "%d records before the bound", n);
    cr_assert_leq(s.cap, (1u << 20) + (128u << 10));
    rn_batch_stream_fini(&s);

    /* Within a large enough bound it all comes out. */
    cr_assert_eq(rn_batch_stream_init(&s, p, len, 0, 0), 0);
    for (n = 0; (rc = rn_batch_stream_next(&s, 0, &r)) == 1; n++)
        ;
    cr_assert_eq(rc, 0);
    cr_assert_eq(n, 40000);
    rn_batch_stream_fini(&s);
    free(p);
    free(plain);
}

// A declared content size over the bound is refused before anything is
// allocated.
Test(batch_stream, declared_size_over_the_bound)
{
    size_t len;
    uint8_t *p = build_same(RN_BATCH_CODEC_ZSTD, 1000, 2000, 'q', &len);
    rn_batch_stream s;
    cr_assert_eq(rn_batch_stream_init(&s, p, len, 1u << 20, 0), -RN_E_BATCH_BAD_COMPRESSION);
    free(p);
}
