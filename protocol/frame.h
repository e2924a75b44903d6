/*
 * frame.h — framing of the native protocol, sans-I/O (DESIGN §5, docs/protocol.md).
 *
 * On the wire every request and every response is one frame, all integers
 * big-endian:
 *
 *    0  u32 frame_length   bytes after this field: 4 + header_length + payload
 *    4  u32 header_length  bytes of the protobuf header
 *    8  header             runnel.RequestHeader or runnel.ResponseHeader
 *    8 + header_length     payload: raw record batches (Produce request, Fetch
 *                          response), empty for every other API
 *
 * Three pieces, none of which touches a socket:
 *   - rn_frame_decoder cuts a byte stream into frames. Feed it whatever recv
 *     returned; a frame that lies whole in the fed buffer comes back as slices of
 *     that buffer (no copy); only a frame split across feeds is gathered, into
 *     one allocation of exactly frame_length bytes made after its lengths passed
 *     the limits.
 *   - rn_frame_request_decode / rn_frame_response_decode unpack and validate a
 *     frame's header with a memory budget, so a small hostile header cannot make
 *     the broker allocate much.
 *   - rn_frame_encode writes the 8-byte prefix and the packed header into a
 *     buffer; the payload is sent from wherever it lives (writev/sendmsg/send_zc
 *     straight from a segment mmap).
 *
 * Errors are negative: -RN_E_* from protocol/errors.def, -ENOMEM, and a few
 * -errno named per function. Nothing here keeps global state: every function is
 * thread-safe on distinct objects, and a decoder belongs to one connection (one
 * reactor).
 */
#ifndef RN_FRAME_H
#define RN_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "runnel.pb-c.h"

/* Bytes before the header: frame_length and header_length. */
#define RN_FRAME_PREFIX_LEN 8

/* Defaults of rn_frame_limits (Kafka's names where Kafka has the setting). */
#define RN_FRAME_DEFAULT_MAX_REQUEST    (100u << 20) /* socket.request.max.bytes */
#define RN_FRAME_DEFAULT_MAX_HEADER     (1u << 20)
#define RN_FRAME_DEFAULT_MAX_MESSAGE    (1u << 20) /* message.max.bytes */
#define RN_FRAME_DEFAULT_MAX_ENTRIES    10000u
#define RN_FRAME_DEFAULT_MAX_DECODE_MEM (16u << 20)

/* The smallest record batch: its fixed header (protocol/batch.h RN_BATCH_HEADER_LEN). */
#define RN_FRAME_MIN_BATCH_LEN 61

/* Bounds checked before anything is allocated for a frame. A zero field takes
 * its default, so `(rn_frame_limits){0}` and NULL both mean "all defaults".
 * A broker uses the defaults (or its config); a client decoding responses
 * usually raises max_request, max_header and max_entries (a Metadata answer of
 * a large cluster, a Fetch of fetch.max.bytes). */
typedef struct rn_frame_limits {
    uint32_t max_request;  /* largest frame_length */
    uint32_t max_header;   /* largest header_length */
    uint32_t max_message;  /* largest record batch in a Produce request */
    uint32_t max_entries;  /* largest count of any repeated field in a header */
    size_t max_decode_mem; /* most bytes the unpacked header may hold at once */
} rn_frame_limits;

/* One frame as borrowed slices; see rn_frame_decoder_feed for their lifetime. */
typedef struct rn_frame {
    const uint8_t *header;
    uint32_t header_len;
    const uint8_t *payload;
    uint32_t payload_len;
} rn_frame;

/* ---- Stream decoder ------------------------------------------------------ */

/* Where a decoder gets the buffer of a frame that spans feeds: get(ctx, len)
 * returns len bytes or NULL, put(ctx, p) takes one back. The broker's reactors
 * hand out warm buffers from a pool (broker/net/bufpool.h). */
typedef struct rn_frame_bufs {
    void *(*get)(void *ctx, size_t len);
    void (*put)(void *ctx, void *p);
    void *ctx;
} rn_frame_bufs;

/* Caller-allocated; fields are private. */
typedef struct rn_frame_decoder {
    const rn_frame_bufs *bufs; /* NULL: malloc and free */
    uint32_t max_request, max_header;
    uint8_t prefix[RN_FRAME_PREFIX_LEN]; /* a prefix split across feeds */
    uint32_t prefix_len;
    uint8_t *body; /* frame_length bytes: being gathered, or the frame last returned */
    uint32_t frame_len, body_len;
    bool body_returned; /* body holds the frame last returned; drop it on the next call */
    int err;            /* sticky: once set, every feed returns it */
    char errmsg[160];
} rn_frame_decoder;

/* Prepare d. lim may be NULL (defaults); only max_request and max_header are
 * used. Cannot fail (returns 0) and allocates nothing. */
int rn_frame_decoder_init(rn_frame_decoder *d, const rn_frame_limits *lim);

/* Take frame buffers from b (borrowed; it must outlive d) instead of malloc.
 * Call right after init, before the first feed. */
