/*
 * registry.c: owns the SQLite database behind registry.h — the connection and its pragmas,
 * the cached prepared statements, the migration runner and every SQL statement dynserve runs.
 * It is the only file in the project that includes sqlite3.h.
 *
 * How it works. A handle holds one connection and a table of prepared statements indexed by
 * `enum stmt_id`; all SQL text lives in SQL[] below and is prepared on first use. Every public
 * function validates its arguments first (names never reach SQL unchecked), then takes the
 * handle's mutex. Mutations run through tx_run(), which wraps one body function in
 * BEGIN IMMEDIATE ... COMMIT and rolls back on any failure, so each public call is exactly one
 * transaction. Statements are reset right after use so no read snapshot outlives a call (an
 * open snapshot would stop WAL checkpoints).
 *
 * Migrations: cmake/embed_migrations.cmake turns migrations/NNNN_*.sql into reg_migrations[]
 * (sorted by number). registry_open() first reads the applied version without writing
 * anything, refuses a newer schema (REG_TOO_NEW, file untouched), and only then switches to
 * WAL and applies each pending migration in its own transaction with its schema_migrations row.
 */
#include "registry.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* Layout shared with the generated registry_migrations.c (see embed_migrations.cmake). */
struct reg_migration {
    int number;
    const char *name;
    const char *sql;
};

extern const struct reg_migration reg_migrations[];
extern const size_t reg_migrations_count;

#define BUSY_TIMEOUT_MS 5000
#define PLUGIN_PATH_MAX 4095
#define NOW_SQL         "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
#define VERSION_COLUMNS                                                                            \
    "id, model_name, version, plugin_path, coalesce(plugin_sha256, ''), config_json, created_at"
#define DEPLOYMENT_COLUMNS                                                                         \
    "id, model_name, version, coalesce(endpoint_name, ''), status, status_reason, deployed_at, "   \
    "coalesce(undeployed_at, '')"
#define EVENT_COLUMNS "id, at, kind, model_name, coalesce(version, ''), coalesce(detail_json, '')"

/* ---- statements ----------------------------------------------------------------------- */

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_FOREIGN_KEYS_ON,
    ST_JOURNAL_WAL,
    ST_SYNCHRONOUS_FULL,
    ST_JSON_IS_OBJECT,
    ST_HAS_MIGRATIONS_TABLE,
    ST_COUNT_USER_OBJECTS,
    ST_CREATE_MIGRATIONS_TABLE,
    ST_MAX_MIGRATION,
    ST_INSERT_MIGRATION,
    ST_MODEL_ENSURE,
    ST_MODEL_EXISTS,
    ST_MODEL_DELETE_IF_EMPTY,
    ST_VERSION_INSERT,
    ST_VERSION_GET,
    ST_VERSION_LIST,
    ST_VERSION_DELETE,
    ST_DEPLOYMENT_ACTIVE_OF_VERSION,
    ST_DEPLOYMENT_ACTIVE_ON_ENDPOINT,
    ST_DEPLOYMENT_CLOSE_FAILED_OF_VERSION,
    ST_DEPLOYMENT_INSERT,
    ST_DEPLOYMENT_GET,
    ST_DEPLOYMENT_END,
    ST_DEPLOYMENT_LIST,
    ST_EVENT_INSERT,
    ST_EVENT_INSERT_DEPLOYMENT,
    ST_EVENT_INSERT_TRAFFIC,
    ST_EVENT_LIST_ALL,
    ST_EVENT_LIST_MODEL,
    ST_TRAFFIC_CURRENT,
    ST_TRAFFIC_PREVIOUS,
    ST_TRAFFIC_RETIRE_CURRENT,
    ST_TRAFFIC_MAKE_CURRENT,
    ST_TRAFFIC_INSERT,
    ST_STATS_SAVE,
    ST_STATS_LOAD,
    ST_COUNT
};

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
                          "(model_name, version, plugin_path, plugin_sha256, config_json) "
                          "VALUES (?1, ?2, ?3, ?4, ?5)",
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
                             "(model_name, version, version_id, endpoint_name) "
                             "VALUES (?1, ?2, ?3, ?4)",
    [ST_DEPLOYMENT_GET] = "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE id = ?1",
    [ST_DEPLOYMENT_END] = "UPDATE deployments SET status = ?2, status_reason = ?3, "
                          "undeployed_at = CASE WHEN ?2 = 'undeployed' THEN " NOW_SQL " END "
                          "WHERE id = ?1",
    [ST_DEPLOYMENT_LIST] = "SELECT " DEPLOYMENT_COLUMNS " FROM deployments "
                           "WHERE status IN ('active', 'failed') ORDER BY id",
    [ST_EVENT_INSERT] = "INSERT INTO events (kind, model_name, version, detail_json) "
                        "VALUES (?1, ?2, ?3, ?4)",
    [ST_EVENT_INSERT_DEPLOYMENT] = "INSERT INTO events (kind, model_name, version, detail_json) "
                                   "VALUES (?1, ?2, ?3, json_object('deployment_id', ?4, "
                                   "'endpoint_name', ?5, 'reason', ?6))",
    [ST_EVENT_INSERT_TRAFFIC] = "INSERT INTO events (kind, model_name, detail_json) "
                                "VALUES (?1, ?2, json_object('weights', json(?3), "
                                "'guard', json(?4), 'reason', ?5))",
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
                      "error_5xx, latency_sum_ms) VALUES (?1, ?2, ?3, ?4, ?5) "
                      "ON CONFLICT (deployment_id) DO UPDATE SET "
                      "request_count = excluded.request_count, error_4xx = excluded.error_4xx, "
                      "error_5xx = excluded.error_5xx, latency_sum_ms = excluded.latency_sum_ms, "
                      "updated_at = " NOW_SQL,
    [ST_STATS_LOAD] = "SELECT request_count, error_4xx, error_5xx, latency_sum_ms "
                      "FROM deployment_stats WHERE deployment_id = ?1",
};

