/*
 * Unit tests for src/base/buf.c: appends and growth, printf past the first 64-byte guess and huge
 * strings, JSON string escaping (checked literally and by parsing it back with cJSON), headroom +
 * prepend + reset cycles, detach with and without headroom, reset keeping memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* The invariant buf.h promises, checked after every operation that matters. */
static void assert_invariant(const ds_buf *b)
{
    if (b->base == NULL) {
        assert_int_equal(b->len, 0);
        return;
    }
    assert_true(b->data >= b->base);
    assert_true(b->data <= b->base + b->headroom);
    assert_true(b->len + 1 <= b->size - (size_t)(b->data - b->base));
    assert_int_equal(b->data[b->len], '\0');
}

static void test_zero_initialised_buffer_is_empty_and_valid(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    assert_false(b.failed);
    buf_free(&b); /* freeing an untouched buffer is fine */
    buf_reset(&b);
    assert_int_equal(b.len, 0);
}

static void test_appends_grow_and_stay_nul_terminated(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    for (int i = 0; i < 1000; i++) {
        buf_append_str(&b, "abc");
        assert_invariant(&b);
    }
    buf_append_char(&b, '!');
    buf_append(&b, "xy\0z", 4); /* binary bytes, embedded NUL included */
    assert_int_equal(b.len, 3005);
    assert_invariant(&b);
    assert_memory_equal(b.data, "abcabc", 6);
    assert_memory_equal(b.data + 2997, "abc!xy\0z", 8);
    assert_false(b.failed);
    buf_free(&b);
    assert_null(b.base);
    assert_int_equal(b.len, 0);
}

static void test_empty_appends_change_nothing_but_terminate(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_append(&b, "", 0);
    buf_append_str(&b, "");
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_true(buf_reserve(&b, 10000));
    assert_true(b.size >= 10001);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_printf_short_text_fits_the_first_guess(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_printf(&b, "%d %s %.2f", 42, "x", 1.5);
    assert_string_equal(b.data, "42 x 1.50");
    assert_int_equal(b.len, 9);
    buf_printf(&b, "|%c", 'z');
    assert_string_equal(b.data, "42 x 1.50|z");
    assert_invariant(&b);
    buf_free(&b);
}

static void test_printf_grows_past_64_bytes_at_every_boundary(void **state)
{
    (void)state;
    /* Lengths around the 64-byte first guess and the 256-byte first allocation. */
    static const size_t lengths[] = {63, 64, 65, 100, 254, 255, 256, 257, 511, 4097};
    char text[4098];
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        size_t n = lengths[k];
        memset(text, 'a' + (int)(k % 26), n);
        text[n] = '\0';
        ds_buf b = DS_BUF_INIT;
        buf_append_str(&b, "<");
        buf_printf(&b, "%s>", text);
        assert_int_equal(b.len, n + 2);
        assert_int_equal(b.data[0], '<');
        assert_memory_equal(b.data + 1, text, n);
        assert_int_equal(b.data[n + 1], '>');
        assert_invariant(&b);
        assert_false(b.failed);
        buf_free(&b);
    }
}

static void test_printf_of_a_huge_string_keeps_every_byte(void **state)
{
    (void)state;
    size_t n = 3u << 20; /* 3 MiB */
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    ds_buf b = DS_BUF_INIT;
    buf_printf(&b, "[%s]", big);
    buf_printf(&b, "%s", big); /* a second huge one on top of existing content */
    assert_int_equal(b.len, 2 * n + 2);
    assert_int_equal(b.data[0], '[');
    assert_memory_equal(b.data + 1, big, n);
    assert_int_equal(b.data[n + 1], ']');
    assert_memory_equal(b.data + n + 2, big, n);
    assert_invariant(&b);
    assert_false(b.failed);
    buf_free(&b);
    free(big);
}

