/*
 * test_log_dir.c — the read-only partition directory (storage/log_dir.c,
 * suite `log_dir`): the segment listing the log's open and `runnel replay`
 * share, and the read-only walk replay uses while a broker writes.
 */
#include "helpers.h"
#include "storage/log_dir.h"

static void touch(const char *dir, const char *name)
{
    char p[4096];
    th_write_file(th_path(p, dir, name), "x", 1);
}

// The listing: "<20 digits>.log" only, sorted; everything else goes to the callback.
Test(log_dir, list_segments_only)
{
    char *dir = th_tmpdir("logdir");
    const char *names[] = {
        "00000000000000000300.log", "00000000000000000000.log", "00000000000000000042.log",
        "00000000000000000042.idx", "00000000000000000042.tix", "00000000000000000042.log.tmp",
        "leader-epoch-checkpoint",  "clean-shutdown",           "0000000000000000004.log",
        "99999999999999999999.log", "0000000000000000000a.log"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        touch(dir, names[i]);
    int64_t *v;
    unsigned n;
    cr_assert_eq(rn_log_dir_list(dir, &v, &n, NULL, NULL), 0);
    cr_assert_eq(n, 3);
    cr_assert(v[0] == 0 && v[1] == 42 && v[2] == 300);
    free(v);
    cr_assert_eq(rn_log_dir_list("/nonexistent/rn", &v, &n, NULL, NULL), -ENOENT);
    th_rmrf(dir);
    free(dir);
}

/* Walk every batch of dir's segment base; returns peek's last answer. */
static int walk(const char *dir, int64_t base, unsigned *n_batches, int64_t *next)
{
    rn_segment_reader r;
    cr_assert_eq(rn_segment_reader_open(&r, dir, base), 0);
    r.next_offset = *next;
    int rc;
    rn_batch_header h;
    *n_batches = 0;
    while ((rc = rn_segment_reader_peek(&r, &h)) == 1) {
        uint8_t *buf = malloc(rn_batch_size(&h));
        cr_assert_eq(rn_segment_reader_read(&r, &h, buf), 0);
        cr_assert_eq(rn_batch_verify(buf, rn_batch_size(&h), 0, 0), 0);
        free(buf);
        rn_segment_reader_advance(&r, &h);
        (*n_batches)++;
    }
    *next = r.next_offset;
    rn_segment_reader_close(&r);
    return rc;
}

// While the log is open (sparse active tail), the walk sees every batch and ends at the zeros;
// a torn header, a cut batch and offsets going back each stop it with the right error.
Test(log_dir, reader_stops_where_recovery_would)
{
    char *dir = th_tmpdir("logdir");
    rn_io *io = th_io_new();
    rn_log_config cfg;
    th_config(&cfg, 64 * 1024, RN_FLUSH_ALWAYS);
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, dir, "dir", &cfg, NULL), 0);
    size_t len = 0;
    for (int i = 0; i < 10; i++) {
        uint8_t *b = th_batch_new((uint64_t)i, 2, 100, &len);
        cr_assert_eq(rn_log_append_sync(log, b, len, 1, NULL), 0);
        free(b);
    }
    unsigned n;
    int64_t next = -1;
    cr_assert_eq(walk(dir, 0, &n, &next), 0, "the sparse tail is the end");
    cr_assert_eq(n, 10);
    cr_assert_eq(next, 20);
    /* Stale offsets: a previous segment said the partition was at 30 already. */
    next = 30;
    cr_assert_eq(walk(dir, 0, &n, &next), -RN_E_CORRUPT_SEGMENT);
    cr_assert_eq(n, 0);
    rn_log_abandon(log);
    char p[4096];
    th_seg_path(p, dir, 0, ".log");
    uint64_t data = 10 * (uint64_t)len;
    /* A torn header: a few non-zero bytes after the last batch. */
    th_write_at(p, data, "\x01\x02\x03", 3);
    cr_assert_eq(truncate(p, (off_t)data + 3), 0);
    next = -1;
    cr_assert_eq(walk(dir, 0, &n, &next), -RN_E_BATCH_TRUNCATED);
    cr_assert_eq(n, 10);
    /* A batch cut short (a file cut inside its last batch). */
    cr_assert_eq(truncate(p, (off_t)data - 7), 0);
    next = -1;
    cr_assert_eq(walk(dir, 0, &n, &next), -RN_E_BATCH_TRUNCATED);
    cr_assert_eq(n, 9);
    /* A file cut under an open reader: the walk just ends (pread, no SIGBUS). */
    rn_segment_reader r;
    cr_assert_eq(rn_segment_reader_open(&r, dir, 0), 0);
    cr_assert_eq(truncate(p, (off_t)len), 0);
    rn_batch_header h;
    cr_assert_eq(rn_segment_reader_peek(&r, &h), 1);
    rn_segment_reader_advance(&r, &h);
    cr_assert_eq(rn_segment_reader_peek(&r, &h), 0, "a cut under the reader is its end");
    rn_segment_reader_close(&r);
    /* Deleted since the listing. */
    cr_assert_eq(rn_segment_reader_open(&r, dir, 12345), -ENOENT);
    rn_io_free(io);
    th_rmrf(dir);
    free(dir);
}
