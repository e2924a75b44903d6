/*
 * errors.h — runnel's error codes and rn_strerror().
 *
 * Every function in runnel returns 0 on success or a negative value: -errno for
 * system errors, -RN_E_<NAME> for runnel's own codes from protocol/errors.def.
 */
#ifndef RN_ERRORS_H
#define RN_ERRORS_H

#include <stddef.h>

enum rn_error {
#define RN_ERROR(name, code, msg) RN_E_##name = code,
#include "protocol/errors.def"
#undef RN_ERROR
};

/* Human message for err (negative or positive: the sign is ignored). Never NULL;
 * a static string valid for the life of the process. Thread-safe. */
const char *rn_strerror(int err);

/* Symbolic name ("OFFSET_OUT_OF_RANGE", "ENOSPC") for err, or "UNKNOWN". */
const char *rn_errname(int err);

/* Format a message into err (when err is not NULL and errlen > 0) and
 * return rc: `return rn_errf(-RN_E_X, err, errlen, "…", …);` — the shape of
 * every function that returns a code and fills a caller's message buffer. */
int rn_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True when err (negative) is one of runnel's own codes rather than -errno. */
static inline int rn_is_rn_error(int err)
{
    return err <= -1000;
}

#endif
