/*
 * test_log_flush.c — the partition log's flush policies and its callbacks'
 * contract (storage/log_flush.c): group commit under flush=always (fdatasyncs
 * counted), the high watermark waiting for the sync, the interval timer,
 * flush=never, callbacks never inside an append, appends from a callback, and
 * a failed seal failing the appends that wait on it. Fixture: log_helpers.h.
 */
#include "log_helpers.h"

TestSuite(log_flush, .init = setup, .fini = teardown, .timeout = 60);

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
Test(log_flush, flush_always_group_commit)
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
Test(log_flush, flush_always_across_rolls)
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
Test(log_flush, flush_always_high_watermark_waits_for_sync)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.segment_bytes = 4 << 20;
    c.preallocate_bytes = 0; /* the write is the only operation in flight */
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

// flush=interval: acks at once (hw = leo); the timer makes it durable one interval later.
Test(log_flush, flush_interval_timer)
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
Test(log_flush, close_with_interval_timer_armed)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_INTERVAL);
    c.flush_interval_ms = 3600000; /* would never fire within the test */
    model m = {0};
    rn_log *log = open_filled(&c, &m, 30, 1000, false, 8);
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
Test(log_flush, flush_never)
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
Test(log_flush, callbacks_never_inside_append)
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
Test(log_flush, append_from_callback)
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
Test(log_flush, failed_seal_fails_waiting_appends)
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
