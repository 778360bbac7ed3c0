/*
 * admission: the per-deployment concurrency limit (max_in_flight) and its bounded queue
 * (max_queue), so one slow model holds at most its share of the server's worker threads and the
 * rest answer 503 with Retry-After at once instead of queueing behind it.
 *
 *   admission_enter  a slot free: run now. Else a queue place free: wait for a slot until the
 *                    request's deadline. Else: ADMIT_FULL at once.
 *   admission_leave  give the slot back (wakes one waiter).
 *
 * admission_cap (below) is the server-wide cap over all deployments together.
 *
 * With max_in_flight == 0 there is no limit and enter/leave touch nothing. Otherwise a free slot
 * is taken and given back with atomics alone (no lock while nobody waits); the mutex and the
 * condition variable are only for requests that queue, and for waking them.
 * Thread-safety: any number of threads.
 */
#ifndef DS_ADMISSION_H
#define DS_ADMISSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>

typedef enum admit_result {
    ADMIT_OK = 0,
    ADMIT_FULL = 1,   /* every slot and queue place taken: 503 + Retry-After */
    ADMIT_TIMEOUT = 2 /* waited in the queue until the deadline: 504 */
} admit_result;

typedef struct admission {
    int64_t max_in_flight; /* 0 = unlimited */
    int64_t max_queue;
    pthread_mutex_t mu; /* guards the waiting (cv); queued changes only under it */
    pthread_cond_t cv;
    atomic_int_fast64_t in_flight; /* slots taken: compare-and-swap below max_in_flight */
    atomic_int_fast64_t queued;    /* requests waiting on cv */
    atomic_uint_fast64_t rejected; /* ADMIT_FULL answers, lifetime */
} admission;

/* The server-wide cap on threads inside inference: every deployment's admitted and queued
 * requests together (they each hold a worker thread), so however many deployments stall at
 * once their max_in_flight shares cannot add up to every thread: `--thread-reserve` threads
 * stay for health and management. enter never waits: false at the cap (503 at once). Lock-free,
 * one atomic add per request; max 0 = no cap. Any thread. */
typedef struct admission_cap {
    int64_t max;
    atomic_int_fast64_t used;      /* requests between enter and leave (also with no cap) */
    atomic_uint_fast64_t entered;  /* enters that passed, lifetime (deploy_mem_begin/_end) */
    atomic_uint_fast64_t rejected; /* enter refused, lifetime */
} admission_cap;

void admission_cap_init(admission_cap *c, int64_t max);
bool admission_cap_enter(admission_cap *c);
void admission_cap_leave(admission_cap *c);

void admission_init(admission *a, int64_t max_in_flight, int64_t max_queue);
void admission_destroy(admission *a);
/* deadline_ns: CLOCK_MONOTONIC nanoseconds, 0 = none. */
admit_result admission_enter(admission *a, uint64_t deadline_ns);
void admission_leave(admission *a);

#endif
