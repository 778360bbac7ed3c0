/*
 * Unit tests for src/http/conn_guard.c: the eviction policy (per-address cap, workers kept
 * free, victim order: never served, then body readers, then kept-alive; never a busy one), the
 * socket scan that finds this process's server-side connections, and the whole guard against
 * real loopback connections: a connection over the cap is shut down, a busy one is not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn_guard.h"

#define NOW 100000 /* ms: every WAITING socket below is older than the grace period */

static conn_sock sock(const char *addr, unsigned long ino, conn_state st, uint64_t since)
{
    conn_sock s = {.fd = (int)ino, .ino = ino, .state = st, .since = since};
    snprintf(s.peer.addr, sizeof s.peer.addr, "%s", addr);
    s.peer.port = (int)ino;
    return s;
}

static void test_cap_closes_the_oldest_never_served_connections_of_the_address(void **state)
{
    (void)state;
    conn_sock s[] = {sock("10.0.0.1", 5, CONN_BUSY, 1), sock("10.0.0.1", 6, CONN_WAITING, 0),
                     sock("10.0.0.1", 7, CONN_KEEPALIVE, 2), sock("10.0.0.1", 8, CONN_WAITING, 0),
                     sock("10.0.0.2", 9, CONN_WAITING, 0)};
    int over;
    assert_int_equal(conn_guard_plan(s, 5, 2, 100, NOW, &over), 2);
    assert_int_equal(over, 2);
    assert_true(s[1].kick && s[3].kick); /* both never-served ones, before the kept-alive one */
    assert_false(s[0].kick || s[2].kick || s[4].kick);
}

static void test_cap_never_cuts_off_a_busy_connection(void **state)
{
    (void)state;
    conn_sock s[] = {sock("::1", 1, CONN_BUSY, 1), sock("::1", 2, CONN_BUSY, 1),
                     sock("::1", 3, CONN_WAITING, 0)};
    int over;
    assert_int_equal(conn_guard_plan(s, 3, 1, 100, NOW, &over), 1);
    assert_true(s[2].kick); /* the new one goes; the busy ones stay over the cap */
    assert_false(s[0].kick || s[1].kick);
}

static void test_reserve_closes_oldest_waiting_in_victim_order(void **state)
{
    (void)state;
    conn_sock s[] = {sock("a", 10, CONN_KEEPALIVE, 1), sock("b", 11, CONN_BODY, 5),
                     sock("c", 12, CONN_WAITING, 0),   sock("d", 13, CONN_WAITING, 0),
                     sock("e", 14, CONN_BUSY, 0),      sock("f", 15, CONN_BODY, 3)};
    int over;
    /* 5 waiting, 2 may wait: c, d (never served, oldest first), then f (older body reader) */
    assert_int_equal(conn_guard_plan(s, 6, 0, 2, NOW, &over), 3);
    assert_int_equal(over, 0);
    assert_true(s[2].kick && s[3].kick && s[5].kick);
    assert_false(s[0].kick || s[1].kick || s[4].kick);
    conn_sock t[] = {sock("a", 1, CONN_KEEPALIVE, 9), sock("b", 2, CONN_KEEPALIVE, 4)};
    assert_int_equal(conn_guard_plan(t, 2, 0, 1, NOW, &over), 1);
    assert_true(t[1].kick); /* kept alive longer ago */
}

static void test_nothing_is_closed_without_pressure(void **state)
{
    (void)state;
    conn_sock s[] = {sock("a", 1, CONN_WAITING, 0), sock("a", 2, CONN_WAITING, 0)};
    int over;
    assert_int_equal(conn_guard_plan(s, 2, 2, 2, NOW, &over), 0);
    assert_int_equal(conn_guard_plan(s, 2, 0, 2, NOW, &over), 0);
}

static void test_young_and_queued_connections_are_left_alone(void **state)
{
    (void)state;
    conn_sock s[] = {sock("a", 1, CONN_WAITING, NOW - 10), sock("a", 2, CONN_QUEUED, NOW),
                     sock("a", 3, CONN_BODY, 5), sock("a", 4, CONN_WAITING, NOW - 5000)};
    int over;
    /* 3 hold a worker, 1 may: the old never-served one, then the body reader, not the young */
    assert_int_equal(conn_guard_plan(s, 4, 0, 1, NOW, &over), 2);
    assert_true(s[3].kick && s[2].kick);
    assert_false(s[0].kick || s[1].kick);
}

