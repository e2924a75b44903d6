/*
 * consumer.c — rn_consumer: assigned partitions, long-poll Fetch, prefetch,
 * verified batches decoded into rn_message arrays.
 *
 * Each assigned partition (cpart) has two offsets:
 *
 *   position   the next offset rn_consumer_poll returns to the application;
 *   fetch_pos  the next offset to ask the broker for: the end of the whole
 *              batches already buffered (>= position).
 *
 * and a buffer of fetched bytes (chunks: the partition's slice of each Fetch
 * answer, copied out of the receive buffer, whole batches only). Flow:
 *
 *   pump ──Fetch(fetch_pos) per leader──▶ broker (long-poll: fetch.min.bytes,
 *     ▲                                           fetch.max.wait.ms)
 *     │ prefetch: a partition is fetched          │ answer
 *     │ again as soon as less than                ▼
 *     │ max.partition.fetch.bytes is    chunks += whole batches, fetch_pos moves,
 *     │ buffered, so the next answer    high watermark noted
 *     │ is on its way while the                   │
 *     │ application works                         ▼
 *     └──────────────────────────── rn_consumer_poll: verify each batch
 *                                   (rn_batch_verify when check.crcs), skip
 *                                   records below position (a fetch starts at
 *                                   the batch holding fetch_pos) and control
 *                                   batches, decode with rn_batch_iter
 *
 * Invariants:
 *  1. Messages returned by a poll point into chunks and decompression buffers
 *     that are freed only at the start of the next poll (or close): consumed
 *     or dropped buffers go to to_free, never straight to free().
 *  2. A partition is in at most one Fetch at a time (fetching). An answer is
 *     applied only if the partition's generation (bumped by every seek) and
 *     fetch_pos are still those the request was built from.
 *  3. position only moves forward by records returned or batches skipped,
 *     or by a seek.
 *  4. OFFSET_OUT_OF_RANGE stops the partition (no automatic reset: that is
 *     the application's choice) and poll says so with the valid range, once;
 *     a seek starts it again.
 *
 * Offsets asked by name (beginning, end, a time) are resolved synchronously by
 * ListOffsets in assign/seek, so rn_consumer_position is exact right after.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/internal.h"
#include "protocol/batch.h"

typedef struct chunk {
    uint8_t *data;
    size_t len, off;
    struct chunk *next;
} chunk;

typedef struct cpart {
    char *topic;
    int32_t partition;
    int64_t position, fetch_pos;
    int64_t hw, log_start, leo;
    chunk *head, *tail;
    size_t buffered;
    bool fetching;
    bool stopped; /* OFFSET_OUT_OF_RANGE or a fatal error: until seek */
    bool corrupt; /* a chunk holds bytes that are not a batch: decode reports it */
    uint32_t gen;
    int64_t retry_at;
} cpart;

struct rn_consumer;

/* One Fetch in flight: its partitions and what they were when it was built. */
typedef struct freq {
    struct rn_consumer *c;
    size_t n;
    cpart **parts;
    uint32_t *gens;
    int64_t *offsets;
} freq;

struct rn_consumer {
    rn__client cl;
    cpart **parts;
    size_t n_parts;
    size_t rr; /* first partition the next decode looks at: fairness */
    rn_message *msgs;
    size_t n_msgs, cap_msgs;
    void **to_free; /* headers arrays and zstd buffers of the last poll */
    size_t n_free, cap_free;
    chunk *retired; /* consumed or dropped chunks of the last poll */
    int pending_err;
    char pending_msg[512];
    int64_t fail_since; /* first transport failure of the current streak, 0 none */
    bool need_md;
    int64_t md_retry_at;
};

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ---- Memory that messages may point into ------------------------------------------------ */

static int keep(rn_consumer *c, void *ptr)
{
    if (!ptr)
        return 0;
    if (c->n_free == c->cap_free) {
        size_t cap = c->cap_free ? c->cap_free * 2 : 64;
        void **v = realloc(c->to_free, cap * sizeof(*v));
        if (!v) {
            free(ptr); /* only reached when no message points into it yet */
            return -ENOMEM;
        }
        c->to_free = v;
        c->cap_free = cap;
    }
    c->to_free[c->n_free++] = ptr;
    return 0;
}

