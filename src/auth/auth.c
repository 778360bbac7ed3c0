/*
 * auth: the token snapshot, decisions, token creation and the bootstrap token. See auth.h.
 *
 * The registry is the truth for API tokens; this module keeps a sorted copy (by id) so that a
 * request never touches SQLite: a decision is a binary search, one HMAC and CRYPTO_memcmp under
 * the read side of `lock` (a big-reader lock: each worker thread reads its own stripe, so
 * requests on different threads share no lock line). auth_tick reloads the copy every two seconds
 * (tokens created or revoked by the `dynserve token` command in another process) and saves last-use
 * times every ten seconds; a use is recorded in memory with an atomic store.
 */
#include "auth_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brlock.h"
#include "isotime.h"
#include "log.h"
#include "names.h"

#define AUTH_RELOAD_TICKS     2
#define AUTH_FLUSH_TICKS      10
#define AUTH_BOOTSTRAP_NAME   "bootstrap"
#define AUTH_BOOTSTRAP_MIN    16   /* shortest secret accepted from --admin-token-file */
#define AUTH_BOOTSTRAP_MAX    4096 /* longest */
#define AUTH_HEADER_TOKEN_MAX 8192

typedef struct auth_entry {
    char id[AUTH_TOKEN_ID_HEX + 1];
    char name[REG_NAME_MAX + 1];
    auth_role role;
    unsigned char salt[AUTH_SALT_BYTES];
    unsigned char hash[AUTH_HASH_BYTES];
    time_t expires; /* 0: never */
    bool revoked;
    atomic_llong last_used; /* newest use seen by this process (0: none) */
    long long saved_used;   /* what the registry holds */
} auth_entry;

struct auth {
    registry *reg;
    auth_jwt *jwt; /* NULL: no JWT key */
    bool infer_required, loopback, tls;
    char *cors;  /* owned; NULL when no origin is allowed */
    brlock lock; /* guards entries, n and bootstrap (the snapshot) */
    /* Serializes auth_load_tokens from registry read to swap. Without it two reloads (a REST
     * token change and the tick, or two changes) could swap in the older read last, so a token
     * just created kept failing, or one just revoked kept working, until the next tick. */
    pthread_mutex_t reload_lock;
    auth_entry *entries; /* sorted by id; owned */
    size_t n;
    long bootstrap;      /* index of the active token named bootstrap, or -1 */
    atomic_bool enabled; /* jwt != NULL || n > 0 */
    int ticks;           /* auth_tick's thread only */
};

static const char *const auth_role_names[AUTH_ROLE_COUNT] = {"inference", "viewer", "deployer",
                                                             "admin"};

const char *auth_role_name(auth_role role)
{
    return role >= 0 && role < AUTH_ROLE_COUNT ? auth_role_names[role] : "none";
}

int auth_role_parse(const char *s)
{
    for (int i = 0; s != NULL && i < AUTH_ROLE_COUNT; i++)
        if (strcmp(s, auth_role_names[i]) == 0)
            return i;
    return -1;
}

bool auth_role_allows(auth_role role, auth_need need)
{
    switch (need) {
    case AUTH_NEED_OPEN:
    case AUTH_NEED_TOKEN: return true;
    case AUTH_NEED_INFER: return role != AUTH_ROLE_VIEWER;
    case AUTH_NEED_READ: return role != AUTH_ROLE_INFERENCE;
    case AUTH_NEED_DEPLOY: return role == AUTH_ROLE_DEPLOYER || role == AUTH_ROLE_ADMIN;
    case AUTH_NEED_ADMIN: return role == AUTH_ROLE_ADMIN;
    }
    return false;
}

/* ---- the snapshot ---------------------------------------------------------------------------- */

typedef struct auth_load {
    auth_entry *e;
    size_t n, cap;
    bool failed;
} auth_load;

