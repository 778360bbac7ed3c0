/*
 * auth: who may call which route — API tokens, JWT, roles, and the browser-facing defences
 * (Origin, Host, CORS). It owns the one table that declares the right every route needs
 * (auth_policy.c), the in-memory snapshot of the registry's API tokens, and the JWT keys.
 *
 * A request is decided before its body is read: auth_decide() looks at the method, the path and
 * a few headers and says "serve it", "answer this CORS preflight" or "refuse with 401/403". The
 * HTTP glue calls it through the guard that auth_http_guard() implements.
 *
 * Auth is *on* when a JWT key is configured or the registry holds any API token (revoked and
 * expired ones count: revoking the last token locks the management API instead of opening it).
 * With auth off every route is open, and the server must listen on loopback only (main enforces
 * that; auth then refuses a Host header that is not a loopback name, which closes DNS
 * rebinding).
 *
 * Thread-safety: auth_decide, auth_enabled and auth_token_create may be called from any thread at
 * once. auth_tick runs on one thread at a time (main's once-a-second loop). The token snapshot
 * is swapped under a rwlock; a decision holds the read side for a lookup and one HMAC.
 */
#ifndef DS_AUTH_H
#define DS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "registry.h"

/* Roles, as stored in the registry and carried in a JWT claim. */
typedef enum auth_role {
    AUTH_ROLE_INFERENCE = 0, /* data plane only */
    AUTH_ROLE_VIEWER,        /* reads management state, stats, metrics, events */
    AUTH_ROLE_DEPLOYER,      /* viewer + inference + deploy/undeploy/traffic/promote/rollback */
    AUTH_ROLE_ADMIN,         /* everything: register, upload, delete, tokens */
    AUTH_ROLE_COUNT
} auth_role;

/* "inference", "viewer", "deployer", "admin". */
const char *auth_role_name(auth_role role);
/* The role named s, or -1. */
int auth_role_parse(const char *s);

/* What a route needs (auth_policy.c declares one per route). */
typedef enum auth_need {
    AUTH_NEED_OPEN = 0, /* nobody needs a token */
    AUTH_NEED_TOKEN,    /* any valid token (GET /auth/whoami) */
    AUTH_NEED_INFER,    /* data plane; open unless --infer-auth required */
    AUTH_NEED_READ,
    AUTH_NEED_DEPLOY,
    AUTH_NEED_ADMIN
} auth_need;

/* true when `role` may do what `need` asks (AUTH_NEED_INFER as if inference auth is on). */
bool auth_role_allows(auth_role role, auth_need need);

/* Settings, copied by auth_new (strings may be NULL or "" for "not set"). */
typedef struct auth_config {
    const char *jwt_hs256_secret_file; /* HS256: the shared secret's file (>= 32 bytes) */
    const char *jwt_rs256_public_key;  /* RS256: PEM public key file */
    const char *jwt_role_claim;        /* claim holding the role; default "role" */
    const char *jwt_issuer;            /* when set, `iss` must equal it */
    const char *jwt_audience;          /* when set, `aud` must be or contain it */
    bool infer_auth_required;          /* --infer-auth required */
    const char *cors_origins;          /* comma list of allowed browser origins, "*" for any */
    const char *admin_token_file;      /* ensures the admin token `bootstrap` with this secret */
    bool loopback_listener;            /* the server listens on loopback only */
    bool tls;                          /* the server speaks https (its own Origin is https://) */
} auth_config;

typedef struct auth auth;

/* Read the keys and the token file, load the tokens from `reg` (which must outlive the auth).
 * 0, or -1 with a one-line reason (unreadable key, short secret, bad option). *out is owned by
 * the caller; release with auth_free. */
int auth_new(const auth_config *cfg, registry *reg, auth **out, char *err, size_t errlen);
void auth_free(auth *a);

/* Whether a listen address (--host: "127.0.0.1", "::1", "localhost", ...) is loopback only. */
bool auth_address_is_loopback(const char *host);

/* Whether tokens or a JWT key exist (see the top of this file). */
bool auth_enabled(auth *a);
/* Whether a JWT key is configured (auth is then on whatever the registry holds). */
bool auth_jwt_configured(const auth *a);

/* Once a second from one thread: reload the token table from the registry (tokens created or
 * revoked by `dynserve token` in another process take effect within two seconds) and save
 * last-use times. */
void auth_tick(auth *a);
/* Reload the token table now (after POST/DELETE /tokens in this process). */
void auth_reload(auth *a);

/* ---- decisions ------------------------------------------------------------------------------ */

/* The parts of a request a decision looks at; all strings may be NULL. */
typedef struct auth_request {
    const char *method;
    const char *path; /* decoded path without the query */
    const char *authorization;
    const char *origin;
    const char *host;
    const char *acr_method; /* Access-Control-Request-Method (marks a CORS preflight) */
} auth_request;

#define AUTH_NAME_MAX 96

typedef struct auth_principal {
    bool authenticated;       /* a valid token or JWT was presented */
    auth_role role;           /* the role granted (admin when auth is off) */
    char name[AUTH_NAME_MAX]; /* token name, "jwt:<sub>", or "anonymous" */
} auth_principal;

typedef struct auth_decision {
    auth_verdict verdict; /* base/errors.h: allow, preflight, unauthenticated, forbidden */
    char message[200];    /* why it was refused */
    auth_principal who;
    /* Access-Control-Allow-Origin to send, or "" (the request's origin when it is allowed). */
    char allow_origin[128];
} auth_decision;

/* Decide one request. Never fails: an internal error is a refusal. The message never contains
 * the presented token. */
void auth_decide(auth *a, const auth_request *req, auth_decision *out);

/* ---- tokens --------------------------------------------------------------------------------- */

/* A new token's text: "dsk_" + 16 hex id + "_" + 43 base64url characters (256 random bits). */
#define AUTH_TOKEN_TEXT_MAX 72

/* Create an API token (name [A-Za-z0-9_.-]{1,64}, expiry ttl_s seconds from now, 0 for never),
 * record it hashed, and write its text (shown once, never stored) into `text`. *row (may be
 * NULL) gets the stored record. Thread-safe. REG_EXISTS when an active token has that name. */
reg_status auth_token_create(registry *reg, const char *name, auth_role role, int64_t ttl_s,
                             char text[AUTH_TOKEN_TEXT_MAX], reg_token *row, char *err,
                             size_t errlen);

/* "30d", "12h", "90m", "45s" or plain seconds -> seconds (> 0). -1 when malformed. */
int64_t auth_parse_duration(const char *s);

#endif
