/*
 * api/offsets_for_leader_epoch.c — OffsetsForLeaderEpoch (KIP-101/279,
 * DESIGN §8): where a leader epoch ends in this leader's log.
 *
 * For each partition the leader answers the largest epoch at or below the
 * one asked that its leader-epoch cache holds, and the offset where that
 * epoch ends: the start of the next epoch, or the log end for the latest
 * (rn_log_end_offset_for_epoch, storage/leader_epoch.h). A follower uses it
 * to truncate to what both logs share (part/truncation.h). Only the leader
 * answers (NOT_LEADER elsewhere), and a current_leader_epoch other than the
 * partition's is fenced (KIP-320), so a follower never truncates by the
 * word of a deposed leader. Runs on the partitions' owners (net/shard.c
 * splits the request).
 */
#include <stdlib.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "storage/leader_epoch.h"

void rn_handle_offsets_for_leader_epoch(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__OffsetsForLeaderEpochRequest *er = req->fr.hdr->offsets_for_leader_epoch;
    size_t n = er->n_partitions;
    Runnel__OffsetsForLeaderEpochPartitionResponse **ptrs =
        rn_api_answers(req, &runnel__offsets_for_leader_epoch_partition_response__descriptor, n);
    if (!ptrs)
        return;
    for (size_t i = 0; i < n; i++) {
        Runnel__OffsetsForLeaderEpochPartition *ep = er->partitions[i];
        Runnel__OffsetsForLeaderEpochPartitionResponse *r = ptrs[i];
        r->topic = ep->topic;
        r->partition = ep->partition;
        r->leader_epoch = RN_EPOCH_UNDEFINED;
        r->end_offset = RN_EPOCH_OFFSET_UNDEFINED;
        int rc;
        rn_partition *p =
            rn_partition_lookup(b, ep->topic, ep->partition, ep->current_leader_epoch, &rc);
        if (p)
            rc = rn_partition_check_leader(p);
        if (rc < 0) {
            r->error_code = (uint32_t)-rc;
            continue;
        }
        if (rn_log_end_offset_for_epoch(p->log, ep->leader_epoch, &r->leader_epoch,
                                        &r->end_offset) < 0)
            r->error_code = RN_E_STORAGE_ERROR; /* the checkpoint could not be read */
    }
    Runnel__OffsetsForLeaderEpochResponse eres = RUNNEL__OFFSETS_FOR_LEADER_EPOCH_RESPONSE__INIT;
    eres.n_partitions = n;
    eres.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH;
    h.offsets_for_leader_epoch = &eres;
    rn_request_respond(req, &h, NULL, 0);
    free(ptrs);
}
