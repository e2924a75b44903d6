/*
 * groups.c — the consumer group coordinator: members, epochs, target
 * assignment, incremental hand-over, session timeouts (see groups.h).
 *
 * How it fits: api/groups.c turns GroupHeartbeat / CommitOffsets /
 * FetchOffsets / ListGroups / DescribeGroup requests into calls here; the
 * reactor's tick calls rn_groups_tick; committed offsets go through
 * broker/coord/offsets.c into __offsets; assignments come from broker/coord/assignor.c.
 * The broker is reached only through rn_groups_env (topic sizes, the
 * __offsets log), so tests drive the coordinator without sockets; what ties
 * it to the __offsets topic (the gate that loads it on a new leadership,
 * creating it, the runneld env with its commit hold) is offsets_topic.c's,
 * and the state both files share is in groups_int.h.
 *
 * A heartbeat, in order:
 *   1. check the epoch: 0 joins (a new member, or the same id starting over
 *      owning nothing), -1 leaves, anything else must be the member's current
 *      or previous epoch (the previous one: the last answer was lost);
 *   2. record subscription, owned partitions (only those that exist),
 *      session timeout, time; a join or a changed subscription bumps the
 *      group epoch;
 *   3. refresh the target: a change in the subscribed topics (one appeared,
 *      went, grew — seen through a hash of their names and sizes) bumps the
 *      group epoch too; when the group epoch is ahead of the target's, the
 *      assignor runs with the current target as its sticky input;
 *   4. reconcile the member: given = (given ∩ target) ∪ (target partitions no
 *      other member holds), where another member holds what it has been
 *      given or says it owns; the member epoch catches up with the target
 *      once the member owns nothing outside its target;
 *   5. answer given, with a short heartbeat interval while the member still
 *      has partitions to take or to drop.
 *
 * Invariants:
 *   1. No partition is in the given sets of two members (step 4 only adds
 *      what no other member holds).
 *   2. A partition leaves a member's hands only through that member's own
 *      heartbeat (its owned no longer lists it), its leave, or its removal.
 *   3. group epoch >= assignment epoch >= every member epoch; a group with
 *      epoch > assignment epoch gets a new target before anyone is answered.
 *   4. Members and groups are kept sorted by id; topic names in partition
 *      lists are interned (one copy per name for the coordinator's life), so
 *      lists compare by strcmp and answers can borrow them.
 *   5. A group without members is dropped; it lives on in listings while it
 *      has committed offsets.
 *   6. A group id is native or classic (Kafka's JoinGroup/SyncGroup, kept in
 *      broker/coord/classic_group.c), never both at once: while one kind has
 *      members, the other kind's join gets INCONSISTENT_GROUP_PROTOCOL. Both
 *      kinds commit into the same offsets table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/coord/classic_group.h"
#include "broker/coord/groups.h"
#include "broker/coord/groups_int.h"
#include "broker/coord/member_id.h"
#include "broker/logfmt.h"
#include "broker/sorted.h"
#include "protocol/errors.h"

/* ---- State ---------------------------------------------------------------------- */

/* A sorted list of partitions whose topic names are interned. */
typedef struct tplist {
    rn_assign_tp *v;
    size_t n, cap;
} tplist;

typedef struct member {
    char *id;
    char *client_id;
    char *host;
    int32_t epoch, prev_epoch;
    char **topics; /* subscription, sorted, unique */
    size_t n_topics;
    uint32_t session_ms;
    int64_t last_seen_ms;
    tplist owned, given, target;
} member;

typedef struct group {
    char *id;
    int32_t epoch;
    int32_t assignment_epoch;
    enum rn_assignor assignor;
    member **members; /* sorted by id */
    size_t n_members, cap;
    uint64_t meta_hash; /* of the subscribed topics' names and sizes behind the target */
} group;

static bool group_id_ok(const char *id)
{
    if (!id)
        return false;
    size_t n = strnlen(id, RN_GROUP_ID_MAX + 1);
    return n >= 1 && n <= RN_GROUP_ID_MAX;
}

/* ---- Interned names and partition lists ------------------------------------------- */

static const char *intern(rn_groups *g, const char *name)
{
    size_t lo = 0, hi = g->n_names;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->names[mid], name);
        if (c == 0)
            return g->names[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (rn_array_reserve(&g->names, g->n_names, &g->cap_names, sizeof(*g->names), 16) < 0)
        return NULL;
    char *s = strdup(name);
    if (!s)
        return NULL;
    rn_array_insert(g->names, g->n_names++, sizeof(*g->names), lo, &s);
    return s;
}

