/*
 * oip decode: the inference request decoder — one pass over the JSON text, no DOM.
 *
 * The scanner walks the request object with the OIP schema in hand: known members are decoded
 * in place, parameter objects and other free-form values are validated by an iterative skipper
 * (one bit per open level, so deep input cannot exhaust the stack) and kept as raw JSON text.
 * Tensor "data" is decoded element by element straight into a typed buffer in the arena whose size
 * the shape gives; nested arrays are flattened in row-major order (their nesting is not checked
 * against the shape, as in Triton; the element count is). When "data" comes before "name",
 * "shape" or "datatype", its position is remembered and it is decoded when the object ends.
 *
 * Accepted beyond strict JSON, for Triton/Python compatibility: the bare tokens NaN, Infinity and
 * -Infinity as FP16/FP32/FP64 elements (Python's json.dumps writes them, Triton reads them).
 * Top-level "model_name"/"model_version" strings are accepted and ignored (Triton's examples send
 * them), and optional members that are null count as absent (pydantic-based clients send them).
 * Everything else is strict: no trailing commas, comments, leading zeros, control characters in
 * strings, bad escapes or lone surrogates; unknown members are a OIP_BAD_REQUEST.
 *
 * Element rules: BOOL takes true/false only; integer types take JSON integers (no fraction or
 * exponent, "1.0" included) within the type's range; float types take any number that does not
 * round to infinity; BYTES takes strings (escapes decoded to UTF-8).
 *
 * Binary extension: with Inference-Header-Content-Length the JSON is the first header_len bytes;
 * inputs with "binary_data_size" take their bytes from what follows, in input order, copied into
 * the arena (aligned for the plugin; the body need not outlive the decode). The sizes must add up
 * to exactly the bytes after the JSON.
 */
#include "oip_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct oip_in {
    ds_tensor t;
    int64_t binary_size; /* "binary_data_size", or -1 */
    const char *data_at; /* "data" seen before name/shape/datatype: decode later */
    uint32_t index;
    bool has_shape, has_data;
} oip_in;

typedef struct oip_out {
    oip_requested_output r;
    int binary; /* "binary_data": 0, 1, or -1 when not given */
} oip_out;

typedef struct oip_dec {
    const char *p;     /* next byte */
    const char *end;   /* end of the JSON text */
    const char *begin; /* start of the JSON text, for offsets in messages */
    oip_arena *a;
    oip_error *err;
    uint32_t max_depth;
    uint32_t max_tensors;
    uint64_t max_elements;
    uint64_t elements; /* over all inputs so far */
    oip_in *in;
    uint32_t n_in, cap_in;
    oip_out *out;
    uint32_t n_out, cap_out;
} oip_dec;

typedef struct oip_str {
    const char *p; /* raw text between the quotes */
    size_t n;
    bool esc; /* contains backslash escapes */
} oip_str;

/* ---- scanner primitives -------------------------------------------------------------------- */

static int json_fail(oip_dec *d, const char *what)
{
    return oip_errorf(d->err, OIP_BAD_REQUEST, "invalid JSON at byte %zu: %s",
                      (size_t)(d->p - d->begin), what);
}

static int depth_fail(oip_dec *d)
{
    return oip_errorf(d->err, OIP_BAD_REQUEST, "JSON nesting deeper than %u levels", d->max_depth);
}

static int oom(oip_dec *d)
{
    return oip_errorf(d->err, OIP_INTERNAL, "out of memory while decoding the request");
}

static inline void ws(oip_dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

static inline int peek(const oip_dec *d)
{
    return d->p < d->end ? (unsigned char)*d->p : -1;
}

static bool literal(oip_dec *d, const char *lit, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
        return false;
    d->p += n;
    return true;
}

/* Bytes a string holds as they are: anything but control characters, '"' and '\\'. */
static inline bool str_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
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
static int str_scan(oip_dec *d, oip_str *s)
{
    const char *p = d->p + 1, *end = d->end;
    s->p = p;
    s->esc = false;
    for (;;) {
        while (p < end && str_plain((unsigned char)*p))
            p++;
        if (p == end) {
            d->p = end;
            return json_fail(d, "unterminated string");
        }
        if (*p == '"')
            break;
        if (*p != '\\') {
            d->p = p;
            return json_fail(d, "control character in string");
        }
        size_t n = escape_len(p, end);
        if (n == 0) {
            d->p = p;
            return json_fail(d, "invalid escape in string");
        }
        s->esc = true;
        p += n;
    }
    s->n = (size_t)(p - s->p);
    if (!oip_utf8_valid((const unsigned char *)s->p, s->n)) {
        d->p = s->p;
        return json_fail(d, "string is not valid UTF-8");
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
static size_t str_unescape(const oip_str *s, char *dst)
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
        return oom(d);
    size_t n = str_unescape(s, c);
    c[n] = '\0';
    if (memchr(c, '\0', n) != NULL)
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s contains a NUL character", what);
    *out = c;
    return 0;
}

/* A string value at d->p (after ws) copied as a C string. */
static int string_value(oip_dec *d, const char **out, const char *what)
{
    oip_str s;
    if (peek(d) != '"')
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be a string", what);
    int rc = str_scan(d, &s);
    return rc ? rc : str_dup(d, &s, out, what);
}

static int bool_value(oip_dec *d, bool *out, const char *what)
{
    if (literal(d, "true", 4))
        *out = true;
    else if (literal(d, "false", 5))
        *out = false;
    else
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be true or false", what);
    return 0;
}

/* ---- objects and arrays -------------------------------------------------------------------- */

static int obj_open(oip_dec *d, uint32_t depth, const char *what)
{
    ws(d);
    if (peek(d) != '{')
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be a JSON object", what);
    if (depth > d->max_depth)
        return depth_fail(d);
    d->p++;
    return 0;
}

/* The next member: *more with *key set and d->p at its value, or !*more after the '}'. Keys with
 * escapes are decoded into keybuf when short enough to be one of ours. */
static int obj_next(oip_dec *d, bool *first, oip_str *key, char keybuf[128], bool *more)
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
            return json_fail(d, "expected ',' or '}'");
        d->p++;
        ws(d);
    }
    *first = false;
    if (peek(d) != '"')
        return json_fail(d, "expected a string key");
    int rc = str_scan(d, key);
    if (rc != 0)
        return rc;
    if (key->esc && key->n <= 128) {
        key->n = str_unescape(key, keybuf);
        key->p = keybuf;
        key->esc = false;
    }
    ws(d);
    if (peek(d) != ':')
        return json_fail(d, "expected ':'");
    d->p++;
    ws(d);
    return 0;
}

