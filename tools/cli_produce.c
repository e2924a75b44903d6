/*
 * cli_produce.c — `runnel produce TOPIC`: records from stdin or a file.
 *
 * How it fits: splits the input into records (kcat's -D message delimiter,
 * -K key delimiter), hands each to librunnel's producer (rn_producer_send),
 * which batches, partitions by key and retries; delivery reports count what
 * the brokers acknowledged.
 *
 * Input framing:
 *   - default: one record per line ("\n"); -D DELIM any byte string (escapes
 *     \n \t \r \0 \\ \xNN). A delimiter at the very end does not make an empty
 *     last record; an empty line in the middle is an empty record (bytes in,
 *     bytes out).
 *   - -D '' or --raw: the whole input is one value, byte-exact (binary files).
 *   - -K SEP: each record splits at the first SEP into key and value; a record
 *     without SEP has a null key. -k KEY gives every record the same key.
 *
 * Invariants:
 *   1. Exit 0 only when every record read was acknowledged (with --acks 0:
 *      handed to the broker); otherwise exit 1 and one line says how many
 *      failed and why.
 *   2. Input is read with read(2), so ^C interrupts a wait on a terminal or a
 *      pipe; what was read is still flushed before exiting.
 *   3. Memory stays bounded: the input buffer holds at most one record being
 *      split (RECORD_MAX) plus one read; the producer bounds its own queue
 *      (rn_producer_send says -ENOBUFS and we poll).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/codec.h"
#include "protocol/errors.h"
#include "tools/cli_common.h"

#define READ_CHUNK (256 * 1024)
/* Far above any batch a broker accepts (message.max.bytes is 1 MiB by default):
 * a record this long means the delimiter is wrong, not that data is big. */
#define RECORD_MAX (64 * 1024 * 1024)

enum { OPT_ACKS = 256, OPT_RAW, OPT_TIMESTAMP };

typedef struct produce_state {
    const char *topic;
    int32_t partition;
    const char *key; /* -k */
    size_t key_len;
    char *key_delim; /* -K, owned */
    size_t key_delim_len;
    rn_header *headers; /* -H, names owned */
    size_t n_headers;
    int64_t timestamp;

    rn_producer *p;
    uint64_t n_sent, n_acked, n_failed, bytes_sent;
    int first_err;
    int32_t first_err_partition;
    cli_progress progress;
} produce_state;

static void on_delivery(void *arg, int err, const char *topic, int32_t partition, int64_t offset,
                        void *opaque)
{
    (void)topic, (void)offset, (void)opaque;
    produce_state *st = arg;
    if (err == 0) {
        st->n_acked++;
        return;
    }
    if (st->n_failed++ == 0) {
        st->first_err = err;
        st->first_err_partition = partition;
    }
}

static void usage(FILE *f)
{
    fputs("usage: runnel produce TOPIC [options]\n"
          "\n"
          "Write records to TOPIC: one per line of stdin (or -f FILE). Exits 0 only\n"
          "when every record was acknowledged.\n"
          "\n"
          "options:\n"
          "  -f, --file FILE          read FILE instead of stdin\n"
          "  -D, --delimiter DELIM    record delimiter (default \\n; escapes \\n \\t \\0 \\xNN);\n"
          "                           -D '' reads the whole input as one value\n"
          "      --raw                the whole input is one value, byte-exact (binary)\n"
          "  -K, --key-delimiter SEP  split each record at the first SEP into key and value\n"
          "  -k, --key KEY            the key of every record\n"
          "  -H, --header NAME=VALUE  a header on every record; repeatable\n"
          "  -p, --partition N        write to partition N (default: by key hash;\n"
          "                           keyless records stick to one partition per batch)\n"
          "      --acks 0|1|all       acknowledgement to wait for (default all)\n"
          "  -z, --compression CODEC  none|gzip|snappy|lz4|zstd (default none)\n"
          "      --timestamp MS       record timestamp, ms since the epoch (default "
          "now)\n" CLI_CONN_HELP "  -h, --help               this text\n"
          "\n"
          "examples:\n"
          "  echo hello | runnel produce orders\n"
          "  printf 'alice:1\\nbob:2\\n' | runnel produce orders -K :\n"
          "  runnel produce orders -k user-7 -H source=cli -H trace=abc < events.txt\n"
          "  runnel produce images --raw -f photo.jpg\n"
          "  runnel produce orders -D '\\0' -z zstd --acks 1 -f records.bin\n",
          f);
}

