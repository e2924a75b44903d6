/*
 * test_codec.c — Kafka's wire codec (broker/kafka/codec.c) and the renderers
 * of ApiVersions and Metadata (broker/kafka/apis.c), sans-I/O: golden bytes
 * (a request librdkafka 2.0.2 really sent; answers derived field by field
 * from Kafka's message schemas), and hostile input — negative lengths,
 * strings and arrays that claim more than the frame holds, overlong varints
 * — refused before anything could be sized by them.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/codec.h"
#include "broker/kafka/conn.h"
#include "protocol/errors.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void expect_bytes(const rn_kwriter *w, const char *hex)
{
    uint8_t want[4096];
    size_t n = unhex(hex, want);
    cr_assert(!w->oom);
    cr_assert_eq(w->len, n, "length %zu, wanted %zu", w->len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(w->buf[i], want[i], "byte %zu: %02x, wanted %02x", i, w->buf[i], want[i]);
}

static bool str_is(rn_kstr s, const char *want)
{
    return s.data && (size_t)s.len == strlen(want) && memcmp(s.data, want, (size_t)s.len) == 0;
}

/* What kcat 1.7.1 (librdkafka 2.0.2) sends first, captured from the wire:
 * ApiVersions v3, request header v2, client "rdkafka". */
#define RDKAFKA_API_VERSIONS                                                                       \
    "00000024"                                                                                     \
    "0012000300000001000772646b61666b6100"                                                         \
    "0b6c696272646b61666b6106322e302e3200"

// librdkafka's ApiVersions v3 request parses: header v2 with tagged fields, compact body strings.
Test(kafka_codec, parses_librdkafka_api_versions_v3)
{
    uint8_t buf[256];
    size_t n = unhex(RDKAFKA_API_VERSIONS, buf);
    cr_assert_eq(rn_kafka_frame_size(buf, 1u << 20), (int64_t)n - 4);
    rn_kreader rd;
    rn_kreader_init(&rd, buf + 4, n - 4);
    rn_kafka_header h;
    cr_assert_eq(rn_kafka_header_parse(&rd, &h), 0);
    cr_assert_eq(h.api_key, 18);
    cr_assert_eq(h.api_version, 3);
    cr_assert_eq(h.correlation_id, 1);
    cr_assert(h.flexible);
    cr_assert(str_is(h.client_id, "rdkafka"));
    cr_assert(str_is(rn_kread_compact_string(&rd, false), "librdkafka"));
    cr_assert(str_is(rn_kread_compact_string(&rd, false), "2.0.2"));
    rn_kread_tags(&rd);
    cr_assert_eq(rd.err, 0);
    cr_assert_eq(rn_kreader_left(&rd), 0);
}

// The same request cut at every byte: the header parse fails cleanly, never reads past the cut.
Test(kafka_codec, api_versions_cut_at_every_byte)
{
    uint8_t buf[256];
    size_t n = unhex(RDKAFKA_API_VERSIONS, buf);
    for (size_t cut = 0; cut < 4 + 18; cut++) { /* the header is 18 bytes */
        uint8_t *copy = malloc(cut ? cut : 1);  /* ASan sees any read past it */
        memcpy(copy, buf + 4, cut);
        rn_kreader rd;
        rn_kreader_init(&rd, copy, cut);
        rn_kafka_header h;
        int rc = rn_kafka_header_parse(&rd, &h);
        if (cut < 18)
            cr_assert_eq(rc, -RN_E_INVALID_REQUEST, "cut %zu", cut);
        /* The fixed 8 bytes are enough to answer with a correlation id. */
        if (cut >= 8)
            cr_assert_eq(h.correlation_id, 1);
        free(copy);
    }
    (void)n;
}

