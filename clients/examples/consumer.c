/*
 * consumer.c — the smallest useful librunnel consumer.
 *
 *   example-consumer [BROKERS [TOPIC]]
 *
 * Reads every partition of TOPIC from the beginning and prints one line per
 * record ("partition/offset key=value"), then exits once it has caught up
 * with the end of every partition (kcat's -e). Shows assign, poll, the
 * lifetime of the messages poll returns, and at_end.
 */
#include <stdio.h>

#include "runnel.h"

int main(int argc, char **argv)
{
    const char *brokers = argc > 1 ? argv[1] : "127.0.0.1:9700";
    const char *topic = argc > 2 ? argv[2] : "example";
    char err[256];

    rn_conf *conf = rn_conf_new();
    if (!conf || rn_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) < 0) {
        fprintf(stderr, "config: %s\n", conf ? err : "out of memory");
        return 1;
    }
    rn_consumer *c;
    int rc = rn_consumer_new(&c, conf);
    rn_conf_free(conf);
    if (rc < 0) {
        fprintf(stderr, "consumer: %s\n", rn_err_str(rc));
        return 1;
    }
    if (rn_consumer_assign_topic(c, topic, RN_START_BEGINNING) < 0) {
        fprintf(stderr, "assign: %s\n", rn_consumer_errmsg(c));
        rn_consumer_close(c);
        return 1;
    }

    long n = 0;
    while (!rn_consumer_at_end(c)) {
        const rn_message *msgs;
        /* Waits up to a second; meanwhile the next fetch is already on its way. */
        int got = rn_consumer_poll(c, 1000, &msgs);
        if (got < 0) {
            fprintf(stderr, "poll: %s\n", rn_consumer_errmsg(c));
            break;
        }
        /* msgs[] and every pointer in it stay valid until the next poll. */
        for (int i = 0; i < got; i++) {
            const rn_message *m = &msgs[i];
            printf("%d/%lld %.*s=%.*s\n", m->partition, (long long)m->offset, (int)m->key_len,
                   m->key ? (const char *)m->key : "", (int)m->value_len,
                   m->value ? (const char *)m->value : "");
        }
        n += got;
    }
    fprintf(stderr, "%ld records\n", n);
    rn_consumer_close(c);
    return 0;
}
