/*
 * admin.c — rn_admin: topics, configs, offsets and consumer groups, as
 * synchronous calls.
 *
 * Each call builds one request, sends it with rn__client_call_any (any broker
 * can answer the topic APIs: the first open connection, else the bootstrap
 * servers in turn) or to a partition's leader (ListOffsets), and waits at most
 * socket.timeout.ms for the answer. Errors come back as the broker's code
 * (-RN_E_TOPIC_EXISTS...) or the transport's (-ECONNREFUSED...), and the
 * handle's errmsg says what was asked and what went wrong, with the broker's
 * own message when it sent one.
 *
 * Results handed to the caller are single allocations (rn_admin_list_topics'
 * names, rn_admin_describe_topic's description, rn_admin_list_groups' and
 * rn_admin_describe_group's answers), so one free() releases them: the
 * layout is computed first, then filled.
 *
 * Group calls go to any broker too (the coordinator leads __offsets: one
 * node today). A group's lag is the coordinator's figure (high watermark
 * minus committed offset); describe adds each owner's client id and host
 * from the member list, so a row says who reads it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/internal.h"

struct rn_admin {
    rn__client cl;
};

int rn_admin_new(rn_admin **out, const rn_conf *conf)
{
    *out = NULL;
    rn_admin *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    int rc = rn__client_init(&a->cl, conf);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void rn_admin_free(rn_admin *a)
{
    if (!a)
        return;
    rn__client_fini(&a->cl);
    free(a);
}

const char *rn_admin_errmsg(const rn_admin *a)
{
    return a->cl.errmsg;
}

/* Does the broker's message m name subject as a word of its own? The broker
 * writes whole sentences ("topic orders already exists"), which then need no
 * context added. */
static bool names_subject(const char *m, const char *subject)
{
    size_t n = strlen(subject);
    if (n == 0)
        return false;
    for (const char *p = strstr(m, subject); p; p = strstr(p + 1, subject)) {
        bool left = p == m || strchr(" \"'", p[-1]);
        bool right = p[n] == 0 || strchr(" \"':,", p[n]);
        if (left && right)
            return true;
    }
    return false;
}

/* One sentence for a broker's error about subject: the broker's own message
 * when it names the subject, else "<what>: <its message or the code's
 * text>" (never both the code's text and a message that says the same). */
static int broker_fail(rn__client *cl, int err, const char *what, const char *subject,
                       const char *m)
{
    bool has_m = m && *m && strcmp(m, rn_strerror(err)) != 0;
    if (has_m && subject && names_subject(m, subject))
        return rn__fail(cl, err, "%s", m);
    return rn__fail(cl, err, "%s: %s", what, has_m ? m : rn_strerror(err));
}

/* The header's error of a whole-request answer, as a negative code with
 * errmsg. what ends with the request's subject ("describe group g"). */
static int header_error(rn__client *cl, const rn__reply *r, const char *what)
{
    const char *sp = strrchr(what, ' ');
    return broker_fail(cl, -(int)r->hdr->error_code, what, sp ? sp + 1 : NULL,
                       r->hdr->error_message);
}

/* Send h (body_case and its body set) as api and wait for the answer in *r.
 * On failure a negative code with errmsg "<what>: …", what formatted from fmt
 * (it ends with the request's subject: "describe group g"), and nothing in
 * *r to release. */
__attribute__((format(printf, 5, 0))) static int
vcall(rn__client *cl, Runnel__RequestHeader *h, int api, rn__reply *r, const char *fmt, va_list ap)
{
    char what[300];
    vsnprintf(what, sizeof(what), fmt, ap);
    /* Group APIs go to the group's coordinator (coordinator.c), the rest to any broker. */
    const char *group =
        h->body_case == RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_GROUP   ? h->describe_group->group_id
        : h->body_case == RUNNEL__REQUEST_HEADER__BODY_DELETE_GROUP   ? h->delete_group->group_id
        : h->body_case == RUNNEL__REQUEST_HEADER__BODY_COMMIT_OFFSETS ? h->commit_offsets->group_id
        : h->body_case == RUNNEL__REQUEST_HEADER__BODY_FETCH_OFFSETS  ? h->fetch_offsets->group_id
        : h->body_case == RUNNEL__REQUEST_HEADER__BODY_LIST_GROUPS    ? ""
                                                                      : NULL;
    int rc = group ? rn__coord_call(cl, group, h, api, cl->conf->socket_timeout_ms, r)
                   : rn__client_call_any(cl, h, api, cl->conf->socket_timeout_ms, r);
    if (rc < 0) {
        char m[sizeof(cl->errmsg)];
        snprintf(m, sizeof(m), "%s", cl->errmsg);
        return rn__fail(cl, rc, "%s: %s", what, m);
    }
    if (r->hdr->error_code) {
        rc = header_error(cl, r, what);
        rn__reply_fini(r);
    }
    return rc;
}

