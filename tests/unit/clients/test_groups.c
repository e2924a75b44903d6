/*
 * test_groups.c — librunnel consumer groups against a real runneld: two and
 * three members split a 6-partition topic with no overlap and full coverage
 * (checked at every step of the hand-over, not only at the end); a member
 * killed with SIGKILL (a child process) loses its partitions within the
 * session timeout and the survivor resumes from the committed offsets with
 * nothing lost; a member that closes hands over at once and without
 * duplicates; committed offsets, lag and owners in describe; manual commit;
 * admin commit, list and delete; the errors of subscribe.
 *
 * Members of one test share this thread and are polled in turn (each handle
 * is used by one thread at a time, as runnel.h asks). Timings are printed,
 * not asserted tightly: the bounds below are the protocol's (session
 * timeout, heartbeat interval) plus generous slack for a loaded machine.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/runnel.h"
#include "harness.h"
#include "protocol/errors.h"

#define NPARTS 6

/* Session and heartbeat settings of every member: short, so a dead member
 * is noticed within seconds. */
#define SESSION_MS   "2000"
#define HEARTBEAT_MS "200"

/* Write per_part records to each of the topic's NPARTS partitions: value
 * "<partition>:<i>", so offset i of partition p holds "p:i". */
static void produce_each(const rt_broker *b, const char *topic, int per_part)
{
    rn_conf *conf = rt_conf(b, "linger.ms", "5", NULL);
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    rn_conf_free(conf);
    for (int i = 0; i < per_part; i++)
        for (int32_t part = 0; part < NPARTS; part++) {
            char v[32];
            int len = snprintf(v, sizeof(v), "%d:%d", part, i);
            cr_assert_eq(
                rn_producer_send(p, topic, part, NULL, 0, v, (size_t)len, NULL, 0, 0, NULL), 0,
                "%s", rn_producer_errmsg(p));
        }
    cr_assert_eq(rn_producer_flush(p, 20000), 0, "%s", rn_producer_errmsg(p));
    rn_producer_close(p);
}

/* A consumer in group, subscribed to topic; extra conf pairs NULL-ended. */
static rn_consumer *member_new(const rt_broker *b, const char *group, const char *topic,
                               const char *client_id, const char *k1, const char *v1)
{
    rn_conf *conf =
        rt_conf(b, "group.id", group, "client.id", client_id, "session.timeout.ms", SESSION_MS,
                "heartbeat.interval.ms", HEARTBEAT_MS, "fetch.max.wait.ms", "50", NULL);
    char err[256];
    if (k1)
        cr_assert_eq(rn_conf_set(conf, k1, v1, err, sizeof(err)), 0, "%s", err);
    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    rn_conf_free(conf);
    const char *topics[] = {topic};
    cr_assert_eq(rn_consumer_subscribe(c, topics, 1), 0, "%s", rn_consumer_errmsg(c));
    return c;
}

/* Which member owns each partition now (-1 none); fails the test on an
 * overlap, the one thing a group must never allow. */
static void owners(rn_consumer **m, int n, int owner[NPARTS])
{
    for (int p = 0; p < NPARTS; p++)
        owner[p] = -1;
    for (int i = 0; i < n; i++) {
        if (!m[i])
            continue;
        const char *const *t;
        const int32_t *parts;
        size_t k = rn_consumer_assignment(m[i], &t, &parts);
        for (size_t j = 0; j < k; j++) {
            cr_assert(parts[j] >= 0 && parts[j] < NPARTS);
            cr_assert_eq(owner[parts[j]], -1, "partition %d owned by members %d and %d at once",
                         parts[j], owner[parts[j]], i);
            owner[parts[j]] = i;
        }
    }
}

static int owned_by(const int owner[NPARTS], int who)
{
    int k = 0;
    for (int p = 0; p < NPARTS; p++)
        k += owner[p] == who;
    return k;
}

/* What the members returned: count[p][o] times offset o of partition p was
 * seen, and by whom last. */
typedef struct seen {
    int per_part;
    int *count; /* [NPARTS * per_part] */
    int64_t total;
} seen;

