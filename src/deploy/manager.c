/*
 * deploy manager: deployment lifecycle and the request routing tables. See deploy.h for the
 * locking rules.
 *
 * Data layout: the manager keeps a fixed hash table of deploy_model entries (never freed before
 * the manager) and a hash table of endpoint names. Each deploy_model keeps its live deployments
 * in an array sorted newest version first, with a parallel array of canary weights (split.h).
 */
#include "deploy_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifact.h"
#include "batcher.h"
#include "blobs.h"
#include "host.h"
#include "loader.h"
#include "log.h"
#include "names.h"
#include "pool.h"
#include "split.h"
#include "store.h"
#include "worker.h"

/* A deploy of a version still draining waits this long for the drain before answering 409. */
#define DEPLOY_REDEPLOY_WAIT_MS 2000

/* drain_timeout_ms when the environment gives none. */
#define DEPLOY_DRAIN_DEFAULT_MS 10000

uint64_t deploy_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool deploy_all_digits(const char *s)
{
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Version order as Triton's "latest" policy sees it: numbers numerically, else by text. */
int deploy_version_cmp(const char *a, const char *b)
{
    if (deploy_all_digits(a) && deploy_all_digits(b)) {
        while (*a == '0' && a[1])
            a++;
        while (*b == '0' && b[1])
            b++;
        size_t la = strlen(a), lb = strlen(b);
        if (la != lb)
            return la < lb ? -1 : 1;
    }
    return strcmp(a, b);
}

deploy_result deploy_ok(void)
{
    deploy_result r = {.code = DEPLOY_OK};
    return r;
}

deploy_result deploy_fail(deploy_status code, const char *fmt, ...)
{
    deploy_result r = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.message, sizeof r.message, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- manager and model entries ---------------------------------------------------------- */

int deploy_manager_new(const deploy_env *env, deploy_manager **out)
{
    deploy_manager *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->env = *env;
    if (m->env.drain_timeout_ms <= 0)
        m->env.drain_timeout_ms = DEPLOY_DRAIN_DEFAULT_MS;
    m->router_live = true;
    pthread_rwlock_init(&m->index_lock, NULL);
    pthread_mutex_init(&m->router_gate, NULL);
    pthread_mutex_init(&m->transit_lock, NULL);
    atomic_init(&m->drains, 0);
    admission_cap_init(&m->infer_cap, env->max_inference_threads);
    *out = m;
    return 0;
}

static deploy_model *deploy_model_find_locked(deploy_manager *m, const char *name)
{
    deploy_model *dm = m->models[deploy_hash(name) % DEPLOY_BUCKETS];
    while (dm != NULL && strcmp(dm->name, name) != 0)
        dm = dm->next;
    return dm;
}

deploy_model *deploy_model_find(deploy_manager *m, const char *name)
{
    pthread_rwlock_rdlock(&m->index_lock);
    deploy_model *dm = deploy_model_find_locked(m, name);
    pthread_rwlock_unlock(&m->index_lock);
    return dm;
}

deploy_model *deploy_model_get(deploy_manager *m, const char *name)
{
    deploy_model *dm = deploy_model_find(m, name);
    if (dm != NULL)
        return dm;
    pthread_rwlock_wrlock(&m->index_lock);
    dm = deploy_model_find_locked(m, name);
    if (dm == NULL && (dm = calloc(1, sizeof *dm)) != NULL) {
        snprintf(dm->name, sizeof dm->name, "%s", name);
        snprintf(dm->infer_path, sizeof dm->infer_path, "/v2/models/%s/infer", name);
        dm->mgr = m;
        pthread_mutex_init(&dm->lifecycle, NULL);
        pthread_rwlock_init(&dm->lock, NULL);
        size_t b = deploy_hash(name) % DEPLOY_BUCKETS;
        dm->next = m->models[b];
        m->models[b] = dm;
    }
    pthread_rwlock_unlock(&m->index_lock);
    return dm;
}

ssize_t deploy_model_index(const deploy_model *dm, const char *version)
{
    for (size_t i = 0; i < dm->count; i++)
        if (strcmp(dm->versions[i]->version, version) == 0)
            return (ssize_t)i;
    return -1;
}

/* ---- loading and unloading one deployment ------------------------------------------------- */

void deployment_free(deployment *d)
{
    if (d == NULL)
        return;
    if (d->worker != NULL) {
        worker_stop(d->worker, d->mgr ? d->mgr->env.drain_timeout_ms : 0);
    } else {
        pool_free(d->pool); /* every instance destroyed, then the plugin may close */
        loader_close(d->plugin);
    }
    batcher_free(d->batcher);
    stats_free(d->t.stats);
    phase_stats_free(d->t.phases);
    admission_destroy(&d->adm);
    pthread_mutex_destroy(&d->reason_lock);
    rl_bucket_destroy(&d->rate);
    free(d);
}

void *deploy_instance_acquire(const deploy_target *t, uint32_t *slot)
{
    if (t->pool == NULL) { /* isolated: the worker proxy serialises (or not) by itself */
        *slot = POOL_NO_SLOT;
        return t->instance;
    }
    return pool_acquire(t->pool, slot);
}

void deploy_instance_release(const deploy_target *t, uint32_t slot)
{
    if (t->pool != NULL)
        pool_release(t->pool, slot);
}

/* The isolated worker's supervisor reports here (on its own thread): crashes and restarts become
 * events; the crash limit makes the deployment failed, in the registry too. */
static void deployment_on_worker_event(void *ud, worker_event ev, const char *reason)
{
    deployment *d = ud;
    deploy_manager *m = d->mgr;
    if (ev == WORKER_FAILED) {
        pthread_mutex_lock(&d->reason_lock);
        snprintf(d->fail_reason, sizeof d->fail_reason, "%s", reason);
        pthread_mutex_unlock(&d->reason_lock);
        atomic_store(&d->failed, true);
        log_error("%s version %s failed: %s", d->model_name, d->version, reason);
        char err[256];
        if (d->t.deployment_id > 0 &&
            registry_deployment_end(m->env.reg, d->t.deployment_id, "failed", reason, err,
                                    sizeof err) != REG_OK)
            log_warn("recording the failure of %s version %s: %s", d->model_name, d->version, err);
        return;
    }
    log_warn("%s version %s: worker %s: %s", d->model_name, d->version,
             ev == WORKER_CRASHED ? "crashed" : "restarted", reason);
    deploy_event(m, ev == WORKER_CRASHED ? "worker_crashed" : "worker_restarted", d->model_name,
                 d->version, reason);
}

static int64_t deployment_timeout(const deploy_manager *m, const ds_deploy_options *o)
{
    return o->timeout_ms > 0 ? o->timeout_ms : m->env.default_timeout_ms;
}

static int64_t deployment_max_in_flight(const deploy_manager *m, const ds_deploy_options *o)
{
    return o->max_in_flight > 0 ? o->max_in_flight : m->env.default_max_in_flight;
}

/* An isolated deployment's channels (calls in the worker at once): `workers`, or as many as it
 * may have calls executing, so no call waits for a channel (a wait cost a context switch or two
 * per call: bench/isolation). Channels are cheap while idle: a sparse memfd and a sleeping
 * thread, and the server returns a channel's pages beyond 1 MiB after each large call. */
static int64_t deployment_channels(const deploy_manager *m, const ds_deploy_options *o)
{
    if (o->workers > 0)
        return o->workers;
    int64_t n = deployment_max_in_flight(m, o);
    return n > 0 && n < WORKER_MAX_CHANNELS ? n : WORKER_MAX_CHANNELS;
}

static bool deployment_isolated(const deploy_manager *m, const ds_deploy_options *o)
{
    ds_isolation iso =
        o->isolation != DS_ISOLATION_DEFAULT ? o->isolation : m->env.default_isolation;
    return iso == DS_ISOLATION_PROCESS;
}

/* The shared object a version runs on: its backend, looked up again in the backend directory
 * (so an installation that moved still finds it), else the path recorded at registration. */
static const char *deployment_plugin_path(const deploy_manager *m, const reg_version *v, char *buf,
                                          size_t len)
{
    char err[256];
    if (v->backend[0] != '\0' && m->env.backend_dir[0] != '\0' &&
        artifact_backend_path(m->env.backend_dir, v->backend, buf, len, err, sizeof err) == 0)
        return buf;
    return v->plugin_path;
}

/* Start the worker of an isolated deployment. 0, or -1 with err; -2 when the worker ran and the
 * plugin refused (for a model directory: its artifact or config is bad). */
static int deployment_load_isolated(deploy_manager *m, deployment *d, const reg_version *v,
                                    char *err, size_t errlen)
{
    char label[2 * REG_NAME_MAX + 32], so[4096];
    snprintf(label, sizeof label, "model %s version %s", v->name, v->version);
    const ds_deploy_options *o = &d->opts;
    if (v->artifact_dir != NULL && v->artifact_dir[0] != '\0')
        artifact_share_with_worker(v->artifact_dir); /* stored before it was made readable */
    worker_config cfg = {.plugin_path = deployment_plugin_path(m, v, so, sizeof so),
                         .config_json = v->config_json,
                         .label = label,
                         .host = m->env.host,
                         .channels = (unsigned)deployment_channels(m, o),
                         .call_timeout_ms = (int)deployment_timeout(m, o),
                         .limits = {.memory_bytes = o->memory_limit_mb * 1024 * 1024,
                                    .open_files = o->max_open_files,
                                    .cpu_ms_per_call = o->cpu_limit_ms},
                         .on_event = deployment_on_worker_event,
                         .event_ud = d,
                         .model_name = v->name,
                         .model_version = v->version,
                         .deployment_id = d->label.label,
                         .artifact_dir =
                             v->artifact_dir && v->artifact_dir[0] ? v->artifact_dir : NULL,
                         .instance_count = o->instance_count > 0 ? (unsigned)o->instance_count : 1};
    int rc = worker_start(&cfg, &d->worker, err, errlen);
    if (rc != 0)
        return rc;
    d->t.api = worker_api(d->worker);
    d->t.model = worker_model(d->worker);
    d->t.instance = d->worker;
    return 0;
}

/* Load the plugin in this process and create its pool of instances. 0, or -1 with *res set.
 * The crash journal blames a crash in the entry or create on journal_id. */
static int deployment_load_inproc(deploy_manager *m, deployment *d, const reg_version *v,
                                  int64_t journal_id, deploy_result *res, deploy_fail_reason *why)
{
    char err[512] = "", path[4200], so[4096];
    const char *src = deployment_plugin_path(m, v, so, sizeof so);
    int rc = 0;
    if (m->env.data_dir[0] == '\0')
        snprintf(path, sizeof path, "%s", src);
    else
        rc = store_private_copy(m->env.data_dir, src, v->name, v->version, path, sizeof path, err,
                                sizeof err);
    crash_journal_enter(journal_id);
    if (rc == 0)
        rc = loader_open(path, m->env.host, &d->plugin, err, sizeof err);
    if (rc != 0) {
        *why = DEPLOY_FAIL_OPEN;
        *res =
            deploy_fail(DEPLOY_INTERNAL, "cannot load %s version %s: %s", v->name, v->version, err);
    } else {
        loader_instance_args args = {.model_name = v->name,
                                     .model_version = v->version,
                                     .deployment_id = d->label.label,
                                     .artifact_dir = v->artifact_dir,
                                     .config_json = v->config_json,
                                     .deployment = &d->label};
        uint32_t count = d->opts.instance_count > 0 ? (uint32_t)d->opts.instance_count : 1;
        if ((rc = pool_create(d->plugin, &args, count, &d->pool, err, sizeof err)) != 0) {
            *why = DEPLOY_FAIL_CREATE;
            *res = deploy_fail(v->backend[0] ? DEPLOY_BAD_ARTIFACT : DEPLOY_INTERNAL,
                               "cannot create %s version %s: %s", v->name, v->version, err);
            loader_close(d->plugin);
            d->plugin = NULL;
        }
    }
    crash_journal_leave();
    if (rc == 0) {
        d->t.api = loader_api(d->plugin);
        d->t.model = pool_model(d->pool);
        d->t.pool = d->pool;
        d->t.mem = &d->mem;
    }
    return rc;
}

/* The batching queue the options ask for, checked against the loaded plugin: it needs
 * execute_batch, at most the plugin's max_batch_size requests, and runs in process only.
 * 0 (d->batcher set, or NULL when batching is off), or -1 with *res an INVALID (a 400). */
static int deployment_batcher(deployment *d, deploy_result *res)
{
    const ds_deploy_options *o = &d->opts;
    if (o->max_batch_size == 0)
        return 0;
    if (d->t.isolated) {
        *res = deploy_fail(DEPLOY_INVALID,
                           "dynamic batching (max_batch_size) runs in process only; %s version "
                           "%s would run isolated (--isolation process)",
                           d->model_name, d->version);
        return -1;
    }
    const ds_plugin_api *api = d->t.api;
    if (api->execute_batch == NULL || api->max_batch_size == 0) {
        *res = deploy_fail(DEPLOY_INVALID,
                           "%s version %s does not support dynamic batching (its plugin has no "
                           "execute_batch)",
                           d->model_name, d->version);
        return -1;
    }
    if ((uint64_t)o->max_batch_size > api->max_batch_size) {
        *res = deploy_fail(DEPLOY_INVALID,
                           "max_batch_size %lld is above what %s version %s can run in one call "
                           "(%u)",
                           (long long)o->max_batch_size, d->model_name, d->version,
                           api->max_batch_size);
        return -1;
    }
    batch_config cfg = {.max_batch_size = (uint32_t)o->max_batch_size,
                        .max_requests = api->max_batch_size,
                        .max_queue_delay_us = (uint64_t)o->max_queue_delay_us,
                        .preferred_count = (uint32_t)o->preferred_batch_count};
    for (uint32_t i = 0; i < cfg.preferred_count && i < BATCH_MAX_PREFERRED; i++)
        cfg.preferred[i] = (uint32_t)o->preferred_batch_sizes[i];
    if ((d->batcher = batcher_new(&cfg)) == NULL) {
        *res = deploy_fail(DEPLOY_INTERNAL, "out of memory");
        return -1;
    }
    d->t.batcher = d->batcher;
    return 0;
}

deployment *deployment_load(deploy_manager *m, const reg_version *v, const ds_deploy_options *opts,
                            int64_t journal_id, deploy_result *res)
{
    deployment *d = calloc(1, sizeof *d);
    if (d == NULL) {
        *res = deploy_fail(DEPLOY_INTERNAL, "out of memory");
        return NULL;
    }
    d->mgr = m;
    d->opts = *opts;
    pthread_mutex_init(&d->reason_lock, NULL);
    admission_init(&d->adm, deployment_max_in_flight(m, opts), opts->max_queue);
    rl_bucket_init(&d->rate, opts->rate_limit, rl_now_ns());
    snprintf(d->model_name, sizeof d->model_name, "%s", v->name);
    snprintf(d->version, sizeof d->version, "%s", v->version);
    snprintf(d->backend, sizeof d->backend, "%s", v->backend);
    snprintf(d->infer_path, sizeof d->infer_path, "/v2/models/%s/versions/%s/infer", v->name,
             v->version);
    host_deployment_init(&d->label, v->name, v->version);
    d->t = (deploy_target){.model_name = d->model_name,
                           .version = d->version,
                           .endpoint_name = d->endpoint_name,
                           .backend = d->backend,
                           .stats = stats_new(),
                           .phases = phase_stats_new(),
                           .deployed_at = d->deployed_at,
                           .isolated = deployment_isolated(m, opts),
                           .timeout_ms = deployment_timeout(m, opts),
                           .admission = &d->adm,
                           .server_cap = &m->infer_cap,
                           .timeouts = &d->timeouts,
                           .last_timeout_s = &d->last_timeout_s,
                           .draining = &d->draining,
                           .call_starts = d->call_starts,
                           .call_slots = DEPLOY_CALL_SLOTS,
                           .rate = &d->rate};
    d->t.load = &d->load;
    int rc = -1;
    char err[512] = "";
    deploy_fail_reason why = DEPLOY_FAIL_MEMORY;
    d->load.rss_before = deploy_rss_bytes();
    uint64_t t0 = deploy_now_ns();
    if (d->t.stats == NULL || d->t.phases == NULL) {
        *res = deploy_fail(DEPLOY_INTERNAL, "out of memory");
    } else if (opts->max_batch_size > 0 && d->t.isolated) {
        why = DEPLOY_FAIL_OPTIONS;
        rc = deployment_batcher(d, res); /* refuses before a worker starts */
    } else if (!d->t.isolated) {
        if ((rc = deployment_load_inproc(m, d, v, journal_id, res, &why)) == 0) {
            why = DEPLOY_FAIL_OPTIONS;
            rc = deployment_batcher(d, res);
        }
    } else if ((rc = deployment_load_isolated(m, d, v, err, sizeof err)) != 0) {
        why = rc == -2 && v->backend[0] ? DEPLOY_FAIL_CREATE : DEPLOY_FAIL_WORKER;
        *res = deploy_fail(rc == -2 && v->backend[0] ? DEPLOY_BAD_ARTIFACT : DEPLOY_INTERNAL,
                           "cannot start %s version %s isolated: %s", v->name, v->version, err);
    }
    if (rc != 0) {
        deploy_count_failure(m, why);
        deployment_free(d);
        return NULL;
    }
    d->load.load_ns = deploy_now_ns() - t0;
    atomic_store(&d->load.rss_after, deploy_rss_bytes());
    deploy_count_load(m, d);
    return d;
}

int deployment_publish(deploy_manager *m, deploy_model *dm, deployment *d)
{
    d->model = dm;
    pthread_rwlock_wrlock(&dm->lock);
    if (dm->count == dm->cap) {
        size_t cap = dm->cap ? dm->cap * 2 : 4;
        deployment **grown = realloc(dm->versions, cap * sizeof *grown);
        if (grown != NULL)
            dm->versions = grown;
        int *weights = grown ? realloc(dm->weights, cap * sizeof *weights) : NULL;
        if (weights == NULL) {
            pthread_rwlock_unlock(&dm->lock);
            return -1;
        }
        dm->weights = weights;
        dm->cap = cap;
    }
    size_t at = 0;
    while (at < dm->count && deploy_version_cmp(dm->versions[at]->version, d->version) > 0)
        at++;
    memmove(dm->versions + at + 1, dm->versions + at, (dm->count - at) * sizeof *dm->versions);
    memmove(dm->weights + at + 1, dm->weights + at, (dm->count - at) * sizeof *dm->weights);
    dm->versions[at] = d;
    dm->weights[at] = 0;
    dm->count++;
    pthread_rwlock_unlock(&dm->lock);

    if (d->endpoint_name[0] != '\0') {
        pthread_rwlock_wrlock(&m->index_lock);
        size_t b = deploy_hash(d->endpoint_name) % DEPLOY_BUCKETS;
        d->next_endpoint = m->endpoints[b];
        m->endpoints[b] = d;
        pthread_rwlock_unlock(&m->index_lock);
    }
    const deploy_router *r = &m->env.router;
    if (r->add(r->ctx, d->infer_path, (deploy_route){.version = d}) != 0)
        return -1;
    if (!dm->route_added) {
        if (r->add(r->ctx, dm->infer_path, (deploy_route){.model = dm}) != 0)
            return -1;
        dm->route_added = true;
    }
    return 0;
}

void deployment_untable(deploy_manager *m, deploy_model *dm, deployment *d)
{
    pthread_rwlock_wrlock(&dm->lock);
    ssize_t i = deploy_model_index(dm, d->version);
    if (i >= 0) {
        int removed = dm->weights[i];
        size_t after = dm->count - (size_t)i - 1;
        memmove(dm->versions + i, dm->versions + i + 1, after * sizeof *dm->versions);
        memmove(dm->weights + i, dm->weights + i + 1, after * sizeof *dm->weights);
        dm->count--;
        /* Same critical section: no request can see the version gone but its weight unspread. */
        if (dm->has_split)
            dm->has_split = split_spread_removed(dm->weights, dm->count, removed);
    }
    if (strcmp(dm->shadow_version, d->version) == 0) /* the shadow goes with its version */
        atomic_store(&dm->shadow_percent, 0);
    pthread_rwlock_unlock(&dm->lock);
    atomic_store(&d->draining, true);

    if (d->endpoint_name[0] != '\0') {
        pthread_rwlock_wrlock(&m->index_lock);
        deployment **p = &m->endpoints[deploy_hash(d->endpoint_name) % DEPLOY_BUCKETS];
        while (*p != NULL && *p != d)
            p = &(*p)->next_endpoint;
        if (*p == d)
            *p = d->next_endpoint;
        pthread_rwlock_unlock(&m->index_lock);
    }
}

/* The model's unversioned route stays registered: with no version live it answers 404 itself,
 * and removing it would wait for every call inside it. */
bool deployment_drain(deploy_manager *m, deployment *d, int wait_ms)
{
    pthread_mutex_lock(&m->router_gate);
    if (m->router_live) {
        const deploy_router *r = &m->env.router;
        r->remove(r->ctx, d->infer_path); /* waits for calls inside the versioned handler */
    }
    pthread_mutex_unlock(&m->router_gate);
    /* References taken before the tables changed (unversioned route, /predict, metadata) finish
     * here; none can be taken any more. */
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 200000};
    for (long waits = 1; atomic_load_explicit(&d->refs, memory_order_acquire) > 0; waits++) {
        if (wait_ms >= 0 && waits / 5 >= wait_ms)
            return false;
        nanosleep(&pause, NULL);
        if (waits % 25000 == 0) /* every ~5 s: a request is slow, or a reference leaked */
            log_warn("undeploy of %s version %s still waits for %d request(s)", d->model_name,
                     d->version, atomic_load(&d->refs));
    }
    return true;
}

/* Afterwards nothing can reach d. */
void deployment_unpublish(deploy_manager *m, deploy_model *dm, deployment *d)
{
    deployment_untable(m, dm, d);
    deployment_drain(m, d, -1);
}

void deployment_save_stats(deploy_manager *m, const deployment *d)
{
    stats_snapshot s;
    stats_snapshot_get(d->t.stats, &s);
    reg_stats rs = {.request_count = s.request_count,
                    .error_4xx = s.error_4xx,
                    .error_5xx = s.error_5xx,
                    .latency_sum_ms = s.latency_sum_ms,
                    .last_request_unix_ms = s.last_request_unix_ms};
    char err[256];
    if (registry_stats_save(m->env.reg, d->t.deployment_id, &rs, err, sizeof err) != REG_OK)
        log_warn("saving stats of %s version %s: %s", d->model_name, d->version, err);
}

/* ---- deploy ------------------------------------------------------------------------------- */

deploy_result deploy_from_registry(reg_status rs, const char *err)
{
    switch (rs) {
    case REG_NOT_FOUND: return deploy_fail(DEPLOY_NOT_FOUND, "%s", err);
    case REG_EXISTS: return deploy_fail(DEPLOY_CONFLICT, "%s", err);
    case REG_CONFLICT: return deploy_fail(DEPLOY_CONFLICT, "%s", err);
    case REG_INVALID: return deploy_fail(DEPLOY_INVALID, "%s", err);
    default: return deploy_fail(DEPLOY_INTERNAL, "registry: %s", err);
    }
}

void deploy_event(deploy_manager *m, const char *kind, const char *model, const char *version,
                  const char *reason)
{
    char detail[768];
    ds_buf b = DS_BUF_INIT;
    buf_append_str(&b, "{\"reason\":");
    buf_append_json_string(&b, reason, strlen(reason));
    buf_append_char(&b, '}');
    snprintf(detail, sizeof detail, "%s", b.failed ? "{}" : b.data);
    buf_free(&b);
    char err[256];
    if (registry_event_add(m->env.reg, kind, model, version, detail, err, sizeof err) != REG_OK)
        log_warn("recording %s event for %s version %s: %s", kind, model, version, err);
}

/* A version whose files the backend refused shows as a "failed" deployment with the reason
 * (GET /deployments, the dashboard), like one that failed to come back after a restart. */
static void deploy_record_failed(deploy_manager *m, const char *model, const char *version,
                                 const char *endpoint_name, const char *why)
{
    char err[512];
    reg_deployment row = {0};
    if (registry_deployment_create(m->env.reg, model, version, endpoint_name, &row, err,
                                   sizeof err) != REG_OK ||
        registry_deployment_end(m->env.reg, row.id, "failed", why, err, sizeof err) != REG_OK)
        log_warn("recording the failed deployment of %s version %s: %s", model, version, err);
    reg_deployment_free(&row);
}

bool deploy_taken_locked(const deploy_model *dm, const char *version, deploy_result *res)
{
    if (deploy_model_index(dm, version) >= 0) {
        *res = deploy_fail(DEPLOY_CONFLICT, "%s version %s is already deployed", dm->name, version);
        return true;
    }
    for (const deployment *d = dm->draining; d != NULL; d = d->next_draining)
        if (strcmp(d->version, version) == 0) {
            *res = deploy_fail(DEPLOY_CONFLICT, "%s version %s is still draining from its undeploy",
                               dm->name, version);
            return true;
        }
    return false;
}

/* Record and publish a loaded deployment. Lifecycle held. */
static deploy_result deploy_record_locked(deploy_manager *m, deploy_model *dm, deployment *d,
                                          const char *endpoint_name, reg_deployment *out)
{
    char err[512] = "";
    ds_buf opts = DS_BUF_INIT;
    deploy_options_to_json(&d->opts, &opts);
    reg_deployment row = {0};
    reg_status rs =
        registry_deployment_create_with(m->env.reg, dm->name, d->version, endpoint_name,
                                        opts.failed ? NULL : opts.data, &row, err, sizeof err);
    buf_free(&opts);
    if (rs != REG_OK)
        return deploy_from_registry(rs, err);
    d->t.deployment_id = row.id;
    snprintf(d->endpoint_name, sizeof d->endpoint_name, "%s", row.endpoint_name);
    snprintf(d->deployed_at, sizeof d->deployed_at, "%s", row.deployed_at);
    if (deployment_publish(m, dm, d) != 0) {
        deployment_unpublish(m, dm, d);
        registry_deployment_end(m->env.reg, row.id, "failed", "out of memory adding routes", err,
                                sizeof err);
        reg_deployment_free(&row);
        return deploy_fail(DEPLOY_INTERNAL, "out of memory adding routes");
    }
    log_info("deployed %s version %s at %s%s", dm->name, d->version, d->infer_path,
             d->t.isolated ? " (process isolation)" : "");
    if (out != NULL)
        *out = row;
    else
        reg_deployment_free(&row);
    return deploy_ok();
}

/* ---- lifecycle states (Triton's repository index) ---------------------------------------- */

int deploy_transit_begin(deploy_manager *m, const char *model, const char *version,
                         deploy_state state)
{
    pthread_mutex_lock(&m->transit_lock);
    int slot = -1;
    for (int i = 0; i < DEPLOY_TRANSITS && slot < 0; i++)
        if (m->transit[i].state == DEPLOY_STATE_NONE) {
            snprintf(m->transit[i].model, sizeof m->transit[i].model, "%s", model);
            snprintf(m->transit[i].version, sizeof m->transit[i].version, "%s", version);
            m->transit[i].state = state;
            slot = i;
        }
    pthread_mutex_unlock(&m->transit_lock);
    return slot;
}

void deploy_transit_end(deploy_manager *m, int slot)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&m->transit_lock);
    m->transit[slot].state = DEPLOY_STATE_NONE;
    pthread_mutex_unlock(&m->transit_lock);
}

