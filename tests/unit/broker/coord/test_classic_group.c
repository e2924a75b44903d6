/*
 * test_classic_group.c — Kafka's classic group protocol (broker/coord/classic_group.c),
 * driven without sockets or clocks: each "request" is a waiter whose
 * callback records the answer; times are passed in.
 *
 * What is checked is what Kafka clients rely on: a rebalance answers every
 * member's JoinGroup with the same new generation, only the leader gets the
 * members' metadata, each SyncGroup gets that member's own bytes of the
 * leader's assignment, stale generations and unknown members are refused
 * with the code that makes a client join again, and members that stop
 * heartbeating (or do not rejoin in time) are removed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/classic_group.h"
#include "broker/coord/groups.h"
#include "broker/logfmt.h"
#include "protocol/errors.h"

/* ---- Fixture ------------------------------------------------------------------ */

typedef struct req {
    rn_classic_waiter w; /* first */
    int calls;
    int err;
    int32_t generation;
    char member_id[200], leader[200], protocol[32];
    size_t n_members;
    char members[4][200];
    char meta[4][32];
    char assignment[64];
} req;

static void on_answer(rn_classic_waiter *w, const rn_classic_answer *a)
{
    req *r = (req *)w;
    r->calls++;
    r->err = a->err;
    r->generation = a->generation;
    snprintf(r->member_id, sizeof(r->member_id), "%s", a->member_id);
    snprintf(r->leader, sizeof(r->leader), "%s", a->leader_id);
    snprintf(r->protocol, sizeof(r->protocol), "%s", a->protocol_name ? a->protocol_name : "");
    r->n_members = a->n_members;
    for (size_t i = 0; i < a->n_members && i < 4; i++) {
        snprintf(r->members[i], sizeof(r->members[i]), "%s", a->members[i].member_id);
        snprintf(r->meta[i], sizeof(r->meta[i]), "%.*s", (int)a->members[i].meta_len,
                 (const char *)a->members[i].meta);
    }
    snprintf(r->assignment, sizeof(r->assignment), "%.*s", (int)a->assignment_len,
             (const char *)a->assignment);
}

static rn_classic *cg;
static bool native_says_active;

static bool fake_native(void *arg, const char *group)
{
    (void)arg;
    (void)group;
    return native_says_active;
}

static void setup(void)
{
    rn_logfmt_set_level(RN_WARN);
    native_says_active = false;
    rn_classic_env env = {fake_native, NULL};
    cr_assert_eq(rn_classic_new(&cg, &env), 0);
}

static void teardown(void)
{
    rn_classic_free(cg);
}

TestSuite(classic_group, .init = setup, .fini = teardown);

static req *new_req(void)
{
    req *r = calloc(1, sizeof(*r));
    cr_assert(r);
    r->w.cb = on_answer;
    return r;
}

/* JoinGroup for group "g" with one protocol "range" whose metadata is meta. */
static req *join_full(const char *member, const char *type, const char *proto, const char *meta,
                      bool v4, int64_t now)
{
    req *r = new_req();
    rn_classic_protocol p = {proto, (const uint8_t *)meta, strlen(meta)};
    rn_classic_join_req j = {.group_id = "g",
                             .member_id = member,
                             .client_id = "c",
                             .host = "h",
                             .protocol_type = type,
                             .protocols = &p,
                             .n_protocols = 1,
                             .session_timeout_ms = 10000,
                             .rebalance_timeout_ms = 30000,
                             .require_member_id = v4,
                             .topics = (const char *const[]){"t"},
                             .n_topics = 1};
    rn_classic_join(cg, &j, now, &r->w);
    return r;
}

static req *join(const char *member, const char *meta, int64_t now)
{
    return join_full(member, "consumer", "range", meta, false, now);
}

static req *do_sync(const char *member, int32_t gen, const rn_classic_assignment *a, size_t n,
                    int64_t now)
{
    req *r = new_req();
    rn_classic_sync(cg, "g", member, gen, NULL, NULL, a, n, now, &r->w);
    return r;
}

