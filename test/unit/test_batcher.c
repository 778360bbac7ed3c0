/*
 * Unit tests for the dynamic batching queue (src/deploy/batcher.c): concurrent requests are run
 * together, never more rows or requests than configured, every request gets its own result, a
 * batch runs at once when full or at a preferred size, waits at most the queue delay (and not
 * past a member's deadline), an oversized request runs alone, and one run at a time per
 * instance. The run callback here is the real contract's (one call per batch, a status per
 * item); the instance is a counter that fails on concurrent entry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batcher.h"
#include "phase_stats.h"

typedef struct fake_model {
    atomic_int busy;       /* callers inside run */
    atomic_int overlapped; /* runs that found another run inside */
    atomic_int runs;       /* calls of run */
    atomic_int most_n;     /* largest batch (requests) seen */
    atomic_uint_fast64_t most_rows;
    long cost_us; /* sleep in each run */
} fake_model;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static pthread_mutex_t inst_lock = PTHREAD_MUTEX_INITIALIZER; /* one instance */

static void *fake_acquire(void *ctx, uint32_t *slot)
{
    pthread_mutex_lock(&inst_lock);
    *slot = 0;
    return ctx;
}

static void fake_release(void *ctx, uint32_t slot)
{
    (void)ctx;
    (void)slot;
    pthread_mutex_unlock(&inst_lock);
}

/* Each request's "answer": its req pointer's id (the request text) times 10, written into the
 * response cookie; item with id 13 fails on its own. */
static void fake_run(void *ctx, void *instance, batch_item *const *items, uint32_t n)
{
    fake_model *m = instance;
    (void)ctx;
    if (atomic_fetch_add(&m->busy, 1) != 0)
        atomic_fetch_add(&m->overlapped, 1);
    atomic_fetch_add(&m->runs, 1);
    uint64_t rows = 0;
    for (uint32_t i = 0; i < n; i++) {
        rows += items[i]->rows;
        int id = atoi(items[i]->req->id);
        *(int *)(void *)items[i]->resp = id * 10;
        if (id == 13) {
            items[i]->status = DS_ERR_INVALID_ARGUMENT;
            snprintf(items[i]->err.message, sizeof items[i]->err.message, "unlucky %d", id);
        }
    }
    int seen = atomic_load(&m->most_n);
    while ((int)n > seen && !atomic_compare_exchange_weak(&m->most_n, &seen, (int)n))
        ;
    uint_fast64_t sr = atomic_load(&m->most_rows);
    while (rows > sr && !atomic_compare_exchange_weak(&m->most_rows, &sr, rows))
        ;
    if (m->cost_us > 0)
        usleep((useconds_t)m->cost_us);
    atomic_fetch_sub(&m->busy, 1);
}

static const batch_ops fake_ops = {fake_acquire, fake_release, fake_run};

typedef struct client {
    batcher *b;
    fake_model *m;
    int id;
    uint64_t rows;
    uint64_t deadline_ns;
    char idtext[16];
    ds_infer_request req;
    int answer;
    batch_item it;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    snprintf(c->idtext, sizeof c->idtext, "%d", c->id);
    c->req = (ds_infer_request){.struct_size = sizeof c->req, .id = c->idtext};
    c->it = (batch_item){.req = &c->req,
                         .resp = (ds_infer_response *)(void *)&c->answer,
                         .rows = c->rows ? c->rows : 1,
                         .deadline_ns = c->deadline_ns};
    batcher_submit(c->b, &c->it, &fake_ops, c->m);
    return NULL;
}

