/*
 * kafka/codec.h — Kafka's wire protocol, sans-I/O: framing, request and
 * response headers, and the primitive types of its message schemas
 * (broker/kafka/codec.c). Written from Kafka's protocol guide and its JSON
 * message schemas; docs/kafka.md lists what the listener speaks.
 *
 * Frames: i32 size (bytes after it) | header | body, big-endian.
 *   request header v1: i16 api_key, i16 api_version, i32 correlation_id,
 *                      nullable string client_id (i16 length, -1 = null)
 *   request header v2: v1 + tagged fields (flexible versions)
 *   response header v0: i32 correlation_id; v1: + tagged fields
 * Flexible versions use compact strings/bytes/arrays (unsigned varint of
 * length + 1, 0 = null) and end every struct with tagged fields.
 *
 * The reader never allocates: strings and bytes come back as borrowed
 * (pointer, length) slices of the frame, and every length and array count is
 * checked against the bytes that are left before the caller can act on it,
 * so a hostile count cannot make anyone allocate. Errors are sticky: after
 * the first one every read fails and returns zeros, so a decoder can read a
 * whole struct and check rd->err once.
 *
 * Nothing here touches a socket or keeps global state; thread-safe on
 * distinct objects.
 */
#ifndef RN_BROKER_KAFKA_CODEC_H
#define RN_BROKER_KAFKA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka's API keys (the ones runnel names; others are just numbers). */
enum {
    RN_KAFKA_PRODUCE = 0,
    RN_KAFKA_FETCH = 1,
    RN_KAFKA_LIST_OFFSETS = 2,
    RN_KAFKA_METADATA = 3,
    RN_KAFKA_OFFSET_COMMIT = 8,
    RN_KAFKA_OFFSET_FETCH = 9,
    RN_KAFKA_FIND_COORDINATOR = 10,
    RN_KAFKA_JOIN_GROUP = 11,
    RN_KAFKA_HEARTBEAT = 12,
    RN_KAFKA_LEAVE_GROUP = 13,
    RN_KAFKA_SYNC_GROUP = 14,
    RN_KAFKA_DESCRIBE_GROUPS = 15,
    RN_KAFKA_LIST_GROUPS = 16,
    RN_KAFKA_DELETE_GROUPS = 42,
    RN_KAFKA_API_VERSIONS = 18,
    RN_KAFKA_CREATE_TOPICS = 19,
    RN_KAFKA_DELETE_TOPICS = 20,
    RN_KAFKA_SASL_HANDSHAKE = 17,
    RN_KAFKA_INIT_PRODUCER_ID = 22,
    RN_KAFKA_OFFSETS_FOR_LEADER_EPOCH = 23,
    RN_KAFKA_DESCRIBE_CONFIGS = 32,
    RN_KAFKA_SASL_AUTHENTICATE = 36,
    RN_KAFKA_CREATE_PARTITIONS = 37,
};

