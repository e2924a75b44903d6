/*
 * frame.c — native protocol framing and header codec, sans-I/O (see frame.h).
 *
 * Wire format of one frame (big-endian):
 *
 *    +----------------+-----------------+------------------+-------------------+
 *    | frame_length   | header_length   | header           | payload           |
 *    | u32            | u32             | protobuf         | raw batches       |
 *    +----------------+-----------------+------------------+-------------------+
 *    0                4                 8                  8 + header_length
 *                     <---------------- frame_length bytes ------------------->
 *
 * How it fits: the reactor receives bytes into a provided-buffer ring and feeds
 * each buffer to the connection's rn_frame_decoder; every frame that comes out is
 * decoded with rn_frame_request_decode and handed to the API's handler; the
 * answer is written with rn_frame_encode and sent with its payload (batches from
 * a segment mmap) in one sendmsg. The client library runs the same code the other
 * way round.
 *
 * Decoder states (d->body, d->prefix_len):
 *
 *    PREFIX  body == NULL, 0 <= prefix_len < 8
 *        a buffer holding the whole frame with prefix_len == 0 → frame returned
 *        as slices of the caller's buffer, state stays PREFIX      (fast path)
 *        prefix complete and checked → start_body()                → BODY
 *    BODY    body != NULL, !body_returned, body_len < frame_len
 *        body_len reaches frame_len → frame returned from body     → RETURNED
 *    RETURNED body_returned; the next feed/fini frees body          → PREFIX
 *    FAILED  err != 0; sticky, nothing held
 *
 * Invariants:
 *   1. frame_length is checked (4 <= it <= max_request) as soon as its 4 bytes are
 *      in, header_length (<= frame_length - 4, <= max_header) as soon as its 4
 *      bytes are; only then is anything allocated, and exactly frame_length bytes.
 *   2. A frame whole in the fed buffer is never copied.
 *   3. The decoder never keeps a pointer into a caller's buffer across calls.
 *   4. Headers are unpacked through a budgeted allocator: live bytes never pass
 *      max_decode_mem, whatever the header claims. A bump arena was the other
 *      choice; it was not taken because protobuf-c allocates scratch "scanned
 *      member" slabs (about 32 bytes per field on the wire) and frees them before
 *      returning: an arena would keep them, doubling the peak for large lists.
 *   5. Nothing on the input path aborts; every malformed input is a negative
 *      return with a message.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/bytes.h"
#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/topic_name.h"

/* ---- Small helpers -------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int fail(int err, char *errbuf, size_t errlen,
                                                      const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}

static rn_frame_limits limits_or_default(const rn_frame_limits *lim)
{
    rn_frame_limits l = lim ? *lim : (rn_frame_limits){0};
    if (!l.max_request)
        l.max_request = RN_FRAME_DEFAULT_MAX_REQUEST;
    if (!l.max_header)
        l.max_header = RN_FRAME_DEFAULT_MAX_HEADER;
    if (!l.max_message)
        l.max_message = RN_FRAME_DEFAULT_MAX_MESSAGE;
    if (!l.max_entries)
        l.max_entries = RN_FRAME_DEFAULT_MAX_ENTRIES;
    if (!l.max_decode_mem)
        l.max_decode_mem = RN_FRAME_DEFAULT_MAX_DECODE_MEM;
    return l;
}

/* ---- APIs ----------------------------------------------------------------- */

/* The body of API n is oneof field 9 + n in both envelopes (runnel.proto). */
#define BODY_FIELD(api) ((api) + 9)

static const rn_frame_api apis[] = {
    {RUNNEL__API__API_VERSIONS, "API_VERSIONS", 0, 0},
    {RUNNEL__API__METADATA, "METADATA", 0, 0},
    {RUNNEL__API__CREATE_TOPICS, "CREATE_TOPICS", 0, 0},
    {RUNNEL__API__DELETE_TOPICS, "DELETE_TOPICS", 0, 0},
    {RUNNEL__API__DESCRIBE_TOPIC, "DESCRIBE_TOPIC", 0, 0},
    {RUNNEL__API__ALTER_CONFIGS, "ALTER_CONFIGS", 0, 0},
    {RUNNEL__API__PRODUCE, "PRODUCE", 0, 0},
    {RUNNEL__API__FETCH, "FETCH", 0, 0},
    {RUNNEL__API__LIST_OFFSETS, "LIST_OFFSETS", 0, 0},
    {RUNNEL__API__INIT_PRODUCER, "INIT_PRODUCER", 0, 0},
    {RUNNEL__API__GROUP_HEARTBEAT, "GROUP_HEARTBEAT", 0, 0},
    {RUNNEL__API__COMMIT_OFFSETS, "COMMIT_OFFSETS", 0, 0},
    {RUNNEL__API__FETCH_OFFSETS, "FETCH_OFFSETS", 0, 0},
    {RUNNEL__API__LIST_GROUPS, "LIST_GROUPS", 0, 0},
    {RUNNEL__API__DESCRIBE_GROUP, "DESCRIBE_GROUP", 0, 0},
    {RUNNEL__API__DELETE_GROUP, "DELETE_GROUP", 0, 0},
    {RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH, "OFFSETS_FOR_LEADER_EPOCH", 0, 0},
    {RUNNEL__API__CLUSTER_STATUS, "CLUSTER_STATUS", 0, 0},
    {RUNNEL__API__REASSIGN_PARTITIONS, "REASSIGN_PARTITIONS", 0, 0},
    {RUNNEL__API__FIND_COORDINATOR, "FIND_COORDINATOR", 0, 0},
};

