/*
 * loader: turns a plugin file into a checked, callable ds_plugin_api — dlopen, entry symbol,
 * ABI version and table-size check, metadata sanity — and owns the dlopen handle until
 * loader_close(). The only module that calls dlopen/dlsym/dlclose.
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
void loader_instance_destroy(loader_plugin *p, void *instance);

/* dlclose and free. Every instance must have been destroyed first. NULL is a no-op. */
void loader_close(loader_plugin *p);

/* Quick check used when registering: open, create an instance with config_json, destroy, close.
 * 0 when the file is a loadable plugin for this server, -1 with the reason. */
int loader_probe(const char *path, const ds_host_api *host, const char *config_json, char *err,
                 size_t errlen);

#endif
