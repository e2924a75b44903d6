/*
 * quorum.c — the metadata quorum between processes (see quorum.h): the
 * driver. The quorum thread's loop, the readies it drains, the frames it
 * steps, the proposals it sends on, its status, and start and stop; the
 * rest of the quorum is in the files quorum_int.h lists (the wire, the
 * links, the state file and log, the controller's brokers, the snapshots,
 * the journal backend).
 *
 * The quorum thread's loop:
 *
 *     tick the core ─▶ proposals in (own: propose or forward to the leader)
 *        ▲            ─▶ heartbeat the leader; as leader, fence the silent
 *        │            ─▶ drain readies: state file, log, send, committed out
 *        └── poll(listener, links, wake eventfd; 10 ms) ◀── frames in: step
 *
 * Wire: quorum_wire.c's top comment. Links: quorum_links.c.
 *
 * Entries (Raft's opaque bytes) carry an envelope: u8 kind | i32 origin |
 * u64 token | payload. ENV_BATCH's payload is a journal batch (the metadata
 * facade's change); ENV_CONTROL's is one packed MetadataRecord the
 * controller writes itself (broker registration, fencing), applied here and
 * handed to the facade as a one-record batch (the image derives elections
 * from them).
 * On disk: quorum_store.c.
 *
 * Invariants:
 *  1. The quorum state is durable (tmp, fsync, rename, fsync dir) and the
 *     entries of a ready are appended with flush=always before any message
 *     of that ready is sent (raft.h's loop).
 *  2. Committed entries leave in log order, once each per process life;
 *     a restart hands over the latest valid snapshot first (as one
 *     delivery that replaces the owner's image), then the entries after it,
 *     so the image is rebuilt the same way every time.
 *  4. Snapshots (KRaft's): the quorum thread applies every committed entry
 *     to an image of its own (the same pure rn_image_apply as the owner's,
 *     so the same state), and every metadata.log.max.record.bytes.between.
 *     snapshots bytes of committed entries, and at a clean stop, writes it
 *     durably as <end>-<epoch>.checkpoint (snapshot.h), rolls the log, and
 *     hands the PREVIOUS snapshot to the core (rn_raft_compact: entries
 *     below it leave memory, a follower behind it gets it) and deletes the
 *     segments wholly below it, whose file is kept: a damaged latest
 *     snapshot falls back to it and the log after it, and a follower less
 *     than one snapshot behind catches up from entries. Older files go. A snapshot from the leader
 * (FetchSnapshot) is checked before the core sees it, stored durably, the log emptied to start at
 * its end (rn_log_truncate_fully), and handed to the owner as one delivery.
 *  5. At start the newest snapshot that decodes and that the log continues
 *     (log start <= its end) is loaded; one that does not is logged and an
 *     older one tried; with none, the log must start at 0, else the quorum
 *     refuses to start (the state below the log start is nowhere).
 *  3. A proposal is answered once: committed (its callback, from the entry),
 *     or failed (not leader long enough, timed out). A proposal that fails
 *     by timeout and commits later is applied as anyone else's would be.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/meta/quorum_int.h"
#include "broker/meta/raft.h"
#include "broker/meta/records.h"
#include "broker/meta/snapshot.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"
#include "storage/sys.h"

/* A frame holds at most FETCH_ENTRIES entries (of at most 12 MiB, the log's
 * max batch, each): RN_QUORUM_MAX_FRAME, quorum_links.c. */
#define FETCH_ENTRIES 8
#define POLL_MS          10
#define RESEND_MS        3000 /* a proposal not seen committed goes to the leader again */
#define DEFAULT_SNAPSHOT_BYTES (20 << 20) /* Kafka's default */


static uint64_t q_rand(void *ctx)
{
    rn_quorum *q = ctx;
    uint64_t x = q->rand_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    q->rand_state = x;
    return x;
}

/* ---- Committed entries out (invariant 2) ------------------------------------- */

static void waiting_remove(rn_quorum *q, uint64_t token)
{
    for (waiting **pp = &q->waiting; *pp; pp = &(*pp)->next)
        if ((*pp)->token == token) {
            waiting *w = *pp;
            *pp = w->next;
            free(w->entry);
            free(w);
            return;
        }
}

