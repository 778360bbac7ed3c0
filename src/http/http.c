/*
 * http: CivetWeb glue. See http.h for the contract.
 *
 * Every route is an http_route wrapper registered with mg_set_request_handler; the wrapper
 * carries the handler function and its cbdata. Per worker thread, two buffers are reused across
 * requests (request body in, response out), so a request allocates nothing once warm.
 */
#include "http.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn_guard.h"
#include "framing.h"
#include "log.h"
#include "reply.h"

/* Status line + headers are written into the body buffer's headroom. */
#define HTTP_HEADROOM 1024
/* Per-thread buffers larger than this are released after the request, so one huge request does
 * not pin memory in every worker. */
#define HTTP_KEEP_BUFFER_BYTES (4u << 20)

typedef struct http_route {
    http_server *srv;
    http_handler_fn fn;
    void *cbdata;
    size_t max_body;          /* body limit of this route */
    http_upload_fn is_upload; /* NULL, or which requests get max_upload instead */
    size_t max_upload;
    char *uri;
    struct http_route *next;
} http_route;

struct http_server {
    struct mg_context *ctx;
    http_config cfg;
    char web_root[PATH_MAX];
    char tls_cert[PATH_MAX], tls_key[PATH_MAX];
    char tls_error[512]; /* why the certificate or key was refused (http_init_tls) */
    void *tls_shims[2];  /* <bin dir>/tls/lib{crypto,ssl}.so while TLS runs (tls_shim_ssl.c) */
    int port;
    pthread_mutex_t routes_lock; /* guards `routes` (the wrapper list), not the hot path */
    http_route *routes;
    atomic_int in_flight; /* requests inside http_dispatch; drained by http_stop */
    atomic_bool draining; /* set by http_stop: new requests get 503 */
    conn_guard *guard;    /* slow and idle clients (conn_guard.h) */
    atomic_ullong framing_errors, rate_limited, rate_limited_principal;
};

/* Worker-thread buffers. Thread-local, so no lock: each CivetWeb worker owns its pair. */
static _Thread_local ds_buf tl_request_body;
static _Thread_local ds_buf tl_response;

const char *http_header(const http_request *req, const char *name)
{
    return mg_get_header((const struct mg_connection *)req->conn, name);
}

void http_response_header(http_response *resp, const char *name, const char *value)
{
    size_t used = strlen(resp->extra_headers);
    size_t room = sizeof(resp->extra_headers) - used;
    int n = snprintf(resp->extra_headers + used, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room)
        resp->extra_headers[used] = '\0'; /* did not fit: drop it whole, never half */
}

void http_response_clear_tail(http_response *resp)
{
    resp->tail = NULL;
    resp->tail_count = 0;
}

size_t http_response_length(const http_response *resp)
{
    size_t n = resp->body->len;
    for (unsigned i = 0; resp->tail != NULL && i < resp->tail_count; i++)
        n += resp->tail[i].len;
    return n;
}

void http_close_after(http_response *resp)
{
    if (!resp->close)
        http_response_header(resp, "Connection", "close");
    resp->close = true;
}

/* Read the whole body into `in`. Returns 0, or an HTTP status after writing the error. */
static uint64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Where the body goes in `in`: with cfg.body_align_header naming a header whose value N is a
 * byte offset inside the body, body + N lands on a 16-byte boundary (the buffer's base is
 * malloc-aligned), so what follows N can be used in place (the binary tensor data after the
 * JSON of an Inference-Header-Content-Length request: oip/decode_binary.c). */
static size_t http_body_pad(const http_server *srv, const struct mg_connection *conn)
{
    const char *v =
        srv->cfg.body_align_header ? mg_get_header(conn, srv->cfg.body_align_header) : NULL;
    if (v == NULL)
        return 0;
    unsigned long long at = strtoull(v, NULL, 10);
    return (size_t)((16 - at % 16) % 16);
}

static bool http_conn_kicked(http_server *srv, const struct mg_connection *conn);

