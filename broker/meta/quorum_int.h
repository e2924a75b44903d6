/*
 * quorum_int.h — what the files of the metadata quorum share, and nothing
 * else includes (quorum.h is the API).
 *
 * The quorum is one job in several files, each run on the quorum thread
 * unless it says otherwise:
 *
 *     quorum.c            the driver: the thread's loop, readies, frames in,
 *                         proposals, status, start and stop
 *     quorum_wire.c       Raft messages to and from bytes; FRAME_PART
 *                         reassembly (the frames themselves: quorum_wire.c's
 *                         top comment)
 *     quorum_links.c      the controller listener and the links to peers:
 *                         dial, accept, write, read frames out of the stream
 *     quorum_store.c      the quorum-state file; entries in and out of the
 *                         metadata log
 *     quorum_brokers.c    the controller's brokers: registration,
 *                         heartbeats, fencing
 *     quorum_snapshots.c  the quorum's image; snapshots taken, checked,
 *                         installed and loaded
 *     quorum_journal.c    committed entries out to the owner's thread; the
 *                         journal backend the owner proposes through
 *
 * The byte buffer and the bounds-checked reader below are static inline:
 * every file gets its own copy under the short names quorum.c always used.
 */
#ifndef RN_BROKER_META_QUORUM_INT_H
#define RN_BROKER_META_QUORUM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/meta/quorum.h"
#include "broker/meta/raft.h"
#include "broker/meta/snapshot.h"
#include "storage/io.h"
#include "storage/log.h"

/* One change's batch, as the local journal allows (journal.c). */
#define MAX_CHANGE_BYTES ((size_t)8 << 20)
#define MAX_LINKS        64

enum { FRAME_RAFT = 1, FRAME_FORWARD = 2, FRAME_HEARTBEAT = 3, FRAME_PART = 4 };
/* A heartbeat's flags (after the Kafka endpoint; absent from older brokers). */
enum { HB_LEAVING = 1 };
enum { ENV_BATCH = 1, ENV_CONTROL = 2 };
#define ENV_HDR 13 /* u8 kind, i32 origin, u64 token */

/* A Raft message larger than this goes as FRAME_PART chunks (a snapshot
 * may be larger than one frame); one reassembled is at most MAX_MESSAGE. */
#define PART_BYTES  (8u << 20)
#define MAX_MESSAGE ((size_t)1 << 30)

/* ---- Byte buffers (little-endian, as on the wire) ------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static inline void buf_put(buf *b, const void *d, size_t n)
{
    if (b->oom || n == 0) /* n == 0 may come with d == NULL */
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static inline void put_u8(buf *b, uint8_t v)
{
    buf_put(b, &v, 1);
}
static inline void put_u16(buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_put(b, x, 2);
}
static inline void put_u32(buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 4);
}
static inline void put_u64(buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}

/* A bounds-checked reader: a read past the end sets bad and yields zeros. */
typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
    bool bad;
} rd;