/* true when (dm, version) is undeployed but a call still holds it. */
static bool deploy_is_draining(deploy_model *dm, const char *version)
{
    pthread_mutex_lock(&dm->lifecycle);
    bool found = false;
    for (const deployment *d = dm->draining; d != NULL && !found; d = d->next_draining)
        found = strcmp(d->version, version) == 0;
    pthread_mutex_unlock(&dm->lifecycle);
    return found;
}

deploy_state deploy_state_of(deploy_manager *m, const char *model, const char *version)
{
    deploy_state st = DEPLOY_STATE_NONE;
    pthread_mutex_lock(&m->transit_lock);
    for (int i = 0; i < DEPLOY_TRANSITS && st == DEPLOY_STATE_NONE; i++)
        if (m->transit[i].state != DEPLOY_STATE_NONE && strcmp(m->transit[i].model, model) == 0 &&
            strcmp(m->transit[i].version, version) == 0)
            st = m->transit[i].state;
    pthread_mutex_unlock(&m->transit_lock);
    if (st != DEPLOY_STATE_NONE)
        return st;
    deployment *d = deploy_acquire(m, model, version, NULL);
    if (d != NULL) {
        deploy_release(d);
        return DEPLOY_STATE_READY;
    }
    deploy_model *dm = deploy_model_find(m, model);
    return dm != NULL && deploy_is_draining(dm, version) ? DEPLOY_STATE_UNLOADING
                                                         : DEPLOY_STATE_NONE;
}

