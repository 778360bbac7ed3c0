/*
 * deadline: the CLOCK_REALTIME instant `ms` milliseconds from now, as pthread_cond_timedwait
 * wants it (a default condition variable measures its timeout on that clock).
 * Thread-safety: pure; any thread.
 */
#ifndef DS_BASE_DEADLINE_H
#define DS_BASE_DEADLINE_H

#include <time.h>

static inline struct timespec ds_deadline_after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
