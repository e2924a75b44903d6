/*
 * test_producer.c — rn_producer against a real runneld: batching and linger,
 * byte-exact round trips (keys, headers, nulls, zstd), partitioning, acks=0,
 * errors (unknown topic, too large, unreachable broker, connect timeout,
 * delivery timeout), and a broker killed with SIGKILL and restarted mid-stream
 * without losing any acknowledged record.
 *
 * Every test starts its own broker (harness.h) and reads back what it wrote
 * with rn_consumer, so the producer is judged by what the log holds, not by
 * what it reported.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/runnel.h"
#include "clients/testing.h"
#include "harness.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

/* ---- Delivery reports -------------------------------------------------------------- */

/* What the callback saw, indexed by the record number passed as opaque. */
typedef struct reports {
    size_t n, done, failed;
    int64_t *offset;
    int32_t *partition;
    int *err;
    int64_t last_ms; /* when the last report arrived */
} reports;

static void reports_init(reports *r, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    r->offset = calloc(n, sizeof(*r->offset));
    r->partition = calloc(n, sizeof(*r->partition));
    r->err = calloc(n, sizeof(*r->err));
    cr_assert(r->offset && r->partition && r->err);
    for (size_t i = 0; i < n; i++)
        r->offset[i] = -100; /* not reported */
}

static void reports_fini(reports *r)
{
    free(r->offset);
    free(r->partition);
    free(r->err);
}

static void on_delivery(void *arg, int err, const char *topic, int32_t partition, int64_t offset,
                        void *opaque)
{
    reports *r = arg;
    size_t i = (size_t)(uintptr_t)opaque;
    (void)topic;
    cr_assert(i < r->n, "opaque %zu out of range", i);
    cr_assert_eq(r->offset[i], -100, "record %zu reported twice", i);
    r->offset[i] = offset;
    r->partition[i] = partition;
    r->err[i] = err;
    r->done++;
    if (err)
        r->failed++;
    r->last_ms = rt_now_ms();
}

/* The end of a test: its reports freed, its broker stopped. */
static void finish(rt_broker *b, reports *r)
{
    reports_fini(r);
    rt_broker_stop(b);
}

/* ---- Reading back -------------------------------------------------------------------- */

/* Calls visit for every record of topic, from the beginning to the end. */
static size_t consume_all(const rt_broker *b, const char *topic,
                          void (*visit)(const rn_message *m, void *arg), void *arg)
{
    rn_conf *conf = rt_conf(b, "fetch.max.wait.ms", "100", NULL);
    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    rn_conf_free(conf);
    cr_assert_eq(rn_consumer_assign_topic(c, topic, RN_START_BEGINNING), 0, "%s",
                 rn_consumer_errmsg(c));
    size_t n = 0;
    int64_t deadline = rt_now_ms() + 20000;
    while (!rn_consumer_at_end(c)) {
        cr_assert(rt_now_ms() < deadline, "consumer did not reach the end");
        const rn_message *msgs;
        int got = rn_consumer_poll(c, 500, &msgs);
        cr_assert(got >= 0, "poll: %s", rn_consumer_errmsg(c));
        for (int i = 0; i < got; i++)
            visit(&msgs[i], arg);
        n += (size_t)got;
    }
    rn_consumer_close(c);
    return n;
}

static rn_producer *new_producer(rn_conf *conf, reports *r)
{
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, on_delivery, r), 0);
    rn_conf_free(conf);
    return p;
}

/* Send "<prefix><i>" keyless, with i as the opaque. */
static void send_value(rn_producer *p, const char *topic, size_t i, const char *prefix)
{
    char v[64];
    int len = snprintf(v, sizeof(v), "%s%zu", prefix, i);
    int rc =
        rn_producer_send(p, topic, -1, NULL, 0, v, (size_t)len, NULL, 0, 0, (void *)(uintptr_t)i);
    cr_assert_eq(rc, 0, "send %zu: %s", i, rn_producer_errmsg(p));
}

/* send_value for i in [from, to). */
static void send_values(rn_producer *p, const char *topic, size_t from, size_t to,
                        const char *prefix)
{
    for (size_t i = from; i < to; i++)
        send_value(p, topic, i, prefix);
}

/* ---- Batching ---------------------------------------------------------------------------- */

