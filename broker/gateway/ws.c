/*
 * ws.c — WebSocket: a sans-I/O engine on wslay's event API, the RFC 6455
 * handshake, and the /ws endpoint (subscribe, unsubscribe, produce).
 *
 * Engine. wslay pulls input through recv_callback and pushes output through
 * send_callback. Here recv_callback reads from the slice rn_ws_feed was given
 * and says WOULDBLOCK when it is used up; send_callback hands every byte to
 * the owner's write callback, which always takes all of it (it only queues),
 * so after wslay_event_send returns no frame is left half-written inside
 * wslay — which is why a zero-length write after it can mark a safe cut
 * point for the owner's queue.
 *
 * Endpoint messages (JSON text frames), each may carry an "id" echoed back:
 *   {"op":"subscribe","topic","partition":0,"offset":"beginning"|"end"|N|"s@MS",
 *    "filter":"text","format":"json"|"binary"}
 *        → {"type":"subscribed","topic","partition","offset"}
 *        → {"type":"records","topic","partition","records":[…],"next_offset"}…
 *   {"op":"unsubscribe"}                       → {"type":"unsubscribed"}
 *   {"op":"produce","topic","partition"?,"records":[{"key","value","headers"}]}
 *        → {"type":"ack","offsets":[{"partition","offset","error_code","error"}]}
 *   errors → {"type":"error","error_code","message"}
 * A string key or value in produce is stored as its text (not JSON-quoted);
 * other JSON as its compact text.
 *
 * One subscription per socket (a new subscribe replaces it), fed by a tail
 * (tail.c) paced by the socket's queue. Per-socket byte budget: a socket
 * whose queue sits at the budget with nothing sent for RN_HTTP_STALL_MS is
 * cut off — what is queued after the current message is dropped and a close
 * 1008 goes next; the socket is closed when that is out or after
 * CUT_LINGER_MS. Others are not slowed: each socket has its own tail.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "broker/gateway/json.h"
#include "broker/gateway/produce.h"
#include "broker/gateway/tail.h"
#include "broker/gateway/ws.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/net/conn.h"
#include "protocol/base64.h"

#define WS_GUID         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define PING_MS         30000
#define CLOSE_LINGER_MS 2000  /* our close sent: wait this long for the peer's */
#define CUT_LINGER_MS   10000 /* cut off: the close frame waits behind what the kernel holds */

/* ---- Engine -------------------------------------------------------------------------- */

struct rn_ws {
    wslay_event_context_ptr ctx;
    rn_ws_cbs cbs;
    void *arg;
    const uint8_t *in;
    size_t in_len;
    bool failed;    /* a write failed */
    bool proto_err; /* the peer broke the protocol (we closed) */
};

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
    rn_ws *ws = user_data;
    (void)flags;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    rn_ws *ws = user_data;
    (void)flags;
    if (ws->cbs.write(ws->arg, data, len) < 0) {
        ws->failed = true;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *user_data)
{
    rn_ws *ws = user_data;
    if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME)
        return; /* ping: wslay queued the pong; close: wslay answers; pong: nothing */
    if (a->opcode == WSLAY_TEXT_FRAME && !rn_utf8_valid(a->msg, a->msg_length)) {
        static const char why[] = "text message is not valid UTF-8";
        ws->proto_err = true;
        wslay_event_queue_close(ctx, RN_WS_INVALID_DATA, (const uint8_t *)why, sizeof(why) - 1);
        wslay_event_shutdown_read(ctx);
        return;
    }
    ws->cbs.on_message(ws->arg, a->opcode == WSLAY_TEXT_FRAME, a->msg, a->msg_length);
}

int rn_ws_new(rn_ws **out, size_t max_message, const rn_ws_cbs *cbs, void *arg)
{
    rn_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return -ENOMEM;
    ws->cbs = *cbs;
    ws->arg = arg;
    struct wslay_event_callbacks wc = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .on_msg_recv_callback = ws_msg_cb,
    };
    if (wslay_event_context_server_init(&ws->ctx, &wc, ws) != 0) {
        free(ws);
        return -ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, max_message);
    *out = ws;
    return 0;
}

