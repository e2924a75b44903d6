/*
 * gw_bomb.h — decompression-bomb batches and a raw HTTP GET, shared by the
 * gateway bomb test (test_gateway_bombs.c) and the hand measurement tool
 * (gateway_bomb.c). Tests only.
 *
 * The bombs are valid Kafka v2 batches (right CRC, one zstd frame), built
 * with the producer's own builder, as a hostile producer or an old segment
 * holds them (issue 11):
 *   zeros: one record whose value is value_len zero bytes (64 MiB of zeros
 *          is ~10 KB as stored; rendered as JSON it was 390 MB);
 *   many:  n records with empty values (a million is ~9 MB decompressed and
 *          ~95 MB as JSON).
 */
#ifndef RN_IT_GW_BOMB_H
#define RN_IT_GW_BOMB_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"

/* A zstd batch of n records of value_len bytes of fill each (n = 1 for the
 * zeros bomb). The caller frees it. NULL on failure. */
static inline uint8_t *gwb_batch(size_t n, size_t value_len, uint8_t fill, size_t *len)
{
    rn_batch_builder_opts o = {
        .codec = RN_BATCH_CODEC_ZSTD, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rn_batch_builder *b;
    if (rn_batch_builder_new(&b, &o) < 0)
        return NULL;
    uint8_t *v = malloc(value_len ? value_len : 1);
    uint8_t *out = NULL;
    if (v) {
        memset(v, fill, value_len);
        size_t i = 0;
        for (; i < n; i++)
            if (rn_batch_builder_add(b, 1000, NULL, 0, v, value_len, NULL, 0) < 0)
                break;
        if (i < n || rn_batch_builder_finish(b, &out, len) < 0)
            out = NULL;
    }
    free(v);
    rn_batch_builder_free(b);
    return out;
}

static inline int64_t gwb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One HTTP answer: the status, the first bytes of the body, and how many
 * body bytes came (reading stops at max_body: truncated). */
typedef struct gwb_answer {
    int status;
    size_t body_len;
    bool truncated;
    char body[8192]; /* the body's first bytes, NUL-terminated */
    char tail[256];  /* its last bytes, NUL-terminated */
} gwb_answer;

/* METHOD path (with a JSON body, or NULL) to 127.0.0.1:port with
 * Connection: close, reading at most max_body bytes of the answer's body
 * within timeout_ms. Returns 0 or -errno. */
static inline int gwb_request(uint16_t port, const char *method, const char *path, const char *body,
                              size_t max_body, int timeout_ms, gwb_answer *a)
{
    memset(a, 0, sizeof(*a));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        goto out;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, port, body ? strlen(body) : 0, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        rc = -E2BIG;
        goto out;
    }
    if (write(fd, req, (size_t)n) != n) {
        rc = -EIO;
        goto out;
    }
    int64_t deadline = gwb_now_us() + (int64_t)timeout_ms * 1000;
    char head[4096];
    size_t hl = 0;
    bool in_body = false;
    char buf[65536];
    for (;;) {
        int64_t left = (deadline - gwb_now_us()) / 1000;
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        size_t off = 0;
        if (!in_body) {
            size_t take = (size_t)r < sizeof(head) - 1 - hl ? (size_t)r : sizeof(head) - 1 - hl;
            memcpy(head + hl, buf, take);
            hl += take;
            head[hl] = 0;
            char *end = strstr(head, "\r\n\r\n");
            if (!end) {
                if (hl == sizeof(head) - 1) {
                    rc = -EPROTO;
                    break;
                }
                continue;
            }
            a->status = atoi(head + 9);
            size_t head_len = (size_t)(end + 4 - head);
            off = head_len - (hl - take);
            in_body = true;
        }
        size_t m = (size_t)r - off;
        if (a->body_len < sizeof(a->body) - 1) {
            size_t k =
                m < sizeof(a->body) - 1 - a->body_len ? m : sizeof(a->body) - 1 - a->body_len;
            memcpy(a->body + a->body_len, buf + off, k);
        }
        size_t keep = m < sizeof(a->tail) - 1 ? m : sizeof(a->tail) - 1;
        size_t have = strlen(a->tail);
        if (have + keep > sizeof(a->tail) - 1) {
            size_t drop = have + keep - (sizeof(a->tail) - 1);
            memmove(a->tail, a->tail + drop, have - drop);
            have -= drop;
        }
        memcpy(a->tail + have, buf + off + m - keep, keep);
        a->tail[have + keep] = 0;
        a->body_len += m;
        if (a->body_len > max_body) {
            a->truncated = true;
            break;
        }
    }
    if (!in_body && rc == 0)
        rc = -EPROTO;
out:
    close(fd);
    return rc;
}

static inline int gwb_get(uint16_t port, const char *path, size_t max_body, int timeout_ms,
                          gwb_answer *a)
{
    return gwb_request(port, "GET", path, NULL, max_body, timeout_ms, a);
}

#endif
