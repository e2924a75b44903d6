/*
 * index_file.c — checksummed header + mmap'd fixed-size entries (see index_file.h).
 *
 * Bytes on disk (little-endian):
 *   0  magic[8]           "RNOFFIX1" (offset index) or "RNTIMIX1" (time index)
 *   8  u32 version = 1
 *   12 u32 entry_size
 *   16 i64 base_offset    of the segment it indexes
 *   24 .. 55 zero         reserved
 *   56 u64 XXH3-64 of bytes 0..55
 *   64 entries
 *
 * Invariants:
 *  1. Stores into the mapping happen only below file_len, and file_len grows by
 *     fallocate (blocks reserved) before a store needs it, so a full disk is an
 *     ENOSPC return from append, never a SIGBUS.
 *  2. The entries are not checksummed: the segment validates them against the
 *     log (position inside the data, offsets increasing) on recovery and
 *     rebuilds from the log when they do not hold.
 *  3. No descriptor outlives a call. Entries are stores into the shared
 *     mapping, which needs none; growing (once per GROW_CHUNK of entries: 8,192
 *     offset entries cover 32 MiB of log), syncing and sealing reopen the file
 *     by path. A partition then holds one descriptor (its active .log) instead
 *     of three, and 10,000 partitions fit under a 20,000 RLIMIT_NOFILE.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "protocol/errors.h"
#include "storage/crash.h"
#include "storage/index_file.h"
#include "storage/sys.h"

#define GROW_CHUNK (64 * 1024)
#define VERSION    1

static size_t page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

static void make_header(uint8_t *h, const char magic[8], uint32_t entry_size, int64_t base)
{
    memset(h, 0, RN_INDEX_HEADER_LEN);
    memcpy(h, magic, 8);
    uint32_t v = htole32(VERSION), es = htole32(entry_size);
    uint64_t b = htole64((uint64_t)base);
    memcpy(h + 8, &v, 4);
    memcpy(h + 12, &es, 4);
    memcpy(h + 16, &b, 8);
    uint64_t sum = htole64(XXH3_64bits(h, 56));
    memcpy(h + 56, &sum, 8);
}

/* Close fd keeping the first error: rc when it is one, else close's. */
static int close_keep(int fd, int rc)
{
    int rc2 = rn_sys_close(fd);
    return rc < 0 ? rc : rc2;
}

static int grow(rn_index_file *ix, size_t need)
{
    if (need <= ix->file_len)
        return 0;
    size_t to = page_round(need > ix->file_len + GROW_CHUNK ? need : ix->file_len + GROW_CHUNK);
    if (to > ix->map_len)
        to = ix->map_len;
    if (to < need)
        return -ENOSPC;
    int fd = rn_sys_open(ix->path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    int rc = rn_sys_fallocate(fd, 0, (off_t)ix->file_len, (off_t)(to - ix->file_len));
    if (rc == -EOPNOTSUPP)
        rc = rn_sys_ftruncate(fd, (off_t)to);
    /* A failed close after a good fallocate: the blocks are reserved anyway,
     * but say so rather than store into a file we are unsure of. */
    rc = close_keep(fd, rc);
    if (rc < 0)
        return rc;
    ix->file_len = to;
    return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t k = 0; k < len; k++)
        if (p[k])
            return false;
    return true;
}

/* Entries written: file_entries less the trailing all-zero ones (a chunk
 * fallocated ahead, never written). Read with pread from the end, not through
 * the mapping: touching it at start-up faulted in, and left in the RSS, a
 * page of both indexes of every partition (and cost a fault each). A tail
 * that SEEK_HOLE reports as a hole up to the end of the file reads as zeros
 * and is skipped unread. Errors: -errno of pread. */
static int count_entries(int fd, size_t file_entries, uint32_t es, uint32_t *out)
{
    size_t n = file_entries;
    *out = 0;
    if (n == 0)
        return 0;
    off_t hole = rn_sys_lseek(fd, RN_INDEX_HEADER_LEN, SEEK_HOLE);
    if (hole >= RN_INDEX_HEADER_LEN && rn_sys_lseek(fd, hole, SEEK_DATA) == -ENXIO) {
        size_t below = ((size_t)hole - RN_INDEX_HEADER_LEN + es - 1) / es;
        if (below < n)
            n = below;
    }
    uint8_t buf[4096];
    size_t per = sizeof(buf) / es;
    while (n > 0) {
        size_t k = n < per ? n : per;
        off_t at = RN_INDEX_HEADER_LEN + (off_t)((n - k) * es);
        ssize_t got = rn_sys_pread_all(fd, buf, k * es, at);
        if (got < 0)
            return (int)got;
        for (size_t i = (size_t)got / es; i > 0; i--) {
            if (!all_zero(buf + (i - 1) * es, es)) {
                *out = (uint32_t)(n - k + i);
                return 0;
            }
        }
        n -= k; /* a short read: the rest is past EOF, zeros too */
    }
    *out = 0;
    return 0;
}

