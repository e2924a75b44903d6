/*
 * test_gateway.c — the gateway's sans-I/O pieces: the HTTP request reader
 * (libhttp-parser + limits), the WebSocket engine (wslay), the handshake key,
 * base64, query parsing and the Origin allow-list.
 *
 * Both protocol engines are fed the same input split at every byte boundary
 * (and one byte at a time) and must produce exactly the same requests,
 * messages and output bytes as when fed whole. No sockets, no broker.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/http.h"
#include "broker/gateway/json.h"
#include "broker/gateway/ws.h"
#include "protocol/base64.h"

TestSuite(gateway, .timeout = 60);

/* ---- HTTP reader --------------------------------------------------------------------- */

/* What one parsed request looked like, flattened for comparison. */
typedef struct seen_req {
    char line[512];
    char headers[1024];
    char body[256];
    size_t body_len;
    bool keep_alive;
} seen_req;

static void describe_req(const rn_http_request *r, seen_req *s)
{
    snprintf(s->line, sizeof(s->line), "%s %s | %s | %s", r->method_name, r->path, r->query,
             r->url);
    size_t o = 0;
    s->headers[0] = 0;
    for (unsigned i = 0; i < r->n_headers; i++)
        o += (size_t)snprintf(s->headers + o, sizeof(s->headers) - o, "[%s=%s]", r->headers[i].name,
                              r->headers[i].value);
    s->body_len = r->body_len;
    memcpy(s->body, r->body ? (const char *)r->body : "", r->body_len < 255 ? r->body_len : 255);
    s->body[r->body_len < 255 ? r->body_len : 255] = 0;
    s->keep_alive = r->keep_alive;
}

/* Feed input in pieces cut at the given positions (sorted, may be empty);
 * collect every request. Returns the count, or -status on a reader error. */
static int feed_pieces(const char *in, size_t len, const size_t *cuts, size_t n_cuts,
                       size_t max_body, seen_req *out, int max_out)
{
    rn_http_reader rd;
    rn_http_reader_init(&rd, RN_HTTP_MAX_HEADER_BYTES, max_body);
    int n = 0;
    size_t start = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t end = k < n_cuts ? cuts[k] : len;
        size_t pos = start;
        while (pos < end) {
            size_t used = 0;
            int rc = rn_http_reader_feed(&rd, (const uint8_t *)in + pos, end - pos, &used);
            pos += used;
            if (rc < 0) {
                int st = rd.status;
                rn_http_reader_fini(&rd);
                return -st;
            }
            if (rc == 1) {
                cr_assert_lt(n, max_out);
                describe_req(&rd.req, &out[n++]);
                rn_http_reader_next(&rd);
            } else {
                cr_assert_eq(pos, end, "a 0 return consumes everything");
            }
        }
        start = end;
    }
    rn_http_reader_fini(&rd);
    return n;
}

static const char pipelined[] =
    "GET /topics/orders%2Dv2/partitions/0/records?offset=5&timeout=10 HTTP/1.1\r\n"
    "Host: localhost:9780\r\n"
    "Accept: application/vnd.kafka.binary.v2+json\r\n"
    "X-Empty:\r\n"
    "X-Spaces:   padded value   \r\n"
    "\r\n"
    "POST /topics/orders HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 27\r\n"
    "\r\n"
    "{\"records\":[{\"value\":1}]}\r\n"
    "POST /topics/chunked HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Connection: close\r\n"
    "\r\n"
    "5\r\nhello\r\n"
    "6\r\n world\r\n"
    "0\r\n\r\n";