__attribute__((format(printf, 5, 6))) static int call(rn__client *cl, Runnel__RequestHeader *h,
                                                      int api, rn__reply *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vcall(cl, h, api, r, fmt, ap);
    va_end(ap);
    return rc;
}

/* call for a request whose answer says no more than that it was done. */
__attribute__((format(printf, 4, 5))) static int call_done(rn__client *cl, Runnel__RequestHeader *h,
                                                           int api, const char *fmt, ...)
{
    rn__reply r;
    va_list ap;
    va_start(ap, fmt);
    int rc = vcall(cl, h, api, &r, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return rc;
    rn__reply_fini(&r);
    return 0;
}

/* ---- Topics ------------------------------------------------------------------------ */

/* One topic's outcome of CreateTopics / DeleteTopics. */
static int topic_result(rn__client *cl, size_t n, Runnel__TopicResult **res, const char *name,
                        const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(res[i]->name, name) != 0)
            continue;
        if (res[i]->error_code == 0)
            return 0;
        char w[300];
        snprintf(w, sizeof(w), "%s %s", what, name);
        return broker_fail(cl, -(int)res[i]->error_code, w, name, res[i]->error_message);
    }
    return rn__fail(cl, -RN_E_INVALID_REQUEST, "%s %s: the broker's answer does not name it", what,
                    name);
}

int rn_admin_create_topic(rn_admin *a, const char *name, int32_t partitions,
                          int16_t replication_factor, const char *const *config_keys,
                          const char *const *config_values, size_t n_configs)
{
    rn__client *cl = &a->cl;
    if (!name)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "create topic: no name");
    Runnel__NewTopic__ConfigsEntry *e = calloc(n_configs ? n_configs : 1, sizeof(*e));
    Runnel__NewTopic__ConfigsEntry **ep = calloc(n_configs ? n_configs : 1, sizeof(*ep));
    if (!e || !ep) {
        free(e);
        free(ep);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_configs; i++) {
        runnel__new_topic__configs_entry__init(&e[i]);
        e[i].key = (char *)config_keys[i];
        e[i].value = (char *)config_values[i];
        ep[i] = &e[i];
    }
    Runnel__NewTopic nt = RUNNEL__NEW_TOPIC__INIT;
    Runnel__NewTopic *ntp = &nt;
    nt.name = (char *)name;
    nt.num_partitions = partitions > 0 ? partitions : -1;
    nt.replication_factor = replication_factor > 0 ? replication_factor : -1;
    nt.n_configs = n_configs;
    nt.configs = ep;
    Runnel__CreateTopicsRequest req = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
    req.n_topics = 1;
    req.topics = &ntp;
    req.timeout_ms = (uint32_t)cl->conf->socket_timeout_ms;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_CREATE_TOPICS;
    h.create_topics = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__CREATE_TOPICS, &r, "create topic %s", name);
    free(e);
    free(ep);
    if (rc < 0)
        return rc;
    rc = topic_result(cl, r.hdr->create_topics->n_topics, r.hdr->create_topics->topics, name,
                      "create topic");
    rn__reply_fini(&r);
    return rc;
}

int rn_admin_delete_topic(rn_admin *a, const char *name)
{
    rn__client *cl = &a->cl;
    if (!name)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "delete topic: no name");
    char *names[1] = {(char *)name};
    Runnel__DeleteTopicsRequest req = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
    req.n_topics = 1;
    req.topics = names;
    req.timeout_ms = (uint32_t)cl->conf->socket_timeout_ms;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DELETE_TOPICS;
    h.delete_topics = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__DELETE_TOPICS, &r, "delete topic %s", name);
    if (rc < 0)
        return rc;
    rc = topic_result(cl, r.hdr->delete_topics->n_topics, r.hdr->delete_topics->topics, name,
                      "delete topic");
    rn__reply_fini(&r);
    return rc;
}

