/*
 * test_group_member.c — the group member state machine alone (sans-I/O): a
 * made-up clock and hand-built GroupHeartbeat answers drive it through join,
 * assignment, revocation before re-assignment, fencing and rejoin, leave, the
 * coordinator's heartbeat interval, an unknown member id, and epochs that go
 * backwards. Deterministic: no broker, no sockets, no sleeps.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/group_member.h"

static const rn_member_conf CONF = {
    .max_interval_ms = 3000,
    .default_interval_ms = 3000,
    .session_timeout_ms = 10000,
    .retry_backoff_ms = 100,
};

/* A heartbeat answer: member id, epoch, interval and "topic:partition"
 * pairs of one topic (enough for these tests). */
typedef struct answer {
    Runnel__GroupHeartbeatResponse r;
    Runnel__TopicPartitions tp;
    Runnel__TopicPartitions *tpp[1];
    int32_t parts[8];
} answer;

static void make_answer(answer *a, const char *id, int32_t epoch, uint32_t interval,
                        const char *topic, const int32_t *parts, size_t n)
{
    runnel__group_heartbeat_response__init(&a->r);
    runnel__topic_partitions__init(&a->tp);
    a->r.member_id = (char *)id;
    a->r.member_epoch = epoch;
    a->r.heartbeat_interval_ms = interval;
    memcpy(a->parts, parts, n * sizeof(*parts));
    a->tp.topic = (char *)topic;
    a->tp.partitions = a->parts;
    a->tp.n_partitions = n;
    a->tpp[0] = &a->tp;
    a->r.assignment = a->tpp;
    a->r.n_assignment = n ? 1 : 0;
}

/* Send the heartbeat that is due (checking it is), returning its gen. */
static uint32_t send_hb(rn_member *m, int64_t now, rn_member_req *out)
{
    cr_assert(rn_member_heartbeat_due(m, now), "a heartbeat is due at %lld", (long long)now);
    cr_assert_eq(rn_member_request(m, out), 0);
    rn_member_sent(m, now, true);
    cr_assert_not(rn_member_heartbeat_due(m, now), "only one heartbeat in flight");
    return rn_member_gen(m);
}

/* Send the heartbeat that is due without looking at it. */
static uint32_t send_only(rn_member *m, int64_t now)
{
    rn_member_req q;
    uint32_t gen = send_hb(m, now, &q);
    rn_member_request_fini(&q);
    return gen;
}

/* The partitions of topic t a request says the member owns, in order. */
static size_t owned_of(const rn_member_req *q, int32_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < q->req.n_owned; i++)
        for (size_t j = 0; j < q->req.owned[i]->n_partitions; j++)
            out[n++] = q->req.owned[i]->partitions[j];
    return n;
}

/* Apply every change as a caller would, all of it succeeding. */
static void apply_all(rn_member *m, int64_t now, rn_member_changes *ch)
{
    for (size_t i = 0; i < ch->n_revoke; i++)
        rn_member_revoked(m, ch->revoke[i].topic, ch->revoke[i].partition, now);
    for (size_t i = 0; i < ch->n_assign; i++)
        cr_assert_eq(rn_member_assigned(m, ch->assign[i].topic, ch->assign[i].partition), 0);
}

static rn_member joined(int64_t *now, const int32_t *parts, size_t n)
{
    rn_member m;
    rn_member_init(&m, &CONF);
    const char *topics[] = {"orders"};
    cr_assert_eq(rn_member_subscribe(&m, topics, 1, *now), 0);
    uint32_t gen = send_only(&m, *now);
    answer a;
    make_answer(&a, "m-1", 1, 0, "orders", parts, n);
    cr_assert_eq(rn_member_step(&m, gen, *now, 0, &a.r), RN_MEMBER_OK);
    rn_member_changes ch;
    cr_assert_eq(rn_member_changes_take(&m, &ch), 0);
    apply_all(&m, *now, &ch);
    rn_member_changes_fini(&ch);
    return m;
}

