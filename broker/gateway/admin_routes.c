/*
 * admin_routes.c — the REST routes behind the console's admin pages (DESIGN §7):
 * brokers, the cluster view (quorum, brokers, partition health), a topic's
 * configs with what is overridden, a group's offset reset and deletion. The routes are listed in
 * admin_routes.h.
 *
 * How it fits: like rest.c, each route builds the request a native client would
 * send (Metadata, DescribeTopic, AlterConfigs, DescribeGroup, ListOffsets,
 * CommitOffsets, DeleteGroup) and runs it through the connection's in-process
 * client; nothing here touches storage or group state. The metadata table is
 * read for what a native client keeps cached: whether a topic exists, and which
 * of its configs are topic-level overrides (DescribeTopic reports effective
 * values only).
 *
 * A group reset is `runnel group reset` over HTTP, in steps:
 *
 *   R_GROUP    DescribeGroup: refused (409) while the group has active members,
 *              whose next commit would undo the reset; remembers what is
 *              committed now, for the preview's "current" column.
 *   R_TOPIC    DescribeTopic of each topic in turn: its partitions.
 *   R_RANGE    ListOffsets (earliest and latest) of every partition: the range a
 *              new offset is kept in. Asked of the leaders (in a cluster the
 *              client routes each partition to its leader), never read from
 *              this broker's copy, which on a follower can be behind or empty.
 *   R_TIMES    ListOffsets of every partition (only for "to": "datetime").
 *   R_COMMIT   CommitOffsets as an admin (no member id), only with "execute".
 *
 * Invariants:
 *   1. A step's request is sent from a NOP completion (kick), never from inside
 *      the previous answer (client.h: answers must not call into the broker).
 *   2. The job holds a reference on its connection from start to its answer, so
 *      a NOP that completes after the client left finds the connection, sees it
 *      dead, and frees the job. Exactly one of: an answer was written, or the
 *      connection was dead.
 *   3. Nothing is committed unless "execute" is true and every partition's new
 *      offset was computed: a preview and an execute of the same request show the
 *      same plan.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/groups.h"
#include "broker/gateway/admin_routes.h"
#include "broker/gateway/json.h"
#include "broker/meta/metadata.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/partition_health.h"
#include "protocol/container_of.h"

#define MAX_RESET_TOPICS     32
#define MAX_RESET_PARTITIONS 100000 /* one request's plan: bounds the ListOffsets and commit */
#define MAX_CONFIG_VALUE     1024

/* ---- One-request routes ------------------------------------------------------------------ */

enum admin_kind { A_BROKERS, A_CONFIGS, A_ALTER_CONFIG, A_DELETE_GROUP };

typedef struct admin_call {
    rn_gw_call call; /* first: the client's list links it */
    rn_http_conn *c;
    enum admin_kind kind;
    char topic[256];
} admin_call;

static void respond_rn_error(rn_http_conn *c, int err, const char *msg)
{
    int status, code;
    rn_gw_error_map(err, false, &status, &code);
    rn_http_respond_error(c, status, code, "%s", msg && *msg ? msg : rn_strerror(err));
}

static void admin_dropped(rn_gw_call *call)
{
    free(call);
}

/* Is key one of topic t's topic-level overrides (metadata table)? */
static bool is_override(const rn_topic_info *t, const char *key)
{
    for (uint32_t i = 0; t && i < t->n_configs; i++)
        if (!strcmp(t->config_keys[i], key))
            return true;
    return false;
}

static void answer_brokers(rn_http_conn *c, const Runnel__MetadataResponse *m)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < m->n_brokers; i++) {
        const Runnel__Broker *br = m->brokers[i];
        int64_t replicas = 0, leaders = 0;
        for (size_t t = 0; t < m->n_topics; t++)
            for (size_t p = 0; p < m->topics[t]->n_partitions; p++) {
                const Runnel__PartitionMetadata *pm = m->topics[t]->partitions[p];
                leaders += pm->leader == br->node_id;
                for (size_t r = 0; r < pm->n_replicas; r++)
                    replicas += pm->replicas[r] == br->node_id;
            }
        json_array_append_new(arr,
                              json_pack("{s:i,s:s,s:i,s:s?,s:b,s:I,s:I}", "node_id", br->node_id,
                                        "host", br->host, "port", (int)br->port, "rack",
                                        br->rack && *br->rack ? br->rack : NULL, "controller",
                                        br->node_id == m->controller_id, "partitions",
                                        (json_int_t)replicas, "leaders", (json_int_t)leaders));
    }
    size_t n_topics = 0;
    for (size_t t = 0; t < m->n_topics; t++)
        n_topics += !m->topics[t]->is_internal && !m->topics[t]->error_code;
    json_t *j = json_pack("{s:s,s:i,s:I,s:o}", "cluster_id", m->cluster_id ? m->cluster_id : "",
                          "controller_id", m->controller_id, "topics", (json_int_t)n_topics,
                          "brokers", arr);
    if (!j) {
        rn_http_respond_error(c, 500, 50001, "out of memory");
        return;
    }
    rn_http_respond_json(c, 200, RN_GW_CT_V2, j);
    json_decref(j);
}

/* Effective values from DescribeTopic; is_default from the metadata table's
 * overrides, so the answer is right whatever DescribeTopic reports besides. */
