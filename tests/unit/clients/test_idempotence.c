/*
 * test_idempotence.c — the idempotent producer (the librunnel default)
 * through a fault-injecting TCP proxy that cuts every connection every 200
 * milliseconds: requests reach the broker and their answers are
 * lost, the producer retries, and the log still holds every record exactly
 * once, at the offset the producer reported.
 *
 * The proxy is a thread of this test: it accepts on its own port and
 * forwards whole frames both ways to runneld. Every CUT_MS it arms a cut:
 * the next answer that comes from the broker is dropped and every
 * connection closed, so each cut hits a request the broker has already
 * handled (a random cut would mostly fall between requests). runneld advertises its own address in
 * Metadata, so the proxy rewrites the broker port of Metadata answers to its own: every request of
 * the producer goes through it, not only the bootstrap. It counts the
 * requests it delivered to the broker whose answer it then dropped, so the
 * test proves the retries it relies on did happen.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clients/runnel.h"
#include "clients/testing.h"
#include "fake_broker.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "harness.h"
#include "runnel.pb-c.h"

#define CUT_MS    200
#define MAX_LINKS 32

/* ---- The proxy ---------------------------------------------------------------------------- */

/* Bytes of one direction waiting to make a whole frame. */
typedef struct fbuf {
    uint8_t *p;
    size_t len, cap;
} fbuf;

typedef struct plink {
    int cfd, bfd;    /* client side, broker side */
    fbuf up, down;   /* client → broker, broker → client */
    uint64_t n_up;   /* requests delivered to the broker */
    uint64_t n_down; /* answers delivered to the client */
} plink;

