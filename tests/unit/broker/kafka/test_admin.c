/*
 * test_admin.c — the Kafka APIs of broker/kafka/producer.c, epochs.c,
 * admin.c and sasl.c, sans-I/O: each request body parsed and its answer
 * rendered with no broker behind (rn_kafka_dry_run_copy: every native call
 * fails as on a closed connection, answered UNKNOWN_SERVER_ERROR), compared
 * byte for byte; and malformed bodies refused (the listener then closes the
 * connection) before anything is sized by them.
 *
 * Request frames here are the bytes after the size: header v1 (api_key,
 * api_version, correlation_id, client_id "kcat") or v2 (+ tags), then the
 * body. Answers include their size prefix.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "broker/kafka/codec.h"
#include "broker/kafka/conn.h"
#include "protocol/errors.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; p[0] && p[1]; p += 2) {
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* Run the request (hex) and compare its answer with want (hex). */
static void golden(const char *req_hex, const char *want_hex)
{
    uint8_t req[512], want[512];
    size_t n = unhex(req_hex, req), wn = unhex(want_hex, want);
    rn_kwriter w;
    rn_kwriter_init(&w);
    cr_assert_eq(rn_kafka_dry_run_copy(req, n, &w), 0, "request refused: %s", req_hex);
    char got[1200] = "";
    for (size_t i = 0; i < w.len && i < 590; i++)
        sprintf(got + 2 * i, "%02x", w.buf[i]);
    cr_assert_eq(w.len, wn, "length %zu, wanted %zu: %s", w.len, wn, got);
    cr_assert(memcmp(w.buf, want, wn) == 0, "got %s", got);
    rn_kwriter_fini(&w);
}

static int run(const char *req_hex)
{
    uint8_t req[512];
    size_t n = unhex(req_hex, req);
    rn_kwriter w;
    rn_kwriter_init(&w);
    int rc = rn_kafka_dry_run_copy(req, n, &w);
    rn_kwriter_fini(&w);
    return rc;
}

#define HDR(key, ver, cid)                                                                         \
    key ver cid "0004"                                                                             \
                "6b636174"

/* ---- InitProducerId (22) ---------------------------------------------------------- */

// InitProducerId v0: null transactional id; with no broker, UNKNOWN_SERVER_ERROR and id/epoch -1.
Test(kafka_admin, init_producer_id_v0)
{
    golden(HDR("0016", "0000", "00000005") "ffff"
                                           "0000ea60",
           "00000014"
           "00000005"
           "00000000"         /* throttle_time_ms */
           "ffff"             /* error: UNKNOWN_SERVER_ERROR (no broker) */
           "ffffffffffffffff" /* producer_id */
           "ffff");           /* producer_epoch */
}

// InitProducerId v2 is flexible: header v2 in, response header v1 and tags out.
Test(kafka_admin, init_producer_id_v2_flexible)
{
    golden(HDR("0016", "0002", "00000006") "00" /* header tags */
                                           "00" /* compact null transactional id */
                                           "0000ea60"
                                           "00", /* tags */
           "00000016"
           "00000006"
           "00" /* response header v1 tags */
           "00000000"
           "ffff"
           "ffffffffffffffff"
           "ffff"
           "00");
}

// InitProducerId v3 and v4 (KIP-360; librdkafka 2.0.2 asks for v4) add the producer's own id
// and epoch: none (-1, -1) or both; with no broker the answer is the native call's error, in
// v2's flexible layout. An id without an epoch is INVALID_REQUEST (42) without a native call.
Test(kafka_admin, init_producer_id_v3_v4)
{
#define IPID_ANSWER(cid, err)                                                                      \
    "00000016" cid "00"                                                                            \
    "00000000" err "ffffffffffffffff"                                                              \
    "ffff"                                                                                         \
    "00"
    golden(HDR("0016", "0003", "00000020") "00"
                                           "00"
                                           "0000ea60"
                                           "ffffffffffffffff"
                                           "ffff"
                                           "00",
           IPID_ANSWER("00000020", "ffff"));
    golden(HDR("0016", "0004", "00000021") "00"
                                           "00"
                                           "0000ea60"
                                           "0000000000000007"
                                           "0003"
                                           "00",
           IPID_ANSWER("00000021", "ffff"));
    golden(HDR("0016", "0004", "00000022") "00"
                                           "00"
                                           "0000ea60"
                                           "0000000000000007"
                                           "ffff"
                                           "00",
           IPID_ANSWER("00000022", "002a"));
    golden(HDR("0016", "0003", "00000023") "00"
                                           "00"
                                           "0000ea60"
                                           "ffffffffffffffff"
                                           "0000"
                                           "00",
           IPID_ANSWER("00000023", "002a"));
#undef IPID_ANSWER
}

