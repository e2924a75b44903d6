/*
 * part/partitions.h — partitions: the topic → partition-log table each reactor keeps, and
 * what a partition's owner does with its log (open, roll, retention, storage errors).
 *
 * Implemented by part/partitions.c (the table, the acks rule, a partition's own calls),
 * part/part_events.c (the metadata events) and part/sweep.c (the sweeps and the storage
 * errors they keep). A partition belongs to one reactor (rn_partition_owner)
 * and only that reactor's thread touches its log; other reactors read what the owner
 * published (rn_partition_offsets, rn_partition_size).
 */
#ifndef RN_BROKER_PART_PARTITIONS_H
#define RN_BROKER_PART_PARTITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/meta/metadata.h"
#include "broker/metrics.h"
#include "broker/part/producer_state.h"
#include "broker/part/replica_state.h"
#include "broker/part/waiters.h"
#include "storage/log.h"

/* A partition's replication role (DESIGN §8), set by the controller through
 * rn_partition_become_leader / rn_partition_become_follower. A partition no
 * controller has spoken for is RN_ROLE_LOCAL: the single-node broker, which
 * serves it as leader with the log's own high watermark, as before. */
typedef enum rn_part_role {
    RN_ROLE_LOCAL,
    RN_ROLE_LEADER,
    RN_ROLE_FOLLOWER,
} rn_part_role;

struct rn_partition {
    char *topic;
    int32_t id;
    rn_log *log;
    rn_reactor *reactor;
    /* Parked requests (part/waiters.h), woken when the high watermark moves:
     * long-polling fetches (api/fetch.c) and acks=all produces waiting for
     * the high watermark to pass their batch (api/produce.c). */
    rn_waiter_queue fetch_waiters, produce_waiters;
    rn_partition_metrics m;
    rn_producer_state *ps; /* idempotent producers' last batches */
    int32_t leader_epoch;
    /* Replication (owner only): the role; the leader's follower table
     * (RN_ROLE_LEADER); the leader a follower fetches from and the high
     * watermark it last heard (RN_ROLE_FOLLOWER). */
    rn_part_role role;
    rn_replica_state *rs;
    int32_t leader_id;
    int64_t follower_hw;
    /* From metadata (part/roles.c): the partition epoch the role was last
     * set from (the controller fences ISR proposals with it), the replicas,
     * and the topic's id (ISR proposals name the topic by it). */
    int32_t partition_epoch;
    int32_t replicas[RN_REPLICAS_MAX];
    unsigned n_replicas;
    uint8_t topic_id[16];
    /* A replica move under way (part/roles.c; part/throttle.h): its target
     * replicas (n_target 0: none), its throttle in bytes/s (0: the broker's
     * rates), and whether this broker is a target replica not in the ISR
     * yet (its catch-up fetches are the throttled ones). */
    int32_t target[RN_REPLICAS_MAX];
    unsigned n_target;
    int64_t move_throttle;
    bool moving_in;
    /* A cluster broker holding no replica of the partition keeps no log of
     * it (no directory); requests answer NOT_LEADER. Owner only once shared. */
    bool no_replica;
    bool deleting;
    unsigned n_inflight; /* appends not yet completed: delete waits for them */
    char *del_dir;       /* delete: where reactor 0 moved the directory */
    bool keep_dir;       /* delete: leave the directory to the next start's sweep */
    /* Published by the owner for other reactors (describe, lag, metrics):
     * relaxed atomics, read with rn_partition_offsets/rn_partition_size. */
    int64_t pub_lso, pub_hw, pub_leo;
    uint64_t pub_size;
    /* Appends failing for a storage reason (rn_partition_storage_failed):
     * the error (-ENOSPC, -EIO, -RN_E_LOG_FAILED) or 0, the bytes the failed
     * append needed, and since when. Owner only. */
    int storage_err;
    size_t storage_need;
    int64_t storage_since_ms;
    /* What the log last said: "cannot write" (logged_err != 0) until the
     * partition has written again for a while; flaps in between are counted,
     * not logged, so a disk at the edge of full gives two lines, not dozens. */
    int storage_logged_err;
    int64_t storage_ok_since_ms;
    const char *storage_cleared_by; /* "append" or "space" (static) */
    unsigned storage_flaps;
};

typedef struct rn_topic_state {
    char *name;
    uint8_t id[16];
    int32_t n_partitions;
    rn_partition **parts;
    int refs;                   /* one per reactor table holding it (atomic) */
    int open_err;               /* first partition log that failed to open: its error, */
    int32_t open_err_partition; /* and its number (a create then fails whole) */
    bool parts_moved;           /* replaced by a larger state that owns the partitions now */
} rn_topic_state;

/* The topic → partitions table, kept in step with metadata by its listener. */
typedef struct rn_partition_table {
    rn_topic_state **topics; /* sorted by name */
    unsigned n_topics, cap;
} rn_partition_table;