static void check_pipelined(const seen_req *r, int n)
{
    cr_assert_eq(n, 3);
    cr_assert_str_eq(r[0].line,
                     "GET /topics/orders-v2/partitions/0/records | offset=5&timeout=10 | "
                     "/topics/orders%2Dv2/partitions/0/records?offset=5&timeout=10");
    cr_assert_str_eq(r[0].headers, "[host=localhost:9780][accept=application/vnd.kafka.binary.v2+"
                                   "json][x-empty=][x-spaces=padded value]");
    cr_assert_eq(r[0].body_len, 0);
    cr_assert(r[0].keep_alive);
    cr_assert_str_eq(r[1].line, "POST /topics/orders |  | /topics/orders");
    cr_assert_eq(r[1].body_len, 27);
    cr_assert_str_eq(r[1].body, "{\"records\":[{\"value\":1}]}\r\n");
    cr_assert_str_eq(r[2].body, "hello world");
    cr_assert_not(r[2].keep_alive, "Connection: close ends keep-alive");
}

// Three pipelined requests (plain, Content-Length body, chunked body) come out whole and in order.
Test(gateway, http_reader_pipelined_whole)
{
    seen_req r[4];
    int n = feed_pieces(pipelined, sizeof(pipelined) - 1, NULL, 0, 1024, r, 4);
    check_pipelined(r, n);
}

// The same input split at every byte boundary gives exactly the same requests.
Test(gateway, http_reader_split_at_every_byte)
{
    size_t len = sizeof(pipelined) - 1;
    for (size_t cut = 1; cut < len; cut++) {
        seen_req r[4];
        int n = feed_pieces(pipelined, len, &cut, 1, 1024, r, 4);
        check_pipelined(r, n);
    }
}

// Fed one byte at a time, the reader still yields the same three requests.
Test(gateway, http_reader_one_byte_at_a_time)
{
    size_t len = sizeof(pipelined) - 1;
    size_t *cuts = malloc(len * sizeof(*cuts));
    for (size_t i = 0; i < len - 1; i++)
        cuts[i] = i + 1;
    seen_req r[4];
    int n = feed_pieces(pipelined, len, cuts, len - 1, 1024, r, 4);
    free(cuts);
    check_pipelined(r, n);
}

// A Content-Length above the body limit is refused (413) before any body byte is read.
Test(gateway, http_reader_body_limit_before_reading)
{
    static const char in[] = "POST /topics/t HTTP/1.1\r\nContent-Length: 2000\r\n\r\n";
    rn_http_reader rd;
    rn_http_reader_init(&rd, RN_HTTP_MAX_HEADER_BYTES, 1000);
    size_t used;
    cr_assert_eq(rn_http_reader_feed(&rd, (const uint8_t *)in, sizeof(in) - 1, &used), -1);
    cr_assert_eq(rd.status, 413);
    cr_assert_null(rd.req.body, "nothing was allocated for the body");
    rn_http_reader_fini(&rd);
}

// A chunked body growing past the limit is refused with 413 while it arrives.
Test(gateway, http_reader_chunked_body_limit)
{
    static const char in[] = "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
    seen_req r[1];
    cr_assert_eq(feed_pieces(in, sizeof(in) - 1, NULL, 0, 20, r, 1), -413);
    cr_assert_eq(feed_pieces(in, sizeof(in) - 1, NULL, 0, 32, r, 1), 1);
}

// Headers beyond the byte limit are refused with 413; the arena never holds more.
Test(gateway, http_reader_header_limit)
{
    size_t big = RN_HTTP_MAX_HEADER_BYTES + 100;
    char *in = malloc(big + 64);
    cr_assert_not_null(in);
    static const char start[] = "GET / HTTP/1.1\r\nX-Big: ";
    size_t o = sizeof(start) - 1;
    memcpy(in, start, o);
    memset(in + o, 'a', big);
    strcpy(in + o + big, "\r\n\r\n");
    seen_req r[1];
    cr_assert_eq(feed_pieces(in, strlen(in), NULL, 0, 0, r, 1), -413);
    free(in);
}

// More than RN_HTTP_MAX_HEADERS header fields is refused.
Test(gateway, http_reader_too_many_headers)
{
    char in[8192];
    int o = sprintf(in, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < RN_HTTP_MAX_HEADERS + 1; i++)
        o += sprintf(in + o, "X-%d: v\r\n", i);
    sprintf(in + o, "\r\n");
    seen_req r[1];
    cr_assert_eq(feed_pieces(in, strlen(in), NULL, 0, 0, r, 1), -413);
}

