/*
 * test_conn.c — librunnel's connections and poll loop (clients/conn.c), suite
 * `clients_conn`, against the scripted broker of fake_broker.h.
 *
 * What internal.h promises: requests are pipelined and answers matched by
 * correlation id whatever their order; callbacks never run inside
 * rn__conn_send; an answer nobody asked for is dropped and the stream goes on;
 * a frame over the limit, a wrong body, a peer that closes (even in the middle
 * of a frame) and a request past its timeout end every pending request with
 * the error and an errmsg; the next request reconnects.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "clients/internal.h"
#include "fake_broker.h"

TestSuite(clients_conn, .timeout = 60);

/* ---- The client side ------------------------------------------------------------------ */

typedef struct answer {
    bool done;
    int err;
    uint32_t cid;   /* of the response, 0 when none */
    char msg[64];   /* its error_message */
    unsigned order; /* 1 + how many callbacks ran before this one */
} answer;

static unsigned n_answers;

static void on_answer(void *arg, rn__conn *c, int err, rn_frame_response *resp)
{
    (void)c;
    answer *a = arg;
    cr_assert_not(a->done, "a request was answered twice");
    a->done = true;
    a->err = err;
    a->order = ++n_answers;
    if (resp) {
        a->cid = resp->hdr->correlation_id;
        snprintf(a->msg, sizeof(a->msg), "%s",
                 resp->hdr->error_message ? resp->hdr->error_message : "");
    }
}

static void client_new(rn__client *cl, uint16_t port)
{
    rn_conf *conf = rn_conf_new();
    cr_assert_not_null(conf);
    char servers[32], err[256];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", port);
    cr_assert_eq(rn_conf_set(conf, "bootstrap.servers", servers, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_conf_set(conf, "reconnect.backoff.ms", "10", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn__client_init(cl, conf), 0, "%s", cl->errmsg);
    rn_conf_free(conf);
    n_answers = 0;
}

/* Send an ApiVersions request on c; returns its correlation id. */
static uint32_t send_av(rn__conn *c, answer *a, int timeout_ms)
{
    Runnel__ApiVersionsRequest av = RUNNEL__API_VERSIONS_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_API_VERSIONS;
    h.api_versions = &av;
    memset(a, 0, sizeof(*a));
    cr_assert_eq(
        rn__conn_send(c, &h, NULL, 0, RUNNEL__API__API_VERSIONS, timeout_ms, false, on_answer, a),
        0);
    cr_assert_neq(h.correlation_id, 0);
    return h.correlation_id;
}

/* Poll until every answer in a[0..n) is done (bounded: 10 s). */
static void poll_until_done(rn__client *cl, answer *a, size_t n)
{
    for (int round = 0; round < 1000; round++) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += a[i].done;
        if (done == n)
            return;
        cr_assert_eq(rn__client_poll(cl, 10), 0);
    }
    cr_assert_fail("requests still unanswered after 10 s");
}

/* One test's scripted broker, and a client with one connection to it. */
typedef struct rig {
    fb b;
    rn__client cl;
    rn__conn *c;
} rig;

static void rig_start(rig *g, fb_handler script, void *arg)
{
    fb_start(&g->b, script, arg);
    client_new(&g->cl, g->b.port);
    g->c = rn__client_conn(&g->cl, "127.0.0.1", g->b.port);
    cr_assert_not_null(g->c);
}

static void rig_stop(rig *g)
{
    rn__client_fini(&g->cl);
    fb_stop(&g->b);
}

/* One request on g's connection, polled until answered. */
static void call_av(rig *g, answer *a)
{
    send_av(g->c, a, 10000);
    poll_until_done(&g->cl, a, 1);
}

/* Two requests sent together (the first with timeout_ms) both fail with err,
 * the connection is down, and its errmsg contains why (NULL: not checked). */
static void two_requests_fail(rig *g, int timeout_ms, int err, const char *why)
{
    answer a[2];
    send_av(g->c, &a[0], timeout_ms);
    send_av(g->c, &a[1], 10000);
    poll_until_done(&g->cl, a, 2);
    cr_assert_eq(a[0].err, err, "err %d", a[0].err);
    cr_assert_eq(a[1].err, err, "err %d", a[1].err);
    cr_assert_eq(g->c->state, RN__CONN_DOWN);
    if (why)
        cr_assert_not_null(strstr(rn__conn_errmsg(g->c), why), "errmsg: %s", rn__conn_errmsg(g->c));
}

/* ---- Scripts of the broker ------------------------------------------------------------- */

/* Collect `want` requests, then answer them last first, each with "answer <cid>". */
typedef struct reverse {
    unsigned want, n;
    uint32_t cids[16];
} reverse;

static int answer_reversed(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    (void)b;
    reverse *r = arg;
    r->cids[r->n++] = h->correlation_id;
    if (r->n < r->want)
        return FB_KEEP;
    for (unsigned i = r->n; i-- > 0;) {
        char msg[32];
        snprintf(msg, sizeof(msg), "answer %u", r->cids[i]);
        fb_reply_api_versions(fd, r->cids[i], msg);
    }
    r->n = 0;
    return FB_KEEP;
}

/* Five requests in flight at once are answered in reverse order: each
 * callback gets the answer with its own correlation id, none runs inside
 * rn__conn_send, and all five shared one connection. */
Test(clients_conn, pipelined_answers_matched_by_correlation_id)
{
    reverse r = {.want = 5};
    rig g;
    rig_start(&g, answer_reversed, &r);
    answer a[5];
    uint32_t cid[5];
    for (int i = 0; i < 5; i++)
        cid[i] = send_av(g.c, &a[i], 10000);
    cr_assert_eq(n_answers, 0, "a callback ran inside rn__conn_send");
    cr_assert_eq(rn__conn_inflight(g.c), 5);
    poll_until_done(&g.cl, a, 5);
    for (int i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof(want), "answer %u", cid[i]);
        cr_assert_eq(a[i].err, 0);
        cr_assert_eq(a[i].cid, cid[i]);
        cr_assert_str_eq(a[i].msg, want);
        cr_assert_eq(a[i].order, (unsigned)(5 - i), "answers not handled in arrival order");
    }
    cr_assert_eq(rn__conn_inflight(g.c), 0);
    cr_assert_eq(fb_accepts(&g.b), 1);
    rig_stop(&g);
}

