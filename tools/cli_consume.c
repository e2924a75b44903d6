/*
 * cli_consume.c — `runnel consume TOPIC`: read records and print them, as
 * kcat -C does.
 *
 * How it fits: librunnel's consumer (rn_consumer_*) reads the chosen
 * partitions; the admin client answers "how many partitions" and "which offset"
 * for -o -N and s@MS; every record prints through cli_output.c (the same code
 * `runnel replay` uses), as a kcat format (-f), JSON lines (-J), or kcat's
 * default: [key -K] value -D.
 *
 * Where to start, per partition (-o, kcat's spellings):
 *   beginning | end | N (absolute) | -N (N before the end, clamped to the log
 *   start) | s@MS (the first record with timestamp >= MS, as Kafka's
 *   offsetsForTimes: later records are all delivered) | e@MS (stop a
 *   partition at its first record with timestamp >= MS; may be given with a
 *   start: -o s@A -o e@B). `stored` (the group's committed offsets) goes
 *   with -G.
 *
 * Group mode (-G GROUP, kcat's balanced consumer): the process joins GROUP
 * and subscribes to TOPIC; the coordinator decides which partitions it reads
 * (rebalance notes on stderr), each starts at the group's committed offset,
 * else where -o beginning|end says (auto.offset.reset; default beginning).
 * Positions are committed every auto.commit.interval.ms and on exit, so the
 * next member starts after the last record this one printed: with -c the
 * partitions are moved back to the first record not printed before the
 * final commit.
 *
 * When to stop: -c COUNT records, -e when every partition has reached the high
 * watermark (checked after each fetch, so records produced meanwhile count),
 * every partition past the end of its e@MS window, ^C — else never (tail -f).
 * A partition is past the window's end at its first record with timestamp
 * >= MS, or, once the clock has passed MS, at its high watermark: a record
 * written later carries a later timestamp, so a window wholly in the past
 * ends where the log ends, as kcat's does. In group mode e@MS ends each
 * partition given to this member the same way; records past the end are not
 * printed and the partition is moved back to the end after every poll, so
 * the group's commit stops there and a later run reads on from it. -e in group mode:
 * when every assigned partition has reached the end seen at start (records
 * produced meanwhile are left to the next run), or when the group has given
 * this member nothing for GROUP_IDLE_EXIT_MS (the others hold every
 * partition).
 *
 * A batch that cannot be read (stored by an older runneld that did not
 * validate records, or damaged on disk) is named on stderr and skipped, as
 * kcat reports a message it cannot read; the records after it still print,
 * and the exit status is 1.
 *
 * Invariants:
 *   1. The default and -f outputs write keys and values byte-exact (binary too).
 *   2. stdout is flushed after every poll's records, so a pipe sees records as
 *      they come, and -c never prints more than COUNT.
 *   3. In group mode nothing is committed past the last record printed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/errors.h"
#include "tools/cli_common.h"

#define POLL_MS 200
/* -e in group mode: a member given no partition for this long gives up. */
#define GROUP_IDLE_EXIT_MS 3000

enum start_kind { S_BEGINNING, S_END, S_ABS, S_TAIL, S_TIME, S_STORED };

typedef struct part_state {
    int32_t partition;
    bool skip_before_ts; /* s@MS: still before the first record >= start_ts */
    bool done;           /* past the end of the e@MS window */
} part_state;

/* A failed poll (err < 0). A corrupt batch the consumer stepped over (one a
 * broker stored before it validated records on produce): say which, as kcat
 * says for a message it cannot read, and go on with the records after it
 * (returns true); the exit status then says that something was skipped.
 * Anything else ends the loop (false): quietly after ^C, else with one line
 * naming what failed and status CLI_ERROR. */
