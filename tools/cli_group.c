/*
 * cli_group.c — `runnel group list|describe|reset|delete`: consumer groups,
 * as kafka-consumer-groups shows and changes them.
 *
 * How it fits: thin over librunnel's group admin calls (rn_admin_list_groups,
 * rn_admin_describe_group, rn_admin_commit_offsets, rn_admin_delete_group)
 * and rn_admin_list_offset for the offsets a reset moves to. The coordinator
 * computes lag; this file only lays it out.
 *
 *   group list      one group id a line, sorted (-l: GROUP STATE MEMBERS)
 *   group coordinator  GROUP NODE HOST:PORT: the group's coordinator (the
 *                   leader of its __offsets partition) as the -b broker says
 *   group describe  kafka-consumer-groups --describe, column for column:
 *     GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
 *     one row per partition of every topic the group reads or has committed,
 *     "-" where there is nothing (no commit, no owner); columns padded to
 *     their widest cell. A group with no active member says so on stderr.
 *     --state: GROUP ASSIGNMENT-STRATEGY STATE EPOCH #MEMBERS, as
 *     --describe --state does (the epoch is the group epoch: it moves on
 *     every join, leave and topic change, so two equal answers in a row
 *     say nothing moved between them).
 *   group reset     the plan GROUP TOPIC PARTITION NEW-OFFSET; nothing
 *                   changes without --execute. Refused (exit 1), preview
 *                   included as in Kafka, while the group has active
 *                   members: their next commit would undo the reset.
 *   group delete    forgets the group's committed offsets (no active member).
 *
 * Invariants: stdout carries the tables only (messages on stderr); every
 * failing group is one line; the exit status is 1 if any failed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/errors.h"
#include "tools/cli_common.h"

enum {
    OPT_TOPIC = 256,
    OPT_EARLIEST,
    OPT_LATEST,
    OPT_TO_OFFSET,
    OPT_TO_DATETIME,
    OPT_EXECUTE,
    OPT_STATE,
};

enum reset_kind { R_NONE, R_EARLIEST, R_LATEST, R_OFFSET, R_DATETIME };

static void usage(FILE *f)
{
    fputs("usage: runnel group list|describe|reset|delete|coordinator [options] [GROUP...]\n"
          "\n"
          "Consumer groups: who reads what, how far behind, and where they start.\n"
          "\n"
          "subcommands:\n"
          "  list               group ids, one a line (-l: with state and member count)\n"
          "  coordinator GROUP... the broker that coordinates each (the leader of its\n"
          "                     __offsets partition), as the -b broker answers: GROUP NODE\n"
          "                     HOST:PORT\n"
          "  describe GROUP...  per partition: committed offset, log end offset, lag and\n"
          "                     owner, as kafka-consumer-groups --describe prints them:\n"
          "                     GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\n"
          "                     CONSUMER-ID HOST CLIENT-ID ('-' where there is none);\n"
          "                     --state: GROUP ASSIGNMENT-STRATEGY STATE EPOCH #MEMBERS\n"
          "  reset GROUP        move the group's committed offsets of --topic; prints the\n"
          "                     plan (GROUP TOPIC PARTITION NEW-OFFSET) and changes\n"
          "                     nothing unless --execute. Only while no consumer of the\n"
          "                     group runs.\n"
          "  delete GROUP...    forget a group and its committed offsets (no consumer may\n"
          "                     run)\n"
          "\n"
          "options:\n"
          "  -l, --long             list: GROUP STATE MEMBERS\n"
          "      --state            describe: the group's state instead of its partitions\n"
          "                         (Stable once every member holds its share)\n"
          "  -t, --topic TOPIC      reset: the topic whose offsets move (repeatable)\n"
          "      --to-earliest      reset: to the log start offset\n"
          "      --to-latest        reset: to the end (skip everything there now)\n"
          "      --to-offset N      reset: to offset N (kept within the log's range)\n"
          "      --to-datetime T    reset: to the first record at or after T, ISO 8601:\n"
          "                         2024-05-01T12:00:00Z, 2024-05-01T14:00:00.250+02:00,\n"
          "                         2024-05-01 (no zone: local time, as Kafka's tool)\n"
          "      --execute          reset: commit the plan (else it is only shown)\n" CLI_CONN_HELP
          "  -h, --help             this text\n"
          "\n"
          "examples:\n"
          "  runnel group list\n"
          "  runnel group list -l\n"
          "  runnel group describe billing\n"
          "  runnel group describe billing --state\n"
          "  runnel group reset billing --topic orders --to-earliest\n"
          "  runnel group reset billing --topic orders --to-datetime 2024-05-01T00:00:00Z "
          "--execute\n"
          "  runnel group reset billing --topic orders --to-offset 1000 --execute\n"
          "  runnel group delete billing\n",
          f);
}

/* An admin call's failure as one sentence; what names the subject ("group
 * billing"). The client's message already names it and says what went
 * wrong, so it goes out alone. */
