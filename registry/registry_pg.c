/*
 * registry pg: the PostgreSQL backend of registry/ (see struct reg_backend in
 * registry_internal.h), the one file that includes libpq's header, plus LISTEN/NOTIFY.
 *
 * How it works. A handle holds one PGconn (the handle's mutex serializes its use). Each
 * statement id is prepared on first use as "ds_<id>" from reg__sql(), rewritten from the shared
 * dialect: ?N placeholders become $N and NOW_SQL becomes PG_NOW_SQL. Arguments are sent as text
 * and typed by the server from their context (a few PG_SQL[] texts cast where it cannot tell);
 * blobs go in binary, and ST_BLOB_GET's result comes back in binary (raw bytea, no hex).
 * A result is fetched whole (registry results are small: one row, or a listing), so a row
 * stays readable until the statement is reset and a failed read has reached no callback.
 * SQLSTATEs map to the common codes: 23xxx constraints, 40001/40P01 and lost connections to
 * DB_RETRY with registry.retry set, which makes reg__tx_run() run the transaction again. A lost
 * connection is re-established (PQreset) by the next statement, which prepares again.
 *
 * Connecting: the target is a libpq URI; dynserve adds connect_timeout=10 and
 * application_name=dynserve unless the URI sets them. Server notices (e.g. "already exists,
 * skipping") are dropped: they are not errors and would only clutter stderr.
 */
#include "registry_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define PG_MAX_PARAMS 16

static PGconn *conn_of(const registry *r)
{
    return r->conn;
}

static PGresult *result_of(const reg_stmt *st)
{
    return st->native;
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* libpq's message without its trailing newline, into r->errmsg. */
static void set_conn_errmsg(registry *r, PGconn *c, const char *what)
{
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    int n = (int)strcspn(m, "\n");
    reg__set_errmsg(r, "%s: %.*s", what, n, m);
}

/* Connects with dynserve's defaults; the URI's own settings win (they come later). */
static PGconn *connect_to(const char *target)
{
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const values[] = {"10", "dynserve", target, NULL};
    PGconn *c = PQconnectdbParams(keys, values, 1);
    if (c && PQstatus(c) == CONNECTION_OK) {
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        PQsetClientEncoding(c, "UTF8");
    }
    return c;
}

/* ---- errors ------------------------------------------------------------------------------ */

static bool lost(const registry *r)
{
    return PQstatus(conn_of(r)) != CONNECTION_OK;
}

/* A failed result -> the common code, its message into r->errmsg; takes ownership of res. */
static int fail_of(registry *r, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg)
        reg__set_errmsg(r, "%s (postgres %s)", msg, state ? state : "?");
    else
        set_conn_errmsg(r, conn_of(r), "postgres");
    int rc = DB_ERROR;
    if (lost(r) || (state && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
                              strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)))
        rc = DB_RETRY;
    else if (!state)
        rc = DB_ERROR;
    else if (strcmp(state, "23505") == 0)
        rc = DB_UNIQUE;
    else if (strcmp(state, "23514") == 0)
        rc = DB_CHECK;
    else if (strcmp(state, "23502") == 0)
        rc = DB_NOTNULL;
    else if (strcmp(state, "23503") == 0)
        rc = DB_FOREIGN;
    if (rc == DB_RETRY)
        r->retry = true;
    PQclear(res);
    return rc;
}

/* ---- statements -------------------------------------------------------------------------- */

/* The shared dialect -> PostgreSQL: ?N -> $N outside quoted text, NOW_SQL -> PG_NOW_SQL.
 * malloc'd; NULL when out of memory. */
