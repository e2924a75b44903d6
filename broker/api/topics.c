/*
 * api/topics.c — CreateTopics, DeleteTopics, DescribeTopic, AlterConfigs.
 *
 * Changes go through the metadata log (broker/meta/metadata.c): the handler asks
 * for the change, and answers when the record is durable and applied, at
 * which point the partition table (broker/part/part_events.c) has already opened
 * or removed the logs. A request naming several topics answers once all of
 * them are done, with a result per topic.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "protocol/topic_name.h"

typedef struct topics_state topics_state;

typedef struct topic_ctx {
    topics_state *st;
    size_t i;
} topic_ctx;

struct topics_state {
    rn_request *req;
    int api;
    size_t n;
    int pending;
    Runnel__TopicResult *res;
    Runnel__TopicResult **ptrs;
    topic_ctx *ctx;
    char (*msgs)[256];
};

static topics_state *state_new(rn_request *req, size_t n)
{
    topics_state *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->req = req;
    st->api = req->api;
    st->n = n;
    st->res = calloc(n ? n : 1, sizeof(*st->res));
    st->ptrs = calloc(n ? n : 1, sizeof(*st->ptrs));
    st->ctx = calloc(n ? n : 1, sizeof(*st->ctx));
    st->msgs = calloc(n ? n : 1, sizeof(*st->msgs));
    if (!st->res || !st->ptrs || !st->ctx || !st->msgs) {
        free(st->res);
        free(st->ptrs);
        free(st->ctx);
        free(st->msgs);
        free(st);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        runnel__topic_result__init(&st->res[i]);
        st->ptrs[i] = &st->res[i];
        st->ctx[i].st = st;
        st->ctx[i].i = i;
    }
    st->pending = 1; /* the handler's own hold until its loop is done */
    return st;
}

static void state_finish(topics_state *st)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    Runnel__CreateTopicsResponse cr = RUNNEL__CREATE_TOPICS_RESPONSE__INIT;
    Runnel__DeleteTopicsResponse dr = RUNNEL__DELETE_TOPICS_RESPONSE__INIT;
    if (st->api == RUNNEL__API__CREATE_TOPICS) {
        cr.n_topics = st->n;
        cr.topics = st->ptrs;
        h.body_case = RUNNEL__RESPONSE_HEADER__BODY_CREATE_TOPICS;
        h.create_topics = &cr;
    } else {
        dr.n_topics = st->n;
        dr.topics = st->ptrs;
        h.body_case = RUNNEL__RESPONSE_HEADER__BODY_DELETE_TOPICS;
        h.delete_topics = &dr;
    }
    rn_request_respond(st->req, &h, NULL, 0);
    free(st->res);
    free(st->ptrs);
    free(st->ctx);
    free(st->msgs);
    free(st);
}

static void set_result(topics_state *st, size_t i, int err, const char *msg)
{
    if (!err)
        return;
    st->res[i].error_code = (uint32_t)(err < 0 ? -err : err);
    snprintf(st->msgs[i], sizeof(st->msgs[i]), "%s", msg && *msg ? msg : rn_strerror(err));
    st->res[i].error_message = st->msgs[i];
}

static void topic_done(void *arg, int err, const char *errmsg)
{
    topic_ctx *ctx = arg;
    topics_state *st = ctx->st;
    set_result(st, ctx->i, err, errmsg);
    if (--st->pending == 0)
        state_finish(st);
}

/* A create that applied but could not open every partition log (EMFILE,
 * ENOSPC, …) fails whole: the topic is deleted again, which closes what did
 * open and removes every directory, and the answer is the open's error
 * once the delete is durable. */
static void rolled_back(void *arg, int err, const char *errmsg)
{
    topic_ctx *ctx = arg;
    topics_state *st = ctx->st;
    size_t i = ctx->i;
    if (err) {
        size_t l = strlen(st->msgs[i]);
        snprintf(st->msgs[i] + l, sizeof(st->msgs[i]) - l, "; deleting it failed: %s",
                 errmsg && *errmsg ? errmsg : rn_strerror(err));
    }
    if (--st->pending == 0)
        state_finish(st);
}