deploy_model *deploy_model_lookup(deploy_manager *m, const char *name)
{
    return deploy_model_find(m, name);
}

static deploy_result deploy_start_now(deploy_manager *m, const char *model, const char *version,
                                      const char *endpoint_name, const ds_deploy_options *opts,
                                      reg_deployment *out)
{
    static const ds_deploy_options none;
    uint64_t start_ns = deploy_now_ns();
    if (!name_valid(model) || !name_valid(version))
        return deploy_fail(DEPLOY_INVALID, "model name and version must match " NAME_RULE);
    if (endpoint_name != NULL && endpoint_name[0] != '\0' && !name_valid(endpoint_name))
        return deploy_fail(DEPLOY_INVALID, "endpoint_name must match " NAME_RULE);
    /* The registry first: a name that is not registered never gets a model entry (entries
     * live as long as the manager, so clients could otherwise grow memory one unknown name at
     * a time). */
    char err[512] = "";
    reg_version v = {0};
    reg_status rs = registry_version_get(m->env.reg, model, version, &v, err, sizeof err);
    if (rs != REG_OK)
        return rs == REG_NOT_FOUND
                   ? deploy_fail(DEPLOY_NOT_FOUND, "model %s version %s is not registered", model,
                                 version)
                   : deploy_from_registry(rs, err);
    deploy_model *dm = deploy_model_get(m, model);
    if (dm == NULL) {
        reg_version_free(&v);
        return deploy_fail(DEPLOY_INTERNAL, "out of memory");
    }
    deploy_result res = deploy_ok();
    /* An undeploy that came from another replica drains in the background (deploy_retire): a
     * deploy of the same version right after it waits for that drain, briefly, rather than
     * answering 409 for a state the caller cannot see. */
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 5000000};
    for (int i = 0; i < DEPLOY_REDEPLOY_WAIT_MS / 5 && deploy_is_draining(dm, version); i++)
        nanosleep(&pause, NULL);
    pthread_mutex_lock(&dm->lifecycle);
    bool taken = deploy_taken_locked(dm, version, &res);
    pthread_mutex_unlock(&dm->lifecycle);
    if (taken) {
        reg_version_free(&v);
        return res;
    }
    /* On a shared registry, a version another replica registered is fetched (and checked)
     * into this data dir first. */
    if (deploy_blobs_localize(m->env.reg, m->env.data_dir, &v, err, sizeof err) != 0) {
        res = deploy_fail(DEPLOY_INTERNAL, "cannot fetch %s version %s: %s", model, version, err);
        reg_version_free(&v);
        deploy_event(m, "deploy_failed", dm->name, version, res.message);
        return res;
    }
    /* The plugin loads (or its worker starts) without the lifecycle lock: readers of this model
     * and its other changes never wait for plugin code. A concurrent deploy of the same version
     * loses at the second check. */
    deployment *d = deployment_load(m, &v, opts ? opts : &none, 0, &res);
    reg_version_free(&v);
    if (d == NULL) {
        deploy_event(m, "deploy_failed", dm->name, version, res.message);
        if (res.code == DEPLOY_BAD_ARTIFACT)
            deploy_record_failed(m, dm->name, version, endpoint_name, res.message);
        return res;
    }
    pthread_mutex_lock(&dm->lifecycle);
    if (!deploy_taken_locked(dm, version, &res))
        res = deploy_record_locked(m, dm, d, endpoint_name, out);
    if (res.code == DEPLOY_OK) { /* under lifecycle: an undeploy cannot free d meanwhile */
        atomic_store(&d->load.ready_ns, deploy_now_ns() - start_ns);
        atomic_store(&d->load.rss_after, deploy_rss_bytes());
    }
    pthread_mutex_unlock(&dm->lifecycle);
    if (res.code != DEPLOY_OK)
        deployment_free(d);
    return res;
}

