/*
 * gateway.c — the gateway of one reactor: HTTP listener, connections, tick,
 * shutdown, Origin allow-list and the gateway's own metrics.
 *
 * The listener is a second socket next to the native one, opened the same
 * way (no SO_REUSEPORT while there is one reactor, bind retried after a
 * kill -9), with a multishot accept on the reactor's ring; every accepted socket becomes an
 * rn_http_conn (http.c). A 1 s timer on the same ring drives timeouts,
 * lingering closes, SSE heartbeats, WebSocket pings, stalled-stream
 * cut-offs and the REST Proxy consumer instances' heartbeats.
 *
 * Shutdown (rn_gateway_stop, from the reactor's drain): the accept is
 * cancelled and the listener closed; idle connections close at once;
 * streams say goodbye (WebSocket close 1001) and close once that is sent;
 * requests in flight answer first — their long polls are woken, and the
 * reactor's `stopping` makes those fetches final — then close. The reactor
 * waits on rn_gateway_idle (bounded by its own 2 s give-up).
 *
 * Invariants:
 *   1. Every op in flight (accept, tick, their cancels) has its flag set, so
 *      rn_gateway_idle is exact and the gateway is never freed under an op.
 *   2. Connections hold their own references; the gateway only lists them.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/gateway/consumers.h"
#include "broker/gateway/gateway.h"
#include "broker/gateway/http.h"
#include "broker/gateway/json.h"
#include "broker/logfmt.h"
#include "broker/net/listen.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"

/* ---- Accept ---------------------------------------------------------------------- */

static void shed_one(void *arg, int fd)
{
    rn_http_refuse_at_once(arg, fd, "out_of_descriptors");
}

static void accept_one(void *arg, int fd)
{
    rn_gateway *gw = arg;
    rn_gateway_accept(gw->r, fd);
}

void rn_gateway_accept(rn_reactor *r, int fd)
{
    if (!r->gw) {
        close(fd);
        return;
    }
    rn_http_conn_new(r->gw, fd);
}

/* ---- Tick ----------------------------------------------------------------------------- */

static void arm_tick(rn_gateway *gw);

static void tick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_gateway *gw = RN_CONTAINER_OF(op, rn_gateway, tick_op);
    (void)res;
    (void)flags;
    gw->tick_armed = false;
    if (gw->stopping)
        return;
    int64_t now = rn_now_ms();
    /* Collect first: a connection may close (and leave the list) in its tick. */
    unsigned n = gw->n_conns, i = 0;
    rn_http_conn **all = calloc(n ? n : 1, sizeof(*all));
    if (all) {
        for (rn_http_conn *c = gw->conns; c && i < n; c = c->next) {
            rn_http_conn_ref(c);
            all[i++] = c;
        }
        for (unsigned k = 0; k < i; k++) {
            rn_http_conn_tick(all[k], now);
            rn_http_conn_unref(all[k]);
        }
        free(all);
    }
    rn_consumers_tick(gw->consumers, now);
    if (!gw->r->stopping)
        rn_acceptor_tick(&gw->acc);
    arm_tick(gw);
}

static void arm_tick(rn_gateway *gw)
{
    gw->tick_armed = true;
    rn_io_timer(gw->r->io, &gw->tick_op, tick_done, &gw->tick_ts, RN_HTTP_TICK_MS);
}

/* ---- Listen ---------------------------------------------------------------------------- */

/* Returns 0 with the socket in *out, 1 when the (default) port is taken and
 * HTTP is not required, or a negative error. */
static int open_listener(const char *hostport, bool required, int *out)
{
    const char *hp = strncmp(hostport, "http://", 7) == 0 ? hostport + 7 : hostport;
    int rc = rn_listen_open("http", hp, required, out);
    if (rc == -EADDRINUSE && !required) {
        rn_logfmt(RN_WARN, "http listener address in use; running without HTTP",
                  "http=%s hint=\"give --http HOST:PORT to serve REST, SSE and WebSocket\"",
                  hostport);
        return 1;
    }
    return rc;
}

