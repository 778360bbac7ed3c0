/*
 * dataplane: the Open Inference Protocol routes — server metadata and health, model metadata and
 * readiness, and the infer handlers the deployment manager registers per version and per model.
 * Metadata and readiness are served by one "/v2" prefix handler registered at startup, so the
 * CivetWeb handler list holds only the infer routes (it is scanned on every request).
 *
 * Thread-safety: handlers run on many worker threads; they only read the server struct and take
 * counted deployment references.
 */
#ifndef DS_DATAPLANE_H
#define DS_DATAPLANE_H

#include "server.h"

/* Register the "/v2" prefix handler. 0, or -1 when memory runs out. */
int dataplane_register(ds_server *s);

/* Handlers for the deployment manager: cbdata is the deployment / the deploy_model. */
void dataplane_version_infer(void *cbdata, const http_request *req, http_response *resp);
void dataplane_model_infer(void *cbdata, const http_request *req, http_response *resp);

#endif
