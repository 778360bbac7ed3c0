/*
 * server: the long-lived state of one dynserve process, in one struct (redis's `server`).
 * main.c builds it; route handlers receive it as their cbdata instead of reaching for globals.
 *
 * Thread-safety: the pointers are set before the HTTP server starts and never change while it
 * runs; `ready` is atomic (set once restore has finished). The objects pointed to document
 * their own rules.
 */
#ifndef DS_SERVER_H
#define DS_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "deploy.h"
#include "http.h"
#include "registry.h"

typedef struct ds_server {
    ds_config cfg;
    registry *reg;
    http_server *http;
    deploy_manager *deploy;
    atomic_bool ready; /* deployments restored: /v2/health/ready answers 200 */
    time_t started_at;
} ds_server;

/* Split a URL path into at most `max` segments ("/a/b/" -> "a","b"), copied into buf. Returns
 * the count, or -1 when there are more segments or they do not fit. */
int server_path_segments(const char *path, char *buf, size_t buflen, const char **segs, int max);

#endif
