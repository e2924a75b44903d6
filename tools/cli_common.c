/*
 * cli_common.c — the runnel CLI's shared plumbing: messages, connection
 * options, the broker probe, number and escape parsing, the progress line.
 *
 * How it fits: every subcommand (tools/cli_*.c) builds its librunnel
 * configuration through cli_conn_conf and, before its first request, calls
 * cli_conn_probe, so "no broker there" is one clear line within the connect
 * timeout instead of a client library retrying for its whole request timeout.
 *
 * Invariants:
 *   1. Messages go to stderr, one line each, prefixed "runnel: <command>: ";
 *      stdout carries only a command's data, so pipes stay machine-readable.
 *   2. The progress line draws only when stderr is a terminal (and stdout is not
 *      one, for commands that print records), and is erased before any message.
 *   3. Broker precedence: -b on the command line, then -b before the command
 *      name, then RUNNEL_BROKERS, then 127.0.0.1:9700 (runneld's default).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "protocol/errors.h"
#include "tools/cli_common.h"

const char *cli_cmd = "";
volatile sig_atomic_t cli_stop;
cli_conn cli_global_conn;

/* ------------------------------------------------------------------------ */
/* Messages and signals                                                      */
/* ------------------------------------------------------------------------ */

/* format(printf, 1, 0): fmt is checked at the callers, which are printf-like. */
static void vmsg(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void vmsg(const char *fmt, va_list ap)
{
    fputs("runnel: ", stderr);
    if (cli_cmd[0])
        fprintf(stderr, "%s: ", cli_cmd);
    vfprintf(stderr, fmt, ap);
}

int cli_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    if (err)
        fprintf(stderr, ": %s", rn_err_str(err));
    fputc('\n', stderr);
    return CLI_ERROR;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("runnel: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_ERROR;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'runnel %s --help'.\n", cli_cmd[0] ? cli_cmd : "");
    return CLI_USAGE;
}

int cli_opt_error(int c, char **argv)
{
    /* A long option is named by its argv word ("--acks=x" shows as is); a short
     * one by optopt, which is exact even inside a cluster like -eZ. */
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    bool is_long = strncmp(arg, "--", 2) == 0;
    const char *what = c == ':' ? "needs a value" : "is unknown";
    if (!is_long && optopt > ' ' && optopt < 127)
        return cli_usage("option -%c %s", optopt, what);
    return cli_usage("option %s %s", arg, what);
}

