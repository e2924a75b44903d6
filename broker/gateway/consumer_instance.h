/*
 * consumer_instance.h — a REST Proxy v2 consumer instance, between its two
 * files (internal to broker/gateway/; nothing else includes it).
 *
 * consumers.c is the instance: its group membership (heartbeats on the
 * shared rn_member state machine, auto-commit, idle expiry), its life in the
 * gateway's list, and the broker requests of a records poll or a commit.
 * consumer_routes.c is its HTTP face: it parses and checks the requests of
 * /consumers/…, answers what it can from the instance's state, and starts
 * the rest here. An operation that talks to the broker belongs to one HTTP
 * request (the waiter) at a time: the route takes it with
 * rn__cinst_start_op, and consumers.c answers the waiter when the broker's
 * answer comes (or the instance goes).
 *
 * Threads: everything runs on the gateway's reactor.
 */
#ifndef RN_GATEWAY_CONSUMER_INSTANCE_H
#define RN_GATEWAY_CONSUMER_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/coord/groups.h"
#include "broker/gateway/client.h"
#include "broker/gateway/http.h"
#include "broker/gateway/json.h"
#include "protocol/group_member.h"

/* Positions: >= 0 the next offset to read; the others are resolved by the
 * first steps of a records poll (committed offset, then auto.offset.reset or
 * the seek's end). */
#define POS_UNKNOWN   (-1)
#define POS_BEGINNING (-2)
#define POS_END       (-3)

typedef struct cpart {
    char *topic;
    int32_t partition;
    int64_t position;
    int64_t committed; /* what auto-commit last wrote (or read), -1 none */
} cpart;

enum op_kind { OP_NONE, OP_POLL_COMMITTED, OP_POLL_RESET, OP_POLL_FETCH, OP_COMMIT, OP_COMMITTED };

typedef struct cinst {
    struct cinst *next, *prev;
    rn_consumers *cs;
    char group[RN_GROUP_ID_MAX + 1];
    char name[RN_GROUP_MEMBER_ID_MAX + 1];
    enum rn_gw_format fmt;
    bool reset_earliest, auto_commit;
    rn_member m; /* membership: subscription, member id, epoch, owned partitions */
    cpart *parts;
    size_t n_parts;
    rn_gw_client client;
    /* heartbeat */
    rn_gw_call hb_call;
    bool hb_inflight; /* hb_call is busy (a heartbeat or a leave) */
    bool leaving;
    bool hb_leave;   /* ... and it is a leave, whose answer is nobody's business */
    uint32_t hb_gen; /* the membership generation the heartbeat in flight was sent under */
    /* auto-commit */
    rn_gw_call ac_call;
    bool ac_inflight;
    /* the HTTP request being served */
    rn_gw_call op_call;
    enum op_kind op;
    rn_io_op kick_op; /* the next poll step runs from a NOP, never inside an answer */
    bool kick_armed;
    rn_http_conn *waiter; /* referenced while set */
    uint32_t poll_ms, poll_bytes;
    int64_t last_used_ms;
    bool dead;
    int refs; /* the list + each call in flight */
} cinst;

struct rn_consumers {
    rn_gateway *gw;
    cinst *list;
    unsigned n;
    rn_io_op timer_op, cancel_op;
    struct __kernel_timespec ts;
    bool timer_armed, cancel_inflight, stopping;
};

/* The live instance named name in group, or NULL. */
cinst *rn__cinst_find(rn_consumers *cs, const char *group, const char *name);

/* A new instance at the head of cs's list (the caller checked the names,
 * that none has them and the count), owned by the list. NULL when out of
 * memory. */
cinst *rn__cinst_new(rn_consumers *cs, const char *group, const char *name, enum rn_gw_format fmt,
                     bool reset_earliest, bool auto_commit);

/* DELETE of the instance: it leaves its group at once (the group rebalances
 * now, not at the session timeout) and goes from the list. */
void rn__cinst_leave(cinst *in);

/* Subscribe to topics (n of them; copied): the heartbeat that says so goes
 * on the next timer turn. Errors: -ENOMEM. */
int rn__cinst_subscribe(cinst *in, const char *const *topics, size_t n);

/* Drop the subscription and everything assigned (a leave goes out first). */
void rn__cinst_unsubscribe(cinst *in);

/* Take the instance's one operation for the HTTP request on c (referenced
 * until it is answered): false, after answering 409, when another request
 * holds it. */
bool rn__cinst_start_op(cinst *in, rn_http_conn *c, enum op_kind op);

/* After rn__cinst_start_op(…, OP_POLL_COMMITTED): the records poll, long
 * polling up to poll_ms for at most poll_bytes of JSON. Answers the waiter. */
void rn__cinst_poll(cinst *in, uint32_t poll_ms, uint32_t poll_bytes);

/* After rn__cinst_start_op(…, OP_COMMIT): commit the n offsets (parallel
 * arrays, borrowed for the call). Answers the waiter (204 or the error). */
void rn__cinst_commit(cinst *in, char **topics, int32_t *parts, int64_t *offsets, size_t n);

/* After rn__cinst_start_op(…, OP_COMMITTED): the group's committed offsets
 * to the waiter ({"offsets": […]}). */
void rn__cinst_committed(cinst *in);

#endif
