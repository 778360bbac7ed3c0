/*
 * Unit tests for src/http/framing.c, the Content-Length / Transfer-Encoding rules (RFC 9112
 * §6.1-6.3): one chunked coding or one length, never both, agreeing duplicates only, digits
 * only. The line-ending rules depend on CivetWeb's in-place parser and are tested through the
 * real server with raw sockets (test_http.c, test/integration/test_limits.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "framing.h"

static int check(const char *version, const framing_field *f, int n)
{
    char err[128];
    framing_head h = {.http_version = version, .fields = f, .nfields = n, .max_fields = 64};
    return framing_check(&h, err, sizeof err);
}

static void test_plain_requests_pass(void **state)
{
    (void)state;
    framing_field none[] = {{"Host", "a"}};
    framing_field length[] = {{"Host", "a"}, {"Content-Length", "12"}};
    framing_field chunked[] = {{"Host", "a"}, {"transfer-encoding", "Chunked"}};
    framing_field trailing_ows[] = {{"Content-Length", "7  "}};
    assert_int_equal(check("1.1", none, 1), 0);
    assert_int_equal(check("1.1", length, 2), 0);
    assert_int_equal(check("1.1", chunked, 2), 0);
    assert_int_equal(check("1.0", trailing_ows, 1), 0);
}

static void test_length_and_chunked_together_is_refused(void **state)
{
    (void)state;
    framing_field f[] = {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}};
    framing_field g[] = {{"Transfer-Encoding", "chunked"}, {"content-length", "0"}};
    char err[128];
    assert_int_equal(framing_check_length("1.1", f, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "both"));
    assert_int_equal(check("1.1", g, 2), -1);
}

static void test_conflicting_lengths_are_refused_equal_ones_pass(void **state)
{
    (void)state;
    framing_field conflict[] = {{"Content-Length", "5"}, {"Content-Length", "6"}};
    framing_field same[] = {{"Content-Length", "5"}, {"Content-Length", "5"}};
    char err[128];
    assert_int_equal(framing_check_length("1.1", conflict, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "conflicting"));
    assert_int_equal(check("1.1", same, 2), 0);
}

static void test_length_must_be_digits(void **state)
{
    (void)state;
    const char *bad[] = {"5abc", "-1", "", "+5", "5, 5", "0x10", "1234567890123456789", " "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        framing_field f[] = {{"Content-Length", bad[i]}};
        assert_int_equal(check("1.1", f, 1), -1);
    }
}

static void test_only_one_chunked_coding_on_http11(void **state)
{
    (void)state;
    framing_field gzip[] = {{"Transfer-Encoding", "gzip, chunked"}};
    framing_field identity[] = {{"Transfer-Encoding", "identity"}};
    framing_field twice[] = {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}};
    framing_field ok[] = {{"Transfer-Encoding", "chunked"}};
    assert_int_equal(check("1.1", gzip, 1), -1);
    assert_int_equal(check("1.1", identity, 1), -1);
    assert_int_equal(check("1.1", twice, 2), -1);
    assert_int_equal(check("1.0", ok, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_requests_pass),
        cmocka_unit_test(test_length_and_chunked_together_is_refused),
        cmocka_unit_test(test_conflicting_lengths_are_refused_equal_ones_pass),
        cmocka_unit_test(test_length_must_be_digits),
        cmocka_unit_test(test_only_one_chunked_coding_on_http11),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
