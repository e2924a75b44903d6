/*
 * apis.c — the Kafka APIs the listener speaks, each mapped onto the native
 * request a runnel client would send (see kafka.h; docs/kafka.md).
 *
 *   ApiVersions  v0–v3  answered here (it is about this listener's versions);
 *                       v3 comes with request header v2 and is answered with
 *                       response header v0, as every ApiVersions is
 *   Metadata     v0–v8  → native Metadata for topics and leaders; brokers:
 *                       this one alone, or in a cluster every registered,
 *                       unfenced broker with a Kafka listener (its
 *                       registration carries it), at that listener's address;
 *                       with auto.create.topics.enable (off by default) the
 *                       unknown topics it names are created (native
 *                       CreateTopics, num.partitions, the default replication
 *                       factor) and the Metadata asked again, as Kafka does:
 *                       metadata.c
 *   Produce      v3–v8  → native Produce; each partition's records field is
 *                       cut into its RecordBatch v2 batches, passed as they are
 *   Fetch        v4–v11 → native Fetch (no fetch sessions: session id 0);
 *                       batches go out as slices of the segment mappings
 *   ListOffsets  v1–v5  → native ListOffsets (-2 earliest, -1 latest, time)
 *   CreateTopics v2–v4  → native CreateTopics (partitions, replication factor,
 *                       configs; manual assignments are INVALID_REQUEST)
 *   DeleteTopics v1–v3  → native DeleteTopics
 *   InitProducerId v0–v4, OffsetsForLeaderEpoch v0–v4, CreatePartitions
 *   v0–v2, DescribeConfigs v0–v2, SaslHandshake v0–v1, SaslAuthenticate v0–v2:
 *                       producer.c, epochs.c, admin.c, sasl.c
 *
 * On a cluster, Produce, Fetch and ListOffsets for a partition another
 * broker leads are NOT_LEADER_OR_FOLLOWER: Fetch and ListOffsets from the
 * native handlers (the partition's role, one rule for every door); Produce
 * also here first (led_elsewhere), because its batches are checked in this
 * door before any native call and the leader's answer comes first.
 *
 * Any other API, or a version outside these ranges, is answered with
 * response header v0 and an i16 UNSUPPORTED_VERSION (ApiVersions with the
 * whole v0 body, so a client can downgrade), never with a closed connection.
 * A request whose body does not parse is a broken client: the connection is
 * closed, as Kafka's broker does.
 *
 * Every request parses its whole body before anything runs, with the reader's
 * bounds checks (codec.c); the strings the native request needs are copied
 * into the request's own allocations (ctx), freed with it. The ctx and
 * rn__kafka_call_native are shared with metadata.c through apis_int.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/apis_int.h"
#include "broker/kafka/conn.h"
#include "broker/kafka/groups.h"
#include "broker/kafka/kafka.h"
#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "protocol/batch.h"

#define RN_KAFKA_INVALID_REQUIRED_ACKS 21

/* The API versions this listener answers (what ApiVersions advertises). */
static const struct {
    int16_t key, min, max;
} supported[] = {
    {RN_KAFKA_PRODUCE, 3, 8},
    {RN_KAFKA_FETCH, 4, 11},
    {RN_KAFKA_LIST_OFFSETS, 1, 5},
    {RN_KAFKA_METADATA, 0, 8},
    {RN_KAFKA_API_VERSIONS, 0, 3},
    {RN_KAFKA_CREATE_TOPICS, 2, 4},
    {RN_KAFKA_DELETE_TOPICS, 1, 3},
    {RN_KAFKA_INIT_PRODUCER_ID, 0, 4},
    {RN_KAFKA_OFFSETS_FOR_LEADER_EPOCH, 0, 4},
    {RN_KAFKA_CREATE_PARTITIONS, 0, 2},
    {RN_KAFKA_DESCRIBE_CONFIGS, 0, 2},
    {RN_KAFKA_SASL_HANDSHAKE, 0, 1},
    {RN_KAFKA_SASL_AUTHENTICATE, 0, 2},
    /* consumer groups: broker/kafka/groups.c */
    {RN_KAFKA_FIND_COORDINATOR, 0, 4},
    {RN_KAFKA_JOIN_GROUP, 0, 5},
    {RN_KAFKA_SYNC_GROUP, 0, 3},
    {RN_KAFKA_HEARTBEAT, 0, 3},
    {RN_KAFKA_LEAVE_GROUP, 0, 3},
    {RN_KAFKA_OFFSET_COMMIT, 0, 7},
    {RN_KAFKA_OFFSET_FETCH, 0, 7},
    {RN_KAFKA_LIST_GROUPS, 0, 2},
    {RN_KAFKA_DESCRIBE_GROUPS, 0, 4},
    {RN_KAFKA_DELETE_GROUPS, 0, 1},
};
#define N_SUPPORTED (sizeof(supported) / sizeof(supported[0]))

static bool version_ok(int16_t key, int16_t v)
{
    for (size_t i = 0; i < N_SUPPORTED; i++)
        if (supported[i].key == key)
            return v >= supported[i].min && v <= supported[i].max;
    return false;
}

/* ---- The request's own memory ------------------------------------------------------ */