// Many small records sent within linger.ms go out as a few Produce requests, in order.
Test(producer, many_small_records_few_requests, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "t", 1);
    reports r;
    reports_init(&r, 2000);
    rn_producer *p = new_producer(rt_conf(&b, "linger.ms", "200", NULL), &r);
    send_values(p, "t", 0, 2000, "value-");
    cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, 2000);
    cr_assert_eq(r.failed, 0);
    for (size_t i = 0; i < 2000; i++)
        cr_assert_eq(r.offset[i], (int64_t)i, "record %zu at offset %lld", i,
                     (long long)r.offset[i]);
    uint64_t reqs = rn__producer_requests(p);
    cr_assert(reqs >= 1 && reqs <= 5, "%llu requests for 2000 records", (unsigned long long)reqs);
    cr_assert_eq(rn_producer_outstanding(p), 0);
    cr_assert_eq(rn_producer_close(p), 0);
    finish(&b, &r);
}

// A lone record waits linger.ms before it is sent, then is delivered promptly.
Test(producer, linger_respected, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "t", 1);
    reports r;
    reports_init(&r, 1);
    rn_producer *p = new_producer(rt_conf(&b, "linger.ms", "400", NULL), &r);
    int64_t t0 = rt_now_ms();
    send_value(p, "t", 0, "only-");
    while (r.done == 0 && rt_now_ms() - t0 < 5000) {
        cr_assert(rn_producer_poll(p, 20) >= 0);
        if (rn__producer_requests(p) > 0)
            cr_assert(rt_now_ms() - t0 >= 395, "sent after %lld ms, before linger.ms",
                      (long long)(rt_now_ms() - t0));
    }
    cr_assert_eq(r.done, 1);
    cr_assert_eq(r.err[0], 0);
    int64_t took = r.last_ms - t0;
    cr_assert(took >= 395 && took < 3000, "delivered after %lld ms", (long long)took);
    rn_producer_close(p);
    finish(&b, &r);
}

// A batch that reaches batch.size is sent at once, without waiting for linger.ms.
Test(producer, full_batch_sent_before_linger, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "t", 1);
    reports r;
    reports_init(&r, 100);
    rn_producer *p =
        new_producer(rt_conf(&b, "linger.ms", "60000", "batch.size", "2048", NULL), &r);
    char value[100];
    memset(value, 'x', sizeof(value));
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(rn_producer_send(p, "t", -1, NULL, 0, value, sizeof(value), NULL, 0, 0,
                                      (void *)(uintptr_t)i),
                     0);
    int64_t t0 = rt_now_ms();
    while (r.done < 80 && rt_now_ms() - t0 < 5000)
        rn_producer_poll(p, 50);
    /* Full batches went; the last, partial one still lingers. */
    cr_assert(r.done >= 80 && r.done < 100, "%zu delivered", r.done);
    cr_assert(rn__producer_batches(p) >= 5, "%llu batches",
              (unsigned long long)rn__producer_batches(p));
    cr_assert_eq(rn_producer_flush(p, 5000), 0);
    cr_assert_eq(r.done, 100);
    rn_producer_close(p);
    finish(&b, &r);
}

/* ---- Round trips ------------------------------------------------------------------------- */

typedef struct rec {
    int32_t partition;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const rn_header *headers;
    size_t n_headers;
    int64_t timestamp;
} rec;

typedef struct rt_check {
    const rec *recs;
    size_t n;
    reports *r;
    size_t matched;
} rt_check;

static void same_bytes(const void *want, size_t want_len, const void *got, size_t got_len,
                       const char *what, size_t i)
{
    if (!want) {
        cr_assert_null(got, "record %zu: %s should be null", i, what);
        cr_assert_eq(got_len, 0);
        return;
    }
    cr_assert_not_null(got, "record %zu: %s should not be null", i, what);
    cr_assert_eq(got_len, want_len, "record %zu: %s length %zu, want %zu", i, what, got_len,
                 want_len);
    cr_assert(want_len == 0 || memcmp(got, want, want_len) == 0, "record %zu: %s differs", i, what);
}

