/*
 * pool: instances of one deployment. See pool.h.
 *
 * Non-thread-safe pools keep a stack of free slot numbers under `lock`; a request pops one (or
 * waits on `freed`) and pushes it back when done. The lock is held for a push or a pop only,
 * never across execute().
 */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inst_pool {
    loader_plugin *plugin;
    bool thread_safe;
    uint32_t count;
    void *instances[POOL_MAX_INSTANCES];
    const ds_model_desc *model;
    atomic_uint next;     /* round-robin cursor (thread-safe pools) */
    pthread_mutex_t lock; /* guards free_slots/nfree (non-thread-safe pools) */
    pthread_cond_t freed; /* signalled when a slot is pushed back */
    uint32_t free_slots[POOL_MAX_INSTANCES];
    uint32_t nfree;
};

static bool io_equal(const ds_io_desc *a, const ds_io_desc *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(a[i].name, b[i].name) != 0 || a[i].datatype != b[i].datatype ||
            a[i].rank != b[i].rank)
            return false;
        for (int32_t k = 0; k < a[i].rank; k++)
            if (a[i].shape[k] != b[i].shape[k])
                return false;
    }
    return true;
}

static bool model_equal(const ds_model_desc *a, const ds_model_desc *b)
{
    return a == b ||
           (a->flags == b->flags && a->input_count == b->input_count &&
            a->output_count == b->output_count && io_equal(a->inputs, b->inputs, a->input_count) &&
            io_equal(a->outputs, b->outputs, a->output_count));
}

static void pool_destroy_instances(inst_pool *pool, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;)
        loader_instance_destroy(pool->plugin, pool->instances[i]);
}

int pool_create(loader_plugin *p, const loader_instance_args *args, uint32_t count, inst_pool **out,
                char *err, size_t errlen)
{
    *out = NULL;
    if (count < 1 || count > POOL_MAX_INSTANCES) {
        snprintf(err, errlen, "instance_count must be 1..%d", POOL_MAX_INSTANCES);
        return -1;
    }
    inst_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pool->plugin = p;
    pool->thread_safe = loader_thread_safe(p);
    loader_instance_args a = *args;
    a.instance_count = count;
    for (uint32_t i = 0; i < count; i++) {
        const ds_model_desc *m = NULL;
        a.instance_index = i;
        if (loader_instance_create_ctx(p, &a, &pool->instances[i], &m, err, errlen) != 0) {
            pool_destroy_instances(pool, i);
            free(pool);
            return -1;
        }
        if (i > 0 && !model_equal(m, pool->model)) {
            snprintf(err, errlen, "instance %u describes other inputs/outputs than instance 0", i);
            pool_destroy_instances(pool, i + 1);
            free(pool);
            return -1;
        }
        if (i == 0)
            pool->model = m;
        pool->free_slots[i] = count - 1 - i; /* pop order 0, 1, 2, ... */
    }
    pool->count = pool->nfree = count;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    *out = pool;
    return 0;
}

const ds_model_desc *pool_model(const inst_pool *pool)
{
    return pool->model;
}

uint32_t pool_count(const inst_pool *pool)
{
    return pool->count;
}

void *pool_acquire(inst_pool *pool, uint32_t *slot)
{
    if (pool->thread_safe) {
        *slot = POOL_NO_SLOT;
        unsigned i = pool->count > 1 ? atomic_fetch_add(&pool->next, 1) % pool->count : 0;
        return pool->instances[i];
    }
    pthread_mutex_lock(&pool->lock);
    while (pool->nfree == 0)
        pthread_cond_wait(&pool->freed, &pool->lock);
    *slot = pool->free_slots[--pool->nfree];
    pthread_mutex_unlock(&pool->lock);
    return pool->instances[*slot];
}

void pool_release(inst_pool *pool, uint32_t slot)
{
    if (slot == POOL_NO_SLOT)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->free_slots[pool->nfree++] = slot;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

void pool_free(inst_pool *pool)
{
    if (pool == NULL)
        return;
    pool_destroy_instances(pool, pool->count);
    pthread_cond_destroy(&pool->freed);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
