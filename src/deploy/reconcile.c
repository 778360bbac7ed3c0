/*
 * deploy reconcile: make this replica's live deployments and splits (its actual state) equal the
 * registry's (the desired state), for scale-out: N replicas share one registry, a change made
 * through any of them is a registry write, and every other replica follows it here. See deploy.h
 * ("reconciling").
 *
 * One pass:
 *   1. snapshot the live set (deployment ids) — BEFORE reading the registry: a local deploy
 *      writes its row before it publishes, so anything in the snapshot is already committed and
 *      a row missing from the later read really has ended;
 *   2. read the desired set (active rows of the deployments table);
 *   3. retire every live deployment whose row has ended (deploy_retire checks the id again
 *      under the model's lifecycle lock, so a version redeployed meanwhile is left alone);
 *   4. bring up every active row not live here (deploy_bring_up: the same path as a restart);
 *   5. let every model's split follow the stored one (traffic_follow), and every live
 *      deployment's rate limit its stored options (PUT .../limits stores them).
 * It only reads the registry: the rows it follows were written by the replica that took the
 * request. A live deployment whose row is "failed" (its isolated worker gave up here or
 * elsewhere) is left as it is. A row that fails to load is retried on later passes, at most every
 * RECONCILE_RETRY_MS, and logged once per failure streak.
 *
 * Thread-safety: passes may run concurrently with requests and with management calls of any
 * replica; two passes must not run at once on one manager (reconcile_lock serializes them).
 */
#include "deploy_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* A row that failed to load is tried again after this long. */
#define RECONCILE_RETRY_MS 10000
#define RECONCILE_FAILS    64

/* Rows that failed to load recently (a small ring; guarded by reconcile_lock). */
typedef struct reconcile_fail {
    int64_t id;
    int64_t at_ms;
} reconcile_fail;

static pthread_mutex_t reconcile_lock = PTHREAD_MUTEX_INITIALIZER; /* one pass at a time */
static reconcile_fail reconcile_fails[RECONCILE_FAILS];            /* guarded by reconcile_lock */
static size_t reconcile_fail_next;                                 /* guarded by reconcile_lock */

static int64_t reconcile_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the live set ------------------------------------------------------------------------ */

typedef struct live_entry {
    int64_t id;
    char model[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
} live_entry;

typedef struct live_set {
    live_entry *items;
    size_t count, cap;
    bool failed; /* out of memory: the set is incomplete */
} live_set;

static void live_collect(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    live_set *l = ud;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        live_entry *grown = realloc(l->items, cap * sizeof *grown);
        if (grown == NULL) {
            l->failed = true;
            return;
        }
        l->items = grown;
        l->cap = cap;
    }
    live_entry *e = &l->items[l->count++];
    e->id = t->deployment_id;
    snprintf(e->model, sizeof e->model, "%s", t->model_name);
    snprintf(e->version, sizeof e->version, "%s", t->version);
}

size_t deploy_live_ids(deploy_manager *m, int64_t **ids)
{
    live_set l = {0};
    deploy_foreach(m, live_collect, &l);
    *ids = l.count ? malloc(l.count * sizeof **ids) : NULL;
    size_t n = *ids ? l.count : 0;
    for (size_t i = 0; i < n; i++)
        (*ids)[i] = l.items[i].id;
    free(l.items);
    return n;
}

/* ---- one pass ------------------------------------------------------------------------------ */

static const reg_deployment *row_by_id(const deploy_row_list *rows, int64_t id)
{
    for (size_t i = 0; i < rows->count; i++)
        if (rows->rows[i].id == id)
            return &rows->rows[i];
    return NULL;
}

static bool live_has(const live_set *l, int64_t id)
{
    for (size_t i = 0; i < l->count; i++)
        if (l->items[i].id == id)
            return true;
    return false;
}

/* The row failed to load within RECONCILE_RETRY_MS: skip it this pass. */
static bool reconcile_backing_off(int64_t id, int64_t now)
{
    for (size_t i = 0; i < RECONCILE_FAILS; i++)
        if (reconcile_fails[i].id == id)
            return now - reconcile_fails[i].at_ms < RECONCILE_RETRY_MS;
    return false;
}

static bool reconcile_note_failure(int64_t id, int64_t now)
{
    for (size_t i = 0; i < RECONCILE_FAILS; i++)
        if (reconcile_fails[i].id == id) {
            reconcile_fails[i].at_ms = now;
            return false; /* already logged */
        }
    reconcile_fails[reconcile_fail_next] = (reconcile_fail){id, now};
    reconcile_fail_next = (reconcile_fail_next + 1) % RECONCILE_FAILS;
    return true;
}

