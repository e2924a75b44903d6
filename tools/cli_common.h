/*
 * cli_common.h — what the runnel CLI's subcommands share (tools/cli_*.c).
 *
 * Internal to the `runnel` binary: no other target includes it. One file per
 * subcommand (cli_topic.c, cli_produce.c, cli_consume.c, cli_replay.c,
 * cli_bench.c, cli_group.c); runnel.c dispatches; cli_common.c holds option and error
 * helpers, the broker probe and the progress line; cli_output.c renders records
 * (kcat format strings, JSON lines, CSV) for consume and replay alike, so the
 * two print the same bytes for the same record.
 *
 * Conventions: a command is `int cli_<name>(int argc, char **argv)` with
 * argv[0] the command's own name (so getopt_long works unchanged) and returns
 * the process exit status: CLI_OK, CLI_ERROR (something failed: one line on
 * stderr says what) or CLI_USAGE (the command line is wrong). Only these
 * functions decide to exit; helpers return 0 or a negative code.
 */
#ifndef RN_CLI_COMMON_H
#define RN_CLI_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "clients/runnel.h"

#define CLI_OK    0
#define CLI_ERROR 1
#define CLI_USAGE 2

#define CLI_DEFAULT_BROKERS "127.0.0.1:9700"

/* The command being run, for messages ("topic create"). Set by runnel.c. */
extern const char *cli_cmd;

/* Set by SIGINT/SIGTERM once cli_signals_install ran: long loops stop at the
 * next check and finish cleanly (flush, close). */
extern volatile sig_atomic_t cli_stop;
void cli_signals_install(void);

/* "runnel: <cmd>: <message>[: <rn_err_str(err)>]\n" on stderr; err 0 adds
 * nothing. Returns CLI_ERROR so callers can `return cli_fail(...)`. */
int cli_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "runnel: <sentence>\n" on stderr, without the command: for a sentence that
 * names what failed itself ("topic orders already exists"), where the
 * command's name would only say it again. Returns CLI_ERROR. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "runnel: <cmd>: <message>\nTry 'runnel <cmd> --help'.\n"; returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The usage message for getopt's ':' (missing value) or '?' (unknown option);
 * returns CLI_USAGE. Commands use optstrings starting with ':'. */
int cli_opt_error(int c, char **argv);
/* A warning or note on stderr ("runnel: <cmd>: …"). */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Connection options: -b/--brokers, RUNNEL_BROKERS, -X key=value --------- */

typedef struct cli_conn {
    const char *brokers; /* borrowed from argv or the environment */
    const char **props;  /* "key=value" strings borrowed from argv; the array is owned */
    size_t n_props;
} cli_conn;

/* Options every networked command takes; append to a command's longopts. */
#define CLI_CONN_LONGOPTS                                                                          \
    {"brokers", required_argument, NULL, 'b'},                                                     \
    {                                                                                              \
        "property", required_argument, NULL, 'X'                                                   \
    }

/* Help lines for them. */
#define CLI_CONN_HELP                                                                                \
    "  -b, --brokers HOST:PORT,...  brokers to bootstrap from (env RUNNEL_BROKERS;\n"                \
    "                               default " CLI_DEFAULT_BROKERS ")\n"                              \
    "  -X KEY=VALUE                 a librunnel setting (connect.timeout.ms=2000, linger.ms=…);\n" \
    "                               repeatable\n"

/* The options runnel.c saw before the command name; commands start from a copy. */
extern cli_conn cli_global_conn;

/* Initialise from the global options (which hold RUNNEL_BROKERS or the default). */
void cli_conn_init(cli_conn *c);
void cli_conn_fini(cli_conn *c);
/* Take option c ('b' or 'X') with its argument. Returns 1 when it was one of
 * them, 0 when not, -ENOMEM. */
int cli_conn_opt(cli_conn *c, int opt, const char *arg);

/* A librunnel configuration from c plus `extra` "key=value" pairs (NULL-ended
 * list, may be NULL) applied before c's -X properties, so -X wins. On error
 * prints one line and returns NULL. The caller owns the result. */
rn_conf *cli_conn_conf(const cli_conn *c, const char *const *extra);

/* Before a command's first request: check the -X settings and the broker list
 * (CLI_USAGE after one line when one is malformed), then cli_conn_probe
 * (CLI_ERROR when no broker answers). CLI_OK when the command can go on. */
int cli_conn_start(const cli_conn *c);

/* A millisecond setting as the last -X key=N gives it, else def (for the
 * waits the CLI bounds itself: connect.timeout.ms, delivery.timeout.ms). */
int cli_conn_prop_ms(const cli_conn *c, const char *key, int def);

/* Check that at least one broker of c accepts a TCP connection within
 * connect.timeout.ms (-X, default 5000). On failure prints one line naming the
 * brokers and the reason, and returns a negative -errno. Why: a client library
 * retries an absent broker until its request timeout; a person at a terminal
 * wants to hear at once that nothing listens there. */
int cli_conn_probe(const cli_conn *c);

/* Wait for every outstanding delivery report of p, up to timeout_ms, in short
 * rn_producer_flush slices: ^C (cli_stop) ends the wait at once, and a report
 * that completes without the socket waking the poll (acks=0) is not left
 * waiting for the whole timeout. Returns 0, -RN_E_TIMEOUT, -EINTR (stopped),
 * or the producer's error. */
