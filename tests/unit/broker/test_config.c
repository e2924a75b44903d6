/*
 * test_config.c — runneld's configuration: defaults, every key, strict numbers,
 * host:port, flush policies, properties files, --override, dump, topic configs.
 *
 * Files are written under a mkdtemp directory in /tmp, removed after each test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/config.h"
#include "protocol/errors.h"

/* ---- Fixture: a temporary directory of properties files --------------------- */

static char tmpdir[64];
static char files[16][PATH_MAX];
static int n_files;

static void setup(void)
{
    strcpy(tmpdir, "/tmp/runnel-config-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    n_files = 0;
}

static void teardown(void)
{
    for (int i = 0; i < n_files; i++)
        unlink(files[i]);
    rmdir(tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 30);

/* Write len bytes of text to tmpdir/name; returns the path. */
static const char *write_file(const char *name, const char *text, size_t len)
{
    cr_assert_lt(n_files, 16);
    char *path = files[n_files++];
    snprintf(path, PATH_MAX, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

static rn_config fresh(void)
{
    rn_config c;
    rn_config_default(&c);
    return c;
}

/* set must succeed; the error text is shown when it does not. */
static void set_ok(rn_config *c, const char *key, const char *value)
{
    char err[256] = "";
    int rc = rn_config_set(c, key, value, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s=%s: rc %d: %s", key, value, rc, err);
}

/* set must fail with INVALID_CONFIG, leave c as it was, and say something
 * that names the key. Returns the message. */
static const char *set_bad(rn_config *c, const char *key, const char *value)
{
    static char err[512];
    char before[8192], after[8192];
    rn_config_dump(c, before, sizeof(before));
    err[0] = '\0';
    int rc = rn_config_set(c, key, value, err, sizeof(err));
    cr_assert_eq(rc, -RN_E_INVALID_CONFIG, "%s=%s accepted (rc %d)", key, value, rc);
    cr_assert(strstr(err, key) != NULL, "message for %s=%s does not name the key: %s", key, value,
              err);
    rn_config_dump(c, after, sizeof(after));
    cr_assert_str_eq(before, after, "failed %s=%s changed the config", key, value);
    return err;
}

/* ---- Defaults and every key ----------------------------------------------- */

// No flags at all gives the single-node defaults config.h documents.
Test(config, defaults)
{
    rn_config c = fresh();
    cr_assert_str_eq(c.data_dir, "./runnel-data");
    cr_assert_str_eq(c.listen, "127.0.0.1:9700");
    cr_assert_str_eq(c.http, "127.0.0.1:9780");
    cr_assert_eq(c.node_id, 1);
    cr_assert_eq(c.reactors, 0);
    cr_assert_eq(c.socket_request_max_bytes, 100u << 20);
    cr_assert_eq(c.max_connections, 10000);
    cr_assert_eq(c.connections_max_idle_ms, 600000);
    cr_assert_eq(c.connection_send_budget, 16u << 20);
    cr_assert_eq(c.auto_create_topics, false);
    cr_assert_eq(c.num_partitions, 1);
    cr_assert_eq(c.retention_check_ms, 300000);
    cr_assert_eq(c.fetch_max_wait_ms, 30000);

    rn_log_config d;
    rn_log_config_default(&d);
    cr_assert_eq(c.log.segment_bytes, d.segment_bytes);
    cr_assert_eq(c.log.roll_ms, d.roll_ms);
    cr_assert_eq(c.log.retention_ms, d.retention_ms);
    cr_assert_eq(c.log.retention_bytes, d.retention_bytes);
    cr_assert_eq(c.log.index_interval_bytes, d.index_interval_bytes);
    cr_assert_eq(c.log.max_batch_bytes, d.max_batch_bytes);
    cr_assert_eq(c.log.flush, d.flush);
    cr_assert_eq(c.log.preallocate_bytes, d.preallocate_bytes);
    char err[256];
    cr_assert_eq(rn_config_check(&c, err, sizeof(err)), 0, "%s", err);
}

// Every canonical key writes its field, with the value given.
Test(config, every_key_set_and_read_back)
{
    rn_config c = fresh();
    set_ok(&c, "data.dir", "/var/lib/runnel");
    set_ok(&c, "listeners", "0.0.0.0:19700");
    set_ok(&c, "http.listener", "[::1]:19780");
    set_ok(&c, "node.id", "7");
    set_ok(&c, "reactors", "4");
    set_ok(&c, "socket.request.max.bytes", "2097152");
    set_ok(&c, "max.connections", "123");
    set_ok(&c, "connections.max.idle.ms", "45000");
    set_ok(&c, "connection.send.budget.bytes", "8388608");
    set_ok(&c, "auto.create.topics.enable", "true");
    set_ok(&c, "num.partitions", "6");
    set_ok(&c, "log.retention.check.interval.ms", "1000");
    set_ok(&c, "fetch.max.wait.ms", "500");
    set_ok(&c, "log.segment.bytes", "4294967295");
    set_ok(&c, "log.roll.ms", "3600000");
    set_ok(&c, "log.retention.ms", "86400000");
    set_ok(&c, "log.retention.bytes", "1099511627776");
    set_ok(&c, "log.index.interval.bytes", "8192");
    set_ok(&c, "message.max.bytes", "2097152");
    set_ok(&c, "log.flush", "interval:250");
    set_ok(&c, "log.preallocate.bytes", "16777216");

    cr_assert_str_eq(c.data_dir, "/var/lib/runnel");
    cr_assert_str_eq(c.listen, "0.0.0.0:19700");
    cr_assert_str_eq(c.http, "[::1]:19780");
    cr_assert_eq(c.node_id, 7);
    cr_assert_eq(c.reactors, 4);
    cr_assert_eq(c.socket_request_max_bytes, 2097152);
    cr_assert_eq(c.max_connections, 123);
    cr_assert_eq(c.connections_max_idle_ms, 45000);
    cr_assert_eq(c.connection_send_budget, 8388608);
    cr_assert_eq(c.auto_create_topics, true);
    cr_assert_eq(c.num_partitions, 6);
    cr_assert_eq(c.retention_check_ms, 1000);
    cr_assert_eq(c.fetch_max_wait_ms, 500);
    cr_assert_eq(c.log.segment_bytes, 4294967295ull);
    cr_assert_eq(c.log.roll_ms, 3600000);
    cr_assert_eq(c.log.retention_ms, 86400000);
    cr_assert_eq(c.log.retention_bytes, 1099511627776LL);
    cr_assert_eq(c.log.index_interval_bytes, 8192);
    cr_assert_eq(c.log.max_batch_bytes, 2097152);
    cr_assert_eq(c.log.flush, RN_FLUSH_INTERVAL);
    cr_assert_eq(c.log.flush_interval_ms, 250);
    cr_assert_eq(c.log.preallocate_bytes, 16777216);
}

// Kafka's names and units for the same settings land in the same fields.
Test(config, aliases)
{
    rn_config c = fresh();
    set_ok(&c, "log.dirs", "/data/kafka-style");
    cr_assert_str_eq(c.data_dir, "/data/kafka-style");
    cr_assert(strstr(set_bad(&c, "log.dirs", "/a,/b"), "one directory"));
    set_ok(&c, "listen", "localhost:9701");
    cr_assert_str_eq(c.listen, "localhost:9701");
    set_ok(&c, "listeners", "PLAINTEXT://127.0.0.1:9092");
    cr_assert_str_eq(c.listen, "127.0.0.1:9092");
    set_ok(&c, "listeners", "PLAINTEXT://[::1]:9093");
    cr_assert_str_eq(c.listen, "[::1]:9093");
    set_ok(&c, "http.listener", "http://0.0.0.0:8080");
    cr_assert_str_eq(c.http, "0.0.0.0:8080");

    set_ok(&c, "log.roll.hours", "2");
    cr_assert_eq(c.log.roll_ms, 2 * 3600000LL);
    set_ok(&c, "log.retention.hours", "168");
    cr_assert_eq(c.log.retention_ms, 168 * 3600000LL);
    set_ok(&c, "log.retention.minutes", "5");
    cr_assert_eq(c.log.retention_ms, 5 * 60000LL);
    set_ok(&c, "log.retention.hours", "-1");
    cr_assert_eq(c.log.retention_ms, -1);
    set_ok(&c, "log.retention.minutes", "-1");
    cr_assert_eq(c.log.retention_ms, -1);
    set_ok(&c, "log.retention.ms", "-1");
    cr_assert_eq(c.log.retention_ms, -1);
    set_ok(&c, "log.retention.bytes", "-1");
    cr_assert_eq(c.log.retention_bytes, -1);

    c.log.flush = RN_FLUSH_ALWAYS;
    set_ok(&c, "log.flush.interval.ms", "1500");
    cr_assert_eq(c.log.flush, RN_FLUSH_INTERVAL);
    cr_assert_eq(c.log.flush_interval_ms, 1500);
}

// Booleans are true or false, in any case, and nothing else.
Test(config, booleans)
{
    rn_config c = fresh();
    set_ok(&c, "auto.create.topics.enable", "TRUE");
    cr_assert(c.auto_create_topics);
    set_ok(&c, "auto.create.topics.enable", "false");
    cr_assert_not(c.auto_create_topics);
    const char *bad[] = {"", "yes", "1", "on", "truee", " true"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *m = set_bad(&c, "auto.create.topics.enable", bad[i]);
        cr_assert(strstr(m, "true or false"), "%s", m);
    }
}

/* ---- Numbers --------------------------------------------------------------- */

static const char *const int_keys[] = {
    "node.id",
    "reactors",
    "socket.request.max.bytes",
    "max.connections",
    "connections.max.idle.ms",
    "connection.send.budget.bytes",
    "socket.send.zerocopy.bytes",
    "num.partitions",
    "log.retention.check.interval.ms",
    "fetch.max.wait.ms",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.index.interval.bytes",
    "message.max.bytes",
    "log.flush.interval.ms",
    "log.preallocate.bytes",
    "min.insync.replicas",
    "default.replication.factor",
    "replica.lag.time.max.ms",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.wait.max.ms",
};

// Every numeric key refuses empty, junk-suffixed, signed, blank-padded,
// unit-suffixed and overflowing values, and says what is allowed.
Test(config, bad_numbers_rejected_everywhere)
{
    const char *bad[] = {"",
                         "12x",
                         "1k",
                         "1MB",
                         " 5",
                         "5 ",
                         "+5",
                         "0x10",
                         "1e3",
                         "1.5",
                         "--1",
                         "-",
                         "abc",
                         "99999999999999999999",
                         "-99999999999999999999"};
    rn_config c = fresh();
    for (size_t k = 0; k < sizeof(int_keys) / sizeof(int_keys[0]); k++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *m = set_bad(&c, int_keys[k], bad[i]);
            cr_assert(strstr(m, "expected"), "%s=%s: %s", int_keys[k], bad[i], m);
        }
    }
}

// Error messages say what was wrong: empty, not an integer, or out of range.
Test(config, number_messages)
{
    rn_config c = fresh();
    cr_assert(strstr(set_bad(&c, "log.segment.bytes", ""), "empty value"));
    cr_assert(strstr(set_bad(&c, "log.segment.bytes", "12x"), "not an integer"));
    cr_assert(strstr(set_bad(&c, "log.segment.bytes", "99999999999999999999"), "out of range"));
    const char *m = set_bad(&c, "log.segment.bytes", "4095");
    cr_assert(strstr(m, "4096") && strstr(m, "4294967295"), "%s", m);
    m = set_bad(&c, "log.retention.ms", "-2");
    cr_assert(strstr(m, "-1"), "%s", m);
}

// -1 is refused where it has no meaning, and accepted where it means no limit.
Test(config, minus_one_only_where_allowed)
{
    rn_config c = fresh();
    const char *no[] = {"node.id",
                        "reactors",
                        "socket.request.max.bytes",
                        "max.connections",
                        "num.partitions",
                        "log.segment.bytes",
                        "log.roll.ms",
                        "message.max.bytes",
                        "log.index.interval.bytes",
                        "log.preallocate.bytes",
                        "fetch.max.wait.ms",
                        "log.flush.interval.ms"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        set_bad(&c, no[i], "-1");
    set_ok(&c, "log.retention.ms", "-1");
    set_ok(&c, "log.retention.bytes", "-1");
    set_bad(&c, "log.retention.bytes", "-2");
}

// Range limits hold on both sides, at the exact boundary.
Test(config, ranges)
{
    rn_config c = fresh();
    set_bad(&c, "log.segment.bytes", "4095");
    set_ok(&c, "log.segment.bytes", "4096");
    set_ok(&c, "log.segment.bytes", "4294967295");
    set_bad(&c, "log.segment.bytes", "4294967296");
    cr_assert_eq(c.log.segment_bytes, 4294967295ull);

    set_bad(&c, "message.max.bytes", "60");
    set_ok(&c, "message.max.bytes", "61");
    cr_assert_eq(c.log.max_batch_bytes, 61);

    set_bad(&c, "socket.request.max.bytes", "1023");
    set_ok(&c, "socket.request.max.bytes", "1024");
    set_ok(&c, "socket.request.max.bytes", "2147483647");
    set_bad(&c, "socket.request.max.bytes", "2147483648");
    cr_assert_eq(c.socket_request_max_bytes, 2147483647u);

    /* The bound is RN_MAX_REACTORS, the reactors one broker can route to. */
    char max_reactors[16], above_max[16];
    snprintf(max_reactors, sizeof(max_reactors), "%d", RN_MAX_REACTORS);
    snprintf(above_max, sizeof(above_max), "%d", RN_MAX_REACTORS + 1);
    set_ok(&c, "reactors", "0");
    set_ok(&c, "reactors", max_reactors);
    set_bad(&c, "reactors", above_max);
    cr_assert_eq(c.reactors, RN_MAX_REACTORS);

    set_bad(&c, "num.partitions", "0");
    set_bad(&c, "max.connections", "0");
    set_bad(&c, "node.id", "2147483648");
    set_ok(&c, "node.id", "0");
    set_bad(&c, "log.index.interval.bytes", "0");
    set_bad(&c, "log.flush.interval.ms", "0");
    set_bad(&c, "log.flush.interval.ms", "3600001");
    /* Hours that would overflow int64 milliseconds are refused, not wrapped. */
    set_bad(&c, "log.retention.hours", "9223372036854775807");
    set_bad(&c, "log.roll.hours", "2562047788015216");
}

// message.max.bytes above log.segment.bytes passes set (keys come in any
// order) but not rn_config_check, whose message names both keys.
Test(config, check_message_max_against_segment)
{
    rn_config c = fresh();
    set_ok(&c, "message.max.bytes", "8192");
    set_ok(&c, "log.segment.bytes", "4096");
    char err[256] = "";
    cr_assert_eq(rn_config_check(&c, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "message.max.bytes") && strstr(err, "log.segment.bytes"), "%s", err);
    set_ok(&c, "log.segment.bytes", "8192");
    cr_assert_eq(rn_config_check(&c, err, sizeof(err)), 0, "%s", err);
}

// Unknown keys are named; a topic-level name given to the broker is refused.
Test(config, unknown_key)
{
    rn_config c = fresh();
    char err[256] = "";
    cr_assert_eq(rn_config_set(&c, "log.segmnt.bytes", "4096", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "unknown setting 'log.segmnt.bytes'"), "%s", err);
    cr_assert_eq(rn_config_set(&c, "segment.bytes", "4096", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "unknown setting 'segment.bytes'"), "%s", err);
    /* A NULL error buffer is allowed. */
    cr_assert_eq(rn_config_set(&c, "nope", "1", NULL, 0), -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_config_set(&c, "reactors", "x", NULL, 0), -RN_E_INVALID_CONFIG);
}

/* ---- host:port and listeners ------------------------------------------------ */

// Well-formed host:port splits into host (IPv6 without brackets) and port.
Test(config, hostport_good)
{
    char host[64];
    uint16_t port = 0;
    cr_assert_eq(rn_config_parse_hostport("127.0.0.1:9700", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 9700);
    cr_assert_eq(rn_config_parse_hostport("[::1]:9700", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 9700);
    cr_assert_eq(rn_config_parse_hostport("localhost:1", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "localhost");
    cr_assert_eq(port, 1);
    cr_assert_eq(rn_config_parse_hostport("0.0.0.0:65535", host, sizeof(host), &port), 0);
    cr_assert_eq(port, 65535);
    cr_assert_eq(rn_config_parse_hostport("[fe80::1:2]:80", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "fe80::1:2");
}

// Malformed host:port is refused, by the parser and by both listener keys.
Test(config, hostport_bad)
{
    const char *bad[] = {"127.0.0.1",       ":9700",        "host:0",         "localhost:65536",
                         "localhost:",      "localhost:x",  "localhost:-1",   "::1:9700",
                         "[::1]",           "[::1:9700",    "[]:9700",        "[127.0.0.1]:80",
                         "1.2.3:80",        "256.1.1.1:80", "example.com:80", "",
                         "127.0.0.1:9700 ", "[::1]x:80"};
    rn_config c = fresh();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64];
        uint16_t port;
        cr_assert_eq(rn_config_parse_hostport(bad[i], host, sizeof(host), &port),
                     -RN_E_INVALID_CONFIG, "'%s' accepted", bad[i]);
        const char *m = set_bad(&c, "listeners", bad[i]);
        cr_assert(strstr(m, "host:port"), "%s", m);
        set_bad(&c, "http.listener", bad[i]);
    }
    /* A host that does not fit the caller's buffer is refused, not cut. */
    char small[4];
    uint16_t port;
    cr_assert_eq(rn_config_parse_hostport("localhost:80", small, sizeof(small), &port),
                 -RN_E_INVALID_CONFIG);
}

// Only one PLAINTEXT listener is supported; other schemes and lists are refused.
Test(config, listener_schemes)
{
    rn_config c = fresh();
    set_ok(&c, "listeners", "plaintext://127.0.0.1:9700");
    cr_assert_str_eq(c.listen, "127.0.0.1:9700");
    cr_assert(strstr(set_bad(&c, "listeners", "SSL://127.0.0.1:9093"), "PLAINTEXT"));
    cr_assert(
        strstr(set_bad(&c, "listeners", "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://0.0.0.0:9093"),
               "one listener"));
    set_bad(&c, "listeners", "PLAINTEXT://");
    set_bad(&c, "http.listener", "https://127.0.0.1:443");
}

/* ---- Flush ------------------------------------------------------------------ */

// log.flush takes always, never and interval:MS with MS from 1 to 3600000.
Test(config, flush_values)
{
    rn_config c = fresh();
    set_ok(&c, "log.flush", "never");
    cr_assert_eq(c.log.flush, RN_FLUSH_NEVER);
    set_ok(&c, "log.flush", "interval:1");
    cr_assert_eq(c.log.flush, RN_FLUSH_INTERVAL);
    cr_assert_eq(c.log.flush_interval_ms, 1);
    set_ok(&c, "log.flush", "interval:3600000");
    cr_assert_eq(c.log.flush_interval_ms, 3600000);
    set_ok(&c, "log.flush", "always");
    cr_assert_eq(c.log.flush, RN_FLUSH_ALWAYS);

    const char *bad[] = {"",
                         "sometimes",
                         "Always",
                         "interval",
                         "interval:",
                         "interval:0",
                         "interval:3600001",
                         "interval:5x",
                         "interval:-5",
                         "interval: 5",
                         "interval:+5",
                         "always ",
                         "interval:99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *m = set_bad(&c, "log.flush", bad[i]);
        cr_assert(strstr(m, "always") && strstr(m, "interval:MS"), "%s", m);
    }
    cr_assert_eq(c.log.flush, RN_FLUSH_ALWAYS);
}

/* ---- Properties files ------------------------------------------------------- */

// Comments, blank lines, CRLF, blanks around '=', 'key: value', 'key value',
// continuations, escapes and duplicate keys all parse as Java properties do.
Test(config, file_syntax)
{
    const char *text = "# a comment\r\n"
                       "! another comment\r\n"
                       "\r\n"
                       "   \t  \n"
                       "node.id = 5\r\n"
                       "reactors:3\n"
                       "  num.partitions    4   \n"
                       "data.dir = /tmp/a\\\\b c\\\n"
                       "           d\n"
                       "log.flush = \\\n"
                       "   interval:\\\n"
                       "   200\r\n"
                       "fetch.max.wait.ms=100\r"
                       "max.connections=1\n"
                       "max.connections=2\n"
                       "# node.id=9 is a comment, even with a trailing backslash \\\n"
                       "http.listener=[::1]:8080";
    const char *path = write_text("syntax.properties", text);
    rn_config c = fresh();
    char err[512] = "";
    int rc = rn_config_load_file(&c, path, err, sizeof(err));
    cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
    cr_assert_eq(c.node_id, 5);
    cr_assert_eq(c.reactors, 3);
    cr_assert_eq(c.num_partitions, 4);
    cr_assert_str_eq(c.data_dir, "/tmp/a\\b cd");
    cr_assert_eq(c.log.flush, RN_FLUSH_INTERVAL);
    cr_assert_eq(c.log.flush_interval_ms, 200);
    cr_assert_eq(c.fetch_max_wait_ms, 100);
    cr_assert_eq(c.max_connections, 2);
    cr_assert_str_eq(c.http, "[::1]:8080");
}

// Escapes: \t, \uXXXX (as UTF-8), '\ ' keeping a trailing blank, \= in a value.
Test(config, file_escapes)
{
    const char *path =
        write_text("esc.properties", "data.dir=/srv/caf\\u00e9\\=x\\tq\\ \nlog.dirs  =  \\ lead\n");
    rn_config c = fresh();
    char err[512] = "";
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.data_dir, " lead");

    path = write_text("esc2.properties", "data.dir=/srv/caf\\u00e9\\=x\\tq\\ \n");
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.data_dir, "/srv/caf\xc3\xa9=x\tq ");

    path = write_text("esc3.properties", "data.dir=\\u12\n");
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, ":1:") && strstr(err, "data.dir"), "%s", err);
    path = write_text("esc4.properties", "data.dir=\\u0000\n");
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
}

// An unknown key is reported as file:line (counting continuation lines), and
// nothing from the file is applied.
Test(config, file_unknown_key_names_file_and_line)
{
    const char *path = write_text("bad.properties", "# header\n"
                                                    "node.id=9\n"
                                                    "data.dir=/a\\\n"
                                                    "  /b\n"
                                                    "\n"
                                                    "log.segmnt.bytes=4096\n");
    rn_config c = fresh();
    char err[512] = "";
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s:6: unknown setting 'log.segmnt.bytes'", path);
    cr_assert_str_eq(err, want);
    cr_assert_eq(c.node_id, 1, "a failed file must not be half applied");
    cr_assert_str_eq(c.data_dir, "./runnel-data");
}

// A bad value in a file names file, line and key; an empty number is an error.
Test(config, file_bad_value)
{
    const char *path = write_text("val.properties", "reactors=2\nlog.segment.bytes=\n");
    rn_config c = fresh();
    char err[512] = "";
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "val.properties:2: log.segment.bytes: empty value"), "%s", err);
    cr_assert_eq(c.reactors, 0);

    path = write_text("nokey.properties", "=5\n");
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "nokey.properties:1: missing key"), "%s", err);
}

