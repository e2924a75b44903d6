/*
 * test_batch_codec.c — the record batch codec (protocol/batch.c) writing and
 * reading Kafka RecordBatch v2 byte for byte: CRC-32C, golden bytes a Kafka
 * broker stored and hand-computed ones, round trips of every kind of record
 * (both codecs, large values, headers, no timestamps, LogAppendTime,
 * control batches), and the builder's arguments and reuse. Helpers:
 * batch_helpers.h.
 */
#include "batch_helpers.h"

/* ---- CRC ------------------------------------------------------------------ */

// rn_crc32c gives the standard CRC-32C check value and agrees with a bitwise
// reference on every length and alignment.
Test(batch_codec, crc32c_matches_reference)
{
    cr_assert_eq(rn_crc32c("123456789", 9), 0xE3069283u);
    cr_assert_eq(rn_crc32c("", 0), 0u);
    uint8_t *pool = random_pool(4096);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len < 600; len += 1 + len / 16)
            cr_assert_eq(rn_crc32c(pool + off, len), ref_crc32c(pool + off, len), "off %zu len %zu",
                         off, len);
    cr_assert_eq(rn_crc32c(pool, 4096), ref_crc32c(pool, 4096));
    free(pool);
}

/* ---- Golden bytes --------------------------------------------------------- */

/* Two batches as a Kafka 0.11 broker stored them (published in kafka-python's
 * tests): base_offset 0 / epoch 1, one record, null key, value "123"; and
 * base_offset 1 / epoch 2, two records with empty values, timestamps 168 ms apart. */
static const uint8_t kafka_batch1[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x00, 0x00, 0x00,
    0x01, 0x02, 0x03, 0x18, 0xa2, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x5d, 0xff, 0x7b, 0x06, 0x3c, 0x00, 0x00, 0x01, 0x5d, 0xff, 0x7b, 0x06, 0x3c, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
    0x01, 0x12, 0x00, 0x00, 0x00, 0x01, 0x06, 0x31, 0x32, 0x33, 0x00};
static const uint8_t kafka_batch2[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x02,
    0x02, 0xc8, 0x5c, 0xbd, 0x23, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x5d, 0xff,
    0x7c, 0xdd, 0x6c, 0x00, 0x00, 0x01, 0x5d, 0xff, 0x7c, 0xde, 0x14, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x0c, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x0e, 0x00, 0xd0, 0x02, 0x02, 0x01, 0x00, 0x00};

// Batches written by a real Kafka broker pass check and verify and decode to
// the records Kafka put in them.
Test(batch_codec, decodes_kafka_broker_bytes)
{
    rn_batch_header h;
    cr_assert_eq(rn_batch_check(kafka_batch1, sizeof(kafka_batch1), 0, &h), 0);
    cr_assert_eq(h.base_offset, 0);
    cr_assert_eq(h.batch_length, 59);
    cr_assert_eq(h.partition_leader_epoch, 1);
    cr_assert_eq(h.crc, 51946096u);
    cr_assert_eq(h.base_timestamp, 1503229838908);
    cr_assert_eq(h.max_timestamp, 1503229838908);
    cr_assert_eq(h.producer_id, -1);
    cr_assert_eq(h.producer_epoch, -1);
    cr_assert_eq(h.base_sequence, -1);
    cr_assert_eq(h.records_count, 1);

    rec_spec s1 = {1503229838908, NULL, 0, (const uint8_t *)"123", 3, NULL, 0};
    expect_batch(kafka_batch1, sizeof(kafka_batch1), &s1, 1, 0);
    rec_spec s2[] = {{1503229959532, NULL, 0, (const uint8_t *)"", 0, NULL, 0},
                     {1503229959532 + 168, NULL, 0, (const uint8_t *)"", 0, NULL, 0}};
    expect_batch(kafka_batch2, sizeof(kafka_batch2), s2, 2, 1);
}