static void committed_entry(rn_quorum *q, const rn_raft_entry *e)
{
    q->applied = e->offset + 1;
    q->applied_epoch = e->epoch;
    q->since_snapshot += (int64_t)e->len + 1;
    if (e->kind != RN_RAFT_ENTRY_DATA || e->len < ENV_HDR) {
        rn__quorum_post_delivery(q, e->offset, -1, 0, 0, NULL, 0);
        return;
    }
    rd r = {e->data, e->len, 0, false};
    uint8_t kind = get_u8(&r);
    int32_t origin = get_i32(&r);
    uint64_t token = get_n(&r, 8);
    if (kind == ENV_CONTROL) {
        /* A registration gets its offset (the broker epoch) stamped here, on
         * every broker alike, so images and snapshots carry it. */
        const uint8_t *rec = e->data + ENV_HDR;
        size_t rlen = e->len - ENV_HDR;
        uint8_t *stamped = NULL;
        md_record *mr = runnel__metadata__metadata_record__unpack(NULL, rlen, rec);
        if (mr && mr->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER && mr->broker) {
            mr->broker->registered_at = e->offset;
            size_t n = runnel__metadata__metadata_record__get_packed_size(mr);
            stamped = malloc(n ? n : 1);
            if (stamped) {
                runnel__metadata__metadata_record__pack(mr, stamped);
                rec = stamped;
                rlen = n;
            } else {
                q->img_failed = true; /* this image would not be the others' */
            }
        }
        if (mr)
            runnel__metadata__metadata_record__free_unpacked(mr, NULL);
        rn__quorum_apply_control(q, e->offset, rec, rlen);
        rn__quorum_img_apply_record(q, rec, rlen);
        /* The image tracks brokers too (elections are derived from these
         * records as they apply): hand it the record as a one-record batch,
         * as every other metadata change travels. */
        uint8_t *batch = NULL;
        size_t blen = 0;
        rn_batch_builder *bb = NULL;
        if (rn_batch_builder_new(&bb, NULL) == 0 &&
            rn_batch_builder_add(bb, -1, NULL, 0, rec, rlen, NULL, 0) == 0 &&
            rn_batch_builder_finish(bb, &batch, &blen) == 0) {
            rn__quorum_post_delivery(q, e->offset, -1, 0, 0, batch, blen);
        } else {
            rn_logfmt(RN_ERROR, "out of memory handing over a metadata entry", "offset=%" PRId64,
                      e->offset);
            rn__quorum_post_delivery(q, e->offset, -1, 0, 0, NULL, 0);
        }
        rn_batch_builder_free(bb);
        free(batch);
        free(stamped);
        return;
    }
    if (kind == ENV_BATCH)
        rn__quorum_img_apply_batch(q, e->data + ENV_HDR, e->len - ENV_HDR);
    if (origin == q->cfg.node_id)
        waiting_remove(q, token);
    rn__quorum_post_delivery(q, e->offset, origin, token, 0, e->data + ENV_HDR, e->len - ENV_HDR);
}

/* ---- Readies ------------------------------------------------------------------ */

static void send_msg(rn_quorum *q, const rn_raft_msg *m, int64_t now)
{
    buf b = {0};
    put_u8(&b, FRAME_RAFT);
    rn__quorum_msg_put(&b, m);
    size_t part = q->part_bytes;
    if (b.oom || b.len <= part) {
        rn__quorum_send_frame(q, m->to, &b, now);
        free(b.p);
        return;
    }
    /* Too large for one frame (a snapshot): the body in FRAME_PART chunks,
     * back to back on the link, reassembled there before it is stepped. */
    size_t total = b.len - 1;
    if (total > MAX_MESSAGE) {
        rn_logfmt(RN_ERROR, "metadata quorum: message too large, dropped", "type=%s bytes=%zu",
                  rn_raft_msg_type_name(m->type), total);
        free(b.p);
        return;
    }
    for (size_t pos = 0; pos < total; pos += part) {
        size_t n = total - pos < part ? total - pos : part;
        buf c = {0};
        put_u8(&c, FRAME_PART);
        put_u64(&c, total);
        put_u64(&c, pos);
        buf_put(&c, b.p + 1 + pos, n);
        rn__quorum_send_frame(q, m->to, &c, now);
        free(c.p);
    }
    free(b.p);
}

