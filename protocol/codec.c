/*
 * codec.c — gzip, snappy (raw and xerial-framed), lz4 (frame) and zstd
 * decompression of a batch's records section behind one reader (codec.h).
 *
 * Each reader decompresses into the caller's buffer a piece at a time, so
 * batch.c's streaming iterator never holds a whole decompressed batch and its
 * one-shot path (rn_codec_decompress) is the same loop into one buffer. The
 * libraries are Debian's: zlib, libsnappy (its C API), liblz4 (lz4frame),
 * libzstd.
 *
 * Bounds (the same for every codec, as batch.c's zstd path always had them):
 *  1. A declared size (zstd and lz4 frame headers, a snappy block's leading
 *     varint, the sum of a xerial stream's blocks) above max_out is refused in
 *     rn_codec_reader_new, before any output buffer exists.
 *  2. A reader never writes more than max_out + 1 bytes in all (the one extra
 *     byte tells "exactly max_out" from "more"); more is BAD_COMPRESSION.
 *  3. Decoder state is bounded: zstd's window is capped to max_out (at least
 *     1 KiB); an lz4 frame whose block size (64 KiB..4 MiB) is above both
 *     64 KiB and max_out is refused; zlib's window is 32 KiB; snappy, which
 *     has no streaming decoder, holds at most one block, of a size checked
 *     against max_out first.
 *  4. Input is consumed exactly: a frame cut short, bytes after it, or a
 *     snappy block running past the section are BAD_COMPRESSION. A gzip
 *     section may hold several members (GZIPInputStream reads them).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "protocol/batch.h"
#include "protocol/bytes.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

/* snappy-java's stream header: magic, then version and compatible version. */
static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_LEN 16
/* The smallest lz4 block size; a frame may always use it. */
#define LZ4_MIN_BLOCK ((size_t)64 << 10)

struct rn_codec_reader {
    int codec;
    const uint8_t *src;
    size_t src_len, src_pos;
    size_t max_out, out_total;
    uint64_t declared;
    bool done, failed, xerial, z_open;
    z_stream z;
    LZ4F_dctx *lz;
    ZSTD_DCtx *zd;
    uint8_t *pend; /* a decompressed snappy block not yet handed out */
    size_t pend_cap, pend_pos, pend_len;
    char why[192];
};

const char *rn_codec_name(int codec)
{
    switch (codec) {
    case RN_BATCH_CODEC_NONE:
        return "none";
    case RN_BATCH_CODEC_GZIP:
        return "gzip";
    case RN_BATCH_CODEC_SNAPPY:
        return "snappy";
    case RN_BATCH_CODEC_LZ4:
        return "lz4";
    case RN_BATCH_CODEC_ZSTD:
        return "zstd";
    default:
        return NULL;
    }
}

__attribute__((format(printf, 2, 3))) static int fail(rn_codec_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    r->failed = true;
    return -RN_E_BATCH_BAD_COMPRESSION;
}

static int too_large(rn_codec_reader *r, unsigned long long n)
{
    return fail(r, "%s frame declares %llu bytes of records, more than the %zu allowed",
                rn_codec_name(r->codec), n, r->max_out);
}

/* ---- Opening: headers and declared sizes ---------------------------------- */

static int open_zstd(rn_codec_reader *r)
{
    /* One frame and nothing after it: a second frame could hide a bomb past
     * the content size the first one declares. */
    size_t fsz = ZSTD_findFrameCompressedSize(r->src, r->src_len);
    if (ZSTD_isError(fsz) || fsz != r->src_len)
        return fail(r, "zstd records section is corrupt or not exactly one frame");
    unsigned long long n = ZSTD_getFrameContentSize(r->src, r->src_len);
    if (n == ZSTD_CONTENTSIZE_ERROR)
        return fail(r, "zstd records section is corrupt (frame header)");
    if (n != ZSTD_CONTENTSIZE_UNKNOWN) {
        if (n > r->max_out)
            return too_large(r, n);
        r->declared = n;
    }
    r->zd = ZSTD_createDCtx();
    if (!r->zd)
        return -ENOMEM;
    /* zstd keeps a window of history; bound it by the output we accept. */
    int wlog = 10;
    while (wlog < 31 && ((size_t)1 << wlog) < r->max_out)
        wlog++;
    ZSTD_bounds wb = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);
    if (wlog < wb.lowerBound)
        wlog = wb.lowerBound;
    if (wlog > wb.upperBound)
        wlog = wb.upperBound;
    ZSTD_DCtx_setParameter(r->zd, ZSTD_d_windowLogMax, wlog);
    return 0;
}

