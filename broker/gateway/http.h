/*
 * http.h — HTTP/1.1 inside the gateway (internal to broker/gateway/).
 *
 * Two layers:
 *   - rn_http_reader: a sans-I/O request reader on libhttp-parser. Feed it
 *     bytes split anywhere; it stops after each complete request (so
 *     pipelined requests are answered one at a time, in order) and enforces
 *     the limits before allocating: request line + headers at most
 *     max_header bytes and RN_HTTP_MAX_HEADERS fields, a body at most
 *     max_body bytes (a Content-Length above it is refused as soon as the
 *     headers end, before any body byte is read). Trailer fields after a
 *     chunked body count against max_header and are dropped.
 *   - rn_http_conn: one accepted socket on the reactor's ring (multishot recv
 *     into the provided buffers, sendmsg from a queue of chunks), in one of
 *     three modes: plain HTTP (request → response, keep-alive, pipelining),
 *     an event stream (chunked, SSE) or a WebSocket; the last two are driven
 *     by an rn_http_stream_ops table.
 *
 * The gateway (one per reactor) holds the connections, the listener and a
 * 1 s tick for timeouts and heartbeats; it is defined here so rest.c, sse.c,
 * ws.c and tail.c can share it.
 *
 * Threading: the reactor's thread only. Ownership is stated per function.
 */
#ifndef RN_GATEWAY_HTTP_H
#define RN_GATEWAY_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "broker/broker.h"
#include "broker/gateway/client.h"
#include "broker/net/listen.h"
#include "broker/net/sendq.h"

/* ---- Limits and timings ------------------------------------------------------ */

#define RN_HTTP_MAX_HEADER_BYTES (16u << 10) /* request line + header names and values */
#define RN_HTTP_MAX_HEADERS      64
#define RN_HTTP_IDLE_MS          60000 /* keep-alive connection with nothing to do */
#define RN_HTTP_REQUEST_MS       30000 /* first byte of a request to its last */
#define RN_HTTP_LINGER_MS        2000  /* after an error answer: drain input, then close */
#define RN_HTTP_TICK_MS          1000
#define RN_HTTP_MAX_PENDING_IN   (256u << 10) /* unparsed input held while a request runs */
/* max.connections reached: a reserve of more HTTP connections (a tenth of
 * max.connections, RN_HTTP_RESERVE_MIN to RN_HTTP_RESERVE_MAX) is let in, so
 * /healthz, /readyz and /metrics still answer (probes and scrapers come on
 * fresh connections); any other request on them gets 503 with Retry-After,
 * and a connection leaves the reserve as soon as it is answered. Past the
 * reserve (a burst larger than it) a connection whose health or metrics
 * request has already arrived is served once; any other gets that 503 at
 * once. A reserve connection has RN_HTTP_RESERVE_MS for its request and as
 * idle time, so the reserve turns over even when someone tries to hold it.
 * Each costs a descriptor and a few KB. */
#define RN_HTTP_RESERVE_MIN   32
#define RN_HTTP_RESERVE_MAX   1024
#define RN_HTTP_RESERVE_MS    5000
#define RN_HTTP_RETRY_AFTER_S 2
/* Streams (SSE, WebSocket): the queue a client may have unread, capped by
 * connection.send.budget.bytes (the socket's kernel send buffer is capped to
 * the same size); one with a full queue that reads nothing for
 * RN_HTTP_STALL_MS is cut off (WebSocket close 1008). */
#define RN_HTTP_STREAM_BUDGET (1u << 20)
#define RN_HTTP_STALL_MS      3000

/* ---- Requests -------------------------------------------------------------------- */

typedef struct rn_http_header {
    const char *name; /* lower-cased */
    const char *value;
} rn_http_header;

/* One complete request. Strings point into the reader's arena; everything is
 * valid until rn_http_reader_next. */
