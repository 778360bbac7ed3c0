/*
 * deploy_internal: the deployment manager's tables, shared by deploy.c (lifecycle) and canary.c
 * (traffic split and guard). Nothing else includes this; see deploy.h for the locking rules.
 */
#ifndef DS_DEPLOY_INTERNAL_H
#define DS_DEPLOY_INTERNAL_H

#include <stdatomic.h>
#include <sys/types.h>

#include "deploy.h"
#include "loader.h"

/* Automatic rollback rule of a model's traffic split (see canary.h). */
typedef struct canary_guard {
    bool enabled;
    double max_error_rate; /* canary 5xx share over the window above this trips the guard */
    double max_p99_ratio;  /* canary p99 / baseline p99 above this trips it (0 = not checked) */
    uint64_t min_requests; /* canary requests in the window before it is judged */
    int window_s;          /* 1..60 */
    bool tripped;
    char reason[256];
} canary_guard;

#define DEPLOY_BUCKETS  1024
#define DEPLOY_PATH_MAX (2 * REG_NAME_MAX + 48)

struct deployment {
    deploy_target t; /* the view handed to requests; its strings point at the fields below */
    char model_name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    char endpoint_name[REG_NAME_MAX + 1];
    char infer_path[DEPLOY_PATH_MAX];
    loader_plugin *plugin;
    pthread_mutex_t exec_lock; /* serializes execute() when the plugin is not thread-safe */
    atomic_int refs;           /* requests holding this deployment; drained before unload */
    int weight;                /* canary weight 0..100; guarded by the model's lock */
    deploy_model *model;
    struct deployment *next_endpoint; /* endpoint hash chain; guarded by the index lock */
};

struct deploy_model {
    char name[REG_NAME_MAX + 1];
    char infer_path[DEPLOY_PATH_MAX];
    deploy_manager *mgr;
    pthread_mutex_t lifecycle; /* serializes deploy/undeploy/traffic changes of this model */
    pthread_rwlock_t lock;     /* guards versions/count/cap/has_split; held only for swaps */
    deployment **versions;     /* newest first */
    size_t count, cap;
    bool has_split;     /* weights are in effect (else: newest version gets all) */
    bool route_added;   /* unversioned route registered; guarded by lifecycle */
    canary_guard guard; /* automatic rollback rule; guarded by lifecycle */
    deploy_model *next; /* hash chain; guarded by the manager's index lock */
};

struct deploy_manager {
    deploy_env env;
    pthread_rwlock_t index_lock; /* guards `models` chains and `endpoints` chains */
    deploy_model *models[DEPLOY_BUCKETS];
    deployment *endpoints[DEPLOY_BUCKETS];
};

uint64_t deploy_hash(const char *s);
/* Model entry by name, or NULL. Takes the index read lock briefly. */
deploy_model *deploy_model_find(deploy_manager *m, const char *name);
/* Index of a live version in dm->versions, or -1. Caller holds dm->lock or dm->lifecycle. */
ssize_t deploy_model_index(const deploy_model *dm, const char *version);
/* A failed result with a formatted message. */
deploy_result deploy_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record an event {"reason": reason}; failures are logged, not returned. */
void deploy_event(deploy_manager *m, const char *kind, const char *model, const char *version,
                  const char *reason);

#endif