// The builder, given the same records, writes exactly the bytes Kafka wrote
// (after the leader's stamp), CRC included.
Test(batch_codec, builder_reproduces_kafka_bytes)
{
    size_t len;
    rec_spec s1 = {1503229838908, NULL, 0, (const uint8_t *)"123", 3, NULL, 0};
    uint8_t *b1 = build(RN_BATCH_CODEC_NONE, &s1, 1, &len);
    rn_batch_stamp(b1, 0, 1);
    cr_assert_eq(len, sizeof(kafka_batch1));
    cr_assert_arr_eq(b1, kafka_batch1, len);
    free(b1);

    rec_spec s2[] = {{1503229959532, NULL, 0, (const uint8_t *)"", 0, NULL, 0},
                     {1503229959532 + 168, NULL, 0, (const uint8_t *)"", 0, NULL, 0}};
    uint8_t *b2 = build(RN_BATCH_CODEC_NONE, s2, 2, &len);
    rn_batch_stamp(b2, 1, 2);
    cr_assert_eq(len, sizeof(kafka_batch2));
    cr_assert_arr_eq(b2, kafka_batch2, len);
    free(b2);
}

// A hand-computed batch: idempotent producer, keys, null and empty fields,
// headers, a negative and a two-byte timestamp delta, a two-byte length.
Test(batch_codec, golden_hand_computed)
{
    static const uint8_t want_head[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* base_offset 0 */
        0x00, 0x00, 0x00, 0x96,                         /* batch_length 150 = 162 - 12 */
        0xff, 0xff, 0xff, 0xff,                         /* partition_leader_epoch -1 */
        0x02,                                           /* magic */
        0xff, 0xc8, 0xef, 0xb7,                         /* crc over bytes 21..161 */
        0x00, 0x00,                                     /* attributes: no codec, CreateTime */
        0x00, 0x00, 0x00, 0x02,                         /* last_offset_delta */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, /* base_timestamp 1000 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x14, /* max_timestamp 1300 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, /* producer_id 7 */
        0x00, 0x01,                                     /* producer_epoch 1 */
        0x00, 0x00, 0x00, 0x2a,                         /* base_sequence 42 */
        0x00, 0x00, 0x00, 0x03,                         /* records_count 3 */
        /* record 0: body 16 bytes -> zigzag 32 */
        0x20, 0x00,                    /* length, attributes */
        0x00, 0x00,                    /* timestamp_delta 0, offset_delta 0 */
        0x02, 'k',                     /* key_len 1 */
        0x0a, 'h', 'e', 'l', 'l', 'o', /* value_len 5 */
        0x02,                          /* 1 header */
        0x02, 'h', 0x02, 'v',          /* name_len 1, value_len 1 */
        /* record 1: body 10 bytes -> zigzag 20 */
        0x14, 0x00, /* length, attributes */
        0xd8, 0x04, /* timestamp_delta 300: zigzag 600 = 0x258 */
        0x02,       /* offset_delta 1 */
        0x01, 0x01, /* null key, null value */
        0x02,       /* 1 header */
        0x02, 'n',  /* name_len 1 */
        0x01,       /* null header value */
        /* record 2: body 71 bytes -> zigzag 142 = 0x8e 0x01 */
        0x8e, 0x01, 0x00, /* length, attributes */
        0x01,             /* timestamp_delta -1 */
        0x04,             /* offset_delta 2 */
        0x00,             /* key_len 0: empty, not null */
        0x80, 0x01,       /* value_len 64: zigzag 128 */
    };
    rn_record_header h0 = {(const uint8_t *)"h", 1, (const uint8_t *)"v", 1};
    rn_record_header h1 = {(const uint8_t *)"n", 1, NULL, -1};
    uint8_t v64[64];
    memset(v64, 0xab, sizeof(v64));

    rn_batch_builder_opts o = {
        .codec = RN_BATCH_CODEC_NONE, .producer_id = 7, .producer_epoch = 1, .base_sequence = 42};
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
    cr_assert_eq(rn_batch_builder_size(b), RN_BATCH_HEADER_LEN);
    cr_assert_eq(rn_batch_builder_add(b, 1000, "k", 1, "hello", 5, &h0, 1), 0);
    cr_assert_eq(rn_batch_builder_size(b), RN_BATCH_HEADER_LEN + 17);
    cr_assert_eq(rn_batch_builder_add(b, 1300, NULL, 0, NULL, 0, &h1, 1), 0);
    cr_assert_eq(rn_batch_builder_add(b, 999, "", 0, v64, 64, NULL, 0), 0);
    cr_assert_eq(rn_batch_builder_size(b), 162);
    uint8_t *out;
    size_t len;
    cr_assert_eq(rn_batch_builder_finish(b, &out, &len), 0);
    rn_batch_builder_free(b);

    cr_assert_eq(len, 162);
    cr_assert_arr_eq(out, want_head, sizeof(want_head));
    for (size_t i = sizeof(want_head); i < sizeof(want_head) + 64; i++)
        cr_assert_eq(out[i], 0xab);
    cr_assert_eq(out[161], 0x00, "record 2: no headers");
    cr_assert_eq(get_be32(out, RN_BATCH_OFF_CRC), ref_crc32c(out + 21, len - 21));
    cr_assert_eq(rn_batch_verify(out, len, 0, 0), 0);
    free(out);
}