/* Answer with a correlation id nobody used first, then the real answer. */
static int answer_stranger_first(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    (void)b;
    (void)arg;
    fb_reply_api_versions(fd, h->correlation_id + 1000, "stranger");
    fb_reply_api_versions(fd, h->correlation_id, "mine");
    return FB_KEEP;
}

/* An answer for an unknown correlation id is dropped: the connection stays
 * up, the real answer reaches its request, and the next request uses the same
 * connection. */
Test(clients_conn, unknown_correlation_id_is_dropped)
{
    rig g;
    rig_start(&g, answer_stranger_first, NULL);
    answer a[2];
    call_av(&g, &a[0]);
    cr_assert_eq(a[0].err, 0);
    cr_assert_str_eq(a[0].msg, "mine");
    cr_assert_eq(g.c->state, RN__CONN_UP);
    call_av(&g, &a[1]);
    cr_assert_eq(a[1].err, 0);
    cr_assert_eq(fb_accepts(&g.b), 1);
    rig_stop(&g);
}

/* Answer with the prefix of a frame of 4 GiB - 16 bytes, and nothing else. */
static int answer_huge_frame(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    (void)b;
    (void)h;
    (void)arg;
    uint8_t prefix[8] = {0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 4};
    fb_send(fd, prefix, sizeof(prefix));
    return FB_KEEP;
}

/* A frame longer than the client's limit is refused from its length prefix
 * alone (nothing allocated): every pending request fails with
 * -RN_E_REQUEST_TOO_LARGE and the connection is closed. */
Test(clients_conn, frame_over_the_limit_fails_the_connection)
{
    rig g;
    rig_start(&g, answer_huge_frame, NULL);
    two_requests_fail(&g, 10000, -RN_E_REQUEST_TOO_LARGE, "bad frame");
    rig_stop(&g);
}