/* ---- the handle ------------------------------------------------------------------------ */

struct registry {
    /* Guards every other field and the connection: each public function holds it for its
     * whole duration, so calls are serialized and the connection (opened NOMUTEX) is never
     * used by two threads at once. Error-checking, so a callback that calls back into the
     * registry gets REG_ERROR instead of a deadlock. */
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT]; /* prepared on first use, finalized by registry_close */
    int schema_version;            /* highest applied migration */
    struct reg_migration extra;    /* test seam: one migration beyond the embedded ones */
};

/* ---- errors ---------------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static reg_status fail(char *err, size_t errlen,
                                                             reg_status st, const char *fmt, ...)
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
static reg_status db_fail(registry *r, int rc, char *err, size_t errlen, const char *what)
{
    return fail(err, errlen, status_of(rc), "%s: %s (sqlite %d)", what, sqlite3_errmsg(r->db), rc);
}

static reg_status no_memory(char *err, size_t errlen)
{
    return fail(err, errlen, REG_ERROR, "out of memory");
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

static bool name_char_ok(char c)
{
    /* Explicit ranges instead of isalnum(): locale-independent and ASCII only. */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

bool registry_name_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, REG_NAME_MAX + 1);
    if (n == 0 || n > REG_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(s[i]))
            return false;
    return true;
}

static reg_status check_name(const char *what, const char *s, char *err, size_t errlen)
{
    if (registry_name_valid(s))
        return REG_OK;
    return fail(err, errlen, REG_INVALID,
                "invalid %s '%.80s': want 1-%d of [A-Za-z0-9_.-], "
                "not '.' or '..'",
                what, s ? s : "(null)", REG_NAME_MAX);
}

/* Optional names (version of an event, endpoint of a deployment): NULL or "" mean none. */
static reg_status check_optional_name(const char *what, const char *s, char *err, size_t errlen)
{
    return (!s || !*s) ? REG_OK : check_name(what, s, err, errlen);
}

static reg_status check_handle(const registry *r, char *err, size_t errlen)
{
    return r ? REG_OK : fail(err, errlen, REG_INVALID, "registry handle is NULL");
}

static reg_status check_event_kind(const char *kind, char *err, size_t errlen)
{
    if (registry_name_valid(kind) && strlen(kind) < sizeof(((reg_event *)0)->kind))
        return REG_OK;
    return fail(err, errlen, REG_INVALID, "invalid event kind '%.80s'", kind ? kind : "(null)");
}

/* Lowercases a 64-digit hex SHA-256 into out; NULL or "" mean unknown (out = ""). */
static reg_status normalize_sha256(const char *in, char out[REG_SHA256_HEX], char *err,
                                   size_t errlen)
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
    return fail(err, errlen, REG_INVALID, "sha256 must be 64 hex digits");
}

static reg_status check_plugin_path(const char *path, char *err, size_t errlen)
{
    if (path && *path && strnlen(path, PLUGIN_PATH_MAX + 1) <= PLUGIN_PATH_MAX)
        return REG_OK;
    return fail(err, errlen, REG_INVALID, "plugin path must be 1-%d bytes", PLUGIN_PATH_MAX);
}

/* ---- statement helpers ----------------------------------------------------------------- */

static void stmt_done(sqlite3_stmt *st)
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
    stmt_done(st); /* a statement left mid-step by an earlier failure starts clean */
    rc = bind_args(st, spec, ap);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        sqlite3_reset(st); /* keeps sqlite3_errmsg() describing the failure */
    *out = st;
    return rc;
}

/* Runs statement `id` with the arguments of `spec` (see bind_args). SQLITE_ROW leaves *out on
 * the first row: read it, then call stmt_done(*out). Any other result is already reset. */
static int query(registry *r, enum stmt_id id, sqlite3_stmt **out, const char *spec, ...)
{
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, out, spec, ap);
    va_end(ap);
    return rc;
}

/* Runs a statement whose rows (if any) do not matter; SQLITE_DONE on success. */
static int run(registry *r, enum stmt_id id, const char *spec, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, &st, spec, ap);
    va_end(ap);
    if (rc == SQLITE_ROW) {
        stmt_done(st);
        rc = SQLITE_DONE;
    }
    return rc;
}

/* First column of a one-row query as an integer; *found says whether there was a row. */
static reg_status query_int(registry *r, enum stmt_id id, const char *what, int64_t *value,
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
        stmt_done(st);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? REG_OK : db_fail(r, rc, err, errlen, what);
}

static void copy_column(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = s ? strnlen(s, size - 1) : 0;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
}

/* malloc'd copy of a text column; *out = NULL for SQL NULL. false only when out of memory. */
static bool dup_column(sqlite3_stmt *st, int col, char **out)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

/* Row callback for each_row(): 0 = next row, > 0 = stop, < 0 = out of memory. */
typedef int (*row_fn)(sqlite3_stmt *st, void *ctx);

