/*
 * cli_output.c — how the runnel CLI prints a record: kcat format strings, JSON
 * lines, CSV.
 *
 * How it fits: `runnel consume` (records from a broker, as librunnel's
 * rn_message) and `runnel replay` (records straight from segment files, turned
 * into an rn_message) both print through here, so the same record prints the
 * same bytes either way — `replay --format ndjson` equals `consume -J`.
 *
 * Invariants:
 *   1. Values are never altered in the formats meant for bytes: %s and %k write
 *      the key and value exactly as stored (binary included).
 *   2. JSON and CSV output is always valid UTF-8: a key, value or header set
 *      that is not well-formed UTF-8 is written as base64 and flagged
 *      ("payload_encoding": "base64"), never lossily "repaired".
 *   3. Null is not empty: JSON has null, CSV an unquoted empty field (DuckDB and
 *      pandas read it as NULL) against "" for an empty value, %S/%K print -1.
 *
 * JSON line (kcat -J's fields; kcat's "headers" is a flat [name, value, …]):
 *   {"topic":"t","partition":0,"offset":5,"ts":1732412345678,
 *    "headers":["trace","abc"],"key":"k1","payload":"hello"}
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/base64.h"
#include "tools/cli_common.h"

/* ------------------------------------------------------------------------ */
/* UTF-8 and base64                                                          */
/* ------------------------------------------------------------------------ */

bool cli_utf8_valid(const void *buf, size_t len)
{
    const uint8_t *p = buf, *end = p + len;
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(end - p) < n)
            return false;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n;
    }
    return true;
}

static void put_base64(FILE *f, const uint8_t *p, size_t len)
{
    /* In chunks of whole 3-byte groups, so the padding only comes at the end. */
    char enc[4 * 256 + 1];
    for (size_t i = 0; i < len; i += 3 * 256) {
        size_t k = len - i < 3 * 256 ? len - i : 3 * 256;
        rn_base64_encode(p + i, k, enc);
        fwrite(enc, 1, rn_base64_len(k), f);
    }
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

/* A JSON string of valid UTF-8 bytes (the caller checked). */
static void put_json_utf8(FILE *f, const uint8_t *p, size_t len)
{
    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                putc(c, f);
        }
    }
    putc('"', f);
}

/* A JSON value for bytes: null, a string, or a base64 string when b64. */
static void put_json_bytes(FILE *f, const void *p, size_t len, bool b64)
{
    if (!p) {
        fputs("null", f);
    } else if (b64) {
        putc('"', f);
        put_base64(f, p, len);
        putc('"', f);
    } else {
        put_json_utf8(f, p, len);
    }
}

static bool headers_utf8(const rn_message *m)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        const rn_header *h = &m->headers[i];
        if (!cli_utf8_valid(h->name, h->name_len) ||
            (h->value && !cli_utf8_valid(h->value, h->value_len)))
            return false;
    }
    return true;
}

/* kcat's flat headers array; every name and value base64 when b64. */
static void put_json_headers(FILE *f, const rn_message *m, bool b64)
{
    putc('[', f);
    for (size_t i = 0; i < m->n_headers; i++) {
        const rn_header *h = &m->headers[i];
        if (i)
            putc(',', f);
        put_json_bytes(f, h->name ? h->name : "", h->name_len, b64);
        putc(',', f);
        put_json_bytes(f, h->value, h->value_len, b64);
    }
    putc(']', f);
}

