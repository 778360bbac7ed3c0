/* guard: the canary rollback rule. See guard.h. */
#include "guard.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

void guard_json(const deploy_guard *g, ds_buf *out)
{
    if (!g->enabled) {
        buf_append_str(out, "null");
        return;
    }
    buf_printf(out,
               "{\"max_error_rate\":%.6g,\"max_p99_ratio\":%.6g,\"min_requests\":%llu,"
               "\"window_s\":%d,\"state\":\"%s\",\"reason\":",
               g->max_error_rate, g->max_p99_ratio, (unsigned long long)g->min_requests,
               g->window_s, g->tripped ? "tripped" : "armed");
    buf_append_json_string(out, g->reason, strlen(g->reason));
    buf_append_char(out, '}');
}

/* Every member is one guard_parse knows. */
static bool guard_fields_known(const cJSON *g, char *err, size_t errlen)
{
    static const char *const known[] = {
        "max_error_rate", "max_p99_ratio", "min_requests", "window_s", "state", "reason", NULL};
    for (const cJSON *f = g->child; f; f = f->next) {
        const char *const *k = known;
        while (*k && strcmp(*k, f->string) != 0)
            k++;
        if (*k == NULL) {
            snprintf(err, errlen, "unknown guard field \"%s\"", f->string);
            return false;
        }
    }
    return true;
}

int guard_parse(const char *json, deploy_guard *out, char *err, size_t errlen)
{
    cJSON *g = cJSON_Parse(json);
    *out =
        (deploy_guard){.enabled = true, .max_error_rate = 1.0, .min_requests = 100, .window_s = 30};
    int rc = -1;
    if (!cJSON_IsObject(g)) {
        snprintf(err, errlen, "\"guard\" must be an object");
        goto done;
    }
    if (!guard_fields_known(g, err, errlen))
        goto done;
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(g, "max_error_rate");
    const cJSON *ratio = cJSON_GetObjectItemCaseSensitive(g, "max_p99_ratio");
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(g, "min_requests");
    const cJSON *window = cJSON_GetObjectItemCaseSensitive(g, "window_s");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(g, "state");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(g, "reason");
    if ((rate && (!cJSON_IsNumber(rate) || rate->valuedouble < 0 || rate->valuedouble > 1)) ||
        (ratio && (!cJSON_IsNumber(ratio) || ratio->valuedouble < 0)) ||
        (min && (!cJSON_IsNumber(min) || min->valuedouble < 1 || min->valuedouble > 1e9)) ||
        (window && (!cJSON_IsNumber(window) || window->valueint < 1 || window->valueint > 60))) {
        snprintf(err, errlen,
                 "guard: max_error_rate 0..1, max_p99_ratio >= 0, min_requests "
                 ">= 1 and window_s 1..60");
        goto done;
    }
    if (rate)
        out->max_error_rate = rate->valuedouble;
    if (ratio)
        out->max_p99_ratio = ratio->valuedouble;
    if (min)
        out->min_requests = (uint64_t)min->valuedouble;
    if (window)
        out->window_s = window->valueint;
    out->tripped = cJSON_IsString(state) && strcmp(state->valuestring, "tripped") == 0;
    if (cJSON_IsString(reason))
        snprintf(out->reason, sizeof out->reason, "%s", reason->valuestring);
    rc = 0;
done:
    cJSON_Delete(g);
    return rc;
}

bool guard_breached(const deploy_guard *g, const stats_window_view *c, const stats_window_view *b,
                    const char *canary_version, const char *baseline_version, char *reason,
                    size_t len)
{
    if (c->request_count < g->min_requests)
        return false;
    double rate = (double)c->error_count / (double)c->request_count;
    double ratio = b->p99_ms > 0 ? c->p99_ms / b->p99_ms : 0;
    if (rate > g->max_error_rate) {
        snprintf(reason, len,
                 "version %s error rate %.4f > %.4f over %d s (%llu requests, %llu errors)",
                 canary_version, rate, g->max_error_rate, g->window_s,
                 (unsigned long long)c->request_count, (unsigned long long)c->error_count);
        return true;
    }
    if (g->max_p99_ratio > 0 && ratio > g->max_p99_ratio) {
        snprintf(reason, len,
                 "version %s p99 %.3f ms is %.2fx baseline %s p99 %.3f ms > %.2fx over %d s",
                 canary_version, c->p99_ms, ratio, baseline_version, b->p99_ms, g->max_p99_ratio,
                 g->window_s);
        return true;
    }
    return false;
}