static bool key_is(const oip_str *k, const char *name)
{
    /* first byte first: most comparisons fail there, before strlen/memcmp */
    return !k->esc && k->n > 0 && k->p[0] == name[0] && k->n == strlen(name) &&
           memcmp(k->p, name, k->n) == 0;
}

static int arr_open(oip_dec *d, uint32_t depth, const char *what)
{
    ws(d);
    if (peek(d) != '[')
        return oip_errorf(d->err, OIP_BAD_REQUEST, "%s must be a JSON array", what);
    if (depth > d->max_depth)
        return depth_fail(d);
    d->p++;
    return 0;
}

/* The next element: *more with d->p at it, or !*more after the ']'. */
static int arr_next(oip_dec *d, bool *first, bool *more)
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
            return json_fail(d, "expected ',' or ']'");
        d->p++;
        ws(d);
    }
    *first = false;
    return 0;
}

static int skip_scalar(oip_dec *d)
{
    oip_str s;
    oip_num n;
    int c = peek(d);
    if (c == '"')
        return str_scan(d, &s);
    if (literal(d, "true", 4) || literal(d, "false", 5) || literal(d, "null", 4))
        return 0;
    size_t len = c == '-' || (c >= '0' && c <= '9') ? oip_num_scan(d->p, d->end, &n) : 0;
    if (len == 0)
        return json_fail(d, "expected a value");
    d->p += len;
    return 0;
}

/* A key and its ':' inside a skipped object. */
static int skip_key(oip_dec *d)
{
    oip_str s;
    ws(d);
    if (peek(d) != '"')
        return json_fail(d, "expected a string key");
    int rc = str_scan(d, &s);
    if (rc != 0)
        return rc;
    ws(d);
    if (peek(d) != ':')
        return json_fail(d, "expected ':'");
    d->p++;
    return 0;
}

/* After a value inside a skipped container: pop closed containers; returns 1 when the outermost
 * one closed, 0 when another value follows. bits: one per open level, 1 = object. */
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
            return json_fail(d, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        d->p++;
        (*top)--;
    }
    return 1;
}

/* Validate any JSON value at d->p; `depth` is the depth it has if it is a container. Iterative. */
static int skip_value(oip_dec *d, uint32_t depth)
{
    uint64_t bits[OIP_DEPTH_CAP / 64] = {0};
    uint32_t top = 0;
    for (;;) {
        ws(d);
        int c = peek(d), rc;
        if (c == '{' || c == '[') {
            if (depth + top > d->max_depth)
                return depth_fail(d);
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
        } else if ((rc = skip_scalar(d)) != 0) {
            return rc;
        }
        rc = skip_after(d, bits, &top);
        if (rc != 0)
            return rc == 1 ? 0 : rc;
    }
}

/* ---- labels and small values --------------------------------------------------------------- */

/* "input 'x'" or, before the name is known, "inputs[3]". */
static const char *in_label(const oip_in *in, char *buf, size_t cap)
{
    if (in->t.name != NULL)
        snprintf(buf, cap, "input '%.64s'", in->t.name);
    else
        snprintf(buf, cap, "inputs[%u]", in->index);
    return buf;
}

/* An error about an input (or, with in == NULL, the part named by label): "<who>: <message>".
 * Labels are formatted here, on the error path only. */