/* Read the whole body into `in`; 0, or the status already replied in resp. */
static int http_read_body(http_server *srv, struct mg_connection *conn, size_t max, int timeout_ms,
                          size_t pad, ds_buf *in, http_response *resp)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    buf_reset(in);
    buf_set_headroom(in, pad); /* empty after the reset: cannot fail but for memory */
    if (ri->content_length > 0 && (unsigned long long)ri->content_length > max) {
        reply_error(resp, HTTP_PAYLOAD_TOO_LARGE,
                    "request body of %lld bytes exceeds the limit of %zu bytes", ri->content_length,
                    max);
        http_close_after(resp);
        return HTTP_PAYLOAD_TOO_LARGE;
    }
    size_t expect = ri->content_length > 0 ? (size_t)ri->content_length : 0;
    if (!buf_reserve(in, expect ? expect : 4096)) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory reading the request body");
        return HTTP_INTERNAL_ERROR;
    }
    uint64_t deadline = http_now_ms() + (uint64_t)timeout_ms;
    bool late = false;
    for (;;) {
        if (http_now_ms() > deadline) {
            late = true;
            break;
        }
        size_t room = in->size - (size_t)(in->data - in->base) - in->len - 1;
        if (room == 0) {
            if (in->len >= max + 1 || !buf_reserve(in, 65536))
                break;
            continue;
        }
        int n = mg_read(conn, in->data + in->len, room);
        if (n <= 0)
            break;
        in->len += (size_t)n;
        if (in->len > max)
            break;
    }
    in->data[in->len] = '\0';
    if (in->len > max) {
        reply_error(resp, HTTP_PAYLOAD_TOO_LARGE, "request body exceeds the limit of %zu bytes",
                    max);
        http_close_after(resp);
        return HTTP_PAYLOAD_TOO_LARGE;
    }
    if (late) {
        reply_error(resp, HTTP_REQUEST_TIMEOUT, "request body not received within %d ms",
                    timeout_ms);
        http_close_after(resp);
        return 408;
    }
    if (expect && in->len < expect && http_conn_kicked(srv, conn)) {
        /* The connection guard shut this connection for reading while the body was still on
         * its way (headers and body sent apart, the kick in between): the client did nothing
         * wrong and nothing ran, so say it may retry, not that its request was bad. */
        reply_error(resp, HTTP_UNAVAILABLE,
                    "connection closed by the server under load before the request body "
                    "arrived; nothing ran, retry");
        http_response_header(resp, "Retry-After", "0");
        http_close_after(resp);
        return HTTP_UNAVAILABLE;
    }
    if (expect && in->len < expect) {
        reply_error(resp, HTTP_BAD_REQUEST, "request body ended after %zu of %zu bytes", in->len,
                    expect);
        http_close_after(resp); /* the rest never came: this connection cannot frame another */
        return HTTP_BAD_REQUEST;
    }
    return 0;
}

/* Write n bytes; mg_write takes at most INT_MAX at a time. false when the connection failed. */
static bool http_write_all(struct mg_connection *conn, const char *p, size_t n)
{
    while (n > 0) {
        size_t part = n < (1u << 30) ? n : (1u << 30);
        if (mg_write(conn, p, part) != (int)part)
            return false;
        p += part;
        n -= part;
    }
    return true;
}

/* Put status line and headers in front of the body and send it all in one write, then the
 * tail's segments (if any) one write each, straight from where the handler keeps them. */
static void http_send(struct mg_connection *conn, http_response *resp, bool head_only)
{
    ds_buf *b = resp->body;
    if (!resp->tail_ok)
        http_response_clear_tail(resp);
    if (b->failed) {
        bool too_large = b->over_limit;
        size_t limit = b->limit;
        buf_free(b);
        buf_set_headroom(b, HTTP_HEADROOM);
        if (too_large)
            reply_error(resp, HTTP_PAYLOAD_TOO_LARGE,
                        "the response would be larger than --max-response-bytes (%zu bytes): "
                        "request fewer elements, or the outputs in binary",
                        limit);
        else
            reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory building the response");
    }
    if (resp->status == 0)
        reply_error(resp, HTTP_INTERNAL_ERROR, "handler produced no response");
    size_t body_len = http_response_length(resp);
    char head[HTTP_HEADROOM];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                     resp->status, reply_reason(resp->status),
                     resp->content_type ? resp->content_type : "application/json", body_len,
                     resp->extra_headers);
    if (n < 0 || (size_t)n >= sizeof head)
        return;      /* cannot happen with the bounded header fields above */
    if (resp->close) /* CivetWeb would otherwise wait for a body we never read */
        mg_disable_connection_keep_alive(conn);
    if (head_only) {
        mg_write(conn, head, (size_t)n);
        return;
    }
    char *start = buf_prepend(b, (size_t)n);
    bool ok;
    if (start != NULL) {
        memcpy(start, head, (size_t)n);
        ok = http_write_all(conn, start, b->len);
    } else { /* no headroom (cannot happen: every response buffer has it) */
        ok = http_write_all(conn, head, (size_t)n) && http_write_all(conn, b->data, b->len);
    }
    for (unsigned i = 0; ok && resp->tail != NULL && i < resp->tail_count; i++)
        ok = http_write_all(conn, resp->tail[i].data, resp->tail[i].len);
    if (!ok) /* short of Content-Length: the connection cannot carry another response */
        mg_disable_connection_keep_alive(conn);
}

