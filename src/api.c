/*
 * api: the management REST API — models (register, upload, delete, list), deployments (deploy,
 * undeploy, list, events), seed-style /predict routes and the dashboard's static files. JSON
 * bodies are parsed with cJSON (not the hot path); unknown body fields are a 400.
 */
#include "api.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary.h"
#include "infer.h"
#include "loader.h"
#include "log.h"
#include "store.h"

/* ---- helpers ------------------------------------------------------------------------------ */

void api_reply(http_response *resp, int status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (text == NULL) {
        http_error(resp, 500, "out of memory");
        return;
    }
    buf_reset(resp->body);
    buf_append_str(resp->body, text);
    free(text);
    resp->status = status;
}

static bool api_method(const http_request *req, const char *want)
{
    return strcmp(req->method, want) == 0 ||
           (strcmp(want, "GET") == 0 && strcmp(req->method, "HEAD") == 0);
}

static void api_bad_method(const http_request *req, http_response *resp, const char *allowed)
{
    http_error(resp, 405, "%s does not allow %s (allowed: %s)", req->path, req->method, allowed);
    http_response_header(resp, "Allow", allowed);
}

/* Parse a JSON object body whose keys are all in `allowed` (NULL-terminated). NULL after
 * writing a 400. Caller deletes the result. */
static cJSON *api_body(const http_request *req, http_response *resp, const char *const *allowed)
{
    cJSON *obj = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        http_error(resp, 400, "request body must be a JSON object");
        return NULL;
    }
    for (const cJSON *f = obj->child; f != NULL; f = f->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, f->string) == 0;
        if (!known) {
            http_error(resp, 400, "unknown field \"%s\"", f->string);
            cJSON_Delete(obj);
            return NULL;
        }
    }
    return obj;
}

/* A name field: a string, or for "version" also a whole number ({"version": 2}, as Triton
 * clients send it). Returns NULL when absent; *bad set (and a 400 written) when present but of
 * another type or not a valid name. buf holds at least REG_NAME_MAX + 1 bytes. */
static const char *api_name_field(const cJSON *obj, const char *key, char *buf, size_t len,
                                  bool *bad, http_response *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v))
        return NULL;
    bool numeric_ok = strcmp(key, "version") == 0;
    buf[0] = '\0';
    if (cJSON_IsString(v) && strlen(v->valuestring) < len)
        snprintf(buf, len, "%s", v->valuestring);
    else if (numeric_ok && cJSON_IsNumber(v) && v->valuedouble >= 0 &&
             v->valuedouble == (double)v->valueint)
        snprintf(buf, len, "%d", v->valueint);
    if (!registry_name_valid(buf)) {
        *bad = true;
        http_error(resp, 400, "\"%s\" must be a name matching [A-Za-z0-9_.-]{1,64}", key);
        return NULL;
    }
    return buf;
}

static int api_status_of(reg_status rs)
{
    switch (rs) {
    case REG_OK: return 200;
    case REG_NOT_FOUND: return 404;
    case REG_EXISTS:
    case REG_CONFLICT: return 409;
    case REG_INVALID: return 400;
    default: return 500;
    }
}

static cJSON *api_deployment_json(const reg_deployment *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)d->id);
    cJSON_AddStringToObject(o, "model_name", d->model_name);
    cJSON_AddStringToObject(o, "version", d->version);
    if (d->endpoint_name[0])
        cJSON_AddStringToObject(o, "endpoint_name", d->endpoint_name);
    else
        cJSON_AddNullToObject(o, "endpoint_name");
    cJSON_AddStringToObject(o, "status", d->status);
    cJSON_AddStringToObject(o, "deployed_at", d->deployed_at);
    if (d->status_reason)
        cJSON_AddStringToObject(o, "reason", d->status_reason);
    return o;
}

static cJSON *api_version_json(const reg_version *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON_AddStringToObject(o, "version", v->version);
    cJSON_AddStringToObject(o, "plugin_sha256", v->sha256);
    cJSON_AddStringToObject(o, "created_at", v->created_at);
    cJSON *config = cJSON_Parse(v->config_json);
    cJSON_AddItemToObject(o, "config", config ? config : cJSON_CreateObject());
    return o;
}

