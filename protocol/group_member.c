/*
 * group_member.c — the consumer-group member state machine (see
 * group_member.h for the states, the calls that move between them and the
 * invariants). Pure: no I/O, no clock; allocation only for copies of names.
 *
 * Sets of partitions are small arrays scanned linearly: a member owns a
 * handful to a few hundred partitions, and a heartbeat every second or so
 * walks them once or twice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/group_member.h"

static void tps_free(rn_member_tp *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].topic);
    free(v);
}

static bool tps_has(const rn_member_tp *v, size_t n, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].partition == partition && strcmp(v[i].topic, topic) == 0)
            return true;
    return false;
}

static void drop_target(rn_member *m)
{
    tps_free(m->target, m->n_target);
    m->target = NULL;
    m->n_target = 0;
    m->have_target = false;
}

void rn_member_init(rn_member *m, const rn_member_conf *conf)
{
    *m = (rn_member){.conf = *conf};
}

void rn_member_fini(rn_member *m)
{
    for (size_t i = 0; i < m->n_topics; i++)
        free(m->topics[i]);
    free(m->topics);
    free(m->member_id);
    tps_free(m->owned, m->n_owned);
    tps_free(m->target, m->n_target);
    *m = (rn_member){.conf = m->conf, .gen = m->gen};
}

int rn_member_subscribe(rn_member *m, const char *const *topics, size_t n_topics, int64_t now)
{
    char **v = calloc(n_topics ? n_topics : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n_topics; i++) {
        if (!(v[i] = strdup(topics[i]))) {
            for (size_t k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < m->n_topics; i++)
        free(m->topics[i]);
    free(m->topics);
    m->topics = v;
    m->n_topics = n_topics;
    if (!m->on) {
        m->on = true;
        m->epoch = 0;
    }
    m->hb_next = now; /* the coordinator hears of the new subscription at once */
    return 0;
}

bool rn_member_heartbeat_due(const rn_member *m, int64_t now)
{
    /* Not while fenced: what we own must be given up first (invariant 4). */
    return m->on && !m->inflight && !m->fenced && now >= m->hb_next;
}

static int cmp_tp(const void *x, const void *y)
{
    const rn_member_tp *a = *(const rn_member_tp *const *)x, *b = *(const rn_member_tp *const *)y;
    int r = strcmp(a->topic, b->topic);
    return r ? r : (a->partition > b->partition) - (a->partition < b->partition);
}

static void request_base(const rn_member *m, rn_member_req *out)
{
    *out = (rn_member_req){0};
    runnel__group_heartbeat_request__init(&out->req);
    out->req.member_id = m->member_id ? m->member_id : (char *)"";
    out->req.member_epoch = m->epoch;
    out->req.n_subscribed_topics = m->n_topics;
    out->req.subscribed_topics = m->topics;
}

int rn_member_request(const rn_member *m, rn_member_req *out)
{
    request_base(m, out);
    size_t n = m->n_owned;
    const rn_member_tp **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    out->tps = calloc(n ? n : 1, sizeof(*out->tps));
    out->tpp = calloc(n ? n : 1, sizeof(*out->tpp));
    out->pids = calloc(n ? n : 1, sizeof(*out->pids));
    if (!sorted || !out->tps || !out->tpp || !out->pids) {
        free(sorted);
        rn_member_request_fini(out);
        return -ENOMEM;
    }
    /* What we own, one TopicPartitions per topic (invariant 2). */
    for (size_t i = 0; i < n; i++)
        sorted[i] = &m->owned[i];
    qsort(sorted, n, sizeof(*sorted), cmp_tp);
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(sorted[i]->topic, sorted[i - 1]->topic) != 0) {
            runnel__topic_partitions__init(&out->tps[nt]);
            out->tps[nt].topic = sorted[i]->topic;
            out->tps[nt].partitions = &out->pids[i];
            out->tpp[nt] = &out->tps[nt];
            nt++;
        }
        out->pids[i] = sorted[i]->partition;
        out->tps[nt - 1].n_partitions++;
    }
    free(sorted);
    out->req.n_owned = nt;
    out->req.owned = out->tpp;
    return 0;
}