static int auth_collect(void *ud, const reg_token *t)
{
    auth_load *l = ud;
    int role = auth_role_parse(t->role);
    if (role < 0)
        return 0; /* the registry's CHECK makes this impossible; skip rather than trust it */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        auth_entry *grown = realloc(l->e, cap * sizeof *grown);
        if (grown == NULL) {
            l->failed = true;
            return 1;
        }
        l->e = grown;
        l->cap = cap;
    }
    auth_entry *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", t->id);
    snprintf(e->name, sizeof e->name, "%s", t->name);
    e->role = (auth_role)role;
    memcpy(e->salt, t->salt, sizeof e->salt);
    memcpy(e->hash, t->hash, sizeof e->hash);
    e->expires = t->expires_at[0] ? auth_time_parse(t->expires_at) : 0;
    if (e->expires < 0)
        e->expires = 1; /* unreadable expiry: treat as long expired */
    e->revoked = t->revoked_at[0] != '\0';
    e->saved_used = t->last_used_at[0] ? (long long)auth_time_parse(t->last_used_at) : 0;
    atomic_init(&e->last_used, e->saved_used);
    return 0;
}

static int auth_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const auth_entry *)a)->id, ((const auth_entry *)b)->id);
}

static auth_entry *auth_find(auth_entry *e, size_t n, const char *id)
{
    if (n == 0)
        return NULL; /* e may be NULL then, which bsearch must not see */
    auth_entry key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return bsearch(&key, e, n, sizeof *e, auth_entry_cmp);
}

/* Read the registry into a new snapshot and swap it in, keeping uses not yet saved. Caller
 * holds reload_lock. */
static int auth_load_tokens_locked(auth *a)
{
    auth_load l = {0};
    char err[256];
    if (registry_token_list(a->reg, auth_collect, &l, err, sizeof err) != REG_OK || l.failed) {
        free(l.e);
        log_warn("auth: cannot reload API tokens: %s", l.failed ? "out of memory" : err);
        return -1;
    }
    if (l.n > 1)
        qsort(l.e, l.n, sizeof *l.e, auth_entry_cmp);
    long bootstrap = -1;
    for (size_t i = 0; i < l.n; i++)
        if (!l.e[i].revoked && strcmp(l.e[i].name, AUTH_BOOTSTRAP_NAME) == 0)
            bootstrap = (long)i;
    brlock_wrlock(&a->lock);
    for (size_t i = 0; i < l.n; i++) {
        auth_entry *old = auth_find(a->entries, a->n, l.e[i].id);
        long long seen = old ? atomic_load(&old->last_used) : 0;
        if (seen > atomic_load(&l.e[i].last_used))
            atomic_store(&l.e[i].last_used, seen);
    }
    auth_entry *gone = a->entries;
    a->entries = l.e;
    a->n = l.n;
    a->bootstrap = bootstrap;
    atomic_store(&a->enabled, a->jwt != NULL || l.n > 0);
    brlock_wrunlock(&a->lock);
    free(gone);
    return 0;
}

/* auth_load_tokens_locked, one at a time: a reload that starts after a registry change
 * committed is the last to swap, so the snapshot never goes back to before the change. */
static int auth_load_tokens(auth *a)
{
    pthread_mutex_lock(&a->reload_lock);
    int rc = auth_load_tokens_locked(a);
    pthread_mutex_unlock(&a->reload_lock);
    return rc;
}

/* Save last-use times that changed since the last save (one registry call per token). */
static void auth_flush_uses(auth *a)
{
    char ids[64][AUTH_TOKEN_ID_HEX + 1];
    long long at[64];
    size_t k = 0;
    int stripe = brlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->n && k < 64; i++) {
        long long used = atomic_load(&a->entries[i].last_used);
        if (used > a->entries[i].saved_used) {
            snprintf(ids[k], sizeof ids[k], "%s", a->entries[i].id);
            at[k++] = used;
            a->entries[i].saved_used = used; /* only this thread writes saved_used */
        }
    }
    brlock_rdunlock(&a->lock, stripe);
    for (size_t i = 0; i < k; i++) {
        char when[REG_TIME_MAX], err[256];
        iso_time_format((time_t)at[i], when, sizeof when);
        if (registry_token_touch(a->reg, ids[i], when, err, sizeof err) != REG_OK)
            log_warn("auth: cannot record the last use of token %s: %s", ids[i], err);
    }
}

