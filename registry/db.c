/*
 * registry db: the cached prepared statements (every SQL statement dynserve runs is in SQL[] or
 * PG_SQL[] below), errors, argument validation, statement helpers, locking and transactions,
 * open and close. See registry_internal.h for the file map.
 *
 * How it works. A handle holds one connection of one backend (SQLite or PostgreSQL, picked from
 * the target given to registry_open) and a table of statements indexed by `enum stmt_id`. SQL[]
 * holds the text both backends run: SQLite's dialect with ?N placeholders and NOW_SQL, which the
 * PostgreSQL backend rewrites to $N and PG_NOW_SQL when it prepares a statement. Where the SQL
 * must differ (JSON functions, catalog queries, rowid), PG_SQL[] holds PostgreSQL's text under
 * the same id. Statements are prepared on first use. Every public function validates its
 * arguments first (names never reach SQL unchecked), then takes the handle's mutex. Mutations
 * run through reg__tx_run(), which wraps one body function in a write transaction (SQLite:
 * BEGIN IMMEDIATE; PostgreSQL: BEGIN + a transaction advisory lock, so the writers of every
 * replica take turns exactly as SQLite's do) and rolls back on any failure, so each public call
 * is exactly one transaction; a transaction that failed for a retryable reason (serialization
 * failure, deadlock, lost connection) runs again, a bounded number of times. Statements are
 * reset right after use so no read snapshot outlives a call (an open snapshot would stop WAL
 * checkpoints).
 */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "names.h"

/* The key of pg_advisory_xact_lock that serializes registry writers, and of pg_advisory_lock
 * that serializes migrations ("dyns" and "dynm" in ASCII): per database, so two registries in
 * one PostgreSQL database (schemas) share them, which only costs a little concurrency. */
#define PG_TX_LOCK_KEY        "1685679731"
#define PG_MIGRATION_LOCK_KEY "1685679725"
#define PG_ISO_NOW                                                                                 \
    "to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The replica statements that read the database's clock in ms, spelled per backend. */
#define REPLICA_HEARTBEAT_SQL(NOW_MS)                                                              \
    "INSERT INTO replicas (id, address, version, last_seen_ms) VALUES (?1, ?2, ?3, " NOW_MS        \
    ") ON CONFLICT (id) DO UPDATE SET address = excluded.address, version = excluded.version, "    \
    "last_seen_ms = excluded.last_seen_ms, started_at = CASE WHEN ?4 <> 0 THEN " NOW_SQL           \
    " ELSE replicas.started_at END"
#define REPLICA_LIST_SQL(NOW_MS)                                                                   \
    "SELECT id, address, version, started_at, " NOW_MS " - last_seen_ms FROM replicas "            \
    "WHERE ?1 < 0 OR last_seen_ms >= " NOW_MS " - ?1 ORDER BY id"
#define REPLICA_SERVING_LIST_SQL(NOW_MS)                                                           \
    "SELECT s.deployment_id, s.replica_id FROM replica_deployments s "                             \
    "JOIN replicas r ON r.id = s.replica_id WHERE ?1 < 0 OR r.last_seen_ms >= " NOW_MS " - ?1 "    \
    "ORDER BY s.deployment_id, s.replica_id"
