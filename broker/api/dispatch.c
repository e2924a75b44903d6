/*
 * api/dispatch.c — rn_dispatch: a decoded request to the handler of its API.
 *
 * Every request comes through here: from a socket (net/conn.c), from another
 * reactor (net/shard.c hands a sub-request to its partitions' owner) and from a
 * gateway (rn_request_local). A request that touches partitions of other
 * reactors is routed first (rn_shard_route) and comes back here on the owner;
 * the rest run on this reactor. A new API is one case here plus its handler
 * file in api/; the handler answers, now or later, through rn_request_respond
 * or rn_request_fail.
 */
#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/net/conn.h"
#include "broker/net/shard.h"

void rn_dispatch(rn_request *req)
{
    if (rn_shard_route(req)) /* another reactor's: handed over */
        return;
    switch (req->api) {
    case RUNNEL__API__API_VERSIONS:
        rn_handle_api_versions(req);
        break;
    case RUNNEL__API__METADATA:
        rn_handle_metadata(req);
        break;
    case RUNNEL__API__CREATE_TOPICS:
        rn_handle_create_topics(req);
        break;
    case RUNNEL__API__DELETE_TOPICS:
        rn_handle_delete_topics(req);
        break;
    case RUNNEL__API__DESCRIBE_TOPIC:
        rn_handle_describe_topic(req);
        break;
    case RUNNEL__API__ALTER_CONFIGS:
        rn_handle_alter_configs(req);
        break;
    case RUNNEL__API__PRODUCE:
        rn_handle_produce(req);
        break;
    case RUNNEL__API__FETCH:
        rn_handle_fetch(req);
        break;
    case RUNNEL__API__LIST_OFFSETS:
        rn_handle_list_offsets(req);
        break;
    case RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH:
        rn_handle_offsets_for_leader_epoch(req);
        break;
    case RUNNEL__API__GROUP_HEARTBEAT:
        rn_handle_group_heartbeat(req);
        break;
    case RUNNEL__API__COMMIT_OFFSETS:
        rn_handle_commit_offsets(req);
        break;
    case RUNNEL__API__FETCH_OFFSETS:
        rn_handle_fetch_offsets(req);
        break;
    case RUNNEL__API__LIST_GROUPS:
        rn_handle_list_groups(req);
        break;
    case RUNNEL__API__DESCRIBE_GROUP:
        rn_handle_describe_group(req);
        break;
    case RUNNEL__API__DELETE_GROUP:
        rn_handle_delete_group(req);
        break;
    case RUNNEL__API__FIND_COORDINATOR:
        rn_handle_find_coordinator(req);
        break;
    case RUNNEL__API__INIT_PRODUCER:
        rn_handle_init_producer(req);
        break;
    case RUNNEL__API__CLUSTER_STATUS:
        rn_handle_cluster_status(req);
        break;
    case RUNNEL__API__REASSIGN_PARTITIONS:
        rn_handle_reassign_partitions(req);
        break;
    default:
        /* frame.c only lets through APIs it decodes; this is a safety net. */
        rn_request_fail(req, -RN_E_UNKNOWN_API, NULL);
        break;
    }
}
