/*
 * rest.c — the REST routes (DESIGN §7), Confluent REST Proxy v2 shapes.
 *
 *   GET    /healthz /readyz /metrics
 *   GET    /topics                          Metadata      → ["t1","t2"]
 *   POST   /topics                          CreateTopics  → 201 {"name","partitions",…}
 *   GET    /topics/{t}                      DescribeTopic → {"name","configs","overrides",
 *                                                            "partitions":[…]}
 *   DELETE /topics/{t}                      DeleteTopics  → 204
 *   POST   /topics/{t}[/partitions/{p}]     Produce       → {"offsets":[…]}
 *   GET    /topics/{t}/partitions[/{p}[/offsets]]  DescribeTopic (+ beginning/end offsets)
 *   GET    /topics/{t}/partitions/{p}/records      Fetch (stateless, ?offset=&timeout=&max_bytes=)
 *   GET    /topics/{t}/partitions/{p}/events       SSE (sse.c)
 *   GET    /ws                              WebSocket (ws.c)
 *   *      /consumers/…                     REST Proxy v2 consumer instances (consumers.c)
 *   GET    /groups[/{g}]                    ListGroups / DescribeGroup (with lag, for the console)
 *   GET    / and assets                     the web console (broker/gateway/console, rn_web_asset)
 *
 * Each route builds the request a native client would send and runs it
 * through the connection's in-process client; the answer comes back to a
 * rest_call and is rendered as JSON. A gateway reads the metadata table only
 * to pick partitions and to tell a missing topic from a missing partition —
 * as a native client uses its cached metadata.
 *
 * Records: an answer holds at most max_bytes of JSON (default 1 MiB, at most
 * 16 MiB), except that its first record always goes (Kafka's rule, so a large
 * record never stalls a reader); the client reads on from the last offset + 1.
 * A record larger than 16 MiB as JSON is a 422 (42202) that names its offset.
 * Whatever a batch claims (records_count, a zstd frame of 64 MiB), rendering
 * costs the answer's budget, not the batch (json.c). Numbers in bodies and
 * query strings are read with rn_json_get_int / rn_text_get_int: out of range
 * is a 422 that says so.
 *
 * Before routing: a browser's Origin must pass the allow-list (403), a
 * shutting-down gateway answers 503, OPTIONS is a CORS preflight.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/groups.h"
#include "broker/gateway/admin_routes.h"
#include "broker/gateway/consumers.h"
#include "broker/gateway/json.h"
#include "broker/gateway/produce.h"
#include "broker/gateway/sse.h"
#include "broker/gateway/ws.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/metrics.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"

#if defined(__has_include)
#if __has_include("broker/gateway/console/assets.h")
#include "broker/gateway/console/assets.h"
#define HAVE_WEB_ASSETS 1
#endif
#endif
#ifndef HAVE_WEB_ASSETS
/* broker/gateway/console/ may not be built into this binary: the console is then a 404. */
int rn_web_asset(const char *path, const uint8_t **data, size_t *len, const char **content_type);
#endif
#pragma weak rn_web_asset

#define MAX_SEGMENTS          8
#define MAX_RECORDS_BYTES     (16u << 20)
#define DEFAULT_RECORDS_BYTES (1u << 20)
#define MAX_TIMEOUT_MS        30000

enum rest_kind {
    K_LIST_TOPICS,
    K_CREATE_TOPIC,
    K_DESCRIBE_TOPIC,
    K_DELETE_TOPIC,
    K_PARTITIONS,
    K_PARTITION,
    K_PARTITION_OFFSETS,
    K_RECORDS,
    K_LIST_GROUPS,
    K_DESCRIBE_GROUP,
};

typedef struct rest_call {
    rn_gw_call call;
    rn_http_conn *c;
    enum rest_kind kind;
    int32_t partition;
    int64_t offset;
    size_t max_bytes; /* rendered records (K_RECORDS) */
    enum rn_gw_format fmt;
    char topic[256];
    /* K_PARTITIONS, K_PARTITION in a cluster: DescribeTopic's answer (packed)
     * while the leaders are asked for the offsets (ask_leaders). */
    uint8_t *desc;
    size_t desc_len;
    rn_io_op kick_op;
} rest_call;

/* Most partitions whose offsets a listing asks of their leaders (two
 * ListOffsets entries each, within the frame's entry limit). */
#define RN_REST_MAX_ASK (RN_FRAME_DEFAULT_MAX_ENTRIES / 2)

/* ---- Helpers ---------------------------------------------------------------------------- */

static void respond_rn_error(rn_http_conn *c, int err, bool partition_known, const char *msg)
{
    int status, code;
    rn_gw_error_map(err, partition_known, &status, &code);
    rn_http_respond_error(c, status, code, "%s", msg && *msg ? msg : rn_strerror(err));
}

static bool topic_exists(rn_http_conn *c, const char *topic)
{
    return rn_metadata_find(c->gw->b->md, topic) != NULL;
}

static void call_free(rest_call *rc)
{
    free(rc->desc);
    free(rc);
}

static void call_dropped(rn_gw_call *call)
{
    call_free((rest_call *)call);
}

static void rest_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                        unsigned n_slices);

static void send_call(rn_http_conn *c, rest_call *rc, Runnel__RequestHeader *h)
{
    char err[256] = "";
    h->client_id = "runnel-gateway";
    int rc2 = rn_gw_client_call(&c->client, h, NULL, 0, &rc->call, rest_answer, call_dropped, err,
                                sizeof(err));
    if (rc2 < 0) {
        call_free(rc);
        respond_rn_error(c, rc2, false, err);
    }
}