/* Send one record, polling while the producer's queue is full. */
static int send_record(produce_state *st, const char *rec, size_t len)
{
    const char *key = st->key, *value = rec;
    size_t key_len = st->key_len, value_len = len;
    if (st->key_delim) {
        const char *sep =
            st->key_delim_len ? memmem(rec, len, st->key_delim, st->key_delim_len) : NULL;
        if (sep) {
            key = rec;
            key_len = (size_t)(sep - rec);
            value = sep + st->key_delim_len;
            value_len = len - key_len - st->key_delim_len;
        } else {
            key = NULL;
            key_len = 0;
        }
    }
    for (;;) {
        int rc = rn_producer_send(st->p, st->topic, st->partition, key, key_len, value, value_len,
                                  st->headers, st->n_headers, st->timestamp, NULL);
        if (rc == -ENOBUFS && !cli_stop) {
            rc = rn_producer_poll(st->p, 50);
            if (rc < 0)
                return rc;
            continue;
        }
        if (rc < 0)
            return rc;
        break;
    }
    st->n_sent++;
    st->bytes_sent += len;
    if ((st->n_sent & 255) == 0) {
        int rc = rn_producer_poll(st->p, 0);
        if (rc < 0)
            return rc;
        cli_progress_update(&st->progress, st->n_sent, st->bytes_sent);
    }
    return 0;
}

static int report_send_error(produce_state *st, int rc)
{
    const char *ctx = rn_producer_errmsg(st->p);
    if (rc == -RN_E_UNKNOWN_TOPIC && st->partition < 0)
        return cli_error("topic %s does not exist (create it: runnel topic create %s)", st->topic,
                         st->topic);
    if (ctx && ctx[0]) /* the client's message says what went wrong, code included */
        return cli_fail(0, "record %" PRIu64 ": %s", st->n_sent + 1, ctx);
    return cli_fail(rc, "record %" PRIu64, st->n_sent + 1);
}

/* Read fd to the end, sending records as delimiters appear. Returns 0, or
 * CLI_ERROR after printing why (a send or read failed). */
static int pump(produce_state *st, int fd, const char *delim, size_t delim_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0, start = 0, scanned = 0;
    int status = 0;
    bool eof = false;
    while (!eof && !cli_stop) {
        /* Keep room for one more read; drop what was sent first. */
        if (start > 0 && (start >= len || start > cap / 2)) {
            memmove(buf, buf + start, len - start);
            len -= start;
            scanned -= start;
            start = 0;
        }
        if (cap - len < READ_CHUNK) {
            if (len - start > RECORD_MAX) {
                status = cli_fail(0, "a record longer than %d MiB: is the delimiter right?",
                                  RECORD_MAX >> 20);
                goto out;
            }
            size_t ncap = cap ? cap * 2 : 2 * READ_CHUNK;
            while (ncap - len < READ_CHUNK)
                ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                status = cli_fail(-ENOMEM, "input buffer");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            status = cli_fail(-errno, "reading input");
            goto out;
        }
        if (n == 0)
            eof = true;
        len += (size_t)n;
        if (delim_len == 0)
            continue; /* raw: one value at the end */
        /* A delimiter may straddle the previous read's end: back up. */
        size_t from = scanned > start + delim_len - 1 ? scanned - (delim_len - 1) : start;
        for (;;) {
            char *d = memmem(buf + from, len - from, delim, delim_len);
            if (!d)
                break;
            size_t at = (size_t)(d - buf);
            int rc = send_record(st, buf + start, at - start);
            if (rc < 0) {
                status = report_send_error(st, rc);
                goto out;
            }
            start = from = at + delim_len;
            if (cli_stop)
                break;
        }
        scanned = len;
    }
    /* The tail after the last delimiter; with --raw, everything. */
    if (!cli_stop && (len > start || delim_len == 0)) {
        int rc = send_record(st, buf ? buf + start : "", len - start);
        if (rc < 0)
            status = report_send_error(st, rc);
    }
out:
    free(buf);
    return status;
}

