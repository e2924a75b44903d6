/*
 * snapshot.c — writing and reading the metadata image as a file (see
 * snapshot.h).
 *
 * File (dir/snapshot), little-endian:
 *
 *    0  magic "RNMDSNP1"
 *    8  u32 version = 2
 *   12  u64 offset covered (the image after every record below it)
 *   20  i32 epoch of the record before it (the Raft entry's; 0 when none)
 *   24  u32 count
 *   28  count × [u32 len | len bytes of a packed MetadataRecord]
 *  end-8 u64 XXH3-64 over every byte before it
 *
 * Version 1 (no epoch: count at 20, records at 24) is still read. The same
 * bytes are a single node's dir/snapshot, a cluster member's
 * dir/<end offset %020>-<epoch %010>.checkpoint (Kafka's naming) and the
 * payload of a Raft FetchSnapshot response.
 *
 * Invariants:
 *  1. A snapshot on disk is whole or absent: it is written to snapshot.tmp,
 *     fdatasync'd, renamed over, and the directory fsync'd; a failure leaves
 *     the previous one.
 *  2. Loading checks the size, magic, version and checksum before reading any
 *     record, then every length against the bytes left before using it; a
 *     record that does not decode fails the load (it is never skipped).
 *  3. Write then load gives an image rn_image_equal to the one written.
 *
 * The write is synchronous (a few ms every thousand changes, on the reactor
 * that owns the metadata) rather than a second asynchronous pipeline.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "broker/meta/snapshot.h"
#include "broker/meta/records.h"
#include "protocol/bytes.h"
#include "protocol/errors.h"
#include "storage/sys.h"

#define SNAPSHOT_NAME        "snapshot"
#define SNAPSHOT_TMP_NAME    "snapshot.tmp"
#define SNAPSHOT_MAGIC       "RNMDSNP1"
#define SNAPSHOT_VERSION     2
#define SNAPSHOT_HEADER_LEN  28
#define SNAPSHOT_V1_HEADER   24
#define SNAPSHOT_TRAILER_LEN 8
/* A larger file is not ours: refuse it before allocating its size. */
#define SNAPSHOT_MAX_BYTES ((uint64_t)1 << 30) /* as a Raft message (quorum_int.h) */

/* Write [u32 len | packed r] at p (when p is not NULL); returns the bytes. */
static size_t put_record(uint8_t *p, const md_record *r)
{
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    if (p) {
        rn_put_le32(p, (uint32_t)len);
        protobuf_c_message_pack(&r->base, p + 4);
    }
    return 4 + len;
}

/* Walk the state as snapshot records: measure (out NULL) or write them.
 * *len and *count get the totals. Errors: -ENOMEM, -EFBIG. */
static int snapshot_walk(const rn_image *img, uint8_t *out, size_t *len, uint32_t *count)
{
    size_t pos = 0;
    uint64_t n = 0;
    for (unsigned i = 0; i < rn_image_topic_count(img); i++) {
        const rn_topic_info *t = rn_image_topic_at(img, i);
        uint32_t nc = t->n_configs;
        md_config_entry *entries = calloc(nc ? nc : 1, sizeof(*entries));
        md_config_entry **ptrs = calloc(nc ? nc : 1, sizeof(*ptrs));
        if (!entries || !ptrs) {
            free(entries);
            free(ptrs);
            return -ENOMEM;
        }
        for (uint32_t c = 0; c < nc; c++) {
            runnel__metadata__topic_record__configs_entry__init(&entries[c]);
            entries[c].key = (char *)t->config_keys[c];
            entries[c].value = (char *)t->config_values[c];
            ptrs[c] = &entries[c];
        }
        md_topic_record tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
        tr.name = (char *)t->name;
        tr.topic_id.len = 16;
        tr.topic_id.data = (uint8_t *)t->id;
        tr.partitions = t->n_partitions;
        tr.replication_factor = t->replication_factor;
        tr.n_configs = nc;
        tr.configs = ptrs;
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
        r.topic = &tr;
        pos += put_record(out ? out + pos : NULL, &r);
        n++;
        free(entries);
        free(ptrs);

        for (int32_t p = 0; p < t->n_partitions; p++) {
            const rn_partition_info *pi = &t->partitions[p];
            md_partition_record pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
            pr.topic_id = tr.topic_id;
            pr.partition = pi->partition;
            pr.n_replicas = (size_t)pi->n_replicas;
            pr.replicas = (int32_t *)pi->replicas;
            pr.n_isr = (size_t)pi->n_isr;
            pr.isr = (int32_t *)pi->isr;
            pr.leader = pi->leader;
            pr.leader_epoch = pi->leader_epoch;
            pr.partition_epoch = pi->partition_epoch;
            pr.n_target_replicas = (size_t)pi->n_target;
            pr.target_replicas = (int32_t *)pi->target;
            pr.n_elr = (size_t)pi->n_elr;
            pr.elr = (int32_t *)pi->elr;
            pr.min_isr = pi->min_isr;
            pr.throttle_rate = pi->throttle;
            md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
            rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
            rp.partition = &pr;
            pos += put_record(out ? out + pos : NULL, &rp);
            n++;
        }
    }
    /* Brokers last: applying them replays no election, since every
     * partition above already holds the leaders and ISRs those made. */
    for (unsigned i = 0; i < rn_image_broker_count(img); i++) {
        const rn_broker_info *b = rn_image_broker_at(img, i);
        char host[256];
        const char *colon = strrchr(b->endpoint, ':');
        size_t hl = colon ? (size_t)(colon - b->endpoint) : strlen(b->endpoint);
        snprintf(host, sizeof(host), "%.*s", (int)hl, b->endpoint);
        Runnel__Metadata__BrokerRecord br = RUNNEL__METADATA__BROKER_RECORD__INIT;
        br.node_id = b->id;
        br.host = host;
        br.port = colon ? (uint32_t)strtoul(colon + 1, NULL, 10) : 0;
        br.fenced = b->fenced;
        br.incarnation = b->epoch;
        br.registered_at = b->registered_at;
        br.kafka_endpoint = (char *)b->kafka;
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER;
        r.broker = &br;
        pos += put_record(out ? out + pos : NULL, &r);
        n++;
    }
    if (n > UINT32_MAX || pos > SNAPSHOT_MAX_BYTES)
        return -EFBIG;
    *len = pos;
    *count = (uint32_t)n;
    return 0;
}

