/*
 * worker: spawning, talking to and supervising worker processes. See worker.h.
 *
 * Data layout. A `worker` is one isolated deployment; each process it runs is a `wproc` (an
 * incarnation): pid, control socket, channels (a memfd each: doorbell + data area) and a bitmask
 * of free channels. A request borrows one channel of the current incarnation; a restart makes a
 * new incarnation and the old one is freed when its last borrower returns, so a request never
 * sees its channel's memory unmapped under it.
 *
 * Locking: worker.mu guards cur, state, the crash history, every wproc's free_mask, refs, dead,
 * reaped and reasons; cv is broadcast whenever one of those changes. Nothing blocks while holding
 * mu except the condition waits themselves; socket and shared-memory I/O happen outside it.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oip.h"
#include "worker_proto.h"

extern char **environ;

/* Set before any worker starts (worker_set_*), read-only afterwards. */
static char worker_exe[4096] = "/proc/self/exe";
static unsigned worker_drop_uid = 65534, worker_drop_gid = 65534;
static bool worker_drop_ids_set;

#define WK_NAME_MAX       64
#define WK_MAX_CRASHES    32
#define WK_BACKOFF_MS     100
#define WK_BACKOFF_MAX    5000
#define WK_REAP_WAIT_MS   2000
#define WK_CANCEL_POLL_MS 5 /* how often a waiting execute looks at its client */
/* Descriptors are moved at least this high before spawning, above every fixed child number. */
#define WK_FD_SAFE 64
/* The longest output name a worker may send (the server copies it onto its stack). */
#define WK_OUTPUT_NAME_MAX 1023
/* A channel keeps this much of its data area's memory between calls; a larger call's pages go
 * back to the system after it (refaulting them costs far less than the copy that used them). */
#define WK_SHM_KEEP (1u << 20)
_Static_assert(WORKER_MAX_CHANNELS == WP_MAX_CHANNELS, "one limit for channels");

typedef struct wchan {
    wp_shm shm;
    uint32_t seq; /* the last call's doorbell number (never 0) */
} wchan;

typedef struct wproc {
    pid_t pid;
    int ctl;
    unsigned nchan;
    wchan chans[WP_MAX_CHANNELS];
    wp_bell *queue;     /* channel 0's doorbell, mapped apart: the run queue (never remapped) */
    uint32_t free_mask; /* channels nobody borrowed */
    int refs;           /* borrowers, +1 while it is worker.cur */
    bool dead;          /* no new borrowers: it died or is being killed */
    bool reaped;        /* waitpid done; death holds how it ended */
    size_t meta_len;    /* INIT_OK: bytes of metadata at channel 0's start (the worker's word,
                         * so at most the channel's size) */
    char death[160];
    char killed_for[160]; /* why the server killed it, "" if it died by itself */
} wproc;

typedef enum wstate { WS_READY, WS_RESTARTING, WS_FAILED, WS_STOPPED } wstate;

struct worker {
    ds_plugin_api api;
    ds_model_desc model;
    ds_io_desc *io;  /* inputs then outputs; owned */
    char *meta_text; /* the strings api/model/io point to; owned */

    char *path, *config_json, *label;                                /* owned copies */
    char *model_name, *model_version, *deployment_id, *artifact_dir; /* owned copies or NULL */
    worker_config cfg; /* strings above; defaults filled in */

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* every state change: reaped, stopped, calls (wk_wake_all) */
    pthread_cond_t chan_cv; /* borrowers wait here: a channel handed back healthy wakes one
                             * (a broadcast woke every waiting client thread per call), any
                             * other change wakes all (wk_wake_all) */
    wproc *cur;
    wstate state;
    unsigned restarts, crashes;
    int64_t crash_ms[WK_MAX_CRASHES]; /* ring of crash times (monotonic ms) */
    char reason[256];
    int calls;         /* execute() calls inside, for worker_stop */
    unsigned run_cpus; /* worker threads kept awake at most: the CPUs we may run on */

    int wake[2]; /* pipe: worker_stop wakes the supervisor */
    pthread_t supervisor;
    bool supervising;
};

static const char *const state_names[] = {"ready", "restarting", "failed", "stopped"};

/* ---- small helpers ------------------------------------------------------------------------- */

static int64_t wk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under w->mu: wake everyone waiting on the worker (a state change, not a free channel). */
static void wk_wake_all(worker *w)
{
    pthread_cond_broadcast(&w->cv);
    pthread_cond_broadcast(&w->chan_cv);
}

static struct timespec wk_abstime(int64_t deadline_ms)
{
    /* condition variables below use CLOCK_MONOTONIC (see wk_cond_init) */
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    return ts;
}

static void wk_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* "killed by signal 11 (SIGSEGV)" or "exited with status 3". */
static void wk_describe_exit(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        snprintf(out, len, "killed by signal %d (SIG%s)", WTERMSIG(status), abbrev ? abbrev : "?");
    } else if (WIFEXITED(status)) {
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(out, len, "ended (wait status %#x)", (unsigned)status);
    }
}

/* Reap pid, waiting up to wait_ms for it to end by itself before SIGKILL. Returns the status. */
static int wk_reap(pid_t pid, int wait_ms)
{
    int status = 0;
    int64_t deadline = wk_now_ms() + wait_ms;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return status;
        if (wk_now_ms() >= deadline)
            break;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void wk_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- spawning ------------------------------------------------------------------------------ */

static void wproc_free(wproc *p)
{
    if (p == NULL)
        return;
    wk_close(&p->ctl);
    wp_bell_unmap(p->queue);
    for (unsigned i = 0; i < p->nchan; i++)
        wp_shm_close(&p->chans[i].shm);
    free(p);
}

/* The child's copy of a descriptor, moved above the fixed numbers so dup2 never clobbers one
 * the next action still needs. */
static int wk_high(int fd)
{
    return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, WK_FD_SAFE);
}

/* Child descriptors in the order of their fixed numbers (ctl, then each channel's shm, then
 * the plugin and the artifact directory): count entries, each already moved high. */
