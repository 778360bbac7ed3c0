/*
 * Unit tests for src/base/config.c: defaults, every flag as `--flag value` and `--flag=value`, the
 * DYNSERVE_* environment twins, the flag beating the environment, and the errors a bad command
 * line or environment gets (CONFIG_ERROR with a message naming the flag), --help/--version.
 *
 * Every test starts from an environment without DYNSERVE_* variables (setup clears them), so the
 * environment ctest runs in cannot leak in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define ERRLEN 512

/* One flag, its environment twin, a valid value and how to read it back. */
typedef enum field_kind { F_STR, F_INT, F_I64 } field_kind;

typedef struct flag_case {
    const char *flag; /* without "--" */
    const char *env;
    const char *value;
    field_kind kind;
    size_t offset;
} flag_case;

#define STR_CASE(f, e, v, field)                                                                   \
    {                                                                                              \
        f, e, v, F_STR, offsetof(ds_config, field)                                                 \
    }
#define INT_CASE(f, e, v, field)                                                                   \
    {                                                                                              \
        f, e, v, F_INT, offsetof(ds_config, field)                                                 \
    }
#define I64_CASE(f, e, v, field)                                                                   \
    {                                                                                              \
        f, e, v, F_I64, offsetof(ds_config, field)                                                 \
    }

static const flag_case flags[] = {
    STR_CASE("host", "DYNSERVE_HOST", "192.0.2.7", host),
    INT_CASE("port", "DYNSERVE_PORT", "9123", port),
    STR_CASE("data-dir", "DYNSERVE_DATA_DIR", "/srv/dynserve-data", data_dir),
    STR_CASE("model-repository", "DYNSERVE_MODEL_REPOSITORY", "/srv/models", model_repository),
    STR_CASE("web-root", "DYNSERVE_WEB_ROOT", "/srv/web", web_root),
    INT_CASE("threads", "DYNSERVE_THREADS", "17", threads),
    I64_CASE("max-body-bytes", "DYNSERVE_MAX_BODY_BYTES", "8589934592", max_body_bytes),
    I64_CASE("max-upload-bytes", "DYNSERVE_MAX_UPLOAD_BYTES", "12345678901", max_upload_bytes),
    INT_CASE("request-timeout-ms", "DYNSERVE_REQUEST_TIMEOUT_MS", "2500", request_timeout_ms),
    INT_CASE("keep-alive-ms", "DYNSERVE_KEEP_ALIVE_MS", "750", keep_alive_ms),
    INT_CASE("default-max-in-flight", "DYNSERVE_DEFAULT_MAX_IN_FLIGHT", "9", default_max_in_flight),
    INT_CASE("thread-reserve", "DYNSERVE_THREAD_RESERVE", "5", thread_reserve),
    I64_CASE("max-elements", "DYNSERVE_MAX_ELEMENTS", "5000000000", max_elements),
    INT_CASE("max-depth", "DYNSERVE_MAX_DEPTH", "12", max_depth),
    INT_CASE("stats-flush-s", "DYNSERVE_STATS_FLUSH_S", "3", stats_flush_s),
    STR_CASE("log-level", "DYNSERVE_LOG_LEVEL", "debug", log_level),
    STR_CASE("jwt-hs256-secret-file", "DYNSERVE_JWT_HS256_SECRET_FILE", "/run/s/jwt",
             jwt_hs256_secret_file),
    STR_CASE("jwt-role-claim", "DYNSERVE_JWT_ROLE_CLAIM", "dynserve_role", jwt_role_claim),
    STR_CASE("jwt-issuer", "DYNSERVE_JWT_ISSUER", "https://idp.example", jwt_issuer),
    STR_CASE("jwt-audience", "DYNSERVE_JWT_AUDIENCE", "dynserve", jwt_audience),
    STR_CASE("infer-auth", "DYNSERVE_INFER_AUTH", "required", infer_auth),
    STR_CASE("cors-origin", "DYNSERVE_CORS_ORIGIN", "https://a.example,https://b.example",
             cors_origin),
    STR_CASE("admin-token-file", "DYNSERVE_ADMIN_TOKEN_FILE", "/run/secrets/t", admin_token_file),
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++)
        unsetenv(flags[i].env);
    unsetenv("DYNSERVE_INSECURE"); /* a bare flag: tested on its own */
    unsetenv("DYNSERVE_TLS_CERT");
    unsetenv("DYNSERVE_TLS_KEY");
    unsetenv("DYNSERVE_JWT_RS256_PUBLIC_KEY");
    return 0;
}

