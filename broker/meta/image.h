/*
 * image.h — the metadata image: the cluster state every broker builds from
 * the metadata log (DESIGN §8; Kafka's MetadataImage).
 *
 * The image holds topics (name, id, replication factor, topic-level
 * configs) and their partitions (leader, epoch, replicas, ISR). It changes
 * only through rn_image_apply, one MetadataRecord (protocol/metadata.proto)
 * at a time, and applying is a pure function of the image and the record:
 * no I/O, no clock, no randomness, no callbacks. So every broker that
 * applies the same records in the same order holds the same image, whether
 * the records come from the local log, a snapshot or (later) a Raft quorum.
 *
 * What applying changed is returned to the caller as an effect (a topic
 * created, its configs changed, partitions added); the caller tells its
 * listeners after a whole batch, never the image.
 *
 * Threading: none inside; the owner serialises every call.
 */
#ifndef RN_BROKER_META_IMAGE_H
#define RN_BROKER_META_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest topic a record may describe (the protocol's range). */
#define RN_IMAGE_MAX_PARTITIONS 100000
/* Replica placement looks at up to this many live brokers. */
#define RN_MAX_BROKERS 64

struct Runnel__Metadata__MetadataRecord;

typedef struct rn_image rn_image;

/* One partition of a topic. */
typedef struct rn_partition_info {
    int32_t partition;
    int32_t leader;          /* node id of the leader, -1 when none */
    int32_t leader_epoch;    /* bumped on every leader change */
    int32_t partition_epoch; /* bumped on every change of leader, ISR or replicas */
    int32_t n_replicas;
    const int32_t *replicas;
    int32_t n_isr;
    const int32_t *isr;
    int32_t n_target; /* a replica move in progress: the replicas it ends with; 0 none */
    const int32_t *target;
    int32_t n_elr; /* eligible leader replicas (KIP-966): out of the ISR, nothing below */
    const int32_t *elr; /* the high watermark missing; elected when no ISR member is live */
    int32_t min_isr;    /* min.insync.replicas as last recorded (>= 1) */
    int64_t throttle; /* a move's catch-up throttle in bytes/s (metadata.proto); 0 none */
} rn_partition_info;

/* One topic. Pointers are valid until the next record is applied; copy what
 * must live longer. */
typedef struct rn_topic_info {
    const char *name;
    uint8_t id[16]; /* random: a topic deleted and created again is a new topic */
    int32_t n_partitions;
    int16_t replication_factor;
    const rn_partition_info *partitions; /* n_partitions, by partition number */
    uint32_t n_configs;                  /* topic-level overrides, sorted by key */
    const char *const *config_keys;
    const char *const *config_values;
} rn_topic_info;

/* A broker of the cluster, as its BrokerRecords and BrokerFenceRecords say
 * (none on a single node). */
typedef struct rn_broker_info {
    int32_t id;
    const char *endpoint;  /* host:port of its native listener */
    const char *kafka;     /* host:port of its Kafka listener, "" = none */
    int64_t epoch;         /* its incarnation: a restart is a new one */
    int64_t registered_at; /* the offset of its registration (broker epoch); 0 unknown */
    bool fenced;
} rn_broker_info;

/* What one applied record did, for the caller's listeners. */
enum rn_image_effect_type {
    RN_IMAGE_NONE,
    RN_IMAGE_TOPIC_CREATED,
    RN_IMAGE_CONFIG_CHANGED,
    RN_IMAGE_PARTITIONS_ADDED,
    RN_IMAGE_TOPIC_REMOVED,     /* topic is NULL: it is gone (look it up before applying) */
    RN_IMAGE_PARTITION_CHANGED, /* topic's partition `partition`: leader, epochs or ISR */
    RN_IMAGE_BROKERS_CHANGED,   /* topic NULL: a broker registered, was fenced or came back;
                                 * the leaders and ISRs of any partition may have changed */
};

typedef struct rn_image_effect {
    enum rn_image_effect_type type;
    const rn_topic_info *topic;
    int32_t partition; /* RN_IMAGE_PARTITION_CHANGED */
} rn_image_effect;

