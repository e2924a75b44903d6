/*
 * metadata.c — the metadata facade and the path every change takes (see
 * metadata.h, DESIGN §8).
 *
 * The parts (broker/meta/):
 *   image.c     the state and the pure apply of one record;
 *   snapshot.c  the image as a file;
 *   journal.c   records in, committed batches out (today the local
 *               __cluster_metadata-0 log; Raft next, same interface);
 *   metadata.c  this file: open, replay, snapshots, close; the changes in
 *               flight, which every mutator shares: encoding a change as
 *               records, submitting it to the journal, and on commit
 *               applying the batch to the image, telling the listener,
 *               calling the caller back; look-ups;
 *   topic_changes.c
 *               the topic-level changes (a create, a delete, a config
 *               change, a partition grow), each validated against the image
 *               plus the changes in flight, and the partition caps;
 *   partition_changes.c
 *               the partition-level changes (an ISR change, a leader
 *               election, a replica move), validated and submitted the same
 *               way; what the three files share: metadata_int.h.
 *
 * Life of a change:
 *
 *   mutator ──validate──▶ records ──rn_journal_submit──▶ IN FLIGHT (md->pending)
 *                                                          │ committed
 *                                                          ▼
 *                      committed(): apply_batch → image → listener events → cb
 *
 * Invariants:
 *  1. Image = snapshot + every committed batch after the snapshot's offset,
 *     applied in log order; md->applied is the offset after the last applied
 *     record. Opening replays the same batches through the same apply_batch,
 *     so what a broker sees after a restart is exactly what it saw before.
 *  2. The image changes only in apply_batch, which only calls
 *     rn_image_apply (pure: image invariant 2); listeners are told here,
 *     after the image changed, and a deleted topic's event comes before the
 *     record that removes it (its info is still valid in the call).
 *  3. Validation at call time sees the changes in flight: a name a pending
 *     create uses is taken, a topic a pending delete removes is gone. So a
 *     validated change applies whole, barring a crash in between.
 *  4. A record that does not decode is corruption, never skipped: skipping it
 *     would build a state no other replica builds. Open fails with
 *     -RN_E_CORRUPT_FILE and names the offset.
 *  5. If applying runs out of memory half-way through a batch, the image no
 *     longer matches the log: md->failed makes every later mutator fail and
 *     no snapshot is written, so a restart rebuilds the right state.
 *  6. A snapshot is written every SNAPSHOT_EVERY applied records and on
 *     close, never while md->failed; a snapshot that does not load, or
 *     covers an offset outside the log, is ignored and the log replayed.
 *  7. In a cluster (rn_metadata_open_cluster) the journal is the quorum's:
 *     every committed batch arrives once per process life, in log order,
 *     stamped with its entry's offset (one entry, one offset, so records
 *     are never skipped by offset). The quorum writes the snapshots
 *     (quorum.c invariant 4); here one arrives as a whole new image
 *     (install_snapshot): the latest on disk at start, or one fetched from
 *     the leader. Once caught up, the listener hears the difference: every
 *     topic gone (DELETED, with the old info), every new one (CREATED),
 *     every kept one's configs and partitions, then BROKERS_CHANGED.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/config.h"
#include "broker/logfmt.h"
#include "broker/meta/image.h"
#include "broker/meta/journal.h"
#include "broker/meta/metadata.h"
#include "broker/meta/metadata_int.h"
#include "broker/meta/quorum.h"
#include "broker/meta/snapshot.h"
#include "broker/meta/records.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/sys.h"

#define MD_LOG_NAME    RN_METADATA_DIR_NAME
#define SNAPSHOT_EVERY 1000

/* Listener events of one batch, sent once the whole batch is applied. */
typedef struct event {
    enum rn_metadata_event_type type;
    const rn_topic_info *t;
    int32_t partition;
} event;

typedef struct event_q {
    rn_metadata *md;
    event *ev; /* room for one per record: no allocation while applying */
    size_t n;
} event_q;

/* ---- Apply (invariants 1, 2) ------------------------------------------------- */

