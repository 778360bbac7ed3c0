/*
 * no_entry: a valid shared object that exports no DS_PLUGIN_ENTRY_SYMBOL, only a misspelt one
 * (the classic author mistake). The loader must name the missing symbol and dlclose.
 */
#include <dynserve/plugin.h>

DS_PLUGIN_EXPORT const ds_plugin_api *dynserve_plugin_entry_v1(const ds_host_api *host);

const ds_plugin_api *dynserve_plugin_entry_v1(const ds_host_api *host)
{
    (void)host;
    return NULL;
}
