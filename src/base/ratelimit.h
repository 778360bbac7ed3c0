/*
 * ratelimit: token buckets, alone (one per deployment) and in a bounded table keyed by client
 * (one per API token, or per client address when anonymous).
 *
 * A bucket holds up to `burst` tokens and refills at `rps` tokens a second; each request takes
 * one, and a request that finds none is refused with the whole seconds until one is back
 * (the Retry-After value, at least 1). rps <= 0 means unlimited.
 *
 * The table never grows with what clients send: it has a fixed number of entries, and a new key
 * that finds its neighbourhood full replaces the entry used longest ago (whose bucket would have
 * refilled by now anyway, unless the table is far too small — see rl_table_new).
 *
 * Thread-safety: every function may be called from any thread. A bucket has its own mutex (never
 * taken while it is unlimited); the table is split into stripes with a mutex each, so clients
 * rarely contend.
 */
#ifndef DS_BASE_RATELIMIT_H
#define DS_BASE_RATELIMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rl_limit {
    double rps;   /* tokens per second; <= 0: unlimited */
    double burst; /* bucket size; < 1 is taken as max(1, rps) */
} rl_limit;

typedef struct rl_bucket {
    atomic_bool active;   /* rl_active(limit), readable without the lock: an unlimited bucket
                           * is never locked on the request path */
    pthread_mutex_t lock; /* guards the fields below */
    rl_limit limit;
    double tokens;
    uint64_t last_ns;
} rl_bucket;

/* Parse "RPS" or "RPS:BURST" (RPS > 0, BURST >= 1; "0" or "off" = unlimited). 0 or -1 with a
 * reason. */
int rl_parse(const char *text, rl_limit *out, char *err, size_t errlen);
/* True when the limit limits anything. */
bool rl_active(rl_limit limit);
/* The burst actually used for `limit`. */
double rl_burst(rl_limit limit);

/* A full bucket for `limit`. rl_bucket_destroy releases its mutex. */
void rl_bucket_init(rl_bucket *b, rl_limit limit, uint64_t now_ns);
void rl_bucket_destroy(rl_bucket *b);
/* Change the limit; the bucket keeps its tokens (capped at the new burst). */
void rl_bucket_set(rl_bucket *b, rl_limit limit);
rl_limit rl_bucket_limit(rl_bucket *b);
/* Take one token. True when allowed; false with *retry_after_s (>= 1) when not. */
bool rl_bucket_take(rl_bucket *b, uint64_t now_ns, int *retry_after_s);

typedef struct rl_table rl_table;

/* A table of `capacity` buckets (rounded up to a power of two, at least 64), each with
 * `limit`. NULL when memory runs out. Owned by the caller: rl_table_free. */
rl_table *rl_table_new(rl_limit limit, size_t capacity);
void rl_table_free(rl_table *t);
/* Take one token from the bucket of `key` (at most 127 bytes are significant). */
bool rl_table_take(rl_table *t, const char *key, uint64_t now_ns, int *retry_after_s);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t rl_now_ns(void);

#endif
