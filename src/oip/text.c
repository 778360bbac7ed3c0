/*
 * oip text: UTF-8 validation, shared by the decoder (BYTES strings) and the encoder (a BYTES
 * output is sent as JSON text only when it is UTF-8). A leaf of the oip module.
 */
#include "oip_internal.h"

#include <string.h>

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). JSON text must be
 * UTF-8, and a response echoing invalid bytes would not be JSON. ASCII runs are skipped eight
 * bytes at a time. */
bool oip_utf8_valid(const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end) {
        uint64_t w;
        if (end - p >= 8 && (memcpy(&w, p, 8), (w & 0x8080808080808080ULL) == 0)) {
            p += 8;
            continue;
        }
        unsigned char c = *p;
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || (size_t)(end - p) < len || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
            return false;
        for (size_t i = 1; i < len; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        if ((len == 3 && c == 0xe0 && p[1] < 0xa0) || (len == 3 && c == 0xed && p[1] >= 0xa0) ||
            (len == 4 && c == 0xf0 && p[1] < 0x90) || (len == 4 && c == 0xf4 && p[1] >= 0x90))
            return false; /* overlong, surrogate, or beyond U+10FFFF */
        p += len;
    }
    return true;
}
