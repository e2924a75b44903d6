/*
 * test_snapshot.c — the metadata snapshot as bytes and files
 * (broker/meta/snapshot.h) and the FetchSnapshot answer on the wire
 * (broker/meta/quorum.h): encode then decode gives an equal image with its
 * end offset and epoch; a truncated file, any flipped byte, an unknown
 * version and counts past the bytes are refused, never half-used; the
 * cluster's <end>-<epoch>.checkpoint files list newest first; a snapshot
 * larger than one frame is carried in parts and gathered back whole, and
 * parts out of order, past their total or over the bound are refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/meta/image.h"
#include "broker/meta/quorum.h"
#include "broker/meta/raft.h"
#include "broker/meta/snapshot.h"
#include "metadata.pb-c.h"
#include "protocol/bytes.h"
#include "protocol/errors.h"

typedef Runnel__Metadata__MetadataRecord md_record;

static void apply(rn_image *img, md_record *r)
{
    int status;
    cr_assert_eq(rn_image_apply(img, r, NULL, &status), 0);
    cr_assert_eq(status, 0);
}

/* An image of n topics (two partitions, a config each) and two brokers. */
static rn_image *sample(int n)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    for (int k = 0; k < n; k++) {
        uint8_t id[16] = {0};
        id[0] = (uint8_t)k;
        id[1] = (uint8_t)(k >> 8);
        id[15] = 0x5A;
        char name[32], val[32];
        snprintf(name, sizeof(name), "topic-%04d", k);
        snprintf(val, sizeof(val), "%d", 1000 + k);
        Runnel__Metadata__TopicRecord__ConfigsEntry e =
            RUNNEL__METADATA__TOPIC_RECORD__CONFIGS_ENTRY__INIT;
        e.key = "retention.ms";
        e.value = val;
        Runnel__Metadata__TopicRecord__ConfigsEntry *ep = &e;
        Runnel__Metadata__TopicRecord tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
        tr.name = name;
        tr.topic_id = (ProtobufCBinaryData){16, id};
        tr.partitions = 2;
        tr.replication_factor = 2;
        tr.n_configs = 1;
        tr.configs = &ep;
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
        r.topic = &tr;
        apply(img, &r);
        for (int p = 0; p < 2; p++) {
            int32_t reps[2] = {1 + p, 2 - p};
            Runnel__Metadata__PartitionRecord pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
            pr.topic_id = tr.topic_id;
            pr.partition = p;
            pr.n_replicas = 2;
            pr.replicas = reps;
            pr.n_isr = 2;
            pr.isr = reps;
            pr.leader = reps[0];
            pr.leader_epoch = k;
            pr.partition_epoch = k + 1;
            md_record rp = RUNNEL__METADATA__METADATA_RECORD__INIT;
            rp.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
            rp.partition = &pr;
            apply(img, &rp);
        }
    }
    for (int b = 1; b <= 2; b++) {
        Runnel__Metadata__BrokerRecord br = RUNNEL__METADATA__BROKER_RECORD__INIT;
        br.node_id = b;
        br.host = "127.0.0.1";
        br.port = (uint32_t)(9700 + b);
        br.incarnation = 100 + b;
        br.registered_at = 40 + b;
        br.kafka_endpoint = "";
        md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;
        r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_BROKER;
        r.broker = &br;
        apply(img, &r);
    }
    return img;
}

/* Decode buf into a fresh image; the result code, the image freed. */
static int decode(const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    int64_t end;
    int32_t epoch;
    int rc = rn_snapshot_decode(img, buf, len, &end, &epoch, why, whylen);
    rn_image_free(img);
    return rc;
}

Test(snapshot, round_trip)
{
    rn_image *img = sample(50), *back;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 1234, 7, &buf, &len), 0);
    cr_assert_eq(rn_image_new(&back), 0);
    int64_t end;
    int32_t epoch;
    char why[256] = "";
    cr_assert_eq(rn_snapshot_decode(back, buf, len, &end, &epoch, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(end, 1234);
    cr_assert_eq(epoch, 7);
    cr_assert(rn_image_equal(img, back));
    cr_assert_eq(rn_image_broker_count(back), 2);
    cr_assert_eq(rn_image_broker(back, 2)->epoch, 102);
    cr_assert_eq(rn_image_broker(back, 2)->registered_at, 42, "the broker epoch is kept");
    /* Encoding is a function of the image: the same bytes again. */
    uint8_t *buf2;
    size_t len2;
    cr_assert_eq(rn_snapshot_encode(back, 1234, 7, &buf2, &len2), 0);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(buf, buf2, len), 0);
    free(buf2);
    free(buf);
    rn_image_free(back);
    rn_image_free(img);
}

