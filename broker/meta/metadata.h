/*
 * metadata.h — cluster metadata as a log: topics, partitions, leaders, configs.
 * The facade the rest of the broker calls; behind it (broker/meta/): the
 * image (image.h, pure apply), snapshots (snapshot.h), the journal
 * (journal.h) and, here, the validated mutations.
 *
 * Every change to metadata is a record submitted to the metadata journal
 * (today the local log data-dir/__cluster_metadata-0, an ordinary rn_log
 * with flush=always) and, once committed, applied to the in-memory image;
 * handlers read the image, never files (DESIGN §8: the same records later
 * travel through a Raft quorum instead of the local log, and every broker
 * applies them the same way). Records are protobuf `MetadataRecord`s
 * (protocol/metadata.proto) carried as the values of ordinary record batches;
 * one change (a topic with its partitions) is one batch, so it applies whole
 * or not at all.
 *
 * Apply is deterministic: a record that does not apply (a topic that already
 * exists, an unknown topic id) is skipped identically at append time and on
 * replay, so every replica of the log builds the same state.
 *
 * Snapshots: the whole state is written to data-dir/__cluster_metadata-0/snapshot
 * (XXH3-checksummed, tmp → fsync → rename → fsync dir) every 1000 applied
 * records and on close; opening loads the snapshot and replays only the
 * records after the offset it covers. A missing or corrupt snapshot is
 * ignored (logged) and the log is replayed from its start.
 *
 * Threading: owned by one reactor thread (the one that owns the metadata
 * log's rn_io); every call from that thread. Callbacks run from rn_io_run.
 */
#ifndef RN_BROKER_METADATA_H
#define RN_BROKER_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/meta/image.h"
#include "protocol/topic_name.h"
#include "storage/io.h"
#include "storage/log.h"

/* The metadata log's directory under the data directory. */
#define RN_METADATA_DIR_NAME "__cluster_metadata-0"
/* Marks a partition directory moved aside by a delete; no topic name holds it. */
#define RN_DELETED_DIR_MARK RN_TOPIC_DELETED_MARK

typedef struct rn_metadata rn_metadata;

/* rn_partition_info and rn_topic_info: broker/meta/image.h. */

enum rn_metadata_event_type {
    RN_MD_TOPIC_CREATED,     /* topic now exists (also for each topic found at open) */
    RN_MD_TOPIC_DELETED,     /* topic about to be removed; info still valid in the call */
    RN_MD_CONFIG_CHANGED,    /* topic-level configs changed */
    RN_MD_PARTITIONS_ADDED,  /* the topic has more partitions (n_partitions is the new count) */
    RN_MD_PARTITION_CHANGED, /* partition `partition` of the topic: leader, epochs, ISR */
    RN_MD_BROKERS_CHANGED,   /* topic NULL: a broker registered, was fenced or came back;
                              * leaderships and ISRs may have moved: re-check every partition */
};

typedef struct rn_metadata_event {
    enum rn_metadata_event_type type;
    const rn_topic_info *topic;
    int32_t partition; /* RN_MD_PARTITION_CHANGED; else -1 */
} rn_metadata_event;

/* Told of every applied change, on the owning thread. Must not call back into
 * rn_metadata_* mutators. */
typedef void (*rn_metadata_listener)(void *arg, const rn_metadata_event *ev);

/* Completion of a change: err 0 once the record is durable and applied, else
 * a negative code with a message (errmsg valid during the call). */
typedef void (*rn_metadata_cb)(void *arg, int err, const char *errmsg);

/* Open the metadata log under data_dir (created if missing), load the
 * snapshot, replay the records after it, and tell the listener about every
 * topic (RN_MD_TOPIC_CREATED) so the broker opens their partition logs.
 * io is borrowed for the life of md. node_id is this broker (the leader of
 * every partition on a single node). Errors: those of rn_log_open, -ENOMEM,
 * -RN_E_CORRUPT_FILE (a record in the log that does not decode); err gets a
 * message. */
int rn_metadata_open(rn_metadata **out, rn_io *io, const char *data_dir, int32_t node_id,
                     rn_metadata_listener listener, void *listener_arg, char *err, size_t errlen);

/* The same facade over the metadata quorum (broker/meta/quorum.h), before
 * rn_quorum_start: the image starts empty and fills as the quorum's committed
 * batches arrive (posted to the owning thread), whoever proposed them; a
 * snapshot from the quorum (the latest on disk at start, or the leader's
 * for a broker behind its log start) replaces it whole, and once caught up
 * the listener hears the difference (topics deleted, created, changed);
 * changes made here are proposed through the quorum (forwarded to the active
 * controller when this broker does not lead). -ENOMEM. */