deploy_result deploy_start(deploy_manager *m, const char *model, const char *version,
                           const char *endpoint_name, const ds_deploy_options *opts,
                           reg_deployment *out)
{
    bool named = name_valid(model) && name_valid(version);
    int slot = named ? deploy_transit_begin(m, model, version, DEPLOY_STATE_LOADING) : -1;
    deploy_result r = deploy_start_now(m, model, version, endpoint_name, opts, out);
    deploy_transit_end(m, slot);
    return r;
}

void deploy_manager_router_stopped(deploy_manager *m)
{
    pthread_mutex_lock(&m->router_gate);
    m->router_live = false;
    pthread_mutex_unlock(&m->router_gate);
}

/* Wait until no drain thread runs, at most ms. true when none does. */
static bool deploy_wait_drains(deploy_manager *m, int ms)
{
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
    for (int waited = 0; atomic_load(&m->drains) > 0; waited++) {
        if (waited >= ms)
            return false;
        nanosleep(&pause, NULL);
    }
    return true;
}

void deploy_manager_free(deploy_manager *m)
{
    if (m == NULL)
        return;
    deploy_flush_stats(m);
    int wait_ms = m->env.drain_timeout_ms;
    bool stuck = false; /* a call never returned: leave its memory to the exiting process */
    for (size_t b = 0; b < DEPLOY_BUCKETS; b++)
        for (deploy_model *dm = m->models[b]; dm != NULL; dm = dm->next) {
            while (dm->count > 0) { /* routes out (while serving), requests drained, bounded */
                deployment *d = dm->versions[dm->count - 1];
                deployment_untable(m, dm, d);
                if (deployment_drain(m, d, wait_ms))
                    deployment_free(d);
                else
                    stuck = true;
            }
            pthread_mutex_lock(&m->router_gate);
            if (m->router_live && dm->route_added) /* dm is freed below: its route goes first */
                m->env.router.remove(m->env.router.ctx, dm->infer_path);
            dm->route_added = false;
            pthread_mutex_unlock(&m->router_gate);
        }
    if (!deploy_wait_drains(m, wait_ms) || stuck) {
        log_warn("shutdown: plugin calls still running after %d ms; not waiting for them", wait_ms);
        return;
    }
    for (size_t b = 0; b < DEPLOY_BUCKETS; b++) {
        deploy_model *dm = m->models[b];
        while (dm != NULL) {
            deploy_model *next = dm->next;
            free(dm->versions);
            free(dm->weights);
            pthread_mutex_destroy(&dm->lifecycle);
            pthread_rwlock_destroy(&dm->lock);
            free(dm);
            dm = next;
        }
    }
    pthread_mutex_destroy(&m->router_gate);
    pthread_rwlock_destroy(&m->index_lock);
    pthread_mutex_destroy(&m->transit_lock);
    free(m);
}

