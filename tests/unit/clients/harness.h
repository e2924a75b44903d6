/*
 * harness.h — a real runneld for the librunnel tests, and small helpers.
 *
 * rt_broker_start runs the broker meson built (RUNNELD_PATH) as a child on a
 * free 127.0.0.1 port with one reactor and its own mkdtemp directory under
 * /tmp, and waits until it accepts connections. rt_broker_kill sends a signal
 * and reaps it (SIGKILL: a crash); rt_broker_restart starts it again on the
 * same directory and ports; rt_broker_stop ends it (SIGTERM) and removes the
 * directory. The child gets PR_SET_PDEATHSIG=SIGKILL, so a test that crashes
 * never leaves a broker behind. Its log is <dir>/runneld.log.
 *
 * Everything is static: each test file includes this once.
 */
#ifndef RN_TEST_CLIENT_HARNESS_H
#define RN_TEST_CLIENT_HARNESS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clients/runnel.h"

#ifndef RUNNELD_PATH
#error "RUNNELD_PATH must be defined by the build"
#endif

typedef struct rt_broker {
    char dir[64];
    char data[96];
    char log[96];
    uint16_t port, http_port;
    char servers[32];
    pid_t pid;
} rt_broker;

static inline int64_t rt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void rt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A port nothing listens on right now (the kernel's pick for an ephemeral bind). */
static inline uint16_t rt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static inline bool rt_can_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static inline void rt_broker_spawn(rt_broker *b)
{
    char listen[32], http[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", b->port);
    snprintf(http, sizeof(http), "127.0.0.1:%u", b->http_port);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(RUNNELD_PATH, "runneld", "--data-dir", b->data, "--listen", listen, "--http", http,
              "--reactors", "1", (char *)NULL);
        _exit(127);
    }
    b->pid = pid;
    int64_t deadline = rt_now_ms() + 10000;
    while (!rt_can_connect(b->port)) {
        int st;
        cr_assert(waitpid(pid, &st, WNOHANG) == 0, "runneld exited at start; see %s", b->log);
        cr_assert(rt_now_ms() < deadline, "runneld did not listen within 10 s; see %s", b->log);
        rt_sleep_ms(10);
    }
}

static inline void rt_broker_start(rt_broker *b)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->dir, sizeof(b->dir), "/tmp/rn-client-test-XXXXXX");
    cr_assert_not_null(mkdtemp(b->dir));
    snprintf(b->data, sizeof(b->data), "%s/data", b->dir);
    snprintf(b->log, sizeof(b->log), "%s/runneld.log", b->dir);
    b->port = rt_free_port();
    do
        b->http_port = rt_free_port();
    while (b->http_port == b->port);
    snprintf(b->servers, sizeof(b->servers), "127.0.0.1:%u", b->port);
    rt_broker_spawn(b);
}

static inline void rt_broker_kill(rt_broker *b, int sig)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, sig);
    int st;
    waitpid(b->pid, &st, 0);
    b->pid = 0;
}

static inline void rt_broker_restart(rt_broker *b)
{
    rt_broker_spawn(b);
}

static int rt_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rt_broker_stop(rt_broker *b)
{
    rt_broker_kill(b, SIGTERM);
    if (b->dir[0])
        nftw(b->dir, rt_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    b->dir[0] = 0;
}

/* A configuration for b with extra key/value pairs (NULL-terminated list). */
static inline rn_conf *rt_conf(const rt_broker *b, ...)
{
    rn_conf *c = rn_conf_new();
    cr_assert_not_null(c);
    char err[256];
    cr_assert_eq(
        rn_conf_set(c, "bootstrap.servers", b ? b->servers : "127.0.0.1:1", err, sizeof(err)), 0,
        "%s", err);
    va_list ap;
    va_start(ap, b);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        cr_assert_eq(rn_conf_set(c, k, v, err, sizeof(err)), 0, "%s=%s: %s", k, v, err);
    }
    va_end(ap);
    return c;
}

/* An admin client of b; the caller frees it with rn_admin_free. */
static inline rn_admin *rt_admin(const rt_broker *b)
{
    rn_conf *c = rt_conf(b, NULL);
    rn_admin *a;
    cr_assert_eq(rn_admin_new(&a, c), 0);
    rn_conf_free(c);
    return a;
}

static inline void rt_create_topic(const rt_broker *b, const char *topic, int32_t partitions)
{
    rn_admin *a = rt_admin(b);
    int rc = rn_admin_create_topic(a, topic, partitions, 1, NULL, NULL, 0);
    cr_assert_eq(rc, 0, "create %s: %s", topic, rn_admin_errmsg(a));
    rn_admin_free(a);
}

/* rt_broker_start, then topic with that many partitions. */
static inline void rt_broker_with_topic(rt_broker *b, const char *topic, int32_t partitions)
{
    rt_broker_start(b);
    rt_create_topic(b, topic, partitions);
}

#endif
