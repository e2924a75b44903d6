/*
 * test_frame.c — the native protocol framing and header codec (protocol/frame.[ch]).
 *
 * Round trips of every API's request and response, a stream cut at every byte
 * boundary, every length check of the prefix, malformed and hostile headers, the
 * request validation rules, the memory budget, and one golden frame.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/frame.h"

/* ---- Helpers ---------------------------------------------------------------- */

/* A complete frame (prefix + header + payload) in a malloc'd buffer. */
static uint8_t *wire_frame(const ProtobufCMessage *h, const void *payload, size_t plen, size_t *len)
{
    size_t hl = rn_frame_encoded_len(h), n;
    uint8_t *w = malloc(hl + plen + 1);
    cr_assert_not_null(w);
    cr_assert_eq(rn_frame_encode(h, plen, w, hl + plen, &n), 0);
    cr_assert_eq(n, hl);
    if (plen)
        memcpy(w + hl, payload, plen);
    *len = hl + plen;
    return w;
}

/* A frame built by hand from raw header bytes (for malformed headers). */
static uint8_t *raw_frame(const void *hdr, size_t hlen, const void *payload, size_t plen,
                          size_t *len)
{
    uint8_t *w = malloc(8 + hlen + plen + 1);
    cr_assert_not_null(w);
    uint32_t fl = htobe32((uint32_t)(4 + hlen + plen)), hb = htobe32((uint32_t)hlen);
    memcpy(w, &fl, 4);
    memcpy(w + 4, &hb, 4);
    if (hlen)
        memcpy(w + 8, hdr, hlen);
    if (plen)
        memcpy(w + 8 + hlen, payload, plen);
    *len = 8 + hlen + plen;
    return w;
}

/* Feed a buffer that holds exactly one frame and return the frame. */
static rn_frame one_frame(rn_frame_decoder *d, const uint8_t *w, size_t len)
{
    rn_frame f;
    size_t used;
    cr_assert_eq(rn_frame_decoder_feed(d, w, len, &used, &f), 1, "%s", rn_frame_decoder_errmsg(d));
    cr_assert_eq(used, len);
    return f;
}

/* Decode a request frame held in w (default limits, or lim). */
static int decode_req(const uint8_t *w, size_t len, const rn_frame_limits *lim,
                      rn_frame_request *req, char *err, size_t errlen)
{
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, lim);
    rn_frame f = one_frame(&d, w, len);
    int r = rn_frame_request_decode(req, &f, lim, err, errlen);
    rn_frame_decoder_fini(&d); /* f borrowed w, not d */
    return r;
}

/* Encode h with payload, decode it back, check the decoded header packs to the
 * same bytes, and leave it in req. Returns the wire buffer (req->payload points
 * into it); the caller frees it after rn_frame_request_fini. */
static uint8_t *req_round_trip(Runnel__RequestHeader *h, const void *payload, size_t plen,
                               rn_frame_request *req)
{
    size_t len;
    char err[256];
    uint8_t *w = wire_frame(&h->base, payload, plen, &len);
    int r = decode_req(w, len, NULL, req, err, sizeof(err));
    cr_assert_eq(r, 0, "decode: %s (%s)", err, rn_errname(r));
    cr_assert_not_null(req->hdr);
    cr_assert_eq(req->correlation_id, h->correlation_id);
    cr_assert_eq(req->api, (int)h->api);
    cr_assert_eq(req->payload_len, plen);
    cr_assert(plen == 0 || memcmp(req->payload, payload, plen) == 0);
    /* Same bytes after a trip through protobuf-c: nothing lost or added. */
    size_t hl = protobuf_c_message_get_packed_size(&req->hdr->base);
    cr_assert_eq(hl + 8, rn_frame_encoded_len(&h->base));
    uint8_t *again = malloc(hl + 1);
    protobuf_c_message_pack(&req->hdr->base, again);
    cr_assert(memcmp(again, w + 8, hl) == 0, "re-packed header differs");
    free(again);
    return w;
}

static uint8_t *resp_round_trip(Runnel__ResponseHeader *h, int api, const void *payload,
                                size_t plen, rn_frame_response *resp)
{
    size_t len;
    char err[256];
    uint8_t *w = wire_frame(&h->base, payload, plen, &len);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame f = one_frame(&d, w, len);
    int r = rn_frame_response_decode(resp, &f, api, NULL, err, sizeof(err));
    cr_assert_eq(r, 0, "decode: %s (%s)", err, rn_errname(r));
    rn_frame_decoder_fini(&d);
    cr_assert_eq(resp->hdr->correlation_id, h->correlation_id);
    cr_assert_eq(resp->payload_len, plen);
    size_t hl = protobuf_c_message_get_packed_size(&resp->hdr->base);
    uint8_t *again = malloc(hl + 1);
    protobuf_c_message_pack(&resp->hdr->base, again);
    cr_assert_eq(hl + 8, rn_frame_encoded_len(&h->base));
    cr_assert(memcmp(again, w + 8, hl) == 0, "re-packed header differs");
    free(again);
    return w;
}

static Runnel__RequestHeader req_header(int api, uint32_t cid)
{
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = api;
    h.correlation_id = cid;
    h.client_id = "test-client";
    h.body_case = (Runnel__RequestHeader__BodyCase)(api + 9);
    return h;
}

static Runnel__ResponseHeader resp_header(int api, uint32_t cid)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = cid;
    h.body_case = (Runnel__ResponseHeader__BodyCase)(api + 9);
    return h;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- Golden bytes ------------------------------------------------------------- */

// One small ApiVersions request encodes to exactly these bytes, and decodes back.
Test(frame, golden_api_versions_request)
{
    static const uint8_t golden[] = {
        0x00, 0x00, 0x00, 0x0d, /* frame_length 13 = 4 + 9 */
        0x00, 0x00, 0x00, 0x09, /* header_length 9 */
        0x08, 0x01,             /* 1: api = API_VERSIONS */
        0x18, 0x01,             /* 3: correlation_id = 1 (api_version 0 is not sent) */
        0x22, 0x01, 0x74,       /* 4: client_id = "t" */
        0x52, 0x00,             /* 10: api_versions = {} */
    };
    Runnel__ApiVersionsRequest body = RUNNEL__API_VERSIONS_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__API_VERSIONS, 1);
    h.client_id = "t";
    h.api_versions = &body;
    uint8_t buf[64];
    size_t n;
    cr_assert_eq(rn_frame_encode(&h.base, 0, buf, sizeof(buf), &n), 0);
    cr_assert_eq(n, sizeof(golden));
    cr_assert(memcmp(buf, golden, n) == 0);

    rn_frame_request req;
    char err[128];
    cr_assert_eq(decode_req(golden, sizeof(golden), NULL, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.hdr->api, RUNNEL__API__API_VERSIONS);
    cr_assert_eq(req.correlation_id, 1);
    cr_assert_str_eq(req.hdr->client_id, "t");
    cr_assert_eq(req.hdr->body_case, RUNNEL__REQUEST_HEADER__BODY_API_VERSIONS);
    rn_frame_request_fini(&req);
}

/* ---- Round trips of every API ----------------------------------------------- */

// ApiVersions request and response survive encode → frame → decode unchanged.
Test(frame, round_trip_api_versions)
{
    Runnel__ApiVersionsRequest rb = RUNNEL__API_VERSIONS_REQUEST__INIT;
    rb.client_software_name = "librunnel";
    rb.client_software_version = "0.1.0";
    Runnel__RequestHeader h = req_header(RUNNEL__API__API_VERSIONS, 11);
    h.api_versions = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_str_eq(req.hdr->api_versions->client_software_name, "librunnel");
    rn_frame_request_fini(&req);
    free(w);

    size_t n_apis;
    const rn_frame_api *apis = rn_frame_apis(&n_apis);
    Runnel__ApiVersion v[32], *vp[32];
    cr_assert_leq(n_apis, 32);
    for (size_t i = 0; i < n_apis; i++) {
        v[i] = (Runnel__ApiVersion)RUNNEL__API_VERSION__INIT;
        v[i].api = apis[i].api;
        v[i].min_version = apis[i].min_version;
        v[i].max_version = apis[i].max_version + 3;
        vp[i] = &v[i];
    }
    Runnel__ApiVersionsResponse sb = RUNNEL__API_VERSIONS_RESPONSE__INIT;
    sb.n_api_versions = n_apis;
    sb.api_versions = vp;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__API_VERSIONS, 11);
    rh.api_versions = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__API_VERSIONS, NULL, 0, &resp);
    cr_assert_eq(resp.hdr->api_versions->n_api_versions, n_apis);
    cr_assert_eq((int)resp.hdr->api_versions->api_versions[n_apis - 1]->api,
                 (int)apis[n_apis - 1].api);
    cr_assert_eq(resp.hdr->api_versions->api_versions[0]->max_version, 3);
    rn_frame_response_fini(&resp);
    free(w);
}