/* ---- Round trips ---------------------------------------------------------- */

static void roundtrip_random(int codec, size_t n)
{
    uint8_t *pool = random_pool(8192);
    rec_spec *s = random_specs(n, pool, 8192);
    size_t len;
    uint8_t *batch = build(codec, s, n, &len);
    rn_batch_header h;
    cr_assert_eq(rn_batch_check(batch, len, 0, &h), 0);
    cr_assert_eq(h.attributes & RN_BATCH_CODEC_MASK, codec);
    cr_assert_eq(h.base_offset, 0);
    cr_assert_eq(h.partition_leader_epoch, -1);
    expect_batch(batch, len, s, n, 0);
    free(batch);
    free_specs(s, n);
    free(pool);
}

// Thousands of random records (null/empty/binary keys, values and headers)
// come back exactly, uncompressed.
Test(batch_codec, roundtrip_many_records)
{
    roundtrip_random(RN_BATCH_CODEC_NONE, 1);
    roundtrip_random(RN_BATCH_CODEC_NONE, 5000);
}

// The same through zstd.
Test(batch_codec, roundtrip_many_records_zstd)
{
    roundtrip_random(RN_BATCH_CODEC_ZSTD, 1);
    roundtrip_random(RN_BATCH_CODEC_ZSTD, 5000);
}

// A 1 MiB value, a 100 KiB header value and 200 headers survive both codecs.
Test(batch_codec, roundtrip_large_value_and_headers)
{
    size_t big = 1 << 20;
    uint8_t *value = random_pool(big);
    uint8_t *hv = random_pool(100 << 10);
    rn_record_header many[200];
    char names[200][8];
    for (int i = 0; i < 200; i++) {
        snprintf(names[i], sizeof(names[i]), "h%d", i);
        many[i] = (rn_record_header){(const uint8_t *)names[i], (int32_t)strlen(names[i]),
                                     i % 3 ? hv + i : NULL, i % 3 ? i : -1};
    }
    rn_record_header large = {(const uint8_t *)"blob", 4, hv, 100 << 10};
    rec_spec s[] = {
        {5, (const uint8_t *)"big", 3, value, big, NULL, 0},
        {6, NULL, 0, NULL, 0, &large, 1},
        {7, (const uint8_t *)"many", 4, (const uint8_t *)"x", 1, many, 200},
    };
    for (int codec = 0; codec <= RN_BATCH_CODEC_ZSTD; codec += RN_BATCH_CODEC_ZSTD) {
        size_t len;
        uint8_t *batch = build(codec, s, 3, &len);
        expect_batch(batch, len, s, 3, 0);
        free(batch);
    }
    free(value);
    free(hv);
}

// UTF-8 text and binary bytes with NULs are carried verbatim.
Test(batch_codec, roundtrip_utf8_and_nul_bytes)
{
    static const uint8_t bin[] = {0x00, 0xff, 0x00, 0x80, 0x7f, 0x00, 0x01};
    const char *utf8 = "clé → 値 🚀";
    rn_record_header h = {bin, sizeof(bin), (const uint8_t *)utf8, (int32_t)strlen(utf8)};
    rec_spec s[] = {
        {1, (const uint8_t *)utf8, strlen(utf8), bin, sizeof(bin), &h, 1},
        {2, bin, sizeof(bin), (const uint8_t *)"\0\0\0", 3, NULL, 0},
    };
    for (int codec = 0; codec <= RN_BATCH_CODEC_ZSTD; codec += RN_BATCH_CODEC_ZSTD) {
        size_t len;
        uint8_t *batch = build(codec, s, 2, &len);
        expect_batch(batch, len, s, 2, 0);
        free(batch);
    }
}

