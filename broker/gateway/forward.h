/*
 * forward.h — the gateways' links to partition leaders (internal to
 * broker/gateway/; forward.c).
 *
 * DESIGN §7/§8: a gateway request for a partition led by another broker goes
 * to that leader over an inter-broker connection. Reactors must never block,
 * and net/peer.h is a blocking connection driven by one thread, so:
 *
 *   reactor ──submit(job)──▶ link queue ──▶ link thread ──rn_peer──▶ leader
 *   reactor ◀──job->done (rn_reactor_call in the gateway)── link thread ◀──┘
 *
 * One link (one thread, one rn_peer) per leader broker id, made on first use.
 * A job is one encoded sub-request (route.h) with a deadline; its end — an
 * answer (packed header + payload bytes) or a failure (error + message
 * naming the broker) — is handed to job->done on the link thread, exactly
 * once per job submit accepted.
 *
 * Bounds: RN_GW_FWD_MAX_QUEUE jobs waiting per link (submit refuses more:
 * -EBUSY), RN_GW_FWD_MAX_INFLIGHT sent and unanswered per link, each job's
 * deadline (a queued job past it ends with -RN_E_TIMEOUT; an unanswered one
 * past it cuts the link, which ends every job on it: a leader that does not
 * answer in time is treated as gone), answers no larger than the job's
 * max_answer (else the job fails: the peer broke the contract), a connect
 * bounded by the deadline and RN_GW_FWD_CONNECT_MS, and after a failed
 * connect, RN_GW_FWD_RETRY_MS during which jobs fail at once with that
 * failure instead of each trying again.
 *
 * Where a leader is: resolve(broker id) gives its native host:port (the
 * gateway reads the quorum's broker list); a changed endpoint replaces the
 * link's connection.
 *
 * Threading: submit from any thread; done runs on a link thread; free from
 * one thread once no one submits any more.
 */
#ifndef RN_GATEWAY_FORWARD_H
#define RN_GATEWAY_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RN_GW_FWD_MAX_LINKS    64
#define RN_GW_FWD_MAX_QUEUE    1024
#define RN_GW_FWD_MAX_INFLIGHT 256
#define RN_GW_FWD_CONNECT_MS   3000
#define RN_GW_FWD_RETRY_MS     200
/* Beyond a request's own timeout, what a job's deadline allows for the way to
 * the leader and back (client.c). */
#define RN_GW_FWD_GRACE_MS 2000
/* How long a leader's resolved endpoint is trusted before it is looked up
 * again (a failed link looks it up at once). */
#define RN_GW_FWD_RESOLVE_MS 1000

typedef struct rn_gw_fwd rn_gw_fwd;
typedef struct rn_gw_fwd_job rn_gw_fwd_job;

/* A job's end, on the link thread; takes ownership of j (free it with
 * rn_gw_fwd_job_free). */
typedef void (*rn_gw_fwd_done_fn)(rn_gw_fwd_job *j);

struct rn_gw_fwd_job {
    rn_gw_fwd_job *next; /* the link's lists */
    /* Set by the submitter: */
    int32_t broker;   /* the leader */
    uint8_t *req_hdr; /* packed RequestHeader (owned) */
    size_t req_hdr_len;
    uint8_t *req_payload; /* owned; NULL when empty */
    size_t req_payload_len;
    uint64_t deadline_ns; /* rn_now_ns() clock */
    size_t max_answer;    /* most payload bytes the answer may carry */
    rn_gw_fwd_done_fn done;
    void *arg; /* the submitter's */
    size_t part;
    void *link; /* forward.c's: the link the job is on */
    /* The end, set before done runs: */
    int err;          /* 0: answered; < 0: failed */
    char errmsg[320]; /* with err */
    uint8_t *ans_hdr; /* packed ResponseHeader (owned) */
    size_t ans_hdr_len;
    uint8_t *ans_payload; /* owned; NULL when empty */
    size_t ans_payload_len;
};

/* Where broker id is: its native host:port into hostport, or a negative
 * error with a message (unknown broker, fenced). Any thread. */
typedef int (*rn_gw_fwd_resolve_fn)(void *arg, int32_t broker, char *hostport, size_t len,
                                    char *err, size_t errlen);

int rn_gw_fwd_new(rn_gw_fwd **out, rn_gw_fwd_resolve_fn resolve, void *arg);

/* Queue j for its broker. 0: j->done will run once (possibly before this
 * returns, on the link thread). Negative: not queued, done will not run, j
 * stays the caller's: -EBUSY (the link's queue is full), -ESHUTDOWN
 * (stopping), -E2BIG (too many links), -ENOMEM, -errno of the thread; a
 * message in err. */
int rn_gw_fwd_submit(rn_gw_fwd *f, rn_gw_fwd_job *j, char *err, size_t errlen);

/* Stop every link: jobs queued or in flight end with -RN_E_SHUTTING_DOWN
 * (done runs for each), threads are joined, then f is freed. NULL-safe. */
void rn_gw_fwd_free(rn_gw_fwd *f);

/* Free a job and what it owns. NULL-safe. */
void rn_gw_fwd_job_free(rn_gw_fwd_job *j);

/* Connections the link to broker has made so far (tests). */
uint64_t rn_gw_fwd_connects(rn_gw_fwd *f, int32_t broker);

#endif