typedef struct wk_child_fds {
    int fd[WP_FD_LAST - WP_FD_CTL + 1];
    int count;
} wk_child_fds;

static void wk_child_fds_close(wk_child_fds *c)
{
    for (int i = 0; i < c->count; i++)
        wk_close(&c->fd[i]);
    c->count = 0;
}

/* Under a sanitizer the child must let signals kill it (so crashes read the same as in a
 * production build) and must not run leak checks on a plugin at exit. Returns environ, or a
 * copy the caller frees. */
#if defined(__SANITIZE_ADDRESS__)
#define WK_SAN_VAR  "ASAN_OPTIONS"
#define WK_SAN_ENV  WK_SAN_VAR "="
#define WK_SAN_OPTS "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:detect_leaks=0"
#elif defined(__SANITIZE_THREAD__)
#define WK_SAN_VAR  "TSAN_OPTIONS"
#define WK_SAN_ENV  WK_SAN_VAR "="
#define WK_SAN_OPTS "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0"
#endif
#if defined(WK_SAN_ENV)
/* "<VAR>=<the server's own options>:<ours>": the server's suppressions and halt_on_error hold
 * in the worker too (a race there fails a run like one in the server), ours win where they
 * overlap. Built once (the environment does not change after start); never freed. */
static char wk_san_opts[4096];
static pthread_once_t wk_san_once = PTHREAD_ONCE_INIT;
static void wk_san_opts_init(void)
{
    const char *mine = getenv(WK_SAN_VAR);
    snprintf(wk_san_opts, sizeof wk_san_opts, "%s%s%s%s", WK_SAN_ENV, mine ? mine : "",
             mine && *mine ? ":" : "", WK_SAN_OPTS);
}
#endif
static char **wk_child_env(void)
{
#if defined(WK_SAN_ENV)
    pthread_once(&wk_san_once, wk_san_opts_init);
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (env == NULL)
        return environ;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], WK_SAN_ENV, strlen(WK_SAN_ENV)) != 0)
            env[k++] = environ[i];
    env[k] = wk_san_opts;
    return env;
#else
    return environ;
#endif
}

static int wk_posix_spawn(pid_t *pid, const wk_child_fds *fds)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    for (int i = 0; i < fds->count; i++)
        posix_spawn_file_actions_adddup2(&fa, fds->fd[i], WP_FD_CTL + i);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);   /* the server blocks SIGINT/SIGTERM in threads */
    posix_spawnattr_setsigdefault(&at, &all); /* and ignores SIGPIPE */
    posix_spawnattr_setpgroup(&at, 0);        /* a terminal's ^C goes to the server only */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    char *argv[] = {worker_exe, "worker", NULL};
    char **env = wk_child_env();
    int rc = posix_spawn(pid, worker_exe, &fa, &at, argv, env);
    if (env != environ)
        free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

static int wk_socketpair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/* Create the sockets and memory of an incarnation; child ends go to kids (artifact_fd < 0:
 * none). 0 or -1. */
static int wproc_prepare(wproc *p, int plugin_fd, int artifact_fd, wk_child_fds *kids)
{
    int sv[2];
    if (wk_socketpair(sv) != 0)
        return -1;
    p->ctl = sv[0];
    kids->fd[kids->count++] = wk_high(sv[1]);
    close(sv[1]);
    for (unsigned i = 0; i < p->nchan; i++) {
        wchan *c = &p->chans[i];
        if (wp_shm_create(&c->shm, WP_SHM_INITIAL) != 0)
            return -1;
        kids->fd[kids->count++] = wk_high(c->shm.fd);
    }
    if ((p->queue = wp_bell_map(p->chans[0].shm.fd)) == NULL)
        return -1;
    kids->fd[kids->count++] = wk_high(plugin_fd);
    if (artifact_fd >= 0)
        kids->fd[kids->count++] = wk_high(artifact_fd);
    for (int i = 0; i < kids->count; i++)
        if (kids->fd[i] < 0)
            return -1;
    return 0;
}

static size_t wk_opt_size(const char *s)
{
    return s ? wp_str_size(strlen(s)) : 0;
}

static size_t wk_init_size(const worker_config *cfg, const char *config)
{
    return wp_align(sizeof(wp_init)) + wp_str_size(strlen(cfg->plugin_path)) +
           wp_str_size(strlen(config)) + wk_opt_size(cfg->model_name) +
           wk_opt_size(cfg->model_version) + wk_opt_size(cfg->deployment_id) +
           wk_opt_size(cfg->artifact_dir);
}

/* Write the INIT parameters into channel 0's memory. 0 or -1. */
static int wk_write_init(wproc *p, const worker_config *cfg, bool probe)
{
    const char *config = cfg->config_json ? cfg->config_json : "{}";
    wp_shm *shm = &p->chans[0].shm;
    if (wp_shm_reserve(shm, wk_init_size(cfg, config)) != 0)
        return -1;
    wp_writer w = {.base = shm->base};
    wp_init *in = wp_alloc(&w, sizeof *in);
    memset(in, 0, sizeof *in);
    in->channels = p->nchan;
    in->probe = probe;
    in->memory_bytes = cfg->limits.memory_bytes;
    in->open_files = cfg->limits.open_files;
    in->cpu_ms_per_call = cfg->limits.cpu_ms_per_call;
    in->drop = geteuid() == 0;
    in->drop_uid = worker_drop_uid;
    in->drop_gid = worker_drop_gid;
    in->plugin_name = wp_put_str(&w, cfg->plugin_path);
    in->config_json = wp_put_str(&w, config);
    in->model_name = wp_put_str(&w, cfg->model_name);
    in->model_version = wp_put_str(&w, cfg->model_version);
    in->deployment_id = wp_put_str(&w, cfg->deployment_id);
    in->artifact_dir = wp_put_str(&w, cfg->artifact_dir);
    in->instance_count = cfg->instance_count;
    in->has_artifact = cfg->artifact_dir != NULL;
    return 0;
}

