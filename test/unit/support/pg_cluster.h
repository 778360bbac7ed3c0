/*
 * pg_cluster: a throwaway PostgreSQL cluster for tests (Debian's `postgresql` binaries): initdb
 * in a temporary directory, a free loopback port, the unix socket in that directory, pg_ctl to
 * start and stop it. As root (CI), initdb refuses to run, so the cluster's programs run as the
 * unprivileged user `nobody` (runuser) and the directory is handed to it. Trust authentication
 * on the socket and on 127.0.0.1 only; fsync off (the data is thrown away).
 *
 * The binaries are found in $DYNSERVE_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin.
 * Not thread-safe: call from the test's main thread.
 */
#ifndef DS_TEST_PG_CLUSTER_H
#define DS_TEST_PG_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

/* Starts the cluster once per process (later calls return 0); stopped at exit. 0 on success,
 * -1 with a message (including the tail of the server's log) in err. */
int pg_cluster_start(char *err, size_t errlen);
/* Stops the cluster and removes its directory (also run at exit). */
void pg_cluster_stop(void);
/* Runs SQL through psql as the cluster's superuser in database `db`; 0 on success. */
int pg_cluster_sql(const char *db, const char *sql, char *err, size_t errlen);
/* A fresh, empty database (a new one per call) as a libpq URI in out; 0 on success. */
int pg_cluster_new_database(char *out, size_t outlen, char *err, size_t errlen);
/* The cluster's base URI for database `db` (host = the socket directory). */
void pg_cluster_uri(const char *db, char *out, size_t outlen);

/* The registry the unit tests of this run use: with DYNSERVE_TEST_REGISTRY=postgres a fresh
 * PostgreSQL database (starting the cluster on first use), otherwise <dir>/registry.db.
 * 0 on success. */
int test_registry_target(const char *dir, char *out, size_t outlen, char *err, size_t errlen);
/* true when this run's registries are PostgreSQL. */
bool test_registry_is_postgres(void);

#endif