void cli_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_signals_install(void)
{
    /* No SA_RESTART: a read(2) blocked on stdin returns EINTR, so ^C stops a
     * produce that waits for input as promptly as one that is sending. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* Connection options                                                        */
/* ------------------------------------------------------------------------ */

void cli_conn_init(cli_conn *c)
{
    c->brokers = cli_global_conn.brokers;
    c->props = NULL;
    c->n_props = 0;
    for (size_t i = 0; i < cli_global_conn.n_props; i++)
        cli_conn_opt(c, 'X', cli_global_conn.props[i]);
}

void cli_conn_fini(cli_conn *c)
{
    free(c->props);
    c->props = NULL;
    c->n_props = 0;
}

int cli_conn_opt(cli_conn *c, int opt, const char *arg)
{
    if (opt == 'b') {
        c->brokers = arg;
        return 1;
    }
    if (opt != 'X')
        return 0;
    const char **p = realloc(c->props, (c->n_props + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    p[c->n_props++] = arg;
    c->props = p;
    return 1;
}

/* Set one "key=value" on conf; prints the reason on failure. */
static int set_prop(rn_conf *conf, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        cli_fail(0, "-X %s: expected KEY=VALUE", kv);
        return -EINVAL;
    }
    char key[128], err[256] = "";
    size_t klen = (size_t)(eq - kv);
    if (klen >= sizeof(key)) {
        cli_fail(0, "-X %s: key too long", kv);
        return -EINVAL;
    }
    memcpy(key, kv, klen);
    key[klen] = 0;
    int rc = rn_conf_set(conf, key, eq + 1, err, sizeof(err));
    if (rc < 0) {
        /* librunnel's message names the key; the setting is not repeated. */
        if (err[0] && strstr(err, key))
            cli_fail(0, "-X: %s", err);
        else
            cli_fail(0, "-X %s: %s", kv, err[0] ? err : rn_err_str(rc));
        return rc;
    }
    return 0;
}

rn_conf *cli_conn_conf(const cli_conn *c, const char *const *extra)
{
    rn_conf *conf = rn_conf_new();
    if (!conf) {
        cli_fail(-ENOMEM, "configuration");
        return NULL;
    }
    char err[256] = "";
    int rc = rn_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof(err));
    if (rc < 0) {
        cli_fail(0, "brokers '%s': %s", c->brokers, err[0] ? err : rn_err_str(rc));
        goto fail;
    }
    /* The CLI is one short-lived process: name it so broker logs say who called. */
    rn_conf_set(conf, "client.id", "runnel-cli", err, sizeof(err));
    for (size_t i = 0; extra && extra[i]; i++)
        if (set_prop(conf, extra[i]) < 0)
            goto fail;
    for (size_t i = 0; i < c->n_props; i++)
        if (set_prop(conf, c->props[i]) < 0)
            goto fail;
    return conf;
fail:
    rn_conf_free(conf);
    return NULL;
}

int cli_conn_prop_ms(const cli_conn *c, const char *key, int def)
{
    size_t kl = strlen(key);
    int64_t ms = def;
    for (size_t i = 0; i < c->n_props; i++) {
        if (strncmp(c->props[i], key, kl) == 0 && c->props[i][kl] == '=')
            cli_parse_i64(c->props[i] + kl + 1, 1, INT32_MAX, &ms);
    }
    return (int)ms;
}

/* Split "host:port" or "[v6]:port" into host and port strings. */
static int split_hostport(const char *s, size_t len, char *host, size_t hlen, char *port,
                          size_t plen)
{
    const char *colon = NULL;
    const char *h = s;
    size_t hl;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close + 1 >= s + len || close[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        for (size_t i = len; i > 0; i--) {
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        }
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    size_t pl = len - (size_t)(colon + 1 - s);
    if (hl == 0 || hl >= hlen || pl == 0 || pl >= plen)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    memcpy(port, colon + 1, pl);
    port[pl] = 0;
    return 0;
}

/* One non-blocking connect with a deadline. Returns 0 or -errno. */
static int try_connect(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n;
        do {
            n = poll(&pfd, 1, timeout_ms);
        } while (n < 0 && errno == EINTR && !cli_stop);
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            rc = -errno;
        else if (soerr)
            rc = -soerr;
    }
out:
    close(fd);
    return rc;
}

int cli_conn_probe(const cli_conn *c)
{
    int timeout = cli_conn_prop_ms(c, "connect.timeout.ms", 5000);
    int64_t deadline = cli_mono_us() + (int64_t)timeout * 1000;
    int last = -EINVAL;
    const char *why = "no broker address";
    const char *s = c->brokers;
    while (*s) {
        size_t len = strcspn(s, ",");
        char host[256], port[16];
        /* Skip blanks around entries: "a:1, b:2" is a common spelling. */
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        size_t l = len;
        while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
            l--;
        if (l > 0 && split_hostport(s, l, host, sizeof(host), port, sizeof(port)) == 0) {
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            int gai = getaddrinfo(host, port, &hints, &res);
            if (gai != 0) {
                last = -EHOSTUNREACH;
                why = gai_strerror(gai);
            }
            for (struct addrinfo *ai = res; gai == 0 && ai; ai = ai->ai_next) {
                int64_t left = (deadline - cli_mono_us()) / 1000;
                if (left <= 0) {
                    last = -ETIMEDOUT;
                    break;
                }
                last = try_connect(ai, (int)left);
                if (last == 0) {
                    freeaddrinfo(res);
                    return 0;
                }
                why = NULL;
            }
            if (res)
                freeaddrinfo(res);
        } else if (l > 0) {
            cli_fail(0, "broker address '%.*s': expected HOST:PORT", (int)l, s);
            return -EINVAL;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    if (why)
        cli_fail(0, "cannot reach a broker at %s: %s (set -b HOST:PORT or RUNNEL_BROKERS)",
                 c->brokers, why);
    else
        cli_fail(0, "cannot reach a broker at %s: %s (set -b HOST:PORT or RUNNEL_BROKERS)",
                 c->brokers,
                 last == -ETIMEDOUT ? "no answer within connect.timeout.ms" : rn_err_str(last));
    return last < 0 ? last : -EINVAL;
}

int cli_conn_start(const cli_conn *c)
{
    rn_conf *conf = cli_conn_conf(c, NULL);
    if (!conf)
        return CLI_USAGE;
    rn_conf_free(conf);
    int rc = cli_conn_probe(c);
    if (rc == -EINVAL)
        return CLI_USAGE;
    return rc < 0 ? CLI_ERROR : CLI_OK;
}

int cli_admin_start(const cli_conn *c, rn_admin **out)
{
    int status = cli_conn_start(c);
    if (status != CLI_OK)
        return status;
    rn_conf *conf = cli_conn_conf(c, NULL);
    if (!conf)
        return CLI_ERROR;
    int rc = rn_admin_new(out, conf);
    rn_conf_free(conf);
    if (rc < 0)
        return cli_fail(rc, "admin client");
    return CLI_OK;
}

int cli_producer_drain(rn_producer *p, int timeout_ms)
{
    int64_t deadline = cli_mono_us() + (int64_t)timeout_ms * 1000;
    while (rn_producer_outstanding(p) > 0) {
        if (cli_stop)
            return -EINTR;
        int64_t left = (deadline - cli_mono_us()) / 1000;
        if (left <= 0)
            return -RN_E_TIMEOUT;
        int rc = rn_producer_flush(p, left < 100 ? (int)left : 100);
        if (rc < 0 && rc != -RN_E_TIMEOUT)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

int cli_getopt(int argc, char **argv, const char *optstring, const struct option *longopts,
               cli_conn *conn, void (*usage)(FILE *), int *status)
{
    for (;;) {
        int c = getopt_long(argc, argv, optstring, longopts, NULL);
        if (c == -1)
            return -1;
        if (conn) {
            int rc = cli_conn_opt(conn, c, optarg);
            if (rc < 0) {
                *status = cli_fail(rc, "options");
                return CLI_OPT_EXIT;
            }
            if (rc == 1)
                continue;
        }
        if (c == 'h') {
            usage(stdout);
            *status = CLI_OK;
            return CLI_OPT_EXIT;
        }
        if (c == ':' || c == '?') {
            *status = cli_opt_error(c, argv);
            return CLI_OPT_EXIT;
        }
        return c;
    }
}

int cli_one_topic(int argc, char **argv, const char **topic)
{
    if (optind >= argc)
        return cli_usage("which topic?");
    if (argc - optind > 1)
        return cli_usage("one topic at a time ('%s' is extra)", argv[optind + 1]);
    *topic = argv[optind];
    return CLI_OK;
}

int cli_strv_push(const char ***v, size_t *n, const char *s)
{
    const char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (!nv)
        return cli_fail(-ENOMEM, "options");
    *v = nv;
    nv[(*n)++] = s;
    return CLI_OK;
}

int cli_opt_unescape(const char *flag, const char *arg, char **out, size_t *len)
{
    free(*out);
    *out = NULL;
    if (cli_unescape(arg, out, len) < 0)
        return cli_usage("%s %s: bad escape", flag, arg);
    return CLI_OK;
}

int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != 0 || end == s)
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cli_unescape(const char *s, char **out, size_t *len)
{
    size_t n = strlen(s);
    char *buf = malloc(n + 1);
    if (!buf)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            buf[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'n':
            buf[o++] = '\n';
            break;
        case 't':
            buf[o++] = '\t';
            break;
        case 'r':
            buf[o++] = '\r';
            break;
        case '0':
            buf[o++] = 0;
            break;
        case '\\':
            buf[o++] = '\\';
            break;
        case 'x': {
            int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(buf);
                return -EINVAL;
            }
            buf[o++] = (char)(hi << 4 | lo);
            i += 2;
            break;
        }
        default:
            /* Unknown escapes stay literal, backslash included, so a Windows
             * path or a regex in a format is not silently mangled. */
            buf[o++] = '\\';
            buf[o++] = c;
        }
    }
    buf[o] = 0;
    *out = buf;
    *len = o;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Time and progress                                                         */
/* ------------------------------------------------------------------------ */

int64_t cli_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cli_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_progress_init(cli_progress *p, const char *unit, uint64_t total, bool uses_stdout)
{
    memset(p, 0, sizeof(*p));
    p->on = isatty(STDERR_FILENO) && !(uses_stdout && isatty(STDOUT_FILENO));
    p->unit = unit;
    p->total = total;
    p->start_us = p->last_us = cli_mono_us();
}

static void human_bytes(char *buf, size_t len, double b)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

void cli_progress_update(cli_progress *p, uint64_t n, uint64_t bytes)
{
    if (!p->on)
        return;
    int64_t now = cli_mono_us();
    if (now - p->last_us < 200000)
        return;
    p->last_us = now;
    double secs = (double)(now - p->start_us) / 1e6;
    double rate = secs > 0 ? (double)n / secs : 0;
    char hb[32];
    human_bytes(hb, sizeof(hb), (double)bytes);
    if (p->total) {
        char bar[31];
        uint64_t done = n > p->total ? p->total : n;
        size_t fill = (size_t)(done * 30 / p->total);
        memset(bar, '#', fill);
        memset(bar + fill, '-', 30 - fill);
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %3u%% %" PRIu64 "/%" PRIu64 " %s  %s  %.0f/s\033[K", bar,
                (unsigned)(done * 100 / p->total), n, p->total, p->unit, hb, rate);
    } else {
        fprintf(stderr, "\r%" PRIu64 " %s  %s  %.0f/s\033[K", n, p->unit, hb, rate);
    }
    p->drawn = true;
}

void cli_progress_done(cli_progress *p)
{
    if (p->on && p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = false;
}
