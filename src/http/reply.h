/*
 * reply: how every handler answers — the JSON error {"error": "..."}, a cJSON body, the method
 * check with 405 + Allow — and the one table of HTTP statuses: their names, their reason
 * phrases, and the mapping from every module's error codes (base/errors.h, and the plugin ABI's
 * ds_status) to a status. No other file writes a status number.
 *
 * Thread-safety: pure functions over the response they are given; a response belongs to the
 * worker thread handling its request.
 */
#ifndef DS_REPLY_H
#define DS_REPLY_H

#include <stdbool.h>

#include "dynserve/plugin.h"
#include "errors.h"
#include "http.h"

/* The statuses dynserve answers with. */
enum {
    HTTP_OK = 200,
    HTTP_CREATED = 201,
    HTTP_ACCEPTED = 202,
    HTTP_NO_CONTENT = 204,
    HTTP_BAD_REQUEST = 400,
    HTTP_UNAUTHORIZED = 401,
    HTTP_FORBIDDEN = 403,
    HTTP_NOT_FOUND = 404,
    HTTP_METHOD_NOT_ALLOWED = 405,
    HTTP_CONFLICT = 409,
    HTTP_REQUEST_TIMEOUT = 408,
    HTTP_PAYLOAD_TOO_LARGE = 413,
    HTTP_UNPROCESSABLE = 422,
    HTTP_TOO_MANY_REQUESTS = 429,
    HTTP_CLIENT_CLOSED = 499, /* nginx's "client closed request"; gRPC maps CANCELLED to it */
    HTTP_INTERNAL_ERROR = 500,
    HTTP_UNAVAILABLE = 503,
    HTTP_GATEWAY_TIMEOUT = 504,
};

/* The one way to answer with an error: status + {"error": "<message>"} (body reset first,
 * content type application/json). */
void reply_error(http_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answer with a cJSON value (struct cJSON *; deleted here); 500 when it cannot be printed. */
struct cJSON;
void reply_json(http_response *resp, int status, struct cJSON *body);

/* true when the request's method is `want` (HEAD counts as GET). */
bool reply_method_is(const http_request *req, const char *want);
/* 405 naming the path and method, with "Allow: <allowed>" (e.g. "GET, POST"). */
void reply_bad_method(const http_request *req, http_response *resp, const char *allowed);
/* 404 "no route for <path>". */
void reply_no_route(const http_request *req, http_response *resp);

/* ---- the table ------------------------------------------------------------------------------ */

/* Reason phrase for a status code ("OK", "Not Found", ...); never NULL. */
const char *reply_reason(int status);

/* Module error codes -> HTTP status. */
int reply_status_of_registry(reg_status s);
int reply_status_of_oip(oip_code c);
int reply_status_of_deploy(deploy_status s);
int reply_status_of_plugin(ds_status s);
int reply_status_of_auth(auth_verdict v);

#endif
