/*
 * test_codec.c — the four compression codecs of Kafka's batches
 * (protocol/codec.c) through every reader of batch.c: rn_batch_verify,
 * rn_batch_iter, rn_batch_validate and rn_batch_stream.
 *
 * Batches are compressed here with the libraries themselves (zlib, snappy,
 * lz4frame, zstd), snappy both raw (as librdkafka writes it) and in
 * snappy-java's xerial framing (as Kafka's Java client writes it); and read
 * from golden files that a real Kafka client wrote (data/kafka_python_*.bin,
 * made by data/make_kafka_python.py). Bombs of each codec are refused at the
 * same bound as zstd's, before allocation where the format declares a size;
 * damaged frames are BAD_COMPRESSION or a record error, never a crash (run
 * under ASan in CI). Batches are copied to buffers of their exact size.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "protocol/batch.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

#define E(x) (-RN_E_##x)

/* ---- Compressors (the libraries themselves) ------------------------------ */

enum variant { GZIP, SNAPPY_RAW, SNAPPY_XERIAL, LZ4_SIZED, LZ4_UNSIZED, ZSTD, N_VARIANTS };
static const char *const variant_name[] = {"gzip",      "snappy raw",  "snappy xerial",
                                           "lz4 sized", "lz4 unsized", "zstd"};
static const int variant_codec[] = {RN_BATCH_CODEC_GZIP,   RN_BATCH_CODEC_SNAPPY,
                                    RN_BATCH_CODEC_SNAPPY, RN_BATCH_CODEC_LZ4,
                                    RN_BATCH_CODEC_LZ4,    RN_BATCH_CODEC_ZSTD};

static uint8_t *gzip_compress(const void *src, size_t n, size_t *out_len)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n) + 64;
    uint8_t *dst = malloc(cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return dst;
}

static uint8_t *snappy_raw(const void *src, size_t n, size_t *out_len)
{
    size_t cap = snappy_max_compressed_length(n);
    uint8_t *dst = malloc(cap);
    cr_assert_eq(snappy_compress(src, n, (char *)dst, &cap), SNAPPY_OK);
    *out_len = cap;
    return dst;
}

