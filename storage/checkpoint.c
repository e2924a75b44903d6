/*
 * checkpoint.c — checksummed small files (see checkpoint.h).
 *
 * Bytes on disk (little-endian):
 *   0  magic[8]
 *   8  u32 payload length
 *   12 payload
 *   12+len  u64 XXH3-64 over bytes 0 .. 12+len
 *
 * Deferred writes (inside a rn_sys_defer window) wait in a list, oldest
 * first, under a mutex: closing thousands of partitions queues one marker
 * each, and rn_sys_defer_end runs flush_queue once to write them all after
 * the data is synced. The list is searched only by reads and removals inside
 * a window (start-up: the list is empty then), so writes do not search it;
 * when one file is queued twice the later entry wins, as it would on disk.
 *
 * Removing renames the file to <name>.old rather than unlinking it, and the
 * next write takes that inode back (rename to <name>.tmp, overwrite, cut to
 * length, rename into place): a marker removed at every start and written
 * at every stop then never frees or allocates an inode or a block. Freeing
 * is a synchronous discard on a file system mounted with -o discard, and
 * ext4 searches its bitmaps for an inode not recently deleted at each create:
 * together a quarter of a 10,000-partition start-up before this.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "protocol/errors.h"
#include "storage/checkpoint.h"
#include "storage/sys.h"

/* One write waiting for the end of a deferred-durability window. */
typedef struct queued {
    struct queued *next;
    char *dir, *path, *tmp; /* owned */
    size_t len;             /* bytes in buf */
    uint8_t buf[12 + RN_CHECKPOINT_MAX + 8];
} queued;

static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static queued *queue_head, *queue_tail;
static bool queue_registered; /* flush_queue is queued with rn_sys_defer_after */

static void queued_free(queued *q)
{
    free(q->dir);
    free(q->path);
    free(q->tmp);
    free(q);
}

/* path + ".old": where rn_checkpoint_remove sets the file aside. */
static int old_path(char *buf, size_t cap, const char *path)
{
    return snprintf(buf, cap, "%s.old", path) >= (int)cap ? -ENAMETOOLONG : 0;
}

/* tmp → (fdatasync) → rename → (fsync dir): the syncs only outside a window.
 * tmp is the inode set aside by the last remove when there is one. */
static int write_file(const char *dir, const char *path, const char *tmp, const uint8_t *buf,
                      size_t len, bool sync)
{
    char old[PATH_MAX];
    if (old_path(old, sizeof(old), path) == 0)
        (void)rn_sys_rename(old, tmp); /* -ENOENT (none) or a failure: a new file then */
    /* Overwritten, then cut to length: no O_TRUNC, which would free the block. */
    return rn_sys_replace_file(tmp, path, dir, buf, len,
                               RN_REPLACE_REUSE_TMP | (sync ? 0 : RN_REPLACE_NO_SYNC));
}

/* rn_sys_defer_end's action: the data is synced (sync_rc == 0), so the
 * queued files may now be written; its second syncfs makes them durable. */
static int flush_queue(void *arg, int sync_rc)
{
    (void)arg;
    pthread_mutex_lock(&queue_mu);
    queued *q = queue_head;
    queue_head = queue_tail = NULL;
    queue_registered = false;
    pthread_mutex_unlock(&queue_mu);
    int rc = 0;
    while (q) {
        queued *next = q->next;
        if (sync_rc == 0 && rc == 0)
            rc = write_file(q->dir, q->path, q->tmp, q->buf, q->len, false);
        queued_free(q);
        q = next;
    }
    return rc;
}

static int enqueue(const char *dir, const char *path, const char *tmp, const uint8_t *buf,
                   size_t len)
{
    queued *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->dir = strdup(dir);
    q->path = strdup(path);
    q->tmp = strdup(tmp);
    if (!q->dir || !q->path || !q->tmp) {
        queued_free(q);
        return -ENOMEM;
    }
    memcpy(q->buf, buf, len);
    q->len = len;
    int rc = 0;
    pthread_mutex_lock(&queue_mu);
    if (!queue_registered) {
        rc = rn_sys_defer_after(flush_queue, NULL);
        queue_registered = rc == 0;
    }
    if (rc == 0) {
        if (queue_tail)
            queue_tail->next = q;
        else
            queue_head = q;
        queue_tail = q;
    }
    pthread_mutex_unlock(&queue_mu);
    if (rc < 0)
        queued_free(q);
    return rc;
}

