/*
 * admin.c — Kafka's CreatePartitions (API 37, v0–v2; v2 flexible) and DescribeConfigs
 * (API 32, v0–v2), mapped onto the native AlterConfigs (partitions) and
 * DescribeTopic, one native call per topic, and the broker's own settings.
 *
 * CreatePartitions
 *   request:  topics [name, count i32, assignments nullable [[broker_id]]],
 *             timeout_ms i32, validate_only bool
 *   response: throttle_time_ms i32, results [name, error_code i16,
 *             error_message nullable string]
 *   Each topic is a native AlterConfigs with partitions = count (grows the
 *   topic; fewer or as many as now: INVALID_PARTITIONS, 37). Manual
 *   assignments are refused (INVALID_REQUEST, 42) as CreateTopics refuses
 *   them: runnel places replicas itself.
 *
 * DescribeConfigs
 *   request:  resources [resource_type i8, resource_name string,
 *             configuration_keys nullable [string]], v1+ include_synonyms
 *   response: throttle_time_ms i32, results [error_code i16, error_message
 *             nullable string, resource_type i8, resource_name string,
 *             configs [name, value nullable, read_only bool, v0 is_default
 *             bool | v1+ config_source i8, is_sensitive bool, v1+ synonyms
 *             [name, value nullable, source i8]]]
 *   TOPIC (2): a native DescribeTopic; every topic-level setting with its
 *   effective value; source DYNAMIC_TOPIC_CONFIG (1) for the topic's own
 *   overrides, else that of the broker setting it inherits (its synonym,
 *   e.g. retention.ms ← log.retention.ms): STATIC_BROKER_CONFIG (4) when the
 *   broker's configuration sets it, DEFAULT_CONFIG (5) when it is runnel's
 *   default. BROKER (4), named "" or this node's id: every broker setting
 *   (rn_config_dump), read-only (runnel has no dynamic broker configs),
 *   STATIC_BROKER_CONFIG or DEFAULT_CONFIG the same way. Another node's id
 *   is INVALID_REQUEST (a client asks that broker itself, as with Kafka);
 *   other resource types are INVALID_REQUEST. Unknown topics are
 *   UNKNOWN_TOPIC_OR_PARTITION (3).
 *
 * How a request with several topics runs: every resource is parsed first
 * (with the reader's bounds checks), then one native call per topic starts,
 * each with a call struct of its own (rn_kreq_call_as). A call's answer
 * renders its result into the resource's own writer at once (the native
 * answer is only borrowed), and the last one to come back assembles the
 * response in request order. `pending` counts the calls plus one for the
 * loop that starts them, so an answer that comes inside rn_gw_client_call
 * cannot complete the response before every call has started.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/kafka/conn.h"

enum { RES_TOPIC = 2, RES_BROKER = 4 };
enum { SRC_DYNAMIC_TOPIC = 1, SRC_STATIC_BROKER = 4, SRC_DEFAULT = 5 };

typedef struct aitem aitem;

typedef struct asub {
    rn_gw_call call; /* first: the native call of one item */
    aitem *item;
} asub;

struct aitem {
    asub sub;
    struct actx *x;
    char *name;
    int8_t type;    /* DescribeConfigs: the resource type */
    int32_t count;  /* CreatePartitions: the new partition count */
    int16_t error;  /* found while parsing: no call is made */
    char **keys;    /* DescribeConfigs: the keys asked for */
    int32_t n_keys; /* -1: every key */
    rn_kwriter out; /* the item's result, rendered */
};

typedef struct actx {
    rn_kreq *req;
    aitem *items;
    size_t n_items;
    size_t pending;
    bool validate_only, synonyms;
} actx;

static void actx_free(void *p)
{
    actx *x = p;
    if (!x)
        return;
    for (size_t i = 0; i < x->n_items; i++) {
        aitem *it = &x->items[i];
        free(it->name);
        for (int32_t k = 0; k < it->n_keys; k++)
            free(it->keys[k]);
        free(it->keys);
        rn_kwriter_fini(&it->out);
    }
    free(x->items);
    free(x);
}

