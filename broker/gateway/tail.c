/*
 * tail.c — a live tail of one partition: resolve the start, then long-poll
 * Fetch requests in a loop, rendering each answer's records as JSON.
 *
 *   RESOLVING ──ListOffsets answer──▶ (on_start) ──▶ IDLE ◀──────────────┐
 *                                                    │ has_room()         │
 *                                                    ▼                    │
 *                                                 FETCHING ──answer──▶ on_record × n,
 *                                                    │ error              on_records_end
 *                                                    ▼
 *                                                 STOPPED (on_error)
 *
 * Rendering goes through the gateway's render cache (json.c): a thousand
 * tails of one partition render each batch once and copy the text.
 * Every step runs from a NOP completion (kick), never on the stack of a
 * broker answer: an answer can arrive inside rn_partition_wake's loop or
 * inside rn_request_local, where sending the next request would re-enter the
 * broker. The NOP also bounds the work per loop turn when catching up a
 * backlog: one fetch answer (RN_TAIL_FETCH_BYTES) per turn.
 *
 * A fetch starts at the batch holding `position`, so records below it are
 * skipped when rendering. An offset below the log start (retention moved
 * it) jumps to the log start; one above the end stops the tail.
 *
 * Following the leader: in a cluster the tail's requests go to the
 * partition's leader as the metadata names it at each request (client.h), and
 * the tail keeps its own position. An answer that says "try again" (status
 * 503: not the leader, the leader out of reach, a timeout) does not end the
 * tail: it asks again from the same position after RN_TAIL_RETRY_PAUSE_MS, so
 * when the leader moves or comes back the tail goes on from the next offset,
 * with no gap and no record twice. Only RN_TAIL_RETRY_MS of such answers in a
 * row end it (with the last one's error).
 *
 * Life: refs = the owner + a NOP in flight + an answer being handled. The
 * in-flight request lives on the tail's own virtual connection, so
 * rn_tail_free ends it (a parked fetch is cancelled) without waiting.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/tail.h"
#include "broker/logfmt.h"
#include "broker/net/reactor.h"
#include "protocol/container_of.h"

struct rn_tail {
    rn_gw_call call;
    rn_gw_client client;
    rn_reactor *r;
    char topic[256];
    int32_t partition;
    enum rn_tail_start start;
    int64_t at;
    char filter[RN_TAIL_MAX_FILTER + 1];
    size_t filter_len;
    enum rn_gw_format fmt;
    rn_json_cache *cache;
    rn_tail_cbs cbs;
    void *arg;
    int refs;
    bool dead, resolved, announced, inflight, kick_armed, retry_armed;
    int64_t position;
    rn_io_op kick_op;
    rn_io_op retry_op, cancel_op;
    struct __kernel_timespec retry_ts;
    uint64_t failing_since_ns; /* first of the "try again" answers in a row; 0: none */
};

static void step(rn_tail *t);

static void unref(rn_tail *t)
{
    if (--t->refs > 0)
        return;
    free(t);
}

static void kick_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_tail *t = RN_CONTAINER_OF(op, rn_tail, kick_op);
    (void)res;
    (void)flags;
    t->kick_armed = false;
    if (!t->dead)
        step(t);
    unref(t);
}

static void kick(rn_tail *t)
{
    if (t->kick_armed || t->dead)
        return;
    struct io_uring_sqe *sqe = rn_io_sqe(t->r->io, &t->kick_op, kick_done);
    if (!sqe)
        return;
    io_uring_prep_nop(sqe);
    t->kick_armed = true;
    t->refs++;
}

static void stop_with(rn_tail *t, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void retry_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_tail *t = RN_CONTAINER_OF(op, rn_tail, retry_op);
    (void)res;
    (void)flags;
    t->retry_armed = false;
    if (!t->dead)
        step(t);
    unref(t);
}

static void cancel_done(rn_io_op *op, int res, uint32_t flags)
{
    rn_tail *t = RN_CONTAINER_OF(op, rn_tail, cancel_op);
    (void)res;
    (void)flags;
    unref(t);
}

/* An answer that says "try again" (status 503): ask again after a pause, for
 * at most RN_TAIL_RETRY_MS in a row. Returns true when a retry is armed;
 * false when the caller must stop the tail. */
