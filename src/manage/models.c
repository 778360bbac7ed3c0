/*
 * manage models: the /models resource — list (GET /models), register a plugin file
 * (POST /models {"name","version","plugin","config"?}), upload one (PUT
 * /models/<m>/versions/<v>, the .so as the body), delete a version (DELETE, same path). Every
 * plugin must be an ELF shared object of this machine; a path must pass plugin_file_open (only
 * under --plugin-dir, one message for every refusal). It is copied into the content-addressed
 * store and probed before the registry records it, and removed again when it is refused.
 * GET /models/stats is stats.c's.
 * A model directory (POST /models {"name","version","model_dir"}: config.json naming a backend
 * + the model files, under a --plugin-dir directory by the same rules as a plugin path, see
 * plugin_dir_open) or a tar of its files (PUT with application/x-tar) is copied into the
 * artifact store and probed with its backend in a worker process, like a plugin: a refused path,
 * bad directory or archive is a 400, a backend that refuses the files a 422. GET (same path)
 * shows one version.
 */
#include "manage_internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <strings.h>

#include "artifact.h"
#include "blobs.h"
#include "body.h"
#include "log.h"
#include "names.h"
#include "path.h"
#include "plugin_file.h"
#include "reply.h"
#include "store.h"
#include "worker.h"

/* Registration probes a plugin in a worker process; this long at most (load + create). */
#define MANAGE_PROBE_TIMEOUT_MS 10000

/* ---- JSON ------------------------------------------------------------------------------------ */

static cJSON *manage_version_json(const reg_version *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON_AddStringToObject(o, "version", v->version);
    cJSON_AddStringToObject(o, "plugin_sha256", v->sha256);
    if (v->backend[0] != '\0') {
        cJSON_AddStringToObject(o, "backend", v->backend);
        cJSON_AddStringToObject(o, "artifact_sha256", v->artifact_sha256);
    }
    cJSON_AddStringToObject(o, "created_at", v->created_at);
    cJSON *config = cJSON_Parse(v->config_json);
    cJSON_AddItemToObject(o, "config", config ? config : cJSON_CreateObject());
    return o;
}

/* ---- /models ------------------------------------------------------------------------------ */

typedef struct models_acc {
    cJSON *models;
    cJSON *current; /* the versions array of the model being filled */
    char name[REG_NAME_MAX + 1];
} models_acc;

static int manage_collect_version(void *ud, const reg_version *v)
{
    models_acc *acc = ud;
    if (acc->current == NULL || strcmp(acc->name, v->name) != 0) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", v->name);
        acc->current = cJSON_AddArrayToObject(m, "versions");
        cJSON_AddItemToArray(acc->models, m);
        snprintf(acc->name, sizeof acc->name, "%s", v->name);
    }
    cJSON_AddItemToArray(acc->current, cJSON_CreateString(v->version));
    return 0;
}

static void manage_models_list(manage_ctx *s, http_response *resp)
{
    cJSON *root = cJSON_CreateObject();
    models_acc acc = {.models = cJSON_AddArrayToObject(root, "models")};
    char err[256];
    reg_status rs = registry_version_list(s->reg, manage_collect_version, &acc, err, sizeof err);
    if (rs != REG_OK) {
        cJSON_Delete(root);
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    reply_json(resp, HTTP_OK, root);
}

/* Reply 201 with the registered version (after an event "register" with `detail`). */
static void manage_registered(manage_ctx *s, const char *name, const char *version,
                              const char *detail, http_response *resp)
{
    char err[512];
    registry_event_add(s->reg, "register", name, version, detail, err, sizeof err);
    reg_version v = {0};
    if (registry_version_get(s->reg, name, version, &v, err, sizeof err) != REG_OK) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "registry: %s", err);
        return;
    }
    reply_json(resp, HTTP_CREATED, manage_version_json(&v));
    reg_version_free(&v);
}

