/*
 * journal.c — the metadata journal and its local backend (see journal.h).
 *
 * Life of a submit:
 *
 *   records ──rn_batch_builder──▶ one batch ──ops->append──▶ IN FLIGHT (entry)
 *                                                              │ committed
 *                                                              ▼
 *                                 entry_done: cb(batch as committed) → free
 *
 * Invariants:
 *  1. One submit is one batch: its records commit together or not at all,
 *     and the callback sees them with the offsets the log gave them.
 *  2. Every submit that returned 0 gets exactly one callback, from the
 *     owner's event loop, never inside rn_journal_submit; one that returned
 *     an error gets none.
 *  3. The journal never interprets the records: what they mean is the
 *     image's business (image.c), what a change may be is the mutations'
 *     (metadata.c).
 *  4. Callbacks come in commit order, which is log order for both the local
 *     backend (appends complete in order) and a Raft one (commit advances
 *     monotonically).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/journal.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/sys.h"

/* One change is one batch: a topic with 100000 PartitionRecords is about
 * 4 MiB, so batches may be 8 MiB and segments twice that. */
#define LOCAL_SEGMENT_BYTES   ((uint64_t)16 << 20)
#define LOCAL_MAX_BATCH_BYTES ((uint32_t)8 << 20)
#define REPLAY_READ_BYTES     ((size_t)1 << 20)

struct rn_journal {
    const rn_journal_backend *ops;
    void *be;
};

/* One submit between append and its callback. */
typedef struct entry {
    rn_journal *j;
    uint8_t *batch;
    size_t len;
    rn_journal_cb cb;
    void *arg;
} entry;

int rn_journal_new(rn_journal **out, const rn_journal_backend *ops, void *be)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    (*out)->ops = ops;
    (*out)->be = be;
    return 0;
}

static void entry_done(void *arg, int err, int64_t base_offset)
{
    entry *e = arg;
    rn_journal *j = e->j;
    char msg[1024] = "";
    if (err < 0) {
        const char *ctx = j->ops->errmsg(j->be);
        snprintf(msg, sizeof(msg), "metadata log: append: %s%s%s", rn_strerror(err),
                 ctx[0] ? ": " : "", ctx);
    }
    /* Invariant 1: the batch as committed, offsets stamped. */
    e->cb(e->arg, err, base_offset, err < 0 ? NULL : e->batch, err < 0 ? 0 : e->len, msg);
    free(e->batch);
    free(e);
}

int rn_journal_submit(rn_journal *j, const rn_journal_rec *recs, size_t n, rn_journal_cb cb,
                      void *arg, char *err, size_t errlen)
{
    if (n == 0)
        return rn_errf(-EINVAL, err, errlen, "metadata journal: a change without records");
    entry *e = calloc(1, sizeof(*e));
    if (!e)
        return rn_errf(-ENOMEM, err, errlen, "metadata: out of memory");
    e->j = j;
    e->cb = cb;
    e->arg = arg;
    rn_batch_builder *b;
    int rc = rn_batch_builder_new(&b, NULL);
    int64_t now = rn_log_clock_ms();
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = rn_batch_builder_add(b, now, NULL, 0, recs[i].data, recs[i].len, NULL, 0);
    if (rc == 0)
        rc = rn_batch_builder_finish(b, &e->batch, &e->len);
    rn_batch_builder_free(b);
    if (rc < 0) {
        free(e);
        return rn_errf(rc, err, errlen, "metadata: encoding the change: %s", rn_strerror(rc));
    }
    rc = j->ops->append(j->be, e->batch, e->len, entry_done, e);
    if (rc < 0) {
        const char *ctx = j->ops->errmsg(j->be);
        free(e->batch);
        free(e);
        return rn_errf(rc, err, errlen, "metadata log: append: %s%s%s", rn_strerror(rc),
                       ctx[0] ? ": " : "", ctx);
    }
    return 0;
}

