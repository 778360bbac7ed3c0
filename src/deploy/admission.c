/* admission: see admission.h. */
#include "admission.h"

#include <errno.h>
#include <stdbool.h>
#include <time.h>

void admission_init(admission *a, int64_t max_in_flight, int64_t max_queue)
{
    a->max_in_flight = max_in_flight > 0 ? max_in_flight : 0;
    a->max_queue = max_queue > 0 ? max_queue : 0;
    atomic_init(&a->in_flight, 0);
    atomic_init(&a->queued, 0);
    atomic_init(&a->rejected, 0);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void admission_destroy(admission *a)
{
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
}

/* Take a slot if one is free (lock-free). */
static bool admission_take_slot(admission *a)
{
    int_fast64_t n = atomic_load(&a->in_flight);
    while (n < a->max_in_flight)
        if (atomic_compare_exchange_weak(&a->in_flight, &n, n + 1))
            return true;
    return false;
}

admit_result admission_enter(admission *a, uint64_t deadline_ns)
{
    if (a->max_in_flight == 0)
        return ADMIT_OK;
    /* Nobody waiting: a free slot is ours without the mutex (waiters go first otherwise). */
    if (atomic_load(&a->queued) == 0 && admission_take_slot(a))
        return ADMIT_OK;
    pthread_mutex_lock(&a->mu);
    admit_result r = ADMIT_OK;
    if (!admission_take_slot(a)) {
        if (atomic_load(&a->queued) >= a->max_queue) {
            r = ADMIT_FULL;
        } else {
            /* queued is raised before the slot check (both seq_cst), and admission_leave lowers
             * in_flight before reading queued: either it sees us and signals under the mutex
             * (after we wait), or we see its slot. */
            atomic_fetch_add(&a->queued, 1);
            struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                                  .tv_nsec = (long)(deadline_ns % 1000000000u)};
            while (!admission_take_slot(a)) {
                int rc = deadline_ns ? pthread_cond_timedwait(&a->cv, &a->mu, &ts)
                                     : pthread_cond_wait(&a->cv, &a->mu);
                if (rc == ETIMEDOUT) {
                    if (!admission_take_slot(a))
                        r = ADMIT_TIMEOUT;
                    break;
                }
            }
            atomic_fetch_sub(&a->queued, 1);
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (r == ADMIT_FULL)
        atomic_fetch_add(&a->rejected, 1);
    return r;
}

void admission_leave(admission *a)
{
    if (a->max_in_flight == 0)
        return;
    atomic_fetch_sub(&a->in_flight, 1);
    if (atomic_load(&a->queued) > 0) {
        pthread_mutex_lock(&a->mu);
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
}

void admission_cap_init(admission_cap *c, int64_t max)
{
    c->max = max > 0 ? max : 0;
    atomic_init(&c->used, 0);
    atomic_init(&c->entered, 0);
    atomic_init(&c->rejected, 0);
}

bool admission_cap_enter(admission_cap *c)
{
    /* Optimistic: take a place, give it back when that went past the cap. Two racing threads
     * may both give back and both be refused at the edge, never both pass it. Counted with no
     * cap too: `used` tells whether a call is the only inference running. */
    if (atomic_fetch_add(&c->used, 1) < c->max || c->max == 0) {
        atomic_fetch_add_explicit(&c->entered, 1, memory_order_relaxed);
        return true;
    }
    atomic_fetch_sub(&c->used, 1);
    atomic_fetch_add(&c->rejected, 1);
    return false;
}

void admission_cap_leave(admission_cap *c)
{
    atomic_fetch_sub(&c->used, 1);
}
