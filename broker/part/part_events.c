/*
 * part_events.c — the metadata events: what the partition table does when
 * the applied metadata log changes (partitions.c keeps the table; what the
 * files share: partitions_int.h).
 *
 * The table changes only through rn_partitions_on_metadata, the metadata
 * listener, so what is open on disk always follows the applied metadata log:
 *   TOPIC_CREATED  → open (creating) data-dir/<topic>-<p> for every partition,
 *                    with the broker's log defaults and the topic's overrides;
 *   CONFIG_CHANGED → rn_log_set_config on every partition;
 *   PARTITIONS_ADDED → open the new ones; the topic's state is replaced by
 *                    a larger copy in every reactor's table (never grown in
 *                    place under other reactors' readers);
 *   TOPIC_DELETED  → close the logs and remove their directories.
 * Then part/roles.c sets what each partition is here. A replica that moves
 * to this broker or away from it has its log opened or dropped on its owner
 * (rn_partition_open_log, rn_partition_stop_replica).
 *
 * Opening runs storage recovery synchronously; at startup this happens while
 * metadata replays, before the listener opens (DESIGN §4, §6). Directories
 * are claimed, moved aside and removed by the rules of partitions.c's
 * design block (whose directory, 1-4): "design block" below means that one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/net/reactor.h"
#include "broker/part/fetchers.h"
#include "broker/part/partitions.h"
#include "broker/part/partitions_int.h"
#include "broker/part/roles.h"
#include "storage/offload.h"
#include "storage/sys.h"

/* ---- Metadata events (reactor 0, or the main thread at start-up) ------------------ */

static void log_open_line(const char *name, const rn_log_open_info *info)
{
    char s[512];
    rn_log_open_info_str(info, s, sizeof(s));
    rn_logfmt(info->clean ? RN_DEBUG : RN_INFO, "partition log opened", "partition=%s %s", name, s);
}

/* Open (creating) p's log in its directory with lc, claiming the directory
 * for topic id (design block, 1-3), and rebuild its producer state. On
 * reactor 0 while it opens a topic's partitions (ts: where the first
 * failure is noted), or on p's owner (ts NULL) when p becomes a replica
 * here. Returns 0 or the error (logged; p then stays without a log). */
static int open_log(rn_broker *b, rn_topic_state *ts, rn_partition *p, const uint8_t id[16],
                    const rn_log_config *lc)
{
    int32_t i = p->id;
    rn_reactor *r = p->reactor;
    char dir[PATH_MAX], name[320];
    if (rn__partitions_dir(dir, sizeof(dir), b, p->topic, i) < 0)
        return -ENAMETOOLONG;
    snprintf(name, sizeof(name), "%s-%d", p->topic, i);
    rn_log_open_info info;
    /* Before listening, a directory without partition.metadata was
     * written by a runneld that did not write one; after, it can only be
     * a leftover (design block, 2). */
    unsigned discarded = 0;
    int rc = rn__partitions_claim_dir(b, dir, name, id, !b->ready, &discarded);
    __atomic_add_fetch(&b->n_discarded, discarded, __ATOMIC_RELAXED);
    if (rc == 0)
        rc = rn_log_open(&p->log, r->io, dir, name, lc, &info);
    if (rc < 0) {
        /* The partition stays in the table without a log: requests for it
         * get STORAGE_ERROR while every other partition keeps serving. */
        p->log = NULL;
        rn_logfmt(RN_ERROR, "partition log failed to open", "partition=%s err=%s", name,
                  rn_errname(rc));
        if (ts && ts->open_err == 0) {
            ts->open_err = rc;
            ts->open_err_partition = i;
        }
        /* A topic created now fails whole (api/topics.c deletes it):
         * the other partitions are not worth opening (the caller
         * stops), and with EMFILE every one would fail the same way.
         * Topics found at start-up keep what opens. */
        return rc;
    }
    log_open_line(name, &info);
    /* Idempotent producers' recent batches, from the last two segments:
     * bounded work however long the log is. */
    unsigned n_segs = rn_log_segment_count(p->log);
    int64_t seg_from = rn_log_segment_base(p->log, n_segs > 1 ? n_segs - 2 : 0);
    rc = rn_producer_state_rebuild(p->ps, p->log, seg_from);
    if (rc < 0)
        rn_logfmt(RN_WARN, "producer state not rebuilt", "partition=%s err=%s", name,
                  rn_errname(rc));
    rn_partition_publish(p);
    return 0;
}

int rn_partition_open_log(rn_partition *p, const uint8_t id[16], const rn_log_config *lc_in)
{
    if (p->log)
        return 0;
    rn_log_config lc = *lc_in;
    lc.lazy_epochs = true;
    int rc = open_log(p->reactor->b, NULL, p, id, &lc);
    if (rc == 0)
        p->no_replica = false;
    return rc;
}

