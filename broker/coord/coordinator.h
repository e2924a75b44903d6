/*
 * coord/coordinator.h — which broker coordinates a consumer group, and what
 * this broker must do about it (DESIGN §6: "the coordinator is the leader of
 * the group's partition of __offsets"), as pure functions of what the
 * metadata and the partition say, so the rules are unit-tested without a
 * broker (tests/unit/broker/coord/test_coordinator.c).
 *
 * How it fits: every group API (native api/groups.c, Kafka kafka/groups.c,
 * the gateway's consumer instances through the native ones) and the
 * coordinator's tick call rn_groups_gate (coord/offsets_topic.c), which gathers an
 * rn_coord_view and acts on rn_coord_decide's answer: serve from the state
 * it holds, (re)load that state from the __offsets log first, drop it, or
 * answer NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE /
 * COORDINATOR_LOAD_IN_PROGRESS without touching it.
 *
 * Invariants the decision keeps:
 *   1. A broker serves a group only while its partition of __offsets is led
 *      here at the leader epoch the state was loaded for; any other leader
 *      epoch (a new leadership, even of the same broker) means a fresh load
 *      from the log, so nothing learnt under an older leadership — which a
 *      failover may have truncated — is ever served.
 *   2. A broker that is not the leader keeps no group state: it is dropped
 *      as soon as no commit of it is in flight.
 *   3. A single node (no quorum) leads every __offsets partition and keeps
 *      the state it loaded at start: behaviour as before clusters existed.
 */
#ifndef RN_BROKER_COORD_COORDINATOR_H
#define RN_BROKER_COORD_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>

/* The group's partition of __offsets among n (>= 1): FNV-1a 32 of the group
 * id modulo n. __offsets has one partition today, so every group maps to 0,
 * as the single-node code always did. -1 when n < 1 or group_id is NULL. */
int32_t rn_coord_partition(const char *group_id, int32_t n);

/* What the broker knows at the moment of a group request. */
typedef struct rn_coord_view {
    bool single_node;     /* no quorum: this broker leads everything */
    bool have_partition;  /* the metadata has the group's __offsets partition */
    int32_t self_id;      /* this broker's node id */
    int32_t leader_id;    /* the metadata's leader of it, -1 none */
    int32_t leader_epoch; /* the metadata's leader epoch of it */
    bool leading;         /* the partition here is RN_ROLE_LEADER at leader_epoch */
    int32_t loaded_epoch; /* the leader epoch the held state was loaded for, -1 none */
    unsigned pending;     /* commits of the held state still in flight */
} rn_coord_view;

typedef enum rn_coord_action {
    RN_COORD_SERVE,     /* serve from the held state */
    RN_COORD_LOAD,      /* drop the held state, load it from the log, then serve */
    RN_COORD_LOADING,   /* led here, but not ready: COORDINATOR_LOAD_IN_PROGRESS */
    RN_COORD_ELSEWHERE, /* another broker leads it: NOT_COORDINATOR */
    RN_COORD_NONE,      /* no leader (or no __offsets yet): COORDINATOR_NOT_AVAILABLE */
} rn_coord_action;

/* The action for v; *drop is set when the held state must be dropped now
 * (this broker no longer leads, or leads at another epoch, and nothing is in
 * flight). RN_COORD_LOAD implies the drop. */
rn_coord_action rn_coord_decide(const rn_coord_view *v, bool *drop);

/* The negative error a request gets for an action other than SERVE/LOAD:
 * -RN_E_NOT_COORDINATOR, -RN_E_COORDINATOR_NOT_AVAILABLE,
 * -RN_E_COORDINATOR_LOAD_IN_PROGRESS; 0 for SERVE and LOAD. */
int rn_coord_error(rn_coord_action a);

#endif