// Malformed requests are 400s: garbage, both Content-Length and chunked, a bad escape, HTTP/2.
Test(gateway, http_reader_malformed)
{
    static const char *bad[] = {
        "\x16\x03\x01\x02\x00 not http\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        "GET /a%zz HTTP/1.1\r\n\r\n",
        "GET /a%00b HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen_req r[1];
        int n = feed_pieces(bad[i], strlen(bad[i]), NULL, 0, 100, r, 1);
        cr_assert_eq(n, -400, "input %zu: got %d", i, n);
    }
    static const char h2[] = "GET / HTTP/2.0\r\n\r\n";
    seen_req r[1];
    int n = feed_pieces(h2, sizeof(h2) - 1, NULL, 0, 0, r, 1);
    cr_assert(n == -505 || n == -400, "HTTP/2 over HTTP/1 framing: %d", n);
}

// Expect: 100-continue is reported so the connection can answer it before the body.
Test(gateway, http_reader_expect_continue)
{
    static const char in[] =
        "POST /t HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    rn_http_reader rd;
    rn_http_reader_init(&rd, RN_HTTP_MAX_HEADER_BYTES, 100);
    size_t used;
    cr_assert_eq(rn_http_reader_feed(&rd, (const uint8_t *)in, sizeof(in) - 1, &used), 0);
    cr_assert(rd.want_continue);
    cr_assert_eq(rn_http_reader_feed(&rd, (const uint8_t *)"abc", 3, &used), 1);
    cr_assert_eq(rd.req.body_len, 3);
    rn_http_reader_fini(&rd);
}

// An upgrade request completes at the end of its headers; the bytes after it are left unread.
Test(gateway, http_reader_upgrade_leaves_the_rest)
{
    static const char in[] = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n\x81\x85";
    rn_http_reader rd;
    rn_http_reader_init(&rd, RN_HTTP_MAX_HEADER_BYTES, 0);
    size_t used;
    cr_assert_eq(rn_http_reader_feed(&rd, (const uint8_t *)in, sizeof(in) - 1, &used), 1);
    cr_assert(rd.req.upgrade);
    cr_assert_eq(used, sizeof(in) - 1 - 2, "the frame bytes are not consumed");
    rn_http_reader_fini(&rd);
}

/* The 64 bytes of issue 11 that crashed the broker: a chunked POST with an
 * empty body followed by two trailer fields. */
static const char trailers64[] = "POST / HTTP/1.1\r\n"
                                 "Transfer-Encoding: chunked\r\n"
                                 "\r\n"
                                 "0\r\n"
                                 "A: 1\r\n"
                                 "B: 2\r\n"
                                 "\r\n"
                                 "GET /healthz HTTP/1.1\r\n"
                                 "Host: h\r\n"
                                 "\r\n";
#define TRAILERS64_LEN 64

static void check_trailers64(const seen_req *r, int n)
{
    cr_assert_eq(n, 2, "got %d requests", n);
    cr_assert_str_eq(r[0].line, "POST / |  | /");
    cr_assert_str_eq(r[0].headers, "[transfer-encoding=chunked]", "trailers are not headers: %s",
                     r[0].headers);
    cr_assert_eq(r[0].body_len, 0);
    cr_assert_str_eq(r[1].line, "GET /healthz |  | /healthz");
    cr_assert_str_eq(r[1].headers, "[host=h]", "nothing of the trailers leaks into the next: %s",
                     r[1].headers);
}

/* Feed in at every cut position, then one byte at a time; check each time. */
static void feed_every_way(const char *in, size_t len, size_t max_body,
                           void (*check)(const seen_req *, int))
{
    seen_req r[4];
    check(r, feed_pieces(in, len, NULL, 0, max_body, r, 4));
    for (size_t cut = 1; cut < len; cut++)
        check(r, feed_pieces(in, len, &cut, 1, max_body, r, 4));
    size_t *cuts = malloc(len * sizeof(*cuts));
    cr_assert_not_null(cuts);
    for (size_t i = 0; i < len - 1; i++)
        cuts[i] = i + 1;
    check(r, feed_pieces(in, len, cuts, len - 1, max_body, r, 4));
    free(cuts);
}

