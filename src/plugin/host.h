/*
 * host: the table of host services every plugin receives at load (plugins/include/dynserve/
 * plugin.h: ds_host_api) — output_alloc (the OIP codec's, so outputs land in the request's
 * arena), log (into the server's log, prefixed "plugin:"), and from ABI 1.1 logf (printf-style,
 * naming the deployment) and is_cancelled (the request's deadline). Plugins call the server only
 * through it (sqlite3ext.h style); entries are only ever appended.
 *
 * Thread-safety: the table is static and immutable; its functions are safe on any thread.
 */
#ifndef DS_HOST_H
#define DS_HOST_H

#include <stdint.h>

#include "dynserve/plugin.h"

/* The table; static, valid forever. */
const ds_host_api *plugin_host_api(void);

/* What ds_deployment is inside the server: the label logf puts in front of a plugin's lines.
 * Embedded in (and owned by) the deployment; must outlive its instances. */
struct ds_deployment {
    char label[160]; /* "<model>/<version>#<serial>" */
};

/* Label `d` for (model, version) with a process-unique serial; also the instance context's
 * deployment_id. Thread-safe. */
void host_deployment_init(ds_deployment *d, const char *model, const char *version);

#endif
