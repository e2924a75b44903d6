/*
 * quorum_links.c — the metadata quorum's links (see quorum_int.h for the
 * other files of the quorum): the controller listener, one TCP link to each
 * voter dialled on demand, the links others opened to us, and the frames
 * read out of each link's byte stream and written into it (u32 length |
 * body; the bodies: quorum_wire.c). Quorum thread only.
 *
 * A link is just a byte stream of frames: a node connects to every other
 * voter (and answers on whichever link a node last spoke from, so a broker
 * that is no voter gets its answers), frames are never answered by
 * position, and a lost link loses messages, which Raft retries. Frames are
 * bounded (RN_QUORUM_MAX_FRAME) before anything is allocated for them, and
 * a link that falls LINK_MAX_OUT behind is cut.
 *
 * Links are found by index while frames are handled: a failed one is only
 * marked dead (rn__quorum_link_close) and closed by the sweep before the
 * loop polls again (rn__quorum_links_sweep), since closing moves the last
 * link into the hole.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/logfmt.h"
#include "broker/meta/quorum.h"
#include "broker/meta/quorum_int.h"
#include "broker/meta/raft.h"
#include "protocol/errors.h"

/* A frame holds at most quorum.c's FETCH_ENTRIES entries of at most 12 MiB
 * (the log's max batch) each. */
#define RN_QUORUM_MAX_FRAME (128u << 20)
#define LINK_MAX_OUT        (256u << 20) /* a link this far behind is cut */
#define RECONNECT_MS        100

/* Close now: only where no index into links is held (the sweep, the end). */
void rn__quorum_link_close_now(rn_quorum *q, int i)
{
    link_t *l = &q->links[i];
    close(l->fd);
    free(l->in.p);
    free(l->out.p);
    rn_quorum_parts_reset(&l->part);
    q->links[i] = q->links[--q->n_links];
}

/* A failed link is only marked: links are found by index while frames are
 * handled, and closing moves the last one into the hole. The loop sweeps
 * the dead ones before it polls again. */
void rn__quorum_link_close(rn_quorum *q, int i)
{
    q->links[i].dead = true;
}

void rn__quorum_links_sweep(rn_quorum *q)
{
    for (int i = q->n_links - 1; i >= 0; i--)
        if (q->links[i].dead)
            rn__quorum_link_close_now(q, i);
}

