/*
 * topic_changes.c — the metadata's topic-level mutators: a create (a
 * client's topic, or one of the broker's own), a delete, a config change, a
 * partition grow, with the checks they share: names taken or gone once the
 * changes in flight land (metadata.c's design block, invariant 3), the
 * replication factor against the live brokers, configs, the partition caps.
 * Each validates against the image and the changes in flight, encodes its
 * records (TopicRecord, RemoveTopicRecord, ConfigRecord,
 * PartitionCountRecord, PartitionRecords for new partitions) and submits
 * them as one change through the same path as partition_changes.c
 * (metadata_int.h); the image applies them and checks them again when they
 * commit (image.c). Two checks here are partition_changes.c's too: the live
 * topic a change names, and a topic's min.insync.replicas.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker/config.h"
#include "broker/meta/image.h"
#include "broker/meta/metadata.h"
#include "broker/meta/metadata_int.h"
#include "broker/meta/placement.h"
#include "broker/meta/records.h"
#include "protocol/errors.h"
#include "protocol/topic_name.h"

#define MAX_PARTITIONS RN_IMAGE_MAX_PARTITIONS

/* ---- Names and ids in flight (invariant 3) ----------------------------------- */

static bool pending_create(const rn_metadata *md, const char *name)
{
    for (const change *c = md->pending_head; c; c = c->next)
        if (c->kind == CHANGE_CREATE && strcmp(c->name, name) == 0)
            return true;
    return false;
}

static bool pending_delete(const rn_metadata *md, const uint8_t id[16])
{
    for (const change *c = md->pending_head; c; c = c->next)
        if (c->kind == CHANGE_DELETE && memcmp(c->id, id, 16) == 0)
            return true;
    return false;
}

static bool id_taken(const rn_metadata *md, const uint8_t id[16])
{
    if (rn_image_find_id(md->image, id, 16))
        return true;
    for (const change *c = md->pending_head; c; c = c->next)
        if (c->kind == CHANGE_CREATE && memcmp(c->id, id, 16) == 0)
            return true;
    return false;
}

/* 16 random bytes no topic uses (a clash is astronomically unlikely, but
 * checking costs nothing). */
static int new_topic_id(const rn_metadata *md, uint8_t id[16])
{
    do {
        size_t got = 0;
        while (got < 16) {
            ssize_t n = getrandom(id + got, 16 - got, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            got += (size_t)n;
        }
    } while (id_taken(md, id));
    return 0;
}

/* A topic a change may name: exists and no pending delete removes it. */
static const rn_topic_info *live_topic(const rn_metadata *md, const char *name)
{
    if (!name)
        return NULL;
    const rn_topic_info *t = rn_image_find(md->image, name);
    return t && !pending_delete(md, t->id) ? t : NULL;
}

/* The topic a delete, alter, grow or move (partition_changes.c) names: the
 * image usable, the topic live (invariant 3). */
int rn__metadata_check_target(const rn_metadata *md, const char *name, const rn_topic_info **t,
                              char *err, size_t errlen)
{
    int rc = rn__metadata_check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    *t = live_topic(md, name);
    if (!*t)
        return rn_errf(-RN_E_UNKNOWN_TOPIC, err, errlen, "topic %s does not exist",
                       name ? name : "(null)");
    return 0;
}

/* ---- Replicas ---------------------------------------------------------------- */

/* The brokers new replicas may go to: the unfenced ones in a cluster, this
 * node alone otherwise. Returns how many (at most cap). */
static int live_nodes(const rn_metadata *md, int32_t *out, int cap)
{
    if (!md->cluster) {
        out[0] = md->node_id;
        return 1;
    }
    int n = 0;
    for (unsigned i = 0; i < rn_image_broker_count(md->image) && n < cap; i++) {
        const rn_broker_info *b = rn_image_broker_at(md->image, i);
        if (!b->fenced)
            out[n++] = b->id;
    }
    return n;
}

/* The replication factor a create asks for, resolved against the live
 * brokers: -1 is default.replication.factor (internal topics: up to 3, as
 * Kafka's offsets.topic.replication.factor, but never more than are live).
 * Errors with err set: -RN_E_INVALID_REQUEST, -RN_E_NOT_ENOUGH_REPLICAS. */
static int resolve_rf(const rn_metadata *md, const char *name, int rf, bool internal, int n_live,
                      char *err, size_t errlen)
{
    if (rf == -1)
        rf = internal ? (n_live < 3 ? (n_live > 0 ? n_live : 1) : 3) : md->default_rf;
    if (rf < 1)
        return rn_errf(
            -RN_E_INVALID_REQUEST, err, errlen,
            "topic %s: replication factor %d, must be at least 1 (or -1 for the default)", name,
            rf);
    if (rf > n_live)
        return rn_errf(-RN_E_NOT_ENOUGH_REPLICAS, err, errlen,
                       "topic %s: replication factor %d is larger than the %d available broker%s",
                       name, rf, n_live, n_live == 1 ? "" : "s");
    return rf;
}

/* min.insync.replicas in keys/values (a topic's configs), else the
 * broker's: what the image records with each partition, for its ELR. */
static int32_t min_isr_of(const rn_metadata *md, const char *const *keys, const char *const *values,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], "min.insync.replicas") == 0 && rn_image_min_isr_value(values[i]) > 0)
            return rn_image_min_isr_value(values[i]);
    return md->default_min_isr;
}

