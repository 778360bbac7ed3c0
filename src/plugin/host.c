/* host: the host services table handed to plugins. See host.h. */
#include "host.h"

#include "log.h"
#include "oip.h"

static void host_log(int level, const char *msg)
{
    log_write(level < LOG_ERROR   ? LOG_ERROR
              : level > LOG_DEBUG ? LOG_DEBUG
                                  : (enum log_level)level,
              "plugin: %s", msg);
}

static const ds_host_api host_table = {
    .struct_size = sizeof(ds_host_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .output_alloc = oip_output_alloc,
    .log = host_log,
};

const ds_host_api *plugin_host_api(void)
{
    return &host_table;
}
