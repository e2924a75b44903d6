/*
 * metadata.c — the metadata log and the state machine built from it (see
 * metadata.h, DESIGN §8).
 *
 * How it fits: handlers call the mutators (create/delete topic, alter
 * configs) from a reactor's request handler. A mutator validates against the
 * current state plus the changes still in flight, encodes the change as one
 * record batch of packed MetadataRecords (protocol/metadata.proto) and hands
 * it to rn_log_append on the metadata log (data-dir/__cluster_metadata-0,
 * flush=always). It never waits: the append callback, run later from
 * rn_io_run, applies the batch it wrote to the state machine, tells the
 * listener, and then calls the caller's callback. Opening replays the same
 * batches through the same apply code, so what a broker sees after a restart
 * is exactly what it saw before.
 *
 * Life of a change:
 *
 *   mutator ──validate──▶ encode batch ──rn_log_append──▶ IN FLIGHT (md->pending)
 *                                                            │ durable (fdatasync)
 *                                                            ▼
 *                              append_done: apply_batch → listener events → cb
 *
 * Invariants:
 *  1. State = snapshot + every batch after the snapshot's offset, applied in
 *     log order; md->applied is the offset after the last applied record.
 *     Nothing mutates the state except apply_record.
 *  2. apply_record depends only on the state and the record: a record that
 *     does not fit the state (a name already taken, an unknown topic id, a
 *     partition out of range, a malformed field) is skipped, the same way at
 *     append time and on replay. Records name topics by id, so a record for a
 *     deleted topic never touches a later topic with the same name.
 *  3. Validation at call time sees the changes in flight: a name a pending
 *     create uses is taken, a topic a pending delete removes is gone. So a
 *     validated change applies whole, barring a crash in between.
 *  4. topics_by_name and topics_by_id hold the same topics, each sorted by its
 *     key, so look-ups are binary searches; every topic's configs are sorted
 *     by key.
 *  5. A record that does not decode is corruption, never skipped: skipping it
 *     would build a state no other replica builds. Open fails with
 *     -RN_E_CORRUPT_FILE and names the offset.
 *  6. If applying runs out of memory half-way through a batch, the state no
 *     longer matches the log: md->failed makes every later mutator fail and
 *     no snapshot is written, so a restart rebuilds the right state.
 *
 * Snapshot file (data-dir/__cluster_metadata-0/snapshot), little-endian:
 *
 *    0  magic "RNMDSNP1"
 *    8  u32 version = 1
 *   12  u64 offset covered (the state after every record below it)
 *   20  u32 count
 *   24  count × [u32 len | len bytes of a packed MetadataRecord]
 *  end-8 u64 XXH3-64 over every byte before it
 *
 * The records are each topic's TopicRecord (with its configs) followed by its
 * PartitionRecords, topics sorted by name. It is written tmp → fdatasync →
 * rename → fsync(dir) every SNAPSHOT_EVERY applied records and on close; the
 * write is synchronous (a few ms every thousand changes, on the reactor that
 * owns the metadata) rather than a second asynchronous pipeline. Loading checks
 * the size, magic, version and checksum first, then every length against the
 * bytes left before using it; any failure discards what was loaded and the
 * log is replayed from its start.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "protocol/bytes.h"
#include "broker/sorted.h"
#include "broker/config.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "metadata.pb-c.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/sys.h"

#define MD_LOG_NAME          RN_METADATA_DIR_NAME
#define SNAPSHOT_NAME        "snapshot"
#define SNAPSHOT_TMP_NAME    "snapshot.tmp"
#define SNAPSHOT_MAGIC       "RNMDSNP1"
#define SNAPSHOT_VERSION     1
#define SNAPSHOT_HEADER_LEN  24
#define SNAPSHOT_TRAILER_LEN 8
#define SNAPSHOT_EVERY       1000
/* A larger file is not ours: refuse it before allocating its size. */
#define SNAPSHOT_MAX_BYTES ((uint64_t)1 << 32)
#define MAX_PARTITIONS     100000
#define MAX_NAME_LEN       249
/* One change is one batch: a topic with MAX_PARTITIONS PartitionRecords is
 * about 4 MiB, so batches may be 8 MiB and segments twice that. */
#define MD_SEGMENT_BYTES   ((uint64_t)16 << 20)
#define MD_MAX_BATCH_BYTES ((uint32_t)8 << 20)
#define REPLAY_READ_BYTES  ((size_t)1 << 20)
/* A single node is the only broker; the cluster issue replaces this. */
#define N_BROKERS 1

typedef Runnel__Metadata__MetadataRecord md_record;
typedef Runnel__Metadata__TopicRecord md_topic_record;
typedef Runnel__Metadata__TopicRecord__ConfigsEntry md_config_entry;
typedef Runnel__Metadata__PartitionRecord md_partition_record;
typedef Runnel__Metadata__RemoveTopicRecord md_remove_record;
typedef Runnel__Metadata__ConfigRecord md_config_record;
typedef Runnel__Metadata__PartitionCountRecord md_count_record;

/* One topic of the state. info is what look-ups return; its pointers point at
 * the fields below and are refreshed (sync_info) whenever those move. */
typedef struct topic {
    rn_topic_info info;
    char *name;
    rn_partition_info *parts; /* n_partitions; replicas and isr share one block each */
    char **keys, **values;    /* info.n_configs, sorted by key */
    uint32_t cap_configs;
} topic;

enum change_kind { CHANGE_CREATE, CHANGE_DELETE, CHANGE_ALTER, CHANGE_GROW };

/* One change between its mutator and its callback. */
typedef struct change {
    rn_metadata *md;
    enum change_kind kind;
    char *name;           /* CREATE: the name it takes */
    int32_t n_partitions; /* CREATE, GROW: partitions it adds (for the caps) */
    int32_t target;       /* GROW: the topic's new partition count */
    uint8_t id[16];       /* the topic it creates, deletes or alters */
    uint8_t *batch;
    size_t len;
    rn_metadata_cb cb;
    void *arg;
    struct change *prev, *next;
} change;

/* Listener events of one batch, sent once the whole batch is applied. */
typedef struct event {
    enum rn_metadata_event_type type;
    topic *t;
} event;

typedef struct event_q {
    rn_metadata *md;
    event *ev; /* room for one per record: no allocation while applying */
    size_t n;
} event_q;

struct rn_metadata {
    rn_io *io;
    rn_log *log;
    char *dir; /* data-dir/__cluster_metadata-0 */
    int32_t node_id;
    rn_metadata_listener listener;
    void *listener_arg;

    topic **by_name, **by_id; /* invariant 4 */
    unsigned n_topics, cap_topics;