static int in_fail(oip_dec *d, const oip_in *in, const char *label, oip_code code, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
static int in_fail(oip_dec *d, const oip_in *in, const char *label, oip_code code, const char *fmt,
                   ...)
{
    char who[96], msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oip_errorf(d->err, code, "%s: %s", in ? in_label(in, who, sizeof who) : label, msg);
}

/* A non-negative JSON integer at d->p (after ws). */
static int uint_value(oip_dec *d, uint64_t max, uint64_t *out)
{
    oip_num n;
    size_t len = oip_num_scan(d->p, d->end, &n);
    if (len == 0 || oip_num_to_u64(&n, d->p, len, out) != 0 || *out > max)
        return -1;
    d->p += len;
    return 0;
}

/* ---- parameters ---------------------------------------------------------------------------- */

enum params_kind { PARAMS_REQUEST, PARAMS_INPUT, PARAMS_OUTPUT };

typedef struct params_out {
    const char *text;         /* the raw object, NUL-terminated in the arena */
    int64_t binary_data_size; /* input: -1 when absent */
    int binary_data;          /* output: -1 when absent */
    int binary_data_output;   /* request: -1 when absent */
    const char *routing_key;  /* request */
} params_out;

/* One member of a parameters object: the ones the codec understands, others skipped. */
static int param_member(oip_dec *d, enum params_kind kind, const oip_str *key, uint32_t depth,
                        params_out *po, const oip_in *in, const char *label)
{
    bool b = false;
    uint64_t u;
    if (kind == PARAMS_INPUT && key_is(key, "binary_data_size")) {
        if (uint_value(d, INT64_MAX, &u) != 0)
            return in_fail(d, in, label, OIP_BAD_REQUEST,
                           "binary_data_size must be a non-negative integer");
        po->binary_data_size = (int64_t)u;
        return 0;
    }
    if ((kind == PARAMS_OUTPUT && key_is(key, "binary_data")) ||
        (kind == PARAMS_REQUEST && key_is(key, "binary_data_output"))) {
        if (bool_value(d, &b, "") != 0)
            return in_fail(d, in, label, OIP_BAD_REQUEST, "parameter '%.*s' must be true or false",
                           (int)key->n, key->p);
        *(kind == PARAMS_OUTPUT ? &po->binary_data : &po->binary_data_output) = b;
        return 0;
    }
    if (kind == PARAMS_REQUEST && key_is(key, "routing_key"))
        return string_value(d, &po->routing_key, "parameter 'routing_key'");
    return skip_value(d, depth + 1);
}

/* A parameters object at d->p; `depth` is its own depth. Kept as raw text for the plugin. */
static int parse_params(oip_dec *d, enum params_kind kind, uint32_t depth, params_out *po,
                        const oip_in *in, const char *label)
{
    char keybuf[128];
    ws(d);
    const char *start = d->p;
    if (literal(d, "null", 4))
        return 0; /* "parameters": null is no parameters */
    if (peek(d) != '{')
        return in_fail(d, in, label, OIP_BAD_REQUEST, "'parameters' must be a JSON object");
    int rc = obj_open(d, depth, "");
    bool first = true, more = true;
    oip_str key;
    while (rc == 0 && (rc = obj_next(d, &first, &key, keybuf, &more)) == 0 && more)
        rc = param_member(d, kind, &key, depth, po, in, label);
    if (rc != 0)
        return rc;
    po->text = oip_arena_strndup(d->a, start, (size_t)(d->p - start));
    return po->text ? 0 : oom(d);
}

/* ---- tensor data --------------------------------------------------------------------------- */

typedef struct oip_walk {
    oip_in *in;
    unsigned char *dst; /* NULL: only count (the element count cannot match) */
    uint64_t cap;       /* elements to store */
    uint64_t count;     /* elements seen */
    size_t used, room;  /* BYTES: bytes written / allocated at dst */
} oip_walk;

static int elem_fail(oip_dec *d, oip_walk *w, const char *tok, size_t toklen, const char *why)
{
    if (toklen > 40)
        toklen = 40;
    return in_fail(d, w->in, NULL, OIP_BAD_REQUEST, "data[%llu]: %.*s%s%s",
                   (unsigned long long)w->count, (int)toklen, tok, toklen ? " " : "", why);
}

/* NaN, Infinity, -Infinity as bare tokens (see the file comment). */
static bool nonfinite_token(oip_dec *d, double *v)
{
    if (literal(d, "NaN", 3))
        *v = __builtin_nan("");
    else if (literal(d, "Infinity", 8))
        *v = __builtin_inf();
    else if (literal(d, "-Infinity", 9))
        *v = -__builtin_inf();
    else
        return false;
    return true;
}

static void store_nonfinite(ds_datatype t, double v, unsigned char *dst)
{
    float f = (float)v;
    uint16_t h = oip_f64_to_f16(v);
    if (t == DS_TYPE_FP32)
        memcpy(dst, &f, sizeof f);
    else if (t == DS_TYPE_FP64)
        memcpy(dst, &v, sizeof v);
    else
        memcpy(dst, &h, sizeof h);
}

/* Convert a scanned number to the element type at dst; 0 or -1 (out of range). */
static int store_float(ds_datatype t, const oip_num *n, const char *tok, size_t len,
                       unsigned char *dst)
{
    float f = 0;
    double g = 0;
    uint16_t h = 0;
    int rc;
    if (t == DS_TYPE_FP32) {
        rc = oip_num_to_f32(n, tok, len, &f);
        memcpy(dst, &f, sizeof f);
    } else if (t == DS_TYPE_FP64) {
        rc = oip_num_to_f64(n, tok, len, &g);
        memcpy(dst, &g, sizeof g);
    } else {
        rc = oip_num_to_f16(n, tok, len, &h);
        memcpy(dst, &h, sizeof h);
    }
    return rc;
}

static int elem_float(oip_dec *d, oip_walk *w, unsigned char *dst)
{
    ds_datatype t = w->in->t.datatype;
    const char *tok = d->p, *tname = t == DS_TYPE_FP32   ? "FP32"
                                     : t == DS_TYPE_FP64 ? "FP64"
                                                         : "FP16";
    char why[48];
    oip_num n;
    double v;
    size_t len = oip_num_scan(tok, d->end, &n);
    if (len == 0 && nonfinite_token(d, &v)) {
        store_nonfinite(t, v, dst);
        return 0;
    }
    if (len == 0) {
        snprintf(why, sizeof why, "expected a number for %s", tname);
        return elem_fail(d, w, "", 0, why);
    }
    if (store_float(t, &n, tok, len, dst) != 0) {
        snprintf(why, sizeof why, "is out of range for %s", tname);
        return elem_fail(d, w, tok, len, why);
    }
    d->p += len;
    return 0;
}

/* Range of each integer type, and whether it is signed. */
static void int_range(ds_datatype t, int64_t *min, uint64_t *max)
{
    switch (t) {
    case DS_TYPE_UINT8: *min = 0, *max = UINT8_MAX; break;
    case DS_TYPE_UINT16: *min = 0, *max = UINT16_MAX; break;
    case DS_TYPE_UINT32: *min = 0, *max = UINT32_MAX; break;
    case DS_TYPE_UINT64: *min = 0, *max = UINT64_MAX; break;
    case DS_TYPE_INT8: *min = INT8_MIN, *max = INT8_MAX; break;
    case DS_TYPE_INT16: *min = INT16_MIN, *max = INT16_MAX; break;
    case DS_TYPE_INT32: *min = INT32_MIN, *max = INT32_MAX; break;
    default: *min = INT64_MIN, *max = INT64_MAX; break;
    }
}

static int int_fail(oip_dec *d, oip_walk *w, const char *tok, size_t len, const char *why)
{
    char msg[64];
    snprintf(msg, sizeof msg, "%s %s", why, oip_datatype_name(w->in->t.datatype));
    return elem_fail(d, w, tok, len, msg);
}

static int elem_int(oip_dec *d, oip_walk *w, unsigned char *dst)
{
    ds_datatype t = w->in->t.datatype;
    const char *tok = d->p;
    oip_num n;
    int64_t min, i = 0;
    uint64_t max, u = 0;
    int_range(t, &min, &max);
    size_t len = oip_num_scan(tok, d->end, &n);
    if (len == 0)
        return int_fail(d, w, "", 0, "expected an integer for");
    if (!n.integral)
        return int_fail(d, w, tok, len, "is not an integer, as required for");
    if (min == 0 ? oip_num_to_u64(&n, tok, len, &u) != 0 || u > max
                 : oip_num_to_i64(&n, tok, len, &i) != 0 || i < min || i > (int64_t)max)
        return int_fail(d, w, tok, len, "is out of range for");
    if (min != 0)
        u = (uint64_t)i; /* two's complement: the low bytes are the narrow value */
    size_t size = oip_datatype_size(t);
    for (size_t k = 0; k < size; k++) /* little-endian whatever the host */
        dst[k] = (unsigned char)(u >> (8 * k));
    d->p += len;
    return 0;
}

static int elem_bytes(oip_dec *d, oip_walk *w)
{
    oip_str s;
    if (peek(d) != '"')
        return elem_fail(d, w, "", 0, "expected a string for BYTES");
    int rc = str_scan(d, &s);
    if (rc != 0)
        return rc;
    if (s.n > UINT32_MAX)
        return elem_fail(d, w, "", 0, "string longer than 4 GiB");
    if (w->room - w->used < 4 + s.n) {
        size_t room = w->room * 2 > w->used + 4 + s.n ? w->room * 2 : w->used + 4 + s.n;
        unsigned char *p = oip_arena_grow(d->a, w->dst, w->used, room);
        if (p == NULL)
            return oom(d);
        w->dst = p;
        w->room = room;
    }
    unsigned char *o = w->dst + w->used;
    uint32_t n = (uint32_t)str_unescape(&s, (char *)o + 4);
    o[0] = (unsigned char)n, o[1] = (unsigned char)(n >> 8);
    o[2] = (unsigned char)(n >> 16), o[3] = (unsigned char)(n >> 24);
    w->used += 4 + (size_t)n;
    return 0;
}

static int elem_bool(oip_dec *d, oip_walk *w, unsigned char *dst)
{
    bool v = false;
    if (bool_value(d, &v, "") != 0)
        return elem_fail(d, w, "", 0, "expected true or false for BOOL");
    *dst = v;
    return 0;
}

/* One scalar element at d->p: stored when there is room, else only validated and counted. */
static int elem(oip_dec *d, oip_walk *w)
{
    ds_datatype t = w->in->t.datatype;
    int rc;
    if (peek(d) == '{')
        return elem_fail(d, w, "", 0, "data elements must be scalars, not objects");
    if (w->dst == NULL || w->count >= w->cap) {
        rc = skip_scalar(d);
    } else if (t == DS_TYPE_FP32 || t == DS_TYPE_FP64 || t == DS_TYPE_FP16) {
        rc = elem_float(d, w, w->dst + w->count * oip_datatype_size(t));
    } else if (t == DS_TYPE_BYTES) {
        rc = elem_bytes(d, w);
    } else if (t == DS_TYPE_BOOL) {
        rc = elem_bool(d, w, w->dst + w->count);
    } else {
        rc = elem_int(d, w, w->dst + w->count * oip_datatype_size(t));
    }
    w->count++;
    return rc;
}

/* After an element: close finished arrays. 1 when the outermost closed, 0 to continue. */
static int walk_after(oip_dec *d, uint32_t *open)
{
    while (*open > 0) {
        ws(d);
        int c = peek(d);
        if (c == ',') {
            d->p++;
            ws(d);
            return 0;
        }
        if (c != ']')
            return json_fail(d, "expected ',' or ']' in 'data'");
        d->p++;
        (*open)--;
    }
    return 1;
}

/* The "data" array at d->p, flattened (any nesting up to the depth limit). */
static int walk_data(oip_dec *d, oip_walk *w, uint32_t depth)
{
    uint32_t open = 0;
    for (;;) {
        int rc;
        if (peek(d) == '[') {
            if (depth + open > d->max_depth)
                return depth_fail(d);
            open++;
            d->p++;
            ws(d);
            if (peek(d) != ']')
                continue;
            d->p++;
            open--;
        } else if ((rc = elem(d, w)) != 0) {
            return rc;
        }
        rc = walk_after(d, &open);
        if (rc != 0)
            return rc == 1 ? 0 : rc;
    }
}

/* Buffer for n elements; NULL dst (count only) when the rest of the JSON is too short to hold n
 * elements, so a huge shape with little data cannot make us allocate for the shape. */
static int data_buffer(oip_dec *d, oip_walk *w, uint64_t n, ds_datatype t)
{
    size_t left = (size_t)(d->end - d->p);
    size_t esize = oip_datatype_size(t);
    uint64_t min_text = t == DS_TYPE_BYTES ? 3 : 2; /* shortest element plus its comma */
    w->cap = n;
    if (n > left / min_text + 1)
        return 0;
    size_t bytes = t == DS_TYPE_BYTES ? (size_t)n * 4 + 64 : (size_t)n * esize;
    w->dst = oip_arena_alloc(d->a, bytes);
    w->room = bytes;
    return w->dst ? 0 : oom(d);
}

static int decode_data(oip_dec *d, oip_in *in, uint32_t depth)
{
    char shape[96];
    oip_walk w = {.in = in};
    ws(d);
    if (peek(d) != '[')
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "'data' must be a JSON array");
    uint64_t n = in->t.element_count;
    int rc = data_buffer(d, &w, n, in->t.datatype);
    if (rc == 0)
        rc = walk_data(d, &w, depth);
    if (rc != 0)
        return rc;
    if (w.count != n || w.dst == NULL)
        return in_fail(d, in, NULL, OIP_BAD_REQUEST,
                       "expected %llu elements for shape %s, got %llu", (unsigned long long)n,
                       oip_shape_str(shape, sizeof shape, in->t.shape, in->t.rank),
                       (unsigned long long)w.count);
    in->t.data = w.dst;
    in->t.byte_size =
        in->t.datatype == DS_TYPE_BYTES ? w.used : (size_t)n * oip_datatype_size(in->t.datatype);
    return 0;
}

