/*
 * produce.h — JSON records to a Produce request (internal to broker/gateway/),
 * shared by REST (POST /topics/{t}[/partitions/{p}]) and the WebSocket
 * "produce" op.
 *
 * Records: [{"key","value","partition","headers":[{"name","value"}]}], each
 * field optional. The partition of a record is, in order: the one in the URL,
 * its own "partition", XXH3_64(key bytes) % partitions (the native
 * partitioner, clients/conf.c), else round-robin across the topic's
 * partitions. Records of one partition become one record batch (in their
 * order), the batches one Produce request with acks=all.
 */
#ifndef RN_GATEWAY_PRODUCE_H
#define RN_GATEWAY_PRODUCE_H

#include <jansson.h>

#include "broker/gateway/client.h"
#include "broker/gateway/http.h"
#include "broker/gateway/json.h"

/* Most records in one request. */
#define RN_GW_MAX_PRODUCE_RECORDS 10000

/* The outcome. status/code: the HTTP status and REST code of the whole
 * request (200/0 when it was sent and answered, even with per-record errors);
 * offsets: [{"partition","offset","error_code","error"}] in record order
 * (borrowed for the call; NULL when status is not 200). status 0: the answer
 * will never come (the client was closed): only free arg's state. */
typedef void (*rn_gw_produce_cb)(void *arg, int status, int code, const char *msg, json_t *offsets);

/* Build and send. On success returns 0 and cb runs exactly once: with the
 * answer, or with status 0 if cl is closed first. On an error
 * before anything is sent returns a negative error, cb never runs, and
 * *status, *code, msg say what to answer. records is borrowed for the call. */
int rn_gw_produce(rn_gateway *gw, rn_gw_client *cl, const char *topic, int32_t partition,
                  json_t *records, enum rn_gw_format fmt, bool raw_strings, rn_gw_produce_cb cb,
                  void *arg, int *status, int *code, char *msg, size_t msglen);

#endif