/* A one-member group at generation 1, stable with assignment "A". */
static void stable_one(char *id, size_t len)
{
    req *j = join("", "subA", 0);
    cr_assert_eq(j->calls, 1);
    cr_assert_eq(j->err, 0);
    snprintf(id, len, "%s", j->member_id);
    rn_classic_assignment a = {.member_id = id, .data = (const uint8_t *)"A", .len = 1};
    req *s = do_sync(id, 1, &a, 1, 0);
    cr_assert_eq(s->calls, 1);
    cr_assert_str_eq(s->assignment, "A");
    free(j);
    free(s);
}

/* ---- Joining ------------------------------------------------------------------ */

// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED with its id; joining with that id
// makes it the leader of generation 1, and the leader gets its own metadata back.
Test(classic_group, v4_join_needs_the_member_id_first)
{
    req *a = join_full("", "consumer", "range", "meta", true, 0);
    cr_assert_eq(a->calls, 1);
    cr_assert_eq(a->err, -RN_E_MEMBER_ID_REQUIRED);
    cr_assert(strncmp(a->member_id, "c-", 2) == 0, "id %s is client id + uuid", a->member_id);
    cr_assert(rn_classic_active(cg, "g"), "a pending id keeps the group");
    req *b = join_full(a->member_id, "consumer", "range", "meta", true, 1);
    cr_assert_eq(b->calls, 1);
    cr_assert_eq(b->err, 0);
    cr_assert_eq(b->generation, 1);
    cr_assert_str_eq(b->leader, a->member_id);
    cr_assert_str_eq(b->protocol, "range");
    cr_assert_eq(b->n_members, 1);
    cr_assert_str_eq(b->meta[0], "meta");
    /* An id the group never handed out is unknown. */
    req *c = join_full("nobody", "consumer", "range", "meta", true, 2);
    cr_assert_eq(c->err, -RN_E_UNKNOWN_MEMBER);
    free(a);
    free(b);
    free(c);
}

