/*
 * test_json_golden.c — the record renderer's exact output (suite `json_golden`).
 *
 * rn_json_render_records writes JSON text itself (no jansson tree), so its
 * bytes are the gateways' wire format: REST Proxy v2 consumers, SSE and
 * WebSocket tails all send them as they are. Each record below is rendered
 * in the json and binary formats and compared byte for byte with the text
 * checked in here, covering json.h's rules: null is null in both formats;
 * in json, bytes that parse as JSON are embedded, other UTF-8 is a string
 * (escaped), anything else is base64; in binary, everything is base64.
 * A change to any of these bytes breaks clients and must be deliberate.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/json.h"
#include "protocol/batch.h"

/* One record's key, value and headers; NULL pointer = null (len ignored). */
typedef struct golden {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    rn_record_header hdr[3];
    size_t n_hdr;
    const char *json;   /* expected text, format json */
    const char *binary; /* expected text, format binary */
} golden;

#define S(s) s, sizeof(s) - 1
#define H(n, v)                                                                                    \
    {                                                                                              \
        (const uint8_t *)n, sizeof(n) - 1, (const uint8_t *)v, sizeof(v) - 1                       \
    }
#define HNULL(n)                                                                                   \
    {                                                                                              \
        (const uint8_t *)n, sizeof(n) - 1, NULL, -1                                                \
    }
/* The fields every record starts with: topic, partition, offset, timestamp. */
#define PRE(off, ts)                                                                               \
    "{\"topic\":\"golden-topic\",\"partition\":3,\"offset\":" off ",\"timestamp\":" ts ","

/* The records, in batch order; json and binary hold the expected text. */
static const golden goldens[] = {
    /* 0: null key and value, no headers */
    {NULL,
     0,
     NULL,
     0,
     {{0}},
     0,
     PRE("40", "1700000000000") "\"key\":null,\"value\":null,\"headers\":[]}",
     PRE("40", "1700000000000") "\"key\":null,\"value\":null,\"headers\":[]}"},
    /* 1: empty key and value: empty text is not JSON, so an empty string */
    {S(""),
     S(""),
     {{0}},
     0,
     PRE("41", "1700000000001") "\"key\":\"\",\"value\":\"\",\"headers\":[]}",
     PRE("41", "1700000000001") "\"key\":\"\",\"value\":\"\",\"headers\":[]}"},
    /* 2: JSON key and value embedded as JSON (compacted), a JSON header */
    {S("{\"id\": 7}"),
     S("{\"a\":[1,2.5,null,true],\"b\":\"x\"}"),
     {H("content-type", "application/json")},
     1,
     PRE("42", "1700000000002") "\"key\":{\"id\":7},\"value\":{\"a\":[1,2.5,null,true],\"b\":\"x\"}"
                                ",\"headers\":[{\"name\":\"content-type\",\"value\":\"application/"
                                "json\"}]}",
     PRE("42",
         "1700000000002") "\"key\":\"eyJpZCI6IDd9\",\"value\":"
                          "\"eyJhIjpbMSwyLjUsbnVsbCx0cnVlXSwiYiI6IngifQ==\",\"headers\":[{\"name\":"
                          "\"content-type\",\"value\":\"YXBwbGljYXRpb24vanNvbg==\"}]}"},
    /* 3: UTF-8 text key, value and header value: strings, not escaped */
    {S("cl\xc3\xa9-\xc3\xbc"),
     S("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text"),
     {H("h-utf8", "\xc3\xbcn\xc3\xaf")},
     1,
     PRE("43", "1700000000003") "\"key\":\"cl\xc3\xa9-\xc3\xbc\",\"value\":"
                                "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                                "text\",\"headers\":[{\"name\":\"h-utf8\",\"value\":"
                                "\"\xc3\xbcn\xc3\xaf\"}]}",
     PRE("43", "1700000000003") "\"key\":\"Y2zDqS3DvA==\",\"value\":\"5pel5pys6KqeIHRleHQ=\","
                                "\"headers\":[{\"name\":\"h-utf8\",\"value\":\"w7xuw68=\"}]}"},
    /* 4: text needing escapes: quote, backslash, newline, tab, U+0001, U+007F */
    {S("k"),
     S("say \"hi\" \\ \n\t\x01\x7f"),
     {{0}},
     0,
     PRE("44", "1700000000004") "\"key\":\"k\",\"value\":\"say \\\"hi\\\" \\\\ "
                                "\\n\\t\\u0001\x7f\",\"headers\":[]}",
     PRE("44",
         "1700000000004") "\"key\":\"aw==\",\"value\":\"c2F5ICJoaSIgXCAKCQF/\",\"headers\":[]}"},
    /* 5: bytes that are not UTF-8 (an overlong, 0xff): base64 in both formats */
    {S("\xc0\xaf"),
     S("\x00\xff\xfe\x80"),
     {H("bin", "\x00\x01")},
     1,
     PRE("45",
         "1700000000005") "\"key\":\"wK8=\",\"value\":\"AP/"
                          "+gA==\",\"headers\":[{\"name\":\"bin\",\"value\":\"\\u0000\\u0001\"}]}",
     PRE("45", "1700000000005") "\"key\":\"wK8=\",\"value\":\"AP/"
                                "+gA==\",\"headers\":[{\"name\":\"bin\",\"value\":\"AAE=\"}]}"},
    /* 6: a JSON string and a JSON number; a null and an empty header value */
    {S("\"quoted\""),
     S("42"),
     {HNULL("n"), H("e", ""), H("x", "1")},
     3,
     PRE("46",
         "1700000000006") "\"key\":\"quoted\",\"value\":42,\"headers\":[{\"name\":\"n\",\"value\":"
                          "null},{\"name\":\"e\",\"value\":\"\"},{\"name\":\"x\",\"value\":1}]}",
     PRE("46", "1700000000006") "\"key\":\"InF1b3RlZCI=\",\"value\":\"NDI=\",\"headers\":[{"
                                "\"name\":\"n\",\"value\":null},{\"name\":\"e\",\"value\":\"\"},{"
                                "\"name\":\"x\",\"value\":\"MQ==\"}]}"},
    /* 7: the text "null" is JSON null, unlike a null value; a NUL inside text */
    {S("a\0b"),
     S("null"),
     {{0}},
     0,
     PRE("47", "1700000000007") "\"key\":\"a\\u0000b\",\"value\":null,\"headers\":[]}",
     PRE("47", "1700000000007") "\"key\":\"YQBi\",\"value\":\"bnVsbA==\",\"headers\":[]}"},
    /* 8: JSON with spaces around it; a surrogate encoded in UTF-8 is not UTF-8 */
    {S("\xed\xa0\x80"),
     S(" [1, 2] "),
     {{0}},
     0,
     PRE("48", "1700000000008") "\"key\":\"7aCA\",\"value\":[1,2],\"headers\":[]}",
     PRE("48", "1700000000008") "\"key\":\"7aCA\",\"value\":\"IFsxLCAyXSA=\",\"headers\":[]}"},
};
#define N_GOLDEN (sizeof(goldens) / sizeof(goldens[0]))