int rn_snapshot_encode(const rn_image *img, int64_t end_offset, int32_t epoch, uint8_t **out,
                       size_t *len)
{
    size_t body;
    uint32_t count;
    int rc = snapshot_walk(img, NULL, &body, &count);
    if (rc < 0)
        return rc;
    size_t total = SNAPSHOT_HEADER_LEN + body + SNAPSHOT_TRAILER_LEN;
    uint8_t *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, SNAPSHOT_MAGIC, 8);
    rn_put_le32(buf + 8, SNAPSHOT_VERSION);
    rn_put_le64(buf + 12, (uint64_t)end_offset);
    rn_put_le32(buf + 20, (uint32_t)epoch);
    rn_put_le32(buf + 24, count);
    size_t body2;
    uint32_t count2;
    rc = snapshot_walk(img, buf + SNAPSHOT_HEADER_LEN, &body2, &count2);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    rn_put_le64(buf + total - 8, XXH3_64bits(buf, total - 8));
    *out = buf;
    *len = total;
    return 0;
}

int rn_snapshot_decode(rn_image *img, const uint8_t *buf, size_t size, int64_t *end_offset,
                       int32_t *epoch, char *why, size_t whylen)
{
    if (size < SNAPSHOT_V1_HEADER + SNAPSHOT_TRAILER_LEN || size > SNAPSHOT_MAX_BYTES)
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "size %zu out of range", size);
    if (memcmp(buf, SNAPSHOT_MAGIC, 8) != 0)
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "bad magic");
    uint32_t version = rn_get_le32(buf + 8);
    if (version != 1 && version != SNAPSHOT_VERSION)
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "unknown version %" PRIu32, version);
    size_t hdr = version == 1 ? SNAPSHOT_V1_HEADER : SNAPSHOT_HEADER_LEN;
    if (size < hdr + SNAPSHOT_TRAILER_LEN)
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "size %zu out of range", size);
    if (rn_get_le64(buf + size - 8) != XXH3_64bits(buf, size - 8))
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "checksum mismatch");
    uint64_t offset = rn_get_le64(buf + 12);
    int32_t ep = version == 1 ? 0 : (int32_t)rn_get_le32(buf + 20);
    uint32_t count = rn_get_le32(buf + hdr - 4);
    const uint8_t *p = buf + hdr, *end = buf + size - SNAPSHOT_TRAILER_LEN;
    /* Every record takes at least its 4-byte length. */
    if (offset > INT64_MAX || ep < 0 || count > (uint64_t)(end - p) / 4)
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen,
                       "offset %" PRIu64 ", epoch %" PRId32 " or count %" PRIu32 " out of range",
                       offset, ep, count);
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 4 || rn_get_le32(p) > (uint64_t)(end - p - 4))
            return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "record %" PRIu32 " overruns the file",
                           i);
        uint32_t len = rn_get_le32(p);
        md_record *r = runnel__metadata__metadata_record__unpack(NULL, len, p + 4);
        if (!r || r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD__NOT_SET) {
            if (r)
                runnel__metadata__metadata_record__free_unpacked(r, NULL);
            return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "record %" PRIu32 " does not decode",
                           i);
        }
        int status;
        int rc = rn_image_apply(img, r, NULL, &status);
        runnel__metadata__metadata_record__free_unpacked(r, NULL);
        if (rc < 0)
            return rc;
        p += 4 + len;
    }
    if (p != end)
        return rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "%zu bytes after the last record",
                       (size_t)(end - p));
    *end_offset = (int64_t)offset;
    if (epoch)
        *epoch = ep;
    return 0;
}

