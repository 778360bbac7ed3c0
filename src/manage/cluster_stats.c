/*
 * manage cluster_stats: GET /models/stats?scope=cluster — every live replica's counters summed and
 * its latency histograms merged, per (model, version).
 *
 * Where the numbers come from: this replica's from its own tables (exact, now); every other live
 * replica's from the replica_stats rows it writes into the registry once a second
 * (cluster/cluster.c), so they are at most ~1 s old. Going through the registry rather than
 * asking each peer over HTTP keeps the answer one registry read whatever N is, needs no
 * credentials between replicas and no peer reachability, and an unreachable or dead replica
 * simply ages out (REG_REPLICA_LIVE_MS) instead of stalling the request.
 * The counts are what each replica served since it started serving the deployment (its live
 * counters), so they restart with a replica; lifetime totals stay in the per-replica view.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manage_internal.h"
#include "reply.h"
#include "stats.h"

/* One (model, version) summed over the replicas. */
typedef struct cluster_entry {
    char model[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    uint64_t requests, e4xx, e5xx;
    double latency_sum_ms;
    int64_t in_flight;
    uint64_t *buckets;  /* stats_bucket_count() merged counts */
    cJSON *per_replica; /* {"<replica>": request_count} */
} cluster_entry;

typedef struct cluster_page {
    cluster_entry *items;
    size_t count, cap;
    size_t nbuckets;
    const char *self;
    cJSON *replicas; /* ids of the replicas counted */
    bool failed;     /* out of memory */
} cluster_page;

static cluster_entry *cluster_entry_of(cluster_page *p, const char *model, const char *version)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->items[i].model, model) == 0 && strcmp(p->items[i].version, version) == 0)
            return &p->items[i];
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        cluster_entry *grown = realloc(p->items, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        p->items = grown;
        p->cap = cap;
    }
    cluster_entry *e = &p->items[p->count];
    *e = (cluster_entry){0};
    e->buckets = calloc(p->nbuckets, sizeof *e->buckets);
    e->per_replica = cJSON_CreateObject();
    if (e->buckets == NULL || e->per_replica == NULL) {
        free(e->buckets);
        cJSON_Delete(e->per_replica);
        return NULL;
    }
    snprintf(e->model, sizeof e->model, "%s", model);
    snprintf(e->version, sizeof e->version, "%s", version);
    p->count++;
    return e;
}

static void cluster_note_replica(cluster_page *p, const char *id)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, p->replicas)
    {
        if (strcmp(r->valuestring, id) == 0)
            return;
    }
    cJSON_AddItemToArray(p->replicas, cJSON_CreateString(id));
}

static void cluster_add(cluster_page *p, const char *replica, const reg_replica_stat *s,
                        const uint64_t *buckets)
{
    cluster_entry *e = cluster_entry_of(p, s->model_name, s->version);
    if (e == NULL) {
        p->failed = true;
        return;
    }
    e->requests += s->request_count;
    e->e4xx += s->error_4xx;
    e->e5xx += s->error_5xx;
    e->latency_sum_ms += s->latency_sum_ms;
    e->in_flight += s->in_flight;
    for (size_t i = 0; buckets != NULL && i < p->nbuckets; i++)
        e->buckets[i] += buckets[i];
    cJSON *n = cJSON_GetObjectItemCaseSensitive(e->per_replica, replica);
    if (n != NULL)
        cJSON_SetNumberValue(n, n->valuedouble + (double)s->request_count);
    else
        cJSON_AddNumberToObject(e->per_replica, replica, (double)s->request_count);
    cluster_note_replica(p, replica);
}

/* This replica, from its own tables. */
static void cluster_collect_self(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    cluster_page *p = ud;
    stats_snapshot snap;
    stats_snapshot_live(t->stats, &snap);
    reg_replica_stat s = {.request_count = snap.request_count,
                          .error_4xx = snap.error_4xx,
                          .error_5xx = snap.error_5xx,
                          .latency_sum_ms = snap.latency_sum_ms,
                          .in_flight = snap.in_flight};
    snprintf(s.model_name, sizeof s.model_name, "%s", t->model_name);
    snprintf(s.version, sizeof s.version, "%s", t->version);
    uint64_t *b = calloc(p->nbuckets, sizeof *b);
    if (b != NULL)
        stats_buckets(t->stats, b, p->nbuckets);
    cluster_add(p, p->self, &s, b);
    free(b);
}

