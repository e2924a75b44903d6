/*
 * consumer.c — rn_consumer: assigned partitions, long-poll Fetch, prefetch,
 * verified batches decoded into rn_message arrays; consumer group membership.
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
 * Invariants:
 *  1. Messages returned by a poll point into chunks and decompression buffers
 *     that are freed only at the start of the next poll (or close): consumed
 *     or dropped buffers go to to_free, never straight to free().
 *  2. A partition is in at most one Fetch at a time (fetching). An answer is
 *     applied only if the partition's generation (bumped by every seek) and
 *     fetch_pos are still those the request was built from.
 *  3. position only moves forward by records returned or batches skipped,
 *     or by a seek.
 *  4. OFFSET_OUT_OF_RANGE stops a partition assigned by hand (no automatic
 *     reset: that is the application's choice) and poll says so with the
 *     valid range, once; a seek starts it again. A partition the group gave
 *     applies auto.offset.reset instead, as Kafka's consumer does.
 *  5. A partition taken away (revoked, lost, unsubscribed) leaves parts at
 *     once but is freed only when no message of the last poll and no Fetch
 *     in flight can point at it (the dead list, emptied by the next poll).
 *  6. A poll returns at most max.poll.records messages; a batch cut short
 *     stays at its partition's head with its iterator (cpart.it), and the
 *     next poll goes on from it: a batch is verified and walked once, not
 *     once per poll (a 256 KiB batch of 100-byte records is ~2400 records,
 *     five polls at the default 500). Anything that moves the head or the
 *     position ends the iterator; then the batch is decoded again from its
 *     start, skipping what lies below position.
 *
 * Offsets asked by name (beginning, end, a time) are resolved synchronously by
 * ListOffsets in assign/seek, so rn_consumer_position is exact right after.
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
 * coordinator is the broker that leads __offsets: a single node today, so
 * group requests go to any connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/internal.h"
#include "protocol/batch.h"

#define SPARE_MAX (4u << 20)

/* A Fetch answer's frame, taken from the decoder: the chunks cut from it
 * share it; the last one released frees it. */
typedef struct fblob {
    uint8_t *mem;
    size_t refs;
    rn_consumer *c;
    rn__conn *conn; /* mem is conn's big-frame buffer (cap bytes): handed back to it */
    size_t cap;
} fblob;

typedef struct chunk {
    uint8_t *data; /* into blob->mem, or an allocation of its own when blob is NULL */
    size_t len, off;
    size_t cap; /* size of data's allocation when it is its own */
    fblob *blob;
    struct chunk *next;
} chunk;

typedef struct cpart {
    char *topic;
    int32_t partition;
    int64_t position, fetch_pos;
    int64_t hw, log_start, leo;
    chunk *head, *tail;
    size_t buffered; /* bytes of the chunks not decoded yet: the sum of len - off */
    bool fetching;
    bool stopped; /* OFFSET_OUT_OF_RANGE or a fatal error: until seek */
    bool corrupt; /* a chunk holds bytes that are not a batch: decode reports it */
    uint32_t gen;
    int64_t retry_at;
    /* Groups: where a partition the coordinator gave starts (START_*); 0 once
     * its position is known. Not fetched before. */
    int start;
    int64_t committed; /* the group's offset as this consumer last committed or read it; -1 */
    /* The head batch when a poll stopped inside it (max.poll.records): its
     * iterator, past the records returned, so the next poll goes on from
     * there instead of verifying and walking the batch again from its start
     * (invariant 6). Good while it_gen and it_pos are the partition's gen and
     * position; retire_head ends it. it.owned (a zstd batch's records, which
     * messages point into) is held here until the batch is used up. */
    bool it_live;
    rn_batch_iter it;
    uint32_t it_gen;
    int64_t it_pos;
    bool dead; /* removed from parts, waiting on the dead list (invariant 5) */
    struct cpart *dead_next;
} cpart;

enum { START_KNOWN = 0, START_COMMITTED = 1, START_RESET = 2 };

/* A (topic, partition) the coordinator gave, as its last answer listed it. */
typedef struct gtp {
    char *topic;
    int32_t partition;
} gtp;

