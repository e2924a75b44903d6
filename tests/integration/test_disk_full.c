/*
 * test_disk_full.c — runneld on a small tmpfs that fills up (issue 11, item 6).
 *
 * A real full disk, not an injected one: the broker's data directory is an
 * 8 MiB tmpfs mounted in a private mount namespace of the test process (so it
 * goes away with the test however it ends; the broker, forked after, lives in
 * the same namespace). Without the right to mount, the tests skip with a
 * message.
 *
 *   full_disk_fails_fast_and_recovers: fill the file system with a filler
 *     file; a Produce then answers STORAGE_ERROR naming the partition and
 *     "No space left on device" (the time from full to that answer is
 *     printed); /readyz says 503 and why, /metrics counts the error and shows
 *     the partition as out of space; consumers still read; the broker logs
 *     one line going in and one coming out; once the filler is deleted the
 *     same idempotent batch (same producer id and sequence) is appended at
 *     the log end, the next sequence follows, and a retry of it is answered
 *     with its first offset.
 *
 *   retention_frees_a_full_disk: a topic with retention.bytes and the
 *     default 1 GiB segments, fed three times the disk's size: retention
 *     (which, on a full disk, runs at once rather than at its next check)
 *     frees space each time the disk fills, and every batch lands.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static it_broker B;
static char http_hostport[32];
static uint16_t http_port;
static bool mounted;

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Start runneld with its data directory on a tmpfs of `size` ("8m"). */
static void start_on_tmpfs(const char *size, const char *const *extra)
{
    http_port = free_port();
    snprintf(http_hostport, sizeof(http_hostport), "127.0.0.1:%u", http_port);
    const char *args[16] = {"--http", http_hostport, "--reactors", "1"};
    int n = 4;
    for (int i = 0; extra && extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    itf_passed = false;
    cr_assert_eq(it_broker_init(&B, args), 0);
    cr_assert_eq(mkdir(B.data_dir, 0755), 0);
    char opts[32];
    snprintf(opts, sizeof(opts), "size=%s", size);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", B.data_dir, "tmpfs", 0, opts) < 0) {
        int e = errno;
        it_broker_destroy(&B);
        cr_skip_test("cannot mount a tmpfs here (%s): needs root (CAP_SYS_ADMIN)", strerror(e));
    }
    mounted = true;
    itf_restart(&B);
}

static void teardown(void)
{
    if (B.pid > 0) {
        int st;
        it_broker_stop(&B, SIGKILL, ITF_STOP_MS, &st);
    }
    if (mounted)
        umount2(B.data_dir, MNT_DETACH);
    mounted = false;
    itf_teardown(&B);
}

TestSuite(disk_full, .fini = teardown, .timeout = 120);

/* ---- Helpers ------------------------------------------------------------------ */

/* GET path from the broker's HTTP listener: the status, the body in body. */
static int http_get(const char *path, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect http: %s",
                 strerror(errno));
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    static char buf[1 << 20];
    size_t len = 0;
    ssize_t r;
    while (len + 1 < sizeof(buf) && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = 0;
    int status = 0;
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1, "no status line: %.200s", buf);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

/* The value of an unlabelled or exactly labelled metric line, or -1. */
static long long metric(const char *metrics, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = metrics; (p = strstr(p, name)); p += n) {
        if ((p == metrics || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
    }
    return -1;
}

/* A batch of n records of vlen bytes; producer id pid (-1: not idempotent)
 * with base sequence seq. The caller frees it. */
static uint8_t *make_batch(int n, size_t vlen, int64_t pid, int32_t seq, size_t *len)
{
    rn_batch_builder_opts o = {.producer_id = pid,
                               .producer_epoch = (int16_t)(pid >= 0 ? 0 : -1),
                               .base_sequence = pid >= 0 ? seq : -1};
    rn_batch_builder *bb;
    cr_assert_eq(rn_batch_builder_new(&bb, &o), 0);
    char *v = malloc(vlen);
    for (int i = 0; i < n; i++) {
        memset(v, 'a' + (seq + i) % 26, vlen);
        cr_assert_eq(rn_batch_builder_add(bb, 1000 + i, NULL, 0, v, vlen, NULL, 0), 0);
    }
    free(v);
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(bb, &out, len), 0);
    rn_batch_builder_free(bb);
    return out;
}

