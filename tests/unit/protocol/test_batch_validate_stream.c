/*
 * test_batch_validate_stream.c — rn_batch_validate on compressed batches
 * (protocol/batch.c, "Validation of a compressed batch, streamed"): the
 * records section is streamed through a bounded window, never decompressed
 * whole, and refuses exactly what the in-place walk of the same records
 * refuses, with the same words.
 *
 * The bound is measured by a counting allocator: this binary defines malloc,
 * calloc, realloc and free over glibc's own (__libc_malloc…), and while a
 * validation runs it adds up the bytes live (malloc_usable_size), so the
 * figure covers the codec's state (zstd's context and window) as well as
 * batch.c's window. Before the streaming, a 64 MiB bomb cost 64 MiB here.
 * Under AddressSanitizer, whose allocator must not be bypassed, the hook is
 * off and only the bound's assertions are skipped (the errors still are
 * checked). Batches: batch_helpers.h.
 */
#include <malloc.h>
#include <stdbool.h>

#include "batch_helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNTING 0
#endif
#endif
#ifndef COUNTING
#define COUNTING 1
#endif

/* ---- The counting allocator ------------------------------------------------ */

static bool counting;
static size_t live, peak;

#if COUNTING
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static void count_in(void *p)
{
    if (p && counting) {
        live += malloc_usable_size(p);
        if (live > peak)
            peak = live;
    }
}

static void count_out(void *p)
{
    if (p && counting) {
        size_t u = malloc_usable_size(p);
        live = live > u ? live - u : 0;
    }
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    count_in(p);
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    count_in(p);
    return p;
}

void *realloc(void *p, size_t n)
{
    count_out(p);
    void *q = __libc_realloc(p, n);
    count_in(q ? q : p); /* a failed realloc keeps p */
    return q;
}

void free(void *p)
{
    count_out(p);
    __libc_free(p);
}
#endif

/* rn_batch_validate of p, with the most bytes live during it in *most. */
static int validate_counted(const uint8_t *p, size_t len, size_t max_unc, char *why, size_t wlen,
                            size_t *most)
{
    live = peak = 0;
    counting = true;
    int rc = rn_batch_validate(p, len, 0, max_unc, NULL, why, wlen);
    counting = false;
    *most = peak;
    return rc;
}

/* The working set a compressed validation may use: batch.c's window (256
 * KiB records + 64 KiB) and zstd's state for a 128 KiB window. */
#define BOUND ((size_t)1 << 20)

static void expect_bounded(size_t most, const char *what)
{
    if (!COUNTING)
        return; /* AddressSanitizer: nothing was counted */
    cr_log_info("%s: %zu bytes live at most", what, most);
    cr_assert_lt(most, BOUND, "%s: %zu bytes live during validation, bound %zu", what, most, BOUND);
}

/* ---- Batches ---------------------------------------------------------------- */

/* A zstd compressor with a 128 KiB window (so its decoder's window is small
 * too), with or without the content size in the frame header. */
static ZSTD_CCtx *zstd_small_window(bool declare)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    cr_assert_not_null(c);
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 17);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, declare);
    return c;
}