static int open_gzip(rn_codec_reader *r)
{
    /* 15 + 16: a gzip wrapper only (not zlib's, not raw deflate). */
    int zr = inflateInit2(&r->z, 15 + 16);
    if (zr == Z_MEM_ERROR)
        return -ENOMEM;
    if (zr != Z_OK)
        return fail(r, "gzip: %s", r->z.msg ? r->z.msg : "inflateInit2 failed");
    r->z_open = true;
    return 0;
}

static int open_lz4(rn_codec_reader *r)
{
    if (LZ4F_isError(LZ4F_createDecompressionContext(&r->lz, LZ4F_VERSION)))
        return -ENOMEM;
    LZ4F_frameInfo_t info;
    size_t n = r->src_len;
    size_t h = LZ4F_getFrameInfo(r->lz, &info, r->src, &n);
    if (LZ4F_isError(h))
        return fail(r, "lz4 frame header is corrupt (%s)", LZ4F_getErrorName(h));
    r->src_pos = n; /* the header is consumed */
    if (info.contentSize) {
        if (info.contentSize > r->max_out)
            return too_large(r, info.contentSize);
        r->declared = info.contentSize;
    }
    int id = info.blockSizeID ? (int)info.blockSizeID : (int)LZ4F_max64KB;
    if (id < LZ4F_max64KB || id > LZ4F_max4MB)
        return fail(r, "lz4 frame header has block size id %d", id);
    size_t block = LZ4_MIN_BLOCK << (2 * (id - LZ4F_max64KB));
    if (block > LZ4_MIN_BLOCK && block > r->max_out)
        return fail(r, "lz4 frame's blocks of %zu bytes are larger than the %zu allowed", block,
                    r->max_out);
    return 0;
}

static int open_snappy(rn_codec_reader *r)
{
    /* librdkafka's test: the magic and room for one block length after it. */
    if (r->src_len > XERIAL_HEADER_LEN + 4 && !memcmp(r->src, xerial_magic, sizeof(xerial_magic))) {
        r->xerial = true;
        r->src_pos = XERIAL_HEADER_LEN;
        /* Walk the block lengths (no decompression): each block inside the
         * section, each block's own header sane, and their sum bounded. */
        uint64_t total = 0;
        size_t i = 0;
        for (size_t pos = XERIAL_HEADER_LEN; pos < r->src_len; i++) {
            if (r->src_len - pos < 4)
                return fail(r, "snappy (xerial) block %zu length is cut off", i);
            int32_t blen = (int32_t)rn_get_be32(r->src + pos);
            pos += 4;
            if (blen <= 0 || (size_t)blen > r->src_len - pos)
                return fail(r,
                            "snappy (xerial) block %zu of %" PRId32 " bytes runs past the section",
                            i, blen);
            size_t u;
            if (snappy_uncompressed_length((const char *)r->src + pos, (size_t)blen, &u) !=
                SNAPPY_OK)
                return fail(r, "snappy (xerial) block %zu header is corrupt", i);
            total += u;
            if (total > r->max_out)
                return fail(r,
                            "snappy (xerial) blocks 0..%zu declare %llu bytes of records, more "
                            "than the %zu allowed",
                            i, (unsigned long long)total, r->max_out);
            pos += (size_t)blen;
        }
        r->declared = total;
        return 0;
    }
    size_t u;
    if (snappy_uncompressed_length((const char *)r->src, r->src_len, &u) != SNAPPY_OK)
        return fail(r, "snappy block header is corrupt (or claims more than 4 GiB)");
    if (u > r->max_out)
        return too_large(r, u);
    r->declared = u;
    return 0;
}

