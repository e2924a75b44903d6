/*
 * kafka/metadata.c — Kafka's Metadata (API 3, v0-v8) on the Kafka listener,
 * mapped onto the native Metadata, and the topic auto-creation it may run.
 *
 * How it fits: rn_kafka_dispatch (apis.c) hands a Metadata request here
 * (rn__kafka_metadata); it parses the topics named, runs the native Metadata
 * through the in-process client, and renders Kafka's answer with
 * rn_kafka_metadata_write (shared with the sans-I/O dry run, conn.h). The
 * request's memory (kctx) and the native call come from apis.c
 * (apis_int.h).
 *
 * Brokers: this one alone, or in a cluster every registered, unfenced broker
 * with a Kafka listener (its registration carries it), at that listener's
 * address. With auto.create.topics.enable (off by default) and, from v4,
 * allow_auto_topic_creation, the unknown topics the request named are
 * created (native CreateTopics, num.partitions, the default replication
 * factor) and the Metadata asked again, as Kafka does; one round at most
 * (create_ran), and a topic created but not yet in the metadata is answered
 * LEADER_NOT_AVAILABLE so clients ask again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/kafka/apis_int.h"
#include "broker/kafka/conn.h"
#include "broker/kafka/kafka.h"
#include "broker/logfmt.h"
#include "broker/meta/quorum.h"

#define NO_AUTH_OPS INT32_MIN /* authorized operations not asked for */

int rn_kafka_advertised(const char *hostport, char *out, size_t len)
{
    char host[256];
    uint16_t port;
    if (len)
        out[0] = 0;
    if (rn_config_parse_hostport(hostport, host, sizeof(host), &port) < 0)
        return -EINVAL;
    if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "localhost") == 0 ||
        strcmp(host, "::") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    snprintf(out, len, "%s:%u", host, port);
    return 0;
}

static bool listed(const rn_kafka_broker *brokers, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (brokers[i].node_id == id)
            return true;
    return false;
}

void rn_kafka_metadata_write(rn_kwriter *w, int32_t correlation_id, int16_t v,
                             const rn_kafka_broker *brokers, size_t n_brokers,
                             const Runnel__MetadataResponse *mr, bool no_topics,
                             const int16_t *topic_errors)
{
    rn_kafka_response_begin(w, correlation_id, false);
    if (v >= 3)
        rn_kwrite_i32(w, 0); /* throttle_time_ms */
    rn_kwrite_array(w, false, (int32_t)n_brokers);
    for (size_t i = 0; i < n_brokers; i++) {
        rn_kwrite_i32(w, brokers[i].node_id);
        rn_kwrite_str(w, false, brokers[i].host);
        rn_kwrite_i32(w, brokers[i].port);
        if (v >= 1)
            rn_kwrite_str(w, false, NULL); /* rack */
    }
    if (v >= 2)
        rn_kwrite_str(w, false,
                      mr && mr->cluster_id && *mr->cluster_id ? mr->cluster_id : "runnel");
    if (v >= 1)
        rn_kwrite_i32(w, mr ? mr->controller_id : n_brokers ? brokers[0].node_id : -1);
    size_t n = mr && !no_topics ? mr->n_topics : 0;
    rn_kwrite_array(w, false, (int32_t)n);
    for (size_t i = 0; i < n; i++) {
        const Runnel__TopicMetadata *t = mr->topics[i];
        rn_kwrite_i16(w, topic_errors && topic_errors[i] ? topic_errors[i]
                                                         : rn_kafka_error((int)t->error_code));
        rn_kwrite_str(w, false, t->name);
        if (v >= 1)
            rn_kwrite_i8(w, t->is_internal);
        rn_kwrite_array(w, false, (int32_t)t->n_partitions);
        for (size_t j = 0; j < t->n_partitions; j++) {
            const Runnel__PartitionMetadata *p = t->partitions[j];
            /* A leader clients cannot be sent to (fenced, or no Kafka
             * listener): what Kafka answers, so they ask again later. */
            bool away = !p->error_code && !listed(brokers, n_brokers, p->leader);
            rn_kwrite_i16(w, away ? RN_KAFKA_LEADER_NOT_AVAILABLE
                                  : rn_kafka_error((int)p->error_code));
            rn_kwrite_i32(w, p->partition);
            rn_kwrite_i32(w, away ? -1 : p->leader);
            if (v >= 7)
                rn_kwrite_i32(w, p->leader_epoch);
            rn_kwrite_array(w, false, (int32_t)p->n_replicas);
            for (size_t k = 0; k < p->n_replicas; k++)
                rn_kwrite_i32(w, p->replicas[k]);
            rn_kwrite_array(w, false, (int32_t)p->n_isr);
            for (size_t k = 0; k < p->n_isr; k++)
                rn_kwrite_i32(w, p->isr[k]);
            if (v >= 5)
                rn_kwrite_array(w, false, 0); /* offline replicas */
        }
        if (v >= 8)
            rn_kwrite_i32(w, NO_AUTH_OPS);
    }
    if (v >= 8)
        rn_kwrite_i32(w, NO_AUTH_OPS); /* cluster_authorized_operations */
    rn_kafka_response_end(w, 0);
}