static void vprintf_through(ds_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vprintf_through(ds_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

static void test_vprintf_formats_like_printf_when_growing(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    char long_word[300];
    memset(long_word, 'q', sizeof long_word - 1);
    long_word[sizeof long_word - 1] = '\0';
    vprintf_through(&b, "%s-%d-%s", long_word, 7, long_word);
    assert_int_equal(b.len, 299 + 3 + 299);
    assert_memory_equal(b.data + 299, "-7-", 3);
    assert_invariant(&b);
    buf_free(&b);
}

static void expect_json(const char *in, size_t n, const char *want)
{
    ds_buf b = DS_BUF_INIT;
    buf_append_json_string(&b, in, n);
    assert_false(b.failed);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_json_strings_escape_quotes_and_backslashes(void **state)
{
    (void)state;
    expect_json("", 0, "\"\"");
    expect_json("plain", 5, "\"plain\"");
    expect_json("a\"b", 3, "\"a\\\"b\"");
    expect_json("a\\b", 3, "\"a\\\\b\"");
    expect_json("\"\\\"", 3, "\"\\\"\\\\\\\"\"");
    expect_json("/", 1, "\"/\""); /* a solidus may stay as it is */
}

static void test_json_strings_escape_every_control_character(void **state)
{
    (void)state;
    expect_json("\x01", 1, "\"\\u0001\"");
    expect_json("\x1f", 1, "\"\\u001f\"");
    expect_json("a\x00z", 3, "\"a\\u0000z\""); /* length given: an embedded NUL is content */
    expect_json("\x0b\x0c", 2, "\"\\u000b\\u000c\"");
    /* Every byte below 0x20 must be escaped somehow, and parse back to itself. */
    for (int c = 0; c < 0x20; c++) {
        char in[3] = {'x', (char)c, 'y'};
        ds_buf b = DS_BUF_INIT;
        buf_append_json_string(&b, in, 3);
        for (size_t i = 0; i < b.len; i++)
            assert_true((unsigned char)b.data[i] >= 0x20);
        cJSON *parsed = cJSON_Parse(b.data);
        assert_non_null(parsed);
        assert_true(cJSON_IsString(parsed));
        if (c != 0) /* cJSON strings are NUL-terminated, so \u0000 cannot round-trip there */
            assert_memory_equal(parsed->valuestring, in, 3);
        cJSON_Delete(parsed);
        buf_free(&b);
    }
}

static void test_json_strings_pass_utf8_through_unchanged(void **state)
{
    (void)state;
    const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac";
    ds_buf b = DS_BUF_INIT;
    buf_append_json_string(&b, in, sizeof in - 1);
    assert_int_equal(b.len, sizeof in - 1 + 2);
    assert_int_equal(b.data[0], '"');
    assert_memory_equal(b.data + 1, in, sizeof in - 1);
    assert_int_equal(b.data[b.len - 1], '"');
    buf_free(&b);
}

static void test_json_string_round_trips_mixed_text_after_existing_content(void **state)
{
    (void)state;
    const char in[] = "tab\there \"quoted\" back\\slash\r\nnew \x02 \xc3\xa9nd";
    ds_buf b = DS_BUF_INIT;
    buf_append_str(&b, "{\"k\":");
    buf_append_json_string(&b, in, sizeof in - 1);
    buf_append_char(&b, '}');
    cJSON *obj = cJSON_Parse(b.data);
    assert_non_null(obj);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(obj, "k");
    assert_true(cJSON_IsString(k));
    assert_string_equal(k->valuestring, in);
    cJSON_Delete(obj);
    buf_free(&b);
}

static void test_json_string_of_a_long_escaped_text_grows(void **state)
{
    (void)state;
    size_t n = 100000;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (i % 3 == 0) ? '"' : (i % 3 == 1) ? '\x01' : 'a';
    ds_buf b = DS_BUF_INIT;
    buf_append_json_string(&b, in, n);
    size_t want = 2; /* the quotes */
    for (size_t i = 0; i < n; i++)
        want += in[i] == '"' ? 2 : in[i] == '\x01' ? 6 : 1;
    assert_int_equal(b.len, want);
    assert_memory_equal(b.data, "\"\\\"\\u0001a\\\"", 12);
    assert_invariant(&b);
    buf_free(&b);
    free(in);
}

static void test_headroom_takes_a_prefix_and_reset_gives_it_back(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    assert_true(buf_set_headroom(&b, 32));
    assert_non_null(b.base);
    assert_ptr_equal(b.data, b.base + 32);
    for (int round = 0; round < 5; round++) {
        buf_append_str(&b, "body");
        char *p = buf_prepend(&b, 5);
        assert_non_null(p);
        assert_ptr_equal(p, b.data);
        memcpy(p, "head:", 5);
        assert_int_equal(b.len, 9);
        assert_memory_equal(b.data, "head:body", 9);
        assert_invariant(&b);
        buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.headroom, 32);
        assert_ptr_equal(b.data, b.base + 32); /* the whole headroom is back */
    }
    buf_free(&b);
}

static void test_prepend_beyond_the_headroom_is_refused(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    assert_true(buf_set_headroom(&b, 16));
    buf_append_str(&b, "x");
    assert_null(buf_prepend(&b, 17));
    assert_int_equal(b.len, 1);
    assert_non_null(buf_prepend(&b, 10));
    assert_null(buf_prepend(&b, 7)); /* only 6 left */
    assert_non_null(buf_prepend(&b, 6));
    assert_null(buf_prepend(&b, 1));
    assert_int_equal(b.len, 17);
    assert_ptr_equal(b.data, b.base);
    buf_free(&b);

    ds_buf none = DS_BUF_INIT;
    buf_append_str(&none, "no headroom");
    assert_null(buf_prepend(&none, 1));
    buf_free(&none);
}

static void test_headroom_survives_growth_of_the_body(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    assert_true(buf_set_headroom(&b, 512));
    char chunk[1000];
    memset(chunk, 'b', sizeof chunk);
    for (int i = 0; i < 100; i++)
        buf_append(&b, chunk, sizeof chunk);
    assert_ptr_equal(b.data, b.base + 512);
    char *p = buf_prepend(&b, 512);
    assert_non_null(p);
    memset(p, 'h', 512);
    assert_int_equal(b.len, 512 + 100000);
    assert_int_equal(b.data[511], 'h');
    assert_int_equal(b.data[512], 'b');
    assert_invariant(&b);
    buf_free(&b);
}

static void test_headroom_can_only_be_set_on_an_empty_buffer(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_append_str(&b, "content");
    assert_false(buf_set_headroom(&b, 8));
    assert_string_equal(b.data, "content");
    buf_reset(&b);
    assert_true(buf_set_headroom(&b, 8));
    buf_append_str(&b, "again");
    assert_ptr_equal(b.data, b.base + 8);
    /* A headroom larger than what is allocated is honoured too. */
    buf_reset(&b);
    assert_true(buf_set_headroom(&b, 100000));
    buf_append_str(&b, "far");
    assert_ptr_equal(b.data, b.base + 100000);
    assert_non_null(buf_prepend(&b, 100000));
    assert_invariant(&b);
    buf_free(&b);
}

static void test_detach_without_headroom_hands_over_the_string(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_printf(&b, "value=%d", 12345);
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "value=12345");
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    free(s); /* caller's to free with free() */
    buf_append_str(&b, "reusable");
    assert_string_equal(b.data, "reusable");
    buf_free(&b);
}

static void test_detach_with_headroom_returns_only_the_content(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    assert_true(buf_set_headroom(&b, 64));
    buf_append_str(&b, "payload");
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "payload");
    free(s); /* must be the start of its own allocation */
    assert_null(b.base);

    /* After a prepend the prefix is content too. */
    assert_true(buf_set_headroom(&b, 16));
    buf_append_str(&b, "tail");
    memcpy(buf_prepend(&b, 5), "head ", 5);
    s = buf_detach(&b);
    assert_string_equal(s, "head tail");
    free(s);
    buf_free(&b);
}