// A second member triggers a rebalance: its JoinGroup waits, the first member's heartbeat says
// REBALANCE_IN_PROGRESS, and once it joins again both get generation 2; only the leader gets the
// metadata of both; the follower's SyncGroup waits for the leader's, and each gets its own bytes.
Test(classic_group, two_members_rebalance_and_sync)
{
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    req *jb = join("", "subB", 10);
    cr_assert_eq(jb->calls, 0, "the join waits for the other member");
    cr_assert_eq(rn_classic_heartbeat(cg, "g", a_id, 1, 11), -RN_E_REBALANCE_IN_PROGRESS);
    req *ja = join(a_id, "subA", 12);
    cr_assert_eq(ja->calls, 1);
    cr_assert_eq(jb->calls, 1);
    cr_assert_eq(ja->generation, 2);
    cr_assert_eq(jb->generation, 2);
    cr_assert_str_eq(ja->leader, a_id, "the leader stays the leader");
    cr_assert_str_eq(jb->leader, a_id);
    cr_assert_eq(ja->n_members, 2);
    cr_assert_eq(jb->n_members, 0, "followers get no member list");
    cr_assert_str_eq(ja->meta[0], "subA");
    cr_assert_str_eq(ja->meta[1], "subB");
    char b_id[200];
    snprintf(b_id, sizeof(b_id), "%s", jb->member_id);
    cr_assert_str_eq(ja->members[1], b_id);

    req *sb = do_sync(b_id, 2, NULL, 0, 13);
    cr_assert_eq(sb->calls, 0, "the follower waits for the leader's assignment");
    cr_assert_eq(rn_classic_heartbeat(cg, "g", b_id, 2, 13), 0);
    /* The caller read the consumer protocol's partitions out of the bytes. */
    rn_assign_tp tps_a[] = {{"t", 0}, {"t", 1}}, tps_b[] = {{"t", 2}};
    rn_classic_assignment asg[] = {
        {.member_id = a_id, .data = (const uint8_t *)"parts-a", .len = 7, .tps = tps_a, .n_tps = 2},
        {.member_id = b_id,
         .data = (const uint8_t *)"parts-b",
         .len = 7,
         .tps = tps_b,
         .n_tps = 1}};
    req *sa = do_sync(a_id, 2, asg, 2, 14);
    cr_assert_eq(sa->calls, 1);
    cr_assert_eq(sb->calls, 1);
    cr_assert_str_eq(sa->assignment, "parts-a");
    cr_assert_str_eq(sb->assignment, "parts-b");
    rn_classic_group_info gi;
    cr_assert_eq(rn_classic_describe(cg, "g", &gi), 0);
    cr_assert_str_eq(gi.state, "Stable");
    cr_assert_eq(gi.n_members, 2);
    cr_assert_eq(gi.generation, 2);
    /* Who owns what, for runnel's own describe. */
    cr_assert_str_eq(rn_classic_owner(cg, "g", "t", 1), a_id);
    cr_assert_str_eq(rn_classic_owner(cg, "g", "t", 2), b_id);
    cr_assert_null(rn_classic_owner(cg, "g", "t", 3));
    rn_classic_member_info mi;
    cr_assert_eq(rn_classic_member(cg, "g", 1, &mi), 0);
    cr_assert_str_eq(mi.member_id, b_id);
    cr_assert_eq(mi.n_topics, 1);
    cr_assert_str_eq(mi.topics[0], "t");
    cr_assert_eq(mi.n_tps, 1);
    cr_assert_str_eq(mi.tps[0].topic, "t");
    cr_assert_eq(mi.tps[0].partition, 2);
    /* A SyncGroup after the fact (lost answer) gets the same bytes at once. */
    req *again = do_sync(b_id, 2, NULL, 0, 15);
    cr_assert_eq(again->calls, 1);
    cr_assert_str_eq(again->assignment, "parts-b");
    free(jb);
    free(ja);
    free(sb);
    free(sa);
    free(again);
}

// Stale generations and unknown members get the codes that make a client rejoin.
Test(classic_group, stale_generation_and_unknown_member)
{
    char id[200];
    stable_one(id, sizeof(id));
    cr_assert_eq(rn_classic_heartbeat(cg, "g", id, 1, 1), 0);
    cr_assert_eq(rn_classic_heartbeat(cg, "g", id, 0, 1), -RN_E_ILLEGAL_GENERATION);
    cr_assert_eq(rn_classic_heartbeat(cg, "g", "who", 1, 1), -RN_E_UNKNOWN_MEMBER);
    cr_assert_eq(rn_classic_heartbeat(cg, "nogroup", id, 1, 1), -RN_E_UNKNOWN_MEMBER);
    req *s = do_sync(id, 7, NULL, 0, 1);
    cr_assert_eq(s->err, -RN_E_ILLEGAL_GENERATION);
    req *u = do_sync("who", 1, NULL, 0, 1);
    cr_assert_eq(u->err, -RN_E_UNKNOWN_MEMBER);
    cr_assert_eq(rn_classic_commit_check(cg, "g", id, 1, 1), 0);
    cr_assert_eq(rn_classic_commit_check(cg, "g", id, 2, 1), -RN_E_ILLEGAL_GENERATION);
    cr_assert_eq(rn_classic_commit_check(cg, "g", "who", 1, 1), -RN_E_UNKNOWN_MEMBER);
    cr_assert_eq(rn_classic_commit_check(cg, "g", "", -1, 1), -RN_E_GROUP_NOT_EMPTY,
                 "an admin commit needs an empty group");
    cr_assert_eq(rn_classic_commit_check(cg, "other", "", -1, 1), 0);
    free(s);
    free(u);
}

