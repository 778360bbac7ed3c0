/*
 * backend_util.h: what the backend plugins (plugins/backends/<name>/) share — remembering the
 * host table, logging through it, reading the version's config.json, checking a dense input
 * matrix and adding outputs. Header-only and `static inline`, so each backend stays one
 * self-contained shared object whose only exported symbol is its entry point; usable from C
 * and from C++ (the ONNX backend).
 *
 * A backend serves model files: the server hands each instance the version's artifact
 * directory and config (ds_instance_context, ABI 1.1) and the instance describes its own inputs
 * and outputs, read from the artifact. The plugin table's own model description is therefore a
 * placeholder flagged DS_MODEL_DYNAMIC_IO.
 */
#ifndef DS_BACKEND_UTIL_H
#define DS_BACKEND_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <dynserve/plugin.h>

#ifdef __cplusplus
#include <atomic>
#define BK_ATOMIC(t) std::atomic<t>
#else
#include <stdatomic.h>
#define BK_ATOMIC(t) _Atomic(t)
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor data is little-endian; the backends assume a little-endian host"
#endif

/* The host table from the entry call (owned by the server, valid until dlclose). Atomic: the
 * entry may run again (another deployment of the same file) while instances execute. */
static BK_ATOMIC(const ds_host_api *) bk_host;

/* True (and the host remembered) when `host` offers what a backend needs: output_alloc, and the
 * ABI 1.1 instance context (so a minor-1 server). Writes why not into err. */
static inline int bk_accept_host(const ds_host_api *host, ds_error *err)
{
    if (host == NULL || host->abi_major != DS_PLUGIN_ABI_MAJOR || host->abi_minor < 1 ||
        host->output_alloc == NULL) {
        ds_error_set(err, DS_ERR_UNSUPPORTED, "backend needs a host of ABI %d.1 or newer",
                     DS_PLUGIN_ABI_MAJOR);
        return 0;
    }
    bk_host = host;
    return 1;
}

/* Log through the host, naming the deployment (dep may be NULL). Falls back to the ABI 1.0 log
 * when the host has no logf. */
static inline void bk_log(const ds_deployment *dep, ds_log_level level, const char *fmt, ...)
    DS_PRINTF_LIKE(3, 4);
static inline void bk_log(const ds_deployment *dep, ds_log_level level, const char *fmt, ...)
{
    const ds_host_api *host = bk_host;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (host == NULL)
        return;
    if (host->struct_size >= offsetof(ds_host_api, logf) + sizeof(host->logf) && host->logf != NULL)
        host->logf(dep, level, "%s", line);
    else if (host->log != NULL)
        host->log((int)level, line);
}

/* ---- config ------------------------------------------------------------------------------- */

/* config_json's "parameters" object, or NULL. `root` owns it. */
static inline const cJSON *bk_parameters(const cJSON *root)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    return cJSON_IsObject(p) ? p : NULL;
}

/* parameters[name] as an integer in [lo, hi], or `dflt` when absent. Triton writes parameters
 * as {"key": {"string_value": "4"}}; a bare number or numeric string is accepted too.
 * DS_OK, or DS_ERR_INVALID_ARGUMENT naming the key. */
static inline ds_status bk_param_int(const cJSON *params, const char *name, long lo, long hi,
                                     long dflt, long *out, ds_error *err)
{
    const cJSON *v = params != NULL ? cJSON_GetObjectItemCaseSensitive(params, name) : NULL;
    *out = dflt;
    if (v == NULL)
        return DS_OK;
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "string_value");
    double d = NAN;
    if (cJSON_IsNumber(v)) {
        d = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        char *end = NULL;
        d = strtod(v->valuestring, &end);
        if (end == v->valuestring || *end != '\0')
            d = NAN;
    }
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "config parameter '%s' must be an integer in %ld..%ld", name, lo, hi);
    *out = (long)d;
    return DS_OK;
}

/* parameters[name] as a string (bare or {"string_value": ...}), or NULL when absent. */
static inline const char *bk_param_string(const cJSON *params, const char *name)
{
    const cJSON *v = params != NULL ? cJSON_GetObjectItemCaseSensitive(params, name) : NULL;
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "string_value");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "<artifact_dir>/<file>" into buf; DS_OK, or an error when there is no artifact dir or the path
 * does not fit. `file` must be a plain name (no '/'), so a config cannot point outside. */