typedef struct rn_http_request {
    enum http_method method;
    const char *method_name;
    const char *url;   /* as sent: path + '?' + query */
    char *path;        /* percent-decoded path, without the query */
    const char *query; /* after '?', "" when none (not decoded: rn_http_query_get) */
    unsigned short http_major, http_minor;
    bool keep_alive; /* the client allows another request on this connection */
    bool upgrade;    /* Connection: upgrade (the parser stopped after the headers) */
    unsigned n_headers;
    rn_http_header headers[RN_HTTP_MAX_HEADERS];
    uint8_t *body; /* NUL-terminated for convenience; body_len excludes it */
    size_t body_len;
} rn_http_request;

/* Value of header name (lower-case), or NULL. */
const char *rn_http_header_get(const rn_http_request *req, const char *name);

/* Copy the percent-decoded value of query parameter key into buf (NUL-
 * terminated). Returns 1 when found, 0 when absent, -ENAMETOOLONG when it
 * does not fit in buf. */
int rn_http_query_get(const char *query, const char *key, char *buf, size_t len);

typedef struct rn_http_reader {
    http_parser p;
    size_t max_header, max_body;
    rn_http_request req;
    char *arena; /* url, header names and values, each NUL-terminated */
    size_t arena_len, arena_cap;
    size_t header_bytes;
    int hstate; /* 0 none, 1 in a field, 2 in a value */
    size_t field_at, value_at;
    size_t body_cap;
    bool complete, want_continue, failed, in_message;
    bool headers_done; /* the arena is sealed: req points into it; trailers are dropped */
    int status;        /* on failure: the HTTP status to answer (400, 413, 431, 505) */
    char errmsg[128];  /* on failure: why */
} rn_http_reader;

/* max_body 0: no body is accepted at all. */
void rn_http_reader_init(rn_http_reader *rd, size_t max_header, size_t max_body);
void rn_http_reader_fini(rn_http_reader *rd);

/* Feed bytes (borrowed for the call). *used gets how many were consumed.
 * Returns 0: all consumed, the request is not complete yet; 1: a request is
 * complete (rd->req; the bytes after it are not consumed: after an upgrade
 * they belong to the new protocol); -1: the input is bad or over a limit
 * (rd->status, rd->errmsg; the connection must answer and close). Once 1 or
 * -1 is returned, feeding more returns the same until rn_http_reader_next.
 * rd->want_continue is set when the client waits for "100 Continue". */
int rn_http_reader_feed(rn_http_reader *rd, const uint8_t *data, size_t len, size_t *used);

/* Forget the request (its strings and body die) and read the next one. */
void rn_http_reader_next(rn_http_reader *rd);

/* True when part of a request has been read (a timeout then means a slow
 * client, not an idle one). */
bool rn_http_reader_in_message(const rn_http_reader *rd);

/* ---- The gateway --------------------------------------------------------------- */

typedef struct rn_http_conn rn_http_conn;
typedef struct rn_consumers rn_consumers;

typedef struct rn_gateway_metrics {
    uint64_t connections_total, connections_active;
    uint64_t requests_total;
    uint64_t responses[6]; /* by class: [1] 1xx … [5] 5xx */
    uint64_t sse_active, ws_active, sse_total, ws_total;
    uint64_t stream_messages_sent, stream_records_sent;
    uint64_t stream_budget_closes;
    uint64_t bad_requests;  /* malformed HTTP or WebSocket input */
    uint64_t busy_refusals; /* 503 for max.connections (reserve or at once) */
} rn_gateway_metrics;

typedef struct rn_gateway {
    rn_reactor *r;
    rn_broker *b;
    rn_acceptor acc; /* the HTTP listener (broker/net/listen.h) */
    rn_io_op tick_op, cancel_tick_op;
    struct __kernel_timespec tick_ts;
    bool tick_armed, cancel_tick_inflight, stopping;
    rn_http_conn *conns;
    unsigned n_conns;     /* every connection listed, the reserve's included */
    unsigned n_reserve;   /* connections let in over max.connections */
    unsigned reserve_cap; /* RN_HTTP_RESERVE_MIN..MAX: a tenth of max.connections */
    uint64_t next_id;
    uint32_t rr; /* round-robin partition for records with neither key nor partition */
    size_t max_body;
    size_t stream_budget;
    char *allowed_origins;              /* comma-separated; NULL: same host only */
    rn_consumers *consumers;            /* REST Proxy v2 consumer instances */
    struct rn_json_cache *render_cache; /* rendered batches shared by tails (json.h) */
    rn_gateway_metrics m;
} rn_gateway;