static void run_clients(client *cs, int n)
{
    pthread_t th[128];
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &cs[i]), 0);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static void test_concurrent_requests_share_runs_and_each_gets_its_own_answer(void **state)
{
    (void)state;
    batch_config cfg = {.max_batch_size = 8, .max_requests = 8, .max_queue_delay_us = 20000};
    batcher *b = batcher_new(&cfg);
    assert_non_null(b);
    fake_model m = {.cost_us = 2000};
    enum { N = 64 };
    client cs[N];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++)
        cs[i] = (client){.b = b, .m = &m, .id = 100 + i};
    run_clients(cs, N);
    uint64_t in_batches = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(cs[i].it.status, DS_OK);
        assert_int_equal(cs[i].answer, (100 + i) * 10);
        assert_true(cs[i].it.batch_requests >= 1 && cs[i].it.batch_requests <= 8);
        if (cs[i].it.batch_requests > 1)
            in_batches++;
    }
    assert_true(atomic_load(&m.runs) < N);
    assert_true(in_batches > 0);
    assert_true(atomic_load(&m.most_n) <= 8);
    assert_int_equal(atomic_load(&m.overlapped), 0);
    batcher_counts c;
    batcher_counts_get(b, &c);
    assert_int_equal(c.requests, N);
    assert_int_equal(c.runs, (uint64_t)atomic_load(&m.runs));
    batcher_free(b);
}

static void test_rows_never_exceed_max_batch_size(void **state)
{
    (void)state;
    batch_config cfg = {.max_batch_size = 10, .max_requests = 64, .max_queue_delay_us = 20000};
    batcher *b = batcher_new(&cfg);
    fake_model m = {.cost_us = 1000};
    enum { N = 40 };
    client cs[N];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++)
        cs[i] = (client){.b = b, .m = &m, .id = i + 1, .rows = 3};
    run_clients(cs, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cs[i].answer, (i + 1) * 10);
        assert_true(cs[i].it.batch_rows <= 10 && cs[i].it.batch_rows >= 3);
    }
    assert_true(atomic_load(&m.most_rows) <= 10);
    batcher_free(b);
}

static void test_one_failing_request_fails_alone(void **state)
{
    (void)state;
    batch_config cfg = {.max_batch_size = 4, .max_requests = 4, .max_queue_delay_us = 50000};
    batcher *b = batcher_new(&cfg);
    fake_model m = {0};
    client cs[4];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 4; i++)
        cs[i] = (client){.b = b, .m = &m, .id = 11 + i}; /* 13 fails */
    run_clients(cs, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cs[i].answer, (11 + i) * 10);
        if (11 + i == 13) {
            assert_int_equal(cs[i].it.status, DS_ERR_INVALID_ARGUMENT);
            assert_string_equal(cs[i].it.err.message, "unlucky 13");
        } else {
            assert_int_equal(cs[i].it.status, DS_OK);
        }
    }
    batcher_free(b);
}

/* A lone request runs once the delay passed, not before: the leader waited for company. */
static void test_lone_request_waits_the_queue_delay(void **state)
{
    (void)state;
    batch_config cfg = {.max_batch_size = 8, .max_requests = 8, .max_queue_delay_us = 30000};
    batcher *b = batcher_new(&cfg);
    fake_model m = {0};
    client c = {.b = b, .m = &m, .id = 1};
    uint64_t t0 = now_ns();
    client_main(&c);
    uint64_t took = now_ns() - t0;
    assert_int_equal(c.answer, 10);
    assert_int_equal(c.it.batch_requests, 1);
    assert_true(c.it.leader);
    assert_true(took >= 30000000u);
    batcher_free(b);
}

/* ... but a member's deadline ends the wait early, and a preferred size runs at once. */
static void test_deadline_and_preferred_size_end_the_wait(void **state)
{
    (void)state;
    batch_config cfg = {
        .max_batch_size = 8, .max_requests = 8, .max_queue_delay_us = 10000000}; /* 10 s */
    batcher *b = batcher_new(&cfg);
    fake_model m = {0};
    client c = {.b = b, .m = &m, .id = 2, .deadline_ns = now_ns() + 20000000u};
    client_main(&c);
    assert_int_equal(c.answer, 20); /* returned after ~20 ms, not 10 s */
    batcher_free(b);

    batch_config pc = {.max_batch_size = 8,
                       .max_requests = 8,
                       .max_queue_delay_us = 10000000,
                       .preferred = {1},
                       .preferred_count = 1};
    b = batcher_new(&pc);
    c = (client){.b = b, .m = &m, .id = 3};
    client_main(&c); /* size 1 is preferred: no waiting at all */
    assert_int_equal(c.answer, 30);
    batcher_free(b);
}

