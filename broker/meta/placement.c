/*
 * placement.c — replica placement (see placement.h).
 */
#include <errno.h>

#include "broker/meta/placement.h"

int rn_placement_assign(const int32_t *live, int n_live, int rf, const uint8_t id[16],
                        int32_t partition, int32_t *replicas)
{
    if (rf < 1 || rf > n_live || partition < 0)
        return -EINVAL;
    unsigned start = ((unsigned)id[0] + (unsigned)partition) % (unsigned)n_live;
    for (int k = 0; k < rf; k++)
        replicas[k] = live[(start + (unsigned)k) % (unsigned)n_live];
    return 0;
}
