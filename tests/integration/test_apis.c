/*
 * test_apis.c — every API of the native protocol against a real runneld.
 *
 * Each test starts its own broker (fresh data directory, free port), drives
 * it over TCP with tests/integration/client.c, and stops it with SIGTERM,
 * asserting exit 0 (so a leak or sanitizer report in the broker fails the
 * test that caused it). What the tests pin down is docs/protocol.md §3–§4:
 * the outcome codes of each API, that produced bytes come back byte for byte
 * with stamped offsets, the limits and long-poll of Fetch, and pipelining.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static it_broker B;

static void setup(void)
{
    itf_start(&B, NULL);
}

static void teardown(void)
{
    itf_teardown(&B);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);

/* The error code of topic i in a CreateTopics/DeleteTopics answer. */
static uint32_t topic_err(const it_resp *r, size_t i)
{
    cr_assert_eq(r->hdr->error_code, 0, "request failed: %u %s", r->hdr->error_code,
                 r->hdr->error_message);
    Runnel__TopicResult **t = r->hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_CREATE_TOPICS
                                  ? r->hdr->create_topics->topics
                                  : r->hdr->delete_topics->topics;
    return t[i]->error_code;
}

/* Check a stored batch against the one produced: same bytes except the two
 * fields the leader stamps (base_offset, partition_leader_epoch), and
 * base_offset is the offset the producer was told. */
static void assert_batch_stored(const uint8_t *got, size_t got_len, const uint8_t *sent,
                                size_t sent_len, int64_t base)
{
    cr_assert_eq(got_len, sent_len, "batch length %zu, produced %zu", got_len, sent_len);
    cr_assert_eq(rn_batch_verify(got, got_len, 0, 0), 0, "fetched batch does not verify");
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(got, got_len, 0, &h), 0);
    cr_assert_eq(h.base_offset, base, "stamped base_offset %" PRId64 ", acked %" PRId64,
                 h.base_offset, base);
    cr_assert_eq(memcmp(got + RN_BATCH_OFF_LENGTH, sent + RN_BATCH_OFF_LENGTH, 4), 0);
    cr_assert_eq(
        memcmp(got + RN_BATCH_OFF_MAGIC, sent + RN_BATCH_OFF_MAGIC, sent_len - RN_BATCH_OFF_MAGIC),
        0, "stored batch differs from the produced one");
}

// ApiVersions answers with every API this build decodes, each with a sane range.
Test(api, api_versions_lists_every_api)
{
    it_conn *c = itf_connect(&B);
    it_resp r;
    cr_assert_eq(it_api_versions(c, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    Runnel__ApiVersionsResponse *v = r.hdr->api_versions;
    cr_assert_not_null(v);
    size_t n;
    const rn_frame_api *apis = rn_frame_apis(&n);
    cr_assert_eq(v->n_api_versions, n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < v->n_api_versions; k++) {
            if ((int)v->api_versions[k]->api != apis[i].api)
                continue;
            found = true;
            cr_assert_leq(v->api_versions[k]->min_version, v->api_versions[k]->max_version);
        }
        cr_assert(found, "ApiVersions lacks %s", apis[i].name);
    }
    it_resp_free(&r);
    itf_pass(&B, c);
}

// CreateTopics answers each topic on its own: created, exists, bad name, bad
// partition count, bad config; validate_only checks without creating.
Test(api, create_topics_outcomes)
{
    it_conn *c = itf_connect(&B);
    it_topic_spec ts[] = {
        {.name = "orders", .partitions = 3},
        {.name = "bad/name", .partitions = 1},
        {.name = "__internal", .partitions = 1},
        {.name = "toomany", .partitions = 200000},
        {.name = "negative", .partitions = -5},
        {.name = "badconf", .partitions = 1, .configs = "retention.ms=soon"},
        {.name = "unknownconf", .partitions = 1, .configs = "no.such.key=1"},
        {.name = "rf3", .partitions = 1, .replication_factor = 3},
    };
    const uint32_t want[] = {0,
                             RN_E_INVALID_TOPIC,
                             RN_E_INVALID_TOPIC,
                             RN_E_INVALID_PARTITIONS,
                             RN_E_INVALID_PARTITIONS,
                             RN_E_INVALID_CONFIG,
                             RN_E_INVALID_CONFIG,
                             RN_E_NOT_ENOUGH_REPLICAS};
    size_t n = sizeof(ts) / sizeof(ts[0]);
    it_resp r;
    cr_assert_eq(it_create_topics(c, ts, n, false, &r), 0);
    cr_assert_eq(r.hdr->create_topics->n_topics, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(r.hdr->create_topics->topics[i]->name, ts[i].name);
        cr_assert_eq(topic_err(&r, i), want[i], "topic %s: got %u want %u (%s)", ts[i].name,
                     topic_err(&r, i), want[i], r.hdr->create_topics->topics[i]->error_message);
    }
    it_resp_free(&r);

    /* Again: the topic exists now. */
    cr_assert_eq(it_create_topic(c, "orders", 3, NULL), RN_E_TOPIC_EXISTS);

    /* validate_only: a good topic passes but is not created; a bad one fails. */
    it_topic_spec v[] = {{.name = "later", .partitions = 2},
                         {.name = "orders", .partitions = 1},
                         {.name = "bad name", .partitions = 1},
                         {.name = "vconf", .partitions = 1, .configs = "segment.bytes=1"}};
    cr_assert_eq(it_create_topics(c, v, 4, true, &r), 0);
    cr_assert_eq(topic_err(&r, 0), 0);
    cr_assert_eq(topic_err(&r, 1), RN_E_TOPIC_EXISTS);
    cr_assert_eq(topic_err(&r, 2), RN_E_INVALID_TOPIC);
    cr_assert_eq(topic_err(&r, 3), RN_E_INVALID_CONFIG);
    it_resp_free(&r);
    const char *later = "later";
    cr_assert_eq(it_metadata(c, &later, 1, &r), 0);
    cr_assert_eq(r.hdr->metadata->topics[0]->error_code, RN_E_UNKNOWN_TOPIC,
                 "validate_only created the topic");
    it_resp_free(&r);

    /* The created topic has its partition directories. */
    for (int p = 0; p < 3; p++) {
        char dir[256];
        struct stat st;
        snprintf(dir, sizeof(dir), "%s/orders-%d", B.data_dir, p);
        cr_assert_eq(stat(dir, &st), 0, "%s missing", dir);
    }
    itf_pass(&B, c);
}

// Metadata describes every topic, only the named ones, and flags unknown names.
Test(api, metadata_all_named_unknown)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "alpha", 3, NULL);
    itf_create(c, "beta", 1, NULL);
    it_resp r;
    cr_assert_eq(it_metadata(c, NULL, 0, &r), 0);
    Runnel__MetadataResponse *m = r.hdr->metadata;
    cr_assert_eq(m->n_brokers, 1);
    cr_assert_eq(m->brokers[0]->port, B.port);
    /* The broker's own topics (__offsets) are listed too, flagged internal. */
    Runnel__TopicMetadata *user[4];
    size_t n_user = 0;
    for (size_t i = 0; i < m->n_topics; i++) {
        Runnel__TopicMetadata *t = m->topics[i];
        cr_assert_eq(t->is_internal, strncmp(t->name, "__", 2) == 0, "%s", t->name);
        if (!t->is_internal && n_user < 4)
            user[n_user++] = t;
    }
    cr_assert_eq(n_user, 2);
    cr_assert_str_eq(user[0]->name, "alpha");
    cr_assert_eq(user[0]->n_partitions, 3);
    for (size_t i = 0; i < 3; i++) {
        Runnel__PartitionMetadata *pm = user[0]->partitions[i];
        cr_assert_eq(pm->partition, (int32_t)i);
        cr_assert_eq(pm->leader, m->brokers[0]->node_id);
        cr_assert_eq(pm->n_replicas, 1);
        cr_assert_eq(pm->n_isr, 1);
    }
    cr_assert_str_eq(user[1]->name, "beta");
    it_resp_free(&r);

    const char *names[] = {"beta", "gamma"};
    cr_assert_eq(it_metadata(c, names, 2, &r), 0);
    m = r.hdr->metadata;
    cr_assert_eq(m->n_topics, 2);
    cr_assert_str_eq(m->topics[0]->name, "beta");
    cr_assert_eq(m->topics[0]->error_code, 0);
    cr_assert_eq(m->topics[0]->n_partitions, 1);
    cr_assert_str_eq(m->topics[1]->name, "gamma");
    cr_assert_eq(m->topics[1]->error_code, RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(m->topics[1]->n_partitions, 0);
    it_resp_free(&r);
    itf_pass(&B, c);
}