    int64_t applied;         /* offset after the last applied record */
    int64_t snapshot_offset; /* offset the snapshot on disk covers; -1 none */
    uint64_t since_snapshot; /* records applied since it */
    change *pending_head, *pending_tail;
    rn_metadata_limits limits;
    bool limits_set;
    int failed; /* invariant 6: sticky */
    char errmsg[512];
};

/* ---- Small helpers -------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int fail(int rc, char *err, size_t errlen,
                                                      const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool name_chars_ok(const char *name, size_t *len_out)
{
    size_t len = 0;
    for (const char *p = name; *p; p++, len++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || len >= MAX_NAME_LEN)
            return false;
    }
    *len_out = len;
    return len > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Names a client may create: the "__" prefix is kept for internal topics
 * (__offsets, __cluster_metadata), which apply accepts. */
int rn_metadata_check_topic_name(const char *name, char *err, size_t errlen)
{
    size_t len;
    if (!name)
        return fail(-RN_E_INVALID_TOPIC, err, errlen, "topic name missing");
    if (!name_chars_ok(name, &len))
        return fail(-RN_E_INVALID_TOPIC, err, errlen,
                    "topic name \"%.64s%s\": must be 1 to %d characters of [a-zA-Z0-9._-], "
                    "not \".\" or \"..\"",
                    name, strlen(name) > 64 ? "…" : "", MAX_NAME_LEN);
    if (strncmp(name, "__", 2) == 0)
        return fail(-RN_E_INVALID_TOPIC, err, errlen,
                    "topic %s: names starting with \"__\" are reserved for internal topics", name);
    /* Deleted partition directories are renamed <topic>-<p>.deleted-…
     * (broker/part/partitions.c): a topic may not wear that shape. */
    if (strstr(name, RN_DELETED_DIR_MARK))
        return fail(-RN_E_INVALID_TOPIC, err, errlen,
                    "topic %s: names containing \"%s\" are reserved for deleted partitions", name,
                    RN_DELETED_DIR_MARK);
    return 0;
}

/* ---- Topics ----------------------------------------------------------------- */

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

static unsigned find_name_pos(const rn_metadata *md, const char *name, bool *found)
{
    return (unsigned)rn_sorted_find(md->by_name, md->n_topics, sizeof(*md->by_name), name,
                                    cmp_topic_name, found);
}

static unsigned find_id_pos(const rn_metadata *md, const uint8_t id[16], bool *found)
{
    return (unsigned)rn_sorted_find(md->by_id, md->n_topics, sizeof(*md->by_id), id, cmp_topic_id,
                                    found);
}

static topic *find_by_name(const rn_metadata *md, const char *name)
{
    bool found;
    unsigned i = find_name_pos(md, name, &found);
    return found ? md->by_name[i] : NULL;
}

static topic *find_by_id(const rn_metadata *md, const ProtobufCBinaryData *id)
{
    if (id->len != 16)
        return NULL;
    bool found;
    unsigned i = find_id_pos(md, id->data, &found);
    return found ? md->by_id[i] : NULL;
}

