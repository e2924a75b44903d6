/*
 * runnel.h — librunnel, the C client of runnel (DESIGN §9).
 *
 * Three handles, all opaque, all built from one rn_conf:
 *   rn_admin     topics and configs (synchronous calls with a timeout);
 *   rn_producer  batches records per partition (linger.ms, batch.size),
 *                compresses (gzip, snappy, lz4 or zstd), partitions by key (XXH3_64(key) %
 *                partitions; keyless records stick to one partition per batch),
 *                retries with backoff, reports each record's offset;
 *   rn_consumer  reads assigned partitions from an offset or a time,
 *                prefetches, verifies every batch's CRC.
 *
 * Threading: no threads of its own. Each handle is used by one thread at a
 * time; its I/O happens inside its calls (rn_producer_poll/flush,
 * rn_consumer_poll, the admin calls). Delivery callbacks run only inside
 * rn_producer_poll / rn_producer_flush / rn_producer_close, on the caller's
 * thread, never inside rn_producer_send.
 *
 * Errors: functions return 0 or a negative code: -errno for system errors,
 * -RN_E_* (the numbers of protocol/errors.def, e.g. -RN_E_UNKNOWN_TOPIC)
 * for runnel's own; rn_err_str() names any of them and each handle keeps the
 * last error with context (rn_*_errmsg). Nothing aborts the process.
 *
 * Metadata: handles learn the cluster from bootstrap.servers with Metadata
 * requests, refresh it on NOT_LEADER / UNKNOWN_TOPIC / a dead connection, and
 * reconnect with backoff.
 */
#ifndef RUNNEL_H
#define RUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RN_CLIENT_VERSION "0.1.0"

/* ---- Configuration ----------------------------------------------------------- */

typedef struct rn_conf rn_conf;

/* A configuration with defaults. NULL on out of memory. */
rn_conf *rn_conf_new(void);
void rn_conf_free(rn_conf *conf);
/* A copy; NULL on out of memory. */
rn_conf *rn_conf_dup(const rn_conf *conf);

/* Set key to value. Keys (defaults):
 *   bootstrap.servers          "127.0.0.1:9700" (host:port,host:port…)
 *   client.id                  "librunnel"
 *   socket.timeout.ms          30000  request timeout
 *   connect.timeout.ms         5000
 *   reconnect.backoff.ms       100
 *   metadata.max.age.ms        300000 (topics in use are looked up again this often,
 *                              so partitions added to a topic get used)
 *   -- producer --
 *   acks                       all (all|-1, 1, 0)
 *   linger.ms                  5
 *   batch.size                 262144 bytes per partition batch (<= 1 MiB)
 *   compression.codec          none (none|gzip|snappy|lz4|zstd; zstd's level below)
 *   compression.level          3
 *   retries                    2147483647 (bounded by delivery.timeout.ms)
 *   retry.backoff.ms           100
 *   delivery.timeout.ms        120000
 *   max.in.flight              5 requests per connection
 *   partitioner                default (hash of key; sticky when keyless) | roundrobin
 *   enable.idempotence         true: a producer id and per-partition sequences, so a
 *                              retry is never stored twice. As in Kafka's clients it
 *                              needs acks=all and max.in.flight <= 5 (the leader keeps
 *                              a producer's last 5 batches): left at its default it is
 *                              off otherwise; set true with acks 0/1 or max.in.flight
 *                              over 5, rn_producer_new refuses the configuration
 *   -- consumer --
 *   fetch.min.bytes            1
 *   fetch.max.wait.ms          500
 *   fetch.max.bytes            52428800
 *   max.partition.fetch.bytes  1048576
 *   check.crcs                 true
 * Errors: -RN_E_INVALID_CONFIG with a message in err (unknown key, bad value). */
int rn_conf_set(rn_conf *conf, const char *key, const char *value, char *err, size_t errlen);

/* The human message for a code (negative or positive), never NULL. */
const char *rn_err_str(int err);
/* The symbolic name ("UNKNOWN_TOPIC", "ECONNREFUSED"). */
const char *rn_err_name(int err);

/* ---- Records ----------------------------------------------------------------- */

typedef struct rn_header {
    const char *name; /* not NUL-terminated necessarily: name_len bytes */
    size_t name_len;
    const void *value; /* NULL = null value */
    size_t value_len;
} rn_header;

