/*
 * test_partition_meta.c — partition.metadata: the exact bytes, the round
 * trip, and every torn or foreign file refused (broker/part/partitions.c adopts a
 * directory only on an exact match, so a lenient parse would adopt another
 * topic's data).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/partition_meta.h"

static const uint8_t ID[16] = {0x8d, 0x1c, 0x5f, 0x6e, 0x0b, 0x1a, 0x4c, 0x55,
                               0x9f, 0x0e, 0x2f, 0x6a, 0x1b, 0x7c, 0x3d, 0x4e};
static const char FILE_BYTES[] = "version: 0\ntopic_id: 8d1c5f6e-0b1a-4c55-9f0e-2f6a1b7c3d4e\n";

// The file is exactly the two documented lines, and parses back to the id.
Test(partition_meta, format_is_exact_and_round_trips)
{
    char buf[RN_PARTITION_META_LEN];
    rn_partition_meta_format(ID, buf);
    cr_assert_eq(sizeof(FILE_BYTES) - 1, RN_PARTITION_META_LEN);
    cr_assert(memcmp(buf, FILE_BYTES, RN_PARTITION_META_LEN) == 0);
    uint8_t id[16] = {0};
    cr_assert_eq(rn_partition_meta_parse(buf, sizeof(buf), id), 0);
    cr_assert(memcmp(id, ID, 16) == 0);
}

// Every prefix of the file (a torn write) and one byte more are refused.
Test(partition_meta, torn_or_longer_file_refused)
{
    uint8_t id[16];
    for (size_t len = 0; len < RN_PARTITION_META_LEN; len++)
        cr_assert_eq(rn_partition_meta_parse(FILE_BYTES, len, id), -RN_E_CORRUPT_FILE, "len %zu",
                     len);
    char longer[RN_PARTITION_META_LEN + 1];
    memcpy(longer, FILE_BYTES, RN_PARTITION_META_LEN);
    longer[RN_PARTITION_META_LEN] = '\n';
    cr_assert_eq(rn_partition_meta_parse(longer, sizeof(longer), id), -RN_E_CORRUPT_FILE);
}

// A changed byte anywhere (version, a dash, a hex digit, upper case, the
// final newline) is refused.
Test(partition_meta, any_changed_byte_refused)
{
    uint8_t id[16];
    for (size_t i = 0; i < RN_PARTITION_META_LEN; i++) {
        char buf[RN_PARTITION_META_LEN];
        memcpy(buf, FILE_BYTES, sizeof(buf));
        buf[i] = buf[i] == 'g' ? 'h' : 'g';
        cr_assert_eq(rn_partition_meta_parse(buf, sizeof(buf), id), -RN_E_CORRUPT_FILE, "byte %zu",
                     i);
    }
    char upper[RN_PARTITION_META_LEN];
    memcpy(upper, FILE_BYTES, sizeof(upper));
    upper[21] = 'D'; /* first hex digit of the id */
    cr_assert_eq(rn_partition_meta_parse(upper, sizeof(upper), id), -RN_E_CORRUPT_FILE);
}

// The id text is 8-4-4-4-12 lower-case hex; wrong lengths are refused.
Test(partition_meta, topic_id_text)
{
    char s[RN_TOPIC_ID_STR_LEN];
    rn_topic_id_str(ID, s);
    cr_assert_str_eq(s, "8d1c5f6e-0b1a-4c55-9f0e-2f6a1b7c3d4e");
    uint8_t id[16];
    cr_assert_eq(rn_topic_id_parse(s, 36, id), 0);
    cr_assert(memcmp(id, ID, 16) == 0);
    cr_assert_eq(rn_topic_id_parse(s, 35, id), -RN_E_CORRUPT_FILE);
    cr_assert_eq(rn_topic_id_parse("8d1c5f6e0b1a4c559f0e2f6a1b7c3d4e", 32, id), -RN_E_CORRUPT_FILE);
}
