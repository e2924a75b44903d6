/*
 * epochs.c — Kafka's OffsetsForLeaderEpoch (API 23, v0–v4; v4 flexible:
 * compact strings and arrays, tagged fields after each partition, each
 * topic and the whole, response header v1): where a leader
 * epoch ended in a partition's log, so a consumer that saw records of an
 * older leader can tell whether the log was truncated under it (KIP-101,
 * KIP-320).
 *
 *   request:  [v3+ replica_id i32] topics [name, partitions [partition i32,
 *             v2+ current_leader_epoch i32, leader_epoch i32]]
 *   response: [v2+ throttle_time_ms i32] topics [name, partitions
 *             [error_code i16, partition i32, v1+ leader_epoch i32,
 *             end_offset i64]]
 *
 * It becomes the native OffsetsForLeaderEpoch (API 17,
 * broker/api/offsets_for_leader_epoch.c), the one copy of the rule that
 * followers use too, so partition ownership across reactors is the native
 * path's: the owner answers from its log's leader-epoch cache
 * (rn_log_end_offset_for_epoch: the start of the next epoch it knows, the
 * log end offset for the latest, (-1, -1) for an epoch newer than any).
 * current_leader_epoch (v2+, -1 not to check) is checked against the
 * partition's: older FENCED_LEADER_EPOCH (74), newer UNKNOWN_LEADER_EPOCH
 * (75). As in Kafka, only the leader answers (NOT_LEADER_OR_FOLLOWER on a
 * follower). The request goes as a consumer's (replica_id -1) whatever
 * Kafka's replica_id says. The native answer lists the partitions in request order,
 * which the answer below relies on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/conn.h"

typedef struct etopic {
    char *name;
    size_t first, n; /* partitions of the request */
} etopic;

typedef struct ectx {
    etopic *topics;
    size_t n_topics;
    Runnel__OffsetsForLeaderEpochPartition *parts;
    Runnel__OffsetsForLeaderEpochPartition **ptrs;
    size_t n_parts;
} ectx;

static void ectx_free(void *p)
{
    ectx *x = p;
    if (!x)
        return;
    for (size_t i = 0; i < x->n_topics; i++)
        free(x->topics[i].name);
    free(x->topics);
    free(x->parts);
    free(x->ptrs);
    free(x);
}

static void epochs_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                          unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    ectx *x = req->ctx;
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    int16_t v = req->h.api_version;
    bool fx = req->h.flexible;
    const Runnel__OffsetsForLeaderEpochResponse *er =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH
            ? hdr->offsets_for_leader_epoch
            : NULL;
    int16_t whole = rn_kafka_error((int)hdr->error_code);
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return;
    }
    rn_kwriter *w = &o->w;
    rn_kafka_response_begin(w, req->h.correlation_id, fx);
    if (v >= 2)
        rn_kwrite_i32(w, 0); /* throttle_time_ms */
    rn_kwrite_array(w, fx, (int32_t)x->n_topics);
    for (size_t t = 0; t < x->n_topics; t++) {
        const etopic *et = &x->topics[t];
        rn_kwrite_str(w, fx, et->name);
        rn_kwrite_array(w, fx, (int32_t)et->n);
        for (size_t j = 0; j < et->n; j++) {
            size_t at = et->first + j;
            const Runnel__OffsetsForLeaderEpochPartitionResponse *r =
                er && at < er->n_partitions ? er->partitions[at] : NULL;
            int16_t err = r ? rn_kafka_error((int)r->error_code)
                            : (whole ? whole : RN_KAFKA_UNKNOWN_SERVER_ERROR);
            rn_kwrite_i16(w, err);
            rn_kwrite_i32(w, x->parts[at].partition);
            if (v >= 1)
                rn_kwrite_i32(w, r && !err ? r->leader_epoch : -1);
            rn_kwrite_i64(w, r && !err ? r->end_offset : -1);
            rn_kwrite_tags(w, fx);
        }
        rn_kwrite_tags(w, fx);
    }
    rn_kwrite_tags(w, fx);
    rn_kafka_response_end(w, 0);
    rn_kreq_answer(req, o);
}

