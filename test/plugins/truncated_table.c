/*
 * truncated_table: a table whose struct_size does not cover the ABI 1.0 table (destroy is
 * missing): the loader must refuse it without reading past struct_size.
 */
#include <stddef.h>

#include "fixture_util.h"

static ds_status fx_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                            ds_error *err)
{
    (void)instance;
    return fx_quadratic_execute(req, resp, err);
}

static const ds_plugin_api api = {
    .struct_size = offsetof(ds_plugin_api, destroy),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "fixture truncated_table",
    .model = &fx_model,
    .create = ex_create_stateless,
    .execute = fx_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
