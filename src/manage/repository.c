/*
 * repository: Triton's model repository extension (docs/protocol/extension_model_repository.md
 * of triton-inference-server/server), as another view of the registry and the deployment
 * manager — the same calls /deployments/deploy and /deployments/undeploy make, so both views
 * always agree:
 *
 *   POST /v2/repository/index              body optional: {"ready": bool}
 *        -> 200 [{"name","version","state","reason"}] for every registered version;
 *           state READY (deployed), LOADING / UNLOADING (a deploy / undeploy in progress),
 *           UNAVAILABLE (not deployed: reason "unloaded"; or its deployment failed: the reason)
 *   POST /v2/repository/models/<m>/load    body optional: {"parameters":{"version":"2"}} or
 *        {"parameters":{"versions":["1","2"]}} (or "1,2"); default: the newest registered version
 *        -> 200 with an empty body (Triton's reply) once the versions serve; versions already
 *           deployed stay as they are
 *   POST /v2/repository/models/<m>/unload  body optional: {"parameters":{"unload_dependents":b}}
 *        -> 200 with an empty body once every version of <m> is undeployed and drained
 *
 * Errors are {"error": "..."}: 400 bad body or parameter (Triton's "config" and "file:..." load
 * parameters are refused: register versions with POST /models or PUT /models/<m>/versions/<v>),
 * 404 unknown model or version, 405 not POST, and the deploy's own failure status.
 *
 * Thread-safety: handlers run on many threads; the registry and the deployment manager
 * serialize what they must.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "deploy.h"
#include "manage_internal.h"
#include "names.h"
#include "path.h"
#include "registry.h"
#include "reply.h"

#define REPO_MAX_VERSIONS 256

/* ---- index ---------------------------------------------------------------------------------- */

typedef struct repo_row {
    char name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    char reason[256]; /* reason of a failed deployment, "" when none */
    bool failed;
} repo_row;

typedef struct repo_rows {
    repo_row *rows;
    size_t count, cap;
    const char *only_model; /* NULL: every model */
    bool oom;
} repo_rows;

static int repo_collect_version(void *ud, const reg_version *v)
{
    repo_rows *r = ud;
    if (r->only_model != NULL && strcmp(v->name, r->only_model) != 0)
        return 0;
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        repo_row *rows = realloc(r->rows, cap * sizeof *rows);
        if (rows == NULL) {
            r->oom = true;
            return 1;
        }
        r->rows = rows;
        r->cap = cap;
    }
    repo_row *row = &r->rows[r->count++];
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", v->name);
    snprintf(row->version, sizeof row->version, "%s", v->version);
    return 0;
}

static int repo_mark_failed(void *ud, const reg_deployment *d)
{
    repo_rows *r = ud;
    if (strcmp(d->status, "failed") != 0)
        return 0;
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->rows[i].name, d->model_name) == 0 &&
            strcmp(r->rows[i].version, d->version) == 0) {
            r->rows[i].failed = true;
            snprintf(r->rows[i].reason, sizeof r->rows[i].reason, "%s",
                     d->status_reason ? d->status_reason : "deployment failed");
        }
    return 0;
}

/* Registered versions (of one model when model != NULL) with failed-deployment reasons.
 * 0, or -1 after writing a 500. rows->rows is the caller's to free. */
static int repo_load_rows(manage_ctx *s, const char *model, repo_rows *rows, http_response *resp)
{
    char err[256];
    rows->only_model = model;
    if (registry_version_list(s->reg, repo_collect_version, rows, err, sizeof err) != REG_OK ||
        registry_deployment_list(s->reg, repo_mark_failed, rows, err, sizeof err) != REG_OK) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return -1;
    }
    if (rows->oom) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    return 0;
}

/* Triton state and reason of one registered version. */
static const char *repo_state(manage_ctx *s, const repo_row *row, const char **reason)
{
    *reason = "";
    switch (deploy_state_of(s->deploy, row->name, row->version)) {
    case DEPLOY_STATE_LOADING: return "LOADING";
    case DEPLOY_STATE_UNLOADING: return "UNLOADING";
    case DEPLOY_STATE_READY: return "READY";
    case DEPLOY_STATE_NONE: break;
    }
    *reason = row->failed ? row->reason : "unloaded";
    return "UNAVAILABLE";
}