_Static_assert(BODY_FIELD(RUNNEL__API__API_VERSIONS) == RUNNEL__REQUEST_HEADER__BODY_API_VERSIONS,
               "request body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__LIST_OFFSETS) == RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS,
               "request body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__PRODUCE) == RUNNEL__RESPONSE_HEADER__BODY_PRODUCE,
               "response body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__LIST_OFFSETS) == RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS,
               "response body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__DESCRIBE_GROUP) ==
                   RUNNEL__REQUEST_HEADER__BODY_DESCRIBE_GROUP,
               "request body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__DESCRIBE_GROUP) ==
                   RUNNEL__RESPONSE_HEADER__BODY_DESCRIBE_GROUP,
               "response body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__DELETE_GROUP) == RUNNEL__REQUEST_HEADER__BODY_DELETE_GROUP,
               "request body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__DELETE_GROUP) == RUNNEL__RESPONSE_HEADER__BODY_DELETE_GROUP,
               "response body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH) ==
                   RUNNEL__REQUEST_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH,
               "request body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH) ==
                   RUNNEL__RESPONSE_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH,
               "response body field = 9 + api");

_Static_assert(BODY_FIELD(RUNNEL__API__CLUSTER_STATUS) ==
                   RUNNEL__REQUEST_HEADER__BODY_CLUSTER_STATUS,
               "request body field = 9 + api");
_Static_assert(BODY_FIELD(RUNNEL__API__CLUSTER_STATUS) ==
                   RUNNEL__RESPONSE_HEADER__BODY_CLUSTER_STATUS,
               "response body field = 9 + api");

const rn_frame_api *rn_frame_apis(size_t *n)
{
    *n = sizeof(apis) / sizeof(apis[0]);
    return apis;
}

static const rn_frame_api *api_find(int api)
{
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        if (apis[i].api == api)
            return &apis[i];
    return NULL;
}

const char *rn_frame_api_name(int api)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&runnel__api__descriptor, api);
    return v ? v->name : "UNKNOWN";
}

/* ---- Stream decoder --------------------------------------------------------- */

int rn_frame_decoder_init(rn_frame_decoder *d, const rn_frame_limits *lim)
{
    rn_frame_limits l = limits_or_default(lim);
    memset(d, 0, sizeof(*d));
    d->max_request = l.max_request;
    d->max_header = l.max_header;
    return 0;
}

void rn_frame_decoder_set_bufs(rn_frame_decoder *d, const rn_frame_bufs *b)
{
    d->bufs = b;
}

static void body_put(rn_frame_decoder *d)
{
    if (!d->body)
        return;
    if (d->bufs)
        d->bufs->put(d->bufs->ctx, d->body);
    else
        free(d->body);
}

void rn_frame_decoder_fini(rn_frame_decoder *d)
{
    body_put(d);
    d->body = NULL;
    d->body_returned = false;
    d->prefix_len = d->frame_len = d->body_len = 0;
}

__attribute__((format(printf, 3, 4))) static int dec_fail(rn_frame_decoder *d, int err,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
    va_end(ap);
    rn_frame_decoder_fini(d);
    d->err = err;
    return err;
}

static int check_frame_len(rn_frame_decoder *d, uint32_t frame_len)
{
    if (frame_len < 4)
        return dec_fail(d, -RN_E_INVALID_REQUEST,
                        "frame_length %" PRIu32 " is shorter than its header_length field",
                        frame_len);
    if (frame_len > d->max_request)
        return dec_fail(d, -RN_E_REQUEST_TOO_LARGE,
                        "frame_length %" PRIu32 " exceeds socket.request.max.bytes %" PRIu32,
                        frame_len, d->max_request);
    return 0;
}

