/* Unit tests for src/base/jsonscan.c: escaped NULs inside JSON strings are found, escaped
 * backslashes and text outside strings are not mistaken for them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "jsonscan.h"

static bool scan(const char *s)
{
    return json_has_escaped_nul(s, strlen(s));
}

static void test_escaped_nul_in_a_string_is_found(void **state)
{
    (void)state;
    assert_true(scan("{\"name\":\"x\\u0000y\"}"));
    assert_true(scan("{\"x\\u0000\":1}"));
    assert_true(scan("[\"\\\"\\u0000\"]"));
}

static void test_other_escapes_are_not_nul(void **state)
{
    (void)state;
    assert_false(scan("{\"name\":\"x\\\\u0000y\"}")); /* an escaped backslash, then text */
    assert_false(scan("{\"name\":\"x\\u0001y\"}"));
    assert_false(scan("{\"name\":\"\\u00e9\"}"));
    assert_false(scan("{\"a\":1} \\u0000"));   /* outside any string */
    assert_false(scan("{\"name\":\"x\\u000")); /* truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaped_nul_in_a_string_is_found),
        cmocka_unit_test(test_other_escapes_are_not_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