/* ---- connection guard and framing (conn_guard.h, framing.h) ------------------------------- */

/* CivetWeb keeps one user pointer per connection: the guard slot + 1 (0 = not tracked). */
static int http_conn_slot(const struct mg_connection *conn)
{
    return (int)(intptr_t)mg_get_user_connection_data(conn) - 1;
}

static void http_guard_state(http_server *srv, const struct mg_connection *conn, conn_state st)
{
    if (srv->guard != NULL)
        conn_guard_set_state(srv->guard, http_conn_slot(conn), st, http_now_ms());
}

static int http_on_init_connection(const struct mg_connection *conn, void **conn_data)
{
    http_server *srv = mg_get_user_data(mg_get_context(conn));
    if (srv == NULL || srv->guard == NULL)
        return 0;
    *conn_data = (void *)(intptr_t)(conn_guard_open(srv->guard) + 1);
    return 0;
}

static void http_on_connection_close(const struct mg_connection *conn)
{
    http_server *srv = mg_get_user_data(mg_get_context(conn));
    if (srv != NULL && srv->guard != NULL)
        conn_guard_close(srv->guard, http_conn_slot(conn));
}

/* Say "Connection: close" when the guard wants this connection's worker back: workers are
 * short (do not keep this one waiting), or a kick shut the connection for reading while this
 * request was on its way (conn_guard.h). Every connection the server ends after a response is
 * ended by a response that says so. */
static bool http_conn_kicked(http_server *srv, const struct mg_connection *conn)
{
    return srv != NULL && srv->guard != NULL && conn_guard_kicked(srv->guard, http_conn_slot(conn));
}

static void http_close_if_guarded(http_server *srv, const struct mg_connection *conn,
                                  http_response *resp)
{
    if (srv != NULL && srv->guard != NULL &&
        (conn_guard_pressure(srv->guard) || conn_guard_kicked(srv->guard, http_conn_slot(conn))))
        http_close_after(resp);
}

static void http_on_end_request(const struct mg_connection *conn, int status)
{
    (void)status;
    http_server *srv = mg_get_user_data(mg_get_context(conn));
    if (srv != NULL)
        http_guard_state(srv, conn, CONN_KEEPALIVE);
}

/* Before any handler: the request head must frame one unambiguous message (framing.h). */
static int http_on_begin_request(struct mg_connection *conn)
{
    http_server *srv = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    framing_field fields[MG_MAX_HEADERS];
    for (int i = 0; i < ri->num_headers; i++)
        fields[i] = (framing_field){ri->http_headers[i].name, ri->http_headers[i].value};
    framing_head head = {.http_version = ri->http_version,
                         .fields = fields,
                         .nfields = ri->num_headers,
                         .max_fields = MG_MAX_HEADERS,
                         .check_line_endings = true};
    char why[128];
    if (srv != NULL && srv->guard != NULL) {
        conn_peer peer = {.port = ri->remote_port};
        snprintf(peer.addr, sizeof peer.addr, "%s", ri->remote_addr);
        conn_guard_begin(srv->guard, http_conn_slot(conn), &peer, http_now_ms());
    }
    if (framing_check(&head, why, sizeof why) == 0)
        return 0;
    if (srv != NULL)
        atomic_fetch_add(&srv->framing_errors, 1);
    ds_buf *out = &tl_response;
    buf_reset(out);
    buf_set_headroom(out, HTTP_HEADROOM);
    http_response resp = {.body = out};
    reply_error(&resp, HTTP_BAD_REQUEST, "malformed request: %s", why);
    http_close_after(&resp);
    http_send(conn, &resp, false);
    return 400;
}

