/*
 * test_groups.c — the Kafka group APIs' body parsers and answer renderers
 * (broker/kafka/groups.c), sans-I/O: each request is run with no broker
 * behind it, so every group answer is COORDINATOR_NOT_AVAILABLE (15) but
 * laid out field by field as Kafka's message schemas say for that version;
 * golden bytes are written from the schemas. Truncated bodies and hostile
 * counts must be refused (the listener then closes the connection), never
 * read past the frame. The APIs working against a real coordinator are
 * tests/cli/test_kafka_groups.sh and tests/unit/broker/coord/test_classic_group.c.
 */
#include <criterion/criterion.h>
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

/* Run one request body (header + body, no size prefix) of len bytes; the
 * answer frame's bytes are copied to out (NULL: not wanted). */
static int run_bytes(const uint8_t *body, size_t len, uint8_t *out, size_t *out_len)
{
    rn_kreq *q = calloc(1, sizeof(*q));
    cr_assert(q);
    q->frame = malloc(len ? len : 1);
    cr_assert(q->frame);
    memcpy(q->frame, body, len);
    q->frame_len = len;
    rn_kreader_init(&q->body, q->frame, len);
    int rc = rn_kafka_header_parse(&q->body, &q->h);
    if (rc == 0)
        rc = rn_kafka_dispatch(q);
    if (out_len)
        *out_len = 0;
    if (rc == 0) {
        cr_assert(q->done, "every group API answers at once without a broker");
        cr_assert(q->out);
        cr_assert_not(q->out->w.oom);
        if (out) {
            memcpy(out, q->out->w.buf, q->out->w.len);
            *out_len = q->out->w.len;
        }
    }
    if (q->ctx_free)
        q->ctx_free(q->ctx);
    rn_kout_free(q->out);
    free(q->frame);
    free(q);
    return rc;
}

