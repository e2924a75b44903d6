/*
 * test_gateway_bombs.c — decompression bombs stored through the native
 * protocol and fetched over REST (issue 11 item 3).
 *
 * A 10.8 KB zstd batch that expands to 64 MiB once made one REST fetch
 * answer 390 MB of JSON. Here the broker stores such batches (valid Kafka v2
 * batches, produced over the native protocol) and every REST answer must stay
 * within its budget: the zeros bomb is a clear error naming its offset, and a
 * million tiny records page through answers of at most max_bytes, each going
 * on where the last stopped.
 *
 * If the broker refuses a bomb on produce (record validation may bound what
 * it decompresses), the test writes it into the segment itself while the
 * broker is down — old segments may hold such batches — so the rendering
 * bounds are tested either way.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "gw_bomb.h"

ITF_HTTP_SUITE(gateway_bombs, 180);

/* Store batch after the partition's first batch (first_len bytes at offset
 * 0): produced if the broker takes it, else written into the segment while
 * the broker is down and recovered on restart. Returns its base offset. */
static int64_t store(it_conn **c, const char *topic, const uint8_t *batch, size_t len,
                     size_t first_len)
{
    int64_t base = -1;
    int rc = it_produce_one(*c, topic, 0, batch, len, 1, &base);
    if (rc == 0)
        return base;
    cr_log_info("the broker refused the bomb on produce (%s): writing it into the segment",
                rc > 0 ? rn_strerror(-rc) : strerror(-rc));
    it_conn_close(*c);
    int st;
    it_broker_stop(&B, SIGKILL, ITF_STOP_MS, &st);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s-0/00000000000000000000.log", B.data_dir, topic);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "open %s", path);
    uint8_t first[RN_BATCH_HEADER_LEN];
    cr_assert_eq(pread(fd, first, sizeof(first), 0), (ssize_t)sizeof(first));
    rn_batch_header h;
    cr_assert_eq(rn_batch_peek(first, sizeof(first), 0, &h), 0);
    uint8_t *copy = malloc(len);
    memcpy(copy, batch, len);
    rn_batch_stamp(copy, 1, h.partition_leader_epoch);
    cr_assert_eq(pwrite(fd, copy, len, (off_t)first_len), (ssize_t)len);
    cr_assert_eq(fsync(fd), 0);
    close(fd);
    free(copy);
    itf_restart(&B);
    *c = itf_connect(&B);
    int64_t end = -1;
    cr_assert_eq(it_list_offsets(*c, topic, 0, -1, &end, NULL), 0);
    rn_batch_header bh;
    cr_assert_eq(rn_batch_peek(batch, len, 0, &bh), 0);
    cr_assert_eq(end, 1 + bh.last_offset_delta + 1, "the written batch was recovered (end %lld)",
                 (long long)end);
    return 1;
}

static int64_t first_offset(const gwb_answer *a)
{
    const char *p = strstr(a->body, "\"offset\":");
    return p ? strtoll(p + 9, NULL, 10) : -1;
}

static int64_t last_offset(const gwb_answer *a)
{
    const char *p = NULL, *q = a->tail;
    while ((q = strstr(q, "\"offset\":")))
        p = q++;
    return p ? strtoll(p + 9, NULL, 10) : -1;
}

// One record of ~64 MiB of zeros (~10 KB as stored): the fetch that reaches
// it answers the records before it, then a 422 that names it and says where
// to go on; an event stream (the console's tail) sends the record before it
// and an error event; no answer is larger than a few KB; the broker stays up.
Test(gateway_bombs, zeros_bomb_is_a_bounded_error)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "zeros", 1, NULL);
    size_t first_len;
    uint8_t *first = itf_batch("before", 1, 1000, &first_len);
    cr_assert_eq(itf_produce(c, "zeros", 0, first, first_len), 0);
    size_t len;
    uint8_t *bomb = gwb_batch(1, (64u << 20) - 1024, 0, &len);
    cr_assert_not_null(bomb);
    cr_assert_lt(len, 64u << 10, "the bomb is small as stored (%zu bytes)", len);
    cr_assert_eq(store(&c, "zeros", bomb, len, first_len), 1);

    gwb_answer a;
    cr_assert_eq(
        gwb_get(http_port, "/topics/zeros/partitions/0/records?offset=0", 8u << 20, 30000, &a), 0);
    cr_assert_eq(a.status, 200, "%d %s", a.status, a.body);
    cr_assert_lt(a.body_len, 4096, "answer of %zu bytes", a.body_len);
    cr_assert_eq(first_offset(&a), 0);
    cr_assert_eq(last_offset(&a), 0, "%s", a.body);

    cr_assert_eq(
        gwb_get(http_port, "/topics/zeros/partitions/0/records?offset=1", 8u << 20, 30000, &a), 0);
    cr_assert_eq(a.status, 422, "%d (%zu bytes) %.200s", a.status, a.body_len, a.body);
    cr_assert_lt(a.body_len, 4096);
    cr_assert(strstr(a.body, "record at offset 1 is larger than") &&
                  strstr(a.body, "read on from offset 2"),
              "%s", a.body);

    /* The event stream (as the console's tail) sends record 0, then an
     * error event naming the bomb, and ends. */
    cr_assert_eq(
        gwb_get(http_port, "/topics/zeros/partitions/0/events?offset=0", 8u << 20, 30000, &a), 0);
    cr_assert_eq(a.status, 200);
    cr_assert_lt(a.body_len, 4096, "stream of %zu bytes", a.body_len);
    cr_assert(strstr(a.body, "id: 0\n") && !strstr(a.body, "id: 1\n"), "%s", a.body);
    cr_assert(strstr(a.body, "event: error") && strstr(a.body, "record at offset 1 is larger than"),
              "%s", a.body);
    cr_assert(it_broker_alive(&B));
    free(bomb);
    free(first);
    it_conn_close(c);
    itf_passed = true;
}