/* ---- /models ------------------------------------------------------------------------------ */

typedef struct models_acc {
    cJSON *models;
    cJSON *current; /* the versions array of the model being filled */
    char name[REG_NAME_MAX + 1];
} models_acc;

static int api_collect_version(void *ud, const reg_version *v)
{
    models_acc *acc = ud;
    if (acc->current == NULL || strcmp(acc->name, v->name) != 0) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", v->name);
        acc->current = cJSON_AddArrayToObject(m, "versions");
        cJSON_AddItemToArray(acc->models, m);
        snprintf(acc->name, sizeof acc->name, "%s", v->name);
    }
    cJSON_AddItemToArray(acc->current, cJSON_CreateString(v->version));
    return 0;
}

static void api_models_list(ds_server *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    models_acc acc = {.models = cJSON_AddArrayToObject(root, "models")};
    char err[256];
    reg_status rs = registry_version_list(s->reg, api_collect_version, &acc, err, sizeof err);
    if (rs != REG_OK) {
        cJSON_Delete(root);
        http_error(resp, 500, "registry: %s", err);
        return;
    }
    api_reply(resp, 200, root);
}

/* Store, probe and record a plugin as (name, version). Writes the reply. */
static void api_register(ds_server *s, const char *name, const char *version, const char *path,
                         const char *sha, const char *config_json, http_response *resp)
{
    char err[512];
    if (loader_probe(path, infer_host_api(), config_json, err, sizeof err) != 0) {
        http_error(resp, 400, "not a loadable plugin: %s", err);
        return;
    }
    reg_status rs =
        registry_version_add(s->reg, name, version, path, sha, config_json, err, sizeof err);
    if (rs != REG_OK) {
        http_error(resp, api_status_of(rs), "%s", err);
        return;
    }
    char detail[160];
    snprintf(detail, sizeof detail, "{\"plugin_sha256\":\"%s\"}", sha);
    registry_event_add(s->reg, "register", name, version, detail, err, sizeof err);
    reg_version v = {0};
    if (registry_version_get(s->reg, name, version, &v, err, sizeof err) != REG_OK) {
        http_error(resp, 500, "registry: %s", err);
        return;
    }
    api_reply(resp, 201, api_version_json(&v));
    reg_version_free(&v);
}

