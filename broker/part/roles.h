/*
 * part/roles.h — replication roles from metadata (DESIGN §8): what each
 * partition is on this broker (leader, follower of whom, or served by no
 * one here), kept in step with the metadata image, and the leader's ISR
 * changes sent to the controller (part/roles.c).
 */
#ifndef RN_BROKER_PART_ROLES_H
#define RN_BROKER_PART_ROLES_H

#include "broker/broker.h"
#include "broker/meta/metadata.h"

/* Reactor 0 (the metadata owner), after the partition tables applied ev:
 * reconcile every partition ev may have changed (a topic's, one
 * partition's, or every partition when brokers changed). Each partition's
 * change runs on its owner reactor. Nothing on a single node (no quorum):
 * partitions stay RN_ROLE_LOCAL. */
void rn_roles_on_metadata(rn_broker *b, const rn_metadata_event *ev);

#endif
