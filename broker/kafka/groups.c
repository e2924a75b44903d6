/*
 * kafka/groups.c — Kafka's consumer group APIs on runnel's coordinator
 * (see groups.h; docs/kafka.md).
 *
 *   FindCoordinator v0–v4  this node (the coordinator is reactor 0 of the
 *                          node that holds __offsets), advertised as Metadata
 *                          advertises it; transaction coordinators: none
 *   JoinGroup       v0–v5  → rn_classic_join (broker/coord/classic_group.c);
 *   SyncGroup       v0–v3    the answer waits for the rebalance through a
 *   Heartbeat       v0–v3    waiter embedded in the request's context
 *   LeaveGroup      v0–v3
 *   OffsetCommit    v0–v7  → rn_groups_classic_commit: the same __offsets
 *                          records native groups commit
 *   OffsetFetch     v0–v7  → the coordinator's offsets table (v6+ flexible;
 *                          v7's require_stable needs nothing: no transactions)
 *   ListGroups      v0–v2, DescribeGroups v0–v4, DeleteGroups v0–v1
 *                          → rn_groups_list / _describe / _delete: native
 *                          and classic groups alike
 *
 * These run on reactor 0, the coordinator's thread, and call it directly
 * (not through the in-process native client, since the classic protocol has
 * no native request). Every body is parsed whole, with the reader's bounds
 * checks, before anything runs; the strings the coordinator needs are copied
 * into the request's context (gctx), freed with the request.
 *
 * Lifetimes: a JoinGroup/SyncGroup waiter lives in the context; freeing the
 * context (the connection went away) cancels it. A commit or delete in
 * flight on __offsets outlives a request that goes away: its callback gets a
 * small op that the context detaches from (op->req = NULL) when freed.
 *
 * Without a broker (rn_kafka_dry_run) every group API answers
 * COORDINATOR_NOT_AVAILABLE, so the parsers and renderers still run.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/coord/classic_group.h"
#include "broker/coord/groups.h"
#include "broker/kafka/groups.h"
#include "broker/kafka/kafka.h"
#include "broker/meta/metadata.h"
#include "broker/logfmt.h"
#include "protocol/errors.h"

#define NO_AUTH_OPS INT32_MIN

/* ---- The request's own memory ---------------------------------------------------------- */

typedef struct op {
    rn_kreq *req; /* NULL once the request went away */
    int pending;
    int err;
    int16_t *errs; /* DeleteGroups: one per group */
} op;

typedef struct gctx {
    rn_classic_waiter w; /* first: the callback finds the context from it */
    rn_kreq *req;
    void **allocs;
    size_t n_allocs, cap_allocs;
    op *op;
    /* OffsetCommit: what the answer lists back */
    struct ctopic *topics;
    size_t n_topics;
    rn_group_commit *commits;
    size_t n_commits;
    /* DeleteGroups */
    char **names;
    size_t n_names;
} gctx;

typedef struct ctopic {
    char *name;
    size_t first, n; /* commits */
} ctopic;

static void gctx_free(void *p)
{
    gctx *x = p;
    if (!x)
        return;
    rn_classic_cancel(&x->w);
    if (x->op)
        x->op->req = NULL; /* the op frees itself when __offsets answers */
    for (size_t i = 0; i < x->n_allocs; i++)
        free(x->allocs[i]);
    free(x->allocs);
    free(x);
}

static gctx *gctx_new(rn_kreq *req)
{
    gctx *x = calloc(1, sizeof(*x));
    if (x) {
        x->req = req;
        req->ctx = x;
        req->ctx_free = gctx_free;
    }
    return x;
}

