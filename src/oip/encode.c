/*
 * oip encode: the response and model-metadata encoders (see oip.h). Built on the leaves (arena,
 * types, text, num); never on decode or check.
 *
 * Response JSON conventions (documented for clients):
 *   - "data" is flat, row-major; FP16/FP32/FP64 print the shortest decimal that reads back as the
 *     same value of that width ("6.0" for integral values); NaN and infinities print as the bare
 *     tokens NaN, Infinity, -Infinity, as Triton does (rapidjson's kWriteNanAndInfFlag) and as
 *     Python's json module reads and writes them.
 *   - BYTES elements are JSON strings. A text element (well-formed UTF-8) is written escaped where
 *     JSON requires; an output holding bytes that are not UTF-8 cannot be JSON text and must be
 *     requested in binary (binary_data), else the request gets a 400. BOOL is true/false.
 *   - "id" appears only when the request had one; response "parameters" are never echoed.
 */
#include "oip_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- response encoding --------------------------------------------------------------------- */

#define PUT_LIT(b, s) buf_append((b), (s), sizeof(s) - 1)
#define OIP_BLOCK     256 /* elements formatted per buffer reservation */

/* A JSON string; names and ids rarely need escapes, so check first and copy in one go. */
static void put_str(ds_buf *b, const char *s)
{
    size_t n = 0;
    while (s[n] != '\0' && (unsigned char)s[n] >= 0x20 && s[n] != '"' && s[n] != '\\')
        n++;
    if (s[n] != '\0') {
        buf_append_json_string(b, s, n + strlen(s + n));
        return;
    }
    if (!buf_reserve(b, n + 2))
        return;
    char *w = b->data + b->len;
    w[0] = '"';
    memcpy(w + 1, s, n);
    w[n + 1] = '"';
    b->len += n + 2;
    b->data[b->len] = '\0';
}

static void put_shape(ds_buf *b, const int64_t *shape, uint32_t rank)
{
    char tmp[OIP_FMT_MAX];
    buf_append_char(b, '[');
    for (uint32_t i = 0; i < rank; i++) {
        if (i)
            buf_append_char(b, ',');
        buf_append(b, tmp, oip_fmt_i64(tmp, shape[i]));
    }
    buf_append_char(b, ']');
}

typedef size_t (*elem_fmt)(char *dst, const unsigned char *src);

static size_t fmt_bool(char *d, const unsigned char *s)
{
    memcpy(d, *s ? "true" : "false", 5);
    return *s ? 4 : 5;
}

/* fn: read one element of type T and print it through printer(dst, (W)value). */
#define OIP_ELEM_FMT(fn, T, printer, W)                                                            \
    static size_t fn(char *d, const unsigned char *s)                                              \
    {                                                                                              \
        T v;                                                                                       \
        memcpy(&v, s, sizeof v);                                                                   \
        return printer(d, (W)v);                                                                   \
    }
OIP_ELEM_FMT(fmt_u8, uint8_t, oip_fmt_u64, uint64_t)
OIP_ELEM_FMT(fmt_u16, uint16_t, oip_fmt_u64, uint64_t)
OIP_ELEM_FMT(fmt_u32, uint32_t, oip_fmt_u64, uint64_t)
OIP_ELEM_FMT(fmt_u64, uint64_t, oip_fmt_u64, uint64_t)
OIP_ELEM_FMT(fmt_i8, int8_t, oip_fmt_i64, int64_t)
OIP_ELEM_FMT(fmt_i16, int16_t, oip_fmt_i64, int64_t)
OIP_ELEM_FMT(fmt_i32, int32_t, oip_fmt_i64, int64_t)
OIP_ELEM_FMT(fmt_i64, int64_t, oip_fmt_i64, int64_t)
OIP_ELEM_FMT(fmt_f16, uint16_t, oip_fmt_f16, uint16_t)
OIP_ELEM_FMT(fmt_f32, float, oip_fmt_f32, float)
OIP_ELEM_FMT(fmt_f64, double, oip_fmt_f64, double)

static elem_fmt elem_formatter(ds_datatype t)
{
    switch (t) {
    case DS_TYPE_BOOL: return fmt_bool;
    case DS_TYPE_UINT8: return fmt_u8;
    case DS_TYPE_UINT16: return fmt_u16;
    case DS_TYPE_UINT32: return fmt_u32;
    case DS_TYPE_UINT64: return fmt_u64;
    case DS_TYPE_INT8: return fmt_i8;
    case DS_TYPE_INT16: return fmt_i16;
    case DS_TYPE_INT32: return fmt_i32;
    case DS_TYPE_INT64: return fmt_i64;
    case DS_TYPE_FP16: return fmt_f16;
    case DS_TYPE_FP32: return fmt_f32;
    case DS_TYPE_FP64: return fmt_f64;
    default: return NULL;
    }
}

/* Fixed-size elements, comma separated. Formats straight into the buffer, one reservation per
 * block of elements, so there is no bounds check per character. */