static void ctx_free(void *p)
{
    kctx *x = p;
    if (!x)
        return;
    for (size_t i = 0; i < x->n_allocs; i++)
        free(x->allocs[i]);
    free(x->allocs);
    free(x);
}

void *rn__kafka_ctx_alloc(kctx *x, size_t n)
{
    if (x->n_allocs == x->cap_allocs) {
        size_t cap = x->cap_allocs ? x->cap_allocs * 2 : 16;
        void **a = realloc(x->allocs, cap * sizeof(*a));
        if (!a)
            return NULL;
        x->allocs = a;
        x->cap_allocs = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (p)
        x->allocs[x->n_allocs++] = p;
    return p;
}

char *rn__kafka_ctx_str(kctx *x, rn_kstr s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = rn__kafka_ctx_alloc(x, n + 1);
    if (p && n)
        memcpy(p, s.data, n);
    return p;
}

kctx *rn__kafka_ctx_new(rn_kreq *req)
{
    kctx *x = calloc(1, sizeof(*x));
    if (x) {
        req->ctx = x;
        req->ctx_free = ctx_free;
    }
    return x;
}

/* Room for nt topics and n_parts partitions (what the answer lists back). */
static bool ctx_tables(kctx *x, size_t nt, size_t n_parts)
{
    x->topics = rn__kafka_ctx_alloc(x, nt * sizeof(*x->topics));
    x->parts = rn__kafka_ctx_alloc(x, n_parts * sizeof(*x->parts));
    return x->topics && x->parts;
}

/* The next topic of the request: its name read, its partitions to follow.
 * NULL when out of memory. */
static ktopic *read_topic(kctx *x, rn_kreader *rd)
{
    ktopic *kt = &x->topics[x->n_topics++];
    kt->name = rn__kafka_ctx_str(x, rn_kread_string(rd, false));
    kt->first = x->n_parts;
    return kt->name ? kt : NULL;
}

/* First pass over nt topics whose partitions are per bytes each: how many
 * partitions, so every array is sized once (the counts are bounded by the
 * bytes, codec.c). The reader is left where it was. */
static int count_parts(rn_kreader *rd, int32_t nt, size_t per, size_t *n_parts)
{
    size_t mark = rd->pos, n = 0;
    for (int32_t t = 0; t < nt && !rd->err; t++) {
        (void)rn_kread_string(rd, false);
        int32_t np = rn_kread_array(rd, false, false, per);
        rn_kread_skip(rd, (size_t)np * per);
        n += (size_t)np;
    }
    if (rd->err)
        return rd->err;
    rd->pos = mark;
    *n_parts = n;
    return 0;
}

/* ---- Answers --------------------------------------------------------------------- */

/* The native answer's slices, for the answers that copy what they need. */
void rn__kafka_release(rn_slice *slices, unsigned n_slices)
{
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
}

/* An answer's writer with its header written; NULL when out of memory, the
 * request then already answered (the connection closes). */
static rn_kout *begin(rn_kreq *req, bool flexible)
{
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return NULL;
    }
    rn_kafka_response_begin(&o->w, req->h.correlation_id, flexible);
    return o;
}

static void finish(rn_kreq *req, rn_kout *o)
{
    size_t extra = 0; /* fetch data spliced in from the segments */
    for (unsigned i = 0; i < o->n_pieces; i++)
        if (o->pieces[i].ext)
            extra += o->pieces[i].len;
    rn_kafka_response_end(&o->w, extra);
    rn_kreq_answer(req, o);
}

static void answer_unsupported(rn_kreq *req)
{
    rn_kout *o = begin(req, false);
    if (!o)
        return;
    rn_kwrite_i16(&o->w, RN_KAFKA_UNSUPPORTED_VERSION);
    finish(req, o);
}

/* Run h in-process; answer is called with the native answer, or at once
 * with the error when the call cannot start (rc < 0 is such an error
 * found before the call: it is not made). */
int rn__kafka_call_native(rn_kreq *req, int rc, Runnel__RequestHeader *h, const void *payload,
                          size_t len, rn_gw_answer_cb answer)
{
    if (rc >= 0)
        rc = rn_kreq_call(req, h, payload, len, answer);
    if (rc < 0) {
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        eh.error_code = (uint32_t)-rc;
        answer(&req->call, &eh, NULL, 0);
    }
    return 0;
}

/* ---- ApiVersions ---------------------------------------------------------------------- */

void rn_kafka_api_versions_write(rn_kwriter *w, int32_t correlation_id, int16_t version)
{
    /* Kafka's rule: a version it does not know is answered in v0 with
     * UNSUPPORTED_VERSION and the list, and the client downgrades. */
    int16_t v = version > 3 || version < 0 ? 0 : version;
    bool flex = v >= 3;
    rn_kafka_response_begin(w, correlation_id, false); /* header v0, always */
    rn_kwrite_i16(w, v != version ? RN_KAFKA_UNSUPPORTED_VERSION : 0);
    rn_kwrite_array(w, flex, (int32_t)N_SUPPORTED);
    for (size_t i = 0; i < N_SUPPORTED; i++) {
        rn_kwrite_i16(w, supported[i].key);
        rn_kwrite_i16(w, supported[i].min);
        rn_kwrite_i16(w, supported[i].max);
        rn_kwrite_tags(w, flex);
    }
    if (v >= 1)
        rn_kwrite_i32(w, 0); /* throttle_time_ms */
    rn_kwrite_tags(w, flex);
    rn_kafka_response_end(w, 0);
}