static void *galloc(gctx *x, size_t n)
{
    if (x->n_allocs == x->cap_allocs) {
        size_t cap = x->cap_allocs ? x->cap_allocs * 2 : 16;
        void **a = realloc(x->allocs, cap * sizeof(*a));
        if (!a)
            return NULL;
        x->allocs = a;
        x->cap_allocs = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (p)
        x->allocs[x->n_allocs++] = p;
    return p;
}

/* A NUL-terminated copy; a null string is "" (the caller checks for null
 * where it matters). NULL when out of memory. */
static char *gstr(gctx *x, rn_kstr s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = galloc(x, n + 1);
    if (p && n)
        memcpy(p, s.data, n);
    return p;
}

/* The next string of the request, copied (gstr). */
static char *gread(gctx *x, rn_kreader *rd, bool flex)
{
    return gstr(x, rn_kread_str(rd, flex, false));
}

/* The end of a request body: its tagged fields when flexible; then the
 * reader's error, if any bound was crossed on the way (0 when none). */
static int read_end(rn_kreader *rd, bool flex)
{
    if (flex)
        rn_kread_tags(rd);
    return rd->err;
}

/* An array of strings (group ids): its count in *n, copies in *out. */
static int read_names(gctx *x, rn_kreader *rd, bool flex, char ***out, int32_t *n)
{
    *n = rn_kread_array(rd, flex, false, flex ? 1 : 2);
    if (rd->err)
        return rd->err;
    char **v = galloc(x, (size_t)*n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (int32_t i = 0; i < *n && !rd->err; i++)
        if (!(v[i] = gread(x, rd, flex)))
            return -ENOMEM;
    *out = v;
    return 0;
}

/* Kafka's code for rc; "no coordinator here" (no broker behind, shutting
 * down) is COORDINATOR_NOT_AVAILABLE, which clients retry. */
static int16_t code_of(int rc)
{
    return rc == -RN_E_SHUTTING_DOWN ? RN_KAFKA_COORDINATOR_NOT_AVAILABLE : rn_kafka_error(rc);
}

static rn_groups *coordinator(rn_kreq *req)
{
    rn_broker *b = rn_kreq_broker(req);
    return b ? b->groups : NULL;
}

/* This broker must coordinate group now (the leader of its __offsets
 * partition, groups loaded: coord/coordinator.h); 0, or the error every
 * group API answers instead: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
 * COORDINATOR_LOAD_IN_PROGRESS (no broker behind: SHUTTING_DOWN). */
static int gate(rn_kreq *req, const char *group)
{
    rn_groups *g = coordinator(req);
    if (!g)
        return -RN_E_SHUTTING_DOWN;
    char err[300];
    return rn_groups_gate(g, group, err, sizeof(err));
}

/* The classic (JoinGroup) side of the coordinator, NULL without one. */
static rn_classic *classic_coordinator(rn_kreq *req)
{
    rn_groups *g = coordinator(req);
    return g ? rn_groups_classic(g) : NULL;
}

/* A group API's parser and handler, given the request's context, reader,
 * version and flexibility. */
typedef int group_api(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex);

/* Every group API but ListGroups starts here: the request's context, then
 * the API itself. */
static int with_context(rn_kreq *req, group_api *api)
{
    gctx *x = gctx_new(req);
    if (!x)
        return -ENOMEM;
    return api(req, x, &req->body, req->h.api_version, req->h.flexible);
}

/* ---- Writing ----------------------------------------------------------------------------- */

static void write_bytes(rn_kwriter *w, bool flex, const uint8_t *p, size_t n)
{
    if (flex)
        rn_kwrite_uvarint(w, (uint32_t)n + 1);
    else
        rn_kwrite_i32(w, (int32_t)n);
    if (n)
        rn_kwrite_raw(w, p, n);
}

static rn_kstr read_bytes(rn_kreader *rd, bool flex)
{
    return flex ? rn_kread_compact_bytes(rd, false) : rn_kread_bytes(rd, false);
}

/* An answer's start: the response header, then throttle_time_ms (0: no
 * quotas) from API version throttle_from on. NULL (the request answered
 * out of memory) when there is no memory for it. */
/* An array entry of a name (copied) and bytes (borrowed from the request):
 * JoinGroup's protocols, SyncGroup's assignments. -ENOMEM or 0. */
static int read_named_bytes(gctx *x, rn_kreader *rd, bool flex, const char **name,
                            const uint8_t **data, size_t *len)
{
    if (!(*name = gread(x, rd, flex)))
        return -ENOMEM;
    rn_kstr b = read_bytes(rd, flex);
    *data = b.data;
    *len = b.len > 0 ? (size_t)b.len : 0;
    if (flex)
        rn_kread_tags(rd);
    return 0;
}

static rn_kout *begin(rn_kreq *req, int16_t throttle_from)
{
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return NULL;
    }
    rn_kafka_response_begin(&o->w, req->h.correlation_id, req->h.flexible);
    if (req->h.api_version >= throttle_from)
        rn_kwrite_i32(&o->w, 0); /* throttle_time_ms */
    return o;
}

static void finish(rn_kreq *req, rn_kout *o)
{
    rn_kwrite_tags(&o->w, req->h.flexible);
    rn_kafka_response_end(&o->w, 0);
    rn_kreq_answer(req, o);
}

/* ---- The consumer protocol's bytes --------------------------------------------------- */

/* The member metadata and assignments of protocol type "consumer" are
 * Kafka's ConsumerProtocol structs; the broker passes them on untouched,
 * and reads them only so that runnel's own describe can show what each
 * member subscribes to and owns. Bytes that do not parse are shown as
 * nothing, never refused (they are the clients' business).
 *   Subscription: i16 version, [string topic], bytes user_data, (v1+ owned
 *                 partitions, v2+ generation, v3+ rack)
 *   Assignment:   i16 version, [string topic, [i32 partition]], bytes user_data */

static size_t read_subscription(gctx *x, const uint8_t *p, size_t len, const char *const **out)
{
    rn_kreader rd;
    rn_kreader_init(&rd, p, len);
    (void)rn_kread_i16(&rd);
    int32_t n = rn_kread_array(&rd, false, false, 2);
    if (rd.err || n <= 0)
        return 0;
    const char **v = galloc(x, (size_t)n * sizeof(*v));
    for (int32_t i = 0; v && i < n; i++) {
        rn_kstr t = rn_kread_string(&rd, false);
        if (rd.err || !(v[i] = gstr(x, t)))
            return 0;
    }
    *out = v;
    return v ? (size_t)n : 0;
}

static size_t read_assignment(gctx *x, const uint8_t *p, size_t len, const rn_assign_tp **out)
{
    rn_kreader rd;
    rn_kreader_init(&rd, p, len);
    (void)rn_kread_i16(&rd);
    int32_t nt = rn_kread_array(&rd, false, false, 6);
    size_t mark = rd.pos, total = 0;
    for (int32_t t = 0; t < nt && !rd.err; t++) { /* count, then fill */
        (void)rn_kread_string(&rd, false);
        int32_t np = rn_kread_array(&rd, false, false, 4);
        rn_kread_skip(&rd, (size_t)np * 4);
        total += (size_t)np;
    }
    if (rd.err || total == 0)
        return 0;
    rn_assign_tp *v = galloc(x, total * sizeof(*v));
    if (!v)
        return 0;
    rd.pos = mark;
    size_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const char *topic = gstr(x, rn_kread_string(&rd, false));
        if (!topic)
            return 0;
        int32_t np = rn_kread_array(&rd, false, false, 4);
        for (int32_t i = 0; i < np; i++)
            v[k++] = (rn_assign_tp){topic, rn_kread_i32(&rd)};
    }
    *out = v;
    return k;
}