#define REPLICA_STATS_LIST_SQL(NOW_MS)                                                             \
    "SELECT s.replica_id, s.deployment_id, s.model_name, s.version, s.request_count, "             \
    "s.error_4xx, s.error_5xx, s.latency_sum_ms, s.in_flight, s.buckets FROM replica_stats s "     \
    "JOIN replicas r ON r.id = s.replica_id WHERE ?1 < 0 OR r.last_seen_ms >= " NOW_MS " - ?1 "    \
    "ORDER BY s.model_name, s.version, s.replica_id"

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
                             "VALUES (?1, ?2, ?3, ?4, coalesce(?5, '{}')) RETURNING id",
    [ST_DEPLOYMENT_GET] = "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE id = ?1",
    [ST_DEPLOYMENT_IS_ACTIVE] =
        "SELECT count(*) FROM deployments WHERE id = ?1 AND status = 'active'",
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
    /* Oldest first, at most ?2 rows: each call is one short transaction (events_by_at, 0009).
     * The newest event always stays: its id is registry_change_seq, which must not go back. */
    [ST_EVENT_PRUNE] = "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ?1 "
                       "AND id < (SELECT max(id) FROM events) ORDER BY at, id LIMIT ?2) "
                       "RETURNING id",
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
    [ST_TOKEN_REVOKE_ONE] = "UPDATE api_tokens SET revoked_at = " NOW_SQL " WHERE id = "
                            "(SELECT id FROM api_tokens WHERE revoked_at IS NULL "
                            "AND (id = ?1 OR name = ?1) ORDER BY (id = ?1) DESC LIMIT 1) "
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
    [ST_MIGRATION_LIST] = "SELECT version FROM schema_migrations ORDER BY version",
    /* ?1 id, ?2 address, ?3 version, ?4 starting (1: started_at = now) */
    [ST_REPLICA_HEARTBEAT] = REPLICA_HEARTBEAT_SQL(NOW_MS_SQL),
    [ST_REPLICA_FORGET_SERVING] = "DELETE FROM replica_deployments WHERE replica_id = ?1",
    [ST_REPLICA_FORGET_STATS] = "DELETE FROM replica_stats WHERE replica_id = ?1",
    [ST_REPLICA_REMOVE] = "DELETE FROM replicas WHERE id = ?1",
    [ST_REPLICA_EXISTS] = "SELECT count(*) FROM replicas WHERE id = ?1",
    /* ?1 max age in ms, < 0 = any */
    [ST_REPLICA_LIST] = REPLICA_LIST_SQL(NOW_MS_SQL),
    [ST_REPLICA_SERVING_INSERT] = "INSERT INTO replica_deployments (replica_id, deployment_id) "
                                  "VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    [ST_REPLICA_SERVING_LIST] = REPLICA_SERVING_LIST_SQL(NOW_MS_SQL),
    [ST_REPLICA_STATS_INSERT] = "INSERT INTO replica_stats (replica_id, deployment_id, model_name, "
                                "version, request_count, error_4xx, error_5xx, latency_sum_ms, "
                                "in_flight, buckets) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                "?10) ON CONFLICT (replica_id, deployment_id) DO NOTHING",
    [ST_REPLICA_STATS_LIST] = REPLICA_STATS_LIST_SQL(NOW_MS_SQL),
    [ST_CHANGE_SEQ] = "SELECT coalesce(max(id), 0) FROM events",
    /* Content-addressed: storing the same bytes twice is a no-op. */
    [ST_BLOB_PUT] = "INSERT INTO blobs (sha256, kind, size, data) VALUES (?1, ?2, ?3, ?4) "
                    "ON CONFLICT (sha256) DO NOTHING",
    [ST_BLOB_HAS] = "SELECT size FROM blobs WHERE sha256 = ?1",
    /* One column only: the PostgreSQL backend fetches this statement in binary. */
    [ST_BLOB_GET] = "SELECT data FROM blobs WHERE sha256 = ?1",
};

/* PostgreSQL's text where it differs from SQL[] (NULL: SQL[] is run, rewritten), and the
 * statements only PostgreSQL runs. */
