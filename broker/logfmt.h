/*
 * logfmt.h — runneld's logs: one logfmt line per event on stderr.
 *
 *   ts=2026-11-24T02:30:00.123Z level=info msg="topic created" topic=orders partitions=3
 *
 * The message is quoted; the caller's fields are printf-formatted "k=v" pairs
 * and values with blanks or quotes must be passed through rn_logfmt_quote().
 * A line is written with one write(2) so lines from several reactor threads
 * never interleave. Thread-safe.
 */
#ifndef RN_LOGFMT_H
#define RN_LOGFMT_H

#include <stddef.h>

enum rn_log_level { RN_DEBUG, RN_INFO, RN_WARN, RN_ERROR };

/* Minimum level printed; default RN_INFO. Env RUNNEL_LOG_LEVEL=debug|info|warn|error
 * is read by rn_logfmt_init(). */
void rn_logfmt_init(void);
void rn_logfmt_set_level(enum rn_log_level level);

/* Log msg at level with extra fields (may be NULL). */
void rn_logfmt(enum rn_log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quote s as a logfmt value ("a b" → "\"a b\"", escapes " and \ and control
 * characters) into buf; returns buf. Plain tokens are copied unquoted. */
const char *rn_logfmt_quote(const char *s, char *buf, size_t len);

#endif
