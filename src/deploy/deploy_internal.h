/*
 * deploy_internal: the deployment manager's tables and the functions its files share —
 * manager.c (lifecycle, references), restore.c (restart recovery) and traffic.c (splits and
 * guards). Private to src/deploy/: nothing outside this folder includes it (scripts/check-deps.py
 * enforces that; unit tests of the module may). See deploy.h for the locking rules.
 */
#ifndef DS_DEPLOY_INTERNAL_H
#define DS_DEPLOY_INTERNAL_H

#include <stdatomic.h>
#include <sys/types.h>

#include "deploy.h"
#include "guard.h"
#include "host.h"
#include "loader.h"
#include "worker.h"

#define DEPLOY_CALL_SLOTS 32
#define DEPLOY_BUCKETS    1024
#define DEPLOY_PATH_MAX   (2 * REG_NAME_MAX + 48)

struct deployment {
    deploy_target t; /* the view handed to requests; its strings point at the fields below */
    char model_name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    char endpoint_name[REG_NAME_MAX + 1];
    char infer_path[DEPLOY_PATH_MAX];
    char backend[REG_BACKEND_MAX + 1]; /* "" for a plugin version */
    loader_plugin *plugin;             /* in-process; NULL when isolated */
    struct inst_pool
        *pool;           /* in-process: the instances (plugin/pool.h), destroyed before dlclose */
    ds_deployment label; /* names the deployment in plugin logs (plugin/host.h) */
    worker *worker;      /* isolated: the worker process; NULL in-process */
    ds_deploy_options opts; /* as deployed (stored in deployments.options) */
    admission adm;          /* max_in_flight / max_queue */
    deploy_mem mem;         /* in process: RSS growth (t.mem points here) */
    atomic_uint_fast64_t timeouts;
    atomic_int_fast64_t last_timeout_s;
    _Atomic uint64_t call_starts[DEPLOY_CALL_SLOTS]; /* see deploy_target.call_starts */
    atomic_bool draining;        /* out of the tables; requests still holding it get a 404 */
    atomic_bool failed;          /* the worker gave up (crash limit); set by its supervisor */
    pthread_mutex_t reason_lock; /* guards fail_reason */
    char fail_reason[256];
    struct deployment *next_draining; /* deploy_model.draining list; guarded by lifecycle */
    rl_bucket rate;                   /* requests per second (t.rate points here) */
    atomic_int refs;                  /* requests holding this deployment; drained before unload */
    char deployed_at[REG_TIME_MAX];
    deploy_model *model;
    deploy_manager *mgr;
    struct deployment *next_endpoint; /* endpoint hash chain; guarded by the index lock */
    struct batcher *batcher;          /* t.batcher; freed after the drain (deployment_free) */
    deploy_load_figures load;         /* t.load points here */
};

struct deploy_model {
    char name[REG_NAME_MAX + 1];
    char infer_path[DEPLOY_PATH_MAX];
    deploy_manager *mgr;
    pthread_mutex_t lifecycle; /* serializes deploy/undeploy/traffic changes of this model */
    pthread_rwlock_t lock;     /* guards versions/weights/count/cap/has_split; held for swaps */
    deployment **versions;     /* newest first */
    int *weights;              /* canary weight 0..100 of versions[i] (split.h), same length */
    size_t count, cap;
    bool has_split;       /* weights are in effect (else: newest version gets all) */
    bool route_added;     /* unversioned route registered; guarded by lifecycle */
    deployment *draining; /* undeployed, in-flight calls still running; guarded by lifecycle */
    deploy_guard guard;   /* automatic rollback rule; guarded by lifecycle */
    /* Shadow traffic: shadow_percent 0 = none (atomic, so the request path tests it without a
     * lock); shadow_version is guarded by `lock`; shadow_seq counts picks. */
    atomic_int shadow_percent;
    char shadow_version[REG_NAME_MAX + 1];
    atomic_uint_fast64_t shadow_seq;
    deploy_model *next; /* hash chain; guarded by the manager's index lock */
    /* the last unload of a version of this model; guarded by lifecycle */
    char last_unload_version[REG_NAME_MAX + 1];
    deploy_unload_figures last_unload;
};