/* ---- request path --------------------------------------------------------------------------- */

deployment *deploy_ref(deployment *d)
{
    atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return d;
}

void deploy_release(deployment *d)
{
    if (d != NULL)
        atomic_fetch_sub_explicit(&d->refs, 1, memory_order_release);
}

const deploy_target *deploy_target_of(const deployment *d)
{
    return &d->t;
}

const char *deploy_infer_path(const deployment *d)
{
    return d->infer_path;
}

const char *deploy_model_name(const deploy_model *dm)
{
    return dm->name;
}

const char *deploy_model_infer_path(const deploy_model *dm)
{
    return dm->infer_path;
}

/* Caller holds dm->lock (read). */
static deployment *deploy_pick_locked(const deploy_model *dm, const char *routing_key)
{
    if (dm->count == 0)
        return NULL;
    if (!dm->has_split)
        return dm->versions[0];
    return dm->versions[split_pick(dm->weights, dm->count, split_point(routing_key))];
}

deployment *deploy_acquire_from_model(deploy_model *dm, const char *routing_key)
{
    pthread_rwlock_rdlock(&dm->lock);
    deployment *d = deploy_pick_locked(dm, routing_key);
    if (d != NULL)
        deploy_ref(d);
    pthread_rwlock_unlock(&dm->lock);
    return d;
}

