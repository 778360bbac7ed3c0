/* admission: see admission.h. */
#include "admission.h"

#include <errno.h>
#include <time.h>

void admission_init(admission *a, int64_t max_in_flight, int64_t max_queue)
{
    a->max_in_flight = max_in_flight > 0 ? max_in_flight : 0;
    a->max_queue = max_queue > 0 ? max_queue : 0;
    a->in_flight = a->queued = 0;
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

admit_result admission_enter(admission *a, uint64_t deadline_ns)
{
    if (a->max_in_flight == 0)
        return ADMIT_OK;
    pthread_mutex_lock(&a->mu);
    admit_result r = ADMIT_OK;
    if (a->in_flight >= a->max_in_flight) {
        if (a->queued >= a->max_queue) {
            r = ADMIT_FULL;
        } else {
            a->queued++;
            struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                                  .tv_nsec = (long)(deadline_ns % 1000000000u)};
            while (a->in_flight >= a->max_in_flight && r == ADMIT_OK) {
                int rc = deadline_ns ? pthread_cond_timedwait(&a->cv, &a->mu, &ts)
                                     : pthread_cond_wait(&a->cv, &a->mu);
                if (rc == ETIMEDOUT && a->in_flight >= a->max_in_flight)
                    r = ADMIT_TIMEOUT;
            }
            a->queued--;
        }
    }
    if (r == ADMIT_OK)
        a->in_flight++;
    pthread_mutex_unlock(&a->mu);
    if (r == ADMIT_FULL)
        atomic_fetch_add(&a->rejected, 1);
    return r;
}

void admission_leave(admission *a)
{
    if (a->max_in_flight == 0)
        return;
    pthread_mutex_lock(&a->mu);
    a->in_flight--;
    if (a->queued > 0)
        pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}
