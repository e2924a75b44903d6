/*
 * route.c — a gateway request split by partition leader, answers merged back
 * (see route.h for the rules).
 *
 * The three routed APIs have the same shape: a request body with a repeated
 * partitions field of (topic, partition, ...), an answer body with a repeated
 * partitions field of (topic, partition, error_code, ...) in the request's
 * order. The per-API code is in the small accessors below; the rest is
 * generic over "entry i of the request" and "entry j of an answer".
 *
 * Invariants:
 *   1. Every request partition is in exactly one part; parts' idx are
 *      ascending, so a part's sub-request keeps the request's order.
 *   2. A part's answer is checked before anything reads it (check_answer):
 *      body case, entry count, each entry's topic and partition, and for
 *      Fetch the slices against bytes_len. A part that fails the check is
 *      failed, and its slices released, so merge reads only checked answers.
 *   3. Merge hands each slice reference on exactly once; fini releases only
 *      those not handed on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/route.h"
#include "broker/coord/offsets.h"
#include "protocol/errors.h"

/* ---- Per-API accessors ---------------------------------------------------------------------- */

/* The group APIs: sent whole to the group's coordinator. */
static bool whole_api(int api)
{
    return api == RUNNEL__API__GROUP_HEARTBEAT || api == RUNNEL__API__COMMIT_OFFSETS ||
           api == RUNNEL__API__FETCH_OFFSETS || api == RUNNEL__API__LIST_GROUPS ||
           api == RUNNEL__API__DESCRIBE_GROUP || api == RUNNEL__API__DELETE_GROUP;
}

bool rn_gw_route_api(int api)
{
    return api == RUNNEL__API__PRODUCE || api == RUNNEL__API__FETCH ||
           api == RUNNEL__API__LIST_OFFSETS || whole_api(api);
}

/* The request's partition count, or -1 without the API's body. */
static long req_count(const Runnel__RequestHeader *h)
{
    switch (h->api) {
    case RUNNEL__API__PRODUCE:
        return h->body_case == RUNNEL__REQUEST_HEADER__BODY_PRODUCE && h->produce
                   ? (long)h->produce->n_partitions
                   : -1;
    case RUNNEL__API__FETCH:
        return h->body_case == RUNNEL__REQUEST_HEADER__BODY_FETCH && h->fetch
                   ? (long)h->fetch->n_partitions
                   : -1;
    case RUNNEL__API__LIST_OFFSETS:
        return h->body_case == RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS && h->list_offsets
                   ? (long)h->list_offsets->n_partitions
                   : -1;
    default:
        return -1;
    }
}

static void req_entry(const Runnel__RequestHeader *h, size_t i, const char **topic, int32_t *part)
{
    switch (h->api) {
    case RUNNEL__API__PRODUCE:
        *topic = h->produce->partitions[i]->topic;
        *part = h->produce->partitions[i]->partition;
        return;
    case RUNNEL__API__FETCH:
        *topic = h->fetch->partitions[i]->topic;
        *part = h->fetch->partitions[i]->partition;
        return;
    default:
        *topic = h->list_offsets->partitions[i]->topic;
        *part = h->list_offsets->partitions[i]->partition;
        return;
    }
}

static Runnel__ResponseHeader__BodyCase body_case_of(int api)
{
    switch (api) {
    case RUNNEL__API__PRODUCE:
        return RUNNEL__RESPONSE_HEADER__BODY_PRODUCE;
    case RUNNEL__API__FETCH:
        return RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    default:
        return RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS;
    }
}

/* An answer's entries (body checked by the caller). */
static size_t ans_count(int api, const Runnel__ResponseHeader *a)
{
    switch (api) {
    case RUNNEL__API__PRODUCE:
        return a->produce ? a->produce->n_partitions : 0;
    case RUNNEL__API__FETCH:
        return a->fetch ? a->fetch->n_partitions : 0;
    default:
        return a->list_offsets ? a->list_offsets->n_partitions : 0;
    }
}

static void *ans_entry(int api, const Runnel__ResponseHeader *a, size_t j, const char **topic,
                       int32_t *part)
{
    switch (api) {
    case RUNNEL__API__PRODUCE: {
        Runnel__ProducePartitionResponse *e = a->produce->partitions[j];
        *topic = e ? e->topic : NULL;
        *part = e ? e->partition : -1;
        return e;
    }
    case RUNNEL__API__FETCH: {
        Runnel__FetchPartitionResponse *e = a->fetch->partitions[j];
        *topic = e ? e->topic : NULL;
        *part = e ? e->partition : -1;
        return e;
    }
    default: {
        Runnel__ListOffsetsPartitionResponse *e = a->list_offsets->partitions[j];
        *topic = e ? e->topic : NULL;
        *part = e ? e->partition : -1;
        return e;
    }
    }
}