int cli_write_json(FILE *f, const rn_message *m)
{
    bool key_b64 = m->key && !cli_utf8_valid(m->key, m->key_len);
    bool val_b64 = m->value && !cli_utf8_valid(m->value, m->value_len);
    bool hdr_b64 = !headers_utf8(m);

    fputs("{\"topic\":", f);
    put_json_utf8(f, (const uint8_t *)m->topic, strlen(m->topic));
    fprintf(f, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"ts\":%" PRId64 ",\"headers\":",
            m->partition, m->offset, m->timestamp);
    put_json_headers(f, m, hdr_b64);
    if (hdr_b64)
        fputs(",\"headers_encoding\":\"base64\"", f);
    fputs(",\"key\":", f);
    put_json_bytes(f, m->key, m->key_len, key_b64);
    if (key_b64)
        fputs(",\"key_encoding\":\"base64\"", f);
    fputs(",\"payload\":", f);
    put_json_bytes(f, m->value, m->value_len, val_b64);
    if (val_b64)
        fputs(",\"payload_encoding\":\"base64\"", f);
    fputs("}\n", f);
    return ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                       */
/* ------------------------------------------------------------------------ */

int cli_write_csv_header(FILE *f)
{
    fputs("topic,partition,offset,timestamp,key,value,headers,encoding\n", f);
    return ferror(f) ? -EIO : 0;
}

/* One field: quoted when it holds a comma, quote or line break, or is empty
 * (so "" stays distinguishable from a null). */
static void put_csv_field(FILE *f, const void *p, size_t len, bool b64)
{
    if (!p)
        return;
    if (b64) {
        put_base64(f, p, len);
        return;
    }
    const char *s = p;
    bool quote = len == 0 || memchr(s, ',', len) || memchr(s, '"', len) || memchr(s, '\n', len) ||
                 memchr(s, '\r', len);
    if (!quote) {
        fwrite(s, 1, len, f);
        return;
    }
    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            putc('"', f);
        putc(s[i], f);
    }
    putc('"', f);
}

int cli_write_csv(FILE *f, const rn_message *m)
{
    bool b64 = (m->key && !cli_utf8_valid(m->key, m->key_len)) ||
               (m->value && !cli_utf8_valid(m->value, m->value_len));
    put_csv_field(f, m->topic, strlen(m->topic), false);
    fprintf(f, ",%" PRId32 ",%" PRId64 ",%" PRId64 ",", m->partition, m->offset, m->timestamp);
    put_csv_field(f, m->key, m->key_len, b64);
    putc(',', f);
    put_csv_field(f, m->value, m->value_len, b64);
    putc(',', f);
    if (m->n_headers) {
        /* The headers as the JSON array, built in memory to be CSV-quoted. */
        char *buf = NULL;
        size_t len = 0;
        FILE *mf = open_memstream(&buf, &len);
        if (!mf)
            return -ENOMEM;
        bool hb = !headers_utf8(m);
        put_json_headers(mf, m, hb);
        if (fclose(mf) != 0) {
            free(buf);
            return -ENOMEM;
        }
        put_csv_field(f, buf, len, false);
        free(buf);
    }
    fputs(b64 ? ",base64\n" : ",utf8\n", f);
    return ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------------------ */
/* kcat format strings                                                       */
/* ------------------------------------------------------------------------ */

enum tok { T_LIT, T_VALUE, T_VALUE_LEN, T_KEY, T_KEY_LEN, T_TOPIC, T_PART, T_OFFSET, T_TS, T_HDRS };

struct cli_format {
    size_t n;
    struct piece {
        enum tok tok;
        char *lit; /* T_LIT: owned bytes */
        size_t lit_len;
    } * pieces;
};

void cli_format_free(cli_format *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->pieces[i].lit);
    free(f->pieces);
    free(f);
}

static int add_piece(cli_format *f, enum tok tok, const char *lit, size_t lit_len)
{
    /* Adjacent literals merge: fewer fwrite calls per record. */
    if (tok == T_LIT && f->n && f->pieces[f->n - 1].tok == T_LIT) {
        struct piece *p = &f->pieces[f->n - 1];
        char *l = realloc(p->lit, p->lit_len + lit_len + 1);
        if (!l)
            return -ENOMEM;
        memcpy(l + p->lit_len, lit, lit_len);
        p->lit = l;
        p->lit_len += lit_len;
        return 0;
    }
    struct piece *np = realloc(f->pieces, (f->n + 1) * sizeof(*np));
    if (!np)
        return -ENOMEM;
    f->pieces = np;
    struct piece *p = &np[f->n];
    p->tok = tok;
    p->lit = NULL;
    p->lit_len = 0;
    if (tok == T_LIT) {
        p->lit = malloc(lit_len + 1);
        if (!p->lit)
            return -ENOMEM;
        memcpy(p->lit, lit, lit_len);
        p->lit_len = lit_len;
    }
    f->n++;
    return 0;
}