void rn_frame_decoder_set_bufs(rn_frame_decoder *d, const rn_frame_bufs *b);

/* Free what d holds. Invalidates frames that point into d. Safe to call twice. */
void rn_frame_decoder_fini(rn_frame_decoder *d);

/* Feed len bytes of the stream. Consumes bytes up to the end of the first frame
 * that completes, and sets *consumed to how many it took; the caller feeds the
 * rest (buf + *consumed) in the next call. Returns:
 *    1  a frame is ready in *out; *consumed may be < len (more frames follow);
 *    0  every byte was consumed (*consumed == len) and no frame is complete yet;
 *   <0  the stream is broken; the error is sticky (every later feed returns it),
 *       rn_frame_decoder_errmsg says why, the connection must be closed.
 * Errors: -RN_E_INVALID_REQUEST (frame_length < 4, header_length greater than
 * frame_length - 4), -RN_E_REQUEST_TOO_LARGE (frame_length above max_request or
 * header_length above max_header; found as soon as the 4 or 8 bytes of the
 * prefix are in, before any allocation), -ENOMEM.
 *
 * The slices in *out borrow either buf (the frame was whole in it: no copy) or
 * the decoder's own buffer (the frame spanned feeds). Either way they are valid
 * until the next call on d (feed or fini) and, for the first case, as long as
 * the caller keeps buf: a reactor that receives into a provided-buffer ring
 * hands a buffer back to the ring only after it is done with the frames cut
 * from it. The decoder keeps no pointer into buf after returning. */
int rn_frame_decoder_feed(rn_frame_decoder *d, const void *buf, size_t len, size_t *consumed,
                          rn_frame *out);

/* Take ownership of the allocation behind the frame last returned, when that
 * frame spanned feeds; NULL when it pointed into the caller's buffer (then there
 * is nothing to take: copy what must outlive the buffer). The frame's slices stay
 * valid until the caller frees the pointer: with the put of the decoder's rn_frame_bufs
 * (rn_frame_decoder_set_bufs), or free() when it has none. For handlers that keep a Produce
 * payload past the call (an asynchronous write) without copying it. */
void *rn_frame_decoder_steal(rn_frame_decoder *d);

/* Receiving a big frame in place: while a frame is being gathered, the bytes
 * it still lacks go to *dst (returns how many; 0 when no frame is being
 * gathered, or after an error). Write n <= that many there (a recv straight
 * into the decoder's buffer, no copy), then rn_frame_decoder_commit: 1 with
 * the frame in *out when it is complete (same lifetime as from feed), 0 when
 * more is due, -EINVAL if n is more than was asked. */
size_t rn_frame_decoder_space(rn_frame_decoder *d, uint8_t **dst);
int rn_frame_decoder_commit(rn_frame_decoder *d, size_t n, rn_frame *out);

/* Bytes of a partial frame held (0 at a frame boundary). A peer that closes
 * while this is non-zero cut a frame short. */
size_t rn_frame_decoder_buffered(const rn_frame_decoder *d);

/* Why the last feed failed ("" when it did not). Valid until the next call on d. */
const char *rn_frame_decoder_errmsg(const rn_frame_decoder *d);

/* ---- Header decoding ----------------------------------------------------- */

/* protobuf-c allocator that counts the bytes it holds and fails past a budget.
 * Private to frame.c; embedded so a decoded request needs no separate object. */
typedef struct rn_frame_alloc {
    ProtobufCAllocator pc;
    size_t used, peak, budget;
    bool over_budget; /* an allocation was refused for the budget */
    bool oom;         /* malloc itself failed */
} rn_frame_alloc;

/* A decoded request. Caller-allocated. */
typedef struct rn_frame_request {
    /* The unpacked header, owned by this struct; NULL when decoding failed. */
    Runnel__RequestHeader *hdr;
    /* Copied out of the header as far as it could be read, also on failure, so
     * the broker can answer an invalid request with its correlation id. */
    bool have_correlation_id;
    uint32_t correlation_id;
    int api;
    uint32_t api_version;
    /* The frame's payload (borrowed from the frame, same lifetime). */
    const uint8_t *payload;
    uint32_t payload_len;
    rn_frame_alloc alloc;
} rn_frame_request;

