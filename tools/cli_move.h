/*
 * cli_move.h — moving replicas between brokers from the CLI (cli_move.c):
 * `runnel topic move` and `runnel cluster drain`.
 */
#ifndef RN_TOOLS_CLI_MOVE_H
#define RN_TOOLS_CLI_MOVE_H

#include "clients/runnel.h"

/* `runnel topic move TOPIC PARTITION BROKERS`: BROKERS is "2,3,4", the
 * first the preferred leader; throttle: bytes/s of the new replicas' catch-up
 * (--throttle; 0 none). A CLI_* status. */
int cli_move_partition(rn_admin *a, const char *topic, const char *partition, const char *brokers,
                       int64_t throttle);
/* `runnel cluster drain BROKER`: every replica on BROKER moves to the live
 * broker holding the fewest replicas that does not hold one of that
 * partition already, keeping its place in the replica list. */
int cli_drain_broker(rn_admin *a, const char *broker, int64_t throttle);

#endif