// ApiVersions v3 answer: response header v0 (no tags), compact array, tags per entry and at the
// end.
Test(kafka_codec, api_versions_v3_golden)
{
    rn_kwriter w;
    rn_kwriter_init(&w);
    rn_kafka_api_versions_write(&w, 1, 3);
    expect_bytes(&w, "000000ad"
                     "00000001"       /* correlation id; no header tags */
                     "0000"           /* error_code */
                     "18"             /* compact array: 23 entries */
                     "00000003000800" /* Produce 3..8, tags */
                     "00010004000b00" /* Fetch 4..11 */
                     "00020001000500" /* ListOffsets 1..5 */
                     "00030000000800" /* Metadata 0..8 */
                     "00120000000300" /* ApiVersions 0..3 */
                     "00130002000400" /* CreateTopics 2..4 */
                     "00140001000300" /* DeleteTopics 1..3 */
                     "00160000000400" /* InitProducerId 0..4 */
                     "00170000000400" /* OffsetsForLeaderEpoch 0..4 */
                     "00250000000200" /* CreatePartitions 0..2 */
                     "00200000000200" /* DescribeConfigs 0..2 */
                     "00110000000100" /* SaslHandshake 0..1 */
                     "00240000000200" /* SaslAuthenticate 0..2 */
                     "000a0000000400" /* FindCoordinator 0..4 */
                     "000b0000000500" /* JoinGroup 0..5 */
                     "000e0000000300" /* SyncGroup 0..3 */
                     "000c0000000300" /* Heartbeat 0..3 */
                     "000d0000000300" /* LeaveGroup 0..3 */
                     "00080000000700" /* OffsetCommit 0..7 */
                     "00090000000700" /* OffsetFetch 0..7 */
                     "00100000000200" /* ListGroups 0..2 */
                     "000f0000000400" /* DescribeGroups 0..4 */
                     "002a0000000100" /* DeleteGroups 0..1 */
                     "00000000"       /* throttle_time_ms */
                     "00");           /* tags */
    rn_kwriter_fini(&w);
}

// ApiVersions at a version the listener does not know: v0 body, UNSUPPORTED_VERSION, the list.
Test(kafka_codec, api_versions_unknown_version_gets_v0)
{
    rn_kwriter w;
    rn_kwriter_init(&w);
    rn_kafka_api_versions_write(&w, 9, 7);
    expect_bytes(&w, "00000094"
                     "00000009"
                     "0023"     /* UNSUPPORTED_VERSION */
                     "00000017" /* i32 count */
                     "000000030008"
                     "00010004000b"
                     "000200010005"
                     "000300000008"
                     "001200000003"
                     "001300020004"
                     "001400010003"
                     "001600000004"
                     "001700000004"
                     "002500000002"
                     "002000000002"
                     "001100000001"
                     "002400000002"
                     "000a00000004"
                     "000b00000005"
                     "000e00000003"
                     "000c00000003"
                     "000d00000003"
                     "000800000007"
                     "000900000007"
                     "001000000002"
                     "000f00000004"
                     "002a00000001");
    rn_kwriter_fini(&w);
}

// A Metadata v1 request for every topic (null array) parses with header v1 (no tags).
Test(kafka_codec, metadata_v1_request_golden)
{
    uint8_t buf[64];
    size_t n = unhex("00000012"
                     "0003000100000005"
                     "00046b636174" /* client "kcat" */
                     "ffffffff",    /* topics: null = all */
                     buf);
    cr_assert_eq(rn_kafka_frame_size(buf, 1u << 20), (int64_t)n - 4);
    rn_kreader rd;
    rn_kreader_init(&rd, buf + 4, n - 4);
    rn_kafka_header h;
    cr_assert_eq(rn_kafka_header_parse(&rd, &h), 0);
    cr_assert_eq(h.api_key, 3);
    cr_assert_eq(h.api_version, 1);
    cr_assert_eq(h.correlation_id, 5);
    cr_assert_not(h.flexible);
    cr_assert(str_is(h.client_id, "kcat"));
    cr_assert_eq(rn_kread_array(&rd, false, true, 2), -1);
    cr_assert_eq(rd.err, 0);
}

