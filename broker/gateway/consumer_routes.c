/*
 * consumer_routes.c — the HTTP face of REST Proxy v2 consumer instances: the
 * routes under /consumers/ (consumers.h lists them), each parsed and checked
 * here and answered from the instance's state or started on it.
 *
 * How it fits: the instance itself — its group membership, its life, the
 * broker requests of a records poll or a commit — is consumers.c, behind
 * consumer_instance.h. This file holds no state of its own; it turns a
 * request into a call of that header and answers what goes wrong before
 * one (a bad body 400/422, an unknown instance 404, a busy one 409).
 *
 * Invariants: every request gets one answer, here or (for what waits on the
 * broker: records, offsets) from consumers.c once the instance holds it as
 * its waiter; the error bodies and codes are REST Proxy's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/consumer_instance.h"
#include "broker/gateway/consumers.h"
#include "broker/gateway/json.h"
#include "broker/logfmt.h"

#define MAX_INSTANCES      1000
#define MAX_TOPICS         100
#define DEFAULT_POLL_MS    1000
#define MAX_POLL_MS        30000
#define DEFAULT_POLL_BYTES (1u << 20)
#define MAX_POLL_BYTES     (16u << 20)

static void topics_free(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

/* Partitions (and offsets) as parallel arrays, as rn__cinst_commit takes
 * them; the topics are borrowed (from the request's JSON or the instance). */
typedef struct tps {
    char **topics;
    int32_t *parts;
    int64_t *offsets;
    size_t n;
} tps;

static void tps_free(tps *l)
{
    free(l->topics);
    free(l->parts);
    free(l->offsets);
}

/* Room for m entries. Errors: -ENOMEM. */
static int tps_alloc(tps *l, size_t m)
{
    l->topics = calloc(m ? m : 1, sizeof(*l->topics));
    l->parts = calloc(m ? m : 1, sizeof(*l->parts));
    l->offsets = calloc(m ? m : 1, sizeof(*l->offsets));
    return l->topics && l->parts && l->offsets ? 0 : -ENOMEM;
}

/* [{"topic","partition"[,"offset"]}] into *l (topics borrowed from arr); on
 * -EINVAL msg says why. Errors: -EINVAL, -ENOMEM. tps_free(l) either way. */
static int parse_tps(json_t *arr, bool with_offset, tps *l, char *msg, size_t msglen)
{
    l->n = 0;
    if (!json_is_array(arr) || json_array_size(arr) > 10000) {
        snprintf(msg, msglen, "expected an array of {\"topic\",\"partition\"%s}",
                 with_offset ? ",\"offset\"" : "");
        return -EINVAL;
    }
    size_t m = json_array_size(arr);
    if (tps_alloc(l, m) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < m; i++) {
        json_t *o = json_array_get(arr, i);
        json_t *t = json_object_get(o, "topic"), *p = json_object_get(o, "partition"),
               *off = json_object_get(o, "offset");
        if (!json_is_string(t)) {
            snprintf(msg, msglen, "entry %zu: expected {\"topic\",\"partition\"%s}", i,
                     with_offset ? ",\"offset\"" : "");
            return -EINVAL;
        }
        char what[64];
        int64_t pv, ov = 0;
        snprintf(what, sizeof(what), "entry %zu: \"partition\"", i);
        if (rn_json_get_int(p, what, 0, INT32_MAX, &pv, msg, msglen) < 0)
            return -EINVAL;
        snprintf(what, sizeof(what), "entry %zu: \"offset\"", i);
        if (with_offset && rn_json_get_int(off, what, 0, INT64_MAX, &ov, msg, msglen) < 0)
            return -EINVAL;
        l->topics[i] = (char *)json_string_value(t);
        l->parts[i] = (int32_t)pv;
        l->offsets[i] = ov;
    }
    l->n = m;
    return 0;
}

/* ---- Routes
 * ------------------------------------------------------------------------------------------ */

