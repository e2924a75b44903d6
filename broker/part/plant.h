/*
 * part/plant.h — planted replication bugs, for the fault suite to prove that
 * its checker fails when it must (issue 14: "with a planted bug … it
 * reports the loss").
 *
 * NEVER ON BY DEFAULT: a plant is switched on only by the environment of a
 * broker the suite starts (tests/cluster/run, scenario planted-repl), read
 * once at start-up before any partition exists; main.c then logs
 * "PLANTED BUG: …" so that nobody runs one by accident. A broker without
 * RUNNEL_PLANT pays one predictable branch on a static flag where a plant
 * sits.
 *
 *  RUNNEL_PLANT=acks-early  acks=all is answered as soon as the leader has
 *      appended the batch, as acks=1 would be, instead of once the high
 *      watermark (the ISR) covers it (part/partitions.c,
 *      rn_partition_acks_all). A leader cut from its followers then
 *      acknowledges records no follower has, which the next leader does
 *      not hold and the old one truncates away on its return.
 *
 * An unknown name is refused: the broker does not start.
 */
#ifndef RN_BROKER_PART_PLANT_H
#define RN_BROKER_PART_PLANT_H

#include <stdbool.h>
#include <stddef.h>

/* acks=all answered at the leader's append (RUNNEL_PLANT=acks-early). Set
 * once by rn_plant_init_from_env, before the reactors start; read-only
 * afterwards. */
extern bool rn_plant_acks_early;

/* Read RUNNEL_PLANT. 0: unset or empty (what = ""), or a known plant, named
 * in what (for main.c's log line). -EINVAL for an unknown name, err saying
 * which names there are. main() only, before any other thread runs. */
int rn_plant_init_from_env(char *what, size_t whatlen, char *err, size_t errlen);

#endif
