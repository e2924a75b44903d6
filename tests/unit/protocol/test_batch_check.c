/*
 * test_batch_check.c — rn_batch_check, rn_batch_verify and the iterator on
 * damaged batches (protocol/batch.c): every header field out of range gets
 * its own code, records_count bounded by the bytes, a wrong CRC, peek and
 * max_len, a batch cut at every length, and every byte of the records (and
 * of a zstd frame) damaged, never read out of bounds. Helpers:
 * batch_helpers.h.
 */
#include "batch_helpers.h"

/* ---- Header fields -------------------------------------------------------- */

typedef struct field_case {
    const char *what;
    int off, width;
    int64_t value;
    int want;
} field_case;

static void apply_case(uint8_t *p, const field_case *c)
{
    switch (c->width) {
    case 1:
        p[c->off] = (uint8_t)c->value;
        break;
    case 2:
        set_be16(p, c->off, (uint16_t)c->value);
        break;
    case 4:
        set_be32(p, c->off, (uint32_t)c->value);
        break;
    default:
        set_be64(p, c->off, (uint64_t)c->value);
        break;
    }
}

static void run_cases(uint8_t *(*make)(size_t *), const field_case *cases, size_t n)
{
    size_t len;
    uint8_t *orig = make(&len);
    cr_assert_eq(rn_batch_verify(orig, len, 0, 0), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = dup_exact(orig, len);
        apply_case(p, &cases[i]);
        fix_crc(p, len);
        int rc = rn_batch_check(p, len, 0, NULL);
        cr_assert_eq(rc, cases[i].want, "%s: got %s, want %s", cases[i].what, rn_errname(rc),
                     rn_errname(cases[i].want));
        cr_assert_eq(rn_batch_verify(p, len, 0, 0), cases[i].want, "%s (verify)", cases[i].what);
        rn_batch_iter it;
        cr_assert_eq(rn_batch_iter_init(&it, p, len, 0), cases[i].want, "%s (iter)", cases[i].what);
        if (cases[i].want == 0)
            rn_batch_iter_fini(&it);
        free(p);
    }
    free(orig);
}

static uint8_t *plain_batch(size_t *len)
{
    return small_batch(RN_BATCH_CODEC_NONE, len);
}

static uint8_t *idempotent_batch(size_t *len)
{
    rn_batch_builder_opts o = {.producer_id = 7, .producer_epoch = 1, .base_sequence = 42};
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rn_batch_builder_add(b, 1000 + i, "k", 1, "v", 1, NULL, 0), 0);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    return out;
}

#define F(field, w) RN_BATCH_OFF_##field, w

