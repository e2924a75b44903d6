/*
 * fuzz_meta.c — libFuzzer target for the cluster metadata's parsers: the
 * quorum's wire form of a Raft message (rn_quorum_msg_decode), a run of
 * MetadataRecords applied to an image (rn_image_apply: elections, ISR
 * changes and replica moves are derived while applying, in place), a
 * snapshot file (rn_snapshot_load), a snapshot's bytes as FetchSnapshot
 * carries them (rn_snapshot_decode: one that decodes must encode and decode
 * to an equal image), and a run of PART frames gathered into one Raft
 * message (rn_quorum_parts_feed, then rn_quorum_msg_decode).
 *
 * The first byte picks the parser (0xF0 and up: the last two). Records come as u16 length-prefixed
 * protobuf; whatever they say, applying must stay in bounds and every
 * partition's lists within their counts. A Raft message that decodes must
 * encode and decode again to the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/meta/image.h"
#include "broker/meta/quorum.h"
#include "broker/meta/raft.h"
#include "broker/meta/snapshot.h"
#include "metadata.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void wire(const uint8_t *p, size_t n)
{
    rn_raft_msg m;
    rn_raft_entry *ents = NULL;
    if (rn_quorum_msg_decode(p, n, &m, &ents) != 0)
        return;
    uint8_t *out = NULL;
    size_t len = 0;
    if (rn_quorum_msg_encode(&m, &out, &len) == 0) {
        rn_raft_msg again;
        rn_raft_entry *ents2 = NULL;
        if (rn_quorum_msg_decode(out, len, &again, &ents2) != 0)
            abort(); /* what we write we must read */
        uint8_t *out2 = NULL;
        size_t len2 = 0;
        if (rn_quorum_msg_encode(&again, &out2, &len2) == 0 &&
            (len2 != len || memcmp(out, out2, len) != 0))
            abort();
        free(out2);
        free(ents2);
    }
    free(out);
    free(ents);
}

/* Every list of every partition is within what was allocated for it. */
static void check(const rn_image *img)
{
    for (unsigned i = 0; i < rn_image_topic_count(img); i++) {
        const rn_topic_info *t = rn_image_topic_at(img, i);
        for (int32_t k = 0; k < t->n_partitions; k++) {
            const rn_partition_info *p = &t->partitions[k];
            if (p->n_replicas < 0 || p->n_isr < 0 || p->n_target < 0)
                abort();
            volatile int32_t sum = 0; /* touch every member (ASan checks) */
            for (int32_t j = 0; j < p->n_replicas; j++)
                sum += p->replicas[j];
            for (int32_t j = 0; j < p->n_isr; j++)
                sum += p->isr[j];
            for (int32_t j = 0; j < p->n_target; j++)
                sum += p->target[j];
        }
    }
}

static void records(const uint8_t *p, size_t n)
{
    rn_image *img;
    if (rn_image_new(&img) < 0)
        return;
    size_t pos = 0;
    while (pos + 2 <= n) {
        size_t len = (size_t)p[pos] | (size_t)p[pos + 1] << 8;
        pos += 2;
        if (len > n - pos)
            break;
        Runnel__Metadata__MetadataRecord *r =
            runnel__metadata__metadata_record__unpack(NULL, len, p + pos);
        pos += len;
        if (!r)
            continue;
        int status;
        int rc = rn_image_apply(img, r, NULL, &status);
        runnel__metadata__metadata_record__free_unpacked(r, NULL);
        if (rc < 0)
            break;
        check(img);
    }
    rn_image_free(img);
}

static void snapshot(const uint8_t *p, size_t n)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/rn-fuzz-meta-XXXXXX");
        if (!mkdtemp(dir)) {
            dir[0] = 0;
            return;
        }
    }
    char path[96];
    snprintf(path, sizeof(path), "%s/snapshot", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    size_t w = fwrite(p, 1, n, f);
    fclose(f);
    if (w != n)
        return;
    rn_image *img;
    if (rn_image_new(&img) < 0)
        return;
    int64_t off;
    char why[256];
    if (rn_snapshot_load(img, dir, &off, why, sizeof(why)) == 0)
        check(img);
    rn_image_free(img);
}

static void snapshot_bytes(const uint8_t *p, size_t n)
{
    rn_image *img, *back;
    if (rn_image_new(&img) < 0)
        return;
    int64_t end;
    int32_t epoch;
    char why[256];
    if (rn_snapshot_decode(img, p, n, &end, &epoch, why, sizeof(why)) == 0) {
        check(img);
        uint8_t *out;
        size_t len;
        if (rn_snapshot_encode(img, end, epoch, &out, &len) == 0) {
            int64_t end2;
            int32_t epoch2;
            if (rn_image_new(&back) == 0) {
                if (rn_snapshot_decode(back, out, len, &end2, &epoch2, why, sizeof(why)) != 0 ||
                    end2 != end || epoch2 != epoch || !rn_image_equal(img, back))
                    abort(); /* what we write we must read back the same */
                rn_image_free(back);
            }
            free(out);
        }
    }
    rn_image_free(img);
}

/* u16 length-prefixed PART bodies, fed in order; a whole message decodes
 * (or not) in bounds. */
static void parts(const uint8_t *p, size_t n)
{
    rn_quorum_parts pt = {0};
    size_t pos = 0;
    while (pos + 2 <= n) {
        size_t len = (size_t)p[pos] | (size_t)p[pos + 1] << 8;
        pos += 2;
        if (len > n - pos)
            break;
        /* A copy of exactly len bytes, so a read past it is seen. */
        uint8_t *body = malloc(len ? len : 1);
        if (!body)
            break;
        memcpy(body, p + pos, len);
        pos += len;
        const uint8_t *msg;
        size_t mlen;
        int rc = rn_quorum_parts_feed(&pt, body, len, &msg, &mlen);
        free(body);
        if (rc == 1) {
            if (mlen > pt.cap)
                abort();
            wire(msg, mlen);
        }
    }
    rn_quorum_parts_reset(&pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] >= 0xF0) {
        if (data[0] < 0xF8)
            snapshot_bytes(data + 1, size - 1);
        else
            parts(data + 1, size - 1);
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        wire(data + 1, size - 1);
        break;
    case 1:
        records(data + 1, size - 1);
        break;
    default:
        snapshot(data + 1, size - 1);
        break;
    }
    return 0;
}
