/*
 * consumers.c — a REST Proxy v2 consumer instance as a group member: its
 * membership, its life, and the broker requests of a records poll or a
 * commit, backed by the group coordinator through the same requests a
 * native group consumer sends. The HTTP routes that drive it are
 * consumer_routes.c; consumer_instance.h is the seam between the two.
 *
 * An instance is a group member the gateway holds for an HTTP client:
 *   POST /consumers/{g} {"name","format","auto.offset.reset","auto.commit.enable"}
 *        → {"instance_id","base_uri"}
 * then, under /consumers/{g}/instances/{i}: subscription (POST/GET/DELETE),
 * assignments (GET), records (GET ?timeout=&max_bytes=), offsets (POST =
 * commit, GET = committed), positions[/beginning|/end] (POST = seek), and
 * DELETE to leave the group.
 *
 * Membership: every instance is a group member whose rules (join, epochs,
 * the heartbeat interval, what to revoke and assign, fencing, leave) are the
 * shared state machine of protocol/group_member.h, the same the client
 * library's consumer follows. This file only does its I/O: heartbeats go out
 * from one 100 ms timer of the gateway when the machine says one is due (at
 * the interval the coordinator asks: 1 s when stable, 100 ms while
 * partitions move), and each answer is applied at once — a partition taken
 * away is dropped (its position with it) and the next heartbeat, due at once,
 * says so, so the coordinator can hand it on. An unknown or fenced member
 * drops everything and joins again.
 *
 * A records poll runs in steps, each a broker request on the instance's own
 * in-process client:
 *   1. FetchOffsets for partitions whose position is unknown (committed
 *      offsets of the group);
 *   2. ListOffsets for those still unknown (auto.offset.reset) or seeked to
 *      the beginning or end;
 *   3. Fetch from every position (long poll: ?timeout=, default 1000 ms),
 *      records rendered as JSON (json.c), positions moved past them.
 * With auto.commit.enable (default true, as in REST Proxy) positions that
 * moved are committed on the next heartbeat turn.
 *
 * Positions: >= 0 the next offset to read; POS_UNKNOWN, POS_BEGINNING,
 * POS_END are resolved by steps 1–2.
 *
 * Life: an instance lives until DELETE, until it is unused for
 * INSTANCE_IDLE_MS (as consumer.instance.timeout.ms), or until shutdown.
 * Freeing it closes its client, which drops whatever it had in flight; an
 * HTTP request still waiting on it gets 40403 first. Instances sit in one
 * list per gateway (a handful is the expected count, so look-ups scan it).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coord/groups.h"
#include "broker/gateway/consumer_instance.h"
#include "broker/gateway/consumers.h"
#include "broker/gateway/json.h"
#include "broker/logfmt.h"
#include "broker/net/conn.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"
#include "protocol/group_member.h"

#define TIMER_MS         100
#define INSTANCE_IDLE_MS 300000

static void inst_unref(cinst *in);

/* ---- Helpers ------------------------------------------------------------------------------ */

static void parts_free(cpart *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].topic);
    free(p);
}

cinst *rn__cinst_find(rn_consumers *cs, const char *group, const char *name)
{
    for (cinst *in = cs->list; in; in = in->next)
        if (!in->dead && !strcmp(in->group, group) && !strcmp(in->name, name))
            return in;
    return NULL;
}

/* Answer the waiting HTTP request (if its connection is still there) and let go of it. */
static void finish_op(cinst *in)
{
    in->op = OP_NONE;
    if (in->waiter) {
        rn_http_conn_unref(in->waiter);
        in->waiter = NULL;
    }
}

static bool waiter_alive(cinst *in)
{
    return in->waiter && !in->waiter->dead;
}

static void op_error(cinst *in, int status, int code, const char *msg)
{
    if (waiter_alive(in))
        rn_http_respond_error(in->waiter, status, code, "%s", msg);
    finish_op(in);
}

static void op_rn_error(cinst *in, int err, const char *msg)
{
    int status, code;
    rn_gw_error_map(err, true, &status, &code);
    op_error(in, status, code, msg && *msg ? msg : rn_strerror(err));
}

