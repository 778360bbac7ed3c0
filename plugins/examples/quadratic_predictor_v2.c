/*
 * quadratic_predictor v2: y = x² − 1 for each row of a batch. Same inputs and outputs as v1
 * (a drop-in canary for it):
 *   input  `input`      FP32 [-1, 1]
 *   output `prediction` FP32 [-1, 1]
 * quadratic_predictor_v1.c explains each part of a plugin; this file only changes the formula.
 */
#include <dynserve/plugin.h>

#include "example_util.h"

static const ds_io_desc inputs[] = {
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};

static const ds_io_desc outputs[] = {
    {.name = "prediction", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};

static const ds_model_desc model = {
    .struct_size = sizeof(ds_model_desc),
    .platform = "dynserve_c",
    .input_count = 1,
    .inputs = inputs,
    .output_count = 1,
    .outputs = outputs,
};

static double quadratic(double x)
{
    return x * x - 1.0;
}

static ds_status quadratic_execute(void *instance, const ds_infer_request *req,
                                   ds_infer_response *resp, ds_error *err)
{
    (void)instance;
    return ex_map_fp32(req, resp, "input", "prediction", quadratic, err);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "quadratic_predictor v2",
    .model = &model,
    .create = ex_create_stateless,
    .execute = quadratic_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
