/*
 * sweep.c — the partition table's sweeps and the storage errors they keep:
 * at start-up, over the data directory for leftover partition directories;
 * at every tick, over the partitions a reactor owns (roll, retention, the
 * parked produces' timeouts, ISR shrinks, storage-error marks), and once
 * more when the reactor stops (its parked produces answer). The table
 * itself is partitions.c's; what the files share: partitions_int.h.
 *
 * Start-up sweep: item 4 of partitions.c's design block (whose directory);
 * "design block" below means that one.
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
#include <sys/stat.h>

#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "broker/part/partitions_int.h"
#include "storage/sys.h"

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
        char *m = rn__partitions_move_aside(moved[i], &r);
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
            if (rn__partitions_remove_dir(moved[i]) == 0)
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

/* ---- Storage errors ---------------------------------------------------------------- */

/* Room an append needs besides its own bytes: an index file grows by 64 KiB. */
#define STORAGE_SLACK (64u << 10)
/* How long a partition must write again before the log says so. */
#define STORAGE_QUIET_MS 1000

static bool is_storage_error(int err)
{
    return err == -RN_E_LOG_FAILED || (err < 0 && !rn_is_rn_error(err) && err != -ENOMEM);
}

void rn__partitions_storage_mark(rn_partition *p, int err)
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
    rn__partitions_storage_mark(p, err);
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
    rn__partitions_storage_mark(p, 0);
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
