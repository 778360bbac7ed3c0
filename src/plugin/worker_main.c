/*
 * worker_main: `dynserve worker`, the child side of a process-isolated deployment and of the
 * registration probe. The server spawns it (posix_spawn, never fork) with the descriptors that
 * worker_proto.h lists; a person never runs it by hand.
 *
 *   1. read INIT on the control socket; its parameters are in channel 0's memory
 *   2. confine itself before any plugin code runs: no_new_privs, resource limits, and, when
 *      started as root, setgroups/setgid/setuid to the unprivileged ids the server chose
 *   3. dlopen the plugin through /proc/self/fd/N (the server opened the file, stored 0600: before
 *      confining itself the worker replaces that descriptor by a sealed memfd copy owned by the
 *      uid it drops to, so the reopen is allowed and the bytes cannot change), check it with the
 *      loader, create the deployment's instance_count instances (plugin/pool.h) with the ABI 1.1
 *      context (a model directory's artifact directory is the descriptor the server opened,
 *      /proc/self/fd/M); answer INIT_OK with the metadata (the instance's own IO when it
 *      describes it) or INIT_ERR with the reason
 *   4. probe: destroy and exit 0. serve: serving threads, each serving any channel whose EXEC
 *      is waiting (the run queue of worker_proto.h) -> execute -> DONE on an instance of the
 *      pool (a non-thread-safe plugin: one request per instance); one per CPU at first, and one
 *      more whenever a call starts with none idle, up to one per channel (wk_spare),
 *      while the main thread waits on the control socket: STOP destroys the instance and exits,
 *      EOF (the server is gone) exits at once.
 *
 * A crash anywhere here only ends this process; the server sees the sockets close, reaps the
 * child and reports the signal. Exit status: 0 done, 3 the control socket failed, 4 bad INIT.
 *
 * Memory: the plugin gets the server's own host table (plugin/host.c), so its outputs land in a
 * per-channel OIP arena (reset per request, bounded) exactly as in process; inputs are read in
 * place from shared memory.
 */
#include "worker_main.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "loader.h"
#include "oip.h"
#include "pool.h"
#include "worker_proto.h"

/* A channel. Whoever holds `busy` owns everything below it; the doorbell words are the peer's
 * too. */
typedef struct wk_chan {
    wp_bell *bell;         /* the doorbell, mapped apart: read by every thread, never remapped */
    _Atomic bool busy;     /* a thread serves this channel (claimed with acquire, freed release) */
    _Atomic uint32_t last; /* the last call served: EXEC != last means one is waiting */
    uint32_t seq;      /* the doorbell number of the call being served (bell->cancel names it) */
    wp_shm shm;        /* the data area; only the owner remaps it */
    oip_arena *arena;  /* the outputs of one execute; reset per request */
    oip_response resp; /* what the plugin fills through the host table's output_alloc */
    ds_tensor *inputs;
    int64_t *shapes;
    const char **requested;
    uint32_t inputs_cap, requested_cap;
} wk_chan;

/* A serving thread: its own CPU clock is what the per-call CPU budget measures. */
typedef struct wk_thread {
    unsigned index; /* the channel it looks at first, so awake threads spread out */
    timer_t cpu_timer;
    bool has_timer;
} wk_thread;

/* The worker's one deployment. Written by main before the channel threads start, read-only
 * afterwards (the pool and calls_lock aside). */
static struct {
    loader_plugin *plugin;
    inst_pool *pool;            /* the instances; pool_acquire serialises per instance */
    ds_deployment dep;          /* the server's label for this deployment (logf) */
    pthread_mutex_t calls_lock; /* guards calls and stopping */
    pthread_cond_t calls_done;
    int calls;     /* execute() calls running */
    bool stopping; /* STOP received: no new calls */
    int64_t cpu_ms;
    char plugin_name[4096];
    char fd_path[64];
    /* the ABI 1.1 instance context, from INIT */
    char model_name[256], model_version[256];
    char artifact_name[4096];  /* the artifact directory as the server knows it (messages) */
    char artifact_fd_path[64]; /* what the instance is told: /proc/self/fd/M, "" for a .so */
    uint32_t instance_count;
    wk_chan *chans[WP_MAX_CHANNELS]; /* written before the serving threads start */
    unsigned nchan;
    wp_bell *queue; /* channel 0's doorbell: the run queue (ring, awake) */
    /* serving threads: started as calls need them, at most one per channel (wk_spare) */
    _Atomic unsigned threads, idle; /* started; waiting on the run queue */
} wk;

