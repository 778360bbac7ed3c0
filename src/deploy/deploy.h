/*
 * deploy: the deployment manager. It owns every live deployment and its lifecycle:
 *
 *   deploy:   load plugin + create instance -> registry row (one transaction) -> add to the
 *             model's version table -> add the infer route(s) through the router
 *   undeploy: take out of the version table, split and endpoint map -> remove route(s) (the
 *             router waits for in-flight calls) -> wait until no request holds a reference
 *             (drain) -> destroy instance -> dlclose -> registry row ended
 *
 * and the per-model state requests are routed by: deployed versions, the canary traffic split
 * and its guard (split.h, guard.h), the seed-style endpoint names.
 *
 * It knows no HTTP: routes are added and removed through a deploy_router that main wires to the
 * HTTP server (serve/serve.h provides one), and results are deploy_status codes that
 * http/reply.c maps to HTTP statuses.
 *
 * Files: manager.c (tables, deploy/undeploy, references), restore.c (restart recovery),
 * traffic.c (splits and guards of the live models), split.c and guard.c (pure arithmetic),
 * stats.c (per-deployment counters); deploy_internal.h is what they share.
 *
 * Concurrency:
 *   - deploy/undeploy/traffic changes of one model are serialized by that model's lifecycle
 *     mutex, which may be held for a dlopen; different models proceed in parallel.
 *   - requests never take a lifecycle mutex. They find a deployment under a read lock held for a
 *     few hundred nanoseconds (the model's rwlock, or the manager's index rwlock for endpoint
 *     names) and take a counted reference; writers hold those locks only to swap table entries,
 *     never across a dlopen, dlclose or registry write.
 *   - a reference keeps the deployment (plugin, instance, stats) alive until deploy_release.
 *   - model entries, once created, live until deploy_manager_free, so pointers to them are stable.
 */
#ifndef DS_DEPLOY_H
#define DS_DEPLOY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admission.h"
#include "buf.h"
#include "crash_journal.h"
#include "deploy_options.h"
#include "dynserve/plugin.h"
#include "ratelimit.h"
#include "errors.h"
#include "guard.h"
#include "phase_stats.h"
#include "registry.h"
#include "stats.h"

typedef struct deploy_manager deploy_manager;
typedef struct deployment deployment;     /* one live (model, version) */
typedef struct deploy_model deploy_model; /* one model name and its live versions */

/* What a request needs from a deployment. Valid while the caller holds a reference. */
/* What loading one deployment cost (issue 14 section 5), set while it loads; ready_ns and
 * rss_after again right after its route is published (atomic: readers may look meanwhile). */
typedef struct deploy_load_figures {
    uint64_t load_ns; /* dlopen + entry + create of every instance, or the worker's start */
    _Atomic uint64_t ready_ns; /* deploy call start -> route answering; 0 = restored at startup */
    int64_t rss_before;        /* process RSS (bytes) before the load; -1 = unknown */
    /* ... after it, and again once its route answers (registry row, routes and tables
     * included: what the deployment costs); atomic for the same reason as ready_ns */
    _Atomic int64_t rss_after;
} deploy_load_figures;

/* RSS growth attributable to one in-process deployment's calls (its load's is in
 * deploy_load_figures): the changes across sampled calls that ran while no other inference call
 * was admitted anywhere in the server (so the growth is its own). A plugin's memory is the
 * server's: nothing of it is reclaimed until the process ends, which is why only
 * "isolation":"process" (its worker is killed) gives it back. Atomics; written by calls, read by
 * the runtime view. */
typedef struct deploy_mem {
    atomic_int_fast64_t call_growth; /* sum of the RSS changes across sampled calls */
    atomic_uint_fast64_t sampled;    /* calls measured */
    _Atomic uint64_t next_sample_ns; /* CLOCK_MONOTONIC: no sample before this (one at a time) */
} deploy_mem;

