/*
 * Unit tests for src/http/http.c and reply.c, driven over real sockets: a server on 127.0.0.1:0 per
 * test and a tiny blocking HTTP/1.1 client (connect, send, read until Content-Length is satisfied;
 * every socket has a 10 s timeout so no test can hang).
 *
 * Covered: the bound port, handler status/body/Content-Type/extra headers, request fields,
 * exact and prefix routing and the "/" catch-all, CivetWeb's own 404 as JSON, the http_error
 * shape, body limits (413 + Connection: close, per-route limits), a 1 MB body delivered whole,
 * keep-alive framing, http_route_remove waiting for an in-flight handler, replacing a route,
 * routes changing while requests run, a busy port, and http_serve_static (index for "/", MIME
 * types, no "..", no hidden files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "reply.h"
#include "support/http_client.h"
#include "support/test_fs.h"

#define ERRLEN         512
#define MAX_BODY_BYTES (4u << 20)
#define INDEX_HTML     "<!doctype html><title>dynserve</title><p>index</p>\n"
#define APP_JS         "console.log('dashboard');\n"
#define SECRET         "top secret\n"

/* ---- a tiny blocking HTTP/1.1 client ------------------------------------------------------ */

static int send_request(int fd, const char *method, const char *path, const char *headers,
                        const void *body, size_t len)
{
    char head[2048];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                     headers ? headers : "");
    if (body != NULL)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (send_all(fd, head, (size_t)n) != 0)
        return -1;
    return body != NULL && len > 0 ? send_all(fd, body, len) : 0;
}

/* One request on a fresh connection that is closed afterwards. Fails the test when no reply
 * arrives. */
static void request(int port, const char *method, const char *path, const char *headers,
                    const void *body, size_t len, reply *r)
{
    int fd = client_connect(port);
    assert_true(fd >= 0);
    char all[1024];
    snprintf(all, sizeof all, "Connection: close\r\n%s", headers ? headers : "");
    assert_int_equal(send_request(fd, method, path, all, body, len), 0);
    int rc = read_reply(fd, r, strcmp(method, "HEAD") == 0);
    close(fd);
    if (rc != 0)
        fail_msg("no reply to %s %s", method, path);
}

static void get(int port, const char *path, reply *r)
{
    request(port, "GET", path, NULL, NULL, 0, r);
}

/* The "error" string of a JSON error body, checked for shape: an object with a string "error". */
static void assert_json_error(const reply *r, int status)
{
    assert_int_equal(r->status, status);
    char type[128];
    assert_non_null(reply_header(r, "Content-Type", type, sizeof type));
    assert_non_null(strstr(type, "application/json"));
    cJSON *j = cJSON_Parse(r->body);
    if (j == NULL)
        fail_msg("error body is not JSON: %s", r->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsString(e));
    assert_true(strlen(e->valuestring) > 0);
    cJSON_Delete(j);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- fixture: a web root and a running server ----------------------------------------------- */

#define MAX_ROUTES 16

typedef struct fixture {
    char dir[64];       /* temp dir: web/ inside, secret.txt next to it */
    char web_root[128]; /* dir/web */
    http_server *srv;
    int port;
    char routes[MAX_ROUTES][64]; /* routes this test added; teardown removes them */
    size_t route_count;
} fixture;

/* One server for the whole file (CivetWeb's mg_stop takes up to 2 s, its poll quantum); tests
 * that need another configuration start their own. */
static fixture shared;

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static http_config test_config(const char *web_root)
{
    return (http_config){.listen = "127.0.0.1:0",
                         .threads = 16,
                         .max_body_bytes = MAX_BODY_BYTES,
                         .request_timeout_ms = 10000,
                         .keep_alive_ms = 500,
                         .web_root = web_root};
}

static void remember_route(fixture *f, const char *uri)
{
    assert_true(f->route_count < MAX_ROUTES);
    snprintf(f->routes[f->route_count++], sizeof f->routes[0], "%s", uri);
}

static int add_route(fixture *f, const char *uri, http_handler_fn fn, void *cbdata)
{
    remember_route(f, uri);
    return http_route_add(f->srv, uri, fn, cbdata);
}

static int add_route_sized(fixture *f, const char *uri, http_handler_fn fn, void *cbdata,
                           size_t max_body)
{
    remember_route(f, uri);
    return http_route_add_sized(f->srv, uri, fn, cbdata, max_body);
}

static int setup(void **state)
{
    fixture *f = malloc(sizeof *f);
    assert_non_null(f);
    *f = shared;
    f->route_count = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < f->route_count; i++)
        http_route_remove(f->srv, f->routes[i]); /* no-op for routes already removed */
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    http_global_init();
    fixture *f = &shared;
    snprintf(f->dir, sizeof f->dir, "/tmp/ds-http-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->web_root, sizeof f->web_root, "%.63s/web", f->dir);
    char sub[192];
    snprintf(sub, sizeof sub, "%.127s/sub", f->web_root);
    if (mkdir(f->web_root, 0755) != 0 || mkdir(sub, 0755) != 0)
        return -1;
    write_text(f->web_root, "index.html", INDEX_HTML);
    write_text(f->web_root, "app.js", APP_JS);
    write_text(f->web_root, "style.css", "p{}\n");
    write_text(f->web_root, ".hidden", SECRET);
    write_text(f->web_root, "sub/page.html", "<p>page</p>\n");
    write_text(f->web_root, "sub/.env", SECRET);
    write_text(f->dir, "secret.txt", SECRET);
    http_config cfg = test_config(f->web_root);
    char err[ERRLEN] = "";
    if (http_start(&cfg, &f->srv, err, sizeof err) != 0) {
        fprintf(stderr, "http_start: %s\n", err);
        return -1;
    }
    f->port = http_port(f->srv);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    http_stop(shared.srv);
    http_global_cleanup();
    return test_remove_tree(shared.dir);
}

/* ---- handlers ----------------------------------------------------------------------------- */

/* Answers 200 text/plain with its cbdata (a string) as the body and an X-Handler header. */
static void text_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)req;
    buf_append_str(resp->body, cbdata);
    resp->status = 200;
    resp->content_type = "text/plain; charset=utf-8";
    http_response_header(resp, "X-Handler", cbdata);
}

