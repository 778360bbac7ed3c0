/*
 * auth_jwt: JSON Web Tokens signed by an identity provider, verified with libjwt.
 *
 * One algorithm is configured (HS256 with a shared secret file, or RS256 with a PEM public key)
 * and pinned: the token's header must name exactly that algorithm before anything else happens.
 * That refuses "alg":"none" and algorithm confusion (an RS256 public key used as an HS256 secret,
 * which anyone could sign with). HS256 signatures are checked here with CRYPTO_memcmp, because
 * libjwt 1.10 compares them with strcmp (a timing oracle); libjwt then parses the token and, for
 * RS256, verifies the signature with OpenSSL. The claims are read with cJSON from libjwt's JSON:
 * `exp` is required, `nbf` honoured, `iss`/`aud` checked when configured, with 30 s of leeway
 * for clock skew.
 */
#include "auth_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_JWT_MAX_BYTES  8192  /* longer Authorization values are refused unread */
#define AUTH_JWT_KEY_MAX    65536 /* a PEM key or secret file larger than this is refused */
#define AUTH_JWT_MIN_SECRET 32    /* RFC 7518 3.2: an HS256 key at least as long as the hash */
#define AUTH_JWT_LEEWAY_S   30

struct auth_jwt {
    jwt_alg_t alg;
    const char *alg_name; /* "HS256" or "RS256" */
    unsigned char *key;   /* owned; secret bytes or PEM text (NUL-terminated) */
    size_t key_len;
    char role_claim[64];
    char issuer[256];   /* "" = not checked */
    char audience[256]; /* "" = not checked */
};

/* Read a whole small regular file into a malloc'd NUL-terminated buffer. */
static unsigned char *auth_read_key_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > AUTH_JWT_KEY_MAX) {
        snprintf(err, errlen, "cannot read %s (a regular file of at most %d bytes)", path,
                 AUTH_JWT_KEY_MAX);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n < 0 || n != st.st_size) {
        free(buf);
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static bool auth_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int auth_jwt_new(const auth_config *cfg, auth_jwt **out, char *err, size_t errlen)
{
    *out = NULL;
    bool hs = auth_set(cfg->jwt_hs256_secret_file), rs = auth_set(cfg->jwt_rs256_public_key);
    if (!hs && !rs)
        return 0;
    if (hs && rs) {
        snprintf(err, errlen, "give --jwt-hs256-secret-file or --jwt-rs256-public-key, not both");
        return -1;
    }
    auth_jwt *j = calloc(1, sizeof *j);
    if (j == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->alg = hs ? JWT_ALG_HS256 : JWT_ALG_RS256;
    j->alg_name = hs ? "HS256" : "RS256";
    j->key = auth_read_key_file(hs ? cfg->jwt_hs256_secret_file : cfg->jwt_rs256_public_key,
                                &j->key_len, err, errlen);
    if (j->key == NULL) {
        auth_jwt_free(j);
        return -1;
    }
    if (hs) { /* one trailing newline is the file's, not the secret's */
        if (j->key_len > 0 && j->key[j->key_len - 1] == '\n')
            j->key[--j->key_len] = '\0';
        if (j->key_len < AUTH_JWT_MIN_SECRET) {
            snprintf(err, errlen, "the HS256 secret must be at least %d bytes",
                     AUTH_JWT_MIN_SECRET);
            auth_jwt_free(j);
            return -1;
        }
    } else if (strstr((const char *)j->key, "-----BEGIN PUBLIC KEY-----") == NULL) {
        snprintf(err, errlen, "%s is not a PEM public key (-----BEGIN PUBLIC KEY-----)",
                 cfg->jwt_rs256_public_key);
        auth_jwt_free(j);
        return -1;
    }
    snprintf(j->role_claim, sizeof j->role_claim, "%s",
             auth_set(cfg->jwt_role_claim) ? cfg->jwt_role_claim : "role");
    snprintf(j->issuer, sizeof j->issuer, "%s", auth_set(cfg->jwt_issuer) ? cfg->jwt_issuer : "");
    snprintf(j->audience, sizeof j->audience, "%s",
             auth_set(cfg->jwt_audience) ? cfg->jwt_audience : "");
    *out = j;
    return 0;
}

void auth_jwt_free(auth_jwt *j)
{
    if (j == NULL)
        return;
    if (j->key != NULL) {
        OPENSSL_cleanse(j->key, j->key_len);
        free(j->key);
    }
    free(j);
}

/* Decode base64url (no padding) into out (NUL-terminated); false on a bad character or size. */
static bool auth_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                               size_t *out_len)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap)
                return false;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}

