/*
 * batcher: leader/follower dynamic batching (contract in batcher.h).
 *
 * An open batch (batch_open, allocated by its leader) is reachable through b->open only while it
 * accepts members; the leader clears b->open before it runs, so after that no thread touches the
 * batch except through its own item. Members sleep on their item's `ran` word (a futex), without
 * the batcher's lock: woken, a member needs nothing but its item, so they are woken in joining
 * order and none of them queues on the lock (a broadcast on one condition woke every member at
 * once, in no order, each to take the lock again). On one busy core each woken member runs its
 * answer before its waker goes on, so the waker is answered last: when the leader woke the
 * others, the request that had waited longest (the whole delay) came out last, ~1 ms later at
 * 64 members. The leader therefore wakes only the youngest member, which wakes the rest and
 * frees the batch.
 */
#include "batcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "futex.h"

typedef struct batch_open {
    batch_item *items[BATCH_MAX_REQUESTS];
    uint32_t n;
    uint64_t rows;
    uint64_t min_deadline_ns; /* earliest member deadline; 0 = none */
    bool flush;               /* run without waiting further: full, at a preferred size (both
                               * set by batch_add), or a request did not fit */
    pthread_cond_t joined;    /* the leader waits here for members (CLOCK_MONOTONIC) */
} batch_open;

struct batcher {
    batch_config cfg;
    pthread_mutex_t lock; /* guards `open` and the members of every batch */
    batch_open *open;     /* the batch accepting members, NULL when none */
    _Atomic uint64_t runs, requests, rows;
};

static uint64_t batch_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

batcher *batcher_new(const batch_config *cfg)
{
    if (cfg->max_batch_size < 1 || cfg->max_batch_size > BATCH_MAX_REQUESTS ||
        cfg->max_requests < 1 || cfg->preferred_count > BATCH_MAX_PREFERRED)
        return NULL;
    batcher *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cfg = *cfg;
    if (b->cfg.max_requests > BATCH_MAX_REQUESTS)
        b->cfg.max_requests = BATCH_MAX_REQUESTS;
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void batcher_free(batcher *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void batcher_counts_get(const batcher *b, batcher_counts *out)
{
    out->runs = atomic_load_explicit(&b->runs, memory_order_relaxed);
    out->requests = atomic_load_explicit(&b->requests, memory_order_relaxed);
    out->rows = atomic_load_explicit(&b->rows, memory_order_relaxed);
}

static bool batch_fits(const batcher *b, const batch_open *o, const batch_item *it)
{
    return o->n < b->cfg.max_requests && o->rows + it->rows <= b->cfg.max_batch_size;
}

/* Full, or at a preferred size. Lock held. */
static bool batch_ready(const batcher *b, const batch_open *o)
{
    if (o->n >= b->cfg.max_requests || o->rows >= b->cfg.max_batch_size)
        return true;
    for (uint32_t i = 0; i < b->cfg.preferred_count; i++)
        if (o->rows == b->cfg.preferred[i])
            return true;
    return false;
}

/* Add a member; a batch that this makes ready (full or at a preferred size) closes at once, so
 * the requests that arrive before its leader runs open the next batch instead of growing this one
 * past the size it was ready at. Lock held. */
static void batch_add(batcher *b, batch_open *o, batch_item *it)
{
    o->items[o->n++] = it;
    o->rows += it->rows;
    if (it->deadline_ns != 0 && (o->min_deadline_ns == 0 || it->deadline_ns < o->min_deadline_ns))
        o->min_deadline_ns = it->deadline_ns;
    if (batch_ready(b, o)) {
        o->flush = true;
        if (b->open == o)
            b->open = NULL;
    }
}

/* Run items[0..n) on one instance and record who was in the batch. No lock held. */
static void batch_run(batcher *b, batch_item *const *items, uint32_t n, void *instance,
                      const batch_ops *ops, void *ctx)
{
    uint64_t rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        rows += items[i]->rows;
        items[i]->status = DS_OK;
        items[i]->err.code = DS_OK;
        items[i]->err.message[0] = '\0';
    }
    uint64_t t0 = batch_now_ns();
    ops->run(ctx, instance, items, n);
    uint64_t ns = batch_now_ns() - t0;
    for (uint32_t i = 0; i < n; i++) {
        items[i]->exec_ns = ns;
        items[i]->batch_requests = n;
        items[i]->batch_rows = rows;
        items[i]->leader = i == 0;
    }
    atomic_fetch_add_explicit(&b->runs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->requests, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->rows, rows, memory_order_relaxed);
}

static void batch_alone(batcher *b, batch_item *it, const batch_ops *ops, void *ctx)
{
    uint32_t slot;
    void *instance = ops->acquire(ctx, &slot);
    batch_item *one[1] = {it};
    batch_run(b, one, 1, instance, ops, ctx);
    ops->release(ctx, slot);
}

/* Tell a member its batch ran. The wake may reach the item after its thread saw `ran` and
 * returned: the word is then on a live thread's stack (or unmapped: EFAULT), and a stray wake of
 * whatever waits there is a spurious wake-up, which every futex waiter re-checks for. */
static void batch_wake(batch_item *it)
{
    atomic_store_explicit(&it->ran, 1, memory_order_release);
    futex_wake(&it->ran, 1, FUTEX_SCOPE_PRIVATE);
}

/* Wake the members between the leader and the youngest, in joining order, and free the batch:
 * the youngest member's job once its batch ran (see batch_lead). */
static void batch_wake_rest(batch_open *o)
{
    for (uint32_t i = 1; i + 1 < o->n; i++)
        batch_wake(o->items[i]);
    pthread_cond_destroy(&o->joined);
    free(o);
}

/* A member: join, then wait (without the lock) until the leader ran our batch. Lock held on
 * entry, released on return. */
static void batch_follow(batcher *b, batch_open *o, batch_item *it)
{
    batch_add(b, o, it);
    if (o->flush || (it->deadline_ns != 0 && it->deadline_ns == o->min_deadline_ns))
        pthread_cond_signal(&o->joined);
    pthread_mutex_unlock(&b->lock);
    while (atomic_load_explicit(&it->ran, memory_order_acquire) == 0)
        futex_wait(&it->ran, 0, -1, FUTEX_SCOPE_PRIVATE);
    if (it->wake_rest != NULL)
        batch_wake_rest(it->wake_rest);
}

/* The leader's wait for members: until flushed, the delay passed or the earliest deadline came.
 * Lock held. */
static void batch_gather(batcher *b, batch_open *o)
{
    uint64_t close_at = batch_now_ns() + b->cfg.max_queue_delay_us * 1000u;
    for (;;) {
        if (o->flush)
            return;
        uint64_t until = close_at;
        if (o->min_deadline_ns != 0 && o->min_deadline_ns < until)
            until = o->min_deadline_ns;
        if (batch_now_ns() >= until)
            return;
        struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                              .tv_nsec = (long)(until % 1000000000u)};
        pthread_cond_timedwait(&o->joined, &b->lock, &ts);
    }
}

