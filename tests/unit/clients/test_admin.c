/*
 * test_admin.c — rn_admin against a real runneld: create, list, describe,
 * partition count, alter configs, list offsets, delete, and the errors each
 * returns with a message naming what was asked.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/runnel.h"
#include "harness.h"
#include "protocol/errors.h"

static rt_broker b;
static rn_admin *a;

/* Topics the test made: the broker's internal ones ("__offsets") are skipped. */
static size_t user_topics(char **names, size_t n, const char **out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], "__", 2) != 0 && k < max)
            out[k++] = names[i];
    return k;
}

static void setup(void)
{
    rt_broker_start(&b);
    rn_conf *conf = rt_conf(&b, NULL);
    cr_assert_eq(rn_admin_new(&a, conf), 0);
    rn_conf_free(conf);
}

static void teardown(void)
{
    rn_admin_free(a);
    rt_broker_stop(&b);
}

TestSuite(admin, .init = setup, .fini = teardown, .timeout = 30);

// Topics created are listed sorted, described with their partitions, and counted.
Test(admin, create_list_describe)
{
    const char *k[] = {"retention.ms"};
    const char *v[] = {"3600000"};
    cr_assert_eq(rn_admin_create_topic(a, "beta", 3, 1, k, v, 1), 0, "%s", rn_admin_errmsg(a));
    cr_assert_eq(rn_admin_create_topic(a, "alpha", 1, 1, NULL, NULL, 0), 0);
    char **names;
    size_t n;
    cr_assert_eq(rn_admin_list_topics(a, &names, &n), 0);
    for (size_t i = 1; i < n; i++)
        cr_assert(strcmp(names[i - 1], names[i]) < 0, "names unsorted");
    cr_assert_null(names[n]);
    const char *mine[4];
    cr_assert_eq(user_topics(names, n, mine, 4), 2);
    cr_assert_str_eq(mine[0], "alpha");
    cr_assert_str_eq(mine[1], "beta");
    free(names);

    int32_t np;
    cr_assert_eq(rn_admin_partition_count(a, "beta", &np), 0);
    cr_assert_eq(np, 3);

    rn_topic_desc *d;
    cr_assert_eq(rn_admin_describe_topic(a, "beta", &d), 0, "%s", rn_admin_errmsg(a));
    cr_assert_str_eq(d->name, "beta");
    cr_assert_eq(d->n_partitions, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(d->partitions[i].partition, (int32_t)i);
        cr_assert(d->partitions[i].leader >= 0);
        cr_assert_eq(d->partitions[i].n_replicas, 1);
        cr_assert_eq(d->partitions[i].replicas[0], d->partitions[i].leader);
        cr_assert_eq(d->partitions[i].high_watermark, 0);
    }
    bool found = false;
    for (size_t i = 0; i < d->n_configs; i++) {
        if (i > 0)
            cr_assert(strcmp(d->config_keys[i - 1], d->config_keys[i]) < 0, "configs unsorted");
        if (strcmp(d->config_keys[i], "retention.ms") == 0) {
            cr_assert_str_eq(d->config_values[i], "3600000");
            found = true;
        }
    }
    cr_assert(found, "retention.ms not among %zu configs", d->n_configs);
    rn_admin_describe_free(d);
}