/* The header must be a JSON object naming exactly our algorithm, typ JWT if present, no crit. */
static int auth_jwt_check_header(const auth_jwt *j, const char *token, size_t head_len, char *err,
                                 size_t errlen)
{
    unsigned char head[1024];
    size_t n;
    if (!auth_b64url_decode(token, head_len, head, sizeof head, &n)) {
        snprintf(err, errlen, "malformed JWT header");
        return -1;
    }
    cJSON *h = cJSON_ParseWithLength((const char *)head, n);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(h, "typ");
    int rc = 0;
    if (!cJSON_IsObject(h) || !cJSON_IsString(alg)) {
        snprintf(err, errlen, "malformed JWT header");
        rc = -1;
    } else if (strcmp(alg->valuestring, j->alg_name) != 0) {
        snprintf(err, errlen, "JWT algorithm must be %s", j->alg_name);
        rc = -1;
    } else if ((typ != NULL && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT"))) ||
               cJSON_GetObjectItemCaseSensitive(h, "crit") != NULL) {
        snprintf(err, errlen, "unsupported JWT header");
        rc = -1;
    }
    cJSON_Delete(h);
    return rc;
}

/* HS256 signature over "header.payload", compared in constant time. */
static bool auth_jwt_hs256_ok(const auth_jwt *j, const char *token, size_t signed_len,
                              const char *sig)
{
    unsigned char mac[32], got[64];
    size_t mac_len = sizeof mac;
    size_t got_len;
    if (!auth_hmac_sha256(j->key, j->key_len, token, signed_len, mac) ||
        !auth_b64url_decode(sig, strlen(sig), got, sizeof got, &got_len) || got_len != mac_len)
        return false;
    return CRYPTO_memcmp(mac, got, mac_len) == 0;
}

static double auth_claim_number(const cJSON *claims, const char *name, bool *present)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, name);
    *present = v != NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : -1e300; /* a non-number fails every check */
}

static bool auth_claim_audience_ok(const cJSON *aud, const char *want)
{
    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0;
    if (!cJSON_IsArray(aud))
        return false;
    const cJSON *e;
    cJSON_ArrayForEach(e, aud)
    {
        if (cJSON_IsString(e) && strcmp(e->valuestring, want) == 0)
            return true;
    }
    return false;
}

/* exp, nbf, iss, aud and the role. 0 or -1 with a reason. */
static int auth_jwt_claims(const auth_jwt *j, const cJSON *c, time_t now, auth_principal *who,
                           char *err, size_t errlen)
{
    bool has_exp, has_nbf;
    double exp = auth_claim_number(c, "exp", &has_exp);
    double nbf = auth_claim_number(c, "nbf", &has_nbf);
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(c, j->role_claim);
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(c, "sub");
    int r = cJSON_IsString(role) ? auth_role_parse(role->valuestring) : -1;
    const char *why = NULL;
    if (!has_exp)
        why = "JWT has no exp claim";
    else if ((double)now > exp + AUTH_JWT_LEEWAY_S)
        why = "JWT has expired";
    else if (has_nbf && (double)now + AUTH_JWT_LEEWAY_S < nbf)
        why = "JWT is not valid yet (nbf)";
    else if (j->issuer[0] && !(cJSON_IsString(iss) && strcmp(iss->valuestring, j->issuer) == 0))
        why = "JWT issuer (iss) is not the expected one";
    else if (j->audience[0] &&
             !auth_claim_audience_ok(cJSON_GetObjectItemCaseSensitive(c, "aud"), j->audience))
        why = "JWT audience (aud) does not include this server";
    else if (r < 0)
        why = "JWT has no known role claim";
    if (why != NULL) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    who->authenticated = true;
    who->role = (auth_role)r;
    snprintf(who->name, sizeof who->name, "jwt:%.80s",
             cJSON_IsString(sub) ? sub->valuestring : "unknown");
    return 0;
}

int auth_jwt_verify(const auth_jwt *j, const char *token, time_t now, auth_principal *who,
                    char *err, size_t errlen)
{
    size_t len = strlen(token);
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (len > AUTH_JWT_MAX_BYTES || dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') ||
        dot1 == token || dot2 == dot1 + 1) {
        snprintf(err, errlen, "malformed JWT");
        return -1;
    }
    if (auth_jwt_check_header(j, token, (size_t)(dot1 - token), err, errlen) != 0)
        return -1;
    if (dot2[1] == '\0' || (j->alg == JWT_ALG_HS256 &&
                            !auth_jwt_hs256_ok(j, token, (size_t)(dot2 - token), dot2 + 1))) {
        snprintf(err, errlen, "JWT signature is not valid");
        return -1;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, j->key, (int)j->key_len) != 0 || jwt == NULL ||
        jwt_get_alg(jwt) != j->alg) {
        jwt_free(jwt);
        snprintf(err, errlen, "JWT signature is not valid");
        return -1;
    }
    char *claims_text = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    cJSON *claims = claims_text ? cJSON_Parse(claims_text) : NULL;
    free(claims_text);
    int rc = -1;
    if (!cJSON_IsObject(claims))
        snprintf(err, errlen, "malformed JWT claims");
    else
        rc = auth_jwt_claims(j, claims, now, who, err, errlen);
    cJSON_Delete(claims);
    return rc;
}
