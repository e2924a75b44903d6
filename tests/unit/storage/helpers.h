/*
 * helpers.h — shared helpers of the storage recovery, fault and crash tests.
 *
 * Header-only (static inline): each test_*.c is its own executable.
 *
 *  - Scratch directories under /tmp (mkdtemp) and their removal.
 *  - Deterministic record batches (th_batch_new): content derives from a seed,
 *    so a test can rebuild or compare what it appended.
 *  - th_read_all: the whole log read back through rn_log_read, checking what
 *    every consumer relies on (contiguous offsets, every batch verifies).
 *  - Small file helpers to damage a log on disk (truncate, flip, overwrite).
 *  - With TH_CRASH_LAYER defined before the include: a crash simulator in the
 *    style of SQLite's test6.c. It remembers the content of every file as of
 *    its last fdatasync and, at a "crash", keeps, drops (back to the synced
 *    bytes) or garbles (random bytes) each 512-byte sector written since.
 *    Garbling touches only the bytes that changed since the sync: the model
 *    assumes power-safe overwrite (as SQLite does by default), since no
 *    append-only log survives a device that corrupts synced bytes sharing a
 *    sector with a torn write. Synchronous
 *    fdatasyncs are seen through the rn_sys table; the asynchronous ones the
 *    log submits through io_uring are seen by interposing io_uring_submit and
 *    io_uring_submit_and_wait and reading the SQEs about to be submitted. A
 *    file's content is snapshotted when its fdatasync starts and becomes the
 *    durable image only when the fdatasync completes (for io_uring: when its
 *    completion is in the CQ ring), so an acknowledgement given before the
 *    sync that covers it has finished is caught.
 *    Metadata (file sizes, creates, renames, unlinks) is taken as durable at
 *    once: the model is lenient there and strict about data. Since the model
 *    decides what survives, the real fdatasyncs can be skipped (fake_sync):
 *    the sync ones return 0 at once and the io_uring ones become NOPs, which
 *    keeps hundreds of fault runs fast on a real disk.
 */
#ifndef RN_TEST_STORAGE_HELPERS_H
#define RN_TEST_STORAGE_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"
#include "storage/sys.h"

/* ---- Randomness (deterministic: every test seeds its own) ----------------- */

static inline uint64_t th_rand(uint64_t *s)
{
    /* xorshift64*: small, fast, good enough to pick cut points and bytes. */
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static inline uint64_t th_rand_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
    return lo + th_rand(s) % (hi - lo + 1);
}

/* ---- Scratch directories -------------------------------------------------- */

/* A new empty directory /tmp/rn-<tag>-XXXXXX; the caller frees the string. */
static inline char *th_tmpdir(const char *tag)
{
    char *p = malloc(64);
    cr_assert_not_null(p);
    snprintf(p, 64, "/tmp/rn-%s-XXXXXX", tag);
    cr_assert_not_null(mkdtemp(p), "mkdtemp: %s", strerror(errno));
    return p;
}

static inline int th__rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* rm -rf path (missing is fine). */
static inline void th_rmrf(const char *path)
{
    nftw(path, th__rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir/name into buf (PATH_MAX bytes). */
static inline char *th_path(char *buf, const char *dir, const char *name)
{
    int n = snprintf(buf, 4096, "%s/%s", dir, name);
    cr_assert(n > 0 && n < 4096, "path too long");
    return buf;
}

/* dir/<20-digit base>.ext into buf. */
static inline char *th_seg_path(char *buf, const char *dir, int64_t base, const char *ext)
{
    int n = snprintf(buf, 4096, "%s/%020" PRId64 "%s", dir, base, ext);
    cr_assert(n > 0 && n < 4096, "path too long");
    return buf;
}

/* ---- Files ---------------------------------------------------------------- */

static inline uint8_t *th_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    cr_assert_not_null(buf);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);
        cr_assert_gt(n, 0, "read %s: %s", path, strerror(errno));
        done += (size_t)n;
    }
    close(fd);
    *len = done;
    return buf;
}

