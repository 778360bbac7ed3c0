/*
 * manage deployments: the /deployments resource — list (GET, with the traffic splits), deploy
 * and undeploy (POST /deployments/deploy|undeploy), the event log (GET /deployments/events
 * ?model=&limit=), and the dispatch of /deployments/<m>/... to traffic.c.
 */
#include "manage_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "names.h"
#include "path.h"
#include "reply.h"

/* ---- JSON ------------------------------------------------------------------------------------ */

cJSON *manage_deployment_json(const reg_deployment *d)
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

/* ---- /deployments ------------------------------------------------------------------------- */

/* The body of deploy and undeploy: {"model_name","version","endpoint_name"}, each optional here.
 * Pointers are into `names` (NULL when absent). false after writing a 400. */
typedef struct deploy_names {
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1], endpoint[REG_NAME_MAX + 1];
    const char *m, *v, *e;
} deploy_names;

static bool manage_deploy_body(const http_request *req, http_response *resp, deploy_names *n)
{
    static const char *const fields[] = {"model_name", "version", "endpoint_name", NULL};
    cJSON *body = body_object(req, resp, fields);
    if (body == NULL)
        return false;
    bool bad = false;
    n->m = body_name_field(body, "model_name", n->model, sizeof n->model, &bad, resp);
    n->v = bad ? NULL : body_name_field(body, "version", n->version, sizeof n->version, &bad, resp);
    n->e =
        bad ? NULL
            : body_name_field(body, "endpoint_name", n->endpoint, sizeof n->endpoint, &bad, resp);
    cJSON_Delete(body);
    return !bad;
}

static void manage_deploy(manage_ctx *s, const http_request *req, http_response *resp)
{
    deploy_names n;
    if (!manage_deploy_body(req, resp, &n))
        return;
    const char *m = n.m, *v = n.v, *e = n.e;
    if (!m || !v) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"model_name\" and \"version\" are required");
        return;
    }
    reg_deployment row = {0};
    deploy_result r = deploy_start(s->deploy, m, v, e, &row);
    if (r.code != DEPLOY_OK) {
        reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
        return;
    }
    reply_json(resp, HTTP_CREATED, manage_deployment_json(&row));
    reg_deployment_free(&row);
}

static void manage_undeploy(manage_ctx *s, const http_request *req, http_response *resp)
{
    deploy_names n;
    if (!manage_deploy_body(req, resp, &n))
        return;
    const char *m = n.m, *v = n.v, *e = n.e;
    if (!((m && v && !e) || (!m && !v && e))) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "give {\"model_name\", \"version\"} or {\"endpoint_name\"}");
        return;
    }
    deploy_result r = deploy_stop(s->deploy, m, v, e);
    if (r.code != DEPLOY_OK) {
        reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
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
    reply_json(resp, HTTP_OK, o);
}

static int manage_collect_deployment(void *ud, const reg_deployment *d)
{
    cJSON_AddItemToArray(ud, manage_deployment_json(d));
    return 0;
}

static void manage_deployments_list(manage_ctx *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "deployments");
    char err[256];
    if (registry_deployment_list(s->reg, manage_collect_deployment, list, err, sizeof err) !=
        REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    ds_buf splits = DS_BUF_INIT;
    deploy_traffic_describe(s->deploy, &splits);
    cJSON *traffic = cJSON_ParseWithLength(splits.data ? splits.data : "[]", splits.len);
    buf_free(&splits);
    cJSON_AddItemToObject(root, "traffic", traffic ? traffic : cJSON_CreateArray());
    reply_json(resp, HTTP_OK, root);
}

static int manage_collect_event(void *ud, const reg_event *e)
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

static void manage_events(manage_ctx *s, const http_request *req, http_response *resp)
{
    char model[REG_NAME_MAX + 1] = "", limit_text[16] = "";
    int limit = 100;
    if (path_query_value(req->query, "limit", limit_text, sizeof limit_text))
        limit = atoi(limit_text);
    bool by_model = path_query_value(req->query, "model", model, sizeof model);
    if (limit < 1 || limit > 10000 || (by_model && !name_valid(model))) {
        reply_error(resp, HTTP_BAD_REQUEST, "limit must be 1..10000 and model a valid name");
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "events");
    char err[256];
    if (registry_event_list(s->reg, by_model ? model : NULL, limit, manage_collect_event, list, err,
                            sizeof err) != REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    reply_json(resp, HTTP_OK, root);
}

void manage_deployments(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    char buf[512];
    const char *seg[6];
    int n = path_segments(req->path, buf, sizeof buf, seg, 6);
    const char *what = n >= 2 ? seg[1] : "";
    if (n == 1) {
        if (reply_method_is(req, "GET"))
            manage_deployments_list(s, resp);
        else
            reply_bad_method(req, resp, "GET");
    } else if (n == 2 && (strcmp(what, "deploy") == 0 || strcmp(what, "undeploy") == 0)) {
        if (!reply_method_is(req, "POST"))
            reply_bad_method(req, resp, "POST");
        else if (what[0] == 'd')
            manage_deploy(s, req, resp);
        else
            manage_undeploy(s, req, resp);
    } else if (n == 2 && strcmp(what, "events") == 0) {
        if (reply_method_is(req, "GET"))
            manage_events(s, req, resp);
        else
            reply_bad_method(req, resp, "GET");
    } else if (n >= 3 && manage_traffic_route(s, req, seg, n, resp)) {
        /* traffic, promote, rollback, per-deployment stats */
    } else {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
    }
}
