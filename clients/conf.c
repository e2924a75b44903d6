/*
 * conf.c — rn_conf (the client configuration), error names, the partitioner.
 *
 * A configuration is a plain struct of typed fields (clients/internal.h) with
 * Kafka's key names on the outside. Every key is described once in the table
 * below: its type, where it lives, and its range; rn_conf_set parses and checks
 * a value against that entry, so a value that was accepted is always usable and
 * the handles never re-validate. Defaults are those documented in runnel.h.
 *
 * Keys beyond runnel.h's list (small additions, same spirit):
 *   queue.buffering.max.messages  100000  records queued before send returns -ENOBUFS
 *   buffer.memory                 33554432  bytes of records queued or in flight (each
 *                                         counted at its encoded size's upper bound)
 *                                         before send returns -ENOBUFS; Kafka's name
 *                                         and default
 *   message.max.bytes             unset   largest batch the producer builds; unset,
 *                                         each topic's max.message.bytes as Metadata
 *                                         says (1 MiB from a broker that does not)
 *   max.poll.records              500     messages one rn_consumer_poll returns at most
 *   compression.type              alias of compression.codec (Kafka's name)
 *   enable.idempotence            true    producer ids and sequences, so a retry never
 *                                         stores a batch twice (with acks=all only, as
 *                                         in Kafka; the broker must know InitProducer)
 *   auto.offset.reset             also takes librdkafka's spellings: smallest and
 *                                 beginning (= earliest), largest and end (= latest)
 *
 * group.id is the one key whose default is "none" (NULL): an empty value sets
 * it back to none, so a consumer without a group never sends group requests.
 *
 * The partitioner is XXH3_64(key) % n, the same in every runnel client, so a key
 * lands on the same partition whichever client wrote it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>

#include "clients/internal.h"
#include "protocol/batch.h"
#include "protocol/codec.h"

/* ---- Time --------------------------------------------------------------------- */

int64_t rn__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rn__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Keys --------------------------------------------------------------------- */

enum key_type {
    K_INT,
    K_I64,
    K_BOOL,
    K_STR,
    K_OPT_STR, /* a string whose empty value means none (NULL) */
    K_SERVERS,
    K_ACKS,
    K_CODEC,
    K_PARTITIONER,
    K_RESET,
    K_ASSIGNOR
};

typedef struct key_def {
    const char *name;
    const char *alias;
    enum key_type type;
    size_t off;
    int64_t min, max;
} key_def;

#define F(field) offsetof(struct rn_conf, field)

static const key_def keys[] = {
    {"bootstrap.servers", "metadata.broker.list", K_SERVERS, F(bootstrap_servers), 0, 0},
    {"client.id", NULL, K_STR, F(client_id), 0, 0},
    {"socket.timeout.ms", "request.timeout.ms", K_INT, F(socket_timeout_ms), 10, INT32_MAX},
    {"connect.timeout.ms", "socket.connection.setup.timeout.ms", K_INT, F(connect_timeout_ms), 1,
     INT32_MAX},
    {"reconnect.backoff.ms", NULL, K_INT, F(reconnect_backoff_ms), 0, 3600000},
    {"metadata.max.age.ms", "topic.metadata.refresh.interval.ms", K_INT, F(metadata_max_age_ms), 1,
     INT32_MAX},
    {"acks", "request.required.acks", K_ACKS, F(acks), 0, 0},
    {"linger.ms", "queue.buffering.max.ms", K_INT, F(linger_ms), 0, 900000},
    {"batch.size", NULL, K_INT, F(batch_size), 1, 1 << 20},
    {"compression.codec", "compression.type", K_CODEC, F(codec), 0, 0},
    {"compression.level", NULL, K_INT, F(compression_level), -7, 22},
    {"retries", "message.send.max.retries", K_I64, F(retries), 0, INT64_MAX},
    {"retry.backoff.ms", NULL, K_INT, F(retry_backoff_ms), 0, 300000},
    {"delivery.timeout.ms", "message.timeout.ms", K_INT, F(delivery_timeout_ms), 1, INT32_MAX},
    {"max.in.flight", "max.in.flight.requests.per.connection", K_INT, F(max_in_flight), 1, 1000000},
    {"partitioner", NULL, K_PARTITIONER, F(partitioner), 0, 0},
    {"queue.buffering.max.messages", NULL, K_INT, F(queue_max_messages), 1, INT32_MAX},
    {"buffer.memory", NULL, K_I64, F(buffer_memory), 1, INT64_MAX},
    {"enable.idempotence", NULL, K_BOOL, F(idempotence), 0, 0},
    {"message.max.bytes", NULL, K_INT, F(message_max_bytes), 1000, 1 << 30},
    {"fetch.min.bytes", NULL, K_INT, F(fetch_min_bytes), 0, INT32_MAX},
    {"fetch.max.wait.ms", "fetch.wait.max.ms", K_INT, F(fetch_max_wait_ms), 0, 300000},
    {"fetch.max.bytes", NULL, K_INT, F(fetch_max_bytes), 1024, 1 << 30},
    {"max.partition.fetch.bytes", NULL, K_INT, F(max_partition_fetch_bytes), 1024, 1 << 30},
    {"check.crcs", NULL, K_BOOL, F(check_crcs), 0, 0},
    {"max.poll.records", NULL, K_INT, F(max_poll_records), 1, 1000000},
    {"group.id", NULL, K_OPT_STR, F(group_id), 0, 0},
    {"enable.auto.commit", NULL, K_BOOL, F(enable_auto_commit), 0, 0},
    {"auto.commit.interval.ms", NULL, K_INT, F(auto_commit_interval_ms), 1, 86400000},
    /* The broker's bounds (protocol/frame.c): at most 30 minutes. */
    {"session.timeout.ms", NULL, K_INT, F(session_timeout_ms), 100, 1800000},
    {"heartbeat.interval.ms", NULL, K_INT, F(heartbeat_interval_ms), 10, 3600000},
    {"auto.offset.reset", NULL, K_RESET, F(auto_offset_reset), 0, 0},
    {"partition.assignment.strategy", NULL, K_ASSIGNOR, F(assignor), 0, 0},
};

