/*
 * test_truncation.c — part/truncation.[ch]: the follower's multi-round
 * truncation (KIP-101/279) over pairs of leader-epoch caches.
 *
 * A log is written as the epoch of each offset ("0011222": offsets 0-1 in
 * epoch 0, 2-3 in epoch 1, 4-6 in epoch 2); its cache is built from that,
 * and the leader answers with the real rn_leader_epochs_end_offset_for. The
 * rounds run until done; the follower must end at the longest prefix both
 * logs share (same epoch at an offset means the same leader wrote it), and
 * never cut below it.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/part/truncation.h"

#define MAXLOG 64

typedef struct tlog {
    int32_t e[MAXLOG];
    int64_t leo;
    rn_leader_epochs *c;
    char dir[64];
} tlog;

static void tlog_init(tlog *l, const int32_t *e, int64_t n)
{
    snprintf(l->dir, sizeof(l->dir), "/tmp/rn-trunc-XXXXXX");
    cr_assert_not_null(mkdtemp(l->dir));
    cr_assert_eq(rn_leader_epochs_open(&l->c, l->dir), 1);
    /* Memory only: the file is not what is under test. */
    cr_assert_eq(rn_leader_epochs_hold(l->c, true), 0);
    l->leo = n;
    for (int64_t i = 0; i < n; i++) {
        l->e[i] = e[i];
        cr_assert_geq(rn_leader_epochs_assign(l->c, e[i], i), 0);
    }
}

/* "0011222" as a log. */
static void tlog_str(tlog *l, const char *s)
{
    int32_t e[MAXLOG] = {0};
    int64_t n = (int64_t)strlen(s);
    for (int64_t i = 0; i < n; i++)
        e[i] = s[i] - '0';
    tlog_init(l, e, n);
}

static void tlog_fini(tlog *l)
{
    rn_leader_epochs_free(l->c);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", l->dir, RN_LEADER_EPOCH_FILE);
    unlink(path);
    rmdir(l->dir);
}

/* The follower's rounds against the leader; returns where it ended and
 * counts the questions asked. */
static int64_t converge(tlog *leader, tlog *f, int64_t hw, int *rounds)
{
    *rounds = 0;
    for (;;) {
        int32_t ask = rn_truncation_epoch_to_ask(f->c);
        rn_truncation t;
        if (ask == RN_EPOCH_UNDEFINED) {
            t.offset = hw < f->leo ? hw : f->leo;
            t.done = true;
        } else {
            int32_t le;
            int64_t lend;
            rn_leader_epochs_end_offset_for(leader->c, ask, leader->leo, &le, &lend);
            t = rn_truncation_step(f->c, f->leo, hw, le, lend);
            ++*rounds;
        }
        cr_assert_leq(t.offset, f->leo);
        if (t.offset < f->leo) {
            f->leo = t.offset;
            cr_assert_geq(rn_leader_epochs_truncate_from_end(f->c, t.offset), 0);
        }
        if (t.done)
            return f->leo;
        cr_assert_lt(*rounds, 100, "rounds must end");
    }
}

/* The leader took over in an epoch above every one either log has, and
 * recorded it at its log end, as a new leader does (Kafka's
 * maybeAssignEpochStartOffset): so it can answer any follower epoch. */
static void become_leader(tlog *l, const tlog *f)
{
    int32_t e = 0;
    for (int64_t i = 0; i < l->leo; i++)
        e = l->e[i] > e ? l->e[i] : e;
    for (int64_t i = 0; i < f->leo; i++)
        e = f->e[i] > e ? f->e[i] : e;
    cr_assert_eq(rn_leader_epochs_assign(l->c, e + 1, l->leo), 1);
}

static int64_t common_prefix(const tlog *a, const tlog *b)
{
    int64_t i = 0;
    while (i < a->leo && i < b->leo && a->e[i] == b->e[i])
        i++;
    return i;
}

static void check(const char *leader, const char *follower, int64_t hw, int64_t want,
                  int want_rounds)
{
    tlog l, f;
    tlog_str(&l, leader);
    tlog_str(&f, follower);
    if (*leader)
        become_leader(&l, &f);
    int rounds;
    int64_t got = converge(&l, &f, hw, &rounds);
    cr_assert_eq(got, want, "leader %s follower %s: cut at %lld, want %lld", leader, follower,
                 (long long)got, (long long)want);
    if (want_rounds >= 0)
        cr_assert_eq(rounds, want_rounds, "leader %s follower %s: %d rounds, want %d", leader,
                     follower, rounds, want_rounds);
    tlog_fini(&l);
    tlog_fini(&f);
}

/* A follower that is only behind keeps everything. */
Test(truncation, behind_keeps_all)
{
    check("0001111111", "00011", 0, 5, 1);
}

/* An uncommitted tail in an epoch the leader ended earlier (KIP-101's
 * first scenario: the follower had written more of epoch 0 than the new
 * leader got): cut to where the leader's epoch 0 ends. */
Test(truncation, tail_of_old_epoch_cut)
{
    check("0001111", "000000", 0, 3, 1);
}