static void created(void *arg, int err, const char *errmsg)
{
    topic_ctx *ctx = arg;
    topics_state *st = ctx->st;
    size_t i = ctx->i;
    rn_broker *b = st->req->conn->r->b;
    const char *name = st->res[i].name;
    rn_topic_state *ts = err == 0 ? rn_topic_state_find(b, name) : NULL;
    if (!ts || ts->open_err == 0) {
        topic_done(arg, err, errmsg);
        return;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "topic %s not created: partition %d of %d failed to open: %s", name,
             ts->open_err_partition, ts->n_partitions, rn_strerror(ts->open_err));
    set_result(st, i,
               ts->open_err == -EMFILE || ts->open_err == -ENFILE ? -RN_E_INVALID_PARTITIONS
                                                                  : -RN_E_STORAGE_ERROR,
               msg);
    char derr[256] = "";
    int rc = rn_metadata_delete_topic(b->md, name, rolled_back, ctx, derr, sizeof(derr));
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "topic that failed to open not deleted", "topic=%s err=%s", name,
                  rn_errname(rc));
        rolled_back(ctx, rc, derr);
    }
}

static int validate_configs(rn_broker *b, char **keys, char **values, size_t n, char *err,
                            size_t errlen)
{
    rn_log_config scratch = b->cfg.log;
    for (size_t i = 0; i < n; i++) {
        int rc = rn_topic_config_set(&scratch, keys[i], values[i], err, errlen);
        if (rc < 0)
            return rc;
    }
    return rn_topic_config_check(&scratch, err, errlen);
}

void rn_handle_create_topics(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__CreateTopicsRequest *cr = req->fr.hdr->create_topics;
    topics_state *st = state_new(req, cr->n_topics);
    if (!st) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < cr->n_topics; i++) {
        Runnel__NewTopic *nt = cr->topics[i];
        st->res[i].name = nt->name;
        /* Only 0 and -1 mean "broker default" (docs/protocol.md); any other
         * count below 1 is refused by the range check, not silently replaced. */
        int32_t parts = nt->num_partitions == 0 || nt->num_partitions == -1 ? b->cfg.num_partitions
                                                                            : nt->num_partitions;
        /* 0 and -1: default.replication.factor, which metadata applies. */
        int16_t rf = nt->replication_factor > 0 ? (int16_t)nt->replication_factor : -1;
        if (nt->replication_factor > INT16_MAX) {
            set_result(st, i, -RN_E_NOT_ENOUGH_REPLICAS, "replication factor out of range");
            continue;
        }
        if (nt->replication_factor < -1) {
            set_result(st, i, -RN_E_INVALID_REQUEST,
                       "replication factor must be positive (0 or -1: the default)");
            continue;
        }
        size_t nc = nt->n_configs;
        char **keys = calloc(nc ? nc : 1, sizeof(char *));
        char **vals = calloc(nc ? nc : 1, sizeof(char *));
        if (!keys || !vals) {
            free(keys);
            free(vals);
            set_result(st, i, -ENOMEM, "out of memory");
            continue;
        }
        for (size_t k = 0; k < nc; k++) {
            keys[k] = nt->configs[k]->key;
            vals[k] = nt->configs[k]->value;
        }
        char err[256] = "";
        int rc;
        if (cr->validate_only) {
            if ((rc = rn_topic_name_check(nt->name, false, err, sizeof(err))) < 0)
                ;
            else if (rn_metadata_find(b->md, nt->name))
                rc = -RN_E_TOPIC_EXISTS;
            else if (parts < 1 || parts > 100000)
                rc = -RN_E_INVALID_PARTITIONS;
            else if ((rc = rn_metadata_check_limits(b->md, nt->name, parts, parts, err,
                                                    sizeof(err))) < 0)
                ;
            else if (rf > 1)
                rc = -RN_E_NOT_ENOUGH_REPLICAS;
            else
                rc = validate_configs(b, keys, vals, nc, err, sizeof(err));
            set_result(st, i, rc, err);
        } else {
            rc = rn_metadata_create_topic(b->md, nt->name, parts, rf, (const char *const *)keys,
                                          (const char *const *)vals, nc, created, &st->ctx[i], err,
                                          sizeof(err));
            if (rc < 0)
                set_result(st, i, rc, err);
            else
                st->pending++;
        }
        free(keys);
        free(vals);
    }
    if (--st->pending == 0)
        state_finish(st);
}

void rn_handle_delete_topics(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__DeleteTopicsRequest *dr = req->fr.hdr->delete_topics;
    topics_state *st = state_new(req, dr->n_topics);
    if (!st) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < dr->n_topics; i++) {
        st->res[i].name = dr->topics[i];
        if (rn_topic_is_internal(dr->topics[i])) {
            set_result(st, i, -RN_E_INVALID_TOPIC, "internal topics cannot be deleted");
            continue;
        }
        char err[256] = "";
        int rc = rn_metadata_delete_topic(b->md, dr->topics[i], topic_done, &st->ctx[i], err,
                                          sizeof(err));
        if (rc < 0)
            set_result(st, i, rc, err);
        else
            st->pending++;
    }
    if (--st->pending == 0)
        state_finish(st);
}

