/*
 * batcher: the dynamic batching queue of one deployment (Triton's dynamic batcher). Requests
 * that arrive while a batch is open join it; the batch runs once (one execute_batch call) and
 * every request gets back its own answer.
 *
 * How a batch forms (leader/follower, no thread of its own, so 1,000 deployments cost nothing
 * while idle): the first request that finds no open batch opens one and leads it. Later requests
 * join the open batch while it has room (rows <= max_batch_size, requests <= max_requests) and
 * sleep until the leader says their batch ran. The leader waits until the batch is full, reaches
 * a preferred size, max_queue_delay_us passes since it opened, or the earliest deadline of its
 * members comes; then it takes an instance (ops->acquire; the batch stays open while it waits,
 * so requests keep joining while every instance is busy, as in Triton), closes the batch, runs
 * it (ops->run), releases the instance and returns; its youngest member wakes the others one by
 * one in the order they joined, so on a busy core the requests that waited longest are answered
 * first (a woken member takes the core for its answer before its waker goes on, so whoever wakes
 * the batch is answered last: that is the request that waited least). A batch that reaches its
 * full or a preferred size closes there: later requests open the next one. A request that
 * does not fit in the open batch flushes it (its leader stops waiting) and opens the next one. A
 * request with more rows than max_batch_size runs alone at once.
 *
 * Deadlines: a batch never waits past its members' earliest deadline; the run sees each
 * request's own deadline (is_cancelled). Drain: a queued request waits at most
 * max_queue_delay_us plus one run, so an undeploy's drain finishes; nothing is left queued.
 *
 * Memory: batcher_new allocates one small struct; a batch (8 KiB of member pointers) is
 * allocated by its leader and freed once it ran, by the leader or, when it has more than two
 * members, by its youngest member after the wake-ups; its items live on their requests' stacks
 * (batch_item, owned by the caller of batcher_submit).
 *
 * Thread-safety: batcher_submit runs on any number of threads; `lock` guards the open batch
 * pointer and every batch's members. batcher_free only after the last submit returned (the
 * deployment's drain guarantees it).
 */
#ifndef DS_BATCHER_H
#define DS_BATCHER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dynserve/plugin.h"

#define BATCH_MAX_PREFERRED 8
#define BATCH_MAX_REQUESTS  1024

typedef struct batcher batcher;

typedef struct batch_config {
    uint32_t max_batch_size;     /* most rows per run, 1..BATCH_MAX_REQUESTS */
    uint32_t max_requests;       /* most requests per run (the plugin's max_batch_size) */
    uint64_t max_queue_delay_us; /* how long an open batch waits for more */
    uint32_t preferred[BATCH_MAX_PREFERRED]; /* run at once on reaching one of these sizes */
    uint32_t preferred_count;
} batch_config;

/* One request in a batch. The caller fills the inputs and owns the struct; it must stay alive
 * until batcher_submit returns. */
typedef struct batch_item {
    const ds_infer_request *req;  /* in */
    ds_infer_response *resp;      /* in */
    uint64_t rows;                /* in: its batch size (first dimension), >= 1 */
    uint64_t deadline_ns;         /* in: CLOCK_MONOTONIC deadline, 0 = none */
    ds_status status;             /* out: its own result */
    ds_error err;                 /* out: message when status != DS_OK */
    uint64_t exec_ns;             /* out: how long its batch's run took */
    uint32_t batch_requests;      /* out: requests in its batch */
    uint64_t batch_rows;          /* out: rows in its batch */
    bool leader;                  /* out: this request ran the batch */
    _Atomic uint32_t ran;         /* private: the leader's "your batch ran" (a futex word) */
    struct batch_open *wake_rest; /* private: set on the youngest member, who wakes the rest */
} batch_item;

/* How the batcher runs a batch; ctx is batcher_submit's. acquire blocks until an instance is
 * free; run executes items[0..n) in one call and sets every item's status/err; release hands the
 * instance back. Called on the leader's thread without the batcher's lock. */
typedef struct batch_ops {
    void *(*acquire)(void *ctx, uint32_t *slot);
    void (*release)(void *ctx, uint32_t slot);
    void (*run)(void *ctx, void *instance, batch_item *const *items, uint32_t n);
} batch_ops;

/* A queue with `cfg` (copied; max_batch_size and max_requests >= 1). NULL when out of memory or
 * cfg is out of range. Owned by the caller (batcher_free). */
batcher *batcher_new(const batch_config *cfg);
void batcher_free(batcher *b);

/* Queue `it` and return once its batch ran (it->status set). Blocks at most the queue delay
 * (bounded by it->deadline_ns and the batch's others) plus waiting for an instance and the run. */
void batcher_submit(batcher *b, batch_item *it, const batch_ops *ops, void *ctx);

/* Totals since batcher_new (relaxed; for stats): runs and requests that went through it. */
typedef struct batcher_counts {
    uint64_t runs, requests, rows;
} batcher_counts;
void batcher_counts_get(const batcher *b, batcher_counts *out);

#endif
