/*
 * net/listen.h — the listening sockets of runneld, native and HTTP, and the
 * max.connections count over the whole broker (net/listen.c).
 */
#ifndef RN_BROKER_NET_LISTEN_H
#define RN_BROKER_NET_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/broker.h"
#include "storage/io.h"

/* Open a listening TCP socket on hostport SO_REUSEADDR,
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
/* An accepted socket was refused (listener "native", "http" or "kafka", reason
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
/* An accepted socket becomes a client's: TCP_NODELAY, and its address
 * ("host:port", "?:?" when unknown) written to peer. */
void rn_listen_accepted(int fd, char *peer, size_t peer_len);

/* ---- Acceptor: the accept loop every listener shares ------------------------- */

/* A multishot accept on a listening socket of one reactor's ring. Each
 * accepted socket goes to on_fd (which takes it over: it takes a slot with
 * rn_conn_slot_take or refuses). Out of descriptors, the waiting clients go
 * to refuse through rn_listen_shed; when even that fails the accept waits
 * for rn_acceptor_tick. Caller-allocated (embedded); the reactor's thread. */
typedef struct rn_acceptor {
    rn_io *io;
    int fd; /* the listening socket (owned), or -1 */
    rn_io_op op, cancel_op;
    bool armed;      /* a multishot accept is in flight */
    bool cancelling; /* its cancellation is in flight */
    bool backoff;    /* out of descriptors: rn_acceptor_tick re-arms */
    bool stopped;
    const char *listener; /* "native", "http" or "kafka", for logs */
    void (*on_fd)(void *arg, int fd);
    void (*refuse)(void *arg, int fd);
    void *arg;
} rn_acceptor;

/* Not accepting yet (fd -1). listener is borrowed (a literal). */
void rn_acceptor_init(rn_acceptor *a, const char *listener, void (*on_fd)(void *arg, int fd),
                      void (*refuse)(void *arg, int fd), void *arg);
/* Take over listening socket fd and start accepting on io. */
void rn_acceptor_start(rn_acceptor *a, rn_io *io, int fd);
/* The owner's tick: an accept that backed off (out of descriptors) resumes. */
void rn_acceptor_tick(rn_acceptor *a);
/* Stop accepting: cancel the accept in flight, close the socket. on_fd may
 * still run for a socket accepted before the cancellation lands. */
void rn_acceptor_stop(rn_acceptor *a);
/* Nothing in flight (the accept and its cancellation both done). */
bool rn_acceptor_idle(const rn_acceptor *a);
/* Close the socket if still open (the ring must be drained or freed). */
void rn_acceptor_fini(rn_acceptor *a);

#endif