static void remove_dir_now(const char *path)
{
    int rc = rn__partitions_remove_dir(path);
    if (rc < 0)
        rn_logfmt(RN_WARN, "partition directory not removed", "dir=%s err=%s", path,
                  rn_errname(rc));
}

/* A deleted partition's directory, removed on the offload worker. Each
 * unlink of a segment nothing holds gives its blocks back (0.24 s a GiB with
 * `discard` here, docs/benchmarks.md, fourth round): on the owner's reactor a
 * deleted topic or a removed replica of a few GiB held every partition on it
 * for seconds. Only a
 * directory moved aside goes there: no topic can be made under its name, so
 * nothing waits for it to go, and a crash before it is gone leaves a name the
 * next start removes (design block, 4). */
typedef struct remove_job {
    rn_offload_job job;
    char path[];
} remove_job;

static int remove_job_run(void *arg)
{
    remove_job *r = arg;
    remove_dir_now(r->path);
    free(r);
    return 0;
}

static void remove_dir_later(const char *path)
{
    size_t n = strlen(path) + 1;
    remove_job *r = malloc(sizeof(*r) + n);
    if (!r) {
        remove_dir_now(path);
        return;
    }
    memcpy(r->path, path, n);
    rn_offload_detached(&r->job, remove_job_run, r);
}


void rn_partition_stop_replica(rn_partition *p)
{
    rn_broker *b = p->reactor->b;
    char dir[PATH_MAX];
    int64_t t0 = rn_now_ms();
    p->no_replica = true;
    p->moving_in = false;
    rn_metrics_replica_lag(&p->m, -1);
    if (p->storage_err)
        rn__partitions_storage_mark(p, 0); /* no longer this broker's partition to fail */
    if (p->log) {
        /* Detached first: the in-flight appends (a follower fetch's, a
         * produce's from when it led) complete inside the drain, and work
         * that runs meanwhile finds no log to read or append to. */
        rn_log *log = p->log;
        p->log = NULL;
        rn_log_abandon(log);
    }
    __atomic_store_n(&p->pub_size, 0, __ATOMIC_RELAXED);
    /* Parked fetches and produces answer now: they find no replica here. */
    rn_waiters_wake(&p->fetch_waiters, RN_WAKE_CLOSED);
    rn_waiters_wake(&p->produce_waiters, RN_WAKE_CLOSED);
    /* A later replica here starts from its own log: no producer state of
     * this one may answer for it. */
    rn_producer_state *ps = rn_producer_state_new();
    if (ps) {
        rn_producer_state_free(p->ps);
        p->ps = ps;
    }
    if (rn__partitions_dir(dir, sizeof(dir), b, p->topic, p->id) < 0)
        return;
    int rc;
    char *moved = rn__partitions_move_aside(dir, &rc);
    if (!moved) {
        if (rc != -ENOENT)
            rn_logfmt(RN_WARN, "removed replica's directory not moved aside", "dir=%s err=%s", dir,
                      rn_errname(rc));
        return;
    }
    rc = rn_sys_fsync_dir(b->cfg.data_dir);
    if (rc < 0) {
        /* Unknown what the disk holds: the renamed directory is the start-up
         * sweep's (design block, 4). */
        rn_logfmt(RN_ERROR, "data directory sync failed, removed replica kept until restart",
                  "partition=%s-%d err=%s", p->topic, p->id, rn_errname(rc));
        free(moved);
        return;
    }
    /* Its files go on the offload worker, as a deleted topic's do. */
    rn_logfmt(RN_INFO, "removed replica deleted", "partition=%s-%d dir=%s ms=%lld", p->topic,
              p->id, moved, (long long)(rn_now_ms() - t0));
    remove_dir_later(moved);
    free(moved);
}

static bool holds_replica(const rn_partition_info *pi, int32_t node_id)
{
    for (int32_t k = 0; k < pi->n_replicas; k++)
        if (pi->replicas[k] == node_id)
            return true;
    return false;
}

/* Open (creating) partitions from..t->n_partitions-1 of ts, on reactor 0's
 * thread. A partition whose log fails to open stays without one, its error
 * noted in ts (open_err). Returns 0 or -ENOMEM (ts then holds what was made;
 * the caller frees it). */
