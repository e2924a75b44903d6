/*
 * config.c — runneld's settings: defaults, validation, properties files, dump
 * (see config.h).
 *
 * How it fits: main() fills an rn_config with rn_config_default(), applies
 * `--config FILE` with rn_config_load_file(), then each `--override k=v` with
 * rn_config_set_kv(), then rn_config_check() for the rules that join two keys.
 * Every path ends in one table-driven setter, so a key is parsed and checked the
 * same way wherever it comes from. Topic-level settings (CreateTopics configs,
 * AlterConfigs) go through the same table under their Kafka topic names.
 *
 * The table (settings[] below) holds one row per accepted name: the broker key,
 * the topic key when the setting also exists per topic, the field it writes, the
 * allowed range and, for aliases that take other units (log.retention.hours),
 * the factor to the stored unit. Aliases write the field of their canonical key
 * and are never dumped.
 *
 * Invariants:
 *  1. A setter that fails leaves the config untouched; a file that fails
 *     anywhere leaves it untouched too (it is applied to a copy).
 *  2. Numbers are exact: base-10 integers, optional leading '-', nothing else
 *     (no blanks, no '+', no size suffixes as in Kafka), range-checked before
 *     they are stored, so no value wraps into a field narrower than int64.
 *  3. Every error message starts with the key as the user spelled it and says
 *     what is allowed; file errors are prefixed with "path:line: ".
 *  4. The file reader checks the size (1 MiB) and each line (64 KiB) before it
 *     allocates for them; nothing in a file can make it allocate more.
 *
 * Properties syntax (java.util.Properties, which Kafka uses, with two changes
 * marked *):
 *   - lines end in \n, \r\n or \r; blank lines and lines whose first non-blank
 *     character is '#' or '!' are skipped;
 *   - a line ending in an odd number of backslashes continues on the next; the
 *     next line's leading blanks are dropped;
 *   - the key ends at the first unescaped '=', ':' or blank; blanks around the
 *     separator are skipped; the rest of the line is the value;
 *   - escapes: \t \n \r \f \uXXXX, and '\' before any other character stands
 *     for that character (so \\ is one backslash, \= an '=');
 *   - * trailing unescaped blanks of the value are trimmed (config.h promises
 *     it; Java keeps them, which is a classic source of "port 9700 " bugs);
 *   - * a NUL byte is an error rather than part of a value.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "broker/config.h"
#include "protocol/errors.h"

#define MAX_FILE_BYTES (1u << 20) /* a properties file is a few KiB; 1 MiB is plenty */
#define MAX_LINE_BYTES (64u << 10)
#define MS_MAX         (1000LL * 365 * 24 * 3600 * 1000) /* 1000 years: now + it never overflows */
#define HOUR_MS        (3600LL * 1000)
#define MINUTE_MS      (60LL * 1000)
#define SHOW_MAX       64 /* bytes of a bad value quoted back in a message */

/* ---- The settings table ---------------------------------------------------- */

enum type {
    T_DIR,      /* data.dir: non-empty path */
    T_LISTENER, /* listeners: host:port or PLAINTEXT://host:port */
    T_HTTP,     /* http.listener: host:port or http://host:port */
    T_KAFKA,    /* kafka.listener: host:port or PLAINTEXT://host:port; empty = off */
    T_BOOL,
    T_I32,
    T_U32,
    T_I64,
    T_U64,
    T_FLUSH,    /* always | never | interval:MS */
    T_FLUSH_MS, /* log.flush.interval.ms: sets interval:MS */
    T_ORIGINS,  /* http.allowed.origins: comma-separated origins or `*` */
    T_ROLES,    /* process.roles: broker and/or controller, comma-separated */
    T_HOSTPORT, /* controller.listener, advertised.listener: host:port; empty = none */
    T_VOTERS,   /* controller.quorum.voters: ID@HOST:PORT,...; empty = none */
};

struct setting {
    const char *key;       /* broker key (properties file, --override) */
    const char *topic_key; /* topic-level name, or NULL for broker-only */
    const char *alias_of;  /* canonical key when this is an alias; aliases are not dumped */
    enum type type;
    bool in_log; /* off is into rn_log_config (c->log for the broker), else rn_config */
    size_t off;
    int64_t min, max; /* range in this key's own unit */
    int64_t scale;    /* stored value = given value * scale (hours → ms); 0 means 1 */
    bool minus_one;   /* -1 ("no limit") is accepted besides min..max */
};

/* offsetof(S, f), refusing to compile when f is not as wide as ctype: the
 * setter stores by ctype, so a field changed in the header must change here. */
#define FIELD(S, f, ctype)                                                                         \
    (offsetof(S, f) + 0 * sizeof(char[sizeof(((S *)0)->f) == sizeof(ctype) ? 1 : -1]))
#define CFG(f, ctype) false, FIELD(rn_config, f, ctype)
#define LOG(f, ctype) true, FIELD(rn_log_config, f, ctype)