/* snappy-java's SnappyOutputStream: header, then [len BE][raw block] per block. */
static uint8_t *snappy_xerial(const void *src, size_t n, size_t block, size_t *out_len)
{
    static const uint8_t hdr[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    size_t cap = 16 + (n / block + 1) * (4 + snappy_max_compressed_length(block));
    uint8_t *dst = malloc(cap);
    memcpy(dst, hdr, 16);
    size_t pos = 16;
    for (size_t off = 0; off < n; off += block) {
        size_t take = n - off < block ? n - off : block;
        size_t clen = cap - pos - 4;
        cr_assert_eq(snappy_compress((const char *)src + off, take, (char *)dst + pos + 4, &clen),
                     SNAPPY_OK);
        uint32_t be = htobe32((uint32_t)clen);
        memcpy(dst + pos, &be, 4);
        pos += 4 + clen;
    }
    *out_len = pos;
    return dst;
}

static uint8_t *lz4_frame(const void *src, size_t n, bool sized, size_t *out_len)
{
    LZ4F_preferences_t prefs = {0};
    prefs.frameInfo.blockMode = LZ4F_blockIndependent; /* as Kafka's clients write */
    prefs.frameInfo.contentSize = sized ? n : 0;
    size_t cap = LZ4F_compressFrameBound(n, &prefs);
    uint8_t *dst = malloc(cap);
    size_t z = LZ4F_compressFrame(dst, cap, src, n, &prefs);
    cr_assert_not(LZ4F_isError(z), "%s", LZ4F_getErrorName(z));
    *out_len = z;
    return dst;
}

static uint8_t *zstd_frame(const void *src, size_t n, size_t *out_len)
{
    size_t cap = ZSTD_compressBound(n);
    uint8_t *dst = malloc(cap);
    size_t z = ZSTD_compress(dst, cap, src, n, 3);
    cr_assert_not(ZSTD_isError(z));
    *out_len = z;
    return dst;
}

static uint8_t *compress_with(enum variant v, const void *src, size_t n, size_t *out_len)
{
    switch (v) {
    case GZIP:
        return gzip_compress(src, n, out_len);
    case SNAPPY_RAW:
        return snappy_raw(src, n, out_len);
    case SNAPPY_XERIAL:
        return snappy_xerial(src, n, 32 << 10, out_len);
    case LZ4_SIZED:
        return lz4_frame(src, n, true, out_len);
    case LZ4_UNSIZED:
        return lz4_frame(src, n, false, out_len);
    default:
        return zstd_frame(src, n, out_len);
    }
}

/* ---- Batches ------------------------------------------------------------- */

static uint32_t ref_crc32c(const void *buf, size_t len)
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

static void fix_crc(uint8_t *p, size_t len)
{
    uint32_t be = htobe32(ref_crc32c(p + RN_BATCH_CRC_START, len - RN_BATCH_CRC_START));
    memcpy(p + RN_BATCH_OFF_CRC, &be, 4);
}

/* The header of plain (an uncompressed batch) around a new records section
 * compressed with codec; the CRC fixed. */
static uint8_t *rewrap(const uint8_t *plain, const void *section, size_t slen, int codec,
                       size_t *len)
{
    size_t size = RN_BATCH_HEADER_LEN + slen;
    uint8_t *p = malloc(size);
    memcpy(p, plain, RN_BATCH_HEADER_LEN);
    memcpy(p + RN_BATCH_HEADER_LEN, section, slen);
    uint32_t be = htobe32((uint32_t)(size - RN_BATCH_LOG_OVERHEAD));
    memcpy(p + RN_BATCH_OFF_LENGTH, &be, 4);
    uint16_t attr = htobe16((uint16_t)codec);
    memcpy(p + RN_BATCH_OFF_ATTRIBUTES, &attr, 2);
    fix_crc(p, size);
    *len = size;
    return p;
}

/* n records: key "k<i>", value of vlen bytes ("v<i>" then a repeating fill),
 * timestamps 1000 + i; every third has a header. */
static uint8_t *plain_batch(int n, size_t vlen, size_t *len)
{
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    char *val = malloc(vlen + 1);
    for (int i = 0; i < n; i++) {
        char key[32];
        int kl = snprintf(key, sizeof(key), "k%d", i);
        for (size_t k = 0; k < vlen; k++)
            val[k] = (char)('a' + (k + (size_t)i) % 23);
        snprintf(val, vlen + 1 < 12 ? vlen + 1 : 12, "v%d", i);
        rn_record_header h = {(const uint8_t *)"hdr", 3, (const uint8_t *)key, kl};
        cr_assert_eq(
            rn_batch_builder_add(b, 1000 + i, key, (size_t)kl, val, vlen, &h, i % 3 == 0 ? 1 : 0),
            0);
    }
    free(val);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    return out;
}

static uint8_t *compressed_batch(enum variant v, const uint8_t *plain, size_t plen, size_t *len)
{
    size_t slen;
    uint8_t *sec = compress_with(v, plain + RN_BATCH_HEADER_LEN, plen - RN_BATCH_HEADER_LEN, &slen);
    uint8_t *p = rewrap(plain, sec, slen, variant_codec[v], len);
    free(sec);
    return p;
}

/* The records of a and b (iterated) are the same, field by field. */
static void same_records(const uint8_t *plain, size_t plen, const uint8_t *z, size_t zlen,
                         const char *what)
{
    rn_batch_iter a, b;
    cr_assert_eq(rn_batch_iter_init(&a, plain, plen, 0), 0);
    cr_assert_eq(rn_batch_iter_init(&b, z, zlen, 0), 0, "%s", what);
    rn_record ra, rb;
    int n = 0, rc;
    while ((rc = rn_batch_iter_next(&a, &ra)) == 1) {
        cr_assert_eq(rn_batch_iter_next(&b, &rb), 1, "%s: record %d", what, n);
        cr_assert_eq(ra.offset, rb.offset);
        cr_assert_eq(ra.timestamp, rb.timestamp);
        cr_assert_eq(ra.key_len, rb.key_len);
        cr_assert_eq(ra.value_len, rb.value_len);
        cr_assert_eq(memcmp(ra.key, rb.key, (size_t)ra.key_len), 0);
        cr_assert_eq(memcmp(ra.value, rb.value, (size_t)ra.value_len), 0);
        cr_assert_eq(ra.headers_len, rb.headers_len);
        cr_assert_eq(memcmp(ra.headers, rb.headers, ra.headers_len), 0);
        n++;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(rn_batch_iter_next(&b, &rb), 0, "%s: end", what);
    rn_batch_iter_fini(&a);
    rn_batch_iter_fini(&b);
}

/* Stream z from offset from; the records must be plain's from there on. */
static void same_streamed(const uint8_t *plain, size_t plen, const uint8_t *z, size_t zlen,
                          int64_t from, size_t max_record, const char *what)
{
    rn_batch_iter a;
    cr_assert_eq(rn_batch_iter_init(&a, plain, plen, 0), 0);
    rn_batch_stream s;
    cr_assert_eq(rn_batch_stream_init(&s, z, zlen, 0, max_record), 0, "%s", what);
    rn_record ra, rb;
    int rc;
    while ((rc = rn_batch_iter_next(&a, &ra)) == 1) {
        if (ra.offset < from)
            continue;
        int sr = rn_batch_stream_next(&s, from, &rb);
        cr_assert_eq(sr, 1, "%s: offset %lld: %s", what, (long long)ra.offset, rn_errname(sr));
        cr_assert_eq(ra.offset, rb.offset);
        cr_assert_eq(ra.value_len, rb.value_len);
        cr_assert_eq(memcmp(ra.value, rb.value, (size_t)ra.value_len), 0);
        cr_assert_eq(ra.headers_len, rb.headers_len);
    }
    cr_assert_eq(rn_batch_stream_next(&s, from, &rb), 0, "%s: end", what);
    rn_batch_stream_fini(&s);
    rn_batch_iter_fini(&a);
}

/* ---- Round trips ----------------------------------------------------------- */

// Every codec (snappy in both framings, lz4 with and without a declared
// size) reads back the very records of the uncompressed batch through
// verify, validate, the iterator and the stream (from 0, from the middle,
// with a window smaller than the xerial block).
Test(codec, every_codec_reads_back_through_every_reader)
{
    size_t plen;
    uint8_t *plain = plain_batch(300, 400, &plen); /* ~130 KB: several snappy/lz4 blocks */
    for (int v = 0; v < N_VARIANTS; v++) {
        size_t zlen;
        uint8_t *z = compressed_batch(v, plain, plen, &zlen);
        cr_assert_lt(zlen, plen, "%s compresses", variant_name[v]);
        rn_batch_header h;
        cr_assert_eq(rn_batch_check(z, zlen, 0, &h), 0);
        cr_assert_eq(h.attributes & RN_BATCH_CODEC_MASK, variant_codec[v]);
        cr_assert_eq(rn_batch_verify(z, zlen, 0, 0), 0, "%s", variant_name[v]);
        char why[256] = "";
        int rc = rn_batch_validate(z, zlen, 0, 0, NULL, why, sizeof(why));
        cr_assert_eq(rc, 0, "%s: %s %s", variant_name[v], rn_errname(rc), why);
        same_records(plain, plen, z, zlen, variant_name[v]);
        same_streamed(plain, plen, z, zlen, 0, 0, variant_name[v]);
        same_streamed(plain, plen, z, zlen, 150, 0, variant_name[v]);
        same_streamed(plain, plen, z, zlen, 299, 1024, variant_name[v]);
        /* The exact decompressed size is within the bound; one byte less is not. */
        size_t n = plen - RN_BATCH_HEADER_LEN;
        cr_assert_eq(rn_batch_verify(z, zlen, 0, n), 0, "%s at the bound", variant_name[v]);
        cr_assert_eq(rn_batch_verify(z, zlen, 0, n - 1), E(BATCH_BAD_COMPRESSION),
                     "%s below the bound", variant_name[v]);
        free(z);
    }
    free(plain);
}

// A gzip section of two members (Java's GZIPInputStream reads on) decodes;
// bytes after a gzip member, an lz4 frame or a snappy block do not.
Test(codec, gzip_members_and_bytes_after_a_frame)
{
    size_t plen;
    uint8_t *plain = plain_batch(40, 100, &plen);
    const uint8_t *rec = plain + RN_BATCH_HEADER_LEN;
    size_t rlen = plen - RN_BATCH_HEADER_LEN, half = rlen / 2, l1, l2, len;
    uint8_t *m1 = gzip_compress(rec, half, &l1), *m2 = gzip_compress(rec + half, rlen - half, &l2);
    uint8_t *two = malloc(l1 + l2);
    memcpy(two, m1, l1);
    memcpy(two + l1, m2, l2);
    uint8_t *z = rewrap(plain, two, l1 + l2, RN_BATCH_CODEC_GZIP, &len);
    cr_assert_eq(rn_batch_verify(z, len, 0, 0), 0);
    same_streamed(plain, plen, z, len, 0, 0, "two gzip members");
    free(z);
    free(two);
    free(m1);
    free(m2);

    for (int v = 0; v < N_VARIANTS; v++) {
        size_t slen;
        uint8_t *sec = compress_with(v, rec, rlen, &slen);
        uint8_t *longer = malloc(slen + 1);
        memcpy(longer, sec, slen);
        longer[slen] = 0x00;
        z = rewrap(plain, longer, slen + 1, variant_codec[v], &len);
        cr_assert_eq(rn_batch_verify(z, len, 0, 0), E(BATCH_BAD_COMPRESSION), "%s + 1 byte",
                     variant_name[v]);
        rn_batch_stream s;
        rn_record r;
        int rc = rn_batch_stream_init(&s, z, len, 0, 0);
        if (rc == 0) {
            while ((rc = rn_batch_stream_next(&s, 0, &r)) == 1)
                ;
            rn_batch_stream_fini(&s);
        }
        cr_assert_eq(rc, E(BATCH_BAD_COMPRESSION), "%s + 1 byte (stream): %s", variant_name[v],
                     rn_errname(rc));
        free(z);
        free(longer);
        free(sec);
    }
    free(plain);
}

// A batch whose attributes name a codec its records are not compressed with
// passes rn_batch_check (which never decompresses) and is BAD_COMPRESSION
// from every reader that does; codecs 5, 6 and 7 stay BAD_ATTRIBUTES.
Test(codec, codec_attribute_over_plain_records)
{
    size_t plen, len;
    uint8_t *plain = plain_batch(5, 10, &plen);
    for (int codec = 1; codec <= 7; codec++) {
        uint8_t *p =
            rewrap(plain, plain + RN_BATCH_HEADER_LEN, plen - RN_BATCH_HEADER_LEN, codec, &len);
        int want = codec <= 4 ? E(BATCH_BAD_COMPRESSION) : E(BATCH_BAD_ATTRIBUTES);
        cr_assert_eq(rn_batch_check(p, len, 0, NULL), codec <= 4 ? 0 : want, "codec %d", codec);
        cr_assert_eq(rn_batch_verify(p, len, 0, 0), want, "codec %d", codec);
        rn_batch_iter it;
        cr_assert_eq(rn_batch_iter_init(&it, p, len, 0), want, "codec %d", codec);
        char why[256] = "";
        cr_assert_eq(rn_batch_validate(p, len, 0, 0, NULL, why, sizeof(why)), want);
        cr_assert(why[0], "codec %d: a reason", codec);
        if (codec <= 4)
            cr_assert(strstr(why, rn_codec_name(codec)), "codec %d: %s", codec, why);
        free(p);
    }
    free(plain);
}

/* ---- Golden batches from a real Kafka client ------------------------------- */

static uint8_t *read_file(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* The 20 records make_kafka_python.py wrote, checked one by one. */
static void expect_golden(const uint8_t *p, size_t len, const char *what)
{
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, p, len, 0), 0, "%s", what);
    rn_record r;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(rn_batch_iter_next(&it, &r), 1, "%s: record %d", what, i);
        cr_assert_eq(r.offset, i);
        cr_assert_eq(r.timestamp, 1700000000000 + i);
        char want[32];
        if (i == 5 || i == 6) {
            cr_assert_null(r.key);
            cr_assert_eq(r.key_len, -1);
        } else {
            int kl = snprintf(want, sizeof(want), "key-%d", i);
            cr_assert_eq(r.key_len, kl);
            cr_assert_eq(memcmp(r.key, want, (size_t)kl), 0);
        }
        int vl = snprintf(want, sizeof(want), "value-%d ", i);
        cr_assert_eq(r.value_len, vl * 200, "%s: record %d", what, i);
        for (int k = 0; k < 200; k++)
            cr_assert_eq(memcmp(r.value + k * vl, want, (size_t)vl), 0);
        cr_assert_eq(r.n_headers, i == 3 ? 1 : 0);
        if (i == 3) {
            const uint8_t *hp = r.headers;
            rn_record_header h;
            cr_assert_eq(rn_record_header_next(&hp, r.headers + r.headers_len, &h), 1);
            cr_assert_eq(h.name_len, 1);
            cr_assert_eq(h.name[0], 'h');
            cr_assert_eq(h.value_len, 2);
            cr_assert_eq(memcmp(h.value, "v3", 2), 0);
        }
    }
    cr_assert_eq(rn_batch_iter_next(&it, &r), 0);
    rn_batch_iter_fini(&it);
}

