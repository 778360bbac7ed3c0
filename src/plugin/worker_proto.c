/* worker_proto: shared memory, layout and socket helpers of the worker wire. See worker_proto.h. */
#include "worker_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"

/* ---- shared memory ------------------------------------------------------------------------ */

/* Map `total` bytes of the file (doorbell + data area), replacing the old mapping. */
static int wp_shm_map(wp_shm *s, size_t total)
{
    void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED)
        return -1;
    if (s->bell != NULL)
        munmap(s->bell, s->size + WP_BELL_SIZE);
    s->bell = p;
    s->base = (uint8_t *)p + WP_BELL_SIZE;
    s->size = total - WP_BELL_SIZE;
    return 0;
}

static int wp_shm_file_size(int fd, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    *size = (size_t)st.st_size;
    return 0;
}

int wp_shm_create(wp_shm *s, size_t size)
{
    memset(s, 0, sizeof *s);
    s->fd = memfd_create("dynserve-worker", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (s->fd < 0)
        return -1;
    size_t total = size + WP_BELL_SIZE;
    if (ftruncate(s->fd, (off_t)total) != 0 || fcntl(s->fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0 ||
        wp_shm_map(s, total) != 0) {
        int e = errno;
        close(s->fd);
        s->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

int wp_shm_attach(wp_shm *s, int fd, size_t size)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    size_t total = size + WP_BELL_SIZE;
    if (size == 0 && wp_shm_file_size(fd, &total) != 0)
        return -1;
    if (total <= WP_BELL_SIZE) {
        errno = EPROTO;
        return -1;
    }
    return wp_shm_map(s, total);
}

int wp_shm_reserve(wp_shm *s, size_t need)
{
    if (need <= s->size)
        return 0;
    if (need > SIZE_MAX / 2 - WP_BELL_SIZE) {
        errno = ENOMEM;
        return -1;
    }
    size_t file = 0, total = need + WP_BELL_SIZE;
    if (wp_shm_file_size(s->fd, &file) != 0)
        return -1;
    if (file < total) {
        size_t grown = s->size ? s->size + WP_BELL_SIZE : WP_SHM_INITIAL + WP_BELL_SIZE;
        while (grown < total)
            grown *= 2;
        if (ftruncate(s->fd, (off_t)grown) != 0)
            return -1;
        file = grown;
    }
    return wp_shm_map(s, file);
}

int wp_shm_follow(wp_shm *s, size_t size)
{
    if (size <= s->size)
        return 0;
    size_t file = 0;
    if (size > SIZE_MAX - WP_BELL_SIZE || wp_shm_file_size(s->fd, &file) != 0)
        return -1;
    if (file < size + WP_BELL_SIZE) {
        errno = EPROTO;
        return -1;
    }
    return wp_shm_map(s, size + WP_BELL_SIZE);
}

void wp_shm_close(wp_shm *s)
{
    if (s->bell != NULL)
        munmap(s->bell, s->size + WP_BELL_SIZE);
    if (s->fd >= 0)
        close(s->fd);
    s->bell = NULL;
    s->base = NULL;
    s->size = 0;
    s->fd = -1;
}

int wp_wait(_Atomic uint32_t *word, uint32_t expect, int timeout_ms)
{
    return futex_wait(word, expect, timeout_ms, FUTEX_SCOPE_SHARED);
}

void wp_wake(_Atomic uint32_t *word)
{
    futex_wake(word, 1, FUTEX_SCOPE_SHARED);
}

void wp_shm_trim(wp_shm *s, size_t keep)
{
    if (s->size > keep)
        (void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        (off_t)(WP_BELL_SIZE + keep), (off_t)(s->size - keep));
}

wp_bell *wp_bell_map(int fd)
{
    void *p = mmap(NULL, WP_BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

void wp_bell_unmap(wp_bell *b)
{
    if (b != NULL)
        munmap(b, WP_BELL_SIZE);
}

unsigned wp_run_cpus(unsigned most)
{
    cpu_set_t cpus;
    int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    if (n < 1 || most < 1)
        return 1;
    return (unsigned)n < most ? (unsigned)n : most;
}

/* ---- layout ------------------------------------------------------------------------------- */

void *wp_alloc(wp_writer *w, size_t n)
{
    void *p = w->base + w->pos;
    w->pos += wp_align(n);
    return p;
}

wp_span wp_put(wp_writer *w, const void *data, size_t n)
{
    wp_span sp = {.off = w->pos, .len = n};
    if (n > 0)
        memcpy(w->base + w->pos, data, n);
    w->pos += wp_align(n);
    return sp;
}

wp_span wp_put_str(wp_writer *w, const char *s)
{
    wp_span sp = {0, 0};
    if (s == NULL)
        return sp;
    size_t n = strlen(s);
    sp.off = w->pos;
    sp.len = n;
    memcpy(w->base + w->pos, s, n + 1);
    w->pos += wp_str_size(n);
    return sp;
}

const void *wp_bytes(const uint8_t *base, size_t size, wp_span sp, int *bad)
{
    if (sp.off > size || sp.len > size - sp.off) {
        *bad = 1;
        return NULL;
    }
    return base + sp.off;
}

const char *wp_str(const uint8_t *base, size_t size, wp_span sp, int *bad)
{
    if (sp.off == 0 && sp.len == 0)
        return NULL;
    if (sp.off >= size || sp.len >= size - sp.off || base[sp.off + sp.len] != '\0' ||
        memchr(base + sp.off, '\0', sp.len) != NULL) {
        *bad = 1;
        return NULL;
    }
    return (const char *)base + sp.off;
}

/* ---- sockets ---------------------------------------------------------------------------- */

int wp_send(int fd, uint32_t type, uint64_t seq, uint64_t shm_size, int32_t status)
{
    wp_msg m = {
        .magic = WP_MAGIC, .type = type, .seq = seq, .shm_size = shm_size, .status = status};
    for (;;) {
        ssize_t n = send(fd, &m, sizeof m, MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof m)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

int wp_recv(int fd, wp_msg *m, int timeout_ms)
{
    for (;;) {
        if (timeout_ms >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int r = poll(&p, 1, timeout_ms);
            if (r == 0)
                return -2;
            if (r < 0) {
                if (errno == EINTR)
                    continue; /* a signal cuts the wait short; callers re-arm on -2 only */
                return -1;
            }
        }
        ssize_t n = recv(fd, m, sizeof *m, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return (errno == ECONNRESET || errno == EPIPE) ? 0 : -1;
        if (n != (ssize_t)sizeof *m || m->magic != WP_MAGIC)
            return 0;
        return 1;
    }
}
