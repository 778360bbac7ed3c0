/* buf: growable byte buffer with optional headroom. See buf.h for the invariant. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t buf_room(const ds_buf *b)
{
    return b->base ? b->size - (size_t)(b->data - b->base) : 0;
}

bool buf_reserve(ds_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > SIZE_MAX - b->len - 1) {
        b->failed = true;
        return false;
    }
    if (b->limit != 0 && b->len + extra > b->limit) {
        b->failed = b->over_limit = true;
        return false;
    }
    size_t need = b->len + extra + 1; /* +1: room for a terminating NUL */
    if (b->base != NULL && buf_room(b) >= need)
        return true;
    size_t offset = b->base ? (size_t)(b->data - b->base) : b->headroom;
    size_t size = b->size ? b->size : 256;
    while (size < offset + need) {
        if (size > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        size *= 2;
    }
    if (b->limit != 0 && size > offset + b->limit + 1)
        size = offset + b->limit + 1; /* never more than the cap (need fits: len+extra <= limit) */
    char *p = realloc(b->base, size);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->base = p;
    b->size = size;
    b->data = p + offset;
    return true;
}

bool buf_set_headroom(ds_buf *b, size_t headroom)
{
    if (b->len != 0)
        return false;
    b->headroom = headroom;
    if (b->base != NULL)
        b->data = b->base + (headroom < b->size ? headroom : 0);
    if (b->base != NULL && headroom >= b->size) {
        free(b->base);
        b->base = b->data = NULL;
        b->size = 0;
    }
    return buf_reserve(b, 0);
}

char *buf_prepend(ds_buf *b, size_t n)
{
    if (b->failed || b->base == NULL || n > (size_t)(b->data - b->base))
        return NULL;
    b->data -= n;
    b->len += n;
    return b->data;
}

void buf_append(ds_buf *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n != 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_append_str(ds_buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_append_char(ds_buf *b, char c)
{
    if (!buf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void buf_vprintf(ds_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    if (buf_reserve(b, 64)) {
        size_t room = buf_room(b) - b->len;
        int n = vsnprintf(b->data + b->len, room, fmt, ap);
        if (n < 0)
            b->failed = true;
        else if ((size_t)n < room)
            b->len += (size_t)n;
        else if (buf_reserve(b, (size_t)n)) {
            vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
            b->len += (size_t)n;
        }
    }
    va_end(again);
}

void buf_printf(ds_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_append_json_string(ds_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_append_char(b, '"');
    size_t run = 0; /* start of the current run of bytes that need no escaping */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, esc, sizeof esc);
        }
        }
    }
    buf_append(b, s + run, n - run);
    buf_append_char(b, '"');
}

void buf_reset(ds_buf *b)
{
    if (b->base != NULL)
        b->data = b->base + b->headroom;
    b->len = 0;
    b->failed = false;
    b->over_limit = false;
}

void buf_set_limit(ds_buf *b, size_t limit)
{
    b->limit = limit;
}

void buf_free(ds_buf *b)
{
    free(b->base);
    *b = (ds_buf)DS_BUF_INIT;
}

char *buf_detach(ds_buf *b)
{
    char *out = NULL;
    if (buf_reserve(b, 0)) {
        b->data[b->len] = '\0'; /* an empty or reset buffer has no terminator yet */
        if (b->data == b->base) {
            out = b->base;
            b->base = NULL;
        } else if ((out = malloc(b->len + 1)) != NULL) {
            memcpy(out, b->data, b->len + 1);
        }
    }
    buf_free(b);
    return out;
}