/* ---- Connections ------------------------------------------------------------------- */

enum rn_http_mode { RN_HTTP_MODE_HTTP, RN_HTTP_MODE_STREAM };

/* What a stream (SSE, WebSocket) does on the connection's events. Any may be
 * NULL. The stream's state is c->stream; on_close must free it. */
typedef struct rn_http_stream_ops {
    const char *kind; /* "sse", "ws": for logs and metrics */
    /* Bytes from the client (borrowed for the call). */
    void (*on_data)(rn_http_conn *c, const uint8_t *data, size_t len);
    /* Once a second. */
    void (*on_tick)(rn_http_conn *c, int64_t now_ms);
    /* The send queue went below half the stream budget. */
    void (*on_drain)(rn_http_conn *c);
    /* The connection is going away (peer closed, error, shutdown): release
     * everything; nothing may be written any more. */
    void (*on_close)(rn_http_conn *c);
    /* The gateway shuts down: say goodbye (e.g. WebSocket close 1001). */
    void (*on_shutdown)(rn_http_conn *c);
} rn_http_stream_ops;

struct rn_http_conn {
    rn_gateway *gw;
    rn_reactor *r;
    int fd;
    uint64_t id;
    char peer[64];
    int refs; /* the gateway's list + each op in flight + each pump on the stack */
    rn_io_op recv_op, send_op, cancel_op, retry_op;
    struct __kernel_timespec retry_ts;
    bool recv_armed, cancel_inflight, retry_armed;
    bool dead;        /* closed: no more reads or writes */
    bool read_paused; /* backpressure: input or output over its bound */
    bool busy;        /* a request is being answered; parsing waits */
    bool close_after; /* close once the queue is sent */
    bool lingering;   /* answered an error: discard input until EOF or the linger deadline */
    bool in_pump;
    bool head;       /* the current request is HEAD: answer without a body */
    bool over_limit; /* let in over max.connections (holds no slot): health and metrics only */
    bool reserve;    /* over_limit and holding a place in the reserve (until refused) */
    bool one_shot;   /* over_limit past the reserve: its health/metrics request, then close */
    int mode;
    rn_http_reader rd;
    uint8_t *in; /* received, not yet parsed */
    size_t in_len, in_off, in_cap;
    /* Output (net/sendq.h); each item a boundary when a message (HTTP
     * response, WebSocket frame sequence, SSE event) ends with it, so the
     * queue after it may be dropped without cutting a message in two. */
    rn_sendq sq;
    size_t out_sent_total; /* bytes ever sent: stall detection */
    rn_gw_client client;   /* this connection's requests to the broker */
    const rn_http_stream_ops *stream_ops;
    void *stream;
    char origin_allow[256]; /* Access-Control-Allow-Origin for this request, or "" */
    int64_t last_active_ms, request_start_ms, linger_until_ms, last_send_ms;
    rn_io_op kick_op;
    bool kick_armed;
    const char *fail_why; /* rn_http_conn_fail: close on the next loop turn */
    rn_http_conn *next, *prev;
};

/* A connection for the accepted socket fd (taken over: closed by the
 * connection), linked into gw and reading; over max.connections, one of the
 * reserve (see RN_HTTP_RESERVE_CONNS). NULL when refused (shutting down, the
 * reserve full too — answered 503 first —, OOM): fd is closed then. */
rn_http_conn *rn_http_conn_new(rn_gateway *gw, int fd);
/* Answer the fresh socket fd with 503 + Retry-After at once, unread, and
 * close it (taken over); counted as refused for reason. */
