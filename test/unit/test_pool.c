/*
 * Unit tests for src/plugin/pool.c and the ABI 1.1 paths of src/plugin/loader.c, with the
 * abi_1_1 and old-ABI fixture plugins: the context reaches the instance, the instance's own IO
 * description is used, load/unload hooks run once per image, the entry's refusal message is
 * reported, a non-thread-safe pool hands each instance to one request at a time while
 * different instances run in parallel, and a 1.1 plugin's execute_batch can be called.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "loader.h"
#include "oip.h"
#include "pool.h"

#define ERRLEN 512

static void fixture_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s.so", DS_TEST_FIXTURES_DIR, name);
}

static loader_plugin *open_fixture(const char *name)
{
    char path[1024], err[ERRLEN] = "";
    fixture_path(path, sizeof path, name);
    loader_plugin *p = NULL;
    if (loader_open(path, plugin_host_api(), &p, err, sizeof err) != 0)
        fail_msg("cannot open %s: %s", name, err);
    return p;
}

static loader_instance_args args_for(const char *config)
{
    loader_instance_args a = {
        .model_name = "m", .model_version = "1", .deployment_id = "m/1#1", .config_json = config};
    return a;
}

/* Run one request {"x": [[a, b]]} on instance; returns the 6 info ints and the sum. */
static ds_status run_one(const ds_plugin_api *api, void *instance, float a, float b, float *sum,
                         int32_t info[6])
{
    oip_arena *arena = oip_arena_new();
    oip_response out;
    oip_response_init(&out, arena);
    float x[2] = {a, b};
    int64_t shape[2] = {1, 2};
    ds_tensor t = {.name = "x",
                   .datatype = DS_TYPE_FP32,
                   .rank = 2,
                   .shape = shape,
                   .data = x,
                   .byte_size = sizeof x,
                   .element_count = 2};
    ds_infer_request req = {.struct_size = sizeof req, .input_count = 1, .inputs = &t};
    ds_error err = {0};
    ds_status st = api->execute(instance, &req, &out, &err);
    if (st == DS_OK) {
        assert_int_equal(out.count, 2);
        memcpy(sum, out.outputs[0].data, sizeof *sum);
        memcpy(info, out.outputs[1].data, 6 * sizeof(int32_t));
    }
    oip_arena_free(arena);
    return st;
}

static void test_instance_context_and_own_io_description(void **state)
{
    (void)state;
    loader_plugin *p = open_fixture("abi_1_1");
    assert_true(loader_model(p)->flags & DS_MODEL_DYNAMIC_IO); /* the table's placeholder */
    loader_instance_args a = args_for("{}");
    inst_pool *pool = NULL;
    char err[ERRLEN] = "";
    assert_int_equal(pool_create(p, &a, 3, &pool, err, sizeof err), 0);
    const ds_model_desc *m = pool_model(pool);
    assert_int_equal(m->input_count, 1);
    assert_string_equal(m->inputs[0].name, "x");
    assert_string_equal(m->outputs[1].name, "info");
    assert_int_equal(pool_count(pool), 3);
    uint32_t slot;
    void *inst = pool_acquire(pool, &slot);
    float sum = 0;
    int32_t info[6];
    assert_int_equal(run_one(loader_api(p), inst, 1.5f, 2.0f, &sum, info), DS_OK);
    pool_release(pool, slot);
    assert_true(sum == 3.5f);
    assert_int_equal(info[0], 0); /* first slot handed out is instance 0 */
    assert_int_equal(info[1], 3); /* instance_count reached the instance */
    assert_true(info[2] >= 1);    /* the load hook ran */
    pool_free(pool);
    loader_close(p);
}

static void test_load_runs_once_per_image_and_unload_after_the_last_close(void **state)
{
    (void)state;
    loader_plugin *a = open_fixture("abi_1_1");
    loader_plugin *b = open_fixture("abi_1_1"); /* same file: same image */
    inst_pool *pool = NULL;
    char err[ERRLEN];
    loader_instance_args args = args_for("{}");
    assert_int_equal(pool_create(b, &args, 1, &pool, err, sizeof err), 0);
    uint32_t slot;
    float sum;
    int32_t before[6], after[6];
    assert_int_equal(run_one(loader_api(b), pool_acquire(pool, &slot), 0, 0, &sum, before), DS_OK);
    pool_release(pool, slot);
    loader_close(a); /* b still uses the image: no unload yet */
    assert_int_equal(run_one(loader_api(b), pool_acquire(pool, &slot), 0, 0, &sum, after), DS_OK);
    pool_release(pool, slot);
    assert_int_equal(after[2], before[2]); /* no second load while the image stayed open */
    assert_int_equal(after[3], before[3]); /* and no unload */
    pool_free(pool);
    loader_close(b);
}