/* ---- Plan ----------------------------------------------------------------------------------- */

int rn_gw_route_plan(rn_gw_route *rt, const Runnel__RequestHeader *h, rn_gw_leader_fn leader,
                     void *arg)
{
    memset(rt, 0, sizeof(*rt));
    rt->api = h->api;
    if (whole_api(h->api)) {
        /* One part: the coordinator, the leader of __offsets-0 (the topic's
         * only partition, so every group's); with no leader now, served
         * here, which answers COORDINATOR_NOT_AVAILABLE. */
        rt->whole = true;
        rt->parts = calloc(1, sizeof(*rt->parts));
        if (!rt->parts || !(rt->parts[0].idx = calloc(1, sizeof(size_t))))
            return -ENOMEM;
        int32_t l = leader(arg, RN_OFFSETS_TOPIC, 0);
        rt->parts[0].leader = l == RN_GW_ROUTE_NONE ? RN_GW_ROUTE_LOCAL : l;
        rt->n_parts = 1;
        return 0;
    }
    long n = req_count(h);
    if (n < 0)
        return -RN_E_INVALID_REQUEST;
    rt->n_req = (size_t)n;
    size_t cap = rt->n_req ? rt->n_req : 1;
    rt->topics = calloc(cap, sizeof(*rt->topics));
    rt->partition = calloc(cap, sizeof(*rt->partition));
    int32_t *lead = calloc(cap, sizeof(*lead));
    rt->parts = calloc(RN_GW_ROUTE_MAX_PARTS, sizeof(*rt->parts));
    if (!rt->topics || !rt->partition || !lead || !rt->parts) {
        free(lead);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < rt->n_req; i++) {
        const char *t;
        req_entry(h, i, &t, &rt->partition[i]);
        rt->topics[i] = strdup(t ? t : "");
        if (!rt->topics[i]) {
            rc = -ENOMEM;
            goto out;
        }
        lead[i] = leader(arg, rt->topics[i], rt->partition[i]);
        size_t k = 0;
        while (k < rt->n_parts && rt->parts[k].leader != lead[i])
            k++;
        if (k == rt->n_parts) {
            if (k == RN_GW_ROUTE_MAX_PARTS) {
                rc = -E2BIG;
                goto out;
            }
            rt->parts[k].leader = lead[i];
            rt->n_parts++;
        }
        rt->parts[k].n++;
    }
    if (rt->n_req == 0) { /* nothing to route: one local part answers the empty request */
        rt->parts[0].leader = RN_GW_ROUTE_LOCAL;
        rt->n_parts = 1;
    }
    for (size_t k = 0; k < rt->n_parts; k++) {
        rt->parts[k].idx = calloc(rt->parts[k].n ? rt->parts[k].n : 1, sizeof(size_t));
        if (!rt->parts[k].idx) {
            rc = -ENOMEM;
            goto out;
        }
        rt->parts[k].n = 0;
    }
    for (size_t i = 0; i < rt->n_req; i++) {
        size_t k = 0;
        while (rt->parts[k].leader != lead[i])
            k++;
        rt->parts[k].idx[rt->parts[k].n++] = i;
    }
out:
    free(lead);
    return rc;
}

bool rn_gw_route_all_local(const rn_gw_route *rt)
{
    return rt->n_parts == 1 && rt->parts[0].leader == RN_GW_ROUTE_LOCAL;
}

/* ---- Sub-requests --------------------------------------------------------------------------- */

