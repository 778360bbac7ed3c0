/*
 * test_auth.c: unit tests of src/auth/ — token text and hashing, durations, the route table,
 * the Host/Origin rules, JWT verification (HS256 and RS256, signed here with libjwt and a key
 * generated with OpenSSL), and whole decisions against a real registry in a temporary
 * directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "auth_internal.h"
#include "isotime.h"
#include "support/pg_cluster.h"

#define HS_SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* ---- helpers --------------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct fixture {
    char dir[64];
    registry *reg;
    auth *a;
    char err[512];
    char rsa_private[4096]; /* PEM */
    char rsa_public[2048];  /* PEM */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_auth.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char db[256];
    if (test_registry_target(f->dir, db, sizeof db, f->err, sizeof f->err) != 0)
        fail_msg("%s", f->err);
    assert_int_equal(registry_open(db, &f->reg, f->err, sizeof f->err), REG_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_free(f->a);
    registry_close(f->reg);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void make_rsa(struct fixture *f)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    int n = BIO_read(b, f->rsa_private, sizeof f->rsa_private - 1);
    assert_true(n > 0);
    f->rsa_private[n] = '\0';
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    n = BIO_read(b, f->rsa_public, sizeof f->rsa_public - 1);
    assert_true(n > 0);
    f->rsa_public[n] = '\0';
    BIO_free(b);
    EVP_PKEY_free(k);
}

static void start(struct fixture *f, auth_config cfg)
{
    auth_free(f->a);
    f->a = NULL;
    int rc = auth_new(&cfg, f->reg, &f->a, f->err, sizeof f->err);
    if (rc != 0)
        fail_msg("auth_new: %s", f->err);
}

/* A signed JWT: alg, key, then claims as JSON. Caller frees. */
static char *make_jwt(jwt_alg_t alg, const char *key, const char *claims_json)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims_json), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0),
                     0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static char *claims(const char *extra, long exp_offset)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"sub\":\"alice\",\"exp\":%ld%s%s}", (long)time(NULL) + exp_offset,
             extra[0] ? "," : "", extra);
    return buf;
}

/* The HTTP status a decision becomes (as auth_http answers it), 0 when the request is served. */
static int status_of(const auth_decision *d)
{
    static const int status[] = {[AUTH_ALLOW] = 0,
                                 [AUTH_PREFLIGHT] = 204,
                                 [AUTH_UNAUTHENTICATED] = 401,
                                 [AUTH_FORBIDDEN] = 403};
    return status[d->verdict];
}

static int decide(struct fixture *f, const char *method, const char *path, const char *token,
                  auth_decision *d)
{
    char header[8300];
    snprintf(header, sizeof header, "Bearer %s", token ? token : "");
    auth_request r = {.method = method,
                      .path = path,
                      .authorization = token ? header : NULL,
                      .host = "127.0.0.1:8080"};
    auth_decide(f->a, &r, d);
    return status_of(d);
}

/* ---- token text, hashing, durations ---------------------------------------------------------- */

static void test_generated_token_parses_back_to_its_id(void **state)
{
    (void)state;
    char id[AUTH_TOKEN_ID_HEX + 1], text[AUTH_TOKEN_TEXT_MAX], back[AUTH_TOKEN_ID_HEX + 1];
    assert_int_equal(auth_token_generate(id, text), 0);
    assert_int_equal(strlen(id), 16);
    assert_int_equal(strncmp(text, "dsk_", 4), 0);
    assert_true(auth_token_parse(text, back));
    assert_string_equal(id, back);
    char id2[AUTH_TOKEN_ID_HEX + 1], text2[AUTH_TOKEN_TEXT_MAX];
    assert_int_equal(auth_token_generate(id2, text2), 0);
    assert_string_not_equal(text, text2);
}

static void test_token_parse_refuses_other_shapes(void **state)
{
    (void)state;
    char id[AUTH_TOKEN_ID_HEX + 1], text[AUTH_TOKEN_TEXT_MAX];
    assert_int_equal(auth_token_generate(id, text), 0);
    char bad[AUTH_TOKEN_TEXT_MAX + 2];
    assert_false(auth_token_parse("", id));
    assert_false(auth_token_parse("dsk_", id));
    snprintf(bad, sizeof bad, "%sx", text); /* one character too long */
    assert_false(auth_token_parse(bad, id));
    snprintf(bad, sizeof bad, "%s", text);
    bad[5] = 'G'; /* id not hex */
    assert_false(auth_token_parse(bad, id));
    snprintf(bad, sizeof bad, "%s", text);
    bad[4 + 16] = '-'; /* separator */
    assert_false(auth_token_parse(bad, id));
    snprintf(bad, sizeof bad, "%s", text);
    bad[30] = '='; /* not base64url */
    assert_false(auth_token_parse(bad, id));
}

