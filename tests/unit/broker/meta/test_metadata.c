/*
 * test_metadata.c — the metadata log and state machine (broker/meta/metadata.c).
 *
 * Every test has its own rn_io and a mkdtemp directory, and drives the
 * asynchronous appends with rn_io_run(io, 1) until the callbacks it waits for
 * have fired (failing, not hanging, when nothing is left in flight). Bulk
 * changes are submitted many at a time so group commit keeps the number of
 * fdatasyncs, and so the run time, small.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "broker/meta/metadata.h"
#include "metadata.pb-c.h"
#include "protocol/batch.h"
#include "protocol/errors.h"
#include "storage/io.h"
#include "storage/log.h"

#define NODE       1
#define MAX_EVENTS 8192

/* ---- Fixture ---------------------------------------------------------------- */

typedef struct seen {
    enum rn_metadata_event_type type;
    char name[256];
    uint8_t id[16];
    int32_t n_partitions;
    uint32_t n_configs;
} seen;

static rn_io *io;
static char dir[64];
static char md_dir[128];
static seen events[MAX_EVENTS];
static unsigned n_events;

static void listener(void *arg, const rn_metadata_event *ev)
{
    (void)arg;
    cr_assert_lt(n_events, MAX_EVENTS);
    seen *s = &events[n_events++];
    s->type = ev->type;
    snprintf(s->name, sizeof(s->name), "%s", ev->topic->name);
    memcpy(s->id, ev->topic->id, 16);
    s->n_partitions = ev->topic->n_partitions;
    s->n_configs = ev->topic->n_configs;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    cr_assert_eq(rn_io_new(&io, 64), 0);
    snprintf(dir, sizeof(dir), "/tmp/rn-metadata-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(md_dir, sizeof(md_dir), "%s/__cluster_metadata-0", dir);
    n_events = 0;
}

static void teardown(void)
{
    unsigned inflight = rn_io_inflight(io);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    /* Freeing a ring with operations in flight would be the bug to report. */
    cr_assert_eq(inflight, 0);
    rn_io_free(io);
}

TestSuite(metadata, .init = setup, .fini = teardown, .timeout = 60);

/* ---- Helpers ---------------------------------------------------------------- */

typedef struct done {
    int fired;
    int err;
    char msg[512];
    unsigned events_before; /* events seen when the callback ran */
} done;

static void on_done(void *arg, int err, const char *msg)
{
    done *d = arg;
    d->fired++;
    d->err = err;
    snprintf(d->msg, sizeof(d->msg), "%s", msg ? msg : "");
    d->events_before = n_events;
}

/* Run io until d has fired (or every one of n has). */
static void wait_all(done *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        while (!d[i].fired) {
            cr_assert_gt(rn_io_inflight(io), 0, "callback %zu can never fire: nothing in flight",
                         i);
            int rc = rn_io_run(io, 1);
            cr_assert(rc >= 0 || rc == -EINTR, "rn_io_run: %d", rc);
        }
}

static rn_metadata *open_md(void)
{
    rn_metadata *md;
    char err[512] = "";
    int rc = rn_metadata_open(&md, io, dir, NODE, listener, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "open: %d %s", rc, err);
    return md;
}

static void create_ok(rn_metadata *md, const char *name, int32_t parts, const char *const *keys,
                      const char *const *values, size_t n)
{
    done d = {0};
    char err[512] = "";
    int rc = rn_metadata_create_topic(md, name, parts, -1, keys, values, n, on_done, &d, err,
                                      sizeof(err));
    cr_assert_eq(rc, 0, "create %s: %d %s", name, rc, err);
    wait_all(&d, 1);
    cr_assert_eq(d.fired, 1);
    cr_assert_eq(d.err, 0, "create %s: %d %s", name, d.err, d.msg);
}

static void delete_ok(rn_metadata *md, const char *name)
{
    done d = {0};
    char err[512] = "";
    int rc = rn_metadata_delete_topic(md, name, on_done, &d, err, sizeof(err));
    cr_assert_eq(rc, 0, "delete %s: %d %s", name, rc, err);
    wait_all(&d, 1);
    cr_assert_eq(d.err, 0, "delete %s: %s", name, d.msg);
}

static void alter_ok(rn_metadata *md, const char *name, const char *const *keys,
                     const char *const *values, size_t n_set, const char *const *del, size_t n_del)
{
    done d = {0};
    char err[512] = "";
    int rc = rn_metadata_alter_configs(md, name, keys, values, n_set, del, n_del, on_done, &d, err,
                                       sizeof(err));
    cr_assert_eq(rc, 0, "alter %s: %d %s", name, rc, err);
    wait_all(&d, 1);
    cr_assert_eq(d.err, 0, "alter %s: %s", name, d.msg);
}

/* Create rejected at call time with want; the callback must never run. */
static void create_rejected(rn_metadata *md, const char *name, int32_t parts, int16_t rf,
                            const char *const *keys, const char *const *values, size_t n, int want)
{
    done d = {0};
    char err[512] = "";
    int rc = rn_metadata_create_topic(md, name, parts, rf, keys, values, n, on_done, &d, err,
                                      sizeof(err));
    cr_assert_eq(rc, want, "create %s: got %d (%s), want %d", name ? name : "(null)", rc, err,
                 want);
    cr_assert_neq(err[0], '\0', "no message for %s", name ? name : "(null)");
    cr_assert_eq(d.fired, 0);
}

static const char *config_of(const rn_topic_info *t, const char *key)
{
    for (uint32_t i = 0; i < t->n_configs; i++)
        if (strcmp(t->config_keys[i], key) == 0)
            return t->config_values[i];
    return NULL;
}

static void read_file(const char *path, uint8_t **buf, size_t *len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    cr_assert_eq(pread(fd, *buf, *len, 0), (ssize_t)*len);
    close(fd);
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(pwrite(fd, buf, len, 0), (ssize_t)len);
    close(fd);
}

static void snapshot_path(char *out, size_t len)
{
    snprintf(out, len, "%s/snapshot", md_dir);
}

static uint64_t snapshot_offset_on_disk(void)
{
    char path[256];
    snapshot_path(path, sizeof(path));
    uint8_t *buf;
    size_t len;
    read_file(path, &buf, &len);
    cr_assert_geq(len, 32);
    cr_assert_eq(memcmp(buf, "RNMDSNP1", 8), 0);
    uint64_t off;
    memcpy(&off, buf + 12, 8);
    free(buf);
    return le64toh(off);
}

/* Recompute the trailing XXH3-64 so only the change under test is wrong. */
static void reseal_snapshot(uint8_t *buf, size_t len)
{
    uint64_t sum = htole64(XXH3_64bits(buf, len - 8));
    memcpy(buf + len - 8, &sum, 8);
}

/* Append raw record values as one batch to the metadata log, as another
 * writer (or a corruption) would. */
static void append_raw(const void *const *values, const size_t *lens, size_t n)
{
    rn_log_config lc;
    rn_log_config_default(&lc);
    lc.segment_bytes = 16 << 20;
    lc.max_batch_bytes = 8 << 20;
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, md_dir, "test", &lc, NULL), 0);
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, values[i], lens[i], NULL, 0), 0);
    uint8_t *batch;
    size_t len;
    cr_assert_eq(rn_batch_builder_finish(b, &batch, &len), 0);
    rn_batch_builder_free(b);
    cr_assert_eq(rn_log_append_sync(log, batch, len, 0, NULL), 0);
    free(batch);
    cr_assert_eq(rn_log_close(log), 0);
}

