/*
 * quorum_journal.c — committed entries out of the metadata quorum, and the
 * journal backend the metadata facade proposes through (rn_quorum_journal_new;
 * see quorum_int.h for the other files of the quorum).
 *
 * Two threads meet here. The quorum thread posts deliveries
 * (rn__quorum_post_delivery, rn__quorum_post_snapshot) through the
 * config's post function; they run on the owner's thread (deliver_run), in
 * the order posted (quorum.c's invariant 2). The owner's appends
 * (qj_append) become proposals queued under q->lock for the quorum thread,
 * each remembered (pend) until its entry comes back committed, matched by
 * node id and token, or fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/logfmt.h"
#include "broker/meta/journal.h"
#include "broker/meta/quorum.h"
#include "broker/meta/quorum_int.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

typedef struct delivery {
    rn_quorum *q;
    bool snapshot; /* batch is a snapshot covering every entry below offset */
    int64_t offset;
    int32_t origin;
    uint64_t token;
    int err; /* < 0: the proposal `token` failed (no batch) */
    size_t len;
    uint8_t batch[]; /* len bytes; len 0: only progress */
} delivery;

static void deliver_run(void *arg);

void rn__quorum_post_delivery(rn_quorum *q, int64_t offset, int32_t origin, uint64_t token, int err,
                              const uint8_t *batch, size_t len)
{
    delivery *d = malloc(sizeof(*d) + len);
    if (!d) {
        rn_logfmt(RN_ERROR, "out of memory handing over a metadata entry", "offset=%" PRId64,
                  offset);
        return;
    }
    *d = (delivery){
        .q = q, .offset = offset, .origin = origin, .token = token, .err = err, .len = len};
    if (len)
        memcpy(d->batch, batch, len);
    if (q->cfg.post(q->cfg.post_ctx, deliver_run, d) < 0)
        free(d);
}

/* The owner's image must never go on without it: -ENOMEM stops the
 * quorum (the caller's error path). */
int rn__quorum_post_snapshot(rn_quorum *q, int64_t end, const uint8_t *data, size_t len)
{
    delivery *d = malloc(sizeof(*d) + len);
    if (!d) {
        rn_logfmt(RN_ERROR, "out of memory handing over a metadata snapshot", "end_offset=%" PRId64,
                  end);
        return -ENOMEM;
    }
    *d = (delivery){.q = q, .snapshot = true, .offset = end, .origin = -1, .len = len};
    memcpy(d->batch, data, len);
    if (q->cfg.post(q->cfg.post_ctx, deliver_run, d) < 0)
        free(d);
    return 0;
}

/* ---- The journal backend (the owner's thread) -------------------------------- */

typedef struct pend {
    struct pend *next;
    uint64_t token;
    void *batch; /* the journal's, alive until done: stamped with its offset */
    void (*done)(void *arg, int err, int64_t base_offset);
    void *arg;
} pend;

typedef struct qjournal {
    rn_quorum *q;
    rn_quorum_apply_fn apply;
    rn_quorum_install_fn install;
    void *apply_arg;
    pend *pending;
    uint64_t next_token;
    int64_t applied; /* offset after the last entry delivered here */
    char err[256];
} qjournal;

static void deliver_run(void *arg)
{
    delivery *d = arg;
    qjournal *j = d->q->qj;
    if (!j) {
        free(d);
        return;
    }
    if (d->snapshot) {
        /* Every entry below d->offset: the image is replaced whole. */
        if (d->offset > j->applied)
            j->applied = d->offset;
        j->install(j->apply_arg, d->offset, d->batch, d->len);
        free(d);
        return;
    }
    if (d->offset >= 0 && d->offset + 1 > j->applied)
        j->applied = d->offset + 1;
    pend *p = NULL;
    if (d->origin == d->q->cfg.node_id)
        for (pend **pp = &j->pending; *pp; pp = &(*pp)->next)
            if ((*pp)->token == d->token) {
                p = *pp;
                *pp = p->next;
                break;
            }
    if (d->err < 0 || (p && d->len == 0)) {
        if (p) {
            snprintf(j->err, sizeof(j->err), "%s",
                     d->err == -ETIMEDOUT ? "not committed in time (the controller changed?)"
                                          : "no active controller");
            p->done(p->arg, d->err, -1);
            free(p);
        }
    } else if (d->len) {
        /* Offsets are the metadata log's: one entry, one offset. */
        rn_batch_stamp(d->batch, d->offset, 0);
        if (p) {
            rn_batch_stamp(p->batch, d->offset, 0);
            /* The batch as committed: stamped with its entry's offset. */
            p->done(p->arg, 0, d->offset);
            free(p);
        } else {
            j->apply(j->apply_arg, d->offset, d->batch, d->len);
        }
    }
    free(d);
}

