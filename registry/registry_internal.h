/*
 * registry_internal: what the files of the registry share, private to registry/ (nothing
 * outside this folder may include it; scripts/check-deps.py enforces that). It includes no
 * database header: the table files speak SQL through the backend interface below, and only
 * the two backends include their client library's header.
 *
 *   db.c           all SQL text (portable SQL[] plus the PostgreSQL overrides PG_SQL[]), errors,
 *                  argument validation, statement helpers, locking and transactions (with
 *                  retries), open (picks the backend from the target) and close;
 *   registry_sqlite.c  the SQLite backend (the one includer of sqlite3.h): a file, WAL;
 *   registry_pg.c      the PostgreSQL backend (the one includer of libpq-fe.h), LISTEN/NOTIFY;
 *   migrate.c      the migration runner (embedded migrations/NNNN_*.sql, and for PostgreSQL
 *                  migrations/postgres/NNNN_*.sql with the same numbers and names);
 *   versions.c     table model_versions;      deployments.c  table deployments;
 *   events.c       table events;              traffic.c      table traffic_splits;
 *   stats.c        table deployment_stats;    tokens.c       table api_tokens;
 *   replicas.c     tables replicas, replica_deployments, replica_stats (scale-out);
 *   blobs.c        table blobs.
 *
 * Helpers are named reg__* (double underscore: internal, as libuv marks its own).
 * Locking: every public function holds registry.lock for its whole duration (see struct
 * registry); the helpers below expect the caller to hold it unless they take it themselves
 * (reg__locked_tx, reg__locked_read).
 */
#ifndef DS_REGISTRY_INTERNAL_H
#define DS_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

/* Layout shared with the generated registry_migrations.c (see embed_migrations.cmake). */
struct reg_migration {
    int number;
    const char *name;
    const char *sql;
};

/* The SQLite set and the PostgreSQL set: the build refuses sets whose numbers and names differ,
 * so reg_migrations[i] and reg_pg_migrations[i] are always the same migration. */
extern const struct reg_migration reg_migrations[];
extern const size_t reg_migrations_count;
extern const struct reg_migration reg_pg_migrations[];
extern const size_t reg_pg_migrations_count;

#define BUSY_TIMEOUT_MS 5000
#define PLUGIN_PATH_MAX 4095
/* The time now as ISO-8601 text in SQLite; the PostgreSQL backend rewrites this exact text to
 * PG_NOW_SQL (a function of migrations/postgres/0001_init.sql), so shared SQL may use it. */
#define NOW_SQL    "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
#define PG_NOW_SQL "ds_now()"
/* unix milliseconds by the database's clock (PG_SQL[] spells it PG_NOW_MS_SQL) */
#define NOW_MS_SQL    "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
#define PG_NOW_MS_SQL "(extract(epoch from clock_timestamp()) * 1000)::bigint"
#define VERSION_COLUMNS                                                                            \
    "id, model_name, version, plugin_path, coalesce(plugin_sha256, ''), config_json, created_at, " \
    "coalesce(backend, ''), artifact_dir, coalesce(artifact_sha256, '')"
#define DEPLOYMENT_COLUMNS                                                                         \
    "id, model_name, version, coalesce(endpoint_name, ''), status, status_reason, deployed_at, "   \
    "coalesce(undeployed_at, ''), options, server_crashes"
#define EVENT_COLUMNS                                                                              \
    "id, at, kind, model_name, coalesce(version, ''), coalesce(detail_json, ''), actor, "          \
    "client_addr"
#define TOKEN_COLUMNS                                                                              \
    "id, name, role, salt, token_hash, created_at, coalesce(expires_at, ''), "                     \
    "coalesce(last_used_at, ''), coalesce(revoked_at, '')"

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
    ST_DEPLOYMENT_IS_ACTIVE,
    ST_DEPLOYMENT_END,
    ST_DEPLOYMENT_LIST,
    ST_DEPLOYMENT_CRASH_ADD,
    ST_DEPLOYMENT_SET_OPTIONS,
    ST_EVENT_INSERT,
    ST_EVENT_INSERT_DEPLOYMENT,
    ST_EVENT_INSERT_TRAFFIC,
    ST_EVENT_LIST_ALL,
    ST_EVENT_LIST_MODEL,
    ST_EVENT_PRUNE,
    ST_TRAFFIC_CURRENT,
    ST_TRAFFIC_PREVIOUS,
    ST_TRAFFIC_RETIRE_CURRENT,
    ST_TRAFFIC_MAKE_CURRENT,
    ST_TRAFFIC_INSERT,
    ST_STATS_SAVE,
    ST_STATS_LOAD,
    ST_STATS_ENDED_BY_VERSION,
    ST_TOKEN_INSERT,
    ST_TOKEN_REVOKE_NAME,
    ST_TOKEN_REVOKE_ONE,
    ST_TOKEN_LIST,
    ST_TOKEN_TOUCH,
    ST_REPLICA_HEARTBEAT,
    ST_REPLICA_FORGET_SERVING,
    ST_REPLICA_FORGET_STATS,
    ST_REPLICA_REMOVE,
    ST_REPLICA_EXISTS,
    ST_REPLICA_LIST,
    ST_REPLICA_SERVING_INSERT,
    ST_REPLICA_SERVING_LIST,
    ST_REPLICA_STATS_INSERT,
    ST_REPLICA_STATS_LIST,
    ST_CHANGE_SEQ,
    ST_BLOB_PUT,
    ST_BLOB_HAS,
    ST_BLOB_GET,
    /* PostgreSQL only (no SQLite text): */
    ST_TX_LOCK,
    ST_MIGRATION_LOCK,
    ST_MIGRATION_UNLOCK,
    ST_NOTIFY,
    ST_MIGRATION_LIST,
    ST_COUNT
};

