/* brlock: see brlock.h. */
#include "brlock.h"

#include <stdatomic.h>

/* Next stripe to hand to a thread (atomic, so threads may start at once), and this thread's. */
static atomic_uint brlock_next_stripe;
static _Thread_local int brlock_my_stripe = -1;

int brlock_init(brlock *l)
{
    for (int i = 0; i < BRLOCK_STRIPES; i++) {
        if (pthread_rwlock_init(&l->stripe[i].lock, NULL) != 0) {
            while (i-- > 0)
                pthread_rwlock_destroy(&l->stripe[i].lock);
            return -1;
        }
    }
    return 0;
}

void brlock_destroy(brlock *l)
{
    for (int i = 0; i < BRLOCK_STRIPES; i++)
        pthread_rwlock_destroy(&l->stripe[i].lock);
}

int brlock_rdlock(brlock *l)
{
    if (brlock_my_stripe < 0)
        brlock_my_stripe =
            (int)(atomic_fetch_add_explicit(&brlock_next_stripe, 1, memory_order_relaxed) %
                  BRLOCK_STRIPES);
    pthread_rwlock_rdlock(&l->stripe[brlock_my_stripe].lock);
    return brlock_my_stripe;
}

void brlock_rdunlock(brlock *l, int stripe)
{
    pthread_rwlock_unlock(&l->stripe[stripe].lock);
}

void brlock_wrlock(brlock *l)
{
    for (int i = 0; i < BRLOCK_STRIPES; i++)
        pthread_rwlock_wrlock(&l->stripe[i].lock);
}

void brlock_wrunlock(brlock *l)
{
    for (int i = BRLOCK_STRIPES - 1; i >= 0; i--)
        pthread_rwlock_unlock(&l->stripe[i].lock);
}