static int tp_cmp(const void *a, const void *b)
{
    const rn_assign_tp *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

static bool tpl_has(const tplist *l, const rn_assign_tp *tp)
{
    return l->n && bsearch(tp, l->v, l->n, sizeof(*l->v), tp_cmp) != NULL;
}

static void tpl_free(tplist *l)
{
    free(l->v);
    *l = (tplist){0};
}

static int tpl_push(tplist *l, const char *topic, int32_t partition)
{
    if (rn_array_reserve(&l->v, l->n, &l->cap, sizeof(*l->v), 8) < 0)
        return -ENOMEM;
    l->v[l->n++] = (rn_assign_tp){topic, partition};
    return 0;
}

/* Sort and drop duplicates. */
static void tpl_normalize(tplist *l)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof(*l->v), tp_cmp);
    size_t w = 1;
    for (size_t i = 1; i < l->n; i++)
        if (tp_cmp(&l->v[i], &l->v[w - 1]) != 0)
            l->v[w++] = l->v[i];
    l->n = w;
}

static bool tpl_equal(const tplist *a, const tplist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (tp_cmp(&a->v[i], &b->v[i]) != 0)
            return false;
    return true;
}

static bool tpl_subset(const tplist *a, const tplist *b)
{
    for (size_t i = 0; i < a->n; i++)
        if (!tpl_has(b, &a->v[i]))
            return false;
    return true;
}

/* ---- Groups and members ------------------------------------------------------------- */

static void member_free(member *m)
{
    if (!m)
        return;
    free(m->id);
    free(m->client_id);
    free(m->host);
    for (size_t i = 0; i < m->n_topics; i++)
        free(m->topics[i]);
    free(m->topics);
    tpl_free(&m->owned);
    tpl_free(&m->given);
    tpl_free(&m->target);
    free(m);
}

static void group_free(group *grp)
{
    for (size_t i = 0; i < grp->n_members; i++)
        member_free(grp->members[i]);
    free(grp->members);
    free(grp->id);
    free(grp);
}

RN_SORTED_CMP_STR(cmp_group_id, group, id)

static size_t group_index(const rn_groups *g, const char *id, bool *found)
{
    return rn_sorted_find(g->groups, g->n, sizeof(*g->groups), id, cmp_group_id, found);
}

static group *find_group(const rn_groups *g, const char *id)
{
    bool found;
    size_t i = group_index(g, id, &found);
    return found ? g->groups[i] : NULL;
}

static group *create_group(rn_groups *g, const char *id)
{
    bool found;
    size_t at = group_index(g, id, &found);
    if (found)
        return g->groups[at];
    if (rn_array_reserve(&g->groups, g->n, &g->cap, sizeof(*g->groups), 16) < 0)
        return NULL;
    group *grp = calloc(1, sizeof(*grp));
    if (!grp || !(grp->id = strdup(id))) {
        free(grp);
        return NULL;
    }
    rn_array_insert(g->groups, g->n++, sizeof(*g->groups), at, &grp);
    return grp;
}

/* Drop a group that has no members left (invariant 5). */
static void maybe_drop_group(rn_groups *g, group *grp)
{
    if (!grp || grp->n_members)
        return;
    bool found;
    size_t at = group_index(g, grp->id, &found);
    if (!found)
        return;
    memmove(g->groups + at, g->groups + at + 1, (g->n - at - 1) * sizeof(*g->groups));
    g->n--;
    group_free(grp);
}

RN_SORTED_CMP_STR(cmp_member_id, member, id)

static size_t member_index(const group *grp, const char *id, bool *found)
{
    return rn_sorted_find(grp->members, grp->n_members, sizeof(*grp->members), id, cmp_member_id,
                          found);
}

static member *find_member(const group *grp, const char *id)
{
    if (!grp || !id || !*id)
        return NULL;
    bool found;
    size_t i = member_index(grp, id, &found);
    return found ? grp->members[i] : NULL;
}

static member *add_member(group *grp, const char *id)
{
    bool found;
    size_t at = member_index(grp, id, &found);
    if (found)
        return grp->members[at];
    if (rn_array_reserve(&grp->members, grp->n_members, &grp->cap, sizeof(*grp->members), 8) < 0)
        return NULL;
    member *m = calloc(1, sizeof(*m));
    if (!m || !(m->id = strdup(id))) {
        free(m);
        return NULL;
    }
    rn_array_insert(grp->members, grp->n_members++, sizeof(*grp->members), at, &m);
    return m;
}

