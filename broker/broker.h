/*
 * broker.h — the pieces of runneld and how they hold each other (internal).
 *
 *   rn_broker ── config, metadata (topics), partition table, metrics, reactors
 *     rn_reactor ── one io_uring (rn_io), listener, provided-buffer ring,
 *                   connections, the partitions it owns
 *       rn_conn ── socket, frame decoder, requests in flight, send queue
 *         rn_request ── one decoded request until its response is queued
 *
 * A request flows: recv CQE → rn_conn_on_data → rn_frame_decoder_feed →
 * rn_frame_request_decode → rn_dispatch → handle_<api> → (storage callbacks)
 * → rn_request_respond → the conn's send queue → sendmsg CQE.
 *
 * Threads: one reactor per core (--reactors N), each a thread with its own
 * ring, listener (SO_REUSEPORT) and connections. A partition belongs to one
 * reactor (partition->reactor, a hash of topic and partition; internal
 * topics to reactor 0) and only that reactor's thread touches its log. A
 * request on another reactor is handed over by message (broker/net/shard.c:
 * IORING_OP_MSG_RING, no locks): Produce/Fetch/ListOffsets are split by
 * owner and the answers merged; every other API runs on reactor 0, which
 * owns metadata, the group coordinator, producer ids and the HTTP gateway.
 * Each reactor has its own copy of the topic table (reactor 0 sends changes)
 * and its own metrics (summed when rendered).
 *
 * Everything here is internal to broker/: the structs are open so the handler
 * files can share them, and nothing outside broker/ includes this header.
 */
#ifndef RN_BROKER_H
#define RN_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "broker/config.h"
#include "broker/coord/groups.h"
#include "broker/meta/metadata.h"
#include "broker/metrics.h"
#include "broker/part/producer_state.h"
#include "protocol/errors.h"
#include "protocol/frame.h"
#include "storage/io.h"
#include "storage/log.h"

typedef struct rn_broker rn_broker;
typedef struct rn_reactor rn_reactor;
typedef struct rn_conn rn_conn;
typedef struct rn_request rn_request;
typedef struct rn_partition rn_partition;
typedef struct rn_fetch_wait rn_fetch_wait;

/* ---- Partitions ------------------------------------------------------------ */