static int check_header_len(rn_frame_decoder *d, uint32_t frame_len, uint32_t header_len)
{
    if (header_len > frame_len - 4)
        return dec_fail(d, -RN_E_INVALID_REQUEST,
                        "header_length %" PRIu32 " does not fit in frame_length %" PRIu32,
                        header_len, frame_len);
    if (header_len > d->max_header)
        return dec_fail(d, -RN_E_REQUEST_TOO_LARGE,
                        "header_length %" PRIu32 " exceeds the header limit %" PRIu32, header_len,
                        d->max_header);
    return 0;
}

/* Slices of a frame whose bytes from header_length on start at p. */
static void frame_at(rn_frame *out, const uint8_t *p, uint32_t frame_len)
{
    uint32_t header_len = rn_get_be32(p);
    out->header = p + 4;
    out->header_len = header_len;
    out->payload = p + 4 + header_len;
    out->payload_len = frame_len - 4 - header_len;
}

/* Allocate the frame_len bytes of a frame that spans feeds; its header_length
 * field (4 bytes at hl) is the first thing in it. */
static int start_body(rn_frame_decoder *d, uint32_t frame_len, const uint8_t *hl)
{
    d->body = d->bufs ? d->bufs->get(d->bufs->ctx, frame_len) : malloc(frame_len);
    if (!d->body)
        return dec_fail(d, -ENOMEM, "cannot allocate %" PRIu32 " bytes for a frame", frame_len);
    memcpy(d->body, hl, 4);
    d->frame_len = frame_len;
    d->body_len = 4;
    d->body_returned = false;
    return 0;
}

int rn_frame_decoder_feed(rn_frame_decoder *d, const void *buf, size_t len, size_t *consumed,
                          rn_frame *out)
{
    const uint8_t *p = buf;
    int r;

    *consumed = 0;
    if (d->err)
        return d->err;
    /* The frame returned last lives until this call. */
    if (d->body_returned) {
        body_put(d);
        d->body = NULL;
        d->body_returned = false;
        d->frame_len = d->body_len = 0;
    }
    if (len == 0)
        return 0;

    if (!d->body) {
        if (d->prefix_len == 0 && len >= RN_FRAME_PREFIX_LEN) {
            /* Fast path: the prefix is whole in buf, maybe the frame too. */
            uint32_t frame_len = rn_get_be32(p), header_len = rn_get_be32(p + 4);
            if ((r = check_frame_len(d, frame_len)) < 0 ||
                (r = check_header_len(d, frame_len, header_len)) < 0)
                return r;
            if (len - 4 >= frame_len) {
                frame_at(out, p + 4, frame_len);
                *consumed = 4 + (size_t)frame_len;
                return 1;
            }
            if ((r = start_body(d, frame_len, p + 4)) < 0)
                return r;
            p += RN_FRAME_PREFIX_LEN;
            len -= RN_FRAME_PREFIX_LEN;
        } else {
            /* The prefix itself spans feeds: gather it, checking frame_length as
             * soon as it is complete so a huge claim fails after 4 bytes. */
            size_t n = RN_FRAME_PREFIX_LEN - d->prefix_len;
            if (n > len)
                n = len;
            memcpy(d->prefix + d->prefix_len, p, n);
            d->prefix_len += (uint32_t)n;
            p += n;
            len -= n;
            if (d->prefix_len >= 4 && (r = check_frame_len(d, rn_get_be32(d->prefix))) < 0)
                return r;
            if (d->prefix_len < RN_FRAME_PREFIX_LEN) {
                *consumed = n;
                return 0;
            }
            uint32_t frame_len = rn_get_be32(d->prefix);
            if ((r = check_header_len(d, frame_len, rn_get_be32(d->prefix + 4))) < 0)
                return r;
            if ((r = start_body(d, frame_len, d->prefix + 4)) < 0)
                return r;
            d->prefix_len = 0;
        }
    }

    size_t want = d->frame_len - d->body_len;
    if (want > len)
        want = len;
    memcpy(d->body + d->body_len, p, want);
    d->body_len += (uint32_t)want;
    p += want;
    *consumed = (size_t)(p - (const uint8_t *)buf);
    if (d->body_len < d->frame_len)
        return 0;
    frame_at(out, d->body, d->frame_len);
    d->body_returned = true;
    return 1;
}

size_t rn_frame_decoder_space(rn_frame_decoder *d, uint8_t **dst)
{
    if (d->err || !d->body || d->body_returned)
        return 0;
    *dst = d->body + d->body_len;
    return (size_t)(d->frame_len - d->body_len);
}

