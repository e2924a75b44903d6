/*
 * raft.h — the metadata quorum's Raft core, sans-I/O (DESIGN §8).
 *
 * KIP-595 Raft ("KRaft") in the shape of etcd's raft: the caller feeds it
 * messages (rn_raft_step), the time (rn_raft_tick) and proposals
 * (rn_raft_propose), and takes its output as a "ready" (rn_raft_ready): the
 * quorum state to persist, log entries to append, messages to send, the high
 * watermark and the committed entries to apply. The core does no I/O, reads
 * no clock, starts no thread; given the same inputs and the same random
 * numbers (the caller's PRNG) it does the same thing, which is what lets
 * tests/unit/broker/test_raft_sim.c run a whole quorum deterministically.
 *
 * The log is pull-based: followers and observers send Fetch(fetch_offset,
 * last_fetched_epoch) to the leader, which answers with entries, its high
 * watermark, a diverging epoch to truncate to, or the snapshot to fetch.
 * Elections use Vote with pre-vote (KIP-996), BeginQuorumEpoch and
 * EndQuorumEpoch; a leader no majority has fetched from within the fetch
 * timeout resigns (check quorum).
 *
 * Entries are abstract: (offset, epoch, kind, opaque bytes), one entry per
 * offset. The caller maps an entry to one record batch of its log
 * (`__cluster_metadata-0`), stamping `epoch` into partition_leader_epoch.
 * The core keeps the log since the last snapshot in memory (the metadata
 * log is kept short by snapshots: rn_raft_compact); the caller's log is the
 * durable copy it is restored from at start.
 *
 * Fetches are answered at once (no long poll yet): a caught-up follower
 * polls every retry_backoff_ms, and fetches again at once after a response
 * that carried entries.
 *
 * The caller's loop (one thread; nothing here is thread-safe):
 *
 *     rn_raft_step / rn_raft_tick / rn_raft_propose ...
 *     while (rn_raft_has_ready(r)) {
 *         rn_raft_ready rd;
 *         rn_raft_ready_get(r, &rd);
 *         1. if rd.state_changed: write rd.state durably (tmp, fsync, rename, fsync dir)
 *         2. if rd.snapshot: store it durably, drop the whole log, log starts at its end
 *         3. if rd.truncate_to >= 0: drop entries at offsets >= rd.truncate_to
 *            append rd.entries; fsync the log
 *         4. only now send rd.msgs (a vote grant or a fetch offset must never
 *            leave before the state and entries it reports are on disk)
 *         5. apply rd.committed in order; entries below rd.log_start may be deleted
 *         rn_raft_advance(r, &rd);
 *     }
 *
 * Between rn_raft_ready_get and rn_raft_advance no other function may be
 * called on r; every pointer in rd is valid until rn_raft_advance.
 */
#ifndef RN_BROKER_META_RAFT_H
#define RN_BROKER_META_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RN_RAFT_MAX_VOTERS 16
#define RN_RAFT_NONE       (-1) /* no node (voted-for, leader) */

typedef struct rn_raft rn_raft;

/* Roles; see the state diagram at the top of raft.c. */
typedef enum rn_raft_role {
    RN_RAFT_UNATTACHED,  /* knows an epoch but no leader (may have voted in it) */
    RN_RAFT_PROSPECTIVE, /* pre-vote candidate: asks without bumping the epoch */
    RN_RAFT_CANDIDATE,   /* epoch bumped, voted for itself, asks for votes */
    RN_RAFT_LEADER,
    RN_RAFT_FOLLOWER, /* knows the leader of its epoch and fetches from it */
    RN_RAFT_RESIGNED, /* was leader of its epoch, stepped down, waits for the next */
} rn_raft_role;

typedef enum rn_raft_entry_kind {
    RN_RAFT_ENTRY_DATA = 0,          /* a proposal: opaque bytes for the state machine */
    RN_RAFT_ENTRY_LEADER_CHANGE = 1, /* written by each new leader at the start of its epoch */
} rn_raft_entry_kind;

/* One log entry. `data` is owned by whoever holds the entry: borrowed when
 * passed in (the core copies what it keeps), valid until rn_raft_advance
 * when handed out. */