/* Probe and record a stored plugin as (name, version). Writes the reply. */
static void manage_register(manage_ctx *s, const char *name, const char *version, const char *path,
                            const char *sha, const char *config_json, http_response *resp)
{
    char err[512];
    reg_version existing = {0};
    if (registry_version_get(s->reg, name, version, &existing, err, sizeof err) == REG_OK) {
        reg_version_free(&existing);
        reply_error(resp, HTTP_CONFLICT, "%s version %s is already registered", name, version);
        return;
    }
    /* in a worker process: a plugin's code never runs in the server before it is deployed */
    if (worker_probe(path, config_json, MANAGE_PROBE_TIMEOUT_MS, err, sizeof err) != 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "not a loadable plugin: %s", err);
        return;
    }
    /* A shared registry gets the bytes before the row, so every replica can fetch them. */
    if (deploy_blobs_publish_plugin(s->reg, path, sha, err, sizeof err) != 0) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "cannot publish the plugin: %s", err);
        return;
    }
    reg_status rs =
        registry_version_add(s->reg, name, version, path, sha, config_json, err, sizeof err);
    if (rs != REG_OK) {
        reply_error(resp, reply_status_of_registry(rs), "%s", err);
        return;
    }
    char detail[160];
    snprintf(detail, sizeof detail, "{\"plugin_sha256\":\"%s\"}", sha);
    manage_registered(s, name, version, detail, resp);
}

/* Serializes store -> probe -> record, so that a plugin file or model directory a refused
 * registration stored can be removed again when it is refused: no other registration can have come
 * to use it meanwhile. */
static pthread_mutex_t manage_register_lock = PTHREAD_MUTEX_INITIALIZER;

/* Probe and record a directory already in the artifact store. HTTP_CREATED, or the status with
 * the reason in err. */
static int manage_add_stored_dir(manage_ctx *s, const char *name, const char *version,
                                 const char *stored, const char *sha, char *err, size_t errlen)
{
    char *config = NULL, backend[ARTIFACT_BACKEND_MAX + 1], so[PATH_MAX], why[512];
    artifact_status as = artifact_read_config(stored, &config, backend, err, errlen);
    if (as != ARTIFACT_OK)
        return as == ARTIFACT_INVALID ? HTTP_BAD_REQUEST : HTTP_INTERNAL_ERROR;
    int status = HTTP_CREATED;
    if (artifact_backend_path(s->cfg->backend_dir, backend, so, sizeof so, err, errlen) != 0) {
        status = HTTP_BAD_REQUEST;
    } else {
        /* in a worker process, as a plugin's probe: the backend's code and its parsing of the
         * client's files never run in the server before a deploy */
        artifact_share_with_worker(stored); /* stored before it was made readable */
        int rc = worker_probe_artifact(so, name, version, stored, config, MANAGE_PROBE_TIMEOUT_MS,
                                       why, sizeof why);
        if (rc == -1) {
            snprintf(err, errlen, "backend '%s' does not load: %s", backend, why);
            status = HTTP_INTERNAL_ERROR;
        } else if (rc == -2) {
            snprintf(err, errlen, "backend '%s' refused %s version %s: %s", backend, name, version,
                     why);
            status = HTTP_UNPROCESSABLE;
        }
    }
    reg_status rs = REG_OK;
    if (status == HTTP_CREATED && deploy_blobs_publish_dir(s->reg, stored, sha, err, errlen) != 0)
        status = HTTP_INTERNAL_ERROR; /* the files go to a shared registry before the row */
    if (status == HTTP_CREATED)
        rs = registry_version_add_artifact(s->reg, name, version, so, backend, stored, sha, config,
                                           err, errlen);
    free(config);
    return rs == REG_OK ? status : reply_status_of_registry(rs);
}

typedef struct artifact_use {
    const char *sha;
    bool used;
} artifact_use;

static int manage_artifact_user(void *ud, const reg_version *v)
{
    artifact_use *u = ud;
    u->used = strcmp(v->artifact_sha256, u->sha) == 0;
    return u->used; /* stop at the first */
}

