/*
 * oip: the Open Inference Protocol v2 REST codec (see oip.h) — arena, datatypes, checks of
 * requests and plugin outputs, output_alloc, and the response and metadata encoders. The request
 * decoder lives in oip_json.c and the number conversions in oip_num.c (map: oip_internal.h).
 *
 * Arena. A list of malloc'd chunks; allocations bump a pointer in the head chunk. A block larger
 * than a quarter of the next chunk size gets a chunk of its own, linked behind the head so small
 * allocations keep filling the head. Reset keeps the largest chunk up to OIP_ARENA_KEEP bytes, so
 * a worker that serves similar requests mallocs nothing once warm, and one huge request does not
 * pin its memory forever.
 *
 * Response JSON conventions (documented for clients):
 *   - "data" is flat, row-major; FP16/FP32/FP64 print the shortest decimal that reads back as the
 *     same value of that width ("6.0" for integral values); NaN and infinities print as the bare
 *     tokens NaN, Infinity, -Infinity, as Triton does (rapidjson's kWriteNanAndInfFlag) and as
 *     Python's json module reads and writes them.
 *   - BYTES elements are JSON strings holding the raw bytes (escaped where JSON requires; bytes
 * that are not UTF-8 pass through, as in Triton); BOOL is true/false.
 *   - "id" appears only when the request had one; response "parameters" are never echoed.
 */
#include "oip_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena --------------------------------------------------------------------------------- */

#define OIP_CHUNK_MIN  ((size_t)64 * 1024)
#define OIP_CHUNK_MAX  ((size_t)4 * 1024 * 1024) /* growth cap of shared chunks */
#define OIP_ARENA_KEEP ((size_t)1024 * 1024)     /* kept across resets */

typedef struct oip_chunk {
    struct oip_chunk *next;
    size_t size; /* usable bytes after the header, a multiple of 16 */
    size_t used;
    size_t pad; /* keeps the header 32 bytes, so data stays 16-byte aligned */
} oip_chunk;

_Static_assert(sizeof(oip_chunk) % 16 == 0, "chunk data must stay 16-byte aligned");

struct oip_arena {
    oip_chunk *head; /* serves small allocations */
    void *last;      /* most recent allocation in head, for in-place growth */
};

static unsigned char *chunk_data(oip_chunk *c)
{
    return (unsigned char *)(c + 1);
}

/* Owned by the arena; NULL when memory runs out. */
static oip_chunk *chunk_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(oip_chunk))
        return NULL;
    oip_chunk *c = malloc(sizeof(oip_chunk) + size);
    if (c != NULL)
        *c = (oip_chunk){.size = size};
    return c;
}

oip_arena *oip_arena_new(void)
{
    return calloc(1, sizeof(oip_arena));
}

