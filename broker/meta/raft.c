/*
 * raft.c — the metadata quorum's Raft core (KIP-595 with KIP-996 pre-vote),
 * sans-I/O. The API and the caller's loop are in raft.h.
 *
 * Words: epoch = Raft's term; leo = log end offset (one past the last entry);
 * hw = high watermark (entries below it are committed); stable_end = the end
 * of what the caller has synced; log_start = the first entry held (entries
 * below are covered by the snapshot).
 *
 * Invariants (test_raft_sim.c checks 1-6 from the outside after every step):
 *  1. At most one leader per epoch: a voter votes at most once per epoch
 *     (voted_for is durable before the grant leaves: ready order), and a
 *     leader needs a majority of grants.
 *  2. Log matching: entries with the same offset and epoch are the same and
 *     so are their prefixes. A leader appends only at its own leo, in its
 *     epoch; a follower appends only after the leader has checked
 *     (fetch_offset, last_fetched_epoch) against its own log (check_fetch).
 *  3. Leader completeness: a vote (and a pre-vote) is granted only to a
 *     candidate whose (last_epoch, leo) is at least ours (log_ok).
 *  4. Commit: the leader moves hw to the offset a majority of voters holds
 *     durably (its own stable_end, the followers' fetch offsets) only when
 *     that offset is above the start of its epoch, i.e. covers an entry of
 *     its current epoch (Raft §5.4.2; maybe_commit). Each leader appends a
 *     LEADER_CHANGE entry first so this happens without a proposal.
 *  5. hw never goes down, and no node truncates below its hw (step -> -EIO).
 *  6. Durability order: the quorum state and entries of a ready are synced by
 *     the caller before its messages are sent, so every vote granted and every
 *     fetch offset reported survives a crash.
 *  7. Observers (not in the voter list) fetch and apply but never vote, are
 *     never asked, and do not count for commit or check-quorum.
 *  8. A pre-vote changes no durable state: only a majority of pre-votes
 *     bumps the epoch, so a partitioned voter rejoining cannot depose a
 *     healthy leader.
 *
 * Roles and the functions that move between them (voters; observers only
 * ever go Unattached <-> Follower):
 *
 *              election timeout: become_prospective
 *   Unattached ------------------------------------> Prospective <--+ election timeout:
 *     |   ^                                           |  |  |        | a new round
 *     |   | EndQuorumEpoch from our leader:           |  |  +--------+
 *     |   | become_unattached (the preferred          |  |
 *     |   | successor's timer fires at once)          |  | majority of pre-votes:
 *     |   |                                           |  v become_candidate (epoch+1,
 *     |   |    pre-vote refused by a voter that       | Candidate       votes for itself)
 *     |   |    hears from a live leader:              |  |  |
 *     |   |    become_follower                        |  |  | election timeout:
 *     |   |   +---------------------------------------+  |  +-> become_prospective
 *     v   |   v                                          | majority of votes:
 *   Follower ---- fetch timeout: become_prospective -->  v become_leader (LEADER_CHANGE
 *     ^                                               Leader             entry, Begin-
 *     |  BeginQuorumEpoch, or any message naming the    |                QuorumEpoch)
 *     |  leader of a newer epoch: become_follower;      | no majority fetched within the
 *     |  a newer epoch without a leader:                | fetch timeout (check quorum), or
 *     |  become_unattached (observe_epoch, from any     | rn_raft_resign: become_resigned
 *     |  role)                                          v (EndQuorumEpoch, preferred
 *     +------------------------------------------ Resigned   successors first)
 *                                                       | election timeout:
 *                                                       +-> become_prospective
 *
 * A node restarting (rn_raft_new) resumes from its stored quorum state: as
 * Follower of the stored leader, as Resigned if the stored leader is itself,
 * else Unattached (keeping its stored vote).
 *
 * Fetch validation (check_fetch, KIP-595): the leader looks up the largest
 * epoch E' <= the follower's last_fetched_epoch in its own log and where it
 * ends. If E' is that epoch and the fetch offset is not past its end, the
 * follower's log is a prefix of the leader's: send entries. Otherwise answer
 * "diverging (E', end)"; the follower truncates to the smaller of that end
 * and its own end of E' (on_fetch_resp) and fetches again, so a long
 * divergence is undone round by round. Below the log start, the answer is the
 * snapshot to fetch (FetchSnapshot), which replaces the follower's whole log.
 *
 * Pre-vote (KIP-996): changes no state anywhere; a voter grants it only if
 * the candidate's log is at least as up to date and it has not heard from a
 * leader within the fetch timeout (heard_leader_at: a message from the leader
 * itself, not merely being told who leads).
 *
 * Memory: the core holds the log since the last snapshot (one malloc per
 * entry for its bytes, freed on truncation and compaction) and the latest
 * snapshot's bytes; messages live in an outbox array reused across readies.
 * Fetch responses carry entries by offset range until rn_raft_ready_get turns
 * them into pointers into the log, so a log that grows (realloc) between a
 * step and the ready cannot leave a message pointing at freed memory.
 */
#include "broker/meta/raft.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"

typedef struct entry_slot {
    int32_t epoch;
    uint8_t kind;
    uint32_t len;
    uint8_t *data; /* owned */
} entry_slot;

typedef struct progress {
    int32_t id;
    int64_t match;         /* highest fetch offset validated in this epoch */
    int64_t last_fetch_ms; /* last fetch in this epoch, for check-quorum */
    bool fetched;          /* has fetched in this epoch */
    bool acked;            /* BeginQuorumEpoch / EndQuorumEpoch answered */
    bool granted;          /* Prospective/Candidate: vote granted */
    bool answered;         /* Prospective/Candidate: answered at all */
} progress;

struct rn_raft {
    int32_t id;
    int32_t voters[RN_RAFT_MAX_VOTERS];
    int n_voters;
    bool is_voter;
    int64_t election_timeout_ms, fetch_timeout_ms, retry_backoff_ms;
    int max_fetch_entries;
    uint64_t (*rand)(void *ctx);
    void *rand_ctx;
    unsigned unsafe;

    int64_t now;
    rn_raft_quorum_state st;
    bool st_dirty;
    rn_raft_role role;