/* The field of cfg that `c` describes, as text, for comparison with c->value. */
static void field_text(const ds_config *cfg, const flag_case *c, char *out, size_t n)
{
    const char *p = (const char *)cfg + c->offset;
    switch (c->kind) {
    case F_STR: snprintf(out, n, "%s", p); break;
    case F_INT: snprintf(out, n, "%d", *(const int *)(const void *)p); break;
    case F_I64: snprintf(out, n, "%lld", (long long)*(const int64_t *)(const void *)p); break;
    }
}

static enum config_result parse(ds_config *cfg, char *err, int argc, char **argv)
{
    err[0] = '\0';
    return config_parse(argc, argv, cfg, err, ERRLEN);
}

static enum config_result parse2(ds_config *cfg, char *err, const char *a, const char *b)
{
    char *argv[] = {"dynserve", (char *)a, (char *)b, NULL};
    return parse(cfg, err, b ? 3 : 2, argv);
}

static void binary_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(len > 0);
    exe[len] = '\0';
    snprintf(out, n, "%s", dirname(exe));
}

static void test_defaults_without_flags_or_environment(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN];
    char *argv[] = {"dynserve", NULL};
    assert_int_equal(parse(&cfg, err, 1, argv), CONFIG_OK);
    assert_string_equal(cfg.host, "127.0.0.1"); /* loopback unless asked (README "Security") */
    assert_int_equal(cfg.insecure, 0);
    assert_string_equal(cfg.tls_cert, "");
    assert_string_equal(cfg.jwt_role_claim, "role");
    assert_string_equal(cfg.infer_auth, "open");
    assert_string_equal(cfg.cors_origin, "");
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.data_dir, "./data");
    assert_int_equal(cfg.threads, 64);
    assert_int_equal(cfg.default_max_in_flight, 32); /* threads / 2 */
    assert_int_equal(cfg.thread_reserve, 8);         /* threads / 8 */
    assert_int_equal(cfg.max_body_bytes, 64LL << 20);
    assert_int_equal(cfg.max_upload_bytes, 256LL << 20);
    assert_int_equal(cfg.request_timeout_ms, 30000);
    assert_int_equal(cfg.keep_alive_ms, 5000);
    assert_int_equal(cfg.max_elements, 64LL << 20);
    assert_int_equal(cfg.max_depth, 32);
    assert_int_equal(cfg.stats_flush_s, 10);
    assert_string_equal(cfg.log_level, "info");
}

static void test_default_repository_and_web_root_sit_next_to_the_binary(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN], dir[PATH_MAX], want[PATH_MAX + 16];
    char *argv[] = {"dynserve", NULL};
    assert_int_equal(parse(&cfg, err, 1, argv), CONFIG_OK);
    binary_dir(dir, sizeof dir);
    snprintf(want, sizeof want, "%s/models", dir);
    assert_string_equal(cfg.model_repository, want);
    snprintf(want, sizeof want, "%s/web", dir);
    assert_string_equal(cfg.web_root, want);
}

static void test_every_flag_takes_a_separate_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++) {
        ds_config cfg;
        char err[ERRLEN], flag[64], got[PATH_MAX];
        snprintf(flag, sizeof flag, "--%s", flags[i].flag);
        assert_int_equal(parse2(&cfg, err, flag, flags[i].value), CONFIG_OK);
        field_text(&cfg, &flags[i], got, sizeof got);
        assert_string_equal(got, flags[i].value);
    }
}

static void test_every_flag_takes_an_equals_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++) {
        ds_config cfg;
        char err[ERRLEN], arg[PATH_MAX], got[PATH_MAX];
        snprintf(arg, sizeof arg, "--%s=%s", flags[i].flag, flags[i].value);
        assert_int_equal(parse2(&cfg, err, arg, NULL), CONFIG_OK);
        field_text(&cfg, &flags[i], got, sizeof got);
        assert_string_equal(got, flags[i].value);
    }
}

static void test_all_flags_together(void **state)
{
    (void)state;
    char *argv[2 * N_FLAGS + 1];
    char storage[N_FLAGS][PATH_MAX];
    int argc = 0;
    argv[argc++] = "dynserve";
    for (size_t i = 0; i < N_FLAGS; i++) {
        /* alternate the two spellings */
        if (i % 2 == 0) {
            snprintf(storage[i], sizeof storage[i], "--%s=%s", flags[i].flag, flags[i].value);
            argv[argc++] = storage[i];
        } else {
            snprintf(storage[i], sizeof storage[i], "--%s", flags[i].flag);
            argv[argc++] = storage[i];
            argv[argc++] = (char *)flags[i].value;
        }
    }
    ds_config cfg;
    char err[ERRLEN], got[PATH_MAX];
    assert_int_equal(parse(&cfg, err, argc, argv), CONFIG_OK);
    for (size_t i = 0; i < N_FLAGS; i++) {
        field_text(&cfg, &flags[i], got, sizeof got);
        assert_string_equal(got, flags[i].value);
    }
}