// A batch whose records carry no timestamp (-1) keeps -1 everywhere.
Test(batch_codec, no_timestamps)
{
    rec_spec s[] = {{-1, NULL, 0, (const uint8_t *)"a", 1, NULL, 0},
                    {-1, NULL, 0, (const uint8_t *)"b", 1, NULL, 0}};
    size_t len;
    uint8_t *batch = build(RN_BATCH_CODEC_NONE, s, 2, &len);
    rn_batch_header h;
    cr_assert_eq(rn_batch_check(batch, len, 0, &h), 0);
    cr_assert_eq(h.base_timestamp, -1);
    cr_assert_eq(h.max_timestamp, -1);
    expect_batch(batch, len, s, 2, 0);
    free(batch);
}

// rn_batch_stamp writes base_offset and leader epoch and the CRC stays valid;
// records then carry the stamped offsets.
Test(batch_codec, stamp_keeps_crc_valid)
{
    size_t len;
    uint8_t *batch = small_batch(RN_BATCH_CODEC_NONE, &len);
    uint32_t crc = get_be32(batch, RN_BATCH_OFF_CRC);
    rn_batch_stamp(batch, 1234567890123, 77);
    rn_batch_header h;
    cr_assert_eq(rn_batch_check(batch, len, 0, &h), 0);
    cr_assert_eq(h.base_offset, 1234567890123);
    cr_assert_eq(h.partition_leader_epoch, 77);
    cr_assert_eq(h.crc, crc);
    cr_assert_eq(rn_batch_verify(batch, len, 0, 0), 0);
    rn_batch_iter it;
    rn_record r;
    cr_assert_eq(rn_batch_iter_init(&it, batch, len, 0), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rn_batch_iter_next(&it, &r), 1);
        cr_assert_eq(r.offset, 1234567890123 + i);
    }
    rn_batch_iter_fini(&it);
    free(batch);
}

// With LogAppendTime every record reads the broker's max_timestamp.
Test(batch_codec, log_append_time_overrides_record_timestamps)
{
    size_t len;
    uint8_t *batch = small_batch(RN_BATCH_CODEC_NONE, &len);
    set_be16(batch, RN_BATCH_OFF_ATTRIBUTES, RN_BATCH_ATTR_LOG_APPEND_TIME);
    set_be64(batch, RN_BATCH_OFF_MAX_TIMESTAMP, 500); /* before base: allowed */
    fix_crc(batch, len);
    cr_assert_eq(rn_batch_verify(batch, len, 0, 0), 0);
    rn_batch_iter it;
    rn_record r;
    cr_assert_eq(rn_batch_iter_init(&it, batch, len, 0), 0);
    while (rn_batch_iter_next(&it, &r) == 1)
        cr_assert_eq(r.timestamp, 500);
    rn_batch_iter_fini(&it);
    free(batch);
}

// A transaction marker (control + transactional, producer set, no sequence)
// is accepted; the same without the transactional bit is not.
Test(batch_codec, control_batches)
{
    size_t len;
    uint8_t *batch = small_batch(RN_BATCH_CODEC_NONE, &len);
    set_be16(batch, RN_BATCH_OFF_ATTRIBUTES, RN_BATCH_ATTR_CONTROL | RN_BATCH_ATTR_TRANSACTIONAL);
    set_be64(batch, RN_BATCH_OFF_PRODUCER_ID, 9);
    set_be16(batch, RN_BATCH_OFF_PRODUCER_EPOCH, 3);
    set_be32(batch, RN_BATCH_OFF_BASE_SEQUENCE, UINT32_MAX);
    fix_crc(batch, len);
    cr_assert_eq(rn_batch_check(batch, len, 0, NULL), 0);
    set_be16(batch, RN_BATCH_OFF_ATTRIBUTES, RN_BATCH_ATTR_TRANSACTIONAL);
    fix_crc(batch, len);
    cr_assert_eq(rn_batch_check(batch, len, 0, NULL), -RN_E_BATCH_BAD_PRODUCER,
                 "a data batch needs a sequence");
    free(batch);
}

