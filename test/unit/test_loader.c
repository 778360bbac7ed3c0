/*
 * Unit tests for the plugin loader (src/plugin/loader.c) and the plugins it loads: the five bundled
 * example models (metadata as design.md states it, and their arithmetic), one fixture plugin per
 * loader failure (test/plugins/), the runtime fixtures flaky and slow, loader_probe, and
 * concurrent open/close.
 *
 * Plugins are executed through the unit tests' host (support/test_host.h), so these tests do
 * not depend on the OIP codec.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader.h"
#include "support/test_host.h"

#ifndef DS_TEST_MODELS_DIR
#error "DS_TEST_MODELS_DIR must name the built model repository (build/models)"
#endif
#ifndef DS_TEST_FIXTURES_DIR
#error "DS_TEST_FIXTURES_DIR must name the built fixture plugins (build/test/plugins)"
#endif

#define ERRLEN 512

/* ---- helpers ------------------------------------------------------------------------------- */

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        if (strstr((haystack), (needle)) == NULL)                                                  \
            fail_msg("\"%s\" does not contain \"%s\"", (haystack), (needle));                      \
    } while (0)

static const char *model_path(const char *model, int version)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s/%d/model.so", DS_TEST_MODELS_DIR, model, version);
    return path;
}

static const char *fixture_path(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s.so", DS_TEST_FIXTURES_DIR, name);
    return path;
}

static loader_plugin *open_ok(const char *path)
{
    loader_plugin *p = NULL;
    char err[ERRLEN] = "";
    if (loader_open(path, &test_host, &p, err, sizeof(err)) != 0)
        fail_msg("loader_open(%s) failed: %s", path, err);
    return p;
}

/* loader_open must fail, leave *out NULL and say something containing `expect`. The message is
 * returned in a static buffer for further checks. */
static const char *open_fails(const char *path, const char *expect)
{
    static char err[ERRLEN];
    loader_plugin *p = (loader_plugin *)&err; /* must be reset to NULL */
    err[0] = '\0';
    assert_int_equal(loader_open(path, &test_host, &p, err, sizeof(err)), -1);
    assert_null(p);
    assert_contains(err, expect);
    return err;
}

/* True when `path` is still mapped in this process (RTLD_NOLOAD does not load it). */
static int is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h == NULL)
        return 0;
    dlclose(h);
    return 1;
}

static void *create_ok(loader_plugin *p, const char *config)
{
    void *inst = NULL;
    char err[ERRLEN] = "";
    if (loader_instance_create(p, config, &inst, err, sizeof(err)) != 0)
        fail_msg("create failed: %s", err);
    return inst;
}

typedef struct fp32_request {
    int64_t shape[2];
    ds_tensor tensor;
    ds_infer_request req;
} fp32_request;

/* A request with one FP32 [rows, cols] input called "input". `x` is borrowed. */
static void fp32_request_init(fp32_request *r, const float *x, int64_t rows, int64_t cols)
{
    memset(r, 0, sizeof(*r));
    r->shape[0] = rows;
    r->shape[1] = cols;
    r->tensor.name = "input";
    r->tensor.datatype = DS_TYPE_FP32;
    r->tensor.rank = 2;
    r->tensor.shape = r->shape;
    r->tensor.data = x;
    r->tensor.byte_size = (size_t)(rows * cols) * sizeof(float);
    r->tensor.element_count = (uint64_t)(rows * cols);
    r->req.struct_size = sizeof(ds_infer_request);
    r->req.input_count = 1;
    r->req.inputs = &r->tensor;
}

static ds_status execute(loader_plugin *p, void *inst, const ds_infer_request *req,
                         test_response *resp, ds_error *err)
{
    memset(err, 0, sizeof(*err));
    return loader_api(p)->execute(inst, req, (ds_infer_response *)resp, err);
}

static float fp32_at(const test_output *o, size_t i)
{
    float v;
    memcpy(&v, o->data + i * sizeof(v), sizeof(v));
    return v;
}

static int32_t int32_at(const test_output *o, size_t i)
{
    int32_t v;
    memcpy(&v, o->data + i * sizeof(v), sizeof(v));
    return v;
}

static void assert_io(const ds_io_desc *d, const char *name, ds_datatype type, int64_t dim1)
{
    assert_string_equal(d->name, name);
    assert_int_equal(d->datatype, type);
    assert_int_equal(d->rank, 2);
    assert_int_equal(d->shape[0], -1);
    assert_int_equal(d->shape[1], dim1);
}