// Altering a config shows in describe; deleting it returns the default.
Test(admin, alter_configs)
{
    cr_assert_eq(rn_admin_create_topic(a, "t", 1, 1, NULL, NULL, 0), 0);
    const char *k[] = {"retention.ms"};
    const char *v[] = {"12345"};
    cr_assert_eq(rn_admin_alter_configs(a, "t", k, v, 1, NULL, 0), 0, "%s", rn_admin_errmsg(a));
    rn_topic_desc *d;
    cr_assert_eq(rn_admin_describe_topic(a, "t", &d), 0);
    const char *got = NULL;
    for (size_t i = 0; i < d->n_configs; i++)
        if (strcmp(d->config_keys[i], "retention.ms") == 0)
            got = d->config_values[i];
    cr_assert(got && strcmp(got, "12345") == 0, "retention.ms = %s", got ? got : "(none)");
    rn_admin_describe_free(d);
    const char *bad[] = {"no.such.config"};
    int rc = rn_admin_alter_configs(a, "t", bad, v, 1, NULL, 0);
    cr_assert_eq(rc, -RN_E_INVALID_CONFIG, "%s", rn_err_name(rc));
    cr_assert(strstr(rn_admin_errmsg(a), "no.such.config") != NULL, "%s", rn_admin_errmsg(a));
    cr_assert_eq(rn_admin_alter_configs(a, "t", NULL, NULL, 0, k, 1), 0, "%s", rn_admin_errmsg(a));
}

// Offsets of an empty and of a written partition: earliest, latest, by time.
Test(admin, list_offsets)
{
    cr_assert_eq(rn_admin_create_topic(a, "t", 1, 1, NULL, NULL, 0), 0);
    int64_t off;
    cr_assert_eq(rn_admin_list_offset(a, "t", 0, RN_OFFSET_LATEST, &off), 0);
    cr_assert_eq(off, 0);
    rn_conf *conf = rt_conf(&b, NULL);
    rn_producer *p;
    cr_assert_eq(rn_producer_new(&p, conf, NULL, NULL), 0);
    rn_conf_free(conf);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rn_producer_send(p, "t", 0, NULL, 0, "v", 1, NULL, 0, 1000 + i, NULL), 0);
    cr_assert_eq(rn_producer_close(p), 0);
    cr_assert_eq(rn_admin_list_offset(a, "t", 0, RN_OFFSET_EARLIEST, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(rn_admin_list_offset(a, "t", 0, RN_OFFSET_LATEST, &off), 0);
    cr_assert_eq(off, 5);
    cr_assert_eq(rn_admin_list_offset(a, "t", 0, 1003, &off), 0);
    cr_assert_eq(off, 3);
    cr_assert_eq(rn_admin_list_offset(a, "t", 0, 99999, &off), 0);
    cr_assert_eq(off, -1);
    cr_assert_eq(rn_admin_list_offset(a, "t", 4, RN_OFFSET_LATEST, &off), -RN_E_UNKNOWN_TOPIC);
}

// Errors name the topic once, in one sentence (the broker's own when it
// names the topic): an existing name, an unknown topic, and delete.
Test(admin, errors_and_delete)
{
    cr_assert_eq(rn_admin_create_topic(a, "t", 1, 1, NULL, NULL, 0), 0);
    int rc = rn_admin_create_topic(a, "t", 1, 1, NULL, NULL, 0);
    cr_assert_eq(rc, -RN_E_TOPIC_EXISTS, "%s", rn_err_name(rc));
    cr_assert_str_eq(rn_admin_errmsg(a), "topic t already exists");
    rn_topic_desc *d;
    rc = rn_admin_describe_topic(a, "missing", &d);
    cr_assert_eq(rc, -RN_E_UNKNOWN_TOPIC, "%s", rn_err_name(rc));
    cr_assert_str_eq(rn_admin_errmsg(a), "describe topic missing: unknown topic or partition");
    int32_t n;
    cr_assert_eq(rn_admin_partition_count(a, "missing", &n), -RN_E_UNKNOWN_TOPIC);
    cr_assert_eq(rn_admin_delete_topic(a, "t"), 0, "%s", rn_admin_errmsg(a));
    cr_assert_eq(rn_admin_delete_topic(a, "t"), -RN_E_UNKNOWN_TOPIC);
    cr_assert_str_eq(rn_admin_errmsg(a), "topic t does not exist");
    char **names;
    size_t count;
    cr_assert_eq(rn_admin_list_topics(a, &names, &count), 0);
    const char *mine[4];
    cr_assert_eq(user_topics(names, count, mine, 4), 0);
    free(names);
}