deployment *deploy_acquire(deploy_manager *m, const char *model, const char *version,
                           const char *routing_key)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return NULL;
    if (version == NULL)
        return deploy_acquire_from_model(dm, routing_key);
    pthread_rwlock_rdlock(&dm->lock);
    ssize_t i = deploy_model_index(dm, version);
    deployment *d = i >= 0 ? deploy_ref(dm->versions[i]) : NULL;
    pthread_rwlock_unlock(&dm->lock);
    return d;
}

deployment *deploy_acquire_endpoint(deploy_manager *m, const char *endpoint_name)
{
    pthread_rwlock_rdlock(&m->index_lock);
    deployment *d = m->endpoints[deploy_hash(endpoint_name) % DEPLOY_BUCKETS];
    while (d != NULL && strcmp(d->endpoint_name, endpoint_name) != 0)
        d = d->next_endpoint;
    if (d != NULL)
        deploy_ref(d);
    pthread_rwlock_unlock(&m->index_lock);
    return d;
}

size_t deploy_versions(deploy_manager *m, const char *model, char (*versions)[REG_NAME_MAX + 1],
                       size_t max, deployment **newest)
{
    if (newest != NULL)
        *newest = NULL;
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return 0;
    pthread_rwlock_rdlock(&dm->lock);
    size_t n = dm->count < max ? dm->count : max;
    for (size_t i = 0; i < n; i++)
        memcpy(versions[i], dm->versions[i]->version, REG_NAME_MAX + 1);
    if (newest != NULL && dm->count > 0)
        *newest = deploy_ref(dm->versions[0]);
    pthread_rwlock_unlock(&dm->lock);
    return n;
}

