/*
 * json.h — JSON for the gateways (internal to broker/gateway/): records to
 * JSON and back, base64, REST Proxy error codes.
 *
 * Two renderings of keys, values and header values (REST Proxy v2 formats):
 *   RN_GW_FMT_JSON    application/vnd.kafka.json.v2+json and application/json:
 *                     bytes that parse as JSON are embedded as that JSON,
 *                     other UTF-8 text as a JSON string, anything else as a
 *                     base64 string (so no record is ever unrenderable);
 *   RN_GW_FMT_BINARY  application/vnd.kafka.binary.v2+json: base64 strings.
 * A null key or value is JSON null in both.
 *
 * Nothing here does I/O; all bounded by the sizes given.
 */
#ifndef RN_GATEWAY_JSON_H
#define RN_GATEWAY_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/gateway/http.h"

enum rn_gw_format { RN_GW_FMT_JSON, RN_GW_FMT_BINARY };

#define RN_GW_CT_JSON_V2   "application/vnd.kafka.json.v2+json"
#define RN_GW_CT_BINARY_V2 "application/vnd.kafka.binary.v2+json"
#define RN_GW_CT_V2        "application/vnd.kafka.v2+json"

/* ---- Requests → bytes ----------------------------------------------------------------- */

/* The bytes a key, value or header value given in a request stands for.
 * JSON format: a string is stored as its JSON text ("\"a\"") unless
 * raw_strings (WebSocket produce: the text itself); any other JSON as its
 * compact text. Binary format: a base64 string. null: *out = NULL, *null = true.
 * *out is malloc'd (caller frees). Errors: -EINVAL with a message, -ENOMEM. */
int rn_json_bytes_of(json_t *v, enum rn_gw_format fmt, bool raw_strings, uint8_t **out, size_t *len,
                     bool *null, char *err, size_t errlen);

/* ---- Records → JSON ------------------------------------------------------------------- */

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF (what
 * jansson takes as a string, and what a WebSocket text frame must be). */
bool rn_utf8_valid(const uint8_t *s, size_t n);

/* A key, value or header value as JSON (len -1: null). New reference. The
 * renderer below writes the same text without building the tree. */
json_t *rn_json_of_bytes(const uint8_t *p, int32_t len, enum rn_gw_format fmt);

/* One record rendered as compact JSON text:
 * {"topic","partition","offset","timestamp","key","value","headers"}. */
typedef struct rn_json_rec {
    int64_t offset;
    const char *json; /* not NUL-terminated */
    size_t len;
} rn_json_rec;

/* Called per record; return <0 to stop (that value is returned). */
typedef int (*rn_json_emit_cb)(void *arg, const rn_json_rec *rec);

/* A cache of rendered batches, shared by every tail of a gateway: a thousand
 * subscribers of one partition render each batch once, not a thousand times.
 * Keyed by topic, partition, base offset, size, CRC and format; least
 * recently used entries go first, and the whole stays under max_bytes. */
typedef struct rn_json_cache rn_json_cache;

#define RN_GW_RENDER_CACHE_ENTRIES 256
#define RN_GW_RENDER_CACHE_BYTES   (8u << 20)

/* Errors: -ENOMEM. */
int rn_json_cache_new(rn_json_cache **out, size_t max_entries, size_t max_bytes);
void rn_json_cache_free(rn_json_cache *c);
/* Lookups that found their batch, and batches rendered (for /metrics). */
void rn_json_cache_stats(const rn_json_cache *c, uint64_t *hits, uint64_t *misses);

/* Bounds of rendering (issue 11: a 10 KB zstd batch can hold 64 MiB).
 * RN_GW_MAX_UNCOMPRESSED: decompressed bytes of one batch and zstd's window,
 *   as a consumer client allows (rn_batch_verify's default);
 * RN_GW_MAX_RECORD_JSON: one record, as stored and as rendered text: larger
 *   is an error naming the record, never an allocation;
 * RN_GW_MAX_EMBED_JSON: a value that is JSON is embedded as JSON up to this
 *   size (parsed into a tree, which costs many times its text), as text above. */
#define RN_GW_MAX_UNCOMPRESSED (64u << 20)
#define RN_GW_MAX_RECORD_JSON  (16u << 20)
#define RN_GW_MAX_EMBED_JSON   (1u << 20)

/* What one answer may cost. The caller sets max_bytes (rendered text: a
 * record that would pass it is held back for the next answer, except the
 * answer's first, so a large record never stalls a reader) and max_scan
 * (bytes of records looked at from the wanted offset on, matching a filter
 * or not; 0: no bound) and overhead, zeroes the rest, and passes the same budget to every
 * rn_json_render_records of the answer. full: the answer stopped at its
 * budget; go on from *next. */