// Issue 11's 64-byte request: trailer fields are dropped, never stored as headers (split anywhere).
Test(gateway, http_reader_trailers_64_bytes)
{
    cr_assert_eq(strstr(trailers64, "GET") - trailers64, TRAILERS64_LEN);
    feed_every_way(trailers64, sizeof(trailers64) - 1, 1024, check_trailers64);
}

/* A chunked POST whose trailer (X-Big) is over 1 KB, so storing it would grow
 * (and move) the arena the request's strings point into. */
static char *big_trailer_request(size_t big, size_t *len)
{
    static const char head[] = "POST /topics/t?x=1 HTTP/1.1\r\n"
                               "Host: h\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n"
                               "5\r\nhello\r\n0\r\n"
                               "X-Big: ";
    static const char tail[] = "\r\nX-Small: 1\r\n\r\n"
                               "GET /metrics HTTP/1.1\r\n\r\n";
    char *in = malloc(sizeof(head) + big + sizeof(tail));
    cr_assert_not_null(in);
    memcpy(in, head, sizeof(head) - 1);
    memset(in + sizeof(head) - 1, 'b', big);
    memcpy(in + sizeof(head) - 1 + big, tail, sizeof(tail));
    *len = sizeof(head) - 1 + big + sizeof(tail) - 1;
    return in;
}

static void check_big_trailer(const seen_req *r, int n)
{
    cr_assert_eq(n, 2, "got %d requests", n);
    cr_assert_str_eq(r[0].line, "POST /topics/t | x=1 | /topics/t?x=1");
    cr_assert_str_eq(r[0].headers, "[host=h][transfer-encoding=chunked]", "%s", r[0].headers);
    cr_assert_str_eq(r[0].body, "hello");
    cr_assert_str_eq(r[1].line, "GET /metrics |  | /metrics");
    cr_assert_str_eq(r[1].headers, "");
}

// A trailer over 1 KB leaves the url, path and headers intact (ASan: no use after free), split
// anywhere.
Test(gateway, http_reader_big_trailer)
{
    size_t len;
    char *in = big_trailer_request(1500, &len);
    feed_every_way(in, len, 1024, check_big_trailer);
    free(in);
    in = big_trailer_request(12000, &len);
    seen_req r[4];
    check_big_trailer(r, feed_pieces(in, len, NULL, 0, 1024, r, 4));
    free(in);
}

// Trailer bytes count against the header limit: a trailer past it is refused with 413.
Test(gateway, http_reader_trailer_over_the_header_limit)
{
    size_t len;
    char *in = big_trailer_request(RN_HTTP_MAX_HEADER_BYTES, &len);
    seen_req r[4];
    cr_assert_eq(feed_pieces(in, len, NULL, 0, 1024, r, 4), -413);
    free(in);
}

// Many trailer fields (more than RN_HTTP_MAX_HEADERS) are dropped, not counted as headers.
Test(gateway, http_reader_many_trailer_fields)
{
    char in[8192];
    int o = sprintf(in, "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n");
    for (int i = 0; i < RN_HTTP_MAX_HEADERS * 2; i++)
        o += sprintf(in + o, "T-%d: v\r\n", i);
    sprintf(in + o, "\r\n");
    seen_req r[1];
    cr_assert_eq(feed_pieces(in, strlen(in), NULL, 0, 100, r, 1), 1);
    cr_assert_str_eq(r[0].headers, "[transfer-encoding=chunked]");
    cr_assert_str_eq(r[0].body, "x");
}

/* Touch every string and byte of a complete request and check the reader's
 * promises, so a dangling pointer or an overrun shows (under ASan) here. */
