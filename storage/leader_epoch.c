/*
 * leader_epoch.c — the leader-epoch cache and its checkpoint file (see
 * leader_epoch.h for the format and the contract).
 *
 * Invariants:
 *  1. Entries are sorted: epochs strictly increasing, start offsets
 *     non-decreasing (Kafka's LeaderEpochFileCache keeps the same).
 *  2. Outside a hold, the file holds exactly the entries in memory once a
 *     mutator returns 0 or 1; a mutator whose write fails restores the
 *     entries it had, so a caller that refuses the append (or truncation)
 *     on that error leaves memory, file and log in agreement.
 *  3. When the file is written is the owner's choice (a hold defers
 *     writes). The partition log's rules (log.c, "Leader epochs") keep the
 *     file complete for every segment recovery trusts, and re-derive the
 *     epochs of the segments it verifies from their batch headers.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "protocol/errors.h"
#include "storage/leader_epoch.h"
#include "storage/sys.h"

struct rn_leader_epochs {
    rn_leader_epoch_entry *v;
    unsigned n, cap;
    bool held, dirty;
    char *dir;
};

/* Longest line: "-2147483648 9223372036854775807\n". */
#define LINE_MAX_LEN 33
/* Largest file a parser accepts: every entry at its longest, and the rest. */
#define FILE_MAX_LEN (64 + (size_t)RN_LEADER_EPOCH_MAX_ENTRIES * LINE_MAX_LEN)

/* ---- The bytes ------------------------------------------------------------- */

int rn_leader_epochs_encode(const rn_leader_epoch_entry *v, unsigned n, char *buf, size_t cap)
{
    size_t len = 0;
    int w = snprintf(buf, cap, "0\n%u\n", n);
    if (w < 0 || (size_t)w >= cap)
        return -ENOSPC;
    len = (size_t)w;
    for (unsigned i = 0; i < n; i++) {
        w = snprintf(buf + len, cap - len, "%" PRId32 " %" PRId64 "\n", v[i].epoch,
                     v[i].start_offset);
        if (w < 0 || (size_t)w >= cap - len)
            return -ENOSPC;
        len += (size_t)w;
    }
    uint64_t sum = XXH3_64bits(buf, len);
    w = snprintf(buf + len, cap - len, "xxh3 %016" PRIx64 "\n", sum);
    if (w < 0 || (size_t)w >= cap - len)
        return -ENOSPC;
    return (int)(len + (size_t)w);
}

/* A decimal number at *p (optional '-'), ending at `stop`; bounds-checked
 * against [lo, hi] and against `end`. Advances *p past the stop character. */
static bool parse_num(const char **p, const char *end, char stop, int64_t lo, int64_t hi,
                      int64_t *out)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg)
        s++;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    int64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        s++;
    }
    if (s >= end || *s != stop)
        return false;
    if (neg)
        v = -v;
    if (v < lo || v > hi)
        return false;
    *out = v;
    *p = s + 1;
    return true;
}

int rn_leader_epochs_decode(const char *buf, size_t len, rn_leader_epoch_entry **out,
                            unsigned *n_out)
{
    const char *p = buf, *end = buf + len;
    int64_t version = 0, n = 0;
    *out = NULL;
    *n_out = 0;
    if (!parse_num(&p, end, '\n', 0, 0, &version) ||
        !parse_num(&p, end, '\n', 0, RN_LEADER_EPOCH_MAX_ENTRIES, &n))
        return -RN_E_CORRUPT_FILE;
    /* Each entry needs at least 4 bytes ("0 0\n"): check before allocating. */
    if ((size_t)(end - p) < (size_t)n * 4)
        return -RN_E_CORRUPT_FILE;
    rn_leader_epoch_entry *v = n ? malloc((size_t)n * sizeof(*v)) : NULL;
    if (n && !v)
        return -ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        int64_t e = 0, off = 0;
        if (!parse_num(&p, end, ' ', 0, INT32_MAX, &e) ||
            !parse_num(&p, end, '\n', 0, INT64_MAX, &off))
            goto bad;
        v[i].epoch = (int32_t)e;
        v[i].start_offset = off;
        if (i > 0 && (v[i].epoch <= v[i - 1].epoch || off < v[i - 1].start_offset))
            goto bad; /* invariant 1 */
    }
    /* The checksum line covers everything before it and ends the file. */
    size_t body = (size_t)(p - buf);
    char want[32];
    int w = snprintf(want, sizeof(want), "xxh3 %016" PRIx64 "\n", XXH3_64bits(buf, body));
    if ((size_t)(end - p) != (size_t)w || memcmp(p, want, (size_t)w) != 0)
        goto bad;
    *out = v;
    *n_out = (unsigned)n;
    return 0;
