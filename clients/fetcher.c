/*
 * fetcher.c — rn_consumer's Fetch requests and their answers, and positions
 * resolved by name (ListOffsets).
 *
 * Each assigned partition (cpart) has two offsets:
 *
 *   position   the next offset rn_consumer_poll returns to the application;
 *   fetch_pos  the next offset to ask the broker for: the end of the whole
 *              batches already buffered (>= position).
 *
 * and a buffer of fetched bytes (chunks: the partition's slice of each Fetch
 * answer, whole batches only). A large answer spans several recv()s, so the
 * connection's frame decoder gathers it into an allocation of its own: fetch_cb
 * takes that allocation over (rn_frame_decoder_steal) and the chunks of every
 * partition of the answer point into it, sharing it by reference count (a
 * fblob): past the decoder's one copy out of the receive buffer, fetched bytes
 * are never copied again. An answer the connection received in place into its
 * big-frame buffer (conn.c) is taken the same way (rn__conn_take_frame), and
 * the buffer goes back to the connection (rn__conn_recycle) when its last
 * chunk is consumed, so a stream is received with no copy and no fresh pages.
 * A small answer that came whole in the receive buffer is copied, since that
 * buffer is reused by the next recv, into a chunk buffer recycled from the
 * chunks of earlier polls (a few are kept). Flow:
 *
 *   pump ──Fetch(fetch_pos) per leader──▶ broker (long-poll: fetch.min.bytes,
 *     ▲                                           fetch.max.wait.ms)
 *     │ prefetch: a partition is fetched          │ answer
 *     │ again as soon as less than                ▼
 *     │ max.partition.fetch.bytes is    chunks += whole batches, fetch_pos moves,
 *     │ left undecoded, so the next     high watermark noted
 *     │ answer is on its way while the            │
 *     │ application works                         ▼
 *     └──────────────────────────── rn_consumer_poll: verify each batch
 *                                   (rn_batch_verify when check.crcs), skip
 *                                   records below position (a fetch starts at
 *                                   the batch holding fetch_pos) and control
 *                                   batches, decode with rn_batch_iter
 *
 * Offsets asked by name (beginning, end, a time) are resolved synchronously by
 * ListOffsets in assign/seek, so rn_consumer_position is exact right after.
 * Invariants: see consumer_int.h (2 and 4 are kept here).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/consumer_int.h"

/* One Fetch in flight: its partitions and what they were when it was built. */
typedef struct freq {
    struct rn_consumer *c;
    size_t n;
    cpart **parts;
    uint32_t *gens;
    int64_t *offsets;
} freq;

/* ---- Fetch ------------------------------------------------------------------------------ */

/* Append the whole batches of one partition's answer: a slice of blob when
 * there is one (no copy), else a copy. Returns false on ENOMEM. */
static bool take_data(rn_consumer *c, cpart *p, fblob *blob, const uint8_t *data, size_t len)
{
    size_t whole = 0;
    int64_t next = p->fetch_pos;
    while (whole < len) {
        rn_batch_header h;
        if (rn_batch_peek(data + whole, len - whole, 0, &h) < 0) {
            /* Not a batch: keep the bytes so decode reports them with context. */
            whole = len;
            p->corrupt = true;
            break;
        }
        size_t size = rn_batch_size(&h);
        if (size > len - whole)
            break; /* a partial batch at the end: fetched again from fetch_pos */
        whole += size;
        int64_t last = h.base_offset + h.last_offset_delta;
        if (last + 1 > next)
            next = last + 1;
    }
    if (whole == 0)
        return true;
    chunk *ch = calloc(1, sizeof(*ch));
    size_t cap = 0;
    uint8_t *copy = blob || !ch ? NULL : rn__consumer_chunk_alloc(c, whole, &cap);
    if (!ch || (!blob && !copy)) {
        free(ch);
        return false;
    }
    ch->cap = cap;
    if (blob) {
        ch->data = (uint8_t *)data;
        ch->blob = blob;
        blob->refs++;
    } else {
        memcpy(copy, data, whole);
        ch->data = copy;
    }
    ch->len = whole;
    if (p->tail)
        p->tail->next = ch;
    else
        p->head = ch;
    p->tail = ch;
    p->buffered += whole;
    if (!p->corrupt)
        p->fetch_pos = next;
    return true;
}

