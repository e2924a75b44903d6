/*
 * produce.c — JSON records to one Produce request, and its answer back to
 * per-record offsets (see produce.h for the partition rules).
 *
 * Steps: check every record and pick its partition (nothing is sent when one
 * record is bad: a 422 names it); build one batch per partition in record
 * order with rn_batch_builder; send the batches as one Produce request
 * (acks=all, so the answer means durable under log.flush=always) through the
 * gateway's in-process client; map the per-partition answer back to records:
 * record i of partition p has offset base_offset(p) + its index in p's batch.
 *
 * The broker's frame decoder checks each batch against message.max.bytes
 * before anything is appended, so an oversized request is a 413 at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/gateway/produce.h"
#include "broker/meta/metadata.h"
#include "protocol/batch.h"

#define MAX_HEADERS_PER_RECORD 64

typedef struct produce_call {
    rn_gw_call call; /* first: the client's list links it */
    rn_gw_produce_cb cb;
    void *arg;
    size_t n_records;
    int32_t *rec_partition; /* partition of record i */
    int32_t *rec_slot;      /* which batch (request partition) holds record i */
    int32_t *rec_index;     /* its index in that batch */
} produce_call;

static void call_free(produce_call *pc)
{
    free(pc->rec_partition);
    free(pc->rec_slot);
    free(pc->rec_index);
    free(pc);
}

static void dropped(rn_gw_call *call)
{
    produce_call *pc = (produce_call *)call;
    pc->cb(pc->arg, 0, 0, NULL, NULL);
    call_free(pc);
}

static void answered(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                     unsigned n_slices)
{
    produce_call *pc = (produce_call *)call;
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    if (hdr->error_code || hdr->body_case != RUNNEL__RESPONSE_HEADER__BODY_PRODUCE) {
        int status, code;
        int err = hdr->error_code ? -(int)hdr->error_code : -RN_E_UNKNOWN;
        rn_gw_error_map(err, true, &status, &code);
        pc->cb(pc->arg, status, code,
               hdr->error_message && *hdr->error_message ? hdr->error_message : rn_strerror(err),
               NULL);
        call_free(pc);
        return;
    }
    Runnel__ProduceResponse *pr = hdr->produce;
    json_t *offsets = json_array();
    if (!offsets) {
        pc->cb(pc->arg, 500, 50001, "out of memory", NULL);
        call_free(pc);
        return;
    }
    for (size_t i = 0; i < pc->n_records; i++) {
        json_t *o = json_object();
        if (!o)
            break;
        json_object_set_new(o, "partition", json_integer(pc->rec_partition[i]));
        Runnel__ProducePartitionResponse *r =
            (size_t)pc->rec_slot[i] < pr->n_partitions ? pr->partitions[pc->rec_slot[i]] : NULL;
        if (!r || r->error_code) {
            int status, code;
            int err = r ? -(int)r->error_code : -RN_E_UNKNOWN;
            rn_gw_error_map(err, true, &status, &code);
            json_object_set_new(o, "offset", json_null());
            json_object_set_new(o, "error_code", json_integer(code));
            json_object_set_new(o, "error",
                                json_string(r && r->error_message && *r->error_message
                                                ? r->error_message
                                                : rn_strerror(err)));
        } else {
            json_object_set_new(o, "offset", json_integer(r->base_offset + pc->rec_index[i]));
            json_object_set_new(o, "error_code", json_null());
            json_object_set_new(o, "error", json_null());
        }
        json_array_append_new(offsets, o);
    }
    pc->cb(pc->arg, 200, 0, NULL, offsets);
    json_decref(offsets);
    call_free(pc);
}

typedef struct record_in {
    uint8_t *key, *value;
    size_t key_len, value_len;
    bool key_null, value_null;
    size_t n_headers;
    rn_record_header headers[MAX_HEADERS_PER_RECORD];
    uint8_t *header_bufs[MAX_HEADERS_PER_RECORD]; /* decoded header values (binary) */
} record_in;

static void record_in_fini(record_in *ri)
{
    free(ri->key);
    free(ri->value);
    for (size_t h = 0; h < ri->n_headers; h++)
        free(ri->header_bufs[h]);
}

