/*
 * frame_helpers.h — what the native protocol framing tests
 * (protocol/frame.[ch]) share: test_frame_codec.c, test_frame_stream.c and
 * test_frame_header.c, each its own executable. Header-only (static inline):
 * frames built whole (wire_frame) or from raw header bytes (raw_frame), one
 * frame decoded from a buffer, request and response round trips, headers
 * for an API, and a deterministic random source.
 */
#ifndef RN_TEST_FRAME_HELPERS_H
#define RN_TEST_FRAME_HELPERS_H

#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/frame.h"

/* ---- Helpers ---------------------------------------------------------------- */

/* A complete frame (prefix + header + payload) in a malloc'd buffer. */
static inline uint8_t *wire_frame(const ProtobufCMessage *h, const void *payload, size_t plen,
                                  size_t *len)
{
    size_t hl = rn_frame_encoded_len(h), n;
    uint8_t *w = malloc(hl + plen + 1);
    cr_assert_not_null(w);
    cr_assert_eq(rn_frame_encode(h, plen, w, hl + plen, &n), 0);
    cr_assert_eq(n, hl);
    if (plen)
        memcpy(w + hl, payload, plen);
    *len = hl + plen;
    return w;
}

/* A frame built by hand from raw header bytes (for malformed headers). */
static inline uint8_t *raw_frame(const void *hdr, size_t hlen, const void *payload, size_t plen,
                                 size_t *len)
{
    uint8_t *w = malloc(8 + hlen + plen + 1);
    cr_assert_not_null(w);
    uint32_t fl = htobe32((uint32_t)(4 + hlen + plen)), hb = htobe32((uint32_t)hlen);
    memcpy(w, &fl, 4);
    memcpy(w + 4, &hb, 4);
    if (hlen)
        memcpy(w + 8, hdr, hlen);
    if (plen)
        memcpy(w + 8 + hlen, payload, plen);
    *len = 8 + hlen + plen;
    return w;
}

/* Feed a buffer that holds exactly one frame and return the frame. */
static inline rn_frame one_frame(rn_frame_decoder *d, const uint8_t *w, size_t len)
{
    rn_frame f;
    size_t used;
    cr_assert_eq(rn_frame_decoder_feed(d, w, len, &used, &f), 1, "%s", rn_frame_decoder_errmsg(d));
    cr_assert_eq(used, len);
    return f;
}

/* Decode a request frame held in w (default limits, or lim). */
static inline int decode_req(const uint8_t *w, size_t len, const rn_frame_limits *lim,
                             rn_frame_request *req, char *err, size_t errlen)
{
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, lim);
    rn_frame f = one_frame(&d, w, len);
    int r = rn_frame_request_decode(req, &f, lim, err, errlen);
    rn_frame_decoder_fini(&d); /* f borrowed w, not d */
    return r;
}

/* Encode h with payload, decode it back, check the decoded header packs to the
 * same bytes, and leave it in req. Returns the wire buffer (req->payload points
 * into it); the caller frees it after rn_frame_request_fini. */
static inline uint8_t *req_round_trip(Runnel__RequestHeader *h, const void *payload, size_t plen,
                                      rn_frame_request *req)
{
    size_t len;
    char err[256];
    uint8_t *w = wire_frame(&h->base, payload, plen, &len);
    int r = decode_req(w, len, NULL, req, err, sizeof(err));
    cr_assert_eq(r, 0, "decode: %s (%s)", err, rn_errname(r));
    cr_assert_not_null(req->hdr);
    cr_assert_eq(req->correlation_id, h->correlation_id);
    cr_assert_eq(req->api, (int)h->api);
    cr_assert_eq(req->payload_len, plen);
    cr_assert(plen == 0 || memcmp(req->payload, payload, plen) == 0);
    /* Same bytes after a trip through protobuf-c: nothing lost or added. */
    size_t hl = protobuf_c_message_get_packed_size(&req->hdr->base);
    cr_assert_eq(hl + 8, rn_frame_encoded_len(&h->base));
    uint8_t *again = malloc(hl + 1);
    protobuf_c_message_pack(&req->hdr->base, again);
    cr_assert(memcmp(again, w + 8, hl) == 0, "re-packed header differs");
    free(again);
    return w;
}

static inline uint8_t *resp_round_trip(Runnel__ResponseHeader *h, int api, const void *payload,
                                       size_t plen, rn_frame_response *resp)
{
    size_t len;
    char err[256];
    uint8_t *w = wire_frame(&h->base, payload, plen, &len);
    rn_frame_decoder d;
    rn_frame_decoder_init(&d, NULL);
    rn_frame f = one_frame(&d, w, len);
    int r = rn_frame_response_decode(resp, &f, api, NULL, err, sizeof(err));
    cr_assert_eq(r, 0, "decode: %s (%s)", err, rn_errname(r));
    rn_frame_decoder_fini(&d);
    cr_assert_eq(resp->hdr->correlation_id, h->correlation_id);
    cr_assert_eq(resp->payload_len, plen);
    size_t hl = protobuf_c_message_get_packed_size(&resp->hdr->base);
    uint8_t *again = malloc(hl + 1);
    protobuf_c_message_pack(&resp->hdr->base, again);
    cr_assert_eq(hl + 8, rn_frame_encoded_len(&h->base));
    cr_assert(memcmp(again, w + 8, hl) == 0, "re-packed header differs");
    free(again);
    return w;
}

static inline Runnel__RequestHeader req_header(int api, uint32_t cid)
{
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = api;
    h.correlation_id = cid;
    h.client_id = "test-client";
    h.body_case = (Runnel__RequestHeader__BodyCase)(api + 9);
    return h;
}

static inline Runnel__ResponseHeader resp_header(int api, uint32_t cid)
{
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.correlation_id = cid;
    h.body_case = (Runnel__ResponseHeader__BodyCase)(api + 9);
    return h;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: deterministic, so a failure reproduces. */
static inline uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

#endif
