/*
 * fuzz_format.c — libFuzzer target for the CLI's user-supplied strings
 * (tools/cli_output.c, tools/cli_common.c): kcat format strings (`-f`),
 * backslash escapes (`-D`, `-K`), and the JSON and CSV writers that print
 * whatever bytes a record holds.
 *
 * Input: a format string up to the first NUL, then the record's key and value
 * split at the next NUL; the record is printed with the compiled format, as
 * kcat -J JSON and as CSV, into /dev/null. The format string is also run
 * through the escape decoder and the integer parser that option values use.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    if (!nul)
        return 0;
    char *spec = strndup((const char *)data, (size_t)(nul - data));
    if (!spec)
        return 0;
    const uint8_t *rest = nul + 1, *end = data + size;
    const uint8_t *nul2 = memchr(rest, '\0', (size_t)(end - rest));
    const uint8_t *key = rest;
    size_t key_len = nul2 ? (size_t)(nul2 - rest) : (size_t)(end - rest);
    const uint8_t *value = nul2 ? nul2 + 1 : NULL;
    size_t value_len = nul2 ? (size_t)(end - nul2 - 1) : 0;
    rn_header hdr = {.name = "h", .name_len = 1, .value = key, .value_len = key_len};
    rn_message m = {
        .topic = "fuzz",
        .partition = 3,
        .offset = 42,
        .timestamp = 1700000000000,
        .key = key,
        .key_len = key_len,
        .value = value,
        .value_len = value_len,
        .n_headers = 1,
        .headers = &hdr,
    };

    char err[256];
    cli_format *f = NULL;
    if (cli_format_compile(spec, &f, err, sizeof(err)) == 0) {
        cli_format_write(devnull, f, &m);
        cli_format_free(f);
    }
    cli_write_json(devnull, &m);
    cli_write_csv(devnull, &m);

    char *unesc = NULL;
    size_t unesc_len = 0;
    if (cli_unescape(spec, &unesc, &unesc_len) == 0)
        free(unesc);
    int64_t v;
    cli_parse_i64(spec, INT64_MIN, INT64_MAX, &v);
    free(spec);
    return 0;
}
