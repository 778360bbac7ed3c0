/* host: the host services table handed to plugins. See host.h. */
#include "host.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "oip.h"

static enum log_level host_level(int level)
{
    return level < LOG_ERROR ? LOG_ERROR : level > LOG_DEBUG ? LOG_DEBUG : (enum log_level)level;
}

static void host_log(int level, const char *msg)
{
    log_write(host_level(level), "plugin: %s", msg);
}

__attribute__((format(printf, 3, 4))) static void
host_logf(const ds_deployment *dep, ds_log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_write(host_level((int)level), "plugin %s: %s", dep != NULL ? dep->label : "(load)", line);
}

/* The deadline, then the client (oip.h: client_gone, at most once per OIP_CLIENT_PROBE_NS).
 * resp is the server's own mutable response (const only in the plugin's view): the probe time
 * and a latched cancellation are cached in it; only the thread serving it calls this. */
static ds_status host_is_cancelled(const ds_infer_response *cresp)
{
    ds_infer_response *resp = (ds_infer_response *)cresp;
    if (resp == NULL)
        return DS_OK;
    if (resp->cancelled != DS_OK)
        return resp->cancelled;
    if (resp->deadline_ns == 0 && resp->client_gone == NULL)
        return DS_OK;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (resp->deadline_ns != 0 && now > resp->deadline_ns)
        return DS_ERR_DEADLINE_EXCEEDED;
    if (resp->client_gone != NULL && now >= resp->next_probe_ns) {
        resp->next_probe_ns = now + OIP_CLIENT_PROBE_NS;
        if (resp->client_gone(resp->client_ctx))
            resp->cancelled = DS_ERR_CANCELLED;
    }
    return resp->cancelled;
}

static const ds_host_api host_table = {
    .struct_size = sizeof(ds_host_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .output_alloc = oip_output_alloc,
    .log = host_log,
    .logf = host_logf,
    .is_cancelled = host_is_cancelled,
};

const ds_host_api *plugin_host_api(void)
{
    return &host_table;
}

void host_deployment_init(ds_deployment *d, const char *model, const char *version)
{
    static atomic_uint_fast64_t serial;
    unsigned long long n = (unsigned long long)atomic_fetch_add(&serial, 1) + 1;
    snprintf(d->label, sizeof d->label, "%.64s/%.64s#%llu", model, version, n);
}
