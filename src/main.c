/*
 * main: process startup and shutdown.
 *
 *   config -> data dir -> registry (migrations) -> plugin store -> model repository registered
 *   -> HTTP server + routes -> deployments restored -> ready -> wait for SIGINT/SIGTERM
 *   -> stop HTTP (in-flight requests finish) -> unload deployments (stats flushed) -> registry
 *
 * Exit codes: 0 clean stop, 1 startup failure (one line on stderr), 2 bad command line.
 */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifact.h"
#include "auth.h"
#include "auth_http.h"
#include "cluster.h"
#include "config.h"
#include "blobs.h"
#include "crash_journal.h"
#include "ctl.h"
#include "deploy.h"
#include "host.h"
#include "isotime.h"
#include "jobs.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "manage.h"
#include "names.h"
#include "oip.h"
#include "plugin_file.h"
#include "ratelimit.h"
#include "registry.h"
#include "serve.h"
#include "shadow.h"
#include "store.h"
#include "worker.h"
#include "worker_main.h"

/* Registration probes a plugin in a worker process; this long at most (load + create). */
#define MAIN_PROBE_TIMEOUT_MS 10000
#include "token_cmd.h"

/* The long-lived state of the process, in one struct (redis's `server`); main builds it and
 * hands each module only the part it needs (serve_ctx, manage_ctx, deploy_env).
 * Thread-safety: the pointers are set before the HTTP server starts and never change while it
 * runs; serve.ready is atomic. */
typedef struct ds_server {
    ds_config cfg;
    registry *reg;
    http_server *http;
    deploy_manager *deploy;
    auth *auth;              /* tokens, JWT, the route table; the HTTP server's guard */
    serve_ctx serve;         /* the data path's view: deploy + ready */
    manage_ctx manage;       /* the management API's view */
    bool had_crash;          /* the last stop was a crash inside an in-process plugin ... */
    crash_record crash;      /* ... of this deployment, by this signal (crash_journal.h) */
    jobs *jobs;              /* async inference (serve/jobs.h) */
    shadow *shadow;          /* shadow-traffic copies (serve/shadow.h) */
    plugin_dirs plugin_dirs; /* where POST /models may read plugin paths (plugin_file.h) */
    rl_table *client_limits; /* --rate-limit per client, or NULL */
    cluster *cluster;        /* reconcile + heartbeat with the registry (cluster/cluster.h) */
    char replica_id[REG_REPLICA_ID_MAX + 1];
    char advertise_url[REG_ADDRESS_MAX + 1];
} ds_server;

/* ---- model repository ------------------------------------------------------------------------ */

/* snprintf that reports truncation: a path that does not fit is skipped, never cut short. */
static bool main_path(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool main_path(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

/* The plugin file of a repository version directory: model.so, else the only *.so. */
static bool main_find_plugin(const char *dir, char *out, size_t len)
{
    if (main_path(out, len, "%s/model.so", dir) && access(out, R_OK) == 0)
        return true;
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 3 && strcmp(e->d_name + n - 3, ".so") == 0 && found++ == 0 &&
            !main_path(out, len, "%s/%s", dir, e->d_name))
            found = 2; /* too long: treat as ambiguous */
    }
    closedir(d);
    return found == 1;
}

/* Optional DIR/<model>/<version>/config.json; malloc'd text or NULL. */
static char *main_read_config(const char *dir)
{
    char path[PATH_MAX];
    FILE *f = main_path(path, sizeof path, "%s/config.json", dir) ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return NULL;
    char *text = calloc(1, 65537);
    size_t n = text ? fread(text, 1, 65536, f) : 0;
    fclose(f);
    if (text != NULL)
        text[n] = '\0';
    return text;
}

/* Register a repository version made of files (Triton's layout: config.json naming a backend
 * and the model files). Idempotent: an already registered version is kept as it is. */
