/*
 * buf: a growable byte buffer, the one way dynserve builds response bodies and JSON text.
 *
 * A ds_buf owns its memory (malloc'd `data`). It may reserve `headroom` bytes in front of the
 * content so that the HTTP layer can write the status line and headers in front of a body
 * without copying it (one write per response, see bench/README.md).
 * Not thread-safe: one owner at a time. Allocation failure is sticky: after it, `failed` is set,
 * appends do nothing, and the owner turns it into a 500 at the end.
 */
#ifndef DS_BUF_H
#define DS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Invariant: base <= data <= base + headroom; data[len] is always writable (for a NUL);
 * len + 1 <= size - (data - base). */
typedef struct ds_buf {
    char *base;      /* allocation start (owned), NULL until the first append */
    size_t size;     /* bytes allocated at base */
    char *data;      /* content start: base + headroom, or earlier after buf_prepend */
    size_t len;      /* content bytes */
    size_t headroom; /* bytes reserved before the content by buf_set_headroom */
    bool failed;     /* an allocation failed; content is incomplete */
    size_t limit;    /* most content bytes allowed (buf_set_limit); 0 = no limit */
    bool over_limit; /* an append would have passed `limit`: failed is set too */
} ds_buf;

/* A borrowed run of bytes (the owner says how long it stays valid): the HTTP layer's response
 * tail (http.h) and the OIP encoder's binary outputs (oip.h). */
typedef struct ds_span {
    const void *data;
    size_t len;
} ds_span;

/* Zero-initialised ds_buf is valid and empty. */
#define DS_BUF_INIT                                                                                \
    {                                                                                              \
        0                                                                                          \
    }

/* Make sure `extra` more bytes fit; false (and failed set) when memory runs out. */
bool buf_reserve(ds_buf *b, size_t extra);
/* Reserve `headroom` bytes before the content; only when the buffer is empty. */
bool buf_set_headroom(ds_buf *b, size_t headroom);
/* Move content start back by n bytes into the headroom and return it (NULL if it does not
 * fit). buf_reset() gives the headroom back. */
char *buf_prepend(ds_buf *b, size_t n);
void buf_append(ds_buf *b, const void *p, size_t n);
void buf_append_str(ds_buf *b, const char *s);
void buf_append_char(ds_buf *b, char c);
void buf_printf(ds_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(ds_buf *b, const char *fmt, va_list ap);
/* Append s as a JSON string literal, quotes included, escaping what JSON requires. */
void buf_append_json_string(ds_buf *b, const char *s, size_t n);
/* Cap the content at `limit` bytes (0 = no cap). An append that would pass it fails like an
 * allocation failure (failed is set, sticky) and also sets over_limit, so the owner can answer
 * "too large" instead of "out of memory"; the buffer never grows past the cap. Kept by
 * buf_reset, cleared by buf_free. */
void buf_set_limit(ds_buf *b, size_t limit);
/* Drop content, keep memory (and headroom setting) for reuse. */
void buf_reset(ds_buf *b);
/* Release memory; b is empty and reusable afterwards. */
void buf_free(ds_buf *b);
/* Hand the content to the caller as a NUL-terminated malloc'd string (caller frees);
 * b is empty afterwards. NULL when memory ran out. */
char *buf_detach(ds_buf *b);

#endif
