/*
 * groups.h — the consumer group coordinator (DESIGN §6, KIP-848 style).
 *
 * Members heartbeat (GroupHeartbeat) with what they subscribe to and what
 * they own; the coordinator keeps, per group, the members, the group epoch,
 * the target assignment computed by the group's assignor (broker/coord/assignor.h)
 * and what each member has been given, and answers each heartbeat with the
 * partitions that member may consume now. Committed offsets live in
 * broker/coord/offsets.h (records of __offsets); the coordinator checks who may
 * commit and owns the table.
 *
 * Words:
 *   group epoch       bumped on every change of membership, of a member's
 *                     subscription, or of the subscribed topics (a topic
 *                     appears, goes, or gains partitions).
 *   target            the assignor's answer for the current group epoch; its
 *                     assignment epoch is that group epoch.
 *   owned             what a member said it owns in its last heartbeat.
 *   given             what the coordinator last told the member it may
 *                     consume: its target minus every partition another
 *                     member still holds (has been given or says it owns).
 *   member epoch      the assignment epoch the member has caught up with; it
 *                     advances once the member owns nothing outside its
 *                     target (it has revoked what it must give up).
 *
 * So a partition moving from A to B is first left out of A's answer, and is
 * given to B only once A's heartbeat no longer owns it (or A is gone); no
 * partition is ever given to two members at once. A member that leaves
 * (member_epoch -1) or misses its session timeout is removed at once and its
 * partitions are free for the others' next heartbeat.
 *
 * The state is in memory: after a restart members get UNKNOWN_MEMBER and
 * join again; committed offsets survive (they are in the log).
 *
 * In a cluster this broker coordinates a group only while it leads the
 * group's partition of __offsets (coord/coordinator.h): every group API and
 * the tick first pass rn_groups_gate, which loads the groups' offsets from
 * the log when a leadership starts, drops everything when it ends (members
 * must rejoin the new coordinator; classic joins and syncs waiting are
 * answered NOT_COORDINATOR), and otherwise answers NOT_COORDINATOR,
 * COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS. A commit is
 * acknowledged only once the partition's high watermark covers it (the env's
 * replicated hook), so a failover never forgets an acknowledged commit.
 *
 * Threading: one coordinator, owned by reactor 0 (which owns __offsets);
 * every call from that thread. Callbacks run from rn_io_run, never inside
 * the call that started them. Pointers returned by look-ups are valid until
 * the next call that changes the coordinator (heartbeat, tick, a commit or
 * delete completing).
 */
#ifndef RN_BROKER_GROUPS_H
#define RN_BROKER_GROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/coord/assignor.h"
#include "broker/coord/coordinator.h"
#include "broker/coord/offsets.h"
#include "storage/log.h"

typedef struct rn_groups rn_groups;
struct rn_broker;

#define RN_GROUP_ID_MAX             249 /* bytes of a group id */
#define RN_GROUP_MEMBER_ID_MAX      128 /* bytes of a member id a client may choose */
#define RN_GROUP_SESSION_TIMEOUT_MS 10000
#define RN_GROUP_HEARTBEAT_MS       1000 /* interval when nothing is moving */
#define RN_GROUP_RECONCILE_MS       100 /* interval while the member has partitions to take or drop */

/* What the coordinator needs from the broker, swappable by tests. */
typedef struct rn_groups_env {
    /* Number of partitions of topic, or -1 when it does not exist. */
    int32_t (*topic_partitions)(void *arg, const char *topic);
    /* The log of __offsets partition 0 and its leader epoch, or NULL when it is
     * not open (commits then fail with STORAGE_ERROR). */
    rn_log *(*offsets_log)(void *arg, int32_t *leader_epoch);
    void *arg;
    /* Optional (NULL: a single node that leads everything). What the
     * metadata and the partition say of group_id's partition of __offsets
     * (NULL group_id: partition 0); loaded_epoch and pending are filled by
     * the caller. */
    void (*view)(void *arg, const char *group_id, rn_coord_view *v);
    /* Optional (NULL: answer at once). Called once a commit's records are
     * durable here: cb(cb_arg, 0) once the partition's high watermark covers
     * them, or an error (-RN_E_NOT_COORDINATOR when the leadership was lost
     * meanwhile, -RN_E_TIMEOUT); cb may run before this returns. */
    void (*replicated)(void *arg, void (*cb)(void *cb_arg, int err), void *cb_arg);
} rn_groups_env;

/* A coordinator with an empty offsets table and the given environment
 * (copied). Errors: -ENOMEM. The caller owns *out (rn_groups_free). */
int rn_groups_new(rn_groups **out, const rn_groups_env *env);

