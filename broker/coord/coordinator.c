/*
 * coord/coordinator.c — the coordinator rules (coord/coordinator.h): which
 * partition of __offsets a group lives in, and, from what the metadata and
 * the partition say, whether this broker serves, loads, or sends the client
 * elsewhere. No state, no I/O.
 *
 * The decision, for a cluster (a single node always serves):
 *
 *   no partition, or no leader              → NONE      (drop held state)
 *   leader is another broker                → ELSEWHERE (drop held state)
 *   leader is this broker, not yet leading
 *     at the metadata's epoch (the role
 *     change is on its way to the owner)    → LOADING   (drop held state)
 *   leading; state loaded for this epoch    → SERVE
 *   leading; state for another epoch or none
 *     commits of the old state in flight    → LOADING   (they must finish first)
 *     none in flight                        → LOAD
 *
 * "Drop" waits for commits in flight (they hold the offsets table until
 * their callbacks run): *drop is set only when pending is 0, and the caller
 * asks again later (every tick).
 */
#include "broker/coord/coordinator.h"
#include "protocol/errors.h"

int32_t rn_coord_partition(const char *group_id, int32_t n)
{
    if (!group_id || n < 1)
        return -1;
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)group_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int32_t)(h % (uint32_t)n);
}

rn_coord_action rn_coord_decide(const rn_coord_view *v, bool *drop)
{
    *drop = false;
    if (v->single_node)
        return RN_COORD_SERVE;
    bool held = v->loaded_epoch >= 0;
    bool quiet = v->pending == 0;
    if (!v->have_partition || v->leader_id < 0) {
        *drop = held && quiet;
        return RN_COORD_NONE;
    }
    if (v->leader_id != v->self_id) {
        *drop = held && quiet;
        return RN_COORD_ELSEWHERE;
    }
    if (!v->leading) {
        *drop = held && quiet;
        return RN_COORD_LOADING;
    }
    if (held && v->loaded_epoch == v->leader_epoch)
        return RN_COORD_SERVE;
    if (!quiet)
        return RN_COORD_LOADING;
    *drop = held;
    return RN_COORD_LOAD;
}

int rn_coord_error(rn_coord_action a)
{
    switch (a) {
    case RN_COORD_SERVE:
    case RN_COORD_LOAD:
        return 0;
    case RN_COORD_LOADING:
        return -RN_E_COORDINATOR_LOAD_IN_PROGRESS;
    case RN_COORD_ELSEWHERE:
        return -RN_E_NOT_COORDINATOR;
    case RN_COORD_NONE:
    default:
        return -RN_E_COORDINATOR_NOT_AVAILABLE;
    }
}
