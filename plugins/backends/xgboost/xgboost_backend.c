/*
 * xgboost backend: serves an XGBoost booster (model.json or model.ubj) through XGBoost's C API
 * (Debian's libxgboost). A version directory holds config.json ({"backend":"xgboost",
 * "parameters":{...}}) and the booster file.
 *
 * What the instance learns from the booster (XGBoosterSaveJsonConfig + XGBoosterGetNumFeature)
 * and describes as its IO:
 *   input   `input` FP32 [-1, num_feature]   (NaN = missing, or parameters.missing)
 *   binary:logistic, binary:logitraw   -> `probability` FP32 [-1,1], `label` INT32 [-1,1]
 *   multi:softprob, multi:softmax      -> `probabilities` FP32 [-1,K], `label` INT32 [-1,1]
 *   anything else (reg:*, count:*, ...) -> `prediction` FP32 [-1,1]
 * label is p >= 0.5 (binary) or the first arg-max (multi), as scikit-learn's predict() gives.
 *
 * Parameters (config.json "parameters", bare values or Triton's {"string_value": ...}):
 *   model_file  the booster's file name in the version directory (default: model.json, else
 *               model.ubj, else model.bin)
 *   nthread     OpenMP threads per prediction (default 1: the server runs many requests at once)
 *   missing     the value that means "missing" (default NaN)
 *
 * Prediction is XGBoosterPredictFromDense over the request's tensor in place (copied only when
 * the binary body left it unaligned). XGBoost's in-place prediction is thread-safe (its result
 * buffer is per thread), so the plugin declares DS_PLUGIN_THREAD_SAFE and one instance serves
 * every worker. execute_batch concatenates the rows of several requests into one prediction.
 *
 * Errors: a missing, corrupt or unsupported booster fails create_instance with XGBoost's own
 * message (the deployment fails with that reason; registration answers 422). XGBoost reports
 * errors as return codes here (its C API catches its C++ exceptions), never by aborting.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xgboost/c_api.h>

#include "backend_util.h"

typedef enum xgb_kind {
    XGB_REGRESSION,
    XGB_BINARY,
    XGB_BINARY_RAW,
    XGB_MULTI,
    XGB_MULTI_MAX
} xgb_kind;

/* One instance: a booster and the IO it was found to have. Owned by the plugin from
 * create_instance until destroy. Immutable after create, so execute may run on any number of
 * threads at once (BoosterHandle in-place prediction is thread-safe). */
typedef struct xgb_instance {
    BoosterHandle booster;
    xgb_kind kind;
    uint64_t num_feature;
    uint64_t num_class; /* multi only */
    float missing;
    char missing_json[32];
    const ds_deployment *dep;
    ds_io_desc inputs[1];
    ds_io_desc outputs[2];
    ds_model_desc model;
} xgb_instance;

/* XGBoost's last error on this thread, first line only and without its "[hh:mm:ss] " prefix
 * (the rest is a stack trace). Copied into buf. */
static const char *xgb_last_error(char *buf, size_t len)
{
    const char *e = XGBGetLastError();
    if (e == NULL)
        e = "unknown error";
    if (e[0] == '[' && strchr(e, ']') != NULL)
        e = strchr(e, ']') + 1;
    while (*e == ' ')
        e++;
    size_t n = strcspn(e, "\n");
    if (n >= len)
        n = len - 1;
    memcpy(buf, e, n);
    buf[n] = '\0';
    return buf;
}

static ds_status xgb_error(ds_error *err, ds_status code, const char *what)
{
    char msg[DS_ERROR_MESSAGE_MAX];
    return ds_error_set(err, code, "%s: %s", what, xgb_last_error(msg, sizeof msg));
}

/* The booster file: parameters.model_file, else the first of model.json, model.ubj, model.bin. */
static ds_status xgb_model_path(const ds_instance_context *ctx, const cJSON *params, char *buf,
                                size_t len, ds_error *err)
{
    const char *named = bk_param_string(params, "model_file");
    if (named != NULL)
        return bk_artifact_path(ctx, named, buf, len, err);
    static const char *const candidates[] = {"model.json", "model.ubj", "model.bin"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        ds_status st = bk_artifact_path(ctx, candidates[i], buf, len, err);
        if (st != DS_OK)
            return st;
        if (access(buf, R_OK) == 0)
            return DS_OK;
    }
    return ds_error_set(err, DS_ERR_NOT_FOUND,
                        "no booster file in %s (expected model.json, model.ubj or model.bin, or "
                        "parameters.model_file)",
                        ctx->artifact_dir);
}

