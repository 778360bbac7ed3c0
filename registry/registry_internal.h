/*
 * registry_internal: what the files of the registry share, private to registry/ (nothing
 * outside this folder may include it; scripts/check-deps.py enforces that). The one header
 * that includes SQLite's header.
 *
 *   db.c           the connection, cached prepared statements (all SQL text), errors, argument
 *                  validation, statement helpers, locking and transactions, open and close;
 *   migrate.c      the migration runner (embedded migrations/NNNN_*.sql);
 *   versions.c     table model_versions;      deployments.c  table deployments;
 *   events.c       table events;              traffic.c      table traffic_splits;
 *   stats.c        table deployment_stats;    tokens.c       table api_tokens.
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

#include <sqlite3.h>

#include "registry.h"

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
    ST_DEPLOYMENT_END,
    ST_DEPLOYMENT_LIST,
    ST_DEPLOYMENT_CRASH_ADD,
    ST_DEPLOYMENT_SET_OPTIONS,
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
    ST_STATS_ENDED_BY_VERSION,
    ST_TOKEN_INSERT,
    ST_TOKEN_REVOKE_NAME,
    ST_TOKEN_REVOKE_ONE,
    ST_TOKEN_LIST,
    ST_TOKEN_TOUCH,
    ST_COUNT
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

typedef int (*row_fn)(sqlite3_stmt *st, void *ctx);
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
void reg__stmt_done(sqlite3_stmt *st);
int reg__query(registry *r, enum stmt_id id, sqlite3_stmt **out, const char *spec, ...);
int reg__run(registry *r, enum stmt_id id, const char *spec, ...);
reg_status reg__query_int(registry *r, enum stmt_id id, const char *what, int64_t *value,
                          bool *found, char *err, size_t errlen, const char *spec, ...);
void reg__copy_column(char *dst, size_t size, sqlite3_stmt *st, int col);
bool reg__dup_column(sqlite3_stmt *st, int col, char **out);
reg_status reg__each_row(registry *r, sqlite3_stmt *st, int rc, row_fn fn, void *ctx,
                         const char *what, char *err, size_t errlen);
reg_status reg__tx_run(registry *r, tx_body body, void *arg, char *err, size_t errlen);
reg_status reg__locked_tx(registry *r, tx_body body, void *arg, char *err, size_t errlen);
reg_status reg__locked_read(registry *r, tx_body body, void *arg, char *err, size_t errlen);
reg_status reg__check_json_object(registry *r, const char *what, const char *json, bool optional,
                                  char *err, size_t errlen);

/* ---- migrate.c ---- */

reg_status reg__read_applied_version(registry *r, int *version, char *err, size_t errlen);
reg_status reg__refuse_if_too_new(const registry *r, int applied, char *err, size_t errlen);
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