static void check_rec(const rn_message *m, void *arg)
{
    rt_check *ck = arg;
    for (size_t i = 0; i < ck->n; i++) {
        if (ck->r->partition[i] != m->partition || ck->r->offset[i] != m->offset)
            continue;
        const rec *w = &ck->recs[i];
        cr_assert_str_eq(m->topic, "rt");
        same_bytes(w->key, w->key_len, m->key, m->key_len, "key", i);
        same_bytes(w->value, w->value_len, m->value, m->value_len, "value", i);
        cr_assert_eq(m->timestamp, w->timestamp, "record %zu timestamp", i);
        cr_assert_eq(m->n_headers, w->n_headers, "record %zu header count", i);
        for (size_t h = 0; h < w->n_headers; h++) {
            same_bytes(w->headers[h].name, w->headers[h].name_len, m->headers[h].name,
                       m->headers[h].name_len, "header name", i);
            same_bytes(w->headers[h].value, w->headers[h].value_len, m->headers[h].value,
                       m->headers[h].value_len, "header value", i);
        }
        ck->matched++;
        return;
    }
    cr_assert_fail("unexpected record %d/%lld", m->partition, (long long)m->offset);
}

static void round_trip(const char *codec)
{
    rt_broker b;
    rt_broker_with_topic(&b, "rt", 4);
    static uint8_t bin[256], big[100000];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)i;
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(big); i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (uint8_t)(x >> 16);
    }
    const rn_header h0[] = {
        {"h1", 2, "v1", 2},      {"", 0, "", 0}, /* empty name and empty (not null) value */
        {"bin", 3, "\0\1\2", 3},                 /* bytes with NULs */
        {"nullv", 5, NULL, 0},                   /* null value */
        {"h1", 2, "second", 6},                  /* repeated name */
    };
    const int64_t ts = 1600000000000;
    const rec recs[] = {
        {-1, "k\0ey", 4, bin, sizeof(bin), h0, 5, ts},
        {-1, NULL, 0, NULL, 0, NULL, 0, ts + 1}, /* null key, null value (a tombstone) */
        {-1, "", 0, "", 0, NULL, 0, ts + 2},     /* empty key and value, not null */
        {-1, "abc", 3, big, sizeof(big), h0 + 3, 1, ts + 3},
        {3, "zzz", 3, "to partition 3", 14, NULL, 0, ts + 4},
    };
    size_t n = sizeof(recs) / sizeof(recs[0]);
    reports r;
    reports_init(&r, n);
    rn_producer *p = new_producer(rt_conf(&b, "compression.codec", codec, NULL), &r);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(rn_producer_send(p, "rt", recs[i].partition, recs[i].key, recs[i].key_len,
                                      recs[i].value, recs[i].value_len, recs[i].headers,
                                      recs[i].n_headers, recs[i].timestamp, (void *)(uintptr_t)i),
                     0, "send %zu: %s", i, rn_producer_errmsg(p));
    cr_assert_eq(rn_producer_flush(p, 10000), 0);
    cr_assert_eq(r.failed, 0);
    /* Keyed records went where the partitioner says; the explicit one where it was told. */
    for (size_t i = 0; i < n; i++) {
        if (recs[i].partition >= 0)
            cr_assert_eq(r.partition[i], recs[i].partition);
        else if (recs[i].key)
            cr_assert_eq(r.partition[i], rn_partition_for_key(recs[i].key, recs[i].key_len, 4),
                         "record %zu", i);
    }
    rn_producer_close(p);
    rt_check ck = {recs, n, &r, 0};
    cr_assert_eq(consume_all(&b, "rt", check_rec, &ck), n);
    cr_assert_eq(ck.matched, n);
    finish(&b, &r);
}

// Keys, values and headers (binary, empty, null) come back byte-exact with their timestamps.
Test(producer, keys_headers_nulls_round_trip, .timeout = 30)
{
    round_trip("none");
}

// The same records survive zstd compression byte-exact.
Test(producer, zstd_round_trip_exact, .timeout = 30)
{
    round_trip("zstd");
}

// And gzip, snappy and lz4, the other codecs Kafka's clients write.
Test(producer, gzip_round_trip_exact, .timeout = 30)
{
    round_trip("gzip");
}

Test(producer, snappy_round_trip_exact, .timeout = 30)
{
    round_trip("snappy");
}

Test(producer, lz4_round_trip_exact, .timeout = 30)
{
    round_trip("lz4");
}

typedef struct seq_check {
    size_t next;
} seq_check;

