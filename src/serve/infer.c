/*
 * infer: codec -> plugin -> codec for one request. See infer.h. The path of one request, in
 * order: infer_oip -> infer_decode (oip/decode.c) -> infer_run: oip_check_request
 * (oip/check.c) -> the plugin's execute -> oip_check_response (oip/check.c) ->
 * oip_encode_response (oip/encode.c); errors through http/reply.c.
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

#include "batcher.h"
#include "reply.h"
#include "shadow.h"

/* Written once by infer_set_limits before the server starts; read-only afterwards. */
static oip_limits infer_limits;
static bool infer_limits_set;
static shadow *infer_shadow; /* infer_set_shadow; NULL: no shadow traffic */

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

void infer_set_shadow(shadow *s)
{
    infer_shadow = s;
}

void infer_set_limits(const oip_limits *limits)
{
    infer_limits = *limits;
    infer_limits_set = true;
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

/* Give the request's big arena blocks back once the response is encoded (it holds no pointer
 * into the arena), so an idle worker does not keep its last 64 MiB tensor; the small block
 * stays for the next request. Only on the worker's own thread-local arena. */
static void infer_arena_trim(void)
{
    if (tl_arena != NULL)
        oip_arena_reset(tl_arena);
}

size_t infer_header_length(const http_request *req)
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

size_t infer_response_json_len(const http_response *resp, size_t body_len)
{
    static const char key[] = "Inference-Header-Content-Length: ";
    const char *h = strstr(resp->extra_headers, key);
    if (h == NULL)
        return body_len;
    unsigned long long n = strtoull(h + sizeof key - 1, NULL, 10);
    return n <= body_len ? (size_t)n : body_len;
}

/* Triton's batch size of a request: the first input's first dimension when the model declares
 * that dimension variable (-1), else 1. */
static uint64_t infer_batch_size(const deploy_target *t, const oip_request *oreq)
{
    const ds_model_desc *md = t->model;
    if ((md->flags & DS_MODEL_DYNAMIC_IO) || md->input_count == 0 || md->inputs[0].rank < 1 ||
        md->inputs[0].shape[0] != -1 || oreq->plugin.input_count == 0 || oreq->inputs[0].rank < 1)
        return 1;
    return (uint64_t)oreq->inputs[0].shape[0];
}

/* Decode the body into *oreq. 0, or -1 after writing the error response. */
static int infer_decode(const char *body, size_t len, size_t header_len, oip_request *oreq,
                        http_response *resp)
{
    oip_arena *arena = infer_arena();
    if (arena == NULL) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    if (header_len == (size_t)-2) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "Inference-Header-Content-Length must be a byte count within the body");
        return -1;
    }
    oip_error err = {0};
    const oip_limits *lim = infer_limits_set ? &infer_limits : &oip_default_limits;
    if (oip_decode_request(arena, body, len, header_len, lim, oreq, &err) != 0) {
        reply_error(resp, reply_status_of_oip(err.code ? err.code : OIP_BAD_REQUEST), "%s",
                    err.message);
        infer_arena_trim();
        return -1;
    }
    return 0;
}

/* The request's deadline from Triton's request parameter "timeout" (microseconds), as
 * CLOCK_MONOTONIC nanoseconds; 0 when it has none. Plugins see it through is_cancelled. */
static uint64_t infer_deadline(const oip_request *oreq)
{
    const char *p = oreq->plugin.parameters;
    if (p == NULL || strstr(p, "\"timeout\"") == NULL)
        return 0;
    cJSON *o = cJSON_Parse(p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "timeout");
    double us = cJSON_IsNumber(v) ? v->valuedouble : 0;
    cJSON_Delete(o);
    if (!(us > 0 && us < 1e15))
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (uint64_t)(us * 1000.0);
}

