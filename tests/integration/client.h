/*
 * client.h — the integration tests' small client and broker-process harness.
 *
 * Two halves, both for tests only (nothing here is librunnel):
 *
 *   it_conn    one blocking-with-deadline TCP connection to runneld that speaks
 *              the native protocol through protocol/frame.h: it encodes a
 *              RequestHeader (+ raw payload), and reads and decodes one
 *              response frame with rn_frame_response_decode. Helpers per API
 *              (create_topics, produce, fetch, list_offsets, metadata,
 *              describe, alter, delete) build the request from plain C
 *              arguments and hand back the decoded response.
 *
 *   it_broker  one real runneld child process on a free 127.0.0.1 port with
 *              its own scratch directory (/tmp/rn-it-XXXXXX holding data/ and
 *              runneld.log); start waits until it accepts connections; stop
 *              sends SIGTERM (graceful) or SIGKILL (crash) and reaps it;
 *              restart runs it again on the same data directory and port.
 *
 * The runneld binary is $RUNNELD when set, else the path meson compiled in
 * (IT_RUNNELD). The child gets PR_SET_PDEATHSIG=SIGKILL so a crashed test
 * never leaves a broker behind.
 *
 * Errors: functions return 0 or a negative -errno (-ETIMEDOUT when a
 * deadline passed, -ECONNRESET when the broker closed the connection, -EPROTO
 * when a frame did not decode) or a -RN_E_* code from protocol/errors.def.
 * Helpers that return a per-topic or per-partition outcome return its wire
 * error code (0 or a positive RN_E_* value) and keep negatives for transport
 * failures. Nothing is thread-safe; a test owns its connections.
 */
#ifndef RN_IT_CLIENT_H
#define RN_IT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/frame.h"

/* How long a helper waits for an answer unless told otherwise. Generous: the
 * sanitizer build on a loaded 2-core machine is slow. */
#define IT_DEFAULT_TIMEOUT_MS 10000

/* ---- Connections ------------------------------------------------------------- */

typedef struct it_conn {
    int fd;
    uint32_t next_cid; /* correlation id of the next request */
    rn_frame_limits lim;
} it_conn;

/* One decoded response. hdr and payload are valid until it_resp_free. */
typedef struct it_resp {
    Runnel__ResponseHeader *hdr;
    const uint8_t *payload;
    uint32_t payload_len;
    rn_frame_response fr;
    uint8_t *frame; /* owned: the frame's bytes after frame_length */
} it_resp;

/* Connect to host:port within timeout_ms. The caller owns *out and closes it
 * with it_conn_close. Errors: -ETIMEDOUT, -ECONNREFUSED, other -errno. */
int it_conn_open(it_conn **out, const char *host, uint16_t port, int timeout_ms);

/* Close and free c; NULL is fine. */
void it_conn_close(it_conn *c);

/* Write len raw bytes (for malformed input). Errors: -ETIMEDOUT, -EPIPE,
 * -ECONNRESET, other -errno. */
int it_conn_send_raw(it_conn *c, const void *buf, size_t len, int timeout_ms);

/* Encode h (its correlation_id is overwritten with the next id, returned in
 * *cid when cid is not NULL) with payload and send the frame. Borrows h and
 * payload. Errors: those of it_conn_send_raw, -ENOMEM. */
int it_conn_send(it_conn *c, Runnel__RequestHeader *h, const void *payload, size_t len,
                 uint32_t *cid);

/* Read one response frame and decode it, expecting the body of expected_api
 * (0: do not check the body). On success the caller frees out with
 * it_resp_free. Errors: -ETIMEDOUT, -ECONNRESET (the peer closed, also
 * cleanly), -EPROTO (the frame did not decode), -ENOMEM. */
int it_conn_recv(it_conn *c, int expected_api, it_resp *out, int timeout_ms);

/* Declare h, a request header of API (the suffix of its RUNNEL__API__ name,
 * which its body case shares) whose body is in oneof member `member`. */
#define IT_REQUEST(h, API, member, body)                                                           \
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;                                        \
    h.api = RUNNEL__API__##API;                                                                    \
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_##API;                                              \
    h.member = (body)

/* Send h and wait for its answer (checks the correlation id). */
int it_call(it_conn *c, Runnel__RequestHeader *h, const void *payload, size_t len, it_resp *out);

/* True when the peer closes the connection within timeout_ms (bytes that
 * arrive first are read and dropped). */
bool it_conn_wait_closed(it_conn *c, int timeout_ms);

void it_resp_free(it_resp *r);

/* ---- API helpers ------------------------------------------------------------- */

/* A topic for it_create_topics. configs is "k=v,k=v" or NULL. */
typedef struct it_topic_spec {
    const char *name;
    int32_t partitions;
    int32_t replication_factor;
    const char *configs;
} it_topic_spec;

int it_api_versions(it_conn *c, it_resp *out);
int it_metadata(it_conn *c, const char *const *topics, size_t n, it_resp *out);
int it_create_topics(it_conn *c, const it_topic_spec *topics, size_t n, bool validate_only,
                     it_resp *out);