/* Run the request in req_hex and compare the answer with want_hex. */
static void expect_answer(const char *req_hex, const char *want_hex)
{
    uint8_t in[1024], got[1024], want[1024];
    size_t n = unhex(req_hex, in), wn = unhex(want_hex, want), gn;
    cr_assert_eq(run_bytes(in, n, got, &gn), 0);
    cr_assert_eq(gn, wn, "answer length %zu, wanted %zu", gn, wn);
    for (size_t i = 0; i < wn; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: %02x, wanted %02x", i, got[i], want[i]);
}

/* Every cut of the request after its header (at every byte) is refused. */
static void expect_cuts_refused(const char *req_hex, size_t header_len)
{
    uint8_t in[1024];
    size_t n = unhex(req_hex, in);
    for (size_t cut = header_len; cut < n; cut++)
        cr_assert_lt(run_bytes(in, cut, NULL, NULL), 0, "cut at %zu of %zu parsed", cut, n);
}

/* ---- FindCoordinator --------------------------------------------------------------- */

#define FC_V0                                                                                      \
    "000a0000"                                                                                     \
    "00000001"                                                                                     \
    "000163"                                                                                       \
    "00026731"
#define FC_V3                                                                                      \
    "000a0003"                                                                                     \
    "00000003"                                                                                     \
    "000163"                                                                                       \
    "00"                                                                                           \
    "036731"                                                                                       \
    "00"                                                                                           \
    "00"
#define FC_V4                                                                                      \
    "000a0004"                                                                                     \
    "00000004"                                                                                     \
    "000163"                                                                                       \
    "00"                                                                                           \
    "00"                                                                                           \
    "03"                                                                                           \
    "036731"                                                                                       \
    "036732"                                                                                       \
    "00"

// FindCoordinator v0: this node, advertised as Metadata advertises it.
Test(kafka_groups, find_coordinator_v0_golden)
{
    expect_answer(FC_V0, "00000019"
                         "00000001"
                         "0000"
                         "00000001" /* node id */
                         "0009"
                         "3132372e302e302e31" /* 127.0.0.1 */
                         "00000000");         /* port (none without a listener) */
}

// FindCoordinator v1 for a transaction coordinator: COORDINATOR_NOT_AVAILABLE with a message.
Test(kafka_groups, find_coordinator_v1_transactions_refused)
{
    expect_answer("000a0001"
                  "00000002"
                  "000163"
                  "00026731"
                  "01",
                  "00000034"
                  "00000002"
                  "00000000" /* throttle */
                  "000f"
                  "001e"
                  "7472616e73616374696f6e7320617265206e6f7420737570706f72746564"
                  "ffffffff"
                  "0000"
                  "ffffffff");
}

// FindCoordinator v3 (flexible): compact strings, response header v1, tags.
Test(kafka_groups, find_coordinator_v3_golden)
{
    expect_answer(FC_V3, "0000001f"
                         "00000003"
                         "00"       /* header tags */
                         "00000000" /* throttle */
                         "0000"
                         "00" /* error_message null */
                         "00000001"
                         "0a"
                         "3132372e302e302e31"
                         "00000000"
                         "00");
}

// FindCoordinator v4 (KIP-699): one coordinator per key asked for.
Test(kafka_groups, find_coordinator_v4_batched)
{
    expect_answer(FC_V4, "0000003d"
                         "00000004"
                         "00"
                         "00000000"
                         "03"
                         "036731"
                         "00000001"
                         "0a3132372e302e302e31"
                         "00000000"
                         "0000"
                         "00"
                         "00"
                         "036732"
                         "00000001"
                         "0a3132372e302e302e31"
                         "00000000"
                         "0000"
                         "00"
                         "00"
                         "00");
}

/* ---- JoinGroup, SyncGroup, Heartbeat, LeaveGroup --------------------------------------- */

#define JOIN_V5                                                                                    \
    "000b0005"                                                                                     \
    "00000005"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00002710"                                                                                     \
    "0000ea60"                                                                                     \
    "0000"                                                                                         \
    "ffff"                                                                                         \
    "0008636f6e73756d6572"                                                                         \
    "00000001"                                                                                     \
    "000572616e6765"                                                                               \
    "00000003010203"

// JoinGroup v5 answer: throttle, error, generation -1, empty protocol/leader, the member id, no
// members.
Test(kafka_groups, join_group_v5_golden)
{
    expect_answer(JOIN_V5, "00000018"
                           "00000005"
                           "00000000"
                           "000f"
                           "ffffffff"
                           "0000"
                           "0000"
                           "0000"
                           "00000000");
}

#define SYNC_V3                                                                                    \
    "000e0003"                                                                                     \
    "00000006"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00000001"                                                                                     \
    "00026d31"                                                                                     \
    "ffff"                                                                                         \
    "00000001"                                                                                     \
    "00026d31"                                                                                     \
    "00000002abcd"
#define HB_V3                                                                                      \
    "000c0003"                                                                                     \
    "00000007"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00000001"                                                                                     \
    "00026d31"                                                                                     \
    "ffff"
#define LEAVE_V3                                                                                   \
    "000d0003"                                                                                     \
    "00000008"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00000002"                                                                                     \
    "00026d31ffff"                                                                                 \
    "00026d32ffff"
#define LEAVE_V0                                                                                   \
    "000d0000"                                                                                     \
    "00000009"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00026d31"

// SyncGroup v3, Heartbeat v3, LeaveGroup v0 and v3 (per-member errors) answers.
Test(kafka_groups, sync_heartbeat_leave_golden)
{
    expect_answer(SYNC_V3, "0000000e"
                           "00000006"
                           "00000000"
                           "000f"
                           "00000000"); /* assignment: empty bytes */
    expect_answer(HB_V3, "0000000a"
                         "00000007"
                         "00000000"
                         "000f");
    expect_answer(LEAVE_V0, "00000006"
                            "00000009"
                            "000f");
    expect_answer(LEAVE_V3, "0000001e"
                            "00000008"
                            "00000000"
                            "000f"
                            "00000002"
                            "00026d31ffff000f"
                            "00026d32ffff000f");
}

// LeaveGroup v3 naming no member: answered with the request's own error and an empty list
// (found by fuzz_kafka: the top-level code was read from the empty per-member list).
Test(kafka_groups, leave_group_v3_no_members)
{
    expect_answer("000d0003"
                  "00000010"
                  "000163"
                  "000167"
                  "00000000",
                  "0000000e"
                  "00000010"
                  "00000000"
                  "000f"
                  "00000000");
}

/* ---- OffsetCommit, OffsetFetch ------------------------------------------------------------ */

#define COMMIT_V7                                                                                  \
    "00080007"                                                                                     \
    "0000000a"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00000001"                                                                                     \
    "00026d31"                                                                                     \
    "ffff"                                                                                         \
    "00000001"                                                                                     \
    "000174"                                                                                       \
    "00000002"                                                                                     \
    "00000000"                                                                                     \
    "0000000000000005"                                                                             \
    "ffffffff"                                                                                     \
    "ffff"                                                                                         \
    "00000001"                                                                                     \
    "0000000000000007"                                                                             \
    "00000000"                                                                                     \
    "00026d64"
#define COMMIT_V2                                                                                  \
    "00080002"                                                                                     \
    "0000000b"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "ffffffff"                                                                                     \
    "0000"                                                                                         \
    "ffffffffffffffff"                                                                             \
    "00000001"                                                                                     \
    "000174"                                                                                       \
    "00000001"                                                                                     \
    "00000000"                                                                                     \
    "0000000000000003"                                                                             \
    "0000"
#define FETCH_V5                                                                                   \
    "00090005"                                                                                     \
    "0000000c"                                                                                     \
    "000163"                                                                                       \
    "000167"                                                                                       \
    "00000001"                                                                                     \
    "000174"                                                                                       \
    "00000002"                                                                                     \
    "0000000000000001"

/* v6 and v7 are flexible (librdkafka 2.0.2 asks for v7): compact strings and
 * arrays, tagged fields after each partition, topic and the body; v7 adds
 * require_stable. */
#define FETCH_V6                                                                                   \
    "00090006"                                                                                     \
    "00000010"                                                                                     \
    "000163"                                                                                       \
    "00"                                                                                           \
    "0267"                                                                                         \
    "02"                                                                                           \
    "0274"                                                                                         \
    "03"                                                                                           \
    "00000000"                                                                                     \
    "00000001"                                                                                     \
    "00"                                                                                           \
    "00"
#define FETCH_V7                                                                                   \
    "00090007"                                                                                     \
    "00000011"                                                                                     \
    "000163"                                                                                       \
    "00"                                                                                           \
    "0267"                                                                                         \
    "02"                                                                                           \
    "0274"                                                                                         \
    "03"                                                                                           \
    "00000000"                                                                                     \
    "00000001"                                                                                     \
    "00"                                                                                           \
    "01"                                                                                           \
    "00"

// OffsetCommit v7 and v2: every partition is answered, in request order.
Test(kafka_groups, offset_commit_golden)
{
    expect_answer(COMMIT_V7, "0000001f"
                             "0000000a"
                             "00000000"
                             "00000001"
                             "000174"
                             "00000002"
                             "00000000000f"
                             "00000001000f");
    expect_answer(COMMIT_V2, "00000015"
                             "0000000b"
                             "00000001"
                             "000174"
                             "00000001"
                             "00000000000f");
}

// OffsetFetch v5: per partition offset -1, leader epoch -1, metadata "", error; then the
// top-level error; a null topic list (v2+) asks for everything committed.
Test(kafka_groups, offset_fetch_golden)
{
    expect_answer(FETCH_V5, "0000003d"
                            "0000000c"
                            "00000000"
                            "00000001"
                            "000174"
                            "00000002"
                            "00000000"
                            "ffffffffffffffff"
                            "ffffffff"
                            "0000"
                            "000f"
                            "00000001"
                            "ffffffffffffffff"
                            "ffffffff"
                            "0000"
                            "000f"
                            "000f");
    expect_answer("00090005"
                  "0000000d"
                  "000163"
                  "000167"
                  "ffffffff",
                  "0000000e"
                  "0000000d"
                  "00000000"
                  "00000000"
                  "000f");
}

// OffsetFetch v6 and v7 (flexible; OffsetFetchResponse.json): response header v1, compact
// arrays and strings, a tag buffer after each partition, each topic and the body; a compact
// null topic list (v6+) asks for everything committed.
Test(kafka_groups, offset_fetch_flexible_golden)
{
#define FETCH_FLEX_ANSWER(corr)                                                                    \
    "00000039" corr "00"                                                                           \
    "00000000"                                                                                     \
    "02"                                                                                           \
    "0274"                                                                                         \
    "03"                                                                                           \
    "00000000"                                                                                     \
    "ffffffffffffffff"                                                                             \
    "ffffffff"                                                                                     \
    "01"                                                                                           \
    "000f"                                                                                         \
    "00"                                                                                           \
    "00000001"                                                                                     \
    "ffffffffffffffff"                                                                             \
    "ffffffff"                                                                                     \
    "01"                                                                                           \
    "000f"                                                                                         \
    "00"                                                                                           \
    "00"                                                                                           \
    "000f"                                                                                         \
    "00"
    expect_answer(FETCH_V6, FETCH_FLEX_ANSWER("00000010"));
    expect_answer(FETCH_V7, FETCH_FLEX_ANSWER("00000011"));
#undef FETCH_FLEX_ANSWER
    expect_answer("00090007"
                  "00000012"
                  "000163"
                  "00"
                  "0267"
                  "00"
                  "00"
                  "00",
                  "0000000d"
                  "00000012"
                  "00"
                  "00000000"
                  "01"
                  "000f"
                  "00");
}

// OffsetFetch v1 has no null topic list: -1 is malformed.
Test(kafka_groups, offset_fetch_v1_null_topics_refused)
{
    uint8_t in[64];
    size_t n = unhex("00090001"
                     "0000000d"
                     "000163"
                     "000167"
                     "ffffffff",
                     in);
    cr_assert_lt(run_bytes(in, n, NULL, NULL), 0);
}

/* ---- ListGroups, DescribeGroups, DeleteGroups ----------------------------------------------- */

#define DESCRIBE_V4                                                                                \
    "000f0004"                                                                                     \
    "0000000e"                                                                                     \
    "000163"                                                                                       \
    "00000001"                                                                                     \
    "000167"                                                                                       \
    "00"
#define DELETE_V1                                                                                  \
    "002a0001"                                                                                     \
    "0000000f"                                                                                     \
    "000163"                                                                                       \
    "00000001"                                                                                     \
    "000167"

// ListGroups v2, DescribeGroups v4 (a group the coordinator cannot describe: Dead), DeleteGroups
// v1.
Test(kafka_groups, list_describe_delete_golden)
{
    expect_answer("00100002"
                  "0000000d"
                  "000163",
                  "0000000e"
                  "0000000d"
                  "00000000"
                  "000f"
                  "00000000");
    expect_answer(DESCRIBE_V4, "00000023"
                               "0000000e"
                               "00000000"
                               "00000001"
                               "000f"
                               "000167"
                               "000444656164" /* Dead */
                               "0000"
                               "0000"
                               "00000000"
                               "80000000"); /* authorized operations: not asked */
    expect_answer(DELETE_V1, "00000011"
                             "0000000f"
                             "00000000"
                             "00000001"
                             "000167"
                             "000f");
}

/* ---- Malformed input ------------------------------------------------------------------------ */

// Every group request cut anywhere after its header is refused, never read past its end.
Test(kafka_groups, truncated_bodies_refused)
{
    expect_cuts_refused(FC_V0, 11);
    expect_cuts_refused(FC_V3, 12);
    expect_cuts_refused(FC_V4, 12);
    expect_cuts_refused(JOIN_V5, 11);
    expect_cuts_refused(SYNC_V3, 11);
    expect_cuts_refused(HB_V3, 11);
    expect_cuts_refused(LEAVE_V3, 11);
    expect_cuts_refused(LEAVE_V0, 11);
    expect_cuts_refused(COMMIT_V7, 11);
    expect_cuts_refused(COMMIT_V2, 11);
    expect_cuts_refused(FETCH_V5, 11);
    expect_cuts_refused(FETCH_V6, 12);
    expect_cuts_refused(FETCH_V7, 12);
    expect_cuts_refused(DESCRIBE_V4, 11);
    expect_cuts_refused(DELETE_V1, 11);
}

// Counts that cannot fit in what is left are refused before anything is sized by them.
Test(kafka_groups, hostile_counts_refused)
{
    static const char *const reqs[] = {
        /* JoinGroup v5 with 2^31-1 protocols */
        "000b0005"
        "00000005"
        "000163"
        "000167"
        "00002710"
        "0000ea60"
        "0000"
        "ffff"
        "0008636f6e73756d6572"
        "7fffffff"
        "000572616e6765"
        "00000003010203",
        /* SyncGroup v3 with 2^31-1 assignments */
        "000e0003"
        "00000006"
        "000163"
        "000167"
        "00000001"
        "00026d31"
        "ffff"
        "7fffffff",
        /* OffsetCommit v7 with 2^31-1 partitions */
        "00080007"
        "0000000a"
        "000163"
        "000167"
        "00000001"
        "00026d31"
        "ffff"
        "00000001"
        "000174"
        "7fffffff"
        "00000000",
        /* OffsetFetch v5 with a negative partition count */
        "00090005"
        "0000000c"
        "000163"
        "000167"
        "00000001"
        "000174"
        "fffffffe",
        /* OffsetFetch v7 with 2^32-2 partitions (compact count) and 2^28 topics */
        "00090007"
        "00000011"
        "000163"
        "00"
        "0267"
        "02"
        "0274"
        "ffffffff0f"
        "00000000",
        "00090006"
        "00000011"
        "000163"
        "00"
        "0267"
        "8080808001"
        "0274",
        /* LeaveGroup v3, DescribeGroups v4, DeleteGroups v1 with huge arrays */
        "000d0003"
        "00000008"
        "000163"
        "000167"
        "40000000",
        "000f0004"
        "0000000e"
        "000163"
        "7fffffff"
        "000167"
        "00",
        "002a0001"
        "0000000f"
        "000163"
        "7fffffff",
        /* FindCoordinator v4 with 2^32-2 keys (compact) */
        "000a0004"
        "00000004"
        "000163"
        "00"
        "00"
        "ffffffff0f"
        "00",
        /* a JoinGroup string longer than the frame */
        "000b0005"
        "00000005"
        "000163"
        "7fff67",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        uint8_t in[256];
        size_t n = unhex(reqs[i], in);
        cr_assert_lt(run_bytes(in, n, NULL, NULL), 0, "request %zu parsed", i);
    }
}
