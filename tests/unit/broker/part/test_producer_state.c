/*
 * test_producer_state.c — idempotent producer bookkeeping: duplicates get
 * their first offset, gaps and old epochs are refused, the state rebuilds
 * from a real log, producer ids are never handed out twice.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/part/producer_state.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"

static rn_batch_header hdr(int64_t pid, int16_t epoch, int32_t seq, int32_t n)
{
    rn_batch_header h = {0};
    h.producer_id = pid;
    h.producer_epoch = epoch;
    h.base_sequence = seq;
    h.last_offset_delta = n - 1;
    h.records_count = n;
    return h;
}

// Batches without a producer id are always appended.
Test(producer_state, plain_batches_append)
{
    rn_producer_state *ps = rn_producer_state_new();
    rn_batch_header h = hdr(-1, -1, -1, 3);
    int64_t dup;
    cr_assert_eq(rn_producer_state_check(ps, &h, &dup), RN_PRODUCER_APPEND);
    cr_assert_eq(rn_producer_state_count(ps), 0);
    rn_producer_state_free(ps);
}

// A retry of any of the last five batches is a duplicate answered with its first offset.
Test(producer_state, retries_are_duplicates)
{
    rn_producer_state *ps = rn_producer_state_new();
    int64_t dup = -1;
    for (int i = 0; i < 6; i++) {
        rn_batch_header h = hdr(7, 0, i * 10, 10);
        cr_assert_eq(rn_producer_state_check(ps, &h, &dup), RN_PRODUCER_APPEND);
        rn_producer_state_appended(ps, 7, i * 10, 1000 + i * 10);
    }
    for (int i = 1; i < 6; i++) {
        rn_batch_header h = hdr(7, 0, i * 10, 10);
        cr_assert_eq(rn_producer_state_check(ps, &h, &dup), RN_PRODUCER_DUPLICATE);
        cr_assert_eq(dup, 1000 + i * 10);
    }
    /* The sixth-newest is forgotten: it is older than what is remembered. */
    rn_batch_header old = hdr(7, 0, 0, 10);
    cr_assert_eq(rn_producer_state_check(ps, &old, &dup), -RN_E_OUT_OF_ORDER_SEQUENCE);
    rn_producer_state_free(ps);
}

