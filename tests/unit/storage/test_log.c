/*
 * test_log.c — functional tests of the partition log (storage/log.h).
 *
 * The tests keep a model of what they appended (each batch's bytes, its
 * expected base offset, record count, timestamps and leader epoch) and check
 * every answer of the log against it: offsets given to appends, bytes and
 * stamped fields returned by reads at every batch boundary and inside batches,
 * read bounds, offset-for-time, rolls by size and time, retention by bytes and
 * time (with slices held across it), flush policies and their callbacks,
 * rejected batches, config changes, and a clean close and reopen.
 *
 * Every test uses its own mkdtemp directory under /tmp (removed at the end), a
 * fresh io_uring, and small segments (16 KiB) so hundreds of rolls stay fast.
 * The wall clock used for roll.ms and retention.ms is swapped for a fake one
 * where a test needs time to pass. Under flush=always the tests do not take
 * the log's word that an ack is durable: they count the fdatasyncs asked of
 * the system (rn_sys table and injector) and, with the crash layer of
 * helpers.h, check that one covering each acked batch has completed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"
#include "storage/sys.h"

/* The crash layer, for what completed fdatasyncs made durable (flush=always
 * tests); inert until th_crash_begin. */
#define TH_CRASH_LAYER
#include "helpers.h"

/* ---- Fixture ------------------------------------------------------------------ */

static char root[64];
static char dir[96]; /* the log directory, created by rn_log_open */
static rn_io *io;
static int64_t (*real_clock)(void);
static int64_t fake_now;

static int64_t fake_clock(void)
{
    return fake_now;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/rn-test-log-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/orders-0", root);
    cr_assert_eq(rn_io_new(&io, 256), 0);
    real_clock = rn_log_clock_ms;
}

static void teardown(void)
{
    rn_log_clock_ms = real_clock;
    rn_sys_reset();
    rn_io_free(io);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(log, .init = setup, .fini = teardown, .timeout = 60);

static void small_config(rn_log_config *c, enum rn_flush_policy flush)
{
    rn_log_config_default(c);
    c->segment_bytes = 16 * 1024;
    c->index_interval_bytes = 256;
    c->flush = flush;
    c->flush_interval_ms = 50;
    c->retention_ms = -1;
}

static rn_log *open_log(const rn_log_config *c, rn_log_open_info *info)
{
    rn_log *log = NULL;
    int rc = rn_log_open(&log, io, dir, "orders-0", c, info);
    cr_assert_eq(rc, 0, "rn_log_open: %s", rn_strerror(rc));
    return log;
}

static bool seg_file_exists(int64_t base, const char *ext)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/%020lld%s", dir, (long long)base, ext);
    return access(p, F_OK) == 0;
}

static int count_log_files(void)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c '\\.log$'", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static int count_open_fds(void)
{
    FILE *f = popen("ls /proc/self/fd | wc -l", "r"); /* the shell inherits ours */
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static off_t file_size(const char *p)
{
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "stat %s", p);
    return st.st_size;
}

/* ---- The model: batches as appended ------------------------------------------- */

typedef struct tbatch {
    uint8_t *buf; /* the bytes handed to rn_log_append (stamped in place by it) */
    size_t len;
    int n;        /* records */
    int64_t base; /* the base offset the log must give it */
    int32_t epoch;
    int64_t max_ts;
    int n_acks;
    unsigned syncs_at_submit; /* fdatasyncs asked for before it was appended */
} tbatch;

typedef struct model {
    tbatch *b;
    int n, cap;
    int64_t next; /* offset the next batch must get */
} model;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Record k of the batch at base carries "off=<base+k>" then filler, so a read
 * is checked down to which bytes belong to which offset. */
static void record_value(char *v, size_t vlen, int64_t off)
{
    memset(v, 'a' + (int)(off % 26), vlen);
    int n = snprintf(v, vlen, "off=%lld;", (long long)off);
    if (n > 0 && (size_t)n < vlen)
        v[n] = (char)('a' + (int)(off % 26)); /* drop snprintf's NUL */
}

/* Build a batch of n records with timestamps ts[k] (NULL: ts0 + k) and values
 * of vlen bytes, and add it to the model. */
static tbatch *model_add_ts(model *m, int n, const int64_t *ts, int64_t ts0, size_t vlen,
                            int32_t epoch)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 256;
        m->b = realloc(m->b, (size_t)m->cap * sizeof(*m->b));
        cr_assert_not_null(m->b);
    }
    tbatch *t = &m->b[m->n++];
    memset(t, 0, sizeof(*t));
    t->n = n;
    t->base = m->next;
    t->epoch = epoch;
    t->max_ts = -1;
    m->next += n;

    rn_batch_builder *bld;
    cr_assert_eq(rn_batch_builder_new(&bld, NULL), 0);
    char *v = malloc(vlen + 1);
    for (int k = 0; k < n; k++) {
        int64_t when = ts ? ts[k] : ts0 + k;
        if (when > t->max_ts)
            t->max_ts = when;
        record_value(v, vlen, t->base + k);
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        cr_assert_eq(rn_batch_builder_add(bld, when, key, strlen(key), v, vlen, NULL, 0), 0);
    }
    free(v);
    cr_assert_eq(rn_batch_builder_finish(bld, &t->buf, &t->len), 0);
    rn_batch_builder_free(bld);
    return t;
}

static tbatch *model_add(model *m, int n, int64_t ts0, size_t vlen)
{
    return model_add_ts(m, n, NULL, ts0, vlen, 7);
}

static void model_free(model *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->b[i].buf);
    free(m->b);
    memset(m, 0, sizeof(*m));
}

/* The model batch containing offset, or -1. */
static int model_find(const model *m, int64_t off)
{
    int lo = 0, hi = m->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (m->b[mid].base <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || off >= m->b[lo - 1].base + m->b[lo - 1].n)
        return -1;
    return lo - 1;
}

static int64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static int32_t be32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* Check that the slice holds whole batches matching the model from batch
 * index `first` on: same bytes, the stamped base offset and leader epoch, each
 * record's offset and value. Returns the number of batches in the slice. */
static int check_slice(const model *m, const rn_slice *s, int first)
{
    size_t pos = 0;
    int i = first;
    while (pos < s->len) {
        cr_assert_lt(i, m->n, "slice runs past the model");
        const tbatch *t = &m->b[i];
        const uint8_t *p = s->data + pos;
        cr_assert_geq(s->len - pos, t->len, "batch %d cut short in the slice", i);
        cr_assert_eq(be64(p + RN_BATCH_OFF_BASE_OFFSET), t->base, "batch %d: stamped base", i);
        cr_assert_eq(be32(p + RN_BATCH_OFF_LEADER_EPOCH), t->epoch, "batch %d: stamped epoch", i);
        cr_assert(memcmp(p, t->buf, t->len) == 0, "batch %d: bytes differ", i);
        cr_assert_eq(rn_batch_verify(p, t->len, 0, 0), 0, "batch %d does not verify", i);
        rn_batch_iter it;
        cr_assert_eq(rn_batch_iter_init(&it, p, t->len, 0), 0);
        rn_record rec;
        int k = 0;
        while (rn_batch_iter_next(&it, &rec) == 1) {
            cr_assert_eq(rec.offset, t->base + k);
            char *want = malloc((size_t)rec.value_len + 1);
            record_value(want, (size_t)rec.value_len, rec.offset);
            bool same = memcmp(rec.value, want, (size_t)rec.value_len) == 0;
            free(want);
            cr_assert(same, "offset %lld: wrong value", (long long)rec.offset);
            k++;
        }
        rn_batch_iter_fini(&it);
        cr_assert_eq(k, t->n);
        pos += t->len;
        i++;
    }
    cr_assert_eq(pos, s->len);
    if (s->len > 0) {
        cr_assert_eq(s->base_offset, m->b[first].base);
        cr_assert_eq(s->next_offset, m->b[i - 1].base + m->b[i - 1].n);
    }
    return i - first;
}

/* ---- Appending and the callbacks' contract ------------------------------------ */

/* What the append callbacks saw; checked after the fact so a failure never
 * unwinds through io_uring dispatch. */