static void test_detach_of_an_empty_buffer_is_an_empty_string(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_detach_after_reset_returns_an_empty_string(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_append_str(&b, "stale content");
    buf_reset(&b);
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, ""); /* the content is what is left after the reset: nothing */
    free(s);

    assert_true(buf_set_headroom(&b, 8));
    buf_append_str(&b, "old");
    buf_reset(&b);
    s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_reset_keeps_memory_for_reuse(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    char chunk[5000];
    memset(chunk, 'r', sizeof chunk);
    buf_append(&b, chunk, sizeof chunk);
    char *base = b.base;
    size_t size = b.size;
    for (int i = 0; i < 10; i++) {
        buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_ptr_equal(b.base, base);
        assert_int_equal(b.size, size);
        buf_append(&b, chunk, sizeof chunk); /* fits: no reallocation */
        assert_ptr_equal(b.base, base);
    }
    buf_free(&b);
}

static void test_a_limit_stops_growth_and_is_reported_apart_from_out_of_memory(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    buf_set_headroom(&b, 64);
    buf_set_limit(&b, 1000);
    char chunk[300];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 3; i++)
        buf_append(&b, chunk, sizeof chunk);
    assert_false(b.failed);
    assert_int_equal(b.len, 900);
    buf_append(&b, chunk, sizeof chunk); /* 1200 > 1000 */
    assert_true(b.failed);
    assert_true(b.over_limit);
    assert_int_equal(b.len, 900);
    assert_true(b.size <= 64 + 1000 + 1); /* never allocated past the cap */
    buf_append_str(&b, "y");              /* sticky */
    assert_int_equal(b.len, 900);
    buf_reset(&b); /* keeps the cap, clears the failure */
    assert_false(b.failed);
    assert_false(b.over_limit);
    buf_append(&b, chunk, sizeof chunk);
    assert_int_equal(b.len, 300);
    buf_set_limit(&b, 0); /* no cap */
    for (int i = 0; i < 10; i++)
        buf_append(&b, chunk, sizeof chunk);
    assert_false(b.failed);
    assert_int_equal(b.len, 3300);
    buf_free(&b);
    assert_int_equal(b.limit, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_limit_stops_growth_and_is_reported_apart_from_out_of_memory),
        cmocka_unit_test(test_zero_initialised_buffer_is_empty_and_valid),
        cmocka_unit_test(test_appends_grow_and_stay_nul_terminated),
        cmocka_unit_test(test_empty_appends_change_nothing_but_terminate),
        cmocka_unit_test(test_printf_short_text_fits_the_first_guess),
        cmocka_unit_test(test_printf_grows_past_64_bytes_at_every_boundary),
        cmocka_unit_test(test_printf_of_a_huge_string_keeps_every_byte),
        cmocka_unit_test(test_vprintf_formats_like_printf_when_growing),
        cmocka_unit_test(test_json_strings_escape_quotes_and_backslashes),
        cmocka_unit_test(test_json_strings_escape_every_control_character),
        cmocka_unit_test(test_json_strings_pass_utf8_through_unchanged),
        cmocka_unit_test(test_json_string_round_trips_mixed_text_after_existing_content),
        cmocka_unit_test(test_json_string_of_a_long_escaped_text_grows),
        cmocka_unit_test(test_headroom_takes_a_prefix_and_reset_gives_it_back),
        cmocka_unit_test(test_prepend_beyond_the_headroom_is_refused),
        cmocka_unit_test(test_headroom_survives_growth_of_the_body),
        cmocka_unit_test(test_headroom_can_only_be_set_on_an_empty_buffer),
        cmocka_unit_test(test_detach_without_headroom_hands_over_the_string),
        cmocka_unit_test(test_detach_with_headroom_returns_only_the_content),
        cmocka_unit_test(test_detach_of_an_empty_buffer_is_an_empty_string),
        cmocka_unit_test(test_detach_after_reset_returns_an_empty_string),
        cmocka_unit_test(test_reset_keeps_memory_for_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