/* What every answer of an operation but the fetch starts with: its slices
 * go (only a fetch carries records), and a broker error is the waiter's
 * answer. True when the answer carries none and the handler goes on. */
static bool op_answer_ok(cinst *in, Runnel__ResponseHeader *hdr, rn_slice *slices,
                         unsigned n_slices)
{
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    if (!hdr->error_code)
        return true;
    op_rn_error(in, -(int)hdr->error_code, hdr->error_message);
    return false;
}

/* A call dropped because the instance's client closed: give back its ref. */
static void hb_dropped(rn_gw_call *call)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, hb_call);
    in->hb_inflight = false;
    if (!in->hb_leave) /* no answer is coming: the machine may send again */
        rn_member_step(&in->m, in->hb_gen, rn_now_ms(), -ECANCELED, NULL);
    inst_unref(in);
}

static void ac_dropped(rn_gw_call *call)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, ac_call);
    in->ac_inflight = false;
    inst_unref(in);
}

static void op_dropped(rn_gw_call *call)
{
    inst_unref(RN_CONTAINER_OF(call, cinst, op_call));
}

/* Send h; the call holds a ref until its answer (or drop) — taken first,
 * since a handler may answer before rn_gw_client_call returns. */
static int call_broker(cinst *in, rn_gw_call *call, Runnel__RequestHeader *h, rn_gw_answer_cb cb)
{
    char err[256] = "";
    h->client_id = in->name;
    rn_gw_drop_cb drop = call == &in->hb_call   ? hb_dropped
                         : call == &in->ac_call ? ac_dropped
                                                : op_dropped;
    in->refs++;
    int rc = rn_gw_client_call(&in->client, h, NULL, 0, call, cb, drop, err, sizeof(err));
    if (rc < 0)
        in->refs--;
    return rc;
}

/* Ask for the group's committed offsets (every one of them: small); cb gets the answer. */
static int fetch_committed(cinst *in, rn_gw_answer_cb cb)
{
    Runnel__FetchOffsetsRequest q = RUNNEL__FETCH_OFFSETS_REQUEST__INIT;
    q.group_id = in->group;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH_OFFSETS;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH_OFFSETS;
    h.fetch_offsets = &q;
    return call_broker(in, &in->op_call, &h, cb);
}

/* The content type of a records answer. */
static const char *records_ct(const cinst *in)
{
    return in->fmt == RN_GW_FMT_BINARY ? RN_GW_CT_BINARY_V2 : RN_GW_CT_JSON_V2;
}

/* ---- Life ---------------------------------------------------------------------------------- */

static void inst_unref(cinst *in)
{
    if (--in->refs > 0)
        return;
    parts_free(in->parts, in->n_parts);
    rn_member_fini(&in->m);
    free(in);
}

/* Leave the list; calls in flight are dropped (each gives its ref back), an
 * HTTP request still waiting is answered 40403. */
static void inst_destroy(cinst *in, const char *why)
{
    if (in->dead)
        return;
    rn_consumers *cs = in->cs;
    in->dead = true;
    in->refs++; /* held while the client's drops give theirs back */
    if (in->waiter && !in->waiter->dead) {
        if (cs->stopping)
            rn_http_respond_error(in->waiter, 503, 50301, "broker is shutting down");
        else
            rn_http_respond_error(in->waiter, 404, 40403, "consumer instance %s was removed (%s)",
                                  in->name, why);
    }
    finish_op(in);
    rn_gw_client_close(&in->client, why);
    if (in->prev)
        in->prev->next = in->next;
    else
        cs->list = in->next;
    if (in->next)
        in->next->prev = in->prev;
    cs->n--;
    rn_logfmt(RN_INFO, "consumer instance removed", "group=%s instance=%s reason=%s", in->group,
              in->name, why);
    inst_unref(in); /* the list's */
    inst_unref(in); /* ours */
}

/* ---- Heartbeats ----------------------------------------------------------------------------- */