static void test_equals_value_may_contain_equals_signs(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN];
    assert_int_equal(parse2(&cfg, err, "--data-dir=/tmp/a=b", NULL), CONFIG_OK);
    assert_string_equal(cfg.data_dir, "/tmp/a=b");
}

static void test_the_last_of_a_repeated_flag_wins(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN];
    char *argv[] = {"dynserve", "--port", "1000", "--port=2000", NULL};
    assert_int_equal(parse(&cfg, err, 4, argv), CONFIG_OK);
    assert_int_equal(cfg.port, 2000);
}

static void test_every_environment_twin_sets_its_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++) {
        ds_config cfg;
        char err[ERRLEN], got[PATH_MAX];
        assert_int_equal(setenv(flags[i].env, flags[i].value, 1), 0);
        char *argv[] = {"dynserve", NULL};
        enum config_result r = parse(&cfg, err, 1, argv);
        unsetenv(flags[i].env);
        assert_int_equal(r, CONFIG_OK);
        field_text(&cfg, &flags[i], got, sizeof got);
        assert_string_equal(got, flags[i].value);
    }
}

static void test_the_flag_beats_its_environment_twin(void **state)
{
    (void)state;
    setenv("DYNSERVE_DATA_DIR", "/from/env", 1);
    setenv("DYNSERVE_THREADS", "8", 1);
    setenv("DYNSERVE_PORT", "7000", 1);
    ds_config cfg;
    char err[ERRLEN];
    char *argv[] = {"dynserve", "--threads", "16", "--data-dir=/from/flag", NULL};
    enum config_result r = parse(&cfg, err, 4, argv);
    unsetenv("DYNSERVE_DATA_DIR");
    unsetenv("DYNSERVE_THREADS");
    unsetenv("DYNSERVE_PORT");
    assert_int_equal(r, CONFIG_OK);
    assert_string_equal(cfg.data_dir, "/from/flag");
    assert_int_equal(cfg.threads, 16);
    assert_int_equal(cfg.default_max_in_flight, 8); /* follows --threads unless set */
    assert_int_equal(cfg.thread_reserve, 2);        /* likewise */
    assert_int_equal(cfg.port, 7000);               /* no flag: the environment stays */
}

static void expect_error(int argc, char **argv, const char *words)
{
    ds_config cfg;
    char err[ERRLEN];
    assert_int_equal(parse(&cfg, err, argc, argv), CONFIG_ERROR);
    if (strstr(err, words) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, words);
}

static void test_unknown_flag_is_an_error_naming_it(void **state)
{
    (void)state;
    char *a[] = {"dynserve", "--colour", "red", NULL};
    expect_error(3, a, "--colour");
    char *b[] = {"dynserve", "--port=80", "--no-such-thing=1", NULL};
    expect_error(3, b, "--no-such-thing");
    char *c[] = {"dynserve", "--portx", "80", NULL}; /* a prefix of nothing, not --port */
    expect_error(3, c, "--portx");
    char *d[] = {"dynserve", "--por", "80", NULL}; /* no abbreviations */
    expect_error(3, d, "--por");
}

static void test_flag_without_value_is_an_error_naming_it(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_FLAGS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", flags[i].flag);
        char *argv[] = {"dynserve", flag, NULL};
        expect_error(2, argv, flags[i].flag);
    }
}

static void test_empty_value_is_an_error_naming_the_flag(void **state)
{
    (void)state;
    char *a[] = {"dynserve", "--port=", NULL};
    expect_error(2, a, "port");
    char *b[] = {"dynserve", "--data-dir=", NULL};
    expect_error(2, b, "data-dir");
    char *c[] = {"dynserve", "--host", "", NULL};
    expect_error(3, c, "host");
}

static void test_out_of_range_numbers_are_errors_naming_the_flag(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value;
    } cases[] = {
        {"port", "65536"},
        {"port", "-1"},
        {"threads", "1"},
        {"threads", "4097"},
        {"max-body-bytes", "0"},
        {"max-upload-bytes", "0"},
        {"request-timeout-ms", "99"},
        {"keep-alive-ms", "-5"},
        {"max-elements", "0"},
        {"max-depth", "1"},
        {"max-depth", "1025"},
        {"stats-flush-s", "0"},
        {"stats-flush-s", "86401"},
        {"port", "99999999999999999999999"},            /* overflows long long */
        {"max-body-bytes", "-99999999999999999999999"}, /* underflows */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char arg[128];
        snprintf(arg, sizeof arg, "--%s=%s", cases[i].flag, cases[i].value);
        char *argv[] = {"dynserve", arg, NULL};
        expect_error(2, argv, cases[i].flag);
    }
}