/* Calls fn for the row `rc`/`st` came back with and every row after it, then resets st. */
static reg_status each_row(registry *r, sqlite3_stmt *st, int rc, row_fn fn, void *ctx,
                           const char *what, char *err, size_t errlen)
{
    while (rc == SQLITE_ROW) {
        int verdict = fn(st, ctx);
        if (verdict != 0) {
            stmt_done(st);
            return verdict < 0 ? no_memory(err, errlen) : REG_OK;
        }
        rc = sqlite3_step(st);
    }
    reg_status status = rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, what);
    stmt_done(st);
    return status;
}

/* ---- locking and transactions ---------------------------------------------------------- */

static reg_status lock(registry *r, char *err, size_t errlen)
{
    int rc = pthread_mutex_lock(&r->lock);
    if (rc == 0)
        return REG_OK;
    if (rc == EDEADLK)
        return fail(err, errlen, REG_ERROR, "registry called from inside one of its callbacks");
    return fail(err, errlen, REG_ERROR, "registry lock: %s", strerror(rc));
}

static void unlock(registry *r)
{
    pthread_mutex_unlock(&r->lock);
}

typedef reg_status (*tx_body)(registry *r, void *arg, char *err, size_t errlen);

static void rollback(registry *r)
{
    /* SQLite may already have rolled back (e.g. SQLITE_FULL); a second ROLLBACK would fail. */
    if (!sqlite3_get_autocommit(r->db))
        run(r, ST_ROLLBACK, "");
}

/* Runs body inside BEGIN IMMEDIATE ... COMMIT; any failure rolls back. IMMEDIATE takes the
 * write lock up front, so a concurrent writer waits in busy_timeout instead of failing with
 * SQLITE_BUSY halfway through. body writes err when it fails. */
static reg_status tx_run(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    int rc = run(r, ST_BEGIN, "");
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "begin transaction");
    reg_status st = body(r, arg, err, errlen);
    if (st == REG_OK) {
        rc = run(r, ST_COMMIT, "");
        if (rc == SQLITE_DONE)
            return REG_OK;
        st = db_fail(r, rc, err, errlen, "commit");
    }
    rollback(r);
    return st;
}

/* One public mutating call: lock, one transaction, unlock. */
static reg_status locked_tx(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    if (lock(r, err, errlen) != REG_OK)
        return REG_ERROR;
    reg_status st = tx_run(r, body, arg, err, errlen);
    unlock(r);
    return st;
}

/* One public read: lock, body (a single statement is its own consistent snapshot), unlock. */
static reg_status locked_read(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    if (lock(r, err, errlen) != REG_OK)
        return REG_ERROR;
    reg_status st = body(r, arg, err, errlen);
    unlock(r);
    return st;
}

/* NULL is allowed only when `optional`. */
static reg_status check_json_object(registry *r, const char *what, const char *json, bool optional,
                                    char *err, size_t errlen)
{
    if (!json)
        return optional ? REG_OK : fail(err, errlen, REG_INVALID, "%s is missing", what);
    int64_t is_object = 0;
    bool found = false;
    reg_status st =
        query_int(r, ST_JSON_IS_OBJECT, "check JSON", &is_object, &found, err, errlen, "s", json);
    if (st == REG_OK && !is_object)
        st = fail(err, errlen, REG_INVALID, "%s is not a JSON object", what);
    return st;
}

/* ---- migrations and open --------------------------------------------------------------- */

int registry_schema_version_known(void)
{
    return reg_migrations_count ? reg_migrations[reg_migrations_count - 1].number : 0;
}

/* The migrations this handle knows: the embedded ones plus the test seam's extra one. */
static const struct reg_migration *migration_at(const registry *r, size_t i)
{
    if (i < reg_migrations_count)
        return &reg_migrations[i];
    if (i == reg_migrations_count && r->extra.sql)
        return &r->extra;
    return NULL;
}

static int known_version(const registry *r)
{
    return r->extra.sql ? r->extra.number : registry_schema_version_known();
}

/* Reads the applied schema version without writing anything. An empty file is version 0; a
 * database with tables but no schema_migrations is someone else's and is refused. */
static reg_status read_applied_version(registry *r, int *version, char *err, size_t errlen)
{
    int64_t n = 0;
    bool found = false;
    reg_status st =
        query_int(r, ST_HAS_MIGRATIONS_TABLE, "read schema", &n, &found, err, errlen, "");
    if (st == REG_OK && n == 0) {
        st = query_int(r, ST_COUNT_USER_OBJECTS, "read schema", &n, &found, err, errlen, "");
        *version = 0;
        if (st == REG_OK && n > 0)
            st = fail(err, errlen, REG_ERROR,
                      "not a dynserve registry: the database has "
                      "tables but no schema_migrations");
        return st;
    }
    if (st == REG_OK)
        st = query_int(r, ST_MAX_MIGRATION, "read schema_migrations", &n, &found, err, errlen, "");
    *version = (int)n;
    return st;
}

static reg_status refuse_if_too_new(const registry *r, int applied, char *err, size_t errlen)
{
    if (applied <= known_version(r))
        return REG_OK;
    return fail(err, errlen, REG_TOO_NEW,
                "database schema version %d is newer than this "
                "binary knows (%d); upgrade dynserve",
                applied, known_version(r));
}

/* Runs a multi-statement migration script one prepared statement at a time. */
static int exec_script(sqlite3 *db, const char *sql)
{
    const char *tail = sql;
    while (tail && *tail) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
        if (rc != SQLITE_OK)
            return rc;
        if (!st) /* only whitespace or comments were left */
            continue;
        do
            rc = sqlite3_step(st);
        while (rc == SQLITE_ROW);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return rc;
    }
    return SQLITE_OK;
}