#undef F

static const key_def *find_key(const char *name)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, name) == 0 || (keys[i].alias && strcmp(keys[i].alias, name) == 0))
            return &keys[i];
    return NULL;
}

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -RN_E_INVALID_CONFIG;
}

/* A whole-string decimal integer. */
static bool parse_i64(const char *s, int64_t *v)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

/* ---- Servers -------------------------------------------------------------------- */

static void free_servers(char **hosts, uint16_t *ports, size_t n)
{
    for (size_t i = 0; hosts && i < n; i++)
        free(hosts[i]);
    free(hosts);
    free(ports);
}

int rn__parse_servers(const char *s, char ***hosts_out, uint16_t **ports_out, size_t *n_out,
                      char *err, size_t errlen)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **hosts = calloc(cap, sizeof(*hosts));
    uint16_t *ports = calloc(cap, sizeof(*ports));
    size_t n = 0;
    int rc = -ENOMEM;
    if (!hosts || !ports)
        goto fail;
    const char *p = s;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (len) {
            /* host:port, the port after the last ':'; "[v6]:port" keeps the brackets out. */
            const char *colon = NULL;
            for (size_t i = len; i-- > 0;)
                if (p[i] == ':') {
                    colon = p + i;
                    break;
                }
            if (!colon || colon == p) {
                rc = bad(err, errlen, "bootstrap.servers: \"%.*s\" is not host:port", (int)len, p);
                goto fail;
            }
            const char *h = p;
            size_t hlen = (size_t)(colon - p);
            if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
                h++;
                hlen -= 2;
            }
            char portbuf[16];
            size_t plen = (size_t)(p + len - colon - 1);
            int64_t port;
            if (plen == 0 || plen >= sizeof(portbuf)) {
                rc = bad(err, errlen, "bootstrap.servers: bad port in \"%.*s\"", (int)len, p);
                goto fail;
            }
            memcpy(portbuf, colon + 1, plen);
            portbuf[plen] = 0;
            if (hlen == 0 || !parse_i64(portbuf, &port) || port < 1 || port > 65535) {
                rc = bad(err, errlen, "bootstrap.servers: bad host or port in \"%.*s\"", (int)len,
                         p);
                goto fail;
            }
            hosts[n] = strndup(h, hlen);
            if (!hosts[n]) {
                rc = -ENOMEM;
                goto fail;
            }
            ports[n++] = (uint16_t)port;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (n == 0) {
        rc = bad(err, errlen, "bootstrap.servers: no server given");
        goto fail;
    }
    *hosts_out = hosts;
    *ports_out = ports;
    *n_out = n;
    return 0;