static void seen_init(seen *s, int per_part)
{
    s->per_part = per_part;
    s->count = calloc((size_t)NPARTS * (size_t)per_part, sizeof(int));
    s->total = 0;
    cr_assert_not_null(s->count);
}

/* Check a message's value against its place and count it. */
static void seen_add(seen *s, const rn_message *m)
{
    cr_assert(m->partition >= 0 && m->partition < NPARTS);
    cr_assert(m->offset >= 0 && m->offset < s->per_part, "offset %lld past what was produced",
              (long long)m->offset);
    char want[32];
    int len = snprintf(want, sizeof(want), "%d:%lld", m->partition, (long long)m->offset);
    cr_assert(m->value_len == (size_t)len && memcmp(m->value, want, (size_t)len) == 0,
              "partition %d offset %lld holds %.*s", m->partition, (long long)m->offset,
              (int)m->value_len, (const char *)m->value);
    s->count[m->partition * s->per_part + m->offset]++;
    s->total++;
}

static int64_t seen_distinct(const seen *s)
{
    int64_t k = 0;
    for (int i = 0; i < NPARTS * s->per_part; i++)
        k += s->count[i] > 0;
    return k;
}

/* Poll every member once (a short wait each); count what comes back. */
static void poll_all(rn_consumer **m, int n, seen *s, int wait_ms)
{
    for (int i = 0; i < n; i++) {
        if (!m[i])
            continue;
        const rn_message *msgs;
        int got = rn_consumer_poll(m[i], wait_ms, &msgs);
        cr_assert(got >= 0, "member %d: poll: %s", i, rn_consumer_errmsg(m[i]));
        for (int k = 0; s && k < got; k++)
            seen_add(s, &msgs[k]);
    }
}

/* Poll until the n members hold every partition between them, each at
 * least `fair` (the balanced share), checking no overlap at every step.
 * Returns how long it took. */
static int64_t wait_balanced(rn_consumer **m, int n, seen *s, int fair, int timeout_ms)
{
    int64_t t0 = rt_now_ms();
    for (;;) {
        poll_all(m, n, s, 10);
        int owner[NPARTS];
        owners(m, n, owner);
        bool ok = owned_by(owner, -1) == 0;
        for (int i = 0; i < n; i++)
            ok = ok && (!m[i] || owned_by(owner, i) >= fair);
        if (ok)
            return rt_now_ms() - t0;
        cr_assert(rt_now_ms() - t0 < timeout_ms, "no balanced assignment within %d ms", timeout_ms);
    }
}

/* ---- Splitting ------------------------------------------------------------------------------ */

/* Rebalance callback log: assigned minus revoked must equal the assignment. */
typedef struct cb_log {
    int held[NPARTS];
    int assigned, revoked;
} cb_log;

static void on_rebalance(void *arg, int assigned, const char *topic, int32_t partition)
{
    cb_log *l = arg;
    cr_assert_str_eq(topic, "split");
    cr_assert(partition >= 0 && partition < NPARTS);
    cr_assert_eq(l->held[partition], !assigned, "partition %d %s twice in a row", partition,
                 assigned ? "assigned" : "revoked");
    l->held[partition] = assigned;
    if (assigned)
        l->assigned++;
    else
        l->revoked++;
}