/* Membership of group.id (rn_consumer_subscribe). */
typedef struct cgroup {
    bool on; /* subscribed */
    char **topics;
    size_t n_topics;
    char *member_id;  /* NULL until the coordinator names us */
    int32_t epoch;    /* 0: (re)join, owning nothing */
    uint32_t hb_gen;  /* bumped by unsubscribe: answers of older heartbeats are dropped */
    bool hb_inflight; /* at most one heartbeat at a time */
    int64_t hb_next;
    int64_t last_ok;  /* when the last good answer came, 0 none yet */
    bool fenced;      /* UNKNOWN_MEMBER or FENCED_MEMBER_EPOCH: give up everything, join again */
    bool have_answer; /* target holds an answer reconcile has not applied yet */
    gtp *target;
    size_t n_target;
    bool commit_inflight; /* an auto-commit is on its way */
    int64_t commit_next;
    rn_rebalance_cb cb;
    void *cb_arg;
} cgroup;

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
    /* Iterators holding a zstd buffer (saved in a cpart, or the one decode_batch
     * is running): to_free keeps a slot for each, so ending one never needs
     * memory (n_free + n_it_owned <= cap_free). */
    size_t n_it_owned;
    chunk *retired; /* consumed or dropped chunks of the last poll */
    /* Allocations of freed chunks, kept for the next copies (largest first). */
    uint8_t *spare[4];
    size_t spare_cap[4];
    size_t n_spare;
    int pending_err;
    char pending_msg[512];
    int64_t fail_since; /* first transport failure of the current streak, 0 none */
    bool need_md;
    int64_t md_retry_at;
    cpart *dead;  /* removed partitions (invariant 5) */
    bool closing; /* rn_consumer_close has begun: connections are going away */
    cgroup grp;
    const char **asg_topics; /* rn_consumer_assignment's arrays */
    int32_t *asg_parts;
    size_t asg_cap;
};

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void free_part(rn_consumer *c, cpart *p);

static void group_timer(const rn_consumer *c, int64_t now, int64_t *t);

/* ---- Memory that messages may point into ------------------------------------------------ */

static void blob_release(fblob *b)
{
    if (b && --b->refs == 0) {
        /* Connections outlive every chunk until close (internal.h). */
        if (b->conn && !b->c->closing)
            rn__conn_recycle(b->conn, b->mem, b->cap);
        else
            free(b->mem);
        free(b);
    }
}

static void chunk_free(chunk *ch)
{
    if (ch->blob)
        blob_release(ch->blob);
    else
        free(ch->data);
    free(ch);
}

/* Free ch, keeping its allocation for a later chunk when it is among the
 * largest seen and not above SPARE_MAX (so a consumer holds at most
 * 4 * SPARE_MAX bytes it does not use). */
static void chunk_recycle(rn_consumer *c, chunk *ch)
{
    if (!ch->blob && ch->data && ch->cap <= SPARE_MAX) {
        size_t n = c->n_spare, i = n;
        if (n == 4 && c->spare_cap[3] < ch->cap) {
            free(c->spare[3]);
            n = c->n_spare = 3;
        }
        if (n < 4) {
            for (i = n; i > 0 && c->spare_cap[i - 1] < ch->cap; i--) {
                c->spare[i] = c->spare[i - 1];
                c->spare_cap[i] = c->spare_cap[i - 1];
            }
            c->spare[i] = ch->data;
            c->spare_cap[i] = ch->cap;
            c->n_spare++;
            ch->data = NULL;
        }
    }
    chunk_free(ch);
}

/* A buffer of at least len bytes: the smallest spare that fits, else a new one. */
static uint8_t *chunk_alloc(rn_consumer *c, size_t len, size_t *cap)
{
    for (size_t i = c->n_spare; i > 0; i--) {
        if (c->spare_cap[i - 1] < len)
            continue;
        uint8_t *b = c->spare[i - 1];
        *cap = c->spare_cap[i - 1];
        for (size_t j = i; j < c->n_spare; j++) {
            c->spare[j - 1] = c->spare[j];
            c->spare_cap[j - 1] = c->spare_cap[j];
        }
        c->n_spare--;
        return b;
    }
    *cap = len;
    return malloc(len);
}

/* Room in to_free for one more entry besides the slots saved iterators hold. */
static int keep_room(rn_consumer *c)
{
    if (c->n_free + c->n_it_owned < c->cap_free)
        return 0;
    size_t cap = c->cap_free ? c->cap_free * 2 : 64;
    void **v = realloc(c->to_free, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    c->to_free = v;
    c->cap_free = cap;
    return 0;
}

static int keep(rn_consumer *c, void *ptr)
{
    if (!ptr)
        return 0;
    if (keep_room(c) < 0) {
        free(ptr); /* only reached when no message points into it yet */
        return -ENOMEM;
    }
    c->to_free[c->n_free++] = ptr;
    return 0;
}

/* End p's saved iterator. Its zstd buffer, which messages of the last poll
 * may point into, goes to to_free in the slot kept for it. */
static void it_end(rn_consumer *c, cpart *p)
{
    if (!p->it_live)
        return;
    if (p->it.owned) {
        c->to_free[c->n_free++] = p->it.owned;
        c->n_it_owned--;
        p->it.owned = NULL;
    }
    rn_batch_iter_fini(&p->it);
    p->it_live = false;
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
        chunk_recycle(c, ch);
    }
    /* Removed partitions: no message points at them any more; those with a
     * Fetch in flight wait for its answer (invariant 5). */
    for (cpart **pp = &c->dead; *pp;) {
        cpart *p = *pp;
        if (p->fetching) {
            pp = &p->dead_next;
            continue;
        }
        *pp = p->dead_next;
        free_part(c, p);
    }
}

