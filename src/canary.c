/* canary: traffic splits and the rollback guard. See canary.h. */
#include "canary.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy_internal.h"
#include "log.h"

/* ---- JSON forms of a split and a guard -------------------------------------------------- */

/* {"<version>": weight, ...} of the live versions (caller holds lifecycle). */
static void canary_weights_json(const deploy_model *dm, ds_buf *out)
{
    buf_append_char(out, '{');
    for (size_t i = 0; i < dm->count; i++) {
        if (i)
            buf_append_char(out, ',');
        buf_append_json_string(out, dm->versions[i]->version, strlen(dm->versions[i]->version));
        buf_printf(out, ":%d", dm->versions[i]->weight);
    }
    buf_append_char(out, '}');
}

static void canary_guard_json(const canary_guard *g, ds_buf *out)
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

int canary_guard_parse(const char *json, canary_guard *out, char *err, size_t errlen)
{
    cJSON *g = cJSON_Parse(json);
    *out =
        (canary_guard){.enabled = true, .max_error_rate = 1.0, .min_requests = 100, .window_s = 30};
    int rc = -1;
    static const char *const known[] = {
        "max_error_rate", "max_p99_ratio", "min_requests", "window_s", "state", "reason", NULL};
    if (!cJSON_IsObject(g)) {
        snprintf(err, errlen, "\"guard\" must be an object");
        goto done;
    }
    for (const cJSON *f = g->child; f; f = f->next) {
        const char *const *k = known;
        while (*k && strcmp(*k, f->string) != 0)
            k++;
        if (*k == NULL) {
            snprintf(err, errlen, "unknown guard field \"%s\"", f->string);
            goto done;
        }
    }
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

/* ---- applying a split -------------------------------------------------------------------------
 */

void canary_persist(deploy_manager *m, deploy_model *dm, const char *reason)
{
    ds_buf weights = DS_BUF_INIT, guard = DS_BUF_INIT;
    char err[256];
    reg_status rs;
    if (!dm->has_split) {
        rs = registry_traffic_clear(m->env.reg, dm->name, err, sizeof err);
    } else {
        canary_weights_json(dm, &weights);
        canary_guard_json(&dm->guard, &guard);
        rs = registry_traffic_set(m->env.reg, dm->name, weights.data,
                                  dm->guard.enabled ? guard.data : NULL, reason, err, sizeof err);
    }
    if (rs != REG_OK && rs != REG_NOT_FOUND)
        log_error("storing the traffic split of %s: %s", dm->name, err);
    buf_free(&weights);
    buf_free(&guard);
}

/* Swap in new weights (aligned with dm->versions) under the write lock. */
static void canary_apply(deploy_model *dm, const int *weights, bool has_split)
{
    pthread_rwlock_wrlock(&dm->lock);
    for (size_t i = 0; i < dm->count; i++)
        dm->versions[i]->weight = has_split ? weights[i] : 0;
    dm->has_split = has_split;
    pthread_rwlock_unlock(&dm->lock);
}

/* Validate {versions: weights} against the live versions into aligned[] (lifecycle held). */
static deploy_result canary_align(const deploy_model *dm, const char *const *versions,
                                  const int *weights, size_t n, int *aligned)
{
    int sum = 0;
    memset(aligned, 0, dm->count * sizeof *aligned);
    for (size_t i = 0; i < n; i++) {
        ssize_t at = deploy_model_index(dm, versions[i]);
        if (at < 0)
            return deploy_fail(409, "%s version %s is not deployed", dm->name, versions[i]);
        if (weights[i] < 0 || weights[i] > 100)
            return deploy_fail(400, "weight of version %s must be 0..100", versions[i]);
        aligned[at] = weights[i];
        sum += weights[i];
    }
    if (sum != 100)
        return deploy_fail(400, "weights must sum to 100, not %d", sum);
    return (deploy_result){.status = 200};
}

deploy_result canary_set(deploy_manager *m, const char *model, const char *const *versions,
                         const int *weights, size_t n, const canary_guard *guard,
                         const char *reason)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL || n == 0)
        return deploy_fail(dm ? 400 : 404,
                           dm ? "give at least one version" : "model %s has no deployed version",
                           model);
    pthread_mutex_lock(&dm->lifecycle);
    int *aligned = calloc(dm->count + 1, sizeof *aligned);
    deploy_result r = aligned ? canary_align(dm, versions, weights, n, aligned)
                              : deploy_fail(500, "out of memory");
    if (r.status == 200) {
        canary_apply(dm, aligned, true);
        dm->guard = guard ? *guard : (canary_guard){0};
        dm->guard.tripped = false;
        dm->guard.reason[0] = '\0';
        canary_persist(m, dm, reason);
        log_info("traffic split of %s changed (%s)", model, reason);
    }
    free(aligned);
    pthread_mutex_unlock(&dm->lifecycle);
    return r;
}

