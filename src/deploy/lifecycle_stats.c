/*
 * lifecycle_stats: what loading and unloading deployments costs (deploy.h, "lifecycle
 * metrics"). The manager's counters are relaxed atomics (exact each, not read at one instant);
 * a model's last unload is a small struct under its lifecycle mutex. RSS is the whole process's
 * (/proc/self/statm), so a delta around one load includes whatever else the process allocated
 * meanwhile (concurrent deploys, requests): exact on a quiet server, indicative under load.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deploy_internal.h"

static const char *const fail_reason_names[DEPLOY_FAIL_REASONS] = {"open", "create", "worker",
                                                                   "options", "memory"};

const char *deploy_fail_reason_name(deploy_fail_reason r)
{
    return (unsigned)r < DEPLOY_FAIL_REASONS ? fail_reason_names[r] : "unknown";
}

uint64_t deploy_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t deploy_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (int64_t)(resident * (unsigned long long)page) : -1;
}

void deploy_count_load(deploy_manager *m, const deployment *d)
{
    atomic_fetch_add_explicit(&m->loads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->load_ns, d->load.load_ns, memory_order_relaxed);
}

void deploy_count_failure(deploy_manager *m, deploy_fail_reason why)
{
    if ((unsigned)why < DEPLOY_FAIL_REASONS)
        atomic_fetch_add_explicit(&m->failures[why], 1, memory_order_relaxed);
}

void deploy_count_unload(deploy_manager *m, deploy_model *dm, const char *version,
                         const deploy_unload_figures *f)
{
    atomic_fetch_add_explicit(&m->unloads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->unload_ns, f->unload_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->drain_ns, f->drain_ns, memory_order_relaxed);
    pthread_mutex_lock(&dm->lifecycle);
    snprintf(dm->last_unload_version, sizeof dm->last_unload_version, "%s", version);
    dm->last_unload = *f;
    pthread_mutex_unlock(&dm->lifecycle);
}

void deploy_lifecycle_get(const deploy_manager *m, deploy_lifecycle_counts *out)
{
    memset(out, 0, sizeof *out);
    out->loads = atomic_load_explicit(&m->loads, memory_order_relaxed);
    out->unloads = atomic_load_explicit(&m->unloads, memory_order_relaxed);
    for (int i = 0; i < DEPLOY_FAIL_REASONS; i++)
        out->failures[i] = atomic_load_explicit(&m->failures[i], memory_order_relaxed);
    out->load_ns = atomic_load_explicit(&m->load_ns, memory_order_relaxed);
    out->unload_ns = atomic_load_explicit(&m->unload_ns, memory_order_relaxed);
    out->drain_ns = atomic_load_explicit(&m->drain_ns, memory_order_relaxed);
}

bool deploy_last_unload(deploy_manager *m, const char *model, const char *version,
                        deploy_unload_figures *out)
{
    deploy_model *dm = deploy_model_find(m, model);
    if (dm == NULL)
        return false;
    pthread_mutex_lock(&dm->lifecycle);
    bool have = strcmp(dm->last_unload_version, version) == 0;
    if (have)
        *out = dm->last_unload;
    pthread_mutex_unlock(&dm->lifecycle);
    return have;
}
