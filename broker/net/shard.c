/*
 * shard.c — reactors talking: messages, and requests handed to partition owners.
 *
 * With --reactors N each reactor is a thread with its own ring, connections
 * and partitions (broker.h). A connection lands on whichever reactor the
 * kernel's SO_REUSEPORT hash picks, so a request often names partitions that
 * another reactor owns. Nothing is shared under a lock; instead:
 *
 *   messages   rn_reactor_post puts a pointer on the target's completion queue
 *              with IORING_OP_MSG_RING (storage/io.c rn_io_msg). The target
 *              runs the message's function on its own thread. The kernel's
 *              CQ hand-off orders memory: what the sender wrote before posting
 *              is visible to the function.
 *
 *   routing    rn_shard_route runs before every handler. ApiVersions runs
 *              where it lands. Produce, Fetch, ListOffsets and
 *              OffsetsForLeaderEpoch go to the owners of their partitions (rn_partition_owner, a pure hash, so no
 *              table is read to route; how each API splits and merges is
 *              one entry of partitioned_apis): all local → handled here, all on one
 *              other reactor → forwarded whole, else split into one
 *              sub-request per owner. Every other API is forwarded whole to
 *              reactor 0 (metadata, groups, producer ids live there).
 *
 *   sub-requests  An rn_request with `sub` set, on the target's virtual
 *              connection r->fwd, whose header is borrowed: the parent's
 *              (whole) or a shallow copy with only its partitions (split).
 *              Produce payloads are not copied: the sub appends each batch
 *              straight from the parent's receive buffer (req->batches), which
 *              the parent holds until every sub has answered. The normal
 *              handler runs; its answer goes to a sink (sub_sink) that packs
 *              the response header and keeps the payload slices (segment
 *              references, atomic since they are released on another thread),
 *              then posts them home. Home merges the answers in the parent's
 *              partition order and responds.
 *
 *   long poll  A split fetch parks on every owner; the first sub that comes
 *              back with data (or an error) makes home wake the others, so the
 *              fetch answers as soon as any owner has something, not after
 *              max_wait_ms. A sub that parks with some bytes, fewer than
 *              min_bytes, tells home how many (rn_shard_fetch_parked); when
 *              the parked subs together have min_bytes, home wakes them all,
 *              as one reactor reading every partition would have answered.
 *
 * Life of a fan (the parent's hand-over state): home holds one reference
 * until the merged answer is out; each wake message in flight holds one (the
 * target may run it after home has finished). A parent whose connection dies
 * stays until its subs are back, then its answer is dropped.
 */
#include <errno.h>
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api/api.h"
#include "broker/broker.h"
#include "broker/logfmt.h"
#include "broker/metrics.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "broker/net/shard.h"
#include "broker/part/partitions.h"
#include "protocol/bytes.h"
#include "protocol/container_of.h"

__thread rn_reactor *rn_self;

/* ---- Messages ------------------------------------------------------------------------ */

static void msg_arrived(rn_io_op *op, int res, uint32_t flags)
{
    rn_msg *m = (rn_msg *)op; /* op is the first member */
    (void)flags;
    if (res < 0) {
        /* Not delivered: this is still the sender's thread. Try again. */
        rn_logfmt(RN_WARN, "reactor message not delivered, retrying", "to=%u err=%s", m->to->index,
                  rn_errname(res));
        rn_io_msg(rn_self->io, m->to->io, &m->op, msg_arrived);
        return;
    }
    rn_broker *b = m->to->b;
    m->fn(m); /* may free m */
    __atomic_sub_fetch(&b->msgs_inflight, 1, __ATOMIC_ACQ_REL);
}

void rn_reactor_post(rn_reactor *to, rn_msg *m, rn_msg_fn fn)
{
    m->fn = fn;
    m->to = to;
    __atomic_add_fetch(&to->b->msgs_inflight, 1, __ATOMIC_ACQ_REL);
    rn_io_msg(rn_self->io, to->io, &m->op, msg_arrived);
}

/* ---- Fans -------------------------------------------------------------------------------- */

typedef struct fan fan;

