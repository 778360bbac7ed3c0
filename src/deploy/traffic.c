/*
 * deploy traffic: the traffic splits and guards of the live models — set, promote, roll back,
 * keep them through undeploys (manager.c) and restarts, evaluate the guards once a second — on
 * top of the pure arithmetic in split.c and guard.c. See deploy.h ("traffic splits").
 */
#include "deploy_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "split.h"

/* ---- JSON form of a split -------------------------------------------------------------- */

/* {"<version>": weight, ...} of the live versions (caller holds lifecycle). */
static void traffic_weights_json(const deploy_model *dm, ds_buf *out)
{
    buf_append_char(out, '{');
    for (size_t i = 0; i < dm->count; i++) {
        if (i)
            buf_append_char(out, ',');
        buf_append_json_string(out, dm->versions[i]->version, strlen(dm->versions[i]->version));
        buf_printf(out, ":%d", dm->weights[i]);
    }
    buf_append_char(out, '}');
}

/* ---- applying a split ---------------------------------------------------------------------- */

void traffic_persist(deploy_manager *m, deploy_model *dm, const char *reason)
{
    ds_buf weights = DS_BUF_INIT, guard = DS_BUF_INIT;
    char err[256];
    reg_status rs;
    if (!dm->has_split) {
        rs = registry_traffic_clear(m->env.reg, dm->name, err, sizeof err);
    } else {
        traffic_weights_json(dm, &weights);
        guard_json(&dm->guard, &guard);
        rs = registry_traffic_set(m->env.reg, dm->name, weights.data,
                                  dm->guard.enabled ? guard.data : NULL, reason, err, sizeof err);
    }
    if (rs != REG_OK && rs != REG_NOT_FOUND)
        log_error("storing the traffic split of %s: %s", dm->name, err);
    buf_free(&weights);
    buf_free(&guard);
}

/* Swap in new weights (aligned with dm->versions) under the write lock. */
static void traffic_apply(deploy_model *dm, const int *weights, bool has_split)
{
    pthread_rwlock_wrlock(&dm->lock);
    for (size_t i = 0; i < dm->count; i++)
        dm->weights[i] = has_split ? weights[i] : 0;
    dm->has_split = has_split;
    pthread_rwlock_unlock(&dm->lock);
}

/* Validate {versions: weights} against the live versions into aligned[] (lifecycle held). */
static deploy_result traffic_align(const deploy_model *dm, const char *const *versions,
                                   const int *weights, size_t n, int *aligned)
{
    int sum = 0;
    memset(aligned, 0, dm->count * sizeof *aligned);
    for (size_t i = 0; i < n; i++) {
        ssize_t at = deploy_model_index(dm, versions[i]);
        if (at < 0)
            return deploy_fail(DEPLOY_CONFLICT, "%s version %s is not deployed", dm->name,
                               versions[i]);
        if (weights[i] < 0 || weights[i] > 100)
            return deploy_fail(DEPLOY_INVALID, "weight of version %s must be 0..100", versions[i]);
        aligned[at] = weights[i];
        sum += weights[i];
    }
    if (sum != 100)
        return deploy_fail(DEPLOY_INVALID, "weights must sum to 100, not %d", sum);
    return deploy_ok();
}

deploy_result deploy_traffic_set(deploy_manager *m, const char *model, const char *const *versions,
                                 const int *weights, size_t n, const deploy_guard *guard,
                                 const char *reason)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL || n == 0)
        return deploy_fail(dm ? DEPLOY_INVALID : DEPLOY_NOT_FOUND,
                           dm ? "give at least one version" : "model %s has no deployed version",
                           model);
    pthread_mutex_lock(&dm->lifecycle);
    int *aligned = calloc(dm->count + 1, sizeof *aligned);
    deploy_result r = aligned ? traffic_align(dm, versions, weights, n, aligned)
                              : deploy_fail(DEPLOY_INTERNAL, "out of memory");
    if (r.code == DEPLOY_OK) {
        traffic_apply(dm, aligned, true);
        dm->guard = guard ? *guard : (deploy_guard){0};
        dm->guard.tripped = false;
        dm->guard.reason[0] = '\0';
        traffic_persist(m, dm, reason);
        log_info("traffic split of %s changed (%s)", model, reason);
    }
    free(aligned);
    pthread_mutex_unlock(&dm->lifecycle);
    return r;
}

