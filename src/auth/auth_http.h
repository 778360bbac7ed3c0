/*
 * auth_http: auth plugged into the HTTP server as its request guard (see auth_http.c).
 *
 *   http_set_guard(srv, auth_http_guard, a);   // main.c, before the routes are added
 *
 * Handlers ask who is calling with auth_http_principal(req).
 */
#ifndef DS_AUTH_HTTP_H
#define DS_AUTH_HTTP_H

#include <stdbool.h>

#include "auth.h"
#include "http.h"

/* The guard (http_guard_fn) with cbdata = the auth. Runs on CivetWeb worker threads, many at
 * once. true: serve the request (req->guard_data then points at this thread's principal, and
 * events recorded while serving it carry its name and address); false: resp holds the answer
 * (401, 403, or 204 for a CORS preflight). */
bool auth_http_guard(void *cbdata, http_request *req, http_response *resp);

/* The principal attached to req by the guard; "anonymous" with role admin when no guard ran
 * (auth off in a test that serves routes without one). Valid during the handler call. */
const auth_principal *auth_http_principal(const http_request *req);

#endif
