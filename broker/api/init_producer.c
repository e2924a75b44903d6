/*
 * api/init_producer.c — InitProducer: a producer id for an idempotent producer.
 *
 * Ids come from the broker's allocator (broker/part/producer_state.c), which
 * persists blocks of ids before handing any out, so an id is never reused
 * across restarts; the epoch is 0 (epochs bump with transactional ids, which
 * runnel does not have yet). Sequences then start at 0 per partition.
 */
#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"

void rn_handle_init_producer(rn_request *req)
{
    rn_broker *b = req->conn->r->b;
    if (req->fr.hdr->init_producer->transactional_id &&
        req->fr.hdr->init_producer->transactional_id[0]) {
        rn_request_fail(req, -RN_E_INVALID_REQUEST, "transactions are not supported");
        return;
    }
    int64_t pid;
    int rc = rn_producer_ids_next(&b->producer_ids, &pid);
    if (rc < 0) {
        rn_request_fail(req, -RN_E_STORAGE_ERROR, "cannot persist the next block of producer ids");
        return;
    }
    Runnel__InitProducerResponse ip = RUNNEL__INIT_PRODUCER_RESPONSE__INIT;
    ip.producer_id = pid;
    ip.producer_epoch = 0;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_INIT_PRODUCER;
    h.init_producer = &ip;
    rn_request_respond(req, &h, NULL, 0);
}