int rn_checkpoint_write(const char *dir, const char *name, const char magic[8], const void *payload,
                        size_t len)
{
    if (len > RN_CHECKPOINT_MAX)
        return -EINVAL;
    uint8_t buf[12 + RN_CHECKPOINT_MAX + 8];
    memcpy(buf, magic, 8);
    uint32_t len_le = htole32((uint32_t)len);
    memcpy(buf + 8, &len_le, 4);
    memcpy(buf + 12, payload, len);
    uint64_t sum = htole64(XXH3_64bits(buf, 12 + len));
    memcpy(buf + 12 + len, &sum, 8);

    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if (rn_sys_deferring()) {
        int rc = enqueue(dir, path, tmp, buf, 12 + len + 8);
        if (rc != -EINVAL)
            return rc;
        /* The window closed meanwhile: write it now, synced. */
    }
    return write_file(dir, path, tmp, buf, 12 + len + 8, true);
}

/* The newest queued write of path, copied into buf; false when none. */
static bool queued_read(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    bool found = false;
    pthread_mutex_lock(&queue_mu);
    for (queued *q = queue_head; q; q = q->next) {
        if (strcmp(q->path, path) == 0 && q->len <= cap) {
            memcpy(buf, q->buf, q->len);
            *len = q->len;
            found = true;
        }
    }
    pthread_mutex_unlock(&queue_mu);
    return found;
}

/* Forget queued writes of path. */
static void queued_drop(const char *path)
{
    pthread_mutex_lock(&queue_mu);
    queued **pp = &queue_head;
    queue_tail = NULL;
    while (*pp) {
        queued *q = *pp;
        if (strcmp(q->path, path) == 0) {
            *pp = q->next;
            queued_free(q);
        } else {
            queue_tail = q;
            pp = &q->next;
        }
    }
    pthread_mutex_unlock(&queue_mu);
}

int rn_checkpoint_read(const char *dir, const char *name, const char magic[8], void *payload,
                       size_t len)
{
    if (len > RN_CHECKPOINT_MAX)
        return -EINVAL;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    uint8_t buf[12 + RN_CHECKPOINT_MAX + 8 + 1];
    ssize_t n;
    size_t qlen;
    if (queued_read(path, buf, sizeof(buf), &qlen)) {
        n = (ssize_t)qlen; /* written inside a window, not on disk yet */
    } else {
        int fd = rn_sys_open(path, O_RDONLY, 0);
        if (fd < 0)
            return fd;
        n = rn_sys_pread_all(fd, buf, sizeof(buf), 0);
        rn_sys_close(fd);
        if (n < 0)
            return (int)n;
    }
    if ((size_t)n != 12 + len + 8 || memcmp(buf, magic, 8) != 0)
        return -RN_E_CORRUPT_FILE;
    uint32_t len_le;
    memcpy(&len_le, buf + 8, 4);
    uint64_t sum_le;
    memcpy(&sum_le, buf + 12 + len, 8);
    if (le32toh(len_le) != len || le64toh(sum_le) != XXH3_64bits(buf, 12 + len))
        return -RN_E_CORRUPT_FILE;
    memcpy(payload, buf + 12, len);
    return 0;
}

int rn_checkpoint_remove(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    queued_drop(path);
    char old[PATH_MAX], tmp[PATH_MAX];
    int rc = old_path(old, sizeof(old), path);
    if (rc < 0 || snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    /* A write cut short by a crash may have left its tmp file: it goes too. */
    rc = rn_sys_unlink(tmp);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    rc = rn_sys_rename(path, old); /* set aside for the next write (see the top) */
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    return rn_sys_fsync_dir_lazy(dir);
}
