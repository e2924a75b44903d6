/*
 * logfmt.c — runneld's log lines on stderr (see logfmt.h).
 *
 *   ts=2026-11-24T02:30:00.123Z level=info msg="topic created" topic=orders partitions=3
 *
 * How it fits: every module logs through rn_logfmt(); reactor threads log at
 * the same time, so each line is built in a stack buffer and handed to the
 * kernel in one write(2). No lock is taken: a single write of at most PIPE_BUF
 * (4 KiB) bytes to a pipe is atomic, and writes to a file opened O_APPEND do
 * not interleave either, so lines from different threads never mix. The only
 * shared state is the minimum level, an atomic int.
 *
 * Invariants:
 *  1. One event is one line: at most LINE_BYTES bytes including the '\n'.
 *     A longer one is cut at a UTF-8 character boundary and ends in "…" (inside
 *     the quotes when the message itself is cut, so the line still parses).
 *  2. msg is always quoted; rn_logfmt_quote() quotes a value only when it has
 *     to (empty, blank, '"', '=', '\\', control characters) and escapes '"',
 *     '\\' and control characters (\n \r \t, others as \u00XX).
 *  3. Caller-formatted fields are trusted to be quoted already, but a raw CR
 *     or LF in them is turned into a blank: a value that forgot
 *     rn_logfmt_quote() must not forge a second log line.
 *  4. Logging never changes errno, so `rn_logfmt(...); return -errno;` works.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "broker/logfmt.h"

#define LINE_BYTES   4096 /* = PIPE_BUF on Linux: the largest write a pipe keeps whole */
#define ELLIPSIS     "…"
#define ELLIPSIS_LEN (sizeof(ELLIPSIS) - 1)

static atomic_int min_level = RN_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- Quoting -------------------------------------------------------------- */

static bool plain_byte(unsigned char ch)
{
    return ch > ' ' && ch != 0x7f && ch != '"' && ch != '=' && ch != '\\';
}

/* The escaped form of the unit (one character) starting at s: into u, returns
 * the bytes of input it covers; *ulen is the length of its escaped form. A
 * UTF-8 sequence is one unit so that truncation never splits a character. */
static size_t unit(const unsigned char *s, char u[8], size_t *ulen)
{
    unsigned char ch = s[0];
    switch (ch) {
    case '"':
    case '\\':
        u[0] = '\\';
        u[1] = (char)ch;
        *ulen = 2;
        return 1;
    case '\n':
        memcpy(u, "\\n", 2);
        *ulen = 2;
        return 1;
    case '\r':
        memcpy(u, "\\r", 2);
        *ulen = 2;
        return 1;
    case '\t':
        memcpy(u, "\\t", 2);
        *ulen = 2;
        return 1;
    }
    if (ch < 0x20 || ch == 0x7f) {
        snprintf(u, 8, "\\u%04x", ch);
        *ulen = 6;
        return 1;
    }
    size_t want = ch >= 0xF0 && ch <= 0xF7 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
    size_t n = 1;
    u[0] = (char)ch;
    while (n < want && (s[n] & 0xC0) == 0x80) {
        u[n] = (char)s[n];
        n++;
    }
    *ulen = n;
    return n;
}

/* Write s into dst[0..cap) as a logfmt value, NUL-terminated; quoted when
 * force or when it is not a plain token. Returns the length written; *cut is
 * set when s did not fit and was shortened (ending in "…"). */
static size_t quote_into(char *dst, size_t cap, const char *s, bool force, bool *cut)
{
    const unsigned char *p = (const unsigned char *)s;
    *cut = false;
    if (cap == 0)
        return 0;
    bool plain = !force && p[0] != '\0';
    for (size_t i = 0; plain && p[i]; i++)
        plain = plain_byte(p[i]);

    /* First pass: the full length, to know whether "…" needs room. */
    size_t full = plain ? strlen(s) : 2;
    for (size_t i = 0; !plain && p[i];) {
        char u[8];
        size_t ulen;
        i += unit(p + i, u, &ulen);
        full += ulen;
    }
    size_t room = cap - 1; /* for the NUL */
    size_t tail = plain ? 0 : 1;
    if (full > room) {
        *cut = true;
        if (room < tail + ELLIPSIS_LEN + (plain ? 0 : 1)) {
            dst[0] = '\0';
            return 0;
        }
        room -= tail + ELLIPSIS_LEN;
    }

    size_t o = 0;
    if (!plain)
        dst[o++] = '"';
    for (size_t i = 0; p[i];) {
        char u[8];
        /* In a plain token no byte needs an escape, so a unit is its raw bytes. */
        size_t ulen, used = unit(p + i, u, &ulen);
        if (o + ulen + (*cut ? 0 : tail) > room)
            break;
        memcpy(dst + o, u, ulen);
        o += ulen;
        i += used;
    }
    if (*cut) {
        memcpy(dst + o, ELLIPSIS, ELLIPSIS_LEN);
        o += ELLIPSIS_LEN;
    }
    if (!plain)
        dst[o++] = '"';
    dst[o] = '\0';
    return o;
}

