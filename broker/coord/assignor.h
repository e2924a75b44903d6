/*
 * assignor.h — partition assignors of consumer groups: range and sticky (DESIGN §6).
 *
 * Pure functions: no I/O, no clock, no global state. The group coordinator
 * (broker/coord/groups.c) calls rn_assign() whenever the group epoch moves (a
 * member joined, left, changed its subscription, or a subscribed topic
 * appeared, vanished or grew) to compute the group's target assignment.
 *
 * Both assignors are deterministic: the result depends on the members' ids,
 * subscriptions and (sticky) current assignments, never on the order of the
 * members array, so a coordinator that restarts or a test that shuffles
 * members gets the same answer.
 *
 *   range   per topic, the partitions are cut into contiguous ranges handed to
 *           the topic's subscribers in member id order; the first
 *           (partitions % subscribers) members get one more (Kafka's
 *           RangeAssignor).
 *   sticky  keeps every current partition where it is when the member is
 *           still subscribed, hands out the free partitions to the least
 *           loaded eligible member, then moves partitions one at a time from
 *           the most to the least loaded member while their counts differ by
 *           two or more. With equal subscriptions the counts end within one
 *           of each other and only the partitions that must move do.
 *
 * Threading: none of its own; call from any thread with distinct arguments.
 */
#ifndef RN_BROKER_ASSIGNOR_H
#define RN_BROKER_ASSIGNOR_H

#include <stddef.h>
#include <stdint.h>

enum rn_assignor {
    RN_ASSIGNOR_STICKY = 0, /* the default */
    RN_ASSIGNOR_RANGE = 1,
};

/* A topic that may be assigned: its name and number of partitions (>= 0). */
typedef struct rn_assign_topic {
    const char *name;
    int32_t n_partitions;
} rn_assign_topic;

/* One partition of a topic. */
typedef struct rn_assign_tp {
    const char *topic;
    int32_t partition;
} rn_assign_tp;

/* One member: its id (unique in the group), the topic names it subscribes
 * to (names that are not in the topics list are ignored, duplicates are
 * fine), and for the sticky assignor its current assignment (partitions of
 * topics that are gone, out of range or no longer subscribed are dropped; a
 * partition claimed by two members stays with the one whose id sorts
 * first). Everything is borrowed for the call. */
typedef struct rn_assign_member {
    const char *id;
    const char *const *topics;
    size_t n_topics;
    const rn_assign_tp *current;
    size_t n_current;
} rn_assign_member;

/* The partitions of one member, sorted by (topic name, partition). The topic
 * pointers are the name pointers of the topics array given to rn_assign
 * (borrowed from the caller); tps is owned, freed by rn_assignment_free. */
typedef struct rn_assignment {
    rn_assign_tp *tps;
    size_t n;
} rn_assignment;

/* "range" or "sticky"; NULL or "" is the default (sticky).
 * Errors: -EINVAL for any other name. */
int rn_assignor_parse(const char *name, enum rn_assignor *out);

/* The name rn_assignor_parse reads ("sticky", "range"). */
const char *rn_assignor_name(enum rn_assignor a);

/* Assign every partition of every topic that at least one member subscribes
 * to, each to exactly one subscribed member. out has n_members entries, in
 * the order of members; on success the caller frees them with
 * rn_assignment_free. Topic names must be unique, member ids unique and
 * non-NULL. Errors (out is left empty): -EINVAL (a NULL or duplicate topic
 * name or member id, a negative partition count, an unknown assignor),
 * -ENOMEM. */
int rn_assign(enum rn_assignor a, const rn_assign_topic *topics, size_t n_topics,
              const rn_assign_member *members, size_t n_members, rn_assignment *out);

/* Free the n assignments filled by rn_assign. Safe on zeroed entries. */
void rn_assignment_free(rn_assignment *out, size_t n);

#endif