static void answer_configs(admin_call *ac, const Runnel__DescribeTopicResponse *d)
{
    rn_http_conn *c = ac->c;
    const rn_topic_info *t = rn_metadata_find(c->gw->b->md, ac->topic);
    json_t *arr = json_array();
    for (size_t i = 0; i < d->n_configs; i++) {
        const char *k = d->configs[i]->key;
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:b}", "name", k, "value", d->configs[i]->value,
                                        "is_default", !is_override(t, k)));
    }
    rn_http_respond_json(c, 200, RN_GW_CT_V2, arr);
    json_decref(arr);
}

static void admin_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                         unsigned n_slices)
{
    admin_call *ac = (admin_call *)call;
    rn_http_conn *c = ac->c;
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    if (hdr->error_code == RN_E_UNKNOWN_TOPIC && ac->topic[0]) {
        rn_http_respond_error(c, 404, 40401, "topic '%s' does not exist", ac->topic);
    } else if (hdr->error_code) {
        respond_rn_error(c, -(int)hdr->error_code, hdr->error_message);
    } else {
        switch (ac->kind) {
        case A_BROKERS:
            if (hdr->metadata)
                answer_brokers(c, hdr->metadata);
            else
                rn_http_respond_error(c, 500, 50001, "empty answer");
            break;
        case A_CONFIGS:
            if (hdr->describe_topic)
                answer_configs(ac, hdr->describe_topic);
            else
                rn_http_respond_error(c, 500, 50001, "empty answer");
            break;
        case A_ALTER_CONFIG:
        case A_DELETE_GROUP:
            rn_http_respond(c, 204, NULL, NULL, 0, NULL);
            break;
        }
    }
    free(ac);
}

static void admin_send(rn_http_conn *c, enum admin_kind kind, const char *topic,
                       Runnel__RequestHeader *h)
{
    admin_call *ac = calloc(1, sizeof(*ac));
    if (!ac) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    ac->c = c;
    ac->kind = kind;
    if (topic)
        snprintf(ac->topic, sizeof(ac->topic), "%s", topic);
    char err[256] = "";
    h->client_id = "runnel-gateway";
    int rc = rn_gw_client_call(&c->client, h, NULL, 0, &ac->call, admin_answer, admin_dropped, err,
                               sizeof(err));
    if (rc < 0) {
        free(ac);
        respond_rn_error(c, rc, err);
    }
}

static void get_brokers(rn_http_conn *c)
{
    Runnel__MetadataRequest mr = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__METADATA;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
    h.metadata = &mr;
    admin_send(c, A_BROKERS, NULL, &h);
}

static void get_configs(rn_http_conn *c, const char *topic)
{
    Runnel__DescribeTopicRequest dr = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
    dr.name = (char *)topic;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__DESCRIBE_TOPIC;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_TOPIC;
    h.describe_topic = &dr;
    admin_send(c, A_CONFIGS, topic, &h);
}