int rn_frame_decoder_commit(rn_frame_decoder *d, size_t n, rn_frame *out)
{
    if (d->err || !d->body || d->body_returned || n > d->frame_len - d->body_len)
        return -EINVAL;
    d->body_len += (uint32_t)n;
    if (d->body_len < d->frame_len)
        return 0;
    frame_at(out, d->body, d->frame_len);
    d->body_returned = true;
    return 1;
}

void *rn_frame_decoder_steal(rn_frame_decoder *d)
{
    if (!d->body_returned)
        return NULL;
    void *p = d->body;
    d->body = NULL;
    d->body_returned = false;
    d->frame_len = d->body_len = 0;
    return p;
}

size_t rn_frame_decoder_buffered(const rn_frame_decoder *d)
{
    size_t n = d->prefix_len;
    if (d->body && !d->body_returned)
        n += 4 + (size_t)d->body_len; /* frame_length + what was gathered */
    return n;
}

const char *rn_frame_decoder_errmsg(const rn_frame_decoder *d)
{
    return d->errmsg;
}

/* ---- Budgeted allocator ----------------------------------------------------- */

/* Each block carries its size in front, so free() can give it back to the
 * budget; the union keeps the user pointer aligned for any type. */
typedef union alloc_prefix {
    size_t size;
    max_align_t align;
} alloc_prefix;

static void *budget_alloc(void *data, size_t size)
{
    rn_frame_alloc *a = data;
    if (size > a->budget || a->used + sizeof(alloc_prefix) + size > a->budget) {
        a->over_budget = true;
        return NULL;
    }
    size_t total = sizeof(alloc_prefix) + size;
    alloc_prefix *p = malloc(total);
    if (!p) {
        a->oom = true;
        return NULL;
    }
    p->size = total;
    a->used += total;
    if (a->used > a->peak)
        a->peak = a->used;
    return p + 1;
}

static void budget_free(void *data, void *ptr)
{
    rn_frame_alloc *a = data;
    if (!ptr)
        return;
    alloc_prefix *p = (alloc_prefix *)ptr - 1;
    a->used -= p->size;
    free(p);
}

static void alloc_init(rn_frame_alloc *a, size_t budget)
{
    memset(a, 0, sizeof(*a));
    a->budget = budget;
    a->pc.alloc = budget_alloc;
    a->pc.free = budget_free;
    a->pc.allocator_data = a;
}

/* Free an unpacked message. allocator_data is re-pointed first because the
 * owning struct may have moved since it was decoded. */
static void alloc_free_msg(rn_frame_alloc *a, ProtobufCMessage *m)
{
    if (!m)
        return;
    a->pc.allocator_data = a;
    protobuf_c_message_free_unpacked(m, &a->pc);
}

/* ---- Header checks ---------------------------------------------------------- */

/* Read a varint from [*pp, end); false when truncated or longer than 10 bytes. */
static bool read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70 && *pp < end; shift += 7) {
        uint8_t b = *(*pp)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Find the last varint field `field` at the top level of a protobuf message,
 * walking the raw wire format. Used when the header did not unpack, so the
 * broker can still answer with the request's correlation id. Stops quietly at
 * the first malformed byte: whatever was found before it is kept. */
static bool scan_varint_field(const uint8_t *p, size_t len, uint32_t field, uint64_t *out)
{
    const uint8_t *end = p + len;
    bool found = false;
    uint64_t key, v;
    while (p < end && read_varint(&p, end, &key)) {
        switch (key & 7) {
        case 0: /* varint */
            if (!read_varint(&p, end, &v))
                return found;
            if ((key >> 3) == field) {
                *out = v;
                found = true;
            }
            break;
        case 1: /* 64-bit */
            if ((size_t)(end - p) < 8)
                return found;
            p += 8;
            break;
        case 2: /* length-delimited */
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return found;
            p += v;
            break;
        case 5: /* 32-bit */
            if ((size_t)(end - p) < 4)
                return found;
            p += 4;
            break;
        default: /* groups (3, 4) are not proto3; 6, 7 do not exist */
            return found;
        }
    }
    return found;
}

/* Every repeated field of m and its sub-messages holds at most max entries.
 * Walks the descriptors, so new APIs are covered without code here; the schema
 * is not recursive, so the depth is that of runnel.proto. */
static int check_counts(const ProtobufCMessage *m, uint32_t max, char *errbuf, size_t errlen)
{
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    const uint8_t *base = (const uint8_t *)m;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n;
            memcpy(&n, base + f->quantifier_offset, sizeof(n));
            if (n > max)
                return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                            "%s.%s has %zu entries, more than the limit of %" PRIu32,
                            desc->short_name, f->name, n, max);
            if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                continue;
            ProtobufCMessage **v;
            memcpy(&v, base + f->offset, sizeof(v));
            for (size_t j = 0; j < n; j++) {
                int r = check_counts(v[j], max, errbuf, errlen);
                if (r < 0)
                    return r;
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t which; /* the oneof's case enum is int-sized */
                memcpy(&which, base + f->quantifier_offset, sizeof(which));
                if (which != f->id)
                    continue;
            }
            const ProtobufCMessage *sub;
            memcpy(&sub, base + f->offset, sizeof(sub));
            if (sub) {
                int r = check_counts(sub, max, errbuf, errlen);
                if (r < 0)
                    return r;
            }
        }
    }
    return 0;
}

