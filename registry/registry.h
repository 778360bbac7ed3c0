/*
 * registry: the durable record of dynserve — model versions, deployments, traffic splits,
 * events and lifetime stats — in one SQLite database file (the default, embedded) or in one
 * PostgreSQL database that several replicas share. The only code that speaks SQL.
 *
 * Durability: SQLite runs a WAL journal with synchronous=FULL (an acknowledged change survives
 * power loss; the registry is not on the hot path), foreign keys on, a busy timeout; PostgreSQL
 * is as durable as its server is configured. Prepared statements only. Every change is one
 * transaction, so a crash at any point leaves either the old or the new state; on PostgreSQL
 * the writers of all replicas take turns (a transaction advisory lock) and a transaction that
 * hit a serialization failure, a deadlock or a lost connection runs again (a few times).
 * Migrations (migrations/NNNN_*.sql for SQLite, migrations/postgres/NNNN_*.sql for PostgreSQL,
 * the same numbers and names; embedded at build time) are applied by registry_open(), each in
 * its own transaction, recorded in schema_migrations; on PostgreSQL under pg_advisory_lock, so
 * replicas starting at once are safe.
 *
 * Thread-safety: a registry handle may be used from any thread; every function takes the
 * handle's mutex for its whole duration (calls are serialized). Nothing here is on the
 * inference hot path. A *_list callback must not call the registry it is listing: such a call
 * returns REG_ERROR (it would otherwise deadlock).
 *
 * Errors: functions return a reg_status and, when it is not REG_OK, write a NUL-terminated
 * message into the caller's `err` buffer (at most `errlen` bytes; err may be NULL).
 * Strings returned inside structs are copies the caller owns; free them with the matching
 * *_free function. Timestamps are ISO-8601 UTC text ("2026-11-23T03:20:08Z").
 */
#ifndef DS_REGISTRY_H
#define DS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* reg_status (REG_OK, REG_NOT_FOUND, ...) is declared in base/errors.h. */

#define REG_NAME_MAX    64 /* == NAME_MAX_LEN (base/names.h): names follow its rule */
#define REG_TIME_MAX    32
#define REG_SHA256_HEX  65
#define REG_BACKEND_MAX 32

typedef struct registry registry;

/* ---- lifecycle ------------------------------------------------------------------------ */

/* Open the registry at `target` and apply pending migrations. `target` is either a SQLite file
 * path (created if needed; WAL, foreign keys, busy timeout) or a PostgreSQL URI starting with
 * postgres:// or postgresql:// (libpq syntax; the database must exist). REG_TOO_NEW when the
 * database records a migration this binary does not know (it is left untouched). Error
 * messages never contain a password from the URI. *out is owned by the caller; release with
 * registry_close. */
reg_status registry_open(const char *target, registry **out, char *err, size_t errlen);
void registry_close(registry *r);
/* "sqlite" or "postgres" (static text; "none" when r is NULL). */
const char *registry_backend_name(registry *r);
/* true when other processes (replicas) may change this registry: PostgreSQL. */
bool registry_is_shared(registry *r);
/* Copies `target` into out (NUL-terminated, truncated to outlen) with any password replaced by
 * "***" (postgres://user:PASSWORD@host, ?password=...), for logs and error messages. */
void registry_redact_target(const char *target, char *out, size_t outlen);
/* Highest applied migration number (-1 when r is NULL). */
int registry_schema_version(registry *r);
/* Highest migration number embedded in this binary. */
int registry_schema_version_known(void);
/* Bytes the SQLite library holds in this process right now, over every connection
 * (sqlite3_memory_used): mostly page cache, bounded per connection by cache_size (SQLite's
 * default, 2000 KiB) — the part of the heap that grows with the registry's size until it plateaus.
 * Thread-safe. */
long long registry_sqlite_memory_bytes(void);

/* ---- model versions -------------------------------------------------------------------- */

typedef struct reg_version {
    int64_t id;
    char name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    char *plugin_path; /* owned */
    char sha256[REG_SHA256_HEX];
    char *config_json; /* owned; "{}" when none */
    char created_at[REG_TIME_MAX];
    /* A version made of files (migration 0003): the backend's name and the artifact store
     * directory with its digest; "" / NULL / "" for a plugin version. */
    char backend[REG_BACKEND_MAX + 1];
    char *artifact_dir; /* owned; NULL for a plugin version */
    char artifact_sha256[REG_SHA256_HEX];
} reg_version;

