/*
 * test_metadata.c — librunnel's cluster metadata cache (clients/metadata.c),
 * suite `clients_metadata`, against the scripted broker of fake_broker.h.
 *
 * What internal.h promises: rn__md_wait_topic learns a topic (or says
 * -RN_E_UNKNOWN_TOPIC, or the transport error once every bootstrap server
 * failed); rn__md_leader finds a partition's leader connection or says
 * -RN_E_UNKNOWN_TOPIC / -RN_E_NOT_LEADER; errors that mean "stale"
 * (rn__needs_metadata) lead to a refresh that replaces the entry; one refresh
 * is in flight at a time; metadata.max.age.ms refreshes topics in use, so a
 * topic whose partition count grew is seen without an error first.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "clients/internal.h"
#include "fake_broker.h"

TestSuite(clients_metadata, .timeout = 60);

/* ---- The broker's picture, which tests change as they go ---------------------- */

#define MAX_TOPICS 4
#define MAX_PARTS  8

typedef struct picture {
    uint16_t port;
    struct {
        const char *name;
        uint32_t error_code;
        int n_parts;
        int32_t leader[MAX_PARTS];
        int32_t part_id[MAX_PARTS]; /* 0: the index itself */
    } topics[MAX_TOPICS];
    int n_topics;
    unsigned metadata_requests;
} picture;

/* Answer Metadata with the picture: one broker (node 1, this one) and every
 * topic asked for that the picture has (UNKNOWN_TOPIC for the others). */
static int answer_metadata(fb *b, int fd, const Runnel__RequestHeader *h, void *arg)
{
    picture *pic = arg;
    fb__check(h->body_case == RUNNEL__REQUEST_HEADER__BODY_METADATA, "not a Metadata request");
    fb_lock(b);
    pic->metadata_requests++;
    Runnel__Broker br = RUNNEL__BROKER__INIT;
    br.node_id = 1;
    br.host = "127.0.0.1";
    br.port = pic->port;
    Runnel__Broker *brs[1] = {&br};
    Runnel__TopicMetadata tm[MAX_TOPICS + 4];
    Runnel__TopicMetadata *tms[MAX_TOPICS + 4];
    Runnel__PartitionMetadata pm[MAX_TOPICS + 4][MAX_PARTS];
    Runnel__PartitionMetadata *pms[MAX_TOPICS + 4][MAX_PARTS];
    size_t n = 0;
    for (size_t q = 0; q < h->metadata->n_topics && n < MAX_TOPICS + 4; q++) {
        const char *want = h->metadata->topics[q];
        runnel__topic_metadata__init(&tm[n]);
        tm[n].name = (char *)want;
        tm[n].error_code = RN_E_UNKNOWN_TOPIC;
        for (int t = 0; t < pic->n_topics; t++) {
            if (strcmp(pic->topics[t].name, want) != 0)
                continue;
            tm[n].error_code = pic->topics[t].error_code;
            for (int p = 0; p < pic->topics[t].n_parts; p++) {
                runnel__partition_metadata__init(&pm[n][p]);
                pm[n][p].partition = pic->topics[t].part_id[p] ? pic->topics[t].part_id[p] : p;
                pm[n][p].leader = pic->topics[t].leader[p];
                pm[n][p].leader_epoch = 3;
                pms[n][p] = &pm[n][p];
            }
            tm[n].n_partitions = (size_t)pic->topics[t].n_parts;
            tm[n].partitions = pms[n];
        }
        tms[n] = &tm[n];
        n++;
    }
    Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
    mr.n_brokers = 1;
    mr.brokers = brs;
    mr.controller_id = 1;
    mr.n_topics = n;
    mr.topics = tms;
    fb_reply_metadata(fd, h->correlation_id, &mr);
    fb_unlock(b);
    return FB_KEEP;
}