/* Unpack and validate the header of a request frame f; lim may be NULL.
 * On success req->hdr is the header and every check below holds; the caller
 * calls rn_frame_request_fini when the request completes. On failure req->hdr
 * is NULL, nothing is held (fini is harmless), correlation_id/api are filled
 * when the bytes allowed it, and errbuf (may be NULL) gets a one-line reason.
 * Checks, in order:
 *   - the header unpacks within max_decode_mem     -RN_E_REQUEST_TOO_LARGE
 *     and is well-formed protobuf                  -RN_E_INVALID_REQUEST
 *   - api is set                                   -RN_E_INVALID_REQUEST
 *   - api is one this build decodes                -RN_E_UNKNOWN_API
 *   - api_version within the API's range           -RN_E_UNSUPPORTED_VERSION
 *     (ApiVersions is taken at any version, so a client can always learn them)
 *   - the body is set and is the api's body        -RN_E_INVALID_REQUEST
 *   - no repeated field longer than max_entries    -RN_E_INVALID_REQUEST
 *   - enums and sentinels in range (acks 0/1/-1, replica_id >= -1, isolation,
 *     ListOffsets timestamp >= -2)                 -RN_E_INVALID_REQUEST
 *   - Produce: each batch_len >= 61                -RN_E_INVALID_REQUEST
 *     and <= max_message                           -RN_E_MESSAGE_TOO_LARGE
 *     and the batch_len sum == payload_len         -RN_E_INVALID_REQUEST
 *   - any other API: empty payload                 -RN_E_INVALID_REQUEST
 * and -ENOMEM when malloc fails under the budget. The record batches themselves
 * are not looked at (rn_batch_check does that per partition).
 * req->payload borrows f's payload. The header does not borrow f: protobuf-c
 * copies strings, so f may go once this returns. req may be moved between
 * decode and fini. */
int rn_frame_request_decode(rn_frame_request *req, const rn_frame *f, const rn_frame_limits *lim,
                            char *errbuf, size_t errlen);

/* Free the unpacked header. Safe on a failed or finalised request. */
void rn_frame_request_fini(rn_frame_request *req);

/* A decoded response (client side). Caller-allocated. */
typedef struct rn_frame_response {
    Runnel__ResponseHeader *hdr; /* owned; NULL when decoding failed */
    const uint8_t *payload;      /* borrowed from the frame */
    uint32_t payload_len;
    rn_frame_alloc alloc;
} rn_frame_response;

/* Unpack and validate the header of a response frame f, as
 * rn_frame_request_decode does for requests. expected_api is the Api of the
 * request this answers (the client finds it by correlation id), or 0 to skip
 * the body check. Checks: the header unpacks within the budget
 * (-RN_E_REQUEST_TOO_LARGE) and is well-formed (-RN_E_INVALID_REQUEST); the body
 * is the expected API's, or absent with a non-zero error_code
 * (-RN_E_INVALID_REQUEST); repeated fields within max_entries; for Fetch the sum
 * of bytes_len == payload_len, for every other API an empty payload
 * (-RN_E_INVALID_REQUEST); -ENOMEM. Same ownership rules as requests. */
int rn_frame_response_decode(rn_frame_response *resp, const rn_frame *f, int expected_api,
                             const rn_frame_limits *lim, char *errbuf, size_t errlen);

/* Free the unpacked header. Safe on a failed or finalised response. */
void rn_frame_response_fini(rn_frame_response *resp);

/* True when a decode error means the connection must be closed after the
 * answer: the peer broke the protocol (INVALID_REQUEST, REQUEST_TOO_LARGE, any
 * -errno). UNKNOWN_API, UNSUPPORTED_VERSION and MESSAGE_TOO_LARGE leave the
 * stream in sync: the broker answers and keeps reading. */
bool rn_frame_error_closes(int err);

/* ---- Encoding ------------------------------------------------------------ */

/* Bytes rn_frame_encode writes for hdr: 8 + its packed size. */
size_t rn_frame_encoded_len(const ProtobufCMessage *hdr);

/* Write the prefix and the packed header hdr (a RequestHeader or ResponseHeader,
 * passed as &h.base) into buf, for a frame whose payload will be payload_len
 * bytes sent right after. *out_len gets the bytes written, or on -ENOBUFS the
 * bytes needed. Borrows hdr and buf; the payload is not touched.
 * Errors: -ENOBUFS (cap too small), -EMSGSIZE (frame_length would not fit a
 * u32). No limit is applied here: the peer enforces its own (a header above its
 * max_header, 1 MiB by default, is refused there). */
int rn_frame_encode(const ProtobufCMessage *hdr, size_t payload_len, void *buf, size_t cap,
                    size_t *out_len);

/* rn_frame_encode into a malloc'd buffer of exactly the needed size; the caller
 * takes ownership of *out and frees it. Errors: -EMSGSIZE, -ENOMEM. */
int rn_frame_encode_alloc(const ProtobufCMessage *hdr, size_t payload_len, uint8_t **out,
                          size_t *out_len);

/* ---- APIs ---------------------------------------------------------------- */

/* An API this build decodes, with the versions it speaks: what the broker
 * answers ApiVersions with. */
typedef struct rn_frame_api {
    int api; /* RUNNEL__API__* */
    const char *name;
    uint32_t min_version, max_version;
} rn_frame_api;

/* The table of decodable APIs, in Api order; *n gets its length. Static. */
const rn_frame_api *rn_frame_apis(size_t *n);

/* Name of any Api value ("PRODUCE"), also of those without a body yet, or
 * "UNKNOWN". Static string. */
const char *rn_frame_api_name(int api);

#endif
