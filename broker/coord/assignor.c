/*
 * assignor.c — range and sticky partition assignors (see assignor.h).
 *
 * How it fits: broker/coord/groups.c hands the group's members (ids, subscriptions,
 * current target assignment) and the subscribed topics that exist to
 * rn_assign() and stores the result as the group's new target assignment.
 * Nothing here knows about epochs, revocation or the wire.
 *
 * Working form: topics are sorted by name and members by id (positions k and
 * j below), so the answer never depends on the order of the input arrays.
 * Every partition gets a global index g = base[k] + partition, and
 * owner[g] is the member position that holds it (-1: free). count[j] and
 * tcount[j][k] (partitions of topic k held by j) are kept in step with owner.
 *
 * Sticky, in three passes:
 *   1. keep: each member keeps its current partitions that still exist and
 *      that it still subscribes to (members in id order, so of two claims on
 *      one partition the first id wins);
 *   2. fill: every free partition, in (topic, partition) order, goes to the
 *      eligible member holding the fewest (ties: lowest id);
 *   3. balance: while some member d holds at least two more than some
 *      member r that may take one of d's partitions, move one from the most
 *      loaded such d to the least loaded such r.
 * Each move of pass 3 lowers the sum of squared counts, so it ends; with
 * equal subscriptions it ends with every count within one of the others,
 * and a partition moves only when balance requires it.
 *
 * Invariants of the result: every partition of every topic some member
 * subscribes to is assigned exactly once, to a subscriber; nothing else is.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/assignor.h"

typedef struct keyed {
    const char *key;
    size_t idx;
} keyed;

static int keyed_cmp(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

typedef struct ctx {
    const rn_assign_topic *topics;
    size_t nt;
    keyed *tord; /* sorted topics: name, input index */
    size_t *base;
    size_t n_parts;
    const rn_assign_member *members;
    size_t nm;
    keyed *mord;      /* sorted members: id, input index */
    uint8_t *sub;     /* sub[j * nt + k] */
    int32_t *owner;   /* by global partition index; member position or -1 */
    size_t *count;    /* partitions held by member position j */
    uint32_t *tcount; /* tcount[j * nt + k] */
} ctx;

int rn_assignor_parse(const char *name, enum rn_assignor *out)
{
    if (!name || !*name || strcmp(name, "sticky") == 0) {
        *out = RN_ASSIGNOR_STICKY;
        return 0;
    }
    if (strcmp(name, "range") == 0) {
        *out = RN_ASSIGNOR_RANGE;
        return 0;
    }
    return -EINVAL;
}

const char *rn_assignor_name(enum rn_assignor a)
{
    return a == RN_ASSIGNOR_RANGE ? "range" : "sticky";
}

void rn_assignment_free(rn_assignment *out, size_t n)
{
    for (size_t i = 0; out && i < n; i++) {
        free(out[i].tps);
        out[i].tps = NULL;
        out[i].n = 0;
    }
}

/* Sorted position of the topic called name, or -1. */
static long find_topic(const ctx *c, const char *name)
{
    if (!name)
        return -1;
    size_t lo = 0, hi = c->nt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->tord[mid].key, name);
        if (r == 0)
            return (long)mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int32_t parts_of(const ctx *c, size_t k)
{
    return c->topics[c->tord[k].idx].n_partitions;
}

static void take(ctx *c, size_t j, size_t k, size_t g)
{
    c->owner[g] = (int32_t)j;
    c->count[j]++;
    c->tcount[j * c->nt + k]++;
}

static void drop(ctx *c, size_t j, size_t k, size_t g)
{
    c->owner[g] = -1;
    c->count[j]--;
    c->tcount[j * c->nt + k]--;
}

static void ctx_free(ctx *c)
{
    free(c->tord);
    free(c->base);
    free(c->mord);
    free(c->sub);
    free(c->owner);
    free(c->count);
    free(c->tcount);
}

