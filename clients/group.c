/*
 * group.c — rn_consumer's consumer group: membership, reconciling, commits.
 *
 * Consumer groups (group.id + rn_consumer_subscribe), KIP-848 style: the
 * coordinator computes the assignment, the member only follows it. Each poll
 * runs group_pump before fetching:
 *
 *   heartbeat (every heartbeat.interval.ms, or sooner as the coordinator
 *   says, with what we subscribe to and what we own)
 *     │ answer: member id, member epoch, the partitions we may consume now
 *     ▼
 *   reconcile:  owned − answer = revoked: stop fetching, rebalance_cb(0),
 *                  commit their positions (enable.auto.commit), drop them,
 *                  heartbeat at once (the coordinator gives them to the
 *                  next member only when our heartbeat no longer owns them);
 *               answer − owned = assigned: FetchOffsets → committed offset,
 *                  else auto.offset.reset (ListOffsets); rebalance_cb(1).
 *   auto-commit every auto.commit.interval.ms (asynchronous, positions that
 *   moved); a final synchronous commit on revoke, unsubscribe and close.
 *   UNKNOWN_MEMBER / FENCED_MEMBER_EPOCH, or no answer for a whole
 *   session.timeout.ms: everything is lost (callback, no commit: it may be
 *   someone else's by now) and the member joins again with epoch 0.
 *   unsubscribe/close: commit, then leave (epoch -1) so the partitions move
 *   at once instead of after the session timeout.
 *
 * Group requests are synchronous inside poll where the order matters (the
 * commit before the heartbeat that gives a partition up, the committed
 * offset before the first fetch) and asynchronous otherwise (heartbeats,
 * auto-commits): poll never sleeps past the next heartbeat or commit. The
 * coordinator is the broker that leads the group's partition of __offsets
 * (coordinator.c finds it); NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
 * LOAD_IN_PROGRESS or a lost connection to it make the next request find it
 * again. Synchronous requests retry within their timeout; heartbeats and
 * auto-commits go out again at their next turn. The member keeps its
 * positions and what it committed meanwhile: a committed offset is never
 * replaced by auto.offset.reset because a coordinator was away (a
 * FetchOffsets that fails leaves the partition waiting, it is asked again).
 *
 * The membership rules themselves (epochs, fencing, the heartbeat interval,
 * what to revoke and assign) are protocol/group_member.c, shared with the
 * gateway's REST consumer instances; this file does the I/O around them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/consumer_int.h"
#include "protocol/topic_name.h"

/* ---- Consumer groups ---------------------------------------------------------------------- */

/* Take partition i out of parts; it lives on the dead list until no message
 * or Fetch can point at it (invariant 5). */
static void remove_part(rn_consumer *c, size_t i)
{
    cpart *p = c->parts[i];
    memmove(&c->parts[i], &c->parts[i + 1], (c->n_parts - i - 1) * sizeof(*c->parts));
    c->n_parts--;
    rn__consumer_drop_buffered(c, p);
    p->gen++; /* an answer still on its way is dropped (invariant 2) */
    p->dead = true;
    p->dead_next = c->dead;
    c->dead = p;
}

/* A request to the coordinator, synchronous, with the header's error turned
 * into a negative code and errmsg (coordinator.c finds the coordinator and
 * follows it while it moves, within timeout_ms). */
static int coord_call(rn_consumer *c, Runnel__RequestHeader *h, int api, int timeout_ms,
                      const char *what, rn__reply *r)
{
    rn__client *cl = &c->cl;
    int rc = rn__coord_call(cl, cl->conf->group_id, h, api, timeout_ms, r);
    if (rc < 0) {
        char m[sizeof(cl->errmsg)];
        snprintf(m, sizeof(m), "%s", cl->errmsg);
        return rn__fail(cl, rc, "group %s: %s: %s", cl->conf->group_id, what, m);
    }
    if (r->hdr->error_code) {
        rc = -(int)r->hdr->error_code;
        const char *m = r->hdr->error_message;
        rn__fail(cl, rc, "group %s: %s: %s%s%s", cl->conf->group_id, what, rn_strerror(rc),
                 m && *m ? ": " : "", m && *m ? m : "");
        rn__reply_fini(r);
    }
    return rc;
}