static int check_isolation(int isolation, char *errbuf, size_t errlen)
{
    if (isolation != RUNNEL__ISOLATION_LEVEL__READ_UNCOMMITTED &&
        isolation != RUNNEL__ISOLATION_LEVEL__READ_COMMITTED)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "isolation %d is not a known level",
                    isolation);
    return 0;
}

static int check_produce(const Runnel__ProduceRequest *p, uint32_t payload_len,
                         const rn_frame_limits *l, char *errbuf, size_t errlen)
{
    if (p->acks != 0 && p->acks != 1 && p->acks != -1)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "acks %" PRId32 " is not 0, 1 or -1 (all)", p->acks);
    uint64_t sum = 0;
    for (size_t i = 0; i < p->n_partitions; i++) {
        const Runnel__ProducePartition *pp = p->partitions[i];
        if (pp->batch_len < RN_FRAME_MIN_BATCH_LEN)
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                        "produce to %.64s-%" PRId32 ": batch_len %" PRIu32
                        " is shorter than a batch header (%d bytes)",
                        pp->topic, pp->partition, pp->batch_len, RN_FRAME_MIN_BATCH_LEN);
        if (pp->batch_len > l->max_message)
            return fail(-RN_E_MESSAGE_TOO_LARGE, errbuf, errlen,
                        "produce to %.64s-%" PRId32 ": batch_len %" PRIu32
                        " exceeds message.max.bytes %" PRIu32,
                        pp->topic, pp->partition, pp->batch_len, l->max_message);
        sum += pp->batch_len;
    }
    if (sum != payload_len)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "produce batch_len values add up to %" PRIu64
                    " bytes but the payload has %" PRIu32,
                    sum, payload_len);
    return 0;
}

/* ---- Consumer group bodies ------------------------------------------------
 * Only what no coordinator could make sense of is refused here (and closes
 * the connection, as any malformed frame): names out of bounds, negative
 * partitions or offsets, impossible epochs. Whether a member or epoch is
 * current is the coordinator's answer (broker/coord/groups.c). */

#define GROUP_ID_MAX        RN_TOPIC_NAME_MAX /* as topic names */
#define MEMBER_ID_MAX       128               /* broker/coord/groups.h RN_GROUP_MEMBER_ID_MAX */
#define OFFSET_METADATA_MAX 4096
#define SESSION_TIMEOUT_MAX 1800000u /* 30 minutes */

static int check_group_id(const char *api, const char *id, char *errbuf, size_t errlen)
{
    size_t n = id ? strnlen(id, GROUP_ID_MAX + 1) : 0;
    if (n == 0 || n > GROUP_ID_MAX)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "%s: group_id must be 1 to %d bytes",
                    api, GROUP_ID_MAX);
    return 0;
}

static int check_topic_name(const char *api, const char *t, char *errbuf, size_t errlen)
{
    size_t n = t ? strnlen(t, RN_TOPIC_NAME_MAX + 1) : 0;
    if (n == 0 || n > RN_TOPIC_NAME_MAX)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "%s: topic names must be 1 to %d bytes",
                    api, RN_TOPIC_NAME_MAX);
    return 0;
}

static int check_topic_partitions(const char *api, Runnel__TopicPartitions *const *tps, size_t n,
                                  char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int r = check_topic_name(api, tps[i]->topic, errbuf, errlen);
        if (r < 0)
            return r;
        for (size_t k = 0; k < tps[i]->n_partitions; k++)
            if (tps[i]->partitions[k] < 0)
                return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                            "%s: partition %" PRId32 " of %.64s is negative", api,
                            tps[i]->partitions[k], tps[i]->topic);
    }
    return 0;
}