static void infer_count_timeout(const deploy_target *t)
{
    if (t->timeouts != NULL)
        atomic_fetch_add(t->timeouts, 1);
    if (t->last_timeout_s != NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        atomic_store(t->last_timeout_s, (int_fast64_t)ts.tv_sec);
    }
}

/* The 503 of a request turned away at once, with Retry-After: come back, and Connection:
 * close, so the caller's idle keep-alive connection does not hold a server thread for
 * --keep-alive-ms: a burst turned away must not starve health and management. */
static void infer_turn_away(http_response *resp)
{
    http_response_header(resp, "Retry-After", "1");
    http_close_after(resp);
}

/* Take a place under the server-wide cap (all deployments together), then wait for a slot under
 * the deployment's max_in_flight (bounded by its queue and deadline). true to go on (then
 * infer_leave); false after writing the 503 or 504. */
static bool infer_admit(const deploy_target *t, uint64_t deadline_ns, http_response *resp)
{
    if (t->server_cap != NULL && !admission_cap_enter(t->server_cap)) {
        if (t->admission != NULL)
            atomic_fetch_add(&t->admission->rejected, 1);
        reply_error(resp, HTTP_UNAVAILABLE,
                    "server saturated: %lld worker threads are in inference calls, the most "
                    "--threads minus --thread-reserve allows (model %s version %s)",
                    (long long)t->server_cap->max, t->model_name, t->version);
        infer_turn_away(resp);
        return false;
    }
    admit_result a = t->admission != NULL ? admission_enter(t->admission, deadline_ns) : ADMIT_OK;
    if (a == ADMIT_OK)
        return true;
    if (t->server_cap != NULL)
        admission_cap_leave(t->server_cap);
    if (a == ADMIT_FULL) {
        reply_error(resp, HTTP_UNAVAILABLE,
                    "model %s version %s is saturated (max_in_flight and max_queue reached)",
                    t->model_name, t->version);
        infer_turn_away(resp);
    } else {
        infer_count_timeout(t);
        reply_error(resp, 504, "model %s version %s: waited past timeout_ms (%lld ms) for a slot",
                    t->model_name, t->version, (long long)t->timeout_ms);
    }
    return false;
}

static void infer_leave(const deploy_target *t)
{
    if (t->admission != NULL)
        admission_leave(t->admission);
    if (t->server_cap != NULL)
        admission_cap_leave(t->server_cap);
}

/* Run the plugin (or its worker). In process, the crash journal learns which deployment this
 * thread runs, and *late tells whether the call returned past the deadline. */
static ds_status infer_execute(const deploy_target *t, const oip_request *oreq, oip_response *out,
                               uint64_t start_ns, ds_error *perr, bool *late, uint64_t *exec_ns)
{
    int slot = deploy_call_begin(t, start_ns);
    if (!t->isolated)
        crash_journal_enter(t->deployment_id);
    uint32_t instance_slot;
    void *instance = deploy_instance_acquire(t, &instance_slot);
    uint64_t t0 = infer_now_ns();
    deploy_mem_probe mem;
    deploy_mem_begin(t, t0, 1, &mem);
    ds_status st = t->api->execute(instance, &oreq->plugin, out, perr);
    deploy_mem_end(t, 1, &mem);
    *exec_ns = infer_now_ns() - t0;
    deploy_instance_release(t, instance_slot);
    if (!t->isolated)
        crash_journal_leave();
    deploy_call_end(t, slot);
    *late = !t->isolated && t->timeout_ms > 0 &&
            infer_now_ns() - start_ns > (uint64_t)t->timeout_ms * 1000000u;
    return st;
}

/* ---- dynamic batching (deploy/batcher.h): the queue calls these on the leader's thread ---- */

static void *infer_batch_acquire(void *ctx, uint32_t *slot)
{
    return deploy_instance_acquire(ctx, slot);
}

static void infer_batch_release(void *ctx, uint32_t slot)
{
    deploy_instance_release(ctx, slot);
}