/* Remove member i: its partitions are free at once; the group epoch moves. */
static void remove_member(group *grp, size_t i, const char *why)
{
    member *m = grp->members[i];
    rn_logfmt(RN_INFO, "group member removed", "group=%s member=%s reason=%s partitions=%zu",
              grp->id, m->id, why, m->given.n);
    memmove(grp->members + i, grp->members + i + 1,
            (grp->n_members - i - 1) * sizeof(*grp->members));
    grp->n_members--;
    member_free(m);
    grp->epoch++;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replace the subscription; 1 when it changed, 0 when not, -ENOMEM. */
static int set_subscription(member *m, const char *const *topics, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!topics[i] || !*topics[i])
            continue;
        if (!(v[k] = strdup(topics[i]))) {
            for (size_t j = 0; j < k; j++)
                free(v[j]);
            free(v);
            return -ENOMEM;
        }
        k++;
    }
    qsort(v, k, sizeof(*v), str_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w && strcmp(v[w - 1], v[i]) == 0)
            free(v[i]);
        else
            v[w++] = v[i];
    }
    bool same = w == m->n_topics;
    for (size_t i = 0; same && i < w; i++)
        same = strcmp(v[i], m->topics[i]) == 0;
    if (same) {
        for (size_t i = 0; i < w; i++)
            free(v[i]);
        free(v);
        return 0;
    }
    for (size_t i = 0; i < m->n_topics; i++)
        free(m->topics[i]);
    free(m->topics);
    m->topics = v;
    m->n_topics = w;
    return 1;
}

static int set_str(char **dst, const char *src)
{
    if (!src)
        src = "";
    if (*dst && strcmp(*dst, src) == 0)
        return 0;
    char *s = strdup(src);
    if (!s)
        return -ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

/* ---- Target assignment ------------------------------------------------------------------- */

/* The sorted union of the members' subscriptions (borrowed strings). */
static int subscribed_union(const group *grp, const char ***out, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < grp->n_members; i++)
        total += grp->members[i]->n_topics;
    const char **v = calloc(total ? total : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < grp->n_members; i++)
        for (size_t t = 0; t < grp->members[i]->n_topics; t++)
            v[k++] = grp->members[i]->topics[t];
    qsort(v, k, sizeof(*v), str_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
        if (!w || strcmp(v[w - 1], v[i]) != 0)
            v[w++] = v[i];
    *out = v;
    *n = w;
    return 0;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int recompute(rn_groups *g, group *grp, const char **names, size_t n_names)
{
    rn_assign_topic *topics = calloc(n_names ? n_names : 1, sizeof(*topics));
    rn_assign_member *ms = calloc(grp->n_members ? grp->n_members : 1, sizeof(*ms));
    rn_assignment *out = calloc(grp->n_members ? grp->n_members : 1, sizeof(*out));
    int rc = -ENOMEM;
    if (!topics || !ms || !out)
        goto done;
    size_t nt = 0;
    for (size_t i = 0; i < n_names; i++) {
        int32_t np = g->env.topic_partitions(g->env.arg, names[i]);
        if (np >= 0)
            topics[nt++] = (rn_assign_topic){names[i], np};
    }
    for (size_t i = 0; i < grp->n_members; i++) {
        member *m = grp->members[i];
        ms[i] = (rn_assign_member){.id = m->id,
                                   .topics = (const char *const *)m->topics,
                                   .n_topics = m->n_topics,
                                   .current = m->target.v,
                                   .n_current = m->target.n};
    }
    rc = rn_assign(grp->assignor, topics, nt, ms, grp->n_members, out);
    if (rc < 0)
        goto done;
    /* Build every new list before replacing any, so a failure changes nothing. */
    tplist *next = calloc(grp->n_members ? grp->n_members : 1, sizeof(*next));
    if (!next) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < grp->n_members && rc == 0; i++) {
        for (size_t k = 0; k < out[i].n && rc == 0; k++) {
            const char *t = intern(g, out[i].tps[k].topic);
            rc = t ? tpl_push(&next[i], t, out[i].tps[k].partition) : -ENOMEM;
        }
    }
    for (size_t i = 0; i < grp->n_members; i++) {
        if (rc == 0) {
            tpl_free(&grp->members[i]->target);
            grp->members[i]->target = next[i]; /* already sorted by the assignor */
        } else {
            tpl_free(&next[i]);
        }
    }
    free(next);
    if (rc == 0)
        grp->assignment_epoch = grp->epoch;

done:
    rn_assignment_free(out, grp->n_members);
    free(out);
    free(ms);
    free(topics);
    return rc;
}

/* Step 3 of a heartbeat: notice topic changes, recompute the target when the
 * group epoch is ahead of it. */
static int refresh_target(rn_groups *g, group *grp)
{
    const char **names;
    size_t n;
    int rc = subscribed_union(grp, &names, &n);
    if (rc < 0)
        return rc;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        int32_t np = g->env.topic_partitions(g->env.arg, names[i]);
        h = fnv1a(h, names[i], strlen(names[i]) + 1);
        h = fnv1a(h, &np, sizeof(np));
    }
    /* Only a change the epoch has not already announced needs a bump. */
    if (h != grp->meta_hash && grp->epoch == grp->assignment_epoch)
        grp->epoch++;
    grp->meta_hash = h;
    if (grp->epoch != grp->assignment_epoch)
        rc = recompute(g, grp, names, n);
    free(names);
    return rc;
}

/* ---- Reconciliation ----------------------------------------------------------------------- */