/* A record as the consumer returns it. Every pointer is valid until the next
 * rn_consumer_poll or rn_consumer_close on the same consumer. */
typedef struct rn_message {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms since the epoch */
    const void *key;   /* NULL = null key */
    size_t key_len;
    const void *value; /* NULL = null value */
    size_t value_len;
    size_t n_headers;
    const rn_header *headers;
} rn_message;

/* ---- Admin --------------------------------------------------------------------- */

typedef struct rn_admin rn_admin;

typedef struct rn_partition_desc {
    int32_t partition;
    int32_t leader;
    int32_t leader_epoch;
    size_t n_replicas;
    const int32_t *replicas;
    size_t n_isr;
    const int32_t *isr;
    int64_t log_start_offset;
    int64_t high_watermark;
    int64_t log_end_offset;
    int64_t size_bytes;
    /* A replica move in progress (rn_admin_move_partition): the replicas it
     * ends with; n_target 0 when none. */
    size_t n_target;
    const int32_t *target;
    /* Eligible leader replicas (KIP-966): out of the ISR but holding every
     * record below the high watermark; n_elr 0 when none. */
    size_t n_elr;
    const int32_t *elr;
    int64_t throttle; /* that move's catch-up throttle in bytes/s; 0 none */
} rn_partition_desc;

typedef struct rn_topic_desc {
    const char *name;
    size_t n_configs;
    const char *const *config_keys; /* effective values, sorted by key */
    const char *const *config_values;
    size_t n_partitions;
    const rn_partition_desc *partitions;
    /* n_configs flags beside config_keys: true = set on the topic itself (an
     * override), false = the broker's default. */
    const bool *config_overridden;
} rn_topic_desc;

/* Connects lazily. Takes a copy of conf. Errors: -ENOMEM, -RN_E_INVALID_CONFIG. */
int rn_admin_new(rn_admin **out, const rn_conf *conf);
void rn_admin_free(rn_admin *a);
const char *rn_admin_errmsg(const rn_admin *a);

/* Create a topic; configs are n key/value pairs (may be 0). partitions or
 * replication_factor <= 0 take the broker's default. Errors:
 * -RN_E_TOPIC_EXISTS, -RN_E_INVALID_TOPIC, -RN_E_INVALID_PARTITIONS,
 * -RN_E_INVALID_CONFIG, -RN_E_NOT_ENOUGH_REPLICAS, -RN_E_TIMEOUT, -ECONNREFUSED… */
int rn_admin_create_topic(rn_admin *a, const char *name, int32_t partitions,
                          int16_t replication_factor, const char *const *config_keys,
                          const char *const *config_values, size_t n_configs);
int rn_admin_delete_topic(rn_admin *a, const char *name);
/* Names of every topic, sorted; *names is malloc'd (one block: free(*names)
 * frees the strings too). */
int rn_admin_list_topics(rn_admin *a, char ***names, size_t *n);
/* Describe one topic; *out is valid until rn_admin_describe_free. */
int rn_admin_describe_topic(rn_admin *a, const char *name, rn_topic_desc **out);
void rn_admin_describe_free(rn_topic_desc *d);
/* Move a partition's replicas to brokers[0..n) (Kafka's partition
 * reassignment; the first becomes the preferred leader): the new replicas
 * catch up as followers and the move completes once all are in sync; until
 * then rn_partition_desc.target shows it. Returns 0 once the move is
 * accepted, not finished. Naming the current brokers cancels a move.
 * Errors: -RN_E_UNKNOWN_TOPIC, -RN_E_INVALID_REQUEST (a broker named twice,
 * unknown, or fenced), connection errors. */
int rn_admin_move_partition(rn_admin *a, const char *topic, int32_t partition,
                            const int32_t *brokers, size_t n);
/* rn_admin_move_partition with a catch-up throttle (Kafka's
 * kafka-reassign-partitions --throttle): the replicas being added fetch at
 * most throttle bytes/s until they are in sync (0: the brokers' configured
 * leader/follower.replication.throttled.rate). Also -RN_E_INVALID_REQUEST
 * for a throttle below 0. */
int rn_admin_move_partition_throttled(rn_admin *a, const char *topic, int32_t partition,
                                      const int32_t *brokers, size_t n, int64_t throttle);