static void infer_batch_fail_all(batch_item *const *items, uint32_t n, ds_status st,
                                 const char *msg)
{
    for (uint32_t i = 0; i < n; i++) {
        items[i]->status = st;
        snprintf(items[i]->err.message, sizeof items[i]->err.message, "%s", msg);
    }
}

/* One execute_batch call for the batch; each request keeps its own request and response, so
 * the plugin writes each one's rows into its own response (nothing is split afterwards). The
 * execution counts once in the Triton stats, by its rows. */
static void infer_batch_run(void *ctx, void *instance, batch_item *const *items, uint32_t n)
{
    const deploy_target *t = ctx;
    /* one allocation per batch (not per request): the arrays execute_batch takes */
    size_t ptrs = (size_t)n * 2 * sizeof(void *);
    void *mem = calloc(1, ptrs + (size_t)n * sizeof(ds_error));
    if (mem == NULL) {
        infer_batch_fail_all(items, n, DS_ERR_NO_MEMORY, "out of memory");
        return;
    }
    const ds_infer_request **reqs = mem;
    ds_infer_response **resps = (ds_infer_response **)(reqs + n);
    ds_error *errs = (ds_error *)(void *)((char *)mem + ptrs);
    uint64_t rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        reqs[i] = items[i]->req;
        resps[i] = items[i]->resp;
        rows += items[i]->rows;
    }
    uint64_t t0 = infer_now_ns();
    int slot = deploy_call_begin(t, t0);
    crash_journal_enter(t->deployment_id);
    deploy_mem_probe probe;
    deploy_mem_begin(t, t0, n, &probe);
    ds_status st = t->api->execute_batch(instance, n, reqs, resps, errs);
    deploy_mem_end(t, n, &probe);
    crash_journal_leave();
    deploy_call_end(t, slot);
    uint64_t ns = infer_now_ns() - t0;
    if (st != DS_OK) {
        errs[0].message[sizeof errs[0].message - 1] = '\0';
        infer_batch_fail_all(items, n, st, errs[0].message);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            items[i]->status = errs[i].code;
            if (errs[i].code != DS_OK)
                memcpy(items[i]->err.message, errs[i].message, sizeof errs[i].message);
        }
        phase_stats_execution(t->phases, rows, ns);
    }
    free(mem);
}

static const batch_ops infer_batch_ops = {
    .acquire = infer_batch_acquire, .release = infer_batch_release, .run = infer_batch_run};

/* infer_execute through the deployment's batching queue: waits for its batch to run. */
static ds_status infer_execute_batched(const deploy_target *t, const oip_request *oreq,
                                       oip_response *out, uint64_t start_ns, ds_error *perr,
                                       bool *late, uint64_t *exec_ns)
{
    batch_item it = {.req = &oreq->plugin,
                     .resp = out,
                     .rows = infer_batch_size(t, oreq),
                     .deadline_ns = out->deadline_ns};
    batcher_submit(t->batcher, &it, &infer_batch_ops, (void *)t);
    *perr = it.err;
    *exec_ns = it.exec_ns;
    *late = t->timeout_ms > 0 && infer_now_ns() - start_ns > (uint64_t)t->timeout_ms * 1000000u;
    return it.status;
}

/* Room to record the binary outputs of `out` as resp's tail instead of copying them into its
 * body (oip_encode_response_spans), when resp may carry a tail (http.h: the server writes it
 * itself, so the arena outlives the write; infer_run defers the trim). capacity 0: copy. Async
 * jobs and shadow copies build their own responses without tail_ok and keep copying (a job
 * stores its response after the arena is gone). Isolated deployments come here too: their
 * outputs were copied once out of the worker's shared memory into the arena (worker.c; the
 * channel's memory is reused by the next call, so it cannot be borrowed past the call), and are
 * not copied again. Batched requests too: the leader's execute_batch allocates each member's
 * outputs in that member's response, i.e. in the member thread's own arena, and a member waits
 * in batcher_submit until its batch ran, so its outputs are this thread's as if unbatched. */