/* Insert t, whose name and id are both free. */
static int insert_topic(rn_metadata *md, topic *t)
{
    if (md->n_topics == md->cap_topics) {
        unsigned cap = md->cap_topics ? md->cap_topics * 2 : 16;
        topic **a = realloc(md->by_name, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        md->by_name = a;
        topic **b = realloc(md->by_id, cap * sizeof(*b));
        if (!b)
            return -ENOMEM;
        md->by_id = b;
        md->cap_topics = cap;
    }
    bool found;
    unsigned n = md->n_topics;
    unsigned i = find_name_pos(md, t->name, &found);
    memmove(md->by_name + i + 1, md->by_name + i, (n - i) * sizeof(*md->by_name));
    md->by_name[i] = t;
    unsigned j = find_id_pos(md, t->info.id, &found);
    memmove(md->by_id + j + 1, md->by_id + j, (n - j) * sizeof(*md->by_id));
    md->by_id[j] = t;
    md->n_topics = n + 1;
    return 0;
}

static void remove_topic(rn_metadata *md, topic *t)
{
    bool found;
    unsigned n = md->n_topics - 1;
    unsigned i = find_name_pos(md, t->name, &found);
    memmove(md->by_name + i, md->by_name + i + 1, (n - i) * sizeof(*md->by_name));
    unsigned j = find_id_pos(md, t->info.id, &found);
    memmove(md->by_id + j, md->by_id + j + 1, (n - j) * sizeof(*md->by_id));
    md->n_topics = n;
    topic_free(t);
}

static void reset_state(rn_metadata *md)
{
    for (unsigned i = 0; i < md->n_topics; i++)
        topic_free(md->by_name[i]);
    md->n_topics = 0;
}

/* ---- Apply (invariants 1, 2) ------------------------------------------------- */

static void flush_events(event_q *q)
{
    rn_metadata *md = q->md;
    for (size_t i = 0; i < q->n; i++) {
        rn_metadata_event ev = {.type = q->ev[i].type, .topic = &q->ev[i].t->info};
        md->listener(md->listener_arg, &ev);
    }
    q->n = 0;
}

/* Queue an event unless this batch already has one for t (a topic created in
 * this batch reports its configs with CREATED). */
static void queue_event(event_q *q, enum rn_metadata_event_type type, topic *t)
{
    if (!q || !q->md->listener)
        return;
    for (size_t i = 0; i < q->n; i++)
        if (q->ev[i].t == t)
            return;
    q->ev[q->n].type = type;
    q->ev[q->n].t = t;
    q->n++;
}

static int apply_topic(rn_metadata *md, const md_topic_record *r, event_q *q, int *status)
{
    size_t len;
    const char *name = r->name ? r->name : "";
    if (r->topic_id.len != 16 || r->replication_factor < 1 || r->replication_factor > INT16_MAX) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    if (!name_chars_ok(name, &len)) {
        *status = -RN_E_INVALID_TOPIC;
        return 0;
    }
    if (r->partitions < 1 || r->partitions > MAX_PARTITIONS) {
        *status = -RN_E_INVALID_PARTITIONS;
        return 0;
    }
    if (find_by_name(md, name) || find_by_id(md, &r->topic_id)) {
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
    if (insert_topic(md, t) < 0) {
        topic_free(t);
        return -ENOMEM;
    }
    queue_event(q, RN_MD_TOPIC_CREATED, t);
    return 0;
}

static int apply_partition(rn_metadata *md, const md_partition_record *r, int *status)
{
    topic *t = find_by_id(md, &r->topic_id);
    if (!t || r->partition < 0 || r->partition >= t->info.n_partitions) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    /* Bounded by the batch size already; this keeps the int32 counts honest. */
    if (r->n_replicas > INT32_MAX / 2 || r->n_isr > INT32_MAX / 2) {
        *status = -RN_E_INVALID_REQUEST;
        return 0;
    }
    int32_t *nodes = NULL;
    size_t n = r->n_replicas + r->n_isr;
    if (n) {
        nodes = malloc(n * sizeof(*nodes));
        if (!nodes)
            return -ENOMEM;
        if (r->n_replicas)
            memcpy(nodes, r->replicas, r->n_replicas * sizeof(*nodes));
        if (r->n_isr)
            memcpy(nodes + r->n_replicas, r->isr, r->n_isr * sizeof(*nodes));
    }
    rn_partition_info *p = &t->parts[r->partition];
    free((void *)p->replicas);
    p->leader = r->leader;
    p->leader_epoch = r->leader_epoch;
    p->n_replicas = (int32_t)r->n_replicas;
    p->replicas = nodes;
    p->n_isr = (int32_t)r->n_isr;
    p->isr = nodes ? nodes + r->n_replicas : NULL;
    return 0;
}

static void apply_remove(rn_metadata *md, const md_remove_record *r, event_q *q, int *status)
{
    topic *t = find_by_id(md, &r->topic_id);
    if (!t) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return;
    }
    if (q && md->listener) {
        /* Events are in record order, and none may outlive its topic. */
        flush_events(q);
        rn_metadata_event ev = {.type = RN_MD_TOPIC_DELETED, .topic = &t->info};
        md->listener(md->listener_arg, &ev);
    }
    remove_topic(md, t);
}

static int apply_config(rn_metadata *md, const md_config_record *r, event_q *q, int *status)
{
    topic *t = find_by_id(md, &r->topic_id);
    const char *key = r->key ? r->key : "";
    if (!t || !*key) {
        *status = t ? -RN_E_INVALID_CONFIG : -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    int rc = r->remove ? config_del(t, key) : config_put(t, key, r->value ? r->value : "");
    if (rc < 0)
        return rc;
    if (rc > 0)
        queue_event(q, RN_MD_CONFIG_CHANGED, t);
    return 0;
}

static int apply_partition_count(rn_metadata *md, const md_count_record *r, event_q *q, int *status)
{
    topic *t = find_by_id(md, &r->topic_id);
    if (!t) {
        *status = -RN_E_UNKNOWN_TOPIC;
        return 0;
    }
    int32_t old = t->info.n_partitions, n = r->partitions;
    if (n <= old || n > MAX_PARTITIONS) {
        *status = -RN_E_INVALID_PARTITIONS;
        return 0;
    }
    rn_partition_info *parts = realloc(t->parts, (size_t)n * sizeof(*parts));
    if (!parts)
        return -ENOMEM;
    /* The PartitionRecords that follow fill the new ones in. */
    for (int32_t i = old; i < n; i++)
        parts[i] = (rn_partition_info){.partition = i, .leader = -1};
    t->parts = parts;
    t->info.n_partitions = n;
    sync_info(t);
    queue_event(q, RN_MD_PARTITIONS_ADDED, t);
    return 0;
}

/* Apply one record. Returns 0 or -ENOMEM (the state is then behind the log);
 * *status tells whether it applied (0) or why it was skipped. q is NULL when
 * nobody is to be told (snapshot load, replay). */
static int apply_record(rn_metadata *md, const md_record *r, event_q *q, int *status)
{
    *status = 0;
    switch (r->record_case) {
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC:
        return apply_topic(md, r->topic, q, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION:
        return apply_partition(md, r->partition, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_REMOVE_TOPIC:
        apply_remove(md, r->remove_topic, q, status);
        return 0;
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_CONFIG:
        return apply_config(md, r->config, q, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_COUNT:
        return apply_partition_count(md, r->partition_count, q, status);
    case RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER:
        /* Brokers join the state with the cluster (DESIGN §8); a single
         * node has nothing to track, and skipping is deterministic. */
        return 0;
    default:
        /* decode_record refuses these: invariant 5. */
        *status = -RN_E_CORRUPT_FILE;
        return 0;
    }
}

/* Unpack one record value. NULL with md->errmsg set when it is not a
 * MetadataRecord this version knows. */
static md_record *decode_record(rn_metadata *md, const rn_record *rec)
{
    if (!rec->value || rec->value_len < 0) {
        snprintf(md->errmsg, sizeof(md->errmsg),
                 "metadata log: offset %" PRId64 ": record has no value", rec->offset);
        return NULL;
    }
    md_record *r =
        runnel__metadata__metadata_record__unpack(NULL, (size_t)rec->value_len, rec->value);
    if (!r) {
        snprintf(md->errmsg, sizeof(md->errmsg),
                 "metadata log: offset %" PRId64 ": record (%" PRId32
                 " bytes) does not decode as a MetadataRecord",
                 rec->offset, rec->value_len);
        return NULL;
    }
    if (r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD__NOT_SET) {
        snprintf(md->errmsg, sizeof(md->errmsg),
                 "metadata log: offset %" PRId64
                 ": record of a kind this version does not know (written by a newer runnel?)",
                 rec->offset);
        runnel__metadata__metadata_record__free_unpacked(r, NULL);
        return NULL;
    }
    return r;
}

/* Apply one batch whole: decode every record first (so a corrupt batch
 * changes nothing), then apply them in order, then tell the listener when
 * notify. Records below md->applied (covered by the snapshot) are passed
 * over. *first_status is the status of the first record applied: the
 * outcome of the change the batch carries. Returns 0, -RN_E_CORRUPT_FILE
 * (md->errmsg says where) or -ENOMEM. */
static int apply_batch(rn_metadata *md, const uint8_t *buf, size_t len, bool notify,
                       int *first_status)
{
    *first_status = 0;
    rn_batch_iter it;
    int rc = rn_batch_iter_init(&it, buf, len, 0);
    if (rc < 0) {
        snprintf(md->errmsg, sizeof(md->errmsg), "metadata log: batch: %s", rn_strerror(rc));
        return -RN_E_CORRUPT_FILE;
    }
    int64_t base = it.h.base_offset;
    size_t n = (size_t)it.h.records_count;
    md_record **recs = calloc(n, sizeof(*recs));
    event *evs = calloc(n, sizeof(*evs));
    size_t n_recs = 0;
    if (!recs || !evs) {
        rc = -ENOMEM;
        goto out;
    }
    rn_record rec;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
        if (rec.offset < md->applied)
            continue;
        if (n_recs == n) {
            rc = -RN_E_BATCH_BAD_COUNT; /* the iterator checks this; belt and braces */
            break;
        }
        recs[n_recs] = decode_record(md, &rec);
        if (!recs[n_recs]) {
            rc = -RN_E_CORRUPT_FILE;
            goto out;
        }
        n_recs++;
    }
    if (rc < 0) {
        snprintf(md->errmsg, sizeof(md->errmsg), "metadata log: batch at offset %" PRId64 ": %s",
                 base, rn_strerror(rc));
        rc = -RN_E_CORRUPT_FILE;
        goto out;
    }
    event_q q = {.md = md, .ev = evs};
    for (size_t i = 0; i < n_recs; i++) {
        int status;
        rc = apply_record(md, recs[i], notify ? &q : NULL, &status);
        if (rc < 0)
            goto out;
        if (i == 0)
            *first_status = status;
    }
    if (notify && md->listener)
        flush_events(&q);
    int64_t next = base + it.h.last_offset_delta + 1;
    if (next > md->applied)
        md->applied = next;
    md->since_snapshot += n_recs;
    rc = 0;

out:
    for (size_t i = 0; i < n_recs; i++)
        runnel__metadata__metadata_record__free_unpacked(recs[i], NULL);
    free(recs);
    free(evs);
    rn_batch_iter_fini(&it);
    return rc;
}

/* ---- Snapshot ------------------------------------------------------------- */

/* Write [u32 len | packed r] at p (when p is not NULL); returns the bytes. */
static size_t put_record(uint8_t *p, const md_record *r)
{
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    if (p) {
        rn_put_le32(p, (uint32_t)len);
        protobuf_c_message_pack(&r->base, p + 4);
    }
    return 4 + len;
}

/* Walk the state as snapshot records: measure (out NULL) or write them.
 * *len and *count get the totals. Errors: -ENOMEM, -EFBIG. */
static int snapshot_walk(const rn_metadata *md, uint8_t *out, size_t *len, uint32_t *count)
{
    size_t pos = 0;
    uint64_t n = 0;
    for (unsigned i = 0; i < md->n_topics; i++) {
        const topic *t = md->by_name[i];
        uint32_t nc = t->info.n_configs;
        md_config_entry *entries = calloc(nc ? nc : 1, sizeof(*entries));
        md_config_entry **ptrs = calloc(nc ? nc : 1, sizeof(*ptrs));
        if (!entries || !ptrs) {
            free(entries);
            free(ptrs);
            return -ENOMEM;
        }
        for (uint32_t c = 0; c < nc; c++) {
            runnel__metadata__topic_record__configs_entry__init(&entries[c]);
            entries[c].key = t->keys[c];
            entries[c].value = t->values[c];
            ptrs[c] = &entries[c];
        }
        md_topic_record tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
        tr.name = t->name;
        tr.topic_id.len = 16;
        tr.topic_id.data = (uint8_t *)t->info.id;
        tr.partitions = t->info.n_partitions;
        tr.replication_factor = t->info.replication_factor;
        tr.n_configs = nc;
        tr.configs = ptrs;
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
        r.topic = &tr;
        pos += put_record(out ? out + pos : NULL, &r);
        n++;
        free(entries);
        free(ptrs);

        for (int32_t p = 0; p < t->info.n_partitions; p++) {
            const rn_partition_info *pi = &t->parts[p];
            md_partition_record pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
            pr.topic_id = tr.topic_id;
            pr.partition = pi->partition;
            pr.n_replicas = (size_t)pi->n_replicas;
            pr.replicas = (int32_t *)pi->replicas;
            pr.n_isr = (size_t)pi->n_isr;
            pr.isr = (int32_t *)pi->isr;
            pr.leader = pi->leader;
            pr.leader_epoch = pi->leader_epoch;
            md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
            rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
            rp.partition = &pr;
            pos += put_record(out ? out + pos : NULL, &rp);
            n++;
        }
    }
    if (n > UINT32_MAX || pos > SNAPSHOT_MAX_BYTES)
        return -EFBIG;
    *len = pos;
    *count = (uint32_t)n;
    return 0;
}

/* Durably replace the snapshot with the current state. Synchronous (see the
 * design block). Errors: -errno, -ENOMEM, -EFBIG; the old snapshot stays. */
static int write_snapshot(rn_metadata *md)
{
    size_t body;
    uint32_t count;
    int rc = snapshot_walk(md, NULL, &body, &count);
    if (rc < 0)
        return rc;
    size_t total = SNAPSHOT_HEADER_LEN + body + SNAPSHOT_TRAILER_LEN;
    uint8_t *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, SNAPSHOT_MAGIC, 8);
    rn_put_le32(buf + 8, SNAPSHOT_VERSION);
    rn_put_le64(buf + 12, (uint64_t)md->applied);
    rn_put_le32(buf + 20, count);
    size_t body2;
    uint32_t count2;
    rc = snapshot_walk(md, buf + SNAPSHOT_HEADER_LEN, &body2, &count2);
    if (rc < 0)
        goto out;
    rn_put_le64(buf + total - 8, XXH3_64bits(buf, total - 8));

    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", md->dir, SNAPSHOT_NAME) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s", md->dir, SNAPSHOT_TMP_NAME) >= (int)sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    int fd = rn_sys_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = rn_sys_pwrite_all(fd, buf, total, 0);
    if (rc == 0)
        rc = rn_sys_fdatasync(fd);
    int rc_close = rn_sys_close(fd);
    if (rc == 0)
        rc = rc_close;
    if (rc == 0)
        rc = rn_sys_rename(tmp, path);
    if (rc < 0) {
        rn_sys_unlink(tmp);
        goto out;
    }
    rc = rn_sys_fsync_dir(md->dir);
    if (rc == 0) {
        md->snapshot_offset = md->applied;
        md->since_snapshot = 0;
    }

out:
    free(buf);
    return rc;
}

/* Load the snapshot into the (empty) state. Returns 0 with md->applied set to
 * the offset it covers, -ENOENT when there is none, -RN_E_CORRUPT_FILE with
 * why filled in, -ENOMEM, -errno. On error the state may hold part of the
 * snapshot: the caller resets it. */
static int load_snapshot(rn_metadata *md, char *why, size_t whylen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", md->dir, SNAPSHOT_NAME) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = rn_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    uint8_t *buf = NULL;
    struct stat st;
    int rc = rn_sys_fstat(fd, &st);
    if (rc < 0)
        goto out;
    uint64_t size = (uint64_t)st.st_size;
    if (size < SNAPSHOT_HEADER_LEN + SNAPSHOT_TRAILER_LEN || size > SNAPSHOT_MAX_BYTES) {
        rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "size %" PRIu64 " out of range", size);
        goto out;
    }
    buf = malloc(size);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t got = rn_sys_pread_all(fd, buf, size, 0);
    if (got < 0) {
        rc = (int)got;
        goto out;
    }
    if ((uint64_t)got != size) {
        rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "short read");
        goto out;
    }
    if (memcmp(buf, SNAPSHOT_MAGIC, 8) != 0) {
        rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "bad magic");
        goto out;
    }
    if (rn_get_le32(buf + 8) != SNAPSHOT_VERSION) {
        rc =
            fail(-RN_E_CORRUPT_FILE, why, whylen, "unknown version %" PRIu32, rn_get_le32(buf + 8));
        goto out;
    }
    if (rn_get_le64(buf + size - 8) != XXH3_64bits(buf, size - 8)) {
        rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "checksum mismatch");
        goto out;
    }
    uint64_t offset = rn_get_le64(buf + 12);
    uint32_t count = rn_get_le32(buf + 20);
    const uint8_t *p = buf + SNAPSHOT_HEADER_LEN, *end = buf + size - SNAPSHOT_TRAILER_LEN;
    /* Every record takes at least its 4-byte length. */
    if (offset > INT64_MAX || count > (uint64_t)(end - p) / 4) {
        rc = fail(-RN_E_CORRUPT_FILE, why, whylen,
                  "offset %" PRIu64 " or count %" PRIu32 " out of range", offset, count);
        goto out;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 4 || rn_get_le32(p) > (uint64_t)(end - p - 4)) {
            rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "record %" PRIu32 " overruns the file", i);
            goto out;
        }
        uint32_t len = rn_get_le32(p);
        md_record *r = runnel__metadata__metadata_record__unpack(NULL, len, p + 4);
        if (!r || r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD__NOT_SET) {
            if (r)
                runnel__metadata__metadata_record__free_unpacked(r, NULL);
            rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "record %" PRIu32 " does not decode", i);
            goto out;
        }
        int status;
        rc = apply_record(md, r, NULL, &status);
        runnel__metadata__metadata_record__free_unpacked(r, NULL);
        if (rc < 0)
            goto out;
        p += 4 + len;
    }
    if (p != end) {
        rc = fail(-RN_E_CORRUPT_FILE, why, whylen, "%zu bytes after the last record",
                  (size_t)(end - p));
        goto out;
    }
    md->applied = (int64_t)offset;
    md->snapshot_offset = (int64_t)offset;
    rc = 0;