// Metadata: a topic filter out, brokers/controller/topics/partitions back.
Test(frame, round_trip_metadata)
{
    char *topics[] = {"orders", "payments"};
    Runnel__MetadataRequest rb = RUNNEL__METADATA_REQUEST__INIT;
    rb.n_topics = 2;
    rb.topics = topics;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 12);
    h.metadata = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_eq(req.hdr->metadata->n_topics, 2);
    cr_assert_str_eq(req.hdr->metadata->topics[1], "payments");
    rn_frame_request_fini(&req);
    free(w);

    Runnel__Broker b1 = RUNNEL__BROKER__INIT, b2 = RUNNEL__BROKER__INIT;
    b1.node_id = 1, b1.host = "10.0.0.1", b1.port = 9700;
    b2.node_id = 2, b2.host = "10.0.0.2", b2.port = 9701, b2.rack = "r2";
    Runnel__Broker *brokers[] = {&b1, &b2};
    int32_t replicas[] = {1, 2}, isr[] = {2};
    Runnel__PartitionMetadata p0 = RUNNEL__PARTITION_METADATA__INIT;
    p0.partition = 0, p0.leader = 2, p0.leader_epoch = 7;
    p0.n_replicas = 2, p0.replicas = replicas, p0.n_isr = 1, p0.isr = isr;
    Runnel__PartitionMetadata p1 = RUNNEL__PARTITION_METADATA__INIT;
    p1.partition = 1, p1.leader = -1, p1.error_code = RN_E_NOT_LEADER;
    Runnel__PartitionMetadata *parts[] = {&p0, &p1};
    Runnel__TopicMetadata t0 = RUNNEL__TOPIC_METADATA__INIT, t1 = RUNNEL__TOPIC_METADATA__INIT;
    t0.name = "orders", t0.n_partitions = 2, t0.partitions = parts;
    t1.name = "payments", t1.error_code = RN_E_UNKNOWN_TOPIC;
    Runnel__TopicMetadata *tms[] = {&t0, &t1};
    Runnel__MetadataResponse sb = RUNNEL__METADATA_RESPONSE__INIT;
    sb.n_brokers = 2, sb.brokers = brokers, sb.controller_id = 1, sb.cluster_id = "c1";
    sb.n_topics = 2, sb.topics = tms;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__METADATA, 12);
    rh.metadata = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__METADATA, NULL, 0, &resp);
    Runnel__MetadataResponse *m = resp.hdr->metadata;
    cr_assert_eq(m->n_brokers, 2);
    cr_assert_str_eq(m->brokers[1]->host, "10.0.0.2");
    cr_assert_eq(m->brokers[1]->port, 9701);
    cr_assert_eq(m->controller_id, 1);
    cr_assert_eq(m->topics[0]->partitions[0]->n_replicas, 2);
    cr_assert_eq(m->topics[0]->partitions[0]->isr[0], 2);
    cr_assert_eq(m->topics[0]->partitions[1]->leader, -1);
    cr_assert_eq(m->topics[1]->error_code, RN_E_UNKNOWN_TOPIC);
    rn_frame_response_fini(&resp);
    free(w);
}

// CreateTopics: topics with a configs map and validate_only; per-topic results.
Test(frame, round_trip_create_topics)
{
    Runnel__NewTopic__ConfigsEntry c0 = RUNNEL__NEW_TOPIC__CONFIGS_ENTRY__INIT;
    Runnel__NewTopic__ConfigsEntry c1 = RUNNEL__NEW_TOPIC__CONFIGS_ENTRY__INIT;
    c0.key = "retention.ms", c0.value = "3600000";
    c1.key = "cleanup.policy", c1.value = "delete";
    Runnel__NewTopic__ConfigsEntry *cs[] = {&c0, &c1};
    Runnel__NewTopic t = RUNNEL__NEW_TOPIC__INIT;
    t.name = "orders", t.num_partitions = 12, t.replication_factor = 3;
    t.n_configs = 2, t.configs = cs;
    Runnel__NewTopic *ts[] = {&t};
    Runnel__CreateTopicsRequest rb = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
    rb.n_topics = 1, rb.topics = ts, rb.timeout_ms = 30000, rb.validate_only = 1;
    Runnel__RequestHeader h = req_header(RUNNEL__API__CREATE_TOPICS, 13);
    h.create_topics = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    Runnel__CreateTopicsRequest *d = req.hdr->create_topics;
    cr_assert_eq(d->topics[0]->num_partitions, 12);
    cr_assert_eq(d->topics[0]->n_configs, 2);
    cr_assert_str_eq(d->topics[0]->configs[1]->value, "delete");
    cr_assert(d->validate_only);
    rn_frame_request_fini(&req);
    free(w);

    Runnel__TopicResult r0 = RUNNEL__TOPIC_RESULT__INIT;
    r0.name = "orders", r0.error_code = RN_E_TOPIC_EXISTS, r0.error_message = "exists";
    Runnel__TopicResult *rs[] = {&r0};
    Runnel__CreateTopicsResponse sb = RUNNEL__CREATE_TOPICS_RESPONSE__INIT;
    sb.n_topics = 1, sb.topics = rs;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__CREATE_TOPICS, 13);
    rh.create_topics = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__CREATE_TOPICS, NULL, 0, &resp);
    cr_assert_eq(resp.hdr->create_topics->topics[0]->error_code, RN_E_TOPIC_EXISTS);
    cr_assert_str_eq(resp.hdr->create_topics->topics[0]->error_message, "exists");
    rn_frame_response_fini(&resp);
    free(w);
}

// DeleteTopics: names out, per-topic results back.
Test(frame, round_trip_delete_topics)
{
    char *topics[] = {"old"};
    Runnel__DeleteTopicsRequest rb = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
    rb.n_topics = 1, rb.topics = topics, rb.timeout_ms = 5000;
    Runnel__RequestHeader h = req_header(RUNNEL__API__DELETE_TOPICS, 14);
    h.delete_topics = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_str_eq(req.hdr->delete_topics->topics[0], "old");
    cr_assert_eq(req.hdr->delete_topics->timeout_ms, 5000);
    rn_frame_request_fini(&req);
    free(w);

    Runnel__TopicResult r0 = RUNNEL__TOPIC_RESULT__INIT;
    r0.name = "old";
    Runnel__TopicResult *rs[] = {&r0};
    Runnel__DeleteTopicsResponse sb = RUNNEL__DELETE_TOPICS_RESPONSE__INIT;
    sb.n_topics = 1, sb.topics = rs;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__DELETE_TOPICS, 14);
    rh.delete_topics = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__DELETE_TOPICS, NULL, 0, &resp);
    cr_assert_str_eq(resp.hdr->delete_topics->topics[0]->name, "old");
    rn_frame_response_fini(&resp);
    free(w);
}

// DescribeTopic: a name out; configs and per-partition offsets and sizes back.
Test(frame, round_trip_describe_topic)
{
    Runnel__DescribeTopicRequest rb = RUNNEL__DESCRIBE_TOPIC_REQUEST__INIT;
    rb.name = "orders";
    Runnel__RequestHeader h = req_header(RUNNEL__API__DESCRIBE_TOPIC, 15);
    h.describe_topic = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_str_eq(req.hdr->describe_topic->name, "orders");
    rn_frame_request_fini(&req);
    free(w);

    Runnel__DescribeTopicResponse__ConfigsEntry c0 =
        RUNNEL__DESCRIBE_TOPIC_RESPONSE__CONFIGS_ENTRY__INIT;
    c0.key = "segment.bytes", c0.value = "1073741824";
    Runnel__DescribeTopicResponse__ConfigsEntry *cs[] = {&c0};
    int32_t replicas[] = {1, 2, 3};
    Runnel__PartitionDescription p = RUNNEL__PARTITION_DESCRIPTION__INIT;
    p.partition = 3, p.leader = 1, p.leader_epoch = 4, p.n_replicas = 3, p.replicas = replicas;
    p.n_isr = 3, p.isr = replicas, p.log_start_offset = 100, p.high_watermark = 5000000000ll;
    p.log_end_offset = 5000000001ll, p.size_bytes = 1ll << 40;
    Runnel__PartitionDescription *ps[] = {&p};
    Runnel__DescribeTopicResponse sb = RUNNEL__DESCRIBE_TOPIC_RESPONSE__INIT;
    sb.name = "orders", sb.n_configs = 1, sb.configs = cs, sb.n_partitions = 1, sb.partitions = ps;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__DESCRIBE_TOPIC, 15);
    rh.describe_topic = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__DESCRIBE_TOPIC, NULL, 0, &resp);
    Runnel__PartitionDescription *d = resp.hdr->describe_topic->partitions[0];
    cr_assert_eq(d->high_watermark, 5000000000ll);
    cr_assert_eq(d->log_end_offset, 5000000001ll);
    cr_assert_eq(d->size_bytes, 1ll << 40);
    cr_assert_eq(d->replicas[2], 3);
    cr_assert_str_eq(resp.hdr->describe_topic->configs[0]->key, "segment.bytes");
    rn_frame_response_fini(&resp);
    free(w);
}