static void api_models_register(ds_server *s, const http_request *req, http_response *resp)
{
    static const char *const fields[] = {"name", "version", "plugin", "config", NULL};
    cJSON *body = api_body(req, resp, fields);
    if (body == NULL)
        return;
    char name[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
    bool bad = false;
    const char *n = api_name_field(body, "name", name, sizeof name, &bad, resp);
    const char *v =
        bad ? NULL : api_name_field(body, "version", version, sizeof version, &bad, resp);
    const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(body, "plugin");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(body, "config");
    char *config_text = NULL;
    if (bad) {
    } else if (!n || !v || !cJSON_IsString(plugin)) {
        http_error(resp, 400, "\"name\", \"version\" and \"plugin\" (a path) are required");
    } else if (config && !cJSON_IsObject(config)) {
        http_error(resp, 400, "\"config\" must be a JSON object");
    } else {
        config_text = config ? cJSON_PrintUnformatted(config) : NULL;
        char sha[STORE_SHA256_HEX], stored[PATH_MAX], err[512];
        if (store_import_file(s->cfg.data_dir, plugin->valuestring, sha, stored, sizeof stored, err,
                              sizeof err) != 0)
            http_error(resp, 400, "not a loadable plugin: %s", err);
        else
            api_register(s, n, v, stored, sha, config_text ? config_text : "{}", resp);
    }
    free(config_text);
    cJSON_Delete(body);
}

static void api_models_upload(ds_server *s, const char *name, const char *version,
                              const http_request *req, http_response *resp)
{
    if (req->body_len > (size_t)s->cfg.max_upload_bytes) {
        http_error(resp, 413, "plugin of %zu bytes exceeds the upload limit of %lld bytes",
                   req->body_len, (long long)s->cfg.max_upload_bytes);
        return;
    }
    if (req->body_len == 0) {
        http_error(resp, 400, "upload the plugin's bytes as the request body");
        return;
    }
    char sha[STORE_SHA256_HEX], stored[PATH_MAX], err[512];
    if (store_import_bytes(s->cfg.data_dir, req->body, req->body_len, sha, stored, sizeof stored,
                           err, sizeof err) != 0) {
        http_error(resp, 500, "%s", err);
        return;
    }
    api_register(s, name, version, stored, sha, "{}", resp);
}

static void api_models_delete(ds_server *s, const char *name, const char *version,
                              http_response *resp)
{
    char err[512];
    reg_status rs = registry_version_delete(s->reg, name, version, err, sizeof err);
    if (rs != REG_OK) {
        http_error(resp, api_status_of(rs), "%s", err);
        return;
    }
    registry_event_add(s->reg, "unregister", name, version, NULL, err, sizeof err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddBoolToObject(o, "deleted", true);
    api_reply(resp, 200, o);
}

static void api_models(void *cbdata, const http_request *req, http_response *resp)
{
    ds_server *s = cbdata;
    char buf[512];
    const char *seg[6];
    int n = server_path_segments(req->path, buf, sizeof buf, seg, 6);
    if (n == 1) {
        if (api_method(req, "GET"))
            api_models_list(s, resp);
        else if (api_method(req, "POST"))
            api_models_register(s, req, resp);
        else
            api_bad_method(req, resp, "GET, POST");
    } else if (n == 2 && strcmp(seg[1], "stats") == 0) {
        if (api_method(req, "GET"))
            api_stats_all(s, resp);
        else
            api_bad_method(req, resp, "GET");
    } else if (n == 4 && strcmp(seg[2], "versions") == 0) {
        if (!registry_name_valid(seg[1]) || !registry_name_valid(seg[3]))
            http_error(resp, 400, "model name and version must match [A-Za-z0-9_.-]{1,64}");
        else if (api_method(req, "PUT"))
            api_models_upload(s, seg[1], seg[3], req, resp);
        else if (api_method(req, "DELETE"))
            api_models_delete(s, seg[1], seg[3], resp);
        else
            api_bad_method(req, resp, "PUT, DELETE");
    } else {
        http_error(resp, 404, "no route for %s", req->path);
    }
}

/* ---- /deployments ------------------------------------------------------------------------- */

/* The body of deploy and undeploy: {"model_name","version","endpoint_name"}, each optional here.
 * Pointers are into `names` (NULL when absent). false after writing a 400. */
typedef struct deploy_names {
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1], endpoint[REG_NAME_MAX + 1];
    const char *m, *v, *e;
} deploy_names;

static bool api_deploy_body(const http_request *req, http_response *resp, deploy_names *n)
{
    static const char *const fields[] = {"model_name", "version", "endpoint_name", NULL};
    cJSON *body = api_body(req, resp, fields);
    if (body == NULL)
        return false;
    bool bad = false;
    n->m = api_name_field(body, "model_name", n->model, sizeof n->model, &bad, resp);
    n->v = bad ? NULL : api_name_field(body, "version", n->version, sizeof n->version, &bad, resp);
    n->e = bad ? NULL
               : api_name_field(body, "endpoint_name", n->endpoint, sizeof n->endpoint, &bad, resp);
    cJSON_Delete(body);
    return !bad;
}

static void api_deploy(ds_server *s, const http_request *req, http_response *resp)
{
    deploy_names n;
    if (!api_deploy_body(req, resp, &n))
        return;
    const char *m = n.m, *v = n.v, *e = n.e;
    if (!m || !v) {
        http_error(resp, 400, "\"model_name\" and \"version\" are required");
        return;
    }
    reg_deployment row = {0};
    deploy_result r = deploy_start(s->deploy, m, v, e, &row);
    if (r.status != 201) {
        http_error(resp, r.status, "%s", r.message);
        return;
    }
    api_reply(resp, 201, api_deployment_json(&row));
    reg_deployment_free(&row);
}

static void api_undeploy(ds_server *s, const http_request *req, http_response *resp)
{
    deploy_names n;
    if (!api_deploy_body(req, resp, &n))
        return;
    const char *m = n.m, *v = n.v, *e = n.e;
    if (!((m && v && !e) || (!m && !v && e))) {
        http_error(resp, 400, "give {\"model_name\", \"version\"} or {\"endpoint_name\"}");
        return;
    }
    deploy_result r = deploy_stop(s->deploy, m, v, e);
    if (r.status != 200) {
        http_error(resp, r.status, "%s", r.message);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (m) {
        cJSON_AddStringToObject(o, "model_name", m);
        cJSON_AddStringToObject(o, "version", v);
    } else {
        cJSON_AddStringToObject(o, "endpoint_name", e);
    }
    cJSON_AddStringToObject(o, "status", "undeployed");
    api_reply(resp, 200, o);
}

static int api_collect_deployment(void *ud, const reg_deployment *d)
{
    cJSON_AddItemToArray(ud, api_deployment_json(d));
    return 0;
}

static void api_deployments_list(ds_server *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "deployments");
    char err[256];
    if (registry_deployment_list(s->reg, api_collect_deployment, list, err, sizeof err) != REG_OK) {
        cJSON_Delete(root);
        http_error(resp, 500, "registry: %s", err);
        return;
    }
    ds_buf splits = DS_BUF_INIT;
    canary_describe(s->deploy, &splits);
    cJSON *traffic = cJSON_ParseWithLength(splits.data ? splits.data : "[]", splits.len);
    buf_free(&splits);
    cJSON_AddItemToObject(root, "traffic", traffic ? traffic : cJSON_CreateArray());
    api_reply(resp, 200, root);
}

static int api_collect_event(void *ud, const reg_event *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)e->id);
    cJSON_AddStringToObject(o, "at", e->at);
    cJSON_AddStringToObject(o, "kind", e->kind);
    cJSON_AddStringToObject(o, "model_name", e->model_name);
    cJSON_AddStringToObject(o, "version", e->version);
    cJSON *detail = e->detail && e->detail[0] ? cJSON_Parse(e->detail) : NULL;
    cJSON_AddItemToObject(o, "detail", detail ? detail : cJSON_CreateObject());
    cJSON_AddItemToArray(ud, o);
    return 0;
}

