/*
 * partitions.c — the topic → partition-log table, kept in step with metadata.
 *
 * Handlers never open files: they look partitions up here. The table changes
 * only through rn_partitions_on_metadata, the metadata listener
 * (part_events.c), so what is open on disk always follows the applied
 * metadata log.
 *
 * The table is three files, listed in partitions_int.h: this one (the table
 * and its look-ups, the high-watermark rule, replication roles and the acks
 * rule, whose directory, the changes sent to the other reactors, shutdown),
 * part_events.c (the metadata events) and sweep.c (the start-up sweep,
 * storage errors, the tick).
 *
 * Whose directory is it (crash-safe delete). A topic's name is reused after
 * a delete, so a directory's name alone cannot say which topic it holds: a
 * delete committed in the metadata log and then cut short by a crash left
 * <topic>-<p> directories that a later topic of the same name adopted,
 * serving the deleted records. So:
 *  1. Every partition directory holds partition.metadata, naming the topic id
 *     it belongs to (as Kafka's does):
 *
 *         version: 0
 *         topic_id: 8d1c5f6e-0b1a-4c55-9f0e-2f6a1b7c3d4e
 *
 *     written tmp → fdatasync → rename → fsync(dir) into a new directory
 *     before any segment, so a directory with data always names its topic.
 *  2. Opening a partition adopts its directory only when the id matches.
 *     A directory of another id (or none, outside start-up) is an old
 *     topic's leftover: it is discarded and the partition starts empty. At
 *     start-up a directory with no partition.metadata whose name is a live
 *     partition is adopted and given the file (written before this rule).
 *  3. Discarding a directory first renames it to <dir>.deleted-<ms>-<seq>
 *     and fsyncs the data directory, then removes the files: a crash while
 *     removing leaves a name nothing adopts, never a half-emptied directory
 *     under a live name. A delete renames all its partitions, syncs once.
 *  4. At start-up, after metadata is loaded and live topics are open,
 *     rn_partitions_sweep (sweep.c) removes every leftover: *.deleted-*
 *     directories and <name>-<n> directories that are no live topic's
 *     partition; one log line gives the count.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "broker/part/partitions_int.h"
#include "broker/part/plant.h"
#include "broker/sorted.h"
#include "protocol/partition_meta.h"
#include "protocol/topic_name.h"
#include "storage/sys.h"

#define PARTITION_META_TMP "partition.metadata.tmp"

static int cmp_topic_name(const void *key, const void *elem)
{
    return strcmp(key, (*(rn_topic_state *const *)elem)->name);
}

int rn__partitions_find_index(const rn_partition_table *pt, const char *name, bool *found)
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
    int i = rn__partitions_find_index(pt, topic, &found);
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

rn_partition *rn_partition_lookup(rn_broker *b, const char *topic, int32_t partition,
                                  int32_t current_leader_epoch, int *rc)
{
    rn_partition *p = rn_partition_find(b, topic, partition);
    if (!p) {
        rn_topic_state *ts = rn_topic_state_find(b, topic);
        bool known = ts && partition >= 0 && partition < ts->n_partitions;
        rn_partition *q = known ? ts->parts[partition] : NULL;
        /* No log because this broker holds no replica: another leads it. */
        *rc = q && q->no_replica && !q->deleting ? -RN_E_NOT_LEADER
              : known                            ? -RN_E_STORAGE_ERROR
                                                 : -RN_E_UNKNOWN_TOPIC;
        return NULL;
    }
    *rc = rn_partition_check_epoch(p, current_leader_epoch);
    return *rc < 0 ? NULL : p;
}

unsigned rn_partition_owner(const rn_broker *b, const char *topic, int32_t partition)
{
    if (b->n_reactors <= 1 || rn_topic_is_internal(topic))
        return 0;
    uint32_t h = 2166136261u; /* FNV-1a: stable across runs and builds */
    for (const unsigned char *c = (const unsigned char *)topic; *c; c++)
        h = (h ^ *c) * 16777619u;
    return (h + (uint32_t)partition) % b->n_reactors;
}