static oip_spans infer_spans(const http_response *resp, const oip_request *oreq,
                             const oip_response *out)
{
    oip_spans sp = {0};
    uint32_t n = oreq->output_count > 0 ? oreq->output_count : out->count;
    if (!resp->tail_ok || n == 0 || tl_arena == NULL ||
        !(oreq->binary_data_output || oreq->output_count > 0))
        return sp;
    sp.spans = oip_arena_alloc(tl_arena, (size_t)n * sizeof *sp.spans);
    sp.capacity = sp.spans != NULL ? n : 0;
    return sp;
}

/* Check, admit, execute, check, encode: the part after decoding. start_ns: when the request
 * began (its deadline counts from there). Writes resp, and times the phases into ph (input: the
 * request check, added to the decode time the caller measured; queue: the admission wait and a
 * non-thread-safe plugin's exec lock; infer: execute; output: output check + encode). */
static void infer_run_decoded(const deploy_target *t, const oip_request *oreq, uint64_t start_ns,
                              const http_request *client, http_response *resp, phase_sample *ph)
{
    int retry_s = 1;
    if (t->rate != NULL && !rl_bucket_take(t->rate, rl_now_ns(), &retry_s)) {
        char retry[16];
        snprintf(retry, sizeof retry, "%d", retry_s);
        stats_rate_limited(t->stats);
        reply_error(resp, HTTP_TOO_MANY_REQUESTS, "%s version %s is over its rate limit",
                    t->model_name, t->version);
        http_response_header(resp, "Retry-After", retry);
        return;
    }
    oip_error err = {0};
    uint64_t t0 = infer_now_ns();
    if (oip_check_request(oreq, t->model, &err) != 0) {
        reply_error(resp, reply_status_of_oip(err.code), "%s", err.message);
        return;
    }
    uint64_t t1 = infer_now_ns();
    uint64_t deadline = t->timeout_ms > 0 ? start_ns + (uint64_t)t->timeout_ms * 1000000u : 0;
    if (!infer_admit(t, deadline, resp))
        return;
    oip_response out;
    oip_response_init(&out, tl_arena);
    /* what is_cancelled reports: the earlier of the deployment's timeout_ms and the request's
     * own "timeout" parameter */
    uint64_t asked = infer_deadline(oreq);
    out.deadline_ns = deadline == 0 || (asked != 0 && asked < deadline) ? asked : deadline;
    /* and whether the client went away (looked up only when the plugin asks) */
    http_client_watch watch;
    if (client != NULL) {
        http_client_watch_init(&watch, client);
        out.client_gone = http_client_gone;
        out.client_ctx = &watch;
    }
    ds_error perr = {.code = DS_OK, .message = ""};
    bool late = false;
    uint64_t exec_ns = 0;
    ds_status st = t->batcher != NULL
                       ? infer_execute_batched(t, oreq, &out, start_ns, &perr, &late, &exec_ns)
                       : infer_execute(t, oreq, &out, start_ns, &perr, &late, &exec_ns);
    ph->batched = t->batcher != NULL;
    uint64_t t3 = infer_now_ns();
    infer_leave(t);
    if (late || (int)st == DS_STATUS_WORKER_TIMEOUT)
        infer_count_timeout(t);
    if (late) { /* in process a call cannot be interrupted: it is answered 504 when it returns */
        reply_error(resp, 504, "model %s version %s: took %llu ms, past timeout_ms (%lld ms)",
                    t->model_name, t->version,
                    (unsigned long long)((infer_now_ns() - start_ns) / 1000000u),
                    (long long)t->timeout_ms);
        return;
    }
    if (st == DS_ERR_CANCELLED)
        stats_cancelled(t->stats);
    if (st != DS_OK) {
        perr.message[sizeof perr.message - 1] = '\0';
        reply_error(resp, reply_status_of_plugin(st), "model %s version %s: %s", t->model_name,
                    t->version, perr.message[0] ? perr.message : "execute failed");
        if (st == DS_ERR_UNAVAILABLE)
            http_response_header(resp, "Retry-After", "1");
        return;
    }
    size_t json_len = 0;
    oip_spans spans = infer_spans(resp, oreq, &out);
    if (oip_check_response(&out, oreq, t->model, &err) != 0 ||
        oip_encode_response_spans(resp->body, t->model_name, t->version, oreq, &out, &json_len,
                                  spans.capacity > 0 ? &spans : NULL, &err) != 0) {
        reply_error(resp, reply_status_of_oip(err.code ? err.code : OIP_INTERNAL),
                    "model %s version %s: %s", t->model_name, t->version, err.message);
        return;
    }
    resp->status = HTTP_OK;
    if (spans.count > 0) { /* the large binary outputs go out from the arena (infer_run) */
        resp->tail = spans.spans;
        resp->tail_count = spans.count;
    }
    if (json_len < resp->body->len || spans.count > 0) {
        char n[32];
        snprintf(n, sizeof n, "%zu", json_len);
        http_response_header(resp, "Inference-Header-Content-Length", n);
        resp->content_type = "application/octet-stream";
    }
    ph->ns[PHASE_INPUT] += t1 - t0;
    ph->ns[PHASE_INFER] = exec_ns;
    ph->ns[PHASE_QUEUE] = t3 - t1 - exec_ns;
    ph->ns[PHASE_OUTPUT] = infer_now_ns() - t3;
    ph->batch_size = infer_batch_size(t, oreq);
}