// DescribeTopic reports effective configs (overrides and defaults) and each
// partition's offsets and size; an unknown topic is UNKNOWN_TOPIC.
Test(api, describe_topic_configs_and_offsets)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "desc", 2, "retention.ms=3600000");
    size_t l1, l2;
    uint8_t *b1 = itf_batch("d", 3, 1000, &l1);
    uint8_t *b2 = itf_batch("e", 2, 2000, &l2);
    cr_assert_eq(itf_produce(c, "desc", 1, b1, l1), 0);
    cr_assert_eq(itf_produce(c, "desc", 1, b2, l2), 3);

    it_resp r;
    cr_assert_eq(it_describe(c, "desc", &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    Runnel__DescribeTopicResponse *d = r.hdr->describe_topic;
    cr_assert_str_eq(d->name, "desc");
    cr_assert_str_eq(itf_config(d, "retention.ms"), "3600000");
    cr_assert_str_eq(itf_config(d, "segment.bytes"), "1073741824");
    cr_assert_str_eq(itf_config(d, "flush"), "always");
    cr_assert_eq(d->n_partitions, 2);
    Runnel__PartitionDescription *p0 = d->partitions[0], *p1 = d->partitions[1];
    cr_assert_eq(p0->log_start_offset, 0);
    cr_assert_eq(p0->high_watermark, 0);
    cr_assert_eq(p0->log_end_offset, 0);
    cr_assert_eq(p0->size_bytes, 0);
    cr_assert_eq(p1->partition, 1);
    cr_assert_eq(p1->log_start_offset, 0);
    cr_assert_eq(p1->high_watermark, 5);
    cr_assert_eq(p1->log_end_offset, 5);
    cr_assert_eq(p1->size_bytes, (int64_t)(l1 + l2));
    it_resp_free(&r);

    cr_assert_eq(it_describe(c, "nope", &r), 0);
    cr_assert_eq(r.hdr->error_code, RN_E_UNKNOWN_TOPIC);
    it_resp_free(&r);
    free(b1);
    free(b2);
    itf_pass(&B, c);
}

// AlterConfigs sets and deletes keys incrementally, rejects unknown keys and
// bad values with INVALID_CONFIG naming the key, and DescribeTopic shows the
// result, also after a restart.
Test(api, alter_configs_and_describe)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "alt", 1, NULL);
    it_resp r;
    cr_assert_eq(
        it_alter(c, "alt", "retention.ms=1000,segment.bytes=1048576,flush=never", NULL, false, &r),
        0);
    cr_assert_eq(r.hdr->error_code, 0, "alter: %s", r.hdr->error_message);
    it_resp_free(&r);
    cr_assert_eq(it_describe(c, "alt", &r), 0);
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "retention.ms"), "1000");
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "segment.bytes"), "1048576");
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "flush"), "never");
    it_resp_free(&r);

    /* Delete one key, set another: the rest stays. */
    cr_assert_eq(it_alter(c, "alt", "flush=interval:250", "retention.ms", false, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0, "alter: %s", r.hdr->error_message);
    it_resp_free(&r);
    cr_assert_eq(it_describe(c, "alt", &r), 0);
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "retention.ms"), "604800000");
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "segment.bytes"), "1048576");
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "flush"), "interval:250");
    it_resp_free(&r);

    /* Unknown key, bad value, unknown topic; validate_only changes nothing. */
    cr_assert_eq(it_alter(c, "alt", "no.such.key=1", NULL, false, &r), 0);
    cr_assert_eq(r.hdr->error_code, RN_E_INVALID_CONFIG);
    cr_assert_not_null(strstr(r.hdr->error_message, "no.such.key"), "message: %s",
                       r.hdr->error_message);
    it_resp_free(&r);
    cr_assert_eq(it_alter(c, "alt", "segment.bytes=12", NULL, false, &r), 0);
    cr_assert_eq(r.hdr->error_code, RN_E_INVALID_CONFIG);
    it_resp_free(&r);
    cr_assert_eq(it_alter(c, "alt", NULL, "no.such.key", false, &r), 0);
    cr_assert_eq(r.hdr->error_code, RN_E_INVALID_CONFIG);
    it_resp_free(&r);
    cr_assert_eq(it_alter(c, "ghost", "retention.ms=5", NULL, false, &r), 0);
    cr_assert_eq(r.hdr->error_code, RN_E_UNKNOWN_TOPIC);
    it_resp_free(&r);
    cr_assert_eq(it_alter(c, "alt", "retention.ms=77", NULL, true, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    it_resp_free(&r);

    /* The log still takes data under its new config. */
    size_t l;
    uint8_t *b = itf_batch("a", 2, 1000, &l);
    cr_assert_eq(itf_produce(c, "alt", 0, b, l), 0);
    free(b);

    /* Configs are metadata: they survive a restart. */
    c = itf_bounce(&B, c);
    cr_assert_eq(it_describe(c, "alt", &r), 0);
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "retention.ms"), "604800000");
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "segment.bytes"), "1048576");
    cr_assert_str_eq(itf_config(r.hdr->describe_topic, "flush"), "interval:250");
    cr_assert_eq(r.hdr->describe_topic->partitions[0]->log_end_offset, 2);
    it_resp_free(&r);
    itf_pass(&B, c);
}

