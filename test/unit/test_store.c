/*
 * Unit tests for src/plugin/store.c: SHA-256 of known vectors, content-addressed import of bytes
 * and files (<dir>/plugins/<sha>.so, same bytes, mode 0600 in a 0700 directory), idempotent
 * import, repair of a damaged stored copy, concurrent imports of the same content, and the errors
 * (missing source, a source that is not a file, an unwritable store, a too small path buffer).
 *
 * Each test gets its own temporary data directory, removed afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "support/test_fs.h"

#define ERRLEN   512
#define SHA_ABC  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_NONE "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* FIPS 180-2 example: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" */
#define SHA_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
/* One million 'a' */
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ds-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    char err[ERRLEN];
    if (store_init(f->dir, err, sizeof err) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char plugins[128];
    snprintf(plugins, sizeof plugins, "%s/plugins", f->dir);
    chmod(plugins, 0755); /* in case a test made it read-only */
    int rc = test_remove_tree(f->dir);
    free(f);
    return rc;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* The whole file as a malloc'd buffer; *len set. */
static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return data;
}

static void assert_file_holds(const char *path, const void *data, size_t len)
{
    size_t got_len;
    char *got = read_file(path, &got_len);
    assert_int_equal(got_len, len);
    if (len > 0)
        assert_memory_equal(got, data, len);
    free(got);
}

/* Entries of <dir>/plugins, hidden temporaries included. */
static int count_store_entries(const char *dir)
{
    char plugins[128];
    snprintf(plugins, sizeof plugins, "%s/plugins", dir);
    DIR *d = opendir(plugins);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void expected_path(const char *dir, const char *hex, char *out, size_t n)
{
    snprintf(out, n, "%s/plugins/%s.so", dir, hex);
}

/* ---- digests ----------------------------------------------------------------------------- */

static void test_sha256_of_bytes_matches_known_vectors(void **state)
{
    (void)state;
    char hex[STORE_SHA256_HEX];
    store_sha256_bytes("", 0, hex);
    assert_string_equal(hex, SHA_NONE);
    store_sha256_bytes("abc", 3, hex);
    assert_string_equal(hex, SHA_ABC);
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    store_sha256_bytes(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, SHA_448);
    char *million = malloc(1000000);
    assert_non_null(million);
    memset(million, 'a', 1000000);
    store_sha256_bytes(million, 1000000, hex);
    assert_string_equal(hex, SHA_MILLION_A);
    free(million);
}

static void test_sha256_of_a_file_matches_its_bytes(void **state)
{
    fixture *f = *state;
    char path[128], hex[STORE_SHA256_HEX], err[ERRLEN];
    snprintf(path, sizeof path, "%s/abc.bin", f->dir);
    write_file(path, "abc", 3);
    assert_int_equal(store_sha256_file(path, hex, err, sizeof err), 0);
    assert_string_equal(hex, SHA_ABC);
    snprintf(path, sizeof path, "%s/empty.bin", f->dir);
    write_file(path, "", 0);
    assert_int_equal(store_sha256_file(path, hex, err, sizeof err), 0);
    assert_string_equal(hex, SHA_NONE);
}

static void test_sha256_of_a_missing_file_is_an_error_naming_it(void **state)
{
    fixture *f = *state;
    char path[128], hex[STORE_SHA256_HEX], err[ERRLEN] = "";
    snprintf(path, sizeof path, "%s/absent.so", f->dir);
    assert_int_equal(store_sha256_file(path, hex, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
}

/* ---- init -------------------------------------------------------------------------------- */

static void test_init_creates_the_plugins_directory_and_may_run_again(void **state)
{
    fixture *f = *state;
    char plugins[128], err[ERRLEN];
    snprintf(plugins, sizeof plugins, "%s/plugins", f->dir);
    struct stat st;
    assert_int_equal(stat(plugins, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(store_init(f->dir, err, sizeof err), 0);
    assert_int_equal(store_init(f->dir, err, sizeof err), 0);
}

static void test_init_in_a_missing_data_dir_is_an_error(void **state)
{
    fixture *f = *state;
    char dir[128], err[ERRLEN] = "";
    snprintf(dir, sizeof dir, "%s/does/not/exist", f->dir);
    assert_int_equal(store_init(dir, err, sizeof err), -1);
    assert_non_null(strstr(err, dir));
}

/* ---- import ------------------------------------------------------------------------------ */

static void test_import_bytes_stores_them_under_their_digest(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN], want[PATH_MAX];
    assert_int_equal(store_import_bytes(f->dir, "abc", 3, hex, path, sizeof path, err, sizeof err),
                     0);
    assert_string_equal(hex, SHA_ABC);
    expected_path(f->dir, SHA_ABC, want, sizeof want);
    assert_string_equal(path, want);
    assert_file_holds(path, "abc", 3);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_store_entries(f->dir), 1); /* no temporary left behind */
}

static void test_import_file_stores_a_copy_under_its_digest(void **state)
{
    fixture *f = *state;
    char src[128], hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN], want[PATH_MAX];
    unsigned char bytes[70000];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 31 + 7);
    snprintf(src, sizeof src, "%s/model.so", f->dir);
    write_file(src, bytes, sizeof bytes);
    chmod(src, 0755);
    assert_int_equal(store_import_file(f->dir, src, hex, path, sizeof path, err, sizeof err), 0);
    char direct[STORE_SHA256_HEX];
    store_sha256_bytes(bytes, sizeof bytes, direct);
    assert_string_equal(hex, direct);
    expected_path(f->dir, direct, want, sizeof want);
    assert_string_equal(path, want);
    assert_file_holds(path, bytes, sizeof bytes);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);  /* the same whatever the source's mode */
    assert_file_holds(src, bytes, sizeof bytes); /* the source is untouched */
}