/* Parse an optional JSON object body whose keys are all in `allowed`. Empty body: *out = NULL,
 * returns 0. -1 after a 400. */
static int repo_body(const http_request *req, const char *const *allowed, cJSON **out,
                     http_response *resp)
{
    *out = NULL;
    size_t i = 0;
    while (i < req->body_len && (req->body[i] == ' ' || req->body[i] == '\n' ||
                                 req->body[i] == '\r' || req->body[i] == '\t'))
        i++;
    if (i == req->body_len)
        return 0;
    *out = body_object(req, resp, allowed);
    return *out ? 0 : -1;
}

/* Only `allowed` keys in obj (NULL obj passes). false after a 400. */
static bool repo_known_keys(const cJSON *obj, const char *const *allowed, const char *what,
                            http_response *resp)
{
    for (const cJSON *f = obj ? obj->child : NULL; f != NULL; f = f->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, f->string) == 0;
        if (!known) {
            reply_error(resp, HTTP_BAD_REQUEST, "unknown %s \"%s\"", what, f->string);
            return false;
        }
    }
    return true;
}

static void repo_index(manage_ctx *s, const http_request *req, http_response *resp)
{
    static const char *const keys[] = {"ready", NULL};
    cJSON *body;
    if (repo_body(req, keys, &body, resp) != 0)
        return;
    bool ready_only = false;
    const cJSON *ready = cJSON_GetObjectItemCaseSensitive(body, "ready");
    if (ready != NULL && !cJSON_IsBool(ready)) {
        cJSON_Delete(body);
        reply_error(resp, HTTP_BAD_REQUEST, "Invalid value for 'ready': expected a boolean");
        return;
    }
    ready_only = cJSON_IsTrue(ready);
    cJSON_Delete(body);
    repo_rows rows = {0};
    if (repo_load_rows(s, NULL, &rows, resp) != 0) {
        free(rows.rows);
        return;
    }
    buf_append_char(resp->body, '[');
    size_t shown = 0;
    for (size_t i = 0; i < rows.count; i++) {
        const char *reason, *state = repo_state(s, &rows.rows[i], &reason);
        if (ready_only && strcmp(state, "READY") != 0)
            continue;
        buf_append_str(resp->body, shown++ ? ",{\"name\":" : "{\"name\":");
        buf_append_json_string(resp->body, rows.rows[i].name, strlen(rows.rows[i].name));
        buf_append_str(resp->body, ",\"version\":");
        buf_append_json_string(resp->body, rows.rows[i].version, strlen(rows.rows[i].version));
        buf_printf(resp->body, ",\"state\":\"%s\",\"reason\":", state);
        buf_append_json_string(resp->body, reason, strlen(reason));
        buf_append_char(resp->body, '}');
    }
    buf_append_char(resp->body, ']');
    free(rows.rows);
    resp->status = HTTP_OK;
}

/* ---- load / unload ------------------------------------------------------------------------ */

typedef struct repo_versions {
    char v[REPO_MAX_VERSIONS][REG_NAME_MAX + 1];
    size_t count;
} repo_versions;

static bool repo_add_version(repo_versions *out, const char *v, size_t len, http_response *resp)
{
    char name[REG_NAME_MAX + 1];
    if (len == 0 || len > REG_NAME_MAX || out->count == REPO_MAX_VERSIONS) {
        reply_error(resp, HTTP_BAD_REQUEST, "bad version list in \"parameters\"");
        return false;
    }
    memcpy(name, v, len);
    name[len] = '\0';
    if (!name_valid(name)) {
        reply_error(resp, HTTP_BAD_REQUEST, "invalid version \"%s\"", name);
        return false;
    }
    for (size_t i = 0; i < out->count; i++)
        if (strcmp(out->v[i], name) == 0)
            return true;
    memcpy(out->v[out->count++], name, len + 1);
    return true;
}