/* Kafka's error codes (the ones runnel answers with). */
enum {
    RN_KAFKA_UNKNOWN_SERVER_ERROR = -1,
    RN_KAFKA_NONE = 0,
    RN_KAFKA_OFFSET_OUT_OF_RANGE = 1,
    RN_KAFKA_CORRUPT_MESSAGE = 2,
    RN_KAFKA_UNKNOWN_TOPIC_OR_PARTITION = 3,
    RN_KAFKA_LEADER_NOT_AVAILABLE = 5,
    RN_KAFKA_NOT_LEADER_OR_FOLLOWER = 6,
    RN_KAFKA_REQUEST_TIMED_OUT = 7,
    RN_KAFKA_MESSAGE_TOO_LARGE = 10,
    RN_KAFKA_INVALID_TOPIC_EXCEPTION = 17,
    RN_KAFKA_RECORD_LIST_TOO_LARGE = 18,
    RN_KAFKA_COORDINATOR_NOT_AVAILABLE = 15,
    RN_KAFKA_NOT_COORDINATOR = 16,
    RN_KAFKA_COORDINATOR_LOAD_IN_PROGRESS = 14,
    RN_KAFKA_NOT_ENOUGH_REPLICAS = 19,
    RN_KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20,
    RN_KAFKA_UNSUPPORTED_SASL_MECHANISM = 33,
    RN_KAFKA_ILLEGAL_SASL_STATE = 34,
    RN_KAFKA_ILLEGAL_GENERATION = 22,
    RN_KAFKA_INCONSISTENT_GROUP_PROTOCOL = 23,
    RN_KAFKA_INVALID_GROUP_ID = 24,
    RN_KAFKA_UNKNOWN_MEMBER_ID = 25,
    RN_KAFKA_INVALID_SESSION_TIMEOUT = 26,
    RN_KAFKA_REBALANCE_IN_PROGRESS = 27,
    RN_KAFKA_UNSUPPORTED_VERSION = 35,
    RN_KAFKA_TOPIC_ALREADY_EXISTS = 36,
    RN_KAFKA_INVALID_PARTITIONS = 37,
    RN_KAFKA_INVALID_REPLICATION_FACTOR = 38,
    RN_KAFKA_INVALID_CONFIG = 40,
    RN_KAFKA_INVALID_REQUEST = 42,
    RN_KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    RN_KAFKA_DUPLICATE_SEQUENCE_NUMBER = 46,
    RN_KAFKA_INVALID_PRODUCER_EPOCH = 47,
    RN_KAFKA_KAFKA_STORAGE_ERROR = 56,
    RN_KAFKA_UNKNOWN_PRODUCER_ID = 59,
    RN_KAFKA_NON_EMPTY_GROUP = 68,
    RN_KAFKA_GROUP_ID_NOT_FOUND = 69,
    RN_KAFKA_FENCED_LEADER_EPOCH = 74,
    RN_KAFKA_UNKNOWN_LEADER_EPOCH = 75,
    RN_KAFKA_UNSUPPORTED_COMPRESSION_TYPE = 76,
    RN_KAFKA_OFFSET_NOT_AVAILABLE = 78,
    RN_KAFKA_MEMBER_ID_REQUIRED = 79,
};

/* The Kafka error code for a runnel error: a wire code of protocol/errors.def
 * (positive, as carried in runnel.proto) or a negative -RN_E_* / -errno as
 * functions return them; 0 is 0. One table (codec.c) for every API. */
int16_t rn_kafka_error(int rn_code);

/* ---- Reading -------------------------------------------------------------- */

typedef struct rn_kreader {
    const uint8_t *p;
    size_t len, pos;
    int err;         /* 0, or -RN_E_INVALID_REQUEST once anything was out of bounds */
    const char *why; /* what failed first (static text) */
} rn_kreader;

/* A borrowed string or bytes field; data NULL with len -1 is null. */
typedef struct rn_kstr {
    const uint8_t *data;
    int32_t len;
} rn_kstr;

void rn_kreader_init(rn_kreader *rd, const void *buf, size_t len);
size_t rn_kreader_left(const rn_kreader *rd);
int8_t rn_kread_i8(rn_kreader *rd);
int16_t rn_kread_i16(rn_kreader *rd);
int32_t rn_kread_i32(rn_kreader *rd);
int64_t rn_kread_i64(rn_kreader *rd);
/* Unsigned varint (at most 5 bytes, value < 2^32) and zigzag varint. */
uint32_t rn_kread_uvarint(rn_kreader *rd);
int32_t rn_kread_varint(rn_kreader *rd);
/* string: i16 length (-1 null when nullable, else an error); compact: uvarint
 * length + 1. The bytes must all be there. */
