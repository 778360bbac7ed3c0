/*
 * create_fails: loads cleanly, but create() always refuses with DS_ERR_UNSUPPORTED and a
 * message. loader_instance_create and loader_probe must pass that message on; nothing is left
 * to destroy.
 */
#include "fixture_util.h"

static ds_status fx_create(const char *config_json, void **instance, ds_error *err)
{
    *instance = NULL;
    return ds_error_set(err, DS_ERR_UNSUPPORTED,
                        "create_fails fixture: config %.64s is not supported", config_json);
}

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
    .name = "fixture create_fails",
    .model = &fx_model,
    .create = fx_create,
    .execute = fx_execute,
    .destroy = ex_destroy_stateless,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