/* Apply the coordinator's last answer: drop what it took away (its position
 * too: whoever gets it next starts from the group's committed offset), add
 * what it gave with an unknown position, keep the rest as it is. */
static void apply_changes(cinst *in, int64_t now)
{
    rn_member_changes ch;
    if (rn_member_changes_take(&in->m, &ch) < 0)
        return; /* out of memory: the whole answer waits for the next one */
    for (size_t i = 0; i < ch.n_revoke; i++) {
        for (size_t k = 0; k < in->n_parts; k++) {
            if (in->parts[k].partition != ch.revoke[i].partition ||
                strcmp(in->parts[k].topic, ch.revoke[i].topic) != 0)
                continue;
            free(in->parts[k].topic);
            memmove(&in->parts[k], &in->parts[k + 1], (in->n_parts - k - 1) * sizeof(*in->parts));
            in->n_parts--;
            break;
        }
        rn_member_revoked(&in->m, ch.revoke[i].topic, ch.revoke[i].partition, now);
    }
    if (ch.n_assign) {
        cpart *np = realloc(in->parts, (in->n_parts + ch.n_assign) * sizeof(*np));
        if (np)
            in->parts = np;
        for (size_t i = 0; np && i < ch.n_assign; i++) {
            cpart *p = &in->parts[in->n_parts];
            /* Not owned when it cannot be kept: the next answer lists it again. */
            if (!(p->topic = strdup(ch.assign[i].topic)))
                break;
            if (rn_member_assigned(&in->m, ch.assign[i].topic, ch.assign[i].partition) < 0) {
                free(p->topic);
                break;
            }
            p->partition = ch.assign[i].partition;
            p->position = POS_UNKNOWN;
            p->committed = -1;
            in->n_parts++;
        }
    }
    rn_member_changes_fini(&ch);
}

/* Unknown, fenced or out of session: join again owning nothing, committing
 * nothing (the partitions may be someone else's by now). */
static void lose_all(cinst *in, int64_t now)
{
    parts_free(in->parts, in->n_parts);
    in->parts = NULL;
    in->n_parts = 0;
    rn_member_lost(&in->m, now);
}

static void hb_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                      unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, hb_call);
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    in->hb_inflight = false;
    int64_t now = rn_now_ms();
    if (in->dead || in->leaving || in->hb_leave)
        goto out;
    int err = hdr->error_code ? -(int)hdr->error_code : 0;
    int rc = rn_member_step(&in->m, in->hb_gen, now, err, hdr->group_heartbeat);
    if (rc == RN_MEMBER_FENCED) {
        lose_all(in, now);
        goto out;
    }
    if (rc == RN_MEMBER_OK)
        apply_changes(in, now);
out:
    inst_unref(in);
}

static void heartbeat(cinst *in, bool leave)
{
    if (in->hb_inflight)
        return;
    rn_member_req mr;
    /* 1: a request to send; 0: nothing to leave; < 0: out of memory. */
    int rc = leave ? rn_member_leave_request(&in->m, &mr) : rn_member_request(&in->m, &mr) == 0;
    if (rc <= 0) {
        /* Nothing to leave, or out of memory (the next one waits the backoff). */
        rn_member_request_fini(&mr);
        if (!leave)
            rn_member_sent(&in->m, rn_now_ms(), false);
        return;
    }
    mr.req.group_id = in->group;
    mr.req.client_id = in->name;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__GROUP_HEARTBEAT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_GROUP_HEARTBEAT;
    h.group_heartbeat = &mr.req;
    /* Set before: the coordinator answers inside the call. */
    in->hb_inflight = true;
    in->hb_leave = leave;
    in->hb_gen = rn_member_gen(&in->m);
    if (!leave)
        rn_member_sent(&in->m, rn_now_ms(), true);
    if (call_broker(in, &in->hb_call, &h, hb_answer) < 0) {
        in->hb_inflight = false;
        if (!leave) /* not sent: retried after the backoff */
            rn_member_step(&in->m, in->hb_gen, rn_now_ms(), -EIO, NULL);
    }
    rn_member_request_fini(&mr);
}
static void ac_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                      unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, ac_call);
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    in->ac_inflight = false;
    if (!hdr->error_code && hdr->commit_offsets) {
        Runnel__CommitOffsetsResponse *r = hdr->commit_offsets;
        for (size_t i = 0; i < r->n_offsets; i++)
            for (size_t k = 0; k < in->n_parts; k++)
                if (!r->offsets[i]->error_code &&
                    in->parts[k].partition == r->offsets[i]->partition &&
                    !strcmp(in->parts[k].topic, r->offsets[i]->topic))
                    in->parts[k].committed = r->offsets[i]->offset;
    }
    inst_unref(in);
}

