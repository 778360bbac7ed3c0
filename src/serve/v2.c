/* serve v2: the OIP v2 routes and the router the deployment manager adds infer routes with.
 * See serve.h. */
#include "serve.h"

#include <stdio.h>
#include <string.h>

#include "infer.h"
#include "jobs.h"
#include "oip.h"
#include "path.h"
#include "reply.h"
#include "triton_stats.h"

#define DATAPLANE_MAX_VERSIONS 256

/* Set by serve_register before the server starts; read-only afterwards. The infer routes'
 * cbdata is the deployment (or model), so they find the job queue here. */
static jobs *v2_jobs;

static void v2_version_infer(void *cbdata, const http_request *req, http_response *resp)
{
    /* CivetWeb keeps cbdata alive while this runs; the reference is for the drain count. */
    deployment *d = deploy_ref(cbdata);
    const deploy_target *t = deploy_target_of(d);
    if (t->draining != NULL && atomic_load(t->draining)) /* undeployed; route on its way out */
        reply_error(resp, HTTP_NOT_FOUND, "model %s version %s is not deployed", t->model_name,
                    t->version);
    else if (strcmp(req->path, deploy_infer_path(d)) != 0)
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
    else if (v2_jobs != NULL && jobs_requested(req))
        jobs_submit(v2_jobs, t->model_name, t->version, req, resp);
    else
        infer_oip(t, req, resp);
    deploy_release(d);
}

static void v2_model_infer(void *cbdata, const http_request *req, http_response *resp)
{
    if (strcmp(req->path, deploy_model_infer_path(cbdata)) == 0 && v2_jobs != NULL &&
        jobs_requested(req))
        jobs_submit(v2_jobs, deploy_model_name(cbdata), NULL, req, resp);
    else if (strcmp(req->path, deploy_model_infer_path(cbdata)) == 0)
        infer_oip_routed(cbdata, req, resp);
    else
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
}

static void v2_server_metadata(http_response *resp)
{
    buf_printf(resp->body,
               "{\"name\":\"dynserve\",\"version\":\"%s\","
               "\"extensions\":[\"binary_tensor_data\",\"model_repository\",\"canary\","
               "\"statistics\"]}",
               DYNSERVE_VERSION);
    resp->status = HTTP_OK;
}

static void v2_health(serve_ctx *s, const char *what, http_response *resp)
{
    if (strcmp(what, "live") == 0) {
        buf_append_str(resp->body, "{\"live\":true}");
        resp->status = HTTP_OK;
    } else if (strcmp(what, "ready") == 0) {
        bool ready = atomic_load(&s->ready);
        buf_printf(resp->body, "{\"ready\":%s}", ready ? "true" : "false");
        resp->status = ready ? HTTP_OK : HTTP_UNAVAILABLE;
    } else {
        reply_error(resp, HTTP_NOT_FOUND, "no route for /v2/health/%s", what);
    }
}

/* GET /v2/models/<m>[/versions/<v>][/ready] */
static void v2_model(serve_ctx *s, const char *model, const char *version, bool ready,
                     http_response *resp)
{
    static _Thread_local char versions[DATAPLANE_MAX_VERSIONS][REG_NAME_MAX + 1];
    deployment *newest = NULL;
    size_t n = deploy_versions(s->deploy, model, versions, DATAPLANE_MAX_VERSIONS, &newest);
    deployment *d = version ? deploy_acquire(s->deploy, model, version, NULL) : newest;
    if (d == NULL) {
        deploy_release(newest);
        if (version)
            reply_error(resp, HTTP_NOT_FOUND, "model %s version %s is not deployed", model,
                        version);
        else
            reply_error(resp, HTTP_NOT_FOUND, "model %s is not deployed", model);
        return;
    }
    if (ready) {
        buf_append_str(resp->body, "{\"name\":");
        buf_append_json_string(resp->body, model, strlen(model));
        buf_append_str(resp->body, ",\"ready\":true}");
    } else {
        const char *names[DATAPLANE_MAX_VERSIONS];
        for (size_t i = 0; i < n; i++)
            names[i] = versions[i];
        oip_encode_model_metadata(resp->body, model, names, n, deploy_target_of(d)->model,
                                  deploy_target_of(d)->backend);
    }
    resp->status = HTTP_OK;
    if (version != NULL)
        deploy_release(d); /* its own reference, even when it is `newest` too */
    deploy_release(newest);
}

