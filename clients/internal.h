/*
 * internal.h — what the files of librunnel share; not installed, not public.
 *
 * librunnel is three handles (admin, producer, consumer) over one core, the
 * rn__client: a copy of the configuration, a set of connections keyed by
 * host:port, the cluster metadata cache, and a poll loop. The core has no
 * thread and no timer of its own: every byte moves inside rn__client_poll,
 * which the handles call from their public functions.
 *
 *   conf.c      rn_conf, error names, the partitioner
 *   conn.c      rn__conn (non-blocking socket, send buffer, frame decoder,
 *               pipelined requests matched by correlation id) and the poll loop
 *   metadata.c  brokers, topics, partitions and leaders; refresh on demand
 *   admin.c     rn_admin_*
 *   producer.c  rn_producer_* (with producer_idem.c, idempotence: see
 *               producer_int.h)
 *   consumer.c  rn_consumer_* (with fetcher.c, decode.c and group.c: see
 *               consumer_int.h; group membership follows the shared state
 *               machine protocol/group_member.h)
 *
 * Callback discipline: a request's rn__resp_cb runs only inside
 * rn__client_poll (or rn__client_fini), never inside rn__conn_send, so code
 * that issues a request never sees its own callback re-enter it.
 */
#ifndef RN_CLIENT_INTERNAL_H
#define RN_CLIENT_INTERNAL_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "clients/runnel.h"
#include "protocol/errors.h"
#include "protocol/frame.h"

/* ---- Configuration (conf.c) ------------------------------------------------ */

enum { RN__PARTITIONER_DEFAULT = 0, RN__PARTITIONER_ROUNDROBIN = 1 };
/* auto.offset.reset: where a group member starts a partition with no committed offset. */
enum { RN__RESET_EARLIEST = 0, RN__RESET_LATEST = 1 };
/* partition.assignment.strategy: the assignor the coordinator runs (the group's first member's). */
enum { RN__ASSIGNOR_STICKY = 0, RN__ASSIGNOR_RANGE = 1 };

struct rn_conf {
    char *bootstrap_servers;
    char *client_id;
    int socket_timeout_ms;
    int connect_timeout_ms;
    int reconnect_backoff_ms;
    int metadata_max_age_ms; /* refresh metadata at least this often (new partitions) */
    /* producer */
    int acks; /* -1, 0, 1 */
    int linger_ms;
    int batch_size;
    int codec; /* RN_BATCH_CODEC_* */
    int compression_level;
    int64_t retries;
    int retry_backoff_ms;
    int delivery_timeout_ms;
    int max_in_flight;
    int partitioner;
    int queue_max_messages; /* queue.buffering.max.messages */
    int64_t buffer_memory;  /* buffer.memory: bytes of records queued or in flight */
    bool idempotence;       /* enable.idempotence (needs acks=all; off with acks=0/1) */
    bool idempotence_set;   /* enable.idempotence given: true then refuses acks 0/1 */
    int message_max_bytes;
    /* consumer */
    int fetch_min_bytes;
    int fetch_max_wait_ms;
    int fetch_max_bytes;
    int max_partition_fetch_bytes;
    bool check_crcs;
    int max_poll_records;
    /* consumer groups */
    char *group_id; /* NULL: no group */
    bool enable_auto_commit;
    int auto_commit_interval_ms;
    int session_timeout_ms;
    int heartbeat_interval_ms;
    int auto_offset_reset; /* RN__RESET_* */
    int assignor;          /* RN__ASSIGNOR_* */
};

/* Split "host:port,host:port" (IPv6 as "[::1]:9700") into malloc'd arrays the
 * caller frees (each host, then both arrays). Errors: -RN_E_INVALID_CONFIG with
 * a reason in err, -ENOMEM. */
int rn__parse_servers(const char *s, char ***hosts, uint16_t **ports, size_t *n, char *err,
                      size_t errlen);

/* Milliseconds: monotonic (deadlines) and wall clock (record timestamps). */
int64_t rn__now_ms(void);
int64_t rn__wall_ms(void);

/* Whether a failed request may succeed when sent again: the connection died or
 * timed out, or the broker answered with a transient code (NOT_LEADER,
 * UNKNOWN_TOPIC, TIMEOUT, STORAGE_ERROR, ...). */
bool rn__retriable(int err);
/* Whether err says the cached metadata may be wrong (leader moved, topic
 * unknown, connection lost): the caller refreshes it. */
bool rn__needs_metadata(int err);

/* ---- Connections (conn.c) ---------------------------------------------------- */

typedef struct rn__client rn__client;
typedef struct rn__conn rn__conn;

/* A request ended: with a decoded response (err 0; resp and its payload are
 * valid only during the call), or with the transport error that ended it
 * (resp NULL; rn__conn_errmsg(c) says what happened). For a request sent
 * without a response (Produce acks=0) err 0 and resp NULL mean "written to
 * the socket". Runs inside rn__client_poll or rn__client_fini only. */
typedef void (*rn__resp_cb)(void *arg, rn__conn *c, int err, rn_frame_response *resp);

enum rn__conn_state { RN__CONN_DOWN, RN__CONN_CONNECTING, RN__CONN_UP };

