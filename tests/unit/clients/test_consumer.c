/*
 * test_consumer.c — rn_consumer against a real runneld: start and seek by
 * offset (also inside a batch), by time and by name; at_end; long-poll that
 * wakes on new data; several partitions; OFFSET_OUT_OF_RANGE with the range in
 * the message; the end of a deleted-and-unknown topic.
 *
 * Records are written with rn_producer (explicit timestamps where time
 * matters) and flushed before the consumer starts, except in the long-poll
 * test where a second thread produces while the consumer waits.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/runnel.h"
#include "harness.h"
#include "protocol/errors.h"

static const int64_t T0 = 1700000000000; /* record timestamps: T0 + 10 * i */

/* Write n records "v<i>" to topic/partition (-1: by key "k<i>"), timestamps T0 + 10 i. */
static void produce(const rt_broker *b, const char *topic, int32_t partition, int first, int n,
                    const char *linger)
{
    rn_conf *conf = rt_conf(b, "linger.ms", linger, NULL);
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    rn_conf_free(conf);
    for (int i = first; i < first + n; i++) {
        char k[16], v[16];
        int kl = snprintf(k, sizeof(k), "k%d", i);
        int vl = snprintf(v, sizeof(v), "v%d", i);
        cr_assert_eq(rn_producer_send(p, topic, partition, k, (size_t)kl, v, (size_t)vl, NULL, 0,
                                      T0 + 10 * i, NULL),
                     0, "%s", rn_producer_errmsg(p));
    }
    cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    rn_producer_close(p);
}

static rn_consumer *new_consumer(const rt_broker *b, const char *max_wait)
{
    rn_conf *conf = rt_conf(b, "fetch.max.wait.ms", max_wait, NULL);
    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    rn_conf_free(conf);
    return c;
}

/* Poll until a message arrives (or 10 s pass); returns it in *m (valid until the next poll). */
static int poll_some(rn_consumer *c, const rn_message **msgs)
{
    int64_t deadline = rt_now_ms() + 10000;
    for (;;) {
        int n = rn_consumer_poll(c, 200, msgs);
        if (n != 0 || rt_now_ms() > deadline)
            return n;
    }
}

static int value_num(const rn_message *m)
{
    char buf[16] = {0};
    cr_assert(m->value_len > 1 && m->value_len < sizeof(buf));
    memcpy(buf, m->value, m->value_len);
    return atoi(buf + 1);
}

// Reading from 0 returns every record once, in offset order; seeking back to an
// offset inside a batch returns exactly from that offset.
Test(consumer, seek_by_offset, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 1);
    produce(&b, "t", 0, 0, 100, "100"); /* lingering: offsets 0..99 in one or few batches */
    rn_consumer *c = new_consumer(&b, "100");
    cr_assert_eq(rn_consumer_assign(c, "t", 0, 0), 0, "%s", rn_consumer_errmsg(c));
    cr_assert_eq(rn_consumer_assign(c, "t", 0, 5), -EEXIST);
    int64_t next = 0;
    while (next < 100) {
        const rn_message *m;
        int n = poll_some(c, &m);
        cr_assert(n > 0, "poll: %d %s", n, rn_consumer_errmsg(c));
        for (int i = 0; i < n; i++, next++) {
            cr_assert_eq(m[i].offset, next);
            cr_assert_eq(value_num(&m[i]), (int)next);
            cr_assert_eq(m[i].timestamp, T0 + 10 * next);
        }
    }
    cr_assert_eq(rn_consumer_position(c, "t", 0), 100);

    cr_assert_eq(rn_consumer_seek(c, "t", 0, 42), 0);
    cr_assert_eq(rn_consumer_position(c, "t", 0), 42);
    const rn_message *m;
    int n = poll_some(c, &m);
    cr_assert(n > 0);
    cr_assert_eq(m[0].offset, 42, "first after seek: %lld", (long long)m[0].offset);
    cr_assert_eq(value_num(&m[0]), 42);
    for (int i = 1; i < n; i++)
        cr_assert_eq(m[i].offset, m[i - 1].offset + 1);

    cr_assert_eq(rn_consumer_seek(c, "t", 0, RN_START_BEGINNING), 0);
    cr_assert_eq(rn_consumer_position(c, "t", 0), 0);
    cr_assert_eq(rn_consumer_seek(c, "t", 0, RN_START_END), 0);
    cr_assert_eq(rn_consumer_position(c, "t", 0), 100);
    cr_assert_eq(rn_consumer_seek(c, "t", 7, 0), -RN_E_UNKNOWN_TOPIC);
    rn_consumer_close(c);
    rt_broker_stop(&b);
}