static int check_heartbeat(const Runnel__GroupHeartbeatRequest *h, char *errbuf, size_t errlen)
{
    static const char api[] = "GROUP_HEARTBEAT";
    int r = check_group_id(api, h->group_id, errbuf, errlen);
    if (r < 0)
        return r;
    size_t mlen = h->member_id ? strnlen(h->member_id, MEMBER_ID_MAX + 1) : 0;
    if (mlen > MEMBER_ID_MAX)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "%s: member_id longer than %d bytes",
                    api, MEMBER_ID_MAX);
    if (h->member_epoch < -1)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "%s: member_epoch %" PRId32 " is not -1 (leave), 0 (join) or an epoch", api,
                    h->member_epoch);
    if (h->member_epoch != 0 && mlen == 0)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "%s: member_epoch %" PRId32 " without a member_id (only a join, epoch 0, "
                    "has none)",
                    api, h->member_epoch);
    if (h->session_timeout_ms > SESSION_TIMEOUT_MAX)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "%s: session_timeout_ms %" PRIu32 " is above %u", api, h->session_timeout_ms,
                    SESSION_TIMEOUT_MAX);
    for (size_t i = 0; i < h->n_subscribed_topics; i++)
        if ((r = check_topic_name(api, h->subscribed_topics[i], errbuf, errlen)) < 0)
            return r;
    return check_topic_partitions(api, h->owned, h->n_owned, errbuf, errlen);
}

static int check_commit(const Runnel__CommitOffsetsRequest *c, char *errbuf, size_t errlen)
{
    static const char api[] = "COMMIT_OFFSETS";
    int r = check_group_id(api, c->group_id, errbuf, errlen);
    if (r < 0)
        return r;
    if (c->member_id && strnlen(c->member_id, MEMBER_ID_MAX + 1) > MEMBER_ID_MAX)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "%s: member_id longer than %d bytes",
                    api, MEMBER_ID_MAX);
    for (size_t i = 0; i < c->n_offsets; i++) {
        const Runnel__OffsetCommit *o = c->offsets[i];
        if ((r = check_topic_name(api, o->topic, errbuf, errlen)) < 0)
            return r;
        if (o->partition < 0 || o->offset < 0)
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                        "%s: %.64s-%" PRId32 " offset %" PRId64
                        ": partition and offset must not be negative",
                        api, o->topic, o->partition, o->offset);
        if (o->metadata && strnlen(o->metadata, OFFSET_METADATA_MAX + 1) > OFFSET_METADATA_MAX)
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                        "%s: %.64s-%" PRId32 ": metadata longer than %d bytes", api, o->topic,
                        o->partition, OFFSET_METADATA_MAX);
    }
    return 0;
}

