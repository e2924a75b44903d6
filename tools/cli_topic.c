/*
 * cli_topic.c — `runnel topic create|list|describe|alter|delete`.
 *
 * How it fits: thin over librunnel's admin calls (rn_admin_*). Output follows
 * Kafka's tools, so eyes and scripts used to them read it unchanged:
 *
 *   topic create   "Created topic orders."            (kafka-topics --create)
 *   topic list     one name a line, sorted             (kafka-topics --list)
 *   topic describe kafka-topics --describe, plus the partition's offsets:
 *     Topic: orders<TAB>PartitionCount: 3<TAB>ReplicationFactor: 1<TAB>Configs: k=v,...
 *       (the topic's overrides, as kafka-topics; -a: every effective setting)
 *     <TAB>Topic: orders<TAB>Partition: 0<TAB>Leader: 1<TAB>Replicas: 1<TAB>Isr: 1
 *         <TAB>LogStartOffset: 0<TAB>HighWatermark: 42<TAB>LogEndOffset: 42
 *   topic alter    "Updated config for topic orders."; with -p N first
 *                  "Topic orders now has N partitions."
 *   topic delete   "Deleted topic orders."
 *
 * Invariants: several names act on each in turn, and the exit status is 1 if
 * any failed (each failure is one line naming its topic); --if-not-exists and
 * --if-exists turn "already there" / "not there" into success for scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/topic_name.h"
#include "tools/cli_common.h"
#include "tools/cli_move.h"

enum { OPT_IF_NOT_EXISTS = 256, OPT_IF_EXISTS, OPT_DELETE_CONFIG, OPT_THROTTLE };

/* Key/value pairs from repeated -c k=v, pointing into argv. */
typedef struct kv_list {
    const char **keys;
    const char **values;
    char **owned; /* the key copies (argv is not cut in place) */
    size_t n;
} kv_list;

static void kv_free(kv_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->owned[i]);
    free(l->keys);
    free(l->values);
    free(l->owned);
    memset(l, 0, sizeof(*l));
}

/* Add "k=v". Returns 0, -EINVAL (no '=' or empty key), -ENOMEM. */
static int kv_add(kv_list *l, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return -EINVAL;
    char *key = strndup(arg, (size_t)(eq - arg));
    const char **k = realloc(l->keys, (l->n + 1) * sizeof(*k));
    if (k)
        l->keys = k;
    const char **v = realloc(l->values, (l->n + 1) * sizeof(*v));
    if (v)
        l->values = v;
    char **o = realloc(l->owned, (l->n + 1) * sizeof(*o));
    if (o)
        l->owned = o;
    if (!key || !k || !v || !o) {
        free(key);
        return -ENOMEM;
    }
    l->keys[l->n] = key;
    l->values[l->n] = eq + 1;
    l->owned[l->n] = key;
    l->n++;
    return 0;
}

/* An admin call's failure as one sentence. The client's message names the
 * topic and says what went wrong ("topic orders already exists"), so it goes
 * out alone: the command's name or the code's text would only repeat it. */
static void admin_fail(rn_admin *a, int rc, const char *what, const char *topic)
{
    const char *ctx = a ? rn_admin_errmsg(a) : "";
    if (rc == -RN_E_UNKNOWN_TOPIC)
        cli_error("topic %s does not exist", topic);
    else if (ctx && ctx[0])
        cli_error("%s", ctx);
    else
        cli_error("%s %s: %s", what, topic, rn_err_str(rc));
}

/* ------------------------------------------------------------------------ */
/* Help                                                                      */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: runnel topic create|list|describe|alter|delete|move [options] [TOPIC...]\n"
          "\n"
          "  create TOPIC...    -p PARTITIONS  -r REPLICAS  -c KEY=VALUE (repeatable)\n"
          "                     --if-not-exists: a topic already there is not an error\n"
          "  list               topic names, one a line (-l: with partitions and replicas,\n"
          "                     -i: with the broker's internal topics such as __offsets)\n"
          "  describe TOPIC...  partitions, leaders, replicas, ISR, offsets, and the configs\n"
          "                     set on the topic (-a, --all: every setting, defaults too)\n"
          "  alter TOPIC...     -p PARTITIONS to add partitions (never fewer; keys then map\n"
          "                     to other partitions), -c KEY=VALUE to set, --delete-config KEY\n"
          "                     to reset to default\n"
          "  delete TOPIC...    --if-exists: a topic not there is not an error\n"
          "  move TOPIC PARTITION BROKERS\n"
          "                     move the partition's replicas to BROKERS (2,3,4: the first\n"
          "                     leads); the new ones catch up, then the old ones leave;\n"
          "                     --throttle BYTES_PER_SEC bounds their catch-up (Kafka's\n"
          "                     replication throttle; in-sync replicas are never slowed)\n"
          "\n"
          "options:\n" CLI_CONN_HELP "  -h, --help                   this text\n"
          "\n"
          "examples:\n"
          "  runnel topic create orders -p 6 -c retention.ms=86400000\n"
          "  runnel topic list\n"
          "  runnel topic describe orders\n"
          "  runnel topic alter orders -c retention.ms=3600000 --delete-config segment.bytes\n"
          "  runnel topic alter orders -p 12\n"
          "  runnel topic delete orders --if-exists\n"
          "  runnel topic move orders 0 2,3,4\n"
          "  runnel topic move orders 0 2,3,4 --throttle 20971520\n",
          f);
}

