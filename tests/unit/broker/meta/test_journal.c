/*
 * test_journal.c — the metadata journal (broker/meta/journal.h): a submit
 * calls back once, after the backend commits, never inside the submit, with
 * the records as one batch at the committed offset; failures at submit and
 * at commit reach the caller with a message; the local backend (the
 * metadata log) replays what it committed after a reopen.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/journal.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"

/* ---- A fake backend: commits only when the test says so ---------------------- */

#define FAKE_MAX 8

typedef struct fake {
    int append_rc; /* returned by append when negative */
    unsigned n;    /* appends started */
    struct {
        void *batch;
        size_t len;
        void (*done)(void *arg, int err, int64_t base_offset);
        void *arg;
    } q[FAKE_MAX];
    int64_t next_offset;
    int closed;
} fake;

static int fake_append(void *be, void *batch, size_t len,
                       void (*done)(void *arg, int err, int64_t base_offset), void *arg)
{
    fake *f = be;
    if (f->append_rc < 0)
        return f->append_rc;
    cr_assert_lt(f->n, FAKE_MAX);
    f->q[f->n].batch = batch;
    f->q[f->n].len = len;
    f->q[f->n].done = done;
    f->q[f->n].arg = arg;
    f->n++;
    return 0;
}

static int fake_read(void *be, int64_t offset, size_t max_bytes, int64_t max_offset, rn_slice *out)
{
    (void)be;
    (void)offset;
    (void)max_bytes;
    (void)max_offset;
    memset(out, 0, sizeof(*out));
    return 0;
}

static int64_t fake_start(void *be)
{
    (void)be;
    return 0;
}

static int64_t fake_end(void *be)
{
    return ((fake *)be)->next_offset;
}

static int fake_flush(void *be)
{
    (void)be;
    return 0;
}

static int fake_close(void *be)
{
    ((fake *)be)->closed++;
    return 0;
}

static const char *fake_errmsg(void *be)
{
    (void)be;
    return "disk on fire";
}

static const rn_journal_backend fake_ops = {
    .append = fake_append,
    .read = fake_read,
    .start_offset = fake_start,
    .end_offset = fake_end,
    .flush = fake_flush,
    .close = fake_close,
    .errmsg = fake_errmsg,
};

/* Commit append i: stamp its offset as a log would, then call done. */
static void fake_commit(fake *f, unsigned i, int err)
{
    int64_t base = f->next_offset;
    if (err == 0) {
        rn_batch_stamp(f->q[i].batch, base, 0);
        rn_batch_header h;
        cr_assert_eq(rn_batch_peek(f->q[i].batch, f->q[i].len, 0, &h), 0);
        f->next_offset += h.last_offset_delta + 1;
    }
    f->q[i].done(f->q[i].arg, err, err ? -1 : base);
}

/* ---- What the callback saw --------------------------------------------------- */

typedef struct seen {
    int fired;
    int err;
    int64_t base;
    char values[4][16];
    unsigned n_values;
    int64_t offsets[4];
    char msg[256];
} seen;

static void on_commit(void *arg, int err, int64_t base_offset, const uint8_t *batch, size_t len,
                      const char *errmsg)
{
    seen *s = arg;
    s->fired++;
    s->err = err;
    s->base = base_offset;
    snprintf(s->msg, sizeof(s->msg), "%s", errmsg ? errmsg : "");
    if (err) {
        cr_assert_null(batch);
        return;
    }
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, batch, len, 0), 0);
    rn_record rec;
    while (rn_batch_iter_next(&it, &rec) == 1 && s->n_values < 4) {
        snprintf(s->values[s->n_values], sizeof(s->values[0]), "%.*s", (int)rec.value_len,
                 (const char *)rec.value);
        s->offsets[s->n_values++] = rec.offset;
    }
    rn_batch_iter_fini(&it);
}

static const rn_journal_rec two[] = {{"alpha", 5}, {"beta", 4}};

