/*
 * producer_idem.c — the idempotent producer's state: the producer id and
 * epoch (InitProducer), the sequences stamped into each partition's batches,
 * the batches in doubt, and the new id taken after a batch fails for good.
 *
 * How it fits: producer.c batches, sends and answers (see its top comment for
 * the life of a record); it calls in here to stamp a batch before its first
 * send (send_round), to ask whether a partition must wait for a new id, and,
 * when a batch fails for good or expires, to close or reset the gap its
 * sequence leaves. This file keeps invariants 5 to 7 of producer.c; the
 * producer's state, shared by the two files, is in producer_int.h.
 */
#include <stdbool.h>
#include <stdint.h>

#include "clients/internal.h"
#include "clients/producer_int.h"
#include "protocol/batch.h"

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Write the producer id, epoch and the partition's next sequence into b's
 * header and recompute the CRC, which covers them. Once per batch. */
void rn__producer_stamp(rn_producer *p, pbatch *b)
{
    ppart *pp = b->pp;
    uint8_t *h = b->buf;
    put_be(h + RN_BATCH_OFF_PRODUCER_ID, (uint64_t)p->pid, 8);
    put_be(h + RN_BATCH_OFF_PRODUCER_EPOCH, (uint16_t)p->epoch, 2);
    put_be(h + RN_BATCH_OFF_BASE_SEQUENCE, (uint32_t)pp->next_sequence, 4);
    put_be(h + RN_BATCH_OFF_CRC, rn_crc32c(h + RN_BATCH_CRC_START, b->len - RN_BATCH_CRC_START), 4);
    b->idem_gen = p->idem_gen;
    b->base_sequence = pp->next_sequence;
    /* Sequences wrap to 0 after INT32_MAX, as Kafka's do. */
    pp->next_sequence = (int32_t)(((int64_t)pp->next_sequence + b->n) % ((int64_t)INT32_MAX + 1));
    b->stamped = true;
}

/* Whether a batch of pp waiting in its queue is in doubt: an attempt of it
 * ended without a verdict (b->doubt), so it may be in the log already. A
 * batch sent whose every attempt the leader refused (rn__producer_refused_before_append)
 * is not: it is in no log, and may take a new sequence or id like one never
 * sent (Kafka's producer re-sequences such batches too). Sent batches come
 * before unsent ones in a queue (only the head is ever sent). */
bool rn__producer_queued_in_doubt(const ppart *pp)
{
    for (const pbatch *b = pp->q_head; b && b->sent; b = b->next)
        if (b->doubt)
            return true;
    return false;
}

/* Whether a batch is in doubt: in flight (no answer yet), or back in its
 * queue after an attempt without a verdict. Such a batch may be in the log
 * already (the answer was lost), so it must go on under its own id and
 * sequence until the leader says where it is or its delivery.timeout.ms
 * fails it: sent again under a new id it would be stored twice. */
static bool any_in_doubt(const rn_producer *p)
{
    part_iter it = {0};
    for (ppart *pp; (pp = rn__producer_next_part(p, &it));)
        if (pp->n_inflight > 0 || rn__producer_queued_in_doubt(pp))
            return true;
    return false;
}

/* The new producer id rn__producer_idem_reset asked for, once no batch is in doubt (as
 * Kafka's producer bumps its epoch only when its unresolved sequences are
 * resolved, KIP-360): batches not yet sent get sequences from 0 under it. */
void rn__producer_idem_bump_maybe(rn_producer *p)
{
    if (!p->idem_bump || p->idem == IDEM_OFF || any_in_doubt(p))
        return;
    p->idem_bump = false;
    p->idem = IDEM_NEED;
    p->idem_retry_at = 0;
    p->idem_gen++;
    part_iter it = {0};
    for (ppart *pp; (pp = rn__producer_next_part(p, &it));) {
        pp->next_sequence = 0;
        for (pbatch *b = pp->q_head; b; b = b->next)
            b->stamped = false; /* none in doubt: any_in_doubt said so */
    }
}

/* A stamped batch failed for good: its partition's sequences have a gap the
 * leader would refuse, so the producer needs a new id. Until the batches in
 * doubt are resolved it keeps the old one: they are retried under it, and
 * batches never sent wait (send_round). */
