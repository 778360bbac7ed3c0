/*
 * abi_minor_too_new: a plugin built for a newer ABI minor than the server's: the loader must
 * refuse it (it may rely on host fields this server does not have).
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
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR + 1,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "fixture abi_minor_too_new",
    .model = &fx_model,
    .create = ex_create_stateless,
    .execute = fx_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