int cli_produce(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"delimiter", required_argument, NULL, 'D'},
        {"raw", no_argument, NULL, OPT_RAW},
        {"key-delimiter", required_argument, NULL, 'K'},
        {"key", required_argument, NULL, 'k'},
        {"header", required_argument, NULL, 'H'},
        {"partition", required_argument, NULL, 'p'},
        {"acks", required_argument, NULL, OPT_ACKS},
        {"compression", required_argument, NULL, 'z'},
        {"timestamp", required_argument, NULL, OPT_TIMESTAMP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    produce_state st = {.partition = -1};
    cli_conn conn;
    cli_conn_init(&conn);
    const char *file = NULL, *acks = "all", *codec = "none";
    char *delim = NULL;
    size_t delim_len = 1;
    bool raw = false, delim_set = false;
    int status = CLI_USAGE, fd = -1;
    rn_conf *conf = NULL;

    int c;
    while ((c = cli_getopt(argc, argv, ":b:X:f:D:K:k:H:p:z:h", longopts, &conn, usage, &status)) !=
           -1) {
        int64_t v;
        switch (c) {
        case 'f':
            file = optarg;
            break;
        case 'D':
            status = cli_opt_unescape("-D", optarg, &delim, &delim_len);
            if (status != CLI_OK)
                goto out;
            delim_set = true;
            break;
        case OPT_RAW:
            raw = true;
            break;
        case 'K':
            free(st.key_delim);
            st.key_delim = NULL;
            if (cli_unescape(optarg, &st.key_delim, &st.key_delim_len) < 0 ||
                st.key_delim_len == 0) {
                status = cli_usage("-K %s: the key delimiter must be at least one byte", optarg);
                goto out;
            }
            break;
        case 'k':
            st.key = optarg;
            st.key_len = strlen(optarg);
            break;
        case 'H': {
            const char *eq = strchr(optarg, '=');
            rn_header *h = realloc(st.headers, (st.n_headers + 1) * sizeof(*h));
            if (!h) {
                status = cli_fail(-ENOMEM, "options");
                goto out;
            }
            st.headers = h;
            size_t nl = eq ? (size_t)(eq - optarg) : strlen(optarg);
            if (nl == 0) {
                status = cli_usage("-H %s: expected NAME=VALUE", optarg);
                goto out;
            }
            char *name = strndup(optarg, nl);
            if (!name) {
                status = cli_fail(-ENOMEM, "options");
                goto out;
            }
            /* "-H name" alone is a header with a null value, as kcat sends it. */
            h[st.n_headers++] = (rn_header){.name = name,
                                            .name_len = nl,
                                            .value = eq ? eq + 1 : NULL,
                                            .value_len = eq ? strlen(eq + 1) : 0};
            break;
        }
        case 'p':
            if (cli_parse_i64(optarg, 0, INT32_MAX, &v) < 0) {
                status = cli_usage("-p %s: partition must be a number from 0", optarg);
                goto out;
            }
            st.partition = (int32_t)v;
            break;
        case OPT_ACKS:
            if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "all") &&
                strcmp(optarg, "-1")) {
                status = cli_usage("--acks %s: expected 0, 1 or all", optarg);
                goto out;
            }
            acks = optarg;
            break;
        case 'z':
            if (rn_codec_parse(optarg) < 0) {
                status = cli_usage("-z %s: expected none, gzip, snappy, lz4 or zstd", optarg);
                goto out;
            }
            codec = optarg;
            break;
        case OPT_TIMESTAMP:
            if (cli_parse_i64(optarg, 1, INT64_MAX, &st.timestamp) < 0) {
                status = cli_usage("--timestamp %s: expected ms since the epoch", optarg);
                goto out;
            }
            break;
        case CLI_OPT_EXIT:
            goto out;
        default:
            status = cli_opt_error(c, argv);
            goto out;
        }
    }
    status = cli_one_topic(argc, argv, &st.topic);
    if (status != CLI_OK)
        goto out;
    if (st.key && st.key_delim) {
        status = cli_usage("-k and -K both set the key: pick one");
        goto out;
    }
    if (raw && delim_set && delim_len) {
        status = cli_usage("--raw and -D both frame the input: pick one");
        goto out;
    }
    if (raw)
        delim_len = 0;
    if (!delim_set && !raw) {
        delim = strdup("\n");
        if (!delim) {
            status = cli_fail(-ENOMEM, "options");
            goto out;
        }
    }

    if (file) {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            status = cli_fail(-errno, "%s", file);
            goto out;
        }
    }
    status = cli_conn_start(&conn);
    if (status != CLI_OK)
        goto out;
    status = CLI_ERROR;
    char acks_kv[32], codec_kv[48];
    snprintf(acks_kv, sizeof(acks_kv), "acks=%s", acks);
    snprintf(codec_kv, sizeof(codec_kv), "compression.codec=%s", codec);
    const char *extra[] = {acks_kv, codec_kv, NULL};
    conf = cli_conn_conf(&conn, extra);
    if (!conf)
        goto out;
    int rc = rn_producer_new(&st.p, conf, on_delivery, &st);
    if (rc < 0) {
        cli_fail(rc, "producer");
        goto out;
    }
    cli_signals_install();
    int in = fd >= 0 ? fd : STDIN_FILENO;
    if (isatty(in) && isatty(STDERR_FILENO))
        cli_note("reading records from the terminal, one per line; ^D ends, ^C stops");
    cli_progress_init(&st.progress, "records", 0, false);
    int pumped = pump(&st, in, delim, delim_len);
    cli_progress_done(&st.progress);

    /* Whatever was queued is flushed, even after an error or a first ^C:
     * records that were read either reach the broker or are counted as
     * failed. A ^C during this wait stops it. */
    bool interrupted = cli_stop;
    cli_stop = 0;
    int frc = cli_producer_drain(st.p, cli_conn_prop_ms(&conn, "delivery.timeout.ms", 120000));
    interrupted |= frc == -EINTR;
    if (pumped != 0) {
        status = CLI_ERROR;
    } else if (st.n_failed) {
        const char *ctx = rn_producer_errmsg(st.p);
        if (st.first_err == -RN_E_UNKNOWN_TOPIC && st.partition >= 0)
            cli_fail(0, "%" PRIu64 " of %" PRIu64 " records failed: topic %s has no partition %d",
                     st.n_failed, st.n_sent, st.topic, st.partition);
        else
            cli_fail(0, "%" PRIu64 " of %" PRIu64 " records failed, the first: %s", st.n_failed,
                     st.n_sent, ctx && ctx[0] ? ctx : rn_err_str(st.first_err));
    } else if (frc < 0) {
        cli_fail(frc == -EINTR ? 0 : frc, "%" PRIu64 " of %" PRIu64 " records not acknowledged%s",
                 st.n_sent - st.n_acked, st.n_sent, frc == -EINTR ? " (interrupted)" : "");
    } else if (interrupted) {
        cli_note("interrupted after %" PRIu64 " records (all acknowledged)", st.n_acked);
    } else {
        status = CLI_OK;
        if (isatty(STDERR_FILENO))
            cli_note("%" PRIu64 " records acknowledged", st.n_acked);
    }
out:
    /* After a ^C with records still in flight, leave without closing:
     * rn_producer_close would wait for them up to delivery.timeout.ms, and the
     * process exits now anyway. */
    if (st.p && rn_producer_outstanding(st.p) == 0) {
        int crc = rn_producer_close(st.p);
        if (crc < 0 && status == CLI_OK)
            status = cli_fail(crc, "closing the producer");
    }
    rn_conf_free(conf);
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < st.n_headers; i++)
        free((char *)st.headers[i].name);
    free(st.headers);
    free(st.key_delim);
    free(delim);
    cli_conn_fini(&conn);
    return status;
}
