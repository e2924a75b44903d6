/*
 * sse.c — Server-Sent Events: GET /topics/{t}/partitions/{p}/events?offset=
 *
 * A chunked text/event-stream response fed by a tail (tail.c) of one
 * partition. Each record is one event whose id is its offset, so a browser's
 * EventSource that reconnects sends Last-Event-ID and the stream resumes at
 * the next offset, no record lost or repeated:
 *
 *   id: 42
 *   event: record
 *   data: {"topic":"t","partition":0,"offset":42,"timestamp":…,"key":…,"value":…,"headers":[]}
 *
 * The first bytes are "retry: 2000" (reconnect delay) and a comment naming
 * the start; a ": heartbeat" comment goes out when nothing was written for
 * HEARTBEAT_MS, so proxies keep the connection and clients notice a dead one.
 * A tail that stops (topic deleted, bad offset) sends "event: error" and ends
 * the body. A client that stops reading is cut off like a WebSocket (the
 * queue sits at the stream budget with nothing sent for RN_HTTP_STALL_MS),
 * but with no close code to send: the socket is closed.
 *
 * Start: Last-Event-ID N → N + 1; else ?offset= beginning | end | N | s@MS
 * (default end); ?filter= a substring of key or value; the Accept header
 * picks the rendering as for /records (binary.v2 → base64).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/json.h"
#include "broker/gateway/sse.h"
#include "broker/gateway/tail.h"
#include "broker/logfmt.h"
#include "broker/net/conn.h"

#define HEARTBEAT_MS 15000

typedef struct sse_stream {
    rn_http_conn *c;
    rn_tail *tail;
    int64_t last_write_ms;
    bool ended;
    rn_strbuf out; /* the events of the answer being rendered */
} sse_stream;

/* Queue one chunk. Out of memory: the connection closes on the next loop
 * turn (never under the caller's feet). */
static void sse_write(sse_stream *s, const char *data, size_t len)
{
    if (rn_http_write_chunk(s->c, data, len) == 0)
        s->last_write_ms = rn_now_ms();
    else
        rn_http_conn_fail(s->c, "out of memory");
}

/* End the body (last chunk) and close once it is out. */
static void sse_end(sse_stream *s)
{
    if (s->ended)
        return;
    s->ended = true;
    rn_tail_free(s->tail);
    s->tail = NULL;
    if (rn_http_write(s->c, "0\r\n\r\n", 5, true) < 0)
        rn_http_conn_fail(s->c, "out of memory");
    else
        rn_http_close_after_send(s->c);
}

static void on_start(void *arg, int64_t offset)
{
    sse_stream *s = arg;
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "retry: 2000\n: from offset %" PRId64 "\n\n", offset);
    sse_write(s, buf, (size_t)n);
}

static int on_record(void *arg, const rn_json_rec *r)
{
    sse_stream *s = arg;
    rn_strbuf_printf(&s->out, "id: %" PRId64 "\nevent: record\ndata: ", r->offset);
    rn_strbuf_put(&s->out, r->json, r->len);
    rn_strbuf_put(&s->out, "\n\n", 2);
    return 0;
}

/* One chunk for the whole fetch answer: fewer syscalls and iovecs. */
static void on_records_end(void *arg, size_t n, int64_t next)
{
    sse_stream *s = arg;
    (void)next;
    if (s->out.failed) {
        rn_strbuf_free(&s->out);
        rn_http_conn_fail(s->c, "out of memory");
        return;
    }
    s->c->gw->m.stream_messages_sent += n;
    s->c->gw->m.stream_records_sent += n;
    sse_write(s, s->out.p, s->out.len);
    s->out.len = 0;
    if (s->out.cap > (64u << 10))
        rn_strbuf_free(&s->out); /* a large answer's buffer is not kept */
}

static void on_error(void *arg, int status, int code, const char *msg)
{
    sse_stream *s = arg;
    (void)status;
    json_t *j = json_pack("{s:i,s:s}", "error_code", code, "message", msg);
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (txt) {
        size_t tl = strlen(txt);
        char *buf = malloc(tl + 32);
        if (buf) {
            int n = snprintf(buf, tl + 32, "event: error\ndata: %s\n\n", txt);
            sse_write(s, buf, (size_t)n);
            free(buf);
        }
        free(txt);
    }
    sse_end(s);
}

static bool has_room(void *arg)
{
    sse_stream *s = arg;
    return !s->ended && rn_http_conn_has_room(s->c);
}

