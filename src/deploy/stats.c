/*
 * stats: per-deployment request statistics (contract in stats.h).
 *
 * One ds_stats is a single fixed allocation (~83 KiB, stats_footprint()) holding three parts:
 *
 * 1. STATS_STRIPES counter stripes, 128 bytes each on their own cache lines. A thread writes
 *    only the stripe it was given on its first request (round-robin from a global counter, kept
 *    in a _Thread_local), so with up to STATS_STRIPES busy threads no two threads write the same
 *    line. A stripe holds an in-flight counter (+1 at begin, -1 at end), one counter per
 *    status-code slot, the latency sum and the time of the latest request. Nothing is counted
 *    twice: request_count is the sum of the per-code counters, errors are sums of their classes.
 *
 * 2. The lifetime latency histogram, shared by all threads (relaxed atomic adds; per-stripe
 *    copies would not fit the memory budget). Log-linear like HdrHistogram: each power of two
 *    [2^k, 2^(k+1)) ns is split into HIST_SUB (32) equal buckets, for k = 9 (512 ns) .. 36
 *    (2^37 ns = 137 s): 896 buckets. A bucket is at most 1/32 of its lower bound wide, so its
 *    midpoint is within 1/64 (1.6%) of any value inside it; that midpoint is what p50/p95/p99
 *    report. Values below 512 ns or above 137 s are clamped into the end buckets.
 *
 * 3. The recent window for the canary guard: a ring of WIN_SLOTS one-second slots keyed by the
 *    CLOCK_MONOTONIC_COARSE second. A slot holds its second (epoch), a 5xx counter and a coarse
 *    histogram: 4 fine buckets folded into one (8 per octave, midpoint within 6.25%), u32 counts
 *    (one second of one deployment never reaches 2^32 requests). The request count of a window
 *    is the sum of its histograms, so count and p99 always agree.
 *
 * Slot recycling, lock-free: a writer whose slot still holds an older second claims it with a
 * CAS of the epoch to WIN_RESETTING, zeroes it and publishes the new second (release). Writers
 * that meet WIN_RESETTING, or a slot already holding a newer second (a writer stalled for more
 * than a ring's length), leave that one request out of the window; it still counts everywhere
 * else. So that steady traffic never meets a reset, every writer also prepares the slot of the
 * next second ahead of time (that slot's old contents are older than any window, because the
 * ring holds two more seconds than the longest window). Readers copy a slot, then re-check its
 * epoch (seqlock-style) and drop copies that a reset overlapped. Net inaccuracy:
 * requests that race with the zeroing of a slot after an idle period may be missing from the
 * window, and a request that read the clock just before a second boundary may land in the
 * previous second; both are a handful of requests at most.
 *
 * A second ring of the same slots, 15 s each (WIN5_SLOTS), keeps the last 5 minutes for
 * stats_recent_get(300); each request is added to both rings (two more relaxed adds).
 *
 * Snapshots read every counter once; each value is exact, but counters are not read at one
 * instant, so e.g. request_count and the histogram total may differ by the requests that ended
 * during the read. In-flight is the sum of the stripes' counters; a stripe whose threads begin
 * and end their own requests is never below 0 nor above its number of threads at any instant,
 * so the sum is too (a request ended on another thread than it began may make one stripe
 * negative for a while; the sum is clamped at 0).
 */
#include "stats.h"

#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CLOCK_MONOTONIC_COARSE
#define CLOCK_MONOTONIC_COARSE CLOCK_MONOTONIC
#endif
#ifndef CLOCK_REALTIME_COARSE
#define CLOCK_REALTIME_COARSE CLOCK_REALTIME
#endif

#define STATS_STRIPES    8
#define STATS_CACHE_LINE 64

#define HIST_SUB_BITS   5
#define HIST_SUB        (1u << HIST_SUB_BITS) /* linear buckets per power of two */
#define HIST_MIN_OCTAVE 9                     /* 512 ns */
#define HIST_MAX_OCTAVE 36                    /* up to 2^37 - 1 ns (137 s) */
#define HIST_BUCKETS    ((HIST_MAX_OCTAVE - HIST_MIN_OCTAVE + 1) * HIST_SUB)
#define HIST_MIN_NS     (UINT64_C(1) << HIST_MIN_OCTAVE)
#define HIST_MAX_NS     ((UINT64_C(1) << (HIST_MAX_OCTAVE + 1)) - 1)