/* Build and send a CommitOffsets of the given offsets (parallel arrays). */
static int commit(cinst *in, rn_gw_call *call, rn_gw_answer_cb cb, char **topics, int32_t *parts,
                  int64_t *offsets, size_t n)
{
    Runnel__OffsetCommit *oc = calloc(n ? n : 1, sizeof(*oc));
    Runnel__OffsetCommit **ocp = calloc(n ? n : 1, sizeof(*ocp));
    int rc = -ENOMEM;
    if (oc && ocp) {
        for (size_t i = 0; i < n; i++) {
            runnel__offset_commit__init(&oc[i]);
            oc[i].topic = topics[i];
            oc[i].partition = parts[i];
            oc[i].offset = offsets[i];
            ocp[i] = &oc[i];
        }
        Runnel__CommitOffsetsRequest q = RUNNEL__COMMIT_OFFSETS_REQUEST__INIT;
        q.group_id = in->group;
        q.member_id = (char *)rn_member_id(&in->m);
        q.member_epoch = rn_member_epoch(&in->m);
        q.n_offsets = n;
        q.offsets = ocp;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__COMMIT_OFFSETS;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_COMMIT_OFFSETS;
        h.commit_offsets = &q;
        rc = call_broker(in, call, &h, cb);
    }
    free(oc);
    free(ocp);
    return rc;
}

static void auto_commit(cinst *in)
{
    if (!in->auto_commit || in->ac_inflight || !rn_member_id(&in->m)[0] ||
        rn_member_epoch(&in->m) <= 0)
        return;
    size_t n = 0;
    char **t = calloc(in->n_parts ? in->n_parts : 1, sizeof(*t));
    int32_t *p = calloc(in->n_parts ? in->n_parts : 1, sizeof(*p));
    int64_t *o = calloc(in->n_parts ? in->n_parts : 1, sizeof(*o));
    if (t && p && o) {
        for (size_t i = 0; i < in->n_parts; i++) {
            cpart *cp = &in->parts[i];
            if (cp->position >= 0 && cp->position != cp->committed) {
                t[n] = cp->topic;
                p[n] = cp->partition;
                o[n] = cp->position;
                n++;
            }
        }
        if (n) {
            in->ac_inflight = true;
            if (commit(in, &in->ac_call, ac_answer, t, p, o, n) < 0)
                in->ac_inflight = false;
        }
    }
    free(t);
    free(p);
    free(o);
}

static void arm_timer(rn_consumers *cs);

static void timer_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_consumers *cs = RN_CONTAINER_OF(op, rn_consumers, timer_op);
    (void)res;
    (void)flags;
    cs->timer_armed = false;
    if (cs->stopping)
        return;
    int64_t now = rn_now_ms();
    for (cinst *in = cs->list, *next; in; in = next) {
        next = in->next;
        if (in->op == OP_NONE && now - in->last_used_ms > INSTANCE_IDLE_MS) {
            heartbeat(in, true);
            inst_destroy(in, "idle");
            continue;
        }
        if (rn_member_must_lose(&in->m, now))
            lose_all(in, now); /* no answer for a whole session */
        if (!in->hb_inflight && rn_member_heartbeat_due(&in->m, now)) {
            heartbeat(in, false);
            auto_commit(in);
        }
    }
    arm_timer(cs);
}