// AlterConfigs: set map and delete list out; an empty body with a header error back.
Test(frame, round_trip_alter_configs)
{
    Runnel__AlterConfigsRequest__SetConfigsEntry s0 =
        RUNNEL__ALTER_CONFIGS_REQUEST__SET_CONFIGS_ENTRY__INIT;
    s0.key = "retention.bytes", s0.value = "1000000";
    Runnel__AlterConfigsRequest__SetConfigsEntry *ss[] = {&s0};
    char *del[] = {"retention.ms"};
    Runnel__AlterConfigsRequest rb = RUNNEL__ALTER_CONFIGS_REQUEST__INIT;
    rb.topic = "orders", rb.n_set_configs = 1, rb.set_configs = ss;
    rb.n_delete_configs = 1, rb.delete_configs = del;
    Runnel__RequestHeader h = req_header(RUNNEL__API__ALTER_CONFIGS, 16);
    h.alter_configs = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_str_eq(req.hdr->alter_configs->set_configs[0]->value, "1000000");
    cr_assert_str_eq(req.hdr->alter_configs->delete_configs[0], "retention.ms");
    rn_frame_request_fini(&req);
    free(w);

    Runnel__AlterConfigsResponse sb = RUNNEL__ALTER_CONFIGS_RESPONSE__INIT;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__ALTER_CONFIGS, 16);
    rh.alter_configs = &sb;
    rh.error_code = RN_E_INVALID_CONFIG;
    rh.error_message = "retention.bytes: not a number";
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__ALTER_CONFIGS, NULL, 0, &resp);
    cr_assert_eq(resp.hdr->error_code, RN_E_INVALID_CONFIG);
    cr_assert_str_eq(resp.hdr->error_message, "retention.bytes: not a number");
    rn_frame_response_fini(&resp);
    free(w);
}

// Produce: batches travel in the payload in partition order, offsets come back.
Test(frame, round_trip_produce)
{
    uint8_t payload[61 + 100];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    Runnel__ProducePartition a = RUNNEL__PRODUCE_PARTITION__INIT;
    Runnel__ProducePartition b = RUNNEL__PRODUCE_PARTITION__INIT;
    a.topic = "orders", a.partition = 0, a.batch_len = 61;
    b.topic = "orders", b.partition = 5, b.batch_len = 100;
    Runnel__ProducePartition *ps[] = {&a, &b};
    Runnel__ProduceRequest rb = RUNNEL__PRODUCE_REQUEST__INIT;
    rb.acks = -1, rb.timeout_ms = 1500, rb.n_partitions = 2, rb.partitions = ps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__PRODUCE, 17);
    h.produce = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, payload, sizeof(payload), &req);
    cr_assert_eq(req.hdr->produce->acks, -1);
    cr_assert_eq(req.hdr->produce->partitions[1]->partition, 5);
    cr_assert_eq(req.hdr->produce->partitions[1]->batch_len, 100);
    /* The second batch starts right after the first. */
    cr_assert_eq(req.payload[61], payload[61]);
    rn_frame_request_fini(&req);
    free(w);

    Runnel__ProducePartitionResponse r0 = RUNNEL__PRODUCE_PARTITION_RESPONSE__INIT;
    Runnel__ProducePartitionResponse r1 = RUNNEL__PRODUCE_PARTITION_RESPONSE__INIT;
    r0.topic = "orders", r0.partition = 0, r0.base_offset = 42, r0.log_append_time = -1;
    r0.log_start_offset = 0;
    r1.topic = "orders", r1.partition = 5, r1.error_code = RN_E_NOT_LEADER;
    r1.error_message = "leader is 3", r1.base_offset = -1;
    Runnel__ProducePartitionResponse *rs[] = {&r0, &r1};
    Runnel__ProduceResponse sb = RUNNEL__PRODUCE_RESPONSE__INIT;
    sb.n_partitions = 2, sb.partitions = rs;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__PRODUCE, 17);
    rh.produce = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__PRODUCE, NULL, 0, &resp);
    cr_assert_eq(resp.hdr->produce->partitions[0]->base_offset, 42);
    cr_assert_eq(resp.hdr->produce->partitions[0]->log_append_time, -1);
    cr_assert_eq(resp.hdr->produce->partitions[1]->error_code, RN_E_NOT_LEADER);
    rn_frame_response_fini(&resp);
    free(w);
}

// Fetch: per-partition offsets out; offsets and bytes_len back with batches in the payload.
Test(frame, round_trip_fetch)
{
    Runnel__FetchPartition a = RUNNEL__FETCH_PARTITION__INIT;
    a.topic = "orders", a.partition = 2, a.fetch_offset = 123456789012ll;
    a.partition_max_bytes = 1 << 20, a.current_leader_epoch = -1;
    Runnel__FetchPartition *ps[] = {&a};
    Runnel__FetchRequest rb = RUNNEL__FETCH_REQUEST__INIT;
    rb.replica_id = -1, rb.max_wait_ms = 500, rb.min_bytes = 1, rb.max_bytes = 50 << 20;
    rb.isolation = RUNNEL__ISOLATION_LEVEL__READ_UNCOMMITTED;
    rb.n_partitions = 1, rb.partitions = ps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__FETCH, 18);
    h.fetch = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_eq(req.hdr->fetch->replica_id, -1);
    cr_assert_eq(req.hdr->fetch->partitions[0]->fetch_offset, 123456789012ll);
    cr_assert_eq(req.hdr->fetch->partitions[0]->current_leader_epoch, -1);
    rn_frame_request_fini(&req);
    free(w);

    uint8_t payload[300];
    memset(payload, 0xab, sizeof(payload));
    Runnel__FetchPartitionResponse r0 = RUNNEL__FETCH_PARTITION_RESPONSE__INIT;
    Runnel__FetchPartitionResponse r1 = RUNNEL__FETCH_PARTITION_RESPONSE__INIT;
    r0.topic = "orders", r0.partition = 2, r0.high_watermark = 10, r0.log_end_offset = 11;
    r0.bytes_len = 300;
    r1.topic = "orders", r1.partition = 3, r1.error_code = RN_E_OFFSET_OUT_OF_RANGE;
    r1.log_start_offset = 50;
    Runnel__FetchPartitionResponse *rs[] = {&r0, &r1};
    Runnel__FetchResponse sb = RUNNEL__FETCH_RESPONSE__INIT;
    sb.n_partitions = 2, sb.partitions = rs;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__FETCH, 18);
    rh.fetch = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__FETCH, payload, sizeof(payload), &resp);
    cr_assert_eq(resp.hdr->fetch->partitions[0]->bytes_len, 300);
    cr_assert_eq(resp.hdr->fetch->partitions[1]->error_code, RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(resp.hdr->fetch->partitions[1]->log_start_offset, 50);
    cr_assert_eq(resp.payload[299], 0xab);
    rn_frame_response_fini(&resp);
    free(w);
}

// ListOffsets: earliest/latest/by-time queries out, offsets and timestamps back.
Test(frame, round_trip_list_offsets)
{
    Runnel__ListOffsetsPartition a = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
    Runnel__ListOffsetsPartition b = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
    Runnel__ListOffsetsPartition c = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
    a.topic = "t", a.partition = 0, a.timestamp = -2;
    b.topic = "t", b.partition = 1, b.timestamp = -1;
    c.topic = "t", c.partition = 2, c.timestamp = 1700000000000ll;
    Runnel__ListOffsetsPartition *ps[] = {&a, &b, &c};
    Runnel__ListOffsetsRequest rb = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    rb.n_partitions = 3, rb.partitions = ps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__LIST_OFFSETS, 19);
    h.list_offsets = &rb;
    rn_frame_request req;
    uint8_t *w = req_round_trip(&h, NULL, 0, &req);
    cr_assert_eq(req.hdr->list_offsets->partitions[0]->timestamp, -2);
    cr_assert_eq(req.hdr->list_offsets->partitions[2]->timestamp, 1700000000000ll);
    rn_frame_request_fini(&req);
    free(w);

    Runnel__ListOffsetsPartitionResponse r0 = RUNNEL__LIST_OFFSETS_PARTITION_RESPONSE__INIT;
    r0.topic = "t", r0.partition = 2, r0.offset = 77, r0.timestamp = 1700000000005ll;
    Runnel__ListOffsetsPartitionResponse *rs[] = {&r0};
    Runnel__ListOffsetsResponse sb = RUNNEL__LIST_OFFSETS_RESPONSE__INIT;
    sb.n_partitions = 1, sb.partitions = rs;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__LIST_OFFSETS, 19);
    rh.list_offsets = &sb;
    rn_frame_response resp;
    w = resp_round_trip(&rh, RUNNEL__API__LIST_OFFSETS, NULL, 0, &resp);
    cr_assert_eq(resp.hdr->list_offsets->partitions[0]->offset, 77);
    cr_assert_eq(resp.hdr->list_offsets->partitions[0]->timestamp, 1700000000005ll);
    rn_frame_response_fini(&resp);
    free(w);
}

/* ---- Stream cutting ------------------------------------------------------------ */

#define MAX_FRAMES 8

typedef struct seen {
    size_t n;
    uint8_t *hdr[MAX_FRAMES], *pay[MAX_FRAMES];
    uint32_t hlen[MAX_FRAMES], plen[MAX_FRAMES];
} seen;