#define WIN_FOLD      4 /* fine buckets per window bucket */
#define WIN_BUCKETS   (HIST_BUCKETS / WIN_FOLD)
#define WIN_MAX_S     60
#define WIN_SLOTS     (WIN_MAX_S + 2) /* the longest window, the next second, one spare */
#define WIN_RESETTING INT64_MIN
/* The 5-minute ring: the same slots, 15 s each (a 300 s window spans 286..300 s of them). */
#define WIN5_SLOT_S 15
#define WIN5_MAX_S  300
#define WIN5_SLOTS  (WIN5_MAX_S / WIN5_SLOT_S + 2)

/* Code slots: the statuses the server sends, then the class fallbacks, then "other" (1xx, 3xx,
 * invalid), which counts in request_count only. */
enum { SLOT_2XX = 9, SLOT_4XX = 10, SLOT_5XX = 11, SLOT_OTHER = STATS_CODE_SLOTS, SLOT_COUNT };
static const char *const stats_code_label[STATS_CODE_SLOTS] = {
    "200", "400", "404", "405", "409", "413", "429", "500", "503", "2xx", "4xx", "5xx"};
static const int stats_code_value[SLOT_2XX] = {200, 400, 404, 405, 409, 413, 429, 500, 503};

/* Written by the threads that were given it (relaxed adds); 16 x 8 bytes = two cache lines. */
typedef struct stats_stripe {
    alignas(STATS_CACHE_LINE) _Atomic int64_t in_flight;
    _Atomic uint64_t ends[SLOT_COUNT];
    _Atomic uint64_t latency_ns;
    _Atomic int64_t last_ms; /* CLOCK_MONOTONIC_COARSE ms of the latest end; 0 = none */
} stats_stripe;

typedef struct stats_slot {
    _Atomic int64_t epoch; /* the second counted here, or WIN_RESETTING while being zeroed */
    _Atomic uint32_t errors_5xx;
    _Atomic uint32_t hist[WIN_BUCKETS];
} stats_slot;

struct ds_stats {
    stats_stripe stripe[STATS_STRIPES];
    _Atomic uint64_t hist[HIST_BUCKETS];
    stats_slot slot[WIN_SLOTS];   /* one-second slots, keyed by the second */
    stats_slot slot5[WIN5_SLOTS]; /* 15-second slots, keyed by second / WIN5_SLOT_S */
    /* From stats_set_base; plain fields because set_base is not concurrent with anything. */
    _Atomic uint64_t rate_limited; /* 429s from the deployment's rate limit */
    _Atomic uint64_t cancelled;    /* requests whose client went away (stats_cancelled) */
    uint64_t base_requests, base_4xx, base_5xx;
    double base_latency_ms;
    int64_t base_last_ms; /* last request of an earlier process (unix ms), 0 = none */
};

/* ---- buckets ---------------------------------------------------------------------------- */

static size_t stats_bucket_of(uint64_t ns)
{
    if (ns < HIST_MIN_NS)
        ns = HIST_MIN_NS;
    if (ns > HIST_MAX_NS)
        ns = HIST_MAX_NS;
    unsigned k = 63u - (unsigned)__builtin_clzll(ns); /* ns != 0 after the clamp */
    unsigned shift = k - HIST_SUB_BITS;
    return (size_t)(k - HIST_MIN_OCTAVE) * HIST_SUB + (size_t)((ns >> shift) - HIST_SUB);
}

static uint64_t stats_bucket_lower_ns(size_t i)
{
    unsigned shift = (unsigned)(i / HIST_SUB) + HIST_MIN_OCTAVE - HIST_SUB_BITS;
    return (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
}

/* Largest value (inclusive) counted in bucket i. */
static uint64_t stats_bucket_top_ns(size_t i)
{
    unsigned shift = (unsigned)(i / HIST_SUB) + HIST_MIN_OCTAVE - HIST_SUB_BITS;
    return stats_bucket_lower_ns(i) + (UINT64_C(1) << shift) - 1;
}

/* Midpoint in ms of the fine buckets first..last: within half a bucket of every value in it. */
static double stats_mid_ms(size_t first, size_t last)
{
    return ((double)stats_bucket_lower_ns(first) + (double)stats_bucket_top_ns(last)) / 2e6;
}

/* Index of the bucket holding the q-quantile by the nearest-rank definition (the sample of rank
 * ceil(q * total)); total must be > 0. */
static size_t stats_rank_bucket(const uint64_t *counts, size_t n, uint64_t total, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        seen += counts[i];
        if (seen >= rank)
            return i;
    }
    return n - 1;
}