/* PUT (set, body {"value": string|integer}) or DELETE (back to the default). */
static void alter_config(rn_http_conn *c, rn_http_request *req, const char *topic, const char *name,
                         bool set)
{
    char value[MAX_CONFIG_VALUE + 1] = "";
    if (set) {
        char err[256];
        json_t *j = rn_json_parse(req->body, req->body_len, err, sizeof(err));
        if (!j) {
            rn_http_respond_error(c, 400, 40001, "%s", err);
            return;
        }
        json_t *v = json_is_object(j) ? json_object_get(j, "value") : NULL;
        if (json_is_string(v) && json_string_length(v) <= MAX_CONFIG_VALUE) {
            snprintf(value, sizeof(value), "%s", json_string_value(v));
        } else if (json_is_integer(v)) {
            snprintf(value, sizeof(value), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else {
            json_decref(j);
            rn_http_respond_error(c, 422, 42201, "expected {\"value\": string} (at most %d bytes)",
                                  MAX_CONFIG_VALUE);
            return;
        }
        json_decref(j);
    }
    Runnel__AlterConfigsRequest__SetConfigsEntry se =
        RUNNEL__ALTER_CONFIGS_REQUEST__SET_CONFIGS_ENTRY__INIT;
    Runnel__AlterConfigsRequest__SetConfigsEntry *sep = &se;
    char *del[1] = {(char *)name};
    Runnel__AlterConfigsRequest ar = RUNNEL__ALTER_CONFIGS_REQUEST__INIT;
    ar.topic = (char *)topic;
    if (set) {
        se.key = (char *)name;
        se.value = value;
        ar.n_set_configs = 1;
        ar.set_configs = &sep;
    } else {
        ar.n_delete_configs = 1;
        ar.delete_configs = del;
    }
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__ALTER_CONFIGS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_ALTER_CONFIGS;
    h.alter_configs = &ar;
    admin_send(c, A_ALTER_CONFIG, topic, &h);
}

static void delete_group(rn_http_conn *c, const char *group)
{
    Runnel__DeleteGroupRequest dr = RUNNEL__DELETE_GROUP_REQUEST__INIT;
    dr.group_id = (char *)group;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__DELETE_GROUP;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DELETE_GROUP;
    h.delete_group = &dr;
    admin_send(c, A_DELETE_GROUP, NULL, &h);
}

/* ---- The cluster view --------------------------------------------------------------------- */

/* GET /cluster: what `runnel cluster status` shows (ClusterStatus: the
 * quorum, the brokers, partition health) and every topic's partitions with
 * leader, replicas and ISR (Metadata), each flagged under_replicated and
 * offline by partition_health.h's rule against the brokers the metadata
 * image holds fenced (the gateway runs on reactor 0, the image's owner).
 * Both requests go out at once (the in-process client keeps several in
 * flight); the answer is written when both are back, or nothing when the
 * client left (both dropped). At most MAX_CLUSTER_PARTITIONS partitions are
 * listed ("partitions_listed" says how many; the counts stay whole). */

#define MAX_CLUSTER_PARTITIONS 2000

typedef struct cluster_job {
    rn_gw_call status_call, md_call; /* RN_CONTAINER_OF finds the job from either */
    rn_http_conn *c;
    int pending;
    json_t *status, *topics;
    int64_t listed;
    int err_status, err_code;
    char err[256];
} cluster_job;

static json_t *id_array(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static json_t *cluster_partition_json(const Runnel__ClusterPartition *p)
{
    return json_pack("{s:s,s:i,s:i,s:i,s:o,s:o}", "topic", p->topic, "partition", p->partition,
                     "leader", p->leader, "leader_epoch", p->leader_epoch, "replicas",
                     id_array(p->replicas, p->n_replicas), "isr", id_array(p->isr, p->n_isr));
}

static json_t *cluster_status_json(const Runnel__ClusterStatusResponse *r)
{
    json_t *voters = json_array(), *brokers = json_array(), *under = json_array(),
           *offline = json_array();
    for (size_t i = 0; voters && i < r->n_voters; i++)
        json_array_append_new(voters,
                              json_pack("{s:i,s:s,s:I,s:I}", "id", r->voters[i]->id, "endpoint",
                                        r->voters[i]->endpoint, "match_offset",
                                        (json_int_t)r->voters[i]->match_offset, "last_fetch_ms",
                                        (json_int_t)r->voters[i]->last_fetch_ms));
    for (size_t i = 0; brokers && i < r->n_brokers; i++) {
        const Runnel__ClusterBroker *br = r->brokers[i];
        json_array_append_new(
            brokers,
            json_pack("{s:i,s:s,s:I,s:b,s:I,s:b}", "id", br->id, "endpoint", br->endpoint, "epoch",
                      (json_int_t)br->epoch, "fenced", br->fenced, "last_heartbeat_ms",
                      (json_int_t)br->last_heartbeat_ms, "controller", br->id == r->leader_id));
    }
    for (size_t i = 0; under && i < r->n_under_replicated; i++)
        json_array_append_new(under, cluster_partition_json(r->under_replicated[i]));
    for (size_t i = 0; offline && i < r->n_offline; i++)
        json_array_append_new(offline, cluster_partition_json(r->offline[i]));
    return json_pack("{s:i,s:s,s:i,s:i,s:b,s:I,s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:o,s:o}", "node_id",
                     r->node_id, "role", r->role, "controller_id", r->leader_id, "epoch", r->epoch,
                     "clustered", r->clustered, "high_watermark", (json_int_t)r->high_watermark,
                     "log_end_offset", (json_int_t)r->log_end_offset, "applied_offset",
                     (json_int_t)r->applied_offset, "voters", voters, "brokers", brokers,
                     "partitions", (json_int_t)r->partitions, "under_replicated_count",
                     (json_int_t)r->under_replicated_count, "offline_count",
                     (json_int_t)r->offline_count, "under_replicated", under, "offline", offline);
}

/* Topics with their partitions, at most MAX_CLUSTER_PARTITIONS of them in
 * all; flags are added in cluster_finish, once the fenced brokers are known. */
static json_t *cluster_topics_json(const Runnel__MetadataResponse *m, int64_t *listed)
{
    json_t *arr = json_array();
    *listed = 0;
    for (size_t t = 0; arr && t < m->n_topics; t++) {
        const Runnel__TopicMetadata *tm = m->topics[t];
        if (tm->error_code)
            continue;
        json_t *parts = json_array();
        for (size_t p = 0; parts && p < tm->n_partitions && *listed < MAX_CLUSTER_PARTITIONS; p++) {
            const Runnel__PartitionMetadata *pm = tm->partitions[p];
            json_array_append_new(parts,
                                  json_pack("{s:i,s:i,s:i,s:o,s:o}", "partition", pm->partition,
                                            "leader", pm->leader, "leader_epoch", pm->leader_epoch,
                                            "replicas", id_array(pm->replicas, pm->n_replicas),
                                            "isr", id_array(pm->isr, pm->n_isr)));
            ++*listed;
        }
        json_array_append_new(arr, json_pack("{s:s,s:b,s:i,s:o}", "name", tm->name, "internal",
                                             tm->is_internal, "partition_count",
                                             (int)tm->n_partitions, "partitions", parts));
    }
    return arr;
}

/* A JSON array of ids back into ints (at most cap; the rest ignored). */
static size_t ids_of(json_t *a, int32_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(a) && n < cap; i++)
        out[n++] = (int32_t)json_integer_value(json_array_get(a, i));
    return n;
}

static void cluster_finish(cluster_job *j)
{
    rn_http_conn *c = j->c;
    if (j->err_status) {
        rn_http_respond_error(c, j->err_status, j->err_code, "%s", j->err);
        goto out;
    }
    if (!j->status || !j->topics) {
        rn_http_respond_error(c, 500, 50001, "out of memory");
        goto out;
    }
    /* Fenced as the image has it: the rule's other input, from the same
     * applied state as ClusterStatus's counts (partition_health.h). */
    const rn_metadata *md = c->gw->b->md;
    int32_t fenced[RN_MAX_BROKERS];
    size_t n_fenced = 0;
    for (unsigned i = 0; md && i < rn_metadata_broker_count(md) && n_fenced < RN_MAX_BROKERS; i++) {
        const rn_broker_info *bi = rn_metadata_broker_at(md, i);
        if (bi && bi->fenced)
            fenced[n_fenced++] = bi->id;
    }
    for (size_t t = 0; t < json_array_size(j->topics); t++) {
        json_t *parts = json_object_get(json_array_get(j->topics, t), "partitions");
        for (size_t p = 0; p < json_array_size(parts); p++) {
            json_t *pj = json_array_get(parts, p);
            int32_t reps[256], isr[256];
            rn_partition_info pi = {
                .leader = (int32_t)json_integer_value(json_object_get(pj, "leader")),
                .replicas = reps,
                .isr = isr,
            };
            pi.n_replicas = (int32_t)ids_of(json_object_get(pj, "replicas"), reps, 256);
            pi.n_isr = (int32_t)ids_of(json_object_get(pj, "isr"), isr, 256);
            unsigned bits = rn_partition_health_of(&pi, fenced, n_fenced);
            json_object_set_new(pj, "under_replicated",
                                json_boolean(bits & RN_HEALTH_UNDER_REPLICATED));
            json_object_set_new(pj, "offline", json_boolean(bits & RN_HEALTH_OFFLINE));
        }
    }
    json_object_set(j->status, "topics", j->topics);
    json_object_set_new(j->status, "partitions_listed", json_integer(j->listed));
    rn_http_respond_json(c, 200, RN_GW_CT_V2, j->status);
out:
    json_decref(j->status);
    json_decref(j->topics);
    free(j);
}

static void cluster_error(cluster_job *j, int err, const char *msg)
{
    if (j->err_status)
        return; /* the first error is the one reported */
    rn_gw_error_map(err, false, &j->err_status, &j->err_code);
    snprintf(j->err, sizeof(j->err), "%s", msg && *msg ? msg : rn_strerror(err));
}

/* One of the two calls is over (answered or dropped). The last one answers
 * unless the client is gone (a drop), then only frees. */
static void cluster_done(cluster_job *j, bool dropped)
{
    if (dropped)
        j->c = NULL;
    if (--j->pending > 0)
        return;
    if (!j->c) {
        json_decref(j->status);
        json_decref(j->topics);
        free(j);
        return;
    }
    cluster_finish(j);
}

static void cluster_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                           unsigned n_slices)
{
    bool is_status = hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_CLUSTER_STATUS;
    cluster_job *j = is_status ? RN_CONTAINER_OF(call, cluster_job, status_call)
                               : RN_CONTAINER_OF(call, cluster_job, md_call);
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    if (hdr->error_code)
        cluster_error(j, -(int)hdr->error_code, hdr->error_message);
    else if (is_status && hdr->cluster_status)
        j->status = cluster_status_json(hdr->cluster_status);
    else if (hdr->metadata)
        j->topics = cluster_topics_json(hdr->metadata, &j->listed);
    else
        cluster_error(j, -RN_E_INVALID_REQUEST, "empty answer");
    cluster_done(j, false);
}

static void cluster_status_dropped(rn_gw_call *call)
{
    cluster_done(RN_CONTAINER_OF(call, cluster_job, status_call), true);
}

static void cluster_md_dropped(rn_gw_call *call)
{
    cluster_done(RN_CONTAINER_OF(call, cluster_job, md_call), true);
}

static void get_cluster(rn_http_conn *c)
{
    cluster_job *j = calloc(1, sizeof(*j));
    if (!j) {
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    j->c = c;
    /* One count for this function, so an answer given inside a call below
     * cannot finish the job before both are sent. */
    j->pending = 1;
    char err[256] = "";

    Runnel__ClusterStatusRequest sr = RUNNEL__CLUSTER_STATUS_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__CLUSTER_STATUS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_CLUSTER_STATUS;
    h.cluster_status = &sr;
    h.client_id = "runnel-gateway";
    j->pending++;
    int rc = rn_gw_client_call(&c->client, &h, NULL, 0, &j->status_call, cluster_answer,
                               cluster_status_dropped, err, sizeof(err));
    if (rc < 0) {
        j->pending--;
        cluster_error(j, rc, err);
    }

    Runnel__MetadataRequest mr = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader mh = RUNNEL__REQUEST_HEADER__INIT;
    mh.api = RUNNEL__API__METADATA;
    mh.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
    mh.metadata = &mr;
    mh.client_id = "runnel-gateway";
    if (!j->err_status) {
        j->pending++;
        rc = rn_gw_client_call(&c->client, &mh, NULL, 0, &j->md_call, cluster_answer,
                               cluster_md_dropped, err, sizeof(err));
        if (rc < 0) {
            j->pending--;
            cluster_error(j, rc, err);
        }
    }
    cluster_done(j, false);
}

/* ---- Group reset -------------------------------------------------------------------------- */

enum reset_to { TO_EARLIEST, TO_LATEST, TO_OFFSET, TO_DATETIME };
enum reset_step { R_GROUP, R_TOPIC, R_RANGE, R_TIMES, R_COMMIT };

typedef struct plan_row {
    size_t topic; /* index into job->topics */
    int32_t partition;
    int64_t first, last; /* log start offset, high watermark (the leader's) */
    int64_t current;     /* committed now, -1 none */
    int64_t target;
    bool clamped;
    uint32_t error_code; /* of the commit */
} plan_row;

typedef struct committed {
    char *topic;
    int32_t partition;
    int64_t offset;
} committed;

typedef struct reset_job {
    rn_gw_call call; /* first: the client's list links it */
    rn_http_conn *c; /* referenced (invariant 2) */
    rn_io_op kick_op;
    enum reset_step step;
    char group[RN_GROUP_ID_MAX + 1];
    enum reset_to to;
    int64_t value; /* the offset, or the time in ms */
    bool execute;
    char *topics[MAX_RESET_TOPICS];
    size_t n_topics, topic_i;
    committed *cur;
    size_t n_cur;
    plan_row *rows;
    size_t n_rows, cap_rows;
} reset_job;

static void job_free(reset_job *j)
{
    for (size_t i = 0; i < j->n_topics; i++)
        free(j->topics[i]);
    for (size_t i = 0; i < j->n_cur; i++)
        free(j->cur[i].topic);
    free(j->cur);
    free(j->rows);
    rn_http_conn_unref(j->c);
    free(j);
}

static void job_error(reset_job *j, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void job_error(reset_job *j, int status, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!j->c->dead)
        rn_http_respond_error(j->c, status, code, "%s", msg);
    job_free(j);
}

static void job_rn_error(reset_job *j, int err, const char *msg)
{
    int status, code;
    rn_gw_error_map(err, false, &status, &code);
    job_error(j, status, code, "group %s: %s", j->group, msg && *msg ? msg : rn_strerror(err));
}

static void job_dropped(rn_gw_call *call)
{
    job_free((reset_job *)call);
}

static void job_step(reset_job *j);

static void kick_done(rn_io_op *op, int res, uint32_t flags)
{
    reset_job *j = RN_CONTAINER_OF(op, reset_job, kick_op);
    (void)res;
    (void)flags;
    if (j->c->dead)
        job_free(j);
    else
        job_step(j);
}

/* Go on from a fresh stack (invariant 1). */
static void kick(reset_job *j)
{
    struct io_uring_sqe *sqe = rn_io_sqe(j->c->r->io, &j->kick_op, kick_done);
    if (!sqe) {
        job_error(j, 503, 50301, "io ring unavailable");
        return;
    }
    io_uring_prep_nop(sqe);
}

static void job_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                       unsigned n_slices);

static void job_send(reset_job *j, Runnel__RequestHeader *h)
{
    char err[256] = "";
    h->client_id = "runnel-gateway";
    int rc = rn_gw_client_call(&j->c->client, h, NULL, 0, &j->call, job_answer, job_dropped, err,
                               sizeof(err));
    if (rc < 0)
        job_rn_error(j, rc, err);
}

static int64_t current_of(const reset_job *j, const char *topic, int32_t p)
{
    for (size_t i = 0; i < j->n_cur; i++)
        if (j->cur[i].partition == p && !strcmp(j->cur[i].topic, topic))
            return j->cur[i].offset;
    return -1;
}

/* The plan as JSON: {"group_id","executed","offsets":[…]}. */
static void job_respond(reset_job *j, bool executed)
{
    json_t *arr = json_array();
    int failed = 0;
    for (size_t i = 0; i < j->n_rows; i++) {
        const plan_row *r = &j->rows[i];
        json_t *o =
            json_pack("{s:s,s:i,s:I,s:I,s:I,s:I,s:b}", "topic", j->topics[r->topic], "partition",
                      r->partition, "current_offset", (json_int_t)r->current, "new_offset",
                      (json_int_t)r->target, "log_start_offset", (json_int_t)r->first,
                      "log_end_offset", (json_int_t)r->last, "clamped", r->clamped);
        if (o && r->error_code) {
            json_object_set_new(o, "error_code", json_integer(r->error_code));
            json_object_set_new(o, "error", json_string(rn_strerror(-(int)r->error_code)));
            if (!failed)
                failed = (int)r->error_code;
        }
        json_array_append_new(arr, o);
    }
    json_t *out = json_pack("{s:s,s:b,s:o}", "group_id", j->group, "executed", executed && !failed,
                            "offsets", arr);
    if (!out) {
        rn_http_respond_error(j->c, 500, 50001, "out of memory");
    } else {
        int status = 200;
        if (failed) {
            int code;
            rn_gw_error_map(-failed, true, &status, &code);
        }
        rn_http_respond_json(j->c, status, RN_GW_CT_V2, out);
        json_decref(out);
    }
    job_free(j);
}

/* New offsets for every row except "datetime" (which ListOffsets answers). */
static void plan_targets(reset_job *j)
{
    for (size_t i = 0; i < j->n_rows; i++) {
        plan_row *r = &j->rows[i];
        switch (j->to) {
        case TO_EARLIEST:
            r->target = r->first;
            break;
        case TO_LATEST:
            r->target = r->last;
            break;
        case TO_OFFSET:
            /* Kafka's tool clamps into the log's range rather than fail. */
            r->target = j->value < r->first ? r->first : j->value > r->last ? r->last : j->value;
            r->clamped = r->target != j->value;
            break;
        case TO_DATETIME:
            break;
        }
    }
}

/* Sends the request of the current step. */
static void job_step(reset_job *j)
{
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    switch (j->step) {
    case R_GROUP: {
        Runnel__DescribeGroupRequest dq = RUNNEL__DESCRIBE_GROUP_REQUEST__INIT;
        dq.group_id = j->group;
        h.api = RUNNEL__API__DESCRIBE_GROUP;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_GROUP;
        h.describe_group = &dq;
        job_send(j, &h);
        return;
    }
    case R_TOPIC: {
        Runnel__DescribeTopicRequest dr = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
        dr.name = j->topics[j->topic_i];
        h.api = RUNNEL__API__DESCRIBE_TOPIC;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_TOPIC;
        h.describe_topic = &dr;
        job_send(j, &h);
        return;
    }
    case R_RANGE: {
        /* Two entries per row: earliest (-2) at 2i, latest (-1) at 2i + 1. */
        size_t n = 2 * j->n_rows;
        Runnel__ListOffsetsPartition *lp = calloc(n ? n : 1, sizeof(*lp));
        Runnel__ListOffsetsPartition **lpp = calloc(n ? n : 1, sizeof(*lpp));
        if (!lp || !lpp) {
            free(lp);
            free(lpp);
            job_error(j, 503, 50301, "out of memory");
            return;
        }
        for (size_t i = 0; i < n; i++) {
            runnel__list_offsets_partition__init(&lp[i]);
            lp[i].topic = j->topics[j->rows[i / 2].topic];
            lp[i].partition = j->rows[i / 2].partition;
            lp[i].timestamp = i % 2 ? -1 : -2;
            lpp[i] = &lp[i];
        }
        Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
        lr.n_partitions = n;
        lr.partitions = lpp;
        h.api = RUNNEL__API__LIST_OFFSETS;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
        h.list_offsets = &lr;
        job_send(j, &h); /* the request is encoded (copied) before this returns */
        free(lp);
        free(lpp);
        return;
    }
    case R_TIMES: {
        Runnel__ListOffsetsPartition *lp = calloc(j->n_rows ? j->n_rows : 1, sizeof(*lp));
        Runnel__ListOffsetsPartition **lpp = calloc(j->n_rows ? j->n_rows : 1, sizeof(*lpp));
        if (!lp || !lpp) {
            free(lp);
            free(lpp);
            job_error(j, 503, 50301, "out of memory");
            return;
        }
        for (size_t i = 0; i < j->n_rows; i++) {
            runnel__list_offsets_partition__init(&lp[i]);
            lp[i].topic = j->topics[j->rows[i].topic];
            lp[i].partition = j->rows[i].partition;
            lp[i].timestamp = j->value;
            lpp[i] = &lp[i];
        }
        Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
        lr.n_partitions = j->n_rows;
        lr.partitions = lpp;
        h.api = RUNNEL__API__LIST_OFFSETS;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
        h.list_offsets = &lr;
        job_send(j, &h); /* the request is encoded (copied) before this returns */
        free(lp);
        free(lpp);
        return;
    }
    case R_COMMIT: {
        Runnel__OffsetCommit *oc = calloc(j->n_rows ? j->n_rows : 1, sizeof(*oc));
        Runnel__OffsetCommit **ocp = calloc(j->n_rows ? j->n_rows : 1, sizeof(*ocp));
        if (!oc || !ocp) {
            free(oc);
            free(ocp);
            job_error(j, 503, 50301, "out of memory");
            return;
        }
        for (size_t i = 0; i < j->n_rows; i++) {
            runnel__offset_commit__init(&oc[i]);
            oc[i].topic = j->topics[j->rows[i].topic];
            oc[i].partition = j->rows[i].partition;
            oc[i].offset = j->rows[i].target;
            ocp[i] = &oc[i];
        }
        Runnel__CommitOffsetsRequest cr = RUNNEL__COMMIT_OFFSETS_REQUEST__INIT;
        cr.group_id = j->group;
        cr.member_id = ""; /* an admin commit (proto: empty member_id) */
        cr.n_offsets = j->n_rows;
        cr.offsets = ocp;
        h.api = RUNNEL__API__COMMIT_OFFSETS;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_COMMIT_OFFSETS;
        h.commit_offsets = &cr;
        job_send(j, &h);
        free(oc);
        free(ocp);
        return;
    }
    }
}

static int group_answer(reset_job *j, const Runnel__DescribeGroupResponse *d)
{
    if (d && d->n_members)
        return (int)d->n_members;
    size_t n = d ? d->n_partitions : 0;
    j->cur = calloc(n ? n : 1, sizeof(*j->cur));
    if (!j->cur)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const Runnel__GroupPartitionLag *l = d->partitions[i];
        j->cur[j->n_cur].topic = strdup(l->topic);
        if (!j->cur[j->n_cur].topic)
            return -ENOMEM;
        j->cur[j->n_cur].partition = l->partition;
        j->cur[j->n_cur++].offset = l->committed_offset;
    }
    return 0;
}