/* Echoes what the handler saw as JSON. */
static void echo_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)cbdata;
    const char *custom = http_header(req, "X-Custom");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", req->method);
    cJSON_AddStringToObject(j, "path", req->path);
    cJSON_AddStringToObject(j, "query", req->query ? req->query : "(null)");
    cJSON_AddStringToObject(j, "custom", custom ? custom : "(null)");
    cJSON_AddNumberToObject(j, "body_len", (double)req->body_len);
    cJSON_AddBoolToObject(j, "terminated", req->body != NULL && req->body[req->body_len] == '\0');
    char *text = cJSON_PrintUnformatted(j);
    buf_append_str(resp->body, text);
    free(text);
    cJSON_Delete(j);
    resp->status = 200;
}

/* Sends the request body back unchanged. */
static void mirror_handler(void *cbdata, const http_request *req, http_response *resp)
{
    atomic_int *calls = cbdata;
    if (calls != NULL)
        atomic_fetch_add(calls, 1);
    buf_append(resp->body, req->body, req->body_len);
    resp->status = 200;
    resp->content_type = "application/octet-stream";
}

/* A body plus a tail of segments (a binary infer answer's shape): "head:" in the body, then a
 * large pattern and a short trailer straight from this struct. after_send counts, and checks
 * the tail is still there when it runs. ?error makes the handler reply_error after setting the
 * tail (which must drop it). */
typedef struct tail_case {
    unsigned char *big;
    size_t big_len;
    ds_span spans[2];
    atomic_int sent;
    atomic_int ok_on_send; /* after_send saw the tail's memory unchanged */
} tail_case;

static void tail_after_send(void *ctx)
{
    tail_case *tc = ctx;
    atomic_fetch_add(&tc->sent, 1);
    if (tc->spans[0].data == tc->big && tc->big[0] == 0xA5)
        atomic_fetch_add(&tc->ok_on_send, 1);
}

static void tail_handler(void *cbdata, const http_request *req, http_response *resp)
{
    tail_case *tc = cbdata;
    assert_true(resp->tail_ok);
    buf_append_str(resp->body, "head:");
    tc->spans[0] = (ds_span){tc->big, tc->big_len};
    tc->spans[1] = (ds_span){":end", 4};
    resp->tail = tc->spans;
    resp->tail_count = 2;
    resp->after_send = tail_after_send;
    resp->after_send_ctx = tc;
    resp->status = 200;
    resp->content_type = "application/octet-stream";
    if (req->query != NULL && strcmp(req->query, "error") == 0)
        reply_error(resp, 409, "no tail after an error");
}

static void error_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)cbdata;
    (void)req;
    buf_append_str(resp->body, "partial output that the error must replace");
    reply_error(resp, 409, "version \"%s\" is %s", "2", "busy\\locked");
}

static void silent_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)cbdata;
    (void)req;
    (void)resp; /* sets no status: the server must answer 500 */
}

static void static_handler(void *cbdata, const http_request *req, http_response *resp)
{
    http_serve_static(cbdata, req, resp);
}

/* ---- basics ------------------------------------------------------------------------------- */

static void test_start_on_port_zero_binds_a_free_port(void **state)
{
    fixture *f = *state;
    assert_true(f->port > 0);
    assert_true(f->port < 65536);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    close(fd);
}

static void test_a_route_answers_with_its_status_body_and_content_type(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/hello", text_handler, "hello world"), 0);
    reply r;
    get(f->port, "/hello", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    char v[128];
    assert_non_null(reply_header(&r, "Content-Type", v, sizeof v));
    assert_string_equal(v, "text/plain; charset=utf-8");
    assert_non_null(reply_header(&r, "Content-Length", v, sizeof v));
    assert_string_equal(v, "11");
    assert_non_null(reply_header(&r, "X-Handler", v, sizeof v));
    assert_string_equal(v, "hello world");
    assert_non_null(strstr(r.head, "HTTP/1.1 200 OK\r\n"));
    reply_free(&r);
}

static void test_the_handler_sees_method_path_query_headers_and_body(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/echo", echo_handler, NULL), 0);
    reply r;
    request(f->port, "POST", "/echo/a%20b?x=1&y=%20", "X-Custom: yes\r\n", "12345", 5, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "method")->valuestring, "POST");
    assert_string_equal(cJSON_GetObjectItem(j, "path")->valuestring, "/echo/a b");  /* decoded */
    assert_string_equal(cJSON_GetObjectItem(j, "query")->valuestring, "x=1&y=%20"); /* raw */
    assert_string_equal(cJSON_GetObjectItem(j, "custom")->valuestring, "yes");
    assert_int_equal(cJSON_GetObjectItem(j, "body_len")->valueint, 5);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "terminated")));
    cJSON_Delete(j);
    reply_free(&r);

    get(f->port, "/echo", &r);
    j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "query")->valuestring, "(null)");
    assert_string_equal(cJSON_GetObjectItem(j, "custom")->valuestring, "(null)");
    assert_int_equal(cJSON_GetObjectItem(j, "body_len")->valueint, 0);
    cJSON_Delete(j);
    reply_free(&r);
}

