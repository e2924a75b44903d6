/*
 * api/produce.c — Produce: append each record batch to its partition log.
 *
 * The payload holds the batches back to back in the order of the header's
 * partitions list (protocol/frame.c checked that the lengths add up). Each
 * batch is appended in place: the log stamps base offset and leader epoch
 * into the bytes (the CRC does not cover them) and writes them from the
 * receive buffer the request holds. It trusts the check below for the header
 * and CRC-32C (rn_log_append_checked), so each byte is summed once. The request
 * answers once every append has completed: with log.flush=always that is
 * after the shared fdatasync, so an acknowledgement means the data is on disk.
 *
 * Before anything is stored, each batch is validated whole as Kafka's broker
 * does (rn_batch_validate: header and CRC, then one pass over every record,
 * a zstd batch decompressed under a bound), against the topic's own
 * max.message.bytes. A batch whose records do not decode would otherwise be
 * stored and stop every reader of the partition at it; refused, its producer
 * gets the code and a sentence naming the record and the field.
 *
 * acks=0 gets no answer at all (Kafka's contract); acks=1 answers once the
 * append completed. acks=-1 (all) answers once the partition's high
 * watermark (rn_partition_high_watermark) has passed the batch: a batch the
 * high watermark does not cover when its append completes parks on the
 * partition's produce_waiters queue (part/waiters.h, Kafka's DelayedProduce)
 * until an append or a replica moves it, the request's timeout_ms passes
 * (REQUEST_TIMED_OUT, the data kept, as Kafka) or the partition closes; a
 * retry of it (an idempotent duplicate) waits the same way, answered with the
 * first copy's offset once the high watermark covers that copy. On
 * one node the high watermark is the flushed offset with flush=always, which
 * the log moves before it completes the append, else the log end: so today
 * nothing parks and acks=-1 answers as acks=1; with replication the high
 * watermark is the ISR's minimum (DESIGN §8) and the queue does the waiting.
 * Replicated (DESIGN §8): a broker that does not lead the partition answers
 * NOT_LEADER; a current_leader_epoch other than the partition's is fenced
 * (KIP-320); acks=-1 with fewer in-sync replicas than min.insync.replicas is
 * refused before the append (NOT_ENOUGH_REPLICAS), and a parked batch whose
 * ISR falls below it answers NOT_ENOUGH_REPLICAS_AFTER_APPEND; a leader
 * that becomes a follower answers its parked batches NOT_LEADER.
 * A failure is reported per partition; the other partitions of the request
 * are appended regardless.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/metrics.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/part/partitions.h"
#include "protocol/container_of.h"
#include "protocol/topic_name.h"

typedef struct produce_state produce_state;

typedef struct produce_part {
    produce_state *st;
    rn_partition *p;
    size_t i;
    size_t len;
    bool idempotent; /* recorded in the producer state as in flight */
    int64_t producer_id;
    int32_t base_sequence;
    rn_waiter wt;         /* acks=-1: parked on p->produce_waiters */
    int64_t need_hw;      /* acks=-1: the high watermark that covers the batch */
    int32_t leader_epoch; /* acks=-1: the epoch p led in when it appended */
} produce_part;

struct produce_state {
    rn_request *req;
    int acks;
    size_t n;
    int pending;
    Runnel__ProducePartitionResponse *resp;
    Runnel__ProducePartitionResponse **ptrs;
    produce_part *parts;
    char (*msgs)[320];
};

static void finish(produce_state *st)
{
    rn_request *req = st->req;
    req->state = NULL;
    if (st->acks == 0) {
        rn_metrics_observe(&req->conn->r->metrics, req->api, 0, rn_now_ns() - req->start_ns);
        rn_request_free(req);
    } else {
        Runnel__ProduceResponse pr = RUNNEL__PRODUCE_RESPONSE__INIT;
        pr.n_partitions = st->n;
        pr.partitions = st->ptrs;
        Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
        h.body_case = RUNNEL__RESPONSE_HEADER__BODY_PRODUCE;
        h.produce = &pr;
        rn_request_respond(req, &h, NULL, 0);
    }
    free(st->resp);
    free(st->ptrs);
    free(st->parts);
    free(st->msgs);
    free(st);
}