/* Invariant 1: state, then log, then messages, then commits. A failure of
 * the disk stops the node: a vote or fetch position it cannot make
 * durable must never be reported. */
int rn__quorum_drain_ready(rn_quorum *q, int64_t now)
{
    while (rn_raft_has_ready(q->raft)) {
        rn_raft_ready rdy;
        rn_raft_ready_get(q->raft, &rdy);
        int rc = 0;
        if (rdy.state_changed)
            rc = rn__quorum_state_write(q, &rdy.state);
        if (rc == 0 && rdy.snapshot)
            rc = rn__quorum_snapshot_install(q, rdy.snapshot);
        if (rc == 0 && rdy.truncate_to >= 0 && rdy.truncate_to < rn_log_end_offset(q->log)) {
            int64_t new_end;
            rc = rn_log_truncate_to(q->log, rdy.truncate_to, &new_end);
        }
        for (int64_t i = 0; rc == 0 && i < rdy.n_entries; i++)
            rc = rn__quorum_log_append(q, &rdy.entries[i]);
        if (rc < 0) {
            rn_logfmt(RN_ERROR, "metadata quorum: disk failed, the quorum stops here", "err=%s",
                      rn_errname(rc));
            return rc;
        }
        for (int i = 0; i < rdy.n_msgs; i++)
            send_msg(q, &rdy.msgs[i], now);
        for (int64_t i = 0; i < rdy.n_committed; i++)
            committed_entry(q, &rdy.committed[i]);
        rn_raft_advance(q->raft, &rdy);
    }
    return 0;
}

/* ---- Frames in ---------------------------------------------------------------- */

static int propose_entry(rn_quorum *q, const uint8_t *entry, size_t len)
{
    int64_t off;
    return rn_raft_propose(q->raft, entry, len, &off);
}

static void handle_raft(rn_quorum *q, link_t *l, rd *r)
{
    rn_raft_msg m;
    rn_raft_entry *ents;
    if (rn__quorum_msg_get(r, &m, &ents) < 0 || m.to != q->cfg.node_id) {
        free(ents);
        rn_logfmt(RN_WARN, "metadata quorum: bad frame dropped", "node=%d", l->node);
        return;
    }
    l->node = m.from;
    char why[256] = "";
    if (m.type == RN_RAFT_MSG_FETCH_SNAPSHOT_RESP && m.snapshot_data &&
        !rn__quorum_snapshot_valid(&m, why, sizeof(why))) {
        /* Never installed: the core fetches it again after its backoff. */
        rn_logfmt(RN_WARN, "metadata quorum: damaged snapshot dropped",
                  "from=%d end_offset=%" PRId64 " why=\"%s\"", m.from, m.snapshot_end_offset, why);
        free(ents);
        return;
    }
    if (q->leader_hw < 0 && m.type == RN_RAFT_MSG_FETCH_RESP && m.error == 0 && m.hw > 0 &&
        m.from == m.leader_id)
        q->leader_hw = m.hw;
    int rc = rn_raft_step(q->raft, &m);
    if (rc < 0 && rc != -ENOMEM)
        rn_logfmt(RN_WARN, "metadata quorum: message refused", "from=%d type=%s err=%s why=\"%s\"",
                  m.from, rn_raft_msg_type_name(m.type), rn_errname(rc), rn_raft_errmsg(q->raft));
    free(ents);
}

/* A chunk of a RAFT frame's body (FRAME_PART): stepped when whole. One out
 * of order or over the bound drops what was gathered (Raft fetches again). */
static void handle_part(rn_quorum *q, link_t *l, rd *r)
{
    const uint8_t *msg;
    size_t len;
    int rc = rn_quorum_parts_feed(&l->part, r->p + r->pos, r->len - r->pos, &msg, &len);
    if (rc < 0) {
        rn_logfmt(RN_WARN, "metadata quorum: bad message part dropped", "node=%d err=%s", l->node,
                  rn_errname(rc));
        return;
    }
    if (rc == 1) {
        rd whole = {msg, len, 0, false};
        handle_raft(q, l, &whole);
        rn_quorum_parts_reset(&l->part);
    }
}