typedef struct deploy_target {
    const char *model_name;
    const char *version;
    const char *endpoint_name; /* "" when none */
    const char *backend;       /* the backend's name for a version made of files, else "" */
    const ds_plugin_api *api;
    const ds_model_desc *model; /* the instances' IO (their own description, or the plugin's) */
    struct inst_pool *pool;     /* in-process: the instances (deploy_instance_acquire) */
    void *instance;             /* isolated: the worker proxy's instance (pool is NULL) */
    ds_stats *stats;
    int64_t deployment_id;
    /* limits and isolation (see deploy_options.h) */
    bool isolated;                       /* api/instance are a worker proxy (plugin/worker.h) */
    int64_t timeout_ms;                  /* effective deadline; 0 = none */
    admission *admission;                /* max_in_flight / max_queue; NULL = none */
    admission_cap *server_cap;           /* all deployments together (--thread-reserve) */
    deploy_mem *mem;                     /* in process: RSS growth (runtime.c); NULL isolated */
    atomic_uint_fast64_t *timeouts;      /* requests answered 504, lifetime of this deployment */
    atomic_int_fast64_t *last_timeout_s; /* CLOCK_MONOTONIC seconds of the last one, 0 = never */
    atomic_bool *draining;               /* undeployed: requests still holding it get a 404 */
    ds_phase_stats *phases;  /* Triton statistics: success/fail, queue/compute phases, shadow */
    const char *deployed_at; /* ISO-8601 UTC, from the registry row */
    /* in process with a deadline: start times (CLOCK_MONOTONIC ns, 0 = free) of calls running,
     * so a call stuck past its deadline shows the deployment "degraded" while it is stuck */
    _Atomic uint64_t *call_starts;
    unsigned call_slots;
    rl_bucket *rate;                 /* the deployment's rate limit (inactive unless set) */
    struct batcher *batcher;         /* dynamic batching queue (deploy/batcher.h); NULL = off */
    const deploy_load_figures *load; /* what loading it cost; lives as long as the target */
} deploy_target;

/* Around one plugin call of t serving `requests` admitted requests: measures the RSS change
 * when this call is the only inference in the server, at most once per DEPLOY_MEM_SAMPLE_NS
 * per deployment (two reads of /proc/self/statm then; otherwise two atomic loads). (runtime.c) */
typedef struct deploy_mem_probe {
    int64_t rss;
    uint64_t entered; /* the server cap's admissions when it began */
    bool on;
} deploy_mem_probe;
#define DEPLOY_MEM_SAMPLE_NS 10000000u
void deploy_mem_begin(const deploy_target *t, uint64_t now_ns, int64_t requests,
                      deploy_mem_probe *p);
void deploy_mem_end(const deploy_target *t, int64_t requests, const deploy_mem_probe *p);

/* Mark a call of t as running since start_ns; returns the slot to give back (-1: none taken).
 * (runtime.c) */
int deploy_call_begin(const deploy_target *t, uint64_t start_ns);
void deploy_call_end(const deploy_target *t, int slot);

/* An instance of t to run one request on (waits while every instance of a non-thread-safe
 * plugin is busy); hand *slot back with deploy_instance_release after execute returns. */
void *deploy_instance_acquire(const deploy_target *t, uint32_t *slot);
void deploy_instance_release(const deploy_target *t, uint32_t slot);

/* What a route leads to: exactly one of the two is set. */
typedef struct deploy_route {
    deployment *version; /* the versioned infer route of one deployment */
    deploy_model *model; /* the unversioned infer route of a model (routed by its split) */
} deploy_route;

/* How the manager adds and removes its infer routes (main wires it to the HTTP server).
 * add: 0, or -1 when memory runs out; the route stays until remove. remove: returns only once
 * no request that reached the route is still inside its handler. Both are called with the
 * model's lifecycle mutex held, never from inside a route's own handler. */
typedef struct deploy_router {
    void *ctx;
    int (*add)(void *ctx, const char *path, deploy_route target);
    void (*remove)(void *ctx, const char *path);
} deploy_router;

typedef struct deploy_env {
    registry *reg;
    deploy_router router;
    const ds_host_api *host; /* handed to every plugin (plugin/host.h); outlives the manager */
    char data_dir[4096];
    ds_isolation default_isolation; /* --isolation */
    int default_timeout_ms;         /* --default-timeout-ms */
    int drain_timeout_ms;           /* --drain-timeout-ms (0: 10000) */
    int default_max_in_flight;      /* --default-max-in-flight (0: no limit) */
    int max_inference_threads;      /* --threads minus --thread-reserve (0: no server cap) */
    bool had_crash;                 /* the crash journal's record from the last stop */
    crash_record crash;
    /* where backends live: <backend_dir>/<name>/libdynserve_<name>.so ("" = use the path the
     * version recorded at registration) */
    char backend_dir[4096];
} deploy_env;

/* Outcome of a management operation, in the manager's own terms: deploy_status (DEPLOY_OK,
 * DEPLOY_INVALID, DEPLOY_NOT_FOUND, DEPLOY_CONFLICT, DEPLOY_INTERNAL), declared in base/errors.h.
 */
typedef struct deploy_result {
    deploy_status code;
    char message[512]; /* why, when code is not DEPLOY_OK */
} deploy_result;