static int ctx_init(ctx *c, const rn_assign_topic *topics, size_t nt,
                    const rn_assign_member *members, size_t nm)
{
    memset(c, 0, sizeof(*c));
    c->topics = topics;
    c->nt = nt;
    c->members = members;
    c->nm = nm;
    if (nm && nt > SIZE_MAX / nm / sizeof(uint32_t))
        return -ENOMEM;
    c->tord = calloc(nt ? nt : 1, sizeof(*c->tord));
    c->base = calloc(nt ? nt : 1, sizeof(*c->base));
    c->mord = calloc(nm ? nm : 1, sizeof(*c->mord));
    size_t cells = nm * nt > 0 ? nm * nt : 1;
    c->sub = calloc(cells, 1);
    c->count = calloc(nm ? nm : 1, sizeof(*c->count));
    c->tcount = calloc(cells, sizeof(*c->tcount));
    if (!c->tord || !c->base || !c->mord || !c->sub || !c->count || !c->tcount)
        return -ENOMEM;

    for (size_t i = 0; i < nt; i++) {
        if (!topics[i].name || topics[i].n_partitions < 0)
            return -EINVAL;
        c->tord[i] = (keyed){topics[i].name, i};
    }
    qsort(c->tord, nt, sizeof(*c->tord), keyed_cmp);
    for (size_t k = 0; k < nt; k++) {
        if (k && strcmp(c->tord[k - 1].key, c->tord[k].key) == 0)
            return -EINVAL;
        c->base[k] = c->n_parts;
        c->n_parts += (size_t)parts_of(c, k);
    }
    for (size_t i = 0; i < nm; i++) {
        if (!members[i].id)
            return -EINVAL;
        c->mord[i] = (keyed){members[i].id, i};
    }
    qsort(c->mord, nm, sizeof(*c->mord), keyed_cmp);
    for (size_t j = 0; j < nm; j++) {
        if (j && strcmp(c->mord[j - 1].key, c->mord[j].key) == 0)
            return -EINVAL;
        const rn_assign_member *m = &members[c->mord[j].idx];
        for (size_t t = 0; t < m->n_topics; t++) {
            long k = find_topic(c, m->topics[t]);
            if (k >= 0)
                c->sub[j * nt + (size_t)k] = 1;
        }
    }
    c->owner = malloc((c->n_parts ? c->n_parts : 1) * sizeof(*c->owner));
    if (!c->owner)
        return -ENOMEM;
    for (size_t g = 0; g < c->n_parts; g++)
        c->owner[g] = -1;
    return 0;
}

/* ---- Range ------------------------------------------------------------------ */

static void assign_range(ctx *c)
{
    for (size_t k = 0; k < c->nt; k++) {
        size_t n = 0;
        for (size_t j = 0; j < c->nm; j++)
            n += c->sub[j * c->nt + k];
        if (n == 0)
            continue;
        size_t np = (size_t)parts_of(c, k), per = np / n, extra = np % n, p = 0, i = 0;
        for (size_t j = 0; j < c->nm; j++) {
            if (!c->sub[j * c->nt + k])
                continue;
            size_t want = per + (i++ < extra ? 1 : 0);
            for (size_t t = 0; t < want; t++, p++)
                take(c, j, k, c->base[k] + p);
        }
    }
}

/* ---- Sticky ----------------------------------------------------------------- */

