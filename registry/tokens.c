/* registry tokens: table api_tokens (add, replace, revoke, list, touch). See registry.h. */
#include "registry_internal.h"

#include <stdio.h>
#include <string.h>

#include "names.h"

static void hex_of(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* false when `in` is not exactly 2n lowercase hex digits. */
static bool bytes_of(const char *in, unsigned char *out, size_t n)
{
    if (in == NULL || strlen(in) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(in[2 * i]), lo = hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static bool token_time_ok(const char *t)
{
    if (t[0] == '\0')
        return true;
    /* YYYY-MM-DDTHH:MM:SSZ */
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(t) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : t[i] != shape[i])
            return false;
    return true;
}

static reg_status check_token(const reg_token *t, char *err, size_t errlen)
{
    unsigned char id[8];
    if (t == NULL || !bytes_of(t->id, id, sizeof id))
        return reg__fail(err, errlen, REG_INVALID, "token id must be 16 lowercase hex digits");
    reg_status st = reg__check_name("token name", t->name, err, errlen);
    if (st != REG_OK)
        return st;
    static const char *const roles[] = {"inference", "viewer", "deployer", "admin"};
    bool role_ok = false;
    for (size_t i = 0; i < 4; i++)
        role_ok = role_ok || strcmp(t->role, roles[i]) == 0;
    if (!role_ok)
        return reg__fail(err, errlen, REG_INVALID, "invalid role '%.20s'", t->role);
    if (!token_time_ok(t->created_at) || !token_time_ok(t->expires_at))
        return reg__fail(err, errlen, REG_INVALID, "token times must be YYYY-MM-DDTHH:MM:SSZ");
    return REG_OK;
}

/* The columns read back (TOKEN_COLUMNS in registry_internal.h) fill a reg_token. */

/* Insert t; REG_EXISTS when its id is taken or a valid token has its name. */
static reg_status token_insert(registry *r, const reg_token *t, char *err, size_t errlen)
{
    char salt[2 * REG_TOKEN_SALT_BYTES + 1], hash[2 * REG_TOKEN_HASH_BYTES + 1];
    hex_of(t->salt, sizeof t->salt, salt);
    hex_of(t->hash, sizeof t->hash, hash);
    int rc = reg__run(r, ST_TOKEN_INSERT, "sssssss", t->id, t->name, t->role, salt, hash,
                      t->created_at[0] ? t->created_at : NULL,
                      t->expires_at[0] ? t->expires_at : NULL);
    if (rc == DB_DONE)
        return REG_OK;
    reg_status st = reg__db_fail(r, rc, err, errlen, "add token");
    if (st == REG_EXISTS)
        reg__fail(err, errlen, REG_EXISTS, "a valid token named '%s' already exists", t->name);
    return st;
}

static reg_status token_add_tx(registry *r, void *arg, char *err, size_t errlen)
{
    return token_insert(r, arg, err, errlen);
}

/* Check t, then run `body` over it in one transaction. */
static reg_status token_write(registry *r, const reg_token *t, tx_body body, char *err,
                              size_t errlen)
{
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK)
        st = check_token(t, err, errlen);
    return st == REG_OK ? reg__locked_tx(r, body, (void *)t, err, errlen) : st;
}

reg_status registry_token_add(registry *r, const reg_token *t, char *err, size_t errlen)
{
    return token_write(r, t, token_add_tx, err, errlen);
}

static reg_status token_replace_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const reg_token *t = arg;
    int rc = reg__run(r, ST_TOKEN_REVOKE_NAME, "s", t->name);
    if (rc != DB_DONE)
        return reg__db_fail(r, rc, err, errlen, "revoke token");
    return token_insert(r, t, err, errlen);
}

reg_status registry_token_replace(registry *r, const reg_token *t, char *err, size_t errlen)
{
    return token_write(r, t, token_replace_tx, err, errlen);
}

