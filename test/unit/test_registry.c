/*
 * test_registry.c: unit tests of registry/ (registry.h) against real SQLite files, one fresh
 * temporary directory per test, and (as unit_test_registry_postgres, DYNSERVE_TEST_REGISTRY=
 * postgres) the same tests against a throwaway PostgreSQL cluster, one fresh database per test
 * (support/pg_cluster.h). The tests speak only the public API plus one seam,
 * registry_test_open_with_migration(), which opens a database the way a newer build would
 * (no SQLite or libpq header here: only registry/ includes them). A few tests are about one
 * backend (file bytes, LISTEN) and are skipped on the other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "names.h"
#include "registry.h"
#include "support/pg_cluster.h"

/* Test seam defined in registry.c, deliberately not part of registry.h. */
reg_status registry_test_open_with_migration(const char *path, int number, const char *name,
                                             const char *sql, registry **out, char *err,
                                             size_t errlen);

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fixture {
    char dir[64];
    char db[256]; /* the registry target: a file path or a postgresql:// URI */
    registry *r;
    char err[512];
};

/* ---- fixture and helpers --------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_registry.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (test_registry_target(f->dir, f->db, sizeof f->db, f->err, sizeof f->err) != 0)
        fail_msg("%s", f->err);
    if (registry_open(f->db, &f->r, f->err, sizeof f->err) != REG_OK)
        fail_msg("registry_open: %s", f->err);
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    registry_close(f->r);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    registry_close(f->r);
    f->r = NULL;
    assert_int_equal(registry_open(f->db, &f->r, f->err, sizeof f->err), REG_OK);
}

/* Reads a whole file into a malloc'd buffer; *len gets its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void assert_file_equals(const char *path, const char *expected, size_t expected_len)
{
    size_t len = 0;
    char *now = slurp(path, &len);
    assert_int_equal(len, expected_len);
    assert_memory_equal(now, expected, len);
    free(now);
}

static void add_version(struct fixture *f, const char *model, const char *version)
{
    assert_int_equal(registry_version_add(f->r, model, version, "/plugins/x.so", SHA_A, NULL,
                                          f->err, sizeof f->err),
                     REG_OK);
}

static int64_t deploy(struct fixture *f, const char *model, const char *version,
                      const char *endpoint)
{
    reg_deployment d;
    assert_int_equal(
        registry_deployment_create(f->r, model, version, endpoint, &d, f->err, sizeof f->err),
        REG_OK);
    reg_deployment_free(&d);
    return d.id;
}

struct collected {
    int count;
    int stop_after; /* 0 = never stop */
    char items[16][160];
};

static void collect(struct collected *c, const char *fmt, ...)
{
    if (c->count < 16) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->items[c->count], sizeof c->items[0], fmt, ap);
        va_end(ap);
    }
    c->count++;
}

static int collect_version(void *ud, const reg_version *v)
{
    struct collected *c = ud;
    collect(c, "%s/%s", v->name, v->version);
    return c->stop_after && c->count >= c->stop_after;
}

static int collect_deployment(void *ud, const reg_deployment *d)
{
    struct collected *c = ud;
    collect(c, "%s/%s %s %s%s%s", d->model_name, d->version, d->status,
            d->endpoint_name[0] ? d->endpoint_name : "-", d->status_reason ? " reason=" : "",
            d->status_reason ? d->status_reason : "");
    return 0;
}

/* JSON text without the whitespace outside strings (insignificant in JSON, and PostgreSQL's
 * json_build_object puts some where SQLite's json_object does not). */
static void squeeze_json(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    bool quoted = false;
    for (; *in && o + 1 < outlen; in++) {
        if (*in == '"' && (o == 0 || out[o - 1] != '\\'))
            quoted = !quoted;
        if (quoted || *in != ' ')
            out[o++] = *in;
    }
    out[o] = '\0';
}

static int collect_event(void *ud, const reg_event *e)
{
    struct collected *c = ud;
    char detail[160];
    squeeze_json(e->detail, detail, sizeof detail);
    collect(c, "%s %s %s %s", e->kind, e->model_name, e->version[0] ? e->version : "-",
            detail[0] ? detail : "-");
    return 0;
}

static struct collected list_deployments(struct fixture *f)
{
    struct collected c = {0};
    assert_int_equal(registry_deployment_list(f->r, collect_deployment, &c, f->err, sizeof f->err),
                     REG_OK);
    return c;
}

static struct collected list_events(struct fixture *f, const char *model, int limit)
{
    struct collected c = {0};
    assert_int_equal(
        registry_event_list(f->r, model, limit, collect_event, &c, f->err, sizeof f->err), REG_OK);
    return c;
}

static bool is_iso_utc_seconds(const char *s)
{
    int y, mo, d, h, mi, sec;
    char z = 0;
    return strlen(s) == 20 &&
           sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z) == 7 && z == 'Z';
}

/* ---- lifecycle and migrations ---------------------------------------------------------- */

static void test_fresh_open_applies_every_migration_and_records_it(void **state)
{
    struct fixture *f = *state;
    assert_true(registry_schema_version_known() >= 1);
    assert_int_equal(registry_schema_version(f->r), registry_schema_version_known());
    /* The schema exists: every table is usable. */
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", "ep");
    assert_int_equal(
        registry_traffic_set(f->r, "m", "{\"1\":100}", NULL, "init", f->err, sizeof f->err),
        REG_OK);
    reg_stats s = {1, 0, 0, 1.5, 0};
    assert_int_equal(registry_stats_save(f->r, id, &s, f->err, sizeof f->err), REG_OK);
}

static void test_reopen_applies_nothing_and_leaves_the_file_unchanged(void **state)
{
    struct fixture *f = *state;
    if (test_registry_is_postgres())
        skip(); /* about the file's bytes; test_reopen_keeps_... covers PostgreSQL */
    add_version(f, "m", "1");
    registry_close(f->r); /* checkpoints the WAL into the main file */
    f->r = NULL;
    size_t len = 0;
    char *before = slurp(f->db, &len);
    reopen(f);
    assert_int_equal(registry_schema_version(f->r), registry_schema_version_known());
    registry_close(f->r);
    f->r = NULL;
    assert_file_equals(f->db, before, len);
    free(before);
}

