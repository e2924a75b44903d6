/*
 * kafka_load.c — a Kafka load generator on Debian's librdkafka, so that
 * tests/perf/run can put a real Kafka client's throughput against runneld's
 * Kafka-protocol listener next to `runnel bench` against the native one
 * (Debian's librdkafka-dev ships rdkafka_performance.c only as an example
 * that needs librdkafka's private headers, so it does not build from it).
 *
 *   kafka_load produce --brokers H:P --topic T [--size B] [--seconds S]
 *                      [--records N] [--rate R] [--acks 1|all|0] [-X KEY=VALUE]…
 *   kafka_load consume --brokers H:P --topic T --records N [--seconds S]
 *                      [-X KEY=VALUE]…
 *
 * produce: one librdkafka producer (its defaults: linger.ms 5, batches of up
 *   to 1 MB / 10,000 messages, up to 100,000 messages queued; -X changes any
 *   of them) sends B-byte records, spread by librdkafka's partitioner, until
 *   N records were sent or S seconds passed, then waits (bounded) for every
 *   delivery report. A record's latency is from its send (or, with --rate, its
 *   due time on a schedule fixed in advance: open loop, so a stalled broker is
 *   charged the wait) to its delivery report: what an application sees. The
 *   payload is one static buffer handed over without a copy. One record is
 *   sent and delivered before the clock starts (connection and metadata).
 * consume: one consumer assigned every partition of T from the beginning
 *   (no group membership: a group.id only because librdkafka wants one,
 *   nothing committed) reads N records or for S seconds; the time runs from
 *   the first record to the last, so the connection set-up is not in it.
 *
 * Output: one JSON line in the shape of `runnel bench --json` (records,
 * records_per_sec, mb_per_sec = MiB/s of payload, seconds, errors,
 * latency_ms {...}; zeros for consume). Exit status 1 when a record failed
 * or the client could not be set up, 2 on bad arguments. A benchmark, not a
 * test: it asserts nothing about speed.
 */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>

#include "load_common.h"

#define MAX_X 32

static lc_hist hist;
static uint64_t n_delivered, n_failed, bytes_delivered;
static char first_error[256];

static void usage(void)
{
    fprintf(stderr,
            "usage: kafka_load produce --brokers H:P --topic T [--size B] [--seconds S]\n"
            "                          [--records N] [--rate R] [--acks 1|all|0] [-X K=V]...\n"
            "       kafka_load consume --brokers H:P --topic T --records N [--seconds S]\n"
            "                          [-X K=V]...\n");
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_load: %s=%s: %s\n", k, v, errstr);
        return -1;
    }
    return 0;
}

/* Applies "KEY=VALUE" settings after the program's own, so -X wins. */
static int conf_extra(rd_kafka_conf_t *conf, char **x, int n_x)
{
    for (int i = 0; i < n_x; i++) {
        char *eq = strchr(x[i], '=');
        if (!eq) {
            fprintf(stderr, "kafka_load: -X %s: expected KEY=VALUE\n", x[i]);
            return -1;
        }
        *eq = 0;
        int rc = conf_set(conf, x[i], eq + 1);
        *eq = '=';
        if (rc)
            return -1;
    }
    return 0;
}

/* The delivery report of one record: its opaque is its start time in ns. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (!n_failed++)
            snprintf(first_error, sizeof(first_error), "%s", rd_kafka_err2str(m->err));
        return;
    }
    lc_hist_add(&hist, lc_now_ns() - (uint64_t)(uintptr_t)m->_private);
    n_delivered++;
    bytes_delivered += m->len;
}

static int produce(const char *brokers, const char *topic, size_t size, double seconds,
                   uint64_t records, double rate, const char *acks, char **x, int n_x)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", brokers) || conf_set(conf, "acks", acks) ||
        conf_extra(conf, x, n_x)) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_load: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    char *payload = malloc(size ? size : 1);
    if (!payload) {
        rd_kafka_destroy(rk);
        return 1;
    }
    for (size_t i = 0; i < size; i++)
        payload[i] = (char)('A' + i % 26);

    /* One record first, not counted: the connection, metadata and the
     * partition's leader are settled before the clock starts (otherwise an
     * open-loop schedule starts the run behind by the set-up time). */
    rd_kafka_resp_err_t werr = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(payload, size), RD_KAFKA_V_MSGFLAGS(0),
        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)lc_now_ns()), RD_KAFKA_V_END);
    if (werr || rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR || n_failed) {
        fprintf(stderr, "kafka_load: the warm-up record failed: %s\n",
                werr       ? rd_kafka_err2str(werr)
                : n_failed ? first_error
                           : "not delivered in 30 s");
        rd_kafka_destroy(rk);
        free(payload);
        return 1;
    }
    memset(&hist, 0, sizeof(hist));
    n_delivered = bytes_delivered = 0;

    uint64_t t0 = lc_now_ns(), limit = t0 + (uint64_t)(seconds * 1e9), sent = 0;
    int rc = 0;
    while (sent < records) {
        uint64_t now = lc_now_ns(), due = now;
        if (now >= limit)
            break;
        if (rate > 0) {
            due = t0 + (uint64_t)((double)sent * 1e9 / rate);
            if (due > now) {
                rd_kafka_poll(rk, 0);
                if (due - now > 200000) {
                    struct timespec ts = {0, (long)(due - now - 100000)};
                    nanosleep(&ts, NULL);
                }
                continue;
            }
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(payload, size), RD_KAFKA_V_MSGFLAGS(0),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)due), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 1); /* delivery reports free room in the queue */
            continue;
        }
        if (err) {
            fprintf(stderr, "kafka_load: produce: %s\n", rd_kafka_err2str(err));
            rc = 1;
            break;
        }
        sent++;
        if ((sent & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    /* Every report, bounded: what is still queued after 60 s is a failure. */
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka_load: %d records still undelivered after 60 s\n",
                rd_kafka_outq_len(rk));
        rc = 1;
    }
    double secs = (double)(lc_now_ns() - t0) / 1e9;
    if (n_failed) {
        fprintf(stderr, "kafka_load: %llu records failed, the first: %s\n",
                (unsigned long long)n_failed, first_error);
        rc = 1;
    }
    lc_print_json(n_delivered, bytes_delivered, secs, &hist, n_failed);
    rd_kafka_destroy(rk);
    free(payload);
    return rc;
}