// Seeking by time lands on the first record at or after the time; past the
// newest record it lands at the end.
Test(consumer, seek_by_time, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 1);
    produce(&b, "t", 0, 0, 50, "0"); /* two batches of 50: seeks land inside them */
    produce(&b, "t", 0, 50, 50, "100");
    rn_consumer *c = new_consumer(&b, "100");
    cr_assert_eq(rn_consumer_assign(c, "t", 0, RN_START_END), 0);
    cr_assert_eq(rn_consumer_seek_time(c, "t", 0, T0 + 125), 0, "%s", rn_consumer_errmsg(c));
    cr_assert_eq(rn_consumer_position(c, "t", 0), 13); /* T0 + 130 is the first >= T0 + 125 */
    const rn_message *m;
    cr_assert(poll_some(c, &m) > 0);
    cr_assert_eq(m[0].offset, 13);
    cr_assert_eq(m[0].timestamp, T0 + 130);

    /* Inside the second, multi-record batch. */
    cr_assert_eq(rn_consumer_seek_time(c, "t", 0, T0 + 700), 0);
    cr_assert(poll_some(c, &m) > 0);
    cr_assert_eq(m[0].offset, 70);
    cr_assert_eq(value_num(&m[0]), 70);

    cr_assert_eq(rn_consumer_seek_time(c, "t", 0, T0 + 100000), 0);
    cr_assert_eq(rn_consumer_position(c, "t", 0), 100);
    cr_assert_eq(rn_consumer_poll(c, 300, &m), 0);
    cr_assert(rn_consumer_at_end(c));
    rn_consumer_close(c);
    rt_broker_stop(&b);
}

// at_end: false before the end is known, true at the end of an empty topic,
// false again when records arrive, true once they are read.
Test(consumer, at_end, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 2);
    rn_consumer *c = new_consumer(&b, "100");
    cr_assert_eq(rn_consumer_assign_topic(c, "t", RN_START_BEGINNING), 0);
    cr_assert_not(rn_consumer_at_end(c)); /* no high watermark seen yet */
    const rn_message *m;
    int64_t deadline = rt_now_ms() + 5000;
    while (!rn_consumer_at_end(c) && rt_now_ms() < deadline)
        cr_assert_eq(rn_consumer_poll(c, 100, &m), 0);
    cr_assert(rn_consumer_at_end(c));
    cr_assert_eq(rn_consumer_high_watermark(c, "t", 0), 0);

    produce(&b, "t", 1, 0, 10, "5");
    size_t got = 0;
    deadline = rt_now_ms() + 5000;
    while (got < 10 && rt_now_ms() < deadline) {
        int n = rn_consumer_poll(c, 100, &m);
        cr_assert(n >= 0);
        got += (size_t)n;
        if (got < 10)
            cr_assert_not(rn_consumer_at_end(c) && rn_consumer_high_watermark(c, "t", 1) == 10);
    }
    cr_assert_eq(got, 10);
    cr_assert(rn_consumer_at_end(c));
    cr_assert_eq(rn_consumer_high_watermark(c, "t", 1), 10);
    cr_assert_eq(rn_consumer_position(c, "t", 1), 10);
    cr_assert_eq(rn_consumer_position(c, "t", 9), -1); /* not assigned */
    rn_consumer_close(c);
    rt_broker_stop(&b);
}

