/*
 * test_route.c — splitting a gateway request by leader and merging the
 * answers (broker/gateway/route.c), with any answer a peer could send: good
 * ones in and out of order of parts, and malformed ones (another API's body,
 * too few or too many entries, another partition, bytes that do not add up,
 * a header that does not unpack). A malformed answer fails only its own
 * part, with a message naming the broker, and is never read past its bounds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/route.h"
#include "protocol/errors.h"

TestSuite(route, .timeout = 30);

/* Leaders: partition p of any topic is led by broker p % 3 (0: here);
 * partition 99 has no leader. */
static int32_t lead(void *arg, const char *topic, int32_t p)
{
    (void)arg;
    (void)topic;
    if (p == 99)
        return RN_GW_ROUTE_NONE;
    return p % 3 == 0 ? RN_GW_ROUTE_LOCAL : p % 3;
}

/* A ListOffsets request for partitions ps[0..n). */
typedef struct lo_req {
    Runnel__RequestHeader h;
    Runnel__ListOffsetsRequest lr;
    Runnel__ListOffsetsPartition p[8];
    Runnel__ListOffsetsPartition *pp[8];
} lo_req;

static void lo_make(lo_req *q, const int32_t *ps, size_t n)
{
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    q->h = h;
    q->lr = lr;
    for (size_t i = 0; i < n; i++) {
        runnel__list_offsets_partition__init(&q->p[i]);
        q->p[i].topic = "t";
        q->p[i].partition = ps[i];
        q->p[i].timestamp = -1;
        q->pp[i] = &q->p[i];
    }
    q->lr.n_partitions = n;
    q->lr.partitions = q->pp;
    q->h.api = RUNNEL__API__LIST_OFFSETS;
    q->h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
    q->h.list_offsets = &q->lr;
}

/* A packed ListOffsets answer for partitions ps[0..n) of topic, offset 100 + p. */
static uint8_t *lo_answer(const char *topic, const int32_t *ps, size_t n, size_t *len)
{
    Runnel__ListOffsetsPartitionResponse e[8], *ep[8];
    for (size_t i = 0; i < n; i++) {
        runnel__list_offsets_partition_response__init(&e[i]);
        e[i].topic = (char *)topic;
        e[i].partition = ps[i];
        e[i].offset = 100 + ps[i];
        ep[i] = &e[i];
    }
    Runnel__ListOffsetsResponse r = RUNNEL__LIST_OFFSETS_RESPONSE__INIT;
    r.n_partitions = n;
    r.partitions = ep;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &r;
    *len = runnel__response_header__get_packed_size(&h);
    uint8_t *b = malloc(*len);
    runnel__response_header__pack(&h, b);
    return b;
}

static size_t part_of_leader(const rn_gw_route *rt, int32_t leader)
{
    for (size_t k = 0; k < rt->n_parts; k++)
        if (rt->parts[k].leader == leader)
            return k;
    cr_assert_fail("no part for leader %d", leader);
    return 0;
}

/* Partitions are grouped by leader in order of first appearance, each part
 * keeping the request's order. */
Test(route, plan_groups_by_leader)
{
    lo_req q;
    int32_t ps[] = {1, 3, 4, 2, 6, 5, 99};
    lo_make(&q, ps, 7);
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &q.h, lead, NULL), 0);
    cr_assert_eq(rt.n_parts, 4);
    cr_assert_eq(rt.parts[0].leader, 1);
    cr_assert_eq(rt.parts[0].n, 2);
    cr_assert_eq(rt.parts[0].idx[0], 0);
    cr_assert_eq(rt.parts[0].idx[1], 2);
    cr_assert_eq(rt.parts[1].leader, RN_GW_ROUTE_LOCAL);
    cr_assert_eq(rt.parts[1].n, 2);
    cr_assert_eq(rt.parts[2].leader, 2);
    cr_assert_eq(rt.parts[2].idx[1], 5);
    cr_assert_eq(rt.parts[3].leader, RN_GW_ROUTE_NONE);
    cr_assert_not(rn_gw_route_all_local(&rt));
    rn_gw_route_fini(&rt);

    int32_t local[] = {0, 3};
    lo_make(&q, local, 2);
    cr_assert_eq(rn_gw_route_plan(&rt, &q.h, lead, NULL), 0);
    cr_assert(rn_gw_route_all_local(&rt));
    rn_gw_route_fini(&rt);
}

