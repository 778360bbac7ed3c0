/*
 * registry replicas: tables replicas, replica_deployments and replica_stats (migration 0007) and
 * the desired state's generation. See registry.h ("replicas").
 *
 * Each replica writes only its own rows (heartbeat, what it serves, its stats) and reads
 * everyone's; a reported set is replaced whole in one transaction, so a reader sees a replica's
 * old set or its new one, never half of each.
 */
#include "registry_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- validation --------------------------------------------------------------------------- */

static reg_status check_replica_id(const char *id, char *err, size_t errlen)
{
    size_t n = id ? strnlen(id, REG_REPLICA_ID_MAX + 1) : 0;
    bool ok = n >= 1 && n <= REG_REPLICA_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
             (id[i] >= '0' && id[i] <= '9') || strchr("_.:-", id[i]) != NULL;
    if (ok)
        return REG_OK;
    return reg__fail(err, errlen, REG_INVALID,
                     "invalid replica id '%.80s': want 1-%d of "
                     "[A-Za-z0-9_.:-]",
                     id ? id : "(null)", REG_REPLICA_ID_MAX);
}

/* Printable ASCII without spaces, at most max bytes. */
static reg_status check_token_text(const char *what, const char *s, size_t max, char *err,
                                   size_t errlen)
{
    size_t n = s ? strnlen(s, max + 1) : max + 1;
    bool ok = n <= max;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > ' ' && s[i] < 0x7f;
    return ok ? REG_OK
              : reg__fail(err, errlen, REG_INVALID,
                          "invalid replica %s: want at most %zu "
                          "printable characters without spaces",
                          what, max);
}

/* "index:count,..." with decimal numbers only. */
static bool buckets_valid(const char *b)
{
    if (b == NULL || strnlen(b, 65537) > 65536)
        return false;
    bool want_digit = true;
    for (const char *p = b; *p; p++) {
        if (*p >= '0' && *p <= '9')
            want_digit = false;
        else if ((*p == ':' || *p == ',') && !want_digit)
            want_digit = true;
        else
            return false;
    }
    return !want_digit || *b == '\0';
}

static reg_status check_stat_row(const reg_replica_stat *s, char *err, size_t errlen)
{
    reg_status st = reg__check_name("model name", s->model_name, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("version", s->version, err, errlen);
    if (st != REG_OK)
        return st;
    if (s->deployment_id < 1 || s->request_count > INT64_MAX || s->error_4xx > INT64_MAX ||
        s->error_5xx > INT64_MAX || !isfinite(s->latency_sum_ms) || s->latency_sum_ms < 0)
        return reg__fail(err, errlen, REG_INVALID, "replica stats of %s version %s: bad counter",
                         s->model_name, s->version);
    if (!buckets_valid(s->buckets))
        return reg__fail(err, errlen, REG_INVALID,
                         "replica stats buckets: want \"index:count,...\" up to 64 KiB");
    return REG_OK;
}

/* REG_NOT_FOUND unless replica `id` has a heartbeat row. Lock held. */
static reg_status replica_must_exist(registry *r, const char *id, char *err, size_t errlen)
{
    int64_t n = 0;
    bool found = false;
    reg_status st =
        reg__query_int(r, ST_REPLICA_EXISTS, "find replica", &n, &found, err, errlen, "s", id);
    if (st == REG_OK && n == 0)
        st = reg__fail(err, errlen, REG_NOT_FOUND, "no replica %s (heartbeat first)", id);
    return st;
}

/* ---- heartbeat ----------------------------------------------------------------------------- */

struct heartbeat_args {
    const char *id, *address, *version;
    bool starting;
};

static reg_status heartbeat_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct heartbeat_args *a = arg;
    int rc = DB_DONE;
    if (a->starting) { /* a restarted replica reports afresh */
        rc = reg__run(r, ST_REPLICA_FORGET_SERVING, "s", a->id);
        if (rc == DB_DONE)
            rc = reg__run(r, ST_REPLICA_FORGET_STATS, "s", a->id);
    }
    if (rc == DB_DONE)
        rc = reg__run(r, ST_REPLICA_HEARTBEAT, "sssi", a->id, a->address, a->version,
                      (int64_t)a->starting);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "replica heartbeat");
}

