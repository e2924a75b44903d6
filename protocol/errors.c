/*
 * errors.c — rn_strerror() and rn_errname() from the X-macro list in errors.def.
 *
 * System errors (-errno) fall through to strerrordesc_np()/strerrorname_np(),
 * which return static strings and so are thread-safe, unlike strerror().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/errors.h"

const char *rn_strerror(int err)
{
    if (err < 0)
        err = -err;
    if (err == 0)
        return "success";
    switch (err) {
#define RN_ERROR(name, code, msg)                                                                  \
    case code:                                                                                     \
        return msg;
#include "protocol/errors.def"
#undef RN_ERROR
    }
    const char *s = err < 1000 ? strerrordesc_np(err) : NULL;
    return s ? s : "unknown error code";
}

const char *rn_errname(int err)
{
    if (err < 0)
        err = -err;
    if (err == 0)
        return "OK";
    switch (err) {
#define RN_ERROR(name, code, msg)                                                                  \
    case code:                                                                                     \
        return #name;
#include "protocol/errors.def"
#undef RN_ERROR
    }
    const char *s = err < 1000 ? strerrorname_np(err) : NULL;
    return s ? s : "UNKNOWN";
}

int rn_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}