out:
    free(buf);
    rn_sys_close(fd);
    return rc;
}

static void maybe_snapshot(rn_metadata *md)
{
    if (md->failed || md->since_snapshot < SNAPSHOT_EVERY)
        return;
    int rc = write_snapshot(md);
    if (rc < 0) {
        /* The log holds everything; try again after as many changes. */
        md->since_snapshot = 0;
        rn_logfmt(RN_WARN, "metadata snapshot failed", "dir=%s error=%s", md->dir, rn_errname(rc));
    }
}

/* ---- Open, replay, close ------------------------------------------------- */

/* Apply every batch from md->applied to the log end. */
static int replay(rn_metadata *md)
{
    int64_t end = rn_log_end_offset(md->log);
    while (md->applied < end) {
        rn_slice s;
        int rc = rn_log_read(md->log, md->applied, REPLAY_READ_BYTES, end, &s);
        if (rc < 0) {
            snprintf(md->errmsg, sizeof(md->errmsg), "metadata log: reading offset %" PRId64 ": %s",
                     md->applied, rn_log_errmsg(md->log));
            return rc;
        }
        if (s.len == 0)
            break;
        size_t pos = 0;
        while (pos < s.len) {
            rn_batch_header h;
            rc = rn_batch_peek(s.data + pos, s.len - pos, 0, &h);
            if (rc == 0 && rn_batch_size(&h) > s.len - pos)
                rc = -RN_E_BATCH_TRUNCATED;
            if (rc < 0) {
                snprintf(md->errmsg, sizeof(md->errmsg),
                         "metadata log: batch after offset %" PRId64 ": %s", md->applied,
                         rn_strerror(rc));
                rn_slice_release(&s);
                return -RN_E_CORRUPT_FILE;
            }
            int status;
            rc = apply_batch(md, s.data + pos, rn_batch_size(&h), false, &status);
            if (rc < 0) {
                rn_slice_release(&s);
                return rc;
            }
            pos += rn_batch_size(&h);
        }
        /* A batch never moves md->applied backwards; s.next_offset covers a
         * slice whose batches were all below it. */
        if (s.next_offset > md->applied)
            md->applied = s.next_offset;
        rn_slice_release(&s);
    }
    return 0;
}