static void check_seq(const rn_message *m, void *arg)
{
    seq_check *s = arg;
    char want[400];
    int len = snprintf(want, sizeof(want), "record %zu: ", s->next);
    while (len < 300)
        len += snprintf(want + len, sizeof(want) - (size_t)len, "padding ");
    cr_assert_eq(m->offset, (int64_t)s->next);
    cr_assert_eq(m->value_len, (size_t)len);
    cr_assert(memcmp(m->value, want, (size_t)len) == 0, "record %zu differs", s->next);
    s->next++;
}

// zstd batches are really compressed on the broker's disk, and read back in order.
Test(producer, zstd_compresses_on_disk, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "z", 1);
    reports r;
    reports_init(&r, 3000);
    rn_producer *p = new_producer(rt_conf(&b, "compression.codec", "zstd", NULL), &r);
    size_t raw = 0;
    for (size_t i = 0; i < 3000; i++) {
        char v[400];
        int len = snprintf(v, sizeof(v), "record %zu: ", i);
        while (len < 300)
            len += snprintf(v + len, sizeof(v) - (size_t)len, "padding ");
        raw += (size_t)len;
        cr_assert_eq(
            rn_producer_send(p, "z", -1, NULL, 0, v, (size_t)len, NULL, 0, 0, (void *)(uintptr_t)i),
            0);
    }
    cr_assert_eq(rn_producer_flush(p, 10000), 0);
    cr_assert_eq(r.failed, 0);
    rn_producer_close(p);
    rn_admin *a = rt_admin(&b);
    rn_topic_desc *d;
    cr_assert_eq(rn_admin_describe_topic(a, "z", &d), 0, "%s", rn_admin_errmsg(a));
    cr_assert(d->partitions[0].size_bytes > 0 && (size_t)d->partitions[0].size_bytes < raw / 5,
              "%lld bytes on disk for %zu raw", (long long)d->partitions[0].size_bytes, raw);
    rn_admin_describe_free(d);
    rn_admin_free(a);
    seq_check s = {0};
    cr_assert_eq(consume_all(&b, "z", check_seq, &s), 3000);
    finish(&b, &r);
}

typedef struct count_parts {
    size_t per[4];
} count_parts;

static void count_part(const rn_message *m, void *arg)
{
    count_parts *c = arg;
    c->per[m->partition]++;
}

// partitioner=roundrobin spreads keyless records exactly evenly.
Test(producer, roundrobin_even, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "rr", 4);
    reports r;
    reports_init(&r, 400);
    rn_producer *p = new_producer(rt_conf(&b, "partitioner", "roundrobin", NULL), &r);
    send_values(p, "rr", 0, 400, "v");
    cr_assert_eq(rn_producer_close(p), 0);
    cr_assert_eq(r.done, 400);
    count_parts c = {{0}};
    cr_assert_eq(consume_all(&b, "rr", count_part, &c), 400);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(c.per[i], 100, "partition %d has %zu", i, c.per[i]);
    finish(&b, &r);
}

static void count_any(const rn_message *m, void *arg)
{
    (void)m;
    (*(size_t *)arg)++;
}

// acks=0 reports each record (offset -1) once written, and the records are in the log.
Test(producer, acks_zero, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "a0", 1);
    reports r;
    reports_init(&r, 50);
    rn_producer *p = new_producer(rt_conf(&b, "acks", "0", NULL), &r);
    send_values(p, "a0", 0, 50, "v");
    cr_assert_eq(rn_producer_close(p), 0);
    cr_assert_eq(r.done, 50);
    cr_assert_eq(r.failed, 0);
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(r.offset[i], -1);
    /* Nothing waits for the broker: poll until it has appended them. */
    size_t n = 0;
    for (int tries = 0; tries < 50 && n < 50; tries++) {
        n = 0;
        consume_all(&b, "a0", count_any, &n);
        if (n < 50)
            rt_sleep_ms(20);
    }
    cr_assert_eq(n, 50);
    finish(&b, &r);
}

/* The batch headers of partition 0 of topic in b's data directory, read
 * straight from the segment file: (producer_id, base_sequence, count). */
static size_t read_batch_headers(const rt_broker *b, const char *topic, int64_t *pids,
                                 int32_t *seqs, int32_t *counts, size_t max)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s-0/00000000000000000000.log", b->data, topic);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = 0;
    uint8_t hdr[RN_BATCH_HEADER_LEN];
    long pos = 0;
    while (n < max && fseek(f, pos, SEEK_SET) == 0 &&
           fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr)) {
        rn_batch_header h;
        if (rn_batch_peek(hdr, sizeof(hdr), 0, &h) < 0)
            break; /* the preallocated zeros after the last batch */
        pids[n] = h.producer_id;
        seqs[n] = h.base_sequence;
        counts[n] = h.records_count;
        n++;
        pos += (long)rn_batch_size(&h);
    }
    fclose(f);
    return n;
}

