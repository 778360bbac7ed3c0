/*
 * store: the content-addressed plugin store, <data-dir>/plugins/<sha256>.so.
 *
 * Every registered or uploaded plugin is copied here under the SHA-256 of its bytes, so a
 * version's code never changes behind the registry's back, and two different files never share
 * a path (and so never a dlopen handle), whatever names they were uploaded under. Files appear
 * atomically: written to a temporary name in the same directory, fsynced, then renamed.
 *
 * Thread-safety: reentrant; concurrent imports of the same content are safe (same final bytes,
 * rename is atomic).
 */
#ifndef DS_STORE_H
#define DS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#define STORE_SHA256_HEX 65

/* Create <data_dir>/plugins (removing .upload-* temporaries a crash left there) and
 * <data_dir>/import (mode 0700: the one plugin directory that is always allowed) if needed.
 * 0, or -1 with a reason. */
int store_init(const char *data_dir, char *err, size_t errlen);

/* SHA-256 of a file / of bytes as lowercase hex (65 bytes with NUL). 0, or -1 with a reason. */
int store_sha256_file(const char *path, char hex[STORE_SHA256_HEX], char *err, size_t errlen);
void store_sha256_bytes(const void *data, size_t len, char hex[STORE_SHA256_HEX]);

/* Copy the file at `src` / the bytes into the store. On success writes the digest and the stored
 * path (<data_dir>/plugins/<sha256>.so, at most out_len bytes) and returns 0; -1 with a reason. */
int store_import_file(const char *data_dir, const char *src, char hex[STORE_SHA256_HEX],
                      char *out_path, size_t out_len, char *err, size_t errlen);
int store_import_bytes(const char *data_dir, const void *data, size_t len,
                       char hex[STORE_SHA256_HEX], char *out_path, size_t out_len, char *err,
                       size_t errlen);

/* The file an in-process deployment of (model, version) dlopens: a private copy of the stored
 * plugin `src`, <data_dir>/plugins/loaded/<model>+<version>+<src file name>. dlopen shares one
 * image (and one copy of the plugin's globals) between every load of the same file (same inode,
 * so a hard link would not do), and two versions with identical bytes share a store file: the
 * copy keeps them apart. Made once (atomically) and reused. 0 with out_path, or -1 with err. */
int store_private_copy(const char *data_dir, const char *src, const char *model,
                       const char *version, char *out_path, size_t out_len, char *err,
                       size_t errlen);
/* <data_dir>/plugins/<hex>.so into out: 0, or -1 when it does not fit. */
int store_path(const char *data_dir, const char hex[STORE_SHA256_HEX], char *out, size_t out_len);
/* Is <data_dir>/plugins/<hex>.so present? */
bool store_has(const char *data_dir, const char hex[STORE_SHA256_HEX]);
/* Remove <data_dir>/plugins/<hex>.so: only for a file this registration created and then
 * refused (callers serialize registrations, so nothing else refers to it). */
void store_remove(const char *data_dir, const char hex[STORE_SHA256_HEX]);

/* write() all of data to fd, retrying after EINTR and short writes. 0, or -1 with errno. */
int store_write_all(int fd, const void *data, size_t len);

#endif
