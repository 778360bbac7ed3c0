/*
 * slow: quadratic_predictor v1 that sleeps `sleep_ms` (config, default 200, at most 60000) in
 * every execute(). Integration tests use it to hold requests in flight, e.g. to check that
 * undeploy drains them before dlclose.
 */
#include "fixture_util.h"

typedef struct slow {
    long sleep_ms;
} slow;

static ds_status slow_create(const char *config_json, void **instance, ds_error *err)
{
    double ms = 200;
    if (fx_config_range(config_json, "sleep_ms", 0, 60000, &ms, err) != DS_OK)
        return err->code;
    slow *s = malloc(sizeof(*s));
    if (s == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    s->sleep_ms = (long)ms;
    *instance = s;
    return DS_OK;
}

static ds_status slow_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                              ds_error *err)
{
    const slow *s = instance;
    fx_sleep_ms(s->sleep_ms);
    return fx_quadratic_execute(req, resp, err);
}

static void slow_destroy(void *instance)
{
    free(instance);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE, /* the instance is read-only after create() */
    .name = "fixture slow",
    .model = &fx_model,
    .create = slow_create,
    .execute = slow_execute,
    .destroy = slow_destroy,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
