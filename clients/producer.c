/*
 * producer.c — rn_producer: batching, partitioning, pipelined Produce, retries.
 *
 * Life of a record:
 *
 *   rn_producer_send ──▶ OPEN batch of its partition (rn_batch_builder: the
 *        │               record is encoded at once, every byte copied)
 *        │  batch.size reached, linger.ms passed, or flush
 *        ▼
 *   QUEUED (a finished Kafka v2 batch, zstd when asked) ──pump: leader known,
 *        ▲                                                 connection under
 *        │ retriable error, backoff                        max.in.flight
 *        │                                                      ▼
 *        └───────────────────────────────────────────── IN FLIGHT (one Produce
 *                                                        per leader, one batch
 *   REPORTED ◀── answer: ok (offset = base_offset + i) │ per partition in it)
 *             ◀── fatal error, retries or delivery.timeout.ms exhausted
 *
 * Reports are queued and delivered by rn_producer_poll / flush / close on the
 * caller's thread, never inside rn_producer_send (which may itself poll while
 * it waits for a topic's first metadata).
 *
 * Invariants:
 *  1. A record is reported exactly once, and reported successful only when
 *     the broker acknowledged its batch (acks=0: when its bytes were written,
 *     with offset -1, as Kafka does).
 *  2. Per partition, batches carry increasing sequence numbers (seq) and the
 *     queue is kept in seq order, failed batches going back to their place.
 *     While a partition retries (retrying), at most one of its batches is in
 *     flight, so a retry cannot overtake or be overtaken (Kafka's behaviour
 *     with max.in.flight 1). Batches of one partition otherwise pipeline on
 *     one connection, which the broker appends in order (docs/protocol.md §4).
 *  3. A batch is retried only for retriable errors (rn__retriable), at most
 *     `retries` times, never past delivery.timeout.ms after its first record
 *     was queued; errors that say the metadata is stale refresh it.
 *     STORAGE_ERROR (a full or failing disk) is retried only for a few
 *     backoffs after the partition's first one, so the caller hears the
 *     cause at once; an OUT_OF_ORDER_SEQUENCE behind an earlier batch that
 *     failed and waits for its retry is retried, as Kafka's producer does.
 *  4. outstanding counts records sent and not yet reported to the callback,
 *     queued_bytes their sizes (each record's upper bound `est`, summed per
 *     open batch in open_bytes, per batch in mem, per report in mem): send
 *     refuses with -ENOBUFS past queue.buffering.max.messages records or
 *     buffer.memory bytes, and the bytes come back when the report runs.
 *     Reports are queued one per batch (its records' opaques and first
 *     offset), and the reports array always has room for one per batch open,
 *     queued or in flight (n_slots, reserved by the send that opens a batch),
 *     so an answer never needs memory to be reported.
 *
 *  5. Idempotence (enable.idempotence with acks=all and max.in.flight <= 5,
 *     as Kafka's clients require: the leader keeps a producer's last 5
 *     batches per partition): before its first batch the producer asks any
 *     broker for a producer id (InitProducer). Each batch gets the id, epoch
 *     and its partition's next sequence stamped into its header (CRC
 *     recomputed) before it is first sent, never again once sent, so a retry
 *     carries the same sequence and the leader answers a retry of a batch it
 *     already has with the first offset instead of storing it twice.
 *  6. A batch in flight, or one an attempt of which ended without a verdict
 *     (lost connection, timeout; not an answer by which the leader refused
 *     it, rn__producer_refused_before_append), is in doubt (any_in_doubt):
 *     its bytes may be in the log though the answer was lost. It is retried
 *     under its id and sequence, in sequence order (a retrying partition has
 *     one batch in flight, the oldest), until the leader acknowledges it
 *     (maybe as a duplicate) or it fails for good (delivery.timeout.ms,
 *     retries, a fatal error) and is reported as failed. An
 *     OUT_OF_ORDER_SEQUENCE does not end it while it is in doubt or while an
 *     older batch of its partition is unresolved.
 *  7. A stamped batch that fails for good leaves a gap in its partition's
 *     sequences: the producer then needs a new id, sequences from 0
 *     (rn__producer_idem_reset). It takes it only once no batch is in doubt
 *     (Kafka's epoch bump after its unresolved sequences are resolved, KIP-360):
 *     until then batches not in doubt wait (or, refused with
 *     OUT_OF_ORDER_SEQUENCE, go back to wait), and those in doubt go on under
 *     the old id. Exception: the leader said it did not append the batch
 *     (STORAGE_ERROR), no attempt of it was in doubt and nothing else of its
 *     partition is: the partition's sequences go back to the failed batch's,
 *     for queued batches sent and refused too (rn__producer_idem_gap). A
 *     broker without InitProducer (UNKNOWN_API) turns idempotence off and the
 *     producer goes on without it.
 *
 * Idempotence (invariants 5 to 7: the producer id, the sequences, the batches
 * in doubt) is in producer_idem.c; the state the two files share is in
 * producer_int.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/internal.h"
#include "clients/producer_int.h"
#include "clients/testing.h"

/* STORAGE_ERROR is retried for this many retry.backoff.ms after the first of
 * a partition's run of them (batch_failed). */