/* ------------------------------------------------------------------------ */
/* Subcommands                                                               */
/* ------------------------------------------------------------------------ */

static int do_create(rn_admin *a, char **names, int n, int64_t partitions, int64_t replicas,
                     const kv_list *cfg, bool if_not_exists)
{
    int status = CLI_OK;
    for (int i = 0; i < n; i++) {
        int rc = rn_admin_create_topic(a, names[i], (int32_t)partitions, (int16_t)replicas,
                                       cfg->keys, cfg->values, cfg->n);
        if (rc == -RN_E_TOPIC_EXISTS && if_not_exists)
            continue;
        if (rc < 0) {
            admin_fail(a, rc, "creating topic", names[i]);
            status = CLI_ERROR;
            continue;
        }
        printf("Created topic %s.\n", names[i]);
    }
    return status;
}

static int do_delete(rn_admin *a, char **names, int n, bool if_exists)
{
    int status = CLI_OK;
    for (int i = 0; i < n; i++) {
        int rc = rn_admin_delete_topic(a, names[i]);
        if (rc == -RN_E_UNKNOWN_TOPIC && if_exists)
            continue;
        if (rc < 0) {
            admin_fail(a, rc, "deleting topic", names[i]);
            status = CLI_ERROR;
            continue;
        }
        printf("Deleted topic %s.\n", names[i]);
    }
    return status;
}

static int do_list(rn_admin *a, bool lng, bool internal)
{
    char **names = NULL;
    size_t n = 0;
    int rc = rn_admin_list_topics(a, &names, &n);
    if (rc < 0) {
        admin_fail(a, rc, "listing", "topics");
        return CLI_ERROR;
    }
    int status = CLI_OK;
    if (lng)
        printf("%-32s %10s %8s\n", "NAME", "PARTITIONS", "REPLICAS");
    for (size_t i = 0; i < n; i++) {
        /* The broker's own topics (__offsets) only when asked, as rpk does. */
        if (!internal && rn_topic_is_internal(names[i]))
            continue;
        if (!lng) {
            printf("%s\n", names[i]);
            continue;
        }
        rn_topic_desc *d = NULL;
        rc = rn_admin_describe_topic(a, names[i], &d);
        if (rc < 0) {
            /* Deleted between list and describe: still say it was there. */
            admin_fail(a, rc, "describing topic", names[i]);
            status = CLI_ERROR;
            continue;
        }
        size_t repl = d->n_partitions ? d->partitions[0].n_replicas : 0;
        printf("%-32s %10zu %8zu\n", names[i], d->n_partitions, repl);
        rn_admin_describe_free(d);
    }
    free(names);
    return status;
}

static void print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf(i ? ",%" PRId32 : "%" PRId32, ids[i]);
}

/* The ids of a[0..na) not in b[0..nb), comma-separated ("-" when none).
 * During a move the replicas hold the target and the leaving ones, so
 * describe's "adding" is the target's not yet in the ISR and "removing" the
 * replicas not in the target. */
static void print_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    bool any = false;
    for (size_t i = 0; i < na; i++) {
        bool in = false;
        for (size_t j = 0; j < nb; j++)
            in |= a[i] == b[j];
        if (!in) {
            printf(any ? ",%" PRId32 : "%" PRId32, a[i]);
            any = true;
        }
    }
    if (!any)
        putchar('-');
}

/* Configs: the topic's overrides, as kafka-topics prints them; with all,
 * every effective setting, defaults included. */