int32_t rn__metadata_topic_min_isr(const rn_metadata *md, const rn_topic_info *t)
{
    return min_isr_of(md, t->config_keys, t->config_values, t->n_configs);
}

/* PartitionRecords for partitions [from, to) of topic id, rf replicas each
 * over live[0..n_live) (placement.h); the first replica leads and all are
 * in sync. */
static int enc_assign(encoder *e, uint8_t id[16], int32_t from, int32_t to, const int32_t *live,
                      int n_live, int rf, int32_t min_isr)
{
    int rc = 0;
    int32_t replicas[RN_MAX_BROKERS];
    for (int32_t p = from; p < to && rc == 0; p++) {
        rc = rn_placement_assign(live, n_live, rf, id, p, replicas);
        if (rc < 0)
            break;
        md_partition_record pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
        pr.topic_id.len = 16;
        pr.topic_id.data = id;
        pr.partition = p;
        pr.n_replicas = (size_t)rf;
        pr.replicas = replicas;
        pr.n_isr = (size_t)rf;
        pr.isr = replicas;
        pr.leader = replicas[0];
        pr.leader_epoch = 0;
        pr.min_isr = min_isr;
        md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
        rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
        rp.partition = &pr;
        rc = rn__metadata_enc_add(e, &rp);
    }
    return rc;
}

/* ---- Configs ----------------------------------------------------------------- */

/* Validate one topic-level key=value on a scratch copy of the defaults. */
static int check_config(rn_log_config *scratch, const char *topic_name, const char *key,
                        const char *value, char *err, size_t errlen)
{
    if (!key || !value)
        return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config key or value missing",
                       topic_name);
    char why[256] = "";
    int rc = rn_topic_config_set(scratch, key, value, why, sizeof(why));
    if (rc < 0)
        return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: %s", topic_name,
                       why[0] ? why : rn_strerror(rc));
    return 0;
}

static bool in_list(const char *const *keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i] && strcmp(keys[i], key) == 0)
            return true;
    return false;
}

/* Validate n key=value pairs on scratch; a key given twice is an error. */
static int check_configs(rn_log_config *scratch, const char *topic_name, const char *const *keys,
                         const char *const *values, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_config(scratch, topic_name, keys[i], values[i], err, errlen);
        if (rc < 0)
            return rc;
        if (in_list(keys, i, keys[i]))
            return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config %s given twice",
                           topic_name, keys[i]);
    }
    return 0;
}

/* ---- Caps and defaults ------------------------------------------------------- */

