/*
 * gateway.h — runneld's HTTP gateways (DESIGN §7): REST, Server-Sent Events and
 * WebSocket on the reactor's io_uring, as seen from the rest of the broker.
 *
 * The gateway is a thin bridge: it parses HTTP (libhttp-parser) and WebSocket
 * frames (wslay), builds the same Runnel__RequestHeader a native client would
 * send, runs it through rn_request_local (same decoding, validation and
 * handlers) and renders the answer as JSON (jansson). It has no storage or
 * group logic of its own.
 *
 * One gateway per reactor, reached through r->gw. The reactor owns nothing of
 * it but that pointer and three calls: rn_gateway_stop when it starts to shut
 * down, rn_gateway_idle in its final wait, rn_gateway_free in rn_reactor_fini.
 *
 * Threading: every call on the reactor's own thread.
 */
#ifndef RN_GATEWAY_H
#define RN_GATEWAY_H

#include <stdbool.h>

struct rn_reactor;

/* Open the HTTP listener on hostport ("127.0.0.1:9780", "[::1]:80",
 * "http://host:port"), create r->gw and start accepting (multishot accept on
 * r's ring). Call once, after the native listener is open. Errors: -errno of
 * socket/bind/listen, -RN_E_INVALID_CONFIG (bad host:port), -ENOMEM; each
 * with a log line. On error r->gw stays NULL.
 *
 * required false (the address is only the default, nobody asked for it):
 * an address in use is not retried and not an error — a warning says the
 * broker runs without HTTP, 0 is returned and r->gw stays NULL. So a second
 * broker on one machine (tests, a bench next to a dev broker) still starts
 * when it was given only --listen. */
int rn_gateway_listen(struct rn_reactor *r, const char *hostport, bool required);

/* Take an accepted socket (ownership of fd passes to the gateway, which
 * closes it). Used by the gateway's own accept; public for tests that hand
 * it a socketpair end. */
void rn_gateway_accept(struct rn_reactor *r, int fd);

/* Shut down: stop accepting, close idle connections and streams (WebSocket
 * with close code 1001), let requests in flight answer (their long polls are
 * woken now), then close. NULL-safe. */
void rn_gateway_stop(struct rn_reactor *r);

/* True when the gateway has nothing left in flight (no connection, no accept,
 * no timer): the reactor can stop waiting. NULL-safe (true). */
bool rn_gateway_idle(struct rn_reactor *r);

/* Free the gateway and whatever is left (operations still in flight are
 * abandoned: call after the ring is drained, or right before freeing it).
 * Sets r->gw to NULL. NULL-safe. */
void rn_gateway_free(struct rn_reactor *r);

/* In a cluster the gateways forward requests for partitions led elsewhere
 * through links owned by threads of their own (forward.h), made on first
 * use. Stop them: every link is closed and its thread joined. Call once the
 * reactors have stopped and before the quorum is freed (its broker list
 * gives the leaders' endpoints). NULL-safe, repeatable. */
struct rn_broker;
void rn_gateway_forward_stop(struct rn_broker *b);

#endif