/* Parse one record's key, value and headers. */
static int record_in_parse(json_t *rec, size_t i, enum rn_gw_format fmt, bool raw_strings,
                           record_in *ri, char *msg, size_t msglen)
{
    char err[160] = "";
    memset(ri, 0, sizeof(*ri));
    int rc = rn_json_bytes_of(json_object_get(rec, "key"), fmt, raw_strings, &ri->key, &ri->key_len,
                              &ri->key_null, err, sizeof(err));
    if (rc < 0) {
        snprintf(msg, msglen, "records[%zu].key: %s", i, err);
        return rc;
    }
    rc = rn_json_bytes_of(json_object_get(rec, "value"), fmt, raw_strings, &ri->value,
                          &ri->value_len, &ri->value_null, err, sizeof(err));
    if (rc < 0) {
        snprintf(msg, msglen, "records[%zu].value: %s", i, err);
        return rc;
    }
    json_t *hs = json_object_get(rec, "headers");
    if (hs && !json_is_null(hs)) {
        if (!json_is_array(hs) || json_array_size(hs) > MAX_HEADERS_PER_RECORD) {
            snprintf(msg, msglen, "records[%zu].headers: expected an array of at most %d", i,
                     MAX_HEADERS_PER_RECORD);
            return -EINVAL;
        }
        for (size_t h = 0; h < json_array_size(hs); h++) {
            json_t *ho = json_array_get(hs, h);
            json_t *name = json_object_get(ho, "name");
            if (!json_is_object(ho) || !json_is_string(name)) {
                snprintf(msg, msglen, "records[%zu].headers[%zu]: expected {\"name\",\"value\"}", i,
                         h);
                return -EINVAL;
            }
            rn_record_header *rh = &ri->headers[ri->n_headers];
            rh->name = (const uint8_t *)json_string_value(name);
            rh->name_len = (int32_t)json_string_length(name);
            json_t *v = json_object_get(ho, "value");
            uint8_t *vb = NULL;
            size_t vl = 0;
            bool vnull = false;
            /* Header values are bytes: a JSON string is taken as its text. */
            rc = rn_json_bytes_of(v, fmt, true, &vb, &vl, &vnull, err, sizeof(err));
            if (rc < 0) {
                snprintf(msg, msglen, "records[%zu].headers[%zu].value: %s", i, h, err);
                return rc;
            }
            ri->header_bufs[ri->n_headers] = vb;
            rh->value = vnull ? NULL : (vb ? vb : (const uint8_t *)"");
            rh->value_len = vnull ? -1 : (int32_t)vl;
            ri->n_headers++;
        }
    }
    return 0;
}

