/*
 * classic_group.h — Kafka's classic consumer group protocol (JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup), sans-I/O (broker/coord/classic_group.c).
 *
 * In the classic protocol the broker does not assign partitions: members
 * join with the protocols they support (name + opaque metadata, e.g. the
 * consumer's subscription), the broker picks one protocol all members
 * support and a leader, hands the leader every member's metadata, and the
 * leader runs the assignor and sends every member's (opaque) assignment in
 * its SyncGroup; the broker passes each member its own. The broker's part is
 * the rebalance barrier and the generation that fences stale members.
 *
 * The table is owned by the coordinator (broker/coord/groups.h), which
 * keeps a group either classic or native and writes the committed offsets;
 * this file keeps only membership. JoinGroup and SyncGroup answers wait for
 * the other members: they come through a waiter (rn_classic_waiter), which
 * the caller owns and embeds in its request; its callback fires exactly
 * once, possibly before the call that started it returns, unless the
 * waiter is cancelled first (rn_classic_cancel: the request went away).
 *
 * Threading: one table, every call from one thread (reactor 0). Nothing here
 * touches a socket or the clock: times are passed in.
 */
#ifndef RN_BROKER_CLASSIC_GROUP_H
#define RN_BROKER_CLASSIC_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/coord/assignor.h"

typedef struct rn_classic rn_classic;

#define RN_CLASSIC_SESSION_MIN_MS 1000   /* Kafka: group.min.session.timeout.ms */
#define RN_CLASSIC_SESSION_MAX_MS 300000 /* Kafka: group.max.session.timeout.ms */

typedef struct rn_classic_env {
    /* Does a native group of this id have members? (A group is either.) */
    bool (*native_active)(void *arg, const char *group_id);
    void *arg;
} rn_classic_env;

/* One protocol a member supports, borrowed for the call. */
typedef struct rn_classic_protocol {
    const char *name;
    const uint8_t *meta;
    size_t meta_len;
} rn_classic_protocol;

/* A JoinGroup, borrowed for the call. */
typedef struct rn_classic_join {
    const char *group_id;
    const char *member_id; /* "" or NULL: a new member */
    const char *client_id; /* may be NULL */
    const char *host;      /* may be NULL */
    const char *protocol_type;
    const rn_classic_protocol *protocols;
    size_t n_protocols;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms; /* <= 0: the session timeout (JoinGroup v0) */
    /* JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED and its id,
     * and is a member only once it joins with that id (KIP-394). */
    bool require_member_id;
    /* The subscription, when the caller could read it from the metadata
     * (protocol type "consumer"); only shown by describe. May be empty. */
    const char *const *topics;
    size_t n_topics;
} rn_classic_join_req;

/* One member's assignment in the leader's SyncGroup, borrowed for the call. */
typedef struct rn_classic_assignment {
    const char *member_id;
    const uint8_t *data;
    size_t len;
    /* The partitions in data, when the caller could read them (protocol
     * type "consumer"); shown by describe and rn_classic_owner. May be empty. */
    const rn_assign_tp *tps;
    size_t n_tps;
} rn_classic_assignment;

typedef struct rn_classic_member_meta {
    const char *member_id;
    const uint8_t *meta;
    size_t meta_len;
} rn_classic_member_meta;

/* The answer to a JoinGroup or SyncGroup, valid during the callback only.
 * err: 0, or -RN_E_UNKNOWN_MEMBER, -RN_E_ILLEGAL_GENERATION,
 * -RN_E_REBALANCE_IN_PROGRESS, -RN_E_MEMBER_ID_REQUIRED (member_id is the id
 * to join with), -RN_E_INCONSISTENT_GROUP_PROTOCOL,
 * -RN_E_INVALID_SESSION_TIMEOUT, -RN_E_INVALID_REQUEST, -ENOMEM. */
typedef struct rn_classic_answer {
    int err;
    int32_t generation;                    /* -1 on error */
    const char *protocol_type;             /* NULL on error */
    const char *protocol_name;             /* NULL on error */
    const char *leader_id;                 /* "" on error */
    const char *member_id;                 /* the member's id ("" when none) */
    const rn_classic_member_meta *members; /* join: the leader's only */
    size_t n_members;
    const uint8_t *assignment; /* sync */
    size_t assignment_len;
} rn_classic_answer;

typedef struct rn_classic_waiter rn_classic_waiter;
typedef void (*rn_classic_cb)(rn_classic_waiter *w, const rn_classic_answer *a);

/* Owned by the caller (embedded in its request); set cb before use and keep
 * it alive until the callback ran or rn_classic_cancel returned. The rest is
 * the table's. */
struct rn_classic_waiter {
    rn_classic_cb cb;
    int state_; /* 0 idle, 1 waiting on a member, 2 answered, in the ready list */
    rn_classic *cg_;
    void *member_;
    bool sync_;
    rn_classic_waiter *next_, *prev_;
    struct rn_classic_ans_ *ans_;
};

/* An empty table (env copied). Errors: -ENOMEM. */
int rn_classic_new(rn_classic **out, const rn_classic_env *env);
/* Free everything; waiters still linked are dropped without a callback. NULL is fine. */
void rn_classic_free(rn_classic *cg);

