/*
 * phase_stats: Triton-shaped duration counters (contract in phase_stats.h).
 *
 * Layout: PHASE_STRIPES stripes of plain relaxed-atomic counters, each aligned to a cache line,
 * written only by the threads given that stripe (round-robin on a thread's first request, kept
 * in a _Thread_local), summed by readers. The batch table is shared: a slot's batch_size goes
 * from 0 to its size once (CAS) and never changes again, so a reader that sees a size sees that
 * slot's counters for that size.
 */
#include "phase_stats.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define PHASE_STRIPES    8
#define PHASE_CACHE_LINE 64

typedef struct phase_counter {
    _Atomic uint64_t count, ns;
} phase_counter;

typedef struct phase_stripe {
    alignas(PHASE_CACHE_LINE) phase_counter success;
    phase_counter fail;
    phase_counter phase[PHASE_COUNT];
    _Atomic uint64_t inference_count, execution_count;
    _Atomic uint64_t shadow_count, shadow_mismatch, shadow_dropped;
} phase_stripe;

typedef struct phase_slot {
    _Atomic uint64_t batch_size; /* 0 = free */
    phase_counter input, infer, output;
} phase_slot;

struct ds_phase_stats {
    phase_stripe stripe[PHASE_STRIPES];
    phase_slot slot[PHASE_BATCH_SLOTS];
    _Atomic uint64_t batch_overflow;
};

static atomic_uint phase_next_stripe;
static _Thread_local int tl_stripe = -1;

static phase_stripe *phase_my_stripe(ds_phase_stats *p)
{
    if (tl_stripe < 0)
        tl_stripe = (int)(atomic_fetch_add_explicit(&phase_next_stripe, 1, memory_order_relaxed) %
                          PHASE_STRIPES);
    return &p->stripe[tl_stripe];
}

static void phase_add(phase_counter *c, uint64_t ns)
{
    atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->ns, ns, memory_order_relaxed);
}

static void phase_read(const phase_counter *c, phase_duration *out)
{
    out->count += atomic_load_explicit(&c->count, memory_order_relaxed);
    out->ns += atomic_load_explicit(&c->ns, memory_order_relaxed);
}

ds_phase_stats *phase_stats_new(void)
{
    ds_phase_stats *p = aligned_alloc(PHASE_CACHE_LINE, sizeof *p);
    if (p != NULL)
        memset(p, 0, sizeof *p);
    return p;
}

void phase_stats_free(ds_phase_stats *p)
{
    free(p);
}

/* The slot counting batch size `n`, claiming a free one; NULL when the table is full. */
static phase_slot *phase_batch_slot(ds_phase_stats *p, uint64_t n)
{
    size_t start = (size_t)(n * UINT64_C(0x9E3779B97F4A7C15) >> 58) % PHASE_BATCH_SLOTS;
    for (size_t i = 0; i < PHASE_BATCH_SLOTS; i++) {
        phase_slot *s = &p->slot[(start + i) % PHASE_BATCH_SLOTS];
        uint64_t have = atomic_load_explicit(&s->batch_size, memory_order_acquire);
        if (have == 0) {
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong_explicit(&s->batch_size, &expect, n,
                                                        memory_order_acq_rel, memory_order_acquire))
                return s;
            have = expect; /* someone else claimed it first: maybe for our size */
        }
        if (have == n)
            return s;
    }
    return NULL;
}

