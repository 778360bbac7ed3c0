/*
 * artifact: the content-addressed store of model-version directories. See artifact.h.
 *
 * Import, for a directory or an archive alike:
 *   1. mkdtemp <data-dir>/artifacts/.staging-XXXXXX;
 *   2. each file: check its name, write it (0644) and fsync, remember (name, size, sha256);
 *   3. check config.json is there and valid; sort the list by name and compute the digest;
 *   4. fsync the staging directory and rename it to <sha256>; when that already exists (the
 *      same contents were stored before) the staging copy is removed instead.
 * Any failure removes the staging directory.
 */
#include "artifact.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "tar.h"

/* Largest config.json read (it is a small JSON object). */
#define ARTIFACT_CONFIG_MAX (1 << 20)

typedef struct artifact_file {
    char name[ARTIFACT_NAME_MAX + 1];
    size_t size;
    char sha[STORE_SHA256_HEX];
} artifact_file;

/* One import in progress: the staging directory and the files written so far. */
typedef struct staging {
    char dir[PATH_MAX];
    artifact_file files[ARTIFACT_MAX_FILES];
    size_t count;
    artifact_status failure; /* why the last callback failed */
} staging;

__attribute__((format(printf, 4, 5))) static artifact_status
fail(artifact_status st, char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

int artifact_init(const char *data_dir, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/artifacts", data_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int artifact_is_version_dir(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/" ARTIFACT_CONFIG, dir);
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int artifact_backend_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > ARTIFACT_BACKEND_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static int file_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ARTIFACT_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

int artifact_backend_path(const char *backend_dir, const char *backend, char *out, size_t out_len,
                          char *err, size_t errlen)
{
    struct stat st;
    if (!artifact_backend_name_ok(backend))
        return fail(ARTIFACT_INVALID, err, errlen, "backend name must be [a-z0-9_]{1,%d}",
                    ARTIFACT_BACKEND_MAX);
    int n = snprintf(out, out_len, "%s/%s/libdynserve_%s.so", backend_dir, backend, backend);
    if (n < 0 || (size_t)n >= out_len)
        return fail(ARTIFACT_INVALID, err, errlen, "backend directory path too long");
    if (stat(out, &st) != 0 || !S_ISREG(st.st_mode))
        return fail(ARTIFACT_INVALID, err, errlen, "unknown backend '%s' (no %s)", backend, out);
    return 0;
}

/* ---- config.json --------------------------------------------------------------------------- */

/* Check config text: a JSON object with a valid "backend" string. */
static artifact_status check_config(const char *text, size_t len, char backend[], char *err,
                                    size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(ARTIFACT_INVALID, err, errlen, ARTIFACT_CONFIG " is not a JSON object");
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "backend");
    artifact_status st = ARTIFACT_OK;
    if (!cJSON_IsString(b) || !artifact_backend_name_ok(b->valuestring))
        st = fail(ARTIFACT_INVALID, err, errlen,
                  ARTIFACT_CONFIG " needs \"backend\": a name such as \"xgboost\" or \"onnx\"");
    else
        snprintf(backend, ARTIFACT_BACKEND_MAX + 1, "%s", b->valuestring);
    const char *lists[] = {"inputs", "outputs"};
    for (size_t i = 0; st == ARTIFACT_OK && i < 2; i++) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, lists[i]);
        if (l != NULL && !cJSON_IsArray(l))
            st = fail(ARTIFACT_INVALID, err, errlen, ARTIFACT_CONFIG " \"%s\" must be an array",
                      lists[i]);
    }
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (st == ARTIFACT_OK && params != NULL && !cJSON_IsObject(params))
        st = fail(ARTIFACT_INVALID, err, errlen,
                  ARTIFACT_CONFIG " \"parameters\" must be an object");
    cJSON_Delete(root);
    return st;
}

artifact_status artifact_read_config(const char *dir, char **config_json,
                                     char backend[ARTIFACT_BACKEND_MAX + 1], char *err,
                                     size_t errlen)
{
    char path[PATH_MAX];
    *config_json = NULL;
    snprintf(path, sizeof path, "%s/" ARTIFACT_CONFIG, dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(errno == ENOENT ? ARTIFACT_INVALID : ARTIFACT_IO, err, errlen,
                    "cannot open %s: %s", path, strerror(errno));
    char *text = malloc(ARTIFACT_CONFIG_MAX + 1);
    size_t n = text != NULL ? fread(text, 1, ARTIFACT_CONFIG_MAX + 1, f) : 0;
    int bad = text == NULL || ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        return fail(ARTIFACT_IO, err, errlen, "cannot read %s", path);
    }
    if (n > ARTIFACT_CONFIG_MAX) {
        free(text);
        return fail(ARTIFACT_INVALID, err, errlen, ARTIFACT_CONFIG " is larger than 1 MiB");
    }
    text[n] = '\0';
    artifact_status st = check_config(text, n, backend, err, errlen);
    if (st != ARTIFACT_OK) {
        free(text);
        return st;
    }
    *config_json = text;
    return ARTIFACT_OK;
}

