/*
 * test_assignor.c — range and sticky partition assignors (broker/coord/assignor.c).
 *
 * The assignors are pure functions, so every test builds topics and members
 * in arrays, runs rn_assign, and checks the answer against what must hold
 * for any assignor (every subscribed partition exactly once, to a
 * subscriber, lists sorted) plus what the assignor promises: range's
 * contiguous per-topic ranges in member id order, sticky's balance and its
 * minimal movement when members join and leave.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/assignor.h"

#define MAX_MEMBERS 128

/* ---- Helpers ---------------------------------------------------------------- */

static bool subscribes(const rn_assign_member *m, const char *topic)
{
    for (size_t i = 0; i < m->n_topics; i++)
        if (strcmp(m->topics[i], topic) == 0)
            return true;
    return false;
}

static bool has(const rn_assignment *a, const char *topic, int32_t p)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->tps[i].topic, topic) == 0 && a->tps[i].partition == p)
            return true;
    return false;
}

/* What every assignor must give: each partition of a topic some member
 * subscribes to is held by exactly one subscriber, nothing else is held, and
 * each list is sorted by (topic, partition). */
static void assert_valid(const rn_assign_topic *topics, size_t nt, const rn_assign_member *m,
                         size_t nm, const rn_assignment *out)
{
    size_t held = 0;
    for (size_t j = 0; j < nm; j++) {
        held += out[j].n;
        for (size_t i = 0; i < out[j].n; i++) {
            const rn_assign_tp *tp = &out[j].tps[i];
            cr_assert(subscribes(&m[j], tp->topic), "%s holds %s-%d without subscribing", m[j].id,
                      tp->topic, tp->partition);
            if (i > 0) {
                const rn_assign_tp *prev = &out[j].tps[i - 1];
                int c = strcmp(prev->topic, tp->topic);
                cr_assert(c < 0 || (c == 0 && prev->partition < tp->partition),
                          "%s's list is not sorted at %zu", m[j].id, i);
            }
        }
    }
    size_t expected = 0;
    for (size_t t = 0; t < nt; t++) {
        bool any = false;
        for (size_t j = 0; j < nm; j++)
            any |= subscribes(&m[j], topics[t].name);
        if (!any)
            continue;
        int *owners = calloc((size_t)topics[t].n_partitions + 1, sizeof(*owners));
        cr_assert_not_null(owners);
        for (size_t j = 0; j < nm; j++)
            for (size_t i = 0; i < out[j].n; i++)
                if (strcmp(out[j].tps[i].topic, topics[t].name) == 0) {
                    cr_assert_lt(out[j].tps[i].partition, topics[t].n_partitions);
                    owners[out[j].tps[i].partition]++;
                }
        for (int32_t p = 0; p < topics[t].n_partitions; p++)
            cr_assert_eq(owners[p], 1, "%s-%d has %d owners", topics[t].name, p, owners[p]);
        free(owners);
        expected += (size_t)topics[t].n_partitions;
    }
    cr_assert_eq(held, expected, "%zu partitions held, %zu to assign", held, expected);
}

static void assert_balanced(const rn_assignment *out, size_t nm)
{
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t j = 0; j < nm; j++) {
        lo = out[j].n < lo ? out[j].n : lo;
        hi = out[j].n > hi ? out[j].n : hi;
    }
    cr_assert_leq(hi - lo, 1, "counts range from %zu to %zu", lo, hi);
}

static void run(enum rn_assignor a, const rn_assign_topic *t, size_t nt, const rn_assign_member *m,
                size_t nm, rn_assignment *out)
{
    int rc = rn_assign(a, t, nt, m, nm, out);
    cr_assert_eq(rc, 0, "rn_assign: %d", rc);
    assert_valid(t, nt, m, nm, out);
}

/* Partitions of `a` as "topic-p" strings joined by spaces (for exact checks). */
static const char *str(const rn_assignment *a, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < a->n && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%s-%d", i ? " " : "", a->tps[i].topic,
                              a->tps[i].partition);
    return buf;
}