/* ---- FindCoordinator ------------------------------------------------------------------- */

/* The address clients are told, as Metadata tells it (metadata.c): a wildcard or
 * a name is advertised as 127.0.0.1. */
static void advertised(rn_kreq *req, int32_t *node_id, char *host, size_t len)
{
    rn_broker *b = rn_kreq_broker(req);
    uint16_t port;
    if (!b || rn_config_parse_hostport(b->cfg.kafka, host, len, &port) < 0 || !host[0] ||
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "::") == 0)
        snprintf(host, len, "127.0.0.1");
    *node_id = b ? b->cfg.node_id : 1;
}

/* The coordinator of key's group in a cluster: its node id and Kafka
 * listener, from the metadata; -1 while __offsets has no leader (or it has
 * no Kafka listener), or the leader is this broker still loading. Nothing is
 * changed on a single node (this broker, as advertised). */
static int coordinator_of(rn_kreq *req, const rn_kstr *key, int32_t *node, char *host, size_t len,
                          int32_t *port)
{
    rn_broker *b = rn_kreq_broker(req);
    if (!b || !b->quorum)
        return 0;
    char group[RN_GROUP_ID_MAX + 1] = "";
    if (key && key->data && key->len > 0)
        snprintf(group, sizeof(group), "%.*s", (int)key->len, (const char *)key->data);
    const rn_topic_info *t = rn_metadata_find(b->md, RN_OFFSETS_TOPIC);
    int32_t part = t ? rn_coord_partition(group, t->n_partitions) : -1;
    if (!t || !t->partitions || part < 0)
        return -1;
    int32_t leader = t->partitions[part].leader;
    const rn_broker_info *bi = leader >= 0 ? rn_metadata_broker(b->md, leader) : NULL;
    char hp[300];
    uint16_t p16;
    if (!bi || bi->fenced || !bi->kafka || !bi->kafka[0] ||
        rn_kafka_advertised(bi->kafka, hp, sizeof(hp)) < 0 ||
        rn_config_parse_hostport(hp, host, len, &p16) < 0)
        return -1;
    if (leader == b->cfg.node_id && b->groups) {
        char err[300];
        if (rn_groups_gate(b->groups, group, err, sizeof(err)) < 0)
            return -1;
    }
    *node = leader;
    *port = p16;
    return 0;
}

static void coordinator_fields(rn_kwriter *w, bool flex, int16_t v, int16_t err, int32_t node,
                               const char *host, int32_t port)
{
    if (v == 0) {
        rn_kwrite_i16(w, err);
    } else if (v <= 3) {
        rn_kwrite_i16(w, err);
        rn_kwrite_str(w, flex, err ? "transactions are not supported" : NULL);
    }
    rn_kwrite_i32(w, err ? -1 : node);
    rn_kwrite_str(w, flex, err ? "" : host);
    rn_kwrite_i32(w, err ? -1 : port);
}

