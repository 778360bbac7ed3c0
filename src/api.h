/*
 * api: the management REST API (models, deployments, events, canary traffic, stats, metrics,
 * seed-style /predict) and the dashboard's static files, as a few prefix routes registered at
 * startup. Handlers run on many worker threads; all shared state they touch (registry,
 * deployment manager) documents its own locking.
 */
#ifndef DS_API_H
#define DS_API_H

#include "server.h"

/* Register /models, /deployments, /predict, /metrics and the "/" catch-all. 0 or -1. */
int api_register_routes(ds_server *s);

/* Once a second from the main thread: canary guards. */
void api_tick(ds_server *s);

/* Reply with a cJSON value (struct cJSON *; deleted here); 500 when it cannot be printed. */
struct cJSON;
void api_reply(http_response *resp, int status, struct cJSON *body);

/* Implemented in api_stats.c / canary.c; used by api.c's routers. */
void api_stats_all(ds_server *s, http_response *resp);
void api_stats_one(ds_server *s, const char *model, const char *version, http_response *resp);
void api_metrics(void *cbdata, const http_request *req, http_response *resp);
/* /deployments/<m>/traffic|promote|rollback and /deployments/<m>/<v>/stats; false when the path
 * is none of them. */
bool api_canary_route(ds_server *s, const http_request *req, const char **seg, int n,
                      http_response *resp);

#endif
