/*
 * classic_group.c — the classic (client-side assignment) group protocol's
 * state machine, as Kafka's GroupCoordinator runs it (see classic_group.h).
 *
 * States of a group, and the function for each transition:
 *
 *         join (new member, or the leader / a changed member rejoins)
 *   Empty ───────────────► PreparingRebalance ◄──────────────────────┐
 *     ▲                      │ every member rejoined, or the         │ join that changes
 *     │ last member gone      │ rebalance timeout (stragglers out):  │ things, a leave,
 *     │ (dropped)            ▼ complete_join: generation + 1         │ a session timeout,
 *     │                    CompletingRebalance ──────────────────────┤ no leader sync
 *     │                      │ the leader's sync (sync_done)         │ in time
 *     │                      ▼                                       │
 *     └──────────────────  Stable ───────────────────────────────────┘
 *
 * prepare_rebalance moves into PreparingRebalance (syncs waiting are told
 * REBALANCE_IN_PROGRESS, so those members join again); try_complete_join
 * leaves it once every member has a join waiting, or tick at the deadline
 * (max rebalance timeout of the members) removing those that did not.
 *
 * Invariants:
 *   1. A member has at most one join and one sync waiting; a second replaces
 *      the first, which is answered REBALANCE_IN_PROGRESS.
 *   2. A waiter is idle, waiting on one member, or answered and in the ready
 *      list; callbacks run only from deliver(), at the end of each public
 *      call, one at a time, each waiter taken off the list before its
 *      callback (which may free the caller's request and cancel others).
 *   3. A member with a waiter is not evicted by its session timeout: the
 *      waiter is bounded by the rebalance deadline instead.
 *   4. A group without members and without pending member ids is dropped
 *      (its committed offsets live on in __offsets).
 *   5. Groups are sorted by id; members are kept in join order (the first
 *      joiner leads a new generation unless the leader is still there).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/classic_group.h"
#include "broker/coord/member_id.h"
#include "broker/logfmt.h"
#include "broker/sorted.h"
#include "protocol/errors.h"

enum { EMPTY, PREPARING, COMPLETING, STABLE };
static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance",
                                          "Stable"};

enum { W_IDLE, W_WAITING, W_READY };

typedef struct cproto {
    char *name;
    uint8_t *meta;
    size_t len;
} cproto;

typedef struct cmember {
    char *id, *client_id, *host;
    cproto *protos;
    size_t n_protos;
    int32_t session_ms, rebalance_ms;
    int64_t last_seen_ms;
    rn_classic_waiter *join_w, *sync_w;
    uint8_t *assignment;
    size_t assignment_len;
    bool has_assignment;
    char **topics; /* subscription, as the caller read it */
    size_t n_topics;
    rn_assign_tp *tps; /* assignment, as the caller read it; topic names owned */
    size_t n_tps;
} cmember;

typedef struct pending_id {
    char *id;
    int64_t until_ms;
} pending_id;

typedef struct cgroup {
    char *id;
    int state;
    int32_t generation;
    char *protocol_type; /* NULL until the first join */
    char *protocol;      /* chosen for the generation; NULL before one */
    char *leader;        /* NULL when none */
    cmember **members;   /* join order */
    size_t n_members, cap;
    pending_id *pending; /* ids handed out with MEMBER_ID_REQUIRED */
    size_t n_pending, cap_pending;
    int64_t deadline_ms; /* of PreparingRebalance / CompletingRebalance */
} cgroup;

/* An answer kept until delivered: the public struct plus what it points at. */
struct rn_classic_ans_ {
    rn_classic_answer a;
    char *strs[4];
    rn_classic_member_meta *members;
    uint8_t *bytes;
};

struct rn_classic {
    rn_classic_env env;
    cgroup **groups; /* sorted by id */
    size_t n, cap;
    rn_classic_waiter *ready_head, *ready_tail;
};

/* ---- Small helpers -------------------------------------------------------------- */

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (b && n)
        memcpy(b, p, n);
    return b;
}

static int cmp_group(const void *key, const void *elem)
{
    return strcmp(key, (*(cgroup *const *)elem)->id);
}

static cgroup *find_group(const rn_classic *cg, const char *id)
{
    if (!id)
        return NULL;
    bool found;
    size_t i = rn_sorted_find(cg->groups, cg->n, sizeof(*cg->groups), id, cmp_group, &found);
    return found ? cg->groups[i] : NULL;
}

static cgroup *create_group(rn_classic *cg, const char *id)
{
    bool found;
    size_t at = rn_sorted_find(cg->groups, cg->n, sizeof(*cg->groups), id, cmp_group, &found);
    if (found)
        return cg->groups[at];
    if (rn_array_reserve(&cg->groups, cg->n, &cg->cap, sizeof(*cg->groups), 16) < 0)
        return NULL;
    cgroup *g = calloc(1, sizeof(*g));
    if (!g || !(g->id = strdup(id))) {
        free(g);
        return NULL;
    }
    rn_array_insert(cg->groups, cg->n++, sizeof(*cg->groups), at, &g);
    return g;
}