// Each header field set out of range, one at a time (CRC recomputed), gets
// its own error code from check, verify and iter_init alike.
Test(batch_check, header_fields_out_of_range)
{
    size_t len;
    uint8_t *tmp = plain_batch(&len);
    int32_t blen = (int32_t)(len - RN_BATCH_LOG_OVERHEAD);
    free(tmp);
    const field_case plain[] = {
        {"magic 0", F(MAGIC, 1), 0, E(BATCH_BAD_MAGIC)},
        {"magic 1", F(MAGIC, 1), 1, E(BATCH_BAD_MAGIC)},
        {"magic 3", F(MAGIC, 1), 3, E(BATCH_BAD_MAGIC)},
        {"magic -1", F(MAGIC, 1), -1, E(BATCH_BAD_MAGIC)},
        {"length 48", F(LENGTH, 4), 48, E(BATCH_BAD_LENGTH)},
        {"length 0", F(LENGTH, 4), 0, E(BATCH_BAD_LENGTH)},
        {"length -1", F(LENGTH, 4), -1, E(BATCH_BAD_LENGTH)},
        {"length INT32_MIN", F(LENGTH, 4), INT32_MIN, E(BATCH_BAD_LENGTH)},
        {"length one past the buffer", F(LENGTH, 4), blen + 1, E(BATCH_TRUNCATED)},
        {"length INT32_MAX", F(LENGTH, 4), INT32_MAX, E(MESSAGE_TOO_LARGE)},
        {"attributes bit 6", F(ATTRIBUTES, 2), 0x40, E(BATCH_BAD_ATTRIBUTES)},
        {"attributes bit 8", F(ATTRIBUTES, 2), 0x100, E(BATCH_BAD_ATTRIBUTES)},
        {"attributes bit 15", F(ATTRIBUTES, 2), 0x8000, E(BATCH_BAD_ATTRIBUTES)},
        {"codec 5", F(ATTRIBUTES, 2), 5, E(BATCH_BAD_ATTRIBUTES)},
        {"codec 6", F(ATTRIBUTES, 2), 6, E(BATCH_BAD_ATTRIBUTES)},
        {"codec 7", F(ATTRIBUTES, 2), 7, E(BATCH_BAD_ATTRIBUTES)},
        {"control, not transactional", F(ATTRIBUTES, 2), 0x20, E(BATCH_BAD_ATTRIBUTES)},
        {"transactional without producer", F(ATTRIBUTES, 2), 0x10, E(BATCH_BAD_PRODUCER)},
        {"last_offset_delta -1", F(LAST_OFFSET_DELTA, 4), -1, E(BATCH_BAD_COUNT)},
        {"last_offset_delta < count-1", F(LAST_OFFSET_DELTA, 4), 1, E(BATCH_BAD_COUNT)},
        {"last_offset_delta INT32_MIN", F(LAST_OFFSET_DELTA, 4), INT32_MIN, E(BATCH_BAD_COUNT)},
        {"records_count 0", F(RECORDS_COUNT, 4), 0, E(BATCH_BAD_COUNT)},
        {"records_count -1", F(RECORDS_COUNT, 4), -1, E(BATCH_BAD_COUNT)},
        {"records_count INT32_MIN", F(RECORDS_COUNT, 4), INT32_MIN, E(BATCH_BAD_COUNT)},
        {"records_count INT32_MAX", F(RECORDS_COUNT, 4), INT32_MAX, E(BATCH_BAD_COUNT)},
        {"base_timestamp -2", F(BASE_TIMESTAMP, 8), -2, E(BATCH_BAD_TIMESTAMP)},
        {"base_timestamp INT64_MIN", F(BASE_TIMESTAMP, 8), INT64_MIN, E(BATCH_BAD_TIMESTAMP)},
        {"base_timestamp after max", F(BASE_TIMESTAMP, 8), 1301, E(BATCH_BAD_TIMESTAMP)},
        {"base_timestamp -1, max set", F(BASE_TIMESTAMP, 8), -1, E(BATCH_BAD_TIMESTAMP)},
        {"max_timestamp -2", F(MAX_TIMESTAMP, 8), -2, E(BATCH_BAD_TIMESTAMP)},
        {"max_timestamp before base", F(MAX_TIMESTAMP, 8), 999, E(BATCH_BAD_TIMESTAMP)},
        {"max_timestamp -1, base set", F(MAX_TIMESTAMP, 8), -1, E(BATCH_BAD_TIMESTAMP)},
        {"producer_id -2", F(PRODUCER_ID, 8), -2, E(BATCH_BAD_PRODUCER)},
        {"producer_id set, epoch -1", F(PRODUCER_ID, 8), 5, E(BATCH_BAD_PRODUCER)},
        /* Without a producer id, epoch and sequence are not looked at (as
         * in Kafka): kafkajs's plain producer sends epoch 0, sequence 0. */
        {"producer_epoch 0 without id", F(PRODUCER_EPOCH, 2), 0, 0},
        {"base_sequence 0 without id", F(BASE_SEQUENCE, 4), 0, 0},
        {"producer_epoch -5 without id", F(PRODUCER_EPOCH, 2), -5, 0},
        /* The leader's fields carry no rule: any value checks. */
        {"base_offset INT64_MIN", F(BASE_OFFSET, 8), INT64_MIN, 0},
        {"leader_epoch INT32_MIN", F(LEADER_EPOCH, 4), INT32_MIN, 0},
    };
    run_cases(plain_batch, plain, sizeof(plain) / sizeof(plain[0]));

    const field_case idem[] = {
        {"producer_id INT64_MIN", F(PRODUCER_ID, 8), INT64_MIN, E(BATCH_BAD_PRODUCER)},
        {"producer_id -1 with epoch/seq", F(PRODUCER_ID, 8), -1, 0},
        {"producer_id -2", F(PRODUCER_ID, 8), -2, E(BATCH_BAD_PRODUCER)},
        {"producer_epoch -1", F(PRODUCER_EPOCH, 2), -1, E(BATCH_BAD_PRODUCER)},
        {"producer_epoch -5", F(PRODUCER_EPOCH, 2), -5, E(BATCH_BAD_PRODUCER)},
        {"base_sequence -1", F(BASE_SEQUENCE, 4), -1, E(BATCH_BAD_PRODUCER)},
        {"base_sequence INT32_MIN", F(BASE_SEQUENCE, 4), INT32_MIN, E(BATCH_BAD_PRODUCER)},
        {"transactional", F(ATTRIBUTES, 2), RN_BATCH_ATTR_TRANSACTIONAL, 0},
        {"base_sequence INT32_MAX", F(BASE_SEQUENCE, 4), INT32_MAX, 0},
    };
    run_cases(idempotent_batch, idem, sizeof(idem) / sizeof(idem[0]));
}