/* Compress src whole into one zstd frame. */
static uint8_t *zstd_frame(const void *src, size_t n, bool declare, size_t *flen)
{
    ZSTD_CCtx *c = zstd_small_window(declare);
    if (declare)
        ZSTD_CCtx_setPledgedSrcSize(c, n);
    size_t cap = ZSTD_compressBound(n) + 64;
    uint8_t *dst = malloc(cap);
    cr_assert_not_null(dst);
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_outBuffer out = {dst, cap, 0};
    cr_assert_eq(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    *flen = out.pos;
    return dst;
}

/* A zstd frame of n bytes of zeros, without the size declared, made from a
 * small buffer so the test itself never holds n bytes. */
static uint8_t *zstd_zeros(size_t n, size_t *flen)
{
    ZSTD_CCtx *c = zstd_small_window(false);
    static const uint8_t zeros[64 << 10];
    size_t cap = 1 << 20;
    uint8_t *dst = malloc(cap);
    cr_assert_not_null(dst);
    ZSTD_outBuffer out = {dst, cap, 0};
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
        ZSTD_inBuffer in = {zeros, k, 0};
        while (in.pos < in.size)
            cr_assert_not(ZSTD_isError(ZSTD_compressStream2(c, &out, &in, ZSTD_e_continue)));
        done += k;
    }
    ZSTD_inBuffer none = {NULL, 0, 0};
    cr_assert_eq(ZSTD_compressStream2(c, &out, &none, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    *flen = out.pos;
    return dst;
}

/* ---- Records, byte by byte -------------------------------------------------- */

static uint8_t *put_varint(uint8_t *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        *p++ = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    *p++ = (uint8_t)z;
    return p;
}

/* One record as the bytes say it, so each field can be wrong on purpose:
 * key_len / value_len as written (-1 null, -2 invalid) with key_bytes /
 * value_bytes of content (of 'k' / 'v'); n_headers as written, followed by
 * hdr (raw header bytes); extra bytes after them, inside the record; and the
 * length varint off by len_adjust. */
typedef struct raw_record {
    int64_t ts_delta;
    int32_t offset_delta;
    int32_t key_len;
    size_t key_bytes;
    int32_t value_len;
    size_t value_bytes;
    int32_t n_headers;
    uint8_t hdr[8];
    size_t hdr_len;
    size_t extra;
    int32_t len_adjust;
} raw_record;

/* Append r to the buffer at *buf (of *len bytes, grown). */
static void put_record(uint8_t **buf, size_t *len, const raw_record *r)
{
    size_t body = 1 + 10 + 5 + 5 + r->key_bytes + 5 + r->value_bytes + 5 + r->hdr_len + r->extra;
    uint8_t *b = malloc(body);
    cr_assert_not_null(b);
    uint8_t *p = b;
    *p++ = 0; /* attributes */
    p = put_varint(p, r->ts_delta);
    p = put_varint(p, r->offset_delta);
    p = put_varint(p, r->key_len);
    memset(p, 'k', r->key_bytes);
    p += r->key_bytes;
    p = put_varint(p, r->value_len);
    memset(p, 'v', r->value_bytes);
    p += r->value_bytes;
    p = put_varint(p, r->n_headers);
    memcpy(p, r->hdr, r->hdr_len);
    p += r->hdr_len;
    memset(p, 0, r->extra);
    p += r->extra;
    size_t n = (size_t)(p - b);
    uint8_t lv[10];
    uint8_t *le = put_varint(lv, (int64_t)n + r->len_adjust);
    /* Grown geometrically: thousands of records must not copy the buffer
     * thousands of times (AddressSanitizer's realloc always copies). */
    size_t need = *len + (size_t)(le - lv) + n;
    uint8_t *nb = *buf;
    if (!nb || malloc_usable_size(nb) < need) {
        nb = realloc(*buf, need * 2);
        cr_assert_not_null(nb);
    }
    memcpy(nb + *len, lv, (size_t)(le - lv));
    memcpy(nb + *len + (size_t)(le - lv), b, n);
    *buf = nb;
    *len += (size_t)(le - lv) + n;
    free(b);
}

/* A good record: offset_delta d, no key, a value of n bytes, no headers. */
static raw_record good(int32_t d, size_t n)
{
    return (raw_record){
        .offset_delta = d, .key_len = -1, .value_len = (int32_t)n, .value_bytes = n};
}

/* ---- Streamed equals in place ------------------------------------------------ */

#define BIG ((size_t)300 << 10) /* longer than the validation window's 256 KiB */

typedef struct stream_case {
    const char *what;
    raw_record recs[3];
    size_t n_recs;
    int32_t count, last;
    size_t trailing; /* garbage bytes after the records */
    int want;
    const char *says;
} stream_case;

// A poisoned record, small or longer than the validation window (and so
// walked as it streams past), is refused by a zstd batch, declared size or
// not, with the very code and sentence the same records get uncompressed;
// good records of either size pass both ways.
Test(batch_validate_stream, same_verdict_as_in_place)
{
    const stream_case cases[] = {
        {"good, small and big", {good(0, 10), good(1, BIG), good(2, 3)}, 3, 3, 2, 0, 0, ""},
        {"big key, header count -1",
         {{.offset_delta = 0,
           .key_len = (int32_t)BIG,
           .key_bytes = BIG,
           .value_len = -1,
           .n_headers = -1}},
         1,
         1,
         0,
         0,
         E(BATCH_BAD_RECORD),
         "header count -1 is negative"},
        {"big value, header name null",
         {{.offset_delta = 0,
           .key_len = -1,
           .value_len = (int32_t)BIG,
           .value_bytes = BIG,
           .n_headers = 1,
           .hdr = {0x01, 0x01},
           .hdr_len = 2}},
         1,
         1,
         0,
         0,
         E(BATCH_BAD_RECORD),
         "header 0 name is null"},
        {"big value, a byte left in the record",
         {{.offset_delta = 0,
           .key_len = -1,
           .value_len = (int32_t)BIG,
           .value_bytes = BIG,
           .extra = 1}},
         1,
         1,
         0,
         0,
         E(BATCH_BAD_RECORD),
         "1 bytes left inside the record"},
        {"big value running past the record",
         {{.offset_delta = 0, .key_len = -1, .value_len = (int32_t)BIG + 9, .value_bytes = BIG}},
         1,
         1,
         0,
         0,
         E(BATCH_BAD_RECORD),
         "value of 307209 bytes runs past"},
        {"big record running past the records",
         {good(0, 4),
          {.offset_delta = 1,
           .key_len = -1,
           .value_len = (int32_t)BIG,
           .value_bytes = BIG,
           .len_adjust = 100}},
         2,
         2,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "record 1 of 2 (counted from 0): length 307308 runs past the end of the records"},
        {"big record past the records, wrong inside too",
         {good(0, 4),
          {.offset_delta = 1,
           .key_len = -2,
           .value_len = (int32_t)BIG,
           .value_bytes = BIG,
           .len_adjust = 100}},
         2,
         2,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "record 1 of 2 (counted from 0): length"},
        {"big last record short of last_offset_delta",
         {good(0, 4), good(1, BIG)},
         2,
         2,
         2,
         0,
         E(BATCH_BAD_OFFSET_DELTA),
         "the last record's offset_delta 1 is not last_offset_delta 2"},
        {"big record's delta out of order",
         {good(0, 4), good(0, BIG)},
         2,
         2,
         1,
         0,
         E(BATCH_BAD_OFFSET_DELTA),
         "offset_delta 0 does not follow 0"},
        {"big record after max_timestamp",
         {{.ts_delta = 7,
           .offset_delta = 0,
           .key_len = -1,
           .value_len = (int32_t)BIG,
           .value_bytes = BIG}},
         1,
         1,
         0,
         0,
         E(BATCH_BAD_TIMESTAMP),
         "timestamp 1007 is outside"},
        {"small key -2",
         {{.offset_delta = 0, .key_len = -2, .value_len = -1}},
         1,
         1,
         0,
         0,
         E(BATCH_BAD_RECORD),
         "key length -2 is negative"},
        {"missing record",
         {good(0, 10)},
         1,
         2,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "record 1 of 2 (counted from 0): missing"},
        {"trailing bytes after a big record",
         {good(0, BIG)},
         1,
         1,
         0,
         70000,
         E(BATCH_TRAILING_BYTES),
         "records: 70000 bytes after the last of 1 records"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const stream_case *c = &cases[i];
        uint8_t *recs = NULL;
        size_t rlen = 0;
        for (size_t k = 0; k < c->n_recs; k++)
            put_record(&recs, &rlen, &c->recs[k]);
        if (c->trailing) {
            recs = realloc(recs, rlen + c->trailing);
            memset(recs + rlen, 0x7f, c->trailing);
            rlen += c->trailing;
        }
        size_t plen;
        uint8_t *plain = make_batch(recs, rlen, RN_BATCH_CODEC_NONE, c->count, c->last, &plen);
        char want_why[256] = "";
        int want = rn_batch_validate(plain, plen, 0, 0, NULL, want_why, sizeof(want_why));
        cr_assert_eq(want, c->want, "%s: in place %s, want %s (%s)", c->what, rn_errname(want),
                     rn_errname(c->want), want_why);
        cr_assert(strstr(want_why, c->says), "%s: \"%s\" does not say \"%s\"", c->what, want_why,
                  c->says);
        for (int declare = 0; declare < 2; declare++) {
            size_t flen, zlen;
            uint8_t *frame = zstd_frame(recs, rlen, declare, &flen);
            uint8_t *z = make_batch(frame, flen, RN_BATCH_CODEC_ZSTD, c->count, c->last, &zlen);
            char why[256] = "";
            size_t most;
            int rc = validate_counted(z, zlen, 0, why, sizeof(why), &most);
            cr_assert_eq(rc, want, "%s (declared %d): streamed %s, in place %s (%s)", c->what,
                         declare, rn_errname(rc), rn_errname(want), why);
            cr_assert_str_eq(why, want_why, "%s (declared %d)", c->what, declare);
            expect_bounded(most, c->what);
            free(z);
            free(frame);
        }
        free(plain);
        free(recs);
    }
}

/* ---- The bound ----------------------------------------------------------------- */

// A bomb (a zstd frame of 65 MiB of zeros in 10 KB, size not declared) is
// refused for passing the 64 MiB bound, as before, but with at most 1 MiB
// live during the validation (the whole-section decompression it replaced
// held 64 MiB). With the bound raised past it, the zeros are records of
// length 0, refused by name, still within 1 MiB.
Test(batch_validate_stream, bomb_refused_within_a_mebibyte)
{
    size_t flen, len, most;
    uint8_t *frame = zstd_zeros((size_t)65 << 20, &flen);
    uint8_t *p = make_batch(frame, flen, RN_BATCH_CODEC_ZSTD, 1, 0, &len);
    char why[256];
    cr_assert_eq(validate_counted(p, len, 0, why, sizeof(why), &most), E(BATCH_BAD_COMPRESSION));
    cr_assert(strstr(why, "zstd records section decompresses to more than 67108864 bytes"), "%s",
              why);
    expect_bounded(most, "65 MiB bomb");
    cr_assert_eq(validate_counted(p, len, (size_t)128 << 20, why, sizeof(why), &most),
                 E(BATCH_BAD_RECORD));
    cr_assert(strstr(why, "record 0 of 1 (counted from 0): length 0"), "%s", why);
    expect_bounded(most, "65 MiB of zeros allowed through");
    free(p);
    free(frame);
}

// Good batches that expand far past the window pass within 1 MiB: 4,096
// records of 4 KiB (16 MiB) and one record of 4 MiB, declared size or not.
Test(batch_validate_stream, good_batches_within_a_mebibyte)
{
    uint8_t *recs = NULL;
    size_t rlen = 0;
    for (int32_t i = 0; i < 4096; i++)
        put_record(&recs, &rlen,
                   &(raw_record){
                       .offset_delta = i, .key_len = -1, .value_len = 4096, .value_bytes = 4096});
    uint8_t *one = NULL;
    size_t olen = 0;
    put_record(&one, &olen,
               &(raw_record){.offset_delta = 0,
                             .key_len = 3,
                             .key_bytes = 3,
                             .value_len = 4 << 20,
                             .value_bytes = 4 << 20});
    for (int declare = 0; declare < 2; declare++) {
        size_t flen, len, most;
        char why[256] = "";
        uint8_t *frame = zstd_frame(recs, rlen, declare, &flen);
        uint8_t *p = make_batch(frame, flen, RN_BATCH_CODEC_ZSTD, 4096, 4095, &len);
        cr_assert_eq(validate_counted(p, len, 0, why, sizeof(why), &most), 0, "%s", why);
        expect_bounded(most, "4,096 records of 4 KiB");
        free(p);
        free(frame);
        frame = zstd_frame(one, olen, declare, &flen);
        p = make_batch(frame, flen, RN_BATCH_CODEC_ZSTD, 1, 0, &len);
        cr_assert_eq(validate_counted(p, len, 0, why, sizeof(why), &most), 0, "%s", why);
        expect_bounded(most, "one record of 4 MiB");
        free(p);
        free(frame);
    }
    free(recs);
    free(one);
}

// Random damage to the fields around a record too long for the window (its
// length, deltas, key, the value's length, its headers, and the records
// before and after it) gets the same code and sentence streamed as in place.
Test(batch_validate_stream, damaged_big_record_same_verdict)
{
    raw_record big = good(1, BIG);
    big.n_headers = 1;
    memcpy(big.hdr, (uint8_t[]){0x02, 'h', 0x02, 'v'}, 4);
    big.hdr_len = 4;
    raw_record recs[] = {good(0, 10), big, good(2, 5)};
    uint8_t *orig = NULL;
    size_t rlen = 0;
    for (size_t k = 0; k < 3; k++)
        put_record(&orig, &rlen, &recs[k]);
    /* Where the fields are: the first 40 bytes (record 0 and record 1's
     * length, deltas, key and value length) and the last 40 (record 1's
     * headers and record 2). */
    int differ = 0, refused = 0;
    for (int round = 0; round < 400; round++) {
        size_t at = round % 2 ? rnd() % 40 : rlen - 1 - rnd() % 40;
        uint8_t *recs_d = dup_exact(orig, rlen);
        recs_d[at] = (uint8_t)rnd();
        size_t plen, flen, zlen;
        uint8_t *plain = make_batch(recs_d, rlen, RN_BATCH_CODEC_NONE, 3, 2, &plen);
        char want_why[256] = "", why[256] = "";
        int want = rn_batch_validate(plain, plen, 0, 0, NULL, want_why, sizeof(want_why));
        uint8_t *frame = zstd_frame(recs_d, rlen, round % 3 == 0, &flen);
        uint8_t *z = make_batch(frame, flen, RN_BATCH_CODEC_ZSTD, 3, 2, &zlen);
        size_t most;
        int rc = validate_counted(z, zlen, 0, why, sizeof(why), &most);
        differ += rc != want || strcmp(why, want_why) != 0;
        cr_assert_eq(rc, want, "byte %zu = 0x%02x: streamed %s (%s), in place %s (%s)", at,
                     recs_d[at], rn_errname(rc), why, rn_errname(want), want_why);
        cr_assert_str_eq(why, want_why, "byte %zu = 0x%02x", at, recs_d[at]);
        expect_bounded(most, "damaged big record");
        refused += rc != 0;
        if (rc)
            cr_log_info("byte %zu: %s", at, why);
        free(z);
        free(frame);
        free(plain);
        free(recs_d);
    }
    cr_assert_eq(differ, 0);
    cr_assert_gt(refused, 0);
    free(orig);
}
