/*
 * serve predict: the seed-style /predict routes — POST /predict {"model_name","version"?,
 * "input"} and POST /predict/<endpoint_name> {"input"} — translated onto the OIP path: the
 * "input" value becomes a one-input OIP request fitted to the model's first input, the OIP
 * response becomes {"model_name","version","prediction","outputs"}. See infer.h.
 */
#include "infer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "names.h"
#include "path.h"
#include "reply.h"
#include "serve.h"

/* ---- translation ------------------------------------------------------------------------- */

/* Shape of a JSON value: a number is [1], arrays nest. -1 when ragged or not numeric. */
static int infer_json_shape(const cJSON *v, int64_t *shape, int max_rank)
{
    if (!cJSON_IsArray(v))
        return (cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsString(v)) ? 0 : -1;
    if (max_rank == 0)
        return -1;
    shape[0] = cJSON_GetArraySize(v);
    if (shape[0] == 0)
        return 1;
    int inner = infer_json_shape(v->child, shape + 1, max_rank - 1);
    if (inner < 0)
        return -1;
    for (const cJSON *e = v->child->next; e != NULL; e = e->next) {
        int64_t other[DS_MAX_RANK];
        if (infer_json_shape(e, other, max_rank - 1) != inner ||
            memcmp(other, shape + 1, (size_t)inner * sizeof *other) != 0)
            return -1;
    }
    return inner + 1;
}

/* Fit a flat list of n values to the model's first input: [n/k, k] for a fixed last dim k. */
static int infer_fit_flat(const ds_io_desc *in, int64_t n, int64_t *shape)
{
    if (in == NULL || in->rank < 0 || in->rank == 1) {
        shape[0] = n;
        return 1;
    }
    if (in->rank == 2) {
        int64_t k = in->shape[1] > 0 ? in->shape[1] : n;
        if (k == 0 || n % k != 0)
            return -1;
        shape[0] = n / k;
        shape[1] = k;
        return 2;
    }
    return -1;
}

/* Build the OIP request for a /predict input. 0, or -1 after writing a 400. */
static int infer_predict_request(const deploy_target *t, const char *input_json, ds_buf *out,
                                 bool *scalar, http_response *resp)
{
    cJSON *input = cJSON_Parse(input_json);
    int64_t shape[DS_MAX_RANK];
    int rank = input ? infer_json_shape(input, shape, DS_MAX_RANK) : -1;
    const ds_model_desc *md = t->model;
    const ds_io_desc *in = md->input_count > 0 ? &md->inputs[0] : NULL;
    *scalar = rank == 0;
    if (rank == 0 || rank == 1)
        rank = infer_fit_flat(in, rank == 0 ? 1 : shape[0], shape);
    if (rank < 0) {
        cJSON_Delete(input);
        reply_error(resp, HTTP_BAD_REQUEST,
                    "\"input\" must be a number or a rectangular array fitting "
                    "the model's input");
        return -1;
    }
    ds_datatype dt = in && in->datatype != DS_TYPE_ANY ? in->datatype : DS_TYPE_FP32;
    buf_printf(out, "{\"inputs\":[{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[",
               in ? in->name : "input", oip_datatype_name(dt));
    for (int i = 0; i < rank; i++)
        buf_printf(out, "%s%lld", i ? "," : "", (long long)shape[i]);
    buf_append_str(out, "],\"data\":");
    if (*scalar)
        buf_append_char(out, '[');
    buf_append_str(out, input_json);
    buf_append_str(out, *scalar ? "]}]}" : "}]}");
    cJSON_Delete(input);
    return 0;
}

