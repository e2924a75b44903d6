/*
 * snapshot.c — writing and reading the metadata image as a file (see
 * snapshot.h).
 *
 * File (dir/snapshot), little-endian:
 *
 *    0  magic "RNMDSNP1"
 *    8  u32 version = 1
 *   12  u64 offset covered (the image after every record below it)
 *   20  u32 count
 *   24  count × [u32 len | len bytes of a packed MetadataRecord]
 *  end-8 u64 XXH3-64 over every byte before it
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
#define SNAPSHOT_VERSION     1
#define SNAPSHOT_HEADER_LEN  24
#define SNAPSHOT_TRAILER_LEN 8
/* A larger file is not ours: refuse it before allocating its size. */
#define SNAPSHOT_MAX_BYTES ((uint64_t)1 << 32)

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

int rn_snapshot_write(const rn_image *img, int64_t offset, const char *dir)
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
    rn_put_le64(buf + 12, (uint64_t)offset);
    rn_put_le32(buf + 20, count);
    size_t body2;
    uint32_t count2;
    rc = snapshot_walk(img, buf + SNAPSHOT_HEADER_LEN, &body2, &count2);
    if (rc < 0)
        goto out;
    rn_put_le64(buf + total - 8, XXH3_64bits(buf, total - 8));

    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_NAME) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s", dir, SNAPSHOT_TMP_NAME) >= (int)sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    rc = rn_sys_replace_file(tmp, path, dir, buf, total, 0);

out:
    free(buf);
    return rc;
}

int rn_snapshot_load(rn_image *img, const char *dir, int64_t *offset_out, char *why, size_t whylen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, SNAPSHOT_NAME) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = rn_sys_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    uint8_t *buf = NULL;
    struct stat st;
    int rc = rn_sys_fstat(fd, &st);
    if (rc < 0)
        goto out;
    uint64_t size = (uint64_t)st.st_size;
    if (size < SNAPSHOT_HEADER_LEN + SNAPSHOT_TRAILER_LEN || size > SNAPSHOT_MAX_BYTES) {
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
    if (memcmp(buf, SNAPSHOT_MAGIC, 8) != 0) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "bad magic");
        goto out;
    }
    if (rn_get_le32(buf + 8) != SNAPSHOT_VERSION) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "unknown version %" PRIu32,
                     rn_get_le32(buf + 8));
        goto out;
    }
    if (rn_get_le64(buf + size - 8) != XXH3_64bits(buf, size - 8)) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "checksum mismatch");
        goto out;
    }
    uint64_t offset = rn_get_le64(buf + 12);
    uint32_t count = rn_get_le32(buf + 20);
    const uint8_t *p = buf + SNAPSHOT_HEADER_LEN, *end = buf + size - SNAPSHOT_TRAILER_LEN;
    /* Every record takes at least its 4-byte length. */
    if (offset > INT64_MAX || count > (uint64_t)(end - p) / 4) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen,
                     "offset %" PRIu64 " or count %" PRIu32 " out of range", offset, count);
        goto out;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 4 || rn_get_le32(p) > (uint64_t)(end - p - 4)) {
            rc =
                rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "record %" PRIu32 " overruns the file", i);
            goto out;
        }
        uint32_t len = rn_get_le32(p);
        md_record *r = runnel__metadata__metadata_record__unpack(NULL, len, p + 4);
        if (!r || r->record_case == RUNNEL__METADATA__METADATA_RECORD__RECORD__NOT_SET) {
            if (r)
                runnel__metadata__metadata_record__free_unpacked(r, NULL);
            rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "record %" PRIu32 " does not decode", i);
            goto out;
        }
        int status;
        rc = rn_image_apply(img, r, NULL, &status);
        runnel__metadata__metadata_record__free_unpacked(r, NULL);
        if (rc < 0)
            goto out;
        p += 4 + len;
    }
    if (p != end) {
        rc = rn_errf(-RN_E_CORRUPT_FILE, why, whylen, "%zu bytes after the last record",
                     (size_t)(end - p));
        goto out;
    }
    *offset_out = (int64_t)offset;
    rc = 0;

out:
    free(buf);
    rn_sys_close(fd);
    return rc;
}