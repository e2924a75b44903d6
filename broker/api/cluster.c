/*
 * api/cluster.c — ClusterStatus: the metadata quorum as this broker sees it
 * (`runnel cluster status`, DESIGN §8).
 *
 * Read from the quorum's status copy (rn_quorum_status_get, refreshed by the
 * quorum thread every 50 ms), so any broker answers at once and none waits
 * for the controller. Voters' fetch positions and brokers' heartbeat ages
 * are the active controller's to know: elsewhere they are -1. A single node
 * answers clustered = false with itself as leader and only broker.
 *
 * Partition health (under-replicated, offline) comes from the image on
 * reactor 0, where this handler runs (shard.c forwards every unpartitioned
 * API there), classified by partition_health.c: counts whole, lists bounded.
 */
#include <stdio.h>
#include <stdlib.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/partition_health.h"

/* One listed partition; its int32 arrays are the image's (borrowed until the
 * response is packed, which happens before this handler returns). */
static void fill_partition(Runnel__ClusterPartition *cp, const rn_health_item *it)
{
    runnel__cluster_partition__init(cp);
    cp->topic = (char *)it->topic->name;
    cp->partition = it->part->partition;
    cp->leader = it->part->leader;
    cp->leader_epoch = it->part->leader_epoch;
    cp->n_replicas = (size_t)it->part->n_replicas;
    cp->replicas = (int32_t *)it->part->replicas;
    cp->n_isr = (size_t)it->part->n_isr;
    cp->isr = (int32_t *)it->part->isr;
}

void rn_handle_cluster_status(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    rn_quorum_status *st = calloc(1, sizeof(*st));
    if (!st) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    Runnel__ClusterStatusResponse r = RUNNEL__CLUSTER_STATUS_RESPONSE__INIT;
    if (b->quorum) {
        rn_quorum_status_get(b->quorum, st);
        r.clustered = true;
    } else {
        /* A single node: itself, leading, applying its local log. */
        st->node_id = b->cfg.node_id;
        st->role = "leader";
        st->leader = b->cfg.node_id;
        st->hw = st->log_end = st->applied = rn_metadata_applied_offset(b->md);
        st->n_brokers = 1;
        st->brokers[0].id = b->cfg.node_id;
        snprintf(st->brokers[0].endpoint, sizeof(st->brokers[0].endpoint), "%s",
                 b->cfg.advertised_listener[0] ? b->cfg.advertised_listener : b->cfg.listen);
        st->brokers[0].last_heartbeat_ms = -1;
    }
    r.node_id = st->node_id;
    r.role = (char *)st->role;
    r.leader_id = st->leader;
    r.epoch = st->epoch;
    r.high_watermark = st->hw;
    r.log_end_offset = st->log_end;
    r.applied_offset = st->applied;
    Runnel__ClusterVoter vs[RN_MAX_VOTERS], *vp[RN_MAX_VOTERS];
    for (int i = 0; i < st->n_voters; i++) {
        runnel__cluster_voter__init(&vs[i]);
        vs[i].id = st->voters[i].id;
        vs[i].endpoint = st->voters[i].endpoint;
        vs[i].match_offset = st->voters[i].match;
        vs[i].last_fetch_ms = st->voters[i].last_fetch_ms;
        vp[i] = &vs[i];
    }
    r.n_voters = (size_t)st->n_voters;
    r.voters = vp;
    enum { MAXB = sizeof(st->brokers) / sizeof(st->brokers[0]) };
    Runnel__ClusterBroker *bs = calloc(MAXB, sizeof(*bs));
    Runnel__ClusterBroker **bp = calloc(MAXB, sizeof(*bp));
    if (!bs || !bp) {
        free(bs);
        free(bp);
        free(st);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < st->n_brokers; i++) {
        runnel__cluster_broker__init(&bs[i]);
        bs[i].id = st->brokers[i].id;
        bs[i].endpoint = st->brokers[i].endpoint;
        bs[i].epoch = st->brokers[i].epoch;
        bs[i].fenced = st->brokers[i].fenced;
        bs[i].last_heartbeat_ms = st->brokers[i].last_heartbeat_ms;
        bp[i] = &bs[i];
    }
    r.n_brokers = (size_t)st->n_brokers;
    r.brokers = bp;

    rn_health *hl = malloc(sizeof(*hl));
    enum { MAXL = RN_HEALTH_MAX_LISTED };
    Runnel__ClusterPartition *cps = calloc(2 * MAXL, sizeof(*cps));
    Runnel__ClusterPartition **cpp = calloc(2 * MAXL, sizeof(*cpp));
    if (!hl || !cps || !cpp) {
        free(hl);
        free(cps);
        free(cpp);
        free(bs);
        free(bp);
        free(st);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    rn_health_scan_metadata(hl, b->md, b->cfg.node_id, MAXL);
    r.partitions = hl->n_partitions;
    r.under_replicated_count = hl->n_under_replicated;
    r.offline_count = hl->n_offline;
    for (size_t i = 0; i < hl->n_under_listed; i++) {
        fill_partition(&cps[i], &hl->under[i]);
        cpp[i] = &cps[i];
    }
    for (size_t i = 0; i < hl->n_offline_listed; i++) {
        fill_partition(&cps[MAXL + i], &hl->offline[i]);
        cpp[MAXL + i] = &cps[MAXL + i];
    }
    r.n_under_replicated = hl->n_under_listed;
    r.under_replicated = cpp;
    r.n_offline = hl->n_offline_listed;
    r.offline = cpp + MAXL;

    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_CLUSTER_STATUS;
    h.cluster_status = &r;
    rn_request_respond(req, &h, NULL, 0);
    free(cps);
    free(cpp);
    free(hl);
    free(bs);
    free(bp);
    free(st);
}