static reg_status migration_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct reg_migration *m = arg;
    int rc = run(r, ST_CREATE_MIGRATIONS_TABLE, "");
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "create schema_migrations");
    /* Re-read under the write lock: another process may have migrated since we looked. */
    int applied = 0;
    reg_status st = read_applied_version(r, &applied, err, errlen);
    if (st == REG_OK)
        st = refuse_if_too_new(r, applied, err, errlen);
    if (st != REG_OK || applied >= m->number)
        return st;
    rc = exec_script(r->db, m->sql);
    if (rc != SQLITE_OK)
        return fail(err, errlen, REG_ERROR, "migration %s failed: %s (sqlite %d)", m->name,
                    sqlite3_errmsg(r->db), rc);
    rc = run(r, ST_INSERT_MIGRATION, "is", (int64_t)m->number, m->name);
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "record migration");
    return REG_OK;
}

static reg_status migrate(registry *r, char *err, size_t errlen)
{
    const struct reg_migration *m;
    for (size_t i = 0; (m = migration_at(r, i)) != NULL; i++) {
        if (m->number <= r->schema_version)
            continue;
        reg_status st = tx_run(r, migration_tx, (void *)m, err, errlen);
        if (st != REG_OK)
            return st;
        st = read_applied_version(r, &r->schema_version, err, errlen);
        if (st != REG_OK)
            return st;
    }
    return REG_OK;
}

/* Connection settings that do not touch the file: safe before the too-new check. */
static reg_status configure_connection(registry *r, char *err, size_t errlen)
{
    sqlite3_extended_result_codes(r->db, 1);
    int rc = sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK)
        rc = run(r, ST_FOREIGN_KEYS_ON, "");
    if (rc == SQLITE_OK || rc == SQLITE_DONE)
        rc = run(r, ST_SYNCHRONOUS_FULL, "");
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "configure connection");
}

/* journal_mode=WAL is persistent (it rewrites the file header), so it runs only after the
 * schema was found acceptable. In-memory databases report "memory" and keep it. */
static reg_status enable_wal(registry *r, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_JOURNAL_WAL, &st, "");
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "enable WAL");
    char mode[16];
    copy_column(mode, sizeof mode, st, 0);
    stmt_done(st);
    if (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0)
        return REG_OK;
    return fail(err, errlen, REG_ERROR, "enable WAL: journal mode stayed '%s'", mode);
}

static reg_status connect_and_migrate(registry *r, const char *path, char *err, size_t errlen)
{
    /* NOMUTEX: the handle's own mutex already serializes every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &r->db, flags, NULL);
    if (rc != SQLITE_OK)
        return fail(err, errlen, REG_ERROR, "open %s: %s", path,
                    r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
    reg_status st = configure_connection(r, err, errlen);
    if (st == REG_OK)
        st = read_applied_version(r, &r->schema_version, err, errlen);
    if (st == REG_OK)
        st = refuse_if_too_new(r, r->schema_version, err, errlen);
    if (st == REG_OK)
        st = enable_wal(r, err, errlen);
    if (st == REG_OK)
        st = migrate(r, err, errlen);
    return st;
}

static reg_status open_with(const char *path, const struct reg_migration *extra, registry **out,
                            char *err, size_t errlen)
{
    if (!out)
        return fail(err, errlen, REG_INVALID, "registry_open: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return fail(err, errlen, REG_INVALID, "registry path is empty");
    registry *r = calloc(1, sizeof *r);
    if (!r)
        return no_memory(err, errlen);
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
        return fail(err, errlen, REG_INVALID, "extra migration must be numbered above %d",
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
        locked_read(r, schema_version_read, &version, NULL, 0);
    return version;
}

/* ---- model versions -------------------------------------------------------------------- */

void reg_version_free(reg_version *v)
{
    if (!v)
        return;
    free(v->plugin_path);
    free(v->config_json);
    v->plugin_path = NULL;
    v->config_json = NULL;
}

/* Fills *v from a VERSION_COLUMNS row; false when out of memory (v then owns nothing). */
static bool version_from_row(sqlite3_stmt *st, reg_version *v)
{
    memset(v, 0, sizeof *v);
    v->id = sqlite3_column_int64(st, 0);
    copy_column(v->name, sizeof v->name, st, 1);
    copy_column(v->version, sizeof v->version, st, 2);
    copy_column(v->sha256, sizeof v->sha256, st, 4);
    copy_column(v->created_at, sizeof v->created_at, st, 6);
    if (dup_column(st, 3, &v->plugin_path) && dup_column(st, 5, &v->config_json))
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
};

static reg_status check_version_key(registry *r, const char *name, const char *version, char *err,
                                    size_t errlen)
{
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_name("model name", name, err, errlen);
    if (st == REG_OK)
        st = check_name("version", version, err, errlen);
    return st;
}

static reg_status version_add_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct version_args *a = arg;
    reg_status st = check_json_object(r, "config_json", a->config_json, false, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = run(r, ST_MODEL_ENSURE, "s", a->name);
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "register model");
    rc = run(r, ST_VERSION_INSERT, "sssss", a->name, a->version, a->plugin_path,
             a->sha256[0] ? a->sha256 : NULL, a->config_json);
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        return fail(err, errlen, REG_EXISTS, "model %s version %s is already registered", a->name,
                    a->version);
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "register version");
}

