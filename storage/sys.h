/*
 * sys.h — every system call the storage makes, behind one table tests can swap.
 *
 * As SQLite's os_unix.c aSyscall[]: storage code never calls open(), pwrite(),
 * fdatasync() … directly, only rn_sys_*() below, which go through rn_sys (a
 * table of function pointers) after asking the fault injector. Asynchronous
 * io_uring writes and flushes ask the same injector before they are submitted
 * (storage/io.c), so "fail call N" counts sync and async calls alike.
 *
 * Thread-safety: the table and the injector are process-global and meant to be
 * swapped only by tests, before storage objects are used.
 */
#ifndef RN_SYS_H
#define RN_SYS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

enum rn_sys_call {
    RN_SYS_OPEN,
    RN_SYS_CLOSE,
    RN_SYS_PWRITE,
    RN_SYS_PREAD,
    RN_SYS_FDATASYNC,
    RN_SYS_FTRUNCATE,
    RN_SYS_FALLOCATE,
    RN_SYS_RENAME,
    RN_SYS_UNLINK,
    RN_SYS_MMAP,
    RN_SYS_MUNMAP,
    RN_SYS_FSTAT,
    RN_SYS_MKDIR,
    RN_SYS_LSEEK,
    RN_SYS_SYNCFS,
    RN_SYS__COUNT
};

/* Name of a call ("pwrite"), for messages and test output. */
const char *rn_sys_name(enum rn_sys_call call);

/* The table. Each entry has the libc signature but returns -errno instead of
 * setting errno (mmap returns MAP_FAILED and sets errno, as libc does). */
struct rn_sys {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t pos);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t pos);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*fallocate)(int fd, int mode, off_t pos, off_t len);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*munmap)(void *addr, size_t len);
    int (*fstat)(int fd, struct stat *st);
    int (*mkdir)(const char *path, mode_t mode);
    off_t (*lseek)(int fd, off_t pos, int whence);
    int (*syncfs)(int fd);
};

/* The live table; starts as the real system calls. Tests may replace entries
 * and must restore them (rn_sys_reset). */
extern struct rn_sys rn_sys;
void rn_sys_reset(void);

/* Fault injector: called before every call; a negative return (an -errno)
 * makes that call fail with it without running. NULL = no injection. */
typedef int (*rn_sys_inject_fn)(enum rn_sys_call call, void *arg);
void rn_sys_set_injector(rn_sys_inject_fn fn, void *arg);
/* Ask the injector about call: 0 = go ahead, negative = fail with that. */
int rn_sys_inject(enum rn_sys_call call);

/* The wrappers storage uses. All return 0 (or a count) or -errno. */
int rn_sys_open(const char *path, int flags, mode_t mode);
int rn_sys_close(int fd);
/* Writes all len bytes (loops over short writes) or fails. */
int rn_sys_pwrite_all(int fd, const void *buf, size_t len, off_t pos);
/* Reads up to len bytes (loops until len or EOF); returns bytes read. */
ssize_t rn_sys_pread_all(int fd, void *buf, size_t len, off_t pos);
int rn_sys_fdatasync(int fd);
int rn_sys_ftruncate(int fd, off_t len);
int rn_sys_fallocate(int fd, int mode, off_t pos, off_t len);
int rn_sys_rename(const char *from, const char *to);
int rn_sys_unlink(const char *path);
/* Returns 0 and the mapping in *out, or -errno. */
int rn_sys_mmap(void **out, size_t len, int prot, int flags, int fd, off_t off);
int rn_sys_munmap(void *addr, size_t len);
int rn_sys_fstat(int fd, struct stat *st);
/* mkdir that treats an existing directory as success. */
int rn_sys_mkdir(const char *path, mode_t mode);
/* lseek, for SEEK_DATA/SEEK_HOLE walks of sparse files. Returns the position or -errno. */
off_t rn_sys_lseek(int fd, off_t pos, int whence);
/* fsync a directory so a create/rename/unlink in it is durable. */
int rn_sys_fsync_dir(const char *dir);

/* Durable replace, the one copy of the rule every small file of runnel
 * follows (snapshots, checkpoints, leader epochs, partition.metadata, the
 * quorum state, a truncated segment's prefix): write buf to tmp, fdatasync
 * it, close, rename it over path, fsync dir. A reader sees the old file or
 * the new one, never a part. On a failure before the rename tmp is removed.
 * flags: */
enum {
    RN_REPLACE_LAZY = 1 << 0,        /* the _lazy syncs (deferred in a start-up window) */
    RN_REPLACE_NO_SYNC = 1 << 1,     /* no sync at all: the caller makes it durable */
    RN_REPLACE_NO_DIR_SYNC = 1 << 2, /* the caller fsyncs the directory */
    /* tmp may be an old inode set aside for reuse: overwritten and cut to
     * len instead of O_TRUNC, which would give its blocks back first. */
    RN_REPLACE_REUSE_TMP = 1 << 3,
};
int rn_sys_replace_file(const char *tmp, const char *path, const char *dir, const void *buf,
                        size_t len, unsigned flags);

/* ---- Deferred durability: one syncfs instead of thousands of fsyncs -------
 *
 * Opening or closing a partition log costs a few fdatasyncs (segment, both
 * indexes, clean-shutdown marker, directory): ~1 ms each on this class of
 * disk, so a broker with 10,000 partitions took minutes to stop and to
 * start. Between rn_sys_defer_begin and rn_sys_defer_end the *_lazy calls
 * below only note that durability is owed; rn_sys_defer_end then provides
 * all of it with one syncfs(2) of the data directory's file system, runs the
 * actions queued with rn_sys_defer_after (the clean-shutdown markers, which
 * must reach the disk only after the data they vouch for), and syncs again.
 *
 * Contract: inside the window nothing may depend on durability — no
 * acknowledgement, no open listener — since none of it is durable before
 * rn_sys_defer_end returns 0. Syncs that order one file's durability before
 * another's (a rolled segment's seal) use the plain calls, which always
 * sync. The window is opened and closed by one thread while the broker
 * serves nothing (start-up before listening, shutdown after the last
 * request); the lazy calls and queueing are thread-safe for reactors that
 * open or close their partitions inside it. syncfs syncs the whole file
 * system: other writers' dirty data on it is flushed too. */
void rn_sys_defer_begin(void);

/* Close the window: syncfs of dir's file system, then the queued actions in
 * order, then (if any ran) syncfs again. Returns 0, or the first error
 * (-errno of syncfs, or an action's); after an error of the first syncfs no
 * action runs, so no marker claims data that may not be on disk. Without an
 * open window: 0, nothing done. */
int rn_sys_defer_end(const char *dir);

/* Whether a window is open (thread-safe). */
bool rn_sys_deferring(void);

/* Queue fn(arg, sync_rc) to run in rn_sys_defer_end after the first syncfs;
 * fn makes no sync of its own (the second syncfs covers it). sync_rc < 0: the
 * sync failed, and fn must only release what arg holds, writing nothing.
 * Only inside a window. Errors: -EINVAL (no window), -ENOMEM. */
int rn_sys_defer_after(int (*fn)(void *arg, int sync_rc), void *arg);

/* fdatasync / fsync_dir, or nothing (durability owed to rn_sys_defer_end)
 * inside a window. Errors: those of the plain calls. */
int rn_sys_fdatasync_lazy(int fd);
int rn_sys_fsync_dir_lazy(const char *dir);

#endif