void rn_ws_free(rn_ws *ws)
{
    if (!ws)
        return;
    wslay_event_context_free(ws->ctx);
    free(ws);
}

/* Write whatever wslay has queued, then mark the cut point. */
static int ws_flush(rn_ws *ws)
{
    if (wslay_event_want_write(ws->ctx)) {
        int rc = wslay_event_send(ws->ctx);
        if (rc != 0 || ws->failed)
            return rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EIO;
    }
    ws->cbs.write(ws->arg, NULL, 0);
    return 0;
}

int rn_ws_feed(rn_ws *ws, const uint8_t *data, size_t len)
{
    ws->in = data;
    ws->in_len = len;
    int rc = 0;
    if (wslay_event_get_read_enabled(ws->ctx)) {
        rc = wslay_event_recv(ws->ctx);
        /* Input after a close (or an error) is ignored. */
    }
    ws->in = NULL;
    ws->in_len = 0;
    int frc = ws_flush(ws);
    if (rc == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (rc != 0 || ws->failed)
        return ws->failed ? -EIO : -EPROTO;
    if (frc < 0)
        return frc;
    /* wslay answers a bad frame or an oversized message with a close of its
     * own (1002/1009) and stops reading: report it. */
    if (ws->proto_err ||
        (!wslay_event_get_read_enabled(ws->ctx) && !wslay_event_get_close_received(ws->ctx)))
        return -EPROTO;
    return 0;
}

int rn_ws_send(rn_ws *ws, bool text, const void *data, size_t len)
{
    if (wslay_event_get_close_sent(ws->ctx) || !wslay_event_get_write_enabled(ws->ctx))
        return -EPIPE;
    struct wslay_event_msg m = {
        .opcode = text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
        .msg = data,
        .msg_length = len,
    };
    int rc = wslay_event_queue_msg(ws->ctx, &m);
    if (rc == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (rc != 0)
        return -EPIPE;
    return ws_flush(ws);
}

int rn_ws_ping(rn_ws *ws)
{
    if (wslay_event_get_close_sent(ws->ctx))
        return -EPIPE;
    struct wslay_event_msg m = {.opcode = WSLAY_PING, .msg = (const uint8_t *)"", .msg_length = 0};
    int rc = wslay_event_queue_msg(ws->ctx, &m);
    if (rc != 0)
        return rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EPIPE;
    return ws_flush(ws);
}

int rn_ws_close(rn_ws *ws, uint16_t code, const char *reason)
{
    if (wslay_event_get_close_sent(ws->ctx))
        return -EPIPE;
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        rl = 123; /* a control frame carries at most 125 bytes */
    int rc = wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rl);
    if (rc != 0)
        return rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EPIPE;
    return ws_flush(ws);
}

bool rn_ws_close_sent(const rn_ws *ws)
{
    return wslay_event_get_close_sent(ws->ctx) != 0;
}

bool rn_ws_close_received(const rn_ws *ws, uint16_t *code)
{
    if (!wslay_event_get_close_received(ws->ctx))
        return false;
    if (code)
        *code = wslay_event_get_status_code_received(ws->ctx);
    return true;
}

bool rn_ws_done(const rn_ws *ws)
{
    return wslay_event_get_close_sent(ws->ctx) &&
           (wslay_event_get_close_received(ws->ctx) || ws->proto_err ||
            !wslay_event_get_read_enabled(ws->ctx));
}

/* ---- Handshake --------------------------------------------------------------------------- */

int rn_ws_accept_key(const char *key, char out[29])
{
    size_t kl = key ? strlen(key) : 0;
    uint8_t raw[24];
    size_t rl;
    if (kl != 24 || rn_base64_decode(key, kl, raw, &rl) < 0 || rl != 16)
        return -EINVAL;
    char buf[24 + sizeof(WS_GUID)];
    memcpy(buf, key, 24);
    memcpy(buf + 24, WS_GUID, sizeof(WS_GUID) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, 24 + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -EINVAL;
    rn_base64_encode(md, 20, out);
    return 0;
}

/* Does a comma-separated header value contain token (case-insensitive)? */
static bool has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t e = n;
        while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == tl && strncasecmp(v, token, tl) == 0)
            return true;
        v += n;
    }
    return false;
}