/* ---- staging ------------------------------------------------------------------------------- */

static void staging_remove(staging *s)
{
    char path[PATH_MAX + ARTIFACT_NAME_MAX + 2];
    for (size_t i = 0; i < s->count; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, s->files[i].name);
        unlink(path);
    }
    rmdir(s->dir);
}

static artifact_status staging_open(staging *s, const char *data_dir, char *err, size_t errlen)
{
    s->count = 0;
    int n = snprintf(s->dir, sizeof s->dir, "%s/artifacts/.staging-XXXXXX", data_dir);
    if (n < 0 || (size_t)n >= sizeof s->dir)
        return fail(ARTIFACT_IO, err, errlen, "data directory path too long");
    if (mkdtemp(s->dir) == NULL)
        return fail(ARTIFACT_IO, err, errlen, "cannot create a directory in %s/artifacts: %s",
                    data_dir, strerror(errno));
    /* 0755 with 0644 files, inside the server's 0700 data directory (umask 077): nobody else
     * reaches them by path, but an isolated worker, which drops to "nobody" and is handed the
     * directory as a descriptor, can read them (the same as stored plugins, store.c). */
    chmod(s->dir, 0755);
    return ARTIFACT_OK;
}

/* Add one file to the staging directory. A tar_file_fn. */
static int staging_add(void *ud, const char *name, const void *data, size_t size, char *err,
                       size_t errlen)
{
    staging *s = ud;
    s->failure = ARTIFACT_INVALID;
    if (!file_name_ok(name))
        return fail(ARTIFACT_INVALID, err, errlen,
                    "file name '%s' must be [A-Za-z0-9_.-]{1,%d} and not start with '.'", name,
                    ARTIFACT_NAME_MAX);
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->files[i].name, name) == 0)
            return fail(ARTIFACT_INVALID, err, errlen, "file '%s' appears twice", name);
    if (s->count == ARTIFACT_MAX_FILES)
        return fail(ARTIFACT_INVALID, err, errlen, "more than %d files in a model version",
                    ARTIFACT_MAX_FILES);
    char path[PATH_MAX + ARTIFACT_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int ok =
        fd >= 0 && store_write_all(fd, data, size) == 0 && fchmod(fd, 0644) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    artifact_file *f = &s->files[s->count];
    snprintf(f->name, sizeof f->name, "%s", name);
    if (fd >= 0)
        s->count++; /* so staging_remove unlinks it, even when writing failed */
    if (!ok) {
        s->failure = ARTIFACT_IO;
        return fail(ARTIFACT_IO, err, errlen, "cannot store %s: %s", name, strerror(saved));
    }
    f->size = size;
    store_sha256_bytes(data, size, f->sha);
    s->failure = ARTIFACT_OK;
    return 0;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const artifact_file *)a)->name, ((const artifact_file *)b)->name);
}

/* One file's line of the digest's input (and of the manifest): name NUL size NUL sha256 LF. */
#define MANIFEST_LINE_MAX (ARTIFACT_NAME_MAX + 96)
static size_t manifest_line(const artifact_file *f, char line[MANIFEST_LINE_MAX])
{
    return (size_t)snprintf(line, MANIFEST_LINE_MAX, "%s%c%zu%c%s\n", f->name, 0, f->size, 0,
                            f->sha);
}

static void staging_digest(staging *s, char hex[ARTIFACT_SHA256_HEX])
{
    qsort(s->files, s->count, sizeof s->files[0], file_cmp);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < s->count; i++) {
        char line[MANIFEST_LINE_MAX];
        EVP_DigestUpdate(md, line, manifest_line(&s->files[i], line));
    }
    EVP_DigestFinal_ex(md, out, &outlen);
    EVP_MD_CTX_free(md);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[out[i] >> 4];
        hex[2 * i + 1] = digits[out[i] & 15];
    }
    hex[64] = '\0';
}

