/*
 * Unit tests for src/serve/infer.c and predict.c through deployed example models: infer_predict
 * called directly on a deployment's target (the seed-style /predict translation), infer_oip and
 * infer_oip_routed over HTTP (the routes the deployment manager registers with the dataplane
 * handlers), the host table, and the stats every request leaves behind.
 *
 * One registry, HTTP server (127.0.0.1:0) and deployment manager for the whole file; the
 * deployments are made once in the group setup and only read by the tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "deploy.h"
#include "host.h"
#include "http.h"
#include "infer.h"
#include "registry.h"
#include "support/pg_cluster.h"
#include "serve.h"
#include "support/http_client.h"
#include "support/test_fs.h"

#ifndef DS_TEST_MODELS_DIR
#error "DS_TEST_MODELS_DIR must name the built model repository (build/models)"
#endif
#ifndef DS_TEST_FIXTURES_DIR
#error "DS_TEST_FIXTURES_DIR must name the built fixture plugins (build/test/plugins)"
#endif

#define ERRLEN 512
#define QUAD   "quadratic_predictor"
#define BIN    "binary_classifier"

/* ---- a tiny blocking HTTP/1.1 client ------------------------------------------------------ */

static void request(int port, const char *method, const char *path, const char *headers,
                    const char *body, reply *r)
{
    int fd = client_connect(port);
    assert_true(fd >= 0);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", body ? strlen(body) : 0);
    assert_int_equal(send_all(fd, head, (size_t)n), 0);
    if (body != NULL)
        assert_int_equal(send_all(fd, body, strlen(body)), 0);
    int rc = read_reply(fd, r, false);
    close(fd);
    if (rc != 0)
        fail_msg("no reply to %s %s", method, path);
}

static void assert_json_error(const char *body, size_t len, int status, int want)
{
    if (status != want)
        fail_msg("status %d, want %d (%.*s)", status, want, (int)len, body);
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (j == NULL)
        fail_msg("error body is not JSON: %.*s", (int)len, body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsString(e));
    assert_true(strlen(e->valuestring) > 0);
    cJSON_Delete(j);
}

/* ---- the shared world --------------------------------------------------------------------- */

static struct world {
    char dir[64];
    registry *reg;
    http_server *http;
    int port;
    deploy_manager *m;
} w;

static int add_version(const char *model, const char *version, const char *path, const char *config)
{
    char err[ERRLEN] = "";
    if (registry_version_add(w.reg, model, version, path, "", config, err, sizeof err) != REG_OK) {
        fprintf(stderr, "registering %s %s: %s\n", model, version, err);
        return -1;
    }
    deploy_result r = deploy_start(w.m, model, version, NULL, NULL, NULL);
    if (r.code != DEPLOY_OK) {
        fprintf(stderr, "deploying %s %s: %d %s\n", model, version, r.code, r.message);
        return -1;
    }
    return 0;
}

static int add_example(const char *model, const char *version)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s/model.so", DS_TEST_MODELS_DIR, model, version);
    return add_version(model, version, path, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    http_global_init();
    snprintf(w.dir, sizeof w.dir, "/tmp/ds-infer-XXXXXX");
    if (mkdtemp(w.dir) == NULL)
        return -1;
    char path[PATH_MAX], err[ERRLEN] = "";
    if (test_registry_target(w.dir, path, sizeof path, err, sizeof err) != 0 ||
        registry_open(path, &w.reg, err, sizeof err) != REG_OK) {
        fprintf(stderr, "registry: %s\n", err);
        return -1;
    }
    http_config hc = {.listen = "127.0.0.1:0",
                      .threads = 8,
                      .max_body_bytes = 1u << 20,
                      .request_timeout_ms = 10000,
                      .keep_alive_ms = 500,
                      .web_root = NULL};
    if (http_start(&hc, &w.http, err, sizeof err) != 0)
        return -1;
    w.port = http_port(w.http);
    deploy_env env = {.reg = w.reg, .router = serve_router(w.http), .host = plugin_host_api()};
    snprintf(env.data_dir, sizeof env.data_dir, "%s", w.dir);
    if (deploy_manager_new(&env, &w.m) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/flaky.so", DS_TEST_FIXTURES_DIR);
    if (add_example(QUAD, "1") || add_example(QUAD, "2") || add_example(BIN, "1") ||
        add_example("identity", "1") || add_version("failing", "1", path, "{\"fail_rate\":1.0}"))
        return -1;
    const char *versions[] = {"1", "2"};
    const int weights[] = {50, 50};
    deploy_result r = deploy_traffic_set(w.m, QUAD, versions, weights, 2, NULL, "tests");
    return r.code == DEPLOY_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    static const char *const live[][2] = {
        {QUAD, "1"}, {QUAD, "2"}, {BIN, "1"}, {"identity", "1"}, {"failing", "1"}};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        deploy_stop(w.m, live[i][0], live[i][1], NULL, -1);
    deploy_manager_free(w.m);
    http_stop(w.http);
    registry_close(w.reg);
    http_global_cleanup();
    return test_remove_tree(w.dir);
}

/* ---- infer_predict ------------------------------------------------------------------------ */

typedef struct predicted {
    int status;
    cJSON *json; /* the reply, parsed; NULL when it is not JSON */
} predicted;

static predicted predict(const char *model, const char *version, const char *input_json)
{
    deployment *d = deploy_acquire(w.m, model, version, NULL);
    assert_non_null(d);
    ds_buf body = DS_BUF_INIT;
    http_response resp = {.status = 0, .content_type = "application/json", .body = &body};
    infer_predict(deploy_target_of(d), input_json, &resp);
    deploy_release(d);
    predicted p = {.status = resp.status, .json = cJSON_ParseWithLength(body.data, body.len)};
    if (resp.status != 200)
        assert_json_error(body.data, body.len, resp.status, resp.status);
    buf_free(&body);
    return p;
}

/* The numbers of a JSON array (or one number) into xs; returns how many. */
static int numbers(const cJSON *v, double *xs, int max)
{
    if (cJSON_IsNumber(v)) {
        xs[0] = v->valuedouble;
        return 1;
    }
    assert_true(cJSON_IsArray(v));
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        assert_true(n < max);
        assert_true(cJSON_IsNumber(e));
        xs[n++] = e->valuedouble;
    }
    return n;
}

