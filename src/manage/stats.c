/*
 * manage_stats: the read side of per-deployment statistics — GET /models/stats,
 * GET /deployments/<m>/<v>/stats (with histogram buckets) and GET /metrics (Prometheus). Each
 * entry has lifetime figures and "window":{"1m":{...},"5m":{...}} (stats_recent_get).
 * Snapshots are read lock-free from the live deployments; deployed_at and status come from the
 * registry, so failed deployments are listed too (with zero counts).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isotime.h"
#include "manage_internal.h"
#include "phase_stats.h"
#include "reply.h"
#include "stats.h"

/* The two recent windows of /models/stats ("1m", "5m"), read with stats_recent_get. */
#define MANAGE_WINDOWS 2
static const int manage_window_s[MANAGE_WINDOWS] = {60, 300};
static const char *const manage_window_name[MANAGE_WINDOWS] = {"1m", "5m"};

static void manage_recent_read(const ds_stats *st, stats_recent *out)
{
    for (int i = 0; i < MANAGE_WINDOWS; i++)
        stats_recent_get(st, manage_window_s[i], &out[i]);
}

/* {"1m":{...},"5m":{...}}: rate per second, 5xx share and percentiles over each window. */
static cJSON *manage_window_json(const stats_recent *recent)
{
    static const stats_recent none[MANAGE_WINDOWS] = {{0}};
    const stats_recent *r = recent ? recent : none;
    cJSON *w = cJSON_CreateObject();
    for (int i = 0; i < MANAGE_WINDOWS; i++) {
        cJSON *o = cJSON_AddObjectToObject(w, manage_window_name[i]);
        cJSON_AddNumberToObject(o, "request_rate", r[i].request_rate);
        cJSON_AddNumberToObject(o, "error_rate", r[i].error_rate);
        cJSON_AddNumberToObject(o, "p50_ms", r[i].p50_ms);
        cJSON_AddNumberToObject(o, "p95_ms", r[i].p95_ms);
        cJSON_AddNumberToObject(o, "p99_ms", r[i].p99_ms);
        cJSON_AddNumberToObject(o, "request_count", (double)r[i].request_count);
        cJSON_AddNumberToObject(o, "error_count", (double)r[i].error_count);
        cJSON_AddNumberToObject(o, "window_s", recent ? r[i].window_s : manage_window_s[i]);
    }
    return w;
}

/* Triton's execution counts of a deployment, for its stats entry: {"inference_count",
 * "execution_count", "batch_sizes":{"<rows>": executions}} (dynamic batching makes
 * execution_count < inference_count). `phases` NULL: zeros (not live). Caller owns the result. */
static cJSON *manage_batch_json(const ds_phase_stats *phases)
{
    phase_snapshot ph; /* ~4 KiB, on the stack for the call */
    if (phases != NULL)
        phase_stats_snapshot(phases, &ph);
    else
        memset(&ph, 0, sizeof ph);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "inference_count", (double)ph.inference_count);
    cJSON_AddNumberToObject(o, "execution_count", (double)ph.execution_count);
    cJSON *sizes = cJSON_AddObjectToObject(o, "batch_sizes");
    for (size_t i = 0; i < ph.batch_count; i++) {
        char key[24];
        snprintf(key, sizeof key, "%llu", (unsigned long long)ph.batch[i].batch_size);
        cJSON_AddNumberToObject(sizes, key, (double)ph.batch[i].infer.count);
    }
    return o;
}

/* Move the fields of manage_batch_json's object `b` (consumed; NULL = zeros) into `o`. */
static void manage_add_batch(cJSON *o, cJSON *b)
{
    if (b == NULL)
        b = manage_batch_json(NULL);
    while (b->child != NULL) {
        cJSON *f = cJSON_DetachItemViaPointer(b, b->child);
        cJSON_AddItemToObject(o, f->string, f);
    }
    cJSON_Delete(b);
}

