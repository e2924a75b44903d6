/*
 * quorum_brokers.c — the controller's brokers (see quorum_int.h for the
 * other files of the quorum; quorum.h for the rules): registration,
 * heartbeats, fencing. Quorum thread only.
 *
 * Every broker heartbeats the leader (rn__quorum_heartbeat: a HEARTBEAT
 * frame, or a call to itself when it leads). The leader alone decides:
 * a broker not registered, restarted (a new incarnation) or moved gets a
 * BrokerRecord, one silent for a session (or gone: no link and two missed
 * heartbeats) or leaving gets a BrokerFenceRecord fenced, one fenced that
 * heartbeats again one unfenced; at most one proposal per broker every
 * CONTROL_RETRY_MS. Those records are ENV_CONTROL entries, and every broker
 * applies them as they commit (rn__quorum_apply_control), so the list here
 * is the log's on every broker; after a snapshot it is read back from the
 * image (rn__quorum_brokers_from_image).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/logfmt.h"
#include "broker/meta/metadata.h"
#include "broker/meta/quorum.h"
#include "broker/meta/quorum_int.h"
#include "broker/meta/raft.h"
#include "broker/meta/records.h"
#include "protocol/errors.h"

#define CONTROL_RETRY_MS 1000 /* at most one record proposed for a broker this often */

static ctl_broker *broker_find(rn_quorum *q, int32_t id, bool add)
{
    for (int i = 0; i < q->n_brokers; i++)
        if (q->brokers[i].id == id)
            return &q->brokers[i];
    if (!add || q->n_brokers == (int)(sizeof(q->brokers) / sizeof(q->brokers[0])))
        return NULL;
    ctl_broker *b = &q->brokers[q->n_brokers++];
    *b = (ctl_broker){.id = id, .last_hb = mono_ms()};
    return b;
}

void rn__quorum_apply_control(rn_quorum *q, int64_t offset, const uint8_t *p, size_t len)
{
    md_record *r = runnel__metadata__metadata_record__unpack(NULL, len, p);
    if (!r) {
        rn_logfmt(RN_WARN, "metadata control record does not decode", "offset=%" PRId64, offset);
        return;
    }
    if (r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER && r->broker) {
        ctl_broker *b = broker_find(q, r->broker->node_id, true);
        if (b) {
            snprintf(b->endpoint, sizeof(b->endpoint), "%s:%u", r->broker->host, r->broker->port);
            snprintf(b->kafka, sizeof(b->kafka), "%s",
                     r->broker->kafka_endpoint ? r->broker->kafka_endpoint : "");
            b->incarnation = r->broker->incarnation;
            b->epoch = offset;
            b->fenced = r->broker->fenced;
            b->registered = true;
            rn_logfmt(RN_INFO, "broker registered", "node=%d endpoint=%s epoch=%" PRId64, b->id,
                      b->endpoint, offset);
        }
    } else if (r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER_FENCE &&
               r->broker_fence) {
        ctl_broker *b = broker_find(q, r->broker_fence->node_id, false);
        if (b && b->fenced != r->broker_fence->fenced) {
            b->fenced = r->broker_fence->fenced;
            rn_logfmt(RN_INFO, b->fenced ? "broker fenced" : "broker unfenced",
                      "node=%d offset=%" PRId64, b->id, offset);
        }
        if (b && b->id == q->cfg.node_id && b->fenced &&
            __atomic_load_n(&q->leaving, __ATOMIC_ACQUIRE))
            __atomic_store_n(&q->left, true, __ATOMIC_RELEASE);
    }
    runnel__metadata__metadata_record__free_unpacked(r, NULL);
}

/* Leader only: propose one control record (invariant: only the leader
 * writes them, so brokers agree on what the log says). */