/* Load the committed offsets from the env's offsets log (rn_offsets_load).
 * Errors: those of rn_offsets_load; err gets a message. */
int rn_groups_load_offsets(rn_groups *g, char *err, size_t errlen);

/* Free everything. Commits in flight are drained first through the offsets
 * log (their callbacks run). NULL is fine. */
void rn_groups_free(rn_groups *g);

/* runneld: create __offsets (1 partition, retention.ms=-1, flush=always)
 * when missing — running reactor 0's io synchronously until the metadata
 * record is durable — then a coordinator on the broker's partitions with the
 * offsets loaded. Call after the metadata and partition logs are open and
 * before listening. A __offsets log that cannot be read is logged and
 * leaves commits failing with STORAGE_ERROR; the broker keeps running.
 * Errors: -ENOMEM, errors of rn_metadata_create_internal_topic and
 * rn_io_run; err gets a message. */
int rn_groups_open(rn_groups **out, struct rn_broker *b, char *err, size_t errlen);

/* The coordinator check every group API makes first (coord/coordinator.h):
 * 0 when this broker coordinates group_id now (NULL: partition 0, for the
 * tick and ListGroups) — loading the groups and offsets from the log first
 * when a leadership has just started — else -RN_E_NOT_COORDINATOR,
 * -RN_E_COORDINATOR_NOT_AVAILABLE, -RN_E_COORDINATOR_LOAD_IN_PROGRESS, or
 * the load's error (-RN_E_COORDINATOR_LOAD_IN_PROGRESS after it is logged).
 * Drops the held state when this broker no longer leads. err gets a message.
 * Always 0 without an env view (a single node). */
int rn_groups_gate(rn_groups *g, const char *group_id, char *err, size_t errlen);

/* The leader epoch the held state was loaded for, -1 when none (tests, status). */
int32_t rn_groups_loaded_epoch(const rn_groups *g);

/* Drain commits in flight and free (before the partition logs close). */
void rn_groups_close(rn_groups *g);

/* Remove members whose session timed out (they are logged), native and
 * classic; classic rebalance deadlines too (waiters may be answered). g may be NULL
 * (the tick can fire before the coordinator opens). */
void rn_groups_tick(rn_groups *g, int64_t now_ms);

/* ---- Heartbeat ---------------------------------------------------------------- */

/* One GroupHeartbeat, borrowed for the call. */
typedef struct rn_group_heartbeat {
    const char *group_id;
    const char *member_id; /* "" or NULL to join with a new id */
    int32_t member_epoch;  /* 0 join, -1 leave, else the epoch last received */
    const char *client_id; /* may be NULL */
    const char *host;      /* the peer's address, shown by DescribeGroup; may be NULL */
    const char *const *topics;
    size_t n_topics;
    const char *assignor; /* "range", "sticky", "" or NULL (sticky) */
    const rn_assign_tp *owned;
    size_t n_owned;
    uint32_t session_timeout_ms; /* 0: RN_GROUP_SESSION_TIMEOUT_MS */
} rn_group_heartbeat;

typedef struct rn_group_heartbeat_result {
    const char *member_id; /* valid until the next coordinator call */
    int32_t member_epoch;  /* -1 after a leave */
    uint32_t heartbeat_interval_ms;
    /* What the member may consume now, sorted by (topic, partition); the array
     * is owned by the caller (free()), the topic names are valid until the
     * next coordinator call. */
    rn_assign_tp *assignment;
    size_t n_assignment;
} rn_group_heartbeat_result;

/* Handle one heartbeat at time now_ms. Errors (res untouched): a group id
 * empty or longer than 249 bytes, a member id longer than 128 bytes, or an
 * unknown assignor name: -RN_E_INVALID_REQUEST; a member id the group does
 * not know with member_epoch > 0: -RN_E_UNKNOWN_MEMBER; an epoch that is
 * neither the member's current nor its previous one: -RN_E_FENCED_MEMBER_EPOCH
 * (the member must join again with epoch 0 and its id, owning nothing);
 * a join to a classic group with members: -RN_E_INCONSISTENT_GROUP_PROTOCOL;
 * -ENOMEM, or the error of getrandom. err gets a message. A leave of a member
 * the group does not know succeeds. */
int rn_groups_heartbeat(rn_groups *g, const rn_group_heartbeat *hb, int64_t now_ms,
                        rn_group_heartbeat_result *res, char *err, size_t errlen);

/* ---- Offsets ---------------------------------------------------------------------- */

/* One offset of a commit; error_code is set by rn_groups_commit for offsets
 * it refused (RN_E_UNKNOWN_TOPIC: no such topic or partition). */
typedef struct rn_group_commit {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *metadata;
    uint32_t error_code;
} rn_group_commit;

typedef void (*rn_groups_cb)(void *arg, int err);

