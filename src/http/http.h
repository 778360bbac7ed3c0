/*
 * http: the HTTP server glue — http.c is the only file that includes CivetWeb's header. Errors,
 * the method check and the status table are in reply.h; path and query helpers in path.h; JSON
 * request bodies in body.h.
 *
 * It owns the CivetWeb context, turns each request into an http_request (method, path, headers,
 * the whole body read up to a size limit), calls the route's handler, and writes the handler's
 * http_response in a single write (status line and headers are put in front of the body in the
 * body buffer's headroom; two writes on a keep-alive connection meet Nagle + delayed ACK). A
 * response with a tail (large binary outputs, not copied into the body) is that write followed
 * by one write per tail segment; sockets have TCP_NODELAY (CivetWeb's tcp_nodelay option), so
 * no write waits for the ACK of the one before.
 *
 * Routes follow CivetWeb's matching: an exact URI first, then a prefix ("/models" also serves
 * "/models/..."), then "/" as the catch-all. Keep the list short: CivetWeb scans it linearly under
 * one lock on every request (see design.md "Performance notes").
 *
 * Thread-safety: http_route_add/http_route_remove may be called from any thread while the server
 * runs. http_route_remove returns only once no call of the removed handler is in flight
 * (CivetWeb refcounts handlers), so a handler must never remove its own route. Handlers run on
 * CivetWeb worker threads, many at once.
 */
#ifndef DS_HTTP_H
#define DS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ratelimit.h"

typedef struct http_server http_server;

typedef struct http_request {
    const char *method;
    const char *path;  /* URL-decoded path without the query string */
    const char *query; /* raw query string or NULL */
    const char *body;  /* whole body (NUL-terminated for convenience), owned by the server */
    size_t body_len;
    const char *client_addr; /* the peer's address ("127.0.0.1", "::1") */
    const void *guard_data;  /* set by the guard for the handler (auth: the principal), or NULL */
    /* Set by the guard when the caller proved who it is (auth: "principal:<token name or
     * jwt:sub>"): the per-client rate limit then keys on it instead of client_addr, so callers
     * behind one address (a proxy, a NAT) each get their own bucket. NULL: anonymous. */
    const char *client_key;
    const void *conn; /* private to http.c */
} http_request;

/* Response filled by a handler. `body` is a per-worker buffer owned by the server: append to it,
 * never free it. Status 0 means "not set" and becomes a 500. */
typedef struct http_response {
    int status;
    const char *content_type; /* static string; default "application/json" */
    ds_buf *body;
    char extra_headers[640]; /* "Name: value\r\n" lines, set with http_response_header() */
    bool close;              /* close the connection after this response (http_close_after) */
    /* Bytes sent after `body`, in order, without being copied into it (a binary infer answer's
     * large output tensors); Content-Length counts them. A handler may set them only when
     * tail_ok, which the server sets for the responses it writes itself (http_dispatch); a
     * response built elsewhere (an async job's, a shadow's) has tail_ok false and copies into
     * body. The array and the bytes must stay valid until after_send runs. reply_error and
     * reply_json clear the tail (http_response_clear_tail). */
    const ds_span *tail;
    unsigned tail_count;
    bool tail_ok;
    /* When set, the server calls after_send(after_send_ctx) on the handler's thread once the
     * response was written or dropped: the handler frees what `tail` points to there. */
    void (*after_send)(void *ctx);
    void *after_send_ctx;
} http_response;

typedef void (*http_handler_fn)(void *cbdata, const http_request *req, http_response *resp);

/* Called for every routed request before its body is read (auth: src/auth/auth_http.h). true:
 * serve it (the guard may set req->guard_data and response headers); false: resp holds the
 * answer, the route's handler does not run and the connection is closed after it (the body was
 * not read). Runs on many worker threads at once. */
typedef bool (*http_guard_fn)(void *cbdata, http_request *req, http_response *resp);