int rn_index_file_open(rn_index_file *ix, const char *path, const char magic[8],
                       uint32_t entry_size, int64_t base_offset, uint32_t max, bool create)
{
    memset(ix, 0, sizeof(*ix));
    ix->fd = -1;
    ix->entry_size = entry_size;
    ix->base_offset = base_offset;
    ix->path = strdup(path);
    if (!ix->path)
        return -ENOMEM;

    int rc;
    int fd = rn_sys_open(path, O_RDWR | O_CREAT | (create ? O_TRUNC : 0), 0644);
    if (fd < 0) {
        rc = fd;
        goto fail_path;
    }

    struct stat st;
    rc = rn_sys_fstat(fd, &st);
    if (rc < 0)
        goto fail;
    uint8_t want[RN_INDEX_HEADER_LEN];
    make_header(want, magic, entry_size, base_offset);

    size_t size = (size_t)st.st_size;
    bool fresh = size == 0;
    if (fresh) {
        rc = rn_sys_pwrite_all(fd, want, sizeof(want), 0);
        if (rc < 0)
            goto fail;
        size = RN_INDEX_HEADER_LEN;
    } else {
        uint8_t have[RN_INDEX_HEADER_LEN];
        ssize_t n = rn_sys_pread_all(fd, have, sizeof(have), 0);
        if (n < 0) {
            rc = (int)n;
            goto fail;
        }
        if (n != RN_INDEX_HEADER_LEN || memcmp(have, want, sizeof(want)) != 0) {
            rc = -RN_E_CORRUPT_INDEX;
            goto fail;
        }
    }
    size_t file_entries = (size - RN_INDEX_HEADER_LEN) / entry_size;
    if (file_entries > max)
        max = (uint32_t)file_entries;
    uint32_t n_written = 0;
    rc = count_entries(fd, file_entries, entry_size, &n_written);
    if (rc < 0)
        goto fail;
    ix->max = max;
    ix->map_len = page_round(RN_INDEX_HEADER_LEN + (size_t)max * entry_size);
    ix->file_len = size;
    rc = rn_sys_mmap((void **)&ix->map, ix->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (rc < 0)
        goto fail;
    /* The mapping keeps the file; the descriptor is not needed (invariant 3). */
    rc = rn_sys_close(fd);
    if (rc < 0) {
        rn_sys_munmap(ix->map, ix->map_len);
        ix->map = NULL;
        goto fail_path;
    }
    ix->n = n_written;
    return fresh ? 1 : 0;

fail:
    rn_sys_close(fd);
fail_path:
    free(ix->path);
    ix->path = NULL;
    return rc;
}

int rn_index_file_append(rn_index_file *ix, const void *entry)
{
    if (ix->n >= ix->max || ix->sealed || !ix->map)
        return -ENOSPC;
    size_t end = RN_INDEX_HEADER_LEN + (size_t)(ix->n + 1) * ix->entry_size;
    int rc = grow(ix, end);
    if (rc < 0)
        return rc;
    /* A store the kernel writes back when it likes: journaled as a write. */
    if (__builtin_expect(rn_crash_active, 0))
        rn_crash_store(ix->path, end - ix->entry_size, end);
    memcpy(ix->map + end - ix->entry_size, entry, ix->entry_size);
    ix->n++;
    return 0;
}

int rn_index_file_append_last(rn_index_file *ix, const void *entry)
{
    if (ix->n >= ix->max || ix->sealed || !ix->map)
        return -ENOSPC;
    size_t end = RN_INDEX_HEADER_LEN + (size_t)(ix->n + 1) * ix->entry_size;
    if (end <= ix->file_len)
        return rn_index_file_append(ix, entry); /* room already allocated */
    /* pwrite extends the file by just the entry (a full disk is -ENOSPC,
     * never a fault); the shared mapping sees it, and nothing is stored
     * through the mapping past file_len. */
    int fd = rn_sys_open(ix->path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    int rc = rn_sys_pwrite_all(fd, entry, ix->entry_size, (off_t)(end - ix->entry_size));
    rc = close_keep(fd, rc);
    if (rc < 0)
        return rc;
    ix->file_len = end;
    ix->n++;
    return 0;
}

void rn_index_file_trim(rn_index_file *ix, uint32_t n)
{
    if (n >= ix->n)
        return;
    size_t from = RN_INDEX_HEADER_LEN + (size_t)n * ix->entry_size;
    size_t to = RN_INDEX_HEADER_LEN + (size_t)ix->n * ix->entry_size;
    if (to > ix->file_len)
        to = ix->file_len;
    if (from < to) {
        if (__builtin_expect(rn_crash_active, 0))
            rn_crash_store(ix->path, from, to);
        memset(ix->map + from, 0, to - from);
    }
    ix->n = n;
}

static int seal(rn_index_file *ix, bool lazy)
{
    if (ix->sealed || !ix->map)
        return 0;
    int fd = rn_sys_open(ix->path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    /* Shrinking under the mapping is safe: nobody reads past entry n. */
    size_t len = RN_INDEX_HEADER_LEN + (size_t)ix->n * ix->entry_size;
    int rc = rn_sys_ftruncate(fd, (off_t)len);
    if (rc == 0)
        ix->file_len = len;
    if (rc == 0)
        rc = lazy ? rn_sys_fdatasync_lazy(fd) : rn_sys_fdatasync(fd);
    rc = close_keep(fd, rc);
    /* Sealed only when all of it worked: a retry redoes the lot (an append
     * in between grows the file again first, so no store can fault). */
    if (rc == 0)
        ix->sealed = true;
    return rc;
}

int rn_index_file_seal(rn_index_file *ix)
{
    return seal(ix, false);
}

int rn_index_file_seal_lazy(rn_index_file *ix)
{
    return seal(ix, true);
}

int rn_index_file_close(rn_index_file *ix)
{
    int rc = 0;
    if (ix->map) {
        rc = rn_sys_munmap(ix->map, ix->map_len);
        ix->map = NULL;
    }
    free(ix->path);
    ix->path = NULL;
    ix->fd = -1;
    return rc;
}
