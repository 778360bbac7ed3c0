/* registry events: table events (add, list). See registry.h. */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* ---- audit context ----------------------------------------------------------------------- */

/* Per thread, so no lock: each HTTP worker sets its own before serving a request. */
static _Thread_local char tl_actor[129];
static _Thread_local char tl_addr[65];

void registry_audit_set(const char *actor, const char *client_addr)
{
    snprintf(tl_actor, sizeof tl_actor, "%s", actor ? actor : "");
    snprintf(tl_addr, sizeof tl_addr, "%s", client_addr ? client_addr : "");
}

const char *reg__audit_actor(void)
{
    return tl_actor[0] ? tl_actor : NULL;
}

const char *reg__audit_addr(void)
{
    return tl_addr[0] ? tl_addr : NULL;
}

/* ---- events ---------------------------------------------------------------------------- */

struct event_args {
    const char *kind;
    const char *model_name;
    const char *version; /* NULL = not about one version */
    const char *detail;  /* NULL = none */
};

static reg_status event_add_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct event_args *a = arg;
    reg_status st = reg__check_json_object(r, "event detail", a->detail, true, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = reg__run(r, ST_EVENT_INSERT, "ssssss", a->kind, a->model_name, a->version, a->detail,
                      reg__audit_actor(), reg__audit_addr());
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "record event");
}

reg_status registry_event_add(registry *r, const char *kind, const char *model_name,
                              const char *version, const char *detail_json, char *err,
                              size_t errlen)
{
    struct event_args a = {kind, model_name, (version && *version) ? version : NULL,
                           (detail_json && *detail_json) ? detail_json : NULL};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = reg__check_event_kind(kind, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("model name", model_name, err, errlen);
    if (st == REG_OK)
        st = reg__check_optional_name("version", version, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, event_add_tx, &a, err, errlen) : st;
}

static int event_row(reg_stmt *st, void *arg)
{
    struct list_ctx *c = arg;
    reg_event e = {0};
    e.id = reg__col_int64(st, 0);
    reg__copy_column(e.at, sizeof e.at, st, 1);
    reg__copy_column(e.kind, sizeof e.kind, st, 2);
    reg__copy_column(e.model_name, sizeof e.model_name, st, 3);
    reg__copy_column(e.version, sizeof e.version, st, 4);
    /* Borrowed from SQLite: valid until the next step, i.e. for the callback only. */
    e.detail = reg__col_text(st, 5);
    if (!e.detail)
        return -1;
    e.actor = reg__col_text(st, 6);       /* NULL stays NULL */
    e.client_addr = reg__col_text(st, 7); /* likewise */
    return c->event_fn(c->ud, &e) ? 1 : 0;
}

static reg_status event_list_read(registry *r, void *arg, char *err, size_t errlen)
{
    const struct list_ctx *c = arg;
    reg_stmt *st = NULL;
    int rc = c->model_name
                 ? reg__query(r, ST_EVENT_LIST_MODEL, &st, "si", c->model_name, (int64_t)c->limit)
                 : reg__query(r, ST_EVENT_LIST_ALL, &st, "i", (int64_t)c->limit);
    return reg__each_row(r, st, rc, event_row, arg, "list events", err, errlen);
}

reg_status registry_event_list(registry *r, const char *model_name, int limit, reg_event_fn fn,
                               void *ud, char *err, size_t errlen)
{
    struct list_ctx c = {.event_fn = fn, .ud = ud, .model_name = model_name, .limit = limit};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && model_name)
        st = reg__check_name("model name", model_name, err, errlen);
    if (st == REG_OK && (limit < 1 || !fn))
        st = reg__fail(err, errlen, REG_INVALID, "registry_event_list: need limit >= 1 and a fn");
    return st == REG_OK ? reg__locked_read(r, event_list_read, &c, err, errlen) : st;
}

struct prune_args {
    const char *before;
    int batch;
    int64_t deleted;
};

static int prune_row(reg_stmt *st, void *arg)
{
    (void)st;
    ((struct prune_args *)arg)->deleted++;
    return 0;
}

static reg_status events_prune_tx(registry *r, void *arg, char *err, size_t errlen)
{
    struct prune_args *a = arg;
    a->deleted = 0; /* a retried transaction counts again */
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_EVENT_PRUNE, &st, "si", a->before, (int64_t)a->batch);
    return reg__each_row(r, st, rc, prune_row, a, "prune events", err, errlen);
}

/* "YYYY-MM-DDTHH:MM:SSZ" with digits where digits go: the cutoff is compared as text. */
static bool event_time_ok(const char *t)
{
    static const char form[] = "dddd-dd-ddTdd:dd:ddZ";
    if (t == NULL || strlen(t) != sizeof form - 1)
        return false;
    for (size_t i = 0; form[i]; i++)
        if (form[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != form[i])
            return false;
    return true;
}

reg_status registry_events_prune(registry *r, const char *before, int batch, int64_t *deleted,
                                 char *err, size_t errlen)
{
    struct prune_args a = {.before = before, .batch = batch};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && (!event_time_ok(before) || batch < 1 || batch > 100000 || !deleted))
        st = reg__fail(err, errlen, REG_INVALID,
                       "registry_events_prune: need a YYYY-MM-DDTHH:MM:SSZ time, a batch of "
                       "1..100000 and a count");
    if (st == REG_OK)
        st = reg__locked_tx(r, events_prune_tx, &a, err, errlen);
    if (deleted)
        *deleted = st == REG_OK ? a.deleted : 0;
    return st;
}
