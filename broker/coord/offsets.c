/*
 * offsets.c — committed offsets as records of __offsets (formats in offsets.h).
 *
 * How it fits: the group coordinator (broker/coord/groups.c) owns one rn_offsets
 * table. At start it replays the __offsets partition into the table; a
 * CommitOffsets request becomes rn_offsets_commit (one or more record
 * batches appended to the log); FetchOffsets and DescribeGroup read the
 * table; a group delete appends tombstones.
 *
 * One path changes the table: apply_batch(), which walks the records of a
 * batch and applies each (key → upsert, null value → delete). Load runs it
 * over every batch of the log; a commit runs it over its own batches once
 * rn_log_append reports them durable — the batch bytes then carry the
 * offsets the log stamped, so the table and a later replay agree record for
 * record.
 *
 * Invariants:
 *   1. An entry only ever moves forward in the log: a record applies only when
 *      its log offset is above the one that set the entry, so completions in
 *      any order and re-reading a batch leave the table as a replay would.
 *   2. The table holds only what is durable (with flush=always, the log's
 *      callback fires after the fdatasync) and, with a hold set (a cluster),
 *      only what the hold said is replicated: a write is applied once its
 *      last batch is durable and the hold answers 0, never before, so
 *      FetchOffsets never shows a commit a failover could take back.
 *   3. Groups and their entries are kept sorted (group id; topic, partition),
 *      so listings are deterministic and look-ups are binary searches.
 *   4. A group with no entry left is removed from the table.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/bytes.h"
#include "broker/sorted.h"
#include "broker/coord/offsets.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

#define KEY_VERSION   0
#define VALUE_VERSION 0
/* Bytes a commit puts in one batch at most: far below message.max.bytes so a
 * commit never trips the log's limit, big enough that a commit of thousands
 * of partitions is a handful of appends. */
#define BATCH_TARGET_BYTES (256u << 10)
/* Per-record overhead of RecordBatch v2 beyond key and value: length,
 * attributes, deltas, key/value lengths, header count (all varints). */
#define RECORD_OVERHEAD 32

typedef struct ogroup {
    char *id;
    rn_offset_entry *e;
    size_t n, cap;
} ogroup;

struct rn_offsets {
    ogroup **groups; /* sorted by id */
    size_t n, cap;
    unsigned pending;
    rn_offsets_stats stats;
    rn_offsets_hold_fn hold; /* NULL: apply once durable */
    void *hold_arg;
};

/* ---- Codec ------------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, RN_OFFSETS_MAX_NAME + 1);
    return n >= 1 && n <= RN_OFFSETS_MAX_NAME;
}

int rn_offsets_key_encode(uint8_t *buf, size_t cap, const char *group, const char *topic,
                          int32_t partition)
{
    if (!name_ok(group) || !name_ok(topic) || partition < 0)
        return -RN_E_INVALID_REQUEST;
    size_t g = strlen(group), t = strlen(topic), len = 9 + g + t;
    if (cap < len)
        return -ENOBUFS;
    buf[0] = KEY_VERSION;
    rn_put_be16(buf + 1, (uint16_t)g);
    memcpy(buf + 3, group, g);
    rn_put_be16(buf + 3 + g, (uint16_t)t);
    memcpy(buf + 5 + g, topic, t);
    rn_put_be32(buf + 5 + g + t, (uint32_t)partition);
    return (int)len;
}

/* A length-prefixed name at *p: 1..249 bytes without NUL, copied to out. */
static bool take_name(const uint8_t **p, const uint8_t *end, char *out)
{
    if (end - *p < 2)
        return false;
    size_t n = rn_get_be16(*p);
    *p += 2;
    if (n < 1 || n > RN_OFFSETS_MAX_NAME || (size_t)(end - *p) < n || memchr(*p, 0, n))
        return false;
    memcpy(out, *p, n);
    out[n] = 0;
    *p += n;
    return true;
}

int rn_offsets_key_decode(const uint8_t *buf, size_t len, char *group, char *topic,
                          int32_t *partition)
{
    if (len < 1 || !buf)
        return -RN_E_CORRUPT_FILE;
    if (buf[0] != KEY_VERSION)
        return -EPROTONOSUPPORT;
    const uint8_t *p = buf + 1, *end = buf + len;
    if (!take_name(&p, end, group) || !take_name(&p, end, topic) || end - p != 4)
        return -RN_E_CORRUPT_FILE;
    int32_t part = (int32_t)rn_get_be32(p);
    if (part < 0)
        return -RN_E_CORRUPT_FILE;
    *partition = part;
    return 0;
}