// Batches written by python3-kafka's DefaultRecordBatchBuilder with gzip,
// snappy (xerial framing, two blocks), lz4 and zstd: runnel's readers take
// a real Kafka client's bytes as they are, records and headers intact.
Test(codec, kafka_python_golden_batches)
{
    static const struct {
        const char *file;
        int codec;
    } files[] = {{"kafka_python_gzip.bin", RN_BATCH_CODEC_GZIP},
                 {"kafka_python_snappy.bin", RN_BATCH_CODEC_SNAPPY},
                 {"kafka_python_lz4.bin", RN_BATCH_CODEC_LZ4},
                 {"kafka_python_zstd.bin", RN_BATCH_CODEC_ZSTD}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len;
        uint8_t *p = read_file(files[i].file, &len);
        rn_batch_header h;
        cr_assert_eq(rn_batch_check(p, len, 0, &h), 0, "%s", files[i].file);
        cr_assert_eq(h.attributes & RN_BATCH_CODEC_MASK, files[i].codec);
        cr_assert_eq(h.records_count, 20);
        cr_assert_eq(rn_batch_verify(p, len, 0, 0), 0, "%s", files[i].file);
        char why[256] = "";
        int rc = rn_batch_validate(p, len, 0, 0, NULL, why, sizeof(why));
        cr_assert_eq(rc, 0, "%s: %s", files[i].file, why);
        expect_golden(p, len, files[i].file);
        rn_batch_stream s;
        rn_record r;
        cr_assert_eq(rn_batch_stream_init(&s, p, len, 0, 0), 0);
        int n = 0;
        while ((rc = rn_batch_stream_next(&s, 7, &r)) == 1)
            cr_assert_eq(r.offset, 7 + n++);
        cr_assert_eq(rc, 0, "%s: %s", files[i].file, rn_errname(rc));
        cr_assert_eq(n, 13);
        rn_batch_stream_fini(&s);
        free(p);
    }
}