// With idempotence (the default) every batch carries the producer id and
// consecutive sequences per partition; with it off, no producer fields.
Test(producer, idempotent_batches_carry_sequences, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "i", 1);
    rt_create_topic(&b, "plain", 1);
    reports r;
    reports_init(&r, 30);
    rn_producer *p = new_producer(rt_conf(&b, NULL), &r);
    for (size_t i = 0; i < 30; i++) {
        send_value(p, "i", i, "v");
        if (i % 10 == 9)
            cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    }
    int64_t pid = rn__producer_id(p);
    cr_assert(pid >= 0, "no producer id: %s", rn_producer_errmsg(p));
    rn_producer_close(p);
    int64_t pids[8];
    int32_t seqs[8], counts[8];
    size_t n = read_batch_headers(&b, "i", pids, seqs, counts, 8);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(pids[i], pid);
        cr_assert_eq(counts[i], 10);
        cr_assert_eq(seqs[i], (int32_t)(10 * i), "batch %zu has sequence %d", i, seqs[i]);
    }

    reports_fini(&r);
    reports_init(&r, 5);
    p = new_producer(rt_conf(&b, "enable.idempotence", "false", NULL), &r);
    send_values(p, "plain", 0, 5, "v");
    cr_assert_eq(rn_producer_close(p), 0);
    n = read_batch_headers(&b, "plain", pids, seqs, counts, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(pids[0], -1);
    cr_assert_eq(seqs[0], -1);
    finish(&b, &r);
}

/* ---- Errors ------------------------------------------------------------------------------- */

// Sending to a topic the broker does not have fails at once with UNKNOWN_TOPIC.
Test(producer, unknown_topic, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    reports r;
    reports_init(&r, 1);
    rn_producer *p = new_producer(rt_conf(&b, NULL), &r);
    int rc = rn_producer_send(p, "nope", -1, NULL, 0, "v", 1, NULL, 0, 0, NULL);
    cr_assert_eq(rc, -RN_E_UNKNOWN_TOPIC, "%s", rn_err_name(rc));
    cr_assert(strstr(rn_producer_errmsg(p), "nope") != NULL, "%s", rn_producer_errmsg(p));
    rt_create_topic(&b, "two", 2);
    rc = rn_producer_send(p, "two", 5, NULL, 0, "v", 1, NULL, 0, 0, NULL);
    cr_assert_eq(rc, -RN_E_UNKNOWN_TOPIC, "%s", rn_err_name(rc));
    cr_assert_eq(rn_producer_outstanding(p), 0);
    cr_assert_eq(rn_producer_close(p), 0);
    cr_assert_eq(r.done, 0);
    finish(&b, &r);
}

// A record larger than the topic's max.message.bytes (the broker's 1 MiB
// default here) is refused by send, not by the broker.
Test(producer, record_too_large, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "t", 1);
    rn_producer *p = new_producer(rt_conf(&b, NULL), NULL);
    size_t len = 2u << 20;
    char *v = calloc(1, len);
    cr_assert_not_null(v);
    cr_assert_eq(rn_producer_send(p, "t", -1, NULL, 0, v, len, NULL, 0, 0, NULL),
                 -RN_E_MESSAGE_TOO_LARGE);
    cr_assert(strstr(rn_producer_errmsg(p), "t's max.message.bytes (1048576)") != NULL, "%s",
              rn_producer_errmsg(p));
    free(v);
    rn_producer_close(p);
    rt_broker_stop(&b);
}