void rn__quorum_handle_frame(rn_quorum *q, link_t *l, const uint8_t *p, size_t len, int64_t now)
{
    rd r = {p, len, 0, false};
    uint8_t kind = get_u8(&r);
    if (kind == FRAME_RAFT) {
        handle_raft(q, l, &r);
    } else if (kind == FRAME_PART) {
        handle_part(q, l, &r);
    } else if (kind == FRAME_FORWARD) {
        int32_t origin = get_i32(&r);
        uint64_t token = get_n(&r, 8);
        if (r.bad || r.pos == r.len || r.len - r.pos > MAX_CHANGE_BYTES)
            return;
        l->node = origin;
        /* Re-envelope with the origin's node and token. */
        size_t blen = r.len - r.pos;
        uint8_t *e = malloc(ENV_HDR + blen);
        if (!e)
            return;
        buf h = {.p = e, .cap = ENV_HDR + blen};
        put_u8(&h, ENV_BATCH);
        put_u32(&h, (uint32_t)origin);
        put_u64(&h, token);
        memcpy(e + ENV_HDR, r.p + r.pos, blen);
        /* One that fails here (no longer leader) is sent again by its
         * origin to the next leader. */
        propose_entry(q, e, ENV_HDR + blen);
        free(e);
    } else if (kind == FRAME_HEARTBEAT) {
        int32_t node = get_i32(&r);
        int64_t inc = get_i64(&r);
        uint16_t n = get_u16(&r);
        const uint8_t *ep = take(&r, n);
        if (r.bad || n >= 256)
            return;
        char endpoint[256], kafka[256] = "";
        memcpy(endpoint, ep, n);
        endpoint[n] = 0;
        if (r.pos < r.len) { /* the Kafka endpoint (brokers that know of it) */
            uint16_t k = get_u16(&r);
            const uint8_t *kp = take(&r, k);
            if (r.bad || k >= sizeof(kafka))
                return;
            memcpy(kafka, kp, k);
            kafka[k] = 0;
        }
        bool leaving = false;
        if (r.pos < r.len) { /* flags (brokers that know of them) */
            uint8_t flags = get_u8(&r);
            if (r.bad)
                return;
            leaving = flags & HB_LEAVING;
        }
        l->node = node;
        rn__quorum_on_heartbeat(q, node, inc, endpoint, kafka, leaving, now);
    }
}

/* ---- The thread ------------------------------------------------------------- */

/* Proposals in from the owner; every one still waiting goes to the leader
 * of the current epoch unless it already went there (invariant 3). A
 * proposal that reached an old leader may commit besides the copy sent
 * again: the copy is then skipped by the image (a topic that exists, one
 * already deleted), and the origin is answered by the first. */
static void take_proposals(rn_quorum *q, int64_t now)
{
    pthread_mutex_lock(&q->lock);
    proposal *p = q->props;
    q->props = q->props_tail = NULL;
    pthread_mutex_unlock(&q->lock);
    waiting **tail = &q->waiting;
    while (*tail)
        tail = &(*tail)->next;
    while (p) {
        proposal *next = p->next;
        waiting *w = malloc(sizeof(*w));
        if (!w) {
            rn__quorum_post_delivery(q, -1, q->cfg.node_id, p->token, -ENOMEM, NULL, 0);
            free(p->entry);
        } else {
            *w = (waiting){.token = p->token,
                           .deadline = p->at + RN_QUORUM_PROPOSE_TIMEOUT_MS,
                           .sent_to = -1,
                           .sent_epoch = -1,
                           .entry = p->entry,
                           .len = p->len};
            *tail = w;
            tail = &w->next;
        }
        free(p);
        p = next;
    }
    int32_t leader = rn_raft_leader(q->raft), epoch = rn_raft_epoch(q->raft);
    bool lead = leader == q->cfg.node_id && rn_raft_role_of(q->raft) == RN_RAFT_LEADER;
    for (waiting **pp = &q->waiting; *pp;) {
        waiting *w = *pp;
        if (now > w->deadline) {
            *pp = w->next;
            rn__quorum_post_delivery(q, -1, q->cfg.node_id, w->token, -ETIMEDOUT, NULL, 0);
            free(w->entry);
            free(w);
            continue;
        }
        pp = &w->next;
        /* Again to the same leader after a while too: a link cut just
         * after the send loses it without a word. */
        if (leader == RN_RAFT_NONE ||
            (w->sent_to == leader && w->sent_epoch == epoch && now - w->sent_at < RESEND_MS))
            continue;
        if (lead) {
            if (propose_entry(q, w->entry, w->len) < 0)
                continue;
        } else if (leader != q->cfg.node_id) {
            buf b = {0};
            put_u8(&b, FRAME_FORWARD);
            put_u32(&b, (uint32_t)q->cfg.node_id);
            put_u64(&b, w->token);
            buf_put(&b, w->entry + ENV_HDR, w->len - ENV_HDR);
            rn__quorum_send_frame(q, leader, &b, now);
            free(b.p);
        } else {
            continue; /* named leader of this epoch but not leading yet */
        }
        w->sent_to = leader;
        w->sent_epoch = epoch;
        w->sent_at = now;
    }
}

