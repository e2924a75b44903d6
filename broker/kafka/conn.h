/*
 * kafka/conn.h — a Kafka client's connection and its requests (internal to
 * broker/kafka/: conn.c holds the socket side, apis.c the APIs).
 *
 * Kafka answers a connection's requests in the order they came (clients rely
 * on it), while runnel's handlers may answer out of order: each request has
 * a place in the connection's queue, and answers leave only from its head.
 */
#ifndef RN_BROKER_KAFKA_CONN_H
#define RN_BROKER_KAFKA_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/gateway/client.h"
#include "broker/kafka/codec.h"
#include "broker/net/bufpool.h"
#include "broker/net/conn.h"

typedef struct rn_kconn rn_kconn;

/* One answer: the writer's bytes with fetch data spliced in. A piece is a
 * range of buf (ext NULL, off) or borrowed bytes of a slice (ext). */
typedef struct rn_kpiece {
    const uint8_t *ext;
    size_t off, len;
} rn_kpiece;

typedef struct rn_kout {
    struct rn_kout *next;
    rn_kwriter w;
    rn_kpiece *pieces; /* NULL: buf whole */
    unsigned n_pieces;
    rn_slice *slices; /* references released once sent */
    unsigned n_slices;
    size_t total, sent;
} rn_kout;

typedef struct rn_kreq {
    rn_gw_call call; /* first: the in-process call */
    rn_kconn *c;
    rn_kafka_header h;
    uint8_t *frame; /* the request's body (owned): h.client_id points in */
    rn_bufpool *pool; /* where frame came from and goes back (NULL: none) */
    size_t frame_len;
    rn_kreader body; /* at the API's body */
    bool done;       /* answered (out may be NULL: no answer, acks=0) */
    rn_kout *out;
    void *ctx; /* the API's own state (apis.c), freed with the request */
    void (*ctx_free)(void *ctx);
    struct rn_kreq *next;
} rn_kreq;

struct rn_kconn {
    struct rn_kafka *k;
    rn_reactor *r;
    int fd;
    uint64_t id;
    char peer[64];
    rn_gw_client cl;
    uint8_t *rbuf;
    size_t rlen, rcap;
    rn_io_op recv_op, send_op, cancel_op;
    bool recv_armed, send_inflight, dead, paused;
    rn_kreq *q_head, *q_tail; /* in arrival order */
    unsigned n_reqs;
    rn_kout *out_head, *out_tail;
    size_t out_bytes;
    struct iovec iov[64];
    struct msghdr msg;
    int refs;
    int64_t last_active_ms; /* last byte received or sent */
    rn_kconn *next, *prev;
};

/* Start req (apis.c): answer now with rn_kreq_answer, or later from the
 * in-process call's answer. Returns 0, or a negative error when the request
 * is malformed (the connection is then closed, as Kafka's broker does). */
int rn_kafka_dispatch(rn_kreq *req);

/* req's answer is w (taken over: its buffer, pieces and slices), or NULL for
 * none (acks=0). Answers leave in request order. */
void rn_kreq_answer(rn_kreq *req, rn_kout *out);

/* No memory for req's answer: the connection is closed (a Kafka client
 * reconnects and retries), since a missing answer would stall its order. */
void rn_kreq_oom(rn_kreq *req);

/* Run hdr (+ payload, copied) on the connection's in-process client; the
 * answer comes to on_answer (req->call is the call). Returns 0, or the
 * errors of rn_gw_client_call (then on_answer never runs). */
int rn_kreq_call(rn_kreq *req, Runnel__RequestHeader *hdr, const void *payload, size_t len,
                 rn_gw_answer_cb on_answer);

/* rn_kreq_call with a call of the API's own, for a request that makes
 * several native calls at once (one per topic): call is the first member of
 * a struct the API keeps in req->ctx (freed with the request; when the
 * connection closes first, the answers never come and nothing else runs). */
int rn_kreq_call_as(rn_kreq *req, rn_gw_call *call, Runnel__RequestHeader *hdr, const void *payload,
                    size_t len, rn_gw_answer_cb on_answer);

/* The APIs of broker/kafka/ outside apis.c, called by rn_kafka_dispatch with
 * a supported version (the same contract): InitProducerId (producer.c),
 * OffsetsForLeaderEpoch (epochs.c), CreatePartitions and DescribeConfigs
 * (admin.c), SaslHandshake and SaslAuthenticate (sasl.c). */
int rn_kafka_init_producer_id(rn_kreq *req);
int rn_kafka_offsets_for_leader_epoch(rn_kreq *req);
int rn_kafka_create_partitions(rn_kreq *req);
int rn_kafka_describe_configs(rn_kreq *req);
int rn_kafka_sasl(rn_kreq *req);

/* The broker and the port Metadata advertises. */
rn_broker *rn_kreq_broker(const rn_kreq *req);
uint16_t rn_kreq_port(const rn_kreq *req);

/* One broker as Kafka Metadata lists it: its Kafka listener. */
typedef struct rn_kafka_broker {
    int32_t node_id;
    const char *host;
    uint16_t port;
} rn_kafka_broker;

/* The sans-I/O renderers (apis.c, metadata.c), for the listener and for golden-byte
 * tests: a whole response frame into w. ApiVersions at a version above 3 is
 * the v0 answer with UNSUPPORTED_VERSION. Metadata: the brokers listed
 * (brokers[0]'s node_id is the controller when mr is NULL); mr may be NULL
 * (no topics); no_topics leaves mr's topics out. A partition whose leader is
 * not among brokers (fenced, or without a Kafka listener) is answered
 * LEADER_NOT_AVAILABLE with leader -1, as Kafka answers for a leader it
 * cannot hand out: clients refresh metadata and retry. topic_errors, when
 * not NULL, has one Kafka error per topic of mr to answer instead of the
 * topic's own (0: its own); borrowed. */
void rn_kafka_api_versions_write(rn_kwriter *w, int32_t correlation_id, int16_t version);
void rn_kafka_metadata_write(rn_kwriter *w, int32_t correlation_id, int16_t version,
                             const rn_kafka_broker *brokers, size_t n_brokers,
                             const Runnel__MetadataResponse *mr, bool no_topics,
                             const int16_t *topic_errors);

/* Parse one request body (the frame after its size) and run it with no
 * broker behind: every body parser and answer renderer runs, native calls
 * fail as if the connection had closed (each partition answered with an
 * error). For the fuzz target. Returns 0 with the answer's length in
 * *answer_len (0: none, acks=0), or the parse error (-RN_E_INVALID_REQUEST,
 * -ENOMEM). */
int rn_kafka_dry_run(const void *body, size_t len, size_t *answer_len);
/* The same, with the answer's bytes appended to answer (nothing for none),
 * for golden-byte tests. */
int rn_kafka_dry_run_copy(const void *body, size_t len, rn_kwriter *answer);

/* An answer holding only a writer. NULL on OOM. */
rn_kout *rn_kout_new(void);
void rn_kout_free(rn_kout *o);
/* End a piece of o's writer here and splice ext (borrowed, len bytes) after it. */
int rn_kout_splice(rn_kout *o, size_t *cut, const uint8_t *ext, size_t len);
/* Close the pieces list after the last splice (the writer's rest). */
int rn_kout_finish(rn_kout *o, size_t cut);

#endif
