/*
 * Unit tests for src/base/ratelimit.c: parsing "RPS[:BURST]", a bucket's burst, refill and
 * Retry-After, changing a limit, and the keyed table (independent keys, bounded size).
 * Time is passed in, so nothing here sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "ratelimit.h"

#define SEC 1000000000ull

static void test_parse_accepts_rps_and_burst(void **state)
{
    (void)state;
    rl_limit l;
    char err[128];
    assert_int_equal(rl_parse("10", &l, err, sizeof err), 0);
    assert_true(l.rps == 10 && rl_burst(l) == 10);
    assert_int_equal(rl_parse("0.5:3", &l, err, sizeof err), 0);
    assert_true(l.rps == 0.5 && rl_burst(l) == 3);
    assert_int_equal(rl_parse("off", &l, err, sizeof err), 0);
    assert_false(rl_active(l));
    const char *bad[] = {"", "x", "-1", "5:", "5:0", "5:x", "1e10", "5:2:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rl_parse(bad[i], &l, err, sizeof err), -1);
}

static void test_bucket_allows_burst_then_refuses_with_retry_after(void **state)
{
    (void)state;
    rl_bucket b;
    rl_bucket_init(&b, (rl_limit){.rps = 2, .burst = 5}, 0);
    int retry = 0;
    for (int i = 0; i < 5; i++)
        assert_true(rl_bucket_take(&b, 0, &retry));
    assert_false(rl_bucket_take(&b, 0, &retry));
    assert_int_equal(retry, 1);
    assert_true(rl_bucket_take(&b, SEC / 2, &retry)); /* one token back after 0.5 s */
    assert_false(rl_bucket_take(&b, SEC / 2, &retry));
    assert_true(rl_bucket_take(&b, 100 * SEC, &retry)); /* refill is capped at the burst */
    for (int i = 0; i < 4; i++)
        assert_true(rl_bucket_take(&b, 100 * SEC, &retry));
    assert_false(rl_bucket_take(&b, 100 * SEC, &retry));
    rl_bucket_destroy(&b);
}

static void test_slow_rate_gives_long_retry_after(void **state)
{
    (void)state;
    rl_bucket b;
    rl_bucket_init(&b, (rl_limit){.rps = 0.1, .burst = 1}, 0);
    int retry = 0;
    assert_true(rl_bucket_take(&b, 0, &retry));
    assert_false(rl_bucket_take(&b, 0, &retry));
    assert_int_equal(retry, 10);
    rl_bucket_destroy(&b);
}

static void test_unlimited_bucket_and_limit_change(void **state)
{
    (void)state;
    rl_bucket b;
    rl_bucket_init(&b, (rl_limit){0}, 0);
    int retry = 0;
    for (int i = 0; i < 1000; i++)
        assert_true(rl_bucket_take(&b, 0, &retry));
    rl_bucket_set(&b, (rl_limit){.rps = 1, .burst = 2});
    assert_true(rl_bucket_take(&b, 0, &retry));
    assert_true(rl_bucket_take(&b, 0, &retry));
    assert_false(rl_bucket_take(&b, 0, &retry));
    assert_true(rl_bucket_limit(&b).rps == 1);
    rl_bucket_destroy(&b);
}

static void test_table_keys_are_independent(void **state)
{
    (void)state;
    rl_table *t = rl_table_new((rl_limit){.rps = 1, .burst = 2}, 64);
    int retry;
    assert_true(rl_table_take(t, "alice", 0, &retry));
    assert_true(rl_table_take(t, "alice", 0, &retry));
    assert_false(rl_table_take(t, "alice", 0, &retry));
    assert_true(rl_table_take(t, "bob", 0, &retry));
    assert_true(rl_table_take(t, "alice", SEC, &retry));
    rl_table_free(t);
}

static void test_table_stays_bounded_under_many_keys(void **state)
{
    (void)state;
    rl_table *t = rl_table_new((rl_limit){.rps = 1, .burst = 1}, 64);
    int retry;
    char key[32];
    /* 100,000 distinct keys reuse the table's 64 entries; a key seen a moment ago is kept when
     * only older keys share its neighbourhood. */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        assert_true(rl_table_take(t, key, (uint64_t)i, &retry));
    }
    assert_false(rl_table_take(t, key, 100000, &retry));
    rl_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_rps_and_burst),
        cmocka_unit_test(test_bucket_allows_burst_then_refuses_with_retry_after),
        cmocka_unit_test(test_slow_rate_gives_long_retry_after),
        cmocka_unit_test(test_unlimited_bucket_and_limit_change),
        cmocka_unit_test(test_table_keys_are_independent),
        cmocka_unit_test(test_table_stays_bounded_under_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
