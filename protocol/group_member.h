/*
 * group_member.h — one consumer-group member's side of GroupHeartbeat
 * (KIP-848 style), sans-I/O: the one copy of the membership rules that the
 * client library's consumer (clients/group.c) and the gateway's REST consumer
 * instances (broker/gateway/consumers.c) both follow.
 *
 * It lives in protocol/ because both users need it and DESIGN §2 lets broker/
 * and clients/ depend on protocol/ only: it touches no socket, clock, timer or
 * thread. The caller feeds it the time (now, in ms of any monotonic clock),
 * heartbeat answers and what it has done; it says what to do next, in the
 * style of etcd's raft (step, tick, ready):
 *
 *   rn_member_subscribe ──▶ joining (epoch 0, heartbeat due at once)
 *          │
 *   rn_member_heartbeat_due(now)? ──▶ rn_member_request: send it, then
 *          │                          rn_member_sent(now, ok) and keep
 *          │                          rn_member_gen for the answer
 *          ▼
 *   rn_member_step(gen, now, err, answer)
 *      ok        member id, epoch, next heartbeat at the coordinator's interval
 *                (bounded by ours); the answer's assignment becomes the target
 *      UNKNOWN_MEMBER / FENCED_MEMBER_EPOCH ──▶ fenced: rn_member_must_lose
 *      other     retried after retry_backoff_ms; the caller judges the error
 *      stale     an answer to a heartbeat of an earlier membership, or one
 *                whose epoch is below ours: ignored
 *          │
 *   rn_member_must_lose(now)? (fenced, or no good answer for a whole session
 *      while owning partitions): give every owned partition up WITHOUT
 *      committing (they may be someone else's by now), then rn_member_lost:
 *      epoch 0, owning nothing, join again at once.
 *          │
 *   rn_member_changes: the target against what we own —
 *      revoke = owned − target: stop, (commit,) drop, then rn_member_revoked
 *               for each; the next heartbeat is due at once, since the
 *               coordinator gives them to the next member only when our
 *               heartbeat no longer lists them;
 *      assign = target − owned: start them, then rn_member_assigned for each
 *               (one the caller could not take stays unowned: the next
 *               answer lists it again).
 *          │
 *   rn_member_leave_request + rn_member_unsubscribe: epoch -1 so the
 *      partitions move at once, then forget everything (answers to earlier
 *      heartbeats become stale).
 *
 * Invariants:
 *  1. At most one heartbeat is in flight (inflight); its answer is stepped
 *     with the gen it was sent under, and one of another gen is dropped.
 *  2. owned is exactly what the caller said it took and did not give back;
 *     every heartbeat reports it (sorted, one TopicPartitions per topic).
 *  3. The member epoch never goes backwards except to 0, by fencing, a lost
 *     session or unsubscribe: an answer with a lower epoch is refused.
 *  4. Partitions given up by fencing or a lost session are never committed:
 *     must_lose is answered before changes are applied.
 *
 * Errors: -ENOMEM only (copies of names); every function may be called from
 * one thread per rn_member (it has no locks and no global state).
 */
#ifndef RN_GROUP_MEMBER_H
#define RN_GROUP_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel.pb-c.h"

/* A (topic, partition). In an rn_member its topic is owned by it. */
typedef struct rn_member_tp {
    char *topic;
    int32_t partition;
} rn_member_tp;

typedef struct rn_member_conf {
    /* The coordinator's heartbeat interval is used when it names one, bounded
     * by max_interval_ms; default_interval_ms when it names none. */
    int64_t max_interval_ms;
    int64_t default_interval_ms;
    /* A member with no good answer for this long while it owns partitions has
     * lost them (the coordinator has dropped it by then). 0: never. */
    int64_t session_timeout_ms;
    /* After a failed or refused heartbeat, the next one waits this long. */
    int64_t retry_backoff_ms;
} rn_member_conf;

/* Caller-allocated (rn_member_init / rn_member_fini). The fields are the
 * module's; read them through the accessors below. */
typedef struct rn_member {
    rn_member_conf conf;
    bool on; /* subscribed */
    char **topics;
    size_t n_topics;
    char *member_id; /* NULL until the coordinator names us */
    int32_t epoch;   /* 0: joining, owning nothing */
    uint32_t gen;    /* bumped by unsubscribe: answers of older heartbeats are stale */
    bool inflight;
    bool fenced;
    bool have_target; /* target holds an answer not applied yet */
    int64_t hb_next;
    int64_t last_ok; /* when the last good answer came; 0: none yet */
    rn_member_tp *owned;
    size_t n_owned;
    rn_member_tp *target;
    size_t n_target;
} rn_member;