static void test_predict_with_a_number_returns_a_number(void **state)
{
    (void)state;
    predicted p = predict(QUAD, "1", "2");
    assert_int_equal(p.status, 200);
    assert_non_null(p.json);
    assert_string_equal(cJSON_GetObjectItem(p.json, "model_name")->valuestring, QUAD);
    assert_string_equal(cJSON_GetObjectItem(p.json, "version")->valuestring, "1");
    const cJSON *pred = cJSON_GetObjectItem(p.json, "prediction");
    assert_true(cJSON_IsNumber(pred));
    assert_true(fabs(pred->valuedouble - 15) < 1e-4); /* 2*4 + 3*2 + 1 */
    const cJSON *outputs = cJSON_GetObjectItem(p.json, "outputs");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(outputs, "prediction")));
    cJSON_Delete(p.json);

    p = predict(QUAD, "2", "-3");
    assert_int_equal(p.status, 200);
    assert_true(fabs(cJSON_GetObjectItem(p.json, "prediction")->valuedouble - 8) < 1e-4);
    cJSON_Delete(p.json);
}

static void test_predict_with_a_list_returns_a_list(void **state)
{
    (void)state;
    static const char *const inputs[] = {"[1,2,-1]", "[[1],[2],[-1]]"};
    for (size_t i = 0; i < 2; i++) {
        predicted p = predict(QUAD, "1", inputs[i]);
        assert_int_equal(p.status, 200);
        double ys[8] = {0};
        assert_int_equal(numbers(cJSON_GetObjectItem(p.json, "prediction"), ys, 8), 3);
        assert_true(fabs(ys[0] - 6) < 1e-4);
        assert_true(fabs(ys[1] - 15) < 1e-4);
        assert_true(fabs(ys[2] - 0) < 1e-4);
        cJSON_Delete(p.json);
    }
}

static double sigmoid(double z)
{
    return 1 / (1 + exp(-z));
}

static void test_predict_fits_a_flat_list_to_the_rows_of_the_model(void **state)
{
    (void)state;
    predicted p = predict(BIN, "1", "[1,2,3,0,0,0]"); /* two rows of three features */
    assert_int_equal(p.status, 200);
    double prob[4], label[4];
    const cJSON *outputs = cJSON_GetObjectItem(p.json, "outputs");
    assert_int_equal(numbers(cJSON_GetObjectItem(outputs, "probability"), prob, 4), 2);
    assert_int_equal(numbers(cJSON_GetObjectItem(outputs, "label"), label, 4), 2);
    assert_true(fabs(prob[0] - sigmoid(0.8 - 0.8 + 0.9 - 0.1)) < 1e-4);
    assert_true(fabs(prob[1] - sigmoid(-0.1)) < 1e-4);
    assert_true(label[0] == 1 && label[1] == 0);
    double first[4]; /* "prediction" is the first output */
    assert_int_equal(numbers(cJSON_GetObjectItem(p.json, "prediction"), first, 4), 2);
    assert_true(fabs(first[0] - prob[0]) < 1e-9);
    cJSON_Delete(p.json);

    p = predict(BIN, "1", "[1,2]"); /* not a whole row */
    assert_int_equal(p.status, 400);
    cJSON_Delete(p.json);
}

