/*
 * infer: the request path of one deployment — OIP decode -> check against the model ->
 * plugin execute -> check outputs -> OIP encode — with stats around it; the host services table
 * plugins receive; and the seed-style /predict translation onto the same path.
 *
 * Thread-safety: every function may run on many worker threads at once. Each thread decodes
 * into its own arena (thread-local, reused), so requests share nothing but the deployment's
 * stats (lock-free) and, for plugins that are not thread-safe, the deployment's exec lock.
 * infer_set_limits is called once at startup, before any request.
 */
#ifndef DS_INFER_H
#define DS_INFER_H

#include "deploy.h"
#include "http.h"
#include "oip.h"

void infer_set_limits(const oip_limits *limits);

/* The table plugins call the server through (output_alloc, log). Static; valid forever. */
const ds_host_api *infer_host_api(void);

/* Answer an OIP infer request (req->body) with the deployment `t` (versioned route). */
void infer_oip(const deploy_target *t, const http_request *req, http_response *resp);

/* Answer an OIP infer request on a model's unversioned route: decode, pick the version by the
 * traffic split (sticky on X-Routing-Key or the "routing_key" request parameter), run. */
void infer_oip_routed(deploy_model *dm, const http_request *req, http_response *resp);

/* Answer a seed-style request: `input_json` is the "input" value (number or array) as JSON
 * text. Replies {"model_name","version","prediction":...,"outputs":{...}}. */
void infer_predict(const deploy_target *t, const char *input_json, http_response *resp);

#endif