// Produce with acks=1 and acks=-1 answers with offsets; acks=0 sends no answer
// at all (the next frame on the connection answers the next request) but the
// data lands.
Test(api, produce_acks)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "acks", 1, NULL);
    size_t l;
    uint8_t *b = itf_batch("k", 4, 1000, &l);
    int64_t base = -1;
    cr_assert_eq(it_produce_one(c, "acks", 0, b, l, 1, &base), 0);
    cr_assert_eq(base, 0);
    cr_assert_eq(it_produce_one(c, "acks", 0, b, l, -1, &base), 0);
    cr_assert_eq(base, 4);
    cr_assert_eq(it_produce_one(c, "acks", 0, b, l, 0, NULL), 0);
    cr_assert_eq(it_produce_one(c, "acks", 0, b, l, 0, NULL), 0);

    /* The next answer on this connection is the ApiVersions one. */
    it_resp r;
    cr_assert_eq(it_api_versions(c, &r), 0, "an answer to acks=0 arrived first");
    it_resp_free(&r);

    /* Both acks=0 batches are in the log, after the acknowledged ones. */
    int64_t end = -1;
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(it_list_offsets(c, "acks", 0, -1, &end, NULL), 0);
        if (end == 16)
            break;
        usleep(10000);
    }
    cr_assert_eq(end, 16, "latest offset %" PRId64 ", want 16", end);
    it_fetch_part fp = {.topic = "acks", .partition = 0, .offset = 8};
    cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
    const uint8_t *data;
    size_t len;
    it_fetch_data(&r, 0, &data, &len);
    cr_assert_eq(len, 2 * l);
    assert_batch_stored(data, l, b, l, 8);
    assert_batch_stored(data + l, l, b, l, 12);
    it_resp_free(&r);
    free(b);
    itf_pass(&B, c);
}

// One Produce request may carry batches for several partitions; each gets
// its own offset (or error) in request order.
Test(api, produce_multi_partition)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "multi", 3, NULL);
    size_t l0, l1, l2;
    uint8_t *b0 = itf_batch("p0", 2, 1000, &l0);
    uint8_t *b1 = itf_batch("p1", 3, 1000, &l1);
    uint8_t *b2 = itf_batch("p2", 5, 1000, &l2);
    it_produce_part parts[] = {
        {"multi", 0, b0, l0}, {"multi", 1, b1, l1}, {"multi", 2, b2, l2},
        {"multi", 0, b0, l0}, {"multi", 7, b1, l1}, {"multi", 1, b1, l1},
    };
    const int64_t want_base[] = {0, 0, 0, 2, -1, 3};
    it_resp r;
    cr_assert_eq(it_produce(c, parts, 6, 1, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    Runnel__ProduceResponse *pr = r.hdr->produce;
    cr_assert_eq(pr->n_partitions, 6);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_str_eq(pr->partitions[i]->topic, "multi");
        cr_assert_eq(pr->partitions[i]->partition, parts[i].partition);
        if (i == 4) {
            cr_assert_eq(pr->partitions[i]->error_code, RN_E_UNKNOWN_TOPIC);
            continue;
        }
        cr_assert_eq(pr->partitions[i]->error_code, 0, "entry %zu: %s", i,
                     pr->partitions[i]->error_message);
        cr_assert_eq(pr->partitions[i]->base_offset, want_base[i], "entry %zu", i);
    }
    it_resp_free(&r);
    int64_t end;
    cr_assert_eq(it_list_offsets(c, "multi", 0, -1, &end, NULL), 0);
    cr_assert_eq(end, 4);
    cr_assert_eq(it_list_offsets(c, "multi", 1, -1, &end, NULL), 0);
    cr_assert_eq(end, 6);
    cr_assert_eq(it_list_offsets(c, "multi", 2, -1, &end, NULL), 0);
    cr_assert_eq(end, 5);
    free(b0);
    free(b1);
    free(b2);
    itf_pass(&B, c);
}