typedef struct proxy {
    int lfd;
    uint16_t port, target;
    pthread_t th;
    volatile int stop;
    bool armed;        /* drop the next answer and cut everything */
    bool arm_at_start; /* the very first answer is dropped too */
    bool no_cuts;      /* never arm a cut (the test mutes instead) */
    volatile int mute; /* while set, answers are read and dropped, links kept */
    plink links[MAX_LINKS];
    int n;
    /* Statistics, read by the test while the proxy runs. */
    _Atomic unsigned cuts;         /* rounds that closed at least one connection */
    _Atomic uint64_t lost_answers; /* requests the broker got whose answer was dropped */
    _Atomic uint64_t md_rewritten; /* Metadata answers pointed at the proxy */
    _Atomic uint64_t muted;        /* answers dropped while muted */
} proxy;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static bool fbuf_add(fbuf *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

/* A Metadata answer with the broker's port replaced by the proxy's, as a
 * new frame in *out (malloc'd); false when the frame is not one. */
static bool rewrite_metadata(const proxy *px, const uint8_t *f, size_t flen, uint8_t **out,
                             size_t *out_len)
{
    uint32_t hlen = be32(f + 4);
    if (8 + (size_t)hlen > flen)
        return false;
    Runnel__ResponseHeader *h = runnel__response_header__unpack(NULL, hlen, f + 8);
    if (!h)
        return false;
    bool done = false;
    if (h->body_case == RUNNEL__RESPONSE_HEADER__BODY_METADATA) {
        for (size_t i = 0; i < h->metadata->n_brokers; i++)
            if (h->metadata->brokers[i]->port == px->target)
                h->metadata->brokers[i]->port = px->port;
        size_t nh = runnel__response_header__get_packed_size(h);
        size_t payload = flen - 8 - hlen;
        uint8_t *nf = malloc(8 + nh + payload);
        if (nf) {
            put_be32(nf, (uint32_t)(4 + nh + payload));
            put_be32(nf + 4, (uint32_t)nh);
            runnel__response_header__pack(h, nf + 8);
            memcpy(nf + 8 + nh, f + 8 + hlen, payload);
            *out = nf;
            *out_len = 8 + nh + payload;
            done = true;
        }
    }
    runnel__response_header__free_unpacked(h, NULL);
    return done;
}

/* Forward the whole frames of b to fd; false when fd failed, or when an
 * armed cut drops an answer (then every link is to be closed). */
static bool forward_frames(proxy *px, fbuf *b, int fd, bool down, uint64_t *count)
{
    size_t off = 0;
    while (b->len - off >= 4) {
        size_t flen = 4 + (size_t)be32(b->p + off);
        if (b->len - off < flen)
            break;
        if (down && px->armed)
            return false;
        if (down && px->mute) {
            px->muted++;
            off += flen;
            continue;
        }
        uint8_t *nf = NULL;
        size_t nlen = 0;
        bool ok;
        if (down && rewrite_metadata(px, b->p + off, flen, &nf, &nlen)) {
            px->md_rewritten++;
            ok = write_all(fd, nf, nlen);
            free(nf);
        } else {
            ok = write_all(fd, b->p + off, flen);
        }
        if (!ok)
            return false;
        (*count)++;
        off += flen;
    }
    memmove(b->p, b->p + off, b->len - off);
    b->len -= off;
    return true;
}

static void plink_close(proxy *px, int i)
{
    plink *l = &px->links[i];
    if (l->n_up > l->n_down)
        px->lost_answers += l->n_up - l->n_down;
    shutdown(l->cfd, SHUT_RDWR);
    shutdown(l->bfd, SHUT_RDWR);
    close(l->cfd);
    close(l->bfd);
    free(l->up.p);
    free(l->down.p);
    px->links[i] = px->links[--px->n];
}

static int connect_broker(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void *proxy_main(void *arg)
{
    proxy *px = arg;
    int64_t next_cut = rt_now_ms() + CUT_MS;
    uint8_t buf[65536];
    if (px->arm_at_start)
        px->armed = true;
    while (!px->stop) {
        struct pollfd pfd[1 + 2 * MAX_LINKS];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = px->lfd, .events = POLLIN};
        for (int i = 0; i < px->n; i++) {
            pfd[n++] = (struct pollfd){.fd = px->links[i].cfd, .events = POLLIN};
            pfd[n++] = (struct pollfd){.fd = px->links[i].bfd, .events = POLLIN};
        }
        int64_t wait = next_cut - rt_now_ms();
        poll(pfd, (nfds_t)n, px->armed || wait < 0 ? 50 : (int)(wait > 50 ? 50 : wait));
        if (!px->armed && !px->no_cuts && rt_now_ms() >= next_cut)
            px->armed = true;
        /* Links first (their pollfd indexes are still valid), newest last. */
        for (int i = px->n - 1; i >= 0; i--) {
            plink *l = &px->links[i];
            bool ok = true;
            for (int side = 0; side < 2 && ok; side++) {
                struct pollfd *p = &pfd[1 + 2 * i + side];
                if (!(p->revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                ssize_t r = recv(p->fd, buf, sizeof(buf), 0);
                if (r <= 0) {
                    ok = false;
                    break;
                }
                fbuf *b = side == 0 ? &l->up : &l->down;
                ok = fbuf_add(b, buf, (size_t)r) &&
                     (side == 0 ? forward_frames(px, b, l->bfd, false, &l->n_up)
                                : forward_frames(px, b, l->cfd, true, &l->n_down));
            }
            if (!ok && px->armed) {
                /* The armed cut: an answer was dropped; close everything. */
                while (px->n)
                    plink_close(px, px->n - 1);
                px->cuts++;
                px->armed = false;
                next_cut = rt_now_ms() + CUT_MS;
                break;
            }
            if (!ok)
                plink_close(px, i);
        }
        if (pfd[0].revents & POLLIN) {
            int cfd = accept(px->lfd, NULL, NULL);
            if (cfd < 0)
                continue;
            int bfd = px->n < MAX_LINKS ? connect_broker(px->target) : -1;
            if (bfd < 0) {
                close(cfd);
                continue;
            }
            struct timeval tv = {2, 0};
            setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            px->links[px->n++] = (plink){.cfd = cfd, .bfd = bfd};
        }
    }
    while (px->n)
        plink_close(px, px->n - 1);
    return NULL;
}

static void proxy_start_armed(proxy *px, uint16_t target, bool armed)
{
    memset(px, 0, sizeof(*px));
    px->arm_at_start = armed;
    px->target = target;
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(px->lfd >= 0);
    int one = 1;
    setsockopt(px->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    cr_assert(getsockname(px->lfd, (struct sockaddr *)&a, &len) == 0);
    px->port = ntohs(a.sin_port);
    cr_assert(listen(px->lfd, 64) == 0);
    cr_assert_eq(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_start(proxy *px, uint16_t target)
{
    proxy_start_armed(px, target, false);
}

/* A proxy that never cuts on its own: the test mutes it (px->mute). */
static void proxy_start_quiet(proxy *px, uint16_t target)
{
    memset(px, 0, sizeof(*px));
    px->no_cuts = true;
    px->target = target;
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(px->lfd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    cr_assert(getsockname(px->lfd, (struct sockaddr *)&a, &len) == 0);
    px->port = ntohs(a.sin_port);
    cr_assert(listen(px->lfd, 64) == 0);
    cr_assert_eq(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_stop(proxy *px)
{
    px->stop = 1;
    pthread_join(px->th, NULL);
    close(px->lfd);
}

/* ---- Producing through it ------------------------------------------------------------------- */

typedef struct reports {
    size_t n, done, failed;
    int last_err; /* of the last record failed */
    int64_t *offset;
    int32_t *partition;
} reports;

static void on_delivery(void *arg, int err, const char *topic, int32_t partition, int64_t offset,
                        void *opaque)
{
    reports *r = arg;
    size_t i = (size_t)(uintptr_t)opaque;
    (void)topic;
    cr_assert(i < r->n);
    cr_assert_eq(r->offset[i], -100, "record %zu reported twice", i);
    r->offset[i] = err ? -1 : offset;
    r->partition[i] = partition;
    r->done++;
    if (err) {
        r->failed++;
        r->last_err = err;
    }
}

/* Send n records "<prefix><i>" through the proxy, keyless over the topic's
 * partitions; returns when every one is reported. */
static void produce_through(const proxy *px, const char *topic, size_t n, const char *prefix,
                            const char *idempotence, reports *r)
{
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", px->port);
    rn_conf *conf =
        rt_conf(NULL, "bootstrap.servers", servers, "linger.ms", "2", "retry.backoff.ms", "20",
                "reconnect.backoff.ms", "20", "socket.timeout.ms", "3000", "delivery.timeout.ms",
                "60000", "enable.idempotence", idempotence, "partitioner", "roundrobin", NULL);
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, r), 0);
    rn_conf_free(conf);
    memset(r, 0, sizeof(*r));
    r->n = n;
    r->offset = malloc(n * sizeof(*r->offset));
    r->partition = calloc(n, sizeof(*r->partition));
    cr_assert(r->offset && r->partition);
    for (size_t i = 0; i < n; i++)
        r->offset[i] = -100;
    for (size_t i = 0; i < n; i++) {
        char v[64];
        int len = snprintf(v, sizeof(v), "%s%zu", prefix, i);
        int rc;
        while ((rc = rn_producer_send(p, topic, -1, NULL, 0, v, (size_t)len, NULL, 0, 0,
                                      (void *)(uintptr_t)i)) == -ENOBUFS)
            rn_producer_poll(p, 10);
        cr_assert_eq(rc, 0, "send %zu: %s", i, rn_producer_errmsg(p));
        /* A steady stream of about 7500 records a second, so the stream
         * spans many cuts and each finds requests in flight. */
        if (i % 75 == 74) {
            rn_producer_poll(p, 0);
            rt_sleep_ms(10);
        }
    }
    cr_assert_eq(rn_producer_flush(p, 60000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r->done, n);
    rn_producer_close(p);
}

/* Read topic straight from the broker: by_offset[p][o] = value number. */
typedef struct logview {
    int32_t n_parts;
    size_t cap;
    int64_t **by_offset; /* -1: no record there */
    size_t total;
} logview;

static void read_log(const rt_broker *b, const char *topic, int32_t n_parts, size_t cap,
                     const char *prefix, logview *lv)
{
    lv->n_parts = n_parts;
    lv->cap = cap;
    lv->total = 0;
    lv->by_offset = calloc((size_t)n_parts, sizeof(*lv->by_offset));
    for (int32_t p = 0; p < n_parts; p++) {
        lv->by_offset[p] = malloc(cap * sizeof(int64_t));
        for (size_t o = 0; o < cap; o++)
            lv->by_offset[p][o] = -1;
    }
    rn_conf *conf = rt_conf(b, "fetch.max.wait.ms", "50", NULL);
    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    rn_conf_free(conf);
    cr_assert_eq(rn_consumer_assign_topic(c, topic, RN_START_BEGINNING), 0, "%s",
                 rn_consumer_errmsg(c));
    int64_t deadline = rt_now_ms() + 20000;
    size_t plen = strlen(prefix);
    while (!rn_consumer_at_end(c)) {
        cr_assert(rt_now_ms() < deadline, "did not reach the end of %s", topic);
        const rn_message *msgs;
        int got = rn_consumer_poll(c, 200, &msgs);
        cr_assert(got >= 0, "%s", rn_consumer_errmsg(c));
        for (int i = 0; i < got; i++) {
            const rn_message *m = &msgs[i];
            cr_assert((size_t)m->offset < cap, "offset %lld past %zu", (long long)m->offset, cap);
            cr_assert(m->value_len > plen && m->value_len < 40);
            char v[48];
            memcpy(v, m->value, m->value_len);
            v[m->value_len] = 0;
            cr_assert(strncmp(v, prefix, plen) == 0, "value %s", v);
            lv->by_offset[m->partition][m->offset] = atoll(v + plen);
            lv->total++;
        }
    }
    rn_consumer_close(c);
}

static void logview_free(logview *lv)
{
    for (int32_t p = 0; p < lv->n_parts; p++)
        free(lv->by_offset[p]);
    free(lv->by_offset);
}

// Through a proxy that cuts every connection every 200 ms, the idempotent
// producer delivers every record exactly once: the log holds N records, each
// value at one offset only, the one the producer reported; and the proxy
// dropped answers of requests the broker had received (the retries happened);
// the same stream without idempotence does store duplicates.
Test(idempotence, cut_connections_no_duplicates, .timeout = 180)
{
    enum { N = 30000, PARTS = 3 };
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "idem", PARTS);
    rt_create_topic(&b, "plain", PARTS);
    proxy px;
    proxy_start(&px, b.port);

    reports r;
    int64_t t0 = rt_now_ms();
    produce_through(&px, "idem", N, "i", "true", &r);
    int64_t took = rt_now_ms() - t0;
    unsigned cuts = px.cuts;
    uint64_t lost = px.lost_answers, md = px.md_rewritten;
    cr_assert_eq(r.failed, 0, "%zu records failed, the last with %s", r.failed,
                 rn_err_name(r.last_err));

    logview lv;
    read_log(&b, "idem", PARTS, 2 * N, "i", &lv);
    cr_assert_eq(lv.total, N, "%zu records in the log for %d sent", lv.total, N);
    size_t *where = calloc(N, sizeof(*where)); /* how many offsets hold value i */
    for (int32_t p = 0; p < PARTS; p++)
        for (size_t o = 0; o < lv.cap; o++)
            if (lv.by_offset[p][o] >= 0) {
                int64_t v = lv.by_offset[p][o];
                cr_assert(v >= 0 && v < N);
                where[v]++;
            }
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(where[i], 1, "value %zu is at %zu offsets", i, where[i]);
        cr_assert_eq(lv.by_offset[r.partition[i]][r.offset[i]], (int64_t)i,
                     "record %zu reported at %d/%lld", i, r.partition[i], (long long)r.offset[i]);
    }
    fprintf(stderr,
            "idempotence: %d records through a proxy cutting every %d ms: %u cuts, %llu answers "
            "dropped after the broker had the request, %llu Metadata answers redirected; %zu "
            "in the log, no duplicate (%lld ms)\n",
            N, CUT_MS, cuts, (unsigned long long)lost, (unsigned long long)md, lv.total,
            (long long)took);
    cr_assert(cuts >= 3, "only %u cuts", cuts);
    cr_assert(md >= 1, "the producer bypassed the proxy");
    cr_assert(lost >= 1, "no answer was ever lost: the test proved nothing");
    logview_free(&lv);
    free(where);
    free(r.offset);
    free(r.partition);

    /* For contrast, the same without idempotence: the retries of answers
     * the proxy dropped store their batches twice. This proves the proxy's
     * cuts do what the first half relies on. */
    px.lost_answers = 0;
    produce_through(&px, "plain", N / 3, "p", "false", &r);
    read_log(&b, "plain", PARTS, 2 * N, "p", &lv);
    fprintf(stderr,
            "idempotence: without it, %d records sent stored %zu (%lld duplicates, %llu answers "
            "dropped)\n",
            N / 3, lv.total, (long long)lv.total - N / 3, (unsigned long long)px.lost_answers);
    cr_assert(lv.total > N / 3, "no duplicate without idempotence: the cuts hit no Produce answer");
    logview_free(&lv);
    free(r.offset);
    free(r.partition);
    proxy_stop(&px);
    rt_broker_stop(&b);
}

// The connection drops while the producer waits for its first Metadata
// answer (the broker got the request, the answer is lost): the first send
// retries and succeeds instead of failing with "closed by the broker"
// (it failed before the metadata wait retried dropped connections).
Test(idempotence, first_metadata_answer_lost, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "first", 1);
    proxy px;
    proxy_start_armed(&px, b.port, true);
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", px.port);
    rn_conf *conf = rt_conf(NULL, "bootstrap.servers", servers, "retry.backoff.ms", "20",
                            "reconnect.backoff.ms", "20", "socket.timeout.ms", "5000", NULL);
    reports r = {0};
    r.n = 1;
    int64_t off = -100;
    int32_t part = -1;
    r.offset = &off;
    r.partition = &part;
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, &r), 0);
    rn_conf_free(conf);
    int rc = rn_producer_send(p, "first", -1, NULL, 0, "v", 1, NULL, 0, 0, (void *)(uintptr_t)0);
    cr_assert_eq(rc, 0, "first send: %s", rn_producer_errmsg(p));
    cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, 1);
    cr_assert_eq(r.failed, 0);
    cr_assert_geq(px.cuts, 1, "the proxy never cut: the test proved nothing");
    rn_producer_close(p);
    proxy_stop(&px);
    rt_broker_stop(&b);
}

// Batches in doubt are never sent under a new producer id. The proxy lets
// requests reach the broker but drops every answer (muted) while record A
// (partition 0) is retried until delivery.timeout.ms fails it for good,
// which leaves a gap in partition 0's sequences; meanwhile batches of
// partition 1, sent after it, were appended by the broker and their answers
// lost (in doubt). Before, A's failure made the producer take a new id at
// once: the batches in doubt went out again under it with new sequences and
// were stored twice. Now they are retried under their own id and sequence
// until the broker answers them (as duplicates of what it has), and only
// then does the producer take a new id, for the batches never sent. Every
// acknowledged record is in the log once, at the offset reported; none is
// in it twice.
Test(idempotence, in_doubt_not_resent_under_new_id, .timeout = 90)
{
    enum { N = 48, PARTS = 2, A = 2, P1_FIRST = 3, P1_LAST = 38 };
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "doubt", PARTS);
    proxy px;
    proxy_start_quiet(&px, b.port);
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", px.port);
    rn_conf *conf = rt_conf(NULL, "bootstrap.servers", servers, "linger.ms", "1",
                            "retry.backoff.ms", "50", "reconnect.backoff.ms", "20",
                            "socket.timeout.ms", "1000", "delivery.timeout.ms", "4000",
                            "enable.idempotence", "true", "acks", "all", NULL);
    reports r = {0};
    r.n = N;
    r.offset = malloc(N * sizeof(*r.offset));
    r.partition = calloc(N, sizeof(*r.partition));
    cr_assert(r.offset && r.partition);
    for (size_t i = 0; i < N; i++)
        r.offset[i] = -100;
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, &r), 0);
    rn_conf_free(conf);
    char v[32];
    int len;
