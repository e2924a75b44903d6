/*
 * producer_int.h — what the files of rn_producer share: the producer's state
 * (partitions, batches, reports) and the calls between its parts. Not
 * installed; not for tools.
 *
 *   producer.c       the public API, open batches, the pump that sends them,
 *                    answers and retries, reports (invariants 1 to 7 in its
 *                    top comment).
 *   producer_idem.c  idempotence: the producer id and epoch, the sequences
 *                    stamped into batches, batches in doubt, the new id after
 *                    a gap (invariants 5 to 7).
 */
#ifndef RN_PRODUCER_INT_H
#define RN_PRODUCER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clients/internal.h"
#include "protocol/batch.h"

typedef struct ppart ppart;
typedef struct ptopic ptopic;

typedef struct pbatch {
    ppart *pp;
    uint8_t *buf;   /* recycled into pp's builder when the batch ends */
    size_t buf_cap; /* buf's capacity (rn_batch_builder_finish_reusable) */
    size_t len;
    int32_t n;
    void **opaques;
    uint64_t seq;
    size_t mem;       /* its records' share of queued_bytes (invariant 4) */
    int64_t deadline; /* delivery.timeout.ms after its first record was queued */
    int64_t retry_at;
    int64_t attempts;
    int last_err;
    bool stamped;          /* producer id and sequence written (invariant 5) */
    bool sent;             /* handed to a connection under its stamp */
    bool doubt;            /* an attempt ended without a verdict: it may be in the log */
    uint32_t idem_gen;     /* p->idem_gen when stamped */
    int32_t base_sequence; /* the sequence stamped */
    struct pbatch *next;
    struct pbatch *fnext; /* the next of its partition's batches in flight */
} pbatch;

struct ppart {
    ptopic *t;
    int32_t partition;
    rn_batch_builder *b; /* the open batch */
    size_t open_bytes;   /* its records' share of queued_bytes (invariant 4) */
    void **opaques;
    int32_t n_open;
    size_t cap_open;
    int64_t open_first;
    size_t last_n;           /* records in the last batch finished */
    pbatch *q_head, *q_tail; /* finished, not in flight, in seq order */
    int n_inflight;
    pbatch *flight; /* its batches in flight (fnext), in the order sent */
    bool retrying;
    int64_t storage_since; /* first STORAGE_ERROR of a run of them, 0: none */
    uint64_t next_seq;
    int32_t next_sequence; /* idempotence: the next batch's base_sequence */
};

struct ptopic {
    char *name;
    int32_t n_parts;
    ppart **parts; /* created on first use */
    /* The metadata's partition count, as of metadata generation md_gen (the
     * cache entry cannot change without a new generation). */
    int32_t md_parts;
    uint64_t md_gen;
    int32_t sticky;
    uint32_t rr;
    /* The largest batch, and so record, the topic takes: message.max.bytes
     * when set, else the topic's max.message.bytes from the metadata. */
    size_t max_batch;
};

/* The outcome of a batch's records (or of an open batch's, when it could not
 * be built or the producer closed): one entry per batch, not per record, so
 * a 100-byte record does not pay for writing and reading back a report of
 * its own. */
typedef struct preport {
    int err;
    ppart *pp;
    int64_t base_offset; /* record i got base_offset + i; -1: unknown */
    int32_t n;
    void **opaques; /* owned: n of them, freed once delivered */
    size_t mem;     /* the records' share of queued_bytes (invariant 4) */
} preport;

/* Idempotence: OFF, or NEED an id → WAIT for InitProducer → READY. */
enum idem_state { IDEM_OFF, IDEM_NEED, IDEM_WAIT, IDEM_READY };

struct rn_producer {
    rn__client cl;
    rn_delivery_cb cb;
    void *cb_arg;
    rn_batch_builder_opts bopts;
    ptopic **topics;
    size_t n_topics;
    ptopic *last; /* the topic of the last send, checked first */
    preport *reports;
    size_t n_reports, cap_reports;
    size_t n_slots; /* report entries owed: open and finished batches, undelivered reports */
    size_t outstanding;
    size_t queued_bytes; /* invariant 4 */
    bool flushing, closing, in_callbacks;
    bool need_md;
    int64_t md_retry_at;
    enum idem_state idem;
    int64_t pid;
    int16_t epoch;
    int64_t idem_retry_at;
    uint32_t idem_gen; /* bumped by rn__producer_idem_reset: batches stamped before are stale */
    bool idem_bump;    /* a sent batch failed for good: a new id once none is in doubt */
    uint64_t rng;
    uint64_t n_requests, n_batches;
};

/* Every partition p keeps state for, topic by topic: with part_iter it = {0},
 * `for (ppart *pp; (pp = rn__producer_next_part(p, &it));)`, it.t the partition's topic.
 * Topics and partitions added meanwhile are visited too. */
typedef struct part_iter {
    size_t ti;
    int32_t pi;
    ptopic *t;
} part_iter;

/* ---- producer.c ------------------------------------------------------------------------ */

/* The next partition of p after it, or NULL when all were visited. */
ppart *rn__producer_next_part(const rn_producer *p, part_iter *it);

/* ---- producer_idem.c (invariants 5 to 7) ----------------------------------------------- */

/* Write the producer id, epoch and the partition's next sequence into b's
 * header and recompute the CRC, which covers them. Once per batch, before
 * its first send. */
void rn__producer_stamp(rn_producer *p, pbatch *b);

/* Whether a sent batch waiting in pp's queue is in doubt (it may be in the
 * log already): such a partition goes on under the old id. */
bool rn__producer_queued_in_doubt(const ppart *pp);

/* Take the new producer id rn__producer_idem_reset asked for, if no batch is
 * in doubt any more: unsent batches then get sequences from 0 under it. */
void rn__producer_idem_bump_maybe(rn_producer *p);

/* A stamped batch failed for good: ask for a new producer id (taken once no
 * batch is in doubt). No-op with idempotence off or while closing. */
void rn__producer_idem_reset(rn_producer *p);

/* A sent batch b failed for good with err: move its partition's sequences
 * back to b's when the leader did not append it and nothing is in doubt,
 * else rn__producer_idem_reset. */
void rn__producer_idem_gap(rn_producer *p, pbatch *b, int err);

/* Whether err is an answer by which the leader refused a batch before
 * appending it (an attempt that ends with one leaves no doubt). */
bool rn__producer_refused_before_append(int err);

/* Ask any broker for a producer id (InitProducer); p->idem goes to
 * IDEM_WAIT, or stays IDEM_NEED to retry after retry.backoff.ms. The answer
 * is handled inside rn__client_poll. */
void rn__producer_init_producer(rn_producer *p, int64_t now);

#endif