// A Fetch of many partitions returns each partition's batches, byte for
// byte as produced with the stamped offsets, in request order.
Test(api, fetch_many_partitions)
{
    it_conn *c = itf_connect(&B);
    enum { NP = 8 };
    itf_create(c, "many", NP, NULL);
    uint8_t *b[NP][2];
    size_t l[NP][2];
    for (int p = 0; p < NP; p++) {
        for (int k = 0; k < 2; k++) {
            char tag[32];
            snprintf(tag, sizeof(tag), "p%d-b%d", p, k);
            b[p][k] = itf_batch(tag, 1 + p + k, 1000 + k, &l[p][k]);
            cr_assert_eq(itf_produce(c, "many", p, b[p][k], l[p][k]), k ? 1 + p : 0);
        }
    }
    it_fetch_part fp[NP];
    /* Reverse order, to see the answer follows the request's order. */
    for (int i = 0; i < NP; i++)
        fp[i] = (it_fetch_part){.topic = "many", .partition = NP - 1 - i, .offset = 0};
    it_resp r;
    cr_assert_eq(it_fetch(c, fp, NP, NULL, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    Runnel__FetchResponse *f = r.hdr->fetch;
    cr_assert_eq(f->n_partitions, NP);
    for (int i = 0; i < NP; i++) {
        int p = NP - 1 - i;
        Runnel__FetchPartitionResponse *pr = f->partitions[i];
        cr_assert_eq(pr->partition, p);
        cr_assert_eq(pr->error_code, 0);
        cr_assert_eq(pr->high_watermark, (1 + p) + (2 + p));
        cr_assert_eq(pr->log_end_offset, pr->high_watermark);
        cr_assert_eq(pr->log_start_offset, 0);
        const uint8_t *data;
        size_t len;
        it_fetch_data(&r, (size_t)i, &data, &len);
        cr_assert_eq(len, l[p][0] + l[p][1]);
        assert_batch_stored(data, l[p][0], b[p][0], l[p][0], 0);
        assert_batch_stored(data + l[p][0], l[p][1], b[p][1], l[p][1], 1 + p);
    }
    it_resp_free(&r);

    /* Starting inside a batch returns the whole batch that holds the offset. */
    fp[0] = (it_fetch_part){.topic = "many", .partition = 7, .offset = 9};
    cr_assert_eq(it_fetch(c, fp, 1, NULL, &r), 0);
    const uint8_t *data;
    size_t len;
    it_fetch_data(&r, 0, &data, &len);
    cr_assert_eq(len, l[7][1]);
    assert_batch_stored(data, len, b[7][1], l[7][1], 8);
    it_resp_free(&r);

    for (int p = 0; p < NP; p++) {
        free(b[p][0]);
        free(b[p][1]);
    }
    itf_pass(&B, c);
}

// max_bytes and partition_max_bytes bound the answer to whole batches, but
// the first batch always comes, however large, so a consumer progresses.
Test(api, fetch_max_bytes)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "lim", 2, NULL);
    size_t l;
    uint8_t *b = itf_batch("x", 10, 1000, &l);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(itf_produce(c, "lim", 0, b, l), i * 10);
        cr_assert_eq(itf_produce(c, "lim", 1, b, l), i * 10);
    }
    it_resp r;
    const uint8_t *data;
    size_t len;
    /* partition_max_bytes of 1: exactly one batch. */
    it_fetch_part fp[2] = {{"lim", 0, 0, 1}, {"lim", 1, 0, 1}};
    cr_assert_eq(it_fetch(c, fp, 2, NULL, &r), 0);
    for (size_t i = 0; i < 2; i++) {
        it_fetch_data(&r, i, &data, &len);
        cr_assert_eq(len, l, "partition_max_bytes=1 gave %zu bytes", len);
    }
    it_resp_free(&r);
    /* partition_max_bytes of two and a half batches: two. */
    fp[0].partition_max_bytes = fp[1].partition_max_bytes = (uint32_t)(2 * l + l / 2);
    cr_assert_eq(it_fetch(c, fp, 2, NULL, &r), 0);
    for (size_t i = 0; i < 2; i++) {
        it_fetch_data(&r, i, &data, &len);
        cr_assert_eq(len, 2 * l);
        cr_assert_eq(rn_batch_verify(data + l, l, 0, 0), 0);
    }
    it_resp_free(&r);
    /* max_bytes of 1: the first partition's first batch, nothing else. */
    fp[0].partition_max_bytes = fp[1].partition_max_bytes = 0;
    it_fetch_opts o = {.max_bytes = 1};
    cr_assert_eq(it_fetch(c, fp, 2, &o, &r), 0);
    it_fetch_data(&r, 0, &data, &len);
    cr_assert_eq(len, l);
    it_fetch_data(&r, 1, &data, &len);
    cr_assert_eq(len, 0, "max_bytes=1 still gave the second partition %zu bytes", len);
    cr_assert_eq(r.payload_len, l);
    it_resp_free(&r);
    /* max_bytes of three batches: three from the first, none from the second. */
    o.max_bytes = (uint32_t)(3 * l);
    cr_assert_eq(it_fetch(c, fp, 2, &o, &r), 0);
    it_fetch_data(&r, 0, &data, &len);
    cr_assert_eq(len, 3 * l);
    cr_assert_eq(r.payload_len, 3 * l);
    it_resp_free(&r);
    free(b);
    itf_pass(&B, c);
}