/* The coordinator's connection for a request sent without waiting
 * (heartbeat, auto-commit): found first when unknown, which waits at most
 * socket.timeout.ms; NULL when it cannot be found now (the request goes out
 * at its next turn). */
static rn__conn *coord_conn(rn_consumer *c)
{
    rn__client *cl = &c->cl;
    if (rn__coord_find(cl, cl->conf->group_id, cl->conf->socket_timeout_ms) < 0)
        return NULL;
    return rn__coord_conn(cl);
}

/* ---- Committing ---- */

/* An auto-commit in flight: copies of what it commits, so its answer can be
 * matched after the partitions are gone. One block. */
typedef struct commit_ctx {
    rn_consumer *c;
    uint32_t gen;
    size_t n;
    int64_t *offsets;
    int32_t *partitions;
    char **topics;
} commit_ctx;

/* Fill oc/ocp for parts (their positions) and a request for our membership:
 * while subscribed our member id and epoch, else an admin commit (allowed
 * by the coordinator only while the group has no member). */
static void commit_build(rn_consumer *c, cpart **parts, size_t n, Runnel__OffsetCommit *oc,
                         Runnel__OffsetCommit **ocp, Runnel__CommitOffsetsRequest *req)
{
    cgroup *g = &c->grp;
    for (size_t i = 0; i < n; i++) {
        runnel__offset_commit__init(&oc[i]);
        oc[i].topic = parts[i]->topic;
        oc[i].partition = parts[i]->partition;
        oc[i].offset = parts[i]->position;
        ocp[i] = &oc[i];
    }
    runnel__commit_offsets_request__init(req);
    req->group_id = c->cl.conf->group_id;
    bool on = rn_member_subscribed(&g->m);
    req->member_id = on ? (char *)rn_member_id(&g->m) : (char *)"";
    req->member_epoch = on ? rn_member_epoch(&g->m) : 0;
    req->n_offsets = n;
    req->offsets = ocp;
}

/* The first per-partition error of a commit answer, with errmsg; 0. */
static int commit_errors(rn_consumer *c, const Runnel__CommitOffsetsResponse *cr)
{
    for (size_t i = 0; i < cr->n_offsets; i++) {
        if (!cr->offsets[i]->error_code)
            continue;
        int err = -(int)cr->offsets[i]->error_code;
        return rn__fail(&c->cl, err, "group %s: commit %s-%d: %s", c->cl.conf->group_id,
                        cr->offsets[i]->topic, cr->offsets[i]->partition, rn_strerror(err));
    }
    return 0;
}

/* Wait (bounded) until no auto-commit is in flight, so a synchronous commit
 * that follows is the last word. */
static void commit_drain(rn_consumer *c)
{
    int64_t deadline = rn__now_ms() + c->cl.conf->socket_timeout_ms;
    while (c->grp.commit_inflight && rn__now_ms() < deadline)
        rn__client_poll(&c->cl, 50);
}

