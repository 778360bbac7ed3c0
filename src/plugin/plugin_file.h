/*
 * plugin_file: which files may become plugins, opened so that no path trick reaches others.
 *
 * Registering by path (POST /models {"plugin": PATH}) reads a file on the server, so only files
 * under the directories named by --plugin-dir are accepted (default: the model repository and
 * <data-dir>/import). A path is resolved with realpath(3) — "..", and symlinks that lead out of
 * every plugin directory, are refused — and then opened again component by component from the
 * plugin directory with O_NOFOLLOW, so a symlink swapped in meanwhile is refused too. The file
 * must be a regular file (a FIFO or device is never opened for reading: the final open is
 * O_NONBLOCK and checked with fstat), not writable by others, and an ELF shared object of this
 * machine's architecture (e_ident, ET_DYN, e_machine).
 *
 * Every refusal of a path gets the same message (PLUGIN_PATH_REFUSED), so the answer never tells
 * whether a path exists; the precise reason goes to `why` for the server log.
 *
 * Thread-safety: reentrant. A plugin_dirs is read-only after plugin_dirs_add.
 */
#ifndef DS_PLUGIN_FILE_H
#define DS_PLUGIN_FILE_H

#include <stddef.h>

#define PLUGIN_DIRS_MAX 16
#define PLUGIN_PATH_REFUSED                                                                        \
    "plugin path refused: it must name a regular, not world-writable ELF shared object of "        \
    "this machine inside a --plugin-dir directory"

/* The same for a model directory (POST /models {"model_dir": PATH}). */
#define PLUGIN_DIR_REFUSED                                                                         \
    "model directory refused: it must name a directory that is not world-writable inside a "       \
    "--plugin-dir directory, holding regular files that are not world-writable"

typedef struct plugin_dirs {
    int n;
    char *paths[PLUGIN_DIRS_MAX]; /* owned (strdup); plugin_dirs_free */
} plugin_dirs;

/* Add each directory of a comma-separated list. 0, or -1 with a reason (too many, empty
 * entry, out of memory). Directories need not exist yet. */
int plugin_dirs_add(plugin_dirs *d, const char *list, char *err, size_t errlen);
void plugin_dirs_free(plugin_dirs *d);

/* Open `path` for reading if it is an acceptable plugin file (see above). 0 with *fd_out (the
 * caller closes it) and *size_out; -1 with PLUGIN_PATH_REFUSED in err and the precise reason in
 * why. max_bytes bounds the file's size. */
int plugin_file_open(const plugin_dirs *d, const char *path, size_t max_bytes, int *fd_out,
                     size_t *size_out, char *err, size_t errlen, char *why, size_t whylen);

/* Open the model directory `path` by the same rules (under a plugin directory, no symlink on the
 * way, not world-writable). 0 with *fd_out (O_DIRECTORY; the caller closes it); -1 with
 * PLUGIN_DIR_REFUSED in err and the precise reason in why. The files inside are checked when
 * they are read (artifact_import_dirfd). */
int plugin_dir_open(const plugin_dirs *d, const char *path, int *fd_out, char *err, size_t errlen,
                    char *why, size_t whylen);

/* 0 when the bytes start an ELF shared object of this machine (class, byte order, ET_DYN,
 * e_machine); -1 with a reason. */
int plugin_elf_check(const void *data, size_t len, char *err, size_t errlen);

/* Name of this machine's ELF architecture ("x86_64", "aarch64", ...). */
const char *plugin_elf_machine_name(void);

#endif