deploy_result deploy_promote(deploy_manager *m, const char *model, const char *version)
{
    const char *versions[] = {version};
    const int weights[] = {100};
    return deploy_traffic_set(m, model, versions, weights, 1, NULL, "promote");
}

/* Apply a stored split to the live versions, rescaled over those still live. Returns false
 * when none of its versions is live (lifecycle held). */
static bool traffic_apply_stored(deploy_model *dm, const char *weights_json)
{
    cJSON *w = cJSON_Parse(weights_json);
    int *aligned = calloc(dm->count + 1, sizeof *aligned);
    for (const cJSON *f = w ? w->child : NULL; f && aligned; f = f->next) {
        ssize_t at = deploy_model_index(dm, f->string);
        if (at >= 0 && cJSON_IsNumber(f) && f->valueint > 0)
            aligned[at] = f->valueint;
    }
    int sum = aligned ? split_rescale(aligned, dm->count) : 0;
    if (sum > 0)
        traffic_apply(dm, aligned, true);
    free(aligned);
    cJSON_Delete(w);
    return sum > 0;
}

deploy_result deploy_rollback(deploy_manager *m, const char *model)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return deploy_fail(DEPLOY_NOT_FOUND, "model %s has no deployed version", model);
    pthread_mutex_lock(&dm->lifecycle);
    char *weights = NULL, *guard = NULL, err[256];
    reg_status rs = registry_traffic_rollback(m->env.reg, model, &weights, &guard, err, sizeof err);
    deploy_result r = deploy_ok();
    if (rs != REG_OK) {
        r = deploy_fail(rs == REG_NOT_FOUND ? DEPLOY_NOT_FOUND : DEPLOY_INTERNAL,
                        "no earlier traffic split of %s: %s", model, err);
    } else {
        if (!traffic_apply_stored(dm, weights))
            traffic_apply(dm, NULL, false);
        char gerr[128];
        if (guard == NULL || guard_parse(guard, &dm->guard, gerr, sizeof gerr) != 0)
            dm->guard = (deploy_guard){0};
        log_info("traffic split of %s rolled back", model);
    }
    free(weights);
    free(guard);
    pthread_mutex_unlock(&dm->lifecycle);
    return r;
}

/* ---- every model -------------------------------------------------------------------------- */

void traffic_restore(deploy_manager *m)
{
    deploy_model_list l = deploy_models_snapshot(m);
    for (size_t i = 0; i < l.count; i++) {
        deploy_model *dm = l.items[i];
        char *weights = NULL, *guard = NULL, err[256];
        pthread_mutex_lock(&dm->lifecycle);
        if (dm->count > 0 && registry_traffic_get(m->env.reg, dm->name, &weights, &guard, err,
                                                  sizeof err) == REG_OK) {
            traffic_apply_stored(dm, weights);
            if (guard == NULL || guard_parse(guard, &dm->guard, err, sizeof err) != 0)
                dm->guard = (deploy_guard){0};
        }
        pthread_mutex_unlock(&dm->lifecycle);
        free(weights);
        free(guard);
    }
    free(l.items);
}

/* The stored weights aligned with dm->versions into aligned[] (dm->count + 1 ints), rescaled
 * over the live versions; the sum (0: none of them is live). Lifecycle held. */
static int traffic_align_stored(const deploy_model *dm, const char *weights_json, int *aligned)
{
    cJSON *w = cJSON_Parse(weights_json);
    memset(aligned, 0, (dm->count + 1) * sizeof *aligned);
    for (const cJSON *f = w ? w->child : NULL; f; f = f->next) {
        ssize_t at = deploy_model_index(dm, f->string);
        if (at >= 0 && cJSON_IsNumber(f) && f->valueint > 0)
            aligned[at] = f->valueint;
    }
    cJSON_Delete(w);
    return split_rescale(aligned, dm->count);
}

