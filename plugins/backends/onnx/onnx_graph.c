/*
 * onnx_graph: a bounded protobuf wire-format reader for the IO of an ONNX graph (see the header).
 *
 * Wire format in one paragraph: a message is a sequence of (key, value) pairs; key is a varint
 * (field_number << 3 | wire_type); wire type 0 is a varint, 1 is 8 bytes, 2 is a varint length
 * followed by that many bytes (strings and sub-messages), 5 is 4 bytes. Groups (3, 4) are
 * obsolete and refused. A reader walks a [pos, end) window and descends into length-delimited
 * fields by narrowing the window, so no read ever leaves the caller's buffer.
 */
#include "onnx_graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct pb {
    const uint8_t *p, *end;
} pb;

typedef struct pb_field {
    uint32_t number;
    uint32_t wire;
    uint64_t varint; /* wire 0 */
    pb sub;          /* wire 2: the bytes */
} pb_field;

typedef struct ctx {
    char *err;
    size_t errlen;
} ctx;

__attribute__((format(printf, 2, 3))) static int fail(const ctx *c, const char *fmt, ...)
{
    if (c->err != NULL && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int pb_varint(pb *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

/* Next field of the message in r. 1 = got one, 0 = end of message, -1 = malformed. */
static int pb_next(pb *r, pb_field *f)
{
    *f = (pb_field){0}; /* every member defined whatever the wire type (gcc -O3 checks) */
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (pb_varint(r, &key) != 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    uint64_t n;
    switch (f->wire) {
    case 0: return pb_varint(r, &f->varint) == 0 ? 1 : -1;
    case 1: n = 8; break;
    case 5: n = 4; break;
    case 2:
        if (pb_varint(r, &n) != 0)
            return -1;
        break;
    default: return -1;
    }
    if (n > (uint64_t)(r->end - r->p))
        return -1;
    f->sub.p = r->p;
    f->sub.end = r->p + n;
    r->p += n;
    return 1;
}

/* Copy a string field into name (NUL-terminated). -1 when too long. */
static int pb_name(const pb *s, char name[ONNX_GRAPH_MAX_NAME + 1])
{
    size_t n = (size_t)(s->end - s->p);
    if (n > ONNX_GRAPH_MAX_NAME)
        return -1;
    memcpy(name, s->p, n);
    name[n] = '\0';
    return 0;
}

/* TensorShapeProto: repeated Dimension dim = 1 { int64 dim_value = 1; string dim_param = 2 }. */
static int read_shape(const ctx *c, pb r, onnx_value *v)
{
    pb_field f;
    int rc;
    v->rank = 0;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.number != 1 || f.wire != 2)
            continue;
        if (v->rank >= ONNX_GRAPH_MAX_RANK)
            return fail(c, "'%s' has more than %d dimensions", v->name, ONNX_GRAPH_MAX_RANK);
        int64_t dim = -1;
        pb_field d;
        pb dr = f.sub;
        while ((rc = pb_next(&dr, &d)) == 1) {
            if (d.number == 1 && d.wire == 0)
                dim = (int64_t)d.varint >= 0 ? (int64_t)d.varint : -1;
        }
        if (rc < 0)
            return fail(c, "malformed dimension of '%s'", v->name);
        v->shape[v->rank++] = dim;
    }
    return rc < 0 ? fail(c, "malformed shape of '%s'", v->name) : 0;
}

/* TypeProto { Tensor tensor_type = 1 { int32 elem_type = 1; TensorShapeProto shape = 2 } }. */
static int read_type(const ctx *c, pb r, onnx_value *v)
{
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.number != 1 || f.wire != 2)
            continue; /* sequence, map, optional types: not a tensor */
        pb t = f.sub;
        pb_field g;
        while ((rc = pb_next(&t, &g)) == 1) {
            if (g.number == 1 && g.wire == 0)
                v->elem_type = (int32_t)g.varint;
            else if (g.number == 2 && g.wire == 2 && read_shape(c, g.sub, v) != 0)
                return -1;
        }
        if (rc < 0)
            break;
    }
    return rc < 0 ? fail(c, "malformed type of '%s'", v->name) : 0;
}