size_t stats_bucket_count(void)
{
    return HIST_BUCKETS;
}

double stats_bucket_upper_ms(size_t i)
{
    if (i >= HIST_BUCKETS)
        return INFINITY;
    return (double)stats_bucket_top_ns(i) / 1e6;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

size_t stats_footprint(void)
{
    return (sizeof(ds_stats) + STATS_CACHE_LINE - 1) / STATS_CACHE_LINE * STATS_CACHE_LINE;
}

ds_stats *stats_new(void)
{
    size_t size = stats_footprint();
    ds_stats *s = aligned_alloc(STATS_CACHE_LINE, size);
    if (s != NULL)
        memset(s, 0, size); /* all-zero bytes are valid zero atomics on every target we build */
    return s;
}

void stats_free(ds_stats *s)
{
    free(s);
}

void stats_set_base(ds_stats *s, uint64_t request_count, uint64_t error_4xx, uint64_t error_5xx,
                    double latency_sum_ms)
{
    if (s == NULL)
        return;
    s->base_requests = request_count;
    s->base_4xx = error_4xx;
    s->base_5xx = error_5xx;
    s->base_latency_ms = latency_sum_ms;
}

void stats_set_base_last(ds_stats *s, int64_t last_request_unix_ms)
{
    if (s != NULL)
        s->base_last_ms = last_request_unix_ms;
}

/* ---- hot path ------------------------------------------------------------------------------ */

static atomic_uint stats_next_stripe;
/* 0 = not assigned yet, else stripe index + 1. initial-exec: dynserve_deploy is linked into the
 * executable, never dlopen'd, so the fast TLS model is valid even though it is built -fPIC. */
#if defined(__GNUC__)
__attribute__((tls_model("initial-exec")))
#endif
static _Thread_local unsigned stats_my_stripe;

static stats_stripe *stats_stripe_of(ds_stats *s)
{
    unsigned i = stats_my_stripe;
    if (i == 0) {
        i = atomic_fetch_add_explicit(&stats_next_stripe, 1, memory_order_relaxed) % STATS_STRIPES +
            1;
        stats_my_stripe = i;
    }
    return &s->stripe[i - 1];
}

static int stats_code_slot(int status)
{
    switch (status) {
    case 200: return 0;
    case 400: return 1;
    case 404: return 2;
    case 405: return 3;
    case 409: return 4;
    case 413: return 5;
    case 429: return 6;
    case 500: return 7;
    case 503: return 8;
    default: break;
    }
    if (status >= 200 && status <= 299)
        return SLOT_2XX;
    if (status >= 400 && status <= 499)
        return SLOT_4XX;
    if (status >= 500 && status <= 599)
        return SLOT_5XX;
    return SLOT_OTHER;
}

/* The slot of an epoch (a second, or a 15 s period) in a ring of n slots; readers pass const
 * slots and only load through the result. */
static stats_slot *stats_ring_at(const stats_slot *ring, size_t n, int64_t epoch)
{
    return (stats_slot *)&ring[(uint64_t)epoch % n];
}

/* Make `slot` count `second`, having seen epoch `seen`. False when this writer must leave its
 * request out of the window: a reset is under way, or the slot already counts a later second. */
static bool stats_slot_claim(stats_slot *slot, int64_t seen, int64_t second)
{
    for (;;) {
        if (seen == second)
            return true;
        if (seen == WIN_RESETTING || seen > second)
            return false;
        if (atomic_compare_exchange_weak_explicit(&slot->epoch, &seen, WIN_RESETTING,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    /* Release stores pair with the reader's acquire loads: a reader that sees any zeroing store
     * (or a later add) also sees WIN_RESETTING or later when it re-checks the epoch, and drops
     * its copy. Per-store ordering instead of a fence, which ThreadSanitizer cannot model. */
    atomic_store_explicit(&slot->errors_5xx, 0, memory_order_release);
    for (size_t i = 0; i < WIN_BUCKETS; i++)
        atomic_store_explicit(&slot->hist[i], 0, memory_order_release);
    atomic_store_explicit(&slot->epoch, second, memory_order_release);
    return true;
}

static void stats_ring_add(stats_slot *ring, size_t n, int64_t epoch, size_t bucket, bool is_5xx)
{
    stats_slot *slot = stats_ring_at(ring, n, epoch);
    int64_t seen = atomic_load_explicit(&slot->epoch, memory_order_acquire);
    if (seen == epoch || stats_slot_claim(slot, seen, epoch)) {
        atomic_fetch_add_explicit(&slot->hist[bucket / WIN_FOLD], 1, memory_order_relaxed);
        if (is_5xx)
            atomic_fetch_add_explicit(&slot->errors_5xx, 1, memory_order_relaxed);
    }
    /* Prepare the next epoch's slot now, so that the writers of that epoch find it ready. */
    stats_slot *next = stats_ring_at(ring, n, epoch + 1);
    int64_t next_seen = atomic_load_explicit(&next->epoch, memory_order_relaxed);
    if (next_seen < epoch + 1 && next_seen != WIN_RESETTING)
        stats_slot_claim(next, next_seen, epoch + 1);
}

static void stats_window_add(ds_stats *s, int64_t now_s, size_t bucket, bool is_5xx)
{
    stats_ring_add(s->slot, WIN_SLOTS, now_s, bucket, is_5xx);
    stats_ring_add(s->slot5, WIN5_SLOTS, now_s / WIN5_SLOT_S, bucket, is_5xx);
}

static void stats_record(ds_stats *s, uint64_t latency_ns, int http_status, int64_t now_s,
                         int64_t now_ms)
{
    stats_stripe *st = stats_stripe_of(s);
    int code = stats_code_slot(http_status);
    atomic_fetch_add_explicit(&st->ends[code], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->latency_ns, latency_ns, memory_order_relaxed);
    atomic_store_explicit(&st->last_ms, now_ms, memory_order_relaxed);
    size_t bucket = stats_bucket_of(latency_ns);
    atomic_fetch_add_explicit(&s->hist[bucket], 1, memory_order_relaxed);
    stats_window_add(s, now_s, bucket, http_status >= 500 && http_status <= 599);
}

void stats_end_at(ds_stats *s, uint64_t latency_ns, int http_status, int64_t now_s)
{
    if (s != NULL)
        stats_record(s, latency_ns, http_status, now_s, now_s * 1000);
}

#ifdef DYNSERVE_NO_STATS
/* The "stats off" build for bench/: the hot path does nothing; readers see zeros. */
void stats_begin(ds_stats *s)
{
    (void)s;
}

void stats_end(ds_stats *s, uint64_t latency_ns, int http_status)
{
    (void)s;
    (void)latency_ns;
    (void)http_status;
}
#else
void stats_begin(ds_stats *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&stats_stripe_of(s)->in_flight, 1, memory_order_relaxed);
}

void stats_end(ds_stats *s, uint64_t latency_ns, int http_status)
{
    if (s == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO, no syscall */
    atomic_fetch_sub_explicit(&stats_stripe_of(s)->in_flight, 1, memory_order_relaxed);
    stats_record(s, latency_ns, http_status, (int64_t)ts.tv_sec,
                 (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
#endif

/* ---- readers ------------------------------------------------------------------------------- */

static int64_t stats_clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock ms of a CLOCK_MONOTONIC_COARSE ms stamp: now minus how long ago it was. */
static int64_t stats_mono_to_unix_ms(int64_t mono_ms)
{
    int64_t ago = stats_clock_ms(CLOCK_MONOTONIC_COARSE) - mono_ms;
    return stats_clock_ms(CLOCK_REALTIME_COARSE) - (ago > 0 ? ago : 0);
}

/* p50/p95/p99 of the lifetime histogram (this process only). */
static void stats_percentiles(const ds_stats *s, stats_snapshot *out)
{
    uint64_t counts[HIST_BUCKETS], total = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        counts[i] = atomic_load_explicit(&s->hist[i], memory_order_relaxed);
        total += counts[i];
    }
    if (total == 0)
        return;
    size_t b50 = stats_rank_bucket(counts, HIST_BUCKETS, total, 0.50);
    size_t b95 = stats_rank_bucket(counts, HIST_BUCKETS, total, 0.95);
    size_t b99 = stats_rank_bucket(counts, HIST_BUCKETS, total, 0.99);
    out->p50_ms = stats_mid_ms(b50, b50);
    out->p95_ms = stats_mid_ms(b95, b95);
    out->p99_ms = stats_mid_ms(b99, b99);
}

/* Counters of this process (see the file comment for how consistent they are). */
static void stats_read_live(const ds_stats *s, stats_snapshot *out)
{
    memset(out, 0, sizeof *out);
    for (size_t c = 0; c < STATS_CODE_SLOTS; c++)
        out->code_label[c] = stats_code_label[c];
    if (s == NULL)
        return;
    out->rate_limited = atomic_load_explicit(&((ds_stats *)s)->rate_limited, memory_order_relaxed);
    out->cancelled = stats_cancelled_count(s);
    uint64_t ends[SLOT_COUNT] = {0}, latency_ns = 0;
    int64_t last_ms = 0, in_flight = 0;
    for (size_t i = 0; i < STATS_STRIPES; i++) {
        const stats_stripe *st = &s->stripe[i];
        in_flight += atomic_load_explicit(&st->in_flight, memory_order_relaxed);
        for (size_t c = 0; c < SLOT_COUNT; c++)
            ends[c] += atomic_load_explicit(&st->ends[c], memory_order_relaxed);
        latency_ns += atomic_load_explicit(&st->latency_ns, memory_order_relaxed);
        int64_t t = atomic_load_explicit(&st->last_ms, memory_order_relaxed);
        last_ms = t > last_ms ? t : last_ms;
    }
    for (size_t c = 0; c < SLOT_COUNT; c++) {
        out->request_count += ends[c];
        if (c < STATS_CODE_SLOTS)
            out->code_count[c] = ends[c];
        int v = c < SLOT_2XX ? stats_code_value[c] : 0;
        if (c == SLOT_4XX || (v >= 400 && v <= 499))
            out->error_4xx += ends[c];
        if (c == SLOT_5XX || (v >= 500 && v <= 599))
            out->error_5xx += ends[c];
    }
    out->in_flight = in_flight > 0 ? in_flight : 0;
    out->latency_sum_ms = (double)latency_ns / 1e6;
    out->last_request_unix_ms = last_ms > 0 ? stats_mono_to_unix_ms(last_ms) : s->base_last_ms;
    stats_percentiles(s, out);
}

static void stats_finish(stats_snapshot *out)
{
    out->error_count = out->error_4xx + out->error_5xx;
    out->avg_latency_ms =
        out->request_count ? out->latency_sum_ms / (double)out->request_count : 0.0;
}

void stats_snapshot_live(const ds_stats *s, stats_snapshot *out)
{
    stats_read_live(s, out);
    stats_finish(out);
}

void stats_snapshot_get(const ds_stats *s, stats_snapshot *out)
{
    stats_read_live(s, out);
    if (s != NULL) {
        /* Restored totals have no per-code detail: they go to their class slots, so that the
         * code counts still add up to request_count. */
        uint64_t ok = s->base_requests - s->base_4xx - s->base_5xx;
        if (s->base_4xx + s->base_5xx > s->base_requests)
            ok = 0;
        out->request_count += s->base_requests;
        out->error_4xx += s->base_4xx;
        out->error_5xx += s->base_5xx;
        out->latency_sum_ms += s->base_latency_ms;
        out->code_count[SLOT_2XX] += ok;
        out->code_count[SLOT_4XX] += s->base_4xx;
        out->code_count[SLOT_5XX] += s->base_5xx;
    }
    stats_finish(out);
}

/* Add one slot's histogram and 5xx count if it holds `second` for the whole read. */
static void stats_slot_read(const stats_slot *slot, int64_t second, uint64_t *hist,
                            uint64_t *errors)
{
    if (atomic_load_explicit(&slot->epoch, memory_order_acquire) != second)
        return;
    uint32_t copy[WIN_BUCKETS];
    uint32_t err = atomic_load_explicit(&slot->errors_5xx, memory_order_acquire);
    for (size_t i = 0; i < WIN_BUCKETS; i++)
        copy[i] = atomic_load_explicit(&slot->hist[i], memory_order_acquire);
    if (atomic_load_explicit(&slot->epoch, memory_order_relaxed) != second)
        return; /* recycled while we read: the copy may be half zeroed */
    for (size_t i = 0; i < WIN_BUCKETS; i++)
        hist[i] += copy[i];
    *errors += err;
}

void stats_window_at(const ds_stats *s, int window_s, int64_t now_s, stats_window_view *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return;
    if (window_s < 1)
        window_s = 1;
    if (window_s > WIN_MAX_S)
        window_s = WIN_MAX_S;
    uint64_t hist[WIN_BUCKETS] = {0}, errors = 0;
    for (int64_t t = now_s - window_s + 1; t <= now_s; t++)
        stats_slot_read(stats_ring_at(s->slot, WIN_SLOTS, t), t, hist, &errors);
    uint64_t total = 0;
    for (size_t i = 0; i < WIN_BUCKETS; i++)
        total += hist[i];
    out->request_count = total;
    out->error_count = errors;
    if (total > 0) {
        size_t b = stats_rank_bucket(hist, WIN_BUCKETS, total, 0.99);
        out->p99_ms = stats_mid_ms(b * WIN_FOLD, b * WIN_FOLD + WIN_FOLD - 1);
    }
}

/* Percentile q of a window histogram (coarse buckets), in ms. */
static double stats_window_quantile_ms(const uint64_t *hist, uint64_t total, double q)
{
    size_t b = stats_rank_bucket(hist, WIN_BUCKETS, total, q);
    return stats_mid_ms(b * WIN_FOLD, b * WIN_FOLD + WIN_FOLD - 1);
}

void stats_recent_get_at(const ds_stats *s, int window_s, int64_t now_s, stats_recent *out)
{
    memset(out, 0, sizeof *out);
    if (window_s < 1)
        window_s = 1;
    if (window_s > WIN5_MAX_S)
        window_s = WIN5_MAX_S;
    uint64_t hist[WIN_BUCKETS] = {0}, errors = 0;
    if (window_s <= WIN_MAX_S) { /* one-second slots: exactly window_s seconds */
        out->window_s = window_s;
        for (int64_t t = now_s - window_s + 1; s != NULL && t <= now_s; t++)
            stats_slot_read(stats_ring_at(s->slot, WIN_SLOTS, t), t, hist, &errors);
    } else { /* 15 s slots: the current (partial) one and the full ones before it */
        int64_t last = now_s / WIN5_SLOT_S;
        int64_t first = last - (window_s + WIN5_SLOT_S - 1) / WIN5_SLOT_S + 1;
        out->window_s = (int)(now_s - first * WIN5_SLOT_S + 1);
        for (int64_t e = first; s != NULL && e <= last; e++)
            stats_slot_read(stats_ring_at(s->slot5, WIN5_SLOTS, e), e, hist, &errors);
    }
    for (size_t i = 0; i < WIN_BUCKETS; i++)
        out->request_count += hist[i];
    out->error_count = errors;
    out->request_rate = (double)out->request_count / out->window_s;
    if (out->request_count == 0)
        return;
    out->error_rate = (double)errors / (double)out->request_count;
    out->p50_ms = stats_window_quantile_ms(hist, out->request_count, 0.50);
    out->p95_ms = stats_window_quantile_ms(hist, out->request_count, 0.95);
    out->p99_ms = stats_window_quantile_ms(hist, out->request_count, 0.99);
}

void stats_recent_get(const ds_stats *s, int window_s, stats_recent *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    stats_recent_get_at(s, window_s, (int64_t)ts.tv_sec, out);
}

void stats_window(const ds_stats *s, int window_s, stats_window_view *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    stats_window_at(s, window_s, (int64_t)ts.tv_sec, out);
}

size_t stats_buckets(const ds_stats *s, uint64_t *counts, size_t n)
{
    if (n > HIST_BUCKETS)
        n = HIST_BUCKETS;
    for (size_t i = 0; i < n; i++)
        counts[i] = s ? atomic_load_explicit(&s->hist[i], memory_order_relaxed) : 0;
    return n;
}

void stats_cancelled(ds_stats *s)
{
    atomic_fetch_add_explicit(&s->cancelled, 1, memory_order_relaxed);
}

uint64_t stats_cancelled_count(const ds_stats *s)
{
    return atomic_load_explicit(&((ds_stats *)s)->cancelled, memory_order_relaxed);
}

void stats_rate_limited(ds_stats *s)
{
    atomic_fetch_add_explicit(&s->rate_limited, 1, memory_order_relaxed);
}

uint64_t stats_rate_limited_count(const ds_stats *s)
{
    return atomic_load_explicit(&((ds_stats *)s)->rate_limited, memory_order_relaxed);
}