static inline void th_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len, "write %s", path);
    close(fd);
}

/* Overwrite len bytes at pos (extending the file if needed). */
static inline void th_write_at(const char *path, uint64_t pos, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, buf, len, (off_t)pos), (ssize_t)len, "write %s", path);
    close(fd);
}

static inline uint8_t th_byte_at(const char *path, uint64_t pos)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    uint8_t b = 0;
    cr_assert_eq(pread(fd, &b, 1, (off_t)pos), 1, "read %s at %" PRIu64, path, pos);
    close(fd);
    return b;
}

static inline uint64_t th_file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

static inline bool th_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Copy the regular files of src (flat) into dst, which is created. */
static inline void th_copy_dir(const char *src, const char *dst)
{
    cr_assert(mkdir(dst, 0755) == 0 || errno == EEXIST, "mkdir %s", dst);
    DIR *d = opendir(src);
    cr_assert_not_null(d, "opendir %s", src);
    struct dirent *e;
    char from[4096], to[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len;
        uint8_t *buf = th_read_file(th_path(from, src, e->d_name), &len);
        th_write_file(th_path(to, dst, e->d_name), buf, len);
        free(buf);
    }
    closedir(d);
}

/* Base offsets of the .log files in dir, ascending; returns the count. */
static inline unsigned th_list_segments(const char *dir, int64_t *bases, unsigned max)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 24 || strcmp(e->d_name + 20, ".log") != 0)
            continue;
        cr_assert_lt(n, max);
        bases[n++] = strtoll(e->d_name, NULL, 10);
    }
    closedir(d);
    for (unsigned i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (unsigned j = i; j > 0 && bases[j - 1] > bases[j]; j--) {
            int64_t t = bases[j];
            bases[j] = bases[j - 1];
            bases[j - 1] = t;
        }
    return n;
}

static inline uint64_t th_count_nonzero(const uint8_t *p, size_t len)
{
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += p[i] != 0;
    return n;
}

static inline int64_t th_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static inline int32_t th_be32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* ---- Batches -------------------------------------------------------------- */

/* A batch of n_records records; keys, values (value_len bytes each) and
 * timestamps derive from seed. The caller frees it. */
static inline uint8_t *th_batch_new(uint64_t seed, int n_records, size_t value_len, size_t *len)
{
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    uint64_t s = seed * 2654435761u + 1;
    uint8_t *val = malloc(value_len ? value_len : 1);
    cr_assert_not_null(val);
    for (int r = 0; r < n_records; r++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%" PRIu64 "-%d", seed, r);
        for (size_t i = 0; i < value_len; i++)
            val[i] = (uint8_t)th_rand(&s);
        int64_t ts = 1700000000000LL + (int64_t)seed * 10 + r;
        cr_assert_eq(rn_batch_builder_add(b, ts, key, (size_t)klen, val, value_len, NULL, 0), 0);
    }
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    free(val);
    return out;
}

/* One batch as it is (or should be) in the log. */
typedef struct th_batch {
    int64_t base, last;
    uint8_t *data;
    size_t len;
} th_batch;

typedef struct th_batches {
    th_batch *v;
    size_t n, cap;
} th_batches;

static inline void th_batches_push(th_batches *b, const void *data, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = realloc(b->v, b->cap * sizeof(*b->v));
        cr_assert_not_null(b->v);
    }
    th_batch *t = &b->v[b->n++];
    t->data = malloc(len);
    cr_assert_not_null(t->data);
    memcpy(t->data, data, len);
    t->len = len;
    t->base = th_be64(t->data + RN_BATCH_OFF_BASE_OFFSET);
    t->last = t->base + th_be32(t->data + RN_BATCH_OFF_LAST_OFFSET_DELTA);
}

static inline void th_batches_free(th_batches *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i].data);
    free(b->v);
    memset(b, 0, sizeof(*b));
}