int rn_member_leave_request(const rn_member *m, rn_member_req *out)
{
    request_base(m, out);
    out->req.member_epoch = -1;
    return m->member_id != NULL;
}

void rn_member_request_fini(rn_member_req *r)
{
    free(r->tps);
    free(r->tpp);
    free(r->pids);
    r->tps = NULL;
    r->tpp = NULL;
    r->pids = NULL;
}

void rn_member_sent(rn_member *m, int64_t now, bool ok)
{
    if (ok)
        m->inflight = true;
    else
        m->hb_next = now + m->conf.retry_backoff_ms;
}

uint32_t rn_member_gen(const rn_member *m)
{
    return m->gen;
}

int rn_member_step(rn_member *m, uint32_t gen, int64_t now, int err,
                   const Runnel__GroupHeartbeatResponse *hr)
{
    if (gen != m->gen || !m->on)
        return RN_MEMBER_STALE; /* sent before an unsubscribe: that membership is over */
    m->inflight = false;
    if (err == -RN_E_UNKNOWN_MEMBER || err == -RN_E_FENCED_MEMBER_EPOCH) {
        /* The coordinator dropped us (session timeout, restart): whatever we
         * hold may be someone else's already. */
        m->fenced = true;
        m->hb_next = now;
        return RN_MEMBER_FENCED;
    }
    if (err || !hr) {
        m->hb_next = now + m->conf.retry_backoff_ms;
        return RN_MEMBER_RETRY;
    }
    if (hr->member_epoch < m->epoch) {
        /* Epochs only move forward (invariant 3): an answer that would take
         * ours back is not the coordinator's current word. Ask again. */
        m->hb_next = now + m->conf.retry_backoff_ms;
        return RN_MEMBER_STALE;
    }
    size_t n = 0;
    for (size_t i = 0; i < hr->n_assignment; i++)
        n += hr->assignment[i]->n_partitions;
    rn_member_tp *t = calloc(n ? n : 1, sizeof(*t));
    char *mid = hr->member_id && *hr->member_id ? strdup(hr->member_id) : NULL;
    size_t k = 0;
    for (size_t i = 0; t && i < hr->n_assignment; i++)
        for (size_t j = 0; j < hr->assignment[i]->n_partitions; j++, k++) {
            t[k].partition = hr->assignment[i]->partitions[j];
            if (!(t[k].topic = strdup(hr->assignment[i]->topic))) {
                tps_free(t, k);
                t = NULL;
                break;
            }
        }
    if (!t || (hr->member_id && *hr->member_id && !mid)) {
        /* Out of memory: ask again soon; the answer will be the same. */
        free(mid);
        if (t)
            tps_free(t, n);
        m->hb_next = now + m->conf.retry_backoff_ms;
        return -ENOMEM;
    }
    if (mid) {
        free(m->member_id);
        m->member_id = mid;
    }
    m->epoch = hr->member_epoch;
    tps_free(m->target, m->n_target);
    m->target = t;
    m->n_target = n;
    m->have_target = true;
    m->last_ok = now;
    /* The coordinator's interval is short while partitions move; ours bounds
     * it when it is long. */
    int64_t interval = m->conf.default_interval_ms;
    if (hr->heartbeat_interval_ms > 0)
        interval = hr->heartbeat_interval_ms < m->conf.max_interval_ms ? hr->heartbeat_interval_ms
                                                                       : m->conf.max_interval_ms;
    m->hb_next = now + interval;
    return RN_MEMBER_OK;
}

bool rn_member_must_lose(const rn_member *m, int64_t now)
{
    if (!m->on)
        return false;
    if (m->fenced)
        return true;
    /* No answer for a whole session: the coordinator has dropped us. */
    return m->conf.session_timeout_ms > 0 && m->last_ok &&
           now - m->last_ok > m->conf.session_timeout_ms && m->n_owned;
}

void rn_member_lost(rn_member *m, int64_t now)
{
    tps_free(m->owned, m->n_owned);
    m->owned = NULL;
    m->n_owned = 0;
    m->epoch = 0;
    m->fenced = false;
    drop_target(m);
    m->hb_next = now;
}

bool rn_member_has_changes(const rn_member *m)
{
    return m->on && m->have_target;
}