static void fetch_cb(void *arg, rn__conn *conn, int err, rn_frame_response *resp)
{
    freq *fr = arg;
    rn_consumer *c = fr->c;
    const rn_conf *conf = c->cl.conf;
    int64_t now = rn__now_ms();
    fblob *blob = NULL;
    for (size_t i = 0; i < fr->n; i++)
        fr->parts[i]->fetching = false;
    if (err || resp->hdr->error_code) {
        int e = err ? err : -(int)resp->hdr->error_code;
        char msg[400];
        if (err) {
            snprintf(msg, sizeof(msg), "fetch: %s", rn__conn_errmsg(conn));
        } else {
            const char *m = resp->hdr->error_message ? resp->hdr->error_message : "";
            snprintf(msg, sizeof(msg), "fetch from %s:%u: %s%s%s", conn->host, conn->port,
                     rn_strerror(e), *m ? ": " : "", m);
        }
        for (size_t i = 0; i < fr->n; i++)
            fr->parts[i]->retry_at = now + conf->retry_backoff_ms;
        if (rn__needs_metadata(e))
            c->need_md = true;
        if (err || rn__retriable(e))
            rn__consumer_transport_failed(c, e, msg);
        else
            rn__consumer_set_pending(c, e, "%s", msg);
        goto out;
    }
    c->fail_since = 0;
    /* The answer is the frame the connection's decoder returned last: take its
     * allocation when it has one (see the top of the file). The callback holds
     * a reference until it returns, so a frame no chunk uses is freed at once;
     * without memory for the fblob, the slices are copied as for a small answer. */
    size_t cap = 0;
    uint8_t *stolen = rn_frame_decoder_steal(&conn->dec);
    rn__conn *from = NULL; /* the connection whose big-frame buffer it is */
    if (!stolen && (stolen = rn__conn_take_frame(conn, &cap)))
        from = conn;
    if (stolen) {
        blob = malloc(sizeof(*blob));
        if (blob) {
            blob->mem = stolen;
            blob->refs = 1;
            blob->c = c;
            blob->conn = from;
            blob->cap = cap;
            stolen = NULL;
        }
    }
    Runnel__FetchResponse *fres = resp->hdr->fetch;
    size_t off = 0;
    for (size_t k = 0; k < fres->n_partitions; k++) {
        Runnel__FetchPartitionResponse *r = fres->partitions[k];
        const uint8_t *data = resp->payload + off;
        size_t len = r->bytes_len;
        off += len; /* frame.c checked that the lengths add up to the payload */
        size_t i = k < fr->n && fr->parts[k]->partition == r->partition &&
                           strcmp(fr->parts[k]->topic, r->topic) == 0
                       ? k
                       : fr->n;
        for (size_t j = 0; i == fr->n && j < fr->n; j++)
            if (fr->parts[j]->partition == r->partition &&
                strcmp(fr->parts[j]->topic, r->topic) == 0)
                i = j;
        if (i == fr->n)
            continue; /* not asked for */
        cpart *p = fr->parts[i];
        if (p->gen != fr->gens[i] || p->fetch_pos != fr->offsets[i])
            continue; /* a seek happened meanwhile (invariant 2) */
        if (r->high_watermark >= 0)
            p->hw = r->high_watermark;
        if (r->log_start_offset >= 0)
            p->log_start = r->log_start_offset;
        if (r->log_end_offset >= 0)
            p->leo = r->log_end_offset;
        if (r->error_code) {
            int e = -(int)r->error_code;
            if (e == -RN_E_OFFSET_OUT_OF_RANGE && rn__consumer_subscribed(c)) {
                /* A group member applies auto.offset.reset, as Kafka's does. */
                p->start = START_RESET;
                p->retry_at = 0;
            } else if (e == -RN_E_OFFSET_OUT_OF_RANGE) {
                p->stopped = true;
                /* leo is the next offset to be written: the last one held is leo - 1. */
                if (p->leo <= p->log_start)
                    rn__consumer_set_pending(
                        c, e,
                        "%s-%d: offset %" PRId64 " is out of range: the log is empty, "
                        "its next offset is %" PRId64 " (seek to a valid offset)",
                        p->topic, p->partition, p->fetch_pos, p->leo);
                else
                    rn__consumer_set_pending(
                        c, e,
                        "%s-%d: offset %" PRId64 " is out of range: the log holds "
                        "offsets %" PRId64 " to %" PRId64 " (seek to a valid offset)",
                        p->topic, p->partition, p->fetch_pos, p->log_start, p->leo - 1);
            } else if (rn__retriable(e)) {
                p->retry_at = now + conf->retry_backoff_ms;
                if (rn__needs_metadata(e))
                    c->need_md = true;
            } else {
                p->stopped = true;
                rn__consumer_set_pending(c, e, "%s-%d: fetch failed: %s", p->topic, p->partition,
                                         rn_strerror(e));
            }
            continue;
        }
        if (len && !take_data(c, p, blob, data, len)) {
            p->retry_at = now + conf->retry_backoff_ms; /* out of memory: fetch it again later */
        }
    }
    rn__consumer_blob_release(blob);
    if (from && stolen)
        rn__conn_recycle(from, stolen, cap);
    else
        free(stolen);
out:
    free(fr);
}