// records_count beyond what the bytes could hold (7 bytes a record) is
// BAD_COUNT for an uncompressed batch; zstd has no such bound in check, but
// verify finds the records missing.
Test(batch_check, records_count_bounded_by_bytes)
{
    size_t len;
    uint8_t *p = small_batch(RN_BATCH_CODEC_NONE, &len);
    int32_t fit = (int32_t)((len - RN_BATCH_HEADER_LEN) / 7);
    set_be32(p, RN_BATCH_OFF_RECORDS_COUNT, (uint32_t)fit + 1);
    set_be32(p, RN_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)fit);
    fix_crc(p, len);
    cr_assert_eq(rn_batch_check(p, len, 0, NULL), -RN_E_BATCH_BAD_COUNT);
    set_be32(p, RN_BATCH_OFF_RECORDS_COUNT, (uint32_t)fit);
    set_be32(p, RN_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)fit - 1);
    fix_crc(p, len);
    cr_assert_eq(rn_batch_check(p, len, 0, NULL), 0);
    cr_assert_eq(rn_batch_verify(p, len, 0, 0), -RN_E_BATCH_BAD_RECORD);
    free(p);

    p = small_batch(RN_BATCH_CODEC_ZSTD, &len);
    set_be32(p, RN_BATCH_OFF_RECORDS_COUNT, 1000);
    set_be32(p, RN_BATCH_OFF_LAST_OFFSET_DELTA, 999);
    fix_crc(p, len);
    cr_assert_eq(rn_batch_check(p, len, 0, NULL), 0);
    cr_assert_eq(rn_batch_verify(p, len, 0, 0), -RN_E_BATCH_BAD_RECORD);
    free(p);
}

// A wrong CRC, in the header or from a flipped bit anywhere it covers, is
// BAD_CRC; flips in the stamped fields are not the CRC's business.
Test(batch_check, wrong_crc)
{
    size_t len;
    uint8_t *orig = small_batch(RN_BATCH_CODEC_NONE, &len);
    uint8_t *p = dup_exact(orig, len);
    p[RN_BATCH_OFF_CRC + 3] ^= 1;
    cr_assert_eq(rn_batch_check(p, len, 0, NULL), -RN_E_BATCH_BAD_CRC);
    cr_assert_eq(rn_batch_verify(p, len, 0, 0), -RN_E_BATCH_BAD_CRC);
    free(p);
    for (size_t i = RN_BATCH_CRC_START; i < len; i++) {
        p = dup_exact(orig, len);
        p[i] ^= (uint8_t)(1u << (i % 8));
        cr_assert_eq(rn_batch_check(p, len, 0, NULL), -RN_E_BATCH_BAD_CRC, "byte %zu", i);
        free(p);
    }
    free(orig);
}

