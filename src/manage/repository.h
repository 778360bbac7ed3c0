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
#ifndef DS_REPOSITORY_H
#define DS_REPOSITORY_H

#include "server.h"

/* Route /v2/repository/... (seg[0] == "v2", seg[1] == "repository", n segments). */
void repository_route(ds_server *s, const http_request *req, const char **seg, int n,
                      http_response *resp);

#endif
