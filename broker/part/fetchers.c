/*
 * part/fetchers.c — one follower fetcher thread per leader (part/fetchers.h).
 *
 * A thread's life:
 *
 *   started (first partition followed from its leader)
 *     loop: apply the follow/unfollow commands queued for it; (re)connect
 *           when its leader's endpoint changed; one rn_replica_fetcher
 *           round; after a failed round wait 100 ms (a dead leader refuses
 *           at once: no busy loop while the controller moves leaderships);
 *           after a round that moved nothing wait up to 50 ms for a kick
 *           (an append batch completed on an owner, a command arrived)
 *   stopped by rn_fetchers_free (the stop flag also ends a wait for the
 *   leader inside a round), joined.
 *
 * Invariants:
 *  1. Only the thread touches its rn_replica_fetcher and its peer.
 *  2. A partition's log, role and producer state are touched only on its
 *     owner reactor: owner_call posts the fetcher's work there with
 *     rn_reactor_call and waits until it ran. The work finds the partition
 *     again by name in the owner's own table, so a partition deleted
 *     meanwhile is never read through a stale pointer (the work gets NULL).
 *  3. A reactor never waits for a fetcher thread: rn_fetchers_follow only
 *     queues a command under a mutex that no one holds while blocking.
 *  4. The map partition -> leader (under fs->mu) is what rn_fetchers_follow
 *     compares against, so the same call twice queues nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/logfmt.h"
#include "broker/net/peer.h"
#include "broker/net/reactor.h"
#include "broker/part/fetchers.h"
#include "broker/part/partitions.h"
#include "broker/part/replica_fetcher.h"

#define FAILED_WAIT_MS 100
#define IDLE_WAIT_MS   50
#define PARK_RETRY_MS  1000 /* a leader that said NOT_LEADER is asked again after this */
#define ERR_LOG_MS     5000 /* the same failure is logged again at most this often */

typedef struct cmd {
    struct cmd *next;
    rn_partition *p; /* compared only */
    char *topic;
    int32_t id;
    bool add;
} cmd;

typedef struct fthread {
    rn_fetchers *fs;
    int32_t leader;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* kicks, commands, stop */
    pthread_cond_t done_cv; /* owner work done */
    uint64_t kicks;         /* under mu */
    int stop;               /* atomic */
    cmd *head, *tail;       /* under mu */
    char endpoint[256];     /* under mu: where the leader listens */
} fthread;

typedef struct follow_entry {
    const rn_partition *p;
    int32_t leader;
} follow_entry;

struct rn_fetchers {
    rn_broker *b;
    pthread_mutex_t mu; /* threads and map */
    fthread **threads;
    unsigned n_threads, cap_threads;
    follow_entry *map;
    unsigned n_map, cap_map;
};

/* ---- Work on the owner -------------------------------------------------------------------- */

typedef struct owner_work {
    fthread *ft;
    rn_partition *p;
    const char *topic;
    int32_t id;
    rn_replica_work_fn *fn;
    void *arg;
    bool done; /* under ft->mu */
} owner_work;

static void owner_run(void *a)
{
    owner_work *w = a;
    rn_partition *p = rn_partition_find(w->ft->fs->b, w->topic, w->id);
    w->fn(w->arg, p == w->p ? p : NULL);
    pthread_mutex_lock(&w->ft->mu);
    w->done = true;
    pthread_cond_broadcast(&w->ft->done_cv);
    pthread_mutex_unlock(&w->ft->mu);
}

static int owner_call(void *ctx, rn_partition *p, const char *topic, int32_t id,
                      rn_replica_work_fn *fn, void *arg)
{
    fthread *ft = ctx;
    rn_broker *b = ft->fs->b;
    owner_work w = {.ft = ft, .p = p, .topic = topic, .id = id, .fn = fn, .arg = arg};
    int rc = rn_reactor_call(&b->reactors[rn_partition_owner(b, topic, id)], owner_run, &w);
    if (rc < 0)
        return rc;
    /* Every call the reactor accepted runs, even while it stops
     * (net/inbox.h), so this wait ends. */
    pthread_mutex_lock(&ft->mu);
    while (!w.done)
        pthread_cond_wait(&ft->done_cv, &ft->mu);
    pthread_mutex_unlock(&ft->mu);
    return 0;
}

