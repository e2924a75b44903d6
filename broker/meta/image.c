/*
 * image.c — the metadata image and its pure apply (see image.h, DESIGN §8).
 *
 * How it fits: the facade (metadata.c) hands every committed record to
 * rn_image_apply, in log order: from the snapshot (snapshot.c), on replay of
 * the journal, and as each change commits. The image knows nothing of logs,
 * files, reactors or listeners.
 *
 * Invariants:
 *  1. Nothing mutates the image except rn_image_apply (and rn_image_clear).
 *  2. rn_image_apply depends only on the image and the record: a record that
 *     does not fit (a name already taken, an unknown topic id, a partition
 *     out of range, a malformed field) is skipped and changes nothing, so
 *     every replica skips it the same way. Records name topics by id, so a
 *     record for a deleted topic never touches a later topic of that name.
 *  3. by_name and by_id hold the same topics, each sorted by its key, so
 *     look-ups are binary searches; every topic's configs are sorted by key.
 *  4. Every rn_topic_info handed out points into its topic (sync_info keeps
 *     it so whenever an array moves); a topic's info lives until the record
 *     that removes it.
 *  5. A partition's replicas, ISR, move target and ELR share one block with
 *     room for as many ISR and ELR members as replicas, so ISR and ELR
 *     changes (subsets of the replicas) are made in place and never
 *     allocate: an election applies whole.
 *  6. Elections are derived while applying broker records (image.h), from
 *     the image alone, so every broker derives the same leaders and ISRs;
 *     a partition's leader is always a member of its ISR or -1.
 *  7. The ELR and the ISR never share a member, and the ELR holds replicas
 *     only; it is empty while the ISR holds min_isr members (image.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/image.h"
#include "broker/sorted.h"
#include "broker/meta/records.h"
#include "protocol/errors.h"
#include "protocol/topic_name.h"

/* One topic. info is what look-ups return; its pointers point at the fields
 * below and are refreshed (sync_info) whenever those move (invariant 4). */
typedef struct topic {
    rn_topic_info info;
    char *name;
    rn_partition_info *parts; /* n_partitions; replicas and isr share one block each */
    char **keys, **values;    /* info.n_configs, sorted by key */
    uint32_t cap_configs;
} topic;

/* One broker: info's strings are the two below (heap, so moving the
 * struct in the sorted array keeps them valid). */
typedef struct broker {
    rn_broker_info info;
    char *endpoint, *kafka;
} broker;

struct rn_image {
    topic **by_name, **by_id; /* invariant 3 */
    unsigned n_topics, cap_topics;
    broker *brokers; /* sorted by id */
    unsigned n_brokers, cap_brokers;
};

static void set_effect(rn_image_effect *eff, enum rn_image_effect_type type, topic *t)
{
    eff->type = type;
    eff->topic = t ? &t->info : NULL;
}

/* ---- Topics (invariant 4) ------------------------------------------------- */

static void sync_info(topic *t)
{
    t->info.name = t->name;
    t->info.partitions = t->parts;
    t->info.config_keys = (const char *const *)t->keys;
    t->info.config_values = (const char *const *)t->values;
}

static void topic_free(topic *t)
{
    if (!t)
        return;
    if (t->parts)
        for (int32_t i = 0; i < t->info.n_partitions; i++)
            free((void *)t->parts[i].replicas);
    for (uint32_t i = 0; i < t->info.n_configs; i++) {
        free(t->keys[i]);
        free(t->values[i]);
    }
    free(t->keys);
    free(t->values);
    free(t->parts);
    free(t->name);
    free(t);
}

/* A topic whose partitions have no assignment yet (leader -1): the
 * PartitionRecords that follow fill them in. */
static topic *topic_new(const char *name, const uint8_t id[16], int32_t n_partitions, int16_t rf)
{
    topic *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = strdup(name);
    t->parts = calloc((size_t)n_partitions, sizeof(*t->parts));
    t->info.n_partitions = n_partitions;
    if (!t->name || !t->parts) {
        free(t->parts);
        t->parts = NULL;
        topic_free(t);
        return NULL;
    }
    memcpy(t->info.id, id, 16);
    t->info.replication_factor = rf;
    for (int32_t i = 0; i < n_partitions; i++) {
        t->parts[i].partition = i;
        t->parts[i].leader = -1;
        t->parts[i].min_isr = 1;
    }
    sync_info(t);
    return t;
}