static int find_coordinator(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    int8_t key_type = 0;
    rn_kstr *keys;
    int32_t n_keys = 1;
    if (v <= 3) {
        keys = galloc(x, sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        keys[0] = rn_kread_str(rd, flex, false);
        if (v >= 1)
            key_type = rn_kread_i8(rd);
    } else {
        key_type = rn_kread_i8(rd);
        n_keys = rn_kread_array(rd, true, false, 1);
        if (rd->err)
            return rd->err;
        keys = galloc(x, (size_t)n_keys * sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        for (int32_t i = 0; i < n_keys; i++)
            keys[i] = rn_kread_compact_string(rd, false);
    }
    if (read_end(rd, flex) < 0)
        return rd->err;
    /* Groups only: runnel has no transactions, so no transaction coordinator. */
    int16_t err = key_type != 0 ? RN_KAFKA_COORDINATOR_NOT_AVAILABLE : 0;
    int32_t node;
    char host[256];
    advertised(req, &node, host, sizeof(host));
    int32_t port = rn_kreq_port(req);
    /* A cluster: the leader of the group's __offsets partition (the first
     * key's group for v4's batch: one partition of __offsets holds them all). */
    if (!err &&
        coordinator_of(req, n_keys > 0 ? &keys[0] : NULL, &node, host, sizeof(host), &port) < 0)
        err = RN_KAFKA_COORDINATOR_NOT_AVAILABLE;
    rn_kout *o = begin(req, 1);
    if (!o)
        return 0;
    rn_kwriter *w = &o->w;
    if (v <= 3) {
        coordinator_fields(w, flex, v, err, node, host, port);
    } else {
        rn_kwrite_array(w, true, n_keys);
        for (int32_t i = 0; i < n_keys; i++) {
            rn_kwrite_strn(w, true, (const char *)keys[i].data, (size_t)keys[i].len);
            rn_kwrite_i32(w, err ? -1 : node);
            rn_kwrite_str(w, true, err ? "" : host);
            rn_kwrite_i32(w, err ? -1 : port);
            rn_kwrite_i16(w, err);
            rn_kwrite_str(w, true, err ? "transactions are not supported" : NULL);
            rn_kwrite_tags(w, true);
        }
    }
    finish(req, o);
    return 0;
}

int rn_kafka_find_coordinator(rn_kreq *req)
{
    return with_context(req, find_coordinator);
}

/* ---- JoinGroup ---------------------------------------------------------------------------- */

/* JoinGroup's answer after its error code. */
static void join_fields(rn_kwriter *w, int16_t v, bool flex, const rn_classic_answer *a)
{
    rn_kwrite_i32(w, a->generation);
    if (v >= 7)
        rn_kwrite_str(w, flex, a->protocol_type);
    rn_kwrite_str(w, flex, a->protocol_name || v >= 7 ? a->protocol_name : "");
    rn_kwrite_str(w, flex, a->leader_id);
    rn_kwrite_str(w, flex, a->member_id);
    rn_kwrite_array(w, flex, (int32_t)a->n_members);
    for (size_t i = 0; i < a->n_members; i++) {
        rn_kwrite_str(w, flex, a->members[i].member_id);
        if (v >= 5)
            rn_kwrite_str(w, flex, NULL); /* group_instance_id: no static members */
        write_bytes(w, flex, a->members[i].meta, a->members[i].meta_len);
        rn_kwrite_tags(w, flex);
    }
}

static void sync_fields(rn_kwriter *w, int16_t v, bool flex, const rn_classic_answer *a);

/* The waiter's callback of a JoinGroup or SyncGroup: throttle_time_ms (from
 * v2 and v1), the error code, then the API's own fields. */
static void waiter_answer(rn_classic_waiter *wt, const rn_classic_answer *a)
{
    gctx *x = (gctx *)wt;
    rn_kreq *req = x->req;
    bool join = req->h.api_key == RN_KAFKA_JOIN_GROUP;
    rn_kout *o = begin(req, join ? 2 : 1);
    if (!o)
        return;
    rn_kwrite_i16(&o->w, code_of(a->err));
    (join ? join_fields : sync_fields)(&o->w, req->h.api_version, req->h.flexible, a);
    finish(req, o);
}

/* A JoinGroup or SyncGroup waits for the rebalance (waiter_answer answers):
 * the classic coordinator to call; or, without one, NULL and the request
 * answered at once (COORDINATOR_NOT_AVAILABLE). */
static rn_classic *waiting_on(gctx *x, const char *group, const char *member_id)
{
    x->w.cb = waiter_answer;
    int rc = gate(x->req, group);
    rn_classic *cg = rc == 0 ? classic_coordinator(x->req) : NULL;
    if (!cg) {
        rn_classic_answer a = {.err = rc < 0 ? rc : -RN_E_SHUTTING_DOWN,
                               .generation = -1,
                               .leader_id = "",
                               .member_id = member_id ? member_id : ""};
        x->w.cb(&x->w, &a);
    }
    return cg;
}

static int join_group(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    rn_classic_join_req j = {0};
    j.group_id = gread(x, rd, flex);
    j.session_timeout_ms = rn_kread_i32(rd);
    j.rebalance_timeout_ms = v >= 1 ? rn_kread_i32(rd) : -1;
    j.member_id = gread(x, rd, flex);
    if (v >= 5)
        (void)rn_kread_str(rd, flex, true); /* group_instance_id: taken as dynamic */
    j.protocol_type = gread(x, rd, flex);
    int32_t np = rn_kread_array(rd, flex, false, flex ? 2 : 6);
    if (rd->err)
        return rd->err;
    if (!j.group_id || !j.member_id || !j.protocol_type)
        return -ENOMEM;
    rn_classic_protocol *p = galloc(x, (size_t)np * sizeof(*p));
    if (!p)
        return -ENOMEM;
    for (int32_t i = 0; i < np && !rd->err; i++)
        if (read_named_bytes(x, rd, flex, &p[i].name, &p[i].meta, &p[i].meta_len) < 0)
            return -ENOMEM;
    if (v >= 8)
        (void)rn_kread_str(rd, flex, true); /* reason */
    if (read_end(rd, flex) < 0)
        return rd->err;
    j.protocols = p;
    j.n_protocols = (size_t)np;
    j.client_id = gstr(x, req->h.client_id);
    /* Kafka shows a member's host as "/" and its address (no port). */
    char host[80] = "";
    if (req->c) {
        snprintf(host, sizeof(host), "/%s", req->c->peer);
        char *colon = strrchr(host, ':');
        if (colon && colon != host + 1)
            *colon = 0;
    }
    j.host = host;
    j.require_member_id = v >= 4;
    if (strcmp(j.protocol_type, "consumer") == 0 && np > 0)
        j.n_topics = read_subscription(x, p[0].meta, p[0].meta_len, &j.topics);
    rn_classic *cg = waiting_on(x, j.group_id, j.member_id);
    if (cg)
        rn_classic_join(cg, &j, rn_now_ms(), &x->w);
    return 0;
}

int rn_kafka_join_group(rn_kreq *req)
{
    return with_context(req, join_group);
}

/* ---- SyncGroup ------------------------------------------------------------------------------ */

/* SyncGroup's answer after its error code. */
static void sync_fields(rn_kwriter *w, int16_t v, bool flex, const rn_classic_answer *a)
{
    if (v >= 5) {
        rn_kwrite_str(w, flex, a->protocol_type);
        rn_kwrite_str(w, flex, a->protocol_name);
    }
    write_bytes(w, flex, a->assignment, a->err ? 0 : a->assignment_len);
}

static int sync_group(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    char *group = gread(x, rd, flex);
    int32_t generation = rn_kread_i32(rd);
    char *member = gread(x, rd, flex);
    if (v >= 3)
        (void)rn_kread_str(rd, flex, true); /* group_instance_id */
    char *ptype = NULL, *pname = NULL;
    if (v >= 5) {
        rn_kstr t = rn_kread_str(rd, flex, true), n = rn_kread_str(rd, flex, true);
        ptype = t.data ? gstr(x, t) : NULL;
        pname = n.data ? gstr(x, n) : NULL;
    }
    int32_t na = rn_kread_array(rd, flex, false, flex ? 2 : 6);
    if (rd->err)
        return rd->err;
    rn_classic_assignment *a = galloc(x, (size_t)na * sizeof(*a));
    if (!group || !member || !a)
        return -ENOMEM;
    for (int32_t i = 0; i < na && !rd->err; i++)
        if (read_named_bytes(x, rd, flex, &a[i].member_id, &a[i].data, &a[i].len) < 0)
            return -ENOMEM;
    if (read_end(rd, flex) < 0)
        return rd->err;
    rn_classic *cg = waiting_on(x, group, member);
    if (!cg)
        return 0;
    rn_classic_group_info gi;
    if (rn_classic_describe(cg, group, &gi) == 0 && strcmp(gi.protocol_type, "consumer") == 0)
        for (int32_t i = 0; i < na; i++)
            a[i].n_tps = read_assignment(x, a[i].data, a[i].len, &a[i].tps);
    rn_classic_sync(cg, group, member, generation, ptype, pname, a, (size_t)na, rn_now_ms(), &x->w);
    return 0;
}

int rn_kafka_sync_group(rn_kreq *req)
{
    return with_context(req, sync_group);
}

/* ---- Heartbeat and LeaveGroup ------------------------------------------------------------ */

/* An answer of throttle_time_ms (v >= from) and an error code. */
static void answer_code(rn_kreq *req, int16_t throttle_from, int16_t code)
{
    rn_kout *o = begin(req, throttle_from);
    if (!o)
        return;
    rn_kwrite_i16(&o->w, code);
    finish(req, o);
}

static int heartbeat(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    char *group = gread(x, rd, flex);
    int32_t generation = rn_kread_i32(rd);
    char *member = gread(x, rd, flex);
    if (v >= 3)
        (void)rn_kread_str(rd, flex, true); /* group_instance_id */
    if (read_end(rd, flex) < 0)
        return rd->err;
    if (!group || !member)
        return -ENOMEM;
    int rc = gate(req, group);
    rn_classic *cg = rc == 0 ? classic_coordinator(req) : NULL;
    if (rc == 0)
        rc = cg ? rn_classic_heartbeat(cg, group, member, generation, rn_now_ms())
                : -RN_E_SHUTTING_DOWN;
    answer_code(req, 1, code_of(rc));
    return 0;
}

int rn_kafka_heartbeat(rn_kreq *req)
{
    return with_context(req, heartbeat);
}

static int leave_group(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    char *group = gread(x, rd, flex);
    int32_t n = 1;
    char **members;
    if (v <= 2) {
        members = galloc(x, sizeof(*members));
        if (!members || !(members[0] = gread(x, rd, flex)))
            return -ENOMEM;
    } else {
        n = rn_kread_array(rd, flex, false, flex ? 2 : 4);
        if (rd->err)
            return rd->err;
        members = galloc(x, (size_t)n * sizeof(*members));
        if (!members)
            return -ENOMEM;
        for (int32_t i = 0; i < n && !rd->err; i++) {
            if (!(members[i] = gread(x, rd, flex)))
                return -ENOMEM;
            (void)rn_kread_str(rd, flex, true); /* group_instance_id */
            if (v >= 5)
                (void)rn_kread_str(rd, flex, true); /* reason */
            if (flex)
                rn_kread_tags(rd);
        }
    }
    if (read_end(rd, flex) < 0)
        return rd->err;
    if (!group)
        return -ENOMEM;
    int grc = gate(req, group);
    rn_classic *cg = grc == 0 ? classic_coordinator(req) : NULL;
    int16_t *codes = galloc(x, (size_t)n * sizeof(*codes));
    if (!codes)
        return -ENOMEM;
    for (int32_t i = 0; i < n; i++) {
        int rc = grc < 0 ? grc
                 : cg    ? rn_classic_leave(cg, group, members[i], rn_now_ms())
                         : -RN_E_SHUTTING_DOWN;
        codes[i] = code_of(rc);
    }
    if (v <= 2) {
        answer_code(req, 1, codes[0]);
        return 0;
    }
    rn_kout *o = begin(req, 0);
    if (!o)
        return 0;
    rn_kwriter *w = &o->w;
    /* The request as a whole (v3 may name no member at all). */
    rn_kwrite_i16(w, cg ? 0 : code_of(grc < 0 ? grc : -RN_E_SHUTTING_DOWN));
    rn_kwrite_array(w, flex, n);
    for (int32_t i = 0; i < n; i++) {
        rn_kwrite_str(w, flex, members[i]);
        rn_kwrite_str(w, flex, NULL); /* group_instance_id */
        rn_kwrite_i16(w, codes[i]);
        rn_kwrite_tags(w, flex);
    }
    finish(req, o);
    return 0;
}

int rn_kafka_leave_group(rn_kreq *req)
{
    return with_context(req, leave_group);
}

/* ---- OffsetCommit --------------------------------------------------------------------------- */

static void commit_answer(rn_kreq *req, int err)
{
    gctx *x = req->ctx;
    bool flex = req->h.flexible;
    rn_kout *o = begin(req, 3);
    if (!o)
        return;
    rn_kwriter *w = &o->w;
    rn_kwrite_array(w, flex, (int32_t)x->n_topics);
    for (size_t t = 0; t < x->n_topics; t++) {
        const ctopic *ct = &x->topics[t];
        rn_kwrite_str(w, flex, ct->name);
        rn_kwrite_array(w, flex, (int32_t)ct->n);
        for (size_t i = ct->first; i < ct->first + ct->n; i++) {
            rn_kwrite_i32(w, x->commits[i].partition);
            /* A partition refused before the write keeps its own code. */
            int code = x->commits[i].error_code ? -(int)x->commits[i].error_code : err;
            rn_kwrite_i16(w, code_of(code));
            rn_kwrite_tags(w, flex);
        }
        rn_kwrite_tags(w, flex);
    }
    finish(req, o);
}

static void commit_done(void *arg, int err)
{
    op *p = arg;
    rn_kreq *req = p->req;
    if (req) {
        ((gctx *)req->ctx)->op = NULL;
        commit_answer(req, err);
    }
    free(p);
}

static int offset_commit(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    char *group = gread(x, rd, flex);
    int32_t generation = -1;
    char *member = "";
    if (v >= 1) {
        generation = rn_kread_i32(rd);
        member = gread(x, rd, flex);
    }
    if (v >= 7)
        (void)rn_kread_str(rd, flex, true); /* group_instance_id */
    if (v >= 2 && v <= 4)
        (void)rn_kread_i64(rd); /* retention_time_ms: offsets are kept until deleted */
    /* per partition at least: partition, offset, metadata's length */
    size_t per = 4 + 8 + (flex ? 1 : 2) + (v >= 6 ? 4 : 0) + (v == 1 ? 8 : 0);
    int32_t nt = rn_kread_array(rd, flex, false, flex ? 2 : 6);
    if (rd->err)
        return rd->err;
    if (!group || !member)
        return -ENOMEM;
    x->topics = galloc(x, (size_t)nt * sizeof(*x->topics));
    rn_group_commit **parts = galloc(x, (size_t)nt * sizeof(*parts));
    if (!x->topics || !parts)
        return -ENOMEM;
    size_t total = 0;
    for (int32_t t = 0; t < nt && !rd->err; t++) {
        ctopic *ct = &x->topics[x->n_topics++];
        if (!(ct->name = gread(x, rd, flex)))
            return -ENOMEM;
        int32_t np = rn_kread_array(rd, flex, false, per);
        if (rd->err)
            break;
        if (!(parts[t] = galloc(x, (size_t)np * sizeof(**parts))))
            return -ENOMEM;
        ct->first = total;
        ct->n = (size_t)np;
        total += (size_t)np;
        for (int32_t i = 0; i < np && !rd->err; i++) {
            rn_group_commit *c = &parts[t][i];
            c->topic = ct->name;
            c->partition = rn_kread_i32(rd);
            c->offset = rn_kread_i64(rd);
            if (v >= 6)
                (void)rn_kread_i32(rd); /* committed_leader_epoch */
            if (v == 1)
                (void)rn_kread_i64(rd); /* commit_timestamp: the broker stamps its own */
            rn_kstr md = rn_kread_str(rd, flex, true);
            if (md.data && !(c->metadata = gstr(x, md)))
                return -ENOMEM;
            if (flex)
                rn_kread_tags(rd);
        }
        if (flex)
            rn_kread_tags(rd);
    }
    if (read_end(rd, flex) < 0)
        return rd->err;
    x->commits = galloc(x, total * sizeof(*x->commits));
    if (!x->commits)
        return -ENOMEM;
    for (size_t t = 0; t < x->n_topics; t++)
        memcpy(x->commits + x->topics[t].first, parts[t], x->topics[t].n * sizeof(*x->commits));
    x->n_commits = total;

    rn_groups *g = coordinator(req);
    int grc = g ? gate(req, group) : -RN_E_SHUTTING_DOWN;
    if (grc < 0) {
        commit_answer(req, grc);
        return 0;
    }
    op *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->req = req;
    char err[300] = "";
    int rc = rn_groups_classic_commit(g, group, member, generation, x->commits, x->n_commits,
                                      rn_now_ms(), commit_done, p, err, sizeof(err));
    if (rc == 0) {
        x->op = p; /* answered from commit_done */
        return 0;
    }
    free(p);
    if (rc < 0) {
        rn_logfmt(RN_DEBUG, "kafka: offset commit refused", "group=%s err=%s msg=\"%s\"", group,
                  rn_errname(rc), err);
        for (size_t i = 0; i < x->n_commits; i++)
            x->commits[i].error_code = 0; /* the whole commit failed: one code */
    }
    commit_answer(req, rc < 0 ? rc : 0);
    return 0;
}

int rn_kafka_offset_commit(rn_kreq *req)
{
    return with_context(req, offset_commit);
}

/* ---- OffsetFetch ---------------------------------------------------------------------------- */

static void fetch_partition(rn_kwriter *w, bool flex, int16_t v, int32_t partition,
                            const rn_offset_entry *e, int16_t code)
{
    rn_kwrite_i32(w, partition);
    rn_kwrite_i64(w, e ? e->offset : -1);
    if (v >= 5)
        rn_kwrite_i32(w, -1); /* committed_leader_epoch: not kept */
    rn_kwrite_str(w, flex, e ? e->metadata : "");
    rn_kwrite_i16(w, code);
    rn_kwrite_tags(w, flex);
}

static int offset_fetch(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    char *group = gread(x, rd, flex);
    int32_t nt = rn_kread_array(rd, flex, v >= 2, flex ? 2 : 6);
    if (rd->err)
        return rd->err;
    if (!group)
        return -ENOMEM;
    ctopic *topics = galloc(x, (size_t)(nt > 0 ? nt : 0) * sizeof(*topics));
    int32_t **pids = galloc(x, (size_t)(nt > 0 ? nt : 0) * sizeof(*pids));
    if (!topics || !pids)
        return -ENOMEM;
    for (int32_t t = 0; t < nt && !rd->err; t++) {
        if (!(topics[t].name = gread(x, rd, flex)))
            return -ENOMEM;
        int32_t np = rn_kread_array(rd, flex, false, 4);
        if (rd->err)
            break;
        if (!(pids[t] = galloc(x, (size_t)np * sizeof(**pids))))
            return -ENOMEM;
        topics[t].n = (size_t)np;
        for (int32_t i = 0; i < np; i++)
            pids[t][i] = rn_kread_i32(rd);
        if (flex)
            rn_kread_tags(rd);
    }
    if (v >= 7)
        (void)rn_kread_i8(rd); /* require_stable: no transactions, always stable */
    if (read_end(rd, flex) < 0)
        return rd->err;

    rn_groups *g = coordinator(req);
    int grc = gate(req, group);
    const rn_offsets *offs = g && grc == 0 ? rn_groups_offsets(g) : NULL;
    int16_t top = grc < 0 ? code_of(grc) : offs ? 0 : RN_KAFKA_COORDINATOR_NOT_AVAILABLE;
    rn_kout *o = begin(req, 3);
    if (!o)
        return 0;
    rn_kwriter *w = &o->w;
    if (nt >= 0) {
        rn_kwrite_array(w, flex, nt);
        for (int32_t t = 0; t < nt; t++) {
            rn_kwrite_str(w, flex, topics[t].name);
            rn_kwrite_array(w, flex, (int32_t)topics[t].n);
            for (size_t i = 0; i < topics[t].n; i++) {
                const rn_offset_entry *e =
                    offs ? rn_offsets_find(offs, group, topics[t].name, pids[t][i]) : NULL;
                fetch_partition(w, flex, v, pids[t][i], e, top);
            }
            rn_kwrite_tags(w, flex);
        }
    } else {
        /* null: every committed offset of the group, by topic */
        size_t n = 0;
        const rn_offset_entry *es = offs ? rn_offsets_entries(offs, group, &n) : NULL;
        int32_t n_topics = 0;
        for (size_t i = 0; i < n; i++)
            n_topics += i == 0 || strcmp(es[i].topic, es[i - 1].topic) != 0;
        rn_kwrite_array(w, flex, n_topics);
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && strcmp(es[j].topic, es[i].topic) == 0)
                j++;
            rn_kwrite_str(w, flex, es[i].topic);
            rn_kwrite_array(w, flex, (int32_t)(j - i));
            for (size_t k = i; k < j; k++)
                fetch_partition(w, flex, v, es[k].partition, &es[k], 0);
            rn_kwrite_tags(w, flex);
            i = j;
        }
    }
    if (v >= 2)
        rn_kwrite_i16(w, top);
    finish(req, o);
    return 0;
}

