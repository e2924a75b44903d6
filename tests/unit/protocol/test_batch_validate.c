/*
 * test_batch_validate.c — rn_batch_validate, the broker's check of a
 * produced batch (protocol/batch.c): builder batches pass; each malformed
 * record, timestamp and header problem is refused with its code and a
 * sentence naming the record and the field; zstd bombs and corrupt frames
 * are refused. The streamed walk of compressed batches and its memory bound:
 * test_batch_validate_stream.c. Helpers: batch_helpers.h.
 */
#include "batch_helpers.h"

/* ---- rn_batch_validate: the broker's check of a produced batch ------------ */

/* Validate records (one batch of count records, last_offset_delta last, base
 * and max timestamp 1000) and return the code; the reason goes to why. */
static int validate_records(const void *records, size_t rlen, int32_t count, int32_t last,
                            char *why, size_t why_len)
{
    size_t len;
    uint8_t *p = make_batch(records, rlen, 0, count, last, &len);
    uint8_t *q = dup_exact(p, len);
    free(p);
    int rc = rn_batch_validate(q, len, 0, 0, NULL, why, why_len);
    /* The reason is written exactly when there is an error. */
    cr_assert_eq(rc != 0, why[0] != '\0', "rc %s, why \"%s\"", rn_errname(rc), why);
    free(q);
    return rc;
}

// Every batch the builder makes (both codecs, random records, timestamps that
// go backwards) passes validation and gives its header back.
Test(batch_validate, validate_accepts_builder_batches)
{
    uint8_t *pool = random_pool(4096);
    rec_spec *s = random_specs(300, pool, 4096);
    int codecs[] = {RN_BATCH_CODEC_NONE, RN_BATCH_CODEC_ZSTD};
    for (size_t c = 0; c < 2; c++) {
        size_t len;
        uint8_t *b = build(codecs[c], s, 300, &len);
        uint8_t *p = dup_exact(b, len);
        rn_batch_header h;
        char why[200] = "untouched";
        cr_assert_eq(rn_batch_validate(p, len, 0, 0, &h, why, sizeof(why)), 0, "%s", why);
        cr_assert_str_empty(why);
        cr_assert_eq(h.records_count, 300);
        cr_assert_eq(rn_batch_validate(p, len, len, 0, NULL, NULL, 0), 0);
        free(p);
        free(b);
    }
    /* A batch without timestamps. */
    rec_spec none[] = {{-1, NULL, 0, (const uint8_t *)"a", 1, NULL, 0},
                       {-1, NULL, 0, (const uint8_t *)"b", 1, NULL, 0}};
    size_t len;
    uint8_t *b = build(RN_BATCH_CODEC_NONE, none, 2, &len);
    cr_assert_eq(rn_batch_validate(b, len, 0, 0, NULL, NULL, 0), 0);
    free(b);
    free_specs(s, 300);
    free(pool);
}

