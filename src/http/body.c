/* body: JSON request bodies. See body.h. */
#include "body.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "jsonscan.h"
#include "names.h"
#include "reply.h"

cJSON *body_parse(const http_request *req, http_response *resp)
{
    /* cJSON would decode "x\u0000y" to the C string "x" (jsonscan.h): refuse it instead. */
    if (json_has_escaped_nul(req->body, req->body_len)) {
        reply_error(resp, HTTP_BAD_REQUEST, "a JSON string in the body holds an escaped NUL");
        return NULL;
    }
    cJSON *obj = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        reply_error(resp, HTTP_BAD_REQUEST, "request body must be a JSON object");
        return NULL;
    }
    return obj;
}

cJSON *body_object(const http_request *req, http_response *resp, const char *const *allowed)
{
    cJSON *obj = body_parse(req, resp);
    if (obj == NULL)
        return NULL;
    for (const cJSON *f = obj->child; f != NULL; f = f->next) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, f->string) == 0;
        if (!known) {
            reply_error(resp, HTTP_BAD_REQUEST, "unknown field \"%s\"", f->string);
            cJSON_Delete(obj);
            return NULL;
        }
    }
    return obj;
}

const char *body_name_field(const cJSON *obj, const char *key, char *buf, size_t len, bool *bad,
                            http_response *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v))
        return NULL;
    bool numeric_ok = strcmp(key, "version") == 0;
    buf[0] = '\0';
    if (cJSON_IsString(v) && strlen(v->valuestring) < len)
        snprintf(buf, len, "%s", v->valuestring);
    else if (numeric_ok && cJSON_IsNumber(v) && v->valuedouble >= 0 &&
             v->valuedouble == (double)v->valueint)
        snprintf(buf, len, "%d", v->valueint);
    if (!name_valid(buf)) {
        *bad = true;
        reply_error(resp, HTTP_BAD_REQUEST, "\"%s\" must be a name matching " NAME_RULE, key);
        return NULL;
    }
    return buf;
}