static rest_call *call_new(rn_http_conn *c, enum rest_kind kind, const char *topic)
{
    rest_call *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return NULL;
    }
    rc->c = c;
    rc->kind = kind;
    if (topic)
        snprintf(rc->topic, sizeof(rc->topic), "%s", topic);
    return rc;
}

/* The format a body is in (Content-Type), or -1 when unsupported. */
static int body_format(const char *ct)
{
    if (!ct || !*ct)
        return RN_GW_FMT_JSON;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    if (n == strlen(RN_GW_CT_BINARY_V2) && !strncasecmp(ct, RN_GW_CT_BINARY_V2, n))
        return RN_GW_FMT_BINARY;
    if ((n == strlen(RN_GW_CT_JSON_V2) && !strncasecmp(ct, RN_GW_CT_JSON_V2, n)) ||
        (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
        (n == strlen(RN_GW_CT_V2) && !strncasecmp(ct, RN_GW_CT_V2, n)))
        return RN_GW_FMT_JSON;
    return -1;
}

/* The rendering an Accept header asks for (binary only when named). */
static enum rn_gw_format accept_format(const char *accept)
{
    return accept && strstr(accept, "binary.v2") ? RN_GW_FMT_BINARY : RN_GW_FMT_JSON;
}

/* A partition number in a path segment: digits only, below 2^31. */
static bool parse_partition(const char *s, int32_t *out)
{
    if (!*s || strlen(s) > 10)
        return false;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

static int query_i64(rn_http_conn *c, const char *name, int64_t def, int64_t min, int64_t max,
                     int64_t *out)
{
    char buf[32], err[160];
    int rc = rn_http_query_get(c->rd.req.query, name, buf, sizeof(buf));
    if (rc == 0) {
        *out = def;
        return 0;
    }
    if (rc < 0) {
        rn_http_respond_error(c, 422, 42201,
                              "%s must be an integer in [%" PRId64 ", %" PRId64 "], got a value "
                              "too long or badly encoded",
                              name, min, max);
        return -1;
    }
    if (rn_text_get_int(buf, name, min, max, out, err, sizeof(err)) < 0) {
        rn_http_respond_error(c, 422, 42201, "%s", err);
        return -1;
    }
    return 0;
}

/* ---- Answers ------------------------------------------------------------------------------ */

static json_t *partition_json(const Runnel__PartitionDescription *pd, bool offsets)
{
    json_t *reps = json_array();
    for (size_t r = 0; r < pd->n_replicas; r++) {
        bool in_sync = false;
        for (size_t k = 0; k < pd->n_isr; k++)
            in_sync |= pd->isr[k] == pd->replicas[r];
        json_array_append_new(reps, json_pack("{s:i,s:b,s:b}", "broker", pd->replicas[r], "leader",
                                              pd->replicas[r] == pd->leader, "in_sync", in_sync));
    }
    json_t *o = json_pack("{s:i,s:i,s:o}", "partition", pd->partition, "leader", pd->leader,
                          "replicas", reps);
    if (o && offsets) {
        json_object_set_new(o, "beginning_offset", json_integer(pd->log_start_offset));
        json_object_set_new(o, "end_offset", json_integer(pd->high_watermark));
        json_object_set_new(o, "size_bytes", json_integer(pd->size_bytes));
    }
    return o;
}

static void answer_describe(rest_call *rc, Runnel__DescribeTopicResponse *d)
{
    rn_http_conn *c = rc->c;
    json_t *j = NULL;
    if (rc->kind == K_DESCRIBE_TOPIC || rc->kind == K_PARTITIONS) {
        json_t *parts = json_array();
        for (size_t i = 0; i < d->n_partitions; i++)
            json_array_append_new(parts,
                                  partition_json(d->partitions[i], rc->kind == K_PARTITIONS));
        if (rc->kind == K_PARTITIONS) {
            j = parts;
        } else {
            /* "configs": every effective setting, as REST Proxy v2 answers;
             * "overrides": the ones set on the topic itself (kafka-topics'
             * Configs), the others being the broker's defaults. */
            json_t *cfg = json_object(), *over = json_object();
            for (size_t i = 0; i < d->n_configs; i++) {
                json_object_set_new(cfg, d->configs[i]->key, json_string(d->configs[i]->value));
                for (size_t k = 0; k < d->n_overridden; k++)
                    if (strcmp(d->overridden[k], d->configs[i]->key) == 0)
                        json_object_set_new(over, d->configs[i]->key,
                                            json_string(d->configs[i]->value));
            }
            j = json_pack("{s:s,s:o,s:o,s:o}", "name", d->name, "configs", cfg, "overrides", over,
                          "partitions", parts);
        }
    } else {
        const Runnel__PartitionDescription *pd = NULL;
        for (size_t i = 0; i < d->n_partitions; i++)
            if (d->partitions[i]->partition == rc->partition)
                pd = d->partitions[i];
        if (!pd) {
            rn_http_respond_error(c, 404, 40402, "partition %d of topic '%s' not found",
                                  rc->partition, rc->topic);
            return;
        }
        if (rc->kind == K_PARTITION)
            j = partition_json(pd, true);
        else
            j = json_pack("{s:I,s:I}", "beginning_offset", (json_int_t)pd->log_start_offset,
                          "end_offset", (json_int_t)pd->high_watermark);
    }
    if (!j) {
        rn_http_respond_error(c, 500, 50001, "out of memory");
        return;
    }
    rn_http_respond_json(c, 200, RN_GW_CT_V2, j);
    json_decref(j);
}

static void answer_offsets(rest_call *rc, const Runnel__ListOffsetsResponse *lr)
{
    rn_http_conn *c = rc->c;
    if (!lr || lr->n_partitions != 2) {
        rn_http_respond_error(c, 500, 50001, "empty answer");
        return;
    }
    uint32_t ec = lr->partitions[0]->error_code ? lr->partitions[0]->error_code
                                                : lr->partitions[1]->error_code;
    if (ec == RN_E_UNKNOWN_TOPIC) {
        if (topic_exists(c, rc->topic))
            rn_http_respond_error(c, 404, 40402, "partition %d of topic '%s' not found",
                                  rc->partition, rc->topic);
        else
            rn_http_respond_error(c, 404, 40401, "topic '%s' not found", rc->topic);
        return;
    }
    if (ec) {
        respond_rn_error(c, -(int)ec, true, NULL);
        return;
    }
    json_t *j = json_pack("{s:I,s:I}", "beginning_offset", (json_int_t)lr->partitions[0]->offset,
                          "end_offset", (json_int_t)lr->partitions[1]->offset);
    if (!j) {
        rn_http_respond_error(c, 500, 50001, "out of memory");
        return;
    }
    rn_http_respond_json(c, 200, RN_GW_CT_V2, j);
    json_decref(j);
}

static void answer_records(rest_call *rc, Runnel__FetchResponse *fr, rn_slice *slices,
                           unsigned n_slices)
{
    rn_http_conn *c = rc->c;
    Runnel__FetchPartitionResponse *fp = fr->n_partitions ? fr->partitions[0] : NULL;
    if (!fp) {
        rn_http_respond_error(c, 500, 50001, "empty fetch answer");
        return;
    }
    if (fp->error_code) {
        int err = -(int)fp->error_code;
        if (fp->error_code == RN_E_OFFSET_OUT_OF_RANGE) {
            rn_http_respond_error(c, 422, 42201,
                                  "offset %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
                                  rc->offset, fp->log_start_offset, fp->high_watermark);
            return;
        }
        respond_rn_error(c, err, topic_exists(c, rc->topic), NULL);
        return;
    }
    rn_strbuf out = {0};
    rn_strbuf_put(&out, "[", 1);
    int64_t next;
    /* The rendered answer stays within max_bytes (one record more only when
     * it is the first); the client goes on from the last offset + 1. */
    rn_json_budget bud = {.max_bytes = rc->max_bytes, .overhead = 1 /* "," */};
    for (unsigned i = 0; i < n_slices && !bud.full; i++) {
        int n = rn_json_render_records(NULL, rc->topic, rc->partition, slices[i].data,
                                       slices[i].len, rc->offset, NULL, 0, rc->fmt, &bud, &next,
                                       rn_json_emit_to_array, &out);
        if (n == -RN_E_MESSAGE_TOO_LARGE) {
            rn_strbuf_free(&out);
            rn_http_respond_error(c, 422, 42202,
                                  "record at offset %" PRId64 " is larger than %u bytes as JSON; "
                                  "read on from offset %" PRId64,
                                  next, RN_GW_MAX_RECORD_JSON, next + 1);
            return;
        }
        if (n < 0) {
            rn_strbuf_free(&out);
            rn_http_respond_error(c, 500, 50001, "cannot render records: %s", rn_strerror(n));
            return;
        }
    }
    rn_strbuf_put(&out, "]", 1);
    if (out.failed) {
        rn_strbuf_free(&out);
        rn_http_respond_error(c, 500, 50001, "out of memory");
        return;
    }
    rn_http_respond(c, 200, rc->fmt == RN_GW_FMT_BINARY ? RN_GW_CT_BINARY_V2 : RN_GW_CT_JSON_V2,
                    out.p, out.len, NULL);
    rn_strbuf_free(&out);
}

/* ---- A partition's offsets from its leader ------------------------------------------------
 * DescribeTopic reports each partition's offsets from this broker's copy,
 * which on a follower can be behind or empty. In a cluster the partition
 * routes ask ListOffsets (earliest, latest) next, which the client routes to
 * each leader, and show those. The step is sent from a NOP (client.h: an
 * answer must not call into the broker); the connection is held meanwhile. */

static void send_call(rn_http_conn *c, rest_call *rc, Runnel__RequestHeader *h);

static void ask_leaders_kicked(rn_io_op *op, int res, uint32_t flags)
{
    rest_call *rc = RN_CONTAINER_OF(op, rest_call, kick_op);
    rn_http_conn *c = rc->c;
    (void)res;
    (void)flags;
    Runnel__DescribeTopicResponse *d =
        c->dead ? NULL : runnel__describe_topic_response__unpack(NULL, rc->desc_len, rc->desc);
    size_t n = 0; /* two entries per partition asked about */
    for (size_t i = 0; d && i < d->n_partitions; i++)
        n += 2 * (rc->kind == K_PARTITIONS || d->partitions[i]->partition == rc->partition);
    Runnel__ListOffsetsPartition *lp = calloc(n ? n : 1, sizeof(*lp));
    Runnel__ListOffsetsPartition **lpp = calloc(n ? n : 1, sizeof(*lpp));
    if (!d || !lp || !lpp) {
        if (!c->dead)
            rn_http_respond_error(c, 503, 50301, "out of memory");
        call_free(rc);
    } else {
        size_t m = 0;
        for (size_t i = 0; i < d->n_partitions; i++) {
            int32_t p = d->partitions[i]->partition;
            if (rc->kind != K_PARTITIONS && p != rc->partition)
                continue;
            for (int k = 0; k < 2; k++, m++) {
                runnel__list_offsets_partition__init(&lp[m]);
                lp[m].topic = rc->topic;
                lp[m].partition = p;
                lp[m].timestamp = k ? -1 : -2;
                lpp[m] = &lp[m];
            }
        }
        Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
        lr.n_partitions = n;
        lr.partitions = lpp;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__LIST_OFFSETS;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
        h.list_offsets = &lr;
        send_call(c, rc, &h); /* encoded (copied) before it returns */
    }
    free(lp);
    free(lpp);
    if (d)
        runnel__describe_topic_response__free_unpacked(d, NULL);
    rn_http_conn_unref(c);
}

/* 0: the leaders are being asked (rc lives on); < 0: answer from d as it is. */
static int ask_leaders(rest_call *rc, const Runnel__DescribeTopicResponse *d)
{
    rc->desc_len = runnel__describe_topic_response__get_packed_size(d);
    rc->desc = malloc(rc->desc_len ? rc->desc_len : 1);
    if (!rc->desc)
        return -ENOMEM;
    runnel__describe_topic_response__pack(d, rc->desc);
    struct io_uring_sqe *sqe = rn_io_sqe(rc->c->r->io, &rc->kick_op, ask_leaders_kicked);
    if (!sqe) {
        free(rc->desc);
        rc->desc = NULL;
        return -EAGAIN;
    }
    io_uring_prep_nop(sqe);
    rn_http_conn_ref(rc->c);
    return 0;
}

/* The leaders' offsets into the described partitions, then the answer. A
 * partition whose leader did not answer shows -1 (unknown), not this
 * broker's copy. */
static void answer_leader_offsets(rest_call *rc, const Runnel__ListOffsetsResponse *lr)
{
    Runnel__DescribeTopicResponse *d =
        runnel__describe_topic_response__unpack(NULL, rc->desc_len, rc->desc);
    if (!d) {
        rn_http_respond_error(rc->c, 500, 50001, "out of memory");
        return;
    }
    for (size_t i = 0; i < d->n_partitions; i++) {
        Runnel__PartitionDescription *pd = d->partitions[i];
        pd->log_start_offset = pd->high_watermark = -1;
        /* The answer lists (earliest, latest) pairs in the order asked. */
        for (size_t k = 0; lr && k + 1 < lr->n_partitions; k += 2) {
            const Runnel__ListOffsetsPartitionResponse *e = lr->partitions[k];
            const Runnel__ListOffsetsPartitionResponse *l = lr->partitions[k + 1];
            if (e->partition != pd->partition || l->partition != pd->partition)
                continue;
            if (!e->error_code && !l->error_code) {
                pd->log_start_offset = e->offset;
                pd->high_watermark = l->offset;
            }
            break;
        }
    }
    answer_describe(rc, d);
    runnel__describe_topic_response__free_unpacked(d, NULL);
}

static void rest_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                        unsigned n_slices)
{
    rest_call *rc = (rest_call *)call;
    rn_http_conn *c = rc->c;
    bool known = topic_exists(c, rc->topic);
    if (hdr->error_code) {
        respond_rn_error(c, -(int)hdr->error_code,
                         known && rc->kind != K_DESCRIBE_TOPIC && rc->kind != K_PARTITIONS,
                         hdr->error_message);
        goto out;
    }
    switch (rc->kind) {
    case K_LIST_TOPICS: {
        Runnel__MetadataResponse *m = hdr->metadata;
        json_t *arr = json_array();
        for (size_t i = 0; m && i < m->n_topics; i++)
            if (!m->topics[i]->is_internal && !m->topics[i]->error_code)
                json_array_append_new(arr, json_string(m->topics[i]->name));
        rn_http_respond_json(c, 200, RN_GW_CT_V2, arr);
        json_decref(arr);
        break;
    }
    case K_CREATE_TOPIC:
    case K_DELETE_TOPIC: {
        Runnel__TopicResult *tr = NULL;
        if (rc->kind == K_CREATE_TOPIC && hdr->create_topics && hdr->create_topics->n_topics)
            tr = hdr->create_topics->topics[0];
        if (rc->kind == K_DELETE_TOPIC && hdr->delete_topics && hdr->delete_topics->n_topics)
            tr = hdr->delete_topics->topics[0];
        if (!tr) {
            rn_http_respond_error(c, 500, 50001, "empty answer");
            break;
        }
        if (tr->error_code) {
            respond_rn_error(c, -(int)tr->error_code, false, tr->error_message);
            break;
        }
        if (rc->kind == K_DELETE_TOPIC) {
            rn_http_respond(c, 204, NULL, NULL, 0, NULL);
            break;
        }
        const rn_topic_info *t = rn_metadata_find(c->gw->b->md, rc->topic);
        json_t *j =
            json_pack("{s:s,s:i,s:i}", "name", rc->topic, "partitions", t ? t->n_partitions : 0,
                      "replication_factor", t ? t->replication_factor : 0);
        rn_http_respond_json(c, 201, RN_GW_CT_V2, j);
        json_decref(j);
        break;
    }
    case K_PARTITION_OFFSETS:
        answer_offsets(rc, hdr->list_offsets);
        break;
    case K_PARTITIONS:
    case K_PARTITION:
        if (rc->desc) {
            answer_leader_offsets(rc, hdr->list_offsets);
            break;
        }
        /* (Above RN_REST_MAX_ASK partitions the listing keeps the local
         * values: one ListOffsets has at most RN_FRAME_DEFAULT_MAX_ENTRIES.) */
        if (hdr->describe_topic && c->gw->b->quorum && hdr->describe_topic->n_partitions &&
            hdr->describe_topic->n_partitions <= RN_REST_MAX_ASK &&
            ask_leaders(rc, hdr->describe_topic) == 0) {
            for (unsigned i = 0; i < n_slices; i++)
                rn_slice_release(&slices[i]);
            return; /* rc lives on (ask_leaders_kicked) */
        }
        /* fall through */
    case K_DESCRIBE_TOPIC:
        if (!hdr->describe_topic)
            rn_http_respond_error(c, 500, 50001, "empty answer");
        else
            answer_describe(rc, hdr->describe_topic);
        break;
    case K_LIST_GROUPS: {
        json_t *arr = json_array();
        Runnel__ListGroupsResponse *lg = hdr->list_groups;
        for (size_t i = 0; lg && i < lg->n_groups; i++)
            json_array_append_new(
                arr, json_pack("{s:s,s:s,s:i}", "group_id", lg->groups[i]->group_id, "state",
                               lg->groups[i]->state, "members", (int)lg->groups[i]->members));
        rn_http_respond_json(c, 200, RN_GW_CT_V2, arr);
        json_decref(arr);
        break;
    }
    case K_DESCRIBE_GROUP: {
        Runnel__DescribeGroupResponse *d = hdr->describe_group;
        if (!d) {
            rn_http_respond_error(c, 500, 50001, "empty answer");
            break;
        }
        json_t *members = json_array(), *parts = json_array();
        for (size_t i = 0; i < d->n_members; i++) {
            Runnel__GroupMemberDescription *m = d->members[i];
            json_t *topics = json_array(), *asg = json_array();
            for (size_t k = 0; k < m->n_subscribed_topics; k++)
                json_array_append_new(topics, json_string(m->subscribed_topics[k]));
            for (size_t k = 0; k < m->n_assignment; k++) {
                json_t *ps = json_array();
                for (size_t q = 0; q < m->assignment[k]->n_partitions; q++)
                    json_array_append_new(ps, json_integer(m->assignment[k]->partitions[q]));
                json_array_append_new(asg, json_pack("{s:s,s:o}", "topic", m->assignment[k]->topic,
                                                     "partitions", ps));
            }
            json_array_append_new(
                members, json_pack("{s:s,s:s,s:s,s:i,s:o,s:o}", "member_id", m->member_id,
                                   "client_id", m->client_id, "host", m->host, "member_epoch",
                                   m->member_epoch, "topics", topics, "assignment", asg));
        }
        for (size_t i = 0; i < d->n_partitions; i++) {
            Runnel__GroupPartitionLag *l = d->partitions[i];
            json_array_append_new(
                parts, json_pack("{s:s,s:i,s:I,s:I,s:I,s:s?}", "topic", l->topic, "partition",
                                 l->partition, "committed_offset", (json_int_t)l->committed_offset,
                                 "log_end_offset", (json_int_t)l->log_end_offset, "lag",
                                 (json_int_t)l->lag, "member_id",
                                 l->member_id && *l->member_id ? l->member_id : NULL));
        }
        json_t *j = json_pack("{s:s,s:s,s:i,s:s,s:o,s:o}", "group_id", d->group_id, "state",
                              d->state, "group_epoch", d->group_epoch, "assignor", d->assignor,
                              "members", members, "partitions", parts);
        rn_http_respond_json(c, 200, RN_GW_CT_V2, j);
        json_decref(j);
        break;
    }
    case K_RECORDS:
        if (!hdr->fetch)
            rn_http_respond_error(c, 500, 50001, "empty answer");
        else
            answer_records(rc, hdr->fetch, slices, n_slices);
        break;
    }
out:
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    call_free(rc);
}

/* ---- Routes ---------------------------------------------------------------------------------- */

static void get_topics(rn_http_conn *c)
{
    rest_call *rc = call_new(c, K_LIST_TOPICS, NULL);
    if (!rc)
        return;
    Runnel__MetadataRequest mr = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__METADATA;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
    h.metadata = &mr;
    send_call(c, rc, &h);
}

static void post_topics(rn_http_conn *c, rn_http_request *req)
{
    if (body_format(rn_http_header_get(req, "content-type")) < 0) {
        rn_http_respond_error(c, 415, 41501, "expected application/json");
        return;
    }
    char err[256];
    json_t *j = rn_json_parse(req->body, req->body_len, err, sizeof(err));
    if (!j) {
        rn_http_respond_error(c, 400, 40001, "%s", err);
        return;
    }
    json_t *name = json_object_get(j, "name");
    json_t *parts = json_object_get(j, "partitions");
    json_t *rf = json_object_get(j, "replication_factor");
    json_t *cfg = json_object_get(j, "configs");
    if (!json_is_object(j) || !json_is_string(name) ||
        (cfg && !json_is_null(cfg) && !json_is_object(cfg))) {
        json_decref(j);
        rn_http_respond_error(c, 422, 42201,
                              "expected {\"name\": string, \"partitions\": int, "
                              "\"replication_factor\": int, \"configs\": {string: string}}");
        return;
    }
    /* Absent or -1: the broker's default. */
    int64_t n_parts = 0, n_rf = 0;
    char ierr[160];
    if ((parts &&
         rn_json_get_int(parts, "partitions", -1, INT32_MAX, &n_parts, ierr, sizeof(ierr)) < 0) ||
        (rf &&
         rn_json_get_int(rf, "replication_factor", -1, INT16_MAX, &n_rf, ierr, sizeof(ierr)) < 0)) {
        json_decref(j);
        rn_http_respond_error(c, 422, 42201, "%s", ierr);
        return;
    }
    size_t nc = cfg && json_is_object(cfg) ? json_object_size(cfg) : 0;
    if (nc > 64) {
        json_decref(j);
        rn_http_respond_error(c, 422, 42201, "at most 64 configs");
        return;
    }
    Runnel__NewTopic__ConfigsEntry ce[64], *cep[64];
    char vals[64][64];
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(cfg, key, v)
    {
        runnel__new_topic__configs_entry__init(&ce[k]);
        ce[k].key = (char *)key;
        if (json_is_string(v))
            ce[k].value = (char *)json_string_value(v);
        else if (json_is_integer(v)) {
            snprintf(vals[k], sizeof(vals[k]), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            ce[k].value = vals[k];
        } else {
            json_decref(j);
            rn_http_respond_error(c, 422, 42201, "config '%.64s' must be a string", key);
            return;
        }
        cep[k] = &ce[k];
        k++;
    }
    rest_call *rc = call_new(c, K_CREATE_TOPIC, json_string_value(name));
    if (!rc) {
        json_decref(j);
        return;
    }
    Runnel__NewTopic nt = RUNNEL__NEW_TOPIC__INIT;
    Runnel__NewTopic *ntp = &nt;
    nt.name = (char *)json_string_value(name);
    nt.num_partitions = (int32_t)n_parts;
    nt.replication_factor = (int32_t)n_rf;
    nt.n_configs = k;
    nt.configs = cep;
    Runnel__CreateTopicsRequest cr = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
    cr.n_topics = 1;
    cr.topics = &ntp;
    cr.timeout_ms = 30000;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__CREATE_TOPICS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_CREATE_TOPICS;
    h.create_topics = &cr;
    send_call(c, rc, &h);
    json_decref(j);
}

static void describe(rn_http_conn *c, enum rest_kind kind, const char *topic, int32_t partition)
{
    rest_call *rc = call_new(c, kind, topic);
    if (!rc)
        return;
    rc->partition = partition;
    Runnel__DescribeTopicRequest dr = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
    dr.name = rc->topic;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__DESCRIBE_TOPIC;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_TOPIC;
    h.describe_topic = &dr;
    send_call(c, rc, &h);
}

/* GET …/partitions/{p}/offsets: ListOffsets earliest and latest, which in a
 * cluster the client asks of the partition's leader (a follower's own copy
 * can be behind or empty). */
static void partition_offsets(rn_http_conn *c, const char *topic, int32_t partition)
{
    rest_call *rc = call_new(c, K_PARTITION_OFFSETS, topic);
    if (!rc)
        return;
    rc->partition = partition;
    Runnel__ListOffsetsPartition lp[2];
    Runnel__ListOffsetsPartition *lpp[2] = {&lp[0], &lp[1]};
    for (int i = 0; i < 2; i++) {
        runnel__list_offsets_partition__init(&lp[i]);
        lp[i].topic = rc->topic;
        lp[i].partition = partition;
        lp[i].timestamp = i ? -1 : -2;
    }
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    lr.n_partitions = 2;
    lr.partitions = lpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__LIST_OFFSETS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &lr;
    send_call(c, rc, &h);
}

static void delete_topic(rn_http_conn *c, const char *topic)
{
    rest_call *rc = call_new(c, K_DELETE_TOPIC, topic);
    if (!rc)
        return;
    char *names[1] = {rc->topic};
    Runnel__DeleteTopicsRequest dr = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
    dr.n_topics = 1;
    dr.topics = names;
    dr.timeout_ms = 30000;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__DELETE_TOPICS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DELETE_TOPICS;
    h.delete_topics = &dr;
    send_call(c, rc, &h);
}

static void produce_done(void *arg, int status, int code, const char *msg, json_t *offsets)
{
    rn_http_conn *c = arg;
    if (status == 0)
        return; /* the connection is gone */
    if (!offsets) {
        rn_http_respond_error(c, status, code, "%s", msg);
        return;
    }
    /* Every record failed: the first failure is the answer's status. */
    int all_failed_code = 0;
    size_t i;
    json_t *o;
    json_array_foreach(offsets, i, o)
    {
        json_t *ec = json_object_get(o, "error_code");
        if (json_is_null(ec)) {
            all_failed_code = 0;
            break;
        }
        if (!all_failed_code)
            all_failed_code = (int)json_integer_value(ec);
    }
    json_t *j = json_pack("{s:O,s:n,s:n}", "offsets", offsets, "key_schema_id", "value_schema_id");
    rn_http_respond_json(c, all_failed_code ? all_failed_code / 100 : 200, RN_GW_CT_V2, j);
    json_decref(j);
}

static void post_records(rn_http_conn *c, rn_http_request *req, const char *topic,
                         int32_t partition)
{
    int fmt = body_format(rn_http_header_get(req, "content-type"));
    if (fmt < 0) {
        rn_http_respond_error(c, 415, 41501,
                              "Content-Type must be application/vnd.kafka.json.v2+json, "
                              "application/vnd.kafka.binary.v2+json or application/json");
        return;
    }
    char err[256];
    json_t *j = rn_json_parse(req->body, req->body_len, err, sizeof(err));
    if (!j) {
        rn_http_respond_error(c, 400, 40001, "%s", err);
        return;
    }
    int status, code;
    char msg[512];
    int rc = rn_gw_produce(c->gw, &c->client, topic, partition, json_object_get(j, "records"),
                           (enum rn_gw_format)fmt, false, produce_done, c, &status, &code, msg,
                           sizeof(msg));
    json_decref(j);
    if (rc < 0)
        rn_http_respond_error(c, status, code, "%s", msg);
}

static void get_records(rn_http_conn *c, const char *topic, int32_t partition)
{
    char buf[32];
    if (rn_http_query_get(c->rd.req.query, "offset", buf, sizeof(buf)) <= 0) {
        rn_http_respond_error(c, 422, 42201, "offset is required: ?offset=N");
        return;
    }
    int64_t offset, timeout, max_bytes;
    if (query_i64(c, "offset", 0, 0, INT64_MAX, &offset) < 0 ||
        query_i64(c, "timeout", 0, 0, MAX_TIMEOUT_MS, &timeout) < 0 ||
        query_i64(c, "max_bytes", DEFAULT_RECORDS_BYTES, 1, MAX_RECORDS_BYTES, &max_bytes) < 0)
        return;
    rest_call *rc = call_new(c, K_RECORDS, topic);
    if (!rc)
        return;
    rc->partition = partition;
    rc->offset = offset;
    rc->max_bytes = (size_t)max_bytes;
    rc->fmt = accept_format(rn_http_header_get(&c->rd.req, "accept"));
    Runnel__FetchPartition fp = RUNNEL__FETCH_PARTITION__INIT;
    Runnel__FetchPartition *fpp = &fp;
    fp.topic = rc->topic;
    fp.partition = partition;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = (uint32_t)max_bytes;
    fp.current_leader_epoch = -1;
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -1;
    fr.max_wait_ms = (uint32_t)timeout;
    fr.min_bytes = 1;
    fr.max_bytes = (uint32_t)max_bytes;
    fr.n_partitions = 1;
    fr.partitions = &fpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    h.fetch = &fr;
    send_call(c, rc, &h);
}

static void get_metrics(rn_http_conn *c)
{
    char *buf = NULL;
    size_t len = 0;
    if (rn_metrics_render(c->gw->b, &buf, &len) < 0) {
        rn_http_respond_error(c, 500, 50001, "out of memory");
        return;
    }
    size_t cap = len + 1;
    if (rn_gateway_metrics_render(c->gw, &buf, &len, &cap) < 0) {
        free(buf);
        rn_http_respond_error(c, 500, 50001, "out of memory");
        return;
    }
    rn_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len, NULL);
    free(buf);
}

static void get_asset(rn_http_conn *c, const char *path)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    const char *ct = NULL;
    if (rn_web_asset &&
        (rn_web_asset(path, &data, &len, &ct) == 0 ||
         (!strcmp(path, "/") && rn_web_asset("/index.html", &data, &len, &ct) == 0))) {
        rn_http_respond(c, 200, ct ? ct : "application/octet-stream", data, len,
                        "Cache-Control: no-cache\r\n");
        return;
    }
    rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", path);
}