    /* The log: view[i] is the entry at offset log_start + i. */
    entry_slot *log;
    int64_t n_log, cap_log;
    int64_t log_start;
    int32_t start_epoch; /* epoch of entry log_start - 1 (the snapshot's) */
    int64_t stable_end;  /* entries below are synced by the caller */
    int64_t truncate_to; /* pending truncation for the next ready, or -1 */
    int64_t hw;
    int64_t applied;
    int64_t reported_log_start;

    /* Latest snapshot (owned). */
    int64_t snap_end;
    int32_t snap_epoch;
    uint8_t *snap_data;
    size_t snap_len;
    bool snap_install; /* hand the snapshot to the caller in the next ready */
    bool ready_short;  /* the last ready held back entries and messages (no memory) */

    /* Timers (absolute ms; 0 = unset). */
    int64_t election_deadline;
    int64_t fetch_deadline;  /* follower: last response from the leader + fetch timeout */
    int64_t heard_leader_at; /* follower: last message from the leader itself, or -1 */
    int64_t next_fetch_at;   /* follower/observer: next Fetch */
    int64_t retry_at;        /* candidate/leader/resigned: resend requests */
    int64_t leader_since;
    int64_t epoch_start_offset; /* leader: offset of its LEADER_CHANGE entry */
    bool fetch_snapshot;        /* follower: fetch a snapshot instead of entries */
    int64_t want_snap_end;
    int32_t want_snap_epoch;

    progress peers[RN_RAFT_MAX_VOTERS]; /* indexed like voters[] */

    /* Outbox. For FETCH_RESP, entries are (fetch_offset, n_entries) until
     * ready_get resolves them. */
    rn_raft_msg *out;
    int n_out, cap_out;
    rn_raft_entry *view; /* ready: entries to append / committed / fetch responses */
    int64_t cap_view;
    rn_raft_snapshot ready_snap;

    char err[256];
};

/* ---------------------------------------------------------------- helpers */

static void set_err(rn_raft *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(rn_raft *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

static int64_t leo(const rn_raft *r)
{
    return r->log_start + r->n_log;
}

static int32_t last_epoch(const rn_raft *r)
{
    return r->n_log ? r->log[r->n_log - 1].epoch : r->start_epoch;
}

/* Epoch of the entry at off, the snapshot's for log_start - 1, -1 unknown. */
static int32_t epoch_at(const rn_raft *r, int64_t off)
{
    if (off >= r->log_start && off < leo(r))
        return r->log[off - r->log_start].epoch;
    if (off == r->log_start - 1)
        return r->start_epoch;
    if (off < 0)
        return 0;
    return -1;
}

static int voter_index(const rn_raft *r, int32_t id)
{
    for (int i = 0; i < r->n_voters; i++)
        if (r->voters[i] == id)
            return i;
    return -1;
}

static int majority(const rn_raft *r)
{
    return r->n_voters / 2 + 1;
}

static int64_t random_timeout(rn_raft *r)
{
    return r->election_timeout_ms +
           (int64_t)(r->rand(r->rand_ctx) % (uint64_t)r->election_timeout_ms);
}

static rn_raft_msg *new_msg(rn_raft *r, int type, int32_t to)
{
    if (r->n_out == r->cap_out) {
        int cap = r->cap_out ? r->cap_out * 2 : 16;
        rn_raft_msg *n = realloc(r->out, (size_t)cap * sizeof *n);
        if (!n)
            return NULL;
        r->out = n;
        r->cap_out = cap;
    }
    rn_raft_msg *m = &r->out[r->n_out++];
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)type;
    m->from = r->id;
    m->to = to;
    m->epoch = r->st.epoch;
    m->leader_id = r->st.leader_id;
    m->diverging_epoch = -1;
    m->snapshot_end_offset = -1;
    return m;
}

static void set_state(rn_raft *r, int32_t epoch, int32_t voted_for, int32_t leader_id)
{
    if (r->st.epoch != epoch || r->st.voted_for != voted_for || r->st.leader_id != leader_id) {
        r->st.epoch = epoch;
        r->st.voted_for = voted_for;
        r->st.leader_id = leader_id;
        r->st_dirty = true;
    }
}

static void reset_peers(rn_raft *r)
{
    for (int i = 0; i < r->n_voters; i++) {
        progress *p = &r->peers[i];
        int32_t id = r->voters[i];
        memset(p, 0, sizeof *p);
        p->id = id;
    }
}

/* Drop entries at offsets >= off (off >= log_start). */
static void log_truncate(rn_raft *r, int64_t off)
{
    while (leo(r) > off) {
        free(r->log[r->n_log - 1].data);
        r->n_log--;
    }
    if (r->stable_end > off)
        r->stable_end = off;
    if (r->truncate_to < 0 || r->truncate_to > off)
        r->truncate_to = off;
}

static int log_append(rn_raft *r, int32_t epoch, uint8_t kind, const void *data, uint32_t len)
{
    if (r->n_log == r->cap_log) {
        int64_t cap = r->cap_log ? r->cap_log * 2 : 64;
        entry_slot *n = realloc(r->log, (size_t)cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        r->log = n;
        r->cap_log = cap;
    }
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, data, len);
    }
    r->log[r->n_log++] = (entry_slot){.epoch = epoch, .kind = kind, .len = len, .data = copy};
    return 0;
}

/* Leader's lookup for a follower's last fetched epoch (KIP-595): the largest
 * epoch <= `epoch` in our log and the offset where it ends. -1 in *found when
 * even the snapshot is newer. */
static void end_offset_for_epoch(const rn_raft *r, int32_t epoch, int32_t *found, int64_t *end)
{
    for (int64_t i = r->n_log - 1; i >= 0; i--) {
        if (r->log[i].epoch <= epoch) {
            *found = r->log[i].epoch;
            *end = r->log_start + i + 1;
            return;
        }
    }
    if (r->start_epoch <= epoch) {
        *found = r->start_epoch;
        *end = r->log_start;
        return;
    }
    *found = -1;
    *end = -1;
}

/* --------------------------------------------------------------- roles */

static void send_fetch(rn_raft *r, int32_t to);

static void become_unattached(rn_raft *r, int32_t epoch)
{
    int32_t voted = epoch == r->st.epoch ? r->st.voted_for : RN_RAFT_NONE;
    set_state(r, epoch, voted, RN_RAFT_NONE);
    r->role = RN_RAFT_UNATTACHED;
    r->election_deadline = r->now + random_timeout(r);
    r->fetch_snapshot = false;
    r->next_fetch_at = r->now; /* an observer looks for the leader at once */
}

