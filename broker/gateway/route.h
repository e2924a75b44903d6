/*
 * route.h — splitting a gateway request by partition leader and merging the
 * answers back (internal to broker/gateway/; route.c). Sans-I/O: no socket,
 * no thread, no reactor, so tests feed it any answer a peer could send.
 *
 * In a cluster a gateway request may name partitions led by several brokers
 * (a consumer instance fetching its assignment, a REST produce whose records
 * go to several partitions, a group reset's ListOffsets). route.c groups the
 * request's partitions by leader ("parts"), builds each part's sub-request
 * (same fields, its partitions only; a Produce's payload cut to its batches),
 * takes each part's answer or failure, and merges them into one answer in the
 * request's own partition order, as if one broker had served all of them.
 *
 * Per-partition APIs are split (rn_gw_route_api): Produce, Fetch,
 * ListOffsets. The group APIs (GroupHeartbeat, CommitOffsets, FetchOffsets,
 * ListGroups, DescribeGroup, DeleteGroup) go whole to the group coordinator,
 * the leader of __offsets-0 (leader(arg, "__offsets", 0)), and its answer
 * comes back as it is ("whole" routes: one part, no merge), since every
 * other broker answers them NOT_COORDINATOR. Everything else is served
 * where it is asked.
 *
 * Rules the merge keeps:
 *   1. The merged answer lists the request's partitions, in its order, once
 *      each: callers index answers by position (produce.c's rec_slot).
 *   2. A part's answer is used only if it answers exactly its partitions in
 *      order with the API's body (and, for Fetch, bytes that add up to the
 *      payload); otherwise the part counts as failed with a message naming the
 *      broker ("malformed answer ..."), never read past its bounds.
 *   3. A failed part (unreachable leader, timeout, whole-request error, a
 *      malformed answer) gives each of its partitions that error; when every
 *      part failed, the merged answer is the first failure as a whole-request
 *      error with its message (so a one-leader request fails as it would have
 *      on the leader).
 *
 * Threading: none of its own; a route belongs to whoever holds it.
 */
#ifndef RN_GATEWAY_ROUTE_H
#define RN_GATEWAY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

/* Most parts (distinct leaders) of one request: a request naming more is
 * refused (-E2BIG) before anything is sent. */
#define RN_GW_ROUTE_MAX_PARTS 64

/* The leader of topic-partition: a broker id; RN_GW_ROUTE_LOCAL to serve it
 * here (this broker leads it, or no cluster, or the topic is unknown here and
 * the local handler gives the error); RN_GW_ROUTE_NONE when the partition has
 * no leader now. */
#define RN_GW_ROUTE_LOCAL (-2)
#define RN_GW_ROUTE_NONE  (-1)
typedef int32_t (*rn_gw_leader_fn)(void *arg, const char *topic, int32_t partition);

typedef struct rn_gw_route_part {
    int32_t leader; /* RN_GW_ROUTE_LOCAL, RN_GW_ROUTE_NONE or a broker id */
    bool no_wait;   /* a Fetch's sub-request goes with max_wait_ms 0 (set by the caller) */
    size_t n;       /* partitions of the request it carries */
    size_t *idx;    /* their indexes in the request, ascending (owned) */
    /* The answer, once done: */
    bool done;
    int err;                     /* < 0: the part failed as a whole */
    char *errmsg;                /* owned, with err */
    Runnel__ResponseHeader *hdr; /* owned (unpacked copy) */
    rn_slice *slices;            /* owned array; references handed on by merge */
    unsigned n_slices;
    uint8_t *payload; /* owned: a peer's answer bytes the slices point into */
} rn_gw_route_part;

typedef struct rn_gw_route {
    int api;
    bool whole;         /* a group API: one part, the coordinator's answer as it is */
    size_t n_req;       /* partitions in the request */
    char **topics;      /* per request partition (owned copies) */
    int32_t *partition; /* per request partition */
    size_t n_parts;
    rn_gw_route_part *parts;
    /* The merged answer (merge): its pieces, owned here. */
    Runnel__ResponseHeader out;
    void *body;  /* the API's response message */
    void **ptrs; /* n_req pointers the body lists */
    void *synth; /* n_req synthesized entries (errors) */
    rn_slice *out_slices;
    char *out_msg;
} rn_gw_route;

/* Whether api is routed per partition (Produce, Fetch, ListOffsets). */
bool rn_gw_route_api(int api);

/* Group the partitions of h (a routed API) by leader(arg, topic, partition),
 * parts in order of first appearance. rt is caller-allocated; fini it on
 * every path once this returned. Errors: -E2BIG (more than
 * RN_GW_ROUTE_MAX_PARTS leaders), -RN_E_INVALID_REQUEST (no body), -ENOMEM.
 * Borrows h for the call. */
int rn_gw_route_plan(rn_gw_route *rt, const Runnel__RequestHeader *h, rn_gw_leader_fn leader,
                     void *arg);

/* True when the plan is one part served here: the caller runs the request
 * as it is (no split, no merge). */
bool rn_gw_route_all_local(const rn_gw_route *rt);

/* Build part k's sub-request from h and payload (the original request) and
 * hand it to fn for the duration of the call; returns fn's result. The
 * sub-request borrows h's strings and the payload. Errors before fn runs:
 * -RN_E_INVALID_REQUEST (a Produce whose batch lengths do not add up to
 * payload_len), -ENOMEM. */
typedef int (*rn_gw_sub_fn)(void *arg, Runnel__RequestHeader *sub, const void *payload,
                            size_t payload_len);
int rn_gw_route_sub(const rn_gw_route *rt, size_t k, const Runnel__RequestHeader *h,
                    const void *payload, size_t payload_len, rn_gw_sub_fn fn, void *arg);

/* Part k answered in-process: hdr is copied (borrowed for the call), the
 * slices' references are taken (released by fini unless merge hands them
 * on). Returns 0 or -ENOMEM (the part then failed; the slices are released). */
int rn_gw_route_take_local(rn_gw_route *rt, size_t k, const Runnel__ResponseHeader *hdr,
                           rn_slice *slices, unsigned n_slices);

/* Part k answered by a peer: hdr_bytes is a packed ResponseHeader (borrowed),
 * payload its answer bytes (ownership taken; may be NULL when len is 0).
 * Checks what rule 2 says; a bad answer fails the part with a message
 * naming the broker. Returns 0 either way, -ENOMEM when out of memory. */
int rn_gw_route_take_packed(rn_gw_route *rt, size_t k, const uint8_t *hdr_bytes, size_t hdr_len,
                            uint8_t *payload, size_t payload_len);

/* Part k failed as a whole: err (< 0) with msg (copied; NULL for
 * rn_strerror's). */
void rn_gw_route_fail(rn_gw_route *rt, size_t k, int err, const char *msg);

/* The merged answer, once every part is done; for a Fetch also earlier
 * (client.c answers as soon as one part brought records): a part not done
 * yet gives its partitions entries with no error and no bytes. If no part
 * answered well, the first part's failure as a whole-request error.
 * *out and the slices are valid until
 * fini; the slices' references pass to the caller (release each).
 * Errors: -ENOMEM. */
int rn_gw_route_merge(rn_gw_route *rt, Runnel__ResponseHeader **out, rn_slice **slices,
                      unsigned *n_slices);

/* Free everything the route holds. Safe on a zeroed or half-built route. */
void rn_gw_route_fini(rn_gw_route *rt);

#endif