static char *dup_str(rn_kstr s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s.data, n);
        p[n] = '\0';
    }
    return p;
}

static actx *actx_new(rn_kreq *req, size_t n)
{
    actx *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    req->ctx = x;
    req->ctx_free = actx_free;
    x->req = req;
    x->items = calloc(n + 1, sizeof(*x->items));
    if (!x->items)
        return NULL;
    return x;
}

/* Every item is rendered: the response, in request order. */
static void assemble(actx *x)
{
    rn_kreq *req = x->req;
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return;
    }
    rn_kwriter *w = &o->w;
    bool fx = req->h.flexible;
    rn_kafka_response_begin(w, req->h.correlation_id, fx);
    rn_kwrite_i32(w, 0); /* throttle_time_ms */
    rn_kwrite_array(w, fx, (int32_t)x->n_items);
    for (size_t i = 0; i < x->n_items; i++) {
        if (x->items[i].out.oom)
            w->oom = true;
        rn_kwrite_raw(w, x->items[i].out.buf, x->items[i].out.len);
    }
    rn_kwrite_tags(w, fx);
    rn_kafka_response_end(w, 0);
    rn_kreq_answer(req, o);
}

static void done_one(actx *x)
{
    if (--x->pending == 0)
        assemble(x);
}

/* Start item's native call; its answer (or the error when it cannot start)
 * goes to on_answer. */
static void start(aitem *it, Runnel__RequestHeader *h, rn_gw_answer_cb on_answer)
{
    it->sub.item = it;
    it->x->pending++;
    int rc = rn_kreq_call_as(it->x->req, &it->sub.call, h, NULL, 0, on_answer);
    if (rc < 0) {
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        eh.error_code = (uint32_t)-rc;
        on_answer(&it->sub.call, &eh, NULL, 0);
    }
}

static void release(rn_slice *slices, unsigned n_slices)
{
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
}

/* ---- CreatePartitions ------------------------------------------------------------ */

static void partitions_result(aitem *it, int16_t err, const char *msg)
{
    bool fx = it->x->req->h.flexible;
    rn_kwrite_str(&it->out, fx, it->name);
    rn_kwrite_i16(&it->out, err);
    rn_kwrite_str(&it->out, fx, err && msg && *msg ? msg : NULL);
    rn_kwrite_tags(&it->out, fx);
}

static void partitions_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                              unsigned n_slices)
{
    aitem *it = ((asub *)call)->item;
    release(slices, n_slices);
    partitions_result(it, rn_kafka_error((int)hdr->error_code), hdr->error_message);
    done_one(it->x);
}

int rn_kafka_create_partitions(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    bool fx = req->h.flexible;
    int32_t nt = rn_kread_array(rd, fx, false, fx ? 1 + 4 + 1 + 1 : 2 + 4 + 4);
    if (rd->err)
        return rd->err;
    actx *x = actx_new(req, (size_t)nt);
    if (!x)
        return -ENOMEM;
    for (int32_t t = 0; t < nt; t++) {
        aitem *it = &x->items[x->n_items++];
        it->x = x;
        rn_kwriter_init(&it->out);
        rn_kstr name = rn_kread_str(rd, fx, false);
        it->count = rn_kread_i32(rd);
        int32_t na = rn_kread_array(rd, fx, true, fx ? 2 : 4);
        for (int32_t a = 0; a < na && !rd->err; a++) {
            int32_t nb = rn_kread_array(rd, fx, false, 4);
            rn_kread_skip(rd, (size_t)nb * 4);
            if (fx)
                rn_kread_tags(rd);
        }
        if (fx)
            rn_kread_tags(rd);
        if (rd->err)
            return rd->err;
        if (!(it->name = dup_str(name)))
            return -ENOMEM;
        if (na >= 0) /* manual assignments: runnel places replicas itself */
            it->error = RN_KAFKA_INVALID_REQUEST;
    }
    (void)rn_kread_i32(rd); /* timeout_ms: the native call has its own */
    x->validate_only = rn_kread_i8(rd) != 0;
    if (fx)
        rn_kread_tags(rd);
    if (rd->err)
        return rd->err;
    x->pending = 1;
    for (size_t i = 0; i < x->n_items; i++) {
        aitem *it = &x->items[i];
        if (it->error) {
            partitions_result(it, it->error,
                              "manual replica assignments are not supported: runnel places "
                              "replicas itself");
            continue;
        }
        if (it->count <= 0) { /* natively, 0 would mean "alter configs" */
            partitions_result(it, RN_KAFKA_INVALID_PARTITIONS,
                              "the partition count must be positive");
            continue;
        }
        Runnel__AlterConfigsRequest ar = RUNNEL__ALTER_CONFIGS_REQUEST__INIT;
        ar.topic = it->name;
        ar.partitions = it->count;
        ar.validate_only = x->validate_only;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__ALTER_CONFIGS;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_ALTER_CONFIGS;
        h.alter_configs = &ar;
        start(it, &h, partitions_answer);
    }
    done_one(x);
    return 0;
}

