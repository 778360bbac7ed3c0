/* blobs: publish and fetch the code and files of versions through a shared registry. See
 * blobs.h. */
#include "blobs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact.h"
#include "store.h"

/* ---- publishing --------------------------------------------------------------------------- */

/* The whole file at path (malloc'd into *data), or -1 with err. */
static int read_file(const char *path, void **data, size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(fd < 0 ? errno : EINVAL));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *buf = malloc(n ? n : 1);
    while (buf && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0 && !(r < 0 && errno == EINTR))
            break;
        got += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    if (!buf || got != n) {
        free(buf);
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* Put the bytes of `path` as blob (sha256, kind) unless it is there already; the bytes are
 * checked against sha256 first, so the registry never holds a blob under the wrong name. */
static int publish_file(registry *reg, const char *path, const char *sha256, const char *kind,
                        char *err, size_t errlen)
{
    bool has = false;
    char rerr[512];
    if (registry_blob_has(reg, sha256, &has, rerr, sizeof rerr) != REG_OK) {
        snprintf(err, errlen, "registry: %s", rerr);
        return -1;
    }
    if (has)
        return 0;
    void *data = NULL;
    size_t len = 0;
    if (read_file(path, &data, &len, err, errlen) != 0)
        return -1;
    char hex[STORE_SHA256_HEX];
    store_sha256_bytes(data, len, hex);
    int rc = 0;
    if (strcmp(hex, sha256) != 0) {
        snprintf(err, errlen, "%s changed: its sha256 is %s, not %s", path, hex, sha256);
        rc = -1;
    } else if (registry_blob_put(reg, sha256, kind, data, len, rerr, sizeof rerr) != REG_OK) {
        snprintf(err, errlen, "registry: %s", rerr);
        rc = -1;
    }
    free(data);
    return rc;
}

int deploy_blobs_publish_plugin(registry *reg, const char *stored_path, const char *sha256,
                                char *err, size_t errlen)
{
    if (!registry_is_shared(reg) || !sha256 || !*sha256)
        return 0;
    return publish_file(reg, stored_path, sha256, "plugin", err, errlen);
}

/* One manifest line: name NUL size NUL sha256 LF. Returns the start of the next line, or NULL
 * at the end or (with *bad) on a malformed line. */
struct manifest_entry {
    const char *name;
    size_t size;
    char sha[STORE_SHA256_HEX];
};

static const char *manifest_next(const char *p, const char *end, struct manifest_entry *e,
                                 bool *bad)
{
    *bad = false;
    if (p >= end)
        return NULL;
    const char *nul1 = memchr(p, '\0', (size_t)(end - p));
    const char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1)) : NULL;
    const char *lf = nul2 ? memchr(nul2 + 1, '\n', (size_t)(end - nul2 - 1)) : NULL;
    char *size_end = NULL;
    if (lf) {
        errno = 0;
        unsigned long long size = strtoull(nul1 + 1, &size_end, 10);
        e->size = (size_t)size;
        if (errno || size_end != nul2 || nul1 == p || lf - nul2 - 1 != STORE_SHA256_HEX - 1)
            lf = NULL;
    }
    if (!lf) {
        *bad = true;
        return NULL;
    }
    e->name = p;
    memcpy(e->sha, nul2 + 1, STORE_SHA256_HEX - 1);
    e->sha[STORE_SHA256_HEX - 1] = '\0';
    return lf + 1;
}

int deploy_blobs_publish_dir(registry *reg, const char *stored_dir, const char *sha256, char *err,
                             size_t errlen)
{
    if (!registry_is_shared(reg))
        return 0;
    char *text = NULL;
    size_t len = 0;
    if (artifact_manifest(stored_dir, &text, &len, err, errlen) != ARTIFACT_OK)
        return -1;
    char hex[STORE_SHA256_HEX], rerr[512];
    store_sha256_bytes(text, len, hex);
    int rc = 0;
    if (strcmp(hex, sha256) != 0) {
        snprintf(err, errlen, "%s changed: its digest is %s, not %s", stored_dir, hex, sha256);
        rc = -1;
    }
    struct manifest_entry e;
    bool bad = false;
    for (const char *p = text; rc == 0 && (p = manifest_next(p, text + len, &e, &bad));) {
        char path[PATH_MAX + 2 * ARTIFACT_NAME_MAX];
        snprintf(path, sizeof path, "%s/%s", stored_dir, e.name);
        rc = publish_file(reg, path, e.sha, "file", err, errlen);
    }
    if (rc == 0 && bad) {
        snprintf(err, errlen, "cannot list %s", stored_dir);
        rc = -1;
    }
    if (rc == 0 &&
        registry_blob_put(reg, sha256, "artifact", text, len, rerr, sizeof rerr) != REG_OK) {
        snprintf(err, errlen, "registry: %s", rerr);
        rc = -1;
    }
    free(text);
    return rc;
}