static void arm_timer(rn_consumers *cs)
{
    if (cs->timer_armed || cs->stopping || !cs->list)
        return;
    cs->timer_armed = true;
    rn_io_timer(cs->gw->r->io, &cs->timer_op, timer_done, &cs->ts, TIMER_MS);
}

/* ---- Records poll ------------------------------------------------------------------------------
 */

static void poll_step(cinst *in);

static void kick_done(rn_io_op *op, int res, uint32_t flags)
{
    cinst *in = RN_CONTAINER_OF(op, cinst, kick_op);
    (void)res;
    (void)flags;
    in->kick_armed = false;
    if (!in->dead)
        poll_step(in);
    inst_unref(in);
}

/* Go on with the poll from a fresh stack (client.h: answers do not send). */
static void kick(cinst *in)
{
    if (in->kick_armed || in->dead)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(in->cs->gw->r->io, &in->kick_op, kick_done);
    if (!sqe) {
        op_error(in, 503, 50301, "io ring unavailable");
        return;
    }
    io_uring_prep_nop(sqe);
    in->kick_armed = true;
    in->refs++;
}

static void poll_committed_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                                  unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, op_call);
    if (op_answer_ok(in, hdr, slices, n_slices)) {
        Runnel__FetchOffsetsResponse *r = hdr->fetch_offsets;
        for (size_t k = 0; k < in->n_parts; k++) {
            cpart *cp = &in->parts[k];
            if (cp->position != POS_UNKNOWN)
                continue;
            for (size_t i = 0; r && i < r->n_offsets; i++)
                if (r->offsets[i]->offset >= 0 && r->offsets[i]->partition == cp->partition &&
                    !strcmp(r->offsets[i]->topic, cp->topic)) {
                    cp->position = cp->committed = r->offsets[i]->offset;
                }
            /* Nothing committed: auto.offset.reset decides. */
            if (cp->position == POS_UNKNOWN)
                cp->position = in->reset_earliest ? POS_BEGINNING : POS_END;
        }
        in->op = OP_POLL_RESET;
        kick(in);
    }
    inst_unref(in);
}

static void poll_reset_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                              unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, op_call);
    if (op_answer_ok(in, hdr, slices, n_slices)) {
        Runnel__ListOffsetsResponse *r = hdr->list_offsets;
        for (size_t i = 0; r && i < r->n_partitions; i++) {
            Runnel__ListOffsetsPartitionResponse *p = r->partitions[i];
            for (size_t k = 0; k < in->n_parts; k++) {
                cpart *cp = &in->parts[k];
                if ((cp->position == POS_BEGINNING || cp->position == POS_END) &&
                    cp->partition == p->partition && !strcmp(cp->topic, p->topic))
                    cp->position = p->error_code ? POS_UNKNOWN : p->offset;
            }
        }
        in->op = OP_POLL_FETCH;
        kick(in);
    }
    inst_unref(in);
}

