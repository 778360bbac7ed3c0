/* dataplane: OIP v2 routes. See dataplane.h. */
#include "dataplane.h"

#include <stdio.h>
#include <string.h>

#include "infer.h"
#include "oip.h"

#define DATAPLANE_MAX_VERSIONS 256

void dataplane_version_infer(void *cbdata, const http_request *req, http_response *resp)
{
    /* CivetWeb keeps cbdata alive while this runs; the reference is for the drain count. */
    deployment *d = deploy_ref(cbdata);
    if (strcmp(req->path, deploy_infer_path(d)) == 0)
        infer_oip(deploy_target_of(d), req, resp);
    else
        http_error(resp, 404, "no route for %s", req->path);
    deploy_release(d);
}

void dataplane_model_infer(void *cbdata, const http_request *req, http_response *resp)
{
    char path[2 * REG_NAME_MAX + 48];
    snprintf(path, sizeof path, "/v2/models/%s/infer", deploy_model_name(cbdata));
    if (strcmp(req->path, path) == 0)
        infer_oip_routed(cbdata, req, resp);
    else
        http_error(resp, 404, "no route for %s", req->path);
}

static void dataplane_server_metadata(http_response *resp)
{
    buf_printf(resp->body,
               "{\"name\":\"dynserve\",\"version\":\"%s\","
               "\"extensions\":[\"binary_tensor_data\",\"model_repository\",\"canary\","
               "\"statistics\"]}",
               DYNSERVE_VERSION);
    resp->status = 200;
}

static void dataplane_health(ds_server *s, const char *what, http_response *resp)
{
    if (strcmp(what, "live") == 0) {
        buf_append_str(resp->body, "{\"live\":true}");
        resp->status = 200;
    } else if (strcmp(what, "ready") == 0) {
        bool ready = atomic_load(&s->ready);
        buf_printf(resp->body, "{\"ready\":%s}", ready ? "true" : "false");
        resp->status = ready ? 200 : 503;
    } else {
        http_error(resp, 404, "no route for /v2/health/%s", what);
    }
}

/* GET /v2/models/<m>[/versions/<v>][/ready] */
static void dataplane_model(ds_server *s, const char *model, const char *version, bool ready,
                            http_response *resp)
{
    static _Thread_local char versions[DATAPLANE_MAX_VERSIONS][REG_NAME_MAX + 1];
    deployment *newest = NULL;
    size_t n = deploy_versions(s->deploy, model, versions, DATAPLANE_MAX_VERSIONS, &newest);
    deployment *d = version ? deploy_acquire(s->deploy, model, version, NULL) : newest;
    if (d == NULL) {
        deploy_release(newest);
        if (version)
            http_error(resp, 404, "model %s version %s is not deployed", model, version);
        else
            http_error(resp, 404, "model %s is not deployed", model);
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
        oip_encode_model_metadata(resp->body, model, names, n, deploy_target_of(d)->model);
    }
    resp->status = 200;
    if (version != NULL)
        deploy_release(d); /* its own reference, even when it is `newest` too */
    deploy_release(newest);
}

static void dataplane_models_route(ds_server *s, const http_request *req, const char **seg, int n,
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
    if (n > rest + 1 || (action && strcmp(action, "ready") && strcmp(action, "infer")) ||
        (n == 4 && strcmp(seg[3], "versions") == 0)) {
        http_error(resp, 404, "no route for %s", req->path);
        return;
    }
    if (action && strcmp(action, "infer") == 0) {
        /* Live infer routes have their own handlers; reaching here means nothing is deployed. */
        if (strcmp(req->method, "POST") != 0)
            http_error(resp, 405, "%s needs POST, not %s", req->path, req->method);
        else if (version)
            http_error(resp, 404, "model %s version %s is not deployed", model, version);
        else
            http_error(resp, 404, "model %s is not deployed", model);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        http_error(resp, 405, "%s needs GET, not %s", req->path, req->method);
        return;
    }
    dataplane_model(s, model, version, action != NULL, resp);
}

static void dataplane_v2(void *cbdata, const http_request *req, http_response *resp)
{
    ds_server *s = cbdata;
    char buf[512];
    const char *seg[8];
    int n = server_path_segments(req->path, buf, sizeof buf, seg, 8);
    if (n >= 3 && strcmp(seg[1], "models") == 0) {
        dataplane_models_route(s, req, seg, n, resp);
        return;
    }
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (n == 1 || (n == 3 && strcmp(seg[1], "health") == 0)) {
        if (!get)
            http_error(resp, 405, "%s needs GET, not %s", req->path, req->method);
        else if (n == 1)
            dataplane_server_metadata(resp);
        else
            dataplane_health(s, seg[2], resp);
        return;
    }
    http_error(resp, 404, "no route for %s", req->path);
}

int dataplane_register(ds_server *s)
{
    return http_route_add(s->http, "/v2", dataplane_v2, s);
}
