/*
 * metrics: Prometheus text exposition of per-deployment stats and process metrics (see
 * metrics.h for the families and their meaning).
 *
 * A metrics_writer keeps one ds_buf per per-deployment family, because the format wants all
 * lines of a family together while entries arrive one deployment at a time. finish() writes
 * each family's HELP and TYPE once, then its buffered series, then the deployment counts and the
 * process metrics read from /proc/self (Linux), and frees the family buffers.
 */
#include "metrics.h"

#include <dirent.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "manage_internal.h"
#include "registry.h"
#include "reply.h"

/* Standard latency bounds, in ns for exact comparison with the fine buckets' tops and as the
 * text of the le label (the +Inf bucket follows them). */
#define METRICS_BOUNDS 14
static const uint64_t metrics_bound_ns[METRICS_BOUNDS] = {
    500000,    1000000,   2500000,   5000000,    10000000,   25000000,   50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};
static const char *const metrics_bound_text[METRICS_BOUNDS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

/* ---- text helpers ---------------------------------------------------------------------------- */

/* A label value with backslash, double quote and newline escaped, as the format requires. */
static void metrics_label_value(ds_buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            buf_append_str(b, "\\\\");
        else if (*s == '"')
            buf_append_str(b, "\\\"");
        else if (*s == '\n')
            buf_append_str(b, "\\n");
        else
            buf_append_char(b, *s);
    }
}

