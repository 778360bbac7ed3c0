/*
 * oip check: decoded requests against the model's declared inputs, the output_alloc that plugins
 * call, and the plugin's outputs against its declared outputs (see oip.h). Built on the leaves
 * (arena, types, text); never on decode or encode.
 */
#include "oip_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Datatype, rank and fixed dims of a tensor against its declaration; OIP_OK or `code`. */
static int io_match(const char *kind, const char *name, ds_datatype dt, uint32_t rank,
                    const int64_t *shape, const ds_io_desc *d, oip_code code, oip_error *err)
{
    if (d->datatype != DS_TYPE_ANY && d->datatype != dt)
        return oip_errorf(err, code, "%s '%.64s': datatype %s does not match the model's %s", kind,
                          name, oip_datatype_name(dt), oip_datatype_name(d->datatype));
    if (d->rank < 0)
        return 0;
    uint32_t bad = rank; /* the first dimension that does not match, rank = none */
    for (uint32_t i = 0; i < rank && (uint32_t)d->rank == rank; i++)
        if (d->shape[i] != -1 && d->shape[i] != shape[i]) {
            bad = i;
            break;
        }
    if ((uint32_t)d->rank == rank && bad == rank)
        return 0;
    /* the shapes are printed only for the message: every request passes here */
    char got[96], want[96];
    uint32_t drank = (uint32_t)d->rank > DS_MAX_RANK ? DS_MAX_RANK : (uint32_t)d->rank;
    oip_shape_str(got, sizeof got, shape, rank);
    oip_shape_str(want, sizeof want, d->shape, drank);
    if ((uint32_t)d->rank != rank)
        return oip_errorf(err, code, "%s '%.64s': shape %s has rank %u, the model expects %s", kind,
                          name, got, rank, want);
    return oip_errorf(err, code,
                      "%s '%.64s': dimension %u of shape %s must be %lld (model shape %s)", kind,
                      name, bad, got, (long long)d->shape[bad], want);
}

static int check_duplicate_inputs(const oip_request *req, oip_error *err)
{
    for (uint32_t i = 0; i < req->plugin.input_count; i++)
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(req->inputs[i].name, req->inputs[j].name) == 0)
                return oip_errorf(err, OIP_BAD_REQUEST, "duplicate input '%.64s'",
                                  req->inputs[i].name);
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
            return oip_errorf(err, OIP_BAD_REQUEST, "missing input '%.64s'", d->name);
        rc = io_match("input", t->name, t->datatype, t->rank, t->shape, d, OIP_BAD_REQUEST, err);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; i < req->plugin.input_count; i++)
        if (io_find(model->inputs, model->input_count, req->inputs[i].name) == NULL)
            return oip_errorf(err, OIP_BAD_REQUEST,
                              "unexpected input '%.64s': the model has no such input",
                              req->inputs[i].name);
    for (uint32_t i = 0; i < req->output_count; i++)
        if (io_find(model->outputs, model->output_count, req->outputs[i].name) == NULL)
            return oip_errorf(err, OIP_BAD_REQUEST,
                              "unknown output '%.64s': the model has no such output",
                              req->outputs[i].name);
    return 0;
}

/* ---- outputs ------------------------------------------------------------------------------- */

void oip_response_init(oip_response *r, oip_arena *a)
{
    *r = (oip_response){.arena = a};
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
    if (oip_output_find(resp, name) != NULL) {
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

/* BYTES prefixes and BOOL values inside the buffer; 0 or OIP_INTERNAL. */
static int output_contents_ok(const oip_output *o, oip_error *err)
{
    const unsigned char *p = o->data;
    uint64_t bad = 0;
    if (o->datatype == DS_TYPE_BYTES && !oip_bytes_valid(p, o->byte_size, o->element_count, &bad))
        return bad < o->element_count
                   ? oip_errorf(err, OIP_INTERNAL,
                                "output '%.64s': BYTES element %llu runs past the end of the "
                                "buffer (byte_size %zu)",
                                o->name, (unsigned long long)bad, o->byte_size)
                   : oip_errorf(err, OIP_INTERNAL,
                                "output '%.64s': BYTES elements end before byte_size %zu", o->name,
                                o->byte_size);
    if (o->datatype == DS_TYPE_BOOL)
        for (size_t i = 0; i < o->byte_size; i++)
            if (p[i] > 1)
                return oip_errorf(err, OIP_INTERNAL,
                                  "output '%.64s': BOOL element %zu is %u, not 0 or 1", o->name, i,
                                  p[i]);
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
                return oip_errorf(err, OIP_INTERNAL, "the model produced undeclared output '%.64s'",
                                  o->name);
            int rc =
                io_match("output", o->name, o->datatype, o->rank, o->shape, d, OIP_INTERNAL, err);
            if (rc != 0)
                return rc;
        }
        int rc = output_contents_ok(o, err);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; req != NULL && i < req->output_count; i++) {
        if (oip_output_find(resp, req->outputs[i].name) != NULL)
            continue;
        /* A declared output was checked to exist, so its absence is the plugin's fault; a model
         * without declared outputs cannot tell the client beforehand, so that is a OIP_BAD_REQUEST.
         */
        return dynamic
                   ? oip_errorf(err, OIP_BAD_REQUEST, "requested output '%.64s' was not produced",
                                req->outputs[i].name)
                   : oip_errorf(err, OIP_INTERNAL,
                                "the model did not produce requested output '%.64s'",
                                req->outputs[i].name);
    }
    return 0;
}