/* Value of `key` in a query string "a=1&b=2" copied into out; false when absent. */
static bool api_query(const char *query, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = strcspn(p + klen + 1, "&");
            snprintf(out, len, "%.*s", (int)vlen, p + klen + 1);
            return true;
        }
    }
    return false;
}

static void api_events(ds_server *s, const http_request *req, http_response *resp)
{
    char model[REG_NAME_MAX + 1] = "", limit_text[16] = "";
    int limit = 100;
    if (api_query(req->query, "limit", limit_text, sizeof limit_text))
        limit = atoi(limit_text);
    bool by_model = api_query(req->query, "model", model, sizeof model);
    if (limit < 1 || limit > 10000 || (by_model && !registry_name_valid(model))) {
        http_error(resp, 400, "limit must be 1..10000 and model a valid name");
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "events");
    char err[256];
    if (registry_event_list(s->reg, by_model ? model : NULL, limit, api_collect_event, list, err,
                            sizeof err) != REG_OK) {
        cJSON_Delete(root);
        http_error(resp, 500, "registry: %s", err);
        return;
    }
    api_reply(resp, 200, root);
}

static void api_deployments(void *cbdata, const http_request *req, http_response *resp)
{
    ds_server *s = cbdata;
    char buf[512];
    const char *seg[6];
    int n = server_path_segments(req->path, buf, sizeof buf, seg, 6);
    const char *what = n >= 2 ? seg[1] : "";
    if (n == 1) {
        if (api_method(req, "GET"))
            api_deployments_list(s, resp);
        else
            api_bad_method(req, resp, "GET");
    } else if (n == 2 && (strcmp(what, "deploy") == 0 || strcmp(what, "undeploy") == 0)) {
        if (!api_method(req, "POST"))
            api_bad_method(req, resp, "POST");
        else if (what[0] == 'd')
            api_deploy(s, req, resp);
        else
            api_undeploy(s, req, resp);
    } else if (n == 2 && strcmp(what, "events") == 0) {
        if (api_method(req, "GET"))
            api_events(s, req, resp);
        else
            api_bad_method(req, resp, "GET");
    } else if (n >= 3 && api_canary_route(s, req, seg, n, resp)) {
        /* traffic, promote, rollback, per-deployment stats */
    } else {
        http_error(resp, 404, "no route for %s", req->path);
    }
}