/* Set and delete topic-level configs (incremental). */
int rn_admin_alter_configs(rn_admin *a, const char *topic, const char *const *set_keys,
                           const char *const *set_values, size_t n_set,
                           const char *const *delete_keys, size_t n_delete);
/* Grow a topic to `partitions` partitions (Kafka's CreatePartitions); never
 * fewer: -RN_E_INVALID_PARTITIONS (also past the broker's caps),
 * -RN_E_UNKNOWN_TOPIC. Producers and consumers of other handles learn the new
 * count when they next refresh metadata (metadata.max.age.ms). */
int rn_admin_create_partitions(rn_admin *a, const char *topic, int32_t partitions);
/* Offsets: timestamp RN_OFFSET_EARLIEST (-2), RN_OFFSET_LATEST (-1), or ms;
 * *offset is -1 when no record is that recent. */
#define RN_OFFSET_EARLIEST (-2)
#define RN_OFFSET_LATEST   (-1)
int rn_admin_list_offset(rn_admin *a, const char *topic, int32_t partition, int64_t timestamp,
                         int64_t *offset);
/* Partitions of a topic (from metadata). */
int rn_admin_partition_count(rn_admin *a, const char *topic, int32_t *n);

/* ---- Admin: the cluster ---- */

typedef struct rn_cluster_voter {
    int32_t id;
    const char *endpoint;  /* its controller listener */
    int64_t match_offset;  /* the leader's view: its fetch offset; -1 unknown */
    int64_t last_fetch_ms; /* the leader's view: ms since it fetched; -1 unknown */
} rn_cluster_voter;

typedef struct rn_cluster_broker {
    int32_t id;
    const char *endpoint; /* its advertised native listener */
    int64_t epoch;        /* the offset of its registration record */
    int fenced;
    int64_t last_heartbeat_ms; /* the active controller's view; -1 elsewhere */
} rn_cluster_broker;

typedef struct rn_cluster_partition {
    const char *topic;
    int32_t partition;
    int32_t leader; /* -1 when none */
    int32_t leader_epoch;
    size_t n_replicas;
    const int32_t *replicas;
    size_t n_isr;
    const int32_t *isr;
} rn_cluster_partition;

typedef struct rn_cluster_status {
    int32_t node_id;   /* the broker that answered */
    const char *role;  /* its quorum role: leader, follower, candidate, ... */
    int32_t leader_id; /* the active controller, -1 when none is known */
    int32_t epoch;
    int64_t high_watermark; /* the metadata log's commit offset */
    int64_t log_end_offset;
    int64_t applied_offset;
    int clustered; /* 0: a single node */
    size_t n_voters;
    const rn_cluster_voter *voters;
    size_t n_brokers;
    const rn_cluster_broker *brokers;
    /* Partition health from the answering broker's image: under-replicated =
     * ISR smaller than the replicas; offline = no leader or a fenced one.
     * The counts are whole; the lists hold the first ones (at most 100). */
    int64_t partitions;
    int64_t under_replicated_count, offline_count;
    size_t n_under_replicated;
    const rn_cluster_partition *under_replicated;
    size_t n_offline;
    const rn_cluster_partition *offline;
} rn_cluster_status;

/* The metadata quorum as the broker the admin client talks to sees it;
 * *out is one block, freed with free(*out). */
int rn_admin_cluster_status(rn_admin *a, rn_cluster_status **out);

/* ---- Admin: consumer groups ---- */

typedef struct rn_group_listing {
    const char *group_id;
    const char *state; /* "Empty", "Stable", "Reconciling" */
    uint32_t members;
} rn_group_listing;

/* Every group the coordinator knows; *out (n entries) is freed with free(*out). */
int rn_admin_list_groups(rn_admin *a, rn_group_listing **out, size_t *n);

typedef struct rn_group_partition {
    const char *topic;
    int32_t partition;
    int64_t committed_offset; /* -1: nothing committed */
    int64_t log_end_offset;   /* the high watermark */
    int64_t lag;              /* -1 when nothing committed */
    const char *member_id;    /* owner, "" when none */
    const char *client_id;    /* owner's client id, "" when none */
    const char *host;         /* owner's address, "" when none */
} rn_group_partition;