static bool retry_later(rn_tail *t, int status, int err)
{
    if (status != 503 || err == -RN_E_SHUTTING_DOWN || t->dead)
        return false;
    uint64_t now = rn_now_ns();
    if (!t->failing_since_ns)
        t->failing_since_ns = now;
    if (now - t->failing_since_ns > (uint64_t)RN_TAIL_RETRY_MS * 1000000ull)
        return false;
    struct io_uring_sqe *sqe = rn_io_sqe(t->r->io, &t->retry_op, retry_done);
    if (!sqe)
        return false;
    t->retry_ts.tv_sec = RN_TAIL_RETRY_PAUSE_MS / 1000;
    t->retry_ts.tv_nsec = (RN_TAIL_RETRY_PAUSE_MS % 1000) * 1000000ll;
    io_uring_prep_timeout(sqe, &t->retry_ts, 0, 0);
    t->retry_armed = true;
    t->refs++;
    return true;
}

static void stop_with(rn_tail *t, int status, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->resolved = false;
    t->inflight = true; /* nothing more goes out */
    if (t->cbs.on_error)
        t->cbs.on_error(t->arg, status, code, msg);
}

static void dropped(rn_gw_call *call)
{
    rn_tail *t = RN_CONTAINER_OF(call, rn_tail, call);
    t->inflight = false;
}

/* ---- Resolving the start ---------------------------------------------------------------- */

static void resolved(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                     unsigned n_slices)
{
    rn_tail *t = RN_CONTAINER_OF(call, rn_tail, call);
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    t->inflight = false;
    t->refs++;
    int status, code;
    if (hdr->error_code || hdr->body_case != RUNNEL__RESPONSE_HEADER__BODY_LIST_OFFSETS ||
        hdr->list_offsets->n_partitions == 0) {
        int err = hdr->error_code ? -(int)hdr->error_code : -RN_E_UNKNOWN;
        rn_gw_error_map(err, false, &status, &code);
        if (!retry_later(t, status, err))
            stop_with(t, status, code, "%s",
                      hdr->error_message && *hdr->error_message ? hdr->error_message
                                                                : rn_strerror(err));
        goto out;
    }
    Runnel__ListOffsetsResponse *lr = hdr->list_offsets;
    Runnel__ListOffsetsPartitionResponse *p0 = lr->partitions[0];
    if (p0->error_code) {
        rn_gw_error_map(-(int)p0->error_code, true, &status, &code);
        if (retry_later(t, status, -(int)p0->error_code))
            goto out;
        stop_with(t, status, code, "%s-%d: %s", t->topic, t->partition,
                  rn_strerror(-(int)p0->error_code));
        goto out;
    }
    int64_t off = p0->offset;
    if (off < 0 && lr->n_partitions > 1 && !lr->partitions[1]->error_code)
        off = lr->partitions[1]->offset; /* no record that recent: start at the end */
    t->position = off < 0 ? 0 : off;
    t->resolved = true;
    t->failing_since_ns = 0;
    kick(t);
out:
    unref(t);
}

static int send_list_offsets(rn_tail *t)
{
    Runnel__ListOffsetsPartition lp[2];
    Runnel__ListOffsetsPartition *lpp[2] = {&lp[0], &lp[1]};
    runnel__list_offsets_partition__init(&lp[0]);
    runnel__list_offsets_partition__init(&lp[1]);
    lp[0].topic = lp[1].topic = t->topic;
    lp[0].partition = lp[1].partition = t->partition;
    size_t n = 1;
    switch (t->start) {
    case RN_TAIL_BEGINNING:
        lp[0].timestamp = -2;
        break;
    case RN_TAIL_END:
        lp[0].timestamp = -1;
        break;
    default:
        lp[0].timestamp = t->at;
        lp[1].timestamp = -1;
        n = 2;
        break;
    }
    Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
    lr.n_partitions = n;
    lr.partitions = lpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__LIST_OFFSETS;
    h.client_id = "runnel-gateway";
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
    h.list_offsets = &lr;
    char err[256] = "";
    t->inflight = true;
    int rc =
        rn_gw_client_call(&t->client, &h, NULL, 0, &t->call, resolved, dropped, err, sizeof(err));
    if (rc < 0)
        t->inflight = false;
    return rc;
}