static int admin_fail(rn_admin *a, int rc, const char *what)
{
    const char *ctx = a ? rn_admin_errmsg(a) : "";
    if (rc == -RN_E_UNKNOWN_GROUP)
        return cli_error("%s does not exist (it has no member and nothing committed)", what);
    if (rc == -RN_E_GROUP_NOT_EMPTY)
        return cli_error("%s has active members: stop its consumers first", what);
    if (rc == -RN_E_UNKNOWN_TOPIC && ctx && ctx[0])
        return cli_error("%s: %s", what, ctx);
    if (ctx && ctx[0])
        return cli_error("%s", ctx);
    return cli_error("%s: %s", what, rn_err_str(rc));
}

/* ---- Tables ---------------------------------------------------------------------------------- */

/* A table of strings printed with every column padded to its widest cell. */
typedef struct table {
    size_t n_cols, n_rows, cap;
    char **cells; /* n_rows * n_cols, row-major, owned */
} table;

static int table_init(table *t, size_t n_cols)
{
    memset(t, 0, sizeof(*t));
    t->n_cols = n_cols;
    return 0;
}

/* Append a row of n_cols strings (copied). Errors: -ENOMEM. */
static int table_add(table *t, const char *const *row)
{
    if (t->n_rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **v = realloc(t->cells, cap * t->n_cols * sizeof(*v));
        if (!v)
            return -ENOMEM;
        t->cells = v;
        t->cap = cap;
    }
    char **r = &t->cells[t->n_rows * t->n_cols];
    for (size_t c = 0; c < t->n_cols; c++) {
        r[c] = strdup(row[c] ? row[c] : "-");
        if (!r[c]) {
            while (c-- > 0)
                free(r[c]);
            return -ENOMEM;
        }
    }
    t->n_rows++;
    return 0;
}

static void table_print(const table *t, FILE *f)
{
    size_t w[16] = {0};
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols && c < 16; c++) {
            size_t len = strlen(t->cells[r * t->n_cols + c]);
            if (len > w[c])
                w[c] = len;
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = t->cells[r * t->n_cols + c];
            if (c + 1 == t->n_cols)
                fprintf(f, "%s\n", s); /* no trailing blanks */
            else
                fprintf(f, "%-*s  ", (int)w[c], s);
        }
    }
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* ---- list ------------------------------------------------------------------------------------ */

static int cmp_listing(const void *x, const void *y)
{
    return strcmp(((const rn_group_listing *)x)->group_id, ((const rn_group_listing *)y)->group_id);
}

static int do_list(rn_admin *a, bool lng)
{
    rn_group_listing *v;
    size_t n;
    int rc = rn_admin_list_groups(a, &v, &n);
    if (rc < 0)
        return admin_fail(a, rc, "list groups");
    qsort(v, n, sizeof(*v), cmp_listing);
    int status = CLI_OK;
    if (!lng) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", v[i].group_id);
        free(v);
        return status;
    }
    table t;
    table_init(&t, 3);
    const char *head[] = {"GROUP", "STATE", "MEMBERS"};
    rc = table_add(&t, head);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char members[16];
        snprintf(members, sizeof(members), "%" PRIu32, v[i].members);
        const char *row[] = {v[i].group_id, v[i].state, members};
        rc = table_add(&t, row);
    }
    if (rc < 0)
        status = cli_fail(rc, "list groups");
    else
        table_print(&t, stdout);
    table_free(&t);
    free(v);
    return status;
}

