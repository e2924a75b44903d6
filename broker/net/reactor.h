/*
 * net/reactor.h — a reactor: one io_uring loop on a thread of its own, with its listener,
 * receive-buffer ring, connections, its copy of the topic table and its counters
 * (net/reactor.c), and the messages reactors post each other (net/shard.c).
 */
#ifndef RN_BROKER_NET_REACTOR_H
#define RN_BROKER_NET_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/metrics.h"
#include "broker/net/bufpool.h"
#include "broker/net/inbox.h"
#include "broker/net/listen.h"
#include "broker/part/partitions.h"
#include "protocol/frame.h"
#include "storage/io.h"

/* ---- Reactors talking (net/shard.c) ---------------------------------------------- */

typedef struct rn_msg rn_msg;
typedef void (*rn_msg_fn)(rn_msg *m);
/* A message between reactors: embed it, post it, fn runs on `to`. */
struct rn_msg {
    rn_io_op op;
    rn_msg_fn fn;
    rn_reactor *to;
};
/* Post m to reactor `to` from the calling reactor; fn(m) runs on `to`.
 * A reactor's thread only (it sends on the caller's own ring). */
void rn_reactor_post(rn_reactor *to, rn_msg *m, rn_msg_fn fn);
/* Any thread (a reactor's or not): fn(arg) runs once on r's thread, after the
 * calls this thread made to r before (net/inbox.h). Never inside this call.
 * Returns 0; -ESHUTDOWN when r is stopping (fn never runs); -ENOMEM. r must
 * outlive the call (reactors are freed after their threads are joined). */
int rn_reactor_call(rn_reactor *r, rn_call_fn fn, void *arg);

/* The reactor whose thread is running (NULL outside reactors' threads). */
extern __thread rn_reactor *rn_self;

/* ---- Reactor -------------------------------------------------------------------- */

struct rn_reactor {
    rn_broker *b;
    unsigned index;
    rn_io *io;
    rn_acceptor acc; /* the native listener (broker/net/listen.h) */
    rn_io_op tick_op, signal_op;
    struct __kernel_timespec tick_ts;
    bool tick_armed, signal_armed;
    /* Provided receive buffers (one group). */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned n_bufs, buf_len;
    uint16_t bgid;
    int *buf_refs;
    /* Buffers of frames that span receives, kept warm (net/bufpool.h). */
    rn_bufpool *frames;
    rn_frame_bufs frame_bufs; /* the pool as decoders take it */
    rn_conn *conns;
    unsigned n_conns;
    unsigned n_live;  /* socket conns not yet freed (closed ones wait for their ops) */
    rn_conn *starved; /* conns whose multishot recv ended for lack of buffers */
    uint64_t next_conn_id;
    int signal_fd;
    uint8_t sigbuf[128]; /* struct signalfd_siginfo */
    bool stopping;
    bool leaving;           /* reactor 0: controlled shutdown under way (rn_quorum_leave) */
    int64_t leave_until_ms; /* then stop anyway */
    int64_t last_retention_ms;
    struct rn_gateway *gw;  /* HTTP gateways (broker/gateway/gateway.h), or NULL */
    struct rn_kafka *kafka; /* Kafka-protocol listener (broker/kafka/kafka.h), or NULL */
    rn_partition_table pt;  /* this reactor's copy of the topic table */
    rn_metrics metrics;     /* this reactor's counters (rn_metrics_render sums) */
    rn_conn *fwd;           /* virtual connection of requests from other reactors */
    bool drained;           /* stopping, and nothing of ours in flight */
    rn_msg stop_msg;
    rn_inbox inbox; /* calls from any thread (rn_reactor_call) */
    rn_io_op cancel_tick, cancel_sig;
};

int rn_reactor_init(rn_reactor *r, rn_broker *b, unsigned index);
void rn_reactor_fini(rn_reactor *r);
/* Open the listener and start accepting. Errors: -errno with a log line. */
int rn_reactor_listen(rn_reactor *r, const char *hostport);
/* Start accepting on an already open listener (one of rn_listen_open_shared's). */
void rn_reactor_listen_fd(rn_reactor *r, int fd);
/* Run every reactor: 1..n-1 on threads of their own, 0 on the caller's. */
int rn_reactors_run(rn_broker *b);
/* Run until stopped by SIGTERM/SIGINT and drained. */
int rn_reactor_run(rn_reactor *r);
/* Hold / return a receive buffer. */
void rn_reactor_buf_ref(rn_reactor *r, int bid);
void rn_reactor_buf_unref(rn_reactor *r, int bid);

#endif