static void release_previous(rn_consumer *c)
{
    for (size_t i = 0; i < c->n_free; i++)
        free(c->to_free[i]);
    c->n_free = 0;
    c->n_msgs = 0;
    while (c->retired) {
        chunk *ch = c->retired;
        c->retired = ch->next;
        free(ch->data);
        free(ch);
    }
}

/* Drop a partition's head chunk; its bytes live until the next poll
 * (invariant 1). Needs no memory, so it cannot fail halfway through a poll. */
static void retire_head(rn_consumer *c, cpart *p)
{
    chunk *ch = p->head;
    p->head = ch->next;
    if (!p->head)
        p->tail = NULL;
    p->buffered -= ch->len;
    ch->next = c->retired;
    c->retired = ch;
}

static void drop_buffered(rn_consumer *c, cpart *p)
{
    while (p->head)
        retire_head(c, p);
    p->corrupt = false;
}

/* ---- Errors -------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void set_pending(rn_consumer *c, int err,
                                                              const char *fmt, ...)
{
    if (c->pending_err)
        return; /* the first error is the one to report */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->pending_msg, sizeof(c->pending_msg), fmt, ap);
    va_end(ap);
    c->pending_err = err;
}

static int take_pending(rn_consumer *c)
{
    int err = c->pending_err;
    c->pending_err = 0;
    return rn__fail(&c->cl, err, "%s", c->pending_msg);
}

/* A transport failure: retried quietly until it has lasted socket.timeout.ms. */
static void transport_failed(rn_consumer *c, int err, const char *msg)
{
    int64_t now = rn__now_ms();
    if (!c->fail_since)
        c->fail_since = now;
    if (now - c->fail_since >= c->cl.conf->socket_timeout_ms) {
        set_pending(c, err, "%s", msg);
        c->fail_since = 0;
    }
}

/* ---- Fetch ------------------------------------------------------------------------------ */

static cpart *find_part(rn_consumer *c, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->partition == partition && strcmp(c->parts[i]->topic, topic) == 0)
            return c->parts[i];
    return NULL;
}

/* Append the whole batches of one partition's answer; returns false on ENOMEM. */
static bool take_data(cpart *p, const uint8_t *data, size_t len)
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
    uint8_t *copy = malloc(whole);
    if (!ch || !copy) {
        free(ch);
        free(copy);
        return false;
    }
    memcpy(copy, data, whole);
    ch->data = copy;
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
            transport_failed(c, e, msg);
        else
            set_pending(c, e, "%s", msg);
        goto out;
    }
    c->fail_since = 0;
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
            if (e == -RN_E_OFFSET_OUT_OF_RANGE) {
                p->stopped = true;
                set_pending(c, e,
                            "%s-%d: offset %" PRId64 " is out of range: the log holds offsets "
                            "%" PRId64 " to %" PRId64 " (seek to a valid offset)",
                            p->topic, p->partition, p->fetch_pos, p->log_start, p->leo);
            } else if (rn__retriable(e)) {
                p->retry_at = now + conf->retry_backoff_ms;
                if (rn__needs_metadata(e))
                    c->need_md = true;
            } else {
                p->stopped = true;
                set_pending(c, e, "%s-%d: fetch failed: %s", p->topic, p->partition,
                            rn_strerror(e));
            }
            continue;
        }
        if (len && !take_data(p, data, len)) {
            p->retry_at = now + conf->retry_backoff_ms; /* out of memory: fetch it again later */
        }
    }
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
    return !p->fetching && !p->stopped && !p->corrupt && p->fetch_pos >= 0 && p->retry_at <= now &&
           p->buffered < (size_t)c->cl.conf->max_partition_fetch_bytes;
}

/* Send one Fetch per leader for every partition that wants more data. */
static void pump(rn_consumer *c)
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
static int64_t next_timer(const rn_consumer *c)
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
    return t;
}

/* ---- Decode ------------------------------------------------------------------------------- */

static rn_message *new_msg(rn_consumer *c)
{
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? c->cap_msgs * 2 : 256;
        rn_message *v = realloc(c->msgs, cap * sizeof(*v));
        if (!v)
            return NULL;
        c->msgs = v;
        c->cap_msgs = cap;
    }
    return &c->msgs[c->n_msgs++];
}