/* The one rule for what consumers may read (DESIGN §4, §8): on a single
 * node the log's flushed offset with flush=always, else its end; on a
 * leader the minimum over the ISR (part/replica_state.h), which counts the
 * leader's own log by that same single-node rule; on a follower what the
 * leader last said, capped by its own log. Computed from the log, so only
 * where the log may be read: the owner, or reactor 0 while it opens the
 * partition. */
static int64_t hw_rule(const rn_partition *p)
{
    int64_t local = rn_log_high_watermark(p->log);
    switch (p->role) {
    case RN_ROLE_LEADER:
        return rn_replica_state_hw(p->rs);
    case RN_ROLE_FOLLOWER:
        return p->follower_hw < local ? p->follower_hw : local;
    case RN_ROLE_LOCAL:
        break;
    }
    return local;
}

void rn_partition_publish(rn_partition *p)
{
    if (!p->log)
        return;
    __atomic_store_n(&p->pub_lso, rn_log_start_offset(p->log), __ATOMIC_RELAXED);
    __atomic_store_n(&p->pub_hw, hw_rule(p), __ATOMIC_RELAXED);
    __atomic_store_n(&p->pub_leo, rn_log_end_offset(p->log), __ATOMIC_RELAXED);
    __atomic_store_n(&p->pub_size, rn_log_size_bytes(p->log), __ATOMIC_RELAXED);
}

/* Every reader of a high watermark comes here, directly or through
 * rn_partition_offsets: the rule on the owner, its published copy elsewhere. */
int64_t rn_partition_high_watermark(const rn_partition *p)
{
    if ((rn_self == p->reactor || !rn_self) && p->log)
        return hw_rule(p);
    return __atomic_load_n(&p->pub_hw, __ATOMIC_RELAXED);
}

bool rn_partition_hw_settled(const rn_partition *p)
{
    return !p->rs || rn_replica_state_hw_settled(p->rs);
}

void rn_partition_wake(rn_partition *p)
{
    if (p->rs && p->log)
        rn_replica_state_leader_moved(p->rs, rn_log_high_watermark(p->log));
    rn_partition_publish(p); /* for other reactors: describe, lag, metrics */
    rn_waiters_wake(&p->fetch_waiters, RN_WAKE_MOVED);
    rn_waiters_wake(&p->produce_waiters, RN_WAKE_MOVED);
}

void rn_partition_offsets(const rn_partition *p, int64_t *lso, int64_t *hw, int64_t *leo)
{
    if ((rn_self == p->reactor || !rn_self) && p->log) {
        *lso = rn_log_start_offset(p->log);
        *hw = rn_partition_high_watermark(p);
        *leo = rn_log_end_offset(p->log);
        return;
    }
    *lso = __atomic_load_n(&p->pub_lso, __ATOMIC_RELAXED);
    *hw = __atomic_load_n(&p->pub_hw, __ATOMIC_RELAXED);
    *leo = __atomic_load_n(&p->pub_leo, __ATOMIC_RELAXED);
}

/* ---- Replication roles (DESIGN §8) ------------------------------------------------ */

