/*
 * auth_internal: what the files of src/auth/ share and nothing outside it includes —
 * token text and hashing (auth_token.c), JWT verification (auth_jwt.c), the route table and the
 * Origin/Host rules (auth_policy.c). Each part is pure or owns its own state, so the unit tests
 * call them one by one.
 */
#ifndef DS_AUTH_INTERNAL_H
#define DS_AUTH_INTERNAL_H

#include "auth.h"

/* ---- token text and hashing (auth_token.c) -------------------------------------------------- */

#define AUTH_TOKEN_PREFIX     "dsk_"
#define AUTH_TOKEN_ID_HEX     16 /* characters of the public id */
#define AUTH_TOKEN_SECRET_B64 43 /* 32 random bytes, base64url without padding */
#define AUTH_SALT_BYTES       REG_TOKEN_SALT_BYTES
#define AUTH_HASH_BYTES       REG_TOKEN_HASH_BYTES

/* Fill `id` (AUTH_TOKEN_ID_HEX + 1) and `text` with a fresh token from RAND_bytes. 0, or -1 when
 * the random generator fails. */
int auth_token_generate(char *id, char text[AUTH_TOKEN_TEXT_MAX]);
/* When `text` has the shape of a generated token, copy its id into `id` (AUTH_TOKEN_ID_HEX + 1)
 * and return true. */
bool auth_token_parse(const char *text, char *id);
/* A fresh random salt. 0 or -1. */
int auth_token_salt(unsigned char salt[AUTH_SALT_BYTES]);
/* HMAC-SHA-256 of msg under key into out (RFC 2104), without OpenSSL's per-call algorithm
 * lookup (and its process-wide locks). false when OpenSSL fails (out is then undefined).
 * Thread-safe. */
bool auth_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                      unsigned char out[32]);
/* hash = HMAC-SHA-256(key = salt, message = the whole token text). */
void auth_token_hash(const unsigned char salt[AUTH_SALT_BYTES], const char *text, size_t len,
                     unsigned char hash[AUTH_HASH_BYTES]);
/* Whether `text` hashes to `hash` under `salt`; the comparison is constant-time. */
bool auth_token_matches(const unsigned char salt[AUTH_SALT_BYTES],
                        const unsigned char hash[AUTH_HASH_BYTES], const char *text, size_t len);

/* ISO-8601 UTC text ("2026-12-02T03:20:08Z") <-> time_t; parse returns -1 on bad text. */
time_t auth_time_parse(const char *iso);

/* ---- JWT (auth_jwt.c) ------------------------------------------------------------------------ */

typedef struct auth_jwt auth_jwt;

/* Read the key named in cfg (HS256 secret file or RS256 PEM). *out is NULL (and 0 returned) when
 * no key is configured; -1 with a reason when the key cannot be used. */
int auth_jwt_new(const auth_config *cfg, auth_jwt **out, char *err, size_t errlen);
void auth_jwt_free(auth_jwt *j);
/* Verify `token` at time `now`: the header's alg must be the configured one exactly, the
 * signature valid, exp present and not passed, nbf (if any) reached, iss and aud as configured,
 * the role claim a known role. 0 with *who filled ("jwt:<sub>"), or -1 with a reason fit for the
 * client (it never contains the token). Thread-safe (the key is read-only). */
int auth_jwt_verify(const auth_jwt *j, const char *token, time_t now, auth_principal *who,
                    char *err, size_t errlen);

/* ---- routes and browser rules (auth_policy.c) ----------------------------------------------- */

/* What `method` on `path` needs, from the one route table. */
auth_need auth_route_need(const char *method, const char *path);
/* Whether `host` (a Host header: name or address, optional port) names this machine's loopback:
 * localhost, *.localhost, 127.0.0.0/8, [::1]. */
bool auth_host_is_loopback(const char *host);
/* Whether `origin` is the server's own (scheme://Host) for a request with Host `host`. */
bool auth_origin_is_same(const char *origin, const char *host, bool tls);
/* Whether `origin` is in the comma-separated `list` ("*" matches all). */
bool auth_origin_listed(const char *origin, const char *list);
/* GET, HEAD and OPTIONS change nothing; every other method is state-changing. */
bool auth_method_is_safe(const char *method);

#endif
