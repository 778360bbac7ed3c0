/* registry versions: table model_versions (register, get, delete, list). See registry.h. */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* ---- model versions -------------------------------------------------------------------- */

void reg_version_free(reg_version *v)
{
    if (!v)
        return;
    free(v->plugin_path);
    free(v->config_json);
    free(v->artifact_dir);
    v->plugin_path = NULL;
    v->config_json = NULL;
    v->artifact_dir = NULL;
}

/* Fills *v from a VERSION_COLUMNS row; false when out of memory (v then owns nothing). */
static bool version_from_row(reg_stmt *st, reg_version *v)
{
    memset(v, 0, sizeof *v);
    v->id = reg__col_int64(st, 0);
    reg__copy_column(v->name, sizeof v->name, st, 1);
    reg__copy_column(v->version, sizeof v->version, st, 2);
    reg__copy_column(v->sha256, sizeof v->sha256, st, 4);
    reg__copy_column(v->created_at, sizeof v->created_at, st, 6);
    reg__copy_column(v->backend, sizeof v->backend, st, 7);
    reg__copy_column(v->artifact_sha256, sizeof v->artifact_sha256, st, 9);
    if (reg__dup_column(st, 3, &v->plugin_path) && reg__dup_column(st, 5, &v->config_json) &&
        reg__dup_column(st, 8, &v->artifact_dir))
        return true;
    reg_version_free(v);
    return false;
}

struct version_args {
    const char *name;
    const char *version;
    const char *plugin_path;
    const char *config_json;
    char sha256[REG_SHA256_HEX]; /* "" = unknown, stored as NULL */
    reg_version *out;
    const char *backend; /* NULL for a plugin version (and the two below) */
    const char *artifact_dir;
    char artifact_sha256[REG_SHA256_HEX];
};

reg_status reg__check_version_key(registry *r, const char *name, const char *version, char *err,
                                  size_t errlen)
{
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("model name", name, err, errlen);
    if (st == REG_OK)
        st = reg__check_name("version", version, err, errlen);
    return st;
}

static reg_status version_add_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct version_args *a = arg;
    reg_status st = reg__check_json_object(r, "config_json", a->config_json, false, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = reg__run(r, ST_MODEL_ENSURE, "s", a->name);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "register model");
    rc = reg__run(r, ST_VERSION_INSERT, "ssssssss", a->name, a->version, a->plugin_path,
                  a->sha256[0] ? a->sha256 : NULL, a->config_json, a->backend, a->artifact_dir,
                  a->backend != NULL ? a->artifact_sha256 : NULL);
    if (rc == DB_UNIQUE)
        return reg__fail(err, errlen, REG_EXISTS, "model %s version %s is already registered",
                         a->name, a->version);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "register version");
}

reg_status registry_version_add(registry *r, const char *name, const char *version,
                                const char *plugin_path, const char *sha256,
                                const char *config_json, char *err, size_t errlen)
{
    struct version_args a = {.name = name,
                             .version = version,
                             .plugin_path = plugin_path,
                             .config_json = config_json ? config_json : "{}"};
    reg_status st = reg__check_version_key(r, name, version, err, errlen);
    if (st == REG_OK)
        st = reg__check_plugin_path(plugin_path, err, errlen);
    if (st == REG_OK)
        st = reg__normalize_sha256(sha256, a.sha256, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, version_add_tx, &a, err, errlen) : st;
}

reg_status registry_version_add_artifact(registry *r, const char *name, const char *version,
                                         const char *plugin_path, const char *backend,
                                         const char *artifact_dir, const char *artifact_sha256,
                                         const char *config_json, char *err, size_t errlen)
{
    struct version_args a = {.name = name,
                             .version = version,
                             .plugin_path = plugin_path,
                             .config_json = config_json ? config_json : "{}",
                             .backend = backend,
                             .artifact_dir = artifact_dir};
    reg_status st = reg__check_version_key(r, name, version, err, errlen);
    if (st == REG_OK)
        st = reg__check_plugin_path(plugin_path, err, errlen);
    if (st == REG_OK &&
        (backend == NULL || backend[0] == '\0' || strlen(backend) > REG_BACKEND_MAX ||
         strspn(backend, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(backend)))
        st = reg__fail(err, errlen, REG_INVALID, "backend must match [a-z0-9_]{1,%d}",
                       REG_BACKEND_MAX);
    if (st == REG_OK)
        st = reg__check_plugin_path(artifact_dir, err, errlen);
    if (st == REG_OK && (artifact_sha256 == NULL || artifact_sha256[0] == '\0'))
        st = reg__fail(err, errlen, REG_INVALID, "artifact_sha256 is required");
    if (st == REG_OK)
        st = reg__normalize_sha256(artifact_sha256, a.artifact_sha256, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, version_add_tx, &a, err, errlen) : st;
}

static reg_status version_get_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct version_args *a = arg;
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_VERSION_GET, &st, "ss", a->name, a->version);
    if (rc == DB_DONE)
        return reg__fail(err, errlen, REG_NOT_FOUND, "model %s version %s is not registered",
                         a->name, a->version);
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "read version");
    bool ok = version_from_row(st, a->out);
    reg__stmt_done(st);
    return ok ? REG_OK : reg__no_memory(err, errlen);
}

