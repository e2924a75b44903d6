/*
 * net/conn.h — connections and the requests in flight on them (net/conn.c).
 *
 * A connection is a socket, a frame decoder, the requests in flight and a send queue; a
 * virtual connection (no socket) carries the in-process requests of a gateway or of
 * another reactor. A request lives from its decoded frame until its answer is queued
 * (rn_request_respond, rn_request_fail) or it is dropped (rn_request_free): the handlers
 * of api/ read the decoded frame from the request and answer through these functions.
 * All on the connection's reactor.
 */
#ifndef RN_BROKER_NET_CONN_H
#define RN_BROKER_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "broker/broker.h"
#include "broker/net/sendq.h"
#include "protocol/frame.h"
#include "storage/io.h"
#include "storage/log.h"

/* ---- Requests and responses -------------------------------------------------- */

/* Where an in-process request's answer goes (gateways): the sink gets the
 * response header and takes ownership of the slices' references (it must
 * release them); it runs once, then the request is freed. */
typedef void (*rn_request_sink)(void *arg, rn_request *req, Runnel__ResponseHeader *hdr,
                                rn_slice *slices, unsigned n_slices);

struct rn_request {
    rn_conn *conn;
    rn_request_sink sink; /* NULL: answer on conn's socket */
    void *sink_arg;
    rn_frame_request fr;
    int api;
    uint32_t correlation_id;
    uint64_t start_ns;
    int rbuf;    /* receive-ring buffer id held by the payload, or -1 */
    void *owned; /* the frame's buffer from the reactor's pool (net/bufpool.h), or NULL */
    int pending; /* asynchronous parts still running (produce appends) */
    void *state; /* per-API state (produce results, parked fetch) */
    void *fan;   /* handed to other reactors (broker/net/shard.c), or NULL */
    bool sub;    /* a part of another reactor's request: hdr borrowed */
    /* A sub: the client's address, borrowed from the parent's connection
     * (which the parent holds until every sub is back); NULL otherwise.
     * Read it through rn_request_peer, never conn->peer, which for a sub
     * is the reactor's virtual connection ("reactor"). */
    const char *peer;
    uint8_t **batches;       /* sub Produce: each partition's batch (else walk payload) */
    struct rn_request *next; /* conn's list of requests in flight */
    struct rn_request *prev;
};

/* Queue the response hdr (+ payload slices, ownership of the slice refs
 * passes to the send queue) and free the request. The response's
 * correlation_id is set here. */
void rn_request_respond(rn_request *req, Runnel__ResponseHeader *hdr, rn_slice *slices,
                        unsigned n_slices);
/* Run a request built in-process, by a gateway, through the same decoding,
 * validation and handlers as a request from the wire: hdr is packed into a
 * frame (payload copied after it) and decoded with the broker's limits. c is
 * the gateway's virtual connection (rn_conn_new_virtual). The answer goes to
 * sink (possibly before this returns, possibly much later). Returns 0, or a
 * decoding error (-RN_E_INVALID_REQUEST, -RN_E_MESSAGE_TOO_LARGE, …) with a
 * message in err, in which case sink never runs. */
int rn_request_local(rn_conn *c, const Runnel__RequestHeader *hdr, const void *payload,
                     size_t payload_len, rn_request_sink sink, void *sink_arg, char *err,
                     size_t errlen);

/* The address of the client that sent req ("host:port"), also when req is
 * a sub-request running on another reactor. Valid while req is. */
const char *rn_request_peer(const rn_request *req);

/* Answer with an error of the whole request (error_code + message). */
void rn_request_fail(rn_request *req, int err, const char *msg);
/* Drop the request without a response (acks=0, or the connection died). */
void rn_request_free(rn_request *req);

/* ---- Connections ----------------------------------------------------------- */

struct rn_conn {
    rn_reactor *r;
    int fd;
    uint64_t id;
    char peer[64];
    rn_frame_decoder dec;
    rn_io_op recv_op, send_op, close_op;
    bool recv_armed, recv_wanted, closing, dead, paused;
    bool recv_direct;      /* the recv in flight reads a big frame's rest in place */
    bool close_after_send; /* a protocol error: flush the answer, then close */
    rn_sendq sq;           /* answers queued and being sent (net/sendq.h) */
    rn_request *reqs;      /* in flight */
    unsigned n_reqs;
    int refs; /* ops in flight + requests; freed at 0 once dead */
    int64_t last_active_ms;
    rn_conn *next, *prev;  /* reactor's list */
    rn_conn *next_starved; /* waiting for receive buffers */
    bool starved;
    bool is_virtual; /* in-process (gateway): no socket, not in the reactor list */
};

/* A connection with no socket, for in-process requests (gateways). It is in
 * no reactor list; close it with rn_conn_close when the gateway's client goes
 * (parked fetches end, answers still in flight are dropped). NULL on OOM. */
rn_conn *rn_conn_new_virtual(rn_reactor *r, const char *peer);

/* Feed received bytes; borrowed from ring buffer bid (or -1). */
void rn_conn_on_data(rn_conn *c, const uint8_t *data, size_t len, int bid);
/* Close the connection (now, or once the queued answer is sent). */
void rn_conn_close(rn_conn *c, const char *why);
/* Start sending what is queued, if no send is in flight. */
void rn_conn_flush(rn_conn *c);
void rn_conn_unref(rn_conn *c);
/* Re-arm recv of a conn (buffers came back, or backpressure lifted). */
void rn_conn_arm_recv(rn_conn *c);

#endif
