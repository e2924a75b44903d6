/*
 * kafka/groups.h — the Kafka group APIs (broker/kafka/groups.c), called by
 * the dispatcher in apis.c. Each parses its request body (returning the
 * reader's error for a malformed one, as the other APIs do) and answers
 * through rn_kreq_answer, now or later (JoinGroup and SyncGroup wait for
 * the rebalance, OffsetCommit and DeleteGroups for __offsets).
 */
#ifndef RN_BROKER_KAFKA_GROUPS_H
#define RN_BROKER_KAFKA_GROUPS_H

#include "broker/kafka/conn.h"

int rn_kafka_find_coordinator(rn_kreq *req);
int rn_kafka_join_group(rn_kreq *req);
int rn_kafka_sync_group(rn_kreq *req);
int rn_kafka_heartbeat(rn_kreq *req);
int rn_kafka_leave_group(rn_kreq *req);
int rn_kafka_offset_commit(rn_kreq *req);
int rn_kafka_offset_fetch(rn_kreq *req);
int rn_kafka_list_groups(rn_kreq *req);
int rn_kafka_describe_groups(rn_kreq *req);
int rn_kafka_delete_groups(rn_kreq *req);

#endif
