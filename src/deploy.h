/*
 * deploy: the deployment manager. It owns every live deployment and its lifecycle:
 *
 *   deploy:   load plugin + create instance -> registry row (one transaction) -> add to the
 *             model's version table -> add the CivetWeb route(s)
 *   undeploy: take out of the version table, split and endpoint map -> remove route(s) (CivetWeb
 *             waits for in-flight calls) -> wait until no request holds a reference (drain) ->
 *             destroy instance -> dlclose -> registry row ended
 *
 * and the per-model state requests are routed by: deployed versions, the canary traffic split
 * and its guard, the seed-style endpoint names.
 *
 * Concurrency:
 *   - deploy/undeploy/traffic changes of one model are serialized by that model's lifecycle
 *     mutex, which may be held for a dlopen; different models proceed in parallel.
 *   - requests never take a lifecycle mutex. They find a deployment under a read lock held for a
 *     few hundred nanoseconds (the model's rwlock, or the manager's index rwlock for endpoint
 *     names) and take a counted reference; writers hold those locks only to swap table entries,
 *     never across a dlopen, dlclose or registry write.
 *   - a reference keeps the deployment (plugin, instance, stats) alive until deploy_release.
 *   - model entries, once created, live until deploy_manager_free, so pointers to them are stable.
 */
#ifndef DS_DEPLOY_H
#define DS_DEPLOY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dynserve/plugin.h"
#include "http.h"
#include "registry.h"
#include "stats.h"

typedef struct deploy_manager deploy_manager;
typedef struct deployment deployment;     /* one live (model, version) */
typedef struct deploy_model deploy_model; /* one model name and its live versions */

/* What a request needs from a deployment. Valid while the caller holds a reference. */
typedef struct deploy_target {
    const char *model_name;
    const char *version;
    const char *endpoint_name; /* "" when none */
    const ds_plugin_api *api;
    const ds_model_desc *model;
    void *instance;
    pthread_mutex_t *exec_lock; /* non-NULL when the plugin is not thread-safe */
    ds_stats *stats;
    int64_t deployment_id;
} deploy_target;

typedef struct deploy_env {
    registry *reg;
    http_server *http;
    const ds_host_api *host;
    char data_dir[4096];
    /* Route handlers the manager registers: cbdata is the deployment (versioned infer route)
     * or the deploy_model (unversioned infer route). */
    http_handler_fn version_infer_handler;
    http_handler_fn model_infer_handler;
} deploy_env;

/* Result of a management operation: an HTTP status and, on failure, why. */
typedef struct deploy_result {
    int status;
    char message[512];
} deploy_result;

/* *out owned by the caller; release with deploy_manager_free. 0 or -1 (out of memory). */
int deploy_manager_new(const deploy_env *env, deploy_manager **out);
/* Unload everything (instances destroyed, dlclose) without touching the registry: deployments
 * stay active there and come back on the next start. Lifetime stats are flushed first.
 * While the HTTP server runs, routes are removed and requests drained first. After http_stop,
 * call deploy_manager_http_stopped() before this, so no stopped server is touched. No
 * management call may run concurrently. */
void deploy_manager_free(deploy_manager *m);
/* The HTTP server given in deploy_env has been stopped and freed (its routes went with it). */
void deploy_manager_http_stopped(deploy_manager *m);

/* Bring back every deployment the registry says is active; a version that cannot load is marked
 * failed with the reason. Returns how many came back. */
int deploy_restore(deploy_manager *m);

/* Deploy a registered version. 201 on success (*out filled when non-NULL), else 400/404/409/500
 * with a message. */
deploy_result deploy_start(deploy_manager *m, const char *model, const char *version,
                           const char *endpoint_name, reg_deployment *out);
/* Undeploy by (model, version) or, when model is NULL, by endpoint name. 200 on success, after the
 * routes are gone and every in-flight request finished; 404 when not deployed. */
deploy_result deploy_stop(deploy_manager *m, const char *model, const char *version,
                          const char *endpoint_name);

/* ---- request path: references -------------------------------------------------------- */

/* A deployment of (model, version); version NULL picks by the model's traffic split (sticky when
 * routing_key is non-NULL), or the newest deployed version without a split. NULL when none. */
deployment *deploy_acquire(deploy_manager *m, const char *model, const char *version,
                           const char *routing_key);
/* The same for a model handle (the unversioned route's cbdata). */
deployment *deploy_acquire_from_model(deploy_model *dm, const char *routing_key);
/* By seed-style endpoint name. */
deployment *deploy_acquire_endpoint(deploy_manager *m, const char *endpoint_name);
/* A reference for a deployment the caller knows is alive (e.g. the versioned route's cbdata,
 * which CivetWeb keeps alive during the handler call). */
deployment *deploy_ref(deployment *d);
void deploy_release(deployment *d);
const deploy_target *deploy_target_of(const deployment *d);
/* The path of the versioned infer route, e.g. "/v2/models/m/versions/1/infer". */
const char *deploy_infer_path(const deployment *d);
/* The model's name (for the unversioned route handler). */
const char *deploy_model_name(const deploy_model *dm);

/* ---- views ------------------------------------------------------------------------------ */

/* Deployed versions of `model`, newest first, copied into versions[] (each REG_NAME_MAX+1
 * bytes). Returns how many (0 when none), at most max. Also *desc_out: a deployment of the newest
 * version, referenced (caller releases) when non-NULL and count > 0. */
size_t deploy_versions(deploy_manager *m, const char *model, char (*versions)[REG_NAME_MAX + 1],
                       size_t max, deployment **newest);

/* Call fn for every live deployment (holding a reference during the call), grouped by model. */
typedef void (*deploy_visit_fn)(void *ud, const deploy_target *t, int traffic_weight);
void deploy_foreach(deploy_manager *m, deploy_visit_fn fn, void *ud);

/* Save every live deployment's lifetime stats to the registry (periodic flush and shutdown). */
void deploy_flush_stats(deploy_manager *m);

#endif
