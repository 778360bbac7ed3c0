/*
 * Unit tests for src/deploy/ (manager.c, restore.c, traffic.c) against real collaborators: a
 * registry in a temp dir, an HTTP server on 127.0.0.1:0, the host table of src/plugin/host.c and
 * the infer routes of src/serve/v2.c (serve_router). Requests go over real sockets with a tiny
 * blocking HTTP/1.1 client (10 s socket timeouts, so nothing can hang).
 *
 * Covered: deploy (DEPLOY_OK, route live on return, CONFLICT twice, NOT_FOUND unknown, INVALID
 * names, INTERNAL for a plugin that cannot load or create), newest-version picking, undeploy (200,
 * route gone, 404 unknown), endpoint names, drain (in-flight HTTP requests and held references
 * finish before undeploy returns), restore after a manager restart (and "failed" for a plugin that
 * is gone), deploy_foreach, routes staying up while other versions come and go, and canary splits:
 * weighted and sticky picking, 409/400/404 refusals, promote, rollback, weight spreading on
 * undeploy, persistence across restore, guard parsing and the guard tripping on a failing canary.
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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "deploy.h"
#include "guard.h" /* struct deploy_guard, to hold one */
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

/* ---- a tiny blocking HTTP/1.1 client ------------------------------------------------------ */

static int send_post(int fd, const char *path, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     path, strlen(body));
    if (send_all(fd, head, (size_t)n) != 0)
        return -1;
    return send_all(fd, body, strlen(body));
}

/* POST on a fresh connection; the status, or -1 when no reply came. r may be NULL. */
static int post(int port, const char *path, const char *body, reply *r)
{
    reply local;
    reply *out = r ? r : &local;
    int fd = client_connect(port);
    if (fd < 0)
        return -1;
    int rc = send_post(fd, path, body) == 0 ? read_reply(fd, out, false) : -1;
    close(fd);
    if (rc != 0)
        return -1;
    int status = out->status;
    if (r == NULL)
        reply_free(&local);
    return status;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- OIP helpers -------------------------------------------------------------------------- */

/* {"inputs":[{"name":"input","datatype":"FP32","shape":[n,1],"data":[...]}]} */
static void infer_body(const double *xs, size_t n, char *out, size_t len)
{
    int used = snprintf(out, len,
                        "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[%zu,1],"
                        "\"data\":[",
                        n);
    for (size_t i = 0; i < n; i++)
        used += snprintf(out + used, len - (size_t)used, "%s%g", i ? "," : "", xs[i]);
    snprintf(out + used, len - (size_t)used, "]}]}");
}

/* POST the xs to `path`; on 200 the first output's data goes to ys and "model_version" to
 * version (when non-NULL). Returns the HTTP status (-1: no reply). */
static int infer_http(int port, const char *path, const double *xs, size_t n, double *ys,
                      char *version, size_t version_len)
{
    char body[1024];
    infer_body(xs, n, body, sizeof body);
    reply r;
    int status = post(port, path, body, &r);
    if (status != 200) {
        if (status > 0)
            reply_free(&r);
        return status;
    }
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(j, "outputs");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(outputs, 0), "data");
    assert_int_equal(cJSON_GetArraySize(data), (int)n);
    for (size_t i = 0; i < n; i++)
        ys[i] = cJSON_GetArrayItem(data, (int)i)->valuedouble;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "model_version");
    if (version != NULL)
        snprintf(version, version_len, "%s", cJSON_IsString(v) ? v->valuestring : "?");
    cJSON_Delete(j);
    reply_free(&r);
    return status;
}

static double quad_v1(double x)
{
    return 2 * x * x + 3 * x + 1;
}

static double quad_v2(double x)
{
    return x * x - 1;
}

static void version_path(const char *model, const char *version, char *out, size_t n)
{
    snprintf(out, n, "/v2/models/%s/versions/%s/infer", model, version);
}

/* The versioned route of (model, version) computes f. */
static void assert_infers(int port, const char *model, const char *version, double (*f)(double))
{
    const double xs[] = {-1.5, 0, 1, 2, 3.25};
    double ys[5];
    char path[256];
    version_path(model, version, path, sizeof path);
    int status = infer_http(port, path, xs, 5, ys, NULL, 0);
    if (status != 200)
        fail_msg("POST %s answered %d, want 200", path, status);
    for (size_t i = 0; i < 5; i++)
        assert_true(fabs(ys[i] - f(xs[i])) < 1e-4);
}

static void assert_route_gone(int port, const char *model, const char *version)
{
    const double xs[] = {1};
    double ys[1];
    char path[256];
    version_path(model, version, path, sizeof path);
    int status = infer_http(port, path, xs, 1, ys, NULL, 0);
    if (status != 404)
        fail_msg("POST %s answered %d, want 404", path, status);
}

/* ---- fixture ------------------------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
    registry *reg;
    http_server *http;     /* the shared server, or own_http */
    http_server *own_http; /* a private server of this test (stopped by teardown), or NULL */
    int port;
    deploy_env env;
    deploy_manager *m;
} fixture;

/* One HTTP server for the whole file: CivetWeb's mg_stop takes up to 2 s (its poll quantum), so
 * a server per test would make this file slow. Every test leaves it without routes: teardown
 * undeploys what the test left deployed. */
static http_server *shared_http;

static void register_version(fixture *f, const char *model, const char *version, const char *path,
                             const char *config)
{
    char err[ERRLEN] = "";
    reg_status rs = registry_version_add(f->reg, model, version, path, "", config, err, sizeof err);
    if (rs != REG_OK)
        fail_msg("registering %s %s: %s", model, version, err);
}

static void model_so(const char *model, const char *version, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/%s/model.so", DS_TEST_MODELS_DIR, model, version);
}

static void fixture_so(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.so", DS_TEST_FIXTURES_DIR, name);
}

static void register_fixture(fixture *f, const char *model, const char *version,
                             const char *fixture_name, const char *config)
{
    char path[PATH_MAX];
    fixture_so(fixture_name, path, sizeof path);
    register_version(f, model, version, path, config);
}

static int start_server(http_server **out)
{
    http_config hc = {.listen = "127.0.0.1:0",
                      .threads = 16,
                      .max_body_bytes = 1u << 20,
                      .request_timeout_ms = 10000,
                      .keep_alive_ms = 500,
                      .web_root = NULL};
    char err[ERRLEN] = "";
    if (http_start(&hc, out, err, sizeof err) != 0) {
        fprintf(stderr, "http_start: %s\n", err);
        return -1;
    }
    return 0;
}

static void use_server(fixture *f, http_server *srv)
{
    f->http = srv;
    f->port = http_port(srv);
    f->env = (deploy_env){.reg = f->reg, .router = serve_router(srv), .host = plugin_host_api()};
    snprintf(f->env.data_dir, sizeof f->env.data_dir, "%s", f->dir);
}

/* For tests that free a manager while its routes may still be registered: a server of their own,
 * so nothing they leave behind can reach the shared one. */