static void test_import_of_empty_content_works(void **state)
{
    fixture *f = *state;
    char src[128], hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN];
    assert_int_equal(store_import_bytes(f->dir, "", 0, hex, path, sizeof path, err, sizeof err), 0);
    assert_string_equal(hex, SHA_NONE);
    assert_file_holds(path, "", 0);
    snprintf(src, sizeof src, "%s/empty.so", f->dir);
    write_file(src, "", 0);
    assert_int_equal(store_import_file(f->dir, src, hex, path, sizeof path, err, sizeof err), 0);
    assert_string_equal(hex, SHA_NONE);
}

static void test_import_is_idempotent(void **state)
{
    fixture *f = *state;
    char hex1[STORE_SHA256_HEX], hex2[STORE_SHA256_HEX], path1[PATH_MAX], path2[PATH_MAX];
    char err[ERRLEN], src[128];
    assert_int_equal(
        store_import_bytes(f->dir, "abc", 3, hex1, path1, sizeof path1, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            store_import_bytes(f->dir, "abc", 3, hex2, path2, sizeof path2, err, sizeof err), 0);
        assert_string_equal(hex1, hex2);
        assert_string_equal(path1, path2);
    }
    snprintf(src, sizeof src, "%s/same.so", f->dir);
    write_file(src, "abc", 3);
    assert_int_equal(store_import_file(f->dir, src, hex2, path2, sizeof path2, err, sizeof err), 0);
    assert_string_equal(path1, path2);
    assert_file_holds(path1, "abc", 3);
    assert_int_equal(count_store_entries(f->dir), 1);
}

static void test_different_contents_get_different_files(void **state)
{
    fixture *f = *state;
    char hex1[STORE_SHA256_HEX], hex2[STORE_SHA256_HEX], path1[PATH_MAX], path2[PATH_MAX];
    char err[ERRLEN];
    assert_int_equal(
        store_import_bytes(f->dir, "one", 3, hex1, path1, sizeof path1, err, sizeof err), 0);
    assert_int_equal(
        store_import_bytes(f->dir, "two", 3, hex2, path2, sizeof path2, err, sizeof err), 0);
    assert_string_not_equal(hex1, hex2);
    assert_string_not_equal(path1, path2);
    assert_file_holds(path1, "one", 3);
    assert_file_holds(path2, "two", 3);
    assert_int_equal(count_store_entries(f->dir), 2);
}

static void test_a_truncated_copy_is_replaced_on_reimport(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN], src[128];
    snprintf(src, sizeof src, "%s/source.bin", f->dir);
    write_file(src, "abcdefgh", 8);
    assert_int_equal(store_import_file(f->dir, src, hex, path, sizeof path, err, sizeof err), 0);
    assert_int_equal(truncate(path, 3), 0);
    assert_int_equal(store_import_file(f->dir, src, hex, path, sizeof path, err, sizeof err), 0);
    assert_file_holds(path, "abcdefgh", 8);

    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(
        store_import_bytes(f->dir, "abcdefgh", 8, hex, path, sizeof path, err, sizeof err), 0);
    assert_file_holds(path, "abcdefgh", 8);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_a_corrupted_copy_of_the_same_size_is_replaced(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN];
    assert_int_equal(
        store_import_bytes(f->dir, "abcdefgh", 8, hex, path, sizeof path, err, sizeof err), 0);
    write_file(path, "abcdXfgh", 8);
    assert_int_equal(
        store_import_bytes(f->dir, "abcdefgh", 8, hex, path, sizeof path, err, sizeof err), 0);
    assert_file_holds(path, "abcdefgh", 8);
}

static void test_missing_source_file_is_an_error_naming_it(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN] = "", src[128];
    snprintf(src, sizeof src, "%s/nonexistent.so", f->dir);
    assert_int_equal(store_import_file(f->dir, src, hex, path, sizeof path, err, sizeof err), -1);
    if (strstr(err, src) == NULL)
        fail_msg("error \"%s\" does not name %s", err, src);
    assert_int_equal(count_store_entries(f->dir), 0);
}

