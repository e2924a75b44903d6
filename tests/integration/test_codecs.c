/*
 * test_codecs.c — batches compressed by a real Kafka client, through a real
 * runneld: produced over the native protocol, stored as produced, read back
 * by a native fetch, by `runnel consume` and by the REST gateway.
 *
 * The batches are the golden files of tests/unit/protocol/data (python3-kafka's
 * DefaultRecordBatchBuilder: gzip, snappy in snappy-java's framing, lz4,
 * zstd), plus a raw-snappy batch (librdkafka's form) compressed here. Each
 * holds 20 records: key "key-<i>" (null for 5 and 6), value
 * ("value-<i> " * 200). The broker validates each on produce (decompressing
 * it under its bound) and stores its bytes unchanged but for the base offset
 * and leader epoch it stamps.
 *
 * The broker's HTTP listener is on a port chosen here; `runnel` is the CLI
 * built with this tree (IT_RUNNEL). Every child process runs under timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

static it_broker B;
static uint16_t http_port;
static char http_arg[32];

static uint16_t pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void setup(void)
{
    http_port = pick_port();
    snprintf(http_arg, sizeof(http_arg), "127.0.0.1:%u", http_port);
    const char *args[] = {"--http", http_arg, NULL};
    itf_start(&B, args);
}

static void teardown(void)
{
    itf_teardown(&B);
}

TestSuite(codecs, .init = setup, .fini = teardown, .timeout = 120);

/* ---- Helpers (as test_validation.c's) ------------------------------------- */

static int http_get(const char *path, char **body)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(http_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    cr_assert_eq(sscanf(buf, "HTTP/1.1 %d", &status), 1, "no status line: %.200s", buf);
    char *start = strstr(buf, "\r\n\r\n");
    *body = strdup(start ? start + 4 : "");
    free(buf);
    return status;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

/* Run `runnel ARGS`; its exit status, stdout and stderr (malloc'd). */
static int run_cli(const char *args, char **out, char **err)
{
    char outp[160], errp[160], cmd[1024];
    snprintf(outp, sizeof(outp), "%s/cli.out", B.root);
    snprintf(errp, sizeof(errp), "%s/cli.err", B.root);
    snprintf(cmd, sizeof(cmd), "timeout 60 %s %s -b 127.0.0.1:%u </dev/null >%s 2>%s", IT_RUNNEL,
             args, B.port, outp, errp);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "%s: status 0x%x", cmd, st);
    *out = slurp(outp, NULL);
    *err = slurp(errp, NULL);
    return WEXITSTATUS(st);
}

/* The golden batch of python3-kafka for codec name (malloc'd). */
static uint8_t *golden(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka_python_%s.bin", GOLDEN_DIR, name);
    return (uint8_t *)slurp(path, len);
}

/* The gzip golden batch's records recompressed as one raw snappy block, the
 * form librdkafka writes. */
static uint8_t *raw_snappy_batch(size_t *len)
{
    size_t glen;
    uint8_t *g = golden("gzip", &glen);
    rn_batch_iter it;
    cr_assert_eq(rn_batch_iter_init(&it, g, glen, 0), 0);
    size_t rlen = (size_t)(it.end - it.pos);
    size_t cap = snappy_max_compressed_length(rlen);
    uint8_t *p = malloc(RN_BATCH_HEADER_LEN + cap);
    memcpy(p, g, RN_BATCH_HEADER_LEN);
    cr_assert_eq(snappy_compress((const char *)it.pos, rlen, (char *)p + RN_BATCH_HEADER_LEN, &cap),
                 SNAPPY_OK);
    rn_batch_iter_fini(&it);
    free(g);
    size_t size = RN_BATCH_HEADER_LEN + cap;
    uint32_t v = (uint32_t)(size - RN_BATCH_LOG_OVERHEAD);
    p[8] = (uint8_t)(v >> 24), p[9] = (uint8_t)(v >> 16), p[10] = (uint8_t)(v >> 8),
    p[11] = (uint8_t)v;
    p[RN_BATCH_OFF_ATTRIBUTES + 1] = RN_BATCH_CODEC_SNAPPY;
    uint32_t crc = rn_crc32c(p + RN_BATCH_CRC_START, size - RN_BATCH_CRC_START);
    p[17] = (uint8_t)(crc >> 24), p[18] = (uint8_t)(crc >> 16), p[19] = (uint8_t)(crc >> 8),
    p[20] = (uint8_t)crc;
    cr_assert_eq(rn_batch_verify(p, size, 0, 0), 0);
    *len = size;
    return p;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- Tests -------------------------------------------------------------------- */

// Each codec's batch, produced over the native protocol, is stored as it
// came (a native fetch returns the same bytes after the stamped header
// fields) and is read by `runnel consume` (20 values, in order) and by a
// REST fetch (200, keys and values).
Test(codecs, kafka_client_batches_produced_consumed_and_fetched_over_rest)
{
    static const char *const names[] = {"gzip", "snappy", "lz4", "zstd", "snappy-raw"};
    it_conn *c = itf_connect(&B);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char topic[32];
        snprintf(topic, sizeof(topic), "c-%s", names[i]);
        itf_create(c, topic, 1, NULL);
        size_t len;
        uint8_t *b = i == 4 ? raw_snappy_batch(&len) : golden(names[i], &len);
        cr_assert_eq(itf_produce(c, topic, 0, b, len), 0, "%s", names[i]);

        it_fetch_part fp = {topic, 0, 0, 0};
        it_resp r;
        cr_assert_eq(it_fetch(c, &fp, 1, NULL, &r), 0);
        const uint8_t *data;
        size_t dlen;
        it_fetch_data(&r, 0, &data, &dlen);
        cr_assert_eq(dlen, len, "%s: one batch, as produced", names[i]);
        cr_assert_eq(
            memcmp(data + RN_BATCH_OFF_MAGIC, b + RN_BATCH_OFF_MAGIC, len - RN_BATCH_OFF_MAGIC), 0,
            "%s: stored as produced", names[i]);
        it_resp_free(&r);
        free(b);

        char args[128], *out, *err;
        snprintf(args, sizeof(args), "consume %s -e -o beginning", topic);
        int st = run_cli(args, &out, &err);
        cr_assert_eq(st, 0, "%s: consume exit %d: %s", names[i], st, err);
        cr_assert_eq(count_lines(out), 20, "%s: %s", names[i], out);
        cr_assert(!strncmp(out, "value-0 value-0 ", 16), "%s: %.40s", names[i], out);
        cr_assert(strstr(out, "value-19 value-19 value-19"), "%s", names[i]);
        free(out);
        free(err);

        char path[128], *body;
        snprintf(path, sizeof(path), "/topics/%s/partitions/0/records?offset=0", topic);
        int status = http_get(path, &body);
        cr_assert_eq(status, 200, "%s: %.300s", names[i], body);
        cr_assert(strstr(body, "key-19") && strstr(body, "value-19 value-19") &&
                      strstr(body, "value-0 value-0"),
                  "%s: %.300s", names[i], body);
        free(body);
    }
    it_conn_close(c);
    itf_stop_clean(&B);
    itf_passed = true;
}