static int api_versions(rn_kreq *req)
{
    if (req->h.api_version == 3) {
        rn_kreader *rd = &req->body;
        (void)rn_kread_compact_string(rd, false); /* client_software_name */
        (void)rn_kread_compact_string(rd, false); /* client_software_version */
        rn_kread_tags(rd);
        if (rd->err)
            return rd->err;
    }
    rn_kout *o = rn_kout_new();
    if (!o) {
        rn_kreq_oom(req);
        return 0;
    }
    rn_kafka_api_versions_write(&o->w, req->h.correlation_id, req->h.api_version);
    rn_kreq_answer(req, o);
    return 0;
}

/* ---- Leaders ---------------------------------------------------------------------------- */

/* Whether the metadata names another broker as the partition's leader.
 * The native handlers answer NOT_LEADER for such a partition (its role);
 * Produce asks here too only because this door checks each batch before
 * the native call, and a client must hear "not the leader" first, not
 * that its batch is malformed. A topic or partition the metadata does not
 * know is left to the native handler (UNKNOWN_TOPIC_OR_PARTITION). Reactor
 * 0, the Kafka listener's, owns the metadata. */
static bool led_elsewhere(rn_kreq *req, const char *topic, int32_t partition)
{
    rn_broker *b = rn_kreq_broker(req);
    if (!b || !b->quorum || !b->md)
        return false;
    const rn_topic_info *t = rn_metadata_find(b->md, topic);
    if (!t || partition < 0 || partition >= t->n_partitions)
        return false;
    return t->partitions[partition].leader != b->cfg.node_id;
}

/* ---- Produce ---------------------------------------------------------------------------- */

static void produce_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                           unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    kctx *x = req->ctx;
    rn__kafka_release(slices, n_slices);
    if (x->acks == 0) {
        rn_kreq_answer(req, NULL); /* acks=0: no answer at all */
        return;
    }
    int16_t v = req->h.api_version;
    Runnel__ProduceResponse *pr =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_PRODUCE ? hdr->produce : NULL;
    int16_t whole = rn_kafka_error((int)hdr->error_code);
    rn_kout *o = begin(req, false);
    if (!o)
        return;
    rn_kwriter *w = &o->w;
    rn_kwrite_array(w, false, (int32_t)x->n_topics);
    for (size_t t = 0; t < x->n_topics; t++) {
        ktopic *kt = &x->topics[t];
        rn_kwrite_str(w, false, kt->name);
        rn_kwrite_array(w, false, (int32_t)kt->n);
        for (size_t j = 0; j < kt->n; j++) {
            kpart *kp = &x->parts[kt->first + j];
            int16_t err = kp->error;
            int64_t base = -1, log_start = -1;
            const char *msg = NULL;
            /* Batches of one partition: the first one's offset; the first error. */
            for (size_t k = 0; k < kp->n && !err; k++) {
                size_t at = kp->first + k;
                if (!pr || at >= pr->n_partitions) {
                    err = whole ? whole : RN_KAFKA_UNKNOWN_SERVER_ERROR;
                    break;
                }
                Runnel__ProducePartitionResponse *r = pr->partitions[at];
                if (r->error_code) {
                    err = rn_kafka_error((int)r->error_code);
                    msg = r->error_message && *r->error_message ? r->error_message : NULL;
                    break;
                }
                if (k == 0)
                    base = r->base_offset;
                log_start = r->log_start_offset;
            }
            if (!err && kp->n == 0 && whole)
                err = whole;
            rn_kwrite_i32(w, kp->partition);
            rn_kwrite_i16(w, err);
            rn_kwrite_i64(w, err ? -1 : base);
            rn_kwrite_i64(w, -1); /* log_append_time_ms: CreateTime */
            if (v >= 5)
                rn_kwrite_i64(w, log_start);
            if (v >= 8) {
                rn_kwrite_array(w, false, 0); /* record_errors */
                rn_kwrite_str(w, false, err ? msg : NULL);
            }
        }
    }
    rn_kwrite_i32(w, 0); /* throttle_time_ms */
    finish(req, o);
}

