/*
 * jobs: async inference (contract in jobs.h).
 *
 * One mutex (`lock`) guards everything below it in struct jobs: the id hash table, the FIFO of
 * queued jobs, the FIFO of finished jobs (oldest first, for eviction) and the counters. A job is
 * in exactly one of: the queue (queued), a worker's hands (running), the finished list. Its
 * request fields are written before it is queued and read only by the worker that took it; its
 * result fields are written by that worker under the lock and never change afterwards, so a
 * reader holding the lock sees a finished job whole.
 */
#include "jobs.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "infer.h"
#include "reply.h"
#include "log.h"

#define JOBS_BUCKETS 4096
#define JOBS_ID_LEN  32

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED } job_state;

static const char *const job_state_name[] = {"queued", "running", "succeeded", "failed"};

typedef struct job {
    char id[JOBS_ID_LEN + 1];
    char model[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1]; /* "" when routed by the traffic split */
    char routing_key[REG_NAME_MAX * 4];
    bool has_routing_key;
    char *body; /* the request body, owned; freed when the job has run */
    size_t body_len, header_len;
    job_state state;
    int http_status;
    const char *content_type; /* static string */
    char *result;             /* the response body, owned */
    size_t result_len, json_len;
    int64_t created_ms, started_ms, finished_ms; /* wall clock, for display */
    int64_t finished_s;                          /* monotonic, for retention */
    struct job *hnext;                           /* hash chain */
    struct job *next;                            /* queue or finished list */
} job;

struct jobs {
    jobs_config cfg;
    deploy_manager *deploy;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* a job was queued, or stop */
    bool stop;
    job *table[JOBS_BUCKETS];
    job *queue_head, *queue_tail;
    job *done_head, *done_tail;
    size_t queued, running, kept;
    size_t bytes; /* bodies of queued and running jobs + results of kept ones (max_bytes) */
    unsigned long long submitted, rejected, succeeded, failed, dropped;
};

static int64_t jobs_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t jobs_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static size_t jobs_bucket(const char *id)
{
    uint64_t h = 1469598103934665603u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return (size_t)(h % JOBS_BUCKETS);
}

static void job_free(job *jb)
{
    free(jb->body);
    free(jb->result);
    free(jb);
}

/* ---- table (lock held) ------------------------------------------------------------------ */

static job *jobs_find_locked(jobs *j, const char *id)
{
    for (job *jb = j->table[jobs_bucket(id)]; jb != NULL; jb = jb->hnext)
        if (strcmp(jb->id, id) == 0)
            return jb;
    return NULL;
}

static void jobs_unhash_locked(jobs *j, job *jb)
{
    for (job **p = &j->table[jobs_bucket(jb->id)]; *p != NULL; p = &(*p)->hnext)
        if (*p == jb) {
            *p = jb->hnext;
            return;
        }
}

/* Drop the oldest finished job. */
static void jobs_evict_oldest_locked(jobs *j)
{
    job *old = j->done_head;
    j->done_head = old->next;
    if (j->done_head == NULL)
        j->done_tail = NULL;
    jobs_unhash_locked(j, old);
    j->kept--;
    j->bytes -= old->result_len;
    j->dropped++;
    job_free(old);
}

/* Enforce retention: finished longer than retention_s ago, or more than max_kept. */
static void jobs_sweep_locked(jobs *j)
{
    int64_t now = jobs_mono_s();
    while (j->done_head != NULL &&
           (j->kept > j->cfg.max_kept || now - j->done_head->finished_s >= j->cfg.retention_s))
        jobs_evict_oldest_locked(j);
}

/* Evict the oldest finished jobs until `incoming` more bytes fit in max_bytes, or none is left
 * but `keep` (the job just finished, or NULL): a result larger than the whole budget can still
 * be fetched, and goes when the next job needs its room. */
static void jobs_make_room_locked(jobs *j, size_t incoming, const job *keep)
{
    while (j->done_head != NULL && j->done_head != keep && j->bytes + incoming > j->cfg.max_bytes)
        jobs_evict_oldest_locked(j);
}

/* ---- worker ------------------------------------------------------------------------------ */

