/*
 * nats_load.c — a JetStream load generator in C, speaking the NATS text
 * protocol, so tests/perf/run can put NATS next to runnel without a slow client
 * handicapping it (Debian ships nats-server but no `nats bench`).
 *
 *   nats_load produce --server H:P --stream S [--size B] [--producers P]
 *                     [--window W] [--seconds T] [--records N] [--rate R]
 *   nats_load consume --server H:P --stream S --records N [--batch B] [--seconds T]
 *
 * produce: creates stream S (file storage, subject "S.>", one replica; an
 *   existing stream is fine), then P threads, each with its own connection,
 *   publish B-byte messages to "S.data" with a reply inbox each
 *   ("_INBOX.<thread>.<seq>"), keeping up to W publishes unacknowledged: the
 *   pipelined asynchronous publish of the NATS clients. JetStream answers each
 *   stored message with {"stream":S,"seq":N} on its inbox; the latency of a
 *   message is from writing its PUB to reading its acknowledgement.
 *   --rate R paces the total to R messages/s on a schedule fixed in advance
 *   (open loop, as `runnel bench --throughput`): message i of a thread is due
 *   at start + i / (R / P), and its latency counts from that due time, not
 *   from when it was written, so a publish held back by a slow server (the
 *   window full, the socket full, the thread late) is charged the wait;
 *   without it a stall would pause the clock and hide the tail (coordinated
 *   omission).
 * consume: creates a durable pull consumer (deliver all, ack none; named after
 *   the process, so every run starts from the first message) and pulls
 *   N messages with two MSG.NEXT requests of B messages outstanding, so the
 *   server always has a request to fill while the client reads.
 *
 * Output: one JSON line, the shape of `runnel bench --json` (records,
 * records_per_sec, mb_per_sec = MiB/s of payload, latency_ms {...}) plus
 * "errors". Exit status 1 when the server refused anything or the socket
 * failed. A benchmark, not a test: it asserts nothing about speed.
 *
 * Wire (NATS client protocol, text lines ending in CRLF):
 *   server: INFO {json} | MSG subj sid [reply] len CRLF payload CRLF |
 *           HMSG subj sid [reply] hdr_len total_len CRLF headers+payload CRLF |
 *           PING | PONG | +OK | -ERR 'text'
 *   client: CONNECT {json} | PUB subj [reply] len CRLF payload CRLF |
 *           SUB subj sid | PING | PONG
 * Every thread's connection is non-blocking and driven by ppoll: the writer
 * never waits for acknowledgements it does not need yet, and a server PING is
 * always answered.
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "load_common.h"

#define IN_CAP    (4u << 20)
#define OUT_FLUSH (256u << 10)

typedef struct conn {
    int fd;
    char *in;
    size_t in_len, in_pos;
    char *out;
    size_t out_cap, out_len, out_pos;
} conn;

/* One parsed server message; strings point into conn.in and stay valid until
 * the next conn_fill. */
typedef struct nmsg {
    enum { M_NONE, M_MSG, M_HMSG, M_PING, M_PONG, M_OK, M_ERR, M_INFO } kind;
    char *subject, *reply, *line;
    long sid;
    size_t hdr_len, len; /* for HMSG, len counts headers + payload */
    char *data;
} nmsg;

static const char *server = "127.0.0.1:4222";
static const char *stream = "bench";
static long size = 100, producers = 1, window = 256, batch = 1000;
static double seconds = 10, rate = 0;
static long long records = 0;