// Each malformed record is refused with its code and a sentence naming the
// record's index and the field: truncated varints, negative lengths, counts
// that do not match, offset deltas out of order, bytes left over.
Test(batch_validate, validate_names_record_and_field)
{
    static const uint8_t ok[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    struct {
        const char *what;
        uint8_t bytes[24];
        size_t len;
        int32_t count, last;
        int want;
        const char *says;
    } cases[] = {
        {"length -1",
         {0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00},
         7,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "record 0 of 1 (counted from 0): length -1 is below"},
        {"length varint cut",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
         14,
         2,
         1,
         E(BATCH_BAD_VARINT),
         "record 1 of 2 (counted from 0): length varint"},
        {"key_len -2",
         {0x0c, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00},
         7,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "key length -2 is negative"},
        {"value past the record",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x06, 0x00},
         7,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "value of 3 bytes runs past"},
        {"timestamp varint cut by the record",
         {0x0c, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80},
         7,
         1,
         0,
         E(BATCH_BAD_VARINT),
         "record 0 of 1 (counted from 0): timestamp_delta varint"},
        {"offset_delta varint overlong",
         {0x12, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x00},
         11,
         1,
         0,
         E(BATCH_BAD_VARINT),
         "offset_delta varint"},
        {"header_count -1",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01},
         7,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "header count -1 is negative"},
        {"header name null",
         {0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01},
         9,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "header 0 name is null"},
        {"count 2, one record (with a 7-byte value)",
         {0x1a, 0x00, 0x00, 0x00, 0x01, 0x0e, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 0x00},
         14,
         2,
         1,
         E(BATCH_BAD_RECORD),
         "record 1 of 2 (counted from 0): missing"},
        {"count 1, two records",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00},
         14,
         1,
         0,
         E(BATCH_TRAILING_BYTES),
         "records: 7 bytes after the last of 1 records"},
        {"offset deltas 0, 0",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00},
         14,
         2,
         1,
         E(BATCH_BAD_OFFSET_DELTA),
         "record 1 of 2 (counted from 0): offset_delta 0 does not follow 0"},
        {"offset delta past last_offset_delta",
         {0x0c, 0x00, 0x00, 0x04, 0x01, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00},
         14,
         2,
         2,
         E(BATCH_BAD_OFFSET_DELTA),
         "record 1 of 2 (counted from 0): offset_delta 3 is past last_offset_delta 2"},
        {"last delta short of last_offset_delta",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0c, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00},
         14,
         2,
         2,
         E(BATCH_BAD_OFFSET_DELTA),
         "the last record's offset_delta 1 is not last_offset_delta 2"},
        {"byte left in the record",
         {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00},
         8,
         1,
         0,
         E(BATCH_BAD_RECORD),
         "1 bytes left inside the record"},
        {"trailing garbage",
         {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0xde, 0xad},
         9,
         1,
         0,
         E(BATCH_TRAILING_BYTES),
         "2 bytes after the last of 1 records"},
        {"timestamp after max_timestamp",
         {0x0c, 0x00, 0x02, 0x00, 0x01, 0x01, 0x00},
         7,
         1,
         0,
         E(BATCH_BAD_TIMESTAMP),
         "timestamp 1001 is outside [0, max_timestamp 1000]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256] = "";
        int rc = validate_records(cases[i].bytes, cases[i].len, cases[i].count, cases[i].last, why,
                                  sizeof(why));
        cr_assert_eq(rc, cases[i].want, "%s: got %s, want %s (%s)", cases[i].what, rn_errname(rc),
                     rn_errname(cases[i].want), why);
        cr_assert(strstr(why, cases[i].says), "%s: \"%s\" does not say \"%s\"", cases[i].what, why,
                  cases[i].says);
    }
    char why[256] = "";
    cr_assert_eq(validate_records(ok, sizeof(ok), 1, 0, why, sizeof(why)), 0, "%s", why);
}

// Timestamps must agree with the header: a record's delta in a batch without
// timestamps, a record before 0 or after max_timestamp, and a max_timestamp
// no record has are BAD_TIMESTAMP; rn_batch_verify (the reader's check)
// leaves them alone.
Test(batch_validate, validate_timestamps)
{
    rec_spec s[] = {{1000, NULL, 0, (const uint8_t *)"a", 1, NULL, 0},
                    {1500, NULL, 0, (const uint8_t *)"b", 1, NULL, 0}};
    size_t len;
    uint8_t *b = build(RN_BATCH_CODEC_NONE, s, 2, &len);
    char why[256];
    /* max_timestamp 2000: no record has it. */
    set_be64(b, RN_BATCH_OFF_MAX_TIMESTAMP, 2000);
    fix_crc(b, len);
    cr_assert_eq(rn_batch_verify(b, len, 0, 0), 0);
    cr_assert_eq(rn_batch_validate(b, len, 0, 0, NULL, why, sizeof(why)), E(BATCH_BAD_TIMESTAMP));
    cr_assert(strstr(why, "max_timestamp 2000 but the latest record's timestamp is 1500"), "%s",
              why);
    /* max_timestamp 1200: the second record is after it. */
    set_be64(b, RN_BATCH_OFF_MAX_TIMESTAMP, 1200);
    fix_crc(b, len);
    cr_assert_eq(rn_batch_validate(b, len, 0, 0, NULL, why, sizeof(why)), E(BATCH_BAD_TIMESTAMP));
    cr_assert(strstr(why, "record 1 of 2 (counted from 0): timestamp 1500 is outside"), "%s", why);
    /* No timestamps in the header, deltas in the records. */
    set_be64(b, RN_BATCH_OFF_BASE_TIMESTAMP, UINT64_MAX);
    set_be64(b, RN_BATCH_OFF_MAX_TIMESTAMP, UINT64_MAX);
    fix_crc(b, len);
    cr_assert_eq(rn_batch_validate(b, len, 0, 0, NULL, why, sizeof(why)), E(BATCH_BAD_TIMESTAMP));
    cr_assert(strstr(why, "record 1 of 2 (counted from 0): timestamp 499 in a batch without"), "%s",
              why);
    /* With LogAppendTime the broker's clock rules: deltas do not matter. */
    set_be16(b, RN_BATCH_OFF_ATTRIBUTES, RN_BATCH_ATTR_LOG_APPEND_TIME);
    set_be64(b, RN_BATCH_OFF_MAX_TIMESTAMP, 5000);
    fix_crc(b, len);
    cr_assert_eq(rn_batch_validate(b, len, 0, 0, NULL, why, sizeof(why)), 0, "%s", why);
    free(b);
}

