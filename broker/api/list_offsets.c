/*
 * api/list_offsets.c — ListOffsets: earliest, latest, or the first offset
 * at or after a time.
 *
 *   timestamp -2 → the log start offset;
 *   timestamp -1 → the high watermark (what a consumer starting at "end" reads next);
 *   timestamp T  → the first record whose timestamp >= T, found through the
 *                  time index to the batch (rn_log_offset_for_time) and then by
 *                  walking that batch's records; offset -1 when no record is
 *                  that recent (as Kafka answers).
 * Where a leader epoch ends is OffsetsForLeaderEpoch's question
 * (api/offsets_for_leader_epoch.c), Kafka's clients' included.
 *
 * Every answer carries the leader epoch of its offset (Kafka's ListOffsets
 * v4+), from the leader-epoch cache. A current_leader_epoch that is not the
 * partition's is FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH (KIP-320).
 * A new leader whose high watermark has not yet reached its epoch's start
 * answers latest and by-time OFFSET_NOT_AVAILABLE (retriable; Kafka's
 * KIP-207): its high watermark is still the one it had as a follower, so
 * "latest" could go back and a time could find no record (a client then
 * takes the stale end: kafkajs was seen reading from 0 after a failover).
 */
#include <stdlib.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "protocol/batch.h"
#include "storage/leader_epoch.h"

/* The leader epoch that wrote offset: the last cache entry starting at or
 * before it (-1 for an empty cache or an offset before every entry). */
static int32_t epoch_of(const rn_leader_epochs *c, int64_t offset)
{
    int32_t epoch = RN_EPOCH_UNDEFINED;
    unsigned n = c ? rn_leader_epochs_count(c) : 0;
    for (unsigned i = 0; i < n; i++) {
        rn_leader_epoch_entry e = rn_leader_epochs_get(c, i);
        if (e.start_offset > offset)
            break;
        epoch = e.epoch;
    }
    return epoch;
}

/* The first record at or after ts in the batch that starts at or holds
 * offset `at`, or (-1, -1) when it has none (then: the next batch's base). */
static int64_t exact_offset(rn_partition *p, int64_t at, int64_t ts, int64_t hw, int64_t *found_ts)
{
    while (at < hw) {
        rn_slice s;
        if (rn_log_read(p->log, at, 1, hw, &s) < 0 || s.len == 0)
            return -1;
        rn_batch_iter it;
        int64_t result = -1;
        if (rn_batch_iter_init(&it, s.data, s.len, 0) == 0) {
            rn_record rec;
            while (rn_batch_iter_next(&it, &rec) == 1) {
                if (rec.offset >= at && rec.timestamp >= ts) {
                    result = rec.offset;
                    *found_ts = rec.timestamp;
                    break;
                }
            }
            rn_batch_iter_fini(&it);
        }
        int64_t next = s.next_offset;
        rn_slice_release(&s);
        if (result >= 0)
            return result;
        at = next;
    }
    return -1;
}

void rn_handle_list_offsets(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__ListOffsetsRequest *lr = req->fr.hdr->list_offsets;
    size_t n = lr->n_partitions;
    Runnel__ListOffsetsPartitionResponse **ptrs =
        rn_api_answers(req, &runnel__list_offsets_partition_response__descriptor, n);
    if (!ptrs)
        return;
    for (size_t i = 0; i < n; i++) {
        Runnel__ListOffsetsPartition *lp = lr->partitions[i];
        Runnel__ListOffsetsPartitionResponse *r = ptrs[i];
        r->topic = lp->topic;
        r->partition = lp->partition;
        r->offset = -1;
        r->timestamp = -1;
        r->leader_epoch = RN_EPOCH_UNDEFINED;
        int rc;
        rn_partition *p = rn_partition_lookup(
            b, lp->topic, lp->partition, lp->epochs ? lp->epochs->current_leader_epoch : -1, &rc);
        if (p && (rc = rn_partition_check_leader(p)) < 0)
            p = NULL; /* led by another broker: NOT_LEADER, as Fetch and Produce */
        if (!p) {
            r->error_code = (uint32_t)-rc;
            continue;
        }
        if (lp->timestamp != -2 && !rn_partition_hw_settled(p)) {
            r->error_code = (uint32_t)RN_E_OFFSET_NOT_AVAILABLE;
            continue;
        }
        int64_t hw = rn_partition_high_watermark(p);
        if (lp->timestamp == -2) {
            r->offset = rn_log_start_offset(p->log);
        } else if (lp->timestamp == -1) {
            r->offset = hw;
        } else {
            int64_t at = rn_log_offset_for_time(p->log, lp->timestamp);
            r->offset = exact_offset(p, at, lp->timestamp, hw, &r->timestamp);
        }
        if (r->offset >= 0) /* the log end: the epoch of its last batch */
            r->leader_epoch =
                epoch_of(rn_log_leader_epochs(p->log),
                         r->offset > 0 && r->offset == hw ? r->offset - 1 : r->offset);
    }
    Runnel__ListOffsetsResponse lres = RUNNEL__LIST_OFFSETS_RESPONSE__INIT;
    lres.n_partitions = n;
    lres.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &lres;
    rn_request_respond(req, &h, NULL, 0);
    free(ptrs);
}