/* *out owned by the caller; release with deploy_manager_free. 0 or -1 (out of memory). */
int deploy_manager_new(const deploy_env *env, deploy_manager **out);
/* Unload everything (instances destroyed, dlclose) without touching the registry: deployments
 * stay active there and come back on the next start. Lifetime stats are flushed first.
 * While the router still serves, routes are removed and requests drained first. After the HTTP
 * server stopped, call deploy_manager_router_stopped() before this, so the router is not used.
 * No management call may run concurrently. */
void deploy_manager_free(deploy_manager *m);
/* The router given in deploy_env is gone (the HTTP server stopped; its routes went with it). */
void deploy_manager_router_stopped(deploy_manager *m);

/* Bring back every deployment the registry says is active; a version that cannot load is marked
 * failed with the reason. Returns how many came back. (restore.c) */
int deploy_restore(deploy_manager *m);

/* Deploy a registered version with options (NULL = none; stored with the deployment, see
 * deploy_options.h). DEPLOY_OK (*out filled when non-NULL), else INVALID, NOT_FOUND, CONFLICT,
 * BAD_ARTIFACT (a version made of files whose backend refused them: the deployment is then
 * recorded "failed" with the reason) or INTERNAL with a message. The lifecycle lock is not held
 * while the plugin loads (or its worker starts), so readers and other changes of the model never
 * wait for plugin code. */
deploy_result deploy_start(deploy_manager *m, const char *model, const char *version,
                           const char *endpoint_name, const ds_deploy_options *opts,
                           reg_deployment *out);
/* Undeploy by (model, version) or, when model is NULL, by endpoint name. The version leaves the
 * routing tables and the registry at once; a drain thread then removes its route and waits for
 * in-flight requests, which get drain_timeout_ms (< 0: the environment's) to finish. DEPLOY_OK
 * when all was released in that time; an isolated worker still busy is killed (DEPLOY_OK); an
 * in-process call still running leaves the deployment draining (DEPLOY_DRAINING): it is
 * released when the call returns. NOT_FOUND when not deployed; CONFLICT while an earlier
 * undeploy of the version still drains. The lifecycle lock is never held across the wait. */
deploy_result deploy_stop(deploy_manager *m, const char *model, const char *version,
                          const char *endpoint_name, int drain_timeout_ms);

/* What GET /deployments and /models/stats show about a live deployment beyond its registry row. */
typedef struct deploy_runtime {
    const char *status; /* "active", "degraded" (a deadline passed within a minute, or the
                           worker is restarting), "failed" (the worker gave up) */
    char reason[256];
    ds_deploy_options options;
    bool isolated;
    int worker_pid;
    int64_t worker_rss_bytes;
    unsigned worker_restarts, worker_crashes;
    const char *worker_state; /* static string */
    uint64_t timeouts, rejected;
    int64_t max_in_flight;    /* in effect: its own or --default-max-in-flight; 0 = no limit */
    deploy_load_figures load; /* copied (ready_ns read atomically) */
    /* in process (deploy_mem): RSS change across sampled calls */
    int64_t mem_call_growth;
    uint64_t mem_sampled, mem_calls; /* calls measured; requests answered since the load */
} deploy_runtime;

/* ---- lifecycle metrics (lifecycle_stats.c) -------------------------------------------------
 * Counters of loads, unloads and load failures by reason, the time unloads and drains took, and
 * the last unload of each model (what its undeploy cost: drain, destroy + dlclose, RSS before and
 * after). Process-wide since the manager started; lock-free reads (atomics) except the last
 * unload, read under the model's lifecycle lock. */
typedef enum deploy_fail_reason {
    DEPLOY_FAIL_OPEN,    /* the shared object did not load (copy, dlopen, entry, table) */
    DEPLOY_FAIL_CREATE,  /* an instance's create failed (or the backend refused the files) */
    DEPLOY_FAIL_WORKER,  /* the isolated worker did not start */
    DEPLOY_FAIL_OPTIONS, /* the options do not fit the plugin (batching) */
    DEPLOY_FAIL_MEMORY,  /* out of memory */
    DEPLOY_FAIL_REASONS
} deploy_fail_reason;
const char *deploy_fail_reason_name(deploy_fail_reason r); /* "open", "create", ... */

typedef struct deploy_lifecycle_counts {
    uint64_t loads, unloads;
    uint64_t failures[DEPLOY_FAIL_REASONS];
    uint64_t load_ns, unload_ns, drain_ns; /* sums over loads / unloads */
} deploy_lifecycle_counts;
void deploy_lifecycle_get(const deploy_manager *m, deploy_lifecycle_counts *out);

