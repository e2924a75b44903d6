/*
 * test_raft.c — single behaviours of the Raft core (broker/meta/raft.c), in
 * etcd's style: build a node in a known state, feed it one message or one
 * tick, look at the ready it gives back. Whole-quorum behaviour under faults
 * is test_raft_sim.c's.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "broker/meta/raft.h"
#include "protocol/errors.h"

static const int32_t VOTERS3[] = {1, 2, 3};

/* A PRNG that always says 0: every election timeout is exactly the base. */
static uint64_t zero_rand(void *ctx)
{
    (void)ctx;
    return 0;
}

typedef struct fixture {
    rn_raft_quorum_state st;
    rn_raft_entry ents[16];
    int n;
} fixture;

/* A node with the given durable state and a log of entries with these epochs. */
static rn_raft *node(int32_t id, const int32_t *epochs, int n_entries, int32_t epoch,
                     int32_t voted_for, int32_t leader, unsigned unsafe)
{
    static const uint8_t payload[] = "x";
    rn_raft_entry ents[16];
    for (int i = 0; i < n_entries; i++)
        ents[i] = (rn_raft_entry){i, epochs[i], RN_RAFT_ENTRY_DATA, 1, payload};
    rn_raft_quorum_state st = {epoch, voted_for, leader};
    rn_raft_config cfg = {
        .node_id = id,
        .voters = VOTERS3,
        .n_voters = 3,
        .election_timeout_ms = 100,
        .fetch_timeout_ms = 200,
        .retry_backoff_ms = 20,
        .max_fetch_entries = 8,
        .rand = zero_rand,
        .now_ms = 0,
        .state = &st,
        .entries = ents,
        .n_entries = n_entries,
        .unsafe_test_flags = unsafe,
    };
    rn_raft *r;
    char err[128];
    int rc = rn_raft_new(&cfg, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    return r;
}

/* Take one ready; copy its messages (entries stay borrowed: use before the
 * next call) and advance. */
typedef struct taken {
    rn_raft_ready rd;
    rn_raft_msg msgs[32];
    int n_msgs;
} taken;

static void take(rn_raft *r, taken *t)
{
    memset(t, 0, sizeof *t);
    t->rd.truncate_to = -1;
    if (!rn_raft_has_ready(r))
        return;
    rn_raft_ready_get(r, &t->rd);
    cr_assert_leq(t->rd.n_msgs, 32);
    if (t->rd.n_msgs) /* msgs may be NULL when there are none */
        memcpy(t->msgs, t->rd.msgs, (size_t)t->rd.n_msgs * sizeof t->msgs[0]);
    t->n_msgs = t->rd.n_msgs;
}

static void done(rn_raft *r, taken *t)
{
    if (t->rd.msgs || t->rd.state_changed || t->rd.n_entries || t->rd.n_committed ||
        t->rd.truncate_to >= 0 || t->rd.snapshot)
        rn_raft_advance(r, &t->rd);
}

static const rn_raft_msg *find(const taken *t, int type, int32_t to)
{
    for (int i = 0; i < t->n_msgs; i++)
        if (t->msgs[i].type == type && (to < 0 || t->msgs[i].to == to))
            return &t->msgs[i];
    return NULL;
}

/* Take r's ready and advance past it, for a ready the test does not look at. */
static void drain(rn_raft *r)
{
    taken t;
    take(r, &t);
    done(r, &t);
}

static rn_raft_msg vote_req(int32_t from, int32_t to, int32_t epoch, bool pre, int64_t last_offset,
                            int32_t last_epoch)
{
    rn_raft_msg m = {0};
    m.type = RN_RAFT_MSG_VOTE_REQ;
    m.from = from;
    m.to = to;
    m.epoch = pre ? epoch - 1 : epoch;
    m.leader_id = RN_RAFT_NONE;
    m.pre_vote = pre;
    m.candidate_epoch = epoch;
    m.last_offset = last_offset;
    m.last_epoch = last_epoch;
    return m;
}

/* Step vote request q into v and return whether v's answer to `to` grants
 * it (an answer must come). */
static bool vote_granted(rn_raft *v, const rn_raft_msg *q, int32_t to)
{
    cr_assert_eq(rn_raft_step(v, q), 0);
    taken t;
    take(v, &t);
    const rn_raft_msg *resp = find(&t, RN_RAFT_MSG_VOTE_RESP, to);
    cr_assert_not_null(resp, "no vote answer to %d", to);
    bool granted = resp->granted;
    done(v, &t);
    return granted;
}

/* Make node 1 (of 3) leader of the epoch after its own by feeding it the
 * grants of voter (a pre-vote, then the vote). */
static void elect(rn_raft *l, int64_t now, int32_t voter)
{
    drain(l);
    rn_raft_tick(l, now);
    drain(l);
    int32_t e = rn_raft_epoch(l);
    rn_raft_msg g = {.type = RN_RAFT_MSG_VOTE_RESP,
                     .from = voter,
                     .to = 1,
                     .epoch = e,
                     .leader_id = RN_RAFT_NONE,
                     .pre_vote = true,
                     .granted = true,
                     .candidate_epoch = e + 1};
    cr_assert_eq(rn_raft_step(l, &g), 0);
    drain(l);
    g.epoch = g.candidate_epoch = e + 1;
    g.pre_vote = false;
    cr_assert_eq(rn_raft_step(l, &g), 0);
    cr_assert_eq(rn_raft_role_of(l), RN_RAFT_LEADER);
}

// A vote is refused to a candidate whose log is behind ours: shorter in the
// same last epoch, or with an older last epoch however long.
Test(raft, vote_refused_to_stale_log)
{
    int32_t epochs[] = {1, 1, 2};
    rn_raft *r = node(1, epochs, 3, 2, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    taken t;
    drain(r);

    rn_raft_msg q = vote_req(2, 1, 3, false, 2, 2); /* same last epoch, shorter */
    cr_assert_not(vote_granted(r, &q, 2));

    q = vote_req(3, 1, 3, false, 10, 1); /* longer but an older last epoch */
    cr_assert_eq(rn_raft_step(r, &q), 0);
    take(r, &t);
    const rn_raft_msg *resp = find(&t, RN_RAFT_MSG_VOTE_RESP, 3);
    cr_assert(resp && !resp->granted);
    cr_assert_eq(t.rd.state.voted_for, RN_RAFT_NONE);
    done(r, &t);

    q = vote_req(3, 1, 3, false, 3, 2); /* as up to date: granted */
    cr_assert(vote_granted(r, &q, 3));
    rn_raft_free(r);
}

// A pre-vote changes no one's epoch or vote: not the prospective's, not the voter's.
Test(raft, prevote_does_not_bump_epoch)
{
    rn_raft *r = node(1, NULL, 0, 4, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    taken t;
    drain(r);
    rn_raft_tick(r, 100); /* the election timeout */
    cr_assert_eq(rn_raft_role_of(r), RN_RAFT_PROSPECTIVE);
    cr_assert_eq(rn_raft_epoch(r), 4);
    take(r, &t);
    cr_assert(!t.rd.state_changed);
    const rn_raft_msg *pv = find(&t, RN_RAFT_MSG_VOTE_REQ, 2);
    cr_assert(pv && pv->pre_vote && pv->candidate_epoch == 5 && pv->epoch == 4);
    done(r, &t);

    /* The voter side: grants, stays in its epoch, stores nothing. */
    rn_raft *v = node(2, NULL, 0, 4, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    drain(v);
    rn_raft_msg q = vote_req(1, 2, 5, true, 0, 0);
    cr_assert_eq(rn_raft_step(v, &q), 0);
    take(v, &t);
    const rn_raft_msg *resp = find(&t, RN_RAFT_MSG_VOTE_RESP, 1);
    cr_assert(resp && resp->granted && resp->pre_vote);
    cr_assert(!t.rd.state_changed);
    cr_assert_eq(rn_raft_epoch(v), 4);
    done(v, &t);

    /* With the grant of a majority the prospective becomes a candidate and
     * only now bumps its epoch and votes for itself, durably. */
    rn_raft_msg g = *resp;
    cr_assert_eq(rn_raft_step(r, &g), 0);
    cr_assert_eq(rn_raft_role_of(r), RN_RAFT_CANDIDATE);
    take(r, &t);
    cr_assert(t.rd.state_changed && t.rd.state.epoch == 5 && t.rd.state.voted_for == 1);
    const rn_raft_msg *real = find(&t, RN_RAFT_MSG_VOTE_REQ, 3);
    cr_assert(real && !real->pre_vote && real->candidate_epoch == 5);
    done(r, &t);
    rn_raft_free(r);
    rn_raft_free(v);
}

// A pre-vote is refused while the voter still hears from its leader, and
// granted once the leader has been silent for the fetch timeout.
Test(raft, prevote_refused_while_leader_alive)
{
    rn_raft *v = node(2, NULL, 0, 4, RN_RAFT_NONE, 3, 0); /* follows 3 */
    taken t;
    take(v, &t);
    cr_assert(find(&t, RN_RAFT_MSG_FETCH_REQ, 3));
    done(v, &t);
    rn_raft_msg fr = {.type = RN_RAFT_MSG_FETCH_RESP,
                      .from = 3,
                      .to = 2,
                      .epoch = 4,
                      .leader_id = 3,
                      .diverging_epoch = -1,
                      .snapshot_end_offset = -1};
    cr_assert_eq(rn_raft_step(v, &fr), 0);
    drain(v);

    rn_raft_msg q = vote_req(1, 2, 5, true, 0, 0);
    cr_assert_not(vote_granted(v, &q, 1));

    rn_raft_tick(v, 250);
    drain(v);
    cr_assert(vote_granted(v, &q, 1));
    rn_raft_free(v);
}

/* Pass every message of a ready from a to b (and only those addressed to b). */
static void relay(rn_raft *a, rn_raft *b, int32_t b_id)
{
    taken t;
    take(a, &t);
    for (int i = 0; i < t.n_msgs; i++)
        if (t.msgs[i].to == b_id)
            cr_assert_eq(rn_raft_step(b, &t.msgs[i]), 0, "%s", rn_raft_errmsg(b));
    done(a, &t);
}

// A follower whose tail diverges truncates, round by round, to the leader's
// log, then takes the leader's entries.
Test(raft, follower_truncates_on_diverging_epoch)
{
    /* Node 1 leads epoch 5 (it comes back resigned; elect it by hand below).
     * Its log: 1 1 3 3. Node 2 follows with 1 1 2 2 2 4 (epochs 2 and 4 were
     * never committed). */
    int32_t le[] = {1, 1, 3, 3};
    int32_t fe[] = {1, 1, 2, 2, 2, 4};
    rn_raft *l = node(1, le, 4, 4, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    rn_raft *f = node(2, fe, 6, 4, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    drain(f);
    /* Elect 1 in epoch 5 with node 3's vote. */
    elect(l, 100, 3);
    cr_assert_eq(rn_raft_log_end(l), 5); /* its LEADER_CHANGE entry */

    /* BeginQuorumEpoch makes 2 a follower that fetches (6, 4). */
    relay(l, f, 2);
    cr_assert_eq(rn_raft_role_of(f), RN_RAFT_FOLLOWER);
    int64_t truncations[4];
    int n_trunc = 0;
    for (int round = 0; round < 10; round++) {
        taken ft;
        take(f, &ft);
        if (ft.rd.truncate_to >= 0)
            truncations[n_trunc++] = ft.rd.truncate_to;
        for (int i = 0; i < ft.n_msgs; i++)
            if (ft.msgs[i].to == 1)
                cr_assert_eq(rn_raft_step(l, &ft.msgs[i]), 0);
        done(f, &ft);
        relay(l, f, 2);
    }
    /* Round 1: epoch 4 unknown to the leader, its largest below is 3, which
     * ends at 4: truncate to 4. Round 2: (4, 2) — epoch 2 is unknown, the
     * largest below is 1, ending at 2: truncate to 2. Then entries. */
    cr_assert_eq(n_trunc, 2);
    cr_assert_eq(truncations[0], 4);
    cr_assert_eq(truncations[1], 2);
    cr_assert_eq(rn_raft_log_end(f), 5);
    cr_assert_eq(rn_raft_hw(l), 5, "the leader commits once its epoch's entry is on 2 of 3");
    rn_raft_free(l);
    rn_raft_free(f);
}

// The leader's largest epoch below ours may end past our own end (our tail
// is of a later epoch it never had): the follower truncates to its own end
// of that epoch, not to its log end — which would change nothing and fetch
// the same answer forever (found by the simulator, seed 5945 with 5 voters).
Test(raft, follower_truncates_a_tail_of_a_later_epoch)
{
    int32_t le[] = {1, 1, 2, 2};
    int32_t fe[] = {1, 1, 3};
    rn_raft *l = node(1, le, 4, 3, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    rn_raft *f = node(2, fe, 3, 3, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    drain(f);
    elect(l, 100, 3);
    relay(l, f, 2); /* BeginQuorumEpoch */

    /* Fetch (3, 3): the leader has no epoch 3; its epoch 2 ends at 4. */
    taken ft;
    take(f, &ft);
    const rn_raft_msg *q = find(&ft, RN_RAFT_MSG_FETCH_REQ, 1);
    cr_assert(q && q->fetch_offset == 3 && q->last_fetched_epoch == 3);
    cr_assert_eq(rn_raft_step(l, q), 0);
    done(f, &ft);
    taken lt;
    take(l, &lt);
    const rn_raft_msg *resp = find(&lt, RN_RAFT_MSG_FETCH_RESP, 2);
    cr_assert(resp && resp->diverging_epoch == 2 && resp->diverging_end_offset == 3);
    cr_assert_eq(rn_raft_step(f, resp), 0, "%s", rn_raft_errmsg(f));
    done(l, &lt);
    take(f, &ft);
    cr_assert_eq(ft.rd.truncate_to, 2, "our epoch <= 2 ends at 2");
    q = find(&ft, RN_RAFT_MSG_FETCH_REQ, 1);
    cr_assert(q && q->fetch_offset == 2 && q->last_fetched_epoch == 1);
    done(f, &ft);
    rn_raft_free(l);
    rn_raft_free(f);
}

// A leader that no majority fetches from within the fetch timeout resigns and
// tells the voters (EndQuorumEpoch).
Test(raft, leader_resigns_under_check_quorum)
{
    rn_raft *l = node(1, NULL, 0, 1, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    elect(l, 100, 2);
    taken t;
    drain(l);
    /* Node 2 keeps fetching until 150; node 3 never does. */
    rn_raft_msg f = {.type = RN_RAFT_MSG_FETCH_REQ,
                     .from = 2,
                     .to = 1,
                     .epoch = 2,
                     .leader_id = 1,
                     .fetch_offset = 0,
                     .last_fetched_epoch = 0};
    rn_raft_tick(l, 150);
    cr_assert_eq(rn_raft_step(l, &f), 0);
    drain(l);
    rn_raft_tick(l, 299);
    cr_assert_eq(rn_raft_role_of(l), RN_RAFT_LEADER, "2 of 3 fetched within the timeout");
    rn_raft_voter_status vs[RN_RAFT_MAX_VOTERS];
    cr_assert_eq(rn_raft_voters_status(l, vs), 3);
    cr_assert(vs[1].id == 2 && vs[1].last_fetch_ms == 150 && vs[1].match == 0);
    cr_assert(vs[2].id == 3 && vs[2].last_fetch_ms == -1);
    rn_raft_tick(l, 350);
    cr_assert_eq(rn_raft_role_of(l), RN_RAFT_RESIGNED);
    cr_assert_eq(rn_raft_voters_status(l, vs), 0, "only a leader reports");
    cr_assert_eq(rn_raft_epoch(l), 2, "resigning does not change the epoch");
    take(l, &t);
    const rn_raft_msg *end = find(&t, RN_RAFT_MSG_END_EPOCH_REQ, 3);
    cr_assert(end && end->n_preferred == 2 && end->preferred[0] == 2,
              "the most caught-up voter is preferred");
    done(l, &t);
    int64_t off;
    cr_assert_eq(rn_raft_propose(l, "x", 1, &off), -RN_E_NOT_LEADER);
    rn_raft_free(l);
}

// The vote grant and the durable state that records it come in one ready, the
// state to be synced before the message is sent; a second candidate in the
// same epoch is refused, also after a restart from that state.
Test(raft, durable_state_precedes_vote_response)
{
    rn_raft *v = node(1, NULL, 0, 1, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    taken t;
    drain(v);
    rn_raft_msg q = vote_req(2, 1, 2, false, 0, 0);
    cr_assert_eq(rn_raft_step(v, &q), 0);
    take(v, &t);
    const rn_raft_msg *resp = find(&t, RN_RAFT_MSG_VOTE_RESP, 2);
    cr_assert(resp && resp->granted);
    cr_assert(t.rd.state_changed);
    cr_assert_eq(t.rd.state.epoch, 2);
    cr_assert_eq(t.rd.state.voted_for, 2);
    rn_raft_quorum_state stored = t.rd.state;
    done(v, &t);

    q = vote_req(3, 1, 2, false, 5, 1);
    cr_assert_not(vote_granted(v, &q, 3));
    rn_raft_free(v);

    /* Restarted from what was stored: still refuses 3 in epoch 2. */
    v = node(1, NULL, 0, stored.epoch, stored.voted_for, stored.leader_id, 0);
    drain(v);
    cr_assert_not(vote_granted(v, &q, 3));
    rn_raft_free(v);
}

static void fetch_at(rn_raft *l, int32_t from, int64_t off, int32_t last_epoch)
{
    rn_raft_msg f = {.type = RN_RAFT_MSG_FETCH_REQ,
                     .from = from,
                     .to = 1,
                     .epoch = rn_raft_epoch(l),
                     .leader_id = 1,
                     .fetch_offset = off,
                     .last_fetched_epoch = last_epoch};
    cr_assert_eq(rn_raft_step(l, &f), 0);
    drain(l);
}

// A new leader does not commit an entry of an older epoch because a majority
// holds it; only once an entry of its own epoch is on a majority (figure 8).
// The test-only switch that plants the bug makes it commit early.
Test(raft, commit_needs_an_entry_of_the_current_epoch)
{
    int32_t epochs[] = {1, 2};
    for (int plant = 0; plant < 2; plant++) {
        rn_raft *l = node(1, epochs, 2, 3, RN_RAFT_NONE, RN_RAFT_NONE,
                          plant ? RN_RAFT_UNSAFE_COMMIT_OLD_EPOCH : 0);
        elect(l, 100, 2); /* epoch 4, LEADER_CHANGE at offset 2 */
        drain(l);
        fetch_at(l, 2, 2, 2); /* 2 holds offsets 0 and 1 (epochs 1, 2) */
        cr_assert_eq(rn_raft_hw(l), plant ? 2 : 0);
        fetch_at(l, 2, 3, 4); /* and now the epoch-4 entry */
        cr_assert_eq(rn_raft_hw(l), 3);
        rn_raft_free(l);
    }
}

// Only the leader takes proposals; the others say who leads.
Test(raft, propose_on_follower_is_refused)
{
    rn_raft *f = node(2, NULL, 0, 3, RN_RAFT_NONE, 1, 0);
    int64_t off;
    cr_assert_eq(rn_raft_propose(f, "x", 1, &off), -RN_E_NOT_LEADER);
    cr_assert_eq(rn_raft_leader(f), 1);
    rn_raft_free(f);
}

// A restored log that is not contiguous, or newer than the stored epoch, is refused.
Test(raft, bad_restored_log_is_refused)
{
    rn_raft_entry ents[2] = {{0, 1, 0, 0, NULL}, {2, 1, 0, 0, NULL}};
    rn_raft_quorum_state st = {1, RN_RAFT_NONE, RN_RAFT_NONE};
    rn_raft_config cfg = {.node_id = 1,
                          .voters = VOTERS3,
                          .n_voters = 3,
                          .election_timeout_ms = 100,
                          .fetch_timeout_ms = 200,
                          .retry_backoff_ms = 20,
                          .max_fetch_entries = 1,
                          .rand = zero_rand,
                          .state = &st,
                          .entries = ents,
                          .n_entries = 2};
    rn_raft *r;
    char err[128];
    cr_assert_eq(rn_raft_new(&cfg, &r, err, sizeof err), -EINVAL);
    cr_assert(strstr(err, "out of order"), "%s", err);
    ents[1].offset = 1;
    ents[1].epoch = 2;
    cr_assert_eq(rn_raft_new(&cfg, &r, err, sizeof err), -EINVAL);
}

// A follower behind the leader's log start is sent to the snapshot, installs
// it (the ready hands it over, with the log to restart at its end) and goes
// on fetching from there.
Test(raft, far_behind_follower_installs_the_snapshot)
{
    int32_t epochs[] = {1, 1, 1, 1, 1, 1};
    rn_raft *l = node(1, epochs, 6, 1, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    elect(l, 100, 2); /* epoch 2, LEADER_CHANGE at 6 */
    taken t;
    drain(l);
    fetch_at(l, 2, 7, 2); /* node 2 holds it all: committed up to 7 */
    cr_assert_eq(rn_raft_hw(l), 7);
    take(l, &t); /* apply */
    cr_assert_eq(t.rd.n_committed, 0, "applied by fetch_at's ready already");
    done(l, &t);
    cr_assert_eq(rn_raft_compact(l, 8, "snap", 4), -EINVAL, "beyond what was applied");
    cr_assert_eq(rn_raft_compact(l, 5, "snap", 4), 0);
    cr_assert_eq(rn_raft_log_start(l), 5);
    take(l, &t);
    cr_assert_eq(t.rd.log_start, 5, "the caller may delete below");
    done(l, &t);

    rn_raft *f = node(3, NULL, 0, 2, RN_RAFT_NONE, 1, 0); /* empty, follows 1 */
    relay(f, l, 1);                                       /* Fetch (0, 0) */
    taken lt;
    take(l, &lt);
    const rn_raft_msg *resp = find(&lt, RN_RAFT_MSG_FETCH_RESP, 3);
    cr_assert(resp && resp->snapshot_end_offset == 5 && resp->snapshot_epoch == 1);
    cr_assert_eq(rn_raft_step(f, resp), 0);
    done(l, &lt);
    taken ft;
    take(f, &ft);
    const rn_raft_msg *q = find(&ft, RN_RAFT_MSG_FETCH_SNAPSHOT_REQ, 1);
    cr_assert(q && q->snapshot_end_offset == 5);
    cr_assert_eq(rn_raft_step(l, q), 0);
    done(f, &ft);
    relay(l, f, 3); /* the snapshot itself */
    take(f, &ft);
    cr_assert(ft.rd.snapshot && ft.rd.snapshot->end_offset == 5 && ft.rd.snapshot->len == 4);
    cr_assert(!memcmp(ft.rd.snapshot->data, "snap", 4));
    q = find(&ft, RN_RAFT_MSG_FETCH_REQ, 1);
    cr_assert(q && q->fetch_offset == 5 && q->last_fetched_epoch == 1);
    cr_assert_eq(rn_raft_step(l, q), 0);
    done(f, &ft);
    relay(l, f, 3); /* entries 5 and 6 */
    cr_assert_eq(rn_raft_log_end(f), 7);
    cr_assert_eq(rn_raft_hw(f), 7);
    rn_raft_free(l);
    rn_raft_free(f);
}

// An observer replicates but never votes, and its fetches do not commit.
Test(raft, observer_neither_votes_nor_commits)
{
    rn_raft *l = node(1, NULL, 0, 1, RN_RAFT_NONE, RN_RAFT_NONE, 0);
    elect(l, 100, 2); /* epoch 2, LEADER_CHANGE at 0 */
    taken t;
    drain(l);
    fetch_at(l, 4, 1, 2); /* node 4 is no voter */
    cr_assert_eq(rn_raft_hw(l), 0, "an observer's copy does not count");
    fetch_at(l, 3, 1, 2);
    cr_assert_eq(rn_raft_hw(l), 1);

    rn_raft *o = node(4, NULL, 0, 2, RN_RAFT_NONE, 1, 0);
    cr_assert(!rn_raft_is_voter(o));
    drain(o);
    rn_raft_msg q = vote_req(2, 4, 3, false, 5, 2);
    cr_assert_eq(rn_raft_step(o, &q), 0);
    take(o, &t);
    const rn_raft_msg *resp = find(&t, RN_RAFT_MSG_VOTE_RESP, 2);
    cr_assert(resp && !resp->granted && resp->error == RN_RAFT_ERR_NOT_VOTER);
    done(o, &t);
    /* It never stands for election, however long it hears nothing. */
    for (int64_t now = 0; now < 5000; now += 50) {
        rn_raft_tick(o, now);
        cr_assert_neq(rn_raft_role_of(o), RN_RAFT_PROSPECTIVE);
        cr_assert_neq(rn_raft_role_of(o), RN_RAFT_CANDIDATE);
        drain(o);
    }
    rn_raft_free(l);
    rn_raft_free(o);
}

// A quorum of one (a single broker) elects itself after one election timeout
// and commits its proposals once they are synced.
Test(raft, single_voter_elects_itself_and_commits)
{
    static const int32_t one[] = {7};
    rn_raft_config cfg = {.node_id = 7,
                          .voters = one,
                          .n_voters = 1,
                          .election_timeout_ms = 100,
                          .fetch_timeout_ms = 200,
                          .retry_backoff_ms = 20,
                          .max_fetch_entries = 8,
                          .rand = zero_rand};
    rn_raft *r;
    char err[128];
    cr_assert_eq(rn_raft_new(&cfg, &r, err, sizeof err), 0, "%s", err);
    rn_raft_tick(r, 99);
    cr_assert_eq(rn_raft_role_of(r), RN_RAFT_UNATTACHED);
    rn_raft_tick(r, 100);
    cr_assert_eq(rn_raft_role_of(r), RN_RAFT_LEADER);
    cr_assert_eq(rn_raft_epoch(r), 1);
    int64_t off;
    cr_assert_eq(rn_raft_propose(r, "abc", 3, &off), 0);
    cr_assert_eq(off, 1, "after the LEADER_CHANGE entry");
    taken t;
    take(r, &t);
    cr_assert(t.rd.state_changed && t.rd.state.epoch == 1 && t.rd.state.leader_id == 7);
    cr_assert_eq(t.rd.n_entries, 2);
    cr_assert_eq(t.rd.hw, 0, "nothing is committed before it is synced");
    done(r, &t);
    take(r, &t);
    cr_assert_eq(t.rd.hw, 2);
    cr_assert_eq(t.rd.n_committed, 2);
    cr_assert_eq(t.rd.committed[1].len, 3);
    cr_assert(!memcmp(t.rd.committed[1].data, "abc", 3));
    done(r, &t);
    cr_assert(!rn_raft_has_ready(r));
    rn_raft_free(r);
}

// EndQuorumEpoch: the resigning leader's preferred successor stands at once
// (no pre-vote wait for its fetch timeout), the others back off by their place.
Test(raft, end_quorum_epoch_lets_the_preferred_successor_stand_first)
{
    rn_raft *first = node(2, NULL, 0, 3, RN_RAFT_NONE, 1, 0);
    rn_raft *second = node(3, NULL, 0, 3, RN_RAFT_NONE, 1, 0);
    rn_raft *v[2] = {first, second};
    taken t;
    for (int i = 0; i < 2; i++) {
        drain(v[i]);
        rn_raft_msg end = {.type = RN_RAFT_MSG_END_EPOCH_REQ,
                           .from = 1,
                           .to = 2 + i,
                           .epoch = 3,
                           .leader_id = 1,
                           .preferred = {2, 3},
                           .n_preferred = 2};
        rn_raft_tick(v[i], 10);
        cr_assert_eq(rn_raft_step(v[i], &end), 0);
        cr_assert_eq(rn_raft_role_of(v[i]), RN_RAFT_UNATTACHED);
        take(v[i], &t);
        cr_assert(t.rd.state_changed && t.rd.state.leader_id == RN_RAFT_NONE);
        cr_assert(find(&t, RN_RAFT_MSG_END_EPOCH_RESP, 1));
        done(v[i], &t);
    }
    rn_raft_tick(first, 10);
    cr_assert_eq(rn_raft_role_of(first), RN_RAFT_PROSPECTIVE);
    rn_raft_tick(second, 10);
    cr_assert_eq(rn_raft_role_of(second), RN_RAFT_UNATTACHED);
    /* The successor's pre-vote is granted by the other voter: no leader is
     * alive any more. */
    take(first, &t);
    const rn_raft_msg *pv = find(&t, RN_RAFT_MSG_VOTE_REQ, 3);
    cr_assert(pv && pv->pre_vote);
    cr_assert_eq(rn_raft_step(second, pv), 0);
    done(first, &t);
    take(second, &t);
    const rn_raft_msg *resp = find(&t, RN_RAFT_MSG_VOTE_RESP, 2);
    cr_assert(resp && resp->granted);
    cr_assert_eq(rn_raft_step(first, resp), 0);
    done(second, &t);
    cr_assert_eq(rn_raft_role_of(first), RN_RAFT_CANDIDATE);
    cr_assert_eq(rn_raft_epoch(first), 4);
    rn_raft_free(first);
    rn_raft_free(second);
}

// A response from a deposed leader of an older epoch changes nothing.
Test(raft, stale_fetch_response_is_ignored)
{
    int32_t epochs[] = {1, 1};
    rn_raft *f = node(2, epochs, 2, 5, RN_RAFT_NONE, 1, 0);
    drain(f);
    static const uint8_t x[] = "y";
    rn_raft_entry e = {2, 4, RN_RAFT_ENTRY_DATA, 1, x};
    rn_raft_msg old = {.type = RN_RAFT_MSG_FETCH_RESP,
                       .from = 3,
                       .to = 2,
                       .epoch = 4,
                       .leader_id = 3,
                       .fetch_offset = 2,
                       .last_fetched_epoch = 1,
                       .hw = 3,
                       .diverging_epoch = -1,
                       .snapshot_end_offset = -1,
                       .entries = &e,
                       .n_entries = 1};
    cr_assert_eq(rn_raft_step(f, &old), 0);
    cr_assert_eq(rn_raft_log_end(f), 2);
    cr_assert_eq(rn_raft_hw(f), 0);
    cr_assert_eq(rn_raft_epoch(f), 5);
    cr_assert_eq(rn_raft_leader(f), 1);
    /* The same answer from our own leader, but to a position we no longer
     * hold (a duplicate), is ignored too. */
    old.from = 1;
    old.epoch = 5;
    old.leader_id = 1;
    old.fetch_offset = 1;
    cr_assert_eq(rn_raft_step(f, &old), 0);
    cr_assert_eq(rn_raft_log_end(f), 2);
    rn_raft_free(f);
}