/* One topic; returns its error code (0 ok) or a negative transport error. */
int it_create_topic(it_conn *c, const char *name, int32_t partitions, const char *configs);
int it_delete_topics(it_conn *c, const char *const *names, size_t n, it_resp *out);
int it_describe(it_conn *c, const char *name, it_resp *out);
/* set is "k=v,k=v" or NULL; del is "k,k" or NULL. */
int it_alter(it_conn *c, const char *topic, const char *set, const char *del, bool validate_only,
             it_resp *out);

/* One record batch of a Produce request. */
typedef struct it_produce_part {
    const char *topic;
    int32_t partition;
    const void *batch;
    size_t len;
} it_produce_part;

/* Send a Produce request without waiting (pipelining, acks=0). */
int it_produce_send(it_conn *c, const it_produce_part *parts, size_t n, int acks, uint32_t *cid);
/* Produce and wait for the answer; with acks=0 nothing is read and out is
 * left empty (hdr NULL). */
int it_produce(it_conn *c, const it_produce_part *parts, size_t n, int acks, it_resp *out);
/* One batch; returns the partition's error code (0 ok) or a negative
 * transport error; *base_offset (may be NULL) gets the offset. */
int it_produce_one(it_conn *c, const char *topic, int32_t partition, const void *batch, size_t len,
                   int acks, int64_t *base_offset);

/* One partition of a Fetch request. */
typedef struct it_fetch_part {
    const char *topic;
    int32_t partition;
    int64_t offset;
    uint32_t partition_max_bytes; /* 0: broker default */
} it_fetch_part;

typedef struct it_fetch_opts {
    uint32_t max_wait_ms;
    uint32_t min_bytes;
    uint32_t max_bytes; /* 0: broker default */
} it_fetch_opts;

/* A consumer fetch (replica_id -1, current_leader_epoch -1). opts may be NULL
 * (no wait). */
int it_fetch_send(it_conn *c, const it_fetch_part *parts, size_t n, const it_fetch_opts *opts,
                  uint32_t *cid);
int it_fetch(it_conn *c, const it_fetch_part *parts, size_t n, const it_fetch_opts *opts,
             it_resp *out);
/* The payload bytes of partition i of a Fetch response (they follow in the
 * order of the partitions, bytes_len each). */
void it_fetch_data(const it_resp *r, size_t i, const uint8_t **data, size_t *len);

/* ListOffsets of one partition (timestamp -2 earliest, -1 latest, else ms).
 * Returns the partition's error code or a negative transport error. */
int it_list_offsets(it_conn *c, const char *topic, int32_t partition, int64_t timestamp,
                    int64_t *offset, int64_t *found_ts);

/* ---- Record batches ---------------------------------------------------------- */

/* A batch of n records whose values are "<tag>-<i>" and keys NULL, every
 * record at timestamp ts (ms). The caller frees *out. Errors: those of
 * rn_batch_builder_*. */
int it_batch_make(uint8_t **out, size_t *len, const char *tag, int n, int64_t ts);

/* ---- Broker processes -------------------------------------------------------- */

#define IT_MAX_ARGS 24

typedef struct it_broker {
    pid_t pid; /* 0 when not running */
    uint16_t port;
    char host[16];
    char root[64];           /* scratch directory, removed by it_broker_destroy */
    char data_dir[96];       /* root/data */
    char log_path[96];       /* root/runneld.log: the child's stderr, appended on restart */
    char *args[IT_MAX_ARGS]; /* extra arguments, owned copies */
    int n_args;
    char *env[8]; /* extra environment entries "K=V", owned copies */
    int n_env;
    int status; /* wait status of the last exit, -1 before any */
} it_broker;

/* Prepare b: a scratch directory, the extra arguments (NULL-terminated list,
 * may be NULL) kept for every (re)start. Nothing runs yet. */
int it_broker_init(it_broker *b, const char *const *args);
/* Add "K=V" to the environment of the next starts. */
int it_broker_setenv(it_broker *b, const char *kv);
/* Start runneld on a free port (the same port on a restart, once the previous
 * process's socket is gone) and wait until it answers ApiVersions
 * (timeout_ms). Errors: -ECHILD (it exited: see its log), -ETIMEDOUT,
 * -EADDRINUSE (the old socket lingered), -errno. */
int it_broker_start(it_broker *b, int timeout_ms);
/* Send sig and reap the child within timeout_ms (then SIGKILL). *status gets
 * the wait status. Errors: -ETIMEDOUT (it had to be killed), -ESRCH (not
 * running). */
int it_broker_stop(it_broker *b, int sig, int timeout_ms, int *status);
/* Kill the broker if it runs, remove the scratch directory, free. */
void it_broker_destroy(it_broker *b);
/* True while the child has not exited (reaps it when it has). */
bool it_broker_alive(it_broker *b);
/* VmRSS of the child in KiB, or a negative -errno. */
long it_broker_rss_kib(const it_broker *b);
/* Connect to the broker. */
int it_broker_connect(const it_broker *b, it_conn **out);
/* Print the last max_bytes of the broker's log to stderr (for failures). */
void it_broker_dump_log(const it_broker *b, size_t max_bytes);
/* Does the broker's log contain needle at or after byte `from`? */
bool it_broker_log_contains(const it_broker *b, size_t from, const char *needle);
/* Bytes in the broker's log so far (where the next start's lines begin). */
size_t it_broker_log_size(const it_broker *b);

/* Milliseconds on a monotonic clock. */
int64_t it_now_ms(void);

#endif