int rn_offsets_value_encode(uint8_t *buf, size_t cap, int64_t offset, int64_t commit_ms,
                            const char *metadata)
{
    size_t m = metadata ? strnlen(metadata, RN_OFFSETS_MAX_METADATA + 1) : 0;
    if (m > RN_OFFSETS_MAX_METADATA || offset < 0)
        return -RN_E_INVALID_REQUEST;
    if (cap < 19 + m)
        return -ENOBUFS;
    buf[0] = VALUE_VERSION;
    rn_put_be64(buf + 1, (uint64_t)offset);
    rn_put_be64(buf + 9, (uint64_t)commit_ms);
    rn_put_be16(buf + 17, (uint16_t)m);
    if (m)
        memcpy(buf + 19, metadata, m);
    return (int)(19 + m);
}

int rn_offsets_value_decode(const uint8_t *buf, size_t len, int64_t *offset, int64_t *commit_ms,
                            const uint8_t **metadata, size_t *metadata_len)
{
    if (len < 1 || !buf)
        return -RN_E_CORRUPT_FILE;
    if (buf[0] != VALUE_VERSION)
        return -EPROTONOSUPPORT;
    if (len < 19)
        return -RN_E_CORRUPT_FILE;
    size_t m = rn_get_be16(buf + 17);
    int64_t off = (int64_t)rn_get_be64(buf + 1);
    if (len != 19 + m || m > RN_OFFSETS_MAX_METADATA || off < 0)
        return -RN_E_CORRUPT_FILE;
    *offset = off;
    *commit_ms = (int64_t)rn_get_be64(buf + 9);
    *metadata = buf + 19;
    *metadata_len = m;
    return 0;
}

/* ---- Table --------------------------------------------------------------------- */