static void test_kept_alive_connections_quiet_less_than_the_idle_grace_stay(void **state)
{
    (void)state;
    conn_sock s[] = {sock("a", 1, CONN_KEEPALIVE, NOW - CONN_GUARD_IDLE_GRACE_MS + 10),
                     sock("a", 2, CONN_KEEPALIVE, NOW - CONN_GUARD_IDLE_GRACE_MS - 10),
                     sock("a", 3, CONN_WAITING, NOW - CONN_GUARD_GRACE_MS - 10)};
    int over;
    /* 3 hold a worker, none may: an active client between two requests is never the victim */
    assert_int_equal(conn_guard_plan(s, 3, 0, 0, NOW, &over), 2);
    assert_true(s[1].kick && s[2].kick);
    assert_false(s[0].kick);
}

typedef struct pair {
    int lfd, port;
    int client[4], server[4];
} pair;

static void loopback_pairs(pair *p, int n)
{
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    getsockname(p->lfd, (struct sockaddr *)&sa, &len);
    p->port = ntohs(sa.sin_port);
    for (int i = 0; i < n; i++) {
        p->client[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(p->client[i], (struct sockaddr *)&sa, sizeof sa), 0);
        p->server[i] = accept(p->lfd, NULL, NULL);
        assert_true(p->server[i] >= 0);
    }
}

static void close_pairs(pair *p, int n)
{
    for (int i = 0; i < n; i++) {
        close(p->client[i]);
        close(p->server[i]);
    }
    close(p->lfd);
}

static void test_scan_finds_server_side_sockets_only(void **state)
{
    (void)state;
    pair p;
    loopback_pairs(&p, 2);
    conn_sock s[16];
    int n = conn_guard_scan(&p.port, 1, 0, s, 16);
    assert_int_equal(n, 2); /* not the listener, not the clients' ends */
    for (int i = 0; i < n; i++) {
        assert_true(s[i].fd == p.server[0] || s[i].fd == p.server[1]);
        assert_string_equal(s[i].peer.addr, "127.0.0.1");
        assert_true(s[i].ino > 0);
    }
    close_pairs(&p, 2);
}

static int client_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

/* is_cancelled's client check: the server end of a client's connection is found by its peer,
 * stays "not gone" while the client is there (also with unread pipelined input), and is "gone"
 * once the client closes, even with the request already read. */
static void test_find_and_gone_follow_the_client(void **state)
{
    (void)state;
    pair p;
    loopback_pairs(&p, 2);
    conn_peer peer = {.addr = "127.0.0.1", .port = client_port(p.client[1])};
    assert_int_equal(conn_guard_find(p.port, &peer), p.server[1]);
    conn_peer nobody = {.addr = "127.0.0.1", .port = 1};
    assert_int_equal(conn_guard_find(p.port, &nobody), -1);
    assert_int_equal(conn_guard_find(p.port + 1 == 0 ? 1 : p.port + 1, &peer), -1);
    assert_false(conn_socket_gone(p.server[1]));
    assert_int_equal(write(p.client[1], "GET", 3), 3); /* pipelined input: still there */
    struct timespec pause = {0, 20000000};
    nanosleep(&pause, NULL);
    assert_false(conn_socket_gone(p.server[1]));
    close(p.client[1]);
    p.client[1] = socket(AF_INET, SOCK_STREAM, 0); /* for close_pairs */
    nanosleep(&pause, NULL);
    assert_true(conn_socket_gone(p.server[1]));
    assert_false(conn_socket_gone(p.server[0]));
    close_pairs(&p, 2);
}

static void test_guard_shuts_down_a_connection_over_the_cap(void **state)
{
    (void)state;
    pair p;
    loopback_pairs(&p, 3);
    conn_guard_config cfg = {.slots = 16, .max_per_client = 2, .reserve = 2, .ports = {p.port}};
    conn_guard *g = conn_guard_new(&cfg);
    int a = conn_guard_open(g);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    getpeername(p.server[0], (struct sockaddr *)&peer, &len);
    conn_peer cp = {.addr = "127.0.0.1", .port = ntohs(peer.sin_port)};
    conn_guard_begin(g, a, &cp, 1); /* server[0] is busy */
    conn_guard_open(g);
    const struct timespec past_grace = {.tv_sec = 0,
                                        .tv_nsec = (CONN_GUARD_GRACE_MS + 50) * 1000000L};
    nanosleep(&past_grace, NULL);
    conn_guard_open(g); /* three open, cap 2: the oldest never-served one goes, not the new */
    char c;
    /* shut for reading (the worker would now see end-of-file), the others untouched */
    assert_int_equal(recv(p.server[1], &c, 1, MSG_DONTWAIT), 0);
    assert_int_equal(recv(p.server[0], &c, 1, MSG_DONTWAIT), -1); /* still open */
    assert_int_equal(recv(p.server[2], &c, 1, MSG_DONTWAIT), -1);
    conn_guard_stats st;
    conn_guard_get_stats(g, &st);
    assert_int_equal(st.open, 3);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.over_cap, 1);
    conn_guard_set_state(g, a, CONN_KEEPALIVE, 2);
    conn_guard_close(g, a);
    conn_guard_get_stats(g, &st);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.busy, 0);
    conn_guard_free(g);
    close_pairs(&p, 3);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The race that made kept-alive requests fail under load: the client's next request crosses
 * the kick. It must still be readable by the worker and answerable, and the slot says close. */