/* ---- the backend interface ------------------------------------------------------------ */

/* What a statement or connection call came back with, in the backends' common terms. The
 * backend maps its own codes (SQLite result codes, PostgreSQL SQLSTATEs) to these and keeps the
 * database's message in registry.errmsg. */
enum db_rc {
    DB_OK = 0,
    DB_ROW,     /* a row is ready: read it with reg__col_*, then reg__stmt_done or reg__step */
    DB_DONE,    /* the statement finished (no more rows) */
    DB_UNIQUE,  /* unique or primary-key constraint */
    DB_CHECK,   /* CHECK constraint */
    DB_NOTNULL, /* NOT NULL constraint */
    DB_FOREIGN, /* foreign-key constraint */
    DB_RETRY,   /* serialization failure, deadlock or lost connection: the transaction may be run
                   again (registry.retry is set too) */
    DB_ERROR,   /* anything else */
};

/* One cached statement of a handle (registry.stmts[id]). `native` is the backend's own object
 * (sqlite3_stmt *, or the PGresult * of the last execution); `row`/`rows` walk a PostgreSQL
 * result, which is fetched whole. Owned by the handle; valid until registry_close. */
typedef struct reg_stmt {
    registry *r;
    void *native;
    int row, rows;
    bool prepared; /* PostgreSQL: prepared on this connection */
} reg_stmt;

/* A backend: the few calls the table files need, each used with registry.lock held. */
struct reg_backend {
    const char *name; /* "sqlite" or "postgres" */
    /* Connect to `target` and configure the connection; errors go to err. */
    reg_status (*open)(registry *r, const char *target, char *err, size_t errlen);
    void (*close)(registry *r); /* releases statements and the connection */
    /* Run statement `id` with spec/ap bound (see reg__query); on DB_ROW it stays on row 1. */
    int (*query)(registry *r, enum stmt_id id, const char *spec, va_list ap);
    int (*step)(reg_stmt *st);   /* next row: DB_ROW or DB_DONE (or an error) */
    void (*reset)(reg_stmt *st); /* forget the current result */
    int64_t (*col_int64)(const reg_stmt *st, int col);
    double (*col_double)(const reg_stmt *st, int col);
    const char *(*col_text)(const reg_stmt *st, int col); /* NULL for SQL NULL */
    /* A blob column (bytes valid until the statement is reset; *len 0 and NULL for SQL NULL).
     * PostgreSQL returns it raw only for the statements its backend fetches in binary. */
    const void *(*col_blob)(const reg_stmt *st, int col, size_t *len);
    int (*exec_script)(registry *r, const char *sql); /* a multi-statement migration */
    int (*begin)(registry *r);                        /* start a write transaction */
    bool (*in_tx)(registry *r);
    /* Serialize migrations of every process on this database (NULL: the backend's write
     * transaction already does, as SQLite's BEGIN IMMEDIATE). DB_DONE on success. */
    int (*migration_lock)(registry *r, bool take);
    /* Called once the schema was found acceptable (not too new), before the first write:
     * SQLite switches to WAL here, as that rewrites the file header. NULL: nothing to do. */
    reg_status (*schema_accepted)(registry *r, char *err, size_t errlen);
};

extern const struct reg_backend reg_sqlite_backend;
extern const struct reg_backend reg_pg_backend;

/* ---- the handle ------------------------------------------------------------------------ */