/* Read the whole log [start, leo) through rn_log_read in slices of at most
 * max_bytes. Fails the test unless offsets are contiguous, every batch passes
 * rn_batch_verify and the reads end exactly at the log end offset. */
static inline void th_read_all(rn_log *log, size_t max_bytes, th_batches *out)
{
    int64_t off = rn_log_start_offset(log), leo = rn_log_end_offset(log);
    while (off < leo) {
        rn_slice s;
        int rc = rn_log_read(log, off, max_bytes, leo, &s);
        cr_assert_eq(rc, 0, "read at %" PRId64 " (leo %" PRId64 "): %s (%s)", off, leo,
                     rn_strerror(rc), rn_log_errmsg(log));
        cr_assert_gt(s.len, 0, "empty slice at %" PRId64 " below leo %" PRId64, off, leo);
        cr_assert_eq(s.base_offset, off);
        size_t p = 0;
        int64_t next = off;
        while (p < s.len) {
            rn_batch_header h;
            cr_assert_eq(rn_batch_peek(s.data + p, s.len - p, 0, &h), 0);
            cr_assert_leq(rn_batch_size(&h), s.len - p);
            cr_assert_eq(h.base_offset, next, "offset gap: batch at %" PRId64 ", expected %" PRId64,
                         h.base_offset, next);
            rc = rn_batch_verify(s.data + p, rn_batch_size(&h), 0, 0);
            cr_assert_eq(rc, 0, "batch %" PRId64 " does not verify: %s", h.base_offset,
                         rn_strerror(rc));
            th_batches_push(out, s.data + p, rn_batch_size(&h));
            next = h.base_offset + h.last_offset_delta + 1;
            p += rn_batch_size(&h);
        }
        cr_assert_eq(s.next_offset, next);
        off = next;
        rn_slice_release(&s);
    }
    cr_assert_eq(off, leo);
}

/* got must be exactly want[0, n) byte for byte. */
static inline void th_expect_batches(const th_batches *got, const th_batches *want, size_t n,
                                     const char *what)
{
    cr_assert_eq(got->n, n, "%s: %zu batches read back, expected %zu", what, got->n, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got->v[i].base, want->v[i].base, "%s: batch %zu base", what, i);
        cr_assert_eq(got->v[i].len, want->v[i].len, "%s: batch %zu length", what, i);
        cr_assert(memcmp(got->v[i].data, want->v[i].data, want->v[i].len) == 0,
                  "%s: batch %zu (offset %" PRId64 ") differs", what, i, want->v[i].base);
    }
}

/* A ring for the tests, or a skip where io_uring is not available. */
static inline rn_io *th_io_new(void)
{
    rn_io *io;
    int rc = rn_io_new(&io, 64);
    if (rc == -ENOSYS || rc == -EPERM)
        cr_skip_test("io_uring unavailable here: %s", strerror(-rc));
    cr_assert_eq(rc, 0, "rn_io_new: %s", strerror(-rc));
    return io;
}

/* Small segments and a short index interval, so a few KiB of batches make
 * several segments and index entries. */
static inline void th_config(rn_log_config *c, uint64_t segment_bytes, enum rn_flush_policy flush)
{
    rn_log_config_default(c);
    c->segment_bytes = segment_bytes;
    c->index_interval_bytes = 512;
    c->flush = flush;
    c->roll_ms = 0;
    c->retention_ms = -1;
    c->retention_bytes = -1;
}

/* ---- Crash simulation (SQLite test6.c style) ------------------------------- */

#ifdef TH_CRASH_LAYER
#include <dlfcn.h>
#include <pthread.h>
#include <liburing.h>

#define TH_SECTOR 512

/* What a file held at its last completed fdatasync, by inode; or (pending)
 * what it held when an io_uring fdatasync not yet completed was submitted. */
