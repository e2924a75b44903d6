/*
 * test_peer.c — the broker-to-broker connection (broker/net/peer.c) against a
 * real runneld on 127.0.0.1: pipelined ApiVersions and Metadata answered and
 * matched to their requests; a link a test transport cuts fails what waits on
 * it with an error naming the peer, and the next send connects again; a
 * broker that goes away fails the link the same way.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "broker/net/peer.h"
#include "fixture.h"

static it_broker B;

static void setup(void)
{
    itf_start(&B, NULL);
}

static void teardown(void)
{
    itf_teardown(&B);
}

TestSuite(peer, .init = setup, .fini = teardown, .timeout = 60);

/* ---- A transport a test can break ---------------------------------------------------- */

typedef struct faulty {
    bool drop; /* sends vanish (a link that silently lost its way) */
    unsigned connects, sends;
} faulty;

static int f_connect(void *ctx, const char *host, const char *port, int timeout_ms)
{
    ((faulty *)ctx)->connects++;
    return rn_peer_tcp.connect(NULL, host, port, timeout_ms);
}

static int f_send(void *ctx, int fd, const void *buf, size_t len)
{
    faulty *f = ctx;
    f->sends++;
    return f->drop ? 0 : rn_peer_tcp.send(NULL, fd, buf, len);
}

static ssize_t f_recv(void *ctx, int fd, void *buf, size_t len, int timeout_ms)
{
    (void)ctx;
    return rn_peer_tcp.recv(NULL, fd, buf, len, timeout_ms);
}

static void f_close(void *ctx, int fd)
{
    (void)ctx;
    rn_peer_tcp.close(NULL, fd);
}

static const rn_peer_transport faulty_transport = {
    .connect = f_connect, .send = f_send, .recv = f_recv, .close = f_close};

/* ---- What came back ------------------------------------------------------------------------ */

typedef struct outcome {
    int calls;
    int err;
    int body_case;
    char errmsg[400];
    int n_api_versions;
    int32_t broker_port;
} outcome;

static void on_answer(void *arg, int err, const rn_frame_response *resp, const char *errmsg)
{
    outcome *o = arg;
    o->calls++;
    o->err = err;
    snprintf(o->errmsg, sizeof(o->errmsg), "%s", errmsg ? errmsg : "");
    if (!resp)
        return;
    const Runnel__ResponseHeader *h = resp->hdr;
    o->body_case = h->body_case;
    if (h->body_case == RUNNEL__RESPONSE_HEADER__BODY_API_VERSIONS)
        o->n_api_versions = (int)h->api_versions->n_api_versions;
    if (h->body_case == RUNNEL__RESPONSE_HEADER__BODY_METADATA && h->metadata->n_brokers)
        o->broker_port = (int32_t)h->metadata->brokers[0]->port;
}

static int send_api_versions(rn_peer *p, outcome *o)
{
    Runnel__ApiVersionsRequest body = RUNNEL__API_VERSIONS_REQUEST__INIT;
    body.client_software_name = "runnel-peer-test";
    IT_REQUEST(h, API_VERSIONS, api_versions, &body);
    h.client_id = "peer";
    return rn_peer_send(p, &h, NULL, 0, on_answer, o);
}

static int send_metadata(rn_peer *p, outcome *o)
{
    Runnel__MetadataRequest body = RUNNEL__METADATA_REQUEST__INIT;
    IT_REQUEST(h, METADATA, metadata, &body);
    h.client_id = "peer";
    return rn_peer_send(p, &h, NULL, 0, on_answer, o);
}

/* Poll until nothing waits (at most ~10 s). */
static void poll_all(rn_peer *p)
{
    for (int i = 0; i < 100 && rn_peer_waiting(p) > 0; i++)
        cr_assert_geq(rn_peer_poll(p, 100), 0, "%s", rn_peer_errmsg(p));
}

static rn_peer *peer_to_broker(const rn_peer_transport *t, void *ctx)
{
    char hp[64];
    snprintf(hp, sizeof(hp), "127.0.0.1:%u", B.port);
    rn_peer *p;
    cr_assert_eq(rn_peer_new(&p, hp, t, ctx), 0);
    return p;
}

/* ---- Tests --------------------------------------------------------------------------------- */