/* Commit the positions of parts and wait for the answer. */
static int commit_sync(rn_consumer *c, cpart **parts, size_t n)
{
    rn__client *cl = &c->cl;
    size_t m = 0;
    cpart **v = malloc((n ? n : 1) * sizeof(*v));
    Runnel__OffsetCommit *oc = calloc(n ? n : 1, sizeof(*oc));
    Runnel__OffsetCommit **ocp = calloc(n ? n : 1, sizeof(*ocp));
    int rc = -ENOMEM;
    if (!v || !oc || !ocp) {
        rn__fail(cl, rc, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (parts[i]->position >= 0 && parts[i]->start == START_KNOWN)
            v[m++] = parts[i];
    rc = 0;
    if (m == 0)
        goto out;
    commit_drain(c);
    Runnel__CommitOffsetsRequest req;
    commit_build(c, v, m, oc, ocp, &req);
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_COMMIT_OFFSETS;
    h.commit_offsets = &req;
    rn__reply r;
    rc = coord_call(c, &h, RUNNEL__API__COMMIT_OFFSETS, cl->conf->socket_timeout_ms, "commit", &r);
    if (rc < 0)
        goto out;
    rc = commit_errors(c, r.hdr->commit_offsets);
    /* Partitions the answer does not refuse are committed. */
    for (size_t i = 0; i < m; i++) {
        bool refused = false;
        for (size_t k = 0; k < r.hdr->commit_offsets->n_offsets; k++) {
            const Runnel__OffsetCommit *o = r.hdr->commit_offsets->offsets[k];
            if (o->error_code && o->partition == v[i]->partition && !strcmp(o->topic, v[i]->topic))
                refused = true;
        }
        if (!refused)
            v[i]->committed = oc[i].offset;
    }
    rn__reply_fini(&r);
out:
    free(v);
    free(oc);
    free(ocp);
    return rc;
}

static void commit_cb(void *arg, rn__conn *conn, int err, rn_frame_response *resp)
{
    (void)conn;
    commit_ctx *x = arg;
    rn_consumer *c = x->c;
    cgroup *g = &c->grp;
    if (x->gen == rn_member_gen(&g->m))
        g->commit_inflight = false;
    if (!err && resp->hdr->error_code)
        err = -(int)resp->hdr->error_code;
    if (rn__coord_retriable(err))
        rn__coord_forget(&c->cl);
    if (err) {
        /* Not fatal: the next interval commits again, and a fenced member
         * hears it from its heartbeat too. */
        rn__fail(&c->cl, err, "group %s: auto-commit: %s", c->cl.conf->group_id, rn_strerror(err));
        if (x->gen == rn_member_gen(&g->m))
            g->commit_next = rn__now_ms() + c->cl.conf->retry_backoff_ms;
        free(x);
        return;
    }
    const Runnel__CommitOffsetsResponse *cr = resp->hdr->commit_offsets;
    for (size_t i = 0; i < x->n; i++) {
        bool refused = false;
        for (size_t k = 0; k < cr->n_offsets; k++)
            if (cr->offsets[k]->error_code && cr->offsets[k]->partition == x->partitions[i] &&
                !strcmp(cr->offsets[k]->topic, x->topics[i]))
                refused = true;
        cpart *p = refused ? NULL : rn__consumer_find_part(c, x->topics[i], x->partitions[i]);
        if (p && x->offsets[i] > p->committed)
            p->committed = x->offsets[i];
    }
    free(x);
}

/* auto.commit: send the positions that moved since they were last committed,
 * without waiting for the answer. */
static void commit_async(rn_consumer *c)
{
    cgroup *g = &c->grp;
    size_t n = 0, strs = 0;
    for (size_t i = 0; i < c->n_parts; i++) {
        cpart *p = c->parts[i];
        if (p->start == START_KNOWN && p->position >= 0 && p->position != p->committed) {
            n++;
            strs += strlen(p->topic) + 1;
        }
    }
    if (n == 0)
        return;
    size_t head = sizeof(commit_ctx) + n * (sizeof(int64_t) + sizeof(char *) + sizeof(int32_t));
    commit_ctx *x = malloc(head + strs);
    cpart **v = malloc(n * sizeof(*v));
    Runnel__OffsetCommit *oc = calloc(n, sizeof(*oc));
    Runnel__OffsetCommit **ocp = calloc(n, sizeof(*ocp));
    if (!x || !v || !oc || !ocp)
        goto out;
    x->c = c;
    x->gen = rn_member_gen(&g->m);
    x->n = n;
    x->offsets = (int64_t *)(x + 1);
    x->topics = (char **)(x->offsets + n);
    x->partitions = (int32_t *)(x->topics + n);
    char *s = (char *)(x->partitions + n);
    size_t k = 0;
    for (size_t i = 0; i < c->n_parts; i++) {
        cpart *p = c->parts[i];
        if (p->start != START_KNOWN || p->position < 0 || p->position == p->committed)
            continue;
        v[k] = p;
        x->offsets[k] = p->position;
        x->partitions[k] = p->partition;
        size_t len = strlen(p->topic) + 1;
        memcpy(s, p->topic, len);
        x->topics[k++] = s;
        s += len;
    }
    Runnel__CommitOffsetsRequest req;
    commit_build(c, v, n, oc, ocp, &req);
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_COMMIT_OFFSETS;
    h.commit_offsets = &req;
    rn__conn *conn = coord_conn(c);
    if (conn && rn__conn_send(conn, &h, NULL, 0, RUNNEL__API__COMMIT_OFFSETS,
                              c->cl.conf->socket_timeout_ms, false, commit_cb, x) == 0) {
        x = NULL;
        g->commit_inflight = true;
    }
out:
    free(x);
    free(v);
    free(oc);
    free(ocp);
}

/* ---- Starting partitions ---- */

/* The group's committed offsets of parts into out[i] (-1: none). */
static int fetch_committed(rn_consumer *c, cpart **parts, size_t n, int64_t *out)
{
    rn__client *cl = &c->cl;
    Runnel__TopicPartitions *tps = calloc(n ? n : 1, sizeof(*tps));
    Runnel__TopicPartitions **tpp = calloc(n ? n : 1, sizeof(*tpp));
    int32_t *pv = calloc(n ? n : 1, sizeof(*pv));
    int rc = -ENOMEM;
    if (!tps || !tpp || !pv) {
        rn__fail(cl, rc, "out of memory");
        goto out;
    }
    /* One entry per partition: the coordinator answers each on its own. */
    for (size_t i = 0; i < n; i++) {
        runnel__topic_partitions__init(&tps[i]);
        tps[i].topic = parts[i]->topic;
        pv[i] = parts[i]->partition;
        tps[i].partitions = &pv[i];
        tps[i].n_partitions = 1;
        tpp[i] = &tps[i];
        out[i] = -1;
    }
    Runnel__FetchOffsetsRequest req = RUNNEL__FETCH_OFFSETS_REQUEST__INIT;
    req.group_id = cl->conf->group_id;
    req.n_partitions = n;
    req.partitions = tpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH_OFFSETS;
    h.fetch_offsets = &req;
    rn__reply r;
    rc = coord_call(c, &h, RUNNEL__API__FETCH_OFFSETS, cl->conf->socket_timeout_ms,
                    "fetch committed offsets", &r);
    if (rc < 0)
        goto out;
    const Runnel__FetchOffsetsResponse *fr = r.hdr->fetch_offsets;
    for (size_t k = 0; k < fr->n_offsets; k++)
        for (size_t i = 0; i < n; i++)
            if (fr->offsets[k]->partition == parts[i]->partition &&
                !strcmp(fr->offsets[k]->topic, parts[i]->topic))
                out[i] = fr->offsets[k]->offset >= 0 ? fr->offsets[k]->offset : -1;
    rn__reply_fini(&r);
out:
    free(tps);
    free(tpp);
    free(pv);
    return rc;
}

/* Give every partition whose start is pending a position: its committed
 * offset, else (or after OFFSET_OUT_OF_RANGE) auto.offset.reset. Failures
 * are retried after retry.backoff.ms; a non-transient one is reported by
 * the poll. */
static void start_parts(rn_consumer *c)
{
    const rn_conf *conf = c->cl.conf;
    int64_t now = rn__now_ms();
    size_t n = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        n += c->parts[i]->start != START_KNOWN && c->parts[i]->retry_at <= now;
    if (n == 0)
        return;
    cpart **v = malloc(n * sizeof(*v));
    int64_t *off = malloc(n * sizeof(*off));
    if (!v || !off)
        goto out;
    size_t m = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->start == START_COMMITTED && c->parts[i]->retry_at <= now)
            v[m++] = c->parts[i];
    int rc = m ? fetch_committed(c, v, m, off) : 0;
    for (size_t i = 0; i < m; i++) {
        if (rc < 0) {
            v[i]->retry_at = now + conf->retry_backoff_ms;
        } else if (off[i] >= 0) {
            rn__consumer_set_position(c, v[i], off[i]);
            v[i]->committed = off[i];
        } else {
            v[i]->start = START_RESET;
        }
    }
    if (rc < 0 && !rn__retriable(rc))
        rn__consumer_set_pending(c, rc, "%s", c->cl.errmsg);
    m = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->start == START_RESET && c->parts[i]->retry_at <= now) {
            v[m] = c->parts[i];
            off[m++] =
                conf->auto_offset_reset == RN__RESET_LATEST ? RN_OFFSET_LATEST : RN_OFFSET_EARLIEST;
        }
    rc = m ? rn__consumer_resolve(c, v, off, m) : 0;
    if (rc < 0) {
        for (size_t i = 0; i < m; i++)
            if (v[i]->start != START_KNOWN)
                v[i]->retry_at = now + conf->retry_backoff_ms;
        if (!rn__retriable(rc))
            rn__consumer_set_pending(c, rc, "%s", c->cl.errmsg);
    }
out:
    free(v);
    free(off);
}