static int fill_msg(rn_consumer *c, cpart *p, const rn_record *rec)
{
    rn_header *hdrs = NULL;
    if (rec->n_headers > 0) {
        hdrs = calloc((size_t)rec->n_headers, sizeof(*hdrs));
        if (!hdrs || keep(c, hdrs) < 0)
            return -ENOMEM;
        const uint8_t *pos = rec->headers, *end = rec->headers + rec->headers_len;
        for (int32_t i = 0; i < rec->n_headers; i++) {
            rn_record_header h;
            int rc = rn_record_header_next(&pos, end, &h);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return -RN_E_BATCH_BAD_RECORD;
            hdrs[i].name = (const char *)h.name;
            hdrs[i].name_len = (size_t)h.name_len;
            hdrs[i].value = h.value_len < 0 ? NULL : h.value;
            hdrs[i].value_len = h.value_len < 0 ? 0 : (size_t)h.value_len;
        }
    }
    rn_message *m = new_msg(c);
    if (!m)
        return -ENOMEM;
    m->topic = p->topic;
    m->partition = p->partition;
    m->offset = rec->offset;
    m->timestamp = rec->timestamp;
    m->key = rec->key_len < 0 ? NULL : rec->key;
    m->key_len = rec->key_len < 0 ? 0 : (size_t)rec->key_len;
    m->value = rec->value_len < 0 ? NULL : rec->value;
    m->value_len = rec->value_len < 0 ? 0 : (size_t)rec->value_len;
    m->n_headers = (size_t)(rec->n_headers > 0 ? rec->n_headers : 0);
    m->headers = hdrs;
    return 0;
}

/* Decode the next batch of p's buffer into messages. Returns 1 when a batch
 * was used up, 0 when the buffer is empty, or a negative error: batch errors
 * with the partition's buffer dropped (it is fetched again from position). */
static int decode_batch(rn_consumer *c, cpart *p)
{
    const rn_conf *conf = c->cl.conf;
    while (p->head && p->head->off >= p->head->len)
        retire_head(c, p);
    if (!p->head)
        return 0;
    chunk *ch = p->head;
    const uint8_t *buf = ch->data + ch->off;
    size_t left = ch->len - ch->off;
    int64_t at = p->position;
    rn_batch_header h;
    int rc = rn_batch_peek(buf, left, 0, &h);
    if (rc == 0 && rn_batch_size(&h) > left)
        rc = -RN_E_BATCH_TRUNCATED;
    if (rc == 0 && conf->check_crcs)
        rc = rn_batch_verify(buf, rn_batch_size(&h), 0, 0);
    if (rc < 0)
        goto corrupt;
    at = h.base_offset;
    size_t size = rn_batch_size(&h);
    int64_t next = h.base_offset + h.last_offset_delta + 1;
    if ((h.attributes & RN_BATCH_ATTR_CONTROL) || next <= p->position) {
        ch->off += size;
        if (next > p->position)
            p->position = next;
        return 1;
    }
    rn_batch_iter it;
    rc = rn_batch_iter_init(&it, buf, size, 0);
    if (rc < 0)
        goto corrupt;
    /* Messages may point into the decompressed records: keep them to the next poll. */
    if (it.owned) {
        if (keep(c, it.owned) < 0) {
            it.owned = NULL;
            return -ENOMEM;
        }
        it.owned = NULL;
        /* it.pos/end still point into that buffer, now owned by to_free. */
    }
    rn_record rec;
    size_t first = c->n_msgs;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
        if (rec.offset < p->position)
            continue; /* the fetch started at the batch holding position */
        rc = fill_msg(c, p, &rec);
        if (rc < 0)
            break;
    }
    rn_batch_iter_fini(&it);
    if (rc == -ENOMEM) {
        c->n_msgs = first; /* retry this batch on the next poll */
        return rc;
    }
    if (rc < 0) {
        c->n_msgs = first;
        goto corrupt;
    }
    ch->off += size;
    if (c->n_msgs > first)
        p->position = c->msgs[c->n_msgs - 1].offset + 1;
    if (next > p->position)
        p->position = next;
    return 1;

corrupt:
    set_pending(c, -RN_E_CORRUPT_BATCH, "%s-%d: batch at offset %" PRId64 " is corrupt: %s (%s)",
                p->topic, p->partition, at, rn_strerror(rc), rn_errname(rc));
    drop_buffered(c, p);
    p->fetch_pos = p->position;
    return -RN_E_CORRUPT_BATCH;
}