Test(snapshot, empty_image)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 0, 0, &buf, &len), 0);
    char why[256] = "";
    cr_assert_eq(decode(buf, len, why, sizeof(why)), 0, "%s", why);
    free(buf);
    rn_image_free(img);
}

Test(snapshot, every_truncation_refused)
{
    rn_image *img = sample(3);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 99, 2, &buf, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        char why[256] = "";
        /* A copy of exactly cut bytes, so ASan sees any read past it. */
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        cr_assert_eq(decode(p, cut, why, sizeof(why)), -RN_E_CORRUPT_FILE, "cut at %zu", cut);
        cr_assert(why[0], "no reason for a cut at %zu", cut);
        free(p);
    }
    free(buf);
    rn_image_free(img);
}

Test(snapshot, every_flipped_byte_refused)
{
    rn_image *img = sample(3);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 99, 2, &buf, &len), 0);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (uint8_t)(1u << bit);
            char why[256] = "";
            cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE,
                         "byte %zu bit %d flipped", i, bit);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    char why[256] = "";
    cr_assert_eq(decode(buf, len, why, sizeof(why)), 0, "%s", why);
    free(buf);
    rn_image_free(img);
}

/* Rewrite the checksum so only the field changed is wrong. */
static void reseal(uint8_t *buf, size_t len)
{
    rn_put_le64(buf + len - 8, XXH3_64bits(buf, len - 8));
}

Test(snapshot, unknown_version_refused)
{
    rn_image *img = sample(2);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 5, 1, &buf, &len), 0);
    rn_put_le32(buf + 8, 3);
    reseal(buf, len);
    char why[256] = "";
    cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE);
    cr_assert(strstr(why, "version"), "%s", why);
    memcpy(buf, "RNMDSNP2", 8);
    rn_put_le32(buf + 8, 2);
    reseal(buf, len);
    cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE);
    cr_assert(strstr(why, "magic"), "%s", why);
    free(buf);
    rn_image_free(img);
}

/* Version 1 (no epoch) is still read: a single node's older snapshot. */
Test(snapshot, version_1_read)
{
    rn_image *img = sample(4), *back;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 77, 3, &buf, &len), 0);
    size_t len1 = len - 4;
    uint8_t *v1 = malloc(len1);
    memcpy(v1, buf, 20);
    rn_put_le32(v1 + 8, 1);
    memcpy(v1 + 20, buf + 24, len - 24); /* count, records, (old checksum) */
    reseal(v1, len1);
    cr_assert_eq(rn_image_new(&back), 0);
    int64_t end;
    int32_t epoch = -1;
    char why[256] = "";
    cr_assert_eq(rn_snapshot_decode(back, v1, len1, &end, &epoch, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(end, 77);
    cr_assert_eq(epoch, 0);
    cr_assert(rn_image_equal(img, back));
    free(v1);
    free(buf);
    rn_image_free(back);
    rn_image_free(img);
}

/* A checksum that matches does not make lengths trustworthy: a count or a
 * record length past the bytes is refused before anything is allocated. */
Test(snapshot, lengths_past_the_bytes_refused)
{
    rn_image *img = sample(2);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 5, 1, &buf, &len), 0);
    char why[256] = "";
    uint32_t count = rn_get_le32(buf + 24);
    rn_put_le32(buf + 24, 0xFFFFFFFFu);
    reseal(buf, len);
    cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE);
    rn_put_le32(buf + 24, count + 1);
    reseal(buf, len);
    cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE);
    rn_put_le32(buf + 24, count);
    rn_put_le32(buf + 28, 0x7FFFFFFFu); /* the first record's length */
    reseal(buf, len);
    cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE);
    cr_assert(strstr(why, "overruns"), "%s", why);
    rn_put_le64(buf + 12, (uint64_t)1 << 63); /* offset past INT64_MAX */
    reseal(buf, len);
    cr_assert_eq(decode(buf, len, why, sizeof(why)), -RN_E_CORRUPT_FILE);
    free(buf);
    rn_image_free(img);
}

