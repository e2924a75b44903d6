/*
 * sse.h — Server-Sent Events endpoint (internal to broker/gateway/).
 */
#ifndef RN_GATEWAY_SSE_H
#define RN_GATEWAY_SSE_H

#include "broker/gateway/http.h"
#include "broker/gateway/json.h"

/* Turn c into an event stream of topic/partition (checked to exist by the
 * caller), starting per Last-Event-ID or ?offset=; or answer 422 for a bad
 * start. */
void rn_sse_start(rn_http_conn *c, rn_http_request *req, const char *topic, int32_t partition,
                  enum rn_gw_format fmt);

#endif
