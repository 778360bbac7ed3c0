/*
 * oip decode scan: the JSON scanner of the request decoder — strings (validated, unescaped into
 * the arena), literals, objects and arrays with depth checks, the iterative skipper for
 * free-form values, and the labels of error messages. See decode_internal.h and decode.c.
 */
#include "decode_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- scanner primitives -------------------------------------------------------------------- */

int dec__json_fail(oip_dec *d, const char *what)
{
    return oip_errorf(d->err, OIP_BAD_REQUEST, "invalid JSON at byte %zu: %s",
                      (size_t)(d->p - d->begin), what);
}

int dec__depth_fail(oip_dec *d)
{
    return oip_errorf(d->err, OIP_BAD_REQUEST, "JSON nesting deeper than %u levels", d->max_depth);
}

int dec__oom(oip_dec *d)
{
    return oip_errorf(d->err, OIP_INTERNAL, "out of memory while decoding the request");
}

bool dec__literal(oip_dec *d, const char *lit, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
        return false;
    d->p += n;
    return true;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        uint32_t x = c >= '0' && c <= '9'   ? (uint32_t)(c - '0')
                     : c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10)
                                            : 16;
        if (x == 16)
            return -1;
        v = v << 4 | x;
    }
    *out = v;
    return 0;
}

/* \uXXXX at p (end - p >= 6 checked by the caller): its length, 6 or 12 with a surrogate pair,
 * or 0 when invalid. */
static size_t unicode_escape_len(const char *p, const char *end, uint32_t *cp)
{
    uint32_t hi, lo;
    if (hex4(p + 2, &hi) != 0 || (hi >= 0xdc00 && hi <= 0xdfff))
        return 0;
    if (hi < 0xd800 || hi > 0xdbff) {
        *cp = hi;
        return 6;
    }
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) != 0 || lo < 0xdc00 ||
        lo > 0xdfff)
        return 0;
    *cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
    return 12;
}

/* Validate the escape at p; its length or 0. */
static size_t escape_len(const char *p, const char *end)
{
    uint32_t cp;
    if (end - p < 2)
        return 0;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't': return 2;
    case 'u': return end - p < 6 ? 0 : unicode_escape_len(p, end, &cp);
    default: return 0;
    }
}

