/*
 * identity v1: returns every input as an output of the same name, datatype, shape and bytes.
 * Any number of inputs of any datatype (BYTES included) and rank is accepted: the model is
 * flagged DS_MODEL_DYNAMIC_IO and declares no inputs or outputs, so the server forwards whatever
 * the client sent. Useful for testing the codec end to end. If the client names outputs, only
 * those inputs are echoed.
 * quadratic_predictor_v1.c explains each part of a plugin.
 */
#include <dynserve/plugin.h>

#include "example_util.h"

static const ds_model_desc model = {
    .struct_size = sizeof(ds_model_desc),
    .flags = DS_MODEL_DYNAMIC_IO,
    .platform = "dynserve_c",
    .input_count = 0,
    .inputs = NULL,
    .output_count = 0,
    .outputs = NULL,
};

/* The server has decoded and checked `t`; re-check what a copy relies on so a bad tensor is an
 * error, not a crash. The host checks byte_size against datatype and shape when adding it. */
static ds_status check_tensor(const ds_tensor *t, uint32_t i, ds_error *err)
{
    if (t->name == NULL)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input %u has no name", i);
    if (t->datatype < DS_TYPE_BOOL || t->datatype > DS_TYPE_BYTES)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' has datatype %d", t->name,
                            (int)t->datatype);
    if (t->rank > DS_MAX_RANK || (t->rank > 0 && t->shape == NULL))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' has a bad shape", t->name);
    if (t->byte_size > 0 && t->data == NULL)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' has no data", t->name);
    return DS_OK;
}

static ds_status echo(const ds_tensor *t, ds_infer_response *resp, ds_error *err)
{
    void *out;
    ds_status st =
        ex_add_output(resp, t->name, t->datatype, t->rank, t->shape, t->byte_size, &out, err);
    if (st == DS_OK && t->byte_size > 0)
        memcpy(out, t->data, t->byte_size);
    return st;
}

static ds_status identity_execute(void *instance, const ds_infer_request *req,
                                  ds_infer_response *resp, ds_error *err)
{
    (void)instance;
    if (req == NULL || (req->input_count > 0 && req->inputs == NULL))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "no inputs");
    for (uint32_t i = 0; i < req->input_count; i++) {
        const ds_tensor *t = &req->inputs[i];
        ds_status st = check_tensor(t, i, err);
        if (st == DS_OK && ex_output_wanted(req, t->name))
            st = echo(t, resp, err);
        if (st != DS_OK)
            return st;
    }
    return DS_OK;
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "identity v1",
    .model = &model,
    .create = ex_create_stateless,
    .execute = identity_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
