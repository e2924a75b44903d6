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
 *   3. A routed call (split by leader, route.h) stays on cl->calls until its
 *      merged answer is delivered. Its state (rn_gw_routed) is counted: one
 *      reference for the reactor side (dropped when the answer is delivered
 *      or the client drops the call) and one per job at the forwarder, so a
 *      leader's answer that comes after the client left finds the state and
 *      frees it. Jobs come back through rn_reactor_call; one that cannot (the
 *      reactor stopped) drops its reference on the link thread, which then
 *      frees a state the reactor has let go of.
 *   4. Local parts of a routed call run on the client's virtual connection:
 *      closing it drops them without an answer (2), so a dropped call waits
 *      only for its jobs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/gateway/client.h"
#include "broker/gateway/forward.h"
#include "broker/gateway/gateway.h"
#include "broker/gateway/route.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"

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

static int route_call(rn_gw_client *cl, Runnel__RequestHeader *hdr, const void *payload,
                      size_t payload_len, rn_gw_call *call, rn_gw_answer_cb on_answer,
                      rn_gw_drop_cb drop, char *err, size_t errlen);
static void detach(rn_gw_call *call);
static void drop_local_refs(struct rn_gw_routed *ro);
static void fail_routed_now(rn_gw_call *call);
static bool routed_woken(const rn_gw_call *call);

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
    call->routed = NULL;
    if (cl->route && cl->r->b->quorum && rn_gw_route_api(hdr->api)) {
        int rc = route_call(cl, hdr, payload, payload_len, call, on_answer, drop, err, errlen);
        if (rc != 1)
            return rc; /* routed (0), or refused */
    }
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
    /* Calls waiting on other brokers: the inbox is closed, their answers
     * cannot come; answer them now, one at a time from the head (an answer
     * may close this client). */
    for (;;) {
        rn_gw_call *c = cl->calls;
        while (c && !(c->routed && !routed_woken(c)))
            c = c->next;
        if (!c)
            break;
        fail_routed_now(c);
    }
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
        detach(call);
        call->drop(call);
    }
    while (cl->lingering)
        drop_local_refs(cl->lingering);
}

/* ---- Routing by leader (invariants 3 and 4) ----------------------------------------------- */

typedef struct routed_sub {
    struct rn_gw_routed *ro;
    size_t k;
} routed_sub;

typedef struct rn_gw_routed {
    rn_gw_route rt;
    rn_gw_call *call; /* NULL once delivered or dropped */
    rn_gw_client *cl;
    rn_reactor *r;
    size_t pending;       /* parts without an end yet */
    size_t local_pending; /* local parts sent, not answered (each holds a ref) */
    int refs;             /* atomic */
    bool reactor_ref;
    bool woken;         /* its remote parts were failed for the shutdown */
    bool issuing;       /* route_call is still sending parts */
    bool lingers;       /* answered early, on cl->lingering until its parts end */
    uint32_t min_bytes; /* a Fetch's: what answers it early */
    struct rn_gw_routed *next_linger, *prev_linger;
    routed_sub *subs;
} rn_gw_routed;

/* The forwarder of this process's broker, made on first use. */
static pthread_mutex_t fwd_lock = PTHREAD_MUTEX_INITIALIZER;
static rn_gw_fwd *fwd;
static rn_broker *fwd_broker;

