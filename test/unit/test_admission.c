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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlimited_admits_everything),
        cmocka_unit_test(test_full_without_queue_is_rejected_at_once),
        cmocka_unit_test(test_queued_request_times_out_at_its_deadline),
        cmocka_unit_test(test_queued_request_gets_the_freed_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
