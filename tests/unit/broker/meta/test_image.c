/*
 * test_image.c — the metadata image's pure apply (broker/meta/image.h) and
 * its snapshot (broker/meta/snapshot.h): records in → the expected image;
 * records that do not fit are skipped and change nothing; the same records
 * give the same image; a snapshot written and loaded gives an equal image.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/image.h"
#include "broker/meta/snapshot.h"
#include "metadata.pb-c.h"
#include "protocol/errors.h"

typedef Runnel__Metadata__MetadataRecord md_record;

/* ---- Builders: one record each, applied at once (apply copies what it
 * keeps); they return the record's status. Topic k has id id_of(k). ------- */

static void id_of(unsigned k, uint8_t id[16])
{
    memset(id, 0, 16);
    id[0] = (uint8_t)k;
    id[15] = 0xA5;
}

/* Topic k's id as a record field, its bytes in id (which must outlive it). */
static ProtobufCBinaryData topic_id(unsigned k, uint8_t id[16])
{
    id_of(k, id);
    return (ProtobufCBinaryData){.len = 16, .data = id};
}

/* Apply r (its effect in eff, may be NULL) and return the record's status. */
static int apply(rn_image *img, const md_record *r, rn_image_effect *eff)
{
    int status;
    cr_assert_eq(rn_image_apply(img, r, eff, &status), 0);
    return status;
}

/* Declare r, a metadata record of CASE (the suffix of its record_case name)
 * whose body is in member `member`. */
#define MD_RECORD(r, CASE, member, body)                                                           \
    md_record r = RUNNEL__METADATA__METADATA_RECORD__INIT;                                         \
    r.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_##CASE;                              \
    r.member = (body)

static int apply_topic(rn_image *img, const char *name, unsigned k, int32_t parts, const char *ck,
                       const char *cv, rn_image_effect *eff)
{
    uint8_t id[16];
    Runnel__Metadata__TopicRecord__ConfigsEntry e =
        RUNNEL__METADATA__TOPIC_RECORD__CONFIGS_ENTRY__INIT;
    Runnel__Metadata__TopicRecord__ConfigsEntry *ep = &e;
    Runnel__Metadata__TopicRecord tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
    tr.name = (char *)name;
    tr.topic_id = topic_id(k, id);
    tr.partitions = parts;
    tr.replication_factor = 1;
    if (ck) {
        e.key = (char *)ck;
        e.value = (char *)cv;
        tr.n_configs = 1;
        tr.configs = &ep;
    }
    MD_RECORD(r, TOPIC, topic, &tr);
    return apply(img, &r, eff);
}

static int apply_partition(rn_image *img, unsigned k, int32_t p, int32_t leader, int32_t epoch)
{
    uint8_t id[16];
    int32_t nodes[2] = {leader, leader + 1};
    Runnel__Metadata__PartitionRecord pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
    pr.topic_id = topic_id(k, id);
    pr.partition = p;
    pr.leader = leader;
    pr.leader_epoch = epoch;
    pr.n_replicas = 2;
    pr.replicas = nodes;
    pr.n_isr = 1;
    pr.isr = nodes;
    MD_RECORD(r, PARTITION, partition, &pr);
    return apply(img, &r, NULL);
}

static int apply_config(rn_image *img, unsigned k, const char *key, const char *value, bool remove,
                        rn_image_effect *eff)
{
    uint8_t id[16];
    Runnel__Metadata__ConfigRecord cr = RUNNEL__METADATA__CONFIG_RECORD__INIT;
    cr.topic_id = topic_id(k, id);
    cr.key = (char *)key;
    cr.value = (char *)value;
    cr.remove = remove;
    MD_RECORD(r, CONFIG, config, &cr);
    return apply(img, &r, eff);
}

static int apply_count(rn_image *img, unsigned k, int32_t n, rn_image_effect *eff)
{
    uint8_t id[16];
    Runnel__Metadata__PartitionCountRecord cr = RUNNEL__METADATA__PARTITION_COUNT_RECORD__INIT;
    cr.topic_id = topic_id(k, id);
    cr.partitions = n;
    MD_RECORD(r, PARTITION_COUNT, partition_count, &cr);
    return apply(img, &r, eff);
}

static int apply_remove(rn_image *img, unsigned k, rn_image_effect *eff)
{
    uint8_t id[16];
    Runnel__Metadata__RemoveTopicRecord rr = RUNNEL__METADATA__REMOVE_TOPIC_RECORD__INIT;
    rr.topic_id = topic_id(k, id);
    MD_RECORD(r, REMOVE_TOPIC, remove_topic, &rr);
    return apply(img, &r, eff);
}

static rn_image *new_image(void)
{
    rn_image *img;
    cr_assert_eq(rn_image_new(&img), 0);
    return img;
}

/* ---- Apply → expected image -------------------------------------------------- */

