/*
 * libFuzzer harness for the management API's JSON bodies: deploy, undeploy, traffic (weights,
 * guard and the {"weights","guard"} form), promote, register (POST /models) and limits. Each
 * input's first byte picks the route, the rest is the body. The real handlers run against a
 * real registry (a temporary data dir), a real deployment manager and a real CivetWeb server on
 * a loopback port (their routes are added and removed as deploys succeed), with the example
 * model quadratic_predictor 1 registered and the model build as plugin directory.
 *
 * Properties checked on every input: the handler answers a status in 200..599 with a JSON body,
 * an error is an object with a non-empty "error" string, and nothing leaks (ASan). State is
 * reset after each input: whatever got deployed is undeployed and whatever got registered is
 * deleted, so the next input starts from the same server.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "deploy.h"
#include "host.h"
#include "http.h"
#include "log.h"
#include "manage_internal.h"
#include "plugin_file.h"
#include "registry.h"
#include "serve.h"
#include "store.h"
#include "worker.h"

#if !defined(DS_FUZZ_MODELS_DIR) || !defined(DS_FUZZ_SERVER_BIN)
#error "DS_FUZZ_MODELS_DIR and DS_FUZZ_SERVER_BIN must name the built models and server"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    ds_config cfg;
    registry *reg;
    http_server *http;
    deploy_manager *deploy;
    plugin_dirs dirs;
    manage_ctx manage;
    ds_buf out;
} F;

static void fuzz_die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_manage setup: %s: %s\n", what, err);
    abort(); /* setup only: the harness cannot run without its server */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    worker_set_executable(DS_FUZZ_SERVER_BIN); /* registration probes run in `dynserve worker` */
    char err[512];
    snprintf(F.cfg.data_dir, sizeof F.cfg.data_dir, "/tmp/ds-fuzz-manage-XXXXXX");
    if (mkdtemp(F.cfg.data_dir) == NULL)
        fuzz_die("mkdtemp", "failed");
    F.cfg.max_body_bytes = 1 << 20;
    F.cfg.max_upload_bytes = 1 << 24;
    if (store_init(F.cfg.data_dir, err, sizeof err) != 0)
        fuzz_die("store", err);
    char path[4200];
    snprintf(path, sizeof path, "%s/registry.db", F.cfg.data_dir);
    if (registry_open(path, &F.reg, err, sizeof err) != REG_OK)
        fuzz_die("registry", err);
    http_global_init();
    http_config hc = {.listen = "127.0.0.1:0",
                      .threads = 2,
                      .max_body_bytes = 1 << 20,
                      .request_timeout_ms = 1000,
                      .keep_alive_ms = 100};
    if (http_start(&hc, &F.http, err, sizeof err) != 0)
        fuzz_die("http", err);
    deploy_env env = {.reg = F.reg, .router = serve_router(F.http), .host = plugin_host_api()};
    snprintf(env.data_dir, sizeof env.data_dir, "%s", F.cfg.data_dir);
    if (deploy_manager_new(&env, &F.deploy) != 0)
        fuzz_die("deploy", "out of memory");
    if (plugin_dirs_add(&F.dirs, DS_FUZZ_MODELS_DIR, err, sizeof err) != 0)
        fuzz_die("plugin dirs", err);
    char sha[STORE_SHA256_HEX], stored[4200];
    snprintf(path, sizeof path, "%s/quadratic_predictor/1/model.so", DS_FUZZ_MODELS_DIR);
    if (store_import_file(F.cfg.data_dir, path, sha, stored, sizeof stored, err, sizeof err) ||
        registry_version_add(F.reg, "quadratic_predictor", "1", stored, sha, "{}", err,
                             sizeof err) != REG_OK)
        fuzz_die("register the example model", err);
    F.manage = (manage_ctx){.cfg = &F.cfg,
                            .reg = F.reg,
                            .deploy = F.deploy,
                            .http = F.http,
                            .host = plugin_host_api(),
                            .plugin_dirs = &F.dirs};
    return 0;
}

typedef struct fuzz_route {
    const char *method, *path;
    void (*handler)(void *, const http_request *, http_response *);
} fuzz_route;

static const fuzz_route routes[] = {
    {"POST", "/deployments/deploy", manage_deployments},
    {"POST", "/deployments/undeploy", manage_deployments},
    {"PUT", "/deployments/quadratic_predictor/traffic", manage_deployments},
    {"POST", "/deployments/quadratic_predictor/promote", manage_deployments},
    {"POST", "/models", manage_models},
    {"PUT", "/deployments/quadratic_predictor/1/limits", manage_deployments},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static int fuzz_undeploy_all(void *ud, const reg_deployment *d)
{
    (void)ud;
    deploy_stop(F.deploy, d->model_name, d->version, NULL, 1000);
    return 0;
}

static int fuzz_collect_extra(void *ud, const reg_version *v)
{
    if (strcmp(v->name, "quadratic_predictor") != 0 || strcmp(v->version, "1") != 0)
        cJSON_AddItemToArray(ud, cJSON_CreateStringArray((const char *[]){v->name, v->version}, 2));
    return 0;
}

/* Back to the starting state: nothing deployed, only the example model registered. */
static void fuzz_reset(void)
{
    char err[256];
    registry_deployment_list(F.reg, fuzz_undeploy_all, NULL, err, sizeof err);
    cJSON *extra = cJSON_CreateArray();
    registry_version_list(F.reg, fuzz_collect_extra, extra, err, sizeof err);
    const cJSON *pair;
    cJSON_ArrayForEach(pair, extra)
    {
        registry_version_delete(F.reg, cJSON_GetArrayItem(pair, 0)->valuestring,
                                cJSON_GetArrayItem(pair, 1)->valuestring, err, sizeof err);
    }
    cJSON_Delete(extra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const fuzz_route *rt = &routes[data[0] % N_ROUTES];
    char *body = malloc(size); /* NUL-terminated copy, as the HTTP glue hands bodies over */
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    buf_reset(&F.out);
    buf_set_headroom(&F.out, 512);
    http_response resp = {.content_type = "application/json", .body = &F.out};
    http_request req = {
        .method = rt->method, .path = rt->path, .body = body, .body_len = size - 1};
    rt->handler(&F.manage, &req, &resp);
    if (resp.status < 200 || resp.status > 599)
        abort();
    cJSON *reply = cJSON_ParseWithLength(F.out.data ? F.out.data : "", F.out.len);
    if (reply == NULL)
        abort(); /* every answer is JSON */
    if (resp.status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0')
            abort();
    }
    cJSON_Delete(reply);
    free(body);
    fuzz_reset();
    return 0;
}