/* Check, digest and move the staging directory into place. Removes it on every path. */
static artifact_status staging_commit(staging *s, const char *data_dir,
                                      char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                      char *err, size_t errlen)
{
    char *config = NULL;
    char backend[ARTIFACT_BACKEND_MAX + 1];
    artifact_status st = artifact_read_config(s->dir, &config, backend, err, errlen);
    free(config);
    if (st != ARTIFACT_OK) {
        staging_remove(s);
        return st;
    }
    staging_digest(s, hex);
    int n = snprintf(out_dir, out_len, "%s/artifacts/%s", data_dir, hex);
    if (n < 0 || (size_t)n >= out_len) {
        staging_remove(s);
        return fail(ARTIFACT_IO, err, errlen, "data directory path too long");
    }
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (rename(s->dir, out_dir) == 0)
        return ARTIFACT_OK;
    int saved = errno;
    staging_remove(s);
    if (saved == EEXIST || saved == ENOTEMPTY)
        return ARTIFACT_OK; /* the same contents are stored already */
    return fail(ARTIFACT_IO, err, errlen, "cannot store the model files: %s", strerror(saved));
}

void artifact_remove(const char *data_dir, const char hex[ARTIFACT_SHA256_HEX])
{
    if (strlen(hex) != ARTIFACT_SHA256_HEX - 1 || strspn(hex, "0123456789abcdef") != strlen(hex))
        return;
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/artifacts/%s", data_dir, hex) >= (int)sizeof dir)
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dfd, e->d_name, 0); /* a stored version holds plain files only */
    closedir(d);
    rmdir(dir);
}

void artifact_share_with_worker(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    fchmod(dfd, 0755);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat st;
        if (e->d_name[0] != '.' && fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && (st.st_mode & 0444) != 0444)
            fchmodat(dfd, e->d_name, (st.st_mode & 07777) | 0444, 0);
    }
    closedir(d);
}

/* ---- imports ------------------------------------------------------------------------------- */

/* Stage the files `each` supplies, then commit them. `otherwise` is the failure when `each`
 * gives up without staging_add refusing a file (a bad archive is the client's fault, a fetch
 * that failed is not). */
static artifact_status import_from(const char *data_dir, artifact_each_fn each, void *ud,
                                   artifact_status otherwise, char hex[ARTIFACT_SHA256_HEX],
                                   char *out_dir, size_t out_len, char *err, size_t errlen)
{
    staging s;
    artifact_status st = staging_open(&s, data_dir, err, errlen);
    if (st != ARTIFACT_OK)
        return st;
    s.failure = ARTIFACT_OK; /* staging_add sets it when it refuses a file */
    if (each(ud, staging_add, &s, err, errlen) != 0) {
        staging_remove(&s);
        return s.failure != ARTIFACT_OK ? s.failure : otherwise;
    }
    return staging_commit(&s, data_dir, hex, out_dir, out_len, err, errlen);
}

struct tar_source {
    const void *tar;
    size_t len;
};

static int tar_files(void *ud, tar_file_fn add, void *add_ud, char *err, size_t errlen)
{
    const struct tar_source *t = ud;
    return tar_each_file(t->tar, t->len, add, add_ud, err, errlen);
}

artifact_status artifact_import_tar(const char *data_dir, const void *tar, size_t len,
                                    char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                    char *err, size_t errlen)
{
    struct tar_source t = {tar, len};
    return import_from(data_dir, tar_files, &t, ARTIFACT_INVALID, hex, out_dir, out_len, err,
                       errlen);
}

artifact_status artifact_import_each(const char *data_dir, artifact_each_fn each, void *ud,
                                     char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                     char *err, size_t errlen)
{
    return import_from(data_dir, each, ud, ARTIFACT_IO, hex, out_dir, out_len, err, errlen);
}

/* Add one entry of the model directory dirfd (named `dir` in messages): only a regular file
 * that is not world-writable, opened without following a symlink and without blocking (a FIFO
 * or device is refused, never read). */