static int check_request(const Runnel__RequestHeader *h, uint32_t payload_len,
                         const rn_frame_limits *l, char *errbuf, size_t errlen)
{
    if (h->api == RUNNEL__API__API_UNSPECIFIED)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "request header has no api");
    const rn_frame_api *a = api_find(h->api);
    if (!a)
        return fail(-RN_E_UNKNOWN_API, errbuf, errlen, "api %d (%s) is not supported", (int)h->api,
                    rn_frame_api_name(h->api));
    /* ApiVersions answers any version: it is how a client learns the others. */
    if (h->api != RUNNEL__API__API_VERSIONS &&
        (h->api_version < a->min_version || h->api_version > a->max_version))
        return fail(-RN_E_UNSUPPORTED_VERSION, errbuf, errlen,
                    "%s version %" PRIu32 " is not in [%" PRIu32 ", %" PRIu32 "]", a->name,
                    h->api_version, a->min_version, a->max_version);
    if ((int)h->body_case != BODY_FIELD(a->api)) {
        if (h->body_case == RUNNEL__REQUEST_HEADER__BODY__NOT_SET)
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "%s request has no body", a->name);
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "%s request carries the body of another api (field %d)", a->name,
                    (int)h->body_case);
    }
    int r = check_counts(&h->base, l->max_entries, errbuf, errlen);
    if (r < 0)
        return r;

    switch (h->api) {
    case RUNNEL__API__PRODUCE:
        return check_produce(h->produce, payload_len, l, errbuf, errlen);
    case RUNNEL__API__FETCH:
        if (h->fetch->replica_id < -1)
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                        "fetch replica_id %" PRId32 " is neither -1 (consumer) nor a node id",
                        h->fetch->replica_id);
        if ((r = check_isolation(h->fetch->isolation, errbuf, errlen)) < 0)
            return r;
        break;
    case RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH:
        if (h->offsets_for_leader_epoch->replica_id < -1)
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                        "offsets for leader epoch replica_id %" PRId32
                        " is neither -1 nor a node id",
                        h->offsets_for_leader_epoch->replica_id);
        break;
    case RUNNEL__API__LIST_OFFSETS:
        if ((r = check_isolation(h->list_offsets->isolation, errbuf, errlen)) < 0)
            return r;
        for (size_t i = 0; i < h->list_offsets->n_partitions; i++) {
            const Runnel__ListOffsetsPartition *p = h->list_offsets->partitions[i];
            if (p->timestamp < -2)
                return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                            "list offsets of %.64s-%" PRId32 ": timestamp %" PRId64
                            " is not -2 (earliest), -1 (latest) or a time",
                            p->topic, p->partition, p->timestamp);
        }
        break;
    case RUNNEL__API__GROUP_HEARTBEAT:
        if ((r = check_heartbeat(h->group_heartbeat, errbuf, errlen)) < 0)
            return r;
        break;
    case RUNNEL__API__COMMIT_OFFSETS:
        if ((r = check_commit(h->commit_offsets, errbuf, errlen)) < 0)
            return r;
        break;
    case RUNNEL__API__FETCH_OFFSETS:
        if ((r = check_group_id("FETCH_OFFSETS", h->fetch_offsets->group_id, errbuf, errlen)) < 0 ||
            (r = check_topic_partitions("FETCH_OFFSETS", h->fetch_offsets->partitions,
                                        h->fetch_offsets->n_partitions, errbuf, errlen)) < 0)
            return r;
        break;
    case RUNNEL__API__DESCRIBE_GROUP:
        if ((r = check_group_id("DESCRIBE_GROUP", h->describe_group->group_id, errbuf, errlen)) < 0)
            return r;
        break;
    case RUNNEL__API__DELETE_GROUP:
        if ((r = check_group_id("DELETE_GROUP", h->delete_group->group_id, errbuf, errlen)) < 0)
            return r;
        break;
    case RUNNEL__API__FIND_COORDINATOR:
        /* "" is allowed: the coordinator of the groups' first partition
         * (ListGroups asks it so). */
        if (h->find_coordinator->group_id && h->find_coordinator->group_id[0] &&
            (r = check_group_id("FIND_COORDINATOR", h->find_coordinator->group_id, errbuf,
                                errlen)) < 0)
            return r;
        break;
    default:
        break;
    }
    /* Only Produce carries bytes after the header. */
    if (h->api != RUNNEL__API__PRODUCE && payload_len != 0)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "%s request carries a payload of %" PRIu32 " bytes", a->name, payload_len);
    return 0;
}

/* Map a failed unpack to an error: budget, memory, or bad bytes. */
static int unpack_error(const rn_frame_alloc *a, const char *what, uint32_t len, char *errbuf,
                        size_t errlen)
{
    if (a->over_budget)
        return fail(-RN_E_REQUEST_TOO_LARGE, errbuf, errlen,
                    "%s of %" PRIu32 " bytes needs more than %zu bytes of memory to decode", what,
                    len, a->budget);
    if (a->oom)
        return fail(-ENOMEM, errbuf, errlen, "out of memory decoding a %s", what);
    return fail(-RN_E_INVALID_REQUEST, errbuf, errlen, "%s of %" PRIu32 " bytes is malformed", what,
                len);
}

/* ---- Request and response decoding -------------------------------------- */

int rn_frame_request_decode(rn_frame_request *req, const rn_frame *f, const rn_frame_limits *lim,
                            char *errbuf, size_t errlen)
{
    rn_frame_limits l = limits_or_default(lim);
    memset(req, 0, sizeof(*req));
    req->payload = f->payload;
    req->payload_len = f->payload_len;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    alloc_init(&req->alloc, l.max_decode_mem);

    ProtobufCMessage *m = protobuf_c_message_unpack(&runnel__request_header__descriptor,
                                                    &req->alloc.pc, f->header_len, f->header);
    if (!m) {
        uint64_t v;
        if (scan_varint_field(f->header, f->header_len, 3, &v)) {
            req->have_correlation_id = true;
            req->correlation_id = (uint32_t)v;
        }
        if (scan_varint_field(f->header, f->header_len, 1, &v))
            req->api = (int)v;
        return unpack_error(&req->alloc, "request header", f->header_len, errbuf, errlen);
    }
    Runnel__RequestHeader *h = (Runnel__RequestHeader *)m;
    req->have_correlation_id = true;
    req->correlation_id = h->correlation_id;
    req->api = h->api;
    req->api_version = h->api_version;

    int r = check_request(h, f->payload_len, &l, errbuf, errlen);
    if (r < 0) {
        alloc_free_msg(&req->alloc, m);
        return r;
    }
    req->hdr = h;
    return 0;
}

