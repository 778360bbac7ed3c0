/*
 * futex: wait on and wake a 32-bit word, the one place that spells the futex system call
 * (the batcher's members and the worker protocol's doorbell both sleep on words of their own).
 * FUTEX_SCOPE_PRIVATE is for a word only this process maps (cheaper: no shared-mapping lookup);
 * FUTEX_SCOPE_SHARED for a word in a MAP_SHARED mapping another process waits on or wakes.
 * Thread-safety: both calls are safe from any thread; the word's meaning is the caller's.
 */
#ifndef DS_BASE_FUTEX_H
#define DS_BASE_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef enum futex_scope {
    FUTEX_SCOPE_SHARED = 0,
    FUTEX_SCOPE_PRIVATE = FUTEX_PRIVATE_FLAG
} futex_scope;

/* Sleep while *word == expect, at most timeout_ms (-1: no limit). 0 when woken, when the word
 * had already changed or on a signal (callers re-check the word either way); -2 timed out. */
static inline int futex_wait(_Atomic uint32_t *word, uint32_t expect, int timeout_ms,
                             futex_scope scope)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT | (int)scope, expect,
                     timeout_ms >= 0 ? &ts : NULL, NULL, 0);
    return r != 0 && errno == ETIMEDOUT ? -2 : 0;
}

/* Wake at most `count` sleepers on word. A wake that finds none is a no-op. */
static inline void futex_wake(_Atomic uint32_t *word, int count, futex_scope scope)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | (int)scope, count, NULL, NULL, 0);
}

#endif
