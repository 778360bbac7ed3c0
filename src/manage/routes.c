/*
 * manage routes: the one place the management API's routes are registered. The whole surface:
 *
 *   /v2/repository/index                 POST (Triton)                        repository.c
 *   /v2/repository/models/<m>/load|unload POST (Triton; reached through
 *                                        serve's /v2 prefix, see manage.h)    repository.c
 *
 *   /models                              GET list, POST register              models.c
 *   /models/stats                        GET                                  stats.c
 *   /models/<m>/versions/<v>             PUT upload, DELETE                   models.c
 *   /deployments                         GET list (+ traffic splits)          deployments.c
 *   /deployments/deploy | undeploy       POST                                 deployments.c
 *   /deployments/events                  GET ?model=&limit=                   deployments.c
 *   /deployments/<m>/traffic             PUT, GET                             traffic.c
 *   /deployments/<m>/promote | rollback  POST                                 traffic.c
 *   /deployments/<m>/<v>/stats           GET (with histogram)                 stats.c
 *   /metrics                             GET (Prometheus)                     metrics.c
 *   /openapi.json, /docs                 GET (inside the catch-all)           openapi.c
 *   /tokens                              GET list, POST create                tokens.c
 *   /tokens/<name|id>                    DELETE revoke                        tokens.c
 *   /auth/whoami                         GET                                  tokens.c
 *   /                                    the dashboard's static files         http/http.c
 *
 * The data plane (/v2/..., /predict) is src/serve/'s (serve_register). Who may call each route
 * is declared in src/auth/auth_policy.c and enforced before any handler here runs.
 */
#include "manage_internal.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "path.h"

static void manage_static(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    /* Exact paths inside the catch-all rather than routes of their own: CivetWeb scans its
     * handler list on every request, so it stays short. */
    if (strcmp(req->path, "/openapi.json") == 0)
        manage_openapi(s, req, resp);
    else if (strcmp(req->path, "/docs") == 0 || strcmp(req->path, "/docs/") == 0)
        manage_docs(s, req, resp);
    else
        http_serve_static(s->http, req, resp);
}

/* Only PUT /models/<m>/versions/<v> with a plugin (application/octet-stream) or a model
 * archive (application/x-tar) is an upload and gets --max-upload-bytes; every other request on
 * /models keeps --max-body-bytes. */
static bool manage_is_upload(const char *method, const char *path, const char *content_type)
{
    if (strcmp(method, "PUT") != 0 || content_type == NULL)
        return false;
    size_t n = strcspn(content_type, "; ");
    bool binary = (n == 24 && strncasecmp(content_type, "application/octet-stream", n) == 0) ||
                  (n == 17 && strncasecmp(content_type, "application/x-tar", n) == 0);
    char buf[512];
    const char *seg[6];
    return binary && path_segments(path, buf, sizeof buf, seg, 6) == 4 &&
           strcmp(seg[0], "models") == 0 && strcmp(seg[2], "versions") == 0;
}

int manage_register_routes(manage_ctx *s)
{
    int rc = http_route_add_upload(s->http, "/models", manage_models, s, manage_is_upload,
                                   (size_t)s->cfg->max_upload_bytes);
    rc |= http_route_add(s->http, "/deployments", manage_deployments, s);
    rc |= http_route_add(s->http, "/metrics", manage_metrics, s);
    rc |= http_route_add(s->http, "/tokens", manage_tokens, s);
    rc |= http_route_add(s->http, "/auth", manage_auth, s);
    rc |= http_route_add(s->http, "/", manage_static, s);
    return rc;
}
