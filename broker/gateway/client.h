/*
 * client.h — the gateway's in-process broker client (internal to broker/gateway/).
 *
 * An rn_gw_client is a virtual broker connection (rn_conn_new_virtual) plus
 * the list of calls in flight on it. A call is a request built here, run
 * through rn_request_local (the same decoding, validation and handlers as a
 * native client's), whose answer comes back to the call's on_answer.
 *
 * Why a list: when the gateway's client (browser, curl) goes away, the
 * virtual connection is closed and the broker drops every answer still in
 * flight without telling anyone. Each call's state would leak then; the list
 * lets rn_gw_client_close free them (drop) instead.
 *
 * Rules:
 *   - on_answer may run inside rn_gw_client_call (a handler that answers at
 *     once) or much later, from rn_io_run, possibly inside another handler's
 *     loop. It must not call into the broker (no new request): post a NOP
 *     (io_uring_prep_nop) and do it from there.
 *   - Exactly one of on_answer / drop runs per successful call.
 *
 * Routing (DESIGN §7/§8), for a client with `route` set: in a cluster, a Produce, Fetch or
 * ListOffsets naming partitions led by other brokers is split by leader (route.h): the local part
 * runs here, the others go to their leaders through the forwarder's links (forward.h), and the
 * caller gets one merged answer, as if this broker had served every partition. Routing is decided
 * from the metadata image at the call, so a moved leader is followed by the next call. A leader
 * that cannot be reached answers the call with an error of its own (a -errno, -RN_E_TIMEOUT or
 * -RN_E_NOT_LEADER with a message naming the broker), which the gateway maps to 503.
 *
 * Threading: the reactor's thread.
 */
#ifndef RN_GATEWAY_CLIENT_H
#define RN_GATEWAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/broker.h"

typedef struct rn_gw_call rn_gw_call;

/* The answer: hdr is borrowed for the call; the slices' references are the
 * callee's (release them). */
typedef void (*rn_gw_answer_cb)(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                                unsigned n_slices);
/* The answer will never come (the client closed): free the call's state. */
typedef void (*rn_gw_drop_cb)(rn_gw_call *call);

/* Embed as the first member of a call's state. */
struct rn_gw_call {
    rn_gw_call *next, *prev;
    struct rn_gw_client *client;
    rn_gw_answer_cb on_answer;
    rn_gw_drop_cb drop;
    struct rn_gw_routed *routed; /* client.c's: the call is split by leader */
};

typedef struct rn_gw_client {
    rn_reactor *r;
    rn_conn *vc; /* created on the first call */
    rn_gw_call *calls;
    unsigned n_calls;
    uint32_t next_correlation_id;
    char peer[96];
    bool closed;
    /* Split calls by leader and forward (see "Routing" above): set by the
     * HTTP gateways after init. Off by default: the Kafka door shares this
     * client and must answer NOT_LEADER_OR_FOLLOWER, as Kafka clients expect. */
    bool route;
    struct rn_gw_routed *lingering; /* client.c's: answered early, local parts still out */
} rn_gw_client;

/* Set up (no allocation yet). peer names the client in the broker's logs. */
void rn_gw_client_init(rn_gw_client *cl, rn_reactor *r, const char *peer);

/* Run hdr (its correlation id is set here) with payload (copied). Returns 0
 * and later exactly one of on_answer/drop runs on call; or an error and
 * neither runs: -RN_E_CLOSED (the client is closed), -ENOMEM, or the
 * decoding errors of rn_request_local with a message in err. */
int rn_gw_client_call(rn_gw_client *cl, Runnel__RequestHeader *hdr, const void *payload,
                      size_t payload_len, rn_gw_call *call, rn_gw_answer_cb on_answer,
                      rn_gw_drop_cb drop, char *err, size_t errlen);

/* Parked long polls of this client answer now with what there is, and calls
 * waiting on other brokers answer now with SHUTTING_DOWN (the reactor is
 * stopping: its inbox takes no more answers). */
void rn_gw_client_wake(rn_gw_client *cl);

/* Close: the virtual connection goes (parked fetches end), every call in
 * flight is dropped. Further calls fail with -RN_E_CLOSED. Safe to repeat. */
void rn_gw_client_close(rn_gw_client *cl, const char *why);

#endif