/* The stats object of one deployment; snap and recent NULL for one that is not live (failed). */
static cJSON *manage_stats_json(const reg_deployment *d, const stats_snapshot *snap,
                                const stats_recent *recent, int weight)
{
    static const stats_snapshot none = {0};
    const stats_snapshot *s = snap ? snap : &none;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", d->model_name);
    cJSON_AddStringToObject(o, "version", d->version);
    cJSON_AddNumberToObject(o, "request_count", (double)s->request_count);
    cJSON_AddNumberToObject(o, "error_count", (double)s->error_count);
    cJSON_AddNumberToObject(o, "error_4xx", (double)s->error_4xx);
    cJSON_AddNumberToObject(o, "error_5xx", (double)s->error_5xx);
    cJSON_AddNumberToObject(o, "avg_latency_ms", s->avg_latency_ms);
    cJSON_AddNumberToObject(o, "p50_ms", s->p50_ms);
    cJSON_AddNumberToObject(o, "p95_ms", s->p95_ms);
    cJSON_AddNumberToObject(o, "p99_ms", s->p99_ms);
    cJSON_AddNumberToObject(o, "in_flight", (double)s->in_flight);
    cJSON_AddNumberToObject(o, "rate_limited", (double)s->rate_limited);
    cJSON_AddNumberToObject(o, "cancelled", (double)s->cancelled);
    if (s->last_request_unix_ms > 0) {
        char at[32];
        iso_time_format((time_t)(s->last_request_unix_ms / 1000), at, sizeof at);
        cJSON_AddStringToObject(o, "last_request_at", at);
    } else {
        cJSON_AddNullToObject(o, "last_request_at");
    }
    cJSON_AddStringToObject(o, "deployed_at", d->deployed_at);
    cJSON_AddStringToObject(o, "status", d->status);
    if (weight >= 0)
        cJSON_AddNumberToObject(o, "traffic_weight", weight);
    cJSON_AddItemToObject(o, "window", manage_window_json(recent));
    return o;
}

/* Live snapshots by deployment id, gathered in one pass over the deployment manager. */
typedef struct live_stats {
    int64_t *ids;
    stats_snapshot *snaps;
    stats_recent (*recent)[MANAGE_WINDOWS];
    int *weights;
    cJSON **batch; /* manage_batch_json of each, moved into its row (or freed) */
    size_t count, cap;
} live_stats;

static void manage_collect_live(void *ud, const deploy_target *t, int weight)
{
    live_stats *l = ud;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        int64_t *ids = realloc(l->ids, cap * sizeof *ids);
        if (ids)
            l->ids = ids;
        stats_snapshot *snaps = ids ? realloc(l->snaps, cap * sizeof *snaps) : NULL;
        if (snaps)
            l->snaps = snaps;
        stats_recent(*recent)[MANAGE_WINDOWS] =
            snaps ? realloc(l->recent, cap * sizeof *recent) : NULL;
        if (recent)
            l->recent = recent;
        int *weights = recent ? realloc(l->weights, cap * sizeof *weights) : NULL;
        if (weights)
            l->weights = weights;
        cJSON **batch = weights ? realloc(l->batch, cap * sizeof *batch) : NULL;
        if (batch == NULL)
            return; /* out of memory: the entry shows zeros rather than failing the page */
        l->batch = batch;
        l->cap = cap;
    }
    l->batch[l->count] = manage_batch_json(t->phases);
    l->ids[l->count] = t->deployment_id;
    l->weights[l->count] = weight;
    manage_recent_read(t->stats, l->recent[l->count]);
    stats_snapshot_get(t->stats, &l->snaps[l->count++]);
}

typedef struct stats_page {
    manage_ctx *s;
    live_stats live;
    cJSON *list;
} stats_page;

/* Deadlines passed, requests refused and the worker process of a live deployment. */
static void manage_stats_runtime(manage_ctx *s, cJSON *o, const char *model, const char *version)
{
    deploy_runtime rt;
    if (!deploy_runtime_get(s->deploy, model, version, &rt))
        return;
    if (strcmp(rt.status, "active") != 0)
        cJSON_ReplaceItemInObject(o, "status", cJSON_CreateString(rt.status));
    manage_worker_json(o, &rt);
}

static int manage_add_stats_row(void *ud, const reg_deployment *d)
{
    stats_page *p = ud;
    for (size_t i = 0; i < p->live.count; i++)
        if (p->live.ids[i] == d->id) {
            /* Only the row here: this runs under the registry's lock, and the runtime view
             * (manage_stats_all, after the read) takes the deploy manager's locks, which are
             * taken before the registry's on deploy. */
            cJSON *o =
                manage_stats_json(d, &p->live.snaps[i], p->live.recent[i], p->live.weights[i]);
            manage_add_batch(o, p->live.batch[i]);
            p->live.batch[i] = NULL;
            cJSON_AddItemToArray(p->list, o);
            return 0;
        }
    cJSON *o = manage_stats_json(d, NULL, NULL, -1);
    manage_add_batch(o, NULL);
    cJSON_AddItemToArray(p->list, o);
    return 0;
}

