/*
 * Unit tests for the stats module (src/deploy/stats.c): exact counts under concurrent writers (also
 * run under TSan), percentile accuracy (within 2% of the exact nearest-rank value) for constant,
 * uniform, log-uniform and bimodal latencies, error classes and code slots, restored lifetime
 * totals, the recent window with a fake clock (stats_end_at / stats_window_at), the histogram
 * export, and the memory budget.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats.h"

#define NS_PER_MS 1000000.0

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *state) /* xorshift64*: deterministic test data */
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

static double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The exact nearest-rank quantile (the sample of rank ceil(q * n)) of sorted values, in ms. */
static double exact_quantile_ms(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1] / NS_PER_MS;
}

static void assert_within(double got, double want, double rel)
{
    double err = fabs(got - want) / want;
    if (err > rel)
        fail_msg("got %.6f, want %.6f (relative error %.4f > %.4f)", got, want, err, rel);
}

/* Record every value (status 200), then check p50/p95/p99 against the exact ones. */
static void check_percentiles(uint64_t *values, size_t n)
{
    ds_stats *s = stats_new();
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        stats_begin(s);
        stats_end(s, values[i], 200);
    }
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.request_count, n);
    qsort(values, n, sizeof *values, cmp_u64);
    assert_within(snap.p50_ms, exact_quantile_ms(values, n, 0.50), 0.02);
    assert_within(snap.p95_ms, exact_quantile_ms(values, n, 0.95), 0.02);
    assert_within(snap.p99_ms, exact_quantile_ms(values, n, 0.99), 0.02);
    stats_free(s);
}

/* ---- counting ------------------------------------------------------------------------------ */

#define WRITERS    4
#define PER_WRITER 50000
static const int writer_status[5] = {200, 404, 500, 201, 503};

typedef struct race {
    ds_stats *s;
    atomic_bool done;
    atomic_int bad_in_flight; /* set by the reader thread: cmocka asserts only on the main one */
    atomic_int reads;
} race;

static void *writer_main(void *arg)
{
    race *r = arg;
    for (int i = 0; i < PER_WRITER; i++) {
        stats_begin(r->s);
        stats_end(r->s, 1000 + (uint64_t)i * 100, writer_status[i % 5]);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->done)) {
        stats_snapshot snap;
        stats_snapshot_get(r->s, &snap);
        /* Each writer has at most one request in flight. */
        if (snap.in_flight < 0 || snap.in_flight > WRITERS)
            atomic_store(&r->bad_in_flight, 1);
        stats_window_view w;
        stats_window(r->s, 60, &w);
        uint64_t counts[64];
        stats_buckets(r->s, counts, 64);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_concurrent_writers_are_counted_exactly(void **state)
{
    (void)state;
    race r = {.s = stats_new()};
    assert_non_null(r.s);
    pthread_t writers[WRITERS], reader;
    assert_int_equal(pthread_create(&reader, NULL, reader_main, &r), 0);
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&writers[i], NULL, writer_main, &r), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(writers[i], NULL);
    atomic_store(&r.done, true);
    pthread_join(reader, NULL);

    const uint64_t n = (uint64_t)WRITERS * PER_WRITER;
    stats_snapshot snap;
    stats_snapshot_get(r.s, &snap);
    assert_int_equal(snap.request_count, n);
    assert_int_equal(snap.in_flight, 0);
    assert_int_equal(snap.error_4xx, n / 5);
    assert_int_equal(snap.error_5xx, 2 * n / 5);
    assert_int_equal(snap.error_count, 3 * n / 5);
    assert_int_equal(atomic_load(&r.bad_in_flight), 0);
    assert_true(atomic_load(&r.reads) > 0);

    /* The latency sum is exact too: each writer adds sum(1000 + 100 i) ns. */
    double per_writer_ns = 1000.0 * PER_WRITER + 100.0 * (PER_WRITER - 1.0) * PER_WRITER / 2;
    assert_within(snap.latency_sum_ms, WRITERS * per_writer_ns / NS_PER_MS, 1e-12);

    size_t nb = stats_bucket_count();
    uint64_t *counts = calloc(nb, sizeof *counts), total = 0;
    assert_int_equal(stats_buckets(r.s, counts, nb), nb);
    for (size_t i = 0; i < nb; i++)
        total += counts[i];
    assert_int_equal(total, n);
    free(counts);

    stats_window_view w;
    stats_window(r.s, 60, &w);
    assert_true(w.request_count <= n); /* requests racing a slot reset may be left out */
    stats_free(r.s);
}