#define SEND(i, part)                                                                              \
    do {                                                                                           \
        len = snprintf(v, sizeof(v), "d%d", (int)(i));                                             \
        cr_assert_eq(rn_producer_send(p, "doubt", (part), NULL, 0, v, (size_t)len, NULL, 0, 0,     \
                                      (void *)(uintptr_t)(i)),                                     \
                     0, "send %d: %s", (int)(i), rn_producer_errmsg(p));                           \
    } while (0)
    /* Metadata and the producer id first, answered. */
    SEND(0, 0);
    SEND(1, 1);
    cr_assert_eq(rn_producer_flush(p, 20000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.failed, 0);
    int64_t pid0 = rn__producer_id(p);
    cr_assert_geq(pid0, 0, "idempotence is off");

    px.mute = 1;
    SEND(A, 0);
    /* A is in the log and its answers lost, two or three times over: its
     * connection times out after socket.timeout.ms, and it is retried. */
    int64_t until = rt_now_ms() + 2500;
    while (rt_now_ms() < until)
        rn_producer_poll(p, 20);
    /* Partition 1's batches go out (appended, answers lost): in doubt. */
    for (int i = P1_FIRST; i <= P1_LAST; i++) {
        SEND(i, 1);
        if (i % 4 == 2) {
            rn_producer_poll(p, 0);
            rt_sleep_ms(15);
        }
    }
    /* And partition 0's, queued behind A (never sent before A ends). */
    for (int i = P1_LAST + 1; i < N; i++)
        SEND(i, 0);
    int64_t deadline = rt_now_ms() + 30000;
    while (r.offset[A] == -100) {
        cr_assert(rt_now_ms() < deadline, "A was never reported");
        rn_producer_poll(p, 20);
    }
    cr_assert_eq(r.offset[A], -1, "A was acknowledged through a muted proxy");
    px.mute = 0;
    cr_assert_eq(rn_producer_flush(p, 30000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, N);
    int64_t pid1 = rn__producer_id(p);
    rn_producer_close(p);
#undef SEND

    logview lv;
    read_log(&b, "doubt", PARTS, 4 * N, "d", &lv);
    size_t *where = calloc(N, sizeof(*where));
    for (int32_t pa = 0; pa < PARTS; pa++)
        for (size_t o = 0; o < lv.cap; o++)
            if (lv.by_offset[pa][o] >= 0) {
                int64_t x = lv.by_offset[pa][o];
                cr_assert(x >= 0 && x < N);
                where[x]++;
            }
    size_t acked_after_doubt = 0;
    for (size_t i = 0; i < N; i++) {
        cr_assert_leq(where[i], 1, "record d%zu is in the log %zu times", i, where[i]);
        if (r.offset[i] >= 0) {
            cr_assert_eq(where[i], 1, "acknowledged record d%zu is not in the log", i);
            cr_assert_eq(lv.by_offset[r.partition[i]][r.offset[i]], (int64_t)i,
                         "record d%zu reported at %d/%lld", i, r.partition[i],
                         (long long)r.offset[i]);
            if (i >= P1_FIRST && i <= P1_LAST)
                acked_after_doubt++;
        }
    }
    fprintf(stderr,
            "idempotence: %zu answers dropped while muted; record A failed for good (in the log "
            "%zu time); %zu of partition 1's %d records acknowledged, %zu failed in all; producer "
            "id %lld then %lld; %zu records in the log, none twice\n",
            (size_t)px.muted, where[A], acked_after_doubt, P1_LAST - P1_FIRST + 1, r.failed,
            (long long)pid0, (long long)pid1, lv.total);
    cr_assert_neq(pid1, pid0, "no new producer id after A's gap: the test proved nothing");
    cr_assert_geq(px.muted, 3, "hardly an answer dropped: the test proved nothing");
    logview_free(&lv);
    free(where);
    free(r.offset);
    free(r.partition);
    proxy_stop(&px);
    rt_broker_stop(&b);
}

/* ---- Answers out of order (a scripted broker) ------------------------------------------ */

/* The scripted leader of topic "ord" (one partition): the first Produce's
 * answer is held; the second is answered OUT_OF_ORDER_SEQUENCE at once and
 * only then the first NOT_LEADER, as a real leader does when it refuses
 * batch N+1 at once (N is not in its log) while the answer to N's request
 * still waits for another partition's write. Every later Produce is
 * appended. */
typedef struct script {
    uint16_t port;
    unsigned produces, init_producers;
    uint32_t held; /* the first Produce's correlation id */
    int64_t next_offset;
} script;

static void answer_produce(int fd, uint32_t cid, uint32_t code, int64_t base)
{
    Runnel__ProducePartitionResponse pr = RUNNEL__PRODUCE_PARTITION_RESPONSE__INIT, *prp = &pr;
    pr.topic = "ord";
    pr.partition = 0;
    pr.error_code = code;
    pr.base_offset = code ? -1 : base;
    pr.log_append_time = -1;
    Runnel__ProduceResponse resp = RUNNEL__PRODUCE_RESPONSE__INIT;
    resp.n_partitions = 1;
    resp.partitions = &prp;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = cid;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_PRODUCE;
    h.produce = &resp;
    fb_send_header(fd, &h);
}

static int scripted(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    script *sc = arg;
    fb_lock(b);
    if (h->body_case == RUNNEL__REQUEST_HEADER__BODY_METADATA) {
        Runnel__Broker br = RUNNEL__BROKER__INIT, *brp = &br;
        br.node_id = 1;
        br.host = "127.0.0.1";
        br.port = sc->port;
        Runnel__PartitionMetadata pm = RUNNEL__PARTITION_METADATA__INIT, *pmp = &pm;
        pm.partition = 0;
        pm.leader = 1;
        Runnel__TopicMetadata tm = RUNNEL__TOPIC_METADATA__INIT, *tmp = &tm;
        tm.name = "ord";
        tm.n_partitions = 1;
        tm.partitions = &pmp;
        Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
        mr.n_brokers = 1;
        mr.brokers = &brp;
        mr.controller_id = 1;
        mr.n_topics = 1;
        mr.topics = &tmp;
        fb_reply_metadata(fd, h->correlation_id, &mr);
    } else if (h->body_case == RUNNEL__REQUEST_HEADER__BODY_INIT_PRODUCER) {
        sc->init_producers++;
        Runnel__InitProducerResponse ip = RUNNEL__INIT_PRODUCER_RESPONSE__INIT;
        ip.producer_id = 40 + sc->init_producers;
        Runnel__ResponseHeader r = RUNNEL__RESPONSE_HEADER__INIT;
        r.correlation_id = h->correlation_id;
        r.body_case = RUNNEL__RESPONSE_HEADER__BODY_INIT_PRODUCER;
        r.init_producer = &ip;
        fb_send_header(fd, &r);
    } else if (h->body_case == RUNNEL__REQUEST_HEADER__BODY_PRODUCE) {
        sc->produces++;
        if (sc->produces == 1) {
            sc->held = h->correlation_id;
        } else if (sc->produces == 2) {
            answer_produce(fd, h->correlation_id, RN_E_OUT_OF_ORDER_SEQUENCE, -1);
            answer_produce(fd, sc->held, RN_E_NOT_LEADER, -1);
        } else {
            answer_produce(fd, h->correlation_id, 0, sc->next_offset++);
        }
    } else if (h->body_case == RUNNEL__REQUEST_HEADER__BODY_API_VERSIONS) {
        fb_reply_api_versions(fd, h->correlation_id, NULL);
    }
    fb_unlock(b);
    return FB_KEEP;
}

// An OUT_OF_ORDER_SEQUENCE answer that overtakes the answer to the batch
// before it (still in flight, refused too) is retried like one behind a
// batch waiting for its retry: both batches are acknowledged, in order,
// under the first producer id. Before, the producer failed the second batch
// for good (nothing older was waiting in its queue) and took a new id.
Test(idempotence, out_of_order_answer_overtaking, .timeout = 30)
{
    fb b;
    script sc = {0};
    fb_start(&b, scripted, &sc);
    sc.port = b.port;
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", b.port);
    rn_conf *conf = rt_conf(NULL, "bootstrap.servers", servers, "linger.ms", "0",
                            "retry.backoff.ms", "10", "socket.timeout.ms", "10000",
                            "delivery.timeout.ms", "20000", NULL);
    reports r = {0};
    r.n = 2;
    int64_t off[2] = {-100, -100};
    int32_t part[2];
    r.offset = off;
    r.partition = part;
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, &r), 0);
    rn_conf_free(conf);
    for (uintptr_t i = 0; i < 2; i++) {
        cr_assert_eq(rn_producer_send(p, "ord", 0, NULL, 0, "v", 1, NULL, 0, 0, (void *)i), 0,
                     "%s", rn_producer_errmsg(p));
        /* Out in a request of its own before the next is sent. */
        int64_t until = rt_now_ms() + 10000;
        for (;;) {
            fb_lock(&b);
            unsigned n = sc.produces;
            fb_unlock(&b);
            if (n > i)
                break;
            cr_assert(rt_now_ms() < until, "batch %u never sent", (unsigned)i);
            rn_producer_poll(p, 5);
        }
    }
    cr_assert_eq(rn_producer_flush(p, 15000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.failed, 0, "a batch failed: %s", rn_producer_errmsg(p));
    cr_assert_eq(off[0], 0);
    cr_assert_eq(off[1], 1);
    fb_lock(&b);
    unsigned inits = sc.init_producers, produces = sc.produces;
    fb_unlock(&b);
    cr_assert_eq(inits, 1, "%u producer ids taken", inits);
    cr_assert_eq(produces, 4, "%u Produce requests", produces);
    rn_producer_close(p);
    fb_stop(&b);
}