int rn_gw_produce(rn_gateway *gw, rn_gw_client *cl, const char *topic, int32_t partition,
                  json_t *records, enum rn_gw_format fmt, bool raw_strings, rn_gw_produce_cb cb,
                  void *arg, int *status, int *code, char *msg, size_t msglen)
{
    rn_broker *b = gw->b;
    *status = 422;
    *code = 42201;
    const rn_topic_info *t = rn_metadata_find(b->md, topic);
    if (!t) {
        *status = 404;
        *code = 40401;
        snprintf(msg, msglen, "topic '%s' not found", topic);
        return -RN_E_UNKNOWN_TOPIC;
    }
    int32_t n_parts = t->n_partitions;
    if (partition >= 0 && partition >= n_parts) {
        *status = 404;
        *code = 40402;
        snprintf(msg, msglen, "partition %d of topic '%s' not found", partition, topic);
        return -RN_E_UNKNOWN_TOPIC;
    }
    if (!json_is_array(records) || json_array_size(records) == 0) {
        snprintf(msg, msglen, "\"records\" must be a non-empty array");
        return -EINVAL;
    }
    size_t n = json_array_size(records);
    if (n > RN_GW_MAX_PRODUCE_RECORDS) {
        snprintf(msg, msglen, "at most %d records per request", RN_GW_MAX_PRODUCE_RECORDS);
        return -EINVAL;
    }
    int rc = -ENOMEM;
    produce_call *pc = calloc(1, sizeof(*pc));
    rn_batch_builder **bb = calloc((size_t)n_parts, sizeof(*bb));
    int32_t *slot_of = malloc((size_t)n_parts * sizeof(*slot_of));
    int32_t *count = calloc((size_t)n_parts, sizeof(*count));
    Runnel__ProducePartition *pp = NULL;
    Runnel__ProducePartition **ppp = NULL;
    uint8_t **batches = NULL;
    size_t *batch_lens = NULL;
    uint8_t *payload = NULL;
    int32_t n_slots = 0;
    if (!pc || !bb || !slot_of || !count)
        goto fail_nomem;
    pc->n_records = n;
    pc->rec_partition = malloc(n * sizeof(int32_t));
    pc->rec_slot = malloc(n * sizeof(int32_t));
    pc->rec_index = malloc(n * sizeof(int32_t));
    if (!pc->rec_partition || !pc->rec_slot || !pc->rec_index)
        goto fail_nomem;
    for (int32_t p = 0; p < n_parts; p++)
        slot_of[p] = -1;
    int64_t now = rn_now_ms();
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_array_get(records, i);
        if (!json_is_object(rec)) {
            snprintf(msg, msglen, "records[%zu]: expected an object", i);
            rc = -EINVAL;
            goto fail;
        }
        record_in ri;
        rc = record_in_parse(rec, i, fmt, raw_strings, &ri, msg, msglen);
        if (rc < 0) {
            record_in_fini(&ri);
            if (rc == -ENOMEM)
                goto fail_nomem;
            goto fail;
        }
        int32_t p = partition;
        json_t *jp = json_object_get(rec, "partition");
        if (p < 0 && jp && !json_is_null(jp)) {
            char what[48];
            int64_t v;
            snprintf(what, sizeof(what), "records[%zu].partition", i);
            if (rn_json_get_int(jp, what, 0, INT32_MAX, &v, msg, msglen) < 0) {
                record_in_fini(&ri);
                rc = -EINVAL;
                goto fail;
            }
            if (v >= n_parts) {
                record_in_fini(&ri);
                *status = 404;
                *code = 40402;
                snprintf(msg, msglen,
                         "records[%zu].partition: partition %lld of topic '%s' not found", i,
                         (long long)v, topic);
                rc = -RN_E_UNKNOWN_TOPIC;
                goto fail;
            }
            p = (int32_t)v;
        }
        if (p < 0 && !ri.key_null)
            p = (int32_t)(XXH3_64bits(ri.key_len ? ri.key : (const uint8_t *)"", ri.key_len) %
                          (uint64_t)n_parts);
        if (p < 0)
            p = (int32_t)(gw->rr++ % (uint32_t)n_parts);
        if (!bb[p]) {
            rc = rn_batch_builder_new(&bb[p], NULL);
            if (rc < 0) {
                record_in_fini(&ri);
                goto fail_nomem;
            }
            slot_of[p] = n_slots++;
        }
        rc = rn_batch_builder_add(
            bb[p], now, ri.key_null ? NULL : (ri.key ? ri.key : (uint8_t *)""), ri.key_len,
            ri.value_null ? NULL : (ri.value ? ri.value : (uint8_t *)""), ri.value_len, ri.headers,
            ri.n_headers);
        record_in_fini(&ri);
        if (rc < 0) {
            if (rc == -ENOMEM)
                goto fail_nomem;
            rn_gw_error_map(rc, true, status, code);
            snprintf(msg, msglen, "records[%zu]: %s", i, rn_strerror(rc));
            goto fail;
        }
        pc->rec_partition[i] = p;
        pc->rec_slot[i] = slot_of[p];
        pc->rec_index[i] = count[p]++;
    }
    /* One batch per partition, in slot order. */
    pp = calloc((size_t)n_slots, sizeof(*pp));
    ppp = calloc((size_t)n_slots, sizeof(*ppp));
    batches = calloc((size_t)n_slots, sizeof(*batches));
    batch_lens = calloc((size_t)n_slots, sizeof(*batch_lens));
    if (!pp || !ppp || !batches || !batch_lens)
        goto fail_nomem;
    size_t total = 0;
    for (int32_t p = 0; p < n_parts; p++) {
        if (!bb[p])
            continue;
        int32_t s = slot_of[p];
        rc = rn_batch_builder_finish(bb[p], &batches[s], &batch_lens[s]);
        if (rc < 0)
            goto fail_nomem;
        runnel__produce_partition__init(&pp[s]);
        pp[s].topic = (char *)topic;
        pp[s].partition = p;
        pp[s].batch_len = (uint32_t)batch_lens[s];
        ppp[s] = &pp[s];
        total += batch_lens[s];
    }
    payload = malloc(total ? total : 1);
    if (!payload)
        goto fail_nomem;
    size_t off = 0;
    for (int32_t s = 0; s < n_slots; s++) {
        memcpy(payload + off, batches[s], batch_lens[s]);
        off += batch_lens[s];
    }
    Runnel__ProduceRequest preq = RUNNEL__PRODUCE_REQUEST__INIT;
    preq.acks = -1;
    preq.timeout_ms = 30000;
    preq.n_partitions = (size_t)n_slots;
    preq.partitions = ppp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__PRODUCE;
    h.client_id = "runnel-gateway";
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
    h.produce = &preq;
    pc->cb = cb;
    pc->arg = arg;
    char err[256] = "";
    rc = rn_gw_client_call(cl, &h, payload, total, &pc->call, answered, dropped, err, sizeof(err));
    if (rc < 0) {
        rn_gw_error_map(rc, true, status, code);
        snprintf(msg, msglen, "%s", *err ? err : rn_strerror(rc));
        goto fail;
    }
    pc = NULL; /* the call owns it now */
    rc = 0;
    goto out;

fail_nomem:
    rc = -ENOMEM;
    *status = 500;
    *code = 50001;
    snprintf(msg, msglen, "out of memory");
fail:
    if (pc)
        call_free(pc);
out:
    if (bb)
        for (int32_t p = 0; p < n_parts; p++)
            rn_batch_builder_free(bb[p]);
    if (batches)
        for (int32_t s = 0; s < n_slots; s++)
            free(batches[s]);
    free(bb);
    free(slot_of);
    free(count);
    free(pp);
    free(ppp);
    free(batches);
    free(batch_lens);
    free(payload);
    return rc;
}
