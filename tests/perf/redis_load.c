/*
 * redis_load.c — the consume side of the Redis Streams benchmark: reads a
 * stream from the start with XRANGE in a loop, in C, so tests/perf/run can put
 * Redis next to runnel's consume (redis-benchmark can only repeat one fixed
 * command, so it cannot walk a stream forward).
 *
 *   redis_load consume --server H:P --key K --records N [--count C] [--seconds T]
 *
 * Each request is `XRANGE K (<last id> + COUNT C` (the first one from `-`), the
 * way a Redis Streams consumer that keeps its own position reads; the next
 * request needs the last id of the previous answer, so there is one request
 * in flight, and C (default 1000) sets how much each round trip carries. It
 * stops after N entries, at the end of the stream (an empty answer), or after
 * T seconds.
 *
 * Output: one JSON line, the shape of `runnel bench --json` (records,
 * records_per_sec, mb_per_sec = MiB/s of field values, the payload). Exit 1 on
 * a server error or fewer than N entries.
 *
 * Wire (RESP2): the request is an array of bulk strings
 * (`*6\r\n$6\r\nXRANGE\r\n$<n>\r\n<key>\r\n…`); the answer is
 *   *<entries> then per entry: *2, $<n> id, *<2k>, then 2k bulk strings
 *   (field, value, …); `-ERR …` for an error.
 * The answer is parsed entry by entry as bytes arrive, so a large answer is
 * never parsed twice.
 */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>

#include "load_common.h"

#define IN_CAP (16u << 20)

static void die(const char *what, int err)
{
    fprintf(stderr, "redis_load: %s: %s\n", what, err ? strerror(-err) : "failed");
    exit(1);
}

/* Parses "<type><integer>\r\n" at p: 1 and *next past it, 0 when incomplete,
 * -EPROTO when p holds something else. */
static int parse_int_line(const char *p, const char *end, char type, long *val, const char **next)
{
    if (p >= end)
        return 0;
    if (*p != type)
        return -EPROTO;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return 0;
    *val = strtol(p + 1, NULL, 10);
    *next = nl + 1;
    return 1;
}

static int parse_bulk(const char *p, const char *end, const char **data, long *len,
                      const char **next)
{
    const char *q;
    int rc = parse_int_line(p, end, '$', len, &q);
    if (rc <= 0)
        return rc;
    if (*len < 0 || end - q < *len + 2)
        return *len < 0 ? -EPROTO : 0;
    *data = q;
    *next = q + *len + 2;
    return 1;
}

/* One stream entry: *2, id, *2k, 2k bulks. Sets the id and adds the values'
 * bytes. */
static int parse_entry(const char *p, const char *end, char *id, size_t id_cap, long *value_bytes,
                       const char **next)
{
    long n, k, len;
    const char *d;
    int rc;
    if ((rc = parse_int_line(p, end, '*', &n, &p)) <= 0)
        return rc;
    if (n != 2)
        return -EPROTO;
    if ((rc = parse_bulk(p, end, &d, &len, &p)) <= 0)
        return rc;
    if ((size_t)len >= id_cap)
        return -EPROTO;
    char tmp_id[64];
    memcpy(tmp_id, d, (size_t)len);
    tmp_id[len] = 0;
    if ((rc = parse_int_line(p, end, '*', &k, &p)) <= 0)
        return rc;
    long vb = 0;
    for (long i = 0; i < k; i++) {
        if ((rc = parse_bulk(p, end, &d, &len, &p)) <= 0)
            return rc;
        if (i % 2 == 1)
            vb += len;
    }
    strcpy(id, tmp_id); /* only a whole entry moves the position */
    *value_bytes += vb;
    *next = p;
    return 1;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("send", -errno);
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    const char *server = "127.0.0.1:6379", *key = "bench";
    long long records = 0;
    long count = 1000;
    double seconds = 60;
    if (argc < 2 || strcmp(argv[1], "consume")) {
        fprintf(stderr, "usage: redis_load consume --server H:P --key K --records N "
                        "[--count C] [--seconds T]\n");
        return 2;
    }
    static const struct option opts[] = {
        {"server", required_argument, NULL, 'S'},  {"key", required_argument, NULL, 'k'},
        {"records", required_argument, NULL, 'n'}, {"count", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 't'}, {0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'S':
            server = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'n':
            records = atoll(optarg);
            break;
        case 'c':
            count = atol(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    if (records <= 0 || count < 1 || seconds <= 0 || strlen(key) > 200) {
        fprintf(stderr, "redis_load: bad arguments (--records N is required)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int fd = lc_connect(server);
    if (fd < 0)
        die(server, fd);
    char *in = malloc(IN_CAP);
    if (!in)
        die("buffer", -ENOMEM);
    size_t in_len = 0;
    char last[64] = "-", start_arg[80], count_arg[24], req[512];
    long long got = 0;
    long bytes = 0;
    uint64_t t0 = lc_now_ns(), deadline = t0 + (uint64_t)(seconds * 1e9);
    bool ended = false;
    while (got < records && !ended && lc_now_ns() < deadline) {
        snprintf(start_arg, sizeof(start_arg), "%s%s", got ? "(" : "", last);
        snprintf(count_arg, sizeof(count_arg), "%lld",
                 records - got < count ? records - got : (long long)count);
        int n =
            snprintf(req, sizeof(req),
                     "*6\r\n$6\r\nXRANGE\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n$1\r\n+\r\n"
                     "$5\r\nCOUNT\r\n$%zu\r\n%s\r\n",
                     strlen(key), key, strlen(start_arg), start_arg, strlen(count_arg), count_arg);
        send_all(fd, req, (size_t)n);
        long remaining = -1; /* entries of this answer still to parse */
        size_t pos = 0;
        while (remaining != 0) {
            const char *p = in + pos, *end = in + in_len, *next;
            int rc;
            if (remaining < 0) {
                if (p < end && *p == '-') {
                    const char *nl = memchr(p, '\n', (size_t)(end - p));
                    if (nl) {
                        fprintf(stderr, "redis_load: server: %.*s\n", (int)(nl - p), p);
                        return 1;
                    }
                    rc = 0;
                } else {
                    rc = parse_int_line(p, end, '*', &remaining, &next);
                    if (rc == 1 && remaining <= 0) {
                        ended = true; /* an empty answer: the end of the stream */
                        remaining = 0;
                    }
                }
            } else {
                rc = parse_entry(p, end, last, sizeof(last), &bytes, &next);
                if (rc == 1) {
                    got++;
                    remaining--;
                }
            }
            if (rc < 0)
                die("unexpected answer", rc);
            if (rc == 1) {
                pos = (size_t)(next - in);
                continue;
            }
            /* Incomplete: keep the unparsed tail and read more. */
            memmove(in, in + pos, in_len - pos);
            in_len -= pos;
            pos = 0;
            if (in_len == IN_CAP)
                die("an entry larger than the buffer", -ENOBUFS);
            ssize_t r = recv(fd, in + in_len, IN_CAP - in_len, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                die("recv", r < 0 ? -errno : -ECONNRESET);
            in_len += (size_t)r;
        }
        memmove(in, in + pos, in_len - pos);
        in_len -= pos;
    }
    double secs = (double)(lc_now_ns() - t0) / 1e9;
    lc_print_json((uint64_t)got, (uint64_t)bytes, secs, NULL, 0);
    close(fd);
    free(in);
    if (got < records) {
        fprintf(stderr, "redis_load: only %lld of %lld entries\n", got, records);
        return 1;
    }
    return 0;
}
