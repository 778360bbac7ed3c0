/*
 * config: the server's settings from the command line and DYNSERVE_* environment variables.
 *
 * Every flag --some-name has an environment twin DYNSERVE_SOME_NAME; the flag wins. One table in
 * config.c lists flags, defaults and help, so usage text and parsing cannot drift apart.
 * Not thread-safe; parse once at startup, then treat the struct as read-only.
 */
#ifndef DS_CONFIG_H
#define DS_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ds_config {
    char host[64];
    int port;
    char data_dir[PATH_MAX];
    char registry[PATH_MAX]; /* "" = <data_dir>/registry.db; or a postgres:// URI (a secret) */
    char model_repository[PATH_MAX]; /* default: <directory of the binary>/models */
    char backend_dir[PATH_MAX];      /* default: <directory of the binary>/backends */
    char web_root[PATH_MAX];         /* default: <directory of the binary>/web */
    int threads;
    int64_t max_body_bytes;
    int64_t max_response_bytes;
    int64_t max_upload_bytes;
    int request_timeout_ms;
    int keep_alive_ms;
    int header_timeout_ms;
    int max_conns_per_client;
    char plugin_dirs[4096]; /* comma list; "" = the model repository */
    char rate_limit[64];    /* "RPS[:BURST]" per client, "" = off */
    int64_t max_elements;
    int max_depth;
    int stats_flush_s;
    int event_retention_days; /* registry events older than this are deleted; 0 = kept */
    char log_level[16];
    char isolation[16];        /* "inproc" or "process": default of deployments without one */
    int default_timeout_ms;    /* deadline of a request when its deployment sets none; 0 = none */
    int drain_timeout_ms;      /* undeploy and shutdown wait this long for in-flight calls */
    int default_max_in_flight; /* max_in_flight of deployments without one; 0 = no limit;
                                * unset: threads / 2, so one slow model leaves half the
                                * worker threads to health, management and other models */
    int thread_reserve;        /* worker threads inference may never take (all deployments
                                * together); unset: threads / 8, at least 1; 0 = no cap */
    int async_workers;         /* threads running async inference jobs */
    int64_t async_max_queued;  /* async jobs queued or running before 429 */
    int64_t async_max_kept;    /* finished async jobs kept */
    int64_t async_max_bytes;   /* queued async bodies + kept results */
    int async_retention_s;     /* seconds a finished async job is kept */
    int64_t shadow_max_queue;  /* shadow copies waiting before new ones are dropped */
    int shadow_workers;        /* threads running shadow copies */
    /* security (README "Security"); "" = not set */
    int insecure;                         /* --insecure: allow a non-loopback --host without auth */
    char tls_cert[PATH_MAX];              /* PEM certificate (chain); with tls_key: HTTPS */
    char tls_key[PATH_MAX];               /* PEM private key */
    char jwt_hs256_secret_file[PATH_MAX]; /* HS256 JWTs: the shared secret's file */
    char jwt_rs256_public_key[PATH_MAX];  /* RS256 JWTs: the PEM public key's file */
    char jwt_role_claim[64];              /* claim naming the role (default "role") */
    char jwt_issuer[256];                 /* required `iss` */
    char jwt_audience[256];               /* required `aud` */
    char infer_auth[16];                  /* "open" (default) or "required" */
    char cors_origin[1024];               /* comma list of browser origins allowed CORS */
    char admin_token_file[PATH_MAX];      /* ensures the admin token "bootstrap" */
    /* scale-out (README "Scale-out"); "" = derived at startup */
    char replica_id[129];    /* this replica's id in the registry (default <hostname>-<port>) */
    char advertise_url[257]; /* where peers and people reach it (default http://<host>:<port>) */
    int reconcile_ms;        /* full reconcile with the registry at least this often */
} ds_config;

enum config_result { CONFIG_OK = 0, CONFIG_EXIT = 1, CONFIG_ERROR = -1 };

/* Fill *cfg from defaults, then the environment, then argv. CONFIG_EXIT after --help or
 * --version (already printed); CONFIG_ERROR with a one-line message in err. */
enum config_result config_parse(int argc, char **argv, ds_config *cfg, char *err, size_t errlen);
void config_usage(FILE *out);

#endif