/* ---- DescribeConfigs ------------------------------------------------------------- */

/* A topic-level setting and the broker setting it inherits. */
static const struct {
    const char *topic, *broker;
} synonyms[] = {
    {"flush", "log.flush"},
    {"index.interval.bytes", "log.index.interval.bytes"},
    {"max.message.bytes", "message.max.bytes"},
    {"min.insync.replicas", "min.insync.replicas"}, /* one name at both levels, as Kafka's */
    {"preallocate.bytes", "log.preallocate.bytes"},
    {"retention.bytes", "log.retention.bytes"},
    {"retention.ms", "log.retention.ms"},
    {"segment.bytes", "log.segment.bytes"},
    {"segment.ms", "log.roll.ms"},
};

/* The value of key in a `key=value` line dump (rn_config_dump), copied into
 * out; false when the key is not there. */
static bool dump_value(const char *dump, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *l = dump; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (len > kl && memcmp(l, key, kl) == 0 && l[kl] == '=') {
            size_t vl = len - kl - 1;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, l + kl + 1, vl);
            out[vl] = '\0';
            return true;
        }
        l = nl ? nl + 1 : NULL;
    }
    return false;
}

/* The broker's settings and runnel's defaults as dumps (malloc'd). */
typedef struct dumps {
    char *now, *def;
} dumps;

static char *dump_of(const rn_config *c)
{
    int n = rn_config_dump(c, NULL, 0);
    if (n < 0)
        return NULL;
    char *buf = malloc((size_t)n + 1);
    if (buf)
        rn_config_dump(c, buf, (size_t)n + 1);
    return buf;
}

static int dumps_make(dumps *d, const rn_config *cfg)
{
    d->now = d->def = NULL;
    rn_config *def = malloc(sizeof(*def));
    if (!def)
        return -ENOMEM;
    rn_config_default(def);
    d->now = dump_of(cfg);
    d->def = dump_of(def);
    free(def);
    if (!d->now || !d->def) {
        free(d->now);
        free(d->def);
        return -ENOMEM;
    }
    return 0;
}

static void dumps_free(dumps *d)
{
    free(d->now);
    free(d->def);
}

/* STATIC_BROKER_CONFIG when the broker's configuration changed key from
 * runnel's default, else DEFAULT_CONFIG. */
static int8_t broker_source(const dumps *d, const char *key)
{
    char now[512], def[512];
    bool has_now = dump_value(d->now, key, now, sizeof(now));
    bool has_def = dump_value(d->def, key, def, sizeof(def));
    return has_now && (!has_def || strcmp(now, def) != 0) ? SRC_STATIC_BROKER : SRC_DEFAULT;
}

static bool wanted(const aitem *it, const char *key)
{
    if (it->n_keys < 0)
        return true;
    for (int32_t k = 0; k < it->n_keys; k++)
        if (strcmp(it->keys[k], key) == 0)
            return true;
    return false;
}