static void test_range_limits_themselves_are_accepted(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN];
    assert_int_equal(parse2(&cfg, err, "--port=0", NULL), CONFIG_OK); /* 0: any free port */
    assert_int_equal(cfg.port, 0);
    assert_int_equal(parse2(&cfg, err, "--port=65535", NULL), CONFIG_OK);
    assert_int_equal(cfg.port, 65535);
    assert_int_equal(parse2(&cfg, err, "--threads=2", NULL), CONFIG_OK);
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(cfg.default_max_in_flight, 1);
    assert_int_equal(cfg.thread_reserve, 1); /* at least one thread inference cannot take */
    assert_int_equal(parse2(&cfg, err, "--thread-reserve=0", NULL), CONFIG_OK);
    assert_int_equal(cfg.thread_reserve, 0); /* 0: no server-wide cap */
    assert_int_equal(parse2(&cfg, err, "--default-max-in-flight=0", NULL), CONFIG_OK);
    assert_int_equal(cfg.default_max_in_flight, 0); /* 0: no limit, as before */
    assert_int_equal(parse2(&cfg, err, "--keep-alive-ms=0", NULL), CONFIG_OK);
    assert_int_equal(cfg.keep_alive_ms, 0);
}

static void test_thread_reserve_must_leave_inference_a_thread(void **state)
{
    (void)state;
    char *a[] = {"dynserve", "--threads", "4", "--thread-reserve", "4", NULL};
    expect_error(5, a, "--thread-reserve");
}

static void test_non_numbers_are_errors_naming_the_flag(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value;
    } cases[] = {
        {"threads", "many"},  {"port", "80x"},           {"port", "8.5"},
        {"max-depth", "1e3"}, {"keep-alive-ms", "0x10"}, {"max-elements", "--"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"dynserve", NULL, (char *)cases[i].value, NULL};
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", cases[i].flag);
        argv[1] = flag;
        expect_error(3, argv, cases[i].flag);
    }
}

static void test_too_long_strings_are_errors_naming_the_flag(void **state)
{
    (void)state;
    char host[200];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char *a[] = {"dynserve", "--host", host, NULL};
    expect_error(3, a, "host");
    char *path = malloc(PATH_MAX + 10);
    assert_non_null(path);
    memset(path, 'p', PATH_MAX + 9);
    path[PATH_MAX + 9] = '\0';
    char *b[] = {"dynserve", "--data-dir", path, NULL};
    expect_error(3, b, "data-dir");
    free(path);
}

static void test_unknown_log_level_is_an_error_naming_it(void **state)
{
    (void)state;
    char *a[] = {"dynserve", "--log-level", "loud", NULL};
    expect_error(3, a, "loud");
    static const char *const good[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < 4; i++) {
        ds_config cfg;
        char err[ERRLEN];
        assert_int_equal(parse2(&cfg, err, "--log-level", good[i]), CONFIG_OK);
        assert_string_equal(cfg.log_level, good[i]);
    }
}

static void test_stray_argument_is_an_error_naming_it(void **state)
{
    (void)state;
    char *a[] = {"dynserve", "extra", NULL};
    expect_error(2, a, "extra");
    char *b[] = {"dynserve", "--port", "80", "8081", NULL};
    expect_error(4, b, "8081");
}

static void test_bad_environment_values_are_errors_naming_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *env, *value;
    } cases[] = {
        {"DYNSERVE_PORT", "x"},    {"DYNSERVE_PORT", "70000"},
        {"DYNSERVE_THREADS", "0"}, {"DYNSERVE_MAX_BODY_BYTES", "big"},
        {"DYNSERVE_DATA_DIR", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv(cases[i].env, cases[i].value, 1);
        char *argv[] = {"dynserve", NULL};
        ds_config cfg;
        char err[ERRLEN];
        enum config_result r = parse(&cfg, err, 1, argv);
        unsetenv(cases[i].env);
        assert_int_equal(r, CONFIG_ERROR);
        if (strstr(err, cases[i].env) == NULL)
            fail_msg("error \"%s\" does not name %s", err, cases[i].env);
    }
    setenv("DYNSERVE_LOG_LEVEL", "chatty", 1);
    char *argv[] = {"dynserve", NULL};
    ds_config cfg;
    char err[ERRLEN];
    enum config_result r = parse(&cfg, err, 1, argv);
    unsetenv("DYNSERVE_LOG_LEVEL");
    assert_int_equal(r, CONFIG_ERROR);
    assert_non_null(strstr(err, "chatty"));
}

