/*
 * http_client: a tiny blocking HTTP/1.1 client for the unit tests that talk to a real dynserve
 * HTTP server on 127.0.0.1 (test_http, test_deploy, test_infer). Test code only.
 */
#ifndef DS_TEST_HTTP_CLIENT_H
#define DS_TEST_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct reply {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char *body;      /* malloc'd, NUL-terminated; NULL before a reply was read */
    size_t body_len;
} reply;

void reply_free(reply *r);
/* A connected socket to 127.0.0.1:port with 10 s send/receive timeouts, or -1. */
int client_connect(int port);
int send_all(int fd, const void *data, size_t len);
/* Value of header `name` in r->head copied into out, or NULL. */
const char *reply_header(const reply *r, const char *name, char *out, size_t n);
/* Read one reply: the head until the blank line, then Content-Length body bytes (none when
 * head_only). 0, or -1 when the connection ended or timed out first. */
int read_reply(int fd, reply *r, bool head_only);

#endif