static int metadata_call(rn_kreq *req);
static bool auto_create(rn_kreq *req, const Runnel__MetadataResponse *mr);

/* The index of name among the topics the request named, or -1. */
static int32_t name_index(const kctx *x, const char *name)
{
    for (int32_t i = 0; name && i < x->n_names; i++)
        if (strcmp(x->names[i], name) == 0)
            return i;
    return -1;
}

/* Per topic of mr, the Kafka error to answer instead of its own (0: its
 * own): a topic this request created that the metadata does not show yet is
 * LEADER_NOT_AVAILABLE, as Kafka answers it (clients ask again); one whose
 * create failed answers that failure (INVALID_TOPIC_EXCEPTION, ...). NULL
 * when nothing was created (or no memory: the native errors then). */
static const int16_t *auto_errors(kctx *x, const Runnel__MetadataResponse *mr)
{
    if (!mr || !x->create_ran || !mr->n_topics)
        return NULL;
    int16_t *e = rn__kafka_ctx_alloc(x, mr->n_topics * sizeof(*e));
    for (size_t i = 0; e && i < mr->n_topics; i++) {
        int32_t k = mr->topics[i]->error_code == RN_E_UNKNOWN_TOPIC
                        ? name_index(x, mr->topics[i]->name)
                        : -1;
        if (k >= 0 && x->auto_err[k] != AUTO_NOT_TRIED)
            e[i] = x->auto_err[k] ? x->auto_err[k] : RN_KAFKA_LEADER_NOT_AVAILABLE;
    }
    return e;
}

static void metadata_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                            unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    kctx *x = req->ctx;
    rn__kafka_release(slices, n_slices);
    const Runnel__MetadataResponse *mr =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_METADATA ? hdr->metadata : NULL;
    if (mr && x->may_create && !x->create_ran && auto_create(req, mr))
        return; /* answered after the create, by the metadata asked again */
    rn_broker *b = rn_kreq_broker(req);
    /* This broker alone, at its listener's address and bound port ... */
    char self[300], host[256];
    uint16_t port;
    if (!b || rn_kafka_advertised(b->cfg.kafka, self, sizeof(self)) < 0 ||
        rn_config_parse_hostport(self, host, sizeof(host), &port) < 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    rn_kafka_broker one = {b ? b->cfg.node_id : 1, host, rn_kreq_port(req)};
    const rn_kafka_broker *list = &one;
    size_t n = 1;
    /* ... or, in a cluster, every registered broker that is not fenced and
     * has a Kafka listener (its registration says where), so a client
     * reaches each partition's leader. None yet (the quorum catching up):
     * this one alone, the client asks again. */
    enum { MAXB = sizeof(((rn_quorum_status *)0)->brokers) / sizeof(rn_quorum_broker) };
    rn_quorum_status *st = b && b->quorum ? malloc(sizeof(*st)) : NULL;
    rn_kafka_broker *kb = st ? calloc(MAXB, sizeof(*kb)) : NULL;
    char(*hosts)[256] = st ? calloc(MAXB, sizeof(*hosts)) : NULL;
    if (st && kb && hosts) {
        rn_quorum_status_get(b->quorum, st);
        size_t k = 0;
        for (int i = 0; i < st->n_brokers && k < MAXB; i++) {
            const rn_quorum_broker *qb = &st->brokers[i];
            if (qb->fenced || !qb->kafka[0] ||
                rn_config_parse_hostport(qb->kafka, hosts[k], sizeof(hosts[k]), &kb[k].port) < 0)
                continue;
            kb[k].node_id = qb->id;
            kb[k].host = hosts[k];
            k++;
        }
        if (k) {
            list = kb;
            n = k;
        }
    }
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        goto out;
    }
    rn_kafka_metadata_write(&o->w, req->h.correlation_id, req->h.api_version, list, n, mr,
                            x->list_none, auto_errors(x, mr));
    rn_kreq_answer(req, o);
out:
    free(st);
    free(kb);
    free(hosts);
}

/* The create round's answer: each topic's outcome is kept (one that
 * another client created meanwhile counts as created), then the metadata is
 * asked again, so the answer shows the new topics with their partitions. */
