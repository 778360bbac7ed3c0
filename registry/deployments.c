/* registry deployments: table deployments (create, end, list) and their events. See
 * registry.h. */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* ---- deployments ----------------------------------------------------------------------- */

void reg_deployment_free(reg_deployment *d)
{
    if (!d)
        return;
    free(d->status_reason);
    d->status_reason = NULL;
    free(d->options);
    d->options = NULL;
}

/* Fills *d from a DEPLOYMENT_COLUMNS row; false when out of memory. */
static bool deployment_from_row(reg_stmt *st, reg_deployment *d)
{
    memset(d, 0, sizeof *d);
    d->id = reg__col_int64(st, 0);
    reg__copy_column(d->model_name, sizeof d->model_name, st, 1);
    reg__copy_column(d->version, sizeof d->version, st, 2);
    reg__copy_column(d->endpoint_name, sizeof d->endpoint_name, st, 3);
    reg__copy_column(d->status, sizeof d->status, st, 4);
    reg__copy_column(d->deployed_at, sizeof d->deployed_at, st, 6);
    reg__copy_column(d->undeployed_at, sizeof d->undeployed_at, st, 7);
    d->server_crashes = reg__col_int64(st, 9);
    return reg__dup_column(st, 5, &d->status_reason) && reg__dup_column(st, 8, &d->options);
}

/* Reads deployment `id` into *d (caller frees); REG_NOT_FOUND when there is none. */
static reg_status deployment_read(registry *r, int64_t id, reg_deployment *d, char *err,
                                  size_t errlen)
{
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_DEPLOYMENT_GET, &st, "i", id);
    if (rc == DB_DONE)
        return reg__fail(err, errlen, REG_NOT_FOUND, "no deployment %lld", (long long)id);
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "read deployment");
    bool ok = deployment_from_row(st, d);
    reg__stmt_done(st);
    return ok ? REG_OK : reg__no_memory(err, errlen);
}

struct deploy_args {
    const char *name;
    const char *version;
    const char *endpoint; /* NULL = none */
    reg_deployment *out;  /* create: filled on success, may be NULL */
    const char *options;  /* create: JSON object text, NULL = "{}" */
    int64_t id;           /* end: which deployment */
    const char *status;   /* end: "undeployed" or "failed" */
    const char *reason;   /* end: may be NULL */
};

static reg_status refuse_if_endpoint_taken(registry *r, const char *endpoint, char *err,
                                           size_t errlen)
{
    reg_stmt *st = NULL;
    int rc =
        endpoint ? reg__query(r, ST_DEPLOYMENT_ACTIVE_ON_ENDPOINT, &st, "s", endpoint) : DB_DONE;
    if (rc == DB_DONE)
        return REG_OK;
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "find endpoint");
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
    long long id = reg__col_int64(st, 0);
    reg__copy_column(model, sizeof model, st, 1);
    reg__copy_column(version, sizeof version, st, 2);
    reg__stmt_done(st);
    return reg__fail(err, errlen, REG_EXISTS,
                     "endpoint name %s is taken by model %s version %s "
                     "(deployment %lld)",
                     endpoint, model, version, id);
}

static reg_status add_deployment_event(registry *r, const char *kind, const reg_deployment *d,
                                       const char *reason, char *err, size_t errlen)
{
    const char *endpoint = d->endpoint_name[0] ? d->endpoint_name : NULL;
    int rc = reg__run(r, ST_EVENT_INSERT_DEPLOYMENT, "sssissss", kind, d->model_name, d->version,
                      d->id, endpoint, reason, reg__audit_actor(), reg__audit_addr());
    return rc == DB_DONE ? reg__changed(r, err, errlen)
                         : reg__db_fail(r, rc, err, errlen, "record event");
}

/* Inserts the active row (closing a failed one of the same version first, which the
 * one-live-deployment-per-version index requires) and reads it back into *d. */
static reg_status insert_deployment(registry *r, const struct deploy_args *a, int64_t version_id,
                                    reg_deployment *d, char *err, size_t errlen)
{
    int rc = reg__run(r, ST_DEPLOYMENT_CLOSE_FAILED_OF_VERSION, "i", version_id);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "record deployment");
    int64_t id = 0;
    bool found = false;
    reg_status st =
        reg__query_int(r, ST_DEPLOYMENT_INSERT, "record deployment", &id, &found, err, errlen,
                       "ssiss", a->name, a->version, version_id, a->endpoint, a->options);
    return st == REG_OK ? deployment_read(r, id, d, err, errlen) : st;
}