/* manage_add_stored_dir; when that refuses, the stored directory goes again unless a registered
 * version uses it (nothing is kept after a refusal). The caller holds manage_register_lock from
 * the import on, so no other registration can have come to use it meanwhile. */
static int manage_add_or_forget(manage_ctx *s, const char *name, const char *version,
                                const char *stored, const char *sha, char *err, size_t errlen)
{
    int status = manage_add_stored_dir(s, name, version, stored, sha, err, errlen);
    if (status == HTTP_CREATED)
        return status;
    artifact_use u = {.sha = sha};
    char ignored[256];
    if (registry_version_list(s->reg, manage_artifact_user, &u, ignored, sizeof ignored) ==
            REG_OK &&
        !u.used)
        artifact_remove(s->cfg->data_dir, sha);
    return status;
}

/* Record an import's result: the version when it stored (201, or the status of the refusal, the
 * stored files forgotten), else the import's own failure (400 invalid, 500). manage_register_lock
 * held, so the store and the registry agree. */
static int manage_import_record(manage_ctx *s, const char *name, const char *version,
                                artifact_status as, const char *stored, const char *sha, char *err,
                                size_t errlen)
{
    if (as == ARTIFACT_OK)
        return manage_add_or_forget(s, name, version, stored, sha, err, errlen);
    return as == ARTIFACT_INVALID ? HTTP_BAD_REQUEST : HTTP_INTERNAL_ERROR;
}

int manage_register_model_dir(manage_ctx *s, const char *name, const char *version, const char *dir,
                              char *err, size_t errlen)
{
    char sha[ARTIFACT_SHA256_HEX], stored[PATH_MAX];
    pthread_mutex_lock(&manage_register_lock);
    artifact_status as =
        artifact_import_dir(s->cfg->data_dir, dir, sha, stored, sizeof stored, err, errlen);
    int status = manage_import_record(s, name, version, as, stored, sha, err, errlen);
    pthread_mutex_unlock(&manage_register_lock);
    return status;
}

/* The event detail of a version made of files. */
static void manage_artifact_detail(manage_ctx *s, const char *name, const char *version,
                                   char *detail, size_t len)
{
    reg_version v = {0};
    char err[256];
    snprintf(detail, len, "{}");
    if (registry_version_get(s->reg, name, version, &v, err, sizeof err) == REG_OK)
        snprintf(detail, len, "{\"backend\":\"%s\",\"artifact_sha256\":\"%s\"}", v.backend,
                 v.artifact_sha256);
    reg_version_free(&v);
}

/* The answer to an upload or a directory registration that manage_import_record recorded. */
static void manage_reply_imported(manage_ctx *s, const char *name, const char *version, int status,
                                  const char *err, http_response *resp)
{
    if (status != HTTP_CREATED) {
        reply_error(resp, status, "%s", err);
        return;
    }
    char detail[256];
    manage_artifact_detail(s, name, version, detail, sizeof detail);
    manage_registered(s, name, version, detail, resp);
}

/* Register by directory path: only one plugin_dir_open accepts (plugin/plugin_file.h), read
 * through its descriptor so nothing swapped in after the check is read. */
static void manage_models_register_dir(manage_ctx *s, const char *name, const char *version,
                                       const char *dir, http_response *resp)
{
    char err[768], why[256], sha[ARTIFACT_SHA256_HEX], stored[PATH_MAX];
    int fd = -1;
    if (plugin_dir_open(s->plugin_dirs, dir, &fd, err, sizeof err, why, sizeof why) != 0) {
        log_warn("register %s version %s: model directory refused: %s", name, version, why);
        reply_error(resp, HTTP_BAD_REQUEST, "%s", err);
        return;
    }
    pthread_mutex_lock(&manage_register_lock);
    artifact_status as = artifact_import_dirfd(s->cfg->data_dir, fd, dir, sha, stored,
                                               sizeof stored, err, sizeof err);
    close(fd);
    int status = manage_import_record(s, name, version, as, stored, sha, err, sizeof err);
    pthread_mutex_unlock(&manage_register_lock);
    manage_reply_imported(s, name, version, status, err, resp);
}