int rn_gateway_listen(rn_reactor *r, const char *hostport, bool required)
{
    rn_broker *b = r->b;
    rn_gateway *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return -ENOMEM;
    gw->r = r;
    gw->b = b;
    rn_acceptor_init(&gw->acc, "http", accept_one, shed_one, gw);
    if (b->cfg.http_allowed_origins[0]) {
        gw->allowed_origins = strdup(b->cfg.http_allowed_origins);
        if (!gw->allowed_origins) {
            free(gw);
            return -ENOMEM;
        }
    }
    /* A JSON body carries a batch of at most message.max.bytes, base64 (4/3)
     * plus JSON punctuation: four times that is plenty, and bounded. */
    gw->max_body = (size_t)b->cfg.log.max_batch_bytes * 4;
    if (gw->max_body < (64u << 10))
        gw->max_body = 64u << 10;
    gw->reserve_cap = b->cfg.max_connections / 10;
    if (gw->reserve_cap < RN_HTTP_RESERVE_MIN)
        gw->reserve_cap = RN_HTTP_RESERVE_MIN;
    if (gw->reserve_cap > RN_HTTP_RESERVE_MAX)
        gw->reserve_cap = RN_HTTP_RESERVE_MAX;
    gw->stream_budget = RN_HTTP_STREAM_BUDGET;
    if (b->cfg.connection_send_budget < gw->stream_budget)
        gw->stream_budget = (size_t)b->cfg.connection_send_budget;
    int rc = rn_consumers_new(&gw->consumers, gw);
    if (rc < 0) {
        free(gw);
        return rc;
    }
    rc = rn_json_cache_new(&gw->render_cache, RN_GW_RENDER_CACHE_ENTRIES, RN_GW_RENDER_CACHE_BYTES);
    if (rc < 0) {
        rn_consumers_free(gw->consumers);
        free(gw);
        return rc;
    }
    int fd = -1;
    rc = open_listener(hostport, required, &fd);
    if (rc != 0) {
        rn_json_cache_free(gw->render_cache);
        rn_consumers_free(gw->consumers);
        free(gw);
        return rc < 0 ? rc : 0; /* 1: not required and in use */
    }
    /* Accept a client only once its first bytes are in (an HTTP client
     * speaks first): a silent connection holds no slot, no place in the
     * reserve and no memory, and a request that comes past the reserve is
     * there to be read when its connection is accepted (http.c). The
     * kernel hands over a connection still silent after this long anyway. */
    int defer_s = RN_HTTP_RESERVE_MS / 1000;
    if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s)) < 0)
        rn_logfmt(RN_DEBUG, "TCP_DEFER_ACCEPT not set", "err=%s", rn_errname(-errno));
    r->gw = gw;
    rn_acceptor_start(&gw->acc, r->io, fd);
    arm_tick(gw);
    return 0;
}

/* ---- Shutdown ----------------------------------------------------------------------------- */

static void cancel_tick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_gateway *gw = RN_CONTAINER_OF(op, rn_gateway, cancel_tick_op);
    (void)res;
    (void)flags;
    gw->cancel_tick_inflight = false;
}

