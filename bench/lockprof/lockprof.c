/*
 * lockprof: an LD_PRELOAD lock counter (a tiny mutrace) for the lock inventory of a request path.
 * It counts every pthread_mutex_lock / pthread_rwlock_rdlock / pthread_rwlock_wrlock a process
 * makes through the dynamic linker, per lock address and call site (return address): calls and
 * how many distinct threads took it there. At exit it writes one line per lock to the file named by
 * LOCKPROF_OUT.<pid>: "<count> <threads> <kind> <lock address> <caller object> <caller offset>".
 * SIGUSR2 zeroes the counts (the run script sends it after deploying and warming up).
 * bench/lockprof/run resolves callers with addr2line and prints the table the README quotes.
 * Locks glibc takes internally (not through the PLT) are not seen. Not for production use.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SLOTS 8192

typedef struct slot {
    _Atomic uintptr_t lock;
    _Atomic uint64_t count;
    _Atomic uint64_t threads; /* bit (thread number % 64) of each thread that took it */
    _Atomic uintptr_t caller;
    _Atomic int kind; /* 0 mutex, 1 rdlock, 2 wrlock */
} slot;

static slot table[SLOTS];
static _Atomic unsigned next_thread;
static _Thread_local int thread_no = -1;
static int (*real_mutex_lock)(pthread_mutex_t *);
static int (*real_rdlock)(pthread_rwlock_t *);
static int (*real_wrlock)(pthread_rwlock_t *);

static void note(const void *lock, int kind, void *caller)
{
    if (thread_no < 0)
        thread_no = (int)(atomic_fetch_add(&next_thread, 1) % 64);
    uintptr_t key = (uintptr_t)lock, at = (uintptr_t)caller;
    for (size_t i = ((key >> 4) ^ (at * 31)) % SLOTS, n = 0; n < SLOTS; i = (i + 1) % SLOTS, n++) {
        uintptr_t seen = atomic_load(&table[i].lock);
        if (seen == 0 && atomic_compare_exchange_strong(&table[i].lock, &seen, key)) {
            atomic_store(&table[i].kind, kind);
            atomic_store(&table[i].caller, at); /* a reader may see 0 for an instant: no match */
            seen = key;
        }
        if (seen == key && atomic_load(&table[i].caller) == at) {
            atomic_fetch_add(&table[i].count, 1);
            atomic_fetch_or(&table[i].threads, UINT64_C(1) << thread_no);
            return;
        }
    }
}

/* SIGUSR2: start counting afresh (after the warm-up). Lock-free atomics only: signal-safe. */
static void lockprof_reset(int sig)
{
    (void)sig;
    for (size_t i = 0; i < SLOTS; i++) {
        atomic_store(&table[i].count, 0);
        atomic_store(&table[i].threads, 0);
    }
}

__attribute__((constructor)) static void lockprof_init(void)
{
    static _Atomic int handler_set;
    if (getenv("LOCKPROF_OUT") != NULL && atomic_exchange(&handler_set, 1) == 0) {
        struct sigaction sa = {.sa_handler = lockprof_reset};
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR2, &sa, NULL);
    }
    real_mutex_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
    real_rdlock = (int (*)(pthread_rwlock_t *))dlsym(RTLD_NEXT, "pthread_rwlock_rdlock");
    real_wrlock = (int (*)(pthread_rwlock_t *))dlsym(RTLD_NEXT, "pthread_rwlock_wrlock");
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (real_mutex_lock == NULL) /* called before our constructor ran */
        lockprof_init();
    note(m, 0, __builtin_return_address(0));
    return real_mutex_lock(m);
}

int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    if (real_rdlock == NULL)
        lockprof_init();
    note(l, 1, __builtin_return_address(0));
    return real_rdlock(l);
}

int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    if (real_wrlock == NULL)
        lockprof_init();
    note(l, 2, __builtin_return_address(0));
    return real_wrlock(l);
}

__attribute__((destructor)) static void lockprof_dump(void)
{
    const char *prefix = getenv("LOCKPROF_OUT");
    char path[4096];
    if (prefix == NULL)
        return;
    snprintf(path, sizeof path, "%s.%d", prefix, (int)getpid());
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    static const char *const kinds[] = {"mutex", "rdlock", "wrlock"};
    for (size_t i = 0; i < SLOTS; i++) {
        uintptr_t lock = atomic_load(&table[i].lock);
        if (lock == 0)
            continue;
        Dl_info info = {0};
        uintptr_t caller = atomic_load(&table[i].caller);
        dladdr((void *)caller, &info);
        fprintf(f, "%llu %d %s %#lx %s %#lx\n", (unsigned long long)atomic_load(&table[i].count),
                __builtin_popcountll(atomic_load(&table[i].threads)),
                kinds[atomic_load(&table[i].kind)], (unsigned long)lock,
                info.dli_fname ? info.dli_fname : "?",
                (unsigned long)(caller - (uintptr_t)info.dli_fbase));
    }
    fclose(f);
}