// A line over 64 KiB is refused with its line number, also when built from
// continuations; a line of exactly 64 KiB is fine.
Test(config, file_line_cap)
{
    size_t cap = 64 << 10;
    char *text = malloc(2 * cap); /* the continuation case below writes ~90 KB */
    cr_assert_not_null(text);
    /* "data.dir=" + padding to exactly cap bytes, then a newline. */
    size_t n = (size_t)sprintf(text, "reactors=2\ndata.dir=");
    size_t start = 11;
    memset(text + n, 'd', cap - (n - start));
    n = start + cap;
    text[n++] = '\n';
    const char *path = write_file("exact.properties", text, n);
    rn_config c = fresh();
    char err[512] = "";
    int rc = rn_config_load_file(&c, path, err, sizeof(err));
    cr_assert_eq(rc, -RN_E_INVALID_CONFIG, "a 64 KiB path is longer than PATH_MAX: %d", rc);
    cr_assert(strstr(err, ":2: data.dir: path longer"), "the line itself was accepted: %s", err);

    /* One byte more: refused as a line, before the value is looked at. */
    n = (size_t)sprintf(text, "reactors=2\ndata.dir=");
    memset(text + n, 'd', cap + 1 - (n - start));
    n = start + cap + 1;
    text[n++] = '\n';
    path = write_file("long.properties", text, n);
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "long.properties:2: line longer than 65536 bytes"), "%s", err);

    /* Continuations adding up past the cap. */
    n = (size_t)sprintf(text, "# c\ndata.dir=");
    for (int i = 0; i < 3; i++) {
        memset(text + n, 'e', 30000);
        n += 30000;
        n += (size_t)sprintf(text + n, "\\\n");
    }
    text[n++] = '\n';
    path = write_file("cont.properties", text, n);
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "cont.properties:2: line longer"), "%s", err);
    cr_assert_eq(c.reactors, 0);
    free(text);
}