typedef struct rn_raft_entry {
    int64_t offset;
    int32_t epoch; /* the leader epoch that appended it (partition_leader_epoch) */
    uint8_t kind;  /* rn_raft_entry_kind */
    uint32_t len;
    const uint8_t *data;
} rn_raft_entry;

/* The durable quorum state (Kafka's quorum-state file). */
typedef struct rn_raft_quorum_state {
    int32_t epoch;
    int32_t voted_for; /* RN_RAFT_NONE, or the candidate voted for in `epoch` */
    int32_t leader_id; /* RN_RAFT_NONE, or the leader of `epoch` */
} rn_raft_quorum_state;

/* A state machine snapshot: it covers every entry below end_offset, and
 * `epoch` is the epoch of entry end_offset - 1 (0 when end_offset is 0). */
typedef struct rn_raft_snapshot {
    int64_t end_offset;
    int32_t epoch;
    const uint8_t *data;
    size_t len;
} rn_raft_snapshot;

typedef enum rn_raft_msg_type {
    RN_RAFT_MSG_VOTE_REQ = 1,
    RN_RAFT_MSG_VOTE_RESP,
    RN_RAFT_MSG_BEGIN_EPOCH_REQ,
    RN_RAFT_MSG_BEGIN_EPOCH_RESP,
    RN_RAFT_MSG_END_EPOCH_REQ,
    RN_RAFT_MSG_END_EPOCH_RESP,
    RN_RAFT_MSG_FETCH_REQ,
    RN_RAFT_MSG_FETCH_RESP,
    RN_RAFT_MSG_FETCH_SNAPSHOT_REQ,
    RN_RAFT_MSG_FETCH_SNAPSHOT_RESP,
} rn_raft_msg_type;

/* Response errors (rn_raft_msg.error). */
enum {
    RN_RAFT_OK = 0,
    RN_RAFT_ERR_NOT_LEADER = 1,   /* the receiver does not lead its epoch; see leader_id */
    RN_RAFT_ERR_FENCED_EPOCH = 2, /* the request's epoch is older than the receiver's */
    RN_RAFT_ERR_NOT_VOTER = 3,    /* a vote was asked of, or by, a node that is no voter */
    RN_RAFT_ERR_NO_SNAPSHOT = 4,  /* FetchSnapshot: the leader has no such snapshot */
};

/* A message: a plain struct, encoded by the caller for the wire. Fields not
 * used by a type are zero. Pointers inside are borrowed: valid for the call
 * of rn_raft_step that takes the message, or until rn_raft_advance for the
 * messages of a ready. */
typedef struct rn_raft_msg {
    uint8_t type; /* rn_raft_msg_type */
    int16_t error;
    int32_t from, to;
    int32_t epoch;     /* the sender's current epoch */
    int32_t leader_id; /* the leader of `epoch` as the sender knows it, or RN_RAFT_NONE */

    /* Vote: a pre-vote asks "would you vote for me in candidate_epoch"
     * without anyone changing state; a real vote has candidate_epoch == epoch. */
    bool pre_vote;
    bool granted; /* VOTE_RESP */
    int32_t candidate_epoch;
    int64_t last_offset; /* the candidate's log end offset */
    int32_t last_epoch;  /* the epoch of its last entry */

    /* Fetch: requests carry the position, responses echo it. */
    int64_t fetch_offset;
    int32_t last_fetched_epoch;
    int64_t hw;        /* FETCH_RESP: the leader's high watermark */
    int64_t log_start; /* FETCH_RESP: the leader's log start offset */
    /* FETCH_RESP: the follower's log diverges; truncate to at most
     * diverging_end_offset and fetch again (diverging_epoch >= 0 when set). */
    int32_t diverging_epoch;
    int64_t diverging_end_offset;
    /* FETCH_RESP: fetch_offset is below the log start: fetch this snapshot
     * (snapshot_end_offset >= 0 when set). FETCH_SNAPSHOT_REQ/RESP: its id. */
    int64_t snapshot_end_offset;
    int32_t snapshot_epoch;
    const rn_raft_entry *entries; /* FETCH_RESP */
    int n_entries;
    const uint8_t *snapshot_data; /* FETCH_SNAPSHOT_RESP: the whole snapshot */
    size_t snapshot_len;

    /* END_EPOCH_REQ: voters in the order the resigning leader prefers them
     * as its successor (most caught up first). */
    int32_t preferred[RN_RAFT_MAX_VOTERS];
    int n_preferred;
} rn_raft_msg;