static void propose_control(rn_quorum *q, const md_record *r)
{
    size_t n = runnel__metadata__metadata_record__get_packed_size(r);
    uint8_t *e = malloc(ENV_HDR + n);
    if (!e)
        return;
    e[0] = ENV_CONTROL;
    memset(e + 1, 0, ENV_HDR - 1);
    runnel__metadata__metadata_record__pack(r, e + ENV_HDR);
    int64_t off;
    int rc = rn_raft_propose(q->raft, e, ENV_HDR + n, &off);
    free(e);
    if (rc < 0)
        rn_logfmt(RN_WARN, "controller record not proposed", "err=%s", rn_errname(rc));
}

void rn__quorum_on_heartbeat(rn_quorum *q, int32_t node, int64_t incarnation, const char *endpoint,
                             const char *kafka, bool leaving, int64_t now)
{
    ctl_broker *b = broker_find(q, node, true);
    if (!b)
        return;
    b->last_hb = now;
    if (rn_raft_role_of(q->raft) != RN_RAFT_LEADER || now - b->last_prop < CONTROL_RETRY_MS)
        return;
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
    if (leaving) {
        /* Controlled shutdown (Kafka's): fence it now, so its leaderships
         * move while it still answers, instead of after a session of
         * silence; and never unfence it while it says it is leaving. */
        if (!b->registered || b->fenced || b->incarnation != incarnation)
            return;
        Runnel__Metadata__BrokerFenceRecord fr = RUNNEL__METADATA__BROKER_FENCE_RECORD__INIT;
        fr.node_id = node;
        fr.fenced = true;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER_FENCE;
        r.broker_fence = &fr;
        b->last_prop = now;
        rn_logfmt(RN_INFO, "broker leaving: fencing it", "node=%d", node);
        propose_control(q, &r);
        return;
    }
    if (!b->registered || b->incarnation != incarnation || strcmp(b->endpoint, endpoint) != 0 ||
        strcmp(b->kafka, kafka) != 0) {
        Runnel__Metadata__BrokerRecord br = RUNNEL__METADATA__BROKER_RECORD__INIT;
        char host[256];
        const char *colon = strrchr(endpoint, ':');
        if (!colon || (size_t)(colon - endpoint) >= sizeof(host))
            return;
        memcpy(host, endpoint, (size_t)(colon - endpoint));
        host[colon - endpoint] = 0;
        br.node_id = node;
        br.host = host;
        br.port = (uint32_t)atoi(colon + 1);
        br.incarnation = incarnation;
        br.kafka_endpoint = (char *)kafka;
        br.fenced = false;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER;
        r.broker = &br;
        b->last_prop = now;
        propose_control(q, &r);
    } else if (b->fenced) {
        Runnel__Metadata__BrokerFenceRecord fr = RUNNEL__METADATA__BROKER_FENCE_RECORD__INIT;
        fr.node_id = node;
        fr.fenced = false;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER_FENCE;
        r.broker_fence = &fr;
        b->last_prop = now;
        propose_control(q, &r);
    }
}