static void kick_locked(fthread *ft)
{
    ft->kicks++;
    pthread_cond_broadcast(&ft->cv);
}

/* An append batch completed on an owner: the partition may be fetched again. */
static void kick(void *ctx)
{
    fthread *ft = ctx;
    pthread_mutex_lock(&ft->mu);
    kick_locked(ft);
    pthread_mutex_unlock(&ft->mu);
}

/* ---- The thread ------------------------------------------------------------------------------ */

static void timed_wait(fthread *ft, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&ft->cv, &ft->mu, &ts);
}

static void cmd_free(cmd *c)
{
    free(c->topic);
    free(c);
}

/* Apply the queued commands in order (under ft->mu). An unfollow whose
 * appends are still in flight stops the queue until they completed (their
 * kick comes): a later follow of the same partition must not be undone by
 * the earlier unfollow. */
static void apply_cmds(fthread *ft, rn_replica_fetcher *f)
{
    while (ft->head) {
        cmd *c = ft->head;
        int rc = c->add ? rn_replica_fetcher_add_named(f, c->p, c->topic, c->id)
                        : rn_replica_fetcher_remove(f, c->p);
        if (rc == -EBUSY || rc == -ENOMEM)
            return;
        ft->head = c->next;
        if (!ft->head)
            ft->tail = NULL;
        cmd_free(c);
    }
}

static void *thread_main(void *arg)
{
    fthread *ft = arg;
    rn_broker *b = ft->fs->b;
    rn_replica_fetcher_config cfg;
    rn_replica_fetcher_config_default(&cfg);
    cfg.self_id = b->cfg.node_id;
    cfg.max_bytes = b->cfg.replica_fetch_response_max_bytes;
    cfg.part_bytes = b->cfg.replica_fetch_max_bytes;
    cfg.max_wait_ms = b->cfg.replica_fetch_wait_max_ms;
    cfg.on_owner = owner_call;
    cfg.owner_ctx = ft;
    cfg.idle = kick;
    cfg.idle_ctx = ft;
    cfg.stop = &ft->stop;
    cfg.park_retry_ms = PARK_RETRY_MS;
    cfg.throttle = &b->follower_throttle;
    rn_replica_fetcher *f = NULL;
    rn_peer *peer = NULL;
    char have_ep[256] = "", last_err[512] = "";
    int64_t last_err_ms = 0;
    int rc = rn_replica_fetcher_new(&f, NULL, &cfg);
    if (rc < 0) {
        rn_logfmt(RN_ERROR, "replica fetcher not started", "leader=%d err=%s", (int)ft->leader,
                  rn_errname(rc));
        return NULL;
    }
    rn_logfmt(RN_INFO, "replica fetcher started", "leader=%d", (int)ft->leader);
    pthread_mutex_lock(&ft->mu);
    while (!__atomic_load_n(&ft->stop, __ATOMIC_ACQUIRE)) {
        apply_cmds(ft, f);
        if (strcmp(ft->endpoint, have_ep) != 0) {
            rn_peer *np = NULL;
            rc = rn_peer_new(&np, ft->endpoint, NULL, NULL);
            if (rc == 0) {
                rn_replica_fetcher_set_peer(f, np);
                rn_peer_free(peer); /* nothing of f waits on it between rounds */
                peer = np;
            } else {
                rn_logfmt(RN_WARN, "replica fetcher: bad leader endpoint",
                          "leader=%d endpoint=%s err=%s", (int)ft->leader, ft->endpoint,
                          rn_errname(rc));
            }
            snprintf(have_ep, sizeof(have_ep), "%s", ft->endpoint);
        }
        if (!peer || rn_replica_fetcher_count(f) == 0) {
            pthread_cond_wait(&ft->cv, &ft->mu);
            continue;
        }
        uint64_t seen = ft->kicks;
        pthread_mutex_unlock(&ft->mu);
        rc = rn_replica_fetcher_run_once(f, -1);
        pthread_mutex_lock(&ft->mu);
        if (__atomic_load_n(&ft->stop, __ATOMIC_ACQUIRE))
            break;
        if (rc < 0) {
            const char *m = rn_replica_fetcher_errmsg(f);
            int64_t now = rn_now_ms();
            if (strcmp(m, last_err) != 0 || now - last_err_ms >= ERR_LOG_MS) {
                rn_logfmt(RN_WARN, "replica fetch failed",
                          "leader=%d endpoint=%s err=%s msg=\"%s\"", (int)ft->leader, have_ep,
                          rn_errname(rc), m);
                snprintf(last_err, sizeof(last_err), "%s", m);
                last_err_ms = now;
            }
            if (ft->kicks == seen)
                timed_wait(ft, FAILED_WAIT_MS);
        } else {
            last_err[0] = 0;
            if (rc == 0 && ft->kicks == seen)
                timed_wait(ft, IDLE_WAIT_MS);
        }
    }
    pthread_mutex_unlock(&ft->mu);
    /* The reactors have stopped (rn_fetchers_free's rule): every append
     * submitted has completed, so f can go. Should one not have, f is
     * leaked rather than freed under it. */
    if (rn_replica_fetcher_busy(f) == 0)
        rn_replica_fetcher_free(f);
    else
        rn_logfmt(RN_WARN, "replica fetcher stopped with appends in flight", "leader=%d",
                  (int)ft->leader);
    rn_peer_free(peer);
    return NULL;
}

