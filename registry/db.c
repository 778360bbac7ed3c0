/*
 * registry db: the connection and its pragmas, the cached prepared statements (every SQL
 * statement dynserve runs is in SQL[] below), errors, argument validation, statement helpers,
 * locking and transactions, open and close. See registry_internal.h for the file map.
 *
 * How it works. A handle holds one connection and a table of prepared statements indexed by
 * `enum stmt_id`; all SQL text lives in SQL[] below and is prepared on first use. Every public
 * function validates its arguments first (names never reach SQL unchecked), then takes the
 * handle's mutex. Mutations run through reg__tx_run(), which wraps one body function in
 * BEGIN IMMEDIATE ... COMMIT and rolls back on any failure, so each public call is exactly one
 * transaction. Statements are reset right after use so no read snapshot outlives a call (an
 * open snapshot would stop WAL checkpoints).
 */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

static const char *const SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_FOREIGN_KEYS_ON] = "PRAGMA foreign_keys = ON",
    [ST_JOURNAL_WAL] = "PRAGMA journal_mode = WAL",
    [ST_SYNCHRONOUS_FULL] = "PRAGMA synchronous = FULL",
    /* CASE, not AND: json_type() raises an error on malformed text. */
    [ST_JSON_IS_OBJECT] = "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' "
                          "ELSE 0 END",
    [ST_HAS_MIGRATIONS_TABLE] = "SELECT count(*) FROM sqlite_schema "
                                "WHERE type = 'table' AND name = 'schema_migrations'",
    [ST_COUNT_USER_OBJECTS] = "SELECT count(*) FROM sqlite_schema "
                              "WHERE substr(name, 1, 7) <> 'sqlite_'",
    [ST_CREATE_MIGRATIONS_TABLE] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                   "version INTEGER PRIMARY KEY CHECK (version > 0), "
                                   "name TEXT NOT NULL, "
                                   "applied_at TEXT NOT NULL DEFAULT (" NOW_SQL ")) STRICT",
    [ST_MAX_MIGRATION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
    [ST_INSERT_MIGRATION] = "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
    [ST_MODEL_ENSURE] = "INSERT INTO models (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
    [ST_MODEL_EXISTS] = "SELECT 1 FROM models WHERE name = ?1",
    [ST_MODEL_DELETE_IF_EMPTY] = "DELETE FROM models WHERE name = ?1 AND NOT EXISTS "
                                 "(SELECT 1 FROM model_versions WHERE model_name = ?1)",
    [ST_VERSION_INSERT] = "INSERT INTO model_versions "
                          "(model_name, version, plugin_path, plugin_sha256, config_json, "
                          "backend, artifact_dir, artifact_sha256) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_VERSION_GET] = "SELECT " VERSION_COLUMNS " FROM model_versions "
                       "WHERE model_name = ?1 AND version = ?2",
    [ST_VERSION_LIST] = "SELECT " VERSION_COLUMNS " FROM model_versions ORDER BY model_name, id",
    [ST_VERSION_DELETE] = "DELETE FROM model_versions WHERE id = ?1",
    [ST_DEPLOYMENT_ACTIVE_OF_VERSION] = "SELECT id FROM deployments "
                                        "WHERE model_name = ?1 AND version = ?2 "
                                        "AND status = 'active'",
    [ST_DEPLOYMENT_ACTIVE_ON_ENDPOINT] = "SELECT id, model_name, version FROM deployments "
                                         "WHERE endpoint_name = ?1 AND status = 'active'",
    [ST_DEPLOYMENT_CLOSE_FAILED_OF_VERSION] = "UPDATE deployments SET status = 'undeployed', "
                                              "undeployed_at = " NOW_SQL " "
                                              "WHERE version_id = ?1 AND status = 'failed'",
    [ST_DEPLOYMENT_INSERT] = "INSERT INTO deployments "
                             "(model_name, version, version_id, endpoint_name, options) "
                             "VALUES (?1, ?2, ?3, ?4, coalesce(?5, '{}'))",
    [ST_DEPLOYMENT_GET] = "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE id = ?1",
    [ST_DEPLOYMENT_END] = "UPDATE deployments SET status = ?2, status_reason = ?3, "
                          "undeployed_at = CASE WHEN ?2 = 'undeployed' THEN " NOW_SQL " END "
                          "WHERE id = ?1",
    [ST_DEPLOYMENT_LIST] = "SELECT " DEPLOYMENT_COLUMNS " FROM deployments "
                           "WHERE status IN ('active', 'failed') ORDER BY id",
    [ST_DEPLOYMENT_CRASH_ADD] = "UPDATE deployments SET server_crashes = server_crashes + 1 "
                                "WHERE id = ?1 RETURNING server_crashes",
    [ST_DEPLOYMENT_SET_OPTIONS] = "UPDATE deployments SET options = ?2 "
                                  "WHERE id = ?1 AND status = 'active'",
    [ST_EVENT_INSERT] = "INSERT INTO events (kind, model_name, version, detail_json, actor, "
                        "client_addr) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_EVENT_INSERT_DEPLOYMENT] = "INSERT INTO events (kind, model_name, version, detail_json, "
                                   "actor, client_addr) "
                                   "VALUES (?1, ?2, ?3, json_object('deployment_id', ?4, "
                                   "'endpoint_name', ?5, 'reason', ?6), ?7, ?8)",
    [ST_EVENT_INSERT_TRAFFIC] = "INSERT INTO events (kind, model_name, detail_json, actor, "
                                "client_addr) VALUES (?1, ?2, json_object('weights', json(?3), "
                                "'guard', json(?4), 'reason', ?5), ?6, ?7)",
    [ST_EVENT_LIST_ALL] = "SELECT " EVENT_COLUMNS " FROM events ORDER BY id DESC LIMIT ?1",
    [ST_EVENT_LIST_MODEL] = "SELECT " EVENT_COLUMNS " FROM events WHERE model_name = ?1 "
                            "ORDER BY id DESC LIMIT ?2",
    [ST_TRAFFIC_CURRENT] = "SELECT id, weights_json, guard_json FROM traffic_splits "
                           "WHERE model_name = ?1 AND state = 'current'",
    [ST_TRAFFIC_PREVIOUS] = "SELECT id FROM traffic_splits "
                            "WHERE model_name = ?1 AND state = 'superseded' AND id < ?2 "
                            "ORDER BY id DESC LIMIT 1",
    [ST_TRAFFIC_RETIRE_CURRENT] = "UPDATE traffic_splits SET state = ?2 "
                                  "WHERE model_name = ?1 AND state = 'current'",
    [ST_TRAFFIC_MAKE_CURRENT] = "UPDATE traffic_splits SET state = 'current' WHERE id = ?1",
    [ST_TRAFFIC_INSERT] = "INSERT INTO traffic_splits (model_name, weights_json, guard_json, "
                          "reason) VALUES (?1, ?2, ?3, ?4)",
    [ST_STATS_SAVE] = "INSERT INTO deployment_stats (deployment_id, request_count, error_4xx, "
                      "error_5xx, latency_sum_ms, last_request_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                      "ON CONFLICT (deployment_id) DO UPDATE SET "
                      "request_count = excluded.request_count, error_4xx = excluded.error_4xx, "
                      "error_5xx = excluded.error_5xx, latency_sum_ms = excluded.latency_sum_ms, "
                      "last_request_ms = excluded.last_request_ms, updated_at = " NOW_SQL,
    [ST_TOKEN_INSERT] = "INSERT INTO api_tokens (id, name, role, salt, token_hash, created_at, "
                        "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, " NOW_SQL "), ?7)",
    [ST_TOKEN_REVOKE_NAME] = "UPDATE api_tokens SET revoked_at = " NOW_SQL " "
                             "WHERE name = ?1 AND revoked_at IS NULL",
    /* An id match wins over a name match, so one call never revokes two tokens. */
    [ST_TOKEN_REVOKE_ONE] = "UPDATE api_tokens SET revoked_at = " NOW_SQL " WHERE rowid = "
                            "(SELECT rowid FROM api_tokens WHERE revoked_at IS NULL "
                            "AND (id = ?1 OR name = ?1) ORDER BY id = ?1 DESC LIMIT 1) "
                            "RETURNING " TOKEN_COLUMNS,
    [ST_TOKEN_LIST] = "SELECT " TOKEN_COLUMNS " FROM api_tokens ORDER BY created_at, rowid",
    [ST_TOKEN_TOUCH] = "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 "
                       "AND (last_used_at IS NULL OR last_used_at < ?2)",
    [ST_STATS_LOAD] = "SELECT request_count, error_4xx, error_5xx, latency_sum_ms, "
                      "last_request_ms "
                      "FROM deployment_stats WHERE deployment_id = ?1",
    [ST_STATS_ENDED_BY_VERSION] =
        "SELECT d.model_name, d.version, sum(s.request_count), sum(s.error_4xx), "
        "sum(s.error_5xx), sum(s.latency_sum_ms), max(s.last_request_ms) "
        "FROM deployments d JOIN deployment_stats s ON s.deployment_id = d.id "
        "WHERE d.status = 'undeployed' GROUP BY d.model_name, d.version "
        "ORDER BY d.model_name, d.version",
};

/* ---- errors ---------------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) reg_status reg__fail(char *err, size_t errlen, reg_status st,
                                                           const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Maps a failed SQLite call to a status. Constraint failures that the callers did not
 * pre-check (they pre-check the common ones for clearer messages) still map sensibly. */
static reg_status status_of(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return REG_EXISTS;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL: return REG_INVALID;
    case SQLITE_CONSTRAINT_FOREIGNKEY: return REG_CONFLICT;
    default: return REG_ERROR;
    }
}