static void main_register_model_dir(ds_server *s, const char *model, const char *version,
                                    const char *dir)
{
    char err[768];
    reg_version existing = {0};
    if (registry_version_get(s->reg, model, version, &existing, err, sizeof err) == REG_OK) {
        reg_version_free(&existing);
        return;
    }
    manage_ctx ctx = {.cfg = &s->cfg, .reg = s->reg, .host = plugin_host_api()};
    int status = manage_register_model_dir(&ctx, model, version, dir, err, sizeof err);
    if (status != 201)
        log_warn("model repository: skipping %s version %s: %s", model, version, err);
    else {
        log_info("registered %s version %s from %s", model, version, dir);
        registry_event_add(s->reg, "register", model, version, NULL, err, sizeof err);
    }
}

/* Register one repository version; idempotent: same name, version and bytes is a no-op. */
static void main_register_version(ds_server *s, const char *model, const char *version,
                                  const char *dir)
{
    char plugin[PATH_MAX], sha[STORE_SHA256_HEX], stored[PATH_MAX], err[512];
    if (!name_valid(model) || !name_valid(version))
        return;
    /* A .so makes a plugin version (a config.json beside it is the plugin's config); a
     * config.json alone names a backend for the model files next to it. */
    if (!main_find_plugin(dir, plugin, sizeof plugin)) {
        if (artifact_is_version_dir(dir))
            main_register_model_dir(s, model, version, dir);
        return;
    }
    if (store_sha256_file(plugin, sha, err, sizeof err) != 0) {
        log_warn("model repository: %s", err);
        return;
    }
    reg_version existing = {0};
    if (registry_version_get(s->reg, model, version, &existing, err, sizeof err) == REG_OK) {
        if (strcmp(existing.sha256, sha) != 0)
            log_warn("model repository: %s version %s changed on disk; the registered plugin "
                     "is kept (versions are immutable: register a new version)",
                     model, version);
        reg_version_free(&existing);
        return;
    }
    char *config = main_read_config(dir);
    if (store_import_file(s->cfg.data_dir, plugin, sha, stored, sizeof stored, err, sizeof err) ||
        worker_probe(stored, config, MAIN_PROBE_TIMEOUT_MS, err, sizeof err) ||
        deploy_blobs_publish_plugin(s->reg, stored, sha, err, sizeof err) ||
        registry_version_add(s->reg, model, version, stored, sha, config ? config : "{}", err,
                             sizeof err) != REG_OK) {
        log_warn("model repository: skipping %s version %s: %s", model, version, err);
    } else {
        log_info("registered %s version %s from %s", model, version, plugin);
        registry_event_add(s->reg, "register", model, version, NULL, err, sizeof err);
    }
    free(config);
}