// Two members split a 6-partition topic 3/3, a third makes it 2/2/2: never a
// partition in two hands, always every one covered in the end, every record
// read, and the rebalance callbacks agree with the assignments.
Test(groups, two_then_three_members_split, .timeout = 60)
{
    rt_broker b;
    rt_broker_with_topic(&b, "split", NPARTS);
    produce_each(&b, "split", 50);
    seen s;
    seen_init(&s, 50);
    cb_log logs[3] = {0};
    rn_consumer *m[3] = {NULL, NULL, NULL};
    m[0] = member_new(&b, "g", "split", "m0", NULL, NULL);
    rn_consumer_set_rebalance_cb(m[0], on_rebalance, &logs[0]);
    int64_t t1 = wait_balanced(m, 1, &s, NPARTS, 10000);
    m[1] = member_new(&b, "g", "split", "m1", NULL, NULL);
    rn_consumer_set_rebalance_cb(m[1], on_rebalance, &logs[1]);
    int64_t t2 = wait_balanced(m, 2, &s, 3, 10000);
    m[2] = member_new(&b, "g", "split", "m2", NULL, NULL);
    rn_consumer_set_rebalance_cb(m[2], on_rebalance, &logs[2]);
    int64_t t3 = wait_balanced(m, 3, &s, 2, 10000);
    fprintf(stderr, "groups: balanced: 1 member %lld ms, 2 members %lld ms, 3 members %lld ms\n",
            (long long)t1, (long long)t2, (long long)t3);
    /* Stable: the 2/2/2 split holds while they consume everything. */
    int64_t deadline = rt_now_ms() + 15000;
    while (seen_distinct(&s) < NPARTS * 50) {
        cr_assert(rt_now_ms() < deadline, "only %lld of %d records read",
                  (long long)seen_distinct(&s), NPARTS * 50);
        poll_all(m, 3, &s, 10);
        int owner[NPARTS];
        owners(m, 3, owner);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(owned_by(owner, i), 2, "member %d holds %d partitions", i,
                         owned_by(owner, i));
    }
    int owner[NPARTS];
    owners(m, 3, owner);
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < NPARTS; p++)
            cr_assert_eq(logs[i].held[p], owner[p] == i,
                         "member %d: callbacks say %d for partition %d, assignment says %d", i,
                         logs[i].held[p], p, owner[p] == i);
    cr_assert_eq(logs[0].assigned, NPARTS);
    cr_assert_eq(logs[0].revoked, NPARTS - 2, "member 0 gave up %d partitions", logs[0].revoked);
    for (int i = 0; i < 3; i++)
        rn_consumer_close(m[i]);
    free(s.count);
    rt_broker_stop(&b);
}

// A member that closes commits and leaves at once: the other takes its
// partitions within about one heartbeat (far sooner than the session
// timeout) and starts exactly where the first stopped (no record twice).
Test(groups, clean_leave_hands_over_at_once, .timeout = 60)
{
    enum { PER = 400 };
    rt_broker b;
    rt_broker_with_topic(&b, "leave", NPARTS);
    produce_each(&b, "leave", PER);
    seen s;
    seen_init(&s, PER);
    rn_consumer *m[2];
    /* Slow readers (10 records a poll), so both are mid-stream at the leave. */
    m[0] = member_new(&b, "g", "leave", "m0", "max.poll.records", "10");
    m[1] = member_new(&b, "g", "leave", "m1", "max.poll.records", "10");
    wait_balanced(m, 2, &s, 3, 10000);
    for (int i = 0; i < 20; i++)
        poll_all(m, 2, &s, 10);
    int owner[NPARTS];
    owners(m, 2, owner);
    int64_t t0 = rt_now_ms();
    rn_consumer_close(m[0]);
    m[0] = NULL;
    int64_t closed = rt_now_ms() - t0;
    int64_t took = wait_balanced(m, 2, &s, NPARTS, 10000);
    fprintf(stderr,
            "groups: clean leave: close took %lld ms, the survivor held all %d partitions "
            "%lld ms after close returned (heartbeat.interval.ms %s, session.timeout.ms "
            "%s)\n",
            (long long)closed, NPARTS, (long long)took, HEARTBEAT_MS, SESSION_MS);
    /* About one heartbeat interval (200 ms) plus the coordinator's reconcile
     * round trips; far below the 2000 ms session timeout. */
    cr_assert(took < 1500, "hand-over took %lld ms", (long long)took);
    int64_t deadline = rt_now_ms() + 20000;
    while (seen_distinct(&s) < NPARTS * PER) {
        cr_assert(rt_now_ms() < deadline, "only %lld of %d records read",
                  (long long)seen_distinct(&s), NPARTS * PER);
        poll_all(m, 2, &s, 10);
    }
    cr_assert_eq(s.total, NPARTS * PER,
                 "%lld records returned for %d distinct: a clean hand-over "
                 "must not repeat any",
                 (long long)s.total, NPARTS * PER);
    rn_consumer_close(m[1]);
    free(s.count);
    rt_broker_stop(&b);
}

