/* config: command line + environment parsing from one table. See config.h. */
#include "config.h"

#include "log.h"
#include "ratelimit.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <libgen.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum opt_type { OPT_STR, OPT_LIST, OPT_INT, OPT_I64, OPT_BOOL };

typedef struct opt {
    const char *flag; /* without "--" */
    enum opt_type type;
    size_t offset;
    size_t size;      /* for OPT_STR: buffer size */
    int64_t min, max; /* for numbers */
    const char *help;
} opt;

#define STR(field)               OPT_STR, offsetof(ds_config, field), sizeof(((ds_config *)0)->field), 0, 0
#define NUM(type, field, lo, hi) type, offsetof(ds_config, field), 0, lo, hi
#define LIST(field)              OPT_LIST, offsetof(ds_config, field), sizeof(((ds_config *)0)->field), 0, 0
#define BOOL(field)              OPT_BOOL, offsetof(ds_config, field), 0, 0, 1

static const opt options[] = {
    {"host", STR(host),
     "address to listen on (default 127.0.0.1; another needs a token, a JWT key or --insecure)"},
    {"port", NUM(OPT_INT, port, 0, 65535), "TCP port (default 8080; 0 picks a free one)"},
    {"data-dir", STR(data_dir), "registry and plugin store directory (default ./data)"},
    {"registry", STR(registry),
     "the registry: a SQLite file, or postgres://USER@HOST/DB for one PostgreSQL database shared "
     "by several replicas (default <data-dir>/registry.db)"},
    {"model-repository", STR(model_repository),
     "register every DIR/<model>/<version>/ holding a plugin or a config.json (default <bin "
     "dir>/models)"},
    {"backend-dir", STR(backend_dir),
     "backend plugins, DIR/<name>/libdynserve_<name>.so (default <bin dir>/backends)"},
    {"web-root", STR(web_root), "dashboard files (default <bin dir>/web)"},
    {"threads", NUM(OPT_INT, threads, 2, 4096),
     "worker threads = keep-alive connections served at once (default 64)"},
    {"max-body-bytes", NUM(OPT_I64, max_body_bytes, 64, INT64_MAX / 2),
     "largest request body; larger gets 413 (default 67108864)"},
    {"max-response-bytes", NUM(OPT_I64, max_response_bytes, 4096, INT64_MAX / 2),
     "largest response body; a larger one is refused with 413 (default 134217728)"},
    {"max-upload-bytes", NUM(OPT_I64, max_upload_bytes, 1, INT64_MAX / 2),
     "largest uploaded plugin; larger gets 413 (default 268435456)"},
    {"request-timeout-ms", NUM(OPT_INT, request_timeout_ms, 100, 3600000),
     "drop a request that has not arrived whole after this (default 30000)"},
    {"header-timeout-ms", NUM(OPT_INT, header_timeout_ms, 100, 3600000),
     "drop a client that has not sent its request headers after this (default 10000)"},
    {"max-conns-per-client", NUM(OPT_INT, max_conns_per_client, 0, 1000000),
     "connections one client address may hold; 0 = no cap (default 32)"},
    {"plugin-dir", LIST(plugin_dirs),
     "directory POST /models may register plugin paths from; repeatable or a comma list "
     "(default: the model repository; <data-dir>/import always)"},
    {"rate-limit", STR(rate_limit),
     "requests per second (and burst) per API token or client address: RPS[:BURST] (default off)"},
    {"keep-alive-ms", NUM(OPT_INT, keep_alive_ms, 0, 3600000),
     "close idle keep-alive connections after this (default 5000)"},
    {"max-elements", NUM(OPT_I64, max_elements, 1, INT64_MAX / 2),
     "most tensor elements in one request (default 67108864)"},
    {"max-depth", NUM(OPT_INT, max_depth, 2, 1024), "deepest JSON nesting (default 32)"},
    {"stats-flush-s", NUM(OPT_INT, stats_flush_s, 1, 86400),
     "how often lifetime stats are saved to the registry (default 10)"},
    {"event-retention-days", NUM(OPT_INT, event_retention_days, 0, 36500),
     "delete registry events (GET /deployments/events, the audit log) older than this many "
     "days, checked hourly; 0 = keep every event (default 0)"},
    {"log-level", STR(log_level), "error, warn, info or debug (default info)"},
    {"isolation", STR(isolation),
     "where a deployment's plugin runs unless it says: inproc or process (default inproc)"},
    {"default-timeout-ms", NUM(OPT_INT, default_timeout_ms, 0, 3600000),
     "request deadline of deployments without timeout_ms; 0 = none (default 0)"},
    {"default-max-in-flight", NUM(OPT_INT, default_max_in_flight, 0, 100000),
     "max_in_flight of deployments without one; 0 = no limit (default threads / 2)"},
    {"thread-reserve", NUM(OPT_INT, thread_reserve, 0, 100000),
     "worker threads inference never takes, whatever the deployments' limits: beyond threads "
     "minus this, inference answers 503; 0 = no cap (default threads / 8, at least 1)"},
    {"drain-timeout-ms", NUM(OPT_INT, drain_timeout_ms, 1, 3600000),
     "undeploy/shutdown wait for in-flight calls before giving up on them (default 10000)"},
    {"async-workers", NUM(OPT_INT, async_workers, 1, 256),
     "threads running async inference jobs (default 2)"},
    {"async-max-queued", NUM(OPT_I64, async_max_queued, 1, 10000000),
     "async jobs queued or running before 429 (default 1000)"},
    {"async-max-kept", NUM(OPT_I64, async_max_kept, 1, 10000000),
     "finished async jobs kept for GET /v2/jobs/<id> (default 10000)"},
    {"async-max-bytes", NUM(OPT_I64, async_max_bytes, 1048576, 1099511627776),
     "bytes of queued async requests plus kept results (default 536870912, 512 MiB); a job "
     "that does not fit evicts the oldest results, or is refused with 429"},
    {"async-retention-s", NUM(OPT_INT, async_retention_s, 1, 604800),
     "seconds a finished async job is kept (default 600)"},
    {"shadow-max-queue", NUM(OPT_I64, shadow_max_queue, 1, 10000000),
     "shadow copies waiting to run before new ones are dropped (default 1000)"},
    {"shadow-workers", NUM(OPT_INT, shadow_workers, 1, 256),
     "threads running shadow copies (default 1)"},
    {"insecure", BOOL(insecure),
     "allow a non-loopback --host with no token or JWT key: anyone who reaches it may do anything"},
    {"tls-cert", STR(tls_cert), "serve HTTPS (TLS >= 1.2) with this PEM certificate (chain)"},
    {"tls-key", STR(tls_key), "the PEM private key of --tls-cert"},
    {"jwt-hs256-secret-file", STR(jwt_hs256_secret_file),
     "accept HS256 JWTs signed with the secret in this file (>= 32 bytes)"},
    {"jwt-rs256-public-key", STR(jwt_rs256_public_key),
     "accept RS256 JWTs verified with this PEM public key"},
    {"jwt-role-claim", STR(jwt_role_claim), "JWT claim holding the role (default role)"},
    {"jwt-issuer", STR(jwt_issuer), "JWTs must have this iss"},
    {"jwt-audience", STR(jwt_audience), "JWTs must have this aud"},
    {"infer-auth", STR(infer_auth), "open (default) or required: inference needs a token"},
    {"cors-origin", STR(cors_origin),
     "comma list of browser origins allowed cross-origin requests (default none)"},
    {"admin-token-file", STR(admin_token_file),
     "make the admin token \"bootstrap\" the secret in this file (e.g. a mounted k8s secret)"},
    {"replica-id", STR(replica_id),
     "this replica's id in a shared registry, [A-Za-z0-9_.:-] (default <hostname>-<port>)"},
    {"advertise-url", STR(advertise_url),
     "where this replica is reached, shown with it in GET /replicas (default "
     "http://<host>:<port>)"},
    {"reconcile-ms", NUM(OPT_INT, reconcile_ms, 100, 3600000),
     "reconcile with the registry's deployments and splits at least this often (default 2000)"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

/* Directory of the running binary, for defaults that travel with it. */
static void config_binary_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        snprintf(out, n, ".");
        return;
    }
    exe[len] = '\0';
    snprintf(out, n, "%s", dirname(exe));
}