static const char *const PG_SQL[ST_COUNT] = {
    /* READ COMMITTED plus the advisory lock (ST_TX_LOCK, taken right after BEGIN): every
     * statement after the lock sees every commit before it, so a body's checks hold until its
     * COMMIT, as under SQLite's single writer; no snapshot predates the lock. */
    [ST_BEGIN] = "BEGIN ISOLATION LEVEL READ COMMITTED",
    [ST_TX_LOCK] = "SELECT pg_advisory_xact_lock(" PG_TX_LOCK_KEY ")",
    [ST_MIGRATION_LOCK] = "SELECT pg_advisory_lock(" PG_MIGRATION_LOCK_KEY ")",
    [ST_MIGRATION_UNLOCK] = "SELECT pg_advisory_unlock(" PG_MIGRATION_LOCK_KEY ")",
    [ST_NOTIFY] = "SELECT pg_notify(?1, ?2)",
    [ST_JSON_IS_OBJECT] = "SELECT ds_json_is_object(?1)::int",
    [ST_HAS_MIGRATIONS_TABLE] = "SELECT count(*) FROM pg_tables "
                                "WHERE schemaname = current_schema() "
                                "AND tablename = 'schema_migrations'",
    [ST_COUNT_USER_OBJECTS] = "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                              "ON n.oid = c.relnamespace WHERE n.nspname = current_schema()",
    /* ds_now() does not exist yet: 0001 creates it. */
    [ST_CREATE_MIGRATIONS_TABLE] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                   "version integer PRIMARY KEY CHECK (version > 0), "
                                   "name text NOT NULL, "
                                   "applied_at text NOT NULL DEFAULT " PG_ISO_NOW ")",
    /* json_build_object keeps the keys in SQLite's order; its text has spaces SQLite's lacks. */
    [ST_EVENT_INSERT_DEPLOYMENT] = "INSERT INTO events (kind, model_name, version, detail_json, "
                                   "actor, client_addr) "
                                   "VALUES (?1, ?2, ?3, json_build_object('deployment_id', "
                                   "?4::bigint, 'endpoint_name', ?5::text, 'reason', ?6::text)"
                                   "::text, ?7, ?8)",
    [ST_EVENT_INSERT_TRAFFIC] = "INSERT INTO events (kind, model_name, detail_json, actor, "
                                "client_addr) VALUES (?1, ?2, json_build_object('weights', "
                                "?3::json, 'guard', ?4::json, 'reason', ?5::text)::text, ?6, ?7)",
    /* No rowid: migrations/postgres/0002_auth.sql gives api_tokens an insertion sequence. */
    [ST_TOKEN_LIST] = "SELECT " TOKEN_COLUMNS " FROM api_tokens ORDER BY created_at, seq",
    [ST_REPLICA_HEARTBEAT] = REPLICA_HEARTBEAT_SQL(PG_NOW_MS_SQL),
    [ST_REPLICA_LIST] = REPLICA_LIST_SQL(PG_NOW_MS_SQL),
    [ST_REPLICA_SERVING_LIST] = REPLICA_SERVING_LIST_SQL(PG_NOW_MS_SQL),
    [ST_REPLICA_STATS_LIST] = REPLICA_STATS_LIST_SQL(PG_NOW_MS_SQL),
};

const char *reg__sql(const registry *r, enum stmt_id id)
{
    if (r->be == &reg_pg_backend && PG_SQL[id])
        return PG_SQL[id];
    return SQL[id];
}

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

/* Maps a failed database call to a status. Constraint failures that the callers did not
 * pre-check (they pre-check the common ones for clearer messages) still map sensibly. */
static reg_status status_of(int rc)
{
    switch (rc) {
    case DB_UNIQUE: return REG_EXISTS;
    case DB_CHECK:
    case DB_NOTNULL: return REG_INVALID;
    case DB_FOREIGN: return REG_CONFLICT;
    default: return REG_ERROR;
    }
}

/* The backend stores its message (with its own code) in r->errmsg when a call fails. */
void reg__set_errmsg(registry *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
}

/* Must be called before any other statement fails, or r->errmsg describes that one. */
reg_status reg__db_fail(registry *r, int rc, char *err, size_t errlen, const char *what)
{
    return reg__fail(err, errlen, status_of(rc), "%s: %s", what, r->errmsg);
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

void reg__stmt_done(reg_stmt *st)
{
    st->r->be->reset(st);
}

int reg__step(reg_stmt *st)
{
    return st->r->be->step(st);
}

int64_t reg__col_int64(const reg_stmt *st, int col)
{
    return st->r->be->col_int64(st, col);
}

double reg__col_double(const reg_stmt *st, int col)
{
    return st->r->be->col_double(st, col);
}

const char *reg__col_text(const reg_stmt *st, int col)
{
    return st->r->be->col_text(st, col);
}

const void *reg__col_blob(const reg_stmt *st, int col, size_t *len)
{
    return st->r->be->col_blob(st, col, len);
}

/* Argument specs: 's' = const char * (NULL binds NULL), 'i' = int64_t, 'd' = double, 'b' = a
 * blob as two arguments, const void * and size_t. */
static int vquery(registry *r, enum stmt_id id, reg_stmt **out, const char *spec, va_list ap)
{
    *out = &r->stmts[id];
    return r->be->query(r, id, spec, ap);
}

/* Runs statement `id` with the arguments of `spec` (see vquery). DB_ROW leaves *out on the first
 * row: read it, then call reg__stmt_done(*out). Any other result is already reset. */
int reg__query(registry *r, enum stmt_id id, reg_stmt **out, const char *spec, ...)
{
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, out, spec, ap);
    va_end(ap);
    return rc;
}