reg_status registry_version_add(registry *r, const char *name, const char *version,
                                const char *plugin_path, const char *sha256,
                                const char *config_json, char *err, size_t errlen)
{
    struct version_args a = {name, version, plugin_path, config_json ? config_json : "{}",
                             "",   NULL};
    reg_status st = check_version_key(r, name, version, err, errlen);
    if (st == REG_OK)
        st = check_plugin_path(plugin_path, err, errlen);
    if (st == REG_OK)
        st = normalize_sha256(sha256, a.sha256, err, errlen);
    return st == REG_OK ? locked_tx(r, version_add_tx, &a, err, errlen) : st;
}

static reg_status version_get_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct version_args *a = arg;
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_VERSION_GET, &st, "ss", a->name, a->version);
    if (rc == SQLITE_DONE)
        return fail(err, errlen, REG_NOT_FOUND, "model %s version %s is not registered", a->name,
                    a->version);
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "read version");
    bool ok = version_from_row(st, a->out);
    stmt_done(st);
    return ok ? REG_OK : no_memory(err, errlen);
}

reg_status registry_version_get(registry *r, const char *name, const char *version,
                                reg_version *out, char *err, size_t errlen)
{
    if (!out)
        return fail(err, errlen, REG_INVALID, "registry_version_get: out is NULL");
    memset(out, 0, sizeof *out);
    struct version_args a = {.name = name, .version = version, .out = out};
    reg_status st = check_version_key(r, name, version, err, errlen);
    return st == REG_OK ? locked_read(r, version_get_read, &a, err, errlen) : st;
}

/* Finds the id of a registered version; REG_NOT_FOUND when absent. */
static reg_status find_version_id(registry *r, const char *name, const char *version, int64_t *id,
                                  char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_VERSION_GET, &st, "ss", name, version);
    if (rc == SQLITE_DONE)
        return fail(err, errlen, REG_NOT_FOUND, "model %s version %s is not registered", name,
                    version);
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "find version");
    *id = sqlite3_column_int64(st, 0);
    stmt_done(st);
    return REG_OK;
}

/* REG_EXISTS (deploy) or REG_CONFLICT (delete) when the version has an active deployment. */
static reg_status refuse_if_active(registry *r, const char *name, const char *version,
                                   reg_status refusal, char *err, size_t errlen)
{
    int64_t id = 0;
    bool found = false;
    reg_status st = query_int(r, ST_DEPLOYMENT_ACTIVE_OF_VERSION, "find deployment", &id, &found,
                              err, errlen, "ss", name, version);
    if (st != REG_OK || !found)
        return st;
    return fail(err, errlen, refusal, "model %s version %s is deployed (deployment %lld)%s", name,
                version, (long long)id, refusal == REG_CONFLICT ? "; undeploy it first" : "");
}

static reg_status version_delete_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct version_args *a = arg;
    int64_t id = 0;
    reg_status st = find_version_id(r, a->name, a->version, &id, err, errlen);
    if (st == REG_OK)
        st = refuse_if_active(r, a->name, a->version, REG_CONFLICT, err, errlen);
    if (st != REG_OK)
        return st;
    /* A failed deployment would be retried at startup; its version is going away. */
    int rc = run(r, ST_DEPLOYMENT_CLOSE_FAILED_OF_VERSION, "i", id);
    if (rc == SQLITE_DONE)
        rc = run(r, ST_VERSION_DELETE, "i", id);
    if (rc == SQLITE_DONE)
        rc = run(r, ST_MODEL_DELETE_IF_EMPTY, "s", a->name);
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "delete version");
}

reg_status registry_version_delete(registry *r, const char *name, const char *version, char *err,
                                   size_t errlen)
{
    struct version_args a = {.name = name, .version = version};
    reg_status st = check_version_key(r, name, version, err, errlen);
    return st == REG_OK ? locked_tx(r, version_delete_tx, &a, err, errlen) : st;
}

/* Arguments of the list functions; exactly one of the callbacks is set. */
struct list_ctx {
    reg_version_fn version_fn;
    reg_deployment_fn deployment_fn;
    reg_event_fn event_fn;
    void *ud;
    const char *model_name; /* event filter, NULL = all */
    int limit;
};

static int version_row(sqlite3_stmt *st, void *arg)
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
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_VERSION_LIST, &st, "");
    return each_row(r, st, rc, version_row, arg, "list versions", err, errlen);
}

reg_status registry_version_list(registry *r, reg_version_fn fn, void *ud, char *err, size_t errlen)
{
    struct list_ctx c = {.version_fn = fn, .ud = ud};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK && !fn)
        st = fail(err, errlen, REG_INVALID, "registry_version_list: fn is NULL");
    return st == REG_OK ? locked_read(r, version_list_read, &c, err, errlen) : st;
}

/* ---- deployments ----------------------------------------------------------------------- */

void reg_deployment_free(reg_deployment *d)
{
    if (!d)
        return;
    free(d->status_reason);
    d->status_reason = NULL;
}

/* Fills *d from a DEPLOYMENT_COLUMNS row; false when out of memory. */
static bool deployment_from_row(sqlite3_stmt *st, reg_deployment *d)
{
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(st, 0);
    copy_column(d->model_name, sizeof d->model_name, st, 1);
    copy_column(d->version, sizeof d->version, st, 2);
    copy_column(d->endpoint_name, sizeof d->endpoint_name, st, 3);
    copy_column(d->status, sizeof d->status, st, 4);
    copy_column(d->deployed_at, sizeof d->deployed_at, st, 6);
    copy_column(d->undeployed_at, sizeof d->undeployed_at, st, 7);
    return dup_column(st, 5, &d->status_reason);
}