static int send_fetch(rn_consumer *c, rn__conn *conn, cpart **parts, size_t n)
{
    const rn_conf *conf = c->cl.conf;
    /* One block: the request context and its three arrays. */
    freq *fr = malloc(sizeof(*fr) + n * (sizeof(cpart *) + sizeof(uint32_t) + sizeof(int64_t)));
    Runnel__FetchPartition *fps = calloc(n, sizeof(*fps));
    Runnel__FetchPartition **fpp = calloc(n, sizeof(*fpp));
    int rc = -ENOMEM;
    if (!fr || !fps || !fpp)
        goto out;
    fr->c = c;
    fr->n = n;
    fr->offsets = (int64_t *)(fr + 1);
    fr->parts = (cpart **)(fr->offsets + n);
    fr->gens = (uint32_t *)(fr->parts + n);
    for (size_t i = 0; i < n; i++) {
        cpart *p = parts[i];
        runnel__fetch_partition__init(&fps[i]);
        fps[i].topic = p->topic;
        fps[i].partition = p->partition;
        fps[i].fetch_offset = p->fetch_pos;
        fps[i].partition_max_bytes = (uint32_t)conf->max_partition_fetch_bytes;
        fps[i].current_leader_epoch = -1;
        fpp[i] = &fps[i];
        fr->parts[i] = p;
        fr->gens[i] = p->gen;
        fr->offsets[i] = p->fetch_pos;
    }
    Runnel__FetchRequest req = RUNNEL__FETCH_REQUEST__INIT;
    req.replica_id = -1;
    req.max_wait_ms = (uint32_t)conf->fetch_max_wait_ms;
    req.min_bytes = (uint32_t)conf->fetch_min_bytes;
    req.max_bytes = (uint32_t)conf->fetch_max_bytes;
    req.isolation = RUNNEL__ISOLATION_LEVEL__READ_UNCOMMITTED;
    req.n_partitions = n;
    req.partitions = fpp;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
    h.fetch = &req;
    /* The broker may hold a fetch for max_wait_ms before it answers. */
    rc = rn__conn_send(conn, &h, NULL, 0, RUNNEL__API__FETCH,
                       conf->socket_timeout_ms + conf->fetch_max_wait_ms, false, fetch_cb, fr);
    if (rc == 0) {
        fr = NULL;
        for (size_t i = 0; i < n; i++)
            parts[i]->fetching = true;
    }
out:
    free(fr);
    free(fps);
    free(fpp);
    return rc;
}

static bool fetchable(const rn_consumer *c, const cpart *p, int64_t now)
{
    return !p->fetching && !p->stopped && !p->corrupt && p->start == START_KNOWN &&
           p->fetch_pos >= 0 && p->retry_at <= now &&
           p->buffered < (size_t)c->cl.conf->max_partition_fetch_bytes;
}