int rn_codec_reader_new(rn_codec_reader **out, int codec, const void *src, size_t src_len,
                        size_t max_out, char *err, size_t errlen)
{
    if (codec < RN_BATCH_CODEC_GZIP || codec > RN_BATCH_CODEC_ZSTD)
        return -EINVAL;
    /* Room for the one byte past the bound that tells "more" apart. */
    if (max_out > SIZE_MAX / 2)
        max_out = SIZE_MAX / 2;
    rn_codec_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->codec = codec;
    r->src = src;
    r->src_len = src_len;
    r->max_out = max_out;
    r->declared = RN_CODEC_SIZE_UNKNOWN;
    int rc;
    switch (codec) {
    case RN_BATCH_CODEC_GZIP:
        rc = open_gzip(r);
        break;
    case RN_BATCH_CODEC_SNAPPY:
        rc = open_snappy(r);
        break;
    case RN_BATCH_CODEC_LZ4:
        rc = open_lz4(r);
        break;
    default:
        rc = open_zstd(r);
        break;
    }
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : r->why);
        rn_codec_reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

uint64_t rn_codec_reader_declared(const rn_codec_reader *r)
{
    return r->declared;
}

const char *rn_codec_reader_why(const rn_codec_reader *r)
{
    return r->why;
}

void rn_codec_reader_free(rn_codec_reader *r)
{
    if (!r)
        return;
    if (r->z_open)
        inflateEnd(&r->z);
    LZ4F_freeDecompressionContext(r->lz);
    ZSTD_freeDCtx(r->zd);
    free(r->pend);
    free(r);
}

/* ---- Reading -------------------------------------------------------------- */

static int read_gzip(rn_codec_reader *r, uint8_t *dst, size_t cap, size_t *got)
{
    size_t produced = 0;
    while (produced < cap && !r->done) {
        size_t in_left = r->src_len - r->src_pos, out_left = cap - produced;
        r->z.next_in = (Bytef *)(r->src + r->src_pos);
        r->z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        r->z.next_out = dst + produced;
        r->z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        uInt avail_in = r->z.avail_in, avail_out = r->z.avail_out;
        int zr = inflate(&r->z, Z_NO_FLUSH);
        r->src_pos += avail_in - r->z.avail_in;
        produced += avail_out - r->z.avail_out;
        if (zr == Z_STREAM_END) {
            if (r->src_pos == r->src_len) {
                r->done = true;
            } else if (inflateReset(&r->z) != Z_OK) { /* another member follows */
                return fail(r, "gzip: cannot start the next member");
            }
        } else if (zr == Z_MEM_ERROR) {
            return -ENOMEM;
        } else if (zr == Z_OK || zr == Z_BUF_ERROR) {
            if (r->z.avail_in == 0 && r->src_pos == r->src_len && r->z.avail_out > 0)
                return fail(r, "gzip stream is cut short");
            if (r->z.avail_in == avail_in && r->z.avail_out == avail_out)
                return fail(r, "gzip stream makes no progress");
        } else {
            return fail(r, "gzip stream is corrupt (%s)", r->z.msg ? r->z.msg : "inflate failed");
        }
    }
    *got = produced;
    return 0;
}

static int read_lz4(rn_codec_reader *r, uint8_t *dst, size_t cap, size_t *got)
{
    size_t produced = 0;
    while (produced < cap && !r->done) {
        size_t dn = cap - produced, sn = r->src_len - r->src_pos;
        size_t h = LZ4F_decompress(r->lz, dst + produced, &dn, r->src + r->src_pos, &sn, NULL);
        if (LZ4F_isError(h))
            return fail(r, "lz4 frame is corrupt (%s)", LZ4F_getErrorName(h));
        r->src_pos += sn;
        produced += dn;
        if (h == 0) {
            if (r->src_pos != r->src_len)
                return fail(r, "%zu bytes follow the lz4 frame", r->src_len - r->src_pos);
            r->done = true;
        } else if (produced < cap && r->src_pos == r->src_len) {
            return fail(r, "lz4 frame is cut short");
        } else if (dn == 0 && sn == 0) {
            return fail(r, "lz4 frame makes no progress");
        }
    }
    *got = produced;
    return 0;
}

