/*
 * manage traffic: the canary routes under /deployments/<model>/ — traffic (PUT, GET), promote,
 * rollback — and the dispatch of per-deployment stats (/deployments/<model>/<version>/stats,
 * stats.c). Parsing only; the deployment manager (deploy/traffic.c) does the work.
 */
#include "manage_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "jsonscan.h"
#include "names.h"
#include "reply.h"

#define API_MAX_SPLIT 64

static bool manage_is_method(const http_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

/* Reply {"model_name","weights","guard"} of one model, or no split. */
static void manage_traffic_reply(manage_ctx *s, const char *model, http_response *resp)
{
    char versions[1][REG_NAME_MAX + 1];
    if (deploy_versions(s->deploy, model, versions, 1, NULL) == 0) {
        reply_error(resp, HTTP_NOT_FOUND, "model %s has no deployed version", model);
        return;
    }
    ds_buf all = DS_BUF_INIT;
    deploy_traffic_describe(s->deploy, &all);
    cJSON *list = cJSON_ParseWithLength(all.data ? all.data : "[]", all.len);
    buf_free(&all);
    cJSON *found = NULL, *e;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "model_name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, model) == 0)
            found = e;
    }
    if (found == NULL) {
        found = cJSON_CreateObject();
        cJSON_AddStringToObject(found, "model_name", model);
        cJSON_AddNullToObject(found, "weights");
        cJSON_AddNullToObject(found, "guard");
        char shadow_version[REG_NAME_MAX + 1];
        int pct = 0;
        if (deploy_shadow_get(s->deploy, model, shadow_version, &pct)) {
            cJSON *sh = cJSON_AddObjectToObject(found, "shadow");
            cJSON_AddStringToObject(sh, "version", shadow_version);
            cJSON_AddNumberToObject(sh, "percent", pct);
        } else {
            cJSON_AddNullToObject(found, "shadow");
        }
        cJSON_AddItemToArray(list, found);
    }
    char *text = cJSON_PrintUnformatted(found);
    cJSON_Delete(list);
    buf_reset(resp->body);
    if (text == NULL) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
        return;
    }
    buf_append_str(resp->body, text);
    free(text);
    resp->status = HTTP_OK;
}

/* Read {"<version>": weight, ...} into versions/weights. -1 after writing a 400. */
static int manage_read_weights(const cJSON *obj, const char **versions, int *weights, size_t *n,
                               http_response *resp)
{
    *n = 0;
    if (!cJSON_IsObject(obj) || obj->child == NULL) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "weights must be a non-empty object {\"<version>\": <0..100>}");
        return -1;
    }
    for (const cJSON *f = obj->child; f; f = f->next) {
        if (*n == API_MAX_SPLIT || !name_valid(f->string) || !cJSON_IsNumber(f) ||
            f->valuedouble != (double)f->valueint) {
            reply_error(resp, HTTP_BAD_REQUEST,
                        "weight of \"%s\" must be a whole number and the version a "
                        "valid name",
                        f->string);
            return -1;
        }
        versions[*n] = f->string;
        weights[(*n)++] = f->valueint;
    }
    return 0;
}

/* "shadow": {"version": "3", "percent": 20}, or null / absent for none. The version must be
 * deployed (409). 0, or -1 after writing the error. */
static int manage_read_shadow(manage_ctx *s, const char *model, const cJSON *sh, char *version,
                              int *pct, http_response *resp)
{
    *pct = 0;
    if (sh == NULL || cJSON_IsNull(sh))
        return 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sh, "version");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(sh, "percent");
    if (!cJSON_IsObject(sh) || cJSON_GetArraySize(sh) != 2 || !cJSON_IsNumber(p) ||
        p->valuedouble != (double)p->valueint || p->valueint < 1 || p->valueint > 100 ||
        !cJSON_IsString(v) || !name_valid(v->valuestring)) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "shadow must be {\"version\": \"<deployed version>\", \"percent\": 1..100}");
        return -1;
    }
    if (deploy_state_of(s->deploy, model, v->valuestring) != DEPLOY_STATE_READY) {
        reply_error(resp, HTTP_CONFLICT, "shadow version %s of %s is not deployed", v->valuestring,
                    model);
        return -1;
    }
    snprintf(version, REG_NAME_MAX + 1, "%s", v->valuestring);
    *pct = p->valueint;
    return 0;
}