/* The guard as stored (text written by guard_json) differs from dm's. Lifecycle held. */
static bool traffic_guard_differs(const deploy_model *dm, const char *guard_text)
{
    if (guard_text == NULL)
        return dm->guard.enabled;
    ds_buf b = DS_BUF_INIT;
    guard_json(&dm->guard, &b);
    bool differs = !dm->guard.enabled || b.failed || strcmp(b.data, guard_text) != 0;
    buf_free(&b);
    return differs;
}

bool traffic_follow(deploy_manager *m, deploy_model *dm)
{
    char *weights = NULL, *guard = NULL, err[256];
    bool changed = false;
    pthread_mutex_lock(&dm->lifecycle);
    reg_status rs = dm->count == 0 ? REG_NOT_FOUND
                                   : registry_traffic_get(m->env.reg, dm->name, &weights, &guard,
                                                          err, sizeof err);
    int *aligned = calloc(dm->count + 1, sizeof *aligned);
    if (rs == REG_NOT_FOUND && dm->has_split) { /* cleared elsewhere */
        traffic_apply(dm, NULL, false);
        dm->guard = (deploy_guard){0};
        changed = true;
    } else if (rs == REG_OK && aligned != NULL && traffic_align_stored(dm, weights, aligned) > 0) {
        bool same = dm->has_split;
        for (size_t i = 0; same && i < dm->count; i++)
            same = dm->weights[i] == aligned[i];
        if (!same)
            traffic_apply(dm, aligned, true);
        if (traffic_guard_differs(dm, guard) &&
            (guard == NULL || guard_parse(guard, &dm->guard, err, sizeof err) != 0))
            dm->guard = (deploy_guard){0};
        changed = !same;
    } else if (rs != REG_OK && rs != REG_NOT_FOUND) {
        log_warn("reading the traffic split of %s: %s", dm->name, err);
    }
    pthread_mutex_unlock(&dm->lifecycle);
    if (changed)
        log_info("traffic split of %s follows the registry", dm->name);
    free(aligned);
    free(weights);
    free(guard);
    return changed;
}

/* ---- the guard ------------------------------------------------------------------------------ */

/* Evaluate one model's guard (lifecycle held). */
static void traffic_guard_check(deploy_manager *m, deploy_model *dm)
{
    if (!dm->guard.enabled || dm->guard.tripped || !dm->has_split || dm->count < 2)
        return;
    size_t base = split_baseline(dm->weights, dm->count);
    const deploy_guard *g = &dm->guard;
    stats_window_view b;
    stats_window(dm->versions[base]->t.stats, g->window_s, &b);
    for (size_t i = 0; i < dm->count; i++) {
        deployment *c = dm->versions[i];
        stats_window_view cw;
        char reason[256];
        if (i == base || dm->weights[i] == 0)
            continue;
        stats_window(c->t.stats, g->window_s, &cw);
        if (!guard_breached(g, &cw, &b, c->version, dm->versions[base]->version, reason,
                            sizeof reason))
            continue;
        pthread_rwlock_wrlock(&dm->lock);
        dm->weights[base] += dm->weights[i];
        dm->weights[i] = 0;
        pthread_rwlock_unlock(&dm->lock);
        dm->guard.tripped = true;
        snprintf(dm->guard.reason, sizeof dm->guard.reason, "%s", reason);
        log_warn("canary guard of %s: %s; its traffic goes to version %s", dm->name, reason,
                 dm->versions[base]->version);
        deploy_event(m, "guard_rollback", dm->name, c->version, reason);
        traffic_persist(m, dm, "guard rollback");
        return;
    }
}

void deploy_tick(deploy_manager *m)
{
    deploy_model_list l = deploy_models_snapshot(m);
    for (size_t i = 0; i < l.count; i++) {
        /* Never wait behind a deploy's dlopen: a busy model is checked next second. */
        if (pthread_mutex_trylock(&l.items[i]->lifecycle) != 0)
            continue;
        traffic_guard_check(m, l.items[i]);
        pthread_mutex_unlock(&l.items[i]->lifecycle);
    }
    free(l.items);
}

