/*
 * drain: undeploy. The version leaves the routing tables and the registry under the model's
 * lifecycle lock (a few microseconds and one registry write); everything that waits — removing
 * its route (the router waits for calls inside the handler), waiting for the last reference,
 * destroying the instance, dlclose or stopping the worker — happens in a drain thread, so the
 * lifecycle lock is never held across a wait and management reads never queue behind a slow
 * plugin. The undeploy waits for the drain thread up to the drain timeout:
 *
 *   drained in time        -> DEPLOY_OK (routes gone, instance destroyed)
 *   isolated, still busy   -> the worker is killed (its calls get 502), then DEPLOY_OK
 *   in-process, still busy -> DEPLOY_DRAINING: the deployment stays on the model's draining list
 *                             (shown as "draining") until the call returns; redeploying that
 *                             version is refused (CONFLICT) meanwhile
 *
 * A drain_job is shared by the undeploy and its drain thread (two references); `releasing`
 * tells the undeploy that the thread has begun freeing the deployment, so it must not touch it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deploy_internal.h"
#include "deadline.h"
#include "log.h"
#include "names.h"

/* An undeploy that killed a busy worker waits this much longer for the drain to finish. */
#define DRAIN_KILL_WAIT_MS 5000

typedef struct drain_job {
    pthread_mutex_t mu; /* guards releasing, done, refs */
    pthread_cond_t cv;
    bool releasing;
    bool done;
    int refs;
    deploy_manager *m;
    deploy_model *dm;
    deployment *d;
} drain_job;

static void drain_job_unref(drain_job *j)
{
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) {
        pthread_cond_destroy(&j->cv);
        pthread_mutex_destroy(&j->mu);
        free(j);
    }
}

static void drain_unlink_locked(deploy_model *dm, deployment *d)
{
    deployment **p = &dm->draining;
    while (*p != NULL && *p != d)
        p = &(*p)->next_draining;
    if (*p == d)
        *p = d->next_draining;
}

/* Route out, wait for the last request, save stats, then destroy and dlclose. */
static void drain_release(deploy_manager *m, deploy_model *dm, deployment *d, drain_job *j)
{
    deploy_unload_figures f;
    char version[REG_NAME_MAX + 1];
    snprintf(version, sizeof version, "%s", d->version);
    uint64_t t0 = deploy_now_ns();
    deployment_drain(m, d, -1);
    f.drain_ns = deploy_now_ns() - t0;
    deployment_save_stats(m, d);
    if (j != NULL) {
        pthread_mutex_lock(&j->mu);
        j->releasing = true;
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_lock(&dm->lifecycle);
    drain_unlink_locked(dm, d);
    pthread_mutex_unlock(&dm->lifecycle);
    log_info("undeployed %s version %s", d->model_name, d->version);
    f.rss_before = deploy_rss_bytes();
    uint64_t t1 = deploy_now_ns();
    deployment_free(d);
    f.unload_ns = deploy_now_ns() - t1;
    f.rss_after = deploy_rss_bytes();
    deploy_count_unload(m, dm, version, &f);
}

static void *drain_main(void *arg)
{
    drain_job *j = arg;
    deploy_manager *m = j->m;
    drain_release(m, j->dm, j->d, j);
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    drain_job_unref(j);
    atomic_fetch_sub(&m->drains, 1);
    return NULL;
}

/* Wait until the job is done or ms passed. Returns done. */
static bool drain_job_wait(drain_job *j, int ms)
{
    struct timespec ts = ds_deadline_after_ms(ms);
    pthread_mutex_lock(&j->mu);
    while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &ts) == 0)
        ;
    bool done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done;
}

/* The drain timeout passed with a call inside an isolated worker: kill the worker, so the call
 * ends (502) and the drain completes. Under j->mu, so the drain thread cannot free d meanwhile. */
static void drain_job_kill_worker(drain_job *j)
{
    pthread_mutex_lock(&j->mu);
    if (!j->releasing && !j->done && j->d->worker != NULL)
        worker_kill(j->d->worker, "its deployment was undeployed with the call still running");
    pthread_mutex_unlock(&j->mu);
}

/* Hand d (out of the tables, on dm->draining) to a drain thread and wait up to wait_ms (< 0: do
 * not wait; the thread releases d whenever its calls return, and no worker is killed). */