static void test_in_flight_counts_begun_requests(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_begin(s);
    stats_begin(s);
    stats_begin(s);
    stats_end(s, 5000, 200);
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.in_flight, 2);
    assert_int_equal(snap.request_count, 1);
    stats_end(s, 5000, 200);
    stats_end(s, 5000, 200);
    stats_end(s, 5000, 200); /* unpaired: in_flight must not go negative */
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.in_flight, 0);
    stats_free(s);
}

static void test_error_classes_and_code_slots(void **state)
{
    (void)state;
    static const int statuses[] = {200, 200, 201, 204, 400, 404, 404, 405, 409,
                                   413, 418, 429, 500, 503, 504, 302, 0};
    const size_t n = sizeof statuses / sizeof statuses[0];
    ds_stats *s = stats_new();
    for (size_t i = 0; i < n; i++) {
        stats_begin(s);
        stats_end(s, 10000, statuses[i]);
    }
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.request_count, n); /* 302 and 0 count, in no code slot */
    assert_int_equal(snap.error_4xx, 8);
    assert_int_equal(snap.error_5xx, 3);
    assert_int_equal(snap.error_count, 11);

    static const struct {
        const char *label;
        uint64_t count;
    } want[STATS_CODE_SLOTS] = {{"200", 2}, {"400", 1}, {"404", 2}, {"405", 1},
                                {"409", 1}, {"413", 1}, {"429", 1}, {"500", 1},
                                {"503", 1}, {"2xx", 2}, {"4xx", 1}, {"5xx", 1}};
    uint64_t sum = 0;
    for (size_t i = 0; i < STATS_CODE_SLOTS; i++) {
        assert_string_equal(snap.code_label[i], want[i].label);
        assert_int_equal(snap.code_count[i], want[i].count);
        sum += snap.code_count[i];
    }
    assert_int_equal(sum, n - 2);
    stats_free(s);
}

static void test_empty_stats_are_zero(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.request_count, 0);
    assert_true(snap.p50_ms == 0 && snap.p99_ms == 0 && snap.avg_latency_ms == 0);
    assert_int_equal(snap.last_request_unix_ms, 0);
    assert_string_equal(snap.code_label[0], "200");
    stats_window_view w;
    stats_window(s, 60, &w);
    assert_int_equal(w.request_count, 0);
    assert_true(w.p99_ms == 0);
    stats_free(s);
}

static void test_null_stats_are_ignored(void **state)
{
    (void)state;
    stats_begin(NULL);
    stats_end(NULL, 1000, 200);
    stats_snapshot snap;
    stats_snapshot_get(NULL, &snap);
    assert_int_equal(snap.request_count, 0);
    assert_string_equal(snap.code_label[11], "5xx");
    stats_window_view w;
    stats_window(NULL, 10, &w);
    assert_int_equal(w.request_count, 0);
    stats_free(NULL);
}

static void test_last_request_time_is_wall_clock(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_begin(s);
    stats_end(s, 1000, 200);
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    assert_true(snap.last_request_unix_ms > now_ms - 5000);
    assert_true(snap.last_request_unix_ms < now_ms + 5000);
    stats_free(s);
}

/* ---- percentiles --------------------------------------------------------------------------- */

static void test_percentiles_of_constant_latency_within_2_percent(void **state)
{
    (void)state;
    /* Every value from 1 us to 100 s in 0.5% steps, and the powers of two and their
     * neighbours, where the bucket layout changes. */
    for (double v = 1000; v <= 100e9; v *= 1.005) {
        uint64_t one = (uint64_t)v;
        check_percentiles(&one, 1);
    }
    for (int k = 10; k <= 36; k++)
        for (int d = -1; d <= 1; d++) {
            uint64_t one = (UINT64_C(1) << k) + (uint64_t)(int64_t)d;
            check_percentiles(&one, 1);
        }
    uint64_t many[1000];
    for (size_t i = 0; i < 1000; i++)
        many[i] = 12345678; /* 12.3 ms */
    check_percentiles(many, 1000);
}