static reg_status deployment_create_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct deploy_args *a = arg;
    int64_t version_id = 0;
    reg_deployment d = {0};
    reg_status st = reg__find_version_id(r, a->name, a->version, &version_id, err, errlen);
    if (st == REG_OK)
        st = reg__refuse_if_active(r, a->name, a->version, REG_EXISTS, err, errlen);
    if (st == REG_OK)
        st = refuse_if_endpoint_taken(r, a->endpoint, err, errlen);
    if (st == REG_OK)
        st = insert_deployment(r, a, version_id, &d, err, errlen);
    if (st == REG_OK)
        st = add_deployment_event(r, "deploy", &d, NULL, err, errlen);
    if (st == REG_OK && a->out) {
        reg_deployment_free(a->out); /* a retried transaction fills it again */
        *a->out = d;                 /* ownership of status_reason moves to the caller */
    } else
        reg_deployment_free(&d);
    return st;
}

reg_status registry_deployment_create(registry *r, const char *name, const char *version,
                                      const char *endpoint_name, reg_deployment *out, char *err,
                                      size_t errlen)
{
    return registry_deployment_create_with(r, name, version, endpoint_name, NULL, out, err, errlen);
}

reg_status registry_deployment_create_with(registry *r, const char *name, const char *version,
                                           const char *endpoint_name, const char *options_json,
                                           reg_deployment *out, char *err, size_t errlen)
{
    struct deploy_args a = {.name = name,
                            .version = version,
                            .endpoint = (endpoint_name && *endpoint_name) ? endpoint_name : NULL,
                            .out = out,
                            .options = options_json};
    if (out)
        memset(out, 0, sizeof *out);
    reg_status st = reg__check_version_key(r, name, version, err, errlen);
    if (st == REG_OK)
        st = reg__check_optional_name("endpoint name", endpoint_name, err, errlen);
    if (st == REG_OK)
        st = reg__locked_tx(r, deployment_create_tx, &a, err, errlen);
    if (st != REG_OK && out) /* the body may have filled it before COMMIT failed */
        reg_deployment_free(out);
    return st;
}

/* "deploy" starts a deployment; ending one records "undeploy" or "failed". */
static const char *end_event_kind(const char *status)
{
    return strcmp(status, "failed") == 0 ? "failed" : "undeploy";
}

static reg_status deployment_end_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct deploy_args *a = arg;
    reg_deployment d = {0};
    reg_status st = deployment_read(r, a->id, &d, err, errlen);
    if (st == REG_OK && strcmp(d.status, "undeployed") == 0)
        st = reg__fail(err, errlen, REG_NOT_FOUND, "deployment %lld has already ended",
                       (long long)a->id);
    if (st == REG_OK) {
        int rc = reg__run(r, ST_DEPLOYMENT_END, "iss", a->id, a->status, a->reason);
        if (rc != DB_DONE)
            st = reg__db_fail(r, rc, err, errlen, "end deployment");
    }
    if (st == REG_OK)
        st = add_deployment_event(r, end_event_kind(a->status), &d, a->reason, err, errlen);
    reg_deployment_free(&d);
    return st;
}

static reg_status check_end_status(const char *status, char *err, size_t errlen)
{
    if (status && (strcmp(status, "undeployed") == 0 || strcmp(status, "failed") == 0))
        return REG_OK;
    return reg__fail(err, errlen, REG_INVALID,
                     "deployment end status must be 'undeployed' or "
                     "'failed', not '%.32s'",
                     status ? status : "(null)");
}

reg_status registry_deployment_end(registry *r, int64_t id, const char *status, const char *reason,
                                   char *err, size_t errlen)
{
    struct deploy_args a = {.id = id, .status = status, .reason = reason};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_end_status(status, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, deployment_end_tx, &a, err, errlen) : st;
}

static int deployment_row(reg_stmt *st, void *arg)
{
    struct list_ctx *c = arg;
    reg_deployment d;
    if (!deployment_from_row(st, &d))
        return -1;
    int stop = c->deployment_fn(c->ud, &d);
    reg_deployment_free(&d);
    return stop ? 1 : 0;
}