/* ---- describe -------------------------------------------------------------------------------- */

static const char *num_or_dash(char *buf, size_t len, int64_t v)
{
    if (v < 0)
        return "-";
    snprintf(buf, len, "%" PRId64, v);
    return buf;
}

static const char *str_or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* describe --state: one row of the group as a whole. */
static int describe_state(const rn_group_desc *d, bool first)
{
    table t;
    table_init(&t, 5);
    char epoch[16], members[24];
    snprintf(epoch, sizeof(epoch), "%" PRId32, d->group_epoch);
    snprintf(members, sizeof(members), "%zu", d->n_members);
    const char *head[] = {"GROUP", "ASSIGNMENT-STRATEGY", "STATE", "EPOCH", "#MEMBERS"};
    const char *row[] = {d->group_id, str_or_dash(d->assignor), str_or_dash(d->state), epoch,
                         members};
    int rc = table_add(&t, head);
    if (rc == 0)
        rc = table_add(&t, row);
    int status = CLI_OK;
    if (rc < 0) {
        status = cli_fail(rc, "group %s", d->group_id);
    } else {
        if (!first)
            putchar('\n');
        table_print(&t, stdout);
    }
    table_free(&t);
    return status;
}

static int describe_one(rn_admin *a, const char *group, bool first, bool state)
{
    rn_group_desc *d;
    char what[300];
    snprintf(what, sizeof(what), "group %s", group);
    int rc = rn_admin_describe_group(a, group, &d);
    if (rc < 0)
        return admin_fail(a, rc, what);
    if (state) {
        int st = describe_state(d, first);
        rn_admin_group_free(d);
        return st;
    }
    if (d->n_members == 0)
        cli_note("consumer group '%s' has no active members", group);
    table t;
    table_init(&t, 9);
    const char *head[] = {"GROUP", "TOPIC",       "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET",
                          "LAG",   "CONSUMER-ID", "HOST",      "CLIENT-ID"};
    rc = table_add(&t, head);
    for (size_t i = 0; rc == 0 && i < d->n_partitions; i++) {
        const rn_group_partition *p = &d->partitions[i];
        char part[16], cur[24], leo[24], lag[24];
        snprintf(part, sizeof(part), "%" PRId32, p->partition);
        const char *row[] = {d->group_id,
                             p->topic,
                             part,
                             num_or_dash(cur, sizeof(cur), p->committed_offset),
                             num_or_dash(leo, sizeof(leo), p->log_end_offset),
                             num_or_dash(lag, sizeof(lag), p->lag),
                             str_or_dash(p->member_id),
                             str_or_dash(p->host),
                             str_or_dash(p->client_id)};
        rc = table_add(&t, row);
    }
    int status = CLI_OK;
    if (rc < 0) {
        status = cli_fail(rc, "%s", what);
    } else {
        if (!first)
            putchar('\n'); /* a blank line between groups, as Kafka's tool */
        table_print(&t, stdout);
    }
    table_free(&t);
    rn_admin_group_free(d);
    return status;
}

/* ---- reset ----------------------------------------------------------------------------------- */