static int32_t each_its_own(void *arg, const char *topic, int32_t p)
{
    (void)arg;
    (void)topic;
    return p;
}

/* More leaders than RN_GW_ROUTE_MAX_PARTS: refused before anything is sent. */
Test(route, too_many_leaders)
{
    size_t n = RN_GW_ROUTE_MAX_PARTS + 1;
    Runnel__ListOffsetsPartition *p = calloc(n, sizeof(*p));
    Runnel__ListOffsetsPartition **pp = calloc(n, sizeof(*pp));
    for (size_t i = 0; i < n; i++) {
        runnel__list_offsets_partition__init(&p[i]);
        p[i].topic = "t";
        p[i].partition = (int32_t)i;
        pp[i] = &p[i];
    }
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    lr.n_partitions = n;
    lr.partitions = pp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__LIST_OFFSETS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &lr;
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &h, each_its_own, NULL), -E2BIG);
    rn_gw_route_fini(&rt);
    free(p);
    free(pp);
}

typedef struct captured {
    size_t n;
    int32_t parts[8];
    uint8_t payload[256];
    size_t payload_len;
} captured;

static int capture(void *arg, Runnel__RequestHeader *sub, const void *payload, size_t len)
{
    captured *c = arg;
    c->n = sub->produce->n_partitions;
    for (size_t i = 0; i < c->n; i++)
        c->parts[i] = sub->produce->partitions[i]->partition;
    memcpy(c->payload, payload, len);
    c->payload_len = len;
    return 0;
}

/* A Produce's payload is cut to each part's batches, in order; lengths that
 * do not add up to the payload are refused. */
Test(route, produce_payload_is_cut_by_part)
{
    Runnel__ProducePartition p[3], *pp[3];
    int32_t ps[] = {1, 0, 4};
    uint32_t lens[] = {3, 2, 4};
    for (int i = 0; i < 3; i++) {
        runnel__produce_partition__init(&p[i]);
        p[i].topic = "t";
        p[i].partition = ps[i];
        p[i].batch_len = lens[i];
        pp[i] = &p[i];
    }
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1;
    pr.n_partitions = 3;
    pr.partitions = pp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__PRODUCE;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
    h.produce = &pr;
    const uint8_t payload[] = "AAABBCCCC";
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &h, lead, NULL), 0);
    cr_assert_eq(rt.n_parts, 2);
    size_t k1 = part_of_leader(&rt, 1);
    captured c = {0};
    cr_assert_eq(rn_gw_route_sub(&rt, k1, &h, payload, 9, capture, &c), 0);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.parts[0], 1);
    cr_assert_eq(c.parts[1], 4);
    cr_assert_eq(c.payload_len, 7);
    cr_assert_arr_eq(c.payload, "AAACCCC", 7);
    size_t k0 = part_of_leader(&rt, RN_GW_ROUTE_LOCAL);
    cr_assert_eq(rn_gw_route_sub(&rt, k0, &h, payload, 9, capture, &c), 0);
    cr_assert_eq(c.payload_len, 2);
    cr_assert_arr_eq(c.payload, "BB", 2);
    /* Lengths past the payload, or short of it. */
    cr_assert_eq(rn_gw_route_sub(&rt, k1, &h, payload, 8, capture, &c), -RN_E_INVALID_REQUEST);
    p[2].batch_len = 3;
    cr_assert_eq(rn_gw_route_sub(&rt, k1, &h, payload, 9, capture, &c), -RN_E_INVALID_REQUEST);
    rn_gw_route_fini(&rt);
}

/* Answers from a local part and two peers merge in the request's order; a
 * failed part's partitions carry its error. */
