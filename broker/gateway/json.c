/*
 * json.c — JSON for the gateways: records to JSON and back, base64, REST
 * Proxy error codes (see json.h for the two renderings).
 *
 * Records come from fetch answers: the record batch bytes as stored (DESIGN
 * §3), walked with rn_batch_iter, which checks every length against the
 * batch, so a corrupt batch is an error here, never an overread. A fetch
 * starts at the batch holding the wanted offset, so records below `from` are
 * skipped.
 *
 * Error codes (REST Proxy v2): 40401 unknown topic, 40402 unknown partition,
 * 40403 unknown consumer instance, 40404 unknown group (runnel), 40901
 * conflict, 42201 invalid, 41301 too large, 50001 broker or storage error,
 * 50301 not ready / shutting down.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/gateway/json.h"
#include "broker/logfmt.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

/* ---- base64 ------------------------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rn_base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void rn_base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = 0;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int rn_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    if (n % 4)
        return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=') {
                /* Padding: only in the last group, only at its end. */
                if (i + 4 != n || k < 2)
                    return -EINVAL;
                pad++;
                v[k] = 0;
                continue;
            }
            if (pad)
                return -EINVAL;
            v[k] = b64val(c);
            if (v[k] < 0)
                return -EINVAL;
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(x >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)x;
    }
    *out_len = o;
    return 0;
}

/* ---- Requests → bytes ------------------------------------------------------------------- */

int rn_json_bytes_of(json_t *v, enum rn_gw_format fmt, bool raw_strings, uint8_t **out, size_t *len,
                     bool *null, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    *null = false;
    if (!v || json_is_null(v)) {
        *null = true;
        return 0;
    }
    if (fmt == RN_GW_FMT_BINARY) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "binary format: expected a base64 string");
            return -EINVAL;
        }
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        uint8_t *b = malloc(n / 4 * 3 + 1);
        if (!b)
            return -ENOMEM;
        size_t bl;
        if (rn_base64_decode(s, n, b, &bl) < 0) {
            free(b);
            snprintf(err, errlen, "binary format: not valid base64");
            return -EINVAL;
        }
        *out = b;
        *len = bl;
        return 0;
    }
    if (raw_strings && json_is_string(v)) {
        size_t n = json_string_length(v);
        uint8_t *b = malloc(n + 1);
        if (!b)
            return -ENOMEM;
        memcpy(b, json_string_value(v), n);
        *out = b;
        *len = n;
        return 0;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return -ENOMEM;
    *out = (uint8_t *)s;
    *len = strlen(s);
    return 0;
}

/* ---- Records → JSON --------------------------------------------------------------------- */

