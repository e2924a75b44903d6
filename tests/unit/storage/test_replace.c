/*
 * test_replace.c — rn_sys_replace_file, the one durable-replace rule (suite
 * `replace`).
 *
 * Snapshots, checkpoints, leader epochs, partition.metadata, the quorum state
 * and a truncated segment's prefix all go through it, so its contract is
 * checked here once, at every system call: with call N of a replace failing
 * (N = 1, 2, … until a replace runs without the fault firing), the file is
 * whole (the old one when the rename did not happen, else the new one) and no
 * tmp is left, for each kind of replace the callers use.
 */
#include "helpers.h"

/* Fail the Nth system call (any kind) with err; count every call and
 * remember whether the rename ran. */
struct fail_nth {
    unsigned n, seen;
    int err;
    bool fired, renamed;
};

static int fail_nth(enum rn_sys_call call, void *arg)
{
    struct fail_nth *f = arg;
    if (++f->seen == f->n) {
        f->fired = true;
        return f->err;
    }
    if (call == RN_SYS_RENAME)
        f->renamed = true;
    return 0;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

static void expect_content(const char *path, const char *want)
{
    char got[256] = "";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = fread(got, 1, sizeof(got) - 1, f);
    fclose(f);
    got[n] = 0;
    cr_assert_str_eq(got, want, "%s holds \"%s\", not \"%s\"", path, got, want);
}

static void every_failure(unsigned flags, bool tmp_exists_before)
{
    static const char NEW[] = "the new contents, longer than the old ones";
    for (unsigned n = 1;; n++) {
        char *dir = th_tmpdir("replace");
        char path[4096], tmp[4096];
        th_path(path, dir, "file");
        th_path(tmp, dir, "file.tmp");
        put(path, "old");
        if (tmp_exists_before)
            put(tmp, "an old inode set aside, longer than what replaces it: cut to size");
        struct fail_nth f = {.n = n, .err = -EIO};
        rn_sys_set_injector(fail_nth, &f);
        int rc = rn_sys_replace_file(tmp, path, dir, NEW, strlen(NEW), flags);
        rn_sys_set_injector(NULL, NULL);
        if (!f.fired) {
            cr_assert_eq(rc, 0, "flags %u: %s", flags, strerror(-rc));
            expect_content(path, NEW);
            cr_assert_neq(access(tmp, F_OK), 0, "flags %u: tmp left after success", flags);
            th_rmrf(dir);
            free(dir);
            cr_assert_gt(n, 3, "a replace makes at least open, write, close, rename");
            return;
        }
        cr_assert_eq(rc, -EIO, "flags %u, call %u failed: rc %d", flags, n, rc);
        expect_content(path, f.renamed ? NEW : "old");
        cr_assert_neq(access(tmp, F_OK), 0, "flags %u, call %u failed: tmp left", flags, n);
        th_rmrf(dir);
        free(dir);
    }
}

Test(replace, every_failure_leaves_a_whole_file_and_no_tmp)
{
    every_failure(0, false);
    every_failure(RN_REPLACE_LAZY, false);
    every_failure(RN_REPLACE_NO_DIR_SYNC, false);
    every_failure(RN_REPLACE_NO_SYNC, false);
    every_failure(RN_REPLACE_REUSE_TMP, true);
    every_failure(RN_REPLACE_REUSE_TMP | RN_REPLACE_NO_SYNC, true);
}

/* The syncs asked for are the syncs made: a replace without them must not
 * pay for them, one with them must make both (file, then directory). */
struct count_syncs {
    unsigned fdatasync;
};

static int count_syncs(enum rn_sys_call call, void *arg)
{
    struct count_syncs *c = arg;
    if (call == RN_SYS_FDATASYNC)
        c->fdatasync++;
    return 0;
}

Test(replace, syncs_follow_the_flags)
{
    char *dir = th_tmpdir("replace");
    char path[4096], tmp[4096];
    th_path(path, dir, "file");
    th_path(tmp, dir, "file.tmp");
    struct {
        unsigned flags, want;
    } cases[] = {{0, 2}, {RN_REPLACE_NO_DIR_SYNC, 1}, {RN_REPLACE_NO_SYNC, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct count_syncs c = {0};
        rn_sys_set_injector(count_syncs, &c);
        int rc = rn_sys_replace_file(tmp, path, dir, "x", 1, cases[i].flags);
        rn_sys_set_injector(NULL, NULL);
        cr_assert_eq(rc, 0);
        cr_assert_eq(c.fdatasync, cases[i].want, "flags %u: %u fdatasyncs, want %u", cases[i].flags,
                     c.fdatasync, cases[i].want);
        expect_content(path, "x");
    }
    th_rmrf(dir);
    free(dir);
}