typedef struct answer {
    int code; /* the partition's error code, 0 ok */
    int64_t base;
    char msg[256];
} answer;

static answer produce(it_conn *c, const char *topic, const uint8_t *batch, size_t len)
{
    it_produce_part part = {topic, 0, batch, len};
    it_resp r;
    int rc = it_produce(c, &part, 1, -1, &r);
    cr_assert_eq(rc, 0, "produce: transport error %d", rc);
    answer a = {0};
    cr_assert_eq(r.hdr->produce->n_partitions, 1);
    Runnel__ProducePartitionResponse *p = r.hdr->produce->partitions[0];
    a.code = (int)p->error_code;
    a.base = p->base_offset;
    snprintf(a.msg, sizeof(a.msg), "%s", p->error_message ? p->error_message : "");
    it_resp_free(&r);
    return a;
}

/* Fill the file system with a filler file until it takes no more. */
static void fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    static uint8_t junk[64 * 1024];
    memset(junk, 0xab, sizeof(junk));
    for (size_t chunk = sizeof(junk); chunk >= 512;) {
        ssize_t w = write(fd, junk, chunk);
        if (w < 0) {
            cr_assert_eq(errno, ENOSPC, "filling: %s", strerror(errno));
            chunk /= 2;
        }
    }
    close(fd);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int count_lines(const char *needle)
{
    FILE *f = fopen(B.log_path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* ---- Tests -------------------------------------------------------------------- */

// A full disk: STORAGE_ERROR at once naming the cause, /readyz and /metrics say so, reads
// go on, one log line each way, and the same idempotent batch lands once space is freed.
Test(disk_full, full_disk_fails_fast_and_recovers)
{
    start_on_tmpfs("8m", NULL);
    it_conn *c = itf_connect(&B);
    itf_create(c, "full", 1, NULL);
    char body[1 << 16];
    cr_assert_eq(http_get("/readyz", body, sizeof(body)), 200, "%s", body);

    /* Some data to read back later, from producer 7 (sequences 0..9). */
    const int64_t pid = 7;
    int32_t seq = 0;
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *b = make_batch(5, 100, pid, seq, &len);
        answer a = produce(c, "full", b, len);
        cr_assert_eq(a.code, 0, "%s", a.msg);
        cr_assert_eq(a.base, seq);
        seq += 5;
        free(b);
    }

    char filler[160];
    snprintf(filler, sizeof(filler), "%s/filler", B.data_dir);
    fill(filler);
    /* 64 KiB of records: more than any partly written page can take. */
    size_t len;
    uint8_t *big = make_batch(64, 1000, pid, seq, &len);
    int64_t t0 = now_us();
    answer a = produce(c, "full", big, len);
    int64_t took = now_us() - t0;
    cr_assert_eq(a.code, RN_E_STORAGE_ERROR, "want STORAGE_ERROR, got %d: %s", a.code, a.msg);
    cr_assert(strstr(a.msg, "No space left on device"), "message: %s", a.msg);
    cr_assert(strstr(a.msg, "full-0"), "message names no partition: %s", a.msg);
    fprintf(stderr, "disk_full: full to STORAGE_ERROR in %.2f ms: %s\n", (double)took / 1000.0,
            a.msg);
    /* Still full: the same again, the log end unmoved. */
    a = produce(c, "full", big, len);
    cr_assert_eq(a.code, RN_E_STORAGE_ERROR, "%s", a.msg);
    int64_t leo = -1;
    cr_assert_eq(it_list_offsets(c, "full", 0, -1, &leo, NULL), 0);
    cr_assert_eq(leo, seq, "the log end moved to %lld after failed appends", (long long)leo);

    cr_assert_eq(http_get("/readyz", body, sizeof(body)), 503, "%s", body);
    cr_assert(strstr(body, "no space left on device"), "readyz: %s", body);
    cr_assert_eq(http_get("/metrics", body, sizeof(body)), 200);
    cr_assert_geq(metric(body, "runnel_storage_errors_total"), 2, "%s", body);
    cr_assert_eq(metric(body, "runnel_partitions_disk_full"), 1);
    cr_assert_eq(metric(body, "runnel_partitions_storage_error"), 1);
    cr_assert_eq(metric(body, "runnel_partition_storage_error{topic=\"full\",partition=\"0\"}"), 1);

    /* Consumers keep reading. */
    it_fetch_part fp = {"full", 0, 0, 0};
    it_resp fr;
    cr_assert_eq(it_fetch(c, &fp, 1, NULL, &fr), 0);
    cr_assert_eq(fr.hdr->fetch->partitions[0]->error_code, 0);
    const uint8_t *data;
    size_t dlen;
    it_fetch_data(&fr, 0, &data, &dlen);
    cr_assert_gt(dlen, 0, "a fetch on a full disk returned nothing");
    it_resp_free(&fr);

    /* Space again: the same batch, same producer id and sequence, lands at the
     * log end; the next sequence follows; a retry gets its first offset. */
    cr_assert_eq(unlink(filler), 0);
    a = produce(c, "full", big, len);
    cr_assert_eq(a.code, 0, "after freeing space: %d %s", a.code, a.msg);
    cr_assert_eq(a.base, leo);
    seq += 64;
    size_t len2;
    uint8_t *next = make_batch(3, 100, pid, seq, &len2);
    a = produce(c, "full", next, len2);
    cr_assert_eq(a.code, 0, "next sequence: %d %s", a.code, a.msg);
    cr_assert_eq(a.base, leo + 64);
    a = produce(c, "full", big, len);
    cr_assert_eq(a.code, 0, "retry of a landed batch: %d %s", a.code, a.msg);
    cr_assert_eq(a.base, leo, "a retry was appended twice");
    free(next);
    free(big);

    cr_assert_eq(http_get("/readyz", body, sizeof(body)), 200, "%s", body);
    cr_assert_eq(http_get("/metrics", body, sizeof(body)), 200);
    cr_assert_eq(metric(body, "runnel_partitions_disk_full"), 0);
    /* One line going in; one coming out, once it has written for a second. */
    for (int i = 0; i < 100 && count_lines("msg=\"partition can write again\"") == 0; i++) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(count_lines("msg=\"partition cannot write\" partition=full-0 err=ENOSPC"), 1);
    cr_assert_eq(count_lines("msg=\"partition can write again\" partition=full-0"), 1);
    itf_pass(&B, c);
}

// retention.bytes with 1 GiB segments frees a full disk: three disks' worth of data lands.
Test(disk_full, retention_frees_a_full_disk)
{
    /* Retention's own check is far away: only the full disk makes it run. */
    static const char *const extra[] = {"--override", "log.retention.check.interval.ms=3600000",
                                        NULL};
    start_on_tmpfs("8m", extra);
    it_conn *c = itf_connect(&B);
    itf_create(c, "trim", 1, "retention.bytes=2097152");
    size_t len;
    uint8_t *b = make_batch(64, 1000, -1, 0, &len);
    uint64_t landed = 0;
    int full = 0;
    /* Bounded: 24 MiB in 64 KiB batches, each retried at most 100 times. */
    for (int i = 0; i < 384; i++) {
        answer a;
        int tries = 0;
        while ((a = produce(c, "trim", b, len)).code == RN_E_STORAGE_ERROR && tries++ < 100) {
            full++;
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
        cr_assert_eq(a.code, 0, "batch %d: %d %s (after %d tries)", i, a.code, a.msg, tries);
        landed += len;
    }
    fprintf(stderr, "disk_full: %llu bytes landed on an 8 MiB disk, %d full answers on the way\n",
            (unsigned long long)landed, full);
    int64_t start = -1;
    cr_assert_eq(it_list_offsets(c, "trim", 0, -2, &start, NULL), 0);
    cr_assert_gt(start, 0, "retention deleted nothing");
    free(b);
    itf_pass(&B, c);
}