static cmember *find_member(const cgroup *g, const char *id, size_t *index)
{
    if (!g || !id || !*id)
        return NULL;
    for (size_t i = 0; i < g->n_members; i++)
        if (strcmp(g->members[i]->id, id) == 0) {
            if (index)
                *index = i;
            return g->members[i];
        }
    return NULL;
}

static void protos_free(cproto *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].meta);
    }
    free(p);
}

static const cproto *member_proto(const cmember *m, const char *name)
{
    for (size_t i = 0; name && i < m->n_protos; i++)
        if (strcmp(m->protos[i].name, name) == 0)
            return &m->protos[i];
    return NULL;
}

/* ---- Waiters and answers ---------------------------------------------------------- */

static void ans_free(struct rn_classic_ans_ *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < 4; i++)
        free(x->strs[i]);
    free(x->members);
    free(x->bytes);
    free(x);
}

static void ready_unlink(rn_classic *cg, rn_classic_waiter *w)
{
    if (w->prev_)
        w->prev_->next_ = w->next_;
    else
        cg->ready_head = w->next_;
    if (w->next_)
        w->next_->prev_ = w->prev_;
    else
        cg->ready_tail = w->prev_;
    w->next_ = w->prev_ = NULL;
}

/* Detach w from its member (if waiting) and queue it with answer x (NULL:
 * out of memory, answered as such). */
static void ready_push(rn_classic *cg, rn_classic_waiter *w, struct rn_classic_ans_ *x)
{
    if (w->state_ == W_WAITING && w->member_) {
        cmember *m = w->member_;
        if (m->join_w == w)
            m->join_w = NULL;
        if (m->sync_w == w)
            m->sync_w = NULL;
    }
    w->member_ = NULL;
    w->state_ = W_READY;
    w->cg_ = cg;
    w->ans_ = x;
    w->next_ = NULL;
    w->prev_ = cg->ready_tail;
    if (cg->ready_tail)
        cg->ready_tail->next_ = w;
    else
        cg->ready_head = w;
    cg->ready_tail = w;
}

static void answer_error(rn_classic *cg, rn_classic_waiter *w, int err, const char *member_id)
{
    struct rn_classic_ans_ *x = calloc(1, sizeof(*x));
    if (x) {
        x->strs[0] = dup_or_empty(member_id);
        if (!x->strs[0]) {
            free(x);
            x = NULL;
        }
    }
    if (x)
        x->a = (rn_classic_answer){
            .err = err, .generation = -1, .leader_id = "", .member_id = x->strs[0]};
    ready_push(cg, w, x);
}

/* The join answer for m in g's current generation. */
static void answer_join(rn_classic *cg, cgroup *g, cmember *m, rn_classic_waiter *w)
{
    struct rn_classic_ans_ *x = calloc(1, sizeof(*x));
    bool leader = g->leader && strcmp(g->leader, m->id) == 0;
    if (!x)
        goto oom;
    x->strs[0] = strdup(g->protocol_type);
    x->strs[1] = strdup(g->protocol);
    x->strs[2] = strdup(g->leader);
    x->strs[3] = strdup(m->id);
    if (!x->strs[0] || !x->strs[1] || !x->strs[2] || !x->strs[3])
        goto oom;
    size_t n = leader ? g->n_members : 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        const cproto *p = member_proto(g->members[i], g->protocol);
        total += p ? p->len : 0;
    }
    if (n) {
        /* The member ids live on in the group until delivery (it runs at the
         * end of this same call), but copy them anyway: a callback may end a
         * connection, and that may remove members. */
        size_t ids = 0;
        for (size_t i = 0; i < n; i++)
            ids += strlen(g->members[i]->id) + 1;
        x->members = calloc(n, sizeof(*x->members));
        x->bytes = malloc(total + ids + 1);
        if (!x->members || !x->bytes)
            goto oom;
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            const cmember *o = g->members[i];
            const cproto *p = member_proto(o, g->protocol);
            size_t idl = strlen(o->id) + 1;
            memcpy(x->bytes + pos, o->id, idl);
            x->members[i].member_id = (char *)x->bytes + pos;
            pos += idl;
            x->members[i].meta = x->bytes + pos;
            x->members[i].meta_len = p ? p->len : 0;
            if (p && p->len)
                memcpy(x->bytes + pos, p->meta, p->len);
            pos += p ? p->len : 0;
        }
    }
    x->a = (rn_classic_answer){.generation = g->generation,
                               .protocol_type = x->strs[0],
                               .protocol_name = x->strs[1],
                               .leader_id = x->strs[2],
                               .member_id = x->strs[3],
                               .members = x->members,
                               .n_members = n};
    ready_push(cg, w, x);
    return;
oom:
    ans_free(x);
    ready_push(cg, w, NULL);
}

static void answer_sync(rn_classic *cg, cmember *m, rn_classic_waiter *w)
{
    struct rn_classic_ans_ *x = calloc(1, sizeof(*x));
    if (!x || !(x->strs[0] = strdup(m->id)) ||
        !(x->bytes = dup_bytes(m->assignment, m->assignment_len))) {
        ans_free(x);
        ready_push(cg, w, NULL);
        return;
    }
    x->a = (rn_classic_answer){.leader_id = "",
                               .member_id = x->strs[0],
                               .assignment = x->bytes,
                               .assignment_len = m->has_assignment ? m->assignment_len : 0};
    ready_push(cg, w, x);
}