/* Must be called before any other statement runs, or sqlite3_errmsg() describes that one. */
reg_status reg__db_fail(registry *r, int rc, char *err, size_t errlen, const char *what)
{
    return reg__fail(err, errlen, status_of(rc), "%s: %s (sqlite %d)", what, sqlite3_errmsg(r->db),
                     rc);
}

reg_status reg__no_memory(char *err, size_t errlen)
{
    return reg__fail(err, errlen, REG_ERROR, "out of memory");
}

const char *registry_status_str(reg_status s)
{
    switch (s) {
    case REG_OK: return "ok";
    case REG_NOT_FOUND: return "not found";
    case REG_EXISTS: return "already exists";
    case REG_CONFLICT: return "conflict";
    case REG_INVALID: return "invalid argument";
    case REG_TOO_NEW: return "database schema too new";
    case REG_ERROR: return "registry error";
    }
    return "unknown registry status";
}

/* ---- validation (pure, no SQL) --------------------------------------------------------- */

reg_status reg__check_name(const char *what, const char *s, char *err, size_t errlen)
{
    if (name_valid(s))
        return REG_OK;
    return reg__fail(err, errlen, REG_INVALID,
                     "invalid %s '%.80s': want 1-%d of [A-Za-z0-9_.-], "
                     "not '.' or '..'",
                     what, s ? s : "(null)", REG_NAME_MAX);
}

