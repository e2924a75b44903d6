/*
 * consumer_int.h — what the files of rn_consumer share: the consumer's state
 * and the internal calls between its parts. Not installed; not for tools.
 *
 *   consumer.c  the public API: partitions assigned by hand, seeks, the poll
 *               loop, close; errors reported by the next poll.
 *   fetcher.c   Fetch requests (long poll, prefetch) and their answers, kept as
 *               chunks of whole batches; offsets resolved by name (ListOffsets).
 *   decode.c    the chunks' memory and their decoding into rn_message arrays.
 *   group.c     consumer group membership (protocol/group_member.h does the
 *               GroupHeartbeat rules), commits, starting positions.
 *
 * The invariants below are numbered so the files can name them.
 *
 * Invariants:
 *  1. Messages returned by a poll point into chunks and decompression buffers
 *     that are freed only at the start of the next poll (or close): consumed
 *     or dropped buffers go to to_free, never straight to free().
 *  2. A partition is in at most one Fetch at a time (fetching). An answer is
 *     applied only if the partition's generation (bumped by every seek) and
 *     fetch_pos are still those the request was built from.
 *  3. position only moves forward by records returned or batches skipped,
 *     or by a seek.
 *  4. OFFSET_OUT_OF_RANGE stops a partition assigned by hand (no automatic
 *     reset: that is the application's choice) and poll says so with the
 *     valid range, once; a seek starts it again. A partition the group gave
 *     applies auto.offset.reset instead, as Kafka's consumer does.
 *  5. A partition taken away (revoked, lost, unsubscribed) leaves parts at
 *     once but is freed only when no message of the last poll and no Fetch
 *     in flight can point at it (the dead list, emptied by the next poll).
 *  6. A poll returns at most max.poll.records messages; a batch cut short
 *     stays at its partition's head with its iterator (cpart.it), and the
 *     next poll goes on from it: a batch is verified and walked once, not
 *     once per poll (a 256 KiB batch of 100-byte records is ~2400 records,
 *     five polls at the default 500). Anything that moves the head or the
 *     position ends the iterator; then the batch is decoded again from its
 *     start, skipping what lies below position.
 */
#ifndef RN_CONSUMER_INT_H
#define RN_CONSUMER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "clients/internal.h"
#include "protocol/batch.h"
#include "protocol/group_member.h"

/* A Fetch answer's frame, taken from the decoder: the chunks cut from it
 * share it; the last one released frees it. */
typedef struct fblob {
    uint8_t *mem;
    size_t refs;
    rn_consumer *c;
    rn__conn *conn; /* mem is conn's big-frame buffer (cap bytes): handed back to it */
    size_t cap;
} fblob;

typedef struct chunk {
    uint8_t *data; /* into blob->mem, or an allocation of its own when blob is NULL */
    size_t len, off;
    size_t cap; /* size of data's allocation when it is its own */
    fblob *blob;
    struct chunk *next;
} chunk;

typedef struct cpart {
    char *topic;
    int32_t partition;
    int64_t position, fetch_pos;
    int64_t hw, log_start, leo;
    chunk *head, *tail;
    size_t buffered; /* bytes of the chunks not decoded yet: the sum of len - off */
    bool fetching;
    bool stopped; /* OFFSET_OUT_OF_RANGE or a fatal error: until seek */
    bool corrupt; /* a chunk holds bytes that are not a batch: decode reports it */
    uint32_t gen;
    int64_t retry_at;
    /* Groups: where a partition the coordinator gave starts (START_*); 0 once
     * its position is known. Not fetched before. */
    int start;
    int64_t committed; /* the group's offset as this consumer last committed or read it; -1 */
    /* The head batch when a poll stopped inside it (max.poll.records): its
     * iterator, past the records returned, so the next poll goes on from
     * there instead of verifying and walking the batch again from its start
     * (invariant 6). Good while it_gen and it_pos are the partition's gen and
     * position; retire_head ends it. it.owned (a zstd batch's records, which
     * messages point into) is held here until the batch is used up. */
    bool it_live;
    rn_batch_iter it;
    uint32_t it_gen;
    int64_t it_pos;
    bool dead; /* removed from parts, waiting on the dead list (invariant 5) */
    struct cpart *dead_next;
} cpart;

enum { START_KNOWN = 0, START_COMMITTED = 1, START_RESET = 2 };

/* Membership of group.id (rn_consumer_subscribe): the rules are the state
 * machine's; the consumer adds commits and the application's callback. */