/* A deploy or undeploy in progress, for deploy_state_of (LOADING / UNLOADING). */
#define DEPLOY_TRANSITS 64
typedef struct deploy_transit {
    char model[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    deploy_state state; /* DEPLOY_STATE_NONE: a free slot */
} deploy_transit;

struct deploy_manager {
    deploy_env env;
    pthread_mutex_t transit_lock; /* guards transit[] */
    deploy_transit transit[DEPLOY_TRANSITS];
    bool router_live;            /* env.router may be used (false after router_stopped) */
    pthread_mutex_t router_gate; /* guards router_live against route removals by drain threads */
    atomic_int drains;           /* drain threads running */
    admission_cap infer_cap;     /* every deployment's requests together (lock-free) */
    pthread_rwlock_t index_lock; /* guards `models` chains and `endpoints` chains */
    deploy_model *models[DEPLOY_BUCKETS];
    deployment *endpoints[DEPLOY_BUCKETS];
    /* lifecycle counters (lifecycle_stats.c); relaxed atomics */
    _Atomic uint64_t loads, unloads, failures[DEPLOY_FAIL_REASONS];
    _Atomic uint64_t load_ns, unload_ns, drain_ns;
};

/* ---- manager.c ------------------------------------------------------------------------------ */

uint64_t deploy_hash(const char *s);
/* Model entry by name, or NULL. Takes the index read lock briefly. */
deploy_model *deploy_model_find(deploy_manager *m, const char *name);
/* The entry for `name`, created on first use (lives until deploy_manager_free). NULL when memory
 * runs out. */
deploy_model *deploy_model_get(deploy_manager *m, const char *name);
/* Index of a live version in dm->versions, or -1. Caller holds dm->lock or dm->lifecycle. */
ssize_t deploy_model_index(const deploy_model *dm, const char *version);
/* A successful / failed result with a formatted message. */
deploy_result deploy_ok(void);
deploy_result deploy_fail(deploy_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A registry failure in the manager's terms. */
deploy_result deploy_from_registry(reg_status rs, const char *err);
/* A deploy / undeploy of (model, version) in progress, for deploy_state_of: begin returns a
 * slot (or -1 when all are busy; the state then reads from the tables), end frees it. */
int deploy_transit_begin(deploy_manager *m, const char *model, const char *version,
                         deploy_state state);
void deploy_transit_end(deploy_manager *m, int slot);
/* Record an event {"reason": reason}; failures are logged, not returned. */
void deploy_event(deploy_manager *m, const char *kind, const char *model, const char *version,
                  const char *reason);

/* Load the plugin of a registered version (in this process or in a worker, per opts) and create
 * its instance. journal_id: the deployment id when known (restore), for the crash journal. NULL
 * with *res set. Owned by the caller until published (then by the model's table) or
 * deployment_free. Called without the lifecycle lock. */
deployment *deployment_load(deploy_manager *m, const reg_version *v, const ds_deploy_options *opts,
                            int64_t journal_id, deploy_result *res);
/* Put a loaded deployment into the tables requests read, then add its routes. Caller holds
 * dm->lifecycle. 0, or -1 (out of memory: unpublish and free it). */
int deployment_publish(deploy_manager *m, deploy_model *dm, deployment *d);
/* Out of every table and route, then wait until no request holds it. Caller holds
 * dm->lifecycle. */
void deployment_unpublish(deploy_manager *m, deploy_model *dm, deployment *d);
/* Out of the routing tables only (draining set); caller holds dm->lifecycle. */
void deployment_untable(deploy_manager *m, deploy_model *dm, deployment *d);
/* Remove the versioned route and wait until no request holds d, at most wait_ms (< 0: no
 * limit). true when drained. */
bool deployment_drain(deploy_manager *m, deployment *d, int wait_ms);
/* Destroy instance (or stop the worker), dlclose, free. NULL is a no-op. */
void deployment_free(deployment *d);

/* Save d's lifetime stats to the registry. */
void deployment_save_stats(deploy_manager *m, const deployment *d);
/* true (and *res a CONFLICT) when `version` of dm is live or still draining. Lifecycle held. */
bool deploy_taken_locked(const deploy_model *dm, const char *version, deploy_result *res);

/* Every model entry, copied under index_lock so the caller can take each one's lifecycle without
 * holding index_lock (deploy_start takes index_lock inside lifecycle). Entries are never freed
 * before the manager, so the pointers stay valid; items is the caller's to free (NULL, count 0
 * when out of memory). */
typedef struct deploy_model_list {
    deploy_model **items;
    size_t count;
} deploy_model_list;
deploy_model_list deploy_models_snapshot(deploy_manager *m);

/* ---- lifecycle_stats.c -------------------------------------------------------------------- */

/* A load succeeded (its figures are in d->load) / failed for `why`. */
void deploy_count_load(deploy_manager *m, const deployment *d);
void deploy_count_failure(deploy_manager *m, deploy_fail_reason why);
/* d was drained in drain_ns and freed in unload_ns, RSS going from rss_before to rss_after:
 * counted, and kept as dm's last unload (takes dm->lifecycle). */
void deploy_count_unload(deploy_manager *m, deploy_model *dm, const char *version,
                         const deploy_unload_figures *f);
uint64_t deploy_now_ns(void); /* CLOCK_MONOTONIC */

/* ---- restore.c ------------------------------------------------------------------------------ */

/* Registry rows copied out of a registry_deployment_list callback (options owned, status_reason
 * NULL). */
typedef struct deploy_row_list {
    reg_deployment *rows;
    size_t count, cap;
} deploy_row_list;
/* The reg_deployment_fn that appends to a deploy_row_list (ud); 1 (stop) when memory runs out. */
int deploy_collect_rows(void *ud, const reg_deployment *d);
void deploy_row_list_free(deploy_row_list *l);
/* Load and publish the deployment a registry row describes, with its id, endpoint, options and
 * lifetime stats, writing nothing to the registry. CONFLICT when the version is live (or still
 * draining) already. Called without any lock of the manager. */
deploy_result deploy_bring_up(deploy_manager *m, const reg_deployment *row);

/* ---- drain.c -------------------------------------------------------------------------------- */

/* Take deployment `id` of (model, version) out of service because the registry no longer wants
 * it: out of the tables, its route removed and in-flight calls drained by a drain thread, writing
 * nothing to the registry. false when that version is not live here with that id. */
bool deploy_retire(deploy_manager *m, const char *model, const char *version, int64_t id);

/* ---- traffic.c ------------------------------------------------------------------------------ */

/* With dm->lifecycle held: store the model's current split in the registry (after an undeploy
 * changed it). */
void traffic_persist(deploy_manager *m, deploy_model *dm, const char *reason);
/* After deploy_restore: re-apply every model's stored split and guard. */
void traffic_restore(deploy_manager *m);
/* Make dm's in-memory split and guard those stored in the registry (none stored: no split),
 * writing nothing back. true when something changed. Takes dm->lifecycle. */
bool traffic_follow(deploy_manager *m, deploy_model *dm);

#endif