// Every cut of an InitProducerId v4 body is refused, never read past its end.
Test(kafka_admin, init_producer_id_v4_cuts_refused)
{
    const char *full = HDR("0016", "0004", "00000024") "00"
                                                       "00"
                                                       "0000ea60"
                                                       "0000000000000007"
                                                       "0003"
                                                       "00";
    size_t hdr = 2 * (2 + 2 + 4 + 2 + 4 + 1); /* hex digits up to the header tags */
    char cut[128];
    for (size_t n = hdr; n < strlen(full); n += 2) {
        memcpy(cut, full, n);
        cut[n] = 0;
        cr_assert_eq(run(cut), -RN_E_INVALID_REQUEST, "cut at %zu hex digits", n);
    }
}

// A transactional id longer than the frame, or a cut body: refused, nothing allocated.
Test(kafka_admin, init_producer_id_malformed)
{
    cr_assert_eq(run(HDR("0016", "0000", "00000007") "7fff"
                                                     "41"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0016", "0000", "00000007") "ffff"
                                                     "0000"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0016", "0002", "00000007") "00"
                                                     "ff0f"),
                 -RN_E_INVALID_REQUEST);
}

/* ---- OffsetsForLeaderEpoch (23) ----------------------------------------------------- */

// OffsetsForLeaderEpoch v3 and v0: every partition answered in request order, fields by version.
Test(kafka_admin, offsets_for_leader_epoch_versions)
{
    golden(HDR("0017", "0003", "00000008") "ffffffff" /* replica_id */
                                           "00000001"
                                           "0001"
                                           "74"
                                           "00000002"
                                           "00000000"
                                           "ffffffff" /* current_leader_epoch */
                                           "00000000" /* leader_epoch */
                                           "00000001"
                                           "00000000"
                                           "00000002",
           "00000037"
           "00000008"
           "00000000" /* throttle_time_ms */
           "00000001"
           "0001"
           "74"
           "00000002"
           "ffff"
           "00000000"
           "ffffffff"
           "ffffffffffffffff"
           "ffff"
           "00000001"
           "ffffffff"
           "ffffffffffffffff");
    golden(HDR("0017", "0000", "00000009") "00000001"
                                           "0001"
                                           "74"
                                           "00000001"
                                           "00000003"
                                           "00000000",
           "0000001d"
           "00000009"
           "00000001"
           "0001"
           "74"
           "00000001"
           "ffff"
           "00000003"
           "ffffffffffffffff");
}

// A partition count the bytes cannot hold, or a partition cut short: refused.
Test(kafka_admin, offsets_for_leader_epoch_malformed)
{
    cr_assert_eq(run(HDR("0017", "0002", "0000000a") "00000001"
                                                     "0001"
                                                     "74"
                                                     "0fffffff"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0017", "0002", "0000000a") "00000001"
                                                     "0001"
                                                     "74"
                                                     "00000001"
                                                     "00000000"
                                                     "ffffffff"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0017", "0003", "0000000a") "ffffffff"
                                                     "7fffffff"),
                 -RN_E_INVALID_REQUEST);
}

