/*
 * infer: codec -> plugin -> codec for one request. See infer.h.
 *
 * Per worker thread: one oip_arena (reset per request) and one scratch buffer for /predict.
 * Nothing on this path takes a lock except a non-thread-safe plugin's exec lock.
 */
#include "infer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Written once by infer_set_limits before the server starts; read-only afterwards. */
static oip_limits infer_limits;
static bool infer_limits_set;

/* Per-thread decode arena: no lock, reused across requests. The pthread key's destructor frees
 * it when a worker thread ends. */
static _Thread_local oip_arena *tl_arena;
static pthread_key_t infer_arena_key;
static pthread_once_t infer_arena_once = PTHREAD_ONCE_INIT;

static void infer_arena_destroy(void *arena)
{
    oip_arena_free(arena);
}

static void infer_arena_key_init(void)
{
    pthread_key_create(&infer_arena_key, infer_arena_destroy);
}

void infer_set_limits(const oip_limits *limits)
{
    infer_limits = *limits;
    infer_limits_set = true;
}

static void infer_host_log(int level, const char *msg)
{
    log_write(level < LOG_ERROR   ? LOG_ERROR
              : level > LOG_DEBUG ? LOG_DEBUG
                                  : (enum log_level)level,
              "plugin: %s", msg);
}

static const ds_host_api infer_host = {
    .struct_size = sizeof(ds_host_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .output_alloc = oip_output_alloc,
    .log = infer_host_log,
};

const ds_host_api *infer_host_api(void)
{
    return &infer_host;
}

static uint64_t infer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static oip_arena *infer_arena(void)
{
    if (tl_arena == NULL) {
        pthread_once(&infer_arena_once, infer_arena_key_init);
        tl_arena = oip_arena_new();
        pthread_setspecific(infer_arena_key, tl_arena);
    } else
        oip_arena_reset(tl_arena);
    return tl_arena;
}

/* Inference-Header-Content-Length as a size, (size_t)-1 when absent; -2 when malformed. */
static size_t infer_header_length(const http_request *req)
{
    const char *v = http_header(req, "Inference-Header-Content-Length");
    if (v == NULL)
        return (size_t)-1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n > req->body_len)
        return (size_t)-2;
    return (size_t)n;
}

/* Decode the body into *oreq. 0, or -1 after writing the error response. */
static int infer_decode(const char *body, size_t len, size_t header_len, oip_request *oreq,
                        http_response *resp)
{
    oip_arena *arena = infer_arena();
    if (arena == NULL) {
        http_error(resp, 500, "out of memory");
        return -1;
    }
    if (header_len == (size_t)-2) {
        http_error(resp, 400,
                   "Inference-Header-Content-Length must be a byte count within the body");
        return -1;
    }
    oip_error err = {0};
    const oip_limits *lim = infer_limits_set ? &infer_limits : &oip_default_limits;
    if (oip_decode_request(arena, body, len, header_len, lim, oreq, &err) != 0) {
        http_error(resp, err.status ? err.status : 400, "%s", err.message);
        return -1;
    }
    return 0;
}

static int infer_plugin_status(ds_status s)
{
    switch (s) {
    case DS_ERR_INVALID_ARGUMENT: return 400;
    case DS_ERR_UNAVAILABLE: return 503;
    default: return 500;
    }
}

/* Check, execute, check, encode: the part after decoding. Writes resp. */
static void infer_run(const deploy_target *t, const oip_request *oreq, http_response *resp)
{
    oip_error err = {0};
    if (oip_check_request(oreq, t->model, &err) != 0) {
        http_error(resp, err.status, "%s", err.message);
        return;
    }
    oip_response out;
    oip_response_init(&out, tl_arena);
    ds_error perr = {.code = DS_OK, .message = ""};
    if (t->exec_lock != NULL)
        pthread_mutex_lock(t->exec_lock);
    ds_status st = t->api->execute(t->instance, &oreq->plugin, &out, &perr);
    if (t->exec_lock != NULL)
        pthread_mutex_unlock(t->exec_lock);
    if (st != DS_OK) {
        perr.message[sizeof perr.message - 1] = '\0';
        http_error(resp, infer_plugin_status(st), "model %s version %s: %s", t->model_name,
                   t->version, perr.message[0] ? perr.message : "execute failed");
        return;
    }
    size_t json_len = 0;
    if (oip_check_response(&out, oreq, t->model, &err) != 0 ||
        oip_encode_response(resp->body, t->model_name, t->version, oreq, &out, &json_len, &err) !=
            0) {
        http_error(resp, err.status ? err.status : 500, "model %s version %s: %s", t->model_name,
                   t->version, err.message);
        return;
    }
    resp->status = 200;
    if (json_len < resp->body->len) {
        char n[32];
        snprintf(n, sizeof n, "%zu", json_len);
        http_response_header(resp, "Inference-Header-Content-Length", n);
        resp->content_type = "application/octet-stream";
    }
}

static void infer_end(const deploy_target *t, uint64_t start_ns, const http_response *resp)
{
    stats_end(t->stats, infer_now_ns() - start_ns, resp->status);
}

static bool infer_method_ok(const http_request *req, http_response *resp)
{
    if (strcmp(req->method, "POST") == 0)
        return true;
    http_error(resp, 405, "%s needs POST, not %s", req->path, req->method);
    http_response_header(resp, "Allow", "POST");
    return false;
}

void infer_oip(const deploy_target *t, const http_request *req, http_response *resp)
{
    uint64_t start = infer_now_ns();
    stats_begin(t->stats);
    oip_request oreq;
    if (infer_method_ok(req, resp) &&
        infer_decode(req->body, req->body_len, infer_header_length(req), &oreq, resp) == 0)
        infer_run(t, &oreq, resp);
    infer_end(t, start, resp);
}

void infer_oip_routed(deploy_model *dm, const http_request *req, http_response *resp)
{
    uint64_t start = infer_now_ns();
    oip_request oreq;
    if (!infer_method_ok(req, resp) ||
        infer_decode(req->body, req->body_len, infer_header_length(req), &oreq, resp) != 0)
        return;
    const char *key = http_header(req, "X-Routing-Key");
    deployment *d = deploy_acquire_from_model(dm, key ? key : oreq.routing_key);
    if (d == NULL) {
        http_error(resp, 404, "model %s has no deployed version", deploy_model_name(dm));
        return;
    }
    const deploy_target *t = deploy_target_of(d);
    stats_begin(t->stats);
    infer_run(t, &oreq, resp);
    infer_end(t, start, resp);
    deploy_release(d);
}

/* ---- seed-style /predict ------------------------------------------------------------------ */

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
        http_error(resp, 400,
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
        http_error(resp, 500, "out of memory");
    free(text);
    cJSON_Delete(reply);
    cJSON_Delete(oip);
}

void infer_predict(const deploy_target *t, const char *input_json, http_response *resp)
{
    uint64_t start = infer_now_ns();
    stats_begin(t->stats);
    ds_buf request = DS_BUF_INIT;
    bool scalar = false;
    oip_request oreq;
    if (infer_predict_request(t, input_json, &request, &scalar, resp) == 0 &&
        infer_decode(request.data, request.len, (size_t)-1, &oreq, resp) == 0) {
        infer_run(t, &oreq, resp);
        if (resp->status == 200)
            infer_predict_reply(t, scalar, resp);
    }
    buf_free(&request);
    infer_end(t, start, resp);
}
