/*
 * test_groups.c — consumer groups and committed offsets against a real runneld.
 *
 * Each test starts its own broker, plays group members over the native
 * protocol (GroupHeartbeat, CommitOffsets, FetchOffsets, ListGroups,
 * DescribeGroup) the way a well-behaved consumer does — it owns exactly
 * what its last answer listed — and stops the broker with SIGTERM,
 * asserting exit 0. What is pinned down: partitions split between members
 * and never owned twice, a clean leave hands over at once, a silent member
 * loses its partitions after its session timeout (and not before),
 * committed offsets and lag survive a restart, and admin commits are only
 * allowed on an empty group.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static it_broker B;

static void setup(void)
{
    itf_start(&B, NULL);
}

static void teardown(void)
{
    itf_teardown(&B);
}

TestSuite(groups, .init = setup, .fini = teardown, .timeout = 90);

/* ---- A member of one topic ---------------------------------------------------- */

typedef struct gm {
    char id[160];
    int32_t epoch;
    int32_t parts[64]; /* owned partitions of the topic, as last answered */
    size_t n;
    uint32_t interval;
    uint32_t session_ms;
} gm;

/* Heartbeat as m (epoch -1 to leave); returns the header's error code, or a
 * negative transport error. */
static int heartbeat(it_conn *c, const char *group, gm *m, const char *topic)
{
    Runnel__TopicPartitions owned = RUNNEL__TOPIC_PARTITIONS__INIT, *op = &owned;
    owned.topic = (char *)topic;
    owned.partitions = m->parts;
    owned.n_partitions = m->n;
    char *topics[] = {(char *)topic};
    Runnel__GroupHeartbeatRequest body = RUNNEL__GROUP_HEARTBEAT_REQUEST__INIT;
    body.group_id = (char *)group;
    body.member_id = m->id;
    body.member_epoch = m->epoch;
    body.client_id = "it";
    body.subscribed_topics = topics;
    body.n_subscribed_topics = 1;
    body.owned = m->n ? &op : NULL;
    body.n_owned = m->n ? 1 : 0;
    body.session_timeout_ms = m->session_ms;
    IT_REQUEST(h, GROUP_HEARTBEAT, group_heartbeat, &body);
    it_resp r;
    int rc = it_call(c, &h, NULL, 0, &r);
    if (rc < 0)
        return rc;
    rc = (int)r.hdr->error_code;
    if (rc == 0) {
        Runnel__GroupHeartbeatResponse *a = r.hdr->group_heartbeat;
        cr_assert_not_null(a);
        snprintf(m->id, sizeof(m->id), "%s", a->member_id);
        m->epoch = a->member_epoch;
        m->interval = a->heartbeat_interval_ms;
        m->n = 0;
        for (size_t i = 0; i < a->n_assignment; i++) {
            cr_assert_str_eq(a->assignment[i]->topic, topic);
            for (size_t k = 0; k < a->assignment[i]->n_partitions; k++) {
                cr_assert_lt(m->n, 64);
                m->parts[m->n++] = a->assignment[i]->partitions[k];
            }
        }
    }
    it_resp_free(&r);
    return rc;
}

static void heartbeat_ok(it_conn *c, const char *group, gm *m, const char *topic)
{
    int rc = heartbeat(c, group, m, topic);
    cr_assert_eq(rc, 0, "heartbeat %s: %d (%s)", m->id, rc,
                 rc > 0 ? rn_strerror(-rc) : strerror(-rc));
}

