/*
 * registry migrate: cmake/embed_migrations.cmake turns migrations/NNNN_*.sql into
 * reg_migrations[] and migrations/postgres/NNNN_*.sql into reg_pg_migrations[] (sorted by
 * number; the build refuses two sets whose numbers and names differ). registry_open() first
 * reads the applied migrations without writing anything, refuses a schema this binary does not
 * know (REG_TOO_NEW, database untouched), and only then lets the backend prepare for writes
 * (SQLite: WAL) and applies each pending migration in its own transaction with its
 * schema_migrations row. On PostgreSQL the whole run holds pg_advisory_lock, so replicas that
 * start together migrate one after the other (the later ones find nothing left to do).
 *
 * Numbers may have gaps and may land out of order (helpers reserve numbers in advance): a
 * migration is pending when its number is not in schema_migrations, not when it is above the
 * highest applied one, and a database is "too new" when it records a number this binary does
 * not embed.
 */
#include "registry_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the known set ------------------------------------------------------------------------ */

int registry_schema_version_known(void)
{
    return reg_migrations_count ? reg_migrations[reg_migrations_count - 1].number : 0;
}

/* The migrations this handle knows: its backend's embedded set plus the test seam's extra one. */
static const struct reg_migration *migration_at(const registry *r, size_t i)
{
    bool pg = r->be == &reg_pg_backend;
    const struct reg_migration *set = pg ? reg_pg_migrations : reg_migrations;
    size_t count = pg ? reg_pg_migrations_count : reg_migrations_count;
    if (i < count)
        return &set[i];
    if (i == count && r->extra.sql)
        return &r->extra;
    return NULL;
}

static bool is_known(const registry *r, int number)
{
    const struct reg_migration *m;
    for (size_t i = 0; (m = migration_at(r, i)) != NULL; i++)
        if (m->number == number)
            return true;
    return false;
}

static int known_version(const registry *r)
{
    return r->extra.sql ? r->extra.number : registry_schema_version_known();
}

/* ---- what the database has ------------------------------------------------------------- */

/* Reads the highest applied migration without writing anything. An empty database is version
 * 0; a database with tables but no schema_migrations is someone else's and is refused. The
 * reads are separate statements, so another process's first migration (its tables and
 * schema_migrations commit together) can land between them: tables seen, then the
 * schema_migrations table is looked for once more before refusing. */
reg_status reg__read_applied_version(registry *r, int *version, char *err, size_t errlen)
{
    int64_t n = 0, objects = 0;
    bool found = false;
    reg_status st =
        reg__query_int(r, ST_HAS_MIGRATIONS_TABLE, "read schema", &n, &found, err, errlen, "");
    if (st == REG_OK && n == 0) {
        st = reg__query_int(r, ST_COUNT_USER_OBJECTS, "read schema", &objects, &found, err, errlen,
                            "");
        if (st == REG_OK && objects > 0)
            st = reg__query_int(r, ST_HAS_MIGRATIONS_TABLE, "read schema", &n, &found, err, errlen,
                                "");
        *version = 0;
        if (st == REG_OK && objects > 0 && n == 0)
            st = reg__fail(err, errlen, REG_ERROR,
                           "not a dynserve registry: the database has "
                           "tables but no schema_migrations");
        if (st != REG_OK || n == 0)
            return st;
    }
    if (st == REG_OK)
        st = reg__query_int(r, ST_MAX_MIGRATION, "read schema_migrations", &n, &found, err, errlen,
                            "");
    *version = (int)n;
    return st;
}

struct applied {
    int unknown;     /* first applied number this binary does not know, 0 = none */
    int numbers[64]; /* applied numbers (more than 64 migrations: the rest are re-checked) */
    size_t count;
    const registry *r;
};

static int applied_row(reg_stmt *st, void *arg)
{
    struct applied *a = arg;
    int number = (int)reg__col_int64(st, 0);
    if (!a->unknown && !is_known(a->r, number))
        a->unknown = number;
    if (a->count < sizeof a->numbers / sizeof a->numbers[0])
        a->numbers[a->count++] = number;
    return 0;
}

/* Fills *a from schema_migrations (nothing when the table does not exist yet). */
static reg_status read_applied(registry *r, struct applied *a, char *err, size_t errlen)
{
    *a = (struct applied){.r = r};
    int64_t has = 0;
    bool found = false;
    reg_status st =
        reg__query_int(r, ST_HAS_MIGRATIONS_TABLE, "read schema", &has, &found, err, errlen, "");
    if (st != REG_OK || has == 0)
        return st;
    reg_stmt *stmt = NULL;
    int rc = reg__query(r, ST_MIGRATION_LIST, &stmt, "");
    return reg__each_row(r, stmt, rc, applied_row, a, "read schema_migrations", err, errlen);
}

static bool was_applied(const struct applied *a, int number)
{
    for (size_t i = 0; i < a->count; i++)
        if (a->numbers[i] == number)
            return true;
    return false;
}

static reg_status refuse_if_too_new(const registry *r, const struct applied *a, char *err,
                                    size_t errlen)
{
    if (!a->unknown)
        return REG_OK;
    return reg__fail(err, errlen, REG_TOO_NEW,
                     "database schema version %d is newer than this "
                     "binary knows (%d); upgrade dynserve",
                     a->unknown, known_version(r));
}

/* ---- applying -------------------------------------------------------------------------- */

static reg_status migration_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct reg_migration *m = arg;
    int rc = reg__run(r, ST_CREATE_MIGRATIONS_TABLE, "");
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "create schema_migrations");
    /* Re-read under the write lock: another process may have migrated since we looked. */
    struct applied a;
    reg_status st = read_applied(r, &a, err, errlen);
    if (st == REG_OK)
        st = refuse_if_too_new(r, &a, err, errlen);
    if (st != REG_OK || was_applied(&a, m->number))
        return st;
    rc = r->be->exec_script(r, m->sql);
    if (rc != DB_OK)
        return reg__fail(err, errlen, REG_ERROR, "migration %s failed: %s", m->name, r->errmsg);
    rc = reg__run(r, ST_INSERT_MIGRATION, "is", (int64_t)m->number, m->name);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "record migration");
    return REG_OK;
}

static reg_status apply_pending(registry *r, char *err, size_t errlen)
{
    struct applied a;
    reg_status st = read_applied(r, &a, err, errlen);
    if (st == REG_OK)
        st = reg__read_applied_version(r, &r->schema_version, err, errlen);
    if (st == REG_OK)
        st = refuse_if_too_new(r, &a, err, errlen);
    if (st == REG_OK && r->be->schema_accepted)
        st = r->be->schema_accepted(r, err, errlen);
    const struct reg_migration *m;
    for (size_t i = 0; st == REG_OK && (m = migration_at(r, i)) != NULL; i++) {
        if (was_applied(&a, m->number))
            continue;
        st = reg__tx_run(r, migration_tx, (void *)m, err, errlen);
        if (st == REG_OK)
            st = reg__read_applied_version(r, &r->schema_version, err, errlen);
    }
    return st;
}

reg_status reg__migrate(registry *r, char *err, size_t errlen)
{
    if (!r->be->migration_lock)
        return apply_pending(r, err, errlen);
    int rc = r->be->migration_lock(r, true);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "lock migrations");
    reg_status st = apply_pending(r, err, errlen);
    /* Also released when the connection closes, e.g. when this open fails. */
    r->be->migration_lock(r, false);
    return st;
}