typedef struct th_image {
    dev_t dev;
    ino_t ino;
    uint8_t *data;
    size_t len;
    uint64_t seq;       /* order of the snapshots: an older one never wins */
    uint64_t user_data; /* pending: the SQE's, to find its completion */
} th_image;

static struct {
    bool active;
    bool fake_sync;
    struct rn_sys saved;
    th_image *img, *pend;
    size_t n_img, cap_img, n_pend, cap_pend;
    uint64_t seq;
    struct io_uring *ring; /* the ring whose completions are followed */
    unsigned cq_seen;      /* CQ ring position looked at so far */
    unsigned n_syncs;      /* fdatasyncs of regular files that completed */
    pthread_t owner;       /* the thread that runs the test's ring */
} th_crash;

/* The log seals rolled segments on the offload worker (storage/offload.h),
 * so the hooks below run on two threads: one lock around the model. */
static pthread_mutex_t th_crash_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static inline th_image *th__crash_find(dev_t dev, ino_t ino, bool add)
{
    for (size_t i = 0; i < th_crash.n_img; i++)
        if (th_crash.img[i].dev == dev && th_crash.img[i].ino == ino)
            return &th_crash.img[i];
    if (!add)
        return NULL;
    if (th_crash.n_img == th_crash.cap_img) {
        th_crash.cap_img = th_crash.cap_img ? th_crash.cap_img * 2 : 32;
        th_crash.img = realloc(th_crash.img, th_crash.cap_img * sizeof(*th_crash.img));
    }
    th_image *im = &th_crash.img[th_crash.n_img++];
    memset(im, 0, sizeof(*im));
    im->dev = dev;
    im->ino = ino;
    return im;
}

static inline void th__crash_forget(dev_t dev, ino_t ino)
{
    th_image *im = th__crash_find(dev, ino, false);
    if (im) {
        free(im->data);
        *im = th_crash.img[--th_crash.n_img];
    }
    for (size_t i = 0; i < th_crash.n_pend;) {
        if (th_crash.pend[i].dev == dev && th_crash.pend[i].ino == ino) {
            free(th_crash.pend[i].data);
            th_crash.pend[i] = th_crash.pend[--th_crash.n_pend];
        } else {
            i++;
        }
    }
}

/* Read what fd holds now into a new snapshot. */
static inline bool th__crash_snapshot(int fd, th_image *out)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    memset(out, 0, sizeof(*out));
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    out->data = malloc(st.st_size ? (size_t)st.st_size : 1);
    cr_assert_not_null(out->data);
    while (out->len < (size_t)st.st_size) {
        ssize_t n = pread(fd, out->data + out->len, (size_t)st.st_size - out->len, (off_t)out->len);
        if (n <= 0)
            break;
        out->len += (size_t)n;
    }
    out->seq = ++th_crash.seq;
    return true;
}

/* A completed fdatasync made snap durable (takes ownership of its data). */
static inline void th__crash_commit(th_image *snap)
{
    th_image *im = th__crash_find(snap->dev, snap->ino, true);
    if (im->data && im->seq > snap->seq) {
        free(snap->data); /* a later sync of the file completed first */
        return;
    }
    free(im->data);
    im->data = snap->data;
    im->len = snap->len;
    im->seq = snap->seq;
    th_crash.n_syncs++;
}

/* Completions posted since the last look: their fdatasyncs are done. */
static inline void th__crash_scan_cq(void)
{
    struct io_uring *ring = th_crash.ring;
    if (!ring)
        return;
    unsigned tail = __atomic_load_n(ring->cq.ktail, __ATOMIC_ACQUIRE);
    for (; th_crash.cq_seen != tail; th_crash.cq_seen++) {
        struct io_uring_cqe *cqe = &ring->cq.cqes[th_crash.cq_seen & *ring->cq.kring_mask];
        for (size_t i = 0; i < th_crash.n_pend; i++) {
            if (th_crash.pend[i].user_data != cqe->user_data)
                continue;
            th_image snap = th_crash.pend[i];
            th_crash.pend[i] = th_crash.pend[--th_crash.n_pend];
            if (cqe->res < 0)
                free(snap.data); /* a failed sync made nothing durable */
            else
                th__crash_commit(&snap);
            break;
        }
    }
}