static void poll_fetch_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                              unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, op_call);
    rn_strbuf out = {0};
    if (hdr->error_code || !hdr->fetch) {
        op_rn_error(in, hdr->error_code ? -(int)hdr->error_code : -RN_E_UNKNOWN,
                    hdr->error_message);
        goto out;
    }
    rn_strbuf_put(&out, "[", 1);
    Runnel__FetchResponse *fr = hdr->fetch;
    unsigned si = 0;
    /* One budget for the whole answer: partitions after it fills keep
     * their positions for the next poll. */
    rn_json_budget bud = {.max_bytes = in->poll_bytes, .overhead = 1 /* "," */};
    for (size_t i = 0; i < fr->n_partitions; i++) {
        Runnel__FetchPartitionResponse *p = fr->partitions[i];
        cpart *cp = NULL;
        for (size_t k = 0; k < in->n_parts; k++)
            if (in->parts[k].partition == p->partition && !strcmp(in->parts[k].topic, p->topic))
                cp = &in->parts[k];
        if (p->error_code == RN_E_OFFSET_OUT_OF_RANGE && cp)
            cp->position = in->reset_earliest ? POS_BEGINNING : POS_END;
        if (!p->bytes_len || si >= n_slices)
            continue;
        rn_slice *s = &slices[si++];
        if (!cp || bud.full)
            continue; /* taken away meanwhile (not ours to hand out), or no room left */
        int64_t next = cp->position;
        int n = rn_json_render_records(in->cs->gw->render_cache, cp->topic, cp->partition, s->data,
                                       s->len, cp->position, NULL, 0, in->fmt, &bud, &next,
                                       rn_json_emit_to_array, &out);
        if (n == -RN_E_MESSAGE_TOO_LARGE) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "%s-%d: record at offset %" PRId64 " is larger than %u bytes as JSON; "
                     "seek past it to go on",
                     cp->topic, cp->partition, next, RN_GW_MAX_RECORD_JSON);
            rn_strbuf_free(&out);
            op_error(in, 422, 42202, msg);
            goto out;
        }
        if (n < 0) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s-%d: cannot render records at offset %" PRId64 ": %s",
                     cp->topic, cp->partition, cp->position, rn_strerror(n));
            rn_strbuf_free(&out);
            op_error(in, 500, 50001, msg);
            goto out;
        }
        if (next > cp->position)
            cp->position = next;
    }
    rn_strbuf_put(&out, "]", 1);
    if (out.failed)
        op_error(in, 500, 50001, "out of memory");
    else if (waiter_alive(in)) {
        rn_http_respond(in->waiter, 200, records_ct(in), out.p, out.len, NULL);
        finish_op(in);
    } else {
        finish_op(in);
    }
out:
    rn_strbuf_free(&out);
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    inst_unref(in);
}

static void poll_step(cinst *in)
{
    if (in->dead)
        return;
    int rc = 0;
    if (in->op == OP_POLL_COMMITTED) {
        size_t n = 0;
        for (size_t k = 0; k < in->n_parts; k++)
            n += in->parts[k].position == POS_UNKNOWN;
        if (!n) {
            in->op = OP_POLL_RESET;
            poll_step(in);
            return;
        }
        rc = fetch_committed(in, poll_committed_answer);
    } else if (in->op == OP_POLL_RESET) {
        size_t n = 0;
        Runnel__ListOffsetsPartition *lp = calloc(in->n_parts ? in->n_parts : 1, sizeof(*lp));
        Runnel__ListOffsetsPartition **lpp = calloc(in->n_parts ? in->n_parts : 1, sizeof(*lpp));
        if (!lp || !lpp) {
            free(lp);
            free(lpp);
            op_error(in, 500, 50001, "out of memory");
            return;
        }
        for (size_t k = 0; k < in->n_parts; k++) {
            cpart *cp = &in->parts[k];
            if (cp->position != POS_BEGINNING && cp->position != POS_END)
                continue;
            runnel__list_offsets_partition__init(&lp[n]);
            lp[n].topic = cp->topic;
            lp[n].partition = cp->partition;
            lp[n].timestamp = cp->position == POS_BEGINNING ? -2 : -1;
            lpp[n] = &lp[n];
            n++;
        }
        if (n) {
            Runnel__ListOffsetsRequest q = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
            q.n_partitions = n;
            q.partitions = lpp;
            Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
            h.api = RUNNEL__API__LIST_OFFSETS;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
            h.list_offsets = &q;
            rc = call_broker(in, &in->op_call, &h, poll_reset_answer);
        }
        free(lp);
        free(lpp);
        if (!n) {
            in->op = OP_POLL_FETCH;
            poll_step(in);
            return;
        }
    } else if (in->op == OP_POLL_FETCH) {
        size_t n = 0;
        Runnel__FetchPartition *fp = calloc(in->n_parts ? in->n_parts : 1, sizeof(*fp));
        Runnel__FetchPartition **fpp = calloc(in->n_parts ? in->n_parts : 1, sizeof(*fpp));
        if (!fp || !fpp) {
            free(fp);
            free(fpp);
            op_error(in, 500, 50001, "out of memory");
            return;
        }
        for (size_t k = 0; k < in->n_parts; k++) {
            cpart *cp = &in->parts[k];
            if (cp->position < 0)
                continue;
            runnel__fetch_partition__init(&fp[n]);
            fp[n].topic = cp->topic;
            fp[n].partition = cp->partition;
            fp[n].fetch_offset = cp->position;
            fp[n].partition_max_bytes = in->poll_bytes;
            fp[n].current_leader_epoch = -1;
            fpp[n] = &fp[n];
            n++;
        }
        if (!n) {
            /* Nothing assigned (yet): an empty answer, as REST Proxy gives. */
            free(fp);
            free(fpp);
            if (waiter_alive(in))
                rn_http_respond(in->waiter, 200, records_ct(in), "[]", 2, NULL);
            finish_op(in);
            return;
        }
        Runnel__FetchRequest q = RUNNEL__FETCH_REQUEST__INIT;
        q.replica_id = -1;
        q.max_wait_ms = in->poll_ms;
        q.min_bytes = 1;
        q.max_bytes = in->poll_bytes;
        q.n_partitions = n;
        q.partitions = fpp;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__FETCH;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
        h.fetch = &q;
        rc = call_broker(in, &in->op_call, &h, poll_fetch_answer);
        free(fp);
        free(fpp);
    }
    if (rc < 0)
        op_rn_error(in, rc, NULL);
}