/* ---- Bombs ------------------------------------------------------------------ */

/* Every reader refuses the batch z with BAD_COMPRESSION under bound max. */
static void refused_everywhere(const uint8_t *z, size_t len, size_t max, const char *what,
                               const char *reason)
{
    cr_assert_eq(rn_batch_check(z, len, 0, NULL), 0, "%s: the header is fine", what);
    cr_assert_eq(rn_batch_verify(z, len, 0, max), E(BATCH_BAD_COMPRESSION), "%s", what);
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, z, len, max), E(BATCH_BAD_COMPRESSION), "%s", what);
    char why[256] = "";
    cr_assert_eq(rn_batch_validate(z, len, 0, max, NULL, why, sizeof(why)),
                 E(BATCH_BAD_COMPRESSION), "%s", what);
    cr_assert(strstr(why, reason), "%s: %s", what, why);
    rn_batch_stream s;
    rn_record r;
    int rc = rn_batch_stream_init(&s, z, len, max, 0);
    if (rc == 0) {
        /* From offset 1: a record too large to return is passed over, so it
         * is decompressed through (in a small window) rather than refused. */
        while ((rc = rn_batch_stream_next(&s, 1, &r)) == 1)
            ;
        cr_assert_lt(s.cap, (size_t)max + (1u << 20), "%s: window %zu", what, s.cap);
        rn_batch_stream_fini(&s);
    }
    cr_assert_eq(rc, E(BATCH_BAD_COMPRESSION), "%s (stream): %s", what, rn_errname(rc));
}

