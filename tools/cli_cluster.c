/*
 * cli_cluster.c — `runnel cluster status`: the metadata quorum and the
 * brokers as the broker asked sees them (DESIGN §8; ClusterStatus).
 *
 * Output (stdout; key: value lines a script can grep, then two tables):
 *
 *     node: 2                    the broker that answered
 *     role: follower             its quorum role
 *     controller: 1              the active controller (quorum leader), - when none
 *     epoch: 3
 *     high-watermark: 17         the metadata log's commit offset
 *     log-end-offset: 17
 *     applied-offset: 17
 *     clustered: true
 *     partitions: 12             every partition in the metadata image
 *     under-replicated: 0        ISR smaller than the replicas
 *     offline: 3                 no leader, or a fenced one
 *     VOTER  ENDPOINT          MATCH-OFFSET  LAST-FETCH-MS
 *     BROKER ENDPOINT          EPOCH  STATE    LAST-HEARTBEAT-MS
 *     UNDER-REPLICATED  PARTITION  LEADER  EPOCH  REPLICAS  ISR      (only when some are)
 *     OFFLINE           PARTITION  LEADER  EPOCH  REPLICAS  ISR      (only when some are)
 *
 * Fetch positions and heartbeat ages are the controller's to know: "-"
 * when asked elsewhere. STATE is "fenced" or "active". The partition tables
 * list topic names in their first column, at most CLUSTER_LISTED rows each,
 * then "... and N more". -b names the broker to ask (the first of the list
 * that answers).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/runnel.h"
#include "tools/cli_common.h"
#include "tools/cli_move.h"

/* Rows of each partition table; the counts above them are always whole. */
#define CLUSTER_LISTED 20

static void usage(FILE *f)
{
    fputs("usage: runnel cluster status|drain [options]\n"
          "\n"
          "The metadata quorum as the broker asked sees it: its role, the active\n"
          "controller, the epoch, the metadata log's high watermark, the voters, every\n"
          "registered broker with its epoch and whether it is fenced, and the partitions\n"
          "that are under-replicated (ISR smaller than the replicas) or offline (no\n"
          "leader, or a fenced one): their counts, and the first 20 of each.\n"
          "\n"
          "  drain BROKER   move every replica off BROKER (before removing it): each goes\n"
          "                 to the live broker with the fewest replicas; the moves complete\n"
          "                 as the new replicas catch up (runnel topic describe);\n"
          "                 --throttle BYTES_PER_SEC bounds their catch-up\n"
          "\n"
          "options:\n" CLI_CONN_HELP "  -h, --help                   this text\n"
          "\n"
          "examples:\n"
          "  runnel cluster status\n"
          "  runnel -b 127.0.0.1:9701 cluster status\n"
          "  runnel cluster drain 3\n"
          "  runnel cluster drain 3 --throttle 20971520\n",
          f);
}

static void num_or_dash(char *buf, size_t len, int64_t v)
{
    if (v < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%" PRId64, v);
}

/* "1,2,3", or "-" for none, into buf (truncated with "..." when it does not fit). */
static void id_list(char *buf, size_t len, const int32_t *ids, size_t n)
{
    size_t pos = 0;
    snprintf(buf, len, "-");
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + pos, len - pos, "%s%d", i ? "," : "", ids[i]);
        if (w < 0 || (size_t)w >= len - pos) {
            snprintf(buf + (len > 4 ? len - 4 : 0), len > 4 ? 4 : len, "...");
            return;
        }
        pos += (size_t)w;
    }
}

static void print_partitions(const char *title, const rn_cluster_partition *ps, size_t n,
                             int64_t count)
{
    if (count <= 0)
        return;
    printf("%-24s %-9s %-6s %-6s %-16s %s\n", title, "PARTITION", "LEADER", "EPOCH", "REPLICAS",
           "ISR");
    size_t shown = n < CLUSTER_LISTED ? n : CLUSTER_LISTED;
    for (size_t i = 0; i < shown; i++) {
        char leader[16], reps[128], isr[128];
        num_or_dash(leader, sizeof(leader), ps[i].leader);
        id_list(reps, sizeof(reps), ps[i].replicas, ps[i].n_replicas);
        id_list(isr, sizeof(isr), ps[i].isr, ps[i].n_isr);
        printf("%-24s %-9d %-6s %-6d %-16s %s\n", ps[i].topic, ps[i].partition, leader,
               ps[i].leader_epoch, reps, isr);
    }
    if (count > (int64_t)shown)
        printf("... and %" PRId64 " more\n", count - (int64_t)shown);
}

