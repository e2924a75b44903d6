/*
 * log_dir.c — a partition directory, read-only (see log_dir.h).
 *
 * Invariants of the reader:
 *  1. It never reads at or past `limit`, the file size it saw at open.
 *  2. Every batch it reports (peek returns 1) lies whole inside [pos, limit)
 *     and starts at or after next_offset; the walk ends at the first one
 *     that does not, as recovery would end the log there.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "protocol/errors.h"
#include "storage/log_dir.h"
#include "storage/sys.h"

bool rn_log_dir_parse_name(const char *name, const char *ext, int64_t *base)
{
    size_t elen = strlen(ext);
    if (strlen(name) != 20 + elen || strcmp(name + 20, ext) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > (INT64_MAX - (name[i] - '0')) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int rn_log_dir_list(const char *dir, int64_t **out, unsigned *n_out, rn_log_dir_other_cb other,
                    void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int64_t *v = NULL;
    unsigned n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        int64_t base;
        if (!rn_log_dir_parse_name(e->d_name, ".log", &base)) {
            if (other)
                other(arg, e->d_name);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        v[n++] = base;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_i64);
    *out = v;
    *n_out = n;
    return 0;
}

int rn_segment_reader_open(rn_segment_reader *r, const char *dir, int64_t base_offset)
{
    char path[4096];
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->base_offset = base_offset;
    r->next_offset = -1;
    if (snprintf(path, sizeof(path), "%s/%020" PRId64 ".log", dir, base_offset) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = rn_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = rn_sys_fstat(fd, &st);
    if (rc < 0) {
        rn_sys_close(fd);
        return rc;
    }
    r->fd = fd;
    r->limit = (uint64_t)st.st_size;
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int rn_segment_reader_peek(rn_segment_reader *r, rn_batch_header *h)
{
    if (r->pos >= r->limit)
        return 0;
    uint8_t hdr[RN_BATCH_HEADER_LEN];
    uint64_t left = r->limit - r->pos;
    size_t want = left < sizeof(hdr) ? (size_t)left : sizeof(hdr);
    ssize_t got = rn_sys_pread_all(r->fd, hdr, want, (off_t)r->pos);
    if (got < 0)
        return (int)got;
    if ((size_t)got < sizeof(hdr)) {
        /* The end: the file's, or a cut made under us (zero bytes read). A
         * few stray non-zero bytes are a torn header. */
        return all_zero(hdr, (size_t)got) ? 0 : -RN_E_BATCH_TRUNCATED;
    }
    if (all_zero(hdr, sizeof(hdr)))
        return 0; /* the sparse tail of an active segment */
    int rc = rn_batch_peek(hdr, sizeof(hdr), 0, h);
    if (rc < 0)
        return rc;
    if (rn_batch_size(h) > left)
        return -RN_E_BATCH_TRUNCATED;
    if (r->next_offset >= 0 && h->base_offset < r->next_offset)
        return -RN_E_CORRUPT_SEGMENT; /* offsets going back: stale bytes past a cut */
    return 1;
}

int rn_segment_reader_read(rn_segment_reader *r, const rn_batch_header *h, void *buf)
{
    size_t size = rn_batch_size(h);
    if (size > r->limit - r->pos)
        return -RN_E_BATCH_TRUNCATED;
    ssize_t got = rn_sys_pread_all(r->fd, buf, size, (off_t)r->pos);
    if (got < 0)
        return (int)got;
    return (size_t)got < size ? -RN_E_BATCH_TRUNCATED : 0;
}

void rn_segment_reader_advance(rn_segment_reader *r, const rn_batch_header *h)
{
    r->pos += rn_batch_size(h);
    r->next_offset = h->base_offset + h->last_offset_delta + 1;
}

void rn_segment_reader_close(rn_segment_reader *r)
{
    if (r->fd >= 0)
        rn_sys_close(r->fd);
    r->fd = -1;
}