typedef struct sub {
    fan *f;
    rn_reactor *to;
    rn_msg go, back, wake;
    rn_msg prog;        /* fetch: parked with `ready` bytes, owner → home */
    size_t ready;       /* atomic: written on `to`, read at home */
    bool prog_inflight; /* atomic: `prog` posted and not yet run */
    rn_request *req;    /* built at home; after `go`, touched only on `to` */
    bool back_done;     /* home only */
    /* split: the parent's header, shallow, with this owner's partitions */
    Runnel__RequestHeader hdr;
    union {
        Runnel__ProduceRequest produce;
        Runnel__FetchRequest fetch;
        Runnel__ListOffsetsRequest list_offsets;
        Runnel__OffsetsForLeaderEpochRequest offsets_for_leader_epoch;
    } body;
    void **parts;
    size_t n_parts;
    uint8_t **batches;
    /* the answer, written on `to`, read at home after `back` */
    uint8_t *packed;
    size_t packed_len;
    rn_slice *slices;
    unsigned n_slices;
    bool data; /* fetch: bytes or an error came back: wake the other owners */
} sub;

/* A partitioned API: how its requests split by owner and its answers merge.
 * Adding one to the hand-over is one entry in partitioned_apis (below) and
 * its request body in sub's union. */
typedef struct partitioned_api {
    int api;
    /* The request's partitions: how many, and the i-th (its topic, number). */
    size_t (*n_parts)(const Runnel__RequestHeader *h);
    void *(*part_at)(const Runnel__RequestHeader *h, size_t i, const char **topic,
                     int32_t *partition);
    /* s->hdr (a shallow copy of h) gets a body holding only s->parts. */
    void (*narrow)(sub *s, const Runnel__RequestHeader *h);
    /* Entry k of an owner's answer r, or NULL when r is of another API or short. */
    void *(*answer_at)(const Runnel__ResponseHeader *r, uint32_t k);
    /* Every owner answered: one answer for the parent, in its partition order
     * (merge_entries for an answer that is one entry a partition and no more). */
    void (*merge)(fan *f, Runnel__ResponseHeader **resp);
    /* merge_entries: the answer's entry for the parent's partition i that no
     * owner gave, entry_size bytes at entry, filled with error err. */
    size_t entry_size;
    void (*missing)(void *entry, const Runnel__RequestHeader *h, size_t i, uint32_t err);
    /* merge_entries: send the parent the n entries (or, acks=0, nothing). */
    void (*respond)(fan *f, void **entries, size_t n);
    bool split_always; /* never forwarded whole (a Produce's subs carry its batches) */
    bool batches;      /* each partition's batch is carved from the payload for its sub */
    bool wake_on_data; /* a long poll: the first owner with data wakes the others */
} partitioned_api;

struct fan {
    rn_request *parent;
    const partitioned_api *pa; /* split: the parent's API; NULL when whole */
    rn_reactor *home;
    bool whole, woken;
    bool done; /* home only: the parent was answered (complete) */
    unsigned n_subs, pending;
    int refs;
    uint32_t *where_sub, *where_pos; /* split: parent partition i → sub, position */
    sub subs[];
};

static void fan_unref(fan *f)
{
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (unsigned i = 0; i < f->n_subs; i++) {
        sub *s = &f->subs[i];
        free(s->parts);
        free(s->batches);
        free(s->packed);
        if (s->slices) {
            for (unsigned k = 0; k < s->n_slices; k++)
                rn_slice_release(&s->slices[k]);
            free(s->slices);
        }
    }
    free(f->where_sub);
    free(f->where_pos);
    free(f);
}

/* ---- On the owner ------------------------------------------------------------------------ */

static void back_run(rn_msg *m);

/* The owner's handler answered: pack it and send it home. */
static void sub_sink(void *arg, rn_request *req, Runnel__ResponseHeader *hdr, rn_slice *slices,
                     unsigned n_slices)
{
    sub *s = arg;
    (void)req;
    s->packed_len = protobuf_c_message_get_packed_size(&hdr->base);
    s->packed = malloc(s->packed_len ? s->packed_len : 1);
    s->slices = n_slices ? malloc(n_slices * sizeof(*slices)) : NULL;
    if (!s->packed || (n_slices && !s->slices)) {
        free(s->packed);
        free(s->slices);
        s->packed = NULL;
        s->slices = NULL;
        for (unsigned i = 0; i < n_slices; i++)
            rn_slice_release(&slices[i]);
    } else {
        protobuf_c_message_pack(&hdr->base, s->packed);
        if (n_slices)
            memcpy(s->slices, slices, n_slices * sizeof(*slices));
        s->n_slices = n_slices;
    }
    s->data = n_slices > 0 || hdr->error_code != 0;
    if (hdr->body_case == RUNNEL__RESPONSE_HEADER__BODY_FETCH && hdr->fetch)
        for (size_t i = 0; i < hdr->fetch->n_partitions; i++)
            s->data = s->data || hdr->fetch->partitions[i]->error_code != 0;
    s->req = NULL; /* rn_request_respond frees it after this returns */
    if (s->f->home == rn_self)
        back_run(&s->back);
    else
        rn_reactor_post(s->f->home, &s->back, back_run);
}