struct registry {
    /* Guards every other field and the connection: each public function holds it for its
     * whole duration, so calls are serialized and the connection (opened NOMUTEX / one PGconn)
     * is never used by two threads at once. Error-checking, so a callback that calls back into
     * the registry gets REG_ERROR instead of a deadlock. */
    pthread_mutex_t lock;
    const struct reg_backend *be;
    void *conn;                 /* sqlite3 * or PGconn *, owned */
    char *target;               /* what registry_open was given (may hold a password), owned */
    reg_stmt stmts[ST_COUNT];   /* prepared on first use, released by registry_close */
    int schema_version;         /* highest applied migration */
    struct reg_migration extra; /* test seam: one migration beyond the embedded ones */
    char errmsg[512];           /* the database's message of the last failed call */
    bool retry;                 /* the last failure may succeed if the transaction runs again */
};

typedef int (*row_fn)(reg_stmt *st, void *ctx);
typedef reg_status (*tx_body)(registry *r, void *arg, char *err, size_t errlen);

struct list_ctx {
    reg_version_fn version_fn;
    reg_deployment_fn deployment_fn;
    reg_event_fn event_fn;
    reg_version_stats_fn version_stats_fn;
    void *ud;
    const char *model_name; /* event filter, NULL = all */
    int limit;
};

/* ---- db.c ---- */

__attribute__((format(printf, 4, 5))) reg_status reg__fail(char *err, size_t errlen, reg_status st,
                                                           const char *fmt, ...);
reg_status reg__db_fail(registry *r, int rc, char *err, size_t errlen, const char *what);
reg_status reg__no_memory(char *err, size_t errlen);
reg_status reg__check_name(const char *what, const char *s, char *err, size_t errlen);
reg_status reg__check_optional_name(const char *what, const char *s, char *err, size_t errlen);
reg_status reg__check_handle(const registry *r, char *err, size_t errlen);
reg_status reg__check_event_kind(const char *kind, char *err, size_t errlen);
reg_status reg__normalize_sha256(const char *in, char out[REG_SHA256_HEX], char *err,
                                 size_t errlen);
reg_status reg__check_plugin_path(const char *path, char *err, size_t errlen);
const char *reg__sql(const registry *r, enum stmt_id id); /* NULL: none for this backend */
void reg__set_errmsg(registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reg__stmt_done(reg_stmt *st);
int reg__step(reg_stmt *st);
int64_t reg__col_int64(const reg_stmt *st, int col);
double reg__col_double(const reg_stmt *st, int col);
const char *reg__col_text(const reg_stmt *st, int col);
const void *reg__col_blob(const reg_stmt *st, int col, size_t *len);
int reg__query(registry *r, enum stmt_id id, reg_stmt **out, const char *spec, ...);
int reg__run(registry *r, enum stmt_id id, const char *spec, ...);
reg_status reg__query_int(registry *r, enum stmt_id id, const char *what, int64_t *value,
                          bool *found, char *err, size_t errlen, const char *spec, ...);
void reg__copy_column(char *dst, size_t size, const reg_stmt *st, int col);
bool reg__dup_column(const reg_stmt *st, int col, char **out);
reg_status reg__each_row(registry *r, reg_stmt *st, int rc, row_fn fn, void *ctx, const char *what,
                         char *err, size_t errlen);
reg_status reg__tx_run(registry *r, tx_body body, void *arg, char *err, size_t errlen);
reg_status reg__locked_tx(registry *r, tx_body body, void *arg, char *err, size_t errlen);
reg_status reg__locked_read(registry *r, tx_body body, void *arg, char *err, size_t errlen);
reg_status reg__check_json_object(registry *r, const char *what, const char *json, bool optional,
                                  char *err, size_t errlen);
/* Inside a transaction body: NOTIFY `channel` with `payload` when (and only if) it commits.
 * REG_OK without doing anything on SQLite, where no other process listens. */
reg_status reg__notify(registry *r, const char *channel, const char *payload, char *err,
                       size_t errlen);
bool reg__is_postgres_target(const char *target);
/* Inside the transaction of a change to the desired state (deployments, traffic splits,
 * deployment options): NOTIFY REG_CHANGE_CHANNEL on commit, so replicas reconcile at once. */
reg_status reg__changed(registry *r, char *err, size_t errlen);

/* ---- migrate.c ---- */

reg_status reg__read_applied_version(registry *r, int *version, char *err, size_t errlen);
/* Applies the pending migrations (under the backend's migration lock); REG_TOO_NEW when the
 * database records a migration this binary does not know. */
reg_status reg__migrate(registry *r, char *err, size_t errlen);

/* ---- events.c ---- */

/* The recording thread's audit context (registry_audit_set); NULL when unset. */
const char *reg__audit_actor(void);
const char *reg__audit_addr(void);

/* ---- versions.c ---- */

reg_status reg__check_version_key(registry *r, const char *name, const char *version, char *err,
                                  size_t errlen);
reg_status reg__find_version_id(registry *r, const char *name, const char *version, int64_t *id,
                                char *err, size_t errlen);
reg_status reg__refuse_if_active(registry *r, const char *name, const char *version,
                                 reg_status refusal, char *err, size_t errlen);

#endif
