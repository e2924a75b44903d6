/*
 * crash.c — the crash journal and the faults switched on from the
 * environment (see crash.h; test facilities, never on by default).
 *
 * Every hook runs only when rn_crash_active, which sys.c and io.c test
 * before calling: a broker without RUNNEL_CRASH_JOURNAL / RUNNEL_FAULT pays
 * one predictable branch per call. With them, each hook costs an fstat or a
 * stat and one write(2) of a line to the journal, opened O_APPEND so that
 * the brokers of a test can share it and a line is never torn between
 * writers. Lines are written before the call they describe (W, R, U) or
 * after its completion (S): whatever moment kill -9 picks, the journal errs
 * on the side of "not durable", which is what a power loss may do.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/crash.h"

bool rn_crash_active;

static int journal_fd = -1;
static char side_dir[PATH_MAX];
static uint64_t next_id; /* atomic */
static pid_t self_pid;

enum { FAULT_NONE, FAULT_FDATASYNC, FAULT_PWRITE };
static struct {
    int call;
    int err;
    char path[256];      /* substring of the file's path; "" = any */
    char when[PATH_MAX]; /* the fault is on while this file exists; "" = always */
    long after;
    long seen; /* atomic: matching calls so far while on */
} fault;

static void jline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void jline(const char *fmt, ...)
{
    char buf[3 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    /* One write: O_APPEND keeps the lines of several processes whole. A
     * failure cannot be reported anywhere useful; the test sees a short
     * journal and fails its checks rather than pass on a wrong model. */
    ssize_t w = write(journal_fd, buf, (size_t)n);
    (void)w;
}

static ino_t ino_of_fd(int fd, bool *reg)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return 0;
    if (reg)
        *reg = S_ISREG(st.st_mode);
    return st.st_ino;
}

static ino_t dir_ino_of(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    struct stat st;
    return stat(dirname(tmp), &st) < 0 ? 0 : st.st_ino;
}

