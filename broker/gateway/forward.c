/*
 * forward.c — the gateways' links to partition leaders: a thread and an
 * rn_peer per leader, fed by a bounded queue (see forward.h).
 *
 * A link thread's loop:
 *
 *   take queued jobs (while fewer than RN_GW_FWD_MAX_INFLIGHT are in flight)
 *     └─ past its deadline: end it (-RN_E_TIMEOUT)
 *     └─ resolve the leader's endpoint; a new endpoint: a new peer
 *     └─ inside the retry pause of a failed connect: end it with that failure
 *     └─ nothing in flight: a poll that returns at once notices a closed link
 *     └─ rn_peer_send: in flight, or ended with the send's failure
 *   in flight: rn_peer_poll (answers end their jobs in peer_answered)
 *     └─ a job past its deadline: rn_peer_cut ends every job of the link
 *   nothing in flight: wait for the wake-up eventfd
 *
 * The peer's transport is TCP's with one change: its receive also wakes on
 * the link's eventfd, so a job queued while the thread waits for answers is
 * sent at once instead of after the poll's timeout.
 *
 * Invariants:
 *   1. A job is in exactly one place: the link's queue (under f->lock), the
 *      thread's local batch, the peer's waiters (mirrored in `inflight`), or
 *      handed to done. done runs once per accepted job, on the link thread,
 *      outside the lock.
 *   2. Only the link thread touches its peer and its in-flight list.
 *   3. After stop, submit refuses; the thread ends every job it holds before
 *      it exits, so free returns with no job left anywhere.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/gateway/forward.h"
#include "broker/logfmt.h"
#include "broker/net/peer.h"
#include "protocol/errors.h"

typedef struct fwd_link {
    rn_gw_fwd *f;
    int32_t broker;
    pthread_t th;
    bool started;
    int efd;
    /* Under f->lock: */
    rn_gw_fwd_job *q_head, *q_tail;
    unsigned n_queued;
    /* The thread's own: */
    rn_peer *peer;
    char hostport[272];
    rn_gw_fwd_job *inflight; /* sent, unanswered (in any order) */
    unsigned n_inflight;
    uint64_t connect_until_ns; /* the deadline of the job being sent */
    uint64_t resolved_ns;      /* when hostport was last looked up */
    uint64_t retry_at_ns;      /* a connect failed: until then, fail at once */
    int retry_err;
    char retry_msg[320];
    uint64_t connects; /* atomic: read by rn_gw_fwd_connects */
} fwd_link;

struct rn_gw_fwd {
    rn_gw_fwd_resolve_fn resolve;
    void *arg;
    pthread_mutex_t lock;
    bool stopping; /* under lock */
    fwd_link *links[RN_GW_FWD_MAX_LINKS];
    unsigned n_links; /* under lock */
};

static uint64_t ms_ns(uint64_t ms)
{
    return ms * 1000000ull;
}

void rn_gw_fwd_job_free(rn_gw_fwd_job *j)
{
    if (!j)
        return;
    free(j->req_hdr);
    free(j->req_payload);
    free(j->ans_hdr);
    free(j->ans_payload);
    free(j);
}

/* End j with err and a message naming the leader; hand it on. */
static void end_job(fwd_link *l, rn_gw_fwd_job *j, int err, const char *why)
{
    j->err = err;
    if (err < 0)
        snprintf(j->errmsg, sizeof(j->errmsg), "leader broker %d%s%s%s: %s", l->broker,
                 l->hostport[0] ? " (" : "", l->hostport, l->hostport[0] ? ")" : "",
                 why && *why ? why : rn_strerror(err));
    j->done(j);
}

/* ---- Transport: TCP, with a receive that also wakes on the eventfd ---------------------- */

static int t_connect(void *ctx, const char *host, const char *port, int timeout_ms)
{
    fwd_link *l = ctx;
    (void)timeout_ms;
    /* Bounded by the job being sent: a connect never outlives its deadline. */
    uint64_t now = rn_now_ns();
    uint64_t ms = RN_GW_FWD_CONNECT_MS;
    if (l->connect_until_ns <= now)
        ms = 1;
    else if ((l->connect_until_ns - now) / 1000000ull < ms)
        ms = (l->connect_until_ns - now) / 1000000ull + 1;
    return rn_peer_tcp.connect(NULL, host, port, (int)ms);
}