static int rm_entry(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

Test(snapshot, files_listed_newest_first)
{
    char dir[] = "/tmp/rn-test-snapshot-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rn_image *img = sample(2);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rn_snapshot_encode(img, 40, 2, &buf, &len), 0);
    rn_snapshot_id ids_in[] = {{40, 2}, {7, 1}, {123, 3}};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rn_snapshot_save(dir, ids_in[i], buf, len), 0);
    /* Not ours: ignored. */
    char junk[128];
    snprintf(junk, sizeof(junk), "%s/00000000000000000009-0000000001.checkpoint.part", dir);
    FILE *f = fopen(junk, "w");
    fclose(f);
    snprintf(junk, sizeof(junk), "%s/snapshot", dir);
    f = fopen(junk, "w");
    fclose(f);
    rn_snapshot_id *ids;
    size_t n;
    cr_assert_eq(rn_snapshot_list(dir, &ids, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[0].end_offset, 123);
    cr_assert_eq(ids[0].epoch, 3);
    cr_assert_eq(ids[1].end_offset, 40);
    cr_assert_eq(ids[2].end_offset, 7);
    uint8_t *back;
    size_t blen;
    char why[256] = "";
    cr_assert_eq(rn_snapshot_read(dir, ids[1], &back, &blen, why, sizeof(why)), 0);
    cr_assert_eq(blen, len);
    cr_assert_eq(memcmp(back, buf, len), 0);
    free(back);
    cr_assert_eq(rn_snapshot_remove(dir, ids[2]), 0);
    free(ids);
    cr_assert_eq(rn_snapshot_list(dir, &ids, &n), 0);
    cr_assert_eq(n, 2);
    free(ids);
    free(buf);
    rn_image_free(img);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    /* A missing directory holds none. */
    cr_assert_eq(rn_snapshot_list(dir, &ids, &n), 0);
    cr_assert_eq(n, 0);
}

/* ---- FetchSnapshot on the wire ------------------------------------------- */

static rn_raft_msg snapshot_resp(const uint8_t *data, size_t len)
{
    return (rn_raft_msg){.type = RN_RAFT_MSG_FETCH_SNAPSHOT_RESP,
                         .from = 1,
                         .to = 3,
                         .epoch = 4,
                         .leader_id = 1,
                         .diverging_epoch = -1,
                         .diverging_end_offset = -1,
                         .snapshot_end_offset = 500,
                         .snapshot_epoch = 4,
                         .snapshot_data = data,
                         .snapshot_len = len};
}

Test(snapshot, fetch_snapshot_round_trip_and_truncations)
{
    rn_image *img = sample(5);
    uint8_t *snap;
    size_t slen;
    cr_assert_eq(rn_snapshot_encode(img, 500, 4, &snap, &slen), 0);
    rn_raft_msg m = snapshot_resp(snap, slen), out;
    uint8_t *w;
    size_t wl;
    cr_assert_eq(rn_quorum_msg_encode(&m, &w, &wl), 0);
    rn_raft_entry *ents;
    cr_assert_eq(rn_quorum_msg_decode(w, wl, &out, &ents), 0);
    cr_assert_eq(out.snapshot_len, slen);
    cr_assert_eq(memcmp(out.snapshot_data, snap, slen), 0);
    cr_assert_eq(out.snapshot_end_offset, 500);
    free(ents);
    /* Every shorter message is refused (the snapshot length is checked
     * against what is left), and so is one with a byte more. */
    for (size_t cut = 0; cut < wl; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, w, cut);
        cr_assert_eq(rn_quorum_msg_decode(p, cut, &out, &ents), -EINVAL, "cut at %zu", cut);
        cr_assert_null(ents);
        free(p);
    }
    uint8_t *more = malloc(wl + 1);
    memcpy(more, w, wl);
    more[wl] = 0;
    cr_assert_eq(rn_quorum_msg_decode(more, wl + 1, &out, &ents), -EINVAL);
    free(more);
    /* A snapshot length past the message. */
    rn_put_le32(w + wl - slen - 4, (uint32_t)slen + 1);
    cr_assert_eq(rn_quorum_msg_decode(w, wl, &out, &ents), -EINVAL);
    rn_put_le32(w + wl - slen - 4, 0xFFFFFFFFu);
    cr_assert_eq(rn_quorum_msg_decode(w, wl, &out, &ents), -EINVAL);
    free(w);
    free(snap);
    rn_image_free(img);
}