static inline const uint8_t *take(rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}
static inline uint64_t get_n(rd *r, int n)
{
    const uint8_t *p = take(r, (size_t)n);
    uint64_t v = 0;
    for (int i = 0; p && i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
#define get_u8(r)  ((uint8_t)get_n(r, 1))
#define get_i16(r) ((int16_t)get_n(r, 2))
#define get_u16(r) ((uint16_t)get_n(r, 2))
#define get_i32(r) ((int32_t)get_n(r, 4))
#define get_u32(r) ((uint32_t)get_n(r, 4))
#define get_i64(r) ((int64_t)get_n(r, 8))

/* ---- Raft messages on the wire (quorum_wire.c) ----------------------------------- */

/* Append m, field by field, to b (b->oom on failure). Borrows m. */
void rn__quorum_msg_put(buf *b, const rn_raft_msg *m);
/* Decode into m; entries into *ents (malloc'd, caller frees; data points
 * into the frame). -EINVAL for a frame that does not parse, -ENOMEM. */
int rn__quorum_msg_get(rd *r, rn_raft_msg *m, rn_raft_entry **ents);

/* ---- State (the quorum thread's unless a field says otherwise) ------------------ */

typedef struct link {
    int fd;
    int32_t node;  /* the node at the other end, -1 until it speaks (inbound) */
    bool outbound; /* we dialled it (voters[node]) */
    bool connecting;
    bool dead; /* failed: closed by the next sweep, never used again */
    buf in, out;
    size_t out_pos;
    rn_quorum_parts part; /* a RAFT frame's body arriving as FRAME_PART chunks */
} link_t;

typedef struct ctl_broker {
    int32_t id;
    char endpoint[256];
    char kafka[256]; /* its Kafka listener, "" = none */
    int64_t incarnation;
    int64_t epoch;
    bool fenced;
    bool registered;
    int64_t last_hb;   /* leader's clock */
    int64_t last_prop; /* when the leader last proposed a record for it */
} ctl_broker;

typedef struct proposal {
    struct proposal *next;
    uint64_t token;
    int64_t at;     /* when it was handed to the quorum thread */
    uint8_t *entry; /* envelope + batch */
    size_t len;
} proposal;

/* One of this broker's proposals until it is seen committed: sent again
 * to each new leader (invariant 3). */
typedef struct waiting {
    struct waiting *next;
    uint64_t token;
    int64_t deadline;
    int32_t sent_to, sent_epoch; /* -1: not sent yet */
    int64_t sent_at;
    uint8_t *entry; /* envelope + batch */
    size_t len;
} waiting;

struct rn_quorum {
    rn_quorum_config cfg;
    rn_voter voters[RN_MAX_VOTERS];
    char listener[256], dir[4096], advertised[256], kafka_advertised[256];
    int64_t incarnation;

    pthread_t thread;
    bool started;
    atomic_bool stop;
    int wake_fd;

    /* Owned by the quorum thread. */
    rn_io *io;
    rn_log *log;
    rn_raft *raft;
    int listen_fd;
    link_t links[MAX_LINKS];
    int n_links;
    int64_t next_connect[RN_MAX_VOTERS];
    int64_t last_hb_sent;
    int32_t last_leader_seen;
    rn_raft_role last_role;
    int32_t last_epoch_seen;
    ctl_broker brokers[64];
    int n_brokers;
    waiting *waiting;
    uint64_t rand_state;
    int64_t applied;       /* offset after the last committed entry handed out */
    int32_t applied_epoch; /* the epoch of the entry before applied */

    /* Snapshots (invariants 4, 5): the image as committed entries make it. */
    rn_image *img;
    bool img_failed;        /* an apply ran out of memory: never snapshot it */
    int64_t since_snapshot; /* bytes of entries committed since the latest */
    rn_snapshot_id snap;    /* the latest snapshot file (end_offset 0: none) */
    uint8_t *snap_bytes;    /* its bytes: the core's snapshot once the next one is taken */
    size_t snap_len;
    int64_t prev_snap_end; /* the one before it; the log is kept from there */
    int64_t n_snapshots, n_installed;
    size_t part_bytes; /* PART_BYTES; RN_QUORUM_PART_BYTES (tests) makes it smaller */

    /* Under lock: proposals from the owner, the status copy. */
    pthread_mutex_t lock;
    pthread_cond_t started_cond;
    bool start_done;
    int start_rc;
    char start_err[512];
    proposal *props, *props_tail;
    rn_quorum_status status;

    /* The owner's side (its thread): the journal backend. */
    struct qjournal *qj;
    int64_t catch_up_target; /* atomic: -1 until known */
    int64_t leader_hw;       /* quorum thread: the hw of the leader's first fetch answer, -1 */
    bool owner_caught_up;    /* atomic: set once rn_quorum_caught_up said yes */
    bool leaving;            /* atomic: rn_quorum_leave was called (controlled shutdown) */
    bool left;               /* atomic: the fence of this broker, asked by leaving, committed */
    bool leave_said;         /* quorum thread: a heartbeat has said "leaving" */
    unsigned n_publish;
};

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Links (quorum_links.c) --------------------------------------------------- */

/* Bind and listen on controller.listener into q->listen_fd; the error in err. */
int rn__quorum_bind_listener(rn_quorum *q, char *err, size_t errlen);
/* Take fd (closed on failure) as link; its index, or -EMFILE. */
int rn__quorum_link_add(rn_quorum *q, int fd, int32_t node, bool outbound, bool connecting);
/* Mark link i failed; rn__quorum_links_sweep closes it. */
void rn__quorum_link_close(rn_quorum *q, int i);
/* Close link i now: only where no index into links is held. */
void rn__quorum_link_close_now(rn_quorum *q, int i);
/* Close every link marked failed. */
void rn__quorum_links_sweep(rn_quorum *q);
/* Write what link i holds; -1 when the link failed. */
int rn__quorum_link_flush(rn_quorum *q, int i);
/* Read what link i has and handle its frames (rn__quorum_handle_frame, then
 * rn__quorum_drain_ready after each); -1 when it closed, -2 when the disk
 * failed (the quorum stops). */
int rn__quorum_link_read(rn_quorum *q, int i, int64_t now);
/* Send body (borrowed) as one frame to node, dialling a voter if need be;
 * dropped when it cannot go now (Raft retries). */
void rn__quorum_send_frame(rn_quorum *q, int32_t node, const buf *body, int64_t now);
/* Whether a link to node is open (connected, in either direction). */
bool rn__quorum_has_link(const rn_quorum *q, int32_t node);
/* node's listener refused a connection (see quorum_links.c). */
void rn__quorum_refused(rn_quorum *q, int32_t node);
/* ---- The state file and the log (quorum_store.c) ------------------------------ */

/* Replace the quorum-state file durably with s. 0 or negative. */
int rn__quorum_state_write(rn_quorum *q, const rn_raft_quorum_state *s);
/* 0 and *s (epoch 0, nobody, when there is no file), or -RN_E_CORRUPT_FILE,
 * or -errno. */
int rn__quorum_state_read(rn_quorum *q, rn_raft_quorum_state *s);
/* Append e durably at its offset; -EIO when the log's offset is not e's. */
int rn__quorum_log_append(rn_quorum *q, const rn_raft_entry *e);

/* Entries read back from the log (their data malloc'd, the caller frees). */
typedef struct loaded {
    rn_raft_entry *e;
    int64_t n, cap;
} loaded;
/* Read the log back from `from` (>= its start) into *out (appended to). */
int rn__quorum_log_load(rn_quorum *q, int64_t from, loaded *out);
/* ---- The controller's brokers (quorum_brokers.c) ------------------------------- */

/* Apply one committed control record (borrowed) at offset to the list. */
void rn__quorum_apply_control(rn_quorum *q, int64_t offset, const uint8_t *p, size_t len);
/* A heartbeat from node (or from this broker, when it leads); as leader,
 * propose what it calls for. */
void rn__quorum_on_heartbeat(rn_quorum *q, int32_t node, int64_t incarnation, const char *endpoint,
                             const char *kafka, bool leaving, int64_t now);
/* Each loop: log leadership changes; as leader, fence the silent. */
void rn__quorum_controller_tick(rn_quorum *q, int64_t now);
/* Heartbeat the leader when it is time (or at once, when leaving). */
void rn__quorum_heartbeat(rn_quorum *q, int64_t now);
/* The list from q->img (after a snapshot is loaded or installed). */
void rn__quorum_brokers_from_image(rn_quorum *q);
/* ---- The image and its snapshots (quorum_snapshots.c) -------------------------- */

/* Apply one committed record (borrowed) to q->img; out of memory marks the
 * image failed (never snapshotted). */
void rn__quorum_img_apply_record(rn_quorum *q, const uint8_t *p, size_t len);
/* The same for every record of a committed batch (borrowed). */
void rn__quorum_img_apply_batch(rn_quorum *q, const uint8_t *batch, size_t len);
/* Snapshot q->img at q->applied, compact, trim the log; failures logged. */
void rn__quorum_snapshot_take(rn_quorum *q, const char *why);
/* Install a snapshot the core took (borrowed); < 0 stops the quorum. */
int rn__quorum_snapshot_install(rn_quorum *q, const rn_raft_snapshot *sn);
/* Whether a FETCH_SNAPSHOT response holds a snapshot we can install; why not
 * in why. */
bool rn__quorum_snapshot_valid(const rn_raft_msg *m, char *why, size_t whylen);
/* At start: the newest usable snapshot into q->img and *data (malloc'd,
 * NULL for none); the error in err. */
int rn__quorum_snapshot_load(rn_quorum *q, uint8_t **data, size_t *len, char *err, size_t errlen);

/* ---- Committed entries out, the journal backend (quorum_journal.c) ------------- */

/* Hand a committed entry's batch (copied; NULL/0 for progress only), or a
 * proposal's failure (err < 0), to the owner's thread. Logged and dropped
 * when out of memory. */
void rn__quorum_post_delivery(rn_quorum *q, int64_t offset, int32_t origin, uint64_t token, int err,
                              const uint8_t *batch, size_t len);
/* Owner's thread, at rn_quorum_free: the journal (closed later, with the
 * metadata) forgets the quorum. */
void rn__quorum_journal_detach(struct qjournal *j);

/* Hand a snapshot (data copied) to the owner as one delivery; -ENOMEM. */
int rn__quorum_post_snapshot(rn_quorum *q, int64_t end, const uint8_t *data, size_t len);

/* ---- The driver (quorum.c) ------------------------------------------------------ */

/* One frame's body (borrowed) from link l. */
void rn__quorum_handle_frame(rn_quorum *q, link_t *l, const uint8_t *p, size_t len, int64_t now);
/* Invariant 1: state, then log, then messages, then commits; < 0 when the
 * disk failed (the quorum stops). */
int rn__quorum_drain_ready(rn_quorum *q, int64_t now);

#endif
