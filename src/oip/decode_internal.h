/*
 * decode_internal: what the three files of the request decoder share, private to src/oip/.
 *
 *   decode_scan.c    the JSON scanner: strings, literals, objects, arrays, the iterative skipper,
 *                    error labels;
 *   decode.c         the OIP schema on top of it: parameters, tensor data, inputs, requested
 *                    outputs, the request object, oip_decode_request;
 *   decode_binary.c  the binary tensor data extension (bytes after the JSON).
 *
 * Helpers are named dec__* (internal). Everything works on one oip_dec, the state of one
 * decode on one thread.
 */
#ifndef DS_DECODE_INTERNAL_H
#define DS_DECODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oip_internal.h"

/* "The outermost container closed": a loop's non-error result, distinct from 0 (continue) and
 * from every oip_code (errors), which helpers return as they are. */
#define DEC_DONE (-1)

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

static inline void ws(oip_dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

static inline int peek(const oip_dec *d)
{
    return d->p < d->end ? (unsigned char)*d->p : -1;
}

/* Bytes a string holds as they are: anything but control characters, '"' and '\\'. */
static inline bool str_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

/* ---- decode_scan.c ---- */

int dec__json_fail(oip_dec *d, const char *what);
int dec__depth_fail(oip_dec *d);
int dec__oom(oip_dec *d);
bool dec__literal(oip_dec *d, const char *lit, size_t n);
int dec__str_scan(oip_dec *d, oip_str *s);
size_t dec__str_unescape(const oip_str *s, char *dst);
int dec__string_value(oip_dec *d, const char **out, const char *what);
int dec__bool_value(oip_dec *d, bool *out, const char *what);
int dec__obj_open(oip_dec *d, uint32_t depth, const char *what);
int dec__obj_next(oip_dec *d, bool *first, oip_str *key, char keybuf[128], bool *more);
bool dec__key_is(const oip_str *k, const char *name);
int dec__arr_open(oip_dec *d, uint32_t depth, const char *what);
int dec__arr_next(oip_dec *d, bool *first, bool *more);
int dec__skip_scalar(oip_dec *d);
int dec__skip_value(oip_dec *d, uint32_t depth);
const char *dec__in_label(const oip_in *in, char *buf, size_t cap);
int dec__in_fail(oip_dec *d, const oip_in *in, const char *label, oip_code code, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
int dec__uint_value(oip_dec *d, uint64_t max, uint64_t *out);

/* ---- decode_binary.c ---- */

int dec__attach_binary(oip_dec *d, const char *bin, size_t len, bool have_header);

#endif