static int produce(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    kctx *x = rn__kafka_ctx_new(req);
    if (!x)
        return -ENOMEM;
    (void)rn_kread_string(rd, true); /* transactional_id: transactions are not supported */
    x->acks = rn_kread_i16(rd);
    int32_t timeout_ms = rn_kread_i32(rd);
    int32_t nt = rn_kread_array(rd, false, false, 6);
    if (rd->err)
        return rd->err;
    /* First pass: count, so every array is sized once (the counts are
     * bounded by the bytes, codec.c). */
    size_t mark = rd->pos, n_parts = 0, n_batches = 0, payload_len = 0;
    for (int32_t t = 0; t < nt && !rd->err; t++) {
        (void)rn_kread_string(rd, false);
        int32_t np = rn_kread_array(rd, false, false, 8);
        for (int32_t p = 0; p < np && !rd->err; p++) {
            (void)rn_kread_i32(rd);
            rn_kstr rec = rn_kread_bytes(rd, true);
            n_parts++;
            /* Batches: 12 bytes of offset and length, then batch_length. */
            for (size_t off = 0; rec.len > 0 && off + 12 <= (size_t)rec.len;) {
                const uint8_t *q = rec.data + off + 8;
                uint32_t bl =
                    (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
                if (bl > (size_t)rec.len - off - 12)
                    break;
                n_batches++;
                off += 12 + bl;
            }
            payload_len += rec.len > 0 ? (size_t)rec.len : 0;
        }
    }
    if (rd->err)
        return rd->err;
    rd->pos = mark;
    Runnel__ProducePartition *pp = rn__kafka_ctx_alloc(x, n_batches * sizeof(*pp));
    Runnel__ProducePartition **ptrs = rn__kafka_ctx_alloc(x, n_batches * sizeof(*ptrs));
    uint8_t *payload = rn__kafka_ctx_alloc(x, payload_len);
    if (!ctx_tables(x, (size_t)nt, n_parts) || !pp || !ptrs || !payload)
        return -ENOMEM;
    size_t nb = 0, plen = 0;
    for (int32_t t = 0; t < nt; t++) {
        ktopic *kt = read_topic(x, rd);
        if (!kt)
            return -ENOMEM;
        int32_t np = rn_kread_array(rd, false, false, 8);
        for (int32_t p = 0; p < np; p++) {
            kpart *kp = &x->parts[x->n_parts++];
            kt->n++;
            kp->partition = rn_kread_i32(rd);
            rn_kstr rec = rn_kread_bytes(rd, true);
            kp->first = nb;
            if (!rd->err && led_elsewhere(req, kt->name, kp->partition)) {
                kp->error = RN_KAFKA_NOT_LEADER_OR_FOLLOWER;
                continue;
            }
            if (rec.len < RN_BATCH_HEADER_LEN) {
                kp->error = RN_KAFKA_CORRUPT_MESSAGE; /* null or shorter than one batch */
                continue;
            }
            size_t off = 0, first_nb = nb, first_plen = plen;
            while (off < (size_t)rec.len) {
                const uint8_t *q = rec.data + off;
                size_t left = (size_t)rec.len - off;
                uint32_t bl = left >= 12 ? ((uint32_t)q[8] << 24 | (uint32_t)q[9] << 16 |
                                            (uint32_t)q[10] << 8 | q[11])
                                         : 0;
                if (left < RN_BATCH_HEADER_LEN || bl > left - 12 ||
                    12 + (size_t)bl < RN_BATCH_HEADER_LEN) {
                    /* A cut batch: nothing of this partition is written. */
                    kp->error = RN_KAFKA_CORRUPT_MESSAGE;
                    nb = first_nb;
                    plen = first_plen;
                    break;
                }
                size_t len = 12 + (size_t)bl;
                runnel__produce_partition__init(&pp[nb]);
                pp[nb].topic = kt->name;
                pp[nb].partition = kp->partition;
                pp[nb].batch_len = (uint32_t)len;
                ptrs[nb] = &pp[nb];
                memcpy(payload + plen, q, len);
                plen += len;
                nb++;
                off += len;
            }
            kp->n = kp->error ? 0 : nb - kp->first;
        }
    }
    if (rd->err)
        return rd->err;
    if (x->acks != 0 && x->acks != 1 && x->acks != -1) {
        for (size_t i = 0; i < x->n_parts; i++)
            x->parts[i].error = RN_KAFKA_INVALID_REQUIRED_ACKS;
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        x->acks = 1; /* answered (with the error) */
        produce_answer(&req->call, &eh, NULL, 0);
        return 0;
    }
    Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
    /* acks=0 runs as acks=1 and its answer is dropped here: the native
     * handler sends nothing back for acks=0, and this request must know
     * when it is done to keep the connection's answers in order. */
    pr.acks = x->acks == 0 ? 1 : x->acks;
    pr.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
    pr.n_partitions = nb;
    pr.partitions = ptrs;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__PRODUCE;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
    h.produce = &pr;
    int rc = nb ? rn_kreq_call(req, &h, payload, plen, produce_answer) : -RN_E_INVALID_REQUEST;
    if (rc < 0) {
        /* Refused whole (too large, …): every partition gets the code. */
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        eh.error_code = (uint32_t)-rc;
        for (size_t i = 0; i < x->n_parts && nb; i++)
            if (!x->parts[i].error)
                x->parts[i].error = rn_kafka_error(rc);
        produce_answer(&req->call, &eh, NULL, 0);
    }
    return 0;
}

/* ---- Fetch ------------------------------------------------------------------------------- */

/* Splice payload bytes [off, off + len) of the native answer (its slices back
 * to back) into o. */
static int splice_payload(rn_kout *o, size_t *cut, size_t off, size_t len)
{
    size_t base = 0;
    for (unsigned i = 0; i < o->n_slices && len > 0; i++) {
        const rn_slice *s = &o->slices[i];
        if (off < base + s->len) {
            size_t in = off - base;
            size_t take = s->len - in < len ? s->len - in : len;
            if (rn_kout_splice(o, cut, s->data + in, take) < 0)
                return -ENOMEM;
            off += take;
            len -= take;
        }
        base += s->len;
    }
    return len ? -EINVAL : 0;
}

static void fetch_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                         unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    kctx *x = req->ctx;
    int16_t v = req->h.api_version;
    rn_kout *o = begin(req, false);
    if (!o) {
        rn__kafka_release(slices, n_slices);
        return;
    }
    /* The answer holds the references until it is sent. */
    if (n_slices) {
        o->slices = malloc(n_slices * sizeof(*slices));
        if (!o->slices) {
            rn__kafka_release(slices, n_slices);
            o->w.oom = true;
            finish(req, o);
            return;
        }
        memcpy(o->slices, slices, n_slices * sizeof(*slices));
        o->n_slices = n_slices;
    }
    Runnel__FetchResponse *fr =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_FETCH ? hdr->fetch : NULL;
    int16_t whole = rn_kafka_error((int)hdr->error_code);
    rn_kwriter *w = &o->w;
    rn_kwrite_i32(w, 0); /* throttle_time_ms */
    if (v >= 7) {
        rn_kwrite_i16(w, 0); /* error_code */
        rn_kwrite_i32(w, 0); /* session_id: no fetch sessions */
    }
    size_t cut = 0, at = 0, payload_off = 0;
    rn_kwrite_array(w, false, (int32_t)x->n_topics);
    for (size_t t = 0; t < x->n_topics; t++) {
        ktopic *kt = &x->topics[t];
        rn_kwrite_str(w, false, kt->name);
        rn_kwrite_array(w, false, (int32_t)kt->n);
        for (size_t j = 0; j < kt->n; j++, at++) {
            kpart *kp = &x->parts[kt->first + j];
            Runnel__FetchPartitionResponse *r =
                fr && at < fr->n_partitions ? fr->partitions[at] : NULL;
            int16_t err = kp->error ? kp->error
                          : r       ? rn_kafka_error((int)r->error_code)
                                    : (whole ? whole : RN_KAFKA_UNKNOWN_SERVER_ERROR);
            int64_t hw = r && !kp->error ? r->high_watermark : -1;
            rn_kwrite_i32(w, kp->partition);
            rn_kwrite_i16(w, err);
            rn_kwrite_i64(w, hw);
            rn_kwrite_i64(w, hw); /* last_stable_offset: no transactions */
            if (v >= 5)
                rn_kwrite_i64(w, r && !kp->error ? r->log_start_offset : -1);
            rn_kwrite_array(w, false, 0); /* aborted_transactions */
            if (v >= 11)
                rn_kwrite_i32(w, -1); /* preferred_read_replica */
            uint32_t len = r ? r->bytes_len : 0;
            if (kp->error) { /* sent only as a stand-in (fetch): its bytes, if any, skipped */
                payload_off += len;
                len = 0;
            }
            rn_kwrite_i32(w, (int32_t)len);
            if (len) {
                if (splice_payload(o, &cut, payload_off, len) < 0)
                    o->w.oom = true;
                payload_off += len;
            }
        }
    }
    if (rn_kout_finish(o, cut) < 0)
        o->w.oom = true;
    finish(req, o);
}