static const struct setting settings[] = {
    {"data.dir", NULL, NULL, T_DIR, CFG(data_dir, char[PATH_MAX]), 0, 0, 0, false},
    {"log.dirs", NULL, "data.dir", T_DIR, CFG(data_dir, char[PATH_MAX]), 0, 0, 0, false},
    {"listeners", NULL, NULL, T_LISTENER, CFG(listen, char[256]), 0, 0, 0, false},
    {"listen", NULL, "listeners", T_LISTENER, CFG(listen, char[256]), 0, 0, 0, false},
    {"http.listener", NULL, NULL, T_HTTP, CFG(http, char[256]), 0, 0, 0, false},
    {"kafka.listener", NULL, NULL, T_KAFKA, CFG(kafka, char[256]), 0, 0, 0, false},
    {"http.allowed.origins", NULL, NULL, T_ORIGINS, CFG(http_allowed_origins, char[1024]), 0, 0, 0,
     false},
    {"node.id", NULL, NULL, T_I32, CFG(node_id, int32_t), 0, INT32_MAX, 0, false},
    {"reactors", NULL, NULL, T_U32, CFG(reactors, uint32_t), 0, RN_MAX_REACTORS, 0, false},
    {"socket.request.max.bytes", NULL, NULL, T_U32, CFG(socket_request_max_bytes, uint32_t), 1024,
     INT32_MAX, 0, false},
    {"max.connections", NULL, NULL, T_U32, CFG(max_connections, uint32_t), 1, INT32_MAX, 0, false},
    {"connections.max.idle.ms", NULL, NULL, T_I64, CFG(connections_max_idle_ms, int64_t), 1,
     INT32_MAX, 0, false},
    {"connection.send.budget.bytes", NULL, NULL, T_U64, CFG(connection_send_budget, uint64_t), 4096,
     1LL << 40, 0, false},
    {"socket.send.zerocopy.bytes", NULL, NULL, T_U64, CFG(send_zerocopy_bytes, uint64_t), 0,
     1LL << 40, 0, false},
    {"auto.create.topics.enable", NULL, NULL, T_BOOL, CFG(auto_create_topics, bool), 0, 1, 0,
     false},
    {"num.partitions", NULL, NULL, T_I32, CFG(num_partitions, int32_t), 1, 100000, 0, false},
    {"max.partitions.per.topic", NULL, NULL, T_I32, CFG(max_partitions_per_topic, int32_t), 1,
     100000, 0, false},
    {"max.partitions", NULL, NULL, T_I32, CFG(max_partitions, int32_t), 1, INT32_MAX, 0, false},
    {"log.retention.check.interval.ms", NULL, NULL, T_I64, CFG(retention_check_ms, int64_t), 1,
     INT32_MAX, 0, false},
    {"fetch.max.wait.ms", NULL, NULL, T_I64, CFG(fetch_max_wait_ms, int64_t), 0, INT32_MAX, 0,
     false},
    /* The cluster; Kafka's names and defaults. */
    {"process.roles", NULL, NULL, T_ROLES, CFG(process_roles, char[64]), 0, 0, 0, false},
    {"controller.listener", NULL, NULL, T_HOSTPORT, CFG(controller_listener, char[256]), 0, 0, 0,
     false},
    {"controller.quorum.voters", NULL, NULL, T_VOTERS, CFG(quorum_voters, char[1024]), 0, 0, 0,
     false},
    {"advertised.listener", NULL, NULL, T_HOSTPORT, CFG(advertised_listener, char[256]), 0, 0, 0,
     false},
    {"broker.session.timeout.ms", NULL, NULL, T_I64, CFG(broker_session_timeout_ms, int64_t), 100,
     INT32_MAX, 0, false},
    {"broker.heartbeat.interval.ms", NULL, NULL, T_I64, CFG(broker_heartbeat_interval_ms, int64_t),
     10, INT32_MAX, 0, false},
    {"controller.quorum.election.timeout.ms", NULL, NULL, T_I64,
     CFG(quorum_election_timeout_ms, int64_t), 10, INT32_MAX, 0, false},
    {"controller.quorum.fetch.timeout.ms", NULL, NULL, T_I64, CFG(quorum_fetch_timeout_ms, int64_t),
     10, INT32_MAX, 0, false},
    {"metadata.log.max.record.bytes.between.snapshots", NULL, NULL, T_I64,
     CFG(metadata_snapshot_bytes, int64_t), 1, INT64_MAX, 0, false},
    {"auto.leader.rebalance.enable", NULL, NULL, T_BOOL, CFG(auto_leader_rebalance, bool), 0, 1, 0,
     false},
    {"leader.imbalance.check.interval.seconds", NULL, NULL, T_I64,
     CFG(leader_imbalance_check_ms, int64_t), 1, INT32_MAX / 1000, 1000, false},
    /* Data replication; Kafka's names and defaults. */
    {"min.insync.replicas", "min.insync.replicas", NULL, T_I32, LOG(min_insync_replicas, int32_t),
     1, 16, 0, false},
    {"default.replication.factor", NULL, NULL, T_I32, CFG(default_replication_factor, int32_t), 1,
     16, 0, false},
    {"replica.lag.time.max.ms", NULL, NULL, T_I64, CFG(replica_lag_time_max_ms, int64_t), 1,
     INT32_MAX, 0, false},
    {"replica.fetch.max.bytes", NULL, NULL, T_U32, CFG(replica_fetch_max_bytes, uint32_t), 1024,
     INT32_MAX, 0, false},
    {"replica.fetch.response.max.bytes", NULL, NULL, T_U32,
     CFG(replica_fetch_response_max_bytes, uint32_t), 1024, INT32_MAX, 0, false},
    {"replica.fetch.wait.max.ms", NULL, NULL, T_U32, CFG(replica_fetch_wait_max_ms, uint32_t), 0,
     INT32_MAX, 0, false},
    {"leader.replication.throttled.rate", NULL, NULL, T_I64,
     CFG(leader_replication_throttled_rate, int64_t), 0, INT64_MAX, 0, false},
    {"follower.replication.throttled.rate", NULL, NULL, T_I64,
     CFG(follower_replication_throttled_rate, int64_t), 0, INT64_MAX, 0, false},

    /* Log defaults; the topic names are Kafka's topic-level config names. A
     * segment's positions are u32, hence the 4 GiB - 1 cap. */
    {"log.segment.bytes", "segment.bytes", NULL, T_U64, LOG(segment_bytes, uint64_t), 4096,
     UINT32_MAX, 0, false},
    {"log.roll.ms", "segment.ms", NULL, T_I64, LOG(roll_ms, int64_t), 1, MS_MAX, 0, false},
    {"log.roll.hours", NULL, "log.roll.ms", T_I64, LOG(roll_ms, int64_t), 1, MS_MAX / HOUR_MS,
     HOUR_MS, false},
    {"log.retention.ms", "retention.ms", NULL, T_I64, LOG(retention_ms, int64_t), 0, MS_MAX, 0,
     true},
    {"log.retention.minutes", NULL, "log.retention.ms", T_I64, LOG(retention_ms, int64_t), 0,
     MS_MAX / MINUTE_MS, MINUTE_MS, true},
    {"log.retention.hours", NULL, "log.retention.ms", T_I64, LOG(retention_ms, int64_t), 0,
     MS_MAX / HOUR_MS, HOUR_MS, true},
    {"log.retention.bytes", "retention.bytes", NULL, T_I64, LOG(retention_bytes, int64_t), 0,
     INT64_MAX, 0, true},
    {"log.index.interval.bytes", "index.interval.bytes", NULL, T_U32,
     LOG(index_interval_bytes, uint32_t), 1, INT32_MAX, 0, false},
    /* 61 = the batch header alone; the cap against segment.bytes is in rn_config_check. */
    {"message.max.bytes", "max.message.bytes", NULL, T_U32, LOG(max_batch_bytes, uint32_t), 61,
     UINT32_MAX, 0, false},
    {"log.flush", "flush", NULL, T_FLUSH, LOG(flush, enum rn_flush_policy), 0, 0, 0, false},
    {"log.flush.interval.ms", NULL, "log.flush", T_FLUSH_MS, LOG(flush_interval_ms, uint32_t), 1,
     3600000, 0, false},
    {"log.preallocate.bytes", "preallocate.bytes", NULL, T_U64, LOG(preallocate_bytes, uint64_t), 0,
     UINT32_MAX, 0, false},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static const struct setting *find_broker(const char *key)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static const struct setting *find_topic(const char *key)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].topic_key && strcmp(settings[i].topic_key, key) == 0)
            return &settings[i];
    return NULL;
}

