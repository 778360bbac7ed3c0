/*
 * jobs: asynchronous inference. `POST /v2/models/<m>[/versions/<v>]/infer?async=true` takes the
 * same OIP body as the synchronous call and answers 202 {"id","status":"queued"} with
 * `Location: /v2/jobs/<id>`; a pool of worker threads runs queued jobs in order through the
 * same infer path (stats, traffic split and all); `GET /v2/jobs/<id>` reports
 * {"id","status":"queued|running|succeeded|failed",...,"response":<the OIP response>} and
 * `GET /v2/jobs/<id>/result` answers exactly what the synchronous call would have (status,
 * headers, JSON or binary body).
 *
 * Bounds: at most max_queued jobs queued or running (more: 429 with Retry-After); a finished
 * job is kept for retention_s seconds and at most max_kept finished jobs are kept (the oldest
 * finished go first); after that its id is 404. Memory: the bodies of queued and running jobs
 * plus the kept results stay within max_bytes: a new job that does not fit evicts the oldest
 * finished ones, and is refused (429) when the queued bodies alone leave no room; a result that
 * overflows the budget evicts older results, never itself. A job whose version is undeployed before
 * it runs fails with the 404 the synchronous call would get; one already running holds its
 * deployment, so the undeploy drains it first. Jobs live in memory only: a restart forgets them.
 * Ids are 128-bit random (hex), so one client cannot guess another's job.
 *
 * Thread-safety: jobs_submit/jobs_route run on many HTTP threads at once; one mutex guards the
 * table and queue (held only for list operations, never while a job runs).
 */
#ifndef DS_JOBS_H
#define DS_JOBS_H

#include <stddef.h>

#include "buf.h"
#include "deploy.h"
#include "http.h"

typedef struct jobs jobs;

typedef struct jobs_config {
    int workers;       /* threads running jobs (default 2) */
    size_t max_queued; /* queued + running before 429 (default 1000) */
    size_t max_kept;   /* finished jobs kept (default 10000) */
    int retention_s;   /* seconds a finished job is kept (default 600) */
    size_t max_bytes;  /* queued bodies + kept results (default 512 MiB) */
} jobs_config;

/* Start the workers. 0, or -1 (out of memory / no threads) with *out NULL. The manager must
 * outlive the jobs object. */
int jobs_new(const jobs_config *cfg, deploy_manager *m, jobs **out);
/* Stop: running jobs finish, queued ones are dropped; frees everything. NULL is a no-op. */
void jobs_free(jobs *j);

/* true when the request asks for async (`async=true` or `async=1` in the query). */
bool jobs_requested(const http_request *req);

/* Queue an infer request for (model, version); version NULL routes by the traffic split when
 * the job runs. Copies what it needs from req. Writes 202, 429 or 500 into resp. */
void jobs_submit(jobs *j, const char *model, const char *version, const http_request *req,
                 http_response *resp);

/* GET /v2/jobs/<id> and /v2/jobs/<id>/result (seg[0] "v2", seg[1] "jobs", n segments). */
void jobs_route(jobs *j, const http_request *req, const char **seg, int n, http_response *resp);

/* Counts since start (a restart forgets jobs, so they start at 0). dropped: finished jobs let go
 * by retention time, max_kept or the memory budget. Takes the lock; any thread. */
typedef struct jobs_counts {
    size_t queued, running, kept;
    size_t bytes; /* queued and running bodies + kept results */
    unsigned long long submitted, rejected, succeeded, failed, dropped;
} jobs_counts;
void jobs_counts_get(jobs *j, jobs_counts *out);

/* Append the counts to a GET /metrics body (Prometheus text): dynserve_async_jobs{state},
 * dynserve_async_bytes, dynserve_async_job_events_total{event}. Any thread. */
void jobs_metrics(jobs *j, ds_buf *out);

#endif