/* ---- A full disk behind a pipelined batch (a scripted broker) -------------------------- */

/* The scripted leader of "ord" keeps sequences per producer id as a real one
 * does: a batch at the next sequence is appended, any other refused with
 * OUT_OF_ORDER_SEQUENCE; a batch of more than 100 bytes of payload (batch A)
 * meets a full disk, STORAGE_ERROR (or a_err), every time. A's first answer
 * is held until the second Produce (batch B, small, the next sequence)
 * arrives; then A is answered STORAGE_ERROR and B OUT_OF_ORDER_SEQUENCE, as
 * runneld does with two batches pipelined when the first write fails. */
typedef struct seq_script {
    script sc;      /* metadata, producer ids; sc.produces, sc.held */
    uint32_t a_err; /* 0: STORAGE_ERROR */
    int64_t pid;
    int32_t expected;
    unsigned storage_errors, out_of_order;
} seq_script;

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int sequencing(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    seq_script *ss = arg;
    if (h->body_case != RUNNEL__REQUEST_HEADER__BODY_PRODUCE)
        return scripted(b, fd, h, &ss->sc);
    fb_lock(b);
    fb__check(b->payload_len >= RN_BATCH_OFF_RECORDS_COUNT + 4, "a Produce without a batch");
    int64_t pid = (int64_t)get_be(b->payload + RN_BATCH_OFF_PRODUCER_ID, 8);
    int32_t seq = (int32_t)get_be(b->payload + RN_BATCH_OFF_BASE_SEQUENCE, 4);
    int32_t n = (int32_t)get_be(b->payload + RN_BATCH_OFF_RECORDS_COUNT, 4);
    if (pid != ss->pid) {
        ss->pid = pid;
        ss->expected = 0;
    }
    ss->sc.produces++;
    if (ss->sc.produces == 1) {
        ss->sc.held = h->correlation_id;
    } else {
        if (ss->sc.produces == 2) {
            answer_produce(fd, ss->sc.held, ss->a_err ? ss->a_err : RN_E_STORAGE_ERROR, -1);
            ss->storage_errors++;
        }
        if (b->payload_len > 100) {
            answer_produce(fd, h->correlation_id, ss->a_err ? ss->a_err : RN_E_STORAGE_ERROR, -1);
            ss->storage_errors++;
        } else if (seq != ss->expected) {
            answer_produce(fd, h->correlation_id, RN_E_OUT_OF_ORDER_SEQUENCE, -1);
            ss->out_of_order++;
        } else {
            answer_produce(fd, h->correlation_id, 0, ss->sc.next_offset);
            ss->sc.next_offset += n;
            ss->expected += n;
        }
    }
    fb_unlock(b);
    return FB_KEEP;
}

