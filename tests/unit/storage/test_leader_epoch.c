/*
 * test_leader_epoch.c — the leader-epoch cache and its checkpoint file
 * (storage/leader_epoch.c), alone and as the partition log keeps it
 * (suite `leader_epoch`).
 *
 * Kafka's LeaderEpochFileCache rules (assign, truncateFromEnd,
 * truncateFromStart, endOffsetFor) are checked entry by entry; the file is
 * checked byte for byte (Kafka's text, then runnel's checksum line), its
 * parser against damaged input, and its write against a crash at every
 * system call (the crash layer of helpers.h: old file or new, both verify).
 */
#define TH_CRASH_LAYER
#include <xxhash.h>

#include "helpers.h"
#include "storage/leader_epoch.h"

static rn_leader_epochs *open_cache(const char *dir, int want_rc)
{
    rn_leader_epochs *c;
    int rc = rn_leader_epochs_open(&c, dir);
    cr_assert_eq(rc, want_rc, "open: %d (%s)", rc, rn_strerror(rc));
    return c;
}

static void expect_entries(const rn_leader_epochs *c, const rn_leader_epoch_entry *want, unsigned n,
                           const char *what)
{
    cr_assert_eq(rn_leader_epochs_count(c), n, "%s: %u entries, expected %u", what,
                 rn_leader_epochs_count(c), n);
    for (unsigned i = 0; i < n; i++) {
        rn_leader_epoch_entry e = rn_leader_epochs_get(c, i);
        cr_assert(e.epoch == want[i].epoch && e.start_offset == want[i].start_offset,
                  "%s: entry %u is (%d, %" PRId64 "), expected (%d, %" PRId64 ")", what, i, e.epoch,
                  e.start_offset, want[i].epoch, want[i].start_offset);
    }
}

// The file is Kafka's text (version, count, "epoch offset" lines) then an xxh3 line.
Test(leader_epoch, file_format_is_kafka_text_plus_checksum)
{
    char *dir = th_tmpdir("epoch");
    rn_leader_epochs *c = open_cache(dir, 1);
    cr_assert_eq(rn_leader_epochs_assign(c, 0, 0), 1);
    cr_assert_eq(rn_leader_epochs_assign(c, 3, 1200), 1);
    char p[4096];
    size_t len;
    char *buf = (char *)th_read_file(th_path(p, dir, RN_LEADER_EPOCH_FILE), &len);
    const char *head = "0\n2\n0 0\n3 1200\n";
    cr_assert_eq(memcmp(buf, head, strlen(head)), 0, "%.*s", (int)len, buf);
    char want[64];
    snprintf(want, sizeof(want), "xxh3 %016" PRIx64 "\n", XXH3_64bits(head, strlen(head)));
    cr_assert_eq(len, strlen(head) + strlen(want));
    cr_assert_eq(memcmp(buf + strlen(head), want, strlen(want)), 0);
    free(buf);
    rn_leader_epochs_free(c);
    /* Read back as written. */
    c = open_cache(dir, 0);
    rn_leader_epoch_entry e[] = {{0, 0}, {3, 1200}};
    expect_entries(c, e, 2, "reloaded");
    rn_leader_epochs_free(c);
    th_rmrf(dir);
    free(dir);
}