static int t_send(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    return rn_peer_tcp.send(NULL, fd, buf, len);
}

static ssize_t t_recv(void *ctx, int fd, void *buf, size_t len, int timeout_ms)
{
    fwd_link *l = ctx;
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = l->efd, .events = POLLIN}};
    int n = poll(p, 2, timeout_ms);
    if (n < 0)
        return errno == EINTR ? -EAGAIN : -errno;
    if (p[1].revents & POLLIN) {
        uint64_t v;
        if (read(l->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            return -errno;
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return -EAGAIN;
    return rn_peer_tcp.recv(NULL, fd, buf, len, 0);
}

static void t_close(void *ctx, int fd)
{
    (void)ctx;
    rn_peer_tcp.close(NULL, fd);
}

static const rn_peer_transport link_transport = {
    .connect = t_connect, .send = t_send, .recv = t_recv, .close = t_close};

/* ---- In flight -------------------------------------------------------------------------- */

static void unlink_inflight(fwd_link *l, rn_gw_fwd_job *j)
{
    for (rn_gw_fwd_job **pp = &l->inflight; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            j->next = NULL;
            l->n_inflight--;
            return;
        }
    }
}

/* The peer's callback: an answer, or the link's failure (invariant 1). */
static void peer_answered(void *arg, int err, const rn_frame_response *resp, const char *errmsg)
{
    rn_gw_fwd_job *j = arg;
    fwd_link *l = j->link;
    unlink_inflight(l, j);
    if (err < 0) {
        end_job(l, j, err, errmsg);
        return;
    }
    if (resp->payload_len > j->max_answer) {
        char why[160];
        snprintf(why, sizeof(why), "an answer of %u bytes, more than the %zu asked for",
                 resp->payload_len, j->max_answer);
        end_job(l, j, -RN_E_INVALID_REQUEST, why);
        return;
    }
    size_t hl = runnel__response_header__get_packed_size(resp->hdr);
    j->ans_hdr = malloc(hl ? hl : 1);
    j->ans_payload = resp->payload_len ? malloc(resp->payload_len) : NULL;
    if (!j->ans_hdr || (resp->payload_len && !j->ans_payload)) {
        free(j->ans_hdr);
        free(j->ans_payload);
        j->ans_hdr = j->ans_payload = NULL;
        end_job(l, j, -ENOMEM, "out of memory");
        return;
    }
    runnel__response_header__pack(resp->hdr, j->ans_hdr);
    j->ans_hdr_len = hl;
    if (resp->payload_len)
        memcpy(j->ans_payload, resp->payload, resp->payload_len);
    j->ans_payload_len = resp->payload_len;
    end_job(l, j, 0, NULL);
}

/* ---- Sending ---------------------------------------------------------------------------- */

/* The leader's endpoint now; a changed one replaces the peer. */
static int ensure_peer(fwd_link *l, char *err, size_t errlen)
{
    char hp[272];
    uint64_t now = rn_now_ns();
    /* A link whose last connect did not fail, looked up lately, needs no
     * look-up (the quorum's broker list is a large copy). */
    if (l->peer && l->retry_at_ns == 0 && now - l->resolved_ns < ms_ns(RN_GW_FWD_RESOLVE_MS))
        return 0;
    int rc = l->f->resolve(l->f->arg, l->broker, hp, sizeof(hp), err, errlen);
    if (rc < 0)
        return rc;
    l->resolved_ns = now;
    if (l->peer && !strcmp(hp, l->hostport))
        return 0;
    if (l->peer) {
        rn_logfmt(RN_INFO, "gateway leader link moves", "broker=%d from=%s to=%s", l->broker,
                  l->hostport, hp);
        rn_peer_free(l->peer); /* ends what is in flight there (-ECANCELED) */
        l->peer = NULL;
    }
    snprintf(l->hostport, sizeof(l->hostport), "%s", hp);
    l->retry_at_ns = 0;
    rc = rn_peer_new(&l->peer, hp, &link_transport, l);
    if (rc < 0)
        snprintf(err, errlen, "bad endpoint '%s'", hp);
    return rc;
}

static void send_job(fwd_link *l, rn_gw_fwd_job *j)
{
    uint64_t now = rn_now_ns();
    char err[320] = "";
    if (now >= j->deadline_ns) {
        end_job(l, j, -RN_E_TIMEOUT, "no room to send the request before its timeout");
        return;
    }
    int rc = ensure_peer(l, err, sizeof(err));
    if (rc < 0) {
        end_job(l, j, rc, err);
        return;
    }
    if (now < l->retry_at_ns) {
        end_job(l, j, l->retry_err, l->retry_msg);
        return;
    }
    Runnel__RequestHeader *h = runnel__request_header__unpack(NULL, j->req_hdr_len, j->req_hdr);
    if (!h) {
        end_job(l, j, -RN_E_INVALID_REQUEST, "cannot encode the request");
        return;
    }
    if (!l->n_inflight) {
        /* Nothing is awaited, so nothing has read the socket since the last
         * answer: a leader that closed meanwhile (restarted, moved) would
         * fail this request on a dead connection. A poll that returns at
         * once notices the close, and the send below connects anew. */
        rn_peer_poll(l->peer, 0);
    }
    uint64_t before = rn_peer_connects(l->peer);
    l->connect_until_ns = j->deadline_ns;
    j->link = l;
    j->next = l->inflight;
    l->inflight = j;
    l->n_inflight++;
    rc = rn_peer_send(l->peer, h, j->req_payload, j->req_payload_len, peer_answered, j);
    runnel__request_header__free_unpacked(h, NULL);
    uint64_t after = rn_peer_connects(l->peer);
    if (after != before)
        __atomic_store_n(&l->connects, after, __ATOMIC_RELAXED);
    if (rc == 0)
        l->retry_at_ns = 0; /* the leader is reachable again */
    if (rc < 0) {
        unlink_inflight(l, j);
        snprintf(err, sizeof(err), "%s", rn_peer_errmsg(l->peer));
        if (after == before) {
            /* The connect failed: later jobs fail fast for a moment. */
            l->retry_at_ns = rn_now_ns() + ms_ns(RN_GW_FWD_RETRY_MS);
            l->retry_err = rc;
            snprintf(l->retry_msg, sizeof(l->retry_msg), "%s", err);
        }
        end_job(l, j, rc, err);
    }
}

/* ---- The link's thread ------------------------------------------------------------------ */

static void *link_main(void *arg)
{
    fwd_link *l = arg;
    rn_gw_fwd *f = l->f;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        bool stop = f->stopping;
        rn_gw_fwd_job *batch = NULL, **tail = &batch;
        unsigned taken = 0;
        while (!stop && l->q_head && l->n_inflight + taken < RN_GW_FWD_MAX_INFLIGHT) {
            rn_gw_fwd_job *j = l->q_head;
            l->q_head = j->next;
            if (!l->q_head)
                l->q_tail = NULL;
            l->n_queued--;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
            taken++;
        }
        pthread_mutex_unlock(&f->lock);
        if (stop)
            break;
        while (batch) {
            rn_gw_fwd_job *j = batch;
            batch = j->next;
            j->next = NULL;
            send_job(l, j);
        }
        if (l->n_inflight && l->peer) {
            uint64_t now = rn_now_ns(), first = UINT64_MAX;
            for (rn_gw_fwd_job *j = l->inflight; j; j = j->next)
                if (j->deadline_ns < first)
                    first = j->deadline_ns;
            if (first <= now) {
                char why[160];
                snprintf(why, sizeof(why), "no answer within the request's timeout");
                rn_peer_cut(l->peer, -RN_E_TIMEOUT, why);
                continue;
            }
            uint64_t wait = (first - now) / 1000000ull + 1;
            rn_peer_poll(l->peer, wait < 100 ? (int)wait : 100);
        } else {
            struct pollfd p = {.fd = l->efd, .events = POLLIN};
            if (poll(&p, 1, 1000) == 1) {
                uint64_t v;
                if (read(l->efd, &v, sizeof(v)) < 0) {
                    /* EAGAIN: another read took it; anything else: the loop goes on. */
                }
            }
        }
    }
    /* Stopping (invariant 3): what is queued, then what is in flight. */
    pthread_mutex_lock(&f->lock);
    rn_gw_fwd_job *q = l->q_head;
    l->q_head = l->q_tail = NULL;
    l->n_queued = 0;
    pthread_mutex_unlock(&f->lock);
    while (q) {
        rn_gw_fwd_job *j = q;
        q = j->next;
        j->next = NULL;
        end_job(l, j, -RN_E_SHUTTING_DOWN, "the broker is shutting down");
    }
    if (l->peer) {
        rn_peer_cut(l->peer, -RN_E_SHUTTING_DOWN, "the broker is shutting down");
        rn_peer_free(l->peer);
        l->peer = NULL;
    }
    return NULL;
}

