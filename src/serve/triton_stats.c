/* triton_stats: Triton-shaped statistics documents. See triton_stats.h. */
#include "triton_stats.h"

#include <inttypes.h>
#include <string.h>

#include "reply.h"

static void ts_duration(ds_buf *out, const char *key, const phase_duration *d, bool comma)
{
    buf_printf(out, "%s\"%s\":{\"count\":%" PRIu64 ",\"ns\":%" PRIu64 "}", comma ? "," : "", key,
               d->count, d->ns);
}

static void ts_inference_stats(ds_buf *out, const phase_snapshot *ph)
{
    static const phase_duration zero = {0, 0};
    buf_append_str(out, "\"inference_stats\":{");
    ts_duration(out, "success", &ph->success, false);
    ts_duration(out, "fail", &ph->fail, true);
    ts_duration(out, "queue", &ph->phase[PHASE_QUEUE], true);
    ts_duration(out, "compute_input", &ph->phase[PHASE_INPUT], true);
    ts_duration(out, "compute_infer", &ph->phase[PHASE_INFER], true);
    ts_duration(out, "compute_output", &ph->phase[PHASE_OUTPUT], true);
    ts_duration(out, "cache_hit", &zero, true); /* no response cache */
    ts_duration(out, "cache_miss", &zero, true);
    buf_append_char(out, '}');
}

static void ts_batch_stats(ds_buf *out, const phase_snapshot *ph)
{
    buf_append_str(out, "\"batch_stats\":[");
    for (size_t i = 0; i < ph->batch_count; i++) {
        const phase_batch *b = &ph->batch[i];
        buf_printf(out, "%s{\"batch_size\":%" PRIu64 ",", i ? "," : "", b->batch_size);
        ts_duration(out, "compute_input", &b->input, false);
        ts_duration(out, "compute_infer", &b->infer, true);
        ts_duration(out, "compute_output", &b->output, true);
        buf_append_char(out, '}');
    }
    buf_append_char(out, ']');
}

static void ts_extras(ds_buf *out, const stats_snapshot *s, const phase_snapshot *ph,
                      const char *deployed_at, int traffic_weight)
{
    buf_printf(out,
               ",\"request_count\":%" PRIu64 ",\"error_count\":%" PRIu64
               ",\"avg_latency_ms\":%.6g,\"p50_ms\":%.6g,\"p95_ms\":%.6g,\"p99_ms\":%.6g"
               ",\"in_flight\":%" PRId64 ",\"deployed_at\":",
               s->request_count, s->error_count, s->avg_latency_ms, s->p50_ms, s->p95_ms,
               s->p99_ms, s->in_flight);
    if (deployed_at != NULL && deployed_at[0] != '\0')
        buf_append_json_string(out, deployed_at, strlen(deployed_at));
    else
        buf_append_str(out, "null");
    if (traffic_weight >= 0)
        buf_printf(out, ",\"traffic_weight\":%d", traffic_weight);
    else
        buf_append_str(out, ",\"traffic_weight\":null");
    buf_printf(out,
               ",\"shadow_count\":%" PRIu64 ",\"mismatch_count\":%" PRIu64
               ",\"shadow_dropped\":%" PRIu64,
               ph->shadow_count, ph->shadow_mismatch_count, ph->shadow_dropped);
}

void triton_stats_append(ds_buf *out, const char *model, const char *version,
                         const stats_snapshot *snap, const phase_snapshot *ph,
                         const char *deployed_at, int traffic_weight)
{
    buf_append_str(out, "{\"name\":");
    buf_append_json_string(out, model, strlen(model));
    buf_append_str(out, ",\"version\":");
    buf_append_json_string(out, version, strlen(version));
    buf_printf(out,
               ",\"last_inference\":%" PRId64 ",\"inference_count\":%" PRIu64
               ",\"execution_count\":%" PRIu64 ",",
               snap->last_request_unix_ms, ph->inference_count, ph->execution_count);
    ts_inference_stats(out, ph);
    buf_append_str(out, ",\"response_stats\":{},");
    ts_batch_stats(out, ph);
    buf_append_str(out, ",\"memory_usage\":[]");
    ts_extras(out, snap, ph, deployed_at, traffic_weight);
    buf_append_char(out, '}');
}

typedef struct ts_walk {
    const char *model, *version;
    ds_buf *out;
    size_t rows;
} ts_walk;

static void ts_visit(void *ud, const deploy_target *t, int weight)
{
    ts_walk *w = ud;
    if (w->model != NULL && strcmp(t->model_name, w->model) != 0)
        return;
    if (w->version != NULL && strcmp(t->version, w->version) != 0)
        return;
    stats_snapshot snap;
    phase_snapshot ph;
    stats_snapshot_live(t->stats, &snap);
    phase_stats_snapshot(t->phases, &ph);
    if (w->rows++ > 0)
        buf_append_char(w->out, ',');
    triton_stats_append(w->out, t->model_name, t->version, &snap, &ph, t->deployed_at, weight);
}

void triton_stats_reply(deploy_manager *m, const http_request *req, const char *model,
                        const char *version, http_response *resp)
{
    if (!reply_method_is(req, "GET")) {
        reply_bad_method(req, resp, "GET, HEAD");
        return;
    }
    ts_walk w = {.model = model, .version = version, .out = resp->body};
    buf_append_str(resp->body, "{\"model_stats\":[");
    deploy_foreach(m, ts_visit, &w);
    buf_append_str(resp->body, "]}");
    if (w.rows == 0 && model != NULL) {
        if (version != NULL)
            reply_error(resp, HTTP_NOT_FOUND, "model %s version %s is not deployed", model, version);
        else
            reply_error(resp, HTTP_NOT_FOUND, "model %s is not deployed", model);
        return;
    }
    resp->status = HTTP_OK;
}