static void test_open_refuses_a_newer_schema_and_leaves_the_file_byte_for_byte(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    registry_close(f->r);
    f->r = NULL;
    int future = registry_schema_version_known() + 1;
    assert_int_equal(registry_test_open_with_migration(f->db, future, "9999_future.sql",
                                                       "CREATE TABLE future (x INTEGER);", &f->r,
                                                       f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_schema_version(f->r), future);
    registry_close(f->r);
    f->r = NULL;

    bool file = !test_registry_is_postgres();
    size_t len = 0;
    char *before = file ? slurp(f->db, &len) : NULL;
    registry *r = (registry *)0x1;
    assert_int_equal(registry_open(f->db, &r, f->err, sizeof f->err), REG_TOO_NEW);
    assert_null(r);
    assert_non_null(strstr(f->err, "newer"));
    if (file)
        assert_file_equals(f->db, before, len);
    free(before);
}

static void test_failed_migration_rolls_back_and_reports_the_sqlite_error(void **state)
{
    struct fixture *f = *state;
    registry_close(f->r);
    f->r = NULL;
    int next = registry_schema_version_known() + 1;
    /* The first statement succeeds, the second fails: the first must be undone too. */
    assert_int_equal(registry_test_open_with_migration(f->db, next, "0099_broken.sql",
                                                       "CREATE TABLE half (x INTEGER);"
                                                       "INSERT INTO no_such_table VALUES (1);",
                                                       &f->r, f->err, sizeof f->err),
                     REG_ERROR);
    assert_null(f->r);
    assert_non_null(strstr(f->err, "0099_broken.sql"));
    assert_non_null(strstr(f->err, "no_such_table"));
    /* Were "half" left behind, creating it again would fail. */
    assert_int_equal(registry_test_open_with_migration(f->db, next, "0099_fixed.sql",
                                                       "CREATE TABLE half (x INTEGER);", &f->r,
                                                       f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_schema_version(f->r), next);
}

static void test_open_refuses_a_file_that_is_not_sqlite_and_leaves_it_alone(void **state)
{
    struct fixture *f = *state;
    if (test_registry_is_postgres())
        skip(); /* a file; see test_open_refuses_a_database_with_foreign_tables */
    char path[160];
    snprintf(path, sizeof path, "%s/notes.txt", f->dir);
    const char text[] = "these are not the tables you are looking for, padded to a page....\n";
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 64; i++)
        fwrite(text, 1, sizeof text - 1, fp);
    fclose(fp);
    size_t len = 0;
    char *before = slurp(path, &len);
    registry *r = NULL;
    assert_int_equal(registry_open(path, &r, f->err, sizeof f->err), REG_ERROR);
    assert_null(r);
    assert_non_null(strstr(f->err, "not a database"));
    assert_file_equals(path, before, len);
    free(before);
}

static void test_open_with_empty_or_null_path_is_invalid(void **state)
{
    struct fixture *f = *state;
    registry *r = NULL;
    assert_int_equal(registry_open("", &r, f->err, sizeof f->err), REG_INVALID);
    assert_int_equal(registry_open(NULL, &r, f->err, sizeof f->err), REG_INVALID);
    assert_int_equal(registry_open(f->db, NULL, f->err, sizeof f->err), REG_INVALID);
    assert_null(r);
}

static void test_reopen_keeps_versions_deployments_events_splits_and_stats(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    add_version(f, "m", "2");
    int64_t id = deploy(f, "m", "1", "front");
    assert_int_equal(registry_traffic_set(f->r, "m", "{\"1\":100}", "{\"max_5xx\":1}", "start",
                                          f->err, sizeof f->err),
                     REG_OK);
    reg_stats s = {10, 1, 2, 33.5, 0};
    assert_int_equal(registry_stats_save(f->r, id, &s, f->err, sizeof f->err), REG_OK);
    reopen(f);

    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "2", &v, f->err, sizeof f->err), REG_OK);
    reg_version_free(&v);
    struct collected d = list_deployments(f);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0], "m/1 active front");
    assert_int_equal(list_events(f, "m", 10).count, 2); /* deploy + traffic */
    char *w = NULL, *g = NULL;
    assert_int_equal(registry_traffic_get(f->r, "m", &w, &g, f->err, sizeof f->err), REG_OK);
    assert_string_equal(w, "{\"1\":100}");
    assert_string_equal(g, "{\"max_5xx\":1}");
    free(w);
    free(g);
    reg_stats back;
    assert_int_equal(registry_stats_load(f->r, id, &back, f->err, sizeof f->err), REG_OK);
    assert_int_equal(back.request_count, 10);
}

static void test_two_handles_on_one_file_see_each_others_writes(void **state)
{
    struct fixture *f = *state;
    registry *other = NULL;
    assert_int_equal(registry_open(f->db, &other, f->err, sizeof f->err), REG_OK);
    add_version(f, "m", "1");
    assert_int_equal(registry_version_add(other, "m", "2", "/p", NULL, NULL, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_version_add(other, "m", "1", "/p", NULL, NULL, f->err, sizeof f->err),
                     REG_EXISTS);
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "2", &v, f->err, sizeof f->err), REG_OK);
    reg_version_free(&v);
    registry_close(other);
}

/* ---- backends: several handles (replicas), PostgreSQL specifics --------------------------- */

/* The database name of a pg_cluster URI (postgresql:///NAME?...). */
static void db_of_uri(const char *uri, char *out, size_t outlen)
{
    const char *p = strstr(uri, ":///");
    assert_non_null(p);
    p += 4;
    snprintf(out, outlen, "%.*s", (int)strcspn(p, "?"), p);
}

static void test_backend_is_the_one_the_target_names(void **state)
{
    struct fixture *f = *state;
    bool pg = test_registry_is_postgres();
    assert_string_equal(registry_backend_name(f->r), pg ? "postgres" : "sqlite");
    assert_int_equal(registry_is_shared(f->r), pg);
    assert_string_equal(registry_backend_name(NULL), "none");
}

static void test_open_refuses_a_database_with_foreign_tables(void **state)
{
    struct fixture *f = *state;
    if (!test_registry_is_postgres())
        skip(); /* SQLite: test_open_refuses_a_file_that_is_not_sqlite_and_leaves_it_alone */
    char uri[256], db[64];
    assert_int_equal(pg_cluster_new_database(uri, sizeof uri, f->err, sizeof f->err), 0);
    db_of_uri(uri, db, sizeof db);
    assert_int_equal(pg_cluster_sql(db, "CREATE TABLE theirs (x int)", f->err, sizeof f->err), 0);
    registry *r = NULL;
    assert_int_equal(registry_open(uri, &r, f->err, sizeof f->err), REG_ERROR);
    assert_null(r);
    assert_non_null(strstr(f->err, "not a dynserve registry"));
    /* Nothing was written: no schema_migrations appeared. */
    assert_int_equal(pg_cluster_sql(db,
                                    "DO $$ BEGIN IF to_regclass('schema_migrations') IS NOT NULL "
                                    "THEN RAISE 'schema_migrations was created'; END IF; END $$",
                                    f->err, sizeof f->err),
                     0);
}

struct opener {
    const char *target;
    reg_status st;
    int version;
    char err[256];
};

static void *open_registry(void *arg)
{
    struct opener *o = arg;
    registry *r = NULL;
    o->st = registry_open(o->target, &r, o->err, sizeof o->err);
    o->version = registry_schema_version(r);
    registry_close(r);
    return NULL;
}

