/*
 * listen.c — the listening sockets of runneld (native protocol and HTTP).
 *
 * One way to open them, so both listeners behave alike:
 *   - no SO_REUSEPORT while there is one reactor: a second broker started on
 *     the same port by mistake gets EADDRINUSE instead of silently sharing the
 *     port's connections;
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

#define RETRIES 50      /* of 100 ms: 5 s */

int rn_listen_open(const char *what, const char *hostport, bool retry_in_use, int *out)
{
    char host[256];
    uint16_t port;
    int rc = rn_config_parse_hostport(hostport, host, sizeof(host), &port);
    if (rc < 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0) {
        rn_logfmt(RN_ERROR, "cannot resolve listener", "%s=%s err=\"%s\"", what, hostport,
                  gai_strerror(rc));
        return -EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    for (int tries = 0;; tries++) {
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        rc = -errno;
        if (rc == -EADDRINUSE && !retry_in_use) {
            /* The caller decides what a taken port means (and says so). */
            close(fd);
            freeaddrinfo(ai);
            return rc;
        }
        if (rc != -EADDRINUSE || tries >= RETRIES) {
            close(fd);
            goto fail;
        }
        if (tries == 0)
            rn_logfmt(RN_INFO, "address in use, retrying for 5 s", "%s=%s", what, hostport);
        usleep(100000);
    }
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
