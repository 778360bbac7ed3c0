/*
 * deploy restore: restart recovery. Every deployment the registry says is active is loaded and
 * published again with its lifetime stats; one that cannot come back is marked failed with the
 * reason (and an undeploy later just closes its row). Then the stored splits are re-applied.
 * Each comes back with the options it was deployed with (deployments.options). The crash journal
 * (crash_journal.h) names the in-process deployment that was running plugin code when the last
 * process died of a signal: that one is quarantined as failed instead of being loaded blind.
 */
#include "deploy_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blobs.h"
#include "log.h"

int deploy_collect_rows(void *ud, const reg_deployment *d)
{
    deploy_row_list *l = ud;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        reg_deployment *grown = realloc(l->rows, cap * sizeof *grown);
        if (grown == NULL)
            return 1;
        l->rows = grown;
        l->cap = cap;
    }
    reg_deployment *row = &l->rows[l->count++];
    *row = *d;
    row->status_reason = NULL; /* not needed; the callback's copies are not ours to keep */
    row->options = d->options ? strdup(d->options) : NULL;
    return 0;
}

void deploy_row_list_free(deploy_row_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->rows[i].options);
    free(l->rows);
    *l = (deploy_row_list){0};
}

static void deploy_mark_failed(deploy_manager *m, const reg_deployment *row, const char *why)
{
    char err[256];
    log_error("deployment of %s version %s failed to restore: %s", row->model_name, row->version,
              why);
    if (registry_deployment_end(m->env.reg, row->id, "failed", why, err, sizeof err) != REG_OK)
        log_error("recording the failure: %s", err);
}

/* The crash journal blames this deployment for the last crash: count it and mark it failed.
 * true when quarantined. */
static bool deploy_quarantine(deploy_manager *m, const reg_deployment *row)
{
    if (!m->env.had_crash || m->env.crash.deployment_id != row->id)
        return false;
    char err[256], why[400];
    int64_t crashes = 1;
    if (registry_deployment_crash_add(m->env.reg, row->id, &crashes, err, sizeof err) != REG_OK)
        log_warn("counting the crash of %s version %s: %s", row->model_name, row->version, err);
    const char *abbrev = sigabbrev_np(m->env.crash.signo);
    snprintf(why, sizeof why,
             "quarantined: the server died of signal %d (SIG%s) while this in-process deployment "
             "ran plugin code (%lld time%s); deploy it again, preferably with "
             "\"isolation\":\"process\"",
             m->env.crash.signo, abbrev ? abbrev : "?", (long long)crashes,
             crashes == 1 ? "" : "s");
    deploy_mark_failed(m, row, why);
    deploy_event(m, "quarantined", row->model_name, row->version, why);
    return true;
}

deploy_result deploy_bring_up(deploy_manager *m, const reg_deployment *row)
{
    char err[512] = "";
    ds_deploy_options opts;
    if (deploy_options_parse_text(row->options, &opts, err, sizeof err) != 0)
        return deploy_fail(DEPLOY_INVALID, "%s", err);
    reg_version v = {0};
    if (registry_version_get(m->env.reg, row->model_name, row->version, &v, err, sizeof err) !=
        REG_OK)
        return deploy_fail(DEPLOY_NOT_FOUND, "version is no longer registered");
    deploy_model *dm = deploy_model_get(m, row->model_name);
    if (dm == NULL) {
        reg_version_free(&v);
        return deploy_fail(DEPLOY_INTERNAL, "out of memory");
    }
    if (deploy_blobs_localize(m->env.reg, m->env.data_dir, &v, err, sizeof err) != 0) {
        reg_version_free(&v);
        return deploy_fail(DEPLOY_INTERNAL, "cannot fetch the version: %s", err);
    }
    deploy_result res = deploy_ok();
    deployment *d = deployment_load(m, &v, &opts, row->id, &res);
    reg_version_free(&v);
    if (d == NULL)
        return res;
    d->t.deployment_id = row->id;
    snprintf(d->endpoint_name, sizeof d->endpoint_name, "%s", row->endpoint_name);
    snprintf(d->deployed_at, sizeof d->deployed_at, "%s", row->deployed_at);
    reg_stats base = {0};
    if (registry_stats_load(m->env.reg, row->id, &base, err, sizeof err) == REG_OK) {
        stats_set_base(d->t.stats, base.request_count, base.error_4xx, base.error_5xx,
                       base.latency_sum_ms);
        stats_set_base_last(d->t.stats, base.last_request_unix_ms);
    }
    /* The plugin loaded without the lifecycle lock (like deploy_start): a local deploy or
     * another reconcile pass may have published the version meanwhile; that one stays. */
    pthread_mutex_lock(&dm->lifecycle);
    /* The row was read before the load: an undeploy (which ends the row under this lock) may
     * have come in between, and serving it now would bring back what the user just removed. */
    bool active = false;
    if (registry_deployment_is_active(m->env.reg, row->id, &active, err, sizeof err) != REG_OK ||
        !active) {
        pthread_mutex_unlock(&dm->lifecycle);
        deployment_free(d);
        return deploy_fail(DEPLOY_CONFLICT, "deployment %lld has ended", (long long)row->id);
    }
    if (!deploy_taken_locked(dm, row->version, &res) && deployment_publish(m, dm, d) != 0) {
        deployment_unpublish(m, dm, d);
        res = deploy_fail(DEPLOY_INTERNAL, "out of memory adding routes");
    } else if (res.code == DEPLOY_OK) {
        d = NULL; /* published: the model's table owns it */
    }
    pthread_mutex_unlock(&dm->lifecycle);
    deployment_free(d);
    return res;
}

/* Load one registry row back into service. true when it is live again. */
static bool deploy_restore_one(deploy_manager *m, const reg_deployment *row)
{
    if (deploy_quarantine(m, row))
        return false;
    deploy_result res = deploy_bring_up(m, row);
    if (res.code != DEPLOY_OK && res.code != DEPLOY_CONFLICT) /* CONFLICT: ended or live */
        deploy_mark_failed(m, row, res.message);
    return res.code == DEPLOY_OK;
}

int deploy_restore(deploy_manager *m)
{
    deploy_row_list list = {0};
    char err[256];
    if (registry_deployment_list(m->env.reg, deploy_collect_rows, &list, err, sizeof err) != REG_OK)
        log_error("reading deployments to restore: %s", err);
    int restored = 0;
    for (size_t i = 0; i < list.count; i++)
        if (strcmp(list.rows[i].status, "active") == 0)
            restored += deploy_restore_one(m, &list.rows[i]);
    deploy_row_list_free(&list);
    traffic_restore(m);
    return restored;
}