/* A copy of an assignment usable as `current` input (topic names borrowed
 * from the topics array, which outlives it). */
static rn_assign_tp *copy_tps(const rn_assignment *a)
{
    rn_assign_tp *v = malloc((a->n ? a->n : 1) * sizeof(*v));
    cr_assert_not_null(v);
    memcpy(v, a->tps, a->n * sizeof(*v));
    return v;
}

/* Run assignor a for two members and check each one's partitions exactly
 * ("topic-p" joined by spaces). */
static void expect_two(enum rn_assignor a, const rn_assign_topic *t, size_t nt,
                       const rn_assign_member *m, const char *want0, const char *want1)
{
    rn_assignment out[2];
    run(a, t, nt, m, 2, out);
    char buf[256];
    cr_assert_str_eq(str(&out[0], buf, sizeof(buf)), want0);
    cr_assert_str_eq(str(&out[1], buf, sizeof(buf)), want1);
    rn_assignment_free(out, 2);
}

static const char *const ONLY_T[] = {"t"};

/* A member `name` subscribed to topic t alone. */
#define ON_T(name)                                                                                 \
    {                                                                                              \
        .id = (name), .topics = ONLY_T, .n_topics = 1                                              \
    }

/* ---- Range ------------------------------------------------------------------------ */

// Range cuts a topic into contiguous ranges in member id order, the first members taking the
// remainder.
Test(assignor, range_contiguous_in_member_id_order)
{
    rn_assign_topic t[] = {{"t", 5}};
    rn_assign_member m[] = {ON_T("b"), ON_T("a")};
    expect_two(RN_ASSIGNOR_RANGE, t, 1, m, "t-3 t-4", "t-0 t-1 t-2");
}

// Range works per topic: with two 3-partition topics the first member gets the extra of each.
Test(assignor, range_is_per_topic)
{
    static const char *const both[] = {"x", "y"};
    rn_assign_topic t[] = {{"y", 3}, {"x", 3}};
    rn_assign_member m[] = {{.id = "m1", .topics = both, .n_topics = 2},
                            {.id = "m2", .topics = both, .n_topics = 2}};
    expect_two(RN_ASSIGNOR_RANGE, t, 2, m, "x-0 x-1 y-0 y-1", "x-2 y-2");
}

// Range gives a topic only to its subscribers; an unsubscribed topic is left alone.
Test(assignor, range_different_subscriptions)
{
    static const char *const a_sub[] = {"t1"}, *const b_sub[] = {"t2", "t1"};
    rn_assign_topic t[] = {{"t1", 4}, {"t2", 2}, {"unused", 3}};
    rn_assign_member m[] = {{.id = "a", .topics = a_sub, .n_topics = 1},
                            {.id = "b", .topics = b_sub, .n_topics = 2}};
    expect_two(RN_ASSIGNOR_RANGE, t, 3, m, "t1-0 t1-1", "t1-2 t1-3 t2-0 t2-1");
}

/* ---- Sticky: balance ---------------------------------------------------------------- */

// Sticky with no current assignment spreads partitions evenly (counts within one).
Test(assignor, sticky_initial_assignment_is_balanced)
{
    static const char *const both[] = {"t1", "t2"};
    rn_assign_topic t[] = {{"t1", 7}, {"t2", 3}};
    rn_assign_member m[] = {{.id = "c", .topics = both, .n_topics = 2},
                            {.id = "a", .topics = both, .n_topics = 2},
                            {.id = "b", .topics = both, .n_topics = 2}};
    rn_assignment out[3];
    run(RN_ASSIGNOR_STICKY, t, 2, m, 3, out);
    assert_balanced(out, 3);
    /* 10 partitions over 3: the lowest id takes the remainder. */
    cr_assert_eq(out[1].n, 4);
    rn_assignment_free(out, 3);
}

