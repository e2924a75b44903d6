/*
 * test_frame_header.c — decoding and validating request headers and
 * responses (protocol/frame.[ch]): garbage and truncated header bytes, bodies
 * that must match their API, unknown APIs and versions, produce payload and
 * batch bounds, field ranges, too many entries, the allocation budget
 * against hostile claims, and the response checks. Helpers: frame_helpers.h.
 */
#include "frame_helpers.h"

/* ---- Header decoding ------------------------------------------------------------ */

static int decode_raw_header(const void *hdr, size_t hlen, const void *payload, size_t plen,
                             const rn_frame_limits *lim, rn_frame_request *req, char *err,
                             size_t errlen)
{
    size_t len;
    uint8_t *w = raw_frame(hdr, hlen, payload, plen, &len);
    int r = decode_req(w, len, lim, req, err, errlen);
    free(w);
    return r;
}

// Random header bytes decode to a clean error (or, rarely, a valid request); nothing leaks.
Test(frame_header, garbage_header_bytes)
{
    uint8_t hdr[200];
    int failures = 0;
    for (int round = 0; round < 5000; round++) {
        size_t hlen = rng() % sizeof(hdr);
        for (size_t i = 0; i < hlen; i++)
            hdr[i] = (uint8_t)rng();
        rn_frame_request req;
        char err[256];
        int r = decode_raw_header(hdr, hlen, NULL, 0, NULL, &req, err, sizeof(err));
        if (r < 0) {
            failures++;
            cr_assert(r == -RN_E_INVALID_REQUEST || r == -RN_E_UNKNOWN_API ||
                          r == -RN_E_UNSUPPORTED_VERSION,
                      "unexpected %s", rn_errname(r));
            cr_assert_null(req.hdr);
            cr_assert_neq(err[0], '\0');
            cr_assert_eq(req.alloc.used, 0, "decode failure left %zu bytes held", req.alloc.used);
        }
        rn_frame_request_fini(&req);
        cr_assert_eq(req.alloc.used, 0);
    }
    cr_assert_gt(failures, 4900);
}

// A valid header cut short at every length fails with INVALID_REQUEST, keeping the
// correlation id once its field was complete.
Test(frame_header, truncated_header)
{
    Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT;
    pp.topic = "orders", pp.batch_len = 61;
    Runnel__ProducePartition *pps[] = {&pp};
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = 1, pr.n_partitions = 1, pr.partitions = pps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__PRODUCE, 300); /* 2-byte varint */
    h.produce = &pr;
    size_t hlen = protobuf_c_message_get_packed_size(&h.base);
    uint8_t *full = malloc(hlen);
    protobuf_c_message_pack(&h.base, full);
    /* 08 07 | 18 ac 02 | ...: the correlation id is complete after 5 bytes. */
    cr_assert_eq(full[2], 0x18);
    uint8_t payload[61] = {0};
    for (size_t cut = 0; cut < hlen; cut++) {
        rn_frame_request req;
        char err[256];
        int r =
            decode_raw_header(full, cut, payload, sizeof(payload), NULL, &req, err, sizeof(err));
        cr_assert_eq(r, -RN_E_INVALID_REQUEST, "cut %zu: %s", cut, rn_errname(r));
        cr_assert_null(req.hdr);
        /* Before its field is complete the id is unknown, or 0 when the cut
         * fell on a field boundary (proto3 reads an absent field as 0). */
        if (cut >= 5)
            cr_assert(req.have_correlation_id && req.correlation_id == 300, "cut %zu", cut);
        else
            cr_assert(!req.have_correlation_id || req.correlation_id == 0, "cut %zu", cut);
        rn_frame_request_fini(&req);
    }
    rn_frame_request req;
    cr_assert_eq(decode_raw_header(full, hlen, payload, sizeof(payload), NULL, &req, NULL, 0), 0);
    rn_frame_request_fini(&req);
    free(full);
}

