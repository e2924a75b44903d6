/*
 * codec.c — Kafka's primitive types, frames and headers, sans-I/O (see codec.h).
 *
 * Invariants:
 *   1. A read never looks past rd->len: each primitive checks the bytes it
 *      needs first, and a length or count is compared with what is left
 *      before it is returned, so no caller sizes anything by a number the
 *      frame cannot back.
 *   2. The first failure is sticky (rd->err, rd->why); later reads return
 *      zero values and move nothing.
 *   3. The writer never fails half-way silently: an allocation failure sets
 *      oom, later writes are dropped, the caller checks oom once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/codec.h"
#include "protocol/errors.h"

/* ---- Errors ---------------------------------------------------------------- */

int16_t rn_kafka_error(int rn_code)
{
    if (rn_code == 0)
        return RN_KAFKA_NONE;
    int c = rn_code < 0 ? -rn_code : rn_code;
    switch (c) {
    case RN_E_UNKNOWN_TOPIC:
        return RN_KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    case RN_E_NOT_LEADER:
        return RN_KAFKA_NOT_LEADER_OR_FOLLOWER;
    case RN_E_OFFSET_OUT_OF_RANGE:
        return RN_KAFKA_OFFSET_OUT_OF_RANGE;
    case RN_E_FENCED_LEADER_EPOCH:
        return RN_KAFKA_FENCED_LEADER_EPOCH;
    case RN_E_UNKNOWN_LEADER_EPOCH:
        return RN_KAFKA_UNKNOWN_LEADER_EPOCH;
    case RN_E_NOT_ENOUGH_REPLICAS:
        return RN_KAFKA_NOT_ENOUGH_REPLICAS;
    case RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        return RN_KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND;
    case RN_E_OFFSET_NOT_AVAILABLE:
        return RN_KAFKA_OFFSET_NOT_AVAILABLE;
    case RN_E_TOPIC_EXISTS:
        return RN_KAFKA_TOPIC_ALREADY_EXISTS;
    case RN_E_INVALID_TOPIC:
        return RN_KAFKA_INVALID_TOPIC_EXCEPTION;
    case RN_E_INVALID_PARTITIONS:
        return RN_KAFKA_INVALID_PARTITIONS;
    case RN_E_INVALID_CONFIG:
        return RN_KAFKA_INVALID_CONFIG;
    case RN_E_INVALID_REQUEST:
    case RN_E_UNKNOWN_API:
        return RN_KAFKA_INVALID_REQUEST;
    case RN_E_UNSUPPORTED_VERSION:
        return RN_KAFKA_UNSUPPORTED_VERSION;
    case RN_E_TIMEOUT:
        return RN_KAFKA_REQUEST_TIMED_OUT;
    case RN_E_MESSAGE_TOO_LARGE:
        return RN_KAFKA_MESSAGE_TOO_LARGE;
    case RN_E_REQUEST_TOO_LARGE:
        return RN_KAFKA_RECORD_LIST_TOO_LARGE;
    case RN_E_BATCH_BAD_ATTRIBUTES:
        /* gzip, snappy and lz4 are refused here until issue 15's codecs. */
        return RN_KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
    case RN_E_DUPLICATE_SEQUENCE:
        return RN_KAFKA_DUPLICATE_SEQUENCE_NUMBER;
    case RN_E_OUT_OF_ORDER_SEQUENCE:
        return RN_KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case RN_E_UNKNOWN_PRODUCER:
        return RN_KAFKA_UNKNOWN_PRODUCER_ID;
    case RN_E_PRODUCER_FENCED:
        return RN_KAFKA_INVALID_PRODUCER_EPOCH;
    case RN_E_STORAGE_ERROR:
    case RN_E_CORRUPT_INDEX:
    case RN_E_CORRUPT_SEGMENT:
    case RN_E_CORRUPT_FILE:
    case RN_E_LOG_FAILED:
        return RN_KAFKA_KAFKA_STORAGE_ERROR;
    case RN_E_UNKNOWN_GROUP:
        return RN_KAFKA_GROUP_ID_NOT_FOUND;
    case RN_E_GROUP_NOT_EMPTY:
        return RN_KAFKA_NON_EMPTY_GROUP;
    case RN_E_UNKNOWN_MEMBER:
        return RN_KAFKA_UNKNOWN_MEMBER_ID;
    case RN_E_FENCED_MEMBER_EPOCH:
    case RN_E_ILLEGAL_GENERATION:
        return RN_KAFKA_ILLEGAL_GENERATION;
    case RN_E_INCONSISTENT_GROUP_PROTOCOL:
        return RN_KAFKA_INCONSISTENT_GROUP_PROTOCOL;
    case RN_E_REBALANCE_IN_PROGRESS:
        return RN_KAFKA_REBALANCE_IN_PROGRESS;
    case RN_E_MEMBER_ID_REQUIRED:
        return RN_KAFKA_MEMBER_ID_REQUIRED;
    case RN_E_INVALID_SESSION_TIMEOUT:
        return RN_KAFKA_INVALID_SESSION_TIMEOUT;
    case RN_E_NOT_COORDINATOR:
        return RN_KAFKA_NOT_COORDINATOR;
    case RN_E_COORDINATOR_NOT_AVAILABLE:
        return RN_KAFKA_COORDINATOR_NOT_AVAILABLE;
    case RN_E_COORDINATOR_LOAD_IN_PROGRESS:
        return RN_KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
    default:
        break;
    }
    /* Every malformed-batch code of 1200..1299 (but the two above). */
    if (c >= RN_E_CORRUPT_BATCH && c < RN_E_CORRUPT_BATCH + 100)
        return RN_KAFKA_CORRUPT_MESSAGE;
    return RN_KAFKA_UNKNOWN_SERVER_ERROR;
}