/* Two digits at s into *v; false when they are not digits. */
static bool two(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* ISO 8601 date and time to ms since the epoch: YYYY-MM-DD, then optionally
 * [T ]HH:MM[:SS[.fff]], then optionally Z or ±HH[[:]MM]; no zone = local
 * time. Errors: -EINVAL. */
static int parse_datetime(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int y, v, ms = 0;
    if (strlen(s) < 10 || !two(s, &y) || !two(s + 2, &v) || s[4] != '-')
        return -EINVAL;
    y = y * 100 + v;
    if (!two(s + 5, &tm.tm_mon) || s[7] != '-' || !two(s + 8, &tm.tm_mday))
        return -EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon -= 1;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (!two(p + 1, &tm.tm_hour) || p[3] != ':' || !two(p + 4, &tm.tm_min))
            return -EINVAL;
        p += 6;
        if (*p == ':') {
            if (!two(p + 1, &tm.tm_sec))
                return -EINVAL;
            p += 3;
            if (*p == '.' || *p == ',') {
                int digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                    if (digits < 3)
                        ms = ms * 10 + (*p - '0');
                if (digits == 0)
                    return -EINVAL;
                for (; digits < 3; digits++)
                    ms *= 10;
            }
        }
    }
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -EINVAL;
    time_t t;
    if (*p == 0) {
        tm.tm_isdst = -1; /* local time, daylight saving as it was then */
        t = mktime(&tm);
    } else {
        int64_t zone = 0;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, hh, mm = 0;
            if (!two(p + 1, &hh))
                return -EINVAL;
            p += 3;
            if (*p == ':')
                p++;
            if (*p && !two(p, &mm))
                return -EINVAL;
            if (*p)
                p += 2;
            if (hh > 23 || mm > 59)
                return -EINVAL;
            zone = sign * (hh * 3600 + mm * 60);
        }
        if (*p)
            return -EINVAL;
        t = timegm(&tm) - (time_t)zone;
    }
    if (t == (time_t)-1 && tm.tm_year != 69)
        return -EINVAL;
    if (t < 0)
        return -EINVAL; /* before 1970: no record is that old */
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

/* The new offset of one partition for the chosen reset. */
static int new_offset(rn_admin *a, const char *topic, int32_t p, enum reset_kind kind, int64_t v,
                      int64_t *out, bool *clamped)
{
    int64_t first, last, off;
    int rc = rn_admin_list_offset(a, topic, p, RN_OFFSET_EARLIEST, &first);
    if (rc == 0)
        rc = rn_admin_list_offset(a, topic, p, RN_OFFSET_LATEST, &last);
    if (rc < 0)
        return rc;
    *clamped = false;
    switch (kind) {
    case R_EARLIEST:
        *out = first;
        return 0;
    case R_LATEST:
        *out = last;
        return 0;
    case R_OFFSET:
        /* Kafka's tool clamps into the log's range rather than fail. */
        *out = v < first ? first : v > last ? last : v;
        *clamped = *out != v;
        return 0;
    case R_DATETIME:
        rc = rn_admin_list_offset(a, topic, p, v, &off);
        if (rc < 0)
            return rc;
        *out = off < 0 ? last : off; /* nothing that recent: the end */
        return 0;
    case R_NONE:
        break;
    }
    return -EINVAL;
}