static void test_entry_refusal_message_is_reported(void **state)
{
    (void)state;
    char path[1024], err[ERRLEN] = "";
    fixture_path(path, sizeof path, "abi_1_1_refuses");
    loader_plugin *p = NULL;
    assert_int_equal(loader_open(path, plugin_host_api(), &p, err, sizeof err), -1);
    assert_null(p);
    assert_non_null(strstr(err, "needs a GPU"));
    assert_non_null(strstr(err, "UNSUPPORTED")); /* the return value wins over err->code */
}

static void test_abi_1_0_binary_loads_and_creates_through_create(void **state)
{
    (void)state;
    loader_plugin *p = open_fixture("quadratic_abi_1_0");
    assert_int_equal(loader_api(p)->abi_minor, 0);
    assert_null(loader_api(p)->create_instance);
    assert_null(loader_api(p)->execute_batch);
    loader_instance_args a = args_for(NULL);
    inst_pool *pool = NULL;
    char err[ERRLEN];
    assert_int_equal(pool_create(p, &a, 2, &pool, err, sizeof err), 0);
    assert_ptr_equal(pool_model(pool), loader_model(p));
    pool_free(pool);
    loader_close(p);
}

typedef struct load_arg {
    const ds_plugin_api *api;
    inst_pool *pool;
    int failures;
} load_arg;