/* One partition of the request: partition, v2+ current_leader_epoch,
 * leader_epoch, and its tagged fields when flexible. */
static void read_partition(rn_kreader *rd, int16_t v, bool fx, int32_t *partition, int32_t *current,
                           int32_t *epoch)
{
    *partition = rn_kread_i32(rd);
    *current = v >= 2 ? rn_kread_i32(rd) : -1; /* KIP-320: -1 not to check */
    *epoch = rn_kread_i32(rd);
    if (fx)
        rn_kread_tags(rd);
}

int rn_kafka_offsets_for_leader_epoch(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    int16_t v = req->h.api_version;
    bool fx = req->h.flexible;
    if (v >= 3)
        (void)rn_kread_i32(rd); /* replica_id: a consumer's, whatever it says */
    int32_t nt = rn_kread_array(rd, fx, false, fx ? 1 + 1 + 1 : 2 + 4);
    if (rd->err)
        return rd->err;
    /* First pass: how many partitions (each array count is bounded by the
     * bytes left, codec.c), so every table is sized once. */
    size_t per = 4 + (v >= 2 ? 4 : 0) + 4 + (fx ? 1 : 0), n_parts = 0, mark = rd->pos;
    for (int32_t t = 0; t < nt && !rd->err; t++) {
        (void)rn_kread_str(rd, fx, false);
        int32_t np = rn_kread_array(rd, fx, false, per);
        for (int32_t p = 0; p < np && !rd->err; p++) {
            int32_t a, b, c;
            read_partition(rd, v, fx, &a, &b, &c);
        }
        if (fx)
            rn_kread_tags(rd);
        n_parts += np > 0 ? (size_t)np : 0;
    }
    if (rd->err)
        return rd->err;
    rd->pos = mark;
    ectx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    req->ctx = x;
    req->ctx_free = ectx_free;
    x->topics = calloc((size_t)nt + 1, sizeof(*x->topics));
    x->parts = calloc(n_parts + 1, sizeof(*x->parts));
    x->ptrs = calloc(n_parts + 1, sizeof(*x->ptrs));
    if (!x->topics || !x->parts || !x->ptrs)
        return -ENOMEM;
    for (int32_t t = 0; t < nt; t++) {
        rn_kstr name = rn_kread_str(rd, fx, false);
        etopic *et = &x->topics[x->n_topics++];
        if (!(et->name = malloc((size_t)name.len + 1)))
            return -ENOMEM;
        memcpy(et->name, name.data, (size_t)name.len);
        et->name[name.len] = '\0';
        et->first = x->n_parts;
        int32_t np = rn_kread_array(rd, fx, false, per);
        for (int32_t p = 0; p < np; p++) {
            Runnel__OffsetsForLeaderEpochPartition *ep = &x->parts[x->n_parts];
            runnel__offsets_for_leader_epoch_partition__init(ep);
            x->ptrs[x->n_parts++] = ep;
            et->n++;
            ep->topic = et->name;
            read_partition(rd, v, fx, &ep->partition, &ep->current_leader_epoch, &ep->leader_epoch);
        }
        if (fx)
            rn_kread_tags(rd);
    }
    if (fx)
        rn_kread_tags(rd);
    if (rd->err)
        return rd->err;
    Runnel__OffsetsForLeaderEpochRequest er = RUNNEL__OFFSETS_FOR_LEADER_EPOCH_REQUEST__INIT;
    er.replica_id = -1;
    er.n_partitions = x->n_parts;
    er.partitions = x->ptrs;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH;
    h.offsets_for_leader_epoch = &er;
    int rc = rn_kreq_call(req, &h, NULL, 0, epochs_answer);
    if (rc < 0) {
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        eh.error_code = (uint32_t)-rc;
        epochs_answer(&req->call, &eh, NULL, 0);
    }
    return 0;
}