static void seen_add(seen *s, const rn_frame *f)
{
    cr_assert_lt(s->n, MAX_FRAMES);
    s->hdr[s->n] = malloc(f->header_len + 1);
    s->pay[s->n] = malloc(f->payload_len + 1);
    memcpy(s->hdr[s->n], f->header, f->header_len);
    memcpy(s->pay[s->n], f->payload, f->payload_len);
    s->hlen[s->n] = f->header_len;
    s->plen[s->n] = f->payload_len;
    s->n++;
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->hdr[i]);
        free(s->pay[i]);
    }
    s->n = 0;
}

/* Feed buf as one recv would deliver it, collecting frames. */
static void feed_chunk(rn_frame_decoder *d, const uint8_t *buf, size_t len, seen *s)
{
    while (len > 0) {
        rn_frame f;
        size_t used;
        int r = rn_frame_decoder_feed(d, buf, len, &used, &f);
        cr_assert_geq(r, 0, "feed: %s", rn_frame_decoder_errmsg(d));
        cr_assert_leq(used, len);
        if (r == 0) {
            cr_assert_eq(used, len, "no frame but bytes left over");
            return;
        }
        seen_add(s, &f);
        buf += used;
        len -= used;
    }
}

/* Four frames back to back: ApiVersions, Produce with a payload, an empty
 * header with no payload (the smallest frame), Metadata. */
static uint8_t *make_stream(size_t *len, seen *expect)
{
    Runnel__ApiVersionsRequest av = RUNNEL__API_VERSIONS_REQUEST__INIT;
    Runnel__RequestHeader h1 = req_header(RUNNEL__API__API_VERSIONS, 1);
    h1.api_versions = &av;
    uint8_t batch[70];
    for (size_t i = 0; i < sizeof(batch); i++)
        batch[i] = (uint8_t)(0xc0 + i);
    Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT;
    pp.topic = "t", pp.batch_len = sizeof(batch);
    Runnel__ProducePartition *pps[] = {&pp};
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1, pr.n_partitions = 1, pr.partitions = pps;
    Runnel__RequestHeader h2 = req_header(RUNNEL__API__PRODUCE, 2);
    h2.produce = &pr;
    char *topics[] = {"t"};
    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    md.n_topics = 1, md.topics = topics;
    Runnel__RequestHeader h4 = req_header(RUNNEL__API__METADATA, 4);
    h4.metadata = &md;

    size_t l1, l2, l3, l4;
    uint8_t *f1 = wire_frame(&h1.base, NULL, 0, &l1);
    uint8_t *f2 = wire_frame(&h2.base, batch, sizeof(batch), &l2);
    uint8_t *f3 = raw_frame(NULL, 0, NULL, 0, &l3);
    uint8_t *f4 = wire_frame(&h4.base, NULL, 0, &l4);
    uint8_t *all = malloc(l1 + l2 + l3 + l4);
    memcpy(all, f1, l1);
    memcpy(all + l1, f2, l2);
    memcpy(all + l1 + l2, f3, l3);
    memcpy(all + l1 + l2 + l3, f4, l4);
    *len = l1 + l2 + l3 + l4;
    free(f1);
    free(f2);
    free(f3);
    free(f4);

    /* What must come out: fed whole, in one call sequence. */
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    memset(expect, 0, sizeof(*expect));
    feed_chunk(&d, all, *len, expect);
    rn_frame_decoder_fini(&d);
    cr_assert_eq(expect->n, 4);
    cr_assert_eq(expect->plen[1], sizeof(batch));
    cr_assert_eq(expect->hlen[2], 0);
    cr_assert_eq(expect->plen[2], 0);
    return all;
}

static void assert_same(const seen *a, const seen *b, size_t cut)
{
    cr_assert_eq(a->n, b->n, "cut at %zu: %zu frames, expected %zu", cut, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->hlen[i], b->hlen[i], "cut at %zu frame %zu", cut, i);
        cr_assert_eq(a->plen[i], b->plen[i], "cut at %zu frame %zu", cut, i);
        cr_assert(memcmp(a->hdr[i], b->hdr[i], a->hlen[i]) == 0, "cut %zu frame %zu", cut, i);
        cr_assert(memcmp(a->pay[i], b->pay[i], a->plen[i]) == 0, "cut %zu frame %zu", cut, i);
    }
}

// A stream of frames cut in two at every byte boundary yields the same frames.
Test(frame, stream_split_at_every_boundary)
{
    seen expect, got;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    for (size_t cut = 0; cut <= len; cut++) {
        /* Copies at exact sizes so ASan sees any read past a feed. */
        uint8_t *a = malloc(cut + 1), *b = malloc(len - cut + 1);
        memcpy(a, all, cut);
        memcpy(b, all + cut, len - cut);
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, NULL);
        memset(&got, 0, sizeof(got));
        feed_chunk(&d, a, cut, &got);
        free(a); /* no frame may point into a chunk once it is fed */
        feed_chunk(&d, b, len - cut, &got);
        cr_assert_eq(rn_frame_decoder_buffered(&d), 0);
        assert_same(&got, &expect, cut);
        seen_free(&got);
        rn_frame_decoder_fini(&d);
        free(b);
    }
    seen_free(&expect);
    free(all);
}

// The same stream fed one byte at a time, and in pseudo-random chunk sizes.
Test(frame, stream_byte_at_a_time_and_random_chunks)
{
    seen expect, got;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    memset(&got, 0, sizeof(got));
    size_t frame_start = 0, k = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t byte = all[i];
        feed_chunk(&d, &byte, 1, &got);
        /* Exactly the bytes of the frame in progress are held; none at a boundary. */
        if (i + 1 == frame_start + 8 + expect.hlen[k] + expect.plen[k]) {
            cr_assert_eq(got.n, k + 1, "frame %zu not out at byte %zu", k, i);
            frame_start = i + 1;
            k++;
        }
        cr_assert_eq(rn_frame_decoder_buffered(&d), i + 1 - frame_start, "byte %zu", i);
    }
    cr_assert_eq(k, expect.n);
    cr_assert_eq(rn_frame_decoder_buffered(&d), 0);
    assert_same(&got, &expect, 1);
    seen_free(&got);
    rn_frame_decoder_fini(&d);

    for (int round = 0; round < 200; round++) {
        rn_frame_decoder_init(&d, NULL);
        memset(&got, 0, sizeof(got));
        for (size_t off = 0; off < len;) {
            size_t n = 1 + rng() % 40;
            if (n > len - off)
                n = len - off;
            feed_chunk(&d, all + off, n, &got);
            off += n;
        }
        assert_same(&got, &expect, (size_t)round);
        seen_free(&got);
        rn_frame_decoder_fini(&d);
    }
    seen_free(&expect);
    free(all);
}

// A frame whole in the fed buffer is returned in place; a split one is gathered.
Test(frame, whole_frame_is_not_copied)
{
    seen expect;
    size_t len;
    uint8_t *all = make_stream(&len, &expect);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame f;
    size_t used;
    cr_assert_eq(rn_frame_decoder_feed(&d, all, len, &used, &f), 1);
    cr_assert_eq(f.header, all + 8);
    cr_assert_null(rn_frame_decoder_steal(&d)); /* nothing of d's to take */
    /* Also when the buffer ends exactly where the frame does. */
    rn_frame_decoder d1;
    rn_frame_decoder_init(&d1, NULL);
    rn_frame f1;
    size_t used1;
    cr_assert_eq(rn_frame_decoder_feed(&d1, all, used, &used1, &f1), 1);
    cr_assert_eq(used1, used);
    cr_assert_eq(f1.header, all + 8);
    cr_assert_eq(f1.payload, all + used);
    rn_frame_decoder_fini(&d1);

    /* Now the second frame split in two: it comes from the decoder's buffer. */
    const uint8_t *second = all + used;
    size_t second_len = 8 + expect.hlen[1] + expect.plen[1], half = second_len / 2;
    cr_assert_eq(rn_frame_decoder_feed(&d, second, half, &used, &f), 0);
    cr_assert_eq(used, half);
    cr_assert_eq(rn_frame_decoder_buffered(&d), half);
    cr_assert_eq(
        rn_frame_decoder_feed(&d, second + half, len - (size_t)(second - all) - half, &used, &f),
        1);
    cr_assert_eq(used, second_len - half);
    /* The caller may keep the gathered frame past the next feed. */
    void *owned = rn_frame_decoder_steal(&d);
    cr_assert_not_null(owned);
    cr_assert_eq(f.header, (uint8_t *)owned + 4);
    const uint8_t *kept = f.payload;
    cr_assert_eq(rn_frame_decoder_feed(&d, second + second_len, 4, &used, &f), 0);
    cr_assert(memcmp(kept, expect.pay[1], expect.plen[1]) == 0);
    free(owned);
    rn_frame_decoder_fini(&d);
    seen_free(&expect);
    free(all);
}