static void set_topic(fb *b, picture *pic, int i, const char *name, int n_parts, int32_t leader)
{
    fb_lock(b);
    pic->topics[i].name = name;
    pic->topics[i].error_code = 0;
    pic->topics[i].n_parts = n_parts;
    for (int p = 0; p < n_parts; p++) {
        pic->topics[i].leader[p] = leader;
        pic->topics[i].part_id[p] = 0;
    }
    if (pic->n_topics <= i)
        pic->n_topics = i + 1;
    fb_unlock(b);
}

static unsigned md_requests(fb *b, picture *pic)
{
    fb_lock(b);
    unsigned n = pic->metadata_requests;
    fb_unlock(b);
    return n;
}

static void client_new(rn__client *cl, const char *servers, const char *max_age)
{
    rn_conf *conf = rn_conf_new();
    cr_assert_not_null(conf);
    char err[256];
    cr_assert_eq(rn_conf_set(conf, "bootstrap.servers", servers, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_conf_set(conf, "reconnect.backoff.ms", "10", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_conf_set(conf, "retry.backoff.ms", "10", err, sizeof(err)), 0, "%s", err);
    if (max_age)
        cr_assert_eq(rn_conf_set(conf, "metadata.max.age.ms", max_age, err, sizeof(err)), 0, "%s",
                     err);
    cr_assert_eq(rn__client_init(cl, conf), 0, "%s", cl->errmsg);
    rn_conf_free(conf);
}

static void start(fb *b, picture *pic, rn__client *cl, const char *max_age)
{
    memset(pic, 0, sizeof(*pic));
    fb_start(b, answer_metadata, pic);
    pic->port = b->port;
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", b->port);
    client_new(cl, servers, max_age);
}

/* Wait (at most 5 s) until the cache knows topic name, which must exist. */
static rn__md_topic *wait_topic(rn__client *cl, const char *name)
{
    rn__md_topic *t;
    cr_assert_eq(rn__md_wait_topic(cl, name, 5000, &t), 0, "%s", cl->errmsg);
    return t;
}

static void stop(fb *b, rn__client *cl)
{
    rn__client_fini(cl);
    fb_stop(b);
}

/* Poll until the cache completed a refresh after generation gen (bounded: 10 s). */
static void poll_refreshed(rn__client *cl, uint64_t gen)
{
    for (int i = 0; i < 1000; i++) {
        if (cl->md.generation > gen && !cl->md.in_flight)
            return;
        cr_assert_eq(rn__client_poll(cl, 10), 0);
    }
    cr_assert_fail("no metadata refresh within 10 s");
}

/* A topic is learnt with its partitions; each partition's leader is a
 * connection to the broker the answer named; a partition past the end and a
 * topic not in the cache are -RN_E_UNKNOWN_TOPIC. */
Test(clients_metadata, wait_topic_then_leader_lookup)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    set_topic(&b, &pic, 0, "orders", 3, 1);
    rn__md_topic *t = wait_topic(&cl, "orders");
    cr_assert_str_eq(t->name, "orders");
    cr_assert_eq(t->n_parts, 3);
    cr_assert_eq(t->err, 0);
    cr_assert_eq(rn__md_find(&cl, "orders"), t);
    for (int32_t p = 0; p < 3; p++) {
        cr_assert_eq(t->parts[p].leader, 1);
        cr_assert_eq(t->parts[p].leader_epoch, 3);
        rn__conn *c;
        cr_assert_eq(rn__md_leader(&cl, "orders", p, &c), 0);
        cr_assert_str_eq(c->host, "127.0.0.1");
        cr_assert_eq(c->port, b.port);
    }
    rn__conn *c = (rn__conn *)&c;
    cr_assert_eq(rn__md_leader(&cl, "orders", 3, &c), -RN_E_UNKNOWN_TOPIC);
    cr_assert_null(c);
    cr_assert_eq(rn__md_leader(&cl, "orders", -1, &c), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(rn__md_leader(&cl, "other", 0, &c), -RN_E_UNKNOWN_TOPIC);
    /* A cached topic is answered without asking the broker again. */
    unsigned asked = md_requests(&b, &pic);
    cr_assert_eq(rn__md_wait_topic(&cl, "orders", 5000, &t), 0);
    cr_assert_eq(md_requests(&b, &pic), asked);
    stop(&b, &cl);
}

/* A partition without a leader, or whose leader is a node the answer does
 * not list, is -RN_E_NOT_LEADER. */
Test(clients_metadata, no_leader_is_not_leader)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    set_topic(&b, &pic, 0, "t", 3, 1);
    fb_lock(&b);
    pic.topics[0].leader[1] = -1;
    pic.topics[0].leader[2] = 7;
    fb_unlock(&b);
    wait_topic(&cl, "t");
    rn__conn *c;
    cr_assert_eq(rn__md_leader(&cl, "t", 0, &c), 0);
    cr_assert_eq(rn__md_leader(&cl, "t", 1, &c), -RN_E_NOT_LEADER);
    cr_assert_eq(rn__md_leader(&cl, "t", 2, &c), -RN_E_NOT_LEADER);
    stop(&b, &cl);
}

/* A topic the broker does not have is -RN_E_UNKNOWN_TOPIC with the topic
 * named; once it exists, waiting again refreshes (the cached error is not an
 * answer) and finds it: UNKNOWN_TOPIC leads to a refresh. */
Test(clients_metadata, unknown_topic_then_created)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    rn__md_topic *t;
    cr_assert_eq(rn__md_wait_topic(&cl, "later", 5000, &t), -RN_E_UNKNOWN_TOPIC);
    cr_assert_null(t);
    cr_assert_not_null(strstr(cl.errmsg, "later"), "errmsg: %s", cl.errmsg);
    rn__conn *c;
    cr_assert_eq(rn__md_leader(&cl, "later", 0, &c), -RN_E_UNKNOWN_TOPIC);
    cr_assert(rn__needs_metadata(-RN_E_UNKNOWN_TOPIC));

    set_topic(&b, &pic, 0, "later", 2, 1);
    t = wait_topic(&cl, "later");
    cr_assert_eq(t->n_parts, 2);
    cr_assert_eq(rn__md_leader(&cl, "later", 1, &c), 0);
    stop(&b, &cl);
}

