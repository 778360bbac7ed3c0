/*
 * tar: a reader for the uploaded model-version archives (PUT /models/<m>/versions/<v> with
 * Content-Type application/x-tar). It walks an in-memory POSIX ustar / GNU tar archive and hands
 * each regular file to a callback; it never touches the file system.
 *
 * Accepted: regular files ('0' or NUL type) whose name, after dropping leading "./", is a plain
 * file name (no '/'); directory entries for "." (what `tar -C dir -cf - .` writes); pax
 * headers ('x', 'g'), whose records are skipped. Refused with a reason: a bad header checksum,
 * a size field that is not octal, an entry running past the end of the buffer, links, devices,
 * FIFOs, GNU long names, nested paths and any other directory. Two zero blocks, or the end of
 * the buffer on a block boundary, end the archive. The input is untrusted: every offset is
 * checked against `len` (fuzzed: test/fuzz/fuzz_tar.c).
 *
 * Thread-safety: reentrant; no allocation. The callback's `name` and `data` point into the
 * caller's buffer or a stack copy and are valid only during the callback.
 */
#ifndef DS_TAR_H
#define DS_TAR_H

#include <stddef.h>

#define TAR_NAME_MAX 255

/* Called once per regular file, in archive order. Return 0 to go on; non-zero stops the walk
 * and tar_each_file returns -1 (the callback writes err itself). */
typedef int (*tar_file_fn)(void *ud, const char *name, const void *data, size_t size, char *err,
                           size_t errlen);

/* Walk the archive in buf[0..len). 0 when every entry was accepted and fn returned 0 for each
 * file; -1 with a reason in err otherwise. */
int tar_each_file(const void *buf, size_t len, tar_file_fn fn, void *ud, char *err, size_t errlen);

#endif