void rn__producer_idem_reset(rn_producer *p)
{
    if (p->idem == IDEM_OFF || p->closing)
        return;
    p->idem_bump = true;
    rn__producer_idem_bump_maybe(p);
}

/* A sent batch b failed for good and the leader said it did not append it
 * (STORAGE_ERROR: the write failed, and the leader forgot its sequence and
 * every later one of this producer), and no attempt of it ended in doubt.
 * With nothing else of its partition in doubt (in flight, or waiting for a
 * retry after an attempt without a verdict), the partition's sequences go
 * back to b's, and queued batches are stamped again from there, those sent
 * and refused too (the batches pipelined behind b, answered
 * OUT_OF_ORDER_SEQUENCE: Kafka's producer moves their sequences back the
 * same way, adjustSequencesDueToFailedBatch): no gap, so no new producer id
 * (on a full disk, a new id per failed batch would soon need a write the
 * disk cannot take). Otherwise the gap is real: rn__producer_idem_reset. */
void rn__producer_idem_gap(rn_producer *p, pbatch *b, int err)
{
    ppart *pp = b->pp;
    if (!b->stamped || b->idem_gen != p->idem_gen)
        return; /* never stamped, or under an id given up already */
    if (err != -RN_E_STORAGE_ERROR || b->doubt || pp->n_inflight > 0 ||
        rn__producer_queued_in_doubt(pp)) {
        rn__producer_idem_reset(p);
        return;
    }
    pp->next_sequence = b->base_sequence;
    for (pbatch *q = pp->q_head; q; q = q->next)
        q->stamped = false;
}

/* Answers by which the leader refused a batch before appending it: an
 * attempt that ends with one leaves no doubt. Any other end (a lost
 * connection, a timeout, NOT_LEADER from a leader that may have appended it
 * before it stepped down) may have left the batch in the log. */
bool rn__producer_refused_before_append(int err)
{
    switch (err) {
    case -RN_E_OUT_OF_ORDER_SEQUENCE:
    case -RN_E_UNKNOWN_TOPIC:
    case -RN_E_STORAGE_ERROR:
    case -RN_E_NOT_ENOUGH_REPLICAS:
    case -RN_E_FENCED_LEADER_EPOCH:
    case -RN_E_UNKNOWN_LEADER_EPOCH:
        return true;
    default:
        return false;
    }
}

static void init_producer_cb(void *arg, rn__conn *c, int err, rn_frame_response *resp)
{
    rn_producer *p = arg;
    if (!err && resp->hdr->error_code)
        err = -(int)resp->hdr->error_code;
    if (!err) {
        p->pid = resp->hdr->init_producer->producer_id;
        p->epoch = (int16_t)resp->hdr->init_producer->producer_epoch;
        p->idem = p->pid >= 0 ? IDEM_READY : IDEM_OFF;
        return;
    }
    if (rn__retriable(err)) {
        p->idem = IDEM_NEED;
        p->idem_retry_at = rn__now_ms() + p->cl.conf->retry_backoff_ms;
        if (rn__needs_metadata(err))
            p->need_md = true;
        return;
    }
    /* A broker that does not know InitProducer, or refuses it: go on without. */
    rn__fail(&p->cl, err, "idempotence off: InitProducer to %s:%u failed: %s", c->host, c->port,
             rn_strerror(err));
    p->idem = IDEM_OFF;
}

void rn__producer_init_producer(rn_producer *p, int64_t now)
{
    Runnel__InitProducerRequest req = RUNNEL__INIT_PRODUCER_REQUEST__INIT;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_INIT_PRODUCER;
    h.init_producer = &req;
    rn__conn *c = rn__client_conn_any(&p->cl);
    if (c && rn__conn_send(c, &h, NULL, 0, RUNNEL__API__INIT_PRODUCER,
                           p->cl.conf->socket_timeout_ms, false, init_producer_cb, p) == 0) {
        p->idem = IDEM_WAIT;
        return;
    }
    p->idem_retry_at = now + p->cl.conf->retry_backoff_ms;
}