typedef struct sink {
    char *text[16];
    size_t len[16];
    int64_t offset[16];
    size_t n;
} sink;

static int keep(void *arg, const rn_json_rec *r)
{
    sink *s = arg;
    cr_assert_lt(s->n, 16);
    s->text[s->n] = malloc(r->len + 1);
    cr_assert_not_null(s->text[s->n]);
    memcpy(s->text[s->n], r->json, r->len);
    s->text[s->n][r->len] = 0;
    s->len[s->n] = r->len;
    s->offset[s->n] = r->offset;
    s->n++;
    return 0;
}

/* One batch holding every golden record, timestamps 1700000000000 + i,
 * numbered from base (the renderer reads offsets from the batch). */
static uint8_t *golden_batch(int64_t base, size_t *len)
{
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, NULL), 0);
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const golden *g = &goldens[i];
        cr_assert_eq(rn_batch_builder_add(b, 1700000000000LL + (int64_t)i, g->key, g->key_len,
                                          g->value, g->value_len, g->n_hdr ? g->hdr : NULL,
                                          g->n_hdr),
                     0);
    }
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)((uint64_t)base >> (56 - 8 * i));
    return out;
}

static void check_format(enum rn_gw_format fmt)
{
    size_t len;
    uint8_t *batch = golden_batch(40, &len);
    rn_json_budget bud = {.max_bytes = 1 << 20};
    int64_t next = -1;
    sink s = {0};
    int n = rn_json_render_records(NULL, "golden-topic", 3, batch, len, 40, NULL, 0, fmt, &bud,
                                   &next, keep, &s);
    cr_assert_eq(n, (int)N_GOLDEN);
    cr_assert_eq(next, 40 + (int64_t)N_GOLDEN);
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const char *want = fmt == RN_GW_FMT_JSON ? goldens[i].json : goldens[i].binary;
        cr_assert_eq(s.offset[i], 40 + (int64_t)i);
        cr_assert_eq(s.len[i], strlen(want), "record %zu (%s):\n got: %s\nwant: %s", i,
                     fmt == RN_GW_FMT_JSON ? "json" : "binary", s.text[i], want);
        cr_assert_arr_eq(s.text[i], want, s.len[i], "record %zu (%s):\n got: %s\nwant: %s", i,
                         fmt == RN_GW_FMT_JSON ? "json" : "binary", s.text[i], want);
        free(s.text[i]);
    }
    free(batch);
}

/* Format json: null, empty, JSON, UTF-8, control characters and binary keys,
 * values and headers render to exactly the checked-in text. */
Test(json_golden, json_format)
{
    check_format(RN_GW_FMT_JSON);
}

/* Format binary: the same records render as base64 (null stays null). */
Test(json_golden, binary_format)
{
    check_format(RN_GW_FMT_BINARY);
}

/* The cached rendering is the same bytes as the uncached one, on a miss and
 * on the hit that follows, starting mid-batch too. */
Test(json_golden, cache_gives_the_same_bytes)
{
    rn_json_cache *c;
    cr_assert_eq(rn_json_cache_new(&c, 8, 1 << 20), 0);
    size_t len;
    uint8_t *batch = golden_batch(40, &len);
    for (int round = 0; round < 2; round++) {
        for (int64_t from = 40; from <= 42; from += 2) {
            rn_json_budget bud = {.max_bytes = 1 << 20};
            int64_t next;
            sink s = {0};
            int n = rn_json_render_records(c, "golden-topic", 3, batch, len, from, NULL, 0,
                                           RN_GW_FMT_JSON, &bud, &next, keep, &s);
            cr_assert_eq(n, (int)N_GOLDEN - (int)(from - 40));
            for (size_t i = 0; i < s.n; i++) {
                cr_assert_str_eq(s.text[i], goldens[i + (size_t)(from - 40)].json);
                free(s.text[i]);
            }
        }
    }
    uint64_t hits, misses;
    rn_json_cache_stats(c, &hits, &misses);
    cr_assert_gt(hits, 0);
    free(batch);
    rn_json_cache_free(c);
}