/* ---- A member killed ------------------------------------------------------------------------- */

/* The child: a member that writes "partition offset\n" for every record it
 * is given, as it gets it, until it is killed. */
static void note_start(void *arg, int assigned, const char *topic, int32_t partition);

static void victim(const rt_broker *b, const char *out_path)
{
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0)
        _exit(2);
    rn_conf *conf =
        rt_conf(b, "group.id", "g", "client.id", "victim", "session.timeout.ms", SESSION_MS,
                "heartbeat.interval.ms", HEARTBEAT_MS, "auto.commit.interval.ms", "300",
                "max.poll.records", "10", "fetch.max.wait.ms", "50", NULL);
    rn_consumer *c;
    if (rn_consumer_new(&c, conf) < 0)
        _exit(3);
    const char *topics[] = {"kill"};
    if (rn_consumer_subscribe(c, topics, 1) < 0)
        _exit(4);
    for (;;) {
        const rn_message *msgs;
        int n = rn_consumer_poll(c, 10, &msgs);
        if (n < 0)
            _exit(5);
        char line[64];
        for (int i = 0; i < n; i++) {
            int len = snprintf(line, sizeof(line), "%d %lld\n", msgs[i].partition,
                               (long long)msgs[i].offset);
            if (write(fd, line, (size_t)len) != len)
                _exit(6);
            rt_sleep_ms(2); /* a slow worker: at most 500 records a second */
        }
        if (n == 0)
            rt_sleep_ms(10);
    }
}

typedef struct start_log {
    rn_consumer *c;
    int64_t start[NPARTS]; /* the position each newly given partition starts from */
} start_log;

static void start_log_init(start_log *l, rn_consumer *c)
{
    l->c = c;
    for (int p = 0; p < NPARTS; p++)
        l->start[p] = -1;
    rn_consumer_set_rebalance_cb(c, note_start, l);
}

/* The assigned callback runs once the start position is known. */
static void note_start(void *arg, int assigned, const char *topic, int32_t partition)
{
    start_log *l = arg;
    if (assigned)
        l->start[partition] = rn_consumer_position(l->c, topic, partition);
}

/* Poll the admin client until group has one member holding every partition. */
static void wait_sole_owner(rn_admin *a, const char *group)
{
    int64_t deadline = rt_now_ms() + 15000;
    for (;;) {
        rn_group_desc *d;
        int rc = rn_admin_describe_group(a, group, &d);
        cr_assert(rc == 0 || rc == -RN_E_UNKNOWN_GROUP, "%s", rn_admin_errmsg(a));
        bool ok = rc == 0 && d->n_members == 1 && d->n_partitions == NPARTS;
        for (size_t i = 0; ok && i < d->n_partitions; i++)
            ok = d->partitions[i].member_id[0] != 0;
        if (rc == 0)
            rn_admin_group_free(d);
        if (ok)
            return;
        cr_assert(rt_now_ms() < deadline, "group %s never had a sole owner", group);
        rt_sleep_ms(20);
    }
}