static json_t *body_json(rn_http_conn *c, rn_http_request *req, bool allow_empty)
{
    if (req->body_len == 0 && allow_empty)
        return json_object();
    char err[256];
    json_t *j = rn_json_parse(req->body, req->body_len, err, sizeof(err));
    if (!j)
        rn_http_respond_error(c, 400, 40001, "%s", err);
    return j;
}

static const char *jstr(json_t *o, const char *k, const char *def)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

static bool valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static void create_instance(rn_consumers *cs, rn_http_conn *c, rn_http_request *req,
                            const char *group)
{
    json_t *j = body_json(c, req, true);
    if (!j)
        return;
    static unsigned seq;
    char gen[64];
    snprintf(gen, sizeof(gen), "rest-consumer-%u", ++seq);
    const char *name = jstr(j, "name", gen);
    const char *format = jstr(j, "format", "binary");
    const char *reset = jstr(j, "auto.offset.reset", "latest");
    json_t *ac = json_object_get(j, "auto.commit.enable");
    bool auto_commit =
        !ac || (json_is_string(ac) && !strcmp(json_string_value(ac), "true")) || json_is_true(ac);
    if (!valid_name(group, RN_GROUP_ID_MAX) || !valid_name(name, RN_GROUP_MEMBER_ID_MAX)) {
        rn_http_respond_error(c, 422, 42201, "group and instance names: [A-Za-z0-9._-], not empty");
    } else if (strcmp(format, "json") && strcmp(format, "binary")) {
        rn_http_respond_error(c, 422, 42201, "format must be \"json\" or \"binary\"");
    } else if (strcmp(reset, "earliest") && strcmp(reset, "latest") && strcmp(reset, "smallest") &&
               strcmp(reset, "largest")) {
        rn_http_respond_error(c, 422, 42201, "auto.offset.reset must be earliest or latest");
    } else if (rn__cinst_find(cs, group, name)) {
        rn_http_respond_error(c, 409, 40902, "consumer instance %s already exists in group %s",
                              name, group);
    } else if (cs->n >= MAX_INSTANCES) {
        rn_http_respond_error(c, 429, 42901, "too many consumer instances (%d)", MAX_INSTANCES);
    } else {
        enum rn_gw_format fmt = strcmp(format, "json") ? RN_GW_FMT_BINARY : RN_GW_FMT_JSON;
        bool earliest = !strcmp(reset, "earliest") || !strcmp(reset, "smallest");
        if (!rn__cinst_new(cs, group, name, fmt, earliest, auto_commit)) {
            rn_http_respond_error(c, 503, 50301, "out of memory");
            json_decref(j);
            return;
        }
        const char *host = rn_http_header_get(req, "host");
        rn_strbuf uri = {0};
        rn_strbuf_printf(&uri, "http://%.200s/consumers/", host ? host : "localhost");
        rn_strbuf_puts(&uri, group);
        rn_strbuf_puts(&uri, "/instances/");
        rn_strbuf_puts(&uri, name);
        json_t *r = json_pack("{s:s,s:s}", "instance_id", name, "base_uri", uri.p ? uri.p : "");
        rn_strbuf_free(&uri);
        rn_http_respond_json(c, 200, RN_GW_CT_V2, r);
        json_decref(r);
        rn_logfmt(RN_INFO, "consumer instance created", "group=%s instance=%s format=%s", group,
                  name, format);
    }
    json_decref(j);
}

