/*
 * config.h — runneld's configuration: Kafka-style properties, flags, defaults.
 *
 * One struct holds every broker setting. It starts from defaults that make a
 * working single-node broker with no flags at all (data in ./runnel-data,
 * native protocol on 127.0.0.1:9700, HTTP on 127.0.0.1:9780), then a
 * properties file (`--config FILE`: `key=value` lines, `#`/`!` comments) and
 * `--override key=value` flags are applied on top, in that order, through
 * the same rn_config_set(). Topic-level settings (retention.ms, segment.bytes,
 * flush, …) use the same parsers through rn_topic_config_set().
 *
 * Not thread-safe: built once in main() before the reactors start.
 */
#ifndef RN_BROKER_CONFIG_H
#define RN_BROKER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/log.h"

/* Reactors in one broker: shard.c routes with a small table per owner. The
 * `reactors` setting is bounded by it; reactors=0 (one per core) is clamped
 * to it in main(). */
#define RN_MAX_REACTORS 64

typedef struct rn_config {
    char data_dir[PATH_MAX]; /* data.dir (flag --data-dir), default ./runnel-data */
    char listen[256];        /* listeners (flag --listen), host:port, default 127.0.0.1:9700 */
    char http[256];          /* http.listener (flag --http), default 127.0.0.1:9780 */
    char kafka[256];         /* kafka.listener (flag --kafka), host:port of the Kafka-
                                protocol listener; default empty = off */
    char http_allowed_origins[1024];   /* http.allowed.origins: browser Origins the gateway
                                          accepts besides its own host, comma-separated
                                          (`*` = any); default empty */
    int32_t node_id;                   /* node.id, default 1 */
    uint32_t reactors;                 /* reactors (flag --reactors), default 0 = one per core */
    uint32_t socket_request_max_bytes; /* socket.request.max.bytes, default 100 MiB */
    uint32_t max_connections;          /* max.connections, default 10000 */
    int64_t connections_max_idle_ms;   /* connections.max.idle.ms, default 600000 (10 min) */
    uint64_t connection_send_budget;   /* connection.send.budget.bytes, default 16 MiB */
    /* socket.send.zerocopy.bytes: a send of at least this many bytes uses
     * IORING_OP_SENDMSG_ZC (pages go to the NIC from the segment mmap, no copy);
     * 0 = never. */
    uint64_t send_zerocopy_bytes;
    bool auto_create_topics; /* auto.create.topics.enable, default false */
    int32_t num_partitions;  /* num.partitions (auto-created topics), default 1 */
    /* Partition caps, checked before a create writes anything (a create that
     * cannot open every partition fails whole). At start the broker also
     * reports what RLIMIT_NOFILE and vm.max_map_count hold (one descriptor and
     * three mappings per partition) and warns when max.partitions is more. */
    int32_t max_partitions_per_topic; /* max.partitions.per.topic, default 10000 */
    int32_t max_partitions;           /* max.partitions (all topics), default 20000: what the
                                         default vm.max_map_count (65530) holds */
    int64_t retention_check_ms;       /* log.retention.check.interval.ms, default 300000 */
    int64_t fetch_max_wait_ms;        /* fetch.max.wait.ms cap for long polls, default 30000 */
    rn_log_config log;                /* log.* defaults every topic starts from:
                                         log.segment.bytes, log.roll.ms, log.retention.ms,
                                         log.retention.bytes, log.index.interval.bytes,
                                         message.max.bytes, log.flush, log.preallocate.bytes */

    /* The cluster (DESIGN §8). With no voters the broker is a single node
     * exactly as before: its metadata log is local and nothing below is used. */
    char process_roles[64];               /* process.roles: "broker", "controller" or both,
                                             comma-separated; default broker,controller */
    char controller_listener[256];        /* controller.listener: host:port of the Raft
                                             listener; empty = none (single node) */
    char quorum_voters[1024];             /* controller.quorum.voters: ID@HOST:PORT,...; empty =
                                             single node */
    char advertised_listener[256];        /* advertised.listener: host:port other brokers and
                                             clients are told; empty = listeners */
    int64_t broker_session_timeout_ms;    /* broker.session.timeout.ms, default 9000 */
    int64_t broker_heartbeat_interval_ms; /* broker.heartbeat.interval.ms, default 500 */
    int64_t quorum_election_timeout_ms;   /* controller.quorum.election.timeout.ms, 500 */
    int64_t quorum_fetch_timeout_ms;      /* controller.quorum.fetch.timeout.ms, 1000 */
    int64_t metadata_snapshot_bytes;      /* metadata.log.max.record.bytes.between.snapshots,
                                             20 MiB */
    bool auto_leader_rebalance;           /* auto.leader.rebalance.enable, default true */
    int64_t leader_imbalance_check_ms;    /* leader.imbalance.check.interval.seconds (300) */
    /* Data replication (DESIGN §8), Kafka's names and defaults. */
    /* min.insync.replicas (acks=all needs this many in the ISR, else
     * NOT_ENOUGH_REPLICAS; default 1) is log.min_insync_replicas: a topic
     * may override it like the log.* keys. */
    int32_t default_replication_factor;        /* default.replication.factor: topics created without
                                                  one (replication_factor -1); default 1 */
    int64_t replica_lag_time_max_ms;           /* replica.lag.time.max.ms: an ISR member not caught
                                                  up for this long is proposed out; default 30000 */
    uint32_t replica_fetch_max_bytes;          /* replica.fetch.max.bytes: per partition in a
                                                  follower's fetch; default 1 MiB */
    uint32_t replica_fetch_response_max_bytes; /* replica.fetch.response.max.bytes: a whole
                                                  follower fetch answer; default 10 MiB */
    uint32_t replica_fetch_wait_max_ms;        /* replica.fetch.wait.max.ms: the leader's long
                                                  poll for a follower; default 500 */
    /* Replica moves' catch-up throttles in bytes/s (Kafka's names; 0, the
     * default: none). They apply only to the replicas a move is adding
     * that are not in sync yet (part/throttle.h); a move may carry its own
     * rate (runnel topic move --throttle), which wins over these. */
    int64_t leader_replication_throttled_rate;   /* what this broker sends them, in all */
    int64_t follower_replication_throttled_rate; /* what this broker fetches as one, in all */
} rn_config;

