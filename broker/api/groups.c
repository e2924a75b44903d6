/*
 * api/groups.c — GroupHeartbeat, CommitOffsets, FetchOffsets, ListGroups,
 * DescribeGroup: the wire side of the group coordinator (broker/coord/groups.h).
 *
 * Each handler turns the protobuf request into a call on b->groups and the
 * answer back into protobuf; no group logic lives here. Everything answers
 * at once except CommitOffsets, which answers when its records in __offsets
 * are durable (the coordinator's callback).
 *
 * Errors: what concerns the whole request (unknown member, fenced epoch,
 * group not empty, __offsets unavailable, storage failure of a commit) is
 * the header's error_code; what concerns one partition of a commit (unknown
 * topic or partition) is that OffsetCommit's error_code, and the others are
 * committed. Request bodies were checked by protocol/frame.c (names, epochs,
 * non-negative partitions and offsets).
 *
 * Answers borrow strings from the request and the coordinator: they are
 * encoded by rn_request_respond before either changes, so nothing is
 * copied. Scratch allocations of one answer go into a small arena freed
 * after it is queued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/coord/groups.h"
#include "broker/meta/metadata.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"

/* ---- Scratch memory of one answer ------------------------------------------------------- */

typedef struct arena {
    void **p;
    size_t n, cap;
    bool oom;
} arena;

/* Zeroed memory for n items of size, freed by arena_free; NULL (and a
 * sticky oom flag) on failure. */
static void *aalloc(arena *a, size_t n, size_t size)
{
    if (a->oom)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void **v = realloc(a->p, cap * sizeof(*v));
        if (!v) {
            a->oom = true;
            return NULL;
        }
        a->p = v;
        a->cap = cap;
    }
    void *m = calloc(n ? n : 1, size);
    if (!m) {
        a->oom = true;
        return NULL;
    }
    a->p[a->n++] = m;
    return m;
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
    *a = (arena){0};
}

/* A sorted partition list as TopicPartitions messages (one per topic). */
static Runnel__TopicPartitions **tps_build(arena *a, const rn_assign_tp *v, size_t n, size_t *n_out)
{
    size_t nt = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(v[i].topic, v[i - 1].topic) != 0)
            nt++;
    *n_out = nt;
    Runnel__TopicPartitions **ptrs = aalloc(a, nt, sizeof(*ptrs));
    Runnel__TopicPartitions *tps = aalloc(a, nt, sizeof(*tps));
    int32_t *parts = aalloc(a, n, sizeof(*parts));
    if (!ptrs || !tps || !parts)
        return NULL;
    size_t t = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(v[i].topic, v[i - 1].topic) != 0) {
            t++;
            runnel__topic_partitions__init(&tps[t]);
            tps[t].topic = (char *)v[i].topic;
            tps[t].partitions = &parts[i];
            ptrs[t] = &tps[t];
        }
        parts[i] = v[i].partition;
        tps[t].n_partitions++;
    }
    return ptrs;
}

/* Every group API first: this broker must coordinate group_id now (the
 * leader of its __offsets partition, its groups loaded); else the answer is
 * NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS,
 * never something from local state (coord/coordinator.h). */
static bool coordinator_ready(rn_request *req, const char *group_id)
{
    char err[300];
    int rc = rn_groups_gate(req->conn->r->b->groups, group_id, err, sizeof(err));
    if (rc == 0)
        return true;
    rn_request_fail(req, rc, err);
    return false;
}

/* ---- FindCoordinator ------------------------------------------------------------------------ */