static void go_run(rn_msg *m)
{
    sub *s = RN_CONTAINER_OF(m, sub, go);
    rn_reactor *r = m->to ? m->to : s->to;
    rn_request *q = s->req;
    rn_conn *c = r->fwd;
    q->conn = c;
    c->refs++;
    q->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = q;
    c->reqs = q;
    c->n_reqs++;
    rn_dispatch(q);
}

static void wake_run(rn_msg *m)
{
    sub *s = RN_CONTAINER_OF(m, sub, wake);
    if (s->req && s->req->api == RUNNEL__API__FETCH && s->req->state)
        rn_fetch_answer_now(s->req->state);
    fan_unref(s->f);
}

/* ---- At home ------------------------------------------------------------------------------- */

static Runnel__ResponseHeader *unpack(sub *s)
{
    if (!s->packed)
        return NULL;
    return runnel__response_header__unpack(NULL, s->packed_len, s->packed);
}

/* Error code for a partition whose owner's answer is missing or an error. */
static uint32_t part_error(const Runnel__ResponseHeader *r)
{
    if (r && r->error_code)
        return r->error_code;
    return RN_E_UNKNOWN;
}

/* The owner's answer for the parent's partition i: its entry in the sub's
 * response, or NULL when that response is missing, of another API or short
 * (the merge then answers the partition with an error). */
static void *owner_part(const fan *f, Runnel__ResponseHeader **resp, size_t i)
{
    const Runnel__ResponseHeader *r = resp[f->where_sub[i]];
    return r ? f->pa->answer_at(r, f->where_pos[i]) : NULL;
}

/* ---- The partitioned APIs ------------------------------------------------------------------ */

/* The accessors every partitioned API needs are the same code over its own
 * protobuf names: field is the request and response body's field (produce),
 * Part the request's partition type (ProducePartition), BODY the response's
 * body case (PRODUCE). */