static void publish_status(rn_quorum *q, int64_t now)
{
    rn_quorum_status st = {0};
    st.node_id = q->cfg.node_id;
    st.role = rn_raft_is_voter(q->raft) ? rn_raft_role_name(rn_raft_role_of(q->raft)) : "observer";
    st.epoch = rn_raft_epoch(q->raft);
    st.leader = rn_raft_leader(q->raft);
    st.hw = rn_raft_hw(q->raft);
    st.log_end = rn_raft_log_end(q->raft);
    st.applied = q->applied;
    st.log_start = rn_log_start_offset(q->log);
    st.snapshot_end = q->snap.end_offset;
    st.snapshots_written = q->n_snapshots;
    st.snapshots_installed = q->n_installed;
    rn_raft_voter_status vs[RN_RAFT_MAX_VOTERS];
    int nvs = rn_raft_voters_status(q->raft, vs);
    st.n_voters = q->cfg.n_voters;
    for (int i = 0; i < q->cfg.n_voters; i++) {
        rn_quorum_voter *v = &st.voters[i];
        v->id = q->voters[i].id;
        snprintf(v->endpoint, sizeof(v->endpoint), "%s:%u", q->voters[i].host, q->voters[i].port);
        v->match = v->last_fetch_ms = -1;
        for (int j = 0; j < nvs; j++)
            if (vs[j].id == v->id) {
                v->match = vs[j].match;
                v->last_fetch_ms = vs[j].last_fetch_ms < 0 ? -1 : now - vs[j].last_fetch_ms;
            }
    }
    bool leader = rn_raft_role_of(q->raft) == RN_RAFT_LEADER;
    for (int i = 0; i < q->n_brokers; i++) {
        const ctl_broker *b = &q->brokers[i];
        if (!b->registered)
            continue;
        rn_quorum_broker *o = &st.brokers[st.n_brokers++];
        o->id = b->id;
        snprintf(o->endpoint, sizeof(o->endpoint), "%s", b->endpoint);
        snprintf(o->kafka, sizeof(o->kafka), "%s", b->kafka);
        o->epoch = b->epoch;
        o->fenced = b->fenced;
        o->last_heartbeat_ms = leader ? now - b->last_hb : -1;
    }
    /* The catch-up target: what was committed when the leader was first
     * known: the hw of its first fetch answer (a restart's own hw is only
     * its snapshot's end), or ours once we lead. */
    int64_t target = q->leader_hw;
    if (target < 0 && rn_raft_role_of(q->raft) == RN_RAFT_LEADER && st.hw > 0)
        target = st.hw;
    if (__atomic_load_n(&q->catch_up_target, __ATOMIC_ACQUIRE) < 0 && target >= 0) {
        __atomic_store_n(&q->catch_up_target, target, __ATOMIC_RELEASE);
        rn__quorum_post_delivery(q, -1, -1, 0, 0, NULL, 0); /* wakes an owner waiting for it */
    }
    /* An owner waiting in rn_quorum_caught_up's loop wakes now and then to
     * see its signals. */
    if (!__atomic_load_n(&q->owner_caught_up, __ATOMIC_ACQUIRE) && ++q->n_publish % 4 == 0)
        rn__quorum_post_delivery(q, -1, -1, 0, 0, NULL, 0);
    pthread_mutex_lock(&q->lock);
    q->status = st;
    pthread_mutex_unlock(&q->lock);
}