/* ---- Reading ----------------------------------------------------------------- */

static void fail(rn_kreader *rd, const char *why)
{
    if (!rd->err) {
        rd->err = -RN_E_INVALID_REQUEST;
        rd->why = why;
    }
}

void rn_kreader_init(rn_kreader *rd, const void *buf, size_t len)
{
    rd->p = buf;
    rd->len = len;
    rd->pos = 0;
    rd->err = 0;
    rd->why = "";
}

size_t rn_kreader_left(const rn_kreader *rd)
{
    return rd->err ? 0 : rd->len - rd->pos;
}

static const uint8_t *take(rn_kreader *rd, size_t n, const char *why)
{
    if (rd->err)
        return NULL;
    if (n > rd->len - rd->pos) {
        fail(rd, why);
        return NULL;
    }
    const uint8_t *p = rd->p + rd->pos;
    rd->pos += n;
    return p;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int8_t rn_kread_i8(rn_kreader *rd)
{
    const uint8_t *p = take(rd, 1, "truncated int8");
    return p ? (int8_t)p[0] : 0;
}

int16_t rn_kread_i16(rn_kreader *rd)
{
    const uint8_t *p = take(rd, 2, "truncated int16");
    return p ? (int16_t)be(p, 2) : 0;
}

int32_t rn_kread_i32(rn_kreader *rd)
{
    const uint8_t *p = take(rd, 4, "truncated int32");
    return p ? (int32_t)be(p, 4) : 0;
}

int64_t rn_kread_i64(rn_kreader *rd)
{
    const uint8_t *p = take(rd, 8, "truncated int64");
    return p ? (int64_t)be(p, 8) : 0;
}

uint32_t rn_kread_uvarint(rn_kreader *rd)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < 5; i++) {
        const uint8_t *p = take(rd, 1, "truncated varint");
        if (!p)
            return 0;
        /* The fifth byte holds the top 4 bits only. */
        if (i == 4 && (p[0] & 0xf0)) {
            fail(rd, "varint overflows 32 bits");
            return 0;
        }
        v |= (uint32_t)(p[0] & 0x7f) << (7 * i);
        if (!(p[0] & 0x80))
            return v;
    }
    fail(rd, "varint longer than 5 bytes");
    return 0;
}