/* ---- inputs -------------------------------------------------------------------------------- */

static int parse_shape(oip_dec *d, oip_in *in)
{
    char s[96];
    int64_t *dims = oip_arena_alloc(d->a, DS_MAX_RANK * sizeof *dims);
    if (dims == NULL)
        return oom(d);
    uint32_t rank = 0;
    uint64_t v;
    bool first = true, more = true;
    if (peek(d) != '[')
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "'shape' must be a JSON array of integers");
    int rc = arr_open(d, 4, "");
    while (rc == 0 && (rc = arr_next(d, &first, &more)) == 0 && more) {
        if (uint_value(d, INT64_MAX, &v) != 0)
            return in_fail(d, in, NULL, OIP_BAD_REQUEST,
                           "shape dimensions must be non-negative integers");
        if (rank == DS_MAX_RANK)
            return in_fail(d, in, NULL, OIP_BAD_REQUEST, "shape has more than %d dimensions",
                           DS_MAX_RANK);
        dims[rank++] = (int64_t)v;
    }
    if (rc != 0)
        return rc;
    in->t.shape = dims;
    in->t.rank = rank;
    in->has_shape = true;
    if (!oip_element_count(dims, rank, &in->t.element_count))
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "shape %s has too many elements",
                       oip_shape_str(s, sizeof s, dims, rank));
    if (in->t.element_count > d->max_elements - d->elements)
        return in_fail(d, in, NULL, OIP_BAD_REQUEST,
                       "shape %s makes the request exceed %llu elements",
                       oip_shape_str(s, sizeof s, dims, rank), (unsigned long long)d->max_elements);
    d->elements += in->t.element_count;
    return 0;
}