void rn_http_refuse_at_once(rn_gateway *gw, int fd, const char *reason);
/* Timeouts, lingering, stream ticks (called once a second by the gateway). */
void rn_http_conn_tick(rn_http_conn *c, int64_t now_ms);
/* The gateway shuts down: idle connections close, streams say goodbye and
 * close, a request in flight answers first (its long poll woken now). */
void rn_http_conn_shutdown(rn_http_conn *c);
/* A stream's queue is at its budget and nothing was sent for RN_HTTP_STALL_MS:
 * the client stopped reading. */
bool rn_http_conn_stalled(const rn_http_conn *c, int64_t now_ms);
/* Has the stream room for more (queue below the stream budget)? */
bool rn_http_conn_has_room(const rn_http_conn *c);

/* Hold / drop a reference on c (async work that needs c after a callback). */
void rn_http_conn_ref(rn_http_conn *c);
void rn_http_conn_unref(rn_http_conn *c);

/* Close now: the queue is dropped, the stream's on_close runs (so a stream
 * must not touch its state after calling this). */
void rn_http_conn_close(rn_http_conn *c, const char *why);
/* Close on the next loop turn (why: a static string): safe from any
 * callback, e.g. inside the WebSocket engine or a tail. */
void rn_http_conn_fail(rn_http_conn *c, const char *why);

/* Answer the current request: status line, standard headers (Content-Type,
 * Content-Length, CORS, Connection), extra_headers (each line ending in
 * "\r\n", or NULL) and body (copied). Ends the request: the next pipelined one
 * is read (or the connection closes when the client asked so). */
void rn_http_respond(rn_http_conn *c, int status, const char *content_type, const void *body,
                     size_t len, const char *extra_headers);

/* Answer with {"error_code":code,"message":msg} (application/json). */
void rn_http_respond_error(rn_http_conn *c, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Turn the connection into a stream with ops and state (owned from here on:
 * ops->on_close frees it). The current request ends, nothing more is parsed
 * as HTTP. head_block: the response head to send first (copied), e.g. a 200
 * with Transfer-Encoding: chunked, or a 101. */
void rn_http_start_stream(rn_http_conn *c, const rn_http_stream_ops *ops, void *state,
                          const char *head_block);

/* Queue raw bytes (copied). boundary: a message ends here. Returns 0,
 * -ENOMEM (nothing queued: the caller closes, see rn_http_conn_fail), or
 * -EPIPE when the connection is dead. */
int rn_http_write(rn_http_conn *c, const void *data, size_t len, bool boundary);
/* Queue one chunk of a chunked body: "<hex>\r\n" data "\r\n". */
int rn_http_write_chunk(rn_http_conn *c, const void *data, size_t len);

/* Mark the end of a message at the queue's tail. */
void rn_http_mark_boundary(rn_http_conn *c);

/* Drop what is queued after the first message boundary that has not been
 * fully sent (nothing partly sent is dropped), so an urgent message (a close)
 * goes next. Safe while a send is in flight (the in-flight part is kept). */
void rn_http_drop_queued(rn_http_conn *c);

/* Close once everything queued is sent. */
void rn_http_close_after_send(rn_http_conn *c);

/* The reason phrase of status ("Not Found"). */
const char *rn_http_reason(int status);

/* Is a request with this Origin allowed? origin NULL (not a browser): yes.
 * Default (no allow-list): only the same host:port as the Host header. */
bool rn_http_origin_allowed(const rn_gateway *gw, const char *origin, const char *host);

/* ---- Entry points of the other gateway files ------------------------------------------ */

/* rest.c: route one complete request on c (c->rd.req). It answers (now or
 * later) with rn_http_respond*, or turns c into a stream. */
void rn_rest_dispatch(rn_http_conn *c, rn_http_request *req);
/* Render the gateway's own metrics in Prometheus text (appended to buf). */
int rn_gateway_metrics_render(const rn_gateway *gw, char **buf, size_t *len, size_t *cap);

#endif