/* Test-only switches that plant known bugs so the simulator can prove that
 * it finds them. Never set outside tests. */
enum {
    /* Commit by counting replicas of an entry of an older epoch (Raft figure 8). */
    RN_RAFT_UNSAFE_COMMIT_OLD_EPOCH = 1u << 0,
    /* Leave voted_for out of the durable state handed to the caller. */
    RN_RAFT_UNSAFE_VOTE_NOT_DURABLE = 1u << 1,
    /* Grant a second candidate a vote in the same epoch. */
    RN_RAFT_UNSAFE_DOUBLE_VOTE = 1u << 2,
    /* Leader serves entries without checking the follower's last fetched
     * epoch, so a follower never truncates a diverging tail. */
    RN_RAFT_UNSAFE_SKIP_DIVERGENCE = 1u << 3,
};

typedef struct rn_raft_config {
    int32_t node_id;
    const int32_t *voters; /* borrowed during rn_raft_new; ids >= 0, no duplicates */
    int n_voters;          /* 1..RN_RAFT_MAX_VOTERS; a node not listed is an observer */

    /* Timing (ms). Election timeouts are drawn from [election_timeout_ms,
     * 2 * election_timeout_ms). A follower that has heard nothing from its
     * leader for fetch_timeout_ms starts a (pre-)election; a leader that a
     * majority has not fetched from within fetch_timeout_ms resigns. A
     * follower polls every retry_backoff_ms when caught up, and every
     * request is retried after it. */
    int64_t election_timeout_ms;
    int64_t fetch_timeout_ms;
    int64_t retry_backoff_ms;
    int max_fetch_entries; /* per Fetch response; >= 1 */

    /* The caller's PRNG (e.g. seeded per node); called only from rn_raft_new,
     * rn_raft_step and rn_raft_tick. */
    uint64_t (*rand)(void *ctx);
    void *rand_ctx;

    int64_t now_ms; /* the time at rn_raft_new */

    /* What the node finds on disk at start (all optional, borrowed during
     * rn_raft_new): its quorum state, its latest snapshot and the log entries
     * after it (contiguous, starting at the snapshot's end offset or at 0).
     * The caller restores its state machine from the same snapshot. */
    const rn_raft_quorum_state *state;
    const rn_raft_snapshot *snapshot;
    const rn_raft_entry *entries;
    int64_t n_entries;

    unsigned unsafe_test_flags; /* RN_RAFT_UNSAFE_*, tests only */
} rn_raft_config;

/* What the node must do next; see the loop at the top of this file. An
 * array with a count of 0 may be NULL. */
typedef struct rn_raft_ready {
    bool state_changed;
    rn_raft_quorum_state state;       /* persist and sync first when state_changed */
    const rn_raft_snapshot *snapshot; /* non-NULL: install it (replaces log and state machine) */
    int64_t truncate_to;              /* >= 0: drop log entries at offsets >= truncate_to */
    const rn_raft_entry *entries;     /* append after truncating, then sync */
    int64_t n_entries;
    const rn_raft_msg *msgs; /* send only after all of the above is durable */
    int n_msgs;
    int64_t hw;                     /* high watermark: entries below it are committed */
    const rn_raft_entry *committed; /* apply in order: entries newly below hw */
    int64_t n_committed;
    int64_t log_start; /* entries below it are covered by a snapshot and may be deleted */
} rn_raft_ready;

/* A new node from cfg (copied). 0 and *out on success; -EINVAL with a message
 * in err for a bad config or restored state (voters, timeouts, entries not
 * contiguous or older than the state's epoch), -ENOMEM. */