/* ---- Commits
 * -------------------------------------------------------------------------------------- */

static void commit_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                          unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, op_call);
    if (op_answer_ok(in, hdr, slices, n_slices)) {
        Runnel__CommitOffsetsResponse *r = hdr->commit_offsets;
        int bad = 0;
        for (size_t i = 0; r && i < r->n_offsets; i++)
            bad = bad ? bad : (int)r->offsets[i]->error_code;
        if (bad) {
            op_rn_error(in, -bad, "a partition of the commit is unknown");
        } else {
            if (waiter_alive(in))
                rn_http_respond(in->waiter, 204, NULL, NULL, 0, NULL);
            finish_op(in);
        }
    }
    inst_unref(in);
}

static void committed_answer(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                             unsigned n_slices)
{
    cinst *in = RN_CONTAINER_OF(call, cinst, op_call);
    if (op_answer_ok(in, hdr, slices, n_slices)) {
        json_t *arr = json_array();
        Runnel__FetchOffsetsResponse *r = hdr->fetch_offsets;
        for (size_t i = 0; r && i < r->n_offsets; i++) {
            Runnel__OffsetCommit *o = r->offsets[i];
            json_array_append_new(arr,
                                  json_pack("{s:s,s:i,s:I,s:s}", "topic", o->topic, "partition",
                                            o->partition, "offset", (json_int_t)o->offset,
                                            "metadata", o->metadata ? o->metadata : ""));
        }
        json_t *j = json_pack("{s:o}", "offsets", arr);
        if (waiter_alive(in))
            rn_http_respond_json(in->waiter, 200, RN_GW_CT_V2, j);
        json_decref(j);
        finish_op(in);
    }
    inst_unref(in);
}
/* ---- What the routes start (consumer_instance.h) ------------------------------------------- */

cinst *rn__cinst_new(rn_consumers *cs, const char *group, const char *name, enum rn_gw_format fmt,
                     bool reset_earliest, bool auto_commit)
{
    cinst *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->cs = cs;
    snprintf(in->group, sizeof(in->group), "%s", group);
    snprintf(in->name, sizeof(in->name), "%s", name);
    in->fmt = fmt;
    in->reset_earliest = reset_earliest;
    in->auto_commit = auto_commit;
    in->last_used_ms = rn_now_ms();
    in->refs = 1;
    rn_member_conf mc = {
        /* The coordinator's interval as it asks (no bound of ours); its
         * stable one when it names none. */
        .max_interval_ms = INT32_MAX,
        .default_interval_ms = RN_GROUP_HEARTBEAT_MS,
        .session_timeout_ms = RN_GROUP_SESSION_TIMEOUT_MS,
        .retry_backoff_ms = 500,
    };
    rn_member_init(&in->m, &mc);
    char peer[96];
    snprintf(peer, sizeof(peer), "rest-consumer %s/%s", group, name);
    rn_gw_client_init(&in->client, cs->gw->r, peer);
    in->client.route = true; /* partitions led elsewhere go to their leaders */
    in->next = cs->list;
    if (cs->list)
        cs->list->prev = in;
    cs->list = in;
    cs->n++;
    return in;
}