static void config_defaults(ds_config *cfg)
{
    char bin[PATH_MAX];
    config_binary_dir(bin, sizeof bin);
    *cfg = (ds_config){.port = 8080,
                       .threads = 64,
                       .max_body_bytes = 64LL << 20,
                       .max_response_bytes = 128LL << 20,
                       .max_upload_bytes = 256LL << 20,
                       .request_timeout_ms = 30000,
                       .keep_alive_ms = 5000,
                       .header_timeout_ms = 10000,
                       .max_conns_per_client = 32,
                       .max_elements = 64LL << 20,
                       .max_depth = 32,
                       .stats_flush_s = 10,
                       .reconcile_ms = 2000,
                       .async_workers = 2,
                       .async_max_queued = 1000,
                       .async_max_kept = 10000,
                       .async_max_bytes = (int64_t)512 << 20,
                       .async_retention_s = 600,
                       .shadow_max_queue = 1000,
                       .shadow_workers = 1};
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "./data");
    snprintf(cfg->model_repository, sizeof cfg->model_repository, "%.*s/models", PATH_MAX - 8, bin);
    snprintf(cfg->web_root, sizeof cfg->web_root, "%.*s/web", PATH_MAX - 8, bin);
    snprintf(cfg->backend_dir, sizeof cfg->backend_dir, "%.*s/backends", PATH_MAX - 16, bin);
    snprintf(cfg->log_level, sizeof cfg->log_level, "info");
    snprintf(cfg->isolation, sizeof cfg->isolation, "inproc");
    cfg->drain_timeout_ms = 10000;
    cfg->default_max_in_flight = -1; /* unset: threads / 2, once --threads is known */
    cfg->thread_reserve = -1;        /* unset: threads / 8 (at least 1), likewise */
    snprintf(cfg->jwt_role_claim, sizeof cfg->jwt_role_claim, "role");
    snprintf(cfg->infer_auth, sizeof cfg->infer_auth, "open");
}