static char *pg_dialect(const char *sql)
{
    static const char now[] = NOW_SQL, pg_now[] = PG_NOW_SQL;
    char *out = malloc(strlen(sql) + 1); /* the rewrite never grows the text */
    if (!out)
        return NULL;
    size_t o = 0;
    bool quoted = false;
    for (const char *p = sql; *p;) {
        if (!quoted && strncmp(p, now, sizeof now - 1) == 0) {
            memcpy(out + o, pg_now, sizeof pg_now - 1);
            o += sizeof pg_now - 1;
            p += sizeof now - 1;
            continue;
        }
        if (*p == '\'')
            quoted = !quoted;
        out[o++] = (!quoted && *p == '?' && p[1] >= '0' && p[1] <= '9') ? '$' : *p;
        p++;
    }
    out[o] = '\0';
    return out;
}

static void pg_reset(reg_stmt *st)
{
    PQclear(result_of(st));
    st->native = NULL;
    st->row = st->rows = 0;
}

/* Re-establishes a lost connection; its prepared statements died with it. */
static int reconnect(registry *r)
{
    PQreset(conn_of(r));
    for (int i = 0; i < ST_COUNT; i++)
        r->stmts[i].prepared = false;
    if (!lost(r)) {
        PQsetNoticeProcessor(conn_of(r), ignore_notice, NULL);
        PQsetClientEncoding(conn_of(r), "UTF8");
        return DB_OK;
    }
    set_conn_errmsg(r, conn_of(r), "reconnect");
    r->retry = true;
    return DB_RETRY;
}