/* ---- DescribeTopic ------------------------------------------------------------ */

#define N_EFFECTIVE 9

/* Every topic-level setting with its effective value. */
static void effective_configs(const rn_log_config *lc, char keys[N_EFFECTIVE][32],
                              char vals[N_EFFECTIVE][48])
{
    int i = 0;
#define KV(k, fmt, v)                                                                              \
    do {                                                                                           \
        snprintf(keys[i], 32, "%s", k);                                                            \
        snprintf(vals[i], 48, fmt, v);                                                             \
        i++;                                                                                       \
    } while (0)
    char flush[48];
    rn_log_config_flush_str(lc, flush, sizeof(flush));
    KV("flush", "%s", flush);
    KV("index.interval.bytes", "%" PRIu32, lc->index_interval_bytes);
    KV("max.message.bytes", "%" PRIu32, lc->max_batch_bytes);
    KV("min.insync.replicas", "%" PRId32, lc->min_insync_replicas);
    KV("preallocate.bytes", "%" PRIu64, lc->preallocate_bytes);
    KV("retention.bytes", "%" PRId64, lc->retention_bytes);
    KV("retention.ms", "%" PRId64, lc->retention_ms);
    KV("segment.bytes", "%" PRIu64, lc->segment_bytes);
    KV("segment.ms", "%" PRId64, lc->roll_ms);
#undef KV
}

void rn_handle_describe_topic(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__DescribeTopicRequest *dr = req->fr.hdr->describe_topic;
    const rn_topic_info *t = rn_metadata_find(b->md, dr->name);
    if (!t) {
        rn_request_fail(req, -RN_E_UNKNOWN_TOPIC, NULL);
        return;
    }
    size_t n = (size_t)t->n_partitions;
    Runnel__PartitionDescription *pd = calloc(n ? n : 1, sizeof(*pd));
    Runnel__PartitionDescription **pp = calloc(n ? n : 1, sizeof(*pp));
    if (!pd || !pp) {
        free(pd);
        free(pp);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        runnel__partition_description__init(&pd[i]);
        pp[i] = &pd[i];
        const rn_partition_info *pi = &t->partitions[i];
        pd[i].partition = pi->partition;
        pd[i].leader = pi->leader;
        pd[i].leader_epoch = pi->leader_epoch;
        pd[i].n_replicas = (size_t)pi->n_replicas;
        pd[i].replicas = (int32_t *)pi->replicas;
        pd[i].n_isr = (size_t)pi->n_isr;
        pd[i].isr = (int32_t *)pi->isr;
        pd[i].n_target_replicas = (size_t)pi->n_target;
        pd[i].target_replicas = (int32_t *)pi->target;
        pd[i].n_elr = (size_t)pi->n_elr;
        pd[i].elr = (int32_t *)pi->elr;
        pd[i].throttle_rate = pi->throttle;
        rn_partition *p = rn_partition_find(b, t->name, pi->partition);
        if (p) {
            /* Owned by any reactor: what the owner last published. */
            rn_partition_offsets(p, &pd[i].log_start_offset, &pd[i].high_watermark,
                                 &pd[i].log_end_offset);
            pd[i].size_bytes = (int64_t)rn_partition_size(p);
        } else {
            pd[i].log_start_offset = pd[i].high_watermark = pd[i].log_end_offset = -1;
        }
    }
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0)
        lc = b->cfg.log;
    char keys[N_EFFECTIVE][32], vals[N_EFFECTIVE][48];
    effective_configs(&lc, keys, vals);
    Runnel__DescribeTopicResponse__ConfigsEntry ce[N_EFFECTIVE], *cep[N_EFFECTIVE];
    for (int i = 0; i < N_EFFECTIVE; i++) {
        runnel__describe_topic_response__configs_entry__init(&ce[i]);
        ce[i].key = keys[i];
        ce[i].value = vals[i];
        cep[i] = &ce[i];
    }
    Runnel__DescribeTopicResponse r = RUNNEL__DESCRIBE_TOPIC_RESPONSE__INIT;
    r.name = (char *)t->name;
    r.n_configs = N_EFFECTIVE;
    r.configs = cep;
    r.n_partitions = n;
    r.partitions = pp;
    /* The topic's own settings, so tools show overrides as kafka-topics does
     * (metadata keeps them sorted by key). */
    r.n_overridden = t->n_configs;
    r.overridden = (char **)t->config_keys;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_DESCRIBE_TOPIC;
    h.describe_topic = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(pd);
    free(pp);
}

/* ---- AlterConfigs ------------------------------------------------------------ */

