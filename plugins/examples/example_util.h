/*
 * example_util.h: the helpers the bundled example models share — remembering the host table,
 * re-checking an input, adding an output through the host, reading and writing tensor elements,
 * and the two model shapes the examples use (element-wise FP32 map, logistic regression head).
 *
 * Header-only and all `static`: each plugin stays one self-contained shared object whose only
 * exported symbol is its entry point. To start your own model, copy quadratic_predictor_v1.c and
 * this header.
 *
 * Why re-check inputs the server already checked: a plugin must never crash on bad data, and
 * the checks cost nothing next to the request's JSON parsing. Why memcpy for elements: plugin.h
 * does not promise alignment for tensor data (today's server hands over 16-byte-aligned copies
 * in its request arena, binary request data included, but the ABI leaves it free to pass data
 * in place); memcpy of 4 bytes compiles to a single load or store.
 */
#ifndef DS_EXAMPLE_UTIL_H
#define DS_EXAMPLE_UTIL_H

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <dynserve/plugin.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is little-endian; the example helpers assume a little-endian host"
#endif

/* ---- host table ---------------------------------------------------------------------------- */

/* The host table from the entry call (owned by the server, valid until dlclose). Atomic because
 * the server may open the same file again while instances execute: dlopen then returns the same
 * image and the entry runs again. */
static _Atomic(const ds_host_api *) ex_host;

/* For the entry point: true (and the host remembered) when this plugin can work with `host`. */
static inline bool ex_accept_host(const ds_host_api *host)
{
    if (host == NULL || host->abi_major != DS_PLUGIN_ABI_MAJOR ||
        host->struct_size < offsetof(ds_host_api, log) + sizeof(host->log) ||
        host->output_alloc == NULL)
        return false;
    atomic_store(&ex_host, host);
    return true;
}

/* ---- inputs -------------------------------------------------------------------------------- */

static inline ds_status ex_expect_input_count(const ds_infer_request *req, uint32_t n,
                                              ds_error *err)
{
    if (req == NULL)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "no request");
    if (req->input_count != n || (n > 0 && req->inputs == NULL))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "expected %u input(s), got %u", n,
                            req->input_count);
    return DS_OK;
}

/* The input called `name`, or NULL. Borrowed from the request: valid during execute() only. */
static inline const ds_tensor *ex_find_input(const ds_infer_request *req, const char *name)
{
    for (uint32_t i = 0; i < req->input_count; i++) {
        if (req->inputs[i].name != NULL && strcmp(req->inputs[i].name, name) == 0)
            return &req->inputs[i];
    }
    return NULL;
}

/* A borrowed FP32 matrix of shape [rows, cols]: element (r, c) is at index r * cols + c. */
typedef struct ex_matrix {
    const void *data; /* owned by the request; possibly unaligned, read with ex_get_fp32 */
    size_t rows;
    size_t cols;
} ex_matrix;

/* Find input `name` and check it is FP32 of shape [rows, cols] with exactly the bytes that
 * shape needs. Every example model's input is such a batch of rows. */
static inline ds_status ex_input_fp32_matrix(const ds_infer_request *req, const char *name,
                                             size_t cols, ex_matrix *m, ds_error *err)
{
    const ds_tensor *t = ex_find_input(req, name);
    if (t == NULL)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "missing input '%s'", name);
    if (t->datatype != DS_TYPE_FP32)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' must be FP32", name);
    if (t->rank != 2 || t->shape == NULL || t->shape[0] < 0 || t->shape[1] != (int64_t)cols)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' must have shape [-1,%zu]",
                            name, cols);
    uint64_t rows = (uint64_t)t->shape[0];
    if (rows > SIZE_MAX / sizeof(float) / cols || t->byte_size != rows * cols * sizeof(float) ||
        (t->data == NULL && t->byte_size > 0))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "input '%s' has %zu data bytes, shape needs %llu", name, t->byte_size,
                            (unsigned long long)rows * cols * sizeof(float));
    m->data = t->data;
    m->rows = (size_t)rows;
    m->cols = cols;
    return DS_OK;
}

static inline float ex_get_fp32(const void *base, size_t i)
{
    float v;
    memcpy(&v, (const unsigned char *)base + i * sizeof(v), sizeof(v));
    return v;
}

/* ---- outputs ------------------------------------------------------------------------------- */

/* True when the client asked for output `name` (asking for none means all of them). The server
 * drops unrequested outputs anyway; skipping them saves the work. */
static inline bool ex_output_wanted(const ds_infer_request *req, const char *name)
{
    if (req->requested_output_count == 0 || req->requested_outputs == NULL)
        return true;
    for (uint32_t i = 0; i < req->requested_output_count; i++) {
        const char *want = req->requested_outputs[i];
        if (want != NULL && strcmp(want, name) == 0)
            return true;
    }
    return false;
}

/* Add output `name` through the host and set *data to its zero-filled buffer (owned by the
 * server until execute() returns; may be NULL when byte_size is 0). */