/* Run the callbacks of answered waiters (invariant 2). */
static void deliver(rn_classic *cg)
{
    while (cg->ready_head) {
        rn_classic_waiter *w = cg->ready_head;
        ready_unlink(cg, w);
        struct rn_classic_ans_ *x = w->ans_;
        w->ans_ = NULL;
        w->state_ = W_IDLE;
        w->cg_ = NULL;
        static const rn_classic_answer oom = {
            .err = -ENOMEM, .generation = -1, .leader_id = "", .member_id = ""};
        w->cb(w, x ? &x->a : &oom); /* may free w */
        ans_free(x);
    }
}

void rn_classic_fail_all(rn_classic *cg, int err)
{
    if (!cg)
        return;
    for (size_t gi = 0; gi < cg->n; gi++) {
        cgroup *g = cg->groups[gi];
        for (size_t i = 0; i < g->n_members; i++) {
            cmember *m = g->members[i];
            if (m->join_w)
                answer_error(cg, m->join_w, err, m->id);
            if (m->sync_w)
                answer_error(cg, m->sync_w, err, m->id);
        }
    }
    deliver(cg);
}

void rn_classic_cancel(rn_classic_waiter *w)
{
    if (!w || w->state_ == W_IDLE)
        return;
    if (w->state_ == W_WAITING) {
        cmember *m = w->member_;
        if (m && m->join_w == w)
            m->join_w = NULL;
        if (m && m->sync_w == w)
            m->sync_w = NULL;
    } else if (w->cg_) {
        ready_unlink(w->cg_, w);
        ans_free(w->ans_);
        w->ans_ = NULL;
    }
    w->state_ = W_IDLE;
    w->member_ = NULL;
    w->cg_ = NULL;
}

static void wait_on(rn_classic *cg, cmember *m, rn_classic_waiter *w, bool sync)
{
    rn_classic_waiter **slot = sync ? &m->sync_w : &m->join_w;
    if (*slot) /* invariant 1 */
        answer_error(cg, *slot, -RN_E_REBALANCE_IN_PROGRESS, m->id);
    *slot = w;
    w->state_ = W_WAITING;
    w->member_ = m;
    w->cg_ = cg;
    w->sync_ = sync;
}

/* ---- Members -------------------------------------------------------------------------- */

static void strs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void tps_free(rn_assign_tp *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)v[i].topic);
    free(v);
}

/* Deep copies (topic names too); NULL when out of memory. */
static char **strs_dup(const char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = dup_or_empty(v[i]))) {
            strs_free(out, i);
            return NULL;
        }
    return out;
}

static rn_assign_tp *tps_dup(const rn_assign_tp *v, size_t n)
{
    rn_assign_tp *out = calloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; out && i < n; i++) {
        out[i].partition = v[i].partition;
        if (!(out[i].topic = dup_or_empty(v[i].topic))) {
            tps_free(out, i);
            return NULL;
        }
    }
    return out;
}

static void member_free(cmember *m)
{
    strs_free(m->topics, m->n_topics);
    tps_free(m->tps, m->n_tps);
    free(m->id);
    free(m->client_id);
    free(m->host);
    protos_free(m->protos, m->n_protos);
    free(m->assignment);
    free(m);
}

/* Replace m's protocols; 1 when they changed, 0 when not, -ENOMEM. */
static int set_protocols(cmember *m, const rn_classic_protocol *p, size_t n)
{
    bool same = n == m->n_protos;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(p[i].name ? p[i].name : "", m->protos[i].name) == 0 &&
               p[i].meta_len == m->protos[i].len &&
               (p[i].meta_len == 0 || memcmp(p[i].meta, m->protos[i].meta, p[i].meta_len) == 0);
    if (same)
        return 0;
    cproto *v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].name = dup_or_empty(p[i].name);
        v[i].meta = dup_bytes(p[i].meta, p[i].meta_len);
        v[i].len = p[i].meta_len;
        if (!v[i].name || !v[i].meta) {
            protos_free(v, i + 1);
            return -ENOMEM;
        }
    }
    protos_free(m->protos, m->n_protos);
    m->protos = v;
    m->n_protos = n;
    return 1;
}

static cmember *add_member(cgroup *g, const char *id)
{
    if (rn_array_reserve(&g->members, g->n_members, &g->cap, sizeof(*g->members), 8) < 0)
        return NULL;
    cmember *m = calloc(1, sizeof(*m));
    if (!m || !(m->id = strdup(id))) {
        free(m);
        return NULL;
    }
    g->members[g->n_members++] = m;
    return m;
}

static void prepare_rebalance(rn_classic *cg, cgroup *g, int64_t now_ms, const char *why);
static void try_complete_join(rn_classic *cg, cgroup *g, int64_t now_ms);

/* Remove member i; its waiters are told UNKNOWN_MEMBER_ID. The group moves
 * on (a rebalance, or the check whether the one under way is complete). */