typedef struct rn__pending rn__pending;

struct rn__conn {
    rn__client *cl;
    char *host;
    uint16_t port;
    int fd;
    enum rn__conn_state state;
    struct addrinfo *ai, *ai_next; /* resolved addresses, the next to try */
    int64_t connect_deadline;
    int64_t next_attempt; /* reconnect backoff: no connect before this */
    /* Send buffer: [out_off, out_len) is unsent; sent_total counts every byte
     * ever written, so a no-response request is done once it passes its end. */
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint64_t queued_total, sent_total;
    rn_frame_decoder dec;
    uint8_t *rbuf;
    size_t rbuf_cap;
    rn__pending *head, *tail; /* in send order */
    size_t n_pending;
    int last_err;
    char errmsg[256];
};

/* A response kept past its callback: a copy of the frame and its decoding.
 * Caller-allocated; rn__reply_fini frees what it holds. */
typedef struct rn__reply {
    uint8_t *frame;
    rn_frame_response resp;
    Runnel__ResponseHeader *hdr; /* == resp.hdr */
} rn__reply;

void rn__reply_fini(rn__reply *r);

/* ---- Metadata (metadata.c) ---------------------------------------------------- */

typedef struct rn__md_part {
    int32_t leader; /* node id, -1 none */
    int32_t leader_epoch;
    int err; /* negative code from the broker, 0 */
} rn__md_part;

typedef struct rn__md_topic {
    char *name;
    int err; /* -RN_E_UNKNOWN_TOPIC when the broker said so; 0 */
    int32_t n_parts;
    rn__md_part *parts;
    uint32_t max_message_bytes; /* the topic's max.message.bytes; 0: the broker did not say */
} rn__md_topic;

typedef struct rn__md_broker {
    int32_t node_id;
    char *host;
    uint16_t port;
} rn__md_broker;

typedef struct rn__metadata {
    rn__md_broker *brokers;
    size_t n_brokers;
    rn__md_topic **topics;
    size_t n_topics;
    char **wanted; /* topics this handle uses: every refresh asks for all of them */
    size_t n_wanted;
    bool in_flight, again;
    int64_t not_before;       /* no new refresh before this (after a failure) */
    int64_t refreshed_at;     /* when the last refresh completed (metadata.max.age.ms) */
    uint64_t generation;      /* bumped by each completed refresh, good or bad */
    uint64_t good_generation; /* generation of the last successful refresh */
    int last_err;
    char errmsg[256];
    int32_t controller_id;
} rn__metadata;

/* ---- The core ----------------------------------------------------------------------- */

struct rn__client {
    rn_conf *conf; /* owned copy */
    rn__conn **conns;
    size_t n_conns;
    char **boot_hosts;
    uint16_t *boot_ports;
    size_t n_boot, next_boot;
    rn__metadata md;
    uint32_t next_cid;
    uint64_t n_callbacks; /* request callbacks run so far */
    /* The group coordinator last found (coordinator.c): the leader of the
     * group's __offsets partition. any: the broker has no FindCoordinator
     * (older than clusters), so any connection is the coordinator. */
    struct {
        bool known, any;
        char group[256];
        char host[256];
        uint16_t port;
        int32_t node_id;
    } coord;
    rn_frame_limits lim;
    char errmsg[512];
};

/* Take a copy of conf and check it. Errors: -ENOMEM, -RN_E_INVALID_CONFIG
 * (message in cl->errmsg). On error nothing is held. */
int rn__client_init(rn__client *cl, const rn_conf *conf);
/* Fail every request still pending with -RN_E_CLOSED (their callbacks run
 * here), close every socket and free everything. */
void rn__client_fini(rn__client *cl);

/* The connection to host:port, created (not connected) when new. NULL on
 * out of memory. Connections live as long as the client. */
rn__conn *rn__client_conn(rn__client *cl, const char *host, uint16_t port);
/* The connection to a broker of the metadata; NULL when the node is unknown. */
rn__conn *rn__client_conn_node(rn__client *cl, int32_t node_id);
/* Some connection for a request any broker can answer: an open one, else
 * one being opened, else the next bootstrap server in turn. */
rn__conn *rn__client_conn_any(rn__client *cl);

/* Queue a request on c. h->correlation_id and h->client_id are filled in; the
 * header is encoded and payload copied into the send buffer at once, so both
 * are only borrowed. The connection is opened (after its reconnect backoff)
 * by the next rn__client_poll. timeout_ms bounds the wait for the answer: past
 * it the connection is closed and every request on it fails with
 * -RN_E_TIMEOUT (as Kafka's request.timeout.ms does). no_response: the peer
 * sends nothing back (Produce acks=0); cb runs once the bytes are written.
 * cb never runs before this returns. Errors: -ENOMEM, -EMSGSIZE. */
int rn__conn_send(rn__conn *c, Runnel__RequestHeader *h, const void *payload, size_t len, int api,
                  int timeout_ms, bool no_response, rn__resp_cb cb, void *arg);
