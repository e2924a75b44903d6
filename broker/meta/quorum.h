/*
 * quorum.h — the metadata quorum between runneld processes (DESIGN §8): the
 * Raft core (raft.h) driven over TCP, on disk and on a clock (quorum.c, with
 * the files quorum_int.h lists).
 *
 * One thread per broker runs it ("the quorum thread"): it owns the Raft core,
 * the metadata log __cluster_metadata-0 (an ordinary rn_log on a ring of its
 * own, one Raft entry per offset, the epoch in partition_leader_epoch), the
 * quorum-state file, the controller listener and a link to every other voter.
 * Committed entries leave it through a post function (the broker's
 * rn_reactor_call to reactor 0), in log order, and reach the metadata facade
 * through the journal backend made by rn_quorum_journal_new: every broker
 * applies the same batches in the same order, whoever proposed them.
 *
 * Proposals (rn_quorum_journal's appends) on a broker that does not lead go to
 * the leader over the controller link (as Kafka's brokers forward to the
 * active controller); the leader proposes them and the origin learns the
 * outcome when the entry commits (matched by node id and token), or fails
 * it after RN_QUORUM_PROPOSE_TIMEOUT_MS.
 *
 * The active controller (the leader) also keeps broker registrations:
 * every broker heartbeats it each broker.heartbeat.interval.ms; a broker not
 * registered (or restarted: a new incarnation) is registered with a
 * BrokerRecord, one silent for broker.session.timeout.ms is fenced with a
 * BrokerFenceRecord, and unfenced by the same record when it heartbeats
 * again. Heartbeats themselves are messages, not records (as in Kafka).
 *
 * Snapshots (KRaft's): every broker snapshots the state its committed
 * entries build, every metadata.log.max.record.bytes.between.snapshots and
 * at a clean stop, into dir/<end>-<epoch>.checkpoint, and deletes the log
 * below the previous one; a broker whose log is behind the leader's log
 * start fetches the snapshot (FetchSnapshot) and installs it. See
 * quorum.c's invariants 4 and 5.
 */
#ifndef RN_BROKER_META_QUORUM_H
#define RN_BROKER_META_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/meta/journal.h"

#define RN_QUORUM_PROPOSE_TIMEOUT_MS 30000

typedef struct rn_quorum rn_quorum;

/* Run fn(arg) on the owner's thread, later, in the order posted (the
 * broker's rn_reactor_call). 0, or negative: fn will not run. */
typedef int (*rn_quorum_post_fn)(void *ctx, void (*fn)(void *arg), void *arg);

typedef struct rn_quorum_config {
    int32_t node_id;
    const rn_voter *voters; /* copied */
    int n_voters;
    const char *listener;         /* controller.listener; "" for a broker that is no voter */
    const char *dir;              /* the metadata log's directory (data-dir/__cluster_metadata-0) */
    const char *advertised;       /* host:port of this broker's native listener */
    const char *kafka_advertised; /* host:port of its Kafka listener; NULL or "" = none */
    int64_t session_timeout_ms, heartbeat_interval_ms;
    int64_t election_timeout_ms, fetch_timeout_ms;
    /* metadata.log.max.record.bytes.between.snapshots: a snapshot after
     * this many bytes of committed entries (0: only at a clean stop). */
    int64_t snapshot_bytes;
    rn_quorum_post_fn post;
    void *post_ctx;
} rn_quorum_config;

/* A quorum for cfg, not running yet. -EINVAL (err says why), -ENOMEM. */
int rn_quorum_new(rn_quorum **out, const rn_quorum_config *cfg, char *err, size_t errlen);
/* Open the log and state, bind the listener, start the thread. Errors of
 * rn_log_open, of the state file (-RN_E_CORRUPT_FILE), of bind; err says. */
int rn_quorum_start(rn_quorum *q, char *err, size_t errlen);
/* Stop the thread (the leader resigns first), close the log, free. */
void rn_quorum_free(rn_quorum *q);

/* The journal whose batches go through q (one per broker, made before
 * rn_quorum_start, on the thread that owns it: posts run there). apply is
 * called, on that thread, for every committed batch this broker did not
 * submit (a submit's own batch goes to its callback instead); offset is
 * the entry's offset in the metadata log. */