static int qj_append(void *be, void *batch, size_t len,
                     void (*done)(void *arg, int err, int64_t base_offset), void *arg)
{
    qjournal *j = be;
    rn_quorum *q = j->q;
    if (!q)
        return -ESHUTDOWN;
    if (len > MAX_CHANGE_BYTES) {
        snprintf(j->err, sizeof(j->err), "a change of %zu bytes (at most %zu)", len,
                 MAX_CHANGE_BYTES);
        return -RN_E_MESSAGE_TOO_LARGE;
    }
    pend *p = malloc(sizeof(*p));
    proposal *pr = malloc(sizeof(*pr));
    uint8_t *e = malloc(ENV_HDR + len);
    if (!p || !pr || !e) {
        free(p);
        free(pr);
        free(e);
        return -ENOMEM;
    }
    uint64_t token = ++j->next_token;
    buf h = {.p = e, .cap = ENV_HDR + len};
    put_u8(&h, ENV_BATCH);
    put_u32(&h, (uint32_t)q->cfg.node_id);
    put_u64(&h, token);
    memcpy(e + ENV_HDR, batch, len);
    *p = (pend){j->pending, token, batch, done, arg};
    j->pending = p;
    *pr = (proposal){NULL, token, mono_ms(), e, ENV_HDR + len};
    pthread_mutex_lock(&q->lock);
    if (q->props_tail)
        q->props_tail->next = pr;
    else
        q->props = pr;
    q->props_tail = pr;
    pthread_mutex_unlock(&q->lock);
    uint64_t one = 1;
    if (q->wake_fd >= 0 && write(q->wake_fd, &one, sizeof(one)) < 0) {
        /* the thread polls every POLL_MS anyway */
    }
    return 0;
}

static int qj_read(void *be, int64_t offset, size_t max_bytes, int64_t max_offset, rn_slice *out)
{
    (void)be, (void)offset, (void)max_bytes, (void)max_offset;
    memset(out, 0, sizeof(*out));
    return 0; /* committed batches come by delivery, never by replay */
}

static int64_t qj_start(void *be)
{
    (void)be;
    return 0;
}

static int64_t qj_end(void *be)
{
    (void)be;
    return 0; /* rn_journal_replay has nothing to read */
}

static int qj_flush(void *be)
{
    (void)be;
    return 0;
}

void rn__quorum_journal_detach(struct qjournal *j)
{
    j->q = NULL;
}

static int qj_close(void *be)
{
    qjournal *j = be;
    snprintf(j->err, sizeof(j->err), "the broker is stopping");
    while (j->pending) {
        pend *p = j->pending;
        j->pending = p->next;
        p->done(p->arg, -ESHUTDOWN, -1);
        free(p);
    }
    /* Deliveries still queued find no journal (deliver_run). */
    if (j->q)
        j->q->qj = NULL;
    free(j);
    return 0;
}

static const char *qj_errmsg(void *be)
{
    return ((qjournal *)be)->err;
}

static const rn_journal_backend qj_ops = {
    .append = qj_append,
    .read = qj_read,
    .start_offset = qj_start,
    .end_offset = qj_end,
    .flush = qj_flush,
    .close = qj_close,
    .errmsg = qj_errmsg,
};

int rn_quorum_journal_new(rn_quorum *q, rn_quorum_apply_fn apply, rn_quorum_install_fn install,
                          void *arg, rn_journal **out)
{
    qjournal *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->q = q;
    j->apply = apply;
    j->install = install;
    j->apply_arg = arg;
    int rc = rn_journal_new(out, &qj_ops, j);
    if (rc < 0) {
        free(j);
        return rc;
    }
    q->qj = j;
    return 0;
}

bool rn_quorum_caught_up(rn_quorum *q)
{
    int64_t t = __atomic_load_n(&q->catch_up_target, __ATOMIC_ACQUIRE);
    bool yes = t >= 0 && q->qj && q->qj->applied >= t;
    if (yes)
        __atomic_store_n(&q->owner_caught_up, true, __ATOMIC_RELEASE);
    return yes;
}