deploy_model_list deploy_models_snapshot(deploy_manager *m)
{
    deploy_model_list l = {0};
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

void deploy_foreach(deploy_manager *m, deploy_visit_fn fn, void *ud)
{
    pthread_rwlock_rdlock(&m->index_lock);
    for (size_t b = 0; b < DEPLOY_BUCKETS; b++) {
        for (deploy_model *dm = m->models[b]; dm != NULL; dm = dm->next) {
            pthread_rwlock_rdlock(&dm->lock);
            for (size_t i = 0; i < dm->count; i++)
                fn(ud, &dm->versions[i]->t, dm->has_split ? dm->weights[i] : -1);
            pthread_rwlock_unlock(&dm->lock);
        }
    }
    pthread_rwlock_unlock(&m->index_lock);
}

typedef struct stats_batch {
    int64_t *ids;
    reg_stats *totals;
    size_t count, cap;
} stats_batch;

static void deploy_collect_stats(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    stats_batch *b = ud;
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int64_t *ids = realloc(b->ids, cap * sizeof *ids);
        if (ids != NULL)
            b->ids = ids;
        reg_stats *totals = ids ? realloc(b->totals, cap * sizeof *totals) : NULL;
        if (totals == NULL)
            return; /* out of memory: this round saves fewer; the next flush catches up */
        b->totals = totals;
        b->cap = cap;
    }
    stats_snapshot s;
    stats_snapshot_get(t->stats, &s);
    b->ids[b->count] = t->deployment_id;
    b->totals[b->count++] = (reg_stats){.request_count = s.request_count,
                                        .error_4xx = s.error_4xx,
                                        .error_5xx = s.error_5xx,
                                        .latency_sum_ms = s.latency_sum_ms,
                                        .last_request_unix_ms = s.last_request_unix_ms};
}