static bool held_by_other(const group *grp, const member *self, const rn_assign_tp *tp)
{
    for (size_t i = 0; i < grp->n_members; i++) {
        const member *o = grp->members[i];
        if (o != self && (tpl_has(&o->given, tp) || tpl_has(&o->owned, tp)))
            return true;
    }
    return false;
}

/* Step 4: the member's new given set and epoch. */
static int reconcile(group *grp, member *m)
{
    tplist next = {0};
    for (size_t i = 0; i < m->target.n; i++) {
        const rn_assign_tp *tp = &m->target.v[i];
        if (tpl_has(&m->given, tp) || !held_by_other(grp, m, tp)) {
            if (tpl_push(&next, tp->topic, tp->partition) < 0) {
                tpl_free(&next);
                return -ENOMEM;
            }
        }
    }
    tpl_free(&m->given);
    m->given = next; /* a subsequence of the sorted target: sorted */
    if (tpl_subset(&m->owned, &m->target) && m->epoch != grp->assignment_epoch) {
        m->prev_epoch = m->epoch;
        m->epoch = grp->assignment_epoch;
    }
    return 0;
}

static bool member_reconciling(const group *grp, const member *m)
{
    return m->epoch != grp->assignment_epoch || !tpl_equal(&m->given, &m->target) ||
           !tpl_subset(&m->owned, &m->target);
}

static const char *group_state(const group *grp)
{
    if (!grp || grp->n_members == 0)
        return "Empty";
    if (grp->epoch != grp->assignment_epoch)
        return "Reconciling";
    for (size_t i = 0; i < grp->n_members; i++)
        if (member_reconciling(grp, grp->members[i]))
            return "Reconciling";
    return "Stable";
}

/* Keep the partitions of owned that exist (interned), sorted. */
static int set_owned(rn_groups *g, member *m, const rn_assign_tp *owned, size_t n)
{
    tplist next = {0};
    for (size_t i = 0; i < n; i++) {
        if (!owned[i].topic || owned[i].partition < 0)
            continue;
        int32_t np = g->env.topic_partitions(g->env.arg, owned[i].topic);
        if (owned[i].partition >= np)
            continue;
        const char *t = intern(g, owned[i].topic);
        if (!t || tpl_push(&next, t, owned[i].partition) < 0) {
            tpl_free(&next);
            return -ENOMEM;
        }
    }
    tpl_normalize(&next);
    tpl_free(&m->owned);
    m->owned = next;
    return 0;
}

/* ---- Heartbeat ------------------------------------------------------------------------------- */