/* The last unload of `version` of `model` since the server started. */
typedef struct deploy_unload_figures {
    uint64_t drain_ns;  /* route removed -> last request done */
    uint64_t unload_ns; /* instances destroyed + dlclose (or the worker stopped) */
    int64_t rss_before; /* process RSS (bytes) before the unload, after it; -1 = unknown */
    int64_t rss_after;
} deploy_unload_figures;
bool deploy_last_unload(deploy_manager *m, const char *model, const char *version,
                        deploy_unload_figures *out);

/* This process's resident set in bytes (/proc/self/statm), or -1. One read; thread-safe. */
int64_t deploy_rss_bytes(void);

/* The server-wide inference cap: threads in inference now, the cap (0 = none), and requests
 * it refused. Atomics only. */
typedef struct deploy_server_load {
    int64_t busy, max;
    uint64_t rejected;
} deploy_server_load;
void deploy_server_load_get(deploy_manager *m, deploy_server_load *out);

/* The runtime view of (model, version); false when it is not live. Never waits for a plugin or
 * a drain. */
bool deploy_runtime_get(deploy_manager *m, const char *model, const char *version,
                        deploy_runtime *out);
/* Call fn for every deployment still draining after its undeploy answered DEPLOY_DRAINING. */
typedef void (*deploy_draining_fn)(void *ud, const char *model, const char *version,
                                   const char *endpoint_name);
void deploy_foreach_draining(deploy_manager *m, deploy_draining_fn fn, void *ud);

/* ---- traffic splits (traffic.c) ------------------------------------------------------------
 *
 * A split gives each live version an integer weight, summing to 100. The unversioned infer route
 * picks a version per request: by the hash of the routing key (sticky: one key, one version, as
 * long as the split is unchanged) or at random. A split is swapped under the model's write lock,
 * so a request sees the old split or the new one, never a mix. Every change is stored in the
 * registry (history kept for rollback) with an event. Once a second deploy_tick applies each
 * model's guard (guard.h): a breaching canary's weight moves to the baseline, the guard is marked
 * tripped with the figures, and an event records why.
 *
 * Thread-safety: these take the model's lifecycle mutex, so they are serialized with
 * deploy/undeploy of the same model and may be called from any thread. */

/* Make {versions[i]: weights[i]} the model's split. Every version must be live (CONFLICT
 * otherwise); weights are 0..100 and sum to 100 (INVALID). guard may be NULL (no guard). */
deploy_result deploy_traffic_set(deploy_manager *m, const char *model, const char *const *versions,
                                 const int *weights, size_t n, const deploy_guard *guard,
                                 const char *reason);
/* All traffic to one live version. */
deploy_result deploy_promote(deploy_manager *m, const char *model, const char *version);
/* Back to the split before the last change (versions no longer live are dropped and their weight
 * spread over the rest). DEPLOY_NOT_FOUND when there is no earlier split. */
deploy_result deploy_rollback(deploy_manager *m, const char *model);
/* Current splits of every model as JSON text appended to out:
 * [{"model_name","weights":{"1":90,...},"guard":{...,"state":"armed"|"tripped","reason"}}]. */
void deploy_traffic_describe(deploy_manager *m, ds_buf *out);
/* Once a second: evaluate the guards. Never waits behind a deploy of the same model. */
void deploy_tick(deploy_manager *m);

/* ---- request path: references -------------------------------------------------------- */

/* A deployment of (model, version); version NULL picks by the model's traffic split (sticky when
 * routing_key is non-NULL), or the newest deployed version without a split. NULL when none. */
deployment *deploy_acquire(deploy_manager *m, const char *model, const char *version,
                           const char *routing_key);
/* The same for a model handle (the unversioned route's target). */
deployment *deploy_acquire_from_model(deploy_model *dm, const char *routing_key);
/* By seed-style endpoint name. */
deployment *deploy_acquire_endpoint(deploy_manager *m, const char *endpoint_name);
/* A reference for a deployment the caller knows is alive (e.g. the versioned route's target,
 * which the router keeps alive during the handler call). */
deployment *deploy_ref(deployment *d);
void deploy_release(deployment *d);
const deploy_target *deploy_target_of(const deployment *d);
/* The path of the versioned infer route, e.g. "/v2/models/m/versions/1/infer". */
const char *deploy_infer_path(const deployment *d);
/* The model entry for a name (stable until deploy_manager_free), or NULL when the model was
 * never deployed. */
