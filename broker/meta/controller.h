/*
 * controller.h — the active controller's own decisions beyond the quorum's
 * (registration and fencing live in quorum_brokers.c, elections on fencing in the
 * image's apply): preferred-leader rebalancing (Kafka's
 * auto.leader.rebalance.enable), so leadership returns to each partition's
 * preferred replica once it is back in sync after a failover or a rolling
 * restart, and load spreads as placement meant it to.
 *
 * Runs from reactor 0's tick (the metadata owner); only the broker that is
 * the active controller proposes, and its proposals carry the epochs they
 * were decided on, so one that raced another change is skipped at apply.
 */
#ifndef RN_BROKER_META_CONTROLLER_H
#define RN_BROKER_META_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/meta/metadata.h"

struct rn_quorum;
typedef struct rn_controller rn_controller;

typedef struct rn_controller_config {
    bool auto_rebalance; /* auto.leader.rebalance.enable (true) */
    int64_t interval_ms; /* leader.imbalance.check.interval.seconds × 1000 (300 s) */
} rn_controller_config;

/* md and q are borrowed for the controller's life. -ENOMEM. */
int rn_controller_new(rn_controller **out, rn_metadata *md, struct rn_quorum *q,
                      const rn_controller_config *cfg);
void rn_controller_free(rn_controller *c);
/* Reactor 0's tick: when due and this broker is the active controller,
 * propose a preferred-leader election for every partition that wants one
 * (placement.h), at most RN_CONTROLLER_MAX_PROPOSALS at a time. */
void rn_controller_tick(rn_controller *c, int64_t now_ms);
/* Proposals made so far (for logs and tests). */
uint64_t rn_controller_elections(const rn_controller *c);

#define RN_CONTROLLER_MAX_PROPOSALS 256

#endif