void oip_arena_free(oip_arena *a)
{
    if (a == NULL)
        return;
    for (oip_chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void oip_arena_reset(oip_arena *a)
{
    oip_chunk *keep = NULL;
    for (oip_chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        if (c->size <= OIP_ARENA_KEEP && (keep == NULL || c->size > keep->size)) {
            free(keep);
            keep = c;
        } else {
            free(c);
        }
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->last = NULL;
}

static void *arena_alloc_slow(oip_arena *a, size_t n)
{
    size_t size = a->head ? a->head->size * 2 : OIP_CHUNK_MIN;
    size = size < OIP_CHUNK_MIN ? OIP_CHUNK_MIN : size > OIP_CHUNK_MAX ? OIP_CHUNK_MAX : size;
    bool own = n > size / 4; /* big blocks get a chunk of their own */
    oip_chunk *c = chunk_new(own ? n : size);
    if (c == NULL)
        return NULL;
    c->used = n;
    if (own && a->head != NULL) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
        a->last = chunk_data(c);
    }
    return chunk_data(c);
}

void *oip_arena_alloc(oip_arena *a, size_t n)
{
    if (n > SIZE_MAX - 15)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    oip_chunk *h = a->head;
    if (h != NULL && h->size - h->used >= n) {
        void *p = chunk_data(h) + h->used;
        h->used += n;
        a->last = p;
        return p;
    }
    return arena_alloc_slow(a, n);
}

void *oip_arena_grow(oip_arena *a, void *p, size_t old_size, size_t new_size)
{
    if (p == NULL)
        return oip_arena_alloc(a, new_size);
    oip_chunk *h = a->head;
    if (h != NULL && p == a->last) {
        size_t off = (size_t)((unsigned char *)p - chunk_data(h));
        if (new_size <= h->size - off) {
            h->used = off + ((new_size + 15) & ~(size_t)15);
            return p;
        }
    }
    void *q = oip_arena_alloc(a, new_size);
    if (q != NULL)
        memcpy(q, p, old_size < new_size ? old_size : new_size);
    return q;
}

char *oip_arena_strndup(oip_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = oip_arena_alloc(a, n + 1);
    if (d != NULL) {
        if (n != 0)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- errors, limits, datatypes ------------------------------------------------------------- */

const oip_limits oip_default_limits = {
    .max_elements = (uint64_t)64 << 20,
    .max_depth = 32,
    .max_tensors = 128,
};

int oip_errorf(oip_error *err, int status, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *oip_shape_str(char *buf, size_t cap, const int64_t *shape, uint32_t rank)
{
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf, cap, "[");
    for (uint32_t i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "]");
    if (n >= cap && cap >= 5)
        memcpy(buf + cap - 5, "...]", 5);
    return buf;
}

bool oip_element_count(const int64_t *shape, uint32_t rank, uint64_t *count)
{
    uint64_t n = 1;
    bool zero = false, overflow = false;
    for (uint32_t i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return false;
        uint64_t d = (uint64_t)shape[i];
        zero |= d == 0;
        if (d != 0 && n > UINT64_MAX / d)
            overflow = true;
        else
            n *= d;
    }
    *count = zero ? 0 : n;
    return zero || !overflow; /* [0, 2^40, 2^40] is a fine empty tensor */
}

bool oip_bytes_valid(const unsigned char *p, size_t size, uint64_t count, uint64_t *bad)
{
    size_t off = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (size - off < 4) {
            *bad = i;
            return false;
        }
        uint32_t n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                     (uint32_t)p[off + 3] << 24;
        off += 4;
        if (n > size - off) {
            *bad = i;
            return false;
        }
        off += n;
    }
    *bad = count;
    return off == size;
}

static const char *const oip_type_names[] = {
    [DS_TYPE_BOOL] = "BOOL",     [DS_TYPE_UINT8] = "UINT8",   [DS_TYPE_UINT16] = "UINT16",
    [DS_TYPE_UINT32] = "UINT32", [DS_TYPE_UINT64] = "UINT64", [DS_TYPE_INT8] = "INT8",
    [DS_TYPE_INT16] = "INT16",   [DS_TYPE_INT32] = "INT32",   [DS_TYPE_INT64] = "INT64",
    [DS_TYPE_FP16] = "FP16",     [DS_TYPE_FP32] = "FP32",     [DS_TYPE_FP64] = "FP64",
    [DS_TYPE_BYTES] = "BYTES",   [DS_TYPE_ANY] = "ANY",
};

const char *oip_datatype_name(ds_datatype t)
{
    if ((unsigned)t >= sizeof oip_type_names / sizeof *oip_type_names || !oip_type_names[t])
        return "INVALID";
    return oip_type_names[t];
}

/* "ANY" is metadata only: a request or output never has it. */
ds_datatype oip_datatype_parse(const char *s, size_t n)
{
    if (n < 4 || n > 6)
        return DS_TYPE_INVALID;
    for (int t = DS_TYPE_BOOL; t <= DS_TYPE_BYTES; t++) {
        const char *name = oip_type_names[t];
        if (name[0] == s[0] && strlen(name) == n && memcmp(name, s, n) == 0)
            return (ds_datatype)t;
    }
    return DS_TYPE_INVALID;
}

size_t oip_datatype_size(ds_datatype t)
{
    switch (t) {
    case DS_TYPE_BOOL:
    case DS_TYPE_UINT8:
    case DS_TYPE_INT8: return 1;
    case DS_TYPE_UINT16:
    case DS_TYPE_INT16:
    case DS_TYPE_FP16: return 2;
    case DS_TYPE_UINT32:
    case DS_TYPE_INT32:
    case DS_TYPE_FP32: return 4;
    case DS_TYPE_UINT64:
    case DS_TYPE_INT64:
    case DS_TYPE_FP64: return 8;
    default: return 0;
    }
}

/* ---- checks against the model -------------------------------------------------------------- */

static bool model_is_dynamic(const ds_model_desc *model)
{
    return model == NULL || (model->flags & DS_MODEL_DYNAMIC_IO) != 0;
}

static const ds_io_desc *io_find(const ds_io_desc *ios, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (ios[i].name != NULL && strcmp(ios[i].name, name) == 0)
            return &ios[i];
    return NULL;
}

/* Datatype, rank and fixed dims of a tensor against its declaration; 0 or `status`. */
static int io_match(const char *kind, const char *name, ds_datatype dt, uint32_t rank,
                    const int64_t *shape, const ds_io_desc *d, int status, oip_error *err)
{
    char got[96], want[96];
    if (d->datatype != DS_TYPE_ANY && d->datatype != dt)
        return oip_errorf(err, status, "%s '%.64s': datatype %s does not match the model's %s",
                          kind, name, oip_datatype_name(dt), oip_datatype_name(d->datatype));
    if (d->rank < 0)
        return 0;
    uint32_t drank = (uint32_t)d->rank > DS_MAX_RANK ? DS_MAX_RANK : (uint32_t)d->rank;
    oip_shape_str(got, sizeof got, shape, rank);
    oip_shape_str(want, sizeof want, d->shape, drank);
    if ((uint32_t)d->rank != rank)
        return oip_errorf(err, status, "%s '%.64s': shape %s has rank %u, the model expects %s",
                          kind, name, got, rank, want);
    for (uint32_t i = 0; i < rank; i++)
        if (d->shape[i] != -1 && d->shape[i] != shape[i])
            return oip_errorf(err, status,
                              "%s '%.64s': dimension %u of shape %s must be %lld (model shape %s)",
                              kind, name, i, got, (long long)d->shape[i], want);
    return 0;
}

static int check_duplicate_inputs(const oip_request *req, oip_error *err)
{
    for (uint32_t i = 0; i < req->plugin.input_count; i++)
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(req->inputs[i].name, req->inputs[j].name) == 0)
                return oip_errorf(err, 400, "duplicate input '%.64s'", req->inputs[i].name);
    return 0;
}

static const ds_tensor *input_find(const oip_request *req, const char *name)
{
    for (uint32_t i = 0; i < req->plugin.input_count; i++)
        if (strcmp(req->inputs[i].name, name) == 0)
            return &req->inputs[i];
    return NULL;
}

int oip_check_request(const oip_request *req, const ds_model_desc *model, oip_error *err)
{
    int rc = check_duplicate_inputs(req, err);
    if (rc != 0 || model_is_dynamic(model))
        return rc;
    for (uint32_t i = 0; i < model->input_count; i++) {
        const ds_io_desc *d = &model->inputs[i];
        const ds_tensor *t = input_find(req, d->name);
        if (t == NULL)
            return oip_errorf(err, 400, "missing input '%.64s'", d->name);
        rc = io_match("input", t->name, t->datatype, t->rank, t->shape, d, 400, err);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; i < req->plugin.input_count; i++)
        if (io_find(model->inputs, model->input_count, req->inputs[i].name) == NULL)
            return oip_errorf(err, 400, "unexpected input '%.64s': the model has no such input",
                              req->inputs[i].name);
    for (uint32_t i = 0; i < req->output_count; i++)
        if (io_find(model->outputs, model->output_count, req->outputs[i].name) == NULL)
            return oip_errorf(err, 400, "unknown output '%.64s': the model has no such output",
                              req->outputs[i].name);
    return 0;
}

/* ---- outputs ------------------------------------------------------------------------------- */

void oip_response_init(oip_response *r, oip_arena *a)
{
    *r = (oip_response){.arena = a};
}

static const oip_output *output_find(const oip_response *resp, const char *name)
{
    for (uint32_t i = 0; i < resp->count; i++)
        if (strcmp(resp->outputs[i].name, name) == 0)
            return &resp->outputs[i];
    return NULL;
}

/* Datatype, shape and byte_size of a new output; DS_OK or DS_ERR_INVALID_ARGUMENT. */
static ds_status output_validate(const char *name, ds_datatype dt, uint32_t rank,
                                 const int64_t *shape, size_t byte_size, uint64_t *count,
                                 ds_error *err)
{
    char s[96];
    if (dt <= DS_TYPE_INVALID || dt >= DS_TYPE_ANY)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "output '%.64s': invalid datatype %d",
                            name, (int)dt);
    if (rank > DS_MAX_RANK || (rank > 0 && shape == NULL))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "output '%.64s': rank %u needs a shape of at most %d dims", name, rank,
                            DS_MAX_RANK);
    if (!oip_element_count(shape, rank, count))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "output '%.64s': shape %s has negative or too large dims", name,
                            oip_shape_str(s, sizeof s, shape, rank));
    size_t esize = oip_datatype_size(dt);
    if (dt == DS_TYPE_BYTES) {
        bool ok = *count == 0 ? byte_size == 0 : *count <= byte_size / 4;
        if (!ok)
            return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                                "output '%.64s': byte_size %zu cannot hold %llu BYTES elements "
                                "(4-byte length each)",
                                name, byte_size, (unsigned long long)*count);
    } else if (*count > SIZE_MAX / esize || *count * esize != byte_size) {
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "output '%.64s': byte_size %zu does not match shape %s of %s "
                            "(%llu bytes)",
                            name, byte_size, oip_shape_str(s, sizeof s, shape, rank),
                            oip_datatype_name(dt), (unsigned long long)(*count * esize));
    }
    return DS_OK;
}