static int open_partitions(rn_broker *b, rn_topic_state *ts, const rn_topic_info *t, int32_t from,
                           const rn_log_config *lc_in)
{
    rn_log_config lc = *lc_in;
    /* A partition's leader epochs are needed when it is written in a new
     * epoch or a follower asks: read at that moment, not for every one of
     * (perhaps 100,000) partitions at start-up. */
    lc.lazy_epochs = true;
    for (int32_t i = from; i < t->n_partitions; i++) {
        rn_partition *p = calloc(1, sizeof(*p));
        if (!p)
            return -ENOMEM;
        ts->parts[i] = p;
        p->topic = strdup(t->name);
        p->ps = rn_producer_state_new();
        if (!p->topic || !p->ps)
            return -ENOMEM;
        p->id = i;
        memcpy(p->topic_id, t->id, 16);
        /* Opened here, on reactor 0's thread, but bound to the owner's ring:
         * rn_log_open does its I/O synchronously and submits nothing, and the
         * owner sees the partition only once the table change reaches it. */
        rn_reactor *r = &b->reactors[rn_partition_owner(b, t->name, i)];
        p->reactor = r;
        p->leader_epoch = t->partitions ? t->partitions[i].leader_epoch : 0;
        /* In a cluster, a partition led by another broker is not served
         * here: every door (native, gateways, Kafka) then answers NOT_LEADER
         * through rn_partition_check_leader, instead of appending to a local
         * copy no one reads (acknowledged, then lost). */
        if (b->quorum && t->partitions && t->partitions[i].leader != b->cfg.node_id) {
            p->role = RN_ROLE_FOLLOWER;
            p->leader_id = t->partitions[i].leader;
        }
        /* In a cluster, a broker that holds no replica of the partition
         * keeps no log of it: no directory, nothing to recover. Requests
         * for it answer NOT_LEADER (rn_partition_lookup); should it become
         * a replica, its owner opens the log then (rn_partition_open_log). */
        if (b->quorum && t->partitions && !holds_replica(&t->partitions[i], b->cfg.node_id)) {
            p->no_replica = true;
            continue;
        }
        if (open_log(b, ts, p, t->id, &lc) < 0 && b->ready)
            break; /* a topic created now fails whole (open_log) */
        rn_partition_publish(p);
    }
    return 0;
}

static void topic_created(rn_broker *b, const rn_topic_info *t)
{
    bool found;
    rn__partitions_find_index(&b->reactors[0].pt, t->name, &found);
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
    if (open_partitions(b, ts, t, 0, &lc) < 0)
        goto oom;
    if (rn__partitions_table_insert(&b->reactors[0].pt, ts) < 0)
        goto oom;
    if (b->shared)
        rn__partitions_broadcast(b, CHANGE_ADD, ts, NULL);
    return;

oom:
    rn_logfmt(RN_ERROR, "out of memory opening topic", "topic=%s", t->name);
    if (ts) {
        for (int32_t i = 0; ts->parts && i < ts->n_partitions; i++) {
            if (ts->parts[i] && ts->parts[i]->log)
                rn_log_close(ts->parts[i]->log);
        }
        rn__partitions_free_topic(ts);
    }
}

/* On the partition's owner. */
void rn__partitions_close_partition(rn_broker *b, rn_partition *p, bool remove)
{
    /* Parked fetches on it answer now (they re-check and find it gone);
     * parked produces answer that the partition went away. */
    p->deleting = true;
    if (b->fetchers)
        rn_fetchers_follow(b->fetchers, p, -1, NULL); /* before p can be freed */
    if (p->storage_err)
        rn__partitions_storage_mark(p, 0); /* a deleted partition no longer counts as failing */
    rn_partition_publish(p);
    rn_waiters_wake(&p->fetch_waiters, RN_WAKE_CLOSED);
    rn_waiters_wake(&p->produce_waiters, RN_WAKE_CLOSED);
    if (p->log) {
        int rc = remove ? (rn_log_abandon(p->log), 0) : rn_log_close(p->log);
        if (rc < 0)
            rn_logfmt(RN_ERROR, "partition log close failed", "topic=%s partition=%d err=%s",
                      p->topic, p->id, rn_errname(rc));
        p->log = NULL;
    }
    if (remove && !p->keep_dir) {
        char dir[PATH_MAX];
        if (p->del_dir)
            remove_dir_later(p->del_dir);
        else if (rn__partitions_dir(dir, sizeof(dir), b, p->topic, p->id) == 0)
            remove_dir_now(dir);
    }
}