void rn__cinst_leave(cinst *in)
{
    heartbeat(in, true); /* leave: the group rebalances now, not at the session timeout */
    in->leaving = true;
    inst_destroy(in, "deleted");
}

int rn__cinst_subscribe(cinst *in, const char *const *topics, size_t n)
{
    /* The machine copies them; the heartbeat is due on the next timer turn. */
    int rc = rn_member_subscribe(&in->m, topics, n, rn_now_ms());
    if (rc < 0)
        return rc;
    arm_timer(in->cs);
    return 0;
}

void rn__cinst_unsubscribe(cinst *in)
{
    heartbeat(in, true);
    rn_member_unsubscribe(&in->m); /* answers to earlier heartbeats are stale now */
    parts_free(in->parts, in->n_parts);
    in->parts = NULL;
    in->n_parts = 0;
}

bool rn__cinst_start_op(cinst *in, rn_http_conn *c, enum op_kind op)
{
    if (in->op != OP_NONE) {
        rn_http_respond_error(c, 409, 40903, "consumer instance %s is busy with another request",
                              in->name);
        return false;
    }
    in->op = op;
    rn_http_conn_ref(c);
    in->waiter = c;
    return true;
}

void rn__cinst_poll(cinst *in, uint32_t poll_ms, uint32_t poll_bytes)
{
    in->poll_ms = poll_ms;
    in->poll_bytes = poll_bytes;
    poll_step(in);
}

void rn__cinst_commit(cinst *in, char **topics, int32_t *parts, int64_t *offsets, size_t n)
{
    int rc = commit(in, &in->op_call, commit_answer, topics, parts, offsets, n);
    if (rc < 0)
        op_rn_error(in, rc, NULL);
}

void rn__cinst_committed(cinst *in)
{
    int rc = fetch_committed(in, committed_answer);
    if (rc < 0)
        op_rn_error(in, rc, NULL);
}

/* ---- The registry
 * ----------------------------------------------------------------------------------- */

int rn_consumers_new(rn_consumers **out, rn_gateway *gw)
{
    rn_consumers *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return -ENOMEM;
    cs->gw = gw;
    *out = cs;
    return 0;
}

void rn_consumers_tick(rn_consumers *cs, int64_t now_ms)
{
    (void)now_ms;
    if (cs)
        arm_timer(cs); /* instances made before the timer could run */
}

static void cancel_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_consumers *cs = RN_CONTAINER_OF(op, rn_consumers, cancel_op);
    (void)res;
    (void)flags;
    cs->cancel_inflight = false;
}

void rn_consumers_stop(rn_consumers *cs)
{
    if (!cs || cs->stopping)
        return;
    cs->stopping = true;
    while (cs->list)
        inst_destroy(cs->list, "shutdown");
    if (cs->timer_armed && !cs->cancel_inflight) {
        struct io_uring_sqe *sqe = rn_io_sqe(cs->gw->r->io, &cs->cancel_op, cancel_done);
        if (sqe) {
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&cs->timer_op, 0);
            cs->cancel_inflight = true;
        }
    }
}

bool rn_consumers_idle(const rn_consumers *cs)
{
    return !cs || (!cs->list && !cs->timer_armed && !cs->cancel_inflight);
}

void rn_consumers_free(rn_consumers *cs)
{
    if (!cs)
        return;
    while (cs->list)
        inst_destroy(cs->list, "gateway freed");
    free(cs);
}