// A member that stops heartbeating is removed after its session timeout and the group
// rebalances; the current generation may commit while the rebalance is prepared, not while
// the new generation waits for its assignment.
Test(classic_group, session_timeout_evicts)
{
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    req *jb = join("", "subB", 0);
    req *ja = join(a_id, "subA", 0);
    cr_assert_eq(jb->generation, 2);
    char b_id[200];
    snprintf(b_id, sizeof(b_id), "%s", jb->member_id);
    rn_classic_assignment asg[] = {{.member_id = a_id, .data = (const uint8_t *)"a", .len = 1},
                                   {.member_id = b_id, .data = (const uint8_t *)"b", .len = 1}};
    req *sb = do_sync(b_id, 2, NULL, 0, 0);
    req *sa = do_sync(a_id, 2, asg, 2, 0);
    cr_assert_eq(sb->calls, 1);
    /* A heartbeats, B does not. */
    for (int64_t t = 3000; t <= 12000; t += 3000) {
        cr_assert_eq(rn_classic_heartbeat(cg, "g", a_id, 2, t), 0);
        rn_classic_tick(cg, t);
    }
    rn_classic_group_info gi;
    cr_assert_eq(rn_classic_describe(cg, "g", &gi), 0);
    cr_assert_eq(gi.n_members, 1, "B is gone after 10 s without a heartbeat");
    cr_assert_str_eq(gi.state, "PreparingRebalance");
    cr_assert_eq(rn_classic_heartbeat(cg, "g", a_id, 2, 12001), -RN_E_REBALANCE_IN_PROGRESS);
    /* Kafka lets the current generation commit while the rebalance is
     * prepared (what was consumed before the partitions are given up)... */
    cr_assert_eq(rn_classic_commit_check(cg, "g", a_id, 2, 12001), 0);
    req *again = join(a_id, "subA", 12002);
    cr_assert_eq(again->calls, 1);
    cr_assert_eq(again->generation, 3);
    /* ...but not between the new generation and its assignment. */
    cr_assert_eq(rn_classic_commit_check(cg, "g", a_id, 3, 12003), -RN_E_REBALANCE_IN_PROGRESS);
    cr_assert_eq(rn_classic_commit_check(cg, "g", a_id, 2, 12003), -RN_E_ILLEGAL_GENERATION);
    free(jb);
    free(ja);
    free(sb);
    free(sa);
    free(again);
}

// A member that does not join again within the rebalance timeout is removed; the others get
// the new generation at the deadline.
Test(classic_group, rebalance_timeout_removes_stragglers)
{
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    req *jc = join("", "subC", 100);
    cr_assert_eq(jc->calls, 0);
    /* A keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins. */
    for (int64_t t = 3000; t < 30100; t += 3000) {
        cr_assert_eq(rn_classic_heartbeat(cg, "g", a_id, 1, t), -RN_E_REBALANCE_IN_PROGRESS);
        rn_classic_tick(cg, t);
        cr_assert_eq(jc->calls, 0);
    }
    rn_classic_tick(cg, 30100); /* rebalance timeout 30 s after the join at 100 */
    cr_assert_eq(jc->calls, 1);
    cr_assert_eq(jc->err, 0);
    cr_assert_eq(jc->generation, 2);
    cr_assert_str_eq(jc->leader, jc->member_id, "the old leader is gone");
    cr_assert_eq(rn_classic_heartbeat(cg, "g", a_id, 1, 30101), -RN_E_UNKNOWN_MEMBER);
    free(jc);
}

// The leader's SyncGroup must come within the rebalance timeout, or the group starts over
// and the followers waiting are told REBALANCE_IN_PROGRESS.
Test(classic_group, missing_leader_sync_restarts)
{
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    req *jb = join("", "subB", 0);
    req *ja = join(a_id, "subA", 0);
    req *sb = do_sync(jb->member_id, 2, NULL, 0, 1);
    cr_assert_eq(sb->calls, 0);
    rn_classic_tick(cg, 30001);
    cr_assert_eq(sb->calls, 1);
    cr_assert_eq(sb->err, -RN_E_REBALANCE_IN_PROGRESS);
    free(jb);
    free(ja);
    free(sb);
}