fail:
    free_servers(hosts, ports, n);
    return rc;
}

/* ---- rn_conf ------------------------------------------------------------------- */

rn_conf *rn_conf_new(void)
{
    rn_conf *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->bootstrap_servers = strdup("127.0.0.1:9700");
    c->client_id = strdup("librunnel");
    if (!c->bootstrap_servers || !c->client_id) {
        rn_conf_free(c);
        return NULL;
    }
    c->socket_timeout_ms = 30000;
    c->connect_timeout_ms = 5000;
    c->reconnect_backoff_ms = 100;
    c->metadata_max_age_ms = 300000; /* Kafka's default: 5 min */
    c->acks = -1;
    c->linger_ms = 5;
    c->batch_size = 262144;
    c->codec = RN_BATCH_CODEC_NONE;
    c->compression_level = 3;
    c->retries = INT32_MAX;
    c->retry_backoff_ms = 100;
    c->delivery_timeout_ms = 120000;
    c->max_in_flight = 5;
    c->partitioner = RN__PARTITIONER_DEFAULT;
    c->queue_max_messages = 100000;
    c->buffer_memory = 33554432; /* Kafka's 32 MiB */
    c->idempotence = true;
    c->message_max_bytes = 0; /* unset: each topic's own limit (producer.c) */
    c->fetch_min_bytes = 1;
    c->fetch_max_wait_ms = 500;
    c->fetch_max_bytes = 52428800;
    c->max_partition_fetch_bytes = 1048576;
    c->check_crcs = true;
    c->max_poll_records = 500;
    c->group_id = NULL;
    c->enable_auto_commit = true;
    c->auto_commit_interval_ms = 5000;
    c->session_timeout_ms = 10000;
    c->heartbeat_interval_ms = 1000;
    c->auto_offset_reset = RN__RESET_EARLIEST;
    c->assignor = RN__ASSIGNOR_STICKY;
    return c;
}

void rn_conf_free(rn_conf *conf)
{
    if (!conf)
        return;
    free(conf->bootstrap_servers);
    free(conf->client_id);
    free(conf->group_id);
    free(conf);
}

rn_conf *rn_conf_dup(const rn_conf *conf)
{
    rn_conf *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *conf;
    c->bootstrap_servers = strdup(conf->bootstrap_servers);
    c->client_id = strdup(conf->client_id);
    c->group_id = conf->group_id ? strdup(conf->group_id) : NULL;
    if (!c->bootstrap_servers || !c->client_id || (conf->group_id && !c->group_id)) {
        rn_conf_free(c);
        return NULL;
    }
    return c;
}

static int set_string(char **slot, const char *value)
{
    char *s = strdup(value);
    if (!s)
        return -ENOMEM;
    free(*slot);
    *slot = s;
    return 0;
}