static struct {
    rn_log *log;
    int n_acks, n_errors;
    int64_t next_expected; /* base offset the next successful ack must carry */
    bool in_append;
    bool durable; /* flush=always: an ack implies flushed > last offset */
    char bad[256];
} acks;

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(const char *fmt, ...)
{
    if (acks.bad[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(acks.bad, sizeof(acks.bad), fmt, ap);
    va_end(ap);
}

/* fdatasyncs the storage asks for, counted while on: requested through the
 * fault injector, which sees the synchronous calls and the io_uring ones
 * before they are submitted, and table: the synchronous ones that reached
 * the rn_sys table (index and segment seals). requested - table is what went
 * through the ring (group commits, a rolled segment's sync before its seal). */
static struct {
    bool on;
    unsigned requested, table;
    int (*real)(int fd);
} syncs;

static int syncs_inject(enum rn_sys_call call, void *arg)
{
    (void)arg;
    if (call == RN_SYS_FDATASYNC)
        syncs.requested++;
    return 0;
}

static int syncs_table(int fd)
{
    syncs.table++;
    return syncs.real(fd);
}

static void syncs_count_begin(void)
{
    memset(&syncs, 0, sizeof(syncs));
    syncs.on = true;
    syncs.real = rn_sys.fdatasync;
    rn_sys.fdatasync = syncs_table;
    rn_sys_set_injector(syncs_inject, NULL);
}

static void syncs_count_end(void)
{
    rn_sys_set_injector(NULL, NULL);
    rn_sys.fdatasync = syncs.real;
    syncs.on = false;
}

static void acks_reset(rn_log *log, int64_t next_expected, bool durable)
{
    memset(&acks, 0, sizeof(acks));
    acks.log = log;
    acks.next_expected = next_expected;
    acks.durable = durable;
}

static void on_ack(void *arg, int err, int64_t base, int64_t last)
{
    tbatch *t = arg;
    acks.n_acks++;
    t->n_acks++;
    if (acks.in_append)
        bad("callback ran inside rn_log_append (offset %lld)", (long long)t->base);
    if (t->n_acks != 1)
        bad("batch at %lld acked %d times", (long long)t->base, t->n_acks);
    if (err) {
        acks.n_errors++;
        bad("append at %lld failed: %s", (long long)t->base, rn_strerror(err));
        return;
    }
    if (base != t->base || last != t->base + t->n - 1)
        bad("batch got [%lld, %lld], want [%lld, %lld]", (long long)base, (long long)last,
            (long long)t->base, (long long)(t->base + t->n - 1));
    if (base != acks.next_expected)
        bad("ack for %lld came when %lld was due: out of order", (long long)base,
            (long long)acks.next_expected);
    acks.next_expected = last + 1;
    if (rn_log_end_offset(acks.log) <= last)
        bad("ack for %lld before it is visible", (long long)base);
    if (acks.durable && rn_log_flushed_offset(acks.log) <= last)
        bad("ack for %lld before it is flushed (flushed %lld)", (long long)base,
            (long long)rn_log_flushed_offset(acks.log));
    /* The log's word is not enough: an fdatasync must have been asked of the
     * system since the batch was appended (test_crash.c checks that one
     * covering it completed first). */
    if (acks.durable && syncs.on && syncs.requested <= t->syncs_at_submit)
        bad("ack for %lld under flush=always with no fdatasync since it was appended",
            (long long)base);
    /* And one that covers it has completed, per the crash layer, which sees
     * the synchronous fdatasyncs through the rn_sys table and the io_uring
     * ones as they are submitted and complete. */
    if (acks.durable && th_crash.active && !th_crash_durable(dir, t->buf, t->len, t->base))
        bad("ack for %lld before a completed fdatasync covered it (%u completed)", (long long)base,
            th_crash.n_syncs);
}

static int submit(rn_log *log, tbatch *t)
{
    t->syncs_at_submit = syncs.requested;
    acks.in_append = true;
    int rc = rn_log_append(log, t->buf, t->len, t->epoch, on_ack, t);
    acks.in_append = false;
    return rc;
}

/* Run io until `target` callbacks have run; fails (rather than hangs) when
 * nothing is in flight that could bring them. */
static void run_until_acked(int target)
{
    while (acks.n_acks < target) {
        cr_assert_gt(rn_io_inflight(io), 0,
                     "stuck: %d of %d appends acknowledged and nothing in flight", acks.n_acks,
                     target);
        int rc = rn_io_run(io, 1);
        cr_assert(rc >= 0 || rc == -EINTR, "rn_io_run: %s", rn_strerror(rc));
    }
}

/* Append model batches [from, m->n) asynchronously, `window` in flight at a
 * time, and wait for every callback. */
static void append_model(rn_log *log, model *m, int from, int window)
{
    int target = acks.n_acks;
    for (int i = from; i < m->n; i++) {
        int rc = submit(log, &m->b[i]);
        cr_assert_eq(rc, 0, "append %d: %s (%s)", i, rn_strerror(rc), rn_log_errmsg(log));
        target++;
        if (target - acks.n_acks >= window)
            run_until_acked(target - window / 2);
    }
    run_until_acked(target);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
}

/* One synchronous append, checking the offset it got. */
static void append_one(rn_log *log, tbatch *t)
{
    int64_t base = -1;
    int rc = rn_log_append_sync(log, t->buf, t->len, t->epoch, &base);
    cr_assert_eq(rc, 0, "append: %s (%s)", rn_strerror(rc), rn_log_errmsg(log));
    cr_assert_eq(base, t->base);
}

/* A varied workload: 1..7 records per batch, 20..420-byte values,
 * timestamps growing by 10 ms per batch from ts0. */
static void model_fill(model *m, int n_batches, int64_t ts0)
{
    for (int i = 0; i < n_batches; i++) {
        int n = 1 + (int)(rng() % 7);
        size_t vlen = 20 + (size_t)(rng() % 400);
        model_add(m, n, ts0 + 10 * (int64_t)m->n, vlen);
    }
}

/* ---- Reading every offset ---------------------------------------------------- */

/* Read at every batch boundary and every offset inside every batch, each with
 * max_bytes = 1 (exactly one batch comes back), and walk the whole log with
 * large reads. */
static void check_all_reads(rn_log *log, const model *m, int from)
{
    int64_t leo = rn_log_end_offset(log);
    for (int i = from; i < m->n; i++) {
        const tbatch *t = &m->b[i];
        for (int k = 0; k < t->n; k++) {
            rn_slice s;
            int rc = rn_log_read(log, t->base + k, 1, INT64_MAX, &s);
            cr_assert_eq(rc, 0, "read at %lld: %s (%s)", (long long)(t->base + k), rn_strerror(rc),
                         rn_log_errmsg(log));
            cr_assert_eq(check_slice(m, &s, i), 1, "read at %lld", (long long)(t->base + k));
            rn_slice_release(&s);
        }
    }
    /* A consumer's walk: each slice continues where the previous ended. */
    int64_t off = m->b[from].base;
    int i = from;
    unsigned n_slices = 0;
    while (off < leo) {
        rn_slice s;
        cr_assert_eq(rn_log_read(log, off, 64 * 1024, INT64_MAX, &s), 0);
        cr_assert_gt(s.len, 0, "empty slice at %lld below leo %lld", (long long)off,
                     (long long)leo);
        cr_assert_leq(s.len, rn_log_config_of(log)->segment_bytes);
        i += check_slice(m, &s, i);
        off = s.next_offset;
        rn_slice_release(&s);
        n_slices++;
    }
    cr_assert_eq(i, m->n);
    cr_assert_eq(off, leo);
    cr_assert_geq(n_slices, rn_log_segment_count(log) - 1, "a slice spans two segments?");
}

// Hundreds of rolls: every offset (batch starts and inside batches) reads back with its bytes.
Test(log, append_read_across_rolls)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 4000, 1700000000000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 64);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_start_offset(log), 0);
    cr_assert_geq(rn_log_segment_count(log), 150, "only %u segments", rn_log_segment_count(log));
    cr_assert_eq(count_log_files(), (int)rn_log_segment_count(log));
    uint64_t total = 0;
    for (int i = 0; i < m.n; i++)
        total += m.b[i].len;
    cr_assert_eq(rn_log_size_bytes(log), total);
    check_all_reads(log, &m, 0);
    /* Inactive segments keep their mappings but not their descriptors. */
    int n_fds = count_open_fds();
    cr_assert_lt(n_fds, 40, "%d descriptors open for %u segments", n_fds,
                 rn_log_segment_count(log));
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// With a sparse index (4 KiB interval, ~80-byte batches) lookups scan many headers correctly.
Test(log, sparse_index_lookups_scan)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.index_interval_bytes = 4096;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 3000; i++)
        model_add(&m, 1 + i % 2, 1000 + 10 * i, 8);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 64);
    cr_assert_gt(rn_log_segment_count(log), 10);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_offset_for_time(log, 1000 + 12340), m.b[1234].base);
    cr_assert_eq(rn_log_offset_for_time(log, 1000 + 12339), m.b[1234].base);
    cr_assert_eq(rn_log_offset_for_time(log, 1000 + 12342), m.b[1235].base);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// A clean close and reopen gives the same offsets and bytes, says clean, scans nothing.
