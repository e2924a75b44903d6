/*
 * gateway_bomb.c — a measurement run by hand (not a test): the broker's
 * peak memory and the latency of an unrelated GET /topics while four REST
 * clients fetch a decompression bomb at once (issue 11 item 3).
 *
 *   build/tests/integration/gateway_bomb NATIVE_PORT HTTP_PORT PID zeros|zeros2|wide|many [OFFSET
 * [MAX_BYTES]]
 *
 * Against a running runneld on 127.0.0.1 (PID: its process, for VmHWM in
 * /proc/PID/status): creates topic bomb-KIND, produces the bomb over the
 * native protocol (zeros: one record of 64 MiB - 1 KiB zeros; zeros2: two
 * of 32 MiB - 1 KiB; wide: the same in a frame with a 64 MiB window; many:
 * a million empty records), then runs four fetches of
 * /topics/bomb-KIND/partitions/0/records?offset=OFFSET[&max_bytes=] at once
 * while a fifth client times GET /topics every 20 ms. Prints VmHWM before
 * and after, each fetch's status, size and time, and the /topics latencies.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "client.h"
#include "protocol/errors.h"
#include "gw_bomb.h"

static uint16_t http_port;
static char fetch_path[256];
static volatile int fetches_left;

typedef struct fetch_result {
    gwb_answer a;
    int rc;
    int64_t us;
} fetch_result;

static long vm_hwm_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void *fetch_thread(void *arg)
{
    fetch_result *r = arg;
    int64_t t0 = gwb_now_us();
    /* Read it all (up to 1 GiB) as a client would. */
    r->rc = gwb_get(http_port, fetch_path, (size_t)1 << 30, 120000, &r->a);
    r->us = gwb_now_us() - t0;
    __atomic_sub_fetch(&fetches_left, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* zeros2 with its records in a frame whose window is 64 MiB (zstd's
 * windowLog 26, the most max_uncompressed allows): the decoder keeps that
 * much history, the worst a hostile producer can make it hold. */
static uint8_t *wide_window(size_t *len)
{
    size_t plen;
    rn_batch_builder_opts o = {
        .codec = RN_BATCH_CODEC_NONE, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rn_batch_builder *b;
    if (rn_batch_builder_new(&b, &o) < 0)
        return NULL;
    size_t vl = (32u << 20) - 1024;
    uint8_t *v = calloc(1, vl), *plain = NULL, *out = NULL;
    if (v && rn_batch_builder_add(b, 1000, NULL, 0, v, vl, NULL, 0) == 0 &&
        rn_batch_builder_add(b, 1000, NULL, 0, v, vl, NULL, 0) == 0 &&
        rn_batch_builder_finish(b, &plain, &plen) == 0) {
        size_t rl = plen - RN_BATCH_HEADER_LEN;
        size_t cap = RN_BATCH_HEADER_LEN + ZSTD_compressBound(rl);
        out = calloc(1, cap);
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 26);
        size_t z = ZSTD_compress2(cc, out + RN_BATCH_HEADER_LEN, cap - RN_BATCH_HEADER_LEN,
                                  plain + RN_BATCH_HEADER_LEN, rl);
        ZSTD_freeCCtx(cc);
        memcpy(out, plain, RN_BATCH_HEADER_LEN);
        *len = RN_BATCH_HEADER_LEN + z;
        out[RN_BATCH_OFF_ATTRIBUTES + 1] = RN_BATCH_CODEC_ZSTD;
        uint32_t bl = (uint32_t)(*len - RN_BATCH_LOG_OVERHEAD);
        out[RN_BATCH_OFF_LENGTH] = (uint8_t)(bl >> 24);
        out[RN_BATCH_OFF_LENGTH + 1] = (uint8_t)(bl >> 16);
        out[RN_BATCH_OFF_LENGTH + 2] = (uint8_t)(bl >> 8);
        out[RN_BATCH_OFF_LENGTH + 3] = (uint8_t)bl;
        uint32_t crc = rn_crc32c(out + RN_BATCH_CRC_START, *len - RN_BATCH_CRC_START);
        for (int i = 0; i < 4; i++)
            out[RN_BATCH_OFF_CRC + i] = (uint8_t)(crc >> (24 - 8 * i));
    }
    free(v);
    free(plain);
    rn_batch_builder_free(b);
    return out;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s NATIVE_PORT HTTP_PORT PID zeros|zeros2|wide|many [OFFSET [MAX_BYTES]]\n",
                argv[0]);
        return 2;
    }
    uint16_t port = (uint16_t)atoi(argv[1]);
    http_port = (uint16_t)atoi(argv[2]);
    int pid = atoi(argv[3]);
    const char *kind = argv[4];
    long long offset = argc > 5 ? atoll(argv[5]) : 0;
    char topic[64];
    snprintf(topic, sizeof(topic), "bomb-%s", kind);
    it_conn *c;
    if (it_conn_open(&c, "127.0.0.1", port, 10000) < 0) {
        fprintf(stderr, "cannot connect to 127.0.0.1:%u\n", port);
        return 1;
    }
    int rc = it_create_topic(c, topic, 1, NULL);
    if (rc != 0 && rc != RN_E_TOPIC_EXISTS) {
        fprintf(stderr, "create topic: %d\n", rc);
        return 1;
    }
    size_t len;
    /* zeros2: two zeros records of 32 MiB - 1 KiB: fetching offset 1 passes
     * over the first, decompressing through it. */
    uint8_t *bomb = !strcmp(kind, "wide")     ? wide_window(&len)
                    : !strcmp(kind, "zeros")  ? gwb_batch(1, (64u << 20) - 1024, 0, &len)
                    : !strcmp(kind, "zeros2") ? gwb_batch(2, (32u << 20) - 1024, 0, &len)
                                              : gwb_batch(1000000, 0, 0, &len);
    int64_t base = -1;
    rc = it_produce_one(c, topic, 0, bomb, len, 1, &base);
    if (rc != 0) {
        fprintf(stderr, "produce: %d (%s)\n", rc, rn_strerror(-rc));
        return 1;
    }
    printf("bomb %s: %zu bytes stored at offset %lld\n", kind, len, (long long)base);
    snprintf(fetch_path, sizeof(fetch_path), "/topics/%s/partitions/0/records?offset=%lld%s%s",
             topic, offset, argc > 6 ? "&max_bytes=" : "", argc > 6 ? argv[6] : "");
    printf("VmHWM before: %ld KiB\n", vm_hwm_kib(pid));

    fetch_result res[4];
    pthread_t th[4];
    fetches_left = 4;
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, fetch_thread, &res[i]);
    int64_t lat[4096];
    size_t n_lat = 0;
    while (__atomic_load_n(&fetches_left, __ATOMIC_SEQ_CST) > 0 && n_lat < 4096) {
        gwb_answer a;
        int64_t t0 = gwb_now_us();
        if (gwb_get(http_port, "/topics", 1 << 20, 30000, &a) == 0 && a.status == 200)
            lat[n_lat++] = gwb_now_us() - t0;
        usleep(20000);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    printf("VmHWM after:  %ld KiB\n", vm_hwm_kib(pid));
    for (int i = 0; i < 4; i++)
        printf("fetch %d: rc=%d status=%d body=%zu bytes in %.1f ms%s: %.120s\n", i, res[i].rc,
               res[i].a.status, res[i].a.body_len, res[i].us / 1000.0,
               res[i].a.truncated ? " (cut at 1 GiB)" : "", res[i].a.body);
    if (n_lat) {
        qsort(lat, n_lat, sizeof(lat[0]), cmp64);
        printf("GET /topics during the fetches: n=%zu median=%.1f ms max=%.1f ms\n", n_lat,
               lat[n_lat / 2] / 1000.0, lat[n_lat - 1] / 1000.0);
    } else {
        printf("GET /topics during the fetches: none completed before the fetches ended\n");
    }
    free(bomb);
    it_conn_close(c);
    return 0;
}