static void token_of_row(reg_stmt *st, reg_token *t)
{
    memset(t, 0, sizeof *t);
    char salt[2 * REG_TOKEN_SALT_BYTES + 1], hash[2 * REG_TOKEN_HASH_BYTES + 1];
    reg__copy_column(t->id, sizeof t->id, st, 0);
    reg__copy_column(t->name, sizeof t->name, st, 1);
    reg__copy_column(t->role, sizeof t->role, st, 2);
    reg__copy_column(salt, sizeof salt, st, 3);
    reg__copy_column(hash, sizeof hash, st, 4);
    reg__copy_column(t->created_at, sizeof t->created_at, st, 5);
    reg__copy_column(t->expires_at, sizeof t->expires_at, st, 6);
    reg__copy_column(t->last_used_at, sizeof t->last_used_at, st, 7);
    reg__copy_column(t->revoked_at, sizeof t->revoked_at, st, 8);
    /* The CHECKs make these hex; if not, an all-zero hash matches no token. */
    if (!bytes_of(salt, t->salt, sizeof t->salt) || !bytes_of(hash, t->hash, sizeof t->hash))
        memset(t->hash, 0, sizeof t->hash);
}

struct token_revoke_args {
    const char *which;
    reg_token *out;
};

static reg_status token_revoke_tx(registry *r, void *arg, char *err, size_t errlen)
{
    struct token_revoke_args *a = arg;
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_TOKEN_REVOKE_ONE, &st, "s", a->which);
    if (rc == DB_DONE)
        return reg__fail(err, errlen, REG_NOT_FOUND, "no valid token with name or id '%.64s'",
                         a->which);
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "revoke token");
    if (a->out != NULL)
        token_of_row(st, a->out);
    reg__stmt_done(st);
    return REG_OK;
}

reg_status registry_token_revoke(registry *r, const char *which, reg_token *out, char *err,
                                 size_t errlen)
{
    struct token_revoke_args a = {which, out};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && (which == NULL || !name_valid(which)))
        st = reg__fail(err, errlen, REG_NOT_FOUND, "no valid token with that name or id");
    return st == REG_OK ? reg__locked_tx(r, token_revoke_tx, &a, err, errlen) : st;
}

struct token_list_ctx {
    reg_token_fn fn;
    void *ud;
};

static int token_row(reg_stmt *st, void *arg)
{
    struct token_list_ctx *c = arg;
    reg_token t;
    token_of_row(st, &t);
    return c->fn(c->ud, &t) ? 1 : 0;
}

static reg_status token_list_read(registry *r, void *arg, char *err, size_t errlen)
{
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_TOKEN_LIST, &st, "");
    return reg__each_row(r, st, rc, token_row, arg, "list tokens", err, errlen);
}

reg_status registry_token_list(registry *r, reg_token_fn fn, void *ud, char *err, size_t errlen)
{
    struct token_list_ctx c = {fn, ud};
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && fn == NULL)
        st = reg__fail(err, errlen, REG_INVALID, "registry_token_list: need a fn");
    return st == REG_OK ? reg__locked_read(r, token_list_read, &c, err, errlen) : st;
}

struct token_touch_args {
    const char *id, *at;
};

static reg_status token_touch_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct token_touch_args *a = arg;
    int rc = reg__run(r, ST_TOKEN_TOUCH, "ss", a->id, a->at);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "record token use");
}

reg_status registry_token_touch(registry *r, const char *id, const char *at, char *err,
                                size_t errlen)
{
    struct token_touch_args a = {id, at};
    unsigned char idb[8];
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && (!bytes_of(id, idb, sizeof idb) || at == NULL || !at[0] ||
                         !token_time_ok(at)))
        st = reg__fail(err, errlen, REG_INVALID, "registry_token_touch: bad id or time");
    return st == REG_OK ? reg__locked_tx(r, token_touch_tx, &a, err, errlen) : st;
}