/* ---- /predict ----------------------------------------------------------------------------- */

static void api_predict_with(deployment *d, const char *what, cJSON *input, http_response *resp)
{
    if (d == NULL) {
        http_error(resp, 404, "%s is not deployed", what);
        return;
    }
    char *text = cJSON_PrintUnformatted(input);
    if (text != NULL)
        infer_predict(deploy_target_of(d), text, resp);
    else
        http_error(resp, 500, "out of memory");
    free(text);
    deploy_release(d);
}

static void api_predict(void *cbdata, const http_request *req, http_response *resp)
{
    ds_server *s = cbdata;
    char buf[512];
    const char *seg[4];
    int n = server_path_segments(req->path, buf, sizeof buf, seg, 4);
    if (n < 1 || n > 2) {
        http_error(resp, 404, "no route for %s", req->path);
        return;
    }
    if (!api_method(req, "POST")) {
        api_bad_method(req, resp, "POST");
        return;
    }
    static const char *const endpoint_fields[] = {"input", NULL};
    static const char *const model_fields[] = {"model_name", "version", "input", NULL};
    cJSON *body = api_body(req, resp, n == 2 ? endpoint_fields : model_fields);
    if (body == NULL)
        return;
    cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1], what[160];
    bool bad = false;
    const char *m =
        n == 1 ? api_name_field(body, "model_name", model, sizeof model, &bad, resp) : NULL;
    const char *v = n == 1 && !bad
                        ? api_name_field(body, "version", version, sizeof version, &bad, resp)
                        : NULL;
    if (bad) {
    } else if (input == NULL) {
        http_error(resp, 400, "\"input\" is required");
    } else if (n == 2) {
        snprintf(what, sizeof what, "endpoint %s", seg[1]);
        api_predict_with(registry_name_valid(seg[1]) ? deploy_acquire_endpoint(s->deploy, seg[1])
                                                     : NULL,
                         what, input, resp);
    } else if (m == NULL) {
        http_error(resp, 400, "\"model_name\" is required");
    } else {
        snprintf(what, sizeof what, "model %s%s%s", m, v ? " version " : "", v ? v : "");
        api_predict_with(deploy_acquire(s->deploy, m, v, http_header(req, "X-Routing-Key")), what,
                         input, resp);
    }
    cJSON_Delete(body);
}

/* ---- static files and registration ---------------------------------------------------------- */

static void api_static(void *cbdata, const http_request *req, http_response *resp)
{
    ds_server *s = cbdata;
    http_serve_static(s->http, req, resp);
}

int api_register_routes(ds_server *s)
{
    size_t upload =
        (size_t)(s->cfg.max_upload_bytes > s->cfg.max_body_bytes ? s->cfg.max_upload_bytes
                                                                 : s->cfg.max_body_bytes);
    /* Accept a little more than the upload limit so the handler can answer a clean 413. */
    int rc = http_route_add_sized(s->http, "/models", api_models, s, upload + 1);
    rc |= http_route_add(s->http, "/deployments", api_deployments, s);
    rc |= http_route_add(s->http, "/predict", api_predict, s);
    rc |= http_route_add(s->http, "/metrics", api_metrics, s);
    rc |= http_route_add(s->http, "/", api_static, s);
    return rc;
}
