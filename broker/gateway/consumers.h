/*
 * consumers.h — REST Proxy v2 consumer instances (internal to broker/gateway/).
 *
 *   POST   /consumers/{g}                                  create an instance
 *   POST   /consumers/{g}/instances/{i}/subscription       {"topics":[…]}
 *   GET    /consumers/{g}/instances/{i}/subscription
 *   DELETE /consumers/{g}/instances/{i}/subscription
 *   GET    /consumers/{g}/instances/{i}/assignments
 *   GET    /consumers/{g}/instances/{i}/records?timeout=&max_bytes=
 *   POST   /consumers/{g}/instances/{i}/offsets            commit
 *   GET    /consumers/{g}/instances/{i}/offsets            committed
 *   POST   /consumers/{g}/instances/{i}/positions          seek
 *   DELETE /consumers/{g}/instances/{i}                    leave the group
 *
 * An instance is a group member held by the gateway: it heartbeats
 * (GroupHeartbeat) from a 100 ms timer at the coordinator's interval,
 * fetches from what it is assigned, commits through CommitOffsets — the
 * requests a native consumer sends. Instances unused for 5 minutes go.
 *
 * Two files: consumer_routes.c answers the routes (rn_consumers_dispatch),
 * consumers.c is the instance and the registry (the rest of this header);
 * consumer_instance.h is what they share.
 */
#ifndef RN_GATEWAY_CONSUMERS_H
#define RN_GATEWAY_CONSUMERS_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/gateway/http.h"

/* Errors: -ENOMEM. */
int rn_consumers_new(rn_consumers **out, rn_gateway *gw);
void rn_consumers_free(rn_consumers *cs);
/* Heartbeats and idle expiry (once a second). NULL-safe. */
void rn_consumers_tick(rn_consumers *cs, int64_t now_ms);
/* Shutdown: every instance leaves its group. NULL-safe. */
void rn_consumers_stop(rn_consumers *cs);
/* Nothing in flight. NULL-safe. */
bool rn_consumers_idle(const rn_consumers *cs);
/* Route a /consumers/… request (seg[0] == "consumers"). */
void rn_consumers_dispatch(rn_consumers *cs, rn_http_conn *c, rn_http_request *req, char **seg,
                           int n);

#endif
