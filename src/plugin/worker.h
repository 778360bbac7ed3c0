/*
 * worker: the server side of process isolation. It owns the worker processes of isolated
 * deployments (`dynserve worker`, see worker_main.c) and the registration probe.
 *
 *   worker_probe   spawn a worker in probe mode: it loads the plugin, creates and destroys an
 *                  instance and reports; the plugin's code never runs in the server.
 *   worker_start   spawn a serving worker and hand out a proxy ds_plugin_api whose execute()
 *                  ships the request through shared memory and copies the outputs back with the
 *                  server's host->output_alloc, so the data path treats it like any plugin.
 *
 * Supervision: one thread per worker waits on the control socket. When the process dies (signal,
 * exit, or a kill after a request passed its deadline) it is reaped, the crash is reported
 * (WORKER_CRASHED), and a new process is spawned after an exponential backoff (0 ms for the
 * first crash in the window, then 100, 200, 400 ... up to 5 s). max_crashes crashes within
 * crash_window_ms make the worker `failed` (WORKER_FAILED): no more restarts, requests get
 * DS_ERR_UNAVAILABLE.
 *
 * Statuses execute() returns beyond ds_status (the data path maps them to HTTP):
 *   WORKER_STATUS_CRASHED  the process died while the request ran            -> 502
 *   WORKER_STATUS_TIMEOUT  no answer within call_timeout_ms; process killed  -> 504
 *   DS_ERR_UNAVAILABLE     restarting, failed, stopped or every channel busy -> 503
 *
 * Thread-safety: execute() may be called from any number of threads; at most `channels` run in
 * the worker at once (others wait for a channel within their deadline). worker_get_info may run
 * concurrently with everything but worker_stop. Event callbacks run on the supervisor thread.
 */
#ifndef DS_WORKER_H
#define DS_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "dynserve/plugin.h"
#include "errors.h"

#define WORKER_MAX_CHANNELS   64 /* worker_config.channels at most */
#define WORKER_STATUS_CRASHED ((ds_status)DS_STATUS_WORKER_CRASHED)
#define WORKER_STATUS_TIMEOUT ((ds_status)DS_STATUS_WORKER_TIMEOUT)

typedef struct worker worker;

typedef struct worker_limits {
    int64_t memory_bytes;    /* RLIMIT_AS of the process; 0 = none */
    int64_t open_files;      /* RLIMIT_NOFILE; 0 = inherited */
    int64_t cpu_ms_per_call; /* CPU time one execute may use before SIGXCPU ends it; 0 = none */
} worker_limits;

typedef enum worker_event {
    WORKER_CRASHED,   /* reason: e.g. "killed by signal 11 (SIGSEGV)" */
    WORKER_RESTARTED, /* reason: "pid N" */
    WORKER_FAILED     /* reason: the last crash and the count */
} worker_event;

typedef void (*worker_event_fn)(void *ud, worker_event ev, const char *reason);

typedef struct worker_config {
    const char *plugin_path;
    const char *config_json; /* NULL means "{}" */
    const char *label;       /* names the deployment in messages, e.g. "m version 1" */
    const ds_host_api *host; /* the server's host table: output_alloc copies outputs back */
    unsigned channels;       /* executes in flight in the worker at once, 1..64 (0 = 4) */
    int call_timeout_ms;     /* per execute, 0 = none */
    int start_timeout_ms;    /* spawn + load + create; 0 = 10000 */
    worker_limits limits;
    int max_crashes;          /* 0 = 5 */
    int crash_window_ms;      /* 0 = 60000 */
    worker_event_fn on_event; /* may be NULL */
    void *event_ud;
    /* ABI 1.1 instance context (all may be NULL/0: a plain .so version) */
    const char *model_name;
    const char *model_version;
    const char *deployment_id; /* the server's label: the worker's log lines name it */
    const char *artifact_dir;  /* a model directory version: opened read-only here and handed
                                * to the worker as a descriptor (it needs no access to the data
                                * directory); the instance sees /proc/self/fd/N */
    unsigned instance_count;   /* instances in the worker, 1..64 (0 = 1): a non-thread-safe
                                * plugin then runs that many requests at once */
} worker_config;

typedef struct worker_info {
    int pid; /* 0 when no process runs */
    int64_t rss_bytes;
    unsigned restarts;
    unsigned crashes;
    const char *state; /* "ready", "restarting", "failed", "stopped" (static strings) */
    char reason[256];  /* last crash, "" when none */
} worker_info;

/* The executable spawned as the worker (it must handle argv[1] == "worker"). Default
 * "/proc/self/exe", i.e. this binary. Call before any worker starts (tests point it at the
 * built server). The string is copied. */
void worker_set_executable(const char *path);
/* Uid/gid a worker switches to when the server runs as root (default: the "nobody" user, else
 * 65534). Call before any worker starts. */
void worker_set_drop_ids(unsigned uid, unsigned gid);

/* Load `path` in a throw-away worker: open, check, create an instance from config_json, destroy.
 * 0 when it is a loadable plugin; -1 with the reason (the loader's message, or how the worker
 * died, or that it did not finish within timeout_ms) in err. */
int worker_probe(const char *path, const char *config_json, int timeout_ms, char *err,
                 size_t errlen);
/* The same for a version made of files (loader_probe_artifact in a worker): the backend `path`
 * creates instance 0 of 1 of (model, version) from artifact_dir and config_json. 0; -1 when
 * the worker died or timed out; -2 when the worker answered that the backend refused to load or
 * to create the instance (bad model files or config: the caller's 422). */
int worker_probe_artifact(const char *path, const char *model, const char *version,
                          const char *artifact_dir, const char *config_json, int timeout_ms,
                          char *err, size_t errlen);

/* Spawn and supervise a serving worker. 0 with *out (release with worker_stop), or -1 with the
 * reason in err (-2: the worker ran and the plugin refused to load or create an instance, e.g.
 * a bad artifact). cfg's strings are copied. */
int worker_start(const worker_config *cfg, worker **out, char *err, size_t errlen);

/* The proxy table (execute() only; the instance argument is the worker itself) and the model
 * description the worker reported. Owned by the worker; valid until worker_stop. */
const ds_plugin_api *worker_api(const worker *w);
const ds_model_desc *worker_model(const worker *w);
int worker_thread_safe(const worker *w);

/* Stop supervision, ask the process to destroy its instance and exit, kill it after grace_ms,
 * wait until no execute() is inside, free. Calls still in flight get WORKER_STATUS_CRASHED. */
void worker_stop(worker *w, int grace_ms);

/* Kill the process now and restart no more (an undeploy whose drain timed out): calls inside get
 * WORKER_STATUS_CRASHED naming `why`, later ones DS_ERR_UNAVAILABLE. worker_stop still frees. */
void worker_kill(worker *w, const char *why);

void worker_get_info(worker *w, worker_info *out);

#endif