static void test_percentiles_of_uniform_latency_within_2_percent(void **state)
{
    (void)state;
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof *v), seed = 42;
    for (size_t i = 0; i < N; i++) /* uniform 1 ms .. 100 ms */
        v[i] = 1000000 + (uint64_t)(rng_unit(&seed) * 99e6);
    check_percentiles(v, N);
    for (size_t i = 0; i < N; i++) /* log-uniform 1 us .. 100 s */
        v[i] = (uint64_t)(1000.0 * pow(10.0, 8.0 * rng_unit(&seed)));
    check_percentiles(v, N);
    free(v);
}

static void test_percentiles_of_bimodal_latency_within_2_percent(void **state)
{
    (void)state;
    enum { N = 10000 };
    uint64_t *v = malloc(N * sizeof *v), seed = 7;
    for (size_t i = 0; i < N; i++) /* 93% around 2 ms, 7% around 800 ms */
        v[i] = rng_unit(&seed) < 0.93 ? 1900000 + rng_next(&seed) % 200000
                                      : 790000000 + rng_next(&seed) % 20000000;
    check_percentiles(v, N);
    free(v);
}

static void test_out_of_range_latency_is_clamped(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_end(s, 0, 200);
    stats_end(s, 1000ull * 1000000000ull, 200); /* 1000 s */
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.request_count, 2);
    assert_true(snap.p50_ms > 0 && snap.p50_ms < 0.001);
    assert_true(snap.p99_ms > 100000 && snap.p99_ms < 200000); /* the last bucket, ~137 s */
    stats_free(s);
}

/* ---- restored totals ----------------------------------------------------------------------- */

static void test_base_totals_add_to_counts_but_not_percentiles(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_set_base(s, 1000, 10, 5, 2000.0);
    for (int i = 0; i < 10; i++) {
        stats_begin(s);
        stats_end(s, 1000000, i == 0 ? 500 : 200); /* 1 ms */
    }
    stats_snapshot snap;
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.request_count, 1010);
    assert_int_equal(snap.error_4xx, 10);
    assert_int_equal(snap.error_5xx, 6);
    assert_int_equal(snap.error_count, 16);
    assert_within(snap.latency_sum_ms, 2010.0, 1e-9);
    assert_within(snap.avg_latency_ms, 2010.0 / 1010.0, 1e-9);
    assert_within(snap.p50_ms, 1.0, 0.02);
    assert_within(snap.p99_ms, 1.0, 0.02);
    uint64_t sum = 0;
    for (size_t i = 0; i < STATS_CODE_SLOTS; i++)
        sum += snap.code_count[i];
    assert_int_equal(sum, 1010);               /* restored totals sit in the class slots */
    assert_int_equal(snap.code_count[9], 985); /* "2xx" */

    stats_snapshot live;
    stats_snapshot_live(s, &live);
    assert_int_equal(live.request_count, 10);
    assert_int_equal(live.error_5xx, 1);
    assert_int_equal(live.error_4xx, 0);
    assert_within(live.latency_sum_ms, 10.0, 1e-9);
    assert_int_equal(live.code_count[0], 9);
    assert_int_equal(live.code_count[7], 1);

    stats_window_view w;
    stats_window(s, 60, &w);
    assert_int_equal(w.request_count, 10);
    assert_int_equal(w.error_count, 1);
    stats_free(s);
}

/* ---- the window ---------------------------------------------------------------------------- */

static void test_window_counts_only_recent_requests(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    for (int i = 0; i < 10; i++)
        stats_end_at(s, 2000000, i < 2 ? 503 : (i < 4 ? 404 : 200), 1000);
    for (int i = 0; i < 5; i++)
        stats_end_at(s, 2000000, 500, 1030);
    stats_window_view w;
    stats_window_at(s, 60, 1040, &w);
    assert_int_equal(w.request_count, 15);
    assert_int_equal(w.error_count, 7); /* 5xx only */
    stats_window_at(s, 20, 1040, &w);
    assert_int_equal(w.request_count, 5);
    stats_window_at(s, 1, 1030, &w);
    assert_int_equal(w.request_count, 5);
    stats_window_at(s, 60, 1059, &w); /* second 1000 is the oldest of 1000..1059 */
    assert_int_equal(w.request_count, 15);
    stats_window_at(s, 60, 1060, &w);
    assert_int_equal(w.request_count, 5);
    stats_window_at(s, 60, 1100, &w);
    assert_int_equal(w.request_count, 0);
    assert_true(w.p99_ms == 0);
    stats_window_at(s, 500, 1040, &w); /* clamped to 60 */
    assert_int_equal(w.request_count, 15);

    stats_snapshot snap; /* the lifetime counts keep everything */
    stats_snapshot_get(s, &snap);
    assert_int_equal(snap.request_count, 15);
    stats_free(s);
}

