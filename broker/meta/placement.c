/*
 * placement.c — replica placement (see placement.h).
 */
#include <errno.h>
#include <stddef.h>

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

int32_t rn_placement_preferred(const rn_image *img, const rn_partition_info *p)
{
    if (p->n_replicas < 1 || p->leader == p->replicas[0])
        return -1;
    int32_t want = p->replicas[0];
    const rn_broker_info *b = rn_image_broker(img, want);
    if (!b || b->fenced)
        return -1;
    for (int32_t i = 0; i < p->n_isr; i++)
        if (p->isr[i] == want)
            return want;
    return -1;
}
