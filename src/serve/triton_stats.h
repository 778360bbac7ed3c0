/*
 * triton_stats: Triton's statistics extension, GET /v2/models[/<m>[/versions/<v>]]/stats, in
 * Triton's exact JSON shape (docs/protocol/extension_statistics.md of triton-inference-server/
 * server) so that tritonclient's get_inference_statistics() works, plus dynserve's own fields in
 * each model_stat (Triton's clients ignore unknown keys):
 *
 *   {"model_stats":[{"name","version","last_inference","inference_count","execution_count",
 *     "inference_stats":{"success","fail","queue","compute_input","compute_infer",
 *                        "compute_output","cache_hit","cache_miss"},   each {"count","ns"}
 *     "response_stats":{}, "batch_stats":[{"batch_size","compute_input","compute_infer",
 *     "compute_output"}], "memory_usage":[],
 *     -- dynserve's --
 *     "request_count","error_count","avg_latency_ms","p50_ms","p95_ms","p99_ms","in_flight",
 *     "deployed_at","traffic_weight","shadow_count","mismatch_count","shadow_dropped"}]}
 *
 * Counts are this process's (Triton's are "since Triton started"); an undeployed version has no
 * statistics, as an unloaded Triton model has none. Lifetime totals across restarts stay in
 * GET /models/stats.
 *
 * Thread-safety: reads counters lock-free under the deployment manager's read locks.
 */
#ifndef DS_TRITON_STATS_H
#define DS_TRITON_STATS_H

#include "deploy.h"
#include "http.h"
#include "phase_stats.h"
#include "stats.h"

/* One deployment's statistics as a Triton $model_stat object, appended to out. */
void triton_stats_append(ds_buf *out, const char *model, const char *version,
                         const stats_snapshot *snap, const phase_snapshot *ph,
                         const char *deployed_at, int traffic_weight);

/* Answer the stats request for every deployment (model NULL), every version of one model
 * (version NULL), or one version: 200 with the document, 404 when the model (version) is not
 * deployed, 405 for a method other than GET/HEAD. */
void triton_stats_reply(deploy_manager *m, const http_request *req, const char *model,
                        const char *version, http_response *resp);

#endif
