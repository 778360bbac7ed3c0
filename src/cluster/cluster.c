/*
 * cluster: the replica's background thread — reconcile, heartbeat, report. See cluster.h.
 *
 * The loop wakes every poll_ms, or at once when a NOTIFY on REG_CHANGE_CHANNEL arrives (a shared
 * registry: PostgreSQL; the listener has a connection of its own, so waiting on it never holds
 * the registry handle). A pass runs when a notification came, when the registry's change
 * sequence moved since the last pass began (the sequence is read BEFORE the pass, so a change
 * committed during a pass is seen by the next one) or when full_ms passed since the last pass.
 * After each wake the served set is compared with the last one reported and written when it
 * differs; every heartbeat_ms the heartbeat and the stats report go out. Registry failures are
 * logged once per streak and retried on the next wake; they never stop the loop.
 */
#include "cluster.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "deadline.h"
#include "log.h"
#include "stats.h"

struct cluster {
    registry *reg;
    deploy_manager *deploy;
    char id[REG_REPLICA_ID_MAX + 1];
    char address[REG_ADDRESS_MAX + 1];
    char version[32];
    int poll_ms, full_ms, heartbeat_ms;
    pthread_t thread;
    registry_listener *listener; /* NULL unless the registry is shared (PostgreSQL) */
    pthread_mutex_t mu;          /* guards stop */
    pthread_cond_t cv;           /* signalled by cluster_stop */
    bool stop;
    /* The rest belongs to the thread alone. */
    int64_t *served; /* last reported serving set, sorted */
    size_t served_count;
    bool served_known;  /* served was written at least once */
    bool failing;       /* the last registry write failed (logged once) */
    uint64_t stats_sum; /* sum of the request counts (+ in flight) last reported */
    size_t stats_count; /* rows last reported */
};

static int64_t cluster_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cluster_warn(cluster *c, reg_status rs, const char *what, const char *err)
{
    if (rs == REG_OK || c->failing)
        return;
    c->failing = true;
    log_warn("cluster: %s: %s (retrying)", what, err);
}

/* ---- what this replica serves --------------------------------------------------------------- */

static int cluster_cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void cluster_report_served(cluster *c, bool force)
{
    int64_t *ids = NULL;
    size_t n = deploy_live_ids(c->deploy, &ids);
    if (n > 1) /* ids is NULL when nothing is live: qsort(NULL, 0) is undefined (UBSan) */
        qsort(ids, n, sizeof *ids, cluster_cmp_id);
    bool same = c->served_known && n == c->served_count &&
                (n == 0 || memcmp(ids, c->served, n * sizeof *ids) == 0);
    if (same && !force) {
        free(ids);
        return;
    }
    char err[256];
    reg_status rs = registry_replica_serving_set(c->reg, c->id, ids, n, err, sizeof err);
    cluster_warn(c, rs, "reporting the served deployments", err);
    if (rs != REG_OK) {
        free(ids);
        return;
    }
    c->failing = false;
    free(c->served);
    c->served = ids;
    c->served_count = n;
    c->served_known = true;
}

/* ---- stats report ---------------------------------------------------------------------------- */

typedef struct stats_rows {
    reg_replica_stat *rows;
    ds_buf *buckets; /* rows[i].buckets points into buckets[i] */
    size_t count, cap;
    uint64_t sum;
    bool failed;
} stats_rows;

/* Sparse "index:count,..." of the latency histogram. */
static void cluster_buckets_text(const ds_stats *s, ds_buf *out)
{
    size_t n = stats_bucket_count();
    uint64_t *counts = calloc(n, sizeof *counts);
    if (counts == NULL) {
        out->failed = true;
        return;
    }
    stats_buckets(s, counts, n);
    bool first = true;
    for (size_t i = 0; i < n; i++)
        if (counts[i] > 0) {
            buf_printf(out, first ? "%zu:%llu" : ",%zu:%llu", i, (unsigned long long)counts[i]);
            first = false;
        }
    free(counts);
}

static void cluster_collect_stats(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    stats_rows *r = ud;
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        reg_replica_stat *rows = realloc(r->rows, cap * sizeof *rows);
        if (rows != NULL)
            r->rows = rows;
        ds_buf *bufs = rows ? realloc(r->buckets, cap * sizeof *bufs) : NULL;
        if (bufs == NULL) {
            r->failed = true;
            return;
        }
        r->buckets = bufs;
        r->cap = cap;
    }
    stats_snapshot s;
    stats_snapshot_live(t->stats, &s); /* this process's requests, like its histogram */
    ds_buf *b = &r->buckets[r->count];
    *b = (ds_buf)DS_BUF_INIT;
    cluster_buckets_text(t->stats, b);
    reg_replica_stat *row = &r->rows[r->count++];
    *row = (reg_replica_stat){.deployment_id = t->deployment_id,
                              .request_count = s.request_count,
                              .error_4xx = s.error_4xx,
                              .error_5xx = s.error_5xx,
                              .latency_sum_ms = s.latency_sum_ms,
                              .in_flight = s.in_flight};
    snprintf(row->model_name, sizeof row->model_name, "%s", t->model_name);
    snprintf(row->version, sizeof row->version, "%s", t->version);
    r->failed |= b->failed;
    r->sum += s.request_count + (uint64_t)s.in_flight;
}