// kill -9 of a member: after its session timeout its partitions move to the
// survivor, which resumes from the offsets the dead one committed: every
// record is read, and the only ones read twice are those after the dead
// member's last commit.
Test(groups, killed_member_partitions_move, .timeout = 60)
{
    enum { PER = 1500 };
    rt_broker b;
    rt_broker_with_topic(&b, "kill", NPARTS);
    produce_each(&b, "kill", PER);
    char out_path[128];
    snprintf(out_path, sizeof(out_path), "%s/victim.out", b.dir);

    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        victim(&b, out_path); /* never returns */
        _exit(0);
    }
    rn_admin *a = rt_admin(&b);
    /* The victim first, alone with every partition, then the survivor. */
    wait_sole_owner(a, "g");
    seen s;
    seen_init(&s, PER);
    start_log sl;
    rn_consumer *m[1];
    m[0] = member_new(&b, "g", "kill", "survivor", "max.poll.records", "10");
    start_log_init(&sl, m[0]);
    /* Balanced: the survivor holds 3, so the victim holds the other 3. */
    int64_t deadline = rt_now_ms() + 15000;
    for (;;) {
        poll_all(m, 1, &s, 10);
        int owner[NPARTS];
        owners(m, 1, owner);
        if (owned_by(owner, 0) == NPARTS / 2)
            break;
        cr_assert(rt_now_ms() < deadline, "the survivor never got its share");
    }
    int before[NPARTS];
    owners(m, 1, before);
    int64_t t_run = rt_now_ms();
    while (rt_now_ms() - t_run < 1000) {
        poll_all(m, 1, &s, 10);
        rt_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    int64_t t_kill = rt_now_ms();
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st), "the victim exited on its own (status %d)", WEXITSTATUS(st));

    /* Take-over: the survivor holds all six. */
    int64_t took = -1;
    deadline = rt_now_ms() + 15000;
    while (took < 0) {
        cr_assert(rt_now_ms() < deadline, "the dead member's partitions never moved");
        poll_all(m, 1, &s, 10);
        int owner[NPARTS];
        owners(m, 1, owner);
        if (owned_by(owner, 0) == NPARTS)
            took = rt_now_ms() - t_kill;
    }
    fprintf(stderr,
            "groups: kill -9: the survivor held the dead member's partitions %lld ms after the "
            "kill (session.timeout.ms %s, heartbeat.interval.ms %s, broker tick 200 ms)\n",
            (long long)took, SESSION_MS, HEARTBEAT_MS);
    /* The session, not the closed connection, ends the membership: a broker
     * that evicted on close would move them within a tick (200 ms). The session
     * runs from the victim's last heartbeat, which on a loaded machine can be
     * well before the kill (seen: 998 ms), so the bound is loose; how soon after
     * is printed, not asserted (the loop's 15 s deadline is the liveness bound). */
    cr_assert(took >= 500, "moved after %lld ms: on the close, not at the session's end",
              (long long)took);
    /* What the victim committed. Read after the take-over, not right after the
     * kill: a commit the victim sent just before it died may still sit in the
     * broker's socket buffer and land after a describe made at once (seen on a
     * loaded machine: partition 0 restarted at 150 where the early describe
     * said 110). By the take-over, the broker has read the dead connection to
     * its end. */
    rn_group_desc *d;
    cr_assert_eq(rn_admin_describe_group(a, "g", &d), 0, "%s", rn_admin_errmsg(a));
    int64_t committed[NPARTS];
    for (int p = 0; p < NPARTS; p++)
        committed[p] = -1;
    for (size_t i = 0; i < d->n_partitions; i++)
        committed[d->partitions[i].partition] = d->partitions[i].committed_offset;
    rn_admin_group_free(d);

    /* The survivor reads on to the end of every partition. */
    deadline = rt_now_ms() + 30000;
    for (int p = 0; p < NPARTS;) {
        if (rn_consumer_position(m[0], "kill", p) == PER) {
            p++;
            continue;
        }
        cr_assert(rt_now_ms() < deadline, "the survivor is at %lld in partition %d",
                  (long long)rn_consumer_position(m[0], "kill", p), p);
        poll_all(m, 1, &s, 10);
    }
    rn_consumer_close(m[0]);
    rn_admin_free(a);

    /* The victim's record of what it got. */
    FILE *f = fopen(out_path, "r");
    cr_assert_not_null(f);
    int64_t victim_n = 0, dups = 0;
    int64_t victim_last[NPARTS];
    for (int p = 0; p < NPARTS; p++)
        victim_last[p] = -1;
    int vp;
    long long vo;
    int *vcount = calloc((size_t)NPARTS * PER, sizeof(int));
    while (fscanf(f, "%d %lld", &vp, &vo) == 2) {
        cr_assert(vp >= 0 && vp < NPARTS && vo >= 0 && vo < PER);
        cr_assert_eq(vcount[vp * PER + vo], 0, "the victim got %d/%lld twice", vp, vo);
        vcount[vp * PER + vo]++;
        victim_n++;
        if (vo > victim_last[vp])
            victim_last[vp] = vo;
    }
    fclose(f);
    cr_assert(victim_n > 0, "the victim read nothing");
    for (int p = 0; p < NPARTS; p++) {
        for (int o = 0; o < PER; o++) {
            int total = s.count[p * PER + o] + vcount[p * PER + o];
            cr_assert(total >= 1, "partition %d offset %d was never read", p, o);
            cr_assert(s.count[p * PER + o] <= 1, "the survivor got %d/%d twice", p, o);
            if (total > 1) {
                dups++;
                /* Only the uncommitted window: from the last commit on. */
                cr_assert(o >= committed[p], "%d/%d read twice, below the commit %lld", p, o,
                          (long long)committed[p]);
            }
        }
        if (before[p] == 0)
            continue; /* the survivor's own */
        /* The victim's partitions start again at its last commit. */
        cr_assert(committed[p] >= 0, "the victim never committed partition %d", p);
        cr_assert_eq(sl.start[p], committed[p], "partition %d restarted at %lld, committed %lld", p,
                     (long long)sl.start[p], (long long)committed[p]);
        cr_assert(committed[p] <= victim_last[p] + 1);
    }
    fprintf(stderr,
            "groups: kill -9: %d records produced, the victim read %lld, the survivor %lld; %lld "
            "read twice (the victim's uncommitted window)\n",
            NPARTS * PER, (long long)victim_n, (long long)s.total, (long long)dups);
    /* The window is one auto-commit interval (300 ms) of a ~500 records/s
     * reader; without commits it would be everything the victim read. A victim
     * starved by a loaded machine reads a handful in all (seen: 8, none
     * committed past): the per-record check above still holds, this one only
     * means something over a real run. */
    if (victim_n >= 200)
        cr_assert(dups < victim_n / 2, "%lld duplicates of %lld", (long long)dups,
                  (long long)victim_n);
    free(vcount);
    free(s.count);
    rt_broker_stop(&b);
}