/* Optional names (version of an event, endpoint of a deployment): NULL or "" mean none. */
reg_status reg__check_optional_name(const char *what, const char *s, char *err, size_t errlen)
{
    return (!s || !*s) ? REG_OK : reg__check_name(what, s, err, errlen);
}

reg_status reg__check_handle(const registry *r, char *err, size_t errlen)
{
    return r ? REG_OK : reg__fail(err, errlen, REG_INVALID, "registry handle is NULL");
}

reg_status reg__check_event_kind(const char *kind, char *err, size_t errlen)
{
    if (name_valid(kind) && strlen(kind) < sizeof(((reg_event *)0)->kind))
        return REG_OK;
    return reg__fail(err, errlen, REG_INVALID, "invalid event kind '%.80s'",
                     kind ? kind : "(null)");
}

/* Lowercases a 64-digit hex SHA-256 into out; NULL or "" mean unknown (out = ""). */
reg_status reg__normalize_sha256(const char *in, char out[REG_SHA256_HEX], char *err, size_t errlen)
{
    out[0] = '\0';
    if (!in || !*in)
        return REG_OK;
    size_t n = strnlen(in, REG_SHA256_HEX);
    for (size_t i = 0; i < n && n == REG_SHA256_HEX - 1; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            break;
        out[i] = c;
        out[i + 1] = '\0';
    }
    if (strlen(out) == REG_SHA256_HEX - 1)
        return REG_OK;
    out[0] = '\0';
    return reg__fail(err, errlen, REG_INVALID, "sha256 must be 64 hex digits");
}