int cli_format_compile(const char *spec, cli_format **out, char *err, size_t errlen)
{
    char *s;
    size_t len;
    int rc = cli_unescape(spec, &s, &len);
    if (rc < 0) {
        snprintf(err, errlen, "bad \\x escape in format");
        return rc;
    }
    cli_format *f = calloc(1, sizeof(*f));
    if (!f) {
        free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < len && rc == 0; i++) {
        if (s[i] != '%') {
            rc = add_piece(f, T_LIT, s + i, 1);
            continue;
        }
        if (i + 1 == len) {
            snprintf(err, errlen, "format ends with a lone %%");
            rc = -EINVAL;
            break;
        }
        char c = s[++i];
        enum tok t;
        switch (c) {
        case 's':
            t = T_VALUE;
            break;
        case 'S':
            t = T_VALUE_LEN;
            break;
        case 'k':
            t = T_KEY;
            break;
        case 'K':
            t = T_KEY_LEN;
            break;
        case 't':
            t = T_TOPIC;
            break;
        case 'p':
            t = T_PART;
            break;
        case 'o':
            t = T_OFFSET;
            break;
        case 'T':
            t = T_TS;
            break;
        case 'h':
            t = T_HDRS;
            break;
        case '%':
            t = T_LIT;
            break;
        default:
            snprintf(err, errlen,
                     "unknown format token %%%c (known: %%s %%S %%k %%K %%t %%p %%o %%T %%h %%%%)",
                     c);
            rc = -EINVAL;
            continue;
        }
        rc = add_piece(f, t, "%", 1);
    }
    free(s);
    if (rc < 0) {
        cli_format_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int cli_format_default(const char *key_delim, size_t key_delim_len, const char *msg_delim,
                       size_t msg_delim_len, cli_format **out)
{
    cli_format *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    int rc = 0;
    if (key_delim) {
        rc = add_piece(f, T_KEY, NULL, 0);
        if (rc == 0 && key_delim_len)
            rc = add_piece(f, T_LIT, key_delim, key_delim_len);
    }
    if (rc == 0)
        rc = add_piece(f, T_VALUE, NULL, 0);
    if (rc == 0 && msg_delim_len)
        rc = add_piece(f, T_LIT, msg_delim, msg_delim_len);
    if (rc < 0) {
        cli_format_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int cli_format_write(FILE *out, const cli_format *f, const rn_message *m)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct piece *p = &f->pieces[i];
        switch (p->tok) {
        case T_LIT:
            fwrite(p->lit, 1, p->lit_len, out);
            break;
        case T_VALUE:
            if (m->value)
                fwrite(m->value, 1, m->value_len, out);
            break;
        case T_VALUE_LEN:
            fprintf(out, "%zd", m->value ? (ssize_t)m->value_len : -1);
            break;
        case T_KEY:
            if (m->key)
                fwrite(m->key, 1, m->key_len, out);
            break;
        case T_KEY_LEN:
            fprintf(out, "%zd", m->key ? (ssize_t)m->key_len : -1);
            break;
        case T_TOPIC:
            fputs(m->topic, out);
            break;
        case T_PART:
            fprintf(out, "%" PRId32, m->partition);
            break;
        case T_OFFSET:
            fprintf(out, "%" PRId64, m->offset);
            break;
        case T_TS:
            fprintf(out, "%" PRId64, m->timestamp);
            break;
        case T_HDRS:
            /* kcat's %h: name=value pairs joined by commas; a null value has no '='. */
            for (size_t h = 0; h < m->n_headers; h++) {
                const rn_header *hd = &m->headers[h];
                if (h)
                    putc(',', out);
                if (hd->name_len)
                    fwrite(hd->name, 1, hd->name_len, out);
                if (hd->value) {
                    putc('=', out);
                    fwrite(hd->value, 1, hd->value_len, out);
                }
            }
            break;
        }
    }
    return ferror(out) ? -EIO : 0;
}