// A long-polling Fetch (min_bytes=1, max_wait_ms=2000) answers as soon as
// another connection produces, with the new batch.
Test(api, fetch_long_poll_wakes_on_produce)
{
    it_conn *c = itf_connect(&B), *p = itf_connect(&B);
    itf_create(c, "poll", 2, NULL);
    size_t l;
    uint8_t *b = itf_batch("w", 3, 1000, &l);
    it_fetch_part fp[2] = {{"poll", 0, 0, 0}, {"poll", 1, 0, 0}};
    it_fetch_opts o = {.max_wait_ms = 2000, .min_bytes = 1};
    uint32_t cid;
    int64_t t0 = it_now_ms();
    cr_assert_eq(it_fetch_send(c, fp, 2, &o, &cid), 0);
    usleep(300 * 1000);
    cr_assert_eq(itf_produce(p, "poll", 1, b, l), 0);
    it_resp r;
    cr_assert_eq(it_conn_recv(c, RUNNEL__API__FETCH, &r, 5000), 0);
    int64_t dt = it_now_ms() - t0;
    cr_assert_eq(r.hdr->correlation_id, cid);
    cr_assert_lt(dt, 1500, "long poll answered after %" PRId64 " ms, not on the produce", dt);
    cr_assert_geq(dt, 250, "long poll answered before anything was produced");
    const uint8_t *data;
    size_t len;
    it_fetch_data(&r, 1, &data, &len);
    assert_batch_stored(data, len, b, l, 0);
    it_fetch_data(&r, 0, &data, &len);
    cr_assert_eq(len, 0);
    it_resp_free(&r);
    free(b);
    it_conn_close(p);
    itf_pass(&B, c);
}

// A long poll with nothing arriving answers empty once max_wait_ms passed,
// and the connection keeps serving.
Test(api, fetch_long_poll_times_out_empty)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "quiet", 1, NULL);
    it_fetch_part fp = {"quiet", 0, 0, 0};
    it_fetch_opts o = {.max_wait_ms = 2000, .min_bytes = 1};
    int64_t t0 = it_now_ms();
    it_resp r;
    cr_assert_eq(it_fetch(c, &fp, 1, &o, &r), 0);
    int64_t dt = it_now_ms() - t0;
    cr_assert_geq(dt, 1900, "answered after %" PRId64 " ms, before max_wait_ms", dt);
    cr_assert_lt(dt, 4000, "answered after %" PRId64 " ms", dt);
    cr_assert_eq(r.hdr->error_code, 0);
    cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, 0);
    cr_assert_eq(r.hdr->fetch->partitions[0]->bytes_len, 0);
    cr_assert_eq(r.payload_len, 0);
    it_resp_free(&r);
    cr_assert_eq(it_api_versions(c, &r), 0);
    it_resp_free(&r);
    itf_pass(&B, c);
}

// While a producer keeps appends in flight, no Fetch ever returns a record
// at or past the high watermark it reports, and the data it returns is whole
// verified batches.
Test(api, fetch_reads_up_to_high_watermark)
{
    it_conn *c = itf_connect(&B), *p = itf_connect(&B);
    itf_create(c, "hw", 1, NULL);
    size_t l;
    uint8_t *b = itf_batch("h", 4, 1000, &l);
    it_produce_part pp = {"hw", 0, b, l};
    enum { N = 300, INFLIGHT = 8 };
    int sent = 0, acked = 0;
    int64_t max_seen = 0;
    while (acked < N) {
        while (sent < N && sent - acked < INFLIGHT) {
            cr_assert_eq(it_produce_send(p, &pp, 1, 1, NULL), 0);
            sent++;
        }
        it_fetch_part fp = {"hw", 0, max_seen, 0};
        it_resp r;
        cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
        Runnel__FetchPartitionResponse *fr = r.hdr->fetch->partitions[0];
        cr_assert_eq(fr->error_code, 0);
        cr_assert_leq(fr->high_watermark, fr->log_end_offset);
        const uint8_t *data;
        size_t len;
        it_fetch_data(&r, 0, &data, &len);
        for (size_t off = 0; off < len;) {
            rn_batch_header h;
            cr_assert_eq(rn_batch_peek(data + off, len - off, 0, &h), 0);
            cr_assert_eq(rn_batch_verify(data + off, len - off, 0, 0), 0);
            int64_t last = h.base_offset + h.last_offset_delta;
            cr_assert_lt(last, fr->high_watermark,
                         "fetched offset %" PRId64 " at or past the high watermark %" PRId64, last,
                         fr->high_watermark);
            max_seen = last + 1;
            off += rn_batch_size(&h);
        }
        it_resp_free(&r);
        cr_assert_eq(it_conn_recv(p, RUNNEL__API__PRODUCE, &r, IT_DEFAULT_TIMEOUT_MS), 0);
        cr_assert_eq(r.hdr->produce->partitions[0]->error_code, 0);
        it_resp_free(&r);
        acked++;
    }
    /* At the high watermark: empty, no error. Past it: out of range. */
    it_fetch_part fp = {"hw", 0, 4 * N, 0};
    it_resp r;
    cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
    cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, 0);
    cr_assert_eq(r.hdr->fetch->partitions[0]->high_watermark, 4 * N);
    cr_assert_eq(r.payload_len, 0);
    it_resp_free(&r);
    free(b);
    it_conn_close(p);
    itf_pass(&B, c);
}

// A Fetch past the log end (or below its start) is OFFSET_OUT_OF_RANGE with
// the valid range in the entry; other partitions of the request still read.
Test(api, fetch_out_of_range)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "oor", 2, NULL);
    size_t l;
    uint8_t *b = itf_batch("o", 2, 1000, &l);
    itf_produce(c, "oor", 0, b, l);
    itf_produce(c, "oor", 1, b, l);
    it_fetch_part fp[3] = {{"oor", 0, 3, 0}, {"oor", 1, 0, 0}, {"oor", 0, -4, 0}};
    it_resp r;
    cr_assert_eq(it_fetch(c, fp, 3, NULL, &r), 0);
    Runnel__FetchPartitionResponse **pr = r.hdr->fetch->partitions;
    cr_assert_eq(pr[0]->error_code, RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(pr[0]->log_start_offset, 0);
    cr_assert_eq(pr[0]->high_watermark, 2);
    cr_assert_eq(pr[0]->bytes_len, 0);
    cr_assert_eq(pr[1]->error_code, 0);
    cr_assert_eq(pr[1]->bytes_len, l);
    cr_assert_eq(pr[2]->error_code, RN_E_OFFSET_OUT_OF_RANGE);
    it_resp_free(&r);
    free(b);
    itf_pass(&B, c);
}