int rn_groups_heartbeat(rn_groups *g, const rn_group_heartbeat *hb, int64_t now_ms,
                        rn_group_heartbeat_result *res, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!group_id_ok(hb->group_id))
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen, "group id must be 1 to %d bytes",
                       RN_GROUP_ID_MAX);
    enum rn_assignor assignor;
    if (rn_assignor_parse(hb->assignor, &assignor) < 0)
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen,
                       "assignor \"%.32s\" is not \"range\" or \"sticky\"", hb->assignor);
    const char *mid = hb->member_id ? hb->member_id : "";
    if (strnlen(mid, RN_GROUP_MEMBER_ID_MAX + 1) > RN_GROUP_MEMBER_ID_MAX)
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen, "member id longer than %d bytes",
                       RN_GROUP_MEMBER_ID_MAX);
    if (hb->member_epoch < -1)
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen, "member epoch %" PRId32 " is below -1",
                       hb->member_epoch);
    if (hb->member_epoch != -1 && rn_classic_active(g->classic, hb->group_id))
        return rn_errf(-RN_E_INCONSISTENT_GROUP_PROTOCOL, err, errlen,
                       "group %s is a classic (Kafka JoinGroup) group with members", hb->group_id);
    group *grp = find_group(g, hb->group_id);

    if (hb->member_epoch == -1) {
        bool found = false;
        size_t i = grp && *mid ? member_index(grp, mid, &found) : 0;
        if (found) {
            remove_member(grp, i, "left");
            maybe_drop_group(g, grp);
        }
        *res = (rn_group_heartbeat_result){
            .member_id = mid, .member_epoch = -1, .heartbeat_interval_ms = RN_GROUP_HEARTBEAT_MS};
        return 0;
    }

    member *m;
    bool changed = false;
    if (hb->member_epoch > 0) {
        m = find_member(grp, mid);
        if (!m)
            return rn_errf(-RN_E_UNKNOWN_MEMBER, err, errlen,
                           "member \"%.64s\" is not in group %s (join again with epoch 0)", mid,
                           hb->group_id);
        if (hb->member_epoch != m->epoch && hb->member_epoch != m->prev_epoch)
            return rn_errf(-RN_E_FENCED_MEMBER_EPOCH, err, errlen,
                           "member %s: epoch %" PRId32 " is not the current %" PRId32
                           " (join again with epoch 0)",
                           m->id, hb->member_epoch, m->epoch);
    } else {
        char fresh[40];
        if (!*mid) {
            do {
                int rc = rn_member_id_new(NULL, fresh, sizeof(fresh));
                if (rc < 0)
                    return rn_errf(rc, err, errlen, "getrandom: %s", rn_strerror(rc));
            } while (find_member(grp, fresh));
            mid = fresh;
        }
        bool created = !grp;
        if (!grp && !(grp = create_group(g, hb->group_id)))
            return rn_errf(-ENOMEM, err, errlen, "out of memory");
        m = find_member(grp, mid);
        if (m) {
            /* The same id joining again starts over: it owns nothing. */
            tpl_free(&m->owned);
            tpl_free(&m->given);
            m->epoch = m->prev_epoch = 0;
        } else if (!(m = add_member(grp, mid))) {
            if (created)
                maybe_drop_group(g, grp);
            return rn_errf(-ENOMEM, err, errlen, "out of memory");
        }
        if (grp->n_members == 1)
            grp->assignor = assignor; /* the group takes its first member's */
        changed = true;
        rn_logfmt(RN_INFO, "group member joined", "group=%s member=%s members=%zu", grp->id, m->id,
                  grp->n_members);
    }

    m->last_seen_ms = now_ms;
    m->session_ms = hb->session_timeout_ms ? hb->session_timeout_ms : RN_GROUP_SESSION_TIMEOUT_MS;
    int rc = set_str(&m->client_id, hb->client_id);
    if (rc == 0)
        rc = set_str(&m->host, hb->host);
    int sub = rc == 0 ? set_subscription(m, hb->topics, hb->n_topics) : rc;
    if (sub < 0)
        rc = sub;
    if (rc == 0)
        rc = set_owned(g, m, hb->owned, hb->n_owned);
    if (sub > 0 || changed)
        grp->epoch++;
    if (rc == 0)
        rc = refresh_target(g, grp);
    if (rc == 0)
        rc = reconcile(grp, m);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "out of memory");

    rn_assign_tp *a = NULL;
    if (m->given.n) {
        a = malloc(m->given.n * sizeof(*a));
        if (!a)
            return rn_errf(-ENOMEM, err, errlen, "out of memory");
        memcpy(a, m->given.v, m->given.n * sizeof(*a));
    }
    uint32_t interval = member_reconciling(grp, m) ? RN_GROUP_RECONCILE_MS : RN_GROUP_HEARTBEAT_MS;
    /* Three heartbeats fit in a session, whatever the member asked for. */
    if (interval > m->session_ms / 3)
        interval = m->session_ms / 3 ? m->session_ms / 3 : 1;
    *res = (rn_group_heartbeat_result){.member_id = m->id,
                                       .member_epoch = m->epoch,
                                       .heartbeat_interval_ms = interval,
                                       .assignment = a,
                                       .n_assignment = m->given.n};
    return 0;
}

void rn_groups_tick(rn_groups *g, int64_t now_ms)
{
    if (!g)
        return;
    /* Drops the groups once this broker stops leading __offsets. */
    char err[160];
    if (rn_groups_gate(g, NULL, err, sizeof(err)) < 0)
        return;
    rn_classic_tick(g->classic, now_ms);
    for (size_t gi = g->n; gi-- > 0;) {
        group *grp = g->groups[gi];
        for (size_t i = grp->n_members; i-- > 0;) {
            member *m = grp->members[i];
            if (now_ms - m->last_seen_ms > (int64_t)m->session_ms)
                remove_member(grp, i, "session_timeout");
        }
        maybe_drop_group(g, grp);
    }
}

/* ---- Offsets ----------------------------------------------------------------------------------
 */

static int write_commit(rn_groups *g, const char *group_id, rn_group_commit *c, size_t n,
                        int64_t now_ms, rn_groups_cb cb, void *arg, char *err, size_t errlen);

/* What every commit checks first (err cleared): the group id; then the
 * group, NULL when it has no native members' state. */
static int commit_group(rn_groups *g, const char *group_id, group **grp, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!group_id_ok(group_id))
        return rn_errf(-RN_E_INVALID_REQUEST, err, errlen, "group id must be 1 to %d bytes",
                       RN_GROUP_ID_MAX);
    *grp = find_group(g, group_id);
    return 0;
}