static void test_a_handler_without_a_status_gives_500_json(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/silent", silent_handler, NULL), 0);
    reply r;
    get(f->port, "/silent", &r);
    assert_json_error(&r, 500);
    reply_free(&r);
}

static void test_head_request_gets_headers_without_a_body(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/hello", text_handler, "hello"), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    assert_int_equal(send_request(fd, "HEAD", "/hello", NULL, NULL, 0), 0);
    reply r;
    assert_int_equal(read_reply(fd, &r, true), 0);
    assert_int_equal(r.status, 200);
    char v[32];
    assert_non_null(reply_header(&r, "Content-Length", v, sizeof v));
    assert_string_equal(v, "5");
    reply_free(&r);
    /* The next reply on the same connection starts right away: no body bytes were sent. */
    assert_int_equal(send_request(fd, "GET", "/hello", NULL, NULL, 0), 0);
    assert_int_equal(read_reply(fd, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    reply_free(&r);
    close(fd);
}

static void test_keep_alive_connection_serves_several_requests(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/a", text_handler, "first"), 0);
    assert_int_equal(add_route(f, "/b", text_handler, "second!"), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    for (int i = 0; i < 10; i++) {
        reply r;
        assert_int_equal(send_request(fd, "GET", i % 2 ? "/b" : "/a", NULL, NULL, 0), 0);
        assert_int_equal(read_reply(fd, &r, false), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, i % 2 ? "second!" : "first");
        reply_free(&r);
    }
    close(fd);
}

/* ---- routing ------------------------------------------------------------------------------ */

static void test_a_prefix_route_serves_paths_below_it(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/models", echo_handler, NULL), 0);
    static const char *const below[] = {"/models", "/models/x", "/models/x/versions/1", "/models/"};
    for (size_t i = 0; i < sizeof below / sizeof below[0]; i++) {
        reply r;
        get(f->port, below[i], &r);
        assert_int_equal(r.status, 200);
        cJSON *j = cJSON_Parse(r.body);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "path")->valuestring, below[i]);
        cJSON_Delete(j);
        reply_free(&r);
    }
}

static void test_a_prefix_route_does_not_serve_lookalike_paths(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/models", text_handler, "models"), 0);
    static const char *const others[] = {"/modelsX", "/models2/x", "/MODELS", "/Models/x"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        reply r;
        get(f->port, others[i], &r);
        if (r.status != 404)
            fail_msg("%s: expected 404, got %d (%s)", others[i], r.status, r.body);
        assert_json_error(&r, 404);
        reply_free(&r);
    }
}

static void test_an_exact_route_wins_over_a_prefix_route(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/v2", text_handler, "prefix"), 0);
    assert_int_equal(add_route(f, "/v2/models/m/infer", text_handler, "exact"), 0);
    reply r;
    get(f->port, "/v2/models/m/infer", &r);
    assert_string_equal(r.body, "exact");
    reply_free(&r);
    get(f->port, "/v2/models/m", &r);
    assert_string_equal(r.body, "prefix");
    reply_free(&r);
}

static void test_unknown_route_without_catch_all_is_404_json(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/hello", text_handler, "hello"), 0);
    static const char *const unknown[] = {"/nothing", "/", "/hello-there", "/x/y/z"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        reply r;
        get(f->port, unknown[i], &r);
        assert_json_error(&r, 404);
        reply_free(&r);
    }
    reply r;
    request(f->port, "POST", "/nothing", NULL, "{}", 2, &r);
    assert_json_error(&r, 404);
    reply_free(&r);
}

static void test_the_catch_all_serves_what_no_other_route_does(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/", text_handler, "catch-all"), 0);
    assert_int_equal(add_route(f, "/models", text_handler, "models"), 0);
    reply r;
    get(f->port, "/anything/else", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "catch-all");
    reply_free(&r);
    get(f->port, "/models/x", &r);
    assert_string_equal(r.body, "models");
    reply_free(&r);
    get(f->port, "/", &r);
    assert_string_equal(r.body, "catch-all");
    reply_free(&r);
}

static void test_replacing_a_route_switches_its_handler(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/r", text_handler, "old"), 0);
    reply r;
    get(f->port, "/r", &r);
    assert_string_equal(r.body, "old");
    reply_free(&r);
    assert_int_equal(add_route(f, "/r", text_handler, "new"), 0);
    get(f->port, "/r", &r);
    assert_string_equal(r.body, "new");
    reply_free(&r);
    assert_int_equal(add_route(f, "/r", echo_handler, NULL), 0);
    get(f->port, "/r", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"path\":\"/r\""));
    reply_free(&r);
    /* One removal removes it: the replaced handler left nothing behind. */
    http_route_remove(f->srv, "/r");
    get(f->port, "/r", &r);
    assert_json_error(&r, 404);
    reply_free(&r);
}