typedef struct rn_group_desc {
    const char *group_id;
    const char *state;
    int32_t group_epoch;
    const char *assignor;
    size_t n_members;
    size_t n_partitions;
    const rn_group_partition *partitions; /* sorted by topic, partition */
} rn_group_desc;

/* Describe a group: members and per-partition committed offsets and lag.
 * Errors: -RN_E_UNKNOWN_GROUP. *out is valid until rn_admin_group_free. */
int rn_admin_describe_group(rn_admin *a, const char *group, rn_group_desc **out);
void rn_admin_group_free(rn_group_desc *d);

/* Commit offsets for a group that has no active member (group reset): n
 * (topic, partition, offset) triples. Errors: -RN_E_GROUP_NOT_EMPTY. */
int rn_admin_commit_offsets(rn_admin *a, const char *group, const char *const *topics,
                            const int32_t *partitions, const int64_t *offsets, size_t n);

/* The coordinator of a group as the first reachable bootstrap broker
 * answers FindCoordinator (the leader of the group's __offsets partition):
 * its node id, and its native listener in host (len bytes) and *port.
 * Errors: -RN_E_COORDINATOR_NOT_AVAILABLE (no leader now, or the leader
 * still loading), transport errors. Asks every time (nothing cached). */
int rn_admin_find_coordinator(rn_admin *a, const char *group, int32_t *node_id, char *host,
                              size_t len, uint16_t *port);

/* Delete a group's committed offsets (it must have no active member).
 * Errors: -RN_E_UNKNOWN_GROUP, -RN_E_GROUP_NOT_EMPTY. */
int rn_admin_delete_group(rn_admin *a, const char *group);

/* ---- Producer ------------------------------------------------------------------ */

typedef struct rn_producer rn_producer;

/* Delivery report: err 0 with the record's offset, or the error that ended
 * its retries. opaque is what rn_producer_send was given. */
typedef void (*rn_delivery_cb)(void *cb_arg, int err, const char *topic, int32_t partition,
                               int64_t offset, void *opaque);

/* cb may be NULL. Takes a copy of conf. Errors: -ENOMEM, -RN_E_INVALID_CONFIG (a bad
 * compression.level; enable.idempotence set true with acks other than all or with
 * max.in.flight over 5). */
int rn_producer_new(rn_producer **out, const rn_conf *conf, rn_delivery_cb cb, void *cb_arg);

/* Queue one record. partition -1 = choose by key (or sticky when keyless).
 * key/value may be NULL (null); every byte is copied. timestamp 0 = now.
 * Returns 0 when queued; -RN_E_MESSAGE_TOO_LARGE, -RN_E_UNKNOWN_TOPIC (after a
 * metadata lookup), -ENOBUFS (queue full: poll first), -ENOMEM. May block up to
 * socket.timeout.ms for the first metadata of a topic. */
int rn_producer_send(rn_producer *p, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t value_len, const rn_header *headers,
                     size_t n_headers, int64_t timestamp, void *opaque);

/* Do I/O for up to timeout_ms (0 = no waiting): send ready batches, read
 * answers, retry, run delivery callbacks. Returns the number of callbacks run,
 * or a negative error of the producer itself. */
int rn_producer_poll(rn_producer *p, int timeout_ms);

/* Send everything queued and wait for every delivery report, up to timeout_ms
 * (-1 = delivery.timeout.ms). Returns 0, or -RN_E_TIMEOUT with records still
 * undelivered. */
int rn_producer_flush(rn_producer *p, int timeout_ms);

/* Records queued or in flight. */
size_t rn_producer_outstanding(const rn_producer *p);

/* Flush (up to delivery.timeout.ms) and free. Returns the flush result. */
int rn_producer_close(rn_producer *p);
const char *rn_producer_errmsg(const rn_producer *p);

/* ---- Consumer ------------------------------------------------------------------ */

typedef struct rn_consumer rn_consumer;

int rn_consumer_new(rn_consumer **out, const rn_conf *conf);

/* Where to start: an offset >= 0, or one of these. */
#define RN_START_BEGINNING (-2) /* the log start offset */
#define RN_START_END       (-1) /* the high watermark: only new records */

/* Add a partition to read from `offset` (>= 0, RN_START_BEGINNING or
 * RN_START_END). Errors: -RN_E_UNKNOWN_TOPIC, -EEXIST (already assigned). */
