/* Unit tests for src/config.c: defaults, flags in both spellings, environment twins, precedence,
 * and the errors a bad command line gets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"

static enum config_result parse(ds_config *cfg, char *err, int argc, char **argv)
{
    return config_parse(argc, argv, cfg, err, 256);
}

static void test_defaults_without_flags(void **state)
{
    (void)state;
    ds_config cfg;
    char err[256] = "";
    char *argv[] = {"dynserve"};
    assert_int_equal(parse(&cfg, err, 1, argv), CONFIG_OK);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.data_dir, "./data");
    assert_int_equal(cfg.threads, 64);
    assert_int_equal(cfg.keep_alive_ms, 500);
    assert_non_null(strstr(cfg.model_repository, "/models"));
}

static void test_flags_with_space_or_equals(void **state)
{
    (void)state;
    ds_config cfg;
    char err[256] = "";
    char *argv[] = {"dynserve", "--port",           "9", "--data-dir=/tmp/x", "--max-body-bytes",
                    "4096",     "--log-level=debug"};
    assert_int_equal(parse(&cfg, err, 7, argv), CONFIG_OK);
    assert_int_equal(cfg.port, 9);
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_int_equal(cfg.max_body_bytes, 4096);
    assert_string_equal(cfg.log_level, "debug");
}

static void test_environment_twins_and_the_flag_wins(void **state)
{
    (void)state;
    ds_config cfg;
    char err[256] = "";
    setenv("DYNSERVE_DATA_DIR", "/from/env", 1);
    setenv("DYNSERVE_THREADS", "8", 1);
    char *argv[] = {"dynserve", "--threads", "16"};
    assert_int_equal(parse(&cfg, err, 3, argv), CONFIG_OK);
    unsetenv("DYNSERVE_DATA_DIR");
    unsetenv("DYNSERVE_THREADS");
    assert_string_equal(cfg.data_dir, "/from/env");
    assert_int_equal(cfg.threads, 16);
}

static void expect_error(char **argv, int argc, const char *words)
{
    ds_config cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg, err, argc, argv), CONFIG_ERROR);
    assert_non_null(strstr(err, words));
}

static void test_bad_command_lines_name_the_problem(void **state)
{
    (void)state;
    char *unknown[] = {"dynserve", "--colour", "red"};
    expect_error(unknown, 3, "--colour");
    char *missing[] = {"dynserve", "--port"};
    expect_error(missing, 2, "needs a value");
    char *range[] = {"dynserve", "--port", "70000"};
    expect_error(range, 3, "port");
    char *word[] = {"dynserve", "--threads", "many"};
    expect_error(word, 3, "threads");
    char *level[] = {"dynserve", "--log-level", "loud"};
    expect_error(level, 3, "loud");
    char *stray[] = {"dynserve", "extra"};
    expect_error(stray, 2, "extra");
    setenv("DYNSERVE_PORT", "x", 1);
    char *none[] = {"dynserve"};
    expect_error(none, 1, "DYNSERVE_PORT");
    unsetenv("DYNSERVE_PORT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_flags),
        cmocka_unit_test(test_flags_with_space_or_equals),
        cmocka_unit_test(test_environment_twins_and_the_flag_wins),
        cmocka_unit_test(test_bad_command_lines_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