// LeaveGroup removes the member at once and the others rebalance; a leave of an unknown member is
// UNKNOWN_MEMBER_ID; the last member leaving drops the group.
Test(classic_group, leave)
{
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    cr_assert_eq(rn_classic_leave(cg, "g", "who", 1), -RN_E_UNKNOWN_MEMBER);
    req *jb = join("", "subB", 0);
    cr_assert_eq(jb->calls, 0);
    /* A leaves instead of joining again: B's join completes with B alone. */
    cr_assert_eq(rn_classic_leave(cg, "g", a_id, 1), 0);
    cr_assert_eq(jb->calls, 1);
    cr_assert_eq(jb->generation, 2);
    cr_assert_str_eq(jb->leader, jb->member_id);
    cr_assert_eq(rn_classic_leave(cg, "g", jb->member_id, 2), 0);
    cr_assert_not(rn_classic_active(cg, "g"));
    cr_assert_eq(rn_classic_count(cg), 0);
    free(jb);
}

// A group is either classic or native; classic members must agree on the protocol type and
// share a protocol; out-of-range session timeouts are refused.
Test(classic_group, inconsistent_protocols)
{
    native_says_active = true;
    req *n = join("", "x", 0);
    cr_assert_eq(n->err, -RN_E_INCONSISTENT_GROUP_PROTOCOL);
    native_says_active = false;
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    req *t = join_full("", "connect", "range", "x", false, 1);
    cr_assert_eq(t->err, -RN_E_INCONSISTENT_GROUP_PROTOCOL, "another protocol type");
    req *p = join_full("", "consumer", "roundrobin", "x", false, 1);
    cr_assert_eq(p->err, -RN_E_INCONSISTENT_GROUP_PROTOCOL, "no protocol in common");
    req *s = new_req();
    rn_classic_protocol pr = {"range", NULL, 0};
    rn_classic_join_req j = {.group_id = "g",
                             .protocol_type = "consumer",
                             .protocols = &pr,
                             .n_protocols = 1,
                             .session_timeout_ms = 10};
    rn_classic_join(cg, &j, 1, &s->w);
    cr_assert_eq(s->err, -RN_E_INVALID_SESSION_TIMEOUT);
    req *e = new_req();
    j.session_timeout_ms = 10000;
    j.group_id = "";
    rn_classic_join(cg, &j, 1, &e->w);
    cr_assert_eq(e->err, -RN_E_INVALID_REQUEST);
    free(n);
    free(t);
    free(p);
    free(s);
    free(e);
}

// A cancelled waiter (its connection closed) never hears back; the others still do, and the
// member it belonged to is removed at the rebalance deadline. Freeing the table with waiters
// linked runs no callback.
Test(classic_group, cancel_and_free_with_waiters)
{
    char a_id[200];
    stable_one(a_id, sizeof(a_id));
    req *jb = join("", "subB", 0);
    rn_classic_cancel(&jb->w);
    req *ja = join(a_id, "subA", 1);
    cr_assert_eq(ja->calls, 0, "B still counts as a member until the deadline");
    rn_classic_tick(cg, 30001);
    cr_assert_eq(jb->calls, 0);
    cr_assert_eq(ja->calls, 1);
    cr_assert_eq(ja->n_members, 1);
    req *jc = join("", "subC", 30002);
    cr_assert_eq(jc->calls, 0);
    rn_classic_free(cg);
    cg = NULL;
    cr_assert_eq(jc->calls, 0);
    rn_classic_cancel(&jc->w); /* after the table: a no-op */
    rn_classic_env env = {fake_native, NULL};
    cr_assert_eq(rn_classic_new(&cg, &env), 0);
    free(jb);
    free(ja);
    free(jc);
}

