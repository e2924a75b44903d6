/*
 * partitions.c — the topic → partition-log table, kept in step with metadata.
 *
 * Handlers never open files: they look partitions up here. The table changes
 * only through rn_partitions_on_metadata, the metadata listener, so what is
 * open on disk always follows the applied metadata log:
 *   TOPIC_CREATED  → open (creating) data-dir/<topic>-<p> for every partition,
 *                    with the broker's log defaults and the topic's overrides;
 *   CONFIG_CHANGED → rn_log_set_config on every partition;
 *   PARTITIONS_ADDED → open the new ones; the topic's state is replaced by
 *                    a larger copy in every reactor's table (never grown in
 *                    place under other reactors' readers);
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
 *     rn_partitions_sweep removes every leftover: *.deleted-* directories and
 *     <name>-<n> directories that are no live topic's partition; one log line
 *     gives the count.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/net/reactor.h"
#include "broker/part/fetchers.h"
#include "broker/part/partitions.h"
#include "broker/part/plant.h"
#include "broker/part/roles.h"
#include "broker/sorted.h"
#include "protocol/partition_meta.h"
#include "protocol/topic_name.h"
#include "storage/sys.h"

#define PARTITION_META_TMP "partition.metadata.tmp"
#define DELETED_MARK       RN_DELETED_DIR_MARK

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

static int partition_dir(char *buf, size_t len, const rn_broker *b, const char *topic, int32_t p)
{
    int n = snprintf(buf, len, "%s/%s-%d", b->cfg.data_dir, topic, p);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* rm -r of one partition directory (flat: segment files and markers only).
 * partition.metadata goes last, so a directory cut short still names its
 * topic. */
static int remove_dir(const char *dir)
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
static char *move_aside(const char *dir, int *rc)
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
    char *moved = move_aside(dir, &rc);
    if (!moved)
        return rc;
    rc = rn_sys_fsync_dir(b->cfg.data_dir);
    if (rc == 0)
        rc = remove_dir(moved);
    free(moved);
    return rc;
}

/* Make dir the directory of the topic with this id (design block, 1-3) so
 * that rn_log_open finds either its own segments or none. adopt_legacy: a
 * directory without partition.metadata is this topic's (start-up only).
 * Returns 0 or -errno; *discarded counts leftovers removed. */
static int claim_dir(rn_broker *b, const char *dir, const char *name, const uint8_t id[16],
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
    rn_replica_state_free(p->rs);
    free(p->del_dir);
    free(p->topic);
    free(p);
}

static void free_topic(rn_topic_state *ts)
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

enum change_kind { CHANGE_ADD, CHANGE_REMOVE, CHANGE_CONFIG, CHANGE_REPLACE };

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
    case CHANGE_REPLACE: {
        /* The same topic with more partitions: swap the entry, the table
         * keeps the message's reference and drops the old state's. */
        bool found;
        int at = find_index(&r->pt, c->ts->name, &found);
        if (found) {
            rn_topic_state *old = r->pt.topics[at];
            r->pt.topics[at] = c->ts;
            topic_unref(old);
        } else {
            topic_unref(c->ts);
        }
        break;
    }
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
    if (partition_dir(dir, sizeof(dir), b, p->topic, i) < 0)
        return -ENAMETOOLONG;
    snprintf(name, sizeof(name), "%s-%d", p->topic, i);
    rn_log_open_info info;
    /* Before listening, a directory without partition.metadata was
     * written by a runneld that did not write one; after, it can only be
     * a leftover (design block, 2). */
    unsigned discarded = 0;
    int rc = claim_dir(b, dir, name, id, !b->ready, &discarded);
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