/* Wire code for an append error: runnel's own codes pass through (a batch
 * error says which field is wrong); system errors are STORAGE_ERROR. */
static uint32_t wire_code(int err)
{
    if (err == -RN_E_LOG_FAILED)
        return RN_E_STORAGE_ERROR;
    return rn_is_rn_error(err) ? (uint32_t)-err : RN_E_STORAGE_ERROR;
}

static void set_error(produce_state *st, size_t i, int err, const char *detail)
{
    Runnel__ProducePartitionResponse *r = &st->resp[i];
    r->error_code = wire_code(err);
    if (detail && *detail && !rn_is_rn_error(err))
        /* The log's message names partition, segment and cause already
         * ("orders-3: segment …: write at 4096: No space left on device"). */
        snprintf(st->msgs[i], sizeof(st->msgs[i]), "%s", detail);
    else if (detail && *detail)
        snprintf(st->msgs[i], sizeof(st->msgs[i]), "%s: %s", rn_strerror(err), detail);
    else
        snprintf(st->msgs[i], sizeof(st->msgs[i]), "%s", rn_strerror(err));
    r->error_message = st->msgs[i];
}

/* Zstd records may expand to this much, or to the topic's max.message.bytes
 * when that is larger: a batch that would be accepted uncompressed is
 * accepted compressed. Decompression runs on the reactor, once per batch. */
#define MAX_UNCOMPRESSED ((size_t)64 << 20)

/* Validate one produced batch against its partition's topic config. */
static int validate(rn_partition *p, const uint8_t *batch, size_t len, rn_batch_header *h,
                    char *why, size_t why_len)
{
    size_t max_len = rn_log_config_of(p->log)->max_batch_bytes;
    size_t max_unc = max_len > MAX_UNCOMPRESSED ? max_len : MAX_UNCOMPRESSED;
    return rn_batch_validate(batch, len, max_len, max_unc, h, why, why_len);
}

/* A parked acks=-1 batch: the high watermark moved, the request timed out or
 * the partition is closing. */
static void acks_woken(rn_waiter *wt, rn_wake_why why)
{
    produce_part *pp = RN_CONTAINER_OF(wt, produce_part, wt);
    produce_state *st = pp->st;
    if (why == RN_WAKE_MOVED) {
        int rc = rn_partition_acks_all(pp->p, pp->leader_epoch, pp->need_hw);
        if (rc == 0)
            return; /* stays parked */
        if (rc == -RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND)
            set_error(st, pp->i, rc,
                      "the in-sync replicas fell below min.insync.replicas while the batch "
                      "waited for acks=all");
        else if (rc < 0)
            set_error(st, pp->i, rc,
                      "this broker stopped leading the partition while the batch waited for "
                      "acks=all");
        rn_waiter_leave(wt);
    } else if (why == RN_WAKE_TIMEOUT) {
        set_error(st, pp->i, -RN_E_TIMEOUT,
                  "the high watermark did not reach the batch within the request's timeout_ms");
    } else if (pp->p->deleting) {
        set_error(st, pp->i, -RN_E_UNKNOWN_TOPIC,
                  "the partition was deleted while the batch waited for acks=all");
    } else if (rn_partition_check_leader(pp->p) < 0) {
        set_error(st, pp->i, -RN_E_NOT_LEADER,
                  "this broker stopped leading the partition while the batch waited for acks=all");
    } else {
        set_error(st, pp->i, -RN_E_SHUTTING_DOWN,
                  "the broker stopped while the batch waited for acks=all");
    }
    if (--st->pending == 0)
        finish(st);
}