static void use_private_server(fixture *f)
{
    deploy_manager_free(f->m);
    f->m = NULL;
    assert_int_equal(start_server(&f->own_http), 0);
    use_server(f, f->own_http);
    assert_int_equal(deploy_manager_new(&f->env, &f->m), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ds-deploy-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[PATH_MAX], err[ERRLEN] = "";
    if (test_registry_target(f->dir, path, sizeof path, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (registry_open(path, &f->reg, err, sizeof err) != REG_OK)
        fail_msg("registry_open: %s", err);
    use_server(f, shared_http);
    assert_int_equal(deploy_manager_new(&f->env, &f->m), 0);
    model_so(QUAD, "1", path, sizeof path);
    register_version(f, QUAD, "1", path, NULL);
    model_so(QUAD, "2", path, sizeof path);
    register_version(f, QUAD, "2", path, NULL);
    *state = f;
    return 0;
}

#define MAX_LEFT 16

typedef struct leftovers {
    size_t count;
    char model[MAX_LEFT][REG_NAME_MAX + 1];
    char version[MAX_LEFT][REG_NAME_MAX + 1];
} leftovers;

static void collect_leftover(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    leftovers *l = ud;
    if (l->count < MAX_LEFT) {
        snprintf(l->model[l->count], REG_NAME_MAX + 1, "%s", t->model_name);
        snprintf(l->version[l->count++], REG_NAME_MAX + 1, "%s", t->version);
    }
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->m != NULL) {
        /* Undeploy what the test left, so the shared server is left without routes. */
        leftovers l = {0};
        deploy_foreach(f->m, collect_leftover, &l);
        for (size_t i = 0; i < l.count; i++)
            deploy_stop(f->m, l.model[i], l.version[i], NULL, -1);
    }
    deploy_manager_free(f->m);
    http_stop(f->own_http);
    registry_close(f->reg);
    int rc = test_remove_tree(f->dir);
    free(f);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    http_global_init();
    return start_server(&shared_http);
}

static int group_teardown(void **state)
{
    (void)state;
    http_stop(shared_http);
    http_global_cleanup();
    return 0;
}

static void deploy_ok(fixture *f, const char *model, const char *version, const char *endpoint)
{
    deploy_result r = deploy_start(f->m, model, version, endpoint, NULL, NULL);
    if (r.code != DEPLOY_OK)
        fail_msg("deploy %s %s: %d %s", model, version, r.code, r.message);
}

static void undeploy_ok(fixture *f, const char *model, const char *version)
{
    deploy_result r = deploy_stop(f->m, model, version, NULL, -1);
    if (r.code != DEPLOY_OK)
        fail_msg("undeploy %s %s: %d %s", model, version, r.code, r.message);
}

/* The registry's row for (model, version) among active/failed deployments. */
typedef struct row_lookup {
    const char *model, *version;
    bool found;
    char status[16];
    char reason[256];
    char endpoint[REG_NAME_MAX + 1];
    int active; /* active rows of any version */
} row_lookup;

static int row_visit(void *ud, const reg_deployment *d)
{
    row_lookup *l = ud;
    l->active += strcmp(d->status, "active") == 0;
    if (strcmp(d->model_name, l->model) == 0 && strcmp(d->version, l->version) == 0) {
        l->found = true;
        snprintf(l->status, sizeof l->status, "%s", d->status);
        snprintf(l->reason, sizeof l->reason, "%s", d->status_reason ? d->status_reason : "");
        snprintf(l->endpoint, sizeof l->endpoint, "%s", d->endpoint_name);
    }
    return 0;
}

static row_lookup registry_row(fixture *f, const char *model, const char *version)
{
    row_lookup l = {.model = model, .version = version};
    char err[ERRLEN];
    assert_int_equal(registry_deployment_list(f->reg, row_visit, &l, err, sizeof err), REG_OK);
    return l;
}

/* The version deploy_acquire picks (copied), or "" when none. */
static void acquired_version(fixture *f, const char *model, const char *version, const char *key,
                             char *out, size_t n)
{
    deployment *d = deploy_acquire(f->m, model, version, key);
    snprintf(out, n, "%s", d ? deploy_target_of(d)->version : "");
    deploy_release(d);
}

/* ---- deploy ------------------------------------------------------------------------------- */

static void test_deploy_returns_201_and_the_route_answers_at_once(void **state)
{
    fixture *f = *state;
    reg_deployment row = {0};
    deploy_result r = deploy_start(f->m, QUAD, "1", NULL, NULL, &row);
    assert_int_equal(r.code, DEPLOY_OK);
    assert_string_equal(row.model_name, QUAD);
    assert_string_equal(row.version, "1");
    assert_string_equal(row.status, "active");
    assert_string_equal(row.endpoint_name, "");
    assert_true(strlen(row.deployed_at) >= 20); /* ISO-8601, "2026-11-23T03:20:08Z" */
    assert_int_equal(row.deployed_at[10], 'T');
    assert_true(row.id > 0);
    reg_deployment_free(&row);
    assert_infers(f->port, QUAD, "1", quad_v1);
    row_lookup l = registry_row(f, QUAD, "1");
    assert_true(l.found);
    assert_string_equal(l.status, "active");
}

static void test_each_version_computes_its_own_function(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    deploy_ok(f, QUAD, "2", NULL);
    assert_infers(f->port, QUAD, "1", quad_v1);
    assert_infers(f->port, QUAD, "2", quad_v2);
    /* The unversioned route serves the newest version when there is no split. */
    const double xs[] = {3};
    double ys[1];
    char version[16];
    assert_int_equal(
        infer_http(f->port, "/v2/models/" QUAD "/infer", xs, 1, ys, version, sizeof version), 200);
    assert_string_equal(version, "2");
    assert_true(fabs(ys[0] - 8) < 1e-4);
}

static void test_deploying_twice_is_409(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    deploy_result r = deploy_start(f->m, QUAD, "1", NULL, NULL, NULL);
    assert_int_equal(r.code, DEPLOY_CONFLICT);
    assert_true(strlen(r.message) > 0);
    assert_infers(f->port, QUAD, "1", quad_v1); /* the first one is unharmed */
    assert_int_equal(registry_row(f, QUAD, "1").active, 1);
}

static void test_deploying_an_unknown_version_or_model_is_404(void **state)
{
    fixture *f = *state;
    deploy_result r = deploy_start(f->m, QUAD, "9", NULL, NULL, NULL);
    assert_int_equal(r.code, DEPLOY_NOT_FOUND);
    assert_true(strlen(r.message) > 0);
    r = deploy_start(f->m, "no_such_model", "1", NULL, NULL, NULL);
    assert_int_equal(r.code, DEPLOY_NOT_FOUND);
    assert_route_gone(f->port, QUAD, "9");
    assert_int_equal(registry_row(f, QUAD, "9").active, 0);
}

static void test_deploying_with_invalid_names_is_400(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *model, *version, *endpoint;
    } bad[] = {
        {"bad name", "1", NULL}, {"..", "1", NULL},  {"", "1", NULL},   {QUAD, "a/b", NULL},
        {QUAD, "", NULL},        {QUAD, "1", "x y"}, {QUAD, "1", ".."}, {"m\"x", "1", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        deploy_result r =
            deploy_start(f->m, bad[i].model, bad[i].version, bad[i].endpoint, NULL, NULL);
        if (r.code != DEPLOY_INVALID)
            fail_msg("deploy '%s' '%s' endpoint '%s': %d, want 400", bad[i].model, bad[i].version,
                     bad[i].endpoint ? bad[i].endpoint : "(none)", r.code);
        assert_true(strlen(r.message) > 0);
    }
    assert_int_equal(registry_row(f, QUAD, "1").active, 0);
}

static void test_a_plugin_that_cannot_load_or_create_is_500_and_leaves_nothing(void **state)
{
    fixture *f = *state;
    register_fixture(f, "broken", "1", "not_a_plugin", NULL);
    register_fixture(f, "broken", "2", "create_fails", NULL);
    deploy_result r = deploy_start(f->m, "broken", "1", NULL, NULL, NULL);
    assert_int_equal(r.code, DEPLOY_INTERNAL);
    assert_true(strlen(r.message) > 0);
    r = deploy_start(f->m, "broken", "2", NULL, NULL, NULL);
    assert_int_equal(r.code, DEPLOY_INTERNAL);
    assert_non_null(strstr(r.message, "create_fails fixture")); /* the plugin's own words */
    deploy_lifecycle_counts c;
    deploy_lifecycle_get(f->m, &c);
    assert_int_equal(c.failures[DEPLOY_FAIL_OPEN], 1);
    assert_int_equal(c.failures[DEPLOY_FAIL_CREATE], 1);
    assert_int_equal(c.loads, 0);
    assert_route_gone(f->port, "broken", "1");
    assert_route_gone(f->port, "broken", "2");
    assert_int_equal(registry_row(f, "broken", "1").active, 0);
    assert_null(deploy_acquire(f->m, "broken", NULL, NULL));
}

static void test_acquire_without_a_version_picks_the_newest(void **state)
{
    fixture *f = *state;
    char v[REG_NAME_MAX + 1];
    acquired_version(f, QUAD, NULL, NULL, v, sizeof v);
    assert_string_equal(v, ""); /* nothing deployed */
    deploy_ok(f, QUAD, "2", NULL);
    deploy_ok(f, QUAD, "1", NULL); /* deployed last, but older */
    acquired_version(f, QUAD, NULL, NULL, v, sizeof v);
    assert_string_equal(v, "2");
    acquired_version(f, QUAD, "1", NULL, v, sizeof v);
    assert_string_equal(v, "1");
    acquired_version(f, QUAD, "3", NULL, v, sizeof v);
    assert_string_equal(v, "");
    acquired_version(f, "no_such_model", NULL, NULL, v, sizeof v);
    assert_string_equal(v, "");

    char versions[4][REG_NAME_MAX + 1];
    deployment *newest = NULL;
    assert_int_equal(deploy_versions(f->m, QUAD, versions, 4, &newest), 2);
    assert_string_equal(versions[0], "2");
    assert_string_equal(versions[1], "1");
    assert_non_null(newest);
    assert_string_equal(deploy_target_of(newest)->version, "2");
    deploy_release(newest);
}

static void test_newest_compares_numeric_versions_as_numbers(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    model_so(QUAD, "1", path, sizeof path);
    register_version(f, QUAD, "9", path, NULL);
    register_version(f, QUAD, "10", path, NULL);
    deploy_ok(f, QUAD, "10", NULL);
    deploy_ok(f, QUAD, "9", NULL);
    deploy_ok(f, QUAD, "2", NULL);
    char v[REG_NAME_MAX + 1];
    acquired_version(f, QUAD, NULL, NULL, v, sizeof v);
    assert_string_equal(v, "10");
}

/* ---- undeploy ----------------------------------------------------------------------------- */

static void test_undeploy_returns_200_and_the_route_answers_404(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    deploy_ok(f, QUAD, "2", NULL);
    undeploy_ok(f, QUAD, "1");
    assert_route_gone(f->port, QUAD, "1");
    assert_infers(f->port, QUAD, "2", quad_v2); /* the other version stays */
    char v[REG_NAME_MAX + 1];
    acquired_version(f, QUAD, "1", NULL, v, sizeof v);
    assert_string_equal(v, "");
    row_lookup l = registry_row(f, QUAD, "1");
    assert_false(l.found); /* no longer active (nor failed) */
    assert_int_equal(l.active, 1);

    undeploy_ok(f, QUAD, "2");
    assert_route_gone(f->port, QUAD, "2");
    const double xs[] = {1};
    double ys[1];
    assert_int_equal(infer_http(f->port, "/v2/models/" QUAD "/infer", xs, 1, ys, NULL, 0), 404);
    /* And it can come back. */
    deploy_ok(f, QUAD, "1", NULL);
    assert_infers(f->port, QUAD, "1", quad_v1);
}

static void test_undeploying_what_is_not_deployed_is_404(void **state)
{
    fixture *f = *state;
    deploy_result r = deploy_stop(f->m, QUAD, "1", NULL, -1); /* registered, never deployed */
    assert_int_equal(r.code, DEPLOY_NOT_FOUND);
    assert_true(strlen(r.message) > 0);
    r = deploy_stop(f->m, "no_such_model", "1", NULL, -1);
    assert_int_equal(r.code, DEPLOY_NOT_FOUND);
    r = deploy_stop(f->m, NULL, NULL, "no_such_endpoint", -1);
    assert_int_equal(r.code, DEPLOY_NOT_FOUND);
    deploy_ok(f, QUAD, "1", NULL);
    undeploy_ok(f, QUAD, "1");
    r = deploy_stop(f->m, QUAD, "1", NULL, -1); /* twice */
    assert_int_equal(r.code, DEPLOY_NOT_FOUND);
}

/* ---- endpoint names ----------------------------------------------------------------------- */

static void test_an_endpoint_name_finds_and_stops_its_deployment(void **state)
{
    fixture *f = *state;
    reg_deployment row = {0};
    deploy_result r = deploy_start(f->m, QUAD, "1", "quad", NULL, &row);
    assert_int_equal(r.code, DEPLOY_OK);
    assert_string_equal(row.endpoint_name, "quad");
    reg_deployment_free(&row);
    deploy_ok(f, QUAD, "2", NULL);

    deployment *d = deploy_acquire_endpoint(f->m, "quad");
    assert_non_null(d);
    assert_string_equal(deploy_target_of(d)->version, "1");
    assert_string_equal(deploy_target_of(d)->endpoint_name, "quad");
    deploy_release(d);
    assert_null(deploy_acquire_endpoint(f->m, "other"));
    assert_string_equal(registry_row(f, QUAD, "1").endpoint, "quad");

    r = deploy_stop(f->m, NULL, NULL, "quad", -1);
    assert_int_equal(r.code, DEPLOY_OK);
    assert_null(deploy_acquire_endpoint(f->m, "quad"));
    assert_route_gone(f->port, QUAD, "1");
    assert_infers(f->port, QUAD, "2", quad_v2);
}

static void test_an_endpoint_name_in_use_is_409(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", "quad");
    deploy_result r = deploy_start(f->m, QUAD, "2", "quad", NULL, NULL);
    assert_int_equal(r.code, DEPLOY_CONFLICT);
    assert_route_gone(f->port, QUAD, "2");
    deployment *d = deploy_acquire_endpoint(f->m, "quad");
    assert_non_null(d);
    assert_string_equal(deploy_target_of(d)->version, "1");
    deploy_release(d);
    /* Free again once its owner is gone. */
    undeploy_ok(f, QUAD, "1");
    deploy_ok(f, QUAD, "2", "quad");
    d = deploy_acquire_endpoint(f->m, "quad");
    assert_non_null(d);
    assert_string_equal(deploy_target_of(d)->version, "2");
    deploy_release(d);
}

/* ---- drain -------------------------------------------------------------------------------- */

static int64_t in_flight_of(fixture *f, const char *model, const char *version)
{
    deployment *d = deploy_acquire(f->m, model, version, NULL);
    assert_non_null(d);
    stats_snapshot s;
    stats_snapshot_get(deploy_target_of(d)->stats, &s);
    deploy_release(d);
    return s.in_flight;
}

/* Wait (at most 10 s) until a request runs inside (model, version). */
static void wait_in_flight(fixture *f, const char *model, const char *version)
{
    for (int i = 0; i < 10000 && in_flight_of(f, model, version) == 0; i++)
        sleep_ms(1);
    assert_true(in_flight_of(f, model, version) > 0);
}

/* Start a request on `path`, wait until it runs, undeploy, and check that the whole reply had
 * been written before deploy_stop returned: it must be readable at once (the plugin sleeps
 * 300 ms, so a reply written after an early return would be that late). */
static void check_undeploy_drains(fixture *f, const char *path)
{
    register_fixture(f, "slow", "1", "slow", "{\"sleep_ms\":300}");
    deploy_ok(f, "slow", "1", NULL);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    char body[256];
    const double xs[] = {2};
    infer_body(xs, 1, body, sizeof body);
    assert_int_equal(send_post(fd, path, body), 0);
    wait_in_flight(f, "slow", "1");
    deploy_result r = deploy_stop(f->m, "slow", "1", NULL, -1);
    assert_int_equal(r.code, DEPLOY_OK);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, 50);
    if (ready != 1)
        fail_msg("deploy_stop returned before the in-flight request on %s was answered", path);
    reply rep;
    assert_int_equal(read_reply(fd, &rep, false), 0);
    close(fd);
    assert_int_equal(rep.status, 200);
    assert_non_null(strstr(rep.body, "15")); /* 2*4 + 3*2 + 1 */
    reply_free(&rep);
    assert_route_gone(f->port, "slow", "1");
}

static void test_undeploy_waits_for_in_flight_requests(void **state)
{
    check_undeploy_drains(*state, "/v2/models/slow/versions/1/infer");
}

static void test_undeploy_waits_for_in_flight_requests_on_the_model_route(void **state)
{
    check_undeploy_drains(*state, "/v2/models/slow/infer");
}

typedef struct stopper {
    fixture *f;
    const char *model, *version;
    deploy_result result;
    atomic_int done;
} stopper;

static void *stop_thread(void *arg)
{
    stopper *s = arg;
    s->result = deploy_stop(s->f->m, s->model, s->version, NULL, -1);
    atomic_store(&s->done, 1);
    return NULL;
}

static void test_undeploy_waits_for_held_references(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    deployment *held = deploy_acquire(f->m, QUAD, "1", NULL);
    assert_non_null(held);
    stopper s = {.f = f, .model = QUAD, .version = "1"};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_thread, &s), 0);
    /* The version disappears from the tables at once... */
    char v[REG_NAME_MAX + 1] = "1";
    for (int i = 0; i < 5000 && v[0] != '\0'; i++) {
        acquired_version(f, QUAD, "1", NULL, v, sizeof v);
        if (v[0] != '\0')
            sleep_ms(1);
    }
    assert_string_equal(v, "");
    /* ...but undeploy does not finish while a reference is held. */
    sleep_ms(200);
    assert_int_equal(atomic_load(&s.done), 0);
    /* The held deployment still works (the plugin is not unloaded under it). */
    assert_string_equal(deploy_target_of(held)->version, "1");
    assert_non_null(deploy_target_of(held)->model);
    deploy_release(held);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&s.done), 1);
    assert_int_equal(s.result.code, DEPLOY_OK);
    assert_route_gone(f->port, QUAD, "1");
}

