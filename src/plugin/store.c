/* store: content-addressed plugin files. See store.h. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void store_hex(const unsigned char *md, char hex[STORE_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

void store_sha256_bytes(const void *data, size_t len, char hex[STORE_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    store_hex(md, hex);
}

/* Remove the .upload-* temporaries a crash left behind in dir, and make the files an older
 * version stored 0644 / 0755 private (0600): only the server reads them. */
static void store_tidy(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(e->d_name, ".upload-", 8) == 0 || strncmp(e->d_name, ".copy-", 6) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
        else if (e->d_name[0] != '.' &&
                 fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISREG(st.st_mode) && (st.st_mode & 0777) != 0600)
            fchmodat(dirfd(d), e->d_name, 0600, 0);
    }
    closedir(d);
}

int store_init(const char *data_dir, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/plugins", data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    chmod(dir, 0700); /* private even when an older version made it 0755 (best effort) */
    store_tidy(dir);
    snprintf(dir, sizeof dir, "%s/plugins/loaded", data_dir);
    if (chmod(dir, 0700) == 0) /* the private copies (store_private_copy), when there are any */
        store_tidy(dir);
    snprintf(dir, sizeof dir, "%s/import", data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int store_path(const char *data_dir, const char hex[STORE_SHA256_HEX], char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "%s/plugins/%s.so", data_dir, hex);
    return n >= 0 && (size_t)n < out_len ? 0 : -1;
}

bool store_has(const char *data_dir, const char hex[STORE_SHA256_HEX])
{
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/plugins/%s.so", data_dir, hex);
    return access(path, F_OK) == 0;
}

void store_remove(const char *data_dir, const char hex[STORE_SHA256_HEX])
{
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/plugins/%s.so", data_dir, hex);
    unlink(path);
}

/* Map a whole regular file read-only: 0 with data and len set (munmap when len > 0), or -1. */
static int store_map(const char *path, void **data, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *len = (size_t)st.st_size;
    *data = *len ? mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0) : (void *)"";
    close(fd);
    if (*data == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int store_sha256_file(const char *path, char hex[STORE_SHA256_HEX], char *err, size_t errlen)
{
    void *data;
    size_t len;
    if (store_map(path, &data, &len, err, errlen) != 0)
        return -1;
    store_sha256_bytes(data, len, hex);
    if (len)
        munmap(data, len);
    return 0;
}

int store_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int store_import_bytes(const char *data_dir, const void *data, size_t len,
                       char hex[STORE_SHA256_HEX], char *out_path, size_t out_len, char *err,
                       size_t errlen)
{
    store_sha256_bytes(data, len, hex);
    int n = snprintf(out_path, out_len, "%s/plugins/%s.so", data_dir, hex);
    if (n < 0 || (size_t)n >= out_len) {
        snprintf(err, errlen, "data directory path too long");
        return -1;
    }
    char existing[STORE_SHA256_HEX];
    char ignored[128];
    if (store_sha256_file(out_path, existing, ignored, sizeof ignored) == 0 &&
        strcmp(existing, hex) == 0)
        return 0; /* same bytes already stored (a damaged copy is replaced below) */
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/plugins/.upload-XXXXXX", data_dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in %s/plugins: %s", data_dir, strerror(errno));
        return -1;
    }
    /* 0600: only the server reads it. An isolated worker that drops to "nobody" never opens it:
     * it gets the server's descriptor and loads a sealed memory copy (worker_main.c). */
    int ok = store_write_all(fd, data, len) == 0 && fchmod(fd, 0600) == 0 && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, out_path) != 0) {
        snprintf(err, errlen, "cannot store plugin: %s", strerror(ok ? errno : saved));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int store_import_file(const char *data_dir, const char *src, char hex[STORE_SHA256_HEX],
                      char *out_path, size_t out_len, char *err, size_t errlen)
{
    void *data;
    size_t len;
    if (store_map(src, &data, &len, err, errlen) != 0)
        return -1;
    int rc = store_import_bytes(data_dir, data, len, hex, out_path, out_len, err, errlen);
    if (len)
        munmap(data, len);
    return rc;
}

int store_private_copy(const char *data_dir, const char *src, const char *model,
                       const char *version, char *out_path, size_t out_len, char *err,
                       size_t errlen)
{
    char dir[PATH_MAX];
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    int n = snprintf(dir, sizeof dir, "%s/plugins/loaded", data_dir);
    int m = snprintf(out_path, out_len, "%s/%s+%s+%s", dir, model, version, base);
    if (n < 0 || (size_t)n >= sizeof dir || m < 0 || (size_t)m >= out_len) {
        snprintf(err, errlen, "data directory path too long");
        return -1;
    }
    struct stat have, want;
    if (stat(src, &want) != 0) {
        snprintf(err, errlen, "plugin '%s': cannot open file: %s", src, strerror(errno));
        return -1;
    }
    if (stat(out_path, &have) == 0 && have.st_size == want.st_size)
        return 0; /* made earlier (the name carries the content digest) */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s/plugins", data_dir);
    if ((mkdir(parent, 0700) != 0 && errno != EEXIST) ||
        (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    void *data;
    size_t len;
    if (store_map(src, &data, &len, err, errlen) != 0)
        return -1;
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/.copy-XXXXXX", dir);
    int fd = mkstemp(tmp);
    /* 0600 like the store: dlopen maps it executable without needing the x bit */
    int ok = fd >= 0 && store_write_all(fd, data, len) == 0 && fchmod(fd, 0600) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (len)
        munmap(data, len);
    if (!ok || rename(tmp, out_path) != 0) {
        snprintf(err, errlen, "cannot copy plugin for loading: %s", strerror(ok ? errno : saved));
        if (fd >= 0)
            unlink(tmp);
        return -1;
    }
    return 0;
}