/* ---- Endpoint ------------------------------------------------------------------------------- */

typedef struct ws_session {
    rn_http_conn *c;
    rn_gateway *gw;
    rn_ws *ws;
    rn_tail *tail;
    char topic[256];
    int32_t partition;
    json_t *sub_id; /* the subscribe message's "id", echoed in "subscribed" */
    int64_t last_ping_ms;
    int64_t close_deadline_ms; /* 0 until we sent a close */
    rn_strbuf msg;             /* the records message being built */
} ws_session;

typedef struct ws_produce {
    ws_session *s;
    json_t *id;
} ws_produce;

static int ws_write(void *arg, const uint8_t *data, size_t len)
{
    ws_session *s = arg;
    return rn_http_write(s->c, data, len, len == 0);
}

/* Send one JSON text message. A failure (out of memory) closes the socket on
 * the next loop turn, so callers may go on using the session. */
static void send_text(ws_session *s, const char *txt, size_t len)
{
    int rc = rn_ws_send(s->ws, true, txt, len);
    if (rc == 0)
        s->gw->m.stream_messages_sent++;
    else if (rc != -EPIPE)
        rn_http_conn_fail(s->c, "websocket send failed");
}

static void send_json(ws_session *s, json_t *j)
{
    char *txt = json_dumps(j, JSON_COMPACT);
    if (!txt) {
        rn_http_conn_fail(s->c, "out of memory");
        return;
    }
    send_text(s, txt, strlen(txt));
    free(txt);
}

static void send_error(ws_session *s, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void send_error(ws_session *s, json_t *id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s,s:i,s:s}", "type", "error", "error_code", code, "message", msg);
    if (!j)
        return;
    if (id)
        json_object_set(j, "id", id);
    send_json(s, j);
    json_decref(j);
}

/* Start closing with code: stop the tail, send the close, and close the
 * socket when the peer answers or the deadline passes. */
static void begin_close(ws_session *s, uint16_t code, const char *reason, int64_t linger_ms)
{
    rn_tail_free(s->tail);
    s->tail = NULL;
    if (!s->close_deadline_ms)
        s->close_deadline_ms = rn_now_ms() + linger_ms;
    if (rn_ws_close(s->ws, code, reason) < 0 && !rn_ws_close_sent(s->ws))
        rn_http_conn_fail(s->c, "websocket close failed");
}

/* ---- Subscription (tail callbacks) ---- */

static void tail_on_start(void *arg, int64_t offset)
{
    ws_session *s = arg;
    json_t *j = json_pack("{s:s,s:s,s:i,s:I}", "type", "subscribed", "topic", s->topic, "partition",
                          s->partition, "offset", (json_int_t)offset);
    if (!j)
        return;
    if (s->sub_id)
        json_object_set(j, "id", s->sub_id);
    send_json(s, j);
    json_decref(j);
}

/* A "records" message is built as text around the cached renderings: no
 * JSON objects per subscriber. */
static int tail_on_record(void *arg, const rn_json_rec *r)
{
    ws_session *s = arg;
    if (s->msg.len == 0) {
        rn_strbuf_puts(&s->msg, "{\"type\":\"records\",\"topic\":");
        rn_strbuf_json_string(&s->msg, s->topic);
        rn_strbuf_printf(&s->msg, ",\"partition\":%d,\"records\":[", s->partition);
    } else {
        rn_strbuf_put(&s->msg, ",", 1);
    }
    rn_strbuf_put(&s->msg, r->json, r->len);
    return 0;
}

static void tail_on_records_end(void *arg, size_t n, int64_t next)
{
    ws_session *s = arg;
    rn_strbuf_printf(&s->msg, "],\"next_offset\":%" PRId64 "}", next);
    if (s->msg.failed) {
        rn_strbuf_free(&s->msg);
        rn_http_conn_fail(s->c, "out of memory");
        return;
    }
    s->gw->m.stream_records_sent += n;
    send_text(s, s->msg.p, s->msg.len);
    s->msg.len = 0;
    if (s->msg.cap > (64u << 10))
        rn_strbuf_free(&s->msg);
}