/* ---- restore ------------------------------------------------------------------------------ */

static void restart_manager(fixture *f)
{
    deploy_manager_free(f->m);
    f->m = NULL;
    assert_int_equal(deploy_manager_new(&f->env, &f->m), 0);
}

static void test_restore_brings_back_active_deployments(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", "quad");
    deploy_ok(f, QUAD, "2", NULL);
    deploy_manager_free(f->m);
    f->m = NULL;
    /* Freeing the manager is not undeploying: the registry still says active. */
    row_lookup l = registry_row(f, QUAD, "1");
    assert_string_equal(l.status, "active");
    assert_int_equal(l.active, 2);
    assert_int_equal(deploy_manager_new(&f->env, &f->m), 0);
    assert_int_equal(deploy_restore(f->m), 2);
    assert_infers(f->port, QUAD, "1", quad_v1);
    assert_infers(f->port, QUAD, "2", quad_v2);
    deployment *d = deploy_acquire_endpoint(f->m, "quad");
    assert_non_null(d);
    assert_string_equal(deploy_target_of(d)->version, "1");
    deploy_release(d);
    char v[REG_NAME_MAX + 1];
    acquired_version(f, QUAD, NULL, NULL, v, sizeof v);
    assert_string_equal(v, "2");
    /* Restored deployments are ordinary ones: they undeploy. */
    undeploy_ok(f, QUAD, "1");
    assert_route_gone(f->port, QUAD, "1");
    assert_int_equal(registry_row(f, QUAD, "2").active, 1);
}