static void preflight(rn_http_conn *c)
{
    rn_http_respond(c, 204, NULL, NULL, 0,
                    "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                    "Access-Control-Allow-Headers: Content-Type, Accept, Last-Event-ID\r\n"
                    "Access-Control-Max-Age: 600\r\n");
}

static void method_not_allowed(rn_http_conn *c, rn_http_request *req, const char *allow)
{
    char extra[96];
    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    char body[160];
    int n = snprintf(body, sizeof(body),
                     "{\"error_code\":40501,\"message\":\"method %s not allowed here\"}",
                     req->method_name);
    rn_http_respond(c, 405, "application/json", body, (size_t)n, extra);
}

static void route_topics(rn_http_conn *c, rn_http_request *req, char **seg, int n)
{
    enum http_method m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    if (n == 1) {
        if (m == HTTP_GET)
            get_topics(c);
        else if (m == HTTP_POST)
            post_topics(c, req);
        else
            method_not_allowed(c, req, "GET, POST");
        return;
    }
    const char *topic = seg[1];
    if (n == 2) {
        if (m == HTTP_GET)
            describe(c, K_DESCRIBE_TOPIC, topic, -1);
        else if (m == HTTP_DELETE)
            delete_topic(c, topic);
        else if (m == HTTP_POST)
            post_records(c, req, topic, -1);
        else
            method_not_allowed(c, req, "GET, POST, DELETE");
        return;
    }
    if (strcmp(seg[2], "partitions") != 0 || n > 5) {
        rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", req->path);
        return;
    }
    if (n == 3) {
        if (m == HTTP_GET)
            describe(c, K_PARTITIONS, topic, -1);
        else
            method_not_allowed(c, req, "GET");
        return;
    }
    int32_t p;
    if (!parse_partition(seg[3], &p)) {
        rn_http_respond_error(c, 404, 40402, "partition '%.32s' of topic '%s' not found", seg[3],
                              topic);
        return;
    }
    if (n == 4) {
        if (m == HTTP_GET)
            describe(c, K_PARTITION, topic, p);
        else if (m == HTTP_POST)
            post_records(c, req, topic, p);
        else
            method_not_allowed(c, req, "GET, POST");
        return;
    }
    if (m != HTTP_GET) {
        method_not_allowed(c, req, "GET");
        return;
    }
    if (!strcmp(seg[4], "offsets")) {
        partition_offsets(c, topic, p);
    } else if (!strcmp(seg[4], "records")) {
        get_records(c, topic, p);
    } else if (!strcmp(seg[4], "events")) {
        const rn_topic_info *t = rn_metadata_find(c->gw->b->md, topic);
        if (req->method == HTTP_HEAD)
            method_not_allowed(c, req, "GET"); /* a stream has no end to measure */
        else if (!t)
            rn_http_respond_error(c, 404, 40401, "topic '%s' not found", topic);
        else if (p >= t->n_partitions)
            rn_http_respond_error(c, 404, 40402, "partition %d of topic '%s' not found", p, topic);
        else
            rn_sse_start(c, req, topic, p, accept_format(rn_http_header_get(req, "accept")));
    } else {
        rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", req->path);
    }
}