// ListOffsets: -2 is the log start, -1 the high watermark, a time is the
// first record at or after it (-1 when none is that recent).
Test(api, list_offsets_earliest_latest_time)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "lo", 1, NULL);
    for (int i = 0; i < 3; i++) {
        size_t l;
        uint8_t *b = itf_batch("t", 2, 1000 * (i + 1), &l);
        cr_assert_eq(itf_produce(c, "lo", 0, b, l), 2 * i);
        free(b);
    }
    int64_t off, ts;
    cr_assert_eq(it_list_offsets(c, "lo", 0, -2, &off, &ts), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(ts, -1);
    cr_assert_eq(it_list_offsets(c, "lo", 0, -1, &off, &ts), 0);
    cr_assert_eq(off, 6);
    struct {
        int64_t ts, off, found;
    } cases[] = {{0, 0, 1000},    {1000, 0, 1000}, {1500, 2, 2000}, {2000, 2, 2000},
                 {2001, 4, 3000}, {3000, 4, 3000}, {5000, -1, -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(it_list_offsets(c, "lo", 0, cases[i].ts, &off, &ts), 0);
        cr_assert_eq(off, cases[i].off, "ts %" PRId64 ": offset %" PRId64 ", want %" PRId64,
                     cases[i].ts, off, cases[i].off);
        cr_assert_eq(ts, cases[i].found, "ts %" PRId64 ": found ts %" PRId64, cases[i].ts, ts);
    }
    cr_assert_eq(it_list_offsets(c, "lo", 3, -1, &off, &ts), RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(it_list_offsets(c, "nolo", 0, -1, &off, &ts), RN_E_UNKNOWN_TOPIC);
    itf_pass(&B, c);
}

// DeleteTopics removes the topic and its files: produce then gets
// UNKNOWN_TOPIC, deleting again too, and the name can be created afresh.
Test(api, delete_topics_then_produce)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "gone", 2, NULL);
    size_t l;
    uint8_t *b = itf_batch("g", 2, 1000, &l);
    itf_produce(c, "gone", 0, b, l);
    itf_produce(c, "gone", 0, b, l);
    const char *names[] = {"gone", "never"};
    it_resp r;
    cr_assert_eq(it_delete_topics(c, names, 2, &r), 0);
    cr_assert_eq(topic_err(&r, 0), 0);
    cr_assert_eq(topic_err(&r, 1), RN_E_UNKNOWN_TOPIC);
    it_resp_free(&r);
    cr_assert_eq(it_produce_one(c, "gone", 0, b, l, 1, NULL), RN_E_UNKNOWN_TOPIC);
    char dir[256];
    struct stat st;
    snprintf(dir, sizeof(dir), "%s/gone-0", B.data_dir);
    cr_assert_neq(stat(dir, &st), 0, "%s still exists", dir);
    cr_assert_eq(it_metadata(c, names, 1, &r), 0);
    cr_assert_eq(r.hdr->metadata->topics[0]->error_code, RN_E_UNKNOWN_TOPIC);
    it_resp_free(&r);
    cr_assert_eq(it_delete_topics(c, names, 1, &r), 0);
    cr_assert_eq(topic_err(&r, 0), RN_E_UNKNOWN_TOPIC);
    it_resp_free(&r);

    itf_create(c, "gone", 1, NULL);
    cr_assert_eq(itf_produce(c, "gone", 0, b, l), 0, "a re-created topic starts empty");
    free(b);

    /* And after a restart the deleted partition 1 does not come back. */
    c = itf_bounce(&B, c);
    cr_assert_eq(it_metadata(c, names, 1, &r), 0);
    cr_assert_eq(r.hdr->metadata->topics[0]->n_partitions, 1);
    it_resp_free(&r);
    itf_pass(&B, c);
}

// 100 requests of every kind sent before reading anything all get answered,
// each correlation id exactly once with its own API's body; produces to one
// partition get consecutive offsets in the order sent.
Test(api, pipelining_100_requests)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "pipe", 1, NULL);
    size_t l;
    uint8_t *b = itf_batch("q", 1, 1000, &l);
    enum { N = 100 };
    /* Correlation ids continue from the requests above: index by cid - first. */
    const uint32_t first = c->next_cid;
    int api_of[N];
    int64_t produce_seq[N];
    int n_produce = 0;
    for (int i = 0; i < N; i++) {
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        uint32_t cid = 0;
        int kind = i % 5;
        if (kind == 0 || kind == 3) {
            it_produce_part pp = {"pipe", 0, b, l};
            cr_assert_eq(it_produce_send(c, &pp, 1, 1, &cid), 0);
            api_of[cid - first] = RUNNEL__API__PRODUCE;
            produce_seq[cid - first] = n_produce++;
        } else if (kind == 1) {
            Runnel__MetadataRequest m = RUNNEL__METADATA_REQUEST__INIT;
            h.api = RUNNEL__API__METADATA;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_METADATA;
            h.metadata = &m;
            cr_assert_eq(it_conn_send(c, &h, NULL, 0, &cid), 0);
            api_of[cid - first] = RUNNEL__API__METADATA;
        } else if (kind == 2) {
            it_fetch_part fp = {"pipe", 0, 0, 0};
            cr_assert_eq(it_fetch_send(c, &fp, 1, NULL, &cid), 0);
            api_of[cid - first] = RUNNEL__API__FETCH;
        } else {
            Runnel__ApiVersionsRequest a = RUNNEL__API_VERSIONS_REQUEST__INIT;
            h.api = RUNNEL__API__API_VERSIONS;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_API_VERSIONS;
            h.api_versions = &a;
            cr_assert_eq(it_conn_send(c, &h, NULL, 0, &cid), 0);
            api_of[cid - first] = RUNNEL__API__API_VERSIONS;
        }
        cr_assert_eq(cid, first + (uint32_t)i);
    }
    bool seen[N] = {0};
    int64_t last_offset = -1;
    for (int i = 0; i < N; i++) {
        it_resp r;
        int rc = it_conn_recv(c, 0, &r, IT_DEFAULT_TIMEOUT_MS);
        cr_assert_eq(rc, 0, "answer %d of %d: %s", i, N, strerror(-rc));
        uint32_t cid = r.hdr->correlation_id;
        cr_assert(cid >= first && cid < first + N, "unknown correlation id %u", cid);
        uint32_t k = cid - first;
        cr_assert_not(seen[k], "correlation id %u answered twice", cid);
        seen[k] = true;
        cr_assert_eq(r.hdr->error_code, 0);
        cr_assert_eq((int)r.hdr->body_case, 9 + api_of[k], "cid %u: body %d, api %d", cid,
                     r.hdr->body_case, api_of[k]);
        if (api_of[k] == RUNNEL__API__PRODUCE) {
            int64_t off = r.hdr->produce->partitions[0]->base_offset;
            cr_assert_eq(off, produce_seq[k], "produce #%" PRId64 " got offset %" PRId64,
                         produce_seq[k], off);
            cr_assert_gt(off, last_offset, "produce answers out of order");
            last_offset = off;
        }
        it_resp_free(&r);
    }
    free(b);
    itf_pass(&B, c);
}