/* Objective name and class count from the booster's JSON configuration. */
static ds_status xgb_read_objective(xgb_instance *x, ds_error *err)
{
    bst_ulong len = 0;
    const char *text = NULL;
    if (XGBoosterSaveJsonConfig(x->booster, &len, &text) != 0)
        return xgb_error(err, DS_ERR_INVALID_ARGUMENT, "cannot read the booster's configuration");
    cJSON *root = cJSON_ParseWithLength(text, (size_t)len);
    const cJSON *learner = cJSON_GetObjectItemCaseSensitive(root, "learner");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(learner, "objective");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
    const cJSON *mparam = cJSON_GetObjectItemCaseSensitive(learner, "learner_model_param");
    const cJSON *ncls = cJSON_GetObjectItemCaseSensitive(mparam, "num_class");
    if (!cJSON_IsString(name)) {
        cJSON_Delete(root);
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "booster has no objective");
    }
    const char *n = name->valuestring;
    long classes = cJSON_IsString(ncls) ? strtol(ncls->valuestring, NULL, 10) : 0;
    if (strcmp(n, "binary:logistic") == 0)
        x->kind = XGB_BINARY;
    else if (strcmp(n, "binary:logitraw") == 0)
        x->kind = XGB_BINARY_RAW;
    else if (strcmp(n, "multi:softprob") == 0)
        x->kind = XGB_MULTI;
    else if (strcmp(n, "multi:softmax") == 0)
        x->kind = XGB_MULTI_MAX;
    else
        x->kind = XGB_REGRESSION;
    cJSON_Delete(root);
    if ((x->kind == XGB_MULTI || x->kind == XGB_MULTI_MAX) && (classes < 2 || classes > 100000))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "multi-class booster with %ld classes",
                            classes);
    x->num_class = (uint64_t)classes;
    return DS_OK;
}

static void xgb_io(ds_io_desc *d, const char *name, ds_datatype type, int64_t cols)
{
    d->name = name;
    d->datatype = type;
    d->rank = 2;
    d->shape[0] = -1;
    d->shape[1] = cols;
}

static void xgb_describe(xgb_instance *x)
{
    xgb_io(&x->inputs[0], "input", DS_TYPE_FP32, (int64_t)x->num_feature);
    uint32_t n = 1;
    switch (x->kind) {
    case XGB_REGRESSION: xgb_io(&x->outputs[0], "prediction", DS_TYPE_FP32, 1); break;
    case XGB_BINARY:
    case XGB_BINARY_RAW:
        xgb_io(&x->outputs[0], "probability", DS_TYPE_FP32, 1);
        xgb_io(&x->outputs[1], "label", DS_TYPE_INT32, 1);
        n = 2;
        break;
    case XGB_MULTI:
    case XGB_MULTI_MAX:
        xgb_io(&x->outputs[0], "probabilities", DS_TYPE_FP32, (int64_t)x->num_class);
        xgb_io(&x->outputs[1], "label", DS_TYPE_INT32, 1);
        n = 2;
        break;
    }
    x->model = (ds_model_desc){.struct_size = sizeof(ds_model_desc),
                               .platform = "xgboost",
                               .input_count = 1,
                               .inputs = x->inputs,
                               .output_count = n,
                               .outputs = x->outputs};
}