static int parse_datatype(oip_dec *d, oip_in *in)
{
    oip_str s;
    if (peek(d) != '"')
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "'datatype' must be a string");
    int rc = str_scan(d, &s);
    if (rc != 0)
        return rc;
    in->t.datatype = s.esc ? DS_TYPE_INVALID : oip_datatype_parse(s.p, s.n);
    if (in->t.datatype == DS_TYPE_INVALID)
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "unknown datatype '%.*s'",
                       s.n > 32 ? 32 : (int)s.n, s.p);
    return 0;
}

static int input_data_member(oip_dec *d, oip_in *in)
{
    in->has_data = true;
    if (in->t.name != NULL && in->has_shape && in->t.datatype != DS_TYPE_INVALID)
        return decode_data(d, in, 4);
    in->data_at = d->p; /* decoded once name, shape and datatype are known */
    return skip_value(d, 4);
}

/* Bits of the members an input object has seen. */
enum { IN_NAME = 1, IN_SHAPE = 2, IN_TYPE = 4, IN_PARAMS = 8, IN_DATA = 16 };

static int input_member(oip_dec *d, oip_in *in, const oip_str *key, unsigned *seen)
{
    static const char *const names[] = {"name", "shape", "datatype", "parameters", "data"};
    for (unsigned i = 0; i < 5; i++) {
        if (!key_is(key, names[i]))
            continue;
        if (*seen & (1u << i))
            return in_fail(d, in, NULL, OIP_BAD_REQUEST, "duplicate field '%s'", names[i]);
        *seen |= 1u << i;
        params_out po = {.binary_data_size = -1};
        int rc;
        switch (1u << i) {
        case IN_NAME: return string_value(d, &in->t.name, "input 'name'");
        case IN_SHAPE: return parse_shape(d, in);
        case IN_TYPE: return parse_datatype(d, in);
        case IN_PARAMS:
            rc = parse_params(d, PARAMS_INPUT, 4, &po, in, NULL);
            in->t.parameters = po.text;
            in->binary_size = po.binary_data_size;
            return rc;
        default: return input_data_member(d, in);
        }
    }
    return in_fail(d, in, NULL, OIP_BAD_REQUEST, "unknown field '%.*s'",
                   key->n > 64 ? 64 : (int)key->n, key->p);
}