deploy_result canary_promote(deploy_manager *m, const char *model, const char *version)
{
    const char *versions[] = {version};
    const int weights[] = {100};
    return canary_set(m, model, versions, weights, 1, NULL, "promote");
}

/* Apply a stored split to the live versions, renormalizing over those still live. Returns
 * false when none of its versions is live (lifecycle held). */
static bool canary_apply_stored(deploy_model *dm, const char *weights_json)
{
    cJSON *w = cJSON_Parse(weights_json);
    int *aligned = calloc(dm->count + 1, sizeof *aligned);
    int sum = 0;
    for (const cJSON *f = w ? w->child : NULL; f && aligned; f = f->next) {
        ssize_t at = deploy_model_index(dm, f->string);
        if (at >= 0 && cJSON_IsNumber(f) && f->valueint > 0) {
            aligned[at] = f->valueint;
            sum += f->valueint;
        }
    }
    if (sum > 0 && sum != 100) { /* some versions are gone: scale the rest back to 100 */
        int total = 0, largest = 0;
        for (size_t i = 0; i < dm->count; i++) {
            aligned[i] = aligned[i] * 100 / sum;
            total += aligned[i];
            if (aligned[i] > aligned[largest])
                largest = (int)i;
        }
        aligned[largest] += 100 - total;
    }
    if (sum > 0)
        canary_apply(dm, aligned, true);
    free(aligned);
    cJSON_Delete(w);
    return sum > 0;
}

deploy_result canary_rollback(deploy_manager *m, const char *model)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return deploy_fail(404, "model %s has no deployed version", model);
    pthread_mutex_lock(&dm->lifecycle);
    char *weights = NULL, *guard = NULL, err[256];
    reg_status rs = registry_traffic_rollback(m->env.reg, model, &weights, &guard, err, sizeof err);
    deploy_result r = {.status = 200};
    if (rs != REG_OK) {
        r = deploy_fail(rs == REG_NOT_FOUND ? 404 : 500, "no earlier traffic split of %s: %s",
                        model, err);
    } else {
        if (!canary_apply_stored(dm, weights))
            canary_apply(dm, NULL, false);
        char gerr[128];
        if (guard == NULL || canary_guard_parse(guard, &dm->guard, gerr, sizeof gerr) != 0)
            dm->guard = (canary_guard){0};
        log_info("traffic split of %s rolled back", model);
    }
    free(weights);
    free(guard);
    pthread_mutex_unlock(&dm->lifecycle);
    return r;
}

/* ---- deployment manager hooks -----------------------------------------------------------------
 */

void canary_on_removed_locked(deploy_model *dm, int removed_weight)
{
    if (!dm->has_split)
        return;
    int rest = 0;
    for (size_t i = 0; i < dm->count; i++)
        rest += dm->versions[i]->weight;
    if (dm->count == 0 || (rest == 0 && removed_weight == 100)) {
        dm->has_split = false; /* nothing left to split: newest version takes all */
        return;
    }
    int given = 0, largest = 0;
    for (size_t i = 0; i < dm->count; i++) {
        int w = dm->versions[i]->weight;
        int share = rest > 0 ? removed_weight * w / rest : removed_weight / (int)dm->count;
        dm->versions[i]->weight = w + share;
        given += share;
        if (dm->versions[i]->weight > dm->versions[largest]->weight)
            largest = (int)i;
    }
    dm->versions[largest]->weight += removed_weight - given; /* rounding remainder */
}

typedef struct model_list {
    deploy_model **items;
    size_t count;
} model_list;

/* Model entries are never freed before the manager, so the pointers stay valid. */
static model_list canary_models(deploy_manager *m)
{
    model_list l = {0};
    pthread_rwlock_rdlock(&m->index_lock);
    size_t n = 0;
    for (size_t b = 0; b < DEPLOY_BUCKETS; b++)
        for (deploy_model *dm = m->models[b]; dm; dm = dm->next)
            n++;
    l.items = calloc(n + 1, sizeof *l.items);
    for (size_t b = 0; b < DEPLOY_BUCKETS && l.items; b++)
        for (deploy_model *dm = m->models[b]; dm; dm = dm->next)
            l.items[l.count++] = dm;
    pthread_rwlock_unlock(&m->index_lock);
    return l;
}

