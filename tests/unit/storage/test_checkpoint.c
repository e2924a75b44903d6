/*
 * test_checkpoint.c — small checksummed files (suite `checkpoint`).
 *
 * The contract of storage/checkpoint.h: a write replaces the file atomically
 * (a reader sees the old one or the new one, never half), a read refuses a
 * file with the wrong magic, size or checksum with -RN_E_CORRUPT_FILE and an
 * absent one with -ENOENT, and a failed write leaves the old file and no tmp.
 * Failures come from the syscall fault table (storage/sys.c): fail call N for
 * N = 1, 2, 3 … until a write runs without the fault firing.
 */
#include "helpers.h"

#include "storage/checkpoint.h"

static const char MAGIC[8] = {'R', 'N', 'T', 'E', 'S', 'T', 'C', 'P'};

/* Fail the Nth system call (any kind) with err; count every call. */
struct fail_nth {
    unsigned n, seen;
    int err;
    bool fired;
};

static int fail_nth(enum rn_sys_call call, void *arg)
{
    (void)call;
    struct fail_nth *f = arg;
    if (++f->seen == f->n) {
        f->fired = true;
        return f->err;
    }
    return 0;
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/* What a write puts on disk reads back byte for byte, at every payload size
 * from empty to RN_CHECKPOINT_MAX; a rewrite replaces it. */
Test(checkpoint, write_read_round_trip)
{
    char *dir = th_tmpdir("ckpt");
    uint8_t in[RN_CHECKPOINT_MAX], out[RN_CHECKPOINT_MAX];
    size_t sizes[] = {0, 1, 8, 100, RN_CHECKPOINT_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fill(in, sizes[i], (uint8_t)i);
        cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, in, sizes[i]), 0);
        memset(out, 0xee, sizeof(out));
        cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizes[i]), 0);
        cr_assert_arr_eq(out, in, sizes[i]);
        char path[4096];
        cr_assert_eq(th_file_size(th_path(path, dir, "cp")), 12 + sizes[i] + 8);
    }
    th_rmrf(dir);
    free(dir);
}

/* An absent file is -ENOENT, not corruption: callers treat it as "no marker". */
Test(checkpoint, absent_is_enoent)
{
    char *dir = th_tmpdir("ckpt");
    uint8_t out[8];
    cr_assert_eq(rn_checkpoint_read(dir, "none", MAGIC, out, sizeof(out)), -ENOENT);
    th_rmrf(dir);
    free(dir);
}

/* Payloads over RN_CHECKPOINT_MAX are refused with -EINVAL before any I/O. */
Test(checkpoint, oversized_payload_is_einval)
{
    char *dir = th_tmpdir("ckpt");
    uint8_t buf[RN_CHECKPOINT_MAX + 1] = {0};
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, buf, sizeof(buf)), -EINVAL);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, buf, sizeof(buf)), -EINVAL);
    char path[4096];
    cr_assert_not(th_exists(th_path(path, dir, "cp")));
    th_rmrf(dir);
    free(dir);
}

/* Every kind of damage is -RN_E_CORRUPT_FILE: each byte flipped in turn
 * (magic, length, payload, checksum), every truncation, a byte appended,
 * another magic, and a read expecting another length. */
Test(checkpoint, corrupt_or_truncated_is_refused)
{
    char *dir = th_tmpdir("ckpt");
    char path[4096];
    th_path(path, dir, "cp");
    uint8_t in[20], out[20];
    fill(in, sizeof(in), 3);
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, in, sizeof(in)), 0);
    size_t len;
    uint8_t *good = th_read_file(path, &len);
    cr_assert_eq(len, 12 + sizeof(in) + 8);

    for (size_t i = 0; i < len; i++) {
        uint8_t bad[64];
        memcpy(bad, good, len);
        bad[i] ^= 0x01;
        th_write_file(path, bad, len);
        cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(in)), -RN_E_CORRUPT_FILE,
                     "flipped byte %zu accepted", i);
    }
    for (size_t cut = 0; cut < len; cut++) {
        th_write_file(path, good, cut);
        cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(in)), -RN_E_CORRUPT_FILE,
                     "file cut to %zu bytes accepted", cut);
    }
    uint8_t longer[64];
    memcpy(longer, good, len);
    longer[len] = 0;
    th_write_file(path, longer, len + 1);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(in)), -RN_E_CORRUPT_FILE);

    th_write_file(path, good, len);
    const char other[8] = {'R', 'N', 'O', 'T', 'H', 'E', 'R', '!'};
    cr_assert_eq(rn_checkpoint_read(dir, "cp", other, out, sizeof(in)), -RN_E_CORRUPT_FILE);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(in) - 1), -RN_E_CORRUPT_FILE);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(in)), 0);
    cr_assert_arr_eq(out, in, sizeof(in));
    free(good);
    th_rmrf(dir);
    free(dir);
}

/* A write that fails at any system call (N = 1, 2, 3 …, -EIO and -ENOSPC)
 * returns that error, leaves no tmp file, and the file still reads as the
 * old payload, or as the new one only when the rename itself got through. */