static int fetch(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    int16_t v = req->h.api_version;
    kctx *x = rn__kafka_ctx_new(req);
    if (!x)
        return -ENOMEM;
    (void)rn_kread_i32(rd); /* replica_id: a consumer's, whatever it says */
    int32_t max_wait = rn_kread_i32(rd);
    int32_t min_bytes = rn_kread_i32(rd);
    int32_t max_bytes = rn_kread_i32(rd);
    int8_t isolation = rn_kread_i8(rd);
    if (v >= 7) {
        (void)rn_kread_i32(rd); /* session_id */
        (void)rn_kread_i32(rd); /* session_epoch */
    }
    int32_t nt = rn_kread_array(rd, false, false, 6);
    if (rd->err)
        return rd->err;
    size_t n_parts, per = 4 + (v >= 9 ? 4 : 0) + 8 + (v >= 5 ? 8 : 0) + 4;
    int rc = count_parts(rd, nt, per, &n_parts);
    if (rc < 0)
        return rc;
    Runnel__FetchPartition *fp = rn__kafka_ctx_alloc(x, n_parts * sizeof(*fp));
    Runnel__FetchPartition **ptrs = rn__kafka_ctx_alloc(x, n_parts * sizeof(*ptrs));
    if (!ctx_tables(x, (size_t)nt, n_parts) || !fp || !ptrs)
        return -ENOMEM;
    for (int32_t t = 0; t < nt; t++) {
        ktopic *kt = read_topic(x, rd);
        if (!kt)
            return -ENOMEM;
        int32_t np = rn_kread_array(rd, false, false, per);
        for (int32_t p = 0; p < np; p++) {
            size_t i = x->n_parts++;
            kt->n++;
            runnel__fetch_partition__init(&fp[i]);
            ptrs[i] = &fp[i];
            fp[i].topic = kt->name;
            fp[i].partition = x->parts[i].partition = rn_kread_i32(rd);
            fp[i].current_leader_epoch = v >= 9 ? rn_kread_i32(rd) : -1;
            fp[i].fetch_offset = rn_kread_i64(rd);
            if (v >= 5)
                (void)rn_kread_i64(rd); /* log_start_offset: a follower's */
            int32_t pmax = rn_kread_i32(rd);
            fp[i].partition_max_bytes = pmax > 0 ? (uint32_t)pmax : 1;
        }
    }
    if (v >= 7) {
        int32_t nf = rn_kread_array(rd, false, false, 6);
        for (int32_t f = 0; f < nf && !rd->err; f++) {
            (void)rn_kread_string(rd, false);
            int32_t np = rn_kread_array(rd, false, false, 4);
            rn_kread_skip(rd, (size_t)np * 4);
        }
    }
    if (v >= 11)
        (void)rn_kread_string(rd, false); /* rack_id */
    if (rd->err)
        return rd->err;
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -1;
    fr.max_wait_ms = max_wait > 0 ? (uint32_t)max_wait : 0;
    fr.min_bytes = min_bytes > 0 ? (uint32_t)min_bytes : 0;
    fr.max_bytes = max_bytes > 0 ? (uint32_t)max_bytes : 1;
    fr.isolation = isolation == 1 ? RUNNEL__ISOLATION_LEVEL__READ_COMMITTED
                                  : RUNNEL__ISOLATION_LEVEL__READ_UNCOMMITTED;
    fr.n_partitions = x->n_parts;
    fr.partitions = ptrs;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    h.fetch = &fr;
    return rn__kafka_call_native(req, 0, &h, NULL, 0, fetch_answer);
}

