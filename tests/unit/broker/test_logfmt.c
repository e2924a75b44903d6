/*
 * test_logfmt.c — runneld's log lines: shape, quoting, levels, truncation, and
 * whole lines under concurrent writers.
 *
 * stderr is redirected (dup2) to a file under a mkdtemp directory in /tmp and
 * read back; the directory is removed after each test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/logfmt.h"

static char tmpdir[64], logpath[PATH_MAX];
static int saved_stderr = -1;

static void setup(void)
{
    strcpy(tmpdir, "/tmp/runnel-logfmt-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(logpath, sizeof(logpath), "%s/stderr.log", tmpdir);
    rn_logfmt_set_level(RN_INFO);
}

static void teardown(void)
{
    unlink(logpath);
    rmdir(tmpdir);
}

TestSuite(logfmt, .init = setup, .fini = teardown, .timeout = 30);

/* Send stderr to a fresh file (O_APPEND, as a shell's 2>> would). */
static void capture_begin(void)
{
    int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    cr_assert_geq(fd, 0);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(saved_stderr, 0);
    cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

/* Restore stderr and return what was written (malloc'd, NUL-terminated). */
static char *capture_end(size_t *len_out)
{
    cr_assert_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    FILE *f = fopen(logpath, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = (size_t)len;
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#define PREFIX_RE                                                                                  \
    "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "                       \
    "level=(debug|info|warn|error) msg=\"([^\"\\\\]|\\\\.)*\""

static bool matches(const char *re_text, const char *s)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, re_text, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* ---- Line shape -------------------------------------------------------------- */

// A line is ts (RFC 3339 UTC, ms), level, quoted msg, then the fields, then '\n'.
Test(logfmt, line_shape)
{
    capture_begin();
    rn_logfmt(RN_INFO, "topic created", "topic=%s partitions=%d", "orders", 3);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    cr_assert(matches(PREFIX_RE " topic=orders partitions=3\n$", out), "%s", out);
    cr_assert(strstr(out, " level=info msg=\"topic created\" "), "%s", out);
    free(out);
}

// The timestamp is the current UTC time, to the millisecond.
Test(logfmt, timestamp_is_now_utc)
{
    /* time() may read a coarse clock that lags CLOCK_REALTIME: use the same clock. */
    struct timespec b, a;
    clock_gettime(CLOCK_REALTIME, &b);
    capture_begin();
    rn_logfmt(RN_WARN, "x", NULL);
    char *out = capture_end(NULL);
    clock_gettime(CLOCK_REALTIME, &a);
    time_t before = b.tv_sec, after = a.tv_sec;
    struct tm tm = {0};
    int ms = -1;
    cr_assert_eq(sscanf(out, "ts=%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                        &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                 7, "%s", out);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    cr_assert(t >= before && t <= after, "ts %lld not in [%lld, %lld]: %s", (long long)t,
              (long long)before, (long long)after, out);
    cr_assert(ms >= 0 && ms <= 999);
    cr_assert(strstr(out, " level=warn msg=\"x\"\n"), "no fields means no trailing blank: %s", out);
    free(out);
}

// Each level prints its name; an empty fields format adds nothing.
Test(logfmt, level_names)
{
    rn_logfmt_set_level(RN_DEBUG);
    capture_begin();
    rn_logfmt(RN_DEBUG, "d", NULL);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-zero-length"
    rn_logfmt(RN_INFO, "i", "");
#pragma GCC diagnostic pop
    rn_logfmt(RN_WARN, "w", "k=v");
    rn_logfmt(RN_ERROR, "e", "k=%d", 1);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 4, "%s", out);
    cr_assert(strstr(out, "level=debug msg=\"d\"\n"));
    cr_assert(strstr(out, "level=info msg=\"i\"\n"));
    cr_assert(strstr(out, "level=warn msg=\"w\" k=v\n"));
    cr_assert(strstr(out, "level=error msg=\"e\" k=1\n"));
    free(out);
}

// The message is escaped: quotes, backslashes and newlines stay on one line.
Test(logfmt, message_quoting)
{
    capture_begin();
    rn_logfmt(RN_ERROR, "bad \"thing\"\nsecond line \\ end\t\x01", NULL);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    cr_assert(strstr(out, "msg=\"bad \\\"thing\\\"\\nsecond line \\\\ end\\t\\u0001\"\n"), "%s",
              out);
    cr_assert(matches(PREFIX_RE "\n$", out), "%s", out);
    free(out);
}

// Values passed through rn_logfmt_quote come out quoted and on one line.
Test(logfmt, field_values_quoted)
{
    char q1[64], q2[64], q3[64];
    capture_begin();
    rn_logfmt(RN_INFO, "m", "a=%s b=%s c=%s", rn_logfmt_quote("two words", q1, sizeof(q1)),
              rn_logfmt_quote("say \"hi\"", q2, sizeof(q2)),
              rn_logfmt_quote("l1\nl2", q3, sizeof(q3)));
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    cr_assert(strstr(out, " a=\"two words\" b=\"say \\\"hi\\\"\" c=\"l1\\nl2\"\n"), "%s", out);
    free(out);
}

// A raw newline in caller-formatted fields cannot start a forged line.
Test(logfmt, raw_newline_in_fields_stays_one_line)
{
    capture_begin();
    rn_logfmt(RN_INFO, "m", "user=%s", "bob\nts=0 level=error msg=\"forged\"\r");
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    cr_assert(strstr(out, "user=bob ts=0 level=error msg=\"forged\" \n"), "%s", out);
    free(out);
}

/* ---- rn_logfmt_quote --------------------------------------------------------- */

// Plain tokens are copied; anything with blanks, quotes, '=', '\' or control
// characters, and the empty string, is quoted and escaped.
Test(logfmt, quote_rules)
{
    char b[64];
    cr_assert_str_eq(rn_logfmt_quote("orders-3", b, sizeof(b)), "orders-3");
    cr_assert_str_eq(rn_logfmt_quote("/a/b:c,d", b, sizeof(b)), "/a/b:c,d");
    cr_assert_str_eq(rn_logfmt_quote("caf\xc3\xa9", b, sizeof(b)), "caf\xc3\xa9");
    cr_assert_str_eq(rn_logfmt_quote("", b, sizeof(b)), "\"\"");
    cr_assert_str_eq(rn_logfmt_quote("a b", b, sizeof(b)), "\"a b\"");
    cr_assert_str_eq(rn_logfmt_quote("a=b", b, sizeof(b)), "\"a=b\"");
    cr_assert_str_eq(rn_logfmt_quote("a\"b", b, sizeof(b)), "\"a\\\"b\"");
    cr_assert_str_eq(rn_logfmt_quote("a\\b", b, sizeof(b)), "\"a\\\\b\"");
    cr_assert_str_eq(rn_logfmt_quote("a\nb\r", b, sizeof(b)), "\"a\\nb\\r\"");
    cr_assert_str_eq(rn_logfmt_quote("\x1b[0m\x7f", b, sizeof(b)), "\"\\u001b[0m\\u007f\"");
    /* Returns buf itself. */
    cr_assert_eq(rn_logfmt_quote("x", b, sizeof(b)), b);
}

// A value too long for the buffer is cut before a whole character, ends in
// "…" (inside the quotes when quoted), and is always NUL-terminated.
Test(logfmt, quote_truncates)
{
    char b[16];
    memset(b, 'Z', sizeof(b));
    rn_logfmt_quote("abcdefghijklmnopqrstuvwxyz", b, sizeof(b));
    cr_assert_str_eq(b, "abcdefghijkl\xe2\x80\xa6");
    rn_logfmt_quote("a b c d e f g h i j", b, sizeof(b));
    cr_assert_str_eq(b, "\"a b c d e \xe2\x80\xa6\"");
    cr_assert_eq(strlen(b), 15);
    /* An escape is never split: 5 × "\n" (2 bytes each) leaves room for 4. */
    char c[14];
    rn_logfmt_quote("\n\n\n\n\n\n", c, sizeof(c));
    cr_assert_str_eq(c, "\"\\n\\n\\n\\n\xe2\x80\xa6\"");
    /* A UTF-8 character is never split. */
    char d[9];
    rn_logfmt_quote("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", d, sizeof(d));
    cr_assert_str_eq(d, "\xc3\xa9\xc3\xa9\xe2\x80\xa6");
    /* Room for the quotes and "…" only; exactly fitting: no ellipsis. */
    char e[6];
    cr_assert_str_eq(rn_logfmt_quote("\"a b\"", e, sizeof(e)), "\"\xe2\x80\xa6\"");
    cr_assert_str_eq(rn_logfmt_quote("abcde", e, sizeof(e)), "abcde");
    char f[2];
    rn_logfmt_quote("a b", f, sizeof(f));
    cr_assert_eq(f[0], '\0');
}

/* ---- Levels ------------------------------------------------------------------ */

// Lines below the minimum level are dropped.
Test(logfmt, level_filter)
{
    rn_logfmt_set_level(RN_WARN);
    capture_begin();
    rn_logfmt(RN_DEBUG, "no-debug", NULL);
    rn_logfmt(RN_INFO, "no-info", NULL);
    rn_logfmt(RN_WARN, "yes-warn", NULL);
    rn_logfmt(RN_ERROR, "yes-error", NULL);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 2, "%s", out);
    cr_assert_null(strstr(out, "no-"), "%s", out);
    free(out);
}

// The default level is info: debug lines are dropped.
Test(logfmt, default_level_is_info)
{
    unsetenv("RUNNEL_LOG_LEVEL");
    rn_logfmt_set_level(RN_ERROR);
    rn_logfmt_init();
    capture_begin();
    rn_logfmt(RN_DEBUG, "hidden", NULL);
    rn_logfmt(RN_INFO, "shown", NULL);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    cr_assert(strstr(out, "msg=\"shown\""), "%s", out);
    free(out);
}

// RUNNEL_LOG_LEVEL sets the level at init; a bad value warns and keeps info.
Test(logfmt, level_from_env)
{
    setenv("RUNNEL_LOG_LEVEL", "ERROR", 1);
    rn_logfmt_init();
    capture_begin();
    rn_logfmt(RN_WARN, "hidden", NULL);
    rn_logfmt(RN_ERROR, "shown", NULL);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    free(out);

    setenv("RUNNEL_LOG_LEVEL", "debug", 1);
    rn_logfmt_init();
    capture_begin();
    rn_logfmt(RN_DEBUG, "shown", NULL);
    out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    free(out);

    setenv("RUNNEL_LOG_LEVEL", "loud please", 1);
    capture_begin();
    rn_logfmt_init();
    rn_logfmt(RN_DEBUG, "hidden", NULL);
    rn_logfmt(RN_INFO, "shown", NULL);
    out = capture_end(NULL);
    cr_assert_eq(count_lines(out), 2, "%s", out);
    cr_assert(strstr(out, "level=warn") && strstr(out, "value=\"loud please\""), "%s", out);
    unsetenv("RUNNEL_LOG_LEVEL");
    free(out);
}

/* ---- Limits ------------------------------------------------------------------ */

// A line longer than 4 KiB is cut to 4 KiB, ends in "…\n", and is one line.
Test(logfmt, long_fields_truncated)
{
    char *big = malloc(10000);
    cr_assert_not_null(big);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    capture_begin();
    rn_logfmt(RN_INFO, "big", "v=%s", big);
    rn_logfmt(RN_INFO, "after", NULL);
    size_t len;
    char *out = capture_end(&len);
    cr_assert_eq(count_lines(out), 2, "%s", out);
    char *nl = strchr(out, '\n');
    size_t first = (size_t)(nl - out) + 1;
    cr_assert_leq(first, 4096);
    cr_assert_geq(first, 4000, "cut far too early: %zu", first);
    cr_assert(memcmp(nl - 3, "\xe2\x80\xa6", 3) == 0, "no ellipsis before the newline");
    cr_assert(strstr(nl + 1, "msg=\"after\""));
    free(out);
    free(big);
}

// A cut never splits a UTF-8 character in the fields.
Test(logfmt, truncation_keeps_utf8_whole)
{
    /* 3-byte characters from every starting phase, so one of them straddles the cut. */
    for (int phase = 0; phase < 3; phase++) {
        char *big = malloc(9000);
        cr_assert_not_null(big);
        size_t n = 0;
        for (int i = 0; i < phase; i++)
            big[n++] = 'p';
        while (n + 3 < 9000) {
            memcpy(big + n, "\xe2\x82\xac", 3); /* € */
            n += 3;
        }
        big[n] = '\0';
        capture_begin();
        rn_logfmt(RN_INFO, "m", "v=%s", big);
        size_t len;
        char *out = capture_end(&len);
        cr_assert_leq(len, 4096);
        /* Before the final "…\n" the text must end with a whole €. */
        cr_assert(len > 6 && memcmp(out + len - 4, "\xe2\x80\xa6\n", 4) == 0);
        cr_assert(memcmp(out + len - 7, "\xe2\x82\xac", 3) == 0, "phase %d: split character",
                  phase);
        free(out);
        free(big);
    }
}

// A message over 4 KiB is cut inside its quotes, so the line still parses.
Test(logfmt, long_message_truncated_inside_quotes)
{
    char *big = malloc(6000);
    cr_assert_not_null(big);
    for (int i = 0; i < 5999; i++)
        big[i] = i % 10 == 9 ? '"' : 'm';
    big[5999] = '\0';
    capture_begin();
    rn_logfmt(RN_INFO, big, "dropped=1");
    size_t len;
    char *out = capture_end(&len);
    cr_assert_leq(len, 4096);
    cr_assert_eq(count_lines(out), 1);
    cr_assert(memcmp(out + len - 5, "\xe2\x80\xa6\"\n", 5) == 0, "%s", out + len - 20);
    cr_assert(matches(PREFIX_RE "\n$", out), "the cut line does not parse");
    cr_assert_null(strstr(out, "dropped=1"));
    free(out);
    free(big);
}

// Logging leaves errno as it was.
Test(logfmt, errno_preserved)
{
    capture_begin();
    errno = ENOSPC;
    rn_logfmt(RN_ERROR, "disk full", "dir=%s", "/x");
    int e = errno;
    char *out = capture_end(NULL);
    cr_assert_eq(e, ENOSPC);
    free(out);
}

/* ---- Threads ------------------------------------------------------------------ */

#define N_THREADS 4
#define N_LINES   300

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[1500];
    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < N_LINES; i++)
        rn_logfmt(RN_INFO, "concurrent", "thread=%d seq=%d pad=%s end=1", id, i, pad);
    return NULL;
}