static void test_hash_matches_only_the_same_text_and_salt(void **state)
{
    (void)state;
    unsigned char salt[AUTH_SALT_BYTES], salt2[AUTH_SALT_BYTES], h[AUTH_HASH_BYTES],
        h2[AUTH_HASH_BYTES];
    assert_int_equal(auth_token_salt(salt), 0);
    assert_int_equal(auth_token_salt(salt2), 0);
    assert_memory_not_equal(salt, salt2, sizeof salt);
    const char *t = "dsk_0123456789abcdef_secret";
    auth_token_hash(salt, t, strlen(t), h);
    assert_true(auth_token_matches(salt, h, t, strlen(t)));
    assert_false(auth_token_matches(salt, h, "dsk_0123456789abcdef_secreT", strlen(t)));
    assert_false(auth_token_matches(salt, h, t, strlen(t) - 1));
    assert_false(auth_token_matches(salt2, h, t, strlen(t)));
    auth_token_hash(salt2, t, strlen(t), h2); /* the same secret hashes differently per salt */
    assert_memory_not_equal(h, h2, sizeof h);
    static const unsigned char zero[AUTH_HASH_BYTES];
    assert_false(auth_token_matches(salt, zero, t, strlen(t)));
}

static void test_durations_take_units_and_refuse_junk(void **state)
{
    (void)state;
    assert_int_equal(auth_parse_duration("30d"), 30 * 86400);
    assert_int_equal(auth_parse_duration("12h"), 12 * 3600);
    assert_int_equal(auth_parse_duration("90m"), 5400);
    assert_int_equal(auth_parse_duration("45s"), 45);
    assert_int_equal(auth_parse_duration("3600"), 3600);
    assert_int_equal(auth_parse_duration("0"), -1);
    assert_int_equal(auth_parse_duration("-5d"), -1);
    assert_int_equal(auth_parse_duration("5w"), -1);
    assert_int_equal(auth_parse_duration("5dd"), -1);
    assert_int_equal(auth_parse_duration(""), -1);
    assert_int_equal(auth_parse_duration("99999999999999999999d"), -1);
}

static void test_times_round_trip(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(iso_time_format(1764646808, buf, sizeof buf), 0);
    assert_string_equal(buf, "2025-12-02T03:40:08Z");
    assert_int_equal(auth_time_parse(buf), 1764646808);
    assert_int_equal(auth_time_parse("2025-12-02 03:40:08"), -1);
    assert_int_equal(auth_time_parse("2025-12-02T03:40:08Zjunk"), -1);
}

static void test_roles_parse_and_grant_their_rights(void **state)
{
    (void)state;
    for (int r = 0; r < AUTH_ROLE_COUNT; r++)
        assert_int_equal(auth_role_parse(auth_role_name((auth_role)r)), r);
    assert_int_equal(auth_role_parse("root"), -1);
    assert_int_equal(auth_role_parse(NULL), -1);
    /* rows: inference, viewer, deployer, admin; columns: infer, read, deploy, admin */
    static const bool want[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {1, 1, 1, 0}, {1, 1, 1, 1}};
    static const auth_need needs[4] = {AUTH_NEED_INFER, AUTH_NEED_READ, AUTH_NEED_DEPLOY,
                                       AUTH_NEED_ADMIN};
    for (int r = 0; r < 4; r++) {
        assert_true(auth_role_allows((auth_role)r, AUTH_NEED_TOKEN));
        for (int n = 0; n < 4; n++)
            assert_int_equal(auth_role_allows((auth_role)r, needs[n]), want[r][n]);
    }
}

/* ---- the route table ------------------------------------------------------------------------- */