/* Commit offsets for group_id. member_id NULL or "" is an admin commit,
 * allowed only while the group has no members; otherwise the member must be
 * in the group and member_epoch between its previous and current epoch.
 * Offsets of unknown topics/partitions get error_code UNKNOWN_TOPIC and are
 * skipped; the others are written. Returns 0 and cb runs once they are
 * durable (err 0, or the storage error); 1 when there was nothing to write
 * (cb never runs); or a negative error and cb never runs:
 * -RN_E_INVALID_REQUEST, -RN_E_GROUP_NOT_EMPTY, -RN_E_UNKNOWN_MEMBER,
 * -RN_E_FENCED_MEMBER_EPOCH, -RN_E_STORAGE_ERROR (__offsets is not open),
 * errors of rn_offsets_commit. err gets a message. c is borrowed for the
 * call only. */
int rn_groups_commit(rn_groups *g, const char *group_id, const char *member_id,
                     int32_t member_epoch, rn_group_commit *c, size_t n, int64_t now_ms,
                     rn_groups_cb cb, void *arg, char *err, size_t errlen);

/* Commit offsets for a classic (Kafka JoinGroup) group: member_id "" with
 * generation -1 is an admin commit (the group must have no members), else
 * the member and generation are checked by rn_classic_commit_check (the
 * commit counts as its heartbeat). Errors as rn_groups_commit, plus
 * -RN_E_ILLEGAL_GENERATION, -RN_E_REBALANCE_IN_PROGRESS, and
 * -RN_E_INCONSISTENT_GROUP_PROTOCOL (a native group of that id has members). */
int rn_groups_classic_commit(rn_groups *g, const char *group_id, const char *member_id,
                             int32_t generation, rn_group_commit *c, size_t n, int64_t now_ms,
                             rn_groups_cb cb, void *arg, char *err, size_t errlen);

/* The classic groups (borrowed; lives as long as g). NULL when g is. */
struct rn_classic *rn_groups_classic(rn_groups *g);

/* Delete a group: its committed offsets are tombstoned, its state dropped.
 * Returns 0 and cb runs once the tombstones are durable; 1 when done at once
 * (nothing was committed; cb never runs); or a negative error:
 * -RN_E_GROUP_NOT_EMPTY (it has members), -RN_E_UNKNOWN_GROUP,
 * -RN_E_STORAGE_ERROR, errors of rn_offsets_delete_group. */
int rn_groups_delete(rn_groups *g, const char *group_id, rn_groups_cb cb, void *arg);

/* The offsets table (read-only use), NULL when __offsets could not be loaded. */
const rn_offsets *rn_groups_offsets(const rn_groups *g);

/* ---- Listing and describing --------------------------------------------------------- */

typedef struct rn_group_info {
    const char *group_id;
    const char *state; /* "Empty", "Stable", "Reconciling" */
    int32_t group_epoch;
    int32_t assignment_epoch;
    const char *assignor; /* "sticky" or "range"; a classic group's protocol name */
    size_t n_members;
    bool classic;              /* a classic (Kafka JoinGroup) group: epochs are its generation */
    const char *protocol_type; /* classic only ("consumer", ...); NULL otherwise */
} rn_group_info;

typedef struct rn_group_member_info {
    const char *member_id;
    const char *client_id;
    const char *host;
    int32_t member_epoch;
    const char *const *topics; /* subscriptions, sorted */
    size_t n_topics;
    const rn_assign_tp *given; /* may consume now, sorted */
    size_t n_given;
    const rn_assign_tp *target; /* where it is headed, sorted */
    size_t n_target;
    const rn_assign_tp *owned; /* as its last heartbeat said, sorted */
    size_t n_owned;
    uint32_t session_timeout_ms;
    int64_t last_heartbeat_ms;
} rn_group_member_info;

/* Every known group — with members, or with committed offsets — sorted by id.
 * *out is malloc'd (the caller frees it), its strings valid until the next
 * coordinator call. Errors: -ENOMEM. */
int rn_groups_list(rn_groups *g, rn_group_info **out, size_t *n);

/* Describe one group (brings its target up to date first). Errors:
 * -RN_E_UNKNOWN_GROUP (no members and nothing committed). */
int rn_groups_describe(rn_groups *g, const char *group_id, rn_group_info *out);

/* Member i (sorted by member id) of a group. Errors: -RN_E_UNKNOWN_GROUP,
 * -ERANGE (i past the end). */
int rn_groups_member(rn_groups *g, const char *group_id, size_t i, rn_group_member_info *out);

/* The member that has been given (topic, partition), or NULL. */
const char *rn_groups_owner(rn_groups *g, const char *group_id, const char *topic,
                            int32_t partition);

#endif