static int read_zstd(rn_codec_reader *r, uint8_t *dst, size_t cap, size_t *got)
{
    ZSTD_outBuffer o = {dst, cap, 0};
    while (o.pos < o.size && !r->done) {
        ZSTD_inBuffer in = {r->src, r->src_len, r->src_pos};
        size_t before = o.pos;
        size_t z = ZSTD_decompressStream(r->zd, &o, &in);
        if (ZSTD_isError(z)) {
            if (ZSTD_getErrorCode(z) == ZSTD_error_memory_allocation)
                return -ENOMEM;
            if (ZSTD_getErrorCode(z) == ZSTD_error_frameParameter_windowTooLarge)
                return fail(r,
                            "zstd frame needs a window above %zu bytes (a records section that "
                            "decompresses to more than %zu bytes)",
                            r->max_out, r->max_out);
            return fail(r, "zstd records section is corrupt (%s)", ZSTD_getErrorName(z));
        }
        bool moved = o.pos > before || in.pos > r->src_pos;
        r->src_pos = in.pos;
        if (z == 0) {
            if (r->src_pos != r->src_len)
                return fail(r, "%zu bytes follow the zstd frame", r->src_len - r->src_pos);
            r->done = true;
        } else if ((r->src_pos == r->src_len && o.pos < o.size) || !moved) {
            return fail(r, "zstd frame is cut short");
        }
    }
    *got = o.pos;
    return 0;
}

/* Decompress the next snappy block: straight into dst when it fits, else
 * into the pending buffer (one block, its size checked in open_snappy). */
static int snappy_block(rn_codec_reader *r, uint8_t *dst, size_t room, size_t *direct)
{
    const char *blk = (const char *)r->src + r->src_pos;
    size_t blen = r->src_len - r->src_pos;
    if (r->xerial) {
        blen = (size_t)rn_get_be32(r->src + r->src_pos); /* bounded by open_snappy */
        blk += 4;
        r->src_pos += 4;
    }
    size_t u;
    if (snappy_uncompressed_length(blk, blen, &u) != SNAPPY_OK)
        return fail(r, "snappy block header is corrupt");
    uint8_t *to = dst;
    if (u > room) {
        if (u > r->pend_cap) {
            uint8_t *np = realloc(r->pend, u);
            if (!np)
                return -ENOMEM;
            r->pend = np;
            r->pend_cap = u;
        }
        to = r->pend;
    }
    size_t n = u;
    if (u > 0 && snappy_uncompress(blk, blen, (char *)to, &n) != SNAPPY_OK)
        return fail(r, "snappy block is corrupt");
    if (n != u)
        return fail(r, "snappy block decompresses to %zu bytes, not the %zu it declares", n, u);
    r->src_pos += blen;
    if (to == r->pend) {
        r->pend_pos = 0;
        r->pend_len = u;
        *direct = 0;
    } else {
        *direct = u;
    }
    return 0;
}

static int read_snappy(rn_codec_reader *r, uint8_t *dst, size_t cap, size_t *got)
{
    size_t produced = 0;
    while (produced < cap && !r->done) {
        if (r->pend_pos < r->pend_len) {
            size_t n = r->pend_len - r->pend_pos;
            if (n > cap - produced)
                n = cap - produced;
            memcpy(dst + produced, r->pend + r->pend_pos, n);
            r->pend_pos += n;
            produced += n;
            continue;
        }
        if (r->src_pos == r->src_len) {
            r->done = true;
            break;
        }
        size_t direct = 0;
        int rc = snappy_block(r, dst + produced, cap - produced, &direct);
        if (rc)
            return rc;
        produced += direct;
    }
    *got = produced;
    return 0;
}