reg_status reg__check_plugin_path(const char *path, char *err, size_t errlen)
{
    if (path && *path && strnlen(path, PLUGIN_PATH_MAX + 1) <= PLUGIN_PATH_MAX)
        return REG_OK;
    return reg__fail(err, errlen, REG_INVALID, "plugin path must be 1-%d bytes", PLUGIN_PATH_MAX);
}

/* ---- statement helpers ----------------------------------------------------------------- */

void reg__stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binds `spec` arguments: 's' = const char * (NULL binds NULL), 'i' = int64_t, 'd' = double. */
static int bind_args(sqlite3_stmt *st, const char *spec, va_list ap)
{
    int rc = SQLITE_OK;
    for (int i = 0; spec[i] && rc == SQLITE_OK; i++) {
        if (spec[i] == 's') {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i + 1);
        } else if (spec[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else if (spec[i] == 'd') {
            rc = sqlite3_bind_double(st, i + 1, va_arg(ap, double));
        } else {
            rc = SQLITE_MISUSE;
        }
    }
    return rc;
}

static int vquery(registry *r, enum stmt_id id, sqlite3_stmt **out, const char *spec, va_list ap)
{
    int rc = SQLITE_OK;
    if (!r->stmts[id])
        rc = sqlite3_prepare_v2(r->db, SQL[id], -1, &r->stmts[id], NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = r->stmts[id];
    reg__stmt_done(st); /* a statement left mid-step by an earlier failure starts clean */
    rc = bind_args(st, spec, ap);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        sqlite3_reset(st); /* keeps sqlite3_errmsg() describing the failure */
    *out = st;
    return rc;
}

/* Runs statement `id` with the arguments of `spec` (see bind_args). SQLITE_ROW leaves *out on
 * the first row: read it, then call reg__stmt_done(*out). Any other result is already reset. */
int reg__query(registry *r, enum stmt_id id, sqlite3_stmt **out, const char *spec, ...)
{
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, out, spec, ap);
    va_end(ap);
    return rc;
}

/* Runs a statement whose rows (if any) do not matter; SQLITE_DONE on success. */
int reg__run(registry *r, enum stmt_id id, const char *spec, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, &st, spec, ap);
    va_end(ap);
    if (rc == SQLITE_ROW) {
        reg__stmt_done(st);
        rc = SQLITE_DONE;
    }
    return rc;
}

/* First column of a one-row query as an integer; *found says whether there was a row. */
reg_status reg__query_int(registry *r, enum stmt_id id, const char *what, int64_t *value,
                          bool *found, char *err, size_t errlen, const char *spec, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, &st, spec, ap);
    va_end(ap);
    *found = rc == SQLITE_ROW;
    *value = *found ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_ROW)
        reg__stmt_done(st);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? REG_OK
                                                   : reg__db_fail(r, rc, err, errlen, what);
}

void reg__copy_column(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = s ? strnlen(s, size - 1) : 0;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
}

/* malloc'd copy of a text column; *out = NULL for SQL NULL. false only when out of memory. */
bool reg__dup_column(sqlite3_stmt *st, int col, char **out)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