static int print_status(const rn_cluster_status *st)
{
    char ctl[16];
    num_or_dash(ctl, sizeof(ctl), st->leader_id);
    printf("node: %d\nrole: %s\ncontroller: %s\nepoch: %d\nhigh-watermark: %" PRId64
           "\nlog-end-offset: %" PRId64 "\napplied-offset: %" PRId64 "\nclustered: %s\n",
           st->node_id, st->role, ctl, st->epoch, st->high_watermark, st->log_end_offset,
           st->applied_offset, st->clustered ? "true" : "false");
    printf("partitions: %" PRId64 "\nunder-replicated: %" PRId64 "\noffline: %" PRId64 "\n",
           st->partitions, st->under_replicated_count, st->offline_count);
    if (st->n_voters) {
        printf("%-6s %-24s %-13s %s\n", "VOTER", "ENDPOINT", "MATCH-OFFSET", "LAST-FETCH-MS");
        for (size_t i = 0; i < st->n_voters; i++) {
            char m[24], f[24];
            num_or_dash(m, sizeof(m), st->voters[i].match_offset);
            num_or_dash(f, sizeof(f), st->voters[i].last_fetch_ms);
            printf("%-6d %-24s %-13s %s\n", st->voters[i].id, st->voters[i].endpoint, m, f);
        }
    }
    printf("%-6s %-24s %-6s %-7s %s\n", "BROKER", "ENDPOINT", "EPOCH", "STATE",
           "LAST-HEARTBEAT-MS");
    for (size_t i = 0; i < st->n_brokers; i++) {
        char hb[24];
        num_or_dash(hb, sizeof(hb), st->brokers[i].last_heartbeat_ms);
        printf("%-6d %-24s %-6" PRId64 " %-7s %s\n", st->brokers[i].id, st->brokers[i].endpoint,
               st->brokers[i].epoch, st->brokers[i].fenced ? "fenced" : "active", hb);
    }
    print_partitions("UNDER-REPLICATED", st->under_replicated, st->n_under_replicated,
                     st->under_replicated_count);
    print_partitions("OFFLINE", st->offline, st->n_offline, st->offline_count);
    return CLI_OK;
}

int cli_cluster(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_CONN_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"throttle", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    int64_t throttle = 0;
    cli_conn conn;
    cli_conn_init(&conn);
    int status = CLI_USAGE;
    rn_admin *a = NULL;
    rn_conf *conf = NULL;
    int c;
    while ((c = getopt_long(argc, argv, ":b:X:h", longopts, NULL)) != -1) {
        int rc = cli_conn_opt(&conn, c, optarg);
        if (rc < 0) {
            status = cli_fail(rc, "options");
            goto out;
        }
        if (rc == 1)
            continue;
        if (c == 'h') {
            usage(stdout);
            status = CLI_OK;
            goto out;
        }
        if (c == 'T') {
            if (cli_parse_i64(optarg, 1, INT64_MAX, &throttle) < 0) {
                status = cli_usage("--throttle %s: bytes per second, from 1", optarg);
                goto out;
            }
            continue;
        }
        status = cli_opt_error(c, argv);
        goto out;
    }
    if (optind >= argc) {
        status = cli_usage("which one: status?");
        goto out;
    }
    const char *sub = argv[optind++];
    bool drain = strcmp(sub, "drain") == 0;
    if (strcmp(sub, "status") != 0 && !drain) {
        status = cli_usage("unknown subcommand '%s' (status, drain)", sub);
        goto out;
    }
    if (drain && optind + 1 != argc) {
        status = cli_usage("'cluster drain' takes one broker id");
        goto out;
    }
    if (throttle && !drain) {
        status = cli_usage("--throttle goes with 'cluster drain'");
        goto out;
    }
    if (!drain && optind < argc) {
        status = cli_usage("'cluster status' takes no arguments ('%s' is extra)", argv[optind]);
        goto out;
    }
    cli_cmd = drain ? "cluster drain" : "cluster status";
    status = cli_conn_start(&conn);
    if (status != CLI_OK)
        goto out;
    conf = cli_conn_conf(&conn, NULL);
    if (!conf) {
        status = CLI_ERROR;
        goto out;
    }
    int rc = rn_admin_new(&a, conf);
    if (rc < 0) {
        status = cli_fail(rc, "admin client");
        goto out;
    }
    if (drain) {
        status = cli_drain_broker(a, argv[optind], throttle);
        goto out;
    }
    rn_cluster_status *st;
    rc = rn_admin_cluster_status(a, &st);
    if (rc < 0) {
        const char *ctx = rn_admin_errmsg(a);
        status = ctx && ctx[0] ? cli_error("%s", ctx) : cli_fail(rc, "cluster status");
        goto out;
    }
    status = print_status(st);
    free(st);
out:
    rn_admin_free(a);
    rn_conf_free(conf);
    cli_conn_fini(&conn);
    return status;
}