/* Required members, data vs binary_data_size, and data that came early. */
static int input_finish(oip_dec *d, oip_in *in, unsigned seen)
{
    if (!(seen & IN_NAME) || in->t.name[0] == '\0')
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing or empty 'name'");
    if (!(seen & IN_SHAPE))
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing 'shape'");
    if (!(seen & IN_TYPE))
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing 'datatype'");
    if (in->has_data && in->binary_size >= 0)
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "has both 'data' and binary_data_size");
    if (!in->has_data && in->binary_size < 0)
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing 'data' (or binary_data_size)");
    if (in->data_at == NULL)
        return 0;
    oip_dec sub = *d;
    sub.p = in->data_at;
    return decode_data(&sub, in, 4);
}

static int parse_input(oip_dec *d, oip_in *in)
{
    char keybuf[128];
    bool first = true, more = true;
    unsigned seen = 0;
    oip_str key;
    ws(d);
    if (peek(d) != '{')
        return in_fail(d, in, NULL, OIP_BAD_REQUEST, "must be a JSON object");
    int rc = obj_open(d, 3, "");
    while (rc == 0 && (rc = obj_next(d, &first, &key, keybuf, &more)) == 0 && more)
        rc = input_member(d, in, &key, &seen);
    return rc ? rc : input_finish(d, in, seen);
}

/* A decoder array of `size`-byte elements with room for one more; NULL when memory runs out. */
static void *grow(oip_dec *d, void *arr, uint32_t n, uint32_t *cap, size_t size)
{
    if (n < *cap)
        return arr;
    uint32_t c = *cap ? *cap * 2 : 4;
    void *p = oip_arena_grow(d->a, arr, (size_t)n * size, (size_t)c * size);
    if (p != NULL)
        *cap = c;
    return p;
}

static int parse_inputs(oip_dec *d)
{
    bool first = true, more = true;
    int rc = arr_open(d, 2, "'inputs'");
    while (rc == 0 && (rc = arr_next(d, &first, &more)) == 0 && more) {
        if (d->n_in >= d->max_tensors)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "more than %u inputs", d->max_tensors);
        oip_in *grown = grow(d, d->in, d->n_in, &d->cap_in, sizeof *d->in);
        if (grown == NULL)
            return oom(d);
        d->in = grown;
        oip_in *in = &d->in[d->n_in];
        *in = (oip_in){.index = d->n_in, .binary_size = -1};
        d->n_in++;
        rc = parse_input(d, in);
    }
    return rc;
}

/* ---- requested outputs --------------------------------------------------------------------- */