// Metadata v7 answer: one broker, one topic of one partition with its leader epoch.
Test(kafka_codec, metadata_v7_golden)
{
    int32_t replicas[] = {1}, isr[] = {1};
    Runnel__PartitionMetadata pm = RUNNEL__PARTITION_METADATA__INIT;
    pm.partition = 0;
    pm.leader = 1;
    pm.leader_epoch = 4;
    pm.n_replicas = 1;
    pm.replicas = replicas;
    pm.n_isr = 1;
    pm.isr = isr;
    Runnel__PartitionMetadata *pms[] = {&pm};
    Runnel__TopicMetadata tm = RUNNEL__TOPIC_METADATA__INIT;
    tm.name = "t";
    tm.n_partitions = 1;
    tm.partitions = pms;
    Runnel__TopicMetadata *tms[] = {&tm, NULL};
    Runnel__TopicMetadata unknown = RUNNEL__TOPIC_METADATA__INIT;
    unknown.name = "u";
    unknown.error_code = RN_E_UNKNOWN_TOPIC;
    tms[1] = &unknown;
    Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
    mr.controller_id = 1;
    mr.cluster_id = "runnel";
    mr.n_topics = 2;
    mr.topics = tms;
    rn_kwriter w;
    rn_kwriter_init(&w);
    rn_kafka_broker self = {1, "127.0.0.1", 9092};
    rn_kafka_metadata_write(&w, 2, 7, &self, 1, &mr, false, NULL);
    expect_bytes(&w, "00000067"
                     "00000002"
                     "00000000" /* throttle_time_ms */
                     "00000001" /* brokers: 1 */
                     "00000001"
                     "0009"
                     "3132372e302e302e31" /* node 1, "127.0.0.1" */
                     "00002384"
                     "ffff" /* port 9092, rack null */
                     "0006"
                     "72756e6e656c" /* cluster_id "runnel" */
                     "00000001"     /* controller */
                     "00000002"     /* topics: 2 */
                     "0000"
                     "000174"
                     "00"       /* "t", not internal */
                     "00000001" /* partitions: 1 */
                     "0000"
                     "00000000"
                     "00000001"
                     "00000004" /* err, index, leader, epoch */
                     "00000001"
                     "00000001" /* replicas [1] */
                     "00000001"
                     "00000001" /* isr [1] */
                     "00000000" /* offline [] */
                     "0003"
                     "000175"
                     "00"
                     "00000000"); /* "u": UNKNOWN_TOPIC_OR_PARTITION */
    rn_kwriter_fini(&w);
}

// Metadata v1 on a cluster: the brokers listed (their Kafka listeners), the
// active controller, and a partition whose leader is not among them (fenced,
// or without a Kafka listener) answered LEADER_NOT_AVAILABLE with leader -1.
Test(kafka_codec, metadata_v1_cluster_golden)
{
    int32_t r3[] = {3}, r2[] = {2};
    Runnel__PartitionMetadata p0 = RUNNEL__PARTITION_METADATA__INIT;
    p0.partition = 0;
    p0.leader = 3;
    p0.n_replicas = p0.n_isr = 1;
    p0.replicas = p0.isr = r3;
    Runnel__PartitionMetadata p1 = RUNNEL__PARTITION_METADATA__INIT;
    p1.partition = 1;
    p1.leader = 2;
    p1.n_replicas = p1.n_isr = 1;
    p1.replicas = p1.isr = r2;
    Runnel__PartitionMetadata *pms[] = {&p0, &p1};
    Runnel__TopicMetadata tm = RUNNEL__TOPIC_METADATA__INIT;
    tm.name = "t";
    tm.n_partitions = 2;
    tm.partitions = pms;
    Runnel__TopicMetadata *tms[] = {&tm};
    Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
    mr.controller_id = 3;
    mr.n_topics = 1;
    mr.topics = tms;
    rn_kafka_broker brokers[] = {{1, "h1", 9092}, {3, "h3", 9094}};
    rn_kwriter w;
    rn_kwriter_init(&w);
    rn_kafka_metadata_write(&w, 9, 1, brokers, 2, &mr, false, NULL);
    expect_bytes(&w, "0000006a"
                     "00000009"
                     "00000002" /* brokers: 2 */
                     "00000001"
                     "00026831"
                     "00002384"
                     "ffff" /* 1 "h1" 9092, rack null */
                     "00000003"
                     "00026833"
                     "00002386"
                     "ffff"     /* 3 "h3" 9094 */
                     "00000003" /* controller 3 */
                     "00000001" /* topics: 1 */
                     "0000"
                     "000174"
                     "00"
                     "00000002" /* "t": 2 partitions */
                     "0000"
                     "00000000"
                     "00000003" /* p0: no error, leader 3 */
                     "00000001"
                     "00000003"
                     "00000001"
                     "00000003" /* replicas [3], isr [3] */
                     "0005"
                     "00000001"
                     "ffffffff" /* p1: LEADER_NOT_AVAILABLE, leader -1 */
                     "00000001"
                     "00000002"
                     "00000001"
                     "00000002"); /* replicas [2], isr [2] */
    rn_kwriter_fini(&w);
}