static void test_a_removed_route_answers_404_and_others_stay(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/gone", text_handler, "gone"), 0);
    assert_int_equal(add_route(f, "/stays", text_handler, "stays"), 0);
    http_route_remove(f->srv, "/gone");
    http_route_remove(f->srv, "/never-added"); /* no-op */
    reply r;
    get(f->port, "/gone", &r);
    assert_json_error(&r, 404);
    reply_free(&r);
    get(f->port, "/stays", &r);
    assert_string_equal(r.body, "stays");
    reply_free(&r);
    assert_int_equal(add_route(f, "/gone", text_handler, "back"), 0);
    get(f->port, "/gone", &r);
    assert_string_equal(r.body, "back");
    reply_free(&r);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_http_error_replaces_the_body_with_a_json_error(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    http_response resp = {.status = 0, .content_type = "text/plain", .body = &b};
    buf_append_str(&b, "half-written output");
    reply_error(&resp, 404, "model %s version %d is not deployed", "m\"x", 3);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.content_type, "application/json");
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 1); /* exactly {"error": ...} */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "error")->valuestring,
                        "model m\"x version 3 is not deployed");
    cJSON_Delete(j);
    buf_free(&b);
}

static void test_http_error_from_a_handler_reaches_the_client(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/err", error_handler, NULL), 0);
    reply r;
    get(f->port, "/err", &r);
    assert_json_error(&r, 409);
    assert_non_null(strstr(r.head, "HTTP/1.1 409 Conflict\r\n"));
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(j, "error")->valuestring,
                        "version \"2\" is busy\\locked");
    cJSON_Delete(j);
    reply_free(&r);
}

static void test_reason_phrases_of_the_statuses_used(void **state)
{
    (void)state;
    assert_string_equal(reply_reason(200), "OK");
    assert_string_equal(reply_reason(201), "Created");
    assert_string_equal(reply_reason(400), "Bad Request");
    assert_string_equal(reply_reason(404), "Not Found");
    assert_string_equal(reply_reason(405), "Method Not Allowed");
    assert_string_equal(reply_reason(409), "Conflict");
    assert_string_equal(reply_reason(413), "Payload Too Large");
    assert_string_equal(reply_reason(500), "Internal Server Error");
    assert_string_equal(reply_reason(503), "Service Unavailable");
    assert_non_null(reply_reason(599));
    assert_non_null(reply_reason(299));
}

static void test_response_headers_accumulate_and_overlong_ones_are_dropped_whole(void **state)
{
    (void)state;
    ds_buf b = DS_BUF_INIT;
    http_response resp = {.status = 0, .body = &b};
    http_response_header(&resp, "Allow", "POST");
    http_response_header(&resp, "Connection", "close");
    assert_string_equal(resp.extra_headers, "Allow: POST\r\nConnection: close\r\n");
    char big[800];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    http_response_header(&resp, "X-Big", big);
    assert_string_equal(resp.extra_headers, "Allow: POST\r\nConnection: close\r\n");
    buf_free(&b);
}

/* ---- bodies ------------------------------------------------------------------------------- */

static void test_a_one_megabyte_body_is_delivered_whole(void **state)
{
    fixture *f = *state;
    atomic_int calls = 0;
    assert_int_equal(add_route(f, "/mirror", mirror_handler, &calls), 0);
    size_t len = 1u << 20;
    unsigned char *body = malloc(len);
    assert_non_null(body);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body[i] = (unsigned char)x;
    }
    reply r;
    request(f->port, "POST", "/mirror", "Content-Type: application/octet-stream\r\n", body, len,
            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, body, len);
    assert_int_equal(atomic_load(&calls), 1);
    reply_free(&r);
    free(body);
}