int rn_partition_become_leader(rn_partition *p, int32_t self_id, int32_t leader_epoch,
                               const int32_t *replicas, unsigned n_replicas, const int32_t *isr,
                               unsigned n_isr, const rn_replica_config *cfg, rn_isr_propose_cb *cb,
                               void *arg)
{
    if (!p->log)
        return -RN_E_STORAGE_ERROR;
    if (leader_epoch < p->leader_epoch)
        return -RN_E_FENCED_LEADER_EPOCH;
    /* What p let consumers see so far is where the ISR's minimum starts:
     * it never moves back (a follower's last heard, a single node's own). */
    int64_t hw = hw_rule(p);
    /* But a partition given its first role since this broker opened it
     * knows no high watermark: its log's own flushed end (the single-node
     * rule, RN_ROLE_LOCAL) is everything it held when it stopped, records
     * no follower may have had. Taken as the floor, a leader restarted
     * after all brokers went down acknowledged retried batches and showed
     * consumers records that the next leader, without them, then replaced
     * (power-loss, --seed 1401: 12 acknowledged records lost). Start from
     * the log start: the ISR's fetches raise it (Kafka restarts from its
     * high-watermark checkpoint, at most a little behind). */
    if (p->role == RN_ROLE_LOCAL && n_replicas > 1)
        hw = rn_log_start_offset(p->log);
    int64_t leo = rn_log_high_watermark(p->log);
    if (hw > leo)
        hw = leo;
    rn_replica_state *rs = NULL;
    int rc = rn_replica_state_new(&rs, self_id, leader_epoch, replicas, n_replicas, isr, n_isr, leo,
                                  hw, rn_log_end_offset(p->log), rn_now_ms(), cfg, cb, arg);
    if (rc < 0)
        return rc;
    rc = rn_log_assign_epoch(p->log, leader_epoch);
    if (rc < 0) {
        rn_replica_state_free(rs);
        return rc;
    }
    rn_replica_state_free(p->rs);
    p->rs = rs;
    p->role = RN_ROLE_LEADER;
    p->leader_epoch = leader_epoch;
    p->leader_id = self_id;
    rn_partition_wake(p);
    return 0;
}

int rn_partition_become_follower(rn_partition *p, int32_t leader_epoch, int32_t leader_id)
{
    if (leader_epoch < p->leader_epoch)
        return -RN_E_FENCED_LEADER_EPOCH;
    if (p->role != RN_ROLE_FOLLOWER)
        /* First role since open: no high watermark known (see
         * rn_partition_become_leader) until the leader says one. */
        p->follower_hw = !p->log                    ? 0
                         : p->role == RN_ROLE_LOCAL ? rn_log_start_offset(p->log)
                                                    : hw_rule(p);
    rn_replica_state_free(p->rs);
    p->rs = NULL;
    p->role = RN_ROLE_FOLLOWER;
    p->leader_epoch = leader_epoch;
    p->leader_id = leader_id;
    rn_partition_publish(p);
    /* acks=all produces answer NOT_LEADER (acks_woken sees the role);
     * parked fetches re-run and find it too. */
    rn_waiters_wake(&p->produce_waiters, RN_WAKE_CLOSED);
    rn_waiters_wake(&p->fetch_waiters, RN_WAKE_MOVED);
    return 0;
}

int rn_partition_isr_committed(rn_partition *p, const int32_t *isr, unsigned n)
{
    if (p->role != RN_ROLE_LEADER)
        return -RN_E_NOT_LEADER;
    int rc = rn_replica_state_set_isr(p->rs, isr, n);
    if (rc < 0)
        return rc;
    /* Parked acks=all produces re-check: the high watermark may have moved,
     * or the ISR fallen below min.insync.replicas. */
    rn_partition_wake(p);
    return 0;
}

void rn_partition_follower_hw(rn_partition *p, int64_t leader_hw)
{
    if (p->role != RN_ROLE_FOLLOWER)
        return;
    p->follower_hw = leader_hw;
    rn_partition_publish(p);
}

int rn_partition_check_epoch(const rn_partition *p, int32_t epoch)
{
    if (epoch < 0)
        return 0;
    if (epoch < p->leader_epoch)
        return -RN_E_FENCED_LEADER_EPOCH;
    if (epoch > p->leader_epoch)
        return -RN_E_UNKNOWN_LEADER_EPOCH;
    return 0;
}

int rn_partition_check_leader(const rn_partition *p)
{
    return p->role == RN_ROLE_FOLLOWER ? -RN_E_NOT_LEADER : 0;
}

int rn_partition_check_replica(const rn_partition *p, int32_t replica_id)
{
    if (p->role == RN_ROLE_LOCAL)
        return 0;
    if (p->role != RN_ROLE_LEADER || !rn_replica_state_has_follower(p->rs, replica_id))
        return -RN_E_NOT_LEADER;
    return 0;
}