int rn_codec_reader_read(rn_codec_reader *r, void *dst, size_t cap, size_t *got, bool *done)
{
    *got = 0;
    if (r->failed)
        return -RN_E_BATCH_BAD_COMPRESSION;
    if (r->done) {
        *done = true;
        return 0;
    }
    /* Never more than one byte past the bound (snappy's blocks are checked
     * against it up front, so only the streaming codecs need the cap). */
    size_t room = r->max_out - r->out_total + 1;
    size_t lim = r->codec == RN_BATCH_CODEC_SNAPPY || cap < room ? cap : room;
    int rc;
    switch (r->codec) {
    case RN_BATCH_CODEC_GZIP:
        rc = read_gzip(r, dst, lim, got);
        break;
    case RN_BATCH_CODEC_SNAPPY:
        rc = read_snappy(r, dst, lim, got);
        break;
    case RN_BATCH_CODEC_LZ4:
        rc = read_lz4(r, dst, lim, got);
        break;
    default:
        rc = read_zstd(r, dst, lim, got);
        break;
    }
    if (rc) {
        r->failed = true;
        return rc;
    }
    r->out_total += *got;
    /* A frame that declares its size must give exactly that: the checks live
     * here, not in a caller, so the one-shot path and a streaming reader
     * (batch.c's validation and gateway iterators) refuse a lying frame with
     * the same words. */
    if (r->declared != RN_CODEC_SIZE_UNKNOWN) {
        if (r->done && r->out_total != r->declared)
            return fail(r, "%s records section decompresses to %zu bytes, not the %llu it declares",
                        rn_codec_name(r->codec), r->out_total, (unsigned long long)r->declared);
        if (r->out_total > r->declared)
            return fail(r, "%s records section decompresses to more than %zu bytes",
                        rn_codec_name(r->codec), (size_t)r->declared);
    }
    if (r->out_total > r->max_out)
        return fail(r, "%s records section decompresses to more than %zu bytes",
                    rn_codec_name(r->codec), r->max_out);
    *done = r->done;
    return 0;
}

/* ---- One shot --------------------------------------------------------------- */

int rn_codec_decompress(int codec, const void *src, size_t src_len, size_t max_out, uint8_t **out,
                        size_t *out_len, char *err, size_t errlen)
{
    if (max_out > SIZE_MAX / 2)
        max_out = SIZE_MAX / 2;
    rn_codec_reader *r;
    int rc = rn_codec_reader_new(&r, codec, src, src_len, max_out, err, errlen);
    if (rc)
        return rc;
    size_t limit = max_out + 1;
    size_t cap;
    uint64_t declared = r->declared;
    if (declared != RN_CODEC_SIZE_UNKNOWN) {
        cap = (size_t)declared + 1; /* the extra byte catches a frame that lies */
    } else {
        cap = src_len < limit / 4 ? src_len * 4 : limit;
        /* gzip's trailer holds the last member's size mod 2^32: a hint only. */
        if (codec == RN_BATCH_CODEC_GZIP && src_len >= 18) {
            size_t isize = rn_get_le32((const uint8_t *)src + src_len - 4);
            if (isize < limit && isize + 1 > cap)
                cap = isize + 1;
        }
        if (cap < 4096)
            cap = limit < 4096 ? limit : 4096;
    }
    uint8_t *dst = malloc(cap);
    size_t len = 0;
    bool done = false;
    if (!dst) {
        rc = -ENOMEM;
        goto fail;
    }
    while (!done) {
        if (len == cap) {
            /* Full: the size is unknown and below the bound (the reader
             * fails one byte past the declared size or past max_out). */
            size_t ncap = cap > limit / 2 ? limit : cap * 2;
            uint8_t *nd = realloc(dst, ncap);
            if (!nd) {
                rc = -ENOMEM;
                goto fail;
            }
            dst = nd;
            cap = ncap;
        }
        size_t got;
        rc = rn_codec_reader_read(r, dst + len, cap - len, &got, &done);
        if (rc)
            goto fail;
        len += got;
    }
    rn_codec_reader_free(r);
    *out = dst;
    *out_len = len;
    return 0;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : r->why);
    free(dst);
    rn_codec_reader_free(r);
    return rc;
}

/* ---- Writing ----------------------------------------------------------------- */

struct rn_codec_writer {
    int codec, level;
    ZSTD_CCtx *zc;
    z_stream z;
    bool z_open;
};

