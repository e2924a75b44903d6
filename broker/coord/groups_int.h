/*
 * groups_int.h — what the two files of the group coordinator share, and
 * nothing else includes (groups.h is the API): groups.c keeps the groups,
 * their members and commits, driven only through rn_groups_env;
 * offsets_topic.c keeps what ties them to the __offsets topic (loading it on
 * a new leadership, creating it, holding a commit until it is replicated).
 * Reactor 0 only, as groups.h says.
 */
#ifndef RN_BROKER_COORD_GROUPS_INT_H
#define RN_BROKER_COORD_GROUPS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/coord/classic_group.h"
#include "broker/coord/groups.h"
#include "broker/coord/offsets.h"

struct group;

struct rn_groups {
    rn_groups_env env;
    rn_offsets *offsets;
    bool offsets_ok;       /* false when loading __offsets failed */
    struct group **groups; /* sorted by id (the type is groups.c's) */
    size_t n, cap;
    char **names; /* interned topic names, sorted */
    size_t n_names, cap_names;
    rn_classic *classic;  /* the classic (Kafka client-side) groups */
    int32_t loaded_epoch; /* cluster: the __offsets leader epoch the state is for, -1 none */
};

/* Forget every group and committed offset held (no commit may be in
 * flight); -ENOMEM leaves the state as it was. groups.c. */
int rn__groups_drop_state(rn_groups *g, const char *why);

#endif