/* A batch closes when it reaches a preferred size: requests that arrive while its leader waits
 * for the instance open the next batch instead of growing this one past the size it was ready
 * at (they did, and then waited out the whole delay once the leader found rows != preferred). */
static void test_batch_closes_at_a_preferred_size(void **state)
{
    (void)state;
    batch_config cfg = {.max_batch_size = 8,
                        .max_requests = 8,
                        .max_queue_delay_us = 10000000, /* 10 s */
                        .preferred = {2},
                        .preferred_count = 1};
    batcher *b = batcher_new(&cfg);
    fake_model m = {0};
    client cs[4];
    pthread_t th[4];
    memset(cs, 0, sizeof cs);
    pthread_mutex_lock(&inst_lock); /* the instance is busy: every leader waits in acquire */
    for (int i = 0; i < 4; i++) {
        cs[i] = (client){.b = b, .m = &m, .id = 40 + i};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &cs[i]), 0);
        usleep(20000); /* one at a time: the first two are ready before the last two come */
    }
    pthread_mutex_unlock(&inst_lock);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cs[i].answer, (40 + i) * 10);
        assert_int_equal(cs[i].it.batch_requests, 2);
    }
    assert_int_equal(atomic_load(&m.runs), 2);
    batcher_free(b);
}

/* A full batch runs at once (no delay), and a request above max_batch_size runs alone. */
static void test_full_batch_runs_at_once_and_oversized_runs_alone(void **state)
{
    (void)state;
    batch_config cfg = {.max_batch_size = 4, .max_requests = 4, .max_queue_delay_us = 10000000};
    batcher *b = batcher_new(&cfg);
    fake_model m = {0};
    client cs[4];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 4; i++)
        cs[i] = (client){.b = b, .m = &m, .id = 20 + i};
    run_clients(cs, 4); /* would take 10 s if the full batch waited */
    for (int i = 0; i < 4; i++)
        assert_int_equal(cs[i].it.batch_requests, 4);
    client big = {.b = b, .m = &m, .id = 7, .rows = 9};
    client_main(&big);
    assert_int_equal(big.answer, 70);
    assert_int_equal(big.it.batch_requests, 1);
    batcher_free(b);
}

static void test_bad_config_is_refused(void **state)
{
    (void)state;
    batch_config zero = {0};
    assert_null(batcher_new(&zero));
    batch_config big = {.max_batch_size = BATCH_MAX_REQUESTS + 1, .max_requests = 1};
    assert_null(batcher_new(&big));
}

/* phase_stats: a batched request adds its rows to inference_count; the batch's execution is
 * counted once, under its total rows. */
static void test_batched_execution_counts_once(void **state)
{
    (void)state;
    ds_phase_stats *p = phase_stats_new();
    phase_sample s = {.ns = {1, 1, 1, 1}, .batch_size = 1, .batched = true};
    for (int i = 0; i < 5; i++)
        phase_stats_success(p, 10, &s);
    phase_stats_execution(p, 5, 100);
    phase_snapshot snap;
    phase_stats_snapshot(p, &snap);
    assert_int_equal(snap.inference_count, 5);
    assert_int_equal(snap.execution_count, 1);
    assert_int_equal(snap.batch_count, 1);
    assert_int_equal(snap.batch[0].batch_size, 5);
    assert_int_equal(snap.batch[0].infer.count, 1);
    assert_int_equal(snap.batch[0].infer.ns, 100);
    phase_stats_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_requests_share_runs_and_each_gets_its_own_answer),
        cmocka_unit_test(test_rows_never_exceed_max_batch_size),
        cmocka_unit_test(test_one_failing_request_fails_alone),
        cmocka_unit_test(test_lone_request_waits_the_queue_delay),
        cmocka_unit_test(test_deadline_and_preferred_size_end_the_wait),
        cmocka_unit_test(test_batch_closes_at_a_preferred_size),
        cmocka_unit_test(test_full_batch_runs_at_once_and_oversized_runs_alone),
        cmocka_unit_test(test_bad_config_is_refused),
        cmocka_unit_test(test_batched_execution_counts_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
