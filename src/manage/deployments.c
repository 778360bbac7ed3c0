/*
 * manage deployments: the /deployments resource — list (GET, with the traffic splits), deploy
 * and undeploy (POST /deployments/deploy|undeploy), the event log (GET /deployments/events
 * ?model=&limit=), the replicas sharing the registry (GET /deployments/replicas), and the dispatch
 * of /deployments/<m>/... to traffic.c.
 */
#include "manage_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "log.h"
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
    cJSON *opts = d->options ? cJSON_Parse(d->options) : NULL;
    cJSON_AddItemToObject(o, "options", opts ? opts : cJSON_CreateObject());
    return o;
}

/* Process RSS bytes, or null when /proc could not say. */
static void manage_add_bytes(cJSON *o, const char *key, int64_t bytes)
{
    if (bytes >= 0)
        cJSON_AddNumberToObject(o, key, (double)bytes);
    else
        cJSON_AddNullToObject(o, key);
}

/* to - from (may be negative: the allocator gave pages back), or null when either is unknown. */
static void manage_add_delta(cJSON *o, const char *key, int64_t from, int64_t to)
{
    if (from >= 0 && to >= 0)
        cJSON_AddNumberToObject(o, key, (double)(to - from));
    else
        cJSON_AddNullToObject(o, key);
}

/* "load": what loading the deployment cost (deploy.h deploy_load_figures). */
static void manage_load_json(cJSON *o, const deploy_load_figures *l)
{
    cJSON *j = cJSON_AddObjectToObject(o, "load");
    cJSON_AddNumberToObject(j, "load_ms", (double)l->load_ns / 1e6);
    uint64_t ready = atomic_load(&l->ready_ns);
    if (ready > 0)
        cJSON_AddNumberToObject(j, "ready_ms", (double)ready / 1e6);
    else
        cJSON_AddNullToObject(j, "ready_ms"); /* restored at startup */
    manage_add_bytes(j, "rss_before_bytes", l->rss_before);
    int64_t after = atomic_load(&l->rss_after);
    manage_add_bytes(j, "rss_after_bytes", after);
    manage_add_delta(j, "rss_delta_bytes", l->rss_before, after);
}

static void manage_unload_json(cJSON *o, const deploy_unload_figures *f)
{
    cJSON *j = cJSON_AddObjectToObject(o, "unload");
    cJSON_AddNumberToObject(j, "drain_ms", (double)f->drain_ns / 1e6);
    cJSON_AddNumberToObject(j, "unload_ms", (double)f->unload_ns / 1e6);
    manage_add_bytes(j, "rss_before_bytes", f->rss_before);
    manage_add_bytes(j, "rss_after_bytes", f->rss_after);
    manage_add_delta(j, "rss_freed_bytes", f->rss_after, f->rss_before);
}

/* An in-process deployment's share of the server's memory (deploy_mem; what its load took is
 * "load".rss_delta_bytes): measured, not accounted, and never given back before the server
 * ends (only an isolated worker's is). */
static void manage_memory_json(cJSON *o, const deploy_runtime *rt)
{
    cJSON *m = cJSON_AddObjectToObject(o, "memory");
    double per_call = rt->mem_sampled ? (double)rt->mem_call_growth / (double)rt->mem_sampled : 0.0;
    double estimate = per_call > 0 ? per_call * (double)rt->mem_calls : 0.0;
    cJSON_AddNumberToObject(m, "sampled_calls", (double)rt->mem_sampled);
    cJSON_AddNumberToObject(m, "growth_per_call_bytes", (double)(int64_t)per_call);
    cJSON_AddNumberToObject(m, "estimated_growth_bytes", (double)(int64_t)estimate);
}

void manage_worker_json(cJSON *o, const deploy_runtime *rt)
{
    cJSON_AddStringToObject(o, "isolation", rt->isolated ? "process" : "inproc");
    cJSON_AddNumberToObject(o, "timeouts", (double)rt->timeouts);
    cJSON_AddNumberToObject(o, "rejected", (double)rt->rejected);
    cJSON_AddNumberToObject(o, "max_in_flight", (double)rt->max_in_flight);
    manage_load_json(o, &rt->load);
    if (!rt->isolated) {
        manage_memory_json(o, rt);
        return;
    }
    cJSON *w = cJSON_AddObjectToObject(o, "worker");
    cJSON_AddNumberToObject(w, "pid", rt->worker_pid);
    cJSON_AddNumberToObject(w, "rss_bytes", (double)rt->worker_rss_bytes);
    cJSON_AddNumberToObject(w, "restarts", rt->worker_restarts);
    cJSON_AddNumberToObject(w, "crashes", rt->worker_crashes);
    cJSON_AddStringToObject(w, "state", rt->worker_state ? rt->worker_state : "stopped");
}

/* What the live deployment adds to its registry row: effective isolation, a status of
 * "degraded" or "failed" (with the reason) when it is not healthy, and its worker process. */
