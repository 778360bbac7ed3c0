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
#include "decode_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    if (kind == PARAMS_INPUT && dec__key_is(key, "binary_data_size")) {
        if (dec__uint_value(d, INT64_MAX, &u) != 0)
            return dec__in_fail(d, in, label, OIP_BAD_REQUEST,
                                "binary_data_size must be a non-negative integer");
        po->binary_data_size = (int64_t)u;
        return 0;
    }
    if ((kind == PARAMS_OUTPUT && dec__key_is(key, "binary_data")) ||
        (kind == PARAMS_REQUEST && dec__key_is(key, "binary_data_output"))) {
        if (dec__bool_value(d, &b, "") != 0)
            return dec__in_fail(d, in, label, OIP_BAD_REQUEST,
                                "parameter '%.*s' must be true or false", (int)key->n, key->p);
        *(kind == PARAMS_OUTPUT ? &po->binary_data : &po->binary_data_output) = b;
        return 0;
    }
    if (kind == PARAMS_REQUEST && dec__key_is(key, "routing_key"))
        return dec__string_value(d, &po->routing_key, "parameter 'routing_key'");
    return dec__skip_value(d, depth + 1);
}

/* A parameters object at d->p; `depth` is its own depth. Kept as raw text for the plugin. */
static int parse_params(oip_dec *d, enum params_kind kind, uint32_t depth, params_out *po,
                        const oip_in *in, const char *label)
{
    char keybuf[128];
    ws(d);
    const char *start = d->p;
    if (dec__literal(d, "null", 4))
        return 0; /* "parameters": null is no parameters */
    if (peek(d) != '{')
        return dec__in_fail(d, in, label, OIP_BAD_REQUEST, "'parameters' must be a JSON object");
    int rc = dec__obj_open(d, depth, "");
    bool first = true, more = true;
    oip_str key;
    while (rc == 0 && (rc = dec__obj_next(d, &first, &key, keybuf, &more)) == 0 && more)
        rc = param_member(d, kind, &key, depth, po, in, label);
    if (rc != 0)
        return rc;
    po->text = oip_arena_strndup(d->a, start, (size_t)(d->p - start));
    return po->text ? 0 : dec__oom(d);
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
    return dec__in_fail(d, w->in, NULL, OIP_BAD_REQUEST, "data[%llu]: %.*s%s%s",
                        (unsigned long long)w->count, (int)toklen, tok, toklen ? " " : "", why);
}

/* NaN, Infinity, -Infinity as bare tokens (see the file comment). */
static bool nonfinite_token(oip_dec *d, double *v)
{
    if (dec__literal(d, "NaN", 3))
        *v = __builtin_nan("");
    else if (dec__literal(d, "Infinity", 8))
        *v = __builtin_inf();
    else if (dec__literal(d, "-Infinity", 9))
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
    int rc = dec__str_scan(d, &s);
    if (rc != 0)
        return rc;
    if (s.n > UINT32_MAX)
        return elem_fail(d, w, "", 0, "string longer than 4 GiB");
    if (w->room - w->used < 4 + s.n) {
        size_t room = w->room * 2 > w->used + 4 + s.n ? w->room * 2 : w->used + 4 + s.n;
        unsigned char *p = oip_arena_grow(d->a, w->dst, w->used, room);
        if (p == NULL)
            return dec__oom(d);
        w->dst = p;
        w->room = room;
    }
    unsigned char *o = w->dst + w->used;
    uint32_t n = (uint32_t)dec__str_unescape(&s, (char *)o + 4);
    o[0] = (unsigned char)n, o[1] = (unsigned char)(n >> 8);
    o[2] = (unsigned char)(n >> 16), o[3] = (unsigned char)(n >> 24);
    w->used += 4 + (size_t)n;
    return 0;
}

static int elem_bool(oip_dec *d, oip_walk *w, unsigned char *dst)
{
    bool v = false;
    if (dec__bool_value(d, &v, "") != 0)
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
        rc = dec__skip_scalar(d);
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

/* After an element: close finished arrays. DEC_DONE when the outermost closed, 0 to continue. */
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
            return dec__json_fail(d, "expected ',' or ']' in 'data'");
        d->p++;
        (*open)--;
    }
    return DEC_DONE;
}