static void become_follower(rn_raft *r, int32_t epoch, int32_t leader)
{
    int32_t voted = epoch == r->st.epoch ? r->st.voted_for : RN_RAFT_NONE;
    if (r->role != RN_RAFT_FOLLOWER || r->st.epoch != epoch || r->st.leader_id != leader)
        r->heard_leader_at = -1; /* being told of a leader is not hearing from it */
    set_state(r, epoch, voted, leader);
    r->role = RN_RAFT_FOLLOWER;
    r->fetch_deadline = r->now + r->fetch_timeout_ms;
    r->fetch_snapshot = false;
    send_fetch(r, leader);
}

static void send_vote_requests(rn_raft *r, bool pre_vote)
{
    for (int i = 0; i < r->n_voters; i++) {
        progress *p = &r->peers[i];
        if (p->id == r->id || p->answered)
            continue;
        rn_raft_msg *m = new_msg(r, RN_RAFT_MSG_VOTE_REQ, p->id);
        if (!m)
            return;
        /* Name no leader: a voter behind us must not take the one we are
         * giving up on as alive in our epoch. */
        m->leader_id = RN_RAFT_NONE;
        m->pre_vote = pre_vote;
        m->candidate_epoch = pre_vote ? r->st.epoch + 1 : r->st.epoch;
        m->last_offset = leo(r);
        m->last_epoch = last_epoch(r);
    }
}

static int count_granted(const rn_raft *r)
{
    int g = 0;
    for (int i = 0; i < r->n_voters; i++)
        g += r->peers[i].granted;
    return g;
}

static void become_leader(rn_raft *r);

static void become_candidate(rn_raft *r)
{
    set_state(r, r->st.epoch + 1, r->id, RN_RAFT_NONE);
    r->role = RN_RAFT_CANDIDATE;
    reset_peers(r);
    int self = voter_index(r, r->id);
    r->peers[self].granted = r->peers[self].answered = true;
    r->election_deadline = r->now + random_timeout(r);
    r->retry_at = r->now + r->retry_backoff_ms;
    if (count_granted(r) >= majority(r)) {
        become_leader(r);
        return;
    }
    send_vote_requests(r, false);
}

static void become_prospective(rn_raft *r)
{
    r->role = RN_RAFT_PROSPECTIVE;
    reset_peers(r);
    int self = voter_index(r, r->id);
    r->peers[self].granted = r->peers[self].answered = true;
    r->election_deadline = r->now + random_timeout(r);
    if (count_granted(r) >= majority(r)) {
        become_candidate(r);
        return;
    }
    send_vote_requests(r, true);
}

static void send_begin_epoch(rn_raft *r)
{
    for (int i = 0; i < r->n_voters; i++) {
        progress *p = &r->peers[i];
        if (p->id == r->id || p->acked || p->fetched)
            continue;
        new_msg(r, RN_RAFT_MSG_BEGIN_EPOCH_REQ, p->id);
    }
}

static void become_leader(rn_raft *r)
{
    set_state(r, r->st.epoch, r->st.voted_for, r->id);
    r->role = RN_RAFT_LEADER;
    reset_peers(r);
    r->leader_since = r->now;
    r->retry_at = r->now + r->retry_backoff_ms;
    r->epoch_start_offset = leo(r);
    /* The epoch's first entry: lets the leader commit without waiting for a
     * proposal (invariant 4). On -ENOMEM the leader commits nothing until it
     * resigns by check-quorum, which is safe. */
    (void)log_append(r, r->st.epoch, RN_RAFT_ENTRY_LEADER_CHANGE, NULL, 0);
    send_begin_epoch(r);
}

static int cmp_match_desc(const void *a, const void *b)
{
    const progress *x = a, *y = b;
    return (x->match < y->match) - (x->match > y->match);
}

static void send_end_epoch(rn_raft *r)
{
    progress sorted[RN_RAFT_MAX_VOTERS];
    memcpy(sorted, r->peers, sizeof sorted);
    qsort(sorted, (size_t)r->n_voters, sizeof sorted[0], cmp_match_desc);
    for (int i = 0; i < r->n_voters; i++) {
        progress *p = &r->peers[i];
        if (p->id == r->id || p->acked)
            continue;
        rn_raft_msg *m = new_msg(r, RN_RAFT_MSG_END_EPOCH_REQ, p->id);
        if (!m)
            return;
        for (int j = 0; j < r->n_voters; j++)
            if (sorted[j].id != r->id)
                m->preferred[m->n_preferred++] = sorted[j].id;
    }
}

static void become_resigned(rn_raft *r)
{
    r->role = RN_RAFT_RESIGNED;
    for (int i = 0; i < r->n_voters; i++)
        r->peers[i].acked = false;
    r->election_deadline = r->now + random_timeout(r);
    r->retry_at = r->now + r->retry_backoff_ms;
    send_end_epoch(r);
}

/* A message shows a newer epoch: follow its leader if it names one (never
 * ourselves: that would be a leader we do not remember being). */
static void observe_epoch(rn_raft *r, int32_t epoch, int32_t leader)
{
    if (leader != RN_RAFT_NONE && leader != r->id)
        become_follower(r, epoch, leader);
    else
        become_unattached(r, epoch);
}

/* --------------------------------------------------------------- commit */

static void maybe_commit(rn_raft *r)
{
    if (r->role != RN_RAFT_LEADER)
        return;
    int64_t offs[RN_RAFT_MAX_VOTERS];
    for (int i = 0; i < r->n_voters; i++)
        offs[i] = r->voters[i] == r->id ? r->stable_end : r->peers[i].match;
    /* The majority-th largest offset is held by a majority. */
    for (int i = 1; i < r->n_voters; i++)
        for (int j = i; j > 0 && offs[j] > offs[j - 1]; j--) {
            int64_t t = offs[j];
            offs[j] = offs[j - 1];
            offs[j - 1] = t;
        }
    int64_t cand = offs[majority(r) - 1];
    if (cand <= r->hw)
        return;
    if (cand <= r->epoch_start_offset && !(r->unsafe & RN_RAFT_UNSAFE_COMMIT_OLD_EPOCH))
        return; /* no entry of our epoch in it yet (Raft §5.4.2) */
    r->hw = cand;
}