// A batch refused with STORAGE_ERROR until it fails for good, and the batch
// pipelined behind it, refused with OUT_OF_ORDER_SEQUENCE meanwhile: the
// second batch is in no log (every attempt of it was refused), so it takes
// the failed batch's sequence and is appended under the same producer id
// (Kafka's producer moves in-flight sequences back the same way). Before,
// having been sent, it kept its sequence under a new id pending forever and
// failed with OUT_OF_ORDER_SEQUENCE (clients_disk_full failed 3 runs in 8).
static void refused_behind(uint32_t a_err, unsigned want_inits)
{
    fb b;
    seq_script ss = {.pid = -1, .a_err = a_err};
    fb_start(&b, sequencing, &ss);
    ss.sc.port = b.port;
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", b.port);
    rn_conf *conf =
        rt_conf(NULL, "bootstrap.servers", servers, "linger.ms", "0", "retry.backoff.ms", "10",
                "socket.timeout.ms", "10000", "delivery.timeout.ms", "20000", NULL);
    reports r = {0};
    r.n = 2;
    int64_t off[2] = {-100, -100};
    int32_t part[2];
    r.offset = off;
    r.partition = part;
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, &r), 0);
    rn_conf_free(conf);
    char big[200];
    memset(big, 'a', sizeof(big));
    for (uintptr_t i = 0; i < 2; i++) {
        cr_assert_eq(rn_producer_send(p, "ord", 0, NULL, 0, big, i == 0 ? sizeof(big) : 1, NULL, 0,
                                      0, (void *)i),
                     0, "%s", rn_producer_errmsg(p));
        /* Out in a request of its own before the next is sent. */
        int64_t until = rt_now_ms() + 10000;
        for (;;) {
            fb_lock(&b);
            unsigned n = ss.sc.produces;
            fb_unlock(&b);
            if (n > i)
                break;
            cr_assert(rt_now_ms() < until, "batch %u never sent", (unsigned)i);
            rn_producer_poll(p, 5);
        }
    }
    rn_producer_flush(p, 15000);
    cr_assert_eq(r.done, 2, "%zu of 2 records reported: %s", r.done, rn_producer_errmsg(p));
    fb_lock(&b);
    unsigned inits = ss.sc.init_producers, storage = ss.storage_errors, ooo = ss.out_of_order;
    fb_unlock(&b);
    fprintf(stderr, "A refused %u times, B out of order %u times, producer ids %u\n", storage, ooo,
            inits);
    cr_assert_eq(off[0], -1, "the batch on the full disk was acknowledged");
    cr_assert_eq(off[1], 0, "the batch behind it: %lld (%s)", (long long)off[1],
                 rn_producer_errmsg(p));
    cr_assert_eq(r.failed, 1);
    cr_assert_eq(inits, want_inits, "%u producer ids taken", inits);
    rn_producer_close(p);
    fb_stop(&b);
}