static bool poll_failed(int err, rn_consumer *cons, const char *topic, cli_progress *progress,
                        int *status)
{
    if (cli_stop)
        return false;
    cli_progress_done(progress);
    if (err == -RN_E_CORRUPT_BATCH) {
        cli_fail(0, "%s: %s", rn_err_str(err), rn_consumer_errmsg(cons));
        *status = CLI_ERROR; /* the records after it still print */
        return true;
    }
    const char *ctx = rn_consumer_errmsg(cons);
    if (ctx && ctx[0]) /* it names the partition and says what went wrong */
        cli_fail(0, "%s", ctx);
    else
        cli_fail(err, "reading %s", topic);
    *status = CLI_ERROR;
    return false;
}

/* After a poll's records went out: flush stdout and redraw the progress
 * line. True when the loop is to end: count records are out, or the write
 * failed (one line, status CLI_ERROR). */
static bool output_done(cli_progress *progress, uint64_t printed, uint64_t bytes, int64_t count,
                        int *status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_progress_done(progress);
        *status = cli_fail(-errno, "writing stdout");
        return true;
    }
    cli_progress_update(progress, printed, bytes);
    return count > 0 && printed >= (uint64_t)count;
}

static void usage(FILE *f)
{
    fputs("usage: runnel consume TOPIC [options]\n"
          "\n"
          "Read records from TOPIC (all partitions unless -p) and print them.\n"
          "Without -e, -c or -o e@MS it waits for new records forever, like tail -f:\n"
          "stop it with ^C.\n"
          "\n"
          "options:\n"
          "  -p, --partition N      read partition N only; repeatable\n"
          "  -o, --offset OFFSET    where to start (default beginning):\n"
          "                           beginning | end | N | -N (N records before the end)\n"
          "                           s@MS  first record with timestamp >= MS (ms since epoch)\n"
          "                           e@MS  stop at the first record with timestamp >= MS, or\n"
          "                                 at the end once MS has passed (with a start:\n"
          "                                 -o s@A -o e@B reads the window and exits)\n"
          "                           stored  the group's committed offsets (with -G)\n"
          "                         with -G: beginning, end or stored, and e@MS (the\n"
          "                         group's commit stops at the window's end)\n"
          "  -G, --group GROUP      join consumer group GROUP: the group shares TOPIC's\n"
          "                         partitions among its members and remembers how far\n"
          "                         they got; a partition starts at the committed offset,\n"
          "                         else at -o beginning (default) or -o end. Not with -p\n"
          "  -c, --count COUNT      exit after COUNT records\n"
          "  -e, --exit             exit at the end of every partition (with -G: of every\n"
          "                         partition given to this member, as the end was at\n"
          "                         start; or when the group gives it none)\n"
          "  -f, --format FORMAT    print with a kcat format: %s value, %S value length,\n"
          "                         %k key, %K key length, %t topic, %p partition,\n"
          "                         %o offset, %T timestamp (ms), %h headers (n=v,...),\n"
          "                         %% percent; \\n \\t \\r \\0 \\xNN escapes\n"
          "  -J, --json             one JSON object a line: topic, partition, offset, ts,\n"
          "                         headers, key, payload (base64 and a *_encoding field\n"
          "                         when not UTF-8)\n"
          "  -D, --delimiter DELIM  after each value in the default output (default \\n;\n"
          "                         -D '' writes values back to back, byte-exact)\n"
          "  -K, --key-delimiter SEP  print the key and SEP before each value\n" CLI_CONN_HELP
          "  -h, --help             this text\n"
          "\n"
          "examples:\n"
          "  runnel consume orders -e\n"
          "  runnel consume orders -o -10 -e -f '%p:%o %k=%s\\n'\n"
          "  runnel consume orders -o s@1732400000000 -J | jq .payload\n"
          "  runnel consume images -p 0 -o 42 -c 1 -D '' > photo.jpg\n"
          "  runnel consume orders -G billing -e     # read what billing has not read yet\n"
          "  runnel consume orders -G billing -o end # new records only, in a shared group\n",
          f);
}