/* ---------------------------------------------------------------- fetch */

static void send_fetch(rn_raft *r, int32_t to)
{
    rn_raft_msg *m;
    if (r->fetch_snapshot) {
        m = new_msg(r, RN_RAFT_MSG_FETCH_SNAPSHOT_REQ, to);
        if (!m)
            return;
        m->snapshot_end_offset = r->want_snap_end;
        m->snapshot_epoch = r->want_snap_epoch;
    } else {
        m = new_msg(r, RN_RAFT_MSG_FETCH_REQ, to);
        if (!m)
            return;
        m->fetch_offset = leo(r);
        m->last_fetched_epoch = last_epoch(r);
    }
    r->next_fetch_at = r->now + r->retry_backoff_ms;
}

/* Leader: is (fetch_offset, last_fetched_epoch) a prefix of our log? Sets the
 * response's diverging or snapshot fields when not. */
static bool check_fetch(rn_raft *r, const rn_raft_msg *q, rn_raft_msg *m)
{
    int64_t off = q->fetch_offset;
    if (off < r->log_start ||
        (off == r->log_start && off > 0 && q->last_fetched_epoch != r->start_epoch)) {
        if (r->snap_data || r->snap_end > 0) {
            m->snapshot_end_offset = r->snap_end;
            m->snapshot_epoch = r->snap_epoch;
            return false;
        }
    }
    if (r->unsafe & RN_RAFT_UNSAFE_SKIP_DIVERGENCE) {
        if (off <= leo(r))
            return true;
    }
    int32_t found;
    int64_t end;
    end_offset_for_epoch(r, q->last_fetched_epoch, &found, &end);
    if (found < 0) {
        m->snapshot_end_offset = r->snap_end;
        m->snapshot_epoch = r->snap_epoch;
        return false;
    }
    if (found == q->last_fetched_epoch && off <= end)
        return true;
    m->diverging_epoch = found;
    m->diverging_end_offset = end < off ? end : off;
    return false;
}

static void on_fetch_req(rn_raft *r, const rn_raft_msg *q)
{
    int type =
        q->type == RN_RAFT_MSG_FETCH_REQ ? RN_RAFT_MSG_FETCH_RESP : RN_RAFT_MSG_FETCH_SNAPSHOT_RESP;
    rn_raft_msg *m = new_msg(r, type, q->from);
    if (!m)
        return;
    m->fetch_offset = q->fetch_offset;
    m->last_fetched_epoch = q->last_fetched_epoch;
    if (q->epoch < r->st.epoch) {
        m->error = RN_RAFT_ERR_FENCED_EPOCH;
        return;
    }
    if (r->role != RN_RAFT_LEADER) {
        m->error = RN_RAFT_ERR_NOT_LEADER;
        if (r->role == RN_RAFT_RESIGNED)
            m->leader_id = RN_RAFT_NONE;
        return;
    }
    m->hw = r->hw;
    m->log_start = r->log_start;
    int vi = voter_index(r, q->from);
    if (vi >= 0) {
        r->peers[vi].last_fetch_ms = r->now;
        r->peers[vi].fetched = true;
    }
    if (type == RN_RAFT_MSG_FETCH_SNAPSHOT_RESP) {
        if (r->snap_end <= 0 || r->snap_end < q->snapshot_end_offset) {
            m->error = RN_RAFT_ERR_NO_SNAPSHOT;
            return;
        }
        /* snapshot fields are filled in at ready time (the current snapshot) */
        m->snapshot_end_offset = r->snap_end;
        m->snapshot_epoch = r->snap_epoch;
        return;
    }
    if (!check_fetch(r, q, m))
        return;
    if (vi >= 0 && q->fetch_offset > r->peers[vi].match) {
        r->peers[vi].match = q->fetch_offset;
        maybe_commit(r);
        m->hw = r->hw;
    }
    int64_t n = leo(r) - q->fetch_offset;
    if (n > r->max_fetch_entries)
        n = r->max_fetch_entries;
    m->n_entries = (int)n; /* resolved against fetch_offset in ready_get */
}