void rn_partition_stop_replica(rn_partition *p)
{
    rn_broker *b = p->reactor->b;
    char dir[PATH_MAX];
    int64_t t0 = rn_now_ms();
    p->no_replica = true;
    p->moving_in = false;
    rn_metrics_replica_lag(&p->m, -1);
    if (p->storage_err)
        storage_mark(p, 0); /* no longer this broker's partition to fail */
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
    if (partition_dir(dir, sizeof(dir), b, p->topic, p->id) < 0)
        return;
    int rc;
    char *moved = move_aside(dir, &rc);
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
    rc = remove_dir(moved);
    rn_logfmt(rc < 0 ? RN_WARN : RN_INFO,
              rc < 0 ? "removed replica's directory not deleted" : "removed replica deleted",
              "partition=%s-%d dir=%s ms=%lld err=%s", p->topic, p->id, moved,
              (long long)(rn_now_ms() - t0), rc < 0 ? rn_errname(rc) : "none");
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
    if (open_partitions(b, ts, t, 0, &lc) < 0)
        goto oom;
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
    /* Parked fetches on it answer now (they re-check and find it gone);
     * parked produces answer that the partition went away. */
    p->deleting = true;
    if (b->fetchers)
        rn_fetchers_follow(b->fetchers, p, -1, NULL); /* before p can be freed */
    if (p->storage_err)
        storage_mark(p, 0); /* a deleted partition no longer counts as failing */
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
    /* The delete is committed. Move every directory aside and sync the data
     * directory once before anything is removed (design block, 3): owners
     * on other threads close their logs later, a topic created again under
     * the same name at once never meets the old files, and a crash from
     * here on leaves only names that nothing adopts. */
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        char dir[PATH_MAX];
        if (!p || partition_dir(dir, sizeof(dir), b, p->topic, p->id) < 0)
            continue;
        int rc;
        p->del_dir = move_aside(dir, &rc);
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
        broadcast(b, CHANGE_REMOVE, ts, NULL);
    for (int32_t i = 0; i < ts->n_partitions; i++) {
        rn_partition *p = ts->parts[i];
        if (p && (p->reactor == &b->reactors[0] || !b->shared))
            close_partition(b, p, true);
    }
    topic_unref(ts);
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
    int at = find_index(pt, t->name, &found);
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
        broadcast(b, CHANGE_REPLACE, ts, NULL);
    topic_unref(old);
}

/* Apply a topic's new config to the partitions r owns. */
static void apply_config(rn_reactor *r, rn_topic_state *ts, const rn_log_config *lc)
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

/* ---- Start-up sweep (design block, 4) ------------------------------------------ */

