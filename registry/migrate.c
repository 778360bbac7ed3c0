/*
 * registry migrate: cmake/embed_migrations.cmake turns migrations/NNNN_*.sql into
 * reg_migrations[] (sorted by number). registry_open() first reads the applied version without
 * writing anything, refuses a newer schema (REG_TOO_NEW, file untouched), and only then switches
 * to WAL and applies each pending migration in its own transaction with its schema_migrations
 * row.
 */
#include "registry_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

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
reg_status reg__read_applied_version(registry *r, int *version, char *err, size_t errlen)
{
    int64_t n = 0;
    bool found = false;
    reg_status st =
        reg__query_int(r, ST_HAS_MIGRATIONS_TABLE, "read schema", &n, &found, err, errlen, "");
    if (st == REG_OK && n == 0) {
        st = reg__query_int(r, ST_COUNT_USER_OBJECTS, "read schema", &n, &found, err, errlen, "");
        *version = 0;
        if (st == REG_OK && n > 0)
            st = reg__fail(err, errlen, REG_ERROR,
                           "not a dynserve registry: the database has "
                           "tables but no schema_migrations");
        return st;
    }
    if (st == REG_OK)
        st = reg__query_int(r, ST_MAX_MIGRATION, "read schema_migrations", &n, &found, err, errlen,
                            "");
    *version = (int)n;
    return st;
}

reg_status reg__refuse_if_too_new(const registry *r, int applied, char *err, size_t errlen)
{
    if (applied <= known_version(r))
        return REG_OK;
    return reg__fail(err, errlen, REG_TOO_NEW,
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
    int rc = reg__run(r, ST_CREATE_MIGRATIONS_TABLE, "");
    if (rc != SQLITE_DONE)
        return reg__db_fail(r, rc, err, errlen, "create schema_migrations");
    /* Re-read under the write lock: another process may have migrated since we looked. */
    int applied = 0;
    reg_status st = reg__read_applied_version(r, &applied, err, errlen);
    if (st == REG_OK)
        st = reg__refuse_if_too_new(r, applied, err, errlen);
    if (st != REG_OK || applied >= m->number)
        return st;
    rc = exec_script(r->db, m->sql);
    if (rc != SQLITE_OK)
        return reg__fail(err, errlen, REG_ERROR, "migration %s failed: %s (sqlite %d)", m->name,
                         sqlite3_errmsg(r->db), rc);
    rc = reg__run(r, ST_INSERT_MIGRATION, "is", (int64_t)m->number, m->name);
    if (rc != SQLITE_DONE)
        return reg__db_fail(r, rc, err, errlen, "record migration");
    return REG_OK;
}

reg_status reg__migrate(registry *r, char *err, size_t errlen)
{
    const struct reg_migration *m;
    for (size_t i = 0; (m = migration_at(r, i)) != NULL; i++) {
        if (m->number <= r->schema_version)
            continue;
        reg_status st = reg__tx_run(r, migration_tx, (void *)m, err, errlen);
        if (st != REG_OK)
            return st;
        st = reg__read_applied_version(r, &r->schema_version, err, errlen);
        if (st != REG_OK)
            return st;
    }
    return REG_OK;
}
