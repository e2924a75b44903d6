/*
 * codec.h — the compression codecs of Kafka's RecordBatch v2 behind one
 * interface: gzip (1), snappy (2), lz4 (3), zstd (4) (DESIGN §3).
 *
 * A batch's records section is stored as the producer compressed it; batch.c
 * decompresses it only where records are read, through this interface, so a
 * decompression bomb meets the same bound whatever the codec:
 *  - gzip: an RFC 1952 stream (one or more members), as Java's
 *    GZIPOutputStream and librdkafka write it. No size is declared.
 *  - snappy: either a raw snappy block (librdkafka, kafka-python without
 *    xerial) or snappy-java's ("xerial") framing that Kafka's Java client
 *    writes: 8 bytes of magic 0x82 "SNAPPY" 0x00, version i32, compatible
 *    version i32, then blocks of [length i32 big-endian][raw snappy block].
 *    A raw block declares its decompressed size in its leading varint; the
 *    xerial form declares the sum of its blocks'.
 *  - lz4: one LZ4 frame (lz4frame format), content size declared or not.
 *  - zstd: exactly one zstd frame, content size declared or not.
 *
 * Invariants: a declared size over max_out is refused before any output is
 * allocated; nothing ever writes more than max_out bytes of output; the
 * decoders' own state is bounded by max_out too (zstd's window, lz4's block
 * size), or is fixed (zlib's 32 KiB window); every codec must consume its
 * input exactly (bytes after the frame are an error, as is a frame cut short).
 * No global state; thread-safe on distinct readers.
 */
#ifndef RN_CODEC_H
#define RN_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by rn_codec_reader_declared when the format gives no size (gzip). */
#define RN_CODEC_SIZE_UNKNOWN UINT64_MAX

/* "none", "gzip", "snappy", "lz4", "zstd", or NULL for another value. */
const char *rn_codec_name(int codec);

/* A streaming decompressor over one records section. */
typedef struct rn_codec_reader rn_codec_reader;

/* Open a reader of src (borrowed until rn_codec_reader_free) compressed with
 * codec (RN_BATCH_CODEC_GZIP..ZSTD). Reads the frame's header: a declared
 * size above max_out, a malformed header, or (snappy) a block structure that
 * does not add up is refused here, before anything is decompressed.
 * Errors: -RN_E_BATCH_BAD_COMPRESSION (err, may be NULL, says why), -EINVAL
 * (codec not one of the four), -ENOMEM. The caller owns *out. */
int rn_codec_reader_new(rn_codec_reader **out, int codec, const void *src, size_t src_len,
                        size_t max_out, char *err, size_t errlen);

/* The decompressed size the frame declares, or RN_CODEC_SIZE_UNKNOWN. */
uint64_t rn_codec_reader_declared(const rn_codec_reader *r);

/* Decompress up to cap bytes into dst. On 0, *got bytes were written and
 * *done says the frame has ended with all input consumed; each call makes
 * progress (*got > 0 or *done). Errors: -RN_E_BATCH_BAD_COMPRESSION (corrupt,
 * cut short, bytes after the frame, or more than max_out bytes in all; the
 * reason is in rn_codec_reader_why), -ENOMEM. After an error the reader
 * can only be freed. cap must be > 0. */
int rn_codec_reader_read(rn_codec_reader *r, void *dst, size_t cap, size_t *got, bool *done);

/* Why the last call failed, as one phrase ("gzip: invalid block type"). */
const char *rn_codec_reader_why(const rn_codec_reader *r);

void rn_codec_reader_free(rn_codec_reader *r);

/* Decompress all of src into a malloc'd buffer (*out, the caller owns it) of
 * *out_len <= max_out bytes: exactly the declared size when there is one,
 * else grown geometrically up to max_out + 1 so that "more" is told apart.
 * Errors as rn_codec_reader_new and _read; err (may be NULL) says why. */
int rn_codec_decompress(int codec, const void *src, size_t src_len, size_t max_out, uint8_t **out,
                        size_t *out_len, char *err, size_t errlen);

/* ---- Writing ---------------------------------------------------------------
 *
 * What Kafka's clients write, so any of them reads it back: gzip with zlib's
 * gzip wrapper (as GZIPOutputStream), snappy as one raw block (as librdkafka;
 * Java's reader takes it too), lz4 as one frame of independent 64 KiB blocks
 * with the content size declared (as librdkafka; Kafka's Java reader wants
 * independent blocks), zstd as one frame. */

/* The codec by its name ("none", "gzip", "snappy", "lz4", "zstd"), or -EINVAL. */
int rn_codec_parse(const char *name);

typedef struct rn_codec_writer rn_codec_writer;

/* A compressor for codec 1..4, reused across batches. level is the zstd
 * level (0 = zstd's default) and ignored by the other codecs, which use
 * their libraries' defaults. Errors: -EINVAL, -ENOMEM. The caller owns *out. */
int rn_codec_writer_new(rn_codec_writer **out, int codec, int level);

/* The most bytes rn_codec_writer_compress writes for n bytes of input. */
size_t rn_codec_compress_bound(const rn_codec_writer *w, size_t n);

/* Compress src (n bytes) into dst (cap >= rn_codec_compress_bound(w, n));
 * *out_len gets the compressed size. Errors: -ENOMEM,
 * -RN_E_BATCH_BAD_COMPRESSION (the library failed). Borrows src and dst. */
int rn_codec_writer_compress(rn_codec_writer *w, const void *src, size_t n, void *dst, size_t cap,
                             size_t *out_len);

void rn_codec_writer_free(rn_codec_writer *w);

#endif