/* Send one Fetch per leader for every partition that wants more data. */
void rn__consumer_pump(rn_consumer *c)
{
    int64_t now = rn__now_ms();
    cpart **batch = c->n_parts ? malloc(c->n_parts * sizeof(*batch)) : NULL;
    bool *done = c->n_parts ? calloc(c->n_parts, sizeof(*done)) : NULL;
    if (c->n_parts && (!batch || !done))
        goto out;
    for (size_t i = 0; i < c->n_parts; i++) {
        cpart *p = c->parts[i];
        if (done[i] || !fetchable(c, p, now))
            continue;
        rn__conn *conn;
        if (rn__md_leader(&c->cl, p->topic, p->partition, &conn) < 0) {
            c->need_md = true;
            continue;
        }
        /* Gather every fetchable partition with the same leader. */
        size_t n = 0;
        for (size_t j = i; j < c->n_parts; j++) {
            cpart *q = c->parts[j];
            rn__conn *qc;
            if (done[j] || !fetchable(c, q, now) ||
                rn__md_leader(&c->cl, q->topic, q->partition, &qc) < 0 || qc != conn)
                continue;
            done[j] = true;
            batch[n++] = q;
        }
        send_fetch(c, conn, batch, n);
    }
    if (c->need_md && now >= c->md_retry_at) {
        c->need_md = false;
        c->md_retry_at = now + c->cl.conf->retry_backoff_ms;
        rn__md_refresh(&c->cl);
    }
out:
    free(batch);
    free(done);
}

/* When pump has something to do next, absent any I/O: a partition's retry
 * backoff ends, or metadata may be asked again. Past times do not count (what
 * is due now but not sent waits for I/O), so poll never spins. */
int64_t rn__consumer_next_timer(const rn_consumer *c)
{
    int64_t now = rn__now_ms();
    int64_t t = INT64_MAX;
    for (size_t i = 0; i < c->n_parts; i++) {
        const cpart *p = c->parts[i];
        if (!p->fetching && !p->stopped && p->retry_at > now)
            t = min64(t, p->retry_at);
    }
    if (c->need_md)
        t = min64(t, c->md_retry_at);
    rn__consumer_group_timer(c, now, &t);
    return t;
}

/* ---- Offsets by name ---------------------------------------------------------------------- */

void rn__consumer_set_position(rn_consumer *c, cpart *p, int64_t offset)
{
    rn__consumer_drop_buffered(c, p);
    p->position = p->fetch_pos = offset;
    p->start = START_KNOWN; /* a seek wins over a start still pending */
    p->stopped = false;
    p->retry_at = 0;
    p->gen++;
}

/* Resolve ts[i] (RN_OFFSET_EARLIEST, RN_OFFSET_LATEST or a time) of parts[i]
 * with ListOffsets, one request per leader, and move the partitions there. */