static void jobs_run_one(jobs *j, job *jb)
{
    ds_buf out = DS_BUF_INIT;
    http_response resp = {.status = 0, .content_type = "application/json", .body = &out};
    infer_input in = {.body = jb->body,
                      .len = jb->body_len,
                      .header_len = jb->header_len,
                      .routing_key = jb->has_routing_key ? jb->routing_key : NULL};
    infer_oip_by_name(j->deploy, jb->model, jb->version[0] ? jb->version : NULL, &in, &resp);
    if (resp.status == 0 || out.failed)
        reply_error(&resp, HTTP_INTERNAL_ERROR, "out of memory");
    size_t len = out.len;
    size_t json_len = infer_response_json_len(&resp, len);
    char *result = buf_detach(&out);
    free(jb->body);
    jb->body = NULL;

    pthread_mutex_lock(&j->lock);
    jb->http_status = resp.status;
    jb->content_type = resp.content_type ? resp.content_type : "application/json";
    jb->result = result;
    jb->result_len = result ? len : 0;
    jb->json_len = result ? json_len : 0;
    jb->finished_ms = jobs_wall_ms();
    jb->finished_s = jobs_mono_s();
    j->bytes = j->bytes - jb->body_len + jb->result_len;
    bool ok = resp.status >= 200 && resp.status < 300;
    jb->state = ok ? JOB_SUCCEEDED : JOB_FAILED;
    ok ? j->succeeded++ : j->failed++;
    j->running--;
    if (j->done_tail != NULL)
        j->done_tail->next = jb;
    else
        j->done_head = jb;
    j->done_tail = jb;
    jb->next = NULL;
    j->kept++;
    jobs_make_room_locked(j, 0, jb);
    jobs_sweep_locked(j);
    pthread_mutex_unlock(&j->lock);
}