int rn_offsets_new(rn_offsets **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

static void entry_fini(rn_offset_entry *e)
{
    free(e->topic);
    free(e->metadata);
}

static void group_free(ogroup *g)
{
    for (size_t i = 0; i < g->n; i++)
        entry_fini(&g->e[i]);
    free(g->e);
    free(g->id);
    free(g);
}

void rn_offsets_free(rn_offsets *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        group_free(o->groups[i]);
    free(o->groups);
    free(o);
}

RN_SORTED_CMP_STR(cmp_group_id, ogroup, id)

static size_t group_index(const rn_offsets *o, const char *id, bool *found)
{
    return rn_sorted_find(o->groups, o->n, sizeof(*o->groups), id, cmp_group_id, found);
}

typedef struct entry_key {
    const char *topic;
    int32_t partition;
} entry_key;

/* A group's entries sort by topic, then partition. */
static int cmp_entry(const void *key, const void *elem)
{
    const entry_key *k = key;
    const rn_offset_entry *e = elem;
    int c = strcmp(k->topic, e->topic);
    if (c == 0)
        c = k->partition < e->partition ? -1 : k->partition > e->partition;
    return c;
}

static size_t entry_index(const ogroup *g, const char *topic, int32_t partition, bool *found)
{
    entry_key k = {topic, partition};
    return rn_sorted_find(g->e, g->n, sizeof(*g->e), &k, cmp_entry, found);
}

static ogroup *find_group(const rn_offsets *o, const char *id)
{
    bool found;
    size_t i = group_index(o, id, &found);
    return found ? o->groups[i] : NULL;
}

static void remove_group_at(rn_offsets *o, size_t i)
{
    group_free(o->groups[i]);
    memmove(o->groups + i, o->groups + i + 1, (o->n - i - 1) * sizeof(*o->groups));
    o->n--;
}

/* Apply one decoded record (value NULL: tombstone). */
static int apply(rn_offsets *o, const char *group, const char *topic, int32_t partition,
                 const uint8_t *value, size_t value_len, int64_t log_offset)
{
    bool found;
    size_t gi = group_index(o, group, &found);
    ogroup *g = found ? o->groups[gi] : NULL;
    if (!value) {
        o->stats.records++;
        o->stats.tombstones++;
        if (!g)
            return 0;
        size_t ei = entry_index(g, topic, partition, &found);
        if (!found || g->e[ei].log_offset >= log_offset)
            return 0;
        entry_fini(&g->e[ei]);
        memmove(g->e + ei, g->e + ei + 1, (g->n - ei - 1) * sizeof(*g->e));
        g->n--;
        if (g->n == 0)
            remove_group_at(o, gi);
        return 0;
    }
    int64_t off, ts;
    const uint8_t *md;
    size_t md_len;
    if (rn_offsets_value_decode(value, value_len, &off, &ts, &md, &md_len) < 0) {
        o->stats.skipped++;
        return 0;
    }
    char *mdcopy = malloc(md_len + 1);
    if (!mdcopy)
        return -ENOMEM;
    memcpy(mdcopy, md, md_len);
    mdcopy[md_len] = 0;

    if (!g) {
        if (o->n == o->cap) {
            size_t cap = o->cap ? o->cap * 2 : 16;
            ogroup **v = realloc(o->groups, cap * sizeof(*v));
            if (!v)
                goto oom;
            o->groups = v;
            o->cap = cap;
        }
        g = calloc(1, sizeof(*g));
        if (!g || !(g->id = strdup(group))) {
            free(g);
            goto oom;
        }
        memmove(o->groups + gi + 1, o->groups + gi, (o->n - gi) * sizeof(*o->groups));
        o->groups[gi] = g;
        o->n++;
    }
    size_t ei = entry_index(g, topic, partition, &found);
    if (found) {
        rn_offset_entry *e = &g->e[ei];
        if (e->log_offset >= log_offset) {
            free(mdcopy);
            return 0;
        }
        free(e->metadata);
        e->metadata = mdcopy;
        e->offset = off;
        e->commit_ms = ts;
        e->log_offset = log_offset;
        o->stats.records++;
        return 0;
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        rn_offset_entry *v = realloc(g->e, cap * sizeof(*v));
        if (!v)
            goto oom_group;
        g->e = v;
        g->cap = cap;
    }
    char *tcopy = strdup(topic);
    if (!tcopy)
        goto oom_group;
    memmove(g->e + ei + 1, g->e + ei, (g->n - ei) * sizeof(*g->e));
    g->e[ei] = (rn_offset_entry){.topic = tcopy,
                                 .partition = partition,
                                 .offset = off,
                                 .commit_ms = ts,
                                 .metadata = mdcopy,
                                 .log_offset = log_offset};
    g->n++;
    o->stats.records++;
    return 0;

oom_group:
    /* A group created for this record and left empty must not stay. */
    if (g->n == 0)
        remove_group_at(o, gi);
oom:
    free(mdcopy);
    return -ENOMEM;
}

/* Apply every record of the batch at buf (stamped offsets). A batch or record
 * that does not decode is skipped and counted; only -ENOMEM is an error. */
static int apply_batch(rn_offsets *o, const uint8_t *buf, size_t len)
{
    rn_batch_iter it;
    if (rn_batch_iter_init(&it, buf, len, 0) < 0) {
        o->stats.skipped++;
        return 0;
    }
    int rc = 0;
    if (it.h.attributes & RN_BATCH_ATTR_CONTROL)
        goto done;
    rn_record rec;
    int r;
    char group[RN_OFFSETS_MAX_NAME + 1], topic[RN_OFFSETS_MAX_NAME + 1];
    while ((r = rn_batch_iter_next(&it, &rec)) == 1) {
        int32_t partition;
        if (rec.key_len < 0 ||
            rn_offsets_key_decode(rec.key, (size_t)rec.key_len, group, topic, &partition) < 0) {
            o->stats.skipped++;
            continue;
        }
        rc = apply(o, group, topic, partition, rec.value_len < 0 ? NULL : rec.value,
                   rec.value_len < 0 ? 0 : (size_t)rec.value_len, rec.offset);
        if (rc < 0)
            goto done;
    }
    if (r < 0)
        o->stats.skipped++;
done:
    rn_batch_iter_fini(&it);
    return rc;
}

int rn_offsets_load(rn_offsets *o, rn_log *log, char *err, size_t errlen)
{
    int64_t off = rn_log_start_offset(log), end = rn_log_end_offset(log);
    while (off < end) {
        rn_slice s;
        int rc = rn_log_read(log, off, 1u << 20, end, &s);
        if (rc < 0)
            return rn_errf(rc, err, errlen, "%s: read at offset %" PRId64 ": %s", rn_log_name(log),
                           off, rn_log_errmsg(log));
        if (s.len == 0)
            break;
        size_t pos = 0;
        while (pos < s.len) {
            rn_batch_header h;
            if (rn_batch_peek(s.data + pos, s.len - pos, 0, &h) < 0 ||
                rn_batch_size(&h) > s.len - pos) {
                /* rn_log_read returns whole batches: this is corruption. */
                rn_slice_release(&s);
                return rn_errf(-RN_E_CORRUPT_SEGMENT, err, errlen,
                               "%s: batch at offset %" PRId64 " does not decode", rn_log_name(log),
                               off);
            }
            rc = apply_batch(o, s.data + pos, rn_batch_size(&h));
            if (rc < 0) {
                rn_slice_release(&s);
                return rn_errf(rc, err, errlen, "%s: out of memory loading offsets",
                               rn_log_name(log));
            }
            pos += rn_batch_size(&h);
        }
        int64_t next = s.next_offset;
        rn_slice_release(&s);
        if (next <= off)
            break; /* no progress: never loop forever on a log that misreports */
        off = next;
    }
    return 0;
}

/* ---- Writing ------------------------------------------------------------------- */

typedef struct write_op write_op;

typedef struct write_batch {
    write_op *op;
    uint8_t *buf;
    size_t len;
    bool done; /* durable in the log */
} write_batch;

struct write_op {
    rn_offsets *o;
    rn_offsets_cb cb;
    void *arg;
    int pending;
    int err;
    size_t n;
    write_batch *b;
};

static void write_op_free(write_op *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->b[i].buf);
    free(w->b);
    free(w);
}