// A gap in sequences is refused; the next expected sequence still works.
Test(producer_state, gap_is_out_of_order)
{
    rn_producer_state *ps = rn_producer_state_new();
    int64_t dup;
    rn_batch_header a = hdr(1, 0, 0, 5), gap = hdr(1, 0, 6, 1), next = hdr(1, 0, 5, 1);
    cr_assert_eq(rn_producer_state_check(ps, &a, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_appended(ps, 1, 0, 0);
    cr_assert_eq(rn_producer_state_check(ps, &gap, &dup), -RN_E_OUT_OF_ORDER_SEQUENCE);
    cr_assert_eq(rn_producer_state_check(ps, &next, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_free(ps);
}

// An older epoch is fenced; a newer one starts over.
Test(producer_state, epochs)
{
    rn_producer_state *ps = rn_producer_state_new();
    int64_t dup;
    rn_batch_header e1 = hdr(3, 1, 0, 1), e0 = hdr(3, 0, 1, 1), e2 = hdr(3, 2, 0, 1);
    cr_assert_eq(rn_producer_state_check(ps, &e1, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_appended(ps, 3, 0, 0);
    cr_assert_eq(rn_producer_state_check(ps, &e0, &dup), -RN_E_PRODUCER_FENCED);
    cr_assert_eq(rn_producer_state_check(ps, &e2, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_free(ps);
}

// A retry while the first attempt is still in flight is told to retry; a failed
// attempt is forgotten so its retry is appended.
Test(producer_state, in_flight_and_failed)
{
    rn_producer_state *ps = rn_producer_state_new();
    int64_t dup;
    rn_batch_header a = hdr(9, 0, 0, 2), b = hdr(9, 0, 2, 2);
    cr_assert_eq(rn_producer_state_check(ps, &a, &dup), RN_PRODUCER_APPEND);
    cr_assert_eq(rn_producer_state_check(ps, &b, &dup), RN_PRODUCER_APPEND);
    cr_assert_eq(rn_producer_state_check(ps, &a, &dup), -RN_E_TIMEOUT);
    rn_producer_state_failed(ps, 9, 0); /* a failed: b (after it) fails with it */
    cr_assert_eq(rn_producer_state_check(ps, &a, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_appended(ps, 9, 0, 40);
    cr_assert_eq(rn_producer_state_check(ps, &a, &dup), RN_PRODUCER_DUPLICATE);
    cr_assert_eq(dup, 40);
    rn_producer_state_free(ps);
}

// Sequences wrap from INT32_MAX to 0.
Test(producer_state, sequence_wraps)
{
    rn_producer_state *ps = rn_producer_state_new();
    int64_t dup;
    rn_batch_header a = hdr(5, 0, INT32_MAX - 1, 2), b = hdr(5, 0, 0, 1);
    cr_assert_eq(rn_producer_state_check(ps, &a, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_appended(ps, 5, INT32_MAX - 1, 0);
    cr_assert_eq(rn_producer_state_check(ps, &b, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_free(ps);
}

// Many producers grow the table without losing any.
Test(producer_state, many_producers)
{
    rn_producer_state *ps = rn_producer_state_new();
    int64_t dup;
    for (int64_t pid = 0; pid < 5000; pid++) {
        rn_batch_header h = hdr(pid, 0, 0, 1);
        cr_assert_eq(rn_producer_state_check(ps, &h, &dup), RN_PRODUCER_APPEND);
        rn_producer_state_appended(ps, pid, 0, pid);
    }
    cr_assert_eq(rn_producer_state_count(ps), 5000);
    for (int64_t pid = 0; pid < 5000; pid++) {
        rn_batch_header h = hdr(pid, 0, 0, 1);
        cr_assert_eq(rn_producer_state_check(ps, &h, &dup), RN_PRODUCER_DUPLICATE);
        cr_assert_eq(dup, pid);
    }
    rn_producer_state_free(ps);
}

// The state rebuilt from a log's batches recognises their retries.
Test(producer_state, rebuild_from_log)
{
    char dir[] = "/tmp/rn-ps-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rn_io *io;
    cr_assert_eq(rn_io_new(&io, 64), 0);
    rn_log_config c;
    rn_log_config_default(&c);
    c.segment_bytes = 1 << 20;
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, dir, "ps", &c, NULL), 0);
    for (int i = 0; i < 4; i++) {
        rn_batch_builder_opts o = {.codec = RN_BATCH_CODEC_NONE,
                                   .producer_id = 42,
                                   .producer_epoch = 0,
                                   .base_sequence = i * 2};
        rn_batch_builder *bb;
        cr_assert_eq(rn_batch_builder_new(&bb, &o), 0);
        cr_assert_eq(rn_batch_builder_add(bb, 1000, "k", 1, "v1", 2, NULL, 0), 0);
        cr_assert_eq(rn_batch_builder_add(bb, 1000, "k", 1, "v2", 2, NULL, 0), 0);
        uint8_t *buf;
        size_t len;
        cr_assert_eq(rn_batch_builder_finish(bb, &buf, &len), 0);
        int64_t base;
        cr_assert_eq(rn_log_append_sync(log, buf, len, 0, &base), 0);
        cr_assert_eq(base, i * 2);
        free(buf);
        rn_batch_builder_free(bb);
    }
    rn_producer_state *ps = rn_producer_state_new();
    cr_assert_eq(rn_producer_state_rebuild(ps, log, 0), 4);
    int64_t dup;
    rn_batch_header h = hdr(42, 0, 4, 2);
    cr_assert_eq(rn_producer_state_check(ps, &h, &dup), RN_PRODUCER_DUPLICATE);
    cr_assert_eq(dup, 4);
    rn_batch_header next = hdr(42, 0, 8, 1);
    cr_assert_eq(rn_producer_state_check(ps, &next, &dup), RN_PRODUCER_APPEND);
    rn_producer_state_free(ps);
    cr_assert_eq(rn_log_close(log), 0);
    rn_io_free(io);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

// In a cluster two brokers with the same allocator state (both fresh) hand
// out different ids: each broker's are its own (a leader keeps the state of
// every id; a shared id was OUT_OF_ORDER for a second producer).
Test(producer_state, cluster_ids_are_the_brokers_own)
{
    char d1[] = "/tmp/rn-pid-XXXXXX", d2[] = "/tmp/rn-pid-XXXXXX";
    cr_assert_not_null(mkdtemp(d1));
    cr_assert_not_null(mkdtemp(d2));
    rn_producer_ids a, b;
    cr_assert_eq(rn_producer_ids_open(&a, d1), 0);
    cr_assert_eq(rn_producer_ids_open(&b, d2), 0);
    rn_producer_ids_set_node(&a, 1);
    rn_producer_ids_set_node(&b, 2);
    int64_t seen[200];
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(rn_producer_ids_next(&a, &seen[2 * i]), 0);
        cr_assert_eq(rn_producer_ids_next(&b, &seen[2 * i + 1]), 0);
    }
    for (int i = 0; i < 200; i++) {
        cr_assert_geq(seen[i], 0);
        for (int j = 0; j < i; j++)
            cr_assert_neq(seen[i], seen[j], "id %lld twice", (long long)seen[i]);
    }
    cr_assert_eq(seen[0] & ((INT64_C(1) << 31) - 1), 1, "node 1's ids carry its node id");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", d1, d2);
    cr_assert_eq(system(cmd), 0);
}

// Producer ids persist in blocks: a restart never hands out an id again.
Test(producer_state, ids_never_repeat)
{
    char dir[] = "/tmp/rn-pid-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rn_producer_ids ids;
    cr_assert_eq(rn_producer_ids_open(&ids, dir), 0);
    int64_t a, b, c;
    cr_assert_eq(rn_producer_ids_next(&ids, &a), 0);
    cr_assert_eq(rn_producer_ids_next(&ids, &b), 0);
    cr_assert_eq(b, a + 1);
    cr_assert_eq(rn_producer_ids_open(&ids, dir), 0); /* a restart */
    cr_assert_eq(rn_producer_ids_next(&ids, &c), 0);
    cr_assert_gt(c, b);
    /* A garbled file is an error, not id 0 again. */
    char p[64];
    snprintf(p, sizeof(p), "%s/producer-ids", dir);
    FILE *f = fopen(p, "r+");
    cr_assert_not_null(f);
    fseek(f, 13, SEEK_SET);
    fputc('X', f);
    fclose(f);
    cr_assert_eq(rn_producer_ids_open(&ids, dir), -RN_E_CORRUPT_FILE);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