static void remove_member(rn_classic *cg, cgroup *g, size_t i, int64_t now_ms, const char *why)
{
    cmember *m = g->members[i];
    rn_logfmt(RN_INFO, "classic group member removed", "group=%s member=%s reason=%s", g->id, m->id,
              why);
    if (m->join_w)
        answer_error(cg, m->join_w, -RN_E_UNKNOWN_MEMBER, m->id);
    if (m->sync_w)
        answer_error(cg, m->sync_w, -RN_E_UNKNOWN_MEMBER, m->id);
    memmove(g->members + i, g->members + i + 1, (g->n_members - i - 1) * sizeof(*g->members));
    g->n_members--;
    if (g->leader && strcmp(g->leader, m->id) == 0) {
        free(g->leader);
        g->leader = NULL;
    }
    member_free(m);
    if (g->state == STABLE || g->state == COMPLETING)
        prepare_rebalance(cg, g, now_ms, why);
    else if (g->state == PREPARING)
        try_complete_join(cg, g, now_ms);
}

static void maybe_drop(rn_classic *cg, cgroup *g)
{
    if (g->n_members || g->n_pending)
        return;
    bool found;
    size_t at = rn_sorted_find(cg->groups, cg->n, sizeof(*cg->groups), g->id, cmp_group, &found);
    if (!found)
        return;
    memmove(cg->groups + at, cg->groups + at + 1, (cg->n - at - 1) * sizeof(*cg->groups));
    cg->n--;
    free(g->id);
    free(g->protocol_type);
    free(g->protocol);
    free(g->leader);
    free(g->members);
    for (size_t i = 0; i < g->n_pending; i++)
        free(g->pending[i].id);
    free(g->pending);
    free(g);
}

/* ---- Rebalance --------------------------------------------------------------------------- */

static void prepare_rebalance(rn_classic *cg, cgroup *g, int64_t now_ms, const char *why)
{
    if (g->state == PREPARING)
        return;
    /* Syncs waiting for the old generation's assignment will not get it. */
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->sync_w)
            answer_error(cg, g->members[i]->sync_w, -RN_E_REBALANCE_IN_PROGRESS, g->members[i]->id);
    int64_t timeout = 0;
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->rebalance_ms > timeout)
            timeout = g->members[i]->rebalance_ms;
    g->state = PREPARING;
    g->deadline_ms = now_ms + timeout;
    rn_logfmt(RN_INFO, "classic group rebalancing", "group=%s generation=%d members=%zu reason=%s",
              g->id, g->generation, g->n_members, why);
}

/* The protocol every member supports that most members prefer (KIP-? Kafka's
 * vote: each member votes for its first candidate; ties go to the order of
 * the first member's list). NULL when there is none. */
static const char *select_protocol(const cgroup *g)
{
    if (!g->n_members)
        return NULL;
    const cmember *first = g->members[0];
    const char *best = NULL;
    size_t best_votes = 0;
    for (size_t c = 0; c < first->n_protos; c++) {
        const char *name = first->protos[c].name;
        bool all = true;
        for (size_t i = 1; all && i < g->n_members; i++)
            all = member_proto(g->members[i], name) != NULL;
        if (!all)
            continue;
        size_t votes = 0;
        for (size_t i = 0; i < g->n_members; i++) {
            const cmember *m = g->members[i];
            for (size_t k = 0; k < m->n_protos; k++) {
                /* m's first protocol that every member supports */
                bool cand = true;
                for (size_t j = 0; cand && j < g->n_members; j++)
                    cand = member_proto(g->members[j], m->protos[k].name) != NULL;
                if (cand) {
                    votes += strcmp(m->protos[k].name, name) == 0;
                    break;
                }
            }
        }
        if (!best || votes > best_votes) {
            best = name;
            best_votes = votes;
        }
    }
    return best;
}

/* Would member m (with these protocols) fit a group that has other members? */
static bool protocols_fit(const cgroup *g, const cmember *self, const char *type,
                          const rn_classic_protocol *p, size_t n)
{
    size_t others = 0;
    for (size_t i = 0; i < g->n_members; i++)
        others += g->members[i] != self;
    if (others == 0)
        return true;
    if (!g->protocol_type || strcmp(g->protocol_type, type) != 0)
        return false;
    for (size_t k = 0; k < n; k++) {
        bool all = true;
        for (size_t i = 0; all && i < g->n_members; i++)
            if (g->members[i] != self)
                all = member_proto(g->members[i], p[k].name ? p[k].name : "") != NULL;
        if (all)
            return true;
    }
    return false;
}