// The queue is bounded by bytes too (buffer.memory, Kafka's name): with 64 KiB
// and 1000-byte records held back by linger.ms, send refuses with -ENOBUFS and
// says why once about 64 are queued, long before queue.buffering.max.messages;
// the bytes come back as the records are delivered. A record larger than
// buffer.memory can never be queued: MESSAGE_TOO_LARGE.
Test(producer, queue_bounded_by_buffer_memory, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 1);
    reports r;
    reports_init(&r, 200);
    rn_producer *p =
        new_producer(rt_conf(&b, "buffer.memory", "65536", "linger.ms", "60000", NULL), &r);
    char v[1000];
    memset(v, 'x', sizeof(v));
    size_t sent = 0;
    int rc = 0;
    while (sent < 200) {
        rc =
            rn_producer_send(p, "t", 0, NULL, 0, v, sizeof(v), NULL, 0, 0, (void *)(uintptr_t)sent);
        if (rc < 0)
            break;
        sent++;
    }
    cr_assert_eq(rc, -ENOBUFS, "send %zu: %s", sent, rn_producer_errmsg(p));
    cr_assert(sent >= 50 && sent <= 65, "%zu records of 1000 bytes queued in 64 KiB", sent);
    cr_assert(strstr(rn_producer_errmsg(p), "buffer.memory 65536") != NULL, "%s",
              rn_producer_errmsg(p));
    cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, sent);
    cr_assert_eq(r.failed, 0);
    /* Delivered: the room is back. */
    for (size_t i = 0; i < 40; i++, sent++)
        cr_assert_eq(
            rn_producer_send(p, "t", 0, NULL, 0, v, sizeof(v), NULL, 0, 0, (void *)(uintptr_t)sent),
            0, "send %zu after the flush: %s", sent, rn_producer_errmsg(p));
    char *big = calloc(1, 70000);
    cr_assert_not_null(big);
    cr_assert_eq(rn_producer_send(p, "t", 0, NULL, 0, big, 70000, NULL, 0, 0, NULL),
                 -RN_E_MESSAGE_TOO_LARGE);
    free(big);
    cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, sent);
    cr_assert_eq(rn_producer_close(p), 0);
    reports_fini(&r);
    rt_broker_stop(&b);
}

static void note_len(const rn_message *m, void *arg)
{
    *(size_t *)arg = m->value_len;
}