static void test_every_route_declares_its_need(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        auth_need need;
    } cases[] = {
        {"GET", "/v2", AUTH_NEED_OPEN},
        {"HEAD", "/v2/health/live", AUTH_NEED_OPEN},
        {"GET", "/v2/health/ready", AUTH_NEED_OPEN},
        {"GET", "/v2/models/m", AUTH_NEED_INFER},
        {"GET", "/v2/models/m/versions/1/ready", AUTH_NEED_INFER},
        {"POST", "/v2/models/m/versions/1/infer", AUTH_NEED_INFER},
        {"POST", "/v2/models/m/infer", AUTH_NEED_INFER},
        {"GET", "/v2/models/m/stats", AUTH_NEED_READ},
        {"GET", "/v2/models/m/versions/1/stats", AUTH_NEED_READ},
        {"GET", "/v2/models/stats", AUTH_NEED_READ},
        {"POST", "/v2/repository/index", AUTH_NEED_READ},
        {"POST", "/v2/repository/models/m/load", AUTH_NEED_DEPLOY},
        {"POST", "/v2/repository/models/m/unload", AUTH_NEED_DEPLOY},
        {"GET", "/v2/jobs/abc", AUTH_NEED_INFER},
        {"POST", "/predict", AUTH_NEED_INFER},
        {"POST", "/predict/quad", AUTH_NEED_INFER},
        {"GET", "/models", AUTH_NEED_READ},
        {"GET", "/models/", AUTH_NEED_READ},
        {"GET", "//models", AUTH_NEED_READ},
        {"GET", "/models/stats", AUTH_NEED_READ},
        {"POST", "/models", AUTH_NEED_ADMIN},
        {"PUT", "/models/m/versions/1", AUTH_NEED_ADMIN},
        {"DELETE", "/models/m/versions/1", AUTH_NEED_ADMIN},
        {"GET", "/deployments", AUTH_NEED_READ},
        {"GET", "/deployments/events", AUTH_NEED_READ},
        {"GET", "/deployments/m/traffic", AUTH_NEED_READ},
        {"GET", "/deployments/m/1/stats", AUTH_NEED_READ},
        {"POST", "/deployments/deploy", AUTH_NEED_DEPLOY},
        {"POST", "/deployments/undeploy", AUTH_NEED_DEPLOY},
        {"PUT", "/deployments/m/traffic", AUTH_NEED_DEPLOY},
        {"POST", "/deployments/m/promote", AUTH_NEED_DEPLOY},
        {"POST", "/deployments/m/rollback", AUTH_NEED_DEPLOY},
        {"PUT", "/deployments/m/1/limits", AUTH_NEED_DEPLOY},
        {"GET", "/metrics", AUTH_NEED_READ},
        {"GET", "/openapi.json", AUTH_NEED_READ},
        {"GET", "/docs", AUTH_NEED_READ},
        {"GET", "/auth/whoami", AUTH_NEED_TOKEN},
        {"GET", "/tokens", AUTH_NEED_ADMIN},
        {"POST", "/tokens", AUTH_NEED_ADMIN},
        {"DELETE", "/tokens/ci", AUTH_NEED_ADMIN},
        {"GET", "/", AUTH_NEED_OPEN},
        {"GET", "/app.js", AUTH_NEED_OPEN},
        /* unknown methods and paths are closed, not open */
        {"POST", "/", AUTH_NEED_ADMIN},
        {"DELETE", "/models", AUTH_NEED_ADMIN},
        {"POST", "/deployments/m/traffic", AUTH_NEED_ADMIN},
        {"PATCH", "/deployments/deploy", AUTH_NEED_ADMIN},
        {"POST", "/MODELS", AUTH_NEED_ADMIN},
        {"POST", "/modelsX", AUTH_NEED_ADMIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        auth_need got = auth_route_need(cases[i].method, cases[i].path);
        if (got != cases[i].need)
            fail_msg("%s %s needs %d, want %d", cases[i].method, cases[i].path, got, cases[i].need);
    }
}

static void test_loopback_hosts(void **state)
{
    (void)state;
    const char *yes[] = {"localhost", "localhost:8080", "LOCALHOST", "localhost.", "a.localhost:1",
                         "127.0.0.1", "127.0.0.1:8080", "127.1.2.3", "[::1]",      "[::1]:8080"};
    const char *no[] = {
        "",          "evil.com",    "evil.com:8080", "localhost.evil.com", "127.0.0.1.evil.com",
        "10.0.0.1",  "[::2]:80",    "127.0.0.1:80x", "128.0.0.1",          "localhost:8080:1",
        "[::1]x",    "127.0.0.256", "127.1",         "127.+0.0.1",         "0x7f.0.0.1",
        "127.0.0.01"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!auth_host_is_loopback(yes[i]))
            fail_msg("%s should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (auth_host_is_loopback(no[i]))
            fail_msg("%s should not be loopback", no[i]);
    assert_false(auth_host_is_loopback(NULL));
}

static void test_origins(void **state)
{
    (void)state;
    assert_true(auth_origin_is_same("http://127.0.0.1:8080", "127.0.0.1:8080", false));
    assert_false(auth_origin_is_same("https://127.0.0.1:8080", "127.0.0.1:8080", false));
    assert_true(auth_origin_is_same("https://h:8443", "h:8443", true));
    assert_false(auth_origin_is_same("http://evil.com", "127.0.0.1:8080", false));
    assert_false(auth_origin_is_same("null", "127.0.0.1:8080", false));
    assert_false(auth_origin_is_same("http://127.0.0.1:8080", NULL, false));
    const char *list = "https://a.example, http://b.example:3000";
    assert_true(auth_origin_listed("https://a.example", list));
    assert_true(auth_origin_listed("http://b.example:3000", list));
    assert_false(auth_origin_listed("http://b.example", list));
    assert_false(auth_origin_listed("https://a.example.evil", list));
    assert_false(auth_origin_listed("https://a.example", NULL));
    assert_true(auth_origin_listed("http://anything", "*"));
    assert_true(auth_method_is_safe("GET") && auth_method_is_safe("HEAD") &&
                auth_method_is_safe("OPTIONS"));
    assert_false(auth_method_is_safe("POST") || auth_method_is_safe("PUT") ||
                 auth_method_is_safe("DELETE") || auth_method_is_safe("PATCH"));
}

/* ---- JWT ------------------------------------------------------------------------------------- */

/* Write the HS256 secret file of the fixture into path (128 bytes). */
static void hs_secret_file(struct fixture *f, char *path)
{
    snprintf(path, 128, "%s/hs.secret", f->dir);
    write_file(path, HS_SECRET "\n");
}

static auth_jwt *hs_verifier(struct fixture *f, const char *issuer, const char *audience)
{
    char path[128];
    hs_secret_file(f, path);
    auth_config cfg = {
        .jwt_hs256_secret_file = path, .jwt_issuer = issuer, .jwt_audience = audience};
    auth_jwt *j = NULL;
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), 0);
    assert_non_null(j);
    return j;
}

