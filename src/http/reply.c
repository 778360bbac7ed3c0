/* reply: errors, bodies, the method check and the status table. See reply.h. */
#include "reply.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- answering ------------------------------------------------------------------------------ */

void reply_error(http_response *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf_reset(resp->body);
    http_response_clear_tail(resp);
    buf_append_str(resp->body, "{\"error\":");
    buf_append_json_string(resp->body, msg, strlen(msg));
    buf_append_char(resp->body, '}');
    resp->status = status;
    resp->content_type = "application/json";
}

void reply_json(http_response *resp, int status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (text == NULL) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
        return;
    }
    buf_reset(resp->body);
    http_response_clear_tail(resp);
    buf_append_str(resp->body, text);
    free(text);
    resp->status = status;
}

bool reply_method_is(const http_request *req, const char *want)
{
    return strcmp(req->method, want) == 0 ||
           (strcmp(want, "GET") == 0 && strcmp(req->method, "HEAD") == 0);
}

void reply_bad_method(const http_request *req, http_response *resp, const char *allowed)
{
    reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s does not allow %s (allowed: %s)", req->path,
                req->method, allowed);
    http_response_header(resp, "Allow", allowed);
}

void reply_no_route(const http_request *req, http_response *resp)
{
    reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
}

/* ---- the table ------------------------------------------------------------------------------ */

const char *reply_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

int reply_status_of_registry(reg_status s)
{
    switch (s) {
    case REG_OK: return HTTP_OK;
    case REG_NOT_FOUND: return HTTP_NOT_FOUND;
    case REG_EXISTS:
    case REG_CONFLICT: return HTTP_CONFLICT;
    case REG_INVALID: return HTTP_BAD_REQUEST;
    case REG_TOO_NEW:
    case REG_ERROR: break;
    }
    return HTTP_INTERNAL_ERROR;
}

int reply_status_of_oip(oip_code c)
{
    switch (c) {
    case OIP_OK: return HTTP_OK;
    case OIP_BAD_REQUEST: return HTTP_BAD_REQUEST;
    case OIP_TOO_LARGE: return HTTP_PAYLOAD_TOO_LARGE;
    case OIP_INTERNAL: break;
    }
    return HTTP_INTERNAL_ERROR;
}

int reply_status_of_deploy(deploy_status s)
{
    switch (s) {
    case DEPLOY_OK: return HTTP_OK;
    case DEPLOY_INVALID: return HTTP_BAD_REQUEST;
    case DEPLOY_NOT_FOUND: return HTTP_NOT_FOUND;
    case DEPLOY_CONFLICT: return HTTP_CONFLICT;
    case DEPLOY_DRAINING: return 202;
    case DEPLOY_BAD_ARTIFACT: return HTTP_UNPROCESSABLE;
    case DEPLOY_INTERNAL: break;
    }
    return HTTP_INTERNAL_ERROR;
}

int reply_status_of_auth(auth_verdict v)
{
    switch (v) {
    case AUTH_ALLOW: return HTTP_OK;
    case AUTH_PREFLIGHT: return HTTP_NO_CONTENT;
    case AUTH_UNAUTHENTICATED: return HTTP_UNAUTHORIZED;
    case AUTH_FORBIDDEN: break;
    }
    return HTTP_FORBIDDEN;
}

int reply_status_of_plugin(ds_status s)
{
    switch ((int)s) { /* int: an isolated deployment's statuses lie beyond the enum */
    case DS_OK: return HTTP_OK;
    case DS_ERR_INVALID_ARGUMENT: return HTTP_BAD_REQUEST;
    case DS_ERR_NOT_FOUND: return HTTP_NOT_FOUND;
    case DS_ERR_UNAVAILABLE: return HTTP_UNAVAILABLE;
    case DS_STATUS_WORKER_CRASHED: return 502;
    case DS_STATUS_WORKER_TIMEOUT: return 504;
    case DS_ERR_DEADLINE_EXCEEDED: return HTTP_GATEWAY_TIMEOUT;
    case DS_ERR_CANCELLED: return HTTP_CLIENT_CLOSED;
    default: return HTTP_INTERNAL_ERROR;
    }
}
