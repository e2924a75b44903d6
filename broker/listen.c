/*
 * listen.c — the listening sockets of runneld (native protocol and HTTP).
 *
 * One way to open them, so both listeners behave alike:
 *   - one reactor: no SO_REUSEPORT, so a second broker started on the same
 *     port by mistake gets EADDRINUSE instead of silently sharing the port's
 *     connections;
 *   - N reactors: N sockets with SO_REUSEPORT (the kernel spreads
 *     connections over them), after a probe bind without it that fails if
 *     any other process holds the port;
 *   - after a kill -9 the old process's io_uring (and the listener it holds)
 *     is torn down by the kernel in the background, so a restart right away
 *     may find the port still taken for a moment: the caller may ask for a
 *     few seconds of retries.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/logfmt.h"

#define RETRIES 50 /* of 100 ms: 5 s */

/* A socket bound to ai (not yet listening), retrying a taken address for 5 s
 * when retry_in_use. */
static int bind_one(const struct addrinfo *ai, bool reuseport, bool retry_in_use, const char *what,
                    const char *hostport, int *out)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    for (int tries = 0;; tries++) {
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        int rc = -errno;
        if (rc != -EADDRINUSE || !retry_in_use || tries >= RETRIES) {
            close(fd);
            return rc;
        }
        if (tries == 0)
            rn_logfmt(RN_INFO, "address in use, retrying for 5 s", "%s=%s", what, hostport);
        usleep(100000);
    }
    *out = fd;
    return 0;
}

static int resolve(const char *what, const char *hostport, struct addrinfo **ai)
{
    char host[256];
    uint16_t port;
    int rc = rn_config_parse_hostport(hostport, host, sizeof(host), &port);
    if (rc < 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    rc = getaddrinfo(host, ps, &hints, ai);
    if (rc != 0) {
        rn_logfmt(RN_ERROR, "cannot resolve listener", "%s=%s err=\"%s\"", what, hostport,
                  gai_strerror(rc));
        return -EINVAL;
    }
    return 0;
}

int rn_listen_open(const char *what, const char *hostport, bool retry_in_use, int *out)
{
    struct addrinfo *ai = NULL;
    int rc = resolve(what, hostport, &ai);
    if (rc < 0)
        return rc;
    int fd = -1;
    rc = bind_one(ai, false, retry_in_use, what, hostport, &fd);
    if (rc == -EADDRINUSE && !retry_in_use) {
        /* The caller decides what a taken port means (and says so). */
        freeaddrinfo(ai);
        return rc;
    }
    if (rc < 0)
        goto fail;
    if (listen(fd, 1024) < 0) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    freeaddrinfo(ai);
    *out = fd;
    return 0;

fail:
    rn_logfmt(RN_ERROR, "cannot listen", "%s=%s err=%s", what, hostport, rn_errname(rc));
    freeaddrinfo(ai);
    return rc;
}

int rn_listen_open_shared(const char *what, const char *hostport, unsigned n, int *fds)
{
    struct addrinfo *ai = NULL;
    int rc = resolve(what, hostport, &ai);
    if (rc < 0)
        return rc;
    unsigned opened = 0;
    /* Probe without SO_REUSEPORT: if another process (say a second runneld
     * by mistake) holds the port, this fails, where a SO_REUSEPORT bind
     * would silently share its connections. */
    int probe = -1;
    rc = bind_one(ai, false, true, what, hostport, &probe);
    if (rc < 0)
        goto fail;
    close(probe);
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    struct addrinfo one = *ai;
    one.ai_addr = (struct sockaddr *)&ss;
    for (; opened < n; opened++) {
        rc = bind_one(&one, true, true, what, hostport, &fds[opened]);
        if (rc == 0 && listen(fds[opened], 1024) < 0) {
            rc = -errno;
            close(fds[opened]);
        }
        if (rc < 0)
            goto fail;
        if (opened == 0) {
            /* Port 0: the others join the port the kernel picked. */
            socklen_t sl = sizeof(ss);
            getsockname(fds[0], (struct sockaddr *)&ss, &sl);
        }
    }
    freeaddrinfo(ai);
    return 0;

fail:
    rn_logfmt(RN_ERROR, "cannot listen", "%s=%s err=%s", what, hostport, rn_errname(rc));
    while (opened > 0)
        close(fds[--opened]);
    freeaddrinfo(ai);
    return rc;
}
