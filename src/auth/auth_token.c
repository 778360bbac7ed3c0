/*
 * auth_token: API token text, salts and hashes.
 *
 * A token is "dsk_<id>_<secret>": 8 random bytes as 16 hex digits (the public id, the registry's
 * primary key, so a lookup is by id and never a scan) and 32 random bytes as 43 base64url
 * characters. The registry stores HMAC-SHA-256(key = a per-token 16-byte random salt, message =
 * the token text), never the token. A slow KDF (scrypt, Argon2) exists to protect guessable
 * passwords; a 256-bit random secret cannot be guessed, so a fast keyed hash is enough and keeps
 * every authenticated request cheap. The salt makes equal secrets hash differently and defeats
 * precomputed tables. Comparison is CRYPTO_memcmp (constant-time).
 */
#include "auth_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void auth_base64url(const unsigned char *in, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = alphabet[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
}

int auth_token_generate(char *id, char text[AUTH_TOKEN_TEXT_MAX])
{
    unsigned char idb[AUTH_TOKEN_ID_HEX / 2], secret[32];
    if (RAND_bytes(idb, sizeof idb) != 1 || RAND_bytes(secret, sizeof secret) != 1)
        return -1;
    for (size_t i = 0; i < sizeof idb; i++)
        snprintf(id + 2 * i, 3, "%02x", idb[i]);
    char b64[AUTH_TOKEN_SECRET_B64 + 1];
    auth_base64url(secret, sizeof secret, b64);
    OPENSSL_cleanse(secret, sizeof secret);
    snprintf(text, AUTH_TOKEN_TEXT_MAX, AUTH_TOKEN_PREFIX "%s_%s", id, b64);
    OPENSSL_cleanse(b64, sizeof b64);
    return 0;
}

static bool auth_is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool auth_token_parse(const char *text, char *id)
{
    const size_t plen = sizeof AUTH_TOKEN_PREFIX - 1;
    if (text == NULL || strncmp(text, AUTH_TOKEN_PREFIX, plen) != 0 ||
        strlen(text) != plen + AUTH_TOKEN_ID_HEX + 1 + AUTH_TOKEN_SECRET_B64)
        return false;
    const char *p = text + plen;
    for (int i = 0; i < AUTH_TOKEN_ID_HEX; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    if (p[AUTH_TOKEN_ID_HEX] != '_')
        return false;
    for (const char *s = p + AUTH_TOKEN_ID_HEX + 1; *s; s++)
        if (!auth_is_b64url(*s))
            return false;
    memcpy(id, p, AUTH_TOKEN_ID_HEX);
    id[AUTH_TOKEN_ID_HEX] = '\0';
    return true;
}

int auth_token_salt(unsigned char salt[AUTH_SALT_BYTES])
{
    return RAND_bytes(salt, AUTH_SALT_BYTES) == 1 ? 0 : -1;
}

/* SHA-256 fetched once: OpenSSL 3's one-shot HMAC() and EVP_sha256() look the algorithm up in
 * the provider store on every call, under process-wide rwlocks (16 read locks per request were
 * measured with bench/lockprof/run AUTH=1); a pre-fetched EVP_MD takes none. Written once under
 * pthread_once, read-only after. */
static EVP_MD *auth_sha256;
static pthread_once_t auth_sha256_once = PTHREAD_ONCE_INIT;

static void auth_sha256_fetch(void)
{
    auth_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static bool auth_sha256_parts(EVP_MD_CTX *c, const void *a, size_t an, const void *b, size_t bn,
                              unsigned char out[32])
{
    return EVP_DigestInit_ex2(c, auth_sha256, NULL) == 1 && EVP_DigestUpdate(c, a, an) == 1 &&
           EVP_DigestUpdate(c, b, bn) == 1 && EVP_DigestFinal_ex(c, out, NULL) == 1;
}

bool auth_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                      unsigned char out[32])
{
    pthread_once(&auth_sha256_once, auth_sha256_fetch);
    EVP_MD_CTX *c = auth_sha256 ? EVP_MD_CTX_new() : NULL;
    if (c == NULL)
        return false;
    /* RFC 2104: H((K ^ opad) || H((K ^ ipad) || m)), K padded to the 64-byte block (hashed
     * first when longer). */
    unsigned char k[64] = {0}, ipad[64], opad[64], inner[32];
    bool ok = true;
    if (key_len > sizeof k)
        ok = auth_sha256_parts(c, key, key_len, "", 0, k);
    else
        memcpy(k, key, key_len);
    for (size_t i = 0; i < sizeof k; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    ok = ok && auth_sha256_parts(c, ipad, sizeof ipad, msg, len, inner) &&
         auth_sha256_parts(c, opad, sizeof opad, inner, sizeof inner, out);
    EVP_MD_CTX_free(c);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    return ok;
}

void auth_token_hash(const unsigned char salt[AUTH_SALT_BYTES], const char *text, size_t len,
                     unsigned char hash[AUTH_HASH_BYTES])
{
    _Static_assert(AUTH_HASH_BYTES == 32, "the token hash is one SHA-256");
    if (!auth_hmac_sha256(salt, AUTH_SALT_BYTES, text, len, hash))
        memset(hash, 0, AUTH_HASH_BYTES); /* matches nothing: a real hash is never all zero */
}

bool auth_token_matches(const unsigned char salt[AUTH_SALT_BYTES],
                        const unsigned char hash[AUTH_HASH_BYTES], const char *text, size_t len)
{
    unsigned char got[AUTH_HASH_BYTES];
    static const unsigned char zero[AUTH_HASH_BYTES];
    auth_token_hash(salt, text, len, got);
    bool same = CRYPTO_memcmp(got, hash, AUTH_HASH_BYTES) == 0;
    return same && CRYPTO_memcmp(got, zero, AUTH_HASH_BYTES) != 0;
}

time_t auth_time_parse(const char *iso)
{
    struct tm tm = {0};
    const char *end = iso ? strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (end == NULL || *end != '\0')
        return -1;
    return timegm(&tm);
}

int64_t auth_parse_duration(const char *s)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    int64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > INT64_MAX / 10 / 86400)
            return -1;
        v = v * 10 + (*p - '0');
    }
    int64_t unit = 1;
    if (*p != '\0') {
        switch (*p) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return -1;
        }
        if (p[1] != '\0')
            return -1;
    }
    return v > 0 ? v * unit : -1;
}
