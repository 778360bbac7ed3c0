/*
 * auth_http: auth as the HTTP server's guard. For every request, before its body is read, the
 * HTTP glue calls auth_http_guard(); it turns the request into an auth_request, decides, and
 * either lets the route's handler run (with the principal attached to the request and the
 * registry's audit context set for this thread) or writes the refusal or the CORS preflight
 * answer itself.
 */
#include "auth_http.h"

#include <stdio.h>
#include <string.h>

#include "auth_internal.h"
#include "registry.h"
#include "reply.h"

/* The principal of the request this worker thread is serving; the request points at it. */
static _Thread_local auth_principal tl_who;
/* Its rate-limit key ("principal:<name>"); the request points at it (http_request.client_key). */
static _Thread_local char tl_client_key[AUTH_NAME_MAX + 16];

static const auth_principal auth_nobody = {
    .authenticated = false, .role = AUTH_ROLE_ADMIN, .name = "anonymous"};

#define AUTH_ALLOW_METHODS "GET, HEAD, POST, PUT, DELETE"
#define AUTH_ALLOW_HEADERS                                                                         \
    "Authorization, Content-Type, Inference-Header-Content-Length, X-Routing-Key"

static void auth_cors_headers(http_response *resp, const auth_decision *d, bool preflight)
{
    if (d->allow_origin[0] == '\0')
        return;
    http_response_header(resp, "Access-Control-Allow-Origin", d->allow_origin);
    http_response_header(resp, "Vary", "Origin");
    if (preflight) {
        http_response_header(resp, "Access-Control-Allow-Methods", AUTH_ALLOW_METHODS);
        http_response_header(resp, "Access-Control-Allow-Headers", AUTH_ALLOW_HEADERS);
        http_response_header(resp, "Access-Control-Max-Age", "600");
    } else {
        http_response_header(resp, "Access-Control-Expose-Headers",
                             "Inference-Header-Content-Length, Retry-After");
    }
}

bool auth_http_guard(void *cbdata, http_request *req, http_response *resp)
{
    auth *a = cbdata;
    auth_request ar = {.method = req->method,
                       .path = req->path,
                       .authorization = http_header(req, "Authorization"),
                       .origin = http_header(req, "Origin"),
                       .host = http_header(req, "Host"),
                       .acr_method = http_header(req, "Access-Control-Request-Method")};
    auth_decision d;
    auth_decide(a, &ar, &d);
    auth_cors_headers(resp, &d, d.verdict == AUTH_PREFLIGHT);
    if (d.verdict == AUTH_PREFLIGHT) {
        resp->status = reply_status_of_auth(d.verdict);
        return false;
    }
    if (d.verdict != AUTH_ALLOW) {
        reply_error(resp, reply_status_of_auth(d.verdict), "%s", d.message);
        if (d.verdict == AUTH_UNAUTHENTICATED)
            http_response_header(resp, "WWW-Authenticate",
                                 ar.authorization ? "Bearer realm=\"dynserve\", "
                                                    "error=\"invalid_token\""
                                                  : "Bearer realm=\"dynserve\"");
        return false; /* http closes the connection: the body was not read */
    }
    tl_who = d.who;
    req->guard_data = &tl_who;
    req->client_key = NULL; /* anonymous callers share their address's bucket */
    if (d.who.authenticated) {
        snprintf(tl_client_key, sizeof tl_client_key, "principal:%s", d.who.name);
        req->client_key = tl_client_key;
    }
    registry_audit_set(d.who.name, req->client_addr);
    return true;
}

const auth_principal *auth_http_principal(const http_request *req)
{
    return req->guard_data != NULL ? req->guard_data : &auth_nobody;
}