static int verify(const auth_jwt *j, const char *token, auth_principal *who, char *why)
{
    return auth_jwt_verify(j, token, time(NULL), who, why, 160);
}

static void test_jwt_hs256_valid_token_gives_role_and_subject(void **state)
{
    struct fixture *f = *state;
    auth_jwt *j = hs_verifier(f, NULL, NULL);
    char *t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims("\"role\":\"deployer\"", 600));
    auth_principal who = {0};
    char why[160] = "";
    assert_int_equal(verify(j, t, &who, why), 0);
    assert_true(who.authenticated);
    assert_int_equal(who.role, AUTH_ROLE_DEPLOYER);
    assert_string_equal(who.name, "jwt:alice");
    free(t);
    auth_jwt_free(j);
}

static void test_jwt_refuses_bad_signatures_and_alg_none(void **state)
{
    struct fixture *f = *state;
    auth_jwt *j = hs_verifier(f, NULL, NULL);
    auth_principal who = {0};
    char why[160];
    char *t = make_jwt(JWT_ALG_HS256, "another-secret-another-secret-another!",
                       claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "signature"));
    free(t);
    t = make_jwt(JWT_ALG_NONE, NULL, claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "HS256"));
    free(t);
    /* a valid token with its last signature character changed */
    t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims("\"role\":\"admin\"", 600));
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(j, t, &who, why), -1);
    free(t);
    /* a valid token with its payload changed (role upgraded) */
    t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims("\"role\":\"viewer\"", 600));
    char *forged = make_jwt(JWT_ALG_HS256, "x-other-key-x-other-key-x-other-key-x",
                            claims("\"role\":\"admin\"", 600));
    char *p1 = strchr(t, '.'), *p2 = strchr(forged, '.');
    char *s1 = strrchr(t, '.');
    char spliced[2048];
    snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(p1 - t), t,
             (int)(strrchr(forged, '.') - p2), p2, s1);
    assert_int_equal(verify(j, spliced, &who, why), -1);
    free(t);
    free(forged);
    assert_int_equal(verify(j, "not-a-jwt", &who, why), -1);
    assert_int_equal(verify(j, "a.b", &who, why), -1);
    assert_int_equal(verify(j, "a.b.c.d", &who, why), -1);
    assert_int_equal(verify(j, "..", &who, why), -1);
    assert_false(who.authenticated);
    auth_jwt_free(j);
}

static void test_jwt_checks_exp_nbf_iss_aud_and_role(void **state)
{
    struct fixture *f = *state;
    auth_jwt *j = hs_verifier(f, "https://idp.example", "dynserve");
    auth_principal who = {0};
    char why[160], extra[256];
    const char *ok = "\"role\":\"viewer\",\"iss\":\"https://idp.example\",\"aud\":\"dynserve\"";
    char *t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims(ok, 600));
    assert_int_equal(verify(j, t, &who, why), 0);
    free(t);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims(ok, -3600)); /* expired an hour ago */
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "expired"));
    free(t);
    snprintf(extra, sizeof extra, "%s,\"nbf\":%ld", ok, (long)time(NULL) + 3600);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims(extra, 7200));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "nbf"));
    free(t);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET,
                 claims("\"role\":\"viewer\",\"iss\":\"https://evil\",\"aud\":\"dynserve\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "iss"));
    free(t);
    t = make_jwt(
        JWT_ALG_HS256, HS_SECRET,
        claims("\"role\":\"viewer\",\"iss\":\"https://idp.example\",\"aud\":\"other\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "aud"));
    free(t);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET,
                 claims("\"role\":\"viewer\",\"iss\":\"https://idp.example\","
                        "\"aud\":[\"other\",\"dynserve\"]",
                        600));
    assert_int_equal(verify(j, t, &who, why), 0);
    free(t);
    t = make_jwt(
        JWT_ALG_HS256, HS_SECRET,
        claims("\"role\":\"root\",\"iss\":\"https://idp.example\",\"aud\":\"dynserve\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "role"));
    free(t);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET,
                 "{\"role\":\"viewer\",\"iss\":\"https://idp.example\",\"aud\":\"dynserve\"}");
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "exp"));
    free(t);
    auth_jwt_free(j);
}