/* Index of key in t's configs, or where it would go (*found false). */
static uint32_t config_find(const topic *t, const char *key, bool *found)
{
    uint32_t lo = 0, hi = t->info.n_configs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->keys[mid], key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Set key=value. Returns 1 when the configs changed, 0 when the value was
 * already that, -ENOMEM. */
static int config_put(topic *t, const char *key, const char *value)
{
    bool found;
    uint32_t i = config_find(t, key, &found);
    if (found) {
        if (strcmp(t->values[i], value) == 0)
            return 0;
        char *v = strdup(value);
        if (!v)
            return -ENOMEM;
        free(t->values[i]);
        t->values[i] = v;
        return 1;
    }
    if (t->info.n_configs == t->cap_configs) {
        uint32_t cap = t->cap_configs ? t->cap_configs * 2 : 4;
        /* info must never point at a freed array, even when the second
         * realloc fails. */
        char **k = realloc(t->keys, cap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        t->keys = k;
        sync_info(t);
        char **v = realloc(t->values, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        t->values = v;
        sync_info(t);
        t->cap_configs = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    uint32_t n = t->info.n_configs;
    memmove(t->keys + i + 1, t->keys + i, (n - i) * sizeof(*t->keys));
    memmove(t->values + i + 1, t->values + i, (n - i) * sizeof(*t->values));
    t->keys[i] = k;
    t->values[i] = v;
    t->info.n_configs = n + 1;
    sync_info(t);
    return 1;
}

/* Remove key. Returns 1 when it was set, 0 when it was not. */
static int config_del(topic *t, const char *key)
{
    bool found;
    uint32_t i = config_find(t, key, &found);
    if (!found)
        return 0;
    free(t->keys[i]);
    free(t->values[i]);
    uint32_t n = --t->info.n_configs;
    memmove(t->keys + i, t->keys + i + 1, (n - i) * sizeof(*t->keys));
    memmove(t->values + i, t->values + i + 1, (n - i) * sizeof(*t->values));
    return 1;
}

/* ---- The two indexes (invariant 4) -------------------------------------- */

static int cmp_topic_name(const void *key, const void *elem)
{
    return strcmp(key, (*(topic *const *)elem)->name);
}

static int cmp_topic_id(const void *key, const void *elem)
{
    return memcmp(key, (*(topic *const *)elem)->info.id, 16);
}

static unsigned find_name_pos(const rn_image *img, const char *name, bool *found)
{
    return (unsigned)rn_sorted_find(img->by_name, img->n_topics, sizeof(*img->by_name), name,
                                    cmp_topic_name, found);
}

static unsigned find_id_pos(const rn_image *img, const uint8_t id[16], bool *found)
{
    return (unsigned)rn_sorted_find(img->by_id, img->n_topics, sizeof(*img->by_id), id,
                                    cmp_topic_id, found);
}

static topic *find_by_name(const rn_image *img, const char *name)
{
    bool found;
    unsigned i = find_name_pos(img, name, &found);
    return found ? img->by_name[i] : NULL;
}

static topic *find_by_id(const rn_image *img, const ProtobufCBinaryData *id)
{
    if (id->len != 16)
        return NULL;
    bool found;
    unsigned i = find_id_pos(img, id->data, &found);
    return found ? img->by_id[i] : NULL;
}

/* Insert t, whose name and id are both free. */
static int insert_topic(rn_image *img, topic *t)
{
    if (img->n_topics == img->cap_topics) {
        unsigned cap = img->cap_topics ? img->cap_topics * 2 : 16;
        topic **a = realloc(img->by_name, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        img->by_name = a;
        topic **b = realloc(img->by_id, cap * sizeof(*b));
        if (!b)
            return -ENOMEM;
        img->by_id = b;
        img->cap_topics = cap;
    }
    bool found;
    unsigned n = img->n_topics;
    unsigned i = find_name_pos(img, t->name, &found);
    memmove(img->by_name + i + 1, img->by_name + i, (n - i) * sizeof(*img->by_name));
    img->by_name[i] = t;
    unsigned j = find_id_pos(img, t->info.id, &found);
    memmove(img->by_id + j + 1, img->by_id + j, (n - j) * sizeof(*img->by_id));
    img->by_id[j] = t;
    img->n_topics = n + 1;
    return 0;
}

static void remove_topic(rn_image *img, topic *t)
{
    bool found;
    unsigned n = img->n_topics - 1;
    unsigned i = find_name_pos(img, t->name, &found);
    memmove(img->by_name + i, img->by_name + i + 1, (n - i) * sizeof(*img->by_name));
    unsigned j = find_id_pos(img, t->info.id, &found);
    memmove(img->by_id + j, img->by_id + j + 1, (n - j) * sizeof(*img->by_id));
    img->n_topics = n;
    topic_free(t);
}

void rn_image_clear(rn_image *img)
{
    for (unsigned i = 0; i < img->n_topics; i++)
        topic_free(img->by_name[i]);
    img->n_topics = 0;
    for (unsigned i = 0; i < img->n_brokers; i++) {
        free(img->brokers[i].endpoint);
        free(img->brokers[i].kafka);
    }
    img->n_brokers = 0;
}

/* ---- Apply (invariants 1, 2) ---- */

static int apply_topic(rn_image *img, const md_topic_record *r, rn_image_effect *eff, int *status)
{
    const char *name = r->name ? r->name : "";
    if (r->topic_id.len != 16 || r->replication_factor < 1 || r->replication_factor > INT16_MAX) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    if (!rn_topic_name_valid(name)) {
        *status = -RN_E_INVALID_TOPIC;
        return 0;
    }
    if (r->partitions < 1 || r->partitions > RN_IMAGE_MAX_PARTITIONS) {
        *status = -RN_E_INVALID_PARTITIONS;
        return 0;
    }
    if (find_by_name(img, name) || find_by_id(img, &r->topic_id)) {
        *status = -RN_E_TOPIC_EXISTS;
        return 0;
    }
    topic *t = topic_new(name, r->topic_id.data, r->partitions, (int16_t)r->replication_factor);
    if (!t)
        return -ENOMEM;
    /* Later entries win, as a protobuf map's do. */
    for (size_t i = 0; i < r->n_configs; i++) {
        const md_config_entry *e = r->configs[i];
        if (config_put(t, e->key ? e->key : "", e->value ? e->value : "") < 0) {
            topic_free(t);
            return -ENOMEM;
        }
    }
    if (insert_topic(img, t) < 0) {
        topic_free(t);
        return -ENOMEM;
    }
    set_effect(eff, RN_IMAGE_TOPIC_CREATED, t);
    return 0;
}

/* Give p replicas, ISR, target and ELR in one block (invariant 5): room
 * for an ISR, a target and an ELR each as large as the replicas, so ISR
 * and ELR changes, elections and a move's completion never allocate. */
static int set_nodes(rn_partition_info *p, const int32_t *replicas, size_t nr, const int32_t *isr,
                     size_t ni, const int32_t *target, size_t nt, const int32_t *elr, size_t ne)
{
    size_t room = ni > nr ? ni : nr;
    size_t troom = nt > nr ? nt : nr;
    size_t eroom = ne > nr ? ne : nr;
    size_t n = nr + room + troom + eroom;
    int32_t *nodes = NULL;
    if (n) {
        nodes = malloc(n * sizeof(*nodes));
        if (!nodes)
            return -ENOMEM;
        if (nr)
            memcpy(nodes, replicas, nr * sizeof(*nodes));
        if (ni)
            memcpy(nodes + nr, isr, ni * sizeof(*nodes));
        if (nt)
            memcpy(nodes + nr + room, target, nt * sizeof(*nodes));
        if (ne)
            memcpy(nodes + nr + room + troom, elr, ne * sizeof(*nodes));
    }
    free((void *)p->replicas);
    p->n_replicas = (int32_t)nr;
    p->replicas = nodes;
    p->n_isr = (int32_t)ni;
    p->isr = nodes ? nodes + nr : NULL;
    p->n_target = (int32_t)nt;
    p->target = nodes ? nodes + nr + room : NULL;
    p->n_elr = (int32_t)ne;
    p->elr = nodes ? nodes + nr + room + troom : NULL;
    return 0;
}

static int apply_partition(rn_image *img, const md_partition_record *r, int *status)
{
    topic *t = find_by_id(img, &r->topic_id);
    if (!t || r->partition < 0 || r->partition >= t->info.n_partitions) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    /* Bounded by the batch size already; this keeps the int32 counts honest. */
    if (r->n_replicas > INT32_MAX / 8 || r->n_isr > INT32_MAX / 8 ||
        r->n_target_replicas > r->n_replicas || r->n_elr > r->n_replicas || r->min_isr < 0) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    rn_partition_info *p = &t->parts[r->partition];
    int rc = set_nodes(p, r->replicas, r->n_replicas, r->isr, r->n_isr, r->target_replicas,
                       r->n_target_replicas, r->elr, r->n_elr);
    if (rc < 0)
        return rc;
    p->leader = r->leader;
    p->leader_epoch = r->leader_epoch;
    p->partition_epoch = r->partition_epoch;
    p->min_isr = r->min_isr > 0 ? r->min_isr : 1;
    p->throttle = r->n_target_replicas && r->throttle_rate > 0 ? r->throttle_rate : 0;
    return 0;
}

static void apply_remove(rn_image *img, const md_remove_record *r, rn_image_effect *eff,
                         int *status)
{
    topic *t = find_by_id(img, &r->topic_id);
    if (!t) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return;
    }
    remove_topic(img, t);
    set_effect(eff, RN_IMAGE_TOPIC_REMOVED, NULL);
}

static void elr_settle(rn_partition_info *p);

int32_t rn_image_min_isr_value(const char *value)
{
    char *end;
    long v = strtol(value ? value : "", &end, 10);
    return value && *value && *end == '\0' && v >= 1 && v <= INT16_MAX ? (int32_t)v : 0;
}

static int apply_config(rn_image *img, const md_config_record *r, rn_image_effect *eff, int *status)
{
    topic *t = find_by_id(img, &r->topic_id);
    const char *key = r->key ? r->key : "";
    if (!t || !*key) {
        *status = t ? -RN_E_INVALID_CONFIG : -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    int rc = r->remove ? config_del(t, key) : config_put(t, key, r->value ? r->value : "");
    if (rc < 0)
        return rc;
    /* The topic's own min.insync.replicas decides the ELR from now on (when
     * it is removed, the next ISR change brings the broker default). */
    int32_t v;
    if (rc > 0 && !r->remove && strcmp(key, "min.insync.replicas") == 0 &&
        (v = rn_image_min_isr_value(r->value)) > 0)
        for (int32_t k = 0; k < t->info.n_partitions; k++) {
            t->parts[k].min_isr = v;
            elr_settle(&t->parts[k]);
        }
    if (rc > 0)
        set_effect(eff, RN_IMAGE_CONFIG_CHANGED, t);
    return 0;
}

static int apply_partition_count(rn_image *img, const md_count_record *r, rn_image_effect *eff,
                                 int *status)
{
    topic *t = find_by_id(img, &r->topic_id);
    if (!t) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    int32_t old = t->info.n_partitions, n = r->partitions;
    if (n <= old || n > RN_IMAGE_MAX_PARTITIONS) {
        *status = -RN_E_INVALID_PARTITIONS;
        return 0;
    }
    rn_partition_info *parts = realloc(t->parts, (size_t)n * sizeof(*parts));
    if (!parts)
        return -ENOMEM;
    /* The PartitionRecords that follow fill the new ones in. */
    for (int32_t i = old; i < n; i++)
        parts[i] = (rn_partition_info){.partition = i, .leader = -1, .min_isr = 1};
    t->parts = parts;
    t->info.n_partitions = n;
    sync_info(t);
    set_effect(eff, RN_IMAGE_PARTITIONS_ADDED, t);
    return 0;
}

/* ---- Partition changes and elections (invariants 5, 6) ------------------------ */

static bool has_node(const int32_t *v, int32_t n, int32_t id)
{
    for (int32_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

static broker *broker_get(const rn_image *img, int32_t id)
{
    for (unsigned i = 0; i < img->n_brokers; i++)
        if (img->brokers[i].info.id == id)
            return &img->brokers[i];
    return NULL;
}

static bool broker_live(const rn_image *img, int32_t id)
{
    const broker *b = broker_get(img, id);
    return b && !b->info.fenced;
}

static bool complete_move(const rn_image *img, rn_partition_info *p);

/* ---- Eligible leader replicas (KIP-966; invariant 7) ---- */

static void elr_remove(rn_partition_info *p, int32_t id)
{
    int32_t *elr = (int32_t *)p->elr, n = 0;
    for (int32_t i = 0; i < p->n_elr; i++)
        if (elr[i] != id)
            elr[n++] = elr[i];
    p->n_elr = n;
}

/* id left the ISR: it joins the ELR when the ISR left is below min_isr
 * (the high watermark stops there, so id holds everything below it). */
static void elr_on_leave(rn_partition_info *p, int32_t id)
{
    if (p->n_isr < p->min_isr && !has_node(p->elr, p->n_elr, id) &&
        has_node(p->replicas, p->n_replicas, id) && p->n_elr < p->n_replicas)
        ((int32_t *)p->elr)[p->n_elr++] = id;
}

/* After any ISR change: ISR members are not eligible (they are better),
 * and an ISR back at min_isr lets the high watermark move past the ELR. */
static void elr_settle(rn_partition_info *p)
{
    if (p->n_isr >= p->min_isr) {
        p->n_elr = 0;
        return;
    }
    for (int32_t i = 0; i < p->n_isr; i++)
        elr_remove(p, p->isr[i]);
}

/* No ISR member of p is live: elect the first live ELR member. It becomes
 * the ISR alone; the old ISR's members (gone, but holding everything below
 * the high watermark) take its place in the ELR. */
static bool elect_from_elr(const rn_image *img, rn_partition_info *p)
{
    int32_t leader = -1;
    for (int32_t i = 0; i < p->n_elr; i++)
        if (broker_live(img, p->elr[i])) {
            leader = p->elr[i];
            break;
        }
    if (leader < 0)
        return false;
    elr_remove(p, leader);
    for (int32_t i = 0; i < p->n_isr; i++)
        if (!has_node(p->elr, p->n_elr, p->isr[i]) && p->n_elr < p->n_replicas)
            ((int32_t *)p->elr)[p->n_elr++] = p->isr[i];
    ((int32_t *)p->isr)[0] = leader;
    p->n_isr = 1;
    p->leader = leader;
    p->leader_epoch++;
    return true;
}

bool rn_image_isr_ok(const rn_image *img, const rn_partition_info *p, const int32_t *isr, size_t n,
                     bool elect, int32_t leader)
{
    /* Non-empty, no duplicates, replicas only, with the leader (the new one
     * when the change elects: a live broker). */
    bool ok = n > 0 && n <= (size_t)p->n_replicas && has_node(isr, (int32_t)n, leader) &&
              (!elect || broker_live(img, leader));
    /* KIP-841: a broker joins the ISR only while it is live (a fenced or
     * shutting-down one could not take over if elected). */
    for (size_t i = 0; ok && i < n; i++)
        ok = has_node(p->replicas, p->n_replicas, isr[i]) && !has_node(isr, (int32_t)i, isr[i]) &&
             (has_node(p->isr, p->n_isr, isr[i]) || broker_live(img, isr[i]));
    return ok;
}

/* A leader's ISR proposal (AlterPartition), or the controller's
 * preferred-leader election (elect). */
static void apply_change(rn_image *img, const md_change_record *r, rn_image_effect *eff,
                         int *status)
{
    topic *t = find_by_id(img, &r->topic_id);
    if (!t || r->partition < 0 || r->partition >= t->info.n_partitions) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return;
    }
    rn_partition_info *p = &t->parts[r->partition];
    if (r->leader_epoch != p->leader_epoch || r->partition_epoch != p->partition_epoch) {
        *status = -RN_E_FENCED_LEADER_EPOCH;
        return;
    }
    int32_t leader = r->elect ? r->leader : p->leader;
    if (!rn_image_isr_ok(img, p, r->isr, r->n_isr, r->elect, leader)) {
        *status = -RN_E_INVALID_REQUEST;
        return;
    }
    if (r->min_isr > 0)
        p->min_isr = r->min_isr;
    int32_t old[RN_MAX_BROKERS];
    int32_t n_old = p->n_isr <= RN_MAX_BROKERS ? p->n_isr : RN_MAX_BROKERS;
    memcpy(old, p->isr, (size_t)n_old * sizeof(*old));
    int32_t *isr = (int32_t *)p->isr; /* invariant 5: room for the replicas */
    memcpy(isr, r->isr, r->n_isr * sizeof(*isr));
    p->n_isr = (int32_t)r->n_isr;
    for (int32_t i = 0; i < n_old; i++)
        if (!has_node(p->isr, p->n_isr, old[i]))
            elr_on_leave(p, old[i]);
    elr_settle(p);
    if (r->elect && leader != p->leader) {
        p->leader = leader;
        p->leader_epoch++;
    }
    complete_move(img, p);
    p->partition_epoch++;
    set_effect(eff, RN_IMAGE_PARTITION_CHANGED, t);
    eff->partition = r->partition;
}

/* A move whose every target replica is in sync completes (in place,
 * invariant 5): the replicas become the target, the leaving ones drop out
 * of the ISR, and a leaving leader hands over to the first live in-sync
 * target replica (in the target's order). Returns whether it completed. */
static bool complete_move(const rn_image *img, rn_partition_info *p)
{
    if (p->n_target <= 0)
        return false;
    for (int32_t i = 0; i < p->n_target; i++)
        if (!has_node(p->isr, p->n_isr, p->target[i]))
            return false;
    int32_t *replicas = (int32_t *)p->replicas, *isr = (int32_t *)p->isr;
    int32_t n = 0;
    for (int32_t i = 0; i < p->n_isr; i++)
        if (has_node(p->target, p->n_target, isr[i]))
            isr[n++] = isr[i];
    int32_t *elr = (int32_t *)p->elr, ne = 0;
    for (int32_t i = 0; i < p->n_elr; i++)
        if (has_node(p->target, p->n_target, elr[i]))
            elr[ne++] = elr[i];
    p->n_elr = ne;
    /* Each list keeps its place in the block; only the counts shrink. */
    memmove(replicas, p->target, (size_t)p->n_target * sizeof(*replicas));
    p->n_replicas = p->n_target;
    p->n_isr = n;
    p->n_target = 0;
    p->throttle = 0; /* the throttle ends with the move */
    if (!has_node(p->replicas, p->n_replicas, p->leader)) {
        /* In the target's order: its first replica is the preferred one. */
        int32_t leader = -1;
        for (int32_t i = 0; i < p->n_replicas; i++)
            if (has_node(p->isr, p->n_isr, p->replicas[i]) && broker_live(img, p->replicas[i])) {
                leader = p->replicas[i];
                break;
            }
        if (leader >= 0 || !elect_from_elr(img, p)) {
            p->leader = leader;
            p->leader_epoch++;
        }
    }
    return true;
}

static int apply_reassign(rn_image *img, const md_reassign_record *r, rn_image_effect *eff,
                          int *status)
{
    topic *t = find_by_id(img, &r->topic_id);
    if (!t || r->partition < 0 || r->partition >= t->info.n_partitions) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    rn_partition_info *p = &t->parts[r->partition];
    if (r->partition_epoch >= 0 && r->partition_epoch != p->partition_epoch) {
        *status = -RN_E_FENCED_LEADER_EPOCH;
        return 0;
    }
    /* The target: distinct, known brokers, at most RN_MAX_BROKERS. */
    size_t nt = r->n_target_replicas;
    bool ok = nt > 0 && nt <= RN_MAX_BROKERS && p->n_replicas > 0;
    for (size_t i = 0; ok && i < nt; i++)
        ok = broker_get(img, r->target_replicas[i]) &&
             !has_node(r->target_replicas, (int32_t)i, r->target_replicas[i]);
    if (!ok) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    /* Replicas: the target, then the current ones leaving (Kafka's order). */
    int32_t all[2 * RN_MAX_BROKERS + 1];
    size_t n = 0;
    for (size_t i = 0; i < nt; i++)
        all[n++] = r->target_replicas[i];
    const int32_t *old = p->replicas;
    size_t n_old = (size_t)p->n_replicas;
    if (n_old > RN_MAX_BROKERS) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    for (size_t i = 0; i < n_old; i++)
        if (!has_node(all, (int32_t)n, old[i]))
            all[n++] = old[i];
    int32_t isr[2 * RN_MAX_BROKERS + 1];
    size_t ni = (size_t)p->n_isr <= sizeof(isr) / sizeof(isr[0]) ? (size_t)p->n_isr : 0;
    memcpy(isr, p->isr, ni * sizeof(*isr));
    /* The same set as now: nothing to move (the replicas take the target's
     * order; a move in progress is cancelled). */
    bool same = n == nt && n_old == nt; /* not a superset: adding replicas is a move */
    int32_t elr[RN_MAX_BROKERS];
    size_t ne = (size_t)p->n_elr <= RN_MAX_BROKERS ? (size_t)p->n_elr : 0;
    memcpy(elr, p->elr, ne * sizeof(*elr));
    int rc = set_nodes(p, all, n, isr, ni, r->target_replicas, same ? 0 : nt, elr, ne);
    if (rc < 0)
        return rc;
    p->throttle = !same && r->throttle_rate > 0 ? r->throttle_rate : 0;
    complete_move(img, p);
    p->partition_epoch++;
    set_effect(eff, RN_IMAGE_PARTITION_CHANGED, t);
    eff->partition = r->partition;
    return 0;
}

/* id is gone (fenced, or restarted and maybe missing unsynced writes): it
 * leaves every ISR it is not the last member of (into the ELR when the ISR
 * left is below min_isr), and every ELR when it restarted; its leaderships
 * move to the first live ISR member left, else to the first live ELR
 * member. */
static void elect_without(rn_image *img, int32_t id, bool restarted)
{
    for (unsigned i = 0; i < img->n_topics; i++) {
        topic *t = img->by_name[i];
        for (int32_t k = 0; k < t->info.n_partitions; k++) {
            rn_partition_info *p = &t->parts[k];
            bool changed = false;
            if (restarted && has_node(p->elr, p->n_elr, id)) {
                elr_remove(p, id);
                changed = true;
            }
            if (p->n_isr > 1 && has_node(p->isr, p->n_isr, id)) {
                int32_t *isr = (int32_t *)p->isr, n = 0;
                for (int32_t j = 0; j < p->n_isr; j++)
                    if (isr[j] != id)
                        isr[n++] = isr[j];
                p->n_isr = n;
                if (!restarted)
                    elr_on_leave(p, id);
                changed = true;
            }
            if (p->leader == id) {
                p->leader = -1;
                for (int32_t j = 0; j < p->n_isr; j++)
                    if (p->isr[j] != id && broker_live(img, p->isr[j])) {
                        p->leader = p->isr[j];
                        break;
                    }
                p->leader_epoch++;
                if (p->leader == -1 && elect_from_elr(img, p) && restarted)
                    elr_remove(p, id); /* it was the last ISR member: not eligible either */
                changed = true;
            }
            if (changed)
                p->partition_epoch++;
        }
    }
}

/* id is live: it leads every leaderless partition whose ISR holds it, or
 * (no ISR member being live, as leaderless says) whose ELR does. */
static void elect_with(rn_image *img, int32_t id)
{
    for (unsigned i = 0; i < img->n_topics; i++) {
        topic *t = img->by_name[i];
        for (int32_t k = 0; k < t->info.n_partitions; k++) {
            rn_partition_info *p = &t->parts[k];
            if (p->leader != -1 || p->n_replicas <= 0)
                continue;
            if (has_node(p->isr, p->n_isr, id)) {
                p->leader = id;
                p->leader_epoch++;
                p->partition_epoch++;
            } else if (has_node(p->elr, p->n_elr, id) && elect_from_elr(img, p)) {
                p->partition_epoch++;
            }
        }
    }
}

static int set_str(char **dst, const char *src)
{
    char *c = strdup(src ? src : "");
    if (!c)
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

static int apply_broker(rn_image *img, const md_broker_record *r, rn_image_effect *eff, int *status)
{
    if (r->node_id < 0) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    broker *b = broker_get(img, r->node_id);
    bool restarted = b && b->info.epoch != r->incarnation && !b->info.fenced;
    /* Fenced or not, a new incarnation may have lost unsynced writes. */
    bool new_incarnation = b && b->info.epoch != r->incarnation;
    if (!b) {
        if (img->n_brokers == img->cap_brokers) {
            unsigned cap = img->cap_brokers ? img->cap_brokers * 2 : 8;
            broker *v = realloc(img->brokers, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            img->brokers = v;
            img->cap_brokers = cap;
        }
        unsigned at = 0;
        while (at < img->n_brokers && img->brokers[at].info.id < r->node_id)
            at++;
        memmove(img->brokers + at + 1, img->brokers + at,
                (img->n_brokers - at) * sizeof(*img->brokers));
        b = &img->brokers[at];
        *b = (broker){.info = {.id = r->node_id, .fenced = true}};
        img->n_brokers++;
    }
    char hp[300];
    snprintf(hp, sizeof(hp), "%s:%u", r->host ? r->host : "", r->port);
    if (set_str(&b->endpoint, hp) < 0 || set_str(&b->kafka, r->kafka_endpoint) < 0)
        return -ENOMEM;
    b->info.endpoint = b->endpoint;
    b->info.kafka = b->kafka;
    b->info.epoch = r->incarnation;
    b->info.registered_at = r->registered_at;
    bool was_fenced = b->info.fenced;
    b->info.fenced = r->fenced;
    /* A new incarnation of a live broker: its old self is gone first. */
    if (restarted || (!was_fenced && r->fenced) || new_incarnation)
        elect_without(img, r->node_id, new_incarnation);
    if (!r->fenced)
        elect_with(img, r->node_id);
    set_effect(eff, RN_IMAGE_BROKERS_CHANGED, NULL);
    return 0;
}

static void apply_fence(rn_image *img, const md_fence_record *r, rn_image_effect *eff, int *status)
{
    broker *b = broker_get(img, r->node_id);
    if (!b) {
        *status = -RN_E_INVALID_REQUEST;
        return;
    }
    if (b->info.fenced == r->fenced)
        return;
    b->info.fenced = r->fenced;
    if (r->fenced)
        elect_without(img, r->node_id, false);
    else
        elect_with(img, r->node_id);
    set_effect(eff, RN_IMAGE_BROKERS_CHANGED, NULL);
}

int rn_image_apply(rn_image *img, const md_record *r, rn_image_effect *eff, int *status)
{
    rn_image_effect none;
    if (!eff)
        eff = &none;
    eff->type = RN_IMAGE_NONE;
    eff->topic = NULL;
    eff->partition = -1;
    *status = 0;
    switch (r->record_case) {
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC:
        return apply_topic(img, r->topic, eff, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION:
        return apply_partition(img, r->partition, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_REMOVE_TOPIC:
        apply_remove(img, r->remove_topic, eff, status);
        return 0;
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_CONFIG:
        return apply_config(img, r->config, eff, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_COUNT:
        return apply_partition_count(img, r->partition_count, eff, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_CHANGE:
        apply_change(img, r->partition_change, eff, status);
        return 0;
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_REASSIGN:
        return apply_reassign(img, r->partition_reassign, eff, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER:
        return apply_broker(img, r->broker, eff, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER_FENCE:
        apply_fence(img, r->broker_fence, eff, status);
        return 0;
    default:
        /* The caller's decoder refuses these (a record it cannot read is
         * corruption, never skipped); an image given one skips it. */
        *status = -RN_E_CORRUPT_FILE;
        return 0;
    }
}

/* ---- Life and look-ups ------------------------------------------------------ */

int rn_image_new(rn_image **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

void rn_image_free(rn_image *img)
{
    if (!img)
        return;
    rn_image_clear(img);
    free(img->by_name);
    free(img->by_id);
    free(img->brokers);
    free(img);
}

const rn_topic_info *rn_image_find(const rn_image *img, const char *name)
{
    topic *t = name ? find_by_name(img, name) : NULL;
    return t ? &t->info : NULL;
}

const rn_topic_info *rn_image_find_id(const rn_image *img, const uint8_t *id, size_t id_len)
{
    ProtobufCBinaryData b = {.len = id_len, .data = (uint8_t *)id};
    topic *t = find_by_id(img, &b);
    return t ? &t->info : NULL;
}

unsigned rn_image_topic_count(const rn_image *img)
{
    return img->n_topics;
}

const rn_topic_info *rn_image_topic_at(const rn_image *img, unsigned i)
{
    return i < img->n_topics ? &img->by_name[i]->info : NULL;
}

unsigned rn_image_broker_count(const rn_image *img)
{
    return img->n_brokers;
}

const rn_broker_info *rn_image_broker_at(const rn_image *img, unsigned i)
{
    return i < img->n_brokers ? &img->brokers[i].info : NULL;
}

const rn_broker_info *rn_image_broker(const rn_image *img, int32_t id)
{
    broker *b = broker_get(img, id);
    return b ? &b->info : NULL;
}

int64_t rn_image_partition_count(const rn_image *img)
{
    int64_t n = 0;
    for (unsigned i = 0; i < img->n_topics; i++)
        n += img->by_name[i]->info.n_partitions;
    return n;
}

static bool nodes_equal(const int32_t *a, const int32_t *b, int32_t n)
{
    return n == 0 || memcmp(a, b, (size_t)n * sizeof(*a)) == 0;
}

bool rn_image_equal(const rn_image *a, const rn_image *b)
{
    if (a->n_topics != b->n_topics || a->n_brokers != b->n_brokers)
        return false;
    for (unsigned i = 0; i < a->n_brokers; i++) {
        const rn_broker_info *x = &a->brokers[i].info, *y = &b->brokers[i].info;
        if (x->id != y->id || x->epoch != y->epoch || x->fenced != y->fenced ||
            x->registered_at != y->registered_at ||
            strcmp(x->endpoint, y->endpoint) != 0 || strcmp(x->kafka, y->kafka) != 0)
            return false;
    }
    for (unsigned i = 0; i < a->n_topics; i++) {
        const rn_topic_info *x = &a->by_name[i]->info, *y = &b->by_name[i]->info;
        if (strcmp(x->name, y->name) != 0 || memcmp(x->id, y->id, 16) != 0 ||
            x->n_partitions != y->n_partitions || x->replication_factor != y->replication_factor ||
            x->n_configs != y->n_configs)
            return false;
        for (uint32_t c = 0; c < x->n_configs; c++)
            if (strcmp(x->config_keys[c], y->config_keys[c]) != 0 ||
                strcmp(x->config_values[c], y->config_values[c]) != 0)
                return false;
        for (int32_t p = 0; p < x->n_partitions; p++) {
            const rn_partition_info *u = &x->partitions[p], *v = &y->partitions[p];
            if (u->partition != v->partition || u->leader != v->leader ||
                u->leader_epoch != v->leader_epoch || u->partition_epoch != v->partition_epoch ||
                u->n_replicas != v->n_replicas || u->n_isr != v->n_isr ||
                !nodes_equal(u->replicas, v->replicas, u->n_replicas) ||
                !nodes_equal(u->isr, v->isr, u->n_isr) || u->n_target != v->n_target ||
                !nodes_equal(u->target, v->target, u->n_target) || u->n_elr != v->n_elr ||
                !nodes_equal(u->elr, v->elr, u->n_elr) || u->min_isr != v->min_isr ||
                u->throttle != v->throttle)
                return false;
        }
    }
    return true;
}