/* The others, from their last report: buckets as "index:count,...". */
static int cluster_collect_peer(void *ud, const reg_replica_stat *s)
{
    cluster_page *p = ud;
    if (strcmp(s->replica_id, p->self) == 0)
        return 0; /* counted from memory */
    uint64_t *b = calloc(p->nbuckets, sizeof *b);
    for (const char *q = s->buckets; b != NULL && *q;) {
        char *end;
        unsigned long long i = strtoull(q, &end, 10);
        unsigned long long n = *end == ':' ? strtoull(end + 1, &end, 10) : 0;
        if (i < p->nbuckets)
            b[i] += n;
        q = *end == ',' ? end + 1 : end + strlen(end);
    }
    cluster_add(p, s->replica_id, s, b);
    free(b);
    return 0;
}

/* The upper bound of the bucket holding the q-quantile of the merged histogram. */
static double cluster_quantile(const uint64_t *buckets, size_t n, uint64_t total, double q)
{
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    for (size_t i = 0; i < n; i++)
        if ((seen += buckets[i]) >= want)
            return stats_bucket_upper_ms(i);
    return n ? stats_bucket_upper_ms(n - 1) : 0;
}

static cJSON *cluster_entry_json(const cluster_page *p, cluster_entry *e)
{
    uint64_t hist = 0;
    for (size_t i = 0; i < p->nbuckets; i++)
        hist += e->buckets[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_name", e->model);
    cJSON_AddStringToObject(o, "version", e->version);
    cJSON_AddNumberToObject(o, "request_count", (double)e->requests);
    cJSON_AddNumberToObject(o, "error_count", (double)(e->e4xx + e->e5xx));
    cJSON_AddNumberToObject(o, "error_4xx", (double)e->e4xx);
    cJSON_AddNumberToObject(o, "error_5xx", (double)e->e5xx);
    cJSON_AddNumberToObject(o, "avg_latency_ms",
                            e->requests ? e->latency_sum_ms / (double)e->requests : 0);
    cJSON_AddNumberToObject(o, "p50_ms", cluster_quantile(e->buckets, p->nbuckets, hist, 0.50));
    cJSON_AddNumberToObject(o, "p95_ms", cluster_quantile(e->buckets, p->nbuckets, hist, 0.95));
    cJSON_AddNumberToObject(o, "p99_ms", cluster_quantile(e->buckets, p->nbuckets, hist, 0.99));
    cJSON_AddNumberToObject(o, "in_flight", (double)e->in_flight);
    cJSON_AddItemToObject(o, "replicas", e->per_replica);
    e->per_replica = NULL; /* now the object's */
    return o;
}

void manage_stats_cluster(manage_ctx *s, http_response *resp)
{
    cluster_page p = {.nbuckets = stats_bucket_count(),
                      .self = s->replica_id ? s->replica_id : "",
                      .replicas = cJSON_CreateArray()};
    deploy_foreach(s->deploy, cluster_collect_self, &p);
    cluster_note_replica(&p, p.self);
    char err[256];
    reg_status rs = registry_replica_stats_list(s->reg, REG_REPLICA_LIVE_MS, cluster_collect_peer,
                                                &p, err, sizeof err);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "scope", "cluster");
    cJSON_AddItemToObject(root, "replicas", p.replicas);
    cJSON *list = cJSON_AddArrayToObject(root, "stats");
    for (size_t i = 0; i < p.count; i++) {
        cJSON_AddItemToArray(list, cluster_entry_json(&p, &p.items[i]));
        free(p.items[i].buckets);
        cJSON_Delete(p.items[i].per_replica);
    }
    free(p.items);
    if (rs != REG_OK || p.failed) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "%s", rs != REG_OK ? err : "out of memory");
        return;
    }
    reply_json(resp, HTTP_OK, root);
}
