/*
 * test_partitioner.c — rn_partition_for_key: XXH3_64(key) % n, stable and
 * spread (DESIGN §3), checked against xxHash itself; no broker needed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "clients/runnel.h"

// The same key always lands on the same partition, for every partition count.
Test(partitioner, same_key_same_partition)
{
    const char *keys[] = {"user-1", "user-2", "", "a much longer key with spaces and more"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        for (int32_t n = 1; n <= 64; n++) {
            int32_t first = rn_partition_for_key(keys[k], strlen(keys[k]), n);
            cr_assert(first >= 0 && first < n);
            for (int rep = 0; rep < 3; rep++)
                cr_assert_eq(rn_partition_for_key(keys[k], strlen(keys[k]), n), first);
        }
    }
}

// The partition is exactly XXH3_64bits(key) % n, so every client agrees.
Test(partitioner, matches_xxh3_modulo)
{
    char key[32];
    for (int i = 0; i < 2000; i++) {
        int len = snprintf(key, sizeof(key), "key-%d", i);
        uint64_t h = XXH3_64bits(key, (size_t)len);
        for (int32_t n = 1; n <= 17; n += 4)
            cr_assert_eq(rn_partition_for_key(key, (size_t)len, n), (int32_t)(h % (uint64_t)n),
                         "key %s n %d", key, n);
    }
    /* Binary keys with zero bytes hash all their bytes, not up to the first NUL. */
    const unsigned char bin[] = {0, 1, 0, 2, 0xff};
    cr_assert_eq(rn_partition_for_key(bin, sizeof(bin), 1000),
                 (int32_t)(XXH3_64bits(bin, sizeof(bin)) % 1000));
}

// Distinct keys spread evenly: 16000 keys over 16 partitions, each within 20 % of 1000.
Test(partitioner, spreads_over_partitions)
{
    int counts[16] = {0};
    char key[32];
    for (int i = 0; i < 16000; i++) {
        int len = snprintf(key, sizeof(key), "order-%d", i);
        counts[rn_partition_for_key(key, (size_t)len, 16)]++;
    }
    for (int p = 0; p < 16; p++)
        cr_assert(counts[p] > 800 && counts[p] < 1200, "partition %d got %d keys", p, counts[p]);
}

// A partition count of zero or less has no answer: -1, never a division by zero.
Test(partitioner, no_partitions_is_minus_one)
{
    cr_assert_eq(rn_partition_for_key("k", 1, 0), -1);
    cr_assert_eq(rn_partition_for_key("k", 1, -3), -1);
}