#define PARTITIONED_ACCESSORS(field, Part, BODY)                                                   \
    static size_t field##_n_parts(const Runnel__RequestHeader *h)                                  \
    {                                                                                              \
        return h->field ? h->field->n_partitions : 0;                                              \
    }                                                                                              \
    static void *field##_part_at(const Runnel__RequestHeader *h, size_t i, const char **topic,     \
                                 int32_t *partition)                                               \
    {                                                                                              \
        *topic = h->field->partitions[i]->topic;                                                   \
        *partition = h->field->partitions[i]->partition;                                           \
        return h->field->partitions[i];                                                            \
    }                                                                                              \
    static void field##_narrow(sub *s, const Runnel__RequestHeader *h)                             \
    {                                                                                              \
        s->body.field = *h->field;                                                                 \
        s->body.field.partitions = (Runnel__##Part **)s->parts;                                    \
        s->body.field.n_partitions = s->n_parts;                                                   \
        s->hdr.field = &s->body.field;                                                             \
    }                                                                                              \
    static void *field##_answer_at(const Runnel__ResponseHeader *r, uint32_t k)                    \
    {                                                                                              \
        return r->body_case == RUNNEL__RESPONSE_HEADER__BODY_##BODY && r->field &&                 \
                       k < r->field->n_partitions                                                  \
                   ? r->field->partitions[k]                                                       \
                   : NULL;                                                                         \
    }

PARTITIONED_ACCESSORS(produce, ProducePartition, PRODUCE)
PARTITIONED_ACCESSORS(fetch, FetchPartition, FETCH)
PARTITIONED_ACCESSORS(list_offsets, ListOffsetsPartition, LIST_OFFSETS)
PARTITIONED_ACCESSORS(offsets_for_leader_epoch, OffsetsForLeaderEpochPartition,
                      OFFSETS_FOR_LEADER_EPOCH)

/* A Produce sub always answers: acks=0 gets no answer from a handler, and
 * home must hear from every owner. */
static void produce_narrow_acked(sub *s, const Runnel__RequestHeader *h)
{
    produce_narrow(s, h);
    if (s->body.produce.acks == 0)
        s->body.produce.acks = 1;
}

static void produce_missing(void *entry, const Runnel__RequestHeader *h, size_t i, uint32_t err)
{
    Runnel__ProducePartitionResponse *e = entry;
    runnel__produce_partition_response__init(e);
    e->topic = h->produce->partitions[i]->topic;
    e->partition = h->produce->partitions[i]->partition;
    e->error_code = err;
    e->base_offset = e->log_append_time = e->log_start_offset = -1;
}

static void produce_respond(fan *f, void **entries, size_t n)
{
    rn_request *parent = f->parent;
    if (parent->fr.hdr->produce->acks == 0) {
        rn_metrics_observe(&f->home->metrics, parent->api, 0, rn_now_ns() - parent->start_ns);
        rn_request_free(parent);
        return;
    }
    Runnel__ProduceResponse body = RUNNEL__PRODUCE_RESPONSE__INIT;
    body.n_partitions = n;
    body.partitions = (Runnel__ProducePartitionResponse **)entries;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_PRODUCE;
    h.produce = &body;
    rn_request_respond(parent, &h, NULL, 0);
}

static void list_offsets_missing(void *entry, const Runnel__RequestHeader *h, size_t i,
                                 uint32_t err)
{
    Runnel__ListOffsetsPartitionResponse *e = entry;
    runnel__list_offsets_partition_response__init(e);
    e->topic = h->list_offsets->partitions[i]->topic;
    e->partition = h->list_offsets->partitions[i]->partition;
    e->error_code = err;
    e->offset = e->timestamp = -1;
    e->leader_epoch = -1;
}

static void list_offsets_respond(fan *f, void **entries, size_t n)
{
    Runnel__ListOffsetsResponse body = RUNNEL__LIST_OFFSETS_RESPONSE__INIT;
    body.n_partitions = n;
    body.partitions = (Runnel__ListOffsetsPartitionResponse **)entries;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &body;
    rn_request_respond(f->parent, &h, NULL, 0);
}

static void fetch_missing(void *entry, const Runnel__RequestHeader *h, size_t i, uint32_t err)
{
    Runnel__FetchPartitionResponse *e = entry;
    runnel__fetch_partition_response__init(e);
    e->topic = h->fetch->partitions[i]->topic;
    e->partition = h->fetch->partitions[i]->partition;
    e->error_code = err;
    e->high_watermark = e->log_start_offset = e->log_end_offset = -1;
}

/* The merge of an answer that is one entry a partition and nothing more
 * (Produce, ListOffsets): each partition's entry from its owner's answer,
 * or where that lacks it pa->missing's error entry, then pa->respond. The
 * entries go as void * (protobuf-c reads its repeated messages through
 * generic pointers itself; sub.parts does the same for requests). */
static void merge_entries(fan *f, Runnel__ResponseHeader **resp)
{
    rn_request *parent = f->parent;
    const partitioned_api *pa = f->pa;
    size_t n = pa->n_parts(parent->fr.hdr);
    void **ptrs = calloc(n, sizeof(*ptrs));
    char *fb = calloc(n, pa->entry_size);
    if (!ptrs || !fb) {
        free(ptrs);
        free(fb);
        rn_request_fail(parent, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((ptrs[i] = owner_part(f, resp, i)))
            continue;
        ptrs[i] = fb + i * pa->entry_size;
        pa->missing(ptrs[i], parent->fr.hdr, i, part_error(resp[f->where_sub[i]]));
    }
    pa->respond(f, ptrs, n);
    free(ptrs);
    free(fb);
}

/* A sub's fetch answer lines up with its slices: one slice per partition
 * with bytes, of exactly that length (api/fetch.c reads one slice per
 * partition). Anything else is refused rather than sent garbled. */
static bool fetch_lines_up(const Runnel__ResponseHeader *r, const sub *s)
{
    if (!r || r->body_case != RUNNEL__RESPONSE_HEADER__BODY_FETCH || !r->fetch)
        return false;
    unsigned k = 0;
    for (size_t i = 0; i < r->fetch->n_partitions; i++) {
        uint32_t len = r->fetch->partitions[i]->bytes_len;
        if (!len)
            continue;
        if (k >= s->n_slices || s->slices[k].len != len)
            return false;
        k++;
    }
    return k == s->n_slices;
}

/* How much of a slice of whole batches fits a fetch's max_bytes, as
 * api/fetch.c would have read it: nothing once `total` reached max, else at
 * least one batch, then more while they fit. */
static size_t fit_batches(const uint8_t *data, size_t len, size_t total, size_t max)
{
    if (total >= max)
        return 0;
    size_t off = 0;
    while (len - off >= 12) {
        size_t blen = 12 + (size_t)rn_get_be32(data + off + 8);
        if (blen > len - off || (off > 0 && blen > max - total - off))
            break;
        off += blen;
        if (off >= max - total)
            break;
    }
    return off;
}

static void merge_fetch(fan *f, Runnel__ResponseHeader **resp)
{
    rn_request *parent = f->parent;
    Runnel__FetchRequest *fr = parent->fr.hdr->fetch;
    size_t n = fr->n_partitions;
    Runnel__FetchPartitionResponse **ptrs = calloc(n, sizeof(*ptrs));
    Runnel__FetchPartitionResponse *fb = calloc(n, sizeof(*fb));
    rn_slice *slices = calloc(n, sizeof(*slices));
    if (!ptrs || !fb || !slices) {
        free(ptrs);
        free(fb);
        free(slices);
        rn_request_fail(parent, -ENOMEM, "out of memory");
        return;
    }
    bool *ok = calloc(f->n_subs, sizeof(*ok));
    for (unsigned i = 0; ok && i < f->n_subs; i++)
        ok[i] = fetch_lines_up(resp[i], &f->subs[i]);
    /* Which slice holds each partition's bytes, found before any length is
     * trimmed: a sub's slices follow its partitions with bytes, in order. */
    rn_slice **src = calloc(n, sizeof(*src));
    if (!src) {
        free(ok);
        free(ptrs);
        free(fb);
        free(slices);
        rn_request_fail(parent, -ENOMEM, "out of memory");
        return;
    }
    for (unsigned si = 0; ok && si < f->n_subs; si++) {
        if (!ok[si])
            continue;
        unsigned idx = 0;
        for (size_t i = 0; i < n; i++) {
            if (f->where_sub[i] != si)
                continue;
            if (resp[si]->fetch->partitions[f->where_pos[i]]->bytes_len)
                src[i] = &f->subs[si].slices[idx++];
        }
    }
    /* Each owner read up to the whole max_bytes; the merged answer keeps
     * what a single reader would have, in the request's partition order
     * (what is left out is simply fetched again from the same offset). */
    size_t max = fr->max_bytes ? fr->max_bytes : (50u << 20), total = 0;
    unsigned n_slices = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned si = f->where_sub[i];
        Runnel__ResponseHeader *r = resp[si];
        Runnel__FetchPartitionResponse *pr = ok && ok[si] ? owner_part(f, resp, i) : NULL;
        if (pr) {
            ptrs[i] = pr;
            if (src[i]) {
                rn_slice sl = *src[i];
                *src[i] = (rn_slice){0}; /* moved: fan_unref skips it */
                size_t keep = fit_batches(sl.data, sl.len, total, max);
                if (keep == 0) {
                    rn_slice_release(&sl);
                } else {
                    sl.len = keep;
                    slices[n_slices++] = sl;
                }
                total += keep;
                pr->bytes_len = (uint32_t)keep;
            }
            continue;
        }
        fetch_missing(&fb[i], parent->fr.hdr, i, part_error(r));
        ptrs[i] = &fb[i];
    }
    Runnel__FetchResponse body = RUNNEL__FETCH_RESPONSE__INIT;
    body.n_partitions = n;
    body.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_FETCH;
    h.fetch = &body;
    rn_request_respond(parent, &h, slices, n_slices);
    free(src);
    free(ok);
    free(ptrs);
    free(fb);
    free(slices);
}

static void merge_offsets_for_leader_epoch(fan *f, Runnel__ResponseHeader **resp)
{
    rn_request *parent = f->parent;
    Runnel__OffsetsForLeaderEpochRequest *er = parent->fr.hdr->offsets_for_leader_epoch;
    size_t n = er->n_partitions;
    Runnel__OffsetsForLeaderEpochPartitionResponse **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    Runnel__OffsetsForLeaderEpochPartitionResponse *fb = calloc(n ? n : 1, sizeof(*fb));
    if (!ptrs || !fb) {
        free(ptrs);
        free(fb);
        rn_request_fail(parent, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((ptrs[i] = owner_part(f, resp, i)))
            continue;
        runnel__offsets_for_leader_epoch_partition_response__init(&fb[i]);
        fb[i].topic = er->partitions[i]->topic;
        fb[i].partition = er->partitions[i]->partition;
        fb[i].error_code = part_error(resp[f->where_sub[i]]);
        fb[i].leader_epoch = -1;
        fb[i].end_offset = -1;
        ptrs[i] = &fb[i];
    }
    Runnel__OffsetsForLeaderEpochResponse body = RUNNEL__OFFSETS_FOR_LEADER_EPOCH_RESPONSE__INIT;
    body.n_partitions = n;
    body.partitions = ptrs;
    Runnel__ResponseHeader h = RUNNEL__RESPONSE_HEADER__INIT;
    h.body_case = RUNNEL__RESPONSE_HEADER__BODY_OFFSETS_FOR_LEADER_EPOCH;
    h.offsets_for_leader_epoch = &body;
    rn_request_respond(parent, &h, NULL, 0);
    free(ptrs);
    free(fb);
}

/* Every owner has answered: one response for the parent. */
static void complete(fan *f)
{
    rn_request *parent = f->parent;
    parent->fan = NULL;
    f->done = true;
    Runnel__ResponseHeader *stack[8], **resp = stack;
    if (f->n_subs > 8)
        resp = calloc(f->n_subs, sizeof(*resp));
    if (!resp) {
        rn_request_fail(parent, -ENOMEM, "out of memory");
        fan_unref(f);
        return;
    }
    for (unsigned i = 0; i < f->n_subs; i++)
        resp[i] = unpack(&f->subs[i]);
    if (f->whole) {
        sub *s = &f->subs[0];
        if (!resp[0]) {
            rn_request_fail(parent, -ENOMEM, "out of memory handing the request over");
        } else {
            rn_request_respond(parent, resp[0], s->slices, s->n_slices);
            free(s->slices); /* the references went with the answer */
            s->slices = NULL;
            s->n_slices = 0;
        }
    } else {
        f->pa->merge(f, resp);
    }
    for (unsigned i = 0; i < f->n_subs; i++)
        if (resp[i])
            runnel__response_header__free_unpacked(resp[i], NULL);
    if (resp != stack)
        free(resp);
    fan_unref(f);
}

static void fan_done_one(fan *f)
{
    if (--f->pending == 0)
        complete(f);
}

/* A split fetch has enough: every sub still parked answers now. The caller
 * holds a `pending` guard (a local sub may answer re-entrantly). */
static void wake_subs(fan *f)
{
    f->woken = true;
    for (unsigned i = 0; i < f->n_subs; i++) {
        sub *t = &f->subs[i];
        if (t->back_done)
            continue;
        if (t->to == f->home) {
            if (t->req && t->req->state)
                rn_fetch_answer_now(t->req->state);
        } else {
            __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
            rn_reactor_post(t->to, &t->wake, wake_run);
        }
    }
}

static void back_run(rn_msg *m)
{
    sub *s = RN_CONTAINER_OF(m, sub, back);
    fan *f = s->f;
    s->back_done = true;
    f->pending++; /* waking below may answer subs re-entrantly */
    if (!f->whole && s->data && !f->woken && f->pa->wake_on_data)
        wake_subs(f);
    fan_done_one(f); /* s */
    fan_done_one(f); /* the guard */
}

/* At home: a sub parked with some bytes. Wake every sub when the parked ones
 * together have min_bytes. */
static void prog_run(rn_msg *m)
{
    sub *s = RN_CONTAINER_OF(m, sub, prog);
    fan *f = s->f;
    /* An exchange, not a store: it reads the owner's exchange, so the
     * `ready` it wrote before is visible below. */
    (void)__atomic_exchange_n(&s->prog_inflight, false, __ATOMIC_ACQ_REL);
    if (!f->done && !f->woken) {
        size_t sum = 0;
        for (unsigned i = 0; i < f->n_subs; i++)
            if (!f->subs[i].back_done)
                sum += __atomic_load_n(&f->subs[i].ready, __ATOMIC_RELAXED);
        if (sum >= f->parent->fr.hdr->fetch->min_bytes) {
            f->pending++;
            wake_subs(f);
            fan_done_one(f);
        }
    }
    fan_unref(f);
}

void rn_shard_fetch_parked(rn_request *req, size_t ready)
{
    if (!req->sub || req->sink != sub_sink || ready == 0)
        return;
    sub *s = req->sink_arg;
    fan *f = s->f;
    if (f->whole)
        return; /* one owner has every partition: its own min_bytes check holds */
    __atomic_store_n(&s->ready, ready, __ATOMIC_RELAXED);
    if (__atomic_exchange_n(&s->prog_inflight, true, __ATOMIC_ACQ_REL))
        return; /* one is on its way and will read the latest `ready` */
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    if (f->home == rn_self)
        prog_run(&s->prog);
    else
        rn_reactor_post(f->home, &s->prog, prog_run);
}

/* ---- The table ------------------------------------------------------------------------------ */

static const partitioned_api partitioned_apis[] = {
    {.api = RUNNEL__API__PRODUCE,
     .n_parts = produce_n_parts,
     .part_at = produce_part_at,
     .narrow = produce_narrow_acked,
     .answer_at = produce_answer_at,
     .merge = merge_entries,
     .entry_size = sizeof(Runnel__ProducePartitionResponse),
     .missing = produce_missing,
     .respond = produce_respond,
     .split_always = true,
     .batches = true},
    {.api = RUNNEL__API__FETCH,
     .n_parts = fetch_n_parts,
     .part_at = fetch_part_at,
     .narrow = fetch_narrow,
     .answer_at = fetch_answer_at,
     .merge = merge_fetch,
     .wake_on_data = true},
    {.api = RUNNEL__API__LIST_OFFSETS,
     .n_parts = list_offsets_n_parts,
     .part_at = list_offsets_part_at,
     .narrow = list_offsets_narrow,
     .answer_at = list_offsets_answer_at,
     .merge = merge_entries,
     .entry_size = sizeof(Runnel__ListOffsetsPartitionResponse),
     .missing = list_offsets_missing,
     .respond = list_offsets_respond},
    {.api = RUNNEL__API__OFFSETS_FOR_LEADER_EPOCH,
     .n_parts = offsets_for_leader_epoch_n_parts,
     .part_at = offsets_for_leader_epoch_part_at,
     .narrow = offsets_for_leader_epoch_narrow,
     .answer_at = offsets_for_leader_epoch_answer_at,
     .merge = merge_offsets_for_leader_epoch},
};

/* The entry of a partitioned API, or NULL (the API runs on reactor 0). */
static const partitioned_api *partitioned_api_of(int api)
{
    for (size_t i = 0; i < sizeof(partitioned_apis) / sizeof(partitioned_apis[0]); i++)
        if (partitioned_apis[i].api == api)
            return &partitioned_apis[i];
    return NULL;
}

/* ---- Hand-over ----------------------------------------------------------------------------- */

static rn_request *sub_request(fan *f, sub *s)
{
    rn_request *p = f->parent;
    rn_request *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->sink = sub_sink;
    q->sink_arg = s;
    q->api = p->api;
    q->correlation_id = p->correlation_id;
    q->start_ns = p->start_ns;
    q->rbuf = -1;
    q->sub = true;
    q->peer = rn_request_peer(p); /* the parent keeps its connection until we are back */
    q->batches = s->batches;
    q->fr.api = p->fr.api;
    q->fr.api_version = p->fr.api_version;
    q->fr.correlation_id = p->fr.correlation_id;
    q->fr.have_correlation_id = p->fr.have_correlation_id;
    if (f->whole) {
        q->fr.hdr = p->fr.hdr;
        q->fr.payload = p->fr.payload;
        q->fr.payload_len = p->fr.payload_len;
    } else {
        q->fr.hdr = &s->hdr;
    }
    return q;
}

/* Start every sub: remote ones by message, the home one (if any) last and
 * directly, with a guard so nothing completes before all are out. */
static void launch(fan *f)
{
    f->pending = f->n_subs + 1;
    sub *local = NULL;
    for (unsigned i = 0; i < f->n_subs; i++) {
        sub *s = &f->subs[i];
        if (s->to == f->home)
            local = s;
        else
            rn_reactor_post(s->to, &s->go, go_run);
    }
    if (local) {
        local->go.to = f->home;
        go_run(&local->go);
    }
    fan_done_one(f);
}

static fan *fan_new(rn_request *req, unsigned n_subs)
{
    fan *f = calloc(1, sizeof(*f) + n_subs * sizeof(sub));
    if (!f)
        return NULL;
    f->parent = req;
    f->home = req->conn->r;
    f->n_subs = n_subs;
    f->refs = 1;
    for (unsigned i = 0; i < n_subs; i++)
        f->subs[i].f = f;
    return f;
}

static bool forward_whole(rn_request *req, rn_reactor *to)
{
    fan *f = fan_new(req, 1);
    if (!f)
        goto oom;
    f->whole = true;
    sub *s = &f->subs[0];
    s->to = to;
    s->req = sub_request(f, s);
    if (!s->req) {
        fan_unref(f);
        goto oom;
    }
    req->fan = f;
    launch(f);
    return true;
oom:
    rn_request_fail(req, -ENOMEM, "out of memory");
    return true;
}

static bool split(rn_request *req, const partitioned_api *pa, const unsigned *owner, size_t n)
{
    rn_broker *b = req->conn->r->b;
    /* One sub per distinct owner, in order of first appearance. */
    int sub_of[64];
    unsigned n_subs = 0;
    for (unsigned r = 0; r < b->n_reactors && r < 64; r++)
        sub_of[r] = -1;
    for (size_t i = 0; i < n; i++)
        if (sub_of[owner[i]] < 0)
            sub_of[owner[i]] = (int)n_subs++;
    fan *f = fan_new(req, n_subs);
    if (!f)
        goto oom;
    f->pa = pa;
    f->where_sub = calloc(n, sizeof(*f->where_sub));
    f->where_pos = calloc(n, sizeof(*f->where_pos));
    if (!f->where_sub || !f->where_pos)
        goto oom_fan;
    for (size_t i = 0; i < n; i++) {
        sub *s = &f->subs[sub_of[owner[i]]];
        s->to = &b->reactors[owner[i]];
        f->where_sub[i] = (uint32_t)sub_of[owner[i]];
        f->where_pos[i] = (uint32_t)s->n_parts++;
    }
    Runnel__RequestHeader *h = req->fr.hdr;
    for (unsigned i = 0; i < n_subs; i++) {
        sub *s = &f->subs[i];
        s->parts = calloc(s->n_parts, sizeof(*s->parts));
        if (!s->parts)
            goto oom_fan;
        if (pa->batches) {
            s->batches = calloc(s->n_parts, sizeof(*s->batches));
            if (!s->batches)
                goto oom_fan;
        }
        s->hdr = *h;
        pa->narrow(s, h);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        sub *s = &f->subs[f->where_sub[i]];
        const char *topic;
        int32_t partition;
        s->parts[f->where_pos[i]] = pa->part_at(h, i, &topic, &partition);
        if (pa->batches) {
            /* frame.c checked that the batch lengths add up to the payload. */
            s->batches[f->where_pos[i]] = (uint8_t *)req->fr.payload + off;
            off += h->produce->partitions[i]->batch_len;
        }
    }
    for (unsigned i = 0; i < n_subs; i++) {
        sub *s = &f->subs[i];
        s->req = sub_request(f, s);
        if (!s->req) {
            for (unsigned k = 0; k < i; k++)
                free(f->subs[k].req);
            goto oom_fan;
        }
    }
    req->fan = f;
    launch(f);
    return true;

oom_fan:
    fan_unref(f);
oom:
    rn_request_fail(req, -ENOMEM, "out of memory");
    return true;
}

bool rn_shard_route(rn_request *req)
{
    rn_reactor *self = req->conn->r;
    rn_broker *b = self->b;
    if (b->n_reactors <= 1 || req->sub || !req->fr.hdr)
        return false;
    if (req->api == RUNNEL__API__API_VERSIONS)
        return false;
    const partitioned_api *pa = partitioned_api_of(req->api);
    if (!pa)
        return self->index == 0 ? false : forward_whole(req, &b->reactors[0]);
    Runnel__RequestHeader *h = req->fr.hdr;
    size_t n = pa->n_parts(h);
    if (n == 0)
        return false;
    unsigned stack[64], *owner = n <= 64 ? stack : malloc(n * sizeof(*owner));
    if (!owner) {
        rn_request_fail(req, -ENOMEM, "out of memory");
        return true;
    }
    bool same = true;
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t partition;
        pa->part_at(h, i, &topic, &partition);
        owner[i] = rn_partition_owner(b, topic, partition);
        same = same && owner[i] == owner[0];
    }
    bool handed;
    if (same && owner[0] == self->index)
        handed = false;
    else if (same && !pa->split_always)
        handed = forward_whole(req, &b->reactors[owner[0]]);
    else
        handed = split(req, pa, owner, n);
    if (owner != stack)
        free(owner);
    return handed;
}