int rn_gw_route_sub(const rn_gw_route *rt, size_t k, const Runnel__RequestHeader *h,
                    const void *payload, size_t payload_len, rn_gw_sub_fn fn, void *arg)
{
    const rn_gw_route_part *pt = &rt->parts[k];
    Runnel__RequestHeader sub = *h;
    if (rt->whole)
        return fn(arg, &sub, payload, payload_len);
    size_t n = pt->n;
    void **ptrs = calloc(n ? n : 1, sizeof(void *));
    size_t *pos = NULL;
    uint8_t *sub_payload = NULL;
    size_t sub_len = 0;
    int rc;
    if (!ptrs)
        return -ENOMEM;
    switch (h->api) {
    case RUNNEL__API__PRODUCE: {
        /* Each partition's batch sits at the sum of the lengths before it. */
        Runnel__ProduceRequest pr = *h->produce;
        pos = calloc(rt->n_req + 1, sizeof(*pos));
        if (!pos) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < rt->n_req; i++) {
            size_t bl = h->produce->partitions[i]->batch_len;
            if (bl > payload_len - pos[i]) {
                rc = -RN_E_INVALID_REQUEST;
                goto out;
            }
            pos[i + 1] = pos[i] + bl;
        }
        if (pos[rt->n_req] != payload_len) {
            rc = -RN_E_INVALID_REQUEST;
            goto out;
        }
        for (size_t j = 0; j < n; j++)
            sub_len += h->produce->partitions[pt->idx[j]]->batch_len;
        sub_payload = malloc(sub_len ? sub_len : 1);
        if (!sub_payload) {
            rc = -ENOMEM;
            goto out;
        }
        size_t at = 0;
        for (size_t j = 0; j < n; j++) {
            size_t i = pt->idx[j];
            ptrs[j] = h->produce->partitions[i];
            if (pos[i + 1] > pos[i])
                memcpy(sub_payload + at, (const uint8_t *)payload + pos[i], pos[i + 1] - pos[i]);
            at += pos[i + 1] - pos[i];
        }
        pr.n_partitions = n;
        pr.partitions = (Runnel__ProducePartition **)ptrs;
        sub.produce = &pr;
        rc = fn(arg, &sub, sub_payload, sub_len);
        goto out;
    }
    case RUNNEL__API__FETCH: {
        Runnel__FetchRequest fr = *h->fetch;
        for (size_t j = 0; j < n; j++)
            ptrs[j] = h->fetch->partitions[pt->idx[j]];
        fr.n_partitions = n;
        fr.partitions = (Runnel__FetchPartition **)ptrs;
        if (pt->no_wait)
            fr.max_wait_ms = 0;
        sub.fetch = &fr;
        rc = fn(arg, &sub, payload, payload_len);
        goto out;
    }
    default: {
        Runnel__ListOffsetsRequest lr = *h->list_offsets;
        for (size_t j = 0; j < n; j++)
            ptrs[j] = h->list_offsets->partitions[pt->idx[j]];
        lr.n_partitions = n;
        lr.partitions = (Runnel__ListOffsetsPartition **)ptrs;
        sub.list_offsets = &lr;
        rc = fn(arg, &sub, payload, payload_len);
        goto out;
    }
    }
out:
    free(ptrs);
    free(pos);
    free(sub_payload);
    return rc;
}

/* ---- Answers -------------------------------------------------------------------------------- */

static void release_slices(rn_gw_route_part *pt)
{
    for (unsigned i = 0; i < pt->n_slices; i++)
        rn_slice_release(&pt->slices[i]);
    free(pt->slices);
    pt->slices = NULL;
    pt->n_slices = 0;
}

