/*
 * log_helpers.h — the fixture and model shared by the partition log's tests
 * (storage/log.h): test_log_read.c, test_log_retention.c, test_log_flush.c
 * and test_log_config.c, each its own executable. Header-only (static inline).
 *
 * The tests keep a model of what they appended (each batch's bytes, its
 * expected base offset, record count, timestamps and leader epoch) and check
 * every answer of the log against it (check_slice, check_all_reads).
 *
 * Every test uses its own mkdtemp directory under /tmp (removed at the end), a
 * fresh io_uring, and small segments (16 KiB) so hundreds of rolls stay fast.
 * The wall clock used for roll.ms and retention.ms is swapped for a fake one
 * where a test needs time to pass. Under flush=always the tests do not take
 * the log's word that an ack is durable: they count the fdatasyncs asked of
 * the system (rn_sys table and injector) and, with the crash layer of
 * helpers.h, check that one covering each acked batch has completed.
 */
#ifndef RN_TEST_LOG_HELPERS_H
#define RN_TEST_LOG_HELPERS_H

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

static inline int64_t fake_clock(void)
{
    return fake_now;
}

static inline int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/rn-test-log-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/orders-0", root);
    cr_assert_eq(rn_io_new(&io, 256), 0);
    real_clock = rn_log_clock_ms;
}

static inline void teardown(void)
{
    rn_log_clock_ms = real_clock;
    rn_sys_reset();
    rn_io_free(io);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void small_config(rn_log_config *c, enum rn_flush_policy flush)
{
    rn_log_config_default(c);
    c->segment_bytes = 16 * 1024;
    c->index_interval_bytes = 256;
    c->flush = flush;
    c->flush_interval_ms = 50;
    c->retention_ms = -1;
}

static inline rn_log *open_log(const rn_log_config *c, rn_log_open_info *info)
{
    rn_log *log = NULL;
    int rc = rn_log_open(&log, io, dir, "orders-0", c, info);
    cr_assert_eq(rc, 0, "rn_log_open: %s", rn_strerror(rc));
    return log;
}

static inline bool seg_file_exists(int64_t base, const char *ext)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/%020lld%s", dir, (long long)base, ext);
    return access(p, F_OK) == 0;
}

static inline int count_log_files(void)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c '\\.log$'", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static inline int count_open_fds(void)
{
    FILE *f = popen("ls /proc/self/fd | wc -l", "r"); /* the shell inherits ours */
    int n = -1;
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

static inline off_t file_size(const char *p)
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

static inline uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Record k of the batch at base carries "off=<base+k>" then filler, so a read
 * is checked down to which bytes belong to which offset. */
static inline void record_value(char *v, size_t vlen, int64_t off)
{
    memset(v, 'a' + (int)(off % 26), vlen);
    int n = snprintf(v, vlen, "off=%lld;", (long long)off);
    if (n > 0 && (size_t)n < vlen)
        v[n] = (char)('a' + (int)(off % 26)); /* drop snprintf's NUL */
}

/* Build a batch of n records with timestamps ts[k] (NULL: ts0 + k) and values
 * of vlen bytes, and add it to the model. */
static inline tbatch *model_add_ts(model *m, int n, const int64_t *ts, int64_t ts0, size_t vlen,
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

static inline tbatch *model_add(model *m, int n, int64_t ts0, size_t vlen)
{
    return model_add_ts(m, n, NULL, ts0, vlen, 7);
}

static inline void model_free(model *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->b[i].buf);
    free(m->b);
    memset(m, 0, sizeof(*m));
}

/* The model batch containing offset, or -1. */
static inline int model_find(const model *m, int64_t off)
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

static inline int64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static inline int32_t be32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* Check that the slice holds whole batches matching the model from batch
 * index `first` on: same bytes, the stamped base offset and leader epoch, each
 * record's offset and value. Returns the number of batches in the slice. */
static inline int check_slice(const model *m, const rn_slice *s, int first)
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

static inline void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void bad(const char *fmt, ...)
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

static inline int syncs_inject(enum rn_sys_call call, void *arg)
{
    (void)arg;
    if (call == RN_SYS_FDATASYNC)
        syncs.requested++;
    return 0;
}

static inline int syncs_table(int fd)
{
    syncs.table++;
    return syncs.real(fd);
}

static inline void syncs_count_begin(void)
{
    memset(&syncs, 0, sizeof(syncs));
    syncs.on = true;
    syncs.real = rn_sys.fdatasync;
    rn_sys.fdatasync = syncs_table;
    rn_sys_set_injector(syncs_inject, NULL);
}

static inline void syncs_count_end(void)
{
    rn_sys_set_injector(NULL, NULL);
    rn_sys.fdatasync = syncs.real;
    syncs.on = false;
}

static inline void acks_reset(rn_log *log, int64_t next_expected, bool durable)
{
    memset(&acks, 0, sizeof(acks));
    acks.log = log;
    acks.next_expected = next_expected;
    acks.durable = durable;
}

static inline void on_ack(void *arg, int err, int64_t base, int64_t last)
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

static inline int submit(rn_log *log, tbatch *t)
{
    t->syncs_at_submit = syncs.requested;
    acks.in_append = true;
    int rc = rn_log_append(log, t->buf, t->len, t->epoch, on_ack, t);
    acks.in_append = false;
    return rc;
}

/* Seals run on the offload worker (storage/offload.h): let them finish, so
 * rolled segments are sealed, and deletable, as when seals blocked. */
static inline void settle_seals(rn_log *log)
{
    while (rn_log_sealing(log)) {
        int rc = rn_io_run(io, 1);
        cr_assert(rc >= 0 || rc == -EINTR, "rn_io_run: %s", rn_strerror(rc));
    }
}

/* Run io until `target` callbacks have run; fails (rather than hangs) when
 * nothing is in flight that could bring them. */
static inline void run_until_acked(int target)
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
static inline void append_model(rn_log *log, model *m, int from, int window)
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
    settle_seals(log);
}

/* One synchronous append, checking the offset it got. */
static inline void append_one(rn_log *log, tbatch *t)
{
    int64_t base = -1;
    int rc = rn_log_append_sync(log, t->buf, t->len, t->epoch, &base);
    cr_assert_eq(rc, 0, "append: %s (%s)", rn_strerror(rc), rn_log_errmsg(log));
    cr_assert_eq(base, t->base);
    settle_seals(log);
}

/* A varied workload: 1..7 records per batch, 20..420-byte values,
 * timestamps growing by 10 ms per batch from ts0. */
static inline void model_fill(model *m, int n_batches, int64_t ts0)
{
    for (int i = 0; i < n_batches; i++) {
        int n = 1 + (int)(rng() % 7);
        size_t vlen = 20 + (size_t)(rng() % 400);
        model_add(m, n, ts0 + 10 * (int64_t)m->n, vlen);
    }
}

/* The opening most tests share: a log opened with c, n_batches random
 * batches from ts0 on added to m and appended with window appends in flight,
 * their acks checked (durable: each acked batch flushed). */
static inline rn_log *open_filled(const rn_log_config *c, model *m, int n_batches, int64_t ts0,
                                  bool durable, int window)
{
    rn_log *log = open_log(c, NULL);
    model_fill(m, n_batches, ts0);
    acks_reset(log, 0, durable);
    append_model(log, m, 0, window);
    return log;
}

/* ---- Reading every offset ---------------------------------------------------- */

/* Read at every batch boundary and every offset inside every batch, each with
 * max_bytes = 1 (exactly one batch comes back), and walk the whole log with
 * large reads. */
static inline void check_all_reads(rn_log *log, const model *m, int from)
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

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