#define STORAGE_RETRY_BACKOFFS 3
/* The most requests in flight per connection idempotence works with: the
 * leader keeps each producer's last 5 batches per partition
 * (RN_PRODUCER_BATCHES), so a retry is always among them. */
#define RN__IDEM_MAX_IN_FLIGHT 5
#include "protocol/batch.h"

/* A broker that does not say its topics' limit has the 1 MiB default. */
#define DEFAULT_MAX_BATCH ((size_t)1 << 20)

/* One Produce request in flight. */
typedef struct preq {
    struct rn_producer *p;
    size_t n;
    pbatch *batches[];
} preq;

/* ---- Small helpers ---------------------------------------------------------------- */

static uint32_t rnd(rn_producer *p)
{
    uint64_t x = p->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->rng = x;
    return (uint32_t)(x >> 16);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Queue the report of n records; takes ownership of opaques. */
static void report(rn_producer *p, int err, ppart *pp, int64_t base_offset, int32_t n,
                   void **opaques, size_t mem)
{
    /* Room is reserved by rn_producer_send when the batch opens (invariant 4). */
    preport *r = &p->reports[p->n_reports++];
    r->err = err;
    r->pp = pp;
    r->base_offset = base_offset;
    r->n = n;
    r->opaques = opaques;
    r->mem = mem;
}

/* Report b's records and free it. */
static void end_batch(rn_producer *p, pbatch *b, int err, int64_t base_offset)
{
    report(p, err, b->pp, base_offset, b->n, b->opaques, b->mem);
    /* The partition's next batch is built in this buffer: no allocation per
     * batch once the pipeline is full. */
    rn_batch_builder_recycle(b->pp->b, b->buf, b->buf_cap);
    free(b);
}

static void fail_batch(rn_producer *p, pbatch *b, int err)
{
    end_batch(p, b, err, -1);
}

/* Report the records of pp's open batch (which could not be finished). */
static void fail_open(rn_producer *p, ppart *pp, int err)
{
    report(p, err, pp, -1, pp->n_open, pp->opaques, pp->open_bytes);
    pp->open_bytes = 0;
    pp->opaques = NULL;
    pp->cap_open = 0;
    pp->n_open = 0;
}

/* Put b back into its partition's queue at its seq position (invariant 2). */
static void requeue(ppart *pp, pbatch *b)
{
    pbatch **pos = &pp->q_head, *prev = NULL;
    while (*pos && (*pos)->seq < b->seq) {
        prev = *pos;
        pos = &(*pos)->next;
    }
    b->next = *pos;
    *pos = b;
    if (!b->next)
        pp->q_tail = b;
    (void)prev;
}

/* b's answer came: it is no longer in flight. */
static void landed(ppart *pp, pbatch *b)
{
    pp->n_inflight--;
    for (pbatch **q = &pp->flight; *q; q = &(*q)->fnext)
        if (*q == b) {
            *q = b->fnext;
            break;
        }
    b->fnext = NULL;
}

/* Whether a batch of pp older than b is still unresolved: waiting for its
 * retry, or in flight (answers to two requests may come in either order:
 * the leader answers a refused batch at once, an appended one once it is
 * written). */
static bool older_unresolved(const ppart *pp, const pbatch *b)
{
    if (pp->q_head && pp->q_head->seq < b->seq)
        return true;
    for (const pbatch *f = pp->flight; f; f = f->fnext)
        if (f->seq < b->seq)
            return true;
    return false;
}

static void pick_sticky(rn_producer *p, ptopic *t)
{
    if (t->n_parts <= 1) {
        t->sticky = 0;
        return;
    }
    int32_t s = (int32_t)(rnd(p) % (uint32_t)t->n_parts);
    if (s == t->sticky)
        s = (s + 1) % t->n_parts;
    t->sticky = s;
}

ppart *rn__producer_next_part(const rn_producer *p, part_iter *it)
{
    for (; it->ti < p->n_topics; it->ti++, it->pi = 0) {
        it->t = p->topics[it->ti];
        while (it->pi < it->t->n_parts) {
            ppart *pp = it->t->parts[it->pi++];
            if (pp)
                return pp;
        }
    }
    return NULL;
}

/* ---- Open batches --------------------------------------------------------------------- */

/* Finish pp's open batch and queue it. */
static void close_open(rn_producer *p, ppart *pp)
{
    if (pp->n_open == 0)
        return;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    pbatch *b = calloc(1, sizeof(*b));
    int rc = b ? rn_batch_builder_finish_reusable(pp->b, &buf, &len, &cap) : -ENOMEM;
    if (rc < 0) {
        rn__fail(&p->cl, rc, "%s-%d: cannot build a batch: %s", pp->t->name, pp->partition,
                 rn_strerror(rc));
        rn_batch_builder_reset(pp->b);
        fail_open(p, pp, rc);
        free(b);
        return;
    }
    b->pp = pp;
    b->buf = buf;
    b->buf_cap = cap;
    b->len = len;
    b->n = pp->n_open;
    b->mem = pp->open_bytes;
    pp->open_bytes = 0;
    b->opaques = pp->opaques;
    b->seq = pp->next_seq++;
    pp->last_n = (size_t)pp->n_open;
    b->deadline = pp->open_first + p->cl.conf->delivery_timeout_ms;
    pp->opaques = NULL;
    pp->cap_open = 0;
    pp->n_open = 0;
    if (pp->q_tail)
        pp->q_tail->next = b;
    else
        pp->q_head = b;
    pp->q_tail = b;
    /* Kafka's sticky partitioner: keyless records move on once a batch is done. */
    if (pp->t->sticky == pp->partition)
        pick_sticky(p, pp->t);
}

static ptopic *topic_get(rn_producer *p, const char *name)
{
    for (size_t i = 0; i < p->n_topics; i++)
        if (strcmp(p->topics[i]->name, name) == 0)
            return p->topics[i];
    ptopic **v = realloc(p->topics, (p->n_topics + 1) * sizeof(*v));
    if (!v)
        return NULL;
    p->topics = v;
    ptopic *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    t->sticky = -1;
    p->topics[p->n_topics++] = t;
    return t;
}

static int topic_resize(ptopic *t, int32_t n)
{
    if (n <= t->n_parts)
        return 0;
    ppart **v = realloc(t->parts, (size_t)n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (int32_t i = t->n_parts; i < n; i++)
        v[i] = NULL;
    t->parts = v;
    t->n_parts = n;
    return 0;
}

/* Look topic up in the metadata (waiting for it when unknown) and in the
 * producer's topics (adding it), refresh its partition count, and make it
 * p->last. Errors as rn__md_wait_topic, -RN_E_UNKNOWN_TOPIC, -ENOMEM. */
static int topic_lookup(rn_producer *p, const char *topic, ptopic **out)
{
    rn__client *cl = &p->cl;
    rn__md_topic *mt = rn__md_find(cl, topic);
    if (!mt || mt->err || mt->n_parts <= 0) {
        int rc = rn__md_wait_topic(cl, topic, cl->conf->socket_timeout_ms, &mt);
        if (rc < 0)
            return rc;
        if (mt->n_parts <= 0)
            return rn__fail(cl, -RN_E_UNKNOWN_TOPIC, "topic %s has no partitions", topic);
    }
    ptopic *t = topic_get(p, topic);
    if (!t || topic_resize(t, mt->n_parts) < 0)
        return rn__fail(cl, -ENOMEM, "out of memory");
    t->md_parts = mt->n_parts;
    t->md_gen = cl->md.generation;
    t->max_batch = cl->conf->message_max_bytes ? (size_t)cl->conf->message_max_bytes
                   : mt->max_message_bytes     ? (size_t)mt->max_message_bytes
                                               : DEFAULT_MAX_BATCH;
    p->last = t;
    *out = t;
    return 0;
}

static ppart *part_get(rn_producer *p, ptopic *t, int32_t partition)
{
    if (t->parts[partition])
        return t->parts[partition];
    ppart *pp = calloc(1, sizeof(*pp));
    if (!pp)
        return NULL;
    if (rn_batch_builder_new(&pp->b, &p->bopts) < 0) {
        free(pp);
        return NULL;
    }
    pp->t = t;
    pp->partition = partition;
    t->parts[partition] = pp;
    return pp;
}

/* ---- Answers -------------------------------------------------------------------------- */

static void batch_done(rn_producer *p, pbatch *b, int64_t base_offset)
{
    ppart *pp = b->pp;
    landed(pp, b);
    pp->storage_since = 0;
    /* Leave retry mode once nothing older than this batch waits. */
    if (!pp->q_head || pp->q_head->seq > b->seq)
        pp->retrying = false;
    end_batch(p, b, 0, base_offset >= 0 ? base_offset : -1);
}

static void batch_failed(rn_producer *p, pbatch *b, int err, const char *msg)
{
    ppart *pp = b->pp;
    const rn_conf *conf = p->cl.conf;
    int64_t now = rn__now_ms();
    landed(pp, b);
    b->attempts++;
    b->last_err = err;
    if (rn__needs_metadata(err))
        p->need_md = true;
    bool retry = rn__retriable(err);
    if (err == -RN_E_STORAGE_ERROR) {
        /* The leader's disk is full or failing. Retention may free space
         * within moments, so retry briefly; but not for delivery.timeout.ms:
         * the caller hears the cause at once, not two minutes later. The
         * window is per partition, so a queue of batches behind a full disk
         * fails in round trips, not in windows. */
        if (!pp->storage_since)
            pp->storage_since = now;
        retry = now - pp->storage_since < STORAGE_RETRY_BACKOFFS * conf->retry_backoff_ms;
    }
    if (err == -RN_E_OUT_OF_ORDER_SEQUENCE && b->stamped && older_unresolved(pp, b)) {
        /* Behind an earlier batch of its partition that failed and waits for
         * its retry, or whose (error) answer is still on its way: the leader
         * never appended that one and forgot its sequence, so this one is
         * ahead until the retry fills the gap. Kafka's producer retries it
         * too. */
        retry = true;
    } else if (err == -RN_E_OUT_OF_ORDER_SEQUENCE && b->stamped && b->idem_gen == p->idem_gen &&
               p->idem_bump && !b->doubt) {
        /* Behind a gap a batch that failed for good left (rn__producer_idem_reset): the
         * leader refused it, so it is in no log; it waits for the new
         * producer id and is stamped again under it (Kafka's producer
         * retries every OUT_OF_ORDER_SEQUENCE and bumps its epoch). */
        retry = true;
    } else if (err == -RN_E_OUT_OF_ORDER_SEQUENCE && b->doubt) {
        /* In doubt (an earlier attempt's answer was lost): the gap is
         * before it, left by a batch that failed for good or one of an
         * older connection the leader has not read yet. It is retried
         * under its id and sequence until the leader places it or its
         * delivery.timeout.ms ends it; never sent under a new id. */
        retry = true;
    }
    if (b->sent && !rn__producer_refused_before_append(err))
        b->doubt = true;
    if (!p->closing && retry && b->attempts <= conf->retries &&
        now + conf->retry_backoff_ms < b->deadline) {
        b->retry_at = now + conf->retry_backoff_ms;
        pp->retrying = true;
        requeue(pp, b);
        return;
    }
    rn__fail(&p->cl, err, "delivery to %s-%d failed after %lld attempt%s: %s", pp->t->name,
             pp->partition, (long long)b->attempts, b->attempts == 1 ? "" : "s", msg);
    rn__producer_idem_gap(p, b, err);
    fail_batch(p, b, err);
}

static void produce_cb(void *arg, rn__conn *c, int err, rn_frame_response *resp)
{
    preq *rq = arg;
    rn_producer *p = rq->p;
    if (err == 0 && !resp) {
        /* acks=0: written to the socket is all we will ever know. */
        for (size_t i = 0; i < rq->n; i++)
            batch_done(p, rq->batches[i], -1);
    } else if (err) {
        for (size_t i = 0; i < rq->n; i++)
            batch_failed(p, rq->batches[i], err, rn__conn_errmsg(c));
    } else if (resp->hdr->error_code) {
        int e = -(int)resp->hdr->error_code;
        char msg[300];
        snprintf(msg, sizeof(msg), "%s%s%s", rn_strerror(e),
                 resp->hdr->error_message && *resp->hdr->error_message ? ": " : "",
                 resp->hdr->error_message ? resp->hdr->error_message : "");
        for (size_t i = 0; i < rq->n; i++)
            batch_failed(p, rq->batches[i], e, msg);
    } else {
        Runnel__ProduceResponse *pr = resp->hdr->produce;
        for (size_t i = 0; i < rq->n; i++) {
            pbatch *b = rq->batches[i];
            const char *topic = b->pp->t->name;
            int32_t part = b->pp->partition;
            Runnel__ProducePartitionResponse *r = NULL;
            /* Answers come in request order; search only if the broker reordered. */
            if (i < pr->n_partitions && pr->partitions[i]->partition == part &&
                strcmp(pr->partitions[i]->topic, topic) == 0)
                r = pr->partitions[i];
            for (size_t k = 0; !r && k < pr->n_partitions; k++)
                if (pr->partitions[k]->partition == part &&
                    strcmp(pr->partitions[k]->topic, topic) == 0)
                    r = pr->partitions[k];
            if (!r) {
                batch_failed(p, b, -RN_E_INVALID_REQUEST,
                             "the broker's answer omits the partition");
            } else if (r->error_code) {
                int e = -(int)r->error_code;
                char msg[300];
                snprintf(msg, sizeof(msg), "%s%s%s", rn_strerror(e),
                         r->error_message && *r->error_message ? ": " : "",
                         r->error_message ? r->error_message : "");
                batch_failed(p, b, e, msg);
            } else {
                batch_done(p, b, r->base_offset);
            }
        }
    }
    free(rq);
}

/* ---- Sending -------------------------------------------------------------------------- */

typedef struct draft {
    rn__conn *c;
    size_t n, cap;
    pbatch **b;
} draft;

static int send_draft(rn_producer *p, draft *d)
{
    const rn_conf *conf = p->cl.conf;
    size_t n = d->n;
    preq *rq = malloc(sizeof(*rq) + n * sizeof(pbatch *));
    Runnel__ProducePartition *pps = calloc(n, sizeof(*pps));
    Runnel__ProducePartition **ppp = calloc(n, sizeof(*ppp));
    struct iovec *iov = calloc(n, sizeof(*iov));
    int rc = -ENOMEM;
    if (!rq || !pps || !ppp || !iov)
        goto out;
    for (size_t i = 0; i < n; i++) {
        pbatch *b = d->b[i];
        runnel__produce_partition__init(&pps[i]);
        pps[i].topic = b->pp->t->name;
        pps[i].partition = b->pp->partition;
        pps[i].batch_len = (uint32_t)b->len;
        ppp[i] = &pps[i];
        iov[i].iov_base = b->buf;
        iov[i].iov_len = b->len;
        rq->batches[i] = b;
    }
    rq->p = p;
    rq->n = n;
    Runnel__ProduceRequest req = RUNNEL__PRODUCE_REQUEST__INIT;
    req.acks = conf->acks;
    req.timeout_ms = (uint32_t)conf->socket_timeout_ms;
    req.n_partitions = n;
    req.partitions = ppp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
    h.produce = &req;
    rc = rn__conn_sendv(d->c, &h, iov, (int)n, RUNNEL__API__PRODUCE, conf->socket_timeout_ms,
                        conf->acks == 0, produce_cb, rq);
    if (rc == 0) {
        rq = NULL; /* the callback frees it */
        for (size_t i = 0; i < n; i++) {
            ppart *pp = d->b[i]->pp;
            pp->q_head = d->b[i]->next; /* it was the head */
            if (!pp->q_head)
                pp->q_tail = NULL;
            d->b[i]->next = NULL;
            d->b[i]->sent = d->b[i]->stamped;
            pbatch **q = &pp->flight;
            while (*q)
                q = &(*q)->fnext;
            *q = d->b[i];
            pp->n_inflight++;
        }
        p->n_requests++;
        p->n_batches += n;
    }
out:
    free(rq);
    free(pps);
    free(ppp);
    free(iov);
    return rc;
}

/* Put the head batches of sendable partitions into one Produce per leader.
 * Returns how many requests went out. */
static int send_round(rn_producer *p, int64_t now)
{
    const rn_conf *conf = p->cl.conf;
    draft *drafts = NULL;
    size_t n_drafts = 0;
    int sent = 0;
    if (p->idem == IDEM_NEED || p->idem == IDEM_WAIT)
        return 0; /* every batch needs the producer id first */
    for (size_t ti = 0; ti < p->n_topics; ti++) {
        ptopic *t = p->topics[ti];
        for (int32_t pi = 0; pi < t->n_parts; pi++) {
            ppart *pp = t->parts[pi];
            if (!pp || !pp->q_head || pp->q_head->retry_at > now)
                continue;
            if (pp->retrying && pp->n_inflight > 0)
                continue;
            if (p->idem_bump && p->idem != IDEM_OFF && !rn__producer_queued_in_doubt(pp))
                continue; /* waits for the new producer id (rn__producer_idem_reset) */
            rn__conn *c;
            if (rn__md_leader(&p->cl, t->name, pp->partition, &c) < 0) {
                p->need_md = true;
                continue;
            }
            draft *d = NULL;
            for (size_t k = 0; k < n_drafts; k++)
                if (drafts[k].c == c)
                    d = &drafts[k];
            if (!d) {
                if (rn__conn_inflight(c) >= (size_t)conf->max_in_flight)
                    continue;
                draft *v = realloc(drafts, (n_drafts + 1) * sizeof(*v));
                if (!v)
                    continue;
                drafts = v;
                d = &drafts[n_drafts++];
                memset(d, 0, sizeof(*d));
                d->c = c;
            }
            if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 8;
                pbatch **v = realloc(d->b, cap * sizeof(*v));
                if (!v)
                    continue;
                d->b = v;
                d->cap = cap;
            }
            if (p->idem == IDEM_READY && !pp->q_head->stamped)
                rn__producer_stamp(p, pp->q_head);
            d->b[d->n++] = pp->q_head;
        }
    }
    for (size_t k = 0; k < n_drafts; k++) {
        if (drafts[k].n && send_draft(p, &drafts[k]) == 0)
            sent++;
        free(drafts[k].b);
    }
    free(drafts);
    return sent;
}

/* Close lingering batches, expire old ones, send what can go. */
static void pump(rn_producer *p)
{
    const rn_conf *conf = p->cl.conf;
    int64_t now = rn__now_ms();
    part_iter it = {0};
    for (ppart *pp; (pp = rn__producer_next_part(p, &it));) {
        if (pp->n_open && (p->flushing || p->closing || now - pp->open_first >= conf->linger_ms))
            close_open(p, pp);
        /* Expire waiting batches (in flight ones end by their request's timeout). */
        while (pp->q_head && now >= pp->q_head->deadline) {
            pbatch *b = pp->q_head;
            pp->q_head = b->next;
            if (!pp->q_head)
                pp->q_tail = NULL;
            rn__fail(&p->cl, -RN_E_TIMEOUT,
                     "delivery to %s-%d timed out after %d ms (delivery.timeout.ms)%s%s",
                     it.t->name, pp->partition, conf->delivery_timeout_ms,
                     b->last_err ? ", last error: " : "",
                     b->last_err ? rn_errname(b->last_err) : "");
            if (b->stamped && b->idem_gen == p->idem_gen)
                rn__producer_idem_reset(p);
            fail_batch(p, b, -RN_E_TIMEOUT);
        }
    }
    rn__producer_idem_bump_maybe(p);
    if (p->idem == IDEM_NEED && now >= p->idem_retry_at) {
        bool queued = false;
        it = (part_iter){0};
        for (ppart *pp; !queued && (pp = rn__producer_next_part(p, &it));)
            queued = pp->q_head || pp->n_open;
        if (queued)
            rn__producer_init_producer(p, now);
    }
    /* Each round puts at most one batch per partition in a request; go on while
     * connections take more (bounded by max.in.flight). */
    for (int round = 0; round <= conf->max_in_flight; round++)
        if (send_round(p, now) == 0)
            break;
    if (p->need_md && now >= p->md_retry_at) {
        p->need_md = false;
        p->md_retry_at = now + conf->retry_backoff_ms;
        rn__md_refresh(&p->cl);
    }
}

/* When pump has something to do next, absent any I/O. A batch ready now but
 * not sent waits for I/O (a free in-flight slot, metadata, a producer id), so
 * only future times count: a past one would make poll spin. */
static int64_t next_timer(rn_producer *p)
{
    const rn_conf *conf = p->cl.conf;
    int64_t now = rn__now_ms();
    int64_t t = INT64_MAX;
    part_iter it = {0};
    for (ppart *pp; (pp = rn__producer_next_part(p, &it));) {
        if (pp->n_open)
            t = min64(t, p->flushing ? 0 : pp->open_first + conf->linger_ms);
        if (pp->q_head) {
            t = min64(t, pp->q_head->deadline);
            if (!(pp->retrying && pp->n_inflight > 0) && pp->q_head->retry_at > now)
                t = min64(t, pp->q_head->retry_at);
        }
    }
    if (p->need_md)
        t = min64(t, p->md_retry_at);
    if (p->idem == IDEM_NEED && p->idem_retry_at > now)
        t = min64(t, p->idem_retry_at);
    return t;
}

static int run_reports(rn_producer *p)
{
    if (p->in_callbacks)
        return 0;
    p->in_callbacks = true;
    size_t n = 0;
    /* By index: a callback may send, which may grow (move) the array. */
    for (size_t i = 0; i < p->n_reports; i++) {
        preport r = p->reports[i];
        const char *topic = r.pp->t->name;
        int32_t part = r.pp->partition;
        for (int32_t k = 0; k < r.n; k++) {
            p->outstanding--;
            if (p->cb)
                p->cb(p->cb_arg, r.err, topic, part, r.base_offset >= 0 ? r.base_offset + k : -1,
                      r.opaques[k]);
        }
        free(r.opaques);
        p->queued_bytes -= r.mem;
        p->n_slots--;
        n += (size_t)r.n;
    }
    p->n_reports = 0;
    p->in_callbacks = false;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* ---- Public API ------------------------------------------------------------------------- */

int rn_producer_new(rn_producer **out, const rn_conf *conf, rn_delivery_cb cb, void *cb_arg)
{
    *out = NULL;
    /* Kafka's clients refuse enable.idempotence=true with acks other than
     * all, or with more than 5 requests in flight (the leader remembers a
     * producer's last 5 batches per partition: a retry older than that would
     * be refused, or without acks=all lost with the leader); left at its
     * default, idempotence is simply off then. */
    if (conf->idempotence_set && conf->idempotence &&
        (conf->acks != -1 || conf->max_in_flight > RN__IDEM_MAX_IN_FLIGHT))
        return -RN_E_INVALID_CONFIG;
    rn_producer *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    int rc = rn__client_init(&p->cl, conf);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->cb = cb;
    p->cb_arg = cb_arg;
    p->bopts.codec = conf->codec;
    p->bopts.zstd_level = conf->codec == RN_BATCH_CODEC_ZSTD ? conf->compression_level : 0;
    p->bopts.producer_id = -1;
    p->bopts.producer_epoch = -1;
    p->bopts.base_sequence = -1;
    /* Batches are built without producer fields; rn__producer_stamp() fills them at first send. */
    p->idem = conf->idempotence && conf->acks == -1 && conf->max_in_flight <= RN__IDEM_MAX_IN_FLIGHT
                  ? IDEM_NEED
                  : IDEM_OFF;
    p->rng = (uint64_t)rn__wall_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    if (!p->rng)
        p->rng = 1;
    /* Check the batch options once, so a bad level fails here and not per record. */
    rn_batch_builder *b;
    rc = rn_batch_builder_new(&b, &p->bopts);
    if (rc < 0) {
        rn__client_fini(&p->cl);
        free(p);
        return rc == -ENOMEM ? rc : -RN_E_INVALID_CONFIG;
    }
    rn_batch_builder_free(b);
    *out = p;
    return 0;
}

const char *rn_producer_errmsg(const rn_producer *p)
{
    return p->cl.errmsg;
}

size_t rn_producer_outstanding(const rn_producer *p)
{
    return p->outstanding;
}

int rn_producer_send(rn_producer *p, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t value_len, const rn_header *headers,
                     size_t n_headers, int64_t timestamp, void *opaque)
{
    rn__client *cl = &p->cl;
    const rn_conf *conf = cl->conf;
    if (!topic || !*topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "send: no topic");
    if (p->closing)
        return rn__fail(cl, -RN_E_CLOSED, "send: the producer is closing");
    if (p->outstanding >= (size_t)conf->queue_max_messages)
        return rn__fail(cl, -ENOBUFS,
                        "send: %zu records queued (queue.buffering.max.messages): poll to deliver "
                        "some first",
                        p->outstanding);
    /* Upper bound of the record's encoded size: varint fields take at most 5 bytes. */
    size_t est = (key ? key_len : 0) + (value ? value_len : 0) + 32;
    for (size_t i = 0; i < n_headers; i++)
        est += headers[i].name_len + (headers[i].value ? headers[i].value_len : 0) + 10;
    if (key_len > INT32_MAX || value_len > INT32_MAX)
        return rn__fail(cl, -RN_E_MESSAGE_TOO_LARGE,
                        "send: a record of about %zu bytes is over the 2 GiB a batch can hold",
                        est);
    if (est > (uint64_t)conf->buffer_memory)
        return rn__fail(cl, -RN_E_MESSAGE_TOO_LARGE,
                        "send: a record of about %zu bytes is over buffer.memory (%lld)", est,
                        (long long)conf->buffer_memory);
    if (p->queued_bytes + est > (uint64_t)conf->buffer_memory)
        return rn__fail(cl, -ENOBUFS,
                        "send: %zu bytes of records queued (buffer.memory %lld): poll to "
                        "deliver some first",
                        p->queued_bytes, (long long)conf->buffer_memory);
    /* The topic of the last send, while the metadata has not changed, needs
     * no lookup: one string compare instead of two searches. */
    ptopic *t = p->last;
    if (!t || t->md_gen != cl->md.generation || strcmp(t->name, topic) != 0) {
        int rc = topic_lookup(p, topic, &t);
        if (rc < 0)
            return rc;
    }
    if (est + RN_BATCH_HEADER_LEN > t->max_batch)
        return rn__fail(cl, -RN_E_MESSAGE_TOO_LARGE,
                        "send: a record of about %zu bytes does not fit in a batch of %s's "
                        "max.message.bytes (%zu)%s",
                        est, topic, t->max_batch,
                        conf->message_max_bytes ? " (message.max.bytes set on the client)" : "");
    int32_t n = t->md_parts;
    if (partition >= 0) {
        if (partition >= n)
            return rn__fail(cl, -RN_E_UNKNOWN_TOPIC, "topic %s has %d partitions, no partition %d",
                            topic, n, partition);
    } else if (key && conf->partitioner == RN__PARTITIONER_DEFAULT) {
        partition = rn_partition_for_key(key, key_len, n);
    } else if (conf->partitioner == RN__PARTITIONER_ROUNDROBIN) {
        partition = (int32_t)(t->rr++ % (uint32_t)n);
    } else {
        if (t->sticky < 0 || t->sticky >= n)
            pick_sticky(p, t);
        partition = t->sticky;
    }
    ppart *pp = part_get(p, t, partition);
    if (!pp)
        return rn__fail(cl, -ENOMEM, "out of memory");
    /* A batch closes at batch.size, or sooner when the topic takes less. */
    size_t batch_max =
        (size_t)conf->batch_size < t->max_batch ? (size_t)conf->batch_size : t->max_batch;
    if (pp->n_open && rn_batch_builder_size(pp->b) + est > batch_max)
        close_open(p, pp);
    /* Invariant 4: a record that opens a batch reserves the report entry of
     * every record the batch will hold. */
    if (pp->n_open == 0 && p->cap_reports < p->n_slots + 1) {
        size_t cap = p->cap_reports ? p->cap_reports * 2 : 64;
        preport *v = realloc(p->reports, cap * sizeof(*v));
        if (!v)
            return rn__fail(cl, -ENOMEM, "out of memory");
        p->reports = v;
        p->cap_reports = cap;
    }
    if ((size_t)pp->n_open == pp->cap_open) {
        /* Start where the last batch ended, so a batch needs one allocation. */
        size_t cap = pp->cap_open ? pp->cap_open * 2 : pp->last_n + pp->last_n / 8 + 64;
        void **v = realloc(pp->opaques, cap * sizeof(*v));
        if (!v)
            return rn__fail(cl, -ENOMEM, "out of memory");
        pp->opaques = v;
        pp->cap_open = cap;
    }
    rn_record_header stack_hdrs[8];
    rn_record_header *hdrs = n_headers <= 8 ? stack_hdrs : calloc(n_headers, sizeof(*hdrs));
    if (!hdrs)
        return rn__fail(cl, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n_headers; i++) {
        hdrs[i].name = (const uint8_t *)headers[i].name;
        hdrs[i].name_len = (int32_t)headers[i].name_len;
        hdrs[i].value = headers[i].value;
        hdrs[i].value_len = headers[i].value ? (int32_t)headers[i].value_len : -1;
    }
    int rc = rn_batch_builder_add(pp->b, timestamp ? timestamp : rn__wall_ms(), key, key_len, value,
                                  value_len, n_headers ? hdrs : NULL, n_headers);
    if (hdrs != stack_hdrs)
        free(hdrs);
    if (rc < 0)
        return rn__fail(cl, rc == -EINVAL ? -EINVAL : rc, "send to %s-%d: %s", topic, partition,
                        rn_strerror(rc));
    if (pp->n_open == 0) {
        pp->open_first = rn__now_ms();
        p->n_slots++;
    }
    pp->opaques[pp->n_open++] = opaque;
    p->outstanding++;
    pp->open_bytes += est;
    p->queued_bytes += est;
    if (rn_batch_builder_size(pp->b) >= batch_max)
        close_open(p, pp);
    return 0;
}

int rn_producer_poll(rn_producer *p, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : rn__now_ms() + timeout_ms;
    for (;;) {
        pump(p);
        int64_t now = rn__now_ms();
        int64_t wake = p->n_reports ? now : min64(deadline, next_timer(p));
        int64_t wait = wake <= now ? 0 : wake - now;
        if (wait > INT32_MAX)
            wait = INT32_MAX;
        int rc = rn__client_poll(&p->cl, (int)wait);
        if (rc < 0)
            return rn__fail(&p->cl, rc, "poll: %s", rn_strerror(rc));
        pump(p);
        if (p->n_reports || rn__now_ms() >= deadline)
            break;
    }
    return run_reports(p);
}

int rn_producer_flush(rn_producer *p, int timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = p->cl.conf->delivery_timeout_ms;
    int64_t deadline = rn__now_ms() + timeout_ms;
    bool was = p->flushing;
    p->flushing = true;
    while (p->outstanding > 0) {
        int64_t left = deadline - rn__now_ms();
        if (left <= 0)
            break;
        int rc = rn_producer_poll(p, left > INT32_MAX ? INT32_MAX : (int)left);
        if (rc < 0) {
            p->flushing = was;
            return rc;
        }
        if (p->in_callbacks && p->n_reports)
            break; /* flush from a delivery callback cannot deliver: do not spin */
    }
    p->flushing = was;
    if (p->outstanding > 0)
        return rn__fail(&p->cl, -RN_E_TIMEOUT, "flush: %zu records undelivered after %d ms",
                        p->outstanding, timeout_ms);
    return 0;
}

int rn_producer_close(rn_producer *p)
{
    if (!p)
        return 0;
    int rc = rn_producer_flush(p, -1);
    p->closing = true;
    /* Whatever is still here is reported as closed, in flight or not. */
    part_iter it = {0};
    for (ppart *pp; (pp = rn__producer_next_part(p, &it));) {
        if (pp->n_open)
            fail_open(p, pp, -RN_E_CLOSED);
        while (pp->q_head) {
            pbatch *b = pp->q_head;
            pp->q_head = b->next;
            fail_batch(p, b, -RN_E_CLOSED);
        }
    }
    rn__client_fini(&p->cl); /* fails the requests in flight: their batches report */
    p->in_callbacks = false;
    run_reports(p);
    for (size_t ti = 0; ti < p->n_topics; ti++) {
        ptopic *t = p->topics[ti];
        for (int32_t pi = 0; pi < t->n_parts; pi++) {
            ppart *pp = t->parts[pi];
            if (!pp)
                continue;
            rn_batch_builder_free(pp->b);
            free(pp->opaques);
            free(pp);
        }
        free(t->parts);
        free(t->name);
        free(t);
    }
    free(p->topics);
    free(p->reports);
    free(p);
    return rc;
}

/* ---- Test hooks (clients/testing.h) --------------------------------------------------------- */

uint64_t rn__producer_requests(const rn_producer *p)
{
    return p->n_requests;
}

uint64_t rn__producer_batches(const rn_producer *p)
{
    return p->n_batches;
}

int64_t rn__producer_id(const rn_producer *p)
{
    return p->idem == IDEM_READY ? p->pid : -1;
}