static reg_status deployment_list_read(registry *r, void *arg, char *err, size_t errlen)
{
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_DEPLOYMENT_LIST, &st, "");
    return reg__each_row(r, st, rc, deployment_row, arg, "list deployments", err, errlen);
}

reg_status registry_deployment_list(registry *r, reg_deployment_fn fn, void *ud, char *err,
                                    size_t errlen)
{
    struct list_ctx c = {.deployment_fn = fn, .ud = ud};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && !fn)
        st = reg__fail(err, errlen, REG_INVALID, "registry_deployment_list: fn is NULL");
    return st == REG_OK ? reg__locked_read(r, deployment_list_read, &c, err, errlen) : st;
}

static reg_status deployment_crash_add_tx(registry *r, void *arg, char *err, size_t errlen)
{
    struct deploy_args *a = arg;
    bool found = false;
    int64_t n = 0;
    reg_status st = reg__query_int(r, ST_DEPLOYMENT_CRASH_ADD, "count crash", &n, &found, err,
                                   errlen, "i", a->id);
    if (st == REG_OK && !found)
        st = reg__fail(err, errlen, REG_NOT_FOUND, "no deployment %lld", (long long)a->id);
    if (st == REG_OK)
        a->out->server_crashes = n;
    return st;
}

reg_status registry_deployment_crash_add(registry *r, int64_t id, int64_t *crashes, char *err,
                                         size_t errlen)
{
    reg_deployment d = {0};
    struct deploy_args a = {.id = id, .out = &d};
    reg_status st = reg__locked_tx(r, deployment_crash_add_tx, &a, err, errlen);
    if (st == REG_OK && crashes)
        *crashes = d.server_crashes;
    return st;
}

struct options_args {
    int64_t id;
    const char *options;
    const char *kind;
    const char *detail; /* NULL = none */
};

static reg_status deployment_set_options_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct options_args *a = arg;
    reg_deployment d = {0};
    reg_status st = deployment_read(r, a->id, &d, err, errlen);
    if (st == REG_OK && strcmp(d.status, "active") != 0)
        st = reg__fail(err, errlen, REG_NOT_FOUND, "deployment %lld is not active",
                       (long long)a->id);
    if (st == REG_OK) {
        int rc = reg__run(r, ST_DEPLOYMENT_SET_OPTIONS, "is", a->id, a->options);
        if (rc == DB_DONE)
            rc = reg__run(r, ST_EVENT_INSERT, "ssssss", a->kind, d.model_name, d.version, a->detail,
                          reg__audit_actor(), reg__audit_addr());
        st = rc == DB_DONE ? reg__changed(r, err, errlen)
                           : reg__db_fail(r, rc, err, errlen, "store deployment options");
    }
    reg_deployment_free(&d);
    return st;
}

reg_status registry_deployment_set_options(registry *r, int64_t id, const char *options_json,
                                           const char *kind, const char *detail_json, char *err,
                                           size_t errlen)
{
    struct options_args a = {.id = id,
                             .options = options_json,
                             .kind = kind,
                             .detail = (detail_json && *detail_json) ? detail_json : NULL};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = reg__check_event_kind(kind, err, errlen);
    if (st == REG_OK)
        st = reg__check_json_object(r, "deployment options", options_json, false, err, errlen);
    if (st == REG_OK)
        st = reg__check_json_object(r, "event detail", a.detail, true, err, errlen);
    if (st == REG_OK)
        st = reg__locked_tx(r, deployment_set_options_tx, &a, err, errlen);
    return st;
}

struct is_active_args {
    int64_t id;
    bool *active;
};

static reg_status deployment_is_active_read(registry *r, void *arg, char *err, size_t errlen)
{
    const struct is_active_args *a = arg;
    int64_t n = 0;
    bool found = false;
    reg_status st = reg__query_int(r, ST_DEPLOYMENT_IS_ACTIVE, "read deployment status", &n, &found,
                                   err, errlen, "i", a->id);
    *a->active = st == REG_OK && n > 0;
    return st;
}

reg_status registry_deployment_is_active(registry *r, int64_t id, bool *active, char *err,
                                         size_t errlen)
{
    bool ignored;
    struct is_active_args a = {id, active ? active : &ignored};
    *a.active = false;
    return reg__locked_read(r, deployment_is_active_read, &a, err, errlen);
}