int rn_kafka_offset_fetch(rn_kreq *req)
{
    return with_context(req, offset_fetch);
}

/* ---- ListGroups, DescribeGroups, DeleteGroups ---------------------------------------------- */

int rn_kafka_list_groups(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    int16_t v = req->h.api_version;
    bool flex = req->h.flexible;
    if (v >= 4) { /* states_filter: every state is listed */
        int32_t n = rn_kread_array(rd, true, false, 1);
        for (int32_t i = 0; i < n && !rd->err; i++)
            (void)rn_kread_compact_string(rd, false);
    }
    if (read_end(rd, flex) < 0)
        return rd->err;
    rn_groups *g = coordinator(req);
    rn_group_info *gi = NULL;
    size_t n = 0;
    /* As Kafka: each broker lists the groups it coordinates (clients ask
     * every broker); one that coordinates none lists none. */
    int rc = gate(req, NULL);
    if (rc == -RN_E_NOT_COORDINATOR || rc == -RN_E_COORDINATOR_NOT_AVAILABLE)
        rc = 0;
    else if (rc == 0)
        rc = g ? rn_groups_list(g, &gi, &n) : -RN_E_SHUTTING_DOWN;
    rn_kout *o = begin(req, 1);
    if (!o) {
        free(gi);
        return 0;
    }
    rn_kwriter *w = &o->w;
    rn_kwrite_i16(w, rc < 0 ? (rc == -ENOMEM ? RN_KAFKA_UNKNOWN_SERVER_ERROR
                                             : RN_KAFKA_COORDINATOR_NOT_AVAILABLE)
                            : 0);
    rn_kwrite_array(w, flex, rc < 0 ? 0 : (int32_t)n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rn_kwrite_str(w, flex, gi[i].group_id);
        /* Native groups are consumer groups too; a group known only by its
         * committed offsets has no protocol (as in Kafka). */
        rn_kwrite_str(w, flex,
                      gi[i].classic     ? gi[i].protocol_type
                      : gi[i].n_members ? "consumer"
                                        : "");
        if (v >= 4)
            rn_kwrite_str(w, flex, gi[i].state);
        rn_kwrite_tags(w, flex);
    }
    free(gi);
    finish(req, o);
    return 0;
}