static void touch_request(const rn_http_reader *rd)
{
    const rn_http_request *r = &rd->req;
    size_t sum = strlen(r->url) + strlen(r->path) + strlen(r->query) + strlen(r->method_name);
    cr_assert_leq(r->n_headers, RN_HTTP_MAX_HEADERS);
    for (unsigned i = 0; i < r->n_headers; i++) {
        for (const char *c = r->headers[i].name; *c; c++)
            cr_assert(!(*c >= 'A' && *c <= 'Z'), "header names are lower-cased");
        sum += strlen(r->headers[i].value);
    }
    cr_assert_leq(r->body_len, rd->max_body);
    for (size_t i = 0; i < r->body_len; i++)
        sum += r->body[i];
    if (r->body)
        cr_assert_eq(r->body[r->body_len], 0);
    cr_assert_leq(strlen(r->url), rd->max_header);
    (void)sum;
}

/* Seeds for the mutations: each a valid input the reader accepts. */
static const char *const mutation_seeds[] = {
    pipelined,
    trailers64,
    "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x85",
    "POST /t HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    "GET /a%20b?c=d%26e HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n\r\n",
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// Seeded mutations of valid requests, split at random places: never a crash, leak or overrun.
Test(gateway, http_reader_seeded_mutations)
{
    unsigned iters = 3000;
    const char *env = getenv("RN_HTTP_MUTATIONS"); /* more by hand: RN_HTTP_MUTATIONS=1000000 */
    if (env)
        iters = (unsigned)strtoul(env, NULL, 10);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint8_t buf[4096];
    for (unsigned it = 0; it < iters; it++) {
        const char *s =
            mutation_seeds[xorshift(&seed) % (sizeof(mutation_seeds) / sizeof(*mutation_seeds))];
        size_t len = strlen(s);
        memcpy(buf, s, len);
        unsigned n_mut = 1 + (unsigned)(xorshift(&seed) % 4);
        for (unsigned m = 0; m < n_mut && len > 0; m++) {
            size_t at = xorshift(&seed) % len;
            switch (xorshift(&seed) % 5) {
            case 0: /* flip a byte */
                buf[at] = (uint8_t)xorshift(&seed);
                break;
            case 1: /* drop a span */ {
                size_t n = 1 + xorshift(&seed) % 8;
                if (n > len - at)
                    n = len - at;
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
                break;
            }
            case 2: /* repeat a span (pipelining, long fields) */ {
                size_t n = 1 + xorshift(&seed) % 64;
                if (n > len - at)
                    n = len - at;
                unsigned times = 1 + (unsigned)(xorshift(&seed) % 40);
                for (unsigned k = 0; k < times && len + n <= sizeof(buf); k++) {
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
                break;
            }
            case 3: /* a line break or separator somewhere */
                buf[at] = (uint8_t) "\r\n:; \t0"[xorshift(&seed) % 7];
                break;
            default: /* splice in the start of another seed */ {
                const char *o = mutation_seeds[xorshift(&seed) %
                                               (sizeof(mutation_seeds) / sizeof(*mutation_seeds))];
                size_t n = strlen(o);
                if (n > sizeof(buf) - at)
                    n = sizeof(buf) - at;
                memcpy(buf + at, o, n);
                if (at + n > len)
                    len = at + n;
                break;
            }
            }
        }
        rn_http_reader rd;
        rn_http_reader_init(&rd, 512 + xorshift(&seed) % 2048, xorshift(&seed) % 64);
        size_t pos = 0;
        int requests = 0;
        while (pos < len && requests < 200) {
            size_t piece = 1 + xorshift(&seed) % (len - pos);
            size_t used = 0;
            int rc = rn_http_reader_feed(&rd, buf + pos, piece, &used);
            cr_assert_leq(used, piece);
            pos += used;
            if (rc < 0) {
                cr_assert(rd.status >= 400 && rd.status < 600);
                break;
            }
            if (rc == 1) {
                touch_request(&rd);
                requests++;
                if (rd.req.upgrade)
                    break;
                rn_http_reader_next(&rd);
            }
        }
        rn_http_reader_fini(&rd);
    }
}
// Query parameters are found by exact name and percent-decoded; missing ones report 0.
Test(gateway, http_query_get)
{
    char buf[32];
    cr_assert_eq(rn_http_query_get("offset=5&filter=a%20b+c&x", "filter", buf, sizeof(buf)), 1);
    cr_assert_str_eq(buf, "a b c");
    cr_assert_eq(rn_http_query_get("offset=5&offsetx=7", "offsetx", buf, sizeof(buf)), 1);
    cr_assert_str_eq(buf, "7");
    cr_assert_eq(rn_http_query_get("offset=5", "off", buf, sizeof(buf)), 0);
    cr_assert_eq(rn_http_query_get("x", "x", buf, sizeof(buf)), 1);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(rn_http_query_get("a=0123456789", "a", buf, 5), -ENAMETOOLONG);
}

/* ---- Origin allow-list ------------------------------------------------------------------ */

// Without a list only the page's own host passes; with one, exactly the listed origins (or *).
Test(gateway, origin_allow_list)
{
    rn_gateway gw;
    memset(&gw, 0, sizeof(gw));
    cr_assert(rn_http_origin_allowed(&gw, NULL, "localhost:9780"), "no Origin: not a browser");
    cr_assert(rn_http_origin_allowed(&gw, "http://localhost:9780", "localhost:9780"));
    cr_assert_not(rn_http_origin_allowed(&gw, "http://evil.example", "localhost:9780"));
    cr_assert_not(rn_http_origin_allowed(&gw, "http://localhost:9781", "localhost:9780"));
    cr_assert_not(rn_http_origin_allowed(&gw, "http://localhost:9780", NULL));
    gw.allowed_origins = "https://a.example, http://b.example:8080";
    cr_assert(rn_http_origin_allowed(&gw, "http://b.example:8080", "x"));
    cr_assert(rn_http_origin_allowed(&gw, "https://a.example", "x"));
    cr_assert_not(rn_http_origin_allowed(&gw, "https://a.example.evil", "x"));
    cr_assert_not(rn_http_origin_allowed(&gw, "http://localhost:9780", "localhost:9780"));
    gw.allowed_origins = "*";
    cr_assert(rn_http_origin_allowed(&gw, "http://anything", "x"));
}

/* ---- base64 and the handshake ----------------------------------------------------------- */

// base64 round-trips every length and refuses bad characters, bad padding and bad lengths.
Test(gateway, base64)
{
    uint8_t in[64], out[64];
    char enc[100];
    for (size_t n = 0; n < sizeof(in); n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        rn_base64_encode(in, n, enc);
        cr_assert_eq(strlen(enc), rn_base64_len(n));
        size_t ol;
        cr_assert_eq(rn_base64_decode(enc, strlen(enc), out, &ol), 0);
        cr_assert_eq(ol, n);
        cr_assert_eq(memcmp(in, out, n), 0);
    }
    rn_base64_encode((const uint8_t *)"hello", 5, enc);
    cr_assert_str_eq(enc, "aGVsbG8=");
    size_t ol;
    cr_assert_eq(rn_base64_decode("aGVsbG8", 7, out, &ol), -EINVAL);
    cr_assert_eq(rn_base64_decode("aG=sbG8=", 8, out, &ol), -EINVAL);
    cr_assert_eq(rn_base64_decode("aGVs*G8=", 8, out, &ol), -EINVAL);
    cr_assert_eq(rn_base64_decode("a===", 4, out, &ol), -EINVAL);
}

// Sec-WebSocket-Accept matches RFC 6455's worked example; keys that are not 16 bytes are refused.
Test(gateway, ws_accept_key)
{
    char out[29];
    cr_assert_eq(rn_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    cr_assert_eq(rn_ws_accept_key("dGhlIHNhbXBsZQ==", out), -EINVAL);
    cr_assert_eq(rn_ws_accept_key(NULL, out), -EINVAL);
    cr_assert_eq(rn_ws_accept_key("!!!!!!!!!!!!!!!!!!!!!!==", out), -EINVAL);
}

/* ---- WebSocket engine -------------------------------------------------------------------- */

typedef struct ws_probe {
    char msgs[8][256];
    size_t msg_lens[8];
    bool text[8];
    int n_msgs;
    uint8_t out[4096];
    size_t out_len;
    int marks;
} ws_probe;

static void probe_msg(void *arg, bool text, const uint8_t *data, size_t len)
{
    ws_probe *p = arg;
    cr_assert_lt(p->n_msgs, 8);
    cr_assert_lt(len, 256);
    memcpy(p->msgs[p->n_msgs], data, len);
    p->msgs[p->n_msgs][len] = 0;
    p->msg_lens[p->n_msgs] = len;
    p->text[p->n_msgs] = text;
    p->n_msgs++;
}

static int probe_write(void *arg, const uint8_t *data, size_t len)
{
    ws_probe *p = arg;
    if (len == 0) {
        p->marks++;
        return 0;
    }
    cr_assert_leq(p->out_len + len, sizeof(p->out));
    memcpy(p->out + p->out_len, data, len);
    p->out_len += len;
    return 0;
}

static const rn_ws_cbs probe_cbs = {.on_message = probe_msg, .write = probe_write};

/* A masked client frame: fin|opcode, payload masked with key. */
static size_t client_frame(uint8_t *buf, bool fin, int opcode, const void *payload, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t o = 0;
    buf[o++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        buf[o++] = (uint8_t)(0x80 | len);
    } else {
        buf[o++] = 0x80 | 126;
        buf[o++] = (uint8_t)(len >> 8);
        buf[o++] = (uint8_t)len;
    }
    memcpy(buf + o, key, 4);
    o += 4;
    for (size_t i = 0; i < len; i++)
        buf[o + i] = ((const uint8_t *)payload)[i] ^ key[i % 4];
    return o + len;
}

/* Feed in two pieces cut at `cut` (0: whole). */
static int feed_cut(rn_ws *ws, const uint8_t *in, size_t len, size_t cut)
{
    if (cut == 0 || cut >= len)
        return rn_ws_feed(ws, in, len);
    int rc = rn_ws_feed(ws, in, cut);
    if (rc < 0)
        return rc;
    return rn_ws_feed(ws, in + cut, len - cut);
}

// A fragmented text message with a ping between its fragments, split at every byte: one message,
// one pong.
Test(gateway, ws_fragments_and_ping_split_at_every_byte)
{
    uint8_t in[256];
    size_t n = 0;
    n += client_frame(in + n, false, 0x1, "{\"op\":", 6);
    n += client_frame(in + n, true, 0x9, "p", 1);
    n += client_frame(in + n, false, 0x0, "\"sub", 4);
    n += client_frame(in + n, true, 0x0, "scribe\"}", 8);
    for (size_t cut = 0; cut < n; cut++) {
        ws_probe p = {0};
        rn_ws *ws;
        cr_assert_eq(rn_ws_new(&ws, 1024, &probe_cbs, &p), 0);
        cr_assert_eq(feed_cut(ws, in, n, cut), 0, "cut %zu", cut);
        cr_assert_eq(p.n_msgs, 1, "cut %zu", cut);
        cr_assert(p.text[0]);
        cr_assert_str_eq(p.msgs[0], "{\"op\":\"subscribe\"}");
        /* The pong: unmasked, same payload. */
        static const uint8_t pong[] = {0x8a, 0x01, 'p'};
        cr_assert_eq(p.out_len, sizeof(pong), "cut %zu", cut);
        cr_assert_eq(memcmp(p.out, pong, sizeof(pong)), 0);
        rn_ws_free(ws);
    }
}

// Server messages are unmasked frames with exact golden bytes (7-bit and 16-bit lengths).
Test(gateway, ws_send_golden_bytes)
{
    ws_probe p = {0};
    rn_ws *ws;
    cr_assert_eq(rn_ws_new(&ws, 1024, &probe_cbs, &p), 0);
    cr_assert_eq(rn_ws_send(ws, true, "hi", 2), 0);
    static const uint8_t hi[] = {0x81, 0x02, 'h', 'i'};
    cr_assert_eq(p.out_len, sizeof(hi));
    cr_assert_eq(memcmp(p.out, hi, sizeof(hi)), 0);
    cr_assert_geq(p.marks, 1, "a cut mark follows a whole message");
    p.out_len = 0;
    char big[300];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(rn_ws_send(ws, true, big, sizeof(big)), 0);
    cr_assert_eq(p.out_len, 4 + sizeof(big));
    cr_assert_eq(p.out[0], 0x81);
    cr_assert_eq(p.out[1], 126);
    cr_assert_eq(p.out[2], 0x01);
    cr_assert_eq(p.out[3], 0x2c);
    rn_ws_free(ws);
}

// A close from the peer is answered with the same code, and the engine is then done.
Test(gateway, ws_close_handshake)
{
    ws_probe p = {0};
    rn_ws *ws;
    cr_assert_eq(rn_ws_new(&ws, 1024, &probe_cbs, &p), 0);
    uint8_t in[32];
    const uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
    size_t n = client_frame(in, true, 0x8, code, 2);
    cr_assert_eq(rn_ws_feed(ws, in, n), 0);
    uint16_t got;
    cr_assert(rn_ws_close_received(ws, &got));
    cr_assert_eq(got, 1000);
    static const uint8_t reply[] = {0x88, 0x02, 0x03, 0xe8};
    cr_assert_eq(p.out_len, sizeof(reply));
    cr_assert_eq(memcmp(p.out, reply, sizeof(reply)), 0);
    cr_assert(rn_ws_done(ws));
    cr_assert_eq(rn_ws_send(ws, true, "x", 1), -EPIPE, "nothing after a close");
    rn_ws_free(ws);
}

/* The close code in the engine's output (0 if there is no close frame). */
static unsigned close_code_sent(const ws_probe *p)
{
    for (size_t i = 0; i + 1 < p->out_len;) {
        uint8_t op = p->out[i] & 0x0f;
        size_t len = p->out[i + 1] & 0x7f;
        if (op == 0x8)
            return len >= 2 ? (unsigned)p->out[i + 2] << 8 | p->out[i + 3] : 1005;
        i += 2 + len;
    }
    return 0;
}

// Protocol violations are closed with the right code: unmasked 1002, bad UTF-8 1007, too big 1009,
// bad opcode 1002.
Test(gateway, ws_protocol_errors)
{
    struct {
        const char *what;
        uint8_t in[64];
        size_t len;
        unsigned code;
    } cases[4];
    memset(cases, 0, sizeof(cases));
    cases[0].what = "unmasked";
    memcpy(cases[0].in, "\x81\x02hi", 4);
    cases[0].len = 4;
    cases[0].code = 1002;
    cases[1].what = "bad utf-8";
    cases[1].len = client_frame(cases[1].in, true, 0x1, "\xc0\xaf", 2);
    cases[1].code = 1007;
    char big[40];
    memset(big, 'a', sizeof(big));
    cases[2].what = "too big";
    cases[2].len = client_frame(cases[2].in, true, 0x1, big, sizeof(big));
    cases[2].code = 1009;
    cases[3].what = "reserved opcode";
    cases[3].len = client_frame(cases[3].in, true, 0x3, "x", 1);
    cases[3].code = 1002;
    for (int i = 0; i < 4; i++) {
        ws_probe p = {0};
        rn_ws *ws;
        cr_assert_eq(rn_ws_new(&ws, 32, &probe_cbs, &p), 0);
        int rc = rn_ws_feed(ws, cases[i].in, cases[i].len);
        cr_assert_eq(rc, -EPROTO, "%s: rc %d", cases[i].what, rc);
        cr_assert_eq(p.n_msgs, 0, "%s: nothing delivered", cases[i].what);
        cr_assert_eq(close_code_sent(&p), cases[i].code, "%s: close %u", cases[i].what,
                     close_code_sent(&p));
        cr_assert(rn_ws_done(ws), "%s", cases[i].what);
        rn_ws_free(ws);
    }
}
