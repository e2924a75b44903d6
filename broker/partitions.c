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
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

rn_topic_state *rn_topic_state_find(rn_broker *b, const char *topic)
{
    bool found;
    int i = find_index(&b->pt, topic, &found);
    return found ? b->pt.topics[i] : NULL;
}

rn_partition *rn_partition_find(rn_broker *b, const char *topic, int32_t partition)
{
    rn_topic_state *t = rn_topic_state_find(b, topic);
    if (!t || partition < 0 || partition >= t->n_partitions)
        return NULL;
    rn_partition *p = t->parts[partition];
    return p && p->log && !p->deleting ? p : NULL;
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
    free(p->topic);
    free(p);
}

static void topic_created(rn_broker *b, const rn_topic_info *t)
{
    bool found;
    int at = find_index(&b->pt, t->name, &found);
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
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0) {
        rn_logfmt(RN_WARN, "topic configs invalid, using defaults", "topic=%s", t->name);
        lc = b->cfg.log;
    }
    rn_reactor *r = &b->reactors[0];
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
    }
    if (b->pt.n_topics == b->pt.cap) {
        unsigned cap = b->pt.cap ? b->pt.cap * 2 : 16;
        rn_topic_state **v = realloc(b->pt.topics, cap * sizeof(*v));
        if (!v)
            goto oom;
        b->pt.topics = v;
        b->pt.cap = cap;
    }
    memmove(b->pt.topics + at + 1, b->pt.topics + at,
            (b->pt.n_topics - (unsigned)at) * sizeof(*b->pt.topics));
    b->pt.topics[at] = ts;
    b->pt.n_topics++;
    return;

oom:
    rn_logfmt(RN_ERROR, "out of memory opening topic", "topic=%s", t->name);
    if (ts) {
        for (int32_t i = 0; ts->parts && i < ts->n_partitions; i++) {
            if (ts->parts[i] && ts->parts[i]->log)
                rn_log_close(ts->parts[i]->log);
            free_partition(ts->parts[i]);
        }
        free(ts->parts);
        free(ts->name);
        free(ts);
    }
}

static void close_partition(rn_broker *b, rn_partition *p, bool remove)
{
    /* Parked fetches on it answer now; they re-check and find it gone. */
    p->deleting = true;
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
        if (partition_dir(dir, sizeof(dir), b, p->topic, p->id) == 0) {
            int rc = remove_dir(dir);
            if (rc < 0)
                rn_logfmt(RN_WARN, "partition directory not removed", "dir=%s err=%s", dir,
                          rn_errname(rc));
        }
    }
}

static void topic_deleted(rn_broker *b, const rn_topic_info *t)
{
    bool found;
    int at = find_index(&b->pt, t->name, &found);
    if (!found)
        return;
    rn_topic_state *ts = b->pt.topics[at];
    memmove(b->pt.topics + at, b->pt.topics + at + 1,
            (b->pt.n_topics - (unsigned)at - 1) * sizeof(*b->pt.topics));
    b->pt.n_topics--;
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        if (ts->parts[i]) {
            close_partition(b, ts->parts[i], true);
            free_partition(ts->parts[i]);
        }
    }
    free(ts->parts);
    free(ts->name);
    free(ts);
}

static void config_changed(rn_broker *b, const rn_topic_info *t)
{
    rn_topic_state *ts = rn_topic_state_find(b, t->name);
    if (!ts)
        return;
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0)
        return;
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        if (p && p->log && rn_log_set_config(p->log, &lc) < 0)
            rn_logfmt(RN_WARN, "config not applied", "topic=%s partition=%d", t->name, i);
    }
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

int rn_partitions_close_all(rn_broker *b)
{
    int rc = 0;
    for (unsigned t = 0; t < b->pt.n_topics; t++) {
        rn_topic_state *ts = b->pt.topics[t];
        for (int32_t i = 0; i < ts->n_partitions; i++) {
            rn_partition *p = ts->parts[i];
            if (p && p->log) {
                int r = rn_log_close(p->log);
                if (r < 0 && rc == 0)
                    rc = r;
                p->log = NULL;
            }
            free_partition(p);
        }
        free(ts->parts);
        free(ts->name);
        free(ts);
    }
    free(b->pt.topics);
    memset(&b->pt, 0, sizeof(b->pt));
    return rc;
}

void rn_partitions_tick(rn_broker *b, int64_t now_ms, bool retention)
{
    for (unsigned t = 0; t < b->pt.n_topics; t++) {
        rn_topic_state *ts = b->pt.topics[t];
        for (int32_t i = 0; i < ts->n_partitions; i++) {
            rn_partition *p = ts->parts[i];
            if (!p || !p->log)
                continue;
            int rc = rn_log_maybe_roll(p->log, now_ms);
            if (rc < 0)
                rn_logfmt(RN_WARN, "roll failed", "topic=%s partition=%d err=%s", ts->name, i,
                          rn_errname(rc));
            if (!retention)
                continue;
            int n = rn_log_enforce_retention(p->log, now_ms);
            if (n > 0)
                rn_logfmt(RN_INFO, "retention deleted segments",
                          "topic=%s partition=%d segments=%d log_start_offset=%lld", ts->name, i,
                          n, (long long)rn_log_start_offset(p->log));
        }
    }
}