static void tail_on_error(void *arg, int status, int code, const char *msg)
{
    ws_session *s = arg;
    (void)status;
    send_error(s, s->sub_id, code, "subscription ended: %s", msg);
    rn_tail_free(s->tail);
    s->tail = NULL;
}

static bool tail_has_room(void *arg)
{
    ws_session *s = arg;
    return !s->close_deadline_ms && rn_http_conn_has_room(s->c);
}

static const rn_tail_cbs tail_cbs = {
    .on_start = tail_on_start,
    .on_record = tail_on_record,
    .on_records_end = tail_on_records_end,
    .on_error = tail_on_error,
    .has_room = tail_has_room,
};

static void op_subscribe(ws_session *s, json_t *m, json_t *id)
{
    json_t *jt = json_object_get(m, "topic");
    json_t *jp = json_object_get(m, "partition");
    json_t *jo = json_object_get(m, "offset");
    json_t *jf = json_object_get(m, "filter");
    json_t *jfmt = json_object_get(m, "format");
    if (!json_is_string(jt)) {
        send_error(s, id, 42201, "subscribe: \"topic\" must be a string");
        return;
    }
    char ierr[160];
    int64_t part = 0, at = 0;
    if (jp && rn_json_get_int(jp, "subscribe: \"partition\"", 0, INT32_MAX, &part, ierr,
                              sizeof(ierr)) < 0) {
        send_error(s, id, 42201, "%s", ierr);
        return;
    }
    if (jo && json_is_number(jo) &&
        rn_json_get_int(jo, "subscribe: \"offset\"", 0, INT64_MAX, &at, ierr, sizeof(ierr)) < 0) {
        send_error(s, id, 42201, "%s", ierr);
        return;
    }
    if (jf && !json_is_null(jf) && !json_is_string(jf)) {
        send_error(s, id, 42201, "subscribe: \"filter\" must be a string");
        return;
    }
    rn_tail_opts o = {.topic = json_string_value(jt),
                      .partition = (int32_t)part,
                      .filter = json_is_string(jf) ? json_string_value(jf) : NULL,
                      .fmt = RN_GW_FMT_JSON,
                      .cache = s->gw->render_cache};
    if (jfmt && json_is_string(jfmt) && !strcmp(json_string_value(jfmt), "binary"))
        o.fmt = RN_GW_FMT_BINARY;
    if (jo && json_is_number(jo)) {
        o.start = RN_TAIL_OFFSET;
        o.at = at;
    } else if (jo && !json_is_null(jo)) {
        if (!json_is_string(jo) ||
            rn_tail_parse_start(json_string_value(jo), &o.start, &o.at) < 0) {
            send_error(s, id, 42201,
                       "subscribe: \"offset\" must be \"beginning\", \"end\", N or \"s@MS\"");
            return;
        }
    } else {
        o.start = RN_TAIL_END;
    }
    if (o.filter && strlen(o.filter) > RN_TAIL_MAX_FILTER) {
        send_error(s, id, 42201, "subscribe: \"filter\" longer than %d bytes", RN_TAIL_MAX_FILTER);
        return;
    }
    const rn_topic_info *t = rn_metadata_find(s->gw->b->md, o.topic);
    if (!t) {
        send_error(s, id, 40401, "topic '%s' not found", o.topic);
        return;
    }
    if (o.partition < 0 || o.partition >= t->n_partitions) {
        send_error(s, id, 40402, "partition %d of topic '%s' not found", o.partition, o.topic);
        return;
    }
    rn_tail_free(s->tail);
    s->tail = NULL;
    s->msg.len = 0;
    snprintf(s->topic, sizeof(s->topic), "%s", o.topic);
    s->partition = o.partition;
    json_decref(s->sub_id);
    s->sub_id = id ? json_incref(id) : NULL;
    char peer[96];
    snprintf(peer, sizeof(peer), "ws %s", s->c->peer);
    int rc = rn_tail_new(&s->tail, s->c->r, peer, &o, &tail_cbs, s);
    if (rc < 0)
        send_error(s, id, rc == -ENOMEM ? 50001 : 42201, "subscribe: %s", rn_strerror(rc));
}