// A frame size that is negative, too short for a header or above the limit is refused at once.
Test(kafka_codec, frame_size_bounds)
{
    uint8_t neg[] = {0xff, 0xff, 0xff, 0xfb}, small[] = {0, 0, 0, 7}, big[] = {0, 0x10, 0, 1},
            ok[] = {0, 0, 0, 8};
    cr_assert_eq(rn_kafka_frame_size(neg, 1u << 20), -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_kafka_frame_size(small, 1u << 20), -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_kafka_frame_size(big, 1u << 20), -RN_E_REQUEST_TOO_LARGE);
    cr_assert_eq(rn_kafka_frame_size(ok, 1u << 20), 8);
}

// A compact string whose length runs past the end is an error, not a read past it.
Test(kafka_codec, compact_string_past_end)
{
    uint8_t b[] = {0x0b, 'a', 'b', 'c'}; /* claims 10 bytes, has 3 */
    rn_kreader rd;
    rn_kreader_init(&rd, b, sizeof(b));
    rn_kstr s = rn_kread_compact_string(&rd, false);
    cr_assert_null(s.data);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    /* Sticky: later reads give zeros and do not move. */
    cr_assert_eq(rn_kread_i8(&rd), 0);
    cr_assert_eq(rn_kreader_left(&rd), 0);
}

// Strings: a negative length other than null's -1 is refused; null where required is refused.
Test(kafka_codec, string_negative_and_null)
{
    uint8_t neg[] = {0xff, 0xfe, 'x'};
    rn_kreader rd;
    rn_kreader_init(&rd, neg, sizeof(neg));
    rn_kread_string(&rd, true);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    uint8_t null[] = {0xff, 0xff};
    rn_kreader_init(&rd, null, sizeof(null));
    cr_assert_eq(rn_kread_string(&rd, true).len, -1);
    cr_assert_eq(rd.err, 0);
    rn_kreader_init(&rd, null, sizeof(null));
    rn_kread_str(&rd, false, false);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    uint8_t bytes[] = {0x80, 0, 0, 0};
    rn_kreader_init(&rd, bytes, sizeof(bytes));
    rn_kread_bytes(&rd, true);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
}

