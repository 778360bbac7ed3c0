/*
 * manage_internal: what the files of src/manage/ share — the resource handlers routes.c
 * registers and dispatches to, and the JSON forms of registry rows. Private to src/manage/.
 */
#ifndef DS_MANAGE_INTERNAL_H
#define DS_MANAGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "manage.h"
#include "ratelimit.h"

struct cJSON;

/* ---- prefix routes (cbdata: the manage_ctx) ------------------------------------------------ */

void manage_models(void *cbdata, const http_request *req, http_response *resp); /* models.c */
void manage_deployments(void *cbdata, const http_request *req,
                        http_response *resp);                                    /* deployments.c */
void manage_metrics(void *cbdata, const http_request *req, http_response *resp); /* metrics.c */
/* openapi.c: GET /openapi.json (the live document) and GET /docs (its rendered page). */
void manage_openapi(manage_ctx *s, const http_request *req, http_response *resp);
void manage_docs(manage_ctx *s, const http_request *req, http_response *resp);
void manage_tokens(void *cbdata, const http_request *req, http_response *resp); /* tokens.c */
void manage_auth(void *cbdata, const http_request *req, http_response *resp);   /* tokens.c */

/* ---- sub-resources ----------------------------------------------------------------------------
 */

/* traffic.c: /deployments/<m>/traffic|promote|rollback and /deployments/<m>/<v>/stats; false
 * when the path is none of them. seg[0] is "deployments". */
bool manage_traffic_route(manage_ctx *s, const http_request *req, const char **seg, int n,
                          http_response *resp);

/* limits.c: PUT/GET /deployments/<m>/<v>/limits (the "rate_limit" object of the deploy body,
 * deploy_options.h, changed on a live deployment); json: a new cJSON value of a limit (null when
 * unlimited), caller owns. */
void manage_limits(manage_ctx *s, const http_request *req, const char *model, const char *version,
                   http_response *resp);
struct cJSON *manage_rate_limit_json(rl_limit l);

/* stats.c: GET /models/stats and GET /deployments/<m>/<v>/stats. */
void manage_stats_all(manage_ctx *s, http_response *resp);
/* GET /models/stats?scope=cluster: summed over the live replicas (cluster_stats.c). */
void manage_stats_cluster(manage_ctx *s, http_response *resp);
void manage_stats_one(manage_ctx *s, const char *model, const char *version, http_response *resp);

/* ---- JSON forms (deployments.c) ---------------------------------------------------------------
 */

/* {"id","model_name","version","endpoint_name","status","deployed_at","reason"?}; caller owns. */
struct cJSON *manage_deployment_json(const reg_deployment *d);
/* Add isolation, timeouts, rejected and (isolated) "worker":{pid,rss_bytes,restarts,crashes,
 * state} of a live deployment to o. */
void manage_worker_json(struct cJSON *o, const deploy_runtime *rt);

#endif