// The rest of a big frame can be received straight into the decoder's
// buffer (space/commit): the frame is whole and byte-exact, committing more
// than was asked fails, and nothing is offered between frames.
Test(frame, receive_in_place)
{
    uint8_t pay[200000];
    for (size_t i = 0; i < sizeof(pay); i++)
        pay[i] = (uint8_t)(i * 7 + 3);
    Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT, *ppp = &pp;
    pp.topic = "t";
    pp.batch_len = sizeof(pay);
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1;
    pr.n_partitions = 1;
    pr.partitions = &ppp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__PRODUCE;
    h.correlation_id = 9;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
    h.produce = &pr;
    size_t len;
    uint8_t *w = wire_frame(&h.base, pay, sizeof(pay), &len);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    uint8_t *dst = NULL;
    cr_assert_eq(rn_frame_decoder_space(&d, &dst), 0, "nothing is being gathered yet");
    rn_frame f;
    size_t used;
    cr_assert_eq(rn_frame_decoder_feed(&d, w, 1000, &used, &f), 0);
    size_t space = rn_frame_decoder_space(&d, &dst);
    cr_assert_eq(space, len - 1000);
    cr_assert_eq(rn_frame_decoder_commit(&d, space + 1, &f), -EINVAL);
    /* Two receives in place, then the frame. */
    memcpy(dst, w + 1000, 50000);
    cr_assert_eq(rn_frame_decoder_commit(&d, 50000, &f), 0);
    cr_assert_eq(rn_frame_decoder_space(&d, &dst), len - 51000);
    memcpy(dst, w + 51000, len - 51000);
    cr_assert_eq(rn_frame_decoder_commit(&d, len - 51000, &f), 1);
    cr_assert_eq(f.payload_len, sizeof(pay));
    cr_assert(memcmp(f.payload, pay, sizeof(pay)) == 0);
    cr_assert_eq(rn_frame_decoder_space(&d, &dst), 0, "the returned frame is not a gap");
    cr_assert_eq(rn_frame_decoder_commit(&d, 1, &f), -EINVAL);
    rn_frame_request req;
    char err[128];
    cr_assert_eq(rn_frame_request_decode(&req, &f, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.correlation_id, 9);
    rn_frame_request_fini(&req);
    /* The decoder goes on with the next frame as usual. */
    cr_assert_eq(rn_frame_decoder_feed(&d, w, len, &used, &f), 1);
    cr_assert_eq(used, len);
    rn_frame_decoder_fini(&d);
    free(w);
}

/* ---- Prefix checks --------------------------------------------------------------- */

static int feed_prefix(rn_frame_decoder *d, uint32_t frame_len, uint32_t header_len, bool bytewise)
{
    uint8_t p[8];
    uint32_t a = htobe32(frame_len), b = htobe32(header_len);
    memcpy(p, &a, 4);
    memcpy(p + 4, &b, 4);
    rn_frame f;
    size_t used;
    if (!bytewise)
        return rn_frame_decoder_feed(d, p, 8, &used, &f);
    for (int i = 0; i < 8; i++) {
        int r = rn_frame_decoder_feed(d, p + i, 1, &used, &f);
        if (r != 0)
            return r;
    }
    return 0;
}

// frame_length 0..3 cannot even hold header_length: INVALID_REQUEST, whole or bytewise.
Test(frame, frame_length_below_four)
{
    for (uint32_t fl = 0; fl < 4; fl++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            rn_frame_decoder d;
            rn_frame_decoder_init(&d, NULL);
            cr_assert_eq(feed_prefix(&d, fl, 0, bytewise), -RN_E_INVALID_REQUEST, "fl %u", fl);
            cr_assert_neq(rn_frame_decoder_errmsg(&d)[0], '\0');
            rn_frame_decoder_fini(&d);
        }
    }
}

// A huge frame_length is refused after its 4 bytes, before any allocation.
Test(frame, frame_length_huge_fails_before_allocating)
{
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    uint8_t p[4] = {0xff, 0xff, 0xff, 0xff};
    rn_frame f;
    size_t used;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rn_frame_decoder_feed(&d, p + i, 1, &used, &f), 0);
    cr_assert_eq(rn_frame_decoder_feed(&d, p + 3, 1, &used, &f), -RN_E_REQUEST_TOO_LARGE);
    cr_assert_null(d.body);
    cr_assert(strstr(rn_frame_decoder_errmsg(&d), "4294967295") != NULL);
    rn_frame_decoder_fini(&d);

    /* An HTTP request on the native port looks like frame_length 0x47455420. */
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(rn_frame_decoder_feed(&d, "GET / HTTP/1.1\r\n", 16, &used, &f),
                 -RN_E_REQUEST_TOO_LARGE);
    rn_frame_decoder_fini(&d);
}

// max_request is inclusive: max passes, max + 1 is REQUEST_TOO_LARGE.
Test(frame, frame_length_max_and_max_plus_one)
{
    rn_frame_limits lim = {.max_request = 1000};
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, &lim);
        cr_assert_eq(feed_prefix(&d, 1001, 0, bytewise), -RN_E_REQUEST_TOO_LARGE);
        rn_frame_decoder_fini(&d);

        size_t len;
        uint8_t payload[1000 - 4];
        memset(payload, 1, sizeof(payload));
        uint8_t *w = raw_frame(NULL, 0, payload, sizeof(payload), &len);
        rn_frame_decoder_init(&d, &lim);
        seen got = {0};
        if (bytewise) {
            for (size_t i = 0; i < len; i++)
                feed_chunk(&d, w + i, 1, &got);
        } else {
            feed_chunk(&d, w, len, &got);
        }
        cr_assert_eq(got.n, 1);
        cr_assert_eq(got.plen[0], 996);
        seen_free(&got);
        rn_frame_decoder_fini(&d);
        free(w);
    }

    /* The default is socket.request.max.bytes = 100 MiB. */
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(feed_prefix(&d, RN_FRAME_DEFAULT_MAX_REQUEST + 1, 0, false),
                 -RN_E_REQUEST_TOO_LARGE);
    rn_frame_decoder_fini(&d);
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(feed_prefix(&d, RN_FRAME_DEFAULT_MAX_REQUEST, 0, false), 0);
    cr_assert_eq(rn_frame_decoder_buffered(&d), 8);
    rn_frame_decoder_fini(&d);
}

/* The decoder failed with err and exactly msg, holding no body. */
static void expect_dec_error(rn_frame_decoder *d, int got, int err, const char *msg)
{
    cr_assert_eq(got, err, "returned %d (%s), want %d", got, rn_frame_decoder_errmsg(d), err);
    cr_assert_str_eq(rn_frame_decoder_errmsg(d), msg);
    cr_assert_null(d->body, "a body was allocated for a refused frame");
}

// header_length beyond frame_length - 4 is INVALID_REQUEST; beyond the cap, TOO_LARGE.
Test(frame, header_length_checks)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, NULL);
        expect_dec_error(&d, feed_prefix(&d, 100, 97, bytewise), -RN_E_INVALID_REQUEST,
                         "header_length 97 does not fit in frame_length 100");
        rn_frame_decoder_fini(&d);
        rn_frame_decoder_init(&d, NULL);
        expect_dec_error(&d, feed_prefix(&d, 4, 0xffffffffu, bytewise), -RN_E_INVALID_REQUEST,
                         "header_length 4294967295 does not fit in frame_length 4");
        rn_frame_decoder_fini(&d);
        rn_frame_decoder_init(&d, NULL);
        cr_assert_eq(feed_prefix(&d, 100, 96, bytewise), 0); /* fits exactly */
        rn_frame_decoder_fini(&d);

        rn_frame_limits lim = {.max_header = 64};
        rn_frame_decoder_init(&d, &lim);
        expect_dec_error(&d, feed_prefix(&d, 100, 65, bytewise), -RN_E_REQUEST_TOO_LARGE,
                         "header_length 65 exceeds the header limit 64");
        rn_frame_decoder_fini(&d);
        rn_frame_decoder_init(&d, &lim);
        cr_assert_eq(feed_prefix(&d, 100, 64, bytewise), 0);
        rn_frame_decoder_fini(&d);
    }
}

// A header_length past the frame is refused even when the whole frame is in the buffer
// (the fast path that returns slices): no frame comes out, nothing is consumed.
Test(frame, header_length_past_whole_frame)
{
    /* frame_length 8: header_length (4) + 4 more bytes; header_length claims
     * 5 (one too many) or 100; the buffer holds the frame and, in the second
     * round, a valid frame after it, so reading past the frame would not
     * even leave the buffer. */
    static const uint32_t claims[] = {5, 100, 0xffffffffu};
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        for (int tail = 0; tail < 2; tail++) {
            size_t good_len;
            uint8_t *good = raw_frame(NULL, 0, NULL, 0, &good_len);
            uint8_t buf[256] = {0};
            uint32_t fl = htobe32(8), hl = htobe32(claims[i]);
            memcpy(buf, &fl, 4);
            memcpy(buf + 4, &hl, 4);
            size_t len = 12;
            if (tail) {
                cr_assert_leq(len + good_len, sizeof(buf));
                memcpy(buf + len, good, good_len);
                len += good_len;
            }
            rn_frame_decoder d;
            rn_frame_decoder_init(&d, NULL);
            rn_frame f = {0};
            size_t used = 99;
            int r = rn_frame_decoder_feed(&d, buf, len, &used, &f);
            char want[96];
            snprintf(want, sizeof(want), "header_length %u does not fit in frame_length 8",
                     claims[i]);
            expect_dec_error(&d, r, -RN_E_INVALID_REQUEST, want);
            cr_assert_eq(used, 0, "claim %u: %zu bytes consumed", claims[i], used);
            cr_assert_null(f.header, "claim %u: a frame came out", claims[i]);
            rn_frame_decoder_fini(&d);
            free(good);
        }
    }
}