static void fail_fmt(rn_gw_route *rt, size_t k, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_fmt(rn_gw_route *rt, size_t k, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rn_gw_route_fail(rt, k, err, msg);
}

void rn_gw_route_fail(rn_gw_route *rt, size_t k, int err, const char *msg)
{
    rn_gw_route_part *pt = &rt->parts[k];
    if (pt->hdr) {
        runnel__response_header__free_unpacked(pt->hdr, NULL);
        pt->hdr = NULL;
    }
    release_slices(pt);
    free(pt->payload);
    pt->payload = NULL;
    free(pt->errmsg);
    pt->err = err < 0 ? err : -RN_E_UNKNOWN;
    pt->errmsg = strdup(msg && *msg ? msg : rn_strerror(pt->err));
    pt->done = true;
}

/* Rule 2: the answer hdr of part k answers its partitions, in order. */
static void check_answer(rn_gw_route *rt, size_t k)
{
    rn_gw_route_part *pt = &rt->parts[k];
    char who[48];
    if (pt->leader >= 0)
        snprintf(who, sizeof(who), "broker %d", pt->leader);
    else
        snprintf(who, sizeof(who), "this broker");
    Runnel__ResponseHeader *a = pt->hdr;
    if (a->error_code) {
        /* A whole-request error: the part failed with it. */
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", a->error_message ? a->error_message : "");
        rn_gw_route_fail(rt, k, -(int)a->error_code, msg);
        return;
    }
    if (rt->whole) {
        /* A group answer goes to the caller as it is (its body = 9 + api). */
        if ((int)a->body_case != rt->api + 9)
            fail_fmt(rt, k, -RN_E_INVALID_REQUEST,
                     "malformed answer from %s: not the answer of API %d", who, rt->api);
        return;
    }
    if (a->body_case != body_case_of(rt->api)) {
        fail_fmt(rt, k, -RN_E_INVALID_REQUEST, "malformed answer from %s: not a %s answer", who,
                 rt->api == RUNNEL__API__PRODUCE ? "Produce"
                 : rt->api == RUNNEL__API__FETCH ? "Fetch"
                                                 : "ListOffsets");
        return;
    }
    size_t n = ans_count(rt->api, a);
    if (n != pt->n) {
        fail_fmt(rt, k, -RN_E_INVALID_REQUEST,
                 "malformed answer from %s: %zu partitions for the %zu asked", who, n, pt->n);
        return;
    }
    unsigned want_slices = 0;
    for (size_t j = 0; j < n; j++) {
        const char *t;
        int32_t p;
        void *e = ans_entry(rt->api, a, j, &t, &p);
        size_t i = pt->idx[j];
        if (!e || !t || strcmp(t, rt->topics[i]) != 0 || p != rt->partition[i]) {
            fail_fmt(rt, k, -RN_E_INVALID_REQUEST,
                     "malformed answer from %s: entry %zu is not %s-%d", who, j, rt->topics[i],
                     rt->partition[i]);
            return;
        }
        if (rt->api == RUNNEL__API__FETCH && ((Runnel__FetchPartitionResponse *)e)->bytes_len) {
            uint32_t bl = ((Runnel__FetchPartitionResponse *)e)->bytes_len;
            if (want_slices >= pt->n_slices || pt->slices[want_slices].len != bl) {
                fail_fmt(rt, k, -RN_E_INVALID_REQUEST,
                         "malformed answer from %s: %s-%d's %u bytes are not in the answer", who,
                         rt->topics[i], rt->partition[i], bl);
                return;
            }
            want_slices++;
        }
    }
    if (want_slices != pt->n_slices)
        fail_fmt(rt, k, -RN_E_INVALID_REQUEST,
                 "malformed answer from %s: %u byte ranges for %u partitions with bytes", who,
                 pt->n_slices, want_slices);
}

int rn_gw_route_take_local(rn_gw_route *rt, size_t k, const Runnel__ResponseHeader *hdr,
                           rn_slice *slices, unsigned n_slices)
{
    rn_gw_route_part *pt = &rt->parts[k];
    /* The answer is borrowed for the sink's call only: a packed copy,
     * unpacked, is ours until fini. */
    size_t len = runnel__response_header__get_packed_size(hdr);
    uint8_t *buf = malloc(len ? len : 1);
    pt->slices = calloc(n_slices ? n_slices : 1, sizeof(*pt->slices));
    if (!buf || !pt->slices) {
        free(buf);
        for (unsigned i = 0; i < n_slices; i++)
            rn_slice_release(&slices[i]);
        rn_gw_route_fail(rt, k, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    runnel__response_header__pack(hdr, buf);
    pt->hdr = runnel__response_header__unpack(NULL, len, buf);
    free(buf);
    if (n_slices)
        memcpy(pt->slices, slices, n_slices * sizeof(*slices));
    pt->n_slices = n_slices;
    pt->done = true;
    if (!pt->hdr) {
        rn_gw_route_fail(rt, k, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    check_answer(rt, k);
    return 0;
}

int rn_gw_route_take_packed(rn_gw_route *rt, size_t k, const uint8_t *hdr_bytes, size_t hdr_len,
                            uint8_t *payload, size_t payload_len)
{
    rn_gw_route_part *pt = &rt->parts[k];
    pt->payload = payload;
    pt->done = true;
    pt->hdr = runnel__response_header__unpack(NULL, hdr_len, hdr_bytes);
    if (!pt->hdr) {
        fail_fmt(rt, k, -RN_E_INVALID_REQUEST, "malformed answer from broker %d: bad header",
                 pt->leader);
        return 0;
    }
    /* Slices over the payload, one per Fetch entry with bytes, in order;
     * the lengths must add up to the payload exactly. */
    size_t want = 0, n_with = 0;
    if (!pt->hdr->error_code && pt->hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_FETCH &&
        pt->hdr->fetch) {
        for (size_t j = 0; j < pt->hdr->fetch->n_partitions; j++) {
            const Runnel__FetchPartitionResponse *e = pt->hdr->fetch->partitions[j];
            if (e && e->bytes_len) {
                want += e->bytes_len;
                n_with++;
            }
        }
    }
    if (want != payload_len) {
        fail_fmt(rt, k, -RN_E_INVALID_REQUEST,
                 "malformed answer from broker %d: %zu payload bytes, the header accounts for %zu",
                 pt->leader, payload_len, want);
        return 0;
    }
    if (n_with) {
        pt->slices = calloc(n_with, sizeof(*pt->slices));
        if (!pt->slices) {
            rn_gw_route_fail(rt, k, -ENOMEM, "out of memory");
            return -ENOMEM;
        }
        size_t at = 0;
        for (size_t j = 0; j < pt->hdr->fetch->n_partitions; j++) {
            const Runnel__FetchPartitionResponse *e = pt->hdr->fetch->partitions[j];
            if (!e || !e->bytes_len)
                continue;
            rn_slice *s = &pt->slices[pt->n_slices++];
            s->data = payload + at;
            s->len = e->bytes_len;
            s->base_offset = s->next_offset = -1;
            s->seg = NULL; /* the bytes are the route's (pt->payload) */
            at += e->bytes_len;
        }
    }
    check_answer(rt, k);
    return 0;
}

/* ---- Merge ---------------------------------------------------------------------------------- */

/* An entry for request partition i of a failed part. */
static void *synth_entry(rn_gw_route *rt, size_t i, const rn_gw_route_part *pt)
{
    switch (rt->api) {
    case RUNNEL__API__PRODUCE: {
        Runnel__ProducePartitionResponse *e = (Runnel__ProducePartitionResponse *)rt->synth + i;
        runnel__produce_partition_response__init(e);
        e->topic = rt->topics[i];
        e->partition = rt->partition[i];
        e->error_code = (uint32_t)-pt->err;
        e->error_message = pt->errmsg ? pt->errmsg : "";
        e->base_offset = e->log_append_time = e->log_start_offset = -1;
        return e;
    }
    case RUNNEL__API__FETCH: {
        Runnel__FetchPartitionResponse *e = (Runnel__FetchPartitionResponse *)rt->synth + i;
        runnel__fetch_partition_response__init(e);
        e->topic = rt->topics[i];
        e->partition = rt->partition[i];
        e->error_code = (uint32_t)-pt->err;
        e->high_watermark = e->log_start_offset = e->log_end_offset = -1;
        return e;
    }
    default: {
        Runnel__ListOffsetsPartitionResponse *e =
            (Runnel__ListOffsetsPartitionResponse *)rt->synth + i;
        runnel__list_offsets_partition_response__init(e);
        e->topic = rt->topics[i];
        e->partition = rt->partition[i];
        e->error_code = (uint32_t)-pt->err;
        e->offset = e->timestamp = -1;
        e->leader_epoch = -1;
        return e;
    }
    }
}

int rn_gw_route_merge(rn_gw_route *rt, Runnel__ResponseHeader **out, rn_slice **slices,
                      unsigned *n_slices)
{
    Runnel__ResponseHeader init = RUNNEL__RESPONSE_HEADER__INIT;
    rt->out = init;
    *out = &rt->out;
    *slices = NULL;
    *n_slices = 0;
    size_t failed = 0;
    for (size_t k = 0; k < rt->n_parts; k++)
        failed += rt->parts[k].err < 0 || !rt->parts[k].done;
    if (failed == rt->n_parts) {
        /* Rule 3: every part failed: the first failure, whole. */
        size_t f = 0;
        while (f + 1 < rt->n_parts && rt->parts[f].err >= 0)
            f++;
        rt->out.error_code =
            rt->parts[f].err < 0 ? (uint32_t)-rt->parts[f].err : (uint32_t)RN_E_TIMEOUT;
        rt->out.error_message = rt->parts[f].errmsg ? rt->parts[f].errmsg : "";
        return 0;
    }
    if (rt->whole) { /* the coordinator's answer, whole (valid until fini) */
        *out = rt->parts[0].hdr;
        return 0;
    }
    size_t n = rt->n_req ? rt->n_req : 1;
    size_t esz = rt->api == RUNNEL__API__PRODUCE ? sizeof(Runnel__ProducePartitionResponse)
                 : rt->api == RUNNEL__API__FETCH ? sizeof(Runnel__FetchPartitionResponse)
                                                 : sizeof(Runnel__ListOffsetsPartitionResponse);
    unsigned total_slices = 0;
    for (size_t k = 0; k < rt->n_parts; k++)
        total_slices += rt->parts[k].n_slices;
    rt->ptrs = calloc(n, sizeof(void *));
    rt->synth = calloc(n, esz);
    rt->out_slices = calloc(total_slices ? total_slices : 1, sizeof(rn_slice));
    if (!rt->ptrs || !rt->synth || !rt->out_slices)
        return -ENOMEM;
    /* Where each request partition's entry is: its part and its place in it. */
    for (size_t k = 0; k < rt->n_parts; k++) {
        rn_gw_route_part *pt = &rt->parts[k];
        for (size_t j = 0; j < pt->n; j++) {
            size_t i = pt->idx[j];
            if (pt->err < 0 || !pt->done) {
                rt->ptrs[i] = synth_entry(rt, i, pt); /* not done: no error, nothing */
            } else {
                const char *t;
                int32_t p;
                rt->ptrs[i] = ans_entry(rt->api, pt->hdr, j, &t, &p);
            }
        }
    }
    /* Fetch: the slices in request order (each part's are in its order). */
    if (rt->api == RUNNEL__API__FETCH) {
        unsigned *next = calloc(rt->n_parts, sizeof(unsigned));
        size_t *part_of = calloc(n, sizeof(size_t));
        if (!next || !part_of) {
            free(next);
            free(part_of);
            return -ENOMEM;
        }
        for (size_t k = 0; k < rt->n_parts; k++)
            for (size_t j = 0; j < rt->parts[k].n; j++)
                part_of[rt->parts[k].idx[j]] = k;
        unsigned m = 0;
        for (size_t i = 0; i < rt->n_req; i++) {
            rn_gw_route_part *pt = &rt->parts[part_of[i]];
            Runnel__FetchPartitionResponse *e = rt->ptrs[i];
            if (pt->err < 0 || !pt->done || !e->bytes_len)
                continue;
            rt->out_slices[m++] = pt->slices[next[part_of[i]]];
            pt->slices[next[part_of[i]]++].seg = NULL; /* handed on (invariant 3) */
        }
        free(next);
        free(part_of);
        *slices = rt->out_slices;
        *n_slices = m;
    }
    switch (rt->api) {
    case RUNNEL__API__PRODUCE: {
        Runnel__ProduceResponse *b = calloc(1, sizeof(*b));
        if (!b)
            return -ENOMEM;
        runnel__produce_response__init(b);
        b->n_partitions = rt->n_req;
        b->partitions = (Runnel__ProducePartitionResponse **)rt->ptrs;
        rt->body = b;
        rt->out.produce = b;
        break;
    }
    case RUNNEL__API__FETCH: {
        Runnel__FetchResponse *b = calloc(1, sizeof(*b));
        if (!b)
            return -ENOMEM;
        runnel__fetch_response__init(b);
        b->n_partitions = rt->n_req;
        b->partitions = (Runnel__FetchPartitionResponse **)rt->ptrs;
        rt->body = b;
        rt->out.fetch = b;
        break;
    }
    default: {
        Runnel__ListOffsetsResponse *b = calloc(1, sizeof(*b));
        if (!b)
            return -ENOMEM;
        runnel__list_offsets_response__init(b);
        b->n_partitions = rt->n_req;
        b->partitions = (Runnel__ListOffsetsPartitionResponse **)rt->ptrs;
        rt->body = b;
        rt->out.list_offsets = b;
        break;
    }
    }
    rt->out.body_case = body_case_of(rt->api);
    return 0;
}

void rn_gw_route_fini(rn_gw_route *rt)
{
    for (size_t k = 0; rt->parts && k < rt->n_parts; k++) {
        rn_gw_route_part *pt = &rt->parts[k];
        free(pt->idx);
        free(pt->errmsg);
        if (pt->hdr)
            runnel__response_header__free_unpacked(pt->hdr, NULL);
        release_slices(pt);
        free(pt->payload);
    }
    free(rt->parts);
    for (size_t i = 0; rt->topics && i < rt->n_req; i++)
        free(rt->topics[i]);
    free(rt->topics);
    free(rt->partition);
    free(rt->body);
    free(rt->ptrs);
    free(rt->synth);
    free(rt->out_slices);
    free(rt->out_msg);
    memset(rt, 0, sizeof(*rt));
}