int rn_conf_set(rn_conf *conf, const char *key, const char *value, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!key || !value)
        return bad(err, errlen, "key and value must not be NULL");
    const key_def *k = find_key(key);
    if (!k)
        return bad(err, errlen, "unknown configuration key \"%s\"", key);
    char *field = (char *)conf + k->off;
    int64_t v;
    switch (k->type) {
    case K_INT:
    case K_I64:
        if (!parse_i64(value, &v))
            return bad(err, errlen, "%s: \"%s\" is not an integer", k->name, value);
        if (v < k->min || v > k->max)
            return bad(err, errlen, "%s: %s is out of range [%lld, %lld]", k->name, value,
                       (long long)k->min, (long long)k->max);
        if (k->type == K_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = v;
        return 0;
    case K_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes"))
            *(bool *)field = true;
        else if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no"))
            *(bool *)field = false;
        else
            return bad(err, errlen, "%s: \"%s\" is not true or false", k->name, value);
        if (field == (char *)&conf->idempotence)
            conf->idempotence_set = true;
        return 0;
    case K_STR:
        return set_string((char **)field, value);
    case K_OPT_STR:
        if (!*value) {
            free(*(char **)field);
            *(char **)field = NULL;
            return 0;
        }
        return set_string((char **)field, value);
    case K_SERVERS: {
        char **hosts;
        uint16_t *ports;
        size_t n;
        int rc = rn__parse_servers(value, &hosts, &ports, &n, err, errlen);
        if (rc < 0)
            return rc;
        free_servers(hosts, ports, n);
        return set_string((char **)field, value);
    }
    case K_ACKS:
        if (!strcmp(value, "all") || !strcmp(value, "-1"))
            *(int *)field = -1;
        else if (!strcmp(value, "1"))
            *(int *)field = 1;
        else if (!strcmp(value, "0"))
            *(int *)field = 0;
        else
            return bad(err, errlen, "acks: \"%s\" is not all, -1, 1 or 0", value);
        return 0;
    case K_CODEC:
        if ((*(int *)field = rn_codec_parse(value)) < 0)
            return bad(err, errlen, "%s: \"%s\" is not none, gzip, snappy, lz4 or zstd", k->name,
                       value);
        return 0;
    case K_PARTITIONER:
        if (!strcmp(value, "default"))
            *(int *)field = RN__PARTITIONER_DEFAULT;
        else if (!strcmp(value, "roundrobin"))
            *(int *)field = RN__PARTITIONER_ROUNDROBIN;
        else
            return bad(err, errlen, "partitioner: \"%s\" is not default or roundrobin", value);
        return 0;
    case K_RESET:
        if (!strcmp(value, "earliest") || !strcmp(value, "smallest") || !strcmp(value, "beginning"))
            *(int *)field = RN__RESET_EARLIEST;
        else if (!strcmp(value, "latest") || !strcmp(value, "largest") || !strcmp(value, "end"))
            *(int *)field = RN__RESET_LATEST;
        else
            return bad(err, errlen, "auto.offset.reset: \"%s\" is not earliest or latest", value);
        return 0;
    case K_ASSIGNOR:
        if (!strcmp(value, "sticky"))
            *(int *)field = RN__ASSIGNOR_STICKY;
        else if (!strcmp(value, "range"))
            *(int *)field = RN__ASSIGNOR_RANGE;
        else
            return bad(err, errlen, "partition.assignment.strategy: \"%s\" is not sticky or range",
                       value);
        return 0;
    }
    return bad(err, errlen, "%s: unhandled type", key);
}

/* ---- Errors ---------------------------------------------------------------------- */

const char *rn_err_str(int err)
{
    return rn_strerror(err);
}

const char *rn_err_name(int err)
{
    return rn_errname(err);
}

bool rn__retriable(int err)
{
    switch (err) {
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EPIPE:
    case -ETIMEDOUT:
    case -ENOTCONN:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ENETDOWN:
    case -EAGAIN:
    case -RN_E_TIMEOUT:
    case -RN_E_NOT_LEADER:
    case -RN_E_UNKNOWN_TOPIC:
    case -RN_E_STORAGE_ERROR:
    case -RN_E_NOT_ENOUGH_REPLICAS:
    /* Appended, but the ISR shrank before it was replicated: retriable as in
     * Kafka's clients. The idempotent producer retries it under the same
     * sequence (it is in doubt), so the leader answers a duplicate, not a
     * second copy. */
    case -RN_E_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    /* A new leader's high watermark still short of its epoch (KIP-207). */
    case -RN_E_OFFSET_NOT_AVAILABLE:
    case -RN_E_FENCED_LEADER_EPOCH:
    case -RN_E_UNKNOWN_LEADER_EPOCH:
    case -RN_E_SHUTTING_DOWN:
    case -RN_E_NOT_COORDINATOR:
    case -RN_E_COORDINATOR_NOT_AVAILABLE:
    case -RN_E_COORDINATOR_LOAD_IN_PROGRESS:
        return true;
    default:
        return false;
    }
}

bool rn__needs_metadata(int err)
{
    if (err == -RN_E_NOT_LEADER || err == -RN_E_UNKNOWN_TOPIC || err == -RN_E_FENCED_LEADER_EPOCH ||
        err == -RN_E_UNKNOWN_LEADER_EPOCH || err == -RN_E_SHUTTING_DOWN)
        return true;
    /* Any transport failure: the broker may have moved or died. */
    return err < 0 && !rn_is_rn_error(err) && err != -ENOMEM;
}

/* ---- Partitioner ------------------------------------------------------------------ */

int32_t rn_partition_for_key(const void *key, size_t key_len, int32_t n)
{
    if (n <= 0)
        return -1;
    uint64_t h = XXH3_64bits(key_len ? key : "", key_len);
    return (int32_t)(h % (uint64_t)n);
}