struct rn_quorum;
int rn_metadata_open_cluster(rn_metadata **out, rn_io *io, const char *data_dir, int32_t node_id,
                             struct rn_quorum *q, rn_metadata_listener listener, void *listener_arg,
                             char *err, size_t errlen);

/* Cluster: the quorum has caught up (rn_quorum_caught_up). Until then the
 * replayed log's batches change the image without telling the listener,
 * which would otherwise act on states long gone (open a partition of a
 * topic deleted since, under a name a later topic took, and discard that
 * topic's directory as a leftover); now it hears RN_MD_TOPIC_CREATED for
 * every topic of the state the log ends in, and every change after. */
void rn_metadata_caught_up(rn_metadata *md);

/* Write a snapshot, close the log cleanly, free. Returns the first error. */
int rn_metadata_close(rn_metadata *md);

/* Create a topic with n_partitions (1..100000) and replication_factor
 * replicas per partition (-1 = default.replication.factor), placed over the
 * unfenced brokers (placement.h; a single node: itself), with topic-level configs
 * (validated with rn_topic_config_set). Validation errors are returned at
 * once and cb never runs: -RN_E_INVALID_TOPIC (a name
 * rn_topic_name_check(name, false) refuses: protocol/topic_name.h), -RN_E_TOPIC_EXISTS,
 * -RN_E_INVALID_PARTITIONS, -RN_E_INVALID_CONFIG (also a key given twice),
 * -RN_E_NOT_ENOUGH_REPLICAS (replication factor above the number of brokers),
 * -RN_E_INVALID_REQUEST (replication factor 0 or below -1), -RN_E_INVALID_PARTITIONS
 * also when a cap of rn_metadata_set_limits would be passed; err gets a message.
 * Otherwise returns 0 and cb runs once the record is durable and applied.
 * Every mutator may also fail at once with -ENOMEM, an error of rn_log_append
 * (-RN_E_LOG_FAILED, …), or — after applying a durable change ran out of
 * memory, so the state is behind the log — that error until restart. */
int rn_metadata_create_topic(rn_metadata *md, const char *name, int32_t n_partitions,
                             int16_t replication_factor, const char *const *config_keys,
                             const char *const *config_values, size_t n_configs, rn_metadata_cb cb,
                             void *arg, char *err, size_t errlen);

/* Partition caps checked before a create is written (broker/main.c sets
 * them from max.partitions.per.topic, max.partitions and what the
 * descriptor and memory-map limits hold). Every count includes the changes
 * in flight. Internal topics count towards the totals too. */
typedef struct rn_metadata_limits {
    int32_t max_per_topic; /* max.partitions.per.topic */
    int64_t max_total;     /* max.partitions: every topic's partitions on this broker */
    int64_t fit;           /* partitions the process limits hold; -1: not checked */
    char fit_why[200];     /* the limit behind fit, for messages ("RLIMIT_NOFILE 20000 ...") */
} rn_metadata_limits;

/* Copies l; later creates are checked against it. Before this, only the
 * protocol's range (1..100000) applies. */
void rn_metadata_set_limits(rn_metadata *md, const rn_metadata_limits *l);

/* Whether a topic with topic_total partitions, adding added to the
 * broker's, stays within the caps: 0, or -RN_E_INVALID_PARTITIONS with err
 * naming the cap (validate_only requests ask this). */
int rn_metadata_check_limits(const rn_metadata *md, const char *name, int32_t topic_total,
                             int32_t added, char *err, size_t errlen);

/* Partitions of every topic, with the creates in flight. */
int64_t rn_metadata_partition_count(const rn_metadata *md);

/* Create an internal topic (one the broker owns, such as __offsets): as
 * rn_metadata_create_topic with the default replication factor and no
 * configs, except that the name must start with "__" (-RN_E_INVALID_TOPIC
 * otherwise). Clients cannot create these names. */
int rn_metadata_create_internal_topic(rn_metadata *md, const char *name, int32_t n_partitions,
                                      rn_metadata_cb cb, void *arg, char *err, size_t errlen);

/* Delete a topic. -RN_E_UNKNOWN_TOPIC at once; else 0 and cb later. */
int rn_metadata_delete_topic(rn_metadata *md, const char *name, rn_metadata_cb cb, void *arg,
                             char *err, size_t errlen);

/* Set and remove topic-level configs. -RN_E_UNKNOWN_TOPIC, -RN_E_INVALID_CONFIG
 * (unknown key or bad value, a key given twice, nothing to do) at once; else
 * 0 and cb later. Deleting a key that is not set is not an error. */
int rn_metadata_alter_configs(rn_metadata *md, const char *topic, const char *const *set_keys,
                              const char *const *set_values, size_t n_set,
                              const char *const *delete_keys, size_t n_delete, rn_metadata_cb cb,
                              void *arg, char *err, size_t errlen);

