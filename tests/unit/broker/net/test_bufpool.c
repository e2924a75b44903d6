/*
 * test_bufpool.c — the reactors' pool of frame buffers (broker/net/bufpool.c):
 * a buffer put back is the next one handed out for its size class, every
 * buffer holds what was asked, the idle bytes stay under the bound, and a
 * pool-less get/put pair is a plain allocation.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "broker/net/bufpool.h"

TestSuite(bufpool, .timeout = 30);

// A buffer put back comes out again for the same size, and is counted as reused.
Test(bufpool, put_back_buffer_is_reused)
{
    rn_bufpool_stats st;
    rn_bufpool *p = rn_bufpool_new(8u << 20, &st);
    cr_assert_not_null(p);
    uint8_t *a = rn_bufpool_get(p, 256 * 1024);
    cr_assert_not_null(a);
    memset(a, 0xab, 256 * 1024);
    rn_bufpool_put(p, a);
    cr_expect_gt(st.idle_bytes, 256 * 1024);
    uint8_t *b = rn_bufpool_get(p, 256 * 1024);
    cr_expect_eq(b, a);
    cr_expect_eq(st.hits, 1);
    cr_expect_eq(st.misses, 1);
    cr_expect_eq(st.idle_bytes, 0);
    rn_bufpool_put(p, b);
    rn_bufpool_free(p);
}

// Sizes in one class share buffers; a size of another class gets its own.
Test(bufpool, classes_are_a_quarter_of_a_power_of_two)
{
    rn_bufpool *p = rn_bufpool_new(8u << 20, NULL);
    uint8_t *a = rn_bufpool_get(p, 200 * 1024);
    rn_bufpool_put(p, a);
    uint8_t *b = rn_bufpool_get(p, 210 * 1024); /* same class: 192-224 KiB */
    cr_expect_eq(b, a);
    rn_bufpool_put(p, b);
    uint8_t *c = rn_bufpool_get(p, 400 * 1024); /* another class */
    cr_expect_neq(c, a);
    memset(c, 1, 400 * 1024);
    rn_bufpool_put(p, c);
    rn_bufpool_stats st;
    rn_bufpool_stats_get(p, &st);
    cr_expect_eq(st.hits, 1);
    cr_expect_eq(st.misses, 2);
    rn_bufpool_free(p);
}

// The buffer put back last goes out first (it is the warmest).
Test(bufpool, idle_buffers_go_out_last_in_first_out)
{
    rn_bufpool *p = rn_bufpool_new(8u << 20, NULL);
    void *a = rn_bufpool_get(p, 100 * 1024), *b = rn_bufpool_get(p, 100 * 1024);
    rn_bufpool_put(p, a);
    rn_bufpool_put(p, b);
    cr_expect_eq(rn_bufpool_get(p, 100 * 1024), b);
    cr_expect_eq(rn_bufpool_get(p, 100 * 1024), a);
    rn_bufpool_put(p, a);
    rn_bufpool_put(p, b);
    rn_bufpool_free(p);
}

// Every size from 1 byte to 4 MiB gets a buffer it can fill (ASan checks the
// bounds), and the idle bytes never pass the bound.
Test(bufpool, every_size_fits_and_idle_stays_bounded)
{
    rn_bufpool_stats st;
    size_t max_idle = 2u << 20;
    rn_bufpool *p = rn_bufpool_new(max_idle, &st);
    void *held[8] = {0};
    unsigned k = 0;
    for (size_t len = 1; len <= (4u << 20); len = len * 5 / 4 + 1) {
        uint8_t *b = rn_bufpool_get(p, len);
        cr_assert_not_null(b, "len %zu", len);
        memset(b, 0x5a, len);
        rn_bufpool_put(p, held[k % 8]);
        held[k++ % 8] = b;
        cr_assert_leq(st.idle_bytes, max_idle);
    }
    for (unsigned i = 0; i < 8; i++)
        rn_bufpool_put(p, held[i]);
    cr_expect_leq(st.idle_bytes, max_idle);
    cr_expect_gt(st.dropped, 0);
    rn_bufpool_free(p);
    cr_expect_eq(st.idle_bytes, 0);
}

// Small sizes are plain malloc: never pooled, never counted.
Test(bufpool, small_buffers_are_not_pooled)
{
    rn_bufpool_stats st;
    rn_bufpool *p = rn_bufpool_new(8u << 20, &st);
    void *a = rn_bufpool_get(p, RN_BUFPOOL_MIN - 1);
    cr_assert_not_null(a);
    rn_bufpool_put(p, a);
    cr_expect_eq(st.idle_bytes, 0);
    cr_expect_eq(st.hits + st.misses + st.dropped, 0);
    rn_bufpool_free(p);
}

// Without a pool, get and put are an allocation and its free; a buffer from a
// pool may go back to none, and one from none may go into a pool.
Test(bufpool, no_pool_is_plain_allocation)
{
    void *a = rn_bufpool_get(NULL, 300 * 1024);
    cr_assert_not_null(a);
    memset(a, 0, 300 * 1024);
    rn_bufpool *p = rn_bufpool_new(8u << 20, NULL);
    rn_bufpool_put(p, a);
    void *b = rn_bufpool_get(p, 300 * 1024);
    cr_expect_eq(b, a);
    rn_bufpool_put(NULL, b);
    rn_bufpool_put(NULL, NULL);
    rn_bufpool_put(p, NULL);
    rn_bufpool_free(p);
    rn_bufpool_free(NULL);
}

// A size no allocation can hold is refused, not wrapped.
Test(bufpool, absurd_size_is_refused)
{
    rn_bufpool *p = rn_bufpool_new(8u << 20, NULL);
    cr_expect_null(rn_bufpool_get(p, SIZE_MAX));
    cr_expect_null(rn_bufpool_get(p, SIZE_MAX / 2 + 1));
    rn_bufpool_free(p);
}