// Header problems get a sentence too, and the batch must be exactly the bytes
// sent for it: a byte more, a byte less, over max_len, a bad CRC.
Test(batch_validate, validate_header_and_length)
{
    size_t len;
    uint8_t *b = small_batch(RN_BATCH_CODEC_NONE, &len);
    char why[256];
    uint8_t *more = calloc(1, len + 1);
    memcpy(more, b, len);
    cr_assert_eq(rn_batch_validate(more, len + 1, 0, 0, NULL, why, sizeof(why)),
                 E(BATCH_BAD_LENGTH));
    cr_assert(strstr(why, "were sent for it"), "%s", why);
    free(more);
    cr_assert_eq(rn_batch_validate(b, len - 1, 0, 0, NULL, why, sizeof(why)), E(BATCH_TRUNCATED));
    cr_assert(strstr(why, "but only"), "%s", why);
    cr_assert_eq(rn_batch_validate(b, len, len - 1, 0, NULL, why, sizeof(why)),
                 E(MESSAGE_TOO_LARGE));
    cr_assert(strstr(why, "larger than max.message.bytes"), "%s", why);
    b[len - 1] ^= 1;
    cr_assert_eq(rn_batch_validate(b, len, 0, 0, NULL, why, sizeof(why)), E(BATCH_BAD_CRC));
    cr_assert(strstr(why, "CRC-32C"), "%s", why);
    cr_assert_eq(rn_batch_validate(b, 10, 0, 0, NULL, why, sizeof(why)), E(BATCH_TRUNCATED));
    cr_assert(strstr(why, "shorter than the 61-byte"), "%s", why);
    free(b);
}

// A zstd bomb is refused with a clear reason and never decompressed past the
// bound: one that declares its size is refused before any allocation, one
// that does not is stopped one byte past the bound. A frame corrupt inside
// (CRC fixed, so only the walk can tell) is refused too.
Test(batch_validate, validate_zstd_bomb_and_corrupt_frame)
{
    size_t n = 8 << 20;
    uint8_t *zeros = calloc(1, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *frame = malloc(cap);
    size_t flen = ZSTD_compress(frame, cap, zeros, n, 3);
    cr_assert_not(ZSTD_isError(flen));
    size_t len;
    uint8_t *p = zstd_batch(frame, flen, 1, &len);
    char why[256];
    cr_assert_eq(rn_batch_validate(p, len, 0, 1 << 20, NULL, why, sizeof(why)),
                 E(BATCH_BAD_COMPRESSION));
    cr_assert(strstr(why, "declares 8388608 bytes of records, more than the 1048576 allowed"), "%s",
              why);
    free(p);
    free(frame);
    frame = compress_unknown_size(zeros, n, &flen);
    p = zstd_batch(frame, flen, 1, &len);
    cr_assert_eq(rn_batch_validate(p, len, 0, 1 << 20, NULL, why, sizeof(why)),
                 E(BATCH_BAD_COMPRESSION));
    cr_assert(strstr(why, "decompresses to more than 1048576 bytes"), "%s", why);
    /* Allowed through, the zeros are records of length 0: record 0 is named. */
    cr_assert_eq(rn_batch_validate(p, len, 0, n, NULL, why, sizeof(why)), E(BATCH_BAD_RECORD));
    cr_assert(strstr(why, "record 0 of 1 (counted from 0): length 0"), "%s", why);
    free(p);
    free(frame);
    free(zeros);

    /* A good zstd batch with bytes inside its frame flipped, CRC fixed. */
    uint8_t *good = small_batch(RN_BATCH_CODEC_ZSTD, &len);
    int refused = 0;
    for (size_t at = RN_BATCH_HEADER_LEN; at < len; at++) {
        uint8_t *q = dup_exact(good, len);
        q[at] ^= 0x5a;
        fix_crc(q, len);
        why[0] = '\0';
        int rc = rn_batch_validate(q, len, 0, 0, NULL, why, sizeof(why));
        if (rc) {
            refused++;
            cr_assert(rc == E(BATCH_BAD_COMPRESSION) || is_record_error(rc) ||
                          rc == E(BATCH_BAD_TIMESTAMP),
                      "byte %zu: %s", at, rn_errname(rc));
            cr_assert(why[0], "byte %zu: no reason", at);
        }
        free(q);
    }
    cr_assert_gt(refused, 0);
    /* Its frame header corrupted: not a zstd frame at all. */
    uint8_t *q = dup_exact(good, len);
    q[RN_BATCH_HEADER_LEN] ^= 0xff;
    fix_crc(q, len);
    cr_assert_eq(rn_batch_validate(q, len, 0, 0, NULL, why, sizeof(why)), E(BATCH_BAD_COMPRESSION));
    cr_assert(strstr(why, "zstd records section is corrupt"), "%s", why);
    free(q);
    free(good);
}