static void reconcile_forget_failure(int64_t id)
{
    for (size_t i = 0; i < RECONCILE_FAILS; i++)
        if (reconcile_fails[i].id == id)
            reconcile_fails[i] = (reconcile_fail){0};
}

static void reconcile_add(deploy_manager *m, const reg_deployment *row, deploy_reconcile_report *r)
{
    int64_t now = reconcile_now_ms();
    if (reconcile_backing_off(row->id, now))
        return;
    int slot = deploy_transit_begin(m, row->model_name, row->version, DEPLOY_STATE_LOADING);
    deploy_result res = deploy_bring_up(m, row);
    deploy_transit_end(m, slot);
    if (res.code == DEPLOY_OK) {
        reconcile_forget_failure(row->id);
        log_info("reconcile: serving %s version %s (deployment %lld)", row->model_name,
                 row->version, (long long)row->id);
        r->added++;
    } else if (res.code != DEPLOY_CONFLICT) { /* CONFLICT: a local change got there first */
        if (reconcile_note_failure(row->id, now))
            log_error("reconcile: cannot serve %s version %s (deployment %lld): %s",
                      row->model_name, row->version, (long long)row->id, res.message);
        r->failed++;
    }
}

/* Every model entry that has something live, for the splits. */
static void reconcile_splits(deploy_manager *m, deploy_reconcile_report *r)
{
    live_set now = {0};
    deploy_foreach(m, live_collect, &now);
    for (size_t i = 0; i < now.count; i++) {
        bool seen = false; /* each model once */
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(now.items[j].model, now.items[i].model) == 0;
        deploy_model *dm = seen ? NULL : deploy_model_find(m, now.items[i].model);
        if (dm != NULL && traffic_follow(m, dm))
            r->splits++;
    }
    free(now.items);
}

/* A live deployment's rate limit follows its row's options (changed on another replica). */
static void reconcile_limits(deploy_manager *m, const deploy_row_list *rows, const live_set *live,
                             deploy_reconcile_report *r)
{
    for (size_t i = 0; i < rows->count; i++) {
        const reg_deployment *row = &rows->rows[i];
        ds_deploy_options opts;
        rl_limit now;
        char err[256];
        if (!live_has(live, row->id) ||
            deploy_options_parse_text(row->options, &opts, err, sizeof err) != 0 ||
            !deploy_get_rate_limit(m, row->model_name, row->version, &now))
            continue;
        bool off = opts.rate_limit.rps <= 0 && now.rps <= 0;
        if (!off && (opts.rate_limit.rps != now.rps || opts.rate_limit.burst != now.burst)) {
            deploy_set_rate_limit(m, row->model_name, row->version, opts.rate_limit);
            r->limits++;
        }
    }
}

int deploy_reconcile(deploy_manager *m, deploy_reconcile_report *report)
{
    deploy_reconcile_report r = {0};
    live_set live = {0};
    deploy_row_list rows = {0};
    char err[256];
    pthread_mutex_lock(&reconcile_lock);
    deploy_foreach(m, live_collect, &live); /* 1: before the registry read (see the top) */
    reg_status rs =
        registry_deployment_list(m->env.reg, deploy_collect_rows, &rows, err, sizeof err);
    int rc = 0;
    if (rs != REG_OK || live.failed) {
        log_warn("reconcile: reading the desired state: %s", rs != REG_OK ? err : "out of memory");
        rc = -1;
    } else {
        for (size_t i = 0; i < live.count; i++) /* 3: ended rows */
            if (row_by_id(&rows, live.items[i].id) == NULL &&
                deploy_retire(m, live.items[i].model, live.items[i].version, live.items[i].id)) {
                log_info("reconcile: %s version %s (deployment %lld) was undeployed elsewhere",
                         live.items[i].model, live.items[i].version, (long long)live.items[i].id);
                r.removed++;
            }
        for (size_t i = 0; i < rows.count; i++) /* 4: active rows not live */
            if (strcmp(rows.rows[i].status, "active") == 0 && !live_has(&live, rows.rows[i].id))
                reconcile_add(m, &rows.rows[i], &r);
        reconcile_splits(m, &r); /* 5 */
        reconcile_limits(m, &rows, &live, &r);
    }
    pthread_mutex_unlock(&reconcile_lock);
    deploy_row_list_free(&rows);
    free(live.items);
    if (report != NULL)
        *report = r;
    return rc;
}