deploy_model *deploy_model_lookup(deploy_manager *m, const char *name);
/* The model's name and unversioned infer route path ("/v2/models/m/infer"). */
const char *deploy_model_name(const deploy_model *dm);
const char *deploy_model_infer_path(const deploy_model *dm);

/* ---- views ------------------------------------------------------------------------------ */

/* Deployed versions of `model`, newest first, copied into versions[] (each REG_NAME_MAX+1
 * bytes). Returns how many (0 when none), at most max. Also *newest: a deployment of the newest
 * version, referenced (caller releases) when non-NULL and count > 0. */
size_t deploy_versions(deploy_manager *m, const char *model, char (*versions)[REG_NAME_MAX + 1],
                       size_t max, deployment **newest);

/* Call fn for every live deployment, grouped by model, under the manager's index read lock and
 * the model's read lock (so the deployment stays alive during the call; fn must not call back
 * into the manager). traffic_weight is -1 for a model without a split. */
typedef void (*deploy_visit_fn)(void *ud, const deploy_target *t, int traffic_weight);
void deploy_foreach(deploy_manager *m, deploy_visit_fn fn, void *ud);

/* Version order as Triton's "latest" policy sees it: numbers numerically, else by text.
 * <0, 0, >0 like strcmp. Pure. */
int deploy_version_cmp(const char *a, const char *b);

/* Where a (model, version) is in its lifecycle right now: being deployed, live, being
 * undeployed, or none of these (not deployed; a failed restore shows in the registry only).
 * For Triton's repository index (LOADING, READY, UNLOADING, UNAVAILABLE). */
typedef enum deploy_state {
    DEPLOY_STATE_NONE,
    DEPLOY_STATE_LOADING,
    DEPLOY_STATE_READY,
    DEPLOY_STATE_UNLOADING
} deploy_state;
deploy_state deploy_state_of(deploy_manager *m, const char *model, const char *version);

/* ---- shadow traffic (traffic.c; serve/shadow.h runs the copies) ----------------------- */

/* Set (version non-NULL, percent 1..100) or clear (version NULL) the model's shadow: that share
 * of its unversioned requests is copied to the version. The version must be live (CONFLICT).
 * Serialized with deploy/undeploy of the model; undeploying the version clears it. Kept in
 * memory only: a restart starts without a shadow. */
deploy_result deploy_shadow_set(deploy_manager *m, const char *model, const char *version,
                                int percent);
/* The model's shadow: true with version (REG_NAME_MAX + 1 bytes) and percent when it has one. */
bool deploy_shadow_get(deploy_manager *m, const char *model, char *version, int *percent);
/* On the unversioned route: whether this request is one of the shadow's share (exact: of any n
 * consecutive requests, floor(n * percent / 100) are picked), and the shadow version. A load
 * and a branch when the model has no shadow. */
bool deploy_shadow_pick(deploy_model *dm, char *version);

/* Save every live deployment's lifetime stats to the registry (periodic flush and shutdown). */
void deploy_flush_stats(deploy_manager *m);

/* Set the rate limit of a live deployment (rps <= 0: none). DEPLOY_OK, or DEPLOY_NOT_FOUND. */
deploy_result deploy_set_rate_limit(deploy_manager *m, const char *model, const char *version,
                                    rl_limit limit);
/* The rate limit of a live deployment into *out; false when not deployed. */
bool deploy_get_rate_limit(deploy_manager *m, const char *model, const char *version,
                           rl_limit *out);

/* ---- reconciling (reconcile.c; scale-out) ------------------------------------------------
 *
 * With several replicas on one registry, the registry's active deployments and current splits
 * are the desired state and each replica's tables its actual state. deploy_reconcile makes this
 * replica's tables equal the registry's in one pass: it loads active rows that are not live here
 * (with their ids, options and endpoint names, as a restart does), retires live deployments whose
 * row has ended, and makes each model's split and each deployment's rate limit the stored ones.
 * It writes nothing to the registry.
 * With one replica the two states are already equal and a pass changes nothing. */
typedef struct deploy_reconcile_report {
    unsigned added, removed, splits, failed; /* failed: rows that could not be loaded here */
    unsigned limits;                         /* rate limits changed to the stored options */
} deploy_reconcile_report;
/* One pass. 0, or -1 when the registry could not be read (nothing changed). report may be NULL.
 * Passes on one process are serialized; call from one background thread. */
int deploy_reconcile(deploy_manager *m, deploy_reconcile_report *report);
/* The registry ids of the deployments live here, into *ids (malloc'd, caller frees; NULL when
 * none). Returns how many. */
size_t deploy_live_ids(deploy_manager *m, int64_t **ids);

#endif