static void put_numbers(ds_buf *b, const oip_output *o)
{
    elem_fmt fmt = elem_formatter(o->datatype);
    size_t esize = oip_datatype_size(o->datatype);
    const unsigned char *src = o->data;
    for (uint64_t i = 0; i < o->element_count;) {
        uint64_t n = o->element_count - i < OIP_BLOCK ? o->element_count - i : OIP_BLOCK;
        if (!buf_reserve(b, (size_t)n * (OIP_FMT_MAX + 1)))
            return;
        char *w = b->data + b->len;
        for (uint64_t end = i + n; i < end; i++) {
            if (i)
                *w++ = ',';
            w += fmt(w, src + i * esize);
        }
        b->len = (size_t)(w - b->data);
    }
    b->data[b->len] = '\0';
}

/* Whether every BYTES element is UTF-8 text, so it can be a JSON string (the layout was
 * validated by oip_bytes_valid). */
static bool bytes_elems_are_text(const oip_output *o)
{
    const unsigned char *p = o->data;
    size_t off = 0;
    for (uint64_t i = 0; i < o->element_count; i++) {
        uint32_t n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                     (uint32_t)p[off + 3] << 24;
        if (!oip_utf8_valid(p + off + 4, n))
            return false;
        off += 4 + (size_t)n;
    }
    return true;
}

/* BYTES elements as JSON strings; the layout was validated by oip_bytes_valid. */
static void put_bytes_elems(ds_buf *b, const oip_output *o)
{
    const unsigned char *p = o->data;
    size_t off = 0;
    for (uint64_t i = 0; i < o->element_count; i++) {
        uint32_t n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                     (uint32_t)p[off + 3] << 24;
        if (i)
            buf_append_char(b, ',');
        buf_append_json_string(b, (const char *)p + off + 4, n);
        off += 4 + (size_t)n;
    }
}

static int put_output(ds_buf *b, const oip_output *o, bool binary, oip_error *err)
{
    uint64_t bad;
    if (o->byte_size != 0 && o->data == NULL)
        return oip_errorf(err, OIP_INTERNAL, "output '%.64s' has no data", o->name);
    if (o->datatype == DS_TYPE_BYTES &&
        !oip_bytes_valid(o->data, o->byte_size, o->element_count, &bad))
        return oip_errorf(err, OIP_INTERNAL, "output '%.64s': malformed BYTES buffer", o->name);
    if (elem_formatter(o->datatype) == NULL && o->datatype != DS_TYPE_BYTES)
        return oip_errorf(err, OIP_INTERNAL, "output '%.64s': invalid datatype", o->name);
    /* JSON text is UTF-8: arbitrary bytes can only travel in the binary extension. */
    if (o->datatype == DS_TYPE_BYTES && !binary && !bytes_elems_are_text(o))
        return oip_errorf(err, OIP_BAD_REQUEST,
                          "output '%.64s' holds bytes that are not UTF-8 text: request it with "
                          "\"parameters\":{\"binary_data\":true}",
                          o->name);
    char num[OIP_FMT_MAX];
    PUT_LIT(b, "{\"name\":");
    put_str(b, o->name);
    PUT_LIT(b, ",\"datatype\":\"");
    buf_append_str(b, oip_datatype_name(o->datatype));
    PUT_LIT(b, "\",\"shape\":");
    put_shape(b, o->shape, o->rank);
    if (binary) {
        PUT_LIT(b, ",\"parameters\":{\"binary_data_size\":");
        buf_append(b, num, oip_fmt_u64(num, o->byte_size));
        PUT_LIT(b, "}}");
        return 0;
    }
    PUT_LIT(b, ",\"data\":[");
    if (o->datatype == DS_TYPE_BYTES)
        put_bytes_elems(b, o);
    else
        put_numbers(b, o);
    PUT_LIT(b, "]}");
    return 0;
}

/* The i-th output to send: requested order when outputs were requested, plugin order otherwise. */
static const oip_output *pick_output(const oip_request *req, const oip_response *resp, uint32_t i,
                                     bool *binary)
{
    if (req != NULL && req->output_count > 0) {
        *binary = req->outputs[i].binary_data;
        return oip_output_find(resp, req->outputs[i].name);
    }
    *binary = req != NULL && req->binary_data_output;
    return &resp->outputs[i];
}

static int put_outputs(ds_buf *out, const oip_request *req, const oip_response *resp, uint32_t n,
                       oip_error *err)
{
    bool binary;
    PUT_LIT(out, ",\"outputs\":[");
    for (uint32_t i = 0; i < n; i++) {
        const oip_output *o = pick_output(req, resp, i, &binary);
        if (o == NULL)
            return oip_errorf(err, OIP_INTERNAL, "requested output '%.64s' was not produced",
                              req->outputs[i].name);
        if (i)
            buf_append_char(out, ',');
        int rc = put_output(out, o, binary, err);
        if (rc != 0)
            return rc;
    }
    PUT_LIT(out, "]}");
    return 0;
}