static void subscribe(cinst *in, rn_http_conn *c, rn_http_request *req)
{
    json_t *j = body_json(c, req, false);
    if (!j)
        return;
    json_t *t = json_object_get(j, "topics");
    if (!json_is_array(t) || json_array_size(t) == 0 || json_array_size(t) > MAX_TOPICS) {
        json_decref(j);
        rn_http_respond_error(c, 422, 42201, "expected {\"topics\": [1 to %d names]}", MAX_TOPICS);
        return;
    }
    size_t n = json_array_size(t);
    char **topics = calloc(n, sizeof(*topics));
    for (size_t i = 0; topics && i < n; i++) {
        const char *s = json_string_value(json_array_get(t, i));
        if (!s || !(topics[i] = strdup(s))) {
            topics_free(topics, n);
            json_decref(j);
            rn_http_respond_error(c, 422, 42201, "topics must be strings");
            return;
        }
    }
    json_decref(j);
    if (!topics) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    int rc = rn__cinst_subscribe(in, (const char *const *)topics, n);
    topics_free(topics, n);
    if (rc < 0) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    rn_http_respond(c, 204, NULL, NULL, 0, NULL);
}

static void get_subscription(cinst *in, rn_http_conn *c)
{
    json_t *arr = json_array();
    size_t n;
    const char *const *topics = rn_member_topics(&in->m, &n);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(topics[i]));
    json_t *j = json_pack("{s:o}", "topics", arr);
    rn_http_respond_json(c, 200, RN_GW_CT_V2, j);
    json_decref(j);
}

static void get_assignments(cinst *in, rn_http_conn *c)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < in->n_parts; i++)
        json_array_append_new(arr, json_pack("{s:s,s:i}", "topic", in->parts[i].topic, "partition",
                                             in->parts[i].partition));
    json_t *j = json_pack("{s:o}", "partitions", arr);
    rn_http_respond_json(c, 200, RN_GW_CT_V2, j);
    json_decref(j);
}

static void get_records(cinst *in, rn_http_conn *c, rn_http_request *req)
{
    char buf[32], err[160];
    int64_t timeout = DEFAULT_POLL_MS, max_bytes = DEFAULT_POLL_BYTES;
    int qt = rn_http_query_get(req->query, "timeout", buf, sizeof(buf));
    if (qt != 0 && rn_text_get_int(qt > 0 ? buf : NULL, "timeout", 0, MAX_POLL_MS, &timeout, err,
                                   sizeof(err)) < 0) {
        rn_http_respond_error(c, 422, 42201, "%s", err);
        return;
    }
    int qb = rn_http_query_get(req->query, "max_bytes", buf, sizeof(buf));
    if (qb != 0 && rn_text_get_int(qb > 0 ? buf : NULL, "max_bytes", 1, MAX_POLL_BYTES, &max_bytes,
                                   err, sizeof(err)) < 0) {
        rn_http_respond_error(c, 422, 42201, "%s", err);
        return;
    }
    if (!rn__cinst_start_op(in, c, OP_POLL_COMMITTED))
        return;
    rn__cinst_poll(in, (uint32_t)timeout, (uint32_t)max_bytes);
}

static void post_offsets(cinst *in, rn_http_conn *c, rn_http_request *req)
{
    json_t *j = body_json(c, req, true);
    if (!j)
        return;
    char msg[256];
    tps l = {0};
    int rc;
    json_t *arr = json_object_get(j, "offsets");
    if (arr) {
        rc = parse_tps(arr, true, &l, msg, sizeof(msg));
    } else {
        /* No body: commit every position reached so far. */
        rc = tps_alloc(&l, in->n_parts);
        for (size_t i = 0; rc == 0 && i < in->n_parts; i++)
            if (in->parts[i].position >= 0) {
                l.topics[l.n] = in->parts[i].topic;
                l.parts[l.n] = in->parts[i].partition;
                l.offsets[l.n] = in->parts[i].position;
                l.n++;
            }
    }
    if (rc < 0) {
        rn_http_respond_error(c, 422, 42201, "%s", rc == -ENOMEM ? "out of memory" : msg);
    } else if (l.n == 0) {
        rn_http_respond(c, 204, NULL, NULL, 0, NULL);
    } else if (rn__cinst_start_op(in, c, OP_COMMIT)) {
        rn__cinst_commit(in, l.topics, l.parts, l.offsets, l.n);
    }
    tps_free(&l);
    json_decref(j);
}

