/*
 * producer_state.h — idempotent producers: the last batches of each producer,
 * per partition (DESIGN §6).
 *
 * An idempotent producer stamps (producer_id, producer_epoch, base_sequence)
 * into every batch; sequences count records per partition from 0. The
 * partition leader remembers each producer's last RN_PRODUCER_BATCHES batches
 * so a retry of one of them is answered with the offset it got the first
 * time instead of being appended again, and a gap is refused.
 *
 * The state is rebuilt when a partition opens by walking the batch headers of
 * its last segments (rn_producer_state_rebuild), so it survives restarts for
 * every producer that wrote recently; a producer older than that is treated
 * as new (its next sequence is taken as it comes, as Kafka does once a
 * producer's state has expired).
 *
 * Owned by the partition's reactor; not thread-safe.
 */
#ifndef RN_BROKER_PRODUCER_STATE_H
#define RN_BROKER_PRODUCER_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/batch.h"
#include "storage/log.h"

#define RN_PRODUCER_BATCHES 5

typedef struct rn_producer_state rn_producer_state;

/* What to do with a batch. */
enum rn_producer_verdict {
    RN_PRODUCER_APPEND,    /* append it (and call rn_producer_state_appended/failed after) */
    RN_PRODUCER_DUPLICATE, /* a retry of a batch already appended: answer with *dup_offset */
};

/* A new, empty state. NULL on out of memory. */
rn_producer_state *rn_producer_state_new(void);
void rn_producer_state_free(rn_producer_state *ps);

/* Decide about batch h (its producer fields; h->base_offset is ignored).
 * Non-idempotent batches (producer_id -1) are always RN_PRODUCER_APPEND.
 * Returns a verdict, or: -RN_E_PRODUCER_FENCED (an older epoch),
 * -RN_E_OUT_OF_ORDER_SEQUENCE (a gap, or a sequence older than what is
 * remembered), -RN_E_TIMEOUT (a retry of a batch whose first attempt is
 * still being written: the client retries after its backoff), -ENOMEM.
 * For RN_PRODUCER_APPEND of an idempotent batch the batch is recorded as in
 * flight: the caller must report its outcome. */
int rn_producer_state_check(rn_producer_state *ps, const rn_batch_header *h, int64_t *dup_offset);

/* The in-flight batch of (producer_id, base_sequence) got base_offset. */
void rn_producer_state_appended(rn_producer_state *ps, int64_t producer_id, int32_t base_sequence,
                                int64_t base_offset);

/* The in-flight batch of (producer_id, base_sequence) failed: forget it, so
 * the retry is taken as new. */
void rn_producer_state_failed(rn_producer_state *ps, int64_t producer_id, int32_t base_sequence);

/* A follower appended h (base_offset set) as the leader wrote it: remember
 * it as rebuild does, without judging it (the leader did), so a follower
 * elected leader answers retries exactly once. 0, or -ENOMEM. */
int rn_producer_state_replicated(rn_producer_state *ps, const rn_batch_header *h);
/* Rebuild from the batches of log from from_offset to its end (headers only).
 * Returns the number of idempotent batches seen, or a negative error. */
int rn_producer_state_rebuild(rn_producer_state *ps, rn_log *log, int64_t from_offset);

/* Producers remembered (for metrics and tests). */
unsigned rn_producer_state_count(const rn_producer_state *ps);

/* Producer ids: handed out in blocks persisted in data_dir/producer-ids
 * (a checkpoint: XXH3-checksummed, tmp → fsync → rename), so an id is never
 * given twice across restarts. */
typedef struct rn_producer_ids {
    char dir[4096];
    int64_t next, block_end;
    int32_t node_id; /* a cluster broker's node.id (ids are its own), -1 on a single node */
} rn_producer_ids;

/* Load (or start) the allocator in dir. Errors: those of rn_checkpoint_read
 * other than -ENOENT. */
int rn_producer_ids_open(rn_producer_ids *ids, const char *dir);
/* In a cluster every broker hands out producer ids (InitProducerId goes to
 * any of them) and a partition's leader keeps the state of every id that
 * wrote to it, so two brokers must never hand out the same id: from now
 * on ids are (n << 31) | node_id for this broker's n = 0, 1, 2, … (2^32 of
 * them). node_id >= 0 (node.id's range). */
void rn_producer_ids_set_node(rn_producer_ids *ids, int32_t node_id);
/* Next producer id. Errors: -errno when the next block cannot be persisted,
 * -EOVERFLOW when a cluster broker has handed out all of its ids. */
int rn_producer_ids_next(rn_producer_ids *ids, int64_t *pid);

#endif