int rn_snapshot_write(const rn_image *img, int64_t offset, const char *dir)
{
    uint8_t *buf;
    size_t total;
    int rc = rn_snapshot_encode(img, offset, 0, &buf, &total);
    if (rc < 0)
        return rc;
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_NAME) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s", dir, SNAPSHOT_TMP_NAME) >= (int)sizeof(tmp))
        rc = -ENAMETOOLONG;
    else
        rc = rn_sys_replace_file(tmp, path, dir, buf, total, 0);
    free(buf);
    return rc;
}

/* The whole file at path, malloc'd, bounded by SNAPSHOT_MAX_BYTES before
 * anything is allocated. */
static int read_file(const char *path, uint8_t **out, size_t *len, char *why, size_t whylen)
{
    int fd = rn_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    uint8_t *buf = NULL;
    struct stat st;
    int rc = rn_sys_fstat(fd, &st);
    if (rc < 0)
        goto out;
    uint64_t size = (uint64_t)st.st_size;
    if (size < SNAPSHOT_V1_HEADER + SNAPSHOT_TRAILER_LEN || size > SNAPSHOT_MAX_BYTES) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "size %" PRIu64 " out of range", size);
        goto out;
    }
    buf = malloc(size);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t got = rn_sys_pread_all(fd, buf, size, 0);
    if (got < 0) {
        rc = (int)got;
        goto out;
    }
    if ((uint64_t)got != size) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "short read");
        goto out;
    }
    *out = buf;
    *len = size;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    rn_sys_close(fd);
    return rc;
}

int rn_snapshot_load(rn_image *img, const char *dir, int64_t *offset_out, char *why, size_t whylen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_NAME) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    uint8_t *buf;
    size_t size;
    int rc = read_file(path, &buf, &size, why, whylen);
    if (rc < 0)
        return rc;
    rc = rn_snapshot_decode(img, buf, size, offset_out, NULL, why, whylen);
    free(buf);
    return rc;
}

/* ---- A cluster member's snapshot files -------------------------------------- */

#define CHECKPOINT_SUFFIX ".checkpoint"

static int id_path(char *path, size_t cap, const char *dir, rn_snapshot_id id, const char *suffix)
{
    int n = snprintf(path, cap, "%s/%020" PRId64 "-%010" PRId32 "%s%s", dir, id.end_offset,
                     id.epoch, CHECKPOINT_SUFFIX, suffix);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int rn_snapshot_save(const char *dir, rn_snapshot_id id, const void *data, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (id_path(path, sizeof(path), dir, id, "") < 0 ||
        id_path(tmp, sizeof(tmp), dir, id, ".part") < 0)
        return -ENAMETOOLONG;
    return rn_sys_replace_file(tmp, path, dir, data, len, 0);
}

static int cmp_desc(const void *a, const void *b)
{
    const rn_snapshot_id *x = a, *y = b;
    if (x->end_offset != y->end_offset)
        return x->end_offset > y->end_offset ? -1 : 1;
    return x->epoch > y->epoch ? -1 : x->epoch < y->epoch;
}

int rn_snapshot_list(const char *dir, rn_snapshot_id **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    rn_snapshot_id *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long end;
        int epoch, used = 0;
        if (strlen(e->d_name) != 20 + 1 + 10 + strlen(CHECKPOINT_SUFFIX) ||
            sscanf(e->d_name, "%20lld-%10d.checkpoint%n", &end, &epoch, &used) != 2 ||
            used != (int)strlen(e->d_name) || end < 0 || epoch < 0)
            continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 8;
            rn_snapshot_id *nv = realloc(v, c2 * sizeof(*nv));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
            cap = c2;
        }
        v[n++] = (rn_snapshot_id){.end_offset = end, .epoch = epoch};
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_desc);
    *out = v;
    *n_out = n;
    return 0;
}

int rn_snapshot_read(const char *dir, rn_snapshot_id id, uint8_t **data, size_t *len, char *why,
                     size_t whylen)
{
    char path[PATH_MAX];
    if (id_path(path, sizeof(path), dir, id, "") < 0)
        return -ENAMETOOLONG;
    return read_file(path, data, len, why, whylen);
}

int rn_snapshot_remove(const char *dir, rn_snapshot_id id)
{
    char path[PATH_MAX];
    if (id_path(path, sizeof(path), dir, id, "") < 0)
        return -ENAMETOOLONG;
    return rn_sys_unlink(path);
}