rn_kstr rn_kread_string(rn_kreader *rd, bool nullable);
rn_kstr rn_kread_compact_string(rn_kreader *rd, bool nullable);
/* bytes: i32 length (-1 null when nullable). */
rn_kstr rn_kread_bytes(rn_kreader *rd, bool nullable);
rn_kstr rn_kread_compact_bytes(rn_kreader *rd, bool nullable);
/* A string in either encoding. */
rn_kstr rn_kread_str(rn_kreader *rd, bool flexible, bool nullable);
/* Array count: i32 (-1 = null, returned as -1 when nullable) or compact
 * (uvarint count + 1). A count whose elements (at least min_elem bytes each)
 * cannot fit in what is left is an error, checked here, so the caller may
 * size an allocation by it. */
int32_t rn_kread_array(rn_kreader *rd, bool flexible, bool nullable, size_t min_elem);
/* Tagged fields: skipped (runnel reads none yet), every size bounds-checked. */
void rn_kread_tags(rn_kreader *rd);
/* Skip n bytes. */
void rn_kread_skip(rn_kreader *rd, size_t n);

/* ---- Writing -------------------------------------------------------------- */

/* A growing buffer. On allocation failure oom is set and further writes are
 * dropped; check it once at the end. */
typedef struct rn_kwriter {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} rn_kwriter;

void rn_kwriter_init(rn_kwriter *w);
void rn_kwriter_fini(rn_kwriter *w);
void rn_kwrite_raw(rn_kwriter *w, const void *p, size_t n);
void rn_kwrite_i8(rn_kwriter *w, int8_t v);
void rn_kwrite_i16(rn_kwriter *w, int16_t v);
void rn_kwrite_i32(rn_kwriter *w, int32_t v);
void rn_kwrite_i64(rn_kwriter *w, int64_t v);
void rn_kwrite_uvarint(rn_kwriter *w, uint32_t v);
/* string: s NULL = null (i16 -1, or compact 0). */
void rn_kwrite_str(rn_kwriter *w, bool flexible, const char *s);
void rn_kwrite_strn(rn_kwriter *w, bool flexible, const char *s, size_t n);
/* Array count (n < 0: null). */
void rn_kwrite_array(rn_kwriter *w, bool flexible, int32_t n);
/* Empty tagged fields (flexible versions only: a no-op otherwise). */
void rn_kwrite_tags(rn_kwriter *w, bool flexible);
/* Overwrite 4 bytes at pos with v (a size written after the fact). */
void rn_kwrite_i32_at(rn_kwriter *w, size_t pos, int32_t v);

/* ---- Frames and headers --------------------------------------------------- */

/* What the size prefix of a frame says, given the first 4 bytes (n >= 4):
 * the body length, or -RN_E_INVALID_REQUEST (negative or shorter than a
 * request header's fixed 8 bytes) or -RN_E_REQUEST_TOO_LARGE (above max). */
int64_t rn_kafka_frame_size(const uint8_t *prefix, uint32_t max);

typedef struct rn_kafka_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    rn_kstr client_id;
    bool flexible; /* header v2 (and the body uses compact types) */
} rn_kafka_header;

/* Is (api_key, api_version) a flexible version (KIP-482)? From the schemas'
 * "flexibleVersions"; an API runnel does not know is taken as not. */
bool rn_kafka_flexible(int16_t api_key, int16_t api_version);

/* Parse a request header at the start of a frame body (after the size).
 * api_key, api_version and correlation_id are filled as soon as their 8
 * bytes are there, also when the rest fails, so the caller can answer. On
 * success rd is left at the body. Errors: -RN_E_INVALID_REQUEST. */
int rn_kafka_header_parse(rn_kreader *rd, rn_kafka_header *h);

/* Start a response frame in w: size placeholder, correlation id, and the
 * tagged fields of header v1 when flexible (ApiVersions is always answered
 * with header v0: pass false). Finish it with rn_kafka_response_end, which
 * writes the size (w->len - 4 at that point, or total when the body goes on
 * in other buffers: pass their length as extra). */
void rn_kafka_response_begin(rn_kwriter *w, int32_t correlation_id, bool flexible);
void rn_kafka_response_end(rn_kwriter *w, size_t extra);

#endif