static void appended(void *arg, int err, int64_t base, int64_t last)
{
    produce_part *pp = arg;
    produce_state *st = pp->st;
    rn_partition *p = pp->p;
    Runnel__ProducePartitionResponse *r = &st->resp[pp->i];
    p->n_inflight--;
    if (pp->idempotent) {
        if (err)
            rn_producer_state_failed(p->ps, pp->producer_id, pp->base_sequence);
        else
            rn_producer_state_appended(p->ps, pp->producer_id, pp->base_sequence, base);
    }
    if (err) {
        p->m.produce_errors++;
        set_error(st, pp->i, err, p->log ? rn_log_errmsg(p->log) : NULL);
        rn_partition_storage_failed(p, err, pp->len);
    } else {
        rn_partition_storage_ok(p);
        r->base_offset = base;
        r->log_start_offset = p->log ? rn_log_start_offset(p->log) : -1;
        p->m.bytes_in += pp->len;
        p->m.records_in += (uint64_t)(last - base + 1);
        p->m.batches_in++;
        rn_partition_wake(p);
        /* acks=all: only the leader that appended, still leading in that
         * epoch, may answer, once its high watermark covers the batch. An
         * append that completes after the partition stopped leading here
         * (its replica moved away and its log was abandoned, which runs
         * the completions; or it follows now) is not safe: the new leader
         * may never have had it (issue 13: acknowledged records lost at a
         * replica move). Appended, but the ISR shrank below
         * min.insync.replicas meanwhile: not safe until the controller
         * grows the ISR (Kafka answers the same). */
        int rc = st->acks == -1 ? rn_partition_acks_all(p, pp->leader_epoch, last + 1) : 1;
        if (rc == 0) {
            /* The high watermark is short of the batch: wait. */
            pp->need_hw = last + 1;
            uint32_t t = st->req->fr.hdr->produce->timeout_ms;
            rn_waiter_park(&p->produce_waiters, &pp->wt, t > 0 ? rn_now_ms() + t : -1);
            return;
        }
        if (rc < 0)
            set_error(st, pp->i, rc,
                      rc == -RN_E_NOT_LEADER ? "this broker stopped leading the partition before "
                                               "the batch's append completed"
                                             : NULL);
    }
    if (--st->pending == 0)
        finish(st);
}