static void produce_done(void *arg, int status, int code, const char *msg, json_t *offsets)
{
    ws_produce *p = arg;
    ws_session *s = p->s;
    if (status == 0) {
        /* Dropped: the socket closed first (s is gone). */
        json_decref(p->id);
        free(p);
        return;
    }
    if (!offsets) {
        send_error(s, p->id, code, "produce: %s", msg);
    } else {
        json_t *j = json_pack("{s:s,s:O}", "type", "ack", "offsets", offsets);
        if (j) {
            if (p->id)
                json_object_set(j, "id", p->id);
            send_json(s, j);
            json_decref(j);
        }
    }
    json_decref(p->id);
    free(p);
}

static void op_produce(ws_session *s, json_t *m, json_t *id)
{
    json_t *jt = json_object_get(m, "topic");
    json_t *jp = json_object_get(m, "partition");
    if (!json_is_string(jt)) {
        send_error(s, id, 42201, "produce: \"topic\" must be a string");
        return;
    }
    char ierr[160];
    int64_t part = -1;
    if (jp && !json_is_null(jp) &&
        rn_json_get_int(jp, "produce: \"partition\"", 0, INT32_MAX, &part, ierr, sizeof(ierr)) <
            0) {
        send_error(s, id, 42201, "%s", ierr);
        return;
    }
    ws_produce *p = calloc(1, sizeof(*p));
    if (!p) {
        send_error(s, id, 50001, "out of memory");
        return;
    }
    p->s = s;
    p->id = id ? json_incref(id) : NULL;
    int status, code;
    char msg[512];
    /* p is freed here on error, else by produce_done (answered or dropped). */
    int rc = rn_gw_produce(s->gw, &s->c->client, json_string_value(jt), (int32_t)part,
                           json_object_get(m, "records"), RN_GW_FMT_JSON, true, produce_done, p,
                           &status, &code, msg, sizeof(msg));
    if (rc < 0) {
        send_error(s, id, code, "produce: %s", msg);
        json_decref(p->id);
        free(p);
    }
}

static void ws_on_message(void *arg, bool text, const uint8_t *data, size_t len)
{
    ws_session *s = arg;
    if (!text) {
        send_error(s, NULL, 42201, "binary messages are not understood; send JSON text");
        return;
    }
    if (s->close_deadline_ms)
        return;
    json_error_t je;
    json_t *m = json_loadb((const char *)data, len, 0, &je);
    if (!m || !json_is_object(m)) {
        send_error(s, NULL, 42201, "message must be a JSON object%s%s", m ? "" : ": ",
                   m ? "" : je.text);
        json_decref(m);
        return;
    }
    json_t *id = json_object_get(m, "id");
    const char *op = json_string_value(json_object_get(m, "op"));
    if (!op)
        send_error(s, id, 42201, "\"op\" must be a string");
    else if (!strcmp(op, "subscribe"))
        op_subscribe(s, m, id);
    else if (!strcmp(op, "unsubscribe")) {
        rn_tail_free(s->tail);
        s->tail = NULL;
        json_t *j = json_pack("{s:s}", "type", "unsubscribed");
        if (j) {
            if (id)
                json_object_set(j, "id", id);
            send_json(s, j);
            json_decref(j);
        }
    } else if (!strcmp(op, "produce"))
        op_produce(s, m, id);
    else
        send_error(s, id, 42201, "unknown op '%.64s' (subscribe, unsubscribe, produce)", op);
    json_decref(m);
}

static const rn_ws_cbs engine_cbs = {.on_message = ws_on_message, .write = ws_write};

/* ---- Stream ops ---- */

static void check_done(ws_session *s)
{
    if (rn_ws_done(s->ws))
        rn_http_close_after_send(s->c);
}

static void s_on_data(rn_http_conn *c, const uint8_t *data, size_t len)
{
    ws_session *s = c->stream;
    int rc = rn_ws_feed(s->ws, data, len);
    if (c->dead)
        return;
    if (rc == -EPROTO) {
        c->gw->m.bad_requests++;
        rn_tail_free(s->tail);
        s->tail = NULL;
        rn_http_close_after_send(c);
        return;
    }
    if (rc < 0) {
        rn_http_conn_close(c, "websocket engine failed");
        return;
    }
    uint16_t code;
    if (rn_ws_close_received(s->ws, &code)) {
        /* wslay answered the close; stop the tail and go once it is sent. */
        rn_tail_free(s->tail);
        s->tail = NULL;
    }
    check_done(s);
}