struct rn_partition {
    char *topic;
    int32_t id;
    rn_log *log;
    rn_reactor *reactor;
    rn_fetch_wait *waiters; /* long-polling fetches to wake on appends */
    rn_partition_metrics m;
    rn_producer_state *ps; /* idempotent producers' last batches */
    int32_t leader_epoch;
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
    int refs; /* one per reactor table holding it (atomic) */
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
/* The reactor that owns a partition: internal topics (__*) on 0, others by
 * a hash of topic and partition. A pure function, so routing needs no table. */
unsigned rn_partition_owner(const rn_broker *b, const char *topic, int32_t partition);
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
/* Wake long-polling fetches waiting on p (its high watermark moved). */
void rn_partition_wake(rn_partition *p);
/* Roll and retention for every partition (the reactor's tick). While a disk
 * is full (rn_broker.parts_disk_full), retention runs at every tick. */
void rn_partitions_tick(rn_reactor *r, int64_t now_ms, bool retention);
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

/* ---- Requests and responses -------------------------------------------------- */

/* A response being sent: header bytes then payload slices (segment refs held). */
typedef struct rn_out {
    struct rn_out *next;
    uint8_t *hdr; /* malloc'd prefix + header */
    size_t hdr_len;
    unsigned n_slices;
    rn_slice *slices; /* payload, in order; released once sent */
    size_t total, sent;
} rn_out;

/* Where an in-process request's answer goes (gateways): the sink gets the
 * response header and takes ownership of the slices' references (it must
 * release them); it runs once, then the request is freed. */
typedef void (*rn_request_sink)(void *arg, rn_request *req, Runnel__ResponseHeader *hdr,
                                rn_slice *slices, unsigned n_slices);

struct rn_request {
    rn_conn *conn;
    rn_request_sink sink; /* NULL: answer on conn's socket */
    void *sink_arg;
    rn_frame_request fr;
    int api;
    uint32_t correlation_id;
    uint64_t start_ns;
    int rbuf;       /* receive-ring buffer id held by the payload, or -1 */
    void *owned;    /* decoder allocation holding the frame, or NULL */
    int pending;    /* asynchronous parts still running (produce appends) */
    void *state;    /* per-API state (produce results, parked fetch) */
    void *fan;      /* handed to other reactors (broker/net/shard.c), or NULL */
    bool sub;       /* a part of another reactor's request: hdr borrowed */
    /* A sub: the client's address, borrowed from the parent's connection
     * (which the parent holds until every sub is back); NULL otherwise.
     * Read it through rn_request_peer, never conn->peer, which for a sub
     * is the reactor's virtual connection ("reactor"). */
    const char *peer;
    uint8_t **batches; /* sub Produce: each partition's batch (else walk payload) */
    struct rn_request *next; /* conn's list of requests in flight */
    struct rn_request *prev;
};

/* Queue the response hdr (+ payload slices, ownership of the slice refs
 * passes to the send queue) and free the request. The response's
 * correlation_id is set here. */
void rn_request_respond(rn_request *req, Runnel__ResponseHeader *hdr, rn_slice *slices,
                        unsigned n_slices);
/* Run a request built in-process, by a gateway, through the same decoding,
 * validation and handlers as a request from the wire: hdr is packed into a
 * frame (payload copied after it) and decoded with the broker's limits. c is
 * the gateway's virtual connection (rn_conn_new_virtual). The answer goes to
 * sink (possibly before this returns, possibly much later). Returns 0, or a
 * decoding error (-RN_E_INVALID_REQUEST, -RN_E_MESSAGE_TOO_LARGE, …) with a
 * message in err, in which case sink never runs. */
int rn_request_local(rn_conn *c, const Runnel__RequestHeader *hdr, const void *payload,
                     size_t payload_len, rn_request_sink sink, void *sink_arg, char *err,
                     size_t errlen);

/* The address of the client that sent req ("host:port"), also when req is
 * a sub-request running on another reactor. Valid while req is. */
const char *rn_request_peer(const rn_request *req);

/* Answer with an error of the whole request (error_code + message). */
void rn_request_fail(rn_request *req, int err, const char *msg);
/* Drop the request without a response (acks=0, or the connection died). */
void rn_request_free(rn_request *req);

/* Run the handler of req->api. The handler responds (now or later). */
void rn_dispatch(rn_request *req);

void rn_handle_api_versions(rn_request *req);
void rn_handle_metadata(rn_request *req);
void rn_handle_create_topics(rn_request *req);
void rn_handle_delete_topics(rn_request *req);
void rn_handle_describe_topic(rn_request *req);
void rn_handle_alter_configs(rn_request *req);
void rn_handle_produce(rn_request *req);
void rn_handle_fetch(rn_request *req);
void rn_handle_list_offsets(rn_request *req);
void rn_handle_group_heartbeat(rn_request *req);
void rn_handle_commit_offsets(rn_request *req);
void rn_handle_fetch_offsets(rn_request *req);
void rn_handle_list_groups(rn_request *req);
void rn_handle_describe_group(rn_request *req);
void rn_handle_delete_group(rn_request *req);
void rn_handle_init_producer(rn_request *req);

/* A parked fetch: woken by rn_partition_wake or its timer. */
void rn_fetch_wake(rn_fetch_wait *w);
/* Answer a parked fetch now with whatever there is (another reactor's part
 * of the same fetch found data: broker/net/shard.c). */
void rn_fetch_answer_now(rn_fetch_wait *w);
/* Abandon a parked fetch (its connection is gone). */
void rn_fetch_cancel(rn_fetch_wait *w);

/* ---- Connections ----------------------------------------------------------- */

struct rn_conn {
    rn_reactor *r;
    int fd;
    uint64_t id;
    char peer[64];
    rn_frame_decoder dec;
    rn_io_op recv_op, send_op, close_op;
    bool recv_armed, recv_wanted, send_inflight, closing, dead, paused;
    bool recv_direct; /* the recv in flight reads a big frame's rest in place */
    bool close_after_send;        /* a protocol error: flush the answer, then close */
    rn_out *out_head, *out_tail;  /* send queue */
    size_t out_bytes;             /* queued, not yet sent: backpressure */
    struct iovec iov[64];
    struct msghdr msg;
    bool send_zc;     /* the send in flight is zero-copy: wait for its notification */
    rn_out *zc_hold;  /* sent, but the kernel may still read them until the notification */
    rn_request *reqs;             /* in flight */
    unsigned n_reqs;
    int refs;                     /* ops in flight + requests; freed at 0 once dead */
    int64_t last_active_ms;
    rn_conn *next, *prev;         /* reactor's list */
    rn_conn *next_starved;        /* waiting for receive buffers */
    bool starved;
    bool is_virtual; /* in-process (gateway): no socket, not in the reactor list */
};

/* A connection with no socket, for in-process requests (gateways). It is in
 * no reactor list; close it with rn_conn_close when the gateway's client goes
 * (parked fetches end, answers still in flight are dropped). NULL on OOM. */
rn_conn *rn_conn_new_virtual(rn_reactor *r, const char *peer);

/* Feed received bytes; borrowed from ring buffer bid (or -1). */
void rn_conn_on_data(rn_conn *c, const uint8_t *data, size_t len, int bid);
/* Close the connection (now, or once the queued answer is sent). */
void rn_conn_close(rn_conn *c, const char *why);
/* Start sending what is queued, if no send is in flight. */
void rn_conn_flush(rn_conn *c);
void rn_conn_unref(rn_conn *c);

/* ---- Reactors talking (broker/net/shard.c) -------------------------------------------- */

typedef struct rn_msg rn_msg;
typedef void (*rn_msg_fn)(rn_msg *m);
/* A message between reactors: embed it, post it, fn runs on `to`. */
struct rn_msg {
    rn_io_op op;
    rn_msg_fn fn;
    rn_reactor *to;
};
/* Post m to reactor `to` from the calling reactor; fn(m) runs on `to`. */
void rn_reactor_post(rn_reactor *to, rn_msg *m, rn_msg_fn fn);
/* Hand req over to the reactors owning what it touches. Returns true when it
 * did (the answer comes back by message), false to handle it here. */
bool rn_shard_route(rn_request *req);
/* A part of a split Fetch parked (again) with `ready` bytes found, fewer than
 * min_bytes: tell its home, which answers every part at once when the parts
 * together have min_bytes. On the owner's reactor; may answer req before it
 * returns, so the caller must not touch req afterwards. */
void rn_shard_fetch_parked(rn_request *req, size_t ready);

/* The reactor whose thread is running (NULL outside reactors' threads). */
extern __thread rn_reactor *rn_self;

/* ---- Reactor -------------------------------------------------------------------- */

struct rn_reactor {
    rn_broker *b;
    unsigned index;
    rn_io *io;
    int listen_fd;
    rn_io_op accept_op, tick_op, signal_op;
    struct __kernel_timespec tick_ts;
    bool accepting, tick_armed, signal_armed;
    bool accept_backoff; /* out of descriptors: the tick re-arms the accept */
    /* Provided receive buffers (one group). */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned n_bufs, buf_len;
    uint16_t bgid;
    int *buf_refs;
    rn_conn *conns;
    unsigned n_conns;
    unsigned n_live; /* socket conns not yet freed (closed ones wait for their ops) */
    rn_conn *starved; /* conns whose multishot recv ended for lack of buffers */
    uint64_t next_conn_id;
    int signal_fd;
    uint8_t sigbuf[128]; /* struct signalfd_siginfo */
    bool stopping;
    int64_t last_retention_ms;
    struct rn_gateway *gw; /* HTTP gateways (broker/gateway/gateway.h), or NULL */
    rn_partition_table pt; /* this reactor's copy of the topic table */
    rn_metrics metrics;    /* this reactor's counters (rn_metrics_render sums) */
    rn_conn *fwd;          /* virtual connection of requests from other reactors */
    bool drained;          /* stopping, and nothing of ours in flight */
    rn_msg stop_msg;
    rn_io_op cancel_accept, cancel_tick, cancel_sig;
};

int rn_reactor_init(rn_reactor *r, rn_broker *b, unsigned index);
void rn_reactor_fini(rn_reactor *r);
/* Open the listener and start accepting. Errors: -errno with a log line. */
int rn_reactor_listen(rn_reactor *r, const char *hostport);
/* Start accepting on an already open listener (one of rn_listen_open_shared's). */
void rn_reactor_listen_fd(rn_reactor *r, int fd);
/* Run every reactor: 1..n-1 on threads of their own, 0 on the caller's. */
int rn_reactors_run(rn_broker *b);
/* Open a listening TCP socket on hostport (broker/net/listen.c): SO_REUSEADDR,
 * no SO_REUSEPORT. A taken port is retried for 5 s when retry_in_use, else
 * returned as -EADDRINUSE without a log line. what names the setting in logs.
 * Errors: -errno, -RN_E_INVALID_CONFIG, -EINVAL (cannot resolve). */
int rn_listen_open(const char *what, const char *hostport, bool retry_in_use, int *fd);
/* n listening sockets on hostport with SO_REUSEPORT, one per reactor; first
 * makes sure no other process holds the port (bind without SO_REUSEPORT),
 * retrying for 5 s like rn_listen_open. Errors as rn_listen_open. */
int rn_listen_open_shared(const char *what, const char *hostport, unsigned n, int *fds);
/* max.connections counts client connections over the whole broker, native
 * and HTTP, every reactor (broker/net/listen.c). Take a slot for an accepted
 * socket: false when the broker is at the limit (nothing taken). Give it
 * back when that connection closes. Any reactor's thread. */
bool rn_conn_slot_take(rn_broker *b);
void rn_conn_slot_give(rn_broker *b);
/* An accepted socket was refused (listener "native" or "http", reason
 * "max.connections", "shutting_down", ...): counted in r's
 * connections_rejected and logged, at most one line a second over the whole
 * broker with the count since the last line, so a flood of refusals is not
 * a flood of log lines. */
void rn_conn_refused(rn_reactor *r, const char *listener, const char *reason);
/* Close a refused socket so the client sees the broker close it (input that
 * already arrived is read first: closing over it would send a reset). */
void rn_listen_close_refused(int fd);
/* accept on listen_fd failed with EMFILE/ENFILE: accept every client waiting
 * in its queue with the spare descriptor's room and hand each to refuse
 * (which takes the fd over: answers if it can, closes). Returns how many;
 * 0 when the spare is not to be had (the caller waits a tick). Never blocks. */
unsigned rn_listen_shed(int listen_fd, void (*refuse)(void *arg, int fd), void *arg);
/* Run until stopped by SIGTERM/SIGINT and drained. */
int rn_reactor_run(rn_reactor *r);
/* Hold / return a receive buffer. */
void rn_reactor_buf_ref(rn_reactor *r, int bid);
void rn_reactor_buf_unref(rn_reactor *r, int bid);
/* Re-arm recv of a conn (buffers came back, or backpressure lifted). */
void rn_conn_arm_recv(rn_conn *c);
int64_t rn_now_ms(void);
uint64_t rn_now_ns(void);

/* shard.c routes with a small table per owner. */
#define RN_MAX_REACTORS 64

/* ---- The broker ---------------------------------------------------------------- */

struct rn_broker {
    rn_config cfg;
    rn_metadata *md;
    rn_groups *groups; /* consumer group coordinator (broker/coord/groups.h) */
    rn_reactor *reactors;
    unsigned n_reactors;
    /* Shutdown: reactors drained, messages posted and not yet run (atomic). */
    unsigned n_drained;
    long msgs_inflight;
    bool shared; /* reactor tables copied: topic changes go by message */
    rn_frame_limits limits;
    rn_producer_ids producer_ids;
    char host[256];
    uint16_t port;
    bool ready; /* storage recovery done */
    /* Storage errors (atomics, bumped by partition owners): failed appends,
     * partitions that cannot write now, and those of them out of space. */
    uint64_t storage_errors_total;
    int parts_storage_error, parts_disk_full;
    unsigned n_discarded; /* leftover directories discarded while opening (start-up) */
    /* Open client connections, native and HTTP, every reactor (atomic;
     * rn_conn_slot_take): what max.connections bounds. */
    unsigned n_client_conns;
};

#endif
