/*
 * fixed_cost: a model whose every call costs the same time however many rows it gets, for the
 * dynamic batching tests and bench/batching (the case batching exists for: a GPU kernel launch
 * or a remote call dominates the per-row work).
 *
 *   - input `x` FP32 [-1,1] -> `y` FP32 [-1,1] = 3x + 7, row by row (so a client whose answer
 *     holds another client's rows sees it), and `calls` INT32 [-1,1]: every row gets the number
 *     of requests of the call that computed it (1 from execute, n from execute_batch);
 *   - each execute / execute_batch call sleeps `cost_us` (config, default 1000) once (0: none);
 *   - not DS_PLUGIN_THREAD_SAFE, and an instance entered twice at once fails the call: the
 *     server must run one call per instance at a time;
 *   - execute_batch with max_batch_size 64 (ABI 1.1).
 */
#include <stdatomic.h>

#include "fixture_util.h"

typedef struct inst {
    long cost_us;
    atomic_int busy;
} inst;

static const ds_io_desc io_in[] = {
    {.name = "x", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};
static const ds_io_desc io_out[] = {
    {.name = "y", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
    {.name = "calls", .datatype = DS_TYPE_INT32, .rank = 2, .shape = {-1, 1}},
};
static const ds_model_desc model = {
    .struct_size = sizeof(ds_model_desc),
    .platform = "fixture_fixed_cost",
    .input_count = 1,
    .inputs = io_in,
    .output_count = 2,
    .outputs = io_out,
};

static ds_status fc_create(const char *config_json, void **instance, ds_error *err)
{
    double us = 1000;
    if (fx_config_range(config_json, "cost_us", 0, 1e6, &us, err) != DS_OK)
        return DS_ERR_INVALID_ARGUMENT;
    inst *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    s->cost_us = (long)us;
    *instance = s;
    return DS_OK;
}

static void fc_destroy(void *instance)
{
    free(instance);
}

static ds_status fc_rows(const ds_infer_request *req, ds_infer_response *resp, int32_t calls,
                         ds_error *err)
{
    ex_matrix x = {NULL, 0, 0};
    ds_status st = ex_input_fp32_matrix(req, "x", 1, &x, err);
    if (st != DS_OK)
        return st;
    int64_t shape[2] = {(int64_t)x.rows, 1};
    void *y, *c;
    st = ex_add_output(resp, "y", DS_TYPE_FP32, 2, shape, x.rows * sizeof(float), &y, err);
    if (st == DS_OK)
        st = ex_add_output(resp, "calls", DS_TYPE_INT32, 2, shape, x.rows * sizeof(int32_t), &c,
                           err);
    for (size_t r = 0; st == DS_OK && r < x.rows; r++) {
        ex_put_fp32(y, r, 3.0f * ex_get_fp32(x.data, r) + 7.0f);
        memcpy((char *)c + r * sizeof(int32_t), &calls, sizeof calls);
    }
    return st;
}

/* The fixed cost of one call, with the one-call-per-instance check around it. */
static ds_status fc_enter(inst *s, ds_error *err)
{
    if (atomic_fetch_add(&s->busy, 1) != 0) {
        atomic_fetch_sub(&s->busy, 1);
        return ds_error_set(err, DS_ERR_INTERNAL, "instance entered concurrently");
    }
    struct timespec ts = {.tv_sec = s->cost_us / 1000000, .tv_nsec = (s->cost_us % 1000000) * 1000};
    /* cost_us 0 is no cost: even a zero nanosleep costs a timer slack (~50 us) */
    while (s->cost_us > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return DS_OK;
}

static ds_status fc_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                            ds_error *err)
{
    inst *s = instance;
    ds_status st = fc_enter(s, err);
    if (st != DS_OK)
        return st;
    st = fc_rows(req, resp, 1, err);
    atomic_fetch_sub(&s->busy, 1);
    return st;
}

static ds_status fc_execute_batch(void *instance, uint32_t count,
                                  const ds_infer_request *const *requests,
                                  ds_infer_response *const *responses, ds_error *errors)
{
    inst *s = instance;
    if (count == 0 || count > 64)
        return ds_error_set(&errors[0], DS_ERR_INVALID_ARGUMENT, "batch of %u", count);
    ds_status st = fc_enter(s, &errors[0]);
    if (st != DS_OK)
        return st;
    for (uint32_t i = 0; i < count; i++)
        fc_rows(requests[i], responses[i], (int32_t)count, &errors[i]);
    atomic_fetch_sub(&s->busy, 1);
    return DS_OK;
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = 1,
    .name = "fixture fixed_cost",
    .model = &model,
    .create = fc_create,
    .execute = fc_execute,
    .destroy = fc_destroy,
    .execute_batch = fc_execute_batch,
    .max_batch_size = 64,
};

DS_PLUGIN_EXPORT const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
