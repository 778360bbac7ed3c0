/*
 * Unit tests for phase_stats (src/deploy/phase_stats.c): exact counts and sums per phase,
 * success vs fail, batch stats per size (sorted, overflow when more sizes than slots), shadow
 * counts, and exact totals under concurrent writers (also run under TSan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "phase_stats.h"

static void test_success_adds_every_phase_and_batch_size(void **state)
{
    (void)state;
    ds_phase_stats *p = phase_stats_new();
    assert_non_null(p);
    phase_sample a = {.ns = {10, 20, 30, 40}, .batch_size = 4};
    phase_sample b = {.ns = {1, 2, 3, 4}, .batch_size = 0}; /* 0 counts as 1 */
    phase_stats_success(p, 100, &a);
    phase_stats_success(p, 10, &b);
    phase_stats_success(p, 100, &a);
    phase_stats_fail(p, 7);
    phase_snapshot s;
    phase_stats_snapshot(p, &s);
    assert_int_equal(s.success.count, 3);
    assert_int_equal(s.success.ns, 210);
    assert_int_equal(s.fail.count, 1);
    assert_int_equal(s.fail.ns, 7);
    for (int i = 0; i < PHASE_COUNT; i++) {
        assert_int_equal(s.phase[i].count, 3);
        assert_int_equal(s.phase[i].ns, 2 * a.ns[i] + b.ns[i]);
    }
    assert_int_equal(s.inference_count, 4 + 1 + 4);
    assert_int_equal(s.execution_count, 3);
    assert_int_equal(s.batch_count, 2);
    assert_int_equal(s.batch[0].batch_size, 1);
    assert_int_equal(s.batch[0].infer.count, 1);
    assert_int_equal(s.batch[0].infer.ns, 3);
    assert_int_equal(s.batch[1].batch_size, 4);
    assert_int_equal(s.batch[1].input.count, 2);
    assert_int_equal(s.batch[1].input.ns, 40);
    assert_int_equal(s.batch[1].output.ns, 80);
    assert_int_equal(s.batch_overflow, 0);
    phase_stats_free(p);
}

static void test_fail_touches_no_phase(void **state)
{
    (void)state;
    ds_phase_stats *p = phase_stats_new();
    phase_stats_fail(p, 5);
    phase_snapshot s;
    phase_stats_snapshot(p, &s);
    assert_int_equal(s.fail.count, 1);
    assert_int_equal(s.success.count, 0);
    for (int i = 0; i < PHASE_COUNT; i++)
        assert_int_equal(s.phase[i].count, 0);
    assert_int_equal(s.inference_count, 0);
    assert_int_equal(s.batch_count, 0);
    phase_stats_free(p);
}

static void test_more_batch_sizes_than_slots_overflow(void **state)
{
    (void)state;
    ds_phase_stats *p = phase_stats_new();
    phase_sample x = {.ns = {1, 1, 1, 1}};
    for (uint64_t n = 1; n <= PHASE_BATCH_SLOTS + 10; n++) {
        x.batch_size = n;
        phase_stats_success(p, 1, &x);
    }
    phase_snapshot s;
    phase_stats_snapshot(p, &s);
    assert_int_equal(s.batch_count, PHASE_BATCH_SLOTS);
    assert_int_equal(s.batch_overflow, 10);
    for (size_t i = 1; i < s.batch_count; i++)
        assert_true(s.batch[i - 1].batch_size < s.batch[i].batch_size);
    assert_int_equal(s.success.count, PHASE_BATCH_SLOTS + 10);
    phase_stats_free(p);
}

static void test_shadow_counts(void **state)
{
    (void)state;
    ds_phase_stats *p = phase_stats_new();
    phase_stats_shadow(p, false);
    phase_stats_shadow(p, true);
    phase_stats_shadow(p, true);
    phase_stats_shadow_dropped(p);
    phase_snapshot s;
    phase_stats_snapshot(p, &s);
    assert_int_equal(s.shadow_count, 3);
    assert_int_equal(s.shadow_mismatch_count, 2);
    assert_int_equal(s.shadow_dropped, 1);
    phase_stats_free(p);
}

#define WRITERS 8
#define PER_WRITER 20000

static void *writer(void *arg)
{
    ds_phase_stats *p = arg;
    for (int i = 0; i < PER_WRITER; i++) {
        phase_sample x = {.ns = {1, 2, 3, 4}, .batch_size = (uint64_t)(i % 3) + 1};
        if (i % 10 == 0)
            phase_stats_fail(p, 5);
        else
            phase_stats_success(p, 10, &x);
    }
    return NULL;
}

static void test_concurrent_writers_lose_nothing(void **state)
{
    (void)state;
    ds_phase_stats *p = phase_stats_new();
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, p), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    phase_snapshot s;
    phase_stats_snapshot(p, &s);
    uint64_t fails = WRITERS * (PER_WRITER / 10), ok = WRITERS * PER_WRITER - fails;
    assert_int_equal(s.fail.count, fails);
    assert_int_equal(s.success.count, ok);
    assert_int_equal(s.phase[PHASE_INFER].ns, 3 * ok);
    assert_int_equal(s.batch_count, 3);
    uint64_t per_batch = 0;
    for (size_t i = 0; i < s.batch_count; i++)
        per_batch += s.batch[i].infer.count;
    assert_int_equal(per_batch, ok);
    phase_stats_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_adds_every_phase_and_batch_size),
        cmocka_unit_test(test_fail_touches_no_phase),
        cmocka_unit_test(test_more_batch_sizes_than_slots_overflow),
        cmocka_unit_test(test_shadow_counts),
        cmocka_unit_test(test_concurrent_writers_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