/* Wait for INIT_OK. 0, or -1 with the reason (the worker's message or how it ended) in err,
 * -2 when the worker reported that the plugin would not load or create; on -1/-2 the process
 * has been reaped. */
static int wk_await_init(wproc *p, int timeout_ms, char *err, size_t errlen)
{
    wp_msg m;
    int r = wp_recv(p->ctl, &m, timeout_ms);
    wp_shm *shm = &p->chans[0].shm;
    if (r == 1 && m.type == WP_INIT_OK && wp_shm_follow(shm, m.shm_size) == 0) {
        p->meta_len = m.status > 0 && (size_t)m.status < shm->size ? (size_t)m.status : shm->size;
        return 0;
    }
    if (r == 1 && m.type == WP_INIT_ERR && wp_shm_follow(shm, m.shm_size) == 0) {
        int bad = 0;
        wp_span sp = {0, (uint64_t)(m.status > 0 ? m.status : 0)};
        const char *msg = m.status > 0 ? wp_str(shm->base, shm->size, sp, &bad) : NULL;
        snprintf(err, errlen, "%s", msg && !bad ? msg : "the worker could not load the plugin");
        wk_reap(p->pid, WK_REAP_WAIT_MS);
        p->pid = 0;
        return -2;
    }
    char how[160];
    if (r == -2) {
        kill(p->pid, SIGKILL);
        wk_reap(p->pid, 0);
        snprintf(err, errlen, "did not finish loading within %d ms (worker killed)", timeout_ms);
    } else {
        wk_describe_exit(wk_reap(p->pid, WK_REAP_WAIT_MS), how, sizeof how);
        snprintf(err, errlen, "the worker loading it %s", how);
    }
    p->pid = 0;
    return -1;
}

/* Spawn one incarnation and wait until it is serving (or, for a probe, has reported).
 * NULL with err set (and *refused, when not NULL, true when the plugin refused in the worker). */
static wproc *wproc_spawn(const worker_config *cfg, bool probe, bool *refused, char *err,
                          size_t errlen)
{
    wproc *p = calloc(1, sizeof *p);
    wk_child_fds kids = {.count = 0};
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->ctl = -1;
    p->nchan = probe ? 1 : cfg->channels;
    for (unsigned i = 0; i < WP_MAX_CHANNELS; i++)
        p->chans[i].shm.fd = -1;
    int plugin_fd = open(cfg->plugin_path, O_RDONLY | O_CLOEXEC);
    if (plugin_fd < 0) {
        snprintf(err, errlen, "plugin '%s': cannot open file: %s", cfg->plugin_path,
                 strerror(errno));
        free(p);
        return NULL;
    }
    int artifact_fd = -1;
    if (cfg->artifact_dir != NULL &&
        (artifact_fd = open(cfg->artifact_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "artifact directory '%s': cannot open: %s", cfg->artifact_dir,
                 strerror(errno));
        close(plugin_fd);
        free(p);
        return NULL;
    }
    int rc = wproc_prepare(p, plugin_fd, artifact_fd, &kids);
    close(plugin_fd);
    if (artifact_fd >= 0)
        close(artifact_fd);
    if (rc == 0)
        rc = wk_write_init(p, cfg, probe);
    if (rc != 0 || (rc = wk_posix_spawn(&p->pid, &kids)) != 0) {
        snprintf(err, errlen, "cannot start a worker (%s): %s", worker_exe,
                 strerror(rc > 0 ? rc : errno));
        wk_child_fds_close(&kids);
        wproc_free(p);
        return NULL;
    }
    wk_child_fds_close(&kids);
    int init = wp_send(p->ctl, WP_INIT, 0, p->chans[0].shm.size, 0) != 0
                   ? -1
                   : wk_await_init(p, cfg->start_timeout_ms, err, errlen);
    if (refused != NULL)
        *refused = init == -2;
    if (init != 0) {
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            wk_reap(p->pid, 0);
            snprintf(err, errlen, "the worker did not take its parameters");
        }
        wproc_free(p);
        return NULL;
    }
    p->free_mask = p->nchan >= 32 ? 0xffffffffu : (1u << p->nchan) - 1;
    return p;
}

/* ---- metadata -------------------------------------------------------------------------------- */

static bool wk_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > WK_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool wk_io_ok(const wp_io *r, const char *name, bool dynamic)
{
    if (!wk_name_ok(name) || r->rank < -1 || r->rank > DS_MAX_RANK)
        return false;
    if (!(r->datatype >= DS_TYPE_BOOL && r->datatype <= DS_TYPE_BYTES) &&
        !(dynamic && r->datatype == DS_TYPE_ANY))
        return false;
    for (int32_t k = 0; k < r->rank; k++)
        if (r->shape[k] < -1)
            return false;
    return true;
}

