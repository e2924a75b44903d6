/*
 * test_disk_full.c — the idempotent producer against a broker whose disk is
 * full (issue 11, item 6).
 *
 * runneld runs on an 8 MiB tmpfs mounted in a private mount namespace of the
 * test process (skipped with a message where mounting is not allowed). With
 * the file system filled, the records of several pipelined batches must be
 * reported failed with STORAGE_ERROR well before delivery.timeout.ms (left at
 * its 120 s default, longer than the test may run: the old producer retried
 * until then), none with OUT_OF_ORDER_SEQUENCE (the batches in flight behind
 * the first failed one), and once space is freed the same producer delivers
 * again at once, at contiguous offsets, without a sequence error.
 */
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "clients/testing.h"
#include "harness.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

static rt_broker B;
static bool mounted;

static void teardown(void)
{
    rt_broker_kill(&B, SIGKILL);
    if (mounted)
        umount2(B.data, MNT_DETACH);
    mounted = false;
    rt_broker_stop(&B);
}

TestSuite(disk_full, .fini = teardown, .timeout = 90);

static void start_on_tmpfs(void)
{
    memset(&B, 0, sizeof(B));
    snprintf(B.dir, sizeof(B.dir), "/tmp/rn-client-test-XXXXXX");
    cr_assert_not_null(mkdtemp(B.dir));
    snprintf(B.data, sizeof(B.data), "%s/data", B.dir);
    snprintf(B.log, sizeof(B.log), "%s/runneld.log", B.dir);
    cr_assert_eq(mkdir(B.data, 0755), 0);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", B.data, "tmpfs", 0, "size=8m") < 0) {
        int e = errno;
        rt_broker_stop(&B);
        cr_skip_test("cannot mount a tmpfs here (%s): needs root (CAP_SYS_ADMIN)", strerror(e));
    }
    mounted = true;
    B.port = rt_free_port();
    do
        B.http_port = rt_free_port();
    while (B.http_port == B.port);
    snprintf(B.servers, sizeof(B.servers), "127.0.0.1:%u", B.port);
    rt_broker_spawn(&B);
}

static void fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    static uint8_t junk[64 * 1024];
    memset(junk, 0xab, sizeof(junk));
    for (size_t chunk = sizeof(junk); chunk >= 512;) {
        if (write(fd, junk, chunk) < 0) {
            cr_assert_eq(errno, ENOSPC, "filling: %s", strerror(errno));
            chunk /= 2;
        }
    }
    close(fd);
}

#define N_REC 48

typedef struct reports {
    int n, n_ok, n_storage, n_other;
    int other_err;
    int64_t first, last;
} reports;

static void on_delivery(void *arg, int err, const char *topic, int32_t partition, int64_t offset,
                        void *opaque)
{
    reports *r = arg;
    (void)topic;
    (void)partition;
    (void)opaque;
    r->n++;
    if (err == 0) {
        if (r->n_ok == 0 || offset < r->first)
            r->first = offset;
        if (offset > r->last)
            r->last = offset;
        r->n_ok++;
    } else if (err == -RN_E_STORAGE_ERROR) {
        r->n_storage++;
    } else {
        r->n_other++;
        r->other_err = err;
    }
}

/* N_REC records of 3 KB: with batch.size 8 KiB, a dozen batches pipelined. */
static void send_all(rn_producer *p, int tag)
{
    char v[3000];
    for (int i = 0; i < N_REC; i++) {
        memset(v, 'a' + (tag + i) % 26, sizeof(v));
        cr_assert_eq(rn_producer_send(p, "full", 0, NULL, 0, v, sizeof(v), NULL, 0, 0, NULL), 0);
    }
}

// A full disk: pipelined idempotent batches fail fast with STORAGE_ERROR (no sequence
// errors); after space is freed the same producer delivers at once.
Test(disk_full, idempotent_producer_fails_fast_and_resumes)
{
    start_on_tmpfs();
    rt_create_topic(&B, "full", 1);
    rn_conf *c = rt_conf(&B, "acks", "all", "enable.idempotence", "true", "batch.size", "8192",
                         "linger.ms", "5", "retry.backoff.ms", "100", NULL);
    reports r = {0};
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, c, on_delivery, &r), 0);

    send_all(p, 0);
    cr_assert_eq(rn_producer_flush(p, 30000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.n_ok, N_REC, "before the disk fills: %d ok, %d storage, %d other (%s)", r.n_ok,
                 r.n_storage, r.n_other, rn_err_name(r.other_err));
    int64_t leo = r.last + 1;
    int64_t pid = rn__producer_id(p);
    cr_assert_geq(pid, 0, "idempotence is off");

    char filler[160];
    snprintf(filler, sizeof(filler), "%s/filler", B.data);
    fill(filler);
    memset(&r, 0, sizeof(r));
    int64_t t0 = rt_now_ms();
    send_all(p, 1);
    cr_assert_eq(rn_producer_flush(p, 60000), 0, "still undelivered after 60 s: %s",
                 rn_producer_errmsg(p));
    int64_t took = rt_now_ms() - t0;
    cr_assert_eq(r.n, N_REC);
    cr_assert_eq(r.n_other, 0, "%d records failed with %s, not STORAGE_ERROR", r.n_other,
                 rn_err_name(r.other_err));
    cr_assert_gt(r.n_storage, 0, "nothing failed on a full disk");
    cr_assert(strstr(rn_producer_errmsg(p), "No space left on device"), "errmsg: %s",
              rn_producer_errmsg(p));
    fprintf(stderr, "disk_full: %d records failed with STORAGE_ERROR in %lld ms (%d landed): %s\n",
            r.n_storage, (long long)took, r.n_ok, rn_producer_errmsg(p));
    if (r.n_ok)
        leo = r.last + 1; /* a first small batch may fit a partly written page */

    /* Space again: every record lands, contiguous from the log end. */
    cr_assert_eq(unlink(filler), 0);
    memset(&r, 0, sizeof(r));
    send_all(p, 2);
    cr_assert_eq(rn_producer_flush(p, 30000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.n_ok, N_REC, "after freeing space: %d ok, %d storage, %d other (%s)", r.n_ok,
                 r.n_storage, r.n_other, rn_err_name(r.other_err));
    cr_assert_eq(r.first, leo);
    cr_assert_eq(r.last, leo + N_REC - 1);
    fprintf(stderr, "disk_full: producer id %lld before, %lld after\n", (long long)pid,
            (long long)rn__producer_id(p));
    cr_assert_eq(rn_producer_close(p), 0);
    rn_conf_free(c);
}