static void test_jwt_role_claim_is_configurable(void **state)
{
    struct fixture *f = *state;
    char path[128];
    hs_secret_file(f, path);
    auth_config cfg = {.jwt_hs256_secret_file = path, .jwt_role_claim = "dynserve_role"};
    auth_jwt *j = NULL;
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), 0);
    auth_principal who = {0};
    char why[160];
    char *t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1); /* "role" is not the configured claim */
    free(t);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims("\"dynserve_role\":\"inference\"", 600));
    assert_int_equal(verify(j, t, &who, why), 0);
    assert_int_equal(who.role, AUTH_ROLE_INFERENCE);
    free(t);
    auth_jwt_free(j);
}

static void test_jwt_rs256_and_algorithm_confusion(void **state)
{
    struct fixture *f = *state;
    make_rsa(f);
    char path[128];
    snprintf(path, sizeof path, "%s/rs.pub", f->dir);
    write_file(path, f->rsa_public);
    auth_config cfg = {.jwt_rs256_public_key = path};
    auth_jwt *j = NULL;
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), 0);
    auth_principal who = {0};
    char why[160];
    char *t = make_jwt(JWT_ALG_RS256, f->rsa_private, claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), 0);
    assert_int_equal(who.role, AUTH_ROLE_ADMIN);
    free(t);
    /* The classic confusion: HS256 signed with the public key's PEM text as the secret. */
    t = make_jwt(JWT_ALG_HS256, f->rsa_public, claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    assert_non_null(strstr(why, "RS256"));
    free(t);
    t = make_jwt(JWT_ALG_NONE, NULL, claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    free(t);
    /* signed by another key pair */
    char other[4096];
    snprintf(other, sizeof other, "%s", f->rsa_private);
    make_rsa(f);
    t = make_jwt(JWT_ALG_RS256, f->rsa_private, claims("\"role\":\"admin\"", 600));
    assert_int_equal(verify(j, t, &who, why), -1);
    free(t);
    auth_jwt_free(j);
}

static void test_jwt_keys_are_checked_at_start(void **state)
{
    struct fixture *f = *state;
    char path[128];
    auth_jwt *j = NULL;
    snprintf(path, sizeof path, "%s/short.secret", f->dir);
    write_file(path, "too-short\n");
    auth_config cfg = {.jwt_hs256_secret_file = path};
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "32"));
    cfg = (auth_config){.jwt_rs256_public_key = path};
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "PEM"));
    snprintf(path, sizeof path, "%s/missing", f->dir);
    cfg = (auth_config){.jwt_hs256_secret_file = path};
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), -1);
    cfg = (auth_config){.jwt_hs256_secret_file = path, .jwt_rs256_public_key = path};
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "not both"));
    cfg = (auth_config){0};
    assert_int_equal(auth_jwt_new(&cfg, &j, f->err, sizeof f->err), 0);
    assert_null(j);
}

/* ---- decisions ------------------------------------------------------------------------------- */

static void test_without_tokens_everything_is_open_on_loopback_names_only(void **state)
{
    struct fixture *f = *state;
    start(f, (auth_config){.loopback_listener = true});
    assert_false(auth_enabled(f->a));
    auth_decision d;
    assert_int_equal(decide(f, "POST", "/models", NULL, &d), 0);
    assert_false(d.who.authenticated);
    assert_int_equal(d.who.role, AUTH_ROLE_ADMIN);
    auth_request r = {.method = "GET", .path = "/models", .host = "evil.example:8080"};
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 403); /* DNS rebinding */
    r.host = "localhost:8080";
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
    r.host = NULL; /* HTTP/1.0 without Host: not a browser */
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
    /* --insecure on a non-loopback listener: no Host rule */
    start(f, (auth_config){.loopback_listener = false});
    r.host = "evil.example:8080";
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
}