void auth_tick(auth *a)
{
    if (a == NULL)
        return;
    a->ticks++;
    if (a->ticks % AUTH_RELOAD_TICKS == 0)
        auth_load_tokens(a);
    if (a->ticks % AUTH_FLUSH_TICKS == 0)
        auth_flush_uses(a);
}

void auth_reload(auth *a)
{
    if (a != NULL)
        auth_load_tokens(a);
}

bool auth_enabled(auth *a)
{
    return a != NULL && atomic_load(&a->enabled);
}

bool auth_jwt_configured(const auth *a)
{
    return a != NULL && a->jwt != NULL;
}

/* ---- tokens ---------------------------------------------------------------------------------- */

static reg_status auth_fail(char *err, size_t errlen, reg_status st, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return st;
}

reg_status auth_token_create(registry *reg, const char *name, auth_role role, int64_t ttl_s,
                             char text[AUTH_TOKEN_TEXT_MAX], reg_token *row, char *err,
                             size_t errlen)
{
    if (!name_valid(name))
        return auth_fail(err, errlen, REG_INVALID, "token name must match [A-Za-z0-9_.-]{1,64}");
    if (role < 0 || role >= AUTH_ROLE_COUNT || ttl_s < 0)
        return auth_fail(err, errlen, REG_INVALID, "bad role or expiry");
    reg_token t = {0};
    if (auth_token_generate(t.id, text) != 0 || auth_token_salt(t.salt) != 0)
        return auth_fail(err, errlen, REG_ERROR, "the random generator failed");
    auth_token_hash(t.salt, text, strlen(text), t.hash);
    snprintf(t.name, sizeof t.name, "%s", name);
    snprintf(t.role, sizeof t.role, "%s", auth_role_name(role));
    time_t now = time(NULL);
    iso_time_format(now, t.created_at, sizeof t.created_at);
    if (ttl_s > 0)
        iso_time_format(now + (time_t)ttl_s, t.expires_at, sizeof t.expires_at);
    reg_status st = registry_token_add(reg, &t, err, errlen);
    if (st != REG_OK)
        OPENSSL_cleanse(text, AUTH_TOKEN_TEXT_MAX);
    else if (row != NULL)
        *row = t;
    return st;
}