/* KIP-101's second scenario: both logs hold one offset, written by
 * different leaders (epochs 1 and 2): the follower cuts at the divergence
 * although its log is not longer than the leader's. */
Test(truncation, same_offset_different_epochs)
{
    check("022", "01", 0, 1, 1);
}

/* KIP-279: the leader answers an epoch the follower never had; the
 * follower cuts to the end of its older epoch and asks again. */
Test(truncation, multi_round_when_epochs_diverge)
{
    /* leader 0@0 1@2 3@5; follower 0@0 2@4: ask 2 → (1,5); the follower
     * has no 1, cuts at 4 (its epoch 2's start); ask 0 → (0,2) → cut 2. */
    check("00111333", "0000222", 0, 2, 2);
}

/* Several of the follower's epochs unknown to the leader go, one per
 * round. */
Test(truncation, many_foreign_epochs)
{
    /* leader 0@0 1@2 3@3 5@5; follower 0@0 1@2 2@3 4@5: ask 4 → (3,5),
     * the follower has no 3: cut at 5; ask 2 → (1,3) → cut 3. */
    check("0013355", "0012244", 0, 3, 2);
}

/* The follower's whole log is from epochs the leader never had. */
Test(truncation, everything_diverged)
{
    check("2222", "1111", 0, 0, 1);
}

/* A leader that has written nothing yet: everything of the follower's
 * predates it. */
Test(truncation, empty_leader)
{
    tlog l, f;
    tlog_str(&l, "");
    tlog_str(&f, "0011");
    become_leader(&l, &f);
    int rounds;
    cr_assert_eq(converge(&l, &f, 0, &rounds), 0);
    tlog_fini(&l);
    tlog_fini(&f);
}

/* A leader with no epochs answers UNDEFINED: the follower falls back to
 * its high watermark. */
Test(truncation, leader_knows_nothing_uses_hw)
{
    check("", "000111", 2, 2, 1);
}

/* A follower with an empty log has nothing to ask. */
Test(truncation, empty_follower)
{
    check("0011", "", 0, 0, 0);
}

/* Identical logs: nothing is cut. */
Test(truncation, identical)
{
    check("0112233", "0112233", 0, 7, 1);
}

/* Random pairs of histories that share a prefix, then diverge with epochs
 * of their own (an epoch belongs to one leader, so only the prefix's can be
 * in both): the follower always ends at exactly the shared prefix. */
Test(truncation, random_histories_meet_at_common_prefix)
{
    unsigned seed = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        int32_t a[MAXLOG], b[MAXLOG];
        int64_t na = 0, nb = 0;
        int32_t epoch = rand_r(&seed) % 3;
        int64_t np = rand_r(&seed) % 20;
        for (int64_t i = 0; i < np; i++) {
            if (rand_r(&seed) % 5 == 0)
                epoch += 1 + rand_r(&seed) % 2;
            a[na++] = b[nb++] = epoch;
        }
        /* One side may go on in the prefix's last epoch (that leader went
         * on writing for it); then each side gets epochs of its own: odd
         * steps for a, even for b, so no epoch is in both. */
        bool a_goes_on = rand_r(&seed) % 2;
        int64_t more = rand_r(&seed) % 6;
        for (int64_t i = 0; i < more && np > 0; i++) {
            if (a_goes_on)
                a[na++] = epoch;
            else
                b[nb++] = epoch;
        }
        /* a's k-th own epoch is epoch + 2k - 1, b's epoch + 2k. */
        for (int k = 1 + rand_r(&seed) % 4; k > 1; k--) {
            int32_t e = epoch + 2 * (int32_t)(5 - k) - 1;
            for (int64_t i = 1 + rand_r(&seed) % 5; i > 0 && na < MAXLOG; i--)
                a[na++] = e;
        }
        for (int k = 1 + rand_r(&seed) % 4; k > 1; k--) {
            int32_t e = epoch + 2 * (int32_t)(5 - k);
            for (int64_t i = 1 + rand_r(&seed) % 5; i > 0 && nb < MAXLOG; i--)
                b[nb++] = e;
        }
        tlog l, f;
        tlog_init(&l, a, na);
        tlog_init(&f, b, nb);
        become_leader(&l, &f);
        int64_t want = common_prefix(&l, &f);
        /* The high watermark is at most what both had (it is committed). */
        int64_t hw = want ? rand_r(&seed) % (want + 1) : 0;
        int rounds;
        int64_t got = converge(&l, &f, hw, &rounds);
        if (got != want) {
            for (int64_t i = 0; i < na; i++)
                fprintf(stderr, "%d ", a[i]);
            fprintf(stderr, "| ");
            for (int64_t i = 0; i < nb; i++)
                fprintf(stderr, "%d ", b[i]);
            fprintf(stderr, "\n");
        }
        cr_assert_eq(got, want, "seed iteration %d: cut at %lld, want %lld", iter, (long long)got,
                     (long long)want);
        tlog_fini(&l);
        tlog_fini(&f);
    }
}
