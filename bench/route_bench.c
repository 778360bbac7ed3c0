/*
 * route_bench: what finding a route costs as routes multiply. A real http_server (src/http, over
 * whichever CivetWeb the build links) with a prefix route registered first (as the server's
 * "/v2/models" metadata route is) and N exact routes "/r/m<i>/versions/1/infer" behind it, each
 * with a trivial handler; keep-alive GETs over loopback to the first- and last-registered exact
 * route and to a path only the prefix route serves. Every figure is req/s and its ratio to N = 1
 * in the same run. "2 thr" runs two client threads at once on two different routes (first and
 * last), the contention figure: with no shared lock on the path it scales like the 1-thread one;
 * "2/1" is that aggregate over the mean of the first and last 1-thread figures. Each figure is
 * the median of ROUNDS runs (env ROUNDS, default 3). Prints numbers, asserts nothing
 * (bench/README.md).
 *
 * usage: [ROUNDS=3] route_bench [requests per figure, default 20000] [N ...; default 1 100 1000
 *        5000]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#define MAX_N 100000

static void ok_handler(void *cbdata, const http_request *req, http_response *resp)
{
    (void)cbdata;
    (void)req;
    buf_append_str(resp->body, "{}");
    resp->status = 200;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One keep-alive GET; 0 when a 200 with its whole body came back. */
static int get_once(int fd, const char *req, size_t req_len)
{
    if (write(fd, req, req_len) != (ssize_t)req_len)
        return -1;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        const char *cl = strstr(buf, "Content-Length: ");
        size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (have >= (size_t)(end + 4 - buf) + body)
            return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
    }
}

typedef struct client {
    int port;
    const char *path;
    long requests;
    double seconds;
    int failed;
} client;

static void *run_client(void *arg)
{
    client *c = arg;
    char req[256];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", c->path);
    int fd = connect_to(c->port);
    if (fd < 0) {
        c->failed = 1;
        return NULL;
    }
    for (int i = 0; i < 200; i++) /* warm-up */
        get_once(fd, req, (size_t)len);
    double t0 = now_s();
    for (long i = 0; i < c->requests && !c->failed; i++)
        c->failed = get_once(fd, req, (size_t)len) != 0;
    c->seconds = now_s() - t0;
    close(fd);
    return NULL;
}

/* req/s of `nclients` clients at once on paths[i]; -1 if any request failed. */
static double measure(int port, const char **paths, int nclients, long requests)
{
    pthread_t tid[2];
    client c[2];
    for (int i = 0; i < nclients; i++) {
        c[i] = (client){.port = port, .path = paths[i], .requests = requests};
        pthread_create(&tid[i], NULL, run_client, &c[i]);
    }
    double rate = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(tid[i], NULL);
        if (c[i].failed)
            return -1;
        rate += (double)c[i].requests / c[i].seconds;
    }
    return rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of `rounds` measurements (a failed one counts as -1). */
static double measure_median(int port, const char **paths, int nclients, long requests, int rounds)
{
    double r[16];
    for (int i = 0; i < rounds; i++)
        r[i] = measure(port, paths, nclients, requests);
    qsort(r, (size_t)rounds, sizeof r[0], cmp_double);
    return r[rounds / 2];
}

enum { FIRST, LAST, PREFIX, TWO, FIGURES };
static const char *const figure_name[FIGURES] = {"first", "last", "prefix", "2 thr f+l"};

int main(int argc, char **argv)
{
    long requests = argc > 1 ? atol(argv[1]) : 20000;
    int ns[16] = {1, 100, 1000, 5000}, count = 4;
    if (argc > 2) {
        count = 0;
        for (int i = 2; i < argc && count < 16; i++)
            ns[count++] = atoi(argv[i]);
    }
    const char *rounds_env = getenv("ROUNDS");
    int rounds = rounds_env ? atoi(rounds_env) : 3;
    rounds = rounds < 1 ? 1 : rounds > 16 ? 16 : rounds;
    http_global_init();
    double base[FIGURES] = {0};
    printf("route_bench: %ld keep-alive GETs per figure, median of %d; req/s (ratio to N=1 in "
           "this run)\n",
           requests, rounds);
    printf("%8s", "N");
    for (int f = 0; f < FIGURES; f++)
        printf(" %22s", figure_name[f]);
    printf(" %6s\n", "2/1");
    for (int k = 0; k < count; k++) {
        int n = ns[k] < 1 ? 1 : ns[k] > MAX_N ? MAX_N : ns[k];
        http_config cfg = {.listen = "127.0.0.1:0",
                           .threads = 4,
                           .max_body_bytes = 1 << 20,
                           .request_timeout_ms = 10000,
                           .keep_alive_ms = 10000};
        http_server *srv;
        char err[256];
        if (http_start(&cfg, &srv, err, sizeof err) != 0) {
            fprintf(stderr, "route_bench: %s\n", err);
            return 1;
        }
        http_route_add(srv, "/r", ok_handler, NULL);
        char first[64], last[64], prefix[64];
        for (int i = 0; i < n; i++) {
            char uri[64];
            snprintf(uri, sizeof uri, "/r/m%d/versions/1/infer", i);
            if (http_route_add(srv, uri, ok_handler, NULL) != 0) {
                fprintf(stderr, "route_bench: out of memory at %d routes\n", i);
                return 1;
            }
        }
        snprintf(first, sizeof first, "/r/m0/versions/1/infer");
        snprintf(last, sizeof last, "/r/m%d/versions/1/infer", n - 1);
        snprintf(prefix, sizeof prefix, "/r/m%d", n - 1);
        const char *one[][2] = {{first, NULL}, {last, NULL}, {prefix, NULL}, {first, last}};
        double rate[FIGURES];
        for (int f = 0; f < FIGURES; f++)
            rate[f] = measure_median(http_port(srv), one[f], f == TWO ? 2 : 1, requests, rounds);
        printf("%8d", n);
        for (int f = 0; f < FIGURES; f++) {
            if (k == 0)
                base[f] = rate[f];
            printf(" %13.0f (%5.2fx)", rate[f], base[f] > 0 ? rate[f] / base[f] : 0.0);
        }
        printf(" %6.2f\n", rate[TWO] / ((rate[FIRST] + rate[LAST]) / 2));
        fflush(stdout);
        http_stop(srv);
    }
    http_global_cleanup();
    return 0;
}
