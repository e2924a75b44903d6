/*
 * checkpoint.c — checksummed small files (see checkpoint.h).
 *
 * Bytes on disk (little-endian):
 *   0  magic[8]
 *   8  u32 payload length
 *   12 payload
 *   12+len  u64 XXH3-64 over bytes 0 .. 12+len
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "protocol/errors.h"
#include "storage/checkpoint.h"
#include "storage/sys.h"

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

    int fd = rn_sys_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    int rc = rn_sys_pwrite_all(fd, buf, 12 + len + 8, 0);
    if (rc == 0)
        rc = rn_sys_fdatasync(fd);
    int rc_close = rn_sys_close(fd);
    if (rc == 0)
        rc = rc_close;
    if (rc == 0)
        rc = rn_sys_rename(tmp, path);
    if (rc < 0)
        goto fail;
    return rn_sys_fsync_dir(dir);

fail:
    rn_sys_unlink(tmp);
    return rc;
}

int rn_checkpoint_read(const char *dir, const char *name, const char magic[8], void *payload,
                       size_t len)
{
    if (len > RN_CHECKPOINT_MAX)
        return -EINVAL;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = rn_sys_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    uint8_t buf[12 + RN_CHECKPOINT_MAX + 8 + 1];
    ssize_t n = rn_sys_pread_all(fd, buf, sizeof(buf), 0);
    rn_sys_close(fd);
    if (n < 0)
        return (int)n;
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
    int rc = rn_sys_unlink(path);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    return rn_sys_fsync_dir(dir);
}