static int do_reset(rn_admin *a, const char *group, const char **topics, size_t n_topics,
                    enum reset_kind kind, int64_t v, bool execute)
{
    char what[300];
    snprintf(what, sizeof(what), "group %s", group);
    /* Refused while consumers run: they would commit over the reset. */
    rn_group_desc *d;
    int rc = rn_admin_describe_group(a, group, &d);
    if (rc < 0 && rc != -RN_E_UNKNOWN_GROUP)
        return admin_fail(a, rc, what);
    if (rc == 0) {
        size_t members = d->n_members;
        rn_admin_group_free(d);
        if (members)
            return cli_error("%s has %zu active member%s: stop its consumers first (they "
                             "would commit over a reset)",
                             what, members, members == 1 ? "" : "s");
    }
    int status = CLI_ERROR;
    table t;
    table_init(&t, 4);
    const char **tv = NULL;
    int32_t *pv = NULL;
    int64_t *ov = NULL;
    size_t n = 0, cap = 0;
    const char *head[] = {"GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"};
    if (table_add(&t, head) < 0) {
        cli_fail(-ENOMEM, "%s", what);
        goto out;
    }
    for (size_t i = 0; i < n_topics; i++) {
        int32_t parts;
        rc = rn_admin_partition_count(a, topics[i], &parts);
        if (rc < 0) {
            char tw[300];
            snprintf(tw, sizeof(tw), "topic %s", topics[i]);
            if (rc == -RN_E_UNKNOWN_TOPIC)
                cli_error("topic %s does not exist", topics[i]);
            else
                admin_fail(a, rc, tw);
            goto out;
        }
        for (int32_t p = 0; p < parts; p++) {
            int64_t off;
            bool clamped;
            rc = new_offset(a, topics[i], p, kind, v, &off, &clamped);
            if (rc < 0) {
                char pw[300];
                snprintf(pw, sizeof(pw), "offsets of %s partition %d", topics[i], p);
                admin_fail(a, rc, pw);
                goto out;
            }
            if (clamped)
                cli_note("offset %" PRId64 " is outside what %s partition %d holds: %" PRId64
                         " instead",
                         v, topics[i], p, off);
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                const char **nt = realloc(tv, cap * sizeof(*nt));
                if (nt)
                    tv = nt;
                int32_t *np = realloc(pv, cap * sizeof(*np));
                if (np)
                    pv = np;
                int64_t *no = realloc(ov, cap * sizeof(*no));
                if (no)
                    ov = no;
                if (!nt || !np || !no) {
                    cli_fail(-ENOMEM, "%s", what);
                    goto out;
                }
            }
            tv[n] = topics[i];
            pv[n] = p;
            ov[n++] = off;
            char ps[16], os[24];
            snprintf(ps, sizeof(ps), "%" PRId32, p);
            snprintf(os, sizeof(os), "%" PRId64, off);
            const char *row[] = {group, topics[i], ps, os};
            if (table_add(&t, row) < 0) {
                cli_fail(-ENOMEM, "%s", what);
                goto out;
            }
        }
    }
    table_print(&t, stdout);
    if (!execute) {
        cli_note("preview only: nothing changed (add --execute to commit these offsets)");
        status = CLI_OK;
        goto out;
    }
    rc = rn_admin_commit_offsets(a, group, tv, pv, ov, n);
    if (rc < 0) {
        admin_fail(a, rc, what);
        goto out;
    }
    cli_note("committed %zu offset%s for group %s", n, n == 1 ? "" : "s", group);
    status = CLI_OK;
out:
    table_free(&t);
    free(tv);
    free(pv);
    free(ov);
    return status;
}

/* ---- Command --------------------------------------------------------------------------------- */