static void test_window_slots_are_recycled(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    /* Fill every second for three minutes: each window sees exactly its own seconds. */
    for (int64_t t = 2000; t < 2180; t++) {
        for (int64_t i = 0; i <= t % 7; i++)
            stats_end_at(s, 1000000, t % 11 == 0 ? 500 : 200, t);
        stats_window_view w;
        stats_window_at(s, 60, t, &w);
        uint64_t want = 0, want_err = 0;
        for (int64_t u = t - 59; u <= t; u++) {
            if (u < 2000)
                continue;
            want += (uint64_t)(u % 7 + 1);
            want_err += u % 11 == 0 ? (uint64_t)(u % 7 + 1) : 0;
        }
        assert_int_equal(w.request_count, want);
        assert_int_equal(w.error_count, want_err);
    }
    /* After a silence longer than the ring, one request: only it counts. */
    stats_end_at(s, 1000000, 200, 2180 + 62 * 3);
    stats_window_view w;
    stats_window_at(s, 60, 2180 + 62 * 3, &w);
    assert_int_equal(w.request_count, 1);
    stats_free(s);
}

/* Writers that move through seconds quickly, so that slots are claimed and zeroed while other
 * writers add and a reader copies: exact lifetime counts, no lost window request beyond the
 * documented race, and (under TSan) no data race in the recycling protocol. The writers stay
 * within FAST_MAX_SKEW seconds of each other, as threads reading one clock do: a writer stalled
 * for longer than the ring could add to a recycled slot (stats.c documents that case), and
 * unsynchronized fake clocks under a slow sanitizer build would produce exactly that. */
enum {
    FAST_WRITERS = 4,
    FAST_PER_WRITER = 40000,
    FAST_PER_SECOND = 200,
    FAST_T0 = 10000,
    FAST_MAX_SKEW = 30
};

typedef struct fast_race {
    ds_stats *s;
    atomic_bool done;
    atomic_int bad_window;
    atomic_int second[FAST_WRITERS]; /* each writer's current fake second; INT_MAX when done */
    atomic_int next_writer;
} fast_race;

/* Wait until no writer is more than FAST_MAX_SKEW seconds behind `second`. */
static void fast_keep_pace(fast_race *r, int second)
{
    for (int i = 0; i < FAST_WRITERS; i++)
        while (atomic_load(&r->second[i]) < second - FAST_MAX_SKEW)
            sched_yield();
}

static void *fast_writer_main(void *arg)
{
    fast_race *r = arg;
    int me = atomic_fetch_add(&r->next_writer, 1);
    for (int i = 0; i < FAST_PER_WRITER; i++) {
        int second = FAST_T0 + i / FAST_PER_SECOND;
        if (i % FAST_PER_SECOND == 0) {
            atomic_store(&r->second[me], second);
            fast_keep_pace(r, second);
        }
        stats_end_at(r->s, 1000000, i % 4 == 0 ? 500 : 200, second);
    }
    atomic_store(&r->second[me], INT_MAX);
    return NULL;
}

static void *fast_reader_main(void *arg)
{
    fast_race *r = arg;
    for (int64_t t = FAST_T0; !atomic_load(&r->done); t = t < FAST_T0 + 250 ? t + 1 : FAST_T0) {
        stats_window_view w;
        stats_window_at(r->s, 60, t, &w);
        if (w.request_count > (uint64_t)FAST_WRITERS * FAST_PER_SECOND * 60 ||
            w.error_count > w.request_count)
            atomic_store(&r->bad_window, 1);
    }
    return NULL;
}

static void test_window_recycling_under_concurrency(void **state)
{
    (void)state;
    fast_race r = {.s = stats_new()};
    for (int i = 0; i < FAST_WRITERS; i++)
        atomic_init(&r.second[i], FAST_T0);
    pthread_t writers[FAST_WRITERS], reader;
    assert_int_equal(pthread_create(&reader, NULL, fast_reader_main, &r), 0);
    for (int i = 0; i < FAST_WRITERS; i++)
        assert_int_equal(pthread_create(&writers[i], NULL, fast_writer_main, &r), 0);
    for (int i = 0; i < FAST_WRITERS; i++)
        pthread_join(writers[i], NULL);
    atomic_store(&r.done, true);
    pthread_join(reader, NULL);
    assert_int_equal(atomic_load(&r.bad_window), 0);

    stats_snapshot snap;
    stats_snapshot_get(r.s, &snap);
    assert_int_equal(snap.request_count, (uint64_t)FAST_WRITERS * FAST_PER_WRITER);
    const int64_t last = FAST_T0 + (FAST_PER_WRITER - 1) / FAST_PER_SECOND;
    stats_window_view w;
    stats_window_at(r.s, 60, last, &w);
    uint64_t full = (uint64_t)FAST_WRITERS * FAST_PER_SECOND * 60;
    assert_true(w.request_count <= full);
    assert_true(w.request_count > full / 2); /* losses are rare races, not whole seconds */
    assert_int_equal(w.error_count * 4 <= w.request_count + 4 * FAST_WRITERS, 1);
    stats_free(r.s);
}