void rn_metadata_set_limits(rn_metadata *md, const rn_metadata_limits *l)
{
    md->limits = *l;
    md->limits_set = true;
}

int64_t rn_metadata_partition_count(const rn_metadata *md)
{
    int64_t n = rn_image_partition_count(md->image);
    for (const change *c = md->pending_head; c; c = c->next)
        if (c->kind == CHANGE_CREATE || c->kind == CHANGE_GROW)
            n += c->n_partitions;
    return n;
}

/* Checked before anything is written, so a create that cannot fit leaves
 * nothing behind. */
int rn_metadata_check_limits(const rn_metadata *md, const char *name, int32_t topic_total,
                             int32_t added, char *err, size_t errlen)
{
    if (!md->limits_set)
        return 0;
    const rn_metadata_limits *l = &md->limits;
    if (topic_total > l->max_per_topic)
        return rn_errf(-RN_E_INVALID_PARTITIONS, err, errlen,
                       "topic %s: %" PRId32
                       " partitions is more than max.partitions.per.topic (%" PRId32 ")",
                       name, topic_total, l->max_per_topic);
    int64_t have = rn_metadata_partition_count(md);
    if (have + added > l->max_total)
        return rn_errf(-RN_E_INVALID_PARTITIONS, err, errlen,
                       "topic %s: %" PRId32 " more partitions would make %" PRId64
                       " on this broker, more than max.partitions (%" PRId64 ")",
                       name, added, have + added, l->max_total);
    if (l->fit >= 0 && have + added > l->fit)
        return rn_errf(-RN_E_INVALID_PARTITIONS, err, errlen,
                       "topic %s: %" PRId32 " more partitions would make %" PRId64
                       " on this broker; its limits hold %" PRId64 " (%s)",
                       name, added, have + added, l->fit, l->fit_why);
    return 0;
}

void rn_metadata_set_default_rf(rn_metadata *md, int16_t rf)
{
    md->default_rf = rf;
}

void rn_metadata_set_default_min_isr(rn_metadata *md, int32_t n)
{
    md->default_min_isr = n >= 1 ? n : 1;
}

/* ---- Mutators ---------------------------------------------------------------- */