// Once the stream is broken every later feed fails the same way, even with good bytes.
Test(frame, decoder_error_is_sticky)
{
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    cr_assert_eq(feed_prefix(&d, 2, 0, false), -RN_E_INVALID_REQUEST);
    size_t len, used;
    uint8_t *w = raw_frame(NULL, 0, NULL, 0, &len);
    rn_frame f;
    cr_assert_eq(rn_frame_decoder_feed(&d, w, len, &used, &f), -RN_E_INVALID_REQUEST);
    cr_assert_eq(used, 0);
    rn_frame_decoder_fini(&d);
    rn_frame_decoder_fini(&d); /* twice is fine */
    free(w);
}

// Random bytes into the stream decoder never crash: frames or a clean error.
Test(frame, random_stream_bytes)
{
    rn_frame_limits lim = {.max_request = 4096, .max_header = 1024};
    uint8_t buf[512];
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)rng();
        /* Small lengths now and then, so some frames complete. */
        if (round & 1) {
            buf[0] = buf[1] = buf[4] = buf[5] = 0;
            buf[2] &= 1;
            buf[6] = 0;
        }
        rn_frame_decoder d;
        rn_frame_decoder_init(&d, &lim);
        const uint8_t *p = buf;
        size_t left = 1 + rng() % sizeof(buf);
        while (left) {
            rn_frame f;
            size_t used;
            int r = rn_frame_decoder_feed(&d, p, left, &used, &f);
            if (r < 0) {
                cr_assert(r == -RN_E_INVALID_REQUEST || r == -RN_E_REQUEST_TOO_LARGE);
                break;
            }
            if (r == 1) {
                cr_assert_leq(f.header_len + f.payload_len + 8, 4096 + 4);
                rn_frame_request req;
                int dr = rn_frame_request_decode(&req, &f, NULL, NULL, 0);
                cr_assert(dr <= 0);
                rn_frame_request_fini(&req);
            }
            p += used;
            left -= used;
        }
        rn_frame_decoder_fini(&d);
    }
}

/* ---- Header decoding ------------------------------------------------------------ */

static int decode_raw_header(const void *hdr, size_t hlen, const void *payload, size_t plen,
                             const rn_frame_limits *lim, rn_frame_request *req, char *err,
                             size_t errlen)
{
    size_t len;
    uint8_t *w = raw_frame(hdr, hlen, payload, plen, &len);
    int r = decode_req(w, len, lim, req, err, errlen);
    free(w);
    return r;
}

// Random header bytes decode to a clean error (or, rarely, a valid request); nothing leaks.
Test(frame, garbage_header_bytes)
{
    uint8_t hdr[200];
    int failures = 0;
    for (int round = 0; round < 5000; round++) {
        size_t hlen = rng() % sizeof(hdr);
        for (size_t i = 0; i < hlen; i++)
            hdr[i] = (uint8_t)rng();
        rn_frame_request req;
        char err[256];
        int r = decode_raw_header(hdr, hlen, NULL, 0, NULL, &req, err, sizeof(err));
        if (r < 0) {
            failures++;
            cr_assert(r == -RN_E_INVALID_REQUEST || r == -RN_E_UNKNOWN_API ||
                          r == -RN_E_UNSUPPORTED_VERSION,
                      "unexpected %s", rn_errname(r));
            cr_assert_null(req.hdr);
            cr_assert_neq(err[0], '\0');
            cr_assert_eq(req.alloc.used, 0, "decode failure left %zu bytes held", req.alloc.used);
        }
        rn_frame_request_fini(&req);
        cr_assert_eq(req.alloc.used, 0);
    }
    cr_assert_gt(failures, 4900);
}

// A valid header cut short at every length fails with INVALID_REQUEST, keeping the
// correlation id once its field was complete.
Test(frame, truncated_header)
{
    Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT;
    pp.topic = "orders", pp.batch_len = 61;
    Runnel__ProducePartition *pps[] = {&pp};
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1, pr.n_partitions = 1, pr.partitions = pps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__PRODUCE, 300); /* 2-byte varint */
    h.produce = &pr;
    size_t hlen = protobuf_c_message_get_packed_size(&h.base);
    uint8_t *full = malloc(hlen);
    protobuf_c_message_pack(&h.base, full);
    /* 08 07 | 18 ac 02 | ...: the correlation id is complete after 5 bytes. */
    cr_assert_eq(full[2], 0x18);
    uint8_t payload[61] = {0};
    for (size_t cut = 0; cut < hlen; cut++) {
        rn_frame_request req;
        char err[256];
        int r =
            decode_raw_header(full, cut, payload, sizeof(payload), NULL, &req, err, sizeof(err));
        cr_assert_eq(r, -RN_E_INVALID_REQUEST, "cut %zu: %s", cut, rn_errname(r));
        cr_assert_null(req.hdr);
        /* Before its field is complete the id is unknown, or 0 when the cut
         * fell on a field boundary (proto3 reads an absent field as 0). */
        if (cut >= 5)
            cr_assert(req.have_correlation_id && req.correlation_id == 300, "cut %zu", cut);
        else
            cr_assert(!req.have_correlation_id || req.correlation_id == 0, "cut %zu", cut);
        rn_frame_request_fini(&req);
    }
    rn_frame_request req;
    cr_assert_eq(decode_raw_header(full, hlen, payload, sizeof(payload), NULL, &req, NULL, 0), 0);
    rn_frame_request_fini(&req);
    free(full);
}

// The body must be the api's own: a Produce header with a Metadata body is invalid.
Test(frame, body_must_match_api)
{
    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 5);
    h.api = RUNNEL__API__PRODUCE;
    h.metadata = &md;
    size_t len;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    rn_frame_request req;
    char err[256];
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "PRODUCE") != NULL, "%s", err);
    cr_assert(req.have_correlation_id);
    cr_assert_eq(req.correlation_id, 5);
    cr_assert_eq(req.api, RUNNEL__API__PRODUCE);
    free(w);

    /* No body at all. */
    h = req_header(RUNNEL__API__FETCH, 6);
    h.body_case = RUNNEL__REQUEST_HEADER__BODY__NOT_SET;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "no body") != NULL, "%s", err);
    free(w);
}

// Unknown apis (never defined, or defined but without a body yet) are UNKNOWN_API,
// a missing api is INVALID_REQUEST, a too-new version UNSUPPORTED_VERSION.
Test(frame, unknown_api_and_version)
{
    /* api = 99, correlation_id = 8 */
    static const uint8_t unknown[] = {0x08, 0x63, 0x18, 0x08};
    rn_frame_request req;
    char err[256];
    cr_assert_eq(decode_raw_header(unknown, sizeof(unknown), NULL, 0, NULL, &req, err, sizeof(err)),
                 -RN_E_UNKNOWN_API);
    cr_assert_eq(req.correlation_id, 8);
    cr_assert_eq(req.api, 99);
    cr_assert(!rn_frame_error_closes(-RN_E_UNKNOWN_API));

    /* A known api without its body is malformed, not unknown. */
    static const uint8_t init_producer[] = {0x08, 0x0a, 0x18, 0x09};
    cr_assert_eq(decode_raw_header(init_producer, sizeof(init_producer), NULL, 0, NULL, &req, err,
                                   sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "INIT_PRODUCER") != NULL, "%s", err);

    static const uint8_t no_api[] = {0x18, 0x09};
    cr_assert_eq(decode_raw_header(no_api, sizeof(no_api), NULL, 0, NULL, &req, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);

    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 10);
    h.metadata = &md;
    h.api_version = 7;
    size_t len;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_UNSUPPORTED_VERSION);
    cr_assert_eq(req.correlation_id, 10);
    free(w);

    /* ApiVersions is answered at any version. */
    Runnel__ApiVersionsRequest av = RUNNEL__API_VERSIONS_REQUEST__INIT;
    h = req_header(RUNNEL__API__API_VERSIONS, 11);
    h.api_versions = &av;
    h.api_version = 99;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.api_version, 99);
    rn_frame_request_fini(&req);
    free(w);
}