void rn_handle_find_coordinator(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    const char *group = req->fr.hdr->find_coordinator->group_id;
    int32_t node = -1;
    char endpoint[256] = "";
    int32_t part = 0;
    if (!b->quorum) {
        /* A single node leads everything: itself, as Metadata says. */
        node = b->cfg.node_id;
        snprintf(endpoint, sizeof(endpoint), "%s",
                 b->cfg.advertised_listener[0] ? b->cfg.advertised_listener : b->cfg.listen);
    } else {
        const rn_topic_info *t = rn_metadata_find(b->md, RN_OFFSETS_TOPIC);
        part = t ? rn_coord_partition(group, t->n_partitions) : -1;
        if (t && t->partitions && part >= 0) {
            node = t->partitions[part].leader;
            const rn_broker_info *bi = node >= 0 ? rn_metadata_broker(b->md, node) : NULL;
            if (bi && bi->endpoint && !bi->fenced)
                snprintf(endpoint, sizeof(endpoint), "%s", bi->endpoint);
            else
                node = -1;
        }
    }
    char err[300];
    if (node < 0) {
        snprintf(err, sizeof(err), "%s-%d has no leader", RN_OFFSETS_TOPIC, part);
        rn_request_fail(req, -RN_E_COORDINATOR_NOT_AVAILABLE, err);
        return;
    }
    /* The leader is this broker: answer only once it has loaded the groups. */
    if (node == b->cfg.node_id) {
        int rc = rn_groups_gate(b->groups, group, err, sizeof(err));
        if (rc < 0) {
            rn_request_fail(req, -RN_E_COORDINATOR_NOT_AVAILABLE, err);
            return;
        }
    }
    Runnel__FindCoordinatorResponse r = RUNNEL__FIND_COORDINATOR_RESPONSE__INIT;
    r.node_id = node;
    r.partition = part;
    char host[256] = "";
    unsigned port = 0;
    if (endpoint[0]) {
        char *colon = strrchr(endpoint, ':');
        if (colon) {
            *colon = 0;
            snprintf(host, sizeof(host), "%s", endpoint);
            port = (unsigned)strtoul(colon + 1, NULL, 10);
        }
    }
    r.host = host;
    r.port = port;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FIND_COORDINATOR;
    h.find_coordinator = &r;
    rn_request_respond(req, &h, NULL, 0);
}

/* ---- GroupHeartbeat ---------------------------------------------------------------------- */