Test(log, reopen_after_clean_close)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 600, 1700000000000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 128);
    unsigned n_segs = rn_log_segment_count(log);
    uint64_t size = rn_log_size_bytes(log);
    cr_assert_gt(n_segs, 10);
    cr_assert_eq(rn_log_close(log), 0);

    rn_log_open_info info;
    log = open_log(&c, &info);
    char line[256];
    rn_log_open_info_str(&info, line, sizeof(line));
    cr_assert(info.clean, "%s", line);
    cr_assert_eq(info.n_segments, n_segs, "%s", line);
    cr_assert_eq(info.n_scanned, 0, "%s", line);
    cr_assert_eq(info.bytes_dropped, 0, "%s", line);
    cr_assert_eq(info.truncated_at, -1, "%s", line);
    cr_assert_eq(info.n_index_rebuilt, 0, "%s", line);
    cr_assert_eq(rn_log_segment_count(log), n_segs);
    cr_assert_eq(rn_log_size_bytes(log), size);
    cr_assert_eq(rn_log_start_offset(log), 0);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    check_all_reads(log, &m, 0);
    /* Time lookups work on the reopened segments too. */
    cr_assert_eq(rn_log_offset_for_time(log, m.b[300].max_ts), m.b[300].base);

    /* Appends go on from where the log ended. */
    int first_new = m.n;
    model_fill(&m, 50, 1800000000000);
    acks_reset(log, m.b[first_new].base, true);
    append_model(log, &m, first_new, 8);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);

    /* The marker is gone while the log is open: a crash now would be detected. */
    log = open_log(&c, &info);
    cr_assert(info.clean);
    char marker[160];
    snprintf(marker, sizeof(marker), "%s/clean-shutdown", dir);
    cr_assert_neq(access(marker, F_OK), 0, "clean marker still present while open");
    rn_log_abandon(log);
    log = open_log(&c, &info);
    cr_assert_not(info.clean, "abandoned log reopened as clean");
    cr_assert_eq(rn_log_end_offset(log), m.next);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Rolled and closed segments are cut to their real size, with or without preallocation.