/* Member positions by (load, id): qsort_r, so concurrent calls share nothing. */
static int by_load(const void *a, const void *b, void *arg)
{
    const size_t *count = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (count[x] != count[y])
        return count[x] < count[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Move one partition from donor d to receiver r if r may take one of d's:
 * the last of d's partitions (in topic, partition order) that r subscribes to. */
static bool move_one(ctx *c, size_t d, size_t r)
{
    for (size_t k = c->nt; k-- > 0;) {
        if (!c->sub[r * c->nt + k] || c->tcount[d * c->nt + k] == 0)
            continue;
        for (size_t p = (size_t)parts_of(c, k); p-- > 0;) {
            size_t g = c->base[k] + p;
            if (c->owner[g] == (int32_t)d) {
                drop(c, d, k, g);
                take(c, r, k, g);
                return true;
            }
        }
    }
    return false;
}

static int assign_sticky(ctx *c)
{
    /* 1. keep */
    for (size_t j = 0; j < c->nm; j++) {
        const rn_assign_member *m = &c->members[c->mord[j].idx];
        for (size_t i = 0; i < m->n_current; i++) {
            long k = find_topic(c, m->current[i].topic);
            int32_t p = m->current[i].partition;
            if (k < 0 || p < 0 || p >= parts_of(c, (size_t)k) || !c->sub[j * c->nt + (size_t)k])
                continue;
            size_t g = c->base[k] + (size_t)p;
            if (c->owner[g] < 0)
                take(c, j, (size_t)k, g);
        }
    }
    /* 2. fill */
    for (size_t k = 0; k < c->nt; k++) {
        for (size_t p = 0; p < (size_t)parts_of(c, k); p++) {
            size_t g = c->base[k] + p;
            if (c->owner[g] >= 0)
                continue;
            long best = -1;
            for (size_t j = 0; j < c->nm; j++)
                if (c->sub[j * c->nt + k] && (best < 0 || c->count[j] < c->count[best]))
                    best = (long)j;
            if (best >= 0)
                take(c, (size_t)best, k, g);
        }
    }
    /* 3. balance */
    size_t *order = malloc((c->nm ? c->nm : 1) * sizeof(*order));
    if (!order)
        return -ENOMEM;
    for (size_t j = 0; j < c->nm; j++)
        order[j] = j;
    for (;;) {
        qsort_r(order, c->nm, sizeof(*order), by_load, c->count);
        bool moved = false;
        for (size_t di = c->nm; di-- > 1 && !moved;) {
            size_t d = order[di];
            for (size_t ri = 0; ri < di && !moved; ri++) {
                size_t r = order[ri];
                if (c->count[r] + 2 > c->count[d])
                    break; /* receivers are sorted by load: none further qualifies */
                moved = move_one(c, d, r);
            }
        }
        if (!moved)
            break;
    }
    free(order);
    return 0;
}

/* ---- Entry point ------------------------------------------------------------- */

int rn_assign(enum rn_assignor a, const rn_assign_topic *topics, size_t n_topics,
              const rn_assign_member *members, size_t n_members, rn_assignment *out)
{
    for (size_t i = 0; i < n_members; i++)
        out[i] = (rn_assignment){0};
    if (a != RN_ASSIGNOR_RANGE && a != RN_ASSIGNOR_STICKY)
        return -EINVAL;
    ctx c;
    int rc = ctx_init(&c, topics, n_topics, members, n_members);
    if (rc < 0)
        goto fail;
    if (a == RN_ASSIGNOR_RANGE)
        assign_range(&c);
    else if ((rc = assign_sticky(&c)) < 0)
        goto fail;

    for (size_t j = 0; j < n_members; j++) {
        rn_assignment *o = &out[c.mord[j].idx];
        if (c.count[j] == 0)
            continue;
        o->tps = malloc(c.count[j] * sizeof(*o->tps));
        if (!o->tps) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    /* Walking partitions in (topic, partition) order leaves each list sorted. */
    for (size_t k = 0; k < c.nt; k++) {
        for (size_t p = 0; p < (size_t)parts_of(&c, k); p++) {
            int32_t j = c.owner[c.base[k] + p];
            if (j < 0)
                continue;
            rn_assignment *o = &out[c.mord[j].idx];
            o->tps[o->n++] = (rn_assign_tp){c.tord[k].key, (int32_t)p};
        }
    }
    ctx_free(&c);
    return 0;

fail:
    rn_assignment_free(out, n_members);
    ctx_free(&c);
    return rc;
}
