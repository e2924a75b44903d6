/*
 * http_reader.c — the gateway's HTTP/1.1 request reader (rn_http_reader,
 * http.h): sans-I/O on libhttp-parser. It never touches a socket: http.c
 * feeds it the bytes a connection received and answers what it hands back,
 * so it can be tested (and fuzzed) by feeding bytes split anywhere.
 *
 * libhttp-parser calls back with pieces of the URL, header names, header
 * values and body, split wherever the input was split.
 * Pieces go into one arena (url, then name\0value\0 pairs) as offsets, turned
 * into pointers when the headers end, so a realloc never leaves a dangling
 * pointer. From then on the arena is sealed (headers_done): the request's
 * url, path and headers point into it, so nothing may grow or move it, and
 * arena_reserve refuses. That matters because the parser calls the same
 * header callbacks again for the trailer fields after a chunked body (RFC
 * 9112 §7.1.2): those are counted against the header limit and dropped (no
 * handler here reads a trailer, and RFC 9110 §6.5.1 lets a recipient discard
 * them), never stored next to the finalised headers. Limits are checked
 * before memory is taken:
 *   1. url + names + values <= max_header and at most RN_HTTP_MAX_HEADERS
 *      fields, else 413 (the brief asks 413 for both limits; the arena never
 *      grows past max_header plus a NUL per string);
 *   2. a Content-Length above max_body is refused when the headers end, before
 *      a byte of the body is read (413); a chunked body is counted as it comes;
 *   3. the parser pauses itself at the end of each request (message_complete
 *      calls http_parser_pause), so pipelined requests wait, unparsed, until
 *      the current one is answered: answers leave in request order.
 *   4. Content-Length together with Transfer-Encoding, bad chunk sizes, bad
 *      characters: the parser's own errors, answered 400.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/http.h"

static void rd_fail(rn_http_reader *rd, int status, const char *msg)
{
    if (rd->failed)
        return;
    rd->failed = true;
    rd->status = status;
    snprintf(rd->errmsg, sizeof(rd->errmsg), "%s", msg);
}

/* Room for n more bytes and a NUL. The arena's size is bounded by the header
 * limit (plus one NUL per string and the decoded path), so this never grows
 * without end. */
static int arena_reserve(rn_http_reader *rd, size_t n)
{
    if (rd->headers_done)
        return -EPERM; /* sealed: the request points into it */
    if (rd->arena_len + n + 1 > rd->arena_cap) {
        size_t cap = rd->arena_cap ? rd->arena_cap : 1024;
        while (cap < rd->arena_len + n + 1)
            cap *= 2;
        char *a = realloc(rd->arena, cap);
        if (!a)
            return -ENOMEM;
        rd->arena = a;
        rd->arena_cap = cap;
    }
    return 0;
}

/* Append s (which must not point into the arena) and a NUL that is not
 * counted, so a string built of several pieces stays terminated. */
static int arena_put(rn_http_reader *rd, const char *s, size_t n)
{
    int rc = arena_reserve(rd, n);
    if (rc < 0)
        return rc;
    memcpy(rd->arena + rd->arena_len, s, n);
    rd->arena_len += n;
    rd->arena[rd->arena_len] = 0;
    return 0;
}

/* The arena could not take a piece: out of memory, or (a bug) sealed. */
static int arena_fail(rn_http_reader *rd)
{
    rd_fail(rd, rd->headers_done ? 500 : 503,
            rd->headers_done ? "header storage written after the headers ended" : "out of memory");
    return -1;
}

static int count_header_bytes(rn_http_reader *rd, size_t n)
{
    rd->header_bytes += n;
    if (rd->header_bytes > rd->max_header) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request line, headers and trailer fields larger than %zu bytes",
                 rd->max_header);
        rd_fail(rd, 413, msg);
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    rn_http_reader *rd = p->data;
    rd->in_message = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    rn_http_reader *rd = p->data;
    if (count_header_bytes(rd, n) < 0)
        return -1;
    if (arena_put(rd, at, n) < 0)
        return arena_fail(rd);
    return 0;
}

/* End the string being built (url, a name or a value): the NUL arena_put
 * wrote stays, and the next string starts after it. */
static void arena_end_string(rn_http_reader *rd)
{
    rd->arena_len++;
}

