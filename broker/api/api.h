/*
 * api/api.h — the API layer: rn_dispatch (api/dispatch.c) and one handler per API
 * (api/<api>.c), and the parked fetches of api/fetch.c.
 *
 * Each handler takes a decoded request on the reactor that runs it and answers it, now or
 * later, through net/conn.h's rn_request_respond / rn_request_fail; it reaches state
 * through part/, coord/ and meta/'s headers, never the other way round (DESIGN §2).
 */
#ifndef RN_BROKER_API_API_H
#define RN_BROKER_API_API_H

#include "broker/broker.h"

/* Run the handler of req->api. The handler responds (now or later). */
void rn_dispatch(rn_request *req);

void rn_handle_api_versions(rn_request *req);
void rn_handle_metadata(rn_request *req);
void rn_handle_create_topics(rn_request *req);
void rn_handle_delete_topics(rn_request *req);
void rn_handle_describe_topic(rn_request *req);
void rn_handle_alter_configs(rn_request *req);
void rn_handle_produce(rn_request *req);
void rn_handle_fetch(rn_request *req);
void rn_handle_list_offsets(rn_request *req);
void rn_handle_offsets_for_leader_epoch(rn_request *req);
void rn_handle_group_heartbeat(rn_request *req);
void rn_handle_commit_offsets(rn_request *req);
void rn_handle_fetch_offsets(rn_request *req);
void rn_handle_list_groups(rn_request *req);
void rn_handle_cluster_status(rn_request *req); /* api/cluster.c */
void rn_handle_reassign_partitions(rn_request *req); /* api/reassign.c */
void rn_handle_describe_group(rn_request *req);
void rn_handle_delete_group(rn_request *req);
void rn_handle_find_coordinator(rn_request *req);
void rn_handle_init_producer(rn_request *req);

/* The answers of a request answered partition by partition (api/answers.c):
 * n messages of descriptor d, initialised, and the table of pointers to
 * them that the response lists, in one block that free(table) frees. NULL
 * when out of memory, with req answered so. */
void *rn_api_answers(rn_request *req, const ProtobufCMessageDescriptor *d, size_t n);

/* A parked fetch (api/fetch.c): its waiters sit on its partitions'
 * fetch_waiters queues (part/waiters.h), woken by rn_partition_wake; or its
 * timer answers. */
typedef struct rn_fetch_wait rn_fetch_wait;

void rn_fetch_wake(rn_fetch_wait *w);
/* Answer a parked fetch now with whatever there is (another reactor's part
 * of the same fetch found data: broker/net/shard.c). */
void rn_fetch_answer_now(rn_fetch_wait *w);
/* Abandon a parked fetch (its connection is gone). */
void rn_fetch_cancel(rn_fetch_wait *w);

#endif