// OffsetsForLeaderEpoch v4 is flexible: compact arrays and strings, tags per partition, per
// topic and at the end, response header v1.
Test(kafka_admin, offsets_for_leader_epoch_v4_flexible)
{
    golden(HDR("0017", "0004", "00000015") "00"       /* header tags */
                                           "ffffffff" /* replica_id */
                                           "02"       /* compact: 1 topic */
                                           "0274"     /* compact "t" */
                                           "02"       /* 1 partition */
                                           "00000000"
                                           "ffffffff"
                                           "00000000"
                                           "00" /* partition tags */
                                           "00" /* topic tags */
                                           "00",
           "00000022"
           "00000015"
           "00"
           "00000000"
           "02"
           "0274"
           "02"
           "ffff"
           "00000000"
           "ffffffff"
           "ffffffffffffffff"
           "00"
           "00"
           "00");
    /* A tagged field whose size runs past the frame. */
    cr_assert_eq(run(HDR("0017", "0004", "00000016") "00"
                                                     "ffffffff"
                                                     "02"
                                                     "0274"
                                                     "02"
                                                     "00000000"
                                                     "ffffffff"
                                                     "00000000"
                                                     "01"
                                                     "00"
                                                     "7f"),
                 -RN_E_INVALID_REQUEST);
}

/* ---- CreatePartitions (37) ---------------------------------------------------------- */

// CreatePartitions v1: a grow goes to the broker (none here); manual assignments and a count
// of 0 are refused with their own codes and reasons, in request order.
Test(kafka_admin, create_partitions_results)
{
    golden(HDR("0025", "0001", "0000000b") "00000003"
                                           "0001"
                                           "61"
                                           "00000004"
                                           "ffffffff" /* assignments: null */
                                           "0001"
                                           "62"
                                           "00000004"
                                           "00000001"
                                           "00000001"
                                           "00000001" /* [[1]] */
                                           "0001"
                                           "63"
                                           "00000000"
                                           "ffffffff"
                                           "00007530" /* timeout_ms */
                                           "00",      /* validate_only */
           "00000090"
           "0000000b"
           "00000000"
           "00000003"
           "0001"
           "61"
           "ffff"
           "ffff"
           "0001"
           "62"
           "002a"
           "004b"
           "6d616e75616c207265706c6963612061737369676e6d656e747320617265206e6f7420737570706f"
           "727465643a2072756e6e656c20706c61636573207265706c6963617320697473656c66"
           "0001"
           "63"
           "0025"
           "0024"
           "74686520706172746974696f6e20636f756e74206d75737420626520706f736974697665");
}

// CreatePartitions v2 is flexible: compact names and nullable assignments, tags, response
// header v1; a count of 0 answered with its reason as a compact string.
Test(kafka_admin, create_partitions_v2_flexible)
{
    golden(HDR("0025", "0002", "00000017") "00"
                                           "02" /* 1 topic */
                                           "0263"
                                           "00000000"
                                           "00" /* assignments: null */
                                           "00" /* topic tags */
                                           "00007530"
                                           "00"
                                           "00",
           "00000035"
           "00000017"
           "00"
           "00000000"
           "02"
           "0263"
           "0025"
           "25"
           "74686520706172746974696f6e20636f756e74206d75737420626520706f736974697665"
           "00"
           "00");
}

// Assignments whose broker list outruns the frame, or a missing validate_only: refused.
Test(kafka_admin, create_partitions_malformed)
{
    cr_assert_eq(run(HDR("0025", "0000", "0000000c") "00000001"
                                                     "0001"
                                                     "61"
                                                     "00000004"
                                                     "00000001"
                                                     "00100000"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0025", "0000", "0000000c") "00000001"
                                                     "0001"
                                                     "61"
                                                     "00000004"
                                                     "ffffffff"
                                                     "00007530"),
                 -RN_E_INVALID_REQUEST);
}

/* ---- DescribeConfigs (32) ----------------------------------------------------------- */

