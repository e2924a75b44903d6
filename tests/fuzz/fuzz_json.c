/*
 * fuzz_json.c — libFuzzer target for how the gateway reads what REST and
 * WebSocket clients send (broker/gateway/json.c): a JSON body through
 * rn_json_parse, then every number read with the one bounded reader, every
 * key and value turned into record bytes in both formats (json.v2 and
 * binary.v2 base64), and text through the query-string integer reader.
 *
 * A value rn_json_get_int accepts must lie in the range asked for: a number
 * cut to fit (partition 4294967296 read as 0) aborts the run.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/json.h"
#include "protocol/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_int(json_t *v)
{
    char err[160];
    int64_t out;
    if (rn_json_get_int(v, "partition", 0, INT32_MAX, &out, err, sizeof(err)) == 0 &&
        (out < 0 || out > INT32_MAX))
        abort();
    if (rn_json_get_int(v, "offset", -2, INT64_MAX, &out, err, sizeof(err)) == 0 && out < -2)
        abort();
}

static void visit(json_t *v, int depth)
{
    if (depth > 16)
        return;
    check_int(v);
    uint8_t *bytes = NULL;
    size_t len = 0;
    bool null = false;
    char err[160];
    if (rn_json_bytes_of(v, RN_GW_FMT_JSON, false, &bytes, &len, &null, err, sizeof(err)) == 0)
        free(bytes);
    bytes = NULL;
    if (rn_json_bytes_of(v, RN_GW_FMT_BINARY, false, &bytes, &len, &null, err, sizeof(err)) == 0)
        free(bytes);
    bytes = NULL;
    if (rn_json_bytes_of(v, RN_GW_FMT_JSON, true, &bytes, &len, &null, err, sizeof(err)) == 0)
        free(bytes);
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) visit(e, depth + 1);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) visit(e, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *j = rn_json_parse(data, size, err, sizeof(err));
    if (j) {
        visit(j, 0);
        json_decref(j);
    }
    if (size < 64) {
        char text[64];
        memcpy(text, data, size);
        text[size] = '\0';
        int64_t out;
        if (rn_text_get_int(text, "offset", -2, INT64_MAX, &out, err, sizeof(err)) == 0 && out < -2)
            abort();
        uint8_t dec[64];
        size_t dec_len = 0;
        rn_base64_decode(text, size, dec, &dec_len);
    }
    return 0;
}
