/*
 * null_table: the entry point exists but returns NULL, which is how a plugin refuses a host.
 * The loader must report it and dlclose.
 */
#include <dynserve/plugin.h>

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    (void)host;
    return NULL;
}
