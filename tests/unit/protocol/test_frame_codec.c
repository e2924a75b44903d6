/*
 * test_frame_codec.c — encoding and decoding the native protocol's frames
 * (protocol/frame.[ch]): one golden frame, round trips of every API's
 * request and response, encode buffer sizes, the API table and its names,
 * and the group APIs' bodies checked. Helpers: frame_helpers.h.
 */
#include "frame_helpers.h"

/* ---- Golden bytes ------------------------------------------------------------- */

// One small ApiVersions request encodes to exactly these bytes, and decodes back.
Test(frame_codec, golden_api_versions_request)
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
Test(frame_codec, round_trip_api_versions)
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
Test(frame_codec, round_trip_metadata)
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
Test(frame_codec, round_trip_create_topics)
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
Test(frame_codec, round_trip_delete_topics)
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
Test(frame_codec, round_trip_describe_topic)
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
Test(frame_codec, round_trip_alter_configs)
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
Test(frame_codec, round_trip_produce)
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
Test(frame_codec, round_trip_fetch)
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
Test(frame_codec, round_trip_list_offsets)
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

/* ---- Encoding and tables ----------------------------------------------------------- */

// A short buffer is -ENOBUFS with the size needed; the alloc variant sizes exactly;
// frame_length counts a payload that is not in the buffer.
Test(frame_codec, encode_buffer_sizes)
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
Test(frame_codec, api_table_and_names)
{
    size_t n;
    const rn_frame_api *apis = rn_frame_apis(&n);
    /* Every api the table has is in Api order with no gap, up to the last one decoded. */
    cr_assert_geq(n, 10);
    cr_assert_leq(n, RUNNEL__API__FIND_COORDINATOR);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(apis[i].api, (int)i + 1);
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

/* The reason decode_group gave last (expect_group). */
static char group_err[256];

/* decode_group of h must give want (0, or -RN_E_INVALID_REQUEST); line is
 * the caller's, for the message. */
static void expect_group(Runnel__RequestHeader *h, int want, int line)
{
    group_err[0] = '\0';
    int rc = decode_group(h, group_err, sizeof(group_err));
    cr_assert_eq(rc, want, "line %d: got %s, want %s (%s)", line, rn_errname(rc), rn_errname(want),
                 group_err);
}
#define GROUP_OK(h)      expect_group(h, 0, __LINE__)
#define GROUP_REFUSED(h) expect_group(h, -RN_E_INVALID_REQUEST, __LINE__)

// Group request bodies: group ids, epochs, names, partitions, offsets and metadata are bounded.
Test(frame_codec, group_bodies_checked)
{
    Runnel__GroupHeartbeatRequest hb = RUNNEL__GROUP_HEARTBEAT_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__GROUP_HEARTBEAT, 1);
    h.group_heartbeat = &hb;
    hb.group_id = "g";
    GROUP_OK(&h);
    hb.group_id = "";
    GROUP_REFUSED(&h);
    cr_assert(strstr(group_err, "group_id") != NULL, "%s", group_err);
    char long_id[251];
    memset(long_id, 'g', 250);
    long_id[250] = 0;
    hb.group_id = long_id;
    GROUP_REFUSED(&h);
    long_id[249] = 0;
    GROUP_OK(&h);
    hb.member_epoch = -2;
    GROUP_REFUSED(&h);
    hb.member_epoch = 3; /* an epoch needs a member id */
    GROUP_REFUSED(&h);
    hb.member_id = "m";
    GROUP_OK(&h);
    hb.session_timeout_ms = 1800001;
    GROUP_REFUSED(&h);
    hb.session_timeout_ms = 0;
    int32_t parts[] = {0, -1};
    Runnel__TopicPartitions tp = RUNNEL__TOPIC_PARTITIONS__INIT, *tpp = &tp;
    tp.topic = "t";
    tp.partitions = parts;
    tp.n_partitions = 2;
    hb.owned = &tpp;
    hb.n_owned = 1;
    GROUP_REFUSED(&h);
    tp.n_partitions = 1;
    char *subs[] = {""};
    hb.subscribed_topics = subs;
    hb.n_subscribed_topics = 1;
    GROUP_REFUSED(&h);
    hb.n_subscribed_topics = 0;
    GROUP_OK(&h);

    Runnel__OffsetCommit oc = RUNNEL__OFFSET_COMMIT__INIT, *ocp = &oc;
    oc.topic = "t";
    oc.offset = 5;
    Runnel__CommitOffsetsRequest co = RUNNEL__COMMIT_OFFSETS_REQUEST__INIT;
    co.group_id = "g";
    co.offsets = &ocp;
    co.n_offsets = 1;
    h = req_header(RUNNEL__API__COMMIT_OFFSETS, 2);
    h.commit_offsets = &co;
    GROUP_OK(&h);
    oc.offset = -1;
    GROUP_REFUSED(&h);
    oc.offset = 5;
    char *md = malloc(4098);
    memset(md, 'm', 4097);
    md[4097] = 0;
    oc.metadata = md;
    GROUP_REFUSED(&h);
    md[4096] = 0;
    GROUP_OK(&h);
    free(md);

    Runnel__FetchOffsetsRequest fo = RUNNEL__FETCH_OFFSETS_REQUEST__INIT;
    h = req_header(RUNNEL__API__FETCH_OFFSETS, 3);
    h.fetch_offsets = &fo;
    GROUP_REFUSED(&h);
    fo.group_id = "g";
    GROUP_OK(&h);

    Runnel__DescribeGroupRequest dg = RUNNEL__DESCRIBE_GROUP_REQUEST__INIT;
    h = req_header(RUNNEL__API__DESCRIBE_GROUP, 4);
    h.describe_group = &dg;
    GROUP_REFUSED(&h);
    dg.group_id = "g";
    GROUP_OK(&h);

    Runnel__ListGroupsRequest lg = RUNNEL__LIST_GROUPS_REQUEST__INIT;
    h = req_header(RUNNEL__API__LIST_GROUPS, 5);
    h.list_groups = &lg;
    GROUP_OK(&h);
}
