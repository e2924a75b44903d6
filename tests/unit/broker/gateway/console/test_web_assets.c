/*
 * test_web_assets.c — rn_web_asset(): the web console compiled into the broker.
 *
 * The lookup is the only thing between an HTTP path and bytes baked into runneld, so the
 * tests pin what it must and must not find: every console file under "/" + its name with
 * the right content type and exactly the bytes of broker/gateway/console/, "/" as index.html, query
 * strings ignored, and nothing else — no traversal, no case folding, no prefix matches.
 */
#include "broker/gateway/console/assets.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads WEB_SRC_DIR/name whole; the caller frees. */
static uint8_t *read_src(const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", WEB_SRC_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void expect_file(const char *path, const char *file, const char *type_prefix)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    const char *type = NULL;
    cr_assert_eq(rn_web_asset(path, &data, &len, &type), 0, "%s not found", path);
    cr_assert_not_null(data);
    cr_assert_not_null(type);
    cr_expect_eq(strncmp(type, type_prefix, strlen(type_prefix)), 0, "%s: type %s", path, type);
    size_t want_len;
    uint8_t *want = read_src(file, &want_len);
    cr_expect_eq(len, want_len, "%s: %zu bytes, file has %zu", path, len, want_len);
    cr_expect(len == want_len && memcmp(data, want, len) == 0, "%s differs from %s", path, file);
    free(want);
}

// Every console file is served at "/" + its name, with its type and its exact bytes.
Test(web_assets, every_file_is_embedded_byte_for_byte)
{
    expect_file("/index.html", "index.html", "text/html; charset=utf-8");
    expect_file("/app.js", "app.js", "text/javascript; charset=utf-8");
    expect_file("/style.css", "style.css", "text/css; charset=utf-8");
    expect_file("/favicon.svg", "favicon.svg", "image/svg+xml");
}

// "/" is the console's page, the same bytes as /index.html.
Test(web_assets, root_is_index_html)
{
    const uint8_t *a, *b;
    size_t la, lb;
    const char *ta;
    cr_assert_eq(rn_web_asset("/", &a, &la, &ta), 0);
    cr_assert_eq(rn_web_asset("/index.html", &b, &lb, NULL), 0);
    cr_expect_eq(a, b);
    cr_expect_eq(la, lb);
    cr_expect_str_eq(ta, "text/html; charset=utf-8");
}

// A query string or fragment does not change which file is found.
Test(web_assets, query_and_fragment_are_ignored)
{
    const uint8_t *a, *b;
    cr_assert_eq(rn_web_asset("/app.js", &a, NULL, NULL), 0);
    cr_assert_eq(rn_web_asset("/app.js?v=3", &b, NULL, NULL), 0);
    cr_expect_eq(a, b);
    cr_assert_eq(rn_web_asset("/?transport=sse", &b, NULL, NULL), 0);
    cr_assert_eq(rn_web_asset("/index.html", &a, NULL, NULL), 0);
    cr_expect_eq(a, b);
    cr_expect_eq(rn_web_asset("/#/topics/x", NULL, NULL, NULL), 0);
}

// Only exact paths match: no traversal, no case folding, no prefixes or suffixes.
Test(web_assets, other_paths_are_not_found)
{
    static const char *const miss[] = {
        "",         "app.js",    "/app",       "/app.js/",     "/APP.JS",
        "//app.js", "/./app.js", "/../app.js", "/web/app.js",  "/app.js.map",
        "/topics",  "/%61pp.js", "/index",     "/meson.build", "/embed.py",
    };
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
        const uint8_t *data = (const uint8_t *)"untouched";
        cr_expect_eq(rn_web_asset(miss[i], &data, NULL, NULL), -ENOENT, "'%s' was found", miss[i]);
        cr_expect_str_eq((const char *)data, "untouched", "'%s' wrote *data", miss[i]);
    }
}

// A NULL path is an error, not a crash.
Test(web_assets, null_path_is_einval)
{
    cr_expect_eq(rn_web_asset(NULL, NULL, NULL, NULL), -EINVAL);
}