static void *quorum_main(void *arg)
{
    rn_quorum *q = arg;
    struct pollfd pfd[MAX_LINKS + 2];
    int64_t last_status = 0;
    while (!atomic_load(&q->stop)) {
        int64_t now = mono_ms();
        rn_raft_tick(q->raft, now);
        take_proposals(q, now);
        rn__quorum_controller_tick(q, now);
        rn__quorum_heartbeat(q, now);
        if (rn__quorum_drain_ready(q, now) < 0)
            break;
        if (q->cfg.snapshot_bytes > 0 && q->since_snapshot >= q->cfg.snapshot_bytes)
            rn__quorum_snapshot_take(q, "bytes");
        if (now - last_status >= 50) {
            publish_status(q, now);
            last_status = now;
        }
        rn__quorum_links_sweep(q);
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = q->wake_fd, .events = POLLIN};
        if (q->listen_fd >= 0)
            pfd[n++] = (struct pollfd){.fd = q->listen_fd, .events = POLLIN};
        int base = n;
        for (int i = 0; i < q->n_links; i++) {
            link_t *l = &q->links[i];
            short ev = POLLIN;
            if (l->connecting || l->out_pos < l->out.len)
                ev |= POLLOUT;
            pfd[n++] = (struct pollfd){.fd = l->fd, .events = ev};
        }
        int nl = q->n_links;
        if (poll(pfd, (nfds_t)n, POLL_MS) < 0)
            continue;
        now = mono_ms();
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            if (read(q->wake_fd, &v, sizeof(v)) < 0) {
                /* a spurious wake-up: nothing to read */
            }
        }
        if (q->listen_fd >= 0 && (pfd[1].revents & POLLIN)) {
            int fd = accept4(q->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0)
                rn__quorum_link_add(q, fd, -1, false, false);
        }
        /* Links from the end: closing one moves the last into its place. */
        for (int i = nl - 1; i >= 0; i--) {
            short re = pfd[base + i].revents;
            if (!re || q->links[i].dead)
                continue;
            link_t *l = &q->links[i];
            if (l->connecting && (re & (POLLOUT | POLLERR | POLLHUP))) {
                int soerr = 0;
                socklen_t sl = sizeof(soerr);
                getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr || (re & (POLLERR | POLLHUP))) {
                    if (soerr == ECONNREFUSED && l->outbound)
                        rn__quorum_refused(q, l->node);
                    rn__quorum_link_close(q, i);
                    continue;
                }
                l->connecting = false;
            }
            if ((re & POLLOUT) && rn__quorum_link_flush(q, i) < 0)
                continue;
            if (re & (POLLIN | POLLERR | POLLHUP)) {
                int rc = rn__quorum_link_read(q, i, now);
                if (rc == -2)
                    goto failed;
            }
        }
    }
    /* A clean stop: the next start loads this and replays nothing. */
    if (q->since_snapshot > 0)
        rn__quorum_snapshot_take(q, "shutdown");
failed:
    if (rn_raft_role_of(q->raft) == RN_RAFT_LEADER && rn_raft_resign(q->raft) == 0) {
        /* EndQuorumEpoch goes out so the others elect at once. */
        int64_t now = mono_ms();
        rn__quorum_drain_ready(q, now);
        for (int i = q->n_links - 1; i >= 0; i--)
            rn__quorum_link_flush(q, i);
    }
    return NULL;
}

/* ---- Life ------------------------------------------------------------------ */