/* A produce request with the given batch lengths and payload length. */
static int decode_produce(const uint32_t *batch_lens, size_t n, size_t payload_len, int32_t acks,
                          const rn_frame_limits *lim, char *err, size_t errlen)
{
    Runnel__ProducePartition pp[4], *pps[4];
    cr_assert_leq(n, 4);
    for (size_t i = 0; i < n; i++) {
        pp[i] = (Runnel__ProducePartition)RUNNEL__PRODUCE_PARTITION__INIT;
        pp[i].topic = "t", pp[i].partition = (int32_t)i, pp[i].batch_len = batch_lens[i];
        pps[i] = &pp[i];
    }
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = acks, pr.n_partitions = n, pr.partitions = pps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__PRODUCE, 20);
    h.produce = &pr;
    uint8_t *payload = calloc(1, payload_len + 1);
    size_t len;
    uint8_t *w = wire_frame(&h.base, payload, payload_len, &len);
    rn_frame_request req;
    int r = decode_req(w, len, lim, &req, err, errlen);
    rn_frame_request_fini(&req);
    free(w);
    free(payload);
    return r;
}

// The batch_len values must add up to the payload length exactly.
Test(frame, produce_payload_length_mismatch)
{
    uint32_t lens[] = {61, 200};
    char err[256];
    cr_assert_eq(decode_produce(lens, 2, 261, 1, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(decode_produce(lens, 2, 262, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "262") != NULL, "%s", err);
    cr_assert_eq(decode_produce(lens, 2, 260, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert_eq(decode_produce(lens, 0, 1, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    /* Sums are 64-bit: lengths that wrap a u32 do not sneak through. */
    rn_frame_limits big = {.max_message = UINT32_MAX};
    uint32_t wrap[] = {0x80000000u, 0x80000000u, 61};
    cr_assert_eq(decode_produce(wrap, 3, 61, 1, &big, err, sizeof(err)), -RN_E_INVALID_REQUEST);
}

// Batches below the 61-byte header or above message.max.bytes are refused; max is inclusive.
Test(frame, produce_batch_bounds)
{
    char err[256];
    uint32_t small[] = {60};
    cr_assert_eq(decode_produce(small, 1, 60, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    uint32_t max[] = {RN_FRAME_DEFAULT_MAX_MESSAGE};
    cr_assert_eq(decode_produce(max, 1, max[0], -1, NULL, err, sizeof(err)), 0, "%s", err);
    uint32_t over[] = {RN_FRAME_DEFAULT_MAX_MESSAGE + 1};
    cr_assert_eq(decode_produce(over, 1, over[0], -1, NULL, err, sizeof(err)),
                 -RN_E_MESSAGE_TOO_LARGE);
    cr_assert(strstr(err, "message.max.bytes") != NULL, "%s", err);
    cr_assert(!rn_frame_error_closes(-RN_E_MESSAGE_TOO_LARGE));
    rn_frame_limits lim = {.max_message = 100};
    uint32_t mixed[] = {100, 101};
    cr_assert_eq(decode_produce(mixed, 2, 201, 0, &lim, err, sizeof(err)), -RN_E_MESSAGE_TOO_LARGE);
}

// acks must be 0, 1 or -1; replica_id >= -1; isolation and ListOffsets timestamps known.
Test(frame, field_ranges)
{
    uint32_t lens[] = {61};
    char err[256];
    cr_assert_eq(decode_produce(lens, 1, 61, 0, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(decode_produce(lens, 1, 61, 2, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert_eq(decode_produce(lens, 1, 61, -2, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);

    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -2;
    Runnel__RequestHeader h = req_header(RUNNEL__API__FETCH, 21);
    h.fetch = &fr;
    size_t len;
    rn_frame_request req;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    free(w);
    fr.replica_id = 3, fr.isolation = 7;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    free(w);
    fr.isolation = RUNNEL__ISOLATION_LEVEL__READ_COMMITTED;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), 0, "%s", err);
    rn_frame_request_fini(&req);
    free(w);

    Runnel__ListOffsetsPartition lp = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
    lp.topic = "t", lp.timestamp = -3;
    Runnel__ListOffsetsPartition *lps[] = {&lp};
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    lr.n_partitions = 1, lr.partitions = lps;
    h = req_header(RUNNEL__API__LIST_OFFSETS, 22);
    h.list_offsets = &lr;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "-3") != NULL, "%s", err);
    free(w);
}

// Only Produce requests carry a payload.
Test(frame, payload_on_other_api_is_invalid)
{
    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 23);
    h.metadata = &md;
    size_t len;
    uint8_t *w = wire_frame(&h.base, "x", 1, &len);
    rn_frame_request req;
    char err[256];
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(rn_frame_error_closes(-RN_E_INVALID_REQUEST));
    free(w);
}

// A list longer than max_entries (10000 by default) is refused, 10000 passes.
Test(frame, too_many_entries)
{
    size_t n = RN_FRAME_DEFAULT_MAX_ENTRIES + 1;
    Runnel__FetchPartition *parts = calloc(n, sizeof(*parts));
    Runnel__FetchPartition **pp = calloc(n, sizeof(*pp));
    for (size_t i = 0; i < n; i++) {
        parts[i] = (Runnel__FetchPartition)RUNNEL__FETCH_PARTITION__INIT;
        parts[i].topic = "t", parts[i].partition = (int32_t)i;
        pp[i] = &parts[i];
    }
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -1, fr.n_partitions = n, fr.partitions = pp;
    Runnel__RequestHeader h = req_header(RUNNEL__API__FETCH, 24);
    h.fetch = &fr;
    size_t len;
    char err[256];
    rn_frame_request req;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "FetchRequest.partitions") != NULL, "%s", err);
    cr_assert_eq(req.alloc.used, 0);
    free(w);

    fr.n_partitions = n - 1;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.hdr->fetch->n_partitions, n - 1);
    rn_frame_request_fini(&req);
    cr_assert_eq(req.alloc.used, 0);
    free(w);

    /* Nested lists count too: 10001 replicas inside one partition of Metadata. */
    int32_t *replicas = calloc(n, sizeof(int32_t));
    Runnel__PartitionMetadata pm = RUNNEL__PARTITION_METADATA__INIT;
    pm.n_replicas = n, pm.replicas = replicas;
    Runnel__PartitionMetadata *pms[] = {&pm};
    Runnel__TopicMetadata tm = RUNNEL__TOPIC_METADATA__INIT;
    tm.name = "t", tm.n_partitions = 1, tm.partitions = pms;
    Runnel__TopicMetadata *tms[] = {&tm};
    Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
    mr.n_topics = 1, mr.topics = tms;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__METADATA, 24);
    rh.metadata = &mr;
    w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame f = one_frame(&d, w, len);
    rn_frame_response resp;
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__METADATA, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "PartitionMetadata.replicas") != NULL, "%s", err);
    rn_frame_limits client = {.max_entries = 100000};
    cr_assert_eq(
        rn_frame_response_decode(&resp, &f, RUNNEL__API__METADATA, &client, err, sizeof(err)), 0,
        "%s", err);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);
    free(replicas);
    free(parts);
    free(pp);
}

/* A produce header claiming `n` empty partitions, built by hand: 2 wire bytes
 * per entry but about 60 bytes each once unpacked. */
static uint8_t *hostile_produce_header(size_t n, size_t *hlen)
{
    size_t body = 2 * n;
    uint8_t *h = malloc(16 + body);
    size_t o = 0;
    h[o++] = 0x08, h[o++] = RUNNEL__API__PRODUCE;
    h[o++] = 0x18, h[o++] = 0x07; /* correlation_id 7 */
    h[o++] = 0x82, h[o++] = 0x01; /* field 16 (produce), length-delimited */
    for (size_t v = body;; v >>= 7) {
        h[o++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    for (size_t i = 0; i < n; i++)
        h[o++] = 0x1a, h[o++] = 0x00; /* partitions: {} */
    *hlen = o;
    return h;
}

// A 1 MiB header claiming 500k partitions hits the memory budget and fails cleanly.
Test(frame, allocation_budget_refuses_huge_claims)
{
    size_t hlen;
    uint8_t *h = hostile_produce_header(500000, &hlen);
    cr_assert_leq(hlen, RN_FRAME_DEFAULT_MAX_HEADER);
    rn_frame_request req;
    char err[256];
    int r = decode_raw_header(h, hlen, NULL, 0, NULL, &req, err, sizeof(err));
    cr_assert_eq(r, -RN_E_REQUEST_TOO_LARGE, "%s (%s)", rn_errname(r), err);
    cr_assert(strstr(err, "memory") != NULL, "%s", err);
    cr_assert_null(req.hdr);
    cr_assert_eq(req.alloc.used, 0);
    cr_assert_leq(req.alloc.peak, RN_FRAME_DEFAULT_MAX_DECODE_MEM);
    cr_assert(req.have_correlation_id);
    cr_assert_eq(req.correlation_id, 7);
    cr_assert(rn_frame_error_closes(r));
    rn_frame_request_fini(&req);
    free(h);
}

// Raising the budget step by step: every run below the need fails cleanly with
// nothing held, and the first that succeeds decodes the whole request (libuv loop-oom).
Test(frame, allocation_budget_ramp)
{
    size_t hlen;
    uint8_t *h = hostile_produce_header(50, &hlen);
    /* 50 empty partitions have batch_len 0, so pass a budget test on the
     * unpack only: INVALID_REQUEST (batch too small) means the unpack fit. */
    size_t budget;
    for (budget = 16;; budget += 16) {
        rn_frame_limits lim = {.max_decode_mem = budget};
        rn_frame_request req;
        char err[256];
        int r = decode_raw_header(h, hlen, NULL, 0, &lim, &req, err, sizeof(err));
        cr_assert_null(req.hdr);
        cr_assert_eq(req.alloc.used, 0, "budget %zu: %zu bytes held", budget, req.alloc.used);
        cr_assert_leq(req.alloc.peak, budget);
        if (r == -RN_E_INVALID_REQUEST) {
            cr_assert(strstr(err, "batch_len 0") != NULL, "%s", err);
            break;
        }
        cr_assert_eq(r, -RN_E_REQUEST_TOO_LARGE, "budget %zu: %s", budget, rn_errname(r));
        cr_assert_lt(budget, 1 << 20, "never fit");
    }
    /* 50 partitions at ~60 bytes each: the need is real but small. */
    cr_assert_gt(budget, 50 * 40);
    free(h);
}

/* ---- Responses -------------------------------------------------------------------- */

// A response body may be missing only with an error code; a wrong body or a
// Fetch payload that does not match bytes_len is INVALID_REQUEST.
Test(frame, response_checks)
{
    rn_frame_decoder d;
    rn_frame_response resp;
    char err[256];
    size_t len;

    Runnel__ResponseHeader rh = RUNNEL__RESPONSE_HEADER__INIT;
    rh.correlation_id = 30;
    rh.error_code = RN_E_INVALID_REQUEST;
    rh.error_message = "bad";
    uint8_t *w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    rn_frame f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(resp.hdr->error_code, RN_E_INVALID_REQUEST);
    cr_assert_eq(resp.hdr->body_case, RUNNEL__RESPONSE_HEADER__BODY__NOT_SET);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);

    rh.error_code = 0;
    w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert_null(resp.hdr);
    rn_frame_decoder_fini(&d);
    free(w);

    Runnel__ProduceResponse pr = RUNNEL__PRODUCE_RESPONSE__INIT;
    rh = resp_header(RUNNEL__API__PRODUCE, 31);
    rh.produce = &pr;
    w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, 0, NULL, err, sizeof(err)), 0, "%s", err);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);

    Runnel__FetchPartitionResponse fp = RUNNEL__FETCH_PARTITION_RESPONSE__INIT;
    fp.topic = "t", fp.bytes_len = 10;
    Runnel__FetchPartitionResponse *fps[] = {&fp};
    Runnel__FetchResponse fr = RUNNEL__FETCH_RESPONSE__INIT;
    fr.n_partitions = 1, fr.partitions = fps;
    rh = resp_header(RUNNEL__API__FETCH, 32);
    rh.fetch = &fr;
    w = wire_frame(&rh.base, "123456789", 9, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    rn_frame_decoder_fini(&d);
    free(w);

    /* Garbage is INVALID_REQUEST on this side too. */
    static const uint8_t junk[] = {0x0a, 0x05, 0x01};
    w = raw_frame(junk, sizeof(junk), NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, 0, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);
}