/* Two requests pipelined on one link: each callback gets its own answer. */
Test(peer, api_versions_and_metadata_answered)
{
    rn_peer *p = peer_to_broker(NULL, NULL);
    outcome av = {0}, md = {0};
    cr_assert_eq(send_api_versions(p, &av), 0, "%s", rn_peer_errmsg(p));
    cr_assert_eq(send_metadata(p, &md), 0, "%s", rn_peer_errmsg(p));
    cr_assert_eq(rn_peer_waiting(p), 2);
    poll_all(p);
    cr_assert_eq(av.calls, 1);
    cr_assert_eq(av.err, 0, "%s", av.errmsg);
    cr_assert_eq(av.body_case, RUNNEL__RESPONSE_HEADER__BODY_API_VERSIONS);
    cr_assert_gt(av.n_api_versions, 5);
    cr_assert_eq(md.calls, 1);
    cr_assert_eq(md.err, 0, "%s", md.errmsg);
    cr_assert_eq(md.body_case, RUNNEL__RESPONSE_HEADER__BODY_METADATA);
    cr_assert_eq(md.broker_port, B.port);
    cr_assert_eq(rn_peer_connects(p), 1);
    rn_peer_free(p);
}

/* A link that swallows what is sent holds the request; cutting it fails the
 * request with the cut's error and a message naming the peer; the next send
 * connects again and is answered. */
Test(peer, cut_link_fails_waiting_and_reconnects)
{
    faulty f = {.drop = true};
    rn_peer *p = peer_to_broker(&faulty_transport, &f);
    outcome lost = {0};
    cr_assert_eq(send_metadata(p, &lost), 0);
    cr_assert_eq(rn_peer_poll(p, 200), 0);
    cr_assert_eq(rn_peer_waiting(p), 1);
    cr_assert_eq(lost.calls, 0);
    rn_peer_cut(p, -ECONNABORTED, "cut by the test");
    cr_assert_eq(lost.calls, 1);
    cr_assert_eq(lost.err, -ECONNABORTED);
    char name[64];
    snprintf(name, sizeof(name), "peer 127.0.0.1:%u", B.port);
    cr_assert(strstr(lost.errmsg, name) && strstr(lost.errmsg, "cut by the test"), "%s",
              lost.errmsg);
    cr_assert_eq(rn_peer_waiting(p), 0);

    f.drop = false;
    outcome av = {0};
    cr_assert_eq(send_api_versions(p, &av), 0, "%s", rn_peer_errmsg(p));
    poll_all(p);
    cr_assert_eq(av.calls, 1);
    cr_assert_eq(av.err, 0, "%s", av.errmsg);
    cr_assert_eq(f.connects, 2, "a new link after the cut");
    cr_assert_eq(rn_peer_connects(p), 2);
    rn_peer_free(p);
}

/* The broker goes away: what waits fails with the link's error, a send
 * cannot connect and says so; freeing the peer ends nothing twice. */
Test(peer, broker_gone_fails_the_link)
{
    faulty f = {.drop = true};
    rn_peer *p = peer_to_broker(&faulty_transport, &f);
    outcome lost = {0};
    cr_assert_eq(send_metadata(p, &lost), 0);
    int status;
    cr_assert_eq(it_broker_stop(&B, SIGTERM, 10000, &status), 0);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = rn_peer_poll(p, 100);
    cr_assert_lt(rc, 0, "the link fails once the broker is gone");
    cr_assert_eq(lost.calls, 1);
    cr_assert_lt(lost.err, 0);
    cr_assert(strstr(lost.errmsg, "127.0.0.1"), "%s", lost.errmsg);
    outcome none = {0};
    rc = send_api_versions(p, &none);
    cr_assert_eq(rc, -ECONNREFUSED, "%d %s", rc, rn_peer_errmsg(p));
    cr_assert(strstr(rn_peer_errmsg(p), "cannot connect"), "%s", rn_peer_errmsg(p));
    cr_assert_eq(none.calls, 0);
    rn_peer_free(p);
    cr_assert_eq(lost.calls, 1);
}

/* Freeing a peer with requests waiting ends them with -ECANCELED. */
Test(peer, free_cancels_waiting)
{
    faulty f = {.drop = true};
    rn_peer *p = peer_to_broker(&faulty_transport, &f);
    outcome a = {0}, b = {0};
    cr_assert_eq(send_metadata(p, &a), 0);
    cr_assert_eq(send_api_versions(p, &b), 0);
    rn_peer_free(p);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, -ECANCELED);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.err, -ECANCELED);
}

/* Not host:port: refused at once. */
Test(peer, bad_address)
{
    rn_peer *p;
    cr_assert_eq(rn_peer_new(&p, "no-port", NULL, NULL), -EINVAL);
    cr_assert_eq(rn_peer_new(&p, ":9700", NULL, NULL), -EINVAL);
    cr_assert_eq(rn_peer_new(&p, "host:", NULL, NULL), -EINVAL);
}