/* The write is over (held writes: once the hold said so): apply what was
 * written unless the hold refused it, and tell the caller. */
static void write_end(void *arg, int err)
{
    write_op *w = arg;
    if (err < 0 && w->err == 0)
        w->err = err;
    for (size_t i = 0; i < w->n && err == 0; i++) {
        if (!w->b[i].done)
            continue;
        /* The log stamped base_offset into the bytes: apply them as a replay would. */
        int rc = apply_batch(w->o, w->b[i].buf, w->b[i].len);
        if (rc < 0 && w->err == 0)
            w->err = rc;
    }
    w->o->pending--;
    rn_offsets_cb cb = w->cb;
    void *cb_arg = w->arg;
    int rc = w->err;
    write_op_free(w);
    cb(cb_arg, rc);
}

static void batch_done(void *arg, int err, int64_t base, int64_t last)
{
    write_batch *wb = arg;
    write_op *w = wb->op;
    (void)base;
    (void)last;
    wb->done = err == 0;
    if (err < 0 && w->err == 0)
        w->err = err;
    if (--w->pending > 0)
        return;
    if (w->err == 0 && w->o->hold) {
        w->o->hold(w->o->hold_arg, write_end, w); /* applied once replicated */
        return;
    }
    write_end(w, 0);
}

void rn_offsets_set_hold(rn_offsets *o, rn_offsets_hold_fn fn, void *arg)
{
    o->hold = fn;
    o->hold_arg = arg;
}