int rn_consumer_assign(rn_consumer *c, const char *topic, int32_t partition, int64_t offset);
/* Assign every partition of topic from offset. */
int rn_consumer_assign_topic(rn_consumer *c, const char *topic, int64_t offset);
/* Move an assigned partition to offset (as for assign). For "N before the
 * end", list the latest offset with rn_admin_list_offset and seek to it - N. */
int rn_consumer_seek(rn_consumer *c, const char *topic, int32_t partition, int64_t offset);
/* Move to the first record with timestamp >= ts_ms (end when none). */
int rn_consumer_seek_time(rn_consumer *c, const char *topic, int32_t partition, int64_t ts_ms);
/* Next offset the consumer will return for a partition (-1 if unassigned). */
int64_t rn_consumer_position(const rn_consumer *c, const char *topic, int32_t partition);
/* High watermark last seen for a partition (-1 unknown). */
int64_t rn_consumer_high_watermark(const rn_consumer *c, const char *topic, int32_t partition);

/* Wait up to timeout_ms for records. Returns the number of messages in *msgs
 * (0 on timeout), valid until the next poll; or a negative error
 * (-RN_E_CORRUPT_BATCH when a batch fails its CRC or its records do not
 * decode: none of its records is returned, the errmsg names its offsets and
 * the next poll goes on after it, as librdkafka does; the batch error itself,
 * e.g. -RN_E_BATCH_BAD_MAGIC, when fetched bytes are not a batch at all and
 * the partition is fetched again; -RN_E_OFFSET_OUT_OF_RANGE with the valid
 * range in the errmsg; network errors after retries). */
int rn_consumer_poll(rn_consumer *c, int timeout_ms, const rn_message **msgs);

/* True when every assigned partition's position has reached the high
 * watermark seen in the last fetch (kcat's -e). */
int rn_consumer_at_end(const rn_consumer *c);

/* ---- Consumer groups ----
 * With group.id set, rn_consumer_subscribe joins the group: the coordinator
 * assigns partitions (heartbeats run inside rn_consumer_poll), a partition
 * starts at the group's committed offset (else auto.offset.reset: earliest |
 * latest), and positions are committed every auto.commit.interval.ms
 * (enable.auto.commit, default true), on revoke and on close. Conf keys:
 * group.id, enable.auto.commit, auto.commit.interval.ms (5000),
 * session.timeout.ms (10000), heartbeat.interval.ms (1000),
 * auto.offset.reset (earliest), partition.assignment.strategy (sticky|range). */

/* Called inside rn_consumer_poll (and rn_consumer_unsubscribe /
 * rn_consumer_close, which revoke everything) when partitions are assigned
 * (assigned = 1) or revoked (assigned = 0), before the revoked ones' offsets
 * are committed. */
typedef void (*rn_rebalance_cb)(void *arg, int assigned, const char *topic, int32_t partition);
void rn_consumer_set_rebalance_cb(rn_consumer *c, rn_rebalance_cb cb, void *arg);

/* Join group.id and consume these topics. Errors: -RN_E_INVALID_CONFIG (no
 * group.id), -EINVAL (already assigned by hand). */
int rn_consumer_subscribe(rn_consumer *c, const char *const *topics, size_t n_topics);

/* Commit the current position of every assigned partition (synchronous). */
int rn_consumer_commit(rn_consumer *c);

/* The group's committed offset of a partition (-1 none). */
int rn_consumer_committed(rn_consumer *c, const char *topic, int32_t partition, int64_t *offset);

/* Partitions currently assigned (by hand or by the group): n entries of
 * topic/partition, valid until the next poll. */
size_t rn_consumer_assignment(const rn_consumer *c, const char *const **topics,
                              const int32_t **partitions);

/* Leave the group at once (its partitions move to the others now), after a
 * final commit; also done by rn_consumer_close. */
int rn_consumer_unsubscribe(rn_consumer *c);

void rn_consumer_close(rn_consumer *c);
const char *rn_consumer_errmsg(const rn_consumer *c);

/* ---- Partitioner -------------------------------------------------------------------- */

/* The partition of a key among n: XXH3_64(key) % n (the same in every client). */
int32_t rn_partition_for_key(const void *key, size_t key_len, int32_t n);

#ifdef __cplusplus
}
#endif

#endif
