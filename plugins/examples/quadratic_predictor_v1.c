/*
 * quadratic_predictor v1: y = 2x² + 3x + 1 for each row of a batch.
 *   input  `input`      FP32 [-1, 1]
 *   output `prediction` FP32 [-1, 1]
 *
 * This file is the template for a new model plugin: copy it and example_util.h, change the
 * description and execute(), and build it as a shared object with hidden visibility:
 *
 *     cc -std=c11 -O2 -shared -fPIC -fvisibility=hidden -I<dynserve>/plugins/include \
 *        my_model.c -o model.so -lm
 *
 * A plugin has four parts, in the order the server uses them:
 *   1. a static model description (names, datatypes, shapes), read once at load time;
 *   2. create(): one instance per deployment, from the deployment's JSON config;
 *   3. execute(): one call per inference request;
 *   4. destroy(): the matching release of create().
 * They are collected in a ds_plugin_api table that the one exported function, the entry point,
 * returns. Read plugins/include/dynserve/plugin.h for the full contract.
 */
#include <dynserve/plugin.h>

#include "example_util.h"

/* 1. Model description. Static and const: plugin.h requires everything the plugin hands the
 * server to stay valid until the shared object is unloaded, and static storage does exactly
 * that. Shapes use -1 for "any size": here the batch dimension. */
static const ds_io_desc inputs[] = {
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};

static const ds_io_desc outputs[] = {
    {.name = "prediction", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};

static const ds_model_desc model = {
    .struct_size = sizeof(ds_model_desc), /* tells the server which ABI minor's layout this is */
    .flags = 0,
    .platform = "dynserve_c",
    .input_count = 1,
    .inputs = inputs,
    .output_count = 1,
    .outputs = outputs,
};

/* 2. create(). This model has no parameters and no state, so there is nothing to allocate and
 * the instance handle is NULL. A model with weights would parse config_json here, allocate its
 * state, and return it in *instance; on failure it returns an error and allocates nothing. */
static ds_status quadratic_create(const char *config_json, void **instance, ds_error *err)
{
    return ex_create_stateless(config_json, instance, err);
}

/* The model itself, one element at a time. */
static double quadratic(double x)
{
    return 2.0 * x * x + 3.0 * x + 1.0;
}

/* 3. execute(). Inputs, names and the request belong to the server and are valid only during
 * this call. ex_map_fp32 (example_util.h) does the steps every model needs: re-check the input
 * (count, datatype, shape, byte size; never trust, never crash), skip the output if the client
 * did not ask for it, allocate it through host->output_alloc (the server owns that memory; the
 * plugin only fills it), and reject results that JSON cannot carry (NaN, Inf). A model that is
 * not element-wise takes the same steps by hand; see ex_logistic_execute for two outputs.
 * Errors are returned as a status plus a message in `err`; DS_ERR_INVALID_ARGUMENT becomes an
 * HTTP 400 for the client. */
static ds_status quadratic_execute(void *instance, const ds_infer_request *req,
                                   ds_infer_response *resp, ds_error *err)
{
    (void)instance;
    return ex_map_fp32(req, resp, "input", "prediction", quadratic, err);
}

/* 4. destroy(). Called exactly once for every successful create(), after its last execute(). */
static void quadratic_destroy(void *instance)
{
    ex_destroy_stateless(instance);
}

/* The table. abi_major/abi_minor/struct_size record the header this file was compiled with, so a
 * newer server keeps loading it. execute() keeps no state, so concurrent calls on one instance
 * are safe: DS_PLUGIN_THREAD_SAFE lets the server share one instance between worker threads. */
static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "quadratic_predictor v1",
    .model = &model,
    .create = quadratic_create,
    .execute = quadratic_execute,
    .destroy = quadratic_destroy,
};

/* The entry point: the only exported symbol (DS_PLUGIN_EXPORT; everything else is static and
 * the build hides symbols by default). It may run more than once if the server opens the file
 * again, so it only records the host and returns the same table. Returning NULL refuses a host
 * this plugin cannot work with. */
const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
