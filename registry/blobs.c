/* registry blobs: table blobs (put, has, get), content-addressed bytes that every replica of a
 * shared registry can fetch. See registry.h. The registry stores what it is given under the
 * digest it is given; readers check the digest of what they get (deploy/blobs.c). */
#include "registry_internal.h"

#include <stdlib.h>
#include <string.h>

struct blob_args {
    char sha[REG_SHA256_HEX];
    const char *kind;
    const void *data;
    size_t len;
    bool found; /* has, get */
    void *out;  /* get: malloc'd copy, handed to the caller on REG_OK */
    size_t out_len;
};

static reg_status check_blob_key(registry *r, const char *sha256, struct blob_args *a, char *err,
                                 size_t errlen)
{
    reg_status st = reg__check_handle(r, err, errlen);
    if (st == REG_OK && (!sha256 || !*sha256))
        st = reg__fail(err, errlen, REG_INVALID, "blob sha256 is missing");
    if (st == REG_OK)
        st = reg__normalize_sha256(sha256, a->sha, err, errlen);
    return st;
}

static reg_status blob_put_tx(registry *r, void *arg, char *err, size_t errlen)
{
    const struct blob_args *a = arg;
    int rc = reg__run(r, ST_BLOB_PUT, "ssib", a->sha, a->kind, (int64_t)a->len, a->data, a->len);
    return rc == DB_DONE ? REG_OK : reg__db_fail(r, rc, err, errlen, "store blob");
}

reg_status registry_blob_put(registry *r, const char *sha256, const char *kind, const void *data,
                             size_t len, char *err, size_t errlen)
{
    struct blob_args a = {.kind = kind, .data = data, .len = len};
    reg_status st = check_blob_key(r, sha256, &a, err, errlen);
    bool kind_ok = kind && (strcmp(kind, "plugin") == 0 || strcmp(kind, "artifact") == 0 ||
                            strcmp(kind, "file") == 0);
    if (st == REG_OK && (!kind_ok || (!data && len > 0) || len > (size_t)INT64_MAX))
        st = reg__fail(err, errlen, REG_INVALID,
                       "blob kind must be plugin, artifact or file, with data");
    return st == REG_OK ? reg__locked_tx(r, blob_put_tx, &a, err, errlen) : st;
}

static reg_status blob_has_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct blob_args *a = arg;
    int64_t size = 0;
    return reg__query_int(r, ST_BLOB_HAS, "find blob", &size, &a->found, err, errlen, "s", a->sha);
}

reg_status registry_blob_has(registry *r, const char *sha256, bool *has, char *err, size_t errlen)
{
    struct blob_args a = {0};
    if (has)
        *has = false;
    reg_status st = check_blob_key(r, sha256, &a, err, errlen);
    if (st == REG_OK && !has)
        st = reg__fail(err, errlen, REG_INVALID, "registry_blob_has: has is NULL");
    if (st == REG_OK)
        st = reg__locked_read(r, blob_has_read, &a, err, errlen);
    if (st == REG_OK)
        *has = a.found;
    return st;
}

static reg_status blob_get_read(registry *r, void *arg, char *err, size_t errlen)
{
    struct blob_args *a = arg;
    free(a->out); /* a retried read fetches it again */
    a->out = NULL;
    reg_stmt *st = NULL;
    int rc = reg__query(r, ST_BLOB_GET, &st, "s", a->sha);
    if (rc == DB_DONE)
        return reg__fail(err, errlen, REG_NOT_FOUND, "no blob %s", a->sha);
    if (rc != DB_ROW)
        return reg__db_fail(r, rc, err, errlen, "read blob");
    size_t len = 0;
    const void *data = reg__col_blob(st, 0, &len);
    a->out = malloc(len ? len : 1);
    if (a->out) {
        memcpy(a->out, data ? data : "", len);
        a->out_len = len;
    }
    reg__stmt_done(st);
    return a->out ? REG_OK : reg__no_memory(err, errlen);
}

reg_status registry_blob_get(registry *r, const char *sha256, void **data, size_t *len, char *err,
                             size_t errlen)
{
    struct blob_args a = {0};
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    reg_status st = check_blob_key(r, sha256, &a, err, errlen);
    if (st == REG_OK && (!data || !len))
        st = reg__fail(err, errlen, REG_INVALID, "registry_blob_get: data or len is NULL");
    if (st == REG_OK)
        st = reg__locked_read(r, blob_get_read, &a, err, errlen);
    if (st != REG_OK) {
        free(a.out);
        return st;
    }
    *data = a.out;
    *len = a.out_len;
    return REG_OK;
}