void rn_gateway_stop(rn_reactor *r)
{
    rn_gateway *gw = r ? r->gw : NULL;
    if (!gw || gw->stopping)
        return;
    gw->stopping = true;
    rn_acceptor_stop(&gw->acc);
    if (gw->tick_armed && !gw->cancel_tick_inflight) {
        struct io_uring_sqe *sqe = rn_io_sqe(r->io, &gw->cancel_tick_op, cancel_tick_done);
        if (sqe) {
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&gw->tick_op, 0);
            gw->cancel_tick_inflight = true;
        }
    }
    rn_consumers_stop(gw->consumers);
    /* Collect first: shutting one down may close it (it leaves the list). */
    unsigned n = gw->n_conns, i = 0;
    rn_http_conn **all = calloc(n ? n : 1, sizeof(*all));
    if (!all) {
        while (gw->conns)
            rn_http_conn_close(gw->conns, "shutdown");
        return;
    }
    for (rn_http_conn *c = gw->conns; c && i < n; c = c->next) {
        rn_http_conn_ref(c);
        all[i++] = c;
    }
    for (unsigned k = 0; k < i; k++) {
        rn_http_conn_shutdown(all[k]);
        rn_http_conn_unref(all[k]);
    }
    free(all);
    rn_logfmt(RN_INFO, "http gateway stopping", "connections=%u", gw->n_conns);
}

bool rn_gateway_idle(rn_reactor *r)
{
    rn_gateway *gw = r ? r->gw : NULL;
    if (!gw)
        return true;
    if (gw->stopping && gw->conns) {
        /* Past the drain deadline the reactor gives up on us; until then a
         * connection still answering keeps the loop turning. */
        return false;
    }
    return !gw->conns && rn_acceptor_idle(&gw->acc) && !gw->tick_armed &&
           !gw->cancel_tick_inflight && rn_consumers_idle(gw->consumers);
}

void rn_gateway_free(rn_reactor *r)
{
    rn_gateway *gw = r ? r->gw : NULL;
    if (!gw)
        return;
    while (gw->conns)
        rn_http_conn_close(gw->conns, "gateway freed");
    rn_consumers_free(gw->consumers);
    rn_json_cache_free(gw->render_cache);
    rn_acceptor_fini(&gw->acc);
    free(gw->allowed_origins);
    free(gw);
    r->gw = NULL;
}

/* ---- Origin allow-list -------------------------------------------------------------------- */

/* The host[:port] part of an origin "scheme://host[:port]". */
static const char *origin_host(const char *origin, size_t *len)
{
    const char *s = strstr(origin, "://");
    s = s ? s + 3 : origin;
    size_t n = strcspn(s, "/");
    *len = n;
    return s;
}

bool rn_http_origin_allowed(const rn_gateway *gw, const char *origin, const char *host)
{
    if (!origin)
        return true; /* not a browser's cross-site request */
    if (gw->allowed_origins) {
        const char *s = gw->allowed_origins;
        size_t olen = strlen(origin);
        while (*s) {
            size_t n = strcspn(s, ",");
            const char *e = s + n;
            const char *b = s;
            while (b < e && *b == ' ')
                b++;
            while (e > b && e[-1] == ' ')
                e--;
            if ((size_t)(e - b) == 1 && *b == '*')
                return true;
            if ((size_t)(e - b) == olen && strncasecmp(b, origin, olen) == 0)
                return true;
            s += n;
            if (*s == ',')
                s++;
        }
        return false;
    }
    /* Default: the page came from this very server. */
    if (!host)
        return false;
    size_t hl;
    const char *oh = origin_host(origin, &hl);
    return hl == strlen(host) && strncasecmp(oh, host, hl) == 0;
}

/* ---- Metrics ------------------------------------------------------------------------------ */

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -EINVAL;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return 0;
        }
        size_t nc = *cap * 2 + (size_t)n;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = nc;
    }
}

