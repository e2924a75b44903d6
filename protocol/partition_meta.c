/*
 * partition_meta.c — format and parse partition.metadata (see the header).
 * Parsing is strict: the file is written whole (tmp → rename), so anything
 * but the exact 58 bytes is torn or not ours, and the caller treats it as
 * naming no live topic.
 */
#include <stdbool.h>
#include <string.h>

#include "protocol/errors.h"
#include "protocol/partition_meta.h"

static const char prefix[] = "version: 0\ntopic_id: ";
#define PREFIX_LEN (sizeof(prefix) - 1)

void rn_topic_id_str(const uint8_t id[16], char out[RN_TOPIC_ID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[id[i] >> 4];
        *o++ = hex[id[i] & 15];
    }
    *o = 0;
}

int rn_topic_id_parse(const char *s, size_t len, uint8_t id[16])
{
    if (len != RN_TOPIC_ID_STR_LEN - 1)
        return -RN_E_CORRUPT_FILE;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_pos) {
            if (c != '-')
                return -RN_E_CORRUPT_FILE;
            continue;
        }
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -RN_E_CORRUPT_FILE;
        if (n % 2 == 0)
            id[n / 2] = (uint8_t)(v << 4);
        else
            id[n / 2] |= (uint8_t)v;
        n++;
    }
    return 0;
}

void rn_partition_meta_format(const uint8_t id[16], char out[RN_PARTITION_META_LEN])
{
    char ids[RN_TOPIC_ID_STR_LEN];
    rn_topic_id_str(id, ids);
    memcpy(out, prefix, PREFIX_LEN);
    memcpy(out + PREFIX_LEN, ids, RN_TOPIC_ID_STR_LEN - 1);
    out[RN_PARTITION_META_LEN - 1] = '\n';
}

int rn_partition_meta_parse(const char *buf, size_t len, uint8_t id[16])
{
    if (len != RN_PARTITION_META_LEN || memcmp(buf, prefix, PREFIX_LEN) != 0 ||
        buf[len - 1] != '\n')
        return -RN_E_CORRUPT_FILE;
    return rn_topic_id_parse(buf + PREFIX_LEN, RN_TOPIC_ID_STR_LEN - 1, id);
}
