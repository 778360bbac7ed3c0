/*
 * Unit tests for src/plugin/plugin_file.c: only regular, not world-writable ELF shared objects
 * of this machine inside a plugin directory are opened; "..", symlinks out, /etc/passwd, a FIFO
 * (without blocking), a world-writable file, a non-ELF file and a missing path all get the same
 * message; the ELF check refuses other types and architectures.
 *
 * Each test gets a temporary plugin directory holding a copy of an example model plugin.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin_file.h"
#include "support/test_fs.h"

#ifndef DS_TEST_MODELS_DIR
#define DS_TEST_MODELS_DIR "build/models"
#endif
#define PLUGIN_SRC DS_TEST_MODELS_DIR "/quadratic_predictor/1/model.so"

typedef struct fixture {
    char root[64];    /* temporary root */
    char dir[96];     /* root/plugins: the plugin directory */
    char outside[96]; /* root/outside: not a plugin directory */
    plugin_dirs dirs;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/ds-pfile-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/plugins", f->root);
    snprintf(f->outside, sizeof f->outside, "%s/outside", f->root);
    mkdir(f->dir, 0700);
    mkdir(f->outside, 0700);
    char err[256], path[PATH_MAX];
    if (plugin_dirs_add(&f->dirs, f->dir, err, sizeof err) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/model.so", f->dir);
    test_copy_file(PLUGIN_SRC, path, 0600);
    snprintf(path, sizeof path, "%s/model.so", f->outside);
    test_copy_file(PLUGIN_SRC, path, 0600);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_remove_tree(f->root);
    plugin_dirs_free(&f->dirs);
    free(f);
    return 0;
}

/* Open `path` (relative names are taken under the fixture root); returns the fd or -1, and
 * checks that every refusal carries the one message. */
static int try_open(fixture *f, const char *path)
{
    char full[PATH_MAX], err[256], why[256];
    if (path[0] == '/')
        snprintf(full, sizeof full, "%s", path);
    else
        snprintf(full, sizeof full, "%s/%s", f->root, path);
    int fd = -1;
    size_t size = 0;
    if (plugin_file_open(&f->dirs, full, 1u << 30, &fd, &size, err, sizeof err, why, sizeof why) !=
        0) {
        assert_string_equal(err, PLUGIN_PATH_REFUSED);
        assert_true(why[0] != '\0');
        return -1;
    }
    assert_true(size > 0);
    return fd;
}

static void test_plugin_inside_the_directory_opens(void **state)
{
    fixture *f = *state;
    int fd = try_open(f, "plugins/model.so");
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/inner.so", f->dir);
    assert_int_equal(symlink("model.so", link), 0); /* a symlink that stays inside is fine */
    fd = try_open(f, "plugins/inner.so");
    assert_true(fd >= 0);
    close(fd);
}

static void test_paths_outside_are_refused_alike(void **state)
{
    fixture *f = *state;
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof link, "%s/escape.so", f->dir);
    snprintf(target, sizeof target, "%s/model.so", f->outside);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof link, "%s/passwd", f->dir);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    assert_int_equal(try_open(f, "/etc/passwd"), -1);
    assert_int_equal(try_open(f, "/no/such/file.so"), -1);
    assert_int_equal(try_open(f, "plugins/../outside/model.so"), -1);
    assert_int_equal(try_open(f, "outside/model.so"), -1);
    assert_int_equal(try_open(f, "plugins/escape.so"), -1);
    assert_int_equal(try_open(f, "plugins/passwd"), -1);
    assert_int_equal(try_open(f, "plugins/missing.so"), -1);
    assert_int_equal(try_open(f, "plugins"), -1); /* the directory itself */
    assert_int_equal(try_open(f, ""), -1);
}

static void test_fifo_world_writable_and_non_elf_are_refused(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/pipe.so", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(try_open(f, "plugins/pipe.so"), -1); /* returns: nothing blocks */
    snprintf(path, sizeof path, "%s/open.so", f->dir);
    test_copy_file(PLUGIN_SRC, path, 0666);
    chmod(path, 0666);
    assert_int_equal(try_open(f, "plugins/open.so"), -1);
    snprintf(path, sizeof path, "%s/text.so", f->dir);
    test_copy_file("/etc/passwd", path, 0600);
    assert_int_equal(try_open(f, "plugins/text.so"), -1);
    assert_int_equal(try_open(f, "/dev/zero"), -1);
}

