/* registry traffic: table traffic_splits (set, get, rollback, clear) with its history. See
 * registry.h. */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* ---- traffic splits -------------------------------------------------------------------- */

struct traffic_args {
    const char *model_name;
    const char *weights; /* set: the new split */
    const char *guard;
    const char *reason;
    char *weights_out; /* get/rollback: malloc'd result, handed to the caller on REG_OK */
    char *guard_out;
};

static reg_status require_model(registry *r, const char *name, char *err, size_t errlen)
{
    int64_t one = 0;
    bool found = false;
    reg_status st =
        reg__query_int(r, ST_MODEL_EXISTS, "find model", &one, &found, err, errlen, "s", name);
    if (st == REG_OK && !found)
        st = reg__fail(err, errlen, REG_NOT_FOUND, "model %s is not registered", name);
    return st;
}

static reg_status add_traffic_event(registry *r, const char *kind, const char *model,
                                    const char *weights, const char *guard, const char *reason,
                                    char *err, size_t errlen)
{
    int rc = reg__run(r, ST_EVENT_INSERT_TRAFFIC, "sssssss", kind, model, weights, guard, reason,
                      reg__audit_actor(), reg__audit_addr());
    return rc == DB_DONE ? reg__changed(r, err, errlen)
                         : reg__db_fail(r, rc, err, errlen, "record event");
}

static reg_status traffic_set_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct traffic_args *a = arg;
    reg_status st = require_model(r, a->model_name, err, errlen);
    if (st == REG_OK)
        st = reg__check_json_object(r, "weights_json", a->weights, false, err, errlen);
    if (st == REG_OK)
        st = reg__check_json_object(r, "guard_json", a->guard, true, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = reg__run(r, ST_TRAFFIC_RETIRE_CURRENT, "ss", a->model_name, "superseded");
    if (rc == DB_DONE)
        rc = reg__run(r, ST_TRAFFIC_INSERT, "ssss", a->model_name, a->weights, a->guard, a->reason);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "set traffic split");
    return add_traffic_event(r, "traffic", a->model_name, a->weights, a->guard, a->reason, err,
                             errlen);
}

reg_status registry_traffic_set(registry *r, const char *model_name, const char *weights_json,
                                const char *guard_json, const char *reason, char *err,
                                size_t errlen)
{
    struct traffic_args a = {model_name, weights_json, guard_json, reason, NULL, NULL};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("model name", model_name, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, traffic_set_tx, &a, err, errlen) : st;
}

/* Reads the current split into a->weights_out / a->guard_out; REG_NOT_FOUND when none. */
static reg_status traffic_read_current(registry *r, struct traffic_args *a, char *err,
                                       size_t errlen)
{
    free(a->weights_out); /* a retried transaction reads it again */
    free(a->guard_out);
    a->weights_out = a->guard_out = NULL;
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_TRAFFIC_CURRENT, &st, "s", a->model_name);
    if (rc == DB_DONE)
        return reg__fail(err, errlen, REG_NOT_FOUND, "model %s has no traffic split",
                         a->model_name);
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "read traffic split");
    bool ok = reg__dup_column(st, 1, &a->weights_out) && reg__dup_column(st, 2, &a->guard_out);
    reg__stmt_done(st);
    return ok ? REG_OK : reg__no_memory(err, errlen);
}

static reg_status traffic_get_read(registry *r, void *arg, char *err, size_t errlen)
{
    return traffic_read_current(r, arg, err, errlen);
}

/* Gives the result strings to the caller on REG_OK, frees them otherwise. */
static reg_status hand_over_split(struct traffic_args *a, reg_status st, char **weights_json,
                                  char **guard_json)
{
    if (st == REG_OK) {
        *weights_json = a->weights_out;
        if (guard_json)
            *guard_json = a->guard_out;
        else
            free(a->guard_out);
        return st;
    }
    free(a->weights_out);
    free(a->guard_out);
    return st;
}

/* Shared argument checks of get and rollback; also clears the caller's pointers. */
static reg_status check_split_out(registry *r, const char *model_name, char **weights_json,
                                  char **guard_json, char *err, size_t errlen)
{
    if (guard_json)
        *guard_json = NULL;
    if (weights_json)
        *weights_json = NULL;
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("model name", model_name, err, errlen);
    if (st == REG_OK && !weights_json)
        st = reg__fail(err, errlen, REG_INVALID, "weights_json out pointer is NULL");
    return st;
}

reg_status registry_traffic_get(registry *r, const char *model_name, char **weights_json,
                                char **guard_json, char *err, size_t errlen)
{
    struct traffic_args a = {.model_name = model_name};
    reg_status st = check_split_out(r, model_name, weights_json, guard_json, err, errlen);
    if (st == REG_OK)
        st = reg__locked_read(r, traffic_get_read, &a, err, errlen);
    return hand_over_split(&a, st, weights_json, guard_json);
}

static reg_status find_rollback_target(registry *r, const char *model, int64_t *previous, char *err,
                                       size_t errlen)
{
    int64_t current = 0;
    bool found = false;
    reg_status st = reg__query_int(r, ST_TRAFFIC_CURRENT, "read traffic split", &current, &found,
                                   err, errlen, "s", model);
    if (st == REG_OK && !found)
        return reg__fail(err, errlen, REG_NOT_FOUND, "model %s has no traffic split", model);
    if (st == REG_OK)
        st = reg__query_int(r, ST_TRAFFIC_PREVIOUS, "read traffic history", previous, &found, err,
                            errlen, "si", model, current);
    if (st == REG_OK && !found)
        st = reg__fail(err, errlen, REG_NOT_FOUND,
                       "model %s has no earlier traffic split to roll "
                       "back to",
                       model);
    return st;
}

static reg_status traffic_rollback_tx(registry *r, void *arg, char *err, size_t errlen)
{
    struct traffic_args *a = arg;
    int64_t previous = 0;
    reg_status st = find_rollback_target(r, a->model_name, &previous, err, errlen);
    if (st != REG_OK)
        return st;
    /* Retire first: the one-current-split-per-model index forbids two at once. */
    int rc = reg__run(r, ST_TRAFFIC_RETIRE_CURRENT, "ss", a->model_name, "rolled_back");
    if (rc == DB_DONE)
        rc = reg__run(r, ST_TRAFFIC_MAKE_CURRENT, "i", previous);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "roll back traffic split");
    st = traffic_read_current(r, a, err, errlen);
    if (st == REG_OK)
        st = add_traffic_event(r, "rollback", a->model_name, a->weights_out, a->guard_out, NULL,
                               err, errlen);
    return st;
}

reg_status registry_traffic_rollback(registry *r, const char *model_name, char **weights_json,
                                     char **guard_json, char *err, size_t errlen)
{
    struct traffic_args a = {.model_name = model_name};
    reg_status st = check_split_out(r, model_name, weights_json, guard_json, err, errlen);
    if (st == REG_OK)
        st = reg__locked_tx(r, traffic_rollback_tx, &a, err, errlen);
    return hand_over_split(&a, st, weights_json, guard_json);
}

static reg_status traffic_clear_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct traffic_args *a = arg;
    int rc = reg__run(r, ST_TRAFFIC_RETIRE_CURRENT, "ss", a->model_name, "cleared");
    return rc == DB_DONE ? reg__changed(r, err, errlen)
                         : reg__db_fail(r, rc, err, errlen, "clear traffic split");
}

reg_status registry_traffic_clear(registry *r, const char *model_name, char *err, size_t errlen)
{
    struct traffic_args a = {.model_name = model_name};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("model name", model_name, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, traffic_clear_tx, &a, err, errlen) : st;
}