/* ---- Messages ------------------------------------------------------------- */

static int failf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -RN_E_INVALID_CONFIG;
}

/* The value as quoted back in a message: at most SHOW_MAX bytes of it. */
#define SHOW(v)                                                                                    \
    (int)(strlen(v) > SHOW_MAX ? SHOW_MAX : strlen(v)), (v), (strlen(v) > SHOW_MAX ? "…" : "")

/* ---- Values --------------------------------------------------------------- */

/* Strict base-10 integer: [-]digits, the whole string. */
static int parse_int(const char *s, int64_t *out, bool *overflow)
{
    *overflow = false;
    const char *d = s[0] == '-' ? s + 1 : s;
    if (!isdigit((unsigned char)d[0]))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return -1;
    if (errno == ERANGE) {
        *overflow = true;
        return -1;
    }
    *out = v;
    return 0;
}

static void describe_range(const struct setting *st, char *buf, size_t len)
{
    if (st->minus_one)
        snprintf(buf, len, "-1 (no limit) or an integer from %" PRId64 " to %" PRId64, st->min,
                 st->max);
    else
        snprintf(buf, len, "an integer from %" PRId64 " to %" PRId64, st->min, st->max);
}

static int set_int(const struct setting *st, const char *key, const char *v, int64_t *out,
                   char *err, size_t errlen)
{
    char range[96];
    describe_range(st, range, sizeof(range));
    if (v[0] == '\0')
        return failf(err, errlen, "%s: empty value; expected %s", key, range);
    int64_t n;
    bool overflow;
    if (parse_int(v, &n, &overflow) < 0) {
        if (overflow)
            return failf(err, errlen, "%s: '%.*s%s' is out of range; expected %s", key, SHOW(v),
                         range);
        return failf(err, errlen, "%s: '%.*s%s' is not an integer; expected %s (no unit suffixes)",
                     key, SHOW(v), range);
    }
    if (!(st->minus_one && n == -1) && (n < st->min || n > st->max))
        return failf(err, errlen, "%s: %" PRId64 " is out of range; expected %s", key, n, range);
    /* max was chosen as (stored max) / scale, so this cannot overflow. */
    if (n != -1 && st->scale)
        n *= st->scale;
    *out = n;
    return 0;
}

/* Host and port of "host:port"; *why says what is wrong on error. */
static int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                          const char **why)
{
    const char *h = s, *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) {
            *why = "'[' without ']'";
            return -RN_E_INVALID_CONFIG;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        if (close[1] != ':') {
            *why = "missing ':port' after ']'";
            return -RN_E_INVALID_CONFIG;
        }
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            *why = "missing ':port'";
            return -RN_E_INVALID_CONFIG;
        }
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen)) {
            *why = "an IPv6 address must be in brackets, as [::1]:9700";
            return -RN_E_INVALID_CONFIG;
        }
    }
    if (hlen == 0) {
        *why = "empty host";
        return -RN_E_INVALID_CONFIG;
    }
    char tmp[256];
    if (hlen >= sizeof(tmp) || hlen >= hostlen) {
        *why = "host too long";
        return -RN_E_INVALID_CONFIG;
    }
    memcpy(tmp, h, hlen);
    tmp[hlen] = '\0';

    unsigned char addr[16];
    bool ok = s[0] == '[' ? inet_pton(AF_INET6, tmp, addr) == 1
                          : strcmp(tmp, "localhost") == 0 || inet_pton(AF_INET, tmp, addr) == 1;
    if (!ok) {
        *why = s[0] == '[' ? "not an IPv6 address inside [ ]"
                           : "host must be an IPv4 address, localhost or [IPv6]";
        return -RN_E_INVALID_CONFIG;
    }

    int64_t p;
    bool overflow;
    if (parse_int(colon + 1, &p, &overflow) < 0 || p < 1 || p > 65535) {
        *why = "port must be an integer from 1 to 65535";
        return -RN_E_INVALID_CONFIG;
    }
    memcpy(host, tmp, hlen + 1);
    *port = (uint16_t)p;
    return 0;
}