/* ---- lifetime totals per version ------------------------------------------------------------ */

/* {"model_name","version","request_count","error_count","error_4xx","error_5xx",
 * "avg_latency_ms","last_request_at","deployed"}: one version's totals over all its
 * deployments, ended (from the registry) and live (their counters). */
static cJSON *manage_version_entry(cJSON *list, const char *model, const char *version)
{
    cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model_name");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
        if (strcmp(m->valuestring, model) == 0 && strcmp(v->valuestring, version) == 0)
            return o;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", model);
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddNumberToObject(o, "request_count", 0);
    cJSON_AddNumberToObject(o, "error_4xx", 0);
    cJSON_AddNumberToObject(o, "error_5xx", 0);
    cJSON_AddNumberToObject(o, "latency_sum_ms", 0);
    cJSON_AddNumberToObject(o, "last_request_ms", 0);
    cJSON_AddBoolToObject(o, "deployed", false);
    cJSON_AddItemToArray(list, o);
    return o;
}

static void manage_version_add(cJSON *o, const char *key, double v, bool max)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    double sum = max ? (v > n->valuedouble ? v : n->valuedouble) : n->valuedouble + v;
    cJSON_SetNumberValue(n, sum);
}

static void manage_version_totals(cJSON *o, const reg_stats *t)
{
    manage_version_add(o, "request_count", (double)t->request_count, false);
    manage_version_add(o, "error_4xx", (double)t->error_4xx, false);
    manage_version_add(o, "error_5xx", (double)t->error_5xx, false);
    manage_version_add(o, "latency_sum_ms", t->latency_sum_ms, false);
    manage_version_add(o, "last_request_ms", (double)t->last_request_unix_ms, true);
}

static int manage_collect_ended(void *ud, const char *model, const char *version,
                                const reg_stats *totals)
{
    manage_version_totals(manage_version_entry(ud, model, version), totals);
    return 0;
}

static void manage_collect_live_totals(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    stats_snapshot s;
    stats_snapshot_get(t->stats, &s);
    reg_stats r = {.request_count = s.request_count,
                   .error_4xx = s.error_4xx,
                   .error_5xx = s.error_5xx,
                   .latency_sum_ms = s.latency_sum_ms,
                   .last_request_unix_ms = s.last_request_unix_ms};
    cJSON *o = manage_version_entry(ud, t->model_name, t->version);
    manage_version_totals(o, &r);
    cJSON_ReplaceItemInObject(o, "deployed", cJSON_CreateTrue());
}

/* Turn the sums into the published fields (error_count, avg_latency_ms, last_request_at). */
static void manage_version_finish(cJSON *list)
{
    cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        double n = cJSON_GetObjectItemCaseSensitive(o, "request_count")->valuedouble;
        double e = cJSON_GetObjectItemCaseSensitive(o, "error_4xx")->valuedouble +
                   cJSON_GetObjectItemCaseSensitive(o, "error_5xx")->valuedouble;
        double lat = cJSON_GetObjectItemCaseSensitive(o, "latency_sum_ms")->valuedouble;
        double last = cJSON_GetObjectItemCaseSensitive(o, "last_request_ms")->valuedouble;
        cJSON_DeleteItemFromObject(o, "latency_sum_ms");
        cJSON_DeleteItemFromObject(o, "last_request_ms");
        cJSON_AddNumberToObject(o, "error_count", e);
        cJSON_AddNumberToObject(o, "avg_latency_ms", n > 0 ? lat / n : 0);
        if (last > 0) {
            char at[32];
            iso_time_format((time_t)((int64_t)last / 1000), at, sizeof at);
            cJSON_AddStringToObject(o, "last_request_at", at);
        } else {
            cJSON_AddNullToObject(o, "last_request_at");
        }
    }
}

/* "versions": lifetime totals per version across redeploys (issue 11). */
static reg_status manage_versions_json(manage_ctx *s, cJSON *root, char *err, size_t errlen)
{
    cJSON *list = cJSON_AddArrayToObject(root, "versions");
    reg_status rs =
        registry_stats_ended_by_version(s->reg, manage_collect_ended, list, err, errlen);
    deploy_foreach(s->deploy, manage_collect_live_totals, list);
    manage_version_finish(list);
    return rs;
}

