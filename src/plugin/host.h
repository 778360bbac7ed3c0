/*
 * host: the table of host services every plugin receives at load (plugins/include/dynserve/
 * plugin.h: ds_host_api) — output_alloc (the OIP codec's, so outputs land in the request's
 * arena) and log (into the server's log, prefixed "plugin:"). Plugins call the server only
 * through it (sqlite3ext.h style); entries are only ever appended.
 *
 * Thread-safety: the table is static and immutable; its functions are safe on any thread.
 */
#ifndef DS_HOST_H
#define DS_HOST_H

#include "dynserve/plugin.h"

/* The table; static, valid forever. */
const ds_host_api *plugin_host_api(void);

#endif