int rn_groups_commit(rn_groups *g, const char *group_id, const char *member_id,
                     int32_t member_epoch, rn_group_commit *c, size_t n, int64_t now_ms,
                     rn_groups_cb cb, void *arg, char *err, size_t errlen)
{
    group *grp = NULL; /* set by commit_group; NULL keeps -O2 from guessing */
    int rc = commit_group(g, group_id, &grp, err, errlen);
    if (rc < 0)
        return rc;
    if (!member_id || !*member_id) {
        if (rn_classic_active(g->classic, group_id))
            return rn_errf(-RN_E_GROUP_NOT_EMPTY, err, errlen,
                           "classic group %s has active members: stop them before an admin commit",
                           group_id);
        if (grp && grp->n_members)
            return rn_errf(-RN_E_GROUP_NOT_EMPTY, err, errlen,
                           "group %s has %zu active member%s: stop them before an admin commit",
                           group_id, grp->n_members, grp->n_members == 1 ? "" : "s");
    } else {
        member *m = find_member(grp, member_id);
        if (!m)
            return rn_errf(-RN_E_UNKNOWN_MEMBER, err, errlen, "member \"%.64s\" is not in group %s",
                           member_id, group_id);
        if (member_epoch <= 0 || (member_epoch != m->epoch && member_epoch != m->prev_epoch))
            return rn_errf(-RN_E_FENCED_MEMBER_EPOCH, err, errlen,
                           "member %s: commit with epoch %" PRId32 ", current is %" PRId32, m->id,
                           member_epoch, m->epoch);
    }
    return write_commit(g, group_id, c, n, now_ms, cb, arg, err, errlen);
}

int rn_groups_classic_commit(rn_groups *g, const char *group_id, const char *member_id,
                             int32_t generation, rn_group_commit *c, size_t n, int64_t now_ms,
                             rn_groups_cb cb, void *arg, char *err, size_t errlen)
{
    group *grp = NULL;
    int rc = commit_group(g, group_id, &grp, err, errlen);
    if (rc < 0)
        return rc;
    bool admin = (!member_id || !*member_id) && generation < 0;
    if (grp && grp->n_members)
        return rn_errf(admin ? -RN_E_GROUP_NOT_EMPTY : -RN_E_INCONSISTENT_GROUP_PROTOCOL, err,
                       errlen, "group %s is a native group with %zu member%s", group_id,
                       grp->n_members, grp->n_members == 1 ? "" : "s");
    rc = rn_classic_commit_check(g->classic, group_id, member_id, generation, now_ms);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "group %s, member \"%.64s\", generation %" PRId32 ": %s",
                       group_id, member_id ? member_id : "", generation, rn_strerror(rc));
    return write_commit(g, group_id, c, n, now_ms, cb, arg, err, errlen);
}

/* Write the offsets of an allowed commit (the part native and classic
 * commits share). */
static int write_commit(rn_groups *g, const char *group_id, rn_group_commit *c, size_t n,
                        int64_t now_ms, rn_groups_cb cb, void *arg, char *err, size_t errlen)
{
    int32_t leader_epoch = 0;
    rn_log *log = g->offsets_ok ? g->env.offsets_log(g->env.arg, &leader_epoch) : NULL;
    if (!log)
        return rn_errf(-RN_E_STORAGE_ERROR, err, errlen, "%s is not available", RN_OFFSETS_TOPIC);
    rn_offset_commit *w = calloc(n ? n : 1, sizeof(*w));
    if (!w)
        return rn_errf(-ENOMEM, err, errlen, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t np = c[i].topic ? g->env.topic_partitions(g->env.arg, c[i].topic) : -1;
        if (c[i].partition < 0 || c[i].partition >= np) {
            c[i].error_code = RN_E_UNKNOWN_TOPIC;
            continue;
        }
        c[i].error_code = 0;
        w[k++] = (rn_offset_commit){c[i].topic, c[i].partition, c[i].offset, c[i].metadata};
    }
    int rc = 1;
    if (k)
        rc = rn_offsets_commit(g->offsets, log, leader_epoch, group_id, w, k, now_ms, cb, arg);
    free(w);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "commit to %s: %s", RN_OFFSETS_TOPIC, rn_strerror(rc));
    return rc;
}

int rn_groups_delete(rn_groups *g, const char *group_id, rn_groups_cb cb, void *arg)
{
    if (!group_id_ok(group_id))
        return -RN_E_INVALID_REQUEST;
    group *grp = find_group(g, group_id);
    if ((grp && grp->n_members) || rn_classic_forget(g->classic, group_id) < 0)
        return -RN_E_GROUP_NOT_EMPTY;
    size_t n = 0;
    if (g->offsets_ok)
        rn_offsets_entries(g->offsets, group_id, &n);
    if (!grp && n == 0)
        return -RN_E_UNKNOWN_GROUP;
    maybe_drop_group(g, grp);
    if (n == 0)
        return 1;
    int32_t leader_epoch = 0;
    rn_log *log = g->env.offsets_log(g->env.arg, &leader_epoch);
    if (!log)
        return -RN_E_STORAGE_ERROR;
    int rc = rn_offsets_delete_group(g->offsets, log, leader_epoch, group_id, rn_now_ms(), cb, arg);
    if (rc == 0)
        rn_logfmt(RN_INFO, "group deleted", "group=%s offsets=%zu", group_id, n);
    return rc;
}

const rn_offsets *rn_groups_offsets(const rn_groups *g)
{
    return g->offsets_ok ? g->offsets : NULL;
}