void reg_version_free(reg_version *v); /* frees the owned strings, not v itself */

/* Register a model version (creating the model row when it is the first version).
 * plugin_path: required, 1-4095 bytes. sha256: 64 hex digits (stored lowercase), or NULL/""
 * when unknown (then reg_version.sha256 is ""). config_json: a JSON object, NULL for "{}".
 * REG_EXISTS if (name, version) is registered; REG_INVALID for bad names, path, sha256 or
 * config. No event is recorded; callers that want one use registry_event_add. */
reg_status registry_version_add(registry *r, const char *name, const char *version,
                                const char *plugin_path, const char *sha256,
                                const char *config_json, char *err, size_t errlen);
/* The same for a version made of files: plugin_path is the backend's shared object as resolved
 * now, backend its name ([a-z0-9_]{1,32}), artifact_dir the stored directory and
 * artifact_sha256 its digest (64 hex digits), config_json the version's config.json object.
 * REG_INVALID for a bad backend name, directory or digest. */
reg_status registry_version_add_artifact(registry *r, const char *name, const char *version,
                                         const char *plugin_path, const char *backend,
                                         const char *artifact_dir, const char *artifact_sha256,
                                         const char *config_json, char *err, size_t errlen);
/* Fill *out (caller frees with reg_version_free). REG_NOT_FOUND when absent. */
reg_status registry_version_get(registry *r, const char *name, const char *version,
                                reg_version *out, char *err, size_t errlen);
/* Remove a version (and its model row when it was the last). REG_CONFLICT while an active
 * deployment uses it; REG_NOT_FOUND when absent. A "failed" deployment of it is closed
 * (status "undeployed") so a restart does not retry it. Past deployments and events of it are
 * kept (deployments keep model name and version as text). */
reg_status registry_version_delete(registry *r, const char *name, const char *version, char *err,
                                   size_t errlen);
/* Call fn for every registered version, ordered by model name then created order.
 * `v` is valid only during the callback. Stops early when fn returns non-zero. */
typedef int (*reg_version_fn)(void *ud, const reg_version *v);
reg_status registry_version_list(registry *r, reg_version_fn fn, void *ud, char *err,
                                 size_t errlen);

/* ---- deployments ----------------------------------------------------------------------- */

typedef struct reg_deployment {
    int64_t id;
    char model_name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    char endpoint_name[REG_NAME_MAX + 1]; /* "" when none */
    char status[16];                      /* "active", "failed" or "undeployed" */
    char *status_reason;                  /* owned; NULL when none */
    char deployed_at[REG_TIME_MAX];
    char undeployed_at[REG_TIME_MAX]; /* "" while active */
    char *options;                    /* owned; deployment options as JSON object text */
    int64_t server_crashes;           /* times the server died of a signal inside this deployment */
} reg_deployment;

void reg_deployment_free(reg_deployment *d); /* frees owned strings, not d */

/* Record a new active deployment of (name, version) with an optional endpoint name (NULL or ""
 * for none) and record a "deploy" event, in one transaction. A "failed" deployment of the same
 * version is closed (status "undeployed") in the same transaction.
 * REG_NOT_FOUND if the version is not registered; REG_EXISTS if it is already active or the
 * endpoint name is taken by an active deployment. On REG_OK *out (may be NULL) is filled. */
reg_status registry_deployment_create(registry *r, const char *name, const char *version,
                                      const char *endpoint_name, reg_deployment *out, char *err,
                                      size_t errlen);
/* The same with deployment options (JSON object text, stored as given; NULL = "{}"). */
reg_status registry_deployment_create_with(registry *r, const char *name, const char *version,
                                           const char *endpoint_name, const char *options_json,
                                           reg_deployment *out, char *err, size_t errlen);
/* Count one server crash inside deployment `id` (the crash journal); *crashes gets the new
 * total. REG_NOT_FOUND when there is no such deployment. */
reg_status registry_deployment_crash_add(registry *r, int64_t id, int64_t *crashes, char *err,
                                         size_t errlen);