/* Parse one -o value into start (kind, value) or end_ts. Returns 0, or
 * CLI_USAGE after saying why. */
static int parse_offset(const char *s, enum start_kind *kind, int64_t *v, int64_t *end_ts,
                        bool *have_start)
{
    int64_t n;
    if (strncmp(s, "e@", 2) == 0) {
        if (cli_parse_i64(s + 2, 0, INT64_MAX, &n) < 0)
            return cli_usage("-o %s: expected e@MS (ms since the epoch)", s);
        *end_ts = n;
        return 0;
    }
    if (*have_start)
        return cli_usage("-o %s: a start was given already (only e@MS may join it)", s);
    *have_start = true;
    if (!strcmp(s, "beginning") || !strcmp(s, "earliest") || !strcmp(s, "oldest")) {
        *kind = S_BEGINNING;
    } else if (!strcmp(s, "end") || !strcmp(s, "latest") || !strcmp(s, "newest")) {
        *kind = S_END;
    } else if (!strcmp(s, "stored")) {
        *kind = S_STORED;
    } else if (strncmp(s, "s@", 2) == 0) {
        if (cli_parse_i64(s + 2, 0, INT64_MAX, &n) < 0)
            return cli_usage("-o %s: expected s@MS (ms since the epoch)", s);
        *kind = S_TIME;
        *v = n;
    } else if (s[0] == '-') {
        if (cli_parse_i64(s + 1, 1, INT64_MAX, &n) < 0)
            return cli_usage("-o %s: expected -N with N >= 1", s);
        *kind = S_TAIL;
        *v = n;
    } else {
        if (cli_parse_i64(s, 0, INT64_MAX, &n) < 0)
            return cli_usage("-o %s: expected beginning, end, N, -N, s@MS or e@MS", s);
        *kind = S_ABS;
        *v = n;
    }
    return 0;
}

/* An admin call's failure, once: the client's message says what was asked
 * and what went wrong; what is the fallback when it has none. */
static int admin_fail(rn_admin *a, int rc, const char *what)
{
    const char *ctx = rn_admin_errmsg(a);
    if (rc == -RN_E_UNKNOWN_TOPIC)
        return cli_fail(0, "%s: no such topic or partition", what);
    if (ctx && ctx[0])
        return cli_fail(0, "%s", ctx);
    return cli_fail(rc, "%s", what);
}

/* The offset to assign partition p from (an offset or RN_START_*). */
static int start_offset(rn_admin *a, const char *topic, int32_t p, enum start_kind kind, int64_t v,
                        int64_t *out)
{
    int64_t first, last, off;
    int rc;
    switch (kind) {
    case S_BEGINNING:
        *out = RN_START_BEGINNING;
        return 0;
    case S_END:
        *out = RN_START_END;
        return 0;
    case S_ABS:
        *out = v;
        return 0;
    case S_TAIL:
        rc = rn_admin_list_offset(a, topic, p, RN_OFFSET_EARLIEST, &first);
        if (rc == 0)
            rc = rn_admin_list_offset(a, topic, p, RN_OFFSET_LATEST, &last);
        if (rc < 0) {
            char what[300];
            snprintf(what, sizeof(what), "offsets of %s partition %d", topic, p);
            return admin_fail(a, rc, what);
        }
        *out = last - v < first ? first : last - v;
        return 0;
    case S_STORED:
        return -EINVAL; /* group mode only: the consumer finds it */
    case S_TIME:
        rc = rn_admin_list_offset(a, topic, p, v, &off);
        if (rc < 0) {
            char what[300];
            snprintf(what, sizeof(what), "offset for time %" PRId64 " in %s partition %d", v, topic,
                     p);
            return admin_fail(a, rc, what);
        }
        /* -1: nothing that recent yet; what comes next is. */
        *out = off < 0 ? RN_START_END : off;
        return 0;
    }
    return -EINVAL;
}