// A file over 1 MiB is refused before it is read; 1 MiB of comments is fine.
Test(config, file_size_cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/big.properties", tmpdir);
    strcpy(files[n_files++], path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (1 << 20) + 1), 0); /* sparse: NULs, but size is checked first */
    close(fd);
    rn_config c = fresh();
    char err[512] = "";
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "1048576"), "%s", err);

    size_t len = 1 << 20;
    char *text = malloc(len);
    cr_assert_not_null(text);
    memset(text, '#', len);
    for (size_t i = 1000; i < len; i += 1000)
        text[i] = '\n';
    memcpy(text + len - 12, "\nreactors=9\n", 12);
    const char *ok = write_file("full.properties", text, len);
    cr_assert_eq(rn_config_load_file(&c, ok, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.reactors, 9);
    free(text);
}

// A missing file is -ENOENT, a directory -EISDIR, a NUL byte an error; each
// message names the path.
Test(config, file_unreadable)
{
    rn_config c = fresh();
    char err[512] = "", path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/missing.properties", tmpdir);
    cr_assert_eq(rn_config_load_file(&c, path, err, sizeof(err)), -ENOENT);
    cr_assert(strstr(err, path), "%s", err);

    cr_assert_eq(rn_config_load_file(&c, tmpdir, err, sizeof(err)), -EISDIR);
    cr_assert(strstr(err, tmpdir), "%s", err);

    const char *nul = write_file("nul.properties", "reactors=2\nnode.id=3\0\n", 22);
    cr_assert_eq(rn_config_load_file(&c, nul, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "nul.properties:2: NUL"), "%s", err);
    cr_assert_eq(c.reactors, 0);
}

