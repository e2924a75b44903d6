/*
 * api/reassign.c — ReassignPartitions (19): move partitions' replicas
 * between brokers (Kafka's AlterPartitionReassignments; DESIGN §8).
 *
 * Runs on reactor 0 (the metadata owner; rn_shard_route sends it there).
 * Each partition's move is one metadata change (rn_metadata_reassign); the
 * request is answered once every change has applied or failed, each with its
 * own error. Accepting a move is not finishing it: the new replicas catch up
 * as followers and the move completes in the metadata once they are in sync
 * (`runnel topic describe` shows target replicas until then).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/meta/metadata.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "protocol/errors.h"

#define MAX_MOVES 1000

typedef struct move_state move_state;

typedef struct move_ctx {
    move_state *st;
    size_t i;
} move_ctx;

struct move_state {
    rn_request *req;
    size_t n, pending;
    Runnel__PartitionReassignmentResult *res, **ptrs;
    move_ctx *ctx;
    char (*msgs)[256];
};

static void finish(move_state *st)
{
    Runnel__ReassignPartitionsResponse rr = RUNNEL__REASSIGN_PARTITIONS_RESPONSE__INIT;
    rr.n_results = st->n;
    rr.results = st->ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_REASSIGN_PARTITIONS;
    h.reassign_partitions = &rr;
    rn_request_respond(st->req, &h, NULL, 0);
    free(st->res);
    free(st->ptrs);
    free(st->ctx);
    free(st->msgs);
    free(st);
}

static void set_result(move_state *st, size_t i, int err, const char *msg)
{
    if (!err)
        return;
    st->res[i].error_code = (uint32_t)(err < 0 ? -err : err);
    snprintf(st->msgs[i], sizeof(st->msgs[i]), "%s", msg && *msg ? msg : rn_strerror(err));
    st->res[i].error_message = st->msgs[i];
}

static void moved(void *arg, int err, const char *errmsg)
{
    move_ctx *ctx = arg;
    move_state *st = ctx->st;
    if (err == -RN_E_FENCED_LEADER_EPOCH)
        errmsg = "the partition changed while the move was decided; ask again";
    set_result(st, ctx->i, err, errmsg);
    if (--st->pending == 0)
        finish(st);
}

void rn_handle_reassign_partitions(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__ReassignPartitionsRequest *rq = req->fr.hdr->reassign_partitions;
    size_t n = rq->n_reassignments;
    if (n == 0 || n > MAX_MOVES) {
        rn_request_fail(req, -RN_E_INVALID_REQUEST,
                        n ? "at most 1000 partitions per request" : "no partition to move");
        return;
    }
    move_state *st = calloc(1, sizeof(*st));
    if (st) {
        st->res = calloc(n, sizeof(*st->res));
        st->ptrs = calloc(n, sizeof(*st->ptrs));
        st->ctx = calloc(n, sizeof(*st->ctx));
        st->msgs = calloc(n, sizeof(*st->msgs));
    }
    if (!st || !st->res || !st->ptrs || !st->ctx || !st->msgs) {
        if (st) {
            free(st->res);
            free(st->ptrs);
            free(st->ctx);
            free(st->msgs);
            free(st);
        }
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    st->req = req;
    st->n = n;
    st->pending = 1; /* the loop's own hold */
    for (size_t i = 0; i < n; i++) {
        const Runnel__PartitionReassignment *m = rq->reassignments[i];
        runnel__partition_reassignment_result__init(&st->res[i]);
        st->res[i].topic = m->topic;
        st->res[i].partition = m->partition;
        st->ptrs[i] = &st->res[i];
        st->ctx[i] = (move_ctx){st, i};
        char err[256] = "";
        if (m->throttle_rate < 0) {
            set_result(st, i, -RN_E_INVALID_REQUEST, "a throttle is bytes/s, 0 or more");
            continue;
        }
        int rc = rn_metadata_reassign(b->md, m->topic, m->partition, m->replicas, m->n_replicas,
                                      m->throttle_rate, moved, &st->ctx[i], err, sizeof(err));
        if (rc < 0)
            set_result(st, i, rc, err);
        else
            st->pending++;
    }
    if (--st->pending == 0)
        finish(st);
}
