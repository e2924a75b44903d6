/*
 * client.c — the gateway's in-process broker client: a virtual connection and
 * the calls in flight on it (see client.h for the rules).
 *
 * Invariants:
 *   1. A call is on cl->calls from just before rn_request_local until its
 *      answer arrives (it is unlinked before on_answer runs) or it is dropped.
 *   2. Once the virtual connection is closed the broker never delivers an
 *      answer (rn_request_respond drops answers of a dead connection), so the
 *      calls still listed then are exactly those to drop.
 */
#include <stdio.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/gateway/client.h"
#include "broker/net/conn.h"

void rn_gw_client_init(rn_gw_client *cl, rn_reactor *r, const char *peer)
{
    memset(cl, 0, sizeof(*cl));
    cl->r = r;
    snprintf(cl->peer, sizeof(cl->peer), "%s", peer ? peer : "gateway");
}

static void unlink_call(rn_gw_call *call)
{
    rn_gw_client *cl = call->client;
    if (call->prev)
        call->prev->next = call->next;
    else
        cl->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->next = call->prev = NULL;
    cl->n_calls--;
}

static void sink(void *arg, rn_request *req, Runnel__ResponseHeader *hdr, rn_slice *slices,
                 unsigned n_slices)
{
    rn_gw_call *call = arg;
    (void)req;
    unlink_call(call);
    call->on_answer(call, hdr, slices, n_slices);
}

int rn_gw_client_call(rn_gw_client *cl, Runnel__RequestHeader *hdr, const void *payload,
                      size_t payload_len, rn_gw_call *call, rn_gw_answer_cb on_answer,
                      rn_gw_drop_cb drop, char *err, size_t errlen)
{
    if (cl->closed) {
        snprintf(err, errlen, "connection closed");
        return -RN_E_CLOSED;
    }
    if (!cl->vc) {
        cl->vc = rn_conn_new_virtual(cl->r, cl->peer);
        if (!cl->vc) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    hdr->correlation_id = ++cl->next_correlation_id;
    call->client = cl;
    call->on_answer = on_answer;
    call->drop = drop;
    call->prev = NULL;
    call->next = cl->calls;
    if (cl->calls)
        cl->calls->prev = call;
    cl->calls = call;
    cl->n_calls++;
    int rc = rn_request_local(cl->vc, hdr, payload, payload_len, sink, call, err, errlen);
    if (rc < 0)
        unlink_call(call);
    return rc;
}

/* Parked fetches of the virtual connection. */
static unsigned parked(const rn_gw_client *cl, rn_request **first)
{
    unsigned n = 0;
    *first = NULL;
    if (!cl->vc)
        return 0;
    for (rn_request *q = cl->vc->reqs; q; q = q->next) {
        if (q->api == RUNNEL__API__FETCH && q->state) {
            if (!*first)
                *first = q;
            n++;
        }
    }
    return n;
}

void rn_gw_client_wake(rn_gw_client *cl)
{
    /* One at a time from the head: an answer may run code that closes this
     * client or frees other requests, so no pointer is kept across a wake. A
     * wake that answers nothing (the reactor is not stopping) ends the loop. */
    rn_request *q;
    unsigned n = parked(cl, &q);
    while (n > 0) {
        rn_fetch_wake(q->state);
        unsigned m = parked(cl, &q);
        if (m >= n)
            break;
        n = m;
    }
}

void rn_gw_client_close(rn_gw_client *cl, const char *why)
{
    if (cl->closed)
        return;
    cl->closed = true;
    if (cl->vc) {
        rn_conn_close(cl->vc, why);
        cl->vc = NULL;
    }
    while (cl->calls) {
        rn_gw_call *call = cl->calls;
        unlink_call(call);
        call->drop(call);
    }
}