static void manage_traffic_put(manage_ctx *s, const char *model, const http_request *req,
                               http_response *resp)
{
    cJSON *body = body_parse(req, resp); /* writes the 400 when not an object */
    const cJSON *weights_obj = body, *guard_obj = NULL;
    const char *versions[API_MAX_SPLIT];
    int weights[API_MAX_SPLIT];
    size_t n = 0;
    deploy_guard guard, *g = NULL;
    if (body == NULL)
        goto done;
    if (cJSON_GetObjectItemCaseSensitive(body, "weights") != NULL) {
        for (const cJSON *f = body->child; f; f = f->next)
            if (strcmp(f->string, "weights") != 0 && strcmp(f->string, "guard") != 0 &&
                strcmp(f->string, "shadow") != 0) {
                reply_error(resp, HTTP_BAD_REQUEST, "unknown field \"%s\"", f->string);
                goto done;
            }
        weights_obj = cJSON_GetObjectItemCaseSensitive(body, "weights");
        guard_obj = cJSON_GetObjectItemCaseSensitive(body, "guard");
    }
    if (manage_read_weights(weights_obj, versions, weights, &n, resp) != 0)
        goto done;
    if (guard_obj != NULL && !cJSON_IsNull(guard_obj)) {
        char *text = cJSON_PrintUnformatted(guard_obj), err[256];
        int rc = text ? guard_parse(text, &guard, err, sizeof err) : -1;
        free(text);
        if (rc != 0) {
            reply_error(resp, HTTP_BAD_REQUEST, "%s", text ? err : "out of memory");
            goto done;
        }
        g = &guard;
    }
    char shadow_version[REG_NAME_MAX + 1];
    int shadow_pct = 0;
    if (manage_read_shadow(s, model, cJSON_GetObjectItemCaseSensitive(body, "shadow"),
                           shadow_version, &shadow_pct, resp) != 0)
        goto done;
    deploy_result r = deploy_traffic_set(s->deploy, model, versions, weights, n, g, "traffic");
    if (r.code == DEPLOY_OK) /* PUT replaces: no "shadow" ends the shadow */
        r = deploy_shadow_set(s->deploy, model, shadow_pct ? shadow_version : NULL, shadow_pct);
    if (r.code != DEPLOY_OK)
        reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
    else
        manage_traffic_reply(s, model, resp);
done:
    cJSON_Delete(body);
}

static void manage_promote(manage_ctx *s, const char *model, const http_request *req,
                           http_response *resp)
{
    cJSON *body = json_has_escaped_nul(req->body, req->body_len)
                      ? NULL
                      : cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "version");
    char version[REG_NAME_MAX + 1] = "";
    if (cJSON_IsString(v))
        snprintf(version, sizeof version, "%s", v->valuestring);
    else if (cJSON_IsNumber(v) && v->valuedouble == (double)v->valueint && v->valueint >= 0)
        snprintf(version, sizeof version, "%d", v->valueint);
    bool only_version = cJSON_IsObject(body) && body->child && !body->child->next;
    cJSON_Delete(body);
    if (!only_version || !name_valid(version)) {
        reply_error(resp, HTTP_BAD_REQUEST, "body must be {\"version\": \"<deployed version>\"}");
        return;
    }
    deploy_result r = deploy_promote(s->deploy, model, version);
    if (r.code != DEPLOY_OK)
        reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
    else
        manage_traffic_reply(s, model, resp);
}

static void manage_rollback(manage_ctx *s, const char *model, const http_request *req,
                            http_response *resp)
{
    cJSON *body = req->body_len ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
    bool empty = req->body_len == 0 || (cJSON_IsObject(body) && body->child == NULL);
    cJSON_Delete(body);
    if (!empty) {
        reply_error(resp, HTTP_BAD_REQUEST, "rollback takes no body (or {})");
        return;
    }
    deploy_result r = deploy_rollback(s->deploy, model);
    if (r.code != DEPLOY_OK)
        reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
    else
        manage_traffic_reply(s, model, resp);
}

bool manage_traffic_route(manage_ctx *s, const http_request *req, const char **seg, int n,
                          http_response *resp)
{
    /* seg: "deployments" <m> (traffic|promote|rollback) | "deployments" <m> <v> "stats" */
    if (!name_valid(seg[1]))
        return false;
    const char *model = seg[1];
    if (n == 4 && strcmp(seg[3], "limits") == 0 && name_valid(seg[2])) {
        manage_limits(s, req, model, seg[2], resp);
        return true;
    }
    if (n == 4 && strcmp(seg[3], "stats") == 0 && name_valid(seg[2])) {
        if (manage_is_method(req, "GET"))
            manage_stats_one(s, model, seg[2], resp);
        else
            reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs GET", req->path);
        return true;
    }
    if (n != 3)
        return false;
    const char *action = seg[2];
    if (strcmp(action, "traffic") == 0) {
        if (manage_is_method(req, "PUT"))
            manage_traffic_put(s, model, req, resp);
        else if (manage_is_method(req, "GET"))
            manage_traffic_reply(s, model, resp);
        else
            reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs PUT or GET", req->path);
    } else if (strcmp(action, "promote") == 0 || strcmp(action, "rollback") == 0) {
        if (!manage_is_method(req, "POST"))
            reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs POST", req->path);
        else if (action[0] == 'p')
            manage_promote(s, model, req, resp);
        else
            manage_rollback(s, model, req, resp);
    } else {
        return false;
    }
    return true;
}