/* Open a batch, gather, run it and wake its members. Lock held on entry, released on return. */
static void batch_lead(batcher *b, batch_item *it, const batch_ops *ops, void *ctx)
{
    batch_open *o = malloc(sizeof *o); /* 8 KiB of member pointers: off the worker's stack */
    if (o == NULL) {
        pthread_mutex_unlock(&b->lock);
        batch_alone(b, it, ops, ctx);
        return;
    }
    o->n = 0;
    o->rows = 0;
    o->min_deadline_ns = 0;
    o->flush = false;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->joined, &ca);
    pthread_condattr_destroy(&ca);
    b->open = o;
    batch_add(b, o, it);
    batch_gather(b, o);
    /* Take an instance with the batch still open: while every instance is busy, requests keep
     * joining (up to full), so the batch grows with the load. */
    pthread_mutex_unlock(&b->lock);
    uint32_t slot;
    void *instance = ops->acquire(ctx, &slot);
    pthread_mutex_lock(&b->lock);
    if (b->open == o)
        b->open = NULL;
    uint32_t n = o->n; /* closed: nobody joins any more */
    pthread_mutex_unlock(&b->lock);
    batch_run(b, o->items, n, instance, ops, ctx);
    ops->release(ctx, slot);
    if (n > 2) { /* items[0] is ours; the youngest wakes the rest and frees the batch */
        o->items[n - 1]->wake_rest = o;
        batch_wake(o->items[n - 1]);
        return;
    }
    if (n == 2)
        batch_wake(o->items[1]);
    pthread_cond_destroy(&o->joined);
    free(o);
}

void batcher_submit(batcher *b, batch_item *it, const batch_ops *ops, void *ctx)
{
    atomic_store_explicit(&it->ran, 0, memory_order_relaxed);
    it->wake_rest = NULL;
    if (it->rows < 1)
        it->rows = 1;
    if (it->rows >= b->cfg.max_batch_size) {
        batch_alone(b, it, ops, ctx);
        return;
    }
    pthread_mutex_lock(&b->lock);
    batch_open *o = b->open;
    if (o != NULL && batch_fits(b, o, it)) {
        batch_follow(b, o, it);
    } else {
        if (o != NULL) { /* no room: the open batch runs now, this request opens the next */
            o->flush = true;
            b->open = NULL;
            pthread_cond_signal(&o->joined);
        }
        batch_lead(b, it, ops, ctx);
    }
}
