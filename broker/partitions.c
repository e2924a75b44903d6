/*
 * partitions.c — the topic → partition-log table, kept in step with metadata.
 *
 * Handlers never open files: they look partitions up here. The table changes
 * only through rn_partitions_on_metadata, the metadata listener, so what is
 * open on disk always follows the applied metadata log:
 *   TOPIC_CREATED  → open (creating) data-dir/<topic>-<p> for every partition,
 *                    with the broker's log defaults and the topic's overrides;
 *   CONFIG_CHANGED → rn_log_set_config on every partition;
 *   TOPIC_DELETED  → close the logs and remove their directories.
 *
 * Opening runs storage recovery synchronously; at startup this happens while
 * metadata replays, before the listener opens (DESIGN §4, §6).
 *
 * Storage errors: a partition whose appends fail for a storage reason (a
 * full disk, an I/O error) is marked by the produce path: one log line when
 * it starts and one once it has written again for a second (flaps at the
 * edge of a full disk in between are counted, not logged), a count in
 * rn_broker for /readyz and /metrics. The mark ends with the next good append or, for a full disk,
 * when the tick sees room for the append that failed; while any partition is
 * out of space the tick runs retention every time, so retention can relieve
 * the disk without waiting for its next check.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "broker/sorted.h"
#include "broker/broker.h"
#include "broker/logfmt.h"

static int cmp_topic_name(const void *key, const void *elem)
{
    return strcmp(key, (*(rn_topic_state *const *)elem)->name);
}

static int find_index(const rn_partition_table *pt, const char *name, bool *found)
{
    return (int)rn_sorted_find(pt->topics, pt->n_topics, sizeof(*pt->topics), name, cmp_topic_name,
                               found);
}

/* The calling reactor's table; the main thread (start-up, shutdown) uses
 * reactor 0's, the authoritative one. */
static rn_partition_table *table(rn_broker *b)
{
    return rn_self ? &rn_self->pt : &b->reactors[0].pt;
}

rn_topic_state *rn_topic_state_find(rn_broker *b, const char *topic)
{
    rn_partition_table *pt = table(b);
    bool found;
    int i = find_index(pt, topic, &found);
    return found ? pt->topics[i] : NULL;
}

rn_partition *rn_partition_find(rn_broker *b, const char *topic, int32_t partition)
{
    rn_topic_state *t = rn_topic_state_find(b, topic);
    if (!t || partition < 0 || partition >= t->n_partitions)
        return NULL;
    rn_partition *p = t->parts[partition];
    return p && p->log && !p->deleting ? p : NULL;
}

unsigned rn_partition_owner(const rn_broker *b, const char *topic, int32_t partition)
{
    if (b->n_reactors <= 1 || strncmp(topic, "__", 2) == 0)
        return 0;
    uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds */
    for (const unsigned char *c = (const unsigned char *)topic; *c; c++)
        h = (h ^ *c) * 16777619u;
    return (h + (uint32_t)partition) % b->n_reactors;
}

void rn_partition_publish(rn_partition *p)
{
    if (!p->log)
        return;
    __atomic_store_n(&p->pub_lso, rn_log_start_offset(p->log), __ATOMIC_RELAXED);
    __atomic_store_n(&p->pub_hw, rn_log_high_watermark(p->log), __ATOMIC_RELAXED);
    __atomic_store_n(&p->pub_leo, rn_log_end_offset(p->log), __ATOMIC_RELAXED);
    __atomic_store_n(&p->pub_size, rn_log_size_bytes(p->log), __ATOMIC_RELAXED);
}

void rn_partition_offsets(const rn_partition *p, int64_t *lso, int64_t *hw, int64_t *leo)
{
    if ((rn_self == p->reactor || !rn_self) && p->log) {
        *lso = rn_log_start_offset(p->log);
        *hw = rn_log_high_watermark(p->log);
        *leo = rn_log_end_offset(p->log);
        return;
    }
    *lso = __atomic_load_n(&p->pub_lso, __ATOMIC_RELAXED);
    *hw = __atomic_load_n(&p->pub_hw, __ATOMIC_RELAXED);
    *leo = __atomic_load_n(&p->pub_leo, __ATOMIC_RELAXED);
}