int rn_quorum_new(rn_quorum **out, const rn_quorum_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->n_voters < 1 || cfg->n_voters > RN_MAX_VOTERS || !cfg->post)
        return rn_errf(-EINVAL, err, errlen, "metadata quorum: %d voters", cfg->n_voters);
    rn_quorum *q = calloc(1, sizeof(*q));
    if (!q)
        return rn_errf(-ENOMEM, err, errlen, "metadata quorum: out of memory");
    q->cfg = *cfg;
    memcpy(q->voters, cfg->voters, (size_t)cfg->n_voters * sizeof(*q->voters));
    q->cfg.voters = q->voters;
    snprintf(q->listener, sizeof(q->listener), "%s", cfg->listener ? cfg->listener : "");
    snprintf(q->dir, sizeof(q->dir), "%s", cfg->dir);
    snprintf(q->advertised, sizeof(q->advertised), "%s", cfg->advertised);
    snprintf(q->kafka_advertised, sizeof(q->kafka_advertised), "%s",
             cfg->kafka_advertised ? cfg->kafka_advertised : "");
    q->cfg.listener = q->listener;
    q->cfg.dir = q->dir;
    q->cfg.advertised = q->advertised;
    q->cfg.kafka_advertised = q->kafka_advertised;
    q->listen_fd = q->wake_fd = -1;
    q->last_leader_seen = RN_RAFT_NONE;
    q->catch_up_target = -1;
    /* Tests make snapshots travel in parts without making them 8 MiB. */
    q->part_bytes = PART_BYTES;
    const char *pb = getenv("RN_QUORUM_PART_BYTES");
    if (pb && atol(pb) >= 64 && (size_t)atol(pb) < PART_BYTES)
        q->part_bytes = (size_t)atol(pb);
    q->leader_hw = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    q->incarnation = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->started_cond, NULL);
    *out = q;
    return 0;
}

/* On the quorum thread: its ring must be its own (single issuer). */
static int open_on_thread(rn_quorum *q, char *err, size_t errlen)
{
    int rc = rn_sys_mkdir(q->dir, 0755);
    if (rc < 0 && rc != -EEXIST)
        return rn_errf(rc, err, errlen, "metadata quorum: mkdir %s: %s", q->dir, rn_strerror(rc));
    rc = rn_io_new(&q->io, 64);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata quorum: io_uring: %s", rn_strerror(rc));
    rn_log_config lc;
    rn_log_config_default(&lc);
    lc.segment_bytes = 16u << 20;
    lc.max_batch_bytes = 12u << 20;
    lc.flush = RN_FLUSH_ALWAYS; /* invariant 1 */
    lc.roll_ms = 0;
    lc.retention_ms = -1;
    lc.retention_bytes = -1;
    rn_log_open_info info;
    rc = rn_log_open(&q->log, q->io, q->dir, RN_METADATA_DIR_NAME, &lc, &info);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata log %s: open: %s", q->dir, rn_strerror(rc));
    rn_raft_quorum_state st;
    rc = rn__quorum_state_read(q, &st);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata quorum: %s/quorum-state: %s", q->dir,
                       rn_strerror(rc));
    rc = rn_image_new(&q->img);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata quorum: out of memory");
    uint8_t *snap_data = NULL;
    size_t snap_len = 0;
    rc = rn__quorum_snapshot_load(q, &snap_data, &snap_len, err, errlen);
    if (rc < 0)
        return rc;
    rn_raft_snapshot rsnap = {q->snap.end_offset, q->snap.epoch, snap_data, snap_len};
    loaded ld = {0};
    int64_t from = rn_log_start_offset(q->log);
    if (q->snap.end_offset > from)
        from = q->snap.end_offset;
    rc = rn__quorum_log_load(q, from, &ld);
    if (rc < 0) {
        free(snap_data);
        for (int64_t i = 0; i < ld.n; i++)
            free((void *)ld.e[i].data);
        free(ld.e);
        return rn_errf(rc, err, errlen, "metadata log %s: reading back: %s", q->dir,
                       rn_strerror(rc));
    }
    int32_t ids[RN_RAFT_MAX_VOTERS];
    for (int i = 0; i < q->cfg.n_voters; i++)
        ids[i] = q->voters[i].id;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed) || seed == 0)
        seed = (uint64_t)mono_ms() * 2654435761u + (uint64_t)q->cfg.node_id + 1;
    q->rand_state = seed;
    rn_raft_config rc_ = {
        .node_id = q->cfg.node_id,
        .voters = ids,
        .n_voters = q->cfg.n_voters,
        .election_timeout_ms = q->cfg.election_timeout_ms,
        .fetch_timeout_ms = q->cfg.fetch_timeout_ms,
        .retry_backoff_ms = 20,
        .max_fetch_entries = FETCH_ENTRIES,
        .rand = q_rand,
        .rand_ctx = q,
        .now_ms = mono_ms(),
        .state = &st,
        .snapshot = snap_data ? &rsnap : NULL,
        .entries = ld.e,
        .n_entries = ld.n,
    };
    char rerr[256] = "";
    rc = rn_raft_new(&rc_, &q->raft, rerr, sizeof(rerr));
    if (rc == 0 && snap_data)
        rc = rn__quorum_post_snapshot(q, q->snap.end_offset, snap_data, snap_len);
    q->snap_bytes = snap_data; /* the core's snapshot once the next one is taken */
    q->snap_len = snap_len;
    for (int64_t i = 0; i < ld.n; i++)
        free((void *)ld.e[i].data);
    free(ld.e);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata quorum: %s", rerr);
    rn_logfmt(RN_INFO, "metadata quorum opened",
              "node=%d voters=%d epoch=%d voted_for=%d log_start=%" PRId64 " log_end=%" PRId64
              " snapshot_end=%" PRId64,
              q->cfg.node_id, q->cfg.n_voters, st.epoch, st.voted_for, rn_log_start_offset(q->log),
              rn_log_end_offset(q->log), q->snap.end_offset);
    if (q->listener[0] && (rc = rn__quorum_bind_listener(q, err, errlen)) < 0)
        return rc;
    return 0;
}