/* One record whose value is vlen zero bytes, uncompressed. */
static uint8_t *zeros_batch(size_t vlen, size_t *len)
{
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    uint8_t *zeros = calloc(1, vlen);
    cr_assert_eq(rn_batch_builder_add(b, 1000, NULL, 0, zeros, vlen, NULL, 0), 0);
    free(zeros);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    return out;
}

// gzip declares no size: 64 MiB of zeros (~64 KB compressed) is read one
// byte past the bound and refused, by every reader, the stream never
// holding more than the bound; under a bound it fits, it is a record.
Test(codec, gzip_bomb_of_64_mib)
{
    size_t plen, zlen;
    uint8_t *plain = zeros_batch((64u << 20) + 64, &plen);
    uint8_t *z = compressed_batch(GZIP, plain, plen, &zlen);
    cr_assert_lt(zlen, 128u << 10, "the bomb is small (%zu bytes)", zlen);
    refused_everywhere(z, zlen, 0, "gzip 64 MiB, default bound",
                       "gzip records section decompresses to more than 67108864 bytes");
    refused_everywhere(z, zlen, 1u << 20, "gzip 64 MiB, 1 MiB bound",
                       "decompresses to more than 1048576 bytes");
    cr_assert_eq(rn_batch_verify(z, zlen, 0, plen), 0, "allowed through, it reads");
    free(z);
    free(plain);
}