/* ---- Builder -------------------------------------------------------------- */

// Builder options and arguments out of range are -EINVAL and leave the
// builder as it was; a batch past 2 GiB is MESSAGE_TOO_LARGE.
Test(batch_codec, builder_rejects_bad_arguments)
{
    rn_batch_builder *b;
    rn_batch_builder_opts o = {
        .codec = 5, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    cr_assert_eq(rn_batch_builder_new(&b, &o), -EINVAL);
    o.codec = -1;
    cr_assert_eq(rn_batch_builder_new(&b, &o), -EINVAL);
    o.codec = RN_BATCH_CODEC_ZSTD;
    o.zstd_level = 1000;
    cr_assert_eq(rn_batch_builder_new(&b, &o), -EINVAL);
    o.zstd_level = 0;
    o.producer_epoch = 0;
    cr_assert_eq(rn_batch_builder_new(&b, &o), -EINVAL);
    o = (rn_batch_builder_opts){
        .codec = 0, .producer_id = 5, .producer_epoch = 0, .base_sequence = -1};
    cr_assert_eq(rn_batch_builder_new(&b, &o), -EINVAL);

    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    uint8_t *out;
    size_t len;
    cr_assert_eq(rn_batch_builder_finish(b, &out, &len), -EINVAL, "no records");
    uint8_t x = 0;
    cr_assert_eq(rn_batch_builder_add(b, 1, &x, (size_t)-1, NULL, 0, NULL, 0), -EINVAL);
    cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, &x, (size_t)INT32_MAX + 1, NULL, 0), -EINVAL);
    cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, NULL, 0, NULL, 1), -EINVAL);
    cr_assert_eq(rn_batch_builder_add(b, -2, NULL, 0, NULL, 0, NULL, 0), -EINVAL);
    rn_record_header bad[] = {{(const uint8_t *)"n", -1, NULL, -1},
                              {NULL, 3, NULL, -1},
                              {(const uint8_t *)"n", 1, &x, -2}};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, NULL, 0, &bad[i], 1), -EINVAL, "hdr %d",
                     i);
    /* Two headers of 1.5 GiB each: refused from their lengths alone (never read). */
    rn_record_header huge[] = {{(const uint8_t *)"a", 1, &x, 3 << 29},
                               {(const uint8_t *)"b", 1, &x, 3 << 29}};
    cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, NULL, 0, huge, 2), -RN_E_MESSAGE_TOO_LARGE);
    cr_assert_eq(rn_batch_builder_count(b), 0);
    cr_assert_eq(rn_batch_builder_size(b), RN_BATCH_HEADER_LEN);

    /* Timestamps: all or none. */
    cr_assert_eq(rn_batch_builder_add(b, 10, NULL, 0, NULL, 0, NULL, 0), 0);
    cr_assert_eq(rn_batch_builder_add(b, -1, NULL, 0, NULL, 0, NULL, 0), -EINVAL);
    cr_assert_eq(rn_batch_builder_count(b), 1);
    rn_batch_builder_free(b);

    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    cr_assert_eq(rn_batch_builder_add(b, -1, NULL, 0, NULL, 0, NULL, 0), 0);
    cr_assert_eq(rn_batch_builder_add(b, 10, NULL, 0, NULL, 0, NULL, 0), -EINVAL);
    rn_batch_builder_free(b);
    rn_batch_builder_free(NULL);
}