/* -e: every partition has a known high watermark and has reached it, or is done. */
static bool all_at_end(const rn_consumer *c, const char *topic, const part_state *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ps[i].done)
            continue;
        int64_t hw = rn_consumer_high_watermark(c, topic, ps[i].partition);
        int64_t pos = rn_consumer_position(c, topic, ps[i].partition);
        if (hw < 0 || pos < 0 || pos < hw)
            return false;
    }
    return true;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* e@MS once the clock has passed MS: a partition at its high watermark is
 * past the window (what comes later is later). Returns how many became
 * done. */
static size_t window_closed(const rn_consumer *c, const char *topic, part_state *ps, size_t n,
                            int64_t end_ts)
{
    if (wall_ms() < end_ts)
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ps[i].done)
            continue;
        int64_t hw = rn_consumer_high_watermark(c, topic, ps[i].partition);
        int64_t pos = rn_consumer_position(c, topic, ps[i].partition);
        if (hw >= 0 && pos >= 0 && pos >= hw) {
            ps[i].done = true;
            k++;
        }
    }
    return k;
}

static part_state *find_part(part_state *ps, size_t n, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (ps[i].partition == p)
            return &ps[i];
    return NULL;
}

/* ---- Group mode ------------------------------------------------------------------------ */

/* Rebalance notes, gathered by the callback and printed after the poll. */
typedef struct rebalance_note {
    int32_t *assigned, *revoked;
    size_t n_assigned, n_revoked, cap;
} rebalance_note;

static void on_rebalance(void *arg, int assigned, const char *topic, int32_t partition)
{
    rebalance_note *r = arg;
    (void)topic; /* one topic per consume */
    if (r->n_assigned + r->n_revoked >= r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        int32_t *a = realloc(r->assigned, cap * sizeof(*a));
        if (a)
            r->assigned = a;
        int32_t *v = realloc(r->revoked, cap * sizeof(*v));
        if (v)
            r->revoked = v;
        if (!a || !v)
            return; /* a note lost to memory pressure, nothing else */
        r->cap = cap;
    }
    if (assigned)
        r->assigned[r->n_assigned++] = partition;
    else
        r->revoked[r->n_revoked++] = partition;
}

static void note_list(const char *topic, const char *what, const int32_t *v, size_t n)
{
    char buf[512];
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && len < sizeof(buf) - 16; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%d", i ? "," : "", v[i]);
    cli_note("%s %s partition%s %s", what, topic, n == 1 ? "" : "s", buf);
}

static void note_flush(rebalance_note *r, const char *topic)
{
    if (r->n_revoked)
        note_list(topic, "revoked", r->revoked, r->n_revoked);
    if (r->n_assigned)
        note_list(topic, "assigned", r->assigned, r->n_assigned);
    r->n_assigned = r->n_revoked = 0;
}

/* -e in group mode: every partition given to us is at the end seen at start. */
static bool group_at_end(rn_consumer *c, const int64_t *ends, int32_t n_parts, size_t *n_assigned)
{
    const char *const *topics;
    const int32_t *parts;
    size_t n = rn_consumer_assignment(c, &topics, &parts);
    *n_assigned = n;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        int64_t pos = rn_consumer_position(c, topics[i], parts[i]);
        if (parts[i] >= n_parts || pos < 0 || pos < ends[parts[i]])
            return false;
    }
    return true;
}

/* e@MS in group mode: stop[p] is where partition p's window ends (the first
 * offset not to print), or -1 while it has not ended. A partition cannot be
 * paused, so one that has ended is moved back to stop[p] after every poll:
 * its records past the window are dropped unprinted and the commit stays at
 * stop[p] (invariant 3). */