// Deleting a topic answers the long-polling fetches parked on it at once,
// with UNKNOWN_TOPIC, rather than at their max_wait_ms.
Test(api, delete_topic_answers_parked_fetch)
{
    it_conn *c = itf_connect(&B), *admin = itf_connect(&B);
    itf_create(c, "doomed", 1, NULL);
    itf_create(c, "other", 1, NULL);
    it_fetch_part fp[2] = {{"doomed", 0, 0, 0}, {"other", 0, 0, 0}};
    it_fetch_opts o = {.max_wait_ms = 20000, .min_bytes = 1};
    uint32_t cid;
    cr_assert_eq(it_fetch_send(c, fp, 2, &o, &cid), 0);
    usleep(100 * 1000);
    int64_t t0 = it_now_ms();
    const char *name = "doomed";
    it_resp r;
    cr_assert_eq(it_delete_topics(admin, &name, 1, &r), 0);
    cr_assert_eq(topic_err(&r, 0), 0);
    it_resp_free(&r);
    cr_assert_eq(it_conn_recv(c, RUNNEL__API__FETCH, &r, 25000), 0);
    int64_t dt = it_now_ms() - t0;
    cr_assert_lt(dt, 5000, "the parked fetch was answered %" PRId64 " ms after the delete", dt);
    cr_assert_eq(r.hdr->correlation_id, cid);
    cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(r.hdr->fetch->partitions[1]->error_code, 0);
    it_resp_free(&r);
    /* A produce to the surviving topic wakes nothing stale. */
    size_t l;
    uint8_t *b = itf_batch("o", 1, 1000, &l);
    cr_assert_eq(itf_produce(admin, "other", 0, b, l), 0);
    free(b);
    it_conn_close(admin);
    itf_pass(&B, c);
}

// A client that pipelines far more fetch answers than the connection's send
// budget and reads nothing for a while still gets every answer, complete and
// in order, once it reads (the broker pauses reading it, then resumes).
Test(api, slow_reader_backpressure)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "big", 1, NULL);
    rn_batch_builder *bb;
    cr_assert_eq(rn_batch_builder_new(&bb, NULL), 0);
    static uint8_t value[8192];
    memset(value, 'b', sizeof(value));
    for (int i = 0; i < 100; i++)
        cr_assert_eq(rn_batch_builder_add(bb, 1000, NULL, 0, value, sizeof(value), NULL, 0), 0);
    uint8_t *b;
    size_t l;
    cr_assert_eq(rn_batch_builder_finish(bb, &b, &l), 0);
    rn_batch_builder_free(bb);
    for (int i = 0; i < 4; i++)
        itf_produce(c, "big", 0, b, l); /* ~3.2 MiB */
    /* 40 fetches of everything: ~130 MiB of answers, far above the 16 MiB
     * send budget. */
    enum { N = 40 };
    uint32_t cids[N];
    for (int i = 0; i < N; i++) {
        it_fetch_part fp = {"big", 0, 0, 4u << 20};
        it_fetch_opts o = {.max_bytes = 4u << 20};
        cr_assert_eq(it_fetch_send(c, &fp, 1, &o, &cids[i]), 0);
    }
    usleep(300 * 1000);
    cr_assert(it_broker_alive(&B));
    for (int i = 0; i < N; i++) {
        it_resp r;
        int rc = it_conn_recv(c, RUNNEL__API__FETCH, &r, 15000);
        cr_assert_eq(rc, 0, "answer %d of %d: %s", i, N, strerror(-rc));
        cr_assert_eq(r.hdr->correlation_id, cids[i]);
        cr_assert_eq(r.payload_len, 4 * l);
        it_resp_free(&r);
    }
    /* The connection still takes requests after the pause. */
    it_resp r;
    cr_assert_eq(it_api_versions(c, &r), 0);
    it_resp_free(&r);
    free(b);
    itf_pass(&B, c);
}