/* "rate_limited": {"client": anonymous requests refused by --rate-limit (per address), "token":
 * authenticated ones (per token or JWT subject)}; the per-deployment counts are in each row. */
static void manage_rate_limited_json(manage_ctx *s, cJSON *root)
{
    http_stats h = {0};
    if (s->http != NULL)
        http_get_stats(s->http, &h);
    cJSON *o = cJSON_AddObjectToObject(root, "rate_limited");
    cJSON_AddNumberToObject(o, "client", (double)h.rate_limited);
    cJSON_AddNumberToObject(o, "token", (double)h.rate_limited_principal);
}

void manage_stats_all(manage_ctx *s, http_response *resp)
{
    stats_page page = {.s = s};
    deploy_foreach(s->deploy, manage_collect_live, &page.live);
    cJSON *root = cJSON_CreateObject();
    page.list = cJSON_AddArrayToObject(root, "stats");
    char err[256];
    reg_status rs = registry_deployment_list(s->reg, manage_add_stats_row, &page, err, sizeof err);
    free(page.live.ids);
    free(page.live.snaps);
    free(page.live.recent);
    free(page.live.weights);
    for (size_t i = 0; i < page.live.count; i++)
        cJSON_Delete(page.live.batch[i]); /* rows the registry did not list */
    free(page.live.batch);
    cJSON *o;
    cJSON_ArrayForEach(o, page.list)
    {
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(o, "status"));
        const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(o, "model_name"));
        const char *version = cJSON_GetStringValue(cJSON_GetObjectItem(o, "version"));
        if (status && model && version && strcmp(status, "active") == 0)
            manage_stats_runtime(s, o, model, version);
    }
    if (rs == REG_OK)
        rs = manage_versions_json(s, root, err, sizeof err);
    if (rs != REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    manage_rate_limited_json(s, root);
    reply_json(resp, HTTP_OK, root);
}

typedef struct find_row {
    const char *model, *version;
    reg_deployment row;
    bool found;
} find_row;

static int manage_find_row(void *ud, const reg_deployment *d)
{
    find_row *f = ud;
    if (strcmp(d->model_name, f->model) != 0 || strcmp(d->version, f->version) != 0)
        return 0;
    f->row = *d;
    f->row.status_reason = NULL; /* borrowed from the callback; not needed here */
    f->row.options = NULL;
    f->found = true;
    return 1;
}

static cJSON *manage_histogram_json(const ds_stats *st)
{
    size_t n = stats_bucket_count();
    uint64_t *counts = calloc(n, sizeof *counts);
    cJSON *buckets = cJSON_CreateArray();
    if (counts == NULL)
        return buckets;
    stats_buckets(st, counts, n);
    for (size_t i = 0; i < n; i++) {
        if (counts[i] == 0)
            continue; /* the histogram has hundreds of buckets; list the used ones */
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "le_ms", stats_bucket_upper_ms(i));
        cJSON_AddNumberToObject(b, "count", (double)counts[i]);
        cJSON_AddItemToArray(buckets, b);
    }
    free(counts);
    return buckets;
}

void manage_stats_one(manage_ctx *s, const char *model, const char *version, http_response *resp)
{
    find_row f = {.model = model, .version = version};
    char err[256];
    registry_deployment_list(s->reg, manage_find_row, &f, err, sizeof err);
    if (!f.found) {
        reply_error(resp, HTTP_NOT_FOUND, "model %s version %s is not deployed", model, version);
        return;
    }
    deployment *d = deploy_acquire(s->deploy, model, version, NULL);
    stats_snapshot snap;
    stats_recent recent[MANAGE_WINDOWS];
    if (d != NULL) {
        stats_snapshot_get(deploy_target_of(d)->stats, &snap);
        manage_recent_read(deploy_target_of(d)->stats, recent);
    }
    cJSON *o = manage_stats_json(&f.row, d ? &snap : NULL, d ? recent : NULL, -1);
    manage_add_batch(o, manage_batch_json(d ? deploy_target_of(d)->phases : NULL));
    if (d != NULL)
        manage_stats_runtime(s, o, model, version); /* isolation, limits, worker, load */
    cJSON_AddItemToObject(o, "histogram",
                          d ? manage_histogram_json(deploy_target_of(d)->stats)
                            : cJSON_CreateArray());
    deploy_release(d);
    reply_json(resp, HTTP_OK, o);
}