// A huge array count is refused against the bytes left, so nobody allocates by it.
Test(kafka_codec, huge_array_counts)
{
    uint8_t classic[] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    rn_kreader rd;
    rn_kreader_init(&rd, classic, sizeof(classic));
    cr_assert_eq(rn_kread_array(&rd, false, false, 4), 0);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    uint8_t compact[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0};
    rn_kreader_init(&rd, compact, sizeof(compact));
    rn_kread_array(&rd, true, false, 1);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    /* Two 4-byte elements fit in 8 bytes, three do not. */
    uint8_t two[] = {0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
    rn_kreader_init(&rd, two, sizeof(two));
    cr_assert_eq(rn_kread_array(&rd, false, false, 4), 2);
    uint8_t three[] = {0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8};
    rn_kreader_init(&rd, three, sizeof(three));
    rn_kread_array(&rd, false, false, 4);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    /* A null array where one is required. */
    uint8_t null[] = {0xff, 0xff, 0xff, 0xff};
    rn_kreader_init(&rd, null, sizeof(null));
    rn_kread_array(&rd, false, false, 4);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
}

// Varints: overlong or over 32 bits is refused; tagged fields are skipped within bounds only.
Test(kafka_codec, varints_and_tags)
{
    uint8_t long6[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    rn_kreader rd;
    rn_kreader_init(&rd, long6, sizeof(long6));
    rn_kread_uvarint(&rd);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    rn_kreader_init(&rd, big, sizeof(big));
    rn_kread_uvarint(&rd);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    rn_kreader_init(&rd, max, sizeof(max));
    cr_assert_eq(rn_kread_uvarint(&rd), UINT32_MAX);
    uint8_t zig[] = {0x03};
    rn_kreader_init(&rd, zig, sizeof(zig));
    cr_assert_eq(rn_kread_varint(&rd), -2);
    /* One tagged field (tag 0, 2 bytes), then an i8. */
    uint8_t tags[] = {0x01, 0x00, 0x02, 0xaa, 0xbb, 0x07};
    rn_kreader_init(&rd, tags, sizeof(tags));
    rn_kread_tags(&rd);
    cr_assert_eq(rn_kread_i8(&rd), 7);
    cr_assert_eq(rd.err, 0);
    uint8_t cut[] = {0x01, 0x00, 0x09, 0xaa};
    rn_kreader_init(&rd, cut, sizeof(cut));
    rn_kread_tags(&rd);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
    uint8_t many[] = {0x7f, 0x00, 0x00};
    rn_kreader_init(&rd, many, sizeof(many));
    rn_kread_tags(&rd);
    cr_assert_eq(rd.err, -RN_E_INVALID_REQUEST);
}

// The writer's compact and classic encodings, null included.
Test(kafka_codec, writer_encodings)
{
    rn_kwriter w;
    rn_kwriter_init(&w);
    rn_kwrite_str(&w, true, "ab");
    rn_kwrite_str(&w, true, NULL);
    rn_kwrite_str(&w, false, NULL);
    rn_kwrite_array(&w, true, -1);
    rn_kwrite_array(&w, false, 3);
    rn_kwrite_uvarint(&w, 300);
    rn_kwrite_i64(&w, -2);
    expect_bytes(&w, "03616200ffff0000000003ac02fffffffffffffffe");
    rn_kwriter_fini(&w);
}

// Flexible versions follow the schemas: ApiVersions from v3, Metadata from v9, Fetch from v12.
Test(kafka_codec, flexible_versions)
{
    cr_assert_not(rn_kafka_flexible(18, 2));
    cr_assert(rn_kafka_flexible(18, 3));
    cr_assert_not(rn_kafka_flexible(3, 8));
    cr_assert(rn_kafka_flexible(3, 9));
    cr_assert_not(rn_kafka_flexible(1, 11));
    cr_assert(rn_kafka_flexible(1, 12));
    cr_assert_not(rn_kafka_flexible(0, 8));
    cr_assert(rn_kafka_flexible(0, 9));
    cr_assert_not(rn_kafka_flexible(17, 1)); /* SaslHandshake: never */
    cr_assert_not(rn_kafka_flexible(-1, 0));
}

// runnel's errors map to Kafka's codes in one table; unknown ones are UNKNOWN_SERVER_ERROR.
Test(kafka_codec, error_table)
{
    cr_assert_eq(rn_kafka_error(0), 0);
    cr_assert_eq(rn_kafka_error(-RN_E_UNKNOWN_TOPIC), 3);
    cr_assert_eq(rn_kafka_error(RN_E_UNKNOWN_TOPIC), 3); /* wire code, positive */
    cr_assert_eq(rn_kafka_error(-RN_E_OFFSET_OUT_OF_RANGE), 1);
    cr_assert_eq(rn_kafka_error(-RN_E_BATCH_BAD_CRC), 2);
    cr_assert_eq(rn_kafka_error(-RN_E_CORRUPT_BATCH), 2);
    cr_assert_eq(rn_kafka_error(-RN_E_MESSAGE_TOO_LARGE), 10);
    cr_assert_eq(rn_kafka_error(-RN_E_NOT_LEADER), 6);
    cr_assert_eq(rn_kafka_error(-RN_E_UNSUPPORTED_VERSION), 35);
    cr_assert_eq(rn_kafka_error(-RN_E_INVALID_REQUEST), 42);
    cr_assert_eq(rn_kafka_error(-RN_E_FENCED_LEADER_EPOCH), 74);
    cr_assert_eq(rn_kafka_error(-RN_E_UNKNOWN_LEADER_EPOCH), 75);
    cr_assert_eq(rn_kafka_error(-RN_E_NOT_ENOUGH_REPLICAS), 19);
    cr_assert_eq(rn_kafka_error(-RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND), 20);
    cr_assert_eq(rn_kafka_error(-RN_E_STORAGE_ERROR), 56);
    cr_assert_eq(rn_kafka_error(-ENOSPC), -1);
}

/* A request body (after the size) from hex. */
static int dry(const char *hex, size_t *answer)
{
    uint8_t buf[1024];
    size_t n = unhex(hex, buf);
    return rn_kafka_dry_run(buf, n, answer);
}

// Body parsers run with no broker: each partition is answered (with an error), none is lost.
Test(kafka_codec, dry_run_bodies)
{
    size_t len = 0;
    /* Fetch v4: one topic "t", one partition at offset 5. */
    cr_assert_eq(dry("00010004"
                     "00000008"
                     "0004"
                     "6b636174"
                     "ffffffff"
                     "00000064"
                     "00000001"
                     "000003e8"
                     "00"
                     "00000001"
                     "0001"
                     "74"
                     "00000001"
                     "00000000"
                     "0000000000000005"
                     "00000064",
                     &len),
                 0);
    /* throttle, topics(1): "t", partitions(1): index, error, hw, lso, aborted [], records 0 */
    cr_assert_eq(len, 4 + 4 + 4 + 4 + 3 + 4 + 4 + 2 + 8 + 8 + 4 + 4);
    /* ListOffsets v1: two partitions, earliest and latest. */
    cr_assert_eq(dry("00020001"
                     "00000009"
                     "0000"
                     "ffffffff"
                     "00000001"
                     "0001"
                     "74"
                     "00000002"
                     "00000000"
                     "fffffffffffffffe"
                     "00000001"
                     "ffffffffffffffff",
                     &len),
                 0);
    cr_assert_eq(len, 4 + 4 + 4 + 3 + 4 + 2 * (4 + 2 + 8 + 8));
    /* Metadata v1 for no topic at all ([]): brokers only. */
    cr_assert_eq(dry("00030001"
                     "0000000a"
                     "0000"
                     "00000000",
                     &len),
                 0);
    cr_assert_gt(len, 0);
    /* Produce v3 acks=0: no answer at all. */
    cr_assert_eq(dry("00000003"
                     "0000000b"
                     "0000"
                     "ffff"
                     "0000"
                     "00000064"
                     "00000001"
                     "0001"
                     "74"
                     "00000001"
                     "00000000"
                     "ffffffff",
                     &len),
                 0);
    cr_assert_eq(len, 0);
    /* A version the listener does not speak (JoinGroup v99, flexible header):
     * correlation id + UNSUPPORTED_VERSION. */
    cr_assert_eq(dry("000b0063"
                     "0000000c"
                     "0000"
                     "00",
                     &len),
                 0);
    cr_assert_eq(len, 4 + 4 + 2);
}

// A body whose array count outruns the frame is refused (the listener closes), not allocated.
Test(kafka_codec, dry_run_refuses_hostile_bodies)
{
    size_t len = 0;
    cr_assert_eq(dry("00030001"
                     "0000000d"
                     "0000"
                     "7fffffff",
                     &len),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(dry("00010004"
                     "0000000e"
                     "0000"
                     "ffffffff"
                     "00000064"
                     "00000001"
                     "000003e8"
                     "00"
                     "00000001"
                     "0001"
                     "74"
                     "0fffffff",
                     &len),
                 -RN_E_INVALID_REQUEST);
    /* Produce: a partition's records length past the end. */
    cr_assert_eq(dry("00000003"
                     "0000000f"
                     "0000"
                     "ffff"
                     "ffff"
                     "00000064"
                     "00000001"
                     "0001"
                     "74"
                     "00000001"
                     "00000000"
                     "00100000"
                     "00",
                     &len),
                 -RN_E_INVALID_REQUEST);
}
