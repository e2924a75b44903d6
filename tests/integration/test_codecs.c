/*
 * test_codecs.c — batches compressed by a real Kafka client, through a real
 * runneld: produced over the native protocol, stored as produced, read back
 * by a native fetch, by `runnel consume` and by the REST gateway.
 *
 * The batches are the golden files of tests/unit/protocol/data (python3-kafka's
 * DefaultRecordBatchBuilder: gzip, snappy in snappy-java's framing, lz4,
 * zstd), plus a raw-snappy batch (librdkafka's form) compressed here. Each
 * holds 20 records: key "key-<i>" (null for 5 and 6), value
 * ("value-<i> " * 200). The broker validates each on produce (decompressing
 * it under its bound) and stores its bytes unchanged but for the base offset
 * and leader epoch it stamps.
 *
 * The broker's HTTP listener is on a port chosen here; `runnel` is the CLI
 * built with this tree (IT_RUNNEL). Every child process runs under timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

ITF_HTTP_SUITE(codecs, 120);

/* ---- Helpers -------------------------------------------------------------- */

/* The golden batch of python3-kafka for codec name (malloc'd). */
static uint8_t *golden(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka_python_%s.bin", GOLDEN_DIR, name);
    return (uint8_t *)itf_slurp(path, len);
}

/* The gzip golden batch's records recompressed as one raw snappy block, the
 * form librdkafka writes. */
static uint8_t *raw_snappy_batch(size_t *len)
{
    size_t glen;
    uint8_t *g = golden("gzip", &glen);
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, g, glen, 0), 0);
    size_t rlen = (size_t)(it.end - it.pos);
    size_t cap = snappy_max_compressed_length(rlen);
    uint8_t *p = malloc(RN_BATCH_HEADER_LEN + cap);
    memcpy(p, g, RN_BATCH_HEADER_LEN);
    cr_assert_eq(snappy_compress((const char *)it.pos, rlen, (char *)p + RN_BATCH_HEADER_LEN, &cap),
                 SNAPPY_OK);
    rn_batch_iter_fini(&it);
    free(g);
    size_t size = RN_BATCH_HEADER_LEN + cap;
    uint32_t v = (uint32_t)(size - RN_BATCH_LOG_OVERHEAD);
    p[8] = (uint8_t)(v >> 24), p[9] = (uint8_t)(v >> 16), p[10] = (uint8_t)(v >> 8),
    p[11] = (uint8_t)v;
    p[RN_BATCH_OFF_ATTRIBUTES + 1] = RN_BATCH_CODEC_SNAPPY;
    uint32_t crc = rn_crc32c(p + RN_BATCH_CRC_START, size - RN_BATCH_CRC_START);
    p[17] = (uint8_t)(crc >> 24), p[18] = (uint8_t)(crc >> 16), p[19] = (uint8_t)(crc >> 8),
    p[20] = (uint8_t)crc;
    cr_assert_eq(rn_batch_verify(p, size, 0, 0), 0);
    *len = size;
    return p;
}

/* ---- Tests -------------------------------------------------------------------- */

// Each codec's batch, produced over the native protocol, is stored as it
// came (a native fetch returns the same bytes after the stamped header
// fields) and is read by `runnel consume` (20 values, in order) and by a
// REST fetch (200, keys and values).
Test(codecs, kafka_client_batches_produced_consumed_and_fetched_over_rest)
{
    static const char *const names[] = {"gzip", "snappy", "lz4", "zstd", "snappy-raw"};
    it_conn *c = itf_connect(&B);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char topic[32];
        snprintf(topic, sizeof(topic), "c-%s", names[i]);
        itf_create(c, topic, 1, NULL);
        size_t len;
        uint8_t *b = i == 4 ? raw_snappy_batch(&len) : golden(names[i], &len);
        cr_assert_eq(itf_produce(c, topic, 0, b, len), 0, "%s", names[i]);

        it_fetch_part fp = {topic, 0, 0, 0};
        it_resp r;
        cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
        const uint8_t *data;
        size_t dlen;
        it_fetch_data(&r, 0, &data, &dlen);
        cr_assert_eq(dlen, len, "%s: one batch, as produced", names[i]);
        cr_assert_eq(
            memcmp(data + RN_BATCH_OFF_MAGIC, b + RN_BATCH_OFF_MAGIC, len - RN_BATCH_OFF_MAGIC), 0,
            "%s: stored as produced", names[i]);
        it_resp_free(&r);
        free(b);

        char args[128], *out, *err;
        snprintf(args, sizeof(args), "consume %s -e -o beginning", topic);
        int st = itf_run_cli(&B, args, NULL, &out, &err);
        cr_assert_eq(st, 0, "%s: consume exit %d: %s", names[i], st, err);
        cr_assert_eq(itf_count_lines(out), 20, "%s: %s", names[i], out);
        cr_assert(!strncmp(out, "value-0 value-0 ", 16), "%s: %.40s", names[i], out);
        cr_assert(strstr(out, "value-19 value-19 value-19"), "%s", names[i]);
        free(out);
        free(err);

        char path[128], *body;
        snprintf(path, sizeof(path), "/topics/%s/partitions/0/records?offset=0", topic);
        int status = itf_http_get(http_port, path, &body);
        cr_assert_eq(status, 200, "%s: %.300s", names[i], body);
        cr_assert(strstr(body, "key-19") && strstr(body, "value-19 value-19") &&
                      strstr(body, "value-0 value-0"),
                  "%s: %.300s", names[i], body);
        free(body);
    }
    itf_pass(&B, c);
}