int rn_gateway_metrics_render(const rn_gateway *gw, char **buf, size_t *len, size_t *cap)
{
    const rn_gateway_metrics *m = &gw->m;
    int rc = 0;
#define A(...)                                                                                     \
    do {                                                                                           \
        if ((rc = append(buf, len, cap, __VA_ARGS__)) < 0)                                         \
            return rc;                                                                             \
    } while (0)
    A("# HELP runnel_http_connections_total HTTP connections accepted by the gateway.\n"
      "# TYPE runnel_http_connections_total counter\n"
      "runnel_http_connections_total %llu\n",
      (unsigned long long)m->connections_total);
    A("# HELP runnel_http_connections_active HTTP connections open now (any mode).\n"
      "# TYPE runnel_http_connections_active gauge\n"
      "runnel_http_connections_active %llu\n",
      (unsigned long long)m->connections_active);
    A("# HELP runnel_http_connections_rejected_total HTTP clients answered 503 for "
      "max.connections (also in runnel_connections_rejected_total).\n"
      "# TYPE runnel_http_connections_rejected_total counter\n"
      "runnel_http_connections_rejected_total %llu\n",
      (unsigned long long)m->busy_refusals);
    A("# HELP runnel_http_reserve_connections_active HTTP connections let in over "
      "max.connections for /healthz, /readyz and /metrics.\n"
      "# TYPE runnel_http_reserve_connections_active gauge\n"
      "runnel_http_reserve_connections_active %u\n",
      gw->n_reserve);
    A("# HELP runnel_http_requests_total HTTP requests read.\n"
      "# TYPE runnel_http_requests_total counter\n"
      "runnel_http_requests_total %llu\n",
      (unsigned long long)m->requests_total);
    A("# HELP runnel_http_responses_total HTTP responses by status class.\n"
      "# TYPE runnel_http_responses_total counter\n");
    for (int k = 1; k <= 5; k++)
        A("runnel_http_responses_total{code=\"%dxx\"} %llu\n", k,
          (unsigned long long)m->responses[k]);
    A("# HELP runnel_http_bad_requests_total Malformed or over-limit HTTP and WebSocket input.\n"
      "# TYPE runnel_http_bad_requests_total counter\n"
      "runnel_http_bad_requests_total %llu\n",
      (unsigned long long)m->bad_requests);
    A("# HELP runnel_stream_connections_active Open streams by kind.\n"
      "# TYPE runnel_stream_connections_active gauge\n"
      "runnel_stream_connections_active{kind=\"sse\"} %llu\n"
      "runnel_stream_connections_active{kind=\"ws\"} %llu\n",
      (unsigned long long)m->sse_active, (unsigned long long)m->ws_active);
    A("# HELP runnel_stream_connections_total Streams opened by kind.\n"
      "# TYPE runnel_stream_connections_total counter\n"
      "runnel_stream_connections_total{kind=\"sse\"} %llu\n"
      "runnel_stream_connections_total{kind=\"ws\"} %llu\n",
      (unsigned long long)m->sse_total, (unsigned long long)m->ws_total);
    A("# HELP runnel_stream_messages_sent_total SSE events and WebSocket messages queued.\n"
      "# TYPE runnel_stream_messages_sent_total counter\n"
      "runnel_stream_messages_sent_total %llu\n",
      (unsigned long long)m->stream_messages_sent);
    A("# HELP runnel_stream_records_sent_total Records delivered to SSE and WebSocket tails.\n"
      "# TYPE runnel_stream_records_sent_total counter\n"
      "runnel_stream_records_sent_total %llu\n",
      (unsigned long long)m->stream_records_sent);
    A("# HELP runnel_stream_budget_closes_total Streams cut off: queue full, client not "
      "reading.\n"
      "# TYPE runnel_stream_budget_closes_total counter\n"
      "runnel_stream_budget_closes_total %llu\n",
      (unsigned long long)m->stream_budget_closes);
    uint64_t hits, misses;
    rn_json_cache_stats(gw->render_cache, &hits, &misses);
    A("# HELP runnel_stream_render_cache_hits_total Fetched batches whose JSON rendering was "
      "reused.\n"
      "# TYPE runnel_stream_render_cache_hits_total counter\n"
      "runnel_stream_render_cache_hits_total %llu\n"
      "# HELP runnel_stream_render_cache_misses_total Fetched batches rendered to JSON.\n"
      "# TYPE runnel_stream_render_cache_misses_total counter\n"
      "runnel_stream_render_cache_misses_total %llu\n",
      (unsigned long long)hits, (unsigned long long)misses);
#undef A
    return 0;
}