// Lines from several threads never interleave: each is whole and well formed.
Test(logfmt, concurrent_lines_stay_whole)
{
    capture_begin();
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    char *out = capture_end(NULL);
    cr_assert_eq(count_lines(out), N_THREADS * N_LINES);

    regex_t re;
    cr_assert_eq(regcomp(&re, PREFIX_RE " thread=[0-9] seq=[0-9]+ pad=[a-d]{1499} end=1$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    int seen[N_THREADS] = {0};
    char *save, *line = strtok_r(out, "\n", &save);
    for (; line; line = strtok_r(NULL, "\n", &save)) {
        cr_assert_eq(regexec(&re, line, 0, NULL, 0), 0, "mangled line: %.200s", line);
        int id, seq;
        cr_assert_eq(sscanf(strstr(line, "thread="), "thread=%d seq=%d", &id, &seq), 2);
        cr_assert(id >= 0 && id < N_THREADS);
        cr_assert_eq(seq, seen[id], "thread %d: line %d missing or out of order", id, seen[id]);
        const char *pad = strstr(line, "pad=") + 4;
        for (int k = 0; k < 1499; k++)
            cr_assert_eq(pad[k], 'a' + id, "thread %d: foreign byte in its pad", id);
        seen[id]++;
    }
    regfree(&re);
    for (int i = 0; i < N_THREADS; i++)
        cr_assert_eq(seen[i], N_LINES);
    free(out);
}