static inline ds_status bk_artifact_path(const ds_instance_context *ctx, const char *file,
                                         char *buf, size_t len, ds_error *err)
{
    if (ctx->artifact_dir == NULL || ctx->artifact_dir[0] == '\0')
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "this backend serves a model directory; the version has no artifact "
                            "directory");
    if (file[0] == '\0' || strchr(file, '/') != NULL || strcmp(file, "..") == 0)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "model file '%s' must be a plain file name", file);
    int n = snprintf(buf, len, "%s/%s", ctx->artifact_dir, file);
    if (n < 0 || (size_t)n >= len)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "artifact path too long");
    return DS_OK;
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* The input called `name`, or NULL. Borrowed from the request: valid during execute() only. */
static inline const ds_tensor *bk_find_input(const ds_infer_request *req, const char *name)
{
    for (uint32_t i = 0; i < req->input_count; i++) {
        if (req->inputs[i].name != NULL && strcmp(req->inputs[i].name, name) == 0)
            return &req->inputs[i];
    }
    return NULL;
}

/* Check input `name` is FP32 [rows, cols] (rank 2, cols fixed) with exactly the bytes that
 * needs; set *rows. The server has checked this against the instance's description already;
 * a plugin re-checks because it must never crash on bad data. */
static inline ds_status bk_input_fp32_rows(const ds_infer_request *req, const char *name,
                                           uint64_t cols, const ds_tensor **out, uint64_t *rows,
                                           ds_error *err)
{
    const ds_tensor *t = bk_find_input(req, name);
    if (t == NULL)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "missing input '%s'", name);
    if (t->datatype != DS_TYPE_FP32)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' must be FP32", name);
    if (t->rank != 2 || t->shape == NULL || t->shape[0] < 0 || (uint64_t)t->shape[1] != cols)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' must have shape [-1,%llu]",
                            name, (unsigned long long)cols);
    uint64_t n = (uint64_t)t->shape[0];
    if (cols != 0 && n > SIZE_MAX / sizeof(float) / cols)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' is too large", name);
    if (t->byte_size != n * cols * sizeof(float) || (t->data == NULL && t->byte_size > 0))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "input '%s' has %zu data bytes, its shape needs %llu", name,
                            t->byte_size, (unsigned long long)(n * cols * sizeof(float)));
    *out = t;
    *rows = n;
    return DS_OK;
}

/* True when the client asked for output `name` (asking for none means all of them). */
static inline int bk_output_wanted(const ds_infer_request *req, const char *name)
{
    if (req->requested_output_count == 0 || req->requested_outputs == NULL)
        return 1;
    for (uint32_t i = 0; i < req->requested_output_count; i++) {
        if (req->requested_outputs[i] != NULL && strcmp(req->requested_outputs[i], name) == 0)
            return 1;
    }
    return 0;
}

/* Add output `name` through the host; *data is its zero-filled buffer (owned by the server
 * until execute() returns). The return value wins over err->code (plugin.h). */
static inline ds_status bk_add_output(ds_infer_response *resp, const char *name, ds_datatype type,
                                      uint32_t rank, const int64_t *shape, size_t byte_size,
                                      void **data, ds_error *err)
{
    const ds_host_api *host = bk_host;
    err->code = DS_OK;
    *data = host->output_alloc(resp, name, type, rank, shape, byte_size, err);
    if (*data != NULL || (byte_size == 0 && err->code == DS_OK))
        return DS_OK;
    if (err->code == DS_OK)
        return ds_error_set(err, DS_ERR_INTERNAL, "cannot add output '%s'", name);
    return err->code;
}

/* The request's cancellation status through the host (0 = still wanted, or an old host). */
static inline ds_status bk_cancelled(const ds_infer_response *resp)
{
    const ds_host_api *host = bk_host;
    if (host->struct_size >= offsetof(ds_host_api, is_cancelled) + sizeof(host->is_cancelled) &&
        host->is_cancelled != NULL)
        return host->is_cancelled(resp);
    return DS_OK;
}

#endif