/* Run quadratic_predictor `version` on xs and compare with f. */
static void check_quadratic(int version, double (*f)(double))
{
    static const float xs[] = {0.0f, 1.0f, -1.0f, 0.5f, 2.0f, -3.25f};
    const size_t n = sizeof(xs) / sizeof(xs[0]);
    loader_plugin *p = open_ok(model_path("quadratic_predictor", version));
    void *inst = create_ok(p, NULL);
    fp32_request r;
    fp32_request_init(&r, xs, (int64_t)n, 1);
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, inst, &r.req, &resp, &err), DS_OK);
    const test_output *y = test_response_find(&resp, "prediction");
    assert_non_null(y);
    assert_int_equal(y->datatype, DS_TYPE_FP32);
    assert_int_equal(y->rank, 2);
    assert_int_equal(y->shape[0], (int64_t)n);
    assert_int_equal(y->shape[1], 1);
    assert_int_equal(y->byte_size, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        assert_float_equal(fp32_at(y, i), f(xs[i]), 1e-5);
    test_response_free(&resp);
    loader_instance_destroy(p, inst);
    loader_close(p);
}

/* ---- example models: metadata -------------------------------------------------------------- */

static void test_quadratic_predictor_declares_fp32_input_and_prediction(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        loader_plugin *p = open_ok(model_path("quadratic_predictor", v));
        const ds_model_desc *m = loader_model(p);
        assert_ptr_equal(loader_api(p)->model, m);
        assert_int_equal(m->flags & DS_MODEL_DYNAMIC_IO, 0);
        assert_string_equal(m->platform, "dynserve_c");
        assert_int_equal(m->input_count, 1);
        assert_io(&m->inputs[0], "input", DS_TYPE_FP32, 1);
        assert_int_equal(m->output_count, 1);
        assert_io(&m->outputs[0], "prediction", DS_TYPE_FP32, 1);
        assert_true(loader_thread_safe(p));
        loader_close(p);
    }
}

static void test_binary_classifier_declares_probability_fp32_and_label_int32(void **state)
{
    (void)state;
    for (int v = 1; v <= 2; v++) {
        loader_plugin *p = open_ok(model_path("binary_classifier", v));
        const ds_model_desc *m = loader_model(p);
        assert_int_equal(m->input_count, 1);
        assert_io(&m->inputs[0], "input", DS_TYPE_FP32, 3);
        assert_int_equal(m->output_count, 2);
        assert_io(&m->outputs[0], "probability", DS_TYPE_FP32, 1);
        assert_io(&m->outputs[1], "label", DS_TYPE_INT32, 1);
        assert_true(loader_thread_safe(p));
        loader_close(p);
    }
}

static void test_identity_is_dynamic_io_and_thread_safe(void **state)
{
    (void)state;
    loader_plugin *p = open_ok(model_path("identity", 1));
    const ds_model_desc *m = loader_model(p);
    assert_true(m->flags & DS_MODEL_DYNAMIC_IO);
    assert_int_equal(m->input_count, 0);
    assert_int_equal(m->output_count, 0);
    assert_true(loader_thread_safe(p));
    assert_string_equal(loader_api(p)->name, "identity v1");
    loader_close(p);
}

/* ---- example models: arithmetic ------------------------------------------------------------ */

static double quadratic_v1(double x)
{
    return 2 * x * x + 3 * x + 1;
}

static double quadratic_v2(double x)
{
    return x * x - 1;
}

static void test_quadratic_v1_computes_2x2_plus_3x_plus_1(void **state)
{
    (void)state;
    check_quadratic(1, quadratic_v1);
}

static void test_quadratic_v2_computes_x2_minus_1(void **state)
{
    (void)state;
    check_quadratic(2, quadratic_v2);
}

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

/* Run binary_classifier `version` on three rows and compare with sigmoid(w·x + b). */
static void check_classifier(int version, const double w[3], double b)
{
    static const float x[] = {0.0f,  0.0f, 0.0f,  1.0f, 2.0f, 3.0f,
                              -1.0f, 0.5f, 0.25f, 1.0f, 0.5f, 0.0f};
    loader_plugin *p = open_ok(model_path("binary_classifier", version));
    void *inst = create_ok(p, "{}");
    fp32_request r;
    fp32_request_init(&r, x, 4, 3);
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, inst, &r.req, &resp, &err), DS_OK);
    const test_output *prob = test_response_find(&resp, "probability");
    const test_output *label = test_response_find(&resp, "label");
    assert_non_null(prob);
    assert_non_null(label);
    assert_int_equal(prob->shape[0], 4);
    assert_int_equal(label->datatype, DS_TYPE_INT32);
    assert_int_equal(label->shape[0], 4);
    for (size_t i = 0; i < 4; i++) {
        double expect = sigmoid(w[0] * x[3 * i] + w[1] * x[3 * i + 1] + w[2] * x[3 * i + 2] + b);
        assert_float_equal(fp32_at(prob, i), expect, 1e-6);
        assert_int_equal(int32_at(label, i), fp32_at(prob, i) >= 0.5f ? 1 : 0);
    }
    test_response_free(&resp);
    loader_instance_destroy(p, inst);
    loader_close(p);
}