/* Runs a statement whose rows (if any) do not matter; DB_DONE on success. */
int reg__run(registry *r, enum stmt_id id, const char *spec, ...)
{
    reg_stmt *st = NULL;
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, &st, spec, ap);
    va_end(ap);
    if (rc == DB_ROW) {
        reg__stmt_done(st);
        rc = DB_DONE;
    }
    return rc;
}

/* First column of a one-row query as an integer; *found says whether there was a row. */
reg_status reg__query_int(registry *r, enum stmt_id id, const char *what, int64_t *value,
                          bool *found, char *err, size_t errlen, const char *spec, ...)
{
    reg_stmt *st = NULL;
    va_list ap;
    va_start(ap, spec);
    int rc = vquery(r, id, &st, spec, ap);
    va_end(ap);
    *found = rc == DB_ROW;
    *value = *found ? reg__col_int64(st, 0) : 0;
    if (rc == DB_ROW)
        reg__stmt_done(st);
    return (rc == DB_ROW || rc == DB_DONE) ? REG_OK : reg__db_fail(r, rc, err, errlen, what);
}

void reg__copy_column(char *dst, size_t size, const reg_stmt *st, int col)
{
    const char *s = reg__col_text(st, col);
    size_t n = s ? strnlen(s, size - 1) : 0;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
}

/* malloc'd copy of a text column; *out = NULL for SQL NULL. false only when out of memory. */
bool reg__dup_column(const reg_stmt *st, int col, char **out)
{
    const char *s = reg__col_text(st, col);
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

/* Row callback for reg__each_row(): 0 = next row, > 0 = stop, < 0 = out of memory. */

/* Calls fn for the row `rc`/`st` came back with and every row after it, then resets st. */
reg_status reg__each_row(registry *r, reg_stmt *st, int rc, row_fn fn, void *ctx, const char *what,
                         char *err, size_t errlen)
{
    while (rc == DB_ROW) {
        int verdict = fn(st, ctx);
        if (verdict != 0) {
            reg__stmt_done(st);
            return verdict < 0 ? reg__no_memory(err, errlen) : REG_OK;
        }
        rc = reg__step(st);
    }
    reg_status status = rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, what);
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
    /* The database may already have rolled back (e.g. SQLITE_FULL, a lost connection); a second
     * ROLLBACK would fail. */
    if (r->be->in_tx(r))
        reg__run(r, ST_ROLLBACK, "");
}

/* Runs body inside one write transaction; any failure rolls back. SQLite's BEGIN IMMEDIATE and
 * PostgreSQL's advisory lock take the write lock up front, so a concurrent writer waits instead
 * of failing halfway through. body writes err when it fails. */
static reg_status tx_once(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    int rc = r->be->begin(r);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "begin transaction");
    reg_status st = body(r, arg, err, errlen);
    if (st == REG_OK) {
        rc = reg__run(r, ST_COMMIT, "");
        if (rc == DB_DONE)
            return REG_OK;
        st = reg__db_fail(r, rc, err, errlen, "commit");
    }
    rollback(r);
    return st;
}

/* How often a transaction that failed for a retryable reason runs again, and the first pause
 * (doubled each time: 10, 20, 40, 80 ms; a PostgreSQL restart takes about that long). */
#define TX_ATTEMPTS   5
#define TX_BACKOFF_MS 10