static void assert_disjoint(const gm *a, const gm *b)
{
    for (size_t i = 0; i < a->n; i++)
        for (size_t k = 0; k < b->n; k++)
            cr_assert_neq(a->parts[i], b->parts[k], "partition %d owned by both %s and %s",
                          a->parts[i], a->id, b->id);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Commit one offset; returns the header error, else the offset's error code. */
static int commit(it_conn *c, const char *group, const gm *m, const char *topic, int32_t p,
                  int64_t offset)
{
    Runnel__OffsetCommit oc = RUNNEL__OFFSET_COMMIT__INIT, *ocp = &oc;
    oc.topic = (char *)topic;
    oc.partition = p;
    oc.offset = offset;
    Runnel__CommitOffsetsRequest body = RUNNEL__COMMIT_OFFSETS_REQUEST__INIT;
    body.group_id = (char *)group;
    body.member_id = m ? (char *)m->id : "";
    body.member_epoch = m ? m->epoch : 0;
    body.offsets = &ocp;
    body.n_offsets = 1;
    IT_REQUEST(h, COMMIT_OFFSETS, commit_offsets, &body);
    it_resp r;
    int rc = it_call(c, &h, NULL, 0, &r);
    if (rc < 0)
        return rc;
    rc = (int)r.hdr->error_code;
    if (rc == 0) {
        cr_assert_eq(r.hdr->commit_offsets->n_offsets, 1);
        rc = (int)r.hdr->commit_offsets->offsets[0]->error_code;
    }
    it_resp_free(&r);
    return rc;
}

/* The committed offset of one partition (-1 none). */
static int64_t fetch_offset(it_conn *c, const char *group, const char *topic, int32_t p)
{
    Runnel__TopicPartitions tp = RUNNEL__TOPIC_PARTITIONS__INIT, *tpp = &tp;
    tp.topic = (char *)topic;
    tp.partitions = &p;
    tp.n_partitions = 1;
    Runnel__FetchOffsetsRequest body = RUNNEL__FETCH_OFFSETS_REQUEST__INIT;
    body.group_id = (char *)group;
    body.partitions = &tpp;
    body.n_partitions = 1;
    IT_REQUEST(h, FETCH_OFFSETS, fetch_offsets, &body);
    it_resp r;
    cr_assert_eq(it_call(c, &h, NULL, 0, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0, "fetch offsets: %s", r.hdr->error_message);
    cr_assert_eq(r.hdr->fetch_offsets->n_offsets, 1);
    int64_t off = r.hdr->fetch_offsets->offsets[0]->offset;
    it_resp_free(&r);
    return off;
}

static int describe(it_conn *c, const char *group, it_resp *r)
{
    Runnel__DescribeGroupRequest body = RUNNEL__DESCRIBE_GROUP_REQUEST__INIT;
    body.group_id = (char *)group;
    IT_REQUEST(h, DESCRIBE_GROUP, describe_group, &body);
    return it_call(c, &h, NULL, 0, r);
}

static Runnel__ListGroupsResponse *list_groups(it_conn *c, it_resp *r)
{
    Runnel__ListGroupsRequest body = RUNNEL__LIST_GROUPS_REQUEST__INIT;
    IT_REQUEST(h, LIST_GROUPS, list_groups, &body);
    cr_assert_eq(it_call(c, &h, NULL, 0, r), 0);
    cr_assert_eq(r->hdr->error_code, 0);
    return r->hdr->list_groups;
}

/* ---- Tests ---------------------------------------------------------------------- */

// Two members split a topic without ever owning a partition twice; a clean leave hands over at
// once.
Test(groups, two_members_split_then_leave)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "t", 4, NULL);
    gm a = {0}, b = {0};
    heartbeat_ok(c, "g", &a, "t");
    cr_assert_eq(a.n, 4);
    cr_assert_gt(a.epoch, 0);
    heartbeat_ok(c, "g", &b, "t");
    cr_assert_eq(b.n, 0, "b was given partitions a still owns");
    for (int i = 0; i < 10 && (a.n != 2 || b.n != 2); i++) {
        heartbeat_ok(c, "g", &a, "t");
        assert_disjoint(&a, &b);
        heartbeat_ok(c, "g", &b, "t");
        assert_disjoint(&a, &b);
    }
    cr_assert_eq(a.n, 2);
    cr_assert_eq(b.n, 2);
    heartbeat_ok(c, "g", &a, "t");
    heartbeat_ok(c, "g", &b, "t");

    it_resp r;
    Runnel__ListGroupsResponse *l = list_groups(c, &r);
    cr_assert_eq(l->n_groups, 1);
    cr_assert_str_eq(l->groups[0]->group_id, "g");
    cr_assert_str_eq(l->groups[0]->state, "Stable");
    cr_assert_eq(l->groups[0]->members, 2);
    it_resp_free(&r);

    cr_assert_eq(describe(c, "g", &r), 0);
    Runnel__DescribeGroupResponse *d = r.hdr->describe_group;
    cr_assert_not_null(d);
    cr_assert_eq(d->n_members, 2);
    cr_assert_str_eq(d->assignor, "sticky");
    cr_assert_eq(d->n_partitions, 4);
    for (size_t i = 0; i < 4; i++) {
        const char *owner = d->partitions[i]->member_id;
        cr_assert(!strcmp(owner, a.id) || !strcmp(owner, b.id), "t-%zu owner '%s'", i, owner);
        cr_assert_eq(d->partitions[i]->lag, -1, "nothing committed yet");
    }
    it_resp_free(&r);

    b.epoch = -1;
    heartbeat_ok(c, "g", &b, "t");
    heartbeat_ok(c, "g", &a, "t");
    cr_assert_eq(a.n, 4, "the leaver's partitions were not handed over at once");
    itf_pass(&B, c);
}

