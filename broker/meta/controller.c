/*
 * controller.c — preferred-leader rebalancing by the active controller (see
 * controller.h).
 *
 * A pass walks the image and proposes, for each partition that wants one
 * (rn_placement_preferred), an election of its preferred replica with the
 * partition's current epochs. Passes do not overlap: the next starts once
 * every proposal of the last has answered and the interval has passed, so
 * a slow quorum is never flooded. A refused proposal (the partition changed
 * meanwhile) is simply decided again by the next pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "broker/logfmt.h"
#include "broker/meta/controller.h"
#include "broker/meta/placement.h"
#include "broker/meta/quorum.h"
#include "protocol/errors.h"

struct rn_controller {
    rn_metadata *md;
    struct rn_quorum *q;
    rn_controller_config cfg;
    int64_t last_pass_ms;
    unsigned inflight;
    uint64_t elections;
};

int rn_controller_new(rn_controller **out, rn_metadata *md, struct rn_quorum *q,
                      const rn_controller_config *cfg)
{
    rn_controller *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->md = md;
    c->q = q;
    c->cfg = *cfg;
    *out = c;
    return 0;
}

void rn_controller_free(rn_controller *c)
{
    /* Proposals still in flight answer into c: the owner frees it only after
     * the metadata (and its journal) are closed. */
    free(c);
}

uint64_t rn_controller_elections(const rn_controller *c)
{
    return c->elections;
}

static void elected(void *arg, int err, const char *errmsg)
{
    rn_controller *c = arg;
    c->inflight--;
    if (err < 0 && err != -RN_E_FENCED_LEADER_EPOCH)
        rn_logfmt(RN_WARN, "preferred-leader election not applied", "err=%s msg=\"%s\"",
                  rn_errname(err), errmsg);
}

static bool active(rn_controller *c)
{
    rn_quorum_status st;
    rn_quorum_status_get(c->q, &st);
    return st.leader == st.node_id;
}

void rn_controller_tick(rn_controller *c, int64_t now_ms)
{
    if (!c->cfg.auto_rebalance || c->inflight || now_ms - c->last_pass_ms < c->cfg.interval_ms)
        return;
    c->last_pass_ms = now_ms;
    if (!active(c))
        return;
    unsigned proposed = 0;
    for (unsigned i = 0; i < rn_metadata_topic_count(c->md); i++) {
        const rn_topic_info *t = rn_metadata_topic_at(c->md, i);
        for (int32_t k = 0; k < t->n_partitions && proposed < RN_CONTROLLER_MAX_PROPOSALS; k++) {
            const rn_partition_info *p = &t->partitions[k];
            int32_t want = rn_placement_preferred(rn_metadata_image(c->md), p);
            if (want < 0)
                continue;
            char err[256];
            int rc = rn_metadata_elect_leader(c->md, t->id, k, p->leader_epoch, p->partition_epoch,
                                              want, elected, c, err, sizeof(err));
            if (rc < 0) {
                rn_logfmt(RN_WARN, "preferred-leader election not proposed",
                          "topic=%s partition=%d err=%s msg=\"%s\"", t->name, k, rn_errname(rc),
                          err);
                continue;
            }
            rn_logfmt(RN_INFO, "preferred-leader election", "topic=%s partition=%d from=%d to=%d",
                      t->name, k, p->leader, want);
            c->inflight++;
            c->elections++;
            proposed++;
            /* t and p may not outlive a change applied by a proposal's
             * callback; callbacks run from the ring, not from here. */
        }
    }
}