/* Reads deployment `id` into *d (caller frees); REG_NOT_FOUND when there is none. */
static reg_status deployment_read(registry *r, int64_t id, reg_deployment *d, char *err,
                                  size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_DEPLOYMENT_GET, &st, "i", id);
    if (rc == SQLITE_DONE)
        return fail(err, errlen, REG_NOT_FOUND, "no deployment %lld", (long long)id);
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "read deployment");
    bool ok = deployment_from_row(st, d);
    stmt_done(st);
    return ok ? REG_OK : no_memory(err, errlen);
}

struct deploy_args {
    const char *name;
    const char *version;
    const char *endpoint; /* NULL = none */
    reg_deployment *out;  /* create: filled on success, may be NULL */
    int64_t id;           /* end: which deployment */
    const char *status;   /* end: "undeployed" or "failed" */
    const char *reason;   /* end: may be NULL */
};

static reg_status refuse_if_endpoint_taken(registry *r, const char *endpoint, char *err,
                                           size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc =
        endpoint ? query(r, ST_DEPLOYMENT_ACTIVE_ON_ENDPOINT, &st, "s", endpoint) : SQLITE_DONE;
    if (rc == SQLITE_DONE)
        return REG_OK;
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "find endpoint");
    char model[REG_NAME_MAX + 1], version[REG_NAME_MAX + 1];
    long long id = sqlite3_column_int64(st, 0);
    copy_column(model, sizeof model, st, 1);
    copy_column(version, sizeof version, st, 2);
    stmt_done(st);
    return fail(err, errlen, REG_EXISTS,
                "endpoint name %s is taken by model %s version %s "
                "(deployment %lld)",
                endpoint, model, version, id);
}

static reg_status add_deployment_event(registry *r, const char *kind, const reg_deployment *d,
                                       const char *reason, char *err, size_t errlen)
{
    const char *endpoint = d->endpoint_name[0] ? d->endpoint_name : NULL;
    int rc = run(r, ST_EVENT_INSERT_DEPLOYMENT, "sssiss", kind, d->model_name, d->version, d->id,
                 endpoint, reason);
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "record event");
}

/* Inserts the active row (closing a failed one of the same version first, which the
 * one-live-deployment-per-version index requires) and reads it back into *d. */
static reg_status insert_deployment(registry *r, const struct deploy_args *a, int64_t version_id,
                                    reg_deployment *d, char *err, size_t errlen)
{
    int rc = run(r, ST_DEPLOYMENT_CLOSE_FAILED_OF_VERSION, "i", version_id);
    if (rc == SQLITE_DONE)
        rc = run(r, ST_DEPLOYMENT_INSERT, "ssis", a->name, a->version, version_id, a->endpoint);
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "record deployment");
    return deployment_read(r, sqlite3_last_insert_rowid(r->db), d, err, errlen);
}

static reg_status deployment_create_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct deploy_args *a = arg;
    int64_t version_id = 0;
    reg_deployment d = {0};
    reg_status st = find_version_id(r, a->name, a->version, &version_id, err, errlen);
    if (st == REG_OK)
        st = refuse_if_active(r, a->name, a->version, REG_EXISTS, err, errlen);
    if (st == REG_OK)
        st = refuse_if_endpoint_taken(r, a->endpoint, err, errlen);
    if (st == REG_OK)
        st = insert_deployment(r, a, version_id, &d, err, errlen);
    if (st == REG_OK)
        st = add_deployment_event(r, "deploy", &d, NULL, err, errlen);
    if (st == REG_OK && a->out)
        *a->out = d; /* ownership of status_reason moves to the caller */
    else
        reg_deployment_free(&d);
    return st;
}

reg_status registry_deployment_create(registry *r, const char *name, const char *version,
                                      const char *endpoint_name, reg_deployment *out, char *err,
                                      size_t errlen)
{
    struct deploy_args a = {name, version, (endpoint_name && *endpoint_name) ? endpoint_name : NULL,
                            out,  0,       NULL,
                            NULL};
    if (out)
        memset(out, 0, sizeof *out);
    reg_status st = check_version_key(r, name, version, err, errlen);
    if (st == REG_OK)
        st = check_optional_name("endpoint name", endpoint_name, err, errlen);
    if (st == REG_OK)
        st = locked_tx(r, deployment_create_tx, &a, err, errlen);
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
        st =
            fail(err, errlen, REG_NOT_FOUND, "deployment %lld has already ended", (long long)a->id);
    if (st == REG_OK) {
        int rc = run(r, ST_DEPLOYMENT_END, "iss", a->id, a->status, a->reason);
        if (rc != SQLITE_DONE)
            st = db_fail(r, rc, err, errlen, "end deployment");
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
    return fail(err, errlen, REG_INVALID,
                "deployment end status must be 'undeployed' or "
                "'failed', not '%.32s'",
                status ? status : "(null)");
}

reg_status registry_deployment_end(registry *r, int64_t id, const char *status, const char *reason,
                                   char *err, size_t errlen)
{
    struct deploy_args a = {.id = id, .status = status, .reason = reason};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_end_status(status, err, errlen);
    return st == REG_OK ? locked_tx(r, deployment_end_tx, &a, err, errlen) : st;
}

static int deployment_row(sqlite3_stmt *st, void *arg)
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
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_DEPLOYMENT_LIST, &st, "");
    return each_row(r, st, rc, deployment_row, arg, "list deployments", err, errlen);
}