static void test_restore_with_nothing_active_restores_nothing(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    undeploy_ok(f, QUAD, "1");
    restart_manager(f);
    assert_int_equal(deploy_restore(f->m), 0);
    assert_route_gone(f->port, QUAD, "1");
}

static void test_restore_marks_a_version_whose_plugin_is_gone_failed(void **state)
{
    fixture *f = *state;
    use_private_server(f);
    char src[PATH_MAX], copy[PATH_MAX];
    model_so(QUAD, "1", src, sizeof src);
    snprintf(copy, sizeof copy, "%s/doomed.so", f->dir);
    test_copy_file(src, copy, 0644);
    register_version(f, "doomed", "1", copy, NULL);
    deploy_ok(f, "doomed", "1", NULL);
    deploy_ok(f, QUAD, "1", NULL);
    deploy_manager_free(f->m);
    f->m = NULL;
    assert_int_equal(unlink(copy), 0);
    assert_int_equal(deploy_manager_new(&f->env, &f->m), 0);
    assert_int_equal(deploy_restore(f->m), 1); /* only the healthy one */
    row_lookup l = registry_row(f, "doomed", "1");
    assert_true(l.found);
    assert_string_equal(l.status, "failed");
    assert_true(strlen(l.reason) > 0);
    assert_route_gone(f->port, "doomed", "1");
    assert_infers(f->port, QUAD, "1", quad_v1);
    /* A failed deployment is not restored again... */
    restart_manager(f);
    assert_int_equal(deploy_restore(f->m), 1);
    assert_string_equal(registry_row(f, "doomed", "1").status, "failed");
    /* ...and undeploying it clears it. */
    deploy_result r = deploy_stop(f->m, "doomed", "1", NULL, -1);
    assert_int_equal(r.code, DEPLOY_OK);
    assert_false(registry_row(f, "doomed", "1").found);
}