static void describe_one(rn_kwriter *w, bool flex, int16_t v, rn_groups *g, const char *id)
{
    rn_group_info info;
    char gerr[300];
    int grc = g ? rn_groups_gate(g, id, gerr, sizeof(gerr)) : -RN_E_SHUTTING_DOWN;
    int rc = grc < 0 ? grc : rn_groups_describe(g, id, &info);
    /* Kafka: an unknown group is described as Dead, without an error. */
    int16_t code = rc == -RN_E_UNKNOWN_GROUP || rc == 0 ? 0
                   : grc < 0                            ? code_of(grc)
                                                        : RN_KAFKA_COORDINATOR_NOT_AVAILABLE;
    const char *state = rc == 0 ? info.state : "Dead";
    const char *ptype = rc == 0 && info.classic     ? info.protocol_type
                        : rc == 0 && info.n_members ? "consumer"
                                                    : "";
    const char *pdata = rc == 0 && info.n_members ? info.assignor : "";
    rn_kwrite_i16(w, code);
    rn_kwrite_str(w, flex, id);
    rn_kwrite_str(w, flex, state);
    rn_kwrite_str(w, flex, ptype);
    rn_kwrite_str(w, flex, pdata);
    size_t n = rc == 0 ? info.n_members : 0;
    rn_kwrite_array(w, flex, (int32_t)n);
    rn_classic *cg = g ? rn_groups_classic(g) : NULL;
    for (size_t i = 0; i < n; i++) {
        rn_classic_member_info cm = {0};
        rn_group_member_info nm = {0};
        if (info.classic) {
            rn_classic_member(cg, id, i, &cm);
        } else if (rn_groups_member(g, id, i, &nm) == 0) {
            cm.member_id = nm.member_id;
            cm.client_id = nm.client_id;
            cm.host = nm.host;
        }
        rn_kwrite_str(w, flex, cm.member_id ? cm.member_id : "");
        if (v >= 4)
            rn_kwrite_str(w, flex, NULL); /* group_instance_id */
        rn_kwrite_str(w, flex, cm.client_id ? cm.client_id : "");
        rn_kwrite_str(w, flex, cm.host ? cm.host : "");
        write_bytes(w, flex, cm.meta, cm.meta_len);
        write_bytes(w, flex, cm.assignment, cm.assignment_len);
        rn_kwrite_tags(w, flex);
    }
    if (v >= 3)
        rn_kwrite_i32(w, NO_AUTH_OPS);
    rn_kwrite_tags(w, flex);
}