int rn_raft_new(const rn_raft_config *cfg, rn_raft **out, char *err, size_t errlen);
void rn_raft_free(rn_raft *r);

/* Feed a message addressed to this node (borrowed for the call); the time
 * is that of the last rn_raft_tick. Messages from the past, duplicated or
 * reordered are expected and ignored or answered. Returns 0, or:
 *   -EINVAL  a malformed message (wrong `to`, unknown type, entries that do
 *            not follow our log);
 *   -EIO     the leader asks us to truncate committed entries, or names a
 *            divergence that is none (a broken quorum: the node refuses);
 *   -ENOMEM  entries could not be copied (the fetch is simply retried).
 * The reason is in rn_raft_errmsg. Whatever the result, take a ready after. */
int rn_raft_step(rn_raft *r, const rn_raft_msg *m);

/* Advance the clock to now_ms (never backwards): fires election, fetch,
 * retry and check-quorum timers. */
void rn_raft_tick(rn_raft *r, int64_t now_ms);

/* Leader only: append one entry of `len` bytes (copied) in the current epoch
 * (rn_raft_epoch). Its offset in *offset. It is committed when a ready's
 * `committed` holds an entry at that offset with that epoch; if the offset
 * commits with another epoch, leadership was lost and the proposal with it.
 * -RN_E_NOT_LEADER when not leader (rn_raft_leader says who is), -EINVAL for
 * len > UINT32_MAX, -ENOMEM. */
int rn_raft_propose(rn_raft *r, const void *data, size_t len, int64_t *offset);

/* Leader only: step down gracefully (EndQuorumEpoch to the voters, most
 * caught-up first) so the next election starts at once. -RN_E_NOT_LEADER. */
int rn_raft_resign(rn_raft *r);

/* The driver saw the leader's process go (its socket refused a connection):
 * a follower acts as if the fetch timeout had passed now, and stops counting
 * the leader as alive for pre-votes, so the survivors campaign at once
 * instead of a fetch timeout later. No effect in other roles. Safety never
 * depends on timing; the simulator calls it at random. */
void rn_raft_leader_unreachable(rn_raft *r);

/* The caller has durably stored a snapshot of its state machine covering
 * every entry below end_offset (data copied: the core serves it to followers
 * that fall behind the log start). Entries below end_offset are dropped and
 * the log start moves up. -EINVAL unless log_start < end_offset <= applied
 * offset, -ENOMEM. */
int rn_raft_compact(rn_raft *r, int64_t end_offset, const void *data, size_t len);

bool rn_raft_has_ready(const rn_raft *r);
/* Fill rd (pointers valid until rn_raft_advance). Out of memory, the ready
 * holds only the quorum state and the rest comes in the next one. */
void rn_raft_ready_get(rn_raft *r, rn_raft_ready *rd);
/* Everything in rd has been done: persisted, sent, applied. */
void rn_raft_advance(rn_raft *r, const rn_raft_ready *rd);

/* A voter as the leader sees it (for status and lag metrics). */
typedef struct rn_raft_voter_status {
    int32_t id;
    int64_t match;         /* its highest fetch offset in this epoch (leo for the leader) */
    int64_t last_fetch_ms; /* when it last fetched in this epoch, -1 never */
} rn_raft_voter_status;

/* Leader only: fill out[0..n_voters) and return n_voters; 0 when not leader. */
int rn_raft_voters_status(const rn_raft *r, rn_raft_voter_status out[RN_RAFT_MAX_VOTERS]);

rn_raft_role rn_raft_role_of(const rn_raft *r);
int32_t rn_raft_epoch(const rn_raft *r);
int32_t rn_raft_leader(const rn_raft *r); /* RN_RAFT_NONE when unknown */
int64_t rn_raft_hw(const rn_raft *r);
int64_t rn_raft_log_end(const rn_raft *r);
int64_t rn_raft_log_start(const rn_raft *r);
bool rn_raft_is_voter(const rn_raft *r);
const char *rn_raft_role_name(rn_raft_role role);
const char *rn_raft_msg_type_name(int type);
/* The last error's message ("" when none); valid until the next call. */
const char *rn_raft_errmsg(const rn_raft *r);

#endif