static void test_manager_free_removes_the_routes(void **state)
{
    fixture *f = *state;
    use_private_server(f);
    deploy_ok(f, QUAD, "1", NULL);
    assert_infers(f->port, QUAD, "1", quad_v1);
    /* deploy.h: "Unload everything (routes removed, instances destroyed, dlclose) ... Call after
     * the HTTP server stopped or while it still runs." While it runs, nothing may still route
     * to the unloaded deployment. */
    deploy_manager_free(f->m);
    f->m = NULL;
    assert_route_gone(f->port, QUAD, "1");
    const double xs[] = {1};
    double ys[1];
    assert_int_equal(infer_http(f->port, "/v2/models/" QUAD "/infer", xs, 1, ys, NULL, 0), 404);
}

/* ---- foreach ------------------------------------------------------------------------------ */

#define MAX_SEEN 8

typedef struct seen {
    size_t count;
    char model[MAX_SEEN][REG_NAME_MAX + 1];
    char version[MAX_SEEN][REG_NAME_MAX + 1];
    int weight[MAX_SEEN];
} seen;

static void visit(void *ud, const deploy_target *t, int weight)
{
    seen *s = ud;
    assert_true(s->count < MAX_SEEN);
    assert_non_null(t->model);
    assert_non_null(t->stats);
    snprintf(s->model[s->count], REG_NAME_MAX + 1, "%s", t->model_name);
    snprintf(s->version[s->count], REG_NAME_MAX + 1, "%s", t->version);
    s->weight[s->count++] = weight;
}

static int seen_index(const seen *s, const char *model, const char *version)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->model[i], model) == 0 && strcmp(s->version[i], version) == 0)
            return (int)i;
    return -1;
}

static void test_foreach_visits_every_live_deployment(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    model_so("identity", "1", path, sizeof path);
    register_version(f, "identity", "1", path, NULL);
    seen s = {0};
    deploy_foreach(f->m, visit, &s);
    assert_int_equal(s.count, 0);
    deploy_ok(f, QUAD, "1", NULL);
    deploy_ok(f, QUAD, "2", NULL);
    deploy_ok(f, "identity", "1", NULL);
    deploy_foreach(f->m, visit, &s);
    assert_int_equal(s.count, 3);
    assert_true(seen_index(&s, QUAD, "1") >= 0);
    assert_true(seen_index(&s, QUAD, "2") >= 0);
    assert_true(seen_index(&s, "identity", "1") >= 0);
    /* Deployments of one model are visited together. */
    int a = seen_index(&s, QUAD, "1"), b = seen_index(&s, QUAD, "2");
    assert_int_equal(abs(a - b), 1);

    undeploy_ok(f, QUAD, "1");
    const char *versions[] = {"2"};
    const int weights[] = {100};
    assert_int_equal(deploy_traffic_set(f->m, QUAD, versions, weights, 1, NULL, "test").code,
                     DEPLOY_OK);
    s = (seen){0};
    deploy_foreach(f->m, visit, &s);
    assert_int_equal(s.count, 2);
    assert_int_equal(seen_index(&s, QUAD, "1"), -1);
    assert_int_equal(s.weight[seen_index(&s, QUAD, "2")], 100);
}

/* ---- other versions coming and going under load ------------------------------------------- */

#define LOAD_CLIENTS 3
#define LOAD_ROUNDS  30

typedef struct load_client {
    int port;
    int versioned_ok, model_ok, failures;
} load_client;

static void *load_thread(void *arg)
{
    load_client *c = arg;
    const double xs[] = {1};
    double ys[1];
    for (int i = 0; i < LOAD_ROUNDS; i++) {
        int a = infer_http(c->port, "/v2/models/" QUAD "/versions/1/infer", xs, 1, ys, NULL, 0);
        c->versioned_ok += a == 200 && fabs(ys[0] - 6) < 1e-4;
        int b = infer_http(c->port, "/v2/models/" QUAD "/infer", xs, 1, ys, NULL, 0);
        c->model_ok += b == 200 && (fabs(ys[0] - 6) < 1e-4 || fabs(ys[0]) < 1e-4);
        c->failures += (a != 200) + (b != 200);
    }
    return NULL;
}

static void test_a_version_keeps_serving_while_another_comes_and_goes(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    load_client c[LOAD_CLIENTS];
    pthread_t th[LOAD_CLIENTS];
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        c[i] = (load_client){.port = f->port};
        assert_int_equal(pthread_create(&th[i], NULL, load_thread, &c[i]), 0);
    }
    for (int i = 0; i < 10; i++) {
        deploy_ok(f, QUAD, "2", NULL);
        const char *versions[] = {"1", "2"};
        const int weights[] = {50, 50};
        assert_int_equal(deploy_traffic_set(f->m, QUAD, versions, weights, 2, NULL, "load").code,
                         DEPLOY_OK);
        undeploy_ok(f, QUAD, "2");
    }
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].failures, 0);
        assert_int_equal(c[i].versioned_ok, LOAD_ROUNDS);
        assert_int_equal(c[i].model_ok, LOAD_ROUNDS);
    }
}

/* ---- canary ------------------------------------------------------------------------------- */

static deploy_result set_split(fixture *f, const char *v1, int w1, const char *v2, int w2)
{
    const char *versions[] = {v1, v2};
    const int weights[] = {w1, w2};
    return deploy_traffic_set(f->m, QUAD, versions, weights, v2 ? 2 : 1, NULL, "test");
}

/* How many of n picks without a version (and with `key`, when given) land on `version`. */
static int picks_of(fixture *f, const char *version, const char *key, int n)
{
    int hits = 0;
    for (int i = 0; i < n; i++) {
        char v[REG_NAME_MAX + 1];
        acquired_version(f, QUAD, NULL, key, v, sizeof v);
        assert_true(v[0] != '\0');
        hits += strcmp(v, version) == 0;
    }
    return hits;
}