// An lz4 frame whose header claims 2^40 bytes is refused before any output
// is allocated (a malloc of 1 TiB would fail or abort under ASan); a real
// lz4 bomb without a declared size stops one byte past the bound.
Test(codec, lz4_declared_huge_and_undeclared_bomb)
{
    size_t plen, zlen;
    uint8_t *plain = zeros_batch(1024, &plen);
    const uint8_t *rec = plain + RN_BATCH_HEADER_LEN;
    size_t rlen = plen - RN_BATCH_HEADER_LEN;
    LZ4F_cctx *c;
    cr_assert_not(LZ4F_isError(LZ4F_createCompressionContext(&c, LZ4F_VERSION)));
    LZ4F_preferences_t prefs = {0};
    prefs.frameInfo.contentSize = 1ull << 40;
    size_t cap = LZ4F_compressBound(rlen, &prefs) + 64;
    uint8_t *frame = malloc(cap);
    size_t pos = LZ4F_compressBegin(c, frame, cap, &prefs);
    cr_assert_not(LZ4F_isError(pos));
    size_t n = LZ4F_compressUpdate(c, frame + pos, cap - pos, rec, rlen, NULL);
    cr_assert_not(LZ4F_isError(n));
    pos += n;
    n = LZ4F_flush(c, frame + pos, cap - pos, NULL);
    cr_assert_not(LZ4F_isError(n));
    pos += n;
    memset(frame + pos, 0, 4); /* the end mark, written by hand: the size lies */
    pos += 4;
    LZ4F_freeCompressionContext(c);
    uint8_t *z = rewrap(plain, frame, pos, RN_BATCH_CODEC_LZ4, &zlen);
    refused_everywhere(z, zlen, 0, "lz4 claiming 2^40",
                       "lz4 frame declares 1099511627776 bytes of records, more than the "
                       "67108864 allowed");
    free(z);
    free(frame);
    free(plain);

    plain = zeros_batch(8u << 20, &plen);
    z = compressed_batch(LZ4_UNSIZED, plain, plen, &zlen);
    cr_assert_lt(zlen, 64u << 10);
    refused_everywhere(z, zlen, 1u << 20, "lz4 8 MiB undeclared",
                       "lz4 records section decompresses to more than 1048576 bytes");
    free(z);
    z = compressed_batch(LZ4_SIZED, plain, plen, &zlen);
    refused_everywhere(z, zlen, 1u << 20, "lz4 8 MiB declared", "lz4 frame declares");
    free(z);
    free(plain);
}

// A snappy block declares its size in its first varint: one claiming 2^32
// bytes (past snappy's 32-bit limit), 2^32 - 1 bytes or 100 MiB is refused
// from that header alone; so is a xerial stream whose blocks add up past the
// bound, before any block is decompressed.
Test(codec, snappy_block_claiming_huge_sizes)
{
    size_t plen, len;
    uint8_t *plain = plain_batch(3, 10, &plen);
    static const struct {
        const char *what, *reason;
        uint8_t bytes[8];
        size_t n;
    } claims[] = {
        {"2^32", "snappy block header is corrupt", {0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0}, 8},
        {"2^32 - 1",
         "snappy frame declares 4294967295 bytes",
         {0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0},
         8},
        {"100 MiB", "snappy frame declares 104857600 bytes", {0x80, 0x80, 0x80, 0x32, 0, 0, 0}, 8},
    };
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        uint8_t *z = rewrap(plain, claims[i].bytes, claims[i].n, RN_BATCH_CODEC_SNAPPY, &len);
        refused_everywhere(z, len, 0, claims[i].what, claims[i].reason);
        free(z);
    }
    /* xerial: 40 blocks, each a 2 MiB run of zeros in ~100 bytes: 80 MiB. */
    uint8_t *zeros = calloc(1, 2u << 20);
    size_t blen;
    uint8_t *blk = snappy_raw(zeros, 2u << 20, &blen);
    size_t slen = 16 + 40 * (4 + blen);
    uint8_t *sec = malloc(slen);
    memcpy(sec, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16);
    for (int k = 0; k < 40; k++) {
        uint32_t be = htobe32((uint32_t)blen);
        memcpy(sec + 16 + k * (4 + blen), &be, 4);
        memcpy(sec + 16 + k * (4 + blen) + 4, blk, blen);
    }
    uint8_t *z = rewrap(plain, sec, slen, RN_BATCH_CODEC_SNAPPY, &len);
    refused_everywhere(z, len, 0, "xerial 80 MiB", "more than the 67108864 allowed");
    free(z);
    free(sec);
    free(blk);
    free(zeros);
    free(plain);
}