static void test_a_request_crossing_a_kick_is_still_read_and_answered(void **state)
{
    (void)state;
    pair p;
    loopback_pairs(&p, 2);
    conn_guard_config cfg = {.slots = 16, .max_per_client = 1, .reserve = 2, .ports = {p.port}};
    conn_guard *g = conn_guard_new(&cfg);
    int slot[2];
    for (int i = 0; i < 2; i++) { /* both served once; the second one stays busy */
        slot[i] = conn_guard_open(g);
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        getpeername(p.server[i], (struct sockaddr *)&peer, &len);
        conn_peer cp = {.addr = "127.0.0.1", .port = ntohs(peer.sin_port)};
        conn_guard_begin(g, slot[i], &cp, mono_ms());
    }
    int a = slot[0];
    conn_guard_set_state(g, a, CONN_KEEPALIVE, mono_ms()); /* served, waiting for the next */
    const struct timespec quiet = {.tv_sec = 1, .tv_nsec = 100000000L}; /* > the idle grace */
    nanosleep(&quiet, NULL);
    conn_guard_open(g); /* a worker picks up another: two from one address, cap 1 */
    assert_true(conn_guard_kicked(g, a));
    assert_false(conn_guard_kicked(g, slot[1]));
    assert_int_equal(send(p.client[0], "GET", 3, 0), 3); /* sent just after the kick */
    char got[8];
    assert_int_equal(recv(p.server[0], got, sizeof got, 0), 3);     /* still read */
    assert_int_equal(send(p.server[0], "200", 3, MSG_NOSIGNAL), 3); /* and answered */
    assert_int_equal(recv(p.client[0], got, sizeof got, 0), 3);
    assert_int_equal(recv(p.server[0], got, sizeof got, MSG_DONTWAIT), 0); /* then closes */
    conn_guard_free(g);
    close_pairs(&p, 2);
}

/* Handlers (stalled plugin calls, say) hold most workers: an idle kept-alive connection must
 * not keep one of the last ones, although few connections wait in all. */
static void test_idle_connection_goes_when_busy_ones_hold_the_workers(void **state)
{
    (void)state;
    pair p;
    loopback_pairs(&p, 4);
    conn_guard_config cfg = {.slots = 4, .max_per_client = 0, .reserve = 1, .ports = {p.port}};
    conn_guard *g = conn_guard_new(&cfg);
    int slot[4];
    for (int i = 0; i < 4; i++) {
        slot[i] = conn_guard_open(g);
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        getpeername(p.server[i], (struct sockaddr *)&peer, &len);
        conn_peer cp = {.addr = "127.0.0.1", .port = ntohs(peer.sin_port)};
        conn_guard_begin(g, slot[i], &cp, mono_ms()); /* busy */
    }
    conn_guard_set_state(g, slot[3], CONN_KEEPALIVE, mono_ms()); /* 3 busy, 1 idle */
    const struct timespec quiet = {.tv_sec = 1, .tv_nsec = 100000000L};
    nanosleep(&quiet, NULL);
    /* One waiting connection of four workers is within the old rule (slots - reserve may
     * wait), but with three busy it holds the last worker: the reserve. */
    conn_guard_open(g);
    assert_true(conn_guard_kicked(g, slot[3]));
    for (int i = 0; i < 3; i++)
        assert_false(conn_guard_kicked(g, slot[i]));
    char c;
    assert_int_equal(recv(p.server[3], &c, 1, MSG_DONTWAIT), 0);
    conn_guard_free(g);
    close_pairs(&p, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_closes_the_oldest_never_served_connections_of_the_address),
        cmocka_unit_test(test_cap_never_cuts_off_a_busy_connection),
        cmocka_unit_test(test_reserve_closes_oldest_waiting_in_victim_order),
        cmocka_unit_test(test_nothing_is_closed_without_pressure),
        cmocka_unit_test(test_young_and_queued_connections_are_left_alone),
        cmocka_unit_test(test_scan_finds_server_side_sockets_only),
        cmocka_unit_test(test_find_and_gone_follow_the_client),
        cmocka_unit_test(test_guard_shuts_down_a_connection_over_the_cap),
        cmocka_unit_test(test_kept_alive_connections_quiet_less_than_the_idle_grace_stay),
        cmocka_unit_test(test_a_request_crossing_a_kick_is_still_read_and_answered),
        cmocka_unit_test(test_idle_connection_goes_when_busy_ones_hold_the_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