Test(log, sealed_segments_truncated_to_size)
{
    for (int prealloc = 0; prealloc < 2; prealloc++) {
        rn_log_config c;
        small_config(&c, RN_FLUSH_ALWAYS);
        c.preallocate_bytes = prealloc ? 8192 : 0;
        rn_log *log = open_log(&c, NULL);
        model m = {0};
        model_fill(&m, 150, 1000);
        acks_reset(log, 0, true);
        append_model(log, &m, 0, 16);
        cr_assert_gt(rn_log_segment_count(log), 3);
        check_all_reads(log, &m, 0);
        /* Each read of SIZE_MAX bytes is one whole segment: note base and size. */
        int64_t bases[64], off = 0;
        size_t lens[64];
        unsigned n_segs = 0;
        while (off < m.next) {
            rn_slice s;
            cr_assert_eq(rn_log_read(log, off, SIZE_MAX, INT64_MAX, &s), 0);
            cr_assert_lt(n_segs, 64);
            bases[n_segs] = off;
            lens[n_segs++] = s.len;
            off = s.next_offset;
            rn_slice_release(&s);
        }
        cr_assert_eq(n_segs, rn_log_segment_count(log));
        cr_assert_eq(rn_log_close(log), 0);
        for (unsigned i = 0; i < n_segs; i++) {
            char p[160];
            snprintf(p, sizeof(p), "%s/%020lld.log", dir, (long long)bases[i]);
            cr_assert_eq(file_size(p), (off_t)lens[i], "prealloc %d: segment %lld", prealloc,
                         (long long)bases[i]);
        }
        log = open_log(&c, NULL);
        check_all_reads(log, &m, 0);
        rn_log_abandon(log);
        model_free(&m);
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

// An empty log closes and reopens clean, at offset 0, and takes appends.
Test(log, empty_log_reopens)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    cr_assert_eq(rn_log_end_offset(log), 0);
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, 1000, INT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_null(s.seg);
    cr_assert_eq(rn_log_offset_for_time(log, 0), 0);
    cr_assert_eq(rn_log_close(log), 0);
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert(info.clean);
    cr_assert_eq(rn_log_end_offset(log), 0);
    model m = {0};
    append_one(log, model_add(&m, 3, 1000, 10));
    cr_assert_eq(rn_log_end_offset(log), 3);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Read bounds ---------------------------------------------------------------- */

// max_bytes stops before a batch that does not fit, yet always returns at least one batch.
Test(log, read_bounded_by_max_bytes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 1 << 20; /* one segment: bounds are not cut by a roll */
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 40, 1000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    cr_assert_eq(rn_log_segment_count(log), 1);
    for (int i = 0; i + 2 < m.n; i++) {
        size_t two = m.b[i].len + m.b[i + 1].len;
        rn_slice s;
        cr_assert_eq(rn_log_read(log, m.b[i].base, 0, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 1, "max_bytes 0 must still give one batch");
        rn_slice_release(&s);
        cr_assert_eq(rn_log_read(log, m.b[i].base, m.b[i].len - 1, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 1, "a batch larger than max_bytes comes whole");
        rn_slice_release(&s);
        cr_assert_eq(rn_log_read(log, m.b[i].base, two - 1, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 1);
        rn_slice_release(&s);
        cr_assert_eq(rn_log_read(log, m.b[i].base, two, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 2);
        rn_slice_release(&s);
        /* From inside a batch, the bound counts from that batch's start. */
        cr_assert_eq(rn_log_read(log, m.b[i].base + m.b[i].n - 1, two, INT64_MAX, &s), 0);
        cr_assert_eq(check_slice(&m, &s, i), 2);
        rn_slice_release(&s);
    }
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &s), 0);
    cr_assert_eq(check_slice(&m, &s, 0), m.n);
    rn_slice_release(&s);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// max_offset stops at a batch boundary; at max_offset the slice is empty, past it out of range.
Test(log, read_bounded_by_max_offset)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 1 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 30, 1000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    for (int i = 0; i < m.n; i++) {
        for (int j = i + 1; j <= m.n; j++) {
            int64_t max = j < m.n ? m.b[j].base : m.next;
            rn_slice s;
            cr_assert_eq(rn_log_read(log, m.b[i].base, SIZE_MAX, max, &s), 0);
            cr_assert_eq(check_slice(&m, &s, i), j - i, "read %d up to batch %d", i, j);
            rn_slice_release(&s);
        }
        rn_slice s;
        cr_assert_eq(rn_log_read(log, m.b[i].base, SIZE_MAX, m.b[i].base, &s), 0);
        cr_assert_eq(s.len, 0);
        cr_assert_null(s.seg);
        cr_assert_eq(s.next_offset, m.b[i].base);
        if (m.b[i].base > 0)
            cr_assert_eq(rn_log_read(log, m.b[i].base, SIZE_MAX, m.b[i].base - 1, &s),
                         -RN_E_OFFSET_OUT_OF_RANGE);
    }
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// The end of the log reads as an empty slice; below the start and beyond the end are out of range.
Test(log, read_out_of_range)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 100, 1000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 16);
    int64_t leo = rn_log_end_offset(log);
    cr_assert_eq(leo, m.next);
    rn_slice s;
    cr_assert_eq(rn_log_read(log, leo, 1 << 20, INT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_null(s.seg);
    cr_assert_eq(s.base_offset, leo);
    cr_assert_eq(s.next_offset, leo);
    rn_slice_release(&s); /* releasing an empty slice is harmless */
    cr_assert_eq(rn_log_read(log, leo + 1, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, INT64_MAX, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, -1, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, INT64_MIN, 1 << 20, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    /* The high watermark bounds a consumer the same way. */
    int64_t hw = rn_log_high_watermark(log);
    cr_assert_eq(hw, leo);
    cr_assert_eq(rn_log_read(log, hw, 1 << 20, hw, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// The stamped base offsets and the leader epoch of each append are in the bytes read back.
Test(log, stamped_offsets_and_epoch_in_read_bytes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 60; i++) {
        tbatch *t = model_add_ts(&m, 1 + i % 4, NULL, 5000 + i, 100, i < 30 ? 3 : 4);
        /* The producer's bytes carry no offset and no epoch until the log stamps them. */
        cr_assert_eq(be64(t->buf + RN_BATCH_OFF_BASE_OFFSET), 0);
        cr_assert_eq(be32(t->buf + RN_BATCH_OFF_LEADER_EPOCH), -1);
        append_one(log, t);
    }
    for (int i = 0; i < m.n; i++) {
        rn_slice s;
        cr_assert_eq(rn_log_read(log, m.b[i].base, 1, INT64_MAX, &s), 0);
        cr_assert_eq(be64(s.data + RN_BATCH_OFF_BASE_OFFSET), m.b[i].base);
        cr_assert_eq(be32(s.data + RN_BATCH_OFF_LEADER_EPOCH), i < 30 ? 3 : 4);
        rn_batch_header h;
        cr_assert_eq(rn_batch_check(s.data, s.len, 0, &h), 0, "stamping broke the CRC");
        cr_assert_eq(h.base_offset, m.b[i].base);
        rn_slice_release(&s);
    }
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Timestamps ------------------------------------------------------------------- */

// offset_for_time at, between and beyond batch timestamps, across many segments.
Test(log, offset_for_time_across_segments)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    /* Batch i holds times T_i .. T_i + n - 1 with T_i = 1e6 + 100 i: gaps between batches. */
    for (int i = 0; i < 1200; i++)
        model_add(&m, 1 + i % 5, 1000000 + 100 * (int64_t)i, 100 + (size_t)(i % 7) * 30);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 64);
    cr_assert_gt(rn_log_segment_count(log), 20);
    for (int i = 0; i < m.n; i++) {
        int64_t t0 = 1000000 + 100 * (int64_t)i;
        const tbatch *b = &m.b[i];
        cr_assert_eq(rn_log_offset_for_time(log, t0), b->base, "at the start of batch %d", i);
        cr_assert_eq(rn_log_offset_for_time(log, b->max_ts), b->base, "at the max of batch %d", i);
        int64_t next = i + 1 < m.n ? m.b[i + 1].base : m.next;
        cr_assert_eq(rn_log_offset_for_time(log, b->max_ts + 1), next, "just after batch %d", i);
        cr_assert_eq(rn_log_offset_for_time(log, t0 + 99), next, "between batch %d and next", i);
    }
    cr_assert_eq(rn_log_offset_for_time(log, 0), 0);
    cr_assert_eq(rn_log_offset_for_time(log, -1), 0);
    cr_assert_eq(rn_log_offset_for_time(log, INT64_MAX), m.next);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// With timestamps out of order, offset_for_time is the first batch whose max reaches ts.
Test(log, offset_for_time_unordered_matches_brute_force)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 800; i++) {
        int n = 1 + (int)(rng() % 6);
        int64_t ts[8];
        for (int k = 0; k < n; k++)
            ts[k] = 1000000 + (int64_t)(rng() % 50000) + 60 * i; /* drifting, jittery clock */
        model_add_ts(&m, n, ts, 0, 50 + (size_t)(rng() % 300), 1);
    }
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 32);
    cr_assert_gt(rn_log_segment_count(log), 8);
    int64_t hi = 1000000 + 50000 + 60 * 800;
    for (int64_t ts = 999000; ts <= hi + 100; ts += 37) {
        int64_t want = m.next;
        for (int i = 0; i < m.n; i++) {
            if (m.b[i].max_ts >= ts) {
                want = m.b[i].base;
                break;
            }
        }
        cr_assert_eq(rn_log_offset_for_time(log, ts), want, "ts %lld", (long long)ts);
    }
    /* The same answers after a clean reopen (time indexes from disk). */
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    for (int64_t ts = 999000; ts <= hi + 100; ts += 101) {
        int64_t want = m.next;
        for (int i = 0; i < m.n; i++) {
            if (m.b[i].max_ts >= ts) {
                want = m.b[i].base;
                break;
            }
        }
        cr_assert_eq(rn_log_offset_for_time(log, ts), want, "after reopen, ts %lld", (long long)ts);
    }
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Rolling --------------------------------------------------------------------- */

// A segment older than roll_ms rolls on the next append, and rn_log_maybe_roll rolls it too.
Test(log, roll_by_time)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 1000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.roll_ms = 1000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    append_one(log, model_add(&m, 2, fake_now, 10));
    fake_now += 999;
    append_one(log, model_add(&m, 2, fake_now, 10));
    cr_assert_eq(rn_log_segment_count(log), 1, "rolled before roll_ms");
    fake_now += 1; /* the segment is now roll_ms old */
    append_one(log, model_add(&m, 2, fake_now, 10));
    cr_assert_eq(rn_log_segment_count(log), 2);
    cr_assert(seg_file_exists(4, ".log"), "the new segment starts at offset 4");

    /* maybe_roll: not before roll_ms, then yes. */
    fake_now += 500;
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 2);
    fake_now += 500;
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 3);
    cr_assert(seg_file_exists(6, ".log"));
    /* An empty active segment never rolls, however old. */
    fake_now += 10000;
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 3);
    append_one(log, model_add(&m, 1, fake_now, 10));
    cr_assert_eq(rn_log_segment_count(log), 3, "an empty segment rolled on its first append");
    check_all_reads(log, &m, 0);
    /* roll_ms <= 0 turns time rolls off. */
    rn_log_config c2 = *rn_log_config_of(log);
    c2.roll_ms = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    fake_now += 1000000;
    append_one(log, model_add(&m, 1, fake_now, 10));
    cr_assert_eq(rn_log_maybe_roll(log, fake_now), 0);
    cr_assert_eq(rn_log_segment_count(log), 3);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// A batch bigger than the room left rolls; one bigger than a segment is refused, nothing made.
Test(log, roll_by_size_and_oversized_batch)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    append_one(log, model_add(&m, 1, 1, 9000));
    append_one(log, model_add(&m, 1, 2, 9000)); /* 2 x ~9 KiB > 16 KiB: rolls */
    cr_assert_eq(rn_log_segment_count(log), 2);
    /* A 20 KiB batch can never fit a 16 KiB segment. */
    model big = {0};
    big.next = m.next;
    tbatch *t = model_add(&big, 1, 3, 20000);
    int64_t leo = rn_log_end_offset(log);
    acks_reset(log, leo, true);
    cr_assert_eq(submit(log, t), -RN_E_MESSAGE_TOO_LARGE);
    cr_assert_eq(rn_log_segment_count(log), 2, "a refused batch made a segment");
    cr_assert_eq(count_log_files(), 2);
    cr_assert_eq(rn_log_end_offset(log), leo);
    append_one(log, model_add(&m, 1, 4, 100));
    check_all_reads(log, &m, 0);
    cr_assert_eq(acks.n_acks, 0, "a refused append ran its callback");
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
    model_free(&big);
}

/* ---- Retention ------------------------------------------------------------------- */

// Retention by bytes deletes the oldest segments' files and moves the start offset.
Test(log, retention_by_bytes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 400, 1000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 64);
    unsigned n0 = rn_log_segment_count(log);
    cr_assert_gt(n0, 8);
    /* Nothing to do while unlimited. */
    cr_assert_eq(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);

    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 3 * 16 * 1024;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    int n = rn_log_enforce_retention(log, rn_log_clock_ms());
    cr_assert_gt(n, 0, "retention deleted nothing: %s", rn_log_errmsg(log));
    cr_assert_eq(rn_log_segment_count(log), n0 - (unsigned)n);
    uint64_t size = rn_log_size_bytes(log);
    cr_assert_geq(size, (uint64_t)c2.retention_bytes, "deleted too much");
    int64_t start = rn_log_start_offset(log);
    int first = model_find(&m, start);
    cr_assert_geq(first, 0);
    cr_assert_eq(m.b[first].base, start, "start offset is not a batch start");
    /* What is left is retention_bytes plus less than one segment. */
    rn_slice s;
    cr_assert_eq(rn_log_read(log, start, SIZE_MAX, INT64_MAX, &s), 0);
    uint64_t first_seg = s.len; /* a read stops at the end of its segment */
    rn_slice_release(&s);
    cr_assert_lt(size - first_seg, (uint64_t)c2.retention_bytes, "kept a segment too many");
    /* Deleted segments' files are gone, the kept ones are there. */
    for (int i = 0; i < first; i++)
        cr_assert_not(seg_file_exists(m.b[i].base, ".log") ||
                          seg_file_exists(m.b[i].base, ".idx") ||
                          seg_file_exists(m.b[i].base, ".tix"),
                      "files of batch %d's segment survive", i);
    cr_assert(seg_file_exists(start, ".log"));
    cr_assert_eq(count_log_files(), (int)rn_log_segment_count(log));
    cr_assert_eq(rn_log_read(log, start - 1, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_read(log, 0, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    check_all_reads(log, &m, first);
    cr_assert_eq(rn_log_offset_for_time(log, 0), start);
    /* Enforcing again changes nothing. */
    cr_assert_eq(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);

    /* The start offset survives a reopen. */
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    cr_assert_eq(rn_log_start_offset(log), start);
    check_all_reads(log, &m, first);
    /* retention_bytes = 0 keeps nothing, as in Kafka: the active segment is
     * rolled and goes too, leaving one empty segment at the log end. */
    c2.retention_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);
    cr_assert_eq(rn_log_segment_count(log), 1);
    cr_assert_eq(count_log_files(), 1);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_start_offset(log), m.next);
    cr_assert_eq(rn_log_size_bytes(log), 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention by time deletes segments whose newest record is older than retention_ms.
Test(log, retention_by_time)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 5000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.retention_ms = 10000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    /* Batch i is stamped 1000000 + 100 i. */
    for (int i = 0; i < 300; i++)
        model_add(&m, 2, 1000000 + 100 * (int64_t)i, 200);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 32);
    unsigned n0 = rn_log_segment_count(log);
    cr_assert_gt(n0, 4);
    /* Find the first segment's newest timestamp: the last batch before the second segment. */
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &s), 0);
    int64_t seg1_start = s.next_offset;
    rn_slice_release(&s);
    int last0 = model_find(&m, seg1_start - 1);
    int64_t max0 = m.b[last0].max_ts;

    /* Exactly retention_ms old is kept; one ms more is deleted. */
    fake_now = max0 + c.retention_ms;
    cr_assert_eq(rn_log_enforce_retention(log, fake_now), 0);
    cr_assert_eq(rn_log_start_offset(log), 0);
    fake_now++;
    cr_assert_eq(rn_log_enforce_retention(log, fake_now), 1);
    cr_assert_eq(rn_log_start_offset(log), seg1_start);
    cr_assert_not(seg_file_exists(0, ".log"));
    cr_assert_eq(rn_log_read(log, 0, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);

    /* Far in the future everything goes, the active segment too (as in
     * Kafka: it is rolled first), leaving one empty segment at the end. */
    fake_now = 1LL << 40;
    int n = rn_log_enforce_retention(log, fake_now);
    cr_assert_eq(n, (int)n0 - 1);
    cr_assert_eq(rn_log_segment_count(log), 1);
    cr_assert_eq(rn_log_start_offset(log), m.next);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_read(log, m.next - 1, 1, INT64_MAX, &s), -RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(rn_log_close(log), 0);

    /* After a reopen the same ages are known (from the time indexes). */
    log = open_log(&c, NULL);
    int64_t start = rn_log_start_offset(log);
    cr_assert_eq(start, m.next);
    model_fill(&m, 200, m.b[m.n - 1].max_ts + 1);
    acks_reset(log, m.b[m.n - 200].base, true);
    append_model(log, &m, m.n - 200, 32);
    cr_assert_gt(rn_log_segment_count(log), 2);
    /* The newest timestamp of the first segment (which the appends filled up). */
    cr_assert_eq(rn_log_read(log, start, SIZE_MAX, INT64_MAX, &s), 0);
    int64_t seg_max = m.b[model_find(&m, s.next_offset - 1)].max_ts; /* ts grow with offsets */
    rn_slice_release(&s);
    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_ms = -1; /* keep forever */
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_enforce_retention(log, INT64_MAX / 2), 0);
    cr_assert_eq(rn_log_start_offset(log), start);
    c2.retention_ms = 10000;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_enforce_retention(log, seg_max + 10000), 0);
    cr_assert_eq(rn_log_enforce_retention(log, seg_max + 10001), 1);
    cr_assert_gt(rn_log_start_offset(log), start);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Without record timestamps, a segment's age counts from its last append, not its creation.
Test(log, retention_by_time_without_timestamps)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 1000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.retention_ms = 3000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    int64_t no_ts[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    /* The first segment is written over 5 s of (fake) time, then rolls. */
    int64_t last_write = 0;
    while (rn_log_segment_count(log) == 1) {
        tbatch *t = model_add_ts(&m, 2, no_ts, 0, 500, 1);
        cr_assert_eq(t->max_ts, -1);
        if (rn_log_size_bytes(log) + t->len <= c.segment_bytes)
            last_write = fake_now;
        append_one(log, t);
        fake_now += 500;
    }
    cr_assert_geq(last_write - 1000000, 5000);
    cr_assert_eq(rn_log_segment_count(log), 2);
    /* Created long ago, but written to retention_ms ago: kept. */
    cr_assert_eq(rn_log_enforce_retention(log, last_write + c.retention_ms), 0,
                 "deleted data younger than retention_ms");
    cr_assert_eq(rn_log_start_offset(log), 0);
    cr_assert_eq(rn_log_enforce_retention(log, last_write + c.retention_ms + 1), 1);
    cr_assert_gt(rn_log_start_offset(log), 0);
    check_all_reads(log, &m, model_find(&m, rn_log_start_offset(log)));
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention by time takes the active segment too (rolling it first): old data in a
// large segment that never fills is deleted, and appends continue at the log end.
Test(log, retention_takes_an_old_active_segment)
{
    rn_log_clock_ms = fake_clock;
    fake_now = 2000000;
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 1 << 30; /* sparse: a 1 GiB active segment, as by default */
    c.retention_ms = 10000;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 50, 1000000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 16);
    cr_assert_eq(rn_log_segment_count(log), 1);
    int64_t newest = m.b[m.n - 1].max_ts;
    /* Young enough: kept. */
    cr_assert_eq(rn_log_enforce_retention(log, newest + c.retention_ms), 0);
    cr_assert_eq(rn_log_start_offset(log), 0);
    /* Older than retention.ms: the whole (active) segment goes. */
    cr_assert_eq(rn_log_enforce_retention(log, newest + c.retention_ms + 1), 1, "%s",
                 rn_log_errmsg(log));
    cr_assert_eq(rn_log_start_offset(log), m.next);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_size_bytes(log), 0);
    cr_assert_eq(count_log_files(), 1);
    cr_assert_not(seg_file_exists(0, ".log"));
    cr_assert(seg_file_exists(m.next, ".log"));
    /* An empty active segment is not rolled again. */
    cr_assert_eq(rn_log_enforce_retention(log, INT64_MAX / 2), 0);
    cr_assert_eq(count_log_files(), 1);
    /* Appends go on at the log end, and survive a reopen. */
    int from = m.n;
    model_fill(&m, 10, fake_now);
    acks_reset(log, m.b[from].base, true);
    append_model(log, &m, from, 4);
    check_all_reads(log, &m, from);
    cr_assert_eq(rn_log_close(log), 0);
    log = open_log(&c, NULL);
    cr_assert_eq(rn_log_start_offset(log), m.b[from].base);
    check_all_reads(log, &m, from);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// retention.bytes below segment.bytes rolls the active segment at half the limit, so
// size retention keeps the log between the limit and 1.5 times it.
Test(log, retention_bytes_rolls_the_active_segment)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 1 << 30;
    c.retention_bytes = 4 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 1000; i++) /* ~16 MiB */
        model_add(&m, 4, 1000 + i, 4000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 16);
    /* Segments of at most 2 MiB, not one of 16 MiB. */
    cr_assert_geq(rn_log_segment_count(log), 8, "%u segments", rn_log_segment_count(log));
    rn_slice s;
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &s), 0);
    cr_assert_leq(s.len, (size_t)c.retention_bytes / 2);
    rn_slice_release(&s);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 0);
    uint64_t size = rn_log_size_bytes(log);
    cr_assert_geq(size, (uint64_t)c.retention_bytes, "deleted too much: %llu",
                  (unsigned long long)size);
    cr_assert_leq(size, (uint64_t)c.retention_bytes * 3 / 2, "kept too much: %llu",
                  (unsigned long long)size);
    check_all_reads(log, &m, model_find(&m, rn_log_start_offset(log)));
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- A full disk (injected) -------------------------------------------------------- */