/* ---- Fetching --------------------------------------------------------------------------- */

static void fetched(rn_gw_call *call, Runnel__ResponseHeader *hdr, rn_slice *slices,
                    unsigned n_slices)
{
    rn_tail *t = RN_CONTAINER_OF(call, rn_tail, call);
    t->inflight = false;
    t->refs++;
    int status, code;
    if (hdr->error_code || hdr->body_case != RUNNEL__RESPONSE_HEADER__BODY_FETCH ||
        hdr->fetch->n_partitions == 0) {
        int err = hdr->error_code ? -(int)hdr->error_code : -RN_E_UNKNOWN;
        rn_gw_error_map(err, false, &status, &code);
        if (!retry_later(t, status, err))
            stop_with(t, status, code, "%s",
                      hdr->error_message && *hdr->error_message ? hdr->error_message
                                                                : rn_strerror(err));
        goto out;
    }
    Runnel__FetchPartitionResponse *fp = hdr->fetch->partitions[0];
    if (fp->error_code == RN_E_OFFSET_OUT_OF_RANGE && fp->log_start_offset >= 0 &&
        t->position < fp->log_start_offset) {
        /* Retention removed what we were about to read: go on from what is left. */
        t->position = fp->log_start_offset;
        kick(t);
        goto out;
    }
    if (fp->error_code) {
        int err = -(int)fp->error_code;
        rn_gw_error_map(err, true, &status, &code);
        if (retry_later(t, status, err))
            goto out;
        if (fp->error_code == RN_E_OFFSET_OUT_OF_RANGE)
            stop_with(t, status, code,
                      "offset %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", t->position,
                      fp->log_start_offset, fp->high_watermark);
        else
            stop_with(t, status, code, "%s-%d: %s", t->topic, t->partition, rn_strerror(err));
        goto out;
    }
    t->failing_since_ns = 0;
    /* One answer per loop turn renders at most RN_TAIL_RENDER_BYTES and looks
     * at RN_TAIL_SCAN_BYTES of records; the rest waits for the next turn. */
    rn_json_budget bud = {.max_bytes = RN_TAIL_RENDER_BYTES,
                          .max_scan = RN_TAIL_SCAN_BYTES,
                          .overhead = RN_TAIL_RECORD_OVERHEAD};
    for (unsigned i = 0; i < n_slices && !t->dead && !bud.full; i++) {
        if (!slices[i].len)
            continue;
        int64_t next = t->position;
        int n = rn_json_render_records(t->cache, t->topic, t->partition, slices[i].data,
                                       slices[i].len, t->position, t->filter, t->filter_len, t->fmt,
                                       &bud, &next, t->cbs.on_record, t->arg);
        if (t->dead)
            break; /* the owner closed it from a callback */
        if (n == -RN_E_MESSAGE_TOO_LARGE) {
            stop_with(t, 422, 42202,
                      "record at offset %" PRId64 " is larger than %u bytes as JSON; "
                      "subscribe from offset %" PRId64 " to go on",
                      next, RN_GW_MAX_RECORD_JSON, next + 1);
            goto out;
        }
        if (n < 0) {
            rn_logfmt(RN_WARN, "tail cannot render a fetched batch",
                      "topic=%s partition=%d offset=%" PRId64 " err=%s", t->topic, t->partition,
                      t->position, rn_errname(n));
            stop_with(t, 500, 50001, "cannot render records at offset %" PRId64 ": %s", t->position,
                      rn_strerror(n));
            goto out;
        }
        if (next > t->position)
            t->position = next;
        if (n > 0 && t->cbs.on_records_end)
            t->cbs.on_records_end(t->arg, (size_t)n, t->position);
    }
    kick(t);
out:
    for (unsigned i = 0; i < n_slices; i++)
        rn_slice_release(&slices[i]);
    unref(t);
}