static void backoff(int attempt)
{
    long ms = (long)TX_BACKOFF_MS << attempt;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A body may therefore run more than once: it must not hand out memory (or anything else) before
 * it returns REG_OK, and it must overwrite, not append to, what it fills in. */
reg_status reg__tx_run(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    reg_status st = REG_ERROR;
    for (int attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
        if (attempt > 0)
            backoff(attempt - 1);
        r->retry = false;
        st = tx_once(r, body, arg, err, errlen);
        if (st == REG_OK || !r->retry)
            break;
    }
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

/* One public read: lock, body (a single statement is its own consistent snapshot), unlock. A
 * read that failed for a retryable reason (a lost connection) runs again like a transaction:
 * the PostgreSQL backend fetches a result whole before the first row reaches a callback, so a
 * failed attempt has called no callback. */
reg_status reg__locked_read(registry *r, tx_body body, void *arg, char *err, size_t errlen)
{
    if (lock(r, err, errlen) != REG_OK)
        return REG_ERROR;
    reg_status st = REG_ERROR;
    for (int attempt = 0; attempt < TX_ATTEMPTS; attempt++) {
        if (attempt > 0)
            backoff(attempt - 1);
        r->retry = false;
        st = body(r, arg, err, errlen);
        if (st == REG_OK || !r->retry)
            break;
    }
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

/* NOTIFY on COMMIT (PostgreSQL); channel [a-z_]{1,63}, payload below PostgreSQL's 8000 bytes. */
reg_status reg__notify(registry *r, const char *channel, const char *payload, char *err,
                       size_t errlen)
{
    size_t n = channel ? strnlen(channel, 64) : 0;
    bool ok = n >= 1 && n <= 63 && strspn(channel, "abcdefghijklmnopqrstuvwxyz_") == n;
    if (!ok || !payload || strnlen(payload, 8000) >= 8000)
        return reg__fail(err, errlen, REG_INVALID,
                         "notify: channel must be [a-z_]{1,63} and payload under 8000 bytes");
    if (r->be != &reg_pg_backend)
        return REG_OK;
    int rc = reg__run(r, ST_NOTIFY, "ss", channel, payload);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "notify");
}

reg_status reg__changed(registry *r, char *err, size_t errlen)
{
    return reg__notify(r, REG_CHANGE_CHANNEL, "", err, errlen);
}

static reg_status notify_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const char *const *a = arg;
    return reg__notify(r, a[0], a[1], err, errlen);
}

reg_status registry_notify(registry *r, const char *channel, const char *payload, char *err,
                           size_t errlen)
{
    const char *a[2] = {channel, payload};
    reg_status st = reg__check_handle(r, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, notify_tx, (void *)a, err, errlen) : st;
}

/* ---- open and close ------------------------------------------------------------------- */

/* Appends n bytes of s to out (of size outlen, used so far *o), always NUL-terminated. */
static void append(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    while (n-- > 0 && *o + 1 < outlen)
        out[(*o)++] = *s++;
    out[*o] = '\0';
}

void registry_redact_target(const char *target, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    size_t o = 0;
    out[0] = '\0';
    if (!target)
        return;
    const char *scheme = strstr(target, "://");
    const char *p = target;
    if (scheme) {
        const char *auth = scheme + 3;
        size_t host_at = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', host_at);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) { /* user:password@ */
            append(out, outlen, &o, target, (size_t)(colon + 1 - target));
            append(out, outlen, &o, "***", 3);
            p = at;
        }
    }
    /* password=... in the query string */
    for (;;) {
        const char *k = strstr(p, "password=");
        if (!k) {
            append(out, outlen, &o, p, strlen(p));
            return;
        }
        k += strlen("password=");
        append(out, outlen, &o, p, (size_t)(k - p));
        append(out, outlen, &o, "***", 3);
        p = k + strcspn(k, "&#");
    }
}

bool reg__is_postgres_target(const char *target)
{
    return strncmp(target, "postgres://", 11) == 0 || strncmp(target, "postgresql://", 13) == 0;
}

static reg_status open_with(const char *target, const struct reg_migration *extra, registry **out,
                            char *err, size_t errlen)
{
    if (!out)
        return reg__fail(err, errlen, REG_INVALID, "registry_open: out is NULL");
    *out = NULL;
    if (!target || !*target)
        return reg__fail(err, errlen, REG_INVALID, "registry path is empty");
    registry *r = calloc(1, sizeof *r);
    if (!r || !(r->target = strdup(target))) {
        free(r);
        return reg__no_memory(err, errlen);
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&r->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    r->be = reg__is_postgres_target(target) ? &reg_pg_backend : &reg_sqlite_backend;
    for (int i = 0; i < ST_COUNT; i++)
        r->stmts[i].r = r;
    if (extra)
        r->extra = *extra;
    reg_status st = r->be->open(r, target, err, errlen);
    if (st == REG_OK)
        st = reg__migrate(r, err, errlen);
    r->extra = (struct reg_migration){0}; /* its strings were only borrowed for the open */
    if (st != REG_OK) {
        registry_close(r);
        return st;
    }
    *out = r;
    return REG_OK;
}

reg_status registry_open(const char *target, registry **out, char *err, size_t errlen)
{
    return open_with(target, NULL, out, err, errlen);
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
    r->be->close(r);
    pthread_mutex_destroy(&r->lock);
    free(r->target);
    free(r);
}

const char *registry_backend_name(registry *r)
{
    return r ? r->be->name : "none";
}

bool registry_is_shared(registry *r)
{
    return r && r->be == &reg_pg_backend;
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