static int describe_groups(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    char **ids;
    int32_t n;
    int rc = read_names(x, rd, flex, &ids, &n);
    if (rc < 0)
        return rc;
    if (v >= 3)
        (void)rn_kread_i8(rd); /* include_authorized_operations */
    if (read_end(rd, flex) < 0)
        return rd->err;
    rn_groups *g = coordinator(req);
    rn_kout *o = begin(req, 1);
    if (!o)
        return 0;
    rn_kwrite_array(&o->w, flex, n);
    for (int32_t i = 0; i < n; i++)
        describe_one(&o->w, flex, v, g, ids[i]);
    finish(req, o);
    return 0;
}

int rn_kafka_describe_groups(rn_kreq *req)
{
    return with_context(req, describe_groups);
}

static void delete_answer(rn_kreq *req, const int16_t *errs)
{
    gctx *x = req->ctx;
    bool flex = req->h.flexible;
    rn_kout *o = begin(req, 0);
    if (!o)
        return;
    rn_kwriter *w = &o->w;
    rn_kwrite_array(w, flex, (int32_t)x->n_names);
    for (size_t i = 0; i < x->n_names; i++) {
        rn_kwrite_str(w, flex, x->names[i]);
        rn_kwrite_i16(w, errs[i]);
        rn_kwrite_tags(w, flex);
    }
    finish(req, o);
}

