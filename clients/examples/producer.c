/*
 * producer.c — the smallest useful librunnel producer.
 *
 *   example-producer [BROKERS [TOPIC [COUNT]]]
 *
 * Sends COUNT records ("message N", keyed "key-N % 10") to TOPIC, lets the
 * library batch them (linger.ms, batch.size) and prints a line per failed
 * record and a summary of where the others landed. Shows the three things
 * every producer does: configure, send while polling, flush before exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnel.h"

typedef struct stats {
    long ok, failed;
    long long last_offset;
} stats;

/* Runs inside rn_producer_poll/flush/close, on this thread, once per record. */
static void on_delivery(void *arg, int err, const char *topic, int32_t partition, int64_t offset,
                        void *opaque)
{
    stats *s = arg;
    (void)opaque;
    if (err) {
        s->failed++;
        fprintf(stderr, "record to %s-%d failed: %s\n", topic, partition, rn_err_str(err));
        return;
    }
    s->ok++;
    s->last_offset = offset;
}

int main(int argc, char **argv)
{
    const char *brokers = argc > 1 ? argv[1] : "127.0.0.1:9700";
    const char *topic = argc > 2 ? argv[2] : "example";
    long count = argc > 3 ? atol(argv[3]) : 1000;
    char err[256];

    rn_conf *conf = rn_conf_new();
    if (!conf || rn_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) < 0 ||
        rn_conf_set(conf, "linger.ms", "10", err, sizeof(err)) < 0 ||
        rn_conf_set(conf, "compression.codec", "zstd", err, sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", conf ? err : "out of memory");
        return 1;
    }

    /* The topic must exist: create it if it does not (an error saying it
     * exists is fine). */
    rn_admin *admin;
    if (rn_admin_new(&admin, conf) == 0) {
        int rc = rn_admin_create_topic(admin, topic, 3, 1, NULL, NULL, 0);
        if (rc < 0 && strcmp(rn_err_name(rc), "TOPIC_EXISTS") != 0)
            fprintf(stderr, "create topic: %s\n", rn_admin_errmsg(admin));
        rn_admin_free(admin);
    }

    stats s = {0};
    int failed = 0;
    rn_producer *p;
    int rc = rn_producer_new(&p, conf, on_delivery, &s);
    rn_conf_free(conf); /* the producer took a copy */
    if (rc < 0) {
        fprintf(stderr, "producer: %s\n", rn_err_str(rc));
        return 1;
    }

    for (long i = 0; i < count; i++) {
        char key[32], value[64];
        int klen = snprintf(key, sizeof(key), "key-%ld", i % 10);
        int vlen = snprintf(value, sizeof(value), "message %ld", i);
        rc = rn_producer_send(p, topic, -1, key, (size_t)klen, value, (size_t)vlen, NULL, 0, 0,
                              NULL);
        if (rc == -ENOBUFS) {
            /* The queue is full: let deliveries drain, then try the record again. */
            rn_producer_poll(p, 100);
            i--;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "send: %s\n", rn_producer_errmsg(p));
            failed = 1;
            break;
        }
        /* Poll now and then without waiting: it sends ready batches and runs callbacks. */
        rn_producer_poll(p, 0);
    }

    /* Wait for every record's report before leaving. */
    if (rn_producer_flush(p, -1) < 0)
        fprintf(stderr, "flush: %s\n", rn_producer_errmsg(p));
    rn_producer_close(p);
    printf("%ld delivered, %ld failed, last offset %lld\n", s.ok, s.failed, s.last_offset);
    return failed || s.failed ? 1 : 0;
}