// An empty file and a file of comments change nothing.
Test(config, file_empty)
{
    rn_config c = fresh(), d = fresh();
    char err[256] = "", a[8192], b[8192];
    cr_assert_eq(rn_config_load_file(&c, write_text("e.properties", ""), err, sizeof(err)), 0);
    cr_assert_eq(rn_config_load_file(&c, write_text("f.properties", "#x\n\n!y"), err, sizeof(err)),
                 0);
    rn_config_dump(&c, a, sizeof(a));
    rn_config_dump(&d, b, sizeof(b));
    cr_assert_str_eq(a, b);
}

/* ---- --override ------------------------------------------------------------- */

// key=value splits at the first '=', trims blanks, and refuses a missing '=' or key.
Test(config, override_kv)
{
    rn_config c = fresh();
    char err[256] = "";
    cr_assert_eq(rn_config_set_kv(&c, "data.dir=b=c", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.data_dir, "b=c");
    cr_assert_eq(rn_config_set_kv(&c, " reactors = 8 ", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.reactors, 8);

    cr_assert_eq(rn_config_set_kv(&c, "novalue", err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "novalue") && strstr(err, "key=value"), "%s", err);
    cr_assert_eq(rn_config_set_kv(&c, "=5", err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "missing key"), "%s", err);
    cr_assert_eq(rn_config_set_kv(&c, "reactors=", err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "reactors: empty value"), "%s", err);
    cr_assert_eq(rn_config_set_kv(&c, "a=b=c", err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "unknown setting 'a'"), "%s", err);
    cr_assert_eq(c.reactors, 8);
}

/* ---- Dump --------------------------------------------------------------------- */

// The dump lists every canonical key once, sorted, and no alias.
Test(config, dump_sorted_and_complete)
{
    rn_config c = fresh();
    char buf[8192];
    int n = rn_config_dump(&c, buf, sizeof(buf));
    cr_assert_eq((size_t)n, strlen(buf));
    const char *keys[] = {"advertised.listener",
                          "auto.create.topics.enable",
                          "auto.leader.rebalance.enable",
                          "broker.heartbeat.interval.ms",
                          "broker.session.timeout.ms",
                          "connection.send.budget.bytes",
                          "connections.max.idle.ms",
                          "controller.listener",
                          "controller.quorum.election.timeout.ms",
                          "controller.quorum.fetch.timeout.ms",
                          "controller.quorum.voters",
                          "data.dir",
                          "default.replication.factor",
                          "fetch.max.wait.ms",
                          "follower.replication.throttled.rate",
                          "http.allowed.origins",
                          "http.listener",
                          "kafka.listener",
                          "leader.imbalance.check.interval.seconds",
                          "leader.replication.throttled.rate",
                          "listeners",
                          "log.flush",
                          "log.index.interval.bytes",
                          "log.preallocate.bytes",
                          "log.retention.bytes",
                          "log.retention.check.interval.ms",
                          "log.retention.ms",
                          "log.roll.ms",
                          "log.segment.bytes",
                          "max.connections",
                          "max.partitions",
                          "max.partitions.per.topic",
                          "message.max.bytes",
                          "metadata.log.max.record.bytes.between.snapshots",
                          "min.insync.replicas",
                          "node.id",
                          "num.partitions",
                          "process.roles",
                          "reactors",
                          "replica.fetch.max.bytes",
                          "replica.fetch.response.max.bytes",
                          "replica.fetch.wait.max.ms",
                          "replica.lag.time.max.ms",
                          "socket.request.max.bytes",
                          "socket.send.zerocopy.bytes"};
    size_t n_keys = sizeof(keys) / sizeof(keys[0]);
    char *save, *line = strtok_r(buf, "\n", &save);
    for (size_t i = 0; i < n_keys; i++, line = strtok_r(NULL, "\n", &save)) {
        cr_assert_not_null(line, "dump stops before %s", keys[i]);
        size_t kl = strlen(keys[i]);
        cr_assert(strncmp(line, keys[i], kl) == 0 && line[kl] == '=',
                  "line %zu is '%s', want %s=", i, line, keys[i]);
    }
    cr_assert_null(line, "extra line '%s'", line);
}

// kafka.listener: off (empty) by default, host:port or PLAINTEXT://host:port, nothing else.
Test(config, kafka_listener)
{
    rn_config c;
    rn_config_default(&c);
    cr_assert_str_eq(c.kafka, "");
    char err[256];
    cr_assert_eq(rn_config_set(&c, "kafka.listener", "127.0.0.1:9092", err, sizeof(err)), 0);
    cr_assert_str_eq(c.kafka, "127.0.0.1:9092");
    cr_assert_eq(rn_config_set(&c, "kafka.listener", "PLAINTEXT://[::1]:9093", err, sizeof(err)),
                 0);
    cr_assert_str_eq(c.kafka, "[::1]:9093");
    cr_assert_eq(rn_config_set(&c, "kafka.listener", "SASL_SSL://h:1", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "kafka.listener"), "%s", err);
    cr_assert_eq(rn_config_set(&c, "kafka.listener", "127.0.0.1:0", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_config_set(&c, "kafka.listener", "", err, sizeof(err)), 0);
    cr_assert_str_eq(c.kafka, "");
}

// http.allowed.origins takes `*` or scheme://host[:port] entries and refuses anything else.
Test(config, allowed_origins)
{
    rn_config c = fresh();
    char err[256];
    cr_assert_eq(rn_config_set(&c, "http.allowed.origins", "", err, sizeof(err)), 0);
    cr_assert_eq(rn_config_set(&c, "http.allowed.origins",
                               "http://localhost:8080, https://console.example", err, sizeof(err)),
                 0);
    cr_assert_str_eq(c.http_allowed_origins, "http://localhost:8080, https://console.example");
    cr_assert_eq(rn_config_set(&c, "http.allowed.origins", "*", err, sizeof(err)), 0);
    cr_assert_eq(rn_config_set(&c, "http.allowed.origins", "localhost:8080", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "http.allowed.origins") != NULL, "%s", err);
    cr_assert_eq(rn_config_set(&c, "http.allowed.origins", "http://", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_str_eq(c.http_allowed_origins, "*", "a refused value leaves the old one");
}

// Dump → file → load gives the same config, odd characters included.
Test(config, dump_round_trips)
{
    rn_config c = fresh();
    set_ok(&c, "data.dir", " /tmp/x\\y z=1:2#3 ");
    set_ok(&c, "listeners", "[::1]:9800");
    set_ok(&c, "log.flush", "interval:77");
    set_ok(&c, "log.retention.ms", "-1");
    set_ok(&c, "auto.create.topics.enable", "true");
    set_ok(&c, "log.segment.bytes", "1048576");
    char a[8192], b[8192];
    rn_config_dump(&c, a, sizeof(a));
    cr_assert(strstr(a, "log.flush=interval:77\n"), "%s", a);
    cr_assert(strstr(a, "log.retention.ms=-1\n"), "%s", a);

    rn_config d = fresh();
    char err[256] = "";
    cr_assert_eq(rn_config_load_file(&d, write_text("dump.properties", a), err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(d.data_dir, " /tmp/x\\y z=1:2#3 ");
    rn_config_dump(&d, b, sizeof(b));
    cr_assert_str_eq(a, b);
}

// With a short buffer the dump is cut, NUL-terminated, and returns the full length.
Test(config, dump_truncates_like_snprintf)
{
    rn_config c = fresh();
    char full[8192], small[16];
    int n = rn_config_dump(&c, full, sizeof(full));
    memset(small, 'Z', sizeof(small));
    cr_assert_eq(rn_config_dump(&c, small, sizeof(small)), n);
    cr_assert_eq(small[15], '\0');
    cr_assert(strncmp(small, full, 15) == 0);
    cr_assert_eq(rn_config_dump(&c, NULL, 0), n);
}

/* ---- Topic-level settings -------------------------------------------------------- */

// Topic names set the same fields with the same validation.
Test(config, topic_settings)
{
    rn_log_config lc;
    rn_log_config_default(&lc);
    char err[256] = "";
    struct {
        const char *k, *v;
    } ok[] = {{"retention.ms", "-1"},          {"retention.bytes", "1000000"},
              {"segment.bytes", "65536"},      {"segment.ms", "60000"},
              {"max.message.bytes", "4096"},   {"flush", "never"},
              {"index.interval.bytes", "512"}, {"preallocate.bytes", "1048576"},
              {"min.insync.replicas", "2"}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert(rn_topic_config_known(ok[i].k), "%s", ok[i].k);
        cr_assert_eq(rn_topic_config_set(&lc, ok[i].k, ok[i].v, err, sizeof(err)), 0, "%s: %s",
                     ok[i].k, err);
    }
    cr_assert_eq(lc.retention_ms, -1);
    cr_assert_eq(lc.retention_bytes, 1000000);
    cr_assert_eq(lc.segment_bytes, 65536);
    cr_assert_eq(lc.roll_ms, 60000);
    cr_assert_eq(lc.max_batch_bytes, 4096);
    cr_assert_eq(lc.flush, RN_FLUSH_NEVER);
    cr_assert_eq(lc.index_interval_bytes, 512);
    cr_assert_eq(lc.preallocate_bytes, 1048576);
    cr_assert_eq(lc.min_insync_replicas, 2);
    cr_assert_eq(rn_topic_config_check(&lc, err, sizeof(err)), 0, "%s", err);
}

// Bad topic values and unknown topic keys are refused and leave lc unchanged.
Test(config, topic_settings_bad)
{
    rn_log_config lc, before;
    rn_log_config_default(&lc);
    before = lc;
    char err[256] = "";
    cr_assert_eq(rn_topic_config_set(&lc, "segment.bytes", "4095", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "segment.bytes") && strstr(err, "4096"), "%s", err);
    cr_assert_eq(rn_topic_config_set(&lc, "flush", "interval:0", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_topic_config_set(&lc, "retention.ms", "12x", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_topic_config_set(&lc, "max.message.bytes", "60", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert_eq(rn_topic_config_set(&lc, "log.segment.bytes", "8192", err, sizeof(err)),
                 -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "unknown topic setting 'log.segment.bytes'"), "%s", err);
    cr_assert_not(rn_topic_config_known("log.segment.bytes"));
    cr_assert_not(rn_topic_config_known("cleanup.policy"));
    cr_assert_eq(memcmp(&lc, &before, sizeof(lc)), 0);

    cr_assert_eq(rn_topic_config_set(&lc, "segment.bytes", "4096", err, sizeof(err)), 0);
    cr_assert_eq(rn_topic_config_check(&lc, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "max.message.bytes") && strstr(err, "segment.bytes"), "%s", err);
}

/* ---- The cluster keys (DESIGN §8) ------------------------------------------- */

// No voters: a single node. The cluster timings are shorter than Kafka's (config.c says why).
Test(config, cluster_defaults)
{
    rn_config c = fresh();
    cr_assert_str_eq(c.process_roles, "broker,controller");
    cr_assert_str_eq(c.quorum_voters, "");
    cr_assert_str_eq(c.controller_listener, "");
    cr_assert_str_eq(c.advertised_listener, "");
    cr_assert_eq(c.broker_session_timeout_ms, 9000);
    cr_assert_eq(c.broker_heartbeat_interval_ms, 500);
    cr_assert_eq(c.quorum_election_timeout_ms, 500);
    cr_assert_eq(c.quorum_fetch_timeout_ms, 1000);
    cr_assert(rn_config_has_role(&c, "broker"));
    cr_assert(rn_config_has_role(&c, "controller"));
}

// The replication keys (DESIGN §8): Kafka's defaults, set and read back,
// each bounded on both sides, and -1 refused (none of them means "no limit").
Test(config, replication_keys)
{
    rn_config c = fresh();
    cr_assert_eq(c.log.min_insync_replicas, 1);
    cr_assert_eq(c.default_replication_factor, 1);
    cr_assert_eq(c.replica_lag_time_max_ms, 30000);
    cr_assert_eq(c.replica_fetch_max_bytes, 1u << 20);
    cr_assert_eq(c.replica_fetch_response_max_bytes, 10u << 20);
    cr_assert_eq(c.replica_fetch_wait_max_ms, 500);
    set_ok(&c, "min.insync.replicas", "2");
    set_ok(&c, "default.replication.factor", "3");
    set_ok(&c, "replica.lag.time.max.ms", "10000");
    set_ok(&c, "replica.fetch.max.bytes", "65536");
    set_ok(&c, "replica.fetch.response.max.bytes", "1048576");
    set_ok(&c, "replica.fetch.wait.max.ms", "100");
    cr_assert_eq(c.log.min_insync_replicas, 2);
    cr_assert_eq(c.default_replication_factor, 3);
    cr_assert_eq(c.replica_lag_time_max_ms, 10000);
    cr_assert_eq(c.replica_fetch_max_bytes, 65536);
    cr_assert_eq(c.replica_fetch_response_max_bytes, 1048576);
    cr_assert_eq(c.replica_fetch_wait_max_ms, 100);
    set_bad(&c, "min.insync.replicas", "0");
    set_bad(&c, "min.insync.replicas", "17");
    set_bad(&c, "min.insync.replicas", "-1");
    set_bad(&c, "default.replication.factor", "0");
    set_bad(&c, "default.replication.factor", "17");
    set_bad(&c, "replica.lag.time.max.ms", "0");
    set_bad(&c, "replica.lag.time.max.ms", "2147483648");
    set_bad(&c, "replica.fetch.max.bytes", "1023");
    set_bad(&c, "replica.fetch.response.max.bytes", "1023");
    set_bad(&c, "replica.fetch.wait.max.ms", "-1");
    set_bad(&c, "replica.fetch.wait.max.ms", "2147483648");
    cr_assert_eq(c.log.min_insync_replicas, 2, "a refused value leaves the field as it was");
    cr_assert_eq(c.replica_fetch_wait_max_ms, 100);
}

Test(config, cluster_voters_parse)
{
    rn_voter v[RN_MAX_VOTERS];
    char err[256];
    int n = rn_config_parse_voters("1@127.0.0.1:9710,2@localhost:9711,3@[::1]:9712", v,
                                   RN_MAX_VOTERS, err, sizeof(err));
    cr_assert_eq(n, 3, "%s", err);
    cr_assert_eq(v[0].id, 1);
    cr_assert_str_eq(v[0].host, "127.0.0.1");
    cr_assert_eq(v[0].port, 9710);
    cr_assert_str_eq(v[1].host, "localhost");
    cr_assert_str_eq(v[2].host, "::1");
    cr_assert_eq(v[2].port, 9712);
    cr_assert_eq(rn_config_parse_voters("", v, RN_MAX_VOTERS, err, sizeof(err)), 0);

    static const char *const bad[] = {
        "1@127.0.0.1",
        "x@127.0.0.1:1",
        "1127.0.0.1:1",
        "-1@127.0.0.1:1",
        "1@127.0.0.1:1,",
        ",1@127.0.0.1:1",
        "1@a.b:1",
        "1@127.0.0.1:70000",
        "1@1.1.1.1:1,1@1.1.1.1:2",
        "1@127.0.0.1:1,,2@127.0.0.1:2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(rn_config_parse_voters(bad[i], v, RN_MAX_VOTERS, err, sizeof(err)),
                     -RN_E_INVALID_CONFIG, "%s accepted", bad[i]);
    cr_assert_eq(
        rn_config_parse_voters("1@1.1.1.1:1,2@1.1.1.1:2,3@1.1.1.1:3", v, 2, err, sizeof(err)),
        -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "more than 2"), "%s", err);
}

Test(config, cluster_keys_set_and_checked)
{
    rn_config c = fresh();
    set_ok(&c, "node.id", "2");
    set_ok(&c, "process.roles", "controller,broker");
    cr_assert_str_eq(c.process_roles, "broker,controller");
    set_ok(&c, "controller.listener", "127.0.0.1:9711");
    set_ok(&c, "controller.quorum.voters", "1@127.0.0.1:9710,2@127.0.0.1:9711,3@127.0.0.1:9712");
    set_ok(&c, "advertised.listener", "localhost:9701");
    set_ok(&c, "broker.session.timeout.ms", "3000");
    set_ok(&c, "broker.heartbeat.interval.ms", "500");
    set_ok(&c, "controller.quorum.election.timeout.ms", "300");
    set_ok(&c, "controller.quorum.fetch.timeout.ms", "600");
    char err[256] = "";
    cr_assert_eq(rn_config_check(&c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.broker_session_timeout_ms, 3000);
    char dump[8192];
    rn_config_dump(&c, dump, sizeof(dump));
    cr_assert(strstr(dump, "controller.quorum.voters=1@127.0.0.1:9710,2@127.0.0.1:9711,"));
    cr_assert(strstr(dump, "process.roles=broker,controller\n"));

    rn_config bad = c;
    set_bad(&bad, "process.roles", "");
    set_bad(&bad, "process.roles", "broker,broker");
    set_bad(&bad, "process.roles", "broker,");
    set_bad(&bad, "process.roles", "observer");
    set_bad(&bad, "controller.listener", "nohost");
    set_bad(&bad, "advertised.listener", "127.0.0.1:0");
    set_bad(&bad, "controller.quorum.voters", "1@127.0.0.1:9710,1@127.0.0.1:9711");
    set_bad(&bad, "broker.session.timeout.ms", "0");

    /* Cross-key rules. */
    bad = c;
    set_ok(&bad, "node.id", "4"); /* a controller not among the voters */
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "node.id 4"), "%s", err);
    bad = c;
    set_ok(&bad, "controller.listener", "");
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "controller.listener"), "%s", err);
    bad = c;
    set_ok(&bad, "controller.listener", "127.0.0.1:9799"); /* not this voter's port */
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    bad = c;
    set_ok(&bad, "broker.heartbeat.interval.ms", "3000");
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "broker.heartbeat.interval.ms"), "%s", err);
    bad = c;
    set_ok(&bad, "controller.quorum.fetch.timeout.ms", "300");
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    bad = c;
    set_ok(&bad, "process.roles", "broker"); /* listed as a voter without the role */
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    bad = fresh();
    set_ok(&bad, "process.roles", "broker"); /* nothing to reach */
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
    cr_assert(strstr(err, "controller.quorum.voters"), "%s", err);
    bad = fresh();
    set_ok(&bad, "controller.listener", "127.0.0.1:9710"); /* without voters */
    cr_assert_eq(rn_config_check(&bad, err, sizeof(err)), -RN_E_INVALID_CONFIG);
}

Test(config, leader_rebalance_keys)
{
    rn_config c = fresh();
    cr_assert(c.auto_leader_rebalance);
    cr_assert_eq(c.leader_imbalance_check_ms, 300000);
    set_ok(&c, "leader.imbalance.check.interval.seconds", "5");
    cr_assert_eq(c.leader_imbalance_check_ms, 5000);
    set_ok(&c, "auto.leader.rebalance.enable", "false");
    cr_assert(!c.auto_leader_rebalance);
    set_bad(&c, "leader.imbalance.check.interval.seconds", "0");
    set_bad(&c, "leader.imbalance.check.interval.seconds", "-1");
    set_bad(&c, "leader.imbalance.check.interval.seconds", "5s");
    set_bad(&c, "leader.imbalance.check.interval.seconds", "99999999999");
    set_bad(&c, "auto.leader.rebalance.enable", "maybe");
    cr_assert_eq(c.leader_imbalance_check_ms, 5000, "a refused value changes nothing");
}