static void window_mark(rn_consumer *c, const char *topic, int64_t *stop, int32_t n_parts,
                        int64_t end_ts)
{
    if (wall_ms() < end_ts)
        return;
    const char *const *topics;
    const int32_t *parts;
    size_t n = rn_consumer_assignment(c, &topics, &parts);
    for (size_t i = 0; i < n; i++) {
        int32_t p = parts[i];
        if (p >= n_parts || stop[p] >= 0)
            continue;
        int64_t hw = rn_consumer_high_watermark(c, topic, p);
        int64_t pos = rn_consumer_position(c, topic, p);
        if (hw >= 0 && pos >= 0 && pos >= hw)
            stop[p] = pos;
    }
}

/* Every partition given to this member has ended its window. */
static bool window_all_ended(rn_consumer *c, const int64_t *stop, int32_t n_parts,
                             size_t *n_assigned)
{
    const char *const *topics;
    const int32_t *parts;
    size_t n = rn_consumer_assignment(c, &topics, &parts);
    *n_assigned = n;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (parts[i] >= n_parts || stop[parts[i]] < 0)
            return false;
    return true;
}

/* Consume topic as a member of group until -c, -e, the end of an e@MS
 * window or ^C. Returns the exit status. */
static int consume_group(const cli_conn *conn, rn_admin *a, const char *topic, int32_t n_parts,
                         const char *group, enum start_kind kind, int64_t count, bool exit_at_end,
                         int64_t end_ts, bool json, const cli_format *fmt)
{
    char gid[300];
    snprintf(gid, sizeof(gid), "group.id=%s", group);
    const char *extra[] = {
        gid, "client.id=runnel-consume",
        kind == S_END ? "auto.offset.reset=latest" : "auto.offset.reset=earliest", NULL};
    int status = CLI_ERROR;
    rn_consumer *cons = NULL;
    int64_t *ends = NULL, *stop = NULL;
    rebalance_note notes = {0};
    rn_conf *conf = cli_conn_conf(conn, extra);
    if (!conf)
        goto out;
    /* The end as it is now, for -e: records produced later wait for the next run. */
    ends = calloc((size_t)n_parts + 1, sizeof(*ends));
    stop = malloc(((size_t)n_parts + 1) * sizeof(*stop));
    if (!ends || !stop) {
        cli_fail(-ENOMEM, "partitions");
        goto out;
    }
    for (int32_t p = 0; exit_at_end && p < n_parts; p++) {
        int rc = rn_admin_list_offset(a, topic, p, RN_OFFSET_LATEST, &ends[p]);
        if (rc < 0) {
            char what[300];
            snprintf(what, sizeof(what), "end of %s partition %d", topic, p);
            admin_fail(a, rc, what);
            goto out;
        }
    }
    int rc = rn_consumer_new(&cons, conf);
    if (rc < 0) {
        cli_fail(rc, "consumer");
        goto out;
    }
    rn_consumer_set_rebalance_cb(cons, on_rebalance, &notes);
    const char *topics[] = {topic};
    rc = rn_consumer_subscribe(cons, topics, 1);
    if (rc < 0) {
        cli_fail(0, "group %s: %s", group, rn_consumer_errmsg(cons));
        goto out;
    }
    for (int32_t p = 0; p <= n_parts; p++)
        stop[p] = -1;
    cli_signals_install();
    cli_progress progress;
    cli_progress_init(&progress, "records", count > 0 ? (uint64_t)count : 0, true);
    uint64_t printed = 0, bytes = 0;
    int64_t idle_since = 0;
    status = CLI_OK;
    while (!cli_stop) {
        const rn_message *msgs;
        int n = rn_consumer_poll(cons, POLL_MS, &msgs);
        /* A partition given anew starts its window over (its committed
         * offset is where the last owner stopped). */
        for (size_t k = 0; k < notes.n_assigned; k++)
            if (notes.assigned[k] < n_parts)
                stop[notes.assigned[k]] = -1;
        note_flush(&notes, topic);
        if (n < 0) {
            if (poll_failed(n, cons, topic, &progress, &status))
                continue;
            break;
        }
        int i = 0;
        bool past_only = n > 0; /* every record returned lay past a window */
        for (; i < n && (count < 0 || printed < (uint64_t)count); i++) {
            int32_t p = msgs[i].partition;
            if (end_ts >= 0 && p < n_parts) {
                if (stop[p] < 0 && msgs[i].timestamp >= end_ts)
                    stop[p] = msgs[i].offset;
                if (stop[p] >= 0)
                    continue; /* past the window: not printed, not committed */
            }
            past_only = false;
            int wrc =
                json ? cli_write_json(stdout, &msgs[i]) : cli_format_write(stdout, fmt, &msgs[i]);
            if (wrc < 0)
                break;
            printed++;
            bytes += msgs[i].value_len + msgs[i].key_len;
        }
        /* Records returned but not printed (-c, a write error) go back, so
         * the final commit stops at the last one printed (invariant 3). */
        for (int k = i; k < n; k++) {
            bool first = true;
            for (int j = i; j < k && first; j++)
                first = msgs[j].partition != msgs[k].partition;
            if (first)
                rn_consumer_seek(cons, topic, msgs[k].partition, msgs[k].offset);
        }
        /* Ended windows go back to their end, so the commit stays there. */
        for (int k = 0; end_ts >= 0 && k < i; k++) {
            int32_t p = msgs[k].partition;
            if (p < n_parts && stop[p] >= 0)
                rn_consumer_seek(cons, topic, p, stop[p]);
        }
        if (output_done(&progress, printed, bytes, count, &status))
            break;
        size_t n_assigned = 0;
        if (end_ts >= 0) {
            window_mark(cons, topic, stop, n_parts, end_ts);
            if (window_all_ended(cons, stop, n_parts, &n_assigned))
                break;
            /* Only ended partitions answered: they are fetched again at
             * once (no pause), so wait a little instead of spinning. */
            if (past_only)
                nanosleep(&(struct timespec){.tv_nsec = POLL_MS / 4 * 1000000L}, NULL);
        }
        if (!exit_at_end && end_ts < 0)
            continue;
        if (exit_at_end && group_at_end(cons, ends, n_parts, &n_assigned))
            break;
        int64_t now = cli_mono_us() / 1000;
        if (n_assigned)
            idle_since = 0;
        else if (!idle_since)
            idle_since = now;
        else if (now - idle_since >= GROUP_IDLE_EXIT_MS) {
            cli_progress_done(&progress);
            cli_note("group %s gave this member no partition of %s within %d ms (its other "
                     "members hold them all)",
                     group, topic, GROUP_IDLE_EXIT_MS);
            break;
        }
    }
    cli_progress_done(&progress);
    /* The final commit and the leave, so the partitions move at once. */
    rc = rn_consumer_unsubscribe(cons);
    if (rc < 0) {
        cli_fail(0, "group %s: final commit: %s", group, rn_consumer_errmsg(cons));
        status = CLI_ERROR;
    }
out:
    if (cons)
        rn_consumer_close(cons);
    rn_conf_free(conf);
    free(ends);
    free(stop);
    free(notes.assigned);
    free(notes.revoked);
    return status;
}