/* "version": "2" | 2, "versions": ["1","2"] | "1,2". false after a 400. */
static bool repo_param_versions(const cJSON *p, repo_versions *out, http_response *resp)
{
    if (cJSON_IsNumber(p) && p->valuedouble >= 0 && p->valuedouble < 1e18 &&
        p->valuedouble == (double)(long long)p->valuedouble) {
        char n[32];
        snprintf(n, sizeof n, "%lld", (long long)p->valuedouble);
        return repo_add_version(out, n, strlen(n), resp);
    }
    if (cJSON_IsString(p)) {
        const char *s = p->valuestring;
        while (true) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            if (!repo_add_version(out, s, len, resp))
                return false;
            if (comma == NULL)
                return true;
            s = comma + 1;
        }
    }
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, p)
        {
            if (cJSON_IsArray(e)) {
                reply_error(resp, HTTP_BAD_REQUEST, "\"parameters\" versions must be a flat list");
                return false;
            }
            if (!repo_param_versions(e, out, resp))
                return false;
        }
        return true;
    }
    reply_error(resp, HTTP_BAD_REQUEST, "\"parameters\" version(s) must be a string, a number or an array");
    return false;
}

/* The versions a load asks for; default the newest registered one. false after an error. */
static bool repo_load_targets(manage_ctx *s, const char *model, const cJSON *params,
                              repo_versions *want, http_response *resp)
{
    static const char *const keys[] = {"version", "versions", NULL};
    for (const cJSON *f = params ? params->child : NULL; f != NULL; f = f->next)
        if (strcmp(f->string, "config") == 0 || strncmp(f->string, "file:", 5) == 0) {
            reply_error(resp, HTTP_BAD_REQUEST,
                       "load parameter \"%s\" is not supported: register the version with "
                       "POST /models or PUT /models/%s/versions/<v>, then load it",
                       f->string, model);
            return false;
        }
    if (!repo_known_keys(params, keys, "load parameter", resp))
        return false;
    repo_rows rows = {0};
    if (repo_load_rows(s, model, &rows, resp) != 0) {
        free(rows.rows);
        return false;
    }
    bool ok = true;
    if (rows.count == 0) {
        reply_error(resp, HTTP_NOT_FOUND, "model %s is not registered", model);
        ok = false;
    }
    for (const cJSON *f = params ? params->child : NULL; ok && f != NULL; f = f->next)
        ok = repo_param_versions(f, want, resp);
    for (size_t i = 0; ok && i < want->count; i++) {
        bool found = false;
        for (size_t r = 0; r < rows.count && !found; r++)
            found = strcmp(rows.rows[r].version, want->v[i]) == 0;
        if (!found) {
            reply_error(resp, HTTP_NOT_FOUND, "model %s has no version %s", model, want->v[i]);
            ok = false;
        }
    }
    if (ok && want->count == 0) {
        const char *newest = rows.rows[0].version;
        for (size_t r = 1; r < rows.count; r++)
            if (deploy_version_cmp(rows.rows[r].version, newest) > 0)
                newest = rows.rows[r].version;
        ok = repo_add_version(want, newest, strlen(newest), resp);
    }
    free(rows.rows);
    return ok;
}