static void manage_deployment_runtime(manage_ctx *s, cJSON *o, const char *model,
                                      const char *version)
{
    deploy_runtime rt;
    if (!deploy_runtime_get(s->deploy, model, version, &rt))
        return;
    if (strcmp(rt.status, "active") != 0) {
        cJSON_ReplaceItemInObject(o, "status", cJSON_CreateString(rt.status));
        cJSON_DeleteItemFromObject(o, "reason");
        cJSON_AddStringToObject(o, "reason", rt.reason);
    }
    manage_worker_json(o, &rt);
}

/* ---- /deployments ------------------------------------------------------------------------- */

/* The body of deploy and undeploy: {"model_name","version","endpoint_name"}, each optional here.
 * Pointers are into `names` (NULL when absent). false after writing a 400. */
typedef struct deploy_names {
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1], endpoint[REG_NAME_MAX + 1];
    const char *m, *v, *e;
} deploy_names;

/* opts non-NULL (deploy): the body may also carry the deployment options (deploy_options.h). */
static bool manage_deploy_body(const http_request *req, http_response *resp, deploy_names *n,
                               ds_deploy_options *opts)
{
    const char *fields[40] = {"model_name", "version", "endpoint_name"};
    for (size_t i = 0, k = 3; opts != NULL && k + 1 < 40 && deploy_options_name(i); i++)
        fields[k++] = deploy_options_name(i);
    cJSON *body = body_object(req, resp, fields);
    if (body == NULL)
        return false;
    char err[256];
    if (opts != NULL && deploy_options_parse(body, opts, err, sizeof err) != 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "%s", err);
        cJSON_Delete(body);
        return false;
    }
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
    ds_deploy_options opts;
    if (!manage_deploy_body(req, resp, &n, &opts))
        return;
    const char *m = n.m, *v = n.v, *e = n.e;
    if (!m || !v) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"model_name\" and \"version\" are required");
        return;
    }
    reg_deployment row = {0};
    deploy_result r = deploy_start(s->deploy, m, v, e, &opts, &row);
    if (r.code != DEPLOY_OK) {
        reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
        return;
    }
    cJSON *o = manage_deployment_json(&row);
    manage_deployment_runtime(s, o, row.model_name, row.version);
    reply_json(resp, HTTP_CREATED, o);
    reg_deployment_free(&row);
}

static void manage_undeploy(manage_ctx *s, const http_request *req, http_response *resp)
{
    deploy_names n;
    if (!manage_deploy_body(req, resp, &n, NULL))
        return;
    const char *m = n.m, *v = n.v, *e = n.e;
    if (!((m && v && !e) || (!m && !v && e))) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "give {\"model_name\", \"version\"} or {\"endpoint_name\"}");
        return;
    }
    char drain[16];
    int drain_ms = -1; /* the server's --drain-timeout-ms */
    if (path_query_value(req->query, "drain_timeout_ms", drain, sizeof drain)) {
        char *end;
        long ms = strtol(drain, &end, 10);
        if (end == drain || *end != '\0' || ms < 0 || ms > 3600000) {
            reply_error(resp, HTTP_BAD_REQUEST,
                        "drain_timeout_ms must be a whole number from 0 to 3600000");
            return;
        }
        drain_ms = (int)ms;
    }
    deploy_result r = deploy_stop(s->deploy, m, v, e, drain_ms);
    if (r.code != DEPLOY_OK && r.code != DEPLOY_DRAINING) {
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
    bool draining = r.code == DEPLOY_DRAINING;
    cJSON_AddStringToObject(o, "status", draining ? "draining" : "undeployed");
    if (draining)
        cJSON_AddStringToObject(o, "reason", r.message);
    deploy_unload_figures f;
    if (!draining && m != NULL && deploy_last_unload(s->deploy, m, v, &f))
        manage_unload_json(o, &f);
    reply_json(resp, reply_status_of_deploy(r.code), o);
}

typedef struct deployments_acc {
    manage_ctx *s;
    cJSON *list;
} deployments_acc;

static int manage_collect_deployment(void *ud, const reg_deployment *d)
{
    deployments_acc *acc = ud;
    /* Only the row here: this runs under the registry's lock, and the live state (below, in
     * manage_deployments_list) takes the deploy manager's locks, which are taken before the
     * registry's on deploy. */
    cJSON_AddItemToArray(acc->list, manage_deployment_json(d));
    return 0;
}

/* Undeployed, but a call still runs (the undeploy answered 202). */
static void manage_collect_draining(void *ud, const char *model, const char *version,
                                    const char *endpoint_name)
{
    deployments_acc *acc = ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "version", version);
    if (endpoint_name[0])
        cJSON_AddStringToObject(o, "endpoint_name", endpoint_name);
    else
        cJSON_AddNullToObject(o, "endpoint_name");
    cJSON_AddStringToObject(o, "status", "draining");
    cJSON_AddItemToArray(acc->list, o);
}

/* ---- which replicas serve what (scale-out) ------------------------------------------------ */

typedef struct serving_walk {
    cJSON *item; /* cursor into the deployments array, ordered by id like the serving rows */
    const char *self;
} serving_walk;