static int copy_tp(rn_member_tp *to, const rn_member_tp *from)
{
    to->partition = from->partition;
    return (to->topic = strdup(from->topic)) ? 0 : -ENOMEM;
}

int rn_member_changes_take(rn_member *m, rn_member_changes *out)
{
    *out = (rn_member_changes){0};
    if (!rn_member_has_changes(m))
        return 0;
    size_t n_rev = 0, n_asg = 0;
    for (size_t i = 0; i < m->n_owned; i++)
        n_rev += !tps_has(m->target, m->n_target, m->owned[i].topic, m->owned[i].partition);
    for (size_t i = 0; i < m->n_target; i++)
        n_asg += !tps_has(m->owned, m->n_owned, m->target[i].topic, m->target[i].partition);
    out->revoke = calloc(n_rev ? n_rev : 1, sizeof(*out->revoke));
    out->assign = calloc(n_asg ? n_asg : 1, sizeof(*out->assign));
    if (!out->revoke || !out->assign)
        goto nomem;
    for (size_t i = 0; i < m->n_owned; i++)
        if (!tps_has(m->target, m->n_target, m->owned[i].topic, m->owned[i].partition) &&
            copy_tp(&out->revoke[out->n_revoke++], &m->owned[i]) < 0)
            goto nomem;
    for (size_t i = 0; i < m->n_target; i++)
        if (!tps_has(m->owned, m->n_owned, m->target[i].topic, m->target[i].partition) &&
            copy_tp(&out->assign[out->n_assign++], &m->target[i]) < 0)
            goto nomem;
    drop_target(m);
    return 0;
nomem:
    /* Try the whole answer again later rather than half of it. */
    rn_member_changes_fini(out);
    return -ENOMEM;
}

void rn_member_changes_fini(rn_member_changes *ch)
{
    /* calloc'ed: an entry whose copy failed has a NULL topic, freed as such. */
    if (ch->revoke)
        tps_free(ch->revoke, ch->n_revoke);
    if (ch->assign)
        tps_free(ch->assign, ch->n_assign);
    *ch = (rn_member_changes){0};
}

void rn_member_revoked(rn_member *m, const char *topic, int32_t partition, int64_t now)
{
    for (size_t i = 0; i < m->n_owned; i++) {
        if (m->owned[i].partition != partition || strcmp(m->owned[i].topic, topic) != 0)
            continue;
        free(m->owned[i].topic);
        memmove(&m->owned[i], &m->owned[i + 1], (m->n_owned - i - 1) * sizeof(*m->owned));
        m->n_owned--;
        /* Tell the coordinator at once: someone may wait for it. */
        m->hb_next = now;
        return;
    }
}

int rn_member_assigned(rn_member *m, const char *topic, int32_t partition)
{
    if (tps_has(m->owned, m->n_owned, topic, partition))
        return 0;
    rn_member_tp *v = realloc(m->owned, (m->n_owned + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    m->owned = v;
    char *t = strdup(topic);
    if (!t)
        return -ENOMEM;
    v[m->n_owned].topic = t;
    v[m->n_owned].partition = partition;
    m->n_owned++;
    return 0;
}

void rn_member_unsubscribe(rn_member *m)
{
    uint32_t gen = m->gen + 1;
    rn_member_fini(m);
    m->gen = gen;
}

bool rn_member_subscribed(const rn_member *m)
{
    return m->on;
}

int32_t rn_member_epoch(const rn_member *m)
{
    return m->epoch;
}

const char *rn_member_id(const rn_member *m)
{
    return m->member_id ? m->member_id : "";
}

const char *const *rn_member_topics(const rn_member *m, size_t *n)
{
    *n = m->n_topics;
    return (const char *const *)m->topics;
}

bool rn_member_inflight(const rn_member *m)
{
    return m->inflight;
}

int64_t rn_member_next_timer(const rn_member *m, int64_t now)
{
    int64_t t = INT64_MAX;
    if (!m->on)
        return t;
    if (!m->inflight && m->hb_next > now)
        t = m->hb_next;
    if (m->conf.session_timeout_ms > 0 && m->last_ok && m->n_owned) {
        int64_t end = m->last_ok + m->conf.session_timeout_ms + 1;
        if (end < t)
            t = end;
    }
    return t;
}