// Sticky with different subscriptions balances as far as subscriptions allow.
Test(assignor, sticky_different_subscriptions)
{
    static const char *const a_sub[] = {"t1"}, *const b_sub[] = {"t1", "t2"};
    rn_assign_topic t[] = {{"t1", 4}, {"t2", 4}};
    rn_assign_member m[] = {{.id = "a", .topics = a_sub, .n_topics = 1},
                            {.id = "b", .topics = b_sub, .n_topics = 2}};
    /* b alone can take t2, so a ends up with all of t1: 4 and 4. */
    expect_two(RN_ASSIGNOR_STICKY, t, 2, m, "t1-0 t1-1 t1-2 t1-3", "t2-0 t2-1 t2-2 t2-3");
}

// Topics of 0, 1 and many partitions: nothing, exactly one holder, an even spread overall.
Test(assignor, topics_of_zero_one_and_many_partitions)
{
    static const char *const all[] = {"many", "one", "zero"};
    rn_assign_topic t[] = {{"zero", 0}, {"one", 1}, {"many", 1000}};
    rn_assign_member m[7];
    char ids[7][8];
    for (int i = 0; i < 7; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%d", i);
        m[i] = (rn_assign_member){.id = ids[i], .topics = all, .n_topics = 3};
    }
    for (int a = 0; a < 2; a++) {
        rn_assignment out[7];
        enum rn_assignor kind = a ? RN_ASSIGNOR_RANGE : RN_ASSIGNOR_STICKY;
        run(kind, t, 3, m, 7, out);
        int holders = 0;
        for (int i = 0; i < 7; i++)
            holders += has(&out[i], "one", 0);
        cr_assert_eq(holders, 1);
        if (kind == RN_ASSIGNOR_STICKY)
            assert_balanced(out, 7);
        rn_assignment_free(out, 7);
    }
}

// Members with no subscription, or only unknown topics, get nothing; no members is fine.
Test(assignor, empty_subscriptions_and_no_members)
{
    static const char *const ghost[] = {"ghost"};
    rn_assign_topic t[] = {{"t", 3}};
    rn_assign_member m[] = {{.id = "a", .topics = ghost, .n_topics = 1},
                            {.id = "b", .topics = NULL, .n_topics = 0},
                            ON_T("c")};
    rn_assignment out[3];
    run(RN_ASSIGNOR_STICKY, t, 1, m, 3, out);
    cr_assert_eq(out[0].n, 0);
    cr_assert_eq(out[1].n, 0);
    cr_assert_eq(out[2].n, 3);
    rn_assignment_free(out, 3);
    cr_assert_eq(rn_assign(RN_ASSIGNOR_STICKY, t, 1, NULL, 0, NULL), 0);
    cr_assert_eq(rn_assign(RN_ASSIGNOR_RANGE, NULL, 0, NULL, 0, NULL), 0);
}

/* ---- Sticky: stability ---------------------------------------------------------------- */

// A member joining takes only what balance needs, and nothing moves between the others.
Test(assignor, sticky_join_moves_the_minimum)
{
    rn_assign_topic t[] = {{"t", 12}};
    rn_assign_member m[3] = {ON_T("a"), ON_T("b"), ON_T("c")};
    rn_assignment before[2], after[3];
    run(RN_ASSIGNOR_STICKY, t, 1, m, 2, before);
    cr_assert_eq(before[0].n, 6);
    rn_assign_tp *cur_a = copy_tps(&before[0]), *cur_b = copy_tps(&before[1]);
    m[0].current = cur_a;
    m[0].n_current = before[0].n;
    m[1].current = cur_b;
    m[1].n_current = before[1].n;
    run(RN_ASSIGNOR_STICKY, t, 1, m, 3, after);
    assert_balanced(after, 3);
    int moved = 0;
    for (int p = 0; p < 12; p++) {
        cr_assert(!(has(&before[0], "t", p) && has(&after[1], "t", p)), "t-%d went a → b", p);
        cr_assert(!(has(&before[1], "t", p) && has(&after[0], "t", p)), "t-%d went b → a", p);
        moved += has(&after[2], "t", p);
    }
    cr_assert_eq(moved, 4, "%d partitions moved, 4 are enough", moved);
    free(cur_a);
    free(cur_b);
    rn_assignment_free(before, 2);
    rn_assignment_free(after, 3);
}

