/*
 * test_frame_buffers.c — a runneld's reactors reuse the buffers of frames
 * that span receives (broker/net/bufpool.c): Produce requests of 100 KiB and
 * more, one after another and pipelined, take warm buffers back from the
 * pool (runnel_frame_buffers_total in /metrics) instead of fresh memory from
 * the kernel each time, and a reused buffer never mixes one request's bytes
 * into another's: every batch reads back as produced.
 */
#include <inttypes.h>

#include "fixture.h"
#include "protocol/batch.h"

ITF_HTTP_SUITE(frame_buffers, 120);

#define N_SEQ  24 /* produced one at a time */
#define N_PIPE 8  /* then this many sent before the first answer is read */
#define N_ALL  (N_SEQ + N_PIPE)

/* A batch of ~110 KiB whose every record names batch k, so a stale byte from
 * another request shows. */
static uint8_t *big_batch(int k, size_t *len)
{
    char tag[224];
    memset(tag, 'a' + k % 26, sizeof(tag) - 1);
    tag[sizeof(tag) - 1] = 0;
    snprintf(tag, 16, "b%03d", k);
    tag[strlen(tag)] = '-';
    uint8_t *b = itf_batch(tag, 480, 1000 + k, len);
    cr_assert_gt(*len, 100 * 1024);
    return b;
}

/* The value of a metric line `name value` in a /metrics body, or -1. */
static long long metric(const char *body, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = body; (p = strstr(p, name)); p += n)
        if ((p == body || p[-1] == '\n') && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

// Big produce requests reuse the reactor's frame buffers, and every batch
// reads back byte for byte, whether sent one at a time or pipelined.
Test(frame_buffers, big_requests_reuse_warm_buffers)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "big", 1, NULL);
    uint8_t *bt[N_ALL];
    size_t bl[N_ALL];
    for (int k = 0; k < N_ALL; k++)
        bt[k] = big_batch(k, &bl[k]);
    for (int k = 0; k < N_SEQ; k++)
        cr_assert_eq(itf_produce(c, "big", 0, bt[k], bl[k]), k * 480);
    uint32_t cid[N_PIPE];
    for (int k = N_SEQ; k < N_ALL; k++) {
        it_produce_part pp = {"big", 0, bt[k], bl[k]};
        cr_assert_eq(it_produce_send(c, &pp, 1, 1, &cid[k - N_SEQ]), 0);
    }
    for (int k = N_SEQ; k < N_ALL; k++) {
        it_resp r;
        cr_assert_eq(it_conn_recv(c, RUNNEL__API__PRODUCE, &r, 10000), 0);
        cr_assert_eq(r.hdr->produce->partitions[0]->error_code, 0);
        it_resp_free(&r);
    }

    char *body = NULL;
    cr_assert_eq(itf_http_get(http_port, "/metrics", &body), 200);
    long long reused = metric(body, "runnel_frame_buffers_total{outcome=\"reused\"}");
    long long allocated = metric(body, "runnel_frame_buffers_total{outcome=\"allocated\"}");
    long long idle = metric(body, "runnel_frame_buffers_idle_bytes");
    /* One connection, one reactor: the first request allocates, the pipelined
     * ones at most N_PIPE at once; every other request reuses. */
    cr_assert_geq(reused, N_SEQ - 1, "reused %lld of %d big requests", reused, N_ALL);
    cr_assert_leq(allocated, 1 + N_PIPE, "allocated %lld buffers for %d requests", allocated,
                  N_ALL);
    cr_assert_gt(idle, 100 * 1024, "idle %lld bytes after the requests", idle);
    free(body);

    int64_t off = 0;
    int k = 0;
    while (k < N_ALL) {
        it_fetch_part fp = {"big", 0, off, 4u << 20};
        it_fetch_opts o = {.max_bytes = 4u << 20};
        it_resp r;
        cr_assert_eq(it_fetch(c, &fp, 1, &o, &r), 0);
        const uint8_t *data;
        size_t len;
        it_fetch_data(&r, 0, &data, &len);
        cr_assert_gt(len, 0, "nothing fetched at %" PRId64, off);
        for (size_t at = 0; at < len && k < N_ALL; k++) {
            cr_assert_leq(at + bl[k], len, "batch %d cut short", k);
            cr_assert_eq(rn_batch_verify(data + at, bl[k], 0, 0), 0, "batch %d does not verify", k);
            cr_assert_eq(memcmp(data + at + RN_BATCH_OFF_MAGIC, bt[k] + RN_BATCH_OFF_MAGIC,
                                bl[k] - RN_BATCH_OFF_MAGIC),
                         0, "batch %d differs from what was produced", k);
            at += bl[k];
            off += 480;
        }
        it_resp_free(&r);
    }
    for (int i = 0; i < N_ALL; i++)
        free(bt[i]);
    it_conn_close(c);
}