// The body must be the api's own: a Produce header with a Metadata body is invalid.
Test(frame_header, body_must_match_api)
{
    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 5);
    h.api = RUNNEL__API__PRODUCE;
    h.metadata = &md;
    size_t len;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    rn_frame_request req;
    char err[256];
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "PRODUCE") != NULL, "%s", err);
    cr_assert(req.have_correlation_id);
    cr_assert_eq(req.correlation_id, 5);
    cr_assert_eq(req.api, RUNNEL__API__PRODUCE);
    free(w);

    /* No body at all. */
    h = req_header(RUNNEL__API__FETCH, 6);
    h.body_case = RUNNEL__REQUEST_HEADER__BODY__NOT_SET;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "no body") != NULL, "%s", err);
    free(w);
}

// Unknown apis (never defined, or defined but without a body yet) are UNKNOWN_API,
// a missing api is INVALID_REQUEST, a too-new version UNSUPPORTED_VERSION.
Test(frame_header, unknown_api_and_version)
{
    /* api = 99, correlation_id = 8 */
    static const uint8_t unknown[] = {0x08, 0x63, 0x18, 0x08};
    rn_frame_request req;
    char err[256];
    cr_assert_eq(decode_raw_header(unknown, sizeof(unknown), NULL, 0, NULL, &req, err, sizeof(err)),
                 -RN_E_UNKNOWN_API);
    cr_assert_eq(req.correlation_id, 8);
    cr_assert_eq(req.api, 99);
    cr_assert(!rn_frame_error_closes(-RN_E_UNKNOWN_API));

    /* A known api without its body is malformed, not unknown. */
    static const uint8_t init_producer[] = {0x08, 0x0a, 0x18, 0x09};
    cr_assert_eq(decode_raw_header(init_producer, sizeof(init_producer), NULL, 0, NULL, &req, err,
                                   sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "INIT_PRODUCER") != NULL, "%s", err);

    static const uint8_t no_api[] = {0x18, 0x09};
    cr_assert_eq(decode_raw_header(no_api, sizeof(no_api), NULL, 0, NULL, &req, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);

    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 10);
    h.metadata = &md;
    h.api_version = 7;
    size_t len;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_UNSUPPORTED_VERSION);
    cr_assert_eq(req.correlation_id, 10);
    free(w);

    /* ApiVersions is answered at any version. */
    Runnel__ApiVersionsRequest av = RUNNEL__API_VERSIONS_REQUEST__INIT;
    h = req_header(RUNNEL__API__API_VERSIONS, 11);
    h.api_versions = &av;
    h.api_version = 99;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.api_version, 99);
    rn_frame_request_fini(&req);
    free(w);
}

/* A produce request with the given batch lengths and payload length. */
static int decode_produce(const uint32_t *batch_lens, size_t n, size_t payload_len, int32_t acks,
                          const rn_frame_limits *lim, char *err, size_t errlen)
{
    Runnel__ProducePartition pp[4], *pps[4];
    cr_assert_leq(n, 4);
    for (size_t i = 0; i < n; i++) {
        pp[i] = (Runnel__ProducePartition)RUNNEL__PRODUCE_PARTITION__INIT;
        pp[i].topic = "t", pp[i].partition = (int32_t)i, pp[i].batch_len = batch_lens[i];
        pps[i] = &pp[i];
    }
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    pr.acks = acks, pr.n_partitions = n, pr.partitions = pps;
    Runnel__RequestHeader h = req_header(RUNNEL__API__PRODUCE, 20);
    h.produce = &pr;
    uint8_t *payload = calloc(1, payload_len + 1);
    size_t len;
    uint8_t *w = wire_frame(&h.base, payload, payload_len, &len);
    rn_frame_request req;
    int r = decode_req(w, len, lim, &req, err, errlen);
    rn_frame_request_fini(&req);
    free(w);
    free(payload);
    return r;
}