/* What rn_member_step made of an answer. */
enum rn_member_step_result {
    RN_MEMBER_OK = 0,     /* taken: a new target (rn_member_changes) */
    RN_MEMBER_FENCED = 1, /* UNKNOWN_MEMBER or FENCED_MEMBER_EPOCH: rn_member_must_lose */
    RN_MEMBER_RETRY = 2,  /* another error: heartbeat again after retry_backoff_ms */
    RN_MEMBER_STALE = 3,  /* not for this membership, or an epoch going backwards: ignored */
};

/* The changes an answer asks for. Owns copies of the names (the member may
 * step other answers while the caller applies them); rn_member_changes_fini. */
typedef struct rn_member_changes {
    rn_member_tp *revoke;
    size_t n_revoke;
    rn_member_tp *assign;
    size_t n_assign;
} rn_member_changes;

/* A GroupHeartbeatRequest built from the member, with the arrays it points
 * into. req borrows the member's strings: valid until the member changes. */
typedef struct rn_member_req {
    Runnel__GroupHeartbeatRequest req;
    Runnel__TopicPartitions *tps;
    Runnel__TopicPartitions **tpp;
    int32_t *pids;
} rn_member_req;

/* Not subscribed, owning nothing. conf is copied. */
void rn_member_init(rn_member *m, const rn_member_conf *conf);
/* Frees what the member holds; the member may be initialised again. */
void rn_member_fini(rn_member *m);

/* Subscribe to topics (copied; replaces an earlier subscription). A new
 * member joins with epoch 0; either way a heartbeat is due at once so the
 * coordinator hears of it. -ENOMEM leaves the member as it was. */
int rn_member_subscribe(rn_member *m, const char *const *topics, size_t n_topics, int64_t now);

/* Whether a heartbeat should be sent now: subscribed, none in flight, due. */
bool rn_member_heartbeat_due(const rn_member *m, int64_t now);

/* Build the heartbeat of the member as it is (member id, epoch, subscription,
 * owned). The caller fills group_id, client_id, assignor and
 * session_timeout_ms. -ENOMEM. */
int rn_member_request(const rn_member *m, rn_member_req *out);
/* The leave heartbeat (epoch -1, owning nothing). Returns 1 when there is a
 * membership to leave (a member id), 0 when there is none (nothing to send). */
int rn_member_leave_request(const rn_member *m, rn_member_req *out);
void rn_member_request_fini(rn_member_req *r);

/* The heartbeat built last was handed to the transport (ok) or could not be
 * (then the next one is due after retry_backoff_ms). */
void rn_member_sent(rn_member *m, int64_t now, bool ok);

/* The generation a heartbeat is sent under: pass it back to rn_member_step. */
uint32_t rn_member_gen(const rn_member *m);

/* Step the answer to a heartbeat sent under gen: err is 0 or a negative
 * code (transport or the header's error_code), hr the body when err is 0
 * (NULL is taken as an answer without a body: retried). Returns an
 * enum rn_member_step_result, or -ENOMEM (the answer is dropped and the
 * heartbeat retried after retry_backoff_ms: the next answer is the same). */
int rn_member_step(rn_member *m, uint32_t gen, int64_t now, int err,
                   const Runnel__GroupHeartbeatResponse *hr);

/* Whether every owned partition must be given up without a commit: fenced,
 * or no good answer for a whole session while owning partitions. */
bool rn_member_must_lose(const rn_member *m, int64_t now);
/* The caller gave up everything: owning nothing, epoch 0, target dropped,
 * a heartbeat due at once (join again). */
void rn_member_lost(rn_member *m, int64_t now);

/* Whether an answer waits to be applied. */
bool rn_member_has_changes(const rn_member *m);
/* Take the waiting answer as the partitions to revoke and to assign, in the
 * answer's order. -ENOMEM keeps the answer waiting (tried again whole). */
int rn_member_changes_take(rn_member *m, rn_member_changes *out);
void rn_member_changes_fini(rn_member_changes *ch);

/* The caller no longer owns (topic, partition): the next heartbeat is due at
 * once so the coordinator can hand it on. Unknown pairs are ignored. */
void rn_member_revoked(rn_member *m, const char *topic, int32_t partition, int64_t now);
/* The caller owns (topic, partition) now. -ENOMEM: it stays unowned. */
int rn_member_assigned(rn_member *m, const char *topic, int32_t partition);

/* End the membership (after rn_member_leave_request was sent, or not):
 * nothing subscribed or owned, epoch 0, no member id, answers to earlier
 * heartbeats stale. */
void rn_member_unsubscribe(rn_member *m);

/* Accessors. */
bool rn_member_subscribed(const rn_member *m);
int32_t rn_member_epoch(const rn_member *m);
const char *rn_member_id(const rn_member *m); /* "" until named */
const char *const *rn_member_topics(const rn_member *m, size_t *n);
bool rn_member_inflight(const rn_member *m);
/* The next time the member needs the caller (heartbeat due, session end), or
 * INT64_MAX; only times after now. */
int64_t rn_member_next_timer(const rn_member *m, int64_t now);

#endif