/* plugin_dir_open of `path` under the fixture root: the fd or -1 (with the one message). */
static int try_open_dir(fixture *f, const char *path)
{
    char full[PATH_MAX], err[256], why[256];
    snprintf(full, sizeof full, "%s/%s", f->root, path);
    int fd = -1;
    if (plugin_dir_open(&f->dirs, full, &fd, err, sizeof err, why, sizeof why) != 0) {
        assert_string_equal(err, PLUGIN_DIR_REFUSED);
        assert_true(why[0] != '\0');
        return -1;
    }
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    return fd;
}

static void test_model_dirs_follow_the_same_rules(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX], target[PATH_MAX];
    snprintf(path, sizeof path, "%s/m", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    int fd = try_open_dir(f, "plugins/m");
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof path, "%s/open", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    chmod(path, 0777);
    snprintf(path, sizeof path, "%s/escape", f->dir);
    assert_int_equal(symlink(f->outside, path), 0);
    snprintf(path, sizeof path, "%s/etc", f->dir);
    snprintf(target, sizeof target, "/etc");
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(try_open_dir(f, "plugins/open"), -1);       /* world-writable */
    assert_int_equal(try_open_dir(f, "plugins/escape"), -1);     /* symlink out */
    assert_int_equal(try_open_dir(f, "plugins/etc"), -1);        /* symlink out */
    assert_int_equal(try_open_dir(f, "outside"), -1);            /* outside */
    assert_int_equal(try_open_dir(f, "plugins/../outside"), -1); /* outside by .. */
    assert_int_equal(try_open_dir(f, "plugins/missing"), -1);    /* absent */
    assert_int_equal(try_open_dir(f, "plugins/model.so"), -1);   /* a file */
    assert_int_equal(try_open_dir(f, "plugins"), -1);            /* the plugin dir itself */
}

static void test_elf_check_wants_a_shared_object_of_this_machine(void **state)
{
    (void)state;
    FILE *in = fopen(PLUGIN_SRC, "rb");
    assert_non_null(in);
    ElfW(Ehdr) h;
    assert_int_equal(fread(&h, sizeof h, 1, in), 1);
    fclose(in);
    char err[160];
    assert_int_equal(plugin_elf_check(&h, sizeof h, err, sizeof err), 0);
    assert_int_equal(plugin_elf_check(&h, sizeof h - 1, err, sizeof err), -1);
    ElfW(Ehdr) other = h;
    other.e_type = ET_EXEC;
    assert_int_equal(plugin_elf_check(&other, sizeof other, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a shared object"));
    other = h;
    other.e_machine = h.e_machine == EM_AARCH64 ? EM_X86_64 : EM_AARCH64;
    assert_int_equal(plugin_elf_check(&other, sizeof other, err, sizeof err), -1);
    assert_non_null(strstr(err, "another architecture"));
    assert_non_null(strstr(err, plugin_elf_machine_name()));
    other = h;
    other.e_ident[EI_CLASS] = h.e_ident[EI_CLASS] == ELFCLASS64 ? ELFCLASS32 : ELFCLASS64;
    assert_int_equal(plugin_elf_check(&other, sizeof other, err, sizeof err), -1);
    assert_int_equal(plugin_elf_check("#!/bin/sh\n", 10, err, sizeof err), -1);
}

static void test_plugin_dirs_list_is_checked(void **state)
{
    (void)state;
    plugin_dirs d = {0};
    char err[256];
    assert_int_equal(plugin_dirs_add(&d, "/a,/b", err, sizeof err), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.paths[1], "/b");
    assert_int_equal(plugin_dirs_add(&d, "/c,,/d", err, sizeof err), -1);
    plugin_dirs_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plugin_inside_the_directory_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_outside_are_refused_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_world_writable_and_non_elf_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_model_dirs_follow_the_same_rules, setup, teardown),
        cmocka_unit_test(test_elf_check_wants_a_shared_object_of_this_machine),
        cmocka_unit_test(test_plugin_dirs_list_is_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