/* ---- Offsets, lag, admin --------------------------------------------------------------------- */

// Committed offsets and lag: with records N per partition and the member at
// M_p, describe shows CURRENT-OFFSET M_p, LOG-END-OFFSET N, LAG N - M_p and
// the member as owner; after close the owner is gone and the figures stay.
Test(groups, commit_and_lag_in_describe, .timeout = 60)
{
    enum { PER = 100 };
    rt_broker b;
    rt_broker_with_topic(&b, "lag", NPARTS);
    produce_each(&b, "lag", PER);
    rn_consumer *m[1];
    m[0] = member_new(&b, "lagg", "lag", "lag-client", "enable.auto.commit", "false");
    wait_balanced(m, 1, NULL, NPARTS, 10000);
    /* Nothing committed yet. */
    int64_t off;
    cr_assert_eq(rn_consumer_committed(m[0], "lag", 0, &off), 0, "%s", rn_consumer_errmsg(m[0]));
    cr_assert_eq(off, -1);
    for (int p = 0; p < NPARTS; p++)
        cr_assert_eq(rn_consumer_seek(m[0], "lag", p, 10 * p + 5), 0, "%s",
                     rn_consumer_errmsg(m[0]));
    cr_assert_eq(rn_consumer_commit(m[0]), 0, "%s", rn_consumer_errmsg(m[0]));
    cr_assert_eq(rn_consumer_committed(m[0], "lag", 3, &off), 0);
    cr_assert_eq(off, 35);

    rn_admin *a = rt_admin(&b);
    rn_group_desc *d;
    cr_assert_eq(rn_admin_describe_group(a, "lagg", &d), 0, "%s", rn_admin_errmsg(a));
    cr_assert_str_eq(d->group_id, "lagg");
    cr_assert_eq(d->n_members, 1);
    cr_assert_eq(d->n_partitions, NPARTS);
    for (size_t i = 0; i < d->n_partitions; i++) {
        const rn_group_partition *gp = &d->partitions[i];
        cr_assert_str_eq(gp->topic, "lag");
        cr_assert_eq(gp->partition, (int32_t)i, "rows are sorted by partition");
        cr_assert_eq(gp->committed_offset, 10 * (int64_t)i + 5);
        cr_assert_eq(gp->log_end_offset, PER);
        cr_assert_eq(gp->lag, PER - (10 * (int64_t)i + 5));
        cr_assert(gp->member_id[0], "partition %zu has no owner", i);
        cr_assert_str_eq(gp->client_id, "lag-client");
        cr_assert(gp->host[0], "no host");
    }
    rn_admin_group_free(d);
    /* While it has a member, the group can be neither reset nor deleted. */
    const char *topics[] = {"lag"};
    int32_t parts[] = {0};
    int64_t offs[] = {0};
    cr_assert_eq(rn_admin_commit_offsets(a, "lagg", topics, parts, offs, 1), -RN_E_GROUP_NOT_EMPTY);
    cr_assert_eq(rn_admin_delete_group(a, "lagg"), -RN_E_GROUP_NOT_EMPTY);

    /* Auto-commit is off: close commits nothing more (positions unchanged anyway). */
    rn_consumer_close(m[0]);
    cr_assert_eq(rn_admin_describe_group(a, "lagg", &d), 0, "%s", rn_admin_errmsg(a));
    cr_assert_eq(d->n_members, 0);
    cr_assert_str_eq(d->state, "Empty");
    for (size_t i = 0; i < d->n_partitions; i++) {
        cr_assert_str_eq(d->partitions[i].member_id, "");
        cr_assert_eq(d->partitions[i].lag, PER - (10 * (int64_t)i + 5));
    }
    rn_admin_group_free(d);

    /* An admin commit (reset) of an empty group, listed, then deleted. */
    offs[0] = 99;
    cr_assert_eq(rn_admin_commit_offsets(a, "lagg", topics, parts, offs, 1), 0, "%s",
                 rn_admin_errmsg(a));
    cr_assert_eq(rn_admin_describe_group(a, "lagg", &d), 0);
    cr_assert_eq(d->partitions[0].committed_offset, 99);
    cr_assert_eq(d->partitions[0].lag, 1);
    rn_admin_group_free(d);
    rn_group_listing *gl;
    size_t ng;
    cr_assert_eq(rn_admin_list_groups(a, &gl, &ng), 0, "%s", rn_admin_errmsg(a));
    bool found = false;
    for (size_t i = 0; i < ng; i++)
        if (!strcmp(gl[i].group_id, "lagg")) {
            found = true;
            cr_assert_str_eq(gl[i].state, "Empty");
            cr_assert_eq(gl[i].members, 0);
        }
    free(gl);
    cr_assert(found, "lagg not listed");
    cr_assert_eq(rn_admin_delete_group(a, "lagg"), 0, "%s", rn_admin_errmsg(a));
    cr_assert_eq(rn_admin_describe_group(a, "lagg", &d), -RN_E_UNKNOWN_GROUP);
    cr_assert_eq(rn_admin_delete_group(a, "lagg"), -RN_E_UNKNOWN_GROUP);
    rn_admin_free(a);
    rt_broker_stop(&b);
}