int rn_config_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *why;
    return parse_hostport(s, host, hostlen, port, &why);
}

/* listeners / http.listener: an optional scheme, then one host:port. */
static int set_listener(const struct setting *st, const char *key, const char *v, char *dst,
                        size_t dstlen, char *err, size_t errlen)
{
    const char *scheme = st->type == T_HTTP ? "http://" : "PLAINTEXT://";
    const char *hp = v;
    if (strncasecmp(v, scheme, strlen(scheme)) == 0) {
        hp = v + strlen(scheme);
    } else if (strstr(v, "://")) {
        return failf(err, errlen,
                     "%s: '%.*s%s': only %s listeners are supported; expected %shost:port", key,
                     SHOW(v), st->type == T_HTTP ? "http" : "PLAINTEXT", scheme);
    }
    if (strchr(hp, ','))
        return failf(err, errlen,
                     "%s: '%.*s%s': only one listener is supported; expected host:port", key,
                     SHOW(v));
    char host[256];
    uint16_t port;
    const char *why;
    if (parse_hostport(hp, host, sizeof(host), &port, &why) < 0)
        return failf(
            err, errlen,
            "%s: '%.*s%s': %s; expected host:port (IPv4, localhost or [IPv6], port 1..65535)", key,
            SHOW(v), why);
    if (strlen(hp) >= dstlen)
        return failf(err, errlen, "%s: value too long (at most %zu bytes)", key, dstlen - 1);
    strcpy(dst, hp);
    return 0;
}

static int set_bool(const char *key, const char *v, bool *out, char *err, size_t errlen)
{
    if (strcasecmp(v, "true") == 0)
        *out = true;
    else if (strcasecmp(v, "false") == 0)
        *out = false;
    else
        return failf(err, errlen, "%s: '%.*s%s' is not a boolean; expected true or false", key,
                     SHOW(v));
    return 0;
}

static int set_flush(const char *key, const char *v, rn_log_config *lc, char *err, size_t errlen)
{
    static const char allowed[] = "expected always, never or interval:MS (MS from 1 to 3600000)";
    rn_log_config tmp = *lc;
    /* Check the number strictly here: rn_log_config_parse_flush uses strtoul,
     * which would take " 5" or "+5". */
    if (strncmp(v, "interval:", 9) == 0) {
        int64_t ms;
        bool overflow;
        if (parse_int(v + 9, &ms, &overflow) < 0 || ms < 1 || ms > 3600000)
            return failf(err, errlen, "%s: '%.*s%s': bad interval; %s", key, SHOW(v), allowed);
    }
    if (rn_log_config_parse_flush(v, &tmp) < 0)
        return failf(err, errlen, "%s: '%.*s%s' is not a flush policy; %s", key, SHOW(v), allowed);
    lc->flush = tmp.flush;
    lc->flush_interval_ms = tmp.flush_interval_ms;
    return 0;
}