bad:
    free(v);
    return -RN_E_CORRUPT_FILE;
}

/* ---- The file -------------------------------------------------------------- */

int rn_leader_epochs_write(rn_leader_epochs *c)
{
    size_t cap = 64 + (size_t)c->n * LINE_MAX_LEN;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int len = rn_leader_epochs_encode(c->v, c->n, buf, cap);
    char path[PATH_MAX], tmp[PATH_MAX];
    int rc = len < 0 ? len : 0;
    if (rc == 0 &&
        (snprintf(path, sizeof(path), "%s/%s", c->dir, RN_LEADER_EPOCH_FILE) >= (int)sizeof(path) ||
         snprintf(tmp, sizeof(tmp), "%s/%s.tmp", c->dir, RN_LEADER_EPOCH_FILE) >= (int)sizeof(tmp)))
        rc = -ENAMETOOLONG;
    if (rc < 0) {
        free(buf);
        return rc;
    }
    rc = rn_sys_replace_file(tmp, path, c->dir, buf, (size_t)len, RN_REPLACE_LAZY);
    free(buf);
    if (rc == 0)
        c->dirty = false;
    return rc;
}

int rn_leader_epochs_open(rn_leader_epochs **out, const char *dir)
{
    rn_leader_epochs *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->dir = strdup(dir);
    if (!c->dir) {
        free(c);
        return -ENOMEM;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, RN_LEADER_EPOCH_FILE) >= (int)sizeof(path)) {
        rn_leader_epochs_free(c);
        return -ENAMETOOLONG;
    }
    int fd = rn_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd == -ENOENT) {
        *out = c;
        return 1;
    }
    if (fd < 0) {
        rn_leader_epochs_free(c);
        return fd;
    }
    /* One byte more than the largest valid file: a longer one is corrupt. */
    char *buf = malloc(FILE_MAX_LEN + 1);
    ssize_t got = buf ? rn_sys_pread_all(fd, buf, FILE_MAX_LEN + 1, 0) : -ENOMEM;
    rn_sys_close(fd);
    if (got < 0) {
        free(buf);
        rn_leader_epochs_free(c);
        return (int)got;
    }
    int rc = (size_t)got > FILE_MAX_LEN ? -RN_E_CORRUPT_FILE
                                        : rn_leader_epochs_decode(buf, (size_t)got, &c->v, &c->n);
    free(buf);
    if (rc == -ENOMEM) {
        rn_leader_epochs_free(c);
        return rc;
    }
    c->cap = c->n;
    *out = c;
    return rc; /* 0, or -RN_E_CORRUPT_FILE with an empty cache */
}

void rn_leader_epochs_free(rn_leader_epochs *c)
{
    if (!c)
        return;
    free(c->v);
    free(c->dir);
    free(c);
}

int rn_leader_epochs_flush(rn_leader_epochs *c)
{
    return c->dirty ? rn_leader_epochs_write(c) : 0;
}

int rn_leader_epochs_hold(rn_leader_epochs *c, bool hold)
{
    c->held = hold;
    if (!hold && c->dirty)
        return rn_leader_epochs_write(c);
    return 0;
}

/* ---- Changes --------------------------------------------------------------- */

/* The entries before a change, to put back when its write fails (invariant 2). */
typedef struct saved {
    rn_leader_epoch_entry *v;
    unsigned n;
} saved;

static int save(const rn_leader_epochs *c, saved *s)
{
    s->n = c->n;
    s->v = NULL;
    if (c->n == 0)
        return 0;
    s->v = malloc(c->n * sizeof(*s->v));
    if (!s->v)
        return -ENOMEM;
    memcpy(s->v, c->v, c->n * sizeof(*s->v));
    return 0;
}