/* Fill c->msgs from the buffers, up to max.poll.records (whole batches). */
static int decode(rn_consumer *c)
{
    size_t max = (size_t)c->cl.conf->max_poll_records;
    for (size_t k = 0; k < c->n_parts && c->n_msgs < max; k++) {
        cpart *p = c->parts[(c->rr + k) % c->n_parts];
        while (c->n_msgs < max) {
            int rc = decode_batch(c, p);
            if (rc == -ENOMEM && c->n_msgs == 0)
                return rn__fail(&c->cl, rc, "out of memory decoding %s-%d", p->topic, p->partition);
            if (rc <= 0)
                break; /* a batch error is pending: messages so far still go out */
        }
    }
    if (c->n_parts)
        c->rr = (c->rr + 1) % c->n_parts;
    return (int)c->n_msgs;
}

/* ---- Offsets by name ---------------------------------------------------------------------- */

static void set_position(rn_consumer *c, cpart *p, int64_t offset)
{
    drop_buffered(c, p);
    p->position = p->fetch_pos = offset;
    p->stopped = false;
    p->retry_at = 0;
    p->gen++;
}

/* Resolve ts[i] (RN_OFFSET_EARLIEST, RN_OFFSET_LATEST or a time) of parts[i]
 * with ListOffsets, one request per leader, and move the partitions there. */
static int resolve(rn_consumer *c, cpart **parts, int64_t *ts, size_t n)
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
                        set_position(c, parts[j], pr->offset);
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

/* ---- Public API ----------------------------------------------------------------------------- */