static size_t pack(const Runnel__Metadata__MetadataRecord *r, uint8_t **out)
{
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    *out = malloc(len ? len : 1);
    protobuf_c_message_pack(&r->base, *out);
    return len;
}

/* ---- Creating and finding --------------------------------------------------- */

// Created topics are found by name with one partition record each: this node
// leads, is the only replica and in sync, epoch 0; look-ups are sorted by name.
Test(metadata, create_topics_and_find_them)
{
    rn_metadata *md = open_md();
    cr_assert_eq(rn_metadata_topic_count(md), 0);
    const char *k[] = {"retention.ms"}, *v[] = {"60000"};
    create_ok(md, "orders", 3, k, v, 1);
    create_ok(md, "b.topic_1-x", 1, NULL, NULL, 0);
    create_ok(md, "a", 2, NULL, NULL, 0);

    cr_assert_eq(rn_metadata_topic_count(md), 3);
    cr_assert_str_eq(rn_metadata_topic_at(md, 0)->name, "a");
    cr_assert_str_eq(rn_metadata_topic_at(md, 1)->name, "b.topic_1-x");
    cr_assert_str_eq(rn_metadata_topic_at(md, 2)->name, "orders");
    cr_assert_null(rn_metadata_topic_at(md, 3));
    cr_assert_null(rn_metadata_find(md, "nope"));
    cr_assert_null(rn_metadata_find(md, "order"));

    const rn_topic_info *t = rn_metadata_find(md, "orders");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->name, "orders");
    cr_assert_eq(t->n_partitions, 3);
    cr_assert_eq(t->replication_factor, 1);
    static const uint8_t zero[16];
    cr_assert_neq(memcmp(t->id, zero, 16), 0);
    cr_assert_neq(memcmp(t->id, rn_metadata_find(md, "a")->id, 16), 0);
    for (int32_t p = 0; p < 3; p++) {
        const rn_partition_info *pi = &t->partitions[p];
        cr_assert_eq(pi->partition, p);
        cr_assert_eq(pi->leader, NODE);
        cr_assert_eq(pi->leader_epoch, 0);
        cr_assert_eq(pi->n_replicas, 1);
        cr_assert_eq(pi->replicas[0], NODE);
        cr_assert_eq(pi->n_isr, 1);
        cr_assert_eq(pi->isr[0], NODE);
    }
    cr_assert_eq(t->n_configs, 1);
    cr_assert_str_eq(t->config_keys[0], "retention.ms");
    cr_assert_str_eq(t->config_values[0], "60000");
    /* Three batches: 1+3, 1+1 and 1+2 records. */
    cr_assert_eq(rn_metadata_applied_offset(md), 9);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// A 249-character name is the longest accepted; -1 means replication factor 1.