static void store(void *p, enum type t, int64_t v)
{
    switch (t) {
    case T_I32: {
        int32_t x = (int32_t)v;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case T_U32: {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case T_I64:
        memcpy(p, &v, sizeof(v));
        break;
    case T_U64: {
        uint64_t x = (uint64_t)v;
        memcpy(p, &x, sizeof(x));
        break;
    }
    default:
        break;
    }
}

static int64_t load(const void *p, enum type t)
{
    switch (t) {
    case T_I32: {
        int32_t x;
        memcpy(&x, p, sizeof(x));
        return x;
    }
    case T_U32: {
        uint32_t x;
        memcpy(&x, p, sizeof(x));
        return x;
    }
    case T_I64: {
        int64_t x;
        memcpy(&x, p, sizeof(x));
        return x;
    }
    case T_U64: {
        uint64_t x;
        memcpy(&x, p, sizeof(x));
        return (int64_t)x; /* every range above keeps it below 2^63 */
    }
    default:
        return 0;
    }
}

/* Apply one row of the table. c is the broker config (NULL for a topic), lc
 * the log config the log rows write. Nothing is written unless it is valid. */
static int apply(const struct setting *st, const char *key, const char *v, rn_config *c,
                 rn_log_config *lc, char *err, size_t errlen)
{
    char *base = st->in_log ? (char *)lc : (char *)c;
    char *field = base + st->off;
    switch (st->type) {
    case T_ORIGINS: {
        /* Each entry is `*` or scheme://host[:port]: a browser's Origin header. */
        if (strlen(v) >= sizeof(c->http_allowed_origins))
            return failf(err, errlen, "%s: longer than %zu bytes", key,
                         sizeof(c->http_allowed_origins) - 1);
        for (const char *s = v; *s;) {
            size_t n = strcspn(s, ",");
            const char *b = s, *e = s + n;
            while (b < e && *b == ' ')
                b++;
            while (e > b && e[-1] == ' ')
                e--;
            bool star = e - b == 1 && *b == '*';
            const char *sep = memmem(b, (size_t)(e - b), "://", 3);
            if (!star && (!sep || sep == b || sep + 3 >= e))
                return failf(err, errlen,
                             "%s: '%.*s' is not an origin (scheme://host[:port]) or '*'", key,
                             (int)(e - b), b);
            s += n;
            if (*s == ',')
                s++;
        }
        strcpy(field, v);
        return 0;
    }
    case T_DIR: {
        if (v[0] == '\0')
            return failf(err, errlen, "%s: empty value; expected a directory path", key);
        /* Kafka's log.dirs may list several directories; runnel keeps one, and
         * reading "/a,/b" as one odd path would surprise. */
        if (st->alias_of && strchr(v, ','))
            return failf(err, errlen, "%s: '%.*s%s': only one directory is supported", key,
                         SHOW(v));
        if (strlen(v) >= PATH_MAX)
            return failf(err, errlen, "%s: path longer than %d bytes", key, PATH_MAX - 1);
        strcpy(field, v);
        return 0;
    }
    case T_ROLES: {
        bool broker = false, controller = false;
        for (const char *s = v; *s || s == v;) {
            size_t n = strcspn(s, ",");
            bool *seen = n == 6 && strncmp(s, "broker", 6) == 0         ? &broker
                         : n == 10 && strncmp(s, "controller", 10) == 0 ? &controller
                                                                        : NULL;
            if (!seen)
                return failf(err, errlen,
                             "%s: '%.*s%s': expected broker, controller or broker,controller", key,
                             SHOW(v));
            if (*seen)
                return failf(err, errlen, "%s: '%.*s%s': a role is named twice", key, SHOW(v));
            *seen = true;
            s += n;
            if (*s == ',' && !*++s)
                return failf(err, errlen, "%s: '%.*s%s': empty role after ','", key, SHOW(v));
        }
        snprintf(field, sizeof(c->process_roles), "%s%s%s", broker ? "broker" : "",
                 broker && controller ? "," : "", controller ? "controller" : "");
        return 0;
    }
    case T_HOSTPORT: {
        char host[256];
        uint16_t port;
        const char *why;
        if (v[0] && parse_hostport(v, host, sizeof(host), &port, &why) < 0)
            return failf(err, errlen,
                         "%s: '%.*s%s': %s; expected host:port (IPv4, localhost or [IPv6], port "
                         "1..65535)",
                         key, SHOW(v), why);
        if (strlen(v) >= sizeof(c->controller_listener))
            return failf(err, errlen, "%s: value too long (at most %zu bytes)", key,
                         sizeof(c->controller_listener) - 1);
        strcpy(field, v);
        return 0;
    }
    case T_VOTERS: {
        rn_voter vs[RN_MAX_VOTERS];
        if (strlen(v) >= sizeof(c->quorum_voters))
            return failf(err, errlen, "%s: value too long (at most %zu bytes)", key,
                         sizeof(c->quorum_voters) - 1);
        char why[300];
        if (rn_config_parse_voters(v, vs, RN_MAX_VOTERS, why, sizeof(why)) < 0)
            return failf(err, errlen, "%s: %s", key, why);
        strcpy(field, v);
        return 0;
    }
    case T_KAFKA:
        if (v[0] == '\0') { /* off */
            field[0] = '\0';
            return 0;
        }
        /* fall through */
    case T_LISTENER:
    case T_HTTP:
        return set_listener(st, key, v, field, sizeof(c->listen), err, errlen);
    case T_BOOL:
        return set_bool(key, v, (bool *)field, err, errlen);
    case T_FLUSH:
        return set_flush(key, v, lc, err, errlen);
    case T_FLUSH_MS: {
        int64_t ms;
        int rc = set_int(st, key, v, &ms, err, errlen);
        if (rc < 0)
            return rc;
        lc->flush = RN_FLUSH_INTERVAL;
        lc->flush_interval_ms = (uint32_t)ms;
        return 0;
    }
    case T_I32:
    case T_U32:
    case T_I64:
    case T_U64: {
        int64_t n;
        int rc = set_int(st, key, v, &n, err, errlen);
        if (rc < 0)
            return rc;
        store(field, st->type, n);
        return 0;
    }
    }
    return failf(err, errlen, "%s: internal error: unknown type", key);
}

/* ---- Public setters ------------------------------------------------------- */

void rn_config_default(rn_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->data_dir, sizeof(c->data_dir), "./runnel-data");
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:9700");
    snprintf(c->http, sizeof(c->http), "127.0.0.1:9780");
    c->node_id = 1;
    c->reactors = 0; /* one per core */
    c->socket_request_max_bytes = 100u << 20;
    c->max_connections = 10000;
    c->connections_max_idle_ms = 600000;
    c->connection_send_budget = 16u << 20;
    c->auto_create_topics = false;
    c->num_partitions = 1;
    c->max_partitions_per_topic = 10000;
    c->max_partitions = 20000;
    c->retention_check_ms = 300000;
    c->fetch_max_wait_ms = 30000;
    snprintf(c->process_roles, sizeof(c->process_roles), "broker,controller");
    c->broker_session_timeout_ms = 9000;
    /* Kafka's are 2000, 1000 and 2000: halved and quartered here so a
     * killed broker's or controller's partitions move in about a second
     * (DESIGN §8; Redpanda's election timeout is 1.5 s). A heartbeat is a
     * few dozen bytes to one peer; a session stays 9 s for hung brokers. */
    c->broker_heartbeat_interval_ms = 500;
    c->quorum_election_timeout_ms = 500;
    c->quorum_fetch_timeout_ms = 1000;
    c->metadata_snapshot_bytes = 20 << 20; /* Kafka's */
    c->auto_leader_rebalance = true;
    c->leader_imbalance_check_ms = 300000;
    c->default_replication_factor = 1;
    c->replica_lag_time_max_ms = 30000;
    c->replica_fetch_max_bytes = 1u << 20;
    c->replica_fetch_response_max_bytes = 10u << 20;
    c->replica_fetch_wait_max_ms = 500;
    rn_log_config_default(&c->log);
}

int rn_config_set(rn_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct setting *st = find_broker(key);
    if (!st) {
        if (find_topic(key))
            return failf(err, errlen,
                         "unknown setting '%.*s%s' (a topic-level name; the broker default is "
                         "log.* or message.max.bytes)",
                         SHOW(key));
        return failf(err, errlen, "unknown setting '%.*s%s'", SHOW(key));
    }
    return apply(st, key, value, c, &c->log, err, errlen);
}

int rn_topic_config_set(rn_log_config *lc, const char *key, const char *value, char *err,
                        size_t errlen)
{
    const struct setting *st = find_topic(key);
    if (!st)
        return failf(err, errlen,
                     "unknown topic setting '%.*s%s'; expected one of retention.ms, "
                     "retention.bytes, segment.bytes, segment.ms, max.message.bytes, flush, "
                     "index.interval.bytes, preallocate.bytes, min.insync.replicas",
                     SHOW(key));
    return apply(st, key, value, NULL, lc, err, errlen);
}

bool rn_topic_config_known(const char *key)
{
    return find_topic(key) != NULL;
}

int rn_config_set_kv(rn_config *c, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return failf(err, errlen, "'%.*s%s': expected key=value", SHOW(kv));
    /* Blanks around the key and value are dropped, as in a properties file. */
    const char *k = kv, *ke = eq;
    while (k < ke && (*k == ' ' || *k == '\t'))
        k++;
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    if (k == ke)
        return failf(err, errlen, "'%.*s%s': missing key; expected key=value", SHOW(kv));
    char key[128];
    if ((size_t)(ke - k) >= sizeof(key))
        return failf(err, errlen, "unknown setting '%.*s…'", SHOW_MAX, k);
    memcpy(key, k, (size_t)(ke - k));
    key[ke - k] = '\0';

    const char *v = eq + 1, *ve = v + strlen(v);
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    char *value = strndup(v, (size_t)(ve - v));
    if (!value)
        return -ENOMEM;
    int rc = rn_config_set(c, key, value, err, errlen);
    free(value);
    return rc;
}

static int check_log(const rn_log_config *lc, const char *max_key, const char *seg_key, char *err,
                     size_t errlen)
{
    if (lc->max_batch_bytes > lc->segment_bytes)
        return failf(err, errlen,
                     "%s: %" PRIu32 " is more than %s (%" PRIu64 "); a batch must fit in one "
                     "segment",
                     max_key, lc->max_batch_bytes, seg_key, lc->segment_bytes);
    return 0;
}

int rn_config_parse_voters(const char *s, rn_voter *out, int max, char *err, size_t errlen)
{
    int n = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        char item[300];
        if (len == 0 || len >= sizeof(item))
            return failf(err, errlen, "%s voter entry; expected ID@HOST:PORT,...",
                         len ? "an over-long" : "an empty");
        memcpy(item, s, len);
        item[len] = 0;
        char *at = strchr(item, '@');
        if (!at)
            return failf(err, errlen, "'%.*s%s': missing '@'; expected ID@HOST:PORT", SHOW(item));
        *at = 0;
        int64_t id;
        bool overflow;
        if (parse_int(item, &id, &overflow) < 0 || id < 0 || id > INT32_MAX)
            return failf(err, errlen, "'%.*s%s': the id must be an integer from 0 to %d",
                         SHOW(item), INT32_MAX);
        if (n == max)
            return failf(err, errlen, "more than %d voters", max);
        const char *why;
        if (parse_hostport(at + 1, out[n].host, sizeof(out[n].host), &out[n].port, &why) < 0)
            return failf(err, errlen, "voter %" PRId64 ": '%.*s%s': %s", id, SHOW(at + 1), why);
        for (int i = 0; i < n; i++)
            if (out[i].id == id)
                return failf(err, errlen, "voter %" PRId64 " is listed twice", id);
        out[n++].id = (int32_t)id;
        s += len;
        if (*s == ',' && !*++s)
            return failf(err, errlen, "an empty voter entry after ','; expected ID@HOST:PORT");
    }
    return n;
}