static void test_binary_classifier_v1_computes_sigmoid_of_weighted_sum(void **state)
{
    (void)state;
    const double w[3] = {0.8, -0.4, 0.3};
    check_classifier(1, w, -0.1);
}

static void test_binary_classifier_v2_computes_sigmoid_of_sum_minus_1_5(void **state)
{
    (void)state;
    const double w[3] = {1.0, 1.0, 1.0};
    check_classifier(2, w, -1.5);
}

static void test_binary_classifier_label_is_one_exactly_at_half(void **state)
{
    (void)state;
    /* v2: x0 + x1 + x2 - 1.5 == 0 gives p == 0.5, which is label 1 (p >= 0.5). */
    static const float x[] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.4f};
    loader_plugin *p = open_ok(model_path("binary_classifier", 2));
    void *inst = create_ok(p, NULL);
    fp32_request r;
    fp32_request_init(&r, x, 2, 3);
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, inst, &r.req, &resp, &err), DS_OK);
    assert_int_equal(int32_at(test_response_find(&resp, "label"), 0), 1);
    assert_int_equal(int32_at(test_response_find(&resp, "label"), 1), 0);
    test_response_free(&resp);
    loader_instance_destroy(p, inst);
    loader_close(p);
}

static void test_binary_classifier_adds_only_the_requested_output(void **state)
{
    (void)state;
    static const float x[] = {1.0f, 2.0f, 3.0f};
    static const char *const want[] = {"label"};
    loader_plugin *p = open_ok(model_path("binary_classifier", 1));
    void *inst = create_ok(p, NULL);
    fp32_request r;
    fp32_request_init(&r, x, 1, 3);
    r.req.requested_output_count = 1;
    r.req.requested_outputs = want;
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, inst, &r.req, &resp, &err), DS_OK);
    assert_int_equal(resp.count, 1);
    assert_non_null(test_response_find(&resp, "label"));
    test_response_free(&resp);
    loader_instance_destroy(p, inst);
    loader_close(p);
}

static void test_identity_echoes_fp32_int64_bool_and_bytes(void **state)
{
    (void)state;
    static const float f[] = {1.5f, -2.0f, 3.25f, 4.0f};
    static const int64_t i64[] = {-1, 1LL << 40};
    static const uint8_t b[] = {1, 0, 1};
    static const unsigned char bytes[] = {2, 0, 0, 0, 'a', 'b', 3, 0, 0, 0, 'x', 'y', 'z'};
    static const int64_t s_f[] = {2, 2}, s_i64[] = {2}, s_b[] = {1, 3}, s_bytes[] = {2};
    const ds_tensor in[] = {
        {.name = "f",
         .datatype = DS_TYPE_FP32,
         .rank = 2,
         .shape = s_f,
         .data = f,
         .byte_size = sizeof(f),
         .element_count = 4},
        {.name = "i",
         .datatype = DS_TYPE_INT64,
         .rank = 1,
         .shape = s_i64,
         .data = i64,
         .byte_size = sizeof(i64),
         .element_count = 2},
        {.name = "b",
         .datatype = DS_TYPE_BOOL,
         .rank = 2,
         .shape = s_b,
         .data = b,
         .byte_size = sizeof(b),
         .element_count = 3},
        {.name = "s",
         .datatype = DS_TYPE_BYTES,
         .rank = 1,
         .shape = s_bytes,
         .data = bytes,
         .byte_size = sizeof(bytes),
         .element_count = 2},
    };
    ds_infer_request req = {.struct_size = sizeof(req), .input_count = 4, .inputs = in};
    loader_plugin *p = open_ok(model_path("identity", 1));
    void *inst = create_ok(p, NULL);
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, inst, &req, &resp, &err), DS_OK);
    assert_int_equal(resp.count, 4);
    for (size_t k = 0; k < 4; k++) {
        const test_output *o = &resp.out[k];
        assert_string_equal(o->name, in[k].name);
        assert_int_equal(o->datatype, in[k].datatype);
        assert_int_equal(o->rank, in[k].rank);
        assert_memory_equal(o->shape, in[k].shape, in[k].rank * sizeof(int64_t));
        assert_int_equal(o->byte_size, in[k].byte_size);
        assert_memory_equal(o->data, in[k].data, in[k].byte_size);
    }
    test_response_free(&resp);
    loader_instance_destroy(p, inst);
    loader_close(p);
}

