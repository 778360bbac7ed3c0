/*
 * openapi: the live OpenAPI 3.1 document of this server, GET /openapi.json, and the page that
 * renders it, GET /docs (Swagger UI from npm, installed by the build into <web-root>/docs and
 * served from there: no CDN).
 *
 * The document is built on each request from two sources, so it cannot drift from what is
 * served: the static route table below (every management and data-plane route, with its
 * method, role and body schema) and the deployment manager's live deployments — one path per
 * deployed version (`/v2/models/<m>/versions/<v>/infer`, plus `/v2/models/<m>/infer` per model)
 * whose request and response schemas name that version's tensors (name, datatype, shape) from
 * the plugin's metadata. A deploy adds those paths and an undeploy removes them the moment it
 * returns.
 *
 * Thread-safety: handlers may run on many threads; they only read the deployment manager.
 */
#ifndef DS_OPENAPI_H
#define DS_OPENAPI_H

#include "server.h"

/* The route table entry for one documented operation. */
typedef struct openapi_route {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* OpenAPI template, e.g. "/v2/models/{model_name}/ready" */
    const char *role;    /* least role allowed: "open", "inference", "viewer", "deployer",
                            "admin" (CONTRACTS roles; "inference" routes are open unless
                            --infer-auth required) */
    const char *tag;     /* group in the rendered page */
    const char *summary; /* one line */
    const char *request; /* components.schemas name of the JSON body, or NULL */
    const char *ok;      /* success status, e.g. "200" */
    const char *reply;   /* components.schemas name of the success body, or NULL */
} openapi_route;

/* Every documented route, terminated by an entry with method NULL. Static; valid forever. */
const openapi_route *openapi_routes(void);

/* GET /openapi.json. */
void openapi_reply(ds_server *s, const http_request *req, http_response *resp);
/* GET /docs: the renderer page (404 with a message when the build had no npm). */
void openapi_docs(ds_server *s, const http_request *req, http_response *resp);

#endif