void rn_frame_request_fini(rn_frame_request *req)
{
    alloc_free_msg(&req->alloc, req->hdr ? &req->hdr->base : NULL);
    req->hdr = NULL;
}

static int check_response(const Runnel__ResponseHeader *h, int expected_api, uint32_t payload_len,
                          const rn_frame_limits *l, char *errbuf, size_t errlen)
{
    if (expected_api) {
        const rn_frame_api *a = api_find(expected_api);
        if (!a)
            return fail(-EINVAL, errbuf, errlen, "expected api %d is not decodable", expected_api);
        if (h->body_case == RUNNEL__RESPONSE_HEADER__BODY__NOT_SET) {
            if (h->error_code == 0)
                return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                            "%s response has neither a body nor an error code", a->name);
        } else if ((int)h->body_case != BODY_FIELD(a->api)) {
            return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                        "%s response carries the body of another api (field %d)", a->name,
                        (int)h->body_case);
        }
    }
    int r = check_counts(&h->base, l->max_entries, errbuf, errlen);
    if (r < 0)
        return r;

    uint64_t sum = 0;
    if (h->body_case == RUNNEL__RESPONSE_HEADER__BODY_FETCH)
        for (size_t i = 0; i < h->fetch->n_partitions; i++)
            sum += h->fetch->partitions[i]->bytes_len;
    if (sum != payload_len)
        return fail(-RN_E_INVALID_REQUEST, errbuf, errlen,
                    "response announces %" PRIu64 " payload bytes but the payload has %" PRIu32,
                    sum, payload_len);
    return 0;
}

int rn_frame_response_decode(rn_frame_response *resp, const rn_frame *f, int expected_api,
                             const rn_frame_limits *lim, char *errbuf, size_t errlen)
{
    rn_frame_limits l = limits_or_default(lim);
    memset(resp, 0, sizeof(*resp));
    resp->payload = f->payload;
    resp->payload_len = f->payload_len;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    alloc_init(&resp->alloc, l.max_decode_mem);

    ProtobufCMessage *m = protobuf_c_message_unpack(&runnel__response_header__descriptor,
                                                    &resp->alloc.pc, f->header_len, f->header);
    if (!m)
        return unpack_error(&resp->alloc, "response header", f->header_len, errbuf, errlen);
    int r = check_response((Runnel__ResponseHeader *)m, expected_api, f->payload_len, &l, errbuf,
                           errlen);
    if (r < 0) {
        alloc_free_msg(&resp->alloc, m);
        return r;
    }
    resp->hdr = (Runnel__ResponseHeader *)m;
    return 0;
}

void rn_frame_response_fini(rn_frame_response *resp)
{
    alloc_free_msg(&resp->alloc, resp->hdr ? &resp->hdr->base : NULL);
    resp->hdr = NULL;
}

bool rn_frame_error_closes(int err)
{
    if (err >= 0)
        return false;
    return err != -RN_E_UNKNOWN_API && err != -RN_E_UNSUPPORTED_VERSION &&
           err != -RN_E_MESSAGE_TOO_LARGE;
}

/* ---- Encoding -------------------------------------------------------------- */

size_t rn_frame_encoded_len(const ProtobufCMessage *hdr)
{
    return RN_FRAME_PREFIX_LEN + protobuf_c_message_get_packed_size(hdr);
}

int rn_frame_encode(const ProtobufCMessage *hdr, size_t payload_len, void *buf, size_t cap,
                    size_t *out_len)
{
    size_t header_len = protobuf_c_message_get_packed_size(hdr);
    *out_len = 0;
    if (header_len > UINT32_MAX - 4 || payload_len > UINT32_MAX - 4 - header_len)
        return -EMSGSIZE;
    *out_len = RN_FRAME_PREFIX_LEN + header_len;
    if (cap < *out_len)
        return -ENOBUFS;
    uint8_t *p = buf;
    rn_put_be32(p, (uint32_t)(4 + header_len + payload_len));
    rn_put_be32(p + 4, (uint32_t)header_len);
    protobuf_c_message_pack(hdr, p + RN_FRAME_PREFIX_LEN);
    return 0;
}

int rn_frame_encode_alloc(const ProtobufCMessage *hdr, size_t payload_len, uint8_t **out,
                          size_t *out_len)
{
    size_t need = rn_frame_encoded_len(hdr);
    *out = NULL;
    *out_len = 0;
    uint8_t *buf = malloc(need);
    if (!buf)
        return -ENOMEM;
    int r = rn_frame_encode(hdr, payload_len, buf, need, out_len);
    if (r < 0) {
        free(buf);
        return r;
    }
    *out = buf;
    return 0;
}