static cJSON *manage_replicas_of(cJSON *o)
{
    cJSON *r = cJSON_GetObjectItem(o, "replicas");
    return r ? r : cJSON_AddArrayToObject(o, "replicas");
}

static int manage_collect_serving(void *ud, int64_t deployment_id, const char *replica_id)
{
    serving_walk *w = ud;
    while (w->item != NULL &&
           (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(w->item, "id")) < deployment_id)
        w->item = w->item->next;
    cJSON *id = w->item ? cJSON_GetObjectItem(w->item, "id") : NULL;
    if (id != NULL && (int64_t)cJSON_GetNumberValue(id) == deployment_id &&
        (w->self == NULL || strcmp(replica_id, w->self) != 0)) /* self: from memory, below */
        cJSON_AddItemToArray(manage_replicas_of(w->item), cJSON_CreateString(replica_id));
    return 0;
}

/* "replicas": the ids of the live replicas serving each registry row — this one from its own
 * tables (so it shows the moment the deploy returns), the others as they last reported. */
static void manage_add_replicas(manage_ctx *s, cJSON *list)
{
    cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        if (cJSON_GetObjectItem(o, "id") == NULL)
            continue; /* draining: no registry row */
        cJSON *reps = manage_replicas_of(o);
        const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(o, "model_name"));
        const char *version = cJSON_GetStringValue(cJSON_GetObjectItem(o, "version"));
        deployment *d = s->replica_id && model && version
                            ? deploy_acquire(s->deploy, model, version, NULL)
                            : NULL;
        if (d != NULL && (double)deploy_target_of(d)->deployment_id ==
                             cJSON_GetNumberValue(cJSON_GetObjectItem(o, "id")))
            cJSON_AddItemToArray(reps, cJSON_CreateString(s->replica_id));
        deploy_release(d);
    }
    serving_walk w = {.item = list->child, .self = s->replica_id};
    char err[256];
    if (registry_replica_serving_list(s->reg, REG_REPLICA_LIVE_MS, manage_collect_serving, &w, err,
                                      sizeof err) != REG_OK)
        log_warn("GET /deployments: reading which replicas serve what: %s", err);
}

static int manage_collect_replica(void *ud, const reg_replica *rep)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", rep->id);
    cJSON_AddStringToObject(o, "address", rep->address);
    cJSON_AddStringToObject(o, "version", rep->version);
    cJSON_AddStringToObject(o, "started_at", rep->started_at);
    cJSON_AddNumberToObject(o, "last_seen_ms_ago", (double)rep->age_ms);
    cJSON_AddBoolToObject(o, "live", rep->age_ms <= REG_REPLICA_LIVE_MS);
    cJSON_AddItemToArray(ud, o);
    return 0;
}

/* GET /deployments/replicas: every replica in the registry, live or not (yet) aged out. */
static void manage_replicas_list(manage_ctx *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "self", s->replica_id ? s->replica_id : "");
    cJSON *list = cJSON_AddArrayToObject(root, "replicas");
    char err[256];
    if (registry_replica_list(s->reg, -1, manage_collect_replica, list, err, sizeof err) !=
        REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    reply_json(resp, HTTP_OK, root);
}

static void manage_deployments_list(manage_ctx *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    deployments_acc acc = {.s = s, .list = cJSON_AddArrayToObject(root, "deployments")};
    char err[256];
    if (registry_deployment_list(s->reg, manage_collect_deployment, &acc, err, sizeof err) !=
        REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    cJSON *o;
    cJSON_ArrayForEach(o, acc.list)
    {
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(o, "status"));
        const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(o, "model_name"));
        const char *version = cJSON_GetStringValue(cJSON_GetObjectItem(o, "version"));
        if (status && model && version && strcmp(status, "active") == 0)
            manage_deployment_runtime(s, o, model, version);
    }
    manage_add_replicas(s, acc.list);
    deploy_foreach_draining(s->deploy, manage_collect_draining, &acc);
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
    if (e->version[0]) /* an event about the whole model (traffic, rollback) has no version */
        cJSON_AddStringToObject(o, "version", e->version);
    else
        cJSON_AddNullToObject(o, "version");
    cJSON *detail = e->detail && e->detail[0] ? cJSON_Parse(e->detail) : NULL;
    cJSON_AddItemToObject(o, "detail", detail ? detail : cJSON_CreateObject());
    /* who did it (null: the server itself, e.g. a restore or the canary guard) and from where */
    if (e->actor)
        cJSON_AddStringToObject(o, "actor", e->actor);
    else
        cJSON_AddNullToObject(o, "actor");
    if (e->client_addr)
        cJSON_AddStringToObject(o, "client_addr", e->client_addr);
    else
        cJSON_AddNullToObject(o, "client_addr");
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
    } else if (n == 2 && strcmp(what, "replicas") == 0) {
        if (reply_method_is(req, "GET"))
            manage_replicas_list(s, resp);
        else
            reply_bad_method(req, resp, "GET");
    } else if (n >= 3 && manage_traffic_route(s, req, seg, n, resp)) {
        /* traffic, promote, rollback, per-deployment stats */
    } else {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
    }
}