uint64_t rn_partition_size(const rn_partition *p)
{
    if ((rn_self == p->reactor || !rn_self) && p->log)
        return rn_log_size_bytes(p->log);
    return __atomic_load_n(&p->pub_size, __ATOMIC_RELAXED);
}

static int partition_dir(char *buf, size_t len, const rn_broker *b, const char *topic, int32_t p)
{
    int n = snprintf(buf, len, "%s/%s-%d", b->cfg.data_dir, topic, p);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* rm -r of one partition directory (flat: segment files and markers only). */
static int remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && rc == 0)
            rc = -errno;
    }
    closedir(d);
    if (rmdir(dir) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

static void log_open_line(const char *name, const rn_log_open_info *info)
{
    char s[512];
    rn_log_open_info_str(info, s, sizeof(s));
    rn_logfmt(info->clean ? RN_DEBUG : RN_INFO, "partition log opened", "partition=%s %s", name, s);
}

static void free_partition(rn_partition *p)
{
    if (!p)
        return;
    rn_producer_state_free(p->ps);
    free(p->del_dir);
    free(p->topic);
    free(p);
}

static void free_topic(rn_topic_state *ts)
{
    for (int32_t i = 0; ts->parts && i < ts->n_partitions; i++)
        free_partition(ts->parts[i]);
    free(ts->parts);
    free(ts->name);
    free(ts);
}

/* Drop one table's reference; the last frees (every owner has closed its logs
 * before dropping its reference). */
static void topic_unref(rn_topic_state *ts)
{
    if (__atomic_sub_fetch(&ts->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free_topic(ts);
}

static int table_insert(rn_partition_table *pt, rn_topic_state *ts)
{
    bool found;
    int at = find_index(pt, ts->name, &found);
    if (found)
        return -EEXIST;
    if (pt->n_topics == pt->cap) {
        unsigned cap = pt->cap ? pt->cap * 2 : 16;
        rn_topic_state **v = realloc(pt->topics, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        pt->topics = v;
        pt->cap = cap;
    }
    memmove(pt->topics + at + 1, pt->topics + at,
            (pt->n_topics - (unsigned)at) * sizeof(*pt->topics));
    pt->topics[at] = ts;
    pt->n_topics++;
    return 0;
}

static rn_topic_state *table_remove(rn_partition_table *pt, const char *name)
{
    bool found;
    int at = find_index(pt, name, &found);
    if (!found)
        return NULL;
    rn_topic_state *ts = pt->topics[at];
    memmove(pt->topics + at, pt->topics + at + 1,
            (pt->n_topics - (unsigned)at - 1) * sizeof(*pt->topics));
    pt->n_topics--;
    return ts;
}

static void storage_mark(rn_partition *p, int err);

/* ---- Changes sent to the other reactors -------------------------------------------- */

enum change_kind { CHANGE_ADD, CHANGE_REMOVE, CHANGE_CONFIG };

typedef struct change {
    rn_msg m;
    enum change_kind kind;
    rn_topic_state *ts; /* holds a reference */
    rn_log_config lc;
} change;

static void close_partition(rn_broker *b, rn_partition *p, bool remove);
static void apply_config(rn_reactor *r, rn_topic_state *ts, const rn_log_config *lc);

static void change_run(rn_msg *m)
{
    change *c = (change *)m;
    rn_reactor *r = m->to;
    switch (c->kind) {
    case CHANGE_ADD:
        if (table_insert(&r->pt, c->ts) < 0) {
            rn_logfmt(RN_ERROR, "topic not added to reactor table", "topic=%s reactor=%u",
                      c->ts->name, r->index);
            topic_unref(c->ts);
        }
        break; /* the table keeps the message's reference */
    case CHANGE_REMOVE:
        if (table_remove(&r->pt, c->ts->name) == c->ts)
            topic_unref(c->ts); /* the table's reference */
        for (int32_t i = 0; i < c->ts->n_partitions; i++) {
            rn_partition *p = c->ts->parts[i];
            if (p && p->reactor == r)
                close_partition(r->b, p, true);
        }
        topic_unref(c->ts);
        break;
    case CHANGE_CONFIG:
        apply_config(r, c->ts, &c->lc);
        topic_unref(c->ts);
        break;
    }
    free(c);
}

/* Send a change to every reactor but 0. Out of memory here would leave a
 * reactor's table behind reactor 0's, so it is logged loudly. */
static void broadcast(rn_broker *b, enum change_kind kind, rn_topic_state *ts,
                      const rn_log_config *lc)
{
    for (unsigned i = 1; i < b->n_reactors; i++) {
        change *c = calloc(1, sizeof(*c));
        if (!c) {
            rn_logfmt(RN_ERROR, "out of memory sending a topic change", "topic=%s reactor=%u",
                      ts->name, i);
            continue;
        }
        c->kind = kind;
        c->ts = ts;
        if (lc)
            c->lc = *lc;
        __atomic_add_fetch(&ts->refs, 1, __ATOMIC_RELAXED);
        rn_reactor_post(&b->reactors[i], &c->m, change_run);
    }
}

int rn_partitions_share(rn_broker *b)
{
    rn_partition_table *pt0 = &b->reactors[0].pt;
    for (unsigned i = 1; i < b->n_reactors; i++) {
        rn_partition_table *pt = &b->reactors[i].pt;
        pt->topics = calloc(pt0->cap ? pt0->cap : 1, sizeof(*pt->topics));
        if (!pt->topics)
            return -ENOMEM;
        pt->cap = pt0->cap;
        pt->n_topics = pt0->n_topics;
        for (unsigned t = 0; t < pt0->n_topics; t++) {
            pt->topics[t] = pt0->topics[t];
            pt0->topics[t]->refs++;
        }
    }
    b->shared = true;
    return 0;
}

/* ---- Metadata events (reactor 0, or the main thread at start-up) ------------------ */

static void topic_created(rn_broker *b, const rn_topic_info *t)
{
    bool found;
    find_index(&b->reactors[0].pt, t->name, &found);
    if (found) {
        rn_logfmt(RN_WARN, "topic already open", "topic=%s", t->name);
        return;
    }
    rn_topic_state *ts = calloc(1, sizeof(*ts));
    if (!ts)
        goto oom;
    ts->name = strdup(t->name);
    ts->parts = calloc((size_t)t->n_partitions, sizeof(*ts->parts));
    if (!ts->name || !ts->parts)
        goto oom;
    memcpy(ts->id, t->id, 16);
    ts->n_partitions = t->n_partitions;
    ts->refs = 1; /* reactor 0's table */
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0) {
        rn_logfmt(RN_WARN, "topic configs invalid, using defaults", "topic=%s", t->name);
        lc = b->cfg.log;
    }
    for (int32_t i = 0; i < t->n_partitions; i++) {
        rn_partition *p = calloc(1, sizeof(*p));
        if (!p)
            goto oom;
        ts->parts[i] = p;
        p->topic = strdup(t->name);
        p->ps = rn_producer_state_new();
        if (!p->topic || !p->ps)
            goto oom;
        p->id = i;
        /* Opened here, on reactor 0's thread, but bound to the owner's ring:
         * rn_log_open does its I/O synchronously and submits nothing, and the
         * owner sees the partition only once the table change reaches it. */
        rn_reactor *r = &b->reactors[rn_partition_owner(b, t->name, i)];
        p->reactor = r;
        p->leader_epoch = t->partitions ? t->partitions[i].leader_epoch : 0;
        char dir[PATH_MAX], name[320];
        if (partition_dir(dir, sizeof(dir), b, t->name, i) < 0)
            continue;
        snprintf(name, sizeof(name), "%s-%d", t->name, i);
        rn_log_open_info info;
        int rc = rn_log_open(&p->log, r->io, dir, name, &lc, &info);
        if (rc < 0) {
            /* The partition stays in the table without a log: requests for it
             * get STORAGE_ERROR while every other partition keeps serving. */
            p->log = NULL;
            rn_logfmt(RN_ERROR, "partition log failed to open", "partition=%s err=%s", name,
                      rn_errname(rc));
            continue;
        }
        log_open_line(name, &info);
        /* Idempotent producers' recent batches, from the last two segments:
         * bounded work however long the log is. */
        unsigned n_segs = rn_log_segment_count(p->log);
        int64_t from = rn_log_segment_base(p->log, n_segs > 1 ? n_segs - 2 : 0);
        rc = rn_producer_state_rebuild(p->ps, p->log, from);
        if (rc < 0)
            rn_logfmt(RN_WARN, "producer state not rebuilt", "partition=%s err=%s", name,
                      rn_errname(rc));
        rn_partition_publish(p);
    }
    if (table_insert(&b->reactors[0].pt, ts) < 0)
        goto oom;
    if (b->shared)
        broadcast(b, CHANGE_ADD, ts, NULL);
    return;

oom:
    rn_logfmt(RN_ERROR, "out of memory opening topic", "topic=%s", t->name);
    if (ts) {
        for (int32_t i = 0; ts->parts && i < ts->n_partitions; i++) {
            if (ts->parts[i] && ts->parts[i]->log)
                rn_log_close(ts->parts[i]->log);
        }
        free_topic(ts);
    }
}

/* On the partition's owner. */
static void close_partition(rn_broker *b, rn_partition *p, bool remove)
{
    /* Parked fetches on it answer now; they re-check and find it gone. */
    p->deleting = true;
    if (p->storage_err)
        storage_mark(p, 0); /* a deleted partition no longer counts as failing */
    rn_partition_wake(p);
    if (p->log) {
        int rc = remove ? (rn_log_abandon(p->log), 0) : rn_log_close(p->log);
        if (rc < 0)
            rn_logfmt(RN_ERROR, "partition log close failed", "topic=%s partition=%d err=%s",
                      p->topic, p->id, rn_errname(rc));
        p->log = NULL;
    }
    if (remove) {
        char dir[PATH_MAX];
        const char *path = p->del_dir;
        if (!path && partition_dir(dir, sizeof(dir), b, p->topic, p->id) == 0)
            path = dir;
        if (path) {
            int rc = remove_dir(path);
            if (rc < 0)
                rn_logfmt(RN_WARN, "partition directory not removed", "dir=%s err=%s", path,
                          rn_errname(rc));
        }
    }
}

static void topic_deleted(rn_broker *b, const rn_topic_info *t)
{
    rn_topic_state *ts = table_remove(&b->reactors[0].pt, t->name);
    if (!ts)
        return;
    if (b->shared) {
        /* Owners on other threads close their logs later; move the
         * directories aside now, so a topic created again under the same
         * name at once never meets the old files. */
        static unsigned long seq;
        for (int32_t i = 0; i < ts->n_partitions; i++) {
            rn_partition *p = ts->parts[i];
            char dir[PATH_MAX], moved[PATH_MAX + 64];
            if (!p || p->reactor == &b->reactors[0] ||
                partition_dir(dir, sizeof(dir), b, p->topic, p->id) < 0)
                continue;
            snprintf(moved, sizeof(moved), "%s.deleted-%lld-%lu", dir, (long long)rn_now_ms(),
                     ++seq);
            if (rename(dir, moved) == 0)
                p->del_dir = strdup(moved);
        }
        broadcast(b, CHANGE_REMOVE, ts, NULL);
    }
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        if (p && (p->reactor == &b->reactors[0] || !b->shared))
            close_partition(b, p, true);
    }
    topic_unref(ts);
}

/* Apply a topic's new config to the partitions r owns. */
static void apply_config(rn_reactor *r, rn_topic_state *ts, const rn_log_config *lc)
{
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        if (p && p->log && (p->reactor == r || !r->b->shared) && rn_log_set_config(p->log, lc) < 0)
            rn_logfmt(RN_WARN, "config not applied", "topic=%s partition=%d", ts->name, i);
    }
}

static void config_changed(rn_broker *b, const rn_topic_info *t)
{
    bool found;
    int at = find_index(&b->reactors[0].pt, t->name, &found);
    if (!found)
        return;
    rn_topic_state *ts = b->reactors[0].pt.topics[at];
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0)
        return;
    apply_config(&b->reactors[0], ts, &lc);
    if (b->shared)
        broadcast(b, CHANGE_CONFIG, ts, &lc);
}