/* ---- Heartbeats ---- */

typedef struct hb_ctx {
    rn_consumer *c;
    uint32_t gen;
} hb_ctx;

static void hb_cb(void *arg, rn__conn *conn, int err, rn_frame_response *resp)
{
    (void)conn;
    hb_ctx *x = arg;
    rn_consumer *c = x->c;
    cgroup *g = &c->grp;
    uint32_t gen = x->gen;
    free(x);
    const rn_conf *conf = c->cl.conf;
    const char *m = "";
    if (!err && resp->hdr->error_code) {
        err = -(int)resp->hdr->error_code;
        m = resp->hdr->error_message ? resp->hdr->error_message : "";
    }
    if (rn__coord_retriable(err))
        rn__coord_forget(&c->cl); /* the next heartbeat finds the coordinator again */
    int rc = rn_member_step(&g->m, gen, rn__now_ms(), err, err ? NULL : resp->hdr->group_heartbeat);
    if (rc != RN_MEMBER_RETRY)
        return; /* taken, fenced (the next pump gives everything up), stale or out of memory */
    /* Retried quietly (the session timeout decides when it is too long),
     * unless the coordinator refuses us for good. */
    if (!resp || rn__retriable(err)) {
        if (rn__needs_metadata(err))
            c->need_md = true;
        return;
    }
    if (err)
        rn__consumer_set_pending(c, err, "group %s: heartbeat: %s%s%s", conf->group_id,
                                 rn_strerror(err), *m ? ": " : "", m);
}

