/*
 * test_offsets.c — committed offsets as records of __offsets (broker/coord/offsets.c).
 *
 * Every test has its own rn_io and an rn_log in a mkdtemp directory, as the
 * broker's __offsets-0 would be. Commits run asynchronously: the tests drive
 * rn_io_run until the callback fires. "Reload" closes the log, opens it again
 * and replays it into a fresh table, which is what a broker restart does.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/offsets.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"
#include "storage/sys.h"

static rn_io *io;
static char dir[64];
static rn_log *log_;
static rn_offsets *tab;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void open_log(void)
{
    rn_log_config c;
    rn_log_config_default(&c);
    cr_assert_eq(rn_log_open(&log_, io, dir, "__offsets-0", &c, NULL), 0);
}

static void setup(void)
{
    cr_assert_eq(rn_io_new(&io, 64), 0);
    snprintf(dir, sizeof(dir), "/tmp/rn-offsets-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    open_log();
    cr_assert_eq(rn_offsets_new(&tab), 0);
}

static void teardown(void)
{
    rn_sys_set_injector(NULL, NULL);
    if (tab)
        rn_offsets_free(tab);
    if (log_)
        rn_log_close(log_);
    unsigned inflight = rn_io_inflight(io);
    rn_io_free(io);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(inflight, 0);
}

TestSuite(offsets, .init = setup, .fini = teardown, .timeout = 60);

/* ---- Helpers ------------------------------------------------------------------ */

typedef struct done {
    bool fired;
    int err;
} done;

static void on_done(void *arg, int err)
{
    done *d = arg;
    cr_assert(!d->fired, "callback ran twice");
    d->fired = true;
    d->err = err;
}

static void wait_for(done *d)
{
    while (!d->fired) {
        cr_assert_gt(rn_io_inflight(io), 0, "waiting for a callback with nothing in flight");
        cr_assert_geq(rn_io_run(io, 1), 0);
    }
}

static int commit(const char *group, const rn_offset_commit *c, size_t n)
{
    done d = {0};
    int rc = rn_offsets_commit(tab, log_, 0, group, c, n, 1700000000000, on_done, &d);
    if (rc < 0) {
        cr_assert(!d.fired);
        return rc;
    }
    cr_assert(!d.fired, "callback ran inside the call");
    cr_assert_eq(rn_offsets_pending(tab), 1);
    wait_for(&d);
    cr_assert_eq(rn_offsets_pending(tab), 0);
    return d.err;
}

static void commit_one(const char *group, const char *topic, int32_t p, int64_t off, const char *md)
{
    rn_offset_commit c = {topic, p, off, md};
    cr_assert_eq(commit(group, &c, 1), 0);
}

/* Close the log, open it again and replay it into a fresh table. */
static void reload(void)
{
    cr_assert_eq(rn_log_close(log_), 0);
    log_ = NULL;
    rn_offsets_free(tab);
    open_log();
    cr_assert_eq(rn_offsets_new(&tab), 0);
    char err[256];
    cr_assert_eq(rn_offsets_load(tab, log_, err, sizeof(err)), 0, "%s", err);
}

static int64_t offset_of(const char *group, const char *topic, int32_t p)
{
    const rn_offset_entry *e = rn_offsets_find(tab, group, topic, p);
    return e ? e->offset : -1;
}

/* ---- Codec ------------------------------------------------------------------------ */