/* ---- ListOffsets -------------------------------------------------------------------------- */

static void list_offsets_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                                unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    kctx *x = req->ctx;
    rn__kafka_release(slices, n_slices);
    int16_t v = req->h.api_version;
    Runnel__ListOffsetsResponse *lr =
        hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS ? hdr->list_offsets : NULL;
    int16_t whole = rn_kafka_error((int)hdr->error_code);
    rn_kout *o = begin(req, false);
    if (!o)
        return;
    rn_kwriter *w = &o->w;
    if (v >= 2)
        rn_kwrite_i32(w, 0); /* throttle_time_ms */
    size_t at = 0;
    rn_kwrite_array(w, false, (int32_t)x->n_topics);
    for (size_t t = 0; t < x->n_topics; t++) {
        ktopic *kt = &x->topics[t];
        rn_kwrite_str(w, false, kt->name);
        rn_kwrite_array(w, false, (int32_t)kt->n);
        for (size_t j = 0; j < kt->n; j++, at++) {
            Runnel__ListOffsetsPartitionResponse *r =
                lr && at < lr->n_partitions ? lr->partitions[at] : NULL;
            const kpart *kp = &x->parts[kt->first + j];
            if (kp->error) /* led elsewhere: not this broker's offsets to give */
                r = NULL;
            rn_kwrite_i32(w, kp->partition);
            rn_kwrite_i16(w, kp->error ? kp->error
                             : r       ? rn_kafka_error((int)r->error_code)
                                       : (whole ? whole : RN_KAFKA_UNKNOWN_SERVER_ERROR));
            rn_kwrite_i64(w, r ? r->timestamp : -1);
            rn_kwrite_i64(w, r ? r->offset : -1);
            if (v >= 4)
                rn_kwrite_i32(w, r ? r->leader_epoch : -1);
        }
    }
    finish(req, o);
}

static int list_offsets(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    int16_t v = req->h.api_version;
    kctx *x = rn__kafka_ctx_new(req);
    if (!x)
        return -ENOMEM;
    (void)rn_kread_i32(rd); /* replica_id */
    int8_t isolation = v >= 2 ? rn_kread_i8(rd) : 0;
    int32_t nt = rn_kread_array(rd, false, false, 6);
    if (rd->err)
        return rd->err;
    size_t n_parts, per = 4 + (v >= 4 ? 4 : 0) + 8;
    int rc = count_parts(rd, nt, per, &n_parts);
    if (rc < 0)
        return rc;
    Runnel__ListOffsetsPartition *lp = rn__kafka_ctx_alloc(x, n_parts * sizeof(*lp));
    Runnel__LeaderEpochQuery *eq = rn__kafka_ctx_alloc(x, n_parts * sizeof(*eq));
    Runnel__ListOffsetsPartition **ptrs = rn__kafka_ctx_alloc(x, n_parts * sizeof(*ptrs));
    if (!ctx_tables(x, (size_t)nt, n_parts) || !lp || !eq || !ptrs)
        return -ENOMEM;
    bool bad_ts = false;
    for (int32_t t = 0; t < nt; t++) {
        ktopic *kt = read_topic(x, rd);
        if (!kt)
            return -ENOMEM;
        int32_t np = rn_kread_array(rd, false, false, per);
        for (int32_t p = 0; p < np; p++) {
            size_t i = x->n_parts++;
            kt->n++;
            runnel__list_offsets_partition__init(&lp[i]);
            ptrs[i] = &lp[i];
            lp[i].topic = kt->name;
            lp[i].partition = x->parts[i].partition = rn_kread_i32(rd);
            if (v >= 4) { /* KIP-320: -1 not to check */
                runnel__leader_epoch_query__init(&eq[i]);
                eq[i].current_leader_epoch = rn_kread_i32(rd);
                lp[i].epochs = &eq[i];
            }
            lp[i].timestamp = rn_kread_i64(rd);
            if (lp[i].timestamp < -2)
                bad_ts = true;
        }
    }
    if (rd->err)
        return rd->err;
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    lr.isolation = isolation == 1 ? RUNNEL__ISOLATION_LEVEL__READ_COMMITTED
                                  : RUNNEL__ISOLATION_LEVEL__READ_UNCOMMITTED;
    lr.n_partitions = x->n_parts;
    lr.partitions = ptrs;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__LIST_OFFSETS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &lr;
    /* A timestamp below -2 (Kafka's -3 max-timestamp, KIP-734) is not
     * supported: the whole request is answered INVALID_REQUEST. */
    return rn__kafka_call_native(req, bad_ts ? -RN_E_INVALID_REQUEST : 0, &h, NULL, 0,
                                 list_offsets_answer);
}