static void send_heartbeat(rn_consumer *c, int64_t now)
{
    cgroup *g = &c->grp;
    const rn_conf *conf = c->cl.conf;
    rn_member_req mr;
    hb_ctx *x = malloc(sizeof(*x));
    bool sent = false;
    if (!x || rn_member_request(&g->m, &mr) < 0) {
        free(x);
        rn_member_sent(&g->m, now, false);
        return;
    }
    mr.req.group_id = conf->group_id;
    mr.req.client_id = conf->client_id;
    mr.req.assignor = conf->assignor == RN__ASSIGNOR_RANGE ? (char *)"range" : (char *)"sticky";
    mr.req.session_timeout_ms = (uint32_t)conf->session_timeout_ms;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_GROUP_HEARTBEAT;
    h.group_heartbeat = &mr.req;
    x->c = c;
    x->gen = rn_member_gen(&g->m);
    /* An answer later than the session is worthless: we are out by then. */
    int timeout = min64(conf->socket_timeout_ms, conf->session_timeout_ms);
    rn__conn *conn = coord_conn(c);
    if (conn && rn__conn_send(conn, &h, NULL, 0, RUNNEL__API__GROUP_HEARTBEAT, timeout, false,
                              hb_cb, x) == 0) {
        x = NULL;
        sent = true;
    }
    rn_member_request_fini(&mr);
    free(x);
    rn_member_sent(&g->m, now, sent);
}