static int add_batch(write_op *w, rn_batch_builder *bb)
{
    write_batch *v = realloc(w->b, (w->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    w->b = v;
    write_batch *wb = &w->b[w->n];
    *wb = (write_batch){.op = w};
    int rc = rn_batch_builder_finish(bb, &wb->buf, &wb->len);
    if (rc < 0)
        return rc;
    w->n++;
    return 0;
}

/* Build the batches of n records (tombstones when tombstone is true), then
 * append them in order. */
static int write_records(rn_offsets *o, rn_log *log, int32_t leader_epoch, const char *group,
                         const rn_offset_commit *c, size_t n, bool tombstone, int64_t now_ms,
                         rn_offsets_cb cb, void *arg)
{
    if (n == 0 || !name_ok(group))
        return -RN_E_INVALID_REQUEST;
    size_t limit = rn_log_config_of(log)->max_batch_bytes;
    if (limit > BATCH_TARGET_BYTES)
        limit = BATCH_TARGET_BYTES;
    write_op *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->o = o;
    w->cb = cb;
    w->arg = arg;
    rn_batch_builder *bb = NULL;
    int rc = rn_batch_builder_new(&bb, NULL);
    if (rc < 0)
        goto fail;
    uint8_t key[RN_OFFSETS_MAX_KEY], value[RN_OFFSETS_MAX_VALUE];
    for (size_t i = 0; i < n; i++) {
        int kl = rn_offsets_key_encode(key, sizeof(key), group, c[i].topic, c[i].partition);
        if (kl < 0) {
            rc = kl;
            goto fail;
        }
        int vl = 0;
        if (!tombstone) {
            vl = rn_offsets_value_encode(value, sizeof(value), c[i].offset, now_ms, c[i].metadata);
            if (vl < 0) {
                rc = vl;
                goto fail;
            }
        }
        size_t need = (size_t)kl + (size_t)vl + RECORD_OVERHEAD;
        if (RN_BATCH_HEADER_LEN + need > limit) {
            rc = -RN_E_MESSAGE_TOO_LARGE;
            goto fail;
        }
        if (rn_batch_builder_count(bb) > 0 && rn_batch_builder_size(bb) + need > limit &&
            (rc = add_batch(w, bb)) < 0)
            goto fail;
        rc = rn_batch_builder_add(bb, now_ms, key, (size_t)kl, tombstone ? NULL : value, (size_t)vl,
                                  NULL, 0);
        if (rc < 0)
            goto fail;
    }
    if ((rc = add_batch(w, bb)) < 0)
        goto fail;
    rn_batch_builder_free(bb);
    bb = NULL;

    /* Appends complete in log order; should one be refused at submission,
     * the ones before it still complete and the callback reports the error. */
    for (size_t i = 0; i < w->n; i++) {
        rc = rn_log_append(log, w->b[i].buf, w->b[i].len, leader_epoch, batch_done, &w->b[i]);
        if (rc < 0) {
            if (w->pending == 0)
                goto fail;
            w->err = rc;
            break;
        }
        w->pending++;
    }
    o->pending++;
    return 0;

fail:
    rn_batch_builder_free(bb);
    write_op_free(w);
    return rc;
}

int rn_offsets_commit(rn_offsets *o, rn_log *log, int32_t leader_epoch, const char *group,
                      const rn_offset_commit *c, size_t n, int64_t now_ms, rn_offsets_cb cb,
                      void *arg)
{
    return write_records(o, log, leader_epoch, group, c, n, false, now_ms, cb, arg);
}

int rn_offsets_delete_group(rn_offsets *o, rn_log *log, int32_t leader_epoch, const char *group,
                            int64_t now_ms, rn_offsets_cb cb, void *arg)
{
    if (!name_ok(group))
        return -RN_E_INVALID_REQUEST;
    ogroup *g = find_group(o, group);
    if (!g)
        return 1;
    rn_offset_commit *c = calloc(g->n, sizeof(*c));
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++)
        c[i] = (rn_offset_commit){.topic = g->e[i].topic, .partition = g->e[i].partition};
    int rc = write_records(o, log, leader_epoch, group, c, g->n, true, now_ms, cb, arg);
    free(c);
    return rc;
}

/* ---- Look-ups -------------------------------------------------------------------- */

const rn_offset_entry *rn_offsets_find(const rn_offsets *o, const char *group, const char *topic,
                                       int32_t partition)
{
    ogroup *g = group && topic ? find_group(o, group) : NULL;
    if (!g)
        return NULL;
    bool found;
    size_t i = entry_index(g, topic, partition, &found);
    return found ? &g->e[i] : NULL;
}

const rn_offset_entry *rn_offsets_entries(const rn_offsets *o, const char *group, size_t *n)
{
    ogroup *g = group ? find_group(o, group) : NULL;
    *n = g ? g->n : 0;
    return g ? g->e : NULL;
}

size_t rn_offsets_group_count(const rn_offsets *o)
{
    return o->n;
}

const char *rn_offsets_group_at(const rn_offsets *o, size_t i)
{
    return i < o->n ? o->groups[i]->id : NULL;
}

unsigned rn_offsets_pending(const rn_offsets *o)
{
    return o->pending;
}

void rn_offsets_get_stats(const rn_offsets *o, rn_offsets_stats *out)
{
    *out = o->stats;
}