void rn__quorum_controller_tick(rn_quorum *q, int64_t now)
{
    rn_raft_role role = rn_raft_role_of(q->raft);
    if (role == RN_RAFT_LEADER &&
        (q->last_role != RN_RAFT_LEADER || q->last_epoch_seen != rn_raft_epoch(q->raft))) {
        /* A new controller gives every broker a whole session to find it. */
        for (int i = 0; i < q->n_brokers; i++)
            q->brokers[i].last_hb = now;
        rn_logfmt(RN_INFO, "active controller", "node=%d epoch=%d", q->cfg.node_id,
                  rn_raft_epoch(q->raft));
    }
    if (rn_raft_leader(q->raft) != q->last_leader_seen && rn_raft_leader(q->raft) != RN_RAFT_NONE)
        rn_logfmt(RN_INFO, "quorum leader", "leader=%d epoch=%d role=%s", rn_raft_leader(q->raft),
                  rn_raft_epoch(q->raft), rn_raft_role_name(role));
    q->last_role = role;
    q->last_epoch_seen = rn_raft_epoch(q->raft);
    q->last_leader_seen = rn_raft_leader(q->raft);
    if (role != RN_RAFT_LEADER)
        return;
    for (int i = 0; i < q->n_brokers; i++) {
        ctl_broker *b = &q->brokers[i];
        if (!b->registered || b->fenced || now - b->last_prop < CONTROL_RETRY_MS ||
            b->id == q->cfg.node_id)
            continue;
        /* A broker is fenced after a session of silence (a hung process, a
         * network cut that drops packets), or after two missed heartbeats
         * once no link to it is open: a killed process's sockets close at
         * once, so its leaderships move in about a second instead of a
         * whole session (DESIGN §8's failover bound). */
        int64_t silent = now - b->last_hb;
        bool gone = silent > 2 * q->cfg.heartbeat_interval_ms && !rn__quorum_has_link(q, b->id);
        if (silent <= q->cfg.session_timeout_ms && !gone)
            continue;
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        Runnel__Metadata__BrokerFenceRecord fr = RUNNEL__METADATA__BROKER_FENCE_RECORD__INIT;
        fr.node_id = b->id;
        fr.fenced = true;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER_FENCE;
        r.broker_fence = &fr;
        b->last_prop = now;
        rn_logfmt(RN_INFO, gone ? "broker unreachable" : "broker session expired",
                  "node=%d silent_ms=%" PRId64, b->id, silent);
        propose_control(q, &r);
    }
}

/* The controller's broker list from the image (after a snapshot): who is
 * registered, with which incarnation and broker epoch, fenced or not. */
void rn__quorum_brokers_from_image(rn_quorum *q)
{
    for (int i = 0; i < q->n_brokers; i++)
        q->brokers[i].registered = false;
    for (unsigned i = 0; i < rn_image_broker_count(q->img); i++) {
        const rn_broker_info *bi = rn_image_broker_at(q->img, i);
        ctl_broker *b = broker_find(q, bi->id, true);
        if (!b)
            continue;
        snprintf(b->endpoint, sizeof(b->endpoint), "%s", bi->endpoint);
        snprintf(b->kafka, sizeof(b->kafka), "%s", bi->kafka ? bi->kafka : "");
        b->incarnation = bi->epoch;
        b->epoch = bi->registered_at > 0 ? bi->registered_at : -1;
        b->fenced = bi->fenced;
        b->registered = true;
    }
}

void rn__quorum_heartbeat(rn_quorum *q, int64_t now)
{
    int32_t leader = rn_raft_leader(q->raft);
    bool leaving = __atomic_load_n(&q->leaving, __ATOMIC_ACQUIRE);
    /* Leaving: say so at once, and again until the fence commits. */
    int64_t every = leaving ? CONTROL_RETRY_MS : q->cfg.heartbeat_interval_ms;
    if (leader == RN_RAFT_NONE || (now - q->last_hb_sent < every && !(leaving && !q->leave_said)))
        return;
    q->leave_said = leaving;
    q->last_hb_sent = now;
    if (leader == q->cfg.node_id) {
        rn__quorum_on_heartbeat(q, q->cfg.node_id, q->incarnation, q->advertised,
                                q->kafka_advertised, leaving, now);
        return;
    }
    buf b = {0};
    size_t n = strlen(q->advertised);
    put_u8(&b, FRAME_HEARTBEAT);
    put_u32(&b, (uint32_t)q->cfg.node_id);
    put_u64(&b, (uint64_t)q->incarnation);
    put_u16(&b, (uint16_t)n);
    buf_put(&b, q->advertised, n);
    size_t k = strlen(q->kafka_advertised);
    put_u16(&b, (uint16_t)k);
    buf_put(&b, q->kafka_advertised, k);
    put_u8(&b, leaving ? HB_LEAVING : 0);
    rn__quorum_send_frame(q, leader, &b, now);
    free(b.p);
}
