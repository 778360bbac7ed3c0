/*
 * Unit tests for src/plugin/tar.c and src/plugin/artifact.c: the upload archive reader (ustar,
 * GNU "./" archives, pax headers skipped; links, nested paths, bad checksums and truncation
 * refused) and the content-addressed artifact store (import from a directory and from an
 * archive, same digest for the same files in any order, config.json rules, staging removed on
 * failure, backend lookup).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact.h"
#include "store.h"
#include "tar.h"
#include "support/test_fs.h"

#define ERRLEN 512

/* ---- building archives ------------------------------------------------------------------- */

typedef struct tarbuf {
    unsigned char data[64 * 512];
    size_t len;
} tarbuf;

/* Append one header (+ data) to t. type '0' file, '5' dir, '2' symlink, 'x' pax. */
static void tar_add(tarbuf *t, const char *name, char type, const char *data, int bad_sum)
{
    unsigned char *h = t->data + t->len;
    size_t size = data ? strlen(data) : 0;
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011o", (unsigned)size);
    h[156] = (unsigned char)type;
    memcpy(h + 257,
           "ustar\0"
           "00",
           8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum + (bad_sum ? 1u : 0u));
    t->len += 512;
    if (size > 0) {
        memset(t->data + t->len, 0, (size + 511) / 512 * 512);
        memcpy(t->data + t->len, data, size);
        t->len += (size + 511) / 512 * 512;
    }
}

static void tar_end(tarbuf *t)
{
    memset(t->data + t->len, 0, 1024);
    t->len += 1024;
}

typedef struct seen {
    char names[8][64];
    size_t sizes[8];
    int n;
} seen;

static int collect(void *ud, const char *name, const void *data, size_t size, char *err,
                   size_t errlen)
{
    (void)data;
    (void)err;
    (void)errlen;
    seen *s = ud;
    snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
    s->sizes[s->n++] = size;
    return 0;
}