/* The binary outputs' bytes after the JSON: appended to `out`, or from the first output of at
 * least OIP_SPAN_MIN bytes on recorded in spans[] (the outputs before it are small and are
 * copied, so a small response stays in the body alone). */
static int put_binary(ds_buf *out, const oip_request *req, const oip_response *resp, uint32_t n,
                      oip_spans *spans, oip_error *err)
{
    bool binary;
    size_t tail = 0;
    for (uint32_t i = 0; i < n; i++) {
        const oip_output *o = pick_output(req, resp, i, &binary);
        if (!binary || o->byte_size == 0)
            continue;
        if (spans != NULL && (spans->count > 0 || o->byte_size >= OIP_SPAN_MIN)) {
            if (spans->count >= spans->capacity)
                return oip_errorf(err, OIP_INTERNAL, "too many binary outputs");
            spans->spans[spans->count++] = (ds_span){o->data, o->byte_size};
            tail += o->byte_size;
        } else {
            buf_append(out, o->data, o->byte_size);
        }
    }
    /* spanned bytes count against the cap as if they were appended */
    if (tail > 0 && out->limit != 0 && (out->len > out->limit || tail > out->limit - out->len)) {
        out->failed = true;
        out->over_limit = true;
    }
    return 0;
}

int oip_encode_response(ds_buf *out, const char *model_name, const char *model_version,
                        const oip_request *req, const oip_response *resp, size_t *json_len,
                        oip_error *err)
{
    return oip_encode_response_spans(out, model_name, model_version, req, resp, json_len, NULL,
                                     err);
}

int oip_encode_response_spans(ds_buf *out, const char *model_name, const char *model_version,
                              const oip_request *req, const oip_response *resp, size_t *json_len,
                              oip_spans *spans, oip_error *err)
{
    size_t start = out->len;
    uint32_t n = req != NULL && req->output_count > 0 ? req->output_count : resp->count;
    PUT_LIT(out, "{\"model_name\":");
    put_str(out, model_name ? model_name : "");
    if (model_version != NULL) {
        PUT_LIT(out, ",\"model_version\":");
        put_str(out, model_version);
    }
    if (req != NULL && req->plugin.id != NULL) {
        PUT_LIT(out, ",\"id\":");
        put_str(out, req->plugin.id);
    }
    int rc = put_outputs(out, req, resp, n, err);
    if (rc != 0)
        return rc;
    size_t json_end = out->len;
    if (spans != NULL)
        spans->count = 0;
    rc = put_binary(out, req, resp, n, spans, err);
    if (rc != 0)
        return rc;
    if (out->over_limit)
        return oip_errorf(err, OIP_TOO_LARGE,
                          "the response would be larger than --max-response-bytes (%zu bytes): "
                          "request fewer elements, or the outputs in binary",
                          out->limit);
    if (out->failed)
        return oip_errorf(err, OIP_INTERNAL, "out of memory while encoding the response");
    if (json_len != NULL)
        *json_len = json_end - start;
    return 0;
}

/* ---- model metadata ------------------------------------------------------------------------ */

/* rank -1 ("any rank") has no OIP spelling; [-1] is what Triton reports for a variable shape. */
static void put_io_list(ds_buf *b, const ds_io_desc *ios, uint32_t n)
{
    static const int64_t any_shape[1] = {-1};
    buf_append_char(b, '[');
    for (uint32_t i = 0; ios != NULL && i < n; i++) {
        const ds_io_desc *d = &ios[i];
        if (i)
            buf_append_char(b, ',');
        PUT_LIT(b, "{\"name\":");
        put_str(b, d->name ? d->name : "");
        buf_printf(b, ",\"datatype\":\"%s\",\"shape\":", oip_datatype_name(d->datatype));
        if (d->rank < 0)
            put_shape(b, any_shape, 1);
        else
            put_shape(b, d->shape, d->rank > DS_MAX_RANK ? DS_MAX_RANK : (uint32_t)d->rank);
        buf_append_char(b, '}');
    }
    buf_append_char(b, ']');
}

void oip_encode_model_metadata(ds_buf *out, const char *name, const char *const *versions,
                               size_t version_count, const ds_model_desc *model,
                               const char *backend)
{
    PUT_LIT(out, "{\"name\":");
    put_str(out, name ? name : "");
    PUT_LIT(out, ",\"versions\":[");
    for (size_t i = 0; versions != NULL && i < version_count; i++) {
        if (i)
            buf_append_char(out, ',');
        put_str(out, versions[i] ? versions[i] : "");
    }
    PUT_LIT(out, "],\"platform\":");
    put_str(out, model && model->platform ? model->platform : "");
    if (backend != NULL && backend[0] != '\0') {
        PUT_LIT(out, ",\"backend\":");
        put_str(out, backend);
    }
    PUT_LIT(out, ",\"inputs\":");
    put_io_list(out, model ? model->inputs : NULL, model ? model->input_count : 0);
    PUT_LIT(out, ",\"outputs\":");
    put_io_list(out, model ? model->outputs : NULL, model ? model->output_count : 0);
    buf_append_char(out, '}');
}