static int on_fetch_resp(rn_raft *r, const rn_raft_msg *m)
{
    if (r->role != RN_RAFT_FOLLOWER && !(r->role == RN_RAFT_UNATTACHED && !r->is_voter))
        return 0;
    if (m->error == RN_RAFT_ERR_NOT_LEADER || m->error == RN_RAFT_ERR_FENCED_EPOCH) {
        /* Same epoch (newer ones were handled by observe_epoch): learn the
         * leader if the sender knows it. */
        if (m->epoch == r->st.epoch && m->leader_id != RN_RAFT_NONE && m->leader_id != r->id &&
            r->role == RN_RAFT_UNATTACHED)
            become_follower(r, m->epoch, m->leader_id);
        return 0;
    }
    if (m->error || m->epoch != r->st.epoch)
        return 0;
    if (r->role == RN_RAFT_UNATTACHED) {
        /* An observer's discovery fetch reached the leader itself. */
        if (m->leader_id != m->from)
            return 0;
        become_follower(r, m->epoch, m->from);
        return 0;
    }
    if (m->from != r->st.leader_id)
        return 0;
    r->fetch_deadline = r->now + r->fetch_timeout_ms;
    r->heard_leader_at = r->now;

    if (m->type == RN_RAFT_MSG_FETCH_SNAPSHOT_RESP) {
        /* The snapshot replaces the whole log; it only ever covers committed
         * entries, so it is taken whenever it reaches past our hw. */
        if (!r->fetch_snapshot || m->snapshot_end_offset <= r->hw || !m->snapshot_data) {
            r->fetch_snapshot = false; /* fetch again after the backoff */
            return 0;
        }
        uint8_t *copy = malloc(m->snapshot_len ? m->snapshot_len : 1);
        if (!copy)
            return -ENOMEM;
        if (m->snapshot_len)
            memcpy(copy, m->snapshot_data, m->snapshot_len);
        log_truncate(r, r->log_start);
        free(r->snap_data);
        r->snap_data = copy;
        r->snap_len = m->snapshot_len;
        r->snap_end = m->snapshot_end_offset;
        r->snap_epoch = m->snapshot_epoch;
        r->log_start = r->stable_end = r->snap_end;
        r->start_epoch = r->snap_epoch;
        r->truncate_to = -1; /* the install replaces the whole log */
        r->hw = r->applied = r->snap_end;
        r->snap_install = true;
        r->fetch_snapshot = false;
        send_fetch(r, r->st.leader_id);
        return 0;
    }

    /* Only the answer to where we stand now counts; others are stale. */
    if (m->fetch_offset != leo(r) || m->last_fetched_epoch != last_epoch(r))
        return 0;
    if (m->snapshot_end_offset >= 0) {
        r->fetch_snapshot = true;
        r->want_snap_end = m->snapshot_end_offset;
        r->want_snap_epoch = m->snapshot_epoch;
        send_fetch(r, r->st.leader_id);
        return 0;
    }
    if (m->diverging_epoch >= 0) {
        /* Truncate to where both logs may still agree: the leader's end of
         * the diverging epoch, or ours if smaller (our entries there may be
         * of a later epoch than the leader's). The next fetch checks again,
         * so a long divergence is undone round by round. */
        int32_t found;
        int64_t to, ours;
        end_offset_for_epoch(r, m->diverging_epoch, &found, &ours);
        to = m->diverging_end_offset;
        if (found < 0)
            ours = r->log_start;
        if (ours < to)
            to = ours;
        if (to >= leo(r)) {
            set_err(r, "leader %d epoch %d: diverging at offset %lld, not below our end %lld",
                    m->from, m->epoch, (long long)to, (long long)leo(r));
            return -EIO;
        }
        if (to < r->hw || to < r->log_start) {
            set_err(r, "leader %d epoch %d: diverging at offset %lld below high watermark %lld",
                    m->from, m->epoch, (long long)to, (long long)r->hw);
            return -EIO;
        }
        log_truncate(r, to);
        send_fetch(r, r->st.leader_id);
        return 0;
    }
    for (int i = 0; i < m->n_entries; i++) {
        const rn_raft_entry *e = &m->entries[i];
        if (e->offset != leo(r) || e->epoch < last_epoch(r) || e->epoch > m->epoch) {
            set_err(r, "leader %d: entry at offset %lld epoch %d does not follow the log", m->from,
                    (long long)e->offset, e->epoch);
            return -EINVAL;
        }
        int rc = log_append(r, e->epoch, e->kind, e->data, e->len);
        if (rc < 0)
            return rc;
    }
    int64_t hw = m->hw < leo(r) ? m->hw : leo(r);
    if (hw > r->hw)
        r->hw = hw;
    if (m->n_entries > 0)
        send_fetch(r, r->st.leader_id); /* more may be waiting */
    else
        r->next_fetch_at = r->now + r->retry_backoff_ms;
    return 0;
}

/* ----------------------------------------------------------------- votes */

static bool log_ok(const rn_raft *r, int32_t cand_last_epoch, int64_t cand_leo)
{
    int32_t le = last_epoch(r);
    return cand_last_epoch > le || (cand_last_epoch == le && cand_leo >= leo(r));
}

static void on_vote_req(rn_raft *r, const rn_raft_msg *q)
{
    rn_raft_msg *m = new_msg(r, RN_RAFT_MSG_VOTE_RESP, q->from);
    if (!m)
        return;
    m->pre_vote = q->pre_vote;
    m->candidate_epoch = q->candidate_epoch;
    if (!r->is_voter || voter_index(r, q->from) < 0) {
        m->error = RN_RAFT_ERR_NOT_VOTER;
        return;
    }
    if (q->epoch < r->st.epoch) {
        m->error = RN_RAFT_ERR_FENCED_EPOCH;
        return;
    }
    bool ok = log_ok(r, q->last_epoch, q->last_offset);
    if (q->pre_vote) {
        /* KIP-996: no state changes; refuse while our leader is alive. */
        bool leader_alive =
            r->role == RN_RAFT_LEADER || (r->role == RN_RAFT_FOLLOWER && r->heard_leader_at >= 0 &&
                                          r->now - r->heard_leader_at < r->fetch_timeout_ms);
        m->granted = ok && q->candidate_epoch > r->st.epoch && !leader_alive;
        return;
    }
    if (q->candidate_epoch != r->st.epoch)
        return;
    if (r->role != RN_RAFT_UNATTACHED && r->role != RN_RAFT_PROSPECTIVE)
        return; /* a leader, follower, candidate or resigned leader of this epoch */
    if (r->st.leader_id != RN_RAFT_NONE)
        return; /* the epoch has a leader already */
    bool free_vote = r->st.voted_for == RN_RAFT_NONE || r->st.voted_for == q->from ||
                     (r->unsafe & RN_RAFT_UNSAFE_DOUBLE_VOTE);
    if (!free_vote || !ok)
        return;
    set_state(r, r->st.epoch, q->from, RN_RAFT_NONE);
    r->election_deadline = r->now + random_timeout(r);
    m->granted = true;
}

static void on_vote_resp(rn_raft *r, const rn_raft_msg *m)
{
    if (m->epoch != r->st.epoch)
        return;
    int vi = voter_index(r, m->from);
    if (vi < 0)
        return;
    if (m->pre_vote && r->role == RN_RAFT_PROSPECTIVE && m->candidate_epoch == r->st.epoch + 1) {
        if (!m->granted && m->leader_id != RN_RAFT_NONE && m->leader_id != r->id) {
            become_follower(r, m->epoch, m->leader_id); /* it knows a live leader */
            return;
        }
        r->peers[vi].answered = true;
        r->peers[vi].granted |= m->granted;
        if (count_granted(r) >= majority(r))
            become_candidate(r);
        return;
    }
    if (!m->pre_vote && r->role == RN_RAFT_CANDIDATE && m->candidate_epoch == r->st.epoch) {
        r->peers[vi].answered = true;
        r->peers[vi].granted |= m->granted;
        if (count_granted(r) >= majority(r))
            become_leader(r);
    }
}

/* ------------------------------------------------------- begin/end epoch */

static void on_begin_epoch(rn_raft *r, const rn_raft_msg *q)
{
    if (q->epoch == r->st.epoch && q->from != r->id) {
        if (r->role == RN_RAFT_UNATTACHED || r->role == RN_RAFT_PROSPECTIVE ||
            r->role == RN_RAFT_CANDIDATE ||
            (r->role == RN_RAFT_FOLLOWER && r->st.leader_id != q->from))
            become_follower(r, q->epoch, q->from);
        if (r->role == RN_RAFT_FOLLOWER && r->st.leader_id == q->from)
            r->heard_leader_at = r->now;
    }
    new_msg(r, RN_RAFT_MSG_BEGIN_EPOCH_RESP, q->from);
}