/* ---- Reconciling ---- */

/* Take partition p out of parts (see remove_part). */
static void remove_one(rn_consumer *c, const cpart *p)
{
    for (size_t j = 0; j < c->n_parts; j++)
        if (c->parts[j] == p) {
            remove_part(c, j);
            return;
        }
}

/* Give up every partition without committing (fenced, or the session is
 * over): the coordinator may have handed them to others already. */
static void lose_all(rn_consumer *c)
{
    cgroup *g = &c->grp;
    for (size_t i = 0; g->cb && i < c->n_parts; i++)
        g->cb(g->cb_arg, 0, c->parts[i]->topic, c->parts[i]->partition);
    while (c->n_parts)
        remove_part(c, c->n_parts - 1);
    rn_member_lost(&g->m, rn__now_ms());
}

/* Apply the coordinator's last answer: revoke what it no longer lists
 * (callback, commit, drop; the next heartbeat says we no longer own them),
 * then take what it newly lists (start positions, callback). */
static void reconcile(rn_consumer *c)
{
    cgroup *g = &c->grp;
    const rn_conf *conf = c->cl.conf;
    /* Take the answer: a heartbeat answered during a commit below brings
     * the next one, applied by the next pump. Out of memory: the whole
     * answer waits for the next pump. */
    rn_member_changes ch;
    if (rn_member_changes_take(&g->m, &ch) < 0)
        return;
    if (ch.n_revoke) {
        cpart **rev = malloc(ch.n_revoke * sizeof(*rev));
        size_t k = 0;
        for (size_t i = 0; rev && i < ch.n_revoke; i++) {
            cpart *p = rn__consumer_find_part(c, ch.revoke[i].topic, ch.revoke[i].partition);
            if (p)
                rev[k++] = p;
        }
        /* 1. stop fetching (nothing more is decoded for them from here), 2.
         * tell the application, 3. commit, 4. drop: so whoever gets them
         * next starts where we stopped. Without memory for the list, the
         * same steps run one partition at a time. */
        for (size_t i = 0; i < (rev ? k : ch.n_revoke); i++) {
            cpart *p = rev ? rev[i]
                           : rn__consumer_find_part(c, ch.revoke[i].topic, ch.revoke[i].partition);
            if (!p)
                continue;
            rn__consumer_drop_buffered(c, p);
            p->stopped = true;
            if (!rev) {
                if (g->cb)
                    g->cb(g->cb_arg, 0, p->topic, p->partition);
                if (conf->enable_auto_commit && rn_member_epoch(&g->m) > 0)
                    commit_sync(c, &p, 1);
                remove_one(c, p);
            }
        }
        if (rev) {
            for (size_t i = 0; g->cb && i < k; i++)
                g->cb(g->cb_arg, 0, rev[i]->topic, rev[i]->partition);
            if (conf->enable_auto_commit && rn_member_epoch(&g->m) > 0)
                commit_sync(c, rev, k); /* a failure is in errmsg; the partitions go anyway */
            for (size_t i = 0; i < k; i++)
                remove_one(c, rev[i]);
        }
        free(rev);
        /* The next heartbeat, at once, tells the coordinator: someone waits for them. */
        int64_t now = rn__now_ms();
        for (size_t i = 0; i < ch.n_revoke; i++)
            rn_member_revoked(&g->m, ch.revoke[i].topic, ch.revoke[i].partition, now);
    }

    size_t base = c->n_parts;
    for (size_t i = 0; i < ch.n_assign; i++) {
        const char *topic = ch.assign[i].topic;
        int32_t partition = ch.assign[i].partition;
        if (rn__consumer_find_part(c, topic, partition))
            continue;
        cpart *p = rn__consumer_new_part(c, topic, partition);
        if (!p)
            break; /* not owned: the next heartbeat's answer lists it again */
        if (rn_member_assigned(&g->m, topic, partition) < 0) {
            rn__consumer_free_part(c, c->parts[--c->n_parts]);
            break;
        }
        p->start = START_COMMITTED;
        if (rn__md_want(&c->cl, p->topic) < 0)
            c->need_md = true;
    }
    rn_member_changes_fini(&ch);
    if (c->n_parts == base)
        return;
    start_parts(c);
    for (size_t i = base; g->cb && i < c->n_parts; i++)
        g->cb(g->cb_arg, 1, c->parts[i]->topic, c->parts[i]->partition);
}