void rn_handle_produce(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    Runnel__ProduceRequest *pr = req->fr.hdr->produce;
    size_t n = pr->n_partitions;
    produce_state *st = calloc(1, sizeof(*st));
    if (!st) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    st->req = req;
    st->acks = pr->acks;
    st->n = n;
    st->resp = calloc(n ? n : 1, sizeof(*st->resp));
    st->ptrs = calloc(n ? n : 1, sizeof(*st->ptrs));
    st->parts = calloc(n ? n : 1, sizeof(*st->parts));
    st->msgs = calloc(n ? n : 1, sizeof(*st->msgs));
    if (!st->resp || !st->ptrs || !st->parts || !st->msgs) {
        free(st->resp);
        free(st->ptrs);
        free(st->parts);
        free(st->msgs);
        free(st);
        rn_request_fail(req, -ENOMEM, "out of memory");
        return;
    }
    req->state = st;
    /* Hold the request open until the loop is done, even if every append
     * completes synchronously (they never do: callbacks run from rn_io_run). */
    st->pending = 1;
    size_t off = 0;
    uint8_t *payload = (uint8_t *)req->fr.payload;
    for (size_t i = 0; i < n; i++) {
        Runnel__ProducePartition *pp = pr->partitions[i];
        Runnel__ProducePartitionResponse *r = &st->resp[i];
        runnel__produce_partition_response__init(r);
        st->ptrs[i] = r;
        r->topic = pp->topic;
        r->partition = pp->partition;
        r->base_offset = -1;
        r->log_append_time = -1;
        r->log_start_offset = -1;
        /* A sub-request from another reactor names its batches (shard.c). */
        uint8_t *batch = req->batches ? req->batches[i] : payload + off;
        size_t len = pp->batch_len;
        off += len;

        if (rn_topic_is_internal(pp->topic)) {
            /* __offsets and friends are written by the broker only. */
            set_error(st, i, -RN_E_INVALID_TOPIC, "internal topics are written by the broker only");
            continue;
        }
        int lrc;
        rn_partition *p = rn_partition_lookup(b, pp->topic, pp->partition, -1, &lrc);
        if (!p) {
            set_error(st, i, lrc, lrc == -RN_E_STORAGE_ERROR ? "partition log is not open" : NULL);
            continue;
        }
        /* Replication (DESIGN §8): only the leader appends, in the epoch
         * the producer knows (KIP-320, when it says), and acks=all only
         * while the ISR holds min.insync.replicas (checked before the
         * append, as Kafka does). */
        int32_t epoch = pp->leader_epoch_check_case ==
                                RUNNEL__PRODUCE_PARTITION__LEADER_EPOCH_CHECK_CURRENT_LEADER_EPOCH
                            ? pp->current_leader_epoch
                            : -1;
        int crc = rn_partition_check_leader(p);
        if (crc == 0)
            crc = rn_partition_check_epoch(p, epoch < 0 ? -1 : epoch);
        if (crc == 0 && st->acks == -1)
            crc = rn_partition_check_min_isr(p);
        if (crc < 0) {
            p->m.produce_errors++;
            set_error(st, i, crc, NULL);
            continue;
        }
        char why[256];
        rn_batch_header bh;
        int vrc = validate(p, batch, len, &bh, why, sizeof(why));
        if (vrc < 0) {
            p->m.produce_errors++;
            set_error(st, i, vrc, why);
            continue;
        }
        produce_part *part = &st->parts[i];
        part->st = st;
        part->p = p;
        part->i = i;
        part->len = len;
        rn_waiter_init(&part->wt, acks_woken);
        /* Idempotent producer: a retry of a batch already in the log gets its
         * first offset back instead of a second copy; a gap is refused. */
        if (bh.producer_id >= 0) {
            int64_t dup = -1;
            int v = rn_producer_state_check(p->ps, &bh, &dup);
            if (v < 0) {
                p->m.produce_errors++;
                set_error(st, i, v, NULL);
                continue;
            }
            if (v == RN_PRODUCER_DUPLICATE) {
                r->base_offset = dup;
                r->log_start_offset = rn_log_start_offset(p->log);
                if (st->acks == -1) {
                    /* The first copy may not be committed yet (its answer
                     * was lost, or is still parked): the retry's answer
                     * waits for the same high watermark (Kafka's too). */
                    int64_t need = dup + bh.last_offset_delta + 1;
                    int arc = rn_partition_acks_all(p, p->leader_epoch, need);
                    if (arc < 0) {
                        set_error(st, i, arc, NULL);
                    } else if (arc == 0) {
                        part->need_hw = need;
                        part->leader_epoch = p->leader_epoch;
                        rn_waiter_park(&p->produce_waiters, &part->wt,
                                       pr->timeout_ms > 0 ? rn_now_ms() + pr->timeout_ms : -1);
                        st->pending++;
                    }
                }
                continue;
            }
            part->idempotent = true;
            part->producer_id = bh.producer_id;
            part->base_sequence = bh.base_sequence;
        }
        part->leader_epoch = p->leader_epoch;
        /* validate summed the batch; the log need not sum it again. */
        int rc = rn_log_append_checked(p->log, batch, len, &bh, p->leader_epoch, appended, part);
        if (rc < 0) {
            if (part->idempotent)
                rn_producer_state_failed(p->ps, part->producer_id, part->base_sequence);
            p->m.produce_errors++;
            set_error(st, i, rc, rn_is_rn_error(rc) ? NULL : rn_log_errmsg(p->log));
            rn_partition_storage_failed(p, rc, len);
            continue;
        }
        p->n_inflight++;
        st->pending++;
    }
    if (--st->pending == 0)
        finish(st);
}