json_t *rn_json_of_bytes(const uint8_t *p, int32_t len, enum rn_gw_format fmt)
{
    if (len < 0 || !p)
        return json_null();
    if (fmt == RN_GW_FMT_JSON) {
        /* Cheap first-byte test before a full parse: most text is not JSON. */
        size_t i = 0;
        while (i < (size_t)len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r'))
            i++;
        if (i < (size_t)len) {
            uint8_t ch = p[i];
            if (ch == '{' || ch == '[' || ch == '"' || ch == '-' || (ch >= '0' && ch <= '9') ||
                ch == 't' || ch == 'f' || ch == 'n') {
                json_t *j = json_loadb((const char *)p, (size_t)len, JSON_DECODE_ANY, NULL);
                if (j)
                    return j;
            }
        }
        json_t *s = json_stringn((const char *)p, (size_t)len);
        if (s)
            return s; /* valid UTF-8 text */
    }
    size_t bl = rn_base64_len((size_t)len);
    char *b = malloc(bl + 1);
    if (!b)
        return NULL;
    rn_base64_encode(p, (size_t)len, b);
    json_t *s = json_stringn(b, bl);
    free(b);
    return s;
}

static bool contains(const uint8_t *p, int32_t len, const char *needle, size_t nlen)
{
    return p && len >= 0 && (size_t)len >= nlen && memmem(p, (size_t)len, needle, nlen) != NULL;
}

static json_t *record_json(const char *topic, int32_t partition, const rn_record *rec,
                           enum rn_gw_format fmt)
{
    json_t *o = json_object();
    json_t *hdrs = json_array();
    if (!o || !hdrs)
        goto fail;
    const uint8_t *pos = rec->headers, *end = rec->headers + rec->headers_len;
    rn_record_header h;
    while (rn_record_header_next(&pos, end, &h) == 1) {
        json_t *ho = json_object();
        if (!ho)
            goto fail;
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
    return o;

fail:
    json_decref(hdrs);
    json_decref(o);
    return NULL;
}

/* ---- Text buffer --------------------------------------------------------------------------- */

void rn_strbuf_put(rn_strbuf *b, const void *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void rn_strbuf_puts(rn_strbuf *b, const char *s)
{
    rn_strbuf_put(b, s, strlen(s));
}

void rn_strbuf_printf(rn_strbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->failed = true;
        return;
    }
    rn_strbuf_put(b, tmp, (size_t)n);
}

void rn_strbuf_json_string(rn_strbuf *b, const char *s)
{
    json_t *j = json_string(s);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t) {
        b->failed = true;
        return;
    }
    rn_strbuf_puts(b, t);
    free(t);
}

void rn_strbuf_free(rn_strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- Render cache ------------------------------------------------------------------------------
 */

/* One record of a rendered batch: where its text, key and value are in the
 * entry's bytes (key/value kept raw for the substring filter). */
typedef struct crec {
    int64_t offset;
    size_t json_at, json_len;
    size_t key_at, value_at;
    int32_t key_len, value_len; /* -1: null */
} crec;

/* A rendered batch. */
typedef struct centry {
    char *topic;
    int32_t partition;
    int64_t base_offset, last_offset;
    uint32_t crc, size;
    int fmt;
    bool control;
    uint64_t used; /* LRU clock */
    size_t n_recs;
    crec *recs;
    rn_strbuf bytes;
} centry;

struct rn_json_cache {
    size_t max_entries, max_bytes, bytes;
    size_t n;
    centry *e;
    uint64_t clock, hits, misses;
};

int rn_json_cache_new(rn_json_cache **out, size_t max_entries, size_t max_bytes)
{
    rn_json_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->e = calloc(max_entries ? max_entries : 1, sizeof(*c->e));
    if (!c->e) {
        free(c);
        return -ENOMEM;
    }
    c->max_entries = max_entries ? max_entries : 1;
    c->max_bytes = max_bytes;
    *out = c;
    return 0;
}

static void centry_clear(centry *e)
{
    free(e->topic);
    free(e->recs);
    rn_strbuf_free(&e->bytes);
    memset(e, 0, sizeof(*e));
}

static size_t centry_bytes(const centry *e)
{
    return e->bytes.cap + e->n_recs * sizeof(crec);
}

void rn_json_cache_free(rn_json_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        centry_clear(&c->e[i]);
    free(c->e);
    free(c);
}

void rn_json_cache_stats(const rn_json_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c ? c->hits : 0;
    *misses = c ? c->misses : 0;
}

/* Render every record of one whole batch into e. */
static int centry_render(centry *e, const char *topic, int32_t partition, const uint8_t *batch,
                         size_t size, const rn_batch_header *h, enum rn_gw_format fmt)
{
    memset(e, 0, sizeof(*e));
    e->topic = strdup(topic);
    if (!e->topic)
        return -ENOMEM;
    e->partition = partition;
    e->base_offset = h->base_offset;
    e->last_offset = h->base_offset + h->last_offset_delta;
    e->crc = h->crc;
    e->size = (uint32_t)size;
    e->fmt = (int)fmt;
    e->control = (h->attributes & RN_BATCH_ATTR_CONTROL) != 0;
    if (e->control || h->records_count <= 0)
        return 0;
    rn_batch_iter it;
    int rc = rn_batch_iter_init(&it, batch, size, 0);
    if (rc < 0)
        return rc;
    e->recs = calloc((size_t)h->records_count, sizeof(*e->recs));
    if (!e->recs) {
        rn_batch_iter_fini(&it);
        return -ENOMEM;
    }
    rn_record rec;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 1 && e->n_recs < (size_t)h->records_count) {
        json_t *o = record_json(topic, partition, &rec, fmt);
        char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!txt) {
            rc = -ENOMEM;
            break;
        }
        crec *cr = &e->recs[e->n_recs++];
        cr->offset = rec.offset;
        cr->json_at = e->bytes.len;
        cr->json_len = strlen(txt);
        rn_strbuf_put(&e->bytes, txt, cr->json_len);
        free(txt);
        cr->key_len = rec.key ? rec.key_len : -1;
        cr->key_at = e->bytes.len;
        if (rec.key && rec.key_len > 0)
            rn_strbuf_put(&e->bytes, rec.key, (size_t)rec.key_len);
        cr->value_len = rec.value ? rec.value_len : -1;
        cr->value_at = e->bytes.len;
        if (rec.value && rec.value_len > 0)
            rn_strbuf_put(&e->bytes, rec.value, (size_t)rec.value_len);
        if (e->bytes.failed) {
            rc = -ENOMEM;
            break;
        }
    }
    rn_batch_iter_fini(&it);
    return rc < 0 ? rc : 0;
}