static void s_on_tick(rn_http_conn *c, int64_t now)
{
    ws_session *s = c->stream;
    if (s->close_deadline_ms) {
        if (now > s->close_deadline_ms)
            rn_http_conn_close(c, "websocket close timed out");
        return;
    }
    if (rn_http_conn_stalled(c, now)) {
        /* The client stopped reading: its queue reached the budget and
         * nothing left for a while. Cut it off with 1008. */
        c->gw->m.stream_budget_closes++;
        rn_logfmt(RN_INFO, "websocket cut off: send budget exceeded",
                  "conn=%llu peer=%s queued=%zu", (unsigned long long)c->id, c->peer, c->sq.bytes);
        rn_http_drop_queued(c);
        begin_close(s, RN_WS_POLICY, "send budget exceeded: client not reading", CUT_LINGER_MS);
        return;
    }
    if (now - s->last_ping_ms >= PING_MS) {
        s->last_ping_ms = now;
        rn_ws_ping(s->ws);
    }
}

static void s_on_drain(rn_http_conn *c)
{
    ws_session *s = c->stream;
    if (s->tail)
        rn_tail_resume(s->tail);
}

static void s_on_close(rn_http_conn *c)
{
    ws_session *s = c->stream;
    rn_tail_free(s->tail);
    rn_ws_free(s->ws);
    rn_strbuf_free(&s->msg);
    json_decref(s->sub_id);
    c->gw->m.ws_active--;
    free(s);
}

static void s_on_shutdown(rn_http_conn *c)
{
    ws_session *s = c->stream;
    begin_close(s, RN_WS_GOING_AWAY, "server shutting down", CLOSE_LINGER_MS);
    rn_http_close_after_send(c);
}

static const rn_http_stream_ops ws_ops = {
    .kind = "ws",
    .on_data = s_on_data,
    .on_tick = s_on_tick,
    .on_drain = s_on_drain,
    .on_close = s_on_close,
    .on_shutdown = s_on_shutdown,
};

void rn_ws_upgrade(rn_http_conn *c, rn_http_request *req)
{
    const char *upgrade = rn_http_header_get(req, "upgrade");
    const char *connection = rn_http_header_get(req, "connection");
    const char *version = rn_http_header_get(req, "sec-websocket-version");
    const char *key = rn_http_header_get(req, "sec-websocket-key");
    if (req->method != HTTP_GET) {
        rn_http_respond_error(c, 405, 40501, "/ws takes GET with Upgrade: websocket");
        return;
    }
    if (!upgrade || !has_token(upgrade, "websocket") || !connection ||
        !has_token(connection, "upgrade")) {
        static const char body[] =
            "{\"error_code\":42601,\"message\":\"a WebSocket upgrade is required\"}";
        rn_http_respond(c, 426, "application/json", body, sizeof(body) - 1,
                        "Upgrade: websocket\r\n");
        return;
    }
    if (!version || strcmp(version, "13") != 0) {
        static const char body[] =
            "{\"error_code\":42602,\"message\":\"only WebSocket version 13\"}";
        rn_http_respond(c, 426, "application/json", body, sizeof(body) - 1,
                        "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    char accept[29];
    if (rn_ws_accept_key(key, accept) < 0) {
        rn_http_respond_error(c, 400, 40001, "Sec-WebSocket-Key must be the base64 of 16 bytes");
        return;
    }
    ws_session *s = calloc(1, sizeof(*s));
    if (!s) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    s->c = c;
    s->gw = c->gw;
    s->last_ping_ms = rn_now_ms();
    if (rn_ws_new(&s->ws, c->gw->max_body, &engine_cbs, s) < 0) {
        free(s);
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n"
             "\r\n",
             accept);
    c->gw->m.ws_active++;
    c->gw->m.ws_total++;
    rn_http_start_stream(c, &ws_ops, s, head);
}