reg_status registry_deployment_list(registry *r, reg_deployment_fn fn, void *ud, char *err,
                                    size_t errlen)
{
    struct list_ctx c = {.deployment_fn = fn, .ud = ud};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK && !fn)
        st = fail(err, errlen, REG_INVALID, "registry_deployment_list: fn is NULL");
    return st == REG_OK ? locked_read(r, deployment_list_read, &c, err, errlen) : st;
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
    reg_status st = check_json_object(r, "event detail", a->detail, true, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = run(r, ST_EVENT_INSERT, "ssss", a->kind, a->model_name, a->version, a->detail);
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "record event");
}

reg_status registry_event_add(registry *r, const char *kind, const char *model_name,
                              const char *version, const char *detail_json, char *err,
                              size_t errlen)
{
    struct event_args a = {kind, model_name, (version && *version) ? version : NULL,
                           (detail_json && *detail_json) ? detail_json : NULL};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_event_kind(kind, err, errlen);
    if (st == REG_OK)
        st = check_name("model name", model_name, err, errlen);
    if (st == REG_OK)
        st = check_optional_name("version", version, err, errlen);
    return st == REG_OK ? locked_tx(r, event_add_tx, &a, err, errlen) : st;
}

static int event_row(sqlite3_stmt *st, void *arg)
{
    struct list_ctx *c = arg;
    reg_event e = {0};
    e.id = sqlite3_column_int64(st, 0);
    copy_column(e.at, sizeof e.at, st, 1);
    copy_column(e.kind, sizeof e.kind, st, 2);
    copy_column(e.model_name, sizeof e.model_name, st, 3);
    copy_column(e.version, sizeof e.version, st, 4);
    /* Borrowed from SQLite: valid until the next step, i.e. for the callback only. */
    e.detail = (const char *)sqlite3_column_text(st, 5);
    if (!e.detail)
        return -1;
    return c->event_fn(c->ud, &e) ? 1 : 0;
}

static reg_status event_list_read(registry *r, void *arg, char *err, size_t errlen)
{
    const struct list_ctx *c = arg;
    sqlite3_stmt *st = NULL;
    int rc = c->model_name
                 ? query(r, ST_EVENT_LIST_MODEL, &st, "si", c->model_name, (int64_t)c->limit)
                 : query(r, ST_EVENT_LIST_ALL, &st, "i", (int64_t)c->limit);
    return each_row(r, st, rc, event_row, arg, "list events", err, errlen);
}

reg_status registry_event_list(registry *r, const char *model_name, int limit, reg_event_fn fn,
                               void *ud, char *err, size_t errlen)
{
    struct list_ctx c = {.event_fn = fn, .ud = ud, .model_name = model_name, .limit = limit};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK && model_name)
        st = check_name("model name", model_name, err, errlen);
    if (st == REG_OK && (limit < 1 || !fn))
        st = fail(err, errlen, REG_INVALID, "registry_event_list: need limit >= 1 and a fn");
    return st == REG_OK ? locked_read(r, event_list_read, &c, err, errlen) : st;
}

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
        query_int(r, ST_MODEL_EXISTS, "find model", &one, &found, err, errlen, "s", name);
    if (st == REG_OK && !found)
        st = fail(err, errlen, REG_NOT_FOUND, "model %s is not registered", name);
    return st;
}

static reg_status add_traffic_event(registry *r, const char *kind, const char *model,
                                    const char *weights, const char *guard, const char *reason,
                                    char *err, size_t errlen)
{
    int rc = run(r, ST_EVENT_INSERT_TRAFFIC, "sssss", kind, model, weights, guard, reason);
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "record event");
}

static reg_status traffic_set_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct traffic_args *a = arg;
    reg_status st = require_model(r, a->model_name, err, errlen);
    if (st == REG_OK)
        st = check_json_object(r, "weights_json", a->weights, false, err, errlen);
    if (st == REG_OK)
        st = check_json_object(r, "guard_json", a->guard, true, err, errlen);
    if (st != REG_OK)
        return st;
    int rc = run(r, ST_TRAFFIC_RETIRE_CURRENT, "ss", a->model_name, "superseded");
    if (rc == SQLITE_DONE)
        rc = run(r, ST_TRAFFIC_INSERT, "ssss", a->model_name, a->weights, a->guard, a->reason);
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "set traffic split");
    return add_traffic_event(r, "traffic", a->model_name, a->weights, a->guard, a->reason, err,
                             errlen);
}

reg_status registry_traffic_set(registry *r, const char *model_name, const char *weights_json,
                                const char *guard_json, const char *reason, char *err,
                                size_t errlen)
{
    struct traffic_args a = {model_name, weights_json, guard_json, reason, NULL, NULL};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_name("model name", model_name, err, errlen);
    return st == REG_OK ? locked_tx(r, traffic_set_tx, &a, err, errlen) : st;
}

/* Reads the current split into a->weights_out / a->guard_out; REG_NOT_FOUND when none. */
static reg_status traffic_read_current(registry *r, struct traffic_args *a, char *err,
                                       size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_TRAFFIC_CURRENT, &st, "s", a->model_name);
    if (rc == SQLITE_DONE)
        return fail(err, errlen, REG_NOT_FOUND, "model %s has no traffic split", a->model_name);
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "read traffic split");
    bool ok = dup_column(st, 1, &a->weights_out) && dup_column(st, 2, &a->guard_out);
    stmt_done(st);
    return ok ? REG_OK : no_memory(err, errlen);
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
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_name("model name", model_name, err, errlen);
    if (st == REG_OK && !weights_json)
        st = fail(err, errlen, REG_INVALID, "weights_json out pointer is NULL");
    return st;
}