/* One config entry of a result. synonym/syn_value: the broker setting it
 * inherits (NULL: none). */
static void config_entry(aitem *it, int16_t v, const char *name, const char *value, bool read_only,
                         int8_t source, const char *synonym, const char *syn_value,
                         int8_t syn_source)
{
    rn_kwriter *w = &it->out;
    rn_kwrite_str(w, false, name);
    rn_kwrite_str(w, false, value);
    rn_kwrite_i8(w, read_only);
    if (v == 0)
        rn_kwrite_i8(w, source == SRC_DEFAULT); /* is_default */
    else
        rn_kwrite_i8(w, source);
    rn_kwrite_i8(w, 0); /* is_sensitive: runnel keeps no secrets in its settings */
    if (v >= 1) {
        bool syn = it->x->synonyms;
        /* Kafka lists the entry itself first, then what it would fall back to. */
        int32_t n = !syn ? 0 : 1 + (synonym && source == SRC_DYNAMIC_TOPIC);
        rn_kwrite_array(w, false, n);
        if (n >= 1) {
            rn_kwrite_str(w, false, source == SRC_DYNAMIC_TOPIC || !synonym ? name : synonym);
            rn_kwrite_str(w, false, source == SRC_DYNAMIC_TOPIC || !synonym ? value : syn_value);
            rn_kwrite_i8(w, source);
        }
        if (n == 2) {
            rn_kwrite_str(w, false, synonym);
            rn_kwrite_str(w, false, syn_value);
            rn_kwrite_i8(w, syn_source);
        }
    }
}

static void result_head(aitem *it, int16_t err, const char *msg)
{
    rn_kwrite_i16(&it->out, err);
    rn_kwrite_str(&it->out, false, err && msg && *msg ? msg : NULL);
    rn_kwrite_i8(&it->out, it->type);
    rn_kwrite_str(&it->out, false, it->name);
}

static void result_error(aitem *it, int16_t err, const char *msg)
{
    result_head(it, err, msg);
    rn_kwrite_array(&it->out, false, 0);
}

static void topic_configs_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                                 unsigned n_slices)
{
    aitem *it = ((asub *)call)->item;
    actx *x = it->x;
    release(slices, n_slices);
    int16_t v = x->req->h.api_version;
    const Runnel__DescribeTopicResponse *dt =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_DESCRIBE_TOPIC ? hdr->describe_topic : NULL;
    int16_t err = rn_kafka_error((int)hdr->error_code);
    rn_broker *b = rn_kreq_broker(x->req);
    dumps d = {0};
    if (!err && (!dt || !b))
        err = RN_KAFKA_UNKNOWN_SERVER_ERROR;
    if (!err && dumps_make(&d, &b->cfg) < 0)
        err = RN_KAFKA_UNKNOWN_SERVER_ERROR;
    if (err) {
        result_error(it, err, hdr->error_message);
        done_one(x);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < dt->n_configs; i++)
        n += wanted(it, dt->configs[i]->key);
    result_head(it, 0, NULL);
    rn_kwrite_array(&it->out, false, (int32_t)n);
    for (size_t i = 0; i < dt->n_configs; i++) {
        const char *key = dt->configs[i]->key, *value = dt->configs[i]->value;
        if (!wanted(it, key))
            continue;
        bool own = false;
        for (size_t k = 0; k < dt->n_overridden; k++)
            own |= strcmp(dt->overridden[k], key) == 0;
        const char *syn = NULL;
        for (size_t k = 0; k < sizeof(synonyms) / sizeof(synonyms[0]); k++)
            if (strcmp(synonyms[k].topic, key) == 0)
                syn = synonyms[k].broker;
        char syn_value[512] = "";
        int8_t syn_source = SRC_DEFAULT;
        if (syn) {
            dump_value(d.now, syn, syn_value, sizeof(syn_value));
            syn_source = broker_source(&d, syn);
        }
        config_entry(it, v, key, value, false, own ? SRC_DYNAMIC_TOPIC : syn_source, syn,
                     syn ? syn_value : NULL, syn_source);
    }
    dumps_free(&d);
    done_one(x);
}