/* An empty image. -ENOMEM. */
int rn_image_new(rn_image **out);
void rn_image_free(rn_image *img);
/* Back to empty. */
void rn_image_clear(rn_image *img);

/* Apply one record. Returns 0, or -ENOMEM: the image then holds part of the
 * record's change and no longer matches the log (the caller must stop using
 * it). *status is 0 when the record applied, else why it was skipped (a
 * name or id already taken: -RN_E_TOPIC_EXISTS; an unknown topic id:
 * -RN_E_UNKNOWN_TOPIC; a malformed field: -RN_E_INVALID_TOPIC,
 * -RN_E_INVALID_PARTITIONS, -RN_E_INVALID_REQUEST, -RN_E_INVALID_CONFIG;
 * a kind this version does not know: -RN_E_CORRUPT_FILE; a partition
 * change whose expected epochs are not the partition's:
 * -RN_E_FENCED_LEADER_EPOCH). A skipped record changes nothing. effect may
 * be NULL.
 *
 * Elections are part of applying (DESIGN §8, KIP-631/966): a broker fenced
 * (BrokerFenceRecord, or a BrokerRecord of a new incarnation: a restarted
 * process may have lost unsynced writes) leaves every ISR it is in unless it
 * is the last member, and each partition it led moves to the first other
 * unfenced ISR member (leader epoch + 1), or to no leader (-1) when there is
 * none; a broker unfenced (or registered) becomes the leader of every
 * leaderless partition whose ISR holds it. Unclean election never happens.
 * Eligible leader replicas (KIP-966): a replica that leaves the ISR while
 * the ISR left is below the partition's min_isr joins its ELR (the high
 * watermark cannot advance while the ISR is that small, so it still holds
 * every record below it); the ELR empties once the ISR reaches min_isr
 * again, and loses a replica that rejoins the ISR or restarts (a new
 * incarnation may have lost unsynced writes: runnel does not yet tell a
 * clean restart from an unclean one, so every restart counts as unclean).
 * When no ISR member is live, the first live ELR member is elected: it
 * becomes the ISR, and the old ISR's members join the ELR.
 * A replica move (PartitionReassignRecord) completes while applying the ISR
 * change that puts its last target replica in sync (metadata.proto). */
int rn_image_apply(rn_image *img, const struct Runnel__Metadata__MetadataRecord *r,
                   rn_image_effect *effect, int *status);

/* The one rule for a new ISR of p (a PartitionChangeRecord applies only
 * when it holds; proposers check it first for a clear error): isr[0..n)
 * non-empty, distinct replicas of p, holding the leader (when elect, the
 * new leader, which must be live), and every broker not already in p's ISR
 * live (KIP-841). */
bool rn_image_isr_ok(const rn_image *img, const rn_partition_info *p, const int32_t *isr, size_t n,
                     bool elect, int32_t leader);

/* A min.insync.replicas config value as the image reads it: 1..INT16_MAX,
 * else 0 (not a value it records). One reading for the image's ELR rule and
 * for the proposers that record the value with each partition. */
int32_t rn_image_min_isr_value(const char *value);

/* Look-ups. Valid until the next apply. */
const rn_topic_info *rn_image_find(const rn_image *img, const char *name);
const rn_topic_info *rn_image_find_id(const rn_image *img, const uint8_t *id, size_t id_len);
unsigned rn_image_topic_count(const rn_image *img);
const rn_topic_info *rn_image_topic_at(const rn_image *img, unsigned i); /* sorted by name */
/* Partitions of every topic. */
int64_t rn_image_partition_count(const rn_image *img);

/* Brokers, sorted by id. Valid until the next apply. */
unsigned rn_image_broker_count(const rn_image *img);
const rn_broker_info *rn_image_broker_at(const rn_image *img, unsigned i);
const rn_broker_info *rn_image_broker(const rn_image *img, int32_t id); /* NULL: unknown */

/* Whether two images hold the same topics, ids, partitions, configs and
 * brokers. */
bool rn_image_equal(const rn_image *a, const rn_image *b);

#endif
