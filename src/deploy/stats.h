/*
 * stats: per-deployment request statistics, updated on the inference hot path without locks.
 *
 * Counters are striped per thread (each stripe on its own cache line, relaxed atomics), so
 * concurrent requests do not bounce one cache line; readers sum the stripes. Latency goes into a
 * fixed-memory log-linear histogram (relative error <= 2%), from which p50/p95/p99 are read.
 * A ring of short time slots keeps a recent window for the canary guard (stats_window()).
 * Lifetime totals restored from the registry (stats_set_base) are added to every snapshot.
 *
 * Thread-safety: stats_begin/stats_end may be called from any number of threads at once;
 * stats_snapshot/stats_window/stats_buckets may run concurrently with them and see a
 * consistent-enough view (each counter exact, counters not mutually atomic).
 * stats_new/stats_free/stats_set_base are not concurrent with anything else on the same object.
 */
#ifndef DS_STATS_H
#define DS_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ds_stats ds_stats;

/* The HTTP statuses counted one by one (for dynserve_inference_requests_total{code}); any other
 * status is counted under its class ("2xx", "4xx", "5xx"). */
#define STATS_CODE_SLOTS 12

typedef struct stats_snapshot {
    uint64_t request_count; /* every request answered, whatever the status */
    uint64_t error_count;   /* error_4xx + error_5xx */
    uint64_t error_4xx;
    uint64_t error_5xx;
    int64_t in_flight;
    double latency_sum_ms;
    double avg_latency_ms;         /* over request_count; 0 when none */
    double p50_ms, p95_ms, p99_ms; /* since this process started; 0 when no requests */
    int64_t last_request_unix_ms;  /* 0 when none */
    /* per-code counts: code_label[i] is "200", "400", ..., or "2xx"/"4xx"/"5xx" */
    const char *code_label[STATS_CODE_SLOTS];
    uint64_t code_count[STATS_CODE_SLOTS];
    uint64_t rate_limited; /* 429s from the deployment's rate limit (this process) */
    uint64_t cancelled;    /* requests abandoned by their client (this process) */
} stats_snapshot;

/* Allocated and zeroed; caller owns, release with stats_free. NULL when memory runs out. */
ds_stats *stats_new(void);
void stats_free(ds_stats *s);

/* Lifetime totals from an earlier run; added to snapshots (not to percentiles or the window). */
/* The last request time an earlier process saw (unix ms): snapshots show it until this process
 * serves one. Not concurrent with anything else on s. */
void stats_set_base_last(ds_stats *s, int64_t last_request_unix_ms);
void stats_set_base(ds_stats *s, uint64_t request_count, uint64_t error_4xx, uint64_t error_5xx,
                    double latency_sum_ms);

/* A request starts (in_flight + 1) / ends with its HTTP status and latency. Lock-free. */
void stats_begin(ds_stats *s);
void stats_end(ds_stats *s, uint64_t latency_ns, int http_status);

void stats_snapshot_get(const ds_stats *s, stats_snapshot *out);

/* Requests, 5xx errors (+ optionally 4xx) and p99 over the last window_s seconds (1..60). */
typedef struct stats_window_view {
    uint64_t request_count;
    uint64_t error_count; /* 5xx only: a client's bad request is not the model's fault */
    double p99_ms;
} stats_window_view;
void stats_window(const ds_stats *s, int window_s, stats_window_view *out);

/* Histogram export for GET /deployments/<m>/<v>/stats and Prometheus: bucket i counts requests
 * with latency <= stats_bucket_upper_ms(i) (non-cumulative). stats_bucket_count() buckets. */
size_t stats_bucket_count(void);
double stats_bucket_upper_ms(size_t i);
/* Copies min(n, stats_bucket_count()) counts into counts; returns how many. */
size_t stats_buckets(const ds_stats *s, uint64_t *counts, size_t n);

/* ---- added for exporters and tests (append-only) ---- */

/* Like stats_snapshot_get, but this process's counts only (no stats_set_base totals), so that
 * request_count, the per-code counts, latency_sum_ms and stats_buckets() describe the same
 * requests. For exporters whose counters restart with the process (Prometheus). In
 * stats_snapshot_get the restored totals are added to the class slots "2xx"/"4xx"/"5xx"; statuses
 * outside 2xx/4xx/5xx (1xx, 3xx, invalid) count in request_count but in no code slot. */
void stats_snapshot_live(const ds_stats *s, stats_snapshot *out);

/* stats_end with an explicit CLOCK_MONOTONIC_COARSE second, and stats_window as seen at now_s:
 * for tests of the window (a fake clock). Not affected by DYNSERVE_NO_STATS. */
void stats_end_at(ds_stats *s, uint64_t latency_ns, int http_status, int64_t now_s);
void stats_window_at(const ds_stats *s, int window_s, int64_t now_s, stats_window_view *out);

/* Recent traffic over the last window_s seconds (1..300): for "how is the canary doing right
 * now" in /models/stats, the per-deployment route and /metrics. Up to 60 s from one-second
 * slots (exactly window_s seconds); above, from 15 s slots, so the 300 s window covers between
 * 286 and 300 s (window_s says how many). Percentiles are the coarse window histogram's (within
 * 6.25%). This process only: windows start empty after a restart (nothing of them is
 * persisted). */
typedef struct stats_recent {
    int window_s;                  /* seconds actually covered */
    uint64_t request_count;        /* requests answered in the window, any status */
    uint64_t error_count;          /* of which 5xx */
    double request_rate;           /* request_count / window_s, per second */
    double error_rate;             /* error_count / request_count; 0 without requests */
    double p50_ms, p95_ms, p99_ms; /* 0 without requests */
} stats_recent;
void stats_recent_get(const ds_stats *s, int window_s, stats_recent *out);
/* The same as seen at CLOCK_MONOTONIC_COARSE second now_s (tests, with stats_end_at). */
void stats_recent_get_at(const ds_stats *s, int window_s, int64_t now_s, stats_recent *out);

/* A request was refused by the deployment's rate limit (429); counted apart from requests. */
void stats_rate_limited(ds_stats *s);
uint64_t stats_rate_limited_count(const ds_stats *s);

/* A request ended because its client went away (the plugin returned CANCELLED after
 * is_cancelled told it); counted apart from, and also in, the 499s. Lock-free. */
void stats_cancelled(ds_stats *s);
uint64_t stats_cancelled_count(const ds_stats *s);
/* Bytes one ds_stats occupies (fixed; for capacity planning: ~83 KiB per deployment). */
size_t stats_footprint(void);

#endif