static void *jobs_worker(void *arg)
{
    jobs *j = arg;
    pthread_mutex_lock(&j->lock);
    while (true) {
        while (!j->stop && j->queue_head == NULL)
            pthread_cond_wait(&j->wake, &j->lock);
        if (j->stop)
            break;
        job *jb = j->queue_head;
        j->queue_head = jb->next;
        if (j->queue_head == NULL)
            j->queue_tail = NULL;
        jb->next = NULL;
        jb->state = JOB_RUNNING;
        jb->started_ms = jobs_wall_ms();
        j->queued--;
        j->running++;
        pthread_mutex_unlock(&j->lock);
        jobs_run_one(j, jb);
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int jobs_new(const jobs_config *cfg, deploy_manager *m, jobs **out)
{
    *out = NULL;
    jobs *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->cfg = *cfg;
    if (j->cfg.workers <= 0)
        j->cfg.workers = 2;
    if (j->cfg.max_queued == 0)
        j->cfg.max_queued = 1000;
    if (j->cfg.max_kept == 0)
        j->cfg.max_kept = 10000;
    if (j->cfg.retention_s <= 0)
        j->cfg.retention_s = 600;
    if (j->cfg.max_bytes == 0)
        j->cfg.max_bytes = (size_t)512 << 20;
    j->deploy = m;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->wake, NULL);
    j->threads = calloc((size_t)j->cfg.workers, sizeof *j->threads);
    if (j->threads == NULL) {
        jobs_free(j);
        return -1;
    }
    for (int i = 0; i < j->cfg.workers; i++) {
        if (pthread_create(&j->threads[i], NULL, jobs_worker, j) != 0) {
            jobs_free(j);
            return -1;
        }
        j->nthreads++;
    }
    *out = j;
    return 0;
}

void jobs_free(jobs *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->lock);
    j->stop = true;
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    free(j->threads);
    for (size_t b = 0; b < JOBS_BUCKETS; b++)
        for (job *jb = j->table[b], *next; jb != NULL; jb = next) {
            next = jb->hnext;
            job_free(jb);
        }
    pthread_cond_destroy(&j->wake);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

/* ---- submit ------------------------------------------------------------------------------ */

bool jobs_requested(const http_request *req)
{
    const char *q = req->query;
    while (q != NULL && *q) {
        if (strncmp(q, "async=true", 10) == 0 && (q[10] == '\0' || q[10] == '&'))
            return true;
        if (strncmp(q, "async=1", 7) == 0 && (q[7] == '\0' || q[7] == '&'))
            return true;
        q = strchr(q, '&');
        if (q != NULL)
            q++;
    }
    return false;
}

static int jobs_new_id(char *out)
{
    unsigned char raw[JOBS_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static job *jobs_make(const char *model, const char *version, const http_request *req,
                      http_response *resp)
{
    size_t header_len = infer_header_length(req);
    if (header_len == (size_t)-2) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "Inference-Header-Content-Length must be a byte count within the body");
        return NULL;
    }
    job *jb = calloc(1, sizeof *jb);
    char *body = malloc(req->body_len + 1);
    if (jb == NULL || body == NULL || jobs_new_id(jb->id) != 0) {
        free(jb);
        free(body);
        reply_error(resp, HTTP_INTERNAL_ERROR,
                    "cannot create a job (out of memory or no randomness)");
        return NULL;
    }
    memcpy(body, req->body, req->body_len);
    body[req->body_len] = '\0';
    jb->body = body;
    jb->body_len = req->body_len;
    jb->header_len = header_len;
    snprintf(jb->model, sizeof jb->model, "%s", model);
    snprintf(jb->version, sizeof jb->version, "%s", version ? version : "");
    const char *key = http_header(req, "X-Routing-Key");
    if (key != NULL) {
        snprintf(jb->routing_key, sizeof jb->routing_key, "%s", key);
        jb->has_routing_key = true;
    }
    jb->state = JOB_QUEUED;
    jb->created_ms = jobs_wall_ms();
    return jb;
}

void jobs_submit(jobs *j, const char *model, const char *version, const http_request *req,
                 http_response *resp)
{
    if (strcmp(req->method, "POST") != 0) {
        reply_bad_method(req, resp, "POST");
        return;
    }
    job *jb = jobs_make(model, version, req, resp);
    if (jb == NULL)
        return;
    pthread_mutex_lock(&j->lock);
    jobs_sweep_locked(j);
    bool no_slot = j->queued + j->running >= j->cfg.max_queued;
    if (!no_slot)
        jobs_make_room_locked(j, jb->body_len, NULL); /* the oldest results go first */
    if (no_slot || j->bytes + jb->body_len > j->cfg.max_bytes) {
        j->rejected++;
        size_t held = j->bytes;
        pthread_mutex_unlock(&j->lock);
        size_t body_len = jb->body_len;
        job_free(jb);
        if (no_slot)
            reply_error(resp, HTTP_TOO_MANY_REQUESTS,
                        "the async job queue is full (%zu jobs queued or running)",
                        j->cfg.max_queued);
        else
            reply_error(resp, HTTP_TOO_MANY_REQUESTS,
                        "the async job store is full: %zu bytes of queued requests held, this "
                        "one is %zu, the limit is %zu (--async-max-bytes)",
                        held, body_len, j->cfg.max_bytes);
        http_response_header(resp, "Retry-After", "1");
        return;
    }
    size_t b = jobs_bucket(jb->id);
    jb->hnext = j->table[b];
    j->table[b] = jb;
    if (j->queue_tail != NULL)
        j->queue_tail->next = jb;
    else
        j->queue_head = jb;
    j->queue_tail = jb;
    j->queued++;
    j->bytes += jb->body_len;
    j->submitted++;
    pthread_cond_signal(&j->wake);
    char id[JOBS_ID_LEN + 1];
    memcpy(id, jb->id, sizeof id);
    pthread_mutex_unlock(&j->lock);

    char location[64];
    snprintf(location, sizeof location, "/v2/jobs/%s", id);
    http_response_header(resp, "Location", location);
    buf_printf(resp->body, "{\"id\":\"%s\",\"status\":\"queued\",\"location\":\"%s\"}", id,
               location);
    resp->status = HTTP_ACCEPTED;
}

/* ---- read ------------------------------------------------------------------------------ */

static void jobs_time(ds_buf *out, const char *key, int64_t ms)
{
    if (ms == 0) {
        buf_printf(out, ",\"%s\":null", key);
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char at[40];
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(out, ",\"%s\":\"%s.%03dZ\"", key, at, (int)(ms % 1000));
}

/* The status document of one job (lock held). */
static void jobs_describe_locked(const job *jb, ds_buf *out)
{
    buf_printf(out, "{\"id\":\"%s\",\"status\":\"%s\",\"model_name\":", jb->id,
               job_state_name[jb->state]);
    buf_append_json_string(out, jb->model, strlen(jb->model));
    buf_append_str(out, ",\"model_version\":");
    if (jb->version[0])
        buf_append_json_string(out, jb->version, strlen(jb->version));
    else
        buf_append_str(out, "null");
    jobs_time(out, "created_at", jb->created_ms);
    jobs_time(out, "started_at", jb->started_ms);
    jobs_time(out, "finished_at", jb->finished_ms);
    buf_printf(out, ",\"result\":\"/v2/jobs/%s/result\"", jb->id);
    bool done = jb->state == JOB_SUCCEEDED || jb->state == JOB_FAILED;
    if (!done) {
        buf_append_char(out, '}');
        return;
    }
    buf_printf(out, ",\"http_status\":%d", jb->http_status);
    if (jb->state == JOB_SUCCEEDED) {
        /* the OIP response itself; a binary response's JSON header part (data at /result) */
        buf_append_str(out, ",\"response\":");
        if (jb->result_len > 0)
            buf_append(out, jb->result, jb->json_len);
        else
            buf_append_str(out, "null");
        if (jb->json_len < jb->result_len)
            buf_append_str(out, ",\"binary\":true");
    } else {
        cJSON *e = cJSON_ParseWithLength(jb->result ? jb->result : "", jb->result_len);
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "error");
        const char *text = cJSON_IsString(msg) ? msg->valuestring : "inference failed";
        buf_append_str(out, ",\"error\":");
        buf_append_json_string(out, text, strlen(text));
        cJSON_Delete(e);
    }
    buf_append_char(out, '}');
}

/* The stored response, exactly as the synchronous call would have answered (lock held). */
static void jobs_result_locked(const job *jb, http_response *resp)
{
    if (jb->state == JOB_QUEUED || jb->state == JOB_RUNNING) {
        reply_error(resp, HTTP_CONFLICT, "job %s is %s", jb->id, job_state_name[jb->state]);
        http_response_header(resp, "Retry-After", "1");
        return;
    }
    buf_append(resp->body, jb->result ? jb->result : "", jb->result_len);
    resp->status = jb->http_status;
    resp->content_type = jb->content_type;
    if (jb->json_len < jb->result_len) {
        char n[32];
        snprintf(n, sizeof n, "%zu", jb->json_len);
        http_response_header(resp, "Inference-Header-Content-Length", n);
    }
}

void jobs_route(jobs *j, const http_request *req, const char **seg, int n, http_response *resp)
{
    bool result = n == 4 && strcmp(seg[3], "result") == 0;
    if ((n != 3 && !result) || strlen(seg[2]) != JOBS_ID_LEN) {
        reply_error(resp, HTTP_NOT_FOUND, "no job at %s", req->path);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        reply_bad_method(req, resp, "GET, HEAD");
        return;
    }
    pthread_mutex_lock(&j->lock);
    jobs_sweep_locked(j);
    const job *jb = jobs_find_locked(j, seg[2]);
    if (jb == NULL) {
        pthread_mutex_unlock(&j->lock);
        reply_error(resp, HTTP_NOT_FOUND, "no job %s (unknown, expired, or from before a restart)",
                    seg[2]);
        return;
    }
    if (result) {
        jobs_result_locked(jb, resp);
    } else {
        jobs_describe_locked(jb, resp->body);
        resp->status = HTTP_OK;
    }
    pthread_mutex_unlock(&j->lock);
}

void jobs_counts_get(jobs *j, jobs_counts *out)
{
    pthread_mutex_lock(&j->lock);
    jobs_sweep_locked(j);
    *out = (jobs_counts){.queued = j->queued,
                         .running = j->running,
                         .kept = j->kept,
                         .bytes = j->bytes,
                         .submitted = j->submitted,
                         .rejected = j->rejected,
                         .succeeded = j->succeeded,
                         .failed = j->failed,
                         .dropped = j->dropped};
    pthread_mutex_unlock(&j->lock);
}

void jobs_metrics(jobs *j, ds_buf *out)
{
    jobs_counts c;
    jobs_counts_get(j, &c);
    buf_printf(
        out,
        "# HELP dynserve_async_jobs Async inference jobs by state (finished ones are kept "
        "for their result).\n"
        "# TYPE dynserve_async_jobs gauge\n"
        "dynserve_async_jobs{state=\"queued\"} %zu\n"
        "dynserve_async_jobs{state=\"running\"} %zu\n"
        "dynserve_async_jobs{state=\"finished\"} %zu\n"
        "# HELP dynserve_async_bytes Bytes the async job store holds: queued and running "
        "request bodies plus kept results (bounded by --async-max-bytes).\n"
        "# TYPE dynserve_async_bytes gauge\n"
        "dynserve_async_bytes %zu\n"
        "# HELP dynserve_async_job_events_total Async inference jobs: submitted (202), rejected "
        "(429), succeeded, failed, and dropped (finished, then past --async-retention-s, "
        "--async-max-kept or the memory budget).\n"
        "# TYPE dynserve_async_job_events_total counter\n"
        "dynserve_async_job_events_total{event=\"submitted\"} %llu\n"
        "dynserve_async_job_events_total{event=\"rejected\"} %llu\n"
        "dynserve_async_job_events_total{event=\"succeeded\"} %llu\n"
        "dynserve_async_job_events_total{event=\"failed\"} %llu\n"
        "dynserve_async_job_events_total{event=\"dropped\"} %llu\n",
        c.queued, c.running, c.kept, c.bytes, c.submitted, c.rejected, c.succeeded, c.failed,
        c.dropped);
}