int rn__consumer_resolve(rn_consumer *c, cpart **parts, int64_t *ts, size_t n)
{
    rn__client *cl = &c->cl;
    int64_t deadline = rn__now_ms() + cl->conf->socket_timeout_ms;
    bool *ok = calloc(n ? n : 1, sizeof(*ok));
    bool *tried = calloc(n ? n : 1, sizeof(*tried));
    Runnel__ListOffsetsPartition *lps = calloc(n ? n : 1, sizeof(*lps));
    Runnel__ListOffsetsPartition **lpp = calloc(n ? n : 1, sizeof(*lpp));
    size_t *idx = calloc(n ? n : 1, sizeof(*idx));
    int rc = -ENOMEM;
    if (!ok || !tried || !lps || !lpp || !idx) {
        rn__fail(cl, rc, "out of memory");
        goto out;
    }
    for (;;) {
        int last_err = 0;
        bool again_now = false;
        memset(tried, 0, n * sizeof(*tried));
        for (size_t i = 0; i < n; i++) {
            if (ok[i] || tried[i])
                continue;
            rn__conn *conn;
            rc = rn__md_leader(cl, parts[i]->topic, parts[i]->partition, &conn);
            if (rc < 0) {
                last_err = rn__fail(cl, rc, "%s-%d: %s", parts[i]->topic, parts[i]->partition,
                                    rc == -RN_E_NOT_LEADER ? "no leader" : rn_strerror(rc));
                continue;
            }
            size_t m = 0;
            for (size_t j = i; j < n; j++) {
                rn__conn *qc;
                if (ok[j] || tried[j] ||
                    rn__md_leader(cl, parts[j]->topic, parts[j]->partition, &qc) < 0 || qc != conn)
                    continue;
                tried[j] = true;
                runnel__list_offsets_partition__init(&lps[m]);
                lps[m].topic = parts[j]->topic;
                lps[m].partition = parts[j]->partition;
                lps[m].timestamp = ts[j];
                lpp[m] = &lps[m];
                idx[m++] = j;
            }
            Runnel__ListOffsetsRequest req = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
            req.n_partitions = m;
            req.partitions = lpp;
            Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_LIST_OFFSETS;
            h.list_offsets = &req;
            rn__reply r;
            rc = rn__client_call(cl, conn, &h, NULL, 0, RUNNEL__API__LIST_OFFSETS,
                                 cl->conf->socket_timeout_ms, &r);
            if (rc == 0 && r.hdr->error_code) {
                rc = -(int)r.hdr->error_code;
                rn__fail(cl, rc, "list offsets: %s", rn_strerror(rc));
                rn__reply_fini(&r);
            }
            if (rc < 0) {
                last_err = rc;
                if (!rn__retriable(rc))
                    goto out;
                continue; /* this group is marked tried: on to the next leader */
            }
            Runnel__ListOffsetsResponse *lr = r.hdr->list_offsets;
            for (size_t k = 0; k < lr->n_partitions; k++) {
                Runnel__ListOffsetsPartitionResponse *pr = lr->partitions[k];
                for (size_t q = 0; q < m; q++) {
                    size_t j = idx[q];
                    if (ok[j] || parts[j]->partition != pr->partition ||
                        strcmp(parts[j]->topic, pr->topic) != 0)
                        continue;
                    if (pr->error_code) {
                        int e = -(int)pr->error_code;
                        last_err = rn__fail(cl, e, "list offsets of %s-%d: %s", parts[j]->topic,
                                            parts[j]->partition, rn_strerror(e));
                        if (!rn__retriable(e)) {
                            rn__reply_fini(&r);
                            rc = e;
                            goto out;
                        }
                    } else if (pr->offset < 0 && ts[j] >= 0) {
                        ts[j] = RN_OFFSET_LATEST; /* nothing that recent: the end */
                        again_now = true;
                    } else if (pr->offset >= 0) {
                        rn__consumer_set_position(c, parts[j], pr->offset);
                        if (ts[j] == RN_OFFSET_LATEST)
                            parts[j]->hw = pr->offset;
                        ok[j] = true;
                    }
                }
            }
            rn__reply_fini(&r);
        }
        bool all = true;
        for (size_t i = 0; i < n; i++)
            all = all && ok[i];
        if (all) {
            rc = 0;
            goto out;
        }
        if (again_now)
            continue;
        if (!last_err)
            last_err = rn__fail(cl, -RN_E_INVALID_REQUEST,
                                "list offsets: the broker's answer omits a partition");
        if (rn__now_ms() + cl->conf->retry_backoff_ms >= deadline) {
            rc = last_err;
            goto out;
        }
        /* Leader unknown or moved: fresh metadata, then ask again. */
        for (size_t i = 0; i < n; i++) {
            rn__md_topic *t = ok[i] ? NULL : rn__md_find(cl, parts[i]->topic);
            if (t)
                t->err = -RN_E_NOT_LEADER; /* makes rn__md_wait_topic refresh */
        }
        rn__client_poll(cl, cl->conf->retry_backoff_ms);
        for (size_t i = 0; i < n; i++) {
            rn__md_topic *t;
            if (!ok[i] &&
                (rc = rn__md_wait_topic(cl, parts[i]->topic, cl->conf->socket_timeout_ms, &t)) < 0)
                goto out;
        }
    }
out:
    free(ok);
    free(tried);
    free(lps);
    free(lpp);
    free(idx);
    return rc;
}