int cli_group(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"long", no_argument, NULL, 'l'},
        {"topic", required_argument, NULL, 't'},
        {"to-earliest", no_argument, NULL, OPT_EARLIEST},
        {"to-latest", no_argument, NULL, OPT_LATEST},
        {"to-offset", required_argument, NULL, OPT_TO_OFFSET},
        {"to-datetime", required_argument, NULL, OPT_TO_DATETIME},
        {"execute", no_argument, NULL, OPT_EXECUTE},
        {"state", no_argument, NULL, OPT_STATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_conn conn;
    cli_conn_init(&conn);
    const char **topics = NULL;
    size_t n_topics = 0;
    enum reset_kind kind = R_NONE;
    int n_kinds = 0;
    int64_t reset_v = 0;
    bool lng = false, execute = false, state = false;
    int status = CLI_USAGE;
    rn_admin *a = NULL;
    static char cmd_buf[32];

    int c;
    while ((c = cli_getopt(argc, argv, ":b:X:lt:h", longopts, &conn, usage, &status)) != -1) {
        switch (c) {
        case 'l':
            lng = true;
            break;
        case 't':
            status = cli_strv_push(&topics, &n_topics, optarg);
            if (status != CLI_OK)
                goto out;
            break;
        case OPT_EARLIEST:
            kind = R_EARLIEST;
            n_kinds++;
            break;
        case OPT_LATEST:
            kind = R_LATEST;
            n_kinds++;
            break;
        case OPT_TO_OFFSET:
            if (cli_parse_i64(optarg, 0, INT64_MAX, &reset_v) < 0) {
                status = cli_usage("--to-offset %s: expected an offset from 0", optarg);
                goto out;
            }
            kind = R_OFFSET;
            n_kinds++;
            break;
        case OPT_TO_DATETIME:
            if (parse_datetime(optarg, &reset_v) < 0) {
                status = cli_usage("--to-datetime %s: expected ISO 8601, e.g. "
                                   "2024-05-01T12:00:00Z or 2024-05-01",
                                   optarg);
                goto out;
            }
            kind = R_DATETIME;
            n_kinds++;
            break;
        case OPT_EXECUTE:
            execute = true;
            break;
        case OPT_STATE:
            state = true;
            break;
        case CLI_OPT_EXIT:
            goto out;
        default:
            status = cli_opt_error(c, argv);
            goto out;
        }
    }
    if (optind >= argc) {
        status = cli_usage("which one: list, describe, reset or delete?");
        goto out;
    }
    const char *sub = argv[optind++];
    char **names = argv + optind;
    int n = argc - optind;
    bool is_list = !strcmp(sub, "list") || !strcmp(sub, "ls");
    bool is_describe = !strcmp(sub, "describe");
    bool is_reset = !strcmp(sub, "reset");
    bool is_delete = !strcmp(sub, "delete");
    bool is_coord = !strcmp(sub, "coordinator");
    if (!is_list && !is_describe && !is_reset && !is_delete && !is_coord) {
        status = cli_usage("unknown subcommand '%s' (list, describe, reset, delete)", sub);
        goto out;
    }
    if (lng && !is_list) {
        status = cli_usage("-l goes with 'group list'");
        goto out;
    }
    if (state && !is_describe) {
        status = cli_usage("--state goes with 'group describe'");
        goto out;
    }
    if (!is_reset && (n_topics || n_kinds || execute)) {
        status = cli_usage("--topic, --to-* and --execute go with 'group reset'");
        goto out;
    }
    if (is_list && n > 0) {
        status = cli_usage("'group list' takes no group names");
        goto out;
    }
    if (!is_list && n == 0) {
        status = cli_usage("'group %s' needs a group name", sub);
        goto out;
    }
    if (is_reset) {
        if (n > 1) {
            status = cli_usage("'group reset' takes one group ('%s' is extra)", names[1]);
            goto out;
        }
        if (n_topics == 0) {
            status = cli_usage("'group reset' needs --topic TOPIC");
            goto out;
        }
        if (n_kinds != 1) {
            status = cli_usage("'group reset' needs exactly one of --to-earliest, --to-latest, "
                               "--to-offset N, --to-datetime T");
            goto out;
        }
    }
    snprintf(cmd_buf, sizeof(cmd_buf), "group %s", sub);
    cli_cmd = cmd_buf;

    status = cli_admin_start(&conn, &a);
    if (status != CLI_OK)
        goto out;
    if (is_list) {
        status = do_list(a, lng);
    } else if (is_describe) {
        status = CLI_OK;
        for (int i = 0; i < n; i++)
            if (describe_one(a, names[i], i == 0, state) != CLI_OK)
                status = CLI_ERROR;
    } else if (is_reset) {
        status = do_reset(a, names[0], topics, n_topics, kind, reset_v, execute);
    } else if (is_coord) {
        /* As the broker named by -b (the first reachable) answers it. */
        status = CLI_OK;
        for (int i = 0; i < n; i++) {
            int32_t node;
            char host[256];
            uint16_t port;
            int rc = rn_admin_find_coordinator(a, names[i], &node, host, sizeof(host), &port);
            if (rc < 0) {
                char what[300];
                snprintf(what, sizeof(what), "group %s", names[i]);
                admin_fail(a, rc, what);
                status = CLI_ERROR;
                continue;
            }
            printf("%s\t%d\t%s:%u\n", names[i], node, host, port);
        }
    } else {
        status = CLI_OK;
        for (int i = 0; i < n; i++) {
            char what[300];
            snprintf(what, sizeof(what), "group %s", names[i]);
            int rc = rn_admin_delete_group(a, names[i]);
            if (rc < 0) {
                admin_fail(a, rc, what);
                status = CLI_ERROR;
                continue;
            }
            cli_note("deleted group %s", names[i]);
        }
    }
out:
    if (a)
        rn_admin_free(a);
    free(topics);
    cli_conn_fini(&conn);
    return status;
}