static int finish_header(rn_http_reader *rd)
{
    if (rd->hstate != 2)
        return 0;
    arena_end_string(rd);
    if (rd->req.n_headers >= RN_HTTP_MAX_HEADERS) {
        rd_fail(rd, 413, "too many header fields");
        return -1;
    }
    /* Offsets now; pointers once the headers end (the arena may move). */
    rn_http_header *h = &rd->req.headers[rd->req.n_headers++];
    h->name = (const char *)(uintptr_t)rd->field_at;
    h->value = (const char *)(uintptr_t)rd->value_at;
    rd->hstate = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    rn_http_reader *rd = p->data;
    if (rd->headers_done)
        return count_header_bytes(rd, n); /* a trailer field: counted, dropped */
    if (rd->hstate == 0 && rd->req.n_headers == 0 && rd->field_at == 0) {
        /* The url ends where the first field starts. */
        arena_end_string(rd);
    }
    if (finish_header(rd) < 0)
        return -1;
    if (count_header_bytes(rd, n) < 0)
        return -1;
    if (rd->hstate != 1) {
        rd->hstate = 1;
        rd->field_at = rd->arena_len;
    }
    if (arena_put(rd, at, n) < 0)
        return arena_fail(rd);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    rn_http_reader *rd = p->data;
    if (count_header_bytes(rd, n) < 0)
        return -1;
    if (rd->headers_done)
        return 0; /* a trailer field's value: dropped */
    if (rd->hstate != 2) {
        arena_end_string(rd); /* the field */
        rd->hstate = 2;
        rd->value_at = rd->arena_len;
    }
    if (arena_put(rd, at, n) < 0)
        return arena_fail(rd);
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Percent-decode [s, s+n) into out (room for n+1). '+' stays '+' in a path.
 * Returns -1 for a bad escape or an encoded NUL. */
static int pct_decode(const char *s, size_t n, char *out, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    rn_http_reader *rd = p->data;
    if (rd->req.n_headers == 0 && rd->hstate == 0)
        arena_end_string(rd); /* the url, when no header came */
    if (finish_header(rd) < 0)
        return -1;
    /* The decoded path goes after everything else in the arena; it is never
     * longer than the url. */
    size_t url_len = strlen(rd->arena);
    size_t path_at = rd->arena_len;
    if (arena_reserve(rd, url_len + 1) < 0) {
        rd_fail(rd, 503, "out of memory");
        return -1;
    }
    rd->arena_len += url_len + 1;
    /* The last growth: pointers into the arena are handed out below. */
    rd->headers_done = true;
    const char *url = rd->arena;
    rn_http_request *req = &rd->req;
    req->url = url;
    const char *q = strchr(url, '?');
    size_t plen = q ? (size_t)(q - url) : url_len;
    req->query = q ? q + 1 : "";
    req->path = rd->arena + path_at;
    if (pct_decode(url, plen, req->path, false) < 0) {
        rd_fail(rd, 400, "bad percent-encoding in the path");
        return -1;
    }
    for (unsigned i = 0; i < req->n_headers; i++) {
        rn_http_header *h = &req->headers[i];
        h->name = rd->arena + (size_t)(uintptr_t)h->name;
        h->value = rd->arena + (size_t)(uintptr_t)h->value;
        for (char *c = (char *)h->name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        /* Optional whitespace around a value is not part of it. */
        const char *v = h->value;
        while (*v == ' ' || *v == '\t')
            v++;
        char *e = (char *)v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        h->value = v;
    }
    req->method = (enum http_method)p->method;
    req->method_name = http_method_str((enum http_method)p->method);
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    req->upgrade = p->upgrade;
    if (p->http_major != 1) {
        rd_fail(rd, 505, "only HTTP/1.x is spoken here");
        return -1;
    }
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_len = p->content_length != ULLONG_MAX && p->content_length > 0;
    if (has_len && p->content_length > rd->max_body) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body of %llu bytes is larger than %zu bytes",
                 (unsigned long long)p->content_length, rd->max_body);
        rd_fail(rd, 413, msg);
        return -1;
    }
    if (chunked && rd->max_body == 0) {
        rd_fail(rd, 413, "no request body is accepted here");
        return -1;
    }
    if (has_len) {
        /* Known length within the limit: one allocation, no growth. */
        rd->body_cap = (size_t)p->content_length + 1;
        req->body = malloc(rd->body_cap);
        if (!req->body) {
            rd_fail(rd, 503, "out of memory");
            return -1;
        }
    }
    const char *expect = rn_http_header_get(req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && (has_len || chunked))
        rd->want_continue = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    rn_http_reader *rd = p->data;
    rn_http_request *req = &rd->req;
    if (n > rd->max_body - req->body_len) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body larger than %zu bytes", rd->max_body);
        rd_fail(rd, 413, msg);
        return -1;
    }
    if (req->body_len + n + 1 > rd->body_cap) {
        size_t cap = rd->body_cap ? rd->body_cap : 4096;
        while (cap < req->body_len + n + 1)
            cap *= 2;
        if (cap > rd->max_body + 1)
            cap = rd->max_body + 1;
        uint8_t *b = realloc(req->body, cap);
        if (!b) {
            rd_fail(rd, 503, "out of memory");
            return -1;
        }
        req->body = b;
        rd->body_cap = cap;
    }
    memcpy(req->body + req->body_len, at, n);
    req->body_len += n;
    req->body[req->body_len] = 0;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    rn_http_reader *rd = p->data;
    rd->req.keep_alive = http_should_keep_alive(p) != 0;
    rd->complete = true;
    /* Stop here: the next pipelined request waits until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings reader_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void reader_reset_request(rn_http_reader *rd)
{
    free(rd->req.body);
    memset(&rd->req, 0, sizeof(rd->req));
    rd->arena_len = 0;
    rd->header_bytes = 0;
    rd->hstate = 0;
    rd->field_at = rd->value_at = 0;
    rd->body_cap = 0;
    rd->complete = rd->want_continue = rd->in_message = rd->headers_done = false;
    /* A big arena from one large request is not kept for a long-lived
     * keep-alive connection. */
    if (rd->arena_cap > 4096) {
        free(rd->arena);
        rd->arena = NULL;
        rd->arena_cap = 0;
    }
}