static void test_identity_echoes_only_requested_outputs(void **state)
{
    (void)state;
    static const int32_t a[] = {1}, b[] = {2};
    static const int64_t shape[] = {1};
    static const char *const want[] = {"b"};
    const ds_tensor in[] = {
        {.name = "a",
         .datatype = DS_TYPE_INT32,
         .rank = 1,
         .shape = shape,
         .data = a,
         .byte_size = 4,
         .element_count = 1},
        {.name = "b",
         .datatype = DS_TYPE_INT32,
         .rank = 1,
         .shape = shape,
         .data = b,
         .byte_size = 4,
         .element_count = 1},
    };
    ds_infer_request req = {.struct_size = sizeof(req),
                            .input_count = 2,
                            .inputs = in,
                            .requested_output_count = 1,
                            .requested_outputs = want};
    loader_plugin *p = open_ok(model_path("identity", 1));
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, NULL, &req, &resp, &err), DS_OK);
    assert_int_equal(resp.count, 1);
    assert_string_equal(resp.out[0].name, "b");
    assert_int_equal(int32_at(&resp.out[0], 0), 2);
    test_response_free(&resp);
    loader_close(p);
}

static void test_identity_rejects_invalid_datatype_without_crashing(void **state)
{
    (void)state;
    static const int64_t shape[] = {1};
    static const int32_t a[] = {1};
    const ds_tensor in[] = {{.name = "a",
                             .datatype = DS_TYPE_ANY,
                             .rank = 1,
                             .shape = shape,
                             .data = a,
                             .byte_size = 4,
                             .element_count = 1}};
    ds_infer_request req = {.struct_size = sizeof(req), .input_count = 1, .inputs = in};
    loader_plugin *p = open_ok(model_path("identity", 1));
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, NULL, &req, &resp, &err), DS_ERR_INVALID_ARGUMENT);
    assert_contains(err.message, "'a'");
    test_response_free(&resp);
    loader_close(p);
}

/* ---- example models: defensive input checks ------------------------------------------------ */

/* Every typed example whose input has `cols` columns (0: every typed example) must turn `req`
 * into DS_ERR_INVALID_ARGUMENT mentioning `expect`, and add no output. */
static void assert_examples_reject(int cols, const ds_infer_request *req, const char *expect)
{
    static const struct {
        const char *model;
        int version;
        int cols;
    } typed[] = {{"quadratic_predictor", 1, 1},
                 {"quadratic_predictor", 2, 1},
                 {"binary_classifier", 1, 3},
                 {"binary_classifier", 2, 3}};
    for (size_t k = 0; k < sizeof(typed) / sizeof(typed[0]); k++) {
        if (cols != 0 && typed[k].cols != cols)
            continue;
        loader_plugin *p = open_ok(model_path(typed[k].model, typed[k].version));
        test_response resp = {0};
        ds_error err;
        assert_int_equal(execute(p, NULL, req, &resp, &err), DS_ERR_INVALID_ARGUMENT);
        assert_contains(err.message, expect);
        assert_int_equal(resp.count, 0);
        loader_close(p);
    }
}

static void test_examples_reject_wrong_input_count(void **state)
{
    (void)state;
    static const float x[] = {1, 2, 3};
    fp32_request r;
    fp32_request_init(&r, x, 1, 3);
    r.req.input_count = 0;
    assert_examples_reject(0, &r.req, "expected 1 input(s), got 0");
    ds_tensor two[2] = {r.tensor, r.tensor};
    r.req.input_count = 2;
    r.req.inputs = two;
    assert_examples_reject(0, &r.req, "got 2");
}

static void test_examples_reject_wrong_name_datatype_and_shape(void **state)
{
    (void)state;
    static const float x[] = {1, 2, 3, 4, 5, 6};
    fp32_request r;
    fp32_request_init(&r, x, 1, 3);
    r.tensor.name = "inputs";
    assert_examples_reject(0, &r.req, "missing input 'input'");
    fp32_request_init(&r, x, 1, 3);
    r.tensor.datatype = DS_TYPE_FP64;
    assert_examples_reject(0, &r.req, "must be FP32");
    fp32_request_init(&r, x, 6, 1);
    r.tensor.rank = 1;
    assert_examples_reject(0, &r.req, "must have shape");
    fp32_request_init(&r, x, 3, 2); /* neither 1 nor 3 columns */
    assert_examples_reject(0, &r.req, "must have shape");
}

static void test_examples_reject_byte_size_that_does_not_match_shape(void **state)
{
    (void)state;
    static const float x[] = {1, 2, 3};
    for (int cols = 1; cols <= 3; cols += 2) {
        fp32_request r;
        fp32_request_init(&r, x, 1, cols);
        r.shape[0] = 1000; /* claims more rows than the data holds */
        assert_examples_reject(cols, &r.req, "data bytes");
        r.shape[0] = INT64_MAX / 2; /* a row count whose byte size overflows */
        assert_examples_reject(cols, &r.req, "data bytes");
    }
}