/* Look-ups in the calling reactor's own table (rn_self). */
rn_partition *rn_partition_find(rn_broker *b, const char *topic, int32_t partition);
rn_topic_state *rn_topic_state_find(rn_broker *b, const char *topic);
/* rn_partition_find for a request that names a partition, with the one
 * answer every partitioned API gives (produce, fetch, list offsets, offsets
 * for leader epoch): NULL with *rc -RN_E_STORAGE_ERROR when the metadata has
 * the partition but its log is not open here, -RN_E_UNKNOWN_TOPIC when it
 * has no such partition, -RN_E_NOT_LEADER when this broker holds no
 * replica of it (in a cluster), and rn_partition_check_epoch's error for a
 * current_leader_epoch (-1 not to check) other than the partition's. */
rn_partition *rn_partition_lookup(rn_broker *b, const char *topic, int32_t partition,
                                  int32_t current_leader_epoch, int *rc);
/* The reactor that owns a partition: internal topics (__*) on 0, others by
 * a hash of topic and partition. A pure function, so routing needs no table. */
unsigned rn_partition_owner(const rn_broker *b, const char *topic, int32_t partition);
/* The partition's high watermark: what consumers may read up to, and what
 * acks=all waits for. Exact on the owner, else as last published. Every
 * reader (Fetch, ListOffsets, describe, lag, metrics, gateway) goes through
 * this or rn_partition_offsets, never the log's own offsets. */
int64_t rn_partition_high_watermark(const rn_partition *p);
/* Offsets answered from the high watermark are current (owner only): false
 * while a new leader's high watermark is still short of its epoch's start
 * (rn_replica_state_hw_settled; ListOffsets answers OFFSET_NOT_AVAILABLE). */
bool rn_partition_hw_settled(const rn_partition *p);

/* ---- Replication (DESIGN §8): the calls the controller makes, and the checks
 * the APIs make. Owner only. ---- */

/* This broker (self_id) leads p from leader_epoch with replicas[0..n) and
 * the committed isr[0..n_isr) (cfg: replica.lag.time.max.ms and
 * min.insync.replicas). The epoch is recorded at the log end
 * (rn_log_assign_epoch); the high watermark starts from what p had and
 * then follows the ISR; followers' fetches feed it. ISR changes the leader
 * wants go to cb(arg, isr, n), for the controller to commit and hand back
 * with rn_partition_isr_committed. Parked fetches re-check.
 * Errors: -RN_E_FENCED_LEADER_EPOCH (leader_epoch older than p's),
 * -EINVAL (the tables, see rn_replica_state_new), the log's error, -ENOMEM;
 * p is unchanged then. */
int rn_partition_become_leader(rn_partition *p, int32_t self_id, int32_t leader_epoch,
                               const int32_t *replicas, unsigned n_replicas, const int32_t *isr,
                               unsigned n_isr, const rn_replica_config *cfg, rn_isr_propose_cb *cb,
                               void *arg);
/* This broker follows leader_id from leader_epoch: produces and consumer
 * fetches get NOT_LEADER from now on, produces parked for acks=all answer
 * NOT_LEADER (their batches may still be replicated, or truncated by the
 * new leader), and the replica fetcher (part/replica_fetcher.h) takes the
 * log. Errors: -RN_E_FENCED_LEADER_EPOCH (older than p's). */
int rn_partition_become_follower(rn_partition *p, int32_t leader_epoch, int32_t leader_id);
/* The controller committed isr[0..n) for p (the leader's proposal, or its
 * own change): the high watermark may move and parked produces re-check.
 * Errors: -RN_E_NOT_LEADER (p is not led here), -EINVAL (a bad ISR). */
int rn_partition_isr_committed(rn_partition *p, const int32_t *isr, unsigned n);
/* A follower heard the leader's high watermark: its own is that, capped by
 * its log. */
void rn_partition_follower_hw(rn_partition *p, int64_t leader_hw);

/* This broker holds no replica of p any more (the committed metadata says
 * so: a move took it away; part/roles.c): as Kafka's StopReplica with
 * delete, its log is dropped and its directory deleted crash-safely
 * (renamed to <dir>.deleted-*, data directory synced, removed; a crash
 * leaves that name to the start-up sweep). p stays in the table with
 * no_replica: requests answer NOT_LEADER; a move back opens a new log. On
 * p's owner, after p was taken off its fetcher (rn_fetchers_follow). */
void rn_partition_stop_replica(rn_partition *p);
/* p's owner: this broker became a replica of p, which it kept no log of
 * (p->no_replica): open (creating) the log with lc for topic id. 0 at once
 * when p has a log. Errors: those of opening (logged; p stays without). */
int rn_partition_open_log(rn_partition *p, const uint8_t id[16], const rn_log_config *lc);

/* KIP-320: a request's current leader epoch against p's. epoch < 0: not
 * checked. 0, -RN_E_FENCED_LEADER_EPOCH (older), -RN_E_UNKNOWN_LEADER_EPOCH
 * (newer: this broker has not heard of it yet). */