void rn_handle_group_heartbeat(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__GroupHeartbeatRequest *q = req->fr.hdr->group_heartbeat;
    if (!coordinator_ready(req, q->group_id))
        return;
    arena a = {0};
    size_t n_owned = 0;
    for (size_t i = 0; i < q->n_owned; i++)
        n_owned += q->owned[i]->n_partitions;
    rn_assign_tp *owned = aalloc(&a, n_owned, sizeof(*owned));
    if (!owned) {
        arena_free(&a);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < q->n_owned; i++)
        for (size_t j = 0; j < q->owned[i]->n_partitions; j++)
            owned[k++] = (rn_assign_tp){q->owned[i]->topic, q->owned[i]->partitions[j]};

    rn_group_heartbeat hb = {.group_id = q->group_id,
                             .member_id = q->member_id,
                             .member_epoch = q->member_epoch,
                             .client_id = q->client_id,
                             .host = rn_request_peer(req),
                             .topics = (const char *const *)q->subscribed_topics,
                             .n_topics = q->n_subscribed_topics,
                             .assignor = q->assignor,
                             .owned = owned,
                             .n_owned = n_owned,
                             .session_timeout_ms = q->session_timeout_ms};
    rn_group_heartbeat_result res;
    char err[256];
    int rc = rn_groups_heartbeat(b->groups, &hb, rn_now_ms(), &res, err, sizeof(err));
    if (rc < 0) {
        arena_free(&a);
        rn_request_fail(req, rc, err);
        return;
    }
    Runnel__GroupHeartbeatResponse r = RUNNEL__GROUP_HEARTBEAT_RESPONSE__INIT;
    r.member_id = (char *)res.member_id;
    r.member_epoch = res.member_epoch;
    r.heartbeat_interval_ms = res.heartbeat_interval_ms;
    r.assignment = tps_build(&a, res.assignment, res.n_assignment, &r.n_assignment);
    if (a.oom) {
        free(res.assignment);
        arena_free(&a);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_GROUP_HEARTBEAT;
    h.group_heartbeat = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(res.assignment);
    arena_free(&a);
}

/* ---- CommitOffsets ------------------------------------------------------------------------- */

typedef struct commit_state {
    rn_request *req;
    size_t n;
    rn_group_commit *c;
} commit_state;

static void commit_answer(commit_state *st, int err)
{
    rn_request *req = st->req;
    req->state = NULL;
    if (err < 0) {
        /* A failed append is the log's business; the client sees STORAGE_ERROR. */
        int code = err == -ENOMEM || err == -RN_E_MESSAGE_TOO_LARGE ? err : -RN_E_STORAGE_ERROR;
        char msg[160];
        snprintf(msg, sizeof(msg), "commit not written to %s: %s", RN_OFFSETS_TOPIC,
                 rn_strerror(err));
        rn_request_fail(req, code, msg);
        return;
    }
    Runnel__CommitOffsetsRequest *q = req->fr.hdr->commit_offsets;
    Runnel__OffsetCommit *oc = calloc(st->n ? st->n : 1, sizeof(*oc));
    Runnel__OffsetCommit **ptrs = calloc(st->n ? st->n : 1, sizeof(*ptrs));
    if (!oc || !ptrs) {
        free(oc);
        free(ptrs);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < st->n; i++) {
        runnel__offset_commit__init(&oc[i]);
        oc[i].topic = q->offsets[i]->topic;
        oc[i].partition = q->offsets[i]->partition;
        oc[i].offset = q->offsets[i]->offset;
        oc[i].error_code = st->c[i].error_code;
        ptrs[i] = &oc[i];
    }
    Runnel__CommitOffsetsResponse r = RUNNEL__COMMIT_OFFSETS_RESPONSE__INIT;
    r.n_offsets = st->n;
    r.offsets = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_COMMIT_OFFSETS;
    h.commit_offsets = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(oc);
    free(ptrs);
}

static void commit_free(commit_state *st)
{
    free(st->c);
    free(st);
}

static void commit_done(void *arg, int err)
{
    commit_state *st = arg;
    commit_answer(st, err);
    commit_free(st);
}

void rn_handle_commit_offsets(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__CommitOffsetsRequest *q = req->fr.hdr->commit_offsets;
    if (!coordinator_ready(req, q->group_id))
        return;
    commit_state *st = calloc(1, sizeof(*st));
    if (st)
        st->c = calloc(q->n_offsets ? q->n_offsets : 1, sizeof(*st->c));
    if (!st || !st->c) {
        free(st);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    st->req = req;
    st->n = q->n_offsets;
    for (size_t i = 0; i < st->n; i++) {
        Runnel__OffsetCommit *o = q->offsets[i];
        st->c[i] = (rn_group_commit){o->topic, o->partition, o->offset, o->metadata, 0};
    }
    char err[256];
    int rc = rn_groups_commit(b->groups, q->group_id, q->member_id, q->member_epoch, st->c, st->n,
                              rn_now_ms(), commit_done, st, err, sizeof(err));
    if (rc < 0) {
        commit_free(st);
        rn_request_fail(req, rc, err);
        return;
    }
    if (rc == 1) { /* nothing to write: every offset was refused, or none given */
        commit_answer(st, 0);
        commit_free(st);
        return;
    }
    req->state = st;
}

/* ---- FetchOffsets ---------------------------------------------------------------------------- */

static void offset_fill(Runnel__OffsetCommit *oc, const char *topic, int32_t partition,
                        const rn_offset_entry *e)
{
    runnel__offset_commit__init(oc);
    oc->topic = (char *)topic;
    oc->partition = partition;
    oc->offset = e ? e->offset : -1;
    oc->metadata = e ? e->metadata : (char *)"";
}

void rn_handle_fetch_offsets(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__FetchOffsetsRequest *q = req->fr.hdr->fetch_offsets;
    if (!coordinator_ready(req, q->group_id))
        return;
    const rn_offsets *o = rn_groups_offsets(b->groups);
    if (!o) {
        rn_request_fail(req, -RN_E_STORAGE_ERROR, RN_OFFSETS_TOPIC " could not be loaded");
        return;
    }
    size_t n_all;
    const rn_offset_entry *all = rn_offsets_entries(o, q->group_id, &n_all);
    /* Count first: a topic listed without partitions means all it has committed. */
    size_t n = q->n_partitions ? 0 : n_all;
    for (size_t i = 0; i < q->n_partitions; i++) {
        Runnel__TopicPartitions *tp = q->partitions[i];
        if (tp->n_partitions) {
            n += tp->n_partitions;
            continue;
        }
        for (size_t k = 0; k < n_all; k++)
            n += strcmp(all[k].topic, tp->topic) == 0;
    }
    arena a = {0};
    Runnel__OffsetCommit *oc = aalloc(&a, n, sizeof(*oc));
    Runnel__OffsetCommit **ptrs = aalloc(&a, n, sizeof(*ptrs));
    if (!oc || !ptrs) {
        arena_free(&a);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    size_t k = 0;
    if (q->n_partitions == 0)
        for (size_t i = 0; i < n_all; i++)
            offset_fill(&oc[k++], all[i].topic, all[i].partition, &all[i]);
    for (size_t i = 0; i < q->n_partitions; i++) {
        Runnel__TopicPartitions *tp = q->partitions[i];
        for (size_t j = 0; j < tp->n_partitions; j++)
            offset_fill(&oc[k++], tp->topic, tp->partitions[j],
                        rn_offsets_find(o, q->group_id, tp->topic, tp->partitions[j]));
        if (tp->n_partitions == 0)
            for (size_t e = 0; e < n_all; e++)
                if (strcmp(all[e].topic, tp->topic) == 0)
                    offset_fill(&oc[k++], all[e].topic, all[e].partition, &all[e]);
    }
    for (size_t i = 0; i < k; i++)
        ptrs[i] = &oc[i];
    Runnel__FetchOffsetsResponse r = RUNNEL__FETCH_OFFSETS_RESPONSE__INIT;
    r.n_offsets = k;
    r.offsets = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH_OFFSETS;
    h.fetch_offsets = &r;
    rn_request_respond(req, &h, NULL, 0);
    arena_free(&a);
}

/* ---- ListGroups ---------------------------------------------------------------------------------
 */

void rn_handle_list_groups(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    if (!coordinator_ready(req, NULL))
        return;
    rn_group_info *v;
    size_t n;
    if (rn_groups_list(b->groups, &v, &n) < 0) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    arena a = {0};
    Runnel__GroupListing *gl = aalloc(&a, n, sizeof(*gl));
    Runnel__GroupListing **ptrs = aalloc(&a, n, sizeof(*ptrs));
    if (!gl || !ptrs) {
        free(v);
        arena_free(&a);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        runnel__group_listing__init(&gl[i]);
        gl[i].group_id = (char *)v[i].group_id;
        gl[i].state = (char *)v[i].state;
        gl[i].members = (uint32_t)v[i].n_members;
        ptrs[i] = &gl[i];
    }
    Runnel__ListGroupsResponse r = RUNNEL__LIST_GROUPS_RESPONSE__INIT;
    r.n_groups = n;
    r.groups = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_LIST_GROUPS;
    h.list_groups = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(v);
    arena_free(&a);
}

/* ---- DescribeGroup ------------------------------------------------------------------------------
 */

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* One lag row: committed offset, high watermark, lag and owner. */
static void lag_fill(rn_broker *b, const char *group, Runnel__GroupPartitionLag *l,
                     const char *topic, int32_t partition, const rn_offsets *o)
{
    runnel__group_partition_lag__init(l);
    l->topic = (char *)topic;
    l->partition = partition;
    const rn_offset_entry *e = o ? rn_offsets_find(o, group, topic, partition) : NULL;
    rn_partition *p = rn_partition_find(b, topic, partition);
    l->committed_offset = e ? e->offset : -1;
    l->log_end_offset = -1;
    if (p) { /* lag: the owner's published high watermark */
        int64_t lso, leo;
        rn_partition_offsets(p, &lso, &l->log_end_offset, &leo);
    }
    l->lag = -1;
    if (e && p)
        l->lag = l->log_end_offset > e->offset ? l->log_end_offset - e->offset : 0;
    const char *owner = rn_groups_owner(b->groups, group, topic, partition);
    l->member_id = (char *)(owner ? owner : "");
}

void rn_handle_describe_group(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__DescribeGroupRequest *q = req->fr.hdr->describe_group;
    if (!coordinator_ready(req, q->group_id))
        return;
    rn_group_info info;
    int rc = rn_groups_describe(b->groups, q->group_id, &info);
    if (rc < 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "group %s has no members and no committed offsets", q->group_id);
        rn_request_fail(req, rc, rc == -RN_E_UNKNOWN_GROUP ? msg : NULL);
        return;
    }
    const rn_offsets *o = rn_groups_offsets(b->groups);
    arena a = {0};
    Runnel__GroupMemberDescription *md = aalloc(&a, info.n_members, sizeof(*md));
    Runnel__GroupMemberDescription **mptrs = aalloc(&a, info.n_members, sizeof(*mptrs));

    /* The topics to show: every member's subscriptions and every committed one. */
    size_t n_committed = 0;
    const rn_offset_entry *committed = o ? rn_offsets_entries(o, q->group_id, &n_committed) : NULL;
    size_t n_names = n_committed;
    for (size_t i = 0; md && mptrs && i < info.n_members; i++) {
        rn_group_member_info mi;
        if (rn_groups_member(b->groups, q->group_id, i, &mi) < 0)
            break;
        runnel__group_member_description__init(&md[i]);
        md[i].member_id = (char *)mi.member_id;
        md[i].client_id = (char *)mi.client_id;
        md[i].host = (char *)mi.host;
        md[i].member_epoch = mi.member_epoch;
        md[i].subscribed_topics = (char **)mi.topics;
        md[i].n_subscribed_topics = mi.n_topics;
        md[i].assignment = tps_build(&a, mi.given, mi.n_given, &md[i].n_assignment);
        mptrs[i] = &md[i];
        n_names += mi.n_topics;
    }
    const char **names = aalloc(&a, n_names, sizeof(*names));
    size_t k = 0;
    for (size_t i = 0; names && i < n_committed; i++)
        names[k++] = committed[i].topic;
    for (size_t i = 0; names && i < info.n_members; i++)
        for (size_t t = 0; t < md[i].n_subscribed_topics; t++)
            names[k++] = md[i].subscribed_topics[t];
    if (names)
        qsort(names, k, sizeof(*names), cmp_str);
    size_t nn = 0;
    for (size_t i = 0; i < k; i++)
        if (nn == 0 || strcmp(names[nn - 1], names[i]) != 0)
            names[nn++] = names[i];
    /* Existing topics: every partition. Deleted ones: what was committed. */
    size_t n_rows = 0;
    for (size_t i = 0; i < nn; i++) {
        rn_topic_state *ts = rn_topic_state_find(b, names[i]);
        if (ts)
            n_rows += (size_t)ts->n_partitions;
        else
            for (size_t e = 0; e < n_committed; e++)
                n_rows += strcmp(committed[e].topic, names[i]) == 0;
    }
    Runnel__GroupPartitionLag *lag = aalloc(&a, n_rows, sizeof(*lag));
    Runnel__GroupPartitionLag **lptrs = aalloc(&a, n_rows, sizeof(*lptrs));
    if (a.oom) {
        arena_free(&a);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    size_t r = 0;
    for (size_t i = 0; i < nn; i++) {
        rn_topic_state *ts = rn_topic_state_find(b, names[i]);
        if (ts) {
            for (int32_t p = 0; p < ts->n_partitions; p++)
                lag_fill(b, q->group_id, &lag[r++], ts->name, p, o);
            continue;
        }
        for (size_t e = 0; e < n_committed; e++)
            if (strcmp(committed[e].topic, names[i]) == 0)
                lag_fill(b, q->group_id, &lag[r++], committed[e].topic, committed[e].partition, o);
    }
    for (size_t i = 0; i < r; i++)
        lptrs[i] = &lag[i];

    Runnel__DescribeGroupResponse d = RUNNEL__DESCRIBE_GROUP_RESPONSE__INIT;
    d.group_id = (char *)info.group_id;
    d.state = (char *)info.state;
    d.group_epoch = info.group_epoch;
    d.assignor = (char *)info.assignor;
    d.n_members = info.n_members;
    d.members = mptrs;
    d.n_partitions = r;
    d.partitions = lptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_DESCRIBE_GROUP;
    h.describe_group = &d;
    rn_request_respond(req, &h, NULL, 0);
    arena_free(&a);
}

/* ---- DeleteGroup ---------------------------------------------------------------------- */

static void group_deleted(void *arg, int err)
{
    rn_request *req = arg;
    if (err) {
        rn_request_fail(req, err, NULL);
        return;
    }
    Runnel__DeleteGroupResponse dr = RUNNEL__DELETE_GROUP_RESPONSE__INIT;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_DELETE_GROUP;
    h.delete_group = &dr;
    rn_request_respond(req, &h, NULL, 0);
}

void rn_handle_delete_group(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    const char *group = req->fr.hdr->delete_group->group_id;
    if (!coordinator_ready(req, group))
        return;
    int rc = rn_groups_delete(b->groups, group, group_deleted, req);
    if (rc < 0)
        rn_request_fail(req, rc, NULL);
    else if (rc == 1)
        group_deleted(req, 0);
}