/* Check, store, probe and record plugin bytes; a refused plugin leaves nothing in the store.
 * Writes the reply. */
static void manage_store_and_register(manage_ctx *s, const char *name, const char *version,
                                      const void *data, size_t len, const char *config_json,
                                      http_response *resp)
{
    char sha[STORE_SHA256_HEX], stored[PATH_MAX], err[512];
    if (plugin_elf_check(data, len, err, sizeof err) != 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "not a loadable plugin: %s", err);
        return;
    }
    store_sha256_bytes(data, len, sha);
    pthread_mutex_lock(&manage_register_lock);
    bool existed = store_has(s->cfg->data_dir, sha);
    if (store_import_bytes(s->cfg->data_dir, data, len, sha, stored, sizeof stored, err,
                           sizeof err) != 0) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "%s", err);
    } else {
        manage_register(s, name, version, stored, sha, config_json, resp);
        if (resp->status != HTTP_CREATED && !existed)
            store_remove(s->cfg->data_dir, sha);
    }
    pthread_mutex_unlock(&manage_register_lock);
}

/* Register by path: only a file plugin_file_open accepts (plugin/plugin_file.h). */
static void manage_register_path(manage_ctx *s, const char *name, const char *version,
                                 const char *path, const char *config_json, http_response *resp)
{
    char err[256], why[256];
    int fd = -1;
    size_t len = 0;
    if (plugin_file_open(s->plugin_dirs, path, (size_t)s->cfg->max_upload_bytes, &fd, &len, err,
                         sizeof err, why, sizeof why) != 0) {
        log_warn("register %s version %s: plugin path refused: %s", name, version, why);
        reply_error(resp, HTTP_BAD_REQUEST, "%s", err);
        return;
    }
    void *data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (data == MAP_FAILED) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "cannot read the plugin file");
        return;
    }
    manage_store_and_register(s, name, version, data, len, config_json, resp);
    munmap(data, len);
}