int cli_producer_drain(rn_producer *p, int timeout_ms);

/* cli_conn_start, then an admin handle from c in *out (the caller owns it:
 * rn_admin_free). CLI_OK, or the status to exit with after one line. */
int cli_admin_start(const cli_conn *c, rn_admin **out);

/* ---- Parsing ------------------------------------------------------------------ */

struct option;

/* What cli_getopt returns when the command is to end at once with *status. */
#define CLI_OPT_EXIT (-2)

/* The next option of a command line (getopt_long over optstring, which starts
 * with ':', and longopts), taking itself what every command takes alike:
 * -b and -X into conn (when conn is not NULL), -h/--help (usage(stdout),
 * status CLI_OK) and a missing value or an unknown option (the usage
 * message, status CLI_USAGE). Returns the option for the command, -1 at the
 * end of the options, or CLI_OPT_EXIT with *status set (also after printing
 * why when memory ran out: CLI_ERROR). */
int cli_getopt(int argc, char **argv, const char *optstring, const struct option *longopts,
               cli_conn *conn, void (*usage)(FILE *), int *status);

/* The operands of a command that reads or writes one topic: *topic is the
 * only one. CLI_OK, or CLI_USAGE after the message (none, or more than one). */
int cli_one_topic(int argc, char **argv, const char **topic);

/* Append s (borrowed: an argv string) to the array *v of *n, for a
 * repeatable option. CLI_OK, or CLI_ERROR after one line (out of memory). */
int cli_strv_push(const char ***v, size_t *n, const char *s);

/* The value of option flag ("-D") through cli_unescape into *out (which is
 * freed first: the last one given wins). CLI_OK, or CLI_USAGE after
 * "<flag> <arg>: bad escape". */
int cli_opt_unescape(const char *flag, const char *arg, char **out, size_t *len);

/* Whole-string decimal integer in [min, max]. Errors: -EINVAL, -ERANGE. */
int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Backslash escapes of a delimiter or format: \n \t \r \0 \\ \xNN; anything
 * else after a backslash is kept as is. *out is malloc'd (NUL-terminated for
 * convenience, *len excludes it). Errors: -ENOMEM, -EINVAL (bad \x). */
int cli_unescape(const char *s, char **out, size_t *len);

/* ---- Time ---------------------------------------------------------------------- */

int64_t cli_mono_us(void); /* monotonic microseconds */
int64_t cli_wall_ms(void); /* ms since the epoch */

/* ---- Progress line on stderr --------------------------------------------------- */

/* A one-line progress indicator redrawn on stderr at most 5 times a second,
 * only when stderr is a terminal (and, when the command writes records to
 * stdout, only when stdout is not the same terminal): pipes stay clean. */
typedef struct cli_progress {
    bool on;
    const char *unit; /* "records" */
    uint64_t total;   /* 0 = unknown */
    int64_t start_us, last_us;
    bool drawn;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *unit, uint64_t total, bool uses_stdout);
void cli_progress_update(cli_progress *p, uint64_t n, uint64_t bytes);
/* Erase the line (so messages after it start clean). */
void cli_progress_done(cli_progress *p);

/* ---- Record output (cli_output.c) ----------------------------------------------- */

/* True when buf holds well-formed UTF-8 (no overlongs, surrogates, or code
 * points above U+10FFFF). */
bool cli_utf8_valid(const void *buf, size_t len);

/* One JSON object and a newline: {"topic","partition","offset","ts","headers",
 * "key","payload"} as kcat -J prints them (headers a flat [name, value, …]
 * array), with null for null keys and values. A key, payload or header set that
 * is not valid UTF-8 is base64 and flagged by "key_encoding", "payload_encoding"
 * or "headers_encoding": "base64". Returns 0 or -errno of the stream. */
int cli_write_json(FILE *f, const rn_message *m);

/* CSV (RFC 4180) for DuckDB and pandas: the header line, then one row per
 * record: topic,partition,offset,timestamp,key,value,headers,encoding.
 * A null key or value is an empty unquoted field; an empty one is "". headers
 * is the JSON array of cli_write_json (empty when none). encoding is "utf8",
 * or "base64" when key or value is not valid UTF-8 (both are then base64). */
int cli_write_csv_header(FILE *f);
int cli_write_csv(FILE *f, const rn_message *m);

/* A compiled kcat format string: %s value, %S value length, %k key, %K key
 * length, %t topic, %p partition, %o offset, %T timestamp (ms), %h headers
 * (name=value,…), %% a percent sign; backslash escapes as cli_unescape. Null
 * keys and values print as nothing and their length as -1. */
typedef struct cli_format cli_format;

/* Errors: -EINVAL with a message in err (unknown token), -ENOMEM. */
int cli_format_compile(const char *spec, cli_format **out, char *err, size_t errlen);
/* kcat's default: [key key_delim] value msg_delim; key_delim NULL = no key. */
int cli_format_default(const char *key_delim, size_t key_delim_len, const char *msg_delim,
                       size_t msg_delim_len, cli_format **out);
void cli_format_free(cli_format *f);
int cli_format_write(FILE *out, const cli_format *f, const rn_message *m);

/* ---- Commands ------------------------------------------------------------------- */

int cli_topic(int argc, char **argv);
int cli_produce(int argc, char **argv);
int cli_consume(int argc, char **argv);
int cli_replay(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_group(int argc, char **argv);
int cli_cluster(int argc, char **argv);

#endif
