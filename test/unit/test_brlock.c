/*
 * Unit tests for src/base/brlock.c: readers on many threads hold their own stripes at once, a
 * writer excludes every reader (readers never see a half-made change), and threads get distinct
 * stripes and keep them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "brlock.h"

#define READERS 4

typedef struct shared {
    brlock lock;
    long a, b; /* the writer keeps a == b; only under the write lock may they differ */
    atomic_int stop, torn, reads, stripes_seen;
} shared;

static void *reader(void *arg)
{
    shared *s = arg;
    int mine = -1;
    while (!atomic_load(&s->stop)) {
        int st = brlock_rdlock(&s->lock);
        if (mine >= 0 && st != mine)
            atomic_fetch_add(&s->torn, 1000); /* a thread keeps its stripe */
        mine = st;
        if (s->a != s->b)
            atomic_fetch_add(&s->torn, 1);
        brlock_rdunlock(&s->lock, st);
        atomic_fetch_add(&s->reads, 1);
    }
    atomic_fetch_or(&s->stripes_seen, 1 << mine);
    return NULL;
}

static void test_a_writer_excludes_every_reader_and_readers_share(void **state)
{
    (void)state;
    shared *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(brlock_init(&s->lock), 0);
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, s), 0);
    for (int i = 0; i < 2000; i++) {
        brlock_wrlock(&s->lock);
        s->a++;
        for (volatile int k = 0; k < 100; k++)
            ;
        s->b++;
        brlock_wrunlock(&s->lock);
    }
    while (atomic_load(&s->reads) < 1000)
        ;
    atomic_store(&s->stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&s->torn), 0);
    assert_int_equal(s->a, 2000);
    /* four threads, four different stripes (the counter hands them out in turn) */
    assert_int_equal(__builtin_popcount((unsigned)atomic_load(&s->stripes_seen)), READERS);
    brlock_destroy(&s->lock);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_writer_excludes_every_reader_and_readers_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