static int do_describe(rn_admin *a, char **names, int n, bool all)
{
    int status = CLI_OK;
    for (int i = 0; i < n; i++) {
        rn_topic_desc *d = NULL;
        int rc = rn_admin_describe_topic(a, names[i], &d);
        if (rc < 0) {
            admin_fail(a, rc, "describing topic", names[i]);
            status = CLI_ERROR;
            continue;
        }
        size_t repl = 0;
        for (size_t p = 0; p < d->n_partitions; p++)
            if (d->partitions[p].n_replicas > repl)
                repl = d->partitions[p].n_replicas;
        printf("Topic: %s\tPartitionCount: %zu\tReplicationFactor: %zu\tConfigs: ", d->name,
               d->n_partitions, repl);
        bool first = true;
        for (size_t c = 0; c < d->n_configs; c++) {
            if (!all && !(d->config_overridden && d->config_overridden[c]))
                continue;
            printf("%s%s=%s", first ? "" : ",", d->config_keys[c], d->config_values[c]);
            first = false;
        }
        putchar('\n');
        for (size_t p = 0; p < d->n_partitions; p++) {
            const rn_partition_desc *pd = &d->partitions[p];
            printf("\tTopic: %s\tPartition: %" PRId32 "\tLeader: %" PRId32 "\tLeaderEpoch: %" PRId32
                   "\tReplicas: ",
                   d->name, pd->partition, pd->leader, pd->leader_epoch);
            print_ids(pd->replicas, pd->n_replicas);
            fputs("\tIsr: ", stdout);
            print_ids(pd->isr, pd->n_isr);
            printf("\tLogStartOffset: %" PRId64 "\tHighWatermark: %" PRId64
                   "\tLogEndOffset: %" PRId64,
                   pd->log_start_offset, pd->high_watermark, pd->log_end_offset);
            if (pd->n_target) { /* a move under way, as kafka-topics shows it */
                fputs("\tAddingReplicas: ", stdout);
                print_diff(pd->target, pd->n_target, pd->isr, pd->n_isr);
                fputs("\tRemovingReplicas: ", stdout);
                print_diff(pd->replicas, pd->n_replicas, pd->target, pd->n_target);
                if (pd->throttle > 0)
                    printf("\tThrottle: %" PRId64, pd->throttle);
            }
            if (pd->n_elr) { /* KIP-966, as kafka-topics shows it */
                fputs("\tElr: ", stdout);
                print_ids(pd->elr, pd->n_elr);
            }
            putchar('\n');
        }
        rn_admin_describe_free(d);
    }
    return status;
}

/* -p grows each topic first (kafka-topics --alter --partitions), then -c and
 * --delete-config apply; a topic whose growth fails is not reconfigured. */
static int do_alter(rn_admin *a, char **names, int n, int64_t partitions, const kv_list *set,
                    const char **del, size_t n_del)
{
    int status = CLI_OK;
    for (int i = 0; i < n; i++) {
        if (partitions > 0) {
            int rc = rn_admin_create_partitions(a, names[i], (int32_t)partitions);
            if (rc < 0) {
                admin_fail(a, rc, "adding partitions to topic", names[i]);
                status = CLI_ERROR;
                continue;
            }
            printf("Topic %s now has %" PRId64 " partitions.\n", names[i], partitions);
        }
        if (set->n == 0 && n_del == 0)
            continue;
        int rc = rn_admin_alter_configs(a, names[i], set->keys, set->values, set->n, del, n_del);
        if (rc < 0) {
            admin_fail(a, rc, "altering topic", names[i]);
            status = CLI_ERROR;
            continue;
        }
        printf("Updated config for topic %s.\n", names[i]);
    }
    return status;
}

/* ------------------------------------------------------------------------ */
/* Entry                                                                     */
/* ------------------------------------------------------------------------ */