static void wk_log(int level, const char *msg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[1200];
    int n = snprintf(line, sizeof line, "[worker %d] %s plugin: %s\n", (int)getpid(),
                     names[level < 0   ? 0
                           : level > 3 ? 3
                                       : level],
                     msg);
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

__attribute__((format(printf, 1, 2))) static void wk_say(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wk_log(0, msg);
}

/* ---- confinement ----------------------------------------------------------------------- */

static int wk_limit(int resource, int64_t value, const char *what)
{
    if (value <= 0)
        return 0;
    struct rlimit rl = {.rlim_cur = (rlim_t)value, .rlim_max = (rlim_t)value};
    if (setrlimit(resource, &rl) != 0) {
        wk_say("cannot set %s limit to %lld: %s", what, (long long)value, strerror(errno));
        return -1;
    }
    return 0;
}

/* Copy all of `from` into `to`. 0, or -1 with errno. */
static int wk_copy_fd(int from, int to)
{
    char buf[65536];
    off_t at = 0;
    for (;;) {
        ssize_t n = pread(from, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? 0 : -1;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(to, buf + done, (size_t)(n - done));
            if (w < 0 && errno != EINTR)
                return -1;
            done += w > 0 ? w : 0;
        }
        at += n;
    }
}

/* Replace the plugin descriptor `fd` by a sealed memfd holding the same bytes, readable by the
 * uid the worker runs plugin code as (owner: that uid, mode 0400, when dropping from root). The
 * stored file is the server's (0600): reopening it through /proc/self/fd after the drop would be
 * refused, and the seals mean nothing can change the bytes between the copy and the dlopen.
 * 0, or -1 with err. */
static int wk_private_plugin(int fd, const wp_init *in, bool drop, char *err, size_t errlen)
{
    int mfd = memfd_create("dynserve-plugin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    bool ok =
        mfd >= 0 && wk_copy_fd(fd, mfd) == 0 &&
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0 &&
        fchmod(mfd, 0400) == 0 &&
        (!drop || fchown(mfd, (uid_t)in->drop_uid, (gid_t)in->drop_gid) == 0) &&
        dup2(mfd, fd) == fd;
    int saved = errno;
    if (mfd >= 0)
        close(mfd);
    if (!ok) {
        snprintf(err, errlen, "cannot copy the plugin into memory: %s", strerror(saved));
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Everything that must hold before plugin code runs. 0, or -1 after logging why. */
static int wk_confine(const wp_init *in, char *err, size_t errlen)
{
    bool drop = in->drop && geteuid() == 0;
    /* first: the copy needs a descriptor and memory that the limits below may deny */
    if (wk_private_plugin(wp_fd_plugin(in->channels), in, drop, err, errlen) != 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
#if !defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer reserves terabytes of shadow address space: an RLIMIT_AS kills it. */
    if (wk_limit(RLIMIT_AS, in->memory_bytes, "address space") != 0) {
        snprintf(err, errlen, "cannot apply memory limit");
        return -1;
    }
#endif
    if (wk_limit(RLIMIT_NOFILE, in->open_files, "open files") != 0) {
        snprintf(err, errlen, "cannot apply open files limit");
        return -1;
    }
    if (drop) {
        if (setgroups(0, NULL) != 0 || setgid((gid_t)in->drop_gid) != 0 ||
            setuid((uid_t)in->drop_uid) != 0) {
            snprintf(err, errlen, "cannot drop privileges to uid %u: %s", in->drop_uid,
                     strerror(errno));
            return -1;
        }
        /* setuid made the process non-dumpable, which hides /proc/self/fd from the new uid;
         * the plugin is loaded through it, so allow it for the load and forbid it afterwards. */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Replace every /proc/self/fd/N path of `from` in msg with `to`. */
static void wk_replace(const char *msg, const char *from, const char *to, char *out, size_t outlen)
{
    size_t n = 0, flen = strlen(from);
    out[0] = '\0';
    while (*msg != '\0' && n + 1 < outlen) {
        const char *at = flen ? strstr(msg, from) : NULL;
        size_t plain = at ? (size_t)(at - msg) : strlen(msg);
        int k = snprintf(out + n, outlen - n, "%.*s%s", (int)plain, msg, at ? to : "");
        if (k < 0)
            break;
        n += (size_t)k;
        if (at == NULL || n >= outlen)
            break;
        msg = at + flen;
    }
}

/* A loader or plugin message with the descriptor paths replaced by the names the server knows
 * (the artifact directory's first: the plugin's /proc/self/fd/N may be its prefix). */
static void wk_rename(const char *msg, char *out, size_t outlen)
{
    char tmp[1024];
    wk_replace(msg, wk.artifact_fd_path, wk.artifact_name, tmp, sizeof tmp);
    wk_replace(tmp, wk.fd_path, wk.plugin_name, out, outlen);
}

static int wk_load(const char *config_json, char *err, size_t errlen)
{
    char raw[1024];
    loader_instance_args args = {.model_name = wk.model_name[0] ? wk.model_name : "?",
                                 .model_version = wk.model_version[0] ? wk.model_version : "?",
                                 .deployment_id = wk.dep.label,
                                 .artifact_dir =
                                     wk.artifact_fd_path[0] ? wk.artifact_fd_path : NULL,
                                 .config_json = config_json,
                                 .deployment = &wk.dep};
    /* the server's own host table: outputs land in an OIP response exactly as in process */
    if (loader_open(wk.fd_path, plugin_host_api(), &wk.plugin, raw, sizeof raw) != 0 ||
        pool_create(wk.plugin, &args, wk.instance_count, &wk.pool, raw, sizeof raw) != 0) {
        wk_rename(raw, err, errlen);
        return -1;
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return 0;
}

/* Size of the INIT_OK payload for model md. */
static size_t wk_meta_size(const ds_plugin_api *api, const ds_model_desc *md)
{
    size_t n = wp_align(sizeof(wp_meta)) +
               wp_align((size_t)(md->input_count + md->output_count) * sizeof(wp_io));
    n += wp_str_size(strlen(api->name)) + wp_str_size(strlen(md->platform));
    for (uint32_t i = 0; i < md->input_count; i++)
        n += wp_str_size(strlen(md->inputs[i].name));
    for (uint32_t i = 0; i < md->output_count; i++)
        n += wp_str_size(strlen(md->outputs[i].name));
    return n;
}

static void wk_put_io(wp_writer *w, wp_io *rec, const ds_io_desc *d)
{
    rec->name = wp_put_str(w, d->name);
    rec->datatype = (int32_t)d->datatype;
    rec->rank = d->rank;
    memcpy(rec->shape, d->shape, sizeof rec->shape);
}

static int wk_write_meta(wp_shm *shm, size_t *used)
{
    const ds_plugin_api *api = loader_api(wk.plugin);
    const ds_model_desc *md = pool_model(wk.pool);
    if (wp_shm_reserve(shm, wk_meta_size(api, md)) != 0)
        return -1;
    wp_writer w = {.base = shm->base};
    wp_meta *meta = wp_alloc(&w, sizeof *meta);
    wp_io *io = wp_alloc(&w, (size_t)(md->input_count + md->output_count) * sizeof *io);
    meta->api_flags = api->flags;
    meta->model_flags = md->flags;
    meta->input_count = md->input_count;
    meta->output_count = md->output_count;
    meta->name = wp_put_str(&w, api->name);
    meta->platform = wp_put_str(&w, md->platform);
    for (uint32_t i = 0; i < md->input_count; i++)
        wk_put_io(&w, &io[i], &md->inputs[i]);
    for (uint32_t i = 0; i < md->output_count; i++)
        wk_put_io(&w, &io[md->input_count + i], &md->outputs[i]);
    *used = w.pos;
    return 0;
}

static void wk_send_error(wp_shm *shm, const char *msg)
{
    size_t n = strlen(msg);
    if (wp_shm_reserve(shm, wp_str_size(n)) == 0) {
        memcpy(shm->base, msg, n + 1);
        wp_send(WP_FD_CTL, WP_INIT_ERR, 0, shm->size, (int32_t)n);
    } else {
        wp_send(WP_FD_CTL, WP_INIT_ERR, 0, 0, 0);
    }
}

/* ---- serving --------------------------------------------------------------------------- */

/* Grow the per-channel arrays a request is decoded into. 0 or -1. */
static int wk_chan_fit(wk_chan *c, uint32_t inputs, uint32_t requested)
{
    if (inputs > c->inputs_cap) {
        ds_tensor *t = realloc(c->inputs, inputs * sizeof *t);
        int64_t *s = t ? realloc(c->shapes, (size_t)inputs * DS_MAX_RANK * sizeof *s) : NULL;
        if (t != NULL)
            c->inputs = t;
        if (s == NULL)
            return -1;
        c->shapes = s;
        c->inputs_cap = inputs;
    }
    if (requested > c->requested_cap) {
        const char **r = realloc(c->requested, requested * sizeof *r);
        if (r == NULL)
            return -1;
        c->requested = r;
        c->requested_cap = requested;
    }
    return 0;
}

/* Turn the EXEC payload into the plugin's request, pointing into shared memory. 0 or -1. */
static int wk_decode(wk_chan *c, ds_infer_request *req, uint64_t *deadline_ns)
{
    const uint8_t *base = c->shm.base;
    size_t size = c->shm.size;
    int bad = 0;
    if (size < sizeof(wp_request))
        return -1;
    const wp_request *h = (const wp_request *)base;
    if (h->input_count > WP_MAX_IO || h->requested_count > WP_MAX_IO ||
        wk_chan_fit(c, h->input_count, h->requested_count) != 0)
        return -1;
    wp_span tspan = {wp_align(sizeof *h), (uint64_t)h->input_count * sizeof(wp_tensor)};
    wp_span rspan = {tspan.off + wp_align(tspan.len),
                     (uint64_t)h->requested_count * sizeof(wp_span)};
    const wp_tensor *ts = wp_bytes(base, size, tspan, &bad);
    const wp_span *rs = wp_bytes(base, size, rspan, &bad);
    if (bad)
        return -1;
    for (uint32_t i = 0; i < h->input_count; i++) {
        ds_tensor *t = &c->inputs[i];
        int64_t *shape = c->shapes + (size_t)i * DS_MAX_RANK;
        memcpy(shape, ts[i].shape, sizeof ts[i].shape);
        t->name = wp_str(base, size, ts[i].name, &bad);
        t->datatype = (ds_datatype)ts[i].datatype;
        t->rank = ts[i].rank > DS_MAX_RANK ? DS_MAX_RANK : ts[i].rank;
        t->shape = shape;
        t->data = wp_bytes(base, size, ts[i].data, &bad);
        t->byte_size = (size_t)ts[i].data.len;
        t->element_count = ts[i].element_count;
        t->parameters = wp_str(base, size, ts[i].parameters, &bad);
    }
    for (uint32_t i = 0; i < h->requested_count; i++)
        c->requested[i] = wp_str(base, size, rs[i], &bad);
    *req = (ds_infer_request){.struct_size = sizeof(ds_infer_request),
                              .id = wp_str(base, size, h->id, &bad),
                              .parameters = wp_str(base, size, h->parameters, &bad),
                              .input_count = h->input_count,
                              .inputs = c->inputs,
                              .requested_output_count = h->requested_count,
                              .requested_outputs = c->requested};
    *deadline_ns = h->deadline_ns;
    return bad ? -1 : 0;
}

/* Write status, message and outputs over the request; *used is the bytes written. 0 or -1. */
static int wk_encode(wk_chan *c, ds_status st, const ds_error *perr, size_t *used)
{
    const oip_response *r = &c->resp;
    uint32_t count = st == DS_OK ? r->count : 0;
    size_t need = wp_align(sizeof(wp_response)) + wp_align(count * sizeof(wp_tensor));
    for (uint32_t i = 0; i < count; i++)
        need += wp_str_size(strlen(r->outputs[i].name)) + wp_align(r->outputs[i].byte_size);
    if (wp_shm_reserve(&c->shm, need) != 0)
        return -1;
    wp_writer w = {.base = c->shm.base};
    wp_response *h = wp_alloc(&w, sizeof *h);
    wp_tensor *ts = wp_alloc(&w, count * sizeof *ts);
    h->status = (int32_t)st;
    h->output_count = count;
    memcpy(h->message, perr->message, sizeof h->message);
    h->message[sizeof h->message - 1] = '\0';
    for (uint32_t i = 0; i < count; i++) {
        const oip_output *o = &r->outputs[i];
        memset(&ts[i], 0, sizeof ts[i]);
        ts[i].name = wp_put_str(&w, o->name);
        ts[i].data = wp_put(&w, o->data, o->byte_size);
        ts[i].datatype = (int32_t)o->datatype;
        ts[i].rank = o->rank;
        memcpy(ts[i].shape, o->shape, sizeof ts[i].shape);
        ts[i].element_count = o->element_count;
    }
    *used = w.pos;
    return 0;
}

/* Arm (ms > 0) or disarm (ms == 0) the per-call CPU budget: SIGXCPU ends the process. */
static void wk_cpu_budget(wk_thread *t, int64_t ms)
{
    if (!t->has_timer)
        return;
    struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}};
    timer_settime(t->cpu_timer, 0, &its, NULL);
}

/* is_cancelled's client check in the worker (oip.h client_gone): has the server rung this
 * channel's cancel bell for the call it runs? Called by the channel's owner only (inside
 * execute). */
static bool wk_cancel_asked(void *ctx)
{
    wk_chan *c = ctx;
    return atomic_load_explicit(&c->bell->cancel, memory_order_acquire) == c->seq;
}

/* Enter (true) unless STOP came in; the destroy after STOP waits for every call to leave. */
static bool wk_call_enter(void)
{
    pthread_mutex_lock(&wk.calls_lock);
    bool ok = !wk.stopping;
    if (ok)
        wk.calls++;
    pthread_mutex_unlock(&wk.calls_lock);
    return ok;
}

static void wk_call_leave(void)
{
    pthread_mutex_lock(&wk.calls_lock);
    if (--wk.calls == 0)
        pthread_cond_broadcast(&wk.calls_done);
    pthread_mutex_unlock(&wk.calls_lock);
}

static ds_status wk_execute(wk_chan *c, wk_thread *t, const ds_infer_request *req,
                            uint64_t deadline_ns, ds_error *perr)
{
    oip_arena_reset(c->arena);
    oip_response_init(&c->resp, c->arena);
    c->resp.deadline_ns = deadline_ns;     /* is_cancelled in here sees the server's deadline */
    c->resp.client_gone = wk_cancel_asked; /* and the server's cancel bell for this call */
    c->resp.client_ctx = c;
    if (!wk_call_enter())
        return ds_error_set(perr, DS_ERR_UNAVAILABLE, "worker: stopping");
    const ds_plugin_api *api = loader_api(wk.plugin);
    uint32_t slot;
    void *instance = pool_acquire(wk.pool, &slot);
    wk_cpu_budget(t, wk.cpu_ms);
    ds_status st = api->execute(instance, req, &c->resp, perr);
    wk_cpu_budget(t, 0);
    pool_release(wk.pool, slot);
    wk_call_leave();
    perr->message[sizeof perr->message - 1] = '\0';
    return st;
}

static void wk_serve_one(wk_chan *c, wk_thread *t, uint32_t seq)
{
    ds_infer_request req;
    ds_error perr = {.code = DS_OK, .message = ""};
    ds_status st;
    uint64_t deadline_ns = 0;
    c->seq = seq;
    if (wp_shm_follow(&c->shm, c->bell->exec_size) != 0 || wk_decode(c, &req, &deadline_ns) != 0) {
        st = DS_ERR_INTERNAL;
        ds_error_set(&perr, st, "worker: malformed request from the server");
    } else {
        st = wk_execute(c, t, &req, deadline_ns, &perr);
    }
    size_t used = 0;
    if (wk_encode(c, st, &perr, &used) != 0) {
        st = DS_ERR_NO_MEMORY;
        ds_error_set(&perr, st, "worker: cannot grow shared memory for the outputs");
        c->resp.count = 0;
        if (wk_encode(c, st, &perr, &used) != 0)
            _exit(5);
    }
    wp_bell *bell = c->bell;
    bell->done_size = c->shm.size;
    atomic_store_explicit(&bell->done, seq, memory_order_release);
    wp_wake(&bell->done);
}

static void wk_thread_timer(wk_thread *t)
{
    if (wk.cpu_ms <= 0)
        return;
    clockid_t clk;
    struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGXCPU};
    sev._sigev_un._tid = gettid();
    if (pthread_getcpuclockid(pthread_self(), &clk) == 0 &&
        timer_create(clk, &sev, &t->cpu_timer) == 0)
        t->has_timer = true;
    else
        wk_say("cannot arm the per-call CPU limit: %s", strerror(errno));
}

static bool wk_waiting(const wk_chan *c)
{
    return atomic_load(&c->bell->exec) != atomic_load_explicit(&c->last, memory_order_relaxed);
}

/* Own the channel if a call waits on it: true with *seq set. Ownership (busy) makes one thread
 * serve it, and its acquire sees the previous owner's data area, arena and arrays. */
static bool wk_claim(wk_chan *c, uint32_t *seq)
{
    bool idle = false;
    if (!wk_waiting(c) || !atomic_compare_exchange_strong_explicit(
                              &c->busy, &idle, true, memory_order_acquire, memory_order_relaxed))
        return false;
    *seq = atomic_load_explicit(&c->bell->exec, memory_order_acquire);
    if (*seq == atomic_load_explicit(&c->last, memory_order_relaxed)) { /* another served it */
        atomic_store_explicit(&c->busy, false, memory_order_release);
        return false;
    }
    atomic_store_explicit(&c->bell->taken, *seq, memory_order_relaxed);
    return true;
}

static void *wk_thread_main(void *arg);

/* Start serving thread number `index`. 0 or -1 (out of memory or threads: the others serve). */
static int wk_thread_start(unsigned index)
{
    wk_thread *t = calloc(1, sizeof *t);
    pthread_attr_t attr;
    pthread_t tid;
    if (t == NULL)
        return -1;
    t->index = index;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, wk_thread_main, t);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        free(t);
    return rc == 0 ? 0 : -1;
}

/* A call is about to run and no thread is idle: start one more, so a call that blocks (a sleep,
 * I/O) leaves one to pick up the next. Threads are started only as calls need them because each
 * holds a stack of address space (8 MiB by default) under the worker's memory_limit_mb; one that
 * cannot start is not an error (the running ones serve, one call at a time each). */
static void wk_spare(void)
{
    if (atomic_load(&wk.idle) > 0)
        return;
    unsigned n = atomic_load(&wk.threads);
    while (n < wk.nchan && !atomic_compare_exchange_weak(&wk.threads, &n, n + 1))
        ;
    if (n < wk.nchan && wk_thread_start(n) != 0)
        atomic_fetch_sub(&wk.threads, 1);
}

/* Serve every channel with a call waiting, once round. true if any was served. */
static bool wk_serve_waiting(wk_thread *t)
{
    bool served = false;
    for (unsigned k = 0; k < wk.nchan; k++) {
        wk_chan *c = wk.chans[(t->index + k) % wk.nchan];
        uint32_t seq;
        if (!wk_claim(c, &seq))
            continue;
        wk_spare();
        wk_serve_one(c, t, seq);
        atomic_store_explicit(&c->last, seq, memory_order_relaxed);
        atomic_store_explicit(&c->busy, false, memory_order_release);
        served = true;
    }
    return served;
}

/* A call waiting on a channel nobody owns (an owner looks again after it lets go). */
static bool wk_any_waiting(void)
{
    for (unsigned i = 0; i < wk.nchan; i++)
        if (wk_waiting(wk.chans[i]) && !atomic_load(&wk.chans[i]->busy))
            return true;
    return false;
}

/* A serving thread: serve while calls wait, then sleep on the run queue. Going to sleep it
 * leaves `awake` first and looks at every channel after (both sequentially consistent, against
 * the server's ring bump and its look at `awake`: wk_ring in worker.c), so a call rung meanwhile
 * is either seen here or wakes a thread. A channel whose owner is still busy when its next call
 * comes is served by that owner's next round. */
static void *wk_thread_main(void *arg)
{
    wk_thread *t = arg;
    wk_thread_timer(t);
    /* The server gone closes the control socket, and wk_wait_ctl ends the process. */
    atomic_fetch_add(&wk.queue->awake, 1);
    for (;;) {
        if (wk_serve_waiting(t))
            continue;
        /* Nothing waits. Let the server threads that can run ring their calls first, to serve
         * them in this round rather than be woken once per call: on the server's CPU that is a
         * context switch per call fewer (bench/isolation), elsewhere a syscall. */
        sched_yield();
        if (wk_serve_waiting(t))
            continue;
        uint32_t ring = atomic_load(&wk.queue->ring);
        atomic_fetch_add(&wk.idle, 1);
        atomic_fetch_sub(&wk.queue->awake, 1);
        bool slept = !wk_any_waiting() && wp_wait(&wk.queue->ring, ring, -1) == 0;
        atomic_fetch_add(&wk.queue->awake, 1);
        atomic_fetch_sub(&wk.idle, 1);
        if (slept)
            sched_yield(); /* the same for the calls rung after the one that woke us */
    }
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------- */

static int wk_read_init(wp_shm *shm0, wp_init *in, char *config, size_t config_len, char *err,
                        size_t errlen)
{
    wp_msg m;
    if (wp_recv(WP_FD_CTL, &m, -1) != 1 || m.type != WP_INIT)
        return 3;
    if (wp_shm_attach(shm0, wp_fd_shm(0), 0) != 0 || shm0->size < sizeof *in ||
        wp_shm_follow(shm0, m.shm_size) != 0)
        return 4;
    memcpy(in, shm0->base, sizeof *in);
    int bad = 0;
    const char *name = wp_str(shm0->base, shm0->size, in->plugin_name, &bad);
    const char *cfg = wp_str(shm0->base, shm0->size, in->config_json, &bad);
    const char *model = wp_str(shm0->base, shm0->size, in->model_name, &bad);
    const char *version = wp_str(shm0->base, shm0->size, in->model_version, &bad);
    const char *dep = wp_str(shm0->base, shm0->size, in->deployment_id, &bad);
    const char *artifact = wp_str(shm0->base, shm0->size, in->artifact_dir, &bad);
    if (bad || in->channels == 0 || in->channels > WP_MAX_CHANNELS ||
        in->instance_count > POOL_MAX_INSTANCES || (cfg != NULL && strlen(cfg) >= config_len)) {
        snprintf(err, errlen, "malformed INIT");
        return 4;
    }
    snprintf(wk.plugin_name, sizeof wk.plugin_name, "%s", name ? name : "?");
    snprintf(wk.model_name, sizeof wk.model_name, "%s", model ? model : "");
    snprintf(wk.model_version, sizeof wk.model_version, "%s", version ? version : "");
    snprintf(wk.dep.label, sizeof wk.dep.label, "%s", dep ? dep : "(worker)");
    snprintf(wk.artifact_name, sizeof wk.artifact_name, "%s", artifact ? artifact : "");
    if (in->has_artifact)
        snprintf(wk.artifact_fd_path, sizeof wk.artifact_fd_path, "/proc/self/fd/%d",
                 wp_fd_artifact(in->channels));
    wk.instance_count = in->instance_count ? in->instance_count : 1;
    snprintf(config, config_len, "%s", cfg ? cfg : "{}");
    snprintf(wk.fd_path, sizeof wk.fd_path, "/proc/self/fd/%d", wp_fd_plugin(in->channels));
    wk.cpu_ms = in->cpu_ms_per_call;
    return 0;
}

/* Map every channel (channel 0 reuses shm0), then start a serving thread per CPU we may run on
 * (at most one per channel; more start as calls need them: wk_spare). 0 or -1 (the process then
 * ends: nothing to free). */
static int wk_start_channels(const wp_init *in, wp_shm *shm0)
{
    for (unsigned i = 0; i < in->channels; i++) {
        wk_chan *c = calloc(1, sizeof *c);
        if (c == NULL || (c->arena = oip_arena_new()) == NULL)
            return -1;
        oip_response_init(&c->resp, c->arena);
        if (i == 0)
            c->shm = *shm0;
        else if (wp_shm_attach(&c->shm, wp_fd_shm(i), 0) != 0)
            return -1;
        if ((c->bell = wp_bell_map(c->shm.fd)) == NULL)
            return -1;
        wk.chans[wk.nchan++] = c;
    }
    wk.queue = wk.chans[0]->bell;
    unsigned first = wp_run_cpus(wk.nchan);
    for (unsigned i = 0; i < first; i++) {
        if (wk_thread_start(i) != 0)
            return i == 0 ? -1 : 0; /* one is enough to serve */
        atomic_fetch_add(&wk.threads, 1);
    }
    return 0;
}

/* The main thread after INIT_OK: wait for STOP or for the server to go away. */
static int wk_wait_ctl(void)
{
    for (;;) {
        wp_msg m;
        int r = wp_recv(WP_FD_CTL, &m, -1);
        if (r <= 0)
            _exit(0);
        if (m.type == WP_STOP) {
            /* destroy() only after the last execute(); a call that never returns keeps us
             * here until the server's grace period ends and it kills us */
            pthread_mutex_lock(&wk.calls_lock);
            wk.stopping = true;
            while (wk.calls > 0)
                pthread_cond_wait(&wk.calls_done, &wk.calls_lock);
            pthread_mutex_unlock(&wk.calls_lock);
            pool_free(wk.pool);
            _exit(0); /* no dlclose: other threads may still be inside the plugin */
        }
    }
}

int worker_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static char config[1 << 20];
    char err[1024] = "";
    wp_init in;
    wp_shm shm0 = {.fd = -1};
    pthread_mutex_init(&wk.calls_lock, NULL);
    pthread_cond_init(&wk.calls_done, NULL);
    /* Nothing of the server's but our own descriptors: a descriptor some library left without
     * FD_CLOEXEC must not reach plugin code. */
    close_range(WP_FD_LAST + 1, ~0u, 0);
    int rc = wk_read_init(&shm0, &in, config, sizeof config, err, sizeof err);
    if (rc != 0) {
        wk_say("%s", err[0] ? err : "no INIT from the server");
        return rc;
    }
    close_range(
        (unsigned)(in.has_artifact ? wp_fd_artifact(in.channels) : wp_fd_plugin(in.channels)) + 1,
        WP_FD_LAST, 0);
    if (wk_confine(&in, err, sizeof err) != 0 || wk_load(config, err, sizeof err) != 0) {
        wk_send_error(&shm0, err);
        return 0;
    }
    size_t used = 0;
    if (wk_write_meta(&shm0, &used) != 0) {
        wk_send_error(&shm0, "worker: cannot grow shared memory for the metadata");
        return 0;
    }
    if (in.probe) {
        pool_free(wk.pool);
        loader_close(wk.plugin);
        wp_send(WP_FD_CTL, WP_INIT_OK, 0, shm0.size, (int32_t)used);
        return 0;
    }
    if (wk_start_channels(&in, &shm0) != 0) {
        wk_send_error(&shm0, "worker: cannot start its channel threads");
        return 0;
    }
    if (wp_send(WP_FD_CTL, WP_INIT_OK, 0, shm0.size, (int32_t)used) != 0)
        return 3;
    return wk_wait_ctl();
}
