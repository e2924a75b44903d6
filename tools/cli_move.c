/*
 * cli_move.c — `runnel topic move` and `runnel cluster drain` (see
 * cli_move.h): the client side of Kafka's partition reassignment.
 *
 * Both only start moves (ReassignPartitions answers once a move is
 * accepted); the new replicas catch up as followers and each move completes
 * once its target is in sync. `runnel topic describe` shows a move under way
 * (AddingReplicas / RemovingReplicas) until then.
 *
 * drain decides every target here, from one look at the cluster: live
 * brokers from cluster status, replicas from describing every topic (the
 * broker's internal topics too). Load is counted in replicas per broker, and
 * each choice counts towards the next, so a drained broker's partitions
 * spread over the others instead of all landing on one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/errors.h"
#include "tools/cli_common.h"
#include "tools/cli_move.h"

#define MAX_IDS 64

/* "2,3,4" into ids (distinct is the broker's to check). -1 on bad input. */
static int parse_ids(const char *s, int32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        int64_t v;
        char num[16];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(num) || *n == cap)
            return -1;
        memcpy(num, p, len);
        num[len] = 0;
        if (cli_parse_i64(num, 0, INT32_MAX, &v) < 0)
            return -1;
        ids[(*n)++] = (int32_t)v;
        p += len;
        if (*p == ',' && !*++p)
            return -1;
    }
    return *n ? 0 : -1;
}

static void print_ids(FILE *f, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, i ? ",%" PRId32 : "%" PRId32, ids[i]);
}

static int move_one(rn_admin *a, const char *topic, int32_t partition, const int32_t *ids, size_t n,
                    int64_t throttle)
{
    int rc = rn_admin_move_partition_throttled(a, topic, partition, ids, n, throttle);
    if (rc < 0) {
        const char *m = rn_admin_errmsg(a);
        return m && *m ? cli_error("%s", m) : cli_fail(rc, "move %s-%d", topic, partition);
    }
    printf("moving %s-%" PRId32 " to ", topic, partition);
    print_ids(stdout, ids, n);
    if (throttle > 0)
        printf(" (throttled to %" PRId64 " bytes/s)", throttle);
    putchar('\n');
    return CLI_OK;
}

int cli_move_partition(rn_admin *a, const char *topic, const char *partition, const char *brokers,
                       int64_t throttle)
{
    int64_t p;
    if (cli_parse_i64(partition, 0, INT32_MAX, &p) < 0)
        return cli_usage("'%s' is not a partition number", partition);
    int32_t ids[MAX_IDS];
    size_t n;
    if (parse_ids(brokers, ids, MAX_IDS, &n) < 0)
        return cli_usage("'%s': expected broker ids such as 2,3,4 (at most %d)", brokers, MAX_IDS);
    return move_one(a, topic, (int32_t)p, ids, n, throttle);
}

typedef struct load {
    int32_t id;
    int64_t replicas;
} load;

static bool holds(const rn_partition_desc *pd, int32_t id)
{
    for (size_t i = 0; i < pd->n_replicas; i++)
        if (pd->replicas[i] == id)
            return true;
    return false;
}

int cli_drain_broker(rn_admin *a, const char *broker, int64_t throttle)
{
    int64_t gone;
    if (cli_parse_i64(broker, 0, INT32_MAX, &gone) < 0)
        return cli_usage("'%s' is not a broker id", broker);
    rn_cluster_status *st = NULL;
    char **names = NULL;
    size_t n_names = 0;
    rn_topic_desc **descs = NULL;
    load live[MAX_IDS];
    size_t n_live = 0;
    bool known = false;
    int status = CLI_OK;
    int rc = rn_admin_cluster_status(a, &st);
    if (rc < 0) {
        status = cli_fail(rc, "cluster status");
        goto out;
    }
    for (size_t i = 0; i < st->n_brokers; i++) {
        known |= st->brokers[i].id == gone;
        if (st->brokers[i].id != gone && !st->brokers[i].fenced && n_live < MAX_IDS)
            live[n_live++] = (load){st->brokers[i].id, 0};
    }
    if (!known) {
        status = cli_error("broker %" PRId64 " is not registered in the cluster", gone);
        goto out;
    }
    rc = rn_admin_list_topics(a, &names, &n_names);
    if (rc < 0) {
        status = cli_fail(rc, "list topics");
        goto out;
    }
    descs = calloc(n_names ? n_names : 1, sizeof(*descs));
    if (!descs) {
        status = cli_fail(-ENOMEM, "drain");
        goto out;
    }
    for (size_t t = 0; t < n_names; t++) {
        rc = rn_admin_describe_topic(a, names[t], &descs[t]);
        if (rc == -RN_E_UNKNOWN_TOPIC)
            continue; /* deleted meanwhile */
        if (rc < 0) {
            status = cli_fail(rc, "describe topic %s", names[t]);
            goto out;
        }
        for (size_t p = 0; p < descs[t]->n_partitions; p++)
            for (size_t l = 0; l < n_live; l++)
                live[l].replicas += holds(&descs[t]->partitions[p], live[l].id);
    }
    size_t moves = 0;
    for (size_t t = 0; t < n_names && status == CLI_OK; t++) {
        const rn_topic_desc *d = descs[t];
        for (size_t p = 0; d && p < d->n_partitions && status == CLI_OK; p++) {
            const rn_partition_desc *pd = &d->partitions[p];
            if (!holds(pd, (int32_t)gone) || pd->n_replicas > MAX_IDS)
                continue;
            load *best = NULL;
            for (size_t l = 0; l < n_live; l++)
                if (!holds(pd, live[l].id) && (!best || live[l].replicas < best->replicas))
                    best = &live[l];
            if (!best) {
                status = cli_error("%s-%zu: no live broker without a replica of it to take "
                                   "broker %" PRId64 "'s",
                                   d->name, p, gone);
                break;
            }
            int32_t target[MAX_IDS];
            for (size_t i = 0; i < pd->n_replicas; i++)
                target[i] = pd->replicas[i] == gone ? best->id : pd->replicas[i];
            best->replicas++;
            status = move_one(a, d->name, (int32_t)p, target, pd->n_replicas, throttle);
            moves += status == CLI_OK;
        }
    }
    if (status == CLI_OK)
        printf("%zu partition%s moving off broker %" PRId64
               "; `runnel topic describe` shows each until it is in sync\n",
               moves, moves == 1 ? "" : "s", gone);
out:
    if (descs)
        for (size_t t = 0; t < n_names; t++)
            rn_admin_describe_free(descs[t]);
    free(descs);
    free(names);
    free(st);
    return status;
}
