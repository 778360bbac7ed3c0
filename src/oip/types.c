/*
 * oip types: errors, limits, datatype names and sizes, shapes and element counts, the BYTES
 * layout check and output lookup. A leaf of the oip module: decode, check and encode use it.
 */
#include "oip_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors, limits, datatypes ------------------------------------------------------------- */

const oip_limits oip_default_limits = {
    .max_elements = (uint64_t)64 << 20,
    .max_depth = 32,
    .max_tensors = 128,
};

int oip_errorf(oip_error *err, oip_code code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return (int)code;
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

/* ---- responses ---------------------------------------------------------------------------- */

const oip_output *oip_output_find(const oip_response *resp, const char *name)
{
    for (uint32_t i = 0; i < resp->count; i++)
        if (strcmp(resp->outputs[i].name, name) == 0)
            return &resp->outputs[i];
    return NULL;
}