/* Replace the options of active deployment `id` (JSON object text, stored as given) and record
 * an event `kind` (e.g. "limits") with detail_json (a JSON object or NULL), in one transaction.
 * A restart restores the deployment with these options. REG_NOT_FOUND when `id` is not active;
 * REG_INVALID for options or detail that are not JSON objects. */
reg_status registry_deployment_set_options(registry *r, int64_t id, const char *options_json,
                                           const char *kind, const char *detail_json, char *err,
                                           size_t errlen);
/* End deployment `id`: status becomes `status` ("undeployed" or "failed"), reason (may be
 * NULL) stored, undeployed_at set for "undeployed", and an event recorded (kind "undeploy" or
 * "failed", detail {"deployment_id","endpoint_name","reason"}), in one transaction.
 * REG_NOT_FOUND when there is no such active or failed deployment; REG_INVALID for any other
 * status. */
reg_status registry_deployment_end(registry *r, int64_t id, const char *status, const char *reason,
                                   char *err, size_t errlen);
/* *active = deployment `id` exists and is still active (not ended, not failed). For a replica
 * about to serve a row it read earlier: the row may have ended since. */
reg_status registry_deployment_is_active(registry *r, int64_t id, bool *active, char *err,
                                         size_t errlen);
/* Call fn for deployments whose status is active or failed (the ones GET /deployments shows,
 * and the ones a restart restores), oldest first. `d` valid only during the callback. */
typedef int (*reg_deployment_fn)(void *ud, const reg_deployment *d);
reg_status registry_deployment_list(registry *r, reg_deployment_fn fn, void *ud, char *err,
                                    size_t errlen);

/* ---- events ---------------------------------------------------------------------------- */

typedef struct reg_event {
    int64_t id;
    char at[REG_TIME_MAX];
    char kind[32]; /* "deploy", "undeploy", "failed", "register", "traffic"... */
    char model_name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1]; /* "" when not about one version */
    const char *detail;             /* JSON object text or "" */
    const char *actor;       /* who: token name, "jwt:<sub>", "anonymous"; NULL = the server */
    const char *client_addr; /* the request's peer address; NULL when not from a request */
} reg_event;

/* Every event (whichever function records it) carries the actor and client address set for the
 * recording thread with registry_audit_set. */

/* Append an event. kind: [A-Za-z0-9_.-]{1,31}. version: NULL or "" when not about one version.
 * detail_json: a JSON object, or NULL/"" for none. REG_INVALID otherwise. */
reg_status registry_event_add(registry *r, const char *kind, const char *model_name,
                              const char *version, const char *detail_json, char *err,
                              size_t errlen);
/* Call fn for the newest `limit` (>= 1) events (newest first), optionally only of one model
 * (model_name NULL = all). `e` valid only during the callback. */
typedef int (*reg_event_fn)(void *ud, const reg_event *e);
reg_status registry_event_list(registry *r, const char *model_name, int limit, reg_event_fn fn,
                               void *ud, char *err, size_t errlen);
/* Delete up to `batch` (1..100000) of the oldest events recorded before `before` (UTC,
 * "YYYY-MM-DDTHH:MM:SSZ", the form of reg_event.at), in one transaction, but never the newest
 * event (its id is registry_change_seq); *deleted says how many (fewer than batch: none older is
 * left). Retention is the caller's policy (--event-retention-
 * days); call again while *deleted == batch. REG_INVALID for a malformed time or batch. */
reg_status registry_events_prune(registry *r, const char *before, int batch, int64_t *deleted,
                                 char *err, size_t errlen);

/* ---- API tokens (registry/tokens.c) ------------------------------------------------------ */

#define REG_TOKEN_ID_MAX     17 /* 16 hex digits + NUL */
#define REG_TOKEN_SALT_BYTES 16
#define REG_TOKEN_HASH_BYTES 32