static int parse_output(oip_dec *d, oip_out *o, uint32_t index)
{
    char keybuf[128], label[96];
    bool first = true, more = true;
    unsigned seen = 0;
    oip_str key;
    snprintf(label, sizeof label, "outputs[%u]", index);
    int rc = obj_open(d, 3, label);
    while (rc == 0 && (rc = obj_next(d, &first, &key, keybuf, &more)) == 0 && more) {
        unsigned bit = key_is(&key, "name") ? 1 : key_is(&key, "parameters") ? 2 : 0;
        if (bit == 0)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "%s: unknown field '%.*s'", label,
                              key.n > 64 ? 64 : (int)key.n, key.p);
        if (seen & bit)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "%s: duplicate field '%.*s'", label,
                              (int)key.n, key.p);
        seen |= bit;
        params_out po = {.binary_data = -1};
        if (bit == 1)
            rc = string_value(d, &o->r.name, "output 'name'");
        else
            rc = parse_params(d, PARAMS_OUTPUT, 4, &po, NULL, label);
        if (bit == 2) {
            o->r.parameters = po.text;
            o->binary = po.binary_data;
        }
    }
    if (rc == 0 && (!(seen & 1) || o->r.name[0] == '\0'))
        rc = oip_errorf(d->err, OIP_BAD_REQUEST, "%s: missing or empty 'name'", label);
    return rc;
}

static int parse_outputs(oip_dec *d)
{
    bool first = true, more = true;
    int rc = arr_open(d, 2, "'outputs'");
    while (rc == 0 && (rc = arr_next(d, &first, &more)) == 0 && more) {
        if (d->n_out >= d->max_tensors)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "more than %u requested outputs",
                              d->max_tensors);
        oip_out *grown = grow(d, d->out, d->n_out, &d->cap_out, sizeof *d->out);
        if (grown == NULL)
            return oom(d);
        d->out = grown;
        oip_out *o = &d->out[d->n_out];
        *o = (oip_out){.binary = -1};
        rc = parse_output(d, o, d->n_out);
        for (uint32_t i = 0; rc == 0 && i < d->n_out; i++)
            if (strcmp(d->out[i].r.name, o->r.name) == 0)
                rc = oip_errorf(d->err, OIP_BAD_REQUEST, "output '%.64s' is requested twice",
                                o->r.name);
        d->n_out++;
    }
    return rc;
}

/* ---- the request object -------------------------------------------------------------------- */

enum { RQ_ID = 1, RQ_PARAMS = 2, RQ_INPUTS = 4, RQ_OUTPUTS = 8, RQ_MODEL = 16, RQ_VERSION = 32 };

static int request_member(oip_dec *d, oip_request *r, const oip_str *key, unsigned *seen)
{
    static const char *const names[] = {"id",      "parameters", "inputs",
                                        "outputs", "model_name", "model_version"};
    const char *ignored = NULL;
    for (unsigned i = 0; i < 6; i++) {
        if (!key_is(key, names[i]))
            continue;
        if (*seen & (1u << i))
            return oip_errorf(d->err, OIP_BAD_REQUEST, "duplicate field '%s' in the request",
                              names[i]);
        *seen |= 1u << i;
        params_out po = {.binary_data_output = -1};
        int rc;
        if ((1u << i) != RQ_INPUTS && literal(d, "null", 4))
            return 0; /* an optional member that is null is absent */
        switch (1u << i) {
        case RQ_ID: return string_value(d, &r->plugin.id, "'id'");
        case RQ_PARAMS:
            rc = parse_params(d, PARAMS_REQUEST, 2, &po, NULL, "request");
            r->plugin.parameters = po.text;
            r->binary_data_output = po.binary_data_output == 1;
            r->routing_key = po.routing_key;
            return rc;
        case RQ_INPUTS: return parse_inputs(d);
        case RQ_OUTPUTS: return parse_outputs(d);
        default: return string_value(d, &ignored, names[i]);
        }
    }
    return oip_errorf(d->err, OIP_BAD_REQUEST, "unknown field '%.*s' in the request",
                      key->n > 64 ? 64 : (int)key->n, key->p);
}

static int parse_request(oip_dec *d, oip_request *r)
{
    char keybuf[128];
    bool first = true, more = true;
    unsigned seen = 0;
    oip_str key;
    int rc = obj_open(d, 1, "the request body");
    while (rc == 0 && (rc = obj_next(d, &first, &key, keybuf, &more)) == 0 && more)
        rc = request_member(d, r, &key, &seen);
    if (rc != 0)
        return rc;
    if (!(seen & RQ_INPUTS))
        return oip_errorf(d->err, OIP_BAD_REQUEST, "missing field 'inputs' in the request");
    ws(d);
    if (d->p != d->end)
        return json_fail(d, "unexpected data after the request object");
    return 0;
}

/* ---- binary tensor data -------------------------------------------------------------------- */