/* ---- CreateTopics, DeleteTopics ---------------------------------------------------------- */

/* Both answer [name, error_code (, error_message for CreateTopics)] per topic
 * in request order; the native answer lists the same topics in that order. */
static void topics_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                          unsigned n_slices)
{
    rn_kreq *req = (rn_kreq *)call;
    kctx *x = req->ctx;
    rn__kafka_release(slices, n_slices);
    bool create = req->h.api_key == RN_KAFKA_CREATE_TOPICS;
    Runnel__TopicResult **res = NULL;
    size_t n_res = 0;
    if (create && hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_CREATE_TOPICS) {
        res = hdr->create_topics->topics;
        n_res = hdr->create_topics->n_topics;
    } else if (!create && hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_DELETE_TOPICS) {
        res = hdr->delete_topics->topics;
        n_res = hdr->delete_topics->n_topics;
    }
    int16_t whole = rn_kafka_error((int)hdr->error_code);
    rn_kout *o = begin(req, false);
    if (!o)
        return;
    rn_kwriter *w = &o->w;
    rn_kwrite_i32(w, 0); /* throttle_time_ms */
    rn_kwrite_array(w, false, (int32_t)x->n_topics);
    for (size_t i = 0; i < x->n_topics; i++) {
        const Runnel__TopicResult *r = i < n_res ? res[i] : NULL;
        int16_t err = x->parts[i].error ? x->parts[i].error
                      : r               ? rn_kafka_error((int)r->error_code)
                      : whole           ? whole
                                        : RN_KAFKA_UNKNOWN_SERVER_ERROR;
        rn_kwrite_str(w, false, x->topics[i].name);
        rn_kwrite_i16(w, err);
        if (create) /* error_message, v1+ */
            rn_kwrite_str(w, false,
                          err && r && r->error_message && *r->error_message  ? r->error_message
                          : err && hdr->error_message && *hdr->error_message ? hdr->error_message
                                                                             : NULL);
    }
    finish(req, o);
}

static int create_topics(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    kctx *x = rn__kafka_ctx_new(req);
    if (!x)
        return -ENOMEM;
    int32_t nt = rn_kread_array(rd, false, false, 2 + 4 + 2 + 4 + 4);
    if (rd->err)
        return rd->err;
    Runnel__NewTopic *nts = rn__kafka_ctx_alloc(x, (size_t)nt * sizeof(*nts));
    Runnel__NewTopic **ptrs = rn__kafka_ctx_alloc(x, (size_t)nt * sizeof(*ptrs));
    /* parts: one per topic, for its own error */
    if (!ctx_tables(x, (size_t)nt, (size_t)nt) || !nts || !ptrs)
        return -ENOMEM;
    for (int32_t t = 0; t < nt; t++) {
        ktopic *kt = read_topic(x, rd);
        if (!kt)
            return -ENOMEM;
        runnel__new_topic__init(&nts[t]);
        ptrs[t] = &nts[t];
        nts[t].name = kt->name;
        nts[t].num_partitions = rn_kread_i32(rd);
        nts[t].replication_factor = rn_kread_i16(rd);
        int32_t na = rn_kread_array(rd, false, false, 8);
        for (int32_t a = 0; a < na && !rd->err; a++) {
            (void)rn_kread_i32(rd);
            int32_t nb = rn_kread_array(rd, false, false, 4);
            rn_kread_skip(rd, (size_t)nb * 4);
        }
        if (na > 0) /* manual assignments: runnel places replicas itself */
            x->parts[t].error = RN_KAFKA_INVALID_REQUEST;
        int32_t nc = rn_kread_array(rd, false, false, 4);
        if (rd->err)
            return rd->err;
        Runnel__NewTopic__ConfigsEntry *ce = rn__kafka_ctx_alloc(x, (size_t)nc * sizeof(*ce));
        Runnel__NewTopic__ConfigsEntry **cp = rn__kafka_ctx_alloc(x, (size_t)nc * sizeof(*cp));
        if (!ce || !cp)
            return -ENOMEM;
        for (int32_t c = 0; c < nc && !rd->err; c++) {
            runnel__new_topic__configs_entry__init(&ce[c]);
            cp[c] = &ce[c];
            ce[c].key = rn__kafka_ctx_str(x, rn_kread_string(rd, false));
            ce[c].value = rn__kafka_ctx_str(x, rn_kread_string(rd, true));
            if (!ce[c].key || !ce[c].value)
                return -ENOMEM;
        }
        nts[t].n_configs = (size_t)nc;
        nts[t].configs = cp;
    }
    int32_t timeout_ms = rn_kread_i32(rd);
    bool validate_only = rn_kread_i8(rd) != 0;
    if (rd->err)
        return rd->err;
    /* The native answer lists its topics in request order, which
     * topics_answer relies on: a topic refused here (manual assignments)
     * fails the whole request below rather than leave a gap. */
    Runnel__NewTopic **send = rn__kafka_ctx_alloc(x, (size_t)nt * sizeof(*send));
    if (!send)
        return -ENOMEM;
    size_t n_send = 0;
    for (int32_t t = 0; t < nt; t++)
        if (!x->parts[t].error)
            send[n_send++] = ptrs[t];
    Runnel__CreateTopicsRequest cr = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
    cr.n_topics = n_send;
    cr.topics = send;
    cr.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
    cr.validate_only = validate_only;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__CREATE_TOPICS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_CREATE_TOPICS;
    h.create_topics = &cr;
    if (n_send != (size_t)nt) {
        /* Nothing is created: each refused topic says why, the others
         * INVALID_REQUEST (the request as a whole was not run). */
        for (int32_t t = 0; t < nt; t++)
            if (!x->parts[t].error)
                x->parts[t].error = RN_KAFKA_INVALID_REQUEST;
        Runnel__ResponseHeader eh = RUNNEL__RESPONSE_HEADER__INIT;
        topics_answer(&req->call, &eh, NULL, 0);
        return 0;
    }
    return rn__kafka_call_native(req, 0, &h, NULL, 0, topics_answer);
}