void canary_restore(deploy_manager *m)
{
    model_list l = canary_models(m);
    for (size_t i = 0; i < l.count; i++) {
        deploy_model *dm = l.items[i];
        char *weights = NULL, *guard = NULL, err[256];
        pthread_mutex_lock(&dm->lifecycle);
        if (dm->count > 0 && registry_traffic_get(m->env.reg, dm->name, &weights, &guard, err,
                                                  sizeof err) == REG_OK) {
            canary_apply_stored(dm, weights);
            if (guard == NULL || canary_guard_parse(guard, &dm->guard, err, sizeof err) != 0)
                dm->guard = (canary_guard){0};
        }
        pthread_mutex_unlock(&dm->lifecycle);
        free(weights);
        free(guard);
    }
    free(l.items);
}

/* ---- the guard --------------------------------------------------------------------------------
 */

/* Check one canary against the baseline; true (and reason written) when it must lose traffic. */
static bool canary_breached(const canary_guard *g, const deployment *canary,
                            const deployment *baseline, char *reason, size_t len)
{
    stats_window_view c, b;
    stats_window(canary->t.stats, g->window_s, &c);
    stats_window(baseline->t.stats, g->window_s, &b);
    if (c.request_count < g->min_requests)
        return false;
    double rate = (double)c.error_count / (double)c.request_count;
    double ratio = b.p99_ms > 0 ? c.p99_ms / b.p99_ms : 0;
    if (rate > g->max_error_rate) {
        snprintf(reason, len,
                 "version %s error rate %.4f > %.4f over %d s (%llu requests, %llu errors)",
                 canary->version, rate, g->max_error_rate, g->window_s,
                 (unsigned long long)c.request_count, (unsigned long long)c.error_count);
        return true;
    }
    if (g->max_p99_ratio > 0 && ratio > g->max_p99_ratio) {
        snprintf(reason, len,
                 "version %s p99 %.3f ms is %.2fx baseline %s p99 %.3f ms > %.2fx over %d s",
                 canary->version, c.p99_ms, ratio, baseline->version, b.p99_ms, g->max_p99_ratio,
                 g->window_s);
        return true;
    }
    return false;
}

/* Evaluate one model's guard (lifecycle held). */
static void canary_guard_check(deploy_manager *m, deploy_model *dm)
{
    if (!dm->guard.enabled || dm->guard.tripped || !dm->has_split || dm->count < 2)
        return;
    /* Baseline: the largest weight; on a tie the older version (versions are newest first),
     * because that is the one that served before the canary arrived. */
    size_t base = 0;
    for (size_t i = 1; i < dm->count; i++)
        if (dm->versions[i]->weight >= dm->versions[base]->weight)
            base = i;
    for (size_t i = 0; i < dm->count; i++) {
        deployment *c = dm->versions[i];
        char reason[256];
        if (i == base || c->weight == 0 ||
            !canary_breached(&dm->guard, c, dm->versions[base], reason, sizeof reason))
            continue;
        pthread_rwlock_wrlock(&dm->lock);
        dm->versions[base]->weight += c->weight;
        c->weight = 0;
        pthread_rwlock_unlock(&dm->lock);
        dm->guard.tripped = true;
        snprintf(dm->guard.reason, sizeof dm->guard.reason, "%s", reason);
        log_warn("canary guard of %s: %s; its traffic goes to version %s", dm->name, reason,
                 dm->versions[base]->version);
        deploy_event(m, "guard_rollback", dm->name, c->version, reason);
        canary_persist(m, dm, "guard rollback");
        return;
    }
}

void canary_tick(deploy_manager *m)
{
    model_list l = canary_models(m);
    for (size_t i = 0; i < l.count; i++) {
        /* Never wait behind a deploy's dlopen: a busy model is checked next second. */
        if (pthread_mutex_trylock(&l.items[i]->lifecycle) != 0)
            continue;
        canary_guard_check(m, l.items[i]);
        pthread_mutex_unlock(&l.items[i]->lifecycle);
    }
    free(l.items);
}

void canary_describe(deploy_manager *m, ds_buf *out)
{
    model_list l = canary_models(m);
    bool first = true;
    buf_append_char(out, '[');
    for (size_t i = 0; i < l.count; i++) {
        deploy_model *dm = l.items[i];
        pthread_mutex_lock(&dm->lifecycle);
        if (dm->has_split) {
            buf_append_str(out, first ? "{\"model_name\":" : ",{\"model_name\":");
            buf_append_json_string(out, dm->name, strlen(dm->name));
            buf_append_str(out, ",\"weights\":");
            canary_weights_json(dm, out);
            buf_append_str(out, ",\"guard\":");
            canary_guard_json(&dm->guard, out);
            buf_append_char(out, '}');
            first = false;
        }
        pthread_mutex_unlock(&dm->lifecycle);
    }
    buf_append_char(out, ']');
    free(l.items);
}