/* The first connection gets half a frame and is closed; later ones are answered. */
static int answer_half_then_close(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    (void)arg;
    if (fb_accepts(b) > 1) {
        fb_reply_api_versions(fd, h->correlation_id, "again");
        return FB_KEEP;
    }
    Runnel__ApiVersionsResponse av = RUNNEL__API_VERSIONS_RESPONSE__INIT;
    Runnel__ResponseHeader rh = RUNNEL__RESPONSE_HEADER__INIT;
    rh.correlation_id = h->correlation_id;
    rh.error_message = "a message long enough to cut";
    rh.body_case = RUNNEL__RESPONSE_HEADER__BODY_API_VERSIONS;
    rh.api_versions = &av;
    uint8_t *buf;
    size_t len;
    fb__check(rn_frame_encode_alloc(&rh.base, 0, &buf, &len) == 0, "encode");
    fb_send(fd, buf, len / 2);
    free(buf);
    return FB_CLOSE;
}

/* A broker that closes in the middle of a frame fails the pending request
 * with -ECONNRESET (the half frame is not dispatched), and the next request
 * reconnects after the back-off and is answered on a new connection. */
Test(clients_conn, peer_closes_mid_frame_then_reconnect)
{
    rig g;
    rig_start(&g, answer_half_then_close, NULL);
    answer a[2];
    call_av(&g, &a[0]);
    cr_assert_eq(a[0].err, -ECONNRESET, "err %d", a[0].err);
    cr_assert_eq(a[0].cid, 0);
    cr_assert_not_null(strstr(rn__conn_errmsg(g.c), "closed by the broker"), "errmsg: %s",
                       rn__conn_errmsg(g.c));
    cr_assert_eq(g.c->state, RN__CONN_DOWN);

    call_av(&g, &a[1]);
    cr_assert_eq(a[1].err, 0);
    cr_assert_str_eq(a[1].msg, "again");
    cr_assert_eq(g.c->state, RN__CONN_UP);
    cr_assert_eq(fb_accepts(&g.b), 2);
    rig_stop(&g);
}

/* Answer an ApiVersions request with a Metadata body. */
static int answer_wrong_body(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    (void)b;
    (void)arg;
    Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
    fb_reply_metadata(fd, h->correlation_id, &mr);
    return FB_KEEP;
}

/* An answer whose body is another API's fails that request with
 * -RN_E_INVALID_REQUEST and breaks the connection (the stream cannot be
 * trusted), failing the request behind it too. */
Test(clients_conn, wrong_body_fails_the_connection)
{
    rig g;
    rig_start(&g, answer_wrong_body, NULL);
    two_requests_fail(&g, 10000, -RN_E_INVALID_REQUEST, NULL);
    rig_stop(&g);
}

static int answer_nothing(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    (void)b;
    (void)fd;
    (void)h;
    (void)arg;
    return FB_KEEP;
}

/* A request past its timeout fails with -RN_E_TIMEOUT and takes the
 * connection down, failing the one sent with it (Kafka's request.timeout.ms). */
Test(clients_conn, request_timeout_fails_the_connection)
{
    rig g;
    rig_start(&g, answer_nothing, NULL);
    two_requests_fail(&g, 100, -RN_E_TIMEOUT, "timed out");
    rig_stop(&g);
}

/* Nobody listening: the request fails with -ECONNREFUSED and says where. */
Test(clients_conn, connection_refused)
{
    uint16_t port = fb_closed_port();
    rn__client cl;
    client_new(&cl, port);
    rn__conn *c = rn__client_conn(&cl, "127.0.0.1", port);
    answer a;
    send_av(c, &a, 5000);
    poll_until_done(&cl, &a, 1);
    cr_assert_eq(a.err, -ECONNREFUSED, "err %d: %s", a.err, rn__conn_errmsg(c));
    cr_assert_not_null(strstr(rn__conn_errmsg(c), "127.0.0.1"), "errmsg: %s", rn__conn_errmsg(c));
    rn__client_fini(&cl);
}

/* rn__client_fini ends requests still pending with -RN_E_CLOSED. */
Test(clients_conn, fini_fails_pending_with_closed)
{
    rig g;
    rig_start(&g, answer_nothing, NULL);
    answer a;
    send_av(g.c, &a, 10000);
    for (int i = 0; i < 20 && fb_requests(&g.b) == 0; i++)
        rn__client_poll(&g.cl, 10);
    cr_assert_not(a.done);
    rn__client_fini(&g.cl);
    cr_assert(a.done);
    cr_assert_eq(a.err, -RN_E_CLOSED);
    fb_stop(&g.b);
}