static void get_offsets(cinst *in, rn_http_conn *c)
{
    if (rn__cinst_start_op(in, c, OP_COMMITTED))
        rn__cinst_committed(in);
}

static void post_positions(cinst *in, rn_http_conn *c, rn_http_request *req, const char *where)
{
    json_t *j = body_json(c, req, false);
    if (!j)
        return;
    char msg[256];
    tps l = {0};
    bool seek = where == NULL;
    int rc =
        parse_tps(json_object_get(j, seek ? "offsets" : "partitions"), seek, &l, msg, sizeof(msg));
    if (rc < 0) {
        rn_http_respond_error(c, 422, 42201, "%s", rc == -ENOMEM ? "out of memory" : msg);
    } else {
        size_t i;
        for (i = 0; i < l.n; i++) {
            cpart *cp = NULL;
            for (size_t k = 0; k < in->n_parts; k++)
                if (in->parts[k].partition == l.parts[i] &&
                    !strcmp(in->parts[k].topic, l.topics[i]))
                    cp = &in->parts[k];
            if (!cp) {
                rn_http_respond_error(c, 409, 40903, "%s-%d is not assigned to this instance",
                                      l.topics[i], l.parts[i]);
                break;
            }
            cp->position = seek                          ? l.offsets[i]
                           : !strcmp(where, "beginning") ? POS_BEGINNING
                                                         : POS_END;
        }
        if (i == l.n)
            rn_http_respond(c, 204, NULL, NULL, 0, NULL);
    }
    tps_free(&l);
    json_decref(j);
}

void rn_consumers_dispatch(rn_consumers *cs, rn_http_conn *c, rn_http_request *req, char **seg,
                           int n)
{
    enum http_method m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    if (n == 2) {
        if (m == HTTP_POST)
            create_instance(cs, c, req, seg[1]);
        else
            rn_http_respond_error(c, 405, 40501, "POST /consumers/{group} creates an instance");
        return;
    }
    if (n < 4 || strcmp(seg[2], "instances") != 0) {
        rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", req->path);
        return;
    }
    cinst *in = rn__cinst_find(cs, seg[1], seg[3]);
    if (!in) {
        rn_http_respond_error(c, 404, 40403, "consumer instance %.128s not found in group %.128s",
                              seg[3], seg[1]);
        return;
    }
    in->last_used_ms = rn_now_ms();
    const char *what = n >= 5 ? seg[4] : "";
    if (n == 4 && m == HTTP_DELETE) {
        rn__cinst_leave(in);
        rn_http_respond(c, 204, NULL, NULL, 0, NULL);
    } else if (n == 5 && !strcmp(what, "subscription")) {
        if (m == HTTP_POST)
            subscribe(in, c, req);
        else if (m == HTTP_GET)
            get_subscription(in, c);
        else if (m == HTTP_DELETE) {
            rn__cinst_unsubscribe(in);
            rn_http_respond(c, 204, NULL, NULL, 0, NULL);
        } else
            rn_http_respond_error(c, 405, 40501, "subscription: GET, POST or DELETE");
    } else if (n == 5 && !strcmp(what, "assignments") && m == HTTP_GET) {
        get_assignments(in, c);
    } else if (n == 5 && !strcmp(what, "records") && m == HTTP_GET) {
        get_records(in, c, req);
    } else if (n == 5 && !strcmp(what, "offsets")) {
        if (m == HTTP_POST)
            post_offsets(in, c, req);
        else if (m == HTTP_GET)
            get_offsets(in, c);
        else
            rn_http_respond_error(c, 405, 40501, "offsets: GET or POST");
    } else if (n >= 5 && !strcmp(what, "positions") && m == HTTP_POST &&
               (n == 5 || (n == 6 && (!strcmp(seg[5], "beginning") || !strcmp(seg[5], "end"))))) {
        post_positions(in, c, req, n == 6 ? seg[5] : NULL);
    } else {
        rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", req->path);
    }
}