// The topic's own max.message.bytes rules, learned from Metadata: 4 MiB lets
// a 2 MiB record through to the broker, which stores it; 1000 bytes makes
// the producer close batches small enough and refuse a 2000-byte record.
// message.max.bytes set on the client caps it.
Test(producer, topic_max_message_bytes_rules, .timeout = 60)
{
    rt_broker b;
    rt_broker_start(&b);
    rn_admin *a = rt_admin(&b);
    const char *k[] = {"max.message.bytes"}, *big[] = {"4194304"}, *small[] = {"1000"};
    cr_assert_eq(rn_admin_create_topic(a, "big", 1, 1, k, big, 1), 0, "%s", rn_admin_errmsg(a));
    cr_assert_eq(rn_admin_create_topic(a, "small", 1, 1, k, small, 1), 0, "%s", rn_admin_errmsg(a));
    rn_admin_free(a);

    reports r;
    reports_init(&r, 64);
    rn_producer *p = new_producer(rt_conf(&b, NULL), &r);
    size_t len = 2u << 20;
    char *v = calloc(1, len);
    cr_assert_not_null(v);
    cr_assert_eq(rn_producer_send(p, "big", 0, NULL, 0, v, len, NULL, 0, 0, (void *)(uintptr_t)20),
                 0, "%s", rn_producer_errmsg(p));
    /* Twenty 100-byte records: batches of at most 1000 bytes, all stored. */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(
            rn_producer_send(p, "small", 0, NULL, 0, v, 100, NULL, 0, 0, (void *)(uintptr_t)i), 0,
            "%s", rn_producer_errmsg(p));
    cr_assert_eq(rn_producer_send(p, "small", 0, NULL, 0, v, 2000, NULL, 0, 0, NULL),
                 -RN_E_MESSAGE_TOO_LARGE);
    cr_assert(strstr(rn_producer_errmsg(p), "small's max.message.bytes (1000)") != NULL, "%s",
              rn_producer_errmsg(p));
    cr_assert_eq(rn_producer_flush(p, 20000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, 21);
    cr_assert_eq(r.failed, 0);
    cr_assert_eq(rn_producer_close(p), 0);
    reports_fini(&r);
    size_t got_len = 0;
    cr_assert_eq(consume_all(&b, "big", note_len, &got_len), 1);
    cr_assert_eq(got_len, len);
    cr_assert_eq(consume_all(&b, "small", note_len, &got_len), 20);

    /* Capped on the client: the 2 MiB record is refused before it is sent. */
    p = new_producer(rt_conf(&b, "message.max.bytes", "1048576", NULL), NULL);
    cr_assert_eq(rn_producer_send(p, "big", 0, NULL, 0, v, len, NULL, 0, 0, NULL),
                 -RN_E_MESSAGE_TOO_LARGE);
    cr_assert(strstr(rn_producer_errmsg(p), "set on the client") != NULL, "%s",
              rn_producer_errmsg(p));
    rn_producer_close(p);
    free(v);
    rt_broker_stop(&b);
}

// No broker at the address: a clear "cannot connect" error within connect.timeout.ms.
Test(producer, unreachable_broker_clear_error, .timeout = 30)
{
    uint16_t port = rt_free_port();
    char servers[32], want[96];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", port);
    snprintf(want, sizeof(want), "cannot connect to 127.0.0.1:%u: Connection refused", port);
    rn_conf *conf = rt_conf(NULL, "bootstrap.servers", servers, "connect.timeout.ms", "2000", NULL);

    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    int64_t t0 = rt_now_ms();
    int rc = rn_producer_send(p, "t", -1, NULL, 0, "v", 1, NULL, 0, 0, NULL);
    cr_assert_eq(rc, -ECONNREFUSED, "%s", rn_err_name(rc));
    cr_assert(rt_now_ms() - t0 < 2000);
    cr_assert(strstr(rn_producer_errmsg(p), want) != NULL, "%s", rn_producer_errmsg(p));
    rn_producer_close(p);

    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    t0 = rt_now_ms();
    cr_assert_eq(rn_consumer_assign(c, "t", 0, 0), -ECONNREFUSED);
    cr_assert(rt_now_ms() - t0 < 2000);
    cr_assert(strstr(rn_consumer_errmsg(c), want) != NULL, "%s", rn_consumer_errmsg(c));
    rn_consumer_close(c);

    rn_admin *a;
    cr_assert_eq(rn_admin_new(&a, conf), 0);
    cr_assert_eq(rn_admin_create_topic(a, "t", 1, 1, NULL, NULL, 0), -ECONNREFUSED);
    cr_assert(strstr(rn_admin_errmsg(a), want) != NULL, "%s", rn_admin_errmsg(a));
    rn_admin_free(a);
    rn_conf_free(conf);
}

// A broker that never answers the handshake fails after connect.timeout.ms, not later.
Test(producer, connect_timeout, .timeout = 30)
{
    /* A listener with a full accept queue drops further SYNs: connect hangs. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(l, 0), 0);
    socklen_t alen = sizeof(a);
    getsockname(l, (struct sockaddr *)&a, &alen);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    rt_sleep_ms(100);
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", ntohs(a.sin_port));
    rn_conf *conf = rt_conf(NULL, "bootstrap.servers", servers, "connect.timeout.ms", "500",
                            "socket.timeout.ms", "10000", NULL);
    rn_admin *ad;
    cr_assert_eq(rn_admin_new(&ad, conf), 0);
    char **names;
    size_t n;
    int64_t t0 = rt_now_ms();
    int rc = rn_admin_list_topics(ad, &names, &n);
    int64_t took = rt_now_ms() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "%s: %s", rn_err_name(rc), rn_admin_errmsg(ad));
    cr_assert(took >= 450 && took < 3000, "took %lld ms", (long long)took);
    cr_assert(strstr(rn_admin_errmsg(ad), "cannot connect to 127.0.0.1:") != NULL, "%s",
              rn_admin_errmsg(ad));
    rn_admin_free(ad);
    rn_conf_free(conf);
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(l);
}

// Records that cannot reach a dead broker are reported failed after delivery.timeout.ms.
Test(producer, delivery_timeout_reports_failure, .timeout = 30)
{
    rt_broker b;
    rt_broker_with_topic(&b, "t", 1);
    reports r;
    reports_init(&r, 20);
    rn_producer *p = new_producer(rt_conf(&b, "delivery.timeout.ms", "1000", "retry.backoff.ms",
                                          "50", "reconnect.backoff.ms", "50", NULL),
                                  &r);
    send_value(p, "t", 0, "v");
    cr_assert_eq(rn_producer_flush(p, 5000), 0); /* metadata and connection are up */
    rt_broker_kill(&b, SIGKILL);
    int64_t t0 = rt_now_ms();
    send_values(p, "t", 1, 20, "v");
    cr_assert_eq(rn_producer_flush(p, 10000), 0); /* every record reported */
    int64_t took = rt_now_ms() - t0;
    cr_assert(took >= 900 && took < 5000, "reports after %lld ms", (long long)took);
    cr_assert_eq(r.done, 20);
    cr_assert_eq(r.err[0], 0);
    for (size_t i = 1; i < 20; i++) {
        cr_assert_neq(r.err[i], 0, "record %zu reported delivered by a dead broker", i);
        cr_assert_eq(r.offset[i], -1);
    }
    cr_assert(strstr(rn_producer_errmsg(p), "t-0") != NULL, "%s", rn_producer_errmsg(p));
    rn_producer_close(p);
    finish(&b, &r);
}

/* ---- Crash ------------------------------------------------------------------------------------
 */

typedef struct kill_check {
    reports *r;
    char **by_offset[2]; /* value read at [partition][offset] */
    size_t cap;
} kill_check;

static void note_value(const rn_message *m, void *arg)
{
    kill_check *k = arg;
    cr_assert(m->partition >= 0 && m->partition < 2);
    cr_assert((size_t)m->offset < k->cap, "offset %lld", (long long)m->offset);
    k->by_offset[m->partition][m->offset] = strndup(m->value, m->value_len);
}

// kill -9 of the broker mid-stream, then a restart on the same data: the producer
// finishes, every record it reported delivered is in the log at its offset, none twice.
Test(producer, broker_killed_and_restarted, .timeout = 60)
{
    enum { N = 20000 };
    rt_broker b;
    rt_broker_with_topic(&b, "k", 2);
    reports r;
    reports_init(&r, N);
    rn_producer *p = new_producer(rt_conf(&b, "linger.ms", "2", "retry.backoff.ms", "50",
                                          "reconnect.backoff.ms", "50", "socket.timeout.ms", "5000",
                                          "delivery.timeout.ms", "30000", NULL),
                                  &r);
    for (size_t i = 0; i < N; i++) {
        if (i == 3000)
            cr_assert_eq(rn_producer_flush(p, 10000), 0); /* some are surely acknowledged */
        if (i == 6000) {
            cr_assert(rn_producer_outstanding(p) > 0, "nothing in flight at the kill");
            rt_broker_kill(&b, SIGKILL);
            /* The producer sees its connection die and retries against nothing. */
            int64_t t0 = rt_now_ms();
            while (rt_now_ms() - t0 < 300)
                rn_producer_poll(p, 50);
            /* Retrying, not failing; and records wait for the broker to return. */
            cr_assert_eq(r.failed, 0, "%s", rn_producer_errmsg(p));
            cr_assert(rn_producer_outstanding(p) > 0);
        }
        if (i == 12000)
            rt_broker_restart(&b);
        send_value(p, "k", i, "rec-");
        if (i % 100 == 0)
            rn_producer_poll(p, 0);
    }
    cr_assert_eq(rn_producer_flush(p, 40000), 0, "%s", rn_producer_errmsg(p));
    cr_assert_eq(r.done, N);
    cr_assert_eq(r.failed, 0, "%zu failed: %s", r.failed, rn_producer_errmsg(p));
    rn_producer_close(p);

    kill_check k = {&r, {NULL, NULL}, 2 * N};
    k.by_offset[0] = calloc(k.cap, sizeof(char *));
    k.by_offset[1] = calloc(k.cap, sizeof(char *));
    size_t n = consume_all(&b, "k", note_value, &k);
    /* Idempotence (on by default): retries of batches the dead broker had
     * already stored were answered with their first offset, not stored twice. */
    cr_assert_eq(n, N, "%zu records in the log for %d sent", n, N);
    for (size_t i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "rec-%zu", i);
        cr_assert(r.offset[i] >= 0 && (size_t)r.offset[i] < k.cap, "record %zu at offset %lld", i,
                  (long long)r.offset[i]);
        const char *got = k.by_offset[r.partition[i]][r.offset[i]];
        cr_assert(got && strcmp(got, want) == 0, "record %zu acknowledged at %d/%lld, log has %s",
                  i, r.partition[i], (long long)r.offset[i], got ? got : "nothing");
    }
    for (int pi = 0; pi < 2; pi++) {
        for (size_t o = 0; o < k.cap; o++)
            free(k.by_offset[pi][o]);
        free(k.by_offset[pi]);
    }
    finish(&b, &r);
}