/* One API token as stored: never the token itself, only its salted hash (see src/auth/). */
typedef struct reg_token {
    char id[REG_TOKEN_ID_MAX]; /* public id, 16 lowercase hex digits */
    char name[REG_NAME_MAX + 1];
    char role[16]; /* "inference", "viewer", "deployer" or "admin" */
    unsigned char salt[REG_TOKEN_SALT_BYTES];
    unsigned char hash[REG_TOKEN_HASH_BYTES];
    char created_at[REG_TIME_MAX];
    char expires_at[REG_TIME_MAX];   /* "" never */
    char last_used_at[REG_TIME_MAX]; /* "" never used */
    char revoked_at[REG_TIME_MAX];   /* "" while valid */
} reg_token;

/* Add a token (created_at "" means now). REG_EXISTS when the id is taken or a valid token has
 * the name; REG_INVALID for a bad id, name, role or time. */
reg_status registry_token_add(registry *r, const reg_token *t, char *err, size_t errlen);
/* In one transaction, revoke the valid token named t->name (if any) and add t. */
reg_status registry_token_replace(registry *r, const reg_token *t, char *err, size_t errlen);
/* Revoke the valid token whose name or id is `which`; *out (may be NULL) gets it as revoked.
 * REG_NOT_FOUND when there is none. */
reg_status registry_token_revoke(registry *r, const char *which, reg_token *out, char *err,
                                 size_t errlen);
/* Call fn for every token ever added (revoked ones too), oldest first. */
typedef int (*reg_token_fn)(void *ud, const reg_token *t);
reg_status registry_token_list(registry *r, reg_token_fn fn, void *ud, char *err, size_t errlen);
/* Record that token `id` was used at `at` (ISO-8601; never moves backwards). */
reg_status registry_token_touch(registry *r, const char *id, const char *at, char *err,
                                size_t errlen);

/* ---- audit ------------------------------------------------------------------------------- */

/* Who events recorded by *this thread* are attributed to: the auth guard sets it at the start of
 * every request (actor = token name, "jwt:<sub>" or "anonymous"; client_addr = the peer) on the
 * HTTP worker thread serving it (those threads run nothing but requests). NULL clears. Threads
 * that never set it (startup, restore, the canary guard) record events with no actor: the
 * server itself. The strings are copied (actor up to 128 bytes, address up to 64). */
void registry_audit_set(const char *actor, const char *client_addr);

/* ---- traffic splits (canary) ----------------------------------------------------------- */

/* Append a new current split for a model: weights_json is an object {"<version>": int, ...},
 * guard_json an object or NULL; the previous current split stays in the history. Records a
 * "traffic" event with `reason` (may be NULL) in the same transaction. Only the JSON shape is
 * checked here (REG_INVALID); sums and deployed versions are the caller's to check.
 * REG_NOT_FOUND when the model is not registered. */
reg_status registry_traffic_set(registry *r, const char *model_name, const char *weights_json,
                                const char *guard_json, const char *reason, char *err,
                                size_t errlen);
/* Current split of a model: *weights_json and *guard_json are malloc'd copies the caller frees
 * (*guard_json may be NULL; pass guard_json NULL when not wanted). REG_NOT_FOUND when the model
 * has no split. */
reg_status registry_traffic_get(registry *r, const char *model_name, char **weights_json,
                                char **guard_json, char *err, size_t errlen);
/* Make the split before the current one current again (the current one is kept in the history
 * as rolled back), with a "rollback" event, in one transaction. REG_NOT_FOUND when there is no
 * earlier split. On REG_OK the restored split is returned as with registry_traffic_get. */
reg_status registry_traffic_rollback(registry *r, const char *model_name, char **weights_json,
                                     char **guard_json, char *err, size_t errlen);
/* Forget the current split of a model (e.g. its last version was undeployed); it stays in the
 * history but is never rolled back to. REG_OK when there was none. */
reg_status registry_traffic_clear(registry *r, const char *model_name, char *err, size_t errlen);

/* ---- lifetime stats -------------------------------------------------------------------- */

typedef struct reg_stats {
    uint64_t request_count;
    uint64_t error_4xx;
    uint64_t error_5xx;
    double latency_sum_ms;
    int64_t last_request_unix_ms; /* 0 = none */
} reg_stats;

/* Overwrite the lifetime totals of deployment `id` (upsert). REG_NOT_FOUND for an unknown
 * deployment; REG_INVALID for id < 1, a counter above INT64_MAX or a negative/non-finite
 * latency. */