void rn__consumer_group_init(rn_consumer *c)
{
    const rn_conf *conf = c->cl.conf;
    rn_member_conf mc = {
        .max_interval_ms = conf->heartbeat_interval_ms,
        .default_interval_ms = conf->heartbeat_interval_ms,
        .session_timeout_ms = conf->session_timeout_ms,
        .retry_backoff_ms = conf->retry_backoff_ms,
    };
    rn_member_init(&c->grp.m, &mc);
}

bool rn__consumer_subscribed(const rn_consumer *c)
{
    return rn_member_subscribed(&c->grp.m);
}

/* The group's share of a poll, before fetching: membership, reconciling,
 * starts, auto-commit, and the next heartbeat when it is due. */
void rn__consumer_group_pump(rn_consumer *c)
{
    cgroup *g = &c->grp;
    if (!rn_member_subscribed(&g->m))
        return;
    const rn_conf *conf = c->cl.conf;
    /* Fenced, or no answer for a whole session: lost before anything else
     * (nothing of it is committed). */
    if (rn_member_must_lose(&g->m, rn__now_ms()))
        lose_all(c);
    if (rn_member_has_changes(&g->m))
        reconcile(c);
    start_parts(c);
    int64_t now = rn__now_ms();
    if (conf->enable_auto_commit && rn_member_epoch(&g->m) > 0 && !g->commit_inflight &&
        now >= g->commit_next) {
        commit_async(c);
        g->commit_next = now + conf->auto_commit_interval_ms;
    }
    if (rn_member_heartbeat_due(&g->m, now))
        send_heartbeat(c, now);
}

/* Fold the group's next deadline into *t (only future ones: see next_timer). */
void rn__consumer_group_timer(const rn_consumer *c, int64_t now, int64_t *t)
{
    const cgroup *g = &c->grp;
    if (!rn_member_subscribed(&g->m))
        return;
    *t = min64(*t, rn_member_next_timer(&g->m, now));
    if (c->cl.conf->enable_auto_commit && rn_member_epoch(&g->m) > 0 && !g->commit_inflight &&
        g->commit_next > now)
        *t = min64(*t, g->commit_next);
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->start != START_KNOWN && c->parts[i]->retry_at > now)
            *t = min64(*t, c->parts[i]->retry_at);
}

/* End the membership: revoke everything (callback, final commit), leave
 * with epoch -1 so the partitions move at once, forget the state. */
int rn__consumer_group_leave(rn_consumer *c)
{
    cgroup *g = &c->grp;
    const rn_conf *conf = c->cl.conf;
    int rc = 0;
    for (size_t i = 0; g->cb && i < c->n_parts; i++)
        g->cb(g->cb_arg, 0, c->parts[i]->topic, c->parts[i]->partition);
    if (conf->enable_auto_commit && rn_member_epoch(&g->m) > 0 && c->n_parts)
        rc = commit_sync(c, c->parts, c->n_parts);
    rn_member_req mr;
    if (rn_member_leave_request(&g->m, &mr) == 1) {
        mr.req.group_id = conf->group_id;
        mr.req.client_id = conf->client_id;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_GROUP_HEARTBEAT;
        h.group_heartbeat = &mr.req;
        rn__reply r;
        /* Bounded by the session: past it the coordinator drops us anyway. */
        int timeout = min64(conf->socket_timeout_ms, conf->session_timeout_ms);
        int lrc = coord_call(c, &h, RUNNEL__API__GROUP_HEARTBEAT, timeout, "leave", &r);
        if (lrc == 0)
            rn__reply_fini(&r);
        else if (rc == 0)
            rc = lrc;
    }
    rn_member_request_fini(&mr);
    while (c->n_parts)
        remove_part(c, c->n_parts - 1);
    rn_member_unsubscribe(&g->m); /* answers of earlier heartbeats are dropped from here */
    g->commit_inflight = false;
    g->commit_next = 0;
    return rc;
}
/* ---- Public API: groups ---------------------------------------------------------------------- */