// A join is epoch 0 with no member id; the answer names the member, sets its
// epoch and gives partitions, which the next heartbeat reports as owned.
Test(group_member, join_then_assignment)
{
    rn_member m;
    rn_member_init(&m, &CONF);
    cr_assert_not(rn_member_heartbeat_due(&m, 0), "nothing to do before subscribe");
    const char *topics[] = {"orders", "payments"};
    cr_assert_eq(rn_member_subscribe(&m, topics, 2, 1000), 0);
    rn_member_req q;
    uint32_t gen = send_hb(&m, 1000, &q);
    cr_assert_str_eq(q.req.member_id, "");
    cr_assert_eq(q.req.member_epoch, 0);
    cr_assert_eq(q.req.n_subscribed_topics, 2);
    cr_assert_str_eq(q.req.subscribed_topics[1], "payments");
    cr_assert_eq(q.req.n_owned, 0);
    rn_member_request_fini(&q);

    answer a;
    int32_t give[] = {2, 0};
    make_answer(&a, "m-1", 5, 0, "orders", give, 2);
    cr_assert_eq(rn_member_step(&m, gen, 1010, 0, &a.r), RN_MEMBER_OK);
    cr_assert_str_eq(rn_member_id(&m), "m-1");
    cr_assert_eq(rn_member_epoch(&m), 5);
    cr_assert(rn_member_has_changes(&m));
    rn_member_changes ch;
    cr_assert_eq(rn_member_changes_take(&m, &ch), 0);
    cr_assert_eq(ch.n_revoke, 0);
    cr_assert_eq(ch.n_assign, 2);
    cr_assert_str_eq(ch.assign[0].topic, "orders");
    cr_assert_eq(ch.assign[0].partition, 2);
    cr_assert_eq(ch.assign[1].partition, 0);
    apply_all(&m, 1010, &ch);
    rn_member_changes_fini(&ch);
    cr_assert_not(rn_member_has_changes(&m));

    /* No coordinator interval: ours (3000 ms). Owned is sorted, one topic. */
    cr_assert_not(rn_member_heartbeat_due(&m, 4009));
    gen = send_hb(&m, 4010, &q);
    cr_assert_str_eq(q.req.member_id, "m-1");
    cr_assert_eq(q.req.member_epoch, 5);
    cr_assert_eq(q.req.n_owned, 1);
    int32_t owned[8];
    cr_assert_eq(owned_of(&q, owned), 2);
    cr_assert_eq(owned[0], 0);
    cr_assert_eq(owned[1], 2);
    rn_member_request_fini(&q);
    (void)gen;
    rn_member_fini(&m);
}

// A partition moving away is revoked first and the heartbeat that follows
// (due at once) no longer owns it; a partition added later is assigned only
// by the answer that lists it.
Test(group_member, revoke_before_reassign)
{
    int64_t now = 1000;
    int32_t p012[] = {0, 1, 2};
    rn_member m = joined(&now, p012, 3);

    now += 3000;
    rn_member_req q;
    uint32_t gen = send_only(&m, now);
    answer a;
    int32_t p02[] = {0, 2};
    make_answer(&a, "m-1", 1, 100, "orders", p02, 2);
    cr_assert_eq(rn_member_step(&m, gen, now, 0, &a.r), RN_MEMBER_OK);
    rn_member_changes ch;
    cr_assert_eq(rn_member_changes_take(&m, &ch), 0);
    cr_assert_eq(ch.n_revoke, 1);
    cr_assert_eq(ch.revoke[0].partition, 1);
    cr_assert_eq(ch.n_assign, 0);
    /* Before the caller has given it up, the member still owns it. */
    cr_assert_not(rn_member_heartbeat_due(&m, now + 50), "interval 100 ms, not yet");
    rn_member_revoked(&m, ch.revoke[0].topic, ch.revoke[0].partition, now + 50);
    rn_member_changes_fini(&ch);
    /* The revocation is acknowledged at once, not after the interval. */
    gen = send_hb(&m, now + 50, &q);
    int32_t owned[8];
    cr_assert_eq(owned_of(&q, owned), 2);
    cr_assert_eq(owned[0], 0);
    cr_assert_eq(owned[1], 2);
    rn_member_request_fini(&q);

    /* The coordinator then bumps the epoch and gives 3. */
    int32_t p023[] = {0, 2, 3};
    make_answer(&a, "m-1", 2, 100, "orders", p023, 3);
    cr_assert_eq(rn_member_step(&m, gen, now + 60, 0, &a.r), RN_MEMBER_OK);
    cr_assert_eq(rn_member_changes_take(&m, &ch), 0);
    cr_assert_eq(ch.n_revoke, 0);
    cr_assert_eq(ch.n_assign, 1);
    cr_assert_eq(ch.assign[0].partition, 3);
    rn_member_changes_fini(&ch);
    cr_assert_eq(rn_member_epoch(&m), 2);
    rn_member_fini(&m);
}