Test(image, records_build_the_expected_image)
{
    rn_image *img = new_image();
    rn_image_effect eff;
    cr_assert_eq(apply_topic(img, "orders", 1, 3, "retention.ms", "1000", &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_TOPIC_CREATED);
    cr_assert_str_eq(eff.topic->name, "orders");
    cr_assert_eq(apply_topic(img, "audit", 2, 1, NULL, NULL, NULL), 0);
    for (int32_t p = 0; p < 3; p++)
        cr_assert_eq(apply_partition(img, 1, p, 7, p + 10), 0);

    cr_assert_eq(rn_image_topic_count(img), 2);
    cr_assert_str_eq(rn_image_topic_at(img, 0)->name, "audit"); /* sorted by name */
    cr_assert_str_eq(rn_image_topic_at(img, 1)->name, "orders");
    cr_assert_null(rn_image_topic_at(img, 2));
    cr_assert_eq(rn_image_partition_count(img), 4);

    const rn_topic_info *t = rn_image_find(img, "orders");
    cr_assert_not_null(t);
    uint8_t id[16];
    id_of(1, id);
    cr_assert_eq(rn_image_find_id(img, id, 16), t);
    cr_assert_null(rn_image_find_id(img, id, 15));
    cr_assert_eq(t->n_partitions, 3);
    cr_assert_eq(t->partitions[2].leader, 7);
    cr_assert_eq(t->partitions[2].leader_epoch, 12);
    cr_assert_eq(t->partitions[2].n_replicas, 2);
    cr_assert_eq(t->partitions[2].replicas[1], 8);
    cr_assert_eq(t->partitions[2].n_isr, 1);
    cr_assert_eq(t->partitions[2].isr[0], 7);
    cr_assert_eq(t->n_configs, 1);
    cr_assert_str_eq(t->config_values[0], "1000");
    /* The second topic's partitions have no assignment yet. */
    cr_assert_eq(rn_image_find(img, "audit")->partitions[0].leader, -1);

    /* Configs stay sorted by key; setting the same value is no change. */
    cr_assert_eq(apply_config(img, 1, "cleanup.policy", "delete", false, &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_CONFIG_CHANGED);
    cr_assert_eq(apply_config(img, 1, "cleanup.policy", "delete", false, &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_NONE);
    t = rn_image_find(img, "orders");
    cr_assert_str_eq(t->config_keys[0], "cleanup.policy");
    cr_assert_str_eq(t->config_keys[1], "retention.ms");
    cr_assert_eq(apply_config(img, 1, "retention.ms", "", true, &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_CONFIG_CHANGED);
    cr_assert_eq(rn_image_find(img, "orders")->n_configs, 1);

    cr_assert_eq(apply_count(img, 1, 5, &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_PARTITIONS_ADDED);
    t = rn_image_find(img, "orders");
    cr_assert_eq(t->n_partitions, 5);
    cr_assert_eq(t->partitions[4].partition, 4);
    cr_assert_eq(t->partitions[4].leader, -1);
    cr_assert_eq(t->partitions[1].leader, 7, "existing partitions keep their assignment");

    cr_assert_eq(apply_remove(img, 1, &eff), 0);
    cr_assert_eq(eff.type, RN_IMAGE_TOPIC_REMOVED);
    cr_assert_null(rn_image_find(img, "orders"));
    cr_assert_null(rn_image_find_id(img, id, 16));
    cr_assert_eq(rn_image_topic_count(img), 1);
    rn_image_free(img);
}

/* ---- Records that do not fit are skipped, and change nothing ------------------ */

static rn_image *base_image(void)
{
    rn_image *img = new_image();
    cr_assert_eq(apply_topic(img, "a", 1, 2, "retention.ms", "5", NULL), 0);
    cr_assert_eq(apply_partition(img, 1, 0, 1, 0), 0);
    return img;
}

Test(image, records_that_do_not_fit_are_skipped)
{
    rn_image *img = base_image(), *ref = base_image();
    char long_name[252];
    memset(long_name, 'x', 250);
    long_name[250] = '\0';
    rn_image_effect eff;
    cr_assert_eq(apply_topic(img, "a", 9, 1, NULL, NULL, &eff), -RN_E_TOPIC_EXISTS);
    cr_assert_eq(eff.type, RN_IMAGE_NONE);
    cr_assert_eq(apply_topic(img, "b", 1, 1, NULL, NULL, NULL), -RN_E_TOPIC_EXISTS, "id taken");
    cr_assert_eq(apply_topic(img, "", 3, 1, NULL, NULL, NULL), -RN_E_INVALID_TOPIC);
    cr_assert_eq(apply_topic(img, "..", 3, 1, NULL, NULL, NULL), -RN_E_INVALID_TOPIC);
    cr_assert_eq(apply_topic(img, "a/b", 3, 1, NULL, NULL, NULL), -RN_E_INVALID_TOPIC);
    cr_assert_eq(apply_topic(img, long_name, 3, 1, NULL, NULL, NULL), -RN_E_INVALID_TOPIC);
    cr_assert_eq(apply_topic(img, "c", 3, 0, NULL, NULL, NULL), -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(apply_topic(img, "c", 3, RN_IMAGE_MAX_PARTITIONS + 1, NULL, NULL, NULL),
                 -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(apply_partition(img, 1, 2, 1, 0), -RN_E_UNKNOWN_TOPIC, "partition out of range");
    cr_assert_eq(apply_partition(img, 4, 0, 1, 0), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(apply_config(img, 4, "k", "v", false, NULL), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(apply_config(img, 1, "", "v", false, NULL), -RN_E_INVALID_CONFIG);
    cr_assert_eq(apply_count(img, 1, 2, NULL), -RN_E_INVALID_PARTITIONS, "never fewer or same");
    cr_assert_eq(apply_count(img, 4, 9, NULL), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(apply_remove(img, 4, NULL), -RN_E_UNKNOWN_TOPIC);
    md_record unknown = RUNNEL__METADATA__METADATA_RECORD__INIT;
    int status;
    cr_assert_eq(rn_image_apply(img, &unknown, NULL, &status), 0);
    cr_assert_eq(status, -RN_E_CORRUPT_FILE);
    /* "__" names are well formed in a record: the broker's own topics. */
    cr_assert_eq(apply_topic(ref, "__offsets", 5, 1, NULL, NULL, NULL), 0);
    cr_assert_eq(apply_topic(img, "__offsets", 5, 1, NULL, NULL, NULL), 0);
    cr_assert(rn_image_equal(img, ref), "skipped records left a trace");
    rn_image_free(img);
    rn_image_free(ref);
}

/* ---- Deterministic: same records, same image; snapshot round trip ------------- */

/* A pseudo-random stream of records from seed: creates, partition
 * assignments, configs, growth, removals, some of which do not fit. */
static void apply_stream(rn_image *img, uint64_t seed, unsigned n)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    char name[32], value[32];
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned k = (unsigned)(x % 23) + 1, op = (unsigned)((x >> 8) % 6);
        int32_t v = (int32_t)((x >> 20) % 7);
        switch (op) {
        case 0:
            snprintf(name, sizeof(name), "t%u-%u", k, (unsigned)((x >> 30) % 3));
            apply_topic(img, name, k, v + 1, v % 2 ? "retention.ms" : NULL, "77", NULL);
            break;
        case 1:
            apply_partition(img, k, v, (int32_t)(x >> 40) % 5, (int32_t)i);
            break;
        case 2:
            snprintf(value, sizeof(value), "%u", i);
            apply_config(img, k, v % 2 ? "segment.bytes" : "retention.bytes", value, v == 3, NULL);
            break;
        case 3:
            apply_count(img, k, v + 2, NULL);
            break;
        case 4:
            if (v == 0)
                apply_remove(img, k, NULL);
            break;
        default:
            apply_partition(img, k, 0, 1, (int32_t)i);
        }
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

Test(image, same_records_same_image_and_snapshot_round_trip)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/rn-image-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    unsigned nonempty = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        rn_image *a = new_image(), *b = new_image(), *c = new_image();
        apply_stream(a, seed, 400);
        apply_stream(b, seed, 400);
        cr_assert(rn_image_equal(a, b), "seed %lu: same records, different images",
                  (unsigned long)seed);
        nonempty += rn_image_topic_count(a) > 0;

        cr_assert_eq(rn_snapshot_write(a, (int64_t)seed * 1000, dir), 0);
        int64_t offset = -1;
        char why[256] = "";
        cr_assert_eq(rn_snapshot_load(c, dir, &offset, why, sizeof(why)), 0, "seed %lu: %s",
                     (unsigned long)seed, why);
        cr_assert_eq(offset, (int64_t)seed * 1000);
        cr_assert(rn_image_equal(a, c), "seed %lu: snapshot round trip differs",
                  (unsigned long)seed);

        /* A different stream gives a different image (the check can fail). */
        rn_image_clear(c);
        apply_stream(c, seed + 1000, 400);
        if (rn_image_topic_count(a) > 0)
            cr_assert_not(rn_image_equal(a, c), "seed %lu", (unsigned long)seed);
        rn_image_free(a);
        rn_image_free(b);
        rn_image_free(c);
    }
    cr_assert_gt(nonempty, 30, "the streams build something");
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

Test(image, snapshot_missing_is_enoent)
{
    rn_image *img = new_image();
    int64_t offset = -1;
    char why[64];
    cr_assert_eq(rn_snapshot_load(img, "/nonexistent-rn-image-dir", &offset, why, sizeof(why)),
                 -ENOENT);
    cr_assert_eq(offset, -1);
    rn_image_free(img);
}
