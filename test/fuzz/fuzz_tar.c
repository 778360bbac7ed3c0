/*
 * fuzz_tar: libFuzzer harness for the upload archive reader (tar_each_file). Every file the
 * walker reports must lie inside the input and have a plain, NUL-terminated name; the walk must
 * end with 0 or -1 and a message, never read outside the buffer (ASan) or loop.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct walk {
    const uint8_t *base;
    size_t size;
    size_t files;
} walk;

static int on_file(void *ud, const char *name, const void *data, size_t len, char *err,
                   size_t errlen)
{
    walk *w = ud;
    const uint8_t *p = data;
    if (strlen(name) == 0 || strlen(name) > TAR_NAME_MAX || strchr(name, '/') != NULL)
        abort();
    if (len > 0 && (p < w->base || p + len > w->base + w->size))
        abort();
    if (++w->files > 3 && name[0] == 'z') {
        snprintf(err, errlen, "stop");
        return 1; /* exercise the early stop */
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walk w = {data, size, 0};
    char err[256] = "";
    int rc = tar_each_file(data, size, on_file, &w, err, sizeof err);
    if (rc != 0 && (rc != -1 || err[0] == '\0'))
        abort();
    return 0;
}