void phase_stats_success(ds_phase_stats *p, uint64_t total_ns, const phase_sample *sample)
{
    phase_stripe *st = phase_my_stripe(p);
    uint64_t batch = sample->batch_size ? sample->batch_size : 1;
    phase_add(&st->success, total_ns);
    for (int i = 0; i < PHASE_COUNT; i++)
        phase_add(&st->phase[i], sample->ns[i]);
    atomic_fetch_add_explicit(&st->inference_count, batch, memory_order_relaxed);
    if (sample->batched)
        return; /* its execution was counted once for the batch (phase_stats_execution) */
    atomic_fetch_add_explicit(&st->execution_count, 1, memory_order_relaxed);
    phase_slot *slot = phase_batch_slot(p, batch);
    if (slot == NULL) {
        atomic_fetch_add_explicit(&p->batch_overflow, 1, memory_order_relaxed);
        return;
    }
    phase_add(&slot->input, sample->ns[PHASE_INPUT]);
    phase_add(&slot->infer, sample->ns[PHASE_INFER]);
    phase_add(&slot->output, sample->ns[PHASE_OUTPUT]);
}

void phase_stats_execution(ds_phase_stats *p, uint64_t batch_size, uint64_t infer_ns)
{
    uint64_t batch = batch_size ? batch_size : 1;
    atomic_fetch_add_explicit(&phase_my_stripe(p)->execution_count, 1, memory_order_relaxed);
    phase_slot *slot = phase_batch_slot(p, batch);
    if (slot == NULL) {
        atomic_fetch_add_explicit(&p->batch_overflow, 1, memory_order_relaxed);
        return;
    }
    phase_add(&slot->input, 0);
    phase_add(&slot->infer, infer_ns);
    phase_add(&slot->output, 0);
}

void phase_stats_fail(ds_phase_stats *p, uint64_t total_ns)
{
    phase_add(&phase_my_stripe(p)->fail, total_ns);
}

void phase_stats_shadow(ds_phase_stats *p, bool mismatch)
{
    phase_stripe *st = phase_my_stripe(p);
    atomic_fetch_add_explicit(&st->shadow_count, 1, memory_order_relaxed);
    if (mismatch)
        atomic_fetch_add_explicit(&st->shadow_mismatch, 1, memory_order_relaxed);
}

void phase_stats_shadow_dropped(ds_phase_stats *p)
{
    atomic_fetch_add_explicit(&phase_my_stripe(p)->shadow_dropped, 1, memory_order_relaxed);
}

static int phase_batch_cmp(const void *a, const void *b)
{
    uint64_t x = ((const phase_batch *)a)->batch_size, y = ((const phase_batch *)b)->batch_size;
    return x < y ? -1 : x > y;
}

void phase_stats_snapshot(const ds_phase_stats *p, phase_snapshot *out)
{
    memset(out, 0, sizeof *out);
    for (int s = 0; s < PHASE_STRIPES; s++) {
        const phase_stripe *st = &p->stripe[s];
        phase_read(&st->success, &out->success);
        phase_read(&st->fail, &out->fail);
        for (int i = 0; i < PHASE_COUNT; i++)
            phase_read(&st->phase[i], &out->phase[i]);
        out->inference_count += atomic_load_explicit(&st->inference_count, memory_order_relaxed);
        out->execution_count += atomic_load_explicit(&st->execution_count, memory_order_relaxed);
        out->shadow_count += atomic_load_explicit(&st->shadow_count, memory_order_relaxed);
        out->shadow_mismatch_count +=
            atomic_load_explicit(&st->shadow_mismatch, memory_order_relaxed);
        out->shadow_dropped += atomic_load_explicit(&st->shadow_dropped, memory_order_relaxed);
    }
    for (size_t i = 0; i < PHASE_BATCH_SLOTS; i++) {
        const phase_slot *sl = &p->slot[i];
        uint64_t n = atomic_load_explicit(&sl->batch_size, memory_order_acquire);
        if (n == 0)
            continue;
        phase_batch *b = &out->batch[out->batch_count++];
        b->batch_size = n;
        phase_read(&sl->input, &b->input);
        phase_read(&sl->infer, &b->infer);
        phase_read(&sl->output, &b->output);
    }
    qsort(out->batch, out->batch_count, sizeof out->batch[0], phase_batch_cmp);
    out->batch_overflow = atomic_load_explicit(&p->batch_overflow, memory_order_relaxed);
}