static bool outputs_reserve(oip_response *resp)
{
    if (resp->count < resp->capacity)
        return true;
    uint32_t cap = resp->capacity ? resp->capacity * 2 : 4;
    oip_output *o =
        oip_arena_grow(resp->arena, resp->outputs, resp->count * sizeof *o, cap * sizeof *o);
    if (o == NULL)
        return false;
    resp->outputs = o;
    resp->capacity = cap;
    return true;
}

/* The buffer and the copies of name and shape live in resp->arena until its next reset. */
void *oip_output_alloc(ds_infer_response *resp, const char *name, ds_datatype datatype,
                       uint32_t rank, const int64_t *shape, size_t byte_size, ds_error *err)
{
    uint64_t count = 0;
    if (resp == NULL || resp->arena == NULL) {
        ds_error_set(err, DS_ERR_INTERNAL, "output_alloc: no response");
        return NULL;
    }
    if (name == NULL || name[0] == '\0') {
        ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "output_alloc: empty output name");
        return NULL;
    }
    if (output_validate(name, datatype, rank, shape, byte_size, &count, err) != DS_OK)
        return NULL;
    if (output_find(resp, name) != NULL) {
        ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "output '%.64s' is already allocated", name);
        return NULL;
    }
    char *copy = oip_arena_strndup(resp->arena, name, strlen(name));
    void *data = oip_arena_alloc(resp->arena, byte_size);
    if (copy == NULL || data == NULL || !outputs_reserve(resp)) {
        ds_error_set(err, DS_ERR_NO_MEMORY, "output '%.64s': out of memory (%zu bytes)", name,
                     byte_size);
        return NULL;
    }
    memset(data, 0, byte_size);
    oip_output *o = &resp->outputs[resp->count++];
    *o = (oip_output){.name = copy,
                      .datatype = datatype,
                      .rank = rank,
                      .data = data,
                      .byte_size = byte_size,
                      .element_count = count};
    if (rank > 0)
        memcpy(o->shape, shape, rank * sizeof *shape);
    return data;
}