/* What fd holds now is durable (the file was synced, or exists at start). */
static inline void th_crash_note_sync(int fd)
{
    th_image snap;
    if (th_crash.active && th__crash_snapshot(fd, &snap))
        th__crash_commit(&snap);
}

static int th__crash_fdatasync_unlocked(int fd)
{
    /* Snapshot first: the kernel persists at least what the page cache holds
     * when the call starts; it is durable once the call returns 0. */
    th_image snap;
    bool ok = th__crash_snapshot(fd, &snap);
    int rc = th_crash.fake_sync ? 0 : th_crash.saved.fdatasync(fd);
    if (ok && rc == 0)
        th__crash_commit(&snap);
    else if (ok)
        free(snap.data);
    return rc;
}

static int th__crash_ftruncate_unlocked(int fd, off_t len)
{
    struct stat st;
    if (fstat(fd, &st) == 0) {
        th_image *im = th__crash_find(st.st_dev, st.st_ino, false);
        if (im && im->len > (size_t)len)
            im->len = (size_t)len; /* sizes are durable at once in this model */
        for (size_t i = 0; i < th_crash.n_pend; i++)
            if (th_crash.pend[i].dev == st.st_dev && th_crash.pend[i].ino == st.st_ino &&
                th_crash.pend[i].len > (size_t)len)
                th_crash.pend[i].len = (size_t)len;
    }
    return th_crash.saved.ftruncate(fd, len);
}

static int th__crash_open_unlocked(const char *path, int flags, mode_t mode)
{
    int fd = th_crash.saved.open(path, flags, mode);
    struct stat st;
    if (fd >= 0 && (flags & O_TRUNC) && fstat(fd, &st) == 0)
        th__crash_forget(st.st_dev, st.st_ino);
    return fd;
}

static int th__crash_unlink_unlocked(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        th__crash_forget(st.st_dev, st.st_ino);
    return th_crash.saved.unlink(path);
}

static int th__crash_rename_unlocked(const char *from, const char *to)
{
    struct stat st;
    if (stat(to, &st) == 0)
        th__crash_forget(st.st_dev, st.st_ino);
    return th_crash.saved.rename(from, to);
}

#define TH_CRASH_LOCKED(name, params, args)                                                      \
    static int name params                                                                     \
    {                                                                                          \
        pthread_mutex_lock(&th_crash_mu);                                                      \
        int r_ = name##_unlocked args;                                                         \
        pthread_mutex_unlock(&th_crash_mu);                                                    \
        return r_;                                                                             \
    }
TH_CRASH_LOCKED(th__crash_fdatasync, (int fd), (fd))
TH_CRASH_LOCKED(th__crash_ftruncate, (int fd, off_t len), (fd, len))
TH_CRASH_LOCKED(th__crash_open, (const char *path, int flags, mode_t mode), (path, flags, mode))
TH_CRASH_LOCKED(th__crash_unlink, (const char *path), (path))
TH_CRASH_LOCKED(th__crash_rename, (const char *from, const char *to), (from, to))

/* Start recording: what the files in dir (if it exists) hold now is on disk,
 * and from here on every fdatasync marks what is durable. fake_sync: skip
 * the real fdatasyncs (see the top of the file). */
static inline void th_crash_begin(const char *dir, bool fake_sync)
{
    th_crash.active = true;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[4096];
        int fd = open(th_path(p, dir, e->d_name), O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            th_crash_note_sync(fd);
        if (fd >= 0)
            close(fd);
    }
    if (d)
        closedir(d);
    th_crash.fake_sync = fake_sync;
    th_crash.saved = rn_sys;
    rn_sys.fdatasync = th__crash_fdatasync;
    rn_sys.ftruncate = th__crash_ftruncate;
    rn_sys.open = th__crash_open;
    rn_sys.unlink = th__crash_unlink;
    rn_sys.rename = th__crash_rename;
    th_crash.n_syncs = 0;
    th_crash.ring = NULL;
    th_crash.owner = pthread_self();
    th_crash.active = true;
}