void http_get_stats(http_server *srv, http_stats *out)
{
    conn_guard_stats g = {0};
    if (srv->guard != NULL)
        conn_guard_get_stats(srv->guard, &g);
    out->connections = g.open;
    out->evicted = g.evicted;
    out->refused = g.over_cap;
    out->framing_errors = atomic_load(&srv->framing_errors);
    out->rate_limited = atomic_load(&srv->rate_limited);
    out->rate_limited_principal = atomic_load(&srv->rate_limited_principal);
}

static void http_trim_thread_buffers(void)
{
    if (tl_request_body.size > HTTP_KEEP_BUFFER_BYTES)
        buf_free(&tl_request_body);
    if (tl_response.size > HTTP_KEEP_BUFFER_BYTES)
        buf_free(&tl_response);
}

/* CivetWeb's last matching pass treats a route as a case-insensitive prefix pattern, so
 * "/modelsX" or "/MODELS" could reach "/models". Accept only the route itself or a path below it
 * ("/" is the catch-all). */
static bool http_route_owns(const http_route *rt, const char *path)
{
    size_t n = strlen(rt->uri);
    if (n == 1 && rt->uri[0] == '/')
        return true;
    return strncmp(path, rt->uri, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The body limit of this request: the route's upload limit for its uploads, else max_body. */
static size_t http_body_limit(const http_route *rt, const struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (rt->is_upload != NULL &&
        rt->is_upload(ri->request_method, ri->local_uri, mg_get_header(conn, "Content-Type")))
        return rt->max_upload;
    return rt->max_body;
}

/* Take a token from the per-client bucket of req (http_config.client_limits): the principal the
 * guard verified (req->client_key), else the address. A token is only known to be real after
 * the guard checked it, so the guard runs first. false (counted) with *retry_s when empty. */
static bool http_client_take(http_server *srv, const http_request *req, int *retry_s)
{
    const char *key = req->client_key != NULL ? req->client_key : req->client_addr;
    if (srv->cfg.client_limits == NULL || strncmp(req->path, "/v2/health/", 11) == 0 ||
        rl_table_take(srv->cfg.client_limits, key, rl_now_ns(), retry_s))
        return true;
    atomic_fetch_add(req->client_key != NULL ? &srv->rate_limited_principal : &srv->rate_limited,
                     1);
    return false;
}

/* Write the 429 of a request its per-client bucket refused. */
static void http_reply_limited(const http_request *req, int retry_s, http_response *resp)
{
    char retry[16];
    snprintf(retry, sizeof retry, "%d", retry_s);
    if (req->client_key != NULL)
        reply_error(resp, HTTP_TOO_MANY_REQUESTS,
                    "too many requests from this caller: over --rate-limit");
    else
        reply_error(resp, HTTP_TOO_MANY_REQUESTS, "too many requests from %s: over --rate-limit",
                    req->client_addr);
    http_response_header(resp, "Retry-After", retry);
}

/* The per-client rate limit; false after writing the 429. */
static bool http_client_admitted(http_server *srv, const http_request *req, http_response *resp)
{
    int retry_s = 1;
    if (http_client_take(srv, req, &retry_s))
        return true;
    http_reply_limited(req, retry_s, resp);
    return false;
}

/* A request the guard refused (401, 403, a preflight) still takes a token from its address's
 * bucket, so guessing tokens or flooding with bad ones is limited like anonymous traffic; when
 * the bucket is empty the refusal becomes the 429 (its headers and body replaced). */
static void http_charge_refused(http_server *srv, const http_request *req, http_response *resp)
{
    http_request anon = *req;
    anon.client_key = NULL;
    int retry_s = 1;
    if (http_client_take(srv, &anon, &retry_s))
        return;
    buf_reset(resp->body);
    resp->extra_headers[0] = '\0';
    resp->content_type = "application/json";
    http_reply_limited(&anon, retry_s, resp);
}

static int http_dispatch(struct mg_connection *conn, void *cbdata)
{
    http_route *rt = cbdata;
    http_server *srv = rt->srv;
    atomic_fetch_add(&srv->in_flight, 1);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    ds_buf *out = &tl_response;
    buf_reset(out);
    buf_set_headroom(out, HTTP_HEADROOM);
    buf_set_limit(out, srv->cfg.max_response_bytes);
    http_response resp = {
        .status = 0, .content_type = "application/json", .body = out, .tail_ok = true};
    http_request req = {.method = ri->request_method,
                        .path = ri->local_uri,
                        .query = ri->query_string,
                        .client_addr = ri->remote_addr,
                        .conn = conn};
    if (atomic_load(&srv->draining)) {
        reply_error(&resp, HTTP_UNAVAILABLE, "server is shutting down");
        http_close_after(&resp);
    } else if (srv->cfg.guard != NULL && !srv->cfg.guard(srv->cfg.guard_cbdata, &req, &resp)) {
        http_charge_refused(srv, &req, &resp);
        http_close_after(&resp); /* answered by the guard: the body was not read */
    } else if (!http_route_owns(rt, req.path)) {
        reply_error(&resp, HTTP_NOT_FOUND, "no route for %s", req.path);
        http_close_after(&resp); /* the body was not read */
    } else if (!http_client_admitted(srv, &req, &resp)) {
        http_close_after(&resp); /* the body was not read */
    } else if (http_guard_state(srv, conn, CONN_BODY),
               http_read_body(srv, conn, http_body_limit(rt, conn), srv->cfg.request_timeout_ms,
                              http_body_pad(srv, conn), &tl_request_body, &resp) == 0) {
        http_guard_state(srv, conn, CONN_BUSY);
        req.body = tl_request_body.data;
        req.body_len = tl_request_body.len;
        rt->fn(rt->cbdata, &req, &resp);
    }
    http_guard_state(srv, conn, CONN_BUSY);
    http_close_if_guarded(srv, conn, &resp);
    http_send(conn, &resp, strcmp(ri->request_method, "HEAD") == 0);
    if (resp.after_send != NULL) /* the tail was written: its owner may free it now */
        resp.after_send(resp.after_send_ctx);
    int status = resp.status;
    http_trim_thread_buffers();
    atomic_fetch_sub(&srv->in_flight, 1);
    return status;
}

void http_client_watch_init(http_client_watch *w, const http_request *req)
{
    *w = (http_client_watch){.req = req, .fd = req != NULL && req->conn != NULL ? -1 : -2};
}

bool http_client_gone(void *watch)
{
    http_client_watch *w = watch;
    if (w->fd == -1) {
        const struct mg_request_info *ri = mg_get_request_info(w->req->conn);
        conn_peer peer = {.port = ri->remote_port};
        snprintf(peer.addr, sizeof peer.addr, "%s", ri->remote_addr);
        /* our request's own connection: CivetWeb closes it only after this handler returns */
        http_server *srv = mg_get_user_data(mg_get_context(w->req->conn));
        int fd = conn_guard_conn_fd(srv != NULL ? srv->guard : NULL, http_conn_slot(w->req->conn),
                                    ri->server_port, &peer);
        w->fd = fd >= 0 ? fd : -2;
    }
    return w->fd >= 0 && conn_socket_gone(w->fd);
}

/* Errors CivetWeb itself produces (no route, malformed request line, ...) also answer JSON. */
static int http_on_civet_error(struct mg_connection *conn, int status, const char *msg)
{
    ds_buf *out = &tl_response;
    buf_reset(out);
    buf_set_headroom(out, HTTP_HEADROOM);
    http_response resp = {.status = status, .body = out};
    reply_error(&resp, status, "%s", status == HTTP_NOT_FOUND ? "not found" : msg);
    /* A request CivetWeb could not parse (400, 411, 413, 505, ...) ends its connection: say so. */
    if (status != HTTP_NOT_FOUND && status != HTTP_METHOD_NOT_ALLOWED)
        http_close_after(&resp);
    http_close_if_guarded(mg_get_user_data(mg_get_context(conn)), conn, &resp);
    http_send(conn, &resp, false);
    return 0;
}

/* A worker thread ends (server stop): release its reused buffers. */
static void http_on_thread_exit(const struct mg_context *ctx, int thread_type, void *user)
{
    (void)ctx;
    (void)thread_type;
    (void)user;
    buf_free(&tl_request_body);
    buf_free(&tl_response);
}

/* Always authorizes; it exists for speed. For every request CivetWeb 1.15 also searches for an
 * auth handler: an exact pass, a prefix pass and a pattern pass over the whole handler list.
 * With none registered that is three full walks per request, and 1000 deployments cut
 * throughput to a fifth. So every route gets an exact auth twin right behind it (the search
 * stops where the route itself was found), and "/" registered first catches everything else in
 * the pattern pass at the head of the list. */
static int http_authorize_all(struct mg_connection *conn, void *cbdata)
{
    (void)conn;
    (void)cbdata;
    return 1;
}

static int http_on_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

/* CivetWeb made the SSL_CTX; load our certificate and key into it, TLS 1.2 at least. Returns 1
 * (done, CivetWeb loads nothing itself) or -1 with the reason kept for http_start's error. */
static int http_init_tls(void *ssl_ctx, void *user_data)
{
    http_server *srv = user_data;
    SSL_CTX *ctx = ssl_ctx;
    const char *what = NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        what = "cannot require TLS 1.2";
    else if (SSL_CTX_use_certificate_chain_file(ctx, srv->tls_cert) != 1)
        what = "cannot load the --tls-cert certificate";
    else if (SSL_CTX_use_PrivateKey_file(ctx, srv->tls_key, SSL_FILETYPE_PEM) != 1)
        what = "cannot load the --tls-key private key";
    else if (SSL_CTX_check_private_key(ctx) != 1)
        what = "the --tls-key private key does not match the --tls-cert certificate";
    if (what == NULL)
        return 1;
    char reason[160];
    ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
    snprintf(srv->tls_error, sizeof srv->tls_error, "TLS: %s (%s)", what, reason);
    return -1;
}

/* Load <bin dir>/tls/libcrypto.so and libssl.so so that CivetWeb's dlopen of those names finds
 * them (see tls_shim_ssl.c for why); only Debian's CivetWeb does that dlopen, the vendored one
 * links OpenSSL 3. 0, or -1 with the reason. */
static int http_load_tls_shims(http_server *srv, char *err, size_t errlen)
{
#ifdef DYNSERVE_SYSTEM_CIVETWEB
    static const char *const names[2] = {"libcrypto.so", "libssl.so"};
    char dir[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    char *slash = n > 0 ? (dir[n] = '\0', strrchr(dir, '/')) : NULL;
    if (slash == NULL) {
        snprintf(err, errlen, "TLS: cannot find the binary's directory");
        return -1;
    }
    *slash = '\0';
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/tls/%s", dir, names[i]);
        srv->tls_shims[i] = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (srv->tls_shims[i] == NULL) {
            snprintf(err, errlen, "TLS needs %.200s (built and installed with dynserve): %.200s",
                     path, dlerror());
            return -1;
        }
    }
    return 0;
#else
    (void)srv;
    (void)err;
    (void)errlen;
    return 0;
#endif
}

static void http_unload_tls_shims(http_server *srv)
{
    for (int i = 1; i >= 0; i--)
        if (srv->tls_shims[i] != NULL)
            dlclose(srv->tls_shims[i]);
}

void http_global_init(void)
{
    mg_init_library(0);
}

void http_global_cleanup(void)
{
    mg_exit_library();
}

int http_start(const http_config *cfg, http_server **out, char *err, size_t errlen)
{
    http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->cfg = *cfg;
    if (cfg->web_root != NULL)
        snprintf(srv->web_root, sizeof srv->web_root, "%s", cfg->web_root);
    srv->cfg.web_root = cfg->web_root ? srv->web_root : NULL;
    bool tls = cfg->tls_cert != NULL && cfg->tls_key != NULL;
    if (tls) {
        snprintf(srv->tls_cert, sizeof srv->tls_cert, "%s", cfg->tls_cert);
        snprintf(srv->tls_key, sizeof srv->tls_key, "%s", cfg->tls_key);
    }
    pthread_mutex_init(&srv->routes_lock, NULL);

    /* One slot per worker; a quarter of the workers, at most 8, stay for new connections. */
    int reserve = cfg->threads / 4 < 8 ? cfg->threads / 4 : 8;
    conn_guard_config gc = {.slots = cfg->threads,
                            .max_per_client = cfg->max_conns_per_client,
                            .reserve = reserve < 1 ? 1 : reserve};
    srv->guard = conn_guard_new(&gc);
    if (srv->guard == NULL) {
        snprintf(err, errlen, "out of memory");
        free(srv);
        return -1;
    }
    char threads[16], req_timeout[16], keep_alive[16], backlog[16], listen[160];
    snprintf(listen, sizeof listen, "%s%s", cfg->listen, tls ? "s" : ""); /* "s": TLS port */
    snprintf(threads, sizeof threads, "%d", cfg->threads);
    /* CivetWeb's request_timeout_ms bounds the wait for the request head (and each single
     * read or write); the body has its own deadline in http_read_body. */
    snprintf(req_timeout, sizeof req_timeout, "%d",
             cfg->header_timeout_ms > 0 ? cfg->header_timeout_ms : cfg->request_timeout_ms);
    snprintf(backlog, sizeof backlog, "%d", 1024);
    snprintf(keep_alive, sizeof keep_alive, "%d", cfg->keep_alive_ms);
    /* CivetWeb answers CORS preflights itself with "Access-Control-Allow-Origin: *" unless
     * these are empty; auth decides CORS instead (--cors-origin). ssl_protocol_version 4 is
     * TLS 1.2 and newer. */
    const char *options[] = {"listening_ports",
                             listen,
                             "access_control_allow_origin",
                             "",
                             "access_control_allow_methods",
                             "",
                             "access_control_allow_headers",
                             "",
                             "ssl_protocol_version",
                             "4",
                             "num_threads",
                             threads,
                             "enable_keep_alive",
                             "yes",
                             "tcp_nodelay",
                             "1",
                             "request_timeout_ms",
                             req_timeout,
                             "keep_alive_timeout_ms",
                             keep_alive,
                             "decode_url",
                             "yes",
                             "listen_backlog",
                             backlog,
                             NULL};
    struct mg_callbacks callbacks = {0};
    callbacks.http_error = http_on_civet_error;
    callbacks.log_message = http_on_log;
    callbacks.exit_thread = http_on_thread_exit;
    callbacks.begin_request = http_on_begin_request;
    callbacks.end_request = http_on_end_request;
    callbacks.init_connection = http_on_init_connection;
    callbacks.connection_close = http_on_connection_close;
    if (tls)
        callbacks.init_ssl = http_init_tls;
    struct mg_init_data init = {
        .callbacks = &callbacks, .user_data = srv, .configuration_options = options};
    struct mg_error_data error = {.text = err, .text_buffer_size = errlen};
    srv->ctx = tls && http_load_tls_shims(srv, srv->tls_error, sizeof srv->tls_error) != 0
                   ? NULL
                   : mg_start2(&init, &error);
    if (srv->ctx == NULL) {
        http_unload_tls_shims(srv);
        if (srv->tls_error[0] != '\0')
            snprintf(err, errlen, "%s", srv->tls_error);
        else if (err[0] == '\0')
            snprintf(err, errlen, "cannot listen on %s", cfg->listen);
        pthread_mutex_destroy(&srv->routes_lock);
        conn_guard_free(srv->guard);
        free(srv);
        return -1;
    }
    mg_set_auth_handler(srv->ctx, "/", http_authorize_all, NULL); /* must be the first handler */
    struct mg_server_port ports[4];
    int nports = mg_get_server_ports(srv->ctx, 4, ports);
    srv->port = nports > 0 ? ports[0].port : 0;
    int guard_ports[4];
    for (int i = 0; i < nports; i++)
        guard_ports[i] = ports[i].port;
    conn_guard_set_ports(srv->guard, guard_ports, nports);
    if (conn_guard_start(srv->guard) != 0)
        log_warn("connection guard: no thread; limits are enforced only as connections arrive");
    *out = srv;
    return 0;
}

int http_port(const http_server *srv)
{
    return srv->port;
}

/* Unlink and return the wrapper for uri; caller holds routes_lock. */
static http_route *http_route_take(http_server *srv, const char *uri)
{
    for (http_route **p = &srv->routes; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->uri, uri) == 0) {
            http_route *found = *p;
            *p = found->next;
            return found;
        }
    }
    return NULL;
}