/* BYTES prefixes and BOOL values inside the buffer; 0 or 500. */
static int output_contents_ok(const oip_output *o, oip_error *err)
{
    const unsigned char *p = o->data;
    uint64_t bad = 0;
    if (o->datatype == DS_TYPE_BYTES && !oip_bytes_valid(p, o->byte_size, o->element_count, &bad))
        return bad < o->element_count
                   ? oip_errorf(err, 500,
                                "output '%.64s': BYTES element %llu runs past the end of the "
                                "buffer (byte_size %zu)",
                                o->name, (unsigned long long)bad, o->byte_size)
                   : oip_errorf(err, 500, "output '%.64s': BYTES elements end before byte_size %zu",
                                o->name, o->byte_size);
    if (o->datatype == DS_TYPE_BOOL)
        for (size_t i = 0; i < o->byte_size; i++)
            if (p[i] > 1)
                return oip_errorf(err, 500, "output '%.64s': BOOL element %zu is %u, not 0 or 1",
                                  o->name, i, p[i]);
    return 0;
}

int oip_check_response(const oip_response *resp, const oip_request *req, const ds_model_desc *model,
                       oip_error *err)
{
    bool dynamic = model_is_dynamic(model);
    for (uint32_t i = 0; i < resp->count; i++) {
        const oip_output *o = &resp->outputs[i];
        if (!dynamic) {
            const ds_io_desc *d = io_find(model->outputs, model->output_count, o->name);
            if (d == NULL)
                return oip_errorf(err, 500, "the model produced undeclared output '%.64s'",
                                  o->name);
            int rc = io_match("output", o->name, o->datatype, o->rank, o->shape, d, 500, err);
            if (rc != 0)
                return rc;
        }
        int rc = output_contents_ok(o, err);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; req != NULL && i < req->output_count; i++) {
        if (output_find(resp, req->outputs[i].name) != NULL)
            continue;
        /* A declared output was checked to exist, so its absence is the plugin's fault; a model
         * without declared outputs cannot tell the client beforehand, so that is a 400. */
        return dynamic ? oip_errorf(err, 400, "requested output '%.64s' was not produced",
                                    req->outputs[i].name)
                       : oip_errorf(err, 500, "the model did not produce requested output '%.64s'",
                                    req->outputs[i].name);
    }
    return 0;
}

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
        return oip_errorf(err, 500, "output '%.64s' has no data", o->name);
    if (o->datatype == DS_TYPE_BYTES &&
        !oip_bytes_valid(o->data, o->byte_size, o->element_count, &bad))
        return oip_errorf(err, 500, "output '%.64s': malformed BYTES buffer", o->name);
    if (elem_formatter(o->datatype) == NULL && o->datatype != DS_TYPE_BYTES)
        return oip_errorf(err, 500, "output '%.64s': invalid datatype", o->name);
    /* JSON text is UTF-8: arbitrary bytes can only travel in the binary extension. */
    if (o->datatype == DS_TYPE_BYTES && !binary && !bytes_elems_are_text(o))
        return oip_errorf(err, 400,
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
        return output_find(resp, req->outputs[i].name);
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
            return oip_errorf(err, 500, "requested output '%.64s' was not produced",
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

int oip_encode_response(ds_buf *out, const char *model_name, const char *model_version,
                        const oip_request *req, const oip_response *resp, size_t *json_len,
                        oip_error *err)
{
    size_t start = out->len;
    bool binary;
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
    for (uint32_t i = 0; i < n; i++) {
        const oip_output *o = pick_output(req, resp, i, &binary);
        if (binary)
            buf_append(out, o->data, o->byte_size);
    }
    if (out->failed)
        return oip_errorf(err, 500, "out of memory while encoding the response");
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
                               size_t version_count, const ds_model_desc *model)
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
    PUT_LIT(out, ",\"inputs\":");
    put_io_list(out, model ? model->inputs : NULL, model ? model->input_count : 0);
    PUT_LIT(out, ",\"outputs\":");
    put_io_list(out, model ? model->outputs : NULL, model ? model->output_count : 0);
    buf_append_char(out, '}');
}