static void on_end_epoch(rn_raft *r, const rn_raft_msg *q)
{
    if (q->epoch == r->st.epoch && r->st.leader_id == q->from &&
        (r->role == RN_RAFT_FOLLOWER || r->role == RN_RAFT_UNATTACHED)) {
        become_unattached(r, r->st.epoch);
        if (r->is_voter) {
            /* The most caught-up voter goes first; the others back off by
             * their place in the list so they rarely split the vote. */
            int pos = q->n_preferred;
            for (int i = 0; i < q->n_preferred; i++)
                if (q->preferred[i] == r->id)
                    pos = i;
            r->election_deadline =
                r->now + (pos == 0 ? 0 : pos * r->retry_backoff_ms * 2 + random_timeout(r) / 4);
        }
    }
    new_msg(r, RN_RAFT_MSG_END_EPOCH_RESP, q->from);
}

/* ------------------------------------------------------------------ API */

const char *rn_raft_role_name(rn_raft_role role)
{
    static const char *names[] = {"unattached", "prospective", "candidate",
                                  "leader",     "follower",    "resigned"};
    return (unsigned)role < 6 ? names[role] : "?";
}

const char *rn_raft_msg_type_name(int type)
{
    static const char *names[] = {"?",
                                  "Vote",
                                  "VoteResp",
                                  "BeginEpoch",
                                  "BeginEpochResp",
                                  "EndEpoch",
                                  "EndEpochResp",
                                  "Fetch",
                                  "FetchResp",
                                  "FetchSnapshot",
                                  "FetchSnapshotResp"};
    return type >= 1 && type <= 10 ? names[type] : "?";
}

int rn_raft_new(const rn_raft_config *cfg, rn_raft **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->n_voters < 1 || cfg->n_voters > RN_RAFT_MAX_VOTERS) {
        snprintf(err, errlen, "raft: %d voters (1..%d)", cfg->n_voters, RN_RAFT_MAX_VOTERS);
        return -EINVAL;
    }
    if (cfg->election_timeout_ms <= 0 || cfg->fetch_timeout_ms <= 0 || cfg->retry_backoff_ms <= 0 ||
        cfg->max_fetch_entries < 1 || !cfg->rand) {
        snprintf(err, errlen, "raft: timeouts, max_fetch_entries and rand must be set");
        return -EINVAL;
    }
    for (int i = 0; i < cfg->n_voters; i++)
        for (int j = 0; j < i; j++)
            if (cfg->voters[i] == cfg->voters[j] || cfg->voters[i] < 0) {
                snprintf(err, errlen, "raft: voter id %d invalid or listed twice", cfg->voters[i]);
                return -EINVAL;
            }
    rn_raft *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->id = cfg->node_id;
    memcpy(r->voters, cfg->voters, (size_t)cfg->n_voters * sizeof r->voters[0]);
    r->n_voters = cfg->n_voters;
    r->is_voter = voter_index(r, r->id) >= 0;
    r->election_timeout_ms = cfg->election_timeout_ms;
    r->fetch_timeout_ms = cfg->fetch_timeout_ms;
    r->retry_backoff_ms = cfg->retry_backoff_ms;
    r->max_fetch_entries = cfg->max_fetch_entries;
    r->rand = cfg->rand;
    r->rand_ctx = cfg->rand_ctx;
    r->unsafe = cfg->unsafe_test_flags;
    r->now = cfg->now_ms;
    r->truncate_to = -1;
    r->st = (rn_raft_quorum_state){0, RN_RAFT_NONE, RN_RAFT_NONE};
    if (cfg->state)
        r->st = *cfg->state;
    if (cfg->snapshot && cfg->snapshot->end_offset > 0) {
        const rn_raft_snapshot *s = cfg->snapshot;
        r->snap_data = malloc(s->len ? s->len : 1);
        if (!r->snap_data)
            goto fail_nomem;
        if (s->len)
            memcpy(r->snap_data, s->data, s->len);
        r->snap_len = s->len;
        r->snap_end = r->log_start = s->end_offset;
        r->snap_epoch = r->start_epoch = s->epoch;
    }
    for (int64_t i = 0; i < cfg->n_entries; i++) {
        const rn_raft_entry *e = &cfg->entries[i];
        if (e->offset != leo(r) || e->epoch < last_epoch(r) || e->epoch > r->st.epoch) {
            snprintf(err, errlen, "raft: restored entry %lld (offset %lld epoch %d) out of order",
                     (long long)i, (long long)e->offset, e->epoch);
            rn_raft_free(r);
            return -EINVAL;
        }
        if (log_append(r, e->epoch, e->kind, e->data, e->len) < 0)
            goto fail_nomem;
    }
    r->stable_end = leo(r);
    r->hw = r->applied = r->reported_log_start = r->log_start;
    reset_peers(r);
    /* Where we were: a leader comes back resigned (its followers' progress is
     * gone), a follower follows the same leader, anyone else waits. */
    if (r->st.leader_id == r->id) {
        r->role = RN_RAFT_RESIGNED;
        r->election_deadline = r->now + random_timeout(r);
        r->retry_at = r->now;
    } else if (r->st.leader_id != RN_RAFT_NONE) {
        become_follower(r, r->st.epoch, r->st.leader_id);
    } else {
        become_unattached(r, r->st.epoch);
    }
    r->st_dirty = false; /* nothing new to persist */
    *out = r;
    return 0;

fail_nomem:
    rn_raft_free(r);
    snprintf(err, errlen, "raft: out of memory");
    return -ENOMEM;
}

void rn_raft_free(rn_raft *r)
{
    if (!r)
        return;
    for (int64_t i = 0; i < r->n_log; i++)
        free(r->log[i].data);
    free(r->log);
    free(r->snap_data);
    free(r->out);
    free(r->view);
    free(r);
}