static ds_status xgb_configure(xgb_instance *x, const ds_instance_context *ctx, const cJSON *params,
                               ds_error *err)
{
    long nthread = 1;
    ds_status st = bk_param_int(params, "nthread", 0, 1024, 1, &nthread, err);
    if (st != DS_OK)
        return st;
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", nthread);
    if (XGBoosterSetParam(x->booster, "nthread", buf) != 0)
        return xgb_error(err, DS_ERR_INVALID_ARGUMENT, "cannot set nthread");
    x->missing = NAN;
    snprintf(x->missing_json, sizeof x->missing_json, "NaN");
    const char *miss = bk_param_string(params, "missing");
    const cJSON *mnum = params ? cJSON_GetObjectItemCaseSensitive(params, "missing") : NULL;
    if (cJSON_IsNumber(mnum) || miss != NULL) {
        double m = cJSON_IsNumber(mnum) ? mnum->valuedouble : strtod(miss, NULL);
        x->missing = (float)m;
        snprintf(x->missing_json, sizeof x->missing_json, "%.9g", (double)x->missing);
    }
    (void)ctx;
    return DS_OK;
}

static ds_status xgb_load_booster(xgb_instance *x, const ds_instance_context *ctx, ds_error *err)
{
    cJSON *root = cJSON_Parse(ctx->config_json != NULL ? ctx->config_json : "{}");
    if (root == NULL)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "config is not valid JSON");
    const cJSON *params = bk_parameters(root);
    char path[4096];
    ds_status st = xgb_model_path(ctx, params, path, sizeof path, err);
    if (st == DS_OK && XGBoosterCreate(NULL, 0, &x->booster) != 0)
        st = xgb_error(err, DS_ERR_NO_MEMORY, "cannot create a booster");
    if (st == DS_OK && XGBoosterLoadModel(x->booster, path) != 0) {
        char msg[DS_ERROR_MESSAGE_MAX];
        st = ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "cannot load booster '%s': %s", path,
                          xgb_last_error(msg, sizeof msg));
    }
    if (st == DS_OK)
        st = xgb_configure(x, ctx, params, err);
    cJSON_Delete(root);
    return st;
}

static ds_status xgb_create_instance(ds_instance_context *ctx, void **instance, ds_error *err)
{
    xgb_instance *x = calloc(1, sizeof *x);
    if (x == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    x->dep = ctx->deployment;
    bst_ulong nf = 0;
    ds_status st = xgb_load_booster(x, ctx, err);
    if (st == DS_OK && XGBoosterGetNumFeature(x->booster, &nf) != 0)
        st = xgb_error(err, DS_ERR_INVALID_ARGUMENT, "cannot read the booster's feature count");
    if (st == DS_OK && (nf == 0 || nf > 1000000))
        st = ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "booster has %llu features",
                          (unsigned long long)nf);
    if (st == DS_OK)
        st = xgb_read_objective(x, err);
    if (st != DS_OK) {
        if (x->booster != NULL)
            XGBoosterFree(x->booster);
        free(x);
        return st;
    }
    x->num_feature = nf;
    xgb_describe(x);
    ctx->model = &x->model;
    bk_log(x->dep, DS_LOG_DEBUG, "xgboost booster: %llu features, %s", (unsigned long long)nf,
           x->kind == XGB_REGRESSION                          ? "regression"
           : x->kind == XGB_MULTI || x->kind == XGB_MULTI_MAX ? "multi-class"
                                                              : "binary");
    *instance = x;
    return DS_OK;
}

static void xgb_destroy(void *instance)
{
    xgb_instance *x = instance;
    if (x == NULL)
        return;
    XGBoosterFree(x->booster);
    free(x);
}

/* ---- prediction ---------------------------------------------------------------------------- */

/* Predict `rows` rows at `data` (FP32, row-major, 4-byte aligned). *out points into XGBoost's
 * per-thread buffer, valid until this thread's next XGBoost call. */