typedef struct http_config {
    const char *listen;        /* "127.0.0.1:8080", "8080" or "[::]:8080" */
    int threads;               /* worker threads = keep-alive connections served at once */
    size_t max_body_bytes;     /* larger bodies get 413 */
    size_t max_response_bytes; /* a response body that would be larger becomes a 413; 0 = none */
    int request_timeout_ms;    /* the body must be received within this after the headers */
    int header_timeout_ms;     /* the headers must be received within this (and every single
                                * read or write may wait this long) */
    int keep_alive_ms;         /* idle keep-alive connections are closed after this */
    int max_conns_per_client;  /* connections one client address may hold; 0 = no cap */
    const char *web_root;      /* static files for "/" (dashboard), or NULL */
    rl_table *client_limits;   /* per-client token buckets (429 + Retry-After), or NULL: one per
                                * authenticated principal (http_request.client_key), else one
                                * per client address; the health probes are never limited */
    const char *tls_cert;      /* PEM certificate (chain) file: serve HTTPS only, TLS >= 1.2 */
    const char *tls_key;       /* its PEM private key file (both NULL: plain HTTP) */
    const char *body_align_header; /* a request header holding a byte offset N into the body
                                    * (Inference-Header-Content-Length), or NULL: the body is
                                    * placed so that body + N is 16-byte aligned */
    http_guard_fn guard;           /* auth: NULL sends every request straight to its handler */
    void *guard_cbdata;            /* must outlive the server */
} http_config;

/* Process-wide CivetWeb setup and teardown: call once before the first http_start and once after
 * the last http_stop (main does). Not thread-safe. */
void http_global_init(void);
void http_global_cleanup(void);

/* Header value of the request, or NULL. Valid during the handler call. */
const char *http_header(const http_request *req, const char *name);

/* Start serving. 0 on success (*out owned by the caller, stop with http_stop), -1 with a one-line
 * reason (e.g. the port is in use). */
int http_start(const http_config *cfg, http_server **out, char *err, size_t errlen);
/* Stop accepting, let in-flight requests finish, free everything. NULL is a no-op. */
void http_stop(http_server *srv);
/* Port actually bound (useful with port 0). */
int http_port(const http_server *srv);

/* Add (or replace) the handler for `uri`. cbdata is passed to fn and must stay valid until the
 * route is removed. 0 on success, -1 when memory runs out. */
int http_route_add(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata);
/* The same with its own body limit instead of the server's max_body_bytes. */
int http_route_add_sized(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata,
                         size_t max_body_bytes);
/* Tells whether a request on a route is an upload (gets the route's upload limit). Called
 * before the body is read; must not keep the pointers. */
typedef bool (*http_upload_fn)(const char *method, const char *path, const char *content_type);
/* A route whose uploads (is_upload true) may be up to max_upload_bytes; every other request on
 * it keeps the server's max_body_bytes. */
int http_route_add_upload(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata,
                          http_upload_fn is_upload, size_t max_upload_bytes);
/* Remove the handler for `uri`; returns once no call of it is in flight. */
void http_route_remove(http_server *srv, const char *uri);

/* Whether the client of a request still wants the answer, asked while its handler runs (a
 * plugin's is_cancelled). The first http_client_gone on a connection finds its socket (a scan
 * of /proc/self/fd for our port and the client's address and port: CivetWeb keeps the socket
 * private) and the connection guard keeps it for the connection's later requests; every call
 * after costs one poll(2). "Gone" is the client's end-of-file, a reset
 * or a hang-up: it closed the connection (or half-closed it, as nginx also counts a 499).
 * The watch belongs to the request and is used only on the thread serving it (no lock). */
typedef struct http_client_watch {
    const http_request *req;
    int fd; /* -1: not looked up yet, -2: not found (then never gone) */
} http_client_watch;
void http_client_watch_init(http_client_watch *w, const http_request *req);
/* `w` as void * so that it fits a plain callback (serve/infer.c hands it to the OIP response). */
bool http_client_gone(void *w);

/* Add a response header line; silently dropped if it does not fit (only short headers used). */
void http_response_header(http_response *resp, const char *name, const char *value);

/* Drop the tail (the bytes after body); after_send stays set. */
void http_response_clear_tail(http_response *resp);
/* Content-Length of the response: body plus tail. */
size_t http_response_length(const http_response *resp);

/* Answer with "Connection: close" and really close: used when the request body was not read,
 * and for an overload 503, so the connection gives its worker thread back at once. */
void http_close_after(http_response *resp);

/* Serve a file from the web root with a content type chosen by its extension, or 404. */
void http_serve_static(http_server *srv, const http_request *req, http_response *resp);

/* Counters of the connection guard (conn_guard.h), the framing rules and the per-client rate
 * limit, for /metrics. */
typedef struct http_stats {
    int connections;                   /* open now */
    unsigned long long evicted;        /* slow or idle connections closed to keep workers free */
    unsigned long long refused;        /* closed because their address was over its cap */
    unsigned long long framing_errors; /* requests refused by the framing rules */
    unsigned long long rate_limited;   /* refused by the per-client limit, anonymous (address) */
    unsigned long long rate_limited_principal; /* ... by the limit of an authenticated caller */
} http_stats;
void http_get_stats(http_server *srv, http_stats *out);

#endif