static int send_fetch(rn_tail *t)
{
    Runnel__FetchPartition fp = RUNNEL__FETCH_PARTITION__INIT;
    Runnel__FetchPartition *fpp = &fp;
    fp.topic = t->topic;
    fp.partition = t->partition;
    fp.fetch_offset = t->position;
    fp.partition_max_bytes = RN_TAIL_FETCH_BYTES;
    fp.current_leader_epoch = -1;
    Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
    fr.replica_id = -1;
    fr.max_wait_ms = RN_TAIL_WAIT_MS;
    fr.min_bytes = 1;
    fr.max_bytes = RN_TAIL_FETCH_BYTES;
    fr.n_partitions = 1;
    fr.partitions = &fpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.api = RUNNEL__API__FETCH;
    h.client_id = "runnel-gateway";
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    h.fetch = &fr;
    char err[256] = "";
    t->inflight = true;
    int rc =
        rn_gw_client_call(&t->client, &h, NULL, 0, &t->call, fetched, dropped, err, sizeof(err));
    if (rc < 0)
        t->inflight = false;
    return rc;
}

static void step(rn_tail *t)
{
    if (t->inflight || t->dead)
        return;
    int rc;
    if (!t->resolved) {
        rc = send_list_offsets(t);
    } else {
        if (!t->announced) {
            t->announced = true;
            if (t->cbs.on_start)
                t->cbs.on_start(t->arg, t->position);
            if (t->dead || t->inflight)
                return;
        }
        if (t->cbs.has_room && !t->cbs.has_room(t->arg))
            return; /* rn_tail_resume brings us back */
        rc = send_fetch(t);
    }
    if (rc < 0 && !t->dead) {
        int status, code;
        rn_gw_error_map(rc, false, &status, &code);
        stop_with(t, status, code, "cannot start the tail: %s", rn_strerror(rc));
    }
}

/* ---- Public ---------------------------------------------------------------------------------- */

int rn_tail_new(rn_tail **out, rn_reactor *r, const char *peer, const rn_tail_opts *o,
                const rn_tail_cbs *cbs, void *arg)
{
    size_t fl = o->filter ? strlen(o->filter) : 0;
    if (fl > RN_TAIL_MAX_FILTER || strlen(o->topic) >= sizeof(((rn_tail *)0)->topic))
        return -EINVAL;
    rn_tail *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->r = r;
    rn_gw_client_init(&t->client, r, peer);
    t->client.route = true; /* partitions led elsewhere go to their leaders */
    snprintf(t->topic, sizeof(t->topic), "%s", o->topic);
    t->partition = o->partition;
    t->start = o->start;
    t->at = o->at;
    if (fl)
        memcpy(t->filter, o->filter, fl);
    t->filter_len = fl;
    t->fmt = o->fmt;
    t->cache = o->cache;
    t->cbs = *cbs;
    t->arg = arg;
    t->refs = 1;
    if (o->start == RN_TAIL_OFFSET) {
        t->position = o->at;
        t->resolved = true;
    }
    kick(t);
    *out = t;
    return 0;
}

void rn_tail_resume(rn_tail *t)
{
    if (t && !t->dead && !t->inflight)
        kick(t);
}

void rn_tail_free(rn_tail *t)
{
    if (!t || t->dead)
        return;
    t->dead = true;
    rn_gw_client_close(&t->client, "tail closed");
    if (t->retry_armed) {
        /* The pause ends now (-ECANCELED), so the tail does not outlive its
         * owner by a pause. */
        struct io_uring_sqe *sqe = rn_io_sqe(t->r->io, &t->cancel_op, cancel_done);
        if (sqe) {
            io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&t->retry_op, 0);
            t->refs++;
        }
    }
    unref(t);
}

int rn_tail_parse_start(const char *s, enum rn_tail_start *start, int64_t *at)
{
    *at = 0;
    if (!s || !*s || !strcmp(s, "end") || !strcmp(s, "latest")) {
        *start = RN_TAIL_END;
        return 0;
    }
    if (!strcmp(s, "beginning") || !strcmp(s, "earliest")) {
        *start = RN_TAIL_BEGINNING;
        return 0;
    }
    const char *num = s;
    *start = RN_TAIL_OFFSET;
    if (!strncmp(s, "s@", 2)) {
        num = s + 2;
        *start = RN_TAIL_TIME;
    }
    char err[160];
    return rn_text_get_int(num, "offset", 0, INT64_MAX, at, err, sizeof(err));
}