static void free_md(rn_metadata *md)
{
    reset_state(md);
    free(md->by_name);
    free(md->by_id);
    free(md->dir);
    free(md);
}

int rn_metadata_open(rn_metadata **out, rn_io *io, const char *data_dir, int32_t node_id,
                     rn_metadata_listener listener, void *listener_arg, char *err, size_t errlen)
{
    *out = NULL;
    rn_metadata *md = calloc(1, sizeof(*md));
    if (!md)
        return fail(-ENOMEM, err, errlen, "metadata: out of memory");
    md->io = io;
    md->node_id = node_id;
    md->listener = listener;
    md->listener_arg = listener_arg;
    md->snapshot_offset = -1;
    size_t dlen = strlen(data_dir) + 1 + sizeof(MD_LOG_NAME);
    md->dir = malloc(dlen);
    if (!md->dir) {
        free_md(md);
        return fail(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    snprintf(md->dir, dlen, "%s/%s", data_dir, MD_LOG_NAME);

    int rc = rn_sys_mkdir(data_dir, 0755);
    if (rc < 0) {
        fail(rc, err, errlen, "metadata: mkdir %s: %s", data_dir, rn_strerror(rc));
        free_md(md);
        return rc;
    }
    rn_log_config lc;
    rn_log_config_default(&lc);
    lc.segment_bytes = MD_SEGMENT_BYTES;
    lc.max_batch_bytes = MD_MAX_BATCH_BYTES;
    lc.flush = RN_FLUSH_ALWAYS; /* a change is acknowledged only once durable */
    lc.roll_ms = 0;
    lc.retention_ms = -1; /* the log is the truth: nothing may age out of it */
    lc.retention_bytes = -1;
    rn_log_open_info info;
    rc = rn_log_open(&md->log, io, md->dir, MD_LOG_NAME, &lc, &info);
    if (rc < 0) {
        fail(rc, err, errlen, "metadata log %s: open: %s", md->dir, rn_strerror(rc));
        free_md(md);
        return rc;
    }

    int64_t start = rn_log_start_offset(md->log), leo = rn_log_end_offset(md->log);
    char why[256] = "";
    rc = load_snapshot(md, why, sizeof(why));
    if (rc == 0 && (md->applied < start || md->applied > leo)) {
        /* Written for a log that is not this one (restored from elsewhere, or
         * recovery cut the log below it): only the log can be trusted. */
        snprintf(why, sizeof(why), "covers offset %" PRId64 ", log holds %" PRId64 "..%" PRId64,
                 md->applied, start, leo);
        rc = -RN_E_CORRUPT_FILE;
    }
    if (rc == -ENOMEM) {
        fail(rc, err, errlen, "metadata: out of memory loading the snapshot");
        goto fail;
    }
    if (rc < 0) {
        if (rc != -ENOENT) {
            char q[300];
            rn_logfmt(RN_WARN, "metadata snapshot ignored, replaying the whole log",
                      "dir=%s reason=%s", md->dir,
                      rn_logfmt_quote(why[0] ? why : rn_strerror(rc), q, sizeof(q)));
        }
        reset_state(md);
        md->snapshot_offset = -1;
        md->applied = start;
    }
    md->since_snapshot = 0;
    rc = replay(md);
    if (rc < 0) {
        fail(rc, err, errlen, "%s", md->errmsg);
        goto fail;
    }
    maybe_snapshot(md);
    rn_logfmt(RN_INFO, "metadata loaded",
              "topics=%u applied_offset=%" PRId64 " snapshot_offset=%" PRId64, md->n_topics,
              md->applied, md->snapshot_offset);
    if (listener)
        for (unsigned i = 0; i < md->n_topics; i++) {
            rn_metadata_event ev = {.type = RN_MD_TOPIC_CREATED, .topic = &md->by_name[i]->info};
            listener(listener_arg, &ev);
        }
    *out = md;
    return 0;

fail:
    rn_log_close(md->log);
    free_md(md);
    return rc;
}

int rn_metadata_close(rn_metadata *md)
{
    /* Let the changes in flight land (and apply) so the snapshot has them. */
    int rc = rn_log_flush_sync(md->log);
    if (!md->failed && md->applied != md->snapshot_offset) {
        int r = write_snapshot(md);
        if (r < 0)
            rn_logfmt(RN_WARN, "metadata snapshot failed", "dir=%s error=%s", md->dir,
                      rn_errname(r));
        if (rc == 0)
            rc = r;
    }
    int r = rn_log_close(md->log);
    if (rc == 0)
        rc = r;
    /* rn_log_close ran every callback, so nothing is pending any more. */
    free_md(md);
    return rc;
}

/* ---- Changes ----------------------------------------------------------------- */

static void pending_unlink(rn_metadata *md, change *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        md->pending_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        md->pending_tail = c->prev;
    c->prev = c->next = NULL;
}

static void change_free(change *c)
{
    free(c->name);
    free(c->batch);
    free(c);
}

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
    bool found;
    find_id_pos(md, id, &found);
    if (found)
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
static topic *live_topic(const rn_metadata *md, const char *name)
{
    if (!name)
        return NULL;
    topic *t = find_by_name(md, name);
    return t && !pending_delete(md, t->info.id) ? t : NULL;
}

/* Encodes records into one batch. */
typedef struct encoder {
    rn_batch_builder *b;
    uint8_t *buf;
    size_t cap;
    int64_t now;
} encoder;

static int enc_init(encoder *e)
{
    memset(e, 0, sizeof(*e));
    e->now = rn_log_clock_ms();
    return rn_batch_builder_new(&e->b, NULL);
}

static void enc_fini(encoder *e)
{
    rn_batch_builder_free(e->b);
    free(e->buf);
}

static int enc_add(encoder *e, const md_record *r)
{
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    if (len > e->cap) {
        size_t cap = len < 256 ? 256 : len;
        uint8_t *b = realloc(e->buf, cap);
        if (!b)
            return -ENOMEM;
        e->buf = b;
        e->cap = cap;
    }
    protobuf_c_message_pack(&r->base, e->buf);
    return rn_batch_builder_add(e->b, e->now, NULL, 0, e->buf, len, NULL, 0);
}

static void append_done(void *arg, int err, int64_t base_offset, int64_t last_offset)
{
    change *c = arg;
    rn_metadata *md = c->md;
    char msg[1024] = "";
    pending_unlink(md, c);
    if (err == 0) {
        int status;
        int rc = apply_batch(md, c->batch, c->len, true, &status);
        if (rc < 0) {
            /* Invariant 6: the batch is in the log but not (all) in the state. */
            md->failed = rc;
            err = rc;
            snprintf(msg, sizeof(msg),
                     "metadata: applying offset %" PRId64 " failed (%s); the broker must "
                     "restart to rebuild its metadata",
                     base_offset, rc == -ENOMEM ? rn_strerror(rc) : md->errmsg);
            rn_logfmt(RN_ERROR, "metadata apply failed", "offset=%" PRId64 " error=%s", base_offset,
                      rn_errname(rc));
        } else if (status < 0) {
            /* Invariant 3 makes this a should-not-happen; report, do not hide. */
            err = status;
            snprintf(msg, sizeof(msg), "metadata: change at offset %" PRId64 " did not apply: %s",
                     base_offset, rn_strerror(status));
        } else {
            maybe_snapshot(md);
        }
    } else {
        snprintf(msg, sizeof(msg), "metadata log: append: %s%s%s", rn_strerror(err),
                 rn_log_errmsg(md->log)[0] ? ": " : "", rn_log_errmsg(md->log));
    }
    (void)last_offset;
    rn_metadata_cb cb = c->cb;
    void *cb_arg = c->arg;
    change_free(c);
    if (cb)
        cb(cb_arg, err, msg);
}

/* Finish the encoder's batch into c and append it. Takes ownership of c
 * (freed on error). */
static int submit(rn_metadata *md, encoder *e, change *c, char *err, size_t errlen)
{
    int rc = rn_batch_builder_finish(e->b, &c->batch, &c->len);
    enc_fini(e);
    if (rc < 0) {
        change_free(c);
        return fail(rc, err, errlen, "metadata: encoding the change: %s", rn_strerror(rc));
    }
    c->md = md;
    rc = rn_log_append(md->log, c->batch, c->len, 0, append_done, c);
    if (rc < 0) {
        change_free(c);
        return fail(rc, err, errlen, "metadata log: append: %s%s%s", rn_strerror(rc),
                    rn_log_errmsg(md->log)[0] ? ": " : "", rn_log_errmsg(md->log));
    }
    c->prev = md->pending_tail;
    if (md->pending_tail)
        md->pending_tail->next = c;
    else
        md->pending_head = c;
    md->pending_tail = c;
    return 0;
}

static int check_failed(const rn_metadata *md, char *err, size_t errlen)
{
    if (md->failed)
        return fail(md->failed, err, errlen,
                    "metadata: state is behind the metadata log after an error (%s); restart "
                    "the broker",
                    rn_strerror(md->failed));
    return 0;
}

/* Validate one topic-level key=value on a scratch copy of the defaults. */
static int check_config(rn_log_config *scratch, const char *topic_name, const char *key,
                        const char *value, char *err, size_t errlen)
{
    if (!key || !value)
        return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config key or value missing",
                    topic_name);
    char why[256] = "";
    int rc = rn_topic_config_set(scratch, key, value, why, sizeof(why));
    if (rc < 0)
        return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: %s", topic_name,
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

/* Internal topics (__offsets, …) are created by the broker itself: the same
 * path as a client's topic, with the "__" prefix required instead of refused. */
static int check_internal_name(const char *name, char *err, size_t errlen)
{
    size_t len;
    if (!name || !name_chars_ok(name, &len) || strncmp(name, "__", 2) != 0)
        return fail(-RN_E_INVALID_TOPIC, err, errlen,
                    "internal topic name \"%.64s\": must start with \"__\" and be 1 to %d "
                    "characters of [a-zA-Z0-9._-]",
                    name ? name : "(null)", MAX_NAME_LEN);
    return 0;
}

void rn_metadata_set_limits(rn_metadata *md, const rn_metadata_limits *l)
{
    md->limits = *l;
    md->limits_set = true;
}

int64_t rn_metadata_partition_count(const rn_metadata *md)
{
    int64_t n = 0;
    for (unsigned i = 0; i < md->n_topics; i++)
        n += md->by_name[i]->info.n_partitions;
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
        return fail(-RN_E_INVALID_PARTITIONS, err, errlen,
                    "topic %s: %" PRId32
                    " partitions is more than max.partitions.per.topic (%" PRId32 ")",
                    name, topic_total, l->max_per_topic);
    int64_t have = rn_metadata_partition_count(md);
    if (have + added > l->max_total)
        return fail(-RN_E_INVALID_PARTITIONS, err, errlen,
                    "topic %s: %" PRId32 " more partitions would make %" PRId64
                    " on this broker, more than max.partitions (%" PRId64 ")",
                    name, added, have + added, l->max_total);
    if (l->fit >= 0 && have + added > l->fit)
        return fail(-RN_E_INVALID_PARTITIONS, err, errlen,
                    "topic %s: %" PRId32 " more partitions would make %" PRId64
                    " on this broker; its limits hold %" PRId64 " (%s)",
                    name, added, have + added, l->fit, l->fit_why);
    return 0;
}

static int create_topic(rn_metadata *md, const char *name, int32_t n_partitions,
                        int16_t replication_factor, const char *const *config_keys,
                        const char *const *config_values, size_t n_configs, bool internal,
                        rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    int rc = check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    rc = internal ? check_internal_name(name, err, errlen)
                  : rn_metadata_check_topic_name(name, err, errlen);
    if (rc < 0)
        return rc;
    if (n_partitions < 1 || n_partitions > MAX_PARTITIONS)
        return fail(-RN_E_INVALID_PARTITIONS, err, errlen,
                    "topic %s: %" PRId32 " partitions, must be 1 to %d", name, n_partitions,
                    MAX_PARTITIONS);
    if (replication_factor == -1)
        replication_factor = 1;
    if (replication_factor < 1)
        return fail(-RN_E_INVALID_REQUEST, err, errlen,
                    "topic %s: replication factor %d, must be at least 1 (or -1 for the default)",
                    name, replication_factor);
    if (replication_factor > N_BROKERS)
        return fail(-RN_E_NOT_ENOUGH_REPLICAS, err, errlen,
                    "topic %s: replication factor %d is larger than the %d available broker%s",
                    name, replication_factor, N_BROKERS, N_BROKERS == 1 ? "" : "s");
    rn_log_config scratch;
    rn_log_config_default(&scratch);
    for (size_t i = 0; i < n_configs; i++) {
        rc = check_config(&scratch, name, config_keys[i], config_values[i], err, errlen);
        if (rc < 0)
            return rc;
        if (in_list(config_keys, i, config_keys[i]))
            return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config %s given twice", name,
                        config_keys[i]);
    }
    char why[256] = "";
    if (rn_topic_config_check(&scratch, why, sizeof(why)) < 0)
        return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: %s", name, why);
    if (find_by_name(md, name) || pending_create(md, name))
        return fail(-RN_E_TOPIC_EXISTS, err, errlen, "topic %s already exists", name);
    /* The broker's own topics (__offsets) are not held to the caps: without
     * them it cannot serve at all, and they are a partition or a few. */
    rc = internal ? 0 : rn_metadata_check_limits(md, name, n_partitions, n_partitions, err, errlen);
    if (rc < 0)
        return rc;

    change *c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return fail(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    c->kind = CHANGE_CREATE;
    c->n_partitions = n_partitions;
    c->cb = cb;
    c->arg = arg;
    rc = new_topic_id(md, c->id);
    if (rc < 0) {
        change_free(c);
        return fail(rc, err, errlen, "metadata: getrandom: %s", rn_strerror(rc));
    }

    encoder e;
    md_config_entry *entries = calloc(n_configs ? n_configs : 1, sizeof(*entries));
    md_config_entry **ptrs = calloc(n_configs ? n_configs : 1, sizeof(*ptrs));
    rc = entries && ptrs ? enc_init(&e) : -ENOMEM;
    if (rc < 0) {
        free(entries);
        free(ptrs);
        change_free(c);
        return fail(rc, err, errlen, "metadata: out of memory");
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
    rc = enc_add(&e, &r);
    free(entries);
    free(ptrs);

    /* One node: it leads every partition and is its only replica. */
    int32_t node = md->node_id;
    for (int32_t p = 0; p < n_partitions && rc == 0; p++) {
        md_partition_record pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
        pr.topic_id = tr.topic_id;
        pr.partition = p;
        pr.n_replicas = 1;
        pr.replicas = &node;
        pr.n_isr = 1;
        pr.isr = &node;
        pr.leader = node;
        pr.leader_epoch = 0;
        md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
        rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
        rp.partition = &pr;
        rc = enc_add(&e, &rp);
    }
    if (rc < 0) {
        enc_fini(&e);
        change_free(c);
        return fail(rc, err, errlen, "topic %s: encoding: %s", name, rn_strerror(rc));
    }
    return submit(md, &e, c, err, errlen);
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
    int rc = check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    topic *t = live_topic(md, name);
    if (!t)
        return fail(-RN_E_UNKNOWN_TOPIC, err, errlen, "topic %s does not exist",
                    name ? name : "(null)");
    change *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(-ENOMEM, err, errlen, "metadata: out of memory");
    c->kind = CHANGE_DELETE;
    memcpy(c->id, t->info.id, 16);
    c->cb = cb;
    c->arg = arg;

    encoder e;
    rc = enc_init(&e);
    if (rc < 0) {
        change_free(c);
        return fail(rc, err, errlen, "metadata: out of memory");
    }
    md_remove_record rr = RUNNEL__METADATA__REMOVE_TOPIC_RECORD__INIT;
    rr.topic_id.len = 16;
    rr.topic_id.data = c->id;
    rr.name = t->name;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_REMOVE_TOPIC;
    r.remove_topic = &rr;
    rc = enc_add(&e, &r);
    if (rc < 0) {
        enc_fini(&e);
        change_free(c);
        return fail(rc, err, errlen, "topic %s: encoding: %s", name, rn_strerror(rc));
    }
    return submit(md, &e, c, err, errlen);
}

int rn_metadata_alter_configs(rn_metadata *md, const char *topic_name, const char *const *set_keys,
                              const char *const *set_values, size_t n_set,
                              const char *const *delete_keys, size_t n_delete, rn_metadata_cb cb,
                              void *arg, char *err, size_t errlen)
{
    int rc = check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    topic *t = live_topic(md, topic_name);
    if (!t)
        return fail(-RN_E_UNKNOWN_TOPIC, err, errlen, "topic %s does not exist",
                    topic_name ? topic_name : "(null)");
    if (n_set + n_delete == 0)
        return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: no config to set or delete",
                    topic_name);
    rn_log_config scratch;
    rn_log_config_default(&scratch);
    for (size_t i = 0; i < n_set; i++) {
        rc = check_config(&scratch, topic_name, set_keys[i], set_values[i], err, errlen);
        if (rc < 0)
            return rc;
        if (in_list(set_keys, i, set_keys[i]))
            return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config %s given twice",
                        topic_name, set_keys[i]);
    }
    for (size_t i = 0; i < n_delete; i++) {
        const char *k = delete_keys[i];
        if (!k || !rn_topic_config_known(k))
            return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: unknown config %s",
                        topic_name, k ? k : "(null)");
        if (in_list(delete_keys, i, k) || in_list(set_keys, n_set, k))
            return fail(-RN_E_INVALID_CONFIG, err, errlen, "topic %s: config %s given twice",
                        topic_name, k);
    }

    change *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(-ENOMEM, err, errlen, "metadata: out of memory");
    c->kind = CHANGE_ALTER;
    memcpy(c->id, t->info.id, 16);
    c->cb = cb;
    c->arg = arg;
    encoder e;
    rc = enc_init(&e);
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
        rc = enc_add(&e, &r);
    }
    if (rc < 0) {
        if (e.b)
            enc_fini(&e);
        change_free(c);
        return fail(rc, err, errlen, "topic %s: encoding: %s", topic_name, rn_strerror(rc));
    }
    return submit(md, &e, c, err, errlen);
}

