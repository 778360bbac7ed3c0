/*
 * oip arena: the codec's bump allocator (see oip.h for the contract). A leaf of the oip module.
 *
 * A list of malloc'd chunks; allocations bump a pointer in the head chunk. A block larger than a
 * quarter of the next chunk size gets a chunk of its own, linked behind the head so small
 * allocations keep filling the head. Reset keeps the largest chunk up to OIP_ARENA_KEEP bytes, so
 * a worker that serves similar requests mallocs nothing once warm, and one huge request does not
 * pin its memory forever.
 */
#include "oip_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena --------------------------------------------------------------------------------- */

#define OIP_CHUNK_MIN  ((size_t)64 * 1024)
#define OIP_CHUNK_MAX  ((size_t)4 * 1024 * 1024) /* growth cap of shared chunks */
#define OIP_ARENA_KEEP ((size_t)1024 * 1024)     /* kept across resets */

typedef struct oip_chunk {
    struct oip_chunk *next;
    size_t size; /* usable bytes after the header, a multiple of 16 */
    size_t used;
    size_t pad; /* keeps the header 32 bytes, so data stays 16-byte aligned */
} oip_chunk;

_Static_assert(sizeof(oip_chunk) % 16 == 0, "chunk data must stay 16-byte aligned");

struct oip_arena {
    oip_chunk *head; /* serves small allocations */
    void *last;      /* most recent allocation in head, for in-place growth */
};

static unsigned char *chunk_data(oip_chunk *c)
{
    return (unsigned char *)(c + 1);
}

/* Owned by the arena; NULL when memory runs out. */
static oip_chunk *chunk_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(oip_chunk))
        return NULL;
    oip_chunk *c = malloc(sizeof(oip_chunk) + size);
    if (c != NULL)
        *c = (oip_chunk){.size = size};
    return c;
}

oip_arena *oip_arena_new(void)
{
    return calloc(1, sizeof(oip_arena));
}

void oip_arena_free(oip_arena *a)
{
    if (a == NULL)
        return;
    for (oip_chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void oip_arena_reset(oip_arena *a)
{
    oip_chunk *keep = NULL;
    for (oip_chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        if (c->size <= OIP_ARENA_KEEP && (keep == NULL || c->size > keep->size)) {
            free(keep);
            keep = c;
        } else {
            free(c);
        }
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->last = NULL;
}

static void *arena_alloc_slow(oip_arena *a, size_t n)
{
    size_t size = a->head ? a->head->size * 2 : OIP_CHUNK_MIN;
    size = size < OIP_CHUNK_MIN ? OIP_CHUNK_MIN : size > OIP_CHUNK_MAX ? OIP_CHUNK_MAX : size;
    bool own = n > size / 4; /* big blocks get a chunk of their own */
    oip_chunk *c = chunk_new(own ? n : size);
    if (c == NULL)
        return NULL;
    c->used = n;
    if (own && a->head != NULL) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
        a->last = chunk_data(c);
    }
    return chunk_data(c);
}

void *oip_arena_alloc(oip_arena *a, size_t n)
{
    if (n > SIZE_MAX - 15)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    oip_chunk *h = a->head;
    if (h != NULL && h->size - h->used >= n) {
        void *p = chunk_data(h) + h->used;
        h->used += n;
        a->last = p;
        return p;
    }
    return arena_alloc_slow(a, n);
}

void *oip_arena_grow(oip_arena *a, void *p, size_t old_size, size_t new_size)
{
    if (p == NULL)
        return oip_arena_alloc(a, new_size);
    oip_chunk *h = a->head;
    if (h != NULL && p == a->last) {
        size_t off = (size_t)((unsigned char *)p - chunk_data(h));
        if (new_size <= h->size - off) {
            h->used = off + ((new_size + 15) & ~(size_t)15);
            return p;
        }
    }
    void *q = oip_arena_alloc(a, new_size);
    if (q != NULL)
        memcpy(q, p, old_size < new_size ? old_size : new_size);
    return q;
}

char *oip_arena_strndup(oip_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = oip_arena_alloc(a, n + 1);
    if (d != NULL) {
        if (n != 0)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}
