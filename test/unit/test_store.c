/* Unit tests for src/store.c: SHA-256 vectors, content-addressed import, idempotence, repair of
 * a damaged copy, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static int setup(void **state)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/ds-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char err[256];
    assert_int_equal(store_init(dir, err, sizeof err), 0);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", (char *)*state);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_sha256_matches_known_vectors(void **state)
{
    (void)state;
    char hex[STORE_SHA256_HEX];
    store_sha256_bytes("abc", 3, hex);
    assert_string_equal(hex, SHA_ABC);
    store_sha256_bytes("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_import_stores_bytes_under_their_digest(void **state)
{
    const char *dir = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[256];
    assert_int_equal(store_import_bytes(dir, "abc", 3, hex, path, sizeof path, err, sizeof err), 0);
    assert_string_equal(hex, SHA_ABC);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/plugins/%s.so", dir, SHA_ABC);
    assert_string_equal(path, want);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    assert_int_equal(st.st_mode & 0777, 0755);
    /* the same bytes again: same path, no error */
    assert_int_equal(store_import_bytes(dir, "abc", 3, hex, path, sizeof path, err, sizeof err), 0);
}

static void test_a_damaged_copy_is_replaced_on_import(void **state)
{
    const char *dir = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[256], src[PATH_MAX];
    snprintf(src, sizeof src, "%s/source.bin", dir);
    FILE *f = fopen(src, "wb");
    fputs("abc", f);
    fclose(f);
    assert_int_equal(store_import_file(dir, src, hex, path, sizeof path, err, sizeof err), 0);
    assert_int_equal(truncate(path, 1), 0);
    assert_int_equal(store_import_file(dir, src, hex, path, sizeof path, err, sizeof err), 0);
    char check[STORE_SHA256_HEX];
    assert_int_equal(store_sha256_file(path, check, err, sizeof err), 0);
    assert_string_equal(check, SHA_ABC);
}

static void test_missing_source_is_an_error_with_its_name(void **state)
{
    const char *dir = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[256] = "";
    assert_int_equal(
        store_import_file(dir, "/nonexistent/x.so", hex, path, sizeof path, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.so"));
    assert_int_equal(store_import_file(dir, dir, hex, path, sizeof path, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_matches_known_vectors),
        cmocka_unit_test_setup_teardown(test_import_stores_bytes_under_their_digest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_damaged_copy_is_replaced_on_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_source_is_an_error_with_its_name, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