/* The "data" array at d->p, flattened (any nesting up to the depth limit). */
static int walk_data(oip_dec *d, oip_walk *w, uint32_t depth)
{
    uint32_t open = 0;
    for (;;) {
        int rc;
        if (peek(d) == '[') {
            if (depth + open > d->max_depth)
                return dec__depth_fail(d);
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
            return rc == DEC_DONE ? 0 : rc;
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
    return w->dst ? 0 : dec__oom(d);
}

static int decode_data(oip_dec *d, oip_in *in, uint32_t depth)
{
    char shape[96];
    oip_walk w = {.in = in};
    ws(d);
    if (peek(d) != '[')
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "'data' must be a JSON array");
    uint64_t n = in->t.element_count;
    int rc = data_buffer(d, &w, n, in->t.datatype);
    if (rc == 0)
        rc = walk_data(d, &w, depth);
    if (rc != 0)
        return rc;
    if (w.count != n || w.dst == NULL)
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST,
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
        return dec__oom(d);
    uint32_t rank = 0;
    uint64_t v;
    bool first = true, more = true;
    if (peek(d) != '[')
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST,
                            "'shape' must be a JSON array of integers");
    int rc = dec__arr_open(d, 4, "");
    while (rc == 0 && (rc = dec__arr_next(d, &first, &more)) == 0 && more) {
        if (dec__uint_value(d, INT64_MAX, &v) != 0)
            return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST,
                                "shape dimensions must be non-negative integers");
        if (rank == DS_MAX_RANK)
            return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "shape has more than %d dimensions",
                                DS_MAX_RANK);
        dims[rank++] = (int64_t)v;
    }
    if (rc != 0)
        return rc;
    in->t.shape = dims;
    in->t.rank = rank;
    in->has_shape = true;
    if (!oip_element_count(dims, rank, &in->t.element_count))
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "shape %s has too many elements",
                            oip_shape_str(s, sizeof s, dims, rank));
    if (in->t.element_count > d->max_elements - d->elements)
        return dec__in_fail(
            d, in, NULL, OIP_BAD_REQUEST, "shape %s makes the request exceed %llu elements",
            oip_shape_str(s, sizeof s, dims, rank), (unsigned long long)d->max_elements);
    d->elements += in->t.element_count;
    return 0;
}

static int parse_datatype(oip_dec *d, oip_in *in)
{
    oip_str s;
    if (peek(d) != '"')
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "'datatype' must be a string");
    int rc = dec__str_scan(d, &s);
    if (rc != 0)
        return rc;
    in->t.datatype = s.esc ? DS_TYPE_INVALID : oip_datatype_parse(s.p, s.n);
    if (in->t.datatype == DS_TYPE_INVALID)
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "unknown datatype '%.*s'",
                            s.n > 32 ? 32 : (int)s.n, s.p);
    return 0;
}

static int input_data_member(oip_dec *d, oip_in *in)
{
    in->has_data = true;
    if (in->t.name != NULL && in->has_shape && in->t.datatype != DS_TYPE_INVALID)
        return decode_data(d, in, 4);
    in->data_at = d->p; /* decoded once name, shape and datatype are known */
    return dec__skip_value(d, 4);
}

/* Bits of the members an input object has seen. */
enum { IN_NAME = 1, IN_SHAPE = 2, IN_TYPE = 4, IN_PARAMS = 8, IN_DATA = 16 };

static int input_member(oip_dec *d, oip_in *in, const oip_str *key, unsigned *seen)
{
    static const char *const names[] = {"name", "shape", "datatype", "parameters", "data"};
    for (unsigned i = 0; i < 5; i++) {
        if (!dec__key_is(key, names[i]))
            continue;
        if (*seen & (1u << i))
            return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "duplicate field '%s'", names[i]);
        *seen |= 1u << i;
        params_out po = {.binary_data_size = -1};
        int rc;
        switch (1u << i) {
        case IN_NAME: return dec__string_value(d, &in->t.name, "input 'name'");
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
    return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "unknown field '%.*s'",
                        key->n > 64 ? 64 : (int)key->n, key->p);
}

