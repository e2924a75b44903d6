/*
 * test_replication.c — the replication APIs of a real runneld (DESIGN §8)
 * that need no controller: OffsetsForLeaderEpoch answered from each
 * partition's leader-epoch cache and split over several reactors, and
 * KIP-320 leader-epoch fencing in Fetch and Produce. A single-node broker
 * leads every partition in the epoch its metadata gives (0).
 *
 * The roles themselves (leader, follower, ISR) are set by the controller;
 * until it is wired, tests/unit/broker/part/test_replica_fetcher.c drives
 * them in process.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

static it_broker B;

static void setup(void)
{
    static const char *const args[] = {"--reactors", "3", NULL};
    itf_start(&B, args);
}

static void teardown(void)
{
    itf_teardown(&B);
}

TestSuite(replication, .init = setup, .fini = teardown, .timeout = 60);

typedef struct ask {
    const char *topic;
    int32_t partition, current_epoch, epoch;
} ask;

static void epochs_call(it_conn *c, const ask *q, size_t n, it_resp *r)
{
    Runnel__OffsetsForLeaderEpochPartition p[8], *pp[8];
    cr_assert_leq(n, 8);
    for (size_t i = 0; i < n; i++) {
        runnel__offsets_for_leader_epoch_partition__init(&p[i]);
        p[i].topic = (char *)q[i].topic;
        p[i].partition = q[i].partition;
        p[i].current_leader_epoch = q[i].current_epoch;
        p[i].leader_epoch = q[i].epoch;
        pp[i] = &p[i];
    }
    Runnel__OffsetsForLeaderEpochRequest body = RUNNEL__OFFSETS_FOR_LEADER_EPOCH_REQUEST__INIT;
    body.replica_id = 2;
    body.n_partitions = n;
    body.partitions = pp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH;
    h.offsets_for_leader_epoch = &body;
    cr_assert_eq(it_call(c, &h, NULL, 0, r), 0);
    cr_assert_eq(r->hdr->error_code, 0);
    cr_assert_not_null(r->hdr->offsets_for_leader_epoch);
    cr_assert_eq(r->hdr->offsets_for_leader_epoch->n_partitions, n);
}

/* The end of the latest epoch is the log end; an epoch newer than any the
 * log has is unknown (-1, -1); a current epoch ahead of the partition's is
 * UNKNOWN_LEADER_EPOCH; answers come back in request order although the
 * partitions live on different reactors. */
Test(replication, offsets_for_leader_epoch)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "ole", 4, NULL);
    size_t l;
    uint8_t *b = itf_batch("e", 5, 1000, &l);
    for (int32_t p = 0; p < 4; p++)
        for (int k = 0; k <= p; k++)
            itf_produce(c, "ole", p, b, l);
    ask q[] = {
        {"ole", 3, -1, 0}, {"ole", 0, 0, 0},   {"ole", 2, -1, 7},
        {"ole", 1, 1, 0},  {"nope", 0, -1, 0},
    };
    it_resp r;
    epochs_call(c, q, 5, &r);
    Runnel__OffsetsForLeaderEpochPartitionResponse **a =
        r.hdr->offsets_for_leader_epoch->partitions;
    cr_assert_eq(a[0]->partition, 3);
    cr_assert_eq(a[0]->error_code, 0);
    cr_assert_eq(a[0]->leader_epoch, 0);
    cr_assert_eq(a[0]->end_offset, 20);
    cr_assert_eq(a[1]->partition, 0);
    cr_assert_eq(a[1]->error_code, 0);
    cr_assert_eq(a[1]->end_offset, 5);
    cr_assert_eq(a[2]->error_code, 0);
    cr_assert_eq(a[2]->leader_epoch, -1, "no epoch 7 here");
    cr_assert_eq(a[2]->end_offset, -1);
    cr_assert_eq(a[3]->error_code, RN_E_UNKNOWN_LEADER_EPOCH);
    cr_assert_eq(a[4]->error_code, RN_E_UNKNOWN_TOPIC);
    it_resp_free(&r);
    free(b);
    it_conn_close(c);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* KIP-320 in Fetch: a current leader epoch ahead of the partition's is
 * UNKNOWN_LEADER_EPOCH (the broker has not heard of it: the client must not
 * read from what may be a deposed leader); -1 and the partition's own
 * epoch read. */
Test(replication, fetch_fences_future_epoch)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "fen", 1, NULL);
    size_t l;
    uint8_t *b = itf_batch("f", 3, 1000, &l);
    itf_produce(c, "fen", 0, b, l);
    int32_t epochs[] = {-1, 0, 1};
    uint32_t want[] = {0, 0, RN_E_UNKNOWN_LEADER_EPOCH};
    for (int i = 0; i < 3; i++) {
        Runnel__FetchPartition fp = RUNNEL__FETCH_PARTITION__INIT, *fpp = &fp;
        fp.topic = "fen";
        fp.partition = 0;
        fp.fetch_offset = 0;
        fp.partition_max_bytes = 1 << 20;
        fp.current_leader_epoch = epochs[i];
        Runnel__FetchRequest body = RUNNEL__FETCH_REQUEST__INIT;
        body.replica_id = -1;
        body.max_bytes = 1 << 20;
        body.n_partitions = 1;
        body.partitions = &fpp;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__FETCH;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
        h.fetch = &body;
        it_resp r;
        cr_assert_eq(it_call(c, &h, NULL, 0, &r), 0);
        cr_assert_eq(r.hdr->fetch->partitions[0]->error_code, want[i], "epoch %d", epochs[i]);
        cr_assert_eq(r.hdr->fetch->partitions[0]->bytes_len, want[i] ? 0 : l);
        it_resp_free(&r);
    }
    free(b);
    it_conn_close(c);
    itf_stop_clean(&B);
    itf_passed = true;
}

/* KIP-320 in Produce: a producer that names an epoch ahead of the
 * partition's is refused and nothing is appended; naming the partition's
 * own epoch, or none (an old client), appends. */
Test(replication, produce_fences_named_epoch)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "pfen", 1, NULL);
    size_t l;
    uint8_t *b = itf_batch("p", 2, 1000, &l);
    struct {
        bool set;
        int32_t epoch;
        uint32_t want;
    } cases[] = {{false, 0, 0}, {true, 0, 0}, {true, 3, RN_E_UNKNOWN_LEADER_EPOCH}};
    for (int i = 0; i < 3; i++) {
        Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT, *ppp = &pp;
        pp.topic = "pfen";
        pp.partition = 0;
        pp.batch_len = (uint32_t)l;
        if (cases[i].set) {
            pp.leader_epoch_check_case =
                RUNNEL__PRODUCE_PARTITION__LEADER_EPOCH_CHECK_CURRENT_LEADER_EPOCH;
            pp.current_leader_epoch = cases[i].epoch;
        }
        Runnel__ProduceRequest body = RUNNEL__PRODUCE_REQUEST__INIT;
        body.acks = -1;
        body.timeout_ms = 5000;
        body.n_partitions = 1;
        body.partitions = &ppp;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__PRODUCE;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
        h.produce = &body;
        it_resp r;
        cr_assert_eq(it_call(c, &h, b, l, &r), 0);
        cr_assert_eq(r.hdr->produce->partitions[0]->error_code, cases[i].want, "case %d", i);
        it_resp_free(&r);
    }
    int64_t end = -1;
    cr_assert_eq(it_list_offsets(c, "pfen", 0, -1, &end, NULL), 0);
    cr_assert_eq(end, 4, "two appended, the fenced one not");
    free(b);
    it_conn_close(c);
    itf_stop_clean(&B);
    itf_passed = true;
}