// assign: same epoch is a no-op; a new epoch appends; a lower start or epoch replaces the tail.
Test(leader_epoch, assign_follows_kafka)
{
    char *dir = th_tmpdir("epoch");
    rn_leader_epochs *c = open_cache(dir, 1);
    cr_assert_eq(rn_leader_epochs_latest(c), RN_EPOCH_UNDEFINED);
    cr_assert_eq(rn_leader_epochs_assign(c, -1, 0), 0, "no epoch: nothing recorded");
    cr_assert_eq(rn_leader_epochs_assign(c, 1, 0), 1);
    cr_assert_eq(rn_leader_epochs_assign(c, 1, 10), 0, "the latest epoch again: no change");
    cr_assert_eq(rn_leader_epochs_assign(c, 2, 20), 1);
    cr_assert_eq(rn_leader_epochs_assign(c, 4, 40), 1);
    rn_leader_epoch_entry a[] = {{1, 0}, {2, 20}, {4, 40}};
    expect_entries(c, a, 3, "three epochs");
    /* A new epoch starting below the last entry's start: the later entries go. */
    cr_assert_eq(rn_leader_epochs_assign(c, 5, 30), 1);
    rn_leader_epoch_entry b[] = {{1, 0}, {2, 20}, {5, 30}};
    expect_entries(c, b, 3, "start below the last");
    /* An older epoch: every entry with an epoch >= it (or a start >= its
     * start) goes, and it starts anew: a diverged tail, as Kafka does. */
    cr_assert_eq(rn_leader_epochs_assign(c, 2, 25), 1);
    rn_leader_epoch_entry d[] = {{1, 0}, {2, 25}};
    expect_entries(c, d, 2, "older epoch");
    /* The latest epoch at a lower start: its start moves down. */
    cr_assert_eq(rn_leader_epochs_assign(c, 2, 15), 1);
    rn_leader_epoch_entry f[] = {{1, 0}, {2, 15}};
    expect_entries(c, f, 2, "lower start");
    rn_leader_epochs_free(c);
    c = open_cache(dir, 0);
    expect_entries(c, f, 2, "reloaded");
    rn_leader_epochs_free(c);
    th_rmrf(dir);
    free(dir);
}

// truncate_from_end drops entries at/after the end; truncate_from_start clamps the first.
Test(leader_epoch, truncations)
{
    char *dir = th_tmpdir("epoch");
    rn_leader_epochs *c = open_cache(dir, 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rn_leader_epochs_assign(c, i * 2, i * 100), 1);
    cr_assert_eq(rn_leader_epochs_truncate_from_end(c, 401), 0, "nothing starts at/after 401");
    cr_assert_eq(rn_leader_epochs_truncate_from_end(c, 300), 1);
    rn_leader_epoch_entry a[] = {{0, 0}, {2, 100}, {4, 200}};
    expect_entries(c, a, 3, "from end");
    cr_assert_eq(rn_leader_epochs_truncate_from_start(c, 0), 0);
    cr_assert_eq(rn_leader_epochs_truncate_from_start(c, 150), 1);
    rn_leader_epoch_entry b[] = {{2, 150}, {4, 200}};
    expect_entries(c, b, 2, "from start, inside epoch 2");
    cr_assert_eq(rn_leader_epochs_truncate_from_start(c, 200), 1);
    rn_leader_epoch_entry d[] = {{4, 200}};
    expect_entries(c, d, 1, "from start, at epoch 4's start");
    cr_assert_eq(rn_leader_epochs_truncate_from_start(c, 500), 1);
    rn_leader_epoch_entry f[] = {{4, 500}};
    expect_entries(c, f, 1, "from start, past every start");
    rn_leader_epochs_free(c);
    c = open_cache(dir, 0);
    expect_entries(c, f, 1, "reloaded");
    cr_assert_eq(rn_leader_epochs_clear(c), 1);
    rn_leader_epochs_free(c);
    c = open_cache(dir, 0);
    cr_assert_eq(rn_leader_epochs_count(c), 0);
    rn_leader_epochs_free(c);
    th_rmrf(dir);
    free(dir);
}

