/*
 * metrics: the body of GET /metrics in the Prometheus text exposition format 0.0.4
 * (Content-Type "text/plain; version=0.0.4; charset=utf-8").
 *
 * Families, each with one HELP and one TYPE line, always present (with no series if nothing
 * applies) except the process ones, which are left out when /proc cannot be read:
 *   dynserve_inference_requests_total{model,version,code}  counter (codes with a count > 0)
 *   dynserve_inference_duration_seconds{model,version}     histogram, le = 0.0005 .. 10, +Inf
 *   dynserve_in_flight_requests{model,version}             gauge
 *   dynserve_traffic_weight{model,version}                 gauge, only for models with a split
 *   dynserve_inference_count_total{model,version}          counter: rows inferred (Triton's
 *                                                          inference_count)
 *   dynserve_execution_count_total{model,version}          counter: plugin calls (execution_count)
 *   dynserve_batch_size{model,version}                     histogram of rows per execution,
 *                                                          le = 1, 2, 4 .. 1024, +Inf; only for
 *                                                          deployments with dynamic batching
 *   dynserve_deployment_load_seconds{model,version}        gauge: dlopen + create (or worker start)
 *   dynserve_deployment_ready_seconds{model,version}       gauge: deploy call -> route answering
 *                                                          (absent for deployments restored at
 *                                                          start)
 *   dynserve_deployment_memory_bytes{model,version}        gauge: process RSS after - before
 *                                                          its load
 * and, process-wide, from the deployment manager (manage_metrics, not metrics_render):
 *   dynserve_loads_total, dynserve_unloads_total           counters
 *   dynserve_load_failures_total{reason}                   counter; reason = open, create, worker,
 *                                                          options, memory
 *   dynserve_load_duration_seconds, dynserve_unload_duration_seconds,
 *   dynserve_drain_duration_seconds                        summaries (_sum, _count)
 *   dynserve_deployments{status}                           gauge; "active" and "failed" always
 * and the process's:
 *   dynserve_heap_inuse_bytes, dynserve_heap_free_bytes    gauges: malloc's in use and held-free
 *                                                          bytes (glibc's mallinfo2; absent on
 *                                                          other C libraries)
 *   dynserve_sqlite_memory_bytes                           gauge: sqlite3_memory_used
 *   process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 *   process_open_fds, process_max_fds, process_start_time_seconds
 * and the async jobs', through manage_ctx.metrics_more (serve/jobs.h, jobs_metrics):
 *   dynserve_async_jobs{state}                             gauge; queued, running, finished
 *   dynserve_async_bytes                                   gauge: bodies and results held
 *   dynserve_async_job_events_total{event}                 counter; submitted, rejected,
 *                                                          succeeded, failed, dropped
 *
 * Counters are this process's (stats_snapshot_live): they restart at 0 with the server, which
 * Prometheus' rate() handles, and they agree with the histogram's _count. Lifetime totals that
 * survive restarts are in GET /models/stats. The histogram is folded from the stats module's
 * fine buckets (stats_buckets). A fine bucket that straddles a standard bound (it is < 3.2% wide)
 * is counted above the bound, so a request up to ~3% below a bound may land in the next bucket;
 * no request is ever counted in a bucket below its latency.
 *
 * Two ways to render: metrics_render() for an array of entries whose ds_stats stay valid for the
 * call, or a metrics_writer that copies each entry's numbers when it is added, so the caller may
 * add entries from inside a visitor (deploy_foreach, a registry row callback) whose pointers are
 * only valid during the callback. Neither is thread-safe on one writer/buffer; the ds_stats may
 * be updated concurrently (see stats.h).
 */
#ifndef DS_METRICS_H
#define DS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "buf.h"
#include "deploy.h"
#include "phase_stats.h"
#include "stats.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One deployment; all strings borrowed for the call only. */
typedef struct metrics_deployment {
    const char *model;
    const char *version;
    const char *status;              /* "active", "failed", ...: counted in dynserve_deployments */
    const ds_stats *stats;           /* NULL when not live (failed): no per-deployment series */
    int traffic_weight;              /* percent 0..100, or -1 when the model has no traffic split */
    const ds_phase_stats *phases;    /* Triton counts; NULL: no execution series */
    bool batching;                   /* dynamic batching on: add the batch-size histogram */
    const deploy_load_figures *load; /* what loading it cost; NULL: no load series */
} metrics_deployment;

#define METRICS_MAX_STATUSES 8
#define METRICS_STATUS_LEN   32

/* Accumulates series family by family (the format wants each family's lines together).
 * Owns its buffers until metrics_writer_finish. */
typedef struct metrics_writer {
    ds_buf requests, duration, in_flight, weight;
    ds_buf inferences, executions, batch_size; /* Triton counts and the batch-size histogram */
    ds_buf load_s, ready_s, load_bytes;        /* what loading each deployment cost */
    ds_buf window_rate, window_errors, window_latency; /* the 1m and 5m windows */
    struct {
        char name[METRICS_STATUS_LEN];
        uint64_t count;
    } status[METRICS_MAX_STATUSES]; /* [0] "active", [1] "failed", then first come first served */
    size_t status_count;
} metrics_writer;

void metrics_writer_init(metrics_writer *w);
/* Copy d's numbers into the writer (d and d->stats need to live only during the call). A status
 * beyond METRICS_MAX_STATUSES distinct ones is not counted; longer names are truncated. */
void metrics_writer_add(metrics_writer *w, const metrics_deployment *d);
/* Append the whole exposition (families, then process metrics) to out and release the writer's
 * buffers. When memory ran out, out->failed is set (buf.h: the caller answers 500). */
void metrics_writer_finish(metrics_writer *w, ds_buf *out);

/* One call: init, add each of d[0..n), finish. */
void metrics_render(ds_buf *out, const metrics_deployment *d, size_t n);

#endif