int32_t rn_kread_varint(rn_kreader *rd)
{
    uint32_t u = rn_kread_uvarint(rd);
    return (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
}

static rn_kstr null_str(void)
{
    return (rn_kstr){.data = NULL, .len = -1};
}

/* n bytes of string/bytes data, checked against what is left. */
static rn_kstr take_str(rn_kreader *rd, int64_t n, const char *why)
{
    if (rd->err)
        return null_str();
    if (n < 0 || (uint64_t)n > rd->len - rd->pos) {
        fail(rd, why);
        return null_str();
    }
    rn_kstr s = {.data = rd->p + rd->pos, .len = (int32_t)n};
    rd->pos += (size_t)n;
    return s;
}

rn_kstr rn_kread_string(rn_kreader *rd, bool nullable)
{
    int16_t n = rn_kread_i16(rd);
    if (rd->err)
        return null_str();
    if (n == -1 && nullable)
        return null_str();
    return take_str(rd, n, n < 0 ? "negative string length" : "string past the end");
}

rn_kstr rn_kread_compact_string(rn_kreader *rd, bool nullable)
{
    uint32_t n = rn_kread_uvarint(rd);
    if (rd->err)
        return null_str();
    if (n == 0) {
        if (!nullable)
            fail(rd, "null where a string is required");
        return null_str();
    }
    if (n - 1 > INT16_MAX) { /* Kafka's strings are at most 32767 bytes */
        fail(rd, "compact string longer than 32767");
        return null_str();
    }
    return take_str(rd, (int64_t)n - 1, "compact string past the end");
}

rn_kstr rn_kread_bytes(rn_kreader *rd, bool nullable)
{
    int32_t n = rn_kread_i32(rd);
    if (rd->err)
        return null_str();
    if (n == -1 && nullable)
        return null_str();
    return take_str(rd, n, n < 0 ? "negative bytes length" : "bytes past the end");
}

rn_kstr rn_kread_compact_bytes(rn_kreader *rd, bool nullable)
{
    uint32_t n = rn_kread_uvarint(rd);
    if (rd->err)
        return null_str();
    if (n == 0) {
        if (!nullable)
            fail(rd, "null where bytes are required");
        return null_str();
    }
    return take_str(rd, (int64_t)n - 1, "compact bytes past the end");
}

rn_kstr rn_kread_str(rn_kreader *rd, bool flexible, bool nullable)
{
    rn_kstr s = flexible ? rn_kread_compact_string(rd, nullable) : rn_kread_string(rd, nullable);
    if (!nullable && !s.data && !rd->err)
        fail(rd, "null where a string is required");
    return s;
}

int32_t rn_kread_array(rn_kreader *rd, bool flexible, bool nullable, size_t min_elem)
{
    int64_t n;
    if (flexible) {
        uint32_t u = rn_kread_uvarint(rd);
        n = (int64_t)u - 1;
    } else {
        n = rn_kread_i32(rd);
    }
    if (rd->err)
        return 0;
    if (n < 0) {
        if (n == -1 && nullable)
            return -1;
        fail(rd, n == -1 ? "null where an array is required" : "negative array length");
        return 0;
    }
    if (min_elem == 0)
        min_elem = 1;
    if ((uint64_t)n > (rd->len - rd->pos) / min_elem) {
        fail(rd, "array count larger than the bytes left");
        return 0;
    }
    return (int32_t)n;
}

void rn_kread_tags(rn_kreader *rd)
{
    uint32_t n = rn_kread_uvarint(rd);
    /* Each tagged field is at least 2 bytes (tag, size). */
    if (!rd->err && n > (rd->len - rd->pos) / 2) {
        fail(rd, "tagged field count larger than the bytes left");
        return;
    }
    for (uint32_t i = 0; i < n && !rd->err; i++) {
        (void)rn_kread_uvarint(rd); /* tag */
        uint32_t size = rn_kread_uvarint(rd);
        take(rd, size, "tagged field past the end");
    }
}

void rn_kread_skip(rn_kreader *rd, size_t n)
{
    take(rd, n, "field past the end");
}

/* ---- Writing ------------------------------------------------------------------ */

void rn_kwriter_init(rn_kwriter *w)
{
    memset(w, 0, sizeof(*w));
}

void rn_kwriter_fini(rn_kwriter *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static uint8_t *room(rn_kwriter *w, size_t n)
{
    if (w->oom)
        return NULL;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->oom = true;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = true;
            return NULL;
        }
        w->buf = b;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void put_be(rn_kwriter *w, uint64_t v, unsigned n)
{
    uint8_t *p = room(w, n);
    if (!p)
        return;
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

void rn_kwrite_raw(rn_kwriter *w, const void *src, size_t n)
{
    uint8_t *p = room(w, n);
    if (p && n)
        memcpy(p, src, n);
}

void rn_kwrite_i8(rn_kwriter *w, int8_t v)
{
    put_be(w, (uint8_t)v, 1);
}

void rn_kwrite_i16(rn_kwriter *w, int16_t v)
{
    put_be(w, (uint16_t)v, 2);
}

void rn_kwrite_i32(rn_kwriter *w, int32_t v)
{
    put_be(w, (uint32_t)v, 4);
}

void rn_kwrite_i64(rn_kwriter *w, int64_t v)
{
    put_be(w, (uint64_t)v, 8);
}

void rn_kwrite_uvarint(rn_kwriter *w, uint32_t v)
{
    while (v >= 0x80) {
        uint8_t b = (uint8_t)(v | 0x80);
        rn_kwrite_raw(w, &b, 1);
        v >>= 7;
    }
    uint8_t b = (uint8_t)v;
    rn_kwrite_raw(w, &b, 1);
}

void rn_kwrite_strn(rn_kwriter *w, bool flexible, const char *s, size_t n)
{
    if (!s) {
        if (flexible)
            rn_kwrite_uvarint(w, 0);
        else
            rn_kwrite_i16(w, -1);
        return;
    }
    if (n > INT16_MAX)
        n = INT16_MAX; /* Kafka's strings are at most 32767 bytes */
    if (flexible)
        rn_kwrite_uvarint(w, (uint32_t)n + 1);
    else
        rn_kwrite_i16(w, (int16_t)n);
    rn_kwrite_raw(w, s, n);
}

void rn_kwrite_str(rn_kwriter *w, bool flexible, const char *s)
{
    rn_kwrite_strn(w, flexible, s, s ? strlen(s) : 0);
}

void rn_kwrite_array(rn_kwriter *w, bool flexible, int32_t n)
{
    if (flexible)
        rn_kwrite_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
    else
        rn_kwrite_i32(w, n < 0 ? -1 : n);
}

void rn_kwrite_tags(rn_kwriter *w, bool flexible)
{
    if (flexible)
        rn_kwrite_uvarint(w, 0);
}

void rn_kwrite_i32_at(rn_kwriter *w, size_t pos, int32_t v)
{
    if (w->oom || pos + 4 > w->len)
        return;
    uint32_t u = (uint32_t)v;
    for (unsigned i = 0; i < 4; i++)
        w->buf[pos + i] = (uint8_t)(u >> (8 * (3 - i)));
}

/* ---- Frames and headers ---------------------------------------------------------- */

int64_t rn_kafka_frame_size(const uint8_t *prefix, uint32_t max)
{
    int32_t n = (int32_t)be(prefix, 4);
    if (n < 8) /* api_key, api_version, correlation_id at least */
        return -RN_E_INVALID_REQUEST;
    if ((uint32_t)n > max)
        return -RN_E_REQUEST_TOO_LARGE;
    return n;
}

/* The first flexible version of each API key, from the "flexibleVersions" of
 * Kafka's message schemas; -1: none. Keys past the table are taken as not
 * flexible (runnel answers them UNSUPPORTED_VERSION with header v0). */
static const int8_t flexible_from[] = {
    [0] = 9,   /* Produce */
    [1] = 12,  /* Fetch */
    [2] = 6,   /* ListOffsets */
    [3] = 9,   /* Metadata */
    [4] = 4,   /* LeaderAndIsr */
    [5] = 2,   /* StopReplica */
    [6] = 6,   /* UpdateMetadata */
    [7] = 3,   /* ControlledShutdown */
    [8] = 8,   /* OffsetCommit */
    [9] = 6,   /* OffsetFetch */
    [10] = 3,  /* FindCoordinator */
    [11] = 6,  /* JoinGroup */
    [12] = 4,  /* Heartbeat */
    [13] = 4,  /* LeaveGroup */
    [14] = 4,  /* SyncGroup */
    [15] = 5,  /* DescribeGroups */
    [16] = 3,  /* ListGroups */
    [17] = -1, /* SaslHandshake */
    [18] = 3,  /* ApiVersions */
    [19] = 5,  /* CreateTopics */
    [20] = 4,  /* DeleteTopics */
    [21] = 2,  /* DeleteRecords */
    [22] = 2,  /* InitProducerId */
    [23] = 4,  /* OffsetForLeaderEpoch */
    [24] = 3,  /* AddPartitionsToTxn */
    [25] = 3,  /* AddOffsetsToTxn */
    [26] = 3,  /* EndTxn */
    [27] = 1,  /* WriteTxnMarkers */
    [28] = 3,  /* TxnOffsetCommit */
    [29] = 2,  /* DescribeAcls */
    [30] = 2,  /* CreateAcls */
    [31] = 2,  /* DeleteAcls */
    [32] = 4,  /* DescribeConfigs */
    [33] = 2,  /* AlterConfigs */
    [34] = 2,  /* AlterReplicaLogDirs */
    [35] = 2,  /* DescribeLogDirs */
    [36] = 2,  /* SaslAuthenticate */
    [37] = 2,  /* CreatePartitions */
    [38] = 2,  /* CreateDelegationToken */
    [39] = 2,  /* RenewDelegationToken */
    [40] = 2,  /* ExpireDelegationToken */
    [41] = 2,  /* DescribeDelegationToken */
    [42] = 2,  /* DeleteGroups */
    [43] = 2,  /* ElectLeaders */
    [44] = 1,  /* IncrementalAlterConfigs */
    [45] = 0,  /* AlterPartitionReassignments */
    [46] = 0,  /* ListPartitionReassignments */
    [47] = -1, /* OffsetDelete */
    [48] = 1,  /* DescribeClientQuotas */
    [49] = 1,  /* AlterClientQuotas */
    [50] = 0,  /* DescribeUserScramCredentials */
    [51] = 0,  /* AlterUserScramCredentials */
};

bool rn_kafka_flexible(int16_t api_key, int16_t api_version)
{
    if (api_key < 0 || (size_t)api_key >= sizeof(flexible_from) / sizeof(flexible_from[0]))
        return api_key >= 52 && api_key < 100; /* every newer API is flexible from v0 */
    int8_t from = flexible_from[api_key];
    return from >= 0 && api_version >= from;
}

int rn_kafka_header_parse(rn_kreader *rd, rn_kafka_header *h)
{
    memset(h, 0, sizeof(*h));
    h->client_id = null_str();
    h->api_key = rn_kread_i16(rd);
    h->api_version = rn_kread_i16(rd);
    h->correlation_id = rn_kread_i32(rd);
    if (rd->err)
        return rd->err;
    h->flexible = rn_kafka_flexible(h->api_key, h->api_version);
    /* client_id is a plain nullable string even in header v2 (KIP-482 kept
     * it so a broker can always read it). */
    h->client_id = rn_kread_string(rd, true);
    if (h->flexible)
        rn_kread_tags(rd);
    return rd->err;
}

void rn_kafka_response_begin(rn_kwriter *w, int32_t correlation_id, bool flexible)
{
    rn_kwrite_i32(w, 0); /* size, rn_kafka_response_end */
    rn_kwrite_i32(w, correlation_id);
    rn_kwrite_tags(w, flexible);
}

void rn_kafka_response_end(rn_kwriter *w, size_t extra)
{
    rn_kwrite_i32_at(w, 0, (int32_t)(w->len - 4 + extra));
}