/* Row callback for reg__each_row(): 0 = next row, > 0 = stop, < 0 = out of memory. */

/* Calls fn for the row `rc`/`st` came back with and every row after it, then resets st. */
reg_status reg__each_row(registry *r, sqlite3_stmt *st, int rc, row_fn fn, void *ctx,
                         const char *what, char *err, size_t errlen)
{
    while (rc == SQLITE_ROW) {
        int verdict = fn(st, ctx);
        if (verdict != 0) {
            reg__stmt_done(st);
            return verdict < 0 ? reg__no_memory(err, errlen) : REG_OK;
        }
        rc = sqlite3_step(st);
    }
    reg_status status = rc == SQLITE_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, what);
    reg__stmt_done(st);
    return status;
}

/* ---- locking and transactions ---------------------------------------------------------- */

static reg_status lock(registry *r, char *err, size_t errlen)
{
    int rc = pthread_mutex_lock(&r->lock);
    if (rc == 0)
        return REG_OK;
    if (rc == EDEADLK)
        return reg__fail(err, errlen, REG_ERROR,
                         "registry called from inside one of its callbacks");
    return reg__fail(err, errlen, REG_ERROR, "registry lock: %s", strerror(rc));
}

static void unlock(registry *r)
{
    pthread_mutex_unlock(&r->lock);
}

static void rollback(registry *r)
{
    /* SQLite may already have rolled back (e.g. SQLITE_FULL); a second ROLLBACK would fail. */
    if (!sqlite3_get_autocommit(r->db))
        reg__run(r, ST_ROLLBACK, "");
}

/* Runs body inside BEGIN IMMEDIATE ... COMMIT; any failure rolls back. IMMEDIATE takes the
 * write lock up front, so a concurrent writer waits in busy_timeout instead of failing with
 * SQLITE_BUSY halfway through. body writes err when it fails. */
reg_status reg__tx_run(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    int rc = reg__run(r, ST_BEGIN, "");
    if (rc != SQLITE_DONE)
        return reg__db_fail(r, rc, err, errlen, "begin transaction");
    reg_status st = body(r, arg, err, errlen);
    if (st == REG_OK) {
        rc = reg__run(r, ST_COMMIT, "");
        if (rc == SQLITE_DONE)
            return REG_OK;
        st = reg__db_fail(r, rc, err, errlen, "commit");
    }
    rollback(r);
    return st;
}

/* One public mutating call: lock, one transaction, unlock. */
reg_status reg__locked_tx(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    if (lock(r, err, errlen) != REG_OK)
        return REG_ERROR;
    reg_status st = reg__tx_run(r, body, arg, err, errlen);
    unlock(r);
    return st;
}

/* One public read: lock, body (a single statement is its own consistent snapshot), unlock. */
reg_status reg__locked_read(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    if (lock(r, err, errlen) != REG_OK)
        return REG_ERROR;
    reg_status st = body(r, arg, err, errlen);
    unlock(r);
    return st;
}

/* NULL is allowed only when `optional`. */
reg_status reg__check_json_object(registry *r, const char *what, const char *json, bool optional,
                                  char *err, size_t errlen)
{
    if (!json)
        return optional ? REG_OK : reg__fail(err, errlen, REG_INVALID, "%s is missing", what);
    int64_t is_object = 0;
    bool found = false;
    reg_status st = reg__query_int(r, ST_JSON_IS_OBJECT, "check JSON", &is_object, &found, err,
                                   errlen, "s", json);
    if (st == REG_OK && !is_object)
        st = reg__fail(err, errlen, REG_INVALID, "%s is not a JSON object", what);
    return st;
}

/* ---- open and close ------------------------------------------------------------------- */