void deploy_flush_stats(deploy_manager *m)
{
    /* Snapshot under the read locks, write after releasing them: a registry write may wait for
     * the disk, and deploys must not wait for that. */
    stats_batch b = {0};
    deploy_foreach(m, deploy_collect_stats, &b);
    char err[256];
    if (registry_stats_save_many(m->env.reg, b.ids, b.totals, b.count, err, sizeof err) != REG_OK)
        log_warn("saving stats of %zu deployments: %s", b.count, err);
    free(b.ids);
    free(b.totals);
}

/* Store `limit` in the options of d's registry row (so a restart restores it) and record an
 * event "limits". The live options (d->opts) stay as deployed: they are read without a lock;
 * the limit in effect lives in d->rate. Caller holds the model's lifecycle lock. */
static deploy_result deploy_persist_rate_limit(deploy_manager *m, const deployment *d,
                                               rl_limit limit)
{
    ds_deploy_options o = d->opts;
    o.rate_limit = limit;
    ds_buf opts = DS_BUF_INIT, detail = DS_BUF_INIT;
    deploy_options_to_json(&o, &opts);
    ds_deploy_options only = {.rate_limit = limit};
    deploy_options_to_json(&only, &detail);
    char err[256];
    reg_status rs = REG_ERROR;
    if (!opts.failed && !detail.failed)
        rs = registry_deployment_set_options(m->env.reg, d->t.deployment_id, opts.data, "limits",
                                             detail.data, err, sizeof err);
    else
        snprintf(err, sizeof err, "out of memory");
    buf_free(&opts);
    buf_free(&detail);
    if (rs != REG_OK)
        return deploy_fail(DEPLOY_INTERNAL, "cannot store the rate limit of %s version %s: %s",
                           d->model_name, d->version, err);
    return deploy_ok();
}

deploy_result deploy_set_rate_limit(deploy_manager *m, const char *model, const char *version,
                                    rl_limit limit)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return deploy_fail(DEPLOY_NOT_FOUND, "%s version %s is not deployed", model, version);
    /* lifecycle, then the model's lock (the order traffic changes use; never the manager's
     * index lock under lifecycle): concurrent changes reach the registry in the order they
     * reach the bucket */
    pthread_mutex_lock(&dm->lifecycle);
    pthread_rwlock_rdlock(&dm->lock);
    ssize_t i = deploy_model_index(dm, version);
    deployment *d = i >= 0 ? deploy_ref(dm->versions[i]) : NULL;
    pthread_rwlock_unlock(&dm->lock);
    deploy_result r =
        deploy_fail(DEPLOY_NOT_FOUND, "%s version %s is not deployed", model, version);
    if (d != NULL) {
        r = d->t.deployment_id > 0 ? deploy_persist_rate_limit(m, d, limit) : deploy_ok();
        if (r.code == DEPLOY_OK)
            rl_bucket_set(&d->rate, limit);
        deploy_release(d);
    }
    pthread_mutex_unlock(&dm->lifecycle);
    return r;
}

bool deploy_get_rate_limit(deploy_manager *m, const char *model, const char *version, rl_limit *out)
{
    deployment *d = deploy_acquire(m, model, version, NULL);
    if (d == NULL)
        return false;
    *out = rl_bucket_limit(&d->rate);
    deploy_release(d);
    return true;
}