static void complete_join(rn_classic *cg, cgroup *g, int64_t now_ms)
{
    g->generation++;
    if (g->n_members == 0) {
        g->state = EMPTY;
        free(g->protocol);
        g->protocol = NULL;
        return;
    }
    const char *proto = select_protocol(g);
    char *p = proto ? strdup(proto) : NULL;
    bool keep_leader = g->leader && find_member(g, g->leader, NULL);
    char *leader = keep_leader ? g->leader : strdup(g->members[0]->id);
    if (!p || !leader) {
        /* Out of memory (or members without a common protocol, which joins
         * refuse): everyone waiting learns it, and joins again. */
        free(p);
        if (leader != g->leader)
            free(leader);
        for (size_t i = 0; i < g->n_members; i++)
            if (g->members[i]->join_w)
                answer_error(cg, g->members[i]->join_w,
                             proto ? -ENOMEM : -RN_E_INCONSISTENT_GROUP_PROTOCOL,
                             g->members[i]->id);
        g->state = PREPARING;
        return;
    }
    free(g->protocol);
    g->protocol = p;
    if (leader != g->leader) {
        free(g->leader);
        g->leader = leader;
    }
    g->state = COMPLETING;
    g->deadline_ms = now_ms;
    for (size_t i = 0; i < g->n_members; i++) {
        cmember *m = g->members[i];
        if (m->rebalance_ms > g->deadline_ms - now_ms)
            g->deadline_ms = now_ms + m->rebalance_ms;
        free(m->assignment);
        m->assignment = NULL;
        m->assignment_len = 0;
        m->has_assignment = false;
        tps_free(m->tps, m->n_tps);
        m->tps = NULL;
        m->n_tps = 0;
        m->last_seen_ms = now_ms;
    }
    rn_logfmt(RN_INFO, "classic group generation",
              "group=%s generation=%d protocol=%s leader=%s members=%zu", g->id, g->generation,
              g->protocol, g->leader, g->n_members);
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->join_w)
            answer_join(cg, g, g->members[i], g->members[i]->join_w);
}

static void try_complete_join(rn_classic *cg, cgroup *g, int64_t now_ms)
{
    if (g->state != PREPARING)
        return;
    for (size_t i = 0; i < g->n_members; i++)
        if (!g->members[i]->join_w)
            return;
    complete_join(cg, g, now_ms);
}

/* ---- JoinGroup ---------------------------------------------------------------------------- */

/* Kafka's form of a member id: the client id (or "member"), a dash, a
 * UUID (coord/member_id.h). */
static int new_member_id(const char *client_id, char *buf, size_t len)
{
    return rn_member_id_new(client_id && *client_id ? client_id : "member", buf, len);
}

static bool take_pending(cgroup *g, const char *id)
{
    for (size_t i = 0; g && i < g->n_pending; i++)
        if (strcmp(g->pending[i].id, id) == 0) {
            free(g->pending[i].id);
            g->pending[i] = g->pending[--g->n_pending];
            return true;
        }
    return false;
}

static int add_pending(cgroup *g, const char *id, int64_t until_ms)
{
    if (rn_array_reserve(&g->pending, g->n_pending, &g->cap_pending, sizeof(*g->pending), 4) < 0)
        return -ENOMEM;
    char *s = strdup(id);
    if (!s)
        return -ENOMEM;
    g->pending[g->n_pending++] = (pending_id){s, until_ms};
    return 0;
}

/* Record the join's details on m (its protocols, timeouts, names). 1 when
 * the protocols changed, 0 when not, -ENOMEM. */
static int member_update(cmember *m, const rn_classic_join_req *j, int64_t now_ms)
{
    char *cid = dup_or_empty(j->client_id), *host = dup_or_empty(j->host);
    if (!cid || !host) {
        free(cid);
        free(host);
        return -ENOMEM;
    }
    char **topics = strs_dup(j->topics, j->n_topics);
    int changed = topics ? set_protocols(m, j->protocols, j->n_protocols) : -ENOMEM;
    if (changed < 0) {
        if (topics)
            strs_free(topics, j->n_topics);
        free(cid);
        free(host);
        return changed;
    }
    strs_free(m->topics, m->n_topics);
    m->topics = topics;
    m->n_topics = j->n_topics;
    free(m->client_id);
    free(m->host);
    m->client_id = cid;
    m->host = host;
    m->session_ms = j->session_timeout_ms;
    m->rebalance_ms = j->rebalance_timeout_ms > 0 ? j->rebalance_timeout_ms : j->session_timeout_ms;
    m->last_seen_ms = now_ms;
    return changed;
}

