/*
 * abi_1_1: a plugin that uses every ABI 1.1 addition, for the loader unit tests and the
 * integration tests (side by side with ABI 1.0 plugins, instance pools, execute_batch).
 *
 *   - entry dynserve_plugin_init (built with FX_REFUSE: refuses with a message instead);
 *   - load/unload hooks, counted (process-wide, shown in `info`);
 *   - create_instance reads the context and describes its OWN IO (the table's model is a
 *     DS_MODEL_DYNAMIC_IO placeholder): input `x` FP32 [-1,2] -> `sum` FP32 [-1,1] (row sums)
 *     and `info` INT32 [6] = {instance_index, instance_count, loads, unloads, most instances
 *     seen executing at once, batch size of this call (0 = execute)};
 *   - logf names the deployment; execute polls is_cancelled;
 *   - not DS_PLUGIN_THREAD_SAFE: an instance that is entered twice at once fails the request
 *     ("instance entered concurrently"), which is how the tests prove the server's contract;
 *   - execute_batch with max_batch_size 8;
 *   - config {"sleep_ms": N} sleeps in each execute (to hold requests in flight);
 *   - config {"wait_cancel_ms": N}: execute polls is_cancelled every millisecond for up to N ms
 *     and, when it reports, logs "abi_1_1: <deployment> saw CANCELLED after <ms> ms" and returns
 *     that status (a long computation that stops for a client that went away).
 */
#include <stdatomic.h>

#include "fixture_util.h"

typedef struct inst {
    uint32_t index, count;
    long sleep_ms;
    long wait_cancel_ms;
    atomic_int busy;
    const ds_deployment *dep;
} inst;

static atomic_int loads, unloads, running, most_running;

static const ds_io_desc own_inputs[] = {
    {.name = "x", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 2}},
};
static const ds_io_desc own_outputs[] = {
    {.name = "sum", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
    {.name = "info", .datatype = DS_TYPE_INT32, .rank = 1, .shape = {6}},
};
static const ds_model_desc own_model = {
    .struct_size = sizeof(ds_model_desc),
    .platform = "fixture_abi_1_1",
    .input_count = 1,
    .inputs = own_inputs,
    .output_count = 2,
    .outputs = own_outputs,
};
static const ds_model_desc placeholder = {
    .struct_size = sizeof(ds_model_desc),
    .flags = DS_MODEL_DYNAMIC_IO,
    .platform = "fixture_abi_1_1",
};

static void fx_logf(const ds_deployment *dep, const char *fmt, const char *a, unsigned b)
{
    const ds_host_api *host = atomic_load(&ex_host);
    if (host->struct_size >= offsetof(ds_host_api, logf) + sizeof(host->logf) && host->logf)
        host->logf(dep, DS_LOG_INFO, fmt, a, b);
}

static ds_status fx_create_instance(ds_instance_context *ctx, void **instance, ds_error *err)
{
    double ms = 0;
    double wait_ms = 0;
    if (fx_config_range(ctx->config_json, "sleep_ms", 0, 60000, &ms, err) != DS_OK ||
        fx_config_range(ctx->config_json, "wait_cancel_ms", 0, 600000, &wait_ms, err) != DS_OK)
        return DS_ERR_INVALID_ARGUMENT;
    if (ctx->model_name == NULL || ctx->model_version == NULL || ctx->deployment_id == NULL)
        return ds_error_set(err, DS_ERR_INTERNAL, "context lacks model, version or deployment");
    inst *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    s->index = ctx->instance_index;
    s->count = ctx->instance_count;
    s->sleep_ms = (long)ms;
    s->wait_cancel_ms = (long)wait_ms;
    s->dep = ctx->deployment;
    ctx->model = &own_model;
    fx_logf(s->dep, "abi_1_1: created instance for %s (index %u)", ctx->model_name, s->index);
    *instance = s;
    return DS_OK;
}

static void fx_destroy(void *instance)
{
    free(instance);
}

/* One request: sum of each row of x, and the info vector. */
static ds_status fx_run(inst *s, const ds_infer_request *req, ds_infer_response *resp, int batch,
                        ds_error *err)
{
    ex_matrix x = {NULL, 0, 0};
    ds_status st = ex_input_fp32_matrix(req, "x", 2, &x, err);
    if (st != DS_OK)
        return st;
    int64_t shape[2] = {(int64_t)x.rows, 1};
    void *y, *info;
    st = ex_add_output(resp, "sum", DS_TYPE_FP32, 2, shape, x.rows * sizeof(float), &y, err);
    for (size_t r = 0; st == DS_OK && r < x.rows; r++)
        ex_put_fp32(y, r, ex_get_fp32(x.data, 2 * r) + ex_get_fp32(x.data, 2 * r + 1));
    int64_t ishape[1] = {6};
    if (st == DS_OK)
        st = ex_add_output(resp, "info", DS_TYPE_INT32, 1, ishape, 6 * sizeof(int32_t), &info, err);
    if (st != DS_OK)
        return st;
    int32_t v[6] = {(int32_t)s->index,     (int32_t)s->count,          atomic_load(&loads),
                    atomic_load(&unloads), atomic_load(&most_running), batch};
    memcpy(info, v, sizeof v);
    return DS_OK;
}

/* Enter the instance (failing if someone else is in it), sleep, and note the parallelism. */
static ds_status fx_enter(inst *s, ds_error *err)
{
    if (atomic_fetch_add(&s->busy, 1) != 0) {
        atomic_fetch_sub(&s->busy, 1);
        return ds_error_set(err, DS_ERR_INTERNAL, "instance %u entered concurrently", s->index);
    }
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&most_running);
    while (now > seen && !atomic_compare_exchange_weak(&most_running, &seen, now))
        ;
    if (s->sleep_ms > 0)
        fx_sleep_ms(s->sleep_ms);
    return DS_OK;
}