static void flush_events(event_q *q)
{
    rn_metadata *md = q->md;
    for (size_t i = 0; i < q->n; i++) {
        rn_metadata_event ev = {
            .type = q->ev[i].type, .topic = q->ev[i].t, .partition = q->ev[i].partition};
        md->listener(md->listener_arg, &ev);
    }
    q->n = 0;
}

/* Queue what one record did unless this batch already has an event for its
 * topic (a topic created in this batch reports its configs with CREATED). */
static void queue_event(event_q *q, const rn_image_effect *eff)
{
    enum rn_metadata_event_type type;
    switch (eff->type) {
    case RN_IMAGE_TOPIC_CREATED:
        type = RN_MD_TOPIC_CREATED;
        break;
    case RN_IMAGE_CONFIG_CHANGED:
        type = RN_MD_CONFIG_CHANGED;
        break;
    case RN_IMAGE_PARTITIONS_ADDED:
        type = RN_MD_PARTITIONS_ADDED;
        break;
    case RN_IMAGE_PARTITION_CHANGED:
        type = RN_MD_PARTITION_CHANGED;
        break;
    case RN_IMAGE_BROKERS_CHANGED:
        type = RN_MD_BROKERS_CHANGED;
        break;
    default:
        return;
    }
    for (size_t i = 0; i < q->n; i++)
        if (q->ev[i].t == eff->topic &&
            (type != RN_MD_PARTITION_CHANGED ||
             (q->ev[i].type == type && q->ev[i].partition == eff->partition)))
            return;
    q->ev[q->n].type = type;
    q->ev[q->n].t = eff->topic;
    q->ev[q->n].partition = eff->partition;
    q->n++;
}

/* Before a record that removes a topic: the events so far (events are in
 * record order, and none may outlive its topic), then DELETED while the
 * topic's info is still valid. */
static void tell_removal(rn_metadata *md, event_q *q, const md_record *r)
{
    if (r->record_case != RUNNEL__METADATA__METADATA_RECORD__RECORD_REMOVE_TOPIC)
        return;
    const rn_topic_info *t =
        rn_image_find_id(md->image, r->remove_topic->topic_id.data, r->remove_topic->topic_id.len);
    if (!t)
        return;
    flush_events(q);
    rn_metadata_event ev = {.type = RN_MD_TOPIC_DELETED, .topic = t, .partition = -1};
    md->listener(md->listener_arg, &ev);
}

/* Unpack one record value. NULL with md->errmsg set when it is not a
 * MetadataRecord this version knows. */
static md_record *decode_record(rn_metadata *md, const rn_record *rec)
{
    if (!rec->value || rec->value_len < 0) {
        snprintf(md->errmsg, sizeof(md->errmsg),
                 "metadata log: offset %" PRId64 ": record has no value", rec->offset);
        return NULL;
    }
    md_record *r =
        runnel__metadata__metadata_record__unpack(NULL, (size_t)rec->value_len, rec->value);
    if (!r) {
        snprintf(md->errmsg, sizeof(md->errmsg),
                 "metadata log: offset %" PRId64 ": record (%" PRId32
                 " bytes) does not decode as a MetadataRecord",
                 rec->offset, rec->value_len);
        return NULL;
    }
    if (r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD__NOT_SET) {
        snprintf(md->errmsg, sizeof(md->errmsg),
                 "metadata log: offset %" PRId64
                 ": record of a kind this version does not know (written by a newer runnel?)",
                 rec->offset);
        runnel__metadata__metadata_record__free_unpacked(r, NULL);
        return NULL;
    }
    return r;
}

/* Apply one batch whole: decode every record first (so a corrupt batch
 * changes nothing), then apply them in order, then tell the listener when
 * notify. Records below md->applied (covered by the snapshot) are passed
 * over. *first_status is the status of the first record applied: the
 * outcome of the change the batch carries. Returns 0, -RN_E_CORRUPT_FILE
 * (md->errmsg says where) or -ENOMEM. */