/* ---- The threads ------------------------------------------------------------------------------
 */

int rn_fetchers_new(rn_fetchers **out, rn_broker *b)
{
    rn_fetchers *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->b = b;
    pthread_mutex_init(&fs->mu, NULL);
    *out = fs;
    return 0;
}

void rn_fetchers_free(rn_fetchers *fs)
{
    if (!fs)
        return;
    for (unsigned i = 0; i < fs->n_threads; i++) {
        fthread *ft = fs->threads[i];
        __atomic_store_n(&ft->stop, 1, __ATOMIC_RELEASE);
        pthread_mutex_lock(&ft->mu);
        pthread_cond_broadcast(&ft->cv);
        pthread_mutex_unlock(&ft->mu);
    }
    for (unsigned i = 0; i < fs->n_threads; i++) {
        fthread *ft = fs->threads[i];
        pthread_join(ft->th, NULL);
        while (ft->head) {
            cmd *c = ft->head;
            ft->head = c->next;
            cmd_free(c);
        }
        pthread_cond_destroy(&ft->cv);
        pthread_cond_destroy(&ft->done_cv);
        pthread_mutex_destroy(&ft->mu);
        free(ft);
    }
    free(fs->threads);
    free(fs->map);
    pthread_mutex_destroy(&fs->mu);
    free(fs);
}

/* The thread of leader (under fs->mu), started when there is none. */
static fthread *thread_for(rn_fetchers *fs, int32_t leader, int *rc)
{
    for (unsigned i = 0; i < fs->n_threads; i++)
        if (fs->threads[i]->leader == leader)
            return fs->threads[i];
    if (fs->n_threads == fs->cap_threads) {
        unsigned cap = fs->cap_threads ? fs->cap_threads * 2 : 4;
        fthread **v = realloc(fs->threads, cap * sizeof(*v));
        if (!v) {
            *rc = -ENOMEM;
            return NULL;
        }
        fs->threads = v;
        fs->cap_threads = cap;
    }
    fthread *ft = calloc(1, sizeof(*ft));
    if (!ft) {
        *rc = -ENOMEM;
        return NULL;
    }
    ft->fs = fs;
    ft->leader = leader;
    pthread_mutex_init(&ft->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ft->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&ft->done_cv, NULL);
    int e = pthread_create(&ft->th, NULL, thread_main, ft);
    if (e != 0) {
        pthread_cond_destroy(&ft->cv);
        pthread_cond_destroy(&ft->done_cv);
        pthread_mutex_destroy(&ft->mu);
        free(ft);
        *rc = -EAGAIN;
        return NULL;
    }
    fs->threads[fs->n_threads++] = ft;
    return ft;
}

