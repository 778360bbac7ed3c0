/*
 * runtime: what a live deployment shows beyond its registry row (GET /deployments,
 * /models/stats): its effective isolation and options, deadlines passed, requests refused, the
 * worker process (pid, RSS, restarts) and a status of "degraded" or "failed" when it is not
 * healthy; and the deployments still draining after an undeploy. Reads atomics and the worker's
 * own lock only: never waits for a plugin call or a drain. Also the memory sampling of
 * in-process calls (deploy_mem_begin/_end, deploy.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deploy_internal.h"

/* A deadline passed within this many seconds makes the deployment "degraded". */
#define RUNTIME_DEGRADED_S 60

static void runtime_worker(const deployment *d, deploy_runtime *out)
{
    worker_info wi;
    worker_get_info(d->worker, &wi);
    out->worker_pid = wi.pid;
    out->worker_rss_bytes = wi.rss_bytes;
    out->worker_restarts = wi.restarts;
    out->worker_crashes = wi.crashes;
    out->worker_state = wi.state;
    if (strcmp(wi.state, "restarting") == 0) {
        out->status = "degraded";
        snprintf(out->reason, sizeof out->reason, "worker restarting after: %.200s", wi.reason);
    }
}

/* Is a call serving `requests` the only inference admitted in the server? */
static bool runtime_alone(const admission_cap *c, int64_t requests)
{
    return atomic_load_explicit(&c->used, memory_order_relaxed) == requests;
}

void deploy_mem_begin(const deploy_target *t, uint64_t now_ns, int64_t requests,
                      deploy_mem_probe *p)
{
    p->on = false;
    if (t->mem == NULL || t->server_cap == NULL || !runtime_alone(t->server_cap, requests))
        return;
    uint64_t next = atomic_load_explicit(&t->mem->next_sample_ns, memory_order_relaxed);
    if (now_ns < next || !atomic_compare_exchange_strong(&t->mem->next_sample_ns, &next,
                                                         now_ns + DEPLOY_MEM_SAMPLE_NS))
        return;
    p->entered = atomic_load(&t->server_cap->entered);
    p->rss = deploy_rss_bytes();
    p->on = p->rss >= 0;
}

void deploy_mem_end(const deploy_target *t, int64_t requests, const deploy_mem_probe *p)
{
    if (!p->on)
        return;
    int64_t rss = deploy_rss_bytes();
    /* nobody else was admitted meanwhile, and nobody else is in: the change is this call's */
    if (rss < 0 || atomic_load(&t->server_cap->entered) != p->entered ||
        !runtime_alone(t->server_cap, requests))
        return;
    atomic_fetch_add(&t->mem->call_growth, rss - p->rss);
    atomic_fetch_add(&t->mem->sampled, 1);
}

int deploy_call_begin(const deploy_target *t, uint64_t start_ns)
{
    if (t->call_starts == NULL || t->timeout_ms <= 0 || t->isolated)
        return -1;
    unsigned first = (unsigned)(start_ns >> 10) % t->call_slots;
    for (unsigned k = 0; k < t->call_slots; k++) {
        unsigned i = (first + k) % t->call_slots;
        uint64_t free_slot = 0;
        if (atomic_compare_exchange_strong(&t->call_starts[i], &free_slot, start_ns))
            return (int)i;
    }
    return -1; /* more calls than slots: the extra ones are not watched */
}

void deploy_call_end(const deploy_target *t, int slot)
{
    if (slot >= 0)
        atomic_store(&t->call_starts[slot], 0);
}

/* The longest-running watched in-process call, in ms (0 when none). */
static int64_t runtime_oldest_call_ms(const deployment *d, uint64_t now_ns)
{
    uint64_t oldest = 0;
    for (unsigned i = 0; i < DEPLOY_CALL_SLOTS; i++) {
        uint64_t s = atomic_load(&d->call_starts[i]);
        if (s != 0 && s < now_ns && now_ns - s > oldest)
            oldest = now_ns - s;
    }
    return (int64_t)(oldest / 1000000u);
}

static void runtime_fill(deployment *d, deploy_runtime *out)
{
    memset(out, 0, sizeof *out);
    out->options = d->opts;
    out->options.rate_limit = rl_bucket_limit(&d->rate); /* PUT .../limits changes it */
    out->isolated = d->t.isolated;
    out->timeouts = atomic_load(&d->timeouts);
    out->rejected = atomic_load(&d->adm.rejected);
    out->max_in_flight = d->adm.max_in_flight;
    out->load.load_ns = d->load.load_ns;
    atomic_store(&out->load.ready_ns, atomic_load(&d->load.ready_ns));
    out->load.rss_before = d->load.rss_before;
    atomic_store(&out->load.rss_after, atomic_load(&d->load.rss_after));
    if (d->t.mem != NULL) {
        stats_snapshot snap;
        stats_snapshot_live(d->t.stats, &snap);
        out->mem_call_growth = atomic_load(&d->t.mem->call_growth);
        out->mem_sampled = atomic_load(&d->t.mem->sampled);
        out->mem_calls = snap.request_count;
    }
    out->status = "active";
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t last = atomic_load(&d->last_timeout_s);
    if (last > 0 && now.tv_sec - last < RUNTIME_DEGRADED_S) {
        out->status = "degraded";
        snprintf(out->reason, sizeof out->reason,
                 "a request passed its %lld ms deadline %lld s ago", (long long)d->t.timeout_ms,
                 (long long)(now.tv_sec - last));
    }
    uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    int64_t stuck = runtime_oldest_call_ms(d, now_ns);
    if (d->t.timeout_ms > 0 && stuck > d->t.timeout_ms) {
        out->status = "degraded";
        snprintf(out->reason, sizeof out->reason,
                 "a call has been running for %lld ms, past timeout_ms (%lld ms)", (long long)stuck,
                 (long long)d->t.timeout_ms);
    }
    if (d->worker != NULL)
        runtime_worker(d, out);
    if (atomic_load(&d->failed)) {
        out->status = "failed";
        pthread_mutex_lock(&d->reason_lock);
        snprintf(out->reason, sizeof out->reason, "%s", d->fail_reason);
        pthread_mutex_unlock(&d->reason_lock);
    }
}

void deploy_server_load_get(deploy_manager *m, deploy_server_load *out)
{
    out->busy = atomic_load(&m->infer_cap.used);
    out->max = m->infer_cap.max;
    out->rejected = atomic_load(&m->infer_cap.rejected);
}

bool deploy_runtime_get(deploy_manager *m, const char *model, const char *version,
                        deploy_runtime *out)
{
    deployment *d = deploy_acquire(m, model, version, NULL);
    if (d == NULL)
        return false;
    runtime_fill(d, out);
    deploy_release(d);
    return true;
}

void deploy_foreach_draining(deploy_manager *m, deploy_draining_fn fn, void *ud)
{
    deploy_model_list l = deploy_models_snapshot(m);
    for (size_t i = 0; i < l.count; i++) {
        deploy_model *dm = l.items[i];
        /* the list changes under lifecycle, which is held only for short table swaps */
        pthread_mutex_lock(&dm->lifecycle);
        for (deployment *d = dm->draining; d != NULL; d = d->next_draining)
            fn(ud, d->model_name, d->version, d->endpoint_name);
        pthread_mutex_unlock(&dm->lifecycle);
    }
    free(l.items);
}
