/*
 * sys.c — the swappable system-call table and fault injector (see sys.h).
 *
 * The real entries translate libc's "-1 and errno" into "-errno" so storage code
 * has one error convention. The injector is asked first so a test can fail the
 * Nth call of any kind (SQLite faultsim style) and check that every path returns
 * a clean error and leaves a log that verifies.
 *
 * Deferred durability (rn_sys_defer_*, see sys.h): an atomic flag read by the
 * lazy syncs, and a mutex-guarded list of actions for the end of the window.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/crash.h"
#include "storage/sys.h"

static int real_open(const char *path, int flags, mode_t mode)
{
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

static int real_close(int fd)
{
    /* Linux closes the fd even when close() reports an error; never retry. */
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t real_pwrite(int fd, const void *buf, size_t len, off_t pos)
{
    ssize_t n = pwrite(fd, buf, len, pos);
    return n < 0 ? -errno : n;
}

static ssize_t real_pread(int fd, void *buf, size_t len, off_t pos)
{
    ssize_t n = pread(fd, buf, len, pos);
    return n < 0 ? -errno : n;
}

static int real_fdatasync(int fd)
{
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int real_syncfs(int fd)
{
    return syncfs(fd) < 0 ? -errno : 0;
}

static int real_ftruncate(int fd, off_t len)
{
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int real_fallocate(int fd, int mode, off_t pos, off_t len)
{
    return fallocate(fd, mode, pos, len) < 0 ? -errno : 0;
}

static int real_rename(const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int real_unlink(const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int real_munmap(void *addr, size_t len)
{
    return munmap(addr, len) < 0 ? -errno : 0;
}

static int real_fstat(int fd, struct stat *st)
{
    return fstat(fd, st) < 0 ? -errno : 0;
}

static int real_mkdir(const char *path, mode_t mode)
{
    return mkdir(path, mode) < 0 ? -errno : 0;
}

static off_t real_lseek(int fd, off_t pos, int whence)
{
    off_t r = lseek(fd, pos, whence);
    return r < 0 ? -errno : r;
}

/* One initializer for both tables: C wants a constant expression for a static
 * object, so rn_sys cannot be initialised from real_sys itself. */
#define RN_SYS_REAL                                                                                \
    {                                                                                              \
        .open = real_open, .close = real_close, .pwrite = real_pwrite, .pread = real_pread,        \
        .fdatasync = real_fdatasync, .ftruncate = real_ftruncate, .fallocate = real_fallocate,     \
        .rename = real_rename, .unlink = real_unlink, .mmap = mmap, .munmap = real_munmap,         \
        .fstat = real_fstat, .mkdir = real_mkdir, .lseek = real_lseek, .syncfs = real_syncfs,      \
    }

static const struct rn_sys real_sys = RN_SYS_REAL;

struct rn_sys rn_sys = RN_SYS_REAL;

static rn_sys_inject_fn injector;
static void *injector_arg;

static const char *const names[RN_SYS__COUNT] = {
    [RN_SYS_OPEN] = "open",           [RN_SYS_CLOSE] = "close",
    [RN_SYS_PWRITE] = "pwrite",       [RN_SYS_PREAD] = "pread",
    [RN_SYS_FDATASYNC] = "fdatasync", [RN_SYS_FTRUNCATE] = "ftruncate",
    [RN_SYS_FALLOCATE] = "fallocate", [RN_SYS_RENAME] = "rename",
    [RN_SYS_UNLINK] = "unlink",       [RN_SYS_MMAP] = "mmap",
    [RN_SYS_MUNMAP] = "munmap",       [RN_SYS_FSTAT] = "fstat",
    [RN_SYS_MKDIR] = "mkdir",         [RN_SYS_LSEEK] = "lseek",
    [RN_SYS_SYNCFS] = "syncfs",
};

const char *rn_sys_name(enum rn_sys_call call)
{
    return call < RN_SYS__COUNT ? names[call] : "?";
}

void rn_sys_reset(void)
{
    rn_sys = real_sys;
    injector = NULL;
    injector_arg = NULL;
}

void rn_sys_set_injector(rn_sys_inject_fn fn, void *arg)
{
    injector = fn;
    injector_arg = arg;
}

int rn_sys_inject(enum rn_sys_call call)
{
    return injector ? injector(call, injector_arg) : 0;
}

int rn_sys_open(const char *path, int flags, mode_t mode)
{
    int rc = rn_sys_inject(RN_SYS_OPEN);
    if (rc < 0)
        return rc;
    if (__builtin_expect(rn_crash_active, 0)) {
        bool existed = !(flags & O_CREAT) || access(path, F_OK) == 0;
        int fd = rn_sys.open(path, flags, mode);
        rn_crash_opened(fd, path, flags, existed);
        return fd;
    }
    return rn_sys.open(path, flags, mode);
}

int rn_sys_close(int fd)
{
    int rc = rn_sys_inject(RN_SYS_CLOSE);
    if (rc < 0) {
        /* A failed close still releases the descriptor on Linux: do the same so
         * injected faults do not leak descriptors the real kernel would free. */
        rn_sys.close(fd);
        return rc;
    }
    return rn_sys.close(fd);
}

int rn_sys_pwrite_all(int fd, const void *buf, size_t len, off_t pos)
{
    const char *p = buf;
    while (len > 0) {
        int rc = rn_sys_inject(RN_SYS_PWRITE);
        if (rc == 0 && __builtin_expect(rn_crash_active, 0))
            rc = rn_crash_write(fd, pos, len);
        if (rc < 0)
            return rc;
        ssize_t n = rn_sys.pwrite(fd, p, len, pos);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        p += n;
        pos += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t rn_sys_pread_all(int fd, void *buf, size_t len, off_t pos)
{
    char *p = buf;
    size_t done = 0;
    while (done < len) {
        int rc = rn_sys_inject(RN_SYS_PREAD);
        if (rc < 0)
            return rc;
        ssize_t n = rn_sys.pread(fd, p + done, len - done, pos + (off_t)done);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return n;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int rn_sys_fdatasync(int fd)
{
    int rc = rn_sys_inject(RN_SYS_FDATASYNC);
    if (rc < 0)
        return rc;
    if (__builtin_expect(rn_crash_active, 0)) {
        uint64_t id;
        rc = rn_crash_sync_begin(fd, false, &id);
        if (rc < 0)
            return rc;
        rc = rn_sys.fdatasync(fd);
        rn_crash_synced(id, rc);
        return rc;
    }
    return rn_sys.fdatasync(fd);
}

int rn_sys_ftruncate(int fd, off_t len)
{
    int rc = rn_sys_inject(RN_SYS_FTRUNCATE);
    if (rc < 0)
        return rc;
    rc = rn_sys.ftruncate(fd, len);
    if (rc == 0 && __builtin_expect(rn_crash_active, 0))
        rn_crash_truncated(fd, len);
    return rc;
}

int rn_sys_fallocate(int fd, int mode, off_t pos, off_t len)
{
    int rc = rn_sys_inject(RN_SYS_FALLOCATE);
    return rc < 0 ? rc : rn_sys.fallocate(fd, mode, pos, len);
}

int rn_sys_rename(const char *from, const char *to)
{
    int rc = rn_sys_inject(RN_SYS_RENAME);
    if (rc < 0)
        return rc;
    if (__builtin_expect(rn_crash_active, 0))
        rn_crash_rename(from, to);
    return rn_sys.rename(from, to);
}

int rn_sys_unlink(const char *path)
{
    int rc = rn_sys_inject(RN_SYS_UNLINK);
    if (rc < 0)
        return rc;
    if (__builtin_expect(rn_crash_active, 0))
        rn_crash_unlink(path);
    return rn_sys.unlink(path);
}

int rn_sys_mmap(void **out, size_t len, int prot, int flags, int fd, off_t off)
{
    int rc = rn_sys_inject(RN_SYS_MMAP);
    if (rc < 0)
        return rc;
    void *p = rn_sys.mmap(NULL, len, prot, flags, fd, off);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

int rn_sys_munmap(void *addr, size_t len)
{
    int rc = rn_sys_inject(RN_SYS_MUNMAP);
    if (rc < 0) {
        /* The mapping must go regardless, or a failed test leaks address space. */
        rn_sys.munmap(addr, len);
        return rc;
    }
    return rn_sys.munmap(addr, len);
}

int rn_sys_fstat(int fd, struct stat *st)
{
    int rc = rn_sys_inject(RN_SYS_FSTAT);
    return rc < 0 ? rc : rn_sys.fstat(fd, st);
}

int rn_sys_mkdir(const char *path, mode_t mode)
{
    int rc = rn_sys_inject(RN_SYS_MKDIR);
    if (rc < 0)
        return rc;
    rc = rn_sys.mkdir(path, mode);
    return rc == -EEXIST ? 0 : rc;
}

off_t rn_sys_lseek(int fd, off_t pos, int whence)
{
    int rc = rn_sys_inject(RN_SYS_LSEEK);
    return rc < 0 ? rc : rn_sys.lseek(fd, pos, whence);
}

int rn_sys_fsync_dir(const char *dir)
{
    int fd = rn_sys_open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    int rc = rn_sys_fdatasync(fd);
    int rc2 = rn_sys_close(fd);
    return rc < 0 ? rc : rc2;
}

/* ---- Deferred durability -------------------------------------------------- */

typedef struct deferred {
    int (*fn)(void *arg, int sync_rc);
    void *arg;
} deferred;

static bool defer_on;
static pthread_mutex_t defer_mu = PTHREAD_MUTEX_INITIALIZER;
static deferred *defer_v;
static size_t defer_n, defer_cap;

void rn_sys_defer_begin(void)
{
    __atomic_store_n(&defer_on, true, __ATOMIC_RELEASE);
}

bool rn_sys_deferring(void)
{
    return __atomic_load_n(&defer_on, __ATOMIC_ACQUIRE);
}

int rn_sys_defer_after(int (*fn)(void *arg, int sync_rc), void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&defer_mu);
    if (!rn_sys_deferring()) {
        rc = -EINVAL;
    } else if (defer_n == defer_cap) {
        size_t cap = defer_cap ? defer_cap * 2 : 8;
        deferred *v = realloc(defer_v, cap * sizeof(*v));
        if (!v)
            rc = -ENOMEM;
        else {
            defer_v = v;
            defer_cap = cap;
        }
    }
    if (rc == 0)
        defer_v[defer_n++] = (deferred){fn, arg};
    pthread_mutex_unlock(&defer_mu);
    return rc;
}

static int syncfs_dir(const char *dir)
{
    int fd = rn_sys_open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    int rc = rn_sys_inject(RN_SYS_SYNCFS);
    uint64_t id = 0;
    if (rc == 0 && __builtin_expect(rn_crash_active, 0))
        rc = rn_crash_sync_begin(fd, true, &id);
    if (rc == 0) {
        rc = rn_sys.syncfs(fd);
        if (id)
            rn_crash_synced(id, rc);
    }
    int rc2 = rn_sys_close(fd);
    return rc < 0 ? rc : rc2;
}

int rn_sys_defer_end(const char *dir)
{
    if (!rn_sys_deferring())
        return 0;
    /* Closed first: the actions' own writes are covered by the second sync. */
    pthread_mutex_lock(&defer_mu);
    __atomic_store_n(&defer_on, false, __ATOMIC_RELEASE);
    deferred *v = defer_v;
    size_t n = defer_n;
    defer_v = NULL;
    defer_n = defer_cap = 0;
    pthread_mutex_unlock(&defer_mu);

    int rc = syncfs_dir(dir);
    for (size_t i = 0; i < n; i++) {
        /* After a failed sync an action still runs, to release what it
         * holds, but is told not to write. */
        int r = v[i].fn(v[i].arg, rc);
        if (rc == 0 && r < 0)
            rc = r;
    }
    if (rc == 0 && n > 0)
        rc = syncfs_dir(dir);
    free(v);
    return rc;
}

int rn_sys_fdatasync_lazy(int fd)
{
    return rn_sys_deferring() ? 0 : rn_sys_fdatasync(fd);
}

int rn_sys_fsync_dir_lazy(const char *dir)
{
    return rn_sys_deferring() ? 0 : rn_sys_fsync_dir(dir);
}

int rn_sys_replace_file(const char *tmp, const char *path, const char *dir, const void *buf,
                        size_t len, unsigned flags)
{
    bool sync = !(flags & RN_REPLACE_NO_SYNC), lazy = flags & RN_REPLACE_LAZY;
    bool reuse = flags & RN_REPLACE_REUSE_TMP;
    /* O_RDWR, not O_WRONLY: the crash tests snapshot a file through the
     * descriptor its fdatasync is given. */
    int fd = rn_sys_open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | (reuse ? 0 : O_TRUNC), 0644);
    if (fd < 0) {
        rn_sys_unlink(tmp); /* a set-aside inode it could not reuse, or nothing */
        return fd;
    }
    int rc = len ? rn_sys_pwrite_all(fd, buf, len, 0) : 0;
    if (rc == 0 && reuse)
        rc = rn_sys_ftruncate(fd, (off_t)len);
    if (rc == 0 && sync)
        rc = lazy ? rn_sys_fdatasync_lazy(fd) : rn_sys_fdatasync(fd);
    int rc_close = rn_sys_close(fd);
    if (rc == 0)
        rc = rc_close;
    if (rc == 0)
        rc = rn_sys_rename(tmp, path);
    if (rc < 0) {
        rn_sys_unlink(tmp);
        return rc;
    }
    if (!sync || (flags & RN_REPLACE_NO_DIR_SYNC))
        return 0;
    return lazy ? rn_sys_fsync_dir_lazy(dir) : rn_sys_fsync_dir(dir);
}
