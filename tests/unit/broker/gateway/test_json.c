/*
 * test_json.c — the gateways' JSON layer (broker/gateway/json.c) where input
 * is hostile: rendering records under a budget (issue 11: decompression
 * bombs, records_count that lies), reading numbers with bounds (a partition
 * 4294967296 is not 0), and one clear sentence for a body that is empty or
 * holds a NUL. No sockets, no broker: batches are built with the producer's
 * builder (valid Kafka v2 batches, as a segment may hold them).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/json.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

TestSuite(json, .timeout = 120);

/* ---- Helpers ----------------------------------------------------------------------------- */

static void set_be32(uint8_t *p, int off, uint32_t v)
{
    p[off] = (uint8_t)(v >> 24);
    p[off + 1] = (uint8_t)(v >> 16);
    p[off + 2] = (uint8_t)(v >> 8);
    p[off + 3] = (uint8_t)v;
}

/* n records, value i is value_len bytes of fill (or "v<i>" when value_len
 * is 0), stamped at base_offset. */
static uint8_t *batch_of(int codec, int64_t base_offset, size_t n, size_t value_len, uint8_t fill,
                         size_t *len)
{
    rn_batch_builder_opts o = {
        .codec = codec, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rn_batch_builder *b;
    cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
    uint8_t *v = malloc(value_len ? value_len : 32);
    cr_assert_not_null(v);
    memset(v, fill, value_len);
    for (size_t i = 0; i < n; i++) {
        size_t vl = value_len;
        if (!value_len)
            vl = (size_t)snprintf((char *)v, 32, "v%zu", i);
        cr_assert_eq(rn_batch_builder_add(b, 1000, "k", 1, v, vl, NULL, 0), 0);
    }
    uint8_t *out;
    cr_assert_eq(rn_batch_builder_finish(b, &out, len), 0);
    rn_batch_builder_free(b);
    free(v);
    rn_batch_stamp(out, base_offset, 0);
    return out;
}

/* Collects what a render emitted. */
typedef struct sink {
    size_t n, bytes, largest;
    int64_t first, last;
    bool ordered;
    char text[4096]; /* the first record's text, cut */
} sink;

static int collect(void *arg, const rn_json_rec *r)
{
    sink *s = arg;
    if (s->n == 0) {
        s->first = r->offset;
        s->ordered = true;
        snprintf(s->text, sizeof(s->text), "%.*s", (int)r->len, r->json);
    } else if (r->offset <= s->last) {
        s->ordered = false;
    }
    s->last = r->offset;
    s->n++;
    s->bytes += r->len;
    if (r->len > s->largest)
        s->largest = r->len;
    return 0;
}

static int render(rn_json_cache *c, const uint8_t *data, size_t len, int64_t from,
                  const char *filter, rn_json_budget *bud, int64_t *next, sink *s)
{
    memset(s, 0, sizeof(*s));
    return rn_json_render_records(c, "t", 0, data, len, from, filter, filter ? strlen(filter) : 0,
                                  RN_GW_FMT_JSON, bud, next, collect, s);
}

/* ---- Rendering under a budget ------------------------------------------------------------ */

// The bomb of issue 11: one zstd record of ~64 MiB of zeros (a few KB as
// stored). Rendered it was 390 MB of JSON; now it is an error that names
// its offset, and nothing is emitted.
Test(json, zeros_bomb_is_a_clear_error)
{
    size_t len;
    uint8_t *p = batch_of(RN_BATCH_CODEC_ZSTD, 500, 1, (64u << 20) - 64, 0, &len);
    cr_assert_lt(len, 64u << 10);
    rn_json_budget bud = {.max_bytes = 1u << 20};
    int64_t next;
    sink s;
    int n = render(NULL, p, len, 0, NULL, &bud, &next, &s);
    cr_assert_eq(n, -RN_E_MESSAGE_TOO_LARGE, "got %d (%zu records, %zu bytes)", n, s.n, s.bytes);
    cr_assert_eq(next, 500, "the error names the record");
    cr_assert_eq(s.n, 0);
    free(p);
}

// Many small records in one zstd batch: an answer stays within max_bytes,
// stops at a record boundary, and the next answer goes on from exactly
// there until the batch is read through, every record once.
Test(json, many_records_paged_by_the_budget)
{
    size_t len;
    const size_t total = 20000;
    uint8_t *p = batch_of(RN_BATCH_CODEC_ZSTD, 1000, total, 0, 0, &len);
    int64_t from = 0;
    size_t seen = 0, answers = 0;
    for (;;) {
        rn_json_budget bud = {.max_bytes = 64u << 10};
        int64_t next;
        sink s;
        int n = render(NULL, p, len, from, NULL, &bud, &next, &s);
        cr_assert_geq(n, 0, "%s", rn_errname(n));
        cr_assert_leq(s.bytes, 64u << 10, "answer of %zu bytes", s.bytes);
        if (n == 0)
            break;
        cr_assert(s.ordered);
        cr_assert_eq(s.first, from < 1000 ? 1000 : from, "answer %zu starts at %lld", answers,
                     (long long)s.first);
        cr_assert_eq(next, s.last + 1);
        cr_assert_eq(bud.full, s.last + 1 < 1000 + (int64_t)total);
        seen += s.n;
        from = next;
        cr_assert_lt(++answers, 1000);
    }
    cr_assert_eq(seen, total);
    cr_assert_gt(answers, 10, "the budget split the batch (%zu answers)", answers);
    free(p);
}

// records_count = 2^31 - 1 over one real record (CRC fixed: a valid header):
// found before anything is decompressed or allocated by the count (the
// renderer once called calloc(records_count, 48)); the batch does not decode,
// so the answer passes over it (no records, next after it) instead of failing
// every fetch of the partition.
Test(json, records_count_is_not_trusted)
{
    size_t len;
    uint8_t *p = batch_of(RN_BATCH_CODEC_ZSTD, 0, 1, 5, 'v', &len);
    set_be32(p, RN_BATCH_OFF_RECORDS_COUNT, INT32_MAX);
    set_be32(p, RN_BATCH_OFF_LAST_OFFSET_DELTA, INT32_MAX);
    set_be32(p, RN_BATCH_OFF_CRC, rn_crc32c(p + RN_BATCH_CRC_START, len - RN_BATCH_CRC_START));
    cr_assert_eq(rn_batch_check(p, len, 0, NULL), 0);
    rn_json_budget bud = {.max_bytes = 1u << 20};
    int64_t next;
    sink s;
    int n = render(NULL, p, len, 0, NULL, &bud, &next, &s);
    cr_assert_eq(n, 0, "got %d (%s)", n, rn_errname(n));
    cr_assert_eq(s.n, 0);
    cr_assert_eq(next, (int64_t)INT32_MAX + 1);
    /* With a cache (a tail), the same. */
    rn_json_cache *c;
    cr_assert_eq(rn_json_cache_new(&c, 4, 1u << 20), 0);
    rn_json_budget bud2 = {.max_bytes = 1u << 20};
    n = render(c, p, len, 0, NULL, &bud2, &next, &s);
    cr_assert_eq(n, 0);
    cr_assert_eq(s.n, 0);
    rn_json_cache_free(c);
    free(p);
}

// A record larger than max_bytes (but within the hard cap) still goes out
// when it is the answer's first, alone: a reader is never stuck.
Test(json, first_record_always_goes_out)
{
    size_t len;
    uint8_t *p = batch_of(RN_BATCH_CODEC_NONE, 0, 3, 10000, 'a', &len);
    rn_json_budget bud = {.max_bytes = 100};
    int64_t next;
    sink s;
    cr_assert_eq(render(NULL, p, len, 0, NULL, &bud, &next, &s), 1);
    cr_assert_gt(s.bytes, 10000);
    cr_assert(bud.full);
    cr_assert_eq(next, 1);
    free(p);
}

// Good records around a batch whose records do not decode go out; the bad
// batch is passed over (an older runneld stored it unvalidated), so the
// partition is not broken for the records after it.
Test(json, good_records_around_a_bad_batch)
{
    size_t l1, l2, l3;
    uint8_t *a = batch_of(RN_BATCH_CODEC_NONE, 0, 3, 0, 0, &l1);
    uint8_t *b = batch_of(RN_BATCH_CODEC_ZSTD, 3, 1, 5, 'v', &l2);
    set_be32(b, RN_BATCH_OFF_RECORDS_COUNT, 5); /* claims records it lacks */
    set_be32(b, RN_BATCH_OFF_LAST_OFFSET_DELTA, 4);
    set_be32(b, RN_BATCH_OFF_CRC, rn_crc32c(b + RN_BATCH_CRC_START, l2 - RN_BATCH_CRC_START));
    uint8_t *c = batch_of(RN_BATCH_CODEC_NONE, 8, 2, 0, 0, &l3);
    uint8_t *all = malloc(l1 + l2 + l3);
    memcpy(all, a, l1);
    memcpy(all + l1, b, l2);
    memcpy(all + l1 + l2, c, l3);
    rn_json_budget bud = {.max_bytes = 1u << 20};
    int64_t next;
    sink s;
    int n = render(NULL, all, l1 + l2 + l3, 0, NULL, &bud, &next, &s);
    cr_assert_eq(n, 5, "got %d (%s), next %lld", n, rn_errname(n), (long long)next);
    cr_assert_eq(next, 10);
    /* From inside the bad batch: straight to the records after it. */
    rn_json_budget bud2 = {.max_bytes = 1u << 20};
    sink s2;
    cr_assert_eq(render(NULL, all, l1 + l2 + l3, 4, NULL, &bud2, &next, &s2), 2);
    cr_assert_eq(s2.first, 8);
    free(a);
    free(b);
    free(c);
    free(all);
}

// A whole batch is cached once rendered; a partial one (budget reached) is
// not, and the cached copy renders the same text.
Test(json, cache_keeps_whole_batches_only)
{
    rn_json_cache *c;
    cr_assert_eq(rn_json_cache_new(&c, 16, 8u << 20), 0);
    size_t len;
    uint8_t *p = batch_of(RN_BATCH_CODEC_ZSTD, 0, 100, 0, 0, &len);
    rn_json_budget small = {.max_bytes = 500};
    int64_t next;
    sink s1, s2;
    cr_assert_gt(render(c, p, len, 0, NULL, &small, &next, &s1), 0);
    cr_assert(small.full);
    uint64_t hits, misses;
    rn_json_cache_stats(c, &hits, &misses);
    cr_assert_eq(hits, 0);
    rn_json_budget big = {.max_bytes = 1u << 20};
    cr_assert_eq(render(c, p, len, 0, NULL, &big, &next, &s1), 100);
    rn_json_budget again = {.max_bytes = 1u << 20};
    cr_assert_eq(render(c, p, len, 0, NULL, &again, &next, &s2), 100);
    rn_json_cache_stats(c, &hits, &misses);
    cr_assert_eq(hits, 1, "hits %llu misses %llu", (unsigned long long)hits,
                 (unsigned long long)misses);
    cr_assert_eq(s1.bytes, s2.bytes);
    cr_assert_str_eq(s1.text, s2.text);
    /* From the cache the budget holds as well. */
    rn_json_budget tiny = {.max_bytes = 500};
    cr_assert_lt(render(c, p, len, 0, NULL, &tiny, &next, &s2), 100);
    cr_assert(tiny.full);
    cr_assert_leq(s2.bytes, 500);
    rn_json_cache_free(c);
    free(p);
}

// A filter that matches nothing stops at max_scan bytes looked at, and the
// answer says where to go on.
Test(json, filter_stops_at_the_scan_bound)
{
    size_t len;
    uint8_t *p = batch_of(RN_BATCH_CODEC_ZSTD, 0, 50000, 0, 0, &len);
    rn_json_budget bud = {.max_bytes = 1u << 20, .max_scan = 64u << 10};
    int64_t next;
    sink s;
    cr_assert_eq(render(NULL, p, len, 0, "no such text", &bud, &next, &s), 0);
    cr_assert(bud.full);
    cr_assert_gt(next, 0);
    cr_assert_lt(next, 50000);
    free(p);
}

// A value that is JSON is embedded as JSON while small, as text when larger
// than RN_GW_MAX_EMBED_JSON (a parsed tree costs many times its text).
Test(json, large_json_values_go_as_text)
{
    json_t *j = rn_json_of_bytes((const uint8_t *)"[1,2]", 5, RN_GW_FMT_JSON);
    cr_assert(json_is_array(j));
    json_decref(j);
    size_t n = RN_GW_MAX_EMBED_JSON + 2;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '[';
    big[n - 1] = ']';
    j = rn_json_of_bytes((const uint8_t *)big, (int32_t)n, RN_GW_FMT_JSON);
    cr_assert(json_is_string(j));
    json_decref(j);
    free(big);
}

/* The rendering as it was built before, with a jansson tree per record: the
 * direct text writer must give exactly this. */
static char *reference_text(const char *topic, int32_t partition, const rn_record *rec,
                            enum rn_gw_format fmt)
{
    json_t *o = json_object(), *hdrs = json_array();
    const uint8_t *pos = rec->headers, *end = rec->headers + rec->headers_len;
    rn_record_header h;
    while (rn_record_header_next(&pos, end, &h) == 1) {
        json_t *ho = json_object();
        json_t *name = json_stringn((const char *)h.name, (size_t)h.name_len);
        if (!name)
            name = rn_json_of_bytes(h.name, h.name_len, RN_GW_FMT_BINARY);
        json_object_set_new(ho, "name", name);
        json_object_set_new(ho, "value", rn_json_of_bytes(h.value, h.value_len, fmt));
        json_array_append_new(hdrs, ho);
    }
    json_object_set_new(o, "topic", json_string(topic));
    json_object_set_new(o, "partition", json_integer(partition));
    json_object_set_new(o, "offset", json_integer(rec->offset));
    json_object_set_new(o, "timestamp", json_integer(rec->timestamp));
    json_object_set_new(o, "key", rn_json_of_bytes(rec->key, rec->key_len, fmt));
    json_object_set_new(o, "value", rn_json_of_bytes(rec->value, rec->value_len, fmt));
    json_object_set_new(o, "headers", hdrs);
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return txt;
}

typedef struct texts {
    size_t n;
    char *t[400];
} texts;

static int keep_text(void *arg, const rn_json_rec *r)
{
    texts *t = arg;
    cr_assert_lt(t->n, 400);
    t->t[t->n] = strndup(r->json, r->len);
    t->n++;
    return 0;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Bytes of one of several kinds: JSON documents and scalars (some with
 * escapes, some broken, some with an escaped NUL), UTF-8 text with control
 * characters and quotes, invalid UTF-8, random bytes, empty. */
static size_t some_bytes(uint8_t *out, size_t cap)
{
    static const char *const samples[] = {
        "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\ny\"}",
        "  [1, 2.5, -3e2, \"\\u00e9\\u2028\"]  ",
        "\"just a string \\\"quoted\\\" \\\\ \\t\"",
        "12345678901234567890",
        "-0.0",
        "1e400",
        "true",
        "nul",
        "{\"k\": \"a\\u0000b\"}",
        "{\"dup\":1,\"dup\":2}",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 tab\there \"q\" back\\slash \x01\x1f\x7f",
        "\xc0\xaf overlong",
        "\xed\xa0\x80 surrogate",
        "\xf4\x90\x80\x80 too high",
        "cut \xe2\x82",
        "",
        "{\"deep\":{\"er\":[[[[{}]]]]}}",
    };
    uint64_t k = rnd() % (sizeof(samples) / sizeof(samples[0]) + 2);
    if (k < sizeof(samples) / sizeof(samples[0])) {
        size_t n = strlen(samples[k]);
        n = n < cap ? n : cap; /* cut: may leave broken UTF-8 or JSON, as wanted */
        memcpy(out, samples[k], n);
        return n;
    }
    size_t n = rnd() % cap;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(k % 2 ? rnd() : 0x20 + rnd() % 0x60);
    return n;
}

// The direct text writer renders every record exactly as the jansson tree
// it replaced: JSON values re-serialised, text escaped, invalid UTF-8 and
// binary format as base64, header names that are not UTF-8 as base64.
Test(json, text_writer_matches_jansson)
{
    for (int round = 0; round < 40; round++) {
        rn_batch_builder_opts o = {.codec = round % 2 ? RN_BATCH_CODEC_ZSTD : RN_BATCH_CODEC_NONE,
                                   .producer_id = -1,
                                   .producer_epoch = -1,
                                   .base_sequence = -1};
        rn_batch_builder *b;
        cr_assert_eq(rn_batch_builder_new(&b, &o), 0);
        size_t n = 1 + rnd() % 50;
        for (size_t i = 0; i < n; i++) {
            uint8_t key[200], value[300], hn[3][40], hv[3][100];
            size_t kl = some_bytes(key, sizeof(key)), vl = some_bytes(value, sizeof(value));
            rn_record_header hs[3];
            size_t nh = rnd() % 4;
            for (size_t k = 0; k < nh; k++) {
                hs[k].name = hn[k];
                hs[k].name_len = (int32_t)some_bytes(hn[k], sizeof(hn[k]));
                hs[k].value = hv[k];
                hs[k].value_len = rnd() % 5 ? (int32_t)some_bytes(hv[k], sizeof(hv[k])) : -1;
            }
            cr_assert_eq(rn_batch_builder_add(b, 1700000000000 + (int64_t)i, rnd() % 5 ? key : NULL,
                                              kl, rnd() % 7 ? value : NULL, vl, hs, nh),
                         0);
        }
        uint8_t *batch;
        size_t len;
        cr_assert_eq(rn_batch_builder_finish(b, &batch, &len), 0);
        rn_batch_builder_free(b);
        rn_batch_stamp(batch, 1000 * round, 0);
        const char *topic = round % 3 ? "orders" : "we\"ird\\top\x01ic";
        for (int fmt = RN_GW_FMT_JSON; fmt <= RN_GW_FMT_BINARY; fmt++) {
            texts got = {0};
            rn_json_budget bud = {.max_bytes = 1u << 20};
            int64_t next;
            int r = rn_json_render_records(NULL, topic, 7, batch, len, 0, NULL, 0,
                                           (enum rn_gw_format)fmt, &bud, &next, keep_text, &got);
            cr_assert_eq(r, (int)n, "round %d: %d", round, r);
            rn_batch_iter it;
            cr_assert_eq(rn_batch_iter_init(&it, batch, len, 0), 0);
            rn_record rec;
            for (size_t i = 0; i < n; i++) {
                cr_assert_eq(rn_batch_iter_next(&it, &rec), 1);
                char *want = reference_text(topic, 7, &rec, (enum rn_gw_format)fmt);
                cr_assert_str_eq(got.t[i], want, "round %d record %zu format %d", round, i, fmt);
                free(want);
                free(got.t[i]);
            }
            rn_batch_iter_fini(&it);
        }
        free(batch);
    }
}

/* ---- Bounded integers ------------------------------------------------------------------- */

// Integers in range are read; too big, negative, fractional, strings, bools,
// null and containers are errors that say what was expected and what came.
Test(json, json_integers_are_bounded)
{
    char err[160];
    int64_t v = 7;
    json_t *ok = json_integer(12);
    cr_assert_eq(rn_json_get_int(ok, "partition", 0, INT32_MAX, &v, err, sizeof(err)), 0);
    cr_assert_eq(v, 12);
    json_decref(ok);
    const char *bad[] = {"4294967296", "2147483648", "-1",   "1.5", "1.0", "\"3\"",
                         "true",       "false",      "null", "[]",  "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        cr_assert_not_null(j, "%s", bad[i]);
        v = 7;
        cr_assert_eq(rn_json_get_int(j, "partition", 0, INT32_MAX, &v, err, sizeof(err)), -EINVAL,
                     "%s accepted", bad[i]);
        cr_assert_eq(v, 7, "%s: out was written", bad[i]);
        cr_assert(strstr(err, "partition must be an integer in [0, 2147483647], got "), "%s", err);
        json_decref(j);
    }
    json_t *j = json_loads("4294967296", JSON_DECODE_ANY, NULL);
    rn_json_get_int(j, "partition", 0, INT32_MAX, &v, err, sizeof(err));
    cr_assert(strstr(err, "got 4294967296"), "%s", err);
    json_decref(j);
    cr_assert_eq(rn_json_get_int(NULL, "partition", 0, 1, &v, err, sizeof(err)), -EINVAL);
}

// Text integers (query strings, headers): digits and one leading '-' only,
// within the bounds, with nothing that wraps.
Test(json, text_integers_are_bounded)
{
    char err[160];
    int64_t v;
    cr_assert_eq(rn_text_get_int("0", "offset", 0, INT64_MAX, &v, err, sizeof(err)), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(
        rn_text_get_int("9223372036854775807", "offset", 0, INT64_MAX, &v, err, sizeof(err)), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(rn_text_get_int("-1", "id", -1, 5, &v, err, sizeof(err)), 0);
    cr_assert_eq(v, -1);
    cr_assert_eq(rn_text_get_int("-9223372036854775808", "x", INT64_MIN, 0, &v, err, sizeof(err)),
                 0);
    cr_assert_eq(v, INT64_MIN);
    const char *bad[] = {"",
                         "-",
                         "+5",
                         " 5",
                         "5 ",
                         "1.5",
                         "1e3",
                         "0x10",
                         "abc",
                         "true",
                         "-1",
                         "99999999999999999999",
                         "9223372036854775808",
                         "18446744073709551617",
                         "4294967296"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        cr_assert_eq(rn_text_get_int(bad[i], "max_bytes", 0, INT32_MAX, &v, err, sizeof(err)),
                     -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(v, 7);
        cr_assert(strstr(err, "max_bytes must be an integer in [0, 2147483647], got '"), "%s", err);
    }
    cr_assert_eq(rn_text_get_int(NULL, "timeout", 0, 1, &v, err, sizeof(err)), -EINVAL);
}

/* ---- Bodies --------------------------------------------------------------------------------- */

// An empty body, a NUL byte and an escaped NUL each get one plain sentence.
Test(json, body_errors_are_one_sentence)
{
    char err[256];
    cr_assert_null(rn_json_parse(NULL, 0, err, sizeof(err)));
    cr_assert_str_eq(err, "request body is empty; expected a JSON object");
    cr_assert_null(rn_json_parse((const uint8_t *)" \r\n", 3, err, sizeof(err)));
    cr_assert_str_eq(err, "request body is empty; expected a JSON object");
    static const uint8_t nul[] = "{\"a\":\"x\0y\"}";
    cr_assert_null(rn_json_parse(nul, sizeof(nul) - 1, err, sizeof(err)));
    cr_assert_str_eq(err, "request body is not valid JSON: NUL byte at position 7");
    static const char esc[] = "{\"a\":\"x\\u0000y\"}";
    cr_assert_null(rn_json_parse((const uint8_t *)esc, sizeof(esc) - 1, err, sizeof(err)));
    cr_assert(strstr(err, "request body is not valid JSON: a string holds \\u0000 (NUL)"), "%s",
              err);
    cr_assert_null(strstr(err, "JSON_ALLOW_NUL"));
    cr_assert_null(rn_json_parse((const uint8_t *)"{\"a\":", 5, err, sizeof(err)));
    cr_assert(!strncmp(err, "request body is not valid JSON: ", 32), "%s", err);
    json_t *j = rn_json_parse((const uint8_t *)"{\"a\":1}", 7, err, sizeof(err));
    cr_assert_not_null(j);
    json_decref(j);
}