reg_status registry_stats_save(registry *r, int64_t deployment_id, const reg_stats *s, char *err,
                               size_t errlen);
/* The same for many deployments in one transaction (one fsync for a periodic flush); all or
 * nothing. */
reg_status registry_stats_save_many(registry *r, const int64_t *deployment_ids,
                                    const reg_stats *stats, size_t count, char *err, size_t errlen);
/* Read them; zeros (and REG_OK) when none were saved. */
reg_status registry_stats_load(registry *r, int64_t deployment_id, reg_stats *out, char *err,
                               size_t errlen);

/* Lifetime totals of every (model, version) summed over its ended ("undeployed") deployments, so
 * a version's history outlives its deployments: fn(ud, model, version, totals) per version,
 * ordered by model and version; a non-zero return stops. Live deployments are not included (the
 * caller adds their live counters). */
typedef int (*reg_version_stats_fn)(void *ud, const char *model_name, const char *version,
                                    const reg_stats *totals);
reg_status registry_stats_ended_by_version(registry *r, reg_version_stats_fn fn, void *ud,
                                           char *err, size_t errlen);

/* ---- blobs (registry/blobs.c, migration 0008) --------------------------------------------- */

/* Content-addressed bytes: the code and files of registered versions, so that every replica of
 * a shared registry can fetch what another one registered (the server stores them only when
 * registry_is_shared). sha256 (64 hex digits, any case) must be the SHA-256 of the bytes; the
 * registry does not recompute it: whoever reads a blob checks it. */

/* Store data[0..len) under sha256 as `kind` ("plugin", "artifact" or "file"), in one
 * transaction; REG_OK (nothing written) when that digest is stored already. REG_INVALID for a
 * bad digest or kind. */
reg_status registry_blob_put(registry *r, const char *sha256, const char *kind, const void *data,
                             size_t len, char *err, size_t errlen);
/* *has = whether a blob with that digest is stored. */
reg_status registry_blob_has(registry *r, const char *sha256, bool *has, char *err, size_t errlen);
/* The bytes of a blob: *data is malloc'd (the caller frees; never NULL on REG_OK, even when
 * *len is 0). REG_NOT_FOUND when there is none. */
reg_status registry_blob_get(registry *r, const char *sha256, void **data, size_t *len, char *err,
                             size_t errlen);

/* ---- change notification (PostgreSQL LISTEN/NOTIFY) ----------------------------------- */

/* Send `payload` (< 8000 bytes) to the listeners of `channel` ([a-z_]{1,63}) in its own
 * transaction. REG_OK and nothing sent on SQLite, where no other process listens. Functions
 * that change the registry may also notify inside their own transaction (delivered only if it
 * commits): see reg__notify in registry_internal.h. */
reg_status registry_notify(registry *r, const char *channel, const char *payload, char *err,
                           size_t errlen);

/* A LISTEN on its own connection to r's database (it does not use r afterwards: r may be closed
 * first). Use from one thread at a time. REG_INVALID on SQLite or for a bad channel. *out is
 * owned by the caller; release with registry_listener_close. */
typedef struct registry_listener registry_listener;
reg_status registry_listen(registry *r, const char *channel, registry_listener **out, char *err,
                           size_t errlen);
/* Wait up to timeout_ms for one notification: REG_OK with its payload copied into payload
 * (truncated to len), REG_NOT_FOUND on timeout, REG_ERROR when the connection broke (the next
 * wait reconnects; notifications sent meanwhile are lost, so treat it as "re-read everything"). */
reg_status registry_listener_wait(registry_listener *l, int timeout_ms, char *payload, size_t len,
                                  char *err, size_t errlen);
void registry_listener_close(registry_listener *l);

/* ---- replicas (scale-out, registry/replicas.c; migration 0007) ---------------------------
 *
 * The deployments and traffic splits above are the cluster's desired state; every replica
 * reconciles to it (deploy/reconcile.c). What follows is what each replica reports about itself:
 * a heartbeat row, the deployments it actually serves and its live stats. Times are unix ms by
 * the database's clock, so the replicas' clocks need not agree. */

