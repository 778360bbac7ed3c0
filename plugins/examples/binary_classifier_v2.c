/*
 * binary_classifier v2: logistic regression over three features, one row per example.
 *   input  `input`       FP32  [-1, 3]
 *   output `probability` FP32  [-1, 1]   p = sigmoid(x₀ + x₁ + x₂ − 1.5)
 *   output `label`       INT32 [-1, 1]   1 when p >= 0.5, else 0
 * The client may ask for either output alone; only that one is computed. Same inputs and
 * outputs as v1, so it can serve as v1's canary.
 * quadratic_predictor_v1.c explains each part of a plugin.
 */
#include <dynserve/plugin.h>

#include "example_util.h"

static const ds_io_desc inputs[] = {
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, EX_LOGISTIC_FEATURES}},
};

static const ds_io_desc outputs[] = {
    {.name = "probability", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
    {.name = "label", .datatype = DS_TYPE_INT32, .rank = 2, .shape = {-1, 1}},
};

static const ds_model_desc model = {
    .struct_size = sizeof(ds_model_desc),
    .platform = "dynserve_c",
    .input_count = 1,
    .inputs = inputs,
    .output_count = 2,
    .outputs = outputs,
};

/* p = sigmoid(x₀ + x₁ + x₂ − 1.5) */
static const ex_logistic weights = {.weights = {1.0, 1.0, 1.0}, .bias = -1.5};

static ds_status classifier_execute(void *instance, const ds_infer_request *req,
                                    ds_infer_response *resp, ds_error *err)
{
    (void)instance;
    return ex_logistic_execute(&weights, req, resp, err);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "binary_classifier v2",
    .model = &model,
    .create = ex_create_stateless,
    .execute = classifier_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