Test(metadata, longest_name_and_default_replication)
{
    rn_metadata *md = open_md();
    char name[250];
    memset(name, 'n', 249);
    name[249] = '\0';
    create_ok(md, name, 1, NULL, NULL, 0);
    cr_assert_not_null(rn_metadata_find(md, name));
    cr_assert_eq(rn_metadata_find(md, name)->replication_factor, 1);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// Every validation error of create is returned at once, with a message, and
// the callback never runs.
Test(metadata, create_validation_errors)
{
    rn_metadata *md = open_md();
    create_ok(md, "taken", 1, NULL, NULL, 0);
    char long_name[251];
    memset(long_name, 'x', 250);
    long_name[250] = '\0';

    create_rejected(md, NULL, 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, "", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, ".", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, "..", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, "a b", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, "a/b", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, "caf\xc3\xa9", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, long_name, 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    create_rejected(md, "__offsets", 1, 1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);

    create_rejected(md, "p", 0, 1, NULL, NULL, 0, -RN_E_INVALID_PARTITIONS);
    create_rejected(md, "p", -3, 1, NULL, NULL, 0, -RN_E_INVALID_PARTITIONS);
    create_rejected(md, "p", 100001, 1, NULL, NULL, 0, -RN_E_INVALID_PARTITIONS);

    create_rejected(md, "r", 1, 2, NULL, NULL, 0, -RN_E_NOT_ENOUGH_REPLICAS);
    create_rejected(md, "r", 1, 0, NULL, NULL, 0, -RN_E_INVALID_REQUEST);
    create_rejected(md, "r", 1, -2, NULL, NULL, 0, -RN_E_INVALID_REQUEST);

    const char *bad_key[] = {"no.such.setting"}, *bad_key_v[] = {"1"};
    create_rejected(md, "c", 1, 1, bad_key, bad_key_v, 1, -RN_E_INVALID_CONFIG);
    const char *k[] = {"retention.ms"}, *bad_v[] = {"soon"};
    create_rejected(md, "c", 1, 1, k, bad_v, 1, -RN_E_INVALID_CONFIG);
    const char *dup_k[] = {"retention.ms", "retention.ms"}, *dup_v[] = {"1000", "2000"};
    create_rejected(md, "c", 1, 1, dup_k, dup_v, 2, -RN_E_INVALID_CONFIG);
    const char *null_v[] = {NULL};
    create_rejected(md, "c", 1, 1, k, null_v, 1, -RN_E_INVALID_CONFIG);

    create_rejected(md, "taken", 1, 1, NULL, NULL, 0, -RN_E_TOPIC_EXISTS);

    /* A create in flight holds its name before it applies. */
    done d = {0};
    char err[256];
    cr_assert_eq(rn_metadata_create_topic(md, "inflight", 1, 1, NULL, NULL, 0, on_done, &d, err,
                                          sizeof(err)),
                 0);
    cr_assert_null(rn_metadata_find(md, "inflight"));
    create_rejected(md, "inflight", 1, 1, NULL, NULL, 0, -RN_E_TOPIC_EXISTS);
    wait_all(&d, 1);
    cr_assert_eq(d.err, 0);
    cr_assert_not_null(rn_metadata_find(md, "inflight"));

    /* Nothing rejected reached the state. */
    cr_assert_eq(rn_metadata_topic_count(md), 2);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// Delete and alter of unknown topics, of a topic whose delete is in flight,
// and every invalid alter are rejected at once without a callback.
Test(metadata, delete_and_alter_validation_errors)
{
    rn_metadata *md = open_md();
    create_ok(md, "t", 1, NULL, NULL, 0);
    done d = {0};
    char err[256] = "";
    cr_assert_eq(rn_metadata_delete_topic(md, "missing", on_done, &d, err, sizeof(err)),
                 -RN_E_UNKNOWN_TOPIC);
    cr_assert_neq(err[0], '\0');
    cr_assert_eq(rn_metadata_delete_topic(md, NULL, on_done, &d, err, sizeof(err)),
                 -RN_E_UNKNOWN_TOPIC);

    const char *k[] = {"retention.ms"}, *v[] = {"1000"}, *bad_v[] = {"-7x"};
    const char *unknown[] = {"no.such.setting"};
    const char *both[] = {"retention.ms", "retention.ms"}, *both_v[] = {"1", "2"};
    struct {
        const char *topic;
        const char *const *sk, *const *sv;
        size_t ns;
        const char *const *dk;
        size_t nd;
        int want;
    } cases[] = {
        {"missing", k, v, 1, NULL, 0, -RN_E_UNKNOWN_TOPIC},
        {NULL, k, v, 1, NULL, 0, -RN_E_UNKNOWN_TOPIC},
        {"t", unknown, v, 1, NULL, 0, -RN_E_INVALID_CONFIG},
        {"t", k, bad_v, 1, NULL, 0, -RN_E_INVALID_CONFIG},
        {"t", NULL, NULL, 0, unknown, 1, -RN_E_INVALID_CONFIG},
        {"t", both, both_v, 2, NULL, 0, -RN_E_INVALID_CONFIG},
        {"t", NULL, NULL, 0, both, 2, -RN_E_INVALID_CONFIG},
        {"t", k, v, 1, k, 1, -RN_E_INVALID_CONFIG},
        {"t", NULL, NULL, 0, NULL, 0, -RN_E_INVALID_CONFIG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc =
            rn_metadata_alter_configs(md, cases[i].topic, cases[i].sk, cases[i].sv, cases[i].ns,
                                      cases[i].dk, cases[i].nd, on_done, &d, err, sizeof(err));
        cr_assert_eq(rc, cases[i].want, "case %zu: got %d (%s)", i, rc, err);
        cr_assert_neq(err[0], '\0', "case %zu: no message", i);
    }

    /* While a delete is in flight the topic is gone for new changes. */
    done del = {0};
    cr_assert_eq(rn_metadata_delete_topic(md, "t", on_done, &del, err, sizeof(err)), 0);
    cr_assert_not_null(rn_metadata_find(md, "t"));
    cr_assert_eq(rn_metadata_delete_topic(md, "t", on_done, &d, err, sizeof(err)),
                 -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(
        rn_metadata_alter_configs(md, "t", k, v, 1, NULL, 0, on_done, &d, err, sizeof(err)),
        -RN_E_UNKNOWN_TOPIC);
    wait_all(&del, 1);
    cr_assert_eq(del.err, 0);
    cr_assert_null(rn_metadata_find(md, "t"));
    cr_assert_eq(d.fired, 0);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// A topic deleted and created again under the same name is a new topic: new
// id, no configs carried over, and it survives a reopen as the new one.
Test(metadata, create_delete_create_gives_new_id)
{
    rn_metadata *md = open_md();
    const char *k[] = {"retention.ms"}, *v[] = {"1000"};
    create_ok(md, "t", 2, k, v, 1);
    uint8_t first[16];
    memcpy(first, rn_metadata_find(md, "t")->id, 16);
    delete_ok(md, "t");
    cr_assert_null(rn_metadata_find(md, "t"));
    cr_assert_eq(rn_metadata_topic_count(md), 0);
    create_ok(md, "t", 1, NULL, NULL, 0);
    const rn_topic_info *t = rn_metadata_find(md, "t");
    cr_assert_neq(memcmp(t->id, first, 16), 0);
    cr_assert_eq(t->n_partitions, 1);
    cr_assert_eq(t->n_configs, 0);
    uint8_t second[16];
    memcpy(second, t->id, 16);
    cr_assert_eq(rn_metadata_close(md), 0);

    md = open_md();
    t = rn_metadata_find(md, "t");
    cr_assert_not_null(t);
    cr_assert_eq(memcmp(t->id, second, 16), 0);
    cr_assert_eq(t->n_configs, 0);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// Alter sets and deletes topic-level configs (kept sorted by key), and
// rn_topic_log_config applies exactly the current overrides to the defaults.
Test(metadata, alter_configs_set_and_delete)
{
    rn_metadata *md = open_md();
    const char *k0[] = {"segment.bytes"}, *v0[] = {"1048576"};
    create_ok(md, "t", 1, k0, v0, 1);
    const char *k1[] = {"retention.ms", "flush"}, *v1[] = {"5000", "never"};
    alter_ok(md, "t", k1, v1, 2, NULL, 0);

    const rn_topic_info *t = rn_metadata_find(md, "t");
    cr_assert_eq(t->n_configs, 3);
    cr_assert_str_eq(t->config_keys[0], "flush");
    cr_assert_str_eq(t->config_keys[1], "retention.ms");
    cr_assert_str_eq(t->config_keys[2], "segment.bytes");

    rn_log_config defaults, lc;
    rn_log_config_default(&defaults);
    defaults.retention_ms = 123;
    cr_assert_eq(rn_topic_log_config(t, &defaults, &lc), 0);
    cr_assert_eq(lc.retention_ms, 5000);
    cr_assert_eq(lc.flush, RN_FLUSH_NEVER);
    cr_assert_eq(lc.segment_bytes, 1048576);
    cr_assert_eq(lc.retention_bytes, defaults.retention_bytes);

    /* Overwrite one, delete one, delete one that is not set (a no-op). */
    const char *k2[] = {"retention.ms"}, *v2[] = {"7000"};
    const char *d2[] = {"segment.bytes", "retention.bytes"};
    alter_ok(md, "t", k2, v2, 1, d2, 2);
    t = rn_metadata_find(md, "t");
    cr_assert_eq(t->n_configs, 2);
    cr_assert_str_eq(config_of(t, "retention.ms"), "7000");
    cr_assert_null(config_of(t, "segment.bytes"));
    cr_assert_eq(rn_topic_log_config(t, &defaults, &lc), 0);
    cr_assert_eq(lc.retention_ms, 7000);
    cr_assert_eq(lc.segment_bytes, defaults.segment_bytes);
    cr_assert_eq(lc.flush, RN_FLUSH_NEVER);

    /* Back to the broker defaults. */
    const char *d3[] = {"retention.ms", "flush"};
    alter_ok(md, "t", NULL, NULL, 0, d3, 2);
    t = rn_metadata_find(md, "t");
    cr_assert_eq(t->n_configs, 0);
    cr_assert_eq(rn_topic_log_config(t, &defaults, &lc), 0);
    cr_assert_eq(memcmp(&lc, &defaults, sizeof(lc)), 0);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// The listener hears CREATED, CONFIG_CHANGED and DELETED in the order the
// changes applied, each before its change's callback; a change that alters
// nothing is not an event.
Test(metadata, listener_sees_events_in_order)
{
    rn_metadata *md = open_md();
    cr_assert_eq(n_events, 0);
    done d[5] = {{0}};
    char err[256];
    const char *k[] = {"retention.ms", "segment.ms"}, *v[] = {"1000", "5000"};
    const char *del[] = {"retention.bytes"}; /* not set: no change */
    /* All five in flight at once: they apply in submission order. */
    cr_assert_eq(
        rn_metadata_create_topic(md, "a", 2, 1, NULL, NULL, 0, on_done, &d[0], err, sizeof(err)),
        0);
    create_ok(md, "b", 1, NULL, NULL, 0); /* runs d[0] too */
    cr_assert_eq(
        rn_metadata_alter_configs(md, "a", k, v, 2, NULL, 0, on_done, &d[1], err, sizeof(err)), 0);
    cr_assert_eq(
        rn_metadata_alter_configs(md, "b", NULL, NULL, 0, del, 1, on_done, &d[2], err, sizeof(err)),
        0);
    cr_assert_eq(rn_metadata_delete_topic(md, "a", on_done, &d[3], err, sizeof(err)), 0);
    cr_assert_eq(
        rn_metadata_create_topic(md, "c", 1, 1, NULL, NULL, 0, on_done, &d[4], err, sizeof(err)),
        0);
    wait_all(d, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(d[i].err, 0, "change %d: %s", i, d[i].msg);

    struct {
        enum rn_metadata_event_type type;
        const char *name;
    } want[] = {
        {RN_MD_TOPIC_CREATED, "a"}, {RN_MD_TOPIC_CREATED, "b"}, {RN_MD_CONFIG_CHANGED, "a"},
        {RN_MD_TOPIC_DELETED, "a"}, {RN_MD_TOPIC_CREATED, "c"},
    };
    cr_assert_eq(n_events, 5);
    for (unsigned i = 0; i < 5; i++) {
        cr_assert_eq(events[i].type, want[i].type, "event %u", i);
        cr_assert_str_eq(events[i].name, want[i].name, "event %u", i);
    }
    /* The topic is complete when CREATED arrives; one CONFIG_CHANGED for
     * a change of two keys, sent when both are in. */
    cr_assert_eq(events[0].n_partitions, 2);
    cr_assert_eq(events[2].n_configs, 2);
    /* Each callback ran after its own event. */
    cr_assert_eq(d[0].events_before, 1);
    cr_assert_eq(d[1].events_before, 3);
    cr_assert_eq(d[2].events_before, 3);
    cr_assert_eq(d[3].events_before, 4);
    cr_assert_eq(d[4].events_before, 5);
    cr_assert_eq(rn_metadata_close(md), 0);
}

/* ---- Reopening --------------------------------------------------------------- */

static void check_state_after_mix(rn_metadata *md)
{
    cr_assert_eq(rn_metadata_topic_count(md), 2);
    const rn_topic_info *b = rn_metadata_find(md, "b");
    const rn_topic_info *c = rn_metadata_find(md, "c");
    cr_assert_not_null(b);
    cr_assert_not_null(c);
    cr_assert_null(rn_metadata_find(md, "a"));
    cr_assert_eq(b->n_partitions, 4);
    cr_assert_eq(b->partitions[3].leader, NODE);
    cr_assert_str_eq(config_of(b, "retention.ms"), "2000");
    cr_assert_eq(c->n_configs, 0);
}

static void make_mix(rn_metadata *md)
{
    const char *k[] = {"retention.ms"}, *v[] = {"1000"}, *v2[] = {"2000"};
    create_ok(md, "a", 1, NULL, NULL, 0);
    create_ok(md, "b", 4, k, v, 1);
    create_ok(md, "c", 1, k, v, 1);
    delete_ok(md, "a");
    alter_ok(md, "b", k, v2, 1, NULL, 0);
    alter_ok(md, "c", NULL, NULL, 0, k, 1);
}

// Reopening rebuilds the same state (ids included) and tells the listener
// about every live topic once, sorted by name, and never about deleted ones.
Test(metadata, reopen_replays_state)
{
    rn_metadata *md = open_md();
    make_mix(md);
    check_state_after_mix(md);
    uint8_t id_b[16];
    memcpy(id_b, rn_metadata_find(md, "b")->id, 16);
    int64_t applied = rn_metadata_applied_offset(md);
    cr_assert_eq(rn_metadata_close(md), 0);

    for (int round = 0; round < 2; round++) {
        n_events = 0;
        md = open_md();
        check_state_after_mix(md);
        cr_assert_eq(memcmp(rn_metadata_find(md, "b")->id, id_b, 16), 0);
        cr_assert_eq(rn_metadata_applied_offset(md), applied);
        cr_assert_eq(n_events, 2);
        cr_assert_eq(events[0].type, RN_MD_TOPIC_CREATED);
        cr_assert_str_eq(events[0].name, "b");
        cr_assert_eq(events[0].n_partitions, 4);
        cr_assert_str_eq(events[1].name, "c");
        cr_assert_eq(rn_metadata_close(md), 0);
        /* Second round: from the log alone, without the snapshot. */
        char path[256];
        snapshot_path(path, sizeof(path));
        cr_assert_eq(unlink(path), 0);
    }
}

// Changes still in flight at close are completed (callback with 0) and are
// part of the state after reopening.
Test(metadata, close_completes_changes_in_flight)
{
    rn_metadata *md = open_md();
    done d = {0};
    char err[256];
    cr_assert_eq(
        rn_metadata_create_topic(md, "late", 3, 1, NULL, NULL, 0, on_done, &d, err, sizeof(err)),
        0);
    cr_assert_eq(d.fired, 0);
    cr_assert_eq(rn_metadata_close(md), 0);
    cr_assert_eq(d.fired, 1);
    cr_assert_eq(d.err, 0, "%s", d.msg);
    md = open_md();
    cr_assert_not_null(rn_metadata_find(md, "late"));
    cr_assert_eq(rn_metadata_find(md, "late")->n_partitions, 3);
    cr_assert_eq(snapshot_offset_on_disk(), (uint64_t)rn_metadata_applied_offset(md));
    cr_assert_eq(rn_metadata_close(md), 0);
}

/* ---- Snapshots ---------------------------------------------------------------- */

// An older snapshot plus the log records after it rebuild the latest state.
Test(metadata, snapshot_then_tail_replay)
{
    char path[256], saved[256];
    snapshot_path(path, sizeof(path));
    snprintf(saved, sizeof(saved), "%s/saved", dir);
    rn_metadata *md = open_md();
    const char *k[] = {"retention.ms"}, *v[] = {"1000"};
    create_ok(md, "a", 1, NULL, NULL, 0);
    create_ok(md, "b", 4, k, v, 1);
    cr_assert_eq(rn_metadata_close(md), 0);
    uint64_t early = snapshot_offset_on_disk();
    cr_assert_eq(early, 7);
    cr_assert_eq(rename(path, saved), 0);

    md = open_md();
    create_ok(md, "c", 1, k, v, 1);
    delete_ok(md, "a");
    const char *v2[] = {"2000"};
    alter_ok(md, "b", k, v2, 1, NULL, 0);
    alter_ok(md, "c", NULL, NULL, 0, k, 1);
    cr_assert_eq(rn_metadata_close(md), 0);
    cr_assert_gt(snapshot_offset_on_disk(), early);

    cr_assert_eq(rename(saved, path), 0);
    n_events = 0;
    md = open_md();
    check_state_after_mix(md);
    cr_assert_eq(n_events, 2);
    cr_assert_eq(rn_metadata_close(md), 0);
}

/* Write a snapshot by hand: one topic `name` with one partition, covering
 * offset `covers`. */
static void write_handmade_snapshot(const char *name, uint64_t covers)
{
    uint8_t id[16];
    memset(id, 0x5a, 16);
    Runnel__Metadata__TopicRecord tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
    tr.name = (char *)name;
    tr.topic_id.len = 16;
    tr.topic_id.data = id;
    tr.partitions = 1;
    tr.replication_factor = 1;
    Runnel__Metadata__MetadataRecord r1 = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r1.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
    r1.topic = &tr;
    int32_t node = 9;
    Runnel__Metadata__PartitionRecord pr = RUNNEL__METADATA__PARTITION_RECORD__INIT;
    pr.topic_id = tr.topic_id;
    pr.partition = 0;
    pr.n_replicas = 1;
    pr.replicas = &node;
    pr.n_isr = 1;
    pr.isr = &node;
    pr.leader = node;
    pr.leader_epoch = 4;
    Runnel__Metadata__MetadataRecord r2 = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r2.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_PARTITION;
    r2.partition = &pr;

    uint8_t *p1, *p2;
    size_t l1 = pack(&r1, &p1), l2 = pack(&r2, &p2);
    size_t total = 24 + 4 + l1 + 4 + l2 + 8;
    uint8_t *buf = calloc(1, total);
    memcpy(buf, "RNMDSNP1", 8);
    uint32_t u32 = htole32(1);
    memcpy(buf + 8, &u32, 4);
    uint64_t u64 = htole64(covers);
    memcpy(buf + 12, &u64, 8);
    u32 = htole32(2);
    memcpy(buf + 20, &u32, 4);
    u32 = htole32((uint32_t)l1);
    memcpy(buf + 24, &u32, 4);
    memcpy(buf + 28, p1, l1);
    u32 = htole32((uint32_t)l2);
    memcpy(buf + 28 + l1, &u32, 4);
    memcpy(buf + 32 + l1, p2, l2);
    reseal_snapshot(buf, total);
    char path[256];
    snapshot_path(path, sizeof(path));
    write_file(path, buf, total);
    free(p1);
    free(p2);
    free(buf);
}

// A valid snapshot is authoritative below its offset: the log before it is not
// replayed (topics only the log has there do not appear, the snapshot's own
// topic does, with its partition record), the log after it is.
Test(metadata, snapshot_is_used_up_to_its_offset)
{
    rn_metadata *md = open_md();
    create_ok(md, "old", 1, NULL, NULL, 0);
    int64_t covers = rn_metadata_applied_offset(md);
    create_ok(md, "new", 1, NULL, NULL, 0);
    cr_assert_eq(rn_metadata_close(md), 0);

    write_handmade_snapshot("ghost", (uint64_t)covers);
    md = open_md();
    cr_assert_eq(rn_metadata_topic_count(md), 2);
    cr_assert_null(rn_metadata_find(md, "old"));
    cr_assert_not_null(rn_metadata_find(md, "new"));
    const rn_topic_info *g = rn_metadata_find(md, "ghost");
    cr_assert_not_null(g);
    cr_assert_eq(g->partitions[0].leader, 9);
    cr_assert_eq(g->partitions[0].leader_epoch, 4);
    cr_assert_eq(g->partitions[0].isr[0], 9);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// A snapshot whose offset falls inside a batch covers the records below it:
// replay applies only the rest of that batch.
Test(metadata, snapshot_offset_inside_a_batch)
{
    rn_metadata *md = open_md();
    create_ok(md, "old", 1, NULL, NULL, 0); /* offsets 0 (topic) and 1 (partition) */
    cr_assert_eq(rn_metadata_close(md), 0);
    /* The ghost covers offset 0 only: old's TopicRecord is below it and
     * must not apply; old's PartitionRecord names an unknown id: skipped. */
    write_handmade_snapshot("ghost", 1);
    md = open_md();
    cr_assert_eq(rn_metadata_topic_count(md), 1);
    cr_assert_not_null(rn_metadata_find(md, "ghost"));
    cr_assert_eq(rn_metadata_applied_offset(md), 2);
    cr_assert_eq(rn_metadata_close(md), 0);
}

enum corruption { FLIP_BYTE, TRUNCATE, HUGE_COUNT, RECORD_OVERRUN, BEYOND_LOG, BAD_RECORD };

/* Build a state, close (writing a snapshot), damage the snapshot, reopen:
 * the snapshot must be ignored and the full replay give the same state. */
static void corrupt_snapshot_case(enum corruption how)
{
    rn_metadata *md = open_md();
    make_mix(md);
    cr_assert_eq(rn_metadata_close(md), 0);

    char path[256];
    snapshot_path(path, sizeof(path));
    uint8_t *buf;
    size_t len;
    read_file(path, &buf, &len);
    cr_assert_gt(len, 40);
    uint32_t u32;
    uint64_t u64;
    switch (how) {
    case FLIP_BYTE: {
        /* Topic b's name field (tag 1, length 1, "b") becomes "B": still a
         * valid record, so only the checksum can tell. */
        uint8_t *name = memmem(buf, len, "\x0a\x01" /* then */ "b", 3);
        cr_assert_not_null(name);
        name[2] ^= 0x20;
        break;
    }
    case TRUNCATE:
        len -= 13;
        break;
    case HUGE_COUNT:
        u32 = htole32(0xfffffff0u);
        memcpy(buf + 20, &u32, 4);
        reseal_snapshot(buf, len);
        break;
    case RECORD_OVERRUN:
        u32 = htole32(0x7fffffffu);
        memcpy(buf + 24, &u32, 4);
        reseal_snapshot(buf, len);
        break;
    case BEYOND_LOG:
        u64 = htole64(1000000);
        memcpy(buf + 12, &u64, 8);
        reseal_snapshot(buf, len);
        break;
    case BAD_RECORD:
        /* The first record becomes field 1 (topic) with a length of about
         * 2^32: far past the record. */
        buf[28] = 0x0a;
        memset(buf + 29, 0xff, 3);
        buf[32] = 0x0f;
        reseal_snapshot(buf, len);
        break;
    }
    write_file(path, buf, len);
    free(buf);

    n_events = 0;
    md = open_md();
    check_state_after_mix(md);
    cr_assert_eq(n_events, 2);
    cr_assert_eq(rn_metadata_close(md), 0);
    /* Closing replaced the bad snapshot with a good one. */
    md = open_md();
    check_state_after_mix(md);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// A snapshot with one flipped byte fails its checksum and is ignored.
Test(metadata, corrupt_snapshot_flipped_byte)
{
    corrupt_snapshot_case(FLIP_BYTE);
}

// A truncated snapshot is ignored.
Test(metadata, corrupt_snapshot_truncated)
{
    corrupt_snapshot_case(TRUNCATE);
}

// A snapshot whose count claims more records than the file holds is refused,
// even with a valid checksum.
Test(metadata, corrupt_snapshot_huge_count)
{
    corrupt_snapshot_case(HUGE_COUNT);
}

// A record length running past the end is refused, even with a valid checksum.
Test(metadata, corrupt_snapshot_record_overrun)
{
    corrupt_snapshot_case(RECORD_OVERRUN);
}

// A snapshot claiming to cover more than the log holds is not trusted.
Test(metadata, snapshot_beyond_the_log_is_ignored)
{
    corrupt_snapshot_case(BEYOND_LOG);
}

// A snapshot record that does not decode discards the whole snapshot.
Test(metadata, snapshot_record_that_does_not_decode)
{
    corrupt_snapshot_case(BAD_RECORD);
}

// 2000 creates (4000 records) cross the 1000-record snapshot threshold
// several times while open; reopening from the latest snapshot plus the tail
// gives every topic.
Test(metadata, many_changes_cross_snapshot_threshold, .timeout = 120)
{
    enum { N = 2000, WAVE = 250 };
    rn_metadata *md = open_md();
    char path[256];
    snapshot_path(path, sizeof(path));
    static done d[N];
    memset(d, 0, sizeof(d));
    char err[256];
    for (int w = 0; w < N; w += WAVE) {
        for (int i = w; i < w + WAVE; i++) {
            char name[32];
            snprintf(name, sizeof(name), "topic-%05d", i);
            int rc = rn_metadata_create_topic(md, name, 1, 1, NULL, NULL, 0, on_done, &d[i], err,
                                              sizeof(err));
            cr_assert_eq(rc, 0, "%s: %s", name, err);
        }
        wait_all(d + w, WAVE);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(d[i].err, 0, "%d: %s", i, d[i].msg);
    cr_assert_eq(rn_metadata_applied_offset(md), 2 * N);
    cr_assert_eq(rn_metadata_topic_count(md), N);
    /* Written while open, on the threshold: before close. */
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no snapshot after %d records", 2 * N);
    uint64_t covered = snapshot_offset_on_disk();
    cr_assert_geq(covered, 3000);
    cr_assert_leq(covered, 2 * N);
    cr_assert_eq(n_events, N);
    cr_assert_eq(rn_metadata_close(md), 0);
    cr_assert_eq(snapshot_offset_on_disk(), 2 * N);

    n_events = 0;
    md = open_md();
    cr_assert_eq(rn_metadata_topic_count(md), N);
    cr_assert_eq(n_events, N);
    for (unsigned i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "topic-%05u", i);
        cr_assert_str_eq(rn_metadata_topic_at(md, i)->name, name);
        cr_assert_str_eq(events[i].name, name);
    }
    cr_assert_eq(rn_metadata_close(md), 0);
}

// The largest topic (100000 partitions) fits one batch, applies whole, and
// comes back from a snapshot.
Test(metadata, largest_topic_fits_one_batch, .timeout = 120)
{
    rn_metadata *md = open_md();
    create_ok(md, "wide", 100000, NULL, NULL, 0);
    const rn_topic_info *t = rn_metadata_find(md, "wide");
    cr_assert_eq(t->n_partitions, 100000);
    cr_assert_eq(t->partitions[99999].partition, 99999);
    cr_assert_eq(t->partitions[99999].leader, NODE);
    cr_assert_eq(rn_metadata_applied_offset(md), 100001);
    cr_assert_eq(rn_metadata_close(md), 0);
    md = open_md();
    t = rn_metadata_find(md, "wide");
    cr_assert_not_null(t);
    cr_assert_eq(t->n_partitions, 100000);
    cr_assert_eq(t->partitions[99999].isr[0], NODE);
    cr_assert_eq(rn_metadata_close(md), 0);
}

/* ---- The log as input --------------------------------------------------------- */

static void expect_open_fails(const char *needle)
{
    rn_metadata *md = NULL;
    char err[512] = "";
    int rc = rn_metadata_open(&md, io, dir, NODE, listener, NULL, err, sizeof(err));
    cr_assert_eq(rc, -RN_E_CORRUPT_FILE, "open: %d %s", rc, err);
    cr_assert_null(md);
    cr_assert_not_null(strstr(err, needle), "message \"%s\" lacks \"%s\"", err, needle);
    cr_assert_eq(n_events, 0);
}

// A record in the log that does not decode as a MetadataRecord fails open
// with -RN_E_CORRUPT_FILE naming its offset, even with no snapshot to skip it.
Test(metadata, undecodable_record_fails_open)
{
    rn_metadata *md = open_md();
    create_ok(md, "fine", 1, NULL, NULL, 0);
    cr_assert_eq(rn_metadata_close(md), 0);
    static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff}; /* length runs past the end */
    const void *vals[] = {garbage};
    size_t lens[] = {sizeof(garbage)};
    append_raw(vals, lens, 1);
    n_events = 0;
    expect_open_fails("offset 2");
    /* Still fails the second time: nothing was half-applied or rewritten. */
    expect_open_fails("offset 2");
}

// A record of a kind this version does not know fails open too (skipping it
// would build a different state than a newer broker).
Test(metadata, unknown_record_kind_fails_open)
{
    static const uint8_t unknown_field[] = {0xf8, 0x06, 0x01}; /* field 111, varint 1 */
    const void *vals[] = {unknown_field};
    size_t lens[] = {sizeof(unknown_field)};
    cr_assert_eq(mkdir(md_dir, 0755), 0);
    append_raw(vals, lens, 1);
    expect_open_fails("does not know");
}

// A record with a null value in the metadata log fails open.
Test(metadata, null_record_value_fails_open)
{
    cr_assert_eq(mkdir(md_dir, 0755), 0);
    rn_log_config lc;
    rn_log_config_default(&lc);
    rn_log *log;
    cr_assert_eq(rn_log_open(&log, io, md_dir, "test", &lc, NULL), 0);
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    cr_assert_eq(rn_batch_builder_add(b, 1, NULL, 0, NULL, 0, NULL, 0), 0);
    uint8_t *batch;
    size_t len;
    cr_assert_eq(rn_batch_builder_finish(b, &batch, &len), 0);
    rn_batch_builder_free(b);
    cr_assert_eq(rn_log_append_sync(log, batch, len, 0, NULL), 0);
    free(batch);
    cr_assert_eq(rn_log_close(log), 0);
    expect_open_fails("no value");
}

// Records that do not fit the state are skipped the same way on replay: a
// second TopicRecord for a taken name, and a config for an unknown topic id,
// change nothing; the first topic keeps its id.
Test(metadata, replay_skips_records_that_do_not_apply)
{
    rn_metadata *md = open_md();
    create_ok(md, "t", 1, NULL, NULL, 0);
    uint8_t id[16];
    memcpy(id, rn_metadata_find(md, "t")->id, 16);
    cr_assert_eq(rn_metadata_close(md), 0);

    uint8_t other[16];
    memset(other, 0x11, 16);
    Runnel__Metadata__TopicRecord tr = RUNNEL__METADATA__TOPIC_RECORD__INIT;
    tr.name = "t";
    tr.topic_id.len = 16;
    tr.topic_id.data = other;
    tr.partitions = 7;
    tr.replication_factor = 1;
    Runnel__Metadata__MetadataRecord r1 = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r1.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_TOPIC;
    r1.topic = &tr;
    Runnel__Metadata__ConfigRecord cr = RUNNEL__METADATA__CONFIG_RECORD__INIT;
    cr.topic_id = tr.topic_id;
    cr.key = "retention.ms";
    cr.value = "1";
    Runnel__Metadata__MetadataRecord r2 = RUNNEL__METADATA__METADATA_RECORD__INIT;
    r2.record_case = RUNNEL__METADATA__METADATA_RECORD__RECORD_CONFIG;
    r2.config = &cr;
    uint8_t *p1, *p2;
    size_t l1 = pack(&r1, &p1), l2 = pack(&r2, &p2);
    const void *vals[] = {p1, p2};
    size_t lens[] = {l1, l2};
    append_raw(vals, lens, 2);
    free(p1);
    free(p2);
    /* Remove the snapshot so the whole log replays through the same code. */
    char path[256];
    snapshot_path(path, sizeof(path));
    cr_assert_eq(unlink(path), 0);

    md = open_md();
    const rn_topic_info *t = rn_metadata_find(md, "t");
    cr_assert_eq(rn_metadata_topic_count(md), 1);
    cr_assert_eq(memcmp(t->id, id, 16), 0);
    cr_assert_eq(t->n_partitions, 1);
    cr_assert_eq(t->n_configs, 0);
    cr_assert_eq(rn_metadata_applied_offset(md), 4);
    cr_assert_eq(rn_metadata_close(md), 0);
}

/* ---- Adding partitions and caps (issue 11) ---------------------------------- */

static int add_partitions(rn_metadata *md, const char *name, int32_t n, done *d, char *err,
                          size_t errlen)
{
    return rn_metadata_add_partitions(md, name, n, on_done, d, err, errlen);
}

// A topic grows (never shrinks): the new partitions have this node as leader,
// the listener hears PARTITIONS_ADDED with the new count, the id and configs
// stay, and the count survives reopening from the snapshot and from the log.
Test(metadata, add_partitions_grows_and_replays)
{
    rn_metadata *md = open_md();
    const char *k[] = {"retention.ms"}, *v[] = {"1000"};
    create_ok(md, "g", 2, k, v, 1);
    uint8_t id[16];
    memcpy(id, rn_metadata_find(md, "g")->id, 16);
    char err[512] = "";
    done d = {0};
    cr_assert_eq(add_partitions(md, "g", 2, &d, err, sizeof(err)), -RN_E_INVALID_PARTITIONS);
    cr_assert(strstr(err, "only grow"), "%s", err);
    cr_assert_eq(add_partitions(md, "g", 1, &d, err, sizeof(err)), -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(add_partitions(md, "nope", 5, &d, err, sizeof(err)), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(add_partitions(md, "g", 100001, &d, err, sizeof(err)), -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(d.fired, 0);
    n_events = 0;
    cr_assert_eq(add_partitions(md, "g", 5, &d, err, sizeof(err)), 0, "%s", err);
    /* A second grow while the first is in flight counts from 5. */
    done d2 = {0};
    cr_assert_eq(add_partitions(md, "g", 5, &d2, err, sizeof(err)), -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(add_partitions(md, "g", 6, &d2, err, sizeof(err)), 0, "%s", err);
    wait_all(&d, 1);
    wait_all(&d2, 1);
    cr_assert_eq(d.err, 0, "%s", d.msg);
    cr_assert_eq(d2.err, 0, "%s", d2.msg);
    cr_assert_eq(n_events, 2);
    cr_assert_eq(events[0].type, RN_MD_PARTITIONS_ADDED);
    cr_assert_eq(events[0].n_partitions, 5);
    cr_assert_eq(events[1].n_partitions, 6);
    for (int round = 0; round < 3; round++) {
        const rn_topic_info *t = rn_metadata_find(md, "g");
        cr_assert_eq(t->n_partitions, 6);
        cr_assert_eq(memcmp(t->id, id, 16), 0);
        cr_assert_str_eq(config_of(t, "retention.ms"), "1000");
        for (int32_t p = 0; p < 6; p++) {
            cr_assert_eq(t->partitions[p].partition, p);
            cr_assert_eq(t->partitions[p].leader, NODE, "partition %d", p);
            cr_assert_eq(t->partitions[p].n_replicas, 1);
        }
        cr_assert_eq(rn_metadata_close(md), 0);
        if (round == 1) {
            /* Last round from the log alone. */
            char path[256];
            snapshot_path(path, sizeof(path));
            cr_assert_eq(unlink(path), 0);
        }
        md = open_md();
    }
    cr_assert_eq(rn_metadata_close(md), 0);
}

// The caps refuse a create or a grow at call time, counting changes in
// flight, and say which cap.
Test(metadata, partition_caps)
{
    rn_metadata *md = open_md();
    rn_metadata_limits l = {.max_per_topic = 10, .max_total = 15, .fit = 12};
    snprintf(l.fit_why, sizeof(l.fit_why), "RLIMIT_NOFILE test");
    rn_metadata_set_limits(md, &l);
    create_rejected(md, "a", 11, -1, NULL, NULL, 0, -RN_E_INVALID_PARTITIONS);
    done d = {0};
    char err[512] = "";
    cr_assert_eq(
        rn_metadata_create_topic(md, "a", 8, -1, NULL, NULL, 0, on_done, &d, err, sizeof(err)), 0,
        "%s", err);
    /* In flight: 8 counted. 8 + 5 > fit 12. */
    err[0] = 0;
    create_rejected(md, "b", 5, -1, NULL, NULL, 0, -RN_E_INVALID_PARTITIONS);
    wait_all(&d, 1);
    cr_assert_eq(
        rn_metadata_create_topic(md, "b", 5, -1, NULL, NULL, 0, on_done, &d, err, sizeof(err)),
        -RN_E_INVALID_PARTITIONS);
    cr_assert(strstr(err, "RLIMIT_NOFILE test"), "%s", err);
    l.fit = -1;
    rn_metadata_set_limits(md, &l);
    cr_assert_eq(
        rn_metadata_create_topic(md, "b", 8, -1, NULL, NULL, 0, on_done, &d, err, sizeof(err)),
        -RN_E_INVALID_PARTITIONS);
    cr_assert(strstr(err, "max.partitions (15)"), "%s", err);
    cr_assert_eq(add_partitions(md, "a", 11, &d, err, sizeof(err)), -RN_E_INVALID_PARTITIONS);
    cr_assert(strstr(err, "max.partitions.per.topic (10)"), "%s", err);
    cr_assert_eq(rn_metadata_partition_count(md), 8);
    /* What validate_only requests ask: the same answers, nothing written. */
    cr_assert_eq(rn_metadata_check_limits(md, "z", 11, 11, err, sizeof(err)),
                 -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(rn_metadata_check_limits(md, "z", 7, 7, err, sizeof(err)), 0);
    cr_assert_eq(rn_metadata_check_limits(md, "z", 8, 8, err, sizeof(err)),
                 -RN_E_INVALID_PARTITIONS);
    cr_assert_eq(rn_metadata_partition_count(md), 8);
    cr_assert_eq(rn_metadata_close(md), 0);
}

// Names a deleted partition directory wears are refused.
Test(metadata, deleted_mark_not_a_topic_name)
{
    rn_metadata *md = open_md();
    create_rejected(md, "x.deleted-1", 1, -1, NULL, NULL, 0, -RN_E_INVALID_TOPIC);
    cr_assert_eq(rn_metadata_close(md), 0);
}
