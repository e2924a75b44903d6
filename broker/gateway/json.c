/*
 * json.c — JSON for the gateways: records to JSON and back (bytes as base64
 * through protocol/base64.h), REST Proxy error codes (see json.h for the two
 * renderings).
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
#include "protocol/base64.h"
#include "protocol/batch.h"
#include "protocol/errors.h"

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

/* Worth a parse as JSON? A cheap first-byte test (most text is not JSON),
 * and only up to RN_GW_MAX_EMBED_JSON: a parsed tree costs many times its
 * text, so larger values go as text. */
static bool looks_like_json(const uint8_t *p, size_t len)
{
    if (len > RN_GW_MAX_EMBED_JSON)
        return false;
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r'))
        i++;
    if (i == len)
        return false;
    uint8_t ch = p[i];
    return ch == '{' || ch == '[' || ch == '"' || ch == '-' || (ch >= '0' && ch <= '9') ||
           ch == 't' || ch == 'f' || ch == 'n';
}

bool rn_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

json_t *rn_json_of_bytes(const uint8_t *p, int32_t len, enum rn_gw_format fmt)
{
    if (len < 0 || !p)
        return json_null();
    if (fmt == RN_GW_FMT_JSON) {
        if (looks_like_json(p, (size_t)len)) {
            json_t *j = json_loadb((const char *)p, (size_t)len, JSON_DECODE_ANY, NULL);
            if (j)
                return j;
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

int rn_json_emit_to_array(void *arg, const rn_json_rec *rec)
{
    rn_strbuf *out = arg;
    if (out->len > 1)
        rn_strbuf_put(out, ",", 1);
    rn_strbuf_put(out, rec->json, rec->len);
    return 0;
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

/* A rendered batch: every record of it (only whole batches are kept). */
typedef struct centry {
    char *topic;
    int32_t partition;
    int64_t base_offset, last_offset;
    uint32_t crc, size;
    int fmt;
    uint64_t used; /* LRU clock */
    size_t n_recs, cap_recs;
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
    return e->bytes.cap + e->cap_recs * sizeof(crec);
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

static void cache_put(rn_json_cache *c, centry *tmp)
{
    size_t nb = centry_bytes(tmp);
    if (nb > c->max_bytes) {
        centry_clear(tmp); /* a batch bigger than the whole cache is rendered, not kept */
        return;
    }
    centry *e = cache_slot(c, nb);
    *e = *tmp;
    e->used = ++c->clock;
    c->n++;
    c->bytes += nb;
    memset(tmp, 0, sizeof(*tmp));
}

/* ---- Rendering under a budget -------------------------------------------------------------------
 *
 * Records are decoded one at a time (rn_batch_stream: a zstd batch is
 * decompressed as it is read, never whole) and each is rendered to text
 * bounded by RN_GW_MAX_RECORD_JSON, so what one answer costs is its budget
 * plus one record, whatever records_count or the compression ratio says. */

/* A JSON text writer that refuses to grow past lim (RN_GW_MAX_RECORD_JSON):
 * records are written as text directly, with no tree of JSON objects per
 * record, in exactly the form jansson's compact dump gives (tested against
 * it), so a record costs a pass over its bytes. */
typedef struct jw {
    rn_strbuf *b;
    size_t lim;
    bool over;
} jw;

static void jw_put(jw *w, const void *s, size_t n)
{
    if (w->over || w->b->failed)
        return;
    if (w->b->len + n > w->lim) {
        w->over = true;
        return;
    }
    rn_strbuf_put(w->b, s, n);
}

static int jw_dump_cb(const char *buf, size_t size, void *data)
{
    jw *w = data;
    jw_put(w, buf, size);
    return w->over || w->b->failed ? -1 : 0;
}

/* s as a JSON string literal, escaped as jansson escapes (no ASCII-only,
 * no slash escape). */
static void jw_string(jw *w, const uint8_t *s, size_t n)
{
    jw_put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n && !w->over; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jw_put(w, s + run, i - run);
        char e[8];
        switch (c) {
        case '"':
            jw_put(w, "\\\"", 2);
            break;
        case '\\':
            jw_put(w, "\\\\", 2);
            break;
        case '\b':
            jw_put(w, "\\b", 2);
            break;
        case '\f':
            jw_put(w, "\\f", 2);
            break;
        case '\n':
            jw_put(w, "\\n", 2);
            break;
        case '\r':
            jw_put(w, "\\r", 2);
            break;
        case '\t':
            jw_put(w, "\\t", 2);
            break;
        default:
            snprintf(e, sizeof(e), "\\u%04X", c);
            jw_put(w, e, 6);
            break;
        }
        run = i + 1;
    }
    jw_put(w, s + run, n - run);
    jw_put(w, "\"", 1);
}

static void jw_base64(jw *w, const uint8_t *p, size_t n)
{
    char enc[4097];
    jw_put(w, "\"", 1);
    for (size_t i = 0; i < n && !w->over; i += 3072) {
        size_t k = n - i < 3072 ? n - i : 3072;
        rn_base64_encode(p + i, k, enc);
        jw_put(w, enc, rn_base64_len(k));
    }
    jw_put(w, "\"", 1);
}

/* A key, value or header value, as rn_json_of_bytes renders it. */
static void jw_bytes(jw *w, const uint8_t *p, int32_t len, enum rn_gw_format fmt)
{
    if (len < 0 || !p) {
        jw_put(w, "null", 4);
        return;
    }
    if (fmt == RN_GW_FMT_JSON) {
        if (looks_like_json(p, (size_t)len)) {
            json_t *j = json_loadb((const char *)p, (size_t)len, JSON_DECODE_ANY, NULL);
            if (j) {
                json_dump_callback(j, jw_dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY);
                json_decref(j);
                return;
            }
        }
        if (rn_utf8_valid(p, (size_t)len)) {
            jw_string(w, p, (size_t)len);
            return;
        }
    }
    jw_base64(w, p, (size_t)len);
}

/* Render rec into out (replacing its content) after prefix, the record's
 * text up to its offset ({"topic":…,"partition":…,"offset":). Errors:
 * -ENOMEM, -RN_E_MESSAGE_TOO_LARGE (more than RN_GW_MAX_RECORD_JSON). */
static int record_text(const rn_strbuf *prefix, const rn_record *rec, enum rn_gw_format fmt,
                       rn_strbuf *out)
{
    out->len = 0;
    out->failed = false;
    jw w = {.b = out, .lim = RN_GW_MAX_RECORD_JSON};
    char num[96];
    int n = snprintf(num, sizeof(num),
                     "%" PRId64 ",\"timestamp\":%" PRId64 ",\"key\":", rec->offset, rec->timestamp);
    jw_put(&w, prefix->p, prefix->len);
    jw_put(&w, num, (size_t)n);
    jw_bytes(&w, rec->key, rec->key_len, fmt);
    jw_put(&w, ",\"value\":", 9);
    jw_bytes(&w, rec->value, rec->value_len, fmt);
    jw_put(&w, ",\"headers\":[", 12);
    const uint8_t *pos = rec->headers, *end = rec->headers + rec->headers_len;
    rn_record_header h;
    for (int i = 0; rn_record_header_next(&pos, end, &h) == 1 && !w.over; i++) {
        jw_put(&w, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        /* A header name is text when it can be, else base64. */
        if (rn_utf8_valid(h.name, (size_t)h.name_len))
            jw_string(&w, h.name, (size_t)h.name_len);
        else
            jw_base64(&w, h.name, (size_t)h.name_len);
        jw_put(&w, ",\"value\":", 9);
        jw_bytes(&w, h.value, h.value_len, fmt);
        jw_put(&w, "}", 1);
    }
    jw_put(&w, "]}", 2);
    if (w.over)
        return -RN_E_MESSAGE_TOO_LARGE;
    return out->failed ? -ENOMEM : 0;
}

/* Append one rendered record to a cache entry being built. */
static int centry_add(centry *e, const rn_record *rec, const rn_strbuf *txt)
{
    if (e->n_recs == e->cap_recs) {
        size_t cap = e->cap_recs ? e->cap_recs * 2 : 16;
        crec *nr = realloc(e->recs, cap * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        e->recs = nr;
        e->cap_recs = cap;
    }
    crec *cr = &e->recs[e->n_recs++];
    cr->offset = rec->offset;
    cr->json_at = e->bytes.len;
    cr->json_len = txt->len;
    rn_strbuf_put(&e->bytes, txt->p, txt->len);
    cr->key_len = rec->key ? rec->key_len : -1;
    cr->key_at = e->bytes.len;
    if (rec->key && rec->key_len > 0)
        rn_strbuf_put(&e->bytes, rec->key, (size_t)rec->key_len);
    cr->value_len = rec->value ? rec->value_len : -1;
    cr->value_at = e->bytes.len;
    if (rec->value && rec->value_len > 0)
        rn_strbuf_put(&e->bytes, rec->value, (size_t)rec->value_len);
    return e->bytes.failed ? -ENOMEM : 0;
}

static bool matches(const uint8_t *key, int32_t key_len, const uint8_t *value, int32_t value_len,
                    const char *filter, size_t filter_len)
{
    return !filter_len || contains(key, key_len, filter, filter_len) ||
           contains(value, value_len, filter, filter_len);
}

/* Hand one rendered record to the caller if the budget lets it through.
 * Returns 1 emitted, 0 held back (budget full), or the callback's error. */
static int budget_emit(rn_json_budget *bud, int64_t offset, const char *txt, size_t len,
                       int64_t *next, rn_json_emit_cb emit, void *arg)
{
    /* The first record of an answer always goes (it is within the hard cap):
     * a record larger than max_bytes must not stall the reader forever. */
    if (bud->n > 0 && bud->used + len + bud->overhead > bud->max_bytes) {
        bud->full = true;
        *next = offset;
        return 0;
    }
    rn_json_rec r = {.offset = offset, .json = txt, .len = len};
    int rc = emit(arg, &r);
    if (rc < 0) {
        bud->emit_rc = rc;
        return rc;
    }
    bud->used += len + bud->overhead;
    bud->n++;
    *next = offset + 1;
    return 1;
}

typedef struct render_ctx {
    rn_json_cache *cache;
    const char *topic;
    int32_t partition;
    int64_t from;
    const char *filter;
    size_t filter_len;
    enum rn_gw_format fmt;
    int64_t *next;
    rn_json_emit_cb emit;
    void *arg;
    rn_json_budget *bud;
    rn_strbuf prefix; /* {"topic":…,"partition":…,"offset": */
    rn_strbuf txt;    /* the record being rendered */
} render_ctx;

static int emit_cached(render_ctx *x, const centry *e)
{
    int n = 0;
    for (size_t i = 0; i < e->n_recs && !x->bud->full; i++) {
        const crec *cr = &e->recs[i];
        if (cr->offset < x->from)
            continue;
        const uint8_t *base = (const uint8_t *)e->bytes.p;
        if (!matches(cr->key_len >= 0 ? base + cr->key_at : NULL, cr->key_len,
                     cr->value_len >= 0 ? base + cr->value_at : NULL, cr->value_len, x->filter,
                     x->filter_len)) {
            *x->next = cr->offset + 1;
            continue;
        }
        int rc = budget_emit(x->bud, cr->offset, e->bytes.p + cr->json_at, cr->json_len, x->next,
                             x->emit, x->arg);
        if (rc < 0)
            return rc;
        n += rc;
    }
    return n;
}

/* Stream one batch: decode from x->from on, render, emit under the budget;
 * keep the rendering in the cache when the whole batch was rendered. */
static int render_batch(render_ctx *x, const uint8_t *batch, size_t size, const rn_batch_header *h)
{
    rn_batch_stream s;
    int rc = rn_batch_stream_init(&s, batch, size, RN_GW_MAX_UNCOMPRESSED, RN_GW_MAX_RECORD_JSON);
    if (rc < 0)
        return rc;
    /* Only a batch read from its start can be kept whole. */
    bool caching = x->cache && x->from <= h->base_offset;
    centry tmp = {0};
    if (caching) {
        tmp.topic = strdup(x->topic);
        if (!tmp.topic)
            caching = false;
        tmp.partition = x->partition;
        tmp.base_offset = h->base_offset;
        tmp.last_offset = h->base_offset + h->last_offset_delta;
        tmp.crc = h->crc;
        tmp.size = (uint32_t)size;
        tmp.fmt = (int)x->fmt;
    }
    int n = 0;
    size_t scanned0 = x->bud->scanned;
    rn_record rec;
    while (!x->bud->full) {
        if (x->bud->max_scan && x->bud->scanned > x->bud->max_scan) {
            x->bud->full = true; /* looked at enough (a filter that matches little) */
            caching = false;
            break;
        }
        rc = rn_batch_stream_next(&s, x->from, &rec);
        x->bud->scanned = scanned0 + rn_batch_stream_consumed(&s);
        if (rc == 0)
            break;
        if (rc < 0) {
            if (rc == -RN_E_MESSAGE_TOO_LARGE)
                *x->next = rec.offset; /* names the record for the caller */
            goto out;
        }
        bool want =
            matches(rec.key, rec.key_len, rec.value, rec.value_len, x->filter, x->filter_len);
        if (!want && !caching) {
            *x->next = rec.offset + 1;
            continue;
        }
        rc = record_text(&x->prefix, &rec, x->fmt, &x->txt);
        if (rc < 0) {
            if (rc == -RN_E_MESSAGE_TOO_LARGE)
                *x->next = rec.offset;
            goto out;
        }
        if (caching) {
            if (centry_add(&tmp, &rec, &x->txt) < 0 || centry_bytes(&tmp) > x->cache->max_bytes) {
                caching = false;
                centry_clear(&tmp);
            }
        }
        if (!want) {
            *x->next = rec.offset + 1;
            continue;
        }
        rc = budget_emit(x->bud, rec.offset, x->txt.p, x->txt.len, x->next, x->emit, x->arg);
        if (rc < 0)
            goto out;
        if (rc == 0)
            caching = false; /* held back: the rendering stops short of the end */
        n += rc;
    }
    rc = n;
    if (x->cache)
        x->cache->misses++;
    if (caching && !x->bud->full)
        cache_put(x->cache, &tmp);
out:
    centry_clear(&tmp);
    rn_batch_stream_fini(&s);
    return rc;
}

/* Errors of a batch's records, as opposed to the bytes not being whole
 * batches, memory, a record over the hard cap, or the caller's stop. */
static bool skippable(int rc)
{
    return rc != -ENOMEM && rc != -RN_E_MESSAGE_TOO_LARGE && rc != -RN_E_BATCH_TRUNCATED;
}

int rn_json_render_records(rn_json_cache *cache, const char *topic, int32_t partition,
                           const uint8_t *data, size_t len, int64_t from, const char *filter,
                           size_t filter_len, enum rn_gw_format fmt, rn_json_budget *bud,
                           int64_t *next, rn_json_emit_cb emit, void *arg)
{
    render_ctx x = {.cache = cache,
                    .topic = topic,
                    .partition = partition,
                    .from = from,
                    .filter = filter,
                    .filter_len = filter_len,
                    .fmt = fmt,
                    .next = next,
                    .emit = emit,
                    .arg = arg,
                    .bud = bud};
    int rc = 0;
    size_t n0 = bud->n;
    *next = from;
    rn_strbuf_puts(&x.prefix, "{\"topic\":");
    jw pw = {.b = &x.prefix, .lim = SIZE_MAX};
    jw_string(&pw, (const uint8_t *)topic, strlen(topic));
    rn_strbuf_printf(&x.prefix, ",\"partition\":%d,\"offset\":", partition);
    if (x.prefix.failed) {
        rn_strbuf_free(&x.prefix);
        return -ENOMEM;
    }
    size_t pos = 0;
    while (pos < len && !bud->full) {
        rn_batch_header h;
        rc = rn_batch_peek(data + pos, len - pos, 0, &h);
        if (rc < 0)
            break;
        size_t bsize = rn_batch_size(&h);
        if (bsize > len - pos) {
            rc = -RN_E_BATCH_TRUNCATED;
            break;
        }
        int64_t last = h.base_offset + h.last_offset_delta;
        if (last >= from && !(h.attributes & RN_BATCH_ATTR_CONTROL)) {
            centry *e = cache ? cache_find(cache, topic, partition, &h, bsize, fmt) : NULL;
            if (e) {
                cache->hits++;
                e->used = ++cache->clock;
                rc = emit_cached(&x, e);
            } else {
                rc = render_batch(&x, data + pos, bsize, &h);
            }
            if (rc < 0 && skippable(rc) && bud->emit_rc == 0) {
                /* A batch whose records do not decode (stored by an older
                 * runneld, which did not validate them on produce) would
                 * fail every fetch of the partition: pass over it, as a
                 * Kafka consumer does, and say so in the log. */
                rn_logfmt(RN_WARN, "skipped a batch that does not decode",
                          "topic=%s partition=%d base_offset=%" PRId64 " last_offset=%" PRId64
                          " err=%s",
                          topic, partition, h.base_offset, last, rn_errname(rc));
                rc = 0;
            }
            if (rc < 0 || bud->full)
                break;
        }
        /* Wholly before the wanted offset, a control batch, or done: go on
         * after it. */
        if (last + 1 > *next)
            *next = last + 1;
        pos += bsize;
    }
    rn_strbuf_free(&x.txt);
    rn_strbuf_free(&x.prefix);
    if (bud->emit_rc < 0)
        return bud->emit_rc; /* the caller's own stop */
    if (rc < 0 && bud->n > 0) {
        /* Records before a bad or oversized one are good: hand them over and
         * stop; the next answer, starting at the bad one, reports it. */
        bud->full = true;
        rc = 0;
    }
    return rc < 0 ? rc : (int)(bud->n - n0);
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
    /* A partition's leader out of reach (forward.h): worth retrying. */
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case EPIPE:
    case ECANCELED:
    case EBUSY:
    case ESHUTDOWN:
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
    size_t ws = 0;
    while (ws < len &&
           (body[ws] == ' ' || body[ws] == '\t' || body[ws] == '\r' || body[ws] == '\n'))
        ws++;
    if (ws == len) {
        snprintf(err, errlen, "request body is empty; expected a JSON object");
        return NULL;
    }
    /* jansson reports a NUL byte as the end of input and an escaped one in
     * terms of its own flags; say what is wrong in the user's terms. */
    const uint8_t *nul = memchr(body, 0, len);
    if (nul) {
        snprintf(err, errlen, "request body is not valid JSON: NUL byte at position %zu",
                 (size_t)(nul - body));
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)body, len, 0, &je);
    if (j)
        return j;
    if (strstr(je.text, "JSON_ALLOW_NUL"))
        snprintf(err, errlen,
                 "request body is not valid JSON: a string holds \\u0000 (NUL), which is not "
                 "accepted, at position %d",
                 je.position);
    else
        snprintf(err, errlen, "request body is not valid JSON: %s (line %d, column %d)", je.text,
                 je.line, je.column);
    return NULL;
}

/* ---- Bounded integers ------------------------------------------------------------------------ */

/* What a JSON value is, for a message. */
static void describe_json(json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, len, "%.17g", json_real_value(v));
        break;
    case JSON_STRING:
        snprintf(buf, len, "a string");
        break;
    case JSON_TRUE:
        snprintf(buf, len, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, len, "false");
        break;
    case JSON_NULL:
        snprintf(buf, len, "null");
        break;
    case JSON_OBJECT:
        snprintf(buf, len, "an object");
        break;
    default:
        snprintf(buf, len, "an array");
        break;
    }
}

int rn_json_get_int(json_t *v, const char *what, int64_t min, int64_t max, int64_t *out, char *err,
                    size_t errlen)
{
    if (v && json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
        *out = json_integer_value(v);
        return 0;
    }
    char got[48] = "nothing";
    if (v)
        describe_json(v, got, sizeof(got));
    snprintf(err, errlen, "%s must be an integer in [%" PRId64 ", %" PRId64 "], got %s", what, min,
             max, got);
    return -EINVAL;
}

int rn_text_get_int(const char *s, const char *what, int64_t min, int64_t max, int64_t *out,
                    char *err, size_t errlen)
{
    const char *p = s ? s : "";
    bool neg = *p == '-';
    if (neg)
        p++;
    /* Digits only: no sign but one '-', no space, no fraction, no hex; the
     * magnitude is checked as it grows, so nothing wraps. */
    uint64_t v = 0;
    bool ok = *p != 0;
    for (; *p && ok; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            ok = false;
        else
            v = v * 10 + (uint64_t)(*p - '0');
    }
    int64_t x = 0;
    if (ok && !neg && v <= (uint64_t)INT64_MAX)
        x = (int64_t)v;
    else if (ok && neg && v <= (uint64_t)INT64_MAX + 1)
        x = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        ok = false;
    if (ok && x >= min && x <= max) {
        *out = x;
        return 0;
    }
    snprintf(err, errlen, "%s must be an integer in [%" PRId64 ", %" PRId64 "], got '%.32s%s'",
             what, min, max, s ? s : "", s && strlen(s) > 32 ? "…" : "");
    return -EINVAL;
}