void rn_rest_dispatch(rn_http_conn *c, rn_http_request *req)
{
    rn_gateway *gw = c->gw;
    const char *origin = rn_http_header_get(req, "origin");
    const char *host = rn_http_header_get(req, "host");
    c->origin_allow[0] = 0;
    if (!rn_http_origin_allowed(gw, origin, host)) {
        rn_http_respond_error(c, 403, 40301, "origin '%.200s' is not allowed", origin);
        return;
    }
    if (origin && gw->allowed_origins)
        snprintf(c->origin_allow, sizeof(c->origin_allow), "%s", origin);
    if (req->method == HTTP_OPTIONS) {
        preflight(c);
        return;
    }
    if (gw->stopping || gw->r->stopping) {
        rn_http_respond_error(c, 503, 50301, "broker is shutting down");
        return;
    }
    /* Split the decoded path; empty segments (double or trailing slashes)
     * are skipped. The copy is bounded by the header limit. */
    char path[RN_HTTP_MAX_HEADER_BYTES];
    snprintf(path, sizeof(path), "%s", req->path);
    char *seg[MAX_SEGMENTS + 1];
    int n = 0;
    for (char *save = NULL, *s = strtok_r(path, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (n == MAX_SEGMENTS) {
            n++;
            break;
        }
        seg[n++] = s;
    }
    enum http_method m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    if (n > MAX_SEGMENTS) {
        rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", req->path);
        return;
    }
    if (n == 1 && !strcmp(seg[0], "healthz")) {
        if (m != HTTP_GET)
            method_not_allowed(c, req, "GET");
        else
            rn_http_respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
        return;
    }
    if (n == 1 && !strcmp(seg[0], "readyz")) {
        if (m != HTTP_GET)
            method_not_allowed(c, req, "GET");
        else if (!gw->b->ready)
            rn_http_respond_error(c, 503, 50301, "storage recovery is not done");
        else if (__atomic_load_n(&gw->b->parts_storage_error, __ATOMIC_RELAXED) > 0) {
            /* Appends fail somewhere (part/sweep.c marks and clears): not
             * ready to take writes, though reads still work. */
            int full = __atomic_load_n(&gw->b->parts_disk_full, __ATOMIC_RELAXED);
            int bad = __atomic_load_n(&gw->b->parts_storage_error, __ATOMIC_RELAXED);
            rn_http_respond_error(c, 503, 50302, "%d partition%s cannot write: %s", bad,
                                  bad == 1 ? "" : "s",
                                  full ? "no space left on device" : "storage error");
        } else
            rn_http_respond(c, 200, "application/json", "{\"status\":\"ready\"}", 18, NULL);
        return;
    }
    if (n == 1 && !strcmp(seg[0], "metrics")) {
        if (m != HTTP_GET)
            method_not_allowed(c, req, "GET");
        else
            get_metrics(c);
        return;
    }
    if (n == 1 && !strcmp(seg[0], "ws")) {
        rn_ws_upgrade(c, req);
        return;
    }
    /* /brokers, /topics/{t}/configs, /groups/{g}/reset, DELETE /groups/{g}: admin_routes.c */
    if (rn_admin_route(c, req, seg, n))
        return;
    if (n >= 1 && !strcmp(seg[0], "topics")) {
        route_topics(c, req, seg, n);
        return;
    }
    if (n >= 1 && n <= 2 && !strcmp(seg[0], "groups")) {
        if (m != HTTP_GET) {
            method_not_allowed(c, req, "GET");
            return;
        }
        rest_call *rc = call_new(c, n == 1 ? K_LIST_GROUPS : K_DESCRIBE_GROUP, NULL);
        if (!rc)
            return;
        Runnel__ListGroupsRequest lq = RUNNEL__LIST_GROUPS_REQUEST__INIT;
        Runnel__DescribeGroupRequest dq = RUNNEL__DESCRIBE_GROUP_REQUEST__INIT;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        if (n == 1) {
            h.api = RUNNEL__API__LIST_GROUPS;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_GROUPS;
            h.list_groups = &lq;
        } else {
            dq.group_id = seg[1];
            h.api = RUNNEL__API__DESCRIBE_GROUP;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_GROUP;
            h.describe_group = &dq;
        }
        send_call(c, rc, &h);
        return;
    }
    if (n >= 1 && !strcmp(seg[0], "consumers")) {
        rn_consumers_dispatch(gw->consumers, c, req, seg, n);
        return;
    }
    if (m == HTTP_GET) {
        get_asset(c, req->path);
        return;
    }
    rn_http_respond_error(c, 404, 40400, "no such endpoint: %.200s", req->path);
}