void rn_http_reader_init(rn_http_reader *rd, size_t max_header, size_t max_body)
{
    memset(rd, 0, sizeof(*rd));
    http_parser_init(&rd->p, HTTP_REQUEST);
    rd->p.data = rd;
    rd->max_header = max_header;
    rd->max_body = max_body;
}

void rn_http_reader_fini(rn_http_reader *rd)
{
    free(rd->req.body);
    free(rd->arena);
    memset(rd, 0, sizeof(*rd));
}

int rn_http_reader_feed(rn_http_reader *rd, const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    if (rd->failed)
        return -1;
    if (rd->complete)
        return 1;
    if (len == 0)
        return 0; /* execute() with 0 bytes means EOF to the parser */
    size_t n = http_parser_execute(&rd->p, &reader_settings, (const char *)data, len);
    *used = n;
    if (rd->failed)
        return -1;
    if (rd->complete)
        return 1;
    enum http_errno e = HTTP_PARSER_ERRNO(&rd->p);
    if (e != HPE_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed HTTP: %s", http_errno_description(e));
        rd_fail(rd, 400, msg);
        return -1;
    }
    return 0;
}

void rn_http_reader_next(rn_http_reader *rd)
{
    if (rd->failed)
        return;
    reader_reset_request(rd);
    http_parser_pause(&rd->p, 0);
}

bool rn_http_reader_in_message(const rn_http_reader *rd)
{
    return rd->in_message && !rd->complete;
}

const char *rn_http_header_get(const rn_http_request *req, const char *name)
{
    for (unsigned i = 0; i < req->n_headers; i++)
        if (strcmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int rn_http_query_get(const char *query, const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);
    const char *s = query;
    while (s && *s) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', plen);
        size_t nlen = eq ? (size_t)(eq - s) : plen;
        if (nlen == klen && memcmp(s, key, klen) == 0) {
            const char *v = eq ? eq + 1 : s + plen;
            size_t vlen = eq ? plen - nlen - 1 : 0;
            if (vlen + 1 > len)
                return -ENAMETOOLONG;
            if (pct_decode(v, vlen, buf, true) < 0)
                return -EINVAL;
            return 1;
        }
        s = amp ? amp + 1 : NULL;
    }
    return 0;
}