static int enospc_left; /* pwrites still to fail with -ENOSPC */

static int inject_enospc(enum rn_sys_call call, void *arg)
{
    (void)arg;
    if (call != RN_SYS_PWRITE || enospc_left == 0)
        return 0;
    enospc_left--;
    return -ENOSPC;
}

typedef struct outcome {
    int n_cb, err;
    int64_t base;
} outcome;

static void outcome_cb(void *arg, int err, int64_t base, int64_t last)
{
    outcome *o = arg;
    (void)last;
    o->n_cb++;
    o->err = err;
    o->base = base;
}

// ENOSPC on a write: the append and those in flight behind it fail cleanly, the log
// end and the next offsets do not move, the same batches then succeed at the same
// offsets, and a crash recovery afterwards finds a log that verifies byte for byte.
Test(log, enospc_moves_nothing)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 1 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 20, 1000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 8);
    int64_t leo = rn_log_end_offset(log);
    uint64_t size = rn_log_size_bytes(log);

    /* Three appends in flight; the first write hits a full disk. */
    model_fill(&m, 3, 5000);
    outcome o[3] = {0};
    enospc_left = 1;
    rn_sys_set_injector(inject_enospc, NULL);
    for (int i = 0; i < 3; i++) {
        tbatch *t = &m.b[m.n - 3 + i];
        int rc = rn_log_append(log, t->buf, t->len, t->epoch, outcome_cb, &o[i]);
        cr_assert_eq(rc, 0);
    }
    while (o[0].n_cb + o[1].n_cb + o[2].n_cb < 3)
        cr_assert_geq(rn_io_run(io, 1), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(o[i].n_cb, 1);
        cr_assert_eq(o[i].err, -ENOSPC, "append %d: %s", i, rn_strerror(o[i].err));
    }
    cr_assert(strstr(rn_log_errmsg(log), "No space left on device") ||
                  strstr(rn_log_errmsg(log), rn_strerror(-ENOSPC)),
              "errmsg: %s", rn_log_errmsg(log));
    cr_assert_eq(rn_log_end_offset(log), leo);
    cr_assert_eq(rn_log_high_watermark(log), leo);
    cr_assert_eq(rn_log_size_bytes(log), size);

    /* Still full: a new append fails the same way and moves nothing. */
    enospc_left = 1;
    outcome again = {0};
    tbatch *t0 = &m.b[m.n - 3];
    cr_assert_eq(rn_log_append(log, t0->buf, t0->len, t0->epoch, outcome_cb, &again), 0);
    while (!again.n_cb)
        cr_assert_geq(rn_io_run(io, 1), 0);
    cr_assert_eq(again.err, -ENOSPC);
    cr_assert_eq(rn_log_end_offset(log), leo);

    /* Room again: the same three batches get the offsets they had. */
    rn_sys_reset();
    acks_reset(log, leo, true);
    append_model(log, &m, m.n - 3, 3);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    check_all_reads(log, &m, 0);

    /* A crash now, and a verifying recovery: every batch, nothing dropped. */
    rn_log_abandon(log);
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert_not(info.clean);
    cr_assert_eq(info.bytes_dropped, 0);
    cr_assert_eq(info.truncated_at, -1);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// A slice taken before retention deletes its segment stays mapped and correct until released.