/* One voter of controller.quorum.voters. */
typedef struct rn_voter {
    int32_t id;
    char host[256];
    uint16_t port;
} rn_voter;

#define RN_MAX_VOTERS 16

/* Parse controller.quorum.voters ("ID@HOST:PORT,..."; empty = none) into
 * out[0..max). Returns how many, or -RN_E_INVALID_CONFIG with err naming the
 * entry and the problem (a bad id or host:port, an id twice, more than max). */
int rn_config_parse_voters(const char *s, rn_voter *out, int max, char *err, size_t errlen);

/* Whether process.roles holds role ("broker" or "controller"). */
bool rn_config_has_role(const rn_config *c, const char *role);

/* Fill c with the defaults above. */
void rn_config_default(rn_config *c);

/* Set one key from its text value. Values are validated (numbers in range,
 * host:port well formed, booleans true/false). Errors: -RN_E_INVALID_CONFIG
 * with a message naming the key and the problem in err (may be NULL). */
int rn_config_set(rn_config *c, const char *key, const char *value, char *err, size_t errlen);

/* Apply a properties file: `key=value` or `key: value` lines; leading and
 * trailing blanks trimmed; `#` and `!` start comment lines; blank lines
 * skipped; a line ending in `\` continues on the next. Every key goes through
 * rn_config_set; an unknown key or bad value is an error that names the file
 * and line ("runnel.properties:7: log.flush: …"). Errors: -errno (cannot
 * read), -RN_E_INVALID_CONFIG. Lines longer than 64 KiB are rejected. */
int rn_config_load_file(rn_config *c, const char *path, char *err, size_t errlen);

/* Parse "key=value" (as given to --override) and rn_config_set it. */
int rn_config_set_kv(rn_config *c, const char *kv, char *err, size_t errlen);

/* Rules that join two keys, which rn_config_set cannot check because keys come
 * in any order: message.max.bytes <= log.segment.bytes (a batch must fit in one
 * segment); the cluster keys agree (a controller is a voter with a
 * controller.listener, a voter's own entry names its controller.listener, a
 * broker-only node has voters to reach, the heartbeat is shorter than the
 * session, the fetch timeout longer than the election timeout). Call once the file and every
 * override are applied. Errors: -RN_E_INVALID_CONFIG with a message naming both keys. */
int rn_config_check(const rn_config *c, char *err, size_t errlen);

/* Topic-level settings, applied on top of the broker's log defaults:
 * retention.ms, retention.bytes, segment.bytes, segment.ms, max.message.bytes,
 * flush (always | never | interval:MS), index.interval.bytes,
 * preallocate.bytes. Errors: -RN_E_INVALID_CONFIG with a message. */
int rn_topic_config_set(rn_log_config *lc, const char *key, const char *value, char *err,
                        size_t errlen);

/* The cross-key rules of rn_config_check for one topic's settings
 * (max.message.bytes <= segment.bytes), after its rn_topic_config_set calls. */
int rn_topic_config_check(const rn_log_config *lc, char *err, size_t errlen);

/* Is key a topic-level setting rn_topic_config_set knows? */
bool rn_topic_config_known(const char *key);

/* Split "host:port" (IPv4 dotted quad, "localhost", or [IPv6]) into parts;
 * an IPv6 host comes out without its brackets, ready for getaddrinfo().
 * Errors: -RN_E_INVALID_CONFIG. */
int rn_config_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Write every setting as `key=value` lines (sorted by key) to buf, for
 * `runneld --print-config` and the startup log. Returns what snprintf would. */
int rn_config_dump(const rn_config *c, char *buf, size_t len);

#endif