/* wk_take_meta's parser, over its snapshot of the metadata. */
static int wk_parse_meta(worker *w, const uint8_t *base, size_t size, char *err, size_t errlen)
{
    int bad = 0;
    const wp_meta *m = (const wp_meta *)base;
    if (size < sizeof *m || m->input_count > WP_MAX_IO || m->output_count > WP_MAX_IO)
        goto malformed;
    uint32_t n = m->input_count + m->output_count;
    wp_span iospan = {wp_align(sizeof *m), (uint64_t)n * sizeof(wp_io)};
    const wp_io *io = wp_bytes(base, size, iospan, &bad);
    const char *name = wp_str(base, size, m->name, &bad);
    const char *platform = wp_str(base, size, m->platform, &bad);
    if (bad)
        goto malformed;
    size_t text = (name ? strlen(name) : 0) + (platform ? strlen(platform) : 0) + 2;
    for (uint32_t i = 0; i < n; i++) {
        const char *s = wp_str(base, size, io[i].name, &bad);
        if (bad || !wk_io_ok(&io[i], s, (m->model_flags & DS_MODEL_DYNAMIC_IO) != 0))
            goto malformed;
        text += strlen(s) + 1;
    }
    w->meta_text = malloc(text);
    w->io = calloc(n ? n : 1, sizeof *w->io);
    if (w->meta_text == NULL || w->io == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *t = w->meta_text;
#define WK_COPY(dst, src)                                                                          \
    do {                                                                                           \
        size_t l_ = strlen(src) + 1;                                                               \
        memcpy(t, (src), l_);                                                                      \
        (dst) = t;                                                                                 \
        t += l_;                                                                                   \
    } while (0)
    WK_COPY(w->api.name, name ? name : "");
    WK_COPY(w->model.platform, platform ? platform : "dynserve_c");
    for (uint32_t i = 0; i < n; i++) {
        WK_COPY(w->io[i].name, (const char *)base + io[i].name.off);
        w->io[i].datatype = (ds_datatype)io[i].datatype;
        w->io[i].rank = io[i].rank;
        memcpy(w->io[i].shape, io[i].shape, sizeof w->io[i].shape);
    }
#undef WK_COPY
    w->model.struct_size = sizeof w->model;
    w->model.flags = m->model_flags;
    w->model.input_count = m->input_count;
    w->model.inputs = w->io;
    w->model.output_count = m->output_count;
    w->model.outputs = w->io + m->input_count;
    w->api.flags = m->api_flags;
    return 0;
malformed:
    snprintf(err, errlen, "the worker reported malformed metadata");
    return -1;
}

/* Copy the worker's metadata (untrusted: every field checked) into w. 0 or -1. It is parsed
 * from a private snapshot: the worker's threads may still write the shared memory, and a length
 * checked there could change before it is used. */
static int wk_take_meta(worker *w, const wproc *p, char *err, size_t errlen)
{
    const wp_shm *shm = &p->chans[0].shm;
    size_t len = p->meta_len; /* not the whole channel: it keeps 1 MiB or more */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(copy, shm->base, len);
    int rc = wk_parse_meta(w, copy, len, err, errlen);
    free(copy);
    return rc;
}

/* ---- probe ---------------------------------------------------------------------------------- */

void worker_set_executable(const char *path)
{
    snprintf(worker_exe, sizeof worker_exe, "%s", path);
}

void worker_set_drop_ids(unsigned uid, unsigned gid)
{
    worker_drop_uid = uid;
    worker_drop_gid = gid;
    worker_drop_ids_set = true;
}

/* The "nobody" ids, looked up once (getpwnam is not thread-safe: called before threads run
 * in the server, or under the once). */
static pthread_once_t wk_ids_once = PTHREAD_ONCE_INIT;
static void wk_ids_init(void)
{
    if (worker_drop_ids_set)
        return;
    struct passwd *pw = getpwnam("nobody");
    if (pw != NULL) {
        worker_drop_uid = pw->pw_uid;
        worker_drop_gid = pw->pw_gid;
    }
}

/* Spawn a probe worker for cfg: 0, -1, or -2 when the plugin refused in the worker. */
static int worker_probe_with(worker_config *cfg, int timeout_ms, char *err, size_t errlen)
{
    pthread_once(&wk_ids_once, wk_ids_init);
    cfg->start_timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    bool refused = false;
    wproc *p = wproc_spawn(cfg, true, &refused, err, errlen);
    if (p == NULL)
        return refused ? -2 : -1;
    worker tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = wk_take_meta(&tmp, p, err, errlen);
    free(tmp.io);
    free(tmp.meta_text);
    wk_reap(p->pid, timeout_ms > 0 ? timeout_ms : 10000);
    wproc_free(p);
    return rc;
}

int worker_probe(const char *path, const char *config_json, int timeout_ms, char *err,
                 size_t errlen)
{
    worker_config cfg = {.plugin_path = path, .config_json = config_json};
    return worker_probe_with(&cfg, timeout_ms, err, errlen) == 0 ? 0 : -1;
}

int worker_probe_artifact(const char *path, const char *model, const char *version,
                          const char *artifact_dir, const char *config_json, int timeout_ms,
                          char *err, size_t errlen)
{
    worker_config cfg = {.plugin_path = path,
                         .config_json = config_json,
                         .model_name = model,
                         .model_version = version,
                         .deployment_id = "probe",
                         .artifact_dir = artifact_dir,
                         .instance_count = 1};
    return worker_probe_with(&cfg, timeout_ms, err, errlen);
}

/* ---- the data path -------------------------------------------------------------------------- */

static size_t wk_request_size(const ds_infer_request *req)
{
    size_t n = wp_align(sizeof(wp_request)) + wp_align(req->input_count * sizeof(wp_tensor)) +
               wp_align(req->requested_output_count * sizeof(wp_span));
    n += req->id ? wp_str_size(strlen(req->id)) : 0;
    n += req->parameters ? wp_str_size(strlen(req->parameters)) : 0;
    for (uint32_t i = 0; i < req->input_count; i++) {
        const ds_tensor *t = &req->inputs[i];
        n += wp_str_size(strlen(t->name)) + wp_align(t->byte_size);
        n += t->parameters ? wp_str_size(strlen(t->parameters)) : 0;
    }
    for (uint32_t i = 0; i < req->requested_output_count; i++)
        n += wp_str_size(strlen(req->requested_outputs[i]));
    return n;
}

static int wk_encode_request(wp_shm *shm, const ds_infer_request *req, size_t need,
                             uint64_t deadline_ns)
{
    if (req->input_count > WP_MAX_IO || req->requested_output_count > WP_MAX_IO ||
        wp_shm_reserve(shm, need) != 0)
        return -1;
    wp_writer w = {.base = shm->base};
    wp_request *h = wp_alloc(&w, sizeof *h);
    wp_tensor *ts = wp_alloc(&w, req->input_count * sizeof *ts);
    wp_span *rs = wp_alloc(&w, req->requested_output_count * sizeof *rs);
    h->input_count = req->input_count;
    h->requested_count = req->requested_output_count;
    h->deadline_ns = deadline_ns;
    h->id = wp_put_str(&w, req->id);
    h->parameters = wp_put_str(&w, req->parameters);
    for (uint32_t i = 0; i < req->input_count; i++) {
        const ds_tensor *t = &req->inputs[i];
        memset(&ts[i], 0, sizeof ts[i]);
        ts[i].name = wp_put_str(&w, t->name);
        ts[i].data = wp_put(&w, t->data, t->byte_size);
        ts[i].parameters = wp_put_str(&w, t->parameters);
        ts[i].datatype = (int32_t)t->datatype;
        ts[i].rank = t->rank;
        if (t->rank > 0)
            memcpy(ts[i].shape, t->shape, t->rank * sizeof *t->shape);
        ts[i].element_count = t->element_count;
    }
    for (uint32_t i = 0; i < req->requested_output_count; i++)
        rs[i] = wp_put_str(&w, req->requested_outputs[i]);
    return 0;
}

/* Copy the worker's outputs into the server's response (untrusted: bounds-checked here, and
 * output_alloc checks datatype, shape and size as for an in-process plugin). The worker can
 * still write the shared memory while this runs, so every header, descriptor and name is
 * copied out once and only the copy is checked and used: a length changed after its check
 * cannot reach a memcpy. */
static ds_status wk_decode_response(worker *w, const wp_shm *shm, ds_infer_response *resp,
                                    size_t *bytes, ds_error *err)
{
    const uint8_t *base = shm->base;
    size_t size = shm->size;
    int bad = 0;
    if (size < sizeof(wp_response))
        return ds_error_set(err, DS_ERR_INTERNAL, "worker sent a truncated response");
    wp_response h;
    memcpy(&h, base, sizeof h);
    if (h.status != DS_OK) {
        ds_error_set(err, (ds_status)h.status, "%.*s", (int)sizeof h.message - 1, h.message);
        return h.status >= DS_ERR_INVALID_ARGUMENT && h.status <= DS_ERR_CANCELLED
                   ? (ds_status)h.status
                   : DS_ERR_INTERNAL;
    }
    wp_span tspan = {wp_align(sizeof h), (uint64_t)h.output_count * sizeof(wp_tensor)};
    const wp_tensor *ts = h.output_count <= WP_MAX_IO ? wp_bytes(base, size, tspan, &bad) : NULL;
    if (ts == NULL)
        return ds_error_set(err, DS_ERR_INTERNAL, "worker sent a malformed response");
    for (uint32_t i = 0; i < h.output_count; i++) {
        wp_tensor t;
        memcpy(&t, &ts[i], sizeof t);
        char name[WK_OUTPUT_NAME_MAX + 1];
        const void *data = wp_bytes(base, size, t.data, &bad);
        const void *sname = wp_bytes(base, size, t.name, &bad);
        if (bad || sname == NULL || t.name.len > WK_OUTPUT_NAME_MAX || t.rank > DS_MAX_RANK)
            return ds_error_set(err, DS_ERR_INTERNAL, "worker sent a malformed output %u", i);
        memcpy(name, sname, (size_t)t.name.len);
        name[t.name.len] = '\0';
        if (memchr(name, '\0', (size_t)t.name.len) != NULL || t.name.len == 0)
            return ds_error_set(err, DS_ERR_INTERNAL, "worker sent a malformed output %u", i);
        void *out = w->cfg.host->output_alloc(resp, name, (ds_datatype)t.datatype, t.rank, t.shape,
                                              (size_t)t.data.len, err);
        if (out == NULL)
            return err->code != DS_OK ? err->code : DS_ERR_INTERNAL;
        memcpy(out, data, (size_t)t.data.len);
        *bytes += (size_t)t.data.len;
    }
    return DS_OK;
}

/* Borrow a channel of the live incarnation, waiting until deadline_ms. NULL with err set. */
static wproc *wk_borrow(worker *w, int64_t deadline_ms, unsigned *chan, ds_error *err)
{
    bool timed_out = false;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->state == WS_FAILED || w->state == WS_STOPPED) {
            ds_error_set(err, DS_ERR_UNAVAILABLE, "%s is %s: %s", w->label, state_names[w->state],
                         w->reason[0] ? w->reason : "stopped");
            break;
        }
        wproc *p = w->cur;
        if (p != NULL && !p->dead && p->free_mask != 0) {
            *chan = (unsigned)__builtin_ctz(p->free_mask);
            p->free_mask &= ~(1u << *chan);
            p->refs++;
            w->calls++;
            pthread_mutex_unlock(&w->mu);
            return p;
        }
        if (timed_out) {
            ds_error_set(err, DS_ERR_UNAVAILABLE, "%s: worker %s", w->label,
                         w->cur == NULL ? "is restarting" : "is busy");
            break;
        }
        /* A timeout looks once more before giving up: a signal that raced with it (a channel
         * handed back) is then used, not lost. */
        struct timespec ts = wk_abstime(deadline_ms);
        timed_out = pthread_cond_timedwait(&w->chan_cv, &w->mu, &ts) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void wk_unref_locked(worker *w, wproc *p)
{
    if (--p->refs == 0) {
        if (w->cur == p)
            w->cur = NULL;
        wproc_free(p);
    }
}

static void wk_give_back(worker *w, wproc *p, unsigned chan, bool healthy)
{
    pthread_mutex_lock(&w->mu);
    bool freed = healthy && !p->dead;
    if (freed)
        p->free_mask |= 1u << chan;
    else
        p->dead = true;
    wk_unref_locked(w, p);
    w->calls--;
    pthread_cond_broadcast(&w->cv); /* no syscall without waiters: few ever wait there */
    if (freed)
        pthread_cond_signal(&w->chan_cv);
    else
        pthread_cond_broadcast(&w->chan_cv);
    pthread_mutex_unlock(&w->mu);
}

/* The process died under a request: wait (bounded) for the supervisor to say how. */
static ds_status wk_crashed(worker *w, wproc *p, ds_error *err)
{
    pthread_mutex_lock(&w->mu);
    p->dead = true;
    int64_t deadline = wk_now_ms() + WK_REAP_WAIT_MS;
    while (!p->reaped) {
        struct timespec ts = wk_abstime(deadline);
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (p->killed_for[0])
        ds_error_set(err, WORKER_STATUS_CRASHED, "%s: worker (pid %d) was killed: %s", w->label,
                     (int)p->pid, p->killed_for);
    else
        ds_error_set(err, WORKER_STATUS_CRASHED, "%s: worker (pid %d) %s", w->label, (int)p->pid,
                     p->reaped ? p->death : "stopped answering");
    pthread_mutex_unlock(&w->mu);
    return WORKER_STATUS_CRASHED;
}

static void wk_kill(worker *w, wproc *p, const char *why)
{
    pthread_mutex_lock(&w->mu);
    if (!p->reaped) { /* a reaped pid may belong to someone else by now */
        if (!p->killed_for[0])
            snprintf(p->killed_for, sizeof p->killed_for, "%s", why);
        kill(p->pid, SIGKILL);
    }
    p->dead = true;
    wk_wake_all(w);
    pthread_mutex_unlock(&w->mu);
}

/* Tell the worker's run queue a call is waiting: bump the ring, and wake a thread unless enough
 * are awake to find it (they look at every channel before they sleep). The RMW and the load are
 * sequentially consistent against the worker's decrement of `awake` and its last look, so either
 * it sees this call or we see it asleep. A lying `awake` only slows the liar's own calls: the wait
 * in wk_execute wakes a thread for a call not taken within a slice. */
static void wk_ring(const worker *w, wproc *p)
{
    atomic_fetch_add(&p->queue->ring, 1);
    if (atomic_load(&p->queue->awake) < w->run_cpus)
        wp_wake(&p->queue->ring);
}

static ds_status wk_execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                            ds_error *err)
{
    worker *w = instance;
    int timeout = w->cfg.call_timeout_ms;
    int64_t start = wk_now_ms();
    int64_t deadline = start + (timeout > 0 ? timeout : 30000);
    unsigned ci = 0;
    wproc *p = wk_borrow(w, deadline, &ci, err);
    if (p == NULL)
        return DS_ERR_UNAVAILABLE;
    wchan *c = &p->chans[ci];
    size_t need = wk_request_size(req);
    if (wk_encode_request(&c->shm, req, need, resp != NULL ? resp->deadline_ns : 0) != 0) {
        wk_give_back(w, p, ci, true);
        return ds_error_set(err, DS_ERR_NO_MEMORY, "%s: request too large for shared memory",
                            w->label);
    }
    if (++c->seq == 0)
        c->seq = 1;
    uint32_t seq = c->seq;
    wp_bell *bell = c->shm.bell;
    bell->exec_size = c->shm.size;
    atomic_store_explicit(&bell->exec, seq, memory_order_release);
    wk_ring(w, p);
    /* Wait for `done`, waking every WK_CANCEL_POLL_MS to look at the deadline, the process (the
     * supervisor marks it dead when it ends) and the client; once the client is gone, tell the
     * worker (bell->cancel), whose is_cancelled then reports CANCELLED. The worker writes `done`,
     * so only equality counts and the deadline is looked at on every turn. */
    bool watch = resp != NULL && resp->client_gone != NULL;
    int r; /* 1 answered, -2 deadline, 0 the process is gone */
    for (;;) {
        uint32_t done = atomic_load_explicit(&bell->done, memory_order_acquire);
        if (done == seq) {
            r = 1;
            break;
        }
        if (timeout > 0 && wk_now_ms() >= deadline) {
            r = -2;
            break;
        }
        if (wp_wait(&bell->done, done, WK_CANCEL_POLL_MS) != -2)
            continue;
        if (atomic_load_explicit(&bell->taken, memory_order_relaxed) != seq)
            wp_wake(&p->queue->ring); /* every awake thread is stuck in a call */
        pthread_mutex_lock(&w->mu);
        bool gone = p->dead;
        pthread_mutex_unlock(&w->mu);
        if (gone) {
            r = 0;
            break;
        }
        if (watch && resp->client_gone(resp->client_ctx)) {
            watch = false;
            atomic_store_explicit(&bell->cancel, seq, memory_order_release);
        }
    }
    ds_status st;
    if (r == 1 && wp_shm_follow(&c->shm, c->shm.bell->done_size) == 0) {
        size_t out_bytes = 0;
        st = wk_decode_response(w, &c->shm, resp, &out_bytes, err);
        if (need > WK_SHM_KEEP || out_bytes > WK_SHM_KEEP)
            wp_shm_trim(&c->shm, WK_SHM_KEEP);
        wk_give_back(w, p, ci, true);
        return st;
    }
    if (r == -2) {
        char why[160];
        snprintf(why, sizeof why, "a request passed its %d ms deadline", timeout);
        wk_kill(w, p, why);
        wk_give_back(w, p, ci, false);
        return ds_error_set(err, WORKER_STATUS_TIMEOUT,
                            "%s: no answer within %d ms (timeout_ms); the worker is restarted",
                            w->label, timeout);
    }
    if (r == 1) /* DONE but shared memory inconsistent: a lying worker */
        wk_kill(w, p, "it broke the protocol");
    st = wk_crashed(w, p, err);
    wk_give_back(w, p, ci, false);
    return st;
}

/* The table never calls these: the worker creates and destroys its own instance. */
static ds_status wk_no_create(const char *config_json, void **instance, ds_error *err)
{
    (void)config_json;
    (void)instance;
    return ds_error_set(err, DS_ERR_UNSUPPORTED, "an isolated plugin is created by its worker");
}
static void wk_no_destroy(void *instance)
{
    (void)instance;
}

/* ---- supervision ------------------------------------------------------------------------------
 */

static void wk_emit(worker *w, worker_event ev, const char *reason)
{
    if (w->cfg.on_event != NULL)
        w->cfg.on_event(w->cfg.event_ud, ev, reason);
}

/* Record a crash at now; returns how many fell within the window. Caller holds mu. */
static int wk_count_crash_locked(worker *w, int64_t now)
{
    w->crash_ms[w->crashes % WK_MAX_CRASHES] = now;
    w->crashes++;
    int n = 0;
    unsigned seen = w->crashes < WK_MAX_CRASHES ? w->crashes : WK_MAX_CRASHES;
    for (unsigned i = 0; i < seen; i++)
        if (now - w->crash_ms[i] <= w->cfg.crash_window_ms)
            n++;
    return n;
}

/* Wait for the incarnation's control socket to close, or for a stop. true on a stop. */
static bool wk_watch(worker *w, wproc *p)
{
    for (;;) {
        struct pollfd fds[2] = {{.fd = p->ctl, .events = POLLIN},
                                {.fd = w->wake[0], .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return true;
        }
        if (fds[1].revents)
            return true;
        wp_msg m;
        if (fds[0].revents && wp_recv(p->ctl, &m, 0) != 1)
            return false; /* EOF: the process is gone or going */
    }
}

/* Sleep ms unless stopped; true on a stop. */
static bool wk_pause(worker *w, int ms)
{
    struct pollfd f = {.fd = w->wake[0], .events = POLLIN};
    int64_t deadline = wk_now_ms() + ms;
    for (;;) {
        int left = (int)(deadline - wk_now_ms());
        if (left <= 0)
            return false;
        int r = poll(&f, 1, left);
        if (r > 0)
            return true;
        if (r == 0)
            return false;
    }
}

/* The process of p ended (or is ending): reap it and retire p. Returns the crash reason. */
static void wk_retire(worker *w, wproc *p, char *reason, size_t len)
{
    char how[160];
    wk_describe_exit(wk_reap(p->pid, WK_REAP_WAIT_MS), how, sizeof how);
    pthread_mutex_lock(&w->mu);
    p->reaped = true;
    p->dead = true;
    snprintf(p->death, sizeof p->death, "%s", how);
    if (p->killed_for[0])
        snprintf(reason, len, "worker pid %d killed because %s", (int)p->pid, p->killed_for);
    else
        snprintf(reason, len, "worker pid %d %s", (int)p->pid, how);
    if (w->cur == p) {
        w->cur = NULL;
        if (w->state == WS_READY)
            w->state = WS_RESTARTING;
        wk_unref_locked(w, p);
    }
    wk_wake_all(w);
    pthread_mutex_unlock(&w->mu);
}

/* After a crash: count it, and either mark the worker failed (true) or back off. */
static bool wk_after_crash(worker *w, const char *reason, bool *stopped)
{
    pthread_mutex_lock(&w->mu);
    int n = wk_count_crash_locked(w, wk_now_ms());
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    bool failed = n >= w->cfg.max_crashes && w->state != WS_STOPPED;
    if (failed) {
        w->state = WS_FAILED;
        snprintf(w->reason, sizeof w->reason, "%d crashes within %d s, the last: %.180s", n,
                 w->cfg.crash_window_ms / 1000, reason);
    }
    char final_reason[256];
    snprintf(final_reason, sizeof final_reason, "%s", w->reason);
    wk_wake_all(w);
    pthread_mutex_unlock(&w->mu);
    wk_emit(w, WORKER_CRASHED, reason);
    if (failed) {
        wk_emit(w, WORKER_FAILED, final_reason);
        return true;
    }
    int delay = n <= 1 ? 0 : WK_BACKOFF_MS << (n - 2 < 6 ? n - 2 : 6);
    *stopped = wk_pause(w, delay < WK_BACKOFF_MAX ? delay : WK_BACKOFF_MAX);
    return false;
}

static void *wk_supervise(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->mu);
    wproc *p = w->cur;
    pthread_mutex_unlock(&w->mu);
    for (;;) {
        if (wk_watch(w, p))
            return NULL;
        char reason[256];
        wk_retire(w, p, reason, sizeof reason);
        pthread_mutex_lock(&w->mu);
        bool stopping = w->state == WS_STOPPED; /* worker_kill: no restart, no crash report */
        pthread_mutex_unlock(&w->mu);
        if (stopping)
            return NULL;
        bool stopped = false;
        for (;;) {
            if (wk_after_crash(w, reason, &stopped) || stopped)
                return NULL;
            char err[512];
            p = wproc_spawn(&w->cfg, false, NULL, err, sizeof err);
            if (p != NULL)
                break;
            snprintf(reason, sizeof reason, "restart failed: %.230s", err);
        }
        pthread_mutex_lock(&w->mu);
        p->refs = 1;
        w->cur = p;
        if (w->state != WS_STOPPED)
            w->state = WS_READY;
        w->restarts++;
        wk_wake_all(w);
        pthread_mutex_unlock(&w->mu);
        char msg[64];
        snprintf(msg, sizeof msg, "pid %d", (int)p->pid);
        wk_emit(w, WORKER_RESTARTED, msg);
    }
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

static void worker_free(worker *w)
{
    if (w == NULL)
        return;
    wk_close(&w->wake[0]);
    wk_close(&w->wake[1]);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->chan_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->io);
    free(w->meta_text);
    free(w->path);
    free(w->config_json);
    free(w->label);
    free(w->model_name);
    free(w->model_version);
    free(w->deployment_id);
    free(w->artifact_dir);
    free(w);
}

static int wk_copy_config(worker *w, const worker_config *cfg)
{
    w->cfg = *cfg;
    w->path = strdup(cfg->plugin_path);
    w->config_json = strdup(cfg->config_json ? cfg->config_json : "{}");
    w->label = strdup(cfg->label ? cfg->label : cfg->plugin_path);
    if (w->path == NULL || w->config_json == NULL || w->label == NULL)
        return -1;
    w->cfg.plugin_path = w->path;
    w->cfg.config_json = w->config_json;
    w->cfg.label = w->label;
    const char *in[4] = {cfg->model_name, cfg->model_version, cfg->deployment_id,
                         cfg->artifact_dir};
    char **out[4] = {&w->model_name, &w->model_version, &w->deployment_id, &w->artifact_dir};
    for (int i = 0; i < 4; i++)
        if (in[i] != NULL && (*out[i] = strdup(in[i])) == NULL)
            return -1;
    w->cfg.model_name = w->model_name;
    w->cfg.model_version = w->model_version;
    w->cfg.deployment_id = w->deployment_id;
    w->cfg.artifact_dir = w->artifact_dir;
    if (w->cfg.instance_count == 0)
        w->cfg.instance_count = 1;
    if (w->cfg.instance_count > 64)
        w->cfg.instance_count = 64;
    if (w->cfg.channels == 0)
        w->cfg.channels = 4;
    if (w->cfg.channels > WP_MAX_CHANNELS)
        w->cfg.channels = WP_MAX_CHANNELS;
    w->run_cpus = wp_run_cpus(w->cfg.channels);
    if (w->cfg.start_timeout_ms <= 0)
        w->cfg.start_timeout_ms = 10000;
    if (w->cfg.max_crashes <= 0)
        w->cfg.max_crashes = 5;
    if (w->cfg.max_crashes > WK_MAX_CRASHES)
        w->cfg.max_crashes = WK_MAX_CRASHES;
    if (w->cfg.crash_window_ms <= 0)
        w->cfg.crash_window_ms = 60000;
    return 0;
}

int worker_start(const worker_config *cfg, worker **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_once(&wk_ids_once, wk_ids_init);
    worker *w = calloc(1, sizeof *w);
    if (w == NULL || (w->wake[0] = w->wake[1] = -1, wk_copy_config(w, cfg)) != 0 ||
        pipe2(w->wake, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "out of memory");
        worker_free(w);
        return -1;
    }
    pthread_mutex_init(&w->mu, NULL);
    wk_cond_init(&w->cv);
    wk_cond_init(&w->chan_cv);
    bool refused = false;
    wproc *p = wproc_spawn(&w->cfg, false, &refused, err, errlen);
    if (p == NULL || wk_take_meta(w, p, err, errlen) != 0) {
        if (p != NULL) {
            kill(p->pid, SIGKILL);
            wk_reap(p->pid, 0);
        }
        wproc_free(p);
        worker_free(w);
        return p == NULL && refused ? -2 : -1;
    }
    p->refs = 1;
    w->cur = p;
    w->state = WS_READY;
    w->api = (ds_plugin_api){.struct_size = sizeof(ds_plugin_api),
                             .abi_major = DS_PLUGIN_ABI_MAJOR,
                             .abi_minor = DS_PLUGIN_ABI_MINOR,
                             .flags = w->api.flags | DS_PLUGIN_THREAD_SAFE,
                             .name = w->api.name,
                             .model = &w->model,
                             .create = wk_no_create,
                             .execute = wk_execute,
                             .destroy = wk_no_destroy};
    if (pthread_create(&w->supervisor, NULL, wk_supervise, w) != 0) {
        snprintf(err, errlen, "cannot start the supervisor thread");
        kill(p->pid, SIGKILL);
        wk_reap(p->pid, 0);
        wproc_free(p);
        worker_free(w);
        return -1;
    }
    w->supervising = true;
    *out = w;
    return 0;
}

const ds_plugin_api *worker_api(const worker *w)
{
    return &w->api;
}

const ds_model_desc *worker_model(const worker *w)
{
    return &w->model;
}

int worker_thread_safe(const worker *w)
{
    (void)w;
    return 1; /* the worker serializes a non-thread-safe plugin itself */
}

void worker_kill(worker *w, const char *why)
{
    pthread_mutex_lock(&w->mu);
    w->state = WS_STOPPED;
    snprintf(w->reason, sizeof w->reason, "%s", why);
    wproc *p = w->cur;
    if (p != NULL && !p->reaped) {
        snprintf(p->killed_for, sizeof p->killed_for, "%s", why);
        p->dead = true;
        kill(p->pid, SIGKILL);
    }
    wk_wake_all(w);
    pthread_mutex_unlock(&w->mu);
}

void worker_stop(worker *w, int grace_ms)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->state = WS_STOPPED;
    snprintf(w->reason, sizeof w->reason, "undeployed");
    wk_wake_all(w);
    pthread_mutex_unlock(&w->mu);
    if (w->supervising) {
        (void)!write(w->wake[1], "x", 1);
        pthread_join(w->supervisor, NULL);
    }
    pthread_mutex_lock(&w->mu);
    wproc *p = w->cur;
    pthread_mutex_unlock(&w->mu);
    if (p != NULL) {
        wp_send(p->ctl, WP_STOP, 0, 0, 0);
        int status = wk_reap(p->pid, grace_ms > 0 ? grace_ms : 0);
        pthread_mutex_lock(&w->mu);
        p->reaped = true;
        p->dead = true;
        snprintf(p->killed_for, sizeof p->killed_for, "its deployment was undeployed");
        wk_describe_exit(status, p->death, sizeof p->death);
        w->cur = NULL;
        wk_unref_locked(w, p);
        wk_wake_all(w);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    while (w->calls > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    worker_free(w);
}

static int64_t wk_rss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "re");
    long long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    int n = fscanf(f, "%lld %lld", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (int64_t)sysconf(_SC_PAGESIZE) : 0;
}

void worker_get_info(worker *w, worker_info *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&w->mu);
    out->pid = w->cur && !w->cur->dead ? (int)w->cur->pid : 0;
    out->restarts = w->restarts;
    out->crashes = w->crashes;
    out->state = state_names[w->state];
    snprintf(out->reason, sizeof out->reason, "%s", w->reason);
    pthread_mutex_unlock(&w->mu);
    out->rss_bytes = out->pid ? wk_rss(out->pid) : 0;
}