static int prepare(registry *r, enum stmt_id id, const char *name)
{
    const char *shared = reg__sql(r, id);
    char *sql = shared ? pg_dialect(shared) : NULL;
    if (!sql) {
        reg__set_errmsg(r, "statement %d: %s", (int)id, shared ? "out of memory" : "no text");
        return DB_ERROR;
    }
    PGresult *res = PQprepare(conn_of(r), name, sql, 0, NULL);
    free(sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail_of(r, res);
    PQclear(res);
    r->stmts[id].prepared = true;
    return DB_OK;
}

/* The arguments of one execution: text, except blobs, which go in binary (no escaping). */
struct pg_args {
    const char *values[PG_MAX_PARAMS]; /* NULL for SQL NULL */
    int lengths[PG_MAX_PARAMS];
    int formats[PG_MAX_PARAMS]; /* 0 text, 1 binary */
    char bufs[PG_MAX_PARAMS][32];
};

/* Fills a from the arguments of `spec` (see reg__query); their count, or -1. */
static int args_of(const char *spec, va_list ap, struct pg_args *a)
{
    const char **values = a->values;
    char(*bufs)[32] = a->bufs;
    int n = 0;
    for (; spec[n]; n++) {
        if (n == PG_MAX_PARAMS)
            return -1;
        a->formats[n] = 0;
        a->lengths[n] = 0;
        if (spec[n] == 'b') {
            values[n] = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            if (len > 0x7fffffff)
                return -1;
            if (!values[n])
                values[n] = "";
            a->lengths[n] = (int)len;
            a->formats[n] = 1;
        } else if (spec[n] == 's') {
            values[n] = va_arg(ap, const char *);
        } else if (spec[n] == 'i') {
            snprintf(bufs[n], sizeof bufs[n], "%lld", (long long)va_arg(ap, int64_t));
            values[n] = bufs[n];
        } else if (spec[n] == 'd') {
            snprintf(bufs[n], sizeof bufs[n], "%.17g", va_arg(ap, double));
            values[n] = bufs[n];
        } else {
            return -1;
        }
    }
    return n;
}

static int pg_query(registry *r, enum stmt_id id, const char *spec, va_list ap)
{
    reg_stmt *st = &r->stmts[id];
    pg_reset(st);
    if (lost(r) && reconnect(r) != DB_OK)
        return DB_RETRY;
    char name[16];
    snprintf(name, sizeof name, "ds_%d", (int)id);
    int rc = st->prepared ? DB_OK : prepare(r, id, name);
    if (rc != DB_OK)
        return rc;
    struct pg_args args;
    int n = args_of(spec, ap, &args);
    if (n < 0) {
        reg__set_errmsg(r, "statement %d: bad argument spec '%s' or a blob over 2 GB", (int)id,
                        spec);
        return DB_ERROR;
    }
    PGresult *res = PQexecPrepared(conn_of(r), name, n, args.values, args.lengths, args.formats,
                                   id == ST_BLOB_GET ? 1 : 0);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        return fail_of(r, res);
    st->native = res;
    st->rows = status == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    st->row = 0;
    if (st->rows > 0)
        return DB_ROW;
    pg_reset(st);
    return DB_DONE;
}

static int pg_step(reg_stmt *st)
{
    if (++st->row < st->rows)
        return DB_ROW;
    pg_reset(st);
    return DB_DONE;
}

static const char *pg_col_text(const reg_stmt *st, int col)
{
    PGresult *res = result_of(st);
    if (!res || st->row >= st->rows || col >= PQnfields(res) || PQgetisnull(res, st->row, col))
        return NULL;
    return PQgetvalue(res, st->row, col);
}

/* Raw bytes for ST_BLOB_GET, the one statement fetched in binary. */
static const void *pg_col_blob(const reg_stmt *st, int col, size_t *len)
{
    PGresult *res = result_of(st);
    *len = 0;
    if (!res || st->row >= st->rows || col >= PQnfields(res) || PQgetisnull(res, st->row, col) ||
        PQfformat(res, col) != 1)
        return NULL;
    *len = (size_t)PQgetlength(res, st->row, col);
    return PQgetvalue(res, st->row, col);
}

static int64_t pg_col_int64(const reg_stmt *st, int col)
{
    const char *s = pg_col_text(st, col);
    return s ? strtoll(s, NULL, 10) : 0;
}

static double pg_col_double(const reg_stmt *st, int col)
{
    const char *s = pg_col_text(st, col);
    return s ? strtod(s, NULL) : 0.0;
}

static int pg_exec_script(registry *r, const char *sql)
{
    PGresult *res = PQexec(conn_of(r), sql);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        return fail_of(r, res);
    PQclear(res);
    return DB_OK;
}

static int pg_begin(registry *r)
{
    int rc = reg__run(r, ST_BEGIN, "");
    return rc == DB_DONE ? reg__run(r, ST_TX_LOCK, "") : rc;
}

static bool pg_in_tx(registry *r)
{
    PGTransactionStatusType t = PQtransactionStatus(conn_of(r));
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int pg_migration_lock(registry *r, bool take)
{
    return reg__run(r, take ? ST_MIGRATION_LOCK : ST_MIGRATION_UNLOCK, "");
}

static reg_status pg_open(registry *r, const char *target, char *err, size_t errlen)
{
    PGconn *c = connect_to(target);
    r->conn = c;
    if (c && PQstatus(c) == CONNECTION_OK)
        return REG_OK;
    char shown[256];
    registry_redact_target(target, shown, sizeof shown);
    const char *m = c ? PQerrorMessage(c) : "out of memory";
    return reg__fail(err, errlen, REG_ERROR, "connect to %s: %.*s", shown, (int)strcspn(m, "\n"),
                     m);
}

static void pg_close(registry *r)
{
    for (int i = 0; i < ST_COUNT; i++)
        pg_reset(&r->stmts[i]);
    PQfinish(conn_of(r)); /* NULL is fine */
    r->conn = NULL;
}

const struct reg_backend reg_pg_backend = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .query = pg_query,
    .step = pg_step,
    .reset = pg_reset,
    .col_int64 = pg_col_int64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .exec_script = pg_exec_script,
    .begin = pg_begin,
    .in_tx = pg_in_tx,
    .migration_lock = pg_migration_lock,
    .schema_accepted = NULL,
};

/* ---- LISTEN ------------------------------------------------------------------------------ */

struct registry_listener {
    char *target; /* owned copy (may hold a password) */
    char channel[64];
    PGconn *conn; /* NULL while disconnected */
};

static reg_status listen_connect(registry_listener *l, char *err, size_t errlen)
{
    PQfinish(l->conn);
    l->conn = connect_to(l->target);
    char shown[256];
    if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
        registry_redact_target(l->target, shown, sizeof shown);
        const char *m = l->conn ? PQerrorMessage(l->conn) : "out of memory";
        reg__fail(err, errlen, REG_ERROR, "listen: connect to %s: %.*s", shown,
                  (int)strcspn(m, "\n"), m);
        PQfinish(l->conn);
        l->conn = NULL;
        return REG_ERROR;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "LISTEN \"%s\"", l->channel); /* [a-z_] only: nothing to escape */
    PGresult *res = PQexec(l->conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (ok)
        return REG_OK;
    reg__fail(err, errlen, REG_ERROR, "listen: %.*s", (int)strcspn(PQerrorMessage(l->conn), "\n"),
              PQerrorMessage(l->conn));
    PQfinish(l->conn);
    l->conn = NULL;
    return REG_ERROR;
}

reg_status registry_listen(registry *r, const char *channel, registry_listener **out, char *err,
                           size_t errlen)
{
    if (!out)
        return reg__fail(err, errlen, REG_INVALID, "registry_listen: out is NULL");
    *out = NULL;
    reg_status st = reg__check_handle(r, err, errlen);
    if (st != REG_OK)
        return st;
    if (r->be != &reg_pg_backend)
        return reg__fail(err, errlen, REG_INVALID, "LISTEN needs a PostgreSQL registry");
    size_t n = channel ? strnlen(channel, 64) : 0;
    if (n < 1 || n > 63 || strspn(channel, "abcdefghijklmnopqrstuvwxyz_") != n)
        return reg__fail(err, errlen, REG_INVALID, "listen: channel must be [a-z_]{1,63}");
    registry_listener *l = calloc(1, sizeof *l);
    if (!l || !(l->target = strdup(r->target))) { /* r->target never changes after open */
        free(l);
        return reg__no_memory(err, errlen);
    }
    memcpy(l->channel, channel, n + 1);
    st = listen_connect(l, err, errlen);
    if (st != REG_OK) {
        registry_listener_close(l);
        return st;
    }
    *out = l;
    return REG_OK;
}

/* One pending notification into payload; false when there is none. */
static bool take_notification(registry_listener *l, char *payload, size_t len)
{
    PGnotify *n = PQnotifies(l->conn);
    if (!n)
        return false;
    if (payload && len > 0)
        snprintf(payload, len, "%s", n->extra ? n->extra : "");
    PQfreemem(n);
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static reg_status listener_broken(registry_listener *l, char *err, size_t errlen)
{
    reg__fail(err, errlen, REG_ERROR, "listen: connection lost: %.*s",
              (int)strcspn(PQerrorMessage(l->conn), "\n"), PQerrorMessage(l->conn));
    PQfinish(l->conn);
    l->conn = NULL;
    return REG_ERROR;
}

reg_status registry_listener_wait(registry_listener *l, int timeout_ms, char *payload, size_t len,
                                  char *err, size_t errlen)
{
    if (payload && len > 0)
        payload[0] = '\0';
    if (!l)
        return reg__fail(err, errlen, REG_INVALID, "registry_listener_wait: listener is NULL");
    if (!l->conn && listen_connect(l, err, errlen) != REG_OK)
        return REG_ERROR;
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (!PQconsumeInput(l->conn))
            return listener_broken(l, err, errlen);
        if (take_notification(l, payload, len))
            return REG_OK;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return reg__fail(err, errlen, REG_NOT_FOUND, "no notification");
        struct pollfd p = {.fd = PQsocket(l->conn), .events = POLLIN};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return reg__fail(err, errlen, REG_ERROR, "listen: poll: %s", strerror(errno));
    }
}

void registry_listener_close(registry_listener *l)
{
    if (!l)
        return;
    PQfinish(l->conn);
    free(l->target);
    free(l);
}