static void auto_create_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                               unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    kctx *x = req->ctx;
    rn__kafka_release(slices, n_slices);
    Runnel__TopicResult **res = NULL;
    size_t n_res = 0;
    if (hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_CREATE_TOPICS) {
        res = hdr->create_topics->topics;
        n_res = hdr->create_topics->n_topics;
    }
    for (size_t j = 0; j < x->n_create; j++) {
        int code = j < n_res         ? (int)res[j]->error_code
                   : hdr->error_code ? (int)hdr->error_code
                                     : RN_E_UNKNOWN;
        x->auto_err[x->create_of[j]] =
            code == 0 || code == RN_E_TOPIC_EXISTS ? RN_KAFKA_NONE : rn_kafka_error(code);
        rn_logfmt(RN_INFO, "kafka: Metadata auto-creates a topic", "topic=\"%s\" result=%s",
                  x->names[x->create_of[j]], code ? rn_errname(-code) : "created");
    }
    metadata_call(req);
}

/* Creates the unknown topics of mr that the request named (Kafka's
 * auto-creation: num.partitions, the default replication factor, no
 * configs). Returns false when there are none (mr is the answer). */
static bool auto_create(rn_kreq *req, const Runnel__MetadataResponse *mr)
{
    kctx *x = req->ctx;
    x->create_ran = true;
    size_t n = 0;
    Runnel__NewTopic *nts = rn__kafka_ctx_alloc(x, mr->n_topics * sizeof(*nts));
    Runnel__NewTopic **ptrs = rn__kafka_ctx_alloc(x, mr->n_topics * sizeof(*ptrs));
    x->create_of = rn__kafka_ctx_alloc(x, mr->n_topics * sizeof(*x->create_of));
    if (!nts || !ptrs || !x->create_of)
        return false; /* no memory: answered as it is, nothing created */
    for (size_t i = 0; i < mr->n_topics; i++) {
        const Runnel__TopicMetadata *t = mr->topics[i];
        int32_t k = t->error_code == RN_E_UNKNOWN_TOPIC ? name_index(x, t->name) : -1;
        if (k < 0 || x->auto_err[k] != AUTO_NOT_TRIED) /* a name asked twice: once */
            continue;
        x->auto_err[k] = RN_KAFKA_UNKNOWN_SERVER_ERROR; /* until the answer says */
        runnel__new_topic__init(&nts[n]);
        nts[n].name = x->names[k];
        nts[n].num_partitions = -1;     /* num.partitions */
        nts[n].replication_factor = -1; /* the broker's default */
        ptrs[n] = &nts[n];
        x->create_of[n++] = k;
    }
    if (!n)
        return false;
    x->n_create = n;
    Runnel__CreateTopicsRequest cr = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
    cr.n_topics = n;
    cr.topics = ptrs;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__CREATE_TOPICS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_CREATE_TOPICS;
    h.create_topics = &cr;
    rn__kafka_call_native(req, 0, &h, NULL, 0, auto_create_answer);
    return true;
}

/* The native Metadata for the topics the request named (all when none). */
static int metadata_call(rn_kreq *req)
{
    kctx *x = req->ctx;
    Runnel__MetadataRequest mr = RUNNEL__METADATA_REQUEST__INIT;
    mr.n_topics = x->n_names > 0 ? (size_t)x->n_names : 0;
    mr.topics = x->names;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__METADATA;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
    h.metadata = &mr;
    return rn__kafka_call_native(req, 0, &h, NULL, 0, metadata_answer);
}

int rn__kafka_metadata(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    int16_t v = req->h.api_version;
    kctx *x = rn__kafka_ctx_new(req);
    if (!x)
        return -ENOMEM;
    /* v0: an empty array means every topic (there is no null). */
    int32_t n = rn_kread_array(rd, false, v >= 1, 2);
    char **names = n > 0 ? rn__kafka_ctx_alloc(x, (size_t)n * sizeof(*names)) : NULL;
    x->auto_err = n > 0 ? rn__kafka_ctx_alloc(x, (size_t)n * sizeof(*x->auto_err)) : NULL;
    if (n > 0 && (!names || !x->auto_err))
        return -ENOMEM;
    for (int32_t i = 0; i < n && !rd->err; i++) {
        rn_kstr s = rn_kread_string(rd, false);
        if (!rd->err && !(names[i] = rn__kafka_ctx_str(x, s)))
            return -ENOMEM;
        x->auto_err[i] = AUTO_NOT_TRIED;
    }
    /* allow_auto_topic_creation (v4+; before, every Metadata may create):
     * both it and the broker's auto.create.topics.enable must say yes. */
    bool allow = v >= 4 ? rn_kread_i8(rd) != 0 : true;
    if (v >= 8) {
        (void)rn_kread_i8(rd); /* include_cluster_authorized_operations */
        (void)rn_kread_i8(rd); /* include_topic_authorized_operations */
    }
    if (rd->err)
        return rd->err;
    /* Kafka: null = every topic, [] = none; native: empty = every topic. */
    x->list_none = n == 0 && v >= 1;
    x->names = names;
    x->n_names = n > 0 ? n : 0;
    rn_broker *b = rn_kreq_broker(req);
    x->may_create = allow && x->n_names > 0 && b && b->cfg.auto_create_topics;
    return metadata_call(req);
}