/* Drop a partition's head chunk; its bytes live until the next poll
 * (invariant 1). Needs no memory, so it cannot fail halfway through a poll. */
static void retire_head(rn_consumer *c, cpart *p)
{
    it_end(c, p);
    chunk *ch = p->head;
    p->head = ch->next;
    if (!p->head)
        p->tail = NULL;
    p->buffered -= ch->len - ch->off;
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
    uint8_t *copy = blob || !ch ? NULL : chunk_alloc(c, whole, &cap);
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
            transport_failed(c, e, msg);
        else
            set_pending(c, e, "%s", msg);
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
            if (e == -RN_E_OFFSET_OUT_OF_RANGE && c->grp.on) {
                /* A group member applies auto.offset.reset, as Kafka's does. */
                p->start = START_RESET;
                p->retry_at = 0;
            } else if (e == -RN_E_OFFSET_OUT_OF_RANGE) {
                p->stopped = true;
                /* leo is the next offset to be written: the last one held is leo - 1. */
                if (p->leo <= p->log_start)
                    set_pending(c, e,
                                "%s-%d: offset %" PRId64 " is out of range: the log is empty, "
                                "its next offset is %" PRId64 " (seek to a valid offset)",
                                p->topic, p->partition, p->fetch_pos, p->leo);
                else
                    set_pending(c, e,
                                "%s-%d: offset %" PRId64 " is out of range: the log holds "
                                "offsets %" PRId64 " to %" PRId64 " (seek to a valid offset)",
                                p->topic, p->partition, p->fetch_pos, p->log_start, p->leo - 1);
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
        if (len && !take_data(c, p, blob, data, len)) {
            p->retry_at = now + conf->retry_backoff_ms; /* out of memory: fetch it again later */
        }
    }
    blob_release(blob);
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
    group_timer(c, now, &t);
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
 * with the partition's buffer dropped (it is fetched again from position).
 * A batch is verified and walked once: when max.poll.records stops a poll
 * inside it, its iterator is kept (cpart.it) for the next poll. */
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
    rn_batch_iter it;
    int rc;
    bool resumed = p->it_live && p->it_gen == p->gen && p->it_pos == p->position;
    if (resumed) {
        it = p->it;
        h = it.h;
        p->it_live = false;
        p->it.owned = NULL; /* it has it now, and its slot in to_free */
    } else {
        it_end(c, p);
        rc = rn_batch_peek(buf, left, 0, &h);
        if (rc == 0 && rn_batch_size(&h) > left)
            rc = -RN_E_BATCH_TRUNCATED;
        /* check.crcs: every record of a batch is checked before any of it is
         * returned. A batch decoded whole in this poll is checked by the walk
         * below (rn_batch_iter_init checks the CRC; an error drops its
         * messages); one that may be cut, or is skipped, by rn_batch_verify. */
        bool whole =
            rc == 0 && !(h.attributes & RN_BATCH_ATTR_CONTROL) &&
            h.base_offset + h.last_offset_delta + 1 > p->position &&
            (int64_t)h.records_count < (int64_t)conf->max_poll_records - (int64_t)c->n_msgs;
        if (rc == 0 && conf->check_crcs && !whole)
            rc = rn_batch_verify(buf, rn_batch_size(&h), 0, 0);
        if (rc < 0)
            goto corrupt;
    }
    at = h.base_offset;
    size_t size = rn_batch_size(&h);
    int64_t next = h.base_offset + h.last_offset_delta + 1;
    if (!resumed) {
        if ((h.attributes & RN_BATCH_ATTR_CONTROL) || next <= p->position) {
            ch->off += size;
            p->buffered -= size;
            if (next > p->position)
                p->position = next;
            return 1;
        }
        rc = rn_batch_iter_init(&it, buf, size, 0);
        if (rc < 0)
            goto corrupt;
        /* Messages may point into the decompressed records: a slot in
         * to_free for them, taken before any message does. */
        if (it.owned) {
            if (keep_room(c) < 0) {
                rn_batch_iter_fini(&it);
                return -ENOMEM;
            }
            c->n_it_owned++;
        }
    }
    rn_record rec;
    size_t first = c->n_msgs;
    bool full = false;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
        if (rec.offset < p->position)
            continue; /* the fetch started at the batch holding position */
        rc = fill_msg(c, p, &rec);
        if (rc < 0)
            break;
        if (c->n_msgs >= (size_t)conf->max_poll_records) {
            full = true;
            break;
        }
    }
    if (rc < 0 || !full) {
        /* Done with the records, which messages (of this poll or, resumed, of
         * the last) may point into: freed by the next poll. */
        if (it.owned) {
            c->n_it_owned--;
            c->to_free[c->n_free++] = it.owned;
            it.owned = NULL;
        }
        rn_batch_iter_fini(&it);
    }
    if (rc == -ENOMEM) {
        c->n_msgs = first; /* retry this batch, from its start, on the next poll */
        return rc;
    }
    if (rc < 0) {
        c->n_msgs = first;
        goto corrupt;
    }
    if (c->n_msgs > first)
        p->position = c->msgs[c->n_msgs - 1].offset + 1;
    if (full) {
        /* The batch stays at the head; the next poll resumes it at position. */
        p->it = it;
        p->it_live = true;
        p->it_gen = p->gen;
        p->it_pos = p->position;
        return 1;
    }
    ch->off += size;
    p->buffered -= size;
    if (next > p->position)
        p->position = next;
    return 1;