static void cluster_report_stats(cluster *c)
{
    stats_rows r = {0};
    deploy_foreach(c->deploy, cluster_collect_stats, &r);
    for (size_t i = 0; i < r.count; i++)
        r.rows[i].buckets = r.buckets[i].data ? r.buckets[i].data : "";
    /* Same rows, same counts: nothing to write (an idle replica does not rewrite its stats). */
    if (!r.failed && (r.sum != c->stats_sum || r.count != c->stats_count)) {
        char err[256];
        reg_status rs = registry_replica_stats_set(c->reg, c->id, r.rows, r.count, err, sizeof err);
        cluster_warn(c, rs, "reporting stats", err);
        if (rs == REG_OK) {
            c->stats_sum = r.sum;
            c->stats_count = r.count;
        }
    }
    for (size_t i = 0; i < r.count; i++)
        buf_free(&r.buckets[i]);
    free(r.buckets);
    free(r.rows);
}

/* ---- the loop -------------------------------------------------------------------------------- */

static bool cluster_heartbeat(cluster *c, bool starting, char *err, size_t errlen)
{
    reg_status rs =
        registry_replica_heartbeat(c->reg, c->id, c->address, c->version, starting, err, errlen);
    cluster_warn(c, rs, "heartbeat", err);
    if (rs == REG_OK)
        c->failing = false;
    return rs == REG_OK;
}

static bool cluster_stopping(cluster *c)
{
    pthread_mutex_lock(&c->mu);
    bool stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    return stop;
}

/* Wait up to ms for a change notification: true when one (or a broken listener connection,
 * which may have lost some) says to reconcile now. Every queued notification is taken, since
 * one pass covers them all. */
static bool cluster_wait_change(cluster *c, int ms)
{
    char payload[64], err[256];
    reg_status rs =
        registry_listener_wait(c->listener, ms, payload, sizeof payload, err, sizeof err);
    if (rs == REG_NOT_FOUND)
        return false;
    if (rs != REG_OK) {
        cluster_warn(c, rs, "listening for changes", err);
        return true;
    }
    while (registry_listener_wait(c->listener, 0, payload, sizeof payload, err, sizeof err) ==
           REG_OK)
        ;
    return true;
}

/* Sleep up to ms; true when asked to stop. */
static bool cluster_sleep(cluster *c, int ms)
{
    struct timespec ts = ds_deadline_after_ms(ms);
    pthread_mutex_lock(&c->mu);
    while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
        ;
    bool stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static void *cluster_main(void *arg)
{
    cluster *c = arg;
    int64_t seen = -1, last_pass = 0, last_beat = cluster_now_ms();
    char err[256];
    for (;;) {
        bool notified = false;
        if (c->listener != NULL)
            notified = cluster_wait_change(c, c->poll_ms);
        if (c->listener != NULL ? cluster_stopping(c) : cluster_sleep(c, c->poll_ms))
            break;
        int64_t now = cluster_now_ms(), seq = -1;
        reg_status rs = registry_change_seq(c->reg, &seq, err, sizeof err);
        cluster_warn(c, rs, "reading the change sequence", err);
        if (notified || (rs == REG_OK && seq != seen) || now - last_pass >= c->full_ms) {
            deploy_reconcile_report rep;
            if (deploy_reconcile(c->deploy, &rep) == 0 && rs == REG_OK)
                seen = seq;
            last_pass = now;
        }
        bool beat = now - last_beat >= c->heartbeat_ms;
        if (beat && cluster_heartbeat(c, false, err, sizeof err))
            last_beat = now;
        cluster_report_served(c, false);
        if (beat)
            cluster_report_stats(c);
    }
    return NULL;
}

/* Everything cluster_start made, once the thread is not running (never started or joined). */
static void cluster_free(cluster *c)
{
    if (c->listener != NULL)
        registry_listener_close(c->listener);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->served);
    free(c);
}

int cluster_start(const cluster_config *cfg, cluster **out, char *err, size_t errlen)
{
    cluster *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->reg = cfg->reg;
    c->deploy = cfg->deploy;
    snprintf(c->id, sizeof c->id, "%s", cfg->replica_id);
    snprintf(c->address, sizeof c->address, "%s", cfg->address);
    snprintf(c->version, sizeof c->version, "%s", cfg->version);
    c->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : 100;
    c->full_ms = cfg->full_ms > 0 ? cfg->full_ms : 2000;
    c->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 1000;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    reg_status rs = REG_OK;
    if (registry_is_shared(c->reg))
        rs = registry_listen(c->reg, REG_CHANGE_CHANNEL, &c->listener, err, errlen);
    if (rs == REG_OK)
        rs = registry_replica_heartbeat(c->reg, c->id, c->address, c->version, true, err, errlen);
    if (rs == REG_OK)
        cluster_report_served(c, true);
    if (rs != REG_OK || pthread_create(&c->thread, NULL, cluster_main, c) != 0) {
        if (rs == REG_OK)
            snprintf(err, errlen, "cannot start the cluster thread");
        cluster_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void cluster_stop(cluster *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    char err[256];
    if (registry_replica_remove(c->reg, c->id, err, sizeof err) != REG_OK)
        log_warn("cluster: removing replica %s: %s", c->id, err);
    cluster_free(c);
}

const char *cluster_replica_id(const cluster *c)
{
    return c->id;
}