static ds_status xgb_predict(const xgb_instance *x, const float *data, uint64_t rows, int margin,
                             const float **out, uint64_t *out_len, ds_error *err)
{
    char values[192], config[192];
    snprintf(values, sizeof values,
             "{\"data\":[%llu,true],\"shape\":[%llu,%llu],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)data, (unsigned long long)rows,
             (unsigned long long)x->num_feature);
    snprintf(config, sizeof config,
             "{\"type\":%d,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
             "\"strict_shape\":false,\"cache_id\":0,\"missing\":%s}",
             margin, x->missing_json);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    if (XGBoosterPredictFromDense(x->booster, values, config, NULL, &shape, &dim, out) != 0)
        return xgb_error(err, DS_ERR_INTERNAL, "xgboost prediction failed");
    uint64_t n = 1;
    for (bst_ulong i = 0; i < dim; i++)
        n *= shape[i];
    uint64_t per_row = (x->kind == XGB_MULTI || x->kind == XGB_MULTI_MAX) ? x->num_class : 1;
    if (rows > 0 && n != rows * per_row)
        return ds_error_set(err, DS_ERR_INTERNAL, "xgboost returned %llu values for %llu rows",
                            (unsigned long long)n, (unsigned long long)rows);
    *out_len = n;
    return DS_OK;
}

static double xgb_sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* Turn raw predictions of `rows` rows (at `pred`) into the outputs (prob: FP32, label: INT32;
 * either may be NULL when the client did not ask for it). */
static void xgb_postprocess(const xgb_instance *x, const float *pred, uint64_t rows, float *prob,
                            int32_t *label)
{
    uint64_t k = x->num_class;
    for (uint64_t r = 0; r < rows; r++) {
        if (x->kind == XGB_REGRESSION || x->kind == XGB_BINARY || x->kind == XGB_BINARY_RAW) {
            float p = x->kind == XGB_BINARY_RAW ? (float)xgb_sigmoid(pred[r]) : pred[r];
            if (prob != NULL)
                prob[r] = p;
            if (label != NULL)
                label[r] = p >= 0.5f;
            continue;
        }
        const float *z = pred + r * k;
        uint64_t best = 0;
        for (uint64_t c = 1; c < k; c++)
            best = z[c] > z[best] ? c : best;
        if (label != NULL)
            label[r] = (int32_t)best;
        if (prob == NULL)
            continue;
        if (x->kind == XGB_MULTI) {
            memcpy(prob + r * k, z, k * sizeof(float));
            continue;
        }
        double sum = 0; /* multi:softmax predicts margins here: softmax them */
        for (uint64_t c = 0; c < k; c++)
            sum += exp((double)z[c] - (double)z[best]);
        for (uint64_t c = 0; c < k; c++)
            prob[r * k + c] = (float)(exp((double)z[c] - (double)z[best]) / sum);
    }
}

/* Allocate the wanted outputs for `rows` rows; *prob / *label NULL when not wanted. */
static ds_status xgb_outputs(const xgb_instance *x, const ds_infer_request *req,
                             ds_infer_response *resp, uint64_t rows, float **prob, int32_t **label,
                             ds_error *err)
{
    *prob = NULL;
    *label = NULL;
    const ds_io_desc *o = x->model.outputs;
    ds_status st = DS_OK;
    for (uint32_t i = 0; i < x->model.output_count && st == DS_OK; i++) {
        if (!bk_output_wanted(req, o[i].name))
            continue;
        int64_t shape[2] = {(int64_t)rows, o[i].shape[1]};
        size_t bytes = (size_t)rows * (size_t)o[i].shape[1] * 4;
        void *buf = NULL;
        st = bk_add_output(resp, o[i].name, o[i].datatype, 2, shape, bytes, &buf, err);
        if (o[i].datatype == DS_TYPE_INT32)
            *label = buf;
        else
            *prob = buf;
    }
    return st;
}

/* The request's rows as an aligned float pointer: in place when aligned, else copied into
 * *copy (malloc'd, the caller frees). */
static ds_status xgb_rows(const ds_tensor *t, const float **data, float **copy, ds_error *err)
{
    *copy = NULL;
    if (((uintptr_t)t->data % _Alignof(float)) == 0 || t->byte_size == 0) {
        *data = t->data;
        return DS_OK;
    }
    *copy = malloc(t->byte_size);
    if (*copy == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    memcpy(*copy, t->data, t->byte_size);
    *data = *copy;
    return DS_OK;
}

static int xgb_margin(const xgb_instance *x)
{
    return x->kind == XGB_MULTI_MAX; /* softmax predicts labels only; ask for margins */
}

static ds_status xgb_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                             ds_error *err)
{
    const xgb_instance *x = instance;
    const ds_tensor *t = NULL;
    uint64_t rows = 0, n = 0;
    const float *data = NULL, *pred = NULL;
    float *copy = NULL, *prob = NULL;
    int32_t *label = NULL;
    ds_status st = bk_input_fp32_rows(req, "input", x->num_feature, &t, &rows, err);
    if (st == DS_OK)
        st = xgb_rows(t, &data, &copy, err);
    if (st == DS_OK && rows > 0)
        st = xgb_predict(x, data, rows, xgb_margin(x), &pred, &n, err);
    if (st == DS_OK)
        st = xgb_outputs(x, req, resp, rows, &prob, &label, err);
    if (st == DS_OK && rows > 0)
        xgb_postprocess(x, pred, rows, prob, label);
    free(copy);
    return st;
}