void rn_consumer_set_rebalance_cb(rn_consumer *c, rn_rebalance_cb cb, void *arg)
{
    c->grp.cb = cb;
    c->grp.cb_arg = arg;
}

int rn_consumer_subscribe(rn_consumer *c, const char *const *topics, size_t n_topics)
{
    rn__client *cl = &c->cl;
    cgroup *g = &c->grp;
    const char *gid = cl->conf->group_id;
    if (!gid)
        return rn__fail(cl, -RN_E_INVALID_CONFIG, "subscribe: no group.id set");
    if (strlen(gid) > 249)
        return rn__fail(cl, -RN_E_INVALID_CONFIG, "group.id is longer than 249 bytes");
    if (!rn_member_subscribed(&g->m) && c->n_parts)
        return rn__fail(cl, -EINVAL, "subscribe: partitions were assigned by hand");
    if (n_topics == 0)
        return rn__fail(cl, -EINVAL, "subscribe: no topic");
    for (size_t i = 0; i < n_topics; i++) {
        size_t len = topics[i] ? strlen(topics[i]) : 0;
        if (len == 0 || len > RN_TOPIC_NAME_MAX)
            return rn__fail(cl, -RN_E_INVALID_TOPIC, "subscribe: topic names are 1 to %d bytes",
                            RN_TOPIC_NAME_MAX);
    }
    for (size_t i = 0; i < n_topics; i++)
        if (rn__md_want(cl, topics[i]) < 0)
            return rn__fail(cl, -ENOMEM, "out of memory");
    /* A new subscription replaces the old one; the coordinator hears of it
     * with the next heartbeat, sent by the next poll. */
    bool was_on = rn_member_subscribed(&g->m);
    if (rn_member_subscribe(&g->m, topics, n_topics, rn__now_ms()) < 0)
        return rn__fail(cl, -ENOMEM, "out of memory");
    if (!was_on)
        g->commit_next = rn__now_ms() + cl->conf->auto_commit_interval_ms;
    return 0;
}

int rn_consumer_unsubscribe(rn_consumer *c)
{
    if (!rn_member_subscribed(&c->grp.m))
        return 0;
    return rn__consumer_group_leave(c);
}

int rn_consumer_commit(rn_consumer *c)
{
    rn__client *cl = &c->cl;
    if (!cl->conf->group_id)
        return rn__fail(cl, -RN_E_INVALID_CONFIG, "commit: no group.id set");
    if (rn_member_subscribed(&c->grp.m) && rn_member_epoch(&c->grp.m) <= 0)
        return rn__fail(cl, -RN_E_UNKNOWN_MEMBER,
                        "commit: not a member of group %s yet (poll first)", cl->conf->group_id);
    return commit_sync(c, c->parts, c->n_parts);
}

int rn_consumer_committed(rn_consumer *c, const char *topic, int32_t partition, int64_t *offset)
{
    rn__client *cl = &c->cl;
    *offset = -1;
    if (!cl->conf->group_id)
        return rn__fail(cl, -RN_E_INVALID_CONFIG, "committed: no group.id set");
    if (!topic || !*topic || partition < 0)
        return rn__fail(cl, -EINVAL, "committed: bad topic or partition");
    cpart p = {.topic = (char *)topic, .partition = partition};
    cpart *pp = &p;
    return fetch_committed(c, &pp, 1, offset);
}