/* The model's split as canary_describe reports it; NULL when it has none. Caller deletes. */
static cJSON *describe_model(fixture *f, const char *model)
{
    ds_buf b = DS_BUF_INIT;
    deploy_traffic_describe(f->m, &b);
    assert_false(b.failed);
    cJSON *all = cJSON_Parse(b.data);
    buf_free(&b);
    if (all == NULL)
        fail_msg("canary_describe is not JSON");
    assert_true(cJSON_IsArray(all));
    cJSON *item, *found = NULL;
    cJSON_ArrayForEach(item, all)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "model_name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, model) == 0)
            found = item;
    }
    cJSON *copy = found ? cJSON_Duplicate(found, 1) : NULL;
    cJSON_Delete(all);
    return copy;
}

/* Weight of `version` in the described split; -1 when the version is not in it. */
static int described_weight(const cJSON *model, const char *version)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(model, "weights");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(w, version);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static void assert_split(fixture *f, const char *v1, int w1, const char *v2, int w2)
{
    cJSON *m = describe_model(f, QUAD);
    if (m == NULL)
        fail_msg("no split described for %s", QUAD);
    assert_int_equal(described_weight(m, v1), w1);
    if (v2 != NULL)
        assert_int_equal(described_weight(m, v2), w2);
    cJSON_Delete(m);
}

static void deploy_both(fixture *f)
{
    deploy_ok(f, QUAD, "1", NULL);
    deploy_ok(f, QUAD, "2", NULL);
}

static void test_a_90_10_split_sends_about_a_tenth_to_the_canary(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(set_split(f, "1", 90, "2", 10).code, DEPLOY_OK);
    int v2 = picks_of(f, "2", NULL, 1000);
    if (v2 < 60 || v2 > 140)
        fail_msg("version 2 got %d of 1000 picks, want 100 +- 40", v2);
    assert_split(f, "1", 90, "2", 10);
    /* The versioned route is not affected by the split. */
    char v[REG_NAME_MAX + 1];
    acquired_version(f, QUAD, "2", NULL, v, sizeof v);
    assert_string_equal(v, "2");
}

static void test_the_same_routing_key_always_gets_the_same_version(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(set_split(f, "1", 90, "2", 10).code, DEPLOY_OK);
    int to_v2 = 0;
    for (int k = 0; k < 1000; k++) {
        char key[32], first[REG_NAME_MAX + 1];
        snprintf(key, sizeof key, "user-%d", k);
        acquired_version(f, QUAD, NULL, key, first, sizeof first);
        to_v2 += strcmp(first, "2") == 0;
        if (k % 50 == 0) /* sticky: the same key, the same version, every time */
            assert_int_equal(picks_of(f, first, key, 50), 50);
    }
    if (to_v2 < 60 || to_v2 > 140)
        fail_msg("%d of 1000 keys went to version 2, want 100 +- 40", to_v2);
}

static void test_a_split_with_an_undeployed_version_is_409(void **state)
{
    fixture *f = *state;
    deploy_ok(f, QUAD, "1", NULL);
    deploy_result r = set_split(f, "1", 90, "2", 10); /* 2 registered, not deployed */
    assert_int_equal(r.code, DEPLOY_CONFLICT);
    assert_true(strlen(r.message) > 0);
    r = set_split(f, "1", 90, "7", 10); /* 7 not even registered */
    assert_int_equal(r.code, DEPLOY_CONFLICT);
    assert_null(describe_model(f, QUAD)); /* nothing changed */
}

static void test_a_split_with_bad_weights_is_400(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(set_split(f, "1", 90, "2", 20).code, DEPLOY_INVALID);
    assert_int_equal(set_split(f, "1", 80, "2", 10).code, DEPLOY_INVALID);
    assert_int_equal(set_split(f, "1", 110, "2", -10).code, DEPLOY_INVALID);
    assert_int_equal(set_split(f, "1", 50, NULL, 0).code, DEPLOY_INVALID);
    assert_int_equal(deploy_traffic_set(f->m, QUAD, NULL, NULL, 0, NULL, "empty").code,
                     DEPLOY_INVALID);
    assert_null(describe_model(f, QUAD));
    const char *versions[] = {"1"};
    const int weights[] = {100};
    assert_int_equal(
        deploy_traffic_set(f->m, "no_such_model", versions, weights, 1, NULL, "x").code,
        DEPLOY_NOT_FOUND);
    /* A valid one after all the refusals works. */
    assert_int_equal(set_split(f, "1", 100, "2", 0).code, DEPLOY_OK);
    assert_int_equal(picks_of(f, "1", NULL, 200), 200);
}

static void test_promote_sends_everything_to_one_version(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(set_split(f, "1", 90, "2", 10).code, DEPLOY_OK);
    deploy_result r = deploy_promote(f->m, QUAD, "2");
    assert_int_equal(r.code, DEPLOY_OK);
    assert_int_equal(picks_of(f, "2", NULL, 1000), 1000);
    assert_split(f, "2", 100, "1", 0);
    assert_int_equal(deploy_promote(f->m, QUAD, "1").code, DEPLOY_OK);
    assert_int_equal(picks_of(f, "1", NULL, 1000), 1000);
    assert_int_equal(deploy_promote(f->m, QUAD, "5").code, DEPLOY_CONFLICT);
}

static void test_rollback_restores_the_previous_split(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(set_split(f, "1", 90, "2", 10).code, DEPLOY_OK);
    assert_int_equal(deploy_promote(f->m, QUAD, "2").code, DEPLOY_OK);
    deploy_result r = deploy_rollback(f->m, QUAD);
    assert_int_equal(r.code, DEPLOY_OK);
    assert_split(f, "1", 90, "2", 10);
    int v2 = picks_of(f, "2", NULL, 1000);
    if (v2 < 60 || v2 > 140)
        fail_msg("after rollback version 2 got %d of 1000 picks, want 100 +- 40", v2);
}

static void test_rollback_without_an_earlier_split_is_404(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(deploy_rollback(f->m, QUAD).code, DEPLOY_NOT_FOUND); /* no split at all */
    assert_int_equal(set_split(f, "1", 90, "2", 10).code, DEPLOY_OK);
    assert_int_equal(deploy_rollback(f->m, QUAD).code, DEPLOY_NOT_FOUND); /* only one */
    assert_split(f, "1", 90, "2", 10);
    assert_int_equal(deploy_rollback(f->m, "no_such_model").code, DEPLOY_NOT_FOUND);
}