// Auto-commit on close: a member reads part of a topic and closes; a new
// member of the same group starts where it stopped, not where
// auto.offset.reset says; a group with nothing committed starts at the end
// with latest and at the beginning by default.
Test(groups, resume_from_commit_and_reset_policy, .timeout = 60)
{
    enum { PER = 200 };
    rt_broker b;
    rt_broker_with_topic(&b, "res", NPARTS);
    produce_each(&b, "res", PER);
    rn_consumer *m[1];
    m[0] = member_new(&b, "r", "res", "r1", "max.poll.records", "50");
    seen s;
    seen_init(&s, PER);
    int64_t deadline = rt_now_ms() + 10000;
    while (s.total < 300) {
        cr_assert(rt_now_ms() < deadline);
        poll_all(m, 1, &s, 20);
    }
    int64_t pos[NPARTS];
    for (int p = 0; p < NPARTS; p++)
        pos[p] = rn_consumer_position(m[0], "res", p);
    rn_consumer_close(m[0]);
    /* The next member starts at the positions the first had (committed on close). */
    m[0] = member_new(&b, "r", "res", "r2", "auto.offset.reset", "latest");
    start_log sl;
    start_log_init(&sl, m[0]);
    wait_balanced(m, 1, NULL, NPARTS, 10000);
    for (int p = 0; p < NPARTS; p++) {
        int64_t want = pos[p];
        int64_t got = sl.start[p];
        cr_assert_eq(got, want, "partition %d starts at %lld, want %lld", p, (long long)got,
                     (long long)want);
    }
    rn_consumer_close(m[0]);
    /* A group with nothing committed: auto.offset.reset decides. */
    m[0] = member_new(&b, "r-latest", "res", "r3", "auto.offset.reset", "latest");
    start_log_init(&sl, m[0]);
    wait_balanced(m, 1, NULL, NPARTS, 10000);
    for (int p = 0; p < NPARTS; p++)
        cr_assert_eq(sl.start[p], PER, "latest: partition %d starts at %lld", p,
                     (long long)sl.start[p]);
    rn_consumer_close(m[0]);
    m[0] = member_new(&b, "r-earliest", "res", "r4", NULL, NULL);
    start_log_init(&sl, m[0]);
    wait_balanced(m, 1, NULL, NPARTS, 10000);
    for (int p = 0; p < NPARTS; p++)
        cr_assert_eq(sl.start[p], 0, "earliest (default): partition %d starts at %lld", p,
                     (long long)sl.start[p]);
    rn_consumer_close(m[0]);
    free(s.count);
    rt_broker_stop(&b);
}