/* rn__conn_send with the payload gathered from iovcnt pieces. */
int rn__conn_sendv(rn__conn *c, Runnel__RequestHeader *h, const struct iovec *iov, int iovcnt,
                   int api, int timeout_ms, bool no_response, rn__resp_cb cb, void *arg);
/* Inside the callback of a response that was received in place into c's
 * big-frame buffer (see conn.c): take that buffer, which holds the whole
 * frame, so resp->payload stays valid after the callback; *cap is its size.
 * NULL when the frame lives elsewhere (then copy what must outlive the
 * callback). Hand the buffer back with rn__conn_recycle, or free() it. */
uint8_t *rn__conn_take_frame(rn__conn *c, size_t *cap);
/* Give c a buffer (cap bytes, malloc'd) for its next big frames; c keeps a
 * few, already faulted in, and frees the rest. Takes ownership of buf. */
void rn__conn_recycle(rn__conn *c, uint8_t *buf, size_t cap);
/* Requests sent on c and not answered yet. */
size_t rn__conn_inflight(const rn__conn *c);
/* What went wrong last on c ("cannot connect to 127.0.0.1:9700: Connection refused"). */
const char *rn__conn_errmsg(const rn__conn *c);

/* Do I/O on every connection for up to timeout_ms (0: no wait, -1: forever):
 * connect, send, receive, run the callbacks of answered, failed and timed-out
 * requests. Returns 0 or -ENOMEM. */
int rn__client_poll(rn__client *cl, int timeout_ms);

/* Send a request and wait for its answer (at most timeout_ms), polling every
 * connection meanwhile. On success out holds the response (caller calls
 * rn__reply_fini) and the return value is 0: the header's error_code is left to
 * the caller. On failure the transport error (-ECONNREFUSED, -RN_E_TIMEOUT…)
 * with cl->errmsg set. */
int rn__client_call(rn__client *cl, rn__conn *c, Runnel__RequestHeader *h, const void *payload,
                    size_t len, int api, int timeout_ms, rn__reply *out);
/* rn__client_call on rn__client_conn_any, moving on to the next bootstrap
 * server when one cannot be reached, until each has been tried. */
int rn__client_call_any(rn__client *cl, Runnel__RequestHeader *h, int api, int timeout_ms,
                        rn__reply *out);

/* Set cl->errmsg (printf). Returns err, for `return rn__fail(...)`. */
__attribute__((format(printf, 3, 4))) int rn__fail(rn__client *cl, int err, const char *fmt, ...);

/* ---- Group coordinator (coordinator.c) ------------------------------------------------- */

/* Find the coordinator of group (FindCoordinator through any broker) unless
 * it is known for group already. Errors: -RN_E_COORDINATOR_NOT_AVAILABLE
 * (no leader of its __offsets partition now), the transport errors of
 * rn__client_call_any; cl->errmsg says which. */
int rn__coord_find(rn__client *cl, const char *group, int timeout_ms);
/* The connection to the coordinator found last (NULL: none known, or out
 * of memory). */
rn__conn *rn__coord_conn(rn__client *cl);
/* Forget the coordinator: the next group request finds it again. */
void rn__coord_forget(rn__client *cl);
/* err says the coordinator moved or cannot be reached (NOT_COORDINATOR,
 * COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, a transport
 * error, a timeout, a broker shutting down): find it again and retry. */
bool rn__coord_retriable(int err);
/* A synchronous group request to group's coordinator: find it, send, and
 * on an rn__coord_retriable failure forget it and start over (after
 * retry.backoff.ms) until timeout_ms is spent. 0 with out holding the
 * answer (its header's error is the caller's, never a coordinator one), or
 * the last error with cl->errmsg set. */
int rn__coord_call(rn__client *cl, const char *group, Runnel__RequestHeader *h, int api,
                   int timeout_ms, rn__reply *out);

/* ---- Metadata (metadata.c) ----------------------------------------------------------- */

void rn__md_fini(rn__metadata *md);
/* The cached topic, or NULL. Valid until the next refresh completes. */
rn__md_topic *rn__md_find(rn__client *cl, const char *topic);
/* Add a topic to those every refresh asks for. Errors: -ENOMEM. */
int rn__md_want(rn__client *cl, const char *topic);
/* Start a refresh unless one is running (then another follows it) or a
 * failed one is backing off. Never blocks. Returns 0 or -ENOMEM. */
int rn__md_refresh(rn__client *cl);
/* Refresh and wait (at most timeout_ms) until the cache knows topic; *out is
 * the entry (valid until the next refresh). Errors: -RN_E_UNKNOWN_TOPIC (the
 * broker does not have it), the transport error of the last attempt after
 * every bootstrap server failed (-ECONNREFUSED, -ETIMEDOUT...), -RN_E_TIMEOUT;
 * cl->errmsg says which. */
int rn__md_wait_topic(rn__client *cl, const char *topic, int timeout_ms, rn__md_topic **out);
/* The leader of a partition: 0 and *conn, or -RN_E_UNKNOWN_TOPIC (not in the
 * cache, or no such partition), -RN_E_NOT_LEADER (no leader now, or its
 * broker is not in the metadata). */
int rn__md_leader(rn__client *cl, const char *topic, int32_t partition, rn__conn **conn);

#endif