Test(checkpoint, failed_write_leaves_old_file)
{
    int errs[] = {-EIO, -ENOSPC};
    for (size_t e = 0; e < 2; e++) {
        unsigned n;
        for (n = 1;; n++) {
            char *dir = th_tmpdir("ckpt");
            uint8_t old_p[32], new_p[32], out[32];
            fill(old_p, sizeof(old_p), 1);
            fill(new_p, sizeof(new_p), 2);
            cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, old_p, sizeof(old_p)), 0);

            struct fail_nth f = {.n = n, .err = errs[e]};
            rn_sys_set_injector(fail_nth, &f);
            int rc = rn_checkpoint_write(dir, "cp", MAGIC, new_p, sizeof(new_p));
            rn_sys_set_injector(NULL, NULL);

            char path[4096];
            cr_assert_not(th_exists(th_path(path, dir, "cp.tmp")), "N=%u: tmp left behind", n);
            cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), 0,
                         "N=%u: the file no longer reads", n);
            bool fired = f.fired;
            if (!fired) {
                cr_assert_eq(rc, 0);
                cr_assert_arr_eq(out, new_p, sizeof(out));
            } else if (rc == 0) {
                /* Only a failed tmp lookup (renaming a set-aside .old) may be absorbed. */
                cr_assert_arr_eq(out, new_p, sizeof(out), "N=%u: success but old content", n);
            } else {
                cr_assert_eq(rc, errs[e], "N=%u: rc %d", n, rc);
                bool is_old = memcmp(out, old_p, sizeof(out)) == 0;
                bool is_new = memcmp(out, new_p, sizeof(out)) == 0;
                cr_assert(is_old || is_new, "N=%u: half a file", n);
            }
            th_rmrf(dir);
            free(dir);
            if (!fired)
                break;
        }
        cr_assert_gt(n, 4, "the write made fewer calls than tmp+write+sync+rename");
    }
}

/* A crash between writing the tmp file and the rename (the tmp left on disk,
 * half written) leaves the old file readable; the next write and a remove
 * both get rid of the stale tmp. */
Test(checkpoint, crash_before_rename_keeps_old)
{
    char *dir = th_tmpdir("ckpt");
    char path[4096], tmp[4096];
    th_path(path, dir, "cp");
    th_path(tmp, dir, "cp.tmp");
    uint8_t old_p[16], new_p[16], out[16];
    fill(old_p, sizeof(old_p), 5);
    fill(new_p, sizeof(new_p), 6);
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, old_p, sizeof(old_p)), 0);
    th_write_file(tmp, "RNTESTCP\x10\x00", 10); /* the torn tmp of a write that died */
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), 0);
    cr_assert_arr_eq(out, old_p, sizeof(out));

    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, new_p, sizeof(new_p)), 0);
    cr_assert_not(th_exists(tmp));
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), 0);
    cr_assert_arr_eq(out, new_p, sizeof(out));

    th_write_file(tmp, "x", 1);
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
    cr_assert_not(th_exists(tmp));
    th_rmrf(dir);
    free(dir);
}

/* Remove makes the file absent (-ENOENT), removing an absent one succeeds,
 * and a write after a remove reads back new content, not the set-aside one. */
Test(checkpoint, remove_then_write)
{
    char *dir = th_tmpdir("ckpt");
    uint8_t a[12], b[12], out[12];
    fill(a, sizeof(a), 7);
    fill(b, sizeof(b), 8);
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, a, sizeof(a)), 0);
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), -ENOENT);
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, b, sizeof(b)), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), 0);
    cr_assert_arr_eq(out, b, sizeof(out));
    th_rmrf(dir);
    free(dir);
}

/* Inside a deferred-durability window a write is queued: reads see it while
 * the disk does not, a remove drops it, and rn_sys_defer_end writes it. */
Test(checkpoint, deferred_write_lands_at_window_end)
{
    char *dir = th_tmpdir("ckpt");
    char path[4096];
    th_path(path, dir, "cp");
    uint8_t a[10], b[10], out[10];
    fill(a, sizeof(a), 9);
    fill(b, sizeof(b), 10);

    rn_sys_defer_begin();
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, a, sizeof(a)), 0);
    cr_assert_not(th_exists(path));
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), 0);
    cr_assert_arr_eq(out, a, sizeof(out));
    cr_assert_eq(rn_checkpoint_remove(dir, "cp"), 0);
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), -ENOENT);
    cr_assert_eq(rn_checkpoint_write(dir, "cp", MAGIC, b, sizeof(b)), 0);
    cr_assert_eq(rn_sys_defer_end(dir), 0);

    cr_assert(th_exists(path));
    cr_assert_eq(rn_checkpoint_read(dir, "cp", MAGIC, out, sizeof(out)), 0);
    cr_assert_arr_eq(out, b, sizeof(out));
    th_rmrf(dir);
    free(dir);
}