/* Read --admin-token-file: a small regular file; trailing CR/LF are not part of the secret. */
static char *auth_read_secret(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    char *buf = NULL;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= AUTH_BOOTSTRAP_MAX)
        buf = calloc(1, (size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        free(buf);
        snprintf(err, errlen,
                 "cannot read --admin-token-file %s (a regular file of at most %d "
                 "bytes)",
                 path, AUTH_BOOTSTRAP_MAX);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if ((size_t)n != strlen(buf) || n < AUTH_BOOTSTRAP_MIN || strchr(buf, ' ')) {
        OPENSSL_cleanse(buf, (size_t)n);
        free(buf);
        snprintf(err, errlen,
                 "--admin-token-file %s must hold one secret of at least %d "
                 "characters without spaces (e.g. openssl rand -hex 32)",
                 path, AUTH_BOOTSTRAP_MIN);
        return NULL;
    }
    return buf;
}

/* Make the active token named bootstrap (admin) the one whose secret is the file's content. */
static int auth_ensure_bootstrap(auth *a, const char *path, char *err, size_t errlen)
{
    char *secret = auth_read_secret(path, err, errlen);
    if (secret == NULL)
        return -1;
    size_t len = strlen(secret);
    int stripe = brlock_rdlock(&a->lock);
    bool same = a->bootstrap >= 0 && a->entries[a->bootstrap].role == AUTH_ROLE_ADMIN &&
                auth_token_matches(a->entries[a->bootstrap].salt, a->entries[a->bootstrap].hash,
                                   secret, len);
    brlock_rdunlock(&a->lock, stripe);
    int rc = 0;
    if (!same) {
        reg_token t = {0};
        char unused[AUTH_TOKEN_TEXT_MAX];
        if (auth_token_generate(t.id, unused) != 0 || auth_token_salt(t.salt) != 0) {
            snprintf(err, errlen, "the random generator failed");
            rc = -1;
        } else {
            auth_token_hash(t.salt, secret, len, t.hash);
            snprintf(t.name, sizeof t.name, AUTH_BOOTSTRAP_NAME);
            snprintf(t.role, sizeof t.role, "admin");
            iso_time_format(time(NULL), t.created_at, sizeof t.created_at);
            rc = registry_token_replace(a->reg, &t, err, errlen) == REG_OK ? 0 : -1;
            if (rc == 0) {
                log_info("auth: admin token \"bootstrap\" set from %s", path);
                rc = auth_load_tokens(a);
            }
        }
        OPENSSL_cleanse(unused, sizeof unused);
    }
    OPENSSL_cleanse(secret, len);
    free(secret);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int auth_new(const auth_config *cfg, registry *reg, auth **out, char *err, size_t errlen)
{
    err[0] = '\0';
    auth *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->reg = reg;
    a->bootstrap = -1;
    a->infer_required = cfg->infer_auth_required;
    a->loopback = cfg->loopback_listener;
    a->tls = cfg->tls;
    if (brlock_init(&a->lock) != 0) {
        free(a);
        snprintf(err, errlen, "cannot create the token lock");
        return -1;
    }
    pthread_mutex_init(&a->reload_lock, NULL);
    if (cfg->cors_origins != NULL && cfg->cors_origins[0] != '\0' &&
        (a->cors = strdup(cfg->cors_origins)) == NULL) {
        snprintf(err, errlen, "out of memory");
        auth_free(a);
        return -1;
    }
    if (auth_jwt_new(cfg, &a->jwt, err, errlen) != 0 || auth_load_tokens(a) != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "cannot read the API tokens from the registry");
        auth_free(a);
        return -1;
    }
    if (cfg->admin_token_file != NULL && cfg->admin_token_file[0] != '\0' &&
        auth_ensure_bootstrap(a, cfg->admin_token_file, err, errlen) != 0) {
        auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void auth_free(auth *a)
{
    if (a == NULL)
        return;
    auth_flush_uses(a);
    auth_jwt_free(a->jwt);
    free(a->entries);
    free(a->cors);
    brlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->reload_lock);
    free(a);
}

/* ---- decisions ------------------------------------------------------------------------------- */

static void auth_refuse(auth_decision *d, auth_verdict v, const char *fmt, const char *arg)
{
    d->verdict = v;
    snprintf(d->message, sizeof d->message, fmt, arg);
}

/* The token after "Bearer " (scheme case-insensitive, spaces trimmed), or NULL. */
static const char *auth_bearer(const char *header, size_t *len)
{
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    const char *t = header + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    *len = n;
    return n > 0 && n <= AUTH_HEADER_TOKEN_MAX ? t : NULL;
}

/* Check an entry for `text`; 0 with *who filled, or -1 (unauthenticated) with the reason. */
static int auth_entry_check(auth_entry *e, const char *text, size_t len, time_t now,
                            auth_decision *d)
{
    if (e == NULL || !auth_token_matches(e->salt, e->hash, text, len)) {
        auth_refuse(d, AUTH_UNAUTHENTICATED, "%s", "invalid token");
        return -1;
    }
    if (e->revoked) {
        auth_refuse(d, AUTH_UNAUTHENTICATED, "%s", "token has been revoked");
        return -1;
    }
    if (e->expires != 0 && now >= e->expires) {
        auth_refuse(d, AUTH_UNAUTHENTICATED, "%s", "token has expired");
        return -1;
    }
    atomic_store_explicit(&e->last_used, (long long)now, memory_order_relaxed);
    d->who.authenticated = true;
    d->who.role = e->role;
    snprintf(d->who.name, sizeof d->who.name, "%s", e->name);
    return 0;
}

static int auth_authenticate(auth *a, const char *header, auth_decision *d)
{
    size_t len;
    const char *t = auth_bearer(header, &len);
    if (t == NULL) {
        auth_refuse(d, AUTH_UNAUTHENTICATED, "%s",
                    header ? "Authorization must be \"Bearer <token>\""
                           : "this route needs a token (Authorization: Bearer)");
        return -1;
    }
    char text[AUTH_HEADER_TOKEN_MAX + 1], id[AUTH_TOKEN_ID_HEX + 1];
    memcpy(text, t, len);
    text[len] = '\0';
    time_t now = time(NULL);
    int rc;
    if (auth_token_parse(text, id)) {
        int stripe = brlock_rdlock(&a->lock);
        rc = auth_entry_check(auth_find(a->entries, a->n, id), text, len, now, d);
        brlock_rdunlock(&a->lock, stripe);
    } else if (a->jwt != NULL && strchr(text, '.') != NULL) {
        char why[160];
        rc = auth_jwt_verify(a->jwt, text, now, &d->who, why, sizeof why);
        if (rc != 0)
            auth_refuse(d, AUTH_UNAUTHENTICATED, "%s", why);
    } else {
        int stripe = brlock_rdlock(&a->lock);
        rc = auth_entry_check(a->bootstrap >= 0 ? &a->entries[a->bootstrap] : NULL, text, len, now,
                              d);
        brlock_rdunlock(&a->lock, stripe);
    }
    OPENSSL_cleanse(text, len);
    return rc;
}

/* CORS preflight: answered here, never by a handler. */
static void auth_preflight(auth *a, const auth_request *req, auth_decision *d)
{
    if (auth_origin_listed(req->origin, a->cors)) {
        d->verdict = AUTH_PREFLIGHT;
        snprintf(d->allow_origin, sizeof d->allow_origin, "%s", req->origin);
    } else {
        auth_refuse(d, AUTH_FORBIDDEN, "cross-origin requests from %.100s are not allowed",
                    req->origin);
    }
}

void auth_decide(auth *a, const auth_request *req, auth_decision *d)
{
    memset(d, 0, sizeof *d);
    bool enabled = auth_enabled(a);
    /* With auth off everyone may do everything; with it on, an anonymous caller only reaches
     * open routes, where the role means nothing. */
    d->who.role = enabled ? AUTH_ROLE_INFERENCE : AUTH_ROLE_ADMIN;
    snprintf(d->who.name, sizeof d->who.name, "anonymous");
    const char *method = req->method ? req->method : "";
    const char *path = req->path ? req->path : "/";
    if (strcmp(method, "OPTIONS") == 0 && req->origin != NULL && req->acr_method != NULL) {
        auth_preflight(a, req, d);
        return;
    }
    if (!enabled && a->loopback && req->host != NULL && !auth_host_is_loopback(req->host)) {
        auth_refuse(d, AUTH_FORBIDDEN,
                    "Host %.100s is not a loopback name (this server has no tokens and "
                    "answers only on loopback)",
                    req->host);
        return;
    }
    bool listed = auth_origin_listed(req->origin, a->cors);
    if (!auth_method_is_safe(method) && req->origin != NULL && !listed &&
        !auth_origin_is_same(req->origin, req->host, a->tls)) {
        auth_refuse(d, AUTH_FORBIDDEN, "cross-origin request from %.100s refused", req->origin);
        return;
    }
    if (listed)
        snprintf(d->allow_origin, sizeof d->allow_origin, "%s", req->origin);
    auth_need need = auth_route_need(method, path);
    if (need == AUTH_NEED_INFER && !a->infer_required)
        need = AUTH_NEED_OPEN;
    if (!enabled || need == AUTH_NEED_OPEN)
        return;
    if (auth_authenticate(a, req->authorization, d) != 0)
        return;
    if (!auth_role_allows(d->who.role, need)) {
        d->verdict = AUTH_FORBIDDEN;
        snprintf(d->message, sizeof d->message, "role %s may not %s %.100s",
                 auth_role_name(d->who.role), method, path);
    }
}