static void join(rn_classic *cg, const rn_classic_join_req *j, int64_t now_ms, rn_classic_waiter *w)
{
    const char *mid = j->member_id ? j->member_id : "";
    size_t gl = j->group_id ? strlen(j->group_id) : 0;
    if (gl == 0 || gl > 249) {
        answer_error(cg, w, -RN_E_INVALID_REQUEST, mid);
        return;
    }
    if (j->session_timeout_ms < RN_CLASSIC_SESSION_MIN_MS ||
        j->session_timeout_ms > RN_CLASSIC_SESSION_MAX_MS) {
        answer_error(cg, w, -RN_E_INVALID_SESSION_TIMEOUT, mid);
        return;
    }
    if (!j->protocol_type || !*j->protocol_type || j->n_protocols == 0 ||
        (cg->env.native_active && cg->env.native_active(cg->env.arg, j->group_id))) {
        answer_error(cg, w, -RN_E_INCONSISTENT_GROUP_PROTOCOL, mid);
        return;
    }
    cgroup *g = find_group(cg, j->group_id);
    cmember *m = find_member(g, mid, NULL);
    if (*mid && !m && !(g && take_pending(g, mid))) {
        answer_error(cg, w, -RN_E_UNKNOWN_MEMBER, mid);
        return;
    }
    if (!g && !(g = create_group(cg, j->group_id))) {
        answer_error(cg, w, -ENOMEM, mid);
        return;
    }
    if (!protocols_fit(g, m, j->protocol_type, j->protocols, j->n_protocols)) {
        answer_error(cg, w, -RN_E_INCONSISTENT_GROUP_PROTOCOL, mid);
        maybe_drop(cg, g);
        return;
    }
    if (!*mid && j->require_member_id) {
        char id[160];
        int rc = new_member_id(j->client_id, id, sizeof(id));
        if (rc == 0)
            rc = add_pending(g, id, now_ms + j->session_timeout_ms);
        answer_error(cg, w, rc < 0 ? rc : -RN_E_MEMBER_ID_REQUIRED, rc < 0 ? "" : id);
        maybe_drop(cg, g);
        return;
    }
    bool is_new = m == NULL;
    if (is_new) {
        char id[160];
        if (!*mid) {
            int rc = new_member_id(j->client_id, id, sizeof(id));
            if (rc < 0) {
                answer_error(cg, w, rc, "");
                maybe_drop(cg, g);
                return;
            }
            mid = id;
        }
        if (!g->protocol_type && !(g->protocol_type = strdup(j->protocol_type))) {
            answer_error(cg, w, -ENOMEM, mid);
            maybe_drop(cg, g);
            return;
        }
        if (!(m = add_member(g, mid))) {
            answer_error(cg, w, -ENOMEM, mid);
            maybe_drop(cg, g);
            return;
        }
    }
    int changed = member_update(m, j, now_ms);
    if (changed < 0) {
        answer_error(cg, w, changed, m->id);
        if (is_new)
            remove_member(cg, g, g->n_members - 1, now_ms, "out_of_memory");
        return;
    }
    if (g->n_members == 1 && strcmp(g->protocol_type, j->protocol_type) != 0) {
        /* The only member may change the group's protocol type. */
        char *t = strdup(j->protocol_type);
        if (!t) {
            answer_error(cg, w, -ENOMEM, m->id);
            return;
        }
        free(g->protocol_type);
        g->protocol_type = t;
    }
    if (is_new)
        rn_logfmt(RN_INFO, "classic group member joined", "group=%s member=%s members=%zu", g->id,
                  m->id, g->n_members);
    bool leader = g->leader && strcmp(g->leader, m->id) == 0;
    switch (g->state) {
    case EMPTY:
    case PREPARING:
        wait_on(cg, m, w, false);
        prepare_rebalance(cg, g, now_ms, is_new ? "member_joined" : "member_rejoined");
        try_complete_join(cg, g, now_ms);
        break;
    case COMPLETING:
    case STABLE:
        if (!is_new && !changed && !(g->state == STABLE && leader)) {
            /* A member that lost the answer asks again: same generation. */
            answer_join(cg, g, m, w);
            break;
        }
        wait_on(cg, m, w, false);
        prepare_rebalance(cg, g, now_ms,
                          is_new    ? "member_joined"
                          : changed ? "metadata_changed"
                                    : "leader_rejoined");
        try_complete_join(cg, g, now_ms);
        break;
    }
}

void rn_classic_join(rn_classic *cg, const rn_classic_join_req *j, int64_t now_ms,
                     rn_classic_waiter *w)
{
    join(cg, j, now_ms, w);
    deliver(cg);
}

/* ---- SyncGroup ------------------------------------------------------------------------------ */

static void do_sync(rn_classic *cg, const char *group_id, const char *member_id, int32_t generation,
                    const char *ptype, const char *pname, const rn_classic_assignment *asg,
                    size_t n_asg, int64_t now_ms, rn_classic_waiter *w)
{
    cgroup *g = find_group(cg, group_id);
    cmember *m = find_member(g, member_id, NULL);
    if (!m) {
        answer_error(cg, w, -RN_E_UNKNOWN_MEMBER, member_id);
        return;
    }
    if (generation != g->generation) {
        answer_error(cg, w, -RN_E_ILLEGAL_GENERATION, member_id);
        return;
    }
    if ((ptype && g->protocol_type && strcmp(ptype, g->protocol_type) != 0) ||
        (pname && g->protocol && strcmp(pname, g->protocol) != 0)) {
        answer_error(cg, w, -RN_E_INCONSISTENT_GROUP_PROTOCOL, member_id);
        return;
    }
    m->last_seen_ms = now_ms;
    if (g->state == PREPARING || g->state == EMPTY) {
        answer_error(cg, w, -RN_E_REBALANCE_IN_PROGRESS, member_id);
        return;
    }
    if (g->state == STABLE) {
        answer_sync(cg, m, w);
        return;
    }
    /* CompletingRebalance */
    wait_on(cg, m, w, true);
    if (!g->leader || strcmp(g->leader, m->id) != 0)
        return;
    /* The leader's assignments: every member gets its own, or none. Copy
     * all first so that running out of memory changes nothing. */
    size_t nm = g->n_members ? g->n_members : 1;
    uint8_t **copies = calloc(nm, sizeof(*copies));
    size_t *lens = calloc(nm, sizeof(*lens));
    rn_assign_tp **tps = calloc(nm, sizeof(*tps));
    size_t *n_tps = calloc(nm, sizeof(*n_tps));
    bool ok = copies && lens && tps && n_tps;
    for (size_t i = 0; ok && i < g->n_members; i++) {
        const rn_classic_assignment *a = NULL;
        for (size_t k = 0; k < n_asg; k++)
            if (asg[k].member_id && strcmp(asg[k].member_id, g->members[i]->id) == 0)
                a = &asg[k];
        lens[i] = a ? a->len : 0;
        n_tps[i] = a ? a->n_tps : 0;
        ok = (copies[i] = dup_bytes(a ? a->data : NULL, lens[i])) != NULL &&
             (tps[i] = tps_dup(a ? a->tps : NULL, n_tps[i])) != NULL;
    }
    if (!ok) {
        for (size_t i = 0; copies && tps && n_tps && i < g->n_members; i++) {
            free(copies[i]);
            if (tps[i])
                tps_free(tps[i], n_tps[i]);
        }
        free(copies);
        free(lens);
        free(tps);
        free(n_tps);
        answer_error(cg, w, -ENOMEM, member_id);
        return;
    }
    for (size_t i = 0; i < g->n_members; i++) {
        cmember *o = g->members[i];
        free(o->assignment);
        o->assignment = copies[i];
        o->assignment_len = lens[i];
        o->has_assignment = true;
        tps_free(o->tps, o->n_tps);
        o->tps = tps[i];
        o->n_tps = n_tps[i];
    }
    free(copies);
    free(lens);
    free(tps);
    free(n_tps);
    g->state = STABLE;
    rn_logfmt(RN_INFO, "classic group stable", "group=%s generation=%d members=%zu", g->id,
              g->generation, g->n_members);
    for (size_t i = 0; i < g->n_members; i++)
        if (g->members[i]->sync_w)
            answer_sync(cg, g->members[i], g->members[i]->sync_w);
}