static void http_route_free(http_route *rt)
{
    if (rt != NULL) {
        free(rt->uri);
        free(rt);
    }
}

static int http_route_add_full(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata,
                               size_t max_body_bytes, http_upload_fn is_upload,
                               size_t max_upload_bytes)
{
    http_route *rt = calloc(1, sizeof *rt);
    if (rt == NULL || (rt->uri = strdup(uri)) == NULL) {
        free(rt);
        return -1;
    }
    rt->srv = srv;
    rt->fn = fn;
    rt->cbdata = cbdata;
    rt->max_body = max_body_bytes;
    rt->is_upload = is_upload;
    rt->max_upload = max_upload_bytes;
    pthread_mutex_lock(&srv->routes_lock);
    http_route *old = http_route_take(srv, uri);
    rt->next = srv->routes;
    srv->routes = rt;
    /* Replacing waits inside CivetWeb until the old handler is idle, so `old` is free to go. */
    mg_set_request_handler(srv->ctx, uri, http_dispatch, rt);
    mg_set_auth_handler(srv->ctx, uri, http_authorize_all, NULL);
    pthread_mutex_unlock(&srv->routes_lock);
    http_route_free(old);
    return 0;
}

int http_route_add(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata)
{
    return http_route_add_sized(srv, uri, fn, cbdata, srv->cfg.max_body_bytes);
}