corrupt:
    /* A batch whose header reads is one the broker stored (an older runneld
     * took records it did not walk, or the disk rotted): fetching it again
     * gives the same bytes, so stop at it for ever would be the only other
     * choice. Report it and step over it, as librdkafka does; none of its
     * records is returned (invariant 3: position moves by a batch skipped). */
    if (rn_batch_peek(buf, left, 0, &h) == 0 && rn_batch_size(&h) <= left) {
        size_t bsize = rn_batch_size(&h);
        int64_t after = h.base_offset + h.last_offset_delta + 1;
        set_pending(c, -RN_E_CORRUPT_BATCH,
                    "%s-%d: skipped the corrupt batch at offsets %" PRId64 "..%" PRId64 " (%" PRId32
                    " records): %s (%s)",
                    p->topic, p->partition, h.base_offset, after - 1, h.records_count,
                    rn_strerror(rc), rn_errname(rc));
        ch->off += bsize;
        p->buffered -= bsize;
        if (after > p->position)
            p->position = after;
        return -RN_E_CORRUPT_BATCH;
    }
    /* Not even the header reads: fetched again from position. */
    set_pending(c, rc, "%s-%d: bytes at offset %" PRId64 " are not a batch: %s (%s)", p->topic,
                p->partition, at, rn_strerror(rc), rn_errname(rc));
    drop_buffered(c, p);
    p->fetch_pos = p->position;
    return -RN_E_CORRUPT_BATCH;
}

/* Fill c->msgs from the buffers, up to max.poll.records. A batch cut short
 * stays at its partition's head and the next poll resumes it (invariant 6):
 * poll's bound is exact,
 * so a slow application that takes few records at a time still polls, and
 * heartbeats, often. */
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
    p->start = START_KNOWN; /* a seek wins over a start still pending */
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

/* ---- Consumer groups ---------------------------------------------------------------------- */

static cpart *new_part(rn_consumer *c, const char *topic, int32_t partition);

static void gtp_free(gtp *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].topic);
    free(v);
}

/* Take partition i out of parts; it lives on the dead list until no message
 * or Fetch can point at it (invariant 5). */
static void remove_part(rn_consumer *c, size_t i)
{
    cpart *p = c->parts[i];
    memmove(&c->parts[i], &c->parts[i + 1], (c->n_parts - i - 1) * sizeof(*c->parts));
    c->n_parts--;
    drop_buffered(c, p);
    p->gen++; /* an answer still on its way is dropped (invariant 2) */
    p->dead = true;
    p->dead_next = c->dead;
    c->dead = p;
}

static int cmp_part(const void *x, const void *y)
{
    const cpart *a = *(const cpart *const *)x, *b = *(const cpart *const *)y;
    int r = strcmp(a->topic, b->topic);
    return r ? r : (a->partition > b->partition) - (a->partition < b->partition);
}

/* A request to the coordinator, synchronous, with the header's error turned
 * into a negative code and errmsg. The coordinator of every group is the
 * broker that leads __offsets, today the single node: any connection does. */