int rn_codec_parse(const char *name)
{
    for (int c = RN_BATCH_CODEC_NONE; c <= RN_BATCH_CODEC_ZSTD; c++)
        if (!strcmp(name, rn_codec_name(c)))
            return c;
    return -EINVAL;
}

int rn_codec_writer_new(rn_codec_writer **out, int codec, int level)
{
    if (codec < RN_BATCH_CODEC_GZIP || codec > RN_BATCH_CODEC_ZSTD)
        return -EINVAL;
    rn_codec_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->codec = codec;
    w->level = level;
    int rc = -ENOMEM;
    switch (codec) {
    case RN_BATCH_CODEC_GZIP:
        /* 15 + 16: the gzip wrapper; level 6 is GZIPOutputStream's. */
        if (deflateInit2(&w->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            goto fail;
        w->z_open = true;
        break;
    case RN_BATCH_CODEC_ZSTD:
        w->zc = ZSTD_createCCtx();
        if (!w->zc)
            goto fail;
        break;
    default:
        break;
    }
    *out = w;
    return 0;
fail:
    rn_codec_writer_free(w);
    return rc;
}

static LZ4F_preferences_t lz4_prefs(size_t n)
{
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof(p));
    p.frameInfo.blockSizeID = LZ4F_max64KB;
    p.frameInfo.blockMode = LZ4F_blockIndependent;
    p.frameInfo.contentSize = n;
    return p;
}

size_t rn_codec_compress_bound(const rn_codec_writer *w, size_t n)
{
    switch (w->codec) {
    case RN_BATCH_CODEC_GZIP:
        /* deflateBound takes a uLong; the gzip wrapper adds 18 bytes. */
        return deflateBound((z_streamp)&w->z, (uLong)n) + 18;
    case RN_BATCH_CODEC_SNAPPY:
        return snappy_max_compressed_length(n);
    case RN_BATCH_CODEC_LZ4: {
        LZ4F_preferences_t p = lz4_prefs(n);
        return LZ4F_compressFrameBound(n, &p);
    }
    default:
        return ZSTD_compressBound(n);
    }
}

int rn_codec_writer_compress(rn_codec_writer *w, const void *src, size_t n, void *dst, size_t cap,
                             size_t *out_len)
{
    switch (w->codec) {
    case RN_BATCH_CODEC_GZIP: {
        if (n > UINT_MAX || cap > UINT_MAX || deflateReset(&w->z) != Z_OK)
            return -RN_E_BATCH_BAD_COMPRESSION;
        w->z.next_in = (Bytef *)src;
        w->z.avail_in = (uInt)n;
        w->z.next_out = dst;
        w->z.avail_out = (uInt)cap;
        int zr = deflate(&w->z, Z_FINISH);
        if (zr == Z_MEM_ERROR)
            return -ENOMEM;
        if (zr != Z_STREAM_END)
            return -RN_E_BATCH_BAD_COMPRESSION;
        *out_len = cap - w->z.avail_out;
        return 0;
    }
    case RN_BATCH_CODEC_SNAPPY: {
        size_t len = cap;
        if (snappy_compress(src, n, dst, &len) != SNAPPY_OK)
            return -RN_E_BATCH_BAD_COMPRESSION;
        *out_len = len;
        return 0;
    }
    case RN_BATCH_CODEC_LZ4: {
        LZ4F_preferences_t p = lz4_prefs(n);
        size_t z = LZ4F_compressFrame(dst, cap, src, n, &p);
        if (LZ4F_isError(z))
            return -RN_E_BATCH_BAD_COMPRESSION;
        *out_len = z;
        return 0;
    }
    default: {
        size_t z = ZSTD_compressCCtx(w->zc, dst, cap, src, n, w->level);
        if (ZSTD_isError(z))
            return ZSTD_getErrorCode(z) == ZSTD_error_memory_allocation
                       ? -ENOMEM
                       : -RN_E_BATCH_BAD_COMPRESSION;
        *out_len = z;
        return 0;
    }
    }
}

void rn_codec_writer_free(rn_codec_writer *w)
{
    if (!w)
        return;
    if (w->z_open)
        deflateEnd(&w->z);
    ZSTD_freeCCtx(w->zc);
    free(w);
}