reg_status registry_traffic_get(registry *r, const char *model_name, char **weights_json,
                                char **guard_json, char *err, size_t errlen)
{
    struct traffic_args a = {.model_name = model_name};
    reg_status st = check_split_out(r, model_name, weights_json, guard_json, err, errlen);
    if (st == REG_OK)
        st = locked_read(r, traffic_get_read, &a, err, errlen);
    return hand_over_split(&a, st, weights_json, guard_json);
}

static reg_status find_rollback_target(registry *r, const char *model, int64_t *previous, char *err,
                                       size_t errlen)
{
    int64_t current = 0;
    bool found = false;
    reg_status st = query_int(r, ST_TRAFFIC_CURRENT, "read traffic split", &current, &found, err,
                              errlen, "s", model);
    if (st == REG_OK && !found)
        return fail(err, errlen, REG_NOT_FOUND, "model %s has no traffic split", model);
    if (st == REG_OK)
        st = query_int(r, ST_TRAFFIC_PREVIOUS, "read traffic history", previous, &found, err,
                       errlen, "si", model, current);
    if (st == REG_OK && !found)
        st = fail(err, errlen, REG_NOT_FOUND,
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
    int rc = run(r, ST_TRAFFIC_RETIRE_CURRENT, "ss", a->model_name, "rolled_back");
    if (rc == SQLITE_DONE)
        rc = run(r, ST_TRAFFIC_MAKE_CURRENT, "i", previous);
    if (rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "roll back traffic split");
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
        st = locked_tx(r, traffic_rollback_tx, &a, err, errlen);
    return hand_over_split(&a, st, weights_json, guard_json);
}

static reg_status traffic_clear_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct traffic_args *a = arg;
    int rc = run(r, ST_TRAFFIC_RETIRE_CURRENT, "ss", a->model_name, "cleared");
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "clear traffic split");
}

reg_status registry_traffic_clear(registry *r, const char *model_name, char *err, size_t errlen)
{
    struct traffic_args a = {.model_name = model_name};
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_name("model name", model_name, err, errlen);
    return st == REG_OK ? locked_tx(r, traffic_clear_tx, &a, err, errlen) : st;
}

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
        return fail(err, errlen, REG_INVALID, "stats pointer is NULL");
    if (s->request_count > INT64_MAX || s->error_4xx > INT64_MAX || s->error_5xx > INT64_MAX)
        return fail(err, errlen, REG_INVALID, "stats counter exceeds 2^63-1");
    if (!isfinite(s->latency_sum_ms) || s->latency_sum_ms < 0)
        return fail(err, errlen, REG_INVALID, "latency_sum_ms must be finite and >= 0");
    return REG_OK;
}

static reg_status check_deployment_id(const registry *r, int64_t id, char *err, size_t errlen)
{
    reg_status st = check_handle(r, err, errlen);
    if (st == REG_OK && id < 1)
        st = fail(err, errlen, REG_INVALID, "deployment id %lld is not valid", (long long)id);
    return st;
}

static reg_status stats_save_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct stats_args *a = arg;
    const reg_stats *s = a->in;
    int64_t id = 0;
    bool found = false;
    reg_status st = query_int(r, ST_DEPLOYMENT_GET, "find deployment", &id, &found, err, errlen,
                              "i", a->deployment_id);
    if (st == REG_OK && !found)
        st = fail(err, errlen, REG_NOT_FOUND, "no deployment %lld", (long long)a->deployment_id);
    if (st != REG_OK)
        return st;
    int rc = run(r, ST_STATS_SAVE, "iiiid", a->deployment_id, (int64_t)s->request_count,
                 (int64_t)s->error_4xx, (int64_t)s->error_5xx, s->latency_sum_ms);
    return rc == SQLITE_DONE ? REG_OK : db_fail(r, rc, err, errlen, "save stats");
}

reg_status registry_stats_save(registry *r, int64_t deployment_id, const reg_stats *s, char *err,
                               size_t errlen)
{
    struct stats_args a = {deployment_id, s, NULL};
    reg_status st = check_deployment_id(r, deployment_id, err, errlen);
    if (st == REG_OK)
        st = check_stats(s, err, errlen);
    return st == REG_OK ? locked_tx(r, stats_save_tx, &a, err, errlen) : st;
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
    return count == 0 ? REG_OK : locked_tx(r, stats_save_many_tx, &b, err, errlen);
}

static reg_status stats_load_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct stats_args *a = arg;
    sqlite3_stmt *st = NULL;
    int rc = query(r, ST_STATS_LOAD, &st, "i", a->deployment_id);
    if (rc == SQLITE_DONE)
        return REG_OK; /* never saved: the zeros set by the caller */
    if (rc != SQLITE_ROW)
        return db_fail(r, rc, err, errlen, "load stats");
    a->out->request_count = (uint64_t)sqlite3_column_int64(st, 0);
    a->out->error_4xx = (uint64_t)sqlite3_column_int64(st, 1);
    a->out->error_5xx = (uint64_t)sqlite3_column_int64(st, 2);
    a->out->latency_sum_ms = sqlite3_column_double(st, 3);
    stmt_done(st);
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
        st = fail(err, errlen, REG_INVALID, "stats out pointer is NULL");
    return st == REG_OK ? locked_read(r, stats_load_read, &a, err, errlen) : st;
}