// end_offset_for answers as Kafka's OffsetsForLeaderEpoch: latest -> leo, between -> next start.
Test(leader_epoch, end_offset_for)
{
    char *dir = th_tmpdir("epoch");
    rn_leader_epochs *c = open_cache(dir, 1);
    int32_t e;
    int64_t off;
    rn_leader_epochs_end_offset_for(c, 1, 500, &e, &off);
    cr_assert(e == RN_EPOCH_UNDEFINED && off == RN_EPOCH_OFFSET_UNDEFINED, "empty cache");
    rn_leader_epochs_assign(c, 2, 10);
    rn_leader_epochs_assign(c, 4, 100);
    rn_leader_epochs_assign(c, 7, 300);
    struct {
        int32_t ask, epoch;
        int64_t end;
    } cases[] = {
        {7, 7, 500},                                        /* the latest: the log end */
        {4, 4, 300},                                        /* known: the next epoch's start */
        {2, 2, 100},                                        /* the first */
        {5, 4, 300},                                        /* unknown, between: the one below */
        {3, 2, 100},                                        /* unknown, between */
        {1, 1, 10},                                         /* older than all: the first start */
        {8, RN_EPOCH_UNDEFINED, RN_EPOCH_OFFSET_UNDEFINED}, /* newer than the latest */
        {-1, RN_EPOCH_UNDEFINED, RN_EPOCH_OFFSET_UNDEFINED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rn_leader_epochs_end_offset_for(c, cases[i].ask, 500, &e, &off);
        cr_assert(e == cases[i].epoch && off == cases[i].end,
                  "epoch %d: (%d, %" PRId64 "), expected (%d, %" PRId64 ")", cases[i].ask, e, off,
                  cases[i].epoch, cases[i].end);
    }
    rn_leader_epochs_free(c);
    th_rmrf(dir);
    free(dir);
}

// The parser refuses damaged files (bad checksum, order, bounds, trailing bytes) without crashing.
Test(leader_epoch, decode_refuses_damage)
{
    rn_leader_epoch_entry v[] = {{1, 0}, {3, 50}, {9, 70}};
    char buf[256];
    int len = rn_leader_epochs_encode(v, 3, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    rn_leader_epoch_entry *out;
    unsigned n;
    cr_assert_eq(rn_leader_epochs_decode(buf, (size_t)len, &out, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert(out[2].epoch == 9 && out[2].start_offset == 70);
    free(out);
    /* Every truncation of the file and every single-byte change is refused. */
    for (int cut = 0; cut < len; cut++)
        cr_assert_eq(rn_leader_epochs_decode(buf, (size_t)cut, &out, &n), -RN_E_CORRUPT_FILE,
                     "cut at %d", cut);
    for (int i = 0; i < len; i++) {
        char d[256];
        memcpy(d, buf, (size_t)len);
        d[i] ^= 0x01;
        cr_assert_eq(rn_leader_epochs_decode(d, (size_t)len, &out, &n), -RN_E_CORRUPT_FILE,
                     "byte %d flipped", i);
    }
    /* Well-formed but not monotonic, or out of bounds, with a right checksum. */
    const char *bad[] = {"0\n2\n3 0\n1 5\n", "0\n2\n1 10\n2 5\n",    "1\n0\n",
                         "0\n99999999\n",    "0\n1\n2147483648 0\n", "0\n1\n1 -5\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char d[256];
        int l = snprintf(d, sizeof(d), "%sxxh3 %016" PRIx64 "\n", bad[i],
                         XXH3_64bits(bad[i], strlen(bad[i])));
        cr_assert_eq(rn_leader_epochs_decode(d, (size_t)l, &out, &n), -RN_E_CORRUPT_FILE, "%s",
                     bad[i]);
    }
    /* No room: -ENOSPC, never an overflow. */
    cr_assert_eq(rn_leader_epochs_encode(v, 3, buf, 12), -ENOSPC);
}

/* ---- Crashes while writing the file ---------------------------------------------- */

typedef struct crash_at {
    unsigned nth, count;
    bool fired;
} crash_at;

/* The process "dies" at call nth: it and every call after it fail. */
static int die_at(enum rn_sys_call call, void *arg)
{
    crash_at *c = arg;
    (void)call;
    if (++c->count >= c->nth) {
        c->fired = true;
        return -EIO;
    }
    return 0;
}

// A crash at every system call of a checkpoint write leaves the old file or the new, both valid.
Test(leader_epoch, crash_while_writing_leaves_old_or_new)
{
    rn_leader_epoch_entry old_v[] = {{1, 0}, {2, 40}};
    rn_leader_epoch_entry new_v[] = {{1, 0}, {2, 40}, {5, 90}};
    unsigned n_old = 0, n_new = 0, runs = 0;
    for (unsigned nth = 1;; nth++) {
        cr_assert_lt(nth, 50, "the write never ends");
        char *dir = th_tmpdir("epochcrash");
        rn_leader_epochs *c = open_cache(dir, 1);
        cr_assert_eq(rn_leader_epochs_assign(c, 1, 0), 1);
        cr_assert_eq(rn_leader_epochs_assign(c, 2, 40), 1);
        th_crash_begin(dir, true);
        crash_at ca = {.nth = nth};
        rn_sys_set_injector(die_at, &ca);
        int rc = rn_leader_epochs_assign(c, 5, 90);
        rn_sys_set_injector(NULL, NULL);
        if (ca.fired) {
            cr_assert_lt(rc, 0, "call %u failed, yet the write succeeded", nth);
            expect_entries(c, old_v, 2, "memory after a failed write");
        } else {
            cr_assert_eq(rc, 1);
        }
        rn_leader_epochs_free(c);
        th_crash_apply(dir, TH_CRASH_RANDOM, nth);
        th_crash_end();

        c = open_cache(dir, 0);
        if (rn_leader_epochs_count(c) == 3) {
            expect_entries(c, new_v, 3, "after the crash");
            n_new++;
        } else {
            expect_entries(c, old_v, 2, "after the crash");
            n_old++;
        }
        if (!ca.fired)
            cr_assert_eq(rn_leader_epochs_count(c), 3, "a completed write must be durable");
        rn_leader_epochs_free(c);
        th_rmrf(dir);
        free(dir);
        runs++;
        if (!ca.fired)
            break;
    }
    cr_assert_gt(n_old, 0);
    cr_assert_gt(n_new, 0);
    cr_log_info("%u crash points: %u old, %u new", runs, n_old, n_new);
}

/* ---- In the log --------------------------------------------------------------- */

static rn_log *open_log(rn_io *io, const char *dir, rn_log_open_info *info)
{
    rn_log_config cfg;
    th_config(&cfg, 4096, RN_FLUSH_ALWAYS);
    rn_log *log;
    int rc = rn_log_open(&log, io, dir, "epochs", &cfg, info);
    cr_assert_eq(rc, 0, "open: %s", rn_strerror(rc));
    return log;
}

static int64_t append_epoch(rn_log *log, uint64_t seed, int32_t epoch)
{
    size_t len;
    uint8_t *b = th_batch_new(seed, 3, 200, &len);
    int64_t base;
    int rc = rn_log_append_sync(log, b, len, epoch, &base);
    cr_assert_eq(rc, 0, "append: %s (%s)", rn_strerror(rc), rn_log_errmsg(log));
    free(b);
    return base;
}

// Appends with a new epoch add an entry (on disk by the next seal or close); retention clamps it.
Test(leader_epoch, log_records_epochs_of_appends)
{
    char *dir = th_tmpdir("logepoch");
    rn_io *io = th_io_new();
    rn_log *log = open_log(io, dir, NULL);
    char p[4096];
    cr_assert(!th_exists(th_path(p, dir, RN_LEADER_EPOCH_FILE)), "no file before any epoch");
    int64_t b0 = append_epoch(log, 1, 0);
    cr_assert(!th_exists(p), "an append never waits for the checkpoint");
    append_epoch(log, 2, 0);
    int64_t b3 = append_epoch(log, 3, 3);
    for (int i = 0; i < 12; i++)
        append_epoch(log, 10 + i, 3);
    int64_t b7 = append_epoch(log, 30, 7);
    rn_leader_epoch_entry want[] = {{0, b0}, {3, b3}, {7, b7}};
    expect_entries(rn_log_leader_epochs(log), want, 3, "after appends");
    cr_assert(th_exists(p), "sealed segments: their epochs are on disk");
    int32_t e;
    int64_t end;
    rn_log_end_offset_for_epoch(log, 3, &e, &end);
    cr_assert(e == 3 && end == b7);
    rn_log_end_offset_for_epoch(log, 7, &e, &end);
    cr_assert(e == 7 && end == rn_log_end_offset(log));
    cr_assert_gt(rn_log_segment_count(log), 3);
    /* Retention takes the first segments: the first entry clamps to the new start. */
    rn_log_config cfg = *rn_log_config_of(log);
    cfg.retention_bytes = 4096;
    cr_assert_eq(rn_log_set_config(log, &cfg), 0);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);
    int64_t start = rn_log_start_offset(log);
    cr_assert_gt(start, b3);
    rn_leader_epoch_entry after[] = {{3, start}, {7, b7}};
    expect_entries(rn_log_leader_epochs(log), after, 2, "after retention");
    cr_assert_eq(rn_log_close(log), 0);
    rn_log_open_info info;
    log = open_log(io, dir, &info);
    cr_assert(!info.epochs_rebuilt);
    expect_entries(rn_log_leader_epochs(log), after, 2, "reopened");
    rn_log_abandon(log);
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}

// A missing or corrupt checkpoint is rebuilt at open from the batch headers (and said so).
Test(leader_epoch, log_rebuilds_missing_or_corrupt_file)
{
    char *dir = th_tmpdir("logepoch");
    rn_io *io = th_io_new();
    rn_log *log = open_log(io, dir, NULL);
    int64_t b[4];
    b[0] = append_epoch(log, 1, 2);
    for (int i = 0; i < 6; i++)
        append_epoch(log, 2 + i, 2);
    b[1] = append_epoch(log, 10, 5);
    b[2] = append_epoch(log, 11, 6);
    for (int i = 0; i < 6; i++)
        append_epoch(log, 20 + i, 6);
    b[3] = append_epoch(log, 30, 9);
    rn_leader_epoch_entry want[] = {{2, b[0]}, {5, b[1]}, {6, b[2]}, {9, b[3]}};
    cr_assert_eq(rn_log_close(log), 0);
    char p[4096];
    th_path(p, dir, RN_LEADER_EPOCH_FILE);
    for (int round = 0; round < 3; round++) {
        if (round == 0) {
            cr_assert_eq(unlink(p), 0);
        } else if (round == 1) {
            uint8_t x = th_byte_at(p, 5) ^ 0x20;
            th_write_at(p, 5, &x, 1);
        } else {
            th_write_file(p, "garbage", 7);
        }
        rn_log_open_info info;
        log = open_log(io, dir, &info);
        char line[512];
        rn_log_open_info_str(&info, line, sizeof(line));
        cr_assert(info.epochs_rebuilt, "round %d: %s", round, line);
        cr_assert(strstr(line, "rebuilt_leader_epochs=true"), "%s", line);
        expect_entries(rn_log_leader_epochs(log), want, 4, "rebuilt");
        cr_assert_eq(rn_log_close(log), 0);
        /* And the rebuilt file is on disk: the next open reads it. */
        log = open_log(io, dir, &info);
        cr_assert(!info.epochs_rebuilt, "round %d: rebuilt twice", round);
        expect_entries(rn_log_leader_epochs(log), want, 4, "reread");
        cr_assert_eq(rn_log_close(log), 0);
    }
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}

static rn_log *open_lazy(rn_io *io, const char *dir, rn_log_open_info *info)
{
    rn_log_config cfg;
    th_config(&cfg, 4096, RN_FLUSH_ALWAYS);
    cfg.lazy_epochs = true;
    rn_log *log;
    int rc = rn_log_open(&log, io, dir, "epochs", &cfg, info);
    cr_assert_eq(rc, 0, "open: %s", rn_strerror(rc));
    return log;
}

// lazy_epochs: after a clean shutdown the checkpoint is not read at open (a
// garbage file is left as it is and not reported), an open and close that
// never use it leave it untouched, and its first use reads it as open would
// (here: rebuilt from the batch headers and written back).
Test(leader_epoch, lazy_open_reads_checkpoint_at_first_use)
{
    char *dir = th_tmpdir("lazyepoch");
    rn_io *io = th_io_new();
    rn_log *log = open_log(io, dir, NULL);
    int64_t b0 = append_epoch(log, 1, 2);
    append_epoch(log, 2, 2);
    int64_t b1 = append_epoch(log, 3, 5);
    rn_leader_epoch_entry want[] = {{2, b0}, {5, b1}};
    cr_assert_eq(rn_log_close(log), 0);
    char p[4096];
    th_path(p, dir, RN_LEADER_EPOCH_FILE);
    th_write_file(p, "garbage", 7);

    rn_log_open_info info;
    log = open_lazy(io, dir, &info);
    cr_assert(info.clean && !info.epochs_rebuilt, "not read at open");
    cr_assert_eq(rn_log_close(log), 0);
    size_t len;
    uint8_t *bytes = th_read_file(p, &len);
    cr_assert(len == 7 && memcmp(bytes, "garbage", 7) == 0, "an unused checkpoint is untouched");
    free(bytes);

    log = open_lazy(io, dir, &info);
    expect_entries(rn_log_leader_epochs(log), want, 2, "read at first use");
    int64_t b2 = append_epoch(log, 4, 9);
    cr_assert_eq(rn_log_close(log), 0);
    rn_leader_epoch_entry want2[] = {{2, b0}, {5, b1}, {9, b2}};
    log = open_log(io, dir, &info);
    cr_assert(!info.epochs_rebuilt, "the first use wrote the file back");
    expect_entries(rn_log_leader_epochs(log), want2, 3, "eager reopen");
    cr_assert_eq(rn_log_close(log), 0);

    /* A new epoch's first append is a first use too, and end_offset_for. */
    log = open_lazy(io, dir, NULL);
    int32_t e;
    int64_t end;
    cr_assert_eq(rn_log_end_offset_for_epoch(log, 5, &e, &end), 0);
    cr_assert_eq(e, 5);
    cr_assert_eq(end, b2);
    cr_assert_eq(rn_log_close(log), 0);
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}

// lazy_epochs does not apply after a crash: recovery needs the epochs at
// open (the last segment's are re-derived from its headers).
Test(leader_epoch, lazy_ignored_after_crash)
{
    char *dir = th_tmpdir("lazycrash");
    rn_io *io = th_io_new();
    rn_log *log = open_log(io, dir, NULL);
    append_epoch(log, 1, 2);
    rn_log_abandon(log);
    char p[4096];
    th_path(p, dir, RN_LEADER_EPOCH_FILE);
    th_write_file(p, "garbage", 7);
    rn_log_open_info info;
    log = open_lazy(io, dir, &info);
    cr_assert(!info.clean);
    cr_assert(info.epochs_rebuilt, "read (and rebuilt) at open");
    cr_assert_eq(rn_leader_epochs_count(rn_log_leader_epochs(log)), 1);
    cr_assert_eq(rn_log_close(log), 0);
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}

/* ---- Power loss while epochs change ------------------------------------------- */

/* The entries the batches of the log say (one per change of
 * partition_leader_epoch) must be exactly the cache's. */
static void expect_epochs_match_log(rn_log *log, const char *what)
{
    th_batches got = {0};
    th_read_all(log, 1 << 20, &got);
    const rn_leader_epochs *c = rn_log_leader_epochs(log);
    unsigned k = 0;
    int32_t last = -1;
    for (size_t i = 0; i < got.n; i++) {
        int32_t e = th_be32(got.v[i].data + RN_BATCH_OFF_LEADER_EPOCH);
        if (e == last)
            continue;
        cr_assert_lt(k, rn_leader_epochs_count(c), "%s: epoch %d at %" PRId64 " missing", what, e,
                     got.v[i].base);
        rn_leader_epoch_entry x = rn_leader_epochs_get(c, k++);
        cr_assert(x.epoch == e && x.start_offset == got.v[i].base,
                  "%s: entry %u is (%d, %" PRId64 "), the log says (%d, %" PRId64 ")", what, k - 1,
                  x.epoch, x.start_offset, e, got.v[i].base);
        last = e;
    }
    cr_assert_eq(rn_leader_epochs_count(c), k, "%s: %u entries, the batches say %u", what,
                 rn_leader_epochs_count(c), k);
    th_batches_free(&got);
}

static void noop_cb(void *arg, int err, int64_t base, int64_t last)
{
    (void)base;
    (void)last;
    *(int *)arg += err == 0;
}

// Power loss at random moments while epochs change across rolls (flush=always and never): the
// recovered log's epochs are exactly those its batches carry, and the next append adds to them.
Test(leader_epoch, power_loss_keeps_epochs_consistent)
{
    unsigned trials = 0;
    for (uint64_t seed = 1; seed <= 16; seed++) {
        char *root = th_tmpdir("epochpl");
        char dir[4096], crash_dir[4096];
        th_path(dir, root, "log");
        th_path(crash_dir, root, "crash");
        rn_io *io = th_io_new();
        rn_log_config cfg;
        th_config(&cfg, 4096, seed % 2 ? RN_FLUSH_ALWAYS : RN_FLUSH_NEVER);
        uint64_t rnd = seed * 7919;
        th_crash_begin(dir, false);
        rn_log *log;
        cr_assert_eq(rn_log_open(&log, io, dir, "pl", &cfg, NULL), 0);
        unsigned n = (unsigned)th_rand_range(&rnd, 5, 60);
        uint8_t *bufs[64];
        int acked = 0;
        int32_t epoch = 0;
        for (unsigned i = 0; i < n; i++) {
            if (th_rand(&rnd) % 5 == 0)
                epoch += 1 + (int32_t)(th_rand(&rnd) % 3);
            size_t len;
            bufs[i] = th_batch_new(seed * 1000 + i, 1 + (int)(th_rand(&rnd) % 3), 150, &len);
            cr_assert_eq(rn_log_append(log, bufs[i], len, epoch, noop_cb, &acked), 0);
            if (th_rand(&rnd) % 3)
                rn_io_run(io, 0);
        }
        th_crash_capture(dir, crash_dir, TH_CRASH_RANDOM, seed);
        rn_log_abandon(log);
        th_crash_end();
        for (unsigned i = 0; i < n; i++)
            free(bufs[i]);
        char what[64];
        snprintf(what, sizeof(what), "seed %" PRIu64, seed);
        int orc = rn_log_open(&log, io, crash_dir, "pl", &cfg, NULL);
        cr_assert_eq(orc, 0, "%s: recovery: %s", what, rn_strerror(orc));
        expect_epochs_match_log(log, what);
        size_t len;
        uint8_t *b = th_batch_new(99, 2, 50, &len);
        cr_assert_eq(rn_log_append_sync(log, b, len, epoch + 5, NULL), 0);
        free(b);
        expect_epochs_match_log(log, what);
        cr_assert_eq(rn_log_close(log), 0);
        cr_assert_eq(rn_log_open(&log, io, crash_dir, "pl", &cfg, NULL), 0);
        expect_epochs_match_log(log, what);
        rn_log_abandon(log);
        rn_io_free(io);
        th_rmrf(root);
        free(root);
        trials++;
    }
    cr_log_info("%u power losses", trials);
}