Test(route, merge_in_request_order)
{
    lo_req q;
    int32_t ps[] = {2, 0, 1, 3, 4};
    lo_make(&q, ps, 5);
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &q.h, lead, NULL), 0);
    cr_assert_eq(rt.n_parts, 3);
    size_t len;
    /* Broker 1 leads 1 and 4. */
    int32_t b1[] = {1, 4};
    uint8_t *a = lo_answer("t", b1, 2, &len);
    cr_assert_eq(rn_gw_route_take_packed(&rt, part_of_leader(&rt, 1), a, len, NULL, 0), 0);
    free(a);
    /* Local: 0 and 3, through take_local (a borrowed header). */
    int32_t b0[] = {0, 3};
    a = lo_answer("t", b0, 2, &len);
    Runnel__ResponseHeader *lh = runnel__response_header__unpack(NULL, len, a);
    cr_assert_eq(rn_gw_route_take_local(&rt, part_of_leader(&rt, RN_GW_ROUTE_LOCAL), lh, NULL, 0),
                 0);
    runnel__response_header__free_unpacked(lh, NULL);
    free(a);
    /* Broker 2 unreachable. */
    rn_gw_route_fail(&rt, part_of_leader(&rt, 2), -ECONNREFUSED, "leader broker 2: refused");
    Runnel__ResponseHeader *out;
    rn_slice *sl;
    unsigned nsl;
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->error_code, 0);
    cr_assert_eq(out->body_case, RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS);
    cr_assert_eq(out->list_offsets->n_partitions, 5);
    for (size_t i = 0; i < 5; i++) {
        Runnel__ListOffsetsPartitionResponse *e = out->list_offsets->partitions[i];
        cr_assert_eq(e->partition, ps[i]);
        cr_assert_str_eq(e->topic, "t");
        if (ps[i] == 2) {
            cr_assert_eq(e->error_code, ECONNREFUSED);
            cr_assert_eq(e->offset, -1);
        } else {
            cr_assert_eq(e->error_code, 0);
            cr_assert_eq(e->offset, 100 + ps[i]);
        }
    }
    rn_gw_route_fini(&rt);
}

/* Every part failed: one whole-request error, the first part's, with its message. */
Test(route, all_failed_is_a_whole_error)
{
    lo_req q;
    int32_t ps[] = {1, 2};
    lo_make(&q, ps, 2);
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &q.h, lead, NULL), 0);
    rn_gw_route_fail(&rt, 0, -RN_E_TIMEOUT, "leader broker 1: no answer in time");
    rn_gw_route_fail(&rt, 1, -ECONNRESET, NULL);
    Runnel__ResponseHeader *out;
    rn_slice *sl;
    unsigned nsl;
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->error_code, RN_E_TIMEOUT);
    cr_assert_str_eq(out->error_message, "leader broker 1: no answer in time");
    cr_assert_eq(nsl, 0);
    rn_gw_route_fini(&rt);
}

/* Malformed peer answers, each failing its part with a message naming the
 * broker, while the other part's good answer is used. */
static void one_malformed(const uint8_t *hdr, size_t len, uint8_t *payload, size_t plen,
                          const char *want)
{
    lo_req q;
    int32_t ps[] = {1, 0};
    lo_make(&q, ps, 2);
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &q.h, lead, NULL), 0);
    cr_assert_eq(rn_gw_route_take_packed(&rt, 0, hdr, len, payload, plen), 0);
    cr_assert(rt.parts[0].done);
    cr_assert_eq(rt.parts[0].err, -RN_E_INVALID_REQUEST, "err %d", rt.parts[0].err);
    cr_assert(strstr(rt.parts[0].errmsg, "malformed answer from broker 1"), "%s",
              rt.parts[0].errmsg);
    cr_assert(strstr(rt.parts[0].errmsg, want), "%s", rt.parts[0].errmsg);
    size_t alen;
    int32_t b0[] = {0};
    uint8_t *a = lo_answer("t", b0, 1, &alen);
    cr_assert_eq(rn_gw_route_take_packed(&rt, 1, a, alen, NULL, 0), 0);
    free(a);
    Runnel__ResponseHeader *out;
    rn_slice *sl;
    unsigned nsl;
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->list_offsets->n_partitions, 2);
    cr_assert_eq(out->list_offsets->partitions[0]->error_code, RN_E_INVALID_REQUEST);
    cr_assert_eq(out->list_offsets->partitions[1]->error_code, 0);
    cr_assert_eq(out->list_offsets->partitions[1]->offset, 100);
    rn_gw_route_fini(&rt);
}