/* Answer every JoinGroup and SyncGroup still waiting with err (the
 * coordinator is giving the groups up: -RN_E_NOT_COORDINATOR); callbacks
 * run before this returns. Members stay (rn_classic_free drops them). */
void rn_classic_fail_all(rn_classic *cg, int err);

/* JoinGroup at now_ms; w->cb fires once (maybe before this returns). */
void rn_classic_join(rn_classic *cg, const rn_classic_join_req *j, int64_t now_ms,
                     rn_classic_waiter *w);

/* SyncGroup: the leader passes every member's assignment (others pass none);
 * protocol_type and protocol_name (SyncGroup v5) may be NULL. w->cb fires
 * once (maybe before this returns). */
void rn_classic_sync(rn_classic *cg, const char *group_id, const char *member_id,
                     int32_t generation, const char *protocol_type, const char *protocol_name,
                     const rn_classic_assignment *asg, size_t n_asg, int64_t now_ms,
                     rn_classic_waiter *w);

/* Heartbeat. Returns 0, -RN_E_UNKNOWN_MEMBER, -RN_E_ILLEGAL_GENERATION or
 * -RN_E_REBALANCE_IN_PROGRESS (join again). Callbacks of other waiters never
 * fire from it. */
int rn_classic_heartbeat(rn_classic *cg, const char *group_id, const char *member_id,
                         int32_t generation, int64_t now_ms);

/* LeaveGroup of one member. Returns 0 or -RN_E_UNKNOWN_MEMBER. The others'
 * waiters may be answered from inside (the rebalance may complete). */
int rn_classic_leave(rn_classic *cg, const char *group_id, const char *member_id, int64_t now_ms);

/* May this OffsetCommit go ahead? member_id "" with generation -1 is an
 * admin commit: allowed while the group has no members. Otherwise 0 (and the
 * commit counts as a heartbeat), -RN_E_UNKNOWN_MEMBER,
 * -RN_E_ILLEGAL_GENERATION, -RN_E_REBALANCE_IN_PROGRESS (the new generation
 * waits for its assignment; while a rebalance is only being prepared, the
 * current generation may still commit, as in Kafka), or
 * -RN_E_GROUP_NOT_EMPTY (an admin commit to a group with members). */
int rn_classic_commit_check(rn_classic *cg, const char *group_id, const char *member_id,
                            int32_t generation, int64_t now_ms);

/* The request went away: the callback will not fire. Idle waiters and
 * waiters of a freed table are fine. */
void rn_classic_cancel(rn_classic_waiter *w);

/* Session timeouts, rebalance timeouts, expired pending member ids. Waiters
 * may be answered from inside. */
void rn_classic_tick(rn_classic *cg, int64_t now_ms);

/* Has group_id members (or members being admitted)? */
bool rn_classic_active(const rn_classic *cg, const char *group_id);

/* Drop an empty group's state (DeleteGroups). Returns -RN_E_GROUP_NOT_EMPTY
 * when it has members, 0 otherwise. */
int rn_classic_forget(rn_classic *cg, const char *group_id);

/* ---- Listing and describing ------------------------------------------------------------ */

typedef struct rn_classic_group_info {
    const char *group_id;
    const char *state; /* "Empty", "PreparingRebalance", "CompletingRebalance", "Stable" */
    int32_t generation;
    const char *protocol_type; /* "" before the first join */
    const char *protocol_name; /* "" until a generation was made */
    const char *leader_id;
    size_t n_members;
} rn_classic_group_info;

typedef struct rn_classic_member_info {
    const char *member_id;
    const char *client_id;
    const char *host;
    const uint8_t *meta; /* of the group's protocol (NULL when none yet) */
    size_t meta_len;
    const uint8_t *assignment; /* NULL before the leader's sync */
    size_t assignment_len;
    const char *const *topics; /* subscription as read at join (may be empty) */
    size_t n_topics;
    const rn_assign_tp *tps; /* assignment as read at sync (may be empty) */
    size_t n_tps;
    int32_t session_timeout_ms;
    int64_t last_heartbeat_ms;
} rn_classic_member_info;

/* Groups, sorted by id; i past the end: -ERANGE. Strings valid until the next
 * call that changes the table. */
size_t rn_classic_count(const rn_classic *cg);
int rn_classic_group_at(const rn_classic *cg, size_t i, rn_classic_group_info *out);
/* One group: -RN_E_UNKNOWN_GROUP when the table has no such group. */
int rn_classic_describe(const rn_classic *cg, const char *group_id, rn_classic_group_info *out);
/* Member i (in join order): -RN_E_UNKNOWN_GROUP, -ERANGE. */
int rn_classic_member(const rn_classic *cg, const char *group_id, size_t i,
                      rn_classic_member_info *out);

/* The member whose current assignment (as read at sync) holds (topic,
 * partition), or NULL. */
const char *rn_classic_owner(const rn_classic *cg, const char *group_id, const char *topic,
                             int32_t partition);

#endif