static void v2_models_route(serve_ctx *s, const http_request *req, const char **seg, int n,
                            http_response *resp)
{
    /* seg: "v2" "models" m [ "versions" v ] [ "ready" | "infer" ] */
    const char *model = seg[2], *version = NULL;
    int rest = 3;
    if (n >= 5 && strcmp(seg[3], "versions") == 0) {
        version = seg[4];
        rest = 5;
    }
    const char *action = n > rest ? seg[rest] : NULL;
    if (n == rest + 1 && strcmp(action, "stats") == 0) {
        triton_stats_reply(s->deploy, req, model, version, resp);
        return;
    }
    if (n > rest + 1 || (action && strcmp(action, "ready") && strcmp(action, "infer")) ||
        (n == 4 && strcmp(seg[3], "versions") == 0)) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
        return;
    }
    if (action && strcmp(action, "infer") == 0) {
        /* Live infer routes have their own handlers; reaching here means nothing is deployed,
         * or not yet: until the restore at start is done, a client is told to retry rather
         * than that its model is gone. */
        if (strcmp(req->method, "POST") != 0) {
            reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs POST, not %s", req->path,
                        req->method);
        } else if (!atomic_load(&s->ready)) {
            reply_error(resp, HTTP_UNAVAILABLE,
                        "dynserve is restoring its deployments (not ready yet): retry");
            http_response_header(resp, "Retry-After", "1");
        } else if (version) {
            reply_error(resp, HTTP_NOT_FOUND, "model %s version %s is not deployed", model,
                        version);
        } else {
            reply_error(resp, HTTP_NOT_FOUND, "model %s is not deployed", model);
        }
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs GET, not %s", req->path, req->method);
        return;
    }
    v2_model(s, model, version, action != NULL, resp);
}

static void v2_prefix(void *cbdata, const http_request *req, http_response *resp)
{
    serve_ctx *s = cbdata;
    char buf[512];
    const char *seg[8];
    int n = path_segments(req->path, buf, sizeof buf, seg, 8);
    if (n == 3 && strcmp(seg[1], "models") == 0 && strcmp(seg[2], "stats") == 0) {
        triton_stats_reply(s->deploy, req, NULL, NULL, resp);
        return;
    }
    if (n >= 3 && strcmp(seg[1], "models") == 0) {
        v2_models_route(s, req, seg, n, resp);
        return;
    }
    if (n >= 3 && strcmp(seg[1], "jobs") == 0 && s->jobs != NULL) {
        jobs_route(s->jobs, req, seg, n, resp);
        return;
    }
    if (n >= 2 && strcmp(seg[1], "repository") == 0 && s->repository != NULL) {
        s->repository(s->repository_ctx, req, resp);
        return;
    }
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (n == 1 || (n == 3 && strcmp(seg[1], "health") == 0)) {
        if (!get)
            reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs GET, not %s", req->path,
                        req->method);
        else if (n == 1)
            v2_server_metadata(resp);
        else
            v2_health(s, seg[2], resp);
        return;
    }
    reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
}

/* ---- the router ------------------------------------------------------------------------------ */

static int v2_route_add(void *ctx, const char *path, deploy_route target)
{
    if (target.version != NULL)
        return http_route_add(ctx, path, v2_version_infer, target.version);
    return http_route_add(ctx, path, v2_model_infer, target.model);
}

static void v2_route_remove(void *ctx, const char *path)
{
    http_route_remove(ctx, path);
}

deploy_router serve_router(http_server *http)
{
    return (deploy_router){.ctx = http, .add = v2_route_add, .remove = v2_route_remove};
}

int serve_register(http_server *http, serve_ctx *ctx)
{
    v2_jobs = ctx->jobs;
    int rc = http_route_add(http, "/v2", v2_prefix, ctx);
    rc |= http_route_add(http, "/predict", predict_route, ctx);
    return rc;
}
