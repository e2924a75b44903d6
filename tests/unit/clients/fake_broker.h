/*
 * fake_broker.h — a scripted broker on 127.0.0.1 for librunnel's core tests.
 *
 * test_conn.c and test_metadata.c test clients/conn.c and clients/metadata.c
 * against a peer that does exactly what the test says, including what a real
 * runneld never does (answer an unknown correlation id, send a frame over the
 * limit, close in the middle of a frame). fb_start listens on a free port of
 * 127.0.0.1 and runs one thread that accepts, cuts each connection's bytes
 * into frames (protocol/frame.h) and calls the test's handler with every
 * request header; the handler answers with fb_send / fb_reply_* and returns
 * FB_CLOSE to close that connection. fb_stop joins the thread and closes
 * everything. The handler runs on the broker's thread: what it shares with
 * the test goes through fb_lock / fb_unlock.
 *
 * Everything is static: each test file includes this once.
 */
#ifndef RN_TEST_FAKE_BROKER_H
#define RN_TEST_FAKE_BROKER_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/frame.h"

#define FB_MAX_CONNS 8
enum { FB_KEEP = 0, FB_CLOSE = 1 };

typedef struct fb fb;
/* One request arrived on connection fd (the raw header decoded; the body is
 * not validated, so any request a client sends reaches the test). */
typedef int (*fb_handler)(fb *b, int fd, const Runnel__RequestHeader *h, void *arg);

struct fb {
    int lfd, wake[2];
    uint16_t port;
    pthread_t th;
    fb_handler fn;
    void *arg;
    int fds[FB_MAX_CONNS];
    rn_frame_decoder dec[FB_MAX_CONNS];
    pthread_mutex_t mu;
    unsigned accepts, requests; /* under mu */
    /* The payload of the request the handler is called with (a Produce's
     * batches): valid during that call only. */
    const uint8_t *payload;
    uint32_t payload_len;
};

/* On the broker's thread a failed check cannot end the test the Criterion
 * way (that unwinds the test's own thread): it aborts, which fails it too. */
#define fb__check(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fake broker: " __VA_ARGS__);                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline void fb_lock(fb *b)
{
    pthread_mutex_lock(&b->mu);
}
static inline void fb_unlock(fb *b)
{
    pthread_mutex_unlock(&b->mu);
}

/* Write all of buf to fd (blocking); a peer already gone is ignored. */
static inline void fb_send(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* A response header as a whole frame (no payload) into fd. */
static inline void fb_send_header(int fd, Runnel__ResponseHeader *h)
{
    uint8_t *buf;
    size_t len;
    fb__check(rn_frame_encode_alloc(&h->base, 0, &buf, &len) == 0, "cannot encode a response");
    fb_send(fd, buf, len);
    free(buf);
}

/* An ApiVersions answer to cid carrying msg in error_message (error_code 0). */
static inline void fb_reply_api_versions(int fd, uint32_t cid, const char *msg)
{
    Runnel__ApiVersionsResponse av = RUNNEL__API_VERSIONS_RESPONSE__INIT;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = cid;
    h.error_message = (char *)msg;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_API_VERSIONS;
    h.api_versions = &av;
    fb_send_header(fd, &h);
}

static inline void fb_reply_metadata(int fd, uint32_t cid, Runnel__MetadataResponse *mr)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = cid;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_METADATA;
    h.metadata = mr;
    fb_send_header(fd, &h);
}

static inline void fb__close(fb *b, int i)
{
    close(b->fds[i]);
    b->fds[i] = -1;
    rn_frame_decoder_fini(&b->dec[i]);
}

/* Feed what fd has to its decoder; call the handler per request. */
static inline void fb__read(fb *b, int i)
{
    uint8_t buf[65536];
    ssize_t n = recv(b->fds[i], buf, sizeof(buf), 0);
    if (n <= 0) {
        fb__close(b, i);
        return;
    }
    size_t off = 0;
    while (off < (size_t)n) {
        size_t used;
        rn_frame f;
        int r = rn_frame_decoder_feed(&b->dec[i], buf + off, (size_t)n - off, &used, &f);
        fb__check(r >= 0, "bad frame from the client: %s", rn_frame_decoder_errmsg(&b->dec[i]));
        off += used;
        if (r == 0)
            break;
        Runnel__RequestHeader *h = runnel__request_header__unpack(NULL, f.header_len, f.header);
        fb__check(h != NULL, "request header does not unpack");
        fb_lock(b);
        b->requests++;
        fb_unlock(b);
        b->payload = f.payload;
        b->payload_len = f.payload_len;
        int what = b->fn(b, b->fds[i], h, b->arg);
        b->payload = NULL;
        b->payload_len = 0;
        runnel__request_header__free_unpacked(h, NULL);
        if (what == FB_CLOSE) {
            fb__close(b, i);
            return;
        }
    }
}

static inline void *fb__run(void *arg)
{
    fb *b = arg;
    for (;;) {
        struct pollfd p[2 + FB_MAX_CONNS];
        p[0] = (struct pollfd){.fd = b->wake[0], .events = POLLIN};
        p[1] = (struct pollfd){.fd = b->lfd, .events = POLLIN};
        for (int i = 0; i < FB_MAX_CONNS; i++)
            p[2 + i] = (struct pollfd){.fd = b->fds[i], .events = POLLIN};
        if (poll(p, 2 + FB_MAX_CONNS, 10000) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN) {
            int fd = accept(b->lfd, NULL, NULL);
            for (int i = 0; fd >= 0 && i < FB_MAX_CONNS; i++) {
                if (b->fds[i] < 0) {
                    b->fds[i] = fd;
                    rn_frame_decoder_init(&b->dec[i], NULL);
                    fd = -1;
                    fb_lock(b);
                    b->accepts++;
                    fb_unlock(b);
                }
            }
            if (fd >= 0)
                close(fd); /* more than FB_MAX_CONNS: refused */
        }
        for (int i = 0; i < FB_MAX_CONNS; i++)
            if (b->fds[i] >= 0 && p[2 + i].fd >= 0 &&
                (p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                fb__read(b, i);
    }
    return NULL;
}

static inline void fb_start(fb *b, fb_handler fn, void *arg)
{
    memset(b, 0, sizeof(*b));
    b->fn = fn;
    b->arg = arg;
    for (int i = 0; i < FB_MAX_CONNS; i++)
        b->fds[i] = -1;
    pthread_mutex_init(&b->mu, NULL);
    cr_assert_eq(pipe(b->wake), 0);
    b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(b->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(b->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(b->lfd, 16), 0);
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(b->lfd, (struct sockaddr *)&a, &al), 0);
    b->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&b->th, NULL, fb__run, b), 0);
}

static inline void fb_stop(fb *b)
{
    cr_assert_eq(write(b->wake[1], "x", 1), 1);
    pthread_join(b->th, NULL);
    for (int i = 0; i < FB_MAX_CONNS; i++)
        if (b->fds[i] >= 0)
            fb__close(b, i);
    close(b->lfd);
    close(b->wake[0]);
    close(b->wake[1]);
    pthread_mutex_destroy(&b->mu);
}

static inline unsigned fb_accepts(fb *b)
{
    fb_lock(b);
    unsigned n = b->accepts;
    fb_unlock(b);
    return n;
}

static inline unsigned fb_requests(fb *b)
{
    fb_lock(b);
    unsigned n = b->requests;
    fb_unlock(b);
    return n;
}

/* A 127.0.0.1 port nothing listens on (bound, then closed). */
static inline uint16_t fb_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

#endif