static void infer_after_send(void *ctx)
{
    (void)ctx;
    infer_arena_trim();
}

/* Run a decoded request and encode its answer into resp; the arena is trimmed after, or, when
 * resp's tail points into the arena, once the server wrote the response (after_send runs on
 * this same thread, before it serves another request: nothing resets the arena before). */
static void infer_run(const deploy_target *t, const oip_request *oreq, uint64_t start_ns,
                      const http_request *client, http_response *resp, phase_sample *ph)
{
    infer_run_decoded(t, oreq, start_ns, client, resp, ph);
    if (resp->tail_count > 0)
        resp->after_send = infer_after_send;
    else
        infer_arena_trim();
}

uint64_t infer_stats_begin(const deploy_target *t)
{
    stats_begin(t->stats);
    return infer_now_ns();
}

void infer_stats_end(const deploy_target *t, uint64_t start_ns, const http_response *resp,
                     const phase_sample *ph)
{
    uint64_t total = infer_now_ns() - start_ns;
    stats_end(t->stats, total, resp->status);
    if (resp->status >= 200 && resp->status < 300 && ph != NULL)
        phase_stats_success(t->phases, total, ph);
    else
        phase_stats_fail(t->phases, total);
}

static bool infer_method_ok(const http_request *req, http_response *resp)
{
    if (strcmp(req->method, "POST") == 0)
        return true;
    reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "%s needs POST, not %s", req->path, req->method);
    http_response_header(resp, "Allow", "POST");
    return false;
}

static infer_input infer_input_of(const http_request *req)
{
    return (infer_input){.body = req->body,
                         .len = req->body_len,
                         .header_len = infer_header_length(req),
                         .routing_key = http_header(req, "X-Routing-Key"),
                         .client = req};
}

void infer_oip_input(const deploy_target *t, const infer_input *in, http_response *resp)
{
    uint64_t start = infer_stats_begin(t);
    oip_request oreq;
    phase_sample ph = {{0}, 0, false};
    if (infer_decode(in->body, in->len, in->header_len, &oreq, resp) == 0) {
        ph.ns[PHASE_INPUT] = infer_now_ns() - start;
        infer_run(t, &oreq, start, in->client, resp, &ph);
    }
    infer_stats_end(t, start, resp, &ph);
}