// DescribeConfigs v1: a topic (no broker: UNKNOWN_SERVER_ERROR), another node's broker
// resource (INVALID_REQUEST, ask that broker) and an unknown resource type, each with
// its error, type and name, in request order.
Test(kafka_admin, describe_configs_results)
{
    golden(HDR("0020", "0001", "0000000d") "00000003"
                                           "02"
                                           "0001"
                                           "74"
                                           "ffffffff" /* every key */
                                           "04"
                                           "0001"
                                           "37"
                                           "00000001"
                                           "0001"
                                           "78" /* key "x" */
                                           "09"
                                           "0001"
                                           "7a"
                                           "ffffffff"
                                           "01", /* include_synonyms */
           "0000008a"
           "0000000d"
           "00000000"
           "00000003"
           "ffff"
           "ffff"
           "02"
           "0001"
           "74"
           "00000000"
           "002a"
           "0025"
           "746869732069732062726f6b657220313a2061736b2062726f6b6572203720697473656c66"
           "04"
           "0001"
           "37"
           "00000000"
           "002a"
           "0035"
           "6f6e6c7920544f504943202832292061"
           "6e642042524f4b455220283429207265736f75726365732061726520646573637269626564"
           "09"
           "0001"
           "7a"
           "00000000");
}

// Keys whose count outruns the frame, a null name, a cut resource: refused.
Test(kafka_admin, describe_configs_malformed)
{
    cr_assert_eq(run(HDR("0020", "0000", "0000000e") "00000001"
                                                     "02"
                                                     "0001"
                                                     "74"
                                                     "7fffffff"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0020", "0000", "0000000e") "00000001"
                                                     "02"
                                                     "ffff"
                                                     "ffffffff"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0020", "0001", "0000000e") "00000001"
                                                     "02"
                                                     "0001"
                                                     "74"
                                                     "ffffffff"),
                 -RN_E_INVALID_REQUEST); /* include_synonyms missing */
}

/* ---- SASL (17, 36) ------------------------------------------------------------------ */

// SaslHandshake: UNSUPPORTED_SASL_MECHANISM and no enabled mechanism; SaslAuthenticate v0/v1:
// the same code with "SASL is not enabled on this listener" (v1: + session lifetime).
Test(kafka_admin, sasl_refused)
{
    golden(HDR("0011", "0001", "0000000f") "0005"
                                           "504c41494e",
           "0000000a"
           "0000000f"
           "0021"
           "00000000");
    golden(HDR("0024", "0000", "00000010") "00000003"
                                           "616263",
           "00000030"
           "00000010"
           "0021"
           "0024"
           "5341534c206973206e6f7420656e61626c6564206f6e2074686973206c697374656e6572"
           "00000000");
    golden(HDR("0024", "0001", "00000011") "00000000",
           "00000038"
           "00000011"
           "0021"
           "0024"
           "5341534c206973206e6f7420656e61626c6564206f6e2074686973206c697374656e6572"
           "00000000"
           "0000000000000000");
}

// SaslAuthenticate v2 is flexible: compact bytes in; compact message, empty compact bytes,
// session lifetime and tags out, response header v1.
Test(kafka_admin, sasl_authenticate_v2_flexible)
{
    golden(HDR("0024", "0002", "00000018") "00"
                                           "04616263"
                                           "00",
           "00000036"
           "00000018"
           "00"
           "0021"
           "25"
           "5341534c206973206e6f7420656e61626c6564206f6e2074686973206c697374656e6572"
           "01"
           "0000000000000000"
           "00");
}

// SASL bodies cut short: refused.
Test(kafka_admin, sasl_malformed)
{
    cr_assert_eq(run(HDR("0011", "0000", "00000012") "0009"
                                                     "504c41"),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(run(HDR("0024", "0001", "00000012") "00001000"
                                                     "00"),
                 -RN_E_INVALID_REQUEST);
}

// Versions outside the advertised ranges are UNSUPPORTED_VERSION, as for every API.
Test(kafka_admin, versions_outside_the_table)
{
    golden(HDR("0016", "0005", "00000013") "00", "00000006"
                                                 "00000013"
                                                 "0023");
    golden(HDR("0020", "0003", "00000014"), "00000006"
                                            "00000014"
                                            "0023");
}