/* Write the change (or note it, when held); on failure restore s. Frees s. */
static int commit(rn_leader_epochs *c, saved *s)
{
    int rc = 0;
    c->dirty = true;
    if (!c->held)
        rc = rn_leader_epochs_write(c);
    if (rc < 0) {
        memcpy(c->v, s->v, s->n * sizeof(*s->v)); /* cap >= s->n: the array only grew */
        c->n = s->n;
        c->dirty = false;
    }
    free(s->v);
    return rc < 0 ? rc : 1;
}

int rn_leader_epochs_assign(rn_leader_epochs *c, int32_t epoch, int64_t start_offset)
{
    if (epoch < 0 || start_offset < 0)
        return 0;
    if (c->n > 0) {
        const rn_leader_epoch_entry *last = &c->v[c->n - 1];
        if (last->epoch == epoch && start_offset >= last->start_offset)
            return 0;
    }
    if (c->n == c->cap) {
        unsigned cap = c->cap ? c->cap * 2 : 4;
        rn_leader_epoch_entry *v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    saved s;
    int rc = save(c, &s);
    if (rc < 0)
        return rc;
    while (c->n > 0 &&
           (c->v[c->n - 1].epoch >= epoch || c->v[c->n - 1].start_offset >= start_offset))
        c->n--;
    c->v[c->n++] = (rn_leader_epoch_entry){epoch, start_offset};
    return commit(c, &s);
}

int rn_leader_epochs_truncate_from_end(rn_leader_epochs *c, int64_t end_offset)
{
    if (c->n == 0 || c->v[c->n - 1].start_offset < end_offset)
        return 0;
    saved s;
    int rc = save(c, &s);
    if (rc < 0)
        return rc;
    while (c->n > 0 && c->v[c->n - 1].start_offset >= end_offset)
        c->n--;
    return commit(c, &s);
}

int rn_leader_epochs_truncate_from_start(rn_leader_epochs *c, int64_t start_offset)
{
    unsigned k = 0; /* entries that start at or before start_offset */
    while (k < c->n && c->v[k].start_offset <= start_offset)
        k++;
    if (k == 0 || (k == 1 && c->v[0].start_offset == start_offset))
        return 0;
    saved s;
    int rc = save(c, &s);
    if (rc < 0)
        return rc;
    /* The latest of them covers start_offset: it stays, clamped. */
    rn_leader_epoch_entry first = {c->v[k - 1].epoch, start_offset};
    memmove(c->v + 1, c->v + k, (c->n - k) * sizeof(*c->v));
    c->v[0] = first;
    c->n -= k - 1;
    return commit(c, &s);
}

int rn_leader_epochs_clear(rn_leader_epochs *c)
{
    if (c->n == 0)
        return 0;
    saved s;
    int rc = save(c, &s);
    if (rc < 0)
        return rc;
    c->n = 0;
    return commit(c, &s);
}

/* ---- Questions ------------------------------------------------------------- */

void rn_leader_epochs_end_offset_for(const rn_leader_epochs *c, int32_t epoch, int64_t leo,
                                     int32_t *out_epoch, int64_t *out_end_offset)
{
    *out_epoch = RN_EPOCH_UNDEFINED;
    *out_end_offset = RN_EPOCH_OFFSET_UNDEFINED;
    if (epoch < 0 || c->n == 0)
        return;
    if (c->v[c->n - 1].epoch == epoch) {
        *out_epoch = epoch;
        *out_end_offset = leo;
        return;
    }
    /* The first entry with an epoch above the one asked for. */
    unsigned lo = 0, hi = c->n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (c->v[mid].epoch <= epoch)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->n)
        return; /* newer than the latest: no such epoch here */
    *out_epoch = lo == 0 ? epoch : c->v[lo - 1].epoch;
    *out_end_offset = c->v[lo].start_offset;
}

int32_t rn_leader_epochs_latest(const rn_leader_epochs *c)
{
    return c->n ? c->v[c->n - 1].epoch : RN_EPOCH_UNDEFINED;
}

unsigned rn_leader_epochs_count(const rn_leader_epochs *c)
{
    return c->n;
}

rn_leader_epoch_entry rn_leader_epochs_get(const rn_leader_epochs *c, unsigned i)
{
    return c->v[i];
}