bool rn_partition_isr_enough(const rn_partition *p)
{
    return !p->rs || rn_replica_state_isr_enough(p->rs);
}

int rn_partition_acks_all(const rn_partition *p, int32_t leader_epoch, int64_t need_hw)
{
    if (p->deleting)
        return -RN_E_UNKNOWN_TOPIC;
    /* Checked before the high watermark: a partition whose replica moved
     * away has no log (its in-flight appends complete while it is
     * abandoned), and a follower's high watermark says nothing of this
     * leader's batch. */
    if (!p->log || rn_partition_check_leader(p) < 0 ||
        (p->role == RN_ROLE_LEADER && p->leader_epoch != leader_epoch))
        return -RN_E_NOT_LEADER;
    /* PLANTED BUG, off unless RUNNEL_PLANT=acks-early (part/plant.h): the
     * batch is acknowledged as acks=1 would, before the ISR has it. */
    if (__builtin_expect(rn_plant_acks_early, 0))
        return 1;
    if (rn_partition_high_watermark(p) >= need_hw)
        return 1;
    if (!rn_partition_isr_enough(p))
        return -RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND;
    return 0;
}

int rn_partition_check_min_isr(const rn_partition *p)
{
    return rn_partition_isr_enough(p) ? 0 : -RN_E_NOT_ENOUGH_REPLICAS;
}

int rn_partition_follower_fetched(rn_partition *p, int32_t replica_id, int64_t fetch_offset,
                                  int64_t now_ms)
{
    if (p->role == RN_ROLE_LOCAL)
        return 0;
    if (p->role != RN_ROLE_LEADER)
        return -RN_E_NOT_LEADER;
    int64_t leo = rn_log_end_offset(p->log);
    if (fetch_offset > leo)
        return 0; /* not a log end this leader can vouch for: the read says OUT_OF_RANGE */
    int rc = rn_replica_state_on_fetch(p->rs, replica_id, fetch_offset, leo, now_ms);
    if (rc < 0)
        return -RN_E_NOT_LEADER;
    if (rc > 0)
        rn_partition_wake(p);
    return 0;
}

uint64_t rn_partition_size(const rn_partition *p)
{
    if ((rn_self == p->reactor || !rn_self) && p->log)
        return rn_log_size_bytes(p->log);
    return __atomic_load_n(&p->pub_size, __ATOMIC_RELAXED);
}

int rn__partitions_dir(char *buf, size_t len, const rn_broker *b, const char *topic, int32_t p)
{
    int n = snprintf(buf, len, "%s/%s-%d", b->cfg.data_dir, topic, p);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* rm -r of one partition directory (flat: segment files and markers only).
 * partition.metadata goes last, so a directory cut short still names its
 * topic. */
int rn__partitions_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    int rc = 0;
    bool has_meta = false;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!strcmp(e->d_name, RN_PARTITION_META_NAME)) {
            has_meta = true;
            continue;
        }
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && rc == 0)
            rc = -errno;
    }
    if (has_meta && unlinkat(dirfd(d), RN_PARTITION_META_NAME, 0) < 0 && rc == 0)
        rc = -errno;
    closedir(d);
    if (rmdir(dir) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* ---- Whose directory (design block, 1-4) ------------------------------------- */

int rn_partition_meta_read(const char *dir, uint8_t id[16])
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, RN_PARTITION_META_NAME) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = rn_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    char buf[RN_PARTITION_META_LEN + 1]; /* one more: a longer file is not ours */
    ssize_t got = rn_sys_pread_all(fd, buf, sizeof(buf), 0);
    rn_sys_close(fd);
    if (got < 0)
        return (int)got;
    return rn_partition_meta_parse(buf, (size_t)got, id);
}

/* Durably name id as dir's topic (tmp → fdatasync → rename → fsync dir; the
 * syncs are deferred inside a start-up window, like the logs' own). */