// A million tiny records in one zstd batch (~95 MB as JSON): each answer is
// at most max_bytes (+ one record's slack), starts where the last stopped,
// and a start deep inside the batch works; the same for a consumer
// instance's polls.
Test(gateway_bombs, many_records_page_within_max_bytes)
{
    it_conn *c = itf_connect(&B);
    itf_create(c, "many", 1, NULL);
    size_t first_len;
    uint8_t *first = itf_batch("before", 1, 1000, &first_len);
    cr_assert_eq(itf_produce(c, "many", 0, first, first_len), 0);
    size_t len;
    const size_t n = 1000000;
    uint8_t *bomb = gwb_batch(n, 0, 0, &len);
    cr_assert_not_null(bomb);
    cr_assert_eq(store(&c, "many", bomb, len, first_len), 1);

    gwb_answer a;
    cr_assert_eq(
        gwb_get(http_port, "/topics/many/partitions/0/records?offset=0", 8u << 20, 30000, &a), 0);
    cr_assert_eq(a.status, 200);
    cr_assert_not(a.truncated, "an answer of more than 8 MiB");
    cr_assert_leq(a.body_len, (1u << 20) + 512, "answer of %zu bytes", a.body_len);
    cr_assert_eq(first_offset(&a), 0);
    int64_t last = last_offset(&a);
    cr_assert_gt(last, 1000, "a full page (last offset %lld)", (long long)last);

    char path[160];
    snprintf(path, sizeof(path), "/topics/many/partitions/0/records?offset=%lld&max_bytes=65536",
             (long long)(last + 1));
    cr_assert_eq(gwb_get(http_port, path, 8u << 20, 30000, &a), 0);
    cr_assert_eq(a.status, 200);
    cr_assert_leq(a.body_len, 65536 + 512, "answer of %zu bytes", a.body_len);
    cr_assert_eq(first_offset(&a), last + 1, "goes on where the last answer stopped");

    /* A consumer instance polls the same records in answers of at most
     * max_bytes, each going on where the last stopped. */
    cr_assert_eq(gwb_request(http_port, "POST", "/consumers/bombs",
                             "{\"name\":\"a\",\"format\":\"binary\","
                             "\"auto.offset.reset\":\"earliest\"}",
                             1 << 20, 30000, &a),
                 0);
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert_eq(gwb_request(http_port, "POST", "/consumers/bombs/instances/a/subscription",
                             "{\"topics\":[\"many\"]}", 1 << 20, 30000, &a),
                 0);
    cr_assert_eq(a.status, 204, "%s", a.body);
    int64_t expect = 0;
    int pages = 0;
    for (int poll = 0; poll < 100 && pages < 3; poll++) {
        cr_assert_eq(gwb_get(http_port,
                             "/consumers/bombs/instances/a/records?timeout=200&max_bytes=65536",
                             8u << 20, 30000, &a),
                     0);
        cr_assert_eq(a.status, 200, "%d %s", a.status, a.body);
        cr_assert_leq(a.body_len, 65536 + 512, "poll answer of %zu bytes", a.body_len);
        if (first_offset(&a) < 0) {
            usleep(100 * 1000); /* not assigned yet: the instance heartbeats every 100 ms */
            continue;
        }
        cr_assert_eq(first_offset(&a), expect, "poll %d", poll);
        expect = last_offset(&a) + 1;
        pages++;
    }
    cr_assert_eq(pages, 3, "three pages polled");

    snprintf(path, sizeof(path), "/topics/many/partitions/0/records?offset=%zu&max_bytes=4096",
             n - 10);
    cr_assert_eq(gwb_get(http_port, path, 8u << 20, 30000, &a), 0);
    cr_assert_eq(a.status, 200);
    cr_assert_eq(first_offset(&a), (int64_t)(n - 10));
    cr_assert_leq(a.body_len, 4096 + 512);
    cr_assert(it_broker_alive(&B));
    free(bomb);
    free(first);
    it_conn_close(c);
    itf_passed = true;
}
