/*
 * coord/member_id.c — see member_id.h. getrandom() blocks only until the
 * kernel's pool is first seeded, long before a broker takes members; a
 * signal during it is retried.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

#include "broker/coord/member_id.h"

int rn_member_id_new(const char *prefix, char *buf, size_t len)
{
    uint8_t r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char uuid[37];
    snprintf(uuid, sizeof(uuid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    if (prefix)
        snprintf(buf, len, "%.64s-%s", prefix, uuid);
    else
        snprintf(buf, len, "%s", uuid);
    return 0;
}