/* Required members, data vs binary_data_size, and data that came early. */
static int input_finish(oip_dec *d, oip_in *in, unsigned seen)
{
    if (!(seen & IN_NAME) || in->t.name[0] == '\0')
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing or empty 'name'");
    if (!(seen & IN_SHAPE))
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing 'shape'");
    if (!(seen & IN_TYPE))
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing 'datatype'");
    if (in->has_data && in->binary_size >= 0)
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "has both 'data' and binary_data_size");
    if (!in->has_data && in->binary_size < 0)
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "missing 'data' (or binary_data_size)");
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
        return dec__in_fail(d, in, NULL, OIP_BAD_REQUEST, "must be a JSON object");
    int rc = dec__obj_open(d, 3, "");
    while (rc == 0 && (rc = dec__obj_next(d, &first, &key, keybuf, &more)) == 0 && more)
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
    int rc = dec__arr_open(d, 2, "'inputs'");
    while (rc == 0 && (rc = dec__arr_next(d, &first, &more)) == 0 && more) {
        if (d->n_in >= d->max_tensors)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "more than %u inputs", d->max_tensors);
        oip_in *grown = grow(d, d->in, d->n_in, &d->cap_in, sizeof *d->in);
        if (grown == NULL)
            return dec__oom(d);
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
    int rc = dec__obj_open(d, 3, label);
    while (rc == 0 && (rc = dec__obj_next(d, &first, &key, keybuf, &more)) == 0 && more) {
        unsigned bit = dec__key_is(&key, "name") ? 1 : dec__key_is(&key, "parameters") ? 2 : 0;
        if (bit == 0)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "%s: unknown field '%.*s'", label,
                              key.n > 64 ? 64 : (int)key.n, key.p);
        if (seen & bit)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "%s: duplicate field '%.*s'", label,
                              (int)key.n, key.p);
        seen |= bit;
        params_out po = {.binary_data = -1};
        if (bit == 1)
            rc = dec__string_value(d, &o->r.name, "output 'name'");
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
    int rc = dec__arr_open(d, 2, "'outputs'");
    while (rc == 0 && (rc = dec__arr_next(d, &first, &more)) == 0 && more) {
        if (d->n_out >= d->max_tensors)
            return oip_errorf(d->err, OIP_BAD_REQUEST, "more than %u requested outputs",
                              d->max_tensors);
        oip_out *grown = grow(d, d->out, d->n_out, &d->cap_out, sizeof *d->out);
        if (grown == NULL)
            return dec__oom(d);
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
        if (!dec__key_is(key, names[i]))
            continue;
        if (*seen & (1u << i))
            return oip_errorf(d->err, OIP_BAD_REQUEST, "duplicate field '%s' in the request",
                              names[i]);
        *seen |= 1u << i;
        params_out po = {.binary_data_output = -1};
        int rc;
        if ((1u << i) != RQ_INPUTS && dec__literal(d, "null", 4))
            return 0; /* an optional member that is null is absent */
        switch (1u << i) {
        case RQ_ID: return dec__string_value(d, &r->plugin.id, "'id'");
        case RQ_PARAMS:
            rc = parse_params(d, PARAMS_REQUEST, 2, &po, NULL, "request");
            r->plugin.parameters = po.text;
            r->binary_data_output = po.binary_data_output == 1;
            r->routing_key = po.routing_key;
            return rc;
        case RQ_INPUTS: return parse_inputs(d);
        case RQ_OUTPUTS: return parse_outputs(d);
        default: return dec__string_value(d, &ignored, names[i]);
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
    int rc = dec__obj_open(d, 1, "the request body");
    while (rc == 0 && (rc = dec__obj_next(d, &first, &key, keybuf, &more)) == 0 && more)
        rc = request_member(d, r, &key, &seen);
    if (rc != 0)
        return rc;
    if (!(seen & RQ_INPUTS))
        return oip_errorf(d->err, OIP_BAD_REQUEST, "missing field 'inputs' in the request");
    ws(d);
    if (d->p != d->end)
        return dec__json_fail(d, "unexpected data after the request object");
    return 0;
}

/* ---- assembling the result ----------------------------------------------------------------- */

static int finish(oip_dec *d, oip_request *r)
{
    ds_tensor *ts = oip_arena_alloc(d->a, (size_t)d->n_in * sizeof *ts);
    oip_requested_output *os = oip_arena_alloc(d->a, (size_t)d->n_out * sizeof *os);
    const char **names = oip_arena_alloc(d->a, (size_t)d->n_out * sizeof *names);
    if (ts == NULL || os == NULL || names == NULL)
        return dec__oom(d);
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
        rc = dec__attach_binary(&d, body + json_len, len - json_len, have_header);
    if (rc == 0)
        rc = finish(&d, out);
    return rc;
}