int rn_consumer_new(rn_consumer **out, const rn_conf *conf)
{
    *out = NULL;
    rn_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = rn__client_init(&c->cl, conf);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

const char *rn_consumer_errmsg(const rn_consumer *c)
{
    return c->cl.errmsg;
}

static cpart *new_part(rn_consumer *c, const char *topic, int32_t partition)
{
    cpart **v = realloc(c->parts, (c->n_parts + 1) * sizeof(*v));
    if (!v)
        return NULL;
    c->parts = v;
    cpart *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->position = p->fetch_pos = -1;
    p->hw = p->log_start = p->leo = -1;
    c->parts[c->n_parts++] = p;
    return p;
}

static void free_part(cpart *p)
{
    for (chunk *ch = p->head, *next; ch; ch = next) {
        next = ch->next;
        free(ch->data);
        free(ch);
    }
    free(p->topic);
    free(p);
}

/* Assign partitions [first, first + n) of topic from offset. */
static int assign_range(rn_consumer *c, const char *topic, int32_t first, int32_t n, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (offset < RN_START_BEGINNING)
        return rn__fail(cl, -EINVAL, "assign %s: bad start offset %" PRId64, topic, offset);
    for (int32_t i = first; i < first + n; i++)
        if (find_part(c, topic, i))
            return rn__fail(cl, -EEXIST, "%s-%d is already assigned", topic, i);
    size_t base = c->n_parts;
    for (int32_t i = first; i < first + n; i++) {
        cpart *p = new_part(c, topic, i);
        if (!p)
            goto nomem;
        if (offset >= 0)
            p->position = p->fetch_pos = offset;
    }
    if (offset >= 0 || n == 0)
        return 0;
    int64_t *ts = calloc((size_t)n, sizeof(*ts));
    if (!ts)
        goto nomem;
    for (int32_t i = 0; i < n; i++)
        ts[i] = offset == RN_START_BEGINNING ? RN_OFFSET_EARLIEST : RN_OFFSET_LATEST;
    int rc = resolve(c, c->parts + base, ts, (size_t)n);
    free(ts);
    if (rc < 0) {
        while (c->n_parts > base)
            free_part(c->parts[--c->n_parts]);
        return rc;
    }
    return 0;
nomem:
    while (c->n_parts > base)
        free_part(c->parts[--c->n_parts]);
    return rn__fail(cl, -ENOMEM, "out of memory");
}

int rn_consumer_assign(rn_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (!topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "assign: no topic");
    if (find_part(c, topic, partition))
        return rn__fail(cl, -EEXIST, "%s-%d is already assigned", topic, partition);
    rn__md_topic *t;
    int rc = rn__md_wait_topic(cl, topic, cl->conf->socket_timeout_ms, &t);
    if (rc < 0)
        return rc;
    if (partition < 0 || partition >= t->n_parts)
        return rn__fail(cl, -RN_E_UNKNOWN_TOPIC, "topic %s has %d partition%s, no partition %d",
                        topic, t->n_parts, t->n_parts == 1 ? "" : "s", partition);
    return assign_range(c, topic, partition, 1, offset);
}

int rn_consumer_assign_topic(rn_consumer *c, const char *topic, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (!topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "assign: no topic");
    rn__md_topic *t;
    int rc = rn__md_wait_topic(cl, topic, cl->conf->socket_timeout_ms, &t);
    if (rc < 0)
        return rc;
    return assign_range(c, topic, 0, t->n_parts, offset);
}

int rn_consumer_seek(rn_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    cpart *p = find_part(c, topic, partition);
    if (!p)
        return rn__fail(&c->cl, -RN_E_UNKNOWN_TOPIC, "seek: %s-%d is not assigned", topic,
                        partition);
    if (offset < RN_START_BEGINNING)
        return rn__fail(&c->cl, -EINVAL, "seek %s-%d: bad offset %" PRId64, topic, partition,
                        offset);
    if (offset >= 0) {
        set_position(c, p, offset);
        return 0;
    }
    int64_t ts = offset == RN_START_BEGINNING ? RN_OFFSET_EARLIEST : RN_OFFSET_LATEST;
    return resolve(c, &p, &ts, 1);
}

int rn_consumer_seek_time(rn_consumer *c, const char *topic, int32_t partition, int64_t ts_ms)
{
    cpart *p = find_part(c, topic, partition);
    if (!p)
        return rn__fail(&c->cl, -RN_E_UNKNOWN_TOPIC, "seek: %s-%d is not assigned", topic,
                        partition);
    if (ts_ms < 0)
        return rn__fail(&c->cl, -EINVAL, "seek %s-%d: bad time %" PRId64, topic, partition, ts_ms);
    return resolve(c, &p, &ts_ms, 1);
}

int64_t rn_consumer_position(const rn_consumer *c, const char *topic, int32_t partition)
{
    cpart *p = find_part((rn_consumer *)c, topic, partition);
    return p ? p->position : -1;
}

int64_t rn_consumer_high_watermark(const rn_consumer *c, const char *topic, int32_t partition)
{
    cpart *p = find_part((rn_consumer *)c, topic, partition);
    return p ? p->hw : -1;
}

int rn_consumer_at_end(const rn_consumer *c)
{
    if (c->n_parts == 0)
        return 0;
    for (size_t i = 0; i < c->n_parts; i++) {
        const cpart *p = c->parts[i];
        if (p->hw < 0 || p->position < p->hw)
            return 0;
    }
    return 1;
}

int rn_consumer_poll(rn_consumer *c, int timeout_ms, const rn_message **msgs)
{
    *msgs = NULL;
    release_previous(c);
    if (c->pending_err)
        return take_pending(c);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : rn__now_ms() + timeout_ms;
    for (bool polled = false;;) {
        pump(c);
        int n = decode(c);
        if (n != 0) {
            pump(c); /* prefetch: what was consumed frees room for the next answer */
            *msgs = n > 0 ? c->msgs : NULL;
            return n;
        }
        if (c->pending_err)
            return take_pending(c);
        int64_t now = rn__now_ms();
        if (polled && now >= deadline)
            return 0;
        int64_t wake = min64(deadline, next_timer(c));
        int64_t wait = wake <= now ? 0 : wake - now;
        if (wait > INT32_MAX)
            wait = INT32_MAX;
        int rc = rn__client_poll(&c->cl, (int)wait);
        if (rc < 0)
            return rn__fail(&c->cl, rc, "poll: %s", rn_strerror(rc));
        polled = true;
    }
}

void rn_consumer_close(rn_consumer *c)
{
    if (!c)
        return;
    rn__client_fini(&c->cl); /* fails fetches in flight: their callbacks touch parts */
    release_previous(c);
    for (size_t i = 0; i < c->n_parts; i++)
        free_part(c->parts[i]);
    free(c->parts);
    free(c->msgs);
    free(c->to_free);
    free(c);
}