/* ---- Listing and describing
 * ---------------------------------------------------------------------- */

static void fill_info(const group *grp, const char *id, rn_group_info *out)
{
    *out = (rn_group_info){.group_id = grp ? grp->id : id,
                           .state = group_state(grp),
                           .group_epoch = grp ? grp->epoch : 0,
                           .assignment_epoch = grp ? grp->assignment_epoch : 0,
                           .assignor = rn_assignor_name(grp ? grp->assignor : RN_ASSIGNOR_STICKY),
                           .n_members = grp ? grp->n_members : 0};
}

static void fill_classic(const rn_classic_group_info *ci, rn_group_info *out)
{
    *out = (rn_group_info){.group_id = ci->group_id,
                           .state = ci->state,
                           .group_epoch = ci->generation,
                           .assignment_epoch = ci->generation,
                           .assignor = ci->protocol_name,
                           .n_members = ci->n_members,
                           .classic = true,
                           .protocol_type = ci->protocol_type};
}

static int cmp_info(const void *a, const void *b)
{
    const rn_group_info *x = a, *y = b;
    int c = strcmp(x->group_id, y->group_id);
    if (c)
        return c;
    return (y->n_members > 0) - (x->n_members > 0); /* the one with members first */
}

int rn_groups_list(rn_groups *g, rn_group_info **out, size_t *n)
{
    size_t no = g->offsets_ok ? rn_offsets_group_count(g->offsets) : 0;
    size_t nc = rn_classic_count(g->classic);
    rn_group_info *v = calloc(g->n + no + nc ? g->n + no + nc : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t i = 0, j = 0, k = 0;
    /* Merge the two sorted lists; a group in both is listed once. */
    while (i < g->n || j < no) {
        const char *oid = j < no ? rn_offsets_group_at(g->offsets, j) : NULL;
        int c = i == g->n ? 1 : !oid ? -1 : strcmp(g->groups[i]->id, oid);
        if (c <= 0) {
            fill_info(g->groups[i++], NULL, &v[k++]);
            if (c == 0)
                j++;
        } else {
            fill_info(NULL, oid, &v[k++]);
            j++;
        }
    }
    /* Classic groups (invariant 6: a native group of the same id has no
     * members then, so the listing with members wins). */
    if (nc) {
        for (size_t c = 0; c < nc; c++) {
            rn_classic_group_info ci;
            if (rn_classic_group_at(g->classic, c, &ci) == 0)
                fill_classic(&ci, &v[k++]);
        }
        qsort(v, k, sizeof(*v), cmp_info);
        size_t w = 0;
        for (size_t r = 0; r < k; r++)
            if (!w || strcmp(v[w - 1].group_id, v[r].group_id) != 0)
                v[w++] = v[r];
        k = w;
    }
    *out = v;
    *n = k;
    return 0;
}

int rn_groups_describe(rn_groups *g, const char *group_id, rn_group_info *out)
{
    group *grp = group_id ? find_group(g, group_id) : NULL;
    rn_classic_group_info ci;
    if ((!grp || !grp->n_members) && group_id &&
        rn_classic_describe(g->classic, group_id, &ci) == 0) {
        fill_classic(&ci, out);
        return 0;
    }
    size_t n = 0;
    if (!grp && group_id && g->offsets_ok)
        rn_offsets_entries(g->offsets, group_id, &n);
    if (!grp && n == 0)
        return -RN_E_UNKNOWN_GROUP;
    if (grp && refresh_target(g, grp) < 0)
        rn_logfmt(RN_WARN, "group target not refreshed", "group=%s err=ENOMEM", grp->id);
    fill_info(grp, group_id, out);
    return 0;
}

int rn_groups_member(rn_groups *g, const char *group_id, size_t i, rn_group_member_info *out)
{
    group *grp = group_id ? find_group(g, group_id) : NULL;
    rn_classic_member_info cm;
    if (!grp && group_id) {
        int rc = rn_classic_member(g->classic, group_id, i, &cm);
        if (rc < 0)
            return rc;
        rn_classic_group_info ci;
        rn_classic_describe(g->classic, group_id, &ci);
        /* The subscription and assignment as the Kafka layer read them from
         * the consumer protocol's bytes (empty for other protocol types). */
        *out = (rn_group_member_info){.member_id = cm.member_id,
                                      .client_id = cm.client_id,
                                      .host = cm.host,
                                      .member_epoch = ci.generation,
                                      .topics = cm.topics,
                                      .n_topics = cm.n_topics,
                                      .given = cm.tps,
                                      .n_given = cm.n_tps,
                                      .target = cm.tps,
                                      .n_target = cm.n_tps,
                                      .session_timeout_ms = (uint32_t)cm.session_timeout_ms,
                                      .last_heartbeat_ms = cm.last_heartbeat_ms};
        return 0;
    }
    if (!grp)
        return -RN_E_UNKNOWN_GROUP;
    if (i >= grp->n_members)
        return -ERANGE;
    member *m = grp->members[i];
    *out = (rn_group_member_info){.member_id = m->id,
                                  .client_id = m->client_id ? m->client_id : "",
                                  .host = m->host ? m->host : "",
                                  .member_epoch = m->epoch,
                                  .topics = (const char *const *)m->topics,
                                  .n_topics = m->n_topics,
                                  .given = m->given.v,
                                  .n_given = m->given.n,
                                  .target = m->target.v,
                                  .n_target = m->target.n,
                                  .owned = m->owned.v,
                                  .n_owned = m->owned.n,
                                  .session_timeout_ms = m->session_ms,
                                  .last_heartbeat_ms = m->last_seen_ms};
    return 0;
}

const char *rn_groups_owner(rn_groups *g, const char *group_id, const char *topic,
                            int32_t partition)
{
    group *grp = group_id ? find_group(g, group_id) : NULL;
    if (!grp && group_id)
        return rn_classic_owner(g->classic, group_id, topic, partition);
    if (!grp || !topic)
        return NULL;
    rn_assign_tp tp = {topic, partition};
    for (size_t i = 0; i < grp->n_members; i++)
        if (tpl_has(&grp->members[i]->given, &tp))
            return grp->members[i]->id;
    return NULL;
}

/* ---- Life cycle --------------------------------------------------------------------------------
 */

static bool native_active(void *arg, const char *group_id)
{
    const group *grp = find_group(arg, group_id);
    return grp && grp->n_members;
}

rn_classic *rn_groups_classic(rn_groups *g)
{
    return g ? g->classic : NULL;
}

int rn_groups_new(rn_groups **out, const rn_groups_env *env)
{
    rn_groups *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->env = *env;
    g->offsets_ok = true;
    g->loaded_epoch = -1;
    rn_classic_env cenv = {native_active, g};
    int rc = rn_classic_new(&g->classic, &cenv);
    if (rc < 0) {
        free(g);
        return rc;
    }
    rc = rn_offsets_new(&g->offsets);
    if (rc < 0) {
        rn_classic_free(g->classic);
        free(g);
        return rc;
    }
    /* A cluster: a commit is applied and acknowledged once replicated. */
    rn_offsets_set_hold(g->offsets, g->env.replicated, g->env.arg);
    *out = g;
    return 0;
}

/* ---- Dropping the state (the coordinator gate: offsets_topic.c) ----------------------- */

/* Forget every group and committed offset held (no commit may be in
 * flight): classic joins and syncs waiting are answered NOT_COORDINATOR, so
 * their clients look for the new coordinator at once. */
int rn__groups_drop_state(rn_groups *g, const char *why)
{
    size_t n_groups = g->n, n_offsets = rn_offsets_group_count(g->offsets);
    rn_classic_fail_all(g->classic, -RN_E_NOT_COORDINATOR);
    rn_classic *nc;
    rn_offsets *no;
    rn_classic_env cenv = {native_active, g};
    if (rn_classic_new(&nc, &cenv) < 0)
        return -ENOMEM;
    if (rn_offsets_new(&no) < 0) {
        rn_classic_free(nc);
        return -ENOMEM;
    }
    rn_classic_free(g->classic);
    g->classic = nc;
    rn_offsets_free(g->offsets);
    g->offsets = no;
    rn_offsets_set_hold(g->offsets, g->env.replicated, g->env.arg);
    for (size_t i = 0; i < g->n; i++)
        group_free(g->groups[i]);
    g->n = 0;
    if (g->loaded_epoch >= 0)
        rn_logfmt(RN_INFO, "group coordinator state dropped",
                  "why=%s loaded_epoch=%d groups=%zu offset_groups=%zu", why, g->loaded_epoch,
                  n_groups, n_offsets);
    g->loaded_epoch = -1;
    g->offsets_ok = true;
    return 0;
}

void rn_groups_free(rn_groups *g)
{
    if (!g)
        return;
    if (rn_offsets_pending(g->offsets)) {
        /* Commits in flight hold requests; let their appends finish so their
         * callbacks run now rather than into freed memory. */
        int32_t epoch;
        rn_log *log = g->env.offsets_log(g->env.arg, &epoch);
        if (log)
            rn_log_flush_sync(log);
    }
    if (rn_offsets_pending(g->offsets))
        rn_logfmt(RN_ERROR, "offset commits still in flight at shutdown; table leaked",
                  "pending=%u", rn_offsets_pending(g->offsets));
    else
        rn_offsets_free(g->offsets);
    rn_classic_free(g->classic);
    for (size_t i = 0; i < g->n; i++)
        group_free(g->groups[i]);
    free(g->groups);
    for (size_t i = 0; i < g->n_names; i++)
        free(g->names[i]);
    free(g->names);
    free(g);
}