typedef struct delete_one {
    op *p;
    size_t i;
} delete_one;

static void delete_done(void *arg, int err)
{
    delete_one *d = arg;
    op *p = d->p;
    if (err)
        p->errs[d->i] = rn_kafka_error(err);
    free(d);
    if (--p->pending > 0)
        return;
    if (p->req) {
        ((gctx *)p->req->ctx)->op = NULL;
        delete_answer(p->req, p->errs);
    }
    free(p->errs);
    free(p);
}

static int delete_groups(rn_kreq *req, gctx *x, rn_kreader *rd, int16_t v, bool flex)
{
    (void)v;
    int32_t n;
    int rc = read_names(x, rd, flex, &x->names, &n);
    if (rc < 0)
        return rc;
    if (read_end(rd, flex) < 0)
        return rd->err;
    x->n_names = (size_t)n;
    op *p = calloc(1, sizeof(*p));
    if (!p || !(p->errs = calloc(n ? (size_t)n : 1, sizeof(*p->errs)))) {
        free(p);
        return -ENOMEM;
    }
    p->req = req;
    p->pending = 1; /* this function's own, dropped at the end */
    rn_groups *g = coordinator(req);
    for (size_t i = 0; i < x->n_names; i++) {
        int grc = g ? gate(req, x->names[i]) : -RN_E_SHUTTING_DOWN;
        if (grc < 0) {
            p->errs[i] = code_of(grc);
            continue;
        }
        delete_one *d = malloc(sizeof(*d));
        if (!d) {
            p->errs[i] = RN_KAFKA_UNKNOWN_SERVER_ERROR;
            continue;
        }
        *d = (delete_one){p, i};
        int drc = rn_groups_delete(g, x->names[i], delete_done, d);
        if (drc == 0) {
            p->pending++;
            continue;
        }
        free(d);
        p->errs[i] = drc < 0 ? rn_kafka_error(drc) : 0;
    }
    x->op = p;
    delete_one *self = malloc(sizeof(*self));
    if (!self) {
        /* Drop our own count by hand: the answer goes when the rest do. */
        if (--p->pending == 0) {
            x->op = NULL;
            delete_answer(req, p->errs);
            free(p->errs);
            free(p);
        }
        return 0;
    }
    *self = (delete_one){p, 0};
    delete_done(self, 0);
    return 0;
}

int rn_kafka_delete_groups(rn_kreq *req)
{
    return with_context(req, delete_groups);
}
