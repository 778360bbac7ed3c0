/*
 * artifact: model versions made of files — a backend name, a config.json and the model files
 * (Triton's `<model>/<version>/` directory). Owns the content-addressed artifact store,
 * <data-dir>/artifacts/<sha256>/, and the rules for what such a directory may hold.
 *
 * A version directory holds config.json (a JSON object whose "backend" names the backend
 * plugin, [a-z0-9_]{1,32}) and up to ARTIFACT_MAX_FILES regular files with plain names
 * ([A-Za-z0-9_.-], not starting with '.'). Registering copies it into the store under the
 * SHA-256 of its contents, so the files a registered version serves never change behind the
 * registry's back, and identical contents are stored once. The digest covers every file:
 *   sha256( for each file, sorted by name: name '\0' size-in-decimal '\0' sha256-hex '\n' )
 * Directories appear atomically: files are written and fsynced in a staging directory that is
 * renamed into place. A stored directory is read-only by convention (backends get its path).
 *
 * Backends are found as <backend-dir>/<name>/libdynserve_<name>.so (Triton's
 * backends/<name>/libtriton_<name>.so layout).
 *
 * Errors: ARTIFACT_INVALID is the client's fault (bad archive, missing config.json, bad names:
 * a 400), ARTIFACT_IO the server's (disk full, permissions: a 500); both with a message.
 * Thread-safety: reentrant; concurrent imports of the same content are safe.
 */
#ifndef DS_ARTIFACT_H
#define DS_ARTIFACT_H

#include <stddef.h>

#include "tar.h"

#define ARTIFACT_MAX_FILES   64
#define ARTIFACT_NAME_MAX    128
#define ARTIFACT_BACKEND_MAX 32
#define ARTIFACT_SHA256_HEX  65
#define ARTIFACT_CONFIG      "config.json"

typedef enum artifact_status {
    ARTIFACT_OK = 0,
    ARTIFACT_INVALID = -1, /* the files or archive are wrong */
    ARTIFACT_IO = -2       /* the server could not read or write */
} artifact_status;

/* Create <data_dir>/artifacts if needed. 0, or -1 with a reason. */
int artifact_init(const char *data_dir, char *err, size_t errlen);

/* 1 when `dir` is a directory holding a regular config.json (a backend version), else 0. */
int artifact_is_version_dir(const char *dir);

/* Copy the version directory `src_dir` / the files of a tar archive into the store. On success
 * writes the digest and the stored directory's path (at most out_len bytes). */
artifact_status artifact_import_dir(const char *data_dir, const char *src_dir,
                                    char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                    char *err, size_t errlen);
/* The same from an open directory (plugin_dir_open's descriptor; not closed here), named
 * `label` in messages. Entries must be regular files that are not world-writable; they are
 * opened below dirfd without following symlinks and without blocking. */
artifact_status artifact_import_dirfd(const char *data_dir, int dirfd, const char *label,
                                      char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                      char *err, size_t errlen);
artifact_status artifact_import_tar(const char *data_dir, const void *tar, size_t len,
                                    char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                    char *err, size_t errlen);

/* Remove <data_dir>/artifacts/<hex> (its files, then the directory): only for a directory no
 * registered version uses (callers serialize registrations). A bad hex is ignored. */
void artifact_remove(const char *data_dir, const char hex[ARTIFACT_SHA256_HEX]);

/* The same from files a callback supplies: each(ud, add, add_ud, err, errlen) calls
 * add(add_ud, name, data, size, err, errlen) once per file (stopping when add returns non-zero)
 * and returns 0, or non-zero with err written to give up (ARTIFACT_IO unless add refused the
 * file). The result is checked and stored exactly as a tar archive's. */
typedef int (*artifact_each_fn)(void *ud, tar_file_fn add, void *add_ud, char *err,
                                size_t errlen);
artifact_status artifact_import_each(const char *data_dir, artifact_each_fn each, void *ud,
                                     char hex[ARTIFACT_SHA256_HEX], char *out_dir, size_t out_len,
                                     char *err, size_t errlen);
/* The manifest of the stored version directory `dir`: for each file, sorted by name,
 * name NUL size-in-decimal NUL sha256-hex LF — the exact text whose SHA-256 is the directory's
 * digest (see above). *text is malloc'd (the caller frees), *len its length. */
artifact_status artifact_manifest(const char *dir, char **text, size_t *len, char *err,
                                  size_t errlen);
/* Read and check <dir>/config.json. On success *config_json is its text (malloc'd; the caller
 * frees) and backend holds the backend name. */
artifact_status artifact_read_config(const char *dir, char **config_json,
                                     char backend[ARTIFACT_BACKEND_MAX + 1], char *err,
                                     size_t errlen);

/* The backend's shared object, <backend_dir>/<name>/libdynserve_<name>.so. 0 when it exists
 * (path written), -1 with a reason ("unknown backend ..."). */
int artifact_backend_path(const char *backend_dir, const char *backend, char *out, size_t out_len,
                          char *err, size_t errlen);

/* Best effort: make a stored version directory 0755 and its files world-readable, so that an
 * isolated worker (which drops to "nobody") can read it through the descriptor it is given;
 * directories stored before that rule were 0700. The data directory above stays 0700. */
void artifact_share_with_worker(const char *dir);

/* 1 when `name` is a valid backend name ([a-z0-9_]{1,32}). */
int artifact_backend_name_ok(const char *name);

#endif
