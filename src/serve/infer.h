/*
 * infer: one inference on one deployment — OIP decode -> check against the model -> plugin
 * execute -> check outputs -> OIP encode — with stats around it (infer.c), and the seed-style
 * /predict translation onto the same path (predict.c). Private to src/serve/ (and its unit
 * test).
 *
 * Thread-safety: every function may run on many worker threads at once. Each thread decodes
 * into its own arena (thread-local, reused), so requests share nothing but the deployment's
 * stats (lock-free) and, for plugins that are not thread-safe, the deployment's exec lock.
 * infer_set_limits is called once at startup, before any request.
 */
#ifndef DS_INFER_H
#define DS_INFER_H

#include <stdint.h>

#include "deploy.h"
#include "http.h"
#include "oip.h"
#include "serve.h"

/* An infer request's body as the data path needs it, from HTTP or from an async job. */
typedef struct infer_input {
    const char *body;
    size_t len;
    size_t header_len;          /* Inference-Header-Content-Length, (size_t)-1 none, -2 malformed */
    const char *routing_key;    /* X-Routing-Key or NULL */
    const http_request *client; /* whose disconnect is_cancelled reports; NULL: none (a job) */
} infer_input;

/* Inference-Header-Content-Length of req as infer_input.header_len wants it. */
size_t infer_header_length(const http_request *req);

/* The length of a finished response's JSON part (its Inference-Header-Content-Length when it
 * carries binary data, else all of body_len). */
size_t infer_response_json_len(const http_response *resp, size_t body_len);

/* Answer `in` with deployment t (stats and phases counted on t). */
void infer_oip_input(const deploy_target *t, const infer_input *in, http_response *resp);

/* Answer `in` for (model, version); version NULL routes by the traffic split like the
 * unversioned route. 404 when not deployed. For async jobs (jobs.c). */
void infer_oip_by_name(deploy_manager *m, const char *model, const char *version,
                       const infer_input *in, http_response *resp);

/* Answer an OIP infer request (req->body) with the deployment `t` (versioned route). */
void infer_oip(const deploy_target *t, const http_request *req, http_response *resp);

/* Answer an OIP infer request on a model's unversioned route: decode, pick the version by the
 * traffic split (sticky on X-Routing-Key or the "routing_key" request parameter), run. */
void infer_oip_routed(deploy_model *dm, const http_request *req, http_response *resp);

/* Decode `body` (OIP request JSON, no binary part) and run it on t, writing resp and timing
 * the phases into *ph. No stats: the caller brackets it with infer_stats_begin / _end. */
void infer_run_json(const deploy_target *t, const char *body, size_t len, http_response *resp,
                    phase_sample *ph);
/* Count a request in t's stats; returns the start time for infer_stats_end, which also counts
 * it in t's Triton statistics (success with the phases of ph, or fail; ph may be NULL then). */
uint64_t infer_stats_begin(const deploy_target *t);
void infer_stats_end(const deploy_target *t, uint64_t start_ns, const http_response *resp,
                     const phase_sample *ph);

/* ---- predict.c ----------------------------------------------------------------------------- */

/* Answer a seed-style request: `input_json` is the "input" value (number or array) as JSON
 * text. Replies {"model_name","version","prediction":...,"outputs":{...}}. */
void infer_predict(const deploy_target *t, const char *input_json, http_response *resp);

/* The "/predict" prefix route: POST /predict {"model_name","version"?,"input"} and
 * POST /predict/<endpoint_name> {"input"}. cbdata is the serve_ctx. */
void predict_route(void *cbdata, const http_request *req, http_response *resp);

#endif