/* Stop recording and forget every image; restores the rn_sys table. */
static inline void th_crash_end(void)
{
    if (th_crash.active)
        rn_sys = th_crash.saved;
    th_crash.active = false;
    for (size_t i = 0; i < th_crash.n_img; i++)
        free(th_crash.img[i].data);
    free(th_crash.img);
    th_crash.img = NULL;
    th_crash.n_img = th_crash.cap_img = 0;
    for (size_t i = 0; i < th_crash.n_pend; i++)
        free(th_crash.pend[i].data);
    free(th_crash.pend);
    th_crash.pend = NULL;
    th_crash.n_pend = th_crash.cap_pend = 0;
    th_crash.ring = NULL;
}

enum th_crash_mode {
    TH_CRASH_DROP_ALL, /* every unsynced sector back to its synced bytes */
    TH_CRASH_RANDOM,   /* each unsynced sector kept, dropped or garbled */
};

/* The crash, at this very moment: write into dst (created) what a power
 * loss now would leave of every regular file in src: each sector that
 * differs from the file's last synced image is kept, dropped or garbled per
 * mode. The log may keep running in src afterwards (it must not be trusted:
 * what it does after the crash never happened for dst). Returns the number
 * of sectors changed. */
static inline unsigned th_crash_capture_unlocked(const char *src, const char *dst, enum th_crash_mode mode,
                                        uint64_t seed)
{
    cr_assert(mkdir(dst, 0755) == 0 || errno == EEXIST, "mkdir %s", dst);
    th__crash_scan_cq(); /* syncs completed by now count */
    DIR *d = opendir(src);
    cr_assert_not_null(d);
    struct dirent *e;
    unsigned changed = 0;
    uint64_t s = seed;
    while ((e = readdir(d))) {
        char p[4096];
        th_path(p, src, e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || stat(p, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        uint8_t *cur = th_read_file(p, &len);
        th_image *im = th__crash_find(st.st_dev, st.st_ino, false);
        for (size_t off = 0; off < len; off += TH_SECTOR) {
            size_t n = len - off < TH_SECTOR ? len - off : TH_SECTOR;
            uint8_t old[TH_SECTOR] = {0};
            if (im && off < im->len)
                memcpy(old, im->data + off, im->len - off < n ? im->len - off : n);
            if (memcmp(cur + off, old, n) == 0)
                continue;
            unsigned choice = mode == TH_CRASH_DROP_ALL ? 1 : (unsigned)(th_rand(&s) % 3);
            if (choice == 0)
                continue; /* the kernel happened to write it */
            if (choice == 1)
                memcpy(cur + off, old, n);
            else
                for (size_t i = 0; i < n; i++)
                    if (cur[off + i] != old[i])
                        cur[off + i] = (uint8_t)th_rand(&s);
            changed++;
        }
        th_write_file(th_path(p, dst, e->d_name), cur, len);
        free(cur);
    }
    closedir(d);
    return changed;
}

static inline unsigned th_crash_capture(const char *src, const char *dst, enum th_crash_mode mode,
                                        uint64_t seed)
{
    pthread_mutex_lock(&th_crash_mu);
    unsigned r = th_crash_capture_unlocked(src, dst, mode, seed);
    pthread_mutex_unlock(&th_crash_mu);
    return r;
}

/* The crash in place: as th_crash_capture into dir itself. Call with the log
 * abandoned or closed. */
static inline unsigned th_crash_apply(const char *dir, enum th_crash_mode mode, uint64_t seed)
{
    return th_crash_capture(dir, dir, mode, seed);
}

/* Is batch (len bytes as stored, the base offset stamped) whole in the
 * durable image of the segment file in dir that holds it, i.e. covered by
 * an fdatasync that has completed by now (reaped or not)? Fails the test
 * when no segment file holds the batch at all. */
static inline bool th_crash_durable_unlocked(const char *dir, const void *batch, size_t len, int64_t base)
{
    int64_t bases[1024];
    unsigned n = th_list_segments(dir, bases, 1024);
    while (n > 0 && bases[n - 1] > base)
        n--;
    cr_assert_gt(n, 0, "no segment holds offset %" PRId64, base);
    char p[4096];
    th_seg_path(p, dir, bases[n - 1], ".log");
    size_t flen;
    uint8_t *cur = th_read_file(p, &flen);
    const uint8_t *at = memmem(cur, flen, batch, len);
    size_t pos = at ? (size_t)(at - cur) : SIZE_MAX;
    free(cur);
    cr_assert_neq(pos, SIZE_MAX, "batch %" PRId64 " is not in %s", base, p);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    th__crash_scan_cq();
    const th_image *im = th__crash_find(st.st_dev, st.st_ino, false);
    return im && im->len >= pos + len && memcmp(im->data + pos, batch, len) == 0;
}

/* The asynchronous fdatasyncs: look at the SQEs about to go to the kernel
 * (and at the completions posted since the last look). */
static inline bool th_crash_durable(const char *dir, const void *batch, size_t len, int64_t base)
{
    pthread_mutex_lock(&th_crash_mu);
    bool r = th_crash_durable_unlocked(dir, batch, len, base);
    pthread_mutex_unlock(&th_crash_mu);
    return r;
}

static inline void th__crash_scan_sq_unlocked(struct io_uring *ring);
static inline void th__crash_scan_sq(struct io_uring *ring)
{
    /* The model follows the test's own ring; the offload worker's ring only
     * carries its replies (MSG_RING), never an fdatasync. */
    if (th_crash.active && !pthread_equal(pthread_self(), th_crash.owner))
        return;
    pthread_mutex_lock(&th_crash_mu);
    th__crash_scan_sq_unlocked(ring);
    pthread_mutex_unlock(&th_crash_mu);
}

static inline void th__crash_scan_sq_unlocked(struct io_uring *ring)
{
    if (!th_crash.active)
        return;
    if (th_crash.ring != ring) {
        th_crash.ring = ring;
        th_crash.cq_seen = *ring->cq.khead;
    }
    th__crash_scan_cq();
    struct io_uring_sq *sq = &ring->sq;
    for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & *sq->kring_mask];
        th_image snap;
        if (sqe->opcode != IORING_OP_FSYNC || !th__crash_snapshot(sqe->fd, &snap))
            continue;
        snap.user_data = sqe->user_data;
        if (th_crash.n_pend == th_crash.cap_pend) {
            th_crash.cap_pend = th_crash.cap_pend ? th_crash.cap_pend * 2 : 16;
            th_crash.pend = realloc(th_crash.pend, th_crash.cap_pend * sizeof(*th_crash.pend));
            cr_assert_not_null(th_crash.pend);
        }
        th_crash.pend[th_crash.n_pend++] = snap;
        if (th_crash.fake_sync) {
            /* Same user_data, completes with 0; the flags field doubles as
             * the NOP's own flags on newer kernels, so clear it. */
            sqe->opcode = IORING_OP_NOP;
            sqe->fsync_flags = 0;
            sqe->off = 0;
            sqe->len = 0;
        }
    }
}

int io_uring_submit(struct io_uring *ring)
{
    static int (*real)(struct io_uring *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit");
    th__crash_scan_sq(ring);
    return real(ring);
}

int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
    static int (*real)(struct io_uring *, unsigned);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "io_uring_submit_and_wait");
    th__crash_scan_sq(ring);
    return real(ring, wait_nr);
}
#endif /* TH_CRASH_LAYER */

#endif