int rn_raft_step(rn_raft *r, const rn_raft_msg *m)
{
    r->err[0] = '\0';
    if (m->to != r->id || m->type < RN_RAFT_MSG_VOTE_REQ ||
        m->type > RN_RAFT_MSG_FETCH_SNAPSHOT_RESP || m->n_entries < 0 ||
        (m->n_entries > 0 && !m->entries)) {
        set_err(r, "malformed message type %d from %d", m->type, m->from);
        return -EINVAL;
    }
    bool request = m->type == RN_RAFT_MSG_VOTE_REQ || m->type == RN_RAFT_MSG_BEGIN_EPOCH_REQ ||
                   m->type == RN_RAFT_MSG_END_EPOCH_REQ || m->type == RN_RAFT_MSG_FETCH_REQ ||
                   m->type == RN_RAFT_MSG_FETCH_SNAPSHOT_REQ;
    if (m->epoch > r->st.epoch) {
        /* The sender of a request is never the leader it names for the
         * epoch unless it says so with BeginQuorumEpoch. */
        int32_t leader = m->leader_id;
        if (m->type == RN_RAFT_MSG_BEGIN_EPOCH_REQ)
            leader = m->from;
        else if (request && leader == m->from)
            leader = RN_RAFT_NONE;
        observe_epoch(r, m->epoch, leader);
    } else if (m->epoch < r->st.epoch && !request) {
        return 0; /* a response from the past */
    }
    switch (m->type) {
    case RN_RAFT_MSG_VOTE_REQ:
        on_vote_req(r, m);
        return 0;
    case RN_RAFT_MSG_VOTE_RESP:
        on_vote_resp(r, m);
        return 0;
    case RN_RAFT_MSG_BEGIN_EPOCH_REQ:
        on_begin_epoch(r, m);
        return 0;
    case RN_RAFT_MSG_END_EPOCH_REQ:
        on_end_epoch(r, m);
        return 0;
    case RN_RAFT_MSG_BEGIN_EPOCH_RESP:
    case RN_RAFT_MSG_END_EPOCH_RESP: {
        int vi = voter_index(r, m->from);
        if (vi >= 0 && m->epoch == r->st.epoch)
            r->peers[vi].acked = true;
        return 0;
    }
    case RN_RAFT_MSG_FETCH_REQ:
    case RN_RAFT_MSG_FETCH_SNAPSHOT_REQ:
        on_fetch_req(r, m);
        return 0;
    default:
        return on_fetch_resp(r, m);
    }
}

void rn_raft_tick(rn_raft *r, int64_t now_ms)
{
    if (now_ms > r->now)
        r->now = now_ms;
    int64_t now = r->now;
    switch (r->role) {
    case RN_RAFT_UNATTACHED:
        if (r->is_voter) {
            if (now >= r->election_deadline)
                become_prospective(r);
        } else if (now >= r->next_fetch_at) {
            /* Observer: ask a random voter who leads. */
            int32_t to = r->voters[r->rand(r->rand_ctx) % (uint64_t)r->n_voters];
            send_fetch(r, to);
        }
        break;
    case RN_RAFT_FOLLOWER:
        if (now >= r->fetch_deadline) {
            if (r->is_voter)
                become_prospective(r);
            else
                become_unattached(r, r->st.epoch);
        } else if (now >= r->next_fetch_at) {
            send_fetch(r, r->st.leader_id);
        }
        break;
    case RN_RAFT_PROSPECTIVE:
        if (now >= r->election_deadline)
            become_prospective(r);
        break;
    case RN_RAFT_CANDIDATE:
        if (now >= r->election_deadline) {
            become_prospective(r);
        } else if (now >= r->retry_at) {
            r->retry_at = now + r->retry_backoff_ms;
            send_vote_requests(r, false);
        }
        break;
    case RN_RAFT_LEADER: {
        if (now - r->leader_since >= r->fetch_timeout_ms) {
            int alive = 0;
            for (int i = 0; i < r->n_voters; i++)
                if (r->voters[i] == r->id ||
                    (r->peers[i].fetched && now - r->peers[i].last_fetch_ms < r->fetch_timeout_ms))
                    alive++;
            if (alive < majority(r)) {
                become_resigned(r);
                break;
            }
        }
        if (now >= r->retry_at) {
            r->retry_at = now + r->retry_backoff_ms;
            send_begin_epoch(r);
        }
        break;
    }
    case RN_RAFT_RESIGNED:
        if (now >= r->election_deadline) {
            become_prospective(r);
        } else if (now >= r->retry_at) {
            r->retry_at = now + r->retry_backoff_ms;
            send_end_epoch(r);
        }
        break;
    }
}

int rn_raft_propose(rn_raft *r, const void *data, size_t len, int64_t *offset)
{
    if (r->role != RN_RAFT_LEADER)
        return -RN_E_NOT_LEADER;
    if (len > UINT32_MAX)
        return -EINVAL;
    int64_t off = leo(r);
    int rc = log_append(r, r->st.epoch, RN_RAFT_ENTRY_DATA, data, (uint32_t)len);
    if (rc < 0)
        return rc;
    if (offset)
        *offset = off;
    return 0;
}

int rn_raft_resign(rn_raft *r)
{
    if (r->role != RN_RAFT_LEADER)
        return -RN_E_NOT_LEADER;
    become_resigned(r);
    return 0;
}

int rn_raft_compact(rn_raft *r, int64_t end_offset, const void *data, size_t len)
{
    if (end_offset <= r->log_start || end_offset > r->applied || end_offset > r->stable_end)
        return -EINVAL;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    if (len)
        memcpy(copy, data, len);
    free(r->snap_data);
    r->snap_data = copy;
    r->snap_len = len;
    r->snap_end = end_offset;
    r->snap_epoch = epoch_at(r, end_offset - 1);
    int64_t drop = end_offset - r->log_start;
    for (int64_t i = 0; i < drop; i++)
        free(r->log[i].data);
    memmove(r->log, r->log + drop, (size_t)(r->n_log - drop) * sizeof r->log[0]);
    r->n_log -= drop;
    r->start_epoch = r->snap_epoch;
    r->log_start = end_offset;
    return 0;
}

void rn_raft_leader_unreachable(rn_raft *r)
{
    if (r->role != RN_RAFT_FOLLOWER)
        return;
    r->fetch_deadline = r->now;
    r->heard_leader_at = -1;
}

bool rn_raft_has_ready(const rn_raft *r)
{
    return r->st_dirty || r->snap_install || r->truncate_to >= 0 || r->stable_end < leo(r) ||
           r->n_out > 0 || r->applied < r->hw || r->reported_log_start != r->log_start;
}