Test(log, slice_survives_retention)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 200, 1000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 32);
    cr_assert_gt(rn_log_segment_count(log), 3);

    rn_slice held[3];
    int idx[3] = {0, 1, 0};
    cr_assert_eq(rn_log_read(log, 0, SIZE_MAX, INT64_MAX, &held[0]), 0);
    int64_t seg1 = held[0].next_offset;
    idx[1] = model_find(&m, seg1);
    cr_assert_eq(rn_log_read(log, seg1, 1, INT64_MAX, &held[1]), 0);
    cr_assert_eq(rn_log_read(log, 0, 1, INT64_MAX, &held[2]), 0); /* two refs on one segment */
    uint8_t *copy = malloc(held[0].len);
    memcpy(copy, held[0].data, held[0].len);

    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_gt(rn_log_enforce_retention(log, rn_log_clock_ms()), 1);
    cr_assert_not(seg_file_exists(0, ".log"));
    cr_assert_not(seg_file_exists(seg1, ".log"));

    /* Overwrite what the page cache might still hold: new data must not show through. */
    model_fill(&m, 100, 2000);
    acks_reset(log, m.b[m.n - 100].base, true);
    append_model(log, &m, m.n - 100, 16);

    cr_assert(memcmp(copy, held[0].data, held[0].len) == 0, "held slice changed");
    cr_assert_eq(check_slice(&m, &held[0], 0), model_find(&m, seg1) - 0);
    cr_assert_eq(check_slice(&m, &held[1], idx[1]), 1);
    cr_assert_eq(check_slice(&m, &held[2], idx[2]), 1);
    rn_slice_release(&held[2]);
    /* One reference down, the other still reads. */
    cr_assert(memcmp(copy, held[0].data, held[0].len) == 0);
    rn_slice_release(&held[0]);
    cr_assert_null(held[0].seg);
    rn_slice_release(&held[1]);
    free(copy);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Retention deleting the segment a sync would use, while an append to the next is in flight.
Test(log, retention_during_inflight_append)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    /* Fill the first segment almost exactly. */
    while (rn_log_segment_count(log) == 1) {
        tbatch *t = model_add(&m, 1, 1000 + m.n, 3000);
        if (rn_log_size_bytes(log) + t->len > c.segment_bytes) {
            /* This one rolls: submit it without waiting. */
            acks_reset(log, t->base, false);
            cr_assert_eq(submit(log, t), 0);
            break;
        }
        append_one(log, t);
    }
    cr_assert_eq(rn_log_segment_count(log), 2);
    rn_log_config c2 = *rn_log_config_of(log);
    c2.retention_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_enforce_retention(log, rn_log_clock_ms()), 1);
    /* Now ask for durability of what is visible (all of it in the deleted segment). */
    c2.flush = RN_FLUSH_ALWAYS;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    run_until_acked(1);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    cr_assert_eq(rn_log_flush_sync(log), 0);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    check_all_reads(log, &m, m.n - 1);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Flush policies ---------------------------------------------------------------- */

static int n_fdatasync;

static int count_syncs(enum rn_sys_call call, void *arg)
{
    (void)arg;
    if (call == RN_SYS_FDATASYNC)
        n_fdatasync++;
    return 0;
}

// flush=always: concurrent appends share fdatasyncs and each ack means flushed == hw > last.
Test(log, flush_always_group_commit)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 4 << 20; /* no roll: seals would add their own syncs */
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    for (int i = 0; i < 200; i++)
        model_add(&m, 1 + i % 3, 1000 + i, 200);
    acks_reset(log, 0, true);
    n_fdatasync = 0;
    rn_sys_set_injector(count_syncs, NULL);
    for (int i = 0; i < m.n; i++)
        cr_assert_eq(submit(log, &m.b[i]), 0);
    cr_assert_eq(acks.n_acks, 0);
    /* Nothing is durable before io runs. */
    cr_assert_eq(rn_log_flushed_offset(log), 0);
    cr_assert_eq(rn_log_high_watermark(log), 0);
    run_until_acked(m.n);
    rn_sys_set_injector(NULL, NULL);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    for (int i = 0; i < m.n; i++)
        cr_assert_eq(m.b[i].n_acks, 1);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    cr_assert_geq(n_fdatasync, 1);
    cr_assert_lt(n_fdatasync, m.n / 4, "%d fdatasyncs for %d appends: no group commit", n_fdatasync,
                 m.n);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// flush=always across rolls: acks stay in order, each after an fdatasync asked for since its
// append, and every segment is synced (data and both indexes) before its seal.
Test(log, flush_always_across_rolls)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    th_crash_begin(dir, false); /* real fdatasyncs, observed */
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 500, 1000);
    acks_reset(log, 0, true);
    syncs_count_begin();
    append_model(log, &m, 0, 100);
    unsigned n_segs = rn_log_segment_count(log);
    cr_assert_gt(n_segs, 10);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    syncs_count_end();
    th_crash_end();
    /* Every segment is sealed now. A seal syncs both indexes through the
     * table; a rolled segment's data is synced through the ring before it,
     * and the acks needed at least one group commit of their own. */
    unsigned ring = syncs.requested - syncs.table;
    cr_log_info("%d appends, %u segments: %u fdatasyncs (%u through the ring)", m.n, n_segs,
                syncs.requested, ring);
    cr_assert_geq(syncs.table, 2 * n_segs, "%u synchronous fdatasyncs for %u sealed segments",
                  syncs.table, n_segs);
    cr_assert_geq(ring, n_segs, "%u fdatasyncs through the ring for %u segments", ring, n_segs);
    model_free(&m);
}