static void test_help_and_version_ask_to_exit(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN];
    fflush(stdout);
    assert_int_equal(parse2(&cfg, err, "--help", NULL), CONFIG_EXIT);
    assert_int_equal(parse2(&cfg, err, "--version", NULL), CONFIG_EXIT);
    /* They win over the rest of the command line, even a bad part after them. */
    assert_int_equal(parse2(&cfg, err, "--help", "--colour"), CONFIG_EXIT);
    char *argv[] = {"dynserve", "--port", "81", "--version", NULL};
    assert_int_equal(parse(&cfg, err, 4, argv), CONFIG_EXIT);
    fflush(stdout);
}

static void test_security_flags_that_go_together(void **state)
{
    (void)state;
    ds_config cfg;
    char err[ERRLEN];
    assert_int_equal(parse2(&cfg, err, "--insecure", NULL), CONFIG_OK); /* bare flag = true */
    assert_int_equal(cfg.insecure, 1);
    assert_int_equal(parse2(&cfg, err, "--insecure=false", NULL), CONFIG_OK);
    assert_int_equal(cfg.insecure, 0);
    assert_int_equal(parse2(&cfg, err, "--insecure=maybe", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "insecure"));
    setenv("DYNSERVE_INSECURE", "yes", 1);
    assert_int_equal(parse2(&cfg, err, "--port", "1"), CONFIG_OK);
    assert_int_equal(cfg.insecure, 1);
    unsetenv("DYNSERVE_INSECURE");
    assert_int_equal(parse2(&cfg, err, "--tls-cert", "/c.pem"), CONFIG_ERROR);
    assert_non_null(strstr(err, "--tls-key"));
    char *both[] = {"dynserve", "--tls-cert", "/c.pem", "--tls-key", "/k.pem", NULL};
    assert_int_equal(parse(&cfg, err, 5, both), CONFIG_OK);
    assert_string_equal(cfg.tls_cert, "/c.pem");
    assert_string_equal(cfg.tls_key, "/k.pem");
    assert_int_equal(parse2(&cfg, err, "--infer-auth", "sometimes"), CONFIG_ERROR);
    assert_non_null(strstr(err, "infer-auth"));
    char *two_keys[] = {"dynserve", "--jwt-hs256-secret-file", "/a", "--jwt-rs256-public-key",
                        "/b", NULL};
    assert_int_equal(parse(&cfg, err, 5, two_keys), CONFIG_ERROR);
    assert_non_null(strstr(err, "not both"));
}

static void test_usage_lists_every_flag_and_the_environment_rule(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    config_usage(out);
    fclose(out);
    assert_non_null(text);
    for (size_t i = 0; i < N_FLAGS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", flags[i].flag);
        if (strstr(text, flag) == NULL)
            fail_msg("usage does not mention %s", flag);
    }
    assert_non_null(strstr(text, "--help"));
    assert_non_null(strstr(text, "--version"));
    assert_non_null(strstr(text, "DYNSERVE_"));
    free(text);
}

#define T(f) cmocka_unit_test_setup_teardown(f, clear_env, clear_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_without_flags_or_environment),
        T(test_default_repository_and_web_root_sit_next_to_the_binary),
        T(test_every_flag_takes_a_separate_value),
        T(test_every_flag_takes_an_equals_value),
        T(test_all_flags_together),
        T(test_equals_value_may_contain_equals_signs),
        T(test_the_last_of_a_repeated_flag_wins),
        T(test_every_environment_twin_sets_its_field),
        T(test_the_flag_beats_its_environment_twin),
        T(test_unknown_flag_is_an_error_naming_it),
        T(test_flag_without_value_is_an_error_naming_it),
        T(test_empty_value_is_an_error_naming_the_flag),
        T(test_out_of_range_numbers_are_errors_naming_the_flag),
        T(test_range_limits_themselves_are_accepted),
        T(test_thread_reserve_must_leave_inference_a_thread),
        T(test_non_numbers_are_errors_naming_the_flag),
        T(test_too_long_strings_are_errors_naming_the_flag),
        T(test_unknown_log_level_is_an_error_naming_it),
        T(test_stray_argument_is_an_error_naming_it),
        T(test_bad_environment_values_are_errors_naming_the_variable),
        T(test_help_and_version_ask_to_exit),
        T(test_security_flags_that_go_together),
        T(test_usage_lists_every_flag_and_the_environment_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