static void test_undeploying_a_version_spreads_its_weight_over_the_rest(void **state)
{
    fixture *f = *state;
    register_fixture(f, QUAD, "3", "slow", "{\"sleep_ms\":0}");
    deploy_both(f);
    deploy_ok(f, QUAD, "3", NULL);
    const char *versions[] = {"1", "2", "3"};
    const int weights[] = {60, 30, 10};
    assert_int_equal(deploy_traffic_set(f->m, QUAD, versions, weights, 3, NULL, "three").code,
                     DEPLOY_OK);
    undeploy_ok(f, QUAD, "3");
    cJSON *m = describe_model(f, QUAD);
    assert_non_null(m);
    int w1 = described_weight(m, "1"), w2 = described_weight(m, "2");
    assert_int_equal(described_weight(m, "3"), -1);
    cJSON_Delete(m);
    assert_int_equal(w1 + w2, 100);
    /* in proportion 60:30 -> 66.7:33.3 */
    assert_true(w1 == 66 || w1 == 67);
    assert_int_equal(picks_of(f, "3", NULL, 200), 0);

    undeploy_ok(f, QUAD, "1");
    assert_split(f, "2", 100, NULL, 0);
    assert_int_equal(picks_of(f, "2", NULL, 200), 200);
    undeploy_ok(f, QUAD, "2");
    assert_null(describe_model(f, QUAD)); /* no version left, no split */
}

static void test_a_split_survives_a_restart(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    assert_int_equal(set_split(f, "1", 70, "2", 30).code, DEPLOY_OK);
    restart_manager(f);
    assert_int_equal(deploy_restore(f->m), 2);
    assert_split(f, "1", 70, "2", 30);
    int v2 = picks_of(f, "2", NULL, 4000); /* 4000 picks: +-4% is over 5 standard deviations */
    if (v2 < 1040 || v2 > 1360)
        fail_msg("after restart version 2 got %d of 4000 picks, want 1200 +- 160", v2);
}

static void test_guard_parse_accepts_valid_guards(void **state)
{
    (void)state;
    deploy_guard g;
    char err[ERRLEN] = "";
    assert_int_equal(guard_parse("{\"max_error_rate\":0.1,\"max_p99_ratio\":2.5,"
                                 "\"min_requests\":50,\"window_s\":10}",
                                 &g, err, sizeof err),
                     0);
    assert_true(g.enabled);
    assert_true(fabs(g.max_error_rate - 0.1) < 1e-12);
    assert_true(fabs(g.max_p99_ratio - 2.5) < 1e-12);
    assert_int_equal(g.min_requests, 50);
    assert_int_equal(g.window_s, 10);
    assert_false(g.tripped);
    /* Every field is optional; the limits themselves are valid. */
    assert_int_equal(guard_parse("{}", &g, err, sizeof err), 0);
    assert_true(g.enabled);
    assert_true(g.window_s >= 1 && g.window_s <= 60);
    assert_true(g.min_requests >= 1);
    assert_int_equal(guard_parse("{\"max_error_rate\":0,\"window_s\":60,"
                                 "\"min_requests\":1,\"max_p99_ratio\":0}",
                                 &g, err, sizeof err),
                     0);
    assert_int_equal(guard_parse("{\"max_error_rate\":1,\"window_s\":1}", &g, err, sizeof err), 0);
}

static void test_guard_parse_refuses_invalid_guards_with_a_message(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "42",
        "null",
        "{\"max_error_rate\":1.5}",
        "{\"max_error_rate\":-0.1}",
        "{\"max_error_rate\":\"0.1\"}",
        "{\"max_p99_ratio\":-1}",
        "{\"min_requests\":0}",
        "{\"min_requests\":\"many\"}",
        "{\"window_s\":0}",
        "{\"window_s\":61}",
        "{\"window_s\":true}",
        "{\"surprise\":1}",
        "{\"max_error_rate\":0.1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        deploy_guard g;
        char err[ERRLEN] = "";
        if (guard_parse(bad[i], &g, err, sizeof err) != -1)
            fail_msg("guard '%s' was accepted", bad[i]);
        if (err[0] == '\0')
            fail_msg("guard '%s' refused without a message", bad[i]);
    }
}

static void test_a_split_with_a_guard_describes_it_armed(void **state)
{
    fixture *f = *state;
    deploy_both(f);
    deploy_guard g;
    char err[ERRLEN];
    assert_int_equal(guard_parse("{\"max_error_rate\":0.2,\"min_requests\":10,"
                                 "\"window_s\":5}",
                                 &g, err, sizeof err),
                     0);
    const char *versions[] = {"1", "2"};
    const int weights[] = {80, 20};
    assert_int_equal(deploy_traffic_set(f->m, QUAD, versions, weights, 2, &g, "guarded").code,
                     DEPLOY_OK);
    cJSON *m = describe_model(f, QUAD);
    assert_non_null(m);
    const cJSON *guard = cJSON_GetObjectItemCaseSensitive(m, "guard");
    assert_true(cJSON_IsObject(guard));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(guard, "state")->valuestring, "armed");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(guard, "window_s")->valueint, 5);
    cJSON_Delete(m);
}

static void test_the_guard_takes_traffic_from_a_failing_canary(void **state)
{
    fixture *f = *state;
    register_fixture(f, QUAD, "3", "flaky", "{\"fail_rate\":1.0}");
    deploy_ok(f, QUAD, "1", NULL);
    deploy_ok(f, QUAD, "3", NULL);
    deploy_guard g;
    char err[ERRLEN];
    assert_int_equal(guard_parse("{\"max_error_rate\":0.5,\"min_requests\":5,"
                                 "\"window_s\":30}",
                                 &g, err, sizeof err),
                     0);
    const char *versions[] = {"1", "3"};
    const int weights[] = {70, 30};
    assert_int_equal(deploy_traffic_set(f->m, QUAD, versions, weights, 2, &g, "guarded").code,
                     DEPLOY_OK);
    const double xs[] = {1};
    double ys[1];
    for (int i = 0; i < 10; i++) {
        int status =
            infer_http(f->port, "/v2/models/" QUAD "/versions/3/infer", xs, 1, ys, NULL, 0);
        assert_int_equal(status / 100, 5);
    }
    deploy_tick(f->m);
    cJSON *m = describe_model(f, QUAD);
    assert_non_null(m);
    assert_int_equal(described_weight(m, "1"), 100);
    assert_int_equal(described_weight(m, "3"), 0);
    const cJSON *guard = cJSON_GetObjectItemCaseSensitive(m, "guard");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(guard, "state")->valuestring, "tripped");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(guard, "reason");
    assert_true(cJSON_IsString(reason) && strlen(reason->valuestring) > 0);
    cJSON_Delete(m);
    assert_int_equal(picks_of(f, "1", NULL, 500), 500);
}

/* ---- reconcile (scale-out) ---------------------------------------------------------------- */

/* A second replica on the same registry: its own manager, HTTP server and data dir. */
typedef struct peer {
    http_server *http;
    deploy_env env;
    deploy_manager *m;
    int port;
} peer;

static void peer_start(fixture *f, peer *p)
{
    assert_int_equal(start_server(&p->http), 0);
    p->port = http_port(p->http);
    p->env =
        (deploy_env){.reg = f->reg, .router = serve_router(p->http), .host = plugin_host_api()};
    snprintf(p->env.data_dir, sizeof p->env.data_dir, "%s/peer", f->dir);
    assert_int_equal(mkdir(p->env.data_dir, 0700), 0);
    assert_int_equal(deploy_manager_new(&p->env, &p->m), 0);
}

