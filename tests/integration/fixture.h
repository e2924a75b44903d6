/*
 * fixture.h — Criterion glue around client.h for the integration tests.
 *
 * Header-only (static inline): each test_*.c is its own executable. A test
 * starts one runneld (itf_start), talks to it, and ends with itf_stop_clean,
 * which sends SIGTERM and asserts exit status 0: a broker that crashes,
 * hangs on shutdown, or (in the sanitizer build) leaks or trips ASan/UBSan
 * fails the test that ran it. On any failure the tail of the broker's log is
 * printed, so the reason is in the test output. itf_pass ends a test that got
 * through (close, clean stop, passed); itf_bounce restarts the broker under a
 * test. Tests that also talk to the HTTP listener or run the runnel CLI share
 * ITF_HTTP_SUITE, itf_http_get and itf_run_cli instead of each keeping a copy.
 */
#ifndef RN_IT_FIXTURE_H
#define RN_IT_FIXTURE_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

/* Slow machines and the sanitizer build start runneld in well under a second;
 * 20 s only bounds a broken one. */
#define ITF_START_MS 20000
#define ITF_STOP_MS  20000

/* Set by the test when it reached its end; the teardown dumps the broker log
 * otherwise (the test failed or crashed in between). */
static bool itf_passed;

static inline void itf_start(it_broker *b, const char *const *args)
{
    itf_passed = false;
    cr_assert_eq(it_broker_init(b, args), 0, "it_broker_init");
    int rc = it_broker_start(b, ITF_START_MS);
    if (rc < 0)
        it_broker_dump_log(b, 8192);
    cr_assert_eq(rc, 0, "runneld did not start: %s", strerror(-rc));
}

static inline void itf_restart(it_broker *b)
{
    int rc = it_broker_start(b, ITF_START_MS);
    if (rc < 0)
        it_broker_dump_log(b, 8192);
    cr_assert_eq(rc, 0, "runneld did not restart: %s", strerror(-rc));
}

static inline it_conn *itf_connect(it_broker *b)
{
    it_conn *c = NULL;
    int rc = it_broker_connect(b, &c);
    cr_assert_eq(rc, 0, "connect to runneld: %s", strerror(-rc));
    return c;
}

/* Describe a wait status for messages. */
static inline const char *itf_status_str(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "status 0x%x", st);
    return buf;
}

/* SIGTERM, and the broker must exit 0 (graceful, no leak, no sanitizer
 * report). */
