/* pg_cluster: see pg_cluster.h. Programs run with fork/exec (no shell), output into the
 * cluster directory's setup.log. */
#include "pg_cluster.h"
#include "test_fs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The one cluster of this process (main thread only, see the header). */
static struct {
    bool started;
    char dir[64];  /* /tmp/ds-pg.XXXXXX: data/, the socket, logs */
    char bin[256]; /* directory of initdb, pg_ctl, psql */
    int port;
    int databases; /* how many pg_cluster_new_database made */
} pg;

static int fail(char *err, size_t errlen, const char *fmt, const char *arg)
{
    snprintf(err, errlen, fmt, arg);
    return -1;
}

static int find_bindir(char *err, size_t errlen)
{
    const char *env = getenv("DYNSERVE_PG_BINDIR");
    if (env && *env) {
        snprintf(pg.bin, sizeof pg.bin, "%s", env);
        return 0;
    }
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0 || g.gl_pathc == 0)
        return fail(err, errlen, "%s",
                    "no PostgreSQL server: install Debian's postgresql "
                    "(scripts/install-deps.sh) or set DYNSERVE_PG_BINDIR");
    /* Sorted: the last is the newest major version with one digit more or the same count. */
    snprintf(pg.bin, sizeof pg.bin, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    *strrchr(pg.bin, '/') = '\0';
    return 0;
}

/* Runs argv (argv[0] a program in the bin dir), as `nobody` when we are root; 0 on exit 0. */
static int run(const char *const *args, bool as_owner)
{
    const char *argv[24];
    int n = 0;
    char prog[320];
    snprintf(prog, sizeof prog, "%s/%s", pg.bin, args[0]);
    if (as_owner && geteuid() == 0) {
        argv[n++] = "runuser";
        argv[n++] = "-u";
        argv[n++] = "nobody";
        argv[n++] = "--";
    }
    argv[n++] = prog;
    for (int i = 1; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char log[128];
    snprintf(log, sizeof log, "%s/setup.log", pg.dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0666);
        int null = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (null >= 0)
            dup2(null, 0);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The last ~400 bytes of a file in the cluster dir, for error messages. */
static void tail_of(const char *name, char *out, size_t outlen)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", pg.dir, name);
    out[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, size > 400 ? size - 400 : 0, SEEK_SET);
    size_t n = fread(out, 1, outlen - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* As root, the cluster directory belongs to nobody (initdb and postgres refuse root). */
static int hand_over_dir(void)
{
    if (geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam("nobody");
    return pw && chown(pg.dir, pw->pw_uid, pw->pw_gid) == 0 ? 0 : -1;
}

static int start_failed(char *err, size_t errlen, const char *what, const char *log)
{
    char tail[420];
    tail_of(log, tail, sizeof tail);
    snprintf(err, errlen, "pg_cluster: %s failed (binaries %s): %s", what, pg.bin, tail);
    return -1;
}

void pg_cluster_stop(void)
{
    if (!pg.dir[0])
        return;
    if (pg.started) {
        char data[128];
        snprintf(data, sizeof data, "%s/data", pg.dir);
        const char *stop[] = {"pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", NULL};
        run(stop, true);
        pg.started = false;
    }
    test_remove_tree(pg.dir);
    pg.dir[0] = '\0';
}

int pg_cluster_start(char *err, size_t errlen)
{
    if (pg.started)
        return 0;
    if (find_bindir(err, errlen) != 0)
        return -1;
    snprintf(pg.dir, sizeof pg.dir, "/tmp/ds-pg.XXXXXX");
    if (!mkdtemp(pg.dir) || hand_over_dir() != 0)
        return fail(err, errlen, "pg_cluster: cannot make the cluster directory: %s",
                    strerror(errno));
    atexit(pg_cluster_stop);
    char data[128], log[128], opts[256];
    snprintf(data, sizeof data, "%s/data", pg.dir);
    snprintf(log, sizeof log, "%s/server.log", pg.dir);
    const char *initdb[] = {"initdb",       "-D", data,   "-U",        "dynserve",
                            "--auth=trust", "-E", "UTF8", "--no-sync", NULL};
    if (run(initdb, true) != 0)
        return start_failed(err, errlen, "initdb", "setup.log");
    pg.port = free_port();
    snprintf(opts, sizeof opts,
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
             "-c full_page_writes=off -c max_connections=200",
             pg.port, pg.dir);
    const char *start[] = {"pg_ctl", "-D", data, "-l", log,     "-o",
                           opts,     "-w", "-t", "60", "start", NULL};
    if (run(start, true) != 0)
        return start_failed(err, errlen, "pg_ctl start", "server.log");
    pg.started = true;
    return 0;
}

void pg_cluster_uri(const char *db, char *out, size_t outlen)
{
    snprintf(out, outlen, "postgresql:///%s?host=%s&port=%d&user=dynserve", db, pg.dir, pg.port);
}

int pg_cluster_sql(const char *db, const char *sql, char *err, size_t errlen)
{
    char port[16];
    snprintf(port, sizeof port, "%d", pg.port);
    const char *psql[] = {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                          pg.dir, "-p", port, "-U", "dynserve",        "-d",
                          db,     "-c", sql,  NULL};
    if (run(psql, false) == 0)
        return 0;
    return start_failed(err, errlen, "psql", "setup.log");
}

int pg_cluster_new_database(char *out, size_t outlen, char *err, size_t errlen)
{
    if (pg_cluster_start(err, errlen) != 0)
        return -1;
    char name[32], sql[64];
    snprintf(name, sizeof name, "t%d", ++pg.databases);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (pg_cluster_sql("postgres", sql, err, errlen) != 0)
        return -1;
    pg_cluster_uri(name, out, outlen);
    return 0;
}

bool test_registry_is_postgres(void)
{
    const char *v = getenv("DYNSERVE_TEST_REGISTRY");
    return v && strcmp(v, "postgres") == 0;
}

int test_registry_target(const char *dir, char *out, size_t outlen, char *err, size_t errlen)
{
    if (test_registry_is_postgres())
        return pg_cluster_new_database(out, outlen, err, errlen);
    snprintf(out, outlen, "%s/registry.db", dir);
    return 0;
}