static void ro_unref(rn_gw_routed *ro)
{
    if (__atomic_sub_fetch(&ro->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    rn_gw_route_fini(&ro->rt);
    free(ro->subs);
    free(ro);
}

static void release_part_slices(rn_gw_routed *ro)
{
    for (size_t k = 0; k < ro->rt.n_parts; k++) {
        rn_gw_route_part *pt = &ro->rt.parts[k];
        for (unsigned i = 0; i < pt->n_slices; i++)
            rn_slice_release(&pt->slices[i]);
    }
}

static void drop_reactor_ref(rn_gw_routed *ro)
{
    if (!ro->reactor_ref)
        return;
    ro->reactor_ref = false;
    /* Segment references are the reactor's to give back (the last
     * reference may go on a link thread). */
    release_part_slices(ro);
    ro_unref(ro);
}

/* Every part has an answer or failure (none out any more). */
static bool all_ended(const rn_gw_routed *ro)
{
    for (size_t k = 0; k < ro->rt.n_parts; k++)
        if (!ro->rt.parts[k].done)
            return false;
    return true;
}

static void unlinger(rn_gw_routed *ro)
{
    if (!ro->lingers)
        return;
    ro->lingers = false;
    if (ro->prev_linger)
        ro->prev_linger->next_linger = ro->next_linger;
    else
        ro->cl->lingering = ro->next_linger;
    if (ro->next_linger)
        ro->next_linger->prev_linger = ro->prev_linger;
    ro->next_linger = ro->prev_linger = NULL;
}

/* The local parts will never answer (the virtual connection closed): their
 * references go. */
static void drop_local_refs(rn_gw_routed *ro)
{
    size_t n = ro->local_pending;
    ro->local_pending = 0;
    unlinger(ro);
    while (n--)
        ro_unref(ro); /* the reactor's or a job's keeps it until the last */
}

/* Every part has ended (or, for a Fetch, one has brought records: an
 * early answer, see maybe_early): the merged answer to the caller. */
static void deliver(rn_gw_routed *ro)
{
    rn_gw_call *call = ro->call;
    if (call) {
        ro->call = NULL;
        call->routed = NULL;
        unlink_call(call);
        Runnel__ResponseHeader *out;
        rn_slice *slices;
        unsigned n_slices;
        if (rn_gw_route_merge(&ro->rt, &out, &slices, &n_slices) < 0) {
            Runnel__ResponseHeader oom = RUNNEL__RESPONSE_HEADER__INIT;
            oom.error_code = (uint32_t)ENOMEM;
            oom.error_message = "out of memory";
            call->on_answer(call, &oom, NULL, 0);
        } else {
            call->on_answer(call, out, slices, n_slices);
        }
    }
    drop_reactor_ref(ro);
}

/* A Fetch split by leader answers as soon as one part brought records (as
 * one broker's fetch answers once min_bytes are there), instead of waiting
 * for an idle leader's long poll: the parts still out answer nothing (their
 * entries say no error, no bytes) and their answers are dropped when they
 * come. Local parts still parked keep the route on cl->lingering until they
 * answer or the client closes. */
static bool maybe_early(rn_gw_routed *ro)
{
    if (ro->rt.api != RUNNEL__API__FETCH || ro->issuing || !ro->reactor_ref || !ro->pending)
        return false;
    uint64_t bytes = 0;
    for (size_t k = 0; k < ro->rt.n_parts; k++) {
        const rn_gw_route_part *pt = &ro->rt.parts[k];
        if (!pt->done || pt->err < 0)
            continue;
        for (unsigned i = 0; i < pt->n_slices; i++)
            bytes += pt->slices[i].len;
    }
    if (bytes == 0 || bytes < ro->min_bytes)
        return false;
    {
        /* Some part is out (pending > 0): on the list until all have ended,
         * so the client's next fetches do not park another long poll at
         * the same leaders (see no_wait in route_call). */
        ro->lingers = true;
        ro->prev_linger = NULL;
        ro->next_linger = ro->cl->lingering;
        if (ro->cl->lingering)
            ro->cl->lingering->prev_linger = ro;
        ro->cl->lingering = ro;
    }
    deliver(ro);
    return true;
}

static void part_done(rn_gw_routed *ro)
{
    if (--ro->pending == 0)
        deliver(ro);
    else
        maybe_early(ro);
}

static void detach(rn_gw_call *call)
{
    rn_gw_routed *ro = call->routed;
    if (!ro)
        return;
    call->routed = NULL;
    ro->call = NULL;
    /* The client closed its virtual connection first (rn_gw_client_close):
     * local parts will not answer. */
    size_t n = ro->local_pending;
    ro->local_pending = 0;
    drop_reactor_ref(ro);
    while (n--)
        ro_unref(ro);
}

static bool routed_woken(const rn_gw_call *call)
{
    return call->routed->woken;
}

/* Shutdown: the remote parts end now (their answers cannot reach this
 * reactor any more); the local ones answer as the reactor wakes them. */
static void fail_routed_now(rn_gw_call *call)
{
    rn_gw_routed *ro = call->routed;
    ro->woken = true;
    size_t n = 0;
    for (size_t k = 0; k < ro->rt.n_parts; k++) {
        if (!ro->rt.parts[k].done && ro->rt.parts[k].leader >= 0) {
            rn_gw_route_fail(&ro->rt, k, -RN_E_SHUTTING_DOWN, "the broker is shutting down");
            n++;
        }
    }
    ro->pending -= n - (n > 0); /* the last one through part_done, which may deliver */
    if (n)
        part_done(ro);
}

static void local_sink(void *arg, rn_request *req, Runnel__ResponseHeader *hdr, rn_slice *slices,
                       unsigned n_slices)
{
    routed_sub *sub = arg;
    rn_gw_routed *ro = sub->ro;
    (void)req;
    ro->local_pending--;
    if (ro->rt.parts[sub->k].done || !ro->reactor_ref) {
        /* Failed meanwhile (shutdown), or the call was answered early. */
        for (unsigned i = 0; i < n_slices; i++)
            rn_slice_release(&slices[i]);
        if (!ro->rt.parts[sub->k].done)
            rn_gw_route_fail(&ro->rt, sub->k, -ECANCELED, "answered without it");
    } else {
        rn_gw_route_take_local(&ro->rt, sub->k, hdr, slices, n_slices);
        part_done(ro);
    }
    if (ro->lingers && all_ended(ro))
        unlinger(ro);
    ro_unref(ro); /* this part's */
}

/* A job came back to the reactor of its call. */
static void job_arrived(void *arg)
{
    rn_gw_fwd_job *j = arg;
    rn_gw_routed *ro = j->arg;
    if (!ro->rt.parts[j->part].done) {
        if (j->err < 0) {
            rn_gw_route_fail(&ro->rt, j->part, j->err, j->errmsg);
        } else {
            rn_gw_route_take_packed(&ro->rt, j->part, j->ans_hdr, j->ans_hdr_len, j->ans_payload,
                                    j->ans_payload_len);
            j->ans_payload = NULL; /* the route's now */
        }
        if (ro->reactor_ref)
            part_done(ro);
        else if (ro->lingers && all_ended(ro))
            unlinger(ro); /* answered early; its last part is back */
    }
    rn_gw_fwd_job_free(j);
    ro_unref(ro);
}

/* On the link thread: hand the job to its call's reactor. */
static void job_done(rn_gw_fwd_job *j)
{
    rn_gw_routed *ro = j->arg;
    if (rn_reactor_call(ro->r, job_arrived, j) == 0)
        return;
    rn_gw_fwd_job_free(j);
    ro_unref(ro);
}

/* Where a leader is: its registration in the quorum's broker list. */
static int resolve(void *arg, int32_t broker, char *hostport, size_t len, char *err, size_t errlen)
{
    rn_broker *b = arg;
    rn_quorum_status *st = malloc(sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rn_quorum_status_get(b->quorum, st);
    int rc = -EHOSTUNREACH;
    snprintf(err, errlen, "broker %d is not registered", broker);
    for (int i = 0; i < st->n_brokers; i++) {
        if (st->brokers[i].id != broker)
            continue;
        if (st->brokers[i].fenced) {
            rc = -EHOSTDOWN;
            snprintf(err, errlen, "broker %d is fenced (no heartbeat within its session timeout)",
                     broker);
        } else if (!st->brokers[i].endpoint[0]) {
            snprintf(err, errlen, "broker %d has no endpoint", broker);
        } else {
            snprintf(hostport, len, "%s", st->brokers[i].endpoint);
            rc = 0;
        }
        break;
    }
    free(st);
    return rc;
}

static rn_gw_fwd *forwarder(rn_broker *b, char *err, size_t errlen)
{
    pthread_mutex_lock(&fwd_lock);
    if (!fwd) {
        int rc = rn_gw_fwd_new(&fwd, resolve, b);
        if (rc < 0) {
            fwd = NULL;
            snprintf(err, errlen, "cannot start forwarding: %s", rn_errname(rc));
        } else {
            fwd_broker = b;
        }
    }
    rn_gw_fwd *f = fwd_broker == b ? fwd : NULL;
    pthread_mutex_unlock(&fwd_lock);
    return f;
}

void rn_gateway_forward_stop(struct rn_broker *b)
{
    pthread_mutex_lock(&fwd_lock);
    rn_gw_fwd *f = fwd_broker == b ? fwd : NULL;
    if (f) {
        fwd = NULL;
        fwd_broker = NULL;
    }
    pthread_mutex_unlock(&fwd_lock);
    rn_gw_fwd_free(f);
}

/* The leader of topic-partition as the image says now. */
static int32_t leader_of(void *arg, const char *topic, int32_t partition)
{
    rn_broker *b = arg;
    const rn_topic_info *t = rn_metadata_find(b->md, topic);
    if (!t || partition < 0 || partition >= t->n_partitions)
        return RN_GW_ROUTE_LOCAL; /* the local handler says what is wrong */
    int32_t l = t->partitions[partition].leader;
    if (l == b->cfg.node_id)
        return RN_GW_ROUTE_LOCAL;
    return l < 0 ? RN_GW_ROUTE_NONE : l;
}

/* How long a leader may take: the request's own wait (a Produce's timeout, a
 * Fetch's long poll, 10 s for the rest), and RN_GW_FWD_GRACE_MS more for the
 * way there and back; past it the link is cut (forward.h) and the client gets
 * a 503 saying so. */
static uint64_t job_deadline(const Runnel__RequestHeader *h)
{
    uint64_t ms = 10000;
    if (h->api == RUNNEL__API__PRODUCE && h->produce)
        ms = (h->produce->timeout_ms ? h->produce->timeout_ms : 30000) +
             (uint64_t)RN_GW_FWD_GRACE_MS;
    else if (h->api == RUNNEL__API__FETCH && h->fetch)
        ms = h->fetch->max_wait_ms + (uint64_t)RN_GW_FWD_GRACE_MS;
    return rn_now_ns() + ms * 1000000ull;
}

typedef struct send_ctx {
    rn_gw_routed *ro;
    size_t k;
    char *err;
    size_t errlen;
} send_ctx;

static int send_local(void *arg, Runnel__RequestHeader *sub, const void *payload,
                      size_t payload_len)
{
    send_ctx *sc = arg;
    rn_gw_routed *ro = sc->ro;
    ro->subs[sc->k].ro = ro;
    ro->subs[sc->k].k = sc->k;
    /* Counted before the call: the answer may come inside it. */
    ro->local_pending++;
    __atomic_add_fetch(&ro->refs, 1, __ATOMIC_ACQ_REL);
    int rc = rn_request_local(ro->cl->vc, sub, payload, payload_len, local_sink, &ro->subs[sc->k],
                              sc->err, sc->errlen);
    if (rc < 0) {
        ro->local_pending--;
        __atomic_sub_fetch(&ro->refs, 1, __ATOMIC_ACQ_REL); /* the issuing ref keeps it */
    }
    return rc;
}

static int send_remote(void *arg, Runnel__RequestHeader *sub, const void *payload,
                       size_t payload_len)
{
    send_ctx *sc = arg;
    rn_gw_routed *ro = sc->ro;
    rn_gw_fwd *f = forwarder(ro->r->b, sc->err, sc->errlen);
    if (!f)
        return -ENOMEM;
    rn_gw_fwd_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->broker = ro->rt.parts[sc->k].leader;
    j->req_hdr_len = runnel__request_header__get_packed_size(sub);
    j->req_hdr = malloc(j->req_hdr_len ? j->req_hdr_len : 1);
    j->req_payload = payload_len ? malloc(payload_len) : NULL;
    if (!j->req_hdr || (payload_len && !j->req_payload)) {
        rn_gw_fwd_job_free(j);
        snprintf(sc->err, sc->errlen, "out of memory");
        return -ENOMEM;
    }
    runnel__request_header__pack(sub, j->req_hdr);
    if (payload_len)
        memcpy(j->req_payload, payload, payload_len);
    j->req_payload_len = payload_len;
    j->deadline_ns = job_deadline(sub);
    j->max_answer = 0;
    if (sub->api == RUNNEL__API__FETCH)
        j->max_answer = (size_t)(sub->fetch->max_bytes ? sub->fetch->max_bytes : 64u << 20) +
                        ro->r->b->limits.max_message + RN_FRAME_DEFAULT_MAX_MESSAGE;
    j->done = job_done;
    j->arg = ro;
    j->part = sc->k;
    __atomic_add_fetch(&ro->refs, 1, __ATOMIC_ACQ_REL);
    int rc = rn_gw_fwd_submit(f, j, sc->err, sc->errlen);
    if (rc < 0) {
        __atomic_sub_fetch(&ro->refs, 1, __ATOMIC_ACQ_REL); /* the reactor's keeps it above 0 */
        rn_gw_fwd_job_free(j);
    }
    return rc;
}

/* 1: not routed (serve it here as before); 0: routed, the answer will come;
 * < 0: refused with a message. */
static int route_call(rn_gw_client *cl, Runnel__RequestHeader *hdr, const void *payload,
                      size_t payload_len, rn_gw_call *call, rn_gw_answer_cb on_answer,
                      rn_gw_drop_cb drop, char *err, size_t errlen)
{
    rn_gw_routed *ro = calloc(1, sizeof(*ro));
    if (!ro) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = rn_gw_route_plan(&ro->rt, hdr, leader_of, cl->r->b);
    if (rc < 0 || rn_gw_route_all_local(&ro->rt)) {
        if (rc == -E2BIG)
            snprintf(err, errlen, "the request's partitions have more than %d leaders",
                     RN_GW_ROUTE_MAX_PARTS);
        else if (rc < 0)
            snprintf(err, errlen, "cannot route the request: %s", rn_strerror(rc));
        rn_gw_route_fini(&ro->rt);
        free(ro);
        return rc < 0 ? rc : 1;
    }
    ro->subs = calloc(ro->rt.n_parts, sizeof(*ro->subs));
    if (!ro->subs) {
        rn_gw_route_fini(&ro->rt);
        free(ro);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ro->cl = cl;
    ro->r = cl->r;
    ro->call = call;
    ro->refs = 1;
    ro->reactor_ref = true;
    ro->pending = ro->rt.n_parts;
    if (hdr->api == RUNNEL__API__FETCH && hdr->fetch)
        ro->min_bytes = hdr->fetch->min_bytes;
    call->client = cl;
    call->on_answer = on_answer;
    call->drop = drop;
    call->routed = ro;
    call->prev = NULL;
    call->next = cl->calls;
    if (cl->calls)
        cl->calls->prev = call;
    cl->calls = call;
    cl->n_calls++;
    /* At most one long poll per leader per client: a leader that still holds
     * a part of an early-answered fetch of this client (cl->lingering) gets
     * this fetch's part without a wait (it answers with what it has). Else
     * a client polling fast, with records on one leader only, would park a
     * new long poll at every other leader per poll. */
    if (hdr->api == RUNNEL__API__FETCH)
        for (size_t k = 0; k < ro->rt.n_parts; k++)
            for (rn_gw_routed *o = cl->lingering; o; o = o->next_linger)
                for (size_t q = 0; q < o->rt.n_parts; q++)
                    if (!o->rt.parts[q].done && o->rt.parts[q].leader == ro->rt.parts[k].leader)
                        ro->rt.parts[k].no_wait = true;
    /* Every part is sent before any can complete the call: pending counts
     * them all, so an answer inside rn_request_local only counts down. */
    size_t n_parts = ro->rt.n_parts;
    /* A reference of the loop's own: an answer inside it may deliver. */
    ro->issuing = true;
    __atomic_add_fetch(&ro->refs, 1, __ATOMIC_ACQ_REL);
    for (size_t k = 0; k < n_parts; k++) {
        rn_gw_route_part *pt = &ro->rt.parts[k];
        char perr[320] = "";
        send_ctx sc = {.ro = ro, .k = k, .err = perr, .errlen = sizeof(perr)};
        if (pt->leader == RN_GW_ROUTE_NONE) {
            size_t i = pt->idx[0];
            snprintf(perr, sizeof(perr), "%s-%d has no leader now", ro->rt.topics[i],
                     ro->rt.partition[i]);
            rn_gw_route_fail(&ro->rt, k, -RN_E_NOT_LEADER, perr);
            part_done(ro);
            continue;
        }
        rc = rn_gw_route_sub(&ro->rt, k, hdr, payload, payload_len,
                             pt->leader == RN_GW_ROUTE_LOCAL ? send_local : send_remote, &sc);
        if (rc < 0) {
            if (pt->leader >= 0 && rc != -RN_E_INVALID_REQUEST) {
                char m[400];
                snprintf(m, sizeof(m), "leader broker %d: %s", pt->leader,
                         perr[0] ? perr : rn_strerror(rc));
                rn_gw_route_fail(&ro->rt, k, rc, m);
            } else {
                rn_gw_route_fail(&ro->rt, k, rc, perr);
            }
            part_done(ro);
        }
    }
    ro->issuing = false;
    maybe_early(ro);
    ro_unref(ro);
    return 0;
}
