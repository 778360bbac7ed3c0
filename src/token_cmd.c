/*
 * token_cmd: the `dynserve token` subcommand — create, list and revoke API tokens directly in a
 * data dir's registry (the server need not run; a running server sees the change within two
 * seconds).
 *
 *   dynserve token create --role admin|deployer|viewer|inference --name N [--expires 30d]
 *   dynserve token list
 *   dynserve token revoke NAME|ID
 *   (each with [--data-dir D]; default $DYNSERVE_DATA_DIR, then ./data; or [--registry R], a
 *   SQLite file or a postgres:// URI, default $DYNSERVE_REGISTRY, then <data dir>/registry.db)
 *
 * `create` prints the token alone on stdout (so `T=$(dynserve token create ...)` works) and what
 * it is on stderr; the token is shown this once and stored only as a salted hash.
 * Exit codes: 0 done, 1 failed (name taken, no such token, registry error), 2 bad command line.
 */
#include "token_cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "registry.h"

typedef struct token_args {
    const char *action;
    const char *role, *name, *expires, *which;
    char data_dir[PATH_MAX];
    char registry[PATH_MAX]; /* "" = <data_dir>/registry.db */
} token_args;

static int token_usage(const char *why)
{
    if (why != NULL)
        fprintf(stderr, "dynserve token: %s\n", why);
    fprintf(stderr,
            "usage: dynserve token create --role admin|deployer|viewer|inference --name NAME "
            "[--expires 30d|12h|90m|SECONDS] [--data-dir DIR | --registry FILE|URI]\n"
            "       dynserve token list [--data-dir DIR | --registry FILE|URI]\n"
            "       dynserve token revoke NAME|ID [--data-dir DIR | --registry FILE|URI]\n");
    return 2;
}

/* argv[0] is "token". 0, or 2 after printing the usage. */
static int token_parse(int argc, char **argv, token_args *a)
{
    const char *env = getenv("DYNSERVE_DATA_DIR");
    snprintf(a->data_dir, sizeof a->data_dir, "%s", env && *env ? env : "./data");
    env = getenv("DYNSERVE_REGISTRY");
    snprintf(a->registry, sizeof a->registry, "%s", env && *env ? env : "");
    if (argc < 2)
        return token_usage(NULL);
    a->action = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = strcmp(arg, "--role") == 0      ? &a->role
                            : strcmp(arg, "--name") == 0    ? &a->name
                            : strcmp(arg, "--expires") == 0 ? &a->expires
                                                            : NULL;
        char *buf = strcmp(arg, "--data-dir") == 0   ? a->data_dir
                    : strcmp(arg, "--registry") == 0 ? a->registry
                                                     : NULL;
        if (slot != NULL || buf != NULL) {
            if (i + 1 >= argc)
                return token_usage("an option needs a value");
            const char *v = argv[++i];
            if (slot != NULL)
                *slot = v;
            else if (snprintf(buf, PATH_MAX, "%s", v) >= PATH_MAX)
                return token_usage("an option's value is too long");
        } else if (arg[0] != '-' && a->which == NULL && strcmp(a->action, "revoke") == 0) {
            a->which = arg;
        } else {
            fprintf(stderr, "dynserve token: unexpected argument '%s'\n", arg);
            return token_usage(NULL);
        }
    }
    return 0;
}

/* The --registry, else the registry of the data dir, created (mode 0700) when missing. NULL
 * after a message. */
static registry *token_open(const token_args *a)
{
    char path[PATH_MAX + 16], shown[PATH_MAX + 16], err[512];
    if (a->registry[0]) {
        snprintf(path, sizeof path, "%s", a->registry);
    } else {
        if (mkdir(a->data_dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "dynserve token: cannot create %s: %s\n", a->data_dir, strerror(errno));
            return NULL;
        }
        snprintf(path, sizeof path, "%s/registry.db", a->data_dir);
    }
    registry_redact_target(path, shown, sizeof shown);
    registry *reg = NULL;
    if (registry_open(path, &reg, err, sizeof err) != REG_OK) {
        fprintf(stderr, "dynserve token: registry %s: %s\n", shown, err);
        return NULL;
    }
    return reg;
}

static int token_create(registry *reg, const token_args *a)
{
    int role = auth_role_parse(a->role);
    int64_t ttl = a->expires ? auth_parse_duration(a->expires) : 0;
    if (a->name == NULL || role < 0)
        return token_usage("create needs --name and --role admin|deployer|viewer|inference");
    if (ttl < 0)
        return token_usage("--expires takes a duration such as 30d, 12h, 90m or 3600");
    char text[AUTH_TOKEN_TEXT_MAX], err[512];
    reg_token row;
    reg_status st =
        auth_token_create(reg, a->name, (auth_role)role, ttl, text, &row, err, sizeof err);
    if (st == REG_INVALID)
        return token_usage(err);
    if (st != REG_OK) {
        fprintf(stderr, "dynserve token: cannot create token '%s': %s\n", a->name, err);
        return 1;
    }
    printf("%s\n", text);
    fflush(stdout);
    OPENSSL_cleanse(text, sizeof text);
    fprintf(stderr,
            "created token '%s' (id %s, role %s, expires %s). It is shown only this once: "
            "store it now.\n",
            row.name, row.id, row.role, row.expires_at[0] ? row.expires_at : "never");
    return 0;
}

static int token_print(void *ud, const reg_token *t)
{
    (void)ud;
    printf("%-16s  %-24s  %-9s  %-20s  %-20s  %-20s  %s\n", t->id, t->name, t->role, t->created_at,
           t->expires_at[0] ? t->expires_at : "never",
           t->last_used_at[0] ? t->last_used_at : "never", t->revoked_at[0] ? "revoked" : "valid");
    return 0;
}

static int token_list(registry *reg)
{
    char err[512];
    printf("%-16s  %-24s  %-9s  %-20s  %-20s  %-20s  %s\n", "ID", "NAME", "ROLE", "CREATED",
           "EXPIRES", "LAST USED", "STATUS");
    if (registry_token_list(reg, token_print, NULL, err, sizeof err) != REG_OK) {
        fprintf(stderr, "dynserve token: %s\n", err);
        return 1;
    }
    return 0;
}

static int token_revoke(registry *reg, const token_args *a)
{
    if (a->which == NULL)
        return token_usage("revoke needs the token's name or id");
    char err[512];
    reg_token t;
    reg_status st = registry_token_revoke(reg, a->which, &t, err, sizeof err);
    if (st != REG_OK) {
        fprintf(stderr, "dynserve token: cannot revoke '%s': %s\n", a->which, err);
        return 1;
    }
    fprintf(stderr, "revoked token '%s' (id %s)\n", t.name, t.id);
    return 0;
}

int token_cmd_main(int argc, char **argv)
{
    token_args a = {0};
    int rc = token_parse(argc, argv, &a);
    if (rc != 0)
        return rc;
    bool known = strcmp(a.action, "create") == 0 || strcmp(a.action, "list") == 0 ||
                 strcmp(a.action, "revoke") == 0;
    if (!known)
        return token_usage("the action is create, list or revoke");
    registry *reg = token_open(&a);
    if (reg == NULL)
        return 1;
    if (a.action[0] == 'c')
        rc = token_create(reg, &a);
    else if (a.action[0] == 'l')
        rc = token_list(reg);
    else
        rc = token_revoke(reg, &a);
    registry_close(reg);
    return rc;
}
