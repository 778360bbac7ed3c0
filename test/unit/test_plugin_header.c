/*
 * The public plugin header stands alone: it is included first, before anything else, so a
 * missing #include inside it breaks this build (libgit2's headertest idea). The strict-C99
 * compile of the same header lives in test/plugins (plugin_header_strict). The tests check the
 * constants a plugin author relies on and the one helper the header defines, ds_error_set.
 */
#include <dynserve/plugin.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

static void test_abi_constants_are_defined(void **state)
{
    (void)state;
    assert_int_equal(DS_PLUGIN_ABI_MAJOR, 1);
    assert_true(DS_PLUGIN_ABI_MINOR >= 0);
    assert_string_equal(DS_PLUGIN_ENTRY_SYMBOL, "dynserve_plugin_entry");
    assert_true(DS_MAX_RANK >= 1);
    assert_int_equal(DS_OK, 0);
    assert_true(DS_ERROR_MESSAGE_MAX >= 64);
}

static void test_tables_start_with_struct_size_and_abi_version(void **state)
{
    (void)state;
    /* The loader reads these three fields before it knows anything else about a table. */
    assert_int_equal(offsetof(ds_plugin_api, struct_size), 0);
    assert_int_equal(offsetof(ds_plugin_api, abi_major), 4);
    assert_int_equal(offsetof(ds_plugin_api, abi_minor), 6);
    assert_int_equal(offsetof(ds_host_api, struct_size), 0);
    assert_int_equal(offsetof(ds_model_desc, struct_size), 0);
}

static void test_error_set_formats_message_and_returns_code(void **state)
{
    (void)state;
    ds_error err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(ds_error_set(&err, DS_ERR_INVALID_ARGUMENT, "input '%s' rank %d", "x", 3),
                     DS_ERR_INVALID_ARGUMENT);
    assert_int_equal(err.code, DS_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "input 'x' rank 3");
}

static void test_error_set_truncates_long_messages(void **state)
{
    (void)state;
    char long_text[2 * DS_ERROR_MESSAGE_MAX];
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    ds_error err;
    ds_error_set(&err, DS_ERR_INTERNAL, "%s", long_text);
    assert_int_equal(strlen(err.message), DS_ERROR_MESSAGE_MAX - 1);
}

static void test_error_set_accepts_null_error(void **state)
{
    (void)state;
    assert_int_equal(ds_error_set(NULL, DS_ERR_UNAVAILABLE, "ignored"), DS_ERR_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abi_constants_are_defined),
        cmocka_unit_test(test_tables_start_with_struct_size_and_abi_version),
        cmocka_unit_test(test_error_set_formats_message_and_returns_code),
        cmocka_unit_test(test_error_set_truncates_long_messages),
        cmocka_unit_test(test_error_set_accepts_null_error),
    };
    return cmocka_run_group_tests_name("plugin_header", tests, NULL, NULL);
}