// A member leaving: the others keep everything they had and share its partitions evenly.
Test(assignor, sticky_leave_keeps_survivors)
{
    rn_assign_topic t[] = {{"t", 9}};
    rn_assign_member m[3] = {ON_T("a"), ON_T("b"), ON_T("c")};
    rn_assignment before[3], after[2];
    run(RN_ASSIGNOR_STICKY, t, 1, m, 3, before);
    rn_assign_tp *cur_a = copy_tps(&before[0]), *cur_c = copy_tps(&before[2]);
    rn_assign_member left[2] = {
        {.id = "a", .topics = ONLY_T, .n_topics = 1, .current = cur_a, .n_current = before[0].n},
        {.id = "c", .topics = ONLY_T, .n_topics = 1, .current = cur_c, .n_current = before[2].n}};
    run(RN_ASSIGNOR_STICKY, t, 1, left, 2, after);
    assert_balanced(after, 2);
    for (size_t i = 0; i < before[0].n; i++)
        cr_assert(has(&after[0], "t", before[0].tps[i].partition), "a lost a partition");
    for (size_t i = 0; i < before[2].n; i++)
        cr_assert(has(&after[1], "t", before[2].tps[i].partition), "c lost a partition");
    free(cur_a);
    free(cur_c);
    rn_assignment_free(before, 3);
    rn_assignment_free(after, 2);
}

// Current partitions that are gone, out of range, unsubscribed or claimed twice are sorted out.
Test(assignor, sticky_drops_invalid_current)
{
    static const char *const sub_t[] = {"t"};
    rn_assign_topic t[] = {{"t", 4}, {"u", 2}};
    rn_assign_tp cur_a[] = {{"t", 0}, {"t", 9}, {"gone", 0}, {"u", 1}, {"t", -1}};
    rn_assign_tp cur_b[] = {{"t", 0}, {"t", 1}};
    rn_assign_member m[] = {
        {.id = "b", .topics = sub_t, .n_topics = 1, .current = cur_b, .n_current = 2},
        {.id = "a", .topics = sub_t, .n_topics = 1, .current = cur_a, .n_current = 5}};
    rn_assignment out[2];
    run(RN_ASSIGNOR_STICKY, t, 2, m, 2, out);
    /* t-0 is claimed by both: the first id keeps it. u is nobody's. */
    cr_assert(has(&out[1], "t", 0));
    cr_assert(has(&out[0], "t", 1));
    assert_balanced(out, 2);
    rn_assignment_free(out, 2);
}

// The answer does not depend on the order of the members array (both assignors).
Test(assignor, deterministic_whatever_the_member_order)
{
    static const char *const s1[] = {"t1", "t2"}, *const s2[] = {"t2"}, *const s3[] = {"t1"};
    rn_assign_topic t[] = {{"t1", 5}, {"t2", 6}};
    rn_assign_member base[4] = {{.id = "w", .topics = s1, .n_topics = 2},
                                {.id = "x", .topics = s2, .n_topics = 1},
                                {.id = "y", .topics = s3, .n_topics = 1},
                                {.id = "z", .topics = s1, .n_topics = 2}};
    static const int perms[][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}};
    for (int a = 0; a < 2; a++) {
        enum rn_assignor kind = a ? RN_ASSIGNOR_RANGE : RN_ASSIGNOR_STICKY;
        char first[4][256];
        for (size_t p = 0; p < sizeof(perms) / sizeof(perms[0]); p++) {
            rn_assign_member m[4];
            for (int i = 0; i < 4; i++)
                m[i] = base[perms[p][i]];
            rn_assignment out[4];
            run(kind, t, 2, m, 4, out);
            for (int i = 0; i < 4; i++) {
                char buf[256];
                int orig = perms[p][i];
                str(&out[i], buf, sizeof(buf));
                if (p == 0)
                    snprintf(first[orig], sizeof(first[orig]), "%s", buf);
                else
                    cr_assert_str_eq(buf, first[orig], "%s member %s differs in order %zu",
                                     rn_assignor_name(kind), base[orig].id, p);
            }
            rn_assignment_free(out, 4);
        }
    }
}

