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
 * rn_frame_request_decode → rn_dispatch (api/dispatch.c) → rn_handle_<api>
 * (api/<api>.c) → (storage callbacks) → rn_request_respond → the conn's send
 * queue → sendmsg CQE.
 *
 * Threads: one reactor per core (--reactors N), each a thread with its own
 * ring, listener (SO_REUSEPORT) and connections. A partition belongs to one
 * reactor (partition->reactor, a hash of topic and partition; internal
 * topics to reactor 0) and only that reactor's thread touches its log. A
 * request on another reactor is handed over by message (net/shard.c:
 * IORING_OP_MSG_RING, no locks): Produce/Fetch/ListOffsets are split by
 * owner and the answers merged; every other API runs on reactor 0, which
 * owns metadata, the group coordinator, producer ids and the HTTP gateway.
 * Each reactor has its own copy of the topic table (reactor 0 sends changes)
 * and its own metrics (summed when rendered).
 *
 * Each part has its own header (net/reactor.h, net/conn.h, net/listen.h,
 * net/shard.h, api/api.h, part/partitions.h, coord/groups.h, meta/metadata.h);
 * this one holds only what every part needs: the names of the objects, the
 * broker that holds them, and the clock. Everything here is internal to
 * broker/: the structs are open so the part files can share them, and nothing
 * outside broker/ includes this header.
 */
#ifndef RN_BROKER_H
#define RN_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/part/producer_state.h"
#include "broker/part/throttle.h"
#include "protocol/errors.h"
#include "protocol/frame.h"

typedef struct rn_broker rn_broker;
typedef struct rn_reactor rn_reactor;
typedef struct rn_conn rn_conn;
typedef struct rn_request rn_request;
typedef struct rn_partition rn_partition;

/* Clocks, any thread (net/reactor.c): wall-clock milliseconds
 * (CLOCK_REALTIME) and monotonic nanoseconds (latencies). */
int64_t rn_now_ms(void);
uint64_t rn_now_ns(void);

/* RN_MAX_REACTORS (reactors in one broker) is in config.h, which bounds the
 * `reactors` setting with it. */

/* ---- The broker ---------------------------------------------------------------- */

struct rn_broker {
    rn_config cfg;
    struct rn_metadata *md;           /* meta/metadata.h */
    struct rn_quorum *quorum;         /* meta/quorum.h; NULL on a single node (no voters) */
    struct rn_controller *controller; /* meta/controller.h; with the quorum, else NULL */
    struct rn_groups *groups;         /* consumer group coordinator (coord/groups.h) */
    struct rn_fetchers *fetchers;     /* follower fetcher threads (part/fetchers.h); NULL on a
                                         single node */
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
    int log_dir_failed;   /* atomic: a log failed an fdatasync; the broker left (part/sweep.c) */
    unsigned n_discarded; /* leftover directories discarded while opening (start-up) */
    /* Open client connections, native and HTTP, every reactor (atomic;
     * rn_conn_slot_take): what max.connections bounds. */
    unsigned n_client_conns;
    /* Replica moves' catch-up throttles (part/throttle.h): what this broker
     * sends to replicas being added, and what it fetches as one. */
    rn_throttle leader_throttle, follower_throttle;
};

#endif
