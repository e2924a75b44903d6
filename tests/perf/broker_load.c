/*
 * broker_load.c — a simple load generator for runneld over loopback.
 *
 *   broker_load --broker 127.0.0.1:9700 [--topic T] [--partitions P]
 *               [--records N] [--record-size B] [--batch-bytes K]
 *               [--acks 1|-1|0] [--inflight W] [--seconds S]
 *
 * Creates the topic (if missing), builds record batches once up front (so the
 * codec is not what is measured), then sends Produce requests pipelined W deep
 * on one connection, round-robin over the partitions, until N records or S
 * seconds; then fetches everything back with pipelined Fetch requests and
 * checks every batch's CRC. Prints records/s, MB/s and produce latency
 * percentiles, and as its last line one JSON object. Not a test: it asserts
 * nothing about speed (DESIGN §10).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "protocol/batch.h"
#include "protocol/errors.h"
#include "protocol/frame.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "broker_load: %s: %s\n", what, rn_strerror(err));
    exit(1);
}

static int connect_to(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
        fprintf(stderr, "broker_load: --broker wants host:port\n");
        exit(2);
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &sa.sin_addr) != 1) {
        fprintf(stderr, "broker_load: bad address %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect", -errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("send", -errno);
        p += n;
        len -= (size_t)n;
    }
}

/* A reader that yields whole frames from the socket. */
typedef struct reader {
    int fd;
    rn_frame_decoder dec;
    uint8_t *buf;
    size_t cap, pos, len;
} reader;