static int partition_meta_write(const char *dir, const uint8_t id[16])
{
    char path[PATH_MAX], tmp[PATH_MAX], body[RN_PARTITION_META_LEN];
    if (snprintf(path, sizeof(path), "%s/%s", dir, RN_PARTITION_META_NAME) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s", dir, PARTITION_META_TMP) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    rn_partition_meta_format(id, body);
    return rn_sys_replace_file(tmp, path, dir, body, sizeof(body), RN_REPLACE_LAZY);
}

/* Rename dir aside to <dir>.deleted-<ms>-<seq> (3). Returns the new name
 * (malloc'd) or NULL with *rc set; the caller syncs the data directory before
 * removing anything under the new name. */
char *rn__partitions_move_aside(const char *dir, int *rc)
{
    static unsigned long seq; /* atomic: a partition's owner may open its log (roles.c) */
    char moved[PATH_MAX + 64];
    snprintf(moved, sizeof(moved), "%s%s%lld-%lu", dir, DELETED_MARK, (long long)rn_now_ms(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    *rc = rn_sys_rename(dir, moved);
    if (*rc < 0)
        return NULL;
    char *m = strdup(moved);
    if (!m)
        *rc = -ENOMEM;
    return m;
}

/* Discard one leftover directory at once: rename aside, sync the data
 * directory, remove. */
static int discard_dir(rn_broker *b, const char *dir)
{
    int rc;
    char *moved = rn__partitions_move_aside(dir, &rc);
    if (!moved)
        return rc;
    rc = rn_sys_fsync_dir(b->cfg.data_dir);
    if (rc == 0)
        rc = rn__partitions_remove_dir(moved);
    free(moved);
    return rc;
}

/* Make dir the directory of the topic with this id (design block, 1-3) so
 * that rn_log_open finds either its own segments or none. adopt_legacy: a
 * directory without partition.metadata is this topic's (start-up only).
 * Returns 0 or -errno; *discarded counts leftovers removed. */
int rn__partitions_claim_dir(rn_broker *b, const char *dir, const char *name, const uint8_t id[16],
                             bool adopt_legacy, unsigned *discarded)
{
    struct stat st;
    int rc = 0;
    if (lstat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
        uint8_t have[16];
        rc = rn_partition_meta_read(dir, have);
        if (rc == 0 && memcmp(have, id, 16) == 0)
            return 0;
        if (rc == -ENOENT && adopt_legacy) {
            rn_logfmt(RN_INFO, "partition directory adopted", "partition=%s reason=%s", name,
                      "no_partition_metadata");
            return partition_meta_write(dir, id);
        }
        if (rc < 0 && rc != -ENOENT && rc != -RN_E_CORRUPT_FILE)
            return rc;
        char ids[RN_TOPIC_ID_STR_LEN] = "none";
        if (rc == 0)
            rn_topic_id_str(have, ids);
        rn_logfmt(RN_WARN, "leftover partition directory discarded", "partition=%s dir_topic_id=%s",
                  name, ids);
        rc = discard_dir(b, dir);
        if (rc < 0)
            return rc;
        (*discarded)++;
    } else if (errno != ENOENT) {
        return -errno;
    }
    rc = rn_sys_mkdir(dir, 0755);
    if (rc < 0 && rc != -EEXIST)
        return rc;
    /* The new directory's own entry in the data directory: synced with the
     * partition.metadata file so a directory with data always has it (1). */
    rc = partition_meta_write(dir, id);
    if (rc == 0)
        rc = rn_sys_fsync_dir_lazy(b->cfg.data_dir);
    return rc;
}

static void free_partition(rn_partition *p)
{
    if (!p)
        return;
    rn_producer_state_free(p->ps);
    rn_replica_state_free(p->rs);
    free(p->del_dir);
    free(p->topic);
    free(p);
}

void rn__partitions_free_topic(rn_topic_state *ts)
{
    /* A topic state replaced by a larger one (partitions added) gave its
     * partitions to the new one. */
    for (int32_t i = 0; ts->parts && !ts->parts_moved && i < ts->n_partitions; i++)
        free_partition(ts->parts[i]);
    free(ts->parts);
    free(ts->name);
    free(ts);
}

/* Drop one table's reference; the last frees (every owner has closed its logs
 * before dropping its reference). */
void rn__partitions_topic_unref(rn_topic_state *ts)
{
    if (__atomic_sub_fetch(&ts->refs, 1, __ATOMIC_ACQ_REL) == 0)
        rn__partitions_free_topic(ts);
}

int rn__partitions_table_insert(rn_partition_table *pt, rn_topic_state *ts)
{
    bool found;
    int at = rn__partitions_find_index(pt, ts->name, &found);
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

rn_topic_state *rn__partitions_table_remove(rn_partition_table *pt, const char *name)
{
    bool found;
    int at = rn__partitions_find_index(pt, name, &found);
    if (!found)
        return NULL;
    rn_topic_state *ts = pt->topics[at];
    memmove(pt->topics + at, pt->topics + at + 1,
            (pt->n_topics - (unsigned)at - 1) * sizeof(*pt->topics));
    pt->n_topics--;
    return ts;
}

/* ---- Changes sent to the other reactors -------------------------------------------- */

typedef struct change {
    rn_msg m;
    enum change_kind kind;
    rn_topic_state *ts; /* holds a reference */
    rn_log_config lc;
} change;

static void change_run(rn_msg *m)
{
    change *c = (change *)m;
    rn_reactor *r = m->to;
    switch (c->kind) {
    case CHANGE_ADD:
        if (rn__partitions_table_insert(&r->pt, c->ts) < 0) {
            rn_logfmt(RN_ERROR, "topic not added to reactor table", "topic=%s reactor=%u",
                      c->ts->name, r->index);
            rn__partitions_topic_unref(c->ts);
        }
        break; /* the table keeps the message's reference */
    case CHANGE_REMOVE:
        if (rn__partitions_table_remove(&r->pt, c->ts->name) == c->ts)
            rn__partitions_topic_unref(c->ts); /* the table's reference */
        for (int32_t i = 0; i < c->ts->n_partitions; i++) {
            rn_partition *p = c->ts->parts[i];
            if (p && p->reactor == r)
                rn__partitions_close_partition(r->b, p, true);
        }
        rn__partitions_topic_unref(c->ts);
        break;
    case CHANGE_CONFIG:
        rn__partitions_apply_config(r, c->ts, &c->lc);
        rn__partitions_topic_unref(c->ts);
        break;
    case CHANGE_REPLACE: {
        /* The same topic with more partitions: swap the entry, the table
         * keeps the message's reference and drops the old state's. */
        bool found;
        int at = rn__partitions_find_index(&r->pt, c->ts->name, &found);
        if (found) {
            rn_topic_state *old = r->pt.topics[at];
            r->pt.topics[at] = c->ts;
            rn__partitions_topic_unref(old);
        } else {
            rn__partitions_topic_unref(c->ts);
        }
        break;
    }
    }
    free(c);
}

/* Send a change to every reactor but 0. Out of memory here would leave a
 * reactor's table behind reactor 0's, so it is logged loudly. */
void rn__partitions_broadcast(rn_broker *b, enum change_kind kind, rn_topic_state *ts,
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

/* Shutdown, on the main thread once every reactor thread has stopped. */
int rn_partitions_close_all(rn_broker *b)
{
    int rc = 0;
    for (unsigned i = 1; i < b->n_reactors; i++) {
        rn_partition_table *pt = &b->reactors[i].pt;
        for (unsigned t = 0; t < pt->n_topics; t++)
            rn__partitions_topic_unref(pt->topics[t]);
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
        rn__partitions_topic_unref(ts);
    }
    free(pt->topics);
    memset(pt, 0, sizeof(*pt));
    return rc;
}