/* ---- Encoding and tables ----------------------------------------------------------- */

// A short buffer is -ENOBUFS with the size needed; the alloc variant sizes exactly;
// frame_length counts a payload that is not in the buffer.
Test(frame, encode_buffer_sizes)
{
    Runnel__ApiVersionsRequest av = RUNNEL__API_VERSIONS_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__API_VERSIONS, 40);
    h.api_versions = &av;
    size_t need = rn_frame_encoded_len(&h.base), n;
    uint8_t small[4];
    cr_assert_eq(rn_frame_encode(&h.base, 0, small, sizeof(small), &n), -ENOBUFS);
    cr_assert_eq(n, need);

    uint8_t *out;
    cr_assert_eq(rn_frame_encode_alloc(&h.base, 1000, &out, &n), 0);
    cr_assert_eq(n, need);
    uint32_t fl, hl;
    memcpy(&fl, out, 4);
    memcpy(&hl, out + 4, 4);
    cr_assert_eq(be32toh(hl), need - 8);
    cr_assert_eq(be32toh(fl), 4 + (need - 8) + 1000);
    free(out);

    cr_assert_eq(rn_frame_encode_alloc(&h.base, (size_t)UINT32_MAX, &out, &n), -EMSGSIZE);
    cr_assert_null(out);
}

// The API table covers Api 1..9 in order, names come from the enum, errors classify.
Test(frame, api_table_and_names)
{
    size_t n;
    const rn_frame_api *apis = rn_frame_apis(&n);
    /* Every api the table has is in Api order (numbers are given out to
     * branches of work, so one may be missing for a while), the first ten
     * without a gap. */
    cr_assert_geq(n, 10);
    cr_assert_leq(n, RUNNEL__API__CLUSTER_STATUS);
    for (size_t i = 0; i < n; i++) {
        if (i < 10)
            cr_assert_eq(apis[i].api, (int)i + 1);
        else
            cr_assert_gt(apis[i].api, apis[i - 1].api);
        cr_assert_str_eq(apis[i].name, rn_frame_api_name(apis[i].api));
        cr_assert_leq(apis[i].min_version, apis[i].max_version);
    }
    cr_assert_str_eq(rn_frame_api_name(RUNNEL__API__DESCRIBE_GROUP), "DESCRIBE_GROUP");
    cr_assert_str_eq(rn_frame_api_name(1234), "UNKNOWN");
    cr_assert(!rn_frame_error_closes(0));
    cr_assert(rn_frame_error_closes(-ENOMEM));
    cr_assert(rn_frame_error_closes(-RN_E_REQUEST_TOO_LARGE));
    cr_assert(!rn_frame_error_closes(-RN_E_UNSUPPORTED_VERSION));
}

/* Decode a request header with a group body; 0 or the error, message in err. */
static int decode_group(Runnel__RequestHeader *h, char *err, size_t errlen)
{
    size_t len;
    uint8_t *w = wire_frame(&h->base, NULL, 0, &len);
    rn_frame_request req;
    int r = decode_req(w, len, NULL, &req, err, errlen);
    if (r == 0)
        rn_frame_request_fini(&req);
    free(w);
    return r;
}

// Group request bodies: group ids, epochs, names, partitions, offsets and metadata are bounded.
Test(frame, group_bodies_checked)
{
    char err[256];
    Runnel__GroupHeartbeatRequest hb = RUNNEL__GROUP_HEARTBEAT_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__GROUP_HEARTBEAT, 1);
    h.group_heartbeat = &hb;
    hb.group_id = "g";
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);
    hb.group_id = "";
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "group_id") != NULL, "%s", err);
    char long_id[251];
    memset(long_id, 'g', 250);
    long_id[250] = 0;
    hb.group_id = long_id;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    long_id[249] = 0;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);
    hb.member_epoch = -2;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    hb.member_epoch = 3; /* an epoch needs a member id */
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    hb.member_id = "m";
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);
    hb.session_timeout_ms = 1800001;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    hb.session_timeout_ms = 0;
    int32_t parts[] = {0, -1};
    Runnel__TopicPartitions tp = RUNNEL__TOPIC_PARTITIONS__INIT, *tpp = &tp;
    tp.topic = "t";
    tp.partitions = parts;
    tp.n_partitions = 2;
    hb.owned = &tpp;
    hb.n_owned = 1;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    tp.n_partitions = 1;
    char *subs[] = {""};
    hb.subscribed_topics = subs;
    hb.n_subscribed_topics = 1;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    hb.n_subscribed_topics = 0;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);

    Runnel__OffsetCommit oc = RUNNEL__OFFSET_COMMIT__INIT, *ocp = &oc;
    oc.topic = "t";
    oc.offset = 5;
    Runnel__CommitOffsetsRequest co = RUNNEL__COMMIT_OFFSETS_REQUEST__INIT;
    co.group_id = "g";
    co.offsets = &ocp;
    co.n_offsets = 1;
    h = req_header(RUNNEL__API__COMMIT_OFFSETS, 2);
    h.commit_offsets = &co;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);
    oc.offset = -1;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    oc.offset = 5;
    char *md = malloc(4098);
    memset(md, 'm', 4097);
    md[4097] = 0;
    oc.metadata = md;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    md[4096] = 0;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);
    free(md);

    Runnel__FetchOffsetsRequest fo = RUNNEL__FETCH_OFFSETS_REQUEST__INIT;
    h = req_header(RUNNEL__API__FETCH_OFFSETS, 3);
    h.fetch_offsets = &fo;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    fo.group_id = "g";
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);

    Runnel__DescribeGroupRequest dg = RUNNEL__DESCRIBE_GROUP_REQUEST__INIT;
    h = req_header(RUNNEL__API__DESCRIBE_GROUP, 4);
    h.describe_group = &dg;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    dg.group_id = "g";
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);

    Runnel__ListGroupsRequest lg = RUNNEL__LIST_GROUPS_REQUEST__INIT;
    h = req_header(RUNNEL__API__LIST_GROUPS, 5);
    h.list_groups = &lg;
    cr_assert_eq(decode_group(&h, err, sizeof(err)), 0, "%s", err);
}