static void test_tar_reads_regular_files_and_skips_dot_dir_and_pax(void **state)
{
    (void)state;
    static tarbuf t;
    t.len = 0;
    tar_add(&t, "./", '5', NULL, 0);
    tar_add(&t, "PaxHeaders/x", 'x', "19 path=config.json\n", 0);
    tar_add(&t, "./config.json", '0', "{\"backend\":\"xgboost\"}", 0);
    tar_add(&t, "model.json", '0', "{}", 0);
    tar_end(&t);
    seen s = {0};
    char err[ERRLEN] = "";
    assert_int_equal(tar_each_file(t.data, t.len, collect, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "config.json");
    assert_int_equal(s.sizes[0], 21);
    assert_string_equal(s.names[1], "model.json");
}

static void expect_tar_error(const tarbuf *t, const char *needle)
{
    seen s = {0};
    char err[ERRLEN] = "";
    assert_int_equal(tar_each_file(t->data, t->len, collect, &s, err, sizeof err), -1);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_tar_refuses_links_dirs_nested_paths_and_bad_checksums(void **state)
{
    (void)state;
    static tarbuf t;
    t.len = 0;
    tar_add(&t, "link", '2', NULL, 0);
    tar_end(&t);
    expect_tar_error(&t, "not a regular file");
    t.len = 0;
    tar_add(&t, "sub/", '5', NULL, 0);
    tar_end(&t);
    expect_tar_error(&t, "directory");
    t.len = 0;
    tar_add(&t, "a/config.json", '0', "{}", 0);
    tar_end(&t);
    expect_tar_error(&t, "plain file name");
    t.len = 0;
    tar_add(&t, "config.json", '0', "{}", 1);
    tar_end(&t);
    expect_tar_error(&t, "checksum");
}

static void test_tar_refuses_truncated_and_tiny_input(void **state)
{
    (void)state;
    static tarbuf t;
    t.len = 0;
    tar_add(&t, "model.json", '0', "0123456789", 0);
    seen s = {0};
    char err[ERRLEN] = "";
    assert_int_equal(tar_each_file(t.data, 512 + 5, collect, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(tar_each_file("abc", 3, collect, &s, err, sizeof err), -1);
    assert_int_equal(tar_each_file(NULL, 0, collect, &s, err, sizeof err), -1);
}

/* ---- the store --------------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    char src[96];
} fixture;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ds-artifact-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->src, sizeof f->src, "%s/src", f->dir);
    mkdir(f->src, 0755);
    char err[ERRLEN];
    if (artifact_init(f->dir, err, sizeof err) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_remove_tree(f->dir);
    free(f);
    return 0;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

static void test_import_dir_and_tar_of_the_same_files_give_the_same_digest(void **state)
{
    fixture *f = *state;
    write_file(f->src, "config.json", "{\"backend\":\"xgboost\",\"parameters\":{\"nthread\":1}}");
    write_file(f->src, "model.json", "{\"learner\":{}}");
    write_file(f->src, ".hidden", "ignored");
    char hex1[ARTIFACT_SHA256_HEX], hex2[ARTIFACT_SHA256_HEX], out[PATH_MAX], err[ERRLEN];
    assert_int_equal(artifact_import_dir(f->dir, f->src, hex1, out, sizeof out, err, sizeof err),
                     ARTIFACT_OK);
    assert_int_equal(strlen(hex1), 64);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/artifacts/%s", f->dir, hex1);
    assert_string_equal(out, want);
    assert_int_equal(count_entries(out), 2); /* the hidden file is not copied */

    static tarbuf t;
    t.len = 0; /* same files, other order */
    tar_add(&t, "model.json", '0', "{\"learner\":{}}", 0);
    tar_add(&t, "config.json", '0', "{\"backend\":\"xgboost\",\"parameters\":{\"nthread\":1}}", 0);
    tar_end(&t);
    assert_int_equal(
        artifact_import_tar(f->dir, t.data, t.len, hex2, out, sizeof out, err, sizeof err),
        ARTIFACT_OK);
    assert_string_equal(hex1, hex2);
    char art[PATH_MAX];
    snprintf(art, sizeof art, "%s/artifacts", f->dir);
    assert_int_equal(count_entries(art), 1); /* stored once, no staging left */
}

/* The manifest is the digest's input: its sha256 is the stored directory's name, and feeding its
 * files back through artifact_import_each stores the same directory again. */
struct replay {
    const char *dir;
    const char *manifest;
    size_t len;
};

static int replay_files(void *ud, tar_file_fn add, void *add_ud, char *err, size_t errlen)
{
    const struct replay *r = ud;
    for (const char *p = r->manifest; p < r->manifest + r->len;) {
        const char *name = p;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", r->dir, name);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        char data[256];
        size_t n = fread(data, 1, sizeof data, fp);
        fclose(fp);
        if (add(add_ud, name, data, n, err, errlen) != 0)
            return -1;
        const char *size = name + strlen(name) + 1, *sha = size + strlen(size) + 1;
        p = strchr(sha, '\n') + 1;
    }
    return 0;
}

static int give_up(void *ud, tar_file_fn add, void *add_ud, char *err, size_t errlen)
{
    (void)ud;
    add(add_ud, "config.json", "{\"backend\":\"x\"}", 15, err, errlen);
    snprintf(err, errlen, "the registry went away");
    return -1;
}

static void test_manifest_hashes_to_the_digest_and_replays_to_the_same_directory(void **state)
{
    fixture *f = *state;
    write_file(f->src, "config.json", "{\"backend\":\"xgboost\"}");
    write_file(f->src, "model.json", "{\"learner\":{}}");
    char hex[ARTIFACT_SHA256_HEX], again[ARTIFACT_SHA256_HEX], out[PATH_MAX], err[ERRLEN];
    assert_int_equal(artifact_import_dir(f->dir, f->src, hex, out, sizeof out, err, sizeof err),
                     ARTIFACT_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(artifact_manifest(out, &text, &len, err, sizeof err), ARTIFACT_OK);
    static const char want[] = "config.json\0"
                               "21\0" /* sorted by name */;
    assert_memory_equal(text, want, sizeof want - 1);
    char digest[STORE_SHA256_HEX];
    store_sha256_bytes(text, len, digest);
    assert_string_equal(digest, hex);

    /* Replayed into a fresh data dir: the same digest, the same files. */
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other", f->dir);
    mkdir(other, 0700);
    assert_int_equal(artifact_init(other, err, sizeof err), 0);
    struct replay r = {out, text, len};
    assert_int_equal(
        artifact_import_each(other, replay_files, &r, again, out, sizeof out, err, sizeof err),
        ARTIFACT_OK);
    assert_string_equal(again, hex);
    assert_int_equal(count_entries(out), 2);
    free(text);

    /* A supplier that gives up leaves nothing behind and reports an I/O failure. */
    char art[PATH_MAX + 16];
    snprintf(art, sizeof art, "%s/artifacts", other);
    assert_int_equal(
        artifact_import_each(other, give_up, NULL, again, out, sizeof out, err, sizeof err),
        ARTIFACT_IO);
    assert_non_null(strstr(err, "went away"));
    assert_int_equal(count_entries(art), 1);
}

static void test_config_rules(void **state)
{
    fixture *f = *state;
    char hex[ARTIFACT_SHA256_HEX], out[PATH_MAX], err[ERRLEN];
    static const char *const bad[] = {
        "[1]",
        "{",
        "{\"backend\":\"Bad-Name\"}",
        "{\"backend\":3}",
        "{}",
        "{\"backend\":\"onnx\",\"inputs\":{}}",
        "{\"backend\":\"onnx\",\"parameters\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(f->src, "config.json", bad[i]);
        assert_int_equal(artifact_import_dir(f->dir, f->src, hex, out, sizeof out, err, sizeof err),
                         ARTIFACT_INVALID);
    }
    char art[PATH_MAX];
    snprintf(art, sizeof art, "%s/artifacts", f->dir);
    assert_int_equal(count_entries(art), 0); /* every staging directory was removed */
    char *config = NULL;
    char backend[ARTIFACT_BACKEND_MAX + 1];
    write_file(f->src, "config.json", "{\"backend\":\"onnx\"}");
    assert_int_equal(artifact_read_config(f->src, &config, backend, err, sizeof err), ARTIFACT_OK);
    assert_string_equal(backend, "onnx");
    assert_string_equal(config, "{\"backend\":\"onnx\"}");
    free(config);
}

static void test_import_without_config_or_with_a_subdirectory_is_invalid(void **state)
{
    fixture *f = *state;
    char hex[ARTIFACT_SHA256_HEX], out[PATH_MAX], err[ERRLEN];
    write_file(f->src, "model.onnx", "x");
    assert_int_equal(artifact_import_dir(f->dir, f->src, hex, out, sizeof out, err, sizeof err),
                     ARTIFACT_INVALID);
    assert_non_null(strstr(err, "config.json"));
    write_file(f->src, "config.json", "{\"backend\":\"onnx\"}");
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/sub", f->src);
    mkdir(sub, 0755);
    assert_int_equal(artifact_import_dir(f->dir, f->src, hex, out, sizeof out, err, sizeof err),
                     ARTIFACT_INVALID);
    assert_non_null(strstr(err, "directory"));
    assert_int_equal(
        artifact_import_dir(f->dir, "/nonexistent/dir", hex, out, sizeof out, err, sizeof err),
        ARTIFACT_INVALID);
}

static void test_duplicate_and_bad_file_names_in_a_tar_are_invalid(void **state)
{
    fixture *f = *state;
    char hex[ARTIFACT_SHA256_HEX], out[PATH_MAX], err[ERRLEN];
    static tarbuf t;
    t.len = 0;
    tar_add(&t, "config.json", '0', "{\"backend\":\"onnx\"}", 0);
    tar_add(&t, "./config.json", '0', "{\"backend\":\"onnx\"}", 0);
    tar_end(&t);
    assert_int_equal(
        artifact_import_tar(f->dir, t.data, t.len, hex, out, sizeof out, err, sizeof err),
        ARTIFACT_INVALID);
    assert_non_null(strstr(err, "twice"));
    t.len = 0;
    tar_add(&t, "config.json", '0', "{\"backend\":\"onnx\"}", 0);
    tar_add(&t, "we ird", '0', "x", 0);
    tar_end(&t);
    assert_int_equal(
        artifact_import_tar(f->dir, t.data, t.len, hex, out, sizeof out, err, sizeof err),
        ARTIFACT_INVALID);
}

static void test_backend_path_and_names(void **state)
{
    fixture *f = *state;
    char out[PATH_MAX], err[ERRLEN], dir[PATH_MAX];
    assert_true(artifact_backend_name_ok("xgboost"));
    assert_false(artifact_backend_name_ok("../x"));
    assert_false(artifact_backend_name_ok(""));
    assert_int_not_equal(artifact_backend_path(f->dir, "nope", out, sizeof out, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "unknown backend 'nope'"));
    snprintf(dir, sizeof dir, "%s/mine", f->dir);
    mkdir(dir, 0755);
    write_file(dir, "libdynserve_mine.so", "");
    assert_int_equal(artifact_backend_path(f->dir, "mine", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "/mine/libdynserve_mine.so"));
    assert_true(artifact_is_version_dir(f->src) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tar_reads_regular_files_and_skips_dot_dir_and_pax),
        cmocka_unit_test(test_tar_refuses_links_dirs_nested_paths_and_bad_checksums),
        cmocka_unit_test(test_tar_refuses_truncated_and_tiny_input),
        cmocka_unit_test_setup_teardown(
            test_import_dir_and_tar_of_the_same_files_give_the_same_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_manifest_hashes_to_the_digest_and_replays_to_the_same_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_import_without_config_or_with_a_subdirectory_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_bad_file_names_in_a_tar_are_invalid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_path_and_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