// peek needs only the 61 header bytes; max_len bounds the batch (0 = 2 GiB).
Test(batch_check, peek_and_max_len)
{
    size_t len;
    uint8_t *p = small_batch(RN_BATCH_CODEC_NONE, &len);
    uint8_t *head = dup_exact(p, RN_BATCH_HEADER_LEN);
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(head, RN_BATCH_HEADER_LEN, 0, &h), 0);
    cr_assert_eq(rn_batch_size(&h), len);
    cr_assert_eq(rn_batch_peek(head, RN_BATCH_HEADER_LEN, len, NULL), 0);
    cr_assert_eq(rn_batch_peek(head, RN_BATCH_HEADER_LEN, len - 1, NULL), -RN_E_MESSAGE_TOO_LARGE);
    cr_assert_eq(rn_batch_peek(head, RN_BATCH_HEADER_LEN - 1, 0, NULL), -RN_E_BATCH_TRUNCATED);
    cr_assert_eq(rn_batch_check(head, RN_BATCH_HEADER_LEN, 0, NULL), -RN_E_BATCH_TRUNCATED);
    cr_assert_eq(rn_batch_check(p, len, len, NULL), 0);
    cr_assert_eq(rn_batch_check(p, len, len - 1, NULL), -RN_E_MESSAGE_TOO_LARGE);
    cr_assert_eq(rn_batch_verify(p, len, 60, 0), -RN_E_MESSAGE_TOO_LARGE);
    /* Bytes after the batch are ignored. */
    uint8_t *longer = calloc(1, len + 100);
    memcpy(longer, p, len);
    cr_assert_eq(rn_batch_check(longer, len + 100, 0, NULL), 0);
    cr_assert_eq(rn_batch_verify(longer, len + 100, 0, 0), 0);
    free(longer);
    free(head);
    free(p);
}

/* ---- Truncation and corruption -------------------------------------------- */

static void truncate_everywhere(int codec)
{
    uint8_t *pool = random_pool(4096);
    rec_spec *s = random_specs(40, pool, 4096);
    size_t len;
    uint8_t *batch = build(codec, s, 40, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = dup_exact(batch, cut);
        int rc = rn_batch_check(p, cut, 0, NULL);
        cr_assert(rc == -RN_E_BATCH_TRUNCATED || (cut < 12 && rc == -RN_E_BATCH_BAD_LENGTH),
                  "cut at %zu: %s", cut, rn_errname(rc));
        cr_assert_eq(rn_batch_verify(p, cut, 0, 0), rc, "cut at %zu (verify)", cut);
        rn_batch_iter it;
        cr_assert_eq(rn_batch_iter_init(&it, p, cut, 0), rc, "cut at %zu (iter)", cut);
        free(p);
    }
    free(batch);
    free_specs(s, 40);
    free(pool);
}

// The batch cut at every length from 0 to size-1 is TRUNCATED, uncompressed.
Test(batch_check, truncated_at_every_length)
{
    truncate_everywhere(RN_BATCH_CODEC_NONE);
}

// The same for a zstd batch.
Test(batch_check, truncated_at_every_length_zstd)
{
    truncate_everywhere(RN_BATCH_CODEC_ZSTD);
}

