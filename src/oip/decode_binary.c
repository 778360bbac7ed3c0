/*
 * oip decode binary: the binary tensor data extension. With Inference-Header-Content-Length the
 * JSON is the first header_len bytes; inputs with "binary_data_size" take their bytes from what
 * follows, in input order: in place when 16-byte aligned (src/http places the body so), else
 * copied into the arena. See decode.c.
 */
#include "decode_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- binary tensor data -------------------------------------------------------------------- */

static int binary_input(oip_dec *d, oip_in *in, const char *bin, size_t left)
{
    char label[96], s[96];
    uint64_t size = (uint64_t)in->binary_size, bad = 0;
    size_t esize = oip_datatype_size(in->t.datatype);
    dec__in_label(in, label, sizeof label); /* once per binary input, not per element */
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
    /* In place when aligned like an arena block (the HTTP layer places the body so that the
     * binary part starts 16-byte aligned): the body outlives the request's execute and nobody
     * writes to it. Otherwise a copy into the arena. */
    const unsigned char *dst = (const unsigned char *)bin;
    if (((uintptr_t)bin & 15) != 0) {
        unsigned char *copy = oip_arena_alloc(d->a, (size_t)size);
        if (copy == NULL)
            return dec__oom(d);
        memcpy(copy, bin, (size_t)size);
        dst = copy;
    }
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
int dec__attach_binary(oip_dec *d, const char *bin, size_t len, bool have_header)
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