static inline void itf_stop_clean(it_broker *b)
{
    cr_assert(it_broker_alive(b), "runneld died during the test");
    int st = 0;
    int rc = it_broker_stop(b, SIGTERM, ITF_STOP_MS, &st);
    char s[32];
    if (rc < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        it_broker_dump_log(b, 16384);
    cr_assert_eq(rc, 0, "runneld did not stop within %d ms", ITF_STOP_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runneld ended with %s",
              itf_status_str(st, s, sizeof(s)));
}

/* The end of a test that got this far: close c (may be NULL), stop the
 * broker cleanly (itf_stop_clean) and mark the test passed. */
static inline void itf_pass(it_broker *b, it_conn *c)
{
    it_conn_close(c);
    itf_stop_clean(b);
    itf_passed = true;
}

/* Close c, stop the broker cleanly, start it again on the same data and port,
 * and return a new connection to it: what survives a restart. */
static inline it_conn *itf_bounce(it_broker *b, it_conn *c)
{
    it_conn_close(c);
    itf_stop_clean(b);
    itf_restart(b);
    return itf_connect(b);
}

/* Replace the suite's broker with a fresh one started with args: for the
 * few tests that need other flags. (A Criterion test-level .init runs after
 * the suite's, not instead of it.) */
static inline void itf_start_over(it_broker *b, const char *const *args);

static inline void itf_teardown(it_broker *b)
{
    if (!itf_passed && b->root[0])
        it_broker_dump_log(b, 8192);
    it_broker_destroy(b);
}

static inline void itf_start_over(it_broker *b, const char *const *args)
{
    itf_stop_clean(b);
    it_broker_destroy(b);
    itf_start(b, args);
}

/* A batch of n records "<tag>-<i>" at time ts; the caller frees it. */
static inline uint8_t *itf_batch(const char *tag, int n, int64_t ts, size_t *len)
{
    uint8_t *b = NULL;
    int rc = it_batch_make(&b, len, tag, n, ts);
    cr_assert_eq(rc, 0, "it_batch_make: %d", rc);
    return b;
}

static inline void itf_create(it_conn *c, const char *name, int32_t partitions, const char *configs)
{
    int rc = it_create_topic(c, name, partitions, configs);
    cr_assert_eq(rc, 0, "create topic %s: %d (%s)", name, rc,
                 rc > 0 ? rn_strerror(-rc) : strerror(-rc));
}

/* Produce one batch with acks=1 and return its base offset. */
static inline int64_t itf_produce(it_conn *c, const char *topic, int32_t partition,
                                  const void *batch, size_t len)
{
    int64_t base = -1;
    int rc = it_produce_one(c, topic, partition, batch, len, 1, &base);
    cr_assert_eq(rc, 0, "produce %s-%d: %d (%s)", topic, partition, rc,
                 rc > 0 ? rn_strerror(-rc) : strerror(-rc));
    return base;
}

/* The value of a config key in a DescribeTopic answer, or NULL. */
static inline const char *itf_config(const Runnel__DescribeTopicResponse *d, const char *key)
{
    for (size_t i = 0; i < d->n_configs; i++)
        if (!strcmp(d->configs[i]->key, key))
            return d->configs[i]->value;
    return NULL;
}

/* ---- The HTTP listener, files and the runnel CLI ----------------------------- */

/* A free 127.0.0.1 port: bound, read and closed again (the broker that is
 * given it binds it a moment later). */
static inline uint16_t itf_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* itf_start with an HTTP listener on a free port, which it returns. */
static inline uint16_t itf_start_http(it_broker *b)
{
    uint16_t port = itf_free_port();
    char http[32];
    snprintf(http, sizeof(http), "127.0.0.1:%u", port);
    const char *args[] = {"--http", http, NULL};
    itf_start(b, args); /* it_broker_init copies the arguments */
    return port;
}

/* Define the suite `name` (tests time out after timeout_s) whose every test
 * gets a fresh broker B with an HTTP listener on http_port. */
#define ITF_HTTP_SUITE(name, timeout_s)                                                            \
    static it_broker B;                                                                            \
    static uint16_t http_port;                                                                     \
    static void itf_http_setup(void)                                                               \
    {                                                                                              \
        http_port = itf_start_http(&B);                                                            \
    }                                                                                              \
    static void itf_http_teardown(void)                                                            \
    {                                                                                              \
        itf_teardown(&B);                                                                          \
    }                                                                                              \
    TestSuite(name, .init = itf_http_setup, .fini = itf_http_teardown, .timeout = (timeout_s))

/* GET path from the HTTP listener on port: the status, and the body in *body
 * (malloc'd, NUL-terminated). Reads until the broker closes (Connection:
 * close), at most 10 s per read. */
static inline int itf_http_get(uint16_t port, const char *path, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1, "no status line: %.200s", buf);
    char *start = strstr(buf, "\r\n\r\n");
    *body = strdup(start ? start + 4 : "");
    free(buf);
    return status;
}

/* The whole file at path (malloc'd, NUL-terminated); its size in *len when
 * len is not NULL. */
static inline char *itf_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

static inline size_t itf_count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#ifdef IT_RUNNEL
/* Run `runnel ARGS -b <b's address>` (a shell line, under timeout 60) with
 * stdin from in_path (NULL: /dev/null), stdout and stderr to files in b's
 * scratch directory; return its exit status, and the outputs (malloc'd) in
 * *out and *err. IT_RUNNEL is the CLI meson built with this tree. */
static inline int itf_run_cli(const it_broker *b, const char *args, const char *in_path, char **out,
                              char **err)
{
    char outp[160], errp[160], cmd[1024];
    snprintf(outp, sizeof(outp), "%s/cli.out", b->root);
    snprintf(errp, sizeof(errp), "%s/cli.err", b->root);
    snprintf(cmd, sizeof(cmd), "timeout 60 %s %s -b 127.0.0.1:%u <%s >%s 2>%s", IT_RUNNEL, args,
             b->port, in_path ? in_path : "/dev/null", outp, errp);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "%s: status 0x%x", cmd, st);
    *out = itf_slurp(outp, NULL);
    *err = itf_slurp(errp, NULL);
    return WEXITSTATUS(st);
}
#endif

#endif
