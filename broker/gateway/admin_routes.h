/*
 * admin_routes.h — REST routes for the console's admin pages (internal to broker/gateway/).
 *
 *   GET    /brokers                       Metadata      →
 * {"cluster_id","controller_id","brokers":[…]} GET    /topics/{t}/configs            DescribeTopic
 * → [{"name","value","is_default"}] PUT    /topics/{t}/configs/{name}     AlterConfigs
 * {"value":"…"} → 204 (set an override) DELETE /topics/{t}/configs/{name}     AlterConfigs  → 204
 * (back to the broker default) POST   /groups/{g}/reset              DescribeGroup, DescribeTopic,
 * ListOffsets and CommitOffsets, as `runnel group reset`: a preview unless "execute" is true DELETE
 * /groups/{g}                    DeleteGroup   → 204
 *
 *   GET    /cluster                       ClusterStatus and Metadata →
 *          {"node_id","role","controller_id","epoch","brokers":[…],"voters":[…],
 *           "partitions","under_replicated_count","offline_count","under_replicated":[…],
 *           "offline":[…],"topics":[{"name","partitions":[{…,"under_replicated","offline"}]}]}
 *
 * The shapes follow Confluent's REST Proxy v3 where it has one (per-config PUT and
 * DELETE) and `runnel group reset` where it does not.
 */
#ifndef RN_GATEWAY_ADMIN_ROUTES_H
#define RN_GATEWAY_ADMIN_ROUTES_H

#include <stdbool.h>

#include "broker/gateway/http.h"

/* Route req (path split into seg[0..n)) when it is one of the routes above:
 * answers now or later and returns true; false (nothing done) for any other
 * path, which rest.c then routes. The reactor's thread. */
bool rn_admin_route(rn_http_conn *c, rn_http_request *req, char **seg, int n);

#endif
