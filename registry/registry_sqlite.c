/*
 * registry sqlite: the SQLite backend of registry/ (see struct reg_backend in
 * registry_internal.h), the one file that includes SQLite's header. A registry is one database
 * file; the connection is opened NOMUTEX (the handle's mutex serializes every use), with
 * extended result codes, a busy timeout, foreign keys on, synchronous=FULL and, once the schema
 * is known not to be too new, the WAL journal. Each statement id is prepared once, on first use,
 * and finalized by close.
 */
#include "registry_internal.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

static sqlite3 *db_of(const registry *r)
{
    return r->conn;
}

static sqlite3_stmt *native(const reg_stmt *st)
{
    return st->native;
}

/* SQLite result code -> the backends' common code; a failure leaves its message in r->errmsg. */
static int rc_of(registry *r, int rc)
{
    switch (rc) {
    case SQLITE_OK: return DB_OK;
    case SQLITE_ROW: return DB_ROW;
    case SQLITE_DONE: return DB_DONE;
    default: break;
    }
    reg__set_errmsg(r, "%s (sqlite %d)", r->conn ? sqlite3_errmsg(db_of(r)) : sqlite3_errstr(rc),
                    rc);
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return DB_UNIQUE;
    case SQLITE_CONSTRAINT_CHECK: return DB_CHECK;
    case SQLITE_CONSTRAINT_NOTNULL: return DB_NOTNULL;
    case SQLITE_CONSTRAINT_FOREIGNKEY: return DB_FOREIGN;
    default: return DB_ERROR;
    }
}

/* Binds `spec` arguments (see reg__query): 's' text or NULL, 'i' int64_t, 'd' double, 'b' blob
 * (pointer and size_t). */
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
        } else if (spec[i] == 'b') {
            const void *data = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(st, i + 1, len ? data : "", len, SQLITE_TRANSIENT);
        } else {
            rc = SQLITE_MISUSE;
        }
    }
    return rc;
}

static void lite_reset(reg_stmt *st)
{
    if (!st->native)
        return;
    sqlite3_reset(native(st));
    sqlite3_clear_bindings(native(st));
}

static int lite_query(registry *r, enum stmt_id id, const char *spec, va_list ap)
{
    reg_stmt *st = &r->stmts[id];
    const char *sql = reg__sql(r, id);
    if (!sql) {
        reg__set_errmsg(r, "statement %d has no SQLite text", (int)id);
        return DB_ERROR;
    }
    int rc = SQLITE_OK;
    if (!st->native) {
        sqlite3_stmt *prepared = NULL;
        rc = sqlite3_prepare_v2(db_of(r), sql, -1, &prepared, NULL);
        st->native = prepared;
    }
    if (rc != SQLITE_OK)
        return rc_of(r, rc);
    lite_reset(st); /* a statement left mid-step by an earlier failure starts clean */
    rc = bind_args(native(st), spec, ap);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(native(st));
    int out = rc_of(r, rc); /* reads the message before the reset below */
    if (rc != SQLITE_ROW)
        sqlite3_reset(native(st));
    return out;
}

static int lite_step(reg_stmt *st)
{
    return rc_of(st->r, sqlite3_step(native(st)));
}

static int64_t lite_col_int64(const reg_stmt *st, int col)
{
    return sqlite3_column_int64(native(st), col);
}

static double lite_col_double(const reg_stmt *st, int col)
{
    return sqlite3_column_double(native(st), col);
}

static const char *lite_col_text(const reg_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(native(st), col);
}

static const void *lite_col_blob(const reg_stmt *st, int col, size_t *len)
{
    const void *data = sqlite3_column_blob(native(st), col);
    *len = data ? (size_t)sqlite3_column_bytes(native(st), col) : 0;
    return data;
}

/* Runs a multi-statement migration script one prepared statement at a time. */
static int lite_exec_script(registry *r, const char *sql)
{
    const char *tail = sql;
    while (tail && *tail) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db_of(r), tail, -1, &st, &tail);
        if (rc != SQLITE_OK)
            return rc_of(r, rc);
        if (!st) /* only whitespace or comments were left */
            continue;
        do
            rc = sqlite3_step(st);
        while (rc == SQLITE_ROW);
        int out = rc_of(r, rc);
        sqlite3_finalize(st);
        if (out != DB_DONE)
            return out;
    }
    return DB_OK;
}

static int lite_begin(registry *r)
{
    return reg__run(r, ST_BEGIN, "");
}

static bool lite_in_tx(registry *r)
{
    return !sqlite3_get_autocommit(db_of(r));
}

/* Connection settings that do not touch the file: safe before the too-new check. */
static reg_status configure_connection(registry *r, char *err, size_t errlen)
{
    sqlite3_extended_result_codes(db_of(r), 1);
    int rc = rc_of(r, sqlite3_busy_timeout(db_of(r), BUSY_TIMEOUT_MS));
    if (rc == DB_OK)
        rc = reg__run(r, ST_FOREIGN_KEYS_ON, "");
    if (rc == DB_OK || rc == DB_DONE)
        rc = reg__run(r, ST_SYNCHRONOUS_FULL, "");
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "configure connection");
}

static reg_status lite_open(registry *r, const char *path, char *err, size_t errlen)
{
    /* NOMUTEX: the handle's own mutex already serializes every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    r->conn = db;
    if (rc != SQLITE_OK)
        return reg__fail(err, errlen, REG_ERROR, "open %s: %s", path,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return configure_connection(r, err, errlen);
}

/* journal_mode=WAL is persistent (it rewrites the file header), so it runs only after the
 * schema was found acceptable. In-memory databases report "memory" and keep it. The change needs
 * an exclusive lock, and SQLite answers SQLITE_BUSY at once, without the busy handler, when
 * another connection opening the same fresh file holds a shared lock (waiting could deadlock),
 * so it is retried here for up to BUSY_TIMEOUT_MS. */
static reg_status lite_schema_accepted(registry *r, char *err, size_t errlen)
{
    reg_stmt *st = NULL;
    int rc;
    for (int waited_ms = 0;; waited_ms += 10) {
        rc = reg__query(r, ST_JOURNAL_WAL, &st, "");
        if (rc == DB_ROW || (sqlite3_errcode(db_of(r)) & 0xff) != SQLITE_BUSY ||
            waited_ms >= BUSY_TIMEOUT_MS)
            break;
        sqlite3_sleep(10);
    }
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "enable WAL");
    char mode[16];
    reg__copy_column(mode, sizeof mode, st, 0);
    reg__stmt_done(st);
    if (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0)
        return REG_OK;
    return reg__fail(err, errlen, REG_ERROR, "enable WAL: journal mode stayed '%s'", mode);
}

static void lite_close(registry *r)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(native(&r->stmts[i]));
        r->stmts[i].native = NULL;
    }
    /* Every statement is finalized, so close cannot be refused as busy. The last connection
     * to close checkpoints the WAL into the main file. */
    sqlite3_close(db_of(r));
    r->conn = NULL;
}

long long registry_sqlite_memory_bytes(void)
{
    return (long long)sqlite3_memory_used();
}

const struct reg_backend reg_sqlite_backend = {
    .name = "sqlite",
    .open = lite_open,
    .close = lite_close,
    .query = lite_query,
    .step = lite_step,
    .reset = lite_reset,
    .col_int64 = lite_col_int64,
    .col_double = lite_col_double,
    .col_text = lite_col_text,
    .col_blob = lite_col_blob,
    .exec_script = lite_exec_script,
    .begin = lite_begin,
    .in_tx = lite_in_tx,
    .migration_lock = NULL,
    .schema_accepted = lite_schema_accepted,
};