/* ---- Public ----------------------------------------------------------------------------- */

int rn_gw_fwd_new(rn_gw_fwd **out, rn_gw_fwd_resolve_fn resolve, void *arg)
{
    rn_gw_fwd *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->resolve = resolve;
    f->arg = arg;
    pthread_mutex_init(&f->lock, NULL);
    *out = f;
    return 0;
}

/* The link to broker, made (and its thread started) on first use. Under f->lock. */
static int link_for(rn_gw_fwd *f, int32_t broker, fwd_link **out, char *err, size_t errlen)
{
    for (unsigned i = 0; i < f->n_links; i++) {
        if (f->links[i]->broker == broker) {
            *out = f->links[i];
            return 0;
        }
    }
    if (f->n_links == RN_GW_FWD_MAX_LINKS) {
        snprintf(err, errlen, "too many leader links (%d)", RN_GW_FWD_MAX_LINKS);
        return -E2BIG;
    }
    fwd_link *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    l->f = f;
    l->broker = broker;
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->efd < 0) {
        int rc = -errno;
        free(l);
        snprintf(err, errlen, "eventfd: %s", rn_errname(rc));
        return rc;
    }
    int rc = pthread_create(&l->th, NULL, link_main, l);
    if (rc != 0) {
        close(l->efd);
        free(l);
        snprintf(err, errlen, "cannot start the link thread: %s", rn_errname(-rc));
        return -rc;
    }
    l->started = true;
    f->links[f->n_links++] = l;
    *out = l;
    return 0;
}