int cli_consume(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"partition", required_argument, NULL, 'p'},
        {"offset", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'c'},
        {"exit", no_argument, NULL, 'e'},
        {"format", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'J'},
        {"delimiter", required_argument, NULL, 'D'},
        {"key-delimiter", required_argument, NULL, 'K'},
        {"group", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_conn conn;
    cli_conn_init(&conn);
    part_state *ps = NULL;
    size_t n_ps = 0;
    enum start_kind kind = S_BEGINNING;
    int64_t start_v = 0, end_ts = -1, count = -1;
    bool have_start = false, exit_at_end = false, json = false;
    const char *format = NULL;
    char *delim = NULL, *key_delim = NULL;
    size_t delim_len = 0, key_delim_len = 0;
    bool delim_set = false;
    int status = CLI_USAGE;
    cli_format *fmt = NULL;
    rn_conf *conf = NULL;
    rn_admin *a = NULL;
    rn_consumer *cons = NULL;
    const char *group = NULL;

    int c;
    while ((c = cli_getopt(argc, argv, ":b:X:p:o:c:ef:JD:K:G:h", longopts, &conn, usage,
                           &status)) != -1) {
        int64_t v;
        switch (c) {
        case 'p': {
            if (cli_parse_i64(optarg, 0, INT32_MAX, &v) < 0) {
                status = cli_usage("-p %s: partition must be a number from 0", optarg);
                goto out;
            }
            if (find_part(ps, n_ps, (int32_t)v))
                break;
            part_state *np = realloc(ps, (n_ps + 1) * sizeof(*np));
            if (!np) {
                status = cli_fail(-ENOMEM, "options");
                goto out;
            }
            ps = np;
            ps[n_ps++] = (part_state){.partition = (int32_t)v};
            break;
        }
        case 'o':
            status = parse_offset(optarg, &kind, &start_v, &end_ts, &have_start);
            if (status != CLI_OK)
                goto out;
            break;
        case 'c':
            if (cli_parse_i64(optarg, 1, INT64_MAX, &count) < 0) {
                status = cli_usage("-c %s: expected a count from 1", optarg);
                goto out;
            }
            break;
        case 'e':
            exit_at_end = true;
            break;
        case 'f':
            format = optarg;
            break;
        case 'J':
            json = true;
            break;
        case 'D':
            status = cli_opt_unescape("-D", optarg, &delim, &delim_len);
            if (status != CLI_OK)
                goto out;
            delim_set = true;
            break;
        case 'K':
            status = cli_opt_unescape("-K", optarg, &key_delim, &key_delim_len);
            if (status != CLI_OK)
                goto out;
            break;
        case 'G':
            if (!*optarg) {
                status = cli_usage("-G: the group name must not be empty");
                goto out;
            }
            group = optarg;
            break;
        case CLI_OPT_EXIT:
            goto out;
        default:
            status = cli_opt_error(c, argv);
            goto out;
        }
    }
    const char *topic = NULL;
    status = cli_one_topic(argc, argv, &topic);
    if (status != CLI_OK)
        goto out;
    if (group && n_ps) {
        status = cli_usage("-p and -G: the group chooses the partitions; drop one of them");
        goto out;
    }
    if (group && have_start && kind != S_BEGINNING && kind != S_END && kind != S_STORED) {
        status = cli_usage("with -G, -o takes beginning, end or stored (where a partition "
                           "without a committed offset starts), and e@MS");
        goto out;
    }
    if (!group && kind == S_STORED) {
        status = cli_usage("-o stored: committed offsets belong to a consumer group: add -G GROUP");
        goto out;
    }
    if (json + (format != NULL) > 1) {
        status = cli_usage("-J and -f both choose the output: pick one");
        goto out;
    }
    if ((json || format) && (delim_set || key_delim)) {
        status = cli_usage("-D and -K shape the default output; with -f put them in the format");
        goto out;
    }
    if (format) {
        char err[160] = "";
        int rc = cli_format_compile(format, &fmt, err, sizeof(err));
        if (rc == -EINVAL) {
            status = cli_usage("-f: %s", err);
            goto out;
        }
        if (rc < 0) {
            status = cli_fail(rc, "format");
            goto out;
        }
    } else if (!json) {
        int rc = cli_format_default(key_delim, key_delim_len, delim_set ? delim : "\n",
                                    delim_set ? delim_len : 1, &fmt);
        if (rc < 0) {
            status = cli_fail(rc, "format");
            goto out;
        }
    }

    status = cli_conn_start(&conn);
    if (status != CLI_OK)
        goto out;
    status = CLI_ERROR;
    conf = cli_conn_conf(&conn, NULL);
    if (!conf)
        goto out;
    int rc = rn_admin_new(&a, conf);
    if (rc < 0) {
        cli_fail(rc, "admin client");
        goto out;
    }
    int32_t n_parts;
    rc = rn_admin_partition_count(a, topic, &n_parts);
    if (rc < 0) {
        if (rc == -RN_E_UNKNOWN_TOPIC)
            cli_error("topic %s does not exist", topic);
        else
            admin_fail(a, rc, "partitions");
        goto out;
    }
    if (group) {
        status = consume_group(&conn, a, topic, n_parts, group, kind, count, exit_at_end, end_ts,
                               json, fmt);
        goto out;
    }
    if (n_ps == 0) {
        ps = calloc((size_t)n_parts, sizeof(*ps));
        if (!ps && n_parts) {
            cli_fail(-ENOMEM, "partitions");
            goto out;
        }
        for (int32_t p = 0; p < n_parts; p++)
            ps[p].partition = p;
        n_ps = (size_t)n_parts;
    }
    rc = rn_consumer_new(&cons, conf);
    if (rc < 0) {
        cli_fail(rc, "consumer");
        goto out;
    }
    for (size_t i = 0; i < n_ps; i++) {
        if (ps[i].partition >= n_parts) {
            cli_fail(0, "topic %s has %d partitions: there is no partition %d", topic, n_parts,
                     ps[i].partition);
            goto out;
        }
        int64_t off = RN_START_BEGINNING;
        if (start_offset(a, topic, ps[i].partition, kind, start_v, &off) != 0)
            goto out;
        ps[i].skip_before_ts = kind == S_TIME;
        rc = rn_consumer_assign(cons, topic, ps[i].partition, off);
        if (rc < 0) {
            cli_fail(0, "reading %s partition %d: %s", topic, ps[i].partition,
                     rn_consumer_errmsg(cons)[0] ? rn_consumer_errmsg(cons) : rn_err_str(rc));
            goto out;
        }
    }
    /* The admin connection has done its part; the consumer keeps its own. */
    rn_admin_free(a);
    a = NULL;

    cli_signals_install();
    cli_progress progress;
    cli_progress_init(&progress, "records", count > 0 ? (uint64_t)count : 0, true);
    uint64_t printed = 0, bytes = 0;
    size_t n_done = 0;
    status = CLI_OK;
    while (!cli_stop) {
        if (end_ts >= 0)
            n_done += window_closed(cons, topic, ps, n_ps, end_ts);
        if (n_ps == 0 || (n_done == n_ps))
            break;
        if (exit_at_end && all_at_end(cons, topic, ps, n_ps))
            break;
        const rn_message *msgs;
        int n = rn_consumer_poll(cons, POLL_MS, &msgs);
        if (n < 0) {
            if (poll_failed(n, cons, topic, &progress, &status))
                continue;
            break;
        }
        for (int i = 0; i < n && (count < 0 || printed < (uint64_t)count); i++) {
            const rn_message *m = &msgs[i];
            part_state *st = find_part(ps, n_ps, m->partition);
            if (!st || st->done)
                continue;
            if (st->skip_before_ts) {
                if (m->timestamp < start_v)
                    continue;
                st->skip_before_ts = false;
            }
            if (end_ts >= 0 && m->timestamp >= end_ts) {
                st->done = true;
                n_done++;
                continue;
            }
            int wrc = json ? cli_write_json(stdout, m) : cli_format_write(stdout, fmt, m);
            if (wrc < 0)
                break;
            printed++;
            bytes += m->value_len + m->key_len;
        }
        if (output_done(&progress, printed, bytes, count, &status))
            break;
    }
    cli_progress_done(&progress);
out:
    if (cons)
        rn_consumer_close(cons);
    if (a)
        rn_admin_free(a);
    rn_conf_free(conf);
    cli_format_free(fmt);
    free(ps);
    free(delim);
    free(key_delim);
    cli_conn_fini(&conn);
    return status;
}
