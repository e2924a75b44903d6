/*
 * storage_demo.c — runnel-storage-demo: the storage engine end to end, by hand.
 *
 *   runnel-storage-demo --dir DIR
 *
 * The storage engine by hand, without a broker: `tools/dev run` ran it
 * before runneld existed, and it stays as the smallest end-to-end check. It
 * opens the partition log DIR/demo-0 (storage/log.h), prints the line
 * recovery leaves (clean start or what a crash cost), appends one record
 * batch — a record per stdin line, or three sample records when stdin is a
 * terminal — reads the whole log back and prints one line per record, and
 * closes the log cleanly so the next start skips the scan. Run it twice and
 * the first run's records are still there; kill it mid-way and the next run
 * says what recovery found.
 *
 * It appends with rn_log_append_sync (flush=always, the default), so each
 * "appended" line on stderr means the batch is on disk.
 *
 * Input: one record per line; a TAB splits KEY from VALUE ("k1<TAB>hello"),
 * a line without one is a value with a null key. Lines go into batches of at
 * most message.max.bytes, so long input becomes several batches.
 *
 * Output (stdout): the recovery line (logfmt, rn_log_open_info_str), then
 *   offset  timestamp  key  value
 *   0  1732412345678  sample-1  hello
 * timestamp in ms since the epoch; null keys/values print as "(null)";
 * bytes outside printable ASCII print as \xNN so a binary record cannot
 * garble the terminal. Errors on stderr; exit 0 ok, 1 error, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"

#define LOG_NAME "demo-0"
#define READ_MAX (1024 * 1024)
#define USAGE                                                                                      \
    "usage: runnel-storage-demo --dir DIR   (records: one per stdin line, KEY<TAB>VALUE)\n"

static int report(const rn_log *log, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runnel-storage-demo: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (err)
        fprintf(stderr, ": %s", rn_strerror(err));
    if (log && rn_log_errmsg(log)[0])
        fprintf(stderr, " (%s)", rn_log_errmsg(log));
    fputc('\n', stderr);
    return -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The one line recovery leaves, in the broker's logfmt: what opening found
 * (clean start, or segments scanned and bytes dropped) and the offsets kept. */
static void print_recovery(const rn_log *log, const rn_log_open_info *in)
{
    char buf[512];
    rn_log_open_info_str(in, buf, sizeof(buf));
    printf("log=%s msg=opened %s start_offset=%" PRId64 " end_offset=%" PRId64 "\n",
           rn_log_name(log), buf, rn_log_start_offset(log), rn_log_end_offset(log));
}

/* ------------------------------------------------------------------------ */
/* Appending                                                                 */
/* ------------------------------------------------------------------------ */

/* Finish the builder's batch and append it durably; a no-op when it is empty. */
static int flush_batch(rn_log *log, rn_batch_builder *bb)
{
    if (rn_batch_builder_count(bb) == 0)
        return 0;
    uint8_t *batch;
    size_t len;
    int rc = rn_batch_builder_finish(bb, &batch, &len);
    if (rc < 0)
        return report(NULL, rc, "building a batch");
    int64_t base;
    rc = rn_log_append_sync(log, batch, len, 0, &base);
    if (rc < 0) {
        report(log, rc, "appending a batch of %zu bytes", len);
        free(batch);
        return -1;
    }
    fprintf(stderr, "runnel-storage-demo: appended %zu bytes at offset %" PRId64 "\n", len, base);
    free(batch);
    return 0;
}

static int add_line(rn_log *log, rn_batch_builder *bb, size_t max_batch, char *line, size_t len,
                    int64_t ts)
{
    char *tab = memchr(line, '\t', len);
    const char *key = NULL, *value = line;
    size_t key_len = 0, value_len = len;
    if (tab) {
        key = line;
        key_len = (size_t)(tab - line);
        value = tab + 1;
        value_len = len - key_len - 1;
    }
    /* Start a new batch before this record would push the current one past
     * message.max.bytes (64 bytes cover a record's varints and the slack). */
    if (rn_batch_builder_count(bb) > 0 &&
        rn_batch_builder_size(bb) + key_len + value_len + 64 > max_batch) {
        int rc = flush_batch(log, bb);
        if (rc < 0)
            return rc;
    }
    int rc = rn_batch_builder_add(bb, ts, key, key_len, value, value_len, NULL, 0);
    if (rc < 0)
        return report(NULL, rc, "adding a record");
    return 0;
}

