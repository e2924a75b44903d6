/*
 * test_groups.c — the consumer group coordinator (broker/coord/groups.c).
 *
 * The coordinator is driven without sockets: a fake environment answers the
 * topic sizes (a table the tests edit to create or grow topics) and hands
 * out a real __offsets log in a mkdtemp directory. A "client" here is what a
 * well-behaved consumer does: it heartbeats with what it owns and, once
 * answered, owns exactly what the answer lists. The invariant every test
 * checks after each step is the one consumers rely on: no partition is
 * owned by two clients at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/groups.h"
#include "broker/logfmt.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"

/* ---- Fixture ----------------------------------------------------------------- */

typedef struct fake_topic {
    char name[32];
    int32_t n;
} fake_topic;

static fake_topic topics[16];
static int n_topics;
static rn_io *io;
static char dir[64];
static rn_log *log_;
static rn_groups *g;

static int32_t fake_partitions(void *arg, const char *topic)
{
    (void)arg;
    for (int i = 0; i < n_topics; i++)
        if (strcmp(topics[i].name, topic) == 0)
            return topics[i].n;
    return -1;
}

static rn_log *fake_log(void *arg, int32_t *epoch)
{
    (void)arg;
    *epoch = 0;
    return log_;
}

static void set_topic(const char *name, int32_t n)
{
    for (int i = 0; i < n_topics; i++)
        if (strcmp(topics[i].name, name) == 0) {
            topics[i].n = n;
            return;
        }
    cr_assert_lt(n_topics, 16);
    snprintf(topics[n_topics].name, sizeof(topics[n_topics].name), "%s", name);
    topics[n_topics++].n = n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void new_coordinator(void)
{
    rn_groups_env env = {fake_partitions, fake_log, NULL, NULL, NULL};
    cr_assert_eq(rn_groups_new(&g, &env), 0);
}

static void setup(void)
{
    rn_logfmt_set_level(RN_WARN); /* joins and removals are info lines */
    n_topics = 0;
    cr_assert_eq(rn_io_new(&io, 64), 0);
    snprintf(dir, sizeof(dir), "/tmp/rn-groups-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    rn_log_config c;
    rn_log_config_default(&c);
    cr_assert_eq(rn_log_open(&log_, io, dir, "__offsets-0", &c, NULL), 0);
    new_coordinator();
}

static void teardown(void)
{
    rn_groups_free(g);
    g = NULL;
    rn_log_close(log_);
    unsigned inflight = rn_io_inflight(io);
    rn_io_free(io);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(inflight, 0);
}

TestSuite(groups, .init = setup, .fini = teardown, .timeout = 60);

/* ---- A well-behaved client ------------------------------------------------------ */

#define MAX_OWNED 64

typedef struct client {
    const char *group;
    char id[160];
    int32_t epoch;
    const char *const *topics;
    size_t n_topics;
    const char *assignor;
    uint32_t session_ms;
    rn_assign_tp owned[MAX_OWNED]; /* topic names are the coordinator's (interned) */
    size_t n_owned;
    uint32_t interval;
    bool alive;
} client;

static client new_client(const char *group, const char *const *t, size_t n)
{
    return (client){.group = group, .topics = t, .n_topics = n};
}

/* One heartbeat at time now; on success the client owns what it was given. */
static int hb(client *c, int64_t now)
{
    rn_group_heartbeat req = {.group_id = c->group,
                              .member_id = c->id,
                              .member_epoch = c->epoch,
                              .client_id = "test",
                              .host = "127.0.0.1:1",
                              .topics = c->topics,
                              .n_topics = c->n_topics,
                              .assignor = c->assignor,
                              .owned = c->owned,
                              .n_owned = c->n_owned,
                              .session_timeout_ms = c->session_ms};
    rn_group_heartbeat_result res;
    char err[256];
    int rc = rn_groups_heartbeat(g, &req, now, &res, err, sizeof(err));
    if (rc < 0)
        return rc;
    snprintf(c->id, sizeof(c->id), "%s", res.member_id);
    c->epoch = res.member_epoch;
    c->interval = res.heartbeat_interval_ms;
    cr_assert_leq(res.n_assignment, MAX_OWNED);
    if (res.n_assignment)
        memcpy(c->owned, res.assignment, res.n_assignment * sizeof(*c->owned));
    c->n_owned = res.n_assignment;
    free(res.assignment);
    c->alive = c->epoch >= 0;
    return 0;
}

static void hb_ok(client *c, int64_t now)
{
    int rc = hb(c, now);
    cr_assert_eq(rc, 0, "heartbeat of %s: %s", c->id, rn_strerror(rc));
}

static void leave(client *c, int64_t now)
{
    c->epoch = -1;
    hb_ok(c, now);
    c->n_owned = 0;
    c->alive = false;
}

static bool owns(const client *c, const char *topic, int32_t p)
{
    for (size_t i = 0; i < c->n_owned; i++)
        if (strcmp(c->owned[i].topic, topic) == 0 && c->owned[i].partition == p)
            return true;
    return false;
}

/* No partition owned by two live clients. */
static void assert_exclusive(client *cs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; cs[i].alive && k < cs[i].n_owned; k++)
            for (size_t j = i + 1; j < n; j++)
                cr_assert(!cs[j].alive ||
                              !owns(&cs[j], cs[i].owned[k].topic, cs[i].owned[k].partition),
                          "%s-%d owned by %s and %s", cs[i].owned[k].topic,
                          cs[i].owned[k].partition, cs[i].id, cs[j].id);
}

static const char *state(const char *group)
{
    rn_group_info info;
    if (rn_groups_describe(g, group, &info) < 0)
        return "Unknown";
    return info.state;
}

static const char *const T[] = {"t"};

/* ---- Membership ------------------------------------------------------------------- */

// The first member joins with an empty id: it gets a UUID, an epoch and every partition.
Test(groups, join_gets_everything)
{
    set_topic("t", 4);
    client a = new_client("g", T, 1);
    hb_ok(&a, 0);
    cr_assert_eq(strlen(a.id), 36, "member id %s", a.id);
    cr_assert_eq(a.id[14], '4');
    cr_assert_geq(a.epoch, 1);
    cr_assert_eq(a.n_owned, 4);
    cr_assert_eq(a.interval, RN_GROUP_HEARTBEAT_MS);
    cr_assert_str_eq(state("g"), "Stable");
    rn_group_info info;
    cr_assert_eq(rn_groups_describe(g, "g", &info), 0);
    cr_assert_eq(info.n_members, 1);
    cr_assert_str_eq(info.assignor, "sticky");
}

// A second member gets a partition only once the first has dropped it: never both at once.
Test(groups, second_member_waits_for_revocation)
{
    set_topic("t", 4);
    client c[2] = {new_client("g", T, 1), new_client("g", T, 1)};
    hb_ok(&c[0], 0);
    int32_t e1 = c[0].epoch;
    hb_ok(&c[1], 10);
    cr_assert_eq(c[1].n_owned, 0, "b got partitions a still owns");
    cr_assert_eq(c[1].interval, RN_GROUP_RECONCILE_MS);
    cr_assert_str_eq(state("g"), "Reconciling");
    assert_exclusive(c, 2);
    /* a is told to keep 2; until it says it dropped the others, its epoch stays. */
    hb_ok(&c[0], 20);
    cr_assert_eq(c[0].n_owned, 2);
    cr_assert_eq(c[0].epoch, e1);
    hb_ok(&c[1], 30);
    cr_assert_eq(c[1].n_owned, 0, "a has not confirmed yet");
    hb_ok(&c[0], 40);
    cr_assert_gt(c[0].epoch, e1);
    hb_ok(&c[1], 50);
    cr_assert_eq(c[1].n_owned, 2);
    assert_exclusive(c, 2);
    hb_ok(&c[0], 60);
    hb_ok(&c[1], 70);
    cr_assert_str_eq(state("g"), "Stable");
    cr_assert_eq(c[0].epoch, c[1].epoch);
    cr_assert_eq(c[0].interval, RN_GROUP_HEARTBEAT_MS);
}

static void settle(client *c, size_t n, int64_t *now)
{
    for (int round = 0; round < 6; round++)
        for (size_t i = 0; i < n; i++)
            if (c[i].alive) {
                hb_ok(&c[i], (*now)++);
                assert_exclusive(c, n);
            }
}

// A member that leaves frees its partitions at once: the other gets them on its next heartbeat.
Test(groups, leave_hands_over_at_once)
{
    set_topic("t", 4);
    client c[2] = {new_client("g", T, 1), new_client("g", T, 1)};
    int64_t now = 0;
    hb_ok(&c[0], now++);
    hb_ok(&c[1], now++);
    settle(c, 2, &now);
    cr_assert_eq(c[0].n_owned, 2);
    leave(&c[1], now++);
    cr_assert_eq(c[1].epoch, -1);
    hb_ok(&c[0], now++);
    cr_assert_eq(c[0].n_owned, 4, "the leaver's partitions were not handed over at once");
    /* Leaving twice, or as a member nobody knows, is fine. */
    c[1].epoch = -1;
    cr_assert_eq(hb(&c[1], now++), 0);
}

// A member that stops heartbeating is removed after its session timeout, not before.
Test(groups, session_timeout_removes_silent_member)
{
    set_topic("t", 4);
    client c[2] = {new_client("g", T, 1), new_client("g", T, 1)};
    c[1].session_ms = 3000;
    int64_t now = 0;
    hb_ok(&c[0], now++);
    hb_ok(&c[1], now++);
    settle(c, 2, &now);
    int64_t last_b = now - 1;
    c[1].alive = false; /* killed: silent from here on */
    rn_groups_tick(g, last_b + 3000);
    rn_group_info info;
    cr_assert_eq(rn_groups_describe(g, "g", &info), 0);
    cr_assert_eq(info.n_members, 2, "removed before its session ran out");
    hb_ok(&c[0], last_b + 3000);
    rn_groups_tick(g, last_b + 3001);
    cr_assert_eq(rn_groups_describe(g, "g", &info), 0);
    cr_assert_eq(info.n_members, 1);
    hb_ok(&c[0], last_b + 3002);
    cr_assert_eq(c[0].n_owned, 4);
    /* Its next heartbeat is refused: it must join again. */
    c[1].alive = true;
    cr_assert_eq(hb(&c[1], last_b + 3003), -RN_E_UNKNOWN_MEMBER);
    rn_groups_tick(g, last_b + 100000);
    cr_assert_eq(rn_groups_describe(g, "g", &info), -RN_E_UNKNOWN_GROUP,
                 "an empty group without offsets is not kept");
    rn_groups_tick(NULL, 0);
}

// Stale epochs are fenced, the previous epoch is accepted (lost answer), bad requests refused.
Test(groups, epochs_and_errors)
{
    set_topic("t", 2);
    client a = new_client("g", T, 1);
    hb_ok(&a, 0);
    client b = new_client("g", T, 1);
    hb_ok(&b, 1);
    hb_ok(&a, 2);
    hb_ok(&a, 3); /* a confirmed: its epoch moved */
    int32_t cur = a.epoch;
    client lost = a;
    lost.epoch = cur - 1; /* as if the answer that moved it was lost */
    cr_assert_eq(hb(&lost, 4), 0);
    cr_assert_eq(lost.epoch, cur);
    client stale = a;
    stale.epoch = cur + 5;
    cr_assert_eq(hb(&stale, 5), -RN_E_FENCED_MEMBER_EPOCH);
    client ghost = a;
    snprintf(ghost.id, sizeof(ghost.id), "nobody");
    cr_assert_eq(hb(&ghost, 6), -RN_E_UNKNOWN_MEMBER);
    client other = a;
    other.group = "other";
    cr_assert_eq(hb(&other, 7), -RN_E_UNKNOWN_MEMBER);
    client bad = new_client("", T, 1);
    cr_assert_eq(hb(&bad, 8), -RN_E_INVALID_REQUEST);
    bad = new_client("g", T, 1);
    bad.assignor = "roundrobin";
    cr_assert_eq(hb(&bad, 9), -RN_E_INVALID_REQUEST);
    memset(bad.id, 'x', 140);
    bad.id[140] = 0;
    bad.assignor = NULL;
    cr_assert_eq(hb(&bad, 10), -RN_E_INVALID_REQUEST);
    /* Joining again with the same id starts over owning nothing, with a new epoch. */
    client again = a;
    again.epoch = 0;
    again.n_owned = 0;
    hb_ok(&again, 11);
    cr_assert_str_eq(again.id, a.id);
    cr_assert_gt(again.epoch, cur);
}

// Subscribed topics that do not exist are ignored until created; new partitions get assigned.
Test(groups, topics_appear_and_grow)
{
    static const char *const sub[] = {"later"};
    client a = new_client("g", sub, 1);
    hb_ok(&a, 0);
    cr_assert_eq(a.n_owned, 0);
    int32_t e = a.epoch;
    set_topic("later", 2);
    hb_ok(&a, 1);
    cr_assert_eq(a.n_owned, 2);
    cr_assert_gt(a.epoch, e);
    set_topic("later", 5);
    hb_ok(&a, 2);
    cr_assert_eq(a.n_owned, 5);
    /* Owned partitions of topics that do not exist are ignored. */
    a.owned[a.n_owned++] = (rn_assign_tp){"nope", 0};
    hb_ok(&a, 3);
    cr_assert_eq(a.n_owned, 5);
}

// The group uses its first member's assignor: range stays range when a sticky member joins.
Test(groups, group_takes_first_members_assignor)
{
    set_topic("t", 5);
    client a = new_client("g", T, 1), b = new_client("g", T, 1);
    a.assignor = "range";
    b.assignor = "sticky";
    int64_t now = 0;
    hb_ok(&a, now++);
    hb_ok(&b, now++);
    rn_group_info info;
    cr_assert_eq(rn_groups_describe(g, "g", &info), 0);
    cr_assert_str_eq(info.assignor, "range");
    client c[2] = {a, b};
    settle(c, 2, &now);
    /* Range in member id order: the smaller id holds t-0..t-2. */
    client *first = strcmp(c[0].id, c[1].id) < 0 ? &c[0] : &c[1];
    cr_assert_eq(first->n_owned, 3);
    cr_assert(owns(first, "t", 0) && owns(first, "t", 2));
}

// Random joins, leaves, kills and heartbeats never give a partition to two clients, and settle
// balanced.
Test(groups, random_membership_keeps_partitions_exclusive)
{
    static const char *const both[] = {"t1", "t2"};
    set_topic("t1", 10);
    set_topic("t2", 7);
    enum { N = 6 };
    client c[N];
    for (int i = 0; i < N; i++) {
        c[i] = new_client("g", both, 2);
        c[i].session_ms = 5000;
    }
    uint64_t seed = 42;
    int64_t now = 0;
    for (int step = 0; step < 3000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(seed >> 33);
        client *x = &c[r % N];
        unsigned what = (r >> 8) % 100;
        now += 5;
        if (!x->alive) {
            if (what < 30) { /* join, as a new member */
                x->id[0] = 0;
                x->epoch = 0;
                x->n_owned = 0;
                hb_ok(x, now);
            }
        } else if (what < 3) {
            leave(x, now);
        } else if (what < 5) {
            x->alive = false; /* killed; the coordinator finds out by timeout */
        } else {
            hb_ok(x, now);
        }
        rn_groups_tick(g, now);
        assert_exclusive(c, N);
    }
    /* Let the dead time out and the living settle. */
    now += 6000;
    for (int i = 0; i < N; i++)
        if (c[i].alive)
            hb_ok(&c[i], now++);
    rn_groups_tick(g, now);
    settle(c, N, &now);
    size_t total = 0, lo = SIZE_MAX, hi = 0, alive = 0;
    for (int i = 0; i < N; i++) {
        if (!c[i].alive)
            continue;
        alive++;
        total += c[i].n_owned;
        lo = c[i].n_owned < lo ? c[i].n_owned : lo;
        hi = c[i].n_owned > hi ? c[i].n_owned : hi;
    }
    cr_assert_gt(alive, 0, "the walk ended with nobody alive: pick another seed");
    cr_assert_eq(total, 17, "%zu of 17 partitions owned once settled", total);
    cr_assert_leq(hi - lo, 1);
    cr_assert_str_eq(state("g"), "Stable");
}

/* ---- Offsets ---------------------------------------------------------------------------- */

typedef struct done {
    bool fired;
    int err;
} done;

static void on_done(void *arg, int err)
{
    done *d = arg;
    d->fired = true;
    d->err = err;
}

static int commit(const char *group, const char *member, int32_t epoch, rn_group_commit *c,
                  size_t n)
{
    done d = {0};
    char err[256];
    int rc = rn_groups_commit(g, group, member, epoch, c, n, 1, on_done, &d, err, sizeof(err));
    if (rc != 0) {
        cr_assert(!d.fired);
        return rc;
    }
    while (!d.fired) {
        cr_assert_gt(rn_io_inflight(io), 0);
        cr_assert_geq(rn_io_run(io, 1), 0);
    }
    return d.err;
}

static int64_t committed(const char *group, const char *topic, int32_t p)
{
    const rn_offsets *o = rn_groups_offsets(g);
    const rn_offset_entry *e = o ? rn_offsets_find(o, group, topic, p) : NULL;
    return e ? e->offset : -1;
}

// Who may commit: members with a current epoch; admin commits only to an empty group.
Test(groups, commit_rules)
{
    set_topic("t", 2);
    client a = new_client("g", T, 1);
    hb_ok(&a, 0);
    rn_group_commit c[] = {{"t", 0, 10, "m", 0}, {"nope", 0, 1, NULL, 0}, {"t", 7, 1, NULL, 0}};
    cr_assert_eq(commit("g", "", 0, c, 1), -RN_E_GROUP_NOT_EMPTY);
    cr_assert_eq(commit("g", NULL, 0, c, 1), -RN_E_GROUP_NOT_EMPTY);
    cr_assert_eq(commit("g", "ghost", a.epoch, c, 1), -RN_E_UNKNOWN_MEMBER);
    cr_assert_eq(commit("g", a.id, a.epoch + 1, c, 1), -RN_E_FENCED_MEMBER_EPOCH);
    cr_assert_eq(commit("g", a.id, 0, c, 1), -RN_E_FENCED_MEMBER_EPOCH);
    cr_assert_eq(committed("g", "t", 0), -1);
    /* Unknown topics and partitions are refused one by one; the rest is written. */
    cr_assert_eq(commit("g", a.id, a.epoch, c, 3), 0);
    cr_assert_eq(c[0].error_code, 0);
    cr_assert_eq(c[1].error_code, RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(c[2].error_code, RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(committed("g", "t", 0), 10);
    cr_assert_eq(commit("g", a.id, a.epoch, &c[1], 2), 1, "nothing to write is done at once");
    /* Once the group is empty, an admin commit (group reset) goes through. */
    leave(&a, 1);
    c[0].offset = 3;
    cr_assert_eq(commit("g", "", 0, c, 1), 0);
    cr_assert_eq(committed("g", "t", 0), 3);
    cr_assert_eq(commit("", "", 0, c, 1), -RN_E_INVALID_REQUEST);
}

// Listing shows live groups and groups that only have offsets; delete tombstones them.
Test(groups, list_describe_delete)
{
    set_topic("t", 2);
    client a = new_client("live", T, 1);
    hb_ok(&a, 0);
    rn_group_commit c = {"t", 1, 5, NULL, 0};
    cr_assert_eq(commit("parked", "", 0, &c, 1), 0);
    cr_assert_eq(commit("live", a.id, a.epoch, &c, 1), 0);
    rn_group_info *v;
    size_t n;
    cr_assert_eq(rn_groups_list(g, &v, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].group_id, "live");
    cr_assert_str_eq(v[0].state, "Stable");
    cr_assert_eq(v[0].n_members, 1);
    cr_assert_str_eq(v[1].group_id, "parked");
    cr_assert_str_eq(v[1].state, "Empty");
    free(v);

    rn_group_member_info mi;
    cr_assert_eq(rn_groups_member(g, "live", 0, &mi), 0);
    cr_assert_str_eq(mi.member_id, a.id);
    cr_assert_str_eq(mi.client_id, "test");
    cr_assert_eq(mi.n_given, 2);
    cr_assert_eq(rn_groups_member(g, "live", 1, &mi), -ERANGE);
    cr_assert_str_eq(rn_groups_owner(g, "live", "t", 1), a.id);
    cr_assert_null(rn_groups_owner(g, "parked", "t", 1));

    done d = {0};
    cr_assert_eq(rn_groups_delete(g, "live", on_done, &d), -RN_E_GROUP_NOT_EMPTY);
    cr_assert_eq(rn_groups_delete(g, "nothing", on_done, &d), -RN_E_UNKNOWN_GROUP);
    cr_assert_eq(rn_groups_delete(g, "parked", on_done, &d), 0);
    while (!d.fired)
        cr_assert_geq(rn_io_run(io, 1), 0);
    cr_assert_eq(d.err, 0);
    cr_assert_eq(committed("parked", "t", 1), -1);
    rn_group_info info;
    cr_assert_eq(rn_groups_describe(g, "parked", &info), -RN_E_UNKNOWN_GROUP);
    cr_assert_eq(rn_groups_list(g, &v, &n), 0);
    cr_assert_eq(n, 1);
    free(v);
}

// Committed offsets come back from the log when a new coordinator loads it (a restart).
Test(groups, offsets_survive_restart)
{
    set_topic("t", 3);
    rn_group_commit c[] = {{"t", 0, 4, NULL, 0}, {"t", 2, 8, "x", 0}};
    cr_assert_eq(commit("g", "", 0, c, 2), 0);
    c[0].offset = 6;
    cr_assert_eq(commit("g", "", 0, c, 1), 0);
    rn_groups_free(g);
    new_coordinator();
    cr_assert_eq(committed("g", "t", 0), -1, "a new coordinator starts empty");
    char err[256];
    cr_assert_eq(rn_groups_load_offsets(g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(committed("g", "t", 0), 6);
    cr_assert_eq(committed("g", "t", 2), 8);
    cr_assert_str_eq(state("g"), "Empty");
}

/* ---- Coordinator gate (coord/coordinator.h) ------------------------------------------------ */

/* What the fake metadata says of __offsets-0; this broker is 1. */
static int32_t fv_leader = 1, fv_epoch = 3;
static bool fv_leading = true;
static rn_groups_cb held_cb; /* the replicated hook's parked commit */
static void *held_arg;

static void fake_view(void *arg, const char *group_id, rn_coord_view *v)
{
    (void)arg;
    (void)group_id;
    *v = (rn_coord_view){.have_partition = true,
                         .self_id = 1,
                         .leader_id = fv_leader,
                         .leader_epoch = fv_epoch,
                         .leading = fv_leading,
                         .loaded_epoch = -1};
}

static void fake_replicated(void *arg, void (*cb)(void *, int), void *cb_arg)
{
    (void)arg;
    held_cb = cb;
    held_arg = cb_arg;
}

// The coordinator serves only while it leads __offsets: a new leadership loads from the log,
// a lost one drops everything, and a commit is acknowledged only once it is replicated.
Test(groups, gate_follows_leadership)
{
    rn_groups_free(g);
    rn_groups_env env = {fake_partitions, fake_log, NULL, fake_view, fake_replicated};
    cr_assert_eq(rn_groups_new(&g, &env), 0);
    fv_leader = 1, fv_epoch = 3, fv_leading = true;
    set_topic("t", 2);
    char err[256];
    cr_assert_eq(rn_groups_gate(g, "g", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_groups_loaded_epoch(g), 3);

    /* A commit: durable here, acknowledged only when the hook says replicated. */
    held_cb = NULL;
    done d = {0};
    rn_group_commit c[] = {{"t", 1, 7, NULL, 0}};
    cr_assert_eq(rn_groups_commit(g, "g", "", 0, c, 1, 1, on_done, &d, err, sizeof(err)), 0, "%s",
                 err);
    while (!held_cb) {
        cr_assert(!d.fired, "acknowledged before it was replicated");
        cr_assert_geq(rn_io_run(io, 1), 0);
    }
    cr_assert(!d.fired);
    cr_assert_eq(committed("g", "t", 1), -1, "served before it was replicated");
    held_cb(held_arg, 0);
    cr_assert(d.fired);
    cr_assert_eq(d.err, 0);
    cr_assert_eq(committed("g", "t", 1), 7);
    /* One the hook refuses (the leadership was lost meanwhile): never applied. */
    held_cb = NULL;
    d = (done){0};
    c[0].offset = 9;
    cr_assert_eq(rn_groups_commit(g, "g", "", 0, c, 1, 1, on_done, &d, err, sizeof(err)), 0);
    while (!held_cb)
        cr_assert_geq(rn_io_run(io, 1), 0);
    held_cb(held_arg, -RN_E_NOT_COORDINATOR);
    cr_assert(d.fired);
    cr_assert_eq(d.err, -RN_E_NOT_COORDINATOR);
    cr_assert_eq(committed("g", "t", 1), 7);

    /* A member joins, then broker 2 takes over: NOT_COORDINATOR, everything dropped. */
    const char *subs[] = {"t"};
    rn_group_heartbeat hb = {.group_id = "g", .member_epoch = 0, .topics = subs, .n_topics = 1};
    rn_group_heartbeat_result res;
    cr_assert_eq(rn_groups_heartbeat(g, &hb, 1, &res, err, sizeof(err)), 0, "%s", err);
    free(res.assignment);
    fv_leader = 2, fv_epoch = 4, fv_leading = false;
    cr_assert_eq(rn_groups_gate(g, "g", err, sizeof(err)), -RN_E_NOT_COORDINATOR);
    cr_assert(strstr(err, "broker 2"), "%s", err);
    cr_assert_eq(rn_groups_loaded_epoch(g), -1);
    cr_assert_eq(committed("g", "t", 1), -1, "nothing is served from local state");

    /* Back to broker 1 at a newer epoch, the role not applied yet: loading. */
    fv_leader = 1, fv_epoch = 5, fv_leading = false;
    cr_assert_eq(rn_groups_gate(g, "g", err, sizeof(err)), -RN_E_COORDINATOR_LOAD_IN_PROGRESS);
    /* Leading: the committed offsets come back from the log, which is the truth
     * on a load (the refused 9 is in this one; a replica whose leader lacked it
     * would have truncated it away); the member must rejoin. */
    fv_leading = true;
    cr_assert_eq(rn_groups_gate(g, "g", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_groups_loaded_epoch(g), 5);
    cr_assert_eq(committed("g", "t", 1), 9);
    rn_group_info info;
    cr_assert_eq(rn_groups_describe(g, "g", &info), 0);
    cr_assert_eq(info.n_members, 0);

    /* No leader: COORDINATOR_NOT_AVAILABLE. */
    fv_leader = -1;
    cr_assert_eq(rn_groups_gate(g, "g", err, sizeof(err)), -RN_E_COORDINATOR_NOT_AVAILABLE);
    fv_leader = 1, fv_epoch = 3, fv_leading = true;
}