Test(idempotence, refused_batch_behind_storage_error_is_resequenced, .timeout = 30)
{
    refused_behind(RN_E_STORAGE_ERROR, 1);
}

// The same with a batch refused for good by an error that leaves a real gap
// (MESSAGE_TOO_LARGE: the producer needs a new id, idem_reset): the batch
// behind it, refused OUT_OF_ORDER_SEQUENCE, is in no log; it waits for the
// new id and is appended under it. Before, it failed with
// OUT_OF_ORDER_SEQUENCE (nothing older was unresolved, it was not in doubt).
Test(idempotence, refused_batch_behind_a_gap_waits_for_the_new_id, .timeout = 30)
{
    refused_behind(RN_E_MESSAGE_TOO_LARGE, 2);
}

/* ---- Appended, but the ISR shrank (a scripted broker) ---------------------------------- */

/* The scripted leader of "ord" appends the first batch at offset 0 but
 * answers NOT_ENOUGH_REPLICAS_AFTER_APPEND (the ISR fell below
 * min.insync.replicas before it was replicated); a retry (same producer id
 * and sequence) is a duplicate, answered with the first offset, as a leader
 * answers once the ISR is back. */
typedef struct append_script {
    script sc;
    int64_t pid;
    int32_t seq;
} append_script;