static void
test_a_response_tail_follows_the_body_byte_exact_on_a_keep_alive_connection(void **state)
{
    fixture *f = *state;
    tail_case tc = {.big_len = (3u << 20) + 7}; /* 3 MiB and a bit: many TCP segments */
    tc.big = malloc(tc.big_len);
    assert_non_null(tc.big);
    for (size_t i = 0; i < tc.big_len; i++)
        tc.big[i] = (unsigned char)(i * 131u + (i >> 9));
    tc.big[0] = 0xA5;
    assert_int_equal(add_route(f, "/tail", tail_handler, &tc), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    for (int round = 0; round < 2; round++) { /* the second proves the framing held */
        reply r;
        assert_int_equal(send_request(fd, "GET", "/tail", NULL, NULL, 0), 0);
        assert_int_equal(read_reply(fd, &r, false), 0);
        assert_int_equal(r.status, 200);
        char v[32];
        assert_non_null(reply_header(&r, "Content-Length", v, sizeof v));
        assert_int_equal(strtoull(v, NULL, 10), 5 + tc.big_len + 4);
        assert_int_equal(r.body_len, 5 + tc.big_len + 4);
        assert_memory_equal(r.body, "head:", 5);
        assert_memory_equal(r.body + 5, tc.big, tc.big_len);
        assert_memory_equal(r.body + 5 + tc.big_len, ":end", 4);
        reply_free(&r);
    }
    /* HEAD: the length counts the tail, and no byte of it is sent */
    assert_int_equal(send_request(fd, "HEAD", "/tail", NULL, NULL, 0), 0);
    reply h;
    assert_int_equal(read_reply(fd, &h, true), 0);
    char v[32];
    assert_non_null(reply_header(&h, "Content-Length", v, sizeof v));
    assert_int_equal(strtoull(v, NULL, 10), 5 + tc.big_len + 4);
    reply_free(&h);
    /* an error after the tail was set answers the error alone */
    assert_int_equal(send_request(fd, "GET", "/tail?error", NULL, NULL, 0), 0);
    reply e;
    assert_int_equal(read_reply(fd, &e, false), 0);
    assert_json_error(&e, 409);
    assert_null(strstr(e.body, "head:"));
    reply_free(&e);
    close(fd);
    assert_int_equal(atomic_load(&tc.sent), 4);       /* once per response, after it went out */
    assert_int_equal(atomic_load(&tc.ok_on_send), 4); /* the memory was still the handler's */
    free(tc.big);
}

static void test_a_chunked_body_is_delivered_whole(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/mirror", mirror_handler, NULL), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    const char *req = "POST /mirror HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_int_equal(send_all(fd, req, strlen(req)), 0);
    reply r;
    assert_int_equal(read_reply(fd, &r, false), 0);
    close(fd);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    reply_free(&r);
}

/* After a reply with "Connection: close" the server must close the connection, promptly: well
 * before the request timeout (10 s here) that drops a stalled request anyway. */
static void assert_server_closes(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready;
    do
        ready = poll(&p, 1, 3000);
    while (ready < 0 && errno == EINTR);
    if (ready == 0)
        fail_msg("connection still open 3 s after a reply with Connection: close");
    char c;
    ssize_t n;
    do
        n = recv(fd, &c, 1, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n != 0)
        fail_msg("connection not closed after Connection: close (recv gave %zd)", n);
}

static void test_a_body_over_the_limit_gets_413_and_connection_close(void **state)
{
    fixture *f = *state;
    atomic_int calls = 0;
    assert_int_equal(add_route(f, "/mirror", mirror_handler, &calls), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    /* Announce one byte too many; the server must answer without waiting for the body. */
    char head[256];
    snprintf(head, sizeof head, "POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
             MAX_BODY_BYTES + 1);
    assert_int_equal(send_all(fd, head, strlen(head)), 0);
    reply r;
    assert_int_equal(read_reply(fd, &r, false), 0);
    assert_json_error(&r, 413);
    char v[64];
    assert_non_null(reply_header(&r, "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    reply_free(&r);
    assert_int_equal(atomic_load(&calls), 0); /* the handler never ran */
    assert_server_closes(fd);
    close(fd);
}

static void test_a_route_with_its_own_limit_enforces_it(void **state)
{
    fixture *f = *state;
    atomic_int calls = 0;
    assert_int_equal(add_route_sized(f, "/small", mirror_handler, &calls, 100), 0);
    char body[101];
    memset(body, 'b', sizeof body);
    reply r;
    request(f->port, "POST", "/small", NULL, body, 100, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100);
    reply_free(&r);
    request(f->port, "POST", "/small", NULL, body, 101, &r);
    assert_json_error(&r, 413);
    reply_free(&r);
    assert_int_equal(atomic_load(&calls), 1);

    /* A route may also allow more than the server default (plugin uploads). */
    assert_int_equal(add_route_sized(f, "/big", mirror_handler, &calls, MAX_BODY_BYTES * 2), 0);
    size_t len = MAX_BODY_BYTES + 10;
    char *large = calloc(1, len);
    assert_non_null(large);
    request(f->port, "POST", "/big", NULL, large, len, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, len);
    reply_free(&r);
    free(large);
}

static void test_a_chunked_body_over_the_limit_gets_413(void **state)
{
    fixture *f = *state;
    atomic_int calls = 0;
    assert_int_equal(add_route_sized(f, "/small", mirror_handler, &calls, 8), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    const char *req = "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_int_equal(send_all(fd, req, strlen(req)), 0);
    reply r;
    assert_int_equal(read_reply(fd, &r, false), 0);
    assert_json_error(&r, 413);
    char v[64];
    assert_non_null(reply_header(&r, "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    reply_free(&r);
    assert_int_equal(atomic_load(&calls), 0);
    assert_server_closes(fd);
    close(fd);
}

/* ---- route removal and in-flight handlers ------------------------------------------------- */

typedef struct slow_route {
    atomic_int seq;         /* event counter: orders the events below */
    atomic_int entered;     /* 1 once the handler started */
    atomic_int finished_at; /* seq value when the handler returned */
    int sleep_ms;
} slow_route;

static void slow_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)req;
    slow_route *s = cbdata;
    atomic_store(&s->entered, 1);
    sleep_ms(s->sleep_ms);
    buf_append_str(resp->body, "{\"slow\":true}");
    resp->status = 200;
    atomic_store(&s->finished_at, atomic_fetch_add(&s->seq, 1) + 1);
}

typedef struct client_job {
    int port;
    const char *path;
    int status; /* -1 when no reply came */
} client_job;

static void *client_thread(void *arg)
{
    client_job *job = arg;
    job->status = -1;
    int fd = client_connect(job->port);
    if (fd < 0)
        return NULL;
    reply r;
    if (send_request(fd, "GET", job->path, "Connection: close\r\n", NULL, 0) == 0 &&
        read_reply(fd, &r, false) == 0) {
        job->status = r.status;
        reply_free(&r);
    }
    close(fd);
    return NULL;
}

/* Wait (at most 10 s) until *flag becomes non-zero. */
static void wait_for_flag(atomic_int *flag)
{
    for (int i = 0; i < 10000 && atomic_load(flag) == 0; i++)
        sleep_ms(1);
    assert_int_not_equal(atomic_load(flag), 0);
}

static void test_route_remove_waits_for_an_in_flight_handler(void **state)
{
    fixture *f = *state;
    slow_route s = {.sleep_ms = 300};
    assert_int_equal(add_route(f, "/slow", slow_handler, &s), 0);
    client_job job = {.port = f->port, .path = "/slow"};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_thread, &job), 0);
    wait_for_flag(&s.entered);
    http_route_remove(f->srv, "/slow");
    int removed_at = atomic_fetch_add(&s.seq, 1) + 1;
    int finished_at = atomic_load(&s.finished_at);
    pthread_join(th, NULL);
    if (finished_at == 0 || finished_at > removed_at)
        fail_msg("http_route_remove returned before the handler finished");
    assert_int_equal(job.status, 200); /* and the request still got its answer */
    reply r;
    get(f->port, "/slow", &r);
    assert_json_error(&r, 404);
    reply_free(&r);
}

static void test_route_replace_waits_for_an_in_flight_handler(void **state)
{
    fixture *f = *state;
    slow_route s = {.sleep_ms = 300};
    assert_int_equal(add_route(f, "/slow", slow_handler, &s), 0);
    client_job job = {.port = f->port, .path = "/slow"};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_thread, &job), 0);
    wait_for_flag(&s.entered);
    assert_int_equal(add_route(f, "/slow", text_handler, "replaced"), 0);
    int replaced_at = atomic_fetch_add(&s.seq, 1) + 1;
    int finished_at = atomic_load(&s.finished_at);
    pthread_join(th, NULL);
    assert_int_equal(job.status, 200);
    /* http.h: the old cbdata must stay valid only until the route is replaced, so replacing
     * must wait like removing does. */
    if (finished_at == 0 || finished_at > replaced_at)
        fail_msg("http_route_add (replace) returned before the old handler finished");
    reply r;
    get(f->port, "/slow", &r);
    assert_string_equal(r.body, "replaced");
    reply_free(&r);
}

#define CLIENTS       4
#define CLIENT_ROUNDS 25

typedef struct churn_client {
    int port;
    int stable_ok;  /* "/stable" answered 200 */
    int flip_other; /* "/flip" answered neither 200 nor 404 */
    int failures;   /* no reply */
} churn_client;

static void *churn_thread(void *arg)
{
    churn_client *c = arg;
    for (int i = 0; i < CLIENT_ROUNDS; i++) {
        client_job a = {.port = c->port, .path = "/stable"};
        client_job b = {.port = c->port, .path = "/flip/x"};
        client_thread(&a);
        client_thread(&b);
        c->stable_ok += a.status == 200;
        c->failures += (a.status == -1) + (b.status == -1);
        c->flip_other += b.status != 200 && b.status != 404 && b.status != -1;
    }
    return NULL;
}

static void test_routes_change_safely_while_requests_run(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/stable", text_handler, "stable"), 0);
    churn_client c[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (churn_client){.port = f->port};
        assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &c[i]), 0);
    }
    for (int i = 0; i < 200; i++) {
        /* added and removed right here, so not remembered for teardown */
        assert_int_equal(http_route_add(f->srv, "/flip", text_handler, "flip"), 0);
        char uri[32];
        snprintf(uri, sizeof uri, "/other/%d", i);
        assert_int_equal(http_route_add(f->srv, uri, text_handler, "other"), 0);
        http_route_remove(f->srv, "/flip");
        http_route_remove(f->srv, uri);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].failures, 0);
        assert_int_equal(c[i].flip_other, 0);
        assert_int_equal(c[i].stable_ok, CLIENT_ROUNDS);
    }
}