static int read_frame(reader *r, rn_frame *f)
{
    for (;;) {
        if (r->pos < r->len) {
            size_t used = 0;
            int rc = rn_frame_decoder_feed(&r->dec, r->buf + r->pos, r->len - r->pos, &used, f);
            r->pos += used;
            if (rc < 0)
                die("decoding a response", rc);
            if (rc == 1)
                return 0;
        }
        r->pos = r->len = 0;
        ssize_t n = recv(r->fd, r->buf, r->cap, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("recv (broker closed?)", n < 0 ? -errno : -ECONNRESET);
        r->len = (size_t)n;
    }
}

static rn_frame_limits client_limits = {
    .max_request = 1u << 30, .max_header = 64u << 20, .max_entries = 1000000};

static Runnel__ResponseHeader *call(int fd, reader *rd, Runnel__RequestHeader *h, int api,
                                    const void *payload, size_t plen, rn_frame_response *resp)
{
    uint8_t *buf;
    size_t len;
    if (rn_frame_encode_alloc(&h->base, plen, &buf, &len) < 0)
        die("encode", -ENOMEM);
    send_all(fd, buf, len);
    free(buf);
    if (plen)
        send_all(fd, payload, plen);
    rn_frame f;
    read_frame(rd, &f);
    char err[256];
    int rc = rn_frame_response_decode(resp, &f, api, &client_limits, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "broker_load: bad response: %s\n", err);
        exit(1);
    }
    return resp->hdr;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *broker = "127.0.0.1:9700", *topic = "broker-load";
    long partitions = 1, records = 1000000, record_size = 1024, batch_bytes = 65536, acks = 1,
         inflight = 32;
    double seconds = 30;
    static const struct option opts[] = {{"broker", required_argument, NULL, 'b'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"partitions", required_argument, NULL, 'p'},
                                         {"records", required_argument, NULL, 'n'},
                                         {"record-size", required_argument, NULL, 's'},
                                         {"batch-bytes", required_argument, NULL, 'B'},
                                         {"acks", required_argument, NULL, 'a'},
                                         {"inflight", required_argument, NULL, 'w'},
                                         {"seconds", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            broker = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'p':
            partitions = atol(optarg);
            break;
        case 'n':
            records = atol(optarg);
            break;
        case 's':
            record_size = atol(optarg);
            break;
        case 'B':
            batch_bytes = atol(optarg);
            break;
        case 'a':
            acks = atol(optarg);
            break;
        case 'w':
            inflight = atol(optarg);
            break;
        case 'S':
            seconds = atof(optarg);
            break;
        default:
            fprintf(stderr, "usage: broker_load --broker HOST:PORT [--topic T] [--partitions P] "
                            "[--records N] [--record-size B] [--batch-bytes K] [--acks 1|-1] "
                            "[--inflight W] [--seconds S]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (partitions < 1 || records < 1 || record_size < 1 || batch_bytes < record_size ||
        inflight < 1 || inflight > 4096 || (acks != 1 && acks != -1)) {
        fprintf(stderr, "broker_load: bad arguments (acks must be 1 or -1)\n");
        return 2;
    }
    int fd = connect_to(broker);
    reader rd = {.fd = fd, .cap = 4 << 20};
    rd.buf = malloc(rd.cap);
    rn_frame_decoder_init(&rd.dec, &client_limits);
    uint32_t corr = 1;

    /* Create the topic (an existing one is fine). */
    {
        Runnel__NewTopic nt = RUNNEL__NEW_TOPIC__INIT, *ntp = &nt;
        nt.name = (char *)topic;
        nt.num_partitions = (int32_t)partitions;
        nt.replication_factor = 1;
        Runnel__CreateTopicsRequest cr = RUNNEL__CREATE_TOPICS_REQUEST__INIT;
        cr.n_topics = 1;
        cr.topics = &ntp;
        Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
        h.api = RUNNEL__API__CREATE_TOPICS;
        h.correlation_id = corr++;
        h.body_case = RUNNEL__REQUEST_HEADER__BODY_CREATE_TOPICS;
        h.create_topics = &cr;
        rn_frame_response resp;
        Runnel__ResponseHeader *r = call(fd, &rd, &h, RUNNEL__API__CREATE_TOPICS, NULL, 0, &resp);
        uint32_t ec = r->error_code ? r->error_code : r->create_topics->topics[0]->error_code;
        if (ec && ec != RN_E_TOPIC_EXISTS) {
            fprintf(stderr, "broker_load: create topic: %s\n", rn_strerror(-(int)ec));
            return 1;
        }
        rn_frame_response_fini(&resp);
    }

    /* One template batch; each request sends a copy (the broker stamps offsets
     * in its own receive buffer, so the same bytes can be sent again). */
    rn_batch_builder *bb;
    if (rn_batch_builder_new(&bb, NULL) < 0)
        die("builder", -ENOMEM);
    uint8_t *value = malloc((size_t)record_size);
    for (long i = 0; i < record_size; i++)
        value[i] = (uint8_t)('a' + i % 26);
    long per_batch = batch_bytes / (record_size + 8);
    if (per_batch < 1)
        per_batch = 1;
    int64_t ts = (int64_t)time(NULL) * 1000;
    for (long i = 0; i < per_batch; i++)
        rn_batch_builder_add(bb, ts, NULL, 0, value, (size_t)record_size, NULL, 0);
    uint8_t *batch;
    size_t batch_len;
    if (rn_batch_builder_finish(bb, &batch, &batch_len) < 0)
        die("finish batch", -ENOMEM);

    long n_batches = (records + per_batch - 1) / per_batch;
    double *lat = malloc((size_t)n_batches * sizeof(double));
    double *sent_at = calloc(65536, sizeof(double));
    long sent = 0, acked = 0, errors = 0;
    double t0 = now_s(), deadline = t0 + seconds;
    while (acked < sent || (sent < n_batches && now_s() < deadline)) {
        while (sent < n_batches && sent - acked < inflight && now_s() < deadline) {
            Runnel__ProducePartition pp = RUNNEL__PRODUCE_PARTITION__INIT, *ppp = &pp;
            pp.topic = (char *)topic;
            pp.partition = (int32_t)(sent % partitions);
            pp.batch_len = (uint32_t)batch_len;
            Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
            pr.acks = (int32_t)acks;
            pr.n_partitions = 1;
            pr.partitions = &ppp;
            Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
            h.api = RUNNEL__API__PRODUCE;
            h.correlation_id = corr++;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_PRODUCE;
            h.produce = &pr;
            uint8_t hdr[512];
            size_t hl;
            if (rn_frame_encode(&h.base, batch_len, hdr, sizeof(hdr), &hl) < 0)
                die("encode", -ENOBUFS);
            sent_at[h.correlation_id & 0xffff] = now_s();
            send_all(fd, hdr, hl);
            send_all(fd, batch, batch_len);
            sent++;
        }
        if (acked >= sent)
            break;
        rn_frame f;
        read_frame(&rd, &f);
        rn_frame_response resp;
        char err[256];
        if (rn_frame_response_decode(&resp, &f, RUNNEL__API__PRODUCE, &client_limits, err,
                                     sizeof(err)) < 0) {
            fprintf(stderr, "broker_load: bad produce response: %s\n", err);
            return 1;
        }
        Runnel__ResponseHeader *r = resp.hdr;
        if (r->error_code || r->produce->partitions[0]->error_code) {
            if (errors++ == 0)
                fprintf(stderr, "broker_load: produce error: %s\n",
                        r->error_code ? r->error_message
                                      : r->produce->partitions[0]->error_message);
        }
        lat[acked++] = now_s() - sent_at[r->correlation_id & 0xffff];
        rn_frame_response_fini(&resp);
    }
    double t1 = now_s();
    double prod_s = t1 - t0;
    long prod_records = acked * per_batch;
    double prod_mb = (double)acked * (double)batch_len / 1e6;
    qsort(lat, (size_t)acked, sizeof(double), cmp_double);
    double sum = 0;
    for (long i = 0; i < acked; i++)
        sum += lat[i];
#define PCT(p) (acked ? lat[(long)((double)(acked - 1) * (p))] * 1e3 : 0)
    printf("produce: %ld records (%ld batches of %zu bytes, %ld partitions, acks=%ld, %ld in "
           "flight) in %.2f s\n",
           prod_records, acked, batch_len, partitions, acks, inflight, prod_s);
    printf("produce: %.0f records/s, %.1f MB/s, latency ms avg %.2f p50 %.2f p99 %.2f p999 %.2f "
           "max %.2f, errors %ld\n",
           (double)prod_records / prod_s, prod_mb / prod_s, acked ? sum / (double)acked * 1e3 : 0,
           PCT(0.5), PCT(0.99), PCT(0.999), PCT(1.0), errors);

    /* Fetch everything back, pipelined, one partition per request. */
    long fetched_bytes = 0, fetched_records = 0, bad = 0;
    int64_t *next = calloc((size_t)partitions, sizeof(int64_t));
    int64_t *end = calloc((size_t)partitions, sizeof(int64_t));
    for (long p = 0; p < partitions; p++)
        end[p] = acked / partitions * per_batch + (p < acked % partitions ? per_batch : 0);
    double f0 = now_s();
    long outstanding = 0;
    long done_parts = 0;
    bool *inflight_p = calloc((size_t)partitions, sizeof(bool));
    while (done_parts < partitions) {
        for (long p = 0; p < partitions; p++) {
            if (inflight_p[p] || next[p] >= end[p])
                continue;
            Runnel__FetchPartition fp = RUNNEL__FETCH_PARTITION__INIT, *fpp = &fp;
            fp.topic = (char *)topic;
            fp.partition = (int32_t)p;
            fp.fetch_offset = next[p];
            fp.partition_max_bytes = 4 << 20;
            fp.current_leader_epoch = -1;
            Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
            fr.replica_id = -1;
            fr.max_bytes = 8 << 20;
            fr.n_partitions = 1;
            fr.partitions = &fpp;
            Runnel__RequestHeader h = RUNNEL__REQUEST_HEADER__INIT;
            h.api = RUNNEL__API__FETCH;
            h.correlation_id = corr++;
            h.body_case = RUNNEL__REQUEST_HEADER__BODY_FETCH;
            h.fetch = &fr;
            uint8_t hdr[512];
            size_t hl;
            if (rn_frame_encode(&h.base, 0, hdr, sizeof(hdr), &hl) < 0)
                die("encode", -ENOBUFS);
            send_all(fd, hdr, hl);
            inflight_p[p] = true;
            outstanding++;
        }
        if (!outstanding)
            break;
        rn_frame f;
        read_frame(&rd, &f);
        rn_frame_response resp;
        char err[256];
        if (rn_frame_response_decode(&resp, &f, RUNNEL__API__FETCH, &client_limits, err,
                                     sizeof(err)) < 0) {
            fprintf(stderr, "broker_load: bad fetch response: %s\n", err);
            return 1;
        }
        outstanding--;
        Runnel__FetchPartitionResponse *fp = resp.hdr->fetch->partitions[0];
        long p = fp->partition;
        inflight_p[p] = false;
        if (fp->error_code) {
            fprintf(stderr, "broker_load: fetch error: %s\n", rn_strerror(-(int)fp->error_code));
            return 1;
        }
        const uint8_t *d = resp.payload;
        size_t left = resp.payload_len;
        fetched_bytes += (long)left;
        while (left >= RN_BATCH_HEADER_LEN) {
            rn_batch_header bh;
            if (rn_batch_check(d, left, 0, &bh) < 0) {
                bad++;
                break;
            }
            size_t bs = rn_batch_size(&bh);
            fetched_records += bh.records_count;
            next[p] = bh.base_offset + bh.last_offset_delta + 1;
            d += bs;
            left -= bs;
        }
        if (next[p] >= end[p])
            done_parts++;
        rn_frame_response_fini(&resp);
    }
    double fetch_s = now_s() - f0;
    printf("fetch:   %ld records, %.1f MB in %.2f s: %.0f records/s, %.1f MB/s, bad batches %ld\n",
           fetched_records, (double)fetched_bytes / 1e6, fetch_s, (double)fetched_records / fetch_s,
           (double)fetched_bytes / 1e6 / fetch_s, bad);
    printf("{\"produce_records_per_sec\":%.0f,\"produce_mbps\":%.1f,\"produce_p50_ms\":%.3f,"
           "\"produce_p99_ms\":%.3f,\"fetch_records_per_sec\":%.0f,\"fetch_mbps\":%.1f,"
           "\"errors\":%ld,\"bad_batches\":%ld}\n",
           (double)prod_records / prod_s, prod_mb / prod_s, PCT(0.5), PCT(0.99),
           (double)fetched_records / fetch_s, (double)fetched_bytes / 1e6 / fetch_s, errors, bad);
    close(fd);
    return errors || bad ? 1 : 0;
}