static int create_topic(rn_metadata *md, const char *name, int32_t n_partitions,
                        int16_t replication_factor, const char *const *config_keys,
                        const char *const *config_values, size_t n_configs, bool internal,
                        rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    int rc = rn__metadata_check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    /* Internal topics (__offsets, …) are created by the broker itself: the
     * same path as a client's topic, with the "__" prefix required instead
     * of refused. */
    rc = rn_topic_name_check(name, internal, err, errlen);
    if (rc < 0)
        return rc;
    if (n_partitions < 1 || n_partitions > MAX_PARTITIONS)
        return rn_errf(-RN_E_INVALID_PARTITIONS, err, errlen,
                       "topic %s: %" PRId32 " partitions, must be 1 to %d", name, n_partitions,
                       MAX_PARTITIONS);
    int32_t live[RN_MAX_BROKERS];
    int n_live = live_nodes(md, live, RN_MAX_BROKERS);
    rc = resolve_rf(md, name, replication_factor, internal, n_live, err, errlen);
    if (rc < 0)
        return rc;
    replication_factor = (int16_t)rc;
    rn_log_config scratch;
    rn_log_config_default(&scratch);
    rc = check_configs(&scratch, name, config_keys, config_values, n_configs, err, errlen);
    if (rc < 0)
        return rc;
    char why[256] = "";
    if (rn_topic_config_check(&scratch, why, sizeof(why)) < 0)
        return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: %s", name, why);
    if (rn_image_find(md->image, name) || pending_create(md, name))
        return rn_errf(-RN_E_TOPIC_EXISTS, err, errlen, "topic %s already exists", name);
    /* The broker's own topics (__offsets) are not held to the caps: without
     * them it cannot serve at all, and they are a partition or a few. */
    rc = internal ? 0 : rn_metadata_check_limits(md, name, n_partitions, n_partitions, err, errlen);
    if (rc < 0)
        return rc;

    change *c = rn__metadata_change_new(CHANGE_CREATE, NULL, cb, arg);
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    c->n_partitions = n_partitions;
    rc = new_topic_id(md, c->id);
    if (rc < 0) {
        rn__metadata_change_free(c);
        return rn_errf(rc, err, errlen, "metadata: getrandom: %s", rn_strerror(rc));
    }

    encoder e;
    md_config_entry *entries = calloc(n_configs ? n_configs : 1, sizeof(*entries));
    md_config_entry **ptrs = calloc(n_configs ? n_configs : 1, sizeof(*ptrs));
    rn__metadata_enc_init(&e);
    if (!entries || !ptrs) {
        free(entries);
        free(ptrs);
        rn__metadata_change_free(c);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    for (size_t i = 0; i < n_configs; i++) {
        runnel__metadata__topic_record__configs_entry__init(&entries[i]);
        entries[i].key = (char *)config_keys[i];
        entries[i].value = (char *)config_values[i];
        ptrs[i] = &entries[i];
    }
    md_topic_record tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
    tr.name = (char *)name;
    tr.topic_id.len = 16;
    tr.topic_id.data = c->id;
    tr.partitions = n_partitions;
    tr.replication_factor = replication_factor;
    tr.n_configs = n_configs;
    tr.configs = ptrs;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
    r.topic = &tr;
    rc = rn__metadata_enc_add(&e, &r);
    free(entries);
    free(ptrs);

    if (rc == 0)
        rc = enc_assign(&e, c->id, 0, n_partitions, live, n_live, replication_factor,
                        min_isr_of(md, config_keys, config_values, n_configs));
    return rn__metadata_submit(md, &e, c, rc, name, err, errlen);
}

int rn_metadata_create_topic(rn_metadata *md, const char *name, int32_t n_partitions,
                             int16_t replication_factor, const char *const *config_keys,
                             const char *const *config_values, size_t n_configs, rn_metadata_cb cb,
                             void *arg, char *err, size_t errlen)
{
    return create_topic(md, name, n_partitions, replication_factor, config_keys, config_values,
                        n_configs, false, cb, arg, err, errlen);
}

int rn_metadata_create_internal_topic(rn_metadata *md, const char *name, int32_t n_partitions,
                                      rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    return create_topic(md, name, n_partitions, -1, NULL, NULL, 0, true, cb, arg, err, errlen);
}

int rn_metadata_delete_topic(rn_metadata *md, const char *name, rn_metadata_cb cb, void *arg,
                             char *err, size_t errlen)
{
    const rn_topic_info *t;
    int rc = rn__metadata_check_target(md, name, &t, err, errlen);
    if (rc < 0)
        return rc;
    change *c = rn__metadata_change_new(CHANGE_DELETE, t->id, cb, arg);
    if (!c)
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    encoder e;
    rn__metadata_enc_init(&e);
    md_remove_record rr = RUNNEL__METADATA__REMOVE_TOPIC_RECORD__INIT;
    rr.topic_id.len = 16;
    rr.topic_id.data = c->id;
    rr.name = (char *)t->name;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_REMOVE_TOPIC;
    r.remove_topic = &rr;
    rc = rn__metadata_enc_add(&e, &r);
    return rn__metadata_submit(md, &e, c, rc, name, err, errlen);
}

int rn_metadata_alter_configs(rn_metadata *md, const char *topic_name, const char *const *set_keys,
                              const char *const *set_values, size_t n_set,
                              const char *const *delete_keys, size_t n_delete, rn_metadata_cb cb,
                              void *arg, char *err, size_t errlen)
{
    const rn_topic_info *t;
    int rc = rn__metadata_check_target(md, topic_name, &t, err, errlen);
    if (rc < 0)
        return rc;
    if (n_set + n_delete == 0)
        return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: no config to set or delete",
                       topic_name);
    rn_log_config scratch;
    rn_log_config_default(&scratch);
    rc = check_configs(&scratch, topic_name, set_keys, set_values, n_set, err, errlen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n_delete; i++) {
        const char *k = delete_keys[i];
        if (!k || !rn_topic_config_known(k))
            return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: unknown config %s",
                           topic_name, k ? k : "(null)");
        if (in_list(delete_keys, i, k) || in_list(set_keys, n_set, k))
            return rn_errf(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config %s given twice",
                           topic_name, k);
    }

    change *c = rn__metadata_change_new(CHANGE_ALTER, t->id, cb, arg);
    if (!c)
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    encoder e;
    rn__metadata_enc_init(&e);
    for (size_t i = 0; i < n_set + n_delete && rc == 0; i++) {
        md_config_record cr = RUNNEL__METADATA__CONFIG_RECORD__INIT;
        cr.topic_id.len = 16;
        cr.topic_id.data = c->id;
        cr.key = (char *)(i < n_set ? set_keys[i] : delete_keys[i - n_set]);
        cr.value = i < n_set ? (char *)set_values[i] : (char *)"";
        cr.remove = i >= n_set;
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_CONFIG;
        r.config = &cr;
        rc = rn__metadata_enc_add(&e, &r);
    }
    return rn__metadata_submit(md, &e, c, rc, topic_name, err, errlen);
}