static int centry_emit(const centry *e, int64_t from, const char *filter, size_t filter_len,
                       int64_t *next, rn_json_emit_cb emit, void *arg)
{
    int n = 0;
    for (size_t i = 0; i < e->n_recs; i++) {
        const crec *cr = &e->recs[i];
        if (cr->offset < from)
            continue;
        *next = cr->offset + 1;
        if (filter_len) {
            const uint8_t *base = (const uint8_t *)e->bytes.p;
            if (!contains(cr->key_len >= 0 ? base + cr->key_at : NULL, cr->key_len, filter,
                          filter_len) &&
                !contains(cr->value_len >= 0 ? base + cr->value_at : NULL, cr->value_len, filter,
                          filter_len))
                continue;
        }
        rn_json_rec r = {
            .offset = cr->offset, .json = e->bytes.p + cr->json_at, .len = cr->json_len};
        int rc = emit(arg, &r);
        if (rc < 0)
            return rc;
        n++;
    }
    return n;
}

static centry *cache_find(rn_json_cache *c, const char *topic, int32_t partition,
                          const rn_batch_header *h, size_t size, enum rn_gw_format fmt)
{
    for (size_t i = 0; i < c->n; i++) {
        centry *e = &c->e[i];
        if (e->base_offset == h->base_offset && e->partition == partition && e->crc == h->crc &&
            e->size == size && e->fmt == (int)fmt && strcmp(e->topic, topic) == 0)
            return e;
    }
    return NULL;
}

/* A free slot, evicting the least recently used entries while the cache is
 * over its entry or byte bound. */
static centry *cache_slot(rn_json_cache *c, size_t need_bytes)
{
    while (c->n > 0 && (c->n >= c->max_entries || c->bytes + need_bytes > c->max_bytes)) {
        size_t lru = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->e[i].used < c->e[lru].used)
                lru = i;
        c->bytes -= centry_bytes(&c->e[lru]);
        centry_clear(&c->e[lru]);
        c->e[lru] = c->e[--c->n];
        memset(&c->e[c->n], 0, sizeof(c->e[c->n]));
    }
    return &c->e[c->n];
}