typedef void (*rn_quorum_apply_fn)(void *arg, int64_t offset, const uint8_t *batch, size_t len);
/* install: the state is a snapshot (snapshot.h's bytes, already checked)
 * covering every entry below end_offset, which replaces the image whole
 * (at start, the latest on disk; later, one fetched from the leader by a
 * broker that fell behind its log start). Batches after it follow. */
typedef void (*rn_quorum_install_fn)(void *arg, int64_t end_offset, const uint8_t *snapshot,
                                     size_t len);
int rn_quorum_journal_new(rn_quorum *q, rn_quorum_apply_fn apply, rn_quorum_install_fn install,
                          void *arg, rn_journal **out);

/* Owner's thread: every entry committed when this broker first knew the
 * leader has been applied (the image is as recent as the cluster's was
 * then). Until it first says yes, the quorum posts a no-op every 200 ms so
 * an owner waiting on its ring for it wakes to check its signals. */
bool rn_quorum_caught_up(rn_quorum *q);

/* Controlled shutdown (Kafka's): ask the active controller to fence this
 * broker now, so its partitions get new leaders while it still answers
 * (NOT_LEADER sends clients to them) rather than after
 * broker.session.timeout.ms of silence. Any thread; heartbeats say so until
 * the fence commits. rn_quorum_left: it has committed (the broker may stop). */
void rn_quorum_leave(rn_quorum *q);
bool rn_quorum_left(rn_quorum *q);

typedef struct rn_quorum_broker {
    int32_t id;
    char endpoint[256];
    char kafka[256]; /* its Kafka listener's host:port, "" = none */
    int64_t epoch;   /* the offset of its registration record */
    bool fenced;
    int64_t last_heartbeat_ms; /* ms since its last heartbeat (the leader's view), -1 unknown */
} rn_quorum_broker;

typedef struct rn_quorum_voter {
    int32_t id;
    char endpoint[256];
    int64_t match;         /* the leader's view: its fetch offset, -1 unknown */
    int64_t last_fetch_ms; /* ms since it last fetched (the leader's view), -1 unknown */
} rn_quorum_voter;

typedef struct rn_quorum_status {
    int32_t node_id;
    const char *role; /* rn_raft_role_name */
    int32_t epoch, leader;
    int64_t hw, log_end, applied;
    int64_t log_start;                              /* the metadata log's first offset on disk */
    int64_t snapshot_end;                           /* the latest snapshot's end offset, 0 none */
    int64_t snapshots_written, snapshots_installed; /* this process life */
    int n_voters;
    rn_quorum_voter voters[RN_MAX_VOTERS];
    int n_brokers;
    rn_quorum_broker brokers[64];
} rn_quorum_status;

/* Any thread: a copy of the latest status. */
void rn_quorum_status_get(rn_quorum *q, rn_quorum_status *st);

/* The wire form of one Raft message (a RAFT frame's body after its kind
 * byte; quorum_wire.c's header). Exposed for tests. Encode: 0 and *out (malloc'd)
 * or -ENOMEM. Decode: 0 with m's pointers into p and *ents (malloc'd, the
 * caller frees) holding the entries; -EINVAL for bytes that are not exactly
 * one message (short, trailing bytes, counts past what the bytes can hold,
 * checked before anything is allocated), -ENOMEM. */
struct rn_raft_msg;
struct rn_raft_entry;
int rn_quorum_msg_encode(const struct rn_raft_msg *m, uint8_t **out, size_t *len);
int rn_quorum_msg_decode(const uint8_t *p, size_t len, struct rn_raft_msg *m,
                         struct rn_raft_entry **ents);

/* A message too large for one frame (a snapshot: FetchSnapshot's answer)
 * goes as PART frames, each u64 total | u64 pos | bytes, back to back on a
 * link; this gathers them. Feed one PART body (after its kind byte): 0
 * when more is needed; 1 with *msg (valid until the next feed or reset)
 * and *msg_len when the whole has come; -EINVAL for a part out of order,
 * of another total, empty, past the total or a total over 1 GiB (what was
 * gathered is dropped; the buffer never grows past the total); -ENOMEM.
 * Exposed for tests. */
typedef struct rn_quorum_parts {
    uint8_t *p;
    size_t len, cap;
    uint64_t total;
} rn_quorum_parts;
int rn_quorum_parts_feed(rn_quorum_parts *pt, const uint8_t *body, size_t len, const uint8_t **msg,
                         size_t *msg_len);
void rn_quorum_parts_reset(rn_quorum_parts *pt);

#endif