static int topic_answer(reset_job *j, const Runnel__DescribeTopicResponse *d)
{
    if (d->n_partitions > MAX_RESET_PARTITIONS - j->n_rows)
        return -E2BIG;
    for (size_t i = 0; i < d->n_partitions; i++) {
        if (j->n_rows == j->cap_rows) {
            size_t cap = j->cap_rows ? j->cap_rows * 2 : 16;
            plan_row *nr = realloc(j->rows, cap * sizeof(*nr));
            if (!nr)
                return -ENOMEM;
            j->rows = nr;
            j->cap_rows = cap;
        }
        const Runnel__PartitionDescription *pd = d->partitions[i];
        plan_row *r = &j->rows[j->n_rows++];
        memset(r, 0, sizeof(*r));
        r->topic = j->topic_i;
        r->partition = pd->partition;
        r->current = current_of(j, j->topics[j->topic_i], pd->partition);
    }
    return 0;
}

static void job_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                       unsigned n_slices)
{
    reset_job *j = (reset_job *)call;
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    int err = hdr->error_code ? -(int)hdr->error_code : 0;
    switch (j->step) {
    case R_GROUP: {
        /* A group that never committed is fine to reset: it is created by the commit. */
        if (err && err != -RN_E_UNKNOWN_GROUP) {
            job_rn_error(j, err, hdr->error_message);
            return;
        }
        int n = group_answer(j, err ? NULL : hdr->describe_group);
        if (n < 0) {
            job_error(j, 503, 50301, "out of memory");
            return;
        }
        if (n > 0) {
            job_error(j, 409, 40902,
                      "group %s has %d active member%s: stop its consumers first (they "
                      "would commit over a reset)",
                      j->group, n, n == 1 ? "" : "s");
            return;
        }
        j->step = R_TOPIC;
        break;
    }
    case R_TOPIC: {
        if (err == -RN_E_UNKNOWN_TOPIC) {
            job_error(j, 404, 40401, "topic '%s' does not exist", j->topics[j->topic_i]);
            return;
        }
        if (err) {
            job_rn_error(j, err, hdr->error_message);
            return;
        }
        if (!hdr->describe_topic) {
            job_error(j, 500, 50001, "empty answer");
            return;
        }
        int rc = topic_answer(j, hdr->describe_topic);
        if (rc == -E2BIG) {
            job_error(j, 422, 42201, "at most %d partitions in one reset: name fewer topics",
                      MAX_RESET_PARTITIONS);
            return;
        }
        if (rc < 0) {
            job_error(j, 503, 50301, "out of memory");
            return;
        }
        if (++j->topic_i < j->n_topics)
            break;
        j->step = R_RANGE;
        break;
    }
    case R_RANGE: {
        if (err) {
            job_rn_error(j, err, hdr->error_message);
            return;
        }
        const Runnel__ListOffsetsResponse *lr = hdr->list_offsets;
        if (!lr || lr->n_partitions != 2 * j->n_rows) {
            job_error(j, 500, 50001, "offsets of %zu partitions asked, %zu answered", j->n_rows,
                      lr ? lr->n_partitions : 0);
            return;
        }
        for (size_t i = 0; i < j->n_rows; i++) {
            plan_row *r = &j->rows[i];
            const Runnel__ListOffsetsPartitionResponse *e = lr->partitions[2 * i];
            const Runnel__ListOffsetsPartitionResponse *l = lr->partitions[2 * i + 1];
            uint32_t ec = e->error_code ? e->error_code : l->error_code;
            if (ec) {
                char msg[300];
                snprintf(msg, sizeof(msg), "%s-%d: %s", j->topics[r->topic], r->partition,
                         rn_strerror(-(int)ec));
                job_rn_error(j, -(int)ec, msg);
                return;
            }
            r->first = e->offset < 0 ? 0 : e->offset;
            r->last = l->offset < r->first ? r->first : l->offset;
        }
        plan_targets(j);
        if (j->to == TO_DATETIME)
            j->step = R_TIMES;
        else if (j->execute)
            j->step = R_COMMIT;
        else {
            job_respond(j, false);
            return;
        }
        break;
    }
    case R_TIMES: {
        if (err) {
            job_rn_error(j, err, hdr->error_message);
            return;
        }
        const Runnel__ListOffsetsResponse *lr = hdr->list_offsets;
        for (size_t i = 0; i < j->n_rows; i++) {
            plan_row *r = &j->rows[i];
            const Runnel__ListOffsetsPartitionResponse *p = NULL;
            for (size_t k = 0; lr && k < lr->n_partitions && !p; k++)
                if (lr->partitions[k]->partition == r->partition &&
                    !strcmp(lr->partitions[k]->topic, j->topics[r->topic]))
                    p = lr->partitions[k];
            if (!p) {
                job_error(j, 500, 50001, "no offset for %s partition %d", j->topics[r->topic],
                          r->partition);
                return;
            }
            if (p->error_code) {
                job_rn_error(j, -(int)p->error_code, NULL);
                return;
            }
            /* Nothing that recent: the end, as `runnel group reset` does. */
            r->target = p->offset < 0 ? r->last : p->offset;
        }
        if (!j->execute) {
            job_respond(j, false);
            return;
        }
        j->step = R_COMMIT;
        break;
    }
    case R_COMMIT: {
        if (err) {
            job_rn_error(j, err, hdr->error_message);
            return;
        }
        const Runnel__CommitOffsetsResponse *cr = hdr->commit_offsets;
        for (size_t k = 0; cr && k < cr->n_offsets; k++)
            for (size_t i = 0; i < j->n_rows; i++)
                if (j->rows[i].partition == cr->offsets[k]->partition &&
                    !strcmp(j->topics[j->rows[i].topic], cr->offsets[k]->topic))
                    j->rows[i].error_code = cr->offsets[k]->error_code;
        {
            job_respond(j, true);
            return;
        }
    }
    }
    kick(j);
}

