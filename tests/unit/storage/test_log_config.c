/*
 * test_log_config.c — what the partition log refuses and how it is
 * reconfigured (storage/log.h): bad batches refused without consuming
 * offsets, rn_log_set_config validating and applying (flush policy switches
 * with appends waiting), and the flush policy strings. Fixture: log_helpers.h.
 */
#include "log_helpers.h"

TestSuite(log_config, .init = setup, .fini = teardown, .timeout = 60);

/* ---- Bad batches ------------------------------------------------------------------ */

// Bad batches are refused with their code, run no callback and consume no offset.
Test(log_config, bad_batches_rejected_without_consuming_offsets)
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

// A batch its caller checked is appended without a second CRC pass, reads
// back like any other, and still cannot claim a length other than its own or
// one above max_batch_bytes.
Test(log_config, checked_append_trusts_the_callers_check)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_ALWAYS);
    c.max_batch_bytes = 8192;
    rn_log *log = open_log(&c, NULL);
    model m = {0};
    tbatch *a = model_add(&m, 3, 1000, 50);
    rn_batch_header h;
    cr_assert_eq(rn_batch_check(a->buf, a->len, c.max_batch_bytes, &h), 0);
    acks_reset(log, 0, true);
    /* Refused: a length that is not the checked batch's, and (with a header
     * that claims so) one above the log's max_batch_bytes. */
    cr_assert_eq(rn_log_append_checked(log, a->buf, a->len - 1, &h, 1, on_ack, a),
                 -RN_E_BATCH_BAD_LENGTH);
    rn_batch_header big = h;
    big.batch_length = 9000 - 12;
    cr_assert_eq(rn_log_append_checked(log, a->buf, 9000, &big, 1, on_ack, a),
                 -RN_E_MESSAGE_TOO_LARGE);
    for (int i = 0; i < 4; i++)
        rn_io_run(io, 0);
    cr_assert_eq(acks.n_acks, 0, "a refused append ran its callback");
    cr_assert_eq(rn_log_end_offset(log), 0);
    /* Accepted, and the same as rn_log_append's. */
    cr_assert_eq(rn_log_append_checked(log, a->buf, a->len, &h, a->epoch, on_ack, a), 0);
    run_until_acked(1);
    cr_assert_str_empty(acks.bad, "%s", acks.bad);
    settle_seals(log);
    append_one(log, model_add(&m, 2, 2000, 50));
    cr_assert_eq(rn_log_end_offset(log), 5);
    check_all_reads(log, &m, 0);
    cr_assert_eq(rn_log_close(log), 0);
    model_free(&m);
}

/* ---- Configuration ------------------------------------------------------------------ */

// set_config refuses bad values and keeps the old ones; good values take effect.
Test(log_config, set_config_validates_and_applies)
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
Test(log_config, set_config_never_to_always_flushes)
{
    rn_log_config c;
    small_config(&c, RN_FLUSH_NEVER);
    model m = {0};
    rn_log *log = open_filled(&c, &m, 30, 1000, false, 8);
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
Test(log_config, set_config_always_to_never_with_waiting_appends)
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
Test(log_config, flush_config_strings)
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
