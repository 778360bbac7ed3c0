/*
 * loader: turns a plugin file into a checked, callable ds_plugin_api — dlopen, entry symbol,
 * ABI version and table-size check, metadata sanity — and owns the dlopen handle until
 * loader_close(). The only module that calls dlopen/dlsym/dlclose.
 *
 * ABI 1.1: the entry dynserve_plugin_init is tried before dynserve_plugin_entry (its refusal
 * message is reported); the plugin's load hook runs when an image is opened for the first time
 * (dlopen reference counts it) and unload when its last loader_plugin closes; instances are
 * created through create_instance with a context when the plugin has it.
 *
 * Errors: every failure (missing file, not an ELF, missing symbol, ABI major mismatch, minor too
 * new, truncated table, NULL function, malformed metadata, create() error) returns -1 with a
 * message naming the file (and symbol) copied into the caller's buffer; never a crash, and every
 * failure path dlcloses what it opened.
 *
 * Thread-safety: loader_open/loader_close may run on any thread, concurrently for different
 * files. A loader_plugin is immutable after loader_open, so its accessors may be called from
 * any number of threads until loader_close, which the caller must order after every other use.
 */
#ifndef DS_LOADER_H
#define DS_LOADER_H

#include <stddef.h>

#include "dynserve/plugin.h"

typedef struct loader_plugin loader_plugin;

/* Load `path` with RTLD_NOW | RTLD_LOCAL, call its entry with `host` (which must outlive the
 * plugin) and check the table. On success returns 0 and *out (owned by the caller, release with
 * loader_close). On failure returns -1, writes `err`, and leaves nothing open. */
int loader_open(const char *path, const ds_host_api *host, loader_plugin **out, char *err,
                size_t errlen);

/* The plugin's table and model description, as checked copies owned by the loader (strings
 * inside still point into the plugin): valid until loader_close. */
const ds_plugin_api *loader_api(const loader_plugin *p);
const ds_model_desc *loader_model(const loader_plugin *p);
/* true when execute() may run concurrently on one instance (DS_PLUGIN_THREAD_SAFE). */
int loader_thread_safe(const loader_plugin *p);

/* Create an instance from config_json (NULL means "{}"). 0 on success (*instance owned by the
 * plugin until loader_instance_destroy), -1 with the plugin's message in err. */
int loader_instance_create(loader_plugin *p, const char *config_json, void **instance, char *err,
                           size_t errlen);

/* What the server tells a new instance (ABI 1.1 ds_instance_context); strings owned by the
 * caller, valid during the call; `deployment` must outlive the instance. */
typedef struct loader_instance_args {
    const char *model_name;
    const char *model_version;
    const char *deployment_id;
    const char *artifact_dir; /* NULL for a plain .so version */
    const char *config_json;  /* NULL means "{}" */
    const ds_deployment *deployment;
    uint32_t instance_index, instance_count;
} loader_instance_args;

/* Create an instance through create_instance (ABI 1.1) when the plugin has it, else create().
 * On success *instance is owned by the plugin until loader_instance_destroy and *model is the
 * IO to serve it with: the instance's own description when it gave one (checked here with the
 * same rules as the table's; owned by the instance, valid until destroy) or loader_model(p).
 * -1 with the plugin's message (or what is wrong with its description) in err. */
int loader_instance_create_ctx(loader_plugin *p, const loader_instance_args *args, void **instance,
                               const ds_model_desc **model, char *err, size_t errlen);
void loader_instance_destroy(loader_plugin *p, void *instance);

/* dlclose and free. Every instance must have been destroyed first. NULL is a no-op. */
void loader_close(loader_plugin *p);

/* Quick check used when registering: open, create an instance with config_json, destroy, close.
 * 0 when the file is a loadable plugin for this server, -1 with the reason. */
int loader_probe(const char *path, const ds_host_api *host, const char *config_json, char *err,
                 size_t errlen);

/* The same for a version with artifacts: instance 0 of 1 gets artifact_dir and config_json.
 * Returns 0, -1 when the file is not a plugin (load failed), or -2 when it loaded but refused
 * the instance (bad artifact or config: the caller's 422). */
int loader_probe_artifact(const char *path, const ds_host_api *host, const char *model,
                          const char *version, const char *artifact_dir, const char *config_json,
                          char *err, size_t errlen);

/* Name of a ds_status ("INVALID_ARGUMENT", ...), for messages. */
const char *loader_status_name(ds_status s);

#endif