reg_status registry_replica_heartbeat(registry *r, const char *id, const char *address,
                                      const char *version, bool starting, char *err, size_t errlen)
{
    struct heartbeat_args a = {id, address, version, starting};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_replica_id(id, err, errlen);
    if (st == REG_OK)
        st = check_token_text("address", address, REG_ADDRESS_MAX, err, errlen);
    if (st == REG_OK)
        st = check_token_text("version", version, 31, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, heartbeat_tx, &a, err, errlen) : st;
}

static reg_status remove_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const char *id = arg;
    int rc = reg__run(r, ST_REPLICA_FORGET_SERVING, "s", id);
    if (rc == DB_DONE)
        rc = reg__run(r, ST_REPLICA_FORGET_STATS, "s", id);
    if (rc == DB_DONE)
        rc = reg__run(r, ST_REPLICA_REMOVE, "s", id);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "remove replica");
}

reg_status registry_replica_remove(registry *r, const char *id, char *err, size_t errlen)
{
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_replica_id(id, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, remove_tx, (void *)id, err, errlen) : st;
}

/* ---- listing -------------------------------------------------------------------------------- */

struct replica_list_ctx {
    int64_t max_age_ms;
    reg_replica_fn replica_fn;
    reg_serving_fn serving_fn;
    reg_replica_stat_fn stat_fn;
    void *ud;
};

static int replica_row(reg_stmt *st, void *arg)
{
    const struct replica_list_ctx *c = arg;
    reg_replica rep = {0};
    reg__copy_column(rep.id, sizeof rep.id, st, 0);
    reg__copy_column(rep.address, sizeof rep.address, st, 1);
    reg__copy_column(rep.version, sizeof rep.version, st, 2);
    reg__copy_column(rep.started_at, sizeof rep.started_at, st, 3);
    rep.age_ms = reg__col_int64(st, 4);
    return c->replica_fn(c->ud, &rep) ? 1 : 0;
}

static int serving_row(reg_stmt *st, void *arg)
{
    const struct replica_list_ctx *c = arg;
    char id[REG_REPLICA_ID_MAX + 1];
    reg__copy_column(id, sizeof id, st, 1);
    return c->serving_fn(c->ud, reg__col_int64(st, 0), id) ? 1 : 0;
}

static int stat_row(reg_stmt *st, void *arg)
{
    const struct replica_list_ctx *c = arg;
    reg_replica_stat s = {0};
    reg__copy_column(s.replica_id, sizeof s.replica_id, st, 0);
    s.deployment_id = reg__col_int64(st, 1);
    reg__copy_column(s.model_name, sizeof s.model_name, st, 2);
    reg__copy_column(s.version, sizeof s.version, st, 3);
    s.request_count = (uint64_t)reg__col_int64(st, 4);
    s.error_4xx = (uint64_t)reg__col_int64(st, 5);
    s.error_5xx = (uint64_t)reg__col_int64(st, 6);
    s.latency_sum_ms = reg__col_double(st, 7);
    s.in_flight = reg__col_int64(st, 8);
    /* Borrowed from SQLite: valid until the next step, i.e. for the callback only. */
    s.buckets = (const char *)reg__col_text(st, 9);
    if (s.buckets == NULL)
        return -1;
    return c->stat_fn(c->ud, &s) ? 1 : 0;
}

static reg_status replica_list_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct replica_list_ctx *c = arg;
    reg_stmt *st = NULL;
    enum stmt_id id = c->replica_fn   ? ST_REPLICA_LIST
                      : c->serving_fn ? ST_REPLICA_SERVING_LIST
                                      : ST_REPLICA_STATS_LIST;
    row_fn fn = c->replica_fn ? replica_row : c->serving_fn ? serving_row : stat_row;
    int rc = reg__query(r, id, &st, "i", c->max_age_ms);
    return reg__each_row(r, st, rc, fn, c, "list replicas", err, errlen);
}

static reg_status replica_list(registry *r, struct replica_list_ctx *c, char *err, size_t errlen)
{
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && !c->replica_fn && !c->serving_fn && !c->stat_fn)
        st = reg__fail(err, errlen, REG_INVALID, "registry replica list: fn is NULL");
    return st == REG_OK ? reg__locked_read(r, replica_list_read, c, err, errlen) : st;
}