/* Sorted directory entries that do not start with '.'; *out freed with main_free_names. */
static int main_visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void main_free_names(struct dirent **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Registers in sorted order (models, then versions) so listings read in a stable order. */
static void main_register_repository(ds_server *s)
{
    const char *root = s->cfg.model_repository;
    struct dirent **models;
    int nm = scandir(root, &models, main_visible, alphasort);
    if (nm < 0) {
        log_warn("model repository %s: %s", root, strerror(errno));
        return;
    }
    for (int i = 0; i < nm; i++) {
        char mdir[PATH_MAX];
        struct dirent **versions = NULL;
        int nv = main_path(mdir, sizeof mdir, "%s/%s", root, models[i]->d_name)
                     ? scandir(mdir, &versions, main_visible, versionsort)
                     : -1;
        for (int j = 0; j < nv; j++) {
            char vdir[PATH_MAX];
            if (main_path(vdir, sizeof vdir, "%s/%s", mdir, versions[j]->d_name))
                main_register_version(s, models[i]->d_name, versions[j]->d_name, vdir);
        }
        if (nv >= 0)
            main_free_names(versions, nv);
    }
    main_free_names(models, nm);
}

/* ---- startup -------------------------------------------------------------------------------- */

/* mkdir -p: create dir and any missing parents. 0, or -1 with errno set. */
static int main_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (!main_path(path, sizeof path, "%s", dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static int main_open_data_dir(ds_server *s)
{
    const char *dir = s->cfg.data_dir;
    struct stat st;
    if (main_mkdirs(dir) != 0) {
        fprintf(stderr, "dynserve: cannot create data dir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "dynserve: data dir %s is not a writable directory\n", dir);
        return -1;
    }
    /* The registry and the plugins are the server's secrets and code: nobody else reads them. */
    if ((st.st_mode & 077) != 0) {
        if (chmod(dir, 0700) == 0)
            log_info("data dir %s was mode %03o; made it 0700", dir, st.st_mode & 0777);
        else
            log_warn("data dir %s is mode %03o and cannot be made 0700: %s", dir, st.st_mode & 0777,
                     strerror(errno));
    }
    char err[512], path[PATH_MAX];
    if (store_init(dir, err, sizeof err) != 0 || artifact_init(dir, err, sizeof err) != 0) {
        fprintf(stderr, "dynserve: %s\n", err);
        return -1;
    }
    if (s->cfg.registry[0])
        snprintf(path, sizeof path, "%s", s->cfg.registry);
    else if (!main_path(path, sizeof path, "%s/registry.db", dir)) {
        fprintf(stderr, "dynserve: data dir path too long\n");
        return -1;
    }
    char shown[PATH_MAX];
    registry_redact_target(path, shown, sizeof shown); /* a URI may carry a password */
    if (registry_open(path, &s->reg, err, sizeof err) != REG_OK) {
        fprintf(stderr, "dynserve: registry %s: %s\n", shown, err);
        return -1;
    }
    log_info("registry: %s (%s)", shown, registry_backend_name(s->reg));
    if (crash_journal_open(dir, err, sizeof err) != 0) {
        fprintf(stderr, "dynserve: crash journal: %s\n", err);
        return -1;
    }
    s->had_crash = crash_journal_take(&s->crash);
    crash_journal_install();
    return 0;
}

static int main_start_http(ds_server *s)
{
    char listen[128], err[512] = "";
    const char *host = s->cfg.host;
    if (strchr(host, ':') != NULL)
        snprintf(listen, sizeof listen, "[%s]:%d", host, s->cfg.port);
    else
        snprintf(listen, sizeof listen, "%s:%d", host, s->cfg.port);
    bool tls = s->cfg.tls_cert[0] != '\0';
    http_config hc = {.listen = listen,
                      .threads = s->cfg.threads,
                      .max_body_bytes = (size_t)s->cfg.max_body_bytes,
                      .max_response_bytes = (size_t)s->cfg.max_response_bytes,
                      .body_align_header = "Inference-Header-Content-Length",
                      .request_timeout_ms = s->cfg.request_timeout_ms,
                      .header_timeout_ms = s->cfg.header_timeout_ms,
                      .max_conns_per_client = s->cfg.max_conns_per_client,
                      .client_limits = s->client_limits,
                      .keep_alive_ms = s->cfg.keep_alive_ms,
                      .web_root = s->cfg.web_root,
                      .tls_cert = tls ? s->cfg.tls_cert : NULL,
                      .tls_key = tls ? s->cfg.tls_key : NULL,
                      .guard = auth_http_guard,
                      .guard_cbdata = s->auth};
    if (http_start(&hc, &s->http, err, sizeof err) != 0) {
        fprintf(stderr, "dynserve: cannot listen on %s: %s\n", listen, err);
        return -1;
    }
    return 0;
}

/* This replica's id and address: --replica-id / --advertise-url, else <hostname>-<port> and
 * http(s)://<host>:<port> (the hostname when listening on every address). */
static void main_replica_names(ds_server *s)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    int port = http_port(s->http);
    const char *scheme = s->cfg.tls_cert[0] ? "https" : "http";
    if (s->cfg.replica_id[0])
        snprintf(s->replica_id, sizeof s->replica_id, "%s", s->cfg.replica_id);
    else
        snprintf(s->replica_id, sizeof s->replica_id, "%.100s-%d", host, port);
    for (char *p = s->replica_id; *p; p++) /* a hostname may hold characters an id may not */
        if (!(isalnum((unsigned char)*p) || strchr("_.:-", *p)))
            *p = '_';
    const char *h = s->cfg.host;
    bool any = strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
    if (s->cfg.advertise_url[0])
        snprintf(s->advertise_url, sizeof s->advertise_url, "%s", s->cfg.advertise_url);
    else if (strchr(any ? host : h, ':') != NULL)
        snprintf(s->advertise_url, sizeof s->advertise_url, "%s://[%.200s]:%d", scheme, h, port);
    else
        snprintf(s->advertise_url, sizeof s->advertise_url, "%s://%.200s:%d", scheme,
                 any ? host : h, port);
}

/* Reconcile with the registry and heartbeat into it from now on. 0, or -1 (one line on stderr:
 * a bad --replica-id or --advertise-url, or the registry refused the first heartbeat). */
static int main_start_cluster(ds_server *s)
{
    cluster_config cc = {.reg = s->reg,
                         .deploy = s->deploy,
                         .replica_id = s->replica_id,
                         .address = s->advertise_url,
                         .version = DYNSERVE_VERSION,
                         .full_ms = s->cfg.reconcile_ms};
    char err[512];
    if (cluster_start(&cc, &s->cluster, err, sizeof err) != 0) {
        fprintf(stderr, "dynserve: replica %s: %s\n", s->replica_id, err);
        return -1;
    }
    return 0;
}

/* manage_ctx.metrics_more: the async jobs' /metrics families (manage may not see serve/). */
static void main_jobs_metrics(void *ud, ds_buf *out)
{
    if (ud != NULL)
        jobs_metrics(ud, out);
}

static int main_start_deployments(ds_server *s)
{
    main_replica_names(s);
    deploy_env env = {.reg = s->reg,
                      .router = serve_router(s->http),
                      .host = plugin_host_api(),
                      .default_isolation = strcmp(s->cfg.isolation, "process") == 0
                                               ? DS_ISOLATION_PROCESS
                                               : DS_ISOLATION_INPROC,
                      .default_timeout_ms = s->cfg.default_timeout_ms,
                      .drain_timeout_ms = s->cfg.drain_timeout_ms,
                      .default_max_in_flight = s->cfg.default_max_in_flight,
                      .max_inference_threads =
                          s->cfg.thread_reserve > 0 ? s->cfg.threads - s->cfg.thread_reserve : 0,
                      .had_crash = s->had_crash,
                      .crash = s->crash};
    snprintf(env.data_dir, sizeof env.data_dir, "%s", s->cfg.data_dir);
    snprintf(env.backend_dir, sizeof env.backend_dir, "%s", s->cfg.backend_dir);
    if (deploy_manager_new(&env, &s->deploy) != 0) {
        fprintf(stderr, "dynserve: out of memory at startup\n");
        return -1;
    }
    jobs_config jc = {.workers = s->cfg.async_workers,
                      .max_queued = (size_t)s->cfg.async_max_queued,
                      .max_kept = (size_t)s->cfg.async_max_kept,
                      .max_bytes = (size_t)s->cfg.async_max_bytes,
                      .retention_s = s->cfg.async_retention_s};
    if (jobs_new(&jc, s->deploy, &s->jobs) != 0 ||
        shadow_new((size_t)s->cfg.shadow_max_queue, s->cfg.shadow_workers, s->deploy, &s->shadow) !=
            0) {
        fprintf(stderr, "dynserve: out of memory or threads at startup\n");
        return -1;
    }
    infer_set_shadow(s->shadow);
    s->serve.jobs = s->jobs;
    s->serve.deploy = s->deploy;
    s->manage = (manage_ctx){.cfg = &s->cfg,
                             .reg = s->reg,
                             .deploy = s->deploy,
                             .http = s->http,
                             .host = plugin_host_api(),
                             .plugin_dirs = &s->plugin_dirs,
                             .auth = s->auth,
                             .replica_id = s->replica_id,
                             .metrics_more = main_jobs_metrics,
                             .metrics_more_ud = s->jobs};
    s->serve.repository = manage_repository;
    s->serve.repository_ctx = &s->manage;
    if (serve_register(s->http, &s->serve) != 0 || manage_register_routes(&s->manage) != 0) {
        fprintf(stderr, "dynserve: out of memory at startup\n");
        return -1;
    }
    int restored = deploy_restore(s->deploy);
    log_info("restored %d deployment%s", restored, restored == 1 ? "" : "s");
    return 0;
}

/* Tokens and keys, and the safe default: without them, loopback only unless --insecure. */
static int main_start_auth(ds_server *s)
{
    const ds_config *c = &s->cfg;
    bool loopback = auth_address_is_loopback(c->host);
    auth_config ac = {.jwt_hs256_secret_file = c->jwt_hs256_secret_file,
                      .jwt_rs256_public_key = c->jwt_rs256_public_key,
                      .jwt_role_claim = c->jwt_role_claim,
                      .jwt_issuer = c->jwt_issuer,
                      .jwt_audience = c->jwt_audience,
                      .infer_auth_required = strcmp(c->infer_auth, "required") == 0,
                      .cors_origins = c->cors_origin,
                      .admin_token_file = c->admin_token_file,
                      .loopback_listener = loopback,
                      .tls = c->tls_cert[0] != '\0'};
    char err[512];
    if (auth_new(&ac, s->reg, &s->auth, err, sizeof err) != 0) {
        fprintf(stderr, "dynserve: %s\n", err);
        return -1;
    }
    bool on = auth_enabled(s->auth);
    if (!on && !loopback && !c->insecure) {
        fprintf(stderr,
                "dynserve: refusing to listen on %s with no authentication: anyone who reaches "
                "it could upload and run code. Create a token first (dynserve token create "
                "--role admin --name NAME --data-dir %s), or give --admin-token-file or a JWT key "
                "(--jwt-hs256-secret-file, --jwt-rs256-public-key); --insecure starts anyway\n",
                c->host, c->data_dir);
        return -1;
    }
    if (!on && !loopback)
        log_warn("--insecure: listening on %s with no authentication; anyone who can reach it "
                 "can register and run code on this machine",
                 c->host);
    else if (!on)
        log_info("no API tokens and no JWT key: every route is open, so the server answers on "
                 "loopback (%s) only and refuses other Host names",
                 c->host);
    else if (!loopback && c->tls_cert[0] == '\0')
        log_warn("listening on %s without TLS: bearer tokens cross the network in clear text "
                 "(use --tls-cert/--tls-key or a TLS proxy)",
                 c->host);
    return 0;
}

/* ---- running -------------------------------------------------------------------------------- */

/* --event-retention-days: delete the events older than that, a few short transactions per
 * call (other writers go between them). true while older ones are left, so the caller comes
 * back the next second instead of the next hour. */
static bool main_prune_events(ds_server *s)
{
    enum { BATCH = 10000, BATCHES_PER_CALL = 20 };
    char before[ISO_TIME_LEN], err[256];
    if (iso_time_format(time(NULL) - (time_t)s->cfg.event_retention_days * 86400, before,
                        sizeof before) != 0)
        return false;
    int64_t total = 0, n = BATCH;
    for (int i = 0; i < BATCHES_PER_CALL && n == BATCH; i++) {
        if (registry_events_prune(s->reg, before, BATCH, &n, err, sizeof err) != REG_OK) {
            log_warn("event retention: %s", err);
            return false;
        }
        total += n;
    }
    if (total > 0)
        log_info("event retention: deleted %lld events recorded before %s", (long long)total,
                 before);
    return n == BATCH;
}

/* Waits for SIGINT/SIGTERM with sigtimedwait (the signals are blocked in every thread, so no
 * async handler runs). Meanwhile, once a second: canary guards; every stats_flush_s: stats;
 * with --event-retention-days, a second after start and then hourly: old events. */
static void main_wait_for_stop(ds_server *s, const sigset_t *stop)
{
    const struct timespec second = {.tv_sec = 1, .tv_nsec = 0};
    int since_flush = 0;
    int prune_in = 0; /* seconds to the next retention pass: the first one right after start */
    for (;;) {
        int sig = sigtimedwait(stop, NULL, &second);
        if (sig == SIGINT || sig == SIGTERM) {
            log_info("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
        deploy_tick(s->deploy);
        auth_tick(s->auth);
        if (++since_flush >= s->cfg.stats_flush_s) {
            deploy_flush_stats(s->deploy);
            since_flush = 0;
        }
        if (s->cfg.event_retention_days > 0 && --prune_in <= 0)
            prune_in = main_prune_events(s) ? 1 : 3600;
    }
}

/* Shutdown is bounded: a plugin call that never returns would hold CivetWeb's mg_stop (it joins
 * every worker thread) forever. Past drain_timeout_ms + 5 s the process leaves without it; the
 * registry is transactional, so this is no worse than a crash. */
static void *main_shutdown_watchdog(void *arg)
{
    const ds_server *s = arg;
    int ms = s->cfg.drain_timeout_ms + 5000;
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
    log_error("shutdown did not finish within %d ms (a plugin call never returned); exiting", ms);
    _exit(0);
}

static void main_arm_shutdown_watchdog(ds_server *s)
{
    pthread_t t;
    if (pthread_create(&t, NULL, main_shutdown_watchdog, s) == 0)
        pthread_detach(t);
}

/* --plugin-dir (default: the model repository) plus <data-dir>/import, and --rate-limit. 0, or
 * -1 with a message (a bad command line). */
static int main_setup_limits(ds_server *s, char *err, size_t errlen)
{
    char import[PATH_MAX + 16];
    snprintf(import, sizeof import, "%s/import", s->cfg.data_dir);
    const char *dirs = s->cfg.plugin_dirs[0] ? s->cfg.plugin_dirs : s->cfg.model_repository;
    if (plugin_dirs_add(&s->plugin_dirs, dirs, err, errlen) != 0 ||
        plugin_dirs_add(&s->plugin_dirs, import, err, errlen) != 0)
        return -1;
    rl_limit limit = {0};
    if (s->cfg.rate_limit[0] && rl_parse(s->cfg.rate_limit, &limit, err, errlen) != 0)
        return -1;
    if (rl_active(limit) && (s->client_limits = rl_table_new(limit, 4096)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return ctl_main(argc - 1, argv + 1); /* the command-line client (src/ctl/) */
    static ds_server server;                 /* the process's one server; see ds_server above */
    ds_server *s = &server;
    char err[512];
    umask(077); /* the registry, the WAL and stored plugins are readable by this user only */
    if (argc > 1 && strcmp(argv[1], "worker") == 0)
        return worker_main(argc - 1, argv + 1); /* spawned by the server: see worker_main.c */
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return token_cmd_main(argc - 1, argv + 1);
    switch (config_parse(argc, argv, &s->cfg, err, sizeof err)) {
    case CONFIG_EXIT: return 0;
    case CONFIG_ERROR: fprintf(stderr, "dynserve: %s\n", err); return 2;
    case CONFIG_OK: break;
    }
    if (main_setup_limits(s, err, sizeof err) != 0) {
        fprintf(stderr, "dynserve: %s\n", err);
        return 2;
    }
    log_set_level((enum log_level)log_level_parse(s->cfg.log_level));
    oip_limits limits = oip_default_limits;
    limits.max_elements = (uint64_t)s->cfg.max_elements;
    limits.max_depth = (uint32_t)s->cfg.max_depth;
    infer_set_limits(&limits);

    /* Block the stop signals before any thread starts so that they all inherit the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    http_global_init();
    int rc = 1;
    if (main_open_data_dir(s) == 0 && main_start_auth(s) == 0) {
        main_register_repository(s);
        if (main_start_http(s) == 0) {
            if (main_start_deployments(s) == 0 && main_start_cluster(s) == 0) {
                atomic_store(&s->serve.ready, true);
                log_info("dynserve %s listening on %s://%s:%d, data in %s, replica %s",
                         DYNSERVE_VERSION, s->cfg.tls_cert[0] ? "https" : "http", s->cfg.host,
                         http_port(s->http), s->cfg.data_dir, s->replica_id);
                main_wait_for_stop(s, &stop);
                main_arm_shutdown_watchdog(s);
                rc = 0;
            }
            cluster_stop(s->cluster); /* its passes add and remove routes: before HTTP stops */
            http_stop(s->http);       /* in-flight requests finish; no handler runs after this */
            if (s->deploy != NULL)
                deploy_manager_router_stopped(s->deploy);
        }
        /* Before the deployments go: running jobs and shadow copies hold references. */
        jobs_free(s->jobs);
        shadow_free(s->shadow);
        deploy_manager_free(s->deploy); /* flushes stats, destroys instances, dlcloses */
    }
    auth_free(s->auth); /* saves last-use times; no guard runs after http_stop */
    registry_close(s->reg);
    http_global_cleanup();
    plugin_dirs_free(&s->plugin_dirs);
    rl_table_free(s->client_limits);
    return rc;
}
