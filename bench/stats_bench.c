/*
 * stats_bench: the cost of the stats hot path, stats_begin + stats_end, in ns per request:
 * one thread; two threads on one deployment (they share the histogram and window lines, the
 * worst case); two threads on two deployments. Prints numbers, asserts nothing (bench/README.md).
 * Built with -DDYNSERVE_NO_STATS (cmake -DDYNSERVE_STATS=OFF) it measures the empty calls.
 *
 * usage: stats_bench [iterations per thread, default 20000000]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stats.h"

typedef struct job {
    ds_stats *s;
    long iterations;
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    const job *j = arg;
    for (long i = 0; i < j->iterations; i++) {
        stats_begin(j->s);
        /* Latencies spread over ~1000 buckets of 100 us .. 1 ms, mostly 200s, some errors. */
        uint64_t latency_ns = 100000 + (uint64_t)(i & 1023) * 900;
        stats_end(j->s, latency_ns, (i & 63) == 0 ? 503 : 200);
    }
    return NULL;
}

/* Run `threads` threads, thread i on stats[i]; ns per begin+end pair, per thread. */
static double measure(ds_stats **stats, int threads, long iterations)
{
    pthread_t tid[2];
    job jobs[2];
    double start = now_s();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){stats[i], iterations};
        if (pthread_create(&tid[i], NULL, run, &jobs[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    return (now_s() - start) * 1e9 / (double)iterations;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [iterations]\n", argv[0]);
        return 2;
    }
    ds_stats *a = stats_new(), *b = stats_new();
    if (a == NULL || b == NULL)
        return 1;
#ifdef DYNSERVE_NO_STATS
    printf("stats: OFF (DYNSERVE_NO_STATS)\n");
#else
    printf("stats: on, %zu bytes per deployment\n", stats_footprint());
#endif
    ds_stats *same[2] = {a, a}, *apart[2] = {a, b};
    measure(same, 1, n / 10); /* warm up caches and the thread's stripe */
    printf("1 thread                      %6.1f ns/request\n", measure(same, 1, n));
    printf("2 threads, same deployment    %6.1f ns/request (per thread)\n", measure(same, 2, n));
    printf("2 threads, two deployments    %6.1f ns/request (per thread)\n", measure(apart, 2, n));

    stats_snapshot snap;
    stats_snapshot_get(a, &snap);
    printf("check: %llu requests, p50 %.3f ms, p99 %.3f ms, in flight %lld\n",
           (unsigned long long)snap.request_count, snap.p50_ms, snap.p99_ms,
           (long long)snap.in_flight);
    stats_free(a);
    stats_free(b);
    return 0;
}