int http_route_add_upload(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata,
                          http_upload_fn is_upload, size_t max_upload_bytes)
{
    return http_route_add_full(srv, uri, fn, cbdata, srv->cfg.max_body_bytes, is_upload,
                               max_upload_bytes);
}

int http_route_add_sized(http_server *srv, const char *uri, http_handler_fn fn, void *cbdata,
                         size_t max_body_bytes)
{
    return http_route_add_full(srv, uri, fn, cbdata, max_body_bytes, NULL, 0);
}

void http_route_remove(http_server *srv, const char *uri)
{
    pthread_mutex_lock(&srv->routes_lock);
    http_route *old = http_route_take(srv, uri);
    pthread_mutex_unlock(&srv->routes_lock);
    if (old == NULL)
        return;
    /* Blocks until no request is inside this handler (CivetWeb's handler refcount); only then
     * may the caller release what cbdata points to. Done outside routes_lock so other routes
     * can change meanwhile. */
    mg_set_request_handler(srv->ctx, uri, NULL, NULL);
    mg_set_auth_handler(srv->ctx, uri, NULL, NULL);
    http_route_free(old);
}

/* Let requests already inside a handler finish and send their answers: CivetWeb stops writing
 * responses as soon as mg_stop begins, so the drain has to happen before it. Bounded by the
 * request timeout, so a stuck plugin cannot hold the shutdown forever. */