static inline ds_status ex_add_output(ds_infer_response *resp, const char *name, ds_datatype type,
                                      uint32_t rank, const int64_t *shape, size_t byte_size,
                                      void **data, ds_error *err)
{
    const ds_host_api *host = atomic_load(&ex_host);
    err->code = DS_OK;
    *data = host->output_alloc(resp, name, type, rank, shape, byte_size, err);
    if (*data != NULL || (byte_size == 0 && err->code == DS_OK))
        return DS_OK;
    if (err->code == DS_OK)
        return ds_error_set(err, DS_ERR_INTERNAL, "cannot add output '%s'", name);
    return err->code;
}

static inline void ex_put_fp32(void *base, size_t i, float v)
{
    memcpy((unsigned char *)base + i * sizeof(v), &v, sizeof(v));
}

static inline void ex_put_int32(void *base, size_t i, int32_t v)
{
    memcpy((unsigned char *)base + i * sizeof(v), &v, sizeof(v));
}

/* Non-finite numbers cannot be written as JSON; refuse them instead of producing bad output. */
static inline ds_status ex_reject_non_finite(const char *tensor, size_t i, ds_error *err)
{
    return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                        "%s[%zu] is not a finite FP32 number (input NaN/Inf or result overflow)",
                        tensor, i);
}

/* ---- model shapes -------------------------------------------------------------------------- */

/* Element-wise model: input `in` FP32 [-1,1] -> output `out` FP32 [-1,1], out[i] = f(in[i]).
 * The arithmetic is done in double and rounded once to FP32. */
static inline ds_status ex_map_fp32(const ds_infer_request *req, ds_infer_response *resp,
                                    const char *in, const char *out, double (*f)(double),
                                    ds_error *err)
{
    ex_matrix x = {NULL, 0, 0};
    ds_status st = ex_expect_input_count(req, 1, err);
    if (st == DS_OK)
        st = ex_input_fp32_matrix(req, in, 1, &x, err);
    if (st != DS_OK || !ex_output_wanted(req, out))
        return st;
    int64_t shape[2] = {(int64_t)x.rows, 1};
    void *y;
    st = ex_add_output(resp, out, DS_TYPE_FP32, 2, shape, x.rows * sizeof(float), &y, err);
    for (size_t i = 0; st == DS_OK && i < x.rows; i++) {
        float v = ex_get_fp32(x.data, i);
        float r = (float)f(v);
        if (!isfinite(v))
            return ex_reject_non_finite(in, i, err);
        if (!isfinite(r))
            return ex_reject_non_finite(out, i, err);
        ex_put_fp32(y, i, r);
    }
    return st;
}

static inline double ex_sigmoid(double z)
{
    /* Two branches so exp() never overflows: for large |z| the result saturates to 0 or 1. */
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* Logistic regression over EX_LOGISTIC_FEATURES features: p = sigmoid(w·x + b). */
#define EX_LOGISTIC_FEATURES 3
typedef struct ex_logistic {
    double weights[EX_LOGISTIC_FEATURES];
    double bias;
} ex_logistic;

static inline double ex_logistic_p(const ex_logistic *m, const void *x, size_t row)
{
    double z = m->bias;
    for (size_t c = 0; c < EX_LOGISTIC_FEATURES; c++)
        z += m->weights[c] * ex_get_fp32(x, row * EX_LOGISTIC_FEATURES + c);
    return ex_sigmoid(z);
}

/* Classifier model: input `input` FP32 [-1,3] -> `probability` FP32 [-1,1] and `label` INT32
 * [-1,1] (1 when probability >= 0.5). Adds only the outputs the client asked for. */
static inline ds_status ex_logistic_execute(const ex_logistic *m, const ds_infer_request *req,
                                            ds_infer_response *resp, ds_error *err)
{
    ex_matrix x = {NULL, 0, 0};
    ds_status st = ex_expect_input_count(req, 1, err);
    if (st == DS_OK)
        st = ex_input_fp32_matrix(req, "input", EX_LOGISTIC_FEATURES, &x, err);
    for (size_t i = 0; st == DS_OK && i < x.rows * x.cols; i++) {
        if (!isfinite(ex_get_fp32(x.data, i)))
            return ex_reject_non_finite("input", i, err);
    }
    int64_t shape[2] = {(int64_t)x.rows, 1};
    void *prob = NULL, *label = NULL;
    if (st == DS_OK && ex_output_wanted(req, "probability"))
        st = ex_add_output(resp, "probability", DS_TYPE_FP32, 2, shape, x.rows * sizeof(float),
                           &prob, err);
    if (st == DS_OK && ex_output_wanted(req, "label"))
        st = ex_add_output(resp, "label", DS_TYPE_INT32, 2, shape, x.rows * sizeof(int32_t), &label,
                           err);
    for (size_t r = 0; st == DS_OK && r < x.rows; r++) {
        /* The label follows the FP32 probability the client sees, so they never disagree. */
        float p = (float)ex_logistic_p(m, x.data, r);
        if (prob != NULL)
            ex_put_fp32(prob, r, p);
        if (label != NULL)
            ex_put_int32(label, r, p >= 0.5f ? 1 : 0);
    }
    return st;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

/* create() for a stateless model: accepts any config, has no instance state. */
static inline ds_status ex_create_stateless(const char *config_json, void **instance, ds_error *err)
{
    (void)config_json;
    (void)err;
    *instance = NULL;
    return DS_OK;
}

static inline void ex_destroy_stateless(void *instance)
{
    (void)instance;
}

#endif /* DS_EXAMPLE_UTIL_H */