static void test_a_directory_as_source_is_an_error(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN] = "";
    assert_int_equal(store_import_file(f->dir, f->dir, hex, path, sizeof path, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, f->dir));
    assert_int_equal(count_store_entries(f->dir), 0);
}

static void test_a_store_that_cannot_be_written_is_an_error(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN] = "", plugins[128];
    snprintf(plugins, sizeof plugins, "%s/plugins", f->dir);
    /* A regular file where the plugins directory should be: nobody, root included, can write
     * into it. */
    assert_int_equal(rmdir(plugins), 0);
    write_file(plugins, "x", 1);
    assert_int_equal(store_import_bytes(f->dir, "abc", 3, hex, path, sizeof path, err, sizeof err),
                     -1);
    assert_true(err[0] != '\0');
    char src[128];
    snprintf(src, sizeof src, "%s/src.so", f->dir);
    write_file(src, "abc", 3);
    err[0] = '\0';
    assert_int_equal(store_import_file(f->dir, src, hex, path, sizeof path, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(unlink(plugins), 0);
    assert_int_equal(mkdir(plugins, 0755), 0); /* for teardown */
}

static void test_a_read_only_store_is_an_error_for_unprivileged_users(void **state)
{
    fixture *f = *state;
    if (geteuid() == 0) {
        skip(); /* root writes through mode bits; the test above covers this case for root */
        return;
    }
    char hex[STORE_SHA256_HEX], path[PATH_MAX], err[ERRLEN] = "", plugins[128];
    snprintf(plugins, sizeof plugins, "%s/plugins", f->dir);
    assert_int_equal(chmod(plugins, 0555), 0);
    assert_int_equal(store_import_bytes(f->dir, "abc", 3, hex, path, sizeof path, err, sizeof err),
                     -1);
    assert_true(err[0] != '\0');
}

static void test_a_too_small_path_buffer_is_an_error(void **state)
{
    fixture *f = *state;
    char hex[STORE_SHA256_HEX], path[16], err[ERRLEN] = "";
    assert_int_equal(store_import_bytes(f->dir, "abc", 3, hex, path, sizeof path, err, sizeof err),
                     -1);
    assert_true(err[0] != '\0');
}

/* ---- concurrency ------------------------------------------------------------------------- */

#define IMPORTERS 8

typedef struct importer {
    const char *dir;
    const unsigned char *data;
    size_t len;
    int rc;
    char path[PATH_MAX];
} importer;

static void *import_thread(void *arg)
{
    importer *im = arg;
    char hex[STORE_SHA256_HEX], err[ERRLEN];
    im->rc = store_import_bytes(im->dir, im->data, im->len, hex, im->path, sizeof im->path, err,
                                sizeof err);
    return NULL;
}

static void test_concurrent_imports_of_the_same_content_agree(void **state)
{
    fixture *f = *state;
    size_t len = 1u << 20;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i ^ (i >> 8));
    importer im[IMPORTERS];
    pthread_t th[IMPORTERS];
    for (int i = 0; i < IMPORTERS; i++) {
        im[i] = (importer){.dir = f->dir, .data = data, .len = len, .rc = -2};
        assert_int_equal(pthread_create(&th[i], NULL, import_thread, &im[i]), 0);
    }
    for (int i = 0; i < IMPORTERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < IMPORTERS; i++) {
        assert_int_equal(im[i].rc, 0);
        assert_string_equal(im[i].path, im[0].path);
    }
    assert_file_holds(im[0].path, data, len);
    assert_int_equal(count_store_entries(f->dir), 1);
    free(data);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_of_bytes_matches_known_vectors),
        T(test_sha256_of_a_file_matches_its_bytes),
        T(test_sha256_of_a_missing_file_is_an_error_naming_it),
        T(test_init_creates_the_plugins_directory_and_may_run_again),
        T(test_init_in_a_missing_data_dir_is_an_error),
        T(test_import_bytes_stores_them_under_their_digest),
        T(test_import_file_stores_a_copy_under_its_digest),
        T(test_import_of_empty_content_works),
        T(test_import_is_idempotent),
        T(test_different_contents_get_different_files),
        T(test_a_truncated_copy_is_replaced_on_reimport),
        T(test_a_corrupted_copy_of_the_same_size_is_replaced),
        T(test_missing_source_file_is_an_error_naming_it),
        T(test_a_directory_as_source_is_an_error),
        T(test_a_store_that_cannot_be_written_is_an_error),
        T(test_a_read_only_store_is_an_error_for_unprivileged_users),
        T(test_a_too_small_path_buffer_is_an_error),
        T(test_concurrent_imports_of_the_same_content_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