// A key round-trips through its length-prefixed form, byte for byte as documented.
Test(offsets, key_codec)
{
    uint8_t buf[RN_OFFSETS_MAX_KEY];
    int n = rn_offsets_key_encode(buf, sizeof(buf), "g1", "orders", 7);
    cr_assert_eq(n, 9 + 2 + 6);
    static const uint8_t want[] = {0,   0,   2,   'g', '1', 0, 6, 'o', 'r',
                                   'd', 'e', 'r', 's', 0,   0, 0, 7};
    cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
    char g[RN_OFFSETS_MAX_NAME + 1], t[RN_OFFSETS_MAX_NAME + 1];
    int32_t p = -1;
    cr_assert_eq(rn_offsets_key_decode(buf, (size_t)n, g, t, &p), 0);
    cr_assert_str_eq(g, "g1");
    cr_assert_str_eq(t, "orders");
    cr_assert_eq(p, 7);

    /* Truncated, trailing byte, NUL inside a name, empty name, negative
     * partition, unknown version. */
    cr_assert_eq(rn_offsets_key_decode(buf, (size_t)n - 1, g, t, &p), -RN_E_CORRUPT_FILE);
    uint8_t longer[sizeof(want) + 1];
    memcpy(longer, want, sizeof(want));
    longer[sizeof(want)] = 0;
    cr_assert_eq(rn_offsets_key_decode(longer, sizeof(longer), g, t, &p), -RN_E_CORRUPT_FILE);
    uint8_t bad[sizeof(want)];
    memcpy(bad, want, sizeof(want));
    bad[4] = 0;
    cr_assert_eq(rn_offsets_key_decode(bad, sizeof(bad), g, t, &p), -RN_E_CORRUPT_FILE);
    memcpy(bad, want, sizeof(want));
    bad[13] = 0x80;
    cr_assert_eq(rn_offsets_key_decode(bad, sizeof(bad), g, t, &p), -RN_E_CORRUPT_FILE);
    memcpy(bad, want, sizeof(want));
    bad[0] = 1;
    cr_assert_eq(rn_offsets_key_decode(bad, sizeof(bad), g, t, &p), -EPROTONOSUPPORT);
    static const uint8_t empty[] = {0, 0, 0, 0, 1, 't', 0, 0, 0, 0};
    cr_assert_eq(rn_offsets_key_decode(empty, sizeof(empty), g, t, &p), -RN_E_CORRUPT_FILE);

    char big[RN_OFFSETS_MAX_NAME + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cr_assert_eq(rn_offsets_key_encode(buf, sizeof(buf), big, "t", 0), -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_offsets_key_encode(buf, sizeof(buf), "", "t", 0), -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_offsets_key_encode(buf, sizeof(buf), "g", "t", -1), -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_offsets_key_encode(buf, 5, "g", "t", 0), -ENOBUFS);
}

// A value round-trips (offset, commit time, metadata); bad lengths are corrupt.
Test(offsets, value_codec)
{
    uint8_t buf[RN_OFFSETS_MAX_VALUE];
    int n = rn_offsets_value_encode(buf, sizeof(buf), 42, 1234, "hello");
    cr_assert_eq(n, 19 + 5);
    int64_t off, ts;
    const uint8_t *md;
    size_t md_len;
    cr_assert_eq(rn_offsets_value_decode(buf, (size_t)n, &off, &ts, &md, &md_len), 0);
    cr_assert_eq(off, 42);
    cr_assert_eq(ts, 1234);
    cr_assert_eq(md_len, 5);
    cr_assert_eq(memcmp(md, "hello", 5), 0);
    cr_assert_eq(rn_offsets_value_decode(buf, (size_t)n - 1, &off, &ts, &md, &md_len),
                 -RN_E_CORRUPT_FILE);
    cr_assert_eq(rn_offsets_value_decode(buf, 10, &off, &ts, &md, &md_len), -RN_E_CORRUPT_FILE);
    buf[0] = 9;
    cr_assert_eq(rn_offsets_value_decode(buf, (size_t)n, &off, &ts, &md, &md_len),
                 -EPROTONOSUPPORT);
    cr_assert_eq(rn_offsets_value_encode(buf, sizeof(buf), -1, 0, NULL), -RN_E_INVALID_REQUEST);
    char *big = malloc(RN_OFFSETS_MAX_METADATA + 2);
    memset(big, 'm', RN_OFFSETS_MAX_METADATA + 1);
    big[RN_OFFSETS_MAX_METADATA + 1] = 0;
    cr_assert_eq(rn_offsets_value_encode(buf, sizeof(buf), 0, 0, big), -RN_E_INVALID_REQUEST);
    big[RN_OFFSETS_MAX_METADATA] = 0;
    cr_assert_eq(rn_offsets_value_encode(buf, sizeof(buf), 0, 0, big),
                 19 + RN_OFFSETS_MAX_METADATA);
    free(big);
}

/* ---- Commits ------------------------------------------------------------------------ */

// A commit is in the table only after its callback, with the offsets the log gave its records.
Test(offsets, commit_then_find)
{
    rn_offset_commit c[] = {{"t", 1, 10, "m1"}, {"t", 0, 5, NULL}, {"a", 3, 0, ""}};
    done d = {0};
    cr_assert_eq(rn_offsets_commit(tab, log_, 0, "g", c, 3, 99, on_done, &d), 0);
    /* Not durable yet: not visible. */
    cr_assert_null(rn_offsets_find(tab, "g", "t", 1));
    wait_for(&d);
    cr_assert_eq(d.err, 0);
    const rn_offset_entry *e = rn_offsets_find(tab, "g", "t", 1);
    cr_assert_not_null(e);
    cr_assert_eq(e->offset, 10);
    cr_assert_str_eq(e->metadata, "m1");
    cr_assert_eq(e->commit_ms, 99);
    cr_assert_eq(e->log_offset, 0);
    size_t n;
    const rn_offset_entry *all = rn_offsets_entries(tab, "g", &n);
    cr_assert_eq(n, 3);
    /* Sorted by (topic, partition). */
    cr_assert_str_eq(all[0].topic, "a");
    cr_assert_eq(all[1].partition, 0);
    cr_assert_eq(all[2].partition, 1);
    cr_assert_str_eq(all[1].metadata, "");
    cr_assert_eq(rn_offsets_group_count(tab), 1);
    cr_assert_str_eq(rn_offsets_group_at(tab, 0), "g");
    cr_assert_null(rn_offsets_group_at(tab, 1));
    cr_assert_null(rn_offsets_find(tab, "other", "t", 1));
    cr_assert_eq(rn_log_end_offset(log_), 3);
}

// The latest commit per key wins, also after a reload from the log.
Test(offsets, latest_wins_and_survives_reload)
{
    commit_one("g", "t", 0, 5, "first");
    commit_one("g", "t", 0, 7, "second");
    commit_one("h", "t", 0, 1, NULL);
    commit_one("g", "t", 1, 3, NULL);
    cr_assert_eq(offset_of("g", "t", 0), 7);
    reload();
    cr_assert_eq(offset_of("g", "t", 0), 7);
    cr_assert_str_eq(rn_offsets_find(tab, "g", "t", 0)->metadata, "second");
    cr_assert_eq(offset_of("g", "t", 1), 3);
    cr_assert_eq(offset_of("h", "t", 0), 1);
    rn_offsets_stats st;
    rn_offsets_get_stats(tab, &st);
    cr_assert_eq(st.records, 4);
    cr_assert_eq(st.skipped, 0);
    cr_assert_eq(rn_offsets_group_count(tab), 2);
}

// Deleting a group writes tombstones: gone now and after a reload; the other groups stay.
Test(offsets, delete_group_tombstones)
{
    commit_one("g", "t", 0, 5, NULL);
    commit_one("g", "u", 2, 6, NULL);
    commit_one("keep", "t", 0, 9, NULL);
    done d = {0};
    cr_assert_eq(rn_offsets_delete_group(tab, log_, 0, "g", 1, on_done, &d), 0);
    cr_assert_eq(offset_of("g", "t", 0), 5, "gone before durable");
    wait_for(&d);
    cr_assert_eq(d.err, 0);
    cr_assert_eq(offset_of("g", "t", 0), -1);
    cr_assert_eq(rn_offsets_group_count(tab), 1);
    cr_assert_eq(rn_offsets_delete_group(tab, log_, 0, "g", 1, on_done, &d), 1);
    reload();
    cr_assert_eq(offset_of("g", "u", 2), -1);
    cr_assert_eq(offset_of("keep", "t", 0), 9);
    rn_offsets_stats st;
    rn_offsets_get_stats(tab, &st);
    cr_assert_eq(st.tombstones, 2);
    /* A commit after the delete brings the group back. */
    commit_one("g", "t", 0, 11, NULL);
    reload();
    cr_assert_eq(offset_of("g", "t", 0), 11);
}

// A commit larger than one batch is split over several, all applied and all replayed.
Test(offsets, large_commit_spans_batches)
{
    enum { N = 3000 };
    static rn_offset_commit c[N];
    static char names[N][16];
    char md[200];
    memset(md, 'x', sizeof(md) - 1);
    md[sizeof(md) - 1] = 0;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "topic-%d", i % 17);
        c[i] = (rn_offset_commit){names[i], i, (int64_t)i * 3, md};
    }
    cr_assert_eq(commit("big", c, N), 0);
    size_t n;
    rn_offsets_entries(tab, "big", &n);
    cr_assert_eq(n, N);
    /* More than one batch: the first batch's records do not reach the end. */
    rn_slice s;
    cr_assert_eq(rn_log_read(log_, 0, 1, rn_log_end_offset(log_), &s), 0);
    cr_assert_lt(s.next_offset, N, "one batch held everything");
    rn_slice_release(&s);
    reload();
    rn_offsets_entries(tab, "big", &n);
    cr_assert_eq(n, N);
    cr_assert_eq(offset_of("big", "topic-5", 5), 15);
    cr_assert_eq(offset_of("big", "topic-11", 2000), 6000);
}

