/*
 * tar: ustar/GNU archive walker. See tar.h.
 *
 * Layout: 512-byte blocks. Each entry is one header block (name[100] at 0, size[12] at 124,
 * chksum[8] at 148, typeflag at 156, magic at 257, prefix[155] at 345) followed by the file's
 * bytes padded to a block multiple. The checksum is the sum of the header's bytes with the
 * checksum field read as spaces.
 */
#include "tar.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TAR_BLOCK 512

__attribute__((format(printf, 3, 4))) static int tar_fail(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An octal field (NUL/space padded). -1 when it holds anything else, or overflows. */
static int tar_octal(const unsigned char *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && f[i] == ' ')
        i++;
    int digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v > (UINT64_MAX >> 3))
            return -1;
        v = (v << 3) | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return -1;
    if (digits == 0)
        return -1;
    *out = v;
    return 0;
}

static int tar_zero_block(const unsigned char *h)
{
    for (size_t i = 0; i < TAR_BLOCK; i++)
        if (h[i] != 0)
            return 0;
    return 1;
}

static int tar_checksum_ok(const unsigned char *h)
{
    uint64_t want;
    if (tar_octal(h + 148, 8, &want) != 0)
        return 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += (i >= 148 && i < 156) ? (unsigned)' ' : h[i];
    return sum == want;
}

/* The entry's path: ustar prefix + "/" + name, each field NUL-terminated or full. */
static int tar_path(const unsigned char *h, char out[TAR_NAME_MAX + 2])
{
    size_t nlen = strnlen((const char *)h, 100);
    size_t plen = memcmp(h + 257, "ustar", 5) == 0 ? strnlen((const char *)h + 345, 155) : 0;
    size_t at = 0;
    if (plen > 0) {
        memcpy(out, h + 345, plen);
        out[plen] = '/';
        at = plen + 1;
    }
    memcpy(out + at, h, nlen);
    out[at + nlen] = '\0';
    return (int)(at + nlen);
}

/* Drop leading "./" (any number) from a path; returns the rest. */
static const char *tar_strip_dot(const char *p)
{
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    return p;
}

/* One header at h; data follows. Calls fn for regular files. 0, or -1 with err. */
static int tar_entry(const unsigned char *h, const unsigned char *data, uint64_t size,
                     tar_file_fn fn, void *ud, char *err, size_t errlen)
{
    char path[TAR_NAME_MAX + 2];
    tar_path(h, path);
    const char *name = tar_strip_dot(path);
    char type = (char)h[156];
    switch (type) {
    case 'x':
    case 'g': return 0; /* pax extended header: its records are skipped */
    case '5':
        if (name[0] == '\0' || strcmp(name, ".") == 0)
            return 0;
        return tar_fail(err, errlen,
                        "archive entry '%s' is a directory; put the version's files "
                        "at the top level (tar -C <version dir> -cf - .)",
                        path);
    case '0':
    case '\0': break;
    case 'L':
    case 'K': return tar_fail(err, errlen, "archive uses GNU long names; file names must be short");
    default:
        return tar_fail(err, errlen, "archive entry '%s' is not a regular file (type '%c')", path,
                        type >= 32 && type < 127 ? type : '?');
    }
    if (name[0] == '\0' || strchr(name, '/') != NULL)
        return tar_fail(err, errlen, "archive entry '%s' is not a plain file name", path);
    return fn(ud, name, data, (size_t)size, err, errlen) == 0 ? 0 : -1;
}

int tar_each_file(const void *buf, size_t len, tar_file_fn fn, void *ud, char *err, size_t errlen)
{
    const unsigned char *p = buf;
    size_t at = 0;
    if (buf == NULL || len == 0)
        return tar_fail(err, errlen, "empty archive");
    if (len < TAR_BLOCK)
        return tar_fail(err, errlen, "not a tar archive (%zu bytes)", len);
    while (at + TAR_BLOCK <= len) {
        const unsigned char *h = p + at;
        if (tar_zero_block(h))
            return 0; /* end-of-archive marker (the second zero block is optional here) */
        if (!tar_checksum_ok(h))
            return tar_fail(err, errlen, "not a tar archive (bad header checksum at byte %zu)", at);
        uint64_t size;
        if (tar_octal(h + 124, 12, &size) != 0)
            return tar_fail(err, errlen, "bad size field in the archive header at byte %zu", at);
        at += TAR_BLOCK;
        if (size > len - at)
            return tar_fail(err, errlen,
                            "archive is truncated (an entry needs %llu bytes, %zu left)",
                            (unsigned long long)size, len - at);
        if (tar_entry(h, p + at, size, fn, ud, err, errlen) != 0)
            return -1;
        uint64_t padded = (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
        at += padded <= len - at ? (size_t)padded : len - at;
    }
    if (at != len)
        return tar_fail(err, errlen, "archive is truncated (%zu trailing bytes)", len - at);
    return 0;
}
