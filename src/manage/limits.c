/*
 * manage limits: PUT/GET /deployments/<model>/<version>/limits — a live deployment's rate limit,
 * {"rate_limit": {"rps": <number > 0>, "burst": <number >= 1>} | null}. The same object is
 * accepted as "rate_limit" in the deploy body.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "manage_internal.h"
#include "body.h"
#include "deploy_options.h"
#include "reply.h"

cJSON *manage_rate_limit_json(rl_limit l)
{
    if (!rl_active(l))
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rps", l.rps);
    cJSON_AddNumberToObject(o, "burst", rl_burst(l));
    return o;
}

static void manage_limits_reply(manage_ctx *s, const char *model, const char *version,
                                http_response *resp)
{
    rl_limit l;
    if (!deploy_get_rate_limit(s->deploy, model, version, &l)) {
        reply_error(resp, HTTP_NOT_FOUND, "%s version %s is not deployed", model, version);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddItemToObject(o, "rate_limit", manage_rate_limit_json(l));
    reply_json(resp, HTTP_OK, o);
}

void manage_limits(manage_ctx *s, const http_request *req, const char *model, const char *version,
                   http_response *resp)
{
    if (reply_method_is(req, "GET")) {
        manage_limits_reply(s, model, version, resp);
        return;
    }
    if (!reply_method_is(req, "PUT")) {
        reply_bad_method(req, resp, "GET, PUT");
        return;
    }
    static const char *const fields[] = {"rate_limit", NULL};
    cJSON *body = body_object(req, resp, fields);
    if (body == NULL)
        return;
    char err[160];
    rl_limit l;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "rate_limit");
    if (v == NULL) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "body must be {\"rate_limit\": {\"rps\", \"burst\"} | null}");
    } else if (deploy_rate_limit_parse(v, &l, err, sizeof err) != 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "%s", err);
    } else {
        deploy_result r = deploy_set_rate_limit(s->deploy, model, version, l);
        if (r.code != DEPLOY_OK)
            reply_error(resp, reply_status_of_deploy(r.code), "%s", r.message);
        else
            manage_limits_reply(s, model, version, resp);
    }
    cJSON_Delete(body);
}
