/*
 * part/plant.c — RUNNEL_PLANT, the planted replication bugs of
 * part/plant.h (test facility; never on by default).
 *
 * Parsed once in main() before the reactors start, into plain static
 * flags: the code a plant changes tests its flag with __builtin_expect(…,
 * 0), one predictable branch when it is off (storage/crash.c does the same
 * for RUNNEL_FAULT).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/part/plant.h"

bool rn_plant_acks_early;

int rn_plant_init_from_env(char *what, size_t whatlen, char *err, size_t errlen)
{
    const char *v = getenv("RUNNEL_PLANT");
    what[0] = 0;
    if (!v || !*v)
        return 0;
    if (strcmp(v, "acks-early") == 0) {
        rn_plant_acks_early = true;
        snprintf(what, whatlen,
                 "acks-early: acks=all is answered when the leader has appended, before the "
                 "in-sync replicas have the batch (acknowledged records can be lost)");
        return 0;
    }
    snprintf(err, errlen, "RUNNEL_PLANT=%.200s: unknown plant (the one there is: acks-early)", v);
    return -EINVAL;
}