const char *rn_logfmt_quote(const char *s, char *buf, size_t len)
{
    bool cut;
    quote_into(buf, len, s ? s : "", false, &cut);
    return buf;
}

/* ---- Levels --------------------------------------------------------------- */

void rn_logfmt_set_level(enum rn_log_level level)
{
    if (level > RN_ERROR)
        level = RN_ERROR;
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

void rn_logfmt_init(void)
{
    const char *env = getenv("RUNNEL_LOG_LEVEL");
    if (!env || !*env) {
        rn_logfmt_set_level(RN_INFO);
        return;
    }
    for (int l = RN_DEBUG; l <= RN_ERROR; l++) {
        if (strcasecmp(env, level_names[l]) == 0) {
            rn_logfmt_set_level((enum rn_log_level)l);
            return;
        }
    }
    if (strcasecmp(env, "warning") == 0) {
        rn_logfmt_set_level(RN_WARN);
        return;
    }
    rn_logfmt_set_level(RN_INFO);
    char q[128];
    rn_logfmt(RN_WARN, "RUNNEL_LOG_LEVEL not understood, using info", "value=%s allowed=%s",
              rn_logfmt_quote(env, q, sizeof(q)), "debug,info,warn,error");
}

/* ---- Lines ---------------------------------------------------------------- */

/* Cut line[0..*pos) so that "…" fits before the '\n', at a character boundary. */
static void cut_line(char *line, size_t *pos)
{
    size_t limit = LINE_BYTES - 1 - ELLIPSIS_LEN;
    size_t p = *pos < limit ? *pos : limit;
    /* line[p] is the first byte dropped; if it continues a UTF-8 sequence,
     * drop the whole character. */
    while (p > 0 && ((unsigned char)line[p] & 0xC0) == 0x80)
        p--;
    memcpy(line + p, ELLIPSIS, ELLIPSIS_LEN);
    *pos = p + ELLIPSIS_LEN;
}

static void write_all(const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report that stderr is gone */
        buf += w;
        n -= (size_t)w;
    }
}

void rn_logfmt(enum rn_log_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    int saved_errno = errno;
    char line[LINE_BYTES];
    size_t pos = 0;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *name = (unsigned)level <= RN_ERROR ? level_names[level] : "error";
    /* Fits: the prefix is about 50 bytes. */
    pos += (size_t)snprintf(
        line, sizeof(line),
        "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=", tm.tm_year + 1900, tm.tm_mon + 1,
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, name);

    /* room: what is left before the '\n' (and the NUL the formatters write). */
    bool cut;
    pos += quote_into(line + pos, sizeof(line) - 1 - pos, msg ? msg : "", true, &cut);

    if (!cut && fields_fmt && fields_fmt[0]) {
        size_t start = pos;
        line[pos++] = ' ';
        size_t room = sizeof(line) - 1 - pos; /* vsnprintf's NUL takes the '\n' slot */
        va_list ap;
        va_start(ap, fields_fmt);
        int n = vsnprintf(line + pos, room + 1, fields_fmt, ap);
        va_end(ap);
        if (n < 0) {
            pos = start; /* an encoding error: drop the fields, keep the event */
        } else if ((size_t)n > room) {
            pos += room;
            cut = true;
        } else {
            pos += (size_t)n;
            if (n == 0)
                pos = start;
        }
        for (size_t i = start; i < pos; i++)
            if (line[i] == '\n' || line[i] == '\r')
                line[i] = ' ';
        if (cut)
            cut_line(line, &pos);
    }
    line[pos++] = '\n';
    write_all(line, pos);
    errno = saved_errno;
}