/* "1", "true", "yes", "on" -> 1; "0", "false", "no", "off" -> 0; else -1. */
static int config_bool(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Append value to a comma list; the first command-line value replaces the environment's. */
static int config_append(char *field, const opt *o, const char *value, const char *origin,
                         char *err, size_t errlen)
{
    size_t used = strlen(field);
    if (value[0] == '\0' || used + strlen(value) + 2 > o->size) {
        snprintf(err, errlen, "%s: %s must be 1 to %zu characters in all", origin, o->flag,
                 o->size - 1);
        return -1;
    }
    snprintf(field + used, o->size - used, "%s%s", used ? "," : "", value);
    return 0;
}

static int config_set(ds_config *cfg, const opt *o, const char *value, const char *origin,
                      char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    if (o->type == OPT_LIST)
        return config_append(field, o, value, origin, err, errlen);
    if (o->type == OPT_BOOL) {
        int b = config_bool(value);
        if (b < 0) {
            snprintf(err, errlen, "%s: %s must be true or false, not '%s'", origin, o->flag, value);
            return -1;
        }
        *(int *)(void *)field = b;
        return 0;
    }
    if (o->type == OPT_STR) {
        if (strlen(value) >= o->size || value[0] == '\0') {
            snprintf(err, errlen, "%s: %s must be 1 to %zu characters", origin, o->flag,
                     o->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < o->min || v > o->max) {
        snprintf(err, errlen, "%s: %s must be a whole number from %lld to %lld, not '%s'", origin,
                 o->flag, (long long)o->min, (long long)o->max, value);
        return -1;
    }
    if (o->type == OPT_INT)
        *(int *)(void *)field = (int)v;
    else
        *(int64_t *)(void *)field = (int64_t)v;
    return 0;
}

static int config_from_env(ds_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char name[64] = "DYNSERVE_";
        size_t n = strlen(name);
        for (const char *f = options[i].flag; *f && n < sizeof name - 1; f++)
            name[n++] = *f == '-' ? '_' : (char)toupper((unsigned char)*f);
        name[n] = '\0';
        const char *v = getenv(name);
        if (v != NULL && config_set(cfg, &options[i], v, name, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static const opt *config_find(const char *flag, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, flag, len) == 0)
            return &options[i];
    return NULL;
}

void config_usage(FILE *out)
{
    fprintf(out, "usage: dynserve [options]\n\n");
    for (size_t i = 0; i < N_OPTIONS; i++)
        fprintf(out, "  --%-20s %s\n", options[i].flag, options[i].help);
    fprintf(out, "  --%-20s %s\n  --%-20s %s\n\n", "help", "show this text", "version",
            "print the version");
    fprintf(out, "Every option can also be set as DYNSERVE_<NAME> (e.g. DYNSERVE_DATA_DIR).\n");
}

/* Settings that only make sense together. */
static enum config_result config_check_security(const ds_config *cfg, char *err, size_t errlen)
{
    if (strcmp(cfg->infer_auth, "open") != 0 && strcmp(cfg->infer_auth, "required") != 0) {
        snprintf(err, errlen, "--infer-auth must be open or required, not '%s'", cfg->infer_auth);
        return CONFIG_ERROR;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        snprintf(err, errlen, "--tls-cert and --tls-key go together");
        return CONFIG_ERROR;
    }
    if (cfg->jwt_hs256_secret_file[0] && cfg->jwt_rs256_public_key[0]) {
        snprintf(err, errlen, "give --jwt-hs256-secret-file or --jwt-rs256-public-key, not both");
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

enum config_result config_parse(int argc, char **argv, ds_config *cfg, char *err, size_t errlen)
{
    config_defaults(cfg);
    if (config_from_env(cfg, err, errlen) != 0)
        return CONFIG_ERROR;
    bool list_from_cli[N_OPTIONS] = {false};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            config_usage(stdout);
            return CONFIG_EXIT;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("dynserve %s\n", DYNSERVE_VERSION);
            return CONFIG_EXIT;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return CONFIG_ERROR;
        }
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        const opt *o = config_find(arg + 2, len);
        if (o == NULL) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
            return CONFIG_ERROR;
        }
        /* A bare boolean flag (--insecure) means true; --insecure=false also works. */
        const char *value = eq                    ? eq + 1
                            : o->type == OPT_BOOL ? "true"
                            : i + 1 < argc        ? argv[++i]
                                                  : NULL;
        if (value == NULL) {
            snprintf(err, errlen, "option --%s needs a value", o->flag);
            return CONFIG_ERROR;
        }
        size_t idx = (size_t)(o - options);
        if (o->type == OPT_LIST && !list_from_cli[idx]) /* the flag wins over the environment */
            ((char *)cfg + o->offset)[0] = '\0';
        list_from_cli[idx] = true;
        if (config_set(cfg, o, value, "command line", err, errlen) != 0)
            return CONFIG_ERROR;
    }
    rl_limit limit;
    if (cfg->rate_limit[0] && rl_parse(cfg->rate_limit, &limit, err, errlen) != 0)
        return CONFIG_ERROR;
    if (log_level_parse(cfg->log_level) < 0) {
        snprintf(err, errlen, "log level must be error, warn, info or debug, not '%s'",
                 cfg->log_level);
        return CONFIG_ERROR;
    }
    if (strcmp(cfg->isolation, "inproc") != 0 && strcmp(cfg->isolation, "process") != 0) {
        snprintf(err, errlen, "isolation must be inproc or process, not '%s'", cfg->isolation);
        return CONFIG_ERROR;
    }
    if (cfg->default_max_in_flight < 0)
        cfg->default_max_in_flight = cfg->threads / 2;
    if (cfg->thread_reserve < 0)
        cfg->thread_reserve = cfg->threads / 8 > 1 ? cfg->threads / 8 : 1; /* threads >= 2 */
    if (cfg->thread_reserve >= cfg->threads) {
        snprintf(err, errlen, "--thread-reserve (%d) must be below --threads (%d)",
                 cfg->thread_reserve, cfg->threads);
        return CONFIG_ERROR;
    }
    return config_check_security(cfg, err, errlen);
}