/* Rewrite an OIP response into the seed shape. */
static void infer_predict_reply(const deploy_target *t, bool scalar, http_response *resp)
{
    cJSON *oip = cJSON_ParseWithLength(resp->body->data, resp->body->len);
    cJSON *outputs = cJSON_GetObjectItemCaseSensitive(oip, "outputs");
    cJSON *reply = cJSON_CreateObject(), *named = cJSON_CreateObject();
    cJSON_AddStringToObject(reply, "model_name", t->model_name);
    cJSON_AddStringToObject(reply, "version", t->version);
    cJSON *first = NULL, *o;
    cJSON_ArrayForEach(o, outputs)
    {
        cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(o, "data");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (data == NULL || !cJSON_IsString(name))
            continue;
        if (scalar && cJSON_GetArraySize(data) == 1) { /* {"input": 2} -> "prediction": 15 */
            cJSON *only = cJSON_DetachItemFromArray(data, 0);
            cJSON_Delete(data);
            data = only;
        }
        cJSON_AddItemToObject(named, name->valuestring, data);
        if (first == NULL)
            first = data;
    }
    cJSON_AddItemToObject(reply, "prediction",
                          first ? cJSON_Duplicate(first, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(reply, "outputs", named);
    char *text = cJSON_PrintUnformatted(reply);
    buf_reset(resp->body);
    if (text != NULL)
        buf_append_str(resp->body, text);
    else
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
    free(text);
    cJSON_Delete(reply);
    cJSON_Delete(oip);
}

void infer_predict(const deploy_target *t, const char *input_json, http_response *resp)
{
    uint64_t start = infer_stats_begin(t);
    ds_buf request = DS_BUF_INIT;
    bool scalar = false;
    phase_sample ph = {{0}, 0, false};
    if (infer_predict_request(t, input_json, &request, &scalar, resp) == 0) {
        infer_run_json(t, request.data, request.len, resp, &ph);
        if (resp->status == HTTP_OK)
            infer_predict_reply(t, scalar, resp);
    }
    buf_free(&request);
    infer_stats_end(t, start, resp, &ph);
}

/* ---- the /predict route ------------------------------------------------------------------- */

static void predict_with(deployment *d, const char *what, cJSON *input, http_response *resp)
{
    if (d == NULL) {
        reply_error(resp, HTTP_NOT_FOUND, "%s is not deployed", what);
        return;
    }
    char *text = cJSON_PrintUnformatted(input);
    if (text != NULL)
        infer_predict(deploy_target_of(d), text, resp);
    else
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
    free(text);
    deploy_release(d);
}

void predict_route(void *cbdata, const http_request *req, http_response *resp)
{
    serve_ctx *s = cbdata;
    char buf[512];
    const char *seg[4];
    int n = path_segments(req->path, buf, sizeof buf, seg, 4);
    if (n < 1 || n > 2) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
        return;
    }
    if (!reply_method_is(req, "POST")) {
        reply_bad_method(req, resp, "POST");
        return;
    }
    static const char *const endpoint_fields[] = {"input", NULL};
    static const char *const model_fields[] = {"model_name", "version", "input", NULL};
    cJSON *body = body_object(req, resp, n == 2 ? endpoint_fields : model_fields);
    if (body == NULL)
        return;
    cJSON *input = cJSON_GetObjectItemCaseSensitive(body, "input");
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1], what[160];
    bool bad = false;
    const char *m =
        n == 1 ? body_name_field(body, "model_name", model, sizeof model, &bad, resp) : NULL;
    const char *v = n == 1 && !bad
                        ? body_name_field(body, "version", version, sizeof version, &bad, resp)
                        : NULL;
    if (bad) {
    } else if (input == NULL) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"input\" is required");
    } else if (n == 2) {
        snprintf(what, sizeof what, "endpoint %s", seg[1]);
        predict_with(name_valid(seg[1]) ? deploy_acquire_endpoint(s->deploy, seg[1]) : NULL, what,
                     input, resp);
    } else if (m == NULL) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"model_name\" is required");
    } else {
        snprintf(what, sizeof what, "model %s%s%s", m, v ? " version " : "", v ? v : "");
        predict_with(deploy_acquire(s->deploy, m, v, http_header(req, "X-Routing-Key")), what,
                     input, resp);
    }
    cJSON_Delete(body);
}