/* A string at d->p (at '"'); validates it and leaves d->p after the closing quote. */
int dec__str_scan(oip_dec *d, oip_str *s)
{
    const char *p = d->p + 1, *end = d->end;
    s->p = p;
    s->esc = false;
    for (;;) {
        while (p < end && str_plain((unsigned char)*p))
            p++;
        if (p == end) {
            d->p = end;
            return dec__json_fail(d, "unterminated string");
        }
        if (*p == '"')
            break;
        if (*p != '\\') {
            d->p = p;
            return dec__json_fail(d, "control character in string");
        }
        size_t n = escape_len(p, end);
        if (n == 0) {
            d->p = p;
            return dec__json_fail(d, "invalid escape in string");
        }
        s->esc = true;
        p += n;
    }
    s->n = (size_t)(p - s->p);
    if (!oip_utf8_valid((const unsigned char *)s->p, s->n)) {
        d->p = s->p;
        return dec__json_fail(d, "string is not valid UTF-8");
    }
    d->p = p + 1;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decode a validated string into dst (room for s->n bytes: decoding never grows it). */
size_t dec__str_unescape(const oip_str *s, char *dst)
{
    const char *p = s->p, *end = s->p + s->n;
    char *o = dst;
    while (p < end) {
        const char *q = s->esc ? memchr(p, '\\', (size_t)(end - p)) : NULL;
        size_t run = (size_t)((q ? q : end) - p);
        memcpy(o, p, run);
        o += run;
        p += run;
        if (p == end)
            break;
        static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
        const char *m = strchr(simple, p[1]);
        if (p[1] != 'u' && m != NULL) {
            *o++ = m[1];
            p += 2;
            continue;
        }
        uint32_t cp = 0;
        p += unicode_escape_len(p, end, &cp);
        o += put_utf8(o, cp);
    }
    return (size_t)(o - dst);
}

/* A NUL-terminated arena copy of a string (names, ids); embedded NULs are refused because the
 * plugin sees C strings. */
static int str_dup(oip_dec *d, const oip_str *s, const char **out, const char *what)
{
    char *c = oip_arena_alloc(d->a, s->n + 1);
    if (c == NULL)
        return dec__oom(d);
    size_t n = dec__str_unescape(s, c);
    c[n] = '\0';
    if (memchr(c, '\0', n) != NULL)
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s contains a NUL character", what);
    *out = c;
    return 0;
}

/* A string value at d->p (after ws) copied as a C string. */
int dec__string_value(oip_dec *d, const char **out, const char *what)
{
    oip_str s;
    if (peek(d) != '"')
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be a string", what);
    int rc = dec__str_scan(d, &s);
    return rc ? rc : str_dup(d, &s, out, what);
}

int dec__bool_value(oip_dec *d, bool *out, const char *what)
{
    if (dec__literal(d, "true", 4))
        *out = true;
    else if (dec__literal(d, "false", 5))
        *out = false;
    else
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be true or false", what);
    return 0;
}

/* ---- objects and arrays -------------------------------------------------------------------- */

int dec__obj_open(oip_dec *d, uint32_t depth, const char *what)
{
    ws(d);
    if (peek(d) != '{')
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be a JSON object", what);
    if (depth > d->max_depth)
        return dec__depth_fail(d);
    d->p++;
    return 0;
}

/* The next member: *more with *key set and d->p at its value, or !*more after the '}'. Keys with
 * escapes are decoded into keybuf when short enough to be one of ours. */
int dec__obj_next(oip_dec *d, bool *first, oip_str *key, char keybuf[128], bool *more)
{
    ws(d);
    int c = peek(d);
    *more = c != '}';
    if (!*more) {
        d->p++;
        return 0;
    }
    if (!*first) {
        if (c != ',')
            return dec__json_fail(d, "expected ',' or '}'");
        d->p++;
        ws(d);
    }
    *first = false;
    if (peek(d) != '"')
        return dec__json_fail(d, "expected a string key");
    int rc = dec__str_scan(d, key);
    if (rc != 0)
        return rc;
    if (key->esc && key->n <= 128) {
        key->n = dec__str_unescape(key, keybuf);
        key->p = keybuf;
        key->esc = false;
    }
    ws(d);
    if (peek(d) != ':')
        return dec__json_fail(d, "expected ':'");
    d->p++;
    ws(d);
    return 0;
}

bool dec__key_is(const oip_str *k, const char *name)
{
    /* first byte first: most comparisons fail there, before strlen/memcmp */
    return !k->esc && k->n > 0 && k->p[0] == name[0] && k->n == strlen(name) &&
           memcmp(k->p, name, k->n) == 0;
}

int dec__arr_open(oip_dec *d, uint32_t depth, const char *what)
{
    ws(d);
    if (peek(d) != '[')
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be a JSON array", what);
    if (depth > d->max_depth)
        return dec__depth_fail(d);
    d->p++;
    return 0;
}

/* The next element: *more with d->p at it, or !*more after the ']'. */
int dec__arr_next(oip_dec *d, bool *first, bool *more)
{
    ws(d);
    int c = peek(d);
    *more = c != ']';
    if (!*more) {
        d->p++;
        return 0;
    }
    if (!*first) {
        if (c != ',')
            return dec__json_fail(d, "expected ',' or ']'");
        d->p++;
        ws(d);
    }
    *first = false;
    return 0;
}

int dec__skip_scalar(oip_dec *d)
{
    oip_str s;
    oip_num n;
    int c = peek(d);
    if (c == '"')
        return dec__str_scan(d, &s);
    if (dec__literal(d, "true", 4) || dec__literal(d, "false", 5) || dec__literal(d, "null", 4))
        return 0;
    size_t len = c == '-' || (c >= '0' && c <= '9') ? oip_num_scan(d->p, d->end, &n) : 0;
    if (len == 0)
        return dec__json_fail(d, "expected a value");
    d->p += len;
    return 0;
}

/* A key and its ':' inside a skipped object. */
static int skip_key(oip_dec *d)
{
    oip_str s;
    ws(d);
    if (peek(d) != '"')
        return dec__json_fail(d, "expected a string key");
    int rc = dec__str_scan(d, &s);
    if (rc != 0)
        return rc;
    ws(d);
    if (peek(d) != ':')
        return dec__json_fail(d, "expected ':'");
    d->p++;
    return 0;
}

/* After a value inside a skipped container: pop closed containers; returns DEC_DONE when the
 * outermost one closed, 0 when another value follows. bits: one per open level, 1 = object. */
static int skip_after(oip_dec *d, uint64_t *bits, uint32_t *top)
{
    while (*top > 0) {
        bool obj = (bits[(*top - 1) / 64] >> ((*top - 1) % 64)) & 1;
        ws(d);
        int c = peek(d);
        if (c == ',') {
            d->p++;
            return obj ? skip_key(d) : 0;
        }
        if (c != (obj ? '}' : ']'))
            return dec__json_fail(d, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        d->p++;
        (*top)--;
    }
    return DEC_DONE;
}

/* Validate any JSON value at d->p; `depth` is the depth it has if it is a container. Iterative. */
int dec__skip_value(oip_dec *d, uint32_t depth)
{
    uint64_t bits[OIP_DEPTH_CAP / 64] = {0};
    uint32_t top = 0;
    for (;;) {
        ws(d);
        int c = peek(d), rc;
        if (c == '{' || c == '[') {
            if (depth + top > d->max_depth)
                return dec__depth_fail(d);
            uint64_t mask = UINT64_C(1) << (top % 64);
            bits[top / 64] = c == '{' ? bits[top / 64] | mask : bits[top / 64] & ~mask;
            top++;
            d->p++;
            ws(d);
            if (peek(d) == (c == '{' ? '}' : ']')) {
                d->p++;
                top--;
            } else {
                rc = c == '{' ? skip_key(d) : 0;
                if (rc != 0)
                    return rc;
                continue;
            }
        } else if ((rc = dec__skip_scalar(d)) != 0) {
            return rc;
        }
        rc = skip_after(d, bits, &top);
        if (rc != 0)
            return rc == DEC_DONE ? 0 : rc;
    }
}

/* ---- labels and small values --------------------------------------------------------------- */

/* "input 'x'" or, before the name is known, "inputs[3]". */
const char *dec__in_label(const oip_in *in, char *buf, size_t cap)
{
    if (in->t.name != NULL)
        snprintf(buf, cap, "input '%.64s'", in->t.name);
    else
        snprintf(buf, cap, "inputs[%u]", in->index);
    return buf;
}

/* An error about an input (or, with in == NULL, the part named by label): "<who>: <message>".
 * Labels are formatted here, on the error path only. */
int dec__in_fail(oip_dec *d, const oip_in *in, const char *label, oip_code code, const char *fmt,
                 ...)
{
    char who[96], msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oip_errorf(d->err, code, "%s: %s", in ? dec__in_label(in, who, sizeof who) : label, msg);
}

/* A non-negative JSON integer at d->p (after ws). */
int dec__uint_value(oip_dec *d, uint64_t max, uint64_t *out)
{
    oip_num n;
    size_t len = oip_num_scan(d->p, d->end, &n);
    if (len == 0 || oip_num_to_u64(&n, d->p, len, out) != 0 || *out > max)
        return -1;
    d->p += len;
    return 0;
}