static void test_foreign_origin_cannot_change_state(void **state)
{
    struct fixture *f = *state;
    start(f, (auth_config){.loopback_listener = true, .cors_origins = "https://ui.example"});
    auth_decision d;
    auth_request r = {.method = "POST",
                      .path = "/deployments/deploy",
                      .host = "127.0.0.1:8080",
                      .origin = "http://evil.example"};
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 403);
    assert_non_null(strstr(d.message, "cross-origin"));
    r.origin = "null";
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 403);
    r.origin = "http://127.0.0.1:8080"; /* the dashboard itself */
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
    assert_string_equal(d.allow_origin, "");
    r.origin = "https://ui.example"; /* listed */
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
    assert_string_equal(d.allow_origin, "https://ui.example");
    r.origin = NULL; /* curl */
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
    r.method = "GET"; /* reads are not refused for their Origin (CORS keeps them unreadable) */
    r.origin = "http://evil.example";
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
    assert_string_equal(d.allow_origin, "");
}

static void test_preflights_are_answered_only_for_listed_origins(void **state)
{
    struct fixture *f = *state;
    start(f, (auth_config){.loopback_listener = true, .cors_origins = "https://ui.example"});
    auth_decision d;
    auth_request r = {.method = "OPTIONS",
                      .path = "/models",
                      .host = "127.0.0.1:8080",
                      .origin = "http://evil.example",
                      .acr_method = "POST"};
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 403);
    assert_string_equal(d.allow_origin, "");
    r.origin = "https://ui.example";
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 204);
    assert_string_equal(d.allow_origin, "https://ui.example");
    start(f, (auth_config){.loopback_listener = true}); /* no --cors-origin: no CORS at all */
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 403);
}

static void test_tokens_turn_auth_on_and_roles_apply(void **state)
{
    struct fixture *f = *state;
    start(f, (auth_config){.loopback_listener = true});
    char admin[AUTH_TOKEN_TEXT_MAX], viewer[AUTH_TOKEN_TEXT_MAX], infer[AUTH_TOKEN_TEXT_MAX];
    reg_token row;
    assert_int_equal(
        auth_token_create(f->reg, "root", AUTH_ROLE_ADMIN, 0, admin, &row, f->err, sizeof f->err),
        REG_OK);
    assert_string_equal(row.name, "root");
    assert_string_equal(row.role, "admin");
    assert_string_equal(row.expires_at, "");
    assert_int_equal(auth_token_create(f->reg, "eyes", AUTH_ROLE_VIEWER, 3600, viewer, NULL, f->err,
                                       sizeof f->err),
                     REG_OK);
    assert_int_equal(
        auth_token_create(f->reg, "ml", AUTH_ROLE_INFERENCE, 0, infer, NULL, f->err, sizeof f->err),
        REG_OK);
    char dup[AUTH_TOKEN_TEXT_MAX];
    assert_int_equal(
        auth_token_create(f->reg, "root", AUTH_ROLE_VIEWER, 0, dup, NULL, f->err, sizeof f->err),
        REG_EXISTS);
    auth_decision d;
    assert_int_equal(decide(f, "POST", "/models", NULL, &d), 0); /* not reloaded yet */
    auth_reload(f->a);
    assert_true(auth_enabled(f->a));
    assert_int_equal(decide(f, "POST", "/models", NULL, &d), 401);
    assert_int_equal(decide(f, "POST", "/models", admin, &d), 0);
    assert_string_equal(d.who.name, "root");
    assert_int_equal(decide(f, "GET", "/models", viewer, &d), 0);
    assert_int_equal(decide(f, "POST", "/models", viewer, &d), 403);
    assert_non_null(strstr(d.message, "viewer"));
    assert_int_equal(decide(f, "GET", "/models", infer, &d), 403);
    /* the data plane is open by default, whatever the token */
    assert_int_equal(decide(f, "POST", "/v2/models/m/infer", NULL, &d), 0);
    assert_int_equal(decide(f, "GET", "/v2/health/live", NULL, &d), 0);
    assert_int_equal(decide(f, "GET", "/auth/whoami", NULL, &d), 401);
    assert_int_equal(decide(f, "GET", "/auth/whoami", infer, &d), 0);
    /* a bad token never appears in the message */
    char bad[AUTH_TOKEN_TEXT_MAX];
    snprintf(bad, sizeof bad, "%s", admin);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(decide(f, "GET", "/models", bad, &d), 401);
    assert_null(strstr(d.message, bad));
    assert_null(strstr(d.message, "dsk_"));
    /* and no Host rule once auth is on */
    auth_request r = {.method = "GET", .path = "/v2", .host = "evil.example"};
    auth_decide(f->a, &r, &d);
    assert_int_equal(status_of(&d), 0);
}