int rn_journal_replay(rn_journal *j, int64_t from, rn_journal_replay_fn fn, void *arg,
                      int64_t *reached, char *err, size_t errlen)
{
    int64_t end = j->ops->end_offset(j->be), next = from;
    int rc = 0;
    while (next < end) {
        rn_slice s;
        rc = j->ops->read(j->be, next, REPLAY_READ_BYTES, end, &s);
        if (rc < 0) {
            rn_errf(rc, err, errlen, "metadata log: reading offset %" PRId64 ": %s", next,
                    j->ops->errmsg(j->be));
            break;
        }
        if (s.len == 0)
            break;
        size_t pos = 0;
        while (pos < s.len) {
            rn_batch_header h;
            rc = rn_batch_peek(s.data + pos, s.len - pos, 0, &h);
            if (rc == 0 && rn_batch_size(&h) > s.len - pos)
                rc = -RN_E_BATCH_TRUNCATED;
            if (rc < 0) {
                rn_errf(rc, err, errlen, "metadata log: batch after offset %" PRId64 ": %s", next,
                        rn_strerror(rc));
                rc = -RN_E_CORRUPT_FILE;
                break;
            }
            rc = fn(arg, s.data + pos, rn_batch_size(&h));
            if (rc < 0)
                break;
            pos += rn_batch_size(&h);
        }
        /* A slice's batches all lie below its next_offset. */
        if (rc == 0 && s.next_offset > next)
            next = s.next_offset;
        rn_slice_release(&s);
        if (rc < 0)
            break;
    }
    *reached = next;
    return rc;
}

int64_t rn_journal_start_offset(const rn_journal *j)
{
    return j->ops->start_offset(j->be);
}

int64_t rn_journal_end_offset(const rn_journal *j)
{
    return j->ops->end_offset(j->be);
}

int rn_journal_flush(rn_journal *j)
{
    return j->ops->flush(j->be);
}

int rn_journal_close(rn_journal *j)
{
    int rc = j->ops->flush(j->be);
    int r = j->ops->close(j->be);
    free(j);
    return rc ? rc : r;
}

/* ---- The local backend: one rn_log, committed = durable here ---------------- */

typedef struct local_done {
    void (*done)(void *arg, int err, int64_t base_offset);
    void *arg;
} local_done;

static void local_appended(void *arg, int err, int64_t base_offset, int64_t last_offset)
{
    local_done d = *(local_done *)arg;
    free(arg);
    (void)last_offset;
    d.done(d.arg, err, base_offset);
}

static int local_append(void *be, void *batch, size_t len,
                        void (*done)(void *arg, int err, int64_t base_offset), void *arg)
{
    local_done *d = malloc(sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->done = done;
    d->arg = arg;
    int rc = rn_log_append(be, batch, len, 0, local_appended, d);
    if (rc < 0)
        free(d);
    return rc;
}

static int local_read(void *be, int64_t offset, size_t max_bytes, int64_t max_offset, rn_slice *out)
{
    return rn_log_read(be, offset, max_bytes, max_offset, out);
}

static int64_t local_start(void *be)
{
    return rn_log_start_offset(be);
}

static int64_t local_end(void *be)
{
    return rn_log_end_offset(be);
}

static int local_flush(void *be)
{
    return rn_log_flush_sync(be);
}

static int local_close(void *be)
{
    return rn_log_close(be);
}

static const char *local_errmsg(void *be)
{
    return rn_log_errmsg(be);
}

static const rn_journal_backend local_ops = {
    .append = local_append,
    .read = local_read,
    .start_offset = local_start,
    .end_offset = local_end,
    .flush = local_flush,
    .close = local_close,
    .errmsg = local_errmsg,
};

int rn_journal_open_local(rn_journal **out, rn_io *io, const char *dir, const char *name, char *err,
                          size_t errlen)
{
    *out = NULL;
    rn_log_config lc;
    rn_log_config_default(&lc);
    lc.segment_bytes = LOCAL_SEGMENT_BYTES;
    lc.max_batch_bytes = LOCAL_MAX_BATCH_BYTES;
    lc.flush = RN_FLUSH_ALWAYS; /* a change is acknowledged only once durable */
    lc.roll_ms = 0;
    lc.retention_ms = -1; /* the log is the truth: nothing may age out of it */
    lc.retention_bytes = -1;
    rn_log *log;
    rn_log_open_info info;
    int rc = rn_log_open(&log, io, dir, name, &lc, &info);
    if (rc < 0)
        return rn_errf(rc, err, errlen, "metadata log %s: open: %s", dir, rn_strerror(rc));
    rc = rn_journal_new(out, &local_ops, log);
    if (rc < 0) {
        rn_log_close(log);
        return rn_errf(rc, err, errlen, "metadata: out of memory");
    }
    return 0;
}