static void http_drain(http_server *srv)
{
    atomic_store(&srv->draining, true);
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
    for (int waited_ms = 0; atomic_load(&srv->in_flight) > 0; waited_ms++) {
        if (waited_ms >= srv->cfg.request_timeout_ms) {
            log_warn("stopping with %d request(s) still in flight", atomic_load(&srv->in_flight));
            return;
        }
        nanosleep(&pause, NULL);
    }
}

void http_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    http_drain(srv);
    conn_guard_stop(srv->guard); /* before CivetWeb closes sockets without telling the guard */
    mg_stop(srv->ctx);           /* joins every worker: no handler runs after this */
    http_unload_tls_shims(srv);
    pthread_mutex_lock(&srv->routes_lock);
    while (srv->routes != NULL)
        http_route_free(http_route_take(srv, srv->routes->uri));
    pthread_mutex_unlock(&srv->routes_lock);
    pthread_mutex_destroy(&srv->routes_lock);
    conn_guard_free(srv->guard);
    free(srv);
}

static const char *http_mime_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot == NULL)
        return "application/octet-stream";
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".json", "application/json"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".ico", "image/x-icon"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Read a whole regular file into b. 0, or -1 when it is missing or not a regular file. */
static int http_read_file(const char *path, ds_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !buf_reserve(b, (size_t)st.st_size)) {
        close(fd);
        return -1;
    }
    ssize_t n;
    while ((n = read(fd, b->data + b->len, (size_t)st.st_size - b->len)) > 0)
        b->len += (size_t)n;
    close(fd);
    return n < 0 ? -1 : 0;
}

void http_serve_static(http_server *srv, const http_request *req, http_response *resp)
{
    /* Only files live here: any other method on any path is a route that does not exist. */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s %s", req->method, req->path);
        return;
    }
    const char *rel = strcmp(req->path, "/") == 0 ? "/index.html" : req->path;
    /* No "..", no hidden files, no backslashes: only plain paths under the web root. */
    if (srv->cfg.web_root == NULL || strstr(rel, "..") != NULL || strstr(rel, "/.") != NULL ||
        strchr(rel, '\\') != NULL) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
        return;
    }
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s%s", srv->cfg.web_root, rel);
    buf_reset(resp->body);
    if (n < 0 || (size_t)n >= sizeof path || http_read_file(path, resp->body) != 0) {
        reply_error(resp, HTTP_NOT_FOUND, "no route for %s", req->path);
        return;
    }
    resp->status = HTTP_OK;
    resp->content_type = http_mime_type(path);
    http_response_header(resp, "Cache-Control", "no-cache");
}
