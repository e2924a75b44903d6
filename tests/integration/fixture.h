/*
 * fixture.h — Criterion glue around client.h for the integration tests.
 *
 * Header-only (static inline): each test_*.c is its own executable. A test
 * starts one runneld (itf_start), talks to it, and ends with itf_stop_clean,
 * which sends SIGTERM and asserts exit status 0: a broker that crashes,
 * hangs on shutdown, or (in the sanitizer build) leaks or trips ASan/UBSan
 * fails the test that ran it. On any failure the tail of the broker's log is
 * printed, so the reason is in the test output.
 */
#ifndef RN_IT_FIXTURE_H
#define RN_IT_FIXTURE_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "client.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

/* Slow machines and the sanitizer build start runneld in well under a second;
 * 20 s only bounds a broken one. */
#define ITF_START_MS 20000
#define ITF_STOP_MS  20000

/* Set by the test when it reached its end; the teardown dumps the broker log
 * otherwise (the test failed or crashed in between). */
static bool itf_passed;

static inline void itf_start(it_broker *b, const char *const *args)
{
    itf_passed = false;
    cr_assert_eq(it_broker_init(b, args), 0, "it_broker_init");
    int rc = it_broker_start(b, ITF_START_MS);
    if (rc < 0)
        it_broker_dump_log(b, 8192);
    cr_assert_eq(rc, 0, "runneld did not start: %s", strerror(-rc));
}

static inline void itf_restart(it_broker *b)
{
    int rc = it_broker_start(b, ITF_START_MS);
    if (rc < 0)
        it_broker_dump_log(b, 8192);
    cr_assert_eq(rc, 0, "runneld did not restart: %s", strerror(-rc));
}

static inline it_conn *itf_connect(it_broker *b)
{
    it_conn *c = NULL;
    int rc = it_broker_connect(b, &c);
    cr_assert_eq(rc, 0, "connect to runneld: %s", strerror(-rc));
    return c;
}

/* Describe a wait status for messages. */
static inline const char *itf_status_str(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "status 0x%x", st);
    return buf;
}

/* SIGTERM, and the broker must exit 0 (graceful, no leak, no sanitizer
 * report). */
static inline void itf_stop_clean(it_broker *b)
{
    cr_assert(it_broker_alive(b), "runneld died during the test");
    int st = 0;
    int rc = it_broker_stop(b, SIGTERM, ITF_STOP_MS, &st);
    char s[32];
    if (rc < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        it_broker_dump_log(b, 16384);
    cr_assert_eq(rc, 0, "runneld did not stop within %d ms", ITF_STOP_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "runneld ended with %s",
              itf_status_str(st, s, sizeof(s)));
}

/* Replace the suite's broker with a fresh one started with args: for the
 * few tests that need other flags. (A Criterion test-level .init runs after
 * the suite's, not instead of it.) */
static inline void itf_start_over(it_broker *b, const char *const *args);

static inline void itf_teardown(it_broker *b)
{
    if (!itf_passed && b->root[0])
        it_broker_dump_log(b, 8192);
    it_broker_destroy(b);
}

static inline void itf_start_over(it_broker *b, const char *const *args)
{
    itf_stop_clean(b);
    it_broker_destroy(b);
    itf_start(b, args);
}

/* A batch of n records "<tag>-<i>" at time ts; the caller frees it. */
static inline uint8_t *itf_batch(const char *tag, int n, int64_t ts, size_t *len)
{
    uint8_t *b = NULL;
    int rc = it_batch_make(&b, len, tag, n, ts);
    cr_assert_eq(rc, 0, "it_batch_make: %d", rc);
    return b;
}

static inline void itf_create(it_conn *c, const char *name, int32_t partitions, const char *configs)
{
    int rc = it_create_topic(c, name, partitions, configs);
    cr_assert_eq(rc, 0, "create topic %s: %d (%s)", name, rc,
                 rc > 0 ? rn_strerror(-rc) : strerror(-rc));
}

/* Produce one batch with acks=1 and return its base offset. */
static inline int64_t itf_produce(it_conn *c, const char *topic, int32_t partition,
                                  const void *batch, size_t len)
{
    int64_t base = -1;
    int rc = it_produce_one(c, topic, partition, batch, len, 1, &base);
    cr_assert_eq(rc, 0, "produce %s-%d: %d (%s)", topic, partition, rc,
                 rc > 0 ? rn_strerror(-rc) : strerror(-rc));
    return base;
}

/* The value of a config key in a DescribeTopic answer, or NULL. */
static inline const char *itf_config(const Runnel__DescribeTopicResponse *d, const char *key)
{
    for (size_t i = 0; i < d->n_configs; i++)
        if (!strcmp(d->configs[i]->key, key))
            return d->configs[i]->value;
    return NULL;
}

#endif
