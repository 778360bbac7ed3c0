/*
 * old_abi_layout: "old plugins keep loading". The table is declared here as ABI 1.0 laid it out,
 * frozen, instead of using the current ds_plugin_api, and reports minor 0 and that struct's size.
 * While 1.0 is the current ABI it loads like any plugin; once fields are appended to
 * ds_plugin_api it proves the server still loads a table that lacks them (and reads them as 0).
 */
#include "fixture_util.h"

/* ds_plugin_api of ABI 1.0. Never edit: this is what an old plugin binary contains. */
typedef struct ds_plugin_api_1_0 {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t flags;
    const char *name;
    const ds_model_desc *model;
    ds_status (*create)(const char *config_json, void **instance, ds_error *err);
    ds_status (*execute)(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                         ds_error *err);
    void (*destroy)(void *instance);
} ds_plugin_api_1_0;

static ds_status fx_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                            ds_error *err)
{
    (void)instance;
    return fx_quadratic_execute(req, resp, err);
}

static const ds_plugin_api_1_0 api = {
    .struct_size = sizeof(ds_plugin_api_1_0),
    .abi_major = 1,
    .abi_minor = 0,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "fixture old_abi_layout",
    .model = &fx_model,
    .create = ex_create_stateless,
    .execute = fx_execute,
    .destroy = ex_destroy_stateless,
};

/* The loader reads only struct_size bytes of what this returns, so handing it the smaller 1.0
 * struct is exactly what an old binary does. */
const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? (const ds_plugin_api *)(const void *)&api : NULL;
}
