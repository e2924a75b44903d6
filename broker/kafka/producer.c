/*
 * producer.c — Kafka's InitProducerId (API 22, v0–v4; v2+ flexible) for
 * idempotent producers, mapped onto the native InitProducer
 * (broker/api/init_producer.c).
 *
 *   request:  transactional_id (nullable string), transaction_timeout_ms i32,
 *             v3+: producer_id i64, producer_epoch i16 (KIP-360: the id and
 *             epoch the producer has, when it asks again after an error)
 *   response: throttle_time_ms i32, error_code i16, producer_id i64,
 *             producer_epoch i16
 *
 * The id comes from the broker's persisted allocator, as a native
 * producer's does, so a Kafka producer and a native one never share an id
 * and an id is never reused across restarts. The producer then stamps
 * (producer_id, epoch, base_sequence) into its RecordBatch v2 headers and
 * the Produce path checks them exactly as for native batches
 * (broker/part/producer_state.c): a retried batch is answered with its
 * first offset, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45), an older epoch
 * INVALID_PRODUCER_EPOCH (47).
 *
 * v3+ (librdkafka 2.0.2 asks for v4): a producer without a transactional id
 * gets a fresh producer id and epoch 0 whatever id and epoch it names, as
 * Kafka's transaction coordinator answers it ("blindly accept the request
 * and return a new producerId"); the two go together: one -1 without the
 * other is INVALID_REQUEST (42), as in Kafka's broker. A fresh id resets
 * the producer's sequences, which is what the epoch bump is for. A
 * transactional_id is refused by the native handler (no transactions):
 * INVALID_REQUEST (42).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/conn.h"

static void init_producer_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                                 unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    const Runnel__InitProducerResponse *ip =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_INIT_PRODUCER ? hdr->init_producer : NULL;
    int16_t err = rn_kafka_error((int)hdr->error_code);
    if (!err && !ip)
        err = RN_KAFKA_UNKNOWN_SERVER_ERROR;
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return;
    }
    bool fx = req->h.flexible;
    rn_kafka_response_begin(&o->w, req->h.correlation_id, fx);
    rn_kwrite_i32(&o->w, 0); /* throttle_time_ms */
    rn_kwrite_i16(&o->w, err);
    rn_kwrite_i64(&o->w, err ? -1 : ip->producer_id);
    rn_kwrite_i16(&o->w, err ? -1 : (int16_t)ip->producer_epoch);
    rn_kwrite_tags(&o->w, fx);
    rn_kafka_response_end(&o->w, 0);
    rn_kreq_answer(req, o);
}

/* The transactional id, copied for the native request (NULL: none). */
typedef struct pctx {
    char *transactional_id;
} pctx;

static void pctx_free(void *p)
{
    pctx *x = p;
    if (x)
        free(x->transactional_id);
    free(x);
}

int rn_kafka_init_producer_id(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    bool fx = req->h.flexible;
    rn_kstr tid = rn_kread_str(rd, fx, true);
    (void)rn_kread_i32(rd); /* transaction_timeout_ms: no transactions */
    bool half = false;
    if (req->h.api_version >= 3) {
        int64_t pid = rn_kread_i64(rd);
        int16_t epoch = rn_kread_i16(rd);
        half = (pid == -1) != (epoch == -1);
    }
    if (fx)
        rn_kread_tags(rd);
    if (rd->err)
        return rd->err;
    if (half) { /* an id without an epoch or the other way round */
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        eh.error_code = RN_E_INVALID_REQUEST;
        init_producer_answer(&req->call, &eh, NULL, 0);
        return 0;
    }
    pctx *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    req->ctx = x;
    req->ctx_free = pctx_free;
    Runnel__InitProducerRequest ip = RUNNEL__INIT_PRODUCER_REQUEST__INIT;
    if (tid.len > 0) {
        if (!(x->transactional_id = malloc((size_t)tid.len + 1)))
            return -ENOMEM;
        memcpy(x->transactional_id, tid.data, (size_t)tid.len);
        x->transactional_id[tid.len] = '\0';
        ip.transactional_id = x->transactional_id;
    }
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__INIT_PRODUCER;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_INIT_PRODUCER;
    h.init_producer = &ip;
    int rc = rn_kreq_call(req, &h, NULL, 0, init_producer_answer);
    if (rc < 0) {
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        eh.error_code = (uint32_t)-rc;
        init_producer_answer(&req->call, &eh, NULL, 0);
    }
    return 0;
}