/* Grow a topic to n_partitions (never fewer; the new ones get this node as
 * leader and only replica). Errors at once: -RN_E_UNKNOWN_TOPIC,
 * -RN_E_INVALID_PARTITIONS (not more than the current count, above
 * 100000, or past a cap of rn_metadata_set_limits), err says which; else 0
 * and cb once durable and applied (the listener has RN_MD_PARTITIONS_ADDED
 * by then). */
int rn_metadata_add_partitions(rn_metadata *md, const char *topic, int32_t n_partitions,
                               rn_metadata_cb cb, void *arg, char *err, size_t errlen);

/* A leader's ISR change for a partition (Kafka's AlterPartition), with the
 * leader epoch and partition epoch it saw. Owner's thread. Errors at once:
 * -RN_E_UNKNOWN_TOPIC, -RN_E_INVALID_REQUEST (isr empty, with duplicates, not
 * a subset of the replicas, or without the current leader). Otherwise 0 and
 * cb later: 0 once applied (the listener has RN_MD_PARTITION_CHANGED by
 * then); -RN_E_FENCED_LEADER_EPOCH when the partition's epochs moved on
 * meanwhile (nothing changed: re-read the image, retry if still wanted). */
int rn_metadata_alter_isr(rn_metadata *md, const uint8_t topic_id[16], int32_t partition,
                          int32_t leader_epoch, int32_t partition_epoch, const int32_t *isr,
                          size_t n_isr, rn_metadata_cb cb, void *arg, char *err, size_t errlen);

/* The controller's preferred-leader election: leader (a live broker in the
 * partition's ISR) leads from leader epoch + 1, the ISR unchanged. Owner's
 * thread; errors and cb as rn_metadata_alter_isr. */
int rn_metadata_elect_leader(rn_metadata *md, const uint8_t topic_id[16], int32_t partition,
                             int32_t leader_epoch, int32_t partition_epoch, int32_t leader,
                             rn_metadata_cb cb, void *arg, char *err, size_t errlen);

/* Move a partition's replicas to target[0..n) (Kafka's
 * AlterPartitionReassignments; metadata.proto's PartitionReassignRecord):
 * the new replicas catch up as followers and the move completes once all
 * of target is in the ISR; the first of target becomes the preferred
 * leader. A target with the same brokers cancels a move in progress (and
 * sets the replicas' order). Owner's thread. Errors at once:
 * -RN_E_UNKNOWN_TOPIC (no such topic or partition), -RN_E_INVALID_REQUEST
 * (no target, more than RN_MAX_BROKERS, a broker named twice, one not
 * registered, a new replica on a fenced broker). Otherwise 0 and cb later:
 * 0 once applied (on top of whatever committed meanwhile). throttle: the
 * bytes/s the replicas being added catch up at until the move ends (0: the
 * brokers' configured rates). */
int rn_metadata_reassign(rn_metadata *md, const char *topic, int32_t partition,
                         const int32_t *target, size_t n, int64_t throttle, rn_metadata_cb cb,
                         void *arg, char *err, size_t errlen);

/* default.replication.factor for creates that ask for -1 (1 until set). */
void rn_metadata_set_default_rf(rn_metadata *md, int16_t rf);
/* min.insync.replicas of the broker, recorded with each partition this
 * broker creates or changes when its topic sets none (1 until set): the
 * image's ELR rule needs it (image.h). */
void rn_metadata_set_default_min_isr(rn_metadata *md, int32_t n);

/* The cluster's brokers (image.h; none on a single node), sorted by id.
 * Valid until the next change is applied. */
const rn_broker_info *rn_metadata_broker(const rn_metadata *md, int32_t id); /* NULL: unknown */
unsigned rn_metadata_broker_count(const rn_metadata *md);
const rn_broker_info *rn_metadata_broker_at(const rn_metadata *md, unsigned i);

/* Look-ups. Valid until the next change is applied. */
const rn_topic_info *rn_metadata_find(const rn_metadata *md, const char *name);
unsigned rn_metadata_topic_count(const rn_metadata *md);
const rn_topic_info *rn_metadata_topic_at(const rn_metadata *md, unsigned i); /* sorted by name */

/* The image itself, for pure decisions over it (placement.h). */
const rn_image *rn_metadata_image(const rn_metadata *md);

/* Offset after the last applied record. */
int64_t rn_metadata_applied_offset(const rn_metadata *md);

/* The log configuration of a topic: defaults with its overrides applied.
 * Returns 0, or the first error of rn_topic_config_set (an override this
 * version refuses; the others are still applied). */
int rn_topic_log_config(const rn_topic_info *t, const rn_log_config *defaults, rn_log_config *out);

#endif