static void test_predict_on_identity_returns_the_input(void **state)
{
    (void)state;
    predicted p = predict("identity", "1", "[1.5,-2.25,0]");
    assert_int_equal(p.status, 200);
    double ys[4] = {0};
    assert_int_equal(numbers(cJSON_GetObjectItem(p.json, "prediction"), ys, 4), 3);
    assert_true(ys[0] == 1.5 && ys[1] == -2.25 && ys[2] == 0);
    cJSON_Delete(p.json);
}

static void test_predict_refuses_bad_input_with_400(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{}", "[1,[2]]", "[[1,2],[3]]", "null",   "\"abc\"", "[\"a\",\"b\"]",
        "",   "[1,",     "{\"x\":1}",   "[[[1]]]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        predicted p = predict(QUAD, "1", bad[i]);
        if (p.status != 400)
            fail_msg("input '%s': status %d, want 400", bad[i], p.status);
        cJSON_Delete(p.json);
    }
}

static void test_predict_counts_in_the_deployments_stats(void **state)
{
    (void)state;
    deployment *d = deploy_acquire(w.m, "identity", "1", NULL);
    assert_non_null(d);
    stats_snapshot before, after;
    stats_snapshot_get(deploy_target_of(d)->stats, &before);
    cJSON_Delete(predict("identity", "1", "[1]").json);
    cJSON_Delete(predict("identity", "1", "[2,3]").json);
    cJSON_Delete(predict("identity", "1", "{}").json);
    stats_snapshot_get(deploy_target_of(d)->stats, &after);
    deploy_release(d);
    assert_int_equal(after.request_count - before.request_count, 3);
    assert_int_equal(after.error_4xx - before.error_4xx, 1);
    assert_int_equal(after.error_5xx - before.error_5xx, 0);
    assert_int_equal(after.in_flight, 0);
}

static void test_predict_reports_a_plugin_failure_as_a_server_error(void **state)
{
    (void)state;
    predicted p = predict("failing", "1", "[1]");
    assert_int_equal(p.status / 100, 5);
    const char *msg = cJSON_GetObjectItem(p.json, "error")->valuestring;
    assert_non_null(strstr(msg, "failing")); /* names the model */
    cJSON_Delete(p.json);
}

/* ---- infer_oip over HTTP ------------------------------------------------------------------ */

#define QUAD_BODY(id_part, params)                                                                 \
    "{" id_part "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,1],"           \
    "\"data\":[1,2]}]" params "}"

static void test_oip_infer_answers_with_outputs_and_echoes_the_id(void **state)
{
    (void)state;
    reply r;
    request(w.port, "POST", "/v2/models/" QUAD "/versions/1/infer", NULL,
            QUAD_BODY("\"id\":\"req-7\",", ""), &r);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model_name")->valuestring, QUAD);
    assert_string_equal(cJSON_GetObjectItem(j, "model_version")->valuestring, "1");
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "req-7");
    const cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "name")->valuestring, "prediction");
    assert_string_equal(cJSON_GetObjectItem(out, "datatype")->valuestring, "FP32");
    double shape[4], ys[4];
    assert_int_equal(numbers(cJSON_GetObjectItem(out, "shape"), shape, 4), 2);
    assert_true(shape[0] == 2 && shape[1] == 1);
    assert_int_equal(numbers(cJSON_GetObjectItem(out, "data"), ys, 4), 2);
    assert_true(fabs(ys[0] - 6) < 1e-4 && fabs(ys[1] - 15) < 1e-4);
    cJSON_Delete(j);
    reply_free(&r);
}

static void test_oip_infer_refuses_what_the_model_does_not_take(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1],\"data\":[1]}]}",
        "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT32\",\"shape\":[1,1],\"data\":[1]}]}",
        ("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,2],"
         "\"data\":[1,2]}]}"),
        "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,1],\"data\":[1]}]}",
        "{\"inputs\":[]}",
        "not json",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply r;
        request(w.port, "POST", "/v2/models/" QUAD "/versions/1/infer", NULL, bad[i], &r);
        assert_json_error(r.body, r.body_len, r.status, 400);
        reply_free(&r);
    }
}

static void test_oip_infer_needs_post(void **state)
{
    (void)state;
    reply r;
    request(w.port, "GET", "/v2/models/" QUAD "/versions/1/infer", NULL, NULL, &r);
    assert_json_error(r.body, r.body_len, r.status, 405);
    char allow[32];
    assert_non_null(reply_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "POST");
    reply_free(&r);
}

static void test_oip_infer_reports_a_plugin_failure_as_500(void **state)
{
    (void)state;
    reply r;
    request(w.port, "POST", "/v2/models/failing/versions/1/infer", NULL, QUAD_BODY("", ""), &r);
    assert_json_error(r.body, r.body_len, r.status, 500);
    reply_free(&r);
}