/* POST /groups/{g}/reset {"topics":[…] | "topic", "to":"earliest"|"latest"|"offset"|"datetime",
 * "offset":N, "timestamp":ms, "execute":bool}. */
static void reset_group(rn_http_conn *c, rn_http_request *req, const char *group)
{
    static const char usage[] =
        "expected {\"topics\": [string], \"to\": \"earliest\"|\"latest\"|\"offset\"|\"datetime\", "
        "\"offset\": int (to offset), \"timestamp\": ms (to datetime), \"execute\": bool}";
    if (strlen(group) > RN_GROUP_ID_MAX) {
        rn_http_respond_error(c, 422, 42201, "a group id has at most %d bytes", RN_GROUP_ID_MAX);
        return;
    }
    char err[256];
    json_t *b = rn_json_parse(req->body, req->body_len, err, sizeof(err));
    if (!b) {
        rn_http_respond_error(c, 400, 40001, "%s", err);
        return;
    }
    reset_job *j = calloc(1, sizeof(*j));
    if (!j) {
        json_decref(b);
        rn_http_respond_error(c, 503, 50301, "out of memory");
        return;
    }
    j->c = c;
    rn_http_conn_ref(c);
    snprintf(j->group, sizeof(j->group), "%s", group);
    json_t *topics = json_is_object(b) ? json_object_get(b, "topics") : NULL;
    json_t *topic = json_is_object(b) ? json_object_get(b, "topic") : NULL;
    json_t *to = json_is_object(b) ? json_object_get(b, "to") : NULL;
    json_t *exec = json_is_object(b) ? json_object_get(b, "execute") : NULL;
    const char *tos = json_string_value(to);
    if (!json_is_object(b) || (topics && !json_is_array(topics)) ||
        (topic && !json_is_string(topic)) || !tos || (exec && !json_is_boolean(exec)))
        goto bad;
    j->execute = json_is_true(exec);
    if (!strcmp(tos, "earliest")) {
        j->to = TO_EARLIEST;
    } else if (!strcmp(tos, "latest")) {
        j->to = TO_LATEST;
    } else if (!strcmp(tos, "offset") || !strcmp(tos, "datetime")) {
        bool off = tos[0] == 'o';
        json_t *v = json_object_get(b, off ? "offset" : "timestamp");
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            job_error(j, 422, 42201, "\"to\": \"%s\" needs \"%s\": a whole number >= 0", tos,
                      off ? "offset" : "timestamp");
            json_decref(b); /* tos points into b */
            return;
        }
        j->to = off ? TO_OFFSET : TO_DATETIME;
        j->value = json_integer_value(v);
    } else {
        goto bad;
    }
    size_t n = topics ? json_array_size(topics) : 0;
    if (topic)
        n++;
    if (n == 0 || n > MAX_RESET_TOPICS) {
        json_decref(b);
        job_error(j, 422, 42201, "name 1 to %d topics to reset", MAX_RESET_TOPICS);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = topic && i == n - 1 ? topic : json_array_get(topics, i);
        const char *name = json_string_value(t);
        if (!name)
            goto bad;
        for (size_t k = 0; k < j->n_topics; k++)
            if (!strcmp(j->topics[k], name))
                name = NULL;
        if (!name)
            continue; /* named twice: once is enough */
        if (!rn_metadata_find(c->gw->b->md, name)) {
            job_error(j, 404, 40401, "topic '%.200s' does not exist", name);
            json_decref(b); /* name points into b */
            return;
        }
        j->topics[j->n_topics] = strdup(name);
        if (!j->topics[j->n_topics]) {
            json_decref(b);
            job_error(j, 503, 50301, "out of memory");
            return;
        }
        j->n_topics++;
    }
    json_decref(b);
    j->step = R_GROUP;
    job_step(j); /* not inside an answer: the first request goes now */
    return;