/* Shortest %g text that reads back as the same double (Prometheus parses Go floats). */
static void metrics_double(ds_buf *b, double v)
{
    if (isnan(v)) {
        buf_append_str(b, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char text[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    buf_append_str(b, text);
}

static void metrics_family(ds_buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{model="..",version=".."` without the closing brace, so callers can add labels. */
static void metrics_series_start(ds_buf *b, const char *name, const metrics_deployment *d)
{
    buf_append_str(b, name);
    buf_append_str(b, "{model=\"");
    metrics_label_value(b, d->model);
    buf_append_str(b, "\",version=\"");
    metrics_label_value(b, d->version);
    buf_append_char(b, '"');
}

/* ---- per-deployment families ----------------------------------------------------------------- */

static void metrics_add_requests(ds_buf *b, const metrics_deployment *d, const stats_snapshot *s)
{
    for (size_t i = 0; i < STATS_CODE_SLOTS; i++) {
        if (s->code_count[i] == 0)
            continue; /* 12 codes x 1000 deployments of zeros would bury the real series */
        metrics_series_start(b, "dynserve_inference_requests_total", d);
        buf_printf(b, ",code=\"%s\"} %llu\n", s->code_label[i],
                   (unsigned long long)s->code_count[i]);
    }
}

/* Fold the stats module's fine buckets into cumulative counts at the standard bounds; cum has
 * METRICS_BOUNDS + 1 entries, the last (+Inf) is the total. False when memory ran out. */
static bool metrics_fold_buckets(const ds_stats *st, uint64_t *cum)
{
    size_t n = stats_bucket_count();
    uint64_t *fine = calloc(n, sizeof *fine);
    if (fine == NULL)
        return false;
    n = stats_buckets(st, fine, n);
    memset(cum, 0, (METRICS_BOUNDS + 1) * sizeof *cum);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        /* The top of bucket i in ns, recovered exactly from its ms value (tops are integers). */
        uint64_t top_ns = (uint64_t)llround(stats_bucket_upper_ms(i) * 1e6);
        while (j < METRICS_BOUNDS && top_ns > metrics_bound_ns[j])
            j++;
        cum[j] += fine[i];
    }
    free(fine);
    for (size_t k = 1; k <= METRICS_BOUNDS; k++)
        cum[k] += cum[k - 1];
    return true;
}

static void metrics_add_duration(ds_buf *b, const metrics_deployment *d, const stats_snapshot *s)
{
    uint64_t cum[METRICS_BOUNDS + 1];
    if (!metrics_fold_buckets(d->stats, cum)) {
        b->failed = true; /* sticky, as buf.h does it: the page becomes a 500 */
        return;
    }
    const char *name = "dynserve_inference_duration_seconds_bucket";
    for (size_t k = 0; k <= METRICS_BOUNDS; k++) {
        metrics_series_start(b, name, d);
        buf_printf(b, ",le=\"%s\"} %llu\n", k < METRICS_BOUNDS ? metrics_bound_text[k] : "+Inf",
                   (unsigned long long)cum[k]);
    }
    metrics_series_start(b, "dynserve_inference_duration_seconds_sum", d);
    buf_append_str(b, "} ");
    metrics_double(b, s->latency_sum_ms / 1000.0);
    buf_append_char(b, '\n');
    metrics_series_start(b, "dynserve_inference_duration_seconds_count", d);
    buf_printf(b, "} %llu\n", (unsigned long long)cum[METRICS_BOUNDS]);
}

static void metrics_count_status(metrics_writer *w, const char *status)
{
    if (status == NULL)
        return;
    for (size_t i = 0; i < w->status_count; i++)
        if (strncmp(w->status[i].name, status, METRICS_STATUS_LEN - 1) == 0) {
            w->status[i].count++;
            return;
        }
    if (w->status_count == METRICS_MAX_STATUSES)
        return;
    snprintf(w->status[w->status_count].name, METRICS_STATUS_LEN, "%s", status);
    w->status[w->status_count++].count = 1;
}

/* The recent windows (stats_recent_get): request rate, 5xx share and latency quantiles. */
static void metrics_add_windows(metrics_writer *w, const metrics_deployment *d)
{
    static const int window_s[] = {60, 300};
    static const char *const window_name[] = {"1m", "5m"};
    for (size_t i = 0; i < sizeof window_s / sizeof window_s[0]; i++) {
        stats_recent r;
        stats_recent_get(d->stats, window_s[i], &r);
        metrics_series_start(&w->window_rate, "dynserve_window_request_rate", d);
        buf_printf(&w->window_rate, ",window=\"%s\"} ", window_name[i]);
        metrics_double(&w->window_rate, r.request_rate);
        buf_append_char(&w->window_rate, '\n');
        metrics_series_start(&w->window_errors, "dynserve_window_error_ratio", d);
        buf_printf(&w->window_errors, ",window=\"%s\"} ", window_name[i]);
        metrics_double(&w->window_errors, r.error_rate);
        buf_append_char(&w->window_errors, '\n');
        const double q[] = {r.p50_ms, r.p95_ms, r.p99_ms};
        static const char *const q_name[] = {"p50", "p95", "p99"};
        for (size_t k = 0; k < 3; k++) {
            metrics_series_start(&w->window_latency, "dynserve_window_latency_seconds", d);
            buf_printf(&w->window_latency, ",window=\"%s\",percentile=\"%s\"} ", window_name[i],
                       q_name[k]);
            metrics_double(&w->window_latency, q[k] / 1000.0);
            buf_append_char(&w->window_latency, '\n');
        }
    }
}

/* Triton's counts, and for a batching deployment the histogram of rows per execution. */
#define METRICS_BATCH_BOUNDS 11 /* le = 1, 2, 4, ..., 1024 */
static void metrics_add_batching(metrics_writer *w, const metrics_deployment *d)
{
    phase_snapshot ph; /* ~4 KiB, on the stack for the call */
    phase_stats_snapshot(d->phases, &ph);
    metrics_series_start(&w->inferences, "dynserve_inference_count_total", d);
    buf_printf(&w->inferences, "} %llu\n", (unsigned long long)ph.inference_count);
    metrics_series_start(&w->executions, "dynserve_execution_count_total", d);
    buf_printf(&w->executions, "} %llu\n", (unsigned long long)ph.execution_count);
    if (!d->batching)
        return;
    uint64_t cum[METRICS_BATCH_BOUNDS + 1] = {0}, rows = 0, runs = 0;
    for (size_t i = 0; i < ph.batch_count; i++) {
        uint64_t n = ph.batch[i].batch_size, c = ph.batch[i].infer.count;
        size_t k = 0;
        while (k < METRICS_BATCH_BOUNDS && n > (UINT64_C(1) << k))
            k++;
        cum[k] += c;
        rows += n * c;
        runs += c;
    }
    for (size_t k = 1; k <= METRICS_BATCH_BOUNDS; k++)
        cum[k] += cum[k - 1];
    for (size_t k = 0; k <= METRICS_BATCH_BOUNDS; k++) {
        metrics_series_start(&w->batch_size, "dynserve_batch_size_bucket", d);
        if (k < METRICS_BATCH_BOUNDS)
            buf_printf(&w->batch_size, ",le=\"%llu\"} %llu\n", 1ULL << k,
                       (unsigned long long)cum[k]);
        else
            buf_printf(&w->batch_size, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum[k]);
    }
    metrics_series_start(&w->batch_size, "dynserve_batch_size_sum", d);
    buf_printf(&w->batch_size, "} %llu\n", (unsigned long long)rows);
    metrics_series_start(&w->batch_size, "dynserve_batch_size_count", d);
    buf_printf(&w->batch_size, "} %llu\n", (unsigned long long)runs);
}

/* What loading the deployment cost: seconds to load and to ready, RSS it added. */
static void metrics_add_load(metrics_writer *w, const metrics_deployment *d)
{
    const deploy_load_figures *l = d->load;
    metrics_series_start(&w->load_s, "dynserve_deployment_load_seconds", d);
    buf_append_str(&w->load_s, "} ");
    metrics_double(&w->load_s, (double)l->load_ns / 1e9);
    buf_append_char(&w->load_s, '\n');
    uint64_t ready = atomic_load(&l->ready_ns);
    if (ready > 0) {
        metrics_series_start(&w->ready_s, "dynserve_deployment_ready_seconds", d);
        buf_append_str(&w->ready_s, "} ");
        metrics_double(&w->ready_s, (double)ready / 1e9);
        buf_append_char(&w->ready_s, '\n');
    }
    int64_t after = atomic_load(&l->rss_after);
    if (l->rss_before >= 0 && after >= 0) {
        metrics_series_start(&w->load_bytes, "dynserve_deployment_memory_bytes", d);
        buf_printf(&w->load_bytes, "} %lld\n", (long long)(after - l->rss_before));
    }
}

void metrics_writer_init(metrics_writer *w)
{
    memset(w, 0, sizeof *w);
    snprintf(w->status[0].name, METRICS_STATUS_LEN, "active");
    snprintf(w->status[1].name, METRICS_STATUS_LEN, "failed");
    w->status_count = 2;
}

void metrics_writer_add(metrics_writer *w, const metrics_deployment *d)
{
    metrics_count_status(w, d->status);
    if (d->stats == NULL)
        return;
    stats_snapshot s;
    stats_snapshot_live(d->stats, &s);
    metrics_add_requests(&w->requests, d, &s);
    metrics_add_duration(&w->duration, d, &s);
    metrics_series_start(&w->in_flight, "dynserve_in_flight_requests", d);
    buf_printf(&w->in_flight, "} %lld\n", (long long)s.in_flight);
    if (d->traffic_weight >= 0) {
        metrics_series_start(&w->weight, "dynserve_traffic_weight", d);
        buf_printf(&w->weight, "} %d\n", d->traffic_weight);
    }
    metrics_add_windows(w, d);
    if (d->phases != NULL)
        metrics_add_batching(w, d);
    if (d->load != NULL)
        metrics_add_load(w, d);
}

/* ---- process metrics ------------------------------------------------------------------------- */

typedef struct metrics_proc {
    bool have_stat, have_start, have_fds, have_max_fds;
    double cpu_seconds, start_seconds;
    unsigned long long vsize_bytes, rss_bytes;
    long open_fds;
    unsigned long long max_fds;
} metrics_proc;

/* Seconds since the epoch at boot (/proc/stat btime); 0 when unknown. */
static unsigned long long metrics_boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    char line[512];
    unsigned long long btime = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

/* /proc/self/stat, see proc(5): fields counted from 1; the command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so parsing starts after the last ')'.
 * We need utime(14), stime(15), starttime(22), vsize(23) and rss(24). */
static void metrics_read_stat(metrics_proc *p)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return;
    char line[1024];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *at = got ? strrchr(line, ')') : NULL;
    if (at == NULL)
        return;
    unsigned long long v[25] = {0};
    at += 2; /* skip ") "; field 3 (state) is a letter */
    for (int field = 3; field <= 24 && *at; field++) {
        char *end;
        v[field] = strtoull(at, &end, 10);
        at = end == at ? at + 1 : end; /* the state letter is not a number */
        while (*at == ' ')
            at++;
    }
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (tick <= 0 || page <= 0)
        return;
    p->cpu_seconds = (double)(v[14] + v[15]) / (double)tick;
    p->vsize_bytes = v[23];
    p->rss_bytes = v[24] * (unsigned long long)page;
    p->have_stat = true;
    unsigned long long boot = metrics_boot_time();
    if (boot != 0) {
        p->start_seconds = (double)boot + (double)v[22] / (double)tick;
        p->have_start = true;
    }
}

static void metrics_read_fds(metrics_proc *p)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir != NULL) {
        long n = 0;
        for (struct dirent *e; (e = readdir(dir)) != NULL;)
            if (e->d_name[0] != '.')
                n++;
        closedir(dir);
        p->open_fds = n > 0 ? n - 1 : 0; /* not counting the descriptor of the listing itself */
        p->have_fds = true;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        p->max_fds = (unsigned long long)rl.rlim_cur;
        p->have_max_fds = true;
    }
}

/* The heap as the allocator sees it, for telling a leak (in-use grows) from fragmentation (free
 * grows) and from SQLite's page cache filling (sqlite grows, up to its cache_size). glibc only:
 * mallinfo2 (2.33+) walks every arena under its lock, microseconds per scrape. */
static void metrics_add_heap(ds_buf *b)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    metrics_family(b, "dynserve_heap_inuse_bytes", "gauge",
                   "Bytes malloc has handed out and not had back, over every arena and mmap.");
    buf_printf(b, "dynserve_heap_inuse_bytes %zu\n", mi.uordblks + mi.hblkhd);
    metrics_family(b, "dynserve_heap_free_bytes", "gauge",
                   "Bytes malloc holds from the system but has free (fragmentation, arena tops).");
    buf_printf(b, "dynserve_heap_free_bytes %zu\n", mi.fordblks);
#endif
    metrics_family(b, "dynserve_sqlite_memory_bytes", "gauge",
                   "Bytes SQLite holds (sqlite3_memory_used): page cache, bounded by cache_size.");
    buf_printf(b, "dynserve_sqlite_memory_bytes %lld\n", registry_sqlite_memory_bytes());
}

static void metrics_add_process(ds_buf *b)
{
    metrics_add_heap(b);
    metrics_proc p = {0};
    metrics_read_stat(&p);
    metrics_read_fds(&p);
    if (p.have_stat) {
        metrics_family(b, "process_cpu_seconds_total", "counter",
                       "Total user and system CPU time spent in seconds.");
        buf_append_str(b, "process_cpu_seconds_total ");
        metrics_double(b, p.cpu_seconds);
        buf_append_char(b, '\n');
        metrics_family(b, "process_resident_memory_bytes", "gauge",
                       "Resident memory size in bytes.");
        buf_printf(b, "process_resident_memory_bytes %llu\n", p.rss_bytes);
        metrics_family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        buf_printf(b, "process_virtual_memory_bytes %llu\n", p.vsize_bytes);
    }
    if (p.have_fds) {
        metrics_family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        buf_printf(b, "process_open_fds %ld\n", p.open_fds);
    }
    if (p.have_max_fds) {
        metrics_family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        buf_printf(b, "process_max_fds %llu\n", p.max_fds);
    }
    if (p.have_start) {
        metrics_family(b, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.");
        buf_append_str(b, "process_start_time_seconds ");
        metrics_double(b, p.start_seconds);
        buf_append_char(b, '\n');
    }
}

/* ---- assembling ------------------------------------------------------------------------------ */

static void metrics_append_family(ds_buf *out, ds_buf *series)
{
    if (series->failed)
        out->failed = true;
    if (series->len > 0)
        buf_append(out, series->data, series->len);
    buf_free(series);
}

void metrics_writer_finish(metrics_writer *w, ds_buf *out)
{
    metrics_family(out, "dynserve_inference_requests_total", "counter",
                   "Inference requests answered since the server started, by HTTP status.");
    metrics_append_family(out, &w->requests);
    metrics_family(out, "dynserve_inference_duration_seconds", "histogram",
                   "Inference request latency in seconds, from request start to response.");
    metrics_append_family(out, &w->duration);
    metrics_family(out, "dynserve_in_flight_requests", "gauge",
                   "Inference requests being served now.");
    metrics_append_family(out, &w->in_flight);
    metrics_family(out, "dynserve_traffic_weight", "gauge",
                   "Percent of the model's unversioned traffic routed to this version.");
    metrics_append_family(out, &w->weight);
    metrics_family(out, "dynserve_window_request_rate", "gauge",
                   "Inference requests per second over the last 1m / 5m (5m: 286-300 s).");
    metrics_append_family(out, &w->window_rate);
    metrics_family(out, "dynserve_window_error_ratio", "gauge",
                   "Share of 5xx answers among the inference requests of the last 1m / 5m.");
    metrics_append_family(out, &w->window_errors);
    metrics_family(
        out, "dynserve_window_latency_seconds", "gauge",
        "Inference latency percentiles (p50, p95, p99) over the last 1m / 5m (within 6.25%).");
    metrics_append_family(out, &w->window_latency);
    metrics_family(out, "dynserve_inference_count_total", "counter",
                   "Inferences (rows, the first dimension) since the server started.");
    metrics_append_family(out, &w->inferences);
    metrics_family(out, "dynserve_execution_count_total", "counter",
                   "Plugin executions since the server started (one per dynamic batch).");
    metrics_append_family(out, &w->executions);
    metrics_family(out, "dynserve_batch_size", "histogram",
                   "Rows per execution of a deployment with dynamic batching.");
    metrics_append_family(out, &w->batch_size);
    metrics_family(out, "dynserve_deployment_load_seconds", "gauge",
                   "Seconds the deployment took to load (dlopen + create, or the worker's start).");
    metrics_append_family(out, &w->load_s);
    metrics_family(out, "dynserve_deployment_ready_seconds", "gauge",
                   "Seconds from the deploy call to the route answering.");
    metrics_append_family(out, &w->ready_s);
    metrics_family(out, "dynserve_deployment_memory_bytes", "gauge",
                   "Process resident memory the deployment's load added (after - before).");
    metrics_append_family(out, &w->load_bytes);
    metrics_family(out, "dynserve_deployments", "gauge", "Deployments by status.");
    for (size_t i = 0; i < w->status_count; i++) {
        buf_append_str(out, "dynserve_deployments{status=\"");
        metrics_label_value(out, w->status[i].name);
        buf_printf(out, "\"} %llu\n", (unsigned long long)w->status[i].count);
    }
    metrics_add_process(out);
}

void metrics_render(ds_buf *out, const metrics_deployment *d, size_t n)
{
    metrics_writer w;
    metrics_writer_init(&w);
    for (size_t i = 0; i < n; i++)
        metrics_writer_add(&w, &d[i]);
    metrics_writer_finish(&w, out);
}

/* ---- GET /metrics -------------------------------------------------------------------------- */

static void manage_metrics_add_live(void *ud, const deploy_target *t, int weight)
{
    metrics_deployment d = {.model = t->model_name,
                            .version = t->version,
                            .status = "active",
                            .stats = t->stats,
                            .traffic_weight = weight,
                            .phases = t->phases,
                            .batching = t->batcher != NULL,
                            .load = t->load};
    metrics_writer_add(ud, &d);
}

static int manage_metrics_add_failed(void *ud, const reg_deployment *row)
{
    if (strcmp(row->status, "active") == 0)
        return 0; /* live ones were added with their stats */
    metrics_deployment d = {.model = row->model_name,
                            .version = row->version,
                            .status = row->status,
                            .stats = NULL,
                            .traffic_weight = -1};
    metrics_writer_add(ud, &d);
    return 0;
}

static void manage_metrics_rate_limited(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    buf_printf(
        ud, "dynserve_rate_limited_total{scope=\"deployment\",model=\"%s\",version=\"%s\"} %llu\n",
        t->model_name, t->version, (unsigned long long)stats_rate_limited_count(t->stats));
}

static void manage_metrics_summary(ds_buf *out, const char *name, const char *help, uint64_t ns,
                                   uint64_t count)
{
    metrics_family(out, name, "summary", help);
    buf_printf(out, "%s_sum ", name);
    metrics_double(out, (double)ns / 1e9);
    buf_printf(out, "\n%s_count %llu\n", name, (unsigned long long)count);
}

/* Loads, unloads and load failures since the server started, and what they took. */
static void manage_metrics_lifecycle(manage_ctx *s, ds_buf *out)
{
    deploy_lifecycle_counts c;
    deploy_lifecycle_get(s->deploy, &c);
    metrics_family(out, "dynserve_loads_total", "counter", "Deployments loaded.");
    buf_printf(out, "dynserve_loads_total %llu\n", (unsigned long long)c.loads);
    metrics_family(out, "dynserve_unloads_total", "counter", "Deployments unloaded (undeploys).");
    buf_printf(out, "dynserve_unloads_total %llu\n", (unsigned long long)c.unloads);
    metrics_family(out, "dynserve_load_failures_total", "counter",
                   "Deployments that failed to load, by reason.");
    for (int r = 0; r < DEPLOY_FAIL_REASONS; r++)
        buf_printf(out, "dynserve_load_failures_total{reason=\"%s\"} %llu\n",
                   deploy_fail_reason_name((deploy_fail_reason)r),
                   (unsigned long long)c.failures[r]);
    manage_metrics_summary(out, "dynserve_load_duration_seconds",
                           "Time to load a deployment (dlopen + create).", c.load_ns, c.loads);
    manage_metrics_summary(out, "dynserve_unload_duration_seconds",
                           "Time to destroy a deployment's instances and dlclose.", c.unload_ns,
                           c.unloads);
    manage_metrics_summary(out, "dynserve_drain_duration_seconds",
                           "Time from an undeploy's route removal to its last request.", c.drain_ns,
                           c.unloads);
}

/* Connection guard, framing and rate-limit counters (issue 10), after the deployment metrics. */
static void manage_metrics_limits(manage_ctx *s, ds_buf *out)
{
    http_stats h;
    http_get_stats(s->http, &h);
    buf_printf(out,
               "# HELP dynserve_http_connections Client connections open now.\n"
               "# TYPE dynserve_http_connections gauge\n"
               "dynserve_http_connections %d\n"
               "# HELP dynserve_http_connections_evicted_total Slow or idle connections closed "
               "to keep workers free.\n"
               "# TYPE dynserve_http_connections_evicted_total counter\n"
               "dynserve_http_connections_evicted_total %llu\n"
               "# HELP dynserve_http_connections_over_cap_total Connections closed because their "
               "client address held --max-conns-per-client.\n"
               "# TYPE dynserve_http_connections_over_cap_total counter\n"
               "dynserve_http_connections_over_cap_total %llu\n"
               "# HELP dynserve_http_framing_errors_total Requests refused for ambiguous framing "
               "(400, connection closed).\n"
               "# TYPE dynserve_http_framing_errors_total counter\n"
               "dynserve_http_framing_errors_total %llu\n"
               "# HELP dynserve_rate_limited_total Requests answered 429 by a rate limit.\n"
               "# TYPE dynserve_rate_limited_total counter\n"
               "dynserve_rate_limited_total{scope=\"client\"} %llu\n"
               "dynserve_rate_limited_total{scope=\"token\"} %llu\n",
               h.connections, h.evicted, h.refused, h.framing_errors, h.rate_limited,
               h.rate_limited_principal);
    deploy_foreach(s->deploy, manage_metrics_rate_limited, out);
    deploy_server_load load;
    deploy_server_load_get(s->deploy, &load);
    buf_printf(out,
               "# HELP dynserve_inference_threads Worker threads in inference calls now "
               "(admitted or queued, every deployment).\n"
               "# TYPE dynserve_inference_threads gauge\n"
               "dynserve_inference_threads %lld\n"
               "# HELP dynserve_inference_threads_max The most inference may hold: --threads "
               "minus --thread-reserve (0 = no cap).\n"
               "# TYPE dynserve_inference_threads_max gauge\n"
               "dynserve_inference_threads_max %lld\n"
               "# HELP dynserve_inference_server_saturated_total Requests answered 503 at the "
               "server-wide cap.\n"
               "# TYPE dynserve_inference_server_saturated_total counter\n"
               "dynserve_inference_server_saturated_total %llu\n",
               (long long)load.busy, (long long)load.max, (unsigned long long)load.rejected);
}

/* Which replica this is (scale-out): an info metric to join on, since every replica of a
 * cluster exposes the same series names; README "Scale-out" shows the target-label setup. The id
 * is [A-Za-z0-9_.:-] (registry-checked), so it needs no escaping. */
static void manage_metrics_replica(manage_ctx *s, ds_buf *out)
{
    buf_printf(out,
               "# HELP dynserve_replica_info The replica serving this endpoint (always 1).\n"
               "# TYPE dynserve_replica_info gauge\n"
               "dynserve_replica_info{replica=\"%s\",version=\"%s\"} 1\n",
               s->replica_id ? s->replica_id : "", DYNSERVE_VERSION);
}

void manage_metrics(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    if (strcmp(req->path, "/metrics") != 0) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        reply_error(resp, HTTP_METHOD_NOT_ALLOWED, "/metrics needs GET, not %s", req->method);
        return;
    }
    metrics_writer w;
    metrics_writer_init(&w);
    deploy_foreach(s->deploy, manage_metrics_add_live, &w);
    char err[256];
    registry_deployment_list(s->reg, manage_metrics_add_failed, &w, err, sizeof err);
    metrics_writer_finish(&w, resp->body);
    manage_metrics_lifecycle(s, resp->body);
    manage_metrics_limits(s, resp->body);
    manage_metrics_replica(s, resp->body);
    if (s->metrics_more != NULL)
        s->metrics_more(s->metrics_more_ud, resp->body);
    resp->status = HTTP_OK;
    resp->content_type = METRICS_CONTENT_TYPE;
}