void rn_partitions_on_metadata(void *arg, const rn_metadata_event *ev)
{
    rn_broker *b = arg;
    switch (ev->type) {
    case RN_MD_TOPIC_CREATED:
        topic_created(b, ev->topic);
        break;
    case RN_MD_TOPIC_DELETED:
        topic_deleted(b, ev->topic);
        break;
    case RN_MD_CONFIG_CHANGED:
        config_changed(b, ev->topic);
        break;
    }
}

/* Shutdown, on the main thread once every reactor thread has stopped. */
int rn_partitions_close_all(rn_broker *b)
{
    int rc = 0;
    for (unsigned i = 1; i < b->n_reactors; i++) {
        rn_partition_table *pt = &b->reactors[i].pt;
        for (unsigned t = 0; t < pt->n_topics; t++)
            topic_unref(pt->topics[t]);
        free(pt->topics);
        memset(pt, 0, sizeof(*pt));
    }
    rn_partition_table *pt = &b->reactors[0].pt;
    for (unsigned t = 0; t < pt->n_topics; t++) {
        rn_topic_state *ts = pt->topics[t];
        for (int32_t i = 0; i < ts->n_partitions; i++) {
            rn_partition *p = ts->parts[i];
            if (p && p->log) {
                int r = rn_log_close(p->log);
                if (r < 0 && rc == 0)
                    rc = r;
                p->log = NULL;
            }
        }
        topic_unref(ts);
    }
    free(pt->topics);
    memset(pt, 0, sizeof(*pt));
    return rc;
}

