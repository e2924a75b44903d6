/*
 * fuzz_http.c — libFuzzer target for the gateway's HTTP/1.1 request reader
 * (broker/gateway/http.c over libhttp-parser): the bytes a browser or curl
 * sends on :9780.
 *
 * The input is fed in pieces whose size comes from its first byte, as a socket
 * would deliver it; pipelined requests are read one after another as the
 * connection does. For each complete request every string the reader exposes
 * (method, URL, path, query, each header, the body) is read in full, so a
 * pointer left dangling into a buffer that moved is an ASan report here, not a
 * crash in production.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void touch(const char *s)
{
    if (s)
        sink += strlen(s);
}

static void touch_request(const rn_http_request *req)
{
    touch(req->url);
    touch(req->path);
    touch(req->query);
    for (size_t i = 0; i < req->n_headers; i++) {
        touch(req->headers[i].name);
        touch(req->headers[i].value);
    }
    for (size_t i = 0; i < req->body_len; i++)
        sink += req->body[i];
    touch(rn_http_header_get(req, "content-type"));
    char buf[64];
    if (req->query)
        rn_http_query_get(req->query, "offset", buf, sizeof(buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 97 + 1;
    data++;
    size--;

    rn_http_reader rd;
    rn_http_reader_init(&rd, 8192, 65536);
    size_t off = 0;
    while (off < size) {
        size_t len = size - off < step ? size - off : step;
        size_t used = 0;
        int rc = rn_http_reader_feed(&rd, data + off, len, &used);
        off += used;
        if (rc < 0)
            break;
        if (rc == 1) {
            touch_request(&rd.req);
            rn_http_reader_next(&rd);
        } else if (used == 0) {
            break;
        }
    }
    rn_http_reader_fini(&rd);
    return 0;
}