bad:
    json_decref(b);
    job_error(j, 422, 42201, "%s", usage);
}

/* ---- Routing ------------------------------------------------------------------------------ */

static void not_allowed(rn_http_conn *c, rn_http_request *req, const char *allow)
{
    char extra[96];
    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    char body[160];
    int len = snprintf(body, sizeof(body),
                       "{\"error_code\":40501,\"message\":\"method %s not allowed here\"}",
                       req->method_name);
    rn_http_respond(c, 405, "application/json", body, (size_t)len, extra);
}

bool rn_admin_route(rn_http_conn *c, rn_http_request *req, char **seg, int n)
{
    enum http_method m = req->method == HTTP_HEAD ? HTTP_GET : req->method;
    if (n == 1 && !strcmp(seg[0], "brokers")) {
        if (m == HTTP_GET)
            get_brokers(c);
        else
            not_allowed(c, req, "GET");
        return true;
    }
    if (n >= 3 && n <= 4 && !strcmp(seg[0], "topics") && !strcmp(seg[2], "configs")) {
        if (n == 3 && m == HTTP_GET)
            get_configs(c, seg[1]);
        else if (n == 3)
            not_allowed(c, req, "GET");
        else if (m == HTTP_PUT || m == HTTP_DELETE)
            alter_config(c, req, seg[1], seg[3], m == HTTP_PUT);
        else
            not_allowed(c, req, "PUT, DELETE");
        return true;
    }
    if (n == 1 && !strcmp(seg[0], "cluster")) {
        if (m == HTTP_GET)
            get_cluster(c);
        else
            not_allowed(c, req, "GET");
        return true;
    }
    if (n == 3 && !strcmp(seg[0], "groups") && !strcmp(seg[2], "reset")) {
        if (m == HTTP_POST)
            reset_group(c, req, seg[1]);
        else
            not_allowed(c, req, "POST");
        return true;
    }
    if (n == 2 && !strcmp(seg[0], "groups") && m == HTTP_DELETE) {
        delete_group(c, seg[1]);
        return true;
    }
    return false;
}