/* ---- Storage errors ---------------------------------------------------------------- */

/* Room an append needs besides its own bytes: an index file grows by 64 KiB. */
#define STORAGE_SLACK (64u << 10)
/* How long a partition must write again before the log says so. */
#define STORAGE_QUIET_MS 1000

static bool is_storage_error(int err)
{
    return err == -RN_E_LOG_FAILED || (err < 0 && !rn_is_rn_error(err) && err != -ENOMEM);
}

static void storage_mark(rn_partition *p, int err)
{
    rn_broker *b = p->reactor->b;
    bool was_full = p->storage_err == -ENOSPC, full = err == -ENOSPC;
    if (!p->storage_err)
        __atomic_add_fetch(&b->parts_storage_error, 1, __ATOMIC_RELAXED);
    if (!err)
        __atomic_sub_fetch(&b->parts_storage_error, 1, __ATOMIC_RELAXED);
    if (full && !was_full)
        __atomic_add_fetch(&b->parts_disk_full, 1, __ATOMIC_RELAXED);
    if (was_full && !full)
        __atomic_sub_fetch(&b->parts_disk_full, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&p->storage_err, err, __ATOMIC_RELAXED); /* /metrics reads it */
}

void rn_partition_storage_failed(rn_partition *p, int err, size_t need)
{
    if (!is_storage_error(err))
        return;
    rn_broker *b = p->reactor->b;
    __atomic_add_fetch(&b->storage_errors_total, 1, __ATOMIC_RELAXED);
    if (need > p->storage_need)
        p->storage_need = need;
    if (p->storage_err == err)
        return; /* one line per run of failures (and per change of cause) */
    storage_mark(p, err);
    if (p->storage_logged_err == err) {
        p->storage_flaps++; /* failing again before "can write again" was said */
        return;
    }
    if (!p->storage_logged_err)
        p->storage_since_ms = rn_now_ms();
    p->storage_logged_err = err;
    char q[600];
    rn_logfmt(RN_ERROR, "partition cannot write", "partition=%s-%d err=%s detail=%s%s", p->topic,
              p->id, rn_errname(err),
              rn_logfmt_quote(p->log ? rn_log_errmsg(p->log) : rn_strerror(err), q, sizeof(q)),
              err == -ENOSPC ? " hint=\"free space or lower retention; produce resumes at once\""
                             : "");
}