/* ---- fetching ----------------------------------------------------------------------------- */

/* Blob sha256 from the registry, checked: its bytes must hash to sha256 (and be `size` bytes
 * long unless size is SIZE_MAX). *data malloc'd. */
static int fetch_checked(registry *reg, const char *sha256, size_t size, void **data, size_t *len,
                         char *err, size_t errlen)
{
    char rerr[512], hex[STORE_SHA256_HEX];
    reg_status rs = registry_blob_get(reg, sha256, data, len, rerr, sizeof rerr);
    if (rs != REG_OK) {
        snprintf(err, errlen, "registry has no copy of %s: %s", sha256, rerr);
        return -1;
    }
    store_sha256_bytes(*data, *len, hex);
    if (strcmp(hex, sha256) == 0 && (size == SIZE_MAX || size == *len))
        return 0;
    snprintf(err, errlen, "registry blob %s is corrupt: its bytes hash to %s", sha256, hex);
    free(*data);
    *data = NULL;
    return -1;
}

static int replace_string(char **slot, const char *value, char *err, size_t errlen)
{
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static int localize_plugin(registry *reg, const char *data_dir, reg_version *v, char *err,
                           size_t errlen)
{
    char path[PATH_MAX + 80];
    if (store_path(data_dir, v->sha256, path, sizeof path) != 0) {
        snprintf(err, errlen, "data directory path too long");
        return -1;
    }
    if (!store_has(data_dir, v->sha256)) {
        void *data = NULL;
        size_t len = 0;
        char hex[STORE_SHA256_HEX];
        if (fetch_checked(reg, v->sha256, SIZE_MAX, &data, &len, err, errlen) != 0)
            return -1;
        int rc = store_import_bytes(data_dir, data, len, hex, path, sizeof path, err, errlen);
        free(data);
        if (rc != 0)
            return -1;
    }
    return replace_string(&v->plugin_path, path, err, errlen);
}

struct fetch_dir {
    registry *reg;
    const char *manifest;
    size_t len;
};

/* An artifact_each_fn: every file of the manifest, fetched and checked, handed to add. */
static int fetch_each_file(void *ud, tar_file_fn add, void *add_ud, char *err, size_t errlen)
{
    const struct fetch_dir *f = ud;
    struct manifest_entry e;
    bool bad = false;
    for (const char *p = f->manifest; (p = manifest_next(p, f->manifest + f->len, &e, &bad));) {
        void *data = NULL;
        size_t len = 0;
        if (fetch_checked(f->reg, e.sha, e.size, &data, &len, err, errlen) != 0)
            return -1;
        int rc = add(add_ud, e.name, data, len, err, errlen);
        free(data);
        if (rc != 0)
            return -1;
    }
    if (bad)
        snprintf(err, errlen, "registry manifest is malformed");
    return bad ? -1 : 0;
}

static int localize_dir(registry *reg, const char *data_dir, reg_version *v, char *err,
                        size_t errlen)
{
    char dir[PATH_MAX + 80];
    int n = snprintf(dir, sizeof dir, "%s/artifacts/%s", data_dir, v->artifact_sha256);
    if (n < 0 || (size_t)n >= sizeof dir) {
        snprintf(err, errlen, "data directory path too long");
        return -1;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        struct fetch_dir f = {.reg = reg};
        void *manifest = NULL;
        char hex[ARTIFACT_SHA256_HEX];
        if (fetch_checked(reg, v->artifact_sha256, SIZE_MAX, &manifest, &f.len, err, errlen) != 0)
            return -1;
        f.manifest = manifest;
        artifact_status st =
            artifact_import_each(data_dir, fetch_each_file, &f, hex, dir, sizeof dir, err, errlen);
        free(manifest);
        if (st != ARTIFACT_OK)
            return -1;
        if (strcmp(hex, v->artifact_sha256) != 0) { /* the manifest hashed right: cannot be */
            snprintf(err, errlen, "fetched files digest to %s, not %s", hex, v->artifact_sha256);
            return -1;
        }
    }
    return replace_string(&v->artifact_dir, dir, err, errlen);
}

int deploy_blobs_localize(registry *reg, const char *data_dir, reg_version *v, char *err,
                          size_t errlen)
{
    if (!registry_is_shared(reg) || !data_dir || !*data_dir)
        return 0;
    if (v->artifact_dir && v->artifact_sha256[0])
        return localize_dir(reg, data_dir, v, err, errlen);
    if (!v->backend[0] && v->sha256[0])
        return localize_plugin(reg, data_dir, v, err, errlen);
    return 0;
}