/* ---- With the native coordinator ---------------------------------------------------- */

static int32_t four_partitions(void *arg, const char *topic)
{
    (void)arg;
    return strcmp(topic, "t") == 0 ? 4 : -1;
}

static rn_log *no_log(void *arg, int32_t *epoch)
{
    (void)arg;
    *epoch = 0;
    return NULL;
}

// The coordinator keeps a group id classic or native: a native heartbeat to a classic group with
// members, and a classic join to a native group with members, are INCONSISTENT_GROUP_PROTOCOL;
// both kinds show in the group listing.
Test(classic_group, native_and_classic_exclude_each_other)
{
    rn_groups_env env = {four_partitions, no_log, NULL, NULL, NULL};
    rn_groups *g;
    cr_assert_eq(rn_groups_new(&g, &env), 0);
    rn_classic *c = rn_groups_classic(g);
    req *k = new_req();
    rn_classic_protocol pr = {"range", NULL, 0};
    rn_classic_join_req j = {.group_id = "kg",
                             .protocol_type = "consumer",
                             .protocols = &pr,
                             .n_protocols = 1,
                             .session_timeout_ms = 10000};
    rn_classic_join(c, &j, 0, &k->w);
    cr_assert_eq(k->err, 0);

    const char *topics[] = {"t"};
    rn_group_heartbeat hb = {.group_id = "kg", .topics = topics, .n_topics = 1};
    rn_group_heartbeat_result res;
    char err[200];
    cr_assert_eq(rn_groups_heartbeat(g, &hb, 0, &res, err, sizeof(err)),
                 -RN_E_INCONSISTENT_GROUP_PROTOCOL);
    hb.group_id = "ng";
    cr_assert_eq(rn_groups_heartbeat(g, &hb, 0, &res, err, sizeof(err)), 0);
    free(res.assignment);
    req *k2 = new_req();
    j.group_id = "ng";
    rn_classic_join(c, &j, 0, &k2->w);
    cr_assert_eq(k2->err, -RN_E_INCONSISTENT_GROUP_PROTOCOL);

    rn_group_info *v;
    size_t n;
    cr_assert_eq(rn_groups_list(g, &v, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].group_id, "kg");
    cr_assert(v[0].classic);
    cr_assert_str_eq(v[0].state, "CompletingRebalance");
    cr_assert_str_eq(v[1].group_id, "ng");
    cr_assert_not(v[1].classic);
    free(v);
    rn_group_info gi;
    cr_assert_eq(rn_groups_describe(g, "kg", &gi), 0);
    cr_assert_eq(gi.n_members, 1);
    rn_group_member_info mi;
    cr_assert_eq(rn_groups_member(g, "kg", 0, &mi), 0);
    cr_assert_str_eq(mi.member_id, k->member_id);
    /* Classic commits check membership before anything is written. */
    rn_group_commit cm = {"t", 0, 5, NULL, 0};
    cr_assert_eq(
        rn_groups_classic_commit(g, "kg", "who", 1, &cm, 1, 0, NULL, NULL, err, sizeof(err)),
        -RN_E_UNKNOWN_MEMBER);
    cr_assert_eq(rn_groups_classic_commit(g, "ng", "", -1, &cm, 1, 0, NULL, NULL, err, sizeof(err)),
                 -RN_E_GROUP_NOT_EMPTY);
    cr_assert_eq(rn_groups_commit(g, "kg", NULL, 0, &cm, 1, 0, NULL, NULL, err, sizeof(err)),
                 -RN_E_GROUP_NOT_EMPTY, "a native admin commit to a live classic group");
    cr_assert_eq(rn_groups_delete(g, "kg", NULL, NULL), -RN_E_GROUP_NOT_EMPTY);
    rn_groups_free(g);
    free(k);
    free(k2);
}