static int apply_batch(rn_metadata *md, const uint8_t *buf, size_t len, bool notify,
                       int *first_status)
{
    *first_status = 0;
    rn_batch_iter it;
    int rc = rn_batch_iter_init(&it, buf, len, 0);
    if (rc < 0) {
        snprintf(md->errmsg, sizeof(md->errmsg), "metadata log: batch: %s", rn_strerror(rc));
        return -RN_E_CORRUPT_FILE;
    }
    int64_t base = it.h.base_offset;
    size_t n = (size_t)it.h.records_count;
    md_record **recs = calloc(n, sizeof(*recs));
    event *evs = calloc(n, sizeof(*evs));
    size_t n_recs = 0;
    if (!recs || !evs) {
        rc = -ENOMEM;
        goto out;
    }
    rn_record rec;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
        if (!md->cluster && rec.offset < md->applied)
            continue;
        if (n_recs == n) {
            rc = -RN_E_BATCH_BAD_COUNT; /* the iterator checks this; belt and braces */
            break;
        }
        recs[n_recs] = decode_record(md, &rec);
        if (!recs[n_recs]) {
            rc = -RN_E_CORRUPT_FILE;
            goto out;
        }
        n_recs++;
    }
    if (rc < 0) {
        snprintf(md->errmsg, sizeof(md->errmsg), "metadata log: batch at offset %" PRId64 ": %s",
                 base, rn_strerror(rc));
        rc = -RN_E_CORRUPT_FILE;
        goto out;
    }
    event_q q = {.md = md, .ev = evs};
    bool tell = notify && md->listener;
    for (size_t i = 0; i < n_recs; i++) {
        int status;
        rn_image_effect eff;
        if (tell)
            tell_removal(md, &q, recs[i]);
        rc = rn_image_apply(md->image, recs[i], &eff, &status);
        if (rc < 0)
            goto out;
        if (tell)
            queue_event(&q, &eff);
        if (i == 0)
            *first_status = status;
    }
    if (tell)
        flush_events(&q);
    int64_t next = md->cluster ? base + 1 : base + it.h.last_offset_delta + 1;
    if (next > md->applied)
        md->applied = next;
    md->since_snapshot += n_recs;
    rc = 0;

out:
    for (size_t i = 0; i < n_recs; i++)
        runnel__metadata__metadata_record__free_unpacked(recs[i], NULL);
    free(recs);
    free(evs);
    rn_batch_iter_fini(&it);
    return rc;
}

/* ---- Snapshot ------------------------------------------------------------- */

/* Durably replace the snapshot with the image (invariant 6). */
static int write_snapshot(rn_metadata *md)
{
    int rc = rn_snapshot_write(md->image, md->applied, md->dir);
    if (rc == 0) {
        md->snapshot_offset = md->applied;
        md->since_snapshot = 0;
    }
    return rc;
}

static void maybe_snapshot(rn_metadata *md)
{
    if (md->cluster || md->failed || md->since_snapshot < SNAPSHOT_EVERY)
        return;
    int rc = write_snapshot(md);
    if (rc < 0) {
        /* The log holds everything; try again after as many changes. */
        md->since_snapshot = 0;
        rn_logfmt(RN_WARN, "metadata snapshot failed", "dir=%s error=%s", md->dir, rn_errname(rc));
    }
}

/* ---- Open, replay, close ------------------------------------------------- */

static int replay_batch(void *arg, const uint8_t *batch, size_t len)
{
    int status;
    return apply_batch(arg, batch, len, false, &status);
}

/* Apply every committed batch from md->applied to the journal's end. */
static int replay(rn_metadata *md)
{
    int64_t reached;
    int rc = rn_journal_replay(md->journal, md->applied, replay_batch, md, &reached, md->errmsg,
                               sizeof(md->errmsg));
    if (rc < 0)
        return rc;
    /* A batch never moves md->applied backwards; reached covers slices whose
     * batches were all below it. */
    if (reached > md->applied)
        md->applied = reached;
    return 0;
}

static void free_md(rn_metadata *md)
{
    rn_image_free(md->image);
    free(md->dir);
    free(md);
}