static void test_examples_reject_nan_and_overflow_instead_of_returning_them(void **state)
{
    (void)state;
    const float nan_row[] = {NAN, 0, 0};
    fp32_request r;
    fp32_request_init(&r, nan_row, 1, 3);
    loader_plugin *p = open_ok(model_path("binary_classifier", 1));
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, NULL, &r.req, &resp, &err), DS_ERR_INVALID_ARGUMENT);
    assert_contains(err.message, "not a finite");
    test_response_free(&resp);
    loader_close(p);

    const float huge[] = {1e20f};
    fp32_request_init(&r, huge, 1, 1);
    p = open_ok(model_path("quadratic_predictor", 1));
    assert_int_equal(execute(p, NULL, &r.req, &resp, &err), DS_ERR_INVALID_ARGUMENT);
    assert_contains(err.message, "prediction[0]");
    test_response_free(&resp);
    loader_close(p);
}

static void test_examples_return_host_error_when_output_alloc_fails(void **state)
{
    (void)state;
    static const float x[] = {1.0f};
    fp32_request r;
    fp32_request_init(&r, x, 1, 1);
    loader_plugin *p = open_ok(model_path("quadratic_predictor", 1));
    test_response resp = {.refuse = 1};
    ds_error err;
    assert_int_equal(execute(p, NULL, &r.req, &resp, &err), DS_ERR_NO_MEMORY);
    assert_contains(err.message, "test host refuses output 'prediction'");
    loader_close(p);
}

static void test_examples_accept_an_empty_batch(void **state)
{
    (void)state;
    fp32_request r;
    fp32_request_init(&r, NULL, 0, 1);
    loader_plugin *p = open_ok(model_path("quadratic_predictor", 1));
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, NULL, &r.req, &resp, &err), DS_OK);
    assert_int_equal(resp.count, 1);
    assert_int_equal(resp.out[0].shape[0], 0);
    test_response_free(&resp);
    loader_close(p);
}

static void test_examples_refuse_a_host_of_another_abi_major(void **state)
{
    (void)state;
    ds_host_api other = test_host;
    other.abi_major = DS_PLUGIN_ABI_MAJOR + 1;
    loader_plugin *p = NULL;
    char err[ERRLEN];
    assert_int_equal(
        loader_open(model_path("quadratic_predictor", 1), &other, &p, err, sizeof(err)), -1);
    assert_null(p);
    assert_contains(err, "returned NULL");
    assert_contains(err, DS_PLUGIN_ENTRY_SYMBOL);
}

/* ---- loader failures ----------------------------------------------------------------------- */

static void test_open_missing_file_says_no_such_file(void **state)
{
    (void)state;
    const char *msg = open_fails(DS_TEST_FIXTURES_DIR "/does_not_exist.so", "No such file");
    assert_contains(msg, "does_not_exist.so");
}

static void test_open_directory_says_not_a_regular_file(void **state)
{
    (void)state;
    const char *msg = open_fails(DS_TEST_FIXTURES_DIR, "not a regular file");
    assert_contains(msg, DS_TEST_FIXTURES_DIR);
}

static void test_open_text_file_reports_the_dlopen_error(void **state)
{
    (void)state;
    const char *msg = open_fails(fixture_path("not_a_plugin"), "cannot load shared object");
    assert_contains(msg, "not_a_plugin.so");
}

static void test_open_bare_file_name_does_not_search_library_path(void **state)
{
    (void)state;
    /* libc.so.6 is on the library path but not in the working directory. */
    open_fails("libc.so.6", "No such file");
}

static void test_open_without_entry_symbol_names_file_and_symbol(void **state)
{
    (void)state;
    const char *msg = open_fails(fixture_path("no_entry"), "symbol '" DS_PLUGIN_ENTRY_SYMBOL "'");
    assert_contains(msg, "no_entry.so");
}

static void test_open_refuses_entry_that_returns_null(void **state)
{
    (void)state;
    const char *msg = open_fails(fixture_path("null_table"), "returned NULL");
    assert_contains(msg, "null_table.so");
}

static void test_open_refuses_other_abi_major(void **state)
{
    (void)state;
    char expect[128];
    snprintf(expect, sizeof(expect), "built for ABI 2.%d, server supports %d.%d",
             DS_PLUGIN_ABI_MINOR, DS_PLUGIN_ABI_MAJOR, DS_PLUGIN_ABI_MINOR);
    const char *msg = open_fails(fixture_path("abi_major_mismatch"), expect);
    assert_contains(msg, "abi_major_mismatch.so");
}

static void test_open_refuses_newer_abi_minor(void **state)
{
    (void)state;
    char expect[128];
    snprintf(expect, sizeof(expect), "built for ABI %d.%d, server supports %d.%d",
             DS_PLUGIN_ABI_MAJOR, DS_PLUGIN_ABI_MINOR + 1, DS_PLUGIN_ABI_MAJOR,
             DS_PLUGIN_ABI_MINOR);
    const char *msg = open_fails(fixture_path("abi_minor_too_new"), expect);
    assert_contains(msg, "abi_minor_too_new.so");
}

static void test_open_refuses_truncated_table(void **state)
{
    (void)state;
    const char *msg = open_fails(fixture_path("truncated_table"), "truncated table");
    assert_contains(msg, "struct_size");
    assert_contains(msg, "truncated_table.so");
}