/* Clear the mark. The line saying so waits until the partition has stayed
 * clear for STORAGE_QUIET_MS (storage_say_ok, from the tick). */
static void storage_clear(rn_partition *p, const char *how)
{
    storage_mark(p, 0);
    p->storage_need = 0;
    p->storage_ok_since_ms = rn_now_ms();
    p->storage_cleared_by = how;
}

static void storage_say_ok(rn_partition *p, int64_t now_ms)
{
    if (!p->storage_logged_err || p->storage_err ||
        now_ms - p->storage_ok_since_ms < STORAGE_QUIET_MS)
        return;
    rn_logfmt(RN_INFO, "partition can write again",
              "partition=%s-%d after_ms=%lld was=%s by=%s flaps=%u", p->topic, p->id,
              (long long)(p->storage_ok_since_ms - p->storage_since_ms),
              rn_errname(p->storage_logged_err), p->storage_cleared_by, p->storage_flaps);
    p->storage_logged_err = 0;
    p->storage_flaps = 0;
}

void rn_partition_storage_ok(rn_partition *p)
{
    if (p->storage_err && p->storage_err != -RN_E_LOG_FAILED)
        storage_clear(p, "append");
}

/* A partition out of space is marked until an append succeeds; so that
 * /readyz does not wait for a producer, the tick also clears it once the
 * file system has room for the append that failed. */