static int binary_input(oip_dec *d, oip_in *in, const char *bin, size_t left)
{
    char label[96], s[96];
    uint64_t size = (uint64_t)in->binary_size, bad = 0;
    size_t esize = oip_datatype_size(in->t.datatype);
    in_label(in, label, sizeof label); /* once per binary input, not per element */
    if (in->t.datatype != DS_TYPE_BYTES && size / esize != in->t.element_count)
        return oip_errorf(
            d->err, OIP_BAD_REQUEST,
            "%s: binary_data_size %llu does not match shape %s of %s (%llu bytes)", label,
            (unsigned long long)size, oip_shape_str(s, sizeof s, in->t.shape, in->t.rank),
            oip_datatype_name(in->t.datatype), (unsigned long long)(in->t.element_count * esize));
    if (in->t.datatype != DS_TYPE_BYTES && size % esize != 0)
        return oip_errorf(d->err, OIP_BAD_REQUEST,
                          "%s: binary_data_size %llu is not a multiple of %zu", label,
                          (unsigned long long)size, esize);
    if (size > left)
        return oip_errorf(d->err, OIP_BAD_REQUEST,
                          "%s: binary_data_size %llu exceeds the %zu bytes of binary data left",
                          label, (unsigned long long)size, left);
    unsigned char *dst = oip_arena_alloc(d->a, (size_t)size);
    if (dst == NULL)
        return oom(d);
    memcpy(dst, bin, (size_t)size);
    if (in->t.datatype == DS_TYPE_BYTES &&
        !oip_bytes_valid(dst, (size_t)size, in->t.element_count, &bad))
        return oip_errorf(d->err, OIP_BAD_REQUEST,
                          "%s: binary BYTES data does not hold %llu length-prefixed elements in "
                          "%llu bytes",
                          label, (unsigned long long)in->t.element_count, (unsigned long long)size);
    for (size_t i = 0; in->t.datatype == DS_TYPE_BOOL && i < size; i++)
        if (dst[i] > 1)
            return oip_errorf(d->err, OIP_BAD_REQUEST,
                              "%s: binary BOOL element %zu is %u, not 0 or 1", label, i, dst[i]);
    in->t.data = dst;
    in->t.byte_size = (size_t)size;
    return 0;
}

/* Hand out the bytes after the JSON to the inputs with binary_data_size, in order. */
static int attach_binary(oip_dec *d, const char *bin, size_t len, bool have_header)
{
    size_t off = 0;
    for (uint32_t i = 0; i < d->n_in; i++) {
        oip_in *in = &d->in[i];
        if (in->binary_size < 0)
            continue;
        if (!have_header)
            return oip_errorf(d->err, OIP_BAD_REQUEST,
                              "input '%.64s': binary_data_size needs the "
                              "Inference-Header-Content-Length header",
                              in->t.name);
        int rc = binary_input(d, in, bin + off, len - off);
        if (rc != 0)
            return rc;
        off += in->t.byte_size;
    }
    if (off != len)
        return oip_errorf(d->err, OIP_BAD_REQUEST,
                          "the body has %zu bytes after the JSON header but the inputs' "
                          "binary_data_size add up to %zu",
                          len, off);
    return 0;
}

/* ---- assembling the result ----------------------------------------------------------------- */

static int finish(oip_dec *d, oip_request *r)
{
    ds_tensor *ts = oip_arena_alloc(d->a, (size_t)d->n_in * sizeof *ts);
    oip_requested_output *os = oip_arena_alloc(d->a, (size_t)d->n_out * sizeof *os);
    const char **names = oip_arena_alloc(d->a, (size_t)d->n_out * sizeof *names);
    if (ts == NULL || os == NULL || names == NULL)
        return oom(d);
    for (uint32_t i = 0; i < d->n_in; i++) {
        ts[i] = d->in[i].t;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(ts[i].name, ts[j].name) == 0)
                return oip_errorf(d->err, OIP_BAD_REQUEST, "duplicate input '%.64s'", ts[i].name);
    }
    for (uint32_t i = 0; i < d->n_out; i++) {
        os[i] = d->out[i].r;
        /* per-output "binary_data" overrides the request's binary_data_output */
        os[i].binary_data = d->out[i].binary < 0 ? r->binary_data_output : d->out[i].binary == 1;
        names[i] = os[i].name;
    }
    r->inputs = ts;
    r->outputs = os;
    r->output_count = d->n_out;
    r->plugin.struct_size = sizeof r->plugin;
    r->plugin.input_count = d->n_in;
    r->plugin.inputs = ts;
    r->plugin.requested_output_count = d->n_out;
    r->plugin.requested_outputs = names;
    return 0;
}

int oip_decode_request(oip_arena *a, const char *body, size_t len, size_t header_len,
                       const oip_limits *lim, oip_request *out, oip_error *err)
{
    *out = (oip_request){0};
    if (err != NULL)
        *err = (oip_error){0};
    if (lim == NULL)
        lim = &oip_default_limits;
    bool have_header = header_len != (size_t)-1;
    if (have_header && header_len > len)
        return oip_errorf(err, OIP_BAD_REQUEST,
                          "Inference-Header-Content-Length %zu is larger than the body (%zu bytes)",
                          header_len, len);
    if (body == NULL)
        body = "";
    size_t json_len = have_header ? header_len : len;
    oip_dec d = {
        .p = body,
        .end = body + json_len,
        .begin = body,
        .a = a,
        .err = err,
        .max_depth = lim->max_depth < OIP_DEPTH_CAP ? lim->max_depth : OIP_DEPTH_CAP,
        .max_tensors = lim->max_tensors,
        .max_elements = lim->max_elements,
    };
    int rc = parse_request(&d, out);
    if (rc == 0)
        rc = attach_binary(&d, body + json_len, len - json_len, have_header);
    if (rc == 0)
        rc = finish(&d, out);
    return rc;
}