static int consume(const char *brokers, const char *topic, double seconds, uint64_t records,
                   char **x, int n_x)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", brokers) || conf_set(conf, "group.id", "kafka_load") ||
        conf_set(conf, "enable.auto.commit", "false") ||
        conf_set(conf, "enable.auto.offset.store", "false") || conf_extra(conf, x, n_x)) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_load: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    int rc = 1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_metadata(rk, 0, rkt, &md, 10000) : rd_kafka_last_error();
    if (err || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
        fprintf(stderr, "kafka_load: metadata of %s: %s\n", topic,
                rd_kafka_err2str(err             ? err
                                 : md->topic_cnt ? md->topics[0].err
                                                 : -1));
        goto out;
    }
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        fprintf(stderr, "kafka_load: assign: %s\n", rd_kafka_err2str(err));
        goto out;
    }
    uint64_t limit = lc_now_ns() + (uint64_t)(seconds * 1e9), first = 0, last = 0, n = 0, bytes = 0,
             errors = 0;
    while (n < records && lc_now_ns() < limit) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err) {
            if (!errors++)
                fprintf(stderr, "kafka_load: consume: %s\n", rd_kafka_message_errstr(m));
        } else {
            last = lc_now_ns();
            if (!n++)
                first = last;
            bytes += m->len;
        }
        rd_kafka_message_destroy(m);
    }
    rc = n < records || errors ? 1 : 0;
    if (n < records)
        fprintf(stderr, "kafka_load: %llu of %llu records within %.0f s\n", (unsigned long long)n,
                (unsigned long long)records, seconds);
    lc_print_json(n, bytes, (double)(last - first) / 1e9, NULL, errors);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *acks = "1";
    long long records = -1, size = 1024;
    double seconds = 10, rate = 0;
    char *x[MAX_X];
    int n_x = 0;
    bool prod = argc >= 2 && !strcmp(argv[1], "produce");
    if (argc < 2 || (!prod && strcmp(argv[1], "consume"))) {
        usage();
        return 2;
    }
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'}, {"topic", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 's'},    {"seconds", required_argument, NULL, 'T'},
        {"records", required_argument, NULL, 'n'}, {"rate", required_argument, NULL, 'r'},
        {"acks", required_argument, NULL, 'a'},    {0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "X:", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'b':
            brokers = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'a':
            acks = optarg;
            break;
        case 's':
            size = strtoll(optarg, &end, 10);
            break;
        case 'n':
            records = strtoll(optarg, &end, 10);
            break;
        case 'T':
            seconds = strtod(optarg, &end);
            break;
        case 'r':
            rate = strtod(optarg, &end);
            break;
        case 'X':
            if (n_x == MAX_X) {
                fprintf(stderr, "kafka_load: at most %d -X settings\n", MAX_X);
                return 2;
            }
            x[n_x++] = optarg;
            break;
        default:
            usage();
            return 2;
        }
        if (end && *end) {
            fprintf(stderr, "kafka_load: --%s %s: not a number\n",
                    ch == 's'   ? "size"
                    : ch == 'n' ? "records"
                    : ch == 'T' ? "seconds"
                                : "rate",
                    optarg);
            return 2;
        }
    }
    if (!brokers || !topic || size < 0 || size > (64 << 20) || seconds <= 0 || rate < 0 ||
        (!prod && records < 1)) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (prod)
        return produce(brokers, topic, (size_t)size, seconds,
                       records < 0 ? UINT64_MAX : (uint64_t)records, rate, acks, x, n_x);
    return consume(brokers, topic, seconds, (uint64_t)records, x, n_x);
}