static deploy_result drain_and_wait(deploy_manager *m, deploy_model *dm, deployment *d, int wait_ms)
{
    bool isolated = d->t.isolated;
    char version[REG_NAME_MAX + 1];
    snprintf(version, sizeof version, "%s", d->version);
    drain_job *j = calloc(1, sizeof *j);
    if (j == NULL) { /* no memory for a job: drain here */
        drain_release(m, dm, d, NULL);
        return deploy_ok();
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 2;
    j->m = m;
    j->dm = dm;
    j->d = d;
    atomic_fetch_add(&m->drains, 1);
    pthread_t t;
    if (pthread_create(&t, NULL, drain_main, j) != 0) {
        j->refs = 1;
        drain_main(j); /* here: bounded only by the requests */
        return deploy_ok();
    }
    pthread_detach(t);
    if (wait_ms < 0) {
        drain_job_unref(j);
        return deploy_ok();
    }
    bool done = drain_job_wait(j, wait_ms);
    if (!done && isolated) {
        drain_job_kill_worker(j);
        done = drain_job_wait(j, DRAIN_KILL_WAIT_MS);
    }
    drain_job_unref(j);
    if (done)
        return deploy_ok();
    return deploy_fail(DEPLOY_DRAINING,
                       "%s version %s is draining: a call is still running after %d ms; it is "
                       "released when the call returns",
                       dm->name, version, wait_ms);
}

/* (model, version) of a live endpoint, copied out. false when no such endpoint. */
static bool drain_endpoint_owner(deploy_manager *m, const char *endpoint, char *model,
                                 char *version)
{
    deployment *d = deploy_acquire_endpoint(m, endpoint);
    if (d == NULL)
        return false;
    snprintf(model, REG_NAME_MAX + 1, "%s", d->model_name);
    snprintf(version, REG_NAME_MAX + 1, "%s", d->version);
    deploy_release(d);
    return true;
}

/* A version that failed to come back after a restart is not live; undeploying it just closes
 * its registry row. */
typedef struct failed_lookup {
    const char *model, *version;
    int64_t id;
} failed_lookup;

static int drain_find_failed(void *ud, const reg_deployment *d)
{
    failed_lookup *f = ud;
    if (strcmp(d->status, "failed") == 0 && strcmp(d->model_name, f->model) == 0 &&
        strcmp(d->version, f->version) == 0) {
        f->id = d->id;
        return 1;
    }
    return 0;
}

static deploy_result drain_stop_failed(deploy_manager *m, const char *model, const char *version)
{
    failed_lookup f = {model, version, 0};
    char err[256];
    registry_deployment_list(m->env.reg, drain_find_failed, &f, err, sizeof err);
    if (f.id == 0)
        return deploy_fail(DEPLOY_NOT_FOUND, "%s version %s is not deployed", model, version);
    reg_status rs = registry_deployment_end(m->env.reg, f.id, "undeployed",
                                            "failed deployment removed", err, sizeof err);
    return rs == REG_OK ? deploy_ok() : deploy_from_registry(rs, err);
}

static deploy_result drain_stop(deploy_manager *m, const char *model, const char *version,
                                const char *endpoint_name, int drain_timeout_ms)
{
    char model_buf[REG_NAME_MAX + 1], version_buf[REG_NAME_MAX + 1];
    if (model == NULL) {
        if (!drain_endpoint_owner(m, endpoint_name, model_buf, version_buf))
            return deploy_fail(DEPLOY_NOT_FOUND, "no deployment has endpoint_name %s",
                               endpoint_name);
        model = model_buf;
        version = version_buf;
    }
    if (!name_valid(model) || !name_valid(version))
        return deploy_fail(DEPLOY_INVALID, "model name and version must match " NAME_RULE);
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return drain_stop_failed(m, model, version);
    pthread_mutex_lock(&dm->lifecycle);
    ssize_t i = deploy_model_index(dm, version);
    if (i < 0) {
        deploy_result taken = deploy_ok();
        bool draining = deploy_taken_locked(dm, version, &taken);
        pthread_mutex_unlock(&dm->lifecycle);
        return draining ? taken : drain_stop_failed(m, model, version);
    }
    deployment *d = dm->versions[i];
    bool had_split = dm->has_split;
    deployment_untable(m, dm, d);
    d->next_draining = dm->draining;
    dm->draining = d;
    if (had_split)
        traffic_persist(m, dm, "undeploy");
    char err[256];
    reg_status rs = registry_deployment_end(m->env.reg, d->t.deployment_id, "undeployed", NULL, err,
                                            sizeof err);
    pthread_mutex_unlock(&dm->lifecycle);
    /* d is now reachable only by requests that already hold it, and by the drain below */
    deploy_result r = drain_and_wait(
        m, dm, d, drain_timeout_ms >= 0 ? drain_timeout_ms : m->env.drain_timeout_ms);
    if (rs != REG_OK)
        return deploy_fail(DEPLOY_INTERNAL, "undeployed, but the registry did not record it: %s",
                           err);
    return r;
}

deploy_result deploy_stop(deploy_manager *m, const char *model, const char *version,
                          const char *endpoint_name, int drain_timeout_ms)
{
    bool named = model != NULL && name_valid(model) && name_valid(version);
    int slot = named ? deploy_transit_begin(m, model, version, DEPLOY_STATE_UNLOADING) : -1;
    deploy_result r = drain_stop(m, model, version, endpoint_name, drain_timeout_ms);
    deploy_transit_end(m, slot);
    return r;
}

/* The reconciler's undeploy (deploy/reconcile.c): the registry already says the deployment has
 * ended (another replica undeployed it), so nothing is written back, the split is not persisted
 * (the replica that undeployed did that) and the caller does not wait for the drain: the route
 * goes and the instance is released by the drain thread once its calls return. */
bool deploy_retire(deploy_manager *m, const char *model, const char *version, int64_t id)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return false;
    int slot = deploy_transit_begin(m, model, version, DEPLOY_STATE_UNLOADING);
    pthread_mutex_lock(&dm->lifecycle);
    ssize_t i = deploy_model_index(dm, version);
    deployment *d = i >= 0 ? dm->versions[i] : NULL;
    if (d == NULL || d->t.deployment_id != id) {
        pthread_mutex_unlock(&dm->lifecycle);
        deploy_transit_end(m, slot);
        return false;
    }
    deployment_untable(m, dm, d);
    d->next_draining = dm->draining;
    dm->draining = d;
    pthread_mutex_unlock(&dm->lifecycle);
    drain_and_wait(m, dm, d, -1);
    deploy_transit_end(m, slot);
    return true;
}