reg_status registry_version_get(registry *r, const char *name, const char *version,
                                reg_version *out, char *err, size_t errlen)
{
    if (!out)
        return reg__fail(err, errlen, REG_INVALID, "registry_version_get: out is NULL");
    memset(out, 0, sizeof *out);
    struct version_args a = {.name = name, .version = version, .out = out};
    reg_status st = reg__check_version_key(r, name, version, err, errlen);
    return st == REG_OK ? reg__locked_read(r, version_get_read, &a, err, errlen) : st;
}

/* Finds the id of a registered version; REG_NOT_FOUND when absent. */
reg_status reg__find_version_id(registry *r, const char *name, const char *version, int64_t *id,
                                char *err, size_t errlen)
{
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_VERSION_GET, &st, "ss", name, version);
    if (rc == DB_DONE)
        return reg__fail(err, errlen, REG_NOT_FOUND, "model %s version %s is not registered", name,
                         version);
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "find version");
    *id = reg__col_int64(st, 0);
    reg__stmt_done(st);
    return REG_OK;
}

/* REG_EXISTS (deploy) or REG_CONFLICT (delete) when the version has an active deployment. */
reg_status reg__refuse_if_active(registry *r, const char *name, const char *version,
                                 reg_status refusal, char *err, size_t errlen)
{
    int64_t id = 0;
    bool found = false;
    reg_status st = reg__query_int(r, ST_DEPLOYMENT_ACTIVE_OF_VERSION, "find deployment", &id,
                                   &found, err, errlen, "ss", name, version);
    if (st != REG_OK || !found)
        return st;
    return reg__fail(err, errlen, refusal, "model %s version %s is deployed (deployment %lld)%s",
                     name, version, (long long)id,
                     refusal == REG_CONFLICT ? "; undeploy it first" : "");
}

static reg_status version_delete_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct version_args *a = arg;
    int64_t id = 0;
    reg_status st = reg__find_version_id(r, a->name, a->version, &id, err, errlen);
    if (st == REG_OK)
        st = reg__refuse_if_active(r, a->name, a->version, REG_CONFLICT, err, errlen);
    if (st != REG_OK)
        return st;
    /* A failed deployment would be retried at startup; its version is going away. */
    int rc = reg__run(r, ST_DEPLOYMENT_CLOSE_FAILED_OF_VERSION, "i", id);
    if (rc == DB_DONE)
        rc = reg__run(r, ST_VERSION_DELETE, "i", id);
    if (rc == DB_DONE)
        rc = reg__run(r, ST_MODEL_DELETE_IF_EMPTY, "s", a->name);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "delete version");
}

reg_status registry_version_delete(registry *r, const char *name, const char *version, char *err,
                                   size_t errlen)
{
    struct version_args a = {.name = name, .version = version};
    reg_status st = reg__check_version_key(r, name, version, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, version_delete_tx, &a, err, errlen) : st;
}

/* Arguments of the list functions; exactly one of the callbacks is set. */
static int version_row(reg_stmt *st, void *arg)
{
    struct list_ctx *c = arg;
    reg_version v;
    if (!version_from_row(st, &v))
        return -1;
    int stop = c->version_fn(c->ud, &v);
    reg_version_free(&v);
    return stop ? 1 : 0;
}

static reg_status version_list_read(registry *r, void *arg, char *err, size_t errlen)
{
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_VERSION_LIST, &st, "");
    return reg__each_row(r, st, rc, version_row, arg, "list versions", err, errlen);
}

reg_status registry_version_list(registry *r, reg_version_fn fn, void *ud, char *err, size_t errlen)
{
    struct list_ctx c = {.version_fn = fn, .ud = ud};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && !fn)
        st = reg__fail(err, errlen, REG_INVALID, "registry_version_list: fn is NULL");
    return st == REG_OK ? reg__locked_read(r, version_list_read, &c, err, errlen) : st;
}