/* Connection settings that do not touch the file: safe before the too-new check. */
static reg_status configure_connection(registry *r, char *err, size_t errlen)
{
    sqlite3_extended_result_codes(r->db, 1);
    int rc = sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK)
        rc = reg__run(r, ST_FOREIGN_KEYS_ON, "");
    if (rc == SQLITE_OK || rc == SQLITE_DONE)
        rc = reg__run(r, ST_SYNCHRONOUS_FULL, "");
    return rc == SQLITE_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "configure connection");
}

/* journal_mode=WAL is persistent (it rewrites the file header), so it runs only after the
 * schema was found acceptable. In-memory databases report "memory" and keep it. */
static reg_status enable_wal(registry *r, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = reg__query(r, ST_JOURNAL_WAL, &st, "");
    if (rc != SQLITE_ROW)
        return reg__db_fail(r, rc, err, errlen, "enable WAL");
    char mode[16];
    reg__copy_column(mode, sizeof mode, st, 0);
    reg__stmt_done(st);
    if (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0)
        return REG_OK;
    return reg__fail(err, errlen, REG_ERROR, "enable WAL: journal mode stayed '%s'", mode);
}

static reg_status connect_and_migrate(registry *r, const char *path, char *err, size_t errlen)
{
    /* NOMUTEX: the handle's own mutex already serializes every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &r->db, flags, NULL);
    if (rc != SQLITE_OK)
        return reg__fail(err, errlen, REG_ERROR, "open %s: %s", path,
                         r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
    reg_status st = configure_connection(r, err, errlen);
    if (st == REG_OK)
        st = reg__read_applied_version(r, &r->schema_version, err, errlen);
    if (st == REG_OK)
        st = reg__refuse_if_too_new(r, r->schema_version, err, errlen);
    if (st == REG_OK)
        st = enable_wal(r, err, errlen);
    if (st == REG_OK)
        st = reg__migrate(r, err, errlen);
    return st;
}

static reg_status open_with(const char *path, const struct reg_migration *extra, registry **out,
                            char *err, size_t errlen)
{
    if (!out)
        return reg__fail(err, errlen, REG_INVALID, "registry_open: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return reg__fail(err, errlen, REG_INVALID, "registry path is empty");
    registry *r = calloc(1, sizeof *r);
    if (!r)
        return reg__no_memory(err, errlen);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&r->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (extra)
        r->extra = *extra;
    reg_status st = connect_and_migrate(r, path, err, errlen);
    r->extra = (struct reg_migration){0}; /* its strings were only borrowed for the open */
    if (st != REG_OK) {
        registry_close(r);
        return st;
    }
    *out = r;
    return REG_OK;
}

reg_status registry_open(const char *path, registry **out, char *err, size_t errlen)
{
    return open_with(path, NULL, out, err, errlen);
}

/* Test seam, deliberately not in registry.h (declared again in test/unit/test_registry.c):
 * opens `path` as a build that embeds one more migration would, so tests can produce a
 * database that is newer than this binary, or watch a failing migration roll back. */
reg_status registry_test_open_with_migration(const char *path, int number, const char *name,
                                             const char *sql, registry **out, char *err,
                                             size_t errlen);
reg_status registry_test_open_with_migration(const char *path, int number, const char *name,
                                             const char *sql, registry **out, char *err,
                                             size_t errlen)
{
    if (number <= registry_schema_version_known() || !name || !sql)
        return reg__fail(err, errlen, REG_INVALID, "extra migration must be numbered above %d",
                         registry_schema_version_known());
    struct reg_migration extra = {number, name, sql};
    return open_with(path, &extra, out, err, errlen);
}

void registry_close(registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(r->stmts[i]);
    /* Every statement is finalized, so close cannot be refused as busy. The last connection
     * to close checkpoints the WAL into the main file. */
    sqlite3_close(r->db);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static reg_status schema_version_read(registry *r, void *arg, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    *(int *)arg = r->schema_version;
    return REG_OK;
}

int registry_schema_version(registry *r)
{
    int version = -1;
    if (r)
        reg__locked_read(r, schema_version_read, &version, NULL, 0);
    return version;
}