int cli_topic(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"partitions", required_argument, NULL, 'p'},
        {"replicas", required_argument, NULL, 'r'},
        {"replication-factor", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"delete-config", required_argument, NULL, OPT_DELETE_CONFIG},
        {"if-not-exists", no_argument, NULL, OPT_IF_NOT_EXISTS},
        {"if-exists", no_argument, NULL, OPT_IF_EXISTS},
        {"long", no_argument, NULL, 'l'},
        {"internal", no_argument, NULL, 'i'},
        {"all", no_argument, NULL, 'a'},
        {"throttle", required_argument, NULL, OPT_THROTTLE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cli_conn conn;
    cli_conn_init(&conn);
    kv_list cfg = {0};
    const char **del = NULL;
    size_t n_del = 0;
    int64_t partitions = -1, replicas = -1, throttle = 0;
    bool if_not_exists = false, if_exists = false, lng = false, have_p = false, have_r = false;
    bool all = false;
    bool internal = false;
    int status = CLI_USAGE;
    rn_admin *a = NULL;
    static char cmd_buf[32];

    int c;
    while ((c = cli_getopt(argc, argv, ":b:X:p:r:c:liah", longopts, &conn, usage, &status)) != -1) {
        switch (c) {
        case 'p':
            if (cli_parse_i64(optarg, 1, INT32_MAX, &partitions) < 0) {
                status = cli_usage("-p %s: partitions must be a number from 1", optarg);
                goto out;
            }
            have_p = true;
            break;
        case 'r':
            if (cli_parse_i64(optarg, 1, INT16_MAX, &replicas) < 0) {
                status = cli_usage("-r %s: replicas must be a number from 1", optarg);
                goto out;
            }
            have_r = true;
            break;
        case 'c': {
            int rc = kv_add(&cfg, optarg);
            if (rc == -EINVAL) {
                status = cli_usage("-c %s: expected KEY=VALUE", optarg);
                goto out;
            }
            if (rc < 0) {
                status = cli_fail(rc, "options");
                goto out;
            }
            break;
        }
        case OPT_DELETE_CONFIG:
            status = cli_strv_push(&del, &n_del, optarg);
            if (status != CLI_OK)
                goto out;
            break;
        case OPT_IF_NOT_EXISTS:
            if_not_exists = true;
            break;
        case OPT_THROTTLE:
            if (cli_parse_i64(optarg, 1, INT64_MAX, &throttle) < 0) {
                status = cli_usage("--throttle %s: bytes per second, from 1", optarg);
                goto out;
            }
            break;
        case OPT_IF_EXISTS:
            if_exists = true;
            break;
        case 'l':
            lng = true;
            break;
        case 'i':
            internal = true;
            break;
        case 'a':
            all = true;
            break;
        case CLI_OPT_EXIT:
            goto out;
        default:
            status = cli_opt_error(c, argv);
            goto out;
        }
    }
    if (optind >= argc) {
        status = cli_usage("which one: create, list, describe, alter or delete?");
        goto out;
    }
    const char *sub = argv[optind++];
    char **names = argv + optind;
    int n = argc - optind;
    snprintf(cmd_buf, sizeof(cmd_buf), "topic %s", sub);
    bool is_create = strcmp(sub, "create") == 0, is_alter = strcmp(sub, "alter") == 0;
    bool is_list = strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0;
    bool is_describe = strcmp(sub, "describe") == 0;
    bool is_delete = strcmp(sub, "delete") == 0;
    bool is_move = strcmp(sub, "move") == 0;
    if (!is_create && !is_alter && !is_list && !is_describe && !is_delete && !is_move) {
        status =
            cli_usage("unknown subcommand '%s' (create, list, describe, alter, delete, move)", sub);
        goto out;
    }
    if (is_move && n != 3) {
        status = cli_usage("'topic move' takes TOPIC PARTITION BROKERS (e.g. orders 0 2,3,4)");
        goto out;
    }
    /* Messages from here name the subcommand; --help hints stay at "topic". */
    if ((have_p && !is_create && !is_alter) || (have_r && !is_create)) {
        status = cli_usage(have_r ? "-r goes with 'topic create'"
                                  : "-p goes with 'topic create' and 'topic alter'");
        goto out;
    }
    if (cfg.n && !is_create && !is_alter) {
        status = cli_usage("-c goes with 'topic create' and 'topic alter'");
        goto out;
    }
    if (n_del && !is_alter) {
        status = cli_usage("--delete-config goes with 'topic alter'");
        goto out;
    }
    if (throttle && !is_move) {
        status = cli_usage("--throttle goes with 'topic move'");
        goto out;
    }
    if (all && !is_describe) {
        status = cli_usage("-a goes with 'topic describe'");
        goto out;
    }
    if (is_list && n > 0) {
        status = cli_usage("'topic list' takes no topic names");
        goto out;
    }
    if (!is_list && n == 0) {
        status = cli_usage("'topic %s' needs at least one topic name", sub);
        goto out;
    }
    if (is_alter && cfg.n == 0 && n_del == 0 && !have_p) {
        status =
            cli_usage("'topic alter' needs -p PARTITIONS, -c KEY=VALUE or --delete-config KEY");
        goto out;
    }
    cli_cmd = cmd_buf;

    status = cli_admin_start(&conn, &a);
    if (status != CLI_OK)
        goto out;
    if (is_create)
        status = do_create(a, names, n, partitions, replicas, &cfg, if_not_exists);
    else if (is_delete)
        status = do_delete(a, names, n, if_exists);
    else if (is_list)
        status = do_list(a, lng, internal);
    else if (is_describe)
        status = do_describe(a, names, n, all);
    else if (is_move)
        status = cli_move_partition(a, names[0], names[1], names[2], throttle);
    else
        status = do_alter(a, names, n, partitions, &cfg, del, n_del);
out:
    if (a)
        rn_admin_free(a);
    kv_free(&cfg);
    free(del);
    cli_conn_fini(&conn);
    return status;
}