bool rn_config_has_role(const rn_config *c, const char *role)
{
    size_t n = strlen(role);
    for (const char *s = c->process_roles; *s;) {
        size_t len = strcspn(s, ",");
        if (len == n && strncmp(s, role, n) == 0)
            return true;
        s += len + (s[len] == ',');
    }
    return false;
}

static int check_cluster(const rn_config *c, char *err, size_t errlen)
{
    rn_voter vs[RN_MAX_VOTERS];
    int n = rn_config_parse_voters(c->quorum_voters, vs, RN_MAX_VOTERS, err, errlen);
    if (n < 0)
        return n;
    bool controller = rn_config_has_role(c, "controller");
    if (!rn_config_has_role(c, "broker"))
        return failf(err, errlen,
                     "process.roles=%s: a controller-only node is not supported yet; use "
                     "broker,controller",
                     c->process_roles);
    if (n == 0) {
        if (!controller)
            return failf(err, errlen,
                         "process.roles=%s needs controller.quorum.voters (the controllers to "
                         "reach)",
                         c->process_roles);
        if (c->controller_listener[0])
            return failf(err, errlen,
                         "controller.listener is set but controller.quorum.voters is empty");
        return 0;
    }
    const rn_voter *self = NULL;
    for (int i = 0; i < n; i++)
        if (vs[i].id == c->node_id)
            self = &vs[i];
    if (controller && !self)
        return failf(err, errlen,
                     "node.id %d has the controller role but is not in controller.quorum.voters",
                     c->node_id);
    if (!controller && self)
        return failf(err, errlen,
                     "node.id %d is in controller.quorum.voters but process.roles=%s lacks "
                     "controller",
                     c->node_id, c->process_roles);
    if (controller) {
        char host[256];
        uint16_t port;
        if (!c->controller_listener[0])
            return failf(err, errlen,
                         "controller.listener must be set on a controller (voter %d is %s:%u)",
                         c->node_id, self->host, self->port);
        rn_config_parse_hostport(c->controller_listener, host, sizeof(host), &port);
        if (port != self->port)
            return failf(err, errlen,
                         "controller.listener %s and this node's entry in "
                         "controller.quorum.voters (%d@%s:%u) name different ports",
                         c->controller_listener, c->node_id, self->host, self->port);
        if (strcmp(c->controller_listener, c->listen) == 0 ||
            strcmp(c->controller_listener, c->http) == 0 ||
            strcmp(c->controller_listener, c->kafka) == 0)
            return failf(err, errlen, "controller.listener %s is also another listener",
                         c->controller_listener);
    }
    if (c->broker_heartbeat_interval_ms >= c->broker_session_timeout_ms)
        return failf(err, errlen,
                     "broker.heartbeat.interval.ms (%" PRId64
                     ") must be below broker.session.timeout.ms (%" PRId64 ")",
                     c->broker_heartbeat_interval_ms, c->broker_session_timeout_ms);
    if (c->quorum_fetch_timeout_ms <= c->quorum_election_timeout_ms)
        return failf(err, errlen,
                     "controller.quorum.fetch.timeout.ms (%" PRId64
                     ") must be above controller.quorum.election.timeout.ms (%" PRId64 ")",
                     c->quorum_fetch_timeout_ms, c->quorum_election_timeout_ms);
    return 0;
}

