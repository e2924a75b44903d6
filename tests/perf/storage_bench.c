/*
 * storage_bench.c — throughput of the partition log (storage/log.h) against the raw disk.
 *
 *   storage_bench --dir DIR [--mib N] [--record-size B] [--batch-bytes B] [--max-seconds S]
 *                 [--appenders N] [--preallocate-mib N]
 *
 * A program that prints figures, not a test (DESIGN §10: benchmarks never make
 * timed assertions). It answers one question: how close does the log come to
 * what the disk under DIR can do, for each flush policy?
 *
 * Phases, each on the same number of bytes (N MiB rounded up to whole batches),
 * each in a fresh directory under a mkdtemp dir in DIR that is removed at the end:
 *
 *   raw write          pwrite of one batch-sized chunk after another + one
 *                      fdatasync at the end: the disk's sequential write speed.
 *   raw sync-each      pwrite + fdatasync of every chunk, one writer: what a
 *                      durable acknowledgement per write costs without sharing.
 *   append never       rn_log_append, 64 in flight, log.flush=never
 *   append interval    rn_log_append, 64 in flight, log.flush=interval:1000
 *   append always x1   rn_log_append, 1 in flight (each waits for its ack),
 *                      log.flush=always; compared with raw sync-each.
 *   append always xN   rn_log_append, N in flight (--appenders, default 8):
 *                      N appenders whose fdatasyncs the log shares (group
 *                      commit).
 *   read               rn_log_read of the whole `never` log (page cache,
 *                      borrowed mmap slices), rn_batch_check (CRC-32C) of
 *                      every batch while counting records. This is the
 *                      figure reported: a consumer catching up touches each
 *                      page of the mapping for the first time.
 *   read again         the same pass once more, every page already mapped:
 *                      tells the cost of the log's read path apart from the
 *                      cost of first-touch page faults (informative only).
 *
 * What is timed, and why it is comparable:
 *  1. The batches are built once up front (rn_batch_builder) so codec time is
 *     never measured. Every in-flight slot owns a copy of one of them: the log
 *     stamps base_offset and leader epoch in place, and the CRC does not cover
 *     those fields, so a slot's copy can be appended again and again.
 *  2. An append phase runs from the first append to the last acknowledgement
 *     plus rn_log_flush_sync, i.e. until everything is on disk, just as raw
 *     write ends with its fdatasync. Under `never` and `interval` the producer
 *     sees its acks earlier; the table shows the durable figure.
 *  3. Segments are 256 MiB so the default 512 MiB rolls at least once per phase.
 *     --preallocate-mib sets log.preallocate (fallocate ahead of the write
 *     position, through the ring; default 64 as the log's) and 0 compares
 *     with plain sparse growth.
 *  4. Every phase stops by itself: after its bytes, or after --max-seconds
 *     (default 30), whichever comes first. A phase cut short is marked and its
 *     rate is computed on what it did.
 *
 * Output: a table (mode | MB/s | records/s | ratio vs raw), MB = 10^6 bytes as
 * Kafka's perf tools count, and as the last line exactly one JSON object with
 * the figures, for scripts. Exit 0 ok, 1 error (with a message), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"

#define MIB           (1024ull * 1024)
#define SEGMENT_BYTES (256 * MIB)
#define N_TEMPLATES   8         /* distinct payloads, so the disk never sees one page repeated */
#define DEPTH_ASYNC   64        /* appends in flight for never / interval */
#define READ_MAX      (1 * MIB) /* bytes asked per rn_log_read, a typical fetch.max.bytes */
#define RING_ENTRIES  256

/* ------------------------------------------------------------------------ */
/* Options, results, errors                                                  */
/* ------------------------------------------------------------------------ */

typedef struct opts {
    const char *dir;
    uint64_t mib;
    size_t record_size;
    size_t batch_bytes;
    double max_seconds;
    unsigned appenders;         /* in flight for `always` with group commit */
    uint64_t preallocate_bytes; /* log.preallocate (fallocate ahead), 0 = off */
} opts;

typedef struct result {
    uint64_t bytes;
    uint64_t records;
    double secs;
    bool capped; /* stopped by --max-seconds before its bytes */
} result;