void rn_classic_sync(rn_classic *cg, const char *group_id, const char *member_id,
                     int32_t generation, const char *protocol_type, const char *protocol_name,
                     const rn_classic_assignment *asg, size_t n_asg, int64_t now_ms,
                     rn_classic_waiter *w)
{
    do_sync(cg, group_id, member_id ? member_id : "", generation, protocol_type, protocol_name, asg,
            n_asg, now_ms, w);
    deliver(cg);
}

/* ---- Heartbeat, leave, commits -------------------------------------------------------------- */

int rn_classic_heartbeat(rn_classic *cg, const char *group_id, const char *member_id,
                         int32_t generation, int64_t now_ms)
{
    cgroup *g = find_group(cg, group_id);
    cmember *m = find_member(g, member_id, NULL);
    if (!m)
        return -RN_E_UNKNOWN_MEMBER;
    if (g->state == PREPARING) {
        m->last_seen_ms = now_ms;
        return -RN_E_REBALANCE_IN_PROGRESS;
    }
    if (generation != g->generation)
        return -RN_E_ILLEGAL_GENERATION;
    m->last_seen_ms = now_ms;
    return 0;
}

int rn_classic_leave(rn_classic *cg, const char *group_id, const char *member_id, int64_t now_ms)
{
    cgroup *g = find_group(cg, group_id);
    size_t i;
    if (!find_member(g, member_id, &i))
        return -RN_E_UNKNOWN_MEMBER;
    remove_member(cg, g, i, now_ms, "left");
    maybe_drop(cg, g);
    deliver(cg);
    return 0;
}

int rn_classic_commit_check(rn_classic *cg, const char *group_id, const char *member_id,
                            int32_t generation, int64_t now_ms)
{
    cgroup *g = find_group(cg, group_id);
    if ((!member_id || !*member_id) && generation < 0)
        return g && g->n_members ? -RN_E_GROUP_NOT_EMPTY : 0;
    cmember *m = find_member(g, member_id, NULL);
    if (!m)
        return -RN_E_UNKNOWN_MEMBER;
    if (generation != g->generation)
        return -RN_E_ILLEGAL_GENERATION;
    /* As Kafka: a member of the current generation may still commit while
     * the group prepares a rebalance (it commits what it consumed before
     * giving its partitions up, and learns of the rebalance from its
     * heartbeat), but not between the new generation and its assignment. */
    if (g->state == COMPLETING)
        return -RN_E_REBALANCE_IN_PROGRESS;
    m->last_seen_ms = now_ms;
    return 0;
}

/* ---- Time ------------------------------------------------------------------------------------ */

void rn_classic_tick(rn_classic *cg, int64_t now_ms)
{
    for (size_t gi = cg->n; gi-- > 0;) {
        cgroup *g = cg->groups[gi];
        for (size_t i = g->n_pending; i-- > 0;)
            if (now_ms >= g->pending[i].until_ms) {
                free(g->pending[i].id);
                g->pending[i] = g->pending[--g->n_pending];
            }
        for (size_t i = g->n_members; i-- > 0;) {
            cmember *m = g->members[i];
            if (!m->join_w && !m->sync_w && now_ms - m->last_seen_ms > m->session_ms)
                remove_member(cg, g, i, now_ms, "session_timeout");
        }
        if (g->state == PREPARING && now_ms >= g->deadline_ms) {
            /* Who has not joined again by now is out (invariant 3). */
            for (size_t i = g->n_members; i-- > 0;)
                if (!g->members[i]->join_w) {
                    g->state = EMPTY; /* so the removal does not move the group */
                    remove_member(cg, g, i, now_ms, "rebalance_timeout");
                    g->state = PREPARING;
                }
            complete_join(cg, g, now_ms);
        } else if (g->state == COMPLETING && now_ms >= g->deadline_ms) {
            /* The leader's assignment did not come: start over. */
            prepare_rebalance(cg, g, now_ms, "sync_timeout");
        }
        maybe_drop(cg, g);
    }
    deliver(cg);
}