// subscribe needs group.id, refuses a consumer assigned by hand, and a
// subscribed consumer refuses manual assignment.
Test(groups, subscribe_errors, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "e", 2);
    const char *topics[] = {"e"};
    rn_conf *conf = rt_conf(&b, NULL);
    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    cr_assert_eq(rn_consumer_subscribe(c, topics, 1), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(rn_consumer_errmsg(c), "group.id"), "%s", rn_consumer_errmsg(c));
    cr_assert_eq(rn_consumer_commit(c), -RN_E_INVALID_CONFIG);
    rn_consumer_close(c);
    char err[128];
    cr_assert_eq(rn_conf_set(conf, "group.id", "ge", err, sizeof(err)), 0);
    cr_assert_eq(rn_conf_set(conf, "auto.offset.reset", "sideways", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_conf_set(conf, "partition.assignment.strategy", "round", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_conf_set(conf, "partition.assignment.strategy", "range", err, sizeof(err)), 0);
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    cr_assert_eq(rn_consumer_assign(c, "e", 0, 0), 0, "%s", rn_consumer_errmsg(c));
    cr_assert_eq(rn_consumer_subscribe(c, topics, 1), -EINVAL);
    rn_consumer_close(c);
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    cr_assert_eq(rn_consumer_subscribe(c, topics, 1), 0, "%s", rn_consumer_errmsg(c));
    cr_assert_eq(rn_consumer_assign(c, "e", 0, 0), -EINVAL);
    cr_assert_eq(rn_consumer_assign_topic(c, "e", 0), -EINVAL);
    /* Commit before the first poll: not a member yet. */
    cr_assert_eq(rn_consumer_commit(c), -RN_E_UNKNOWN_MEMBER);
    cr_assert_eq(rn_consumer_unsubscribe(c), 0);
    cr_assert_eq(rn_consumer_unsubscribe(c), 0, "a second unsubscribe is a no-op");
    /* Unsubscribed, it may be assigned by hand again. */
    cr_assert_eq(rn_consumer_assign(c, "e", 1, 0), 0, "%s", rn_consumer_errmsg(c));
    rn_consumer_close(c);
    rn_conf_free(conf);
    rt_broker_stop(&b);
}
