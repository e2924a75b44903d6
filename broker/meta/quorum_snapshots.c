/*
 * quorum_snapshots.c — the metadata quorum's image and its snapshots (see
 * quorum_int.h for the other files of the quorum; quorum.c's invariants 4
 * and 5 for the rules). Quorum thread only.
 *
 * Every committed entry is applied to the quorum's own image (the same
 * pure rn_image_apply as the owner's); every snapshot_bytes of entries and
 * at a clean stop the image is written as <end>-<epoch>.checkpoint
 * (snapshot.h) and the core compacted to the previous one
 * (rn__quorum_snapshot_take). A snapshot fetched from the leader is checked
 * before the core sees it (rn__quorum_snapshot_valid) and installed when the
 * core hands it back in a ready (rn__quorum_snapshot_install); at start the
 * newest one that decodes and that the log continues is loaded
 * (rn__quorum_snapshot_load).
 */
#include <errno.h>
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
#include "broker/meta/snapshot.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/log.h"

/* Apply one committed record to q->img; an apply out of memory leaves an
 * image that no longer matches the log: it is never snapshotted. */
void rn__quorum_img_apply_record(rn_quorum *q, const uint8_t *p, size_t len)
{
    md_record *r = runnel__metadata__metadata_record__unpack(NULL, len, p);
    if (!r)
        return; /* the owner's apply reports it (and fails) */
    int status;
    if (rn_image_apply(q->img, r, NULL, &status) < 0)
        q->img_failed = true;
    runnel__metadata__metadata_record__free_unpacked(r, NULL);
}

void rn__quorum_img_apply_batch(rn_quorum *q, const uint8_t *batch, size_t len)
{
    rn_batch_iter it;
    if (rn_batch_iter_init(&it, batch, len, 0) < 0)
        return;
    rn_record rec;
    while (rn_batch_iter_next(&it, &rec) == 1)
        if (rec.value && rec.value_len >= 0)
            rn__quorum_img_apply_record(q, rec.value, (size_t)rec.value_len);
    rn_batch_iter_fini(&it);
}

