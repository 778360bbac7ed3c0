/* plugin_file: safe opening of plugin paths and the ELF check. See plugin_file.h. */
#include "plugin_file.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#define PLUGIN_EM      EM_X86_64
#define PLUGIN_EM_NAME "x86_64"
#elif defined(__aarch64__)
#define PLUGIN_EM      EM_AARCH64
#define PLUGIN_EM_NAME "aarch64"
#elif defined(__i386__)
#define PLUGIN_EM      EM_386
#define PLUGIN_EM_NAME "i386"
#elif defined(__arm__)
#define PLUGIN_EM      EM_ARM
#define PLUGIN_EM_NAME "arm"
#elif defined(__riscv)
#define PLUGIN_EM      EM_RISCV
#define PLUGIN_EM_NAME "riscv"
#elif defined(__powerpc64__)
#define PLUGIN_EM      EM_PPC64
#define PLUGIN_EM_NAME "ppc64"
#elif defined(__s390x__)
#define PLUGIN_EM      EM_S390
#define PLUGIN_EM_NAME "s390x"
#else
#error "unknown architecture: add its ELF e_machine here"
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PLUGIN_ELFDATA ELFDATA2LSB
#else
#define PLUGIN_ELFDATA ELFDATA2MSB
#endif
#define PLUGIN_ELFCLASS (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32)

const char *plugin_elf_machine_name(void)
{
    return PLUGIN_EM_NAME;
}

int plugin_elf_check(const void *data, size_t len, char *err, size_t errlen)
{
    const ElfW(Ehdr) *h = data;
    const char *what = NULL;
    if (len < sizeof *h || memcmp(h->e_ident, ELFMAG, SELFMAG) != 0)
        what = "not an ELF file";
    else if (h->e_ident[EI_CLASS] != PLUGIN_ELFCLASS || h->e_ident[EI_DATA] != PLUGIN_ELFDATA ||
             h->e_ident[EI_VERSION] != EV_CURRENT)
        what = "an ELF file of another word size or byte order";
    else if (h->e_type != ET_DYN)
        what = "an ELF file that is not a shared object";
    else if (h->e_machine != PLUGIN_EM)
        what = "an ELF shared object of another architecture";
    if (what == NULL)
        return 0;
    snprintf(err, errlen, "%s (a plugin is an ELF shared object for %s)", what, PLUGIN_EM_NAME);
    return -1;
}

int plugin_dirs_add(plugin_dirs *d, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0) {
            snprintf(err, errlen, "--plugin-dir: empty directory in \"%s\"", list);
            return -1;
        }
        if (d->n >= PLUGIN_DIRS_MAX) {
            snprintf(err, errlen, "--plugin-dir: at most %d directories", PLUGIN_DIRS_MAX);
            return -1;
        }
        if ((d->paths[d->n] = strndup(p, n)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        d->n++;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

void plugin_dirs_free(plugin_dirs *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->paths[i]);
    d->n = 0;
}

/* The plugin directory (resolved, into dir) that `resolved` lies under, and the relative rest;
 * NULL when none. */
static const char *plugin_dir_of(const plugin_dirs *d, const char *resolved, char *dir)
{
    for (int i = 0; i < d->n; i++) {
        if (realpath(d->paths[i], dir) == NULL)
            continue;
        size_t n = strlen(dir);
        if (n == 1 && dir[0] == '/')
            n = 0; /* "/" as a plugin dir: everything is under it */
        if (strncmp(resolved, dir, n) == 0 && resolved[n] == '/' && resolved[n + 1] != '\0')
            return resolved + n + 1;
    }
    return NULL;
}

/* Open rel (no symlinks, no "..": it came from realpath) below dirfd without following any
 * symlink. Returns the descriptor of the regular file (O_NONBLOCK, not a FIFO or device) or,
 * with want_dir, of the directory it names; -1 otherwise. */
static int plugin_open_below(int dirfd, const char *rel, bool want_dir, struct stat *st, char *why,
                             size_t whylen)
{
    char part[PATH_MAX];
    int fd = dup(dirfd);
    while (fd >= 0) {
        size_t n = strcspn(rel, "/");
        snprintf(part, sizeof part, "%.*s", (int)n, rel);
        bool last = rel[n] == '\0';
        int next;
        if (!last || want_dir) {
            next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (last && next >= 0 && fstat(next, st) != 0) {
                close(next);
                next = -1;
            }
        } else if (fstatat(fd, part, st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st->st_mode)) {
            snprintf(why, whylen, "not a regular file");
            next = -1;
            errno = 0;
        } else {
            next = openat(fd, part, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        }
        if (next < 0 && errno != 0)
            snprintf(why, whylen, "cannot open: %s", strerror(errno));
        close(fd);
        fd = next;
        if (last)
            break;
        rel += n + 1;
    }
    return fd;
}

/* Resolve `path`, check it lies under a plugin directory and open it from there without
 * following symlinks (plugin_open_below). The descriptor, or -1 with the reason in why. */
static int plugin_path_open(const plugin_dirs *d, const char *path, bool want_dir,
                            struct stat *before, char *why, size_t whylen)
{
    char resolved[PATH_MAX], dir[PATH_MAX];
    const char *rel = NULL;
    if (path[0] == '\0' || realpath(path, resolved) == NULL) {
        snprintf(why, whylen, "cannot resolve: %s", strerror(errno));
        return -1;
    }
    if ((rel = plugin_dir_of(d, resolved, dir)) == NULL) {
        snprintf(why, whylen, "%s is outside every --plugin-dir", resolved);
        return -1;
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = dirfd < 0 ? -1 : plugin_open_below(dirfd, rel, want_dir, before, why, whylen);
    if (dirfd >= 0)
        close(dirfd);
    return fd;
}

int plugin_dir_open(const plugin_dirs *d, const char *path, int *fd_out, char *err, size_t errlen,
                    char *why, size_t whylen)
{
    snprintf(err, errlen, "%s", PLUGIN_DIR_REFUSED);
    why[0] = '\0';
    struct stat st;
    int fd = plugin_path_open(d, path, true, &st, why, whylen);
    if (fd < 0)
        return -1;
    if (st.st_mode & S_IWOTH) {
        snprintf(why, whylen, "world-writable directory");
        close(fd);
        return -1;
    }
    *fd_out = fd;
    err[0] = '\0';
    return 0;
}

int plugin_file_open(const plugin_dirs *d, const char *path, size_t max_bytes, int *fd_out,
                     size_t *size_out, char *err, size_t errlen, char *why, size_t whylen)
{
    snprintf(err, errlen, "%s", PLUGIN_PATH_REFUSED);
    why[0] = '\0';
    struct stat before, st;
    int fd = plugin_path_open(d, path, false, &before, why, whylen);
    if (fd < 0)
        return -1;
    unsigned char head[sizeof(ElfW(Ehdr))];
    char elf_err[160];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_ino != before.st_ino ||
        st.st_dev != before.st_dev) {
        snprintf(why, whylen, "not a regular file, or replaced while opened");
    } else if (st.st_mode & S_IWOTH) {
        snprintf(why, whylen, "world-writable");
    } else if ((size_t)st.st_size > max_bytes) {
        snprintf(why, whylen, "larger than %zu bytes", max_bytes);
    } else if (pread(fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
               plugin_elf_check(head, sizeof head, elf_err, sizeof elf_err) != 0) {
        snprintf(why, whylen, "%s", st.st_size < (off_t)sizeof head ? "too short" : elf_err);
    } else {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        *fd_out = fd;
        *size_out = (size_t)st.st_size;
        err[0] = '\0';
        return 0;
    }
    close(fd);
    return -1;
}