/* A fresh Metadata answer for one topic, or for every topic when topic is NULL. */
static int metadata(rn__client *cl, const char *topic, rn__reply *r)
{
    char *names[1] = {(char *)topic};
    Runnel__MetadataRequest req = RUNNEL__METADATA_REQUEST__INIT;
    req.n_topics = topic ? 1 : 0;
    req.topics = names;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
    h.metadata = &req;
    return call(cl, &h, RUNNEL__API__METADATA, r, "metadata%s%s", topic ? " of topic " : "",
                topic ? topic : "");
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

int rn_admin_list_topics(rn_admin *a, char ***names, size_t *n)
{
    rn__client *cl = &a->cl;
    *names = NULL;
    *n = 0;
    rn__reply r;
    int rc = metadata(cl, NULL, &r);
    if (rc < 0)
        return rc;
    Runnel__MetadataResponse *mr = r.hdr->metadata;
    size_t bytes = (mr->n_topics + 1) * sizeof(char *);
    for (size_t i = 0; i < mr->n_topics; i++)
        bytes += strlen(mr->topics[i]->name) + 1;
    char **v = malloc(bytes);
    if (!v) {
        rn__reply_fini(&r);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    char *s = (char *)(v + mr->n_topics + 1);
    for (size_t i = 0; i < mr->n_topics; i++) {
        size_t len = strlen(mr->topics[i]->name) + 1;
        memcpy(s, mr->topics[i]->name, len);
        v[i] = s;
        s += len;
    }
    v[mr->n_topics] = NULL;
    qsort(v, mr->n_topics, sizeof(*v), cmp_str);
    *names = v;
    *n = mr->n_topics;
    rn__reply_fini(&r);
    return 0;
}

int rn_admin_partition_count(rn_admin *a, const char *topic, int32_t *n)
{
    rn__client *cl = &a->cl;
    *n = 0;
    rn__reply r;
    int rc = metadata(cl, topic, &r);
    if (rc < 0)
        return rc;
    Runnel__MetadataResponse *mr = r.hdr->metadata;
    rc = rn__fail(cl, -RN_E_UNKNOWN_TOPIC, "topic %s: %s", topic, rn_strerror(-RN_E_UNKNOWN_TOPIC));
    for (size_t i = 0; i < mr->n_topics; i++) {
        if (strcmp(mr->topics[i]->name, topic) != 0)
            continue;
        if (mr->topics[i]->error_code) {
            int err = -(int)mr->topics[i]->error_code;
            rc = rn__fail(cl, err, "topic %s: %s", topic, rn_strerror(err));
        } else {
            *n = (int32_t)mr->topics[i]->n_partitions;
            rc = 0;
        }
        break;
    }
    rn__reply_fini(&r);
    return rc;
}

/* ---- Describe ------------------------------------------------------------------------- */

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

static int cmp_entry(const void *x, const void *y)
{
    const Runnel__DescribeTopicResponse__ConfigsEntry *const *a = x, *const *b = y;
    return strcmp((*a)->key, (*b)->key);
}

int rn_admin_describe_topic(rn_admin *a, const char *name, rn_topic_desc **out)
{
    rn__client *cl = &a->cl;
    *out = NULL;
    Runnel__DescribeTopicRequest req = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
    req.name = (char *)name;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_TOPIC;
    h.describe_topic = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__DESCRIBE_TOPIC, &r, "describe topic %s", name);
    if (rc < 0)
        return rc;
    Runnel__DescribeTopicResponse *dr = r.hdr->describe_topic;
    size_t np = dr->n_partitions, nc = dr->n_configs;
    /* Layout: desc | partitions | replica and isr ids | key ptrs | value ptrs | strings. */
    size_t ids = 0, strs = strlen(dr->name) + 1;
    for (size_t i = 0; i < np; i++)
        ids += dr->partitions[i]->n_replicas + dr->partitions[i]->n_isr +
               dr->partitions[i]->n_target_replicas + dr->partitions[i]->n_elr;
    for (size_t i = 0; i < nc; i++)
        strs += strlen(dr->configs[i]->key) + strlen(dr->configs[i]->value) + 2;
    size_t off_parts = align8(sizeof(rn_topic_desc));
    size_t off_ids = off_parts + align8(np * sizeof(rn_partition_desc));
    size_t off_keys = off_ids + align8(ids * sizeof(int32_t));
    size_t off_vals = off_keys + nc * sizeof(char *);
    size_t off_over = off_vals + nc * sizeof(char *);
    size_t off_strs = off_over + align8(nc * sizeof(bool));
    uint8_t *block = calloc(1, off_strs + strs);
    if (!block) {
        rn__reply_fini(&r);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    rn_topic_desc *d = (rn_topic_desc *)block;
    rn_partition_desc *parts = (rn_partition_desc *)(block + off_parts);
    int32_t *idp = (int32_t *)(block + off_ids);
    const char **keys = (const char **)(block + off_keys);
    const char **vals = (const char **)(block + off_vals);
    char *s = (char *)(block + off_strs);
    size_t len = strlen(dr->name) + 1;
    memcpy(s, dr->name, len);
    d->name = s;
    s += len;
    qsort(dr->configs, nc, sizeof(*dr->configs), cmp_entry);
    for (size_t i = 0; i < nc; i++) {
        len = strlen(dr->configs[i]->key) + 1;
        memcpy(s, dr->configs[i]->key, len);
        keys[i] = s;
        s += len;
        len = strlen(dr->configs[i]->value) + 1;
        memcpy(s, dr->configs[i]->value, len);
        vals[i] = s;
        s += len;
    }
    bool *over = (bool *)(block + off_over);
    for (size_t i = 0; i < nc; i++)
        for (size_t k = 0; k < dr->n_overridden; k++)
            if (strcmp(keys[i], dr->overridden[k]) == 0)
                over[i] = true;
    d->n_configs = nc;
    d->config_keys = keys;
    d->config_values = vals;
    d->config_overridden = over;
    for (size_t i = 0; i < np; i++) {
        const Runnel__PartitionDescription *pd = dr->partitions[i];
        rn_partition_desc *p = &parts[i];
        p->partition = pd->partition;
        p->leader = pd->leader;
        p->leader_epoch = pd->leader_epoch;
        p->n_replicas = pd->n_replicas;
        p->replicas = idp;
        if (pd->n_replicas)
            memcpy(idp, pd->replicas, pd->n_replicas * sizeof(int32_t));
        idp += pd->n_replicas;
        p->n_isr = pd->n_isr;
        p->isr = idp;
        if (pd->n_isr)
            memcpy(idp, pd->isr, pd->n_isr * sizeof(int32_t));
        idp += pd->n_isr;
        p->n_target = pd->n_target_replicas;
        p->target = idp;
        if (pd->n_target_replicas)
            memcpy(idp, pd->target_replicas, pd->n_target_replicas * sizeof(int32_t));
        idp += pd->n_target_replicas;
        p->n_elr = pd->n_elr;
        p->elr = idp;
        if (pd->n_elr)
            memcpy(idp, pd->elr, pd->n_elr * sizeof(int32_t));
        idp += pd->n_elr;
        p->throttle = pd->throttle_rate;
        p->log_start_offset = pd->log_start_offset;
        p->high_watermark = pd->high_watermark;
        p->log_end_offset = pd->log_end_offset;
        p->size_bytes = pd->size_bytes;
    }
    d->n_partitions = np;
    d->partitions = parts;
    rn__reply_fini(&r);
    *out = d;
    return 0;
}

void rn_admin_describe_free(rn_topic_desc *d)
{
    free(d);
}

/* ---- Partitions ------------------------------------------------------------------------- */

int rn_admin_move_partition(rn_admin *a, const char *topic, int32_t partition,
                            const int32_t *brokers, size_t n)
{
    return rn_admin_move_partition_throttled(a, topic, partition, brokers, n, 0);
}

int rn_admin_move_partition_throttled(rn_admin *a, const char *topic, int32_t partition,
                                      const int32_t *brokers, size_t n, int64_t throttle)
{
    rn__client *cl = &a->cl;
    if (throttle < 0)
        return rn__fail(cl, -RN_E_INVALID_REQUEST, "move: a throttle is bytes/s, 0 or more");
    if (!topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "move partition: no topic");
    if (n == 0 || !brokers)
        return rn__fail(cl, -RN_E_INVALID_REQUEST, "move %s-%d: no broker to move it to", topic,
                        partition);
    Runnel__PartitionReassignment m = RUNNEL__PARTITION_REASSIGNMENT__INIT;
    m.topic = (char *)topic;
    m.partition = partition;
    m.n_replicas = n;
    m.replicas = (int32_t *)brokers;
    m.throttle_rate = throttle;
    Runnel__PartitionReassignment *mp = &m;
    Runnel__ReassignPartitionsRequest req = RUNNEL__REASSIGN_PARTITIONS_REQUEST__INIT;
    req.n_reassignments = 1;
    req.reassignments = &mp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_REASSIGN_PARTITIONS;
    h.reassign_partitions = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__REASSIGN_PARTITIONS, &r, "move %s-%d", topic, partition);
    if (rc < 0)
        return rc;
    Runnel__ReassignPartitionsResponse *rr = r.hdr->reassign_partitions;
    rc = 1; /* not named yet */
    for (size_t i = 0; i < rr->n_results; i++) {
        const Runnel__PartitionReassignmentResult *res = rr->results[i];
        if (strcmp(res->topic, topic) != 0 || res->partition != partition)
            continue;
        char w[300];
        snprintf(w, sizeof(w), "move %s-%d", topic, partition);
        rc = res->error_code == 0
                 ? 0
                 : broker_fail(cl, -(int)res->error_code, w, topic, res->error_message);
        break;
    }
    if (rc == 1)
        rc = rn__fail(cl, -RN_E_INVALID_REQUEST, "move %s-%d: the broker's answer does not name it",
                      topic, partition);
    rn__reply_fini(&r);
    return rc;
}

int rn_admin_create_partitions(rn_admin *a, const char *topic, int32_t partitions)
{
    rn__client *cl = &a->cl;
    if (partitions < 1)
        return rn__fail(cl, -RN_E_INVALID_PARTITIONS, "topic %s: partitions must be positive",
                        topic);
    Runnel__AlterConfigsRequest req = RUNNEL__ALTER_CONFIGS_REQUEST__INIT;
    req.topic = (char *)topic;
    req.partitions = partitions;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_ALTER_CONFIGS;
    h.alter_configs = &req;
    return call_done(cl, &h, RUNNEL__API__ALTER_CONFIGS, "add partitions to topic %s", topic);
}

/* ---- Configs ---------------------------------------------------------------------------- */

int rn_admin_alter_configs(rn_admin *a, const char *topic, const char *const *set_keys,
                           const char *const *set_values, size_t n_set,
                           const char *const *delete_keys, size_t n_delete)
{
    rn__client *cl = &a->cl;
    Runnel__AlterConfigsRequest__SetConfigsEntry *e = calloc(n_set ? n_set : 1, sizeof(*e));
    Runnel__AlterConfigsRequest__SetConfigsEntry **ep = calloc(n_set ? n_set : 1, sizeof(*ep));
    if (!e || !ep) {
        free(e);
        free(ep);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_set; i++) {
        runnel__alter_configs_request__set_configs_entry__init(&e[i]);
        e[i].key = (char *)set_keys[i];
        e[i].value = (char *)set_values[i];
        ep[i] = &e[i];
    }
    Runnel__AlterConfigsRequest req = RUNNEL__ALTER_CONFIGS_REQUEST__INIT;
    req.topic = (char *)topic;
    req.n_set_configs = n_set;
    req.set_configs = ep;
    req.n_delete_configs = n_delete;
    req.delete_configs = (char **)delete_keys;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_ALTER_CONFIGS;
    h.alter_configs = &req;
    int rc = call_done(cl, &h, RUNNEL__API__ALTER_CONFIGS, "alter configs of topic %s", topic);
    free(e);
    free(ep);
    return rc;
}

/* ---- Offsets ------------------------------------------------------------------------------ */

int rn_admin_list_offset(rn_admin *a, const char *topic, int32_t partition, int64_t timestamp,
                         int64_t *offset)
{
    rn__client *cl = &a->cl;
    *offset = -1;
    int64_t deadline = rn__now_ms() + cl->conf->socket_timeout_ms;
    for (;;) {
        rn__md_topic *t;
        int rc = rn__md_wait_topic(cl, topic, cl->conf->socket_timeout_ms, &t);
        if (rc < 0)
            return rc;
        rn__conn *c;
        rc = rn__md_leader(cl, topic, partition, &c);
        if (rc == -RN_E_UNKNOWN_TOPIC)
            return rn__fail(cl, rc, "topic %s has no partition %d", topic, partition);
        if (rc == 0) {
            Runnel__ListOffsetsPartition lp = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
            Runnel__ListOffsetsPartition *lpp = &lp;
            lp.topic = (char *)topic;
            lp.partition = partition;
            lp.timestamp = timestamp;
            Runnel__ListOffsetsRequest req = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
            req.n_partitions = 1;
            req.partitions = &lpp;
            Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
            h.list_offsets = &req;
            rn__reply r;
            rc = rn__client_call(cl, c, &h, NULL, 0, RUNNEL__API__LIST_OFFSETS,
                                 cl->conf->socket_timeout_ms, &r);
            if (rc == 0 && r.hdr->error_code) {
                rc = header_error(cl, &r, "list offsets");
                rn__reply_fini(&r);
            } else if (rc == 0) {
                Runnel__ListOffsetsResponse *lr = r.hdr->list_offsets;
                rc = -RN_E_INVALID_REQUEST;
                for (size_t i = 0; i < lr->n_partitions; i++) {
                    if (lr->partitions[i]->partition != partition ||
                        strcmp(lr->partitions[i]->topic, topic) != 0)
                        continue;
                    rc = -(int)lr->partitions[i]->error_code;
                    if (rc == 0)
                        *offset = lr->partitions[i]->offset;
                    break;
                }
                rn__reply_fini(&r);
                if (rc == 0)
                    return 0;
                rn__fail(cl, rc, "list offsets of %s-%d: %s", topic, partition,
                         rc == -RN_E_INVALID_REQUEST ? "the answer does not name the partition"
                                                     : rn_strerror(rc));
            }
        }
        if (!rn__retriable(rc) || rn__now_ms() + cl->conf->retry_backoff_ms >= deadline) {
            if (rc == -RN_E_NOT_LEADER)
                return rn__fail(cl, rc, "list offsets of %s-%d: no leader", topic, partition);
            return rc; /* errmsg already says what failed */
        }
        /* The leader moved or is unreachable: wait a little and ask again. */
        rn__md_topic *stale = rn__md_find(cl, topic);
        if (stale)
            stale->err = -RN_E_NOT_LEADER; /* forces rn__md_wait_topic to refresh */
        rn__client_poll(cl, cl->conf->retry_backoff_ms);
    }
}

/* ---- Consumer groups --------------------------------------------------------------------- */

/* Group APIs go to the group's coordinator, the broker that leads the
 * group's partition of __offsets (vcall finds it through coordinator.c). */

static size_t strsize(const char *s)
{
    return (s ? strlen(s) : 0) + 1;
}

int rn_admin_find_coordinator(rn_admin *a, const char *group, int32_t *node_id, char *host,
                              size_t len, uint16_t *port)
{
    rn__client *cl = &a->cl;
    rn__coord_forget(cl);
    int rc = rn__coord_find(cl, group, cl->conf->socket_timeout_ms);
    if (rc < 0)
        return rc;
    *node_id = cl->coord.any ? -1 : cl->coord.node_id;
    snprintf(host, len, "%s", cl->coord.any ? "" : cl->coord.host);
    *port = cl->coord.any ? 0 : cl->coord.port;
    return 0;
}

/* Copy s (NULL as "") to *p and move *p past it. */
static const char *put_str(char **p, const char *s)
{
    size_t len = strsize(s);
    memcpy(*p, s ? s : "", len);
    const char *out = *p;
    *p += len;
    return out;
}

int rn_admin_list_groups(rn_admin *a, rn_group_listing **out, size_t *n)
{
    rn__client *cl = &a->cl;
    *out = NULL;
    *n = 0;
    Runnel__ListGroupsRequest req = RUNNEL__LIST_GROUPS_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_GROUPS;
    h.list_groups = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__LIST_GROUPS, &r, "list groups");
    if (rc < 0)
        return rc;
    Runnel__ListGroupsResponse *lr = r.hdr->list_groups;
    /* One block: the listings, then their strings. */
    size_t strs = 0;
    for (size_t i = 0; i < lr->n_groups; i++)
        strs += strsize(lr->groups[i]->group_id) + strsize(lr->groups[i]->state);
    size_t head = align8((lr->n_groups ? lr->n_groups : 1) * sizeof(rn_group_listing));
    rn_group_listing *v = calloc(1, head + strs);
    if (!v) {
        rn__reply_fini(&r);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    char *s = (char *)v + head;
    for (size_t i = 0; i < lr->n_groups; i++) {
        v[i].group_id = put_str(&s, lr->groups[i]->group_id);
        v[i].state = put_str(&s, lr->groups[i]->state);
        v[i].members = lr->groups[i]->members;
    }
    *out = v;
    *n = lr->n_groups;
    rn__reply_fini(&r);
    return 0;
}

int rn_admin_cluster_status(rn_admin *a, rn_cluster_status **out)
{
    rn__client *cl = &a->cl;
    *out = NULL;
    Runnel__ClusterStatusRequest req = RUNNEL__CLUSTER_STATUS_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_CLUSTER_STATUS;
    h.cluster_status = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__CLUSTER_STATUS, &r, "cluster status");
    if (rc < 0)
        return rc;
    const Runnel__ClusterStatusResponse *cr = r.hdr->cluster_status;
    /* One block: the status, the voters, the brokers, the listed
     * partitions, their replica and ISR ids, then the strings. */
    size_t strs = strsize(cr->role), n_parts = cr->n_under_replicated + cr->n_offline, n_ids = 0;
    for (size_t i = 0; i < cr->n_voters; i++)
        strs += strsize(cr->voters[i]->endpoint);
    for (size_t i = 0; i < cr->n_brokers; i++)
        strs += strsize(cr->brokers[i]->endpoint);
    for (size_t i = 0; i < n_parts; i++) {
        const Runnel__ClusterPartition *cp = i < cr->n_under_replicated
                                                 ? cr->under_replicated[i]
                                                 : cr->offline[i - cr->n_under_replicated];
        strs += strsize(cp->topic);
        n_ids += cp->n_replicas + cp->n_isr;
    }
    size_t head = align8(sizeof(rn_cluster_status));
    size_t vsz = align8(cr->n_voters * sizeof(rn_cluster_voter));
    size_t bsz = align8(cr->n_brokers * sizeof(rn_cluster_broker));
    size_t psz = align8(n_parts * sizeof(rn_cluster_partition));
    size_t isz = align8(n_ids * sizeof(int32_t));
    char *blk = calloc(1, head + vsz + bsz + psz + isz + strs);
    if (!blk) {
        rn__reply_fini(&r);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    rn_cluster_status *st = (rn_cluster_status *)blk;
    rn_cluster_voter *vs = (rn_cluster_voter *)(blk + head);
    rn_cluster_broker *bs = (rn_cluster_broker *)(blk + head + vsz);
    rn_cluster_partition *ps = (rn_cluster_partition *)(blk + head + vsz + bsz);
    int32_t *ids = (int32_t *)(blk + head + vsz + bsz + psz);
    char *s = blk + head + vsz + bsz + psz + isz;
    st->node_id = cr->node_id;
    st->role = put_str(&s, cr->role);
    st->leader_id = cr->leader_id;
    st->epoch = cr->epoch;
    st->high_watermark = cr->high_watermark;
    st->log_end_offset = cr->log_end_offset;
    st->applied_offset = cr->applied_offset;
    st->clustered = cr->clustered;
    for (size_t i = 0; i < cr->n_voters; i++) {
        vs[i].id = cr->voters[i]->id;
        vs[i].endpoint = put_str(&s, cr->voters[i]->endpoint);
        vs[i].match_offset = cr->voters[i]->match_offset;
        vs[i].last_fetch_ms = cr->voters[i]->last_fetch_ms;
    }
    for (size_t i = 0; i < cr->n_brokers; i++) {
        bs[i].id = cr->brokers[i]->id;
        bs[i].endpoint = put_str(&s, cr->brokers[i]->endpoint);
        bs[i].epoch = cr->brokers[i]->epoch;
        bs[i].fenced = cr->brokers[i]->fenced;
        bs[i].last_heartbeat_ms = cr->brokers[i]->last_heartbeat_ms;
    }
    st->n_voters = cr->n_voters;
    st->voters = vs;
    st->n_brokers = cr->n_brokers;
    st->brokers = bs;
    for (size_t i = 0; i < n_parts; i++) {
        const Runnel__ClusterPartition *cp = i < cr->n_under_replicated
                                                 ? cr->under_replicated[i]
                                                 : cr->offline[i - cr->n_under_replicated];
        ps[i].topic = put_str(&s, cp->topic);
        ps[i].partition = cp->partition;
        ps[i].leader = cp->leader;
        ps[i].leader_epoch = cp->leader_epoch;
        ps[i].n_replicas = cp->n_replicas;
        ps[i].replicas = ids;
        for (size_t k = 0; k < cp->n_replicas; k++)
            *ids++ = cp->replicas[k];
        ps[i].n_isr = cp->n_isr;
        ps[i].isr = ids;
        for (size_t k = 0; k < cp->n_isr; k++)
            *ids++ = cp->isr[k];
    }
    st->partitions = cr->partitions;
    st->under_replicated_count = cr->under_replicated_count;
    st->offline_count = cr->offline_count;
    st->n_under_replicated = cr->n_under_replicated;
    st->under_replicated = ps;
    st->n_offline = cr->n_offline;
    st->offline = ps + cr->n_under_replicated;
    *out = st;
    rn__reply_fini(&r);
    return 0;
}

static int cmp_group_partition(const void *x, const void *y)
{
    const rn_group_partition *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    if (c)
        return c;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

/* The member of a DescribeGroup answer with this id, or NULL. */
static const Runnel__GroupMemberDescription *find_member(const Runnel__DescribeGroupResponse *d,
                                                         const char *id)
{
    if (!id || !*id)
        return NULL;
    for (size_t i = 0; i < d->n_members; i++)
        if (strcmp(d->members[i]->member_id, id) == 0)
            return d->members[i];
    return NULL;
}

int rn_admin_describe_group(rn_admin *a, const char *group, rn_group_desc **out)
{
    rn__client *cl = &a->cl;
    *out = NULL;
    if (!group || !*group)
        return rn__fail(cl, -RN_E_INVALID_REQUEST, "describe group: no group id");
    Runnel__DescribeGroupRequest req = RUNNEL__DESCRIBE_GROUP_REQUEST__INIT;
    req.group_id = (char *)group;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_GROUP;
    h.describe_group = &req;
    rn__reply r;
    int rc = call(cl, &h, RUNNEL__API__DESCRIBE_GROUP, &r, "describe group %s", group);
    if (rc < 0)
        return rc;
    Runnel__DescribeGroupResponse *d = r.hdr->describe_group;
    /* Layout: desc | partitions | strings (each row's owner copied with it:
     * rows are few, and the copies keep the layout a single pass). */
    size_t np = d->n_partitions;
    size_t strs = strsize(d->group_id) + strsize(d->state) + strsize(d->assignor);
    for (size_t i = 0; i < np; i++) {
        const Runnel__GroupPartitionLag *l = d->partitions[i];
        const Runnel__GroupMemberDescription *m = find_member(d, l->member_id);
        strs += strsize(l->topic) + strsize(l->member_id);
        strs += strsize(m ? m->client_id : NULL) + strsize(m ? m->host : NULL);
    }
    size_t off_parts = align8(sizeof(rn_group_desc));
    size_t off_strs = off_parts + align8(np * sizeof(rn_group_partition));
    uint8_t *block = calloc(1, off_strs + strs);
    if (!block) {
        rn__reply_fini(&r);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    rn_group_desc *gd = (rn_group_desc *)block;
    rn_group_partition *parts = (rn_group_partition *)(block + off_parts);
    char *s = (char *)(block + off_strs);
    gd->group_id = put_str(&s, d->group_id);
    gd->state = put_str(&s, d->state);
    gd->assignor = put_str(&s, d->assignor);
    gd->group_epoch = d->group_epoch;
    gd->n_members = d->n_members;
    for (size_t i = 0; i < np; i++) {
        const Runnel__GroupPartitionLag *l = d->partitions[i];
        const Runnel__GroupMemberDescription *m = find_member(d, l->member_id);
        rn_group_partition *p = &parts[i];
        p->topic = put_str(&s, l->topic);
        p->partition = l->partition;
        p->committed_offset = l->committed_offset;
        p->log_end_offset = l->log_end_offset;
        p->lag = l->lag;
        p->member_id = put_str(&s, l->member_id);
        p->client_id = put_str(&s, m ? m->client_id : NULL);
        p->host = put_str(&s, m ? m->host : NULL);
    }
    qsort(parts, np, sizeof(*parts), cmp_group_partition);
    gd->n_partitions = np;
    gd->partitions = parts;
    rn__reply_fini(&r);
    *out = gd;
    return 0;
}

void rn_admin_group_free(rn_group_desc *d)
{
    free(d);
}

int rn_admin_commit_offsets(rn_admin *a, const char *group, const char *const *topics,
                            const int32_t *partitions, const int64_t *offsets, size_t n)
{
    rn__client *cl = &a->cl;
    if (!group || !*group)
        return rn__fail(cl, -RN_E_INVALID_REQUEST, "commit offsets: no group id");
    for (size_t i = 0; i < n; i++)
        if (!topics[i] || partitions[i] < 0 || offsets[i] < 0)
            return rn__fail(cl, -EINVAL,
                            "commit offsets of group %s: entry %zu is not a topic, "
                            "partition >= 0 and offset >= 0",
                            group, i);
    Runnel__OffsetCommit *oc = calloc(n ? n : 1, sizeof(*oc));
    Runnel__OffsetCommit **ocp = calloc(n ? n : 1, sizeof(*ocp));
    if (!oc || !ocp) {
        free(oc);
        free(ocp);
        return rn__fail(cl, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        runnel__offset_commit__init(&oc[i]);
        oc[i].topic = (char *)topics[i];
        oc[i].partition = partitions[i];
        oc[i].offset = offsets[i];
        ocp[i] = &oc[i];
    }
    /* No member id: an admin commit, which the coordinator allows only while
     * the group has no member (a running consumer would overwrite it). */
    Runnel__CommitOffsetsRequest req = RUNNEL__COMMIT_OFFSETS_REQUEST__INIT;
    req.group_id = (char *)group;
    req.n_offsets = n;
    req.offsets = ocp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_COMMIT_OFFSETS;
    h.commit_offsets = &req;
    rn__reply r;
    char what[300];
    snprintf(what, sizeof(what), "commit offsets of group %s", group);
    int rc = call(cl, &h, RUNNEL__API__COMMIT_OFFSETS, &r, "%s", what);
    free(oc);
    free(ocp);
    if (rc < 0)
        return rc;
    Runnel__CommitOffsetsResponse *cr = r.hdr->commit_offsets;
    for (size_t i = 0; i < cr->n_offsets && rc == 0; i++) {
        if (!cr->offsets[i]->error_code)
            continue;
        int err = -(int)cr->offsets[i]->error_code;
        rc = rn__fail(cl, err, "%s: %s-%d: %s", what, cr->offsets[i]->topic,
                      cr->offsets[i]->partition, rn_strerror(err));
    }
    rn__reply_fini(&r);
    return rc;
}

int rn_admin_delete_group(rn_admin *a, const char *group)
{
    rn__client *cl = &a->cl;
    if (!group || !*group)
        return rn__fail(cl, -RN_E_INVALID_REQUEST, "delete group: no group id");
    Runnel__DeleteGroupRequest req = RUNNEL__DELETE_GROUP_REQUEST__INIT;
    req.group_id = (char *)group;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DELETE_GROUP;
    h.delete_group = &req;
    return call_done(cl, &h, RUNNEL__API__DELETE_GROUP, "delete group %s", group);
}