int rn_metadata_add_partitions(rn_metadata *md, const char *topic_name, int32_t n_partitions,
                               rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    const rn_topic_info *t;
    int rc = rn__metadata_check_target(md, topic_name, &t, err, errlen);
    if (rc < 0)
        return rc;
    /* Invariant 3: a grow in flight counts as done. */
    int32_t have = t->n_partitions;
    for (const change *c = md->pending_head; c; c = c->next)
        if (c->kind == CHANGE_GROW && memcmp(c->id, t->id, 16) == 0 && c->target > have)
            have = c->target;
    if (n_partitions <= have)
        return rn_errf(-RN_E_INVALID_PARTITIONS, err, errlen,
                       "topic %s has %" PRId32
                       " partitions; the count can only grow (asked for %" PRId32 ")",
                       topic_name, have, n_partitions);
    if (n_partitions > MAX_PARTITIONS)
        return rn_errf(-RN_E_INVALID_PARTITIONS, err, errlen,
                       "topic %s: %" PRId32 " partitions, must be at most %d", topic_name,
                       n_partitions, MAX_PARTITIONS);
    rc = rn_metadata_check_limits(md, topic_name, n_partitions, n_partitions - have, err, errlen);
    if (rc < 0)
        return rc;
    int32_t live[RN_MAX_BROKERS];
    int n_live = live_nodes(md, live, RN_MAX_BROKERS);
    int rf = t->replication_factor;
    if (rf > n_live)
        return rn_errf(-RN_E_NOT_ENOUGH_REPLICAS, err, errlen,
                       "topic %s: replication factor %d is larger than the %d available broker%s",
                       topic_name, rf, n_live, n_live == 1 ? "" : "s");

    change *c = rn__metadata_change_new(CHANGE_GROW, t->id, cb, arg);
    if (!c)
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    c->n_partitions = n_partitions - have;
    c->target = n_partitions;
    encoder e;
    rn__metadata_enc_init(&e);
    md_count_record cr = RUNNEL__METADATA__PARTITION_COUNT_RECORD__INIT;
    cr.topic_id.len = 16;
    cr.topic_id.data = c->id;
    cr.partitions = n_partitions;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_COUNT;
    r.partition_count = &cr;
    rc = rn__metadata_enc_add(&e, &r);
    if (rc == 0)
        rc = enc_assign(&e, c->id, have, n_partitions, live, n_live, rf,
                        rn__metadata_topic_min_isr(md, t));
    return rn__metadata_submit(md, &e, c, rc, topic_name, err, errlen);
}