int rn_gw_fwd_submit(rn_gw_fwd *f, rn_gw_fwd_job *j, char *err, size_t errlen)
{
    pthread_mutex_lock(&f->lock);
    if (f->stopping) {
        pthread_mutex_unlock(&f->lock);
        snprintf(err, errlen, "the broker is shutting down");
        return -ESHUTDOWN;
    }
    fwd_link *l = NULL;
    int rc = link_for(f, j->broker, &l, err, errlen);
    if (rc < 0) {
        pthread_mutex_unlock(&f->lock);
        return rc;
    }
    if (l->n_queued >= RN_GW_FWD_MAX_QUEUE) {
        pthread_mutex_unlock(&f->lock);
        snprintf(err, errlen, "the queue to leader broker %d is full (%d requests)", j->broker,
                 RN_GW_FWD_MAX_QUEUE);
        return -EBUSY;
    }
    j->next = NULL;
    j->link = l;
    if (l->q_tail)
        l->q_tail->next = j;
    else
        l->q_head = j;
    l->q_tail = j;
    l->n_queued++;
    pthread_mutex_unlock(&f->lock);
    uint64_t one = 1;
    if (write(l->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full, so the thread is woken already. */
    }
    return 0;
}

void rn_gw_fwd_free(rn_gw_fwd *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    unsigned n = f->n_links;
    pthread_mutex_unlock(&f->lock);
    uint64_t one = 1;
    for (unsigned i = 0; i < n; i++)
        if (write(f->links[i]->efd, &one, sizeof(one)) < 0) {
            /* EAGAIN: woken already. */
        }
    for (unsigned i = 0; i < n; i++) {
        fwd_link *l = f->links[i];
        if (l->started)
            pthread_join(l->th, NULL);
        close(l->efd);
        free(l);
    }
    pthread_mutex_destroy(&f->lock);
    free(f);
}

uint64_t rn_gw_fwd_connects(rn_gw_fwd *f, int32_t broker)
{
    uint64_t n = 0;
    pthread_mutex_lock(&f->lock);
    for (unsigned i = 0; i < f->n_links; i++)
        if (f->links[i]->broker == broker)
            n = __atomic_load_n(&f->links[i]->connects, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&f->lock);
    return n;
}