typedef struct bench {
    opts o;
    char root[PATH_MAX]; /* mkdtemp dir under o.dir; "" until created */
    uint8_t *tmpl[N_TEMPLATES];
    size_t batch_len;      /* every template has this size */
    int32_t batch_records; /* and this many records */
    uint64_t n_batches;    /* per phase */
} bench;

#define USAGE                                                                                      \
    "usage: storage_bench --dir DIR [--mib N (512)] [--record-size B (1024)]\n"                    \
    "                     [--batch-bytes B (65536)] [--max-seconds S (30)]\n"                      \
    "                     [--appenders N (8)] [--preallocate-mib N (64)]\n"

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("storage_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" USAGE, stderr);
    exit(2);
}

/* Print "storage_bench: <what>: <error>" (and the log's context when there is
 * one) and return -1, so failures read `return fail(...)`. */
static int fail(const rn_log *log, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const rn_log *log, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("storage_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (err)
        fprintf(stderr, ": %s (%s)", rn_strerror(err), rn_errname(err));
    if (log && rn_log_errmsg(log)[0])
        fprintf(stderr, " [%s]", rn_log_errmsg(log));
    fputc('\n', stderr);
    return -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mbps(const result *r)
{
    return r->secs > 0 ? (double)r->bytes / 1e6 / r->secs : 0;
}

static double rps(const result *r)
{
    return r->secs > 0 ? (double)r->records / r->secs : 0;
}

/* The filesystem under path, so figures from tmpfs are not mistaken for a disk's. */
static const char *fs_name(const char *path)
{
    struct statfs sf;
    if (statfs(path, &sf) < 0)
        return "unknown filesystem";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53:
        return "ext4";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x01021994:
        return "tmpfs";
    case 0x794C7630:
        return "overlayfs";
    case 0x2FC12FC1:
        return "zfs";
    case 0x6969:
        return "nfs";
    case 0x65735546:
        return "fuse";
    case 0xF2F52010:
        return "f2fs";
    default:
        return "other filesystem";
    }
}

/* ------------------------------------------------------------------------ */
/* Batches, built once                                                       */
/* ------------------------------------------------------------------------ */

/* Build N_TEMPLATES batches of as many record_size-byte records as fit in
 * batch_bytes (at least one), each with its own pseudo-random payload. */
static int build_batches(bench *b)
{
    rn_batch_builder *bb = NULL;
    uint8_t *value = malloc(b->o.record_size);
    int rc = rn_batch_builder_new(&bb, NULL);
    if (rc < 0 || !value) {
        rc = rc < 0 ? rc : -ENOMEM;
        goto fail;
    }
    int64_t ts = wall_ms();

    /* How many records fit: add until the encoded size passes batch_bytes. */
    int32_t fit = 0;
    while (fit < INT32_MAX) {
        rc = rn_batch_builder_add(bb, ts, NULL, 0, value, b->o.record_size, NULL, 0);
        if (rc < 0)
            goto fail;
        if (rn_batch_builder_size(bb) > b->o.batch_bytes)
            break;
        fit++;
    }
    if (fit == 0)
        fit = 1; /* a record larger than a batch travels alone, as in Kafka */
    rn_batch_builder_reset(bb);

    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (int t = 0; t < N_TEMPLATES; t++) {
        for (int32_t r = 0; r < fit; r++) {
            for (size_t i = 0; i < b->o.record_size; i++) {
                seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
                value[i] = (uint8_t)seed;
            }
            rc = rn_batch_builder_add(bb, ts, NULL, 0, value, b->o.record_size, NULL, 0);
            if (rc < 0)
                goto fail;
        }
        size_t len;
        rc = rn_batch_builder_finish(bb, &b->tmpl[t], &len);
        if (rc < 0)
            goto fail;
        if (t > 0 && len != b->batch_len) {
            rc = -EINVAL; /* same records, same sizes: the codec must agree with itself */
            goto fail;
        }
        b->batch_len = len;
    }
    b->batch_records = fit;
    b->n_batches = (b->o.mib * MIB + b->batch_len - 1) / b->batch_len;
    rn_batch_builder_free(bb);
    free(value);
    return 0;

fail:
    rn_batch_builder_free(bb);
    free(value);
    return fail(NULL, rc, "building batches");
}

/* ------------------------------------------------------------------------ */
/* Raw disk                                                                  */
/* ------------------------------------------------------------------------ */

static int pwrite_full(int fd, const uint8_t *buf, size_t len, off_t pos)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n, len -= (size_t)n, pos += n;
    }
    return 0;
}

