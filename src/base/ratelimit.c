/* ratelimit: token buckets. See ratelimit.h. */
#include "ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RL_KEY_MAX    128
#define RL_STRIPES    64
#define RL_NEIGHBOURS 8 /* entries probed for a key before the oldest is replaced */

uint64_t rl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool rl_active(rl_limit limit)
{
    return limit.rps > 0;
}

double rl_burst(rl_limit limit)
{
    if (limit.burst >= 1)
        return limit.burst;
    return limit.rps > 1 ? limit.rps : 1;
}

int rl_parse(const char *text, rl_limit *out, char *err, size_t errlen)
{
    out->rps = 0;
    out->burst = 0;
    if (strcmp(text, "0") == 0 || strcmp(text, "off") == 0)
        return 0;
    char *end;
    double rps = strtod(text, &end);
    double burst = 0;
    if (end != text && *end == ':') {
        const char *b = end + 1;
        burst = strtod(b, &end);
        if (end == b || burst < 1)
            end = (char *)"x"; /* force the error below */
    }
    if (end == text || *end != '\0' || !(rps > 0) || rps > 1e9 || burst > 1e9) {
        snprintf(err, errlen, "rate limit must be RPS or RPS:BURST (RPS > 0, BURST >= 1)");
        return -1;
    }
    out->rps = rps;
    out->burst = burst;
    return 0;
}

void rl_bucket_init(rl_bucket *b, rl_limit limit, uint64_t now_ns)
{
    pthread_mutex_init(&b->lock, NULL);
    atomic_init(&b->active, rl_active(limit));
    b->limit = limit;
    b->tokens = rl_burst(limit);
    b->last_ns = now_ns;
}

void rl_bucket_destroy(rl_bucket *b)
{
    pthread_mutex_destroy(&b->lock);
}

void rl_bucket_set(rl_bucket *b, rl_limit limit)
{
    pthread_mutex_lock(&b->lock);
    bool was_active = rl_active(b->limit);
    b->limit = limit;
    double burst = rl_burst(limit);
    if (!was_active || b->tokens > burst)
        b->tokens = burst;
    atomic_store(&b->active, rl_active(limit));
    pthread_mutex_unlock(&b->lock);
}

rl_limit rl_bucket_limit(rl_bucket *b)
{
    pthread_mutex_lock(&b->lock);
    rl_limit l = b->limit;
    pthread_mutex_unlock(&b->lock);
    return l;
}

/* Refill and take; caller holds b->lock. */
static bool rl_take_locked(rl_bucket *b, uint64_t now_ns, int *retry_after_s)
{
    if (!rl_active(b->limit))
        return true;
    double burst = rl_burst(b->limit);
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * 1e-9 * b->limit.rps;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ns = now_ns;
    }
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return true;
    }
    double wait = (1 - b->tokens) / b->limit.rps;
    *retry_after_s = wait < 1 ? 1 : (int)ceil(wait > 86400 ? 86400 : wait);
    return false;
}

bool rl_bucket_take(rl_bucket *b, uint64_t now_ns, int *retry_after_s)
{
    if (!atomic_load_explicit(&b->active, memory_order_relaxed))
        return true; /* unlimited (a limit set meanwhile applies from the next request) */
    pthread_mutex_lock(&b->lock);
    bool ok = rl_take_locked(b, now_ns, retry_after_s);
    pthread_mutex_unlock(&b->lock);
    return ok;
}

typedef struct rl_entry {
    char key[RL_KEY_MAX]; /* "" when free */
    double tokens;
    uint64_t last_ns;
} rl_entry;

struct rl_table {
    rl_limit limit;
    size_t mask; /* capacity - 1 */
    rl_entry *entries;
    pthread_mutex_t stripes[RL_STRIPES]; /* stripe i guards entries whose index % RL_STRIPES
                                          * == i; a key's neighbourhood stays in one stripe */
};

rl_table *rl_table_new(rl_limit limit, size_t capacity)
{
    size_t n = 64;
    while (n < capacity && n < ((size_t)1 << 24))
        n <<= 1;
    rl_table *t = calloc(1, sizeof *t);
    if (t == NULL || (t->entries = calloc(n, sizeof *t->entries)) == NULL) {
        free(t);
        return NULL;
    }
    t->limit = limit;
    t->mask = n - 1;
    for (int i = 0; i < RL_STRIPES; i++)
        pthread_mutex_init(&t->stripes[i], NULL);
    return t;
}

void rl_table_free(rl_table *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < RL_STRIPES; i++)
        pthread_mutex_destroy(&t->stripes[i]);
    free(t->entries);
    free(t);
}

static uint64_t rl_hash(const char *key)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211u;
    return h;
}

bool rl_table_take(rl_table *t, const char *key, uint64_t now_ns, int *retry_after_s)
{
    if (!rl_active(t->limit))
        return true;
    char k[RL_KEY_MAX];
    snprintf(k, sizeof k, "%s", key[0] ? key : "-");
    /* Neighbours are index, index + RL_STRIPES, ...: all in the same stripe. */
    size_t base = (size_t)rl_hash(k) & t->mask;
    pthread_mutex_t *lock = &t->stripes[base % RL_STRIPES];
    pthread_mutex_lock(lock);
    rl_entry *found = NULL, *oldest = NULL;
    for (size_t i = 0; i < RL_NEIGHBOURS && found == NULL; i++) {
        rl_entry *e = &t->entries[(base + i * RL_STRIPES) & t->mask];
        if (strcmp(e->key, k) == 0)
            found = e;
        else if (oldest == NULL || e->key[0] == '\0' ||
                 (oldest->key[0] != '\0' && e->last_ns < oldest->last_ns))
            oldest = e;
    }
    if (found == NULL) {
        found = oldest;
        memcpy(found->key, k, sizeof k);
        found->tokens = rl_burst(t->limit);
        found->last_ns = now_ns;
    }
    rl_bucket b = {.limit = t->limit, .tokens = found->tokens, .last_ns = found->last_ns};
    bool ok = rl_take_locked(&b, now_ns, retry_after_s);
    found->tokens = b.tokens;
    found->last_ns = b.last_ns;
    pthread_mutex_unlock(lock);
    return ok;
}