static void die(const char *what, int err)
{
    fprintf(stderr, "nats_load: %s: %s\n", what, err ? strerror(-err) : "failed");
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Connection: buffered non-blocking reads and writes                       */
/* ------------------------------------------------------------------------ */

static void out_reserve(conn *c, size_t more)
{
    if (c->out_len + more <= c->out_cap)
        return;
    if (c->out_pos) { /* reclaim what is already written */
        memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
        c->out_len -= c->out_pos;
        c->out_pos = 0;
    }
    while (c->out_len + more > c->out_cap)
        c->out_cap = c->out_cap ? c->out_cap * 2 : 1 << 20;
    c->out = realloc(c->out, c->out_cap);
    if (!c->out)
        die("out buffer", -ENOMEM);
}

static void out_add(conn *c, const void *p, size_t n)
{
    out_reserve(c, n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void out_printf(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(conn *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        die("protocol line too long", -EINVAL);
    out_add(c, line, (size_t)n);
}

/* Writes what it can; returns 0 or -errno. */
static int out_flush(conn *c)
{
    while (c->out_pos < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0)
            return -errno;
        c->out_pos += (size_t)n;
    }
    c->out_pos = c->out_len = 0;
    return 0;
}

/* Reads what is there; returns bytes read, 0 when nothing was ready, -errno
 * (-ECONNRESET on end of stream). */
static ssize_t conn_fill(conn *c)
{
    if (c->in_pos) {
        memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
    if (c->in_len == IN_CAP)
        return -ENOBUFS; /* one message larger than the buffer: not from this tool */
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        c->in_len += (size_t)n;
        return n;
    }
}

/* Parses one message from the buffer: 1 with *m filled, 0 when more bytes are
 * needed, -EPROTO on a line it does not understand. */
static int conn_next(conn *c, nmsg *m)
{
    char *start = c->in + c->in_pos, *end = c->in + c->in_len;
    char *nl = memmem(start, (size_t)(end - start), "\r\n", 2);
    if (!nl)
        return 0;
    *m = (nmsg){.line = start};
    size_t line_len = (size_t)(nl - start);
    if (line_len >= 3 && (!strncmp(start, "MSG", 3) || !strncmp(start, "HMSG", 4))) {
        bool h = start[0] == 'H';
        char *tok[6];
        int nt = 0;
        *nl = 0;
        for (char *s = start, *save = NULL; nt < 6 && (s = strtok_r(s, " ", &save)); s = NULL)
            tok[nt++] = s;
        int want = h ? 5 : 4;
        if (nt != want && nt != want + 1) {
            *nl = '\r';
            return -EPROTO;
        }
        m->kind = h ? M_HMSG : M_MSG;
        m->subject = tok[1];
        m->sid = atol(tok[2]);
        m->reply = nt == want + 1 ? tok[3] : NULL;
        m->len = (size_t)atol(tok[nt - 1]);
        m->hdr_len = h ? (size_t)atol(tok[nt - 2]) : 0;
        if ((size_t)(end - (nl + 2)) < m->len + 2) {
            *nl = '\r'; /* restore: the line is parsed again with the payload */
            for (int i = 1; i < nt; i++)
                tok[i][-1] = ' ';
            return 0;
        }
        m->data = nl + 2;
        c->in_pos = (size_t)(nl + 2 + m->len + 2 - c->in);
        return 1;
    }
    c->in_pos = (size_t)(nl + 2 - c->in);
    *nl = 0;
    if (!strcmp(start, "PING"))
        m->kind = M_PING;
    else if (!strcmp(start, "PONG"))
        m->kind = M_PONG;
    else if (!strcmp(start, "+OK"))
        m->kind = M_OK;
    else if (!strncmp(start, "-ERR", 4))
        m->kind = M_ERR;
    else if (!strncmp(start, "INFO", 4))
        m->kind = M_INFO;
    else
        return -EPROTO;
    return 1;
}

/* Blocks until one message arrives (answering PINGs): for set-up only. */
static void conn_wait(conn *c, nmsg *m)
{
    for (;;) {
        int rc = conn_next(c, m);
        if (rc < 0)
            die("unexpected server line", rc);
        if (rc == 1 && m->kind == M_PING) {
            out_printf(c, "PONG\r\n");
            continue;
        }
        if (rc == 1 && m->kind == M_ERR) {
            fprintf(stderr, "nats_load: server: %s\n", m->line);
            exit(1);
        }
        if (rc == 1)
            return;
        if (out_flush(c) < 0)
            die("send", -errno);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 10000) == 0)
            die("no answer from the server within 10 s", -ETIMEDOUT);
        ssize_t n = conn_fill(c);
        if (n < 0)
            die("recv", (int)n);
    }
}

static void conn_open(conn *c)
{
    *c = (conn){0};
    c->fd = lc_connect(server);
    if (c->fd < 0)
        die(server, c->fd);
    c->in = malloc(IN_CAP);
    if (!c->in)
        die("in buffer", -ENOMEM);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    int big = 4 << 20;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    nmsg m;
    conn_wait(c, &m);
    if (m.kind != M_INFO)
        die("the server did not start with INFO", -EPROTO);
    out_printf(c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,"
                  "\"no_responders\":true,\"name\":\"nats_load\",\"lang\":\"c\","
                  "\"version\":\"0\",\"protocol\":1}\r\nPING\r\n");
    do
        conn_wait(c, &m);
    while (m.kind != M_PONG);
}

static void conn_close(conn *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
}

/* A JetStream API call: request on SUBJECT, answer on _INBOX.api (sid 99).
 * Returns the answer's JSON copied into buf. */
static void js_api(conn *c, const char *subject, const char *json, char *buf, size_t cap)
{
    static bool subscribed;
    if (!subscribed) {
        out_printf(c, "SUB _INBOX.api 99\r\n");
        subscribed = true;
    }
    out_printf(c, "PUB %s _INBOX.api %zu\r\n", subject, strlen(json));
    out_add(c, json, strlen(json));
    out_add(c, "\r\n", 2);
    nmsg m;
    do
        conn_wait(c, &m);
    while (!((m.kind == M_MSG || m.kind == M_HMSG) && m.sid == 99));
    if (m.kind == M_HMSG) { /* 503 no responders: JetStream is not enabled */
        fprintf(stderr, "nats_load: %s: no JetStream responder (server started without -js?)\n",
                subject);
        exit(1);
    }
    size_t n = m.len < cap - 1 ? m.len : cap - 1;
    memcpy(buf, m.data, n);
    buf[n] = 0;
}

/* ------------------------------------------------------------------------ */
/* produce                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct producer {
    pthread_t tid;
    int id;
    long long target;
    uint64_t start_ns, deadline_ns, end_ns;
    long long sent, acked, errors;
    lc_hist hist;
} producer;

static char *payload;

static void *produce_thread(void *arg)
{
    producer *p = arg;
    conn c;
    conn_open(&c);
    long cap = 1;
    while (cap < window)
        cap <<= 1;
    uint64_t *sent_at = calloc((size_t)cap, sizeof(uint64_t));
    if (!sent_at)
        die("send times", -ENOMEM);
    char subject[160];
    snprintf(subject, sizeof(subject), "%s.data", stream);
    out_printf(&c, "SUB _INBOX.%d.* 1\r\n", p->id);
    double my_rate = rate > 0 ? rate / (double)producers : 0;
    for (;;) {
        uint64_t now = lc_now_ns();
        bool open = p->sent < p->target && now < p->deadline_ns;
        long long allowed = p->target;
        if (my_rate > 0)
            allowed = (long long)((double)(now - p->start_ns) / 1e9 * my_rate) + 1;
        while (open && p->sent - p->acked < window && p->sent < p->target && p->sent < allowed &&
               c.out_len - c.out_pos < OUT_FLUSH) {
            out_printf(&c, "PUB %s _INBOX.%d.%lld %ld\r\n", subject, p->id, p->sent, size);
            out_add(&c, payload, (size_t)size + 2); /* payload then CRLF */
            /* Open loop: the origin is the due time (never after now: only
             * messages already due pass `allowed`). */
            sent_at[p->sent & (cap - 1)] =
                my_rate > 0 ? p->start_ns + (uint64_t)((double)p->sent / my_rate * 1e9) : now;
            p->sent++;
        }
        int rc = out_flush(&c);
        if (rc < 0)
            die("send", rc);
        if (!open && p->acked == p->sent)
            break;
        if (!open && now > p->deadline_ns + 10000000000ull) {
            fprintf(stderr, "nats_load: %lld publishes never acknowledged\n", p->sent - p->acked);
            p->errors += p->sent - p->acked;
            break;
        }
        /* Sleep until the socket is ready, or until pacing lets the next
         * message go. */
        struct timespec ts = {0, 100000000}, *tsp = &ts;
        if (open && my_rate > 0 && p->sent >= allowed && p->sent - p->acked < window) {
            double next = (double)p->start_ns + (double)p->sent / my_rate * 1e9;
            uint64_t wait = next > (double)now ? (uint64_t)(next - (double)now) : 0;
            ts = (struct timespec){(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
        }
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN | (c.out_len > c.out_pos ? POLLOUT : 0)};
        if (ppoll(&pfd, 1, tsp, NULL) < 0 && errno != EINTR)
            die("poll", -errno);
        if (!(pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        ssize_t n = conn_fill(&c);
        if (n < 0)
            die("recv", (int)n);
        nmsg m;
        uint64_t got_at = lc_now_ns();
        while ((rc = conn_next(&c, &m)) == 1) {
            if (m.kind == M_PING) {
                out_printf(&c, "PONG\r\n");
            } else if (m.kind == M_ERR) {
                fprintf(stderr, "nats_load: server: %s\n", m.line);
                exit(1);
            } else if ((m.kind == M_MSG || m.kind == M_HMSG) && m.sid == 1) {
                const char *dot = strrchr(m.subject, '.');
                long long seq = dot ? atoll(dot + 1) : -1;
                if (seq < 0 || seq >= p->sent || p->sent - seq > cap)
                    die("acknowledgement for an unknown publish", -EPROTO);
                /* A stored message is answered {"stream":..,"seq":..}; a refused
                 * one {"error":..} or a status header (503: no stream). */
                if (m.kind == M_HMSG || memmem(m.data, m.len, "\"error\"", 7)) {
                    if (p->errors++ == 0)
                        fprintf(stderr, "nats_load: publish refused: %.*s\n", (int)m.len, m.data);
                }
                lc_hist_add(&p->hist, got_at - sent_at[seq & (cap - 1)]);
                p->acked++;
            }
        }
        if (rc < 0)
            die("unexpected server line", rc);
    }
    p->end_ns = lc_now_ns();
    free(sent_at);
    conn_close(&c);
    return NULL;
}

static int do_produce(void)
{
    conn c;
    conn_open(&c);
    char subj[256], json[1024], ans[4096];
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", stream);
    snprintf(json, sizeof(json),
             "{\"name\":\"%s\",\"subjects\":[\"%s.>\"],\"retention\":\"limits\","
             "\"storage\":\"file\",\"discard\":\"old\",\"num_replicas\":1,\"max_msgs\":-1,"
             "\"max_bytes\":-1,\"max_age\":0,\"max_msg_size\":-1}",
             stream, stream);
    js_api(&c, subj, json, ans, sizeof(ans));
    /* 10058: a stream of that name exists already (a second run): fine. */
    if (strstr(ans, "\"error\"") && !strstr(ans, "10058")) {
        fprintf(stderr, "nats_load: stream create: %s\n", ans);
        return 1;
    }
    conn_close(&c);

    payload = malloc((size_t)size + 2);
    if (!payload)
        die("payload", -ENOMEM);
    uint64_t x = 0x9e3779b97f4a7c15ull; /* the same letters as runnel bench */
    for (long i = 0; i < size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        payload[i] = (char)('A' + x % 26);
    }
    memcpy(payload + size, "\r\n", 2);

    producer *ps = calloc((size_t)producers, sizeof(*ps));
    if (!ps)
        die("producers", -ENOMEM);
    long long total = records > 0 ? records : (long long)1 << 40;
    uint64_t start = lc_now_ns();
    for (long i = 0; i < producers; i++) {
        ps[i].id = (int)i;
        ps[i].target = total / producers + (i < total % producers);
        ps[i].start_ns = start;
        ps[i].deadline_ns = start + (uint64_t)(seconds * 1e9);
        if (pthread_create(&ps[i].tid, NULL, produce_thread, &ps[i]))
            die("thread", -EAGAIN);
    }
    lc_hist *all = calloc(1, sizeof(*all));
    if (!all)
        die("histogram", -ENOMEM);
    long long acked = 0, errors = 0;
    uint64_t end = start;
    for (long i = 0; i < producers; i++) {
        pthread_join(ps[i].tid, NULL);
        lc_hist_merge(all, &ps[i].hist);
        acked += ps[i].acked;
        errors += ps[i].errors;
        if (ps[i].end_ns > end)
            end = ps[i].end_ns;
    }
    lc_print_json((uint64_t)acked, (uint64_t)acked * (uint64_t)size, (double)(end - start) / 1e9,
                  all, (uint64_t)errors);
    free(all);
    free(ps);
    free(payload);
    return errors ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* consume                                                                   */
/* ------------------------------------------------------------------------ */

static void pull(conn *c, const char *next_subj)
{
    char json[128];
    /* expires in ns: a request the stream cannot fill ends with a 408 status
     * after 1 s, and the loop asks again until the deadline. */
    int n = snprintf(json, sizeof(json), "{\"batch\":%ld,\"expires\":1000000000}", batch);
    out_printf(c, "PUB %s _INBOX.pull %d\r\n%s\r\n", next_subj, n, json);
}

static int do_consume(void)
{
    if (records <= 0) {
        fprintf(stderr, "nats_load: consume needs --records N\n");
        return 2;
    }
    conn c;
    conn_open(&c);
    char subj[256], json[1024], ans[4096], next_subj[256];
    /* A durable of its own per run: a second run reads from the start again. */
    char name[32];
    snprintf(name, sizeof(name), "nats_load_%ld", (long)getpid());
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", stream, name);
    snprintf(json, sizeof(json),
             "{\"stream_name\":\"%s\",\"config\":{\"durable_name\":\"%s\","
             "\"deliver_policy\":\"all\",\"ack_policy\":\"none\",\"replay_policy\":\"instant\","
             "\"max_waiting\":512}}",
             stream, name);
    js_api(&c, subj, json, ans, sizeof(ans));
    if (strstr(ans, "\"error\"")) {
        fprintf(stderr, "nats_load: consumer create: %s\n", ans);
        return 1;
    }
    snprintf(next_subj, sizeof(next_subj), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, name);
    out_printf(&c, "SUB _INBOX.pull 2\r\n");
    uint64_t start = lc_now_ns(), deadline = start + (uint64_t)(seconds * 1e9), last = start;
    /* Two requests outstanding; a request is done after `batch` messages or a
     * status (408 expired, 404 nothing). */
    pull(&c, next_subj);
    pull(&c, next_subj);
    long long got = 0, bytes = 0;
    long in_request = 0;
    while (got < records && lc_now_ns() < deadline) {
        int rc = out_flush(&c);
        if (rc < 0)
            die("send", rc);
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN | (c.out_len > c.out_pos ? POLLOUT : 0)};
        if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
            die("poll", -errno);
        if (!(pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        ssize_t n = conn_fill(&c);
        if (n < 0)
            die("recv", (int)n);
        nmsg m;
        while ((rc = conn_next(&c, &m)) == 1) {
            if (m.kind == M_PING) {
                out_printf(&c, "PONG\r\n");
            } else if (m.kind == M_ERR) {
                fprintf(stderr, "nats_load: server: %s\n", m.line);
                return 1;
            } else if ((m.kind == M_MSG || m.kind == M_HMSG) && m.sid == 2) {
                bool status =
                    m.kind == M_HMSG && m.hdr_len == m.len && !strncmp(m.data, "NATS/1.0 4", 10);
                if (status) {
                    in_request = 0;
                    pull(&c, next_subj);
                    continue;
                }
                got++;
                bytes += (long long)(m.len - m.hdr_len);
                last = lc_now_ns();
                if (++in_request == batch) {
                    in_request = 0;
                    pull(&c, next_subj);
                }
            }
        }
        if (rc < 0)
            die("unexpected server line", rc);
    }
    lc_print_json((uint64_t)got, (uint64_t)bytes, (double)(last - start) / 1e9, NULL, 0);
    conn_close(&c);
    if (got < records) {
        fprintf(stderr, "nats_load: only %lld of %lld messages within %.0f s\n", got, records,
                seconds);
        return 1;
    }
    return 0;
}

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: nats_load produce --server H:P --stream S [--size B] [--producers P]\n"
            "                 [--window W] [--seconds T] [--records N] [--rate R]\n"
            "  --rate R: open loop; latency from each message's scheduled send time\n"
            "       nats_load consume --server H:P --stream S --records N [--batch B]\n"
            "                 [--seconds T]\n");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(2);
    const char *mode = argv[1];
    static const struct option opts[] = {{"server", required_argument, NULL, 'S'},
                                         {"stream", required_argument, NULL, 's'},
                                         {"size", required_argument, NULL, 'b'},
                                         {"producers", required_argument, NULL, 'P'},
                                         {"window", required_argument, NULL, 'w'},
                                         {"seconds", required_argument, NULL, 't'},
                                         {"records", required_argument, NULL, 'n'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"batch", required_argument, NULL, 'B'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'S':
            server = optarg;
            break;
        case 's':
            stream = optarg;
            break;
        case 'b':
            size = atol(optarg);
            break;
        case 'P':
            producers = atol(optarg);
            break;
        case 'w':
            window = atol(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'n':
            records = atoll(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'B':
            batch = atol(optarg);
            break;
        case 'h':
            return usage(0);
        default:
            return usage(2);
        }
    }
    if (size < 0 || size > (1 << 20) || producers < 1 || producers > 256 || window < 1 ||
        window > (1 << 20) || batch < 1 || seconds <= 0 || strlen(stream) > 100) {
        fprintf(stderr, "nats_load: bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(mode, "produce"))
        return do_produce();
    if (!strcmp(mode, "consume"))
        return do_consume();
    return usage(2);
}