/* ---- Queries ------------------------------------------------------------------------------ */

bool rn_classic_active(const rn_classic *cg, const char *group_id)
{
    const cgroup *g = find_group(cg, group_id);
    return g && (g->n_members || g->n_pending);
}

int rn_classic_forget(rn_classic *cg, const char *group_id)
{
    cgroup *g = find_group(cg, group_id);
    if (!g)
        return 0;
    if (g->n_members)
        return -RN_E_GROUP_NOT_EMPTY;
    for (size_t i = 0; i < g->n_pending; i++)
        free(g->pending[i].id);
    g->n_pending = 0;
    maybe_drop(cg, g);
    return 0;
}

static void fill_info(const cgroup *g, rn_classic_group_info *out)
{
    *out = (rn_classic_group_info){.group_id = g->id,
                                   .state = state_names[g->state],
                                   .generation = g->generation,
                                   .protocol_type = g->protocol_type ? g->protocol_type : "",
                                   .protocol_name = g->protocol ? g->protocol : "",
                                   .leader_id = g->leader ? g->leader : "",
                                   .n_members = g->n_members};
}

size_t rn_classic_count(const rn_classic *cg)
{
    return cg->n;
}

int rn_classic_group_at(const rn_classic *cg, size_t i, rn_classic_group_info *out)
{
    if (i >= cg->n)
        return -ERANGE;
    fill_info(cg->groups[i], out);
    return 0;
}

int rn_classic_describe(const rn_classic *cg, const char *group_id, rn_classic_group_info *out)
{
    const cgroup *g = find_group(cg, group_id);
    if (!g)
        return -RN_E_UNKNOWN_GROUP;
    fill_info(g, out);
    return 0;
}

int rn_classic_member(const rn_classic *cg, const char *group_id, size_t i,
                      rn_classic_member_info *out)
{
    const cgroup *g = find_group(cg, group_id);
    if (!g)
        return -RN_E_UNKNOWN_GROUP;
    if (i >= g->n_members)
        return -ERANGE;
    const cmember *m = g->members[i];
    const cproto *p = member_proto(m, g->protocol);
    *out = (rn_classic_member_info){.member_id = m->id,
                                    .client_id = m->client_id ? m->client_id : "",
                                    .host = m->host ? m->host : "",
                                    .meta = p ? p->meta : NULL,
                                    .meta_len = p ? p->len : 0,
                                    .assignment = m->has_assignment ? m->assignment : NULL,
                                    .assignment_len = m->has_assignment ? m->assignment_len : 0,
                                    .topics = (const char *const *)m->topics,
                                    .n_topics = m->n_topics,
                                    .tps = m->tps,
                                    .n_tps = m->n_tps,
                                    .session_timeout_ms = m->session_ms,
                                    .last_heartbeat_ms = m->last_seen_ms};
    return 0;
}

const char *rn_classic_owner(const rn_classic *cg, const char *group_id, const char *topic,
                             int32_t partition)
{
    const cgroup *g = find_group(cg, group_id);
    for (size_t i = 0; g && topic && i < g->n_members; i++) {
        const cmember *m = g->members[i];
        for (size_t k = 0; k < m->n_tps; k++)
            if (m->tps[k].partition == partition && strcmp(m->tps[k].topic, topic) == 0)
                return m->id;
    }
    return NULL;
}

/* ---- Life cycle ----------------------------------------------------------------------------- */

int rn_classic_new(rn_classic **out, const rn_classic_env *env)
{
    rn_classic *cg = calloc(1, sizeof(*cg));
    if (!cg)
        return -ENOMEM;
    if (env)
        cg->env = *env;
    *out = cg;
    return 0;
}

static void drop_waiter(rn_classic_waiter *w)
{
    if (!w)
        return;
    w->state_ = W_IDLE;
    w->member_ = NULL;
    w->cg_ = NULL;
}

void rn_classic_free(rn_classic *cg)
{
    if (!cg)
        return;
    while (cg->ready_head) {
        rn_classic_waiter *w = cg->ready_head;
        ready_unlink(cg, w);
        ans_free(w->ans_);
        w->ans_ = NULL;
        drop_waiter(w);
    }
    for (size_t gi = 0; gi < cg->n; gi++) {
        cgroup *g = cg->groups[gi];
        for (size_t i = 0; i < g->n_members; i++) {
            drop_waiter(g->members[i]->join_w);
            drop_waiter(g->members[i]->sync_w);
            member_free(g->members[i]);
        }
        g->n_members = 0;
        for (size_t i = 0; i < g->n_pending; i++)
            free(g->pending[i].id);
        free(g->pending);
        free(g->members);
        free(g->id);
        free(g->protocol_type);
        free(g->protocol);
        free(g->leader);
        free(g);
    }
    free(cg->groups);
    free(cg);
}