static int import_one(staging *s, int dirfd, const char *dir, const char *name, char *err,
                      size_t errlen)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        s->failure = ARTIFACT_IO;
        return fail(ARTIFACT_IO, err, errlen, "cannot read %s/%s: %s", dir, name, strerror(errno));
    }
    const char *bad = S_ISDIR(st.st_mode) ? "is a directory; a model version holds plain files only"
                      : !S_ISREG(st.st_mode)   ? "is not a regular file"
                      : (st.st_mode & S_IWOTH) ? "is world-writable"
                                               : NULL;
    if (bad != NULL) {
        s->failure = ARTIFACT_INVALID;
        return fail(ARTIFACT_INVALID, err, errlen, "%s/%s %s", dir, name, bad);
    }
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat now;
    if (fd < 0 || fstat(fd, &now) != 0 || now.st_ino != st.st_ino || !S_ISREG(now.st_mode)) {
        s->failure = fd < 0 ? ARTIFACT_IO : ARTIFACT_INVALID;
        if (fd >= 0)
            close(fd);
        return fail(s->failure, err, errlen, "cannot read %s/%s: %s", dir, name,
                    fd < 0 ? strerror(errno) : "replaced while opened");
    }
    size_t len = (size_t)now.st_size;
    void *data = len > 0 ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : (void *)"";
    close(fd);
    if (data == MAP_FAILED) {
        s->failure = ARTIFACT_IO;
        return fail(ARTIFACT_IO, err, errlen, "cannot read %s/%s: %s", dir, name, strerror(errno));
    }
    int rc = staging_add(s, name, data, len, err, errlen);
    if (len > 0)
        munmap(data, len);
    return rc;
}

artifact_status artifact_import_dirfd(const char *data_dir, int dirfd, const char *label,
                                      char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                      char *err, size_t errlen)
{
    int own = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = own >= 0 ? fdopendir(own) : NULL;
    if (d == NULL) {
        if (own >= 0)
            close(own);
        return fail(ARTIFACT_IO, err, errlen, "cannot read model directory %s: %s", label,
                    strerror(errno));
    }
    staging s;
    artifact_status st = staging_open(&s, data_dir, err, errlen);
    if (st != ARTIFACT_OK) {
        closedir(d);
        return st;
    }
    s.failure = ARTIFACT_OK;
    struct dirent *e;
    while (st == ARTIFACT_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ., .., and hidden files (editor and VCS droppings) */
        if (import_one(&s, dirfd, label, e->d_name, err, errlen) != 0)
            st = s.failure != ARTIFACT_OK ? s.failure : ARTIFACT_INVALID;
    }
    closedir(d);
    if (st != ARTIFACT_OK) {
        staging_remove(&s);
        return st;
    }
    return staging_commit(&s, data_dir, hex, out_dir, out_len, err, errlen);
}

/* The files of a stored directory, sorted by name; *count of them. */
static artifact_status stored_files(const char *dir, artifact_file *files, size_t *count, char *err,
                                    size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return fail(ARTIFACT_IO, err, errlen, "cannot read %s: %s", dir, strerror(errno));
    artifact_status st = ARTIFACT_OK;
    *count = 0;
    for (struct dirent *e; st == ARTIFACT_OK && (e = readdir(d)) != NULL;) {
        char path[PATH_MAX + ARTIFACT_NAME_MAX + 2];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (!file_name_ok(e->d_name) || *count == ARTIFACT_MAX_FILES) {
            st = fail(ARTIFACT_INVALID, err, errlen, "%s is not a stored version directory", dir);
            break;
        }
        artifact_file *f = &files[(*count)++];
        memcpy(f->name, e->d_name, strlen(e->d_name) + 1); /* file_name_ok: it fits */
        f->size = (size_t)sb.st_size;
        if (store_sha256_file(path, f->sha, err, errlen) != 0)
            st = ARTIFACT_IO;
    }
    closedir(d);
    qsort(files, *count, sizeof files[0], file_cmp);
    return st;
}

artifact_status artifact_manifest(const char *dir, char **text, size_t *len, char *err,
                                  size_t errlen)
{
    *text = NULL;
    *len = 0;
    artifact_file *files = calloc(ARTIFACT_MAX_FILES, sizeof *files);
    char *out = malloc(ARTIFACT_MAX_FILES * MANIFEST_LINE_MAX + 1);
    size_t count = 0, n = 0;
    artifact_status st = files && out ? stored_files(dir, files, &count, err, errlen)
                                      : fail(ARTIFACT_IO, err, errlen, "out of memory");
    for (size_t i = 0; st == ARTIFACT_OK && i < count; i++)
        n += manifest_line(&files[i], out + n);
    free(files);
    if (st != ARTIFACT_OK) {
        free(out);
        return st;
    }
    *text = out;
    *len = n;
    return ARTIFACT_OK;
}

artifact_status artifact_import_dir(const char *data_dir, const char *src_dir,
                                    char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                    char *err, size_t errlen)
{
    int fd = open(src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(errno == ENOENT || errno == ENOTDIR ? ARTIFACT_INVALID : ARTIFACT_IO, err,
                    errlen, "cannot open model directory %s: %s", src_dir, strerror(errno));
    artifact_status st =
        artifact_import_dirfd(data_dir, fd, src_dir, hex, out_dir, out_len, err, errlen);
    close(fd);
    return st;
}