// Bad commits are refused at once and the callback never runs.
Test(offsets, invalid_commits_refused)
{
    rn_offset_commit empty_topic = {"", 0, 1, NULL}, neg = {"t", -1, 1, NULL},
                     neg_off = {"t", 0, -5, NULL};
    cr_assert_eq(commit("g", &empty_topic, 1), -RN_E_INVALID_REQUEST);
    cr_assert_eq(commit("g", &neg, 1), -RN_E_INVALID_REQUEST);
    cr_assert_eq(commit("g", &neg_off, 1), -RN_E_INVALID_REQUEST);
    rn_offset_commit ok = {"t", 0, 1, NULL};
    cr_assert_eq(commit("", &ok, 1), -RN_E_INVALID_REQUEST);
    cr_assert_eq(commit("g", &ok, 0), -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_log_end_offset(log_), 0, "nothing was written");
    cr_assert_eq(rn_offsets_group_count(tab), 0);
}

/* ---- Failures and foreign records -------------------------------------------------------- */

static int fail_pwrite(enum rn_sys_call call, void *arg)
{
    (void)arg;
    return call == RN_SYS_PWRITE ? -EIO : 0;
}

// A commit whose write fails reports the error and leaves the table as it was.
Test(offsets, failed_write_changes_nothing)
{
    commit_one("g", "t", 0, 5, NULL);
    rn_sys_set_injector(fail_pwrite, NULL);
    rn_offset_commit c = {"t", 0, 6, NULL};
    int rc = commit("g", &c, 1);
    rn_sys_set_injector(NULL, NULL);
    cr_assert_lt(rc, 0, "a failed write was acknowledged");
    cr_assert_eq(offset_of("g", "t", 0), 5);
}