static void altered(void *arg, int err, const char *errmsg)
{
    rn_request *req = arg;
    req->state = NULL;
    if (err) {
        rn_request_fail(req, err, errmsg);
        return;
    }
    Runnel__AlterConfigsResponse ar = RUNNEL__ALTER_CONFIGS_RESPONSE__INIT;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_ALTER_CONFIGS;
    h.alter_configs = &ar;
    rn_request_respond(req, &h, NULL, 0);
}

/* Partitions added: answer, or name the first new partition that did not
 * open (the count stays grown; the partition answers STORAGE_ERROR). */
static void grown(void *arg, int err, const char *errmsg)
{
    rn_request *req = arg;
    if (err == 0) {
        rn_broker *b = req->conn->r->b;
        Runnel__AlterConfigsRequest *ar = req->fr.hdr->alter_configs;
        rn_topic_state *ts = rn_topic_state_find(b, ar->topic);
        if (ts && ts->open_err) {
            char msg[256];
            snprintf(msg, sizeof(msg), "topic %s: partition %d did not open: %s", ar->topic,
                     ts->open_err_partition, rn_strerror(ts->open_err));
            altered(req, -RN_E_STORAGE_ERROR, msg);
            return;
        }
    }
    altered(req, err, errmsg);
}

static void add_partitions(rn_request *req, Runnel__AlterConfigsRequest *ar)
{
    rn_broker *b = req->conn->r->b;
    char err[256] = "";
    if (ar->n_set_configs || ar->n_delete_configs) {
        rn_request_fail(req, -RN_E_INVALID_REQUEST,
                        "partitions and configs go in separate requests");
        return;
    }
    if (ar->validate_only) {
        const rn_topic_info *t = rn_metadata_find(b->md, ar->topic);
        if (!t) {
            rn_request_fail(req, -RN_E_UNKNOWN_TOPIC, NULL);
        } else if (ar->partitions <= t->n_partitions) {
            snprintf(err, sizeof(err),
                     "topic %s has %d partitions; the count can only grow (asked for %d)",
                     ar->topic, t->n_partitions, ar->partitions);
            rn_request_fail(req, -RN_E_INVALID_PARTITIONS, err);
        } else if (rn_metadata_check_limits(b->md, ar->topic, ar->partitions,
                                            ar->partitions - t->n_partitions, err,
                                            sizeof(err)) < 0) {
            rn_request_fail(req, -RN_E_INVALID_PARTITIONS, err);
        } else {
            altered(req, 0, NULL);
        }
        return;
    }
    int rc =
        rn_metadata_add_partitions(b->md, ar->topic, ar->partitions, grown, req, err, sizeof(err));
    if (rc < 0)
        rn_request_fail(req, rc, err);
}

void rn_handle_alter_configs(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__AlterConfigsRequest *ar = req->fr.hdr->alter_configs;
    if (rn_topic_is_internal(ar->topic)) {
        rn_request_fail(req, -RN_E_INVALID_TOPIC, "internal topics' configs are the broker's");
        return;
    }
    if (ar->partitions < 0) {
        rn_request_fail(req, -RN_E_INVALID_PARTITIONS, "partitions must be positive");
        return;
    }
    if (ar->partitions > 0) {
        add_partitions(req, ar);
        return;
    }
    size_t n = ar->n_set_configs;
    char **keys = calloc(n ? n : 1, sizeof(char *));
    char **vals = calloc(n ? n : 1, sizeof(char *));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = ar->set_configs[i]->key;
        vals[i] = ar->set_configs[i]->value;
    }
    char err[256] = "";
    int rc;
    if (ar->validate_only) {
        rc = rn_metadata_find(b->md, ar->topic) ? 0 : -RN_E_UNKNOWN_TOPIC;
        if (rc == 0)
            rc = validate_configs(b, keys, vals, n, err, sizeof(err));
        for (size_t i = 0; rc == 0 && i < ar->n_delete_configs; i++)
            if (!rn_topic_config_known(ar->delete_configs[i])) {
                snprintf(err, sizeof(err), "unknown topic setting '%s'", ar->delete_configs[i]);
                rc = -RN_E_INVALID_CONFIG;
            }
        free(keys);
        free(vals);
        if (rc < 0)
            rn_request_fail(req, rc, err);
        else
            altered(req, 0, NULL);
        return;
    }
    rc = rn_metadata_alter_configs(b->md, ar->topic, (const char *const *)keys,
                                   (const char *const *)vals, n,
                                   (const char *const *)ar->delete_configs, ar->n_delete_configs,
                                   altered, req, err, sizeof(err));
    free(keys);
    free(vals);
    if (rc < 0)
        rn_request_fail(req, rc, err);
}