// Many members and partitions: valid, balanced, and a leave keeps every survivor's partitions.
Test(assignor, sticky_large_group)
{
    enum { NM = 100, NP = 10000 };
    rn_assign_topic t[] = {{"t", NP}};
    static rn_assign_member m[NM];
    static char ids[NM][8];
    for (int i = 0; i < NM; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%03d", i);
        m[i] = (rn_assign_member){.id = ids[i], .topics = ONLY_T, .n_topics = 1};
    }
    static rn_assignment before[NM], after[NM - 1];
    run(RN_ASSIGNOR_STICKY, t, 1, m, NM, before);
    assert_balanced(before, NM);
    static rn_assign_member rest[NM - 1];
    for (int i = 1; i < NM; i++) {
        rest[i - 1] = m[i];
        rest[i - 1].current = before[i].tps;
        rest[i - 1].n_current = before[i].n;
    }
    run(RN_ASSIGNOR_STICKY, t, 1, rest, NM - 1, after);
    assert_balanced(after, NM - 1);
    for (int i = 1; i < NM; i++)
        for (size_t k = 0; k < before[i].n; k++)
            cr_assert(has(&after[i - 1], "t", before[i].tps[k].partition));
    rn_assignment_free(before, NM);
    rn_assignment_free(after, NM - 1);
}

/* ---- Errors and names ------------------------------------------------------------------- */

// Duplicate ids or topics, negative partition counts and unknown kinds are -EINVAL.
Test(assignor, invalid_input)
{
    rn_assign_topic t[] = {{"t", 2}}, dup_t[] = {{"t", 1}, {"t", 2}}, neg[] = {{"t", -1}};
    rn_assign_member m[] = {ON_T("a"), ON_T("a")};
    rn_assignment out[2];
    cr_assert_eq(rn_assign(RN_ASSIGNOR_STICKY, t, 1, m, 2, out), -EINVAL);
    cr_assert_null(out[0].tps);
    cr_assert_eq(rn_assign(RN_ASSIGNOR_RANGE, dup_t, 2, m, 1, out), -EINVAL);
    cr_assert_eq(rn_assign(RN_ASSIGNOR_STICKY, neg, 1, m, 1, out), -EINVAL);
    cr_assert_eq(rn_assign((enum rn_assignor)7, t, 1, m, 1, out), -EINVAL);
    rn_assign_member noid[] = {{.id = NULL}};
    cr_assert_eq(rn_assign(RN_ASSIGNOR_STICKY, t, 1, noid, 1, out), -EINVAL);
}

// Assignor names: "range", "sticky", and empty for the default (sticky); others refused.
Test(assignor, names)
{
    enum rn_assignor a = RN_ASSIGNOR_RANGE;
    cr_assert_eq(rn_assignor_parse(NULL, &a), 0);
    cr_assert_eq(a, RN_ASSIGNOR_STICKY);
    cr_assert_eq(rn_assignor_parse("range", &a), 0);
    cr_assert_eq(a, RN_ASSIGNOR_RANGE);
    cr_assert_eq(rn_assignor_parse("", &a), 0);
    cr_assert_eq(a, RN_ASSIGNOR_STICKY);
    cr_assert_eq(rn_assignor_parse("roundrobin", &a), -EINVAL);
    cr_assert_str_eq(rn_assignor_name(RN_ASSIGNOR_RANGE), "range");
    cr_assert_str_eq(rn_assignor_name(RN_ASSIGNOR_STICKY), "sticky");
}