/* Several requests in one prediction: their rows are concatenated into one matrix, predicted
 * once, and split back. A request with a bad input fails alone (errors[i]). */
static ds_status xgb_execute_batch(void *instance, uint32_t count,
                                   const ds_infer_request *const *requests,
                                   ds_infer_response *const *responses, ds_error *errors)
{
    const xgb_instance *x = instance;
    const ds_tensor *ts[count > 0 ? count : 1];
    uint64_t rows[count > 0 ? count : 1], total = 0;
    for (uint32_t i = 0; i < count; i++) {
        rows[i] = 0;
        ts[i] = NULL;
        if (bk_input_fp32_rows(requests[i], "input", x->num_feature, &ts[i], &rows[i],
                               &errors[i]) != DS_OK)
            ts[i] = NULL;
        total += rows[i];
    }
    size_t row_bytes = (size_t)x->num_feature * sizeof(float);
    float *all = malloc(total > 0 ? total * row_bytes : 1);
    if (all == NULL)
        return ds_error_set(&errors[0], DS_ERR_NO_MEMORY, "out of memory");
    uint64_t at = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (ts[i] != NULL && rows[i] > 0)
            memcpy((char *)all + at * row_bytes, ts[i]->data, rows[i] * row_bytes);
        at += rows[i];
    }
    const float *pred = NULL;
    uint64_t n = 0;
    ds_status st =
        total > 0 ? xgb_predict(x, all, total, xgb_margin(x), &pred, &n, &errors[0]) : DS_OK;
    uint64_t per_row = (x->kind == XGB_MULTI || x->kind == XGB_MULTI_MAX) ? x->num_class : 1;
    at = 0;
    for (uint32_t i = 0; st == DS_OK && i < count; i++) {
        float *prob = NULL;
        int32_t *label = NULL;
        if (ts[i] != NULL &&
            xgb_outputs(x, requests[i], responses[i], rows[i], &prob, &label, &errors[i]) == DS_OK)
            xgb_postprocess(x, pred + at * per_row, rows[i], prob, label);
        at += rows[i];
    }
    free(all);
    return st;
}

/* ---- table --------------------------------------------------------------------------------- */

/* Placeholder: every instance describes its own IO (read from the booster). */
static const ds_model_desc xgb_placeholder = {
    .struct_size = sizeof(ds_model_desc),
    .flags = DS_MODEL_DYNAMIC_IO,
    .platform = "xgboost",
};

static const ds_plugin_api xgb_api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "xgboost backend",
    .model = &xgb_placeholder,
    .execute = xgb_execute,
    .destroy = xgb_destroy,
    .create_instance = xgb_create_instance,
    .execute_batch = xgb_execute_batch,
    .max_batch_size = 256,
};

DS_PLUGIN_EXPORT ds_status dynserve_plugin_init(const ds_host_api *host,
                                                const ds_plugin_api **table, ds_error *err)
{
    if (!bk_accept_host(host, err))
        return DS_ERR_UNSUPPORTED;
    int major = 0, minor = 0, patch = 0;
    XGBoostVersion(&major, &minor, &patch);
    if (major < 1 || (major == 1 && minor < 4))
        return ds_error_set(err, DS_ERR_UNSUPPORTED,
                            "libxgboost %d.%d.%d is too old (in-place prediction needs 1.4)", major,
                            minor, patch);
    *table = &xgb_api;
    return DS_OK;
}