// Records that do not decode (foreign key, unknown versions, garbage) are skipped on load.
Test(offsets, load_skips_foreign_records)
{
    commit_one("g", "t", 0, 5, NULL);
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    uint8_t key[RN_OFFSETS_MAX_KEY], val[RN_OFFSETS_MAX_VALUE];
    int kl = rn_offsets_key_encode(key, sizeof(key), "g", "t", 1);
    int vl = rn_offsets_value_encode(val, sizeof(val), 8, 0, NULL);
    cr_assert_eq(rn_batch_builder_add(b, 1, "junk", 4, val, (size_t)vl, NULL, 0), 0);
    val[0] = 7; /* a value version from the future */
    cr_assert_eq(rn_batch_builder_add(b, 1, key, (size_t)kl, val, (size_t)vl, NULL, 0), 0);
    cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, val, (size_t)vl, NULL, 0), 0);
    val[0] = 0;
    cr_assert_eq(rn_batch_builder_add(b, 1, key, (size_t)kl, val, 3, NULL, 0), 0);
    uint8_t *batch;
    size_t len;
    cr_assert_eq(rn_batch_builder_finish(b, &batch, &len), 0);
    rn_batch_builder_free(b);
    cr_assert_eq(rn_log_append_sync(log_, batch, len, 0, NULL), 0);
    free(batch);
    commit_one("g", "t", 2, 9, NULL);
    reload();
    rn_offsets_stats st;
    rn_offsets_get_stats(tab, &st);
    cr_assert_eq(st.skipped, 4);
    cr_assert_eq(offset_of("g", "t", 0), 5);
    cr_assert_eq(offset_of("g", "t", 1), -1);
    cr_assert_eq(offset_of("g", "t", 2), 9);
}
