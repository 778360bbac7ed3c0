/*
 * serve: the data path — the Open Inference Protocol v2 routes (v2.c: server metadata and
 * health, model metadata and readiness, the per-version and per-model infer routes), one
 * inference (infer.c: decode -> check -> plugin execute -> check -> encode, with stats) and the
 * seed-style /predict translation onto it (predict.c).
 *
 * Metadata, readiness and /predict are prefix routes registered once at startup; the infer
 * routes are added and removed by the deployment manager through the router serve_router()
 * returns (the CivetWeb handler list holds only them: it is scanned on every request).
 *
 * Thread-safety: handlers run on many worker threads; they only read the context and take
 * counted deployment references.
 */
#ifndef DS_SERVE_H
#define DS_SERVE_H

#include <stdatomic.h>

#include "deploy.h"
#include "http.h"
#include "oip.h"

/* What the data-path handlers read. Owned by main; must outlive the HTTP server. */
typedef struct serve_ctx {
    deploy_manager *deploy;
    atomic_bool ready; /* deployments restored: /v2/health/ready answers 200 */
    /* /v2/repository/... (Triton's model repository extension) is a management operation that
     * manage/ implements; main hands it in here (NULL: 404). */
    http_handler_fn repository;
    void *repository_ctx;
    struct jobs *jobs; /* async inference (jobs.h); NULL: ?async=true is refused */
} serve_ctx;

/* The codec limits of every inference; once at startup, before any request (infer.c). */
void infer_set_limits(const oip_limits *limits);

/* The shadow-traffic queue the unversioned route copies requests to (shadow.h; NULL: none).
 * Once at startup, before any request (infer.c). */
struct shadow;
void infer_set_shadow(struct shadow *s);

/* Register the "/v2" and "/predict" prefix handlers. 0, or -1 when memory runs out. */
int serve_register(http_server *http, serve_ctx *ctx);

/* A router for the deployment manager (deploy_env.router) that adds its infer routes to `http`
 * with the data path's infer handlers. http must outlive the manager's use of the router. */
deploy_router serve_router(http_server *http);

#endif