static void manage_models_register(manage_ctx *s, const http_request *req, http_response *resp)
{
    static const char *const fields[] = {"name", "version", "plugin", "config", "model_dir", NULL};
    cJSON *body = body_object(req, resp, fields);
    if (body == NULL)
        return;
    char name[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
    bool bad = false;
    const char *n = body_name_field(body, "name", name, sizeof name, &bad, resp);
    const char *v =
        bad ? NULL : body_name_field(body, "version", version, sizeof version, &bad, resp);
    const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(body, "plugin");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(body, "config");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(body, "model_dir");
    char *config_text = NULL;
    if (bad) {
    } else if (n && v && dir && !plugin && !config && cJSON_IsString(dir)) {
        manage_models_register_dir(s, n, v, dir->valuestring, resp);
    } else if (!n || !v || !cJSON_IsString(plugin) || dir) {
        reply_error(resp, HTTP_BAD_REQUEST,
                    "\"name\", \"version\" and either \"plugin\" (a path to a .so) or "
                    "\"model_dir\" (a directory with config.json; no \"config\") are required");
    } else if (config && !cJSON_IsObject(config)) {
        reply_error(resp, HTTP_BAD_REQUEST, "\"config\" must be a JSON object");
    } else {
        config_text = config ? cJSON_PrintUnformatted(config) : NULL;
        manage_register_path(s, n, v, plugin->valuestring, config_text ? config_text : "{}", resp);
    }
    free(config_text);
    cJSON_Delete(body);
}

/* A model directory as a tar of its files: stored, probed, recorded. */
static void manage_models_upload_tar(manage_ctx *s, const char *name, const char *version,
                                     const http_request *req, http_response *resp)
{
    char sha[ARTIFACT_SHA256_HEX], stored[PATH_MAX], err[768];
    pthread_mutex_lock(&manage_register_lock);
    artifact_status as = artifact_import_tar(s->cfg->data_dir, req->body, req->body_len, sha,
                                             stored, sizeof stored, err, sizeof err);
    int status = manage_import_record(s, name, version, as, stored, sha, err, sizeof err);
    pthread_mutex_unlock(&manage_register_lock);
    manage_reply_imported(s, name, version, status, err, resp);
}

static void manage_models_upload(manage_ctx *s, const char *name, const char *version,
                                 const http_request *req, http_response *resp)
{
    if (req->body_len > (size_t)s->cfg->max_upload_bytes) {
        reply_error(resp, HTTP_PAYLOAD_TOO_LARGE,
                    "plugin of %zu bytes exceeds the upload limit of %lld bytes", req->body_len,
                    (long long)s->cfg->max_upload_bytes);
        return;
    }
    if (req->body_len == 0) {
        reply_error(resp, HTTP_BAD_REQUEST, "upload the plugin's bytes as the request body");
        return;
    }
    const char *type = http_header(req, "Content-Type");
    if (type != NULL && strncasecmp(type, "application/x-tar", 17) == 0) {
        manage_models_upload_tar(s, name, version, req, resp);
        return;
    }
    manage_store_and_register(s, name, version, req->body, req->body_len, "{}", resp);
}

static void manage_models_delete(manage_ctx *s, const char *name, const char *version,
                                 http_response *resp)
{
    char err[512];
    reg_status rs = registry_version_delete(s->reg, name, version, err, sizeof err);
    if (rs != REG_OK) {
        reply_error(resp, reply_status_of_registry(rs), "%s", err);
        return;
    }
    registry_event_add(s->reg, "unregister", name, version, NULL, err, sizeof err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddBoolToObject(o, "deleted", true);
    reply_json(resp, HTTP_OK, o);
}

static void manage_models_show(manage_ctx *s, const char *name, const char *version,
                               http_response *resp)
{
    char err[512];
    reg_version v = {0};
    reg_status rs = registry_version_get(s->reg, name, version, &v, err, sizeof err);
    if (rs != REG_OK) {
        reply_error(resp, reply_status_of_registry(rs), "%s", err);
        return;
    }
    reply_json(resp, HTTP_OK, manage_version_json(&v));
    reg_version_free(&v);
}

void manage_models(void *cbdata, const http_request *req, http_response *resp)
{
    manage_ctx *s = cbdata;
    char buf[512];
    const char *seg[6];
    int n = path_segments(req->path, buf, sizeof buf, seg, 6);
    if (n == 1) {
        if (reply_method_is(req, "GET"))
            manage_models_list(s, resp);
        else if (reply_method_is(req, "POST"))
            manage_models_register(s, req, resp);
        else
            reply_bad_method(req, resp, "GET, POST");
    } else if (n == 2 && strcmp(seg[1], "stats") == 0) {
        char scope[16] = "replica";
        bool scoped = path_query_value(req->query, "scope", scope, sizeof scope);
        if (!reply_method_is(req, "GET"))
            reply_bad_method(req, resp, "GET");
        else if (scoped && strcmp(scope, "cluster") == 0)
            manage_stats_cluster(s, resp);
        else if (!scoped || strcmp(scope, "replica") == 0)
            manage_stats_all(s, resp);
        else
            reply_error(resp, HTTP_BAD_REQUEST, "scope must be replica (default) or cluster");
    } else if (n == 4 && strcmp(seg[2], "versions") == 0) {
        if (!name_valid(seg[1]) || !name_valid(seg[3]))
            reply_error(resp, HTTP_BAD_REQUEST,
                        "model name and version must match [A-Za-z0-9_.-]{1,64}");
        else if (reply_method_is(req, "GET"))
            manage_models_show(s, seg[1], seg[3], resp);
        else if (reply_method_is(req, "PUT"))
            manage_models_upload(s, seg[1], seg[3], req, resp);
        else if (reply_method_is(req, "DELETE"))
            manage_models_delete(s, seg[1], seg[3], resp);
        else
            reply_bad_method(req, resp, "GET, PUT, DELETE");
    } else {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
    }
}