int rn_config_check(const rn_config *c, char *err, size_t errlen)
{
    int rc = check_log(&c->log, "message.max.bytes", "log.segment.bytes", err, errlen);
    return rc < 0 ? rc : check_cluster(c, err, errlen);
}

int rn_topic_config_check(const rn_log_config *lc, char *err, size_t errlen)
{
    return check_log(lc, "max.message.bytes", "segment.bytes", err, errlen);
}

/* ---- Properties files ----------------------------------------------------- */

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\f';
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Unescape s[0..n) into out (which has room for n + 1 bytes: no escape
 * produces more bytes than it takes). With trim, trailing blanks that were not
 * escaped are dropped. Returns the length, or -1 for a bad \u escape. */
static ssize_t unescape(const char *s, size_t n, char *out, bool trim)
{
    size_t o = 0, keep = 0; /* keep: length up to the last byte trimming must keep */
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch != '\\' || i + 1 == n) {
            out[o++] = ch;
            if (!is_blank(ch))
                keep = o;
            continue;
        }
        ch = s[++i];
        switch (ch) {
        case 't':
            out[o++] = '\t';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'u': {
            if (n - i - 1 < 4)
                return -1;
            unsigned cp = 0;
            for (int k = 1; k <= 4; k++) {
                int h = hexval(s[i + k]);
                if (h < 0)
                    return -1;
                cp = cp << 4 | (unsigned)h;
            }
            i += 4;
            /* Surrogates and NUL cannot go into a C string as UTF-8. */
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
                return -1;
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xC0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[o++] = (char)(0xE0 | cp >> 12);
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            out[o++] = ch;
            break;
        }
        keep = o;
    }
    if (trim)
        o = keep;
    out[o] = '\0';
    return (ssize_t)o;
}

/* Read the whole file into a NUL-terminated buffer, refusing more than
 * MAX_FILE_BYTES before allocating for it. */
static int read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        failf(err, errlen, "%s: cannot open: %s", path, rn_strerror(rc));
        return rc;
    }
    char *buf = NULL;
    int rc;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        failf(err, errlen, "%s: cannot stat: %s", path, rn_strerror(rc));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        failf(err, errlen, "%s: is a directory, not a properties file", path);
        goto fail;
    }
    if (S_ISREG(st.st_mode) && st.st_size > (off_t)MAX_FILE_BYTES) {
        rc = failf(err, errlen, "%s: file is %lld bytes; at most %u are allowed", path,
                   (long long)st.st_size, MAX_FILE_BYTES);
        goto fail;
    }
    /* A regular file is read in one go (+2: a byte to see it did not grow since
     * fstat, and the NUL); a pipe (--config /dev/stdin) grows the buffer, never
     * past the cap. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 2 : 4096, len = 0;
    buf = malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        failf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (;;) {
        if (len + 1 == cap) {
            if (len > MAX_FILE_BYTES) {
                rc = failf(err, errlen, "%s: file is larger than %u bytes", path, MAX_FILE_BYTES);
                goto fail;
            }
            size_t ncap = cap * 2 > MAX_FILE_BYTES + 2 ? MAX_FILE_BYTES + 2 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = -ENOMEM;
                failf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            failf(err, errlen, "%s: cannot read: %s", path, rn_strerror(rc));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > MAX_FILE_BYTES) {
        rc = failf(err, errlen, "%s: file is larger than %u bytes", path, MAX_FILE_BYTES);
        goto fail;
    }
    buf[len] = '\0';
    close(fd);
    *out = buf;
    *out_len = len;
    return 0;

fail:
    free(buf);
    close(fd);
    return rc;
}

/* Split one logical line (continuations already joined) into key and value,
 * unescaped, and apply it. line is line[0..n), n <= MAX_LINE_BYTES. */
static int apply_line(rn_config *c, const char *line, size_t n, char *kbuf, char *vbuf, char *err,
                      size_t errlen)
{
    size_t i = 0;
    while (i < n && !(line[i] == '=' || line[i] == ':' || is_blank(line[i]))) {
        if (line[i] == '\\' && i + 1 < n)
            i++;
        i++;
    }
    size_t key_end = i;
    while (i < n && is_blank(line[i]))
        i++;
    if (i < n && (line[i] == '=' || line[i] == ':')) {
        i++;
        while (i < n && is_blank(line[i]))
            i++;
    }
    if (key_end == 0)
        return failf(err, errlen, "missing key before '%c'", line[0]);
    if (unescape(line, key_end, kbuf, false) < 0)
        return failf(err, errlen, "bad \\u escape in key");
    if (unescape(line + i, n - i, vbuf, true) < 0)
        return failf(err, errlen, "%s: bad \\u escape (expected \\uXXXX, not NUL or a surrogate)",
                     kbuf);
    return rn_config_set(c, kbuf, vbuf, err, errlen);
}

