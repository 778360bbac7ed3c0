/* Unit tests for src/deploy/admission.c: the per-deployment in-flight limit and its queue. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "admission.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_unlimited_admits_everything(void **state)
{
    (void)state;
    admission a;
    admission_init(&a, 0, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(admission_enter(&a, 0), ADMIT_OK);
    admission_destroy(&a);
}

static void test_full_without_queue_is_rejected_at_once(void **state)
{
    (void)state;
    admission a;
    admission_init(&a, 2, 0);
    assert_int_equal(admission_enter(&a, 0), ADMIT_OK);
    assert_int_equal(admission_enter(&a, 0), ADMIT_OK);
    assert_int_equal(admission_enter(&a, 0), ADMIT_FULL);
    assert_int_equal(atomic_load(&a.rejected), 1);
    admission_leave(&a);
    assert_int_equal(admission_enter(&a, 0), ADMIT_OK);
    admission_destroy(&a);
}

static void test_queued_request_times_out_at_its_deadline(void **state)
{
    (void)state;
    admission a;
    admission_init(&a, 1, 1);
    assert_int_equal(admission_enter(&a, 0), ADMIT_OK);
    assert_int_equal(admission_enter(&a, now_ns() + 20000000u), ADMIT_TIMEOUT);
    assert_int_equal(a.queued, 0);
    admission_destroy(&a);
}

static void *leave_later(void *arg)
{
    struct timespec t = {0, 20000000};
    nanosleep(&t, NULL);
    admission_leave(arg);
    return NULL;
}

static void test_queued_request_gets_the_freed_slot(void **state)
{
    (void)state;
    admission a;
    admission_init(&a, 1, 1);
    assert_int_equal(admission_enter(&a, 0), ADMIT_OK);
    pthread_t t;
    pthread_create(&t, NULL, leave_later, &a);
    assert_int_equal(admission_enter(&a, now_ns() + 10000000000u), ADMIT_OK);
    pthread_join(t, NULL);
    assert_int_equal(a.in_flight, 1);
    /* the queue place is taken by nobody now, the slot by us: a third waits, a fourth is full */
    admission_destroy(&a);
}

static void test_server_cap_refuses_beyond_its_max_and_counts(void **state)
{
    (void)state;
    admission_cap c;
    admission_cap_init(&c, 2);
    assert_true(admission_cap_enter(&c));
    assert_true(admission_cap_enter(&c));
    assert_false(admission_cap_enter(&c)); /* the third thread would eat into the reserve */
    assert_int_equal(atomic_load(&c.used), 2);
    assert_int_equal(atomic_load(&c.rejected), 1);
    admission_cap_leave(&c);
    assert_true(admission_cap_enter(&c)); /* a place given back is taken again */
    admission_cap_init(&c, 0);            /* no cap */
    for (int i = 0; i < 1000; i++)
        assert_true(admission_cap_enter(&c));
}

typedef struct cap_run {
    admission_cap *cap;
    atomic_int *inside, *peak;
} cap_run;

static void *cap_hammer(void *arg)
{
    cap_run *r = arg;
    for (int i = 0; i < 20000; i++) {
        if (!admission_cap_enter(r->cap))
            continue;
        int now = atomic_fetch_add(r->inside, 1) + 1;
        int seen = atomic_load(r->peak);
        while (now > seen && !atomic_compare_exchange_weak(r->peak, &seen, now))
            ;
        atomic_fetch_sub(r->inside, 1);
        admission_cap_leave(r->cap);
    }
    return NULL;
}

static void test_server_cap_is_never_passed_by_racing_threads(void **state)
{
    (void)state;
    admission_cap c;
    admission_cap_init(&c, 3);
    atomic_int inside = 0, peak = 0;
    cap_run r = {&c, &inside, &peak};
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, cap_hammer, &r);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_true(atomic_load(&peak) <= 3);
    assert_int_equal(atomic_load(&c.used), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited_admits_everything),
        cmocka_unit_test(test_full_without_queue_is_rejected_at_once),
        cmocka_unit_test(test_queued_request_times_out_at_its_deadline),
        cmocka_unit_test(test_queued_request_gets_the_freed_slot),
        cmocka_unit_test(test_server_cap_refuses_beyond_its_max_and_counts),
        cmocka_unit_test(test_server_cap_is_never_passed_by_racing_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
