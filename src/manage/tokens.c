/*
 * manage tokens: the /tokens resource (admins: list, create, revoke API tokens) and
 * GET /auth/whoami (who the caller is, for the dashboard). Which role may call what is decided
 * before these run, in src/auth/auth_policy.c; these only do the work.
 *
 *   GET    /tokens                 {"tokens":[{"id","name","role","created_at","expires_at",
 *                                   "last_used_at","revoked_at"}]}  (never a secret or a hash)
 *   POST   /tokens                 {"name","role","expires"?: "30d"|"12h"|"90m"|seconds}
 *                                  -> 201 the record plus "token" (shown this once)
 *   DELETE /tokens/<name|id>       -> 200 the revoked record; 404 when no valid token matches
 *   GET    /auth/whoami            {"auth":true,"name","role"} or {"auth":false,"role":"admin"}
 */
#include "manage_internal.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "auth_http.h"
#include "body.h"
#include "path.h"
#include "reply.h"

static void manage_add_time(cJSON *o, const char *key, const char *t)
{
    if (t[0])
        cJSON_AddStringToObject(o, key, t);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *manage_token_json(const reg_token *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "role", t->role);
    cJSON_AddStringToObject(o, "created_at", t->created_at);
    manage_add_time(o, "expires_at", t->expires_at);
    manage_add_time(o, "last_used_at", t->last_used_at);
    manage_add_time(o, "revoked_at", t->revoked_at);
    return o;
}

static int manage_collect_token(void *ud, const reg_token *t)
{
    cJSON_AddItemToArray(ud, manage_token_json(t));
    return 0;
}

static void manage_tokens_list(manage_ctx *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "tokens");
    char err[256];
    if (registry_token_list(s->reg, manage_collect_token, list, err, sizeof err) != REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    reply_json(resp, HTTP_OK, root);
}

static void manage_tokens_create(manage_ctx *s, const http_request *req, http_response *resp)
{
    static const char *const fields[] = {"name", "role", "expires", NULL};
    cJSON *body = body_object(req, resp, fields);
    if (body == NULL)
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(body, "role");
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(body, "expires");
    int r = cJSON_IsString(role) ? auth_role_parse(role->valuestring) : -1;
    int64_t ttl = 0;
    if (cJSON_IsString(expires))
        ttl = auth_parse_duration(expires->valuestring);
    else if (cJSON_IsNumber(expires))
        ttl = expires->valuedouble >= 1 && expires->valuedouble < 1e12 ? (int64_t)expires->valuedouble
                                                                       : -1;
    else if (expires != NULL && !cJSON_IsNull(expires))
        ttl = -1;
    char text[AUTH_TOKEN_TEXT_MAX], err[256];
    reg_token row;
    if (!cJSON_IsString(name) || r < 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"name\" and \"role\" (admin, deployer, viewer or "
                                            "inference) are required");
    } else if (ttl < 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"expires\" is a duration such as \"30d\", \"12h\", "
                                            "\"90m\" or a number of seconds");
    } else {
        reg_status st = auth_token_create(s->reg, name->valuestring, (auth_role)r, ttl, text, &row,
                                          err, sizeof err);
        if (st != REG_OK) {
            reply_error(resp, reply_status_of_registry(st), "%s", err);
        } else {
            auth_reload(s->auth);
            cJSON *o = manage_token_json(&row);
            cJSON_AddStringToObject(o, "token", text);
            OPENSSL_cleanse(text, sizeof text);
            reply_json(resp, HTTP_CREATED, o);
        }
    }
    cJSON_Delete(body);
}

static void manage_tokens_revoke(manage_ctx *s, const char *which, http_response *resp)
{
    char err[256];
    reg_token row;
    reg_status st = registry_token_revoke(s->reg, which, &row, err, sizeof err);
    if (st != REG_OK) {
        reply_error(resp, reply_status_of_registry(st), "%s", err);
        return;
    }
    auth_reload(s->auth);
    reply_json(resp, HTTP_OK, manage_token_json(&row));
}

void manage_tokens(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    char buf[256];
    const char *seg[3];
    int n = path_segments(req->path, buf, sizeof buf, seg, 3);
    if (n == 1) {
        if (reply_method_is(req, "GET"))
            manage_tokens_list(s, resp);
        else if (reply_method_is(req, "POST"))
            manage_tokens_create(s, req, resp);
        else
            reply_bad_method(req, resp, "GET, POST");
    } else if (n == 2) {
        if (reply_method_is(req, "DELETE"))
            manage_tokens_revoke(s, seg[1], resp);
        else
            reply_bad_method(req, resp, "DELETE");
    } else {
        reply_no_route(req, resp);
    }
}

void manage_auth(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    if (strcmp(req->path, "/auth/whoami") != 0) {
        reply_no_route(req, resp);
        return;
    }
    if (!reply_method_is(req, "GET")) {
        reply_bad_method(req, resp, "GET");
        return;
    }
    const auth_principal *who = auth_http_principal(req);
    cJSON *o = cJSON_CreateObject();
    bool on = auth_enabled(s->auth);
    cJSON_AddBoolToObject(o, "auth", on);
    if (on)
        cJSON_AddStringToObject(o, "name", who->name);
    cJSON_AddStringToObject(o, "role", on ? auth_role_name(who->role) : "admin");
    reply_json(resp, HTTP_OK, o);
}
