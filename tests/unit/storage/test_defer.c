/*
 * test_defer.c — durability owed to one syncfs (storage/sys.c
 * rn_sys_defer_begin/end) and the checkpoints written inside such a window.
 *
 * runneld opens every partition at start-up, and closes them at shutdown,
 * inside a window where per-file syncs are owed to one syncfs at its end;
 * checkpoints (the clean-shutdown marker) written in the window are queued
 * and land only after that syncfs, so a marker never claims data that is not
 * on disk yet. Outside a window everything is synced as before.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/checkpoint.h"
#include "storage/sys.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rn-defer-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static bool exists(const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static ino_t ino(const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? st.st_ino : 0;
}

TestSuite(defer, .init = setup, .fini = teardown);

// Outside a window a checkpoint is written at once; removing it keeps its
// inode aside (m.old) and the next write takes that inode back.
Test(defer, checkpoint_outside_a_window)
{
    uint64_t v = 7, r = 0;
    cr_assert_eq(rn_checkpoint_write(dir, "m", "TESTMAG1", &v, 8), 0);
    cr_assert(exists("m"));
    ino_t first = ino("m");
    cr_assert_eq(rn_checkpoint_remove(dir, "m"), 0);
    cr_assert(!exists("m"));
    cr_assert(exists("m.old"));
    cr_assert_eq(rn_checkpoint_read(dir, "m", "TESTMAG1", &r, 8), -ENOENT);
    v = 8;
    cr_assert_eq(rn_checkpoint_write(dir, "m", "TESTMAG1", &v, 8), 0);
    cr_assert(exists("m") && !exists("m.old"));
    cr_assert_eq(ino("m"), first, "the inode was not reused");
    cr_assert_eq(rn_checkpoint_read(dir, "m", "TESTMAG1", &r, 8), 0);
    cr_assert_eq(r, 8);
    cr_assert_eq(rn_sys_defer_end(dir), 0, "no window: nothing to do");
}

// Inside a window a checkpoint is queued: readable at once (the latest
// value), on disk only after the window's syncfs; one removed in the window
// never lands.
Test(defer, checkpoint_queued_until_the_window_ends)
{
    uint64_t v = 9, r = 0;
    rn_sys_defer_begin();
    cr_assert(rn_sys_deferring());
    cr_assert_eq(rn_checkpoint_write(dir, "m", "TESTMAG1", &v, 8), 0);
    cr_assert(!exists("m"), "written before the syncfs");
    cr_assert_eq(rn_checkpoint_read(dir, "m", "TESTMAG1", &r, 8), 0);
    cr_assert_eq(r, 9);
    v = 10;
    cr_assert_eq(rn_checkpoint_write(dir, "m", "TESTMAG1", &v, 8), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "m", "TESTMAG1", &r, 8), 0);
    cr_assert_eq(r, 10);
    cr_assert_eq(rn_checkpoint_write(dir, "n", "TESTMAG1", &v, 8), 0);
    cr_assert_eq(rn_checkpoint_remove(dir, "n"), 0);
    cr_assert_eq(rn_sys_defer_end(dir), 0);
    cr_assert(!rn_sys_deferring());
    cr_assert(exists("m"));
    cr_assert(!exists("n"), "a checkpoint removed in the window was written");
    r = 0;
    cr_assert_eq(rn_checkpoint_read(dir, "m", "TESTMAG1", &r, 8), 0);
    cr_assert_eq(r, 10);
}

// When the window's syncfs fails, nothing queued is written: no marker may
// claim data that may not be on disk.
Test(defer, failed_sync_writes_nothing)
{
    uint64_t v = 11;
    rn_sys_defer_begin();
    cr_assert_eq(rn_checkpoint_write(dir, "m", "TESTMAG1", &v, 8), 0);
    cr_assert_lt(rn_sys_defer_end("/nonexistent-dir-of-runnel"), 0);
    cr_assert(!rn_sys_deferring());
    cr_assert(!exists("m"));
}
