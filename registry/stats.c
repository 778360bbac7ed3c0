/* registry stats: table deployment_stats (save, save many, load). See registry.h. */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* ---- lifetime stats -------------------------------------------------------------------- */

struct stats_args {
    int64_t deployment_id;
    const reg_stats *in; /* save */
    reg_stats *out;      /* load */
};

/* SQLite integers are signed 64-bit; refuse what would wrap instead of storing garbage. */
static reg_status check_stats(const reg_stats *s, char *err, size_t errlen)
{
    if (!s)
        return reg__fail(err, errlen, REG_INVALID, "stats pointer is NULL");
    if (s->request_count > INT64_MAX || s->error_4xx > INT64_MAX || s->error_5xx > INT64_MAX)
        return reg__fail(err, errlen, REG_INVALID, "stats counter exceeds 2^63-1");
    if (!isfinite(s->latency_sum_ms) || s->latency_sum_ms < 0)
        return reg__fail(err, errlen, REG_INVALID, "latency_sum_ms must be finite and >= 0");
    return REG_OK;
}

static reg_status check_deployment_id(const registry *r, int64_t id, char *err, size_t errlen)
{
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && id < 1)
        st = reg__fail(err, errlen, REG_INVALID, "deployment id %lld is not valid", (long long)id);
    return st;
}

static reg_status stats_save_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct stats_args *a = arg;
    const reg_stats *s = a->in;
    int64_t id = 0;
    bool found = false;
    reg_status st = reg__query_int(r, ST_DEPLOYMENT_GET, "find deployment", &id, &found, err,
                                   errlen, "i", a->deployment_id);
    if (st == REG_OK && !found)
        st = reg__fail(err, errlen, REG_NOT_FOUND, "no deployment %lld",
                       (long long)a->deployment_id);
    if (st != REG_OK)
        return st;
    int rc = reg__run(r, ST_STATS_SAVE, "iiiidi", a->deployment_id, (int64_t)s->request_count,
                      (int64_t)s->error_4xx, (int64_t)s->error_5xx, s->latency_sum_ms,
                      s->last_request_unix_ms > 0 ? s->last_request_unix_ms : 0);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "save stats");
}

reg_status registry_stats_save(registry *r, int64_t deployment_id, const reg_stats *s, char *err,
                               size_t errlen)
{
    struct stats_args a = {deployment_id, s, NULL};
    reg_status st = check_deployment_id(r, deployment_id, err, errlen);
    if (st == REG_OK)
        st = check_stats(s, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, stats_save_tx, &a, err, errlen) : st;
}

struct stats_batch_args {
    const int64_t *ids;
    const reg_stats *stats;
    size_t count;
};

static reg_status stats_save_many_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct stats_batch_args *b = arg;
    for (size_t i = 0; i < b->count; i++) {
        struct stats_args a = {b->ids[i], &b->stats[i], NULL};
        reg_status st = stats_save_tx(r, &a, err, errlen);
        if (st != REG_OK)
            return st;
    }
    return REG_OK;
}

reg_status registry_stats_save_many(registry *r, const int64_t *deployment_ids,
                                    const reg_stats *stats, size_t count, char *err, size_t errlen)
{
    for (size_t i = 0; i < count; i++) {
        reg_status st = check_deployment_id(r, deployment_ids[i], err, errlen);
        if (st == REG_OK)
            st = check_stats(&stats[i], err, errlen);
        if (st != REG_OK)
            return st;
    }
    struct stats_batch_args b = {deployment_ids, stats, count};
    return count == 0 ? REG_OK : reg__locked_tx(r, stats_save_many_tx, &b, err, errlen);
}

static reg_status stats_load_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct stats_args *a = arg;
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_STATS_LOAD, &st, "i", a->deployment_id);
    if (rc == DB_DONE)
        return REG_OK; /* never saved: the zeros set by the caller */
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "load stats");
    a->out->request_count = (uint64_t)reg__col_int64(st, 0);
    a->out->error_4xx = (uint64_t)reg__col_int64(st, 1);
    a->out->error_5xx = (uint64_t)reg__col_int64(st, 2);
    a->out->latency_sum_ms = reg__col_double(st, 3);
    a->out->last_request_unix_ms = reg__col_int64(st, 4);
    reg__stmt_done(st);
    return REG_OK;
}

reg_status registry_stats_load(registry *r, int64_t deployment_id, reg_stats *out, char *err,
                               size_t errlen)
{
    struct stats_args a = {deployment_id, NULL, out};
    if (out)
        memset(out, 0, sizeof *out);
    reg_status st = check_deployment_id(r, deployment_id, err, errlen);
    if (st == REG_OK && !out)
        st = reg__fail(err, errlen, REG_INVALID, "stats out pointer is NULL");
    return st == REG_OK ? reg__locked_read(r, stats_load_read, &a, err, errlen) : st;
}

static int stats_version_row(reg_stmt *st, void *arg)
{
    struct list_ctx *c = arg;
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
    reg__copy_column(model, sizeof model, st, 0);
    reg__copy_column(version, sizeof version, st, 1);
    reg_stats t = {.request_count = (uint64_t)reg__col_int64(st, 2),
                   .error_4xx = (uint64_t)reg__col_int64(st, 3),
                   .error_5xx = (uint64_t)reg__col_int64(st, 4),
                   .latency_sum_ms = reg__col_double(st, 5),
                   .last_request_unix_ms = reg__col_int64(st, 6)};
    return c->version_stats_fn(c->ud, model, version, &t) ? 1 : 0;
}

static reg_status stats_by_version_read(registry *r, void *arg, char *err, size_t errlen)
{
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_STATS_ENDED_BY_VERSION, &st, "");
    return reg__each_row(r, st, rc, stats_version_row, arg, "sum stats", err, errlen);
}

reg_status registry_stats_ended_by_version(registry *r, reg_version_stats_fn fn, void *ud,
                                           char *err, size_t errlen)
{
    struct list_ctx c = {.version_stats_fn = fn, .ud = ud};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && fn == NULL)
        st = reg__fail(err, errlen, REG_INVALID, "registry_stats_ended_by_version: fn is NULL");
    return st == REG_OK ? reg__locked_read(r, stats_by_version_read, &c, err, errlen) : st;
}