/* Replicas starting together on an empty registry: one migrates, the others find it done. */
static void test_handles_opening_a_fresh_registry_at_once_all_migrate_it(void **state)
{
    struct fixture *f = *state;
    char target[256];
    char sub[96];
    snprintf(sub, sizeof sub, "%s/fresh", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(test_registry_target(sub, target, sizeof target, f->err, sizeof f->err), 0);
    pthread_t threads[4];
    struct opener o[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){.target = target};
        assert_int_equal(pthread_create(&threads[i], NULL, open_registry, &o[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (o[i].st != REG_OK)
            fail_msg("opener %d: %s", i, o[i].err);
        assert_int_equal(o[i].version, registry_schema_version_known());
    }
}

struct handle_writer {
    const char *target;
    int index;
    int failures;
    char err[256];
};

static void *write_on_own_handle(void *arg)
{
    struct handle_writer *w = arg;
    registry *r = NULL;
    if (registry_open(w->target, &r, w->err, sizeof w->err) != REG_OK) {
        w->failures = 25;
        return NULL;
    }
    for (int i = 0; i < 25; i++) {
        char version[16];
        snprintf(version, sizeof version, "h%d-%d", w->index, i);
        if (registry_version_add(r, "shared", version, "/p", NULL, NULL, w->err, sizeof w->err) !=
            REG_OK)
            w->failures++;
    }
    registry_close(r);
    return NULL;
}

/* Writers on separate handles (separate connections, as replicas have) never lose a write. */
static void test_writers_on_separate_handles_at_once_all_succeed(void **state)
{
    struct fixture *f = *state;
    pthread_t threads[4];
    struct handle_writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct handle_writer){.target = f->db, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, write_on_own_handle, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (w[i].failures)
            fail_msg("writer %d: %d failures, last: %s", i, w[i].failures, w[i].err);
    }
    struct collected c = {0};
    assert_int_equal(registry_version_list(f->r, collect_version, &c, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(c.count, 100);
}

static void test_open_error_names_the_target_without_its_password(void **state)
{
    struct fixture *f = *state;
    registry *r = NULL;
    /* Port 1 on loopback: refused at once. */
    assert_int_equal(registry_open("postgresql://ada:s3cret@127.0.0.1:1/reg?connect_timeout=2", &r,
                                   f->err, sizeof f->err),
                     REG_ERROR);
    assert_null(r);
    assert_null(strstr(f->err, "s3cret"));
    assert_non_null(strstr(f->err, "postgresql://ada:***@127.0.0.1:1/reg"));
}

static void test_redact_target_hides_every_password_form(void **state)
{
    (void)state;
    char out[160];
    registry_redact_target("postgres://u:pw@h:5432/db?sslmode=require&password=x2", out,
                           sizeof out);
    assert_string_equal(out, "postgres://u:***@h:5432/db?sslmode=require&password=***");
    registry_redact_target("postgresql://u@h/db", out, sizeof out);
    assert_string_equal(out, "postgresql://u@h/db");
    registry_redact_target("/var/lib/dynserve/registry.db", out, sizeof out);
    assert_string_equal(out, "/var/lib/dynserve/registry.db");
    registry_redact_target("postgres://u:pw@h/db", out, 13);
    assert_string_equal(out, "postgres://u"); /* truncated, never the password */
}

static void test_notify_reaches_a_listener_and_times_out_without_one(void **state)
{
    struct fixture *f = *state;
    registry_listener *l = NULL;
    if (!test_registry_is_postgres()) {
        assert_int_equal(registry_listen(f->r, "changes", &l, f->err, sizeof f->err), REG_INVALID);
        assert_null(l);
        assert_int_equal(registry_notify(f->r, "changes", "x", f->err, sizeof f->err), REG_OK);
        return;
    }
    assert_int_equal(registry_listen(f->r, "Bad-Channel", &l, f->err, sizeof f->err), REG_INVALID);
    assert_int_equal(registry_listen(f->r, "changes", &l, f->err, sizeof f->err), REG_OK);
    char payload[64];
    assert_int_equal(registry_listener_wait(l, 50, payload, sizeof payload, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    registry *other = NULL;
    assert_int_equal(registry_open(f->db, &other, f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_notify(other, "changes", "deployments", f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_notify(other, "elsewhere", "no", f->err, sizeof f->err), REG_OK);
    assert_int_equal(
        registry_listener_wait(l, 5000, payload, sizeof payload, f->err, sizeof f->err), REG_OK);
    assert_string_equal(payload, "deployments");
    assert_int_equal(registry_listener_wait(l, 50, payload, sizeof payload, f->err, sizeof f->err),
                     REG_NOT_FOUND); /* the other channel's never arrives */
    registry_close(other);
    registry_listener_close(l);
}

static void test_a_dropped_connection_is_reestablished_by_the_next_call(void **state)
{
    struct fixture *f = *state;
    if (!test_registry_is_postgres())
        skip();
    char db[64], sql[256];
    add_version(f, "m", "1");
    db_of_uri(f->db, db, sizeof db);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' "
             "AND pid <> pg_backend_pid()",
             db);
    assert_int_equal(pg_cluster_sql("postgres", sql, f->err, sizeof f->err), 0);
    add_version(f, "m", "2"); /* a write: retried on a new connection */
    assert_int_equal(pg_cluster_sql("postgres", sql, f->err, sizeof f->err), 0);
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err), REG_OK);
    reg_version_free(&v);
}

/* ---- blobs ----------------------------------------------------------------------------- */

#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void test_blob_put_then_get_returns_every_byte(void **state)
{
    struct fixture *f = *state;
    size_t n = 300 * 1024 + 7; /* NULs, every byte value, more than one TOAST chunk */
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 131 + i / 251);
    bool has = true;
    assert_int_equal(registry_blob_has(f->r, SHA_A, &has, f->err, sizeof f->err), REG_OK);
    assert_false(has);
    assert_int_equal(registry_blob_put(f->r, SHA_A, "plugin", data, n, f->err, sizeof f->err),
                     REG_OK);
    /* The same digest again is a no-op, even with other bytes: content-addressed. */
    assert_int_equal(registry_blob_put(f->r, SHA_A, "file", "x", 1, f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_blob_has(f->r, SHA_A, &has, f->err, sizeof f->err), REG_OK);
    assert_true(has);
    void *back = NULL;
    size_t len = 0;
    assert_int_equal(registry_blob_get(f->r, SHA_A, &back, &len, f->err, sizeof f->err), REG_OK);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    free(back);
    /* An empty blob is a blob. */
    assert_int_equal(registry_blob_put(f->r, SHA_B, "file", NULL, 0, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_blob_get(f->r, SHA_B, &back, &len, f->err, sizeof f->err), REG_OK);
    assert_non_null(back);
    assert_int_equal(len, 0);
    free(back);
    reopen(f);
    assert_int_equal(registry_blob_has(f->r, SHA_A, &has, f->err, sizeof f->err), REG_OK);
    assert_true(has);
    free(data);
}

static void test_blob_refuses_bad_digests_and_kinds_and_misses_are_not_found(void **state)
{
    struct fixture *f = *state;
    void *back = (void *)0x1;
    size_t len = 9;
    assert_int_equal(registry_blob_get(f->r, SHA_B, &back, &len, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_null(back);
    assert_int_equal(len, 0);
    assert_int_equal(registry_blob_put(f->r, "abc", "plugin", "x", 1, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_blob_put(f->r, NULL, "plugin", "x", 1, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_blob_put(f->r, SHA_A, "movie", "x", 1, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_blob_put(f->r, SHA_A, "plugin", NULL, 5, f->err, sizeof f->err),
                     REG_INVALID);
    bool has = true;
    assert_int_equal(registry_blob_has(f->r, "", &has, f->err, sizeof f->err), REG_INVALID);
    /* Upper-case digits name the same blob. */
    assert_int_equal(registry_blob_put(f->r,
                                       "FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210"
                                       "FEDCBA9876543210",
                                       "file", "y", 1, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_blob_has(f->r, SHA_B, &has, f->err, sizeof f->err), REG_OK);
    assert_true(has);
}

/* ---- names ----------------------------------------------------------------------------- */

static void test_name_validation_accepts_and_rejects_the_documented_set(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        {"quadratic_predictor", true},
        {"v1.2-rc_3", true},
        {"1", true},
        {"a", true},
        {"...", true},
        {".hidden", true},
        {"0123456789012345678901234567890123456789012345678901234567890123", true},
        {"01234567890123456789012345678901234567890123456789012345678901234", false},
        {"", false},
        {".", false},
        {"..", false},
        {"a/b", false},
        {"../etc", false},
        {"a b", false},
        {"a\tb", false},
        {"a\nb", false},
        {"caf\xc3\xa9", false},
        {"\xe6\xa8\xa1\xe5\x9e\x8b", false},
        {"a:b", false},
        {"a%2fb", false},
        {"a\\b", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (name_valid(cases[i].name) != cases[i].valid)
            fail_msg("name_valid(\"%s\") should be %s", cases[i].name ? cases[i].name : "(null)",
                     cases[i].valid ? "true" : "false");
    }
}

/* Calls every function that takes a name with `bad` in each name position. */
static void assert_every_function_refuses_name(registry *r, const char *bad)
{
    char err[256];
    reg_version v;
    reg_deployment d;
    char *w = NULL;
    struct collected c = {0};
    const size_t n = sizeof err;
    assert_int_equal(registry_version_add(r, bad, "1", "/p", NULL, NULL, err, n), REG_INVALID);
    assert_int_equal(registry_version_add(r, "m", bad, "/p", NULL, NULL, err, n), REG_INVALID);
    assert_int_equal(registry_version_get(r, bad, "1", &v, err, n), REG_INVALID);
    assert_int_equal(registry_version_get(r, "m", bad, &v, err, n), REG_INVALID);
    assert_int_equal(registry_version_delete(r, bad, "1", err, n), REG_INVALID);
    assert_int_equal(registry_version_delete(r, "m", bad, err, n), REG_INVALID);
    assert_int_equal(registry_deployment_create(r, bad, "1", NULL, &d, err, n), REG_INVALID);
    assert_int_equal(registry_deployment_create(r, "m", bad, NULL, &d, err, n), REG_INVALID);
    if (bad && *bad) /* "" means "no endpoint" there */
        assert_int_equal(registry_deployment_create(r, "m", "1", bad, &d, err, n), REG_INVALID);
    assert_int_equal(registry_event_add(r, "note", bad, NULL, NULL, err, n), REG_INVALID);
    assert_int_equal(registry_event_add(r, bad, "m", NULL, NULL, err, n), REG_INVALID);
    if (bad && *bad) /* "" means "not about one version" there */
        assert_int_equal(registry_event_add(r, "note", "m", bad, NULL, err, n), REG_INVALID);
    if (bad) /* NULL means "all models" there */
        assert_int_equal(registry_event_list(r, bad, 10, collect_event, &c, err, n), REG_INVALID);
    assert_int_equal(registry_traffic_set(r, bad, "{}", NULL, NULL, err, n), REG_INVALID);
    assert_int_equal(registry_traffic_get(r, bad, &w, NULL, err, n), REG_INVALID);
    assert_int_equal(registry_traffic_rollback(r, bad, &w, NULL, err, n), REG_INVALID);
    assert_int_equal(registry_traffic_clear(r, bad, err, n), REG_INVALID);
    assert_null(w);
}

static const char *const BAD_NAMES[] = {
    "",
    ".",
    "..",
    "a/b",
    "a b",
    "caf\xc3\xa9",
    "01234567890123456789012345678901234567890123456789012345678901234",
    NULL};

static void test_every_function_refuses_invalid_names(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++)
        assert_every_function_refuses_name(f->r, BAD_NAMES[i]);
    struct collected c = list_events(f, NULL, 100);
    assert_int_equal(c.count, 0); /* nothing was written */
}

/* Inside a list callback the handle's mutex is held, so any call that reached the lock (let
 * alone SQL) would return REG_ERROR; REG_INVALID proves validation comes first. */
static int refuse_bad_names_from_callback(void *ud, const reg_version *v)
{
    (void)v;
    registry *r = ud;
    for (size_t i = 0; i < sizeof BAD_NAMES / sizeof BAD_NAMES[0]; i++)
        assert_every_function_refuses_name(r, BAD_NAMES[i]);
    return 0;
}

static void test_invalid_names_are_refused_before_the_lock_or_any_sql(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    assert_int_equal(
        registry_version_list(f->r, refuse_bad_names_from_callback, f->r, f->err, sizeof f->err),
        REG_OK);
}

static int call_registry_from_callback(void *ud, const reg_version *v)
{
    (void)v;
    registry *r = ud;
    char err[128];
    reg_version inner;
    assert_int_equal(registry_version_get(r, "m", "1", &inner, err, sizeof err), REG_ERROR);
    assert_non_null(strstr(err, "callback"));
    return 0;
}

static void
test_calling_the_registry_from_its_own_callback_fails_instead_of_deadlocking(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    assert_int_equal(
        registry_version_list(f->r, call_registry_from_callback, f->r, f->err, sizeof f->err),
        REG_OK);
    add_version(f, "m", "2"); /* the handle still works afterwards */
}

/* ---- model versions -------------------------------------------------------------------- */

static void test_version_add_then_get_returns_what_was_stored(void **state)
{
    struct fixture *f = *state;
    const char *upper = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
    assert_int_equal(registry_version_add(f->r, "m", "1", "/srv/m1.so", upper,
                                          "{\"threshold\":0.5}", f->err, sizeof f->err),
                     REG_OK);
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err), REG_OK);
    assert_true(v.id > 0);
    assert_string_equal(v.name, "m");
    assert_string_equal(v.version, "1");
    assert_string_equal(v.plugin_path, "/srv/m1.so");
    assert_string_equal(v.sha256, SHA_A); /* stored lowercase */
    assert_string_equal(v.config_json, "{\"threshold\":0.5}");
    assert_true(is_iso_utc_seconds(v.created_at));
    reg_version_free(&v);
    assert_null(v.plugin_path);
}

static void test_version_without_config_or_sha_gets_empty_object_and_empty_sha(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        registry_version_add(f->r, "m", "1", "/p.so", NULL, NULL, f->err, sizeof f->err), REG_OK);
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err), REG_OK);
    assert_string_equal(v.config_json, "{}");
    assert_string_equal(v.sha256, "");
    reg_version_free(&v);
}

static void test_duplicate_version_is_refused_with_exists(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    assert_int_equal(
        registry_version_add(f->r, "m", "1", "/other.so", NULL, NULL, f->err, sizeof f->err),
        REG_EXISTS);
    assert_non_null(strstr(f->err, "already registered"));
}

static void test_version_add_refuses_config_that_is_not_a_json_object(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"", "[]", "1", "\"s\"", "null", "{", "{\"a\":}", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(
            registry_version_add(f->r, "m", "1", "/p", NULL, bad[i], f->err, sizeof f->err),
            REG_INVALID);
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err),
                     REG_NOT_FOUND);
}

static void test_version_add_refuses_bad_sha256_and_plugin_path(void **state)
{
    struct fixture *f = *state;
    /* 64 characters, but 'g' is not a hex digit */
    static const char non_hex[] = "g123456789abcdef0123456789abcdef0123456789abcdef"
                                  "0123456789abcdef";
    const char *bad_sha[] = {"abc", SHA_A "0", non_hex};
    for (size_t i = 0; i < sizeof bad_sha / sizeof bad_sha[0]; i++)
        assert_int_equal(
            registry_version_add(f->r, "m", "1", "/p", bad_sha[i], NULL, f->err, sizeof f->err),
            REG_INVALID);
    assert_int_equal(registry_version_add(f->r, "m", "1", "", NULL, NULL, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_version_add(f->r, "m", "1", NULL, NULL, NULL, f->err, sizeof f->err),
                     REG_INVALID);
}

static void test_get_of_unknown_version_is_not_found(void **state)
{
    struct fixture *f = *state;
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    add_version(f, "m", "1");
    assert_int_equal(registry_version_get(f->r, "m", "2", &v, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_non_null(strstr(f->err, "not registered"));
}

static void test_version_list_orders_by_model_then_creation_and_stops_early(void **state)
{
    struct fixture *f = *state;
    add_version(f, "zeta", "1");
    add_version(f, "alpha", "2");
    add_version(f, "alpha", "10");
    add_version(f, "alpha", "1");
    struct collected c = {0};
    assert_int_equal(registry_version_list(f->r, collect_version, &c, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(c.count, 4);
    assert_string_equal(c.items[0], "alpha/2");
    assert_string_equal(c.items[1], "alpha/10");
    assert_string_equal(c.items[2], "alpha/1");
    assert_string_equal(c.items[3], "zeta/1");
    struct collected two = {.stop_after = 2};
    assert_int_equal(registry_version_list(f->r, collect_version, &two, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(two.count, 2);
}

static void test_delete_while_deployed_is_conflict(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    deploy(f, "m", "1", NULL);
    assert_int_equal(registry_version_delete(f->r, "m", "1", f->err, sizeof f->err), REG_CONFLICT);
    assert_non_null(strstr(f->err, "deployed"));
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err), REG_OK);
    reg_version_free(&v);
}

static void test_delete_of_unknown_version_is_not_found(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(registry_version_delete(f->r, "m", "1", f->err, sizeof f->err), REG_NOT_FOUND);
}

static void test_delete_after_undeploy_keeps_history_and_frees_the_name(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", "done", f->err, sizeof f->err),
                     REG_OK);
    reg_stats s = {5, 0, 0, 2.0, 0};
    assert_int_equal(registry_stats_save(f->r, id, &s, f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_version_delete(f->r, "m", "1", f->err, sizeof f->err), REG_OK);
    reg_version v;
    assert_int_equal(registry_version_get(f->r, "m", "1", &v, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_int_equal(list_events(f, "m", 10).count, 2); /* deploy, undeploy */
    reg_stats back;
    assert_int_equal(registry_stats_load(f->r, id, &back, f->err, sizeof f->err), REG_OK);
    assert_int_equal(back.request_count, 5);
    add_version(f, "m", "1"); /* the model row was removed and comes back */
}

static void test_delete_closes_a_failed_deployment_of_the_version(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    assert_int_equal(
        registry_deployment_end(f->r, id, "failed", "dlopen failed", f->err, sizeof f->err),
        REG_OK);
    assert_int_equal(registry_version_delete(f->r, "m", "1", f->err, sizeof f->err), REG_OK);
    assert_int_equal(list_deployments(f).count, 0); /* nothing left to retry at startup */
}

/* ---- deployments ----------------------------------------------------------------------- */

static void test_deploy_returns_an_active_deployment(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    reg_deployment d;
    assert_int_equal(registry_deployment_create(f->r, "m", "1", "", &d, f->err, sizeof f->err),
                     REG_OK);
    assert_true(d.id > 0);
    assert_string_equal(d.model_name, "m");
    assert_string_equal(d.version, "1");
    assert_string_equal(d.endpoint_name, "");
    assert_string_equal(d.status, "active");
    assert_null(d.status_reason);
    assert_true(is_iso_utc_seconds(d.deployed_at));
    assert_string_equal(d.undeployed_at, "");
    reg_deployment_free(&d);
    /* out may be NULL */
    add_version(f, "m", "2");
    assert_int_equal(registry_deployment_create(f->r, "m", "2", "ep", NULL, f->err, sizeof f->err),
                     REG_OK);
}

static void test_deploy_of_unknown_version_is_not_found(void **state)
{
    struct fixture *f = *state;
    reg_deployment d;
    assert_int_equal(registry_deployment_create(f->r, "m", "1", NULL, &d, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    add_version(f, "m", "1");
    assert_int_equal(registry_deployment_create(f->r, "m", "2", NULL, &d, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_int_equal(list_deployments(f).count, 0);
}

static void test_double_deploy_is_exists(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    deploy(f, "m", "1", NULL);
    reg_deployment d;
    assert_int_equal(registry_deployment_create(f->r, "m", "1", "other", &d, f->err, sizeof f->err),
                     REG_EXISTS);
    assert_non_null(strstr(f->err, "deployed"));
    assert_int_equal(list_deployments(f).count, 1);
}

static void test_endpoint_name_taken_is_exists_until_released(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    add_version(f, "m", "2");
    int64_t id = deploy(f, "m", "1", "front");
    reg_deployment d;
    assert_int_equal(registry_deployment_create(f->r, "m", "2", "front", &d, f->err, sizeof f->err),
                     REG_EXISTS);
    assert_non_null(strstr(f->err, "front"));
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", NULL, f->err, sizeof f->err),
                     REG_OK);
    deploy(f, "m", "2", "front");
}

static void test_ended_deployment_is_listed_no_more_unless_failed(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    add_version(f, "m", "2");
    int64_t one = deploy(f, "m", "1", NULL);
    int64_t two = deploy(f, "m", "2", "ep");
    assert_int_equal(list_deployments(f).count, 2);
    assert_int_equal(
        registry_deployment_end(f->r, one, "undeployed", "user", f->err, sizeof f->err), REG_OK);
    assert_int_equal(
        registry_deployment_end(f->r, two, "failed", "plugin crashed", f->err, sizeof f->err),
        REG_OK);
    struct collected c = list_deployments(f);
    assert_int_equal(c.count, 1);
    assert_string_equal(c.items[0], "m/2 failed ep reason=plugin crashed");
}

static void test_is_active_is_true_only_until_the_deployment_ends(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    add_version(f, "m", "2");
    int64_t one = deploy(f, "m", "1", NULL);
    int64_t two = deploy(f, "m", "2", NULL);
    bool active = false;
    assert_int_equal(registry_deployment_is_active(f->r, one, &active, f->err, sizeof f->err),
                     REG_OK);
    assert_true(active);
    assert_int_equal(registry_deployment_end(f->r, one, "undeployed", NULL, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_deployment_end(f->r, two, "failed", "crashed", f->err, sizeof f->err),
                     REG_OK);
    active = true;
    assert_int_equal(registry_deployment_is_active(f->r, one, &active, f->err, sizeof f->err),
                     REG_OK);
    assert_false(active);
    active = true;
    assert_int_equal(registry_deployment_is_active(f->r, two, &active, f->err, sizeof f->err),
                     REG_OK);
    assert_false(active);
    active = true;
    assert_int_equal(registry_deployment_is_active(f->r, 99999, &active, f->err, sizeof f->err),
                     REG_OK);
    assert_false(active);
}

static void test_failed_deployment_keeps_reason_and_can_be_redeployed(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    int64_t first = deploy(f, "m", "1", "ep");
    assert_int_equal(
        registry_deployment_end(f->r, first, "failed", "init failed", f->err, sizeof f->err),
        REG_OK);
    assert_string_equal(list_deployments(f).items[0], "m/1 failed ep reason=init failed");
    reg_deployment d;
    assert_int_equal(registry_deployment_create(f->r, "m", "1", "ep", &d, f->err, sizeof f->err),
                     REG_OK);
    assert_true(d.id != first);
    reg_deployment_free(&d);
    struct collected c = list_deployments(f);
    assert_int_equal(c.count, 1);
    assert_string_equal(c.items[0], "m/1 active ep");
    /* the failed one was closed, so it can no longer be ended */
    assert_int_equal(
        registry_deployment_end(f->r, first, "undeployed", NULL, f->err, sizeof f->err),
        REG_NOT_FOUND);
}

static void test_deployment_end_refuses_unknown_ended_or_bad_status(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    assert_int_equal(
        registry_deployment_end(f->r, id + 100, "undeployed", NULL, f->err, sizeof f->err),
        REG_NOT_FOUND);
    assert_int_equal(registry_deployment_end(f->r, id, "active", NULL, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_deployment_end(f->r, id, NULL, NULL, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", NULL, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", NULL, f->err, sizeof f->err),
                     REG_NOT_FOUND);
}

static int options_of_first(void *ud, const reg_deployment *d)
{
    snprintf(ud, 160, "%s", d->options ? d->options : "");
    return 1;
}

static void test_set_options_replaces_them_records_an_event_and_survives_reopen(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    reg_deployment d;
    assert_int_equal(registry_deployment_create_with(f->r, "m", "1", NULL, "{\"timeout_ms\":5}", &d,
                                                     f->err, sizeof f->err),
                     REG_OK);
    int64_t id = d.id;
    reg_deployment_free(&d);
    const char *opts = "{\"timeout_ms\":5,\"rate_limit\":{\"rps\":2,\"burst\":3}}";
    assert_int_equal(registry_deployment_set_options(f->r, id, opts, "limits",
                                                     "{\"rate_limit\":{\"rps\":2,\"burst\":3}}",
                                                     f->err, sizeof f->err),
                     REG_OK);
    reopen(f);
    char got[160] = "", squeezed[160];
    assert_int_equal(registry_deployment_list(f->r, options_of_first, got, f->err, sizeof f->err),
                     REG_OK);
    squeeze_json(got, squeezed, sizeof squeezed);
    assert_string_equal(squeezed, opts);
    struct collected ev = list_events(f, "m", 1);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.items[0], "limits m 1 {\"rate_limit\":{\"rps\":2,\"burst\":3}}");
    /* not JSON objects, a bad kind, an unknown or ended deployment: refused, nothing changed */
    assert_int_equal(
        registry_deployment_set_options(f->r, id, "[1]", "limits", NULL, f->err, sizeof f->err),
        REG_INVALID);
    assert_int_equal(
        registry_deployment_set_options(f->r, id, "{}", "limits", "nope", f->err, sizeof f->err),
        REG_INVALID);
    assert_int_equal(
        registry_deployment_set_options(f->r, id, "{}", "bad kind!", NULL, f->err, sizeof f->err),
        REG_INVALID);
    assert_int_equal(registry_deployment_set_options(f->r, id + 100, "{}", "limits", NULL, f->err,
                                                     sizeof f->err),
                     REG_NOT_FOUND);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", NULL, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(
        registry_deployment_set_options(f->r, id, "{}", "limits", NULL, f->err, sizeof f->err),
        REG_NOT_FOUND);
}

/* ---- events ---------------------------------------------------------------------------- */

static void test_events_list_newest_first_with_model_filter_and_limit(void **state)
{
    struct fixture *f = *state;
    add_version(f, "a", "1");
    add_version(f, "b", "1");
    int64_t id = deploy(f, "a", "1", NULL);
    deploy(f, "b", "1", NULL);
    assert_int_equal(
        registry_event_add(f->r, "note", "a", NULL, "{\"x\":1}", f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", "bye", f->err, sizeof f->err),
                     REG_OK);

    struct collected all = list_events(f, NULL, 100);
    assert_int_equal(all.count, 4);
    assert_non_null(strstr(all.items[0], "undeploy a 1 "));
    assert_non_null(strstr(all.items[0], "\"reason\":\"bye\""));
    assert_string_equal(all.items[1], "note a - {\"x\":1}");
    assert_non_null(strstr(all.items[2], "deploy b 1 "));
    assert_non_null(strstr(all.items[3], "deploy a 1 "));

    struct collected of_a = list_events(f, "a", 100);
    assert_int_equal(of_a.count, 3);
    assert_non_null(strstr(of_a.items[2], "deploy a 1"));
    struct collected newest = list_events(f, "a", 1);
    assert_int_equal(newest.count, 1);
    assert_non_null(strstr(newest.items[0], "undeploy a 1"));
    assert_int_equal(list_events(f, "nobody", 10).count, 0);
}

/* registry_events_prune: the oldest first, at most a batch per call, only before the cutoff. */
static void test_events_prune_deletes_the_oldest_before_a_time_in_batches(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "{\"i\":%d}", i);
        assert_int_equal(registry_event_add(f->r, "note", "m", NULL, detail, f->err, sizeof f->err),
                         REG_OK);
    }
    int64_t n = -1;
    /* nothing is that old */
    assert_int_equal(
        registry_events_prune(f->r, "2000-01-01T00:00:00Z", 100, &n, f->err, sizeof f->err),
        REG_OK);
    assert_int_equal(n, 0);
    assert_int_equal(list_events(f, "m", 100).count, 5);
    /* everything is older than the year 9999: two at a time, oldest first */
    const char *later = "9999-12-31T23:59:59Z";
    assert_int_equal(registry_events_prune(f->r, later, 2, &n, f->err, sizeof f->err), REG_OK);
    assert_int_equal(n, 2);
    struct collected left = list_events(f, "m", 100);
    assert_int_equal(left.count, 3);
    assert_string_equal(left.items[2], "note m - {\"i\":2}"); /* 0 and 1 went first */
    assert_int_equal(registry_events_prune(f->r, later, 2, &n, f->err, sizeof f->err), REG_OK);
    assert_int_equal(n, 2);
    int64_t seq = 0;
    assert_int_equal(registry_change_seq(f->r, &seq, f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_events_prune(f->r, later, 2, &n, f->err, sizeof f->err), REG_OK);
    assert_int_equal(n, 0); /* the newest stays: the change sequence never goes back */
    struct collected last = list_events(f, NULL, 100);
    assert_int_equal(last.count, 1);
    assert_string_equal(last.items[0], "note m - {\"i\":4}");
    int64_t after = 0;
    assert_int_equal(registry_change_seq(f->r, &after, f->err, sizeof f->err), REG_OK);
    assert_int_equal(after, seq);

    const char *bad[] = {NULL,
                         "",
                         "2000-01-01",
                         "2000-01-01 00:00:00Z",
                         "2000-01-01T00:00:00",
                         "2000-01-01T00:00:0xZ",
                         "2000-01-01T00:00:00Z' OR 1=1 --"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(registry_events_prune(f->r, bad[i], 10, &n, f->err, sizeof f->err),
                         REG_INVALID);
    assert_int_equal(registry_events_prune(f->r, later, 0, &n, f->err, sizeof f->err), REG_INVALID);
    assert_int_equal(registry_events_prune(f->r, later, 100001, &n, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(list_events(f, "m", 100).count, 1);
}

static void test_event_add_refuses_bad_kind_detail_and_limit(void **state)
{
    struct fixture *f = *state;
    struct collected c = {0};
    assert_int_equal(registry_event_add(f->r, "a-kind-that-is-way-too-long-for-32", "m", NULL, NULL,
                                        f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_event_add(f->r, "note", "m", NULL, "[1]", f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_event_add(f->r, "note", "m", NULL, "{", f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_event_list(f->r, NULL, 0, collect_event, &c, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_event_list(f->r, NULL, 5, NULL, &c, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_event_add(f->r, "note", "m", "", "", f->err, sizeof f->err), REG_OK);
    c = list_events(f, NULL, 5);
    assert_int_equal(c.count, 1);
    assert_string_equal(c.items[0], "note m - -");
}

/* ---- traffic splits -------------------------------------------------------------------- */

static void set_split(struct fixture *f, const char *weights, const char *reason)
{
    assert_int_equal(registry_traffic_set(f->r, "m", weights, NULL, reason, f->err, sizeof f->err),
                     REG_OK);
}

static void assert_split(struct fixture *f, const char *weights)
{
    char *w = NULL, *g = (char *)"unset";
    assert_int_equal(registry_traffic_get(f->r, "m", &w, &g, f->err, sizeof f->err), REG_OK);
    assert_string_equal(w, weights);
    assert_null(g);
    free(w);
}

static void test_traffic_set_get_and_rollback_walk_back_through_history(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    set_split(f, "{\"1\":100}", "first");
    set_split(f, "{\"1\":90,\"2\":10}", "canary");
    set_split(f, "{\"1\":50,\"2\":50}", "ramp");
    assert_split(f, "{\"1\":50,\"2\":50}");

    char *w = NULL, *g = NULL;
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, &g, f->err, sizeof f->err), REG_OK);
    assert_string_equal(w, "{\"1\":90,\"2\":10}");
    assert_null(g);
    free(w);
    assert_split(f, "{\"1\":90,\"2\":10}");
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, NULL, f->err, sizeof f->err), REG_OK);
    assert_string_equal(w, "{\"1\":100}");
    free(w);
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, NULL, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_null(w);
    assert_split(f, "{\"1\":100}"); /* a refused rollback changes nothing */

    struct collected c = list_events(f, "m", 1);
    assert_non_null(strstr(c.items[0], "rollback m - "));
}

static void test_traffic_set_after_rollback_never_restores_the_rolled_back_split(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    set_split(f, "{\"1\":100}", NULL);
    set_split(f, "{\"2\":100}", NULL); /* bad, rolled back */
    char *w = NULL;
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, NULL, f->err, sizeof f->err), REG_OK);
    free(w);
    set_split(f, "{\"3\":100}", NULL);
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, NULL, f->err, sizeof f->err), REG_OK);
    assert_string_equal(w, "{\"1\":100}");
    free(w);
}

static void test_traffic_rollback_or_get_without_history_is_not_found(void **state)
{
    struct fixture *f = *state;
    char *w = NULL, *g = NULL;
    add_version(f, "m", "1");
    assert_int_equal(registry_traffic_get(f->r, "m", &w, &g, f->err, sizeof f->err), REG_NOT_FOUND);
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, &g, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    set_split(f, "{\"1\":100}", NULL);
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, &g, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_non_null(strstr(f->err, "earlier"));
    assert_null(w);
    assert_null(g);
}

static void test_traffic_set_refuses_non_objects_and_unknown_models(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    const char *bad[] = {"[]", "100", "{", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(registry_traffic_set(f->r, "m", bad[i], NULL, NULL, f->err, sizeof f->err),
                         REG_INVALID);
        assert_int_equal(registry_traffic_set(f->r, "m", "{}", bad[i], NULL, f->err, sizeof f->err),
                         REG_INVALID);
    }
    assert_int_equal(registry_traffic_set(f->r, "m", NULL, NULL, NULL, f->err, sizeof f->err),
                     REG_INVALID);
    assert_int_equal(registry_traffic_set(f->r, "ghost", "{}", NULL, NULL, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    char *w = NULL;
    assert_int_equal(registry_traffic_get(f->r, "m", &w, NULL, f->err, sizeof f->err),
                     REG_NOT_FOUND);
}

static void test_traffic_clear_forgets_the_current_split(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    assert_int_equal(registry_traffic_clear(f->r, "m", f->err, sizeof f->err), REG_OK);
    set_split(f, "{\"1\":100}", NULL);
    set_split(f, "{\"1\":50}", NULL);
    assert_int_equal(registry_traffic_clear(f->r, "m", f->err, sizeof f->err), REG_OK);
    char *w = NULL;
    assert_int_equal(registry_traffic_get(f->r, "m", &w, NULL, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_int_equal(registry_traffic_rollback(f->r, "m", &w, NULL, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    set_split(f, "{\"1\":100}", NULL);
    assert_split(f, "{\"1\":100}");
}

/* ---- stats ----------------------------------------------------------------------------- */

static void test_stats_save_then_load_returns_the_latest_totals(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    reg_stats s = {100, 3, 2, 1234.25, 0};
    assert_int_equal(registry_stats_save(f->r, id, &s, f->err, sizeof f->err), REG_OK);
    s.request_count = (uint64_t)INT64_MAX;
    assert_int_equal(registry_stats_save(f->r, id, &s, f->err, sizeof f->err), REG_OK);
    reg_stats back;
    assert_int_equal(registry_stats_load(f->r, id, &back, f->err, sizeof f->err), REG_OK);
    assert_true(back.request_count == (uint64_t)INT64_MAX);
    assert_int_equal(back.error_4xx, 3);
    assert_int_equal(back.error_5xx, 2);
    assert_true(back.latency_sum_ms == 1234.25);
}

static void test_stats_save_many_is_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    add_version(f, "m", "2");
    int64_t ids[3] = {deploy(f, "m", "1", NULL), deploy(f, "m", "2", NULL), 4242};
    reg_stats s[3] = {{10, 1, 0, 5.0, 0}, {20, 0, 2, 7.5, 0}, {1, 0, 0, 1.0, 0}};
    assert_int_equal(registry_stats_save_many(f->r, ids, s, 2, f->err, sizeof f->err), REG_OK);
    reg_stats back;
    assert_int_equal(registry_stats_load(f->r, ids[1], &back, f->err, sizeof f->err), REG_OK);
    assert_int_equal(back.request_count, 20);
    s[0].request_count = 99;
    /* the third id does not exist: nothing of the batch is kept */
    assert_int_equal(registry_stats_save_many(f->r, ids, s, 3, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_int_equal(registry_stats_load(f->r, ids[0], &back, f->err, sizeof f->err), REG_OK);
    assert_int_equal(back.request_count, 10);
}

static void test_stats_load_of_unsaved_deployment_is_zero(void **state)
{
    struct fixture *f = *state;
    reg_stats back = {9, 9, 9, 9.0, 0};
    assert_int_equal(registry_stats_load(f->r, 42, &back, f->err, sizeof f->err), REG_OK);
    assert_int_equal(back.request_count, 0);
    assert_int_equal(back.error_4xx + back.error_5xx, 0);
    assert_true(back.latency_sum_ms == 0.0);
}

static void test_stats_save_refuses_unknown_deployment_and_unstorable_values(void **state)
{
    struct fixture *f = *state;
    reg_stats s = {1, 0, 0, 1.0, 0};
    assert_int_equal(registry_stats_save(f->r, 42, &s, f->err, sizeof f->err), REG_NOT_FOUND);
    assert_int_equal(registry_stats_save(f->r, 0, &s, f->err, sizeof f->err), REG_INVALID);
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    reg_stats too_big = {(uint64_t)INT64_MAX + 1, 0, 0, 0.0, 0};
    assert_int_equal(registry_stats_save(f->r, id, &too_big, f->err, sizeof f->err), REG_INVALID);
    reg_stats negative = {1, 0, 0, -1.0, 0};
    assert_int_equal(registry_stats_save(f->r, id, &negative, f->err, sizeof f->err), REG_INVALID);
    assert_int_equal(registry_stats_save(f->r, id, NULL, f->err, sizeof f->err), REG_INVALID);
}

/* ---- threads and errors ---------------------------------------------------------------- */

struct writer {
    registry *r;
    int index;
    int failures;
};

static void *write_versions(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < 25; i++) {
        char version[32];
        snprintf(version, sizeof version, "%d.%d", w->index, i);
        if (registry_version_add(w->r, "shared", version, "/p", NULL, NULL, NULL, 0) != REG_OK)
            w->failures++;
    }
    return NULL;
}

static void test_concurrent_writers_on_one_handle_are_serialized(void **state)
{
    struct fixture *f = *state;
    pthread_t threads[4];
    struct writer writers[4];
    for (int i = 0; i < 4; i++) {
        writers[i] = (struct writer){f->r, i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, write_versions, &writers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(writers[i].failures, 0);
    }
    struct collected c = {0};
    assert_int_equal(registry_version_list(f->r, collect_version, &c, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(c.count, 100);
}

static void test_error_messages_fit_any_buffer_and_null_is_allowed(void **state)
{
    struct fixture *f = *state;
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(registry_version_get(f->r, "m", "1", &(reg_version){0}, tiny, sizeof tiny),
                     REG_NOT_FOUND);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(registry_version_delete(f->r, "m", "1", NULL, 0), REG_NOT_FOUND);
    assert_int_equal(registry_version_delete(NULL, "m", "1", NULL, 0), REG_INVALID);
}

static void test_status_str_names_every_status(void **state)
{
    (void)state;
    for (int s = REG_OK; s <= REG_ERROR; s++) {
        const char *text = registry_status_str((reg_status)s);
        assert_non_null(text);
        assert_true(strlen(text) > 0);
    }
    assert_string_equal(registry_status_str(REG_TOO_NEW), "database schema too new");
}

/* ---- replicas (scale-out) ---------------------------------------------------------------- */

struct replica_seen {
    int count;
    char ids[4][REG_REPLICA_ID_MAX + 1];
    char address[4][REG_ADDRESS_MAX + 1];
    int64_t serving[8][2]; /* deployment id, replica index in ids (by first letter) */
    int serving_count;
    reg_replica_stat stats[4];
    char buckets[4][64];
    int stats_count;
};

static int replica_seen_fn(void *ud, const reg_replica *rep)
{
    struct replica_seen *s = ud;
    snprintf(s->ids[s->count], sizeof s->ids[0], "%s", rep->id);
    snprintf(s->address[s->count++], sizeof s->address[0], "%s", rep->address);
    return 0;
}

static int serving_seen_fn(void *ud, int64_t deployment_id, const char *replica_id)
{
    struct replica_seen *s = ud;
    s->serving[s->serving_count][0] = deployment_id;
    s->serving[s->serving_count++][1] = replica_id[0];
    return 0;
}

static int stats_seen_fn(void *ud, const reg_replica_stat *st)
{
    struct replica_seen *s = ud;
    s->stats[s->stats_count] = *st;
    snprintf(s->buckets[s->stats_count], sizeof s->buckets[0], "%s", st->buckets);
    s->stats[s->stats_count].buckets = s->buckets[s->stats_count];
    s->stats_count++;
    return 0;
}

static void heartbeat(struct fixture *f, const char *id, bool starting)
{
    assert_int_equal(registry_replica_heartbeat(f->r, id, "http://10.0.0.1:8080", "0.1.0", starting,
                                                f->err, sizeof f->err),
                     REG_OK);
}

static void test_replicas_heartbeat_report_what_they_serve_and_leave(void **state)
{
    struct fixture *f = *state;
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    heartbeat(f, "a-8080", true);
    heartbeat(f, "b-8080", true);
    heartbeat(f, "a-8080", false); /* an upsert, not a second row */
    struct replica_seen s = {0};
    assert_int_equal(registry_replica_list(f->r, REG_REPLICA_LIVE_MS, replica_seen_fn, &s, f->err,
                                           sizeof f->err),
                     REG_OK);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.ids[0], "a-8080");
    assert_string_equal(s.address[1], "http://10.0.0.1:8080");

    int64_t ids[] = {id};
    assert_int_equal(registry_replica_serving_set(f->r, "a-8080", ids, 1, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_replica_serving_set(f->r, "b-8080", ids, 1, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_replica_serving_set(f->r, "b-8080", NULL, 0, f->err, sizeof f->err),
                     REG_OK); /* replaced whole */
    assert_int_equal(registry_replica_serving_list(f->r, REG_REPLICA_LIVE_MS, serving_seen_fn, &s,
                                                   f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(s.serving_count, 1);
    assert_int_equal(s.serving[0][0], id);
    assert_int_equal(s.serving[0][1], 'a');

    reg_replica_stat row = {.deployment_id = id,
                            .model_name = "m",
                            .version = "1",
                            .request_count = 10,
                            .error_5xx = 1,
                            .latency_sum_ms = 12.5,
                            .buckets = "3:9,7:1"};
    assert_int_equal(registry_replica_stats_set(f->r, "a-8080", &row, 1, f->err, sizeof f->err),
                     REG_OK);
    row.request_count = 5;
    row.buckets = "";
    assert_int_equal(registry_replica_stats_set(f->r, "b-8080", &row, 1, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_replica_stats_list(f->r, REG_REPLICA_LIVE_MS, stats_seen_fn, &s,
                                                 f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(s.stats_count, 2);
    assert_string_equal(s.stats[0].replica_id, "a-8080");
    assert_int_equal(s.stats[0].request_count, 10);
    assert_string_equal(s.stats[0].buckets, "3:9,7:1");
    assert_int_equal(s.stats[1].request_count, 5);

    /* A restarted replica reports afresh; a stopped one is gone with everything it reported. */
    heartbeat(f, "a-8080", true);
    struct replica_seen after = {0};
    registry_replica_serving_list(f->r, -1, serving_seen_fn, &after, f->err, sizeof f->err);
    assert_int_equal(after.serving_count, 0);
    assert_int_equal(registry_replica_remove(f->r, "b-8080", f->err, sizeof f->err), REG_OK);
    registry_replica_stats_list(f->r, -1, stats_seen_fn, &after, f->err, sizeof f->err);
    assert_int_equal(after.stats_count, 0);
    registry_replica_list(f->r, -1, replica_seen_fn, &after, f->err, sizeof f->err);
    assert_int_equal(after.count, 1);
    assert_int_equal(registry_replica_remove(f->r, "b-8080", f->err, sizeof f->err), REG_OK);
}

static void test_replica_reports_refuse_bad_ids_rows_and_unknown_replicas(void **state)
{
    struct fixture *f = *state;
    const char *bad_ids[] = {"", "a b", "a/b", "x'; DROP TABLE replicas; --", NULL};
    for (int i = 0; bad_ids[i]; i++)
        assert_int_equal(registry_replica_heartbeat(f->r, bad_ids[i], "http://h:1", "1", true,
                                                    f->err, sizeof f->err),
                         REG_INVALID);
    assert_int_equal(
        registry_replica_heartbeat(f->r, "a", "has space", "1", true, f->err, sizeof f->err),
        REG_INVALID);
    int64_t ids[] = {1};
    assert_int_equal(registry_replica_serving_set(f->r, "nobody", ids, 1, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    heartbeat(f, "a", true);
    int64_t zero[] = {0};
    assert_int_equal(registry_replica_serving_set(f->r, "a", zero, 1, f->err, sizeof f->err),
                     REG_INVALID);
    const char *bad_buckets[] = {"1:", ":1", "1:2,", "a:1", "1;2", NULL};
    for (int i = 0; bad_buckets[i]; i++) {
        reg_replica_stat row = {
            .deployment_id = 1, .model_name = "m", .version = "1", .buckets = bad_buckets[i]};
        assert_int_equal(registry_replica_stats_set(f->r, "a", &row, 1, f->err, sizeof f->err),
                         REG_INVALID);
    }
    reg_replica_stat bad_name = {
        .deployment_id = 1, .model_name = "../m", .version = "1", .buckets = ""};
    assert_int_equal(registry_replica_stats_set(f->r, "a", &bad_name, 1, f->err, sizeof f->err),
                     REG_INVALID);
}

static void test_change_seq_moves_with_the_desired_state_not_with_reports(void **state)
{
    struct fixture *f = *state;
    int64_t a = -1, b = -1, c = -1;
    assert_int_equal(registry_change_seq(f->r, &a, f->err, sizeof f->err), REG_OK);
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    assert_int_equal(registry_change_seq(f->r, &b, f->err, sizeof f->err), REG_OK);
    assert_true(b > a);
    heartbeat(f, "a", true);
    int64_t ids[] = {id};
    registry_replica_serving_set(f->r, "a", ids, 1, f->err, sizeof f->err);
    assert_int_equal(registry_change_seq(f->r, &c, f->err, sizeof f->err), REG_OK);
    assert_int_equal(c, b);
    assert_int_equal(
        registry_traffic_set(f->r, "m", "{\"1\":100}", NULL, "t", f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_change_seq(f->r, &c, f->err, sizeof f->err), REG_OK);
    assert_true(c > b);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", NULL, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(registry_change_seq(f->r, &b, f->err, sizeof f->err), REG_OK);
    assert_true(b > c);
}

/* PostgreSQL: every change of the desired state notifies REG_CHANGE_CHANNEL on commit; what a
 * replica reports about itself does not. */
static void test_desired_state_changes_notify_the_change_channel(void **state)
{
    struct fixture *f = *state;
    if (!test_registry_is_postgres())
        return; /* one process per SQLite registry: nobody to tell */
    registry_listener *l = NULL;
    assert_int_equal(registry_listen(f->r, REG_CHANGE_CHANNEL, &l, f->err, sizeof f->err), REG_OK);
    char payload[64];
    add_version(f, "m", "1");
    int64_t id = deploy(f, "m", "1", NULL);
    assert_int_equal(
        registry_listener_wait(l, 5000, payload, sizeof payload, f->err, sizeof f->err), REG_OK);
    heartbeat(f, "a", true);
    int64_t ids[] = {id};
    registry_replica_serving_set(f->r, "a", ids, 1, f->err, sizeof f->err);
    assert_int_equal(registry_listener_wait(l, 100, payload, sizeof payload, f->err, sizeof f->err),
                     REG_NOT_FOUND);
    assert_int_equal(
        registry_traffic_set(f->r, "m", "{\"1\":100}", NULL, "t", f->err, sizeof f->err), REG_OK);
    assert_int_equal(
        registry_listener_wait(l, 5000, payload, sizeof payload, f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_traffic_clear(f->r, "m", f->err, sizeof f->err), REG_OK);
    assert_int_equal(
        registry_listener_wait(l, 5000, payload, sizeof payload, f->err, sizeof f->err), REG_OK);
    assert_int_equal(registry_deployment_end(f->r, id, "undeployed", NULL, f->err, sizeof f->err),
                     REG_OK);
    assert_int_equal(
        registry_listener_wait(l, 5000, payload, sizeof payload, f->err, sizeof f->err), REG_OK);
    registry_listener_close(l);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fresh_open_applies_every_migration_and_records_it),
        T(test_replicas_heartbeat_report_what_they_serve_and_leave),
        T(test_replica_reports_refuse_bad_ids_rows_and_unknown_replicas),
        T(test_change_seq_moves_with_the_desired_state_not_with_reports),
        T(test_desired_state_changes_notify_the_change_channel),
        T(test_reopen_applies_nothing_and_leaves_the_file_unchanged),
        T(test_open_refuses_a_newer_schema_and_leaves_the_file_byte_for_byte),
        T(test_failed_migration_rolls_back_and_reports_the_sqlite_error),
        T(test_open_refuses_a_file_that_is_not_sqlite_and_leaves_it_alone),
        T(test_open_with_empty_or_null_path_is_invalid),
        T(test_reopen_keeps_versions_deployments_events_splits_and_stats),
        T(test_two_handles_on_one_file_see_each_others_writes),
        T(test_backend_is_the_one_the_target_names),
        T(test_blob_put_then_get_returns_every_byte),
        T(test_blob_refuses_bad_digests_and_kinds_and_misses_are_not_found),
        T(test_open_refuses_a_database_with_foreign_tables),
        T(test_handles_opening_a_fresh_registry_at_once_all_migrate_it),
        T(test_writers_on_separate_handles_at_once_all_succeed),
        T(test_open_error_names_the_target_without_its_password),
        T(test_redact_target_hides_every_password_form),
        T(test_notify_reaches_a_listener_and_times_out_without_one),
        T(test_a_dropped_connection_is_reestablished_by_the_next_call),
        T(test_name_validation_accepts_and_rejects_the_documented_set),
        T(test_every_function_refuses_invalid_names),
        T(test_invalid_names_are_refused_before_the_lock_or_any_sql),
        T(test_calling_the_registry_from_its_own_callback_fails_instead_of_deadlocking),
        T(test_version_add_then_get_returns_what_was_stored),
        T(test_version_without_config_or_sha_gets_empty_object_and_empty_sha),
        T(test_duplicate_version_is_refused_with_exists),
        T(test_version_add_refuses_config_that_is_not_a_json_object),
        T(test_version_add_refuses_bad_sha256_and_plugin_path),
        T(test_get_of_unknown_version_is_not_found),
        T(test_version_list_orders_by_model_then_creation_and_stops_early),
        T(test_delete_while_deployed_is_conflict),
        T(test_delete_of_unknown_version_is_not_found),
        T(test_delete_after_undeploy_keeps_history_and_frees_the_name),
        T(test_delete_closes_a_failed_deployment_of_the_version),
        T(test_deploy_returns_an_active_deployment),
        T(test_deploy_of_unknown_version_is_not_found),
        T(test_double_deploy_is_exists),
        T(test_endpoint_name_taken_is_exists_until_released),
        T(test_ended_deployment_is_listed_no_more_unless_failed),
        T(test_is_active_is_true_only_until_the_deployment_ends),
        T(test_failed_deployment_keeps_reason_and_can_be_redeployed),
        T(test_deployment_end_refuses_unknown_ended_or_bad_status),
        T(test_set_options_replaces_them_records_an_event_and_survives_reopen),
        T(test_events_list_newest_first_with_model_filter_and_limit),
        T(test_events_prune_deletes_the_oldest_before_a_time_in_batches),
        T(test_event_add_refuses_bad_kind_detail_and_limit),
        T(test_traffic_set_get_and_rollback_walk_back_through_history),
        T(test_traffic_set_after_rollback_never_restores_the_rolled_back_split),
        T(test_traffic_rollback_or_get_without_history_is_not_found),
        T(test_traffic_set_refuses_non_objects_and_unknown_models),
        T(test_traffic_clear_forgets_the_current_split),
        T(test_stats_save_then_load_returns_the_latest_totals),
        T(test_stats_save_many_is_all_or_nothing),
        T(test_stats_load_of_unsaved_deployment_is_zero),
        T(test_stats_save_refuses_unknown_deployment_and_unstorable_values),
        T(test_concurrent_writers_on_one_handle_are_serialized),
        T(test_error_messages_fit_any_buffer_and_null_is_allowed),
        T(test_status_str_names_every_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