/* ---- Damage ----------------------------------------------------------------- */

static int is_record_error(int rc)
{
    return rc == E(BATCH_BAD_RECORD) || rc == E(BATCH_BAD_VARINT) ||
           rc == E(BATCH_BAD_OFFSET_DELTA) || rc == E(BATCH_TRAILING_BYTES) ||
           rc == E(BATCH_BAD_TIMESTAMP) || rc == E(BATCH_BAD_COUNT);
}

/* Read z every way; return verify's code, checking the others agree on
 * success and never crash. */
static int read_every_way(const uint8_t *z, size_t len)
{
    int v = rn_batch_verify(z, len, 0, 1u << 20);
    char why[256];
    int w = rn_batch_validate(z, len, 0, 1u << 20, NULL, why, sizeof(why));
    if (v == 0)
        cr_assert(w == 0 || w == E(BATCH_BAD_TIMESTAMP), "validate %s", rn_errname(w));
    rn_batch_stream s;
    rn_record r;
    int rc = rn_batch_stream_init(&s, z, len, 1u << 20, 0);
    if (rc == 0) {
        while ((rc = rn_batch_stream_next(&s, 0, &r)) == 1)
            ;
        rn_batch_stream_fini(&s);
    }
    if (v == 0)
        cr_assert_eq(rc, 0, "stream %s where verify passed", rn_errname(rc));
    return v;
}

// Each byte of each codec's frame flipped (CRC fixed, so only decompression
// can tell), and the frame cut at every length: BAD_COMPRESSION or a record
// error, never a crash or a read out of bounds; the flips in a frame's
// header or checksum are BAD_COMPRESSION.
Test(codec, damaged_frames_never_crash)
{
    size_t plen;
    uint8_t *plain = plain_batch(20, 30, &plen);
    for (int v = 0; v < N_VARIANTS; v++) {
        size_t zlen;
        uint8_t *good = compressed_batch(v, plain, plen, &zlen);
        int bad_compression = 0;
        for (size_t at = RN_BATCH_HEADER_LEN; at < zlen; at++) {
            uint8_t *q = malloc(zlen);
            memcpy(q, good, zlen);
            q[at] ^= 0x5a;
            fix_crc(q, zlen);
            int rc = read_every_way(q, zlen);
            cr_assert(rc == 0 || rc == E(BATCH_BAD_COMPRESSION) || is_record_error(rc),
                      "%s byte %zu: %s", variant_name[v], at, rn_errname(rc));
            bad_compression += rc == E(BATCH_BAD_COMPRESSION);
            free(q);
        }
        cr_assert_gt(bad_compression, 0, "%s", variant_name[v]);
        /* The first byte of every format is a magic or a length. */
        uint8_t *q = malloc(zlen);
        memcpy(q, good, zlen);
        q[RN_BATCH_HEADER_LEN] ^= 0xff;
        fix_crc(q, zlen);
        cr_assert_eq(read_every_way(q, zlen), E(BATCH_BAD_COMPRESSION), "%s magic",
                     variant_name[v]);
        free(q);
        for (size_t cut = RN_BATCH_HEADER_LEN; cut < zlen; cut++) {
            size_t clen;
            uint8_t *c = rewrap(good, good + RN_BATCH_HEADER_LEN, cut - RN_BATCH_HEADER_LEN,
                                variant_codec[v], &clen);
            int rc = read_every_way(c, clen);
            cr_assert(rc == E(BATCH_BAD_COMPRESSION) || is_record_error(rc), "%s cut at %zu: %s",
                      variant_name[v], cut, rn_errname(rc));
            free(c);
        }
        free(good);
    }
    free(plain);
}

// The codec reader alone: a reader of each codec hands out the section in
// pieces of any size, one byte at a time included, and says when it ends.
Test(codec, reader_in_one_byte_pieces)
{
    size_t plen;
    uint8_t *plain = plain_batch(50, 70, &plen);
    const uint8_t *rec = plain + RN_BATCH_HEADER_LEN;
    size_t rlen = plen - RN_BATCH_HEADER_LEN;
    for (int v = 0; v < N_VARIANTS; v++) {
        size_t slen;
        uint8_t *sec = compress_with(v, rec, rlen, &slen);
        rn_codec_reader *r;
        char err[128];
        cr_assert_eq(rn_codec_reader_new(&r, variant_codec[v], sec, slen, rlen, err, sizeof(err)),
                     0, "%s: %s", variant_name[v], err);
        uint8_t *out = malloc(rlen + 1);
        size_t pos = 0;
        bool done = false;
        while (!done) {
            size_t got;
            cr_assert_eq(rn_codec_reader_read(r, out + pos, 1, &got, &done), 0, "%s at %zu: %s",
                         variant_name[v], pos, rn_codec_reader_why(r));
            cr_assert(got > 0 || done);
            pos += got;
            cr_assert_leq(pos, rlen);
        }
        cr_assert_eq(pos, rlen, "%s", variant_name[v]);
        cr_assert_eq(memcmp(out, rec, rlen), 0, "%s", variant_name[v]);
        rn_codec_reader_free(r);
        free(out);
        free(sec);
    }
    free(plain);
}