static int coord_call(rn_consumer *c, Runnel__RequestHeader *h, int api, int timeout_ms,
                      const char *what, rn__reply *r)
{
    rn__client *cl = &c->cl;
    int rc = rn__client_call_any(cl, h, api, timeout_ms, r);
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
    req->member_id = g->on && g->member_id ? g->member_id : (char *)"";
    req->member_epoch = g->on ? g->epoch : 0;
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
    if (x->gen == g->hb_gen)
        g->commit_inflight = false;
    if (!err && resp->hdr->error_code)
        err = -(int)resp->hdr->error_code;
    if (err) {
        /* Not fatal: the next interval commits again, and a fenced member
         * hears it from its heartbeat too. */
        rn__fail(&c->cl, err, "group %s: auto-commit: %s", c->cl.conf->group_id, rn_strerror(err));
        if (x->gen == g->hb_gen)
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
        cpart *p = refused ? NULL : find_part(c, x->topics[i], x->partitions[i]);
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
    x->gen = g->hb_gen;
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
    rn__conn *conn = rn__client_conn_any(&c->cl);
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
            set_position(c, v[i], off[i]);
            v[i]->committed = off[i];
        } else {
            v[i]->start = START_RESET;
        }
    }
    if (rc < 0 && !rn__retriable(rc))
        set_pending(c, rc, "%s", c->cl.errmsg);
    m = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->start == START_RESET && c->parts[i]->retry_at <= now) {
            v[m] = c->parts[i];
            off[m++] =
                conf->auto_offset_reset == RN__RESET_LATEST ? RN_OFFSET_LATEST : RN_OFFSET_EARLIEST;
        }
    rc = m ? resolve(c, v, off, m) : 0;
    if (rc < 0) {
        for (size_t i = 0; i < m; i++)
            if (v[i]->start != START_KNOWN)
                v[i]->retry_at = now + conf->retry_backoff_ms;
        if (!rn__retriable(rc))
            set_pending(c, rc, "%s", c->cl.errmsg);
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
    bool stale = x->gen != g->hb_gen;
    free(x);
    if (stale)
        return; /* sent before an unsubscribe: that membership is over */
    g->hb_inflight = false;
    const rn_conf *conf = c->cl.conf;
    int64_t now = rn__now_ms();
    const char *m = "";
    if (!err && resp->hdr->error_code) {
        err = -(int)resp->hdr->error_code;
        m = resp->hdr->error_message ? resp->hdr->error_message : "";
    }
    if (err == -RN_E_UNKNOWN_MEMBER || err == -RN_E_FENCED_MEMBER_EPOCH) {
        /* The coordinator dropped us (session timeout, restart): whatever we
         * hold may be someone else's already. */
        g->fenced = true;
        g->hb_next = now;
        return;
    }
    if (err) {
        g->hb_next = now + conf->retry_backoff_ms;
        if (!resp || rn__retriable(err)) {
            /* Quietly again: the session timeout decides when it is too long. */
            if (rn__needs_metadata(err))
                c->need_md = true;
            return;
        }
        set_pending(c, err, "group %s: heartbeat: %s%s%s", conf->group_id, rn_strerror(err),
                    *m ? ": " : "", m);
        return;
    }
    const Runnel__GroupHeartbeatResponse *hr = resp->hdr->group_heartbeat;
    size_t n = 0;
    for (size_t i = 0; i < hr->n_assignment; i++)
        n += hr->assignment[i]->n_partitions;
    gtp *t = calloc(n ? n : 1, sizeof(*t));
    char *mid = hr->member_id && *hr->member_id ? strdup(hr->member_id) : NULL;
    size_t k = 0;
    for (size_t i = 0; t && i < hr->n_assignment; i++)
        for (size_t j = 0; j < hr->assignment[i]->n_partitions; j++, k++) {
            t[k].partition = hr->assignment[i]->partitions[j];
            if (!(t[k].topic = strdup(hr->assignment[i]->topic))) {
                gtp_free(t, k);
                t = NULL;
                break;
            }
        }
    if (!t || (hr->member_id && *hr->member_id && !mid)) {
        /* Out of memory: ask again soon; the answer will be the same. */
        free(mid);
        gtp_free(t, t ? n : 0);
        g->hb_next = now + conf->retry_backoff_ms;
        return;
    }
    if (mid) {
        free(g->member_id);
        g->member_id = mid;
    }
    g->epoch = hr->member_epoch;
    gtp_free(g->target, g->n_target);
    g->target = t;
    g->n_target = n;
    g->have_answer = true;
    g->last_ok = now;
    /* The coordinator's interval is short while partitions move; ours bounds
     * it when it is long. */
    int64_t interval = conf->heartbeat_interval_ms;
    if (hr->heartbeat_interval_ms > 0 && hr->heartbeat_interval_ms < interval)
        interval = hr->heartbeat_interval_ms;
    g->hb_next = now + interval;
}

