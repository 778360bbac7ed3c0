/*
 * File helpers shared by the unit tests: remove a scratch tree, copy a fixture file.
 * Both run on the calling thread only; test_copy_file fails the cmocka test on any error.
 */
#ifndef DS_TEST_FS_H
#define DS_TEST_FS_H

#include <sys/types.h>

/* Removes dir and everything under it, without following symlinks. Returns 0 or -1. */
int test_remove_tree(const char *dir);

/* Copies from to to (created or truncated) and sets its mode. */
void test_copy_file(const char *from, const char *to, mode_t mode);

#endif