int rn_metadata_open(rn_metadata **out, rn_io *io, const char *data_dir, int32_t node_id,
                     rn_metadata_listener listener, void *listener_arg, char *err, size_t errlen)
{
    *out = NULL;
    rn_metadata *md = calloc(1, sizeof(*md));
    if (!md || rn_image_new(&md->image) < 0) {
        free(md);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    md->io = io;
    md->node_id = node_id;
    md->listener = listener;
    md->listener_arg = listener_arg;
    md->snapshot_offset = -1;
    md->default_rf = 1;
    md->default_min_isr = 1;
    size_t dlen = strlen(data_dir) + 1 + sizeof(MD_LOG_NAME);
    md->dir = malloc(dlen);
    if (!md->dir) {
        free_md(md);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    snprintf(md->dir, dlen, "%s/%s", data_dir, MD_LOG_NAME);

    int rc = rn_sys_mkdir(data_dir, 0755);
    if (rc < 0) {
        rn_errf(rc, err, errlen, "metadata: mkdir %s: %s", data_dir, rn_strerror(rc));
        free_md(md);
        return rc;
    }
    rc = rn_journal_open_local(&md->journal, io, md->dir, MD_LOG_NAME, err, errlen);
    if (rc < 0) {
        free_md(md);
        return rc;
    }

    int64_t start = rn_journal_start_offset(md->journal);
    int64_t leo = rn_journal_end_offset(md->journal);
    char why[256] = "";
    rc = rn_snapshot_load(md->image, md->dir, &md->applied, why, sizeof(why));
    if (rc == 0)
        md->snapshot_offset = md->applied;
    if (rc == 0 && (md->applied < start || md->applied > leo)) {
        /* Written for a log that is not this one (restored from elsewhere, or
         * recovery cut the log below it): only the log can be trusted. */
        snprintf(why, sizeof(why), "covers offset %" PRId64 ", log holds %" PRId64 "..%" PRId64,
                 md->applied, start, leo);
        rc = -RN_E_CORRUPT_FILE;
    }
    if (rc == -ENOMEM) {
        rn_errf(rc, err, errlen, "metadata: out of memory loading the snapshot");
        goto fail;
    }
    if (rc < 0) {
        if (rc != -ENOENT) {
            char q[300];
            rn_logfmt(RN_WARN, "metadata snapshot ignored, replaying the whole log",
                      "dir=%s reason=%s", md->dir,
                      rn_logfmt_quote(why[0] ? why : rn_strerror(rc), q, sizeof(q)));
        }
        rn_image_clear(md->image);
        md->snapshot_offset = -1;
        md->applied = start;
    }
    md->since_snapshot = 0;
    rc = replay(md);
    if (rc < 0) {
        rn_errf(rc, err, errlen, "%s", md->errmsg);
        goto fail;
    }
    maybe_snapshot(md);
    unsigned n = rn_image_topic_count(md->image);
    rn_logfmt(RN_INFO, "metadata loaded",
              "topics=%u applied_offset=%" PRId64 " snapshot_offset=%" PRId64, n, md->applied,
              md->snapshot_offset);
    if (listener)
        for (unsigned i = 0; i < n; i++) {
            rn_metadata_event ev = {.type = RN_MD_TOPIC_CREATED,
                                    .topic = rn_image_topic_at(md->image, i),
                                    .partition = -1};
            listener(listener_arg, &ev);
        }
    *out = md;
    return 0;

fail:
    rn_journal_close(md->journal);
    free_md(md);
    return rc;
}

/* A batch the quorum committed that this broker did not submit. */
static void apply_foreign(void *arg, int64_t offset, const uint8_t *batch, size_t len)
{
    rn_metadata *md = arg;
    if (md->failed)
        return;
    int status;
    int rc = apply_batch(md, batch, len, !md->replaying, &status);
    if (rc < 0) {
        md->failed = rc; /* invariant 5 */
        rn_logfmt(RN_ERROR, "metadata apply failed", "offset=%" PRId64 " error=%s", offset,
                  rn_errname(rc));
    }
}

/* Tell the listener what replacing old by the current image changed. The
 * old topics' DELETED come before the image changes (their info is valid
 * in the call); this runs with md->image already new, old still alive. */
static void tell_snapshot(rn_metadata *md, const rn_image *old)
{
    const rn_image *img = md->image;
    for (unsigned i = 0; i < rn_image_topic_count(img); i++) {
        const rn_topic_info *t = rn_image_topic_at(img, i);
        const rn_topic_info *o = rn_image_find_id(old, t->id, 16);
        rn_metadata_event ev = {.topic = t, .partition = -1};
        if (!o || strcmp(o->name, t->name) != 0) {
            ev.type = RN_MD_TOPIC_CREATED;
            md->listener(md->listener_arg, &ev);
            continue;
        }
        ev.type = RN_MD_CONFIG_CHANGED;
        md->listener(md->listener_arg, &ev);
        if (t->n_partitions > o->n_partitions) {
            ev.type = RN_MD_PARTITIONS_ADDED;
            md->listener(md->listener_arg, &ev);
        }
    }
    /* Leaders, ISRs and replicas of every partition may have moved. */
    rn_metadata_event ev = {.type = RN_MD_BROKERS_CHANGED, .topic = NULL, .partition = -1};
    md->listener(md->listener_arg, &ev);
}

/* The quorum's snapshot replaces the image whole (invariant 7). */
static void install_snapshot(void *arg, int64_t end_offset, const uint8_t *data, size_t len)
{
    rn_metadata *md = arg;
    rn_image *img = NULL;
    char why[256] = "";
    int64_t end;
    int rc = rn_image_new(&img);
    if (rc == 0)
        rc = rn_snapshot_decode(img, data, len, &end, NULL, why, sizeof(why));
    if (rc < 0) {
        /* The quorum checked it: only memory can fail here. The image is
         * then behind the log (invariant 5). */
        if (img)
            rn_image_free(img);
        md->failed = rc;
        rn_logfmt(RN_ERROR, "metadata snapshot not applied", "end_offset=%" PRId64 " error=%s",
                  end_offset, rn_errname(rc));
        return;
    }
    bool tell = !md->replaying && md->listener;
    if (tell) {
        /* Topics the snapshot no longer has (deleted while this broker was
         * away, or deleted and created again under a new id). */
        for (unsigned i = 0; i < rn_image_topic_count(md->image); i++) {
            const rn_topic_info *t = rn_image_topic_at(md->image, i);
            const rn_topic_info *n = rn_image_find_id(img, t->id, 16);
            if (n && strcmp(n->name, t->name) == 0)
                continue;
            rn_metadata_event ev = {.type = RN_MD_TOPIC_DELETED, .topic = t, .partition = -1};
            md->listener(md->listener_arg, &ev);
        }
    }
    rn_image *old = md->image;
    md->image = img;
    md->applied = end_offset;
    md->snapshot_offset = end_offset;
    md->since_snapshot = 0;
    if (tell)
        tell_snapshot(md, old);
    rn_image_free(old);
    rn_logfmt(RN_INFO, "metadata image from snapshot", "end_offset=%" PRId64 " topics=%u told=%s",
              end_offset, rn_image_topic_count(img), tell ? "yes" : "no");
}

int rn_metadata_open_cluster(rn_metadata **out, rn_io *io, const char *data_dir, int32_t node_id,
                             struct rn_quorum *q, rn_metadata_listener listener, void *listener_arg,
                             char *err, size_t errlen)
{
    *out = NULL;
    rn_metadata *md = calloc(1, sizeof(*md));
    if (!md || rn_image_new(&md->image) < 0) {
        free(md);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    md->io = io;
    md->node_id = node_id;
    md->listener = listener;
    md->listener_arg = listener_arg;
    md->snapshot_offset = -1;
    md->default_rf = 1;
    md->default_min_isr = 1;
    md->cluster = true;
    md->replaying = true;
    size_t dlen = strlen(data_dir) + 1 + sizeof(MD_LOG_NAME);
    md->dir = malloc(dlen);
    if (!md->dir) {
        free_md(md);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    snprintf(md->dir, dlen, "%s/%s", data_dir, MD_LOG_NAME);
    int rc = rn_quorum_journal_new(q, apply_foreign, install_snapshot, md, &md->journal);
    if (rc < 0) {
        free_md(md);
        return rn_errf(rc, err, errlen, "metadata: out of memory");
    }
    *out = md;
    return 0;
}

int rn_metadata_close(rn_metadata *md)
{
    /* Let the changes in flight land (and apply) so the snapshot has them. */
    int rc = rn_journal_flush(md->journal);
    if (!md->cluster && !md->failed && md->applied != md->snapshot_offset) {
        int r = write_snapshot(md);
        if (r < 0)
            rn_logfmt(RN_WARN, "metadata snapshot failed", "dir=%s error=%s", md->dir,
                      rn_errname(r));
        if (rc == 0)
            rc = r;
    }
    int r = rn_journal_close(md->journal);
    if (rc == 0)
        rc = r;
    /* Closing ran every callback, so nothing is pending any more. */
    free_md(md);
    return rc;
}

/* ---- Changes ----------------------------------------------------------------- */

/* The machinery both mutator files (topic_changes.c, partition_changes.c)
 * share through metadata_int.h: a change's life in md->pending, its
 * encoder, its submit and its commit. It stays with the facade because
 * committed() is where a change meets apply_batch and the snapshots. */

static void pending_unlink(rn_metadata *md, change *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        md->pending_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        md->pending_tail = c->prev;
    c->prev = c->next = NULL;
}

void rn__metadata_change_free(change *c)
{
    free(c->name);
    free(c);
}

/* A change of kind to topic id (NULL: filled in later), for cb. */
change *rn__metadata_change_new(enum change_kind kind, const uint8_t *id, rn_metadata_cb cb,
                                void *arg)
{
    change *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->kind = kind;
    if (id)
        memcpy(c->id, id, 16);
    c->cb = cb;
    c->arg = arg;
    return c;
}

void rn__metadata_enc_init(encoder *e)
{
    memset(e, 0, sizeof(*e));
}

static void enc_fini(encoder *e)
{
    free(e->buf);
    free(e->ends);
}

int rn__metadata_enc_add(encoder *e, const md_record *r)
{
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    if (e->len + len > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        while (cap < e->len + len)
            cap *= 2;
        uint8_t *b = realloc(e->buf, cap);
        if (!b)
            return -ENOMEM;
        e->buf = b;
        e->cap = cap;
    }
    if (e->n == e->cap_ends) {
        size_t cap = e->cap_ends ? e->cap_ends * 2 : 8;
        size_t *ends = realloc(e->ends, cap * sizeof(*ends));
        if (!ends)
            return -ENOMEM;
        e->ends = ends;
        e->cap_ends = cap;
    }
    protobuf_c_message_pack(&r->base, e->buf + e->len);
    e->len += len;
    e->ends[e->n++] = e->len;
    return 0;
}

/* The journal says the change committed (or failed): apply it, tell, call
 * back. */
static void committed(void *arg, int err, int64_t base_offset, const uint8_t *batch, size_t len,
                      const char *errmsg)
{
    change *c = arg;
    rn_metadata *md = c->md;
    char msg[1024] = "";
    pending_unlink(md, c);
    if (err == 0) {
        int status;
        int rc = apply_batch(md, batch, len, true, &status);
        if (rc < 0) {
            /* Invariant 5: the batch is in the log but not (all) in the image. */
            md->failed = rc;
            err = rc;
            snprintf(msg, sizeof(msg),
                     "metadata: applying offset %" PRId64 " failed (%s); the broker must "
                     "restart to rebuild its metadata",
                     base_offset, rc == -ENOMEM ? rn_strerror(rc) : md->errmsg);
            rn_logfmt(RN_ERROR, "metadata apply failed", "offset=%" PRId64 " error=%s", base_offset,
                      rn_errname(rc));
        } else if (status < 0) {
            /* Invariant 3 makes this a should-not-happen; report, do not hide. */
            err = status;
            snprintf(msg, sizeof(msg), "metadata: change at offset %" PRId64 " did not apply: %s",
                     base_offset, rn_strerror(status));
        } else {
            maybe_snapshot(md);
        }
    } else {
        snprintf(msg, sizeof(msg), "%s", errmsg);
    }
    rn_metadata_cb cb = c->cb;
    void *cb_arg = c->arg;
    rn__metadata_change_free(c);
    if (cb)
        cb(cb_arg, err, msg);
}

/* Submit the encoder's records as one change, unless encoding them failed
 * (enc_rc < 0). Takes ownership of c (freed on error) and finishes e. */
int rn__metadata_submit(rn_metadata *md, encoder *e, change *c, int enc_rc, const char *topic_name,
                        char *err, size_t errlen)
{
    if (enc_rc < 0) {
        enc_fini(e);
        rn__metadata_change_free(c);
        return rn_errf(enc_rc, err, errlen, "topic %s: encoding: %s", topic_name,
                       rn_strerror(enc_rc));
    }
    rn_journal_rec *recs = malloc((e->n ? e->n : 1) * sizeof(*recs));
    if (!recs) {
        enc_fini(e);
        rn__metadata_change_free(c);
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    }
    for (size_t i = 0; i < e->n; i++) {
        size_t begin = i ? e->ends[i - 1] : 0;
        recs[i] = (rn_journal_rec){.data = e->buf + begin, .len = e->ends[i] - begin};
    }
    c->md = md;
    int rc = rn_journal_submit(md->journal, recs, e->n, committed, c, err, errlen);
    free(recs);
    enc_fini(e);
    if (rc < 0) {
        rn__metadata_change_free(c);
        return rc;
    }
    c->prev = md->pending_tail;
    if (md->pending_tail)
        md->pending_tail->next = c;
    else
        md->pending_head = c;
    md->pending_tail = c;
    return 0;
}

int rn__metadata_check_failed(const rn_metadata *md, char *err, size_t errlen)
{
    if (md->failed)
        return rn_errf(md->failed, err, errlen,
                       "metadata: state is behind the metadata log after an error (%s); restart "
                       "the broker",
                       rn_strerror(md->failed));
    return 0;
}

/* ---- Look-ups ---------------------------------------------------------------- */

const rn_broker_info *rn_metadata_broker(const rn_metadata *md, int32_t id)
{
    return rn_image_broker(md->image, id);
}

unsigned rn_metadata_broker_count(const rn_metadata *md)
{
    return rn_image_broker_count(md->image);
}

const rn_broker_info *rn_metadata_broker_at(const rn_metadata *md, unsigned i)
{
    return rn_image_broker_at(md->image, i);
}

const rn_topic_info *rn_metadata_find(const rn_metadata *md, const char *name)
{
    if (!name)
        return NULL;
    return rn_image_find(md->image, name);
}

unsigned rn_metadata_topic_count(const rn_metadata *md)
{
    return rn_image_topic_count(md->image);
}

const rn_topic_info *rn_metadata_topic_at(const rn_metadata *md, unsigned i)
{
    return rn_image_topic_at(md->image, i);
}

void rn_metadata_caught_up(rn_metadata *md)
{
    if (!md->replaying)
        return;
    md->replaying = false;
    if (!md->listener)
        return;
    for (unsigned i = 0; i < rn_image_topic_count(md->image); i++) {
        rn_metadata_event ev = {
            .type = RN_MD_TOPIC_CREATED, .topic = rn_image_topic_at(md->image, i), .partition = -1};
        md->listener(md->listener_arg, &ev);
    }
}

const rn_image *rn_metadata_image(const rn_metadata *md)
{
    return md->image;
}

int64_t rn_metadata_applied_offset(const rn_metadata *md)
{
    return md->applied;
}

int rn_topic_log_config(const rn_topic_info *t, const rn_log_config *defaults, rn_log_config *out)
{
    *out = *defaults;
    int first = 0;
    for (uint32_t i = 0; i < t->n_configs; i++) {
        /* Validated when the change was made; a value an older or newer
         * parser refuses is left at the default rather than failing the
         * topic, and reported. */
        int rc = rn_topic_config_set(out, t->config_keys[i], t->config_values[i], NULL, 0);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}