/* Records from stdin lines, or three samples when stdin is a terminal. */
static int append_input(rn_log *log)
{
    rn_batch_builder *bb;
    int rc = rn_batch_builder_new(&bb, NULL);
    if (rc < 0)
        return report(NULL, rc, "batch builder");
    size_t max_batch = rn_log_config_of(log)->max_batch_bytes;
    int64_t ts = now_ms();

    if (isatty(STDIN_FILENO)) {
        static const char *samples[] = {"sample-1\thello", "sample-2\tfrom", "sample-3\trunnel"};
        for (size_t i = 0; i < 3 && rc == 0; i++) {
            char buf[32];
            size_t len = strlen(samples[i]);
            memcpy(buf, samples[i], len + 1);
            rc = add_line(log, bb, max_batch, buf, len, ts);
        }
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
            size_t len = (size_t)n;
            if (len > 0 && line[len - 1] == '\n')
                len--;
            rc = add_line(log, bb, max_batch, line, len, ts);
        }
        if (rc == 0 && ferror(stdin))
            rc = report(NULL, -errno, "reading stdin");
        free(line);
    }
    if (rc == 0)
        rc = flush_batch(log, bb);
    rn_batch_builder_free(bb);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

static void print_bytes(const uint8_t *p, int32_t len)
{
    if (!p || len < 0) {
        fputs("(null)", stdout);
        return;
    }
    for (int32_t i = 0; i < len; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
}

static int print_log(rn_log *log)
{
    int64_t off = rn_log_start_offset(log), hw = rn_log_high_watermark(log);
    printf("offset  timestamp  key  value\n");
    while (off < hw) {
        rn_slice s;
        int rc = rn_log_read(log, off, READ_MAX, hw, &s);
        if (rc < 0)
            return report(log, rc, "reading at offset %" PRId64, off);
        if (s.len == 0) {
            rn_slice_release(&s);
            return report(log, 0, "reading at offset %" PRId64 ": nothing below %" PRId64, off, hw);
        }
        for (size_t pos = 0; pos < s.len;) {
            rn_batch_iter it;
            rc = rn_batch_iter_init(&it, s.data + pos, s.len - pos, 0);
            if (rc < 0) {
                rn_slice_release(&s);
                return report(log, rc, "batch at position %zu of the slice from offset %" PRId64,
                              pos, s.base_offset);
            }
            rn_record rec;
            while ((rc = rn_batch_iter_next(&it, &rec)) == 1) {
                if (rec.offset < off)
                    continue; /* the slice starts with the batch containing off */
                printf("%" PRId64 "  %" PRId64 "  ", rec.offset, rec.timestamp);
                print_bytes(rec.key, rec.key_len);
                fputs("  ", stdout);
                print_bytes(rec.value, rec.value_len);
                putchar('\n');
            }
            size_t size = rn_batch_size(&it.h);
            rn_batch_iter_fini(&it);
            if (rc < 0) {
                rn_slice_release(&s);
                return report(log, rc, "record in the batch at offset %" PRId64, it.h.base_offset);
            }
            pos += size;
        }
        off = s.next_offset;
        rn_slice_release(&s);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        if (c == 'd') {
            dir = optarg;
        } else if (c == 'h') {
            fputs(USAGE, stdout);
            return 0;
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (!dir || optind < argc) {
        fputs(optind < argc ? "runnel-storage-demo: unexpected argument\n"
                            : "runnel-storage-demo: --dir is required\n",
              stderr);
        fputs(USAGE, stderr);
        return 2;
    }

    /* rn_log_open creates the log's own directory, not its parents. */
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        report(NULL, -errno, "creating %s", dir);
        return 1;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, LOG_NAME) >= (int)sizeof(path)) {
        report(NULL, -ENAMETOOLONG, "%s", dir);
        return 1;
    }

    rn_io *io = NULL;
    int rc = rn_io_new(&io, 64);
    if (rc < 0) {
        report(NULL, rc, "io_uring setup");
        return 1;
    }
    rn_log_config cfg;
    rn_log_config_default(&cfg);
    rn_log *log = NULL;
    rn_log_open_info info;
    rc = rn_log_open(&log, io, path, LOG_NAME, &cfg, &info);
    if (rc < 0) {
        report(NULL, rc, "opening %s", path);
        rn_io_free(io);
        return 1;
    }
    print_recovery(log, &info);
    fflush(stdout);

    /* Close cleanly even after an error: a rejected batch left the log
     * intact, and rn_log_close writes the clean marker only when the log
     * itself is healthy, so the next start scans exactly when it must. */
    int status = append_input(log) < 0 || print_log(log) < 0 ? 1 : 0;
    rc = rn_log_close(log);
    if (rc < 0) {
        report(NULL, rc, "closing %s", path);
        status = 1;
    }
    rn_io_free(io);
    if (fflush(stdout) != 0 && status == 0) {
        report(NULL, -errno, "writing stdout");
        status = 1;
    }
    return status;
}