static int delete_topics(rn_kreq *req)
{
    rn_kreader *rd = &req->body;
    kctx *x = rn__kafka_ctx_new(req);
    if (!x)
        return -ENOMEM;
    int32_t nt = rn_kread_array(rd, false, false, 2);
    if (rd->err)
        return rd->err;
    char **names = rn__kafka_ctx_alloc(x, (size_t)nt * sizeof(*names));
    if (!ctx_tables(x, (size_t)nt, (size_t)nt) || !names)
        return -ENOMEM;
    for (int32_t t = 0; t < nt; t++) {
        ktopic *kt = read_topic(x, rd);
        if (!kt)
            return -ENOMEM;
        names[t] = kt->name;
    }
    int32_t timeout_ms = rn_kread_i32(rd);
    if (rd->err)
        return rd->err;
    Runnel__DeleteTopicsRequest dr = RUNNEL__DELETE_TOPICS_REQUEST__INIT;
    dr.n_topics = (size_t)nt;
    dr.topics = names;
    dr.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__DELETE_TOPICS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_DELETE_TOPICS;
    h.delete_topics = &dr;
    return rn__kafka_call_native(req, 0, &h, NULL, 0, topics_answer);
}

/* ---- Dispatch ------------------------------------------------------------------------------ */

int rn_kafka_dispatch(rn_kreq *req)
{
    int16_t key = req->h.api_key;
    if (key == RN_KAFKA_API_VERSIONS)
        return api_versions(req);
    if (!version_ok(key, req->h.api_version)) {
        rn_logfmt(RN_DEBUG, "kafka: unsupported API or version", "api_key=%d api_version=%d", key,
                  req->h.api_version);
        answer_unsupported(req);
        return 0;
    }
    switch (key) {
    case RN_KAFKA_METADATA:
        return rn__kafka_metadata(req);
    case RN_KAFKA_PRODUCE:
        return produce(req);
    case RN_KAFKA_FETCH:
        return fetch(req);
    case RN_KAFKA_LIST_OFFSETS:
        return list_offsets(req);
    case RN_KAFKA_CREATE_TOPICS:
        return create_topics(req);
    case RN_KAFKA_DELETE_TOPICS:
        return delete_topics(req);
    case RN_KAFKA_INIT_PRODUCER_ID:
        return rn_kafka_init_producer_id(req);
    case RN_KAFKA_OFFSETS_FOR_LEADER_EPOCH:
        return rn_kafka_offsets_for_leader_epoch(req);
    case RN_KAFKA_CREATE_PARTITIONS:
        return rn_kafka_create_partitions(req);
    case RN_KAFKA_DESCRIBE_CONFIGS:
        return rn_kafka_describe_configs(req);
    case RN_KAFKA_SASL_HANDSHAKE:
    case RN_KAFKA_SASL_AUTHENTICATE:
        return rn_kafka_sasl(req);
    case RN_KAFKA_FIND_COORDINATOR:
        return rn_kafka_find_coordinator(req);
    case RN_KAFKA_JOIN_GROUP:
        return rn_kafka_join_group(req);
    case RN_KAFKA_SYNC_GROUP:
        return rn_kafka_sync_group(req);
    case RN_KAFKA_HEARTBEAT:
        return rn_kafka_heartbeat(req);
    case RN_KAFKA_LEAVE_GROUP:
        return rn_kafka_leave_group(req);
    case RN_KAFKA_OFFSET_COMMIT:
        return rn_kafka_offset_commit(req);
    case RN_KAFKA_OFFSET_FETCH:
        return rn_kafka_offset_fetch(req);
    case RN_KAFKA_LIST_GROUPS:
        return rn_kafka_list_groups(req);
    case RN_KAFKA_DESCRIBE_GROUPS:
        return rn_kafka_describe_groups(req);
    case RN_KAFKA_DELETE_GROUPS:
        return rn_kafka_delete_groups(req);
    default:
        answer_unsupported(req);
        return 0;
    }
}