static int push_cmd(fthread *ft, rn_partition *p, bool add)
{
    cmd *c = calloc(1, sizeof(*c));
    if (!c || !(c->topic = strdup(p->topic))) {
        free(c);
        return -ENOMEM;
    }
    c->p = p;
    c->id = p->id;
    c->add = add;
    pthread_mutex_lock(&ft->mu);
    if (ft->tail)
        ft->tail->next = c;
    else
        ft->head = c;
    ft->tail = c;
    kick_locked(ft);
    pthread_mutex_unlock(&ft->mu);
    return 0;
}

static fthread *find_thread(rn_fetchers *fs, int32_t leader)
{
    for (unsigned i = 0; i < fs->n_threads; i++)
        if (fs->threads[i]->leader == leader)
            return fs->threads[i];
    return NULL;
}

int rn_fetchers_follow(rn_fetchers *fs, rn_partition *p, int32_t leader_id, const char *endpoint)
{
    if (leader_id >= 0 && (!endpoint || !strchr(endpoint, ':')))
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&fs->mu);
    unsigned at = fs->n_map;
    for (unsigned i = 0; i < fs->n_map; i++)
        if (fs->map[i].p == p)
            at = i;
    int32_t old = at < fs->n_map ? fs->map[at].leader : -1;
    if (leader_id < 0)
        leader_id = -1;
    if (old == leader_id) {
        fthread *ft = leader_id >= 0 ? find_thread(fs, leader_id) : NULL;
        if (ft) {
            pthread_mutex_lock(&ft->mu);
            if (strcmp(ft->endpoint, endpoint) != 0) {
                snprintf(ft->endpoint, sizeof(ft->endpoint), "%s", endpoint);
                kick_locked(ft);
            }
            pthread_mutex_unlock(&ft->mu);
        }
        goto out;
    }
    if (leader_id >= 0 && at == fs->n_map && fs->n_map == fs->cap_map) {
        unsigned cap = fs->cap_map ? fs->cap_map * 2 : 16;
        follow_entry *v = realloc(fs->map, cap * sizeof(*v));
        if (!v) {
            rc = -ENOMEM;
            goto out;
        }
        fs->map = v;
        fs->cap_map = cap;
    }
    fthread *to = NULL;
    if (leader_id >= 0) {
        to = thread_for(fs, leader_id, &rc);
        if (!to)
            goto out;
        pthread_mutex_lock(&to->mu);
        if (strcmp(to->endpoint, endpoint) != 0)
            snprintf(to->endpoint, sizeof(to->endpoint), "%s", endpoint);
        pthread_mutex_unlock(&to->mu);
        rc = push_cmd(to, p, true);
        if (rc < 0)
            goto out;
    }
    if (old >= 0) {
        fthread *from = find_thread(fs, old);
        /* Out of memory here leaves p on the old thread too: harmless, as
         * the old leader fences the stale epoch and p parks there. */
        if (from && push_cmd(from, p, false) < 0)
            rn_logfmt(RN_WARN, "partition not removed from its old fetcher", "partition=%s-%d",
                      p->topic, p->id);
    }
    if (leader_id >= 0) {
        if (at == fs->n_map)
            fs->n_map++;
        fs->map[at] = (follow_entry){.p = p, .leader = leader_id};
    } else {
        fs->map[at] = fs->map[--fs->n_map];
    }
    rn_logfmt(RN_INFO, "partition follows", "partition=%s-%d leader=%d was=%d", p->topic, p->id,
              (int)leader_id, (int)old);
out:
    pthread_mutex_unlock(&fs->mu);
    return rc;
}

int32_t rn_fetchers_leader_of(rn_fetchers *fs, const rn_partition *p)
{
    int32_t l = -1;
    pthread_mutex_lock(&fs->mu);
    for (unsigned i = 0; i < fs->n_map; i++)
        if (fs->map[i].p == p)
            l = fs->map[i].leader;
    pthread_mutex_unlock(&fs->mu);
    return l;
}
