/*
 * net/peer.h — an outbound connection from this broker to another (net/peer.c).
 *
 * The seam for broker-to-broker traffic (replica fetches, Raft messages): a
 * peer connects to host:port, sends request frames with correlation ids of
 * its own and matches the answers to them, in any order. All socket work goes
 * through a transport (rn_peer_transport; rn_peer_tcp is the real one), so a
 * test can cut, drop or delay the link by wrapping it. When the link fails
 * every request still waiting fails with the error and a message naming the
 * peer; the next send connects again.
 *
 * One thread drives a peer (it is not thread-safe): today the caller's, with
 * blocking waits bounded by timeouts (rn_peer_poll), as a controller or Raft
 * thread would; such a thread hands results to reactors with rn_reactor_call.
 */
#ifndef RN_BROKER_NET_PEER_H
#define RN_BROKER_NET_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/frame.h"

typedef struct rn_peer rn_peer;

/* How a peer reaches the network. ctx is the transport's own (rn_peer_new).
 * Every function returns a negative errno on failure. */
typedef struct rn_peer_transport {
    /* A connected socket to host:port within timeout_ms, or -errno
     * (-ECONNREFUSED, -ETIMEDOUT, -EINVAL for a name that does not resolve). */
    int (*connect)(void *ctx, const char *host, const char *port, int timeout_ms);
    /* Send all len bytes of buf: 0, or -errno (-EPIPE, -ECONNRESET, ...). */
    int (*send)(void *ctx, int fd, const void *buf, size_t len);
    /* Wait up to timeout_ms for bytes: how many (> 0), 0 when the peer
     * closed, -EAGAIN when none came in time, or -errno. */
    ssize_t (*recv)(void *ctx, int fd, void *buf, size_t len, int timeout_ms);
    void (*close)(void *ctx, int fd);
} rn_peer_transport;

/* TCP sockets (TCP_NODELAY, close-on-exec). */
extern const rn_peer_transport rn_peer_tcp;

/* A request's end: err 0 and resp the decoded answer (valid during the call
 * only), or err < 0 with resp NULL and errmsg saying why (the link failed:
 * the error of the transport; -ECANCELED when the peer was freed; a decoding
 * error for an answer that does not parse). Runs exactly once per request
 * rn_peer_send accepted, inside rn_peer_poll, rn_peer_cut or rn_peer_free. */
typedef void (*rn_peer_cb)(void *arg, int err, const rn_frame_response *resp, const char *errmsg);

/* A peer for hostport ("host:port"), not connected yet. t NULL means
 * rn_peer_tcp; t and ctx are borrowed for the peer's life.
 * Errors: -EINVAL (not host:port), -ENOMEM. */
int rn_peer_new(rn_peer **out, const char *hostport, const rn_peer_transport *t, void *ctx);
/* Close the link; every request still waiting ends with -ECANCELED. */
void rn_peer_free(rn_peer *p);

/* Send hdr (+ payload, borrowed for the call) with a correlation id of the
 * peer's (hdr->correlation_id is overwritten), connecting first when there is
 * no link. 0: cb will run once with the answer or the failure. Negative: not
 * sent, cb will not run for it (-errno of connect or send, -ENOMEM, an
 * encoding error); a failed send also cut the link (the requests waiting on
 * it got their callbacks). errmsg of the last failure: rn_peer_errmsg. */
int rn_peer_send(rn_peer *p, Runnel__RequestHeader *hdr, const void *payload, size_t payload_len,
                 rn_peer_cb cb, void *arg);
/* Receive for up to timeout_ms, running the callback of every answer that
 * completes. Returns how many answered (0 at the timeout), or the link's
 * error after it failed (every waiting request has ended with it then). */
int rn_peer_poll(rn_peer *p, int timeout_ms);
/* Fail the link now with err (negative) and why: every waiting request ends
 * with them; the next send connects again. For the owner's timeouts, and for
 * tests. */
void rn_peer_cut(rn_peer *p, int err, const char *why);

/* Requests sent and not yet ended. */
unsigned rn_peer_waiting(const rn_peer *p);
/* Connections made so far (a reconnect counts). */
uint64_t rn_peer_connects(const rn_peer *p);
/* The last failure, "" when none. Valid until the next call on p. */
const char *rn_peer_errmsg(const rn_peer *p);

#endif