// A builder is reused after finish and after reset, and each batch holds only
// its own records.
Test(batch_codec, builder_reuse_and_reset)
{
    for (int codec = 0; codec <= RN_BATCH_CODEC_ZSTD; codec += RN_BATCH_CODEC_ZSTD) {
        rn_batch_builder_opts o = {.codec = codec,
                                   .zstd_level = 19,
                                   .producer_id = 3,
                                   .producer_epoch = 0,
                                   .base_sequence = 0};
        rn_batch_builder *b;
        cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 100; i++)
                cr_assert_eq(rn_batch_builder_add(b, 50, "drop", 4, "me", 2, NULL, 0), 0);
            rn_batch_builder_reset(b);
            cr_assert_eq(rn_batch_builder_count(b), 0);
            cr_assert_eq(rn_batch_builder_size(b), RN_BATCH_HEADER_LEN);
            int n = 10 + round * 1000;
            rec_spec *s = calloc((size_t)n, sizeof(*s));
            for (int i = 0; i < n; i++) {
                s[i] = (rec_spec){100 + i, (const uint8_t *)"key",
                                  3,       (const uint8_t *)"value-value-value",
                                  17,      NULL,
                                  0};
                cr_assert_eq(rn_batch_builder_add(b, s[i].ts, s[i].key, 3, s[i].value, 17, NULL, 0),
                             0);
            }
            uint8_t *out;
            size_t len;
            cr_assert_eq(rn_batch_builder_finish(b, &out, &len), 0);
            rn_batch_header h;
            cr_assert_eq(rn_batch_check(out, len, 0, &h), 0);
            cr_assert_eq(h.producer_id, 3);
            cr_assert_eq(h.base_sequence, 0);
            cr_assert_eq(h.attributes, codec);
            cr_assert_eq(rn_batch_size(&h), len);
            expect_batch(out, len, s, (size_t)n, 0);
            free(out);
            free(s);
        }
        rn_batch_builder_free(b);
    }
}

/* n records "v<i>" padded to vlen bytes into b, finished reusably; checks the
 * batch verifies and holds them. */
static uint8_t *build_reusable(rn_batch_builder *b, int n, size_t vlen, size_t *len, size_t *cap)
{
    char *v = malloc(vlen);
    cr_assert_not_null(v);
    for (int i = 0; i < n; i++) {
        memset(v, 'a' + i % 26, vlen);
        cr_assert_eq(rn_batch_builder_add(b, 1000 + i, NULL, 0, v, vlen, NULL, 0), 0);
    }
    free(v);
    uint8_t *out = NULL;
    cr_assert_eq(rn_batch_builder_finish_reusable(b, &out, len, cap), 0);
    cr_assert_geq(*cap, *len);
    cr_assert_eq(rn_batch_verify(out, *len, 0, 0), 0);
    rn_batch_header h;
    cr_assert_eq(rn_batch_check(out, *len, 0, &h), 0);
    cr_assert_eq(h.records_count, n);
    return out;
}

// A batch buffer given back (rn_batch_builder_recycle) is where the builder
// builds the next batch, plain or compressed: the producer does not allocate
// a buffer per batch; the batches still verify.
Test(batch_codec, builder_reuses_a_recycled_buffer)
{
    int codecs[] = {RN_BATCH_CODEC_NONE, RN_BATCH_CODEC_ZSTD};
    for (size_t c = 0; c < sizeof(codecs) / sizeof(*codecs); c++) {
        rn_batch_builder_opts o = {
            .codec = codecs[c], .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
        rn_batch_builder *b;
        cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
        size_t len, cap;
        uint8_t *first = build_reusable(b, 50, 100, &len, &cap);
        for (int round = 0; round < 5; round++) {
            rn_batch_builder_recycle(b, first, cap);
            uint8_t *next = build_reusable(b, 50, 100, &len, &cap);
            cr_assert_eq(next, first, "codec %d round %d: a new buffer, not the recycled one",
                         codecs[c], round);
            first = next;
        }
        /* A batch bigger than the spare gets its own buffer; the builder
         * keeps the larger of two given back and frees the other. */
        rn_batch_builder_recycle(b, first, cap);
        size_t big_len, big_cap;
        uint8_t *big = build_reusable(b, 5000, 100, &big_len, &big_cap);
        uint8_t *other = malloc(16);
        cr_assert_not_null(other);
        rn_batch_builder_recycle(b, other, 16);
        rn_batch_builder_recycle(b, big, big_cap);
        rn_batch_builder_recycle(b, NULL, 0);
        uint8_t *again = build_reusable(b, 5000, 100, &len, &cap);
        cr_assert(again == big || big_cap < len, "the larger spare was not kept");
        free(again);
        rn_batch_builder_free(b); /* frees a spare it still holds */
    }
}