static void *thread_main(void *arg)
{
    rn_quorum *q = arg;
    char err[512] = "";
    int rc = open_on_thread(q, err, sizeof(err));
    pthread_mutex_lock(&q->lock);
    q->start_rc = rc;
    snprintf(q->start_err, sizeof(q->start_err), "%s", err);
    q->start_done = true;
    pthread_cond_broadcast(&q->started_cond);
    pthread_mutex_unlock(&q->lock);
    if (rc == 0)
        quorum_main(q);
    return NULL;
}

int rn_quorum_start(rn_quorum *q, char *err, size_t errlen)
{
    q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->wake_fd < 0)
        return rn_errf(-errno, err, errlen, "metadata quorum: eventfd: %s", strerror(errno));
    int rc = pthread_create(&q->thread, NULL, thread_main, q);
    if (rc != 0)
        return rn_errf(-rc, err, errlen, "metadata quorum: thread: %s", strerror(rc));
    q->started = true;
    pthread_mutex_lock(&q->lock);
    while (!q->start_done)
        pthread_cond_wait(&q->started_cond, &q->lock);
    rc = q->start_rc;
    pthread_mutex_unlock(&q->lock);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "%s", q->start_err);
    return 0;
}

void rn_quorum_leave(rn_quorum *q)
{
    if (__atomic_exchange_n(&q->leaving, true, __ATOMIC_ACQ_REL))
        return;
    uint64_t one = 1;
    if (write(q->wake_fd, &one, sizeof(one)) < 0) {
        /* the thread polls every POLL_MS anyway */
    }
}

bool rn_quorum_left(rn_quorum *q)
{
    return __atomic_load_n(&q->left, __ATOMIC_ACQUIRE);
}

void rn_quorum_free(rn_quorum *q)
{
    if (!q)
        return;
    if (q->started) {
        atomic_store(&q->stop, true);
        uint64_t one = 1;
        if (write(q->wake_fd, &one, sizeof(one)) < 0) {
            /* the thread polls every POLL_MS anyway */
        }
        pthread_join(q->thread, NULL);
    }
    if (q->qj)
        /* The journal outlives the quorum (closed with the metadata). */
        rn__quorum_journal_detach(q->qj);
    while (q->n_links)
        rn__quorum_link_close_now(q, q->n_links - 1);
    if (q->listen_fd >= 0)
        close(q->listen_fd);
    if (q->wake_fd >= 0)
        close(q->wake_fd);
    /* The thread has ended: its ring and log are closed here, where no
     * other thread submits any more. */
    rn_raft_free(q->raft);
    rn_image_free(q->img);
    free(q->snap_bytes);
    if (q->log)
        rn_log_close(q->log);
    if (q->io)
        rn_io_free(q->io);
    for (proposal *p = q->props; p;) {
        proposal *n = p->next;
        free(p->entry);
        free(p);
        p = n;
    }
    for (waiting *w = q->waiting; w;) {
        waiting *n = w->next;
        free(w->entry);
        free(w);
        w = n;
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->started_cond);
    free(q);
}

void rn_quorum_status_get(rn_quorum *q, rn_quorum_status *st)
{
    pthread_mutex_lock(&q->lock);
    *st = q->status;
    pthread_mutex_unlock(&q->lock);
    if (!st->role)
        st->role = "starting";
}