static void send_heartbeat(rn_consumer *c, int64_t now)
{
    cgroup *g = &c->grp;
    const rn_conf *conf = c->cl.conf;
    size_t n = c->n_parts;
    cpart **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    Runnel__TopicPartitions *tps = calloc(n ? n : 1, sizeof(*tps));
    Runnel__TopicPartitions **tpp = calloc(n ? n : 1, sizeof(*tpp));
    int32_t *pv = calloc(n ? n : 1, sizeof(*pv));
    hb_ctx *x = malloc(sizeof(*x));
    g->hb_next = now + conf->retry_backoff_ms; /* unless it is sent */
    if (!sorted || !tps || !tpp || !pv || !x)
        goto out;
    /* What we own, one TopicPartitions per topic. */
    if (n)
        memcpy(sorted, c->parts, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_part);
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(sorted[i]->topic, sorted[i - 1]->topic) != 0) {
            runnel__topic_partitions__init(&tps[nt]);
            tps[nt].topic = sorted[i]->topic;
            tps[nt].partitions = &pv[i];
            tpp[nt] = &tps[nt];
            nt++;
        }
        pv[i] = sorted[i]->partition;
        tps[nt - 1].n_partitions++;
    }
    Runnel__GroupHeartbeatRequest req = RUNNEL__GROUP_HEARTBEAT_REQUEST__INIT;
    req.group_id = conf->group_id;
    req.member_id = g->member_id ? g->member_id : (char *)"";
    req.member_epoch = g->epoch;
    req.client_id = conf->client_id;
    req.n_subscribed_topics = g->n_topics;
    req.subscribed_topics = g->topics;
    req.assignor = conf->assignor == RN__ASSIGNOR_RANGE ? (char *)"range" : (char *)"sticky";
    req.n_owned = nt;
    req.owned = tpp;
    req.session_timeout_ms = (uint32_t)conf->session_timeout_ms;
    Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
    h.body_case = RUNNEL__REQUEST_HEADER__BODY_GROUP_HEARTBEAT;
    h.group_heartbeat = &req;
    x->c = c;
    x->gen = g->hb_gen;
    /* An answer later than the session is worthless: we are out by then. */
    int timeout = min64(conf->socket_timeout_ms, conf->session_timeout_ms);
    rn__conn *conn = rn__client_conn_any(&c->cl);
    if (conn && rn__conn_send(conn, &h, NULL, 0, RUNNEL__API__GROUP_HEARTBEAT, timeout, false,
                              hb_cb, x) == 0) {
        x = NULL;
        g->hb_inflight = true;
    }
out:
    free(sorted);
    free(tps);
    free(tpp);
    free(pv);
    free(x);
}

/* ---- Reconciling ---- */

static bool in_target(const gtp *t, size_t n, const cpart *p)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].partition == p->partition && strcmp(t[i].topic, p->topic) == 0)
            return true;
    return false;
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
    g->epoch = 0;
    gtp_free(g->target, g->n_target);
    g->target = NULL;
    g->n_target = 0;
    g->have_answer = false;
}

/* Apply the coordinator's last answer: revoke what it no longer lists
 * (callback, commit, drop; the next heartbeat says we no longer own them),
 * then take what it newly lists (start positions, callback). */
static void reconcile(rn_consumer *c)
{
    cgroup *g = &c->grp;
    const rn_conf *conf = c->cl.conf;
    /* Take the answer: a heartbeat answered during a commit below brings
     * the next one, applied by the next pump. */
    gtp *t = g->target;
    size_t nt = g->n_target;
    g->target = NULL;
    g->n_target = 0;
    g->have_answer = false;

    size_t n_rev = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        n_rev += !in_target(t, nt, c->parts[i]);
    if (n_rev) {
        cpart **rev = malloc(n_rev * sizeof(*rev));
        if (!rev) {
            /* Try the whole answer again later rather than half of it. */
            g->target = t;
            g->n_target = nt;
            g->have_answer = true;
            return;
        }
        size_t k = 0;
        for (size_t i = 0; i < c->n_parts; i++)
            if (!in_target(t, nt, c->parts[i]))
                rev[k++] = c->parts[i];
        /* 1. stop fetching (nothing more is decoded for them from here), 2.
         * tell the application, 3. commit, 4. drop: so whoever gets them
         * next starts where we stopped. */
        for (size_t i = 0; i < k; i++) {
            drop_buffered(c, rev[i]);
            rev[i]->stopped = true;
        }
        for (size_t i = 0; g->cb && i < k; i++)
            g->cb(g->cb_arg, 0, rev[i]->topic, rev[i]->partition);
        if (conf->enable_auto_commit && g->epoch > 0)
            commit_sync(c, rev, k); /* a failure is in errmsg; the partitions go anyway */
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < c->n_parts; j++)
                if (c->parts[j] == rev[i]) {
                    remove_part(c, j);
                    break;
                }
        free(rev);
        g->hb_next = rn__now_ms(); /* tell the coordinator at once: someone waits for them */
    }

    size_t base = c->n_parts;
    for (size_t i = 0; i < nt; i++) {
        if (find_part(c, t[i].topic, t[i].partition))
            continue;
        cpart *p = new_part(c, t[i].topic, t[i].partition);
        if (!p)
            break; /* not owned: the next heartbeat's answer lists it again */
        p->start = START_COMMITTED;
        if (rn__md_want(&c->cl, p->topic) < 0)
            c->need_md = true;
    }
    gtp_free(t, nt);
    if (c->n_parts == base)
        return;
    start_parts(c);
    for (size_t i = base; g->cb && i < c->n_parts; i++)
        g->cb(g->cb_arg, 1, c->parts[i]->topic, c->parts[i]->partition);
}