static void *hammer(void *ud)
{
    load_arg *l = ud;
    for (int i = 0; i < 20; i++) {
        uint32_t slot;
        void *inst = pool_acquire(l->pool, &slot);
        float sum;
        int32_t info[6];
        ds_status st = run_one(l->api, inst, (float)i, 1.0f, &sum, info);
        pool_release(l->pool, slot);
        if (st != DS_OK || sum != (float)i + 1.0f)
            __atomic_add_fetch(&l->failures, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_non_thread_safe_pool_never_shares_an_instance(void **state)
{
    (void)state;
    loader_plugin *p = open_fixture("abi_1_1");
    loader_instance_args a = args_for("{\"sleep_ms\": 2}");
    inst_pool *pool = NULL;
    char err[ERRLEN];
    assert_int_equal(pool_create(p, &a, 4, &pool, err, sizeof err), 0);
    load_arg l = {loader_api(p), pool, 0};
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, hammer, &l);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    /* the fixture fails a request that enters a busy instance */
    assert_int_equal(l.failures, 0);
    pool_free(pool);
    loader_close(p);
}

static void test_execute_batch_of_a_1_1_plugin_can_be_called(void **state)
{
    (void)state;
    loader_plugin *p = open_fixture("abi_1_1");
    const ds_plugin_api *api = loader_api(p);
    assert_non_null(api->execute_batch);
    assert_int_equal(api->max_batch_size, 8);
    loader_instance_args a = args_for("{}");
    inst_pool *pool = NULL;
    char err[ERRLEN];
    assert_int_equal(pool_create(p, &a, 1, &pool, err, sizeof err), 0);
    enum { N = 3 };
    oip_arena *arena = oip_arena_new();
    oip_response outs[N];
    ds_infer_response *resps[N];
    ds_infer_request reqs[N];
    const ds_infer_request *reqp[N];
    ds_tensor ts[N];
    float xs[N][2];
    int64_t shape[2] = {1, 2};
    ds_error errors[N];
    memset(errors, 0, sizeof errors);
    for (int i = 0; i < N; i++) {
        xs[i][0] = (float)i;
        xs[i][1] = 10.0f;
        ts[i] = (ds_tensor){.name = "x",
                            .datatype = DS_TYPE_FP32,
                            .rank = 2,
                            .shape = shape,
                            .data = xs[i],
                            .byte_size = sizeof xs[i],
                            .element_count = 2};
        reqs[i] =
            (ds_infer_request){.struct_size = sizeof reqs[i], .input_count = 1, .inputs = &ts[i]};
        reqp[i] = &reqs[i];
        oip_response_init(&outs[i], arena);
        resps[i] = &outs[i];
    }
    uint32_t slot;
    void *inst = pool_acquire(pool, &slot);
    assert_int_equal(api->execute_batch(inst, N, reqp, resps, errors), DS_OK);
    pool_release(pool, slot);
    for (int i = 0; i < N; i++) {
        assert_int_equal(errors[i].code, DS_OK);
        float sum;
        int32_t info[6];
        memcpy(&sum, outs[i].outputs[0].data, sizeof sum);
        memcpy(info, outs[i].outputs[1].data, sizeof info);
        assert_true(sum == (float)i + 10.0f);
        assert_int_equal(info[5], N); /* the batch size the plugin saw */
    }
    oip_arena_free(arena);
    pool_free(pool);
    loader_close(p);
}

/* The xgboost backend's execute_batch (rows of several requests in one prediction) gives each
 * request exactly what execute gives it, on the real breast_cancer example model. */
static void test_xgboost_execute_batch_equals_execute(void **state)
{
    (void)state;
    char so[1024], dir[1024], err[ERRLEN] = "";
    snprintf(so, sizeof so, "%s/../backends/xgboost/libdynserve_xgboost.so", DS_TEST_MODELS_DIR);
    snprintf(dir, sizeof dir, "%s/breast_cancer/1", DS_TEST_MODELS_DIR);
    loader_plugin *p = NULL;
    if (loader_open(so, plugin_host_api(), &p, err, sizeof err) != 0)
        fail_msg("%s", err);
    const ds_plugin_api *api = loader_api(p);
    assert_non_null(api->execute_batch);
    assert_true(api->max_batch_size >= 2);
    loader_instance_args a = args_for("{\"backend\":\"xgboost\"}");
    a.artifact_dir = dir;
    inst_pool *pool = NULL;
    assert_int_equal(pool_create(p, &a, 1, &pool, err, sizeof err), 0);
    assert_int_equal(pool_model(pool)->inputs[0].shape[1], 30);
    enum { N = 3, F = 30 };
    static float xs[N][2][F];
    int64_t shapes[N][2];
    ds_tensor ts[N];
    ds_infer_request reqs[N];
    const ds_infer_request *reqp[N];
    oip_response batched[N], single[N];
    ds_infer_response *resps[N];
    ds_error errors[N];
    memset(errors, 0, sizeof errors);
    oip_arena *arena = oip_arena_new();
    for (int i = 0; i < N; i++) {
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < F; c++)
                xs[i][r][c] = (float)((i * 7 + r * 3 + c) % 11) * 10.0f;
        shapes[i][0] = i == 1 ? 1 : 2; /* requests of 2, 1 and 2 rows */
        shapes[i][1] = F;
        ts[i] = (ds_tensor){.name = "input",
                            .datatype = DS_TYPE_FP32,
                            .rank = 2,
                            .shape = shapes[i],
                            .data = xs[i],
                            .byte_size = (size_t)shapes[i][0] * F * sizeof(float),
                            .element_count = (uint64_t)shapes[i][0] * F};
        reqs[i] =
            (ds_infer_request){.struct_size = sizeof reqs[i], .input_count = 1, .inputs = &ts[i]};
        reqp[i] = &reqs[i];
        oip_response_init(&batched[i], arena);
        oip_response_init(&single[i], arena);
        resps[i] = &batched[i];
    }
    uint32_t slot;
    void *inst = pool_acquire(pool, &slot);
    assert_int_equal(api->execute_batch(inst, N, reqp, resps, errors), DS_OK);
    for (int i = 0; i < N; i++) {
        ds_error e = {0};
        assert_int_equal(errors[i].code, DS_OK);
        assert_int_equal(api->execute(inst, &reqs[i], &single[i], &e), DS_OK);
        assert_int_equal(batched[i].count, single[i].count);
        for (uint32_t o = 0; o < single[i].count; o++) {
            assert_int_equal(batched[i].outputs[o].byte_size, single[i].outputs[o].byte_size);
            assert_memory_equal(batched[i].outputs[o].data, single[i].outputs[o].data,
                                single[i].outputs[o].byte_size);
        }
    }
    pool_release(pool, slot);
    oip_arena_free(arena);
    pool_free(pool);
    loader_close(p);
}

static void test_pool_rejects_bad_counts(void **state)
{
    (void)state;
    loader_plugin *p = open_fixture("abi_1_1");
    loader_instance_args a = args_for("{}");
    inst_pool *pool = NULL;
    char err[ERRLEN];
    assert_int_equal(pool_create(p, &a, 0, &pool, err, sizeof err), -1);
    assert_int_equal(pool_create(p, &a, POOL_MAX_INSTANCES + 1, &pool, err, sizeof err), -1);
    assert_null(pool);
    loader_instance_args bad = args_for("{\"sleep_ms\": -5}");
    assert_int_equal(pool_create(p, &bad, 2, &pool, err, sizeof err), -1);
    assert_non_null(strstr(err, "sleep_ms"));
    loader_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_context_and_own_io_description),
        cmocka_unit_test(test_load_runs_once_per_image_and_unload_after_the_last_close),
        cmocka_unit_test(test_entry_refusal_message_is_reported),
        cmocka_unit_test(test_abi_1_0_binary_loads_and_creates_through_create),
        cmocka_unit_test(test_non_thread_safe_pool_never_shares_an_instance),
        cmocka_unit_test(test_execute_batch_of_a_1_1_plugin_can_be_called),
        cmocka_unit_test(test_xgboost_execute_batch_equals_execute),
        cmocka_unit_test(test_pool_rejects_bad_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