static int after_append(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    append_script *as = arg;
    if (h->body_case != RUNNEL__REQUEST_HEADER__BODY_PRODUCE)
        return scripted(b, fd, h, &as->sc);
    fb_lock(b);
    fb__check(b->payload_len >= RN_BATCH_OFF_RECORDS_COUNT + 4, "a Produce without a batch");
    int64_t pid = (int64_t)get_be(b->payload + RN_BATCH_OFF_PRODUCER_ID, 8);
    int32_t seq = (int32_t)get_be(b->payload + RN_BATCH_OFF_BASE_SEQUENCE, 4);
    as->sc.produces++;
    if (as->sc.produces == 1) {
        as->pid = pid;
        as->seq = seq;
        answer_produce(fd, h->correlation_id, RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND, -1);
    } else if (pid == as->pid && seq == as->seq) {
        answer_produce(fd, h->correlation_id, 0, 0);
    } else {
        /* A new id or sequence: the record would be stored twice. */
        answer_produce(fd, h->correlation_id, 0, 1);
    }
    fb_unlock(b);
    return FB_KEEP;
}

// NOT_ENOUGH_REPLICAS_AFTER_APPEND is retried (Kafka's clients treat it as
// retriable), under the same producer id and sequence (the batch is in the
// log): the leader answers the retry as a duplicate at the first offset.
// Before, the producer failed the batch for good (tests/cluster/run --seed
// 1412 --scenario last-replica: the workload's records then came twice).
Test(idempotence, not_enough_replicas_after_append_is_retried, .timeout = 30)
{
    fb b;
    append_script as = {.pid = -1};
    fb_start(&b, after_append, &as);
    as.sc.port = b.port;
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", b.port);
    rn_conf *conf =
        rt_conf(NULL, "bootstrap.servers", servers, "linger.ms", "0", "retry.backoff.ms", "10",
                "socket.timeout.ms", "10000", "delivery.timeout.ms", "20000", NULL);
    reports r = {0};
    r.n = 1;
    int64_t off = -100;
    int32_t part;
    r.offset = &off;
    r.partition = &part;
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, &r), 0);
    rn_conf_free(conf);
    cr_assert_eq(rn_producer_send(p, "ord", 0, NULL, 0, "v", 1, NULL, 0, 0, (void *)0), 0, "%s",
                 rn_producer_errmsg(p));
    rn_producer_flush(p, 15000);
    cr_assert_eq(r.done, 1, "not reported: %s", rn_producer_errmsg(p));
    cr_assert_eq(r.failed, 0, "failed: %s", rn_producer_errmsg(p));
    cr_assert_eq(off, 0, "acknowledged at %lld, not as the duplicate at 0", (long long)off);
    fb_lock(&b);
    unsigned inits = as.sc.init_producers, produces = as.sc.produces;
    fb_unlock(&b);
    cr_assert_eq(produces, 2, "%u Produce requests", produces);
    cr_assert_eq(inits, 1, "%u producer ids taken", inits);
    rn_producer_close(p);
    fb_stop(&b);
}