// FENCED_MEMBER_EPOCH: everything owned must be given up before anything
// else (no heartbeat while fenced), then the member rejoins with epoch 0 and
// its member id, owning nothing.
Test(group_member, fenced_then_rejoin)
{
    int64_t now = 1000;
    int32_t p01[] = {0, 1};
    rn_member m = joined(&now, p01, 2);
    now += 3000;
    rn_member_req q;
    uint32_t gen = send_only(&m, now);
    cr_assert_eq(rn_member_step(&m, gen, now, -RN_E_FENCED_MEMBER_EPOCH, NULL), RN_MEMBER_FENCED);
    cr_assert(rn_member_must_lose(&m, now));
    cr_assert_not(rn_member_heartbeat_due(&m, now + 10000), "lose first (invariant 4)");
    rn_member_lost(&m, now);
    cr_assert_not(rn_member_must_lose(&m, now));
    cr_assert_eq(rn_member_epoch(&m), 0);
    gen = send_hb(&m, now, &q);
    cr_assert_eq(q.req.member_epoch, 0);
    cr_assert_str_eq(q.req.member_id, "m-1");
    cr_assert_eq(q.req.n_owned, 0);
    rn_member_request_fini(&q);
    answer a;
    make_answer(&a, "m-1", 7, 0, "orders", p01, 2);
    cr_assert_eq(rn_member_step(&m, gen, now, 0, &a.r), RN_MEMBER_OK);
    rn_member_changes ch;
    cr_assert_eq(rn_member_changes_take(&m, &ch), 0);
    cr_assert_eq(ch.n_assign, 2, "everything is taken again from scratch");
    rn_member_changes_fini(&ch);
    cr_assert_eq(rn_member_epoch(&m), 7);
    rn_member_fini(&m);
}

// UNKNOWN_MEMBER (the coordinator forgot us, e.g. it restarted) is fencing too.
Test(group_member, unknown_member_id)
{
    int64_t now = 1000;
    int32_t p0[] = {0};
    rn_member m = joined(&now, p0, 1);
    now += 3000;
    rn_member_req q;
    uint32_t gen = send_only(&m, now);
    cr_assert_eq(rn_member_step(&m, gen, now, -RN_E_UNKNOWN_MEMBER, NULL), RN_MEMBER_FENCED);
    cr_assert(rn_member_must_lose(&m, now));
    rn_member_lost(&m, now);
    gen = send_hb(&m, now, &q);
    cr_assert_eq(q.req.member_epoch, 0);
    rn_member_request_fini(&q);
    rn_member_fini(&m);
}

// Leave: epoch -1, owning nothing; afterwards an answer to a heartbeat sent
// before is stale, and a member that never got an id has nothing to leave.
Test(group_member, leave)
{
    rn_member fresh;
    rn_member_init(&fresh, &CONF);
    const char *topics[] = {"orders"};
    cr_assert_eq(rn_member_subscribe(&fresh, topics, 1, 0), 0);
    rn_member_req q;
    cr_assert_eq(rn_member_leave_request(&fresh, &q), 0, "no member id: nothing to send");
    rn_member_request_fini(&q);
    rn_member_fini(&fresh);

    int64_t now = 1000;
    int32_t p01[] = {0, 1};
    rn_member m = joined(&now, p01, 2);
    now += 3000;
    uint32_t gen = send_only(&m, now);
    cr_assert_eq(rn_member_leave_request(&m, &q), 1);
    cr_assert_eq(q.req.member_epoch, -1);
    cr_assert_str_eq(q.req.member_id, "m-1");
    cr_assert_eq(q.req.n_owned, 0);
    rn_member_request_fini(&q);
    rn_member_unsubscribe(&m);
    cr_assert_not(rn_member_subscribed(&m));
    cr_assert_eq(rn_member_epoch(&m), 0);
    cr_assert_str_eq(rn_member_id(&m), "");
    answer a;
    make_answer(&a, "m-1", 3, 0, "orders", p01, 2);
    cr_assert_eq(rn_member_step(&m, gen, now, 0, &a.r), RN_MEMBER_STALE);
    cr_assert_not(rn_member_has_changes(&m));
    cr_assert_not(rn_member_heartbeat_due(&m, now + 100000));
    /* Subscribing again is a new join under a new gen. */
    cr_assert_eq(rn_member_subscribe(&m, topics, 1, now), 0);
    uint32_t gen2 = send_hb(&m, now, &q);
    cr_assert_neq(gen2, gen);
    cr_assert_eq(q.req.member_epoch, 0);
    rn_member_request_fini(&q);
    rn_member_fini(&m);
}