/* A BROKER resource: this node's settings, answered here. */
static void broker_configs(aitem *it, rn_broker *b)
{
    int16_t v = it->x->req->h.api_version;
    char self[16];
    snprintf(self, sizeof(self), "%d", b ? b->cfg.node_id : 1);
    if (it->name[0] && strcmp(it->name, self) != 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "this is broker %s: ask broker %.32s itself", self, it->name);
        result_error(it, RN_KAFKA_INVALID_REQUEST, msg);
        return;
    }
    dumps d = {0};
    if (!b || dumps_make(&d, &b->cfg) < 0) {
        result_error(it, RN_KAFKA_UNKNOWN_SERVER_ERROR, "cannot read the broker's settings");
        return;
    }
    /* Two passes over the dump: count, then write. */
    int32_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            result_head(it, 0, NULL);
            rn_kwrite_array(&it->out, false, n);
        }
        for (const char *l = d.now; l && *l;) {
            const char *nl = strchr(l, '\n');
            size_t len = nl ? (size_t)(nl - l) : strlen(l);
            const char *eq = memchr(l, '=', len);
            char key[128], value[512];
            if (eq && (size_t)(eq - l) < sizeof(key)) {
                memcpy(key, l, (size_t)(eq - l));
                key[eq - l] = '\0';
                if (wanted(it, key) && dump_value(d.now, key, value, sizeof(value))) {
                    if (pass == 0)
                        n++;
                    else
                        config_entry(it, v, key, value, true, broker_source(&d, key), NULL, NULL,
                                     0);
                }
            }
            l = nl ? nl + 1 : NULL;
        }
    }
    dumps_free(&d);
}

int rn_kafka_describe_configs(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    int16_t v = req->h.api_version;
    int32_t nr = rn_kread_array(rd, false, false, 1 + 2 + 4);
    if (rd->err)
        return rd->err;
    actx *x = actx_new(req, (size_t)nr);
    if (!x)
        return -ENOMEM;
    for (int32_t r = 0; r < nr; r++) {
        aitem *it = &x->items[x->n_items++];
        it->x = x;
        it->n_keys = -1;
        rn_kwriter_init(&it->out);
        it->type = rn_kread_i8(rd);
        rn_kstr name = rn_kread_string(rd, false);
        int32_t nk = rn_kread_array(rd, false, true, 2);
        if (rd->err)
            return rd->err;
        if (!(it->name = dup_str(name)))
            return -ENOMEM;
        if (nk >= 0) {
            if (!(it->keys = calloc((size_t)nk + 1, sizeof(*it->keys))))
                return -ENOMEM;
            it->n_keys = 0;
            for (int32_t k = 0; k < nk; k++) {
                rn_kstr key = rn_kread_string(rd, false);
                if (rd->err)
                    return rd->err;
                if (!(it->keys[it->n_keys] = dup_str(key)))
                    return -ENOMEM;
                it->n_keys++;
            }
        }
    }
    if (v >= 1)
        x->synonyms = rn_kread_i8(rd) != 0;
    if (rd->err)
        return rd->err;
    x->pending = 1;
    for (size_t i = 0; i < x->n_items; i++) {
        aitem *it = &x->items[i];
        if (it->type == RES_BROKER) {
            broker_configs(it, rn_kreq_broker(req));
            continue;
        }
        if (it->type != RES_TOPIC) {
            result_error(it, RN_KAFKA_INVALID_REQUEST,
                         "only TOPIC (2) and BROKER (4) resources are described");
            continue;
        }
        Runnel__DescribeTopicRequest dr = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
        dr.name = it->name;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__DESCRIBE_TOPIC;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_TOPIC;
        h.describe_topic = &dr;
        start(it, &h, topic_configs_answer);
    }
    done_one(x);
    return 0;
}