void infer_oip(const deploy_target *t, const http_request *req, http_response *resp)
{
    if (!infer_method_ok(req, resp)) {
        infer_stats_end(t, infer_stats_begin(t), resp, NULL);
        return;
    }
    infer_input in = infer_input_of(req);
    infer_oip_input(t, &in, resp);
}

/* Copy a routed request and its answer to the model's shadow, when this one is picked. After
 * the answer is complete: the client's response is never touched. */
static void infer_offer_shadow(deploy_model *dm, const infer_input *in, const http_response *resp)
{
    char version[REG_NAME_MAX + 1];
    if (infer_shadow == NULL || !deploy_shadow_pick(dm, version))
        return;
    shadow_copy c = {.model = deploy_model_name(dm),
                     .version = version,
                     .body = in->body,
                     .body_len = in->len,
                     .header_len = in->header_len,
                     .primary_status = resp->status,
                     .primary_body = resp->body->data ? resp->body->data : "",
                     .primary_len = resp->body->len,
                     .primary_tail = resp->tail,
                     .primary_tail_count = resp->tail_count,
                     .primary_json_len = infer_response_json_len(resp, resp->body->len)};
    shadow_offer(infer_shadow, &c); /* a full queue drops the copy (counted by shadow.c) */
}

static void infer_routed_input(deploy_model *dm, const infer_input *in, http_response *resp)
{
    uint64_t start = infer_now_ns();
    oip_request oreq;
    if (infer_decode(in->body, in->len, in->header_len, &oreq, resp) != 0)
        return;
    phase_sample ph = {{0}, 0, false};
    ph.ns[PHASE_INPUT] = infer_now_ns() - start;
    deployment *d =
        deploy_acquire_from_model(dm, in->routing_key ? in->routing_key : oreq.routing_key);
    if (d == NULL) {
        reply_error(resp, HTTP_NOT_FOUND, "model %s has no deployed version",
                    deploy_model_name(dm));
        return;
    }
    const deploy_target *t = deploy_target_of(d);
    stats_begin(t->stats); /* started before the pick: the decode counts in its latency */
    infer_run(t, &oreq, start, in->client, resp, &ph);
    infer_stats_end(t, start, resp, &ph);
    deploy_release(d);
    infer_offer_shadow(dm, in, resp);
}

void infer_oip_routed(deploy_model *dm, const http_request *req, http_response *resp)
{
    if (!infer_method_ok(req, resp))
        return;
    infer_input in = infer_input_of(req);
    infer_routed_input(dm, &in, resp);
}

void infer_oip_by_name(deploy_manager *m, const char *model, const char *version,
                       const infer_input *in, http_response *resp)
{
    if (version == NULL) {
        deploy_model *dm = deploy_model_lookup(m, model);
        if (dm == NULL)
            reply_error(resp, HTTP_NOT_FOUND, "model %s is not deployed", model);
        else
            infer_routed_input(dm, in, resp);
        return;
    }
    deployment *d = deploy_acquire(m, model, version, NULL);
    if (d == NULL) {
        reply_error(resp, HTTP_NOT_FOUND, "model %s version %s is not deployed", model, version);
        return;
    }
    infer_oip_input(deploy_target_of(d), in, resp);
    deploy_release(d);
}

void infer_run_json(const deploy_target *t, const char *body, size_t len, http_response *resp,
                    phase_sample *ph)
{
    /* /predict reads the OIP answer back from the body: no tail (it asks no binary anyway) */
    bool tail_ok = resp->tail_ok;
    resp->tail_ok = false;
    oip_request oreq;
    uint64_t start = infer_now_ns();
    if (infer_decode(body, len, (size_t)-1, &oreq, resp) == 0) {
        ph->ns[PHASE_INPUT] = infer_now_ns() - start;
        infer_run(t, &oreq, start, NULL, resp, ph);
    }
    resp->tail_ok = tail_ok;
}