// flush=always: a batch written but whose fdatasync has not completed is above the high
// watermark; a consumer reading up to it gets nothing, a follower (up to the log end) gets it.
Test(log, flush_always_high_watermark_waits_for_sync)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 4 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_add(&m, 3, 1000, 100);
    model_add(&m, 2, 2000, 100);
    acks_reset(log, 0, true);
    syncs_count_begin();
    cr_assert_eq(rn_io_inflight(io), 0);
    for (int i = 0; i < m.n; i++) {
        int64_t before = rn_log_end_offset(log);
        cr_assert_eq(submit(log, &m.b[i]), 0);
        /* One completion: the write's, the only operation in flight. Its
         * callback makes the batch visible and asks for the fdatasync, which
         * the next rn_io_run submits. */
        cr_assert_eq(rn_io_inflight(io), 1);
        cr_assert_geq(rn_io_run(io, 1), 1);
        int64_t leo = rn_log_end_offset(log), hw = rn_log_high_watermark(log);
        cr_assert_eq(leo, m.b[i].base + m.b[i].n, "batch %d is not visible after its write", i);
        cr_assert_eq(acks.n_acks, i);
        cr_assert_eq(syncs.requested, (unsigned)i + 1, "the fdatasync was not asked for");
        cr_assert_eq(rn_log_flushed_offset(log), before);
        cr_assert_eq(hw, before,
                     "high watermark %lld with the sync not done: %lld is durable, log end %lld",
                     (long long)hw, (long long)before, (long long)leo);
        rn_slice s;
        cr_assert_eq(rn_log_read(log, before, 1 << 20, hw, &s), 0);
        cr_assert_eq(s.len, 0, "a consumer read %zu bytes above the high watermark", s.len);
        cr_assert_eq(rn_log_read(log, before, 1 << 20, leo, &s), 0);
        cr_assert_eq(s.base_offset, m.b[i].base);
        cr_assert_eq(s.len, m.b[i].len, "a follower reads the written batch");
        rn_slice_release(&s);
        run_until_acked(i + 1);
        cr_assert_str_empty(acks.bad, "%s", acks.bad);
        cr_assert_eq(rn_log_high_watermark(log), leo);
        cr_assert_eq(rn_log_flushed_offset(log), leo);
    }
    syncs_count_end();
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// flush=interval: acks at once (hw = leo); the timer makes it durable one interval later.
Test(log, flush_interval_timer)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_INTERVAL);
    c.flush_interval_ms = 200;
    c.segment_bytes = 4 << 20; /* no roll: a seal would sync on its own */
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 20, 1000);
    acks_reset(log, 0, false);
    n_fdatasync = 0;
    rn_sys_set_injector(count_syncs, NULL);
    double t0 = now_ms();
    append_model(log, &m, 0, 20);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    cr_assert_eq(rn_log_flushed_offset(log), 0, "flushed before the interval");
    cr_assert_eq(n_fdatasync, 0);
    while (rn_log_flushed_offset(log) < m.next) {
        cr_assert_lt(now_ms() - t0, 5000, "the interval flush never came");
        cr_assert_gt(rn_io_inflight(io), 0, "no timer armed with unflushed data");
        rn_io_run(io, 1);
    }
    cr_assert_geq(now_ms() - t0, 100, "flushed long before the interval");
    cr_assert_geq(n_fdatasync, 1);
    /* Once flushed, no timer keeps the loop busy. */
    for (int i = 0; i < 3; i++)
        rn_io_run(io, 0);
    cr_assert_eq(rn_io_inflight(io), 0, "a timer stays armed with nothing to flush");

    /* A second round arms it again. */
    int first = m.n;
    model_fill(&m, 5, 2000);
    acks_reset(log, m.b[first].base, false);
    append_model(log, &m, first, 5);
    cr_assert_lt(rn_log_flushed_offset(log), m.next);
    t0 = now_ms();
    while (rn_log_flushed_offset(log) < m.next) {
        cr_assert_lt(now_ms() - t0, 5000, "the second interval flush never came");
        cr_assert_gt(rn_io_inflight(io), 0);
        rn_io_run(io, 1);
    }
    rn_sys_set_injector(NULL, NULL);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Closing with an interval flush pending cancels the timer, flushes, and reopens clean.
Test(log, close_with_interval_timer_armed)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_INTERVAL);
    c.flush_interval_ms = 3600000; /* would never fire within the test */
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 30, 1000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    cr_assert_lt(rn_log_flushed_offset(log), m.next);
    cr_assert_gt(rn_io_inflight(io), 0, "no timer armed");
    double t0 = now_ms();
    cr_assert_eq(rn_log_close(log), 0);
    cr_assert_lt(now_ms() - t0, 5000, "close waited for the timer");
    cr_assert_eq(rn_io_inflight(io), 0, "close left an operation in flight");
    rn_log_open_info info;
    log = open_log(&c, &info);
    cr_assert(info.clean);
    cr_assert_eq(rn_log_end_offset(log), m.next);
    check_all_reads(log, &m, 0);
    /* flush_sync makes it durable at once, without the timer. */
    int first = m.n;
    model_fill(&m, 5, 2000);
    acks_reset(log, m.b[first].base, false);
    append_model(log, &m, first, 5);
    cr_assert_eq(rn_log_flush_sync(log), 0);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// flush=never: acks come at once, nothing is synced until rn_log_flush_sync.
Test(log, flush_never)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    c.segment_bytes = 4 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 50, 1000);
    acks_reset(log, 0, false);
    n_fdatasync = 0;
    rn_sys_set_injector(count_syncs, NULL);
    append_model(log, &m, 0, 10);
    for (int i = 0; i < 3; i++)
        rn_io_run(io, 0);
    cr_assert_eq(n_fdatasync, 0);
    cr_assert_eq(rn_io_inflight(io), 0);
    cr_assert_eq(rn_log_flushed_offset(log), 0);
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    cr_assert_eq(rn_log_flush_sync(log), 0);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    cr_assert_eq(n_fdatasync, 1);
    rn_sys_set_injector(NULL, NULL);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Many appends through a small ring: callbacks still never run inside rn_log_append.
Test(log, callbacks_never_inside_append)
{
    rn_io_free(io);
    cr_assert_eq(rn_io_new(&io, 8), 0);
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 300, 1000);
    acks_reset(log, 0, true);
    for (int i = 0; i < m.n; i++)
        cr_assert_eq(submit(log, &m.b[i]), 0, "append %d", i);
    run_until_acked(m.n);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* State of the chain of appends made from callbacks. */
static model *chain_model;
static rn_log *chain_log;
static int chain_next;

static void on_chain(void *arg, int err, int64_t base, int64_t last)
{
    on_ack(arg, err, base, last);
    if (chain_next < chain_model->n) {
        tbatch *t = &chain_model->b[chain_next++];
        int rc = rn_log_append(chain_log, t->buf, t->len, t->epoch, on_chain, t);
        if (rc < 0)
            bad("append from a callback: %s", rn_strerror(rc));
    }
}

// A callback may append the next batch; each runs once, in order.
Test(log, append_from_callback)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 100, 1000);
    chain_model = &m;
    chain_log = log;
    chain_next = 1;
    acks_reset(log, 0, true);
    cr_assert_eq(rn_log_append(log, m.b[0].buf, m.b[0].len, m.b[0].epoch, on_chain, &m.b[0]), 0);
    run_until_acked(m.n);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* Every fdatasync fails, as on a dying disk. */
static int fail_syncs(enum rn_sys_call call, void *arg)
{
    (void)arg;
    return call == RN_SYS_FDATASYNC ? -EIO : 0;
}

static int fail_acks[4];
static int n_fail_acks;

static void on_fail_ack(void *arg, int err, int64_t base, int64_t last)
{
    (void)arg;
    (void)base;
    (void)last;
    if (n_fail_acks < 4)
        fail_acks[n_fail_acks] = err;
    n_fail_acks++;
}

// A rolled segment whose seal fails its fdatasync fails the appends waiting to sync, once each.
Test(log, failed_seal_fails_waiting_appends)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    tbatch *a = model_add(&m, 1, 1000, 9000);
    tbatch *b = model_add(&m, 1, 1001, 9000); /* does not fit after a: rolls */
    cr_assert_eq(rn_log_append(log, a->buf, a->len, 1, on_fail_ack, a), 0);
    cr_assert_eq(rn_log_append(log, b->buf, b->len, 1, on_fail_ack, b), 0);
    cr_assert_eq(rn_log_segment_count(log), 2);
    rn_sys_set_injector(fail_syncs, NULL);
    while (n_fail_acks < 2) {
        cr_assert_gt(rn_io_inflight(io), 0, "stuck: %d of 2 appends answered", n_fail_acks);
        rn_io_run(io, 1);
    }
    for (int i = 0; i < 3; i++)
        rn_io_run(io, 0);
    cr_assert_eq(n_fail_acks, 2, "a callback ran twice");
    cr_assert_eq(fail_acks[0], -RN_E_LOG_FAILED);
    cr_assert_eq(fail_acks[1], -RN_E_LOG_FAILED);
    cr_assert_eq(rn_log_flushed_offset(log), 0);
    cr_assert_eq(rn_log_high_watermark(log), 0, "a consumer may see what was never synced");
    tbatch *after = model_add(&m, 1, 1002, 10);
    cr_assert_eq(rn_log_append(log, after->buf, after->len, 1, on_fail_ack, after),
                 -RN_E_LOG_FAILED);
    rn_sys_set_injector(NULL, NULL);
    cr_assert_neq(rn_log_close(log), 0, "a failed log closed as if clean");
    model_free(&m);
}