static void topic_deleted(rn_broker *b, const rn_topic_info *t)
{
    rn_topic_state *ts = rn__partitions_table_remove(&b->reactors[0].pt, t->name);
    if (!ts)
        return;
    /* The delete is committed. Move every directory aside and sync the data
     * directory once before anything is removed (design block, 3): owners
     * on other threads close their logs later, a topic created again under
     * the same name at once never meets the old files, and a crash from
     * here on leaves only names that nothing adopts. */
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        char dir[PATH_MAX];
        if (!p || rn__partitions_dir(dir, sizeof(dir), b, p->topic, p->id) < 0)
            continue;
        int rc;
        p->del_dir = rn__partitions_move_aside(dir, &rc);
        if (!p->del_dir && rc != -ENOENT)
            rn_logfmt(RN_WARN, "partition directory not moved aside", "dir=%s err=%s", dir,
                      rn_errname(rc));
    }
    int rc = rn_sys_fsync_dir(b->cfg.data_dir);
    if (rc < 0) {
        /* Unknown what the disk holds: removing now could leave a
         * half-emptied directory under a live name after a crash. The
         * renamed directories are removed at the next start (design
         * block, 4); the partition directory keeps its id either way. */
        rn_logfmt(RN_ERROR, "data directory sync failed, deleted partitions kept until restart",
                  "topic=%s err=%s", ts->name, rn_errname(rc));
        for (int32_t i = 0; i < ts->n_partitions; i++)
            if (ts->parts[i]) {
                free(ts->parts[i]->del_dir);
                ts->parts[i]->del_dir = NULL;
                ts->parts[i]->keep_dir = true;
            }
    }
    if (b->shared)
        rn__partitions_broadcast(b, CHANGE_REMOVE, ts, NULL);
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        if (p && (p->reactor == &b->reactors[0] || !b->shared))
            rn__partitions_close_partition(b, p, true);
    }
    rn__partitions_topic_unref(ts);
}

/* Partitions were added to a topic. The topic state is shared by every
 * reactor's table and read without locks, so it is not grown in place: a
 * new state takes the old partitions and the new ones, and replaces the old
 * in each table (other reactors by message); the old is freed, without its
 * partitions, once no table holds it. */
static void partitions_added(rn_broker *b, const rn_topic_info *t)
{
    rn_partition_table *pt = &b->reactors[0].pt;
    bool found;
    int at = rn__partitions_find_index(pt, t->name, &found);
    if (!found)
        return;
    rn_topic_state *old = pt->topics[at];
    if (t->n_partitions <= old->n_partitions)
        return;
    rn_topic_state *ts = calloc(1, sizeof(*ts));
    if (!ts || !(ts->name = strdup(t->name)) ||
        !(ts->parts = calloc((size_t)t->n_partitions, sizeof(*ts->parts)))) {
        if (ts)
            free(ts->name);
        free(ts);
        rn_logfmt(RN_ERROR, "out of memory adding partitions", "topic=%s", t->name);
        return;
    }
    memcpy(ts->id, old->id, 16);
    memcpy(ts->parts, old->parts, (size_t)old->n_partitions * sizeof(*ts->parts));
    ts->n_partitions = t->n_partitions;
    ts->refs = 1; /* reactor 0's table */
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0)
        lc = b->cfg.log;
    if (open_partitions(b, ts, t, old->n_partitions, &lc) < 0)
        rn_logfmt(RN_ERROR, "out of memory opening added partitions", "topic=%s", t->name);
    old->parts_moved = true;
    pt->topics[at] = ts;
    if (b->shared)
        rn__partitions_broadcast(b, CHANGE_REPLACE, ts, NULL);
    rn__partitions_topic_unref(old);
}

/* Apply a topic's new config to the partitions r owns. */
void rn__partitions_apply_config(rn_reactor *r, rn_topic_state *ts, const rn_log_config *lc)
{
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        if (!p || !p->log || (p->reactor != r && r->b->shared))
            continue;
        if (rn_log_set_config(p->log, lc) < 0)
            rn_logfmt(RN_WARN, "config not applied", "topic=%s partition=%d", ts->name, i);
        /* A leader's min.insync.replicas (topic-level): the high watermark
         * may move, parked acks=all produces re-check. */
        if (p->rs) {
            rn_replica_config rc = {.lag_time_max_ms = r->b->cfg.replica_lag_time_max_ms,
                                    .min_insync = lc->min_insync_replicas};
            rn_replica_state_set_config(p->rs, &rc);
            rn_partition_wake(p);
        }
    }
}

static void config_changed(rn_broker *b, const rn_topic_info *t)
{
    bool found;
    int at = rn__partitions_find_index(&b->reactors[0].pt, t->name, &found);
    if (!found)
        return;
    rn_topic_state *ts = b->reactors[0].pt.topics[at];
    rn_log_config lc;
    if (rn_topic_log_config(t, &b->cfg.log, &lc) < 0)
        return;
    rn__partitions_apply_config(&b->reactors[0], ts, &lc);
    if (b->shared)
        rn__partitions_broadcast(b, CHANGE_CONFIG, ts, &lc);
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
    case RN_MD_PARTITIONS_ADDED:
        partitions_added(b, ev->topic);
        break;
    default:
        break;
    }
    /* Then what each partition is here: leader, follower of whom, or
     * served by no one (part/roles.c; a cluster only). */
    rn_roles_on_metadata(b, ev);
}