/* The group's share of a poll, before fetching: membership, reconciling,
 * starts, auto-commit, and the next heartbeat when it is due. */
static void group_pump(rn_consumer *c)
{
    cgroup *g = &c->grp;
    if (!g->on)
        return;
    const rn_conf *conf = c->cl.conf;
    int64_t now = rn__now_ms();
    if (g->fenced) {
        g->fenced = false;
        lose_all(c);
    } else if (g->last_ok && now - g->last_ok > conf->session_timeout_ms && c->n_parts) {
        /* No answer for a whole session: the coordinator has dropped us. */
        lose_all(c);
        g->hb_next = now;
    }
    if (g->have_answer)
        reconcile(c);
    start_parts(c);
    now = rn__now_ms();
    if (conf->enable_auto_commit && g->epoch > 0 && !g->commit_inflight && now >= g->commit_next) {
        commit_async(c);
        g->commit_next = now + conf->auto_commit_interval_ms;
    }
    if (!g->hb_inflight && now >= g->hb_next)
        send_heartbeat(c, now);
}

/* Fold the group's next deadline into *t (only future ones: see next_timer). */
static void group_timer(const rn_consumer *c, int64_t now, int64_t *t)
{
    const cgroup *g = &c->grp;
    if (!g->on)
        return;
    if (!g->hb_inflight && g->hb_next > now)
        *t = min64(*t, g->hb_next);
    if (c->cl.conf->enable_auto_commit && g->epoch > 0 && !g->commit_inflight &&
        g->commit_next > now)
        *t = min64(*t, g->commit_next);
    if (g->last_ok && c->n_parts)
        *t = min64(*t, g->last_ok + c->cl.conf->session_timeout_ms + 1);
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i]->start != START_KNOWN && c->parts[i]->retry_at > now)
            *t = min64(*t, c->parts[i]->retry_at);
}

/* End the membership: revoke everything (callback, final commit), leave
 * with epoch -1 so the partitions move at once, forget the state. */
static int group_leave(rn_consumer *c)
{
    cgroup *g = &c->grp;
    const rn_conf *conf = c->cl.conf;
    int rc = 0;
    for (size_t i = 0; g->cb && i < c->n_parts; i++)
        g->cb(g->cb_arg, 0, c->parts[i]->topic, c->parts[i]->partition);
    if (conf->enable_auto_commit && g->epoch > 0 && c->n_parts)
        rc = commit_sync(c, c->parts, c->n_parts);
    if (g->member_id) {
        Runnel__GroupHeartbeatRequest req = RUNNEL__GROUP_HEARTBEAT_REQUEST__INIT;
        req.group_id = conf->group_id;
        req.member_id = g->member_id;
        req.member_epoch = -1;
        req.client_id = conf->client_id;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_GROUP_HEARTBEAT;
        h.group_heartbeat = &req;
        rn__reply r;
        /* Bounded by the session: past it the coordinator drops us anyway. */
        int timeout = min64(conf->socket_timeout_ms, conf->session_timeout_ms);
        int lrc = coord_call(c, &h, RUNNEL__API__GROUP_HEARTBEAT, timeout, "leave", &r);
        if (lrc == 0)
            rn__reply_fini(&r);
        else if (rc == 0)
            rc = lrc;
    }
    while (c->n_parts)
        remove_part(c, c->n_parts - 1);
    for (size_t i = 0; i < g->n_topics; i++)
        free(g->topics[i]);
    free(g->topics);
    free(g->member_id);
    gtp_free(g->target, g->n_target);
    rn_rebalance_cb cb = g->cb;
    void *cb_arg = g->cb_arg;
    uint32_t gen = g->hb_gen + 1;
    *g = (cgroup){.cb = cb, .cb_arg = cb_arg, .hb_gen = gen};
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
    p->committed = -1;
    c->parts[c->n_parts++] = p;
    return p;
}

static void free_part(rn_consumer *c, cpart *p)
{
    /* Nothing points into the partition's buffers any more (invariant 5). */
    if (p->it_live && p->it.owned)
        c->n_it_owned--;
    rn_batch_iter_fini(&p->it);
    for (chunk *ch = p->head, *next; ch; ch = next) {
        next = ch->next;
        chunk_free(ch);
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
            free_part(c, c->parts[--c->n_parts]);
        return rc;
    }
    return 0;
nomem:
    while (c->n_parts > base)
        free_part(c, c->parts[--c->n_parts]);
    return rn__fail(cl, -ENOMEM, "out of memory");
}

