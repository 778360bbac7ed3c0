/*
 * brlock: a "big-reader" lock: a reader/writer lock whose read side is split into stripes, one
 * per thread (round-robin over BRLOCK_STRIPES), so readers on different threads never write the
 * same cache line. For state read on every request and changed rarely (auth's token snapshot).
 *
 *   int s = brlock_rdlock(l);  ...read...  brlock_rdunlock(l, s);
 *   brlock_wrlock(l);          ...write... brlock_wrunlock(l);   (takes every stripe, in order)
 *
 * Thread-safety: any number of threads. A thread's stripe number is thread-local (assigned from
 * an atomic counter at its first read lock). Not recursive, like pthread_rwlock.
 */
#ifndef DS_BASE_BRLOCK_H
#define DS_BASE_BRLOCK_H

#include <pthread.h>

/* TSan's deadlock detector holds at most 64 locks per thread and aborts past that
 * (sanitizer_deadlock_detector.h); a writer holds every stripe plus its caller's locks, so a
 * TSan build uses fewer stripes. Same semantics, only more read-side sharing. */
#if defined(__SANITIZE_THREAD__)
#define BRLOCK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BRLOCK_TSAN 1
#endif
#endif
#ifdef BRLOCK_TSAN
#define BRLOCK_STRIPES 8
#else
#define BRLOCK_STRIPES 64
#endif

typedef struct brlock {
    /* 128 bytes a stripe: whatever the allocation's alignment, two stripes' locks are more than
     * a cache line apart. */
    struct {
        pthread_rwlock_t lock;
        char pad[128 - sizeof(pthread_rwlock_t)];
    } stripe[BRLOCK_STRIPES];
} brlock;

/* 0, or -1 when a pthread_rwlock_init failed (nothing to destroy then). */
int brlock_init(brlock *l);
void brlock_destroy(brlock *l);
/* Read lock on this thread's stripe; returns the stripe for brlock_rdunlock. */
int brlock_rdlock(brlock *l);
void brlock_rdunlock(brlock *l, int stripe);
void brlock_wrlock(brlock *l);
void brlock_wrunlock(brlock *l);

#endif