Test(route, malformed_answers_fail_their_part)
{
    size_t len;
    /* Too many entries. */
    int32_t two[] = {1, 1};
    uint8_t *a = lo_answer("t", two, 2, &len);
    one_malformed(a, len, NULL, 0, "2 partitions for the 1 asked");
    free(a);
    /* None. */
    a = lo_answer("t", two, 0, &len);
    one_malformed(a, len, NULL, 0, "0 partitions for the 1 asked");
    free(a);
    /* Another partition, another topic. */
    int32_t seven[] = {7};
    a = lo_answer("t", seven, 1, &len);
    one_malformed(a, len, NULL, 0, "entry 0 is not t-1");
    free(a);
    int32_t one[] = {1};
    a = lo_answer("u", one, 1, &len);
    one_malformed(a, len, NULL, 0, "entry 0 is not t-1");
    free(a);
    /* Another API's body. */
    Runnel__ProduceResponse pr = RUNNEL__PRODUCE_RESPONSE__INIT;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_PRODUCE;
    h.produce = &pr;
    uint8_t buf[64];
    len = runnel__response_header__pack(&h, buf);
    one_malformed(buf, len, NULL, 0, "not a ListOffsets answer");
    /* Payload bytes on an answer that has none (ownership passes in). */
    a = lo_answer("t", one, 1, &len);
    uint8_t *extra = malloc(5);
    memcpy(extra, "xxxxx", 5);
    one_malformed(a, len, extra, 5, "5 payload bytes, the header accounts for 0");
    free(a);
    /* A header that does not unpack. */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
    one_malformed(junk, sizeof(junk), NULL, 0, "bad header");
}

/* Fetch answers: a peer's bytes become one slice per partition with bytes,
 * in the request's order next to the local part's; bytes that do not add up
 * to the payload fail the part (never read past it). */
Test(route, fetch_slices_merge_and_bounds)
{
    Runnel__FetchPartition fp[3], *fpp[3];
    int32_t ps[] = {1, 0, 4};
    for (int i = 0; i < 3; i++) {
        runnel__fetch_partition__init(&fp[i]);
        fp[i].topic = "t";
        fp[i].partition = ps[i];
        fpp[i] = &fp[i];
    }
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.n_partitions = 3;
    fr.partitions = fpp;
    Runnel__RequestHeader rh = RUNNEL__REQUEST_HEADER__INIT;
    rh.api = RUNNEL__API__FETCH;
    rh.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    rh.fetch = &fr;

    /* The peer (broker 1: partitions 1 and 4) answers 3 + 2 bytes. */
    Runnel__FetchPartitionResponse e[2], *ep[2];
    for (int i = 0; i < 2; i++) {
        runnel__fetch_partition_response__init(&e[i]);
        e[i].topic = "t";
        ep[i] = &e[i];
    }
    e[0].partition = 1;
    e[0].bytes_len = 3;
    e[1].partition = 4;
    e[1].bytes_len = 2;
    Runnel__FetchResponse r = RUNNEL__FETCH_RESPONSE__INIT;
    r.n_partitions = 2;
    r.partitions = ep;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    h.fetch = &r;
    uint8_t hb[256];
    size_t hl = runnel__response_header__pack(&h, hb);

    /* The local part (partition 0) answers 4 bytes in one slice. */
    Runnel__FetchPartitionResponse le = RUNNEL__FETCH_PARTITION_RESPONSE__INIT, *lep = &le;
    le.topic = "t";
    le.partition = 0;
    le.bytes_len = 4;
    Runnel__FetchResponse lr = RUNNEL__FETCH_RESPONSE__INIT;
    lr.n_partitions = 1;
    lr.partitions = &lep;
    Runnel__ResponseHeader lh = RUNNEL__RESPONSE_HEADER__INIT;
    lh.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    lh.fetch = &lr;
    rn_slice ls = {.data = (const uint8_t *)"LLLL", .len = 4};

    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &rh, lead, NULL), 0);
    uint8_t *pl = malloc(5);
    memcpy(pl, "AAABB", 5);
    cr_assert_eq(rn_gw_route_take_packed(&rt, part_of_leader(&rt, 1), hb, hl, pl, 5), 0);
    cr_assert_eq(rn_gw_route_take_local(&rt, part_of_leader(&rt, RN_GW_ROUTE_LOCAL), &lh, &ls, 1),
                 0);
    Runnel__ResponseHeader *out;
    rn_slice *sl;
    unsigned nsl;
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->fetch->n_partitions, 3);
    cr_assert_eq(nsl, 3);
    cr_assert_eq(sl[0].len, 3);
    cr_assert_arr_eq(sl[0].data, "AAA", 3);
    cr_assert_eq(sl[1].len, 4);
    cr_assert_arr_eq(sl[1].data, "LLLL", 4);
    cr_assert_eq(sl[2].len, 2);
    cr_assert_arr_eq(sl[2].data, "BB", 2);
    for (unsigned i = 0; i < nsl; i++)
        rn_slice_release(&sl[i]);
    rn_gw_route_fini(&rt);

    /* The header claims 5 bytes; the payload has 4 (or 6): the part fails. */
    for (size_t plen = 4; plen <= 6; plen += 2) {
        cr_assert_eq(rn_gw_route_plan(&rt, &rh, lead, NULL), 0);
        pl = malloc(plen);
        memset(pl, 'x', plen);
        size_t k = part_of_leader(&rt, 1);
        cr_assert_eq(rn_gw_route_take_packed(&rt, k, hb, hl, pl, plen), 0);
        cr_assert_eq(rt.parts[k].err, -RN_E_INVALID_REQUEST);
        cr_assert(strstr(rt.parts[k].errmsg, "the header accounts for 5"), "%s",
                  rt.parts[k].errmsg);
        rn_gw_route_fini(&rt);
    }
}