static void test_inference_auth_required_closes_the_data_plane(void **state)
{
    struct fixture *f = *state;
    char infer[AUTH_TOKEN_TEXT_MAX], viewer[AUTH_TOKEN_TEXT_MAX], dep[AUTH_TOKEN_TEXT_MAX];
    assert_int_equal(
        auth_token_create(f->reg, "ml", AUTH_ROLE_INFERENCE, 0, infer, NULL, f->err, sizeof f->err),
        REG_OK);
    assert_int_equal(
        auth_token_create(f->reg, "eyes", AUTH_ROLE_VIEWER, 0, viewer, NULL, f->err, sizeof f->err),
        REG_OK);
    assert_int_equal(
        auth_token_create(f->reg, "ops", AUTH_ROLE_DEPLOYER, 0, dep, NULL, f->err, sizeof f->err),
        REG_OK);
    start(f, (auth_config){.loopback_listener = true, .infer_auth_required = true});
    auth_decision d;
    assert_int_equal(decide(f, "POST", "/v2/models/m/infer", NULL, &d), 401);
    assert_int_equal(decide(f, "POST", "/v2/models/m/infer", infer, &d), 0);
    assert_int_equal(decide(f, "POST", "/predict/quad", dep, &d), 0);
    assert_int_equal(decide(f, "POST", "/v2/models/m/infer", viewer, &d), 403);
    assert_int_equal(decide(f, "GET", "/v2/health/ready", NULL, &d), 0);
}

static void test_revoked_and_expired_tokens_are_refused(void **state)
{
    struct fixture *f = *state;
    char t[AUTH_TOKEN_TEXT_MAX], keep[AUTH_TOKEN_TEXT_MAX];
    reg_token row;
    assert_int_equal(
        auth_token_create(f->reg, "ci", AUTH_ROLE_ADMIN, 0, t, &row, f->err, sizeof f->err),
        REG_OK);
    assert_int_equal(
        auth_token_create(f->reg, "keep", AUTH_ROLE_ADMIN, 1, keep, NULL, f->err, sizeof f->err),
        REG_OK);
    start(f, (auth_config){.loopback_listener = true});
    auth_decision d;
    assert_int_equal(decide(f, "GET", "/tokens", t, &d), 0);
    reg_token revoked;
    assert_int_equal(registry_token_revoke(f->reg, "ci", &revoked, f->err, sizeof f->err), REG_OK);
    assert_string_equal(revoked.id, row.id);
    auth_reload(f->a);
    assert_int_equal(decide(f, "GET", "/tokens", t, &d), 401);
    assert_non_null(strstr(d.message, "revoked"));
    sleep(2); /* "keep" expires after one second */
    assert_int_equal(decide(f, "GET", "/tokens", keep, &d), 401);
    assert_non_null(strstr(d.message, "expired"));
    /* every token revoked or expired: auth stays on (the API locks instead of opening) */
    assert_int_equal(registry_token_revoke(f->reg, "keep", NULL, f->err, sizeof f->err), REG_OK);
    auth_reload(f->a);
    assert_true(auth_enabled(f->a));
    assert_int_equal(decide(f, "GET", "/models", NULL, &d), 401);
}

static int collect_last_use(void *ud, const reg_token *tok)
{
    snprintf(ud, REG_TIME_MAX, "%s", tok->last_used_at);
    return 0;
}

static void test_last_use_is_saved(void **state)
{
    struct fixture *f = *state;
    char t[AUTH_TOKEN_TEXT_MAX];
    assert_int_equal(
        auth_token_create(f->reg, "ci", AUTH_ROLE_VIEWER, 0, t, NULL, f->err, sizeof f->err),
        REG_OK);
    start(f, (auth_config){.loopback_listener = true});
    auth_decision d;
    assert_int_equal(decide(f, "GET", "/models", t, &d), 0);
    auth_free(f->a); /* saves last use */
    f->a = NULL;
    char last[REG_TIME_MAX] = "";
    assert_int_equal(registry_token_list(f->reg, collect_last_use, last, f->err, sizeof f->err),
                     REG_OK);
    assert_true(last[0] != '\0');
    time_t at = auth_time_parse(last);
    assert_true(at > time(NULL) - 60 && at <= time(NULL));
}