#define REG_REPLICA_ID_MAX 128 /* [A-Za-z0-9_.:-]{1,128} */
/* Readers count a replica heard from within this many ms as live (it heartbeats every second). */
#define REG_REPLICA_LIVE_MS 5000
#define REG_ADDRESS_MAX     256

typedef struct reg_replica {
    char id[REG_REPLICA_ID_MAX + 1];
    char address[REG_ADDRESS_MAX + 1]; /* where peers and people reach it, e.g. http://h:8080 */
    char version[32];                  /* the dynserve version it runs */
    char started_at[REG_TIME_MAX];
    int64_t age_ms; /* since its last heartbeat, by the database's clock */
} reg_replica;

/* Record that replica `id` is alive now (upsert). starting: this is its first heartbeat since it
 * started (started_at becomes now, and what it reported before the restart is forgotten).
 * REG_INVALID for a bad id, address (printable, no spaces, <= 256 bytes) or version. */
reg_status registry_replica_heartbeat(registry *r, const char *id, const char *address,
                                      const char *version, bool starting, char *err, size_t errlen);
/* A replica stops: its row and everything it reported go. REG_OK when there was none. */
reg_status registry_replica_remove(registry *r, const char *id, char *err, size_t errlen);
/* Call fn for every replica heard from within max_age_ms (< 0: all), by id. */
typedef int (*reg_replica_fn)(void *ud, const reg_replica *rep);
reg_status registry_replica_list(registry *r, int64_t max_age_ms, reg_replica_fn fn, void *ud,
                                 char *err, size_t errlen);
/* Replace the set of deployments replica `id` serves (one transaction). REG_NOT_FOUND when the
 * replica has no heartbeat row. */
reg_status registry_replica_serving_set(registry *r, const char *id, const int64_t *deployment_ids,
                                        size_t count, char *err, size_t errlen);
/* fn(ud, deployment_id, replica_id) for every deployment served by a replica heard from within
 * max_age_ms, ordered by deployment then replica. */
typedef int (*reg_serving_fn)(void *ud, int64_t deployment_id, const char *replica_id);
reg_status registry_replica_serving_list(registry *r, int64_t max_age_ms, reg_serving_fn fn,
                                         void *ud, char *err, size_t errlen);

/* One replica's live counters of one deployment (since that replica started serving it). */
typedef struct reg_replica_stat {
    char replica_id[REG_REPLICA_ID_MAX + 1]; /* ignored by registry_replica_stats_set */
    int64_t deployment_id;
    char model_name[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    uint64_t request_count, error_4xx, error_5xx;
    double latency_sum_ms;
    int64_t in_flight;
    /* latency histogram, sparse "index:count,..." (deploy/stats.h buckets), <= 65536 bytes.
     * set: the caller's; list: borrowed, valid during the callback only. */
    const char *buckets;
} reg_replica_stat;

/* Replace every stats row of replica `id` with rows[0..count) (one transaction). REG_NOT_FOUND
 * when the replica has no heartbeat row; REG_INVALID for a bad row. */
reg_status registry_replica_stats_set(registry *r, const char *id, const reg_replica_stat *rows,
                                      size_t count, char *err, size_t errlen);
/* Call fn for every stats row of the replicas heard from within max_age_ms, ordered by model,
 * version, replica. `s` is valid during the callback only. */
typedef int (*reg_replica_stat_fn)(void *ud, const reg_replica_stat *s);
reg_status registry_replica_stats_list(registry *r, int64_t max_age_ms, reg_replica_stat_fn fn,
                                       void *ud, char *err, size_t errlen);

/* Every change of the desired state (a deployment created or ended, its options changed, a split
 * set, rolled back or cleared) NOTIFYs this channel in its own transaction (PostgreSQL), so a
 * replica LISTENing on it (registry_listen) reconciles at once instead of at its next poll. */
#define REG_CHANGE_CHANNEL "dynserve_changes"

/* The desired state's generation: it grows with every change of deployments or traffic splits
 * (each is recorded with an event in its own transaction, and this is the newest event's id).
 * A reconciler polls it; other events (worker crashes, registrations) move it too, which only
 * costs one spare reconcile. */
reg_status registry_change_seq(registry *r, int64_t *seq, char *err, size_t errlen);

const char *registry_status_str(reg_status s);

#endif