static void repo_load(manage_ctx *s, const char *model, const cJSON *body, http_response *resp)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    if (params != NULL && !cJSON_IsObject(params) && !cJSON_IsNull(params)) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"parameters\" must be an object");
        return;
    }
    repo_versions *want = calloc(1, sizeof *want);
    bool loaded[REPO_MAX_VERSIONS] = {false};
    if (want == NULL) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (!repo_load_targets(s, model, cJSON_IsObject(params) ? params : NULL, want, resp)) {
        free(want);
        return;
    }
    for (size_t i = 0; i < want->count; i++) {
        if (deploy_state_of(s->deploy, model, want->v[i]) == DEPLOY_STATE_READY)
            continue; /* already serving: Triton would reload; we keep it as it is */
        deploy_result r = deploy_start(s->deploy, model, want->v[i], NULL, NULL, NULL);
        deploy_state now = deploy_state_of(s->deploy, model, want->v[i]);
        if (r.code == DEPLOY_CONFLICT && (now == DEPLOY_STATE_READY || now == DEPLOY_STATE_LOADING))
            continue; /* deployed concurrently by someone else */
        if (r.code != DEPLOY_OK) {
            /* All or nothing: undo what this request loaded. */
            for (size_t j = 0; j < i; j++)
                if (loaded[j])
                    deploy_stop(s->deploy, model, want->v[j], NULL, -1);
            reply_error(resp, reply_status_of_deploy(r.code), "failed to load '%s' version %s: %s",
                        model, want->v[i], r.message);
            free(want);
            return;
        }
        loaded[i] = true;
    }
    free(want);
    resp->status = HTTP_OK; /* Triton answers a load with 200 and an empty body */
}

static void repo_unload(manage_ctx *s, const char *model, const cJSON *body, http_response *resp)
{
    static const char *const params_keys[] = {"unload_dependents", NULL};
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    if (params != NULL && !cJSON_IsObject(params) && !cJSON_IsNull(params)) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"parameters\" must be an object");
        return;
    }
    if (!repo_known_keys(cJSON_IsObject(params) ? params : NULL, params_keys, "unload parameter",
                         resp))
        return;
    const cJSON *dep = cJSON_GetObjectItemCaseSensitive(params, "unload_dependents");
    if (dep != NULL && !cJSON_IsBool(dep)) {
        reply_error(resp, HTTP_BAD_REQUEST, "Unable to parse 'unload_dependents': expected a boolean");
        return; /* dynserve has no ensembles, so there are never dependents to unload */
    }
    repo_rows rows = {0};
    if (repo_load_rows(s, model, &rows, resp) != 0) {
        free(rows.rows);
        return;
    }
    if (rows.count == 0) {
        free(rows.rows);
        reply_error(resp, HTTP_NOT_FOUND, "model %s is not registered", model);
        return;
    }
    for (size_t i = 0; i < rows.count; i++) {
        if (deploy_state_of(s->deploy, model, rows.rows[i].version) == DEPLOY_STATE_NONE &&
            !rows.rows[i].failed)
            continue;
        deploy_result r = deploy_stop(s->deploy, model, rows.rows[i].version, NULL, -1);
        /* DRAINING: out of service, a call past the drain timeout still finishing (UNLOADING) */
        if (r.code != DEPLOY_OK && r.code != DEPLOY_NOT_FOUND && r.code != DEPLOY_DRAINING) {
            reply_error(resp, reply_status_of_deploy(r.code), "failed to unload '%s' version %s: %s",
                        model, rows.rows[i].version, r.message);
            free(rows.rows);
            return;
        }
    }
    free(rows.rows);
    resp->status = HTTP_OK;
}

void manage_repository(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    char buf[512];
    const char *seg[6];
    int n = path_segments(req->path, buf, sizeof buf, seg, 6);
    /* seg: "v2" "repository" ( "index" | "models" m ("load" | "unload") ) */
    bool index = n == 3 && strcmp(seg[2], "index") == 0;
    bool control = n == 5 && strcmp(seg[2], "models") == 0 &&
                   (strcmp(seg[4], "load") == 0 || strcmp(seg[4], "unload") == 0);
    if (!index && !control) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
        return;
    }
    if (!reply_method_is(req, "POST")) {
        reply_bad_method(req, resp, "POST");
        return;
    }
    if (index) {
        repo_index(s, req, resp);
        return;
    }
    if (!name_valid(seg[3])) {
        reply_error(resp, HTTP_BAD_REQUEST, "invalid model name");
        return;
    }
    static const char *const keys[] = {"parameters", NULL};
    cJSON *body;
    if (repo_body(req, keys, &body, resp) != 0)
        return;
    if (strcmp(seg[4], "load") == 0)
        repo_load(s, seg[3], body, resp);
    else
        repo_unload(s, seg[3], body, resp);
    cJSON_Delete(body);
}
