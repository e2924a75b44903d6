/*
 * test_conf.c — rn_conf: defaults, parsing and range checks of every kind of
 * key, copies, and the error names; no broker needed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clients/internal.h"
#include "clients/runnel.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

static rn_conf *conf;
static char err[256];

static void setup(void)
{
    conf = rn_conf_new();
    cr_assert_not_null(conf);
}

static void teardown(void)
{
    rn_conf_free(conf);
}

TestSuite(conf, .init = setup, .fini = teardown);

// Every key documented in runnel.h is accepted with a valid value.
Test(conf, documented_keys_accepted)
{
    const char *kv[][2] = {
        {"bootstrap.servers", "a:1,b:2,[::1]:9700"},
        {"client.id", "x"},
        {"socket.timeout.ms", "1000"},
        {"connect.timeout.ms", "100"},
        {"reconnect.backoff.ms", "10"},
        {"acks", "all"},
        {"acks", "-1"},
        {"acks", "0"},
        {"acks", "1"},
        {"linger.ms", "0"},
        {"batch.size", "1048576"},
        {"compression.codec", "zstd"},
        {"compression.codec", "none"},
        {"compression.level", "9"},
        {"retries", "0"},
        {"retry.backoff.ms", "5"},
        {"delivery.timeout.ms", "1000"},
        {"max.in.flight", "1"},
        {"partitioner", "roundrobin"},
        {"partitioner", "default"},
        {"fetch.min.bytes", "0"},
        {"fetch.max.wait.ms", "10"},
        {"fetch.max.bytes", "1048576"},
        {"max.partition.fetch.bytes", "65536"},
        {"check.crcs", "false"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        cr_assert_eq(rn_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)), 0, "%s=%s: %s",
                     kv[i][0], kv[i][1], err);
}

// Unknown keys and bad values are refused with INVALID_CONFIG and a message naming the key.
Test(conf, bad_input_refused)
{
    const char *kv[][2] = {
        {"no.such.key", "1"},
        {"linger.ms", "-1"},
        {"linger.ms", "12x"},
        {"linger.ms", ""},
        {"batch.size", "2000000"},
        {"acks", "2"},
        {"compression.codec", "brotli"},
        {"check.crcs", "maybe"},
        {"partitioner", "murmur"},
        {"bootstrap.servers", ""},
        {"bootstrap.servers", "host"},
        {"bootstrap.servers", "h:0"},
        {"bootstrap.servers", "h:70000"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        err[0] = 0;
        cr_assert_eq(rn_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)), -RN_E_INVALID_CONFIG,
                     "%s=%s accepted", kv[i][0], kv[i][1]);
        cr_assert(strlen(err) > 0, "%s=%s: no message", kv[i][0], kv[i][1]);
    }
    cr_assert(strstr(err, "bootstrap.servers") != NULL, "message: %s", err);
}

// The defaults are those runnel.h documents.
Test(conf, defaults_as_documented)
{
    cr_assert_str_eq(conf->bootstrap_servers, "127.0.0.1:9700");
    cr_assert_str_eq(conf->client_id, "librunnel");
    cr_assert_eq(conf->socket_timeout_ms, 30000);
    cr_assert_eq(conf->connect_timeout_ms, 5000);
    cr_assert_eq(conf->reconnect_backoff_ms, 100);
    cr_assert_eq(conf->acks, -1);
    cr_assert_eq(conf->linger_ms, 5);
    cr_assert_eq(conf->batch_size, 262144);
    cr_assert_eq(conf->codec, RN_BATCH_CODEC_NONE);
    cr_assert_eq(conf->compression_level, 3);
    cr_assert_eq(conf->retries, 2147483647);
    cr_assert_eq(conf->retry_backoff_ms, 100);
    cr_assert_eq(conf->delivery_timeout_ms, 120000);
    cr_assert_eq(conf->max_in_flight, 5);
    cr_assert_eq(conf->fetch_min_bytes, 1);
    cr_assert_eq(conf->fetch_max_wait_ms, 500);
    cr_assert_eq(conf->fetch_max_bytes, 52428800);
    cr_assert_eq(conf->max_partition_fetch_bytes, 1048576);
    cr_assert(conf->check_crcs);
}

// Values land in the right fields, aliases included.
Test(conf, values_parsed)
{
    cr_assert_eq(rn_conf_set(conf, "acks", "1", err, sizeof(err)), 0);
    cr_assert_eq(conf->acks, 1);
    cr_assert_eq(rn_conf_set(conf, "compression.type", "zstd", err, sizeof(err)), 0);
    cr_assert_eq(conf->codec, RN_BATCH_CODEC_ZSTD);
    cr_assert_eq(rn_conf_set(conf, "check.crcs", "no", err, sizeof(err)), 0);
    cr_assert(!conf->check_crcs);
    cr_assert_eq(rn_conf_set(conf, "retries", "9000000000", err, sizeof(err)), 0);
    cr_assert_eq(conf->retries, 9000000000LL);
    cr_assert_eq(rn_conf_set(conf, "partitioner", "roundrobin", err, sizeof(err)), 0);
    cr_assert_eq(conf->partitioner, RN__PARTITIONER_ROUNDROBIN);
}

// bootstrap.servers splits into hosts and ports, IPv6 brackets removed.
Test(conf, servers_split)
{
    char **hosts;
    uint16_t *ports;
    size_t n;
    cr_assert_eq(
        rn__parse_servers(" a:1 ,[::1]:9700,b.example:65535", &hosts, &ports, &n, err, sizeof(err)),
        0, "%s", err);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(hosts[0], "a");
    cr_assert_eq(ports[0], 1);
    cr_assert_str_eq(hosts[1], "::1");
    cr_assert_eq(ports[1], 9700);
    cr_assert_str_eq(hosts[2], "b.example");
    cr_assert_eq(ports[2], 65535);
    for (size_t i = 0; i < n; i++)
        free(hosts[i]);
    free(hosts);
    free(ports);
}

// A copy is independent of its original.
Test(conf, dup_is_independent)
{
    cr_assert_eq(rn_conf_set(conf, "client.id", "one", err, sizeof(err)), 0);
    rn_conf *copy = rn_conf_dup(conf);
    cr_assert_not_null(copy);
    cr_assert_eq(rn_conf_set(conf, "client.id", "two", err, sizeof(err)), 0);
    cr_assert_eq(rn_conf_set(conf, "linger.ms", "77", err, sizeof(err)), 0);
    cr_assert_str_eq(copy->client_id, "one");
    cr_assert_eq(copy->linger_ms, 5);
    rn_conf_free(copy);
}

// Error names and messages cover runnel's codes and errno values.
Test(conf, error_names)
{
    cr_assert_str_eq(rn_err_name(-RN_E_UNKNOWN_TOPIC), "UNKNOWN_TOPIC");
    cr_assert_str_eq(rn_err_name(-ECONNREFUSED), "ECONNREFUSED");
    cr_assert_str_eq(rn_err_str(-RN_E_OFFSET_OUT_OF_RANGE), "offset out of range");
    cr_assert_not_null(rn_err_str(-99999));
}

// enable.idempotence as Kafka's clients have it: left at its default it is
// simply off with acks 0/1 or more than 5 requests in flight; set true with
// them, rn_producer_new refuses the configuration (before, acks=1 turned it
// off silently, and max.in.flight over 5 kept it on though the leader
// remembers only a producer's last 5 batches).
Test(conf, idempotence_needs_acks_all)
{
    rn_producer *p = NULL;
    rn_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err));
    cr_assert_eq(rn_conf_set(conf, "acks", "1", err, sizeof(err)), 0);
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0, "default idempotence with acks=1");
    rn_producer_close(p);
    cr_assert_eq(rn_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)), 0);
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), -RN_E_INVALID_CONFIG);
    cr_assert_null(p);
    cr_assert_eq(rn_conf_set(conf, "acks", "0", err, sizeof(err)), 0);
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_conf_set(conf, "acks", "all", err, sizeof(err)), 0);
    cr_assert_eq(rn_conf_set(conf, "max.in.flight", "6", err, sizeof(err)), 0);
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_conf_set(conf, "max.in.flight", "5", err, sizeof(err)), 0);
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    rn_producer_close(p);
    /* Explicitly off: any acks. */
    cr_assert_eq(rn_conf_set(conf, "enable.idempotence", "false", err, sizeof(err)), 0);
    cr_assert_eq(rn_conf_set(conf, "acks", "1", err, sizeof(err)), 0);
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    rn_producer_close(p);
}