static const rn_tail_cbs tail_cbs = {
    .on_start = on_start,
    .on_record = on_record,
    .on_records_end = on_records_end,
    .on_error = on_error,
    .has_room = has_room,
};

static void s_on_data(rn_http_conn *c, const uint8_t *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len; /* an event stream reads nothing more from the client */
}

static void s_on_tick(rn_http_conn *c, int64_t now)
{
    sse_stream *s = c->stream;
    if (s->ended)
        return;
    if (rn_http_conn_stalled(c, now)) {
        c->gw->m.stream_budget_closes++;
        rn_logfmt(RN_INFO, "event stream cut off: send budget exceeded",
                  "conn=%llu peer=%s queued=%zu", (unsigned long long)c->id, c->peer, c->sq.bytes);
        rn_http_conn_close(c, "send budget exceeded");
        return;
    }
    if (now - s->last_write_ms >= HEARTBEAT_MS) {
        static const char hb[] = ": heartbeat\n\n";
        sse_write(s, hb, sizeof(hb) - 1);
    }
}

static void s_on_drain(rn_http_conn *c)
{
    sse_stream *s = c->stream;
    if (s->tail)
        rn_tail_resume(s->tail);
}

static void s_on_close(rn_http_conn *c)
{
    sse_stream *s = c->stream;
    rn_tail_free(s->tail);
    rn_strbuf_free(&s->out);
    c->gw->m.sse_active--;
    free(s);
}

static void s_on_shutdown(rn_http_conn *c)
{
    sse_end(c->stream);
}

static const rn_http_stream_ops sse_ops = {
    .kind = "sse",
    .on_data = s_on_data,
    .on_tick = s_on_tick,
    .on_drain = s_on_drain,
    .on_close = s_on_close,
    .on_shutdown = s_on_shutdown,
};

void rn_sse_start(rn_http_conn *c, rn_http_request *req, const char *topic, int32_t partition,
                  enum rn_gw_format fmt)
{
    char offset[64] = "", filter[RN_TAIL_MAX_FILTER + 1] = "";
    if (rn_http_query_get(req->query, "offset", offset, sizeof(offset)) < 0 ||
        rn_http_query_get(req->query, "filter", filter, sizeof(filter)) < 0) {
        rn_http_respond_error(c, 422, 42201, "offset or filter too long or badly encoded");
        return;
    }
    rn_tail_opts o = {.topic = topic,
                      .partition = partition,
                      .filter = filter,
                      .fmt = fmt,
                      .cache = c->gw->render_cache};
    const char *last = rn_http_header_get(req, "last-event-id");
    if (last && *last) {
        char err[160];
        int64_t id;
        if (rn_text_get_int(last, "Last-Event-ID", -1, INT64_MAX - 1, &id, err, sizeof(err)) < 0) {
            rn_http_respond_error(c, 422, 42201, "%s", err);
            return;
        }
        o.start = RN_TAIL_OFFSET;
        o.at = id + 1;
    } else if (rn_tail_parse_start(offset, &o.start, &o.at) < 0) {
        rn_http_respond_error(c, 422, 42201, "offset must be beginning, end, N or s@MS");
        return;
    }
    sse_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    s->c = c;
    s->last_write_ms = rn_now_ms();
    char peer[96];
    snprintf(peer, sizeof(peer), "sse %s", c->peer);
    int rc = rn_tail_new(&s->tail, c->r, peer, &o, &tail_cbs, s);
    if (rc < 0) {
        free(s);
        rn_http_respond_error(c, rc == -ENOMEM ? 503 : 422, rc == -ENOMEM ? 50301 : 42201,
                              "cannot start the stream: %s", rn_strerror(rc));
        return;
    }
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\n"
             "Server: runneld\r\n"
             "Content-Type: text/event-stream\r\n"
             "Cache-Control: no-cache\r\n"
             "X-Accel-Buffering: no\r\n"
             "Transfer-Encoding: chunked\r\n"
             "%s%s%s"
             "\r\n",
             c->origin_allow[0] ? "Access-Control-Allow-Origin: " : "", c->origin_allow,
             c->origin_allow[0] ? "\r\nVary: Origin\r\n" : "");
    c->origin_allow[0] = 0;
    c->gw->m.sse_active++;
    c->gw->m.sse_total++;
    rn_http_start_stream(c, &sse_ops, s, head);
}