static int load_text(rn_config *c, const char *path, const char *text, size_t len, char *err,
                     size_t errlen)
{
    int rc = 0;
    char msg[512] = "";
    /* Logical line, key and value buffers: bounded by the line cap. */
    char *lbuf = malloc(3 * ((size_t)MAX_LINE_BYTES + 1));
    if (!lbuf) {
        failf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    char *kbuf = lbuf + MAX_LINE_BYTES + 1, *vbuf = kbuf + MAX_LINE_BYTES + 1;

    const char *p = text, *end = text + len;
    unsigned line_no = 0;
    while (p < end) {
        unsigned start_line = ++line_no;
        size_t n = 0;
        bool first = true;
        for (;;) {
            /* One physical line: [p, eol), then skip its terminator. */
            const char *eol = p;
            while (eol < end && *eol != '\n' && *eol != '\r')
                eol++;
            const char *next = eol;
            if (next < end && *next == '\r')
                next++;
            if (next < end && *next == '\n' && (next == eol || next[-1] == '\r'))
                next++;
            if ((size_t)(eol - p) > MAX_LINE_BYTES) {
                snprintf(msg, sizeof(msg), "line longer than %u bytes", MAX_LINE_BYTES);
                rc = -RN_E_INVALID_CONFIG;
                goto fail;
            }
            const char *s = p;
            while (s < eol && is_blank(*s))
                s++;
            p = next;
            if (first && (s == eol || *s == '#' || *s == '!'))
                break; /* blank or comment: never continued */
            size_t seg = (size_t)(eol - s);
            size_t bs = 0;
            while (bs < seg && s[seg - 1 - bs] == '\\')
                bs++;
            bool cont = bs % 2 == 1;
            if (cont)
                seg--; /* drop the backslash that joins the lines */
            if (n + seg > MAX_LINE_BYTES) {
                snprintf(msg, sizeof(msg), "line longer than %u bytes (with continuations)",
                         MAX_LINE_BYTES);
                line_no = start_line;
                rc = -RN_E_INVALID_CONFIG;
                goto fail;
            }
            memcpy(lbuf + n, s, seg);
            n += seg;
            first = false;
            if (!cont || p >= end)
                break;
            line_no++;
        }
        if (n == 0)
            continue;
        rc = apply_line(c, lbuf, n, kbuf, vbuf, msg, sizeof(msg));
        if (rc < 0) {
            line_no = start_line;
            goto fail;
        }
    }
    free(lbuf);
    return 0;

fail:
    free(lbuf);
    failf(err, errlen, "%s:%u: %s", path, line_no, msg);
    return rc;
}

int rn_config_load_file(rn_config *c, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err, errlen);
    if (rc < 0)
        return rc;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        unsigned line = 1;
        for (const char *q = text; q < nul; q++)
            line += *q == '\n';
        free(text);
        return failf(err, errlen, "%s:%u: NUL byte in file (is it a properties file?)", path, line);
    }
    /* Applied to a copy so that a bad line leaves c as it was. */
    rn_config *tmp = malloc(sizeof(*tmp));
    if (!tmp) {
        free(text);
        failf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    *tmp = *c;
    rc = load_text(tmp, path, text, len, err, errlen);
    if (rc == 0)
        *c = *tmp;
    free(tmp);
    free(text);
    return rc;
}

/* ---- Dump ----------------------------------------------------------------- */

struct out {
    char *buf;
    size_t len, pos; /* pos counts every byte, written or not, as snprintf does */
};

static void put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, o->pos++)
        if (o->pos + 1 < o->len)
            o->buf[o->pos] = s[i];
}

/* A value escaped so that rn_config_load_file reads it back unchanged. */
static void put_value(struct out *o, const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (ch == '\\')
            put(o, "\\\\", 2);
        else if (ch == '\n')
            put(o, "\\n", 2);
        else if (ch == '\r')
            put(o, "\\r", 2);
        else if (ch == '\t')
            put(o, "\\t", 2);
        else if (ch == '\f')
            put(o, "\\f", 2);
        else if (ch == ' ' && (i == 0 || i + 1 == n))
            put(o, "\\ ", 2); /* leading and trailing blanks would be trimmed */
        else
            put(o, &ch, 1);
    }
}

static int by_key(const void *a, const void *b)
{
    const struct setting *x = *(const struct setting *const *)a;
    const struct setting *y = *(const struct setting *const *)b;
    return strcmp(x->key, y->key);
}

int rn_config_dump(const rn_config *c, char *buf, size_t len)
{
    const struct setting *rows[N_SETTINGS];
    size_t n = 0;
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!settings[i].alias_of)
            rows[n++] = &settings[i];
    qsort(rows, n, sizeof(rows[0]), by_key);

    struct out o = {buf, len, 0};
    for (size_t i = 0; i < n; i++) {
        const struct setting *st = rows[i];
        const char *base = st->in_log ? (const char *)&c->log : (const char *)c;
        const char *field = base + st->off;
        char num[64];
        put(&o, st->key, strlen(st->key));
        put(&o, "=", 1);
        switch (st->type) {
        case T_DIR:
        case T_LISTENER:
        case T_HTTP:
        case T_KAFKA:
        case T_ORIGINS:
        case T_ROLES:
        case T_HOSTPORT:
        case T_VOTERS:
            put_value(&o, field);
            break;
        case T_BOOL:
            put_value(&o, *(const bool *)field ? "true" : "false");
            break;
        case T_FLUSH:
        case T_FLUSH_MS:
            put_value(&o, rn_log_config_flush_str(&c->log, num, sizeof(num)));
            break;
        default:
            /* A scaled key (…seconds stored in ms) shows what it was given. */
            snprintf(num, sizeof(num), "%" PRId64,
                     load(field, st->type) / (st->scale ? st->scale : 1));
            put_value(&o, num);
            break;
        }
        put(&o, "\n", 1);
    }
    if (len)
        buf[o.pos < len ? o.pos : len - 1] = '\0';
    return o.pos > INT_MAX ? INT_MAX : (int)o.pos;
}