static void test_open_refuses_bad_metadata_naming_the_problem(void **state)
{
    (void)state;
    static const struct {
        const char *fixture;
        const char *expect;
    } cases[] = {
        {"bad_metadata", "duplicate input name 'input'"},
        {"bad_metadata_null_model", "model is NULL"},
        {"bad_metadata_model_size", "model description struct_size 4"},
        {"bad_metadata_bad_name_chars", "input 0 name has a character outside"},
        {"bad_metadata_long_name", "input 0 name is longer than 64"},
        {"bad_metadata_null_name", "input 0 name is NULL"},
        {"bad_metadata_bad_datatype", "input 'input' has invalid datatype 99"},
        {"bad_metadata_any_not_dynamic", "ANY needs DS_MODEL_DYNAMIC_IO"},
        {"bad_metadata_bad_rank", "has rank 9"},
        {"bad_metadata_bad_dim", "dimension 0 = -2"},
        {"bad_metadata_too_many_inputs", "257 inputs"},
        {"bad_metadata_no_outputs", "declares no outputs"},
        {"bad_metadata_null_execute", "execute NULL"},
        {"bad_metadata_duplicate_output", "duplicate output name 'prediction'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *msg = open_fails(fixture_path(cases[i].fixture), cases[i].expect);
        assert_contains(msg, cases[i].fixture);
    }
}

static void test_open_accepts_any_datatype_in_dynamic_io_model(void **state)
{
    (void)state;
    loader_plugin *p = open_ok(fixture_path("bad_metadata_dynamic_any"));
    assert_int_equal(loader_model(p)->inputs[0].datatype, DS_TYPE_ANY);
    loader_close(p);
}

static void test_failed_open_leaves_the_plugin_unloaded(void **state)
{
    (void)state;
    static const char *const failing[] = {"no_entry",           "null_table",
                                          "abi_major_mismatch", "abi_minor_too_new",
                                          "truncated_table",    "bad_metadata"};
    for (size_t i = 0; i < sizeof(failing) / sizeof(failing[0]); i++) {
        const char *path = fixture_path(failing[i]);
        open_fails(path, failing[i]);
        if (is_loaded(path))
            fail_msg("%s is still loaded after a failed loader_open", path);
    }
}

static void test_close_unloads_the_plugin(void **state)
{
    (void)state;
    const char *path = model_path("identity", 1);
    loader_plugin *p = open_ok(path);
    assert_true(is_loaded(path));
    loader_close(p);
    assert_false(is_loaded(path));
    loader_close(NULL); /* a no-op */
}

static void test_open_rejects_null_arguments(void **state)
{
    (void)state;
    loader_plugin *p = NULL;
    char err[ERRLEN];
    const char *path = model_path("identity", 1);
    assert_int_equal(loader_open(NULL, &test_host, &p, err, sizeof(err)), -1);
    assert_int_equal(loader_open(path, NULL, &p, err, sizeof(err)), -1);
    assert_contains(err, "must not be NULL");
    assert_int_equal(loader_open(path, &test_host, NULL, err, sizeof(err)), -1);
    assert_int_equal(loader_open(fixture_path("no_entry"), &test_host, &p, NULL, 0), -1);
    assert_null(p);
}

static void test_open_truncates_long_messages_safely(void **state)
{
    (void)state;
    loader_plugin *p = NULL;
    char err[16];
    memset(err, 'x', sizeof(err));
    assert_int_equal(loader_open(fixture_path("no_entry"), &test_host, &p, err, sizeof(err)), -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
}

static void test_old_abi_layout_loads_and_runs(void **state)
{
    (void)state;
    static const float x[] = {2.0f};
    loader_plugin *p = open_ok(fixture_path("old_abi_layout"));
    assert_int_equal(loader_api(p)->abi_minor, 0);
    assert_int_equal(loader_model(p)->input_count, 1);
    void *inst = create_ok(p, NULL);
    fp32_request r;
    fp32_request_init(&r, x, 1, 1);
    test_response resp = {0};
    ds_error err;
    assert_int_equal(execute(p, inst, &r.req, &resp, &err), DS_OK);
    assert_float_equal(fp32_at(test_response_find(&resp, "prediction"), 0), 15.0, 1e-6);
    test_response_free(&resp);
    loader_instance_destroy(p, inst);
    loader_close(p);
}

/* ---- instances and probe ------------------------------------------------------------------- */

static void test_create_failure_passes_on_plugin_status_and_message(void **state)
{
    (void)state;
    loader_plugin *p = open_ok(fixture_path("create_fails"));
    void *inst = (void *)&inst;
    char err[ERRLEN];
    assert_int_equal(loader_instance_create(p, "{\"x\":1}", &inst, err, sizeof(err)), -1);
    assert_null(inst);
    assert_contains(err, "create_fails.so");
    assert_contains(err, "UNSUPPORTED");
    assert_contains(err, "config {\"x\":1} is not supported");
    /* A NULL config reaches the plugin as "{}". */
    assert_int_equal(loader_instance_create(p, NULL, &inst, err, sizeof(err)), -1);
    assert_contains(err, "config {} is not supported");
    loader_close(p);
}

static void test_probe_accepts_every_example_model(void **state)
{
    (void)state;
    static const char *const models[] = {"quadratic_predictor", "quadratic_predictor",
                                         "binary_classifier", "binary_classifier", "identity"};
    static const int versions[] = {1, 2, 1, 2, 1};
    for (size_t i = 0; i < 5; i++) {
        char err[ERRLEN] = "";
        if (loader_probe(model_path(models[i], versions[i]), &test_host, NULL, err, sizeof(err)) !=
            0)
            fail_msg("probe %s v%d: %s", models[i], versions[i], err);
    }
}

static void test_probe_reports_load_and_create_failures(void **state)
{
    (void)state;
    char err[ERRLEN];
    assert_int_equal(loader_probe(fixture_path("no_entry"), &test_host, NULL, err, sizeof(err)),
                     -1);
    assert_contains(err, DS_PLUGIN_ENTRY_SYMBOL);
    assert_int_equal(loader_probe(fixture_path("create_fails"), &test_host, "{}", err, sizeof(err)),
                     -1);
    assert_contains(err, "not supported");
    assert_int_equal(
        loader_probe(fixture_path("flaky"), &test_host, "{\"fail_rate\":2}", err, sizeof(err)), -1);
    assert_contains(err, "fail_rate");
    assert_int_equal(
        loader_probe(fixture_path("flaky"), &test_host, "{\"fail_rate\":0.5}", err, sizeof(err)),
        0);
}

/* ---- runtime fixtures ---------------------------------------------------------------------- */

static int count_flaky_failures(loader_plugin *p, const char *config, int calls)
{
    static const float x[] = {1.0f};
    void *inst = create_ok(p, config);
    fp32_request r;
    fp32_request_init(&r, x, 1, 1);
    int failures = 0;
    for (int i = 0; i < calls; i++) {
        test_response resp = {0};
        ds_error err;
        ds_status st = execute(p, inst, &r.req, &resp, &err);
        if (st == DS_ERR_INTERNAL) {
            assert_contains(err.message, "injected failure");
            failures++;
        } else {
            assert_int_equal(st, DS_OK);
            assert_float_equal(fp32_at(test_response_find(&resp, "prediction"), 0), 6.0, 1e-6);
        }
        test_response_free(&resp);
    }
    loader_instance_destroy(p, inst);
    return failures;
}

static void test_flaky_fails_the_configured_fraction_deterministically(void **state)
{
    (void)state;
    loader_plugin *p = open_ok(fixture_path("flaky"));
    const char *config = "{\"fail_rate\":0.2,\"sleep_ms\":0,\"sleep_rate\":0.0}";
    int first = count_flaky_failures(p, config, 1000);
    assert_in_range(first, 150, 250);
    assert_int_equal(count_flaky_failures(p, config, 1000), first);
    assert_int_equal(count_flaky_failures(p, "{}", 200), 0);
    assert_int_equal(count_flaky_failures(p, "{\"fail_rate\": 1}", 50), 50);
    loader_close(p);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_slow_sleeps_in_every_execute_and_still_computes(void **state)
{
    (void)state;
    static const float x[] = {0.0f};
    loader_plugin *p = open_ok(fixture_path("slow"));
    void *inst = create_ok(p, "{\"sleep_ms\": 30}");
    fp32_request r;
    fp32_request_init(&r, x, 1, 1);
    test_response resp = {0};
    ds_error err;
    double t0 = now_ms();
    assert_int_equal(execute(p, inst, &r.req, &resp, &err), DS_OK);
    assert_true(now_ms() - t0 >= 29.0);
    assert_float_equal(fp32_at(test_response_find(&resp, "prediction"), 0), 1.0, 1e-6);
    test_response_free(&resp);
    loader_instance_destroy(p, inst);

    char msg[ERRLEN];
    assert_int_equal(loader_instance_create(p, "{\"sleep_ms\":-5}", &inst, msg, sizeof(msg)), -1);
    assert_contains(msg, "sleep_ms");
    loader_close(p);
}

/* ---- concurrency --------------------------------------------------------------------------- */

typedef struct worker {
    pthread_t thread;
    const char *path;
    int expect_ok;
    int failures; /* written by the worker only, read after join */
} worker;

static void *open_close_loop(void *arg)
{
    worker *w = arg;
    static const float x[] = {1.0f};
    for (int i = 0; i < 50; i++) {
        loader_plugin *p = NULL;
        char err[ERRLEN];
        int rc = loader_open(w->path, &test_host, &p, err, sizeof(err));
        if ((rc == 0) != w->expect_ok || (rc != 0 && strstr(err, "plugin '") == NULL)) {
            w->failures++;
            continue;
        }
        if (rc != 0)
            continue;
        void *inst = NULL;
        if (loader_instance_create(p, NULL, &inst, err, sizeof(err)) == 0) {
            fp32_request r;
            fp32_request_init(&r, x, 1, 1);
            test_response resp = {0};
            ds_error e;
            if (loader_api(p)->execute(inst, &r.req, (ds_infer_response *)&resp, &e) != DS_OK)
                w->failures++;
            test_response_free(&resp);
            loader_instance_destroy(p, inst);
        } else {
            w->failures++;
        }
        loader_close(p);
    }
    return NULL;
}

static void test_concurrent_open_and_close_of_the_same_file_is_safe(void **state)
{
    (void)state;
    char good[1024], bad[1024];
    snprintf(good, sizeof(good), "%s", model_path("quadratic_predictor", 1));
    snprintf(bad, sizeof(bad), "%s", fixture_path("abi_major_mismatch"));
    worker w[8];
    for (int i = 0; i < 8; i++) {
        /* Six threads share one good plugin; two hit a failing one at the same time. */
        w[i] = (worker){.path = i < 6 ? good : bad, .expect_ok = i < 6};
        assert_int_equal(pthread_create(&w[i].thread, NULL, open_close_loop, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(w[i].thread, NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_false(is_loaded(good));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quadratic_predictor_declares_fp32_input_and_prediction),
        cmocka_unit_test(test_binary_classifier_declares_probability_fp32_and_label_int32),
        cmocka_unit_test(test_identity_is_dynamic_io_and_thread_safe),
        cmocka_unit_test(test_quadratic_v1_computes_2x2_plus_3x_plus_1),
        cmocka_unit_test(test_quadratic_v2_computes_x2_minus_1),
        cmocka_unit_test(test_binary_classifier_v1_computes_sigmoid_of_weighted_sum),
        cmocka_unit_test(test_binary_classifier_v2_computes_sigmoid_of_sum_minus_1_5),
        cmocka_unit_test(test_binary_classifier_label_is_one_exactly_at_half),
        cmocka_unit_test(test_binary_classifier_adds_only_the_requested_output),
        cmocka_unit_test(test_identity_echoes_fp32_int64_bool_and_bytes),
        cmocka_unit_test(test_identity_echoes_only_requested_outputs),
        cmocka_unit_test(test_identity_rejects_invalid_datatype_without_crashing),
        cmocka_unit_test(test_examples_reject_wrong_input_count),
        cmocka_unit_test(test_examples_reject_wrong_name_datatype_and_shape),
        cmocka_unit_test(test_examples_reject_byte_size_that_does_not_match_shape),
        cmocka_unit_test(test_examples_reject_nan_and_overflow_instead_of_returning_them),
        cmocka_unit_test(test_examples_return_host_error_when_output_alloc_fails),
        cmocka_unit_test(test_examples_accept_an_empty_batch),
        cmocka_unit_test(test_examples_refuse_a_host_of_another_abi_major),
        cmocka_unit_test(test_open_missing_file_says_no_such_file),
        cmocka_unit_test(test_open_directory_says_not_a_regular_file),
        cmocka_unit_test(test_open_text_file_reports_the_dlopen_error),
        cmocka_unit_test(test_open_bare_file_name_does_not_search_library_path),
        cmocka_unit_test(test_open_without_entry_symbol_names_file_and_symbol),
        cmocka_unit_test(test_open_refuses_entry_that_returns_null),
        cmocka_unit_test(test_open_refuses_other_abi_major),
        cmocka_unit_test(test_open_refuses_newer_abi_minor),
        cmocka_unit_test(test_open_refuses_truncated_table),
        cmocka_unit_test(test_open_refuses_bad_metadata_naming_the_problem),
        cmocka_unit_test(test_open_accepts_any_datatype_in_dynamic_io_model),
        cmocka_unit_test(test_failed_open_leaves_the_plugin_unloaded),
        cmocka_unit_test(test_close_unloads_the_plugin),
        cmocka_unit_test(test_open_rejects_null_arguments),
        cmocka_unit_test(test_open_truncates_long_messages_safely),
        cmocka_unit_test(test_old_abi_layout_loads_and_runs),
        cmocka_unit_test(test_create_failure_passes_on_plugin_status_and_message),
        cmocka_unit_test(test_probe_accepts_every_example_model),
        cmocka_unit_test(test_probe_reports_load_and_create_failures),
        cmocka_unit_test(test_flaky_fails_the_configured_fraction_deterministically),
        cmocka_unit_test(test_slow_sleeps_in_every_execute_and_still_computes),
        cmocka_unit_test(test_concurrent_open_and_close_of_the_same_file_is_safe),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