// Commits, fetches, lag and admin commits; committed offsets survive a restart.
Test(groups, offsets_lag_and_restart)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "t", 2, NULL);
    size_t len;
    uint8_t *batch = itf_batch("r", 10, 1700000000000, &len);
    cr_assert_eq(itf_produce(c, "t", 0, batch, len), 0);
    free(batch);

    gm a = {0};
    heartbeat_ok(c, "g", &a, "t");
    cr_assert_eq(commit(c, "g", &a, "t", 0, 4), 0);
    cr_assert_eq(commit(c, "g", &a, "nope", 0, 4), RN_E_UNKNOWN_TOPIC);
    gm stale = a;
    stale.epoch = a.epoch + 7;
    cr_assert_eq(commit(c, "g", &stale, "t", 0, 5), RN_E_FENCED_MEMBER_EPOCH);
    cr_assert_eq(commit(c, "g", NULL, "t", 1, 0), RN_E_GROUP_NOT_EMPTY);
    cr_assert_eq(fetch_offset(c, "g", "t", 0), 4);
    cr_assert_eq(fetch_offset(c, "g", "t", 1), -1);

    it_resp r;
    cr_assert_eq(describe(c, "g", &r), 0);
    Runnel__DescribeGroupResponse *d = r.hdr->describe_group;
    cr_assert_eq(d->n_partitions, 2);
    Runnel__GroupPartitionLag *p0 = d->partitions[0], *p1 = d->partitions[1];
    cr_assert_eq(p0->partition, 0);
    cr_assert_eq(p0->committed_offset, 4);
    cr_assert_eq(p0->log_end_offset, 10);
    cr_assert_eq(p0->lag, 6);
    cr_assert_str_eq(p0->member_id, a.id);
    cr_assert_eq(p1->committed_offset, -1);
    cr_assert_eq(p1->log_end_offset, 0);
    cr_assert_eq(p1->lag, -1);
    it_resp_free(&r);

    /* Empty group: the admin commit (group reset) goes through. */
    a.epoch = -1;
    heartbeat_ok(c, "g", &a, "t");
    cr_assert_eq(commit(c, "g", NULL, "t", 1, 0), 0);

    c = itf_bounce(&B, c);
    cr_assert_eq(fetch_offset(c, "g", "t", 0), 4);
    cr_assert_eq(fetch_offset(c, "g", "t", 1), 0);
    Runnel__ListGroupsResponse *l = list_groups(c, &r);
    cr_assert_eq(l->n_groups, 1);
    cr_assert_str_eq(l->groups[0]->state, "Empty");
    it_resp_free(&r);
    cr_assert_eq(describe(c, "g", &r), 0);
    cr_assert_eq(r.hdr->describe_group->partitions[0]->lag, 6);
    it_resp_free(&r);
    itf_pass(&B, c);
}

// A member that goes silent loses its partitions after its session timeout, not before.
Test(groups, silent_member_times_out)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "t", 2, NULL);
    gm a = {.session_ms = 1000}, b = {.session_ms = 10000};
    heartbeat_ok(c, "g", &a, "t");
    heartbeat_ok(c, "g", &b, "t");
    for (int i = 0; i < 10 && (a.n != 1 || b.n != 1); i++) {
        heartbeat_ok(c, "g", &a, "t");
        heartbeat_ok(c, "g", &b, "t");
    }
    cr_assert_eq(a.n, 1);
    heartbeat_ok(c, "g", &a, "t");
    /* a goes silent now. */
    int64_t t0 = it_now_ms(), took = -1;
    while (it_now_ms() - t0 < 8000) {
        heartbeat_ok(c, "g", &b, "t");
        if (b.n == 2) {
            took = it_now_ms() - t0;
            break;
        }
        sleep_ms(50);
    }
    cr_assert_geq(took, 0, "b never got a's partition");
    cr_assert_geq(took, 900, "a's partition moved after %" PRId64 " ms, before its session ran out",
                  took);
    fprintf(stderr, "takeover after a silent member: %" PRId64 " ms (session 1000 ms)\n", took);
    /* a's next heartbeat is refused: it has to join again. */
    cr_assert_eq(heartbeat(c, "g", &a, "t"), RN_E_UNKNOWN_MEMBER);
    itf_pass(&B, c);
}

// A malformed group request closes the connection; an unknown group is an answer, not an error.
Test(groups, malformed_and_unknown)
{
    it_conn *c = itf_connect(&B);
    it_resp r;
    cr_assert_eq(describe(c, "nobody", &r), 0);
    cr_assert_eq(r.hdr->error_code, RN_E_UNKNOWN_GROUP);
    it_resp_free(&r);
    gm m = {0};
    cr_assert_eq(heartbeat(c, "g", &m, "t"), 0, "join with a topic that does not exist");
    cr_assert_eq(m.n, 0);
    gm bad = {.epoch = 3};
    cr_assert_eq(heartbeat(c, "", &bad, "t"), RN_E_INVALID_REQUEST);
    cr_assert(it_conn_wait_closed(c, 5000), "connection left open after a malformed request");
    itf_pass(&B, c);
}