int rn_metadata_add_partitions(rn_metadata *md, const char *topic_name, int32_t n_partitions,
                               rn_metadata_cb cb, void *arg, char *err, size_t errlen)
{
    int rc = check_failed(md, err, errlen);
    if (rc < 0)
        return rc;
    topic *t = live_topic(md, topic_name);
    if (!t)
        return fail(-RN_E_UNKNOWN_TOPIC, err, errlen, "topic %s does not exist",
                    topic_name ? topic_name : "(null)");
    /* Invariant 3: a grow in flight counts as done. */
    int32_t have = t->info.n_partitions;
    for (const change *c = md->pending_head; c; c = c->next)
        if (c->kind == CHANGE_GROW && memcmp(c->id, t->info.id, 16) == 0 && c->target > have)
            have = c->target;
    if (n_partitions <= have)
        return fail(-RN_E_INVALID_PARTITIONS, err, errlen,
                    "topic %s has %" PRId32
                    " partitions; the count can only grow (asked for %" PRId32 ")",
                    topic_name, have, n_partitions);
    if (n_partitions > MAX_PARTITIONS)
        return fail(-RN_E_INVALID_PARTITIONS, err, errlen,
                    "topic %s: %" PRId32 " partitions, must be at most %d", topic_name,
                    n_partitions, MAX_PARTITIONS);
    rc = rn_metadata_check_limits(md, topic_name, n_partitions, n_partitions - have, err, errlen);
    if (rc < 0)
        return rc;

    change *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(-ENOMEM, err, errlen, "metadata: out of memory");
    c->kind = CHANGE_GROW;
    memcpy(c->id, t->info.id, 16);
    c->n_partitions = n_partitions - have;
    c->target = n_partitions;
    c->cb = cb;
    c->arg = arg;
    encoder e;
    rc = enc_init(&e);
    if (rc < 0) {
        change_free(c);
        return fail(rc, err, errlen, "metadata: out of memory");
    }
    md_count_record cr = RUNNEL__METADATA__PARTITION_COUNT_RECORD__INIT;
    cr.topic_id.len = 16;
    cr.topic_id.data = c->id;
    cr.partitions = n_partitions;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION_COUNT;
    r.partition_count = &cr;
    rc = enc_add(&e, &r);
    /* One node: it leads every new partition and is its only replica. */
    int32_t node = md->node_id;
    for (int32_t p = have; p < n_partitions && rc == 0; p++) {
        md_partition_record pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
        pr.topic_id = cr.topic_id;
        pr.partition = p;
        pr.n_replicas = 1;
        pr.replicas = &node;
        pr.n_isr = 1;
        pr.isr = &node;
        pr.leader = node;
        md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
        rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
        rp.partition = &pr;
        rc = enc_add(&e, &rp);
    }
    if (rc < 0) {
        enc_fini(&e);
        change_free(c);
        return fail(rc, err, errlen, "topic %s: encoding: %s", topic_name, rn_strerror(rc));
    }
    return submit(md, &e, c, err, errlen);
}

/* ---- Look-ups ---------------------------------------------------------------- */

const rn_topic_info *rn_metadata_find(const rn_metadata *md, const char *name)
{
    if (!name)
        return NULL;
    topic *t = find_by_name(md, name);
    return t ? &t->info : NULL;
}

unsigned rn_metadata_topic_count(const rn_metadata *md)
{
    return md->n_topics;
}

const rn_topic_info *rn_metadata_topic_at(const rn_metadata *md, unsigned i)
{
    return i < md->n_topics ? &md->by_name[i]->info : NULL;
}

int64_t rn_metadata_applied_offset(const rn_metadata *md)
{
    return md->applied;
}

int rn_topic_log_config(const rn_topic_info *t, const rn_log_config *defaults, rn_log_config *out)
{
    *out = *defaults;
    int first = 0;
    for (uint32_t i = 0; i < t->n_configs; i++) {
        /* Validated when the change was made; a value an older or newer
         * parser refuses is left at the default rather than failing the
         * topic, and reported. */
        int rc = rn_topic_config_set(out, t->config_keys[i], t->config_values[i], NULL, 0);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}