/* The same bytes as an append phase, in batch-sized chunks, to one plain file:
 * one fdatasync at the end (sync_each false) or one after every chunk. */
static int run_raw(bench *b, bool sync_each, result *r)
{
    const char *what = sync_each ? "raw sync-each" : "raw write";
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/raw.bin", b->root);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(NULL, -errno, "%s: open %s", what, path);

    int rc = 0;
    memset(r, 0, sizeof(*r));
    double t0 = now_s(), deadline = t0 + b->o.max_seconds;
    uint64_t i;
    for (i = 0; i < b->n_batches; i++) {
        rc = pwrite_full(fd, b->tmpl[i % N_TEMPLATES], b->batch_len, (off_t)(i * b->batch_len));
        if (rc == 0 && sync_each && fdatasync(fd) < 0)
            rc = -errno;
        if (rc < 0)
            break;
        if (now_s() > deadline) {
            r->capped = i + 1 < b->n_batches;
            i++;
            break;
        }
    }
    if (rc == 0 && !sync_each && fdatasync(fd) < 0)
        rc = -errno;
    double t1 = now_s();
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    unlink(path);
    if (rc < 0)
        return fail(NULL, rc, "%s: %s", what, path);
    r->bytes = i * b->batch_len;
    r->records = i * (uint64_t)b->batch_records;
    r->secs = t1 - t0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Appends                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct appender appender;

typedef struct slot {
    appender *a;
    uint8_t *buf; /* this slot's own copy of a template: stamped in place */
    int next_free;
} slot;

struct appender {
    slot *slots;
    int free_head; /* stack of idle slots, -1 when all are in flight */
    unsigned inflight;
    int err;           /* first error an ack reported */
    int64_t next_base; /* the base offset the next ack should carry */
    uint64_t acked, acked_records;
};

static void on_append(void *arg, int err, int64_t base_offset, int64_t last_offset)
{
    slot *s = arg;
    appender *a = s->a;
    a->inflight--;
    s->next_free = a->free_head;
    a->free_head = (int)(s - a->slots);
    if (err < 0) {
        if (!a->err)
            a->err = err;
        return;
    }
    /* Acks come in log order; a gap or overlap means the log lost track. */
    if (base_offset != a->next_base || last_offset < base_offset) {
        if (!a->err)
            a->err = -RN_E_CORRUPT_SEGMENT;
        return;
    }
    a->next_base = last_offset + 1;
    a->acked++;
    a->acked_records += (uint64_t)(last_offset - base_offset + 1);
}

/* Append the phase's batches to a fresh log at dir with `depth` appends in
 * flight. On success *out is the open log (the caller closes it) unless out is
 * NULL, in which case it is closed here. */
static int run_append(bench *b, rn_io *io, const char *flush, unsigned depth, const char *name,
                      result *r, rn_log **out)
{
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s/%s-0", b->root, name);
    rn_log_config cfg;
    rn_log_config_default(&cfg);
    cfg.segment_bytes = SEGMENT_BYTES;
    cfg.preallocate_bytes = b->o.preallocate_bytes;
    if (cfg.max_batch_bytes < b->batch_len)
        cfg.max_batch_bytes = (uint32_t)b->batch_len;
    int rc = rn_log_config_parse_flush(flush, &cfg);
    if (rc < 0)
        return fail(NULL, rc, "%s: log.flush=%s", name, flush);

    appender a = {.free_head = -1};
    a.slots = calloc(depth, sizeof(*a.slots));
    if (!a.slots)
        return fail(NULL, -ENOMEM, "%s", name);
    for (unsigned i = 0; i < depth; i++) {
        a.slots[i].a = &a;
        a.slots[i].buf = malloc(b->batch_len);
        if (!a.slots[i].buf) {
            rc = fail(NULL, -ENOMEM, "%s", name);
            goto out_slots;
        }
        memcpy(a.slots[i].buf, b->tmpl[i % N_TEMPLATES], b->batch_len);
        a.slots[i].next_free = a.free_head;
        a.free_head = (int)i;
    }

    rn_log *log = NULL;
    rc = rn_log_open(&log, io, dir, name, &cfg, NULL);
    if (rc < 0) {
        rc = fail(NULL, rc, "%s: opening log %s", name, dir);
        goto out_slots;
    }

    memset(r, 0, sizeof(*r));
    uint64_t submitted = 0;
    bool stop = false;
    double t0 = now_s(), deadline = t0 + b->o.max_seconds;
    for (;;) {
        while (!stop && !a.err && submitted < b->n_batches && a.inflight < depth) {
            slot *s = &a.slots[a.free_head];
            a.free_head = s->next_free;
            rc = rn_log_append(log, s->buf, b->batch_len, 0, on_append, s);
            if (rc < 0) {
                fail(log, rc, "%s: append of batch %" PRIu64, name, submitted);
                goto fail_log;
            }
            a.inflight++;
            submitted++;
        }
        if (a.inflight == 0)
            break;
        if (rn_io_inflight(io) == 0) {
            /* An append waits on nothing the ring will ever complete. */
            fail(log, 0, "%s: %u appends pending with no I/O in flight", name, a.inflight);
            goto fail_log;
        }
        rc = rn_io_run(io, 1);
        if (rc < 0) {
            fail(log, rc, "%s: io_uring", name);
            goto fail_log;
        }
        if (!stop && now_s() > deadline) {
            stop = true;
            r->capped = submitted < b->n_batches;
        }
    }
    if (a.err) {
        fail(log, a.err, "%s: append acknowledged with an error", name);
        goto fail_log;
    }
    rc = rn_log_flush_sync(log);
    if (rc < 0) {
        fail(log, rc, "%s: flush", name);
        goto fail_log;
    }
    r->secs = now_s() - t0;
    r->bytes = a.acked * b->batch_len;
    r->records = a.acked_records;
    if (a.acked != submitted || a.acked_records != a.acked * (uint64_t)b->batch_records ||
        rn_log_end_offset(log) != (int64_t)a.acked_records) {
        fail(log, 0,
             "%s: %" PRIu64 " batches submitted, %" PRIu64 " acked with %" PRIu64
             " records, log end offset %" PRId64,
             name, submitted, a.acked, a.acked_records, rn_log_end_offset(log));
        goto fail_log;
    }

    if (out) {
        *out = log;
    } else {
        rc = rn_log_close(log);
        if (rc < 0) {
            rc = fail(NULL, rc, "%s: closing log %s", name, dir);
            goto out_slots;
        }
    }
    rc = 0;
    goto out_slots;

fail_log:
    rn_log_abandon(log); /* drains in-flight appends: the slots must outlive it */
    rc = -1;
out_slots:
    for (unsigned i = 0; i < depth; i++)
        free(a.slots[i].buf);
    free(a.slots);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                     */
/* ------------------------------------------------------------------------ */

/* Read the whole log back in READ_MAX slices and check every batch's CRC and
 * offsets; expect_records is what the append phase acknowledged. */
static int run_read(bench *b, rn_log *log, uint64_t expect_records, result *r)
{
    size_t max_batch = rn_log_config_of(log)->max_batch_bytes;
    int64_t off = rn_log_start_offset(log), end = rn_log_high_watermark(log);
    memset(r, 0, sizeof(*r));
    double t0 = now_s();
    while (off < end) {
        rn_slice s;
        int rc = rn_log_read(log, off, READ_MAX, end, &s);
        if (rc < 0)
            return fail(log, rc, "read at offset %" PRId64, off);
        if (s.len == 0 || s.base_offset != off) {
            rn_slice_release(&s);
            return fail(log, 0, "read at offset %" PRId64 ": slice of %zu bytes from %" PRId64, off,
                        s.len, s.base_offset);
        }
        int64_t expect = off;
        for (size_t pos = 0; pos < s.len;) {
            rn_batch_header h;
            rc = rn_batch_check(s.data + pos, s.len - pos, max_batch, &h);
            if (rc < 0 || h.base_offset != expect) {
                rn_slice_release(&s);
                return fail(log, rc, "batch at offset %" PRId64 " (slice position %zu)", expect,
                            pos);
            }
            expect = h.base_offset + h.last_offset_delta + 1;
            r->records += (uint64_t)h.records_count;
            pos += rn_batch_size(&h);
        }
        r->bytes += s.len;
        off = s.next_offset;
        rn_slice_release(&s);
        if (expect != off)
            return fail(log, 0, "slice ends at offset %" PRId64 " but says %" PRId64, expect, off);
    }
    r->secs = now_s() - t0;
    if (r->records != expect_records)
        return fail(log, 0, "read %" PRIu64 " records back, %" PRIu64 " were acknowledged",
                    r->records, expect_records);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (remove(path) < 0 && errno != ENOENT)
        fprintf(stderr, "storage_bench: removing %s: %s\n", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *path)
{
    if (path[0])
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        die_usage("%s wants an integer in [%" PRIu64 ", %" PRIu64 "], got '%s'", flag, min, max, s);
    return v;
}

static void parse_opts(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"mib", required_argument, NULL, 'm'},
        {"record-size", required_argument, NULL, 'r'},
        {"batch-bytes", required_argument, NULL, 'b'},
        {"max-seconds", required_argument, NULL, 's'},
        {"appenders", required_argument, NULL, 'a'},
        {"preallocate-mib", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (opts){.mib = 512,
                .record_size = 1024,
                .batch_bytes = 65536,
                .max_seconds = 30,
                .appenders = 8,
                .preallocate_bytes = 64 * MIB}; /* the log's default (rn_log_config_default) */
    int c;
    while ((c = getopt_long(argc, argv, "d:m:r:b:s:a:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->dir = optarg;
            break;
        case 'm':
            o->mib = parse_u64("--mib", optarg, 1, 1 << 20);
            break;
        case 'r':
            o->record_size = parse_u64("--record-size", optarg, 1, 64 * MIB);
            break;
        case 'b':
            o->batch_bytes = parse_u64("--batch-bytes", optarg, 128, 64 * MIB);
            break;
        case 's':
            o->max_seconds = (double)parse_u64("--max-seconds", optarg, 1, 3600);
            break;
        case 'a':
            o->appenders = (unsigned)parse_u64("--appenders", optarg, 1, 1024);
            break;
        case 'p':
            o->preallocate_bytes = parse_u64("--preallocate-mib", optarg, 0, 1024) * MIB;
            break;
        case 'h':
            fputs("storage_bench: append and read throughput of the storage log vs the raw "
                  "disk\n" USAGE,
                  stdout);
            exit(0);
        default:
            die_usage("unknown option");
        }
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (!o->dir)
        die_usage("--dir is required");
}

static void row(const char *mode, const result *r, const result *ref, const char *ref_name)
{
    char name[64], ratio[48] = "-";
    snprintf(name, sizeof(name), "%s%s", mode, r->capped ? " *" : "");
    if (ref && mbps(ref) > 0)
        snprintf(ratio, sizeof(ratio), "%.2f%s%s", mbps(r) / mbps(ref), ref_name ? " vs " : "",
                 ref_name ? ref_name : "");
    printf("| %-32s | %9.1f | %11.0f | %-22s |\n", name, mbps(r), rps(r), ratio);
}

int main(int argc, char **argv)
{
    bench b = {0};
    parse_opts(argc, argv, &b.o);

    int status = 1;
    rn_io *io = NULL;
    rn_log *never_log = NULL;
    result raw = {0}, raw_sync = {0}, never = {0}, interval = {0}, always1 = {0}, always_n = {0},
           rd = {0}, rd2 = {0};

    struct stat st;
    errno = 0;
    if (stat(b.o.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "storage_bench: --dir %s: %s\n", b.o.dir,
                errno ? strerror(errno) : "not a directory");
        return 1;
    }
    snprintf(b.root, sizeof(b.root), "%s/storage-bench-XXXXXX", b.o.dir);
    if (!mkdtemp(b.root)) {
        fprintf(stderr, "storage_bench: mkdtemp %s: %s\n", b.root, strerror(errno));
        return 1;
    }
    if (build_batches(&b) < 0)
        goto out;
    int rc = rn_io_new(&io, RING_ENTRIES);
    if (rc < 0) {
        fail(NULL, rc, "io_uring setup");
        goto out;
    }

    printf("# storage_bench: %s (%s), %" PRIu64 " batches of %zu bytes (%d records of %zu bytes)"
           " = %.1f MiB per phase, segments of %llu MiB, preallocate %" PRIu64
           " MiB, phases capped at %.0f s\n",
           b.o.dir, fs_name(b.o.dir), b.n_batches, b.batch_len, b.batch_records, b.o.record_size,
           (double)(b.n_batches * b.batch_len) / MIB, SEGMENT_BYTES / MIB,
           (uint64_t)(b.o.preallocate_bytes / MIB), b.o.max_seconds);
    fflush(stdout);

    /* Raw references first, then the log from the slowest policy to the
     * fastest; the `never` log stays open for the read phase. */
    if (run_raw(&b, false, &raw) < 0 || run_raw(&b, true, &raw_sync) < 0 ||
        run_append(&b, io, "always", 1, "always1", &always1, NULL) < 0 ||
        run_append(&b, io, "always", b.o.appenders, "always-group", &always_n, NULL) < 0 ||
        run_append(&b, io, "interval:1000", DEPTH_ASYNC, "interval", &interval, NULL) < 0 ||
        run_append(&b, io, "never", DEPTH_ASYNC, "never", &never, &never_log) < 0 ||
        run_read(&b, never_log, never.records, &rd) < 0 ||
        run_read(&b, never_log, never.records, &rd2) < 0)
        goto out;
    rc = rn_log_close(never_log);
    never_log = NULL;
    if (rc < 0) {
        fail(NULL, rc, "closing the never log");
        goto out;
    }

    printf("| %-32s | %9s | %11s | %-22s |\n", "mode", "MB/s", "records/s", "ratio vs raw");
    printf("|----------------------------------|----------:|------------:|------------------------|"
           "\n");
    row("raw write (1 fdatasync)", &raw, NULL, NULL);
    row("raw sync-each (1 writer)", &raw_sync, NULL, NULL);
    row("append never", &never, &raw, NULL);
    row("append interval:1000", &interval, &raw, NULL);
    char always_name[48];
    snprintf(always_name, sizeof(always_name), "append always, %u appender%s", b.o.appenders,
             b.o.appenders == 1 ? "" : "s");
    row(always_name, &always_n, &raw, NULL);
    row("append always, 1 appender", &always1, &raw_sync, "sync-each");
    row("read (page cache, CRC checked)", &rd, NULL, NULL);
    row("read again (already mapped)", &rd2, NULL, NULL);
    const result *all[] = {&raw, &raw_sync, &never, &interval, &always_n, &always1};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->capped) {
            printf("# * stopped at --max-seconds %.0f before all its bytes; the rate covers what "
                   "it wrote\n",
                   b.o.max_seconds);
            break;
        }
    printf("{\"raw_write_mbps\":%.1f,\"raw_sync_each_mbps\":%.1f,\"append_never_mbps\":%.1f,"
           "\"append_interval_mbps\":%.1f,\"append_always_mbps\":%.1f,"
           "\"append_always1_mbps\":%.1f,\"read_mbps\":%.1f}\n",
           mbps(&raw), mbps(&raw_sync), mbps(&never), mbps(&interval), mbps(&always_n),
           mbps(&always1), mbps(&rd));
    status = 0;

out:
    if (never_log)
        rn_log_abandon(never_log);
    rn_io_free(io);
    for (int t = 0; t < N_TEMPLATES; t++)
        free(b.tmpl[t]);
    remove_tree(b.root);
    return status;
}