// The batch_len values must add up to the payload length exactly.
Test(frame_header, produce_payload_length_mismatch)
{
    uint32_t lens[] = {61, 200};
    char err[256];
    cr_assert_eq(decode_produce(lens, 2, 261, 1, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(decode_produce(lens, 2, 262, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "262") != NULL, "%s", err);
    cr_assert_eq(decode_produce(lens, 2, 260, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert_eq(decode_produce(lens, 0, 1, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    /* Sums are 64-bit: lengths that wrap a u32 do not sneak through. */
    rn_frame_limits big = {.max_message = UINT32_MAX};
    uint32_t wrap[] = {0x80000000u, 0x80000000u, 61};
    cr_assert_eq(decode_produce(wrap, 3, 61, 1, &big, err, sizeof(err)), -RN_E_INVALID_REQUEST);
}

// Batches below the 61-byte header or above message.max.bytes are refused; max is inclusive.
Test(frame_header, produce_batch_bounds)
{
    char err[256];
    uint32_t small[] = {60};
    cr_assert_eq(decode_produce(small, 1, 60, 1, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    uint32_t max[] = {RN_FRAME_DEFAULT_MAX_MESSAGE};
    cr_assert_eq(decode_produce(max, 1, max[0], -1, NULL, err, sizeof(err)), 0, "%s", err);
    uint32_t over[] = {RN_FRAME_DEFAULT_MAX_MESSAGE + 1};
    cr_assert_eq(decode_produce(over, 1, over[0], -1, NULL, err, sizeof(err)),
                 -RN_E_MESSAGE_TOO_LARGE);
    cr_assert(strstr(err, "message.max.bytes") != NULL, "%s", err);
    cr_assert(!rn_frame_error_closes(-RN_E_MESSAGE_TOO_LARGE));
    rn_frame_limits lim = {.max_message = 100};
    uint32_t mixed[] = {100, 101};
    cr_assert_eq(decode_produce(mixed, 2, 201, 0, &lim, err, sizeof(err)), -RN_E_MESSAGE_TOO_LARGE);
}

// acks must be 0, 1 or -1; replica_id >= -1; isolation and ListOffsets timestamps known.
Test(frame_header, field_ranges)
{
    uint32_t lens[] = {61};
    char err[256];
    cr_assert_eq(decode_produce(lens, 1, 61, 0, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(decode_produce(lens, 1, 61, 2, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert_eq(decode_produce(lens, 1, 61, -2, NULL, err, sizeof(err)), -RN_E_INVALID_REQUEST);

    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -2;
    Runnel__RequestHeader h = req_header(RUNNEL__API__FETCH, 21);
    h.fetch = &fr;
    size_t len;
    rn_frame_request req;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    free(w);
    fr.replica_id = 3, fr.isolation = 7;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    free(w);
    fr.isolation = RUNNEL__ISOLATION_LEVEL__READ_COMMITTED;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), 0, "%s", err);
    rn_frame_request_fini(&req);
    free(w);

    Runnel__ListOffsetsPartition lp = RUNNEL__LIST_OFFSETS_PARTITION__INIT;
    lp.topic = "t", lp.timestamp = -3;
    Runnel__ListOffsetsPartition *lps[] = {&lp};
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    lr.n_partitions = 1, lr.partitions = lps;
    h = req_header(RUNNEL__API__LIST_OFFSETS, 22);
    h.list_offsets = &lr;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "-3") != NULL, "%s", err);
    free(w);
}

// Only Produce requests carry a payload.
Test(frame_header, payload_on_other_api_is_invalid)
{
    Runnel__MetadataRequest md = RUNNEL__METADATA_REQUEST__INIT;
    Runnel__RequestHeader h = req_header(RUNNEL__API__METADATA, 23);
    h.metadata = &md;
    size_t len;
    uint8_t *w = wire_frame(&h.base, "x", 1, &len);
    rn_frame_request req;
    char err[256];
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(rn_frame_error_closes(-RN_E_INVALID_REQUEST));
    free(w);
}

// A list longer than max_entries (10000 by default) is refused, 10000 passes.
Test(frame_header, too_many_entries)
{
    size_t n = RN_FRAME_DEFAULT_MAX_ENTRIES + 1;
    Runnel__FetchPartition *parts = calloc(n, sizeof(*parts));
    Runnel__FetchPartition **pp = calloc(n, sizeof(*pp));
    for (size_t i = 0; i < n; i++) {
        parts[i] = (Runnel__FetchPartition)RUNNEL__FETCH_PARTITION__INIT;
        parts[i].topic = "t", parts[i].partition = (int32_t)i;
        pp[i] = &parts[i];
    }
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -1, fr.n_partitions = n, fr.partitions = pp;
    Runnel__RequestHeader h = req_header(RUNNEL__API__FETCH, 24);
    h.fetch = &fr;
    size_t len;
    char err[256];
    rn_frame_request req;
    uint8_t *w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "FetchRequest.partitions") != NULL, "%s", err);
    cr_assert_eq(req.alloc.used, 0);
    free(w);

    fr.n_partitions = n - 1;
    w = wire_frame(&h.base, NULL, 0, &len);
    cr_assert_eq(decode_req(w, len, NULL, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.hdr->fetch->n_partitions, n - 1);
    rn_frame_request_fini(&req);
    cr_assert_eq(req.alloc.used, 0);
    free(w);

    /* Nested lists count too: 10001 replicas inside one partition of Metadata. */
    int32_t *replicas = calloc(n, sizeof(int32_t));
    Runnel__PartitionMetadata pm = RUNNEL__PARTITION_METADATA__INIT;
    pm.n_replicas = n, pm.replicas = replicas;
    Runnel__PartitionMetadata *pms[] = {&pm};
    Runnel__TopicMetadata tm = RUNNEL__TOPIC_METADATA__INIT;
    tm.name = "t", tm.n_partitions = 1, tm.partitions = pms;
    Runnel__TopicMetadata *tms[] = {&tm};
    Runnel__MetadataResponse mr = RUNNEL__METADATA_RESPONSE__INIT;
    mr.n_topics = 1, mr.topics = tms;
    Runnel__ResponseHeader rh = resp_header(RUNNEL__API__METADATA, 24);
    rh.metadata = &mr;
    w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame f = one_frame(&d, w, len);
    rn_frame_response resp;
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__METADATA, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert(strstr(err, "PartitionMetadata.replicas") != NULL, "%s", err);
    rn_frame_limits client = {.max_entries = 100000};
    cr_assert_eq(
        rn_frame_response_decode(&resp, &f, RUNNEL__API__METADATA, &client, err, sizeof(err)), 0,
        "%s", err);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);
    free(replicas);
    free(parts);
    free(pp);
}

/* A produce header claiming `n` empty partitions, built by hand: 2 wire bytes
 * per entry but about 60 bytes each once unpacked. */
static uint8_t *hostile_produce_header(size_t n, size_t *hlen)
{
    size_t body = 2 * n;
    uint8_t *h = malloc(16 + body);
    size_t o = 0;
    h[o++] = 0x08, h[o++] = RUNNEL__API__PRODUCE;
    h[o++] = 0x18, h[o++] = 0x07; /* correlation_id 7 */
    h[o++] = 0x82, h[o++] = 0x01; /* field 16 (produce), length-delimited */
    for (size_t v = body;; v >>= 7) {
        h[o++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    for (size_t i = 0; i < n; i++)
        h[o++] = 0x1a, h[o++] = 0x00; /* partitions: {} */
    *hlen = o;
    return h;
}

// A 1 MiB header claiming 500k partitions hits the memory budget and fails cleanly.
Test(frame_header, allocation_budget_refuses_huge_claims)
{
    size_t hlen;
    uint8_t *h = hostile_produce_header(500000, &hlen);
    cr_assert_leq(hlen, RN_FRAME_DEFAULT_MAX_HEADER);
    rn_frame_request req;
    char err[256];
    int r = decode_raw_header(h, hlen, NULL, 0, NULL, &req, err, sizeof(err));
    cr_assert_eq(r, -RN_E_REQUEST_TOO_LARGE, "%s (%s)", rn_errname(r), err);
    cr_assert(strstr(err, "memory") != NULL, "%s", err);
    cr_assert_null(req.hdr);
    cr_assert_eq(req.alloc.used, 0);
    cr_assert_leq(req.alloc.peak, RN_FRAME_DEFAULT_MAX_DECODE_MEM);
    cr_assert(req.have_correlation_id);
    cr_assert_eq(req.correlation_id, 7);
    cr_assert(rn_frame_error_closes(r));
    rn_frame_request_fini(&req);
    free(h);
}

// Raising the budget step by step: every run below the need fails cleanly with
// nothing held, and the first that succeeds decodes the whole request (libuv loop-oom).
Test(frame_header, allocation_budget_ramp)
{
    size_t hlen;
    uint8_t *h = hostile_produce_header(50, &hlen);
    /* 50 empty partitions have batch_len 0, so pass a budget test on the
     * unpack only: INVALID_REQUEST (batch too small) means the unpack fit. */
    size_t budget;
    for (budget = 16;; budget += 16) {
        rn_frame_limits lim = {.max_decode_mem = budget};
        rn_frame_request req;
        char err[256];
        int r = decode_raw_header(h, hlen, NULL, 0, &lim, &req, err, sizeof(err));
        cr_assert_null(req.hdr);
        cr_assert_eq(req.alloc.used, 0, "budget %zu: %zu bytes held", budget, req.alloc.used);
        cr_assert_leq(req.alloc.peak, budget);
        if (r == -RN_E_INVALID_REQUEST) {
            cr_assert(strstr(err, "batch_len 0") != NULL, "%s", err);
            break;
        }
        cr_assert_eq(r, -RN_E_REQUEST_TOO_LARGE, "budget %zu: %s", budget, rn_errname(r));
        cr_assert_lt(budget, 1 << 20, "never fit");
    }
    /* 50 partitions at ~60 bytes each: the need is real but small. */
    cr_assert_gt(budget, 50 * 40);
    free(h);
}

/* ---- Responses -------------------------------------------------------------------- */

// A response body may be missing only with an error code; a wrong body or a
// Fetch payload that does not match bytes_len is INVALID_REQUEST.
Test(frame_header, response_checks)
{
    rn_frame_decoder d;
    rn_frame_response resp;
    char err[256];
    size_t len;

    Runnel__ResponseHeader rh = RUNNEL__RESPONSE_HEADER__INIT;
    rh.correlation_id = 30;
    rh.error_code = RN_E_INVALID_REQUEST;
    rh.error_message = "bad";
    uint8_t *w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    rn_frame f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(resp.hdr->error_code, RN_E_INVALID_REQUEST);
    cr_assert_eq(resp.hdr->body_case, RUNNEL__RESPONSE_HEADER__BODY__NOT_SET);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);

    rh.error_code = 0;
    w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert_null(resp.hdr);
    rn_frame_decoder_fini(&d);
    free(w);

    Runnel__ProduceResponse pr = RUNNEL__PRODUCE_RESPONSE__INIT;
    rh = resp_header(RUNNEL__API__PRODUCE, 31);
    rh.produce = &pr;
    w = wire_frame(&rh.base, NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, 0, NULL, err, sizeof(err)), 0, "%s", err);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);

    Runnel__FetchPartitionResponse fp = RUNNEL__FETCH_PARTITION_RESPONSE__INIT;
    fp.topic = "t", fp.bytes_len = 10;
    Runnel__FetchPartitionResponse *fps[] = {&fp};
    Runnel__FetchResponse fr = RUNNEL__FETCH_RESPONSE__INIT;
    fr.n_partitions = 1, fr.partitions = fps;
    rh = resp_header(RUNNEL__API__FETCH, 32);
    rh.fetch = &fr;
    w = wire_frame(&rh.base, "123456789", 9, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    rn_frame_decoder_fini(&d);
    free(w);

    /* Garbage is INVALID_REQUEST on this side too. */
    static const uint8_t junk[] = {0x0a, 0x05, 0x01};
    w = raw_frame(junk, sizeof(junk), NULL, 0, &len);
    rn_frame_decoder_init(&d, NULL);
    f = one_frame(&d, w, len);
    cr_assert_eq(rn_frame_response_decode(&resp, &f, 0, NULL, err, sizeof(err)),
                 -RN_E_INVALID_REQUEST);
    rn_frame_response_fini(&resp);
    rn_frame_decoder_fini(&d);
    free(w);
}
