/*
 * flaky: quadratic_predictor v1 that misbehaves on purpose, for error-rate and latency tests.
 * Config (all optional): {"fail_rate":0.2,"sleep_ms":0,"sleep_rate":0.0,"seed":0}
 *   fail_rate   fraction of execute() calls that fail with DS_ERR_INTERNAL   (default 0)
 *   sleep_rate  fraction of calls that first sleep sleep_ms milliseconds     (default 0)
 *   sleep_ms    0..60000                                                     (default 0)
 *   seed        varies the sequence                                          (default 0)
 * Deterministic: call n of an instance draws from hash(seed, n), where n comes from an atomic
 * counter, so concurrent calls never share a draw and the same config fails the same calls.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "fixture_util.h"

typedef struct flaky {
    double fail_rate;
    double sleep_rate;
    long sleep_ms;
    uint64_t seed;
    atomic_uint_fast64_t calls; /* execute() calls so far; the only mutable state */
} flaky;

/* splitmix64's finaliser: consecutive inputs give independent-looking outputs. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform in [0, 1) from the top 53 bits. */
static double draw(const flaky *f, uint64_t n, uint64_t stream)
{
    return (double)(mix(f->seed ^ mix(2 * n + stream)) >> 11) * 0x1.0p-53;
}

static ds_status flaky_create(const char *config_json, void **instance, ds_error *err)
{
    double fail_rate = 0, sleep_rate = 0, sleep_ms = 0, seed = 0;
    if (fx_config_range(config_json, "fail_rate", 0, 1, &fail_rate, err) != DS_OK ||
        fx_config_range(config_json, "sleep_rate", 0, 1, &sleep_rate, err) != DS_OK ||
        fx_config_range(config_json, "sleep_ms", 0, 60000, &sleep_ms, err) != DS_OK ||
        fx_config_range(config_json, "seed", 0, 1e15, &seed, err) != DS_OK)
        return err->code;
    flaky *f = malloc(sizeof(*f));
    if (f == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    f->fail_rate = fail_rate;
    f->sleep_rate = sleep_rate;
    f->sleep_ms = (long)sleep_ms;
    f->seed = (uint64_t)seed;
    atomic_init(&f->calls, 0);
    *instance = f;
    return DS_OK;
}

static ds_status flaky_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                               ds_error *err)
{
    flaky *f = instance;
    uint64_t n = atomic_fetch_add(&f->calls, 1);
    if (f->sleep_ms > 0 && draw(f, n, 1) < f->sleep_rate)
        fx_sleep_ms(f->sleep_ms);
    if (draw(f, n, 0) < f->fail_rate)
        return ds_error_set(err, DS_ERR_INTERNAL, "flaky fixture: injected failure on call %llu",
                            (unsigned long long)n);
    return fx_quadratic_execute(req, resp, err);
}

static void flaky_destroy(void *instance)
{
    free(instance);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE, /* `calls` is atomic; the rest is read-only */
    .name = "fixture flaky",
    .model = &fx_model,
    .create = flaky_create,
    .execute = flaky_execute,
    .destroy = flaky_destroy,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