static void peer_stop(peer *p)
{
    deploy_manager_free(p->m);
    http_stop(p->http);
}

static deploy_reconcile_report reconcile_ok(deploy_manager *m)
{
    deploy_reconcile_report r;
    assert_int_equal(deploy_reconcile(m, &r), 0);
    return r;
}

static int64_t change_seq(fixture *f)
{
    int64_t seq = -1;
    char err[ERRLEN];
    assert_int_equal(registry_change_seq(f->reg, &seq, err, sizeof err), REG_OK);
    return seq;
}

static void test_reconcile_makes_a_peer_follow_deploys_splits_and_undeploys(void **state)
{
    fixture *f = *state;
    peer p;
    peer_start(f, &p);
    deploy_ok(f, QUAD, "1", "quad");
    deploy_reconcile_report r = reconcile_ok(p.m);
    assert_int_equal(r.added, 1);
    assert_infers(p.port, QUAD, "1", quad_v1);
    deployment *d = deploy_acquire_endpoint(p.m, "quad"); /* the endpoint name came along */
    assert_non_null(d);
    deploy_release(d);

    deploy_ok(f, QUAD, "2", NULL);
    assert_int_equal(set_split(f, "1", 30, "2", 70).code, DEPLOY_OK);
    r = reconcile_ok(p.m);
    assert_int_equal(r.added, 1);
    assert_int_equal(r.splits, 1);
    fixture view = *f;
    view.m = p.m;
    assert_split(&view, "1", 30, "2", 70);

    /* A rate limit stored by another replica (PUT .../limits) reaches this one's bucket. */
    deployment *mine = deploy_acquire(f->m, QUAD, "2", NULL);
    assert_non_null(mine);
    int64_t id2 = deploy_target_of(mine)->deployment_id;
    deploy_release(mine);
    char err[ERRLEN];
    assert_int_equal(registry_deployment_set_options(f->reg, id2,
                                                     "{\"rate_limit\":{\"rps\":5,\"burst\":7}}",
                                                     "limits", NULL, err, sizeof err),
                     REG_OK);
    r = reconcile_ok(p.m);
    assert_int_equal(r.limits, 1);
    rl_limit lim;
    assert_true(deploy_get_rate_limit(p.m, QUAD, "2", &lim));
    assert_true(lim.rps == 5 && lim.burst == 7);

    int64_t seq = change_seq(f);
    r = reconcile_ok(p.m); /* nothing changed: nothing to do, and nothing written */
    assert_int_equal(r.added + r.removed + r.splits + r.failed + r.limits, 0);
    assert_int_equal(change_seq(f), seq);
    r = reconcile_ok(f->m); /* the replica that made the changes is already there */
    assert_int_equal(r.added + r.removed + r.splits + r.failed, 0);

    undeploy_ok(f, QUAD, "1");
    seq = change_seq(f);
    r = reconcile_ok(p.m);
    assert_int_equal(r.removed, 1);
    assert_route_gone(p.port, QUAD, "1");
    assert_split(&view, "2", 100, NULL, 0);
    assert_int_equal(change_seq(f), seq); /* following wrote nothing */
    assert_int_equal(registry_row(f, QUAD, "2").active, 1);

    undeploy_ok(f, QUAD, "2");
    r = reconcile_ok(p.m);
    assert_int_equal(r.removed, 1);
    assert_route_gone(p.port, QUAD, "2");
    peer_stop(&p);
}

static void test_reconcile_retries_a_row_it_cannot_load_without_marking_it_failed(void **state)
{
    fixture *f = *state;
    peer p;
    peer_start(f, &p);
    char path[PATH_MAX];
    fixture_so("create_fails", path, sizeof path);
    register_version(f, "broken", "1", path, NULL);
    /* Recorded as another replica would have: the row exists, this replica cannot load it. */
    reg_deployment row = {0};
    char err[ERRLEN];
    assert_int_equal(registry_deployment_create(f->reg, "broken", "1", NULL, &row, err, sizeof err),
                     REG_OK);
    reg_deployment_free(&row);
    deploy_reconcile_report r = reconcile_ok(p.m);
    assert_int_equal(r.failed, 1);
    assert_string_equal(registry_row(f, "broken", "1").status, "active");
    r = reconcile_ok(p.m); /* backing off: not tried again at once */
    assert_int_equal(r.failed, 0);
    peer_stop(&p);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_deploy_returns_201_and_the_route_answers_at_once),
        T(test_each_version_computes_its_own_function),
        T(test_deploying_twice_is_409),
        T(test_deploying_an_unknown_version_or_model_is_404),
        T(test_deploying_with_invalid_names_is_400),
        T(test_a_plugin_that_cannot_load_or_create_is_500_and_leaves_nothing),
        T(test_acquire_without_a_version_picks_the_newest),
        T(test_newest_compares_numeric_versions_as_numbers),
        T(test_undeploy_returns_200_and_the_route_answers_404),
        T(test_undeploying_what_is_not_deployed_is_404),
        T(test_an_endpoint_name_finds_and_stops_its_deployment),
        T(test_an_endpoint_name_in_use_is_409),
        T(test_undeploy_waits_for_in_flight_requests),
        T(test_undeploy_waits_for_in_flight_requests_on_the_model_route),
        T(test_undeploy_waits_for_held_references),
        T(test_restore_brings_back_active_deployments),
        T(test_restore_with_nothing_active_restores_nothing),
        T(test_foreach_visits_every_live_deployment),
        T(test_a_version_keeps_serving_while_another_comes_and_goes),
        T(test_a_90_10_split_sends_about_a_tenth_to_the_canary),
        T(test_the_same_routing_key_always_gets_the_same_version),
        T(test_a_split_with_an_undeployed_version_is_409),
        T(test_a_split_with_bad_weights_is_400),
        T(test_promote_sends_everything_to_one_version),
        T(test_rollback_restores_the_previous_split),
        T(test_rollback_without_an_earlier_split_is_404),
        T(test_undeploying_a_version_spreads_its_weight_over_the_rest),
        T(test_a_split_survives_a_restart),
        cmocka_unit_test(test_guard_parse_accepts_valid_guards),
        cmocka_unit_test(test_guard_parse_refuses_invalid_guards_with_a_message),
        T(test_a_split_with_a_guard_describes_it_armed),
        T(test_the_guard_takes_traffic_from_a_failing_canary),
        T(test_reconcile_makes_a_peer_follow_deploys_splits_and_undeploys),
        T(test_reconcile_retries_a_row_it_cannot_load_without_marking_it_failed),
        /* Last: when the module leaves routes behind on deploy_manager_free, requests to them
         * are a use-after-free (private servers keep that away from the tests above). */
        T(test_restore_marks_a_version_whose_plugin_is_gone_failed),
        T(test_manager_free_removes_the_routes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