// With a small segment.bytes the log rolls into many segments and a consumer
// reads across every boundary; lowering retention.ms with AlterConfigs
// deletes the old segments: the log start offset moves, a fetch below it is
// OFFSET_OUT_OF_RANGE, and ListOffsets earliest follows.
Test(api, segments_roll_and_retention)
{
    static const char *const args[] = {"--override", "log.retention.check.interval.ms=100", NULL};
    itf_start_over(&B, args);
    it_conn *c = itf_connect(&B);
    itf_create(c, "ret", 1, "segment.bytes=4096,max.message.bytes=2048");
    enum { N = 60 };
    size_t l;
    int64_t next = 0;
    /* Records of now, so the default retention (7 days) keeps them until
     * the test lowers it. */
    int64_t now = (int64_t)time(NULL) * 1000;
    for (int i = 0; i < N; i++) {
        uint8_t *b = itf_batch("retention-record-padding-padding", 10, now + i, &l);
        cr_assert_eq(itf_produce(c, "ret", 0, b, l), next);
        next += 10;
        free(b);
    }
    cr_assert_gt(l * N, 4 * 4096, "expected several segments");
    /* Read everything back, fetch after fetch. */
    int64_t at = 0;
    int fetches = 0;
    while (at < next) {
        it_fetch_part fp = {"ret", 0, at, 0};
        it_resp r;
        cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
        cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, 0, "fetch at %" PRId64, at);
        const uint8_t *data;
        size_t len;
        it_fetch_data(&r, 0, &data, &len);
        cr_assert_gt(len, 0, "empty fetch at %" PRId64 " below the end %" PRId64, at, next);
        for (size_t off = 0; off < len;) {
            rn_batch_header h;
            cr_assert_eq(rn_batch_verify(data + off, len - off, 0, 0), 0);
            cr_assert_eq(rn_batch_peek(data + off, len - off, 0, &h), 0);
            cr_assert_eq(h.base_offset, at);
            at += h.last_offset_delta + 1;
            off += rn_batch_size(&h);
        }
        it_resp_free(&r);
        fetches++;
    }
    cr_assert_gt(fetches, 3, "a fetch should stop at a segment end");

    /* retention.ms=1: every segment is too old; as in Kafka the active one
     * goes too (rolled first), and the log starts at its end. */
    usleep(20 * 1000);
    it_resp r;
    cr_assert_eq(it_alter(c, "ret", "retention.ms=1", NULL, false, &r), 0);
    cr_assert_eq(r.hdr->error_code, 0);
    it_resp_free(&r);
    int64_t start = 0;
    for (int i = 0; i < 300 && start == 0; i++) {
        usleep(10 * 1000);
        cr_assert_eq(it_list_offsets(c, "ret", 0, -2, &start, NULL), 0);
    }
    cr_assert_gt(start, 0, "retention deleted nothing");
    for (int i = 0; i < 300 && start < next; i++) {
        usleep(10 * 1000);
        cr_assert_eq(it_list_offsets(c, "ret", 0, -2, &start, NULL), 0);
    }
    cr_assert_eq(start, next, "retention kept old data in the active segment");
    /* New data lands at the end and is what a fetch there returns (stamped
     * an hour ahead, so retention.ms=1 cannot take it before the fetch). */
    uint8_t *b = itf_batch("after-retention", 3, (int64_t)time(NULL) * 1000 + 3600000, &l);
    cr_assert_eq(itf_produce(c, "ret", 0, b, l), next);
    free(b);
    it_fetch_part fp = {"ret", 0, 0, 0};
    cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
    cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, RN_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(r.hdr->fetch->partitions[0]->log_start_offset, start);
    it_resp_free(&r);
    fp.offset = start;
    cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
    cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, 0);
    cr_assert_gt(r.hdr->fetch->partitions[0]->bytes_len, 0);
    it_resp_free(&r);
    cr_assert_eq(it_describe(c, "ret", &r), 0);
    cr_assert_eq(r.hdr->describe_topic->partitions[0]->log_start_offset, start);
    it_resp_free(&r);
    itf_pass(&B, c);
}

// Deleting a topic while produces to it are in flight answers every produce
// (appended, or UNKNOWN_TOPIC once the topic is gone; never appended after
// the delete was answered) and leaves the broker serving; re-creating the
// topic starts it empty.
Test(api, delete_topic_during_produce)
{
    it_conn *p = itf_connect(&B), *admin = itf_connect(&B);
    itf_create(admin, "racy", 2, NULL);
    size_t l;
    uint8_t *b = itf_batch("r", 3, 1000, &l);
    enum { INFLIGHT = 8, BEFORE = 20, AFTER = 20 };
    int sent = 0, answered = 0, ok = 0, gone = 0, after_delete = -1;
    uint32_t last_cid = 0, first_after = UINT32_MAX;
    bool delete_sent = false;
    while (after_delete < 0 || answered < after_delete + AFTER) {
        while (sent - answered < INFLIGHT) {
            it_produce_part pp[2] = {{"racy", 0, b, l}, {"racy", 1, b, l}};
            cr_assert_eq(it_produce_send(p, pp, 2, 1, &last_cid), 0);
            sent++;
        }
        if (!delete_sent && answered >= BEFORE) {
            Runnel__DeleteTopicsRequest d = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
            char *name = "racy";
            d.n_topics = 1;
            d.topics = &name;
            IT_REQUEST(h, DELETE_TOPICS, delete_topics, &d);
            cr_assert_eq(it_conn_send(admin, &h, NULL, 0, NULL), 0);
            delete_sent = true;
        }
        it_resp r;
        int rc = it_conn_recv(p, RUNNEL__API__PRODUCE, &r, IT_DEFAULT_TIMEOUT_MS);
        cr_assert_eq(rc, 0, "produce answer %d: %s", answered, strerror(-rc));
        bool must_be_gone = r.hdr->correlation_id >= first_after;
        for (size_t k = 0; k < 2; k++) {
            uint32_t e = r.hdr->produce->partitions[k]->error_code;
            cr_assert(e == 0 || e == RN_E_UNKNOWN_TOPIC, "unexpected error %u", e);
            cr_assert(e != 0 || !must_be_gone, "produce sent after the delete was appended");
            if (e == 0)
                ok++;
            else
                gone++;
        }
        it_resp_free(&r);
        answered++;
        struct pollfd pfd = {.fd = admin->fd, .events = POLLIN};
        if (delete_sent && after_delete < 0 && poll(&pfd, 1, 0) == 1) {
            /* The delete is answered: every produce sent from now on must
             * find the topic gone. */
            cr_assert_eq(it_conn_recv(admin, RUNNEL__API__DELETE_TOPICS, &r, 5000), 0);
            cr_assert_eq(topic_err(&r, 0), 0);
            it_resp_free(&r);
            after_delete = sent;
            first_after = last_cid + 1;
        }
    }
    cr_assert_geq(gone, 2 * AFTER, "produces after the delete were appended");
    cr_log_info("%d appended, %d after the delete", ok, gone);
    itf_create(admin, "racy", 1, NULL);
    cr_assert_eq(itf_produce(admin, "racy", 0, b, l), 0);
    free(b);
    it_conn_close(admin);
    itf_pass(&B, p);
}