/* NOT_LEADER says the cache is stale: the refresh it calls for replaces the
 * entry, and the partition's new leader is used. */
Test(clients_metadata, not_leader_refresh_sees_new_leader)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    set_topic(&b, &pic, 0, "t", 2, -1);
    wait_topic(&cl, "t");
    rn__conn *c;
    int err = rn__md_leader(&cl, "t", 0, &c);
    cr_assert_eq(err, -RN_E_NOT_LEADER);
    cr_assert(rn__needs_metadata(err));

    set_topic(&b, &pic, 0, "t", 2, 1); /* an election happened */
    uint64_t gen = cl.md.generation;
    cr_assert_eq(rn__md_refresh(&cl), 0);
    poll_refreshed(&cl, gen);
    cr_assert_eq(cl.md.good_generation, cl.md.generation);
    cr_assert_eq(rn__md_leader(&cl, "t", 0, &c), 0);
    cr_assert_eq(c->port, b.port);
    stop(&b, &cl);
}

/* A burst of refresh requests while one is in flight costs two Metadata
 * requests in all: the one in flight and one after it. */
Test(clients_metadata, refreshes_are_coalesced)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    set_topic(&b, &pic, 0, "t", 1, 1);
    cr_assert_eq(rn__md_want(&cl, "t"), 0);
    uint64_t gen = cl.md.generation;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(rn__md_refresh(&cl), 0);
    cr_assert(cl.md.in_flight);
    poll_refreshed(&cl, gen + 1);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(rn__client_poll(&cl, 5), 0);
    cr_assert_eq(md_requests(&b, &pic), 2);
    cr_assert_eq(cl.md.generation, gen + 2);
    stop(&b, &cl);
}