// Every byte of the records area replaced by several values, CRC recomputed so
// that check passes: verify and the iterator either accept the batch or name a
// record error, and never read outside it (ASan).
Test(batch_check, records_corruption_caught_by_verify_only)
{
    uint8_t *pool = random_pool(2048);
    rec_spec *s = random_specs(12, pool, 2048);
    size_t len;
    uint8_t *batch = build(RN_BATCH_CODEC_NONE, s, 12, &len);
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    int caught = 0, tries = 0;
    for (size_t i = RN_BATCH_HEADER_LEN; i < len; i++) {
        for (size_t v = 0; v < sizeof(vals) + 2; v++) {
            uint8_t *p = dup_exact(batch, len);
            uint8_t nv = v < sizeof(vals) ? vals[v] : (uint8_t)rnd();
            if (nv == p[i])
                nv ^= 0x40;
            p[i] = nv;
            fix_crc(p, len);
            cr_assert_eq(rn_batch_check(p, len, 0, NULL), 0);
            int rc = rn_batch_verify(p, len, 0, 0);
            cr_assert(rc == 0 || is_record_error(rc), "byte %zu = %02x: %s", i, nv, rn_errname(rc));
            cr_assert_eq(walk_all(p, len), rc, "byte %zu: iterator and verify disagree", i);
            caught += rc != 0;
            tries++;
            free(p);
        }
    }
    cr_assert(caught > 0 && caught < tries, "%d of %d corruptions caught", caught, tries);
    free(batch);
    free_specs(s, 12);
    free(pool);
}

// Random multi-byte damage and a records area cut short at every point (with
// batch_length and CRC fixed up) are errors, never a crash or an overread.
Test(batch_check, records_area_damage_never_overreads)
{
    uint8_t *pool = random_pool(2048);
    rec_spec *s = random_specs(12, pool, 2048);
    size_t len;
    uint8_t *batch = build(RN_BATCH_CODEC_NONE, s, 12, &len);
    for (int round = 0; round < 3000; round++) {
        uint8_t *p = dup_exact(batch, len);
        int n = 1 + (int)(rnd() % 8);
        for (int k = 0; k < n; k++)
            p[RN_BATCH_HEADER_LEN + rnd() % (len - RN_BATCH_HEADER_LEN)] = (uint8_t)rnd();
        fix_crc(p, len);
        int rc = rn_batch_verify(p, len, 0, 0);
        cr_assert(rc == 0 || is_record_error(rc), "%s", rn_errname(rc));
        walk_all(p, len);
        free(p);
    }
    for (size_t cut = RN_BATCH_HEADER_LEN; cut < len; cut++) {
        uint8_t *p = dup_exact(batch, cut);
        set_be32(p, RN_BATCH_OFF_LENGTH, (uint32_t)(cut - RN_BATCH_LOG_OVERHEAD));
        fix_crc(p, cut);
        int rc = rn_batch_verify(p, cut, 0, 0);
        cr_assert(rc == -RN_E_BATCH_BAD_COUNT || is_record_error(rc), "cut %zu: %s", cut,
                  rn_errname(rc));
        walk_all(p, cut);
        free(p);
    }
    free(batch);
    free_specs(s, 12);
    free(pool);
}

// The same damage inside a zstd frame is BAD_COMPRESSION or a record error.
Test(batch_check, zstd_frame_damage_never_overreads)
{
    uint8_t *pool = random_pool(2048);
    rec_spec *s = random_specs(30, pool, 2048);
    size_t len;
    uint8_t *batch = build(RN_BATCH_CODEC_ZSTD, s, 30, &len);
    for (size_t i = RN_BATCH_HEADER_LEN; i < len; i++) {
        for (int v = 0; v < 4; v++) {
            uint8_t *p = dup_exact(batch, len);
            p[i] ^= (uint8_t)(1 + rnd() % 255);
            fix_crc(p, len);
            cr_assert_eq(rn_batch_check(p, len, 0, NULL), 0);
            int rc = rn_batch_verify(p, len, 0, 0);
            cr_assert(rc == 0 || rc == -RN_E_BATCH_BAD_COMPRESSION || is_record_error(rc),
                      "byte %zu: %s", i, rn_errname(rc));
            walk_all(p, len);
            free(p);
        }
    }
    free(batch);
    free_specs(s, 30);
    free(pool);
}
