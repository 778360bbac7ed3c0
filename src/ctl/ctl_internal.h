/*
 * ctl_internal: what the ctl command files share — one HTTP call (ctl_http.c) and the table
 * printer (ctl_table.c). Nothing outside src/ctl includes this.
 */
#ifndef DS_CTL_INTERNAL_H
#define DS_CTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct ctl_opts {
    const char *server;  /* base URL without a trailing slash, e.g. "http://127.0.0.1:8080" */
    const char *token;   /* bearer token or NULL */
    const char *cacert;  /* CA bundle for https, or NULL for the system's */
    bool insecure;       /* do not verify the server's certificate */
    bool json;           /* print the server's JSON instead of tables */
    long timeout_s;      /* whole-request timeout */
} ctl_opts;

typedef struct ctl_reply {
    long status;      /* HTTP status; 0 when the server could not be reached */
    char *body;       /* NUL-terminated, malloc'd (caller frees with ctl_reply_free) */
    size_t body_len;
    char error[256];  /* transport error when status is 0 */
} ctl_reply;

/* One request: method, path (starting with '/', query included), optional body with its content
 * type (body_len bytes; NULL for none). Always fills *out; returns out->status (0 = no answer). */
long ctl_http(const ctl_opts *o, const char *method, const char *path, const char *content_type,
              const void *body, size_t body_len, ctl_reply *out);
void ctl_reply_free(ctl_reply *r);

/* Percent-encode one path segment into out (at least 3 * strlen(s) + 1 bytes). */
void ctl_escape(const char *s, char *out, size_t outlen);

/* A table of string cells printed with aligned columns. Cells are copied. */
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(size_t columns, const char *const *headers);
void ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *out);
void ctl_table_free(ctl_table *t);

#endif