/* ,"shadow":{"version","percent"} or ,"shadow":null. Caller holds dm->lifecycle. */
static void traffic_shadow_json(deploy_model *dm, ds_buf *out)
{
    int pct = atomic_load(&dm->shadow_percent);
    if (pct <= 0) {
        buf_append_str(out, ",\"shadow\":null");
        return;
    }
    buf_append_str(out, ",\"shadow\":{\"version\":");
    buf_append_json_string(out, dm->shadow_version, strlen(dm->shadow_version));
    buf_printf(out, ",\"percent\":%d}", pct);
}

deploy_result deploy_shadow_set(deploy_manager *m, const char *model, const char *version,
                                int percent)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return deploy_fail(DEPLOY_NOT_FOUND, "model %s has no deployed version", model);
    if (version != NULL && (percent < 1 || percent > 100))
        return deploy_fail(DEPLOY_INVALID, "shadow percent must be 1..100");
    pthread_mutex_lock(&dm->lifecycle);
    deploy_result r = deploy_ok();
    if (version != NULL && deploy_model_index(dm, version) < 0) {
        r = deploy_fail(DEPLOY_CONFLICT, "shadow version %s of %s is not deployed", version, model);
    } else {
        pthread_rwlock_wrlock(&dm->lock);
        atomic_store(&dm->shadow_percent, 0);
        if (version != NULL) {
            snprintf(dm->shadow_version, sizeof dm->shadow_version, "%s", version);
            atomic_store(&dm->shadow_seq, 0);
            atomic_store(&dm->shadow_percent, percent);
        }
        pthread_rwlock_unlock(&dm->lock);
    }
    pthread_mutex_unlock(&dm->lifecycle);
    return r;
}

bool deploy_shadow_get(deploy_manager *m, const char *model, char *version, int *percent)
{
    deploy_model *dm = deploy_model_find(m, model);
    *percent = 0;
    if (dm == NULL)
        return false;
    pthread_rwlock_rdlock(&dm->lock);
    *percent = atomic_load(&dm->shadow_percent);
    snprintf(version, REG_NAME_MAX + 1, "%s", dm->shadow_version);
    pthread_rwlock_unlock(&dm->lock);
    return *percent > 0;
}

bool deploy_shadow_pick(deploy_model *dm, char *version)
{
    if (atomic_load_explicit(&dm->shadow_percent, memory_order_relaxed) <= 0)
        return false;
    pthread_rwlock_rdlock(&dm->lock);
    int pct = atomic_load(&dm->shadow_percent);
    bool pick = false;
    if (pct > 0) {
        uint64_t n = atomic_fetch_add(&dm->shadow_seq, 1);
        /* request n is picked when floor((n+1)p/100) > floor(np/100): exactly p% of any run */
        pick = ((n + 1) * (uint64_t)pct) / 100 > (n * (uint64_t)pct) / 100;
        if (pick)
            snprintf(version, REG_NAME_MAX + 1, "%s", dm->shadow_version);
    }
    pthread_rwlock_unlock(&dm->lock);
    return pick;
}

void deploy_traffic_describe(deploy_manager *m, ds_buf *out)
{
    deploy_model_list l = deploy_models_snapshot(m);
    bool first = true;
    buf_append_char(out, '[');
    for (size_t i = 0; i < l.count; i++) {
        deploy_model *dm = l.items[i];
        pthread_mutex_lock(&dm->lifecycle);
        if (dm->has_split) {
            buf_append_str(out, first ? "{\"model_name\":" : ",{\"model_name\":");
            buf_append_json_string(out, dm->name, strlen(dm->name));
            buf_append_str(out, ",\"weights\":");
            traffic_weights_json(dm, out);
            buf_append_str(out, ",\"guard\":");
            guard_json(&dm->guard, out);
            traffic_shadow_json(dm, out);
            buf_append_char(out, '}');
            first = false;
        }
        pthread_mutex_unlock(&dm->lifecycle);
    }
    buf_append_char(out, ']');
    free(l.items);
}