int rn__quorum_link_add(rn_quorum *q, int fd, int32_t node, bool outbound, bool connecting)
{
    if (q->n_links == MAX_LINKS) {
        close(fd);
        return -EMFILE;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    q->links[q->n_links++] =
        (link_t){.fd = fd, .node = node, .outbound = outbound, .connecting = connecting};
    return q->n_links - 1;
}

static const rn_voter *voter_of(rn_quorum *q, int32_t id)
{
    for (int i = 0; i < q->cfg.n_voters; i++)
        if (q->voters[i].id == id)
            return &q->voters[i];
    return NULL;
}

/* node's listener refused a connection: no process of it is there. When it
 * was our leader, campaign now rather than a fetch timeout later (the
 * survivors all see the refusal, so their pre-votes agree). */
void rn__quorum_refused(rn_quorum *q, int32_t node)
{
    if (node == rn_raft_leader(q->raft) && node != q->cfg.node_id &&
        rn_raft_role_of(q->raft) == RN_RAFT_FOLLOWER) {
        rn_logfmt(RN_INFO, "quorum leader unreachable", "leader=%d epoch=%d", node,
                  rn_raft_epoch(q->raft));
        rn_raft_leader_unreachable(q->raft);
    }
}

/* The link to node: one we dialled, else the last one it spoke on; dial a
 * voter when there is none. -1 when none can be had now. */
static int link_to(rn_quorum *q, int32_t node, int64_t now)
{
    int found = -1;
    for (int i = 0; i < q->n_links; i++)
        if (q->links[i].node == node && !q->links[i].dead) {
            if (q->links[i].outbound)
                return i;
            found = i;
        }
    const rn_voter *v = voter_of(q, node);
    if (!v)
        return found;
    int vi = (int)(v - q->voters);
    if (now < q->next_connect[vi])
        return found;
    q->next_connect[vi] = now + RECONNECT_MS;
    char port[8];
    snprintf(port, sizeof(port), "%u", v->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(v->host, port, &hints, &ai) != 0)
        return found;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (fd < 0)
        return found;
    if (rc < 0 && errno != EINPROGRESS) {
        if (errno == ECONNREFUSED)
            rn__quorum_refused(q, node);
        close(fd);
        return found;
    }
    return rn__quorum_link_add(q, fd, node, true, rc < 0);
}

/* Write what the link holds; -1 when the link failed (closed). */
int rn__quorum_link_flush(rn_quorum *q, int i)
{
    link_t *l = &q->links[i];
    if (l->connecting || l->dead)
        return 0;
    while (l->out_pos < l->out.len) {
        ssize_t n = send(l->fd, l->out.p + l->out_pos, l->out.len - l->out_pos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            rn__quorum_link_close(q, i);
            return -1;
        }
        l->out_pos += (size_t)n;
    }
    l->out.len = l->out_pos = 0;
    return 0;
}

void rn__quorum_send_frame(rn_quorum *q, int32_t node, const buf *body, int64_t now)
{
    if (body->oom || body->len + 4 > RN_QUORUM_MAX_FRAME)
        return; /* dropped: Raft retries */
    int i = link_to(q, node, now);
    if (i < 0)
        return;
    link_t *l = &q->links[i];
    if (l->out.len - l->out_pos > LINK_MAX_OUT) {
        rn__quorum_link_close(q, i);
        return;
    }
    put_u32(&l->out, (uint32_t)body->len);
    buf_put(&l->out, body->p, body->len);
    if (l->out.oom) {
        rn__quorum_link_close(q, i);
        return;
    }
    rn__quorum_link_flush(q, i);
}

/* Whether a link to node is open (connected, in either direction). */
bool rn__quorum_has_link(const rn_quorum *q, int32_t node)
{
    for (int i = 0; i < q->n_links; i++)
        if (q->links[i].node == node && !q->links[i].dead && !q->links[i].connecting)
            return true;
    return false;
}

/* Read what the link has; frames out of it. -1 when it closed. */
int rn__quorum_link_read(rn_quorum *q, int i, int64_t now)
{
    link_t *l = &q->links[i];
    uint8_t tmp[65536];
    for (;;) {
        ssize_t n = recv(l->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            rn__quorum_link_close(q, i);
            return -1;
        }
        buf_put(&l->in, tmp, (size_t)n);
        if (l->in.oom) {
            rn__quorum_link_close(q, i);
            return -1;
        }
        if ((size_t)n < sizeof(tmp))
            break;
    }
    size_t pos = 0;
    while (l->in.len - pos >= 4) {
        rd r = {l->in.p + pos, 4, 0, false};
        uint32_t flen = get_u32(&r);
        if (flen == 0 || flen > RN_QUORUM_MAX_FRAME) {
            rn_logfmt(RN_WARN, "metadata quorum: oversized frame, link cut", "len=%u", flen);
            rn__quorum_link_close(q, i);
            return -1;
        }
        if (l->in.len - pos - 4 < flen)
            break;
        rn__quorum_handle_frame(q, l, l->in.p + pos + 4, flen, now);
        pos += 4 + flen;
        if (rn__quorum_drain_ready(q, now) < 0)
            return -2;
        if (l->dead) /* a send on it failed meanwhile */
            return -1;
    }
    if (pos) {
        memmove(l->in.p, l->in.p + pos, l->in.len - pos);
        l->in.len -= pos;
    }
    return 0;
}

int rn__quorum_bind_listener(rn_quorum *q, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (rn_config_parse_hostport(q->listener, host, sizeof(host), &port) < 0)
        return rn_errf(-EINVAL, err, errlen, "controller.listener %s: not host:port", q->listener);
    char ports[8];
    snprintf(ports, sizeof(ports), "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    if (getaddrinfo(host, ports, &hints, &ai) != 0)
        return rn_errf(-EINVAL, err, errlen, "controller.listener %s: cannot resolve", q->listener);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, rc = 0;
    if (fd < 0)
        rc = -errno;
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
             bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0)
        rc = -errno;
    freeaddrinfo(ai);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rn_errf(rc, err, errlen, "controller.listener %s: %s", q->listener, rn_strerror(rc));
    }
    q->listen_fd = fd;
    return 0;
}