typedef struct rn_json_budget {
    size_t max_bytes, max_scan;
    size_t overhead; /* bytes the caller adds around each record (separators, framing) */
    size_t used, scanned, n;
    bool full;
    int emit_rc; /* the callback's negative value, once it returned one */
} rn_json_budget;

/* Emit the records of the batches in [data, data + len) whose offset is >=
 * from and whose key or value contains filter (filter_len 0: all), in order,
 * within the budget. A zstd batch is decompressed as it is read, never whole;
 * nothing is allocated in proportion to records_count. Each batch read from
 * its start is rendered once and cached (cache NULL: render, emit, forget);
 * an emitted text is valid until the callback returns. *next gets the offset
 * after the last record looked at (from when there were none), or, when the
 * budget held a record back, that record's offset. A whole batch whose
 * records do not decode (an older runneld stored it without validating them)
 * is passed over with a log line, so one bad batch does not fail every fetch
 * of its partition. Returns how many were emitted. When the budget already let records through
 * (bud->n > 0, this call or an earlier one of the answer), a bad or
 * oversized record ends the answer instead (bud->full, *next at it) so the
 * good ones go out; otherwise errors are: a negative batch error
 * (-RN_E_CORRUPT_BATCH and friends), -RN_E_MESSAGE_TOO_LARGE (the record at
 * *next is larger than RN_GW_MAX_RECORD_JSON as stored or rendered), -ENOMEM,
 * or the callback's negative value. */
int rn_json_render_records(rn_json_cache *cache, const char *topic, int32_t partition,
                           const uint8_t *data, size_t len, int64_t from, const char *filter,
                           size_t filter_len, enum rn_gw_format fmt, rn_json_budget *bud,
                           int64_t *next, rn_json_emit_cb emit, void *arg);

/* A growable text buffer for building answers. */
typedef struct rn_strbuf {
    char *p;
    size_t len, cap;
    bool failed; /* an allocation failed: the content is incomplete */
} rn_strbuf;

void rn_strbuf_put(rn_strbuf *b, const void *s, size_t n);
void rn_strbuf_puts(rn_strbuf *b, const char *s);
void rn_strbuf_printf(rn_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An rn_json_emit_cb that appends each record's JSON text to the rn_strbuf
 * arg, comma-separated: the caller has put the "[" (so a buffer longer than 1
 * already holds a record) and puts the "]". Never fails (an allocation failure
 * is rn_strbuf.failed). Used by the REST records and consumer-records answers. */
int rn_json_emit_to_array(void *arg, const rn_json_rec *rec);
/* s as a JSON string literal (quoted, escaped). */
void rn_strbuf_json_string(rn_strbuf *b, const char *s);
void rn_strbuf_free(rn_strbuf *b);

/* ---- Errors --------------------------------------------------------------------------- */

/* HTTP status and REST Proxy error code for a runnel error (negative or
 * positive RN_E_* / -errno). partition_known: the topic exists (so
 * UNKNOWN_TOPIC means the partition: 40402). */
void rn_gw_error_map(int err, bool partition_known, int *status, int *code);

/* Answer with j (compact JSON; j is not consumed). */
void rn_http_respond_json(rn_http_conn *c, int status, const char *content_type, json_t *j);

/* Parse a JSON body (bounded by the reader's body limit). NULL with one
 * sentence in err on an empty body, a NUL byte, or malformed JSON. New
 * reference. */
json_t *rn_json_parse(const uint8_t *body, size_t len, char *err, size_t errlen);

/* ---- Bounded integers ----------------------------------------------------------------------
 *
 * The one way a gateway reads a number someone sent: a JSON value or a text
 * (query string, header) becomes an int64 in [min, max] or an error that
 * says so — never a value cut to fit (a partition 4294967296 is not 0). */

/* v must be a JSON integer in [min, max] (NULL: absent, an error too; a
 * fraction, string, bool, null, object or array is not an integer).
 * Errors: -EINVAL with "WHAT must be an integer in [MIN, MAX], got X" in err. */
int rn_json_get_int(json_t *v, const char *what, int64_t min, int64_t max, int64_t *out, char *err,
                    size_t errlen);

/* The same for text: an optional '-' and decimal digits, nothing else (no
 * space, '+', fraction or hex). Errors: -EINVAL with a message as above. */
int rn_text_get_int(const char *s, const char *what, int64_t min, int64_t max, int64_t *out,
                    char *err, size_t errlen);

#endif