// The coordinator's interval is used (short while partitions move), bounded
// by ours when it is longer; errors retry after the backoff.
Test(group_member, heartbeat_interval_from_the_broker)
{
    int64_t now = 1000;
    int32_t p0[] = {0};
    rn_member m = joined(&now, p0, 1);
    now += 3000;
    rn_member_req q;
    uint32_t gen = send_only(&m, now);
    answer a;
    make_answer(&a, "m-1", 1, 100, "orders", p0, 1);
    cr_assert_eq(rn_member_step(&m, gen, now, 0, &a.r), RN_MEMBER_OK);
    cr_assert_not(rn_member_heartbeat_due(&m, now + 99));
    cr_assert_eq(rn_member_next_timer(&m, now), now + 100);
    gen = send_only(&m, now + 100);
    make_answer(&a, "m-1", 1, 60000, "orders", p0, 1);
    cr_assert_eq(rn_member_step(&m, gen, now + 100, 0, &a.r), RN_MEMBER_OK);
    cr_assert_eq(rn_member_next_timer(&m, now + 100), now + 100 + 3000, "ours bounds it");
    gen = send_only(&m, now + 3100);
    cr_assert_eq(rn_member_step(&m, gen, now + 3100, -RN_E_NOT_LEADER, NULL), RN_MEMBER_RETRY);
    cr_assert_not(rn_member_heartbeat_due(&m, now + 3199));
    cr_assert(rn_member_heartbeat_due(&m, now + 3200));
    /* A heartbeat the transport could not take waits for the backoff too. */
    cr_assert_eq(rn_member_request(&m, &q), 0);
    rn_member_request_fini(&q);
    rn_member_sent(&m, now + 3200, false);
    cr_assert_not(rn_member_heartbeat_due(&m, now + 3299));
    cr_assert(rn_member_heartbeat_due(&m, now + 3300));
    rn_member_fini(&m);
}

// An answer whose epoch is below ours is refused (not applied) and asked
// again; the member keeps its epoch and what it owns.
Test(group_member, epoch_going_backwards_is_refused)
{
    int64_t now = 1000;
    int32_t p01[] = {0, 1};
    rn_member m = joined(&now, p01, 2);
    now += 3000;
    rn_member_req q;
    uint32_t gen = send_only(&m, now);
    answer a;
    make_answer(&a, "m-1", 4, 0, "orders", p01, 2);
    cr_assert_eq(rn_member_step(&m, gen, now, 0, &a.r), RN_MEMBER_OK);
    rn_member_changes ch;
    cr_assert_eq(rn_member_changes_take(&m, &ch), 0);
    rn_member_changes_fini(&ch);
    now += 3000;
    gen = send_only(&m, now);
    int32_t none[] = {0};
    make_answer(&a, "m-1", 3, 0, "orders", none, 0);
    cr_assert_eq(rn_member_step(&m, gen, now, 0, &a.r), RN_MEMBER_STALE);
    cr_assert_eq(rn_member_epoch(&m), 4);
    cr_assert_not(rn_member_has_changes(&m), "nothing revoked by a stale answer");
    cr_assert(rn_member_heartbeat_due(&m, now + 100), "asked again after the backoff");
    gen = send_hb(&m, now + 100, &q);
    int32_t owned[8];
    cr_assert_eq(owned_of(&q, owned), 2);
    rn_member_request_fini(&q);
    rn_member_fini(&m);
}

// No good answer for a whole session while owning partitions: they are lost
// (without a commit), and the member joins again.
Test(group_member, session_lost)
{
    int64_t now = 1000;
    int32_t p0[] = {0};
    rn_member m = joined(&now, p0, 1);
    cr_assert_eq(rn_member_next_timer(&m, now), now + 3000);
    uint32_t gen = send_only(&m, now + 3000);
    cr_assert_eq(rn_member_next_timer(&m, now + 3000), now + 10001, "the session's end");
    cr_assert_not(rn_member_must_lose(&m, now + 10000));
    cr_assert(rn_member_must_lose(&m, now + 10001));
    rn_member_lost(&m, now + 10001);
    cr_assert_eq(rn_member_epoch(&m), 0);
    /* The heartbeat in flight answers at last: it is still this membership's. */
    cr_assert_eq(rn_member_step(&m, gen, now + 10002, -ETIMEDOUT, NULL), RN_MEMBER_RETRY);
    rn_member_fini(&m);
}