/* ---- Writing ----------------------------------------------------------------- */

// The builder writes every codec (what librunnel's producer and `runnel
// produce -z` send): the batch carries the codec in its attributes, is
// smaller than the records, and reads back the very records of an
// uncompressed build through every reader.
Test(codec, builder_writes_every_codec)
{
    for (int codec = RN_BATCH_CODEC_GZIP; codec <= RN_BATCH_CODEC_ZSTD; codec++) {
        rn_batch_builder_opts o = {
            .codec = codec, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
        rn_batch_builder *b, *pb;
        cr_assert_eq(rn_batch_builder_new(&b, &o), 0, "%s", rn_codec_name(codec));
        cr_assert_eq(rn_batch_builder_new(&pb, NULL), 0);
        for (int round = 0; round < 2; round++) { /* the writer is reused */
            for (int i = 0; i < 500; i++) {
                char v[128];
                int vl =
                    snprintf(v, sizeof(v), "value %d of round %d, compressible text", i, round);
                cr_assert_eq(rn_batch_builder_add(b, 1000 + i, "k", 1, v, (size_t)vl, NULL, 0), 0);
                cr_assert_eq(rn_batch_builder_add(pb, 1000 + i, "k", 1, v, (size_t)vl, NULL, 0), 0);
            }
            uint8_t *z, *plain;
            size_t zlen, plen;
            cr_assert_eq(rn_batch_builder_finish(b, &z, &zlen), 0);
            cr_assert_eq(rn_batch_builder_finish(pb, &plain, &plen), 0);
            rn_batch_header h;
            cr_assert_eq(rn_batch_check(z, zlen, 0, &h), 0);
            cr_assert_eq(h.attributes & RN_BATCH_CODEC_MASK, codec);
            cr_assert_lt(zlen, plen / 2, "%s: %zu of %zu", rn_codec_name(codec), zlen, plen);
            char why[256] = "";
            cr_assert_eq(rn_batch_validate(z, zlen, 0, 0, NULL, why, sizeof(why)), 0, "%s", why);
            same_records(plain, plen, z, zlen, rn_codec_name(codec));
            same_streamed(plain, plen, z, zlen, 0, 0, rn_codec_name(codec));
            free(z);
            free(plain);
        }
        rn_batch_builder_free(b);
        rn_batch_builder_free(pb);
    }
    cr_assert_eq(rn_codec_parse("gzip"), RN_BATCH_CODEC_GZIP);
    cr_assert_eq(rn_codec_parse("none"), RN_BATCH_CODEC_NONE);
    cr_assert_eq(rn_codec_parse("brotli"), -EINVAL);
}

// A bound of SIZE_MAX (no bound, in effect) reads like any other: the one
// byte past the bound the readers keep room for must not wrap to zero (it
// did, and the stream then spun on zero-byte reads).
Test(codec, bound_of_size_max_does_not_wrap, .timeout = 30)
{
    size_t plen;
    uint8_t *plain = plain_batch(30, 50, &plen);
    for (int v = 0; v < N_VARIANTS; v++) {
        size_t zlen;
        uint8_t *z = compressed_batch(v, plain, plen, &zlen);
        cr_assert_eq(rn_batch_verify(z, zlen, 0, SIZE_MAX), 0, "%s", variant_name[v]);
        rn_batch_stream s;
        rn_record r;
        cr_assert_eq(rn_batch_stream_init(&s, z, zlen, SIZE_MAX, 0), 0);
        int n = 0, rc;
        while ((rc = rn_batch_stream_next(&s, 0, &r)) == 1)
            n++;
        cr_assert_eq(rc, 0, "%s: %s", variant_name[v], rn_errname(rc));
        cr_assert_eq(n, 30);
        rn_batch_stream_fini(&s);
        free(z);
    }
    free(plain);
}
