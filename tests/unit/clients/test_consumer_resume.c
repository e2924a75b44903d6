/*
 * test_consumer_resume.c — the consumer's poll over batches cut by max.poll.records:
 * batches cut by max.poll.records are resumed, not decoded again, and every
 * record still comes exactly once, in order, with seeks inside a cut batch
 * and zstd batches (whose decompressed records messages point into).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/runnel.h"
#include "harness.h"
#include "protocol/errors.h"

enum { N = 5000 };

/* n records "v<i>" (padded to 100 bytes) in big batches to partition 0. */
static void produce_big(const rt_broker *b, const char *topic, const char *codec)
{
    rn_conf *conf = rt_conf(b, "linger.ms", "200", "compression.codec", codec, NULL);
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    rn_conf_free(conf);
    for (int i = 0; i < N; i++) {
        char v[100];
        memset(v, 'x', sizeof(v));
        int vl = snprintf(v, sizeof(v), "v%d", i);
        v[vl] = 'x';
        cr_assert_eq(rn_producer_send(p, topic, 0, NULL, 0, v, sizeof(v), NULL, 0, 0, NULL), 0,
                     "%s", rn_producer_errmsg(p));
    }
    cr_assert_eq(rn_producer_flush(p, 10000), 0, "%s", rn_producer_errmsg(p));
    rn_producer_close(p);
}

static int value_num(const rn_message *m)
{
    cr_assert_eq(m->value_len, 100);
    return atoi((const char *)m->value + 1);
}

/* Read from the beginning with max.poll.records 7, seeking back and forth
 * inside batches now and then; check each record against the offset it
 * should be and that a poll's messages stay readable after a seek. */
static void read_cut(const rt_broker *b, const char *topic)
{
    rn_conf *conf = rt_conf(b, "max.poll.records", "7", "fetch.max.wait.ms", "50", NULL);
    rn_consumer *c;
    cr_assert_eq(rn_consumer_new(&c, conf), 0);
    rn_conf_free(conf);
    cr_assert_eq(rn_consumer_assign(c, topic, 0, RN_START_BEGINNING), 0);
    int64_t want = 0;
    int seeks = 0, polls = 0;
    int64_t deadline = rt_now_ms() + 20000;
    while (want < N && rt_now_ms() < deadline) {
        const rn_message *m;
        int n = rn_consumer_poll(c, 200, &m);
        cr_assert_geq(n, 0, "%s", rn_consumer_errmsg(c));
        cr_assert_leq(n, 7);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(m[i].offset, want, "got offset %lld, wanted %lld", (long long)m[i].offset,
                         (long long)want);
            cr_assert_eq(value_num(&m[i]), (int)want);
            want++;
        }
        polls++;
        /* Every 50 polls: back 10 records (inside the batch being cut), and
         * every 130: forward 3; the messages of this poll must stay valid. */
        if (n > 0 && polls % 50 == 0 && want > 10) {
            want -= 10;
            cr_assert_eq(rn_consumer_seek(c, topic, 0, want), 0);
            seeks++;
        } else if (n > 0 && polls % 130 == 0 && want + 3 < N) {
            want += 3;
            cr_assert_eq(rn_consumer_seek(c, topic, 0, want), 0);
            seeks++;
        }
        for (int i = 0; i < n; i++)
            cr_assert_eq(((const char *)m[i].value)[0], 'v'); /* still readable (ASan) */
    }
    cr_assert_eq(want, N, "read up to %lld of %d", (long long)want, N);
    cr_assert_geq(seeks, 10);
    rn_consumer_close(c);
}

// A batch cut by max.poll.records is resumed by the next poll: every record
// comes once, in order, also across seeks inside the cut batch.
Test(consumer, cut_batches_resume, .timeout = 60)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "cut", 1);
    produce_big(&b, "cut", "none");
    read_cut(&b, "cut");
    rt_broker_stop(&b);
}

// The same with zstd batches, whose decompressed records messages point into
// while the batch's iterator is kept from poll to poll.
Test(consumer, cut_zstd_batches_resume, .timeout = 60)
{
    rt_broker b;
    rt_broker_start(&b);
    rt_create_topic(&b, "cutz", 1);
    produce_big(&b, "cutz", "zstd");
    read_cut(&b, "cutz");
    rt_broker_stop(&b);
}