// Every record of every partition is read exactly once with assign_topic.
Test(consumer, all_partitions_once, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 3);
    produce(&b, "t", -1, 0, 600, "5");
    rn_consumer *c = new_consumer(&b, "100");
    cr_assert_eq(rn_consumer_assign_topic(c, "t", RN_START_BEGINNING), 0);
    char seen[600] = {0};
    size_t total = 0;
    int64_t deadline = rt_now_ms() + 10000;
    while (!rn_consumer_at_end(c) && rt_now_ms() < deadline) {
        const rn_message *m;
        int n = rn_consumer_poll(c, 200, &m);
        cr_assert(n >= 0, "%s", rn_consumer_errmsg(c));
        for (int i = 0; i < n; i++) {
            int v = value_num(&m[i]);
            cr_assert(v >= 0 && v < 600);
            cr_assert_not(seen[v], "record %d twice", v);
            seen[v] = 1;
            char key[16];
            int kl = snprintf(key, sizeof(key), "k%d", v);
            cr_assert_eq(m[i].partition, rn_partition_for_key(key, (size_t)kl, 3));
        }
        total += (size_t)n;
    }
    cr_assert_eq(total, 600);
    rn_consumer_close(c);
    rt_broker_stop(&b);
}

typedef struct late {
    const rt_broker *b;
    int delay_ms;
} late;

static void *produce_later(void *arg)
{
    late *l = arg;
    rt_sleep_ms(l->delay_ms);
    produce(l->b, "t", 0, 0, 1, "0");
    return NULL;
}

// A waiting fetch (long-poll) answers as soon as a record arrives, well before
// fetch.max.wait.ms.
Test(consumer, long_poll_wakes_on_data, .timeout = 60)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 1);
    /* A long max wait, so "woke on the record" and "waited it out" stay far
     * apart even on a loaded machine. */
    rn_consumer *c = new_consumer(&b, "30000");
    cr_assert_eq(rn_consumer_assign(c, "t", 0, RN_START_END), 0);
    const rn_message *m;
    cr_assert_eq(rn_consumer_poll(c, 100, &m), 0); /* a fetch is now parked at the broker */
    late l = {&b, 300};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, produce_later, &l), 0);
    int64_t t0 = rt_now_ms();
    int n = rn_consumer_poll(c, 40000, &m);
    int64_t took = rt_now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(n, 1, "poll: %d %s", n, rn_consumer_errmsg(c));
    cr_assert_eq(value_num(&m[0]), 0);
    cr_assert(took < 15000, "record came after %lld ms: the fetch did not wake", (long long)took);
    rn_consumer_close(c);
    rt_broker_stop(&b);
}

// An offset past the end is OFFSET_OUT_OF_RANGE, with the valid range in the
// message; a seek to a valid offset recovers.
Test(consumer, offset_out_of_range, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 1);
    produce(&b, "t", 0, 0, 10, "5");
    rn_consumer *c = new_consumer(&b, "100");
    cr_assert_eq(rn_consumer_assign(c, "t", 0, 1000), 0);
    const rn_message *m;
    int n = poll_some(c, &m);
    cr_assert_eq(n, -RN_E_OFFSET_OUT_OF_RANGE, "poll: %d %s", n, rn_consumer_errmsg(c));
    const char *msg = rn_consumer_errmsg(c);
    /* The last offset held is 9 (it once said "0 to 10", the next offset). */
    cr_assert_str_eq(
        msg,
        "t-0: offset 1000 is out of range: the log holds offsets 0 to 9 (seek to a valid offset)");
    cr_assert_eq(rn_consumer_seek(c, "t", 0, 9), 0);
    n = poll_some(c, &m);
    cr_assert_eq(n, 1);
    cr_assert_eq(m[0].offset, 9);
    rn_consumer_close(c);
    rt_broker_stop(&b);
}

// Assigning a topic or partition the broker does not have fails with UNKNOWN_TOPIC.
Test(consumer, unknown_topic_or_partition, .timeout = 30)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "t", 2);
    rn_consumer *c = new_consumer(&b, "100");
    cr_assert_eq(rn_consumer_assign(c, "nope", 0, 0), -RN_E_UNKNOWN_TOPIC);
    cr_assert(strstr(rn_consumer_errmsg(c), "nope") != NULL, "%s", rn_consumer_errmsg(c));
    cr_assert_eq(rn_consumer_assign(c, "t", 2, 0), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(rn_consumer_assign_topic(c, "nope", 0), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(rn_consumer_position(c, "t", 0), -1);
    rn_consumer_close(c);
    rt_broker_stop(&b);
}