static void storage_probe(rn_broker *b, rn_partition *p, int64_t *avail)
{
    if (p->storage_err != -ENOSPC)
        return;
    if (*avail < 0) {
        struct statvfs sv;
        *avail = statvfs(b->cfg.data_dir, &sv) == 0 ? (int64_t)(sv.f_bavail * sv.f_frsize) : 0;
    }
    if ((uint64_t)*avail >= p->storage_need + STORAGE_SLACK)
        storage_clear(p, "space");
}

void rn_partitions_tick(rn_reactor *r, int64_t now_ms, bool retention)
{
    rn_partition_table *pt = &r->pt;
    /* Out of space somewhere: retention runs now, not at its next check. */
    bool full = __atomic_load_n(&r->b->parts_disk_full, __ATOMIC_RELAXED) > 0;
    int64_t avail = -1; /* statvfs once per tick, when needed */
    for (unsigned t = 0; t < pt->n_topics; t++) {
        rn_topic_state *ts = pt->topics[t];
        for (int32_t i = 0; i < ts->n_partitions; i++) {
            rn_partition *p = ts->parts[i];
            if (!p || !p->log || p->reactor != r)
                continue;
            int rc = rn_log_maybe_roll(p->log, now_ms);
            if (rc < 0)
                rn_logfmt(RN_WARN, "roll failed", "topic=%s partition=%d err=%s", ts->name, i,
                          rn_errname(rc));
            if (retention || full) {
                int n = rn_log_enforce_retention(p->log, now_ms);
                if (n > 0)
                    rn_logfmt(RN_INFO, "retention deleted segments",
                              "topic=%s partition=%d segments=%d log_start_offset=%lld", ts->name,
                              i, n, (long long)rn_log_start_offset(p->log));
                else if (n < 0 && retention)
                    rn_logfmt(RN_WARN, "retention failed", "topic=%s partition=%d err=%s", ts->name,
                              i, rn_errname(n));
            }
            storage_probe(r->b, p, &avail);
            storage_say_ok(p, now_ms);
            rn_partition_publish(p);
        }
    }
}