/* Remove every snapshot file below keep_end. */
static void snapshots_prune(rn_quorum *q, int64_t keep_end)
{
    rn_snapshot_id *ids;
    size_t n;
    if (rn_snapshot_list(q->dir, &ids, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (ids[i].end_offset < keep_end && rn_snapshot_remove(q->dir, ids[i]) == 0)
            rn_logfmt(RN_DEBUG, "metadata snapshot removed", "end_offset=%" PRId64,
                      ids[i].end_offset);
    free(ids);
}

/* Write a snapshot of q->img at q->applied, compact the core, delete the log
 * below the previous snapshot. A failure is logged and tried again after as
 * many bytes: the log still holds everything. */
void rn__quorum_snapshot_take(rn_quorum *q, const char *why)
{
    int64_t end = q->applied;
    if (q->img_failed || end <= q->snap.end_offset)
        return;
    uint8_t *data = NULL;
    size_t len = 0;
    rn_snapshot_id id = {end, q->applied_epoch};
    int rc = rn_snapshot_encode(q->img, end, id.epoch, &data, &len);
    if (rc == 0)
        rc = rn_snapshot_save(q->dir, id, data, len);
    /* The core gets the PREVIOUS snapshot, as the disk keeps the log from
     * it: entries after it stay in memory, so a follower less than one
     * snapshot behind catches up from entries rather than a snapshot. */
    if (rc == 0 && q->snap_bytes && q->snap.end_offset > rn_raft_log_start(q->raft))
        rc = rn_raft_compact(q->raft, q->snap.end_offset, q->snap_bytes, q->snap_len);
    q->since_snapshot = 0;
    if (rc < 0) {
        free(data);
        rn_logfmt(RN_WARN, "metadata snapshot failed", "end_offset=%" PRId64 " err=%s", end,
                  rn_errname(rc));
        return;
    }
    int64_t prev = q->snap.end_offset;
    free(q->snap_bytes);
    q->snap_bytes = data;
    q->snap_len = len;
    q->snap = id;
    q->prev_snap_end = prev;
    q->n_snapshots++;
    /* The log from the previous snapshot on stays, with its file: a latest
     * snapshot found damaged at start falls back to them. */
    int deleted = 0;
    if (prev > 0) {
        rc = rn_log_roll(q->log);
        if (rc == 0)
            deleted = rn_log_delete_below(q->log, prev);
        if (rc < 0 || deleted < 0)
            rn_logfmt(RN_WARN, "metadata log not trimmed", "err=%s why=\"%s\"",
                      rn_errname(rc < 0 ? rc : deleted), rn_log_errmsg(q->log));
        snapshots_prune(q, prev);
    } else if (rn_log_roll(q->log) < 0) {
        rn_logfmt(RN_WARN, "metadata log not rolled", "why=\"%s\"", rn_log_errmsg(q->log));
    }
    rn_logfmt(RN_INFO, "metadata snapshot written",
              "end_offset=%" PRId64 " epoch=%d bytes=%zu why=%s log_start=%" PRId64
              " segments_deleted=%d",
              end, id.epoch, len, why, rn_log_start_offset(q->log), deleted > 0 ? deleted : 0);
}

/* A snapshot from the leader (the core took it): store it, replace the log
 * and the image, hand it to the owner. An error stops the quorum: the core
 * already counts it installed. */
int rn__quorum_snapshot_install(rn_quorum *q, const rn_raft_snapshot *sn)
{
    char why[256] = "";
    rn_image *img;
    int64_t end;
    int32_t epoch;
    int rc = rn_image_new(&img);
    if (rc < 0)
        return rc;
    rc = rn_snapshot_decode(img, sn->data, sn->len, &end, &epoch, why, sizeof(why));
    if (rc == 0 && (end != sn->end_offset || epoch != sn->epoch))
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, sizeof(why),
                     "names %" PRId64 "/%d, not %" PRId64 "/%d", end, epoch, sn->end_offset,
                     sn->epoch);
    rn_snapshot_id id = {sn->end_offset, sn->epoch};
    if (rc == 0)
        rc = rn_snapshot_save(q->dir, id, sn->data, sn->len);
    if (rc == 0)
        rc = rn_log_truncate_fully(q->log, sn->end_offset);
    if (rc < 0) {
        rn_image_free(img);
        rn_logfmt(RN_ERROR, "metadata snapshot not installed",
                  "end_offset=%" PRId64 " err=%s why=\"%s\"", sn->end_offset, rn_errname(rc), why);
        return rc;
    }
    rn_image_free(q->img);
    q->img = img;
    q->img_failed = false;
    rn__quorum_brokers_from_image(q);
    q->applied = sn->end_offset;
    q->applied_epoch = sn->epoch;
    q->since_snapshot = 0;
    uint8_t *copy = malloc(sn->len ? sn->len : 1);
    if (copy) {
        memcpy(copy, sn->data, sn->len);
        free(q->snap_bytes);
        q->snap_bytes = copy;
        q->snap_len = sn->len;
    } else {
        free(q->snap_bytes);
        q->snap_bytes = NULL; /* the core keeps its own copy; the next compaction waits */
    }
    q->snap = id;
    q->prev_snap_end = sn->end_offset;
    q->n_installed++;
    snapshots_prune(q, sn->end_offset);
    rc = rn__quorum_post_snapshot(q, sn->end_offset, sn->data, sn->len);
    if (rc < 0)
        return rc;
    rn_logfmt(RN_INFO, "metadata snapshot installed",
              "end_offset=%" PRId64 " epoch=%d bytes=%zu topics=%u log_start=%" PRId64,
              sn->end_offset, sn->epoch, sn->len, rn_image_topic_count(img),
              rn_log_start_offset(q->log));
    return 0;
}

/* Whether a FETCH_SNAPSHOT response's bytes are a snapshot we can install:
 * checked before the core takes it, so a damaged one is dropped (and
 * fetched again) rather than installed. */
bool rn__quorum_snapshot_valid(const rn_raft_msg *m, char *why, size_t whylen)
{
    rn_image *img;
    if (rn_image_new(&img) < 0)
        return false;
    int64_t end;
    int32_t epoch;
    int rc = rn_snapshot_decode(img, m->snapshot_data, m->snapshot_len, &end, &epoch, why, whylen);
    rn_image_free(img);
    if (rc == 0 && (end != m->snapshot_end_offset || epoch != m->snapshot_epoch)) {
        snprintf(why, whylen, "holds %" PRId64 "/%d, named %" PRId64 "/%d", end, epoch,
                 m->snapshot_end_offset, m->snapshot_epoch);
        return false;
    }
    return rc == 0;
}

/* Invariant 5: the newest snapshot that decodes and that the log continues
 * goes into q->img (and *data, for the core); none with a log starting at
 * 0 is a full replay; none otherwise refuses to start. A snapshot past the
 * log's end (installed, then a crash before the log was emptied) empties
 * the log to start at its end. */
int rn__quorum_snapshot_load(rn_quorum *q, uint8_t **data, size_t *len, char *err, size_t errlen)
{
    rn_snapshot_id *ids;
    size_t n;
    int rc = rn_snapshot_list(q->dir, &ids, &n);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata snapshots in %s: %s", q->dir, rn_strerror(rc));
    int64_t log_start = rn_log_start_offset(q->log);
    size_t used = n;
    for (size_t i = 0; i < n && used == n; i++) {
        char why[256] = "";
        uint8_t *bytes = NULL;
        size_t blen = 0;
        int64_t end = -1;
        int32_t epoch = -1;
        rc = rn_snapshot_read(q->dir, ids[i], &bytes, &blen, why, sizeof(why));
        if (rc == 0)
            rc = rn_snapshot_decode(q->img, bytes, blen, &end, &epoch, why, sizeof(why));
        if (rc == 0 && (end != ids[i].end_offset || epoch != ids[i].epoch))
            rc = rn_errf(-RN_E_CORRUPT_FILE, why, sizeof(why),
                         "holds %" PRId64 "/%d, not what its name says", end, epoch);
        if (rc == 0 && end < log_start)
            rc = rn_errf(-RN_E_CORRUPT_FILE, why, sizeof(why),
                         "ends at %" PRId64 ", below the log start %" PRId64, end, log_start);
        if (rc == -ENOMEM) {
            free(bytes);
            free(ids);
            return rn_errf(rc, err, errlen, "metadata snapshot: out of memory");
        }
        if (rc < 0) {
            char qt[300];
            rn_logfmt(RN_WARN, "metadata snapshot damaged, not used",
                      "dir=%s end_offset=%" PRId64 " reason=%s", q->dir, ids[i].end_offset,
                      rn_logfmt_quote(why[0] ? why : rn_strerror(rc), qt, sizeof(qt)));
            rn_image_clear(q->img);
            free(bytes);
            continue;
        }
        used = i;
        *data = bytes;
        *len = blen;
    }
    if (used == n) {
        free(ids);
        if (log_start > 0)
            return rn_errf(-RN_E_CORRUPT_FILE, err, errlen,
                           "metadata log %s starts at offset %" PRId64
                           " and no valid snapshot covers what is below it: the metadata "
                           "cannot be rebuilt here (restore a snapshot file, or empty "
                           "the directory so this broker fetches the state from the quorum)",
                           q->dir, log_start);
        return 0;
    }
    q->snap = ids[used];
    q->prev_snap_end = used + 1 < n ? ids[used + 1].end_offset : log_start;
    free(ids);
    q->applied = q->snap.end_offset;
    q->applied_epoch = q->snap.epoch;
    rn__quorum_brokers_from_image(q);
    if (q->snap.end_offset > rn_log_end_offset(q->log)) {
        rc = rn_log_truncate_fully(q->log, q->snap.end_offset);
        if (rc < 0) {
            free(*data);
            *data = NULL;
            return rn_errf(rc, err, errlen, "metadata log %s: starting it at %" PRId64 ": %s",
                           q->dir, q->snap.end_offset, rn_strerror(rc));
        }
    }
    rn_logfmt(RN_INFO, "metadata snapshot loaded",
              "end_offset=%" PRId64 " epoch=%d topics=%u log_start=%" PRId64, q->snap.end_offset,
              q->snap.epoch, rn_image_topic_count(q->img), rn_log_start_offset(q->log));
    return 0;
}
