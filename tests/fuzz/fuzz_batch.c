/*
 * fuzz_batch.c — libFuzzer target for the record batch codec
 * (protocol/batch.c): the bytes a producer sends, and the bytes a consumer and
 * `runnel replay` read back from segments.
 *
 * A random input almost never carries a valid CRC-32C, which would stop every
 * run at the header check; so when the input is long enough to hold a header,
 * the target writes the right CRC into a copy first and the records parser is
 * reached. Then it runs the header check, the full verify (every codec: gzip,
 * snappy raw and xerial, lz4, zstd, under a small decompression bound), the
 * record iterator and the streaming iterator, and checks that they agree: an
 * iterator that stops early on a batch verify accepted is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that a decompression bomb costs nothing per run. */
#define FUZZ_MAX_UNCOMPRESSED (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (size >= RN_BATCH_HEADER_LEN) {
        uint32_t crc = rn_crc32c(buf + 21, size - 21);
        buf[17] = (uint8_t)(crc >> 24);
        buf[18] = (uint8_t)(crc >> 16);
        buf[19] = (uint8_t)(crc >> 8);
        buf[20] = (uint8_t)crc;
    }

    rn_batch_header h;
    if (rn_batch_check(buf, size, 0, &h) == 0) {
        int vrc = rn_batch_verify(buf, size, 0, FUZZ_MAX_UNCOMPRESSED);
        rn_batch_iter it;
        int irc = rn_batch_iter_init(&it, buf, size, FUZZ_MAX_UNCOMPRESSED);
        if (irc == 0) {
            rn_record rec;
            int n = 0;
            while ((irc = rn_batch_iter_next(&it, &rec)) == 1) {
                const uint8_t *p = rec.headers, *end = rec.headers + rec.headers_len;
                rn_record_header hdr;
                while (rn_record_header_next(&p, end, &hdr) == 1)
                    ;
                n++;
            }
            rn_batch_iter_fini(&it);
            /* A batch verify accepts must iterate to its end, record by record. */
            if (vrc == 0 && (irc != 0 || n != h.records_count))
                abort();
        }
        /* The gateways' streaming reader (every codec decompressed a piece at
         * a time) must agree with verify too. */
        rn_batch_stream s;
        int src = rn_batch_stream_init(&s, buf, size, FUZZ_MAX_UNCOMPRESSED, 0);
        if (src == 0) {
            rn_record rec;
            int n = 0;
            while ((src = rn_batch_stream_next(&s, INT64_MIN, &rec)) == 1)
                n++;
            rn_batch_stream_fini(&s);
            if (vrc == 0 && (src != 0 || n != h.records_count))
                abort();
        } else if (vrc == 0) {
            abort();
        }
    }
    free(buf);
    return 0;
}