/* Whether name is <topic>-<n> for a partition of a live topic. */
static bool live_partition_dir(rn_broker *b, const char *name)
{
    const char *dash = strrchr(name, '-');
    if (!dash || dash == name || !dash[1] || strlen(dash + 1) > 9)
        return false;
    for (const char *c = dash + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    char topic[256];
    size_t tl = (size_t)(dash - name);
    if (tl >= sizeof(topic))
        return false;
    memcpy(topic, name, tl);
    topic[tl] = 0;
    rn_topic_state *ts = rn_topic_state_find(b, topic);
    if (!ts || atol(dash + 1) >= ts->n_partitions)
        return false;
    /* A partition this broker holds no replica of, in the metadata it has
     * caught up with, is a removed replica whose delete a crash cut short
     * (rn_partition_stop_replica). */
    rn_partition *p = ts->parts[atol(dash + 1)];
    return !p || !p->no_replica;
}

/* Whether name has the shape of a partition directory: <name>-<n>. */
static bool partition_shaped(const char *name)
{
    const char *dash = strrchr(name, '-');
    if (!dash || dash == name || !dash[1])
        return false;
    for (const char *c = dash + 1; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

int rn_partitions_sweep(rn_broker *b)
{
    DIR *d = opendir(b->cfg.data_dir);
    if (!d)
        return -errno;
    char **moved = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || strcmp(nm, RN_METADATA_DIR_NAME) == 0)
            continue;
        if (live_partition_dir(b, nm))
            continue;
        bool leftover = strstr(nm, DELETED_MARK) != NULL;
        if (!leftover && !partition_shaped(nm))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue; /* not a directory: not something runneld made */
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", b->cfg.data_dir, nm) >= (int)sizeof(path))
            continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 64;
            char **v = realloc(moved, c2 * sizeof(*v));
            if (!v) {
                rc = -ENOMEM;
                break;
            }
            moved = v;
            cap = c2;
        }
        /* Listed first, renamed after: renaming inside the directory being
         * read would let readdir return the new names again. */
        moved[n] = strdup(path);
        if (!moved[n]) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    /* A <name>-<n> of a dead topic is renamed first (3); one already marked
     * is removed as it is. */
    for (size_t i = 0; i < n; i++) {
        if (strstr(strrchr(moved[i], '/'), DELETED_MARK))
            continue;
        int r = 0;
        char *m = move_aside(moved[i], &r);
        if (!m) {
            if (rc == 0)
                rc = r;
            moved[i][0] = 0; /* left as it is: not removed under its live-looking name */
            continue;
        }
        free(moved[i]);
        moved[i] = m;
    }
    int r = n ? rn_sys_fsync_dir(b->cfg.data_dir) : 0;
    if (r < 0 && rc == 0)
        rc = r;
    unsigned removed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (r == 0 && moved[i][0]) {
            if (remove_dir(moved[i]) == 0)
                removed++;
            else
                failed++;
        }
        free(moved[i]);
    }
    free(moved);
    removed += b->n_discarded;
    b->n_discarded = 0;
    if (removed || failed || rc < 0)
        rn_logfmt(removed || failed ? RN_WARN : RN_ERROR, "leftover partition directories removed",
                  "removed=%u failed=%u dir=%s err=%s", removed, failed, b->cfg.data_dir,
                  rc < 0 ? rn_errname(rc) : "none");
    return rc;
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

/* A failed fdatasync (Kafka's log directory failure): what the log's files
 * hold is unknown and the log refuses appends for good, so a leader here
 * would keep its partitions unwritable. A full disk under the leader of a
 * replicated partition is the same for its writers: the in-sync replicas
 * elsewhere could take them. In a cluster the broker then leaves as a
 * controlled shutdown does (rn_quorum_leave): the controller fences it, its
 * leaderships move to in-sync replicas and it leaves every ISR; it stays
 * up, fenced, answering NOT_LEADER, until an operator fixes the disk and
 * restarts it (as Kafka's broker after a log directory goes offline). On a
 * single node a full disk keeps its old rule: refuse, and resume once
 * there is room. Once per broker; says why. */
static void log_dir_failed(rn_partition *p, int err)
{
    rn_broker *b = p->reactor->b;
    if (__atomic_exchange_n(&b->log_dir_failed, 1, __ATOMIC_ACQ_REL))
        return;
    char q[600];
    const char *what =
        err == -ENOSPC
            ? "disk full under a replicated partition's leader: leaving the cluster (fenced by "
              "the controller, leaderships move to in-sync replicas)"
        : b->quorum ? "log directory failed: leaving the cluster (fenced by the controller, "
                      "leaderships move to in-sync replicas)"
                    : "log directory failed: the partition refuses writes";
    rn_logfmt(RN_ERROR, what, "partition=%s-%d err=%s detail=%s", p->topic, p->id, rn_errname(err),
              rn_logfmt_quote(p->log ? rn_log_errmsg(p->log) : "", q, sizeof(q)));
    if (b->quorum)
        rn_quorum_leave(b->quorum);
}

void rn_partition_storage_failed(rn_partition *p, int err, size_t need)
{
    if (!is_storage_error(err))
        return;
    if (err == -RN_E_LOG_FAILED ||
        (err == -ENOSPC && p->reactor->b->quorum && p->role == RN_ROLE_LEADER && p->n_replicas > 1))
        log_dir_failed(p, err);
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

void rn_partitions_stopping(rn_reactor *r)
{
    rn_partition_table *pt = &r->pt;
    for (unsigned t = 0; t < pt->n_topics; t++) {
        rn_topic_state *ts = pt->topics[t];
        for (int32_t i = 0; i < ts->n_partitions; i++) {
            rn_partition *p = ts->parts[i];
            if (p && p->reactor == r)
                rn_waiters_wake(&p->produce_waiters, RN_WAKE_CLOSED);
        }
    }
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
            if (rn_log_failure(p->log) < 0)
                log_dir_failed(p, -RN_E_LOG_FAILED); /* a follower's append, or no produce since */
            if (p->rs)
                rn_replica_state_tick(p->rs, now_ms); /* ISR shrink proposals */
            rn_waiters_expire(&p->produce_waiters, now_ms);
            storage_probe(r->b, p, &avail);
            storage_say_ok(p, now_ms);
            rn_partition_publish(p);
        }
    }
}
