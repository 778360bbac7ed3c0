/*
 * bad_metadata: quadratic_predictor v1 with one thing wrong in its table or model description,
 * chosen at compile time with -DFX_CASE=<case> (see CMakeLists.txt, which builds one .so per
 * case). The loader must refuse each with a message naming the problem. One case, dynamic_any,
 * is valid and must load: DS_TYPE_ANY in a DS_MODEL_DYNAMIC_IO model.
 */
#include "fixture_util.h"

#define FX_DUPLICATE_INPUT  1 /* two inputs called "input" (the default case) */
#define FX_NULL_MODEL       2 /* table.model == NULL */
#define FX_MODEL_SIZE       3 /* model struct_size too small */
#define FX_BAD_NAME_CHARS   4 /* "in put" */
#define FX_LONG_NAME        5 /* 65 characters */
#define FX_NULL_NAME        6
#define FX_BAD_DATATYPE     7  /* 99 */
#define FX_ANY_NOT_DYNAMIC  8  /* DS_TYPE_ANY without DS_MODEL_DYNAMIC_IO */
#define FX_BAD_RANK         9  /* DS_MAX_RANK + 1 */
#define FX_BAD_DIM          10 /* a dimension of -2 */
#define FX_TOO_MANY_INPUTS  11 /* 257 */
#define FX_NO_OUTPUTS       12 /* a typed model with nothing to return */
#define FX_NULL_EXECUTE     13
#define FX_DUPLICATE_OUTPUT 14
#define FX_DYNAMIC_ANY      15 /* valid */

#ifndef FX_CASE
#define FX_CASE FX_DUPLICATE_INPUT
#endif
#define IS(c) (FX_CASE == (c))

#define NAME_65 "a234567890123456789012345678901234567890123456789012345678901234x"

static const ds_io_desc inputs[] = {
    {.name = IS(FX_BAD_NAME_CHARS) ? "in put"
             : IS(FX_LONG_NAME)    ? NAME_65
             : IS(FX_NULL_NAME)    ? NULL
                                   : "input",
     .datatype = IS(FX_BAD_DATATYPE)                            ? (ds_datatype)99
                 : IS(FX_ANY_NOT_DYNAMIC) || IS(FX_DYNAMIC_ANY) ? DS_TYPE_ANY
                                                                : DS_TYPE_FP32,
     .rank = IS(FX_BAD_RANK) ? DS_MAX_RANK + 1 : 2,
     .shape = {IS(FX_BAD_DIM) ? -2 : -1, 1}},
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};

static const ds_io_desc outputs[] = {
    {.name = "prediction", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
    {.name = "prediction", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};

/* The loader checks a count before touching the array, so 257 over a 2-entry array is safe. */
static const ds_model_desc model = {
    .struct_size = IS(FX_MODEL_SIZE) ? 4 : sizeof(ds_model_desc),
    .flags = IS(FX_DYNAMIC_ANY) ? DS_MODEL_DYNAMIC_IO : 0,
    .platform = "dynserve_c",
    .input_count = IS(FX_DUPLICATE_INPUT)   ? 2
                   : IS(FX_TOO_MANY_INPUTS) ? 257
                                            : 1,
    .inputs = inputs,
    .output_count = IS(FX_NO_OUTPUTS)         ? 0
                    : IS(FX_DUPLICATE_OUTPUT) ? 2
                                              : 1,
    .outputs = outputs,
};

static ds_status fx_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                            ds_error *err)
{
    (void)instance;
    return fx_quadratic_execute(req, resp, err);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "fixture bad_metadata",
    .model = IS(FX_NULL_MODEL) ? NULL : &model,
    .create = ex_create_stateless,
    .execute = IS(FX_NULL_EXECUTE) ? NULL : fx_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