Test(journal, submit_calls_back_after_commit_with_the_batch)
{
    fake f = {0};
    f.next_offset = 40;
    rn_journal *j;
    cr_assert_eq(rn_journal_new(&j, &fake_ops, &f), 0);
    seen a = {0}, b = {0};
    char err[256];
    cr_assert_eq(rn_journal_submit(j, two, 2, on_commit, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_journal_submit(j, two + 1, 1, on_commit, &b, err, sizeof(err)), 0);
    cr_assert_eq(a.fired + b.fired, 0, "no callback before the backend commits");
    cr_assert_eq(f.n, 2, "one append per submit: a change is one batch");

    fake_commit(&f, 0, 0);
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(b.fired, 0);
    cr_assert_eq(a.err, 0);
    cr_assert_eq(a.base, 40);
    cr_assert_eq(a.n_values, 2);
    cr_assert_str_eq(a.values[0], "alpha");
    cr_assert_str_eq(a.values[1], "beta");
    cr_assert_eq(a.offsets[0], 40, "records carry the committed offsets");
    cr_assert_eq(a.offsets[1], 41);

    fake_commit(&f, 1, 0);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(b.base, 42);
    cr_assert_str_eq(b.values[0], "beta");
    cr_assert_eq(rn_journal_end_offset(j), 43);
    cr_assert_eq(rn_journal_close(j), 0);
    cr_assert_eq(f.closed, 1);
}

Test(journal, failures_reach_the_caller)
{
    fake f = {0};
    rn_journal *j;
    cr_assert_eq(rn_journal_new(&j, &fake_ops, &f), 0);
    seen a = {0}, b = {0};
    char err[256] = "";

    /* No records: refused at once, no callback. */
    cr_assert_eq(rn_journal_submit(j, two, 0, on_commit, &a, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "without records"), "%s", err);

    /* The backend refuses the append: the error at once, with its context. */
    f.append_rc = -EIO;
    cr_assert_eq(rn_journal_submit(j, two, 2, on_commit, &a, err, sizeof(err)), -EIO);
    cr_assert(strstr(err, "disk on fire"), "%s", err);
    cr_assert_eq(f.n, 0);

    /* The append starts but does not commit: one callback with the error. */
    f.append_rc = 0;
    cr_assert_eq(rn_journal_submit(j, two, 2, on_commit, &b, err, sizeof(err)), 0);
    fake_commit(&f, 0, -RN_E_LOG_FAILED);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(b.err, -RN_E_LOG_FAILED);
    cr_assert(strstr(b.msg, "disk on fire"), "%s", b.msg);
    cr_assert_eq(a.fired, 0, "a refused submit never calls back");
    cr_assert_eq(rn_journal_close(j), 0);
}

/* ---- The local backend: the metadata log -------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

typedef struct replayed {
    unsigned batches;
    seen s[4];
} replayed;

static int on_replay(void *arg, const uint8_t *batch, size_t len)
{
    replayed *r = arg;
    cr_assert_lt(r->batches, 4);
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(batch, len, 0, &h), 0);
    on_commit(&r->s[r->batches++], 0, h.base_offset, batch, len, "");
    return 0;
}

Test(journal, local_log_commits_and_replays)
{
    rn_io *io;
    cr_assert_eq(rn_io_new(&io, 64), 0);
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/rn-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));

    rn_journal *j;
    char err[256];
    cr_assert_eq(rn_journal_open_local(&j, io, dir, "md-0", err, sizeof(err)), 0, "%s", err);
    seen a = {0}, b = {0};
    cr_assert_eq(rn_journal_submit(j, two, 2, on_commit, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rn_journal_submit(j, two + 1, 1, on_commit, &b, err, sizeof(err)), 0);
    cr_assert_eq(a.fired + b.fired, 0, "never inside the submit");
    for (int i = 0; i < 1000 && !(a.fired && b.fired); i++) {
        int rc = rn_io_run(io, 1);
        cr_assert(rc >= 0 || rc == -EINTR, "rn_io_run: %d", rc);
    }
    cr_assert_eq(a.fired, 1);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(a.err, 0, "%s", a.msg);
    cr_assert_eq(a.base, 0);
    cr_assert_eq(b.base, 2);
    cr_assert_eq(rn_journal_end_offset(j), 3);
    cr_assert_eq(rn_journal_close(j), 0);

    /* Reopened: the committed batches come back in order. */
    cr_assert_eq(rn_journal_open_local(&j, io, dir, "md-0", err, sizeof(err)), 0, "%s", err);
    replayed r = {0};
    int64_t reached = -1;
    cr_assert_eq(rn_journal_replay(j, 0, on_replay, &r, &reached, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(reached, 3);
    cr_assert_eq(r.batches, 2);
    cr_assert_str_eq(r.s[0].values[1], "beta");
    cr_assert_eq(r.s[1].offsets[0], 2);
    cr_assert_str_eq(r.s[1].values[0], "beta");
    cr_assert_eq(rn_journal_close(j), 0);

    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    rn_io_free(io);
}