/* With metadata.max.age.ms, polling alone refreshes the topics in use: a
 * topic whose partition count grew from 2 to 5 is seen with 5, and the new
 * partitions have leaders, without any error first. */
Test(clients_metadata, max_age_sees_partitions_added)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, "50");
    set_topic(&b, &pic, 0, "grows", 2, 1);
    rn__md_topic *t = wait_topic(&cl, "grows");
    cr_assert_eq(t->n_parts, 2);
    rn__conn *c;
    cr_assert_eq(rn__md_leader(&cl, "grows", 4, &c), -RN_E_UNKNOWN_TOPIC);

    set_topic(&b, &pic, 0, "grows", 5, 1);
    for (int i = 0; i < 1000 && rn__md_find(&cl, "grows")->n_parts != 5; i++)
        cr_assert_eq(rn__client_poll(&cl, 10), 0);
    t = rn__md_find(&cl, "grows");
    cr_assert_eq(t->n_parts, 5, "partitions added were not seen within 10 s");
    cr_assert_eq(rn__md_leader(&cl, "grows", 4, &c), 0);
    stop(&b, &cl);
}

/* Without max age (the default 5 minutes), polling does not ask again. */
Test(clients_metadata, no_refresh_before_max_age)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    set_topic(&b, &pic, 0, "t", 1, 1);
    wait_topic(&cl, "t");
    unsigned asked = md_requests(&b, &pic);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(rn__client_poll(&cl, 5), 0);
    cr_assert_eq(md_requests(&b, &pic), asked);
    stop(&b, &cl);
}

/* A hostile partition id (a million) does not make the cache allocate a
 * million entries: the entry keeps the partitions it can place. */
Test(clients_metadata, hostile_partition_id_is_bounded)
{
    fb b;
    picture pic;
    rn__client cl;
    start(&b, &pic, &cl, NULL);
    set_topic(&b, &pic, 0, "t", 2, 1);
    fb_lock(&b);
    pic.topics[0].part_id[1] = 1000000;
    fb_unlock(&b);
    rn__md_topic *t = wait_topic(&cl, "t");
    cr_assert_leq(t->n_parts, 2);
    rn__conn *c;
    cr_assert_eq(rn__md_leader(&cl, "t", 0, &c), 0);
    cr_assert_eq(rn__md_leader(&cl, "t", 1000000, &c), -RN_E_UNKNOWN_TOPIC);
    stop(&b, &cl);
}

/* When no bootstrap server can be reached, waiting ends with the transport
 * error (-ECONNREFUSED) once each was tried, not at the timeout. */
Test(clients_metadata, every_bootstrap_down_is_refused)
{
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u,127.0.0.1:%u", fb_closed_port(),
             fb_closed_port());
    rn__client cl;
    client_new(&cl, servers, NULL);
    rn__md_topic *t;
    cr_assert_eq(rn__md_wait_topic(&cl, "t", 30000, &t), -ECONNREFUSED, "%s", cl.errmsg);
    cr_assert_not_null(strstr(cl.errmsg, "127.0.0.1"), "errmsg: %s", cl.errmsg);
    rn__client_fini(&cl);
}

/* One bootstrap server down, the next up: the topic is learnt from the second. */
Test(clients_metadata, next_bootstrap_server_is_tried)
{
    fb b;
    picture pic;
    memset(&pic, 0, sizeof(pic));
    fb_start(&b, answer_metadata, &pic);
    pic.port = b.port;
    set_topic(&b, &pic, 0, "t", 1, 1);
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u,127.0.0.1:%u", fb_closed_port(), b.port);
    rn__client cl;
    client_new(&cl, servers, NULL);
    rn__md_topic *t;
    cr_assert_eq(rn__md_wait_topic(&cl, "t", 10000, &t), 0, "%s", cl.errmsg);
    cr_assert_eq(t->n_parts, 1);
    stop(&b, &cl);
}
