/* Unit tests for src/buf.c: growth, printf, JSON string escaping, headroom + prepend, detach. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void test_appends_grow_and_stay_nul_terminated(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_append_str(&b, "abc");
    buf_append_char(&b, '!');
    assert_int_equal(b.len, 3001);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 2997, "abc!", 4);
    assert_false(b.failed);
    buf_free(&b);
}

static void test_printf_longer_than_the_first_guess(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    char big[500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_printf(&b, "%d-%s-%s", 42, big, "end");
    assert_int_equal(b.len, 2 + 1 + 499 + 1 + 3);
    assert_string_equal(b.data + b.len - 4, "-end");
    buf_free(&b);
}

static void test_json_strings_escape_quotes_backslashes_and_controls(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    const char in[] = "a\"b\\c\nd\x01\xc3\xa9";
    buf_append_json_string(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\"");
    buf_free(&b);
}

static void test_headroom_takes_a_prefix_and_reset_gives_it_back(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    for (int round = 0; round < 3; round++) {
        buf_reset(&b);
        assert_true(buf_set_headroom(&b, 64));
        buf_append_str(&b, "body");
        char *p = buf_prepend(&b, 5);
        assert_non_null(p);
        memcpy(p, "head:", 5);
        assert_int_equal(b.len, 9);
        assert_memory_equal(b.data, "head:body", 9);
        assert_null(buf_prepend(&b, 60)); /* more than what is left */
    }
    buf_free(&b);
}

static void test_detach_hands_over_the_content(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_set_headroom(&b, 16);
    buf_append_str(&b, "kept");
    char *s = buf_detach(&b);
    assert_string_equal(s, "kept");
    assert_null(b.base);
    free(s);
    buf_append_str(&b, "plain");
    s = buf_detach(&b);
    assert_string_equal(s, "plain");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_grow_and_stay_nul_terminated),
        cmocka_unit_test(test_printf_longer_than_the_first_guess),
        cmocka_unit_test(test_json_strings_escape_quotes_backslashes_and_controls),
        cmocka_unit_test(test_headroom_takes_a_prefix_and_reset_gives_it_back),
        cmocka_unit_test(test_detach_hands_over_the_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