reg_status registry_replica_list(registry *r, int64_t max_age_ms, reg_replica_fn fn, void *ud,
                                 char *err, size_t errlen)
{
    struct replica_list_ctx c = {.max_age_ms = max_age_ms, .replica_fn = fn, .ud = ud};
    return fn ? replica_list(r, &c, err, errlen)
              : reg__fail(err, errlen, REG_INVALID, "registry_replica_list: fn is NULL");
}

reg_status registry_replica_serving_list(registry *r, int64_t max_age_ms, reg_serving_fn fn,
                                         void *ud, char *err, size_t errlen)
{
    struct replica_list_ctx c = {.max_age_ms = max_age_ms, .serving_fn = fn, .ud = ud};
    return fn ? replica_list(r, &c, err, errlen)
              : reg__fail(err, errlen, REG_INVALID, "registry_replica_serving_list: fn is NULL");
}

reg_status registry_replica_stats_list(registry *r, int64_t max_age_ms, reg_replica_stat_fn fn,
                                       void *ud, char *err, size_t errlen)
{
    struct replica_list_ctx c = {.max_age_ms = max_age_ms, .stat_fn = fn, .ud = ud};
    return fn ? replica_list(r, &c, err, errlen)
              : reg__fail(err, errlen, REG_INVALID, "registry_replica_stats_list: fn is NULL");
}

/* ---- what a replica reports ----------------------------------------------------------------- */

struct report_args {
    const char *id;
    const int64_t *ids;           /* serving set */
    const reg_replica_stat *rows; /* stats */
    size_t count;
};

static reg_status serving_set_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct report_args *a = arg;
    reg_status st = replica_must_exist(r, a->id, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = reg__run(r, ST_REPLICA_FORGET_SERVING, "s", a->id);
    for (size_t i = 0; i < a->count && rc == DB_DONE; i++)
        rc = reg__run(r, ST_REPLICA_SERVING_INSERT, "si", a->id, a->ids[i]);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "record serving set");
}

reg_status registry_replica_serving_set(registry *r, const char *id, const int64_t *deployment_ids,
                                        size_t count, char *err, size_t errlen)
{
    struct report_args a = {.id = id, .ids = deployment_ids, .count = count};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_replica_id(id, err, errlen);
    for (size_t i = 0; st == REG_OK && i < count; i++)
        if (deployment_ids[i] < 1)
            st = reg__fail(err, errlen, REG_INVALID, "deployment id %lld is not valid",
                           (long long)deployment_ids[i]);
    return st == REG_OK ? reg__locked_tx(r, serving_set_tx, &a, err, errlen) : st;
}

static reg_status stats_set_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct report_args *a = arg;
    reg_status st = replica_must_exist(r, a->id, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = reg__run(r, ST_REPLICA_FORGET_STATS, "s", a->id);
    for (size_t i = 0; i < a->count && rc == DB_DONE; i++) {
        const reg_replica_stat *s = &a->rows[i];
        rc = reg__run(r, ST_REPLICA_STATS_INSERT, "sissiiidis", a->id, s->deployment_id,
                      s->model_name, s->version, (int64_t)s->request_count, (int64_t)s->error_4xx,
                      (int64_t)s->error_5xx, s->latency_sum_ms, s->in_flight, s->buckets);
    }
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "record replica stats");
}

reg_status registry_replica_stats_set(registry *r, const char *id, const reg_replica_stat *rows,
                                      size_t count, char *err, size_t errlen)
{
    struct report_args a = {.id = id, .rows = rows, .count = count};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_replica_id(id, err, errlen);
    for (size_t i = 0; st == REG_OK && i < count; i++)
        st = check_stat_row(&rows[i], err, errlen);
    return st == REG_OK ? reg__locked_tx(r, stats_set_tx, &a, err, errlen) : st;
}

/* ---- the desired state's generation --------------------------------------------------------- */

struct seq_args {
    int64_t *seq;
};

static reg_status change_seq_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct seq_args *a = arg;
    bool found = false;
    return reg__query_int(r, ST_CHANGE_SEQ, "read change sequence", a->seq, &found, err, errlen,
                          "");
}

reg_status registry_change_seq(registry *r, int64_t *seq, char *err, size_t errlen)
{
    struct seq_args a = {seq};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && seq == NULL)
        st = reg__fail(err, errlen, REG_INVALID, "registry_change_seq: seq is NULL");
    return st == REG_OK ? reg__locked_read(r, change_seq_read, &a, err, errlen) : st;
}