static void test_window_p99_is_coarse_but_close(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    for (int i = 0; i < 98; i++)
        stats_end_at(s, 2000000, 200, 500); /* 2 ms */
    stats_end_at(s, 100000000, 200, 501);   /* 100 ms */
    stats_end_at(s, 100000000, 200, 501);
    stats_window_view w;
    stats_window_at(s, 10, 505, &w);
    assert_int_equal(w.request_count, 100);
    assert_within(w.p99_ms, 100.0, 0.0625); /* rank 99 is a 100 ms request */
    stats_end_at(s, 2000000, 200, 502);
    stats_end_at(s, 2000000, 200, 502);
    for (int i = 0; i < 98; i++)
        stats_end_at(s, 2000000, 200, 502);
    stats_window_at(s, 10, 505, &w);
    assert_within(w.p99_ms, 2.0, 0.0625); /* now rank 198 of 200 is 2 ms */
    stats_free(s);
}

static void test_window_sees_requests_of_the_real_clock(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_begin(s);
    stats_end(s, 3000000, 503);
    stats_window_view w;
    stats_window(s, 5, &w);
    assert_int_equal(w.request_count, 1);
    assert_int_equal(w.error_count, 1);
    assert_within(w.p99_ms, 3.0, 0.0625);
    stats_free(s);
}

/* ---- export and budget --------------------------------------------------------------------- */

static void test_bucket_export_matches_requests(void **state)
{
    (void)state;
    size_t n = stats_bucket_count();
    assert_true(n > 100);
    for (size_t i = 1; i < n; i++) {
        double lo = stats_bucket_upper_ms(i - 1), hi = stats_bucket_upper_ms(i);
        assert_true(hi > lo);
        assert_true((hi - lo) / lo < 1.0 / 31); /* 32 per octave: fine enough for 2% */
    }
    assert_true(stats_bucket_upper_ms(0) <= 0.001);      /* 1 us */
    assert_true(stats_bucket_upper_ms(n - 1) >= 100000); /* 100 s */

    ds_stats *s = stats_new();
    static const uint64_t lat[] = {1500, 250000, 250000, 999999, 1000000, 7000000000ull};
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
        stats_end(s, lat[i], 200);
    uint64_t *counts = calloc(n, sizeof *counts);
    assert_int_equal(stats_buckets(s, counts, n), n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += counts[i];
        for (size_t k = 0; k < sizeof lat / sizeof lat[0]; k++) {
            double ms = (double)lat[k] / NS_PER_MS;
            bool here =
                ms <= stats_bucket_upper_ms(i) && (i == 0 || ms > stats_bucket_upper_ms(i - 1));
            if (here)
                assert_true(counts[i] > 0);
        }
    }
    assert_int_equal(total, 6);
    uint64_t few[4] = {9, 9, 9, 9};
    assert_int_equal(stats_buckets(s, few, 3), 3);
    assert_int_equal(few[3], 9);
    free(counts);
    stats_free(s);
}