/* A Fetch answered early (one part brought records, another is still out):
 * the part still out gives its partitions entries with no error and no
 * bytes, and only the answered part's bytes are handed on. */
Test(route, fetch_merge_with_a_part_still_out)
{
    Runnel__FetchPartition fp[2], *fpp[2];
    int32_t ps[] = {1, 2};
    for (int i = 0; i < 2; i++) {
        runnel__fetch_partition__init(&fp[i]);
        fp[i].topic = "t";
        fp[i].partition = ps[i];
        fpp[i] = &fp[i];
    }
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.n_partitions = 2;
    fr.partitions = fpp;
    Runnel__RequestHeader rh = RUNNEL__REQUEST_HEADER__INIT;
    rh.api = RUNNEL__API__FETCH;
    rh.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    rh.fetch = &fr;
    Runnel__FetchPartitionResponse e = RUNNEL__FETCH_PARTITION_RESPONSE__INIT, *ep = &e;
    e.topic = "t";
    e.partition = 2;
    e.bytes_len = 3;
    e.high_watermark = 9;
    Runnel__FetchResponse r = RUNNEL__FETCH_RESPONSE__INIT;
    r.n_partitions = 1;
    r.partitions = &ep;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    h.fetch = &r;
    uint8_t hb[128];
    size_t hl = runnel__response_header__pack(&h, hb);

    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &rh, lead, NULL), 0);
    uint8_t *pl = malloc(3);
    memcpy(pl, "abc", 3);
    cr_assert_eq(rn_gw_route_take_packed(&rt, part_of_leader(&rt, 2), hb, hl, pl, 3), 0);
    cr_assert_not(rt.parts[part_of_leader(&rt, 1)].done);
    Runnel__ResponseHeader *out;
    rn_slice *sl;
    unsigned nsl;
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->error_code, 0);
    cr_assert_eq(out->fetch->n_partitions, 2);
    Runnel__FetchPartitionResponse *p1 = out->fetch->partitions[0], *p2 = out->fetch->partitions[1];
    cr_assert_eq(p1->partition, 1);
    cr_assert_eq(p1->error_code, 0);
    cr_assert_eq(p1->bytes_len, 0);
    cr_assert_eq(p2->partition, 2);
    cr_assert_eq(p2->bytes_len, 3);
    cr_assert_eq(p2->high_watermark, 9);
    cr_assert_eq(nsl, 1);
    cr_assert_arr_eq(sl[0].data, "abc", 3);
    rn_gw_route_fini(&rt);
}

/* Group APIs go whole to the coordinator: leader(arg, "__offsets", 0). */
static int32_t offsets_led_by_2(void *arg, const char *topic, int32_t p)
{
    (void)arg;
    return strcmp(topic, "__offsets") == 0 && p == 0 ? 2 : RN_GW_ROUTE_LOCAL;
}

static int32_t offsets_here(void *arg, const char *topic, int32_t p)
{
    (void)arg;
    (void)topic;
    (void)p;
    return RN_GW_ROUTE_NONE;
}

/* Sub-requests handed to the sender are the request itself. */
static int same_request(void *arg, Runnel__RequestHeader *sub, const void *payload, size_t len)
{
    (void)payload;
    cr_assert_eq(len, 0);
    cr_assert_str_eq(sub->fetch_offsets->group_id, (const char *)arg);
    return 0;
}