static void test_admin_token_file_ensures_the_bootstrap_token(void **state)
{
    struct fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/admin.token", f->dir);
    write_file(path, "s3cret-from-a-k8s-secret-0123456789\n");
    start(f, (auth_config){.loopback_listener = true, .admin_token_file = path});
    assert_true(auth_enabled(f->a));
    auth_decision d;
    assert_int_equal(decide(f, "POST", "/tokens", "s3cret-from-a-k8s-secret-0123456789", &d), 0);
    assert_string_equal(d.who.name, "bootstrap");
    assert_int_equal(d.who.role, AUTH_ROLE_ADMIN);
    assert_int_equal(decide(f, "POST", "/tokens", "s3cret-from-a-k8s-secret-012345678", &d), 401);
    /* same file again: nothing changes; a new secret replaces the old one */
    start(f, (auth_config){.loopback_listener = true, .admin_token_file = path});
    assert_int_equal(decide(f, "GET", "/tokens", "s3cret-from-a-k8s-secret-0123456789", &d), 0);
    write_file(path, "rotated-secret-rotated-secret-42");
    start(f, (auth_config){.loopback_listener = true, .admin_token_file = path});
    assert_int_equal(decide(f, "GET", "/tokens", "rotated-secret-rotated-secret-42", &d), 0);
    assert_int_equal(decide(f, "GET", "/tokens", "s3cret-from-a-k8s-secret-0123456789", &d), 401);
    /* a short secret is refused at start */
    write_file(path, "short\n");
    auth_config cfg = {.loopback_listener = true, .admin_token_file = path};
    auth *a = NULL;
    assert_int_equal(auth_new(&cfg, f->reg, &a, f->err, sizeof f->err), -1);
    assert_null(a);
}

static void test_jwt_decisions(void **state)
{
    struct fixture *f = *state;
    char path[128];
    hs_secret_file(f, path);
    start(f, (auth_config){.loopback_listener = true,
                           .jwt_hs256_secret_file = path,
                           .jwt_audience = "dynserve"});
    assert_true(auth_enabled(f->a)); /* a key alone turns auth on */
    assert_true(auth_jwt_configured(f->a));
    auth_decision d;
    char *t = make_jwt(JWT_ALG_HS256, HS_SECRET,
                       claims("\"role\":\"deployer\",\"aud\":\"dynserve\"", 600));
    assert_int_equal(decide(f, "POST", "/deployments/deploy", t, &d), 0);
    assert_string_equal(d.who.name, "jwt:alice");
    assert_int_equal(decide(f, "POST", "/models", t, &d), 403);
    free(t);
    t = make_jwt(JWT_ALG_HS256, HS_SECRET, claims("\"role\":\"deployer\",\"aud\":\"x\"", 600));
    assert_int_equal(decide(f, "POST", "/deployments/deploy", t, &d), 401);
    free(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* auth_hmac_sha256 is a hand-rolled RFC 2104 over a pre-fetched SHA-256 (no per-call lookup):
 * RFC 4231 test cases 2 (short key) and 6 (key longer than the block), and equal to OpenSSL's
 * HMAC() on a token-shaped input, so hashes stored before still match. */
static void test_hmac_sha256_matches_rfc_4231_and_openssl(void **state)
{
    (void)state;
    unsigned char out[32], want[32], key6[131];
    char hex[65];
    assert_true(auth_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out));
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", out[i]);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key6, 0xaa, sizeof key6);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_true(auth_hmac_sha256(key6, sizeof key6, m6, strlen(m6), out));
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", out[i]);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    unsigned char salt[AUTH_SALT_BYTES];
    memset(salt, 7, sizeof salt);
    const char *tok = "dsk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    unsigned int n = 32;
    assert_non_null(
        HMAC(EVP_sha256(), salt, sizeof salt, (const unsigned char *)tok, strlen(tok), want, &n));
    auth_token_hash(salt, tok, strlen(tok), out);
    assert_memory_equal(out, want, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_generated_token_parses_back_to_its_id),
        T(test_hmac_sha256_matches_rfc_4231_and_openssl),
        T(test_token_parse_refuses_other_shapes),
        T(test_hash_matches_only_the_same_text_and_salt),
        T(test_durations_take_units_and_refuse_junk),
        T(test_times_round_trip),
        T(test_roles_parse_and_grant_their_rights),
        T(test_every_route_declares_its_need),
        T(test_loopback_hosts),
        T(test_origins),
        T(test_jwt_hs256_valid_token_gives_role_and_subject),
        T(test_jwt_refuses_bad_signatures_and_alg_none),
        T(test_jwt_checks_exp_nbf_iss_aud_and_role),
        T(test_jwt_role_claim_is_configurable),
        T(test_jwt_rs256_and_algorithm_confusion),
        T(test_jwt_keys_are_checked_at_start),
        T(test_without_tokens_everything_is_open_on_loopback_names_only),
        T(test_foreign_origin_cannot_change_state),
        T(test_preflights_are_answered_only_for_listed_origins),
        T(test_tokens_turn_auth_on_and_roles_apply),
        T(test_inference_auth_required_closes_the_data_plane),
        T(test_revoked_and_expired_tokens_are_refused),
        T(test_last_use_is_saved),
        T(test_admin_token_file_ensures_the_bootstrap_token),
        T(test_jwt_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
