/*
 * deploy_options: the per-deployment options of a deploy body (ds_deploy_options), their
 * parsing and checking, and their JSON form, which is stored in deployments.options so that a
 * restart restores a deployment exactly as it was deployed.
 *
 * Every option is a top-level field of the deploy body next to model_name/version/
 * endpoint_name. A field is described once in the table in deploy_options.c (name, type,
 * range, where it lives in the struct); helpers that add options add a row there and a field
 * here. Absent fields are 0 ("server default"); unknown fields are the caller's 400.
 *
 * Thread-safety: pure functions over caller-owned values.
 */
#ifndef DS_DEPLOY_OPTIONS_H
#define DS_DEPLOY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "ratelimit.h"

typedef enum ds_isolation {
    DS_ISOLATION_DEFAULT = 0, /* the server's --isolation */
    DS_ISOLATION_INPROC = 1,  /* "inproc": the plugin runs in the server (fast path) */
    DS_ISOLATION_PROCESS = 2  /* "process": the plugin runs in a `dynserve worker` child */
} ds_isolation;

#define DS_BATCH_SIZE_MAX      1024 /* max_batch_size's upper bound (deploy/batcher.h) */
#define DS_PREFERRED_BATCH_MAX 8    /* entries of preferred_batch_sizes */

typedef struct ds_deploy_options {
    ds_isolation isolation;
    int64_t timeout_ms;    /* deadline of one request; 0 = --default-timeout-ms */
    int64_t max_in_flight; /* requests executing at once; 0 = no limit */
    int64_t max_queue;     /* requests waiting for a slot beyond max_in_flight; 0 = none */
    /* process isolation only: limits of the worker process */
    int64_t memory_limit_mb; /* address space (RLIMIT_AS); 0 = none */
    int64_t max_open_files;  /* RLIMIT_NOFILE; 0 = inherited */
    int64_t cpu_limit_ms;    /* CPU time one execute may use; 0 = none */
    int64_t workers;         /* execute calls in flight inside the worker; 0 = max_in_flight */
    rl_limit rate_limit;     /* "rate_limit" {"rps","burst"}: 429 beyond it; rps 0 = none */
    /* in process: instances of the plugin (a pool for a plugin that is not thread-safe, see
     * plugin/pool.h); 0 = 1 */
    int64_t instance_count;
    /* dynamic batching (deploy/batcher.h), in process only, for a plugin with execute_batch:
     * max_batch_size 0 = off; the most rows (first dimension) one execution gets */
    int64_t max_batch_size;
    int64_t max_queue_delay_us; /* how long a batch waits for more requests; 0 = no wait */
    /* sizes (ascending, <= max_batch_size) at which a batch runs without waiting further */
    int64_t preferred_batch_sizes[DS_PREFERRED_BATCH_MAX];
    int64_t preferred_batch_count;
} ds_deploy_options;

/* A "rate_limit" value: null (none) or {"rps": > 0, "burst": >= 1 (default max(1, rps))}.
 * 0, or -1 with a message (a 400 for the caller). */
int deploy_rate_limit_parse(const cJSON *v, rl_limit *out, char *err, size_t errlen);

/* The name of option i, or NULL past the last (to list the fields a deploy body may carry). */
const char *deploy_options_name(size_t i);
/* true when `key` is an option field (so a deploy body may carry it). */
bool deploy_options_known(const char *key);

/* Read the option fields of `obj` (other keys are ignored) into *out, zeroed first. 0, or -1
 * with a message naming the field in err (a 400 for the caller). */
int deploy_options_parse(const cJSON *obj, ds_deploy_options *out, char *err, size_t errlen);
/* The batching fields together: delay and preferred sizes need max_batch_size, preferred sizes
 * are <= it, and "isolation":"process" refuses it. 0, or -1 with a message (a 400). Called by
 * deploy_options_parse; the manager adds the plugin's own limits at load. */
int deploy_options_check_batching(const ds_deploy_options *o, char *err, size_t errlen);
/* The same from stored JSON text; NULL or "" means no options. */
int deploy_options_parse_text(const char *json, ds_deploy_options *out, char *err, size_t errlen);

/* Append the options that are set as one JSON object ("{}" when none). */
void deploy_options_to_json(const ds_deploy_options *o, ds_buf *out);

const char *deploy_isolation_name(ds_isolation i); /* "inproc", "process"; "default" */

#endif