static const struct {
    const char *name;
    int err;
} errnames[] = {{"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}};

static int parse_fault(const char *spec, char *err, size_t errlen)
{
    char buf[2 * PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    char *call = strtok_r(buf, ":", &save), *en = strtok_r(NULL, ":", &save);
    if (!call || !en)
        goto bad;
    if (strcmp(call, "fdatasync") == 0)
        fault.call = FAULT_FDATASYNC;
    else if (strcmp(call, "pwrite") == 0)
        fault.call = FAULT_PWRITE;
    else
        goto bad;
    for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
        if (strcmp(en, errnames[i].name) == 0)
            fault.err = errnames[i].err;
    if (!fault.err)
        goto bad;
    for (char *kv; (kv = strtok_r(NULL, ":", &save));) {
        if (strncmp(kv, "path=", 5) == 0)
            snprintf(fault.path, sizeof(fault.path), "%s", kv + 5);
        else if (strncmp(kv, "when=", 5) == 0)
            snprintf(fault.when, sizeof(fault.when), "%s", kv + 5);
        else if (strncmp(kv, "after=", 6) == 0)
            fault.after = atol(kv + 6);
        else
            goto bad;
    }
    return 0;
bad:
    fault.call = FAULT_NONE;
    snprintf(err, errlen,
             "RUNNEL_FAULT=%s: want CALL:ERRNO[:path=SUBSTR][:when=FILE][:after=N] with CALL "
             "fdatasync or pwrite, ERRNO EIO, ENOSPC, EDQUOT or EROFS",
             spec);
    return -EINVAL;
}

int rn_crash_init_from_env(char *what, size_t whatlen, char *err, size_t errlen)
{
    const char *jp = getenv("RUNNEL_CRASH_JOURNAL");
    const char *fs = getenv("RUNNEL_FAULT");
    what[0] = 0;
    if (fs && *fs) {
        int rc = parse_fault(fs, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (jp && *jp) {
        journal_fd = open(jp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (journal_fd < 0) {
            int rc = -errno;
            snprintf(err, errlen, "RUNNEL_CRASH_JOURNAL=%s: %s", jp, strerror(errno));
            return rc;
        }
        snprintf(side_dir, sizeof(side_dir), "%s.d", jp);
        if (mkdir(side_dir, 0755) < 0 && errno != EEXIST) {
            int rc = -errno;
            snprintf(err, errlen, "crash journal: mkdir %s: %s", side_dir, strerror(errno));
            close(journal_fd);
            journal_fd = -1;
            return rc;
        }
        self_pid = getpid();
    }
    rn_crash_active = journal_fd >= 0 || fault.call != FAULT_NONE;
    snprintf(what, whatlen, "%s%s%s%s", journal_fd >= 0 ? "crash journal " : "",
             journal_fd >= 0 ? jp : "", fault.call ? (journal_fd >= 0 ? "; fault " : "fault ") : "",
             fault.call ? fs : "");
    return 0;
}

/* Whether this call on fd fails now (see RUNNEL_FAULT). */
static int fault_for(int call, int fd)
{
    if (fault.call != call)
        return 0;
    if (fault.when[0] && access(fault.when, F_OK) != 0)
        return 0;
    if (fault.path[0]) {
        char link[64], path[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof(path) - 1);
        if (n < 0)
            return 0;
        path[n] = 0;
        if (!strstr(path, fault.path))
            return 0;
    }
    if (__atomic_add_fetch(&fault.seen, 1, __ATOMIC_RELAXED) <= fault.after)
        return 0;
    return -fault.err;
}

void rn_crash_opened(int fd, const char *path, int flags, bool existed)
{
    if (journal_fd < 0 || fd < 0 || (flags & O_ACCMODE) == O_RDONLY)
        return;
    bool reg = false;
    ino_t ino = ino_of_fd(fd, &reg);
    if (!ino || !reg)
        return;
    jline("O %lu %lu %d %s", (unsigned long)ino, (unsigned long)dir_ino_of(path),
          !existed || (flags & O_TRUNC) ? 1 : 0, path);
}

int rn_crash_write(int fd, off_t pos, size_t len)
{
    int f = fault_for(FAULT_PWRITE, fd);
    if (f < 0)
        return f;
    if (journal_fd >= 0 && len > 0) {
        ino_t ino = ino_of_fd(fd, NULL);
        if (ino)
            jline("W %lu %lld %lld", (unsigned long)ino, (long long)pos,
                  (long long)pos + (long long)len);
    }
    return 0;
}

void rn_crash_store(const char *path, size_t lo, size_t hi)
{
    struct stat st;
    if (journal_fd < 0 || hi <= lo || stat(path, &st) < 0)
        return;
    jline("W %lu %zu %zu", (unsigned long)st.st_ino, lo, hi);
}

void rn_crash_truncated(int fd, off_t len)
{
    if (journal_fd < 0)
        return;
    ino_t ino = ino_of_fd(fd, NULL);
    if (ino)
        jline("T %lu %lld", (unsigned long)ino, (long long)len);
}

int rn_crash_sync_begin(int fd, bool sfs, uint64_t *id)
{
    *id = 0;
    int f = sfs ? 0 : fault_for(FAULT_FDATASYNC, fd);
    if (f < 0)
        return f;
    if (journal_fd < 0)
        return 0;
    ino_t ino = sfs ? 0 : ino_of_fd(fd, NULL);
    if (!sfs && !ino)
        return 0;
    *id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    jline("B %d.%llu %lu", (int)self_pid, (unsigned long long)*id, (unsigned long)ino);
    return 0;
}

void rn_crash_synced(uint64_t id, int rc)
{
    if (journal_fd >= 0 && id)
        jline("S %d.%llu %d", (int)self_pid, (unsigned long long)id, rc);
}

void rn_crash_rename(const char *from, const char *to)
{
    if (journal_fd < 0)
        return;
    char side[PATH_MAX + 64] = "-";
    struct stat st;
    if (lstat(to, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(side, sizeof(side), "%s/%d.%llu", side_dir, (int)self_pid,
                 (unsigned long long)__atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED));
        if (link(to, side) < 0)
            snprintf(side, sizeof(side), "!"); /* replaced, not kept: cannot be undone */
    }
    jline("R %s %lu %lu %s\t%s", side, (unsigned long)dir_ino_of(from),
          (unsigned long)dir_ino_of(to), from, to);
}

void rn_crash_unlink(const char *path)
{
    struct stat st;
    if (journal_fd < 0 || lstat(path, &st) < 0)
        return;
    jline("U %lu", (unsigned long)st.st_ino);
}