// A group API is one part, sent whole to the __offsets leader; its answer comes back as it is.
Test(route, group_api_goes_whole_to_the_coordinator)
{
    cr_assert(rn_gw_route_api(RUNNEL__API__FETCH_OFFSETS));
    cr_assert(rn_gw_route_api(RUNNEL__API__GROUP_HEARTBEAT));
    Runnel__FetchOffsetsRequest fo = RUNNEL__FETCH_OFFSETS_REQUEST__INIT;
    fo.group_id = "g";
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH_OFFSETS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH_OFFSETS;
    h.fetch_offsets = &fo;
    rn_gw_route rt;
    cr_assert_eq(rn_gw_route_plan(&rt, &h, offsets_led_by_2, NULL), 0);
    cr_assert(rt.whole);
    cr_assert_eq(rt.n_parts, 1);
    cr_assert_eq(rt.parts[0].leader, 2);
    cr_assert_not(rn_gw_route_all_local(&rt));
    cr_assert_eq(rn_gw_route_sub(&rt, 0, &h, NULL, 0, same_request, "g"), 0);
    /* The coordinator's answer: one committed offset. */
    Runnel__OffsetCommit oc = RUNNEL__OFFSET_COMMIT__INIT, *ocp = &oc;
    oc.topic = "t";
    oc.partition = 3;
    oc.offset = 42;
    Runnel__FetchOffsetsResponse fr = RUNNEL__FETCH_OFFSETS_RESPONSE__INIT;
    fr.n_offsets = 1;
    fr.offsets = &ocp;
    Runnel__ResponseHeader a = RUNNEL__RESPONSE_HEADER__INIT;
    a.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH_OFFSETS;
    a.fetch_offsets = &fr;
    size_t len = runnel__response_header__get_packed_size(&a);
    uint8_t *b = malloc(len);
    runnel__response_header__pack(&a, b);
    cr_assert_eq(rn_gw_route_take_packed(&rt, 0, b, len, NULL, 0), 0);
    free(b);
    Runnel__ResponseHeader *out;
    rn_slice *sl;
    unsigned nsl;
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->error_code, 0);
    cr_assert_eq(out->fetch_offsets->n_offsets, 1);
    cr_assert_eq(out->fetch_offsets->offsets[0]->offset, 42);
    cr_assert_eq(nsl, 0);
    rn_gw_route_fini(&rt);

    /* NOT_COORDINATOR from it (it moved): the caller gets it whole. */
    cr_assert_eq(rn_gw_route_plan(&rt, &h, offsets_led_by_2, NULL), 0);
    Runnel__ResponseHeader e = RUNNEL__RESPONSE_HEADER__INIT;
    e.error_code = RN_E_NOT_COORDINATOR;
    e.error_message = "broker 3 coordinates group g";
    len = runnel__response_header__get_packed_size(&e);
    b = malloc(len);
    runnel__response_header__pack(&e, b);
    cr_assert_eq(rn_gw_route_take_packed(&rt, 0, b, len, NULL, 0), 0);
    free(b);
    cr_assert_eq(rn_gw_route_merge(&rt, &out, &sl, &nsl), 0);
    cr_assert_eq(out->error_code, RN_E_NOT_COORDINATOR);
    cr_assert_str_eq(out->error_message, "broker 3 coordinates group g");
    rn_gw_route_fini(&rt);

    /* Another API's body: the part fails, naming the broker. */
    cr_assert_eq(rn_gw_route_plan(&rt, &h, offsets_led_by_2, NULL), 0);
    int32_t ps[] = {0};
    b = lo_answer("t", ps, 1, &len);
    cr_assert_eq(rn_gw_route_take_packed(&rt, 0, b, len, NULL, 0), 0);
    free(b);
    cr_assert_eq(rt.parts[0].err, -RN_E_INVALID_REQUEST);
    cr_assert(strstr(rt.parts[0].errmsg, "malformed answer from broker 2"), "%s",
              rt.parts[0].errmsg);
    rn_gw_route_fini(&rt);

    /* No leader now: served here (which answers COORDINATOR_NOT_AVAILABLE). */
    cr_assert_eq(rn_gw_route_plan(&rt, &h, offsets_here, NULL), 0);
    cr_assert(rn_gw_route_all_local(&rt));
    rn_gw_route_fini(&rt);
}