static void test_oip_infer_sends_binary_outputs_after_the_json(void **state)
{
    (void)state;
    reply r;
    request(w.port, "POST", "/v2/models/" QUAD "/versions/1/infer", NULL,
            QUAD_BODY("", ",\"parameters\":{\"binary_data_output\":true}"), &r);
    assert_int_equal(r.status, 200);
    char v[64];
    assert_non_null(reply_header(&r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "application/octet-stream");
    assert_non_null(reply_header(&r, "Inference-Header-Content-Length", v, sizeof v));
    size_t json_len = (size_t)strtoull(v, NULL, 10);
    assert_int_equal(r.body_len, json_len + 2 * sizeof(float));
    cJSON *j = cJSON_ParseWithLength(r.body, json_len);
    assert_non_null(j);
    const cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    assert_null(cJSON_GetObjectItem(out, "data"));
    const cJSON *size =
        cJSON_GetObjectItem(cJSON_GetObjectItem(out, "parameters"), "binary_data_size");
    assert_int_equal(size->valueint, 8);
    cJSON_Delete(j);
    float ys[2];
    memcpy(ys, r.body + json_len, sizeof ys);
    assert_true(fabsf(ys[0] - 6) < 1e-4f && fabsf(ys[1] - 15) < 1e-4f);
    reply_free(&r);
}

/* model_version of a request on the unversioned route with the given routing key. */
static void routed_version(const char *headers, const char *body, char *out, size_t n)
{
    reply r;
    request(w.port, "POST", "/v2/models/" QUAD "/infer", headers, body, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    snprintf(out, n, "%s", cJSON_GetObjectItem(j, "model_version")->valuestring);
    cJSON_Delete(j);
    reply_free(&r);
}

static void test_routed_infer_is_sticky_on_the_routing_key(void **state)
{
    (void)state;
    const char *body = QUAD_BODY("", "");
    const char *param_body = QUAD_BODY("", ",\"parameters\":{\"routing_key\":\"user-9\"}");
    int seen1 = 0, seen2 = 0;
    for (int k = 0; k < 8; k++) {
        char headers[64], first[16], again[16];
        snprintf(headers, sizeof headers, "X-Routing-Key: user-%d\r\n", k);
        routed_version(headers, body, first, sizeof first);
        for (int i = 0; i < 5; i++) {
            routed_version(headers, body, again, sizeof again);
            assert_string_equal(again, first);
        }
        seen1 += strcmp(first, "1") == 0;
        seen2 += strcmp(first, "2") == 0;
    }
    assert_int_equal(seen1 + seen2, 8);
    /* The "routing_key" request parameter works like the header. */
    char first[16], again[16];
    routed_version(NULL, param_body, first, sizeof first);
    for (int i = 0; i < 5; i++) {
        routed_version(NULL, param_body, again, sizeof again);
        assert_string_equal(again, first);
    }
}

/* ---- the host table ----------------------------------------------------------------------- */

static void test_the_host_table_is_versioned_and_complete(void **state)
{
    (void)state;
    const ds_host_api *host = plugin_host_api();
    assert_non_null(host);
    assert_ptr_equal(host, plugin_host_api()); /* static, the same every time */
    assert_true(host->struct_size >= sizeof(ds_host_api));
    assert_int_equal(host->abi_major, DS_PLUGIN_ABI_MAJOR);
    assert_int_equal(host->abi_minor, DS_PLUGIN_ABI_MINOR);
    assert_non_null(host->output_alloc);
    assert_non_null(host->log);
    /* Any level is accepted, out-of-range ones included. */
    host->log(0, "test: error line");
    host->log(3, "test: debug line");
    host->log(-5, "test: below range");
    host->log(99, "test: above range");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_with_a_number_returns_a_number),
        cmocka_unit_test(test_predict_with_a_list_returns_a_list),
        cmocka_unit_test(test_predict_fits_a_flat_list_to_the_rows_of_the_model),
        cmocka_unit_test(test_predict_on_identity_returns_the_input),
        cmocka_unit_test(test_predict_refuses_bad_input_with_400),
        cmocka_unit_test(test_predict_counts_in_the_deployments_stats),
        cmocka_unit_test(test_predict_reports_a_plugin_failure_as_a_server_error),
        cmocka_unit_test(test_oip_infer_answers_with_outputs_and_echoes_the_id),
        cmocka_unit_test(test_oip_infer_refuses_what_the_model_does_not_take),
        cmocka_unit_test(test_oip_infer_needs_post),
        cmocka_unit_test(test_oip_infer_reports_a_plugin_failure_as_500),
        cmocka_unit_test(test_oip_infer_sends_binary_outputs_after_the_json),
        cmocka_unit_test(test_routed_infer_is_sticky_on_the_routing_key),
        cmocka_unit_test(test_the_host_table_is_versioned_and_complete),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