/* One PART body: u64 total | u64 pos | bytes. */
static size_t part(uint8_t *out, uint64_t total, uint64_t pos, const uint8_t *p, size_t n)
{
    rn_put_le64(out, total);
    rn_put_le64(out + 8, pos);
    memcpy(out + 16, p, n);
    return 16 + n;
}

Test(snapshot, parts_gather_a_large_message)
{
    /* A FetchSnapshot answer of ~20 MiB: more than one 8 MiB part. */
    size_t slen = (20u << 20) + 12345;
    uint8_t *snap = malloc(slen);
    for (size_t i = 0; i < slen; i++)
        snap[i] = (uint8_t)(i * 131 + (i >> 13));
    rn_raft_msg m = snapshot_resp(snap, slen), out;
    uint8_t *w;
    size_t wl;
    cr_assert_eq(rn_quorum_msg_encode(&m, &w, &wl), 0);
    size_t chunk = 8u << 20;
    uint8_t *body = malloc(16 + chunk);
    rn_quorum_parts pt = {0};
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    int rc = 0, n_parts = 0;
    for (size_t pos = 0; pos < wl; pos += chunk) {
        size_t n = wl - pos < chunk ? wl - pos : chunk;
        size_t bl = part(body, wl, pos, w + pos, n);
        rc = rn_quorum_parts_feed(&pt, body, bl, &msg, &mlen);
        n_parts++;
        cr_assert_eq(rc, pos + n < wl ? 0 : 1, "part at %zu", pos);
    }
    cr_assert_eq(n_parts, 3);
    cr_assert(pt.cap <= wl, "the buffer grew past the total: %zu > %zu", pt.cap, wl);
    rn_raft_entry *ents;
    cr_assert_eq(rn_quorum_msg_decode(msg, mlen, &out, &ents), 0);
    cr_assert_eq(out.snapshot_len, slen);
    cr_assert_eq(memcmp(out.snapshot_data, snap, slen), 0);
    free(ents);
    rn_quorum_parts_reset(&pt);
    free(body);
    free(w);
    free(snap);
}

Test(snapshot, bad_parts_refused)
{
    uint8_t data[64], body[128] = {0};
    memset(data, 7, sizeof(data));
    rn_quorum_parts pt = {0};
    const uint8_t *msg;
    size_t mlen;
    /* Shorter than its header; empty bytes. */
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, 15, &msg, &mlen), -EINVAL);
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 64, 0, data, 0), &msg, &mlen), -EINVAL);
    /* A total of 0, or over the bound (checked before anything grows). */
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 0, 0, data, 8), &msg, &mlen), -EINVAL);
    cr_assert_eq(
        rn_quorum_parts_feed(&pt, body, part(body, (uint64_t)1 << 40, 0, data, 8), &msg, &mlen),
        -EINVAL);
    cr_assert_null(pt.p);
    /* Bytes past the total. */
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 8, 0, data, 9), &msg, &mlen), -EINVAL);
    /* A first part that does not start at 0; a gap; another total. */
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 64, 8, data, 8), &msg, &mlen), -EINVAL);
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 64, 0, data, 8), &msg, &mlen), 0);
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 64, 16, data, 8), &msg, &mlen),
                 -EINVAL);
    cr_assert_null(pt.p, "what was gathered is dropped");
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 64, 0, data, 8), &msg, &mlen), 0);
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 65, 8, data, 8), &msg, &mlen), -EINVAL);
    /* Then a good one, whole in two parts, and another after it. */
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 16, 0, data, 8), &msg, &mlen), 0);
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 16, 8, data, 8), &msg, &mlen), 1);
    cr_assert_eq(mlen, 16);
    cr_assert_eq(rn_quorum_parts_feed(&pt, body, part(body, 4, 0, data, 4), &msg, &mlen), 1);
    cr_assert_eq(mlen, 4);
    rn_quorum_parts_reset(&pt);
}