/* ValueInfoProto { string name = 1; TypeProto type = 2 }. */
static int read_value_info(const ctx *c, pb r, onnx_value *v)
{
    memset(v, 0, sizeof *v);
    v->rank = -1;
    pb_field f;
    int rc;
    pb type = {NULL, NULL};
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.number == 1 && f.wire == 2 && pb_name(&f.sub, v->name) != 0)
            return fail(c, "an input or output name is longer than %d bytes", ONNX_GRAPH_MAX_NAME);
        if (f.number == 2 && f.wire == 2)
            type = f.sub;
    }
    if (rc < 0)
        return fail(c, "malformed input/output description");
    if (v->name[0] == '\0')
        return fail(c, "an input or output has no name");
    return type.p != NULL ? read_type(c, type, v) : 0;
}

/* TensorProto.name is field 8. */
static int initializer_name(pb r, char name[ONNX_GRAPH_MAX_NAME + 1])
{
    pb_field f;
    int rc;
    name[0] = '\0';
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.number == 8 && f.wire == 2)
            return pb_name(&f.sub, name) == 0 ? 0 : 1; /* too long: cannot match an input */
    }
    return rc < 0 ? -1 : 0;
}

static void drop_input(onnx_io *io, const char *name)
{
    for (uint32_t i = 0; i < io->input_count; i++) {
        if (strcmp(io->inputs[i].name, name) == 0) {
            memmove(&io->inputs[i], &io->inputs[i + 1],
                    (io->input_count - i - 1) * sizeof io->inputs[0]);
            io->input_count--;
            return;
        }
    }
}

/* GraphProto: initializer = 5, input = 11, output = 12. Two passes: IO, then initializers. */
static int read_graph(const ctx *c, pb g, onnx_io *io)
{
    pb r = g;
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.wire != 2 || (f.number != 11 && f.number != 12))
            continue;
        int in = f.number == 11;
        uint32_t *n = in ? &io->input_count : &io->output_count;
        if (*n >= ONNX_GRAPH_MAX_IO)
            return fail(c, "graph has more than %d %ss", ONNX_GRAPH_MAX_IO,
                        in ? "input" : "output");
        if (read_value_info(c, f.sub, in ? &io->inputs[*n] : &io->outputs[*n]) != 0)
            return -1;
        (*n)++;
    }
    if (rc < 0)
        return fail(c, "malformed graph");
    for (r = g; (rc = pb_next(&r, &f)) == 1;) {
        char name[ONNX_GRAPH_MAX_NAME + 1];
        if (f.number != 5 || f.wire != 2)
            continue;
        int got = initializer_name(f.sub, name);
        if (got < 0)
            return fail(c, "malformed initializer");
        if (got == 0 && name[0] != '\0')
            drop_input(io, name);
    }
    return rc < 0 ? fail(c, "malformed graph") : 0;
}

int onnx_graph_io(const uint8_t *buf, size_t len, onnx_io *io, char *err, size_t errlen)
{
    ctx c = {err, errlen};
    if (buf == NULL || io == NULL)
        return fail(&c, "no data");
    memset(io, 0, sizeof *io);
    pb r = {buf, buf + len};
    pb_field f;
    int rc, graphs = 0;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.number != 7 || f.wire != 2)
            continue; /* ModelProto.graph = 7 */
        if (graphs++ > 0 || read_graph(&c, f.sub, io) != 0)
            return graphs > 1 ? fail(&c, "more than one graph") : -1;
    }
    if (rc < 0)
        return fail(&c, "not an ONNX model (malformed protobuf)");
    if (graphs == 0)
        return fail(&c, "not an ONNX model (no graph)");
    if (io->input_count == 0 || io->output_count == 0)
        return fail(&c, "graph declares %u inputs and %u outputs; needs at least one of each",
                    io->input_count, io->output_count);
    return 0;
}