static rn_raft_entry *view_at(rn_raft *r, int64_t need)
{
    if (need > r->cap_view) {
        int64_t cap = r->cap_view ? r->cap_view : 64;
        while (cap < need)
            cap *= 2;
        rn_raft_entry *v = realloc(r->view, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        r->view = v;
        r->cap_view = cap;
    }
    return r->view;
}

static void fill(rn_raft *r, rn_raft_entry *dst, int64_t from, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const entry_slot *s = &r->log[from + i - r->log_start];
        dst[i] = (rn_raft_entry){from + i, s->epoch, s->kind, s->len, s->data};
    }
}

void rn_raft_ready_get(rn_raft *r, rn_raft_ready *rd)
{
    memset(rd, 0, sizeof *rd);
    rd->state_changed = r->st_dirty;
    rd->state = r->st;
    if (r->unsafe & RN_RAFT_UNSAFE_VOTE_NOT_DURABLE)
        rd->state.voted_for = RN_RAFT_NONE;
    if (r->snap_install) {
        r->ready_snap = (rn_raft_snapshot){r->snap_end, r->snap_epoch, r->snap_data, r->snap_len};
        rd->snapshot = &r->ready_snap;
    }
    rd->truncate_to = r->truncate_to;
    rd->hw = r->hw;
    rd->log_start = r->log_start;

    /* One view array holds, in order: new entries, committed entries, and the
     * entries of each fetch response. */
    int64_t from = r->stable_end > r->log_start ? r->stable_end : r->log_start;
    int64_t n_new = leo(r) - from;
    int64_t c_from = r->applied > r->log_start ? r->applied : r->log_start;
    int64_t c_to = r->hw < leo(r) ? r->hw : leo(r);
    int64_t n_com = c_to > c_from ? c_to - c_from : 0;
    int64_t n_fetch = 0;
    bool leading = r->role == RN_RAFT_LEADER;
    for (int i = 0; i < r->n_out; i++) {
        rn_raft_msg *m = &r->out[i];
        if (m->type != RN_RAFT_MSG_FETCH_RESP || m->n_entries == 0)
            continue;
        /* Clip to what the log still holds; a response of an epoch we no
         * longer lead carries no entries. */
        int64_t avail = leo(r) - m->fetch_offset;
        if (!leading || m->epoch != r->st.epoch || m->fetch_offset < r->log_start || avail <= 0)
            m->n_entries = 0;
        else if (m->n_entries > avail)
            m->n_entries = (int)avail;
        n_fetch += m->n_entries;
    }
    rn_raft_entry *v = view_at(r, n_new + n_com + n_fetch);
    r->ready_short = !v && n_new + n_com + n_fetch > 0;
    if (r->ready_short) {
        /* Out of memory: hand out only the quorum state. Entries and
         * messages wait for the next ready (a message must not leave before
         * the entries it reports are synced). */
        rd->n_entries = rd->n_committed = 0;
        rd->n_msgs = 0;
        rd->snapshot = NULL;
        rd->truncate_to = -1;
        return;
    }
    for (int i = 0; i < r->n_out; i++) {
        rn_raft_msg *m = &r->out[i];
        if (m->type == RN_RAFT_MSG_FETCH_SNAPSHOT_RESP && !m->error) {
            m->snapshot_end_offset = r->snap_end;
            m->snapshot_epoch = r->snap_epoch;
            m->snapshot_data = r->snap_data;
            m->snapshot_len = r->snap_len;
        }
    }
    if (v) {
        fill(r, v, from, n_new);
        fill(r, v + n_new, c_from, n_com);
        int64_t at = n_new + n_com;
        for (int i = 0; i < r->n_out; i++) {
            rn_raft_msg *m = &r->out[i];
            if (m->type == RN_RAFT_MSG_FETCH_RESP && m->n_entries > 0) {
                fill(r, v + at, m->fetch_offset, m->n_entries);
                m->entries = v + at;
                at += m->n_entries;
            }
        }
        rd->entries = v;
        rd->committed = v + n_new;
    }
    rd->n_entries = n_new;
    rd->n_committed = n_com;
    rd->msgs = r->out;
    rd->n_msgs = r->n_out;
}

void rn_raft_advance(rn_raft *r, const rn_raft_ready *rd)
{
    r->st_dirty = false;
    if (r->ready_short) {
        r->ready_short = false;
        return; /* only the state was handed out */
    }
    r->snap_install = false;
    r->truncate_to = -1;
    if (rd->n_entries > 0)
        r->stable_end = rd->entries[rd->n_entries - 1].offset + 1;
    if (r->stable_end < r->log_start)
        r->stable_end = r->log_start;
    if (rd->n_committed > 0)
        r->applied = rd->committed[rd->n_committed - 1].offset + 1;
    if (r->applied < r->log_start)
        r->applied = r->log_start;
    r->reported_log_start = rd->log_start;
    r->n_out = 0;
    maybe_commit(r); /* the leader's own entries are durable now */
}

int rn_raft_voters_status(const rn_raft *r, rn_raft_voter_status out[RN_RAFT_MAX_VOTERS])
{
    if (r->role != RN_RAFT_LEADER)
        return 0;
    for (int i = 0; i < r->n_voters; i++) {
        const progress *p = &r->peers[i];
        bool self = r->voters[i] == r->id;
        out[i] = (rn_raft_voter_status){
            .id = r->voters[i],
            .match = self ? leo(r) : p->match,
            .last_fetch_ms = self         ? r->now
                             : p->fetched ? p->last_fetch_ms
                                          : -1,
        };
    }
    return r->n_voters;
}

rn_raft_role rn_raft_role_of(const rn_raft *r)
{
    return r->role;
}

int32_t rn_raft_epoch(const rn_raft *r)
{
    return r->st.epoch;
}

int32_t rn_raft_leader(const rn_raft *r)
{
    return r->st.leader_id;
}

int64_t rn_raft_hw(const rn_raft *r)
{
    return r->hw;
}

int64_t rn_raft_log_end(const rn_raft *r)
{
    return leo(r);
}

int64_t rn_raft_log_start(const rn_raft *r)
{
    return r->log_start;
}

bool rn_raft_is_voter(const rn_raft *r)
{
    return r->is_voter;
}

const char *rn_raft_errmsg(const rn_raft *r)
{
    return r->err;
}