int rn_partition_check_epoch(const rn_partition *p, int32_t epoch);
/* Produce, consumer fetches, OffsetsForLeaderEpoch: 0 when p is served here
 * as leader (RN_ROLE_LEADER or RN_ROLE_LOCAL), else -RN_E_NOT_LEADER. */
int rn_partition_check_leader(const rn_partition *p);
/* A follower's fetch (replica_id >= 0): 0 when p is led here and replica_id
 * is one of its followers (or p is RN_ROLE_LOCAL), else -RN_E_NOT_LEADER. */
int rn_partition_check_replica(const rn_partition *p, int32_t replica_id);
/* acks=all, before the append (Kafka's rule): 0, or -RN_E_NOT_ENOUGH_REPLICAS
 * when the ISR is smaller than min.insync.replicas. */
int rn_partition_check_min_isr(const rn_partition *p);
/* Whether the ISR still holds min.insync.replicas (true when not replicated). */
bool rn_partition_isr_enough(const rn_partition *p);
/* acks=all, after the append: may a batch appended while p led in
 * leader_epoch, ending before need_hw, be acknowledged? 1 yes (the high
 * watermark covers it), 0 not yet (wait for it to move). Errors, the batch
 * is not safe and never will be here: -RN_E_UNKNOWN_TOPIC (p is being
 * deleted), -RN_E_NOT_LEADER (p no longer leads in leader_epoch: it
 * follows, its replica moved away and its log went, or it leads again in a
 * later epoch, whose log may hold other records at those offsets; a
 * follower's high watermark is the new leader's, over the new leader's
 * records), -RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND (the ISR fell below
 * min.insync.replicas). Owner's thread. */
int rn_partition_acks_all(const rn_partition *p, int32_t leader_epoch, int64_t need_hw);
/* A follower's fetch from fetch_offset arrived at now_ms (api/fetch.c, before
 * it reads): recorded in the leader's follower table; when the high
 * watermark moves, parked fetches and produces are woken (call it where no
 * fetch of the caller's is parked mid-read). RN_ROLE_LOCAL: nothing, 0.
 * Errors: -RN_E_NOT_LEADER (a follower here, or replica_id is not one of
 * p's followers). */
int rn_partition_follower_fetched(rn_partition *p, int32_t replica_id, int64_t fetch_offset,
                                  int64_t now_ms);

/* Offsets and size from any reactor: exact on the owner, else as the owner
 * last published them (after every append and every tick). */
void rn_partition_offsets(const rn_partition *p, int64_t *lso, int64_t *hw, int64_t *leo);
uint64_t rn_partition_size(const rn_partition *p);
void rn_partition_publish(rn_partition *p);
/* Copy reactor 0's table into every other reactor's (start-up, before the
 * threads run). Errors: -ENOMEM. */
int rn_partitions_share(rn_broker *b);
/* The metadata listener: opens/closes/reconfigures partition logs. */
void rn_partitions_on_metadata(void *arg, const rn_metadata_event *ev);
/* Close every partition log cleanly (shutdown). Returns the first error. */
int rn_partitions_close_all(rn_broker *b);
/* p's log moved (an append completed, its high watermark may have moved):
 * publish its offsets and wake its parked fetches and produces. Owner only. */
void rn_partition_wake(rn_partition *p);
/* Roll, retention and the parked produces' timeouts for every partition
 * (the reactor's tick). While a disk
 * is full (rn_broker.parts_disk_full), retention runs at every tick. */
void rn_partitions_tick(rn_reactor *r, int64_t now_ms, bool retention);
/* The reactor is stopping (net/reactor.c): produces parked on its partitions answer now
 * (their appends are done; only the wait for the high watermark ends), so
 * the drain does not wait for their timeout_ms. */
void rn_partitions_stopping(rn_reactor *r);
/* An append to p failed with err. A storage error (a system error such as
 * -ENOSPC or -EIO, or -RN_E_LOG_FAILED) is counted, and the first of a run
 * marks the partition (/readyz, /metrics) and logs one line; need is the
 * failed append's size. Other errors (a bad batch) are ignored. Owner only. */
void rn_partition_storage_failed(rn_partition *p, int err, size_t need);
/* An append to p succeeded: clears the mark with one log line. Owner only. */
void rn_partition_storage_ok(rn_partition *p);
/* Start-up, after rn_metadata_open opened every live topic and before any
 * listener: remove every leftover partition directory of the data directory
 * (*.deleted-*, and <name>-<n> that is no live topic's partition), renamed
 * aside and synced before removal, and log one line with the count (also of
 * the leftovers discarded while opening topics). Returns 0 or the first
 * error (-errno, -ENOMEM); what could be removed is. */
int rn_partitions_sweep(rn_broker *b);

/* The topic id a partition directory belongs to (protocol/partition_meta.h):
 * reads dir/partition.metadata into id. 0, -ENOENT (no file),
 * -RN_E_CORRUPT_FILE (not the exact format), -errno. */
int rn_partition_meta_read(const char *dir, uint8_t id[16]);

#endif
