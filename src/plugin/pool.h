/*
 * pool: the instances of one deployment (its "instance_count", default 1) and who may use
 * which one. Owns the instances: created together, destroyed together.
 *
 * A thread-safe plugin (DS_PLUGIN_THREAD_SAFE) lets any number of requests into one instance, so
 * requests are spread over the instances round-robin without a lock. For any other plugin an
 * instance runs one request at a time: a request takes a free instance from the pool and waits
 * (on a condition variable, in arrival order as the kernel wakes) while all are busy. With
 * instance_count N, N requests run in parallel on N instances; N = 1 is the old "one instance
 * behind one mutex".
 *
 * Every instance of a deployment must describe the same IO (ABI 1.1 ds_instance_context.model):
 * pool_create checks that and refuses a pool whose instances disagree.
 *
 * Thread-safety: pool_acquire/pool_release may run on any number of threads. pool_free must
 * run after the last pool_release (the deployment's drain guarantees it).
 */
#ifndef DS_POOL_H
#define DS_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "loader.h"

#define POOL_MAX_INSTANCES 64
#define POOL_NO_SLOT       UINT32_MAX /* pool_acquire's slot for a thread-safe pool */

typedef struct inst_pool inst_pool;

/* Create `count` (1..POOL_MAX_INSTANCES) instances of `p`, instance i with args->instance_index
 * = i and args->instance_count = count. On success *out (owned by the caller, pool_free). On
 * failure every instance created so far is destroyed and -1 is returned with the reason. */
int pool_create(loader_plugin *p, const loader_instance_args *args, uint32_t count, inst_pool **out,
                char *err, size_t errlen);

/* The IO the instances serve (instance 0's description, or the plugin's). Valid until pool_free. */
const ds_model_desc *pool_model(const inst_pool *pool);
uint32_t pool_count(const inst_pool *pool);

/* An instance to run one request on. *slot is what pool_release needs back (POOL_NO_SLOT for a
 * thread-safe pool, which needs no release). Blocks while every instance of a non-thread-safe
 * pool is busy. */
void *pool_acquire(inst_pool *pool, uint32_t *slot);
void pool_release(inst_pool *pool, uint32_t slot);

/* Destroy every instance, then free. NULL is a no-op. The plugin stays open (the caller closes). */
void pool_free(inst_pool *pool);

#endif