/* ---- Bad batches ------------------------------------------------------------------ */

// Bad batches are refused with their code, run no callback and consume no offset.
Test(log, bad_batches_rejected_without_consuming_offsets)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.max_batch_bytes = 8192;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    append_one(log, model_add(&m, 3, 1000, 50));

    model junk = {0};
    tbatch *a = model_add(&junk, 2, 1000, 50);
    tbatch *b = model_add(&junk, 2, 1000, 50);
    acks_reset(log, -1, false);

    /* A flipped bit in the records: bad CRC. */
    uint8_t *crc_bad = malloc(a->len);
    memcpy(crc_bad, a->buf, a->len);
    crc_bad[a->len - 3] ^= 0x10;
    cr_assert_eq(rn_log_append(log, crc_bad, a->len, 1, on_ack, a), -RN_E_BATCH_BAD_CRC);
    /* Two batches in one buffer. */
    uint8_t *two = malloc(a->len + b->len);
    memcpy(two, a->buf, a->len);
    memcpy(two + a->len, b->buf, b->len);
    cr_assert_eq(rn_log_append(log, two, a->len + b->len, 1, on_ack, a), -RN_E_BATCH_BAD_LENGTH);
    /* Cut short. */
    cr_assert_eq(rn_log_append(log, a->buf, a->len - 1, 1, on_ack, a), -RN_E_BATCH_TRUNCATED);
    cr_assert_eq(rn_log_append(log, a->buf, 10, 1, on_ack, a), -RN_E_BATCH_TRUNCATED);
    /* Not a v2 batch. */
    uint8_t *magic = malloc(a->len);
    memcpy(magic, a->buf, a->len);
    magic[RN_BATCH_OFF_MAGIC] = 1;
    cr_assert_eq(rn_log_append(log, magic, a->len, 1, on_ack, a), -RN_E_BATCH_BAD_MAGIC);
    /* Over max_batch_bytes. */
    tbatch *huge = model_add(&junk, 1, 1000, 9000);
    cr_assert_eq(rn_log_append(log, huge->buf, huge->len, 1, on_ack, huge),
                 -RN_E_MESSAGE_TOO_LARGE);
    free(crc_bad);
    free(two);
    free(magic);

    for (int i = 0; i < 4; i++)
        rn_io_run(io, 0);
    cr_assert_eq(acks.n_acks, 0, "a refused append ran its callback");
    cr_assert_eq(rn_log_end_offset(log), 3);
    /* The refused bytes were not stamped either. */
    cr_assert_eq(be64(a->buf + RN_BATCH_OFF_BASE_OFFSET), 0);
    /* The next good batch gets the very next offset. */
    append_one(log, model_add(&m, 2, 2000, 50));
    cr_assert_eq(rn_log_end_offset(log), 5);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
    model_free(&junk);
}

/* ---- Configuration ------------------------------------------------------------------ */

// set_config refuses bad values and keeps the old ones; good values take effect.
Test(log, set_config_validates_and_applies)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    rn_log *log = open_log(&c, NULL);
    rn_log_config bad_cfg = c;
    bad_cfg.segment_bytes = 100;
    cr_assert_eq(rn_log_set_config(log, &bad_cfg), -EINVAL);
    bad_cfg = c;
    bad_cfg.index_interval_bytes = 0;
    cr_assert_eq(rn_log_set_config(log, &bad_cfg), -EINVAL);
    bad_cfg = c;
    bad_cfg.flush = RN_FLUSH_INTERVAL;
    bad_cfg.flush_interval_ms = 0;
    cr_assert_eq(rn_log_set_config(log, &bad_cfg), -EINVAL);
    bad_cfg = c;
    bad_cfg.flush = (enum rn_flush_policy)7;
    cr_assert_eq(rn_log_set_config(log, &bad_cfg), -EINVAL);
    cr_assert(memcmp(rn_log_config_of(log), &c, sizeof(c)) == 0, "a refused config leaked in");

    /* segment_bytes applies from the next roll. */
    model m = {0};
    model_fill(&m, 60, 1000);
    acks_reset(log, 0, true);
    append_model(log, &m, 0, 8);
    rn_log_config c2 = c;
    c2.segment_bytes = 64 * 1024;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    cr_assert_eq(rn_log_config_of(log)->segment_bytes, 64 * 1024);
    unsigned before = rn_log_segment_count(log);
    int first = m.n;
    model_fill(&m, 300, 2000);
    acks_reset(log, m.b[first].base, true);
    append_model(log, &m, first, 32);
    /* Each new segment now holds about 64 KiB. */
    unsigned added = rn_log_segment_count(log) - before;
    uint64_t new_bytes = 0;
    for (int i = first; i < m.n; i++)
        new_bytes += m.b[i].len;
    cr_assert_leq(added, new_bytes / (48 * 1024) + 1, "%u segments for %llu bytes", added,
                  (unsigned long long)new_bytes);
    cr_assert_geq(added, new_bytes / (64 * 1024));
    check_all_reads(log, &m, 0);

    char buf[32];
    cr_assert_str_eq(rn_log_config_flush_str(rn_log_config_of(log), buf, sizeof(buf)), "always");
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Switching never -> always makes what is already visible durable.
Test(log, set_config_never_to_always_flushes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 30, 1000);
    acks_reset(log, 0, false);
    append_model(log, &m, 0, 8);
    cr_assert_eq(rn_log_flushed_offset(log), 0);
    rn_log_config c2 = c;
    c2.flush = RN_FLUSH_ALWAYS;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    double t0 = now_ms();
    while (rn_log_flushed_offset(log) < m.next) {
        cr_assert_lt(now_ms() - t0, 5000);
        cr_assert_gt(rn_io_inflight(io), 0, "switch to always started no sync");
        rn_io_run(io, 1);
    }
    cr_assert_eq(rn_log_high_watermark(log), m.next);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// Switching always -> never with appends waiting for a sync: all acked once, in order.
Test(log, set_config_always_to_never_with_waiting_appends)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 4 << 20;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    model_fill(&m, 40, 1000);
    acks_reset(log, 0, false);
    /* The first write completes and its sync is queued; the rest are in flight. */
    cr_assert_eq(submit(log, &m.b[0]), 0);
    while (rn_log_end_offset(log) == 0)
        rn_io_run(io, 1);
    for (int i = 1; i < m.n; i++)
        cr_assert_eq(submit(log, &m.b[i]), 0);
    rn_log_config c2 = c;
    c2.flush = RN_FLUSH_NEVER;
    cr_assert_eq(rn_log_set_config(log, &c2), 0);
    run_until_acked(m.n);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    cr_assert_eq(rn_log_flush_sync(log), 0);
    cr_assert_eq(rn_log_flushed_offset(log), m.next);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

// log.flush strings parse and print back; bad ones are INVALID_CONFIG and change nothing.
Test(log, flush_config_strings)
{
    rn_log_config c;
    rn_log_config_default(&c);
    char buf[32];
    cr_assert_eq(c.flush, RN_FLUSH_ALWAYS);
    cr_assert_eq(rn_log_config_parse_flush("never", &c), 0);
    cr_assert_str_eq(rn_log_config_flush_str(&c, buf, sizeof(buf)), "never");
    cr_assert_eq(rn_log_config_parse_flush("interval:250", &c), 0);
    cr_assert_eq(c.flush, RN_FLUSH_INTERVAL);
    cr_assert_eq(c.flush_interval_ms, 250);
    cr_assert_str_eq(rn_log_config_flush_str(&c, buf, sizeof(buf)), "interval:250");
    const char *bad_values[] = {"",
                                "sometimes",
                                "interval:",
                                "interval:0",
                                "interval:-5",
                                "interval:3600001",
                                "interval:12x",
                                "Always"};
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(*bad_values); i++) {
        cr_assert_eq(rn_log_config_parse_flush(bad_values[i], &c), -RN_E_INVALID_CONFIG, "%s",
                     bad_values[i]);
        cr_assert_eq(c.flush, RN_FLUSH_INTERVAL);
        cr_assert_eq(c.flush_interval_ms, 250);
    }
    cr_assert_eq(rn_log_config_parse_flush("always", &c), 0);
    cr_assert_str_eq(rn_log_config_flush_str(&c, buf, sizeof(buf)), "always");
}
