/*
 * manage: the management REST API — one file per resource (models.c: /models; deployments.c:
 * /deployments deploy/undeploy/list/events; traffic.c: /deployments/<m>/traffic|promote|rollback;
 * stats.c: /models/stats and /deployments/<m>/<v>/stats; metrics.c: /metrics) and the
 * dashboard's static files, registered in one place (routes.c) as a few prefix routes.
 *
 * Handlers run on many worker threads; all shared state they touch (registry, deployment
 * manager) documents its own locking. Errors are answered through http/reply.h.
 */
#ifndef DS_MANAGE_H
#define DS_MANAGE_H

#include "auth.h"
#include "config.h"
#include "deploy.h"
#include "dynserve/plugin.h"
#include "http.h"
#include "plugin_file.h"
#include "registry.h"

/* What the management handlers use. Owned by main; set before the routes are registered and
 * unchanged while the HTTP server runs. */
typedef struct manage_ctx {
    const ds_config *cfg; /* data_dir, upload and body limits */
    registry *reg;
    deploy_manager *deploy;
    http_server *http;
    const ds_host_api *host;        /* for probing uploaded plugins (plugin/host.h) */
    const plugin_dirs *plugin_dirs; /* where register-by-path may read (plugin/plugin_file.h) */
    auth *auth;                     /* tokens (reloaded after /tokens changes) and whoami */
    const char *replica_id;         /* this replica's id in the registry (cluster/cluster.h) */
    /* More /metrics families from modules manage may not see (main wires serve's async jobs);
     * NULL: none. Called on the request's thread, so it must be thread-safe. */
    void (*metrics_more)(void *ud, ds_buf *out);
    void *metrics_more_ud;
} manage_ctx;

/* Triton's model repository extension, POST /v2/repository/index and
 * /v2/repository/models/<m>/load|unload (repository.c). The /v2 prefix is serve/'s, which calls
 * this through serve_ctx.repository (main wires it); cbdata is the manage_ctx. */
void manage_repository(void *cbdata, const http_request *req, http_response *resp);

/* Register /models, /deployments, /metrics, /tokens, /auth and the "/" catch-all (static files).
 * 0 or -1. */
int manage_register_routes(manage_ctx *s);

/* Register the model directory `dir` (config.json naming a backend, plus the model files) as
 * (name, version): copied into the artifact store, probed with its backend, recorded. Uses cfg,
 * reg and host of `s` only, so main may call it before the routes exist. Returns 201, or 400
 * (bad directory, config or backend name), 409 (already registered), 422 (the backend refused
 * the files) or 500 with the reason in err. */
int manage_register_model_dir(manage_ctx *s, const char *name, const char *version, const char *dir,
                              char *err, size_t errlen);

#endif