/* The handler table is read without CivetWeb's context lock (third_party/civetweb/patches/0003):
 * a removal must still wait out every lookup that may have found the old handler, so nothing
 * calls it once http_route_remove has returned. */
typedef struct counted_route {
    atomic_int calls;
    atomic_int stop;
    int port;
} counted_route;

static void counted_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)req;
    counted_route *c = cbdata;
    atomic_fetch_add(&c->calls, 1);
    buf_append_str(resp->body, "{}");
    resp->status = 200;
}

static void *hammer_thread(void *arg)
{
    counted_route *c = arg;
    while (!atomic_load(&c->stop)) {
        client_job job = {.port = c->port, .path = "/counted"};
        client_thread(&job);
    }
    return NULL;
}

static void test_a_removed_handler_is_never_called_after_remove_returns(void **state)
{
    fixture *f = *state;
    counted_route *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->port = f->port;
    for (int round = 0; round < 5; round++) {
        assert_int_equal(http_route_add(f->srv, "/counted", counted_handler, c), 0);
        atomic_store(&c->stop, 0);
        pthread_t th[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, c), 0);
        int before = atomic_load(&c->calls);
        for (int i = 0; i < 10000 && atomic_load(&c->calls) < before + 20; i++)
            sleep_ms(1);
        http_route_remove(f->srv, "/counted");
        int at_remove = atomic_load(&c->calls);
        sleep_ms(50); /* the clients keep asking (and get 404s) */
        int later = atomic_load(&c->calls);
        atomic_store(&c->stop, 1);
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(th[i], NULL);
        assert_true(at_remove >= before + 20);
        assert_int_equal(later, at_remove);
    }
    free(c);
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void test_a_busy_port_makes_start_fail_with_a_message(void **state)
{
    fixture *f = *state;
    char listen[64], err[ERRLEN] = "";
    snprintf(listen, sizeof listen, "127.0.0.1:%d", f->port);
    http_config cfg = test_config(NULL);
    cfg.listen = listen;
    http_server *second = NULL;
    assert_int_equal(http_start(&cfg, &second, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    /* The first server is unharmed. */
    assert_int_equal(add_route(f, "/hello", text_handler, "still here"), 0);
    reply r;
    get(f->port, "/hello", &r);
    assert_string_equal(r.body, "still here");
    reply_free(&r);
}

static void test_a_malformed_listen_address_makes_start_fail_with_a_message(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    http_config cfg = test_config(NULL);
    cfg.listen = "127.0.0.1:notaport";
    http_server *srv = NULL;
    assert_int_equal(http_start(&cfg, &srv, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
}

static void test_stop_of_null_is_a_no_op(void **state)
{
    (void)state;
    http_stop(NULL);
}

static void test_stop_lets_an_in_flight_request_finish(void **state)
{
    (void)state;
    http_config cfg = test_config(NULL);
    http_server *srv = NULL;
    char err[ERRLEN] = "";
    assert_int_equal(http_start(&cfg, &srv, err, sizeof err), 0);
    slow_route s = {.sleep_ms = 300};
    assert_int_equal(http_route_add(srv, "/slow", slow_handler, &s), 0);
    client_job job = {.port = http_port(srv), .path = "/slow"};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_thread, &job), 0);
    wait_for_flag(&s.entered);
    http_stop(srv);
    pthread_join(th, NULL);
    assert_int_equal(job.status, 200);
    assert_true(atomic_load(&s.finished_at) > 0);
}

/* ---- static files ------------------------------------------------------------------------- */

static void test_static_serves_index_for_the_root(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/", static_handler, f->srv), 0);
    reply r;
    get(f->port, "/", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, INDEX_HTML);
    char v[128];
    assert_non_null(reply_header(&r, "Content-Type", v, sizeof v));
    assert_non_null(strstr(v, "text/html"));
    reply_free(&r);
    get(f->port, "/index.html", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, INDEX_HTML);
    reply_free(&r);
}

static void test_static_chooses_the_content_type_by_extension(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/", static_handler, f->srv), 0);
    static const struct {
        const char *path, *type, *body;
    } files[] = {{"/app.js", "javascript", APP_JS},
                 {"/style.css", "text/css", "p{}\n"},
                 {"/sub/page.html", "text/html", "<p>page</p>\n"}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        reply r;
        get(f->port, files[i].path, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, files[i].body);
        char v[128];
        assert_non_null(reply_header(&r, "Content-Type", v, sizeof v));
        if (strstr(v, files[i].type) == NULL)
            fail_msg("%s: Content-Type %s, want %s", files[i].path, v, files[i].type);
        reply_free(&r);
    }
}

static void test_static_refuses_traversal_and_hidden_files_over_http(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/", static_handler, f->srv), 0);
    static const char *const refused[] = {"/../etc/passwd",
                                          "/../secret.txt",
                                          "/%2e%2e/secret.txt",
                                          "/sub/../../secret.txt",
                                          "/..%2fsecret.txt",
                                          "/.hidden",
                                          "/%2ehidden",
                                          "/sub/.env",
                                          "/missing.html",
                                          "/sub",
                                          "/sub/"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        reply r;
        get(f->port, refused[i], &r);
        if (r.status != 404)
            fail_msg("%s: expected 404, got %d", refused[i], r.status);
        if (strstr(r.body, "top secret") != NULL)
            fail_msg("%s leaked a file outside the web root or a hidden file", refused[i]);
        assert_json_error(&r, 404);
        reply_free(&r);
    }
}

/* The same checks on the raw path, without CivetWeb's URL normalisation in between. */
static void test_static_refuses_traversal_and_hidden_files_in_the_path(void **state)
{
    fixture *f = *state;
    static const char *const refused[] = {"/../secret.txt",
                                          "/sub/../../secret.txt",
                                          "/./../secret.txt",
                                          "/.hidden",
                                          "/sub/.env",
                                          "/..",
                                          "/sub\\..\\..\\secret.txt"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        ds_buf b = DS_BUF_INIT;
        http_response resp = {.status = 0, .body = &b};
        http_request req = {.method = "GET", .path = refused[i]};
        http_serve_static(f->srv, &req, &resp);
        if (resp.status != 404)
            fail_msg("%s: expected 404, got %d", refused[i], resp.status);
        assert_null(b.data == NULL ? NULL : strstr(b.data, "top secret"));
        buf_free(&b);
    }
    ds_buf b = DS_BUF_INIT;
    http_response resp = {.status = 0, .body = &b};
    http_request req = {.method = "GET", .path = "/"};
    http_serve_static(f->srv, &req, &resp);
    assert_int_equal(resp.status, 200);
    assert_int_equal(b.len, strlen(INDEX_HTML));
    assert_memory_equal(b.data, INDEX_HTML, b.len);
    buf_free(&b);
}

static void test_static_without_a_web_root_is_404(void **state)
{
    (void)state;
    http_config cfg = test_config(NULL);
    http_server *srv = NULL;
    char err[ERRLEN] = "";
    assert_int_equal(http_start(&cfg, &srv, err, sizeof err), 0);
    assert_int_equal(http_route_add(srv, "/", static_handler, srv), 0);
    reply r;
    get(http_port(srv), "/", &r);
    assert_json_error(&r, 404);
    reply_free(&r);
    http_stop(srv);
}

/* Routes by the thousand (the server's patched CivetWeb finds exact routes through a hash index,
 * third_party/civetweb/patches/0002): every one reaches its own handler wherever it sits in the
 * list, removed ones are gone, a re-added one answers again, and a prefix route registered before
 * them all still serves the paths below it. */
#define MANY_ROUTES 3000
static char many_uri[MANY_ROUTES][48];

static void expect_text(int port, const char *path, int status, const char *body)
{
    reply r;
    get(port, path, &r);
    assert_int_equal(r.status, status);
    if (body != NULL)
        assert_string_equal(r.body, body);
    reply_free(&r);
}

static void test_thousands_of_exact_routes_each_reach_their_own_handler(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/many", text_handler, "prefix"), 0);
    for (int i = 0; i < MANY_ROUTES; i++) {
        snprintf(many_uri[i], sizeof many_uri[i], "/many/m%d/versions/%d/infer", i, i % 7);
        assert_int_equal(http_route_add(f->srv, many_uri[i], text_handler, many_uri[i]), 0);
    }
    static const int probe[] = {0, 1, 1499, MANY_ROUTES - 2, MANY_ROUTES - 1};
    for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++)
        expect_text(f->port, many_uri[probe[k]], 200, many_uri[probe[k]]);
    expect_text(f->port, "/many/m0/versions/0/infer/below", 200, "prefix");
    expect_text(f->port, "/many/unregistered", 200, "prefix");
    for (int i = 0; i < MANY_ROUTES; i += 2)
        http_route_remove(f->srv, many_uri[i]);
    expect_text(f->port, many_uri[0], 200, "prefix"); /* the exact route is gone: prefix serves */
    expect_text(f->port, many_uri[MANY_ROUTES - 2], 200, "prefix");
    expect_text(f->port, many_uri[MANY_ROUTES - 1], 200, many_uri[MANY_ROUTES - 1]);
    assert_int_equal(http_route_add(f->srv, many_uri[0], text_handler, many_uri[0]), 0);
    expect_text(f->port, many_uri[0], 200, many_uri[0]);
    http_route_remove(f->srv, "/many");
    expect_text(f->port, many_uri[2], 404, NULL);
    expect_text(f->port, many_uri[1], 200, many_uri[1]);
    for (int i = 0; i < MANY_ROUTES; i++)
        http_route_remove(f->srv, many_uri[i]); /* removing an absent route is a no-op */
    expect_text(f->port, many_uri[1], 404, NULL);
}

/* Transfer-Encoding together with Content-Length is a request-smuggling vector: 400 (vendored
 * CivetWeb, patches/0001; Debian's 1.15 reads such a body as chunked). */
static void test_transfer_encoding_with_content_length_is_rejected(void **state)
{
    fixture *f = *state;
    assert_int_equal(add_route(f, "/te", echo_handler, NULL), 0);
    int fd = client_connect(f->port);
    assert_true(fd >= 0);
    static const char req[] = "POST /te HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                              "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                              "0\r\n\r\n";
    assert_int_equal(send_all(fd, req, sizeof req - 1), 0);
    reply r;
    int rc = read_reply(fd, &r, false);
    close(fd);
    assert_int_equal(rc, 0);
#ifdef DYNSERVE_SYSTEM_CIVETWEB
    assert_true(r.status == 200 || r.status == 400);
#else
    assert_int_equal(r.status, 400);
#endif
    reply_free(&r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_start_on_port_zero_binds_a_free_port),
        T(test_a_route_answers_with_its_status_body_and_content_type),
        T(test_the_handler_sees_method_path_query_headers_and_body),
        T(test_a_handler_without_a_status_gives_500_json),
        T(test_head_request_gets_headers_without_a_body),
        T(test_keep_alive_connection_serves_several_requests),
        T(test_a_prefix_route_serves_paths_below_it),
        T(test_a_prefix_route_does_not_serve_lookalike_paths),
        T(test_an_exact_route_wins_over_a_prefix_route),
        T(test_unknown_route_without_catch_all_is_404_json),
        T(test_the_catch_all_serves_what_no_other_route_does),
        T(test_replacing_a_route_switches_its_handler),
        T(test_thousands_of_exact_routes_each_reach_their_own_handler),
        T(test_transfer_encoding_with_content_length_is_rejected),
        T(test_a_removed_route_answers_404_and_others_stay),
        cmocka_unit_test(test_http_error_replaces_the_body_with_a_json_error),
        T(test_http_error_from_a_handler_reaches_the_client),
        cmocka_unit_test(test_reason_phrases_of_the_statuses_used),
        cmocka_unit_test(test_response_headers_accumulate_and_overlong_ones_are_dropped_whole),
        T(test_a_one_megabyte_body_is_delivered_whole),
        T(test_a_response_tail_follows_the_body_byte_exact_on_a_keep_alive_connection),
        T(test_a_chunked_body_is_delivered_whole),
        T(test_a_body_over_the_limit_gets_413_and_connection_close),
        T(test_a_route_with_its_own_limit_enforces_it),
        T(test_a_chunked_body_over_the_limit_gets_413),
        T(test_route_remove_waits_for_an_in_flight_handler),
        T(test_route_replace_waits_for_an_in_flight_handler),
        T(test_routes_change_safely_while_requests_run),
        T(test_a_removed_handler_is_never_called_after_remove_returns),
        T(test_a_busy_port_makes_start_fail_with_a_message),
        cmocka_unit_test(test_a_malformed_listen_address_makes_start_fail_with_a_message),
        cmocka_unit_test(test_stop_of_null_is_a_no_op),
        cmocka_unit_test(test_stop_lets_an_in_flight_request_finish),
        T(test_static_serves_index_for_the_root),
        T(test_static_chooses_the_content_type_by_extension),
        T(test_static_refuses_traversal_and_hidden_files_over_http),
        T(test_static_refuses_traversal_and_hidden_files_in_the_path),
        cmocka_unit_test(test_static_without_a_web_root_is_404),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