typedef struct cgroup {
    rn_member m;
    bool commit_inflight; /* an auto-commit is on its way */
    int64_t commit_next;
    rn_rebalance_cb cb;
    void *cb_arg;
} cgroup;

struct rn_consumer {
    rn__client cl;
    cpart **parts;
    size_t n_parts;
    size_t rr; /* first partition the next decode looks at: fairness */
    rn_message *msgs;
    size_t n_msgs, cap_msgs;
    void **to_free; /* headers arrays and zstd buffers of the last poll */
    size_t n_free, cap_free;
    /* Iterators holding a zstd buffer (saved in a cpart, or the one decode_batch
     * is running): to_free keeps a slot for each, so ending one never needs
     * memory (n_free + n_it_owned <= cap_free). */
    size_t n_it_owned;
    chunk *retired; /* consumed or dropped chunks of the last poll */
    /* Allocations of freed chunks, kept for the next copies (largest first). */
    uint8_t *spare[4];
    size_t spare_cap[4];
    size_t n_spare;
    int pending_err;
    char pending_msg[512];
    int64_t fail_since; /* first transport failure of the current streak, 0 none */
    bool need_md;
    int64_t md_retry_at;
    cpart *dead;  /* removed partitions (invariant 5) */
    bool closing; /* rn_consumer_close has begun: connections are going away */
    cgroup grp;
    const char **asg_topics; /* rn_consumer_assignment's arrays */
    int32_t *asg_parts;
    size_t asg_cap;
};

static inline int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ---- consumer.c ---- */

/* Note an error for the next poll to return (the first one wins). */
__attribute__((format(printf, 3, 4))) void rn__consumer_set_pending(rn_consumer *c, int err,
                                                                    const char *fmt, ...);
/* A transport failure: retried quietly until it has lasted socket.timeout.ms. */
void rn__consumer_transport_failed(rn_consumer *c, int err, const char *msg);
/* The assigned partition (topic, partition), or NULL. Borrowed. */
cpart *rn__consumer_find_part(rn_consumer *c, const char *topic, int32_t partition);
/* Add (topic, partition) to parts, position unknown. NULL: out of memory. */
cpart *rn__consumer_new_part(rn_consumer *c, const char *topic, int32_t partition);
/* Free a partition nothing points into any more (invariant 5). */
void rn__consumer_free_part(rn_consumer *c, cpart *p);

/* ---- decode.c ---- */

void rn__consumer_blob_release(fblob *b);
void rn__consumer_chunk_free(chunk *ch);
/* A buffer of at least len bytes (*cap: its size): a spare one or a new one. */
uint8_t *rn__consumer_chunk_alloc(rn_consumer *c, size_t len, size_t *cap);
/* Free what the last poll's messages pointed into (invariant 1). */
void rn__consumer_release_previous(rn_consumer *c);
/* Drop a partition's buffered chunks (they live until the next poll). */
void rn__consumer_drop_buffered(rn_consumer *c, cpart *p);
/* Fill c->msgs from the buffers, up to max.poll.records: the count, or an error. */
int rn__consumer_decode(rn_consumer *c);

/* ---- fetcher.c ---- */

/* Send one Fetch per leader for every partition that wants more data. */
void rn__consumer_pump(rn_consumer *c);
/* When the consumer has something to do next absent any I/O (INT64_MAX: nothing). */
int64_t rn__consumer_next_timer(const rn_consumer *c);
/* Move p to offset: buffers dropped, answers in flight ignored (invariant 2). */
void rn__consumer_set_position(rn_consumer *c, cpart *p, int64_t offset);
/* Resolve ts[i] (RN_OFFSET_EARLIEST, RN_OFFSET_LATEST or a time) of parts[i]
 * with ListOffsets and move the partitions there. Errors in c->cl.errmsg. */
int rn__consumer_resolve(rn_consumer *c, cpart **parts, int64_t *ts, size_t n);

/* ---- group.c ---- */

/* Set up the (unsubscribed) membership from the configuration. */
void rn__consumer_group_init(rn_consumer *c);
/* Whether the consumer follows a group (rn_consumer_subscribe). */
bool rn__consumer_subscribed(const rn_consumer *c);

/* The group's share of a poll, before fetching: membership, reconciling,
 * starts, auto-commit, and the next heartbeat when it is due. */
void rn__consumer_group_pump(rn_consumer *c);
/* Fold the group's next deadline (after now) into *t. */
void rn__consumer_group_timer(const rn_consumer *c, int64_t now, int64_t *t);
/* End the membership: revoke all (callback, final commit), leave, forget. */
int rn__consumer_group_leave(rn_consumer *c);

#endif