int rn_json_render_records(rn_json_cache *cache, const char *topic, int32_t partition,
                           const uint8_t *data, size_t len, int64_t from, const char *filter,
                           size_t filter_len, enum rn_gw_format fmt, int64_t *next,
                           rn_json_emit_cb emit, void *arg)
{
    int total = 0;
    *next = from;
    size_t pos = 0;
    while (pos < len) {
        rn_batch_header h;
        int rc = rn_batch_peek(data + pos, len - pos, 0, &h);
        if (rc < 0)
            return rc;
        size_t bsize = rn_batch_size(&h);
        if (bsize > len - pos)
            return -RN_E_BATCH_TRUNCATED;
        int64_t last = h.base_offset + h.last_offset_delta;
        if (last < from || (h.attributes & RN_BATCH_ATTR_CONTROL)) {
            /* Wholly before the wanted offset, or no user records: skip it
             * without decoding. */
            if (last + 1 > *next)
                *next = last + 1;
            pos += bsize;
            continue;
        }
        centry tmp, *e = cache ? cache_find(cache, topic, partition, &h, bsize, fmt) : NULL;
        if (e) {
            cache->hits++;
        } else {
            rc = centry_render(&tmp, topic, partition, data + pos, bsize, &h, fmt);
            if (rc < 0) {
                centry_clear(&tmp);
                if (rc == -ENOMEM)
                    return rc;
                /* A batch whose records do not decode (stored by an older
                 * runneld, which did not validate them on produce) would
                 * fail every fetch of the partition: pass over it, as a
                 * Kafka consumer does, and say so in the log. */
                rn_logfmt(RN_WARN, "skipped a batch that does not decode",
                          "topic=%s partition=%d base_offset=%" PRId64 " last_offset=%" PRId64
                          " err=%s",
                          topic, partition, h.base_offset, last, rn_errname(rc));
                if (last + 1 > *next)
                    *next = last + 1;
                pos += bsize;
                continue;
            }
            e = &tmp;
            if (cache) {
                cache->misses++;
                /* A batch bigger than the whole cache is rendered, not kept. */
                size_t nb = centry_bytes(&tmp);
                if (nb <= cache->max_bytes) {
                    e = cache_slot(cache, nb);
                    *e = tmp;
                    cache->n++;
                    cache->bytes += nb;
                }
            }
        }
        if (cache && e != &tmp)
            e->used = ++cache->clock;
        rc = centry_emit(e, from, filter, filter_len, next, emit, arg);
        if (e == &tmp)
            centry_clear(&tmp);
        if (rc < 0)
            return rc;
        total += rc;
        if (last + 1 > *next)
            *next = last + 1;
        pos += bsize;
    }
    return total;
}

/* ---- Errors ------------------------------------------------------------------------------- */

void rn_gw_error_map(int err, bool partition_known, int *status, int *code)
{
    int e = err < 0 ? -err : err;
    switch (e) {
    case RN_E_UNKNOWN_TOPIC:
        *status = 404;
        *code = partition_known ? 40402 : 40401;
        return;
    case RN_E_UNKNOWN_MEMBER:
    case RN_E_FENCED_MEMBER_EPOCH:
        *status = 404;
        *code = 40403;
        return;
    case RN_E_UNKNOWN_GROUP:
        *status = 404;
        *code = 40404;
        return;
    case RN_E_TOPIC_EXISTS:
        *status = 409;
        *code = 40901;
        return;
    case RN_E_GROUP_NOT_EMPTY:
        *status = 409;
        *code = 40902;
        return;
    case RN_E_MESSAGE_TOO_LARGE:
    case RN_E_REQUEST_TOO_LARGE:
        *status = 413;
        *code = 41301;
        return;
    case RN_E_INVALID_REQUEST:
    case RN_E_INVALID_TOPIC:
    case RN_E_INVALID_PARTITIONS:
    case RN_E_INVALID_CONFIG:
    case RN_E_NOT_ENOUGH_REPLICAS:
    case RN_E_OFFSET_OUT_OF_RANGE:
    case RN_E_UNSUPPORTED_VERSION:
    case EINVAL:
        *status = 422;
        *code = 42201;
        return;
    case RN_E_SHUTTING_DOWN:
    case RN_E_NOT_LEADER:
    case RN_E_TIMEOUT:
        *status = 503;
        *code = 50301;
        return;
    default:
        if (e >= RN_E_CORRUPT_BATCH && e <= RN_E_BATCH_TRAILING_BYTES) {
            *status = 422;
            *code = 42201;
            return;
        }
        *status = 500;
        *code = 50001;
        return;
    }
}

void rn_http_respond_json(rn_http_conn *c, int status, const char *content_type, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!s) {
        rn_http_respond_error(c, 500, 50001, "out of memory rendering JSON");
        return;
    }
    rn_http_respond(c, status, content_type ? content_type : "application/json", s, strlen(s),
                    NULL);
    free(s);
}

json_t *rn_json_parse(const uint8_t *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)body, len, 0, &je);
    if (!j)
        snprintf(err, errlen, "malformed JSON: %s (line %d, column %d)", je.text, je.line,
                 je.column);
    return j;
}