static void test_recent_windows_count_the_last_minute_and_five_minutes(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    /* 10 requests a second from t=10000 to t=10599 (600 s), 1 in 10 a 503, latency 2 ms. */
    for (int64_t t = 10000; t < 10600; t++)
        for (int i = 0; i < 10; i++)
            stats_end_at(s, 2000000, i == 0 ? 503 : 200, t);
    stats_recent r;
    stats_recent_get_at(s, 60, 10599, &r);
    assert_int_equal(r.window_s, 60);
    assert_int_equal(r.request_count, 600);
    assert_int_equal(r.error_count, 60);
    assert_true(fabs(r.request_rate - 10.0) < 1e-9);
    assert_true(fabs(r.error_rate - 0.1) < 1e-9);
    assert_true(fabs(r.p50_ms - 2.0) <= 2.0 * 0.0625);
    assert_true(r.p50_ms <= r.p95_ms && r.p95_ms <= r.p99_ms);
    assert_true(fabs(r.p99_ms - 2.0) <= 2.0 * 0.0625);
    stats_recent_get_at(s, 300, 10599, &r);
    assert_true(r.window_s >= 286 && r.window_s <= 300);
    assert_int_equal(r.request_count, (uint64_t)r.window_s * 10); /* whole seconds, none older */
    assert_int_equal(r.error_count, (uint64_t)r.window_s);
    assert_true(fabs(r.request_rate - 10.0) < 1e-9);
    /* Ten idle minutes later both windows are empty. */
    stats_recent_get_at(s, 60, 11200, &r);
    assert_int_equal(r.request_count, 0);
    assert_true(r.request_rate == 0 && r.error_rate == 0 && r.p99_ms == 0);
    stats_recent_get_at(s, 300, 11200, &r);
    assert_int_equal(r.request_count, 0);
    /* Out-of-range windows are clamped; NULL stats read as empty. */
    stats_recent_get_at(s, 100000, 10599, &r);
    assert_true(r.window_s <= 300);
    stats_recent_get_at(NULL, 60, 10599, &r);
    assert_int_equal(r.request_count, 0);
    stats_free(s);
}

static void test_five_minute_window_forgets_requests_older_than_five_minutes(void **state)
{
    (void)state;
    ds_stats *s = stats_new();
    stats_end_at(s, 1000000, 200, 20000);       /* 400 s before the read: out */
    stats_end_at(s, 1000000, 200, 20400 - 280); /* 280 s before: in */
    stats_end_at(s, 1000000, 500, 20399);
    stats_recent r;
    stats_recent_get_at(s, 300, 20400, &r);
    assert_int_equal(r.request_count, 2);
    assert_int_equal(r.error_count, 1);
    assert_true(fabs(r.error_rate - 0.5) < 1e-9);
    stats_recent_get_at(s, 60, 20400, &r);
    assert_int_equal(r.request_count, 1);
    stats_free(s);
}

static void test_memory_budget_is_96_kib(void **state)
{
    (void)state;
    /* 63 KiB of lifetime counters and the one-minute ring, 20 KiB for the five-minute ring. */
    assert_true(stats_footprint() <= 96 * 1024);
    /* A thousand deployments: 96 MiB at most, and allocation works. */
    enum { DEPLOYMENTS = 1000 };
    ds_stats **many = calloc(DEPLOYMENTS, sizeof *many);
    for (size_t i = 0; i < DEPLOYMENTS; i++) {
        many[i] = stats_new();
        assert_non_null(many[i]);
        stats_end(many[i], 1000 + i, 200);
    }
    for (size_t i = 0; i < DEPLOYMENTS; i++)
        stats_free(many[i]);
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_writers_are_counted_exactly),
        cmocka_unit_test(test_in_flight_counts_begun_requests),
        cmocka_unit_test(test_error_classes_and_code_slots),
        cmocka_unit_test(test_empty_stats_are_zero),
        cmocka_unit_test(test_null_stats_are_ignored),
        cmocka_unit_test(test_last_request_time_is_wall_clock),
        cmocka_unit_test(test_percentiles_of_constant_latency_within_2_percent),
        cmocka_unit_test(test_percentiles_of_uniform_latency_within_2_percent),
        cmocka_unit_test(test_percentiles_of_bimodal_latency_within_2_percent),
        cmocka_unit_test(test_out_of_range_latency_is_clamped),
        cmocka_unit_test(test_base_totals_add_to_counts_but_not_percentiles),
        cmocka_unit_test(test_window_counts_only_recent_requests),
        cmocka_unit_test(test_window_slots_are_recycled),
        cmocka_unit_test(test_window_recycling_under_concurrency),
        cmocka_unit_test(test_window_p99_is_coarse_but_close),
        cmocka_unit_test(test_window_sees_requests_of_the_real_clock),
        cmocka_unit_test(test_bucket_export_matches_requests),
        cmocka_unit_test(test_recent_windows_count_the_last_minute_and_five_minutes),
        cmocka_unit_test(test_five_minute_window_forgets_requests_older_than_five_minutes),
        cmocka_unit_test(test_memory_budget_is_96_kib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