int rn_consumer_assign(rn_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    rn__client *cl = &c->cl;
    if (!topic)
        return rn__fail(cl, -RN_E_INVALID_TOPIC, "assign: no topic");
    if (c->grp.on)
        return rn__fail(cl, -EINVAL, "assign %s-%d: the group assigns partitions (subscribed)",
                        topic, partition);
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
    if (c->grp.on)
        return rn__fail(cl, -EINVAL, "assign %s: the group assigns partitions (subscribed)", topic);
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
        group_pump(c);
        pump(c);
        int n = decode(c);
        if (n != 0) {
            pump(c); /* prefetch: what was consumed frees room for the next answer */
            /* Move bytes without waiting: requests queued by this poll
             * (prefetch, heartbeat, auto-commit) go out now and answers
             * that came are read, even while the buffers alone keep the
             * application busy. The callbacks touch no returned message. */
            int rc = rn__client_poll(&c->cl, 0);
            if (rc < 0)
                set_pending(c, rc, "poll: %s", rn_strerror(rc));
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
    if (c->grp.on)
        group_leave(c);      /* final commit and leave: partitions move at once */
    c->closing = true;       /* from here chunks free their frames instead of recycling them */
    rn__client_fini(&c->cl); /* fails fetches in flight: their callbacks touch parts */
    release_previous(c);     /* frees the dead list: nothing is fetching any more */
    for (size_t i = 0; i < c->n_parts; i++)
        free_part(c, c->parts[i]);
    free(c->parts);
    for (size_t i = 0; i < c->n_spare; i++)
        free(c->spare[i]);
    free(c->msgs);
    free(c->to_free);
    free(c->asg_topics);
    free(c->asg_parts);
    free(c);
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
    if (!g->on && c->n_parts)
        return rn__fail(cl, -EINVAL, "subscribe: partitions were assigned by hand");
    if (n_topics == 0)
        return rn__fail(cl, -EINVAL, "subscribe: no topic");
    for (size_t i = 0; i < n_topics; i++) {
        size_t len = topics[i] ? strlen(topics[i]) : 0;
        if (len == 0 || len > 249)
            return rn__fail(cl, -RN_E_INVALID_TOPIC, "subscribe: topic names are 1 to 249 bytes");
    }
    char **v = calloc(n_topics, sizeof(*v));
    if (!v)
        return rn__fail(cl, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n_topics; i++) {
        if (!(v[i] = strdup(topics[i])) || rn__md_want(cl, topics[i]) < 0) {
            for (size_t k = 0; k <= i; k++)
                free(v[k]);
            free(v);
            return rn__fail(cl, -ENOMEM, "out of memory");
        }
    }
    /* A new subscription replaces the old one; the coordinator hears of it
     * with the next heartbeat, sent by the next poll. */
    for (size_t i = 0; i < g->n_topics; i++)
        free(g->topics[i]);
    free(g->topics);
    g->topics = v;
    g->n_topics = n_topics;
    if (!g->on) {
        g->on = true;
        g->epoch = 0;
        g->commit_next = rn__now_ms() + cl->conf->auto_commit_interval_ms;
    }
    g->hb_next = 0;
    return 0;
}

int rn_consumer_unsubscribe(rn_consumer *c)
{
    if (!c->grp.on)
        return 0;
    return group_leave(c);
}

int rn_consumer_commit(rn_consumer *c)
{
    rn__client *cl = &c->cl;
    if (!cl->conf->group_id)
        return rn__fail(cl, -RN_E_INVALID_CONFIG, "commit: no group.id set");
    if (c->grp.on && c->grp.epoch <= 0)
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

size_t rn_consumer_assignment(const rn_consumer *cc, const char *const **topics,
                              const int32_t **partitions)
{
    rn_consumer *c = (rn_consumer *)cc; /* the arrays are a cache, not state */
    *topics = NULL;
    *partitions = NULL;
    if (c->n_parts > c->asg_cap) {
        const char **t = realloc(c->asg_topics, c->n_parts * sizeof(*t));
        if (t)
            c->asg_topics = t;
        int32_t *p = realloc(c->asg_parts, c->n_parts * sizeof(*p));
        if (p)
            c->asg_parts = p;
        if (!t || !p)
            return 0;
        c->asg_cap = c->n_parts;
    }
    for (size_t i = 0; i < c->n_parts; i++) {
        c->asg_topics[i] = c->parts[i]->topic;
        c->asg_parts[i] = c->parts[i]->partition;
    }
    *topics = c->asg_topics;
    *partitions = c->asg_parts;
    return c->n_parts;
}