static void fx_leave(inst *s)
{
    atomic_fetch_sub(&running, 1);
    atomic_fetch_sub(&s->busy, 1);
}

static ds_status fx_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                            ds_error *err)
{
    inst *s = instance;
    ds_status st = fx_enter(s, err);
    if (st != DS_OK)
        return st;
    const ds_host_api *host = atomic_load(&ex_host);
    ds_status gone = host->is_cancelled != NULL ? host->is_cancelled(resp) : DS_OK;
    for (long waited = 0; gone == DS_OK && waited < s->wait_cancel_ms; waited++) {
        fx_sleep_ms(1);
        gone = host->is_cancelled(resp);
        if (gone != DS_OK)
            fx_logf(s->dep, "abi_1_1: saw %s after %u ms",
                    gone == DS_ERR_CANCELLED ? "CANCELLED" : "DEADLINE_EXCEEDED",
                    (unsigned)(waited + 1));
    }
    if (gone != DS_OK)
        st = ds_error_set(err, gone, "request abandoned");
    else
        st = fx_run(s, req, resp, 0, err);
    fx_leave(s);
    return st;
}

static ds_status fx_execute_batch(void *instance, uint32_t count,
                                  const ds_infer_request *const *requests,
                                  ds_infer_response *const *responses, ds_error *errors)
{
    inst *s = instance;
    if (count == 0 || count > 8)
        return ds_error_set(&errors[0], DS_ERR_INVALID_ARGUMENT, "batch of %u", count);
    ds_status st = fx_enter(s, &errors[0]);
    if (st != DS_OK)
        return st;
    for (uint32_t i = 0; i < count; i++)
        fx_run(s, requests[i], responses[i], (int)count, &errors[i]);
    fx_leave(s);
    return DS_OK;
}

static ds_status fx_load(const ds_load_context *ctx, ds_error *err)
{
    if (ctx == NULL || ctx->plugin_path == NULL)
        return ds_error_set(err, DS_ERR_INTERNAL, "load without a context");
    atomic_fetch_add(&loads, 1);
    return DS_OK;
}

static void fx_unload(void)
{
    atomic_fetch_add(&unloads, 1);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = 1,
    .flags = 0,
    .name = "fixture abi_1_1",
    .model = &placeholder,
    .execute = fx_execute,
    .destroy = fx_destroy,
    .create_instance = fx_create_instance,
    .load = fx_load,
    .unload = fx_unload,
    .execute_batch = fx_execute_batch,
    .max_batch_size = 8,
};

DS_PLUGIN_EXPORT ds_status dynserve_plugin_init(const ds_host_api *host,
                                                const ds_plugin_api **table, ds_error *err)
{
#ifdef FX_REFUSE
    (void)host;
    (void)table;
    (void)api;
    /* The return value wins: err->code is left at a different value on purpose. */
    err->code = DS_OK;
    snprintf(err->message, sizeof err->message, "fixture refuses this host: needs a GPU");
    return DS_ERR_UNSUPPORTED;
#else
    if (!ex_accept_host(host))
        return ds_error_set(err, DS_ERR_UNSUPPORTED, "host lacks output_alloc");
    *table = &api;
    return DS_OK;
#endif
}
